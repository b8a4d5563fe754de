"""Random matrices: coefficient laws, Wigner matrices, the seven eigenvalue laws, mixtures, grouping."""

import math

import numpy as np
import pytest

from linalgformer import matrices
from linalgformer.errors import UserError

DIM, COUNT, BOUND = 6, 4000, 10.0
SCALE = math.sqrt(DIM) * BOUND / math.sqrt(3.0)  # s of the eigenvalue laws


def spectrum(law: str, seed: int = 0, coefficients: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    mats = matrices.symmetric_matrices(np.random.default_rng(seed), law, COUNT, DIM, coefficients, BOUND)
    return mats, np.linalg.eigvalsh(mats)


def test_uniform_coefficients_lie_in_bounds_with_the_right_spread():
    mats = matrices.random_matrices(np.random.default_rng(0), 2000, 3, 4, "uniform", 7.0)
    assert mats.shape == (2000, 3, 4)
    assert np.abs(mats).max() <= 7.0 and np.abs(mats).max() > 6.9
    assert mats.std() == pytest.approx(7.0 / math.sqrt(3.0), rel=0.02)


def test_gaussian_coefficients_have_the_uniform_laws_standard_deviation():
    mats = matrices.random_matrices(np.random.default_rng(0), 2000, 5, 5, "gaussian", 10.0)
    assert mats.std() == pytest.approx(10.0 / math.sqrt(3.0), rel=0.02)
    assert abs(mats.mean()) < 0.05
    assert np.abs(mats).max() > 10.0  # not truncated


def test_unknown_coefficient_law_is_a_user_error():
    with pytest.raises(UserError, match="coefficient law"):
        matrices.random_matrices(np.random.default_rng(0), 1, 2, 2, "cauchy")


def test_wigner_matrices_are_exactly_symmetric_and_mirror_the_lower_triangle():
    rng = np.random.default_rng(1)
    mats = matrices.wigner_matrices(rng, 50, 5)
    assert np.array_equal(mats, np.swapaxes(mats, 1, 2))
    raw = matrices.random_matrices(np.random.default_rng(1), 50, 5, 5)
    assert np.array_equal(np.tril(mats), np.tril(raw))


def test_semicircle_is_the_wigner_spectrum_with_std_s():
    mats, values = spectrum("semicircle")
    assert values.std() == pytest.approx(SCALE, rel=0.05)
    assert abs(values.mean()) < 0.05 * SCALE


def test_positive_law_is_the_absolute_wigner_spectrum():
    _, values = spectrum("positive")
    assert values.min() >= -1e-9
    _, wigner = spectrum("semicircle")  # same seed: same Wigner matrices, same eigenbasis
    assert np.allclose(np.sort(values, axis=1), np.sort(np.abs(wigner), axis=1), atol=1e-9)


def test_uniform_law_fills_plus_minus_s_sqrt3():
    _, values = spectrum("uniform")
    edge = SCALE * math.sqrt(3.0)
    assert np.abs(values).max() <= edge + 1e-9
    assert np.abs(values).max() > 0.99 * edge
    assert values.std() == pytest.approx(SCALE, rel=0.05)


def test_gaussian_law_has_std_s_and_normal_tails():
    _, values = spectrum("gaussian")
    assert values.std() == pytest.approx(SCALE, rel=0.05)
    kurtosis = np.mean(values**4) / np.mean(values**2) ** 2
    assert kurtosis == pytest.approx(3.0, abs=0.3)


def test_laplace_law_has_std_s_and_heavy_tails():
    _, values = spectrum("laplace")
    assert values.std() == pytest.approx(SCALE, rel=0.05)
    kurtosis = np.mean(values**4) / np.mean(values**2) ** 2
    assert kurtosis > 4.5  # Laplace: 6, Gaussian: 3


def test_positive2_law_is_absolute_laplace():
    _, values = spectrum("positive2")
    assert values.min() >= -1e-9
    assert values.mean() == pytest.approx(SCALE / math.sqrt(2.0), rel=0.05)  # E|Laplace(b)| = b


def test_marcenko_law_is_positive_semidefinite_wishart():
    mats, values = spectrum("marcenko")
    assert values.min() >= -1e-9 * np.abs(values).max()
    # trace(M^T M) / n = n * Var(U[-sqrt A, sqrt A]) = n * A / 3
    assert values.mean() == pytest.approx(DIM * BOUND / 3.0, rel=0.03)


@pytest.mark.parametrize("law", matrices.LAWS)
def test_every_law_gives_symmetric_matrices_and_reproduces_from_the_seed(law):
    a = matrices.symmetric_matrices(np.random.default_rng(7), law, 20, 4)
    b = matrices.symmetric_matrices(np.random.default_rng(7), law, 20, 4)
    c = matrices.symmetric_matrices(np.random.default_rng(8), law, 20, 4)
    assert a.shape == (20, 4, 4)
    assert np.array_equal(a, np.swapaxes(a, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_replaced_spectrum_keeps_the_eigenvalues_it_was_given():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(10, 5))
    _, vectors = np.linalg.eigh(matrices.wigner_matrices(rng, 10, 5))
    rebuilt = np.linalg.eigvalsh(matrices.from_spectrum(values, vectors))
    assert np.allclose(rebuilt, np.sort(values, axis=1), atol=1e-12)


def test_unknown_eigenvalue_law_is_a_user_error():
    with pytest.raises(UserError, match="eigenvalue law"):
        matrices.symmetric_matrices(np.random.default_rng(0), "cauchy", 1, 3)


def test_noise_is_relative_to_the_coefficient_std_and_can_stay_symmetric():
    rng = np.random.default_rng(0)
    clean = np.zeros((3000, 4, 4))
    assert matrices.add_noise(rng, clean, 0.0, 10.0) is clean
    noisy = matrices.add_noise(rng, clean, 0.05, 10.0)
    assert noisy.std() == pytest.approx(0.05 * 10.0 / math.sqrt(3.0), rel=0.03)
    symmetric = matrices.add_noise(rng, clean, 0.05, 10.0, symmetric=True)
    assert np.array_equal(symmetric, np.swapaxes(symmetric, 1, 2))


def test_dims_cover_the_inclusive_range():
    dims = matrices.draw_dims(np.random.default_rng(0), 2000, 3, 6)
    assert set(dims.tolist()) == {3, 4, 5, 6}


def test_a_size_power_draws_larger_sizes_more_often_and_zero_changes_nothing():
    uniform = matrices.draw_dims(np.random.default_rng(0), 2000, 2, 8)
    assert np.array_equal(matrices.draw_dims(np.random.default_rng(0), 2000, 2, 8, 0.0), uniform)
    dims = matrices.draw_dims(np.random.default_rng(0), 40000, 2, 8, 2.0)
    share = np.bincount(dims, minlength=9)[2:] / len(dims)
    expected = np.arange(2, 9) ** 2 / (np.arange(2, 9) ** 2).sum()
    np.testing.assert_allclose(share, expected, atol=0.01)
    assert set(matrices.draw_dims(np.random.default_rng(1), 50, 5, 5, 2.0).tolist()) == {5}


def test_a_problem_with_a_size_power_samples_by_it():
    from linalgformer.problems.charton import ProblemConfig, make_problem
    config = ProblemConfig(name="transpose", dim=5, min_dim=2, max_dim=8, encoding="continuous", size_power=3.0)
    dims = np.array(make_problem(config).sample(np.random.default_rng(0), 3000).dims)
    assert (dims == 8).mean() > 3 * (dims == 3).mean()
    with pytest.raises(UserError, match="size_power"):
        ProblemConfig(size_power=-1.0)


def test_mixture_parsing_weights_and_errors():
    assert matrices.parse_mixture("laplace") == matrices.Mixture(("laplace",), (1.0,))
    assert matrices.parse_mixture("laplace, semicircle").weights == (0.5, 0.5)
    mix = matrices.parse_mixture("laplace:3,semicircle:1")
    assert mix.laws == ("laplace", "semicircle") and mix.weights == (0.75, 0.25)
    for bad, word in [("cauchy", "unknown law"), ("laplace,laplace", "twice"), ("laplace:-1", ">= 0"),
                      ("laplace:x", "not a number"), ("laplace:0", "not all be zero"), ("", "unknown law")]:
        with pytest.raises(UserError, match=word):
            matrices.parse_mixture(bad)


def test_mixture_draws_laws_in_proportion():
    mix = matrices.parse_mixture("laplace:3,semicircle:1")
    laws = mix.draw(np.random.default_rng(0), 8000)
    assert np.mean(laws == "laplace") == pytest.approx(0.75, abs=0.02)
    assert set(laws) == {"laplace", "semicircle"}


def test_a_single_law_consumes_no_randomness():
    rng = np.random.default_rng(0)
    matrices.parse_mixture("gaussian").draw(rng, 10)
    assert rng.random() == np.random.default_rng(0).random()


def test_group_by_splits_positions_by_key_and_keeps_order():
    rows = np.array([5, 3, 5, 3, 5])
    laws = np.array(["a", "a", "b", "a", "a"], dtype=object)
    groups = matrices.group_by(rows, laws)
    assert [key for key, _ in groups] == [(3, "a"), (5, "a"), (5, "b")]
    assert [idx.tolist() for _, idx in groups] == [[1, 3], [0, 4], [2]]
    assert all(isinstance(key[0], int) for key, _ in groups)
    assert matrices.group_by(np.array([], dtype=np.int64)) == []
