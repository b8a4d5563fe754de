"""Charton's nine problems at 5x5, our best model of each, on the paper's test law (issue 24).

For each problem, a bundled model or a run directory (``--rows PROBLEM=SOURCE[@VIEWS]``, defaults
below) is evaluated on ``--count`` seeded 5x5 questions of the paper's distribution (uniform
coefficients on +-10; Wigner matrices for the symmetric problems), within 5%, 2%, 1% and 0.5%, with
the minutes of the run that made it (its card's ``train_seconds``, or the run's last record) and
the run it started from (``train.init_from``), if any. A row may name K answer views
(``SOURCE@K``: ``evaluate --views K``); without one a model answers as it does by default (its
``model.answer_views`` and ``model.view_average``). A problem with no model says so. ``--json``:
rows as JSON.

    python benchmarks/nine_problems.py --count 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from linalgformer.tracking import read_metrics

TOLERANCES = ("0.05", "0.02", "0.01", "0.005")
DEFAULT_ROWS = ("transpose=transpose-2-8", "matrix_sum=sum-2-8@1", "matrix_sum=sum-2-8",
                "matrix_vector=matvec-5x5@8", "matrix_vector=matvec-2-8@1", "matrix_vector=matvec-2-8",
                "matrix_product=product-5x5@8", "matrix_product=product-2-8@1", "matrix_product=product-2-8",
                "eigenvalues=eigenvalues-5x5@8", "eigenvalues=eigenvalues-2-8@1", "eigenvalues=eigenvalues-2-8",
                "eigenvectors=eigenvectors-5x5@1", "eigenvectors=eigenvectors-5x5",
                "invert_matrix=invert-5x5-newton6", "invert_matrix=/root/lf-runs/inv-k0-verifier",
                "singularvalues=singularvalues-5x5", "singularvalues=singularvalues-2-8",
                "singularvectors=/root/lf-runs/svec-loop1")
PAPER_LAW = {"eigenvalues": "semicircle", "eigenvectors": "semicircle", "syminverse": "semicircle"}


def minutes(model: lf.Model) -> float | None:
    card = model.path / "card.json"
    if card.is_file():
        return json.loads(card.read_text()).get("train_seconds", 0) / 60
    records = [r for r in read_metrics(model.path) if "elapsed" in r]
    return records[-1]["elapsed"] / 60 if records else None


def row(problem: str, source: str, count: int) -> dict:
    if not source:
        return {"problem": problem, "source": None}
    name, _, views = source.partition("@")
    if "/" in name and not Path(name).exists():  # a run of another machine (the unlearned problems have no bundled model)
        return {"problem": problem, "source": name, "missing": True}
    model = lf.load(name)
    if model.problem != problem:
        raise SystemExit(f"{name} is a {model.problem} model, not {problem}")
    if views:
        model.views = int(views)
    law = PAPER_LAW.get(problem, "uniform")
    result = model.evaluate(count, dims=[5], distribution=law)
    return {"problem": problem, "source": name, "views": model.views,
            "average": model.view_average if model.views > 1 else None, "law": law, "count": result["count"],
            "median_d1": result["median_d1"], "minutes": minutes(model),
            "started_from": model.config.train.init_from or None,
            **{f"acc@{t}": result["tolerances"][t] for t in TOLERANCES}}


def print_table(rows: list[dict]) -> None:
    print("| problem | model | views | within 5% | 2% | 1% | 0.5% | median d1 | minutes (its run) | started from |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["source"] is None:
            print(f"| {r['problem']} | none | | | | | | | | |")
            continue
        if r.get("missing"):
            print(f"| {r['problem']} | {r['source']} (not on this machine) | | | | | | | | |")
            continue
        cells = " | ".join(f"{100 * r[f'acc@{t}']:.1f}%" for t in TOLERANCES)
        mins = "" if r["minutes"] is None else f"{r['minutes']:.1f}"
        views = f"{r['views']} {r['average']}" if r.get("average") else str(r["views"])
        print(f"| {r['problem']} | {r['source']} | {views} | {cells} | {r['median_d1']:.3g} | {mins} | "
              f"{r['started_from'] or ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="*", default=list(DEFAULT_ROWS), metavar="PROBLEM=SOURCE[@VIEWS]")
    parser.add_argument("--count", type=int, default=1000)
    args = common.result_args(parser, print_table)
    if args is None:
        return
    rows = []
    for spec in args.rows:
        problem, _, source = spec.partition("=")
        print(spec, file=sys.stderr)
        rows.append(row(problem, source, args.count))
    common.emit(rows, args.json, print_table)


if __name__ == "__main__":
    main()
