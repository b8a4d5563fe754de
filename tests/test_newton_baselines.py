"""Classical solvers of the Newton family, and the in-context problems they solve."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from linalgformer.baselines.newton import (DampedNewtonLogistic, ExactInverse, ExactRegression,
                                           GradientDescentLogistic, GradientDescentRegression,
                                           NewtonSchulzInverse, NewtonSchulzRegression, newton_schulz_coefficients)
from linalgformer.problems.newton import (Curriculum, ProblemConfig, logistic_objective, sample_inverse,
                                             sample_linreg, sample_logreg, split_prompt)


def test_order_n_coefficients_make_the_residual_an_nth_power():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    x = a.T / np.linalg.norm(a, 2) ** 2
    e = np.eye(4) - a @ x
    for order in (2, 3, 4, 5):
        z = a @ x
        new = x @ sum(c * np.linalg.matrix_power(z, m) for m, c in enumerate(newton_schulz_coefficients(order)))
        np.testing.assert_allclose(np.eye(4) - a @ new, np.linalg.matrix_power(e, order), atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_newton_schulz_to_convergence_is_the_inverse(order):
    m = sample_inverse(np.random.default_rng(1), ProblemConfig(task="inverse", dim=6, kappas=(30.0,)), 5)
    a = torch.from_numpy(m.matrices)
    x = NewtonSchulzInverse(steps=40, order=order)(a)
    np.testing.assert_allclose(x.numpy(), m.inverses, atol=1e-9 * np.abs(m.inverses).max())
    np.testing.assert_allclose(ExactInverse()(a).numpy(), m.inverses, atol=1e-9 * np.abs(m.inverses).max())


def test_regression_solvers_agree_with_least_squares():
    config = ProblemConfig(dim=4, points=20, kappas=(10.0,), noise=0.1)
    prompts = sample_linreg(np.random.default_rng(2), config, 8)
    tokens = torch.from_numpy(prompts.tokens)
    a, y, query = split_prompt(prompts.tokens)
    w = np.stack([np.linalg.lstsq(a[i], y[i], rcond=None)[0] for i in range(8)])
    exact = np.einsum("bd,bd->b", query, w)
    np.testing.assert_allclose(ExactRegression()(tokens).numpy(), exact, rtol=1e-8)
    np.testing.assert_allclose(NewtonSchulzRegression(steps=40)(tokens).numpy(), exact, rtol=1e-6)
    slow = GradientDescentRegression(steps=3)(tokens).numpy()
    assert np.abs(slow - exact).max() > 1e-3  # three GD steps are not enough at kappa 10
    curve = NewtonSchulzRegression(steps=5, order=3).iterates(tokens)
    assert len(curve) == 6 and curve[0].dtype == tokens.dtype


def test_damped_newton_converges_to_scipys_minimiser():
    config = ProblemConfig(task="logreg", dim=3, points=15, mu=0.1, teacher_scale=2.0)
    prompts = sample_logreg(np.random.default_rng(3), config, 4)
    a, y, query = split_prompt(prompts.tokens)
    for i in range(4):
        f = lambda w: logistic_objective(w[None], a[i:i + 1], y[i:i + 1], 0.1)[0]  # noqa: E731
        best = minimize(f, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose(prompts.weights[i], best, atol=1e-6)
    tokens = torch.from_numpy(prompts.tokens)
    target = np.einsum("bd,bd->b", query, prompts.weights)
    np.testing.assert_allclose(DampedNewtonLogistic(steps=None)(tokens).numpy(), target, atol=1e-10)
    curve = [float(np.abs(v.numpy() - target).max()) for v in DampedNewtonLogistic(steps=8).iterates(tokens)]
    assert curve[-1] < 1e-8 < curve[1]
    assert np.abs(GradientDescentLogistic(steps=200)(tokens).numpy() - target).max() < 1e-3


def test_problems_are_seeded_and_shaped():
    config = ProblemConfig(dim=4, points=7)
    one = sample_linreg(np.random.default_rng(5), config, 3)
    two = sample_linreg(np.random.default_rng(5), config, 3)
    np.testing.assert_array_equal(one.tokens, two.tokens)
    assert one.tokens.shape == (3, 8, 5)
    assert np.all(one.tokens[:, -1, -1] == 0)  # the query's y is zeroed
    np.testing.assert_allclose(one.target, np.einsum("bd,bd->b", one.tokens[:, -1, :-1], one.weights))  # noise 0
    a, _, _ = split_prompt(sample_linreg(np.random.default_rng(6), config, 2, kappa=np.array([10.0, 10.0]),
                                         points=4000).tokens)
    eig = np.linalg.eigvalsh(np.swapaxes(a, 1, 2) @ a / 4000)
    assert np.all((eig[:, -1] / eig[:, 0] > 7) & (eig[:, -1] / eig[:, 0] < 14))  # population kappa 10
    logreg = sample_logreg(np.random.default_rng(7), ProblemConfig(task="logreg", dim=3, points=9), 5)
    assert np.linalg.norm(logreg.tokens[..., :-1], axis=-1).max() <= 1.0
    assert set(np.unique(logreg.tokens[:, :-1, -1])) <= {-1.0, 1.0}


def test_curriculum_grows_dimension_and_length_and_pads():
    config = ProblemConfig(dim=6, points=20, curriculum=True, start_dim=2, start_points=5,
                           dim_step=2, points_step=5, curriculum_every=10)
    stages = [Curriculum(config).stage(s) for s in (0, 9, 10, 25, 1000)]
    assert stages == [(2, 5), (2, 5), (4, 10), (6, 15), (6, 20)]
    small = sample_linreg(np.random.default_rng(0), config, 2, dim=2, points=5)
    assert small.tokens.shape == (2, 6, 7) and np.all(small.tokens[..., 2:6] == 0)
