"""Is a model's training distribution closed under its answer views? Accuracy on a matrix family as
drawn, beside the same questions each under one random answer view (signed permutations of rows
and columns: a diagonal operand becomes a monomial matrix, a Toeplitz matrix loses its diagonals).

Answer views (``model.answer_views``) average a model's answers to such changed questions; where a
model answers a family but not its views, the views pull the average away (product-2-8's diagonal
8x8, RESULTS 9.12), and ``problem.train_views`` puts the views into training.

    python benchmarks/view_closure.py product-2-8 --distribution diagonal,triangular --dims 5,8
    python benchmarks/view_closure.py RUN --views 16 --json > result.json   # with the model's read-out
    python benchmarks/view_closure.py --from-json result.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

SEED = 12345  # the suite's test seed
VIEW_SEED = 777


def measure(name: str, distribution: str, dims: list[int], count: int, views: int) -> list[dict]:
    """One row per family and size: within 5% and median error, as drawn and under one view each."""
    model = lf.load(name)
    model.views = views
    experiment, rows = model.experiment, []
    for (family, dim), problem in experiment.test_problems(distribution, dims):
        print(f"{name}: {family} {dim}x{dim}", file=sys.stderr)
        examples = problem.sample(np.random.default_rng([SEED, dim]), count)
        viewed = problem.under_views(np.random.default_rng([VIEW_SEED, dim]), examples, 1.0)
        row = {"model": name, "family": family, "size": dim, "count": count, "views": views}
        for label, questions in (("drawn", examples), ("viewed", viewed)):
            answers = experiment.predict_matrices(model.module, list(questions.inputs))
            d1 = problem.score_matrices(questions, answers).d1
            row[f"{label}_acc@0.05"] = float(np.mean(d1 <= 0.05))
            row[f"{label}_median_d1"] = float(np.median(d1))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="bundled names or run directories (continuous answers)")
    parser.add_argument("--distribution", default="diagonal,triangular,banded,toeplitz",
                        help="comma-separated matrix families")
    parser.add_argument("--dims", default="5,8", help="comma-separated sizes")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--views", type=int, default=1, help="answer views of the read-out (1: the model alone)")
    args = common.result_args(parser, print_table)
    if args is None:
        return
    dims = [int(d) for d in args.dims.split(",")]
    rows = [row for name in args.models for row in measure(name, args.distribution, dims, args.count, args.views)]
    common.emit(rows, args.json, print_table)


def print_table(rows: list[dict]) -> None:
    print("| model | views | family | size | as drawn: within 5% | median d1 | under a view: within 5% | median d1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['views']} | {r['family']} | {r['size']}x{r['size']} | {r['drawn_acc@0.05']:.1%} "
              f"| {r['drawn_median_d1']:.3g} | {r['viewed_acc@0.05']:.1%} | {r['viewed_median_d1']:.3g} |")


if __name__ == "__main__":
    main()
