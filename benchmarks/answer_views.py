"""Precision against the number of answer views (``evaluate --views K``) or of refinement passes
(``evaluate --loops K``, a model trained with ``model.loops``), for continuous models.

Each answer is the mean of the model's answers to K seeded views of the question (signed
permutations of its rows and columns, each answer taken back to the question's); K = 1 is the model
alone. For every model and K: accuracy within 5%, 2%, 1% and 0.5% and the median error on the same
seeded test set (``--count`` questions of size ``--dim``, the paper's uniform law by default).

    python benchmarks/answer_views.py eigenvalues-5x5 /root/lf-runs/eig5-anneal --views 1,2,4,8,16 --count 1000
    python benchmarks/answer_views.py /root/lf-runs/eig5-loop2 --loops 0,1,2,3,4,8 --count 1000 --json
    python benchmarks/answer_views.py RUN --views 1,16,64 --average mean,median   # both ways to combine views
    python benchmarks/answer_views.py --from-json result.json   # the table of a saved result

With ``--loops`` each model answers with K refinement passes after its first answer (K = 0: the
first answer alone); a model trained without loops gives its one row, K = 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

TOLERANCES = ("0.05", "0.02", "0.01", "0.005")


def measure(name: str, sweep: str, values: list[int], count: int, dim: int | None,
            distribution: str | None, averages: tuple[str, ...] = ("mean",)) -> list[dict]:
    """One row per value of ``sweep`` (views or loops) that the model can run; with views, one per
    way of combining them too (``averages``: mean, median) where K > 1."""
    model = lf.load(name)
    if sweep == "loops" and model.loops == 0:
        values = [0]  # trained without refinement passes: the first answer is all it has
    rows = []
    for k in values:
        for average in (averages if sweep == "views" and k > 1 else averages[:1]):
            print(f"{name}: {sweep} {k} {average if sweep == 'views' else ''}", file=sys.stderr)
            if sweep == "views":
                model.views, model.view_average = k, average
            elif model.loops or k:
                model.loops = k
            result = model.evaluate(count, dims=None if dim is None else [dim], distribution=distribution)
            rows.append({"model": name, sweep: k, "count": result["count"], "median_d1": result["median_d1"],
                         **({"average": average} if sweep == "views" else {}),
                         **{f"acc@{t}": result["tolerances"][t] for t in TOLERANCES}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="bundled names or run directories (continuous answers)")
    sweep = parser.add_mutually_exclusive_group()
    sweep.add_argument("--views", default=None, help="comma-separated K (default 1,2,4,8,16)")
    sweep.add_argument("--loops", default=None, help="comma-separated K: refinement passes instead of views")
    parser.add_argument("--average", default="mean",
                        help="with --views: comma-separated ways to combine the views (mean, median)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=None, help="test size (default: the model's own)")
    parser.add_argument("--distribution", default=None, help="test law or family (default: the model's)")
    args = common.result_args(parser, print_table)
    if args is None:
        return
    sweep, values = ("loops", args.loops) if args.loops is not None else ("views", args.views or "1,2,4,8,16")
    averages = tuple(args.average.split(","))
    rows = [row for name in args.models
            for row in measure(name, sweep, [int(k) for k in values.split(",")], args.count, args.dim,
                               args.distribution, averages)]
    common.emit(rows, args.json, print_table)


def print_table(rows: list[dict]) -> None:
    sweep = "loops" if rows and "loops" in rows[0] else "views"
    print(f"| model | {sweep} | within 5% | 2% | 1% | 0.5% | median d1 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{100 * r[f'acc@{t}']:.1f}%" for t in TOLERANCES)
        how = f" {r['average']}" if r.get("average") and r[sweep] > 1 else ""
        print(f"| {r['model']} | {r[sweep]}{how} | {cells} | {r['median_d1']:.4f} |")


if __name__ == "__main__":
    main()
