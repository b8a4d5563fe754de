"""Matrix families (matrix_families): each draws what it claims, seeded and vectorised; problems
take them as ``problem.distribution``; the robustness suites score a model on every one of them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linalgformer import matrices
from linalgformer import matrix_families as mf
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.problems.charton import ProblemConfig, make_problem
from linalgformer.suites import run_suite, suite_families

COUNT = 400


def general(name, rows=5, cols=5, seed=0, count=COUNT):
    return mf.draw_general(np.random.default_rng(seed), name, count, rows, cols)


def symmetric(name, dim=5, seed=0, count=COUNT):
    return mf.draw_symmetric(np.random.default_rng(seed), name, count, dim)


@pytest.mark.parametrize("name", mf.GENERAL_FAMILIES)
@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (6, 1), (1, 1), (8, 8)])
def test_general_families_are_seeded_finite_batches(name, shape):
    a, b = general(name, *shape, count=50), general(name, *shape, count=50)
    assert a.shape == (50, *shape) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, general(name, *shape, seed=1, count=50))


@pytest.mark.parametrize("name", mf.SYMMETRIC_FAMILIES)
@pytest.mark.parametrize("dim", [1, 2, 5, 8])
def test_symmetric_families_are_exactly_symmetric(name, dim):
    x = symmetric(name, dim, count=50)
    assert x.shape == (50, dim, dim) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, np.swapaxes(x, -1, -2))
    np.testing.assert_array_equal(x, symmetric(name, dim, count=50))


def test_integers_are_integers_with_exact_zeros():
    x = general("integers")
    np.testing.assert_array_equal(x, np.round(x))
    assert np.abs(x).max() <= 10 and 0.25 < np.mean(x == 0) < 0.5
    assert len({int(np.abs(m).max()) for m in x}) > 5  # the range differs between matrices


@pytest.mark.parametrize("name", ["sparse", "sparse_integers"])
def test_sparse_density_and_never_all_zero(name):
    x = general(name)
    density = (x != 0).mean(axis=(1, 2))
    assert (density > 0).all() and density.max() <= 0.8 and 0.2 < density.mean() < 0.45
    if name == "sparse_integers":
        np.testing.assert_array_equal(x, np.round(x))


def test_decades_and_scaled_span_magnitudes():
    x = np.abs(general("decades"))
    assert x.max() <= 10 and x.min() >= 10 * 1e-4 and np.log10(x).std() > 0.9
    tops = np.abs(general("scaled")).max(axis=(1, 2))
    assert tops.min() < 0.05 and tops.max() > 200


def test_structured_zero_patterns():
    offsets = np.abs(np.arange(6)[:, None] - np.arange(6)[None, :])
    assert (general("tridiagonal", 6, 6)[:, offsets > 1] == 0).all()
    assert (general("banded", 6, 6)[:, offsets > 2] == 0).all()
    assert (general("diagonal", 6, 6)[:, offsets > 0] == 0).all()
    tri = general("triangular", 6, 6)
    upper = (tri[:, np.tril_indices(6, -1)[0], np.tril_indices(6, -1)[1]] == 0).all(axis=1)
    lower = (tri[:, np.triu_indices(6, 1)[0], np.triu_indices(6, 1)[1]] == 0).all(axis=1)
    assert (upper | lower).all() and upper.any() and lower.any()


def test_toeplitz_is_constant_along_diagonals():
    x = general("toeplitz", 5, 7)
    np.testing.assert_array_equal(x[:, 1:, 1:], x[:, :-1, :-1])


def test_lowrank_and_conditioned():
    ranks = np.linalg.matrix_rank(general("lowrank", 6, 6))
    assert ranks.max() <= 5 and ranks.min() >= 1 and len(set(ranks.tolist())) > 2
    cond = np.linalg.cond(general("conditioned", 5, 5))
    assert cond.min() >= 1 - 1e-9 and cond.max() <= 1000 * (1 + 1e-6)
    assert np.median(cond) > 5 and (cond > 300).any()


def test_laplacian_rows_sum_to_zero_and_psd():
    x = symmetric("laplacian", 6)
    np.testing.assert_allclose(x.sum(axis=2), 0.0, atol=1e-9)
    assert (np.linalg.eigvalsh(x)[:, 0] > -1e-9).all()
    off = x[:, ~np.eye(6, dtype=bool)]
    assert (off <= 0).all()
    assert np.mean([np.array_equal(m, np.round(m)) for m in x]) > 0.3  # unweighted graphs: integers


def test_correlation_covariance_spd_diagdominant():
    corr = symmetric("correlation", 5)
    np.testing.assert_array_equal(np.diagonal(corr, axis1=1, axis2=2), 1.0)
    assert np.abs(corr).max() <= 1.0 and (np.linalg.eigvalsh(corr)[:, 0] > -1e-9).all()
    assert (np.linalg.eigvalsh(symmetric("covariance", 5))[:, 0] > -1e-9).all()
    spd = np.linalg.eigvalsh(symmetric("spd", 5))
    assert (spd[:, 0] > 0).all() and (spd[:, -1] / spd[:, 0]).max() <= 1000 * (1 + 1e-6)
    dd = symmetric("diagdominant", 5)
    diag = np.abs(np.diagonal(dd, axis1=1, axis2=2))
    assert (diag >= np.abs(dd).sum(axis=2) - diag - 1e-9).all()
    ranks = np.linalg.matrix_rank(symmetric("lowrank_noise", 5), tol=0.05 * 10)
    assert ranks.max() <= 4


def test_problems_take_families_with_weights():
    problem = make_problem(ProblemConfig(name="matrix_sum", dim=4, encoding="continuous",
                                         distribution="uniform:2,sparse_integers,tridiagonal"))
    examples = problem.sample(np.random.default_rng(0), 300)
    assert set(examples.laws) == {"uniform", "sparse_integers", "tridiagonal"}
    for x, law in zip(examples.inputs, examples.laws):
        if law == "tridiagonal":  # each operand of [A|B] is tridiagonal
            offsets = np.abs(np.arange(4)[:, None] - np.arange(4)[None, :])
            assert (x[:, :4][offsets > 1] == 0).all() and (x[:, 4:][offsets > 1] == 0).all()
    assert all(np.abs(t).max() > 0 for t in examples.targets)  # an all-zero answer is redrawn


def test_uniform_default_draws_are_unchanged():
    """The paper's distribution draws exactly as before the families (bundled cards stay true)."""
    problem = make_problem(ProblemConfig(name="matrix_vector", dim=3, encoding="continuous"))
    x = problem.sample(np.random.default_rng([7, 0]), 4).inputs
    again = matrices.random_matrices(np.random.default_rng([7, 0]), 4, 3, 4, "uniform", 10.0)
    np.testing.assert_array_equal(np.stack(x), again)


@pytest.mark.parametrize("change, words", [
    ({"name": "transpose", "distribution": "laplacian"}, "symmetric problem"),
    ({"name": "transpose", "distribution": "cauchy"}, "unknown law or matrix family"),
    ({"name": "eigenvalues", "distribution": "triangular"}, "unknown law or matrix family"),
])
def test_bad_families_are_one_sentence(change, words):
    with pytest.raises(UserError, match=words):
        make_problem(ProblemConfig(**change))


def test_suite_families_per_problem():
    assert suite_families("families", symmetric=False)[0] == "uniform"
    sym = suite_families("families", symmetric=True)
    assert sym[0] == "semicircle" and "laplacian" in sym and "laplace" in sym
    assert suite_families("laws", symmetric=True) == list(matrices.LAWS)
    assert "laplace" not in suite_families("structured", symmetric=True)
    assert "lowrank" not in suite_families("families", False, excluded=("lowrank",))
    with pytest.raises(UserError, match="symmetric problems"):
        suite_families("laws", symmetric=False)
    with pytest.raises(UserError, match="unknown suite"):
        suite_families("nope", symmetric=False)


def test_run_suite_collects_cells_and_errors():
    def score(family, dims):
        if family == "sparse":
            raise UserError("cannot draw these.")
        slope = 0.05 if family == "gaussian" else 0.1
        return {"acc@0.05": 0.5, "by_dim": {str(d): {"acc@0.05": slope * d} for d in dims}}

    result = run_suite(score, "families", "transpose", False, [2, 3], 10)
    assert result.accuracy("uniform", 3) == pytest.approx(0.3) and result.errors["sparse"] == "cannot draw these"
    assert result.worst() == {"family": "gaussian", "dim": 2, "acc@0.05": pytest.approx(0.1)}
    assert "n/a: cannot draw these" in result.table()
    assert json.loads(json.dumps(result.as_json()))["count_per_cell"] == 10


def test_evaluate_suite_cli_json_and_plot(tmp_path, capsys):
    """A bundled model through the command line: pure JSON on stdout, one row per family."""
    out = tmp_path / "suite.png"
    assert main(["evaluate", "transpose-3x3", "--suite", "families", "--count", "5", "--json",
                 "--plot", str(out)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["order"][0] == "uniform"
    assert set(document["families"]) | set(document["errors"]) == set(mf.GENERAL_FAMILIES)
    assert document["dims"] == [3] and out.is_file()
    assert main(["evaluate", "transpose-3x3", "--suite", "laws"]) == 2
    assert main(["evaluate", "transpose-3x3", "--plot", str(out)]) == 2
