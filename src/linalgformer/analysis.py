"""Where a tokenized model fails, after Charton's "What is my math transformer doing?" (2022).

Every test example gets the problem's own verdict at each tolerance (exact, or relative error d1
under tau) and a few numbers about its question and its answer; accuracy is then tabulated
against each number, in bins holding equal shares of the examples (quantiles):

* ``input cond``: the condition number (2-norm) of the input as written;
* ``answer cond``: that of the model's decoded answer (answers with at least 2 rows and columns);
* ``eig spread`` and ``eig gap``: for symmetric inputs, lambda_max - lambda_min, and the smallest
  distance between consecutive eigenvalues over max |lambda| (close eigenvalues make eigenvectors
  hard);
* ``entry (i, j)``: per answer entry (per eigenvalue rank for eigenvalues), the share of answers
  whose entry is within tau * mean |target| of the target (for eigenvectors and singular vectors
  column signs aligned first, as their verifiers accept any sign);
* ``signs``: over every entry of the decoded answers of the common shape, the share whose sign is
  the target's (0.5 is a coin toss; columns aligned as above) and the correlation of the entries
  with the targets': a model that writes plausible numbers unrelated to the question scores 0.5
  and 0 however its accuracy reads;
* ``tokens`` (token answers): the share of each kind of answer token (sign, mantissa, exponent,
  P10's digits, ...) that the model ranks first when given the true answer so far (teacher
  forcing): which part of a number it has not learned;
* for eigenvectors, which checks held at each tolerance: eigenvalues (row 0 against the target's,
  d1), unit norms (max | ||q_i|| - 1 |), orthogonality (Q^T Q - I against I), Q^T M Q - diag(lambda)
  (against diag(lambda)).

:meth:`Analysis.table` prints one table, :meth:`Analysis.plot` draws one PNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from linalgformer.linalg import diagonal, identity, relative_errors, transpose
from linalgformer.plotting import pyplot, save
from linalgformer.problems.charton.contract import TOLERANCES, Examples
from linalgformer.problems.charton.matrix_problem import MatrixProblem
from linalgformer.tables import render_table

FEATURES = ("input cond", "answer cond", "eig spread", "eig gap")
LOG_FEATURES = ("input cond", "answer cond")  # plotted on a log scale


@dataclass
class Analysis:
    """Accuracy by feature bin, by answer entry and (eigenvectors) by property.

    ``rows``: dicts with ``group`` (a feature, ``entry`` or ``property``), ``bin`` (a range, an entry
    or a property), ``count`` and ``acc@tau`` for each tolerance; ``values``: each feature's value
    per example and ``correct``: each example's verdict at each tolerance (for your own cuts)."""

    problem: str
    count: int
    rows: list[dict] = field(default_factory=list)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    correct: dict[float, np.ndarray] = field(default_factory=dict)
    signs: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        header = ["group", "bin", "count"] + [f"tol {tau:g}" for tau in TOLERANCES]
        body = [[r["group"], r["bin"], r["count"]] + [r[f"acc@{tau:g}"] for tau in TOLERANCES] for r in self.rows]
        lines = [render_table(header, body)]
        if self.signs:
            lines.append(f"signs: {self.signs['sign agreement']:.1%} of {self.signs['entries']:,} answer entries have "
                         f"the target's sign (a coin toss: 50%); correlation with the targets "
                         f"{self.signs['correlation']:.3f}")
        if self.tokens:
            parts = ", ".join(f"{kind} {self.tokens[kind]:.1%}" for kind in sorted(self.tokens, key=token_order))
            lines.append(f"next-token accuracy given the true answer so far: {parts}")
        return "\n".join(lines)

    def plot(self, out: str | Path) -> Path:
        """One PNG: accuracy at 5% per feature bin, per answer entry and (eigenvectors) per property."""
        groups = list(dict.fromkeys(r["group"] for r in self.rows))
        plt = pyplot()
        fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
        for ax, group in zip(axes[0], groups):
            rows = [r for r in self.rows if r["group"] == group]
            lines = TOLERANCES if group == "property" else (0.05,)
            for tau in lines:
                ax.plot(range(len(rows)), [r[f"acc@{tau:g}"] for r in rows], marker="o", label=f"tol {tau:g}")
            ax.set_xticks(range(len(rows)), [r["bin"] for r in rows], rotation=45, ha="right", fontsize=7)
            ax.set(title=group, ylim=(-0.02, 1.02), ylabel="accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{self.problem}: where the model fails ({self.count} examples)")
        fig.tight_layout()
        return save(fig, Path(out))


def token_order(kind: str) -> tuple[int, str]:
    """Answer token kinds in the order a number is written."""
    ranks = {"dim": 0, "sign": 1, "mantissa": 2, "number": 2, "exponent": 4, "<eos>": 5}
    return ranks.get(kind, 3), kind


def analyze_examples(problem: MatrixProblem, examples: Examples, predictions: list[list[int]] | None,
                     bins: int = 5, answers: list[np.ndarray | None] | None = None) -> Analysis:
    """The :class:`Analysis` of decoded ``predictions`` (token ids, no specials) of ``examples``, or
    of ``answers`` given as matrices (a continuous model's)."""
    if predictions is not None:
        scores = problem.score(examples, predictions)
        answers = [problem.decode_output(ids) for ids in predictions]
    else:
        scores = problem.score_matrices(examples, answers)
    decoded = [d if d is not None and d.shape == t.shape else None for d, t in zip(answers, examples.targets)]
    result = Analysis(problem=problem.name, count=len(examples), correct=scores.correct)
    result.values = feature_values(problem, examples, decoded)
    for name, values in result.values.items():
        result.rows += binned_rows(name, values, scores.correct, bins)
    result.rows += entry_rows(examples, decoded, problem.sign_free_columns)
    result.signs = sign_agreement(examples, decoded, problem.sign_free_columns)
    if problem.name == "eigenvectors":
        result.rows += eigenvector_rows(examples, decoded)
    return result


def feature_values(problem: MatrixProblem, examples: Examples, decoded: list) -> dict[str, np.ndarray]:
    """Each feature's value per example (NaN where it does not apply); features that never apply are left out."""
    values = {"input cond": np.array([np.linalg.cond(x) for x in examples.inputs]),
              "answer cond": np.array([np.linalg.cond(d) if d is not None and min(d.shape) > 1 else np.nan
                                       for d in decoded])}
    if problem.symmetric:
        spectra = [np.linalg.eigvalsh(x)[::-1] for x in examples.inputs]
        values["eig spread"] = np.array([s[0] - s[-1] for s in spectra])
        values["eig gap"] = np.array([np.min(-np.diff(s)) / max(np.abs(s).max(), 1e-300) if len(s) > 1 else np.nan
                                      for s in spectra])
    return {k: v for k, v in values.items() if np.isfinite(v).any()}


def binned_rows(name: str, values: np.ndarray, correct: dict[float, np.ndarray], bins: int) -> list[dict]:
    """Accuracy in ``bins`` quantile bins of ``values`` (examples where the value is NaN are left out)."""
    finite = np.isfinite(values)
    edges = np.unique(np.quantile(values[finite], np.linspace(0, 1, bins + 1)))
    which = np.searchsorted(edges[1:-1], values, side="right")
    rows = []
    for b in range(max(len(edges) - 1, 1)):
        mask = finite & (which == b)
        if mask.any():
            label = f"{values[mask].min():.3g}..{values[mask].max():.3g}"
            rows.append(accuracy_row(name, label, {tau: c[mask] for tau, c in correct.items()}))
    return rows


def accuracy_row(group: str, label: str, verdicts: dict[float, np.ndarray]) -> dict:
    count = len(next(iter(verdicts.values())))
    return {"group": group, "bin": label, "count": count,
            **{f"acc@{tau:g}": float(v.mean()) if count else float("nan") for tau, v in verdicts.items()}}


def common_shape(examples: Examples, decoded: list, align: bool) -> tuple[np.ndarray, np.ndarray]:
    """(targets, predictions) (N, r, c) of the answers of the most common shape (sizes may vary),
    NaN where undecoded; with ``align`` each predicted column's sign matched to the target's."""
    shapes = [t.shape for t in examples.targets]
    shape = max(set(shapes), key=shapes.count)
    index = [i for i, s in enumerate(shapes) if s == shape]
    targets = np.stack([examples.targets[i] for i in index])
    return targets, np.stack([aligned(decoded[i], examples.targets[i], align) for i in index])


def sign_agreement(examples: Examples, decoded: list, align: bool = False) -> dict[str, float]:
    """Over the decoded entries of the common shape with a nonzero target: the share of signs the
    prediction gets right and the prediction's correlation with the target ({} when none)."""
    targets, preds = common_shape(examples, decoded, align)
    keep = np.isfinite(preds) & (targets != 0)
    t, p = targets[keep], preds[keep]
    if len(t) < 2:
        return {}
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = float(np.corrcoef(p, t)[0, 1]) if np.std(p) > 0 and np.std(t) > 0 else 0.0
    return {"entries": int(len(t)), "sign agreement": float(np.mean(np.sign(p) == np.sign(t))),
            "correlation": correlation}


def entry_rows(examples: Examples, decoded: list, align: bool = False) -> list[dict]:
    """Per answer entry: the share of answers whose entry is within tau * mean |target| of it.
    Only the most common answer shape is counted (sizes may vary); an undecoded answer is wrong."""
    targets, preds = common_shape(examples, decoded, align)
    shape = targets.shape[1:]
    scale = np.abs(targets).mean(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):
        error = np.abs(preds - targets) / np.where(scale > 0, scale, 1.0)  # NaN for undecoded: never within
    rows = []
    for i, j in np.ndindex(*shape):
        label = f"{i + 1}" if shape[1] == 1 else f"({i + 1},{j + 1})"
        rows.append(accuracy_row("entry", label, {tau: error[:, i, j] < tau for tau in TOLERANCES}))
    return rows


def aligned(prediction: np.ndarray | None, target: np.ndarray, align: bool = True) -> np.ndarray:
    """The prediction with (``align``) each column's sign matched to the target's (NaN where there is none)."""
    if prediction is None:
        return np.full(target.shape, np.nan)
    if not align:
        return prediction
    signs = np.where((prediction * target).sum(axis=0) < 0, -1.0, 1.0)
    return prediction * signs


def eigenvector_rows(examples: Examples, decoded: list) -> list[dict]:
    """For eigenvectors: at each tolerance, the share of answers for which each check held."""
    n = len(examples)
    errors = {name: np.full(n, np.inf) for name in ("eigenvalues", "unit norms", "orthogonality", "Q^T M Q")}
    for i, pred in enumerate(decoded):
        if pred is not None:
            for name, value in eigenvector_errors(examples.inputs[i], examples.targets[i], pred).items():
                errors[name][i] = value
    return [accuracy_row("property", name, {tau: e < tau for tau in TOLERANCES}) for name, e in errors.items()]


def eigenvector_errors(matrix: np.ndarray, target: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    values, vectors = pred[None, 0, :], pred[None, 1:, :]
    spectrum = diagonal(values)
    eye = identity(1, values.shape[1])
    with np.errstate(all="ignore"):
        ranked = np.sort(pred[0])[::-1]  # the verifier takes the eigenpairs in any order
        return {"eigenvalues": float(relative_errors((ranked - target[0])[None, None], target[None, None, 0])[0][0]),
                "unit norms": float(np.abs(np.linalg.norm(vectors[0], axis=0) - 1).max()),
                "orthogonality": float(relative_errors(transpose(vectors) @ vectors - eye, eye)[0][0]),
                "Q^T M Q": float(relative_errors(transpose(vectors) @ matrix[None] @ vectors - spectrum, spectrum)[0][0])}
