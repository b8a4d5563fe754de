"""Has a singular-value model learned more than the matrix's norm? (issue 24, hypothesis 3)

The sum of the squared singular values is ||A||_F^2, so the Frobenius norm alone predicts them up
to their shape: sigma_i ~ c_i ||A||_F, with c_i the mean of sigma_i / ||A||_F over the training law.
This prints, per size, that baseline's accuracy within 5% and median relative error (the verifiers'
d1) on the same seeded questions a model is tested on, and beside it each model's (``--models``):
a model level with the baseline has found the norm and nothing else.

    python benchmarks/singular_value_baseline.py --dims 2,3,4,5 --models /root/lf-runs/sv-2-5 --json > result.json
    python benchmarks/singular_value_baseline.py --from-json result.json   # the table of a saved result
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from linalgformer.problems.charton import ProblemConfig, make_problem

TEST_SEED = 12345
FIT_COUNT = 100_000  # questions the baseline's c_i are fitted on (a seed apart from the test's)


def norm_profile(dim: int, bound: float) -> np.ndarray:
    """c_i = mean of sigma_i / ||A||_F over uniform coefficients on +-bound."""
    a = np.random.default_rng([7, dim]).uniform(-bound, bound, (FIT_COUNT, dim, dim))
    sigma = np.linalg.svd(a, compute_uv=False)
    return (sigma / np.linalg.norm(a, axis=(1, 2))[:, None]).mean(axis=0)


def baseline_scores(dim: int, count: int, bound: float) -> dict[str, float]:
    problem = make_problem(ProblemConfig(name="singularvalues", dim=dim, encoding="continuous", bound=bound))
    examples = problem.sample(np.random.default_rng([TEST_SEED, dim]), count)
    profile = norm_profile(dim, bound)
    answers = [np.linalg.norm(x) * profile.reshape(t.shape) for x, t in zip(examples.inputs, examples.targets)]
    scores = problem.score_matrices(examples, answers)
    return {"acc@0.05": float(scores.correct[0.05].mean()), "median_d1": float(np.median(scores.d1))}


def model_scores(model: lf.Model, dim: int, count: int) -> dict[str, float]:
    result = model.evaluate(count, dims=[dim])
    return {"acc@0.05": float(result["tolerances"]["0.05"]), "median_d1": float(result["median_d1"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="2,3,4,5")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--bound", type=float, default=10.0)
    parser.add_argument("--models", nargs="*", default=[], help="singular-value run directories or bundled names")
    args = common.result_args(parser, print_table)
    if args is None:
        return
    dims = [int(d) for d in args.dims.split(",")]
    models = {name: lf.load(name) for name in args.models}
    rows = []
    for dim in dims:
        print(f"{dim}x{dim}", file=sys.stderr)
        row = {"dim": dim, "norm_baseline": baseline_scores(dim, args.count, args.bound)}
        row["models"] = {name: model_scores(m, dim, args.count) for name, m in models.items()}
        rows.append(row)
    common.emit({"count": args.count, "test_seed": TEST_SEED, "bound": args.bound, "rows": rows}, args.json, print_table)


def print_table(result: dict) -> None:
    rows = result["rows"]
    names = list(rows[0]["models"]) if rows else []
    print("| size | norm alone: acc 5% | median d1 | " + " | ".join(f"{n}: acc 5% | median d1" for n in names) + " |")
    print("|---|---|---|" + "---|---|" * len(names))
    for row in rows:
        cells = [f"{100 * row['norm_baseline']['acc@0.05']:.1f}%", f"{row['norm_baseline']['median_d1']:.3f}"]
        for n in names:
            cells += [f"{100 * row['models'][n]['acc@0.05']:.1f}%", f"{row['models'][n]['median_d1']:.3f}"]
        print(f"| {row['dim']}x{row['dim']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
