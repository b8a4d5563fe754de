"""Is a bilinear model's failure on the ``scaled`` family the ratio of its operands' scales? (issue 23)

M^T v and A^T B are linear in each operand apart, and the matrix families draw each operand on its
own (``MatrixProblem.draw``): in ``scaled`` M and v each get a scale from 0.01 to 1000, so one may
lie five decades below the other. A model reading the whole input in units of max|input| sees the
smaller operand as nearly zero. ``model.operand_units`` divides each operand by its own largest
entry instead and multiplies the answer back. This scores each model on the same seeded questions
per family and size twice: as trained, and with operand units switched the other way at inference
(no retraining), so that a model trained without them shows what they are worth before training.

    python benchmarks/operand_units.py /root/lf-runs/matvec-2-8-zg2 --families uniform,scaled,decades --dims 3,5,8 --json
    python benchmarks/operand_units.py --from-json result.json   # the table of a saved result
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


import linalgformer as lf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common


def with_operand_units(model: lf.Model, on: bool) -> None:
    """Switch ``model.operand_units`` of a loaded model (its answer mode reads it at each answer)."""
    experiment = model.experiment
    experiment.config = dataclasses.replace(experiment.config,
                                            model=dataclasses.replace(experiment.config.model, operand_units=on))


def measure(name: str, families: list[str], dims: list[int], count: int) -> list[dict]:
    model = lf.load(name)
    trained = bool(model.experiment.config.model.operand_units)
    rows = []
    for on in (trained, not trained):
        with_operand_units(model, on)
        for family in families:
            print(f"{name}: {family}, operand units {'on' if on else 'off'}", file=sys.stderr)
            result = model.evaluate(count, distribution=family, dims=dims)
            by_dim = {int(size): cell for size, cell in result["by_dim"].items()}
            for dim in dims:
                cell = by_dim[dim] if len(dims) > 1 else result
                rows.append({"model": name, "trained_with": trained, "operand_units": on, "family": family,
                             "dim": dim, "acc@0.05": cell["tolerances"]["0.05"], "median_d1": cell["median_d1"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="run directories or bundled names (continuous M^T v or A^T B)")
    parser.add_argument("--families", default="uniform,scaled,decades,integers")
    parser.add_argument("--dims", default="3,5,8")
    parser.add_argument("--count", type=int, default=500)
    args = common.result_args(parser, print_table)
    if args is None:
        return
    dims = [int(d) for d in args.dims.split(",")]
    rows = [row for name in args.models for row in measure(name, args.families.split(","), dims, args.count)]
    common.emit({"count": args.count, "rows": rows}, args.json, print_table)


def print_table(result: dict) -> None:
    print(f"within 5%, {result['count']} questions per cell: as trained | operand units switched at inference")
    print("| model | family | size | as trained | switched |")
    print("|---|---|---|---|---|")
    cells: dict[tuple, dict] = {}
    for row in result["rows"]:
        switched = row["operand_units"] != row["trained_with"]
        cells.setdefault((row["model"], row["family"], row["dim"]), {})[switched] = row
    for (name, family, dim), pair in cells.items():
        shown = [f"{100 * pair[s]['acc@0.05']:.1f}%" if s in pair else "-" for s in (False, True)]
        print(f"| {name} | {family} | {dim}x{dim} | {shown[0]} | {shown[1]} |")


if __name__ == "__main__":
    main()
