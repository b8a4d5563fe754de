"""Classical solvers for the in-context Newton family, behind the models' call signature.

A regression model maps prompt tokens (B, n + 1, d + 1) to the query's answer (B,); an inversion
model maps matrices (B, d, d) to their inverses (B, d, d). Every baseline here is such a callable
(tensor in, tensor out, same dtype and device), and an iterative one also has
``iterates(inputs) -> list`` with the answer after 0, 1, ..., ``steps`` steps, so that one call
draws the whole error-versus-steps curve. The arithmetic is numpy float64.

* Newton-Schulz of order n (n = 2 is Newton's method for the inverse):
  X <- X sum_{m=0}^{n-1} (-1)^m C(n, m+1) (A X)^m from X_0 = alpha A^T, so that
  I - A X_{t+1} = (I - A X_t)^n. alpha = 2 / (s_max^2 + s_min^2) (s the nonzero singular values)
  is the choice that minimises |I - A X_0|; it needs the spectrum, which these oracles are given.
* In-context regression runs Newton-Schulz on the empirical covariance S = A^T A / n + ridge I
  and answers a_q^T X_k (A^T y / n); the exact answer uses the (pseudo-)inverse; gradient descent
  runs w <- w - eta (S w - A^T y / n) from w = 0 with eta = scale / lambda_max(S).
* Logistic regression: damped Newton (step 2 sqrt(mu) / (2 sqrt(mu) + lambda_f(w))) and gradient
  descent with eta = scale / (lambda_max(A^T A / n) / 4 + mu), both from w = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log

import numpy as np
import torch

from linalgformer.linalg import newton_schulz_coefficients
from linalgformer.problems.newton import damped_newton_step, logistic_gradient_hessian, logistic_minimiser, split_prompt

GD_SCALES = (0.5, 1.0, 1.5, 1.9)  # step sizes tried for gradient descent, in units of 1/lambda_max


# --- Newton-Schulz on matrices ---

def newton_schulz_step(a: np.ndarray, x: np.ndarray, order: int = 2) -> np.ndarray:
    """One step of order ``order`` (Horner's rule: Y <- Y Z + c_m X with Z = A X)."""
    coef = newton_schulz_coefficients(order)
    z = a @ x
    y = coef[-1] * x
    for c in reversed(coef[:-1]):
        y = y @ z + c * x
    return y


def optimal_alpha(a: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """alpha = 2 / (s_max^2 + s_min^2) per matrix, s_min the smallest nonzero singular value."""
    s = np.linalg.svd(a, compute_uv=False)
    top = s[..., 0]
    low = np.where(s > rtol * top[..., None], s, np.inf).min(-1)
    return 2.0 / (top ** 2 + low ** 2)


def newton_schulz_iterates(a: np.ndarray, steps: int, order: int = 2,
                           alpha: np.ndarray | float | None = None) -> list[np.ndarray]:
    """[X_0, X_1, ..., X_steps] for a batch (B, d, d), X_0 = alpha A^T."""
    alpha = optimal_alpha(a) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), a.shape[:-2])
    x = alpha[..., None, None] * np.swapaxes(a, -1, -2)
    out = [x]
    for _ in range(steps):
        x = newton_schulz_step(a, x, order)
        out.append(x)
    return out


def predicted_steps(kappa: float, eps: float, order: int = 2) -> int:
    """Steps after which |I - A X_t| <= eps with the optimal alpha: r0^(order^t) <= eps.

    r0 = (kappa^2 - 1) / (kappa^2 + 1) is |I - A X_0|; so t = ceil(log_order(ln eps / ln r0)),
    about 2 log_order(kappa) + log_order(ln 1/eps): log kappa to reach the quadratic regime, then
    log log 1/eps."""
    r0 = (kappa ** 2 - 1) / (kappa ** 2 + 1)
    if r0 <= eps:
        return 0
    need = log(eps) / log(r0)
    steps = 0
    while order ** steps < need:
        steps += 1
    return steps


# --- adapters: tensors in, tensors out ---

def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


class Baseline:
    """Callable like a model; subclasses define ``curve(numpy inputs) -> list of numpy answers``."""

    steps: int = 0

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def iterates(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        return [_tensor(a, inputs) for a in self.curve(_numpy(inputs))]

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return _tensor(self.curve(_numpy(inputs))[-1], inputs)


@dataclass
class NewtonSchulzInverse(Baseline):
    steps: int = 10
    order: int = 2

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        return newton_schulz_iterates(inputs, self.steps, self.order)


@dataclass
class ExactInverse(Baseline):
    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        return [np.linalg.pinv(inputs)]


# --- in-context linear regression ---

def covariance_moments(tokens: np.ndarray, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S = A^T A / n + ridge I, b = A^T y / n, query) from prompt tokens."""
    a, y, query = split_prompt(tokens)
    n, dim = a.shape[-2], a.shape[-1]
    cov = np.swapaxes(a, -1, -2) @ a / n + ridge * np.eye(dim)
    return cov, np.einsum("bnd,bn->bd", a, y) / n, query


@dataclass
class NewtonSchulzRegression(Baseline):
    """a_q^T X_k b with X_k the k-th Newton-Schulz iterate of order ``order`` for S^-1."""

    steps: int = 6
    order: int = 2
    ridge: float = 0.0

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        cov, b, query = covariance_moments(inputs, self.ridge)
        return [np.einsum("bd,bde,be->b", query, x, b) for x in newton_schulz_iterates(cov, self.steps, self.order)]


@dataclass
class ExactRegression(Baseline):
    """Least squares (ridge = 0, minimum-norm solution) or ridge regression, solved exactly."""

    ridge: float = 0.0

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        cov, b, query = covariance_moments(inputs, self.ridge)
        return [np.einsum("bd,bde,be->b", query, np.linalg.pinv(cov, hermitian=True), b)]


@dataclass
class GradientDescentRegression(Baseline):
    """k steps of gradient descent on |A w - y|^2 / 2n (+ ridge |w|^2 / 2) from w = 0."""

    steps: int = 6
    scale: float = 1.0
    ridge: float = 0.0

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        cov, b, query = covariance_moments(inputs, self.ridge)
        eta = self.scale / np.linalg.eigvalsh(cov)[:, -1]
        w = np.zeros_like(b)
        out = [np.einsum("bd,bd->b", query, w)]
        for _ in range(self.steps):
            w = w - eta[:, None] * (np.einsum("bde,be->bd", cov, w) - b)
            out.append(np.einsum("bd,bd->b", query, w))
        return out


# --- in-context logistic regression ---

@dataclass
class DampedNewtonLogistic(Baseline):
    """w_k from damped Newton on f (``steps=None``: to a decrement below ``tol``); answers w_k . a_q."""

    steps: int | None = 6
    mu: float = 0.1
    tol: float = 1e-12

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        a, y, query = split_prompt(inputs)
        if self.steps is None:
            return [np.einsum("bd,bd->b", query, logistic_minimiser(a, y, self.mu, self.tol))]
        w = np.zeros_like(query)
        out = [np.einsum("bd,bd->b", query, w)]
        for _ in range(self.steps):
            w, _ = damped_newton_step(w, a, y, self.mu)
            out.append(np.einsum("bd,bd->b", query, w))
        return out


@dataclass
class GradientDescentLogistic(Baseline):
    """k steps of gradient descent on f from w = 0, eta = scale / (lambda_max(A^T A/n)/4 + mu)."""

    steps: int = 6
    mu: float = 0.1
    scale: float = 1.0

    def curve(self, inputs: np.ndarray) -> list[np.ndarray]:
        a, y, query = split_prompt(inputs)
        smooth = np.linalg.eigvalsh(np.swapaxes(a, -1, -2) @ a / a.shape[-2])[:, -1] / 4 + self.mu
        eta = self.scale / smooth
        w = np.zeros_like(query)
        out = [np.einsum("bd,bd->b", query, w)]
        for _ in range(self.steps):
            grad, _ = logistic_gradient_hessian(w, a, y, self.mu)
            w = w - eta[:, None] * grad
            out.append(np.einsum("bd,bd->b", query, w))
        return out
