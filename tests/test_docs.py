"""Every code block of README.md and docs/ runs.

Python blocks run in order, one namespace per page (a later block may use what an earlier one made), in a
temporary folder with a private data cache. Shell blocks: every `python reproduce/<script>.py ...` command runs
with `--check` (the arguments and the config are checked, the resolved config printed, nothing trained), so a
stale option or config key in the docs fails here; `make` and `tensorboard` lines are what CI and a user run.
"""
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_OK = ("make ", "tensorboard ", "pip ", "git ", "saved_model_cli ")
# Pages whose examples train a model (minutes on a 2-core CPU): slow here, run by CI's docs step (.ci/run).
TRAINING_PAGES = {"lavae.md", "spair.md", "tusk.md"}


def blocks(page: Path, language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(page.read_text()) if lang == language]


def shell_commands(code: str) -> list[str]:
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


@pytest.mark.parametrize("page", [pytest.param(p, marks=[pytest.mark.slow] if p.name in TRAINING_PAGES else [])
                                  for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFOBJ_CACHE", str(tmp_path / "cache"))
    namespace = {"__name__": f"doc_{page.stem}"}
    for index, code in enumerate(blocks(page, "python")):
        exec(compile(code, f"{page.name} python block {index + 1}", "exec"), namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "bash")], ids=lambda p: p.name)
def test_shell_commands_are_valid(page, load_script, capsys):
    for code in blocks(page, "bash"):
        for command in shell_commands(code):
            words = shlex.split(command)
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # environment assignments (TF_CONFIG=...)
            if words and words[0] == "python" and words[1].startswith("reproduce/"):
                script = load_script(Path(words[1]).stem)
                with pytest.raises(SystemExit) as exit_info:
                    script.main(words[2:] + ["--check"])
                assert exit_info.value.code == 0, f"{page.name}: {command}"
            else:
                assert command.startswith(SHELL_OK), f"{page.name}: a shell line this test does not know: {command}"
