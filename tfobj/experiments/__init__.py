"""Experiments as functions: an experiment config (`model` + `data` + `train` parts) -> a results dict.

One module per model (`conncomp`, `spair`, `silot`, `lavae`, `tusk`) and `common` for what they share.
`reproduce/` scripts and the tests call `run_<model>(config)`, so a table row is one call with one config.
Defaults are the papers' protocols (full mode); `configs/*.toml` cut them down for quick mode.
"""
