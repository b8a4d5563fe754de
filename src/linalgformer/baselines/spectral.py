"""Classical spectral algorithms behind the models' call: ``baseline(batch) -> predictions``.

A batch is the experiment's dict of tensors with ``x`` (B, n, d); predictions are a dict of tensors
in the model's output format: ``vectors`` (B, d, k) and ``values`` (B, k) for PCA, ``labels`` (B, n)
for clustering. The algorithms themselves are numpy functions on the second moment C = X^T X / n.

Power method with deflation (``power_method``), for eigenvector j = 1..k, from start vector s_j::

    w <- s_j
    repeat t times:  w <- C w;  w <- w - (v_i . w) v_i  for i = 1..j-1 in turn;  w <- w / |w|
    v_j <- w;  lambda_j <- v_j^T C v_j

(``mode="sequential"``: each vector gets its own t iterations after the previous ones are final, the
textbook deflation, t*k products with C). ``mode="simultaneous"`` iterates all k vectors together,
deflating each against the others' current iterates (orthogonal iteration: t products with a d x k
block). ``iterations=None`` runs to convergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from linalgformer.linalg import canonical_sign
from linalgformer.problems.spectral import second_moment, top_eigen

Batch = dict[str, torch.Tensor]
CONVERGED_TOL = 1e-12  # 1 - |cos| between successive iterates
MAX_ITERATIONS = 20_000


def start_vectors(seed: int, count: int, dim: int, k: int) -> np.ndarray:
    """Gaussian start vectors (B, d, k), the same for the same seed and shape."""
    return np.random.default_rng(seed).standard_normal((count, dim, k))


def deflate(w: np.ndarray, found: list[np.ndarray]) -> np.ndarray:
    """Project (B, d) iterates off the unit vectors in ``found``, one after another."""
    for v in found:
        w = w - (v * w).sum(-1, keepdims=True) * v
    return w


def unit(w: np.ndarray) -> np.ndarray:
    return w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-300)


def power_iterate(c: np.ndarray, w: np.ndarray, found: list[np.ndarray],
                  iterations: int | None) -> np.ndarray:
    """One eigenvector by deflated power iteration on (B, d, d) from (B, d); unit result."""
    w = unit(w)
    budget = MAX_ITERATIONS if iterations is None else iterations
    for _ in range(budget):
        nxt = unit(deflate(np.einsum("bij,bj->bi", c, w), found))
        settled = np.abs((nxt * w).sum(-1)).min() > 1 - CONVERGED_TOL
        w = nxt
        if iterations is None and settled:
            break
    return w


def power_method(c: np.ndarray, k: int, iterations: int | None, start: np.ndarray,
                 mode: str = "sequential") -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of (B, d, d) by the power method with deflation (see module docstring)."""
    if mode == "sequential":
        found: list[np.ndarray] = []
        for j in range(k):
            found.append(power_iterate(c, start[..., j], found, iterations))
        vectors = np.stack(found, axis=-1)
    elif mode == "simultaneous":
        vectors = orthogonal_iteration(c, start[..., :k], iterations)
    else:
        raise ValueError(f"unknown power-method mode {mode!r} (known: sequential, simultaneous)")
    values = np.einsum("bik,bij,bjk->bk", vectors, c, vectors)
    return values, vectors


def orthogonal_iteration(c: np.ndarray, block: np.ndarray, iterations: int | None) -> np.ndarray:
    """V <- orthonormalise(C V) by Gram-Schmidt in column order; (B, d, k) unit columns."""
    vectors = gram_schmidt(block)
    budget = MAX_ITERATIONS if iterations is None else iterations
    for _ in range(budget):
        nxt = gram_schmidt(c @ vectors)
        settled = np.abs((nxt * vectors).sum(-2)).min() > 1 - CONVERGED_TOL
        vectors = nxt
        if iterations is None and settled:
            break
    return vectors


def gram_schmidt(block: np.ndarray) -> np.ndarray:
    found: list[np.ndarray] = []
    for j in range(block.shape[-1]):
        found.append(unit(deflate(block[..., j], found)))
    return np.stack(found, axis=-1)


def spectral_labels(x: np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of each block (B, n, d) -> labels (B, n).

    The rows of X are centred; the top ``classes - 1`` eigenvectors of the n x n Gram matrix embed
    the samples. Two classes: the sign of the top eigenvector. More: k-means on the embedding."""
    centred = x - x.mean(axis=1, keepdims=True)
    gram = centred @ np.swapaxes(centred, -1, -2)
    _, vectors = top_eigen(gram, classes - 1)  # (B, n, classes-1)
    if classes == 2:
        return (vectors[..., 0] < 0).astype(np.int64)
    return kmeans_blocks(vectors, classes, seed)


def kmeans_blocks(blocks: np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    """k-means (scikit-learn, 10 restarts) on each block of points (B, n, p) -> labels (B, n).

    One thread: the blocks are tiny, and thread pools on a busy machine only add waiting."""
    with threadpool_limits(limits=1):
        return np.stack([KMeans(n_clusters=classes, n_init=10, random_state=seed).fit_predict(points)
                         for points in blocks]).astype(np.int64)


def batch_x(batch: Batch) -> np.ndarray:
    return batch["x"].detach().cpu().double().numpy()


def as_tensors(**arrays: np.ndarray) -> Batch:
    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


@dataclass
class Eigh:
    """Exact top-k eigenpairs of C by ``numpy.linalg.eigh`` (the reference)."""

    k: int

    def __call__(self, batch: Batch) -> Batch:
        values, vectors = top_eigen(second_moment(batch_x(batch)), self.k)
        return as_tensors(vectors=vectors, values=values)


@dataclass
class PowerMethod:
    """Deflated power method with ``iterations`` per vector (None: to convergence)."""

    k: int
    iterations: int | None
    mode: str = "sequential"
    seed: int = 0

    def __call__(self, batch: Batch) -> Batch:
        x = batch_x(batch)
        start = start_vectors(self.seed, x.shape[0], x.shape[-1], self.k)
        values, vectors = power_method(second_moment(x), self.k, self.iterations, start, self.mode)
        return as_tensors(vectors=canonical_sign(vectors), values=values)


@dataclass
class SpectralClustering:
    """Cluster labels from the top eigenvector(s) of the centred Gram matrix."""

    classes: int
    seed: int = 0

    def __call__(self, batch: Batch) -> Batch:
        return as_tensors(labels=spectral_labels(batch_x(batch), self.classes, self.seed))


@dataclass
class KMeansClustering:
    """k-means on the raw samples of each block."""

    classes: int
    seed: int = 0

    def __call__(self, batch: Batch) -> Batch:
        return as_tensors(labels=kmeans_blocks(batch_x(batch), self.classes, self.seed))
