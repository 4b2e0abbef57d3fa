# Two entry points, each installing what it needs into .venv first (idempotent).
#   make table1   - reproduce/table1.py in quick mode (CPU, minutes, embedded data)
#   make test     - the whole default test suite
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: table1 test
table1: $(STAMP)
	$(VENV)/bin/python reproduce/table1.py --mode quick

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)
