"""Matrices typed by a user: ``[[1,2],[2,1]]`` (JSON-style nested lists) or ``1 2; 2 1`` (rows
separated by ``;`` or newlines, entries by commas or spaces). Anything else is a UserError."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from linalgformer.errors import UserError

MAX_ENTRIES = 10_000
MAX_ABS = 1e12
MAX_CHARS = 1_000_000  # longer text is refused before it is parsed


def parse_matrix(text: str) -> np.ndarray:
    """A finite 2-D float matrix from ``text``; a vector is returned as a 1-row matrix."""
    text = (text or "").strip()
    if not text:
        raise UserError("the matrix is empty: give e.g. \"[[1,2],[2,1]]\" or \"1 2; 2 1\".")
    if len(text) > MAX_CHARS:
        raise UserError(f"the matrix text is longer than {MAX_CHARS} characters.")
    rows = _json_rows(text) if text.startswith("[") else _plain_rows(text)
    return _check(rows)


# Python's and numpy's spellings of non-finite numbers, which JSON lacks: read them so that the
# matrix is refused for holding them, not for its syntax.
NON_FINITE_WORDS = re.compile(r"(?<![\w.])([+-]?)(nan|inf|infinity)(?![\w.])", re.IGNORECASE)


def _json_rows(text: str) -> list[list]:
    text = NON_FINITE_WORDS.sub(lambda m: "NaN" if m[2].lower() == "nan" else f"{m[1]}Infinity", text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # bad JSON, nesting too deep, an integer of 4300+ digits
        raise UserError("the matrix is not valid nested-list text such as [[1,2],[2,1]].") from None
    if isinstance(data, list) and data and all(not isinstance(x, list) for x in data):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
        raise UserError("the matrix must be a list of rows, e.g. [[1,2],[2,1]].")
    return data


def _plain_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.replace(";", "\n").splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "," in line and any(len(part.split()) > 1 for part in line.split(",")):
            raise UserError(f"row {i + 1} of the matrix mixes commas and spaces between entries ({_short(line.strip())}): "
                            "separate entries with one of them, and write decimals with a point (1.5).")
    return [line.replace(",", " ").split() for line in lines]


def _check(rows: list[list]) -> np.ndarray:
    if not rows or not rows[0]:
        raise UserError("the matrix has no entries.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise UserError(f"the matrix is ragged: its rows have {sorted(widths)} entries.")
    if len(rows) * len(rows[0]) > MAX_ENTRIES:
        raise UserError(f"the matrix has more than {MAX_ENTRIES} entries.")
    values = np.array([[_number(x, i, j) for j, x in enumerate(r)] for i, r in enumerate(rows)], dtype=np.float64)
    return values


def _number(x, i: int, j: int) -> float:
    if isinstance(x, bool) or isinstance(x, (list, dict)) or x is None:
        raise UserError(f"entry ({i + 1}, {j + 1}) of the matrix is not a number: {_short(x)}.")
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise UserError(f"entry ({i + 1}, {j + 1}) of the matrix is not a number: {_short(x)}.") from None
    except OverflowError:  # an integer too large for a float
        raise UserError(f"entry ({i + 1}, {j + 1}) of the matrix is too large (|x| > {MAX_ABS:g}).") from None
    if not math.isfinite(value):
        raise UserError(f"entry ({i + 1}, {j + 1}) of the matrix is {_short(x)}: only finite numbers are allowed.")
    if abs(value) > MAX_ABS:
        raise UserError(f"entry ({i + 1}, {j + 1}) of the matrix, {_short(x)}, is too large (|x| > {MAX_ABS:g}).")
    return value


def _short(x) -> str:
    """repr(x), cut to one readable length for an error message."""
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
