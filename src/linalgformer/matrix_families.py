"""Families of matrices people actually have, beside the uniform random ones of Charton's paper.

Each family is a small named function drawing a stacked batch ``(count, rows, cols)`` from an
explicit Generator, vectorised over the batch; ``bound`` (A, 10 by default) sets the entries'
scale as for the coefficient laws. They are what ``problem.distribution`` names, with mixture
weights (``"uniform:4,integers,sparse"``), in ``generate``, ``train`` and ``evaluate``.

Any matrix (every problem; a symmetric problem gets the lower triangle mirrored):

================  ===========================================================================
uniform           iid uniform on [-A, A] (the paper's; for a symmetric problem: ``semicircle``)
gaussian          iid N(0, A^2/3)
integers          integers on [-m, m], m uniform in 1..A per matrix, a quarter of entries 0
sparse            a density uniform in [0.1, 0.5] per matrix, the rest exact zeros
sparse_integers   sparse, with integer entries on [-A, A]
decades           magnitudes log-uniform over 4 decades below A, random signs
scaled            uniform on [-b, b], b log-uniform on [0.01, 1000] per matrix
banded            zero beyond a bandwidth of 1 or 2 (|i - j| > k)
tridiagonal       zero beyond the first off-diagonals
triangular        upper or lower triangular
diagonal          zero off the diagonal
toeplitz          constant along each diagonal, a random bandwidth, integers half the time
lowrank           a product of rank r < min(rows, cols) (1 for a vector), scaled to max |a| on [A/2, A]
conditioned       U diag(s) V^T: condition number log-uniform on [1, 1000], s_max = A sqrt(n)
================  ===========================================================================

Symmetric problems also take Charton's seven eigenvalue laws (``matrices.LAWS``; there
``uniform`` and ``gaussian`` are eigenvalue laws) and these:

================  ===========================================================================
laplacian         graph Laplacian D - W of a random graph (edge probability on [0.2, 0.9]),
                  0/1 edges or weights uniform on (0, A], half each; rows sum to zero
correlation       the correlation matrix of m = n x {1, 2, 5, 20} samples of a factor model
covariance        X^T X / m (Wishart), m = n x {1, 2, 5, 20}, columns of scales over 2 decades
lowrank_noise     Q_r diag(l) Q_r^T of rank r < n, plus symmetric noise 1% of its scale
spd               positive definite, condition number log-uniform on [1, 1000], l_max = A sqrt(n)
diagdominant      sparse off-diagonal on [-A, A], diagonal = row's |off-diagonal| sum + [0, A]
================  ===========================================================================
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from linalgformer import matrices
from linalgformer.errors import UserError

Draw = Callable[[np.random.Generator, int, int, int, float], np.ndarray]


# --- any shape ------------------------------------------------------------------------------

def uniform(rng, count, rows, cols, bound):
    return rng.uniform(-bound, bound, (count, rows, cols))


def gaussian(rng, count, rows, cols, bound):
    return rng.standard_normal((count, rows, cols)) * (bound / math.sqrt(3.0))


def integers(rng, count, rows, cols, bound):
    top = rng.integers(1, max(int(bound), 1) + 1, size=(count, 1, 1))
    values = np.floor(rng.uniform(0.0, 1.0, (count, rows, cols)) * (2 * top + 1)) - top
    return np.where(rng.uniform(size=values.shape) < 0.25, 0.0, values)


def sparse(rng, count, rows, cols, bound):
    return _sparsified(rng, uniform(rng, count, rows, cols, bound))


def sparse_integers(rng, count, rows, cols, bound):
    values = rng.integers(-max(int(bound), 1), max(int(bound), 1) + 1, size=(count, rows, cols))
    values = np.where(values == 0, 1, values).astype(np.float64)  # zeros come from the sparsity
    return _sparsified(rng, values)


def decades(rng, count, rows, cols, bound):
    magnitude = bound * 10.0 ** -rng.uniform(0.0, 4.0, (count, rows, cols))
    return magnitude * rng.choice((-1.0, 1.0), size=(count, rows, cols))


def scaled(rng, count, rows, cols, bound):
    scale = 10.0 ** rng.uniform(-2.0, 3.0, (count, 1, 1))
    return rng.uniform(-1.0, 1.0, (count, rows, cols)) * scale


def banded(rng, count, rows, cols, bound):
    width = rng.integers(1, 3, size=(count, 1, 1))
    return uniform(rng, count, rows, cols, bound) * (_offsets(rows, cols) <= width)


def tridiagonal(rng, count, rows, cols, bound):
    return uniform(rng, count, rows, cols, bound) * (_offsets(rows, cols) <= 1)


def triangular(rng, count, rows, cols, bound):
    upper = np.triu(np.ones((rows, cols), dtype=bool))
    pick = rng.uniform(size=(count, 1, 1)) < 0.5
    mask = np.where(pick, upper, upper.T if rows == cols else np.tril(np.ones((rows, cols), dtype=bool)))
    return uniform(rng, count, rows, cols, bound) * mask


def diagonal(rng, count, rows, cols, bound):
    if cols == 1:  # a vector: no diagonal to speak of
        return uniform(rng, count, rows, cols, bound)
    return uniform(rng, count, rows, cols, bound) * np.eye(rows, cols, dtype=bool)


def toeplitz(rng, count, rows, cols, bound):
    diagonals = np.where(rng.uniform(size=(count, 1)) < 0.5,
                         integers(rng, count, 1, rows + cols - 1, bound)[:, 0],
                         uniform(rng, count, 1, rows + cols - 1, bound)[:, 0])
    index = np.arange(cols)[None, :] - np.arange(rows)[:, None] + rows - 1  # (rows, cols) into diagonals
    width = rng.integers(1, max(rows, cols) + 1, size=(count, 1, 1))
    return diagonals[:, index] * (_offsets(rows, cols) <= width)


def lowrank(rng, count, rows, cols, bound):
    rank = max(min(rows, cols) - 1, 1)
    ranks = rng.integers(1, rank + 1, size=count)
    left = rng.standard_normal((count, rows, rank)) * (np.arange(rank) < ranks[:, None])[:, None, :]
    product = left @ rng.standard_normal((count, rank, cols))
    return _rescaled(rng, product, bound)


def conditioned(rng, count, rows, cols, bound):
    k = min(rows, cols)
    condition = 10.0 ** rng.uniform(0.0, 3.0, (count, 1))
    singular = bound * math.sqrt(k) * condition ** -np.sort(rng.uniform(0.0, 1.0, (count, k)), axis=1)
    singular[:, 0] = bound * math.sqrt(k)
    singular[:, -1] = bound * math.sqrt(k) / condition[:, 0] if k > 1 else singular[:, -1]
    left = _orthonormal_columns(rng, count, rows, k)
    right = _orthonormal_columns(rng, count, cols, k)
    return (left * singular[:, None, :]) @ np.swapaxes(right, -1, -2)


# --- symmetric (square) ---------------------------------------------------------------------

def laplacian(rng, count, dim, bound):
    edges = rng.uniform(size=(count, dim, dim)) < rng.uniform(0.2, 0.9, (count, 1, 1))
    weights = np.where(rng.uniform(size=(count, 1, 1)) < 0.5, 1.0,
                       rng.uniform(0.0, 1.0, (count, dim, dim)) * bound)
    upper = np.triu(edges * weights, 1)
    adjacency = upper + np.swapaxes(upper, -1, -2)
    return _diagonal_matrix(adjacency.sum(axis=2)) - adjacency


def correlation(rng, count, dim, bound):
    samples = dim * rng.choice((1, 2, 5, 20), size=count)
    out = np.empty((count, dim, dim))
    for m in np.unique(samples):  # one vectorised draw per sample count
        picked = np.flatnonzero(samples == m)
        factors = rng.integers(1, dim + 1)
        loadings = rng.standard_normal((len(picked), factors, dim))
        data = rng.standard_normal((len(picked), m, factors)) @ loadings
        data += rng.standard_normal(data.shape) * rng.uniform(0.2, 2.0, (len(picked), 1, dim))
        out[picked] = _correlation_of(data)
    return out


def covariance(rng, count, dim, bound):
    samples = dim * rng.choice((1, 2, 5, 20), size=count)
    out = np.empty((count, dim, dim))
    for m in np.unique(samples):
        picked = np.flatnonzero(samples == m)
        scales = (bound / math.sqrt(3.0)) * 10.0 ** rng.uniform(-2.0, 0.0, (len(picked), 1, dim))
        data = rng.standard_normal((len(picked), m, dim)) * scales
        out[picked] = np.swapaxes(data, -1, -2) @ data / m
    return _symmetric(out)


def lowrank_noise(rng, count, dim, bound):
    rank = max(dim - 1, 1)
    ranks = rng.integers(1, rank + 1, size=count)
    vectors = matrices.random_orthogonal(rng, count, dim)[:, :, :rank]
    values = rng.uniform(-1.0, 1.0, (count, rank)) * bound * math.sqrt(dim) * (np.arange(rank) < ranks[:, None])
    signal = (vectors * values[:, None, :]) @ np.swapaxes(vectors, -1, -2)
    noise = matrices.symmetrize_lower(rng.standard_normal((count, dim, dim))) * (0.01 * bound)
    return _symmetric(signal + noise)


def spd(rng, count, dim, bound):
    condition = 10.0 ** rng.uniform(0.0, 3.0, (count, 1))
    top = bound * math.sqrt(dim)
    values = top * condition ** -rng.uniform(0.0, 1.0, (count, dim))
    values[:, 0] = top
    values[:, -1] = top / condition[:, 0] if dim > 1 else values[:, -1]
    return matrices.from_spectrum(values, matrices.random_orthogonal(rng, count, dim))


def diagdominant(rng, count, dim, bound):
    off = matrices.symmetrize_lower(sparse(rng, count, dim, dim, bound)) * (1.0 - np.eye(dim))
    margin = rng.uniform(0.0, bound, (count, dim))
    return off + _diagonal_matrix(np.abs(off).sum(axis=2) + margin)


# --- helpers --------------------------------------------------------------------------------

def _sparsified(rng, values: np.ndarray) -> np.ndarray:
    """``values`` with entries zeroed at a density uniform on [0.1, 0.5] per matrix; at least one
    entry of each matrix stays."""
    count, rows, cols = values.shape
    keep = rng.uniform(size=values.shape) < rng.uniform(0.1, 0.5, (count, 1, 1))
    first = rng.integers(0, rows * cols, size=count)
    keep.reshape(count, -1)[np.arange(count), first] = True
    return values * keep


def _offsets(rows: int, cols: int) -> np.ndarray:
    """(rows, cols) |i - j|."""
    return np.abs(np.arange(rows)[:, None] - np.arange(cols)[None, :])


def _rescaled(rng, mats: np.ndarray, bound: float) -> np.ndarray:
    """Each matrix scaled so that its largest |entry| is uniform on [bound/2, bound]."""
    top = np.abs(mats).max(axis=(1, 2), keepdims=True)
    target = rng.uniform(0.5, 1.0, (len(mats), 1, 1)) * bound
    return mats * np.divide(target, top, out=np.zeros_like(top), where=top > 0)


def _orthonormal_columns(rng, count: int, rows: int, k: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((count, rows, k)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def _diagonal_matrix(values: np.ndarray) -> np.ndarray:
    """(B, n) -> (B, n, n) diagonal matrices."""
    return values[:, :, None] * np.eye(values.shape[1])


def _correlation_of(data: np.ndarray) -> np.ndarray:
    """(B, m, n) samples -> (B, n, n) correlation matrices (unit diagonal, exactly symmetric)."""
    centred = data - data.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred * centred).sum(axis=1, keepdims=True))
    unit = centred / np.where(norms > 0, norms, 1.0)
    corr = _symmetric(np.swapaxes(unit, -1, -2) @ unit)
    corr[:, np.arange(data.shape[2]), np.arange(data.shape[2])] = 1.0
    return np.clip(corr, -1.0, 1.0)


def _symmetric(mats: np.ndarray) -> np.ndarray:
    return 0.5 * (mats + np.swapaxes(mats, -1, -2))


GENERAL: dict[str, Draw] = {f.__name__: f for f in (
    uniform, gaussian, integers, sparse, sparse_integers, decades, scaled, banded, tridiagonal,
    triangular, diagonal, toeplitz, lowrank, conditioned)}
SYMMETRIC_ONLY = {f.__name__: f for f in (laplacian, correlation, covariance, lowrank_noise, spd, diagdominant)}
# general families that make sense mirrored (a mirrored triangle or condition number is a new matrix)
MIRRORED = ("integers", "sparse", "sparse_integers", "decades", "scaled", "banded", "tridiagonal",
            "diagonal", "toeplitz")
GENERAL_FAMILIES = tuple(GENERAL)
SYMMETRIC_FAMILIES = (*matrices.LAWS, *MIRRORED, *SYMMETRIC_ONLY)
# what a problem's default ("the paper's") test set is
PAPER_GENERAL, PAPER_SYMMETRIC = "uniform", "semicircle"


def families(symmetric: bool) -> tuple[str, ...]:
    return SYMMETRIC_FAMILIES if symmetric else GENERAL_FAMILIES


def draw_general(rng: np.random.Generator, name: str, count: int, rows: int, cols: int,
                 bound: float = 10.0) -> np.ndarray:
    """(count, rows, cols) matrices of family ``name``."""
    if name not in GENERAL:
        raise UserError(f"unknown matrix family {name!r} (known: {', '.join(GENERAL_FAMILIES)}).")
    return GENERAL[name](rng, count, rows, cols, bound)


def draw_symmetric(rng: np.random.Generator, name: str, count: int, dim: int, bound: float = 10.0,
                   coefficients: str = "uniform") -> np.ndarray:
    """(count, dim, dim) symmetric matrices of eigenvalue law or family ``name``."""
    if name in matrices.LAWS:
        return matrices.symmetric_matrices(rng, name, count, dim, coefficients, bound)
    if name in SYMMETRIC_ONLY:
        return SYMMETRIC_ONLY[name](rng, count, dim, bound)
    if name in MIRRORED:
        return matrices.symmetrize_lower(GENERAL[name](rng, count, dim, dim, bound))
    raise UserError(f"unknown symmetric matrix family {name!r} (known: {', '.join(SYMMETRIC_FAMILIES)}).")
