"""Few-shot retraining to larger matrices (Charton's last claim), at CPU scale, by value.

The bundled ``eigenvalues-5x5`` model (numbers by value, trained on 5x5 Wigner matrices only) is
retrained on 6x6 to 8x8 matrices for ``--steps`` steps of 64 examples; the same model trained from
scratch on the same examples (same seed, same steps) is the control. Both are then tested at 5x5
to 8x8 (``--count`` seeded examples per size) beside the 5x5 model as shipped.

    python benchmarks/few_shot_retrain.py --steps 800 --out /root/lf-runs/fewshot --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import linalgformer as lf
from linalgformer.bundled import bundled_models

SIZES = [5, 6, 7, 8]


def recipe(steps: int, init_from: str) -> lf.api.RunConfig:
    overrides = {"problem.dim": 8, "problem.min_dim": 6, "problem.max_dim": 8, "train.max_steps": steps,
                 "train.max_minutes": 0, "train.target_metric": 0, "train.warmup_steps": min(100, steps // 4),
                 "train.eval_every": max(steps // 4, 1), "train.checkpoint_every": steps, "train.threads": 1,
                 "train.init_from": init_from}
    return lf.preset("eigenvalues-5x5-continuous", overrides=overrides)


def measured(model: lf.Model, count: int) -> dict[str, dict[str, float]]:
    by_dim = model.evaluate(count, dims=SIZES)["by_dim"]
    return {d: {"acc@0.05": v["tolerances"]["0.05"], "acc@0.01": v["tolerances"]["0.01"],
                "median_d1": v["median_d1"]} for d, v in by_dim.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800, help="training steps of 64 examples, each run")
    parser.add_argument("--count", type=int, default=500, help="test examples per size")
    parser.add_argument("--out", type=Path, default=Path("runs/fewshot"))
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument("--from-json", type=Path, default=None, metavar="FILE",
                        help="print the Markdown table of a saved --json result (no training)")
    args = parser.parse_args()
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        print_table(saved["rows"], saved["count"])
        return
    base = bundled_models()["eigenvalues-5x5"]
    rows = {"5x5 model as shipped (no 6-8 examples)": measured(lf.load("eigenvalues-5x5", device="cpu"), args.count)}
    for label, init in (("retrained from the 5x5 model", str(base)), ("from scratch", "")):
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's evaluation lines: stdout stays pure JSON
            model = lf.train(recipe(args.steps, init), args.out / ("retrain" if init else "scratch"), progress=False)
        rows[f"{label}, {args.steps * 64:,} examples of 6-8"] = measured(model, args.count)
        print(f"done: {label}", file=sys.stderr)
    if args.json:
        print(json.dumps({"steps": args.steps, "examples": args.steps * 64, "count": args.count, "rows": rows}, indent=2))
        return
    print_table(rows, args.count)


def print_table(rows: dict, count: int) -> None:
    print(f"eigenvalues by value, % within 5% (median d1), {count} test matrices per size")
    print("| model | " + " | ".join(f"{d}x{d}" for d in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for label, cells in rows.items():
        print(f"| {label} | " + " | ".join(f"{100 * cells[str(d)]['acc@0.05']:.1f} ({cells[str(d)]['median_d1']:.3f})"
                                           for d in SIZES) + " |")


if __name__ == "__main__":
    main()
