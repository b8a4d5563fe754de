"""What an evaluation of a Charton model reports: the verifiers' scores (``problems.charton``)
gathered into accuracies by tolerance, tables by law and by size, and one JSON row per example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from linalgformer.files import atomic_write_lines
from linalgformer.problems.charton.contract import TOLERANCES, Examples, Scores
from linalgformer.tokens import sequence_text


def accuracy_key(tau: float) -> str:
    return f"acc@{tau:g}"


def summarize(parts: list[Scores]) -> dict[str, Any]:
    """Overall accuracies plus tables by law and by size."""
    all_scores = concat_scores(parts)
    out = score_stats(all_scores)
    out["by_law"] = grouped(all_scores, all_scores.laws)
    out["by_dim"] = grouped(all_scores, [str(d) for d in all_scores.dims])
    return out


def score_stats(s: Scores) -> dict[str, float]:
    n = max(len(s.valid), 1)
    stats = {accuracy_key(tau): float(c.sum() / n) for tau, c in s.correct.items()}
    stats.update(exact=float(s.exact.sum() / n), invalid=float((~s.valid).sum() / n), count=len(s.valid))
    finite = s.d1[np.isfinite(s.d1)]
    stats["median_d1"] = float(np.median(finite)) if finite.size else float("inf")
    return stats


def grouped(s: Scores, keys: list[str]) -> dict[str, dict[str, float]]:
    keys_arr = np.asarray(keys)
    return {key: score_stats(subset(s, keys_arr == key)) for key in dict.fromkeys(keys)}


def subset(s: Scores, mask: np.ndarray) -> Scores:
    idx = np.flatnonzero(mask)
    return Scores(s.valid[idx], s.exact[idx], s.d1[idx], s.d2[idx], s.dmax[idx],
                  [s.laws[i] for i in idx], [s.dims[i] for i in idx])


def concat_scores(parts: list[Scores]) -> Scores:
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Scores(cat("valid"), cat("exact"), cat("d1"), cat("d2"), cat("dmax"),
                  [x for p in parts for x in p.laws], [x for p in parts for x in p.dims])


def prediction_rows(problem, examples: Examples, predictions: list[str], scores: Scores) -> list[dict]:
    """One JSON row per example; ``predictions``: each prediction written as its tokens (the answer
    mode's ``prediction_texts``)."""
    src, tgt = problem.encode(examples)
    rows = []
    for i in range(len(examples)):
        rows.append({"input": sequence_text(problem.vocab, src, i), "target": sequence_text(problem.vocab, tgt, i),
                     "prediction": predictions[i],
                     "law": scores.laws[i], "dim": int(scores.dims[i]), "valid": bool(scores.valid[i]),
                     "exact": bool(scores.exact[i]),
                     "d1": float(scores.d1[i]) if np.isfinite(scores.d1[i]) else None,
                     "correct@0.05": bool(scores.correct[TOLERANCES[0]][i])})
    return rows


def write_predictions(path: Path, rows: list[dict]) -> None:
    atomic_write_lines(Path(path), (json.dumps(r) for r in rows))
