"""Ship a trained run inside the package: `python scripts/bundle_model.py RUN_DIR NAME [--count K]`.

Copies the weights, config and manifest (not the optimizer state) to src/linalgformer/bundled/NAME/
and writes card.json with the accuracy measured here by `evaluate` on a fresh seeded test set."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

from linalgformer import checkpoint as ckpt
from linalgformer.bundled import BUNDLED_DIR
from linalgformer.evaluate import evaluation_json
from linalgformer.tracking import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--trained-with", default="", help="the command that trained the run (for the card)")
    args = parser.parse_args()
    config, experiment, model = ckpt.load_run(args.run_dir)
    metrics = evaluation_json(experiment.evaluate(model, args.count, 12345, "cpu"))
    primary = getattr(experiment, "primary_metric", "")
    final = [r for r in read_metrics(args.run_dir) if r.get("kind") == "final"]
    target = BUNDLED_DIR / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.MANIFEST):
        shutil.copy2(args.run_dir / name, target / name)
    problem = getattr(config.problem, "name", None) or getattr(config.problem, "task", config.family)
    card = {"name": args.name, "family": config.family, "problem": problem,
            "description": experiment.problem.describe() if hasattr(experiment, "problem") else "",
            "accuracy": metrics.get("accuracy"), "exact": metrics.get("exact"), "invalid": metrics.get("invalid"),
            "primary_metric": primary, "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
            "test_count": args.count, "test_seed": 12345,
            "examples_seen": final[-1]["examples"] if final else None,
            "train_seconds": final[-1]["elapsed"] if final else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "measured_on": f"{platform.machine()} CPU, {time.strftime('%Y-%m-%d')}",
            "command": f"python scripts/bundle_model.py {args.run_dir} {args.name} --count {args.count}"}
    if args.trained_with:
        card["trained_with"] = args.trained_with
    (target / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
