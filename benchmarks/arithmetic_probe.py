"""The arithmetic alone: the sum (or product) of two 1x1 "matrices", by how numbers are represented.

At 1x1 there is nothing to route (two numbers in, one out), so how fast a model learns the sum
measures how well it sees the *numbers*; at 5x5 the same arithmetic is needed 25 times per example.
Each variant trains the `small-sum-3x3` preset's model (1+1 layers x 128, P1000 unless said) at
size 1 for the same number of minutes on one CPU thread, evaluated every 100 steps on the fixed,
seeded 500-example validation set. The table gives accuracy at 5% after equal numbers of examples
(the fair comparison when the machine is shared) and the examples to first reach 30%, 50% and 90%.

``--probe product`` asks for the product instead: ``matrix_vector`` at size 1 ([m|v] -> m v), with
the `matrix-vector-5x5` preset's cpu recipe (2+1 layers x 128, matrix positions, value features,
structural bias) and each kind of FFN. The sign of m v is the XOR of the two signs: no linear
function of either input predicts it, which a ReLU layer learns slowly and a gated FFN (a product
of two projections) reads out directly.

    python benchmarks/arithmetic_probe.py --minutes 3 --runs runs/probe
    python benchmarks/arithmetic_probe.py --probe product --minutes 4 --runs runs/probe-product
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from linalgformer.config import load_yaml
from linalgformer.reproduce.presets import PRESET_DIR, scale_overrides
from linalgformer.tracking import read_metrics

VARIANTS = {  # name -> --set overrides on top of the common ones
    "P1000, sinusoidal positions": {},
    "P1000, matrix positions": {"model.positions": "matrix"},
    "P1000, matrix positions + value features": {"model.positions": "matrix", "model.value_features": True},
    "P1000, matrix + values + shared embeddings": {"model.positions": "matrix", "model.value_features": True,
                                                    "model.share_embeddings": True},
    "P10, matrix positions": {"model.positions": "matrix", "problem.encoding": "P10"},
    "P10, matrix positions + value features": {"model.positions": "matrix", "model.value_features": True,
                                               "problem.encoding": "P10"},
}
PRODUCT_VARIANTS = {  # the product probe: the FFN of the matrix-vector cpu recipe
    "ReLU FFN (paper)": {"model.ffn": "relu"},
    "SwiGLU FFN": {"model.ffn": "swiglu"},
    "bilinear FFN": {"model.ffn": "bilinear"},
}
CHECKPOINTS = (32_000, 64_000, 96_000)
PROBES = {"sum": ("small-sum-3x3", VARIANTS), "product": ("matrix-vector-5x5", PRODUCT_VARIANTS)}


def command(name: str, overrides: dict, args) -> list[str]:
    preset, _ = PROBES[args.probe]
    base = {}
    if args.probe == "product":  # the preset's cpu recipe, stopped at 95%
        base = scale_overrides(preset, load_yaml(PRESET_DIR / f"{preset}.yaml").get("reproduce") or {}, "cpu")
        base["train.target_metric"] = 0.95
    common = {"problem.dim": 1, "train.threads": 1, "train.max_minutes": args.minutes, "train.eval_every": 100,
              "train.log_every": 50, "train.checkpoint_every": 1000, "train.target_metric": 0.995,
              "train.max_steps": 100000}
    budget = {"train.max_minutes": args.minutes}  # the cpu recipe's own hour does not apply here
    sets = [a for k, v in {**common, **base, **budget, **overrides}.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    return [sys.executable, "-m", "linalgformer", "train", "--config", f"configs/{preset}.yaml",
            "--out", str(run_dir(name, args)), "--quiet", *sets]


def run_dir(name: str, args) -> Path:
    return Path(args.runs) / name.replace(", ", "-").replace(" + ", "+").replace(" ", "_")


def row(name: str, args) -> str:
    evals = [r for r in read_metrics(run_dir(name, args)) if r.get("kind") == "eval"]
    at = [next((f"{r['acc@0.05']:.1%}" for r in evals if r["examples"] >= n), "-") for n in CHECKPOINTS]
    first = [next((f"{r['examples']:,}" for r in evals if r["acc@0.05"] >= level), "-") for level in (0.3, 0.5, 0.9)]
    return f"| {name} | " + " | ".join(at + first) + f" | {evals[-1]['examples']:,} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--runs", default="runs/probe")
    parser.add_argument("--probe", choices=sorted(PROBES), default="sum", help="the sum or the product of two numbers")
    parser.add_argument("--table-only", action="store_true", help="read the runs already there, train nothing")
    args = parser.parse_args()
    variants = PROBES[args.probe][1]
    for name, overrides in variants.items():
        if not args.table_only:
            print(f"training {name}", file=sys.stderr, flush=True)
            subprocess.run(command(name, overrides, args), check=True, stdout=subprocess.DEVNULL)
    print("| variant | " + " | ".join(f"acc 5% at {n // 1000}k" for n in CHECKPOINTS)
          + " | examples to 30% | to 50% | to 90% | examples in all |")
    print("|---" * (len(CHECKPOINTS) + 5) + "|")
    for name in variants:
        print(row(name, args))


if __name__ == "__main__":
    main()
