"""Robustness suites: a model's accuracy on every family of matrices a user may have, at every size.

``evaluate MODEL --suite NAME`` (and ``lf.Model.suite``) draws ``count`` seeded examples per
family and size and scores them with the problem's verifier; the first row is the paper's own
test distribution (uniform coefficients; Wigner matrices for symmetric problems). Suites:

* ``families``: every family of ``matrix_families`` that applies to the problem (symmetric
  problems: also the seven eigenvalue laws);
* ``laws``: Charton's seven eigenvalue laws (symmetric problems only): the out-of-distribution grid;
* ``structured``: the families alone, without the eigenvalue laws.

A family whose matrices the problem cannot use (a singular one for inversion) is left out of
that problem's suites; a cell whose examples cannot be drawn (the encoding cannot write them)
reads None with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from linalgformer import matrices, matrix_families
from linalgformer.errors import UserError
from linalgformer.tables import render_table

SUITES = ("families", "laws", "structured")
TOLERANCE_KEY = "acc@0.05"
Score = Callable[[str, list[int]], dict[str, Any]]  # (family, sizes) -> metrics with "by_dim"


@dataclass
class SuiteResult:
    """Accuracy per family (rows, the paper's first) and size (columns)."""

    suite: str
    problem: str
    dims: list[int]
    count: int
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # family -> {"all": stats, "by_dim": {..}}
    errors: dict[str, str] = field(default_factory=dict)  # family -> why it has no numbers

    def as_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "problem": self.problem, "dims": self.dims, "count_per_cell": self.count,
                "order": list(self.rows), "families": self.rows, "errors": self.errors, "worst": self.worst()}

    def accuracy(self, family: str, dim: int | None = None, key: str = TOLERANCE_KEY) -> float | None:
        row = self.rows.get(family)
        if row is None:
            return None
        stats = row["all"] if dim is None else row["by_dim"].get(str(dim))
        return None if stats is None else stats.get(key)

    def worst(self, key: str = TOLERANCE_KEY) -> dict[str, Any] | None:
        """The family and size of the lowest accuracy (None when no cell has numbers)."""
        cells = [(stats.get(key), family, dim) for family, row in self.rows.items()
                 for dim, stats in row["by_dim"].items()]
        cells = [c for c in cells if c[0] is not None]
        if not cells:
            return None
        value, family, dim = min(cells)
        return {"family": family, "dim": int(dim), key: value}

    def table(self, key: str = TOLERANCE_KEY) -> str:
        header = ["family"] + [f"{d}x{d}" for d in self.dims] + ["all"]
        body = [[family] + [percent(self.accuracy(family, d, key)) for d in self.dims]
                + [percent(self.accuracy(family, None, key))] for family in self.rows]
        body += [[family, f"n/a: {why}"] + [""] * len(self.dims) for family, why in self.errors.items()]
        title = (f"{self.problem}: accuracy within {key.split('@')[1]} (%), {self.count} examples per cell, "
                 f"suite {self.suite}")
        return title + "\n" + render_table(header, body)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def suite_families(name: str, symmetric: bool, excluded: tuple[str, ...] = ()) -> list[str]:
    """The paper's distribution first, then the suite's families for a (symmetric) problem."""
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r} (known: {', '.join(SUITES)}).")
    paper = matrix_families.PAPER_SYMMETRIC if symmetric else matrix_families.PAPER_GENERAL
    if name == "laws":
        if not symmetric:
            raise UserError("the laws suite is for symmetric problems (eigenvalue laws); use --suite families.")
        chosen = list(matrices.LAWS)
    else:
        chosen = list(matrix_families.families(symmetric))
        if name == "structured":
            chosen = [f for f in chosen if f not in matrices.LAWS and f not in matrices.COEFFICIENT_LAWS]
    rest = [f for f in chosen if f != paper and f not in excluded]
    return [paper] + rest if name != "structured" else rest


def run_suite(score: Score, name: str, problem: str, symmetric: bool, dims: list[int], count: int,
              excluded: tuple[str, ...] = (), progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Score every family of suite ``name`` at every size of ``dims`` with ``score``."""
    result = SuiteResult(suite=name, problem=problem, dims=list(dims), count=count)
    for family in suite_families(name, symmetric, excluded):
        if progress is not None:
            progress(family)
        try:
            metrics = score(family, list(dims))
        except UserError as err:  # e.g. no example of this family fits the encoding
            result.errors[family] = str(err).rstrip(".")
            continue
        flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        result.rows[family] = {"all": flat, "by_dim": dict(metrics.get("by_dim", {}))}
    return result
