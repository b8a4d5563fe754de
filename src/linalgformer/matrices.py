"""Random matrices for the tokenized problems, drawn in batches from an explicit Generator.

Every function returns a stacked batch ``(count, rows, cols)`` built without a Python loop per
matrix. Batches of mixed sizes or laws are drawn by grouping: :func:`draw_dims` and
:meth:`Mixture.draw` pick a size and a law per example, :func:`group_by` splits the batch into
groups that share them, and each group is drawn in one vectorised call.

Coefficient laws (``A`` = ``bound``, 10 by default):

* ``uniform``: iid uniform on [-A, A] (standard deviation A/sqrt(3));
* ``gaussian``: iid N(0, A^2/3), the same standard deviation as the uniform law.

Eigenvalue laws of symmetric n x n matrices, with s = sqrt(n) * A / sqrt(3) (the standard
deviation of a Wigner matrix's eigenvalues):

=============  ===========================================================================
semicircle     a Wigner matrix as is: the lower triangle drawn iid, mirrored above
positive       the Wigner eigenvalues' absolute values
uniform        uniform on [-s*sqrt(3), s*sqrt(3)]
gaussian       N(0, s^2)
laplace        Laplace(0, s/sqrt(2)) (variance s^2)
positive2      |Laplace(0, s/sqrt(2))|
marcenko       M^T M with M's coefficients on [-sqrt(A), sqrt(A)] (Wishart; eigenvalues >= 0)
=============  ===========================================================================

Every law but ``semicircle`` and ``marcenko`` keeps the eigenbasis Q of a fresh Wigner matrix and
replaces its eigenvalues: the matrix is Q diag(lambda) Q^T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from linalgformer.errors import UserError

COEFFICIENT_LAWS = ("uniform", "gaussian")
LAWS = ("semicircle", "positive", "uniform", "gaussian", "laplace", "positive2", "marcenko")
# Laws that replace the eigenvalues of a Wigner matrix, keeping its eigenbasis.
_REPLACED_SPECTRUM = ("positive", "uniform", "gaussian", "laplace", "positive2")


def check_coefficient_law(name: str) -> None:
    if name not in COEFFICIENT_LAWS:
        raise UserError(f"unknown coefficient law {name!r} (known: {', '.join(COEFFICIENT_LAWS)}).")


def random_matrices(rng: np.random.Generator, count: int, rows: int, cols: int,
                    coefficients: str = "uniform", bound: float = 10.0) -> np.ndarray:
    """(count, rows, cols) iid coefficients: uniform on [-bound, bound] or N(0, bound^2/3)."""
    check_coefficient_law(coefficients)
    shape = (count, rows, cols)
    if coefficients == "gaussian":
        return rng.standard_normal(shape) * (bound / math.sqrt(3.0))
    return rng.uniform(-bound, bound, shape)


def random_orthogonal(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """(count, dim, dim) Haar-distributed orthogonal matrices (QR of a Gaussian with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((count, dim, dim)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def symmetrize_lower(mats: np.ndarray) -> np.ndarray:
    """Mirror each matrix's lower triangle above the diagonal: (B, n, n) -> exactly symmetric."""
    lower = np.tril(mats)
    return lower + np.swapaxes(np.tril(mats, -1), -1, -2)


def wigner_matrices(rng: np.random.Generator, count: int, dim: int,
                    coefficients: str = "uniform", bound: float = 10.0) -> np.ndarray:
    """(count, dim, dim) symmetric matrices with iid coefficients on and below the diagonal."""
    return symmetrize_lower(random_matrices(rng, count, dim, dim, coefficients, bound))


def law_eigenvalues(rng: np.random.Generator, law: str, count: int, dim: int, bound: float,
                    wigner_values: np.ndarray) -> np.ndarray:
    """(count, dim) eigenvalues of ``law`` (one of the replaced-spectrum laws), s = sqrt(n)A/sqrt(3)."""
    scale = math.sqrt(dim) * bound / math.sqrt(3.0)
    shape = (count, dim)
    if law == "positive":
        return np.abs(wigner_values)
    if law == "uniform":
        return rng.uniform(-scale * math.sqrt(3.0), scale * math.sqrt(3.0), shape)
    if law == "gaussian":
        return rng.standard_normal(shape) * scale
    if law == "laplace":
        return rng.laplace(0.0, scale / math.sqrt(2.0), shape)
    if law == "positive2":
        return np.abs(rng.laplace(0.0, scale / math.sqrt(2.0), shape))
    raise UserError(f"unknown eigenvalue law {law!r} (known: {', '.join(LAWS)}).")


def from_spectrum(values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Q diag(lambda) Q^T for a batch: values (B, n), vectors (B, n, n) with eigenvectors as columns."""
    mats = (vectors * values[:, None, :]) @ np.swapaxes(vectors, -1, -2)
    return 0.5 * (mats + np.swapaxes(mats, -1, -2))  # exactly symmetric despite rounding


def symmetric_matrices(rng: np.random.Generator, law: str, count: int, dim: int,
                       coefficients: str = "uniform", bound: float = 10.0) -> np.ndarray:
    """(count, dim, dim) symmetric matrices whose spectrum follows eigenvalue law ``law``."""
    if law == "marcenko":
        factors = random_matrices(rng, count, dim, dim, coefficients, math.sqrt(bound))
        gram = np.swapaxes(factors, -1, -2) @ factors
        return 0.5 * (gram + np.swapaxes(gram, -1, -2))
    wigner = wigner_matrices(rng, count, dim, coefficients, bound)
    if law == "semicircle":
        return wigner
    if law not in _REPLACED_SPECTRUM:
        raise UserError(f"unknown eigenvalue law {law!r} (known: {', '.join(LAWS)}).")
    values, vectors = np.linalg.eigh(wigner)
    return from_spectrum(law_eigenvalues(rng, law, count, dim, bound, values), vectors)


def add_noise(rng: np.random.Generator, mats: np.ndarray, noise: float, bound: float,
              symmetric: bool = False) -> np.ndarray:
    """Add iid N(0, (noise * bound/sqrt(3))^2) noise: ``noise`` is relative to the coefficients' std.

    With ``symmetric`` the noise is drawn on the lower triangle and mirrored, so the result stays
    symmetric."""
    if noise <= 0.0:
        return mats
    perturbation = rng.standard_normal(mats.shape) * (noise * bound / math.sqrt(3.0))
    if symmetric:
        perturbation = symmetrize_lower(perturbation)
    return mats + perturbation


def draw_dims(rng: np.random.Generator, count: int, min_dim: int, max_dim: int, power: float = 0.0) -> np.ndarray:
    """(count,) int64 dimensions in [min_dim, max_dim]: uniformly, or with ``power`` p > 0 size n
    drawn with probability proportional to n**p (2: in proportion to a square answer's entries)."""
    if power == 0 or min_dim == max_dim:
        return rng.integers(min_dim, max_dim + 1, size=count, dtype=np.int64)
    sizes = np.arange(min_dim, max_dim + 1, dtype=np.int64)
    weights = sizes.astype(np.float64) ** power
    return rng.choice(sizes, size=count, p=weights / weights.sum())


@dataclass(frozen=True)
class Mixture:
    """A mixture of laws: ``laws[i]`` is drawn with probability ``weights[i]`` (summing to 1)."""

    laws: tuple[str, ...]
    weights: tuple[float, ...]

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """(count,) law names; a single law consumes no randomness."""
        if len(self.laws) == 1:
            return np.full(count, self.laws[0], dtype=object)
        picks = rng.choice(len(self.laws), size=count, p=np.asarray(self.weights))
        return np.asarray(self.laws, dtype=object)[picks]

    def describe(self) -> str:
        if len(self.laws) == 1:
            return self.laws[0]
        return ",".join(f"{law}:{weight:.3g}" for law, weight in zip(self.laws, self.weights))


def parse_mixture(text: str, known: tuple[str, ...] = LAWS) -> Mixture:
    """``"laplace"``, ``"laplace,semicircle"`` (equal weights) or ``"laplace:3,semicircle:1"``."""
    laws, weights = [], []
    for item in text.split(","):
        name, _, weight_text = item.strip().partition(":")
        if name not in known:
            raise UserError(f"unknown law or matrix family {name!r} in {text!r} (known: {', '.join(known)}).")
        if name in laws:
            raise UserError(f"law {name!r} appears twice in {text!r}.")
        laws.append(name)
        weights.append(_mixture_weight(weight_text, text))
    total = sum(weights)
    if total <= 0.0:
        raise UserError(f"the weights in {text!r} must not all be zero.")
    return Mixture(tuple(laws), tuple(w / total for w in weights))


def _mixture_weight(text: str, whole: str) -> float:
    if not text.strip():
        return 1.0
    try:
        weight = float(text)
    except ValueError:
        raise UserError(f"law weight {text!r} in {whole!r} is not a number.") from None
    if not (math.isfinite(weight) and weight >= 0.0):
        raise UserError(f"law weight {text!r} in {whole!r} must be a finite number >= 0.")
    return weight


def group_by(*keys: np.ndarray) -> list[tuple[tuple, np.ndarray]]:
    """Split batch positions by equal keys: [(key values, sorted int indices)], keys in sorted order.

    ``keys`` are aligned (count,) arrays (e.g. rows, cols, law); positions keep their order inside
    each group, so results can be written back with ``out[indices] = group_result``."""
    if not keys or len(keys[0]) == 0:
        return []
    codes = []
    for key in keys:
        uniques, inverse = np.unique(np.asarray(key), return_inverse=True)
        codes.append((uniques, inverse.reshape(-1)))
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    for uniques, inverse in codes:
        combined = combined * len(uniques) + inverse
    order = np.argsort(combined, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(combined[order]) != 0])
    groups = []
    for indices in np.split(order, starts[1:]):
        first = indices[0]
        key = tuple(_plain(uniques[inverse[first]]) for uniques, inverse in codes)
        groups.append((key, indices))
    return groups


def _plain(value):
    """numpy scalar -> Python scalar (so keys compare and format like ints and strs)."""
    return value.item() if isinstance(value, np.generic) else value
