"""Where a singular-vector model's error lies: singular values, and each vector's length and direction.

The singularvectors verifier scores [sigma; U; V] by U^T A V - diag(sigma) and the orthogonality of U
and V. This prints, on seeded questions of the model's own law and size, the median relative error
of the singular values, and for each pair (u_j, v_j) the mean length of the predicted vectors and
their mean |cos| with numpy's (free of sign): a model that cannot tell the relative sign of u_j and
v_j may write v_j near 0 (the mean of +v_j and -v_j), which shows as a length near 0.

    python benchmarks/singular_vector_errors.py /root/lf-runs/svec-5x5 --count 500 --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

TEST_SEED = 12345


def measure(name: str, count: int) -> dict:
    model = lf.load(name)
    experiment, problem = model.experiment, model.experiment.problem
    if problem.name != "singularvectors":
        raise SystemExit(f"{name} is a {problem.name} model, not singularvectors")
    examples = problem.sample(np.random.default_rng(TEST_SEED), count)
    answers = np.stack(experiment.predict_values(model.module, problem, examples, torch.device("cpu")))
    targets = np.stack(examples.targets)
    rows = np.stack(examples.inputs).shape[1]

    def parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return x[:, 0, :], x[:, 1:1 + rows], x[:, 1 + rows:]

    (values, left, right), (true_values, true_left, true_right) = parts(answers), parts(targets)

    def cosines(got: np.ndarray, want: np.ndarray) -> list[float]:
        cos = np.abs((got * want).sum(1)) / np.linalg.norm(got, axis=1).clip(1e-30)
        return [float(c) for c in cos.mean(0)]

    value_error = np.abs(values - true_values).sum(1) / np.abs(true_values).sum(1)
    return {"model": name, "count": count, "median_value_error": float(np.median(value_error)),
            "u_length": [float(v) for v in np.linalg.norm(left, axis=1).mean(0)],
            "v_length": [float(v) for v in np.linalg.norm(right, axis=1).mean(0)],
            "u_abs_cos": cosines(left, true_left), "v_abs_cos": cosines(right, true_right)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="singular-vector run directories (continuous answers)")
    parser.add_argument("--count", type=int, default=500)
    args = common.result_args(parser, print_table)
    if args is None:
        return
    common.emit([measure(name, args.count) for name in args.models], args.json, print_table)


def print_table(rows: list) -> None:
    print("| model | singular values: median error | u_j length | v_j length | u_j mean abs cos | v_j mean abs cos |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [" ".join(f"{x:.3f}" for x in r[key]) for key in ("u_length", "v_length", "u_abs_cos", "v_abs_cos")]
        print(f"| {r['model']} | {r['median_value_error']:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
