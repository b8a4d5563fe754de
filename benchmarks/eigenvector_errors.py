"""Where an eigenvector model's error lies: the verifier's two checks apart, and the directions.

The eigenvectors verifier scores [lambda; Q] by two relative L1 errors, of Q^T M Q - diag(lambda)
against diag(lambda) and of Q^T Q - I against I, and takes the larger. This prints, on seeded
questions of the model's own law and size, the median of each check, the median error of the
eigenvalue row alone, and how close each predicted vector's direction is to numpy's (|cos|, free
of sign): a model can point its vectors nearly right and still fail the 5% tolerance, because the
checks sum the error over every entry of an n x n matrix. The last columns score the same answers
with Q replaced by its nearest orthogonal matrix (the polar factor of its SVD), a classical step
outside the model: how far the error is Q's lack of orthogonality.

    python benchmarks/eigenvector_errors.py /root/lf-runs/eigvec-transfer2 --count 1000 --json
    python benchmarks/eigenvector_errors.py RUN --views 64 --average median   # the answers with views
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


def relative(error: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.abs(error).sum(axis=(1, 2)) / np.abs(scale).sum(axis=(1, 2))


def measure(name: str, count: int, views: int | None = None, average: str | None = None) -> dict:
    model = lf.load(name)
    if views is not None:
        model.views = views
    if average is not None:
        model.view_average = average
    experiment, problem = model.experiment, model.experiment.problem
    examples = problem.sample(np.random.default_rng(TEST_SEED), count)
    answers = np.stack(experiment.predict_values(model.module, problem, examples, torch.device("cpu")))
    m, targets = np.stack(examples.inputs), np.stack(examples.targets)
    values, vectors = answers[:, 0, :], answers[:, 1:, :]
    spectrum = values[:, :, None] * np.eye(values.shape[1])
    eye = np.broadcast_to(np.eye(vectors.shape[2]), vectors.shape)
    diagonal_check = relative(np.swapaxes(vectors, 1, 2) @ m @ vectors - spectrum, spectrum)
    orthogonal_check = relative(np.swapaxes(vectors, 1, 2) @ vectors - eye, eye)
    value_error = np.abs(values - targets[:, 0, :]).sum(1) / np.abs(targets[:, 0, :]).sum(1)
    cos = np.abs((vectors * targets[:, 1:, :]).sum(1)) / np.linalg.norm(vectors, axis=1).clip(1e-30)
    u, _, vt = np.linalg.svd(vectors)  # the nearest orthogonal matrix (polar factor): a classical step
    polar = u @ vt
    polar_check = np.maximum(relative(np.swapaxes(polar, 1, 2) @ m @ polar - spectrum, spectrum),
                             relative(np.swapaxes(polar, 1, 2) @ polar - eye, eye))
    return {"model": name, "count": count, "views": model.views,
            "average": model.view_average if model.views > 1 else None, "acc@0.05": float((np.maximum(diagonal_check, orthogonal_check) <= 0.05).mean()),
            "median_diagonal_check": float(np.median(diagonal_check)),
            "median_orthogonality_check": float(np.median(orthogonal_check)),
            "median_eigenvalue_error": float(np.median(value_error)),
            "median_abs_cos_by_vector": [float(c) for c in np.median(cos, axis=0)],
            "vectors_cos_above_0.99": float((cos > 0.99).mean()), "vectors_cos_above_0.999": float((cos > 0.999).mean()),
            "acc@0.05_polar": float((polar_check <= 0.05).mean()), "median_polar_check": float(np.median(polar_check))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="eigenvector run directories (continuous answers)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--views", type=int, default=None, help="answer views (default: the model's own)")
    parser.add_argument("--average", choices=["mean", "median"], default=None, help="how the views combine")
    args = common.result_args(parser, print_table)
    if args is None:
        return
    common.emit([measure(name, args.count, args.views, args.average) for name in args.models], args.json, print_table)


def print_table(rows: list) -> None:
    print("| model | views | within 5% | Q^T M Q check | Q^T Q check | eigenvalues | |cos| per vector | |cos| > 0.99 | > 0.999 "
          "| Q orthogonalised: within 5% | its median d1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cos = " ".join(f"{c:.4f}" for c in r["median_abs_cos_by_vector"])
        views = f"{r.get('views', 1)} {r['average']}" if r.get("average") else str(r.get("views", 1))
        print(f"| {r['model']} | {views} | {100 * r['acc@0.05']:.1f}% | {r['median_diagonal_check']:.3f} | "
              f"{r['median_orthogonality_check']:.3f} | {r['median_eigenvalue_error']:.4f} | {cos} | "
              f"{100 * r['vectors_cos_above_0.99']:.1f}% | {100 * r['vectors_cos_above_0.999']:.1f}% | "
              f"{100 * r['acc@0.05_polar']:.1f}% | {r['median_polar_check']:.3f} |")


if __name__ == "__main__":
    main()
