"""What a learned first guess of A^-1 is worth in Newton-Schulz steps (issue 24, hypothesis 4).

For a continuous inversion model (``invert_matrix``, numbers by value on both sides), the same
seeded test questions are answered three ways, each followed by k Newton-Schulz steps
X <- X (2I - A X) (``models/newton_refinement.py``) for every k of ``--steps``:

* ``learned``: the model's read-out, then k steps (a model trained with ``model.newton_steps`` k0
  is asked with k steps instead: the same weights, a different k);
* ``classical``: the iteration's classical start A^T / (||A||_1 ||A||_inf), then k steps;
* (k = 0 of ``learned`` is the learned-only model, the one issue 24's must-show counts.)

Printed: accuracy within 5% and 1% and the median error for each k, and the steps saved: for each
k, how many more steps the classical start needs to be as accurate at 5%. ``--json``: the table as
JSON on stdout (progress on stderr).

    python benchmarks/newton_hybrid.py /root/lf-runs/inv5-newton6 --steps 0,1,2,3,4,6,8,12,16,24 --count 1000 --json > r.json
    python benchmarks/newton_hybrid.py --from-json r.json   # the table of a saved result
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from linalgformer.experiments.charton import source_batches
from linalgformer.models.newton_refinement import classical_start, newton_schulz, question_units, unframed
from linalgformer.models.number_units import answer_tensors, from_units
from linalgformer.problems.charton.matrix_problem import subset

TEST_SEED = 12345


def learned_answers(model: lf.Model, problem, examples, steps: int) -> list[np.ndarray]:
    mode = model.experiment.answer_mode
    before, mode.newton_steps = mode.newton_steps, steps
    try:
        return mode.predict(model.module, problem, examples, model.device)
    finally:
        mode.newton_steps = before


def classical_answers(problem, examples, steps: int) -> list[np.ndarray]:
    src, _ = problem.encode(examples)
    out: list[np.ndarray] = []
    for rows, _, _, values in source_batches(src, np.arange(len(examples)), torch.device("cpu")):
        part = subset(examples, rows)
        shapes = answer_tensors(problem, part)["out_shape"]
        sides = shapes[:, 0].long()
        size = int(sides.max())
        a = question_units(values, sides, size, torch.float64)
        z = newton_schulz(classical_start(a), a, steps)
        out.extend(from_units(problem, part, unframed(z, sides, size * size).numpy()))
    return out


def score(problem, examples, answers) -> dict[str, float]:
    scores = problem.score_matrices(examples, answers)
    return {"acc@0.05": float(np.mean(scores.correct[0.05])), "acc@0.01": float(np.mean(scores.correct[0.01])),
            "median_d1": float(np.median(scores.d1))}


def table(model: lf.Model, steps: list[int], count: int, dim: int) -> dict:
    experiment = model.experiment
    (_, problem), = [(key, p) for key, p in experiment.test_problems(None, [dim])]
    examples = problem.sample(np.random.default_rng([TEST_SEED, dim]), count)
    rows = []
    for k in steps:
        print(f"k = {k}", file=sys.stderr)
        rows.append({"steps": k, "learned": score(problem, examples, learned_answers(model, problem, examples, k)),
                     "classical": score(problem, examples, classical_answers(problem, examples, k))})
    for row in rows:
        reached = [r["steps"] for r in rows if r["classical"]["acc@0.05"] >= row["learned"]["acc@0.05"]]
        row["classical_steps_for_same_acc"] = min(reached) if reached else None
    return {"model": str(model.path), "dim": dim, "count": count, "test_seed": TEST_SEED,
            "trained_newton_steps": model.config.model.newton_steps, "rows": rows}


def print_table(result: dict) -> None:
    print(f"{result['dim']}x{result['dim']} inversion, {result['count']} questions (seed {result['test_seed']}); "
          f"model {result['model']} (model.newton_steps {result['trained_newton_steps']}: as trained, or as "
          f"set when bundled)")
    print("| k steps | learned guess: acc 5% | acc 1% | median d1 | classical start: acc 5% | acc 1% | median d1 "
          "| classical steps for the learned accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for row in result["rows"]:
        ours, theirs = row["learned"], row["classical"]
        need = row["classical_steps_for_same_acc"]
        print(f"| {row['steps']} | {100 * ours['acc@0.05']:.1f}% | {100 * ours['acc@0.01']:.1f}% | "
              f"{ours['median_d1']:.3g} | {100 * theirs['acc@0.05']:.1f}% | "
              f"{100 * theirs['acc@0.01']:.1f}% | {theirs['median_d1']:.3g} | "
              f"{'more than the largest k' if need is None else need} |")


def print_comparison(results: list[dict]) -> None:
    """Saved results side by side, one row per model: within 5% (median d1) of its guess after each
    k steps (the k of the first result's grid)."""
    steps = [row["steps"] for row in results[0]["rows"]]
    print(f"{results[0]['dim']}x{results[0]['dim']} inversion, {results[0]['count']} questions (seed "
          f"{results[0]['test_seed']}): within 5% (median d1) after k Newton-Schulz steps from the learned guess")
    print("| model | model.newton_steps | " + " | ".join(f"k = {k}" for k in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for result in results:
        cells = {row["steps"]: row["learned"] for row in result["rows"]}
        shown = [f"{100 * cells[k]['acc@0.05']:.1f}% ({cells[k]['median_d1']:.3g})" if k in cells else "-" for k in steps]
        print(f"| {result['model']} | {result['trained_newton_steps']} | " + " | ".join(shown) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="a continuous invert_matrix run directory or bundled name")
    parser.add_argument("--compare", nargs="+", type=Path, metavar="FILE",
                        help="print saved results (--json) side by side, one row per model")
    parser.add_argument("--steps", default="0,1,2,3,4,6,8,12,16", help="comma-separated k")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=5)
    args = common.result_args(parser, print_table)
    if args is None:
        return
    if args.compare:
        print_comparison([json.loads(path.read_text()) for path in args.compare])
        return
    if args.run is None:
        parser.error("RUN is needed (or --from-json FILE)")
    model = lf.load(args.run)
    common.emit(table(model, [int(k) for k in args.steps.split(",")], args.count, args.dim), args.json, print_table)


if __name__ == "__main__":
    main()
