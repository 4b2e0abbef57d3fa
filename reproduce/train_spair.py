"""Train SPAIR from a config file and overrides; the run directory keeps everything needed to resume,
inspect (TensorBoard) and serve (SavedModel) the model.

    python reproduce/train_spair.py --run-dir runs/spair                       # quick mode (CPU, ~13 min)
    python reproduce/train_spair.py --mode full --run-dir runs/spair_full      # the paper's settings (GPU)
    python reproduce/train_spair.py --set model.count_prior_decay_steps=2000 --set steps=8000 --run-dir runs/x

Running the same command again after an interruption resumes from the last completed evaluation period.
Writes <run-dir>/config.json (resolved config and command), results.json (test metrics), tensorboard/,
best.weights.h5 and saved_model/.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from tfobj import experiment  # noqa: E402
from tfobj.config import load_config, to_dict  # noqa: E402


def main(argv=None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--config", default=str(ROOT / "configs" / "spair.toml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args(argv)
    config = load_config(experiment.SPAIRExperiment, args.config, mode=args.mode, overrides=args.overrides)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join([Path(sys.executable).name] + sys.argv), "mode": args.mode,
              "config": to_dict(config)}
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))
    result = experiment.run_spair(config, run_dir=str(run_dir))
    result.pop("examples")
    (run_dir / "results.json").write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result["metrics"], indent=2))
    return result


if __name__ == "__main__":
    main()
