"""Precision against the number of answer views (``evaluate --views K``), for continuous models.

Each answer is the mean of the model's answers to K seeded views of the question (signed
permutations of its rows and columns, each answer taken back to the question's); K = 1 is the model
alone. For every model and K: accuracy within 5%, 2%, 1% and 0.5% and the median error on the same
seeded test set (``--count`` questions of size ``--dim``, the paper's uniform law by default).

    python benchmarks/answer_views.py eigenvalues-5x5 /root/lf-runs/eig5-anneal --views 1,2,4,8,16 --count 1000
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import linalgformer as lf

TOLERANCES = ("0.05", "0.02", "0.01", "0.005")


def measure(name: str, views: list[int], count: int, dim: int | None, distribution: str | None) -> list[dict]:
    model = lf.load(name)
    rows = []
    for k in views:
        print(f"{name}: {k} views", file=sys.stderr)
        model.views = k
        result = model.evaluate(count, dims=None if dim is None else [dim], distribution=distribution)
        rows.append({"model": name, "views": k, "count": result["count"], "median_d1": result["median_d1"],
                     **{f"acc@{t}": result["tolerances"][t] for t in TOLERANCES}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="bundled names or run directories (continuous answers)")
    parser.add_argument("--views", default="1,2,4,8,16")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=None, help="test size (default: the model's own)")
    parser.add_argument("--distribution", default=None, help="test law or family (default: the model's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for name in args.models
            for row in measure(name, [int(k) for k in args.views.split(",")], args.count, args.dim, args.distribution)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | views | within 5% | 2% | 1% | 0.5% | median d1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{100 * r[f'acc@{t}']:.1f}%" for t in TOLERANCES)
        print(f"| {r['model']} | {r['views']} | {cells} | {r['median_d1']:.4f} |")


if __name__ == "__main__":
    main()
