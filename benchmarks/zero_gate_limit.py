"""Are a gated model's failures on sparse and integer matrices the gate zeroing entries that are not 0? (issue 23)

``model.zero_gate`` reads out, beside each answer entry, the logit that the entry is exactly 0,
and writes an exact 0 wherever it says so. An entry the gate wrongly zeroes is off by its whole
value, and one such entry of 64 can put an 8x8 answer past 5%. ``model.zero_gate_limit`` lets the
gate zero an entry only where the number read out agrees (lies within the limit, in the answer's
units, of 0). This scores each model on the same seeded questions per family and size with each
limit (0: the gate alone, as before the limit existed), and, with the gate alone, says which share
of the error of the failed answers lies on entries the gate zeroed though their answer is not 0.

    python benchmarks/zero_gate_limit.py transpose-2-8 sum-2-8 --families sparse,integers --dims 6,8 --json
    python benchmarks/zero_gate_limit.py --from-json result.json   # the table of a saved result
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common


def relative_l1(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|P - T|_1 / |T|_1 per answer (the tolerance the verifiers of these problems check)."""
    axes = tuple(range(1, target.ndim))
    return np.abs(predicted - target).sum(axes) / np.maximum(np.abs(target).sum(axes), 1e-300)


def cell(model: lf.Model, family: str, dim: int, count: int, limits: list[float]) -> dict:
    data = lf.generate(model.problem, dim=dim, count=count, encoding="continuous", seed=12345, distribution=family)
    target = np.asarray(data.targets, dtype=float)
    answers = {}
    for limit in limits:
        model.zero_gate_limit = limit
        answers[limit] = np.asarray(model.predict(data.inputs), dtype=float).reshape(target.shape)
    alone = answers[0.0] if 0.0 in answers else None
    row = {"family": family, "dim": dim,
           "acc@0.05": {str(limit): float((relative_l1(a, target) <= 0.05).mean()) for limit, a in answers.items()}}
    if alone is not None:
        failed = relative_l1(alone, target) > 0.05
        error = np.abs(alone - target)[failed]
        wrong_zero = ((alone == 0) & (target != 0))[failed]
        row["failed_alone"] = int(failed.sum())
        row["error_share_on_wrong_zeros"] = float(error[wrong_zero].sum() / error.sum()) if failed.any() else None
        row["wrong_zeros_per_failed_answer"] = float(wrong_zero.sum() / failed.sum()) if failed.any() else None
    return row


def measure(name: str, families: list[str], dims: list[int], count: int, limits: list[float]) -> list[dict]:
    model = lf.load(name)
    shipped = model.zero_gate_limit
    rows = []
    for family in families:
        for dim in dims:
            print(f"{name}: {family} {dim}x{dim}", file=sys.stderr)
            rows.append({"model": name, "shipped_limit": shipped, **cell(model, family, dim, count, limits)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="run directories or bundled names of models with a zero gate")
    parser.add_argument("--families", default="uniform,integers,sparse,sparse_integers,diagonal")
    parser.add_argument("--dims", default="6,8")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--limits", default="0,0.02,0.05,0.1,0.2", help="limits to score (0: the gate alone)")
    args = common.result_args(parser, print_table)
    if args is None:
        return
    dims = [int(d) for d in args.dims.split(",")]
    limits = [float(x) for x in args.limits.split(",")]
    rows = [row for name in args.models for row in measure(name, args.families.split(","), dims, args.count, limits)]
    common.emit({"count": args.count, "limits": limits, "rows": rows}, args.json, print_table)


def print_table(result: dict) -> None:
    limits = [str(limit) for limit in result["limits"]]
    print(f"within 5%, {result['count']} questions per cell, by zero-gate limit (0: the gate alone); "
          "share of the failed answers' error on entries wrongly zeroed by the gate alone")
    print("| model | family | size | " + " | ".join(f"limit {x}" for x in limits) + " | error on wrong zeros |")
    print("|---|---|---|" + "---:|" * (len(limits) + 1))
    for row in result["rows"]:
        share = row.get("error_share_on_wrong_zeros")
        shown = "-" if share is None else f"{100 * share:.0f}% ({row['wrong_zeros_per_failed_answer']:.1f} per failure)"
        accuracies = " | ".join(f"{100 * row['acc@0.05'][x]:.1f}%" for x in limits)
        print(f"| {row['model']} | {row['family']} | {row['dim']}x{row['dim']} | {accuracies} | {shown} |")


if __name__ == "__main__":
    main()
