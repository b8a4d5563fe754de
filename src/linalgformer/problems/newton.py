"""In-context problems of Giannou et al.: regression prompts and matrices to invert.

Everything here is numpy, vectorised over the batch and drawn only from an explicit
``np.random.Generator``. Three tasks:

* ``linreg``  linear regression: x ~ N(0, S) with S = Q diag(lam) Q^T, lam_max ~ U[1, 100],
  lam_min = lam_max / kappa, the other eigenvalues log-uniform in between; w ~ N(0, I/d);
  y = w.x + noise * N(0, 1). The target is the query's y.
* ``logreg``  regularised logistic regression: a uniform in the unit ball (|a| <= 1), labels
  y = +-1 with P(y = 1) = sigmoid(w_true . a), w_true ~ N(0, teacher_scale^2 I). The target is
  w* . a_query with w* = argmin f(w) = mean log(1 + exp(-y w.a)) + mu/2 |w|^2.
* ``inverse`` a d x d matrix A = U diag(s) V^T (U = V when ``symmetric``) with singular values in
  [1/kappa, 1], both ends attained; the target is A^-1.

Prompt layout (one regression example, d = 2, n = 3 context points); a batch is (B, n + 1, d + 1):

    token 0: [x_1[0], x_1[1], y_1]
    token 1: [x_2[0], x_2[1], y_2]
    token 2: [x_3[0], x_3[1], y_3]
    token 3: [x_q[0], x_q[1], 0  ]   <- the query: its y is zeroed, the answer is read here

For instance x_1 = (0.5, -1.0), y_1 = 2.0 is the token [0.5, -1.0, 2.0].

Curriculum (Garg et al.): training may start at a smaller dimension and prompt length and grow
every ``curriculum_every`` steps; a smaller dimension d' is written into the first d' coordinates
and the rest are zero, so the token width never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linalgformer.config import FLAG, at_least, check_fields, each, greater_than, one_of
from linalgformer.matrices import random_orthogonal

TASKS = ("linreg", "logreg", "inverse")


@dataclass
class ProblemConfig:
    """The ``problem:`` section of a newton-family run."""

    task: str = "linreg"  # linreg | logreg | inverse
    dim: int = 10
    points: int = 50  # in-context examples; the query is one more token
    kappas: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0, 100.0)  # condition numbers (linreg, inverse)
    lambda_max: tuple[float, float] = (1.0, 100.0)  # largest covariance eigenvalue ~ U[lo, hi]
    noise: float = 0.0  # linreg label noise std
    mu: float = 0.1  # logreg L2 regulariser
    teacher_scale: float = 1.0  # logreg: w_true ~ N(0, teacher_scale^2 I)
    symmetric: bool = False  # inverse: symmetric positive definite A
    curriculum: bool = False
    start_dim: int = 2
    start_points: int = 10
    dim_step: int = 1
    points_step: int = 5
    curriculum_every: int = 500

    def __post_init__(self):
        check_fields(self, PROBLEM_RULES)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.dim < 1 or self.points < 1:
            raise ValueError("dim and points must be at least 1")
        if not self.kappas or min(self.kappas) < 1:
            raise ValueError("kappas must be a non-empty list of condition numbers >= 1")
        lo, hi = self.lambda_max
        if not 0 < lo <= hi:
            raise ValueError("lambda_max must be [lo, hi] with 0 < lo <= hi")
        if self.noise < 0 or self.mu <= 0:
            raise ValueError("noise must be >= 0 and mu > 0")
        if self.curriculum and not (1 <= self.start_dim <= self.dim and 1 <= self.start_points <= self.points):
            raise ValueError("curriculum start_dim/start_points must lie in [1, dim]/[1, points]")
        if self.curriculum_every < 1:
            raise ValueError("curriculum_every must be at least 1")


PROBLEM_RULES = {
    "task": one_of(*TASKS), "dim": at_least(1), "points": at_least(1),
    "kappas": each(at_least(1.0), non_empty=True), "lambda_max": each(greater_than(0.0), count=2),
    "noise": at_least(0.0), "mu": greater_than(0.0), "teacher_scale": greater_than(0.0), "symmetric": FLAG,
    "curriculum": FLAG, "start_dim": at_least(1), "start_points": at_least(1), "dim_step": at_least(0),
    "points_step": at_least(0), "curriculum_every": at_least(1),
}


@dataclass
class Curriculum:
    """Dimension and prompt length as a function of the training step (a pure function)."""

    config: ProblemConfig

    def stage(self, step: int) -> tuple[int, int]:
        c = self.config
        if not c.curriculum:
            return c.dim, c.points
        grown = step // c.curriculum_every
        return (min(c.dim, c.start_dim + grown * c.dim_step),
                min(c.points, c.start_points + grown * c.points_step))


@dataclass
class Prompts:
    """A batch of regression prompts and what a solver needs to judge them.

    ``tokens`` (B, n + 1, d + 1) as above; ``target`` (B,) the answer at the query; ``kappa`` (B,)
    the condition number drawn (0 for logreg); ``weights`` (B, d) the true w (linreg) or the
    minimiser w* (logreg)."""

    tokens: np.ndarray
    target: np.ndarray
    kappa: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Matrices:
    """A batch of matrices to invert: ``matrices`` and ``inverses`` (B, d, d), ``kappa`` (B,)."""

    matrices: np.ndarray
    inverses: np.ndarray
    kappa: np.ndarray

    def __len__(self) -> int:
        return len(self.matrices)


def split_prompt(tokens):
    """(A (B, n, d), y (B, n), query (B, d)) from prompt tokens (numpy or torch)."""
    return tokens[..., :-1, :-1], tokens[..., :-1, -1], tokens[..., -1, :-1]


def kappas_for(rng: np.random.Generator, config: ProblemConfig, count: int) -> np.ndarray:
    return rng.choice(np.asarray(config.kappas, dtype=np.float64), size=count)


def spectrum(rng: np.random.Generator, top: np.ndarray, kappa: np.ndarray, dim: int) -> np.ndarray:
    """(B, dim) values in [top / kappa, top], both ends attained, the others log-uniform."""
    low = top / kappa
    inner = np.exp(rng.uniform(np.log(low)[:, None], np.log(top)[:, None], size=(len(top), max(dim - 2, 0))))
    values = np.concatenate([top[:, None], inner, low[:, None]], axis=1)
    return values[:, :dim]


def sample_linreg(rng: np.random.Generator, config: ProblemConfig, count: int,
                  kappa: np.ndarray | None = None, dim: int | None = None,
                  points: int | None = None) -> Prompts:
    """Linear-regression prompts; ``dim``/``points`` below the config's for the curriculum."""
    dim, points = dim or config.dim, points or config.points
    kappa = kappas_for(rng, config, count) if kappa is None else np.asarray(kappa, dtype=np.float64)
    top = rng.uniform(*config.lambda_max, size=count)
    eig = spectrum(rng, top, kappa, dim)  # (B, d')
    basis = random_orthogonal(rng, count, dim)
    z = rng.standard_normal((count, points + 1, dim))
    x = np.einsum("bij,bnj->bni", basis * np.sqrt(eig)[:, None, :], z)  # x = Q diag(sqrt lam) z
    w = rng.standard_normal((count, dim)) / np.sqrt(dim)
    y = np.einsum("bnd,bd->bn", x, w) + config.noise * rng.standard_normal((count, points + 1))
    return _prompts(x, y, kappa, w, config.dim, target=y[:, -1].copy())


def sample_logreg(rng: np.random.Generator, config: ProblemConfig, count: int,
                  dim: int | None = None, points: int | None = None) -> Prompts:
    """Logistic-regression prompts; the target is w* . a_query, w* the regularised minimiser."""
    dim, points = dim or config.dim, points or config.points
    direction = rng.standard_normal((count, points + 1, dim))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    a = direction * rng.uniform(size=(count, points + 1, 1)) ** (1.0 / dim)  # uniform in the ball
    teacher = config.teacher_scale * rng.standard_normal((count, dim))
    chance = 1.0 / (1.0 + np.exp(-np.einsum("bnd,bd->bn", a, teacher)))
    labels = np.where(rng.uniform(size=chance.shape) < chance, 1.0, -1.0)
    best = logistic_minimiser(a[:, :-1], labels[:, :-1], config.mu)
    target = np.einsum("bd,bd->b", a[:, -1], best)
    return _prompts(a, labels, np.zeros(count), best, config.dim, target=target)


def _prompts(x: np.ndarray, y: np.ndarray, kappa: np.ndarray, weights: np.ndarray,
             width: int, target: np.ndarray) -> Prompts:
    """Tokens [x_i, y_i] zero-padded to ``width`` coordinates, the query's y zeroed."""
    count, tokens, dim = x.shape
    out = np.zeros((count, tokens, width + 1))
    out[..., :dim] = x
    out[..., -1] = y
    out[:, -1, -1] = 0.0
    padded = np.zeros((count, width))
    padded[:, :dim] = weights
    return Prompts(tokens=out, target=target, kappa=kappa, weights=padded)


def sample_inverse(rng: np.random.Generator, config: ProblemConfig, count: int,
                   kappa: np.ndarray | None = None) -> Matrices:
    """Matrices with singular values in [1/kappa, 1] (symmetric positive definite if asked)."""
    kappa = kappas_for(rng, config, count) if kappa is None else np.asarray(kappa, dtype=np.float64)
    values = spectrum(rng, np.ones(count), kappa, config.dim)
    left = random_orthogonal(rng, count, config.dim)
    right = left if config.symmetric else random_orthogonal(rng, count, config.dim)
    matrices = (left * values[:, None, :]) @ right.transpose(0, 2, 1)
    inverses = (right / values[:, None, :]) @ left.transpose(0, 2, 1)
    if config.symmetric:  # exact symmetry, so that A^T X = A X holds to the last bit
        matrices = (matrices + matrices.transpose(0, 2, 1)) / 2
    return Matrices(matrices=matrices, inverses=inverses, kappa=kappa)


# --- regularised logistic regression: the objective and damped Newton (Giannou et al.) ---

def logistic_objective(w: np.ndarray, a: np.ndarray, y: np.ndarray, mu: float) -> np.ndarray:
    """f(w) = mean_i log(1 + exp(-y_i w.a_i)) + mu/2 |w|^2, per example: (B,)."""
    margin = y * np.einsum("bnd,bd->bn", a, w)
    return np.logaddexp(0.0, -margin).mean(-1) + 0.5 * mu * (w * w).sum(-1)


def logistic_gradient_hessian(w: np.ndarray, a: np.ndarray, y: np.ndarray,
                              mu: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (B, d) and Hessian (B, d, d) of f at w."""
    n, dim = a.shape[-2], a.shape[-1]
    margin = y * np.einsum("bnd,bd->bn", a, w)
    sig = 0.5 * (1.0 + np.tanh(-0.5 * margin))  # sigmoid(-margin), stable
    grad = -np.einsum("bn,bnd->bd", y * sig, a) / n + mu * w
    curvature = sig * (1.0 - sig)
    hess = np.einsum("bn,bnd,bne->bde", curvature, a, a) / n + mu * np.eye(dim)
    return grad, hess


def damped_newton_step(w: np.ndarray, a: np.ndarray, y: np.ndarray,
                       mu: float) -> tuple[np.ndarray, np.ndarray]:
    """One damped Newton step w - t H^-1 g, t = 2 sqrt(mu) / (2 sqrt(mu) + lambda_f(w)).

    lambda_f(w) = sqrt(g^T H^-1 g) is the Newton decrement; returns (new w, decrement)."""
    grad, hess = logistic_gradient_hessian(w, a, y, mu)
    direction = np.linalg.solve(hess, grad[..., None])[..., 0]
    decrement = np.sqrt(np.maximum((grad * direction).sum(-1), 0.0))
    step = 2 * np.sqrt(mu) / (2 * np.sqrt(mu) + decrement)
    return w - step[:, None] * direction, decrement


def logistic_minimiser(a: np.ndarray, y: np.ndarray, mu: float, tol: float = 1e-12,
                       max_steps: int = 200) -> np.ndarray:
    """argmin f for each example, by damped Newton from 0 run to a decrement below ``tol``."""
    w = np.zeros(a.shape[:1] + a.shape[-1:])
    for _ in range(max_steps):
        w, decrement = damped_newton_step(w, a, y, mu)
        if decrement.max() < tol:
            break
    return w
