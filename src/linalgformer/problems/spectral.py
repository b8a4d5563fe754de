"""Spectral problems (He et al., "Learning Spectral Methods by Transformers"), in numpy.

An instance is a data matrix X of n samples in d dimensions; the spectral object is its second
moment (uncentred covariance) ``C = X^T X / n``, the matrix the paper's power method runs on.

* ``pca``: X = Z L^T, Z an n x d standard Gaussian. ``spectrum="authors"`` takes the authors'
  L = randn(d, d) + 0.1 I; ``spectrum="geometric"`` takes L = Q diag(sqrt(decay^i)) with Q a random
  rotation, so the population covariance L L^T has eigenvalues 1, decay, decay^2, ...: the eigen-gap
  is controlled by ``decay``. Targets: the top-k eigenvalues of C (descending) and its eigenvectors
  as the columns of a d x k matrix, each with the sign that makes its largest-magnitude entry positive.
* ``gmm``: n samples drawn uniformly from ``classes`` Gaussians N(mu_c, I) in d dimensions whose
  means lie ``separation`` apart (two classes: +-(separation/2) u; more: separation/sqrt(2) times
  orthonormal directions). Target: each sample's class label.

Everything is vectorised over the batch and drawn only from the ``numpy.random.Generator`` passed in.
The metrics at the bottom ignore the sign of eigenvectors (an eigenvector is defined up to sign) and
the names of clusters (accuracy after the best matching of labels, by the Hungarian algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from linalgformer.config import FLAG, TEXT, at_least, between, check_fields, each, one_of
from linalgformer.linalg import canonical_sign
from linalgformer.matrices import random_orthogonal

SPECTRA = ("authors", "geometric")
TASKS = ("pca", "gmm")
SOURCES = ("synthetic", "digits", "idx")
LOSSES = ("abs_cos", "cos2", "signed_cos")


@dataclass
class ProblemConfig:
    """The ``problem:`` section of a spectral run."""

    task: str = "pca"  # pca (top-k eigenvectors and eigenvalues) | gmm (cluster labels)
    data: str = "synthetic"  # synthetic | digits (scikit-learn, bundled) | idx (MNIST-style files)
    dim: int = 10  # d
    samples: int = 10  # n, samples per instance (a block of images for real data)
    k: int = 3  # eigenvectors (pca)
    spectrum: str = "authors"  # synthetic pca: authors (L = randn + 0.1 I) | geometric
    decay: float = 0.7  # geometric spectrum: lambda_{i+1} / lambda_i of the population covariance
    classes: int = 2  # gmm
    separation: float = 3.0  # synthetic gmm: distance between class means, in noise standard deviations
    loss: str = "abs_cos"  # pca: abs_cos (1 - |cos|) | cos2 (1 - cos^2) | signed_cos (1 - cos, the authors')
    value_weight: float = 0.1  # pca: weight of the eigenvalue loss (squared error relative to lambda_1)
    idx_images: str = ""  # data=idx: images file (e.g. train-images-idx3-ubyte[.gz])
    idx_labels: str = ""  # data=idx: labels file (needed for gmm)
    test_fraction: float = 0.2  # real data: share of images held out for evaluation
    digit_classes: tuple[int, ...] = ()  # real-data gmm: the labels to cluster (default 0..classes-1)
    random_classes: bool = False  # real-data gmm: each block draws its ``classes`` labels afresh from all labels

    def __post_init__(self):
        check_fields(self, PROBLEM_RULES)
        checks = [(self.task in TASKS, f"task must be one of {', '.join(TASKS)}"),
                  (self.data in SOURCES, f"data must be one of {', '.join(SOURCES)}"),
                  (self.spectrum in SPECTRA, f"spectrum must be one of {', '.join(SPECTRA)}"),
                  (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
                  (self.dim >= 1 and self.samples >= 1, "dim and samples must be at least 1"),
                  (1 <= self.k <= self.dim, "k must be between 1 and dim"),
                  (2 <= self.classes <= 5, "classes must be between 2 and 5"),
                  (0 < self.decay <= 1, "decay must be in (0, 1]"),
                  (0 < self.test_fraction < 1, "test_fraction must be in (0, 1)"),
                  (self.data != "idx" or bool(self.idx_images), "data idx needs problem.idx_images"),
                  (not self.digit_classes or len(self.digit_classes) == self.classes,
                   "digit_classes must name one label per class"),
                  (not (self.random_classes and self.digit_classes), "random_classes and digit_classes exclude each other")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def describe(self) -> str:
        """The problem in words (model cards, ``linalgformer models``)."""
        data = {"synthetic": (f"X = Z L^T, {'L = randn + 0.1 I' if self.spectrum == 'authors' else f'geometric spectrum, ratio {self.decay:g}'}"
                              if self.task == "pca" else f"{self.classes}-class Gaussian mixture, separation {self.separation:g}"),
                "digits": f"blocks of scikit-learn digits on {self.dim} principal components",
                "idx": f"blocks of IDX images on {self.dim} principal components"}[self.data]
        if self.task == "pca":
            return f"pca: top-{self.k} eigenvectors and eigenvalues of X^T X / n, X {self.samples} x {self.dim}; {data}"
        return f"gmm: cluster labels of {self.samples} samples in dimension {self.dim}; {data}"


PROBLEM_RULES = {
    "task": one_of(*TASKS), "data": one_of(*SOURCES), "dim": at_least(1), "samples": at_least(1),
    "k": at_least(1), "spectrum": one_of(*SPECTRA), "decay": between(0.0, 1.0, low_open=True),
    "classes": between(2, 5, integer=True), "separation": at_least(0.0), "loss": one_of(*LOSSES),
    "value_weight": at_least(0.0), "idx_images": TEXT, "idx_labels": TEXT,
    "test_fraction": between(0.0, 1.0, low_open=True, high_open=True),
    "digit_classes": each(between(0, 9, integer=True)), "random_classes": FLAG,
}


@dataclass
class SpectralExamples:
    """A batch: ``x`` (B, n, d); PCA targets ``vectors`` (B, d, k) and ``values`` (B, k); or
    clustering targets ``labels`` (B, n) int64."""

    x: np.ndarray
    vectors: np.ndarray | None = None
    values: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


# ----------------------------------------------------------------------------- spectral targets


def second_moment(x: np.ndarray) -> np.ndarray:
    """C = X^T X / n for a batch (B, n, d) -> (B, d, d)."""
    return np.einsum("bnd,bne->bde", x, x) / x.shape[-2]


def top_eigen(c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenpairs of symmetric (B, d, d): values (B, k) descending, vectors (B, d, k)."""
    values, vectors = np.linalg.eigh(c)  # ascending
    return values[..., ::-1][..., :k].copy(), canonical_sign(vectors[..., ::-1][..., :k].copy())


# ----------------------------------------------------------------------------- PCA instances


def authors_mixing(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """The authors' L = randn(d, d) + 0.1 I, one per example: (B, d, d)."""
    return rng.standard_normal((count, dim, dim)) + 0.1 * np.eye(dim)


def geometric_mixing(rng: np.random.Generator, count: int, dim: int, decay: float) -> np.ndarray:
    """L = Q diag(sqrt(decay^i)): population covariance with eigenvalues 1, decay, decay^2, ..."""
    return random_orthogonal(rng, count, dim) * np.sqrt(decay ** np.arange(dim))


def sample_pca(rng: np.random.Generator, count: int, dim: int, samples: int, k: int,
               spectrum: str = "authors", decay: float = 0.7) -> SpectralExamples:
    """``count`` data matrices X = Z L^T (B, n, d) with the top-k eigenpairs of X^T X / n."""
    if spectrum == "authors":
        mixing = authors_mixing(rng, count, dim)
    elif spectrum == "geometric":
        mixing = geometric_mixing(rng, count, dim, decay)
    else:
        raise ValueError(f"unknown spectrum {spectrum!r} (known: {', '.join(SPECTRA)})")
    x = rng.standard_normal((count, samples, dim)) @ np.swapaxes(mixing, -1, -2)
    return pca_examples(x, k)


def pca_examples(x: np.ndarray, k: int) -> SpectralExamples:
    """Wrap data matrices (B, n, d) with their PCA targets."""
    values, vectors = top_eigen(second_moment(x), k)
    return SpectralExamples(x=x, vectors=vectors, values=values)


# ----------------------------------------------------------------------------- Gaussian mixtures


def mixture_means(rng: np.random.Generator, count: int, dim: int, classes: int,
                  separation: float) -> np.ndarray:
    """Class means (B, classes, d), every pair ``separation`` apart."""
    if classes == 2:
        u = rng.standard_normal((count, 1, dim))
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        return np.concatenate([u, -u], axis=1) * (separation / 2)
    if classes > dim:
        raise ValueError(f"{classes} equidistant means need dim >= classes, got dim {dim}")
    directions = np.swapaxes(random_orthogonal(rng, count, dim)[..., :classes], -1, -2)
    return directions * (separation / np.sqrt(2))


def sample_gmm(rng: np.random.Generator, count: int, dim: int, samples: int, classes: int = 2,
               separation: float = 3.0) -> SpectralExamples:
    """``count`` blocks of n samples from a mixture of ``classes`` unit-variance Gaussians."""
    means = mixture_means(rng, count, dim, classes, separation)
    labels = rng.integers(0, classes, size=(count, samples))
    centres = np.take_along_axis(means, labels[..., None], axis=1)  # (B, n, d)
    x = centres + rng.standard_normal((count, samples, dim))
    return SpectralExamples(x=x, labels=labels.astype(np.int64))


# ----------------------------------------------------------------------------- metrics


def abs_cosines(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|cos| between matching columns of (B, d, k) arrays -> (B, k); the sign of either is ignored."""
    dots = np.abs((pred * target).sum(axis=-2))
    norms = np.linalg.norm(pred, axis=-2) * np.linalg.norm(target, axis=-2)
    return dots / np.maximum(norms, 1e-30)


def subspace_distance(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """RMS sine of the principal angles between the column spans (B,): 0 same, 1 orthogonal.

    Equals ||P - P'||_F / sqrt(2k) for the orthogonal projections P, P' on the two spans; ``pred``
    is orthonormalised first (QR), ``target`` is assumed orthonormal."""
    q, _ = np.linalg.qr(pred)
    overlap = np.square(np.swapaxes(q, -1, -2) @ target).sum(axis=(-2, -1))
    return np.sqrt(np.clip(1.0 - overlap / target.shape[-1], 0.0, 1.0))


def eigenvalue_relative_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|pred - target| / |target| per eigenvalue (B, k)."""
    return np.abs(pred - target) / np.maximum(np.abs(target), 1e-30)


def matched_accuracy(pred: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Per-example clustering accuracy (B,) under the best one-to-one renaming of predicted labels.

    The renaming maximises agreement: a Hungarian assignment on the classes x classes confusion."""
    confusion = np.zeros((len(labels), classes, classes), dtype=np.int64)
    batch = np.repeat(np.arange(len(labels)), labels.shape[1])
    np.add.at(confusion, (batch, pred.reshape(-1), labels.reshape(-1)), 1)
    best = np.empty(len(labels))
    for i, table in enumerate(confusion):
        rows, cols = linear_sum_assignment(table, maximize=True)
        best[i] = table[rows, cols].sum()
    return best / labels.shape[1]
