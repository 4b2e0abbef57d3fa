"""Train SPAIR from a config file and overrides; the run directory keeps everything needed to resume,
inspect (TensorBoard) and serve (SavedModel) the model.

    python reproduce/train_spair.py --run-dir runs/spair                       # quick mode (CPU, ~13 min)
    python reproduce/train_spair.py --mode full --run-dir runs/spair_full      # the paper's settings (GPU)
    python reproduce/train_spair.py --set model.count_prior_decay_steps=2000 --set train.steps=8000 --run-dir runs/x
    python reproduce/train_spair.py --set train.strategy=mirrored --run-dir runs/x   # every local GPU
    TF_CONFIG=... python reproduce/train_spair.py --set train.strategy=multi_worker --run-dir runs/x  # per worker

Running the same command again after an interruption resumes from the last completed evaluation period; a
different config in a run directory that holds a run is refused, unless --restart (which starts afresh there).
Writes <run-dir>/config.json (resolved config and command), results.json (test metrics), history.json,
tensorboard/, best.weights.h5 and saved_model/ (docs/scaling.md for several GPUs or machines).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("TFOBJ_QUIET_STARTUP", "1")  # drop TensorFlow's benign start-up lines (tfobj/_quiet.py)

from tfobj import cli  # noqa: E402
from tfobj.experiments.spair import SPAIRExperiment, run_spair  # noqa: E402
from tfobj.training.strategies import is_chief  # noqa: E402


def main(argv=None) -> dict:
    def extra(parser):
        parser.add_argument("--run-dir", required=True)
        parser.add_argument("--restart", action="store_true",
                            help="start afresh in a run directory that holds a run of another config")

    args = cli.parse_args(__doc__, "spair", argv, output=False, extra=extra)
    config, _ = cli.load(args, SPAIRExperiment)
    args.out = Path(args.run_dir)
    chief = is_chief()
    if chief:
        cli.prepare_run_dir(args.out, config, restart=args.restart)
        (args.out / "config.json").write_text(json.dumps(cli.provenance(args, config, 0.0), indent=2))
    start = time.time()
    result = run_spair(config, run_dir=args.out)
    result.pop("examples")
    if chief:
        cli.write_results(args, config, time.time() - start, **result)
    print(json.dumps(result["metrics"], indent=2))
    return result


if __name__ == "__main__":
    cli.entry(main)
