"""Hand-set Newton-Schulz transformers against the classical iterates (float64, tiny sizes)."""

import numpy as np
import pytest
import torch

from linalgformer.baselines.newton import ExactRegression, newton_schulz_iterates, predicted_steps
from linalgformer.models.newton_construction import NewtonInverseConstruction, NewtonRegressionConstruction
from linalgformer.problems.newton import ProblemConfig, sample_inverse, sample_linreg, split_prompt


pytestmark = pytest.mark.usefixtures("one_thread")


def matrices(kappa: float, symmetric: bool = False, dim: int = 5, count: int = 6, seed: int = 0):
    config = ProblemConfig(task="inverse", dim=dim, symmetric=symmetric)
    return sample_inverse(np.random.default_rng(seed), config, count, np.full(count, kappa))


def alpha_for(kappa: float) -> float:
    return 2.0 / (1.0 + kappa ** -2)  # singular values in [1/kappa, 1]


def relative_error(x: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x - inverse, axis=(1, 2)) / np.linalg.norm(inverse, axis=(1, 2))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_inverse_construction_matches_classical_iterates_step_by_step(symmetric, order):
    m = matrices(8.0, symmetric)
    model = NewtonInverseConstruction(5, 4, alpha_for(8.0), order, symmetric)
    built = model.iterates(torch.from_numpy(m.matrices))
    classical = newton_schulz_iterates(m.matrices, 4, order, alpha_for(8.0))
    assert len(built) == len(classical) == 5
    for b, c in zip(built, classical):
        np.testing.assert_allclose(b.numpy(), c, rtol=0, atol=1e-12 * np.abs(c).max())


@pytest.mark.parametrize("symmetric,per_step", [(True, 1), (False, 2)])
def test_one_layer_per_step_for_symmetric_two_for_general(symmetric, per_step):
    model = NewtonInverseConstruction(4, 3, 1.0, 2, symmetric)
    assert len(model.layers) == 1 + 3 * per_step
    assert all(not p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("kappa", [1.0, 3.0, 10.0, 30.0, 100.0])
def test_relative_error_below_1e6_after_the_predicted_layers(kappa):
    m = matrices(kappa)
    steps = predicted_steps(kappa, 1e-6)
    x = NewtonInverseConstruction(5, steps, alpha_for(kappa))(torch.from_numpy(m.matrices)).numpy()
    assert relative_error(x, m.inverses).max() < 1e-6
    if steps > 0:  # one step fewer is not enough for the worst case: the prediction is tight
        fewer = NewtonInverseConstruction(5, steps - 1, alpha_for(kappa))(torch.from_numpy(m.matrices)).numpy()
        assert relative_error(fewer, m.inverses).max() > 1e-6


def test_error_falls_quadratically():
    m = matrices(100.0)
    xs = NewtonInverseConstruction(5, 17, alpha_for(100.0)).iterates(torch.from_numpy(m.matrices))
    residual = [np.linalg.norm(np.eye(5) - m.matrices @ x.numpy(), ord=2, axis=(1, 2)).max() for x in xs]
    for before, after in zip(residual, residual[1:]):
        if after > 1e-13:  # above rounding
            assert after == pytest.approx(before ** 2, rel=1e-6)
    start = next(t for t, r in enumerate(residual) if r < 0.5)  # the quadratic regime: r_(start+t) = r^(2^t)
    assert residual[start + 5] < 0.5 ** 32  # so log2 log2 (1/eps) more steps reach eps
    assert start >= 2 * np.log2(100.0) - 2  # reaching it took about log kappa^2 steps


def test_steps_grow_like_log_kappa():
    steps = [predicted_steps(k, 1e-6) for k in (10.0, 100.0, 1000.0, 10000.0)]
    gaps = np.diff(steps)
    assert all(6 <= g <= 7 for g in gaps)  # 2 log2(10) = 6.6 steps per decade of kappa
    assert predicted_steps(100.0, 1e-6, order=3) < predicted_steps(100.0, 1e-6, order=2)


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_regression_construction_runs_newton_on_the_covariance(ridge):
    config = ProblemConfig(dim=3, points=12, kappas=(5.0,), lambda_max=(1.0, 2.0))
    prompts = sample_linreg(np.random.default_rng(1), config, 4)
    a, _, query = split_prompt(prompts.tokens)
    keys = 12 + (3 if ridge else 0)
    cov = (np.swapaxes(a, 1, 2) @ a + 12 * ridge * np.eye(3)) / keys
    eig = np.linalg.eigvalsh(cov)
    alpha = 2.0 / (eig.max() ** 2 + eig.min() ** 2)
    model = NewtonRegressionConstruction(3, 20, alpha, ridge)
    assert len(model.layers) == 3 + 20
    tokens = torch.from_numpy(prompts.tokens)
    classical = newton_schulz_iterates(cov, 20, 2, alpha)
    for built, x in zip(model.query_iterates(tokens), classical):
        np.testing.assert_allclose(built.numpy(), np.einsum("bde,be->bd", x, query), atol=1e-10)
    np.testing.assert_allclose(model(tokens).numpy(), ExactRegression(ridge)(tokens).numpy(), rtol=1e-8, atol=1e-10)
