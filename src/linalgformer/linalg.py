"""Small linear-algebra formulas shared by problems, baselines and constructions (numpy; the few
that the problems' checks use also take torch tensors, for ``model.verifier_loss``).

They sit on the ground floor so that a hand-set construction and the classical algorithm it runs
use one formula, and two problem families share one convention (e.g. the sign of a vector).
"""

from __future__ import annotations

from math import comb

import numpy as np

INVERSE_RESIDUAL = 1e-10  # max |A A^-1 - I| of a float64 inverse that safe_inverse accepts


def column_signs(vectors: np.ndarray) -> np.ndarray:
    """(B, r, k) -> (B, 1, k) signs making each column's largest-magnitude entry positive."""
    rows = np.abs(vectors).argmax(axis=-2)  # (B, k)
    signs = np.sign(np.take_along_axis(vectors, rows[..., None, :], axis=-2))  # (B, 1, k)
    return np.where(signs == 0, 1.0, signs)


def canonical_sign(vectors: np.ndarray) -> np.ndarray:
    """Flip each column (B, d, k) so that its entry of largest magnitude is positive."""
    return vectors * column_signs(vectors)


def identity(count: int, dim: int, like=None) -> np.ndarray:
    """(count, dim, dim) identities; of ``like``'s kind, dtype and device when it is a torch tensor
    (so that the problems' checks, written once, also serve as a differentiable loss)."""
    if like is not None and not isinstance(like, np.ndarray):
        eye = like.new_zeros((dim, dim))
        eye.fill_diagonal_(1.0)
        return eye.expand(count, dim, dim)
    return np.broadcast_to(np.eye(dim), (count, dim, dim))


def transpose(mats: np.ndarray) -> np.ndarray:
    return mats.swapaxes(-1, -2)  # numpy arrays and torch tensors alike


def diagonal(values: np.ndarray) -> np.ndarray:
    """(B, n) -> (B, n, n) diagonal matrices (numpy arrays or torch tensors, as ``values``)."""
    return values[:, :, None] * identity(1, values.shape[1], like=values)[0]


def safe_inverse(mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverses, ok): batched inverse; singular or badly conditioned matrices are marked not ok."""
    count, dim = mats.shape[0], mats.shape[1]
    with np.errstate(all="ignore"):
        determinants = np.linalg.det(mats)
    invertible = np.isfinite(determinants) & (determinants != 0)
    safe = np.where(invertible[:, None, None], mats, np.eye(dim))
    inverses = np.linalg.inv(safe)
    with np.errstate(all="ignore"):
        residual = np.abs(safe @ inverses - identity(count, dim)).max(axis=(1, 2))
    return inverses, invertible & (residual <= INVERSE_RESIDUAL)


def relative_errors(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d1, d2, dmax) of error batch ``m`` against reference batch ``s``, both (B, r, c)."""
    pairs = ((np.abs(m).sum(axis=(1, 2)), np.abs(s).sum(axis=(1, 2))),
             (np.sqrt((m * m).sum(axis=(1, 2))), np.sqrt((s * s).sum(axis=(1, 2)))),
             (np.abs(m).max(axis=(1, 2)), np.abs(s).max(axis=(1, 2))))
    return tuple(_ratio(top, bottom) for top, bottom in pairs)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, with 0/0 = 0, x/0 = inf and nan = inf."""
    out = np.full(top.shape, np.inf)
    np.divide(top, bottom, out=out, where=bottom > 0)
    out[(bottom == 0) & (top == 0)] = 0.0
    out[~np.isfinite(out)] = np.inf
    return out


def newton_schulz_coefficients(order: int) -> list[int]:
    """c_m = (-1)^m C(order, m+1), m = 0..order-1: X_new = X sum_m c_m (A X)^m."""
    if order < 2:
        raise ValueError(f"Newton-Schulz order must be at least 2, got {order}")
    return [(-1) ** m * comb(order, m + 1) for m in range(order)]
