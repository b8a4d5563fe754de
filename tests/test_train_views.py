"""``problem.train_views``: a fraction of the training questions shown under a random answer view
(signed permutations of rows and columns), answers solved anew, so that the training matrices are
closed under the views a model answers with. Evaluation draws without it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from linalgformer.errors import UserError
from linalgformer.experiments.charton import Experiment
from linalgformer.problems.charton import make_problem
from linalgformer.training import train_run
from tests.test_continuous import continuous_config


def product_config(fraction: float, distribution: str = "diagonal", **problem):
    config = continuous_config("matrix_product", 4)
    return dataclasses.replace(config, problem=dataclasses.replace(
        config.problem, distribution=distribution, train_views=fraction, **problem))


def test_views_of_diagonal_operands_are_monomial_and_keep_their_answers_right():
    problem = make_problem(product_config(1.0).problem)
    rng = np.random.default_rng(0)
    examples = problem.sample(rng, 40)
    viewed = problem.under_views(rng, examples, 1.0)
    x, answers = np.stack(viewed.inputs), np.stack(viewed.targets)
    np.testing.assert_allclose(answers, np.transpose(x[:, :, :4], (0, 2, 1)) @ x[:, :, 4:], atol=1e-12)
    a = x[:, :, :4]
    assert (np.count_nonzero(a, axis=2) <= 1).all() and (np.count_nonzero(a, axis=1) <= 1).all()  # monomial
    off_diagonal = [np.count_nonzero(m - np.diag(np.diag(m))) for m in a]
    assert np.mean(np.array(off_diagonal) > 0) > 0.5  # most are no longer diagonal
    for before, after in zip(examples.inputs, viewed.inputs):  # the same entries, moved
        assert sorted(np.abs(before).ravel().tolist()) == sorted(np.abs(after).ravel().tolist())
    assert viewed.laws == examples.laws and viewed.dims == examples.dims


def test_the_fraction_is_kept_and_the_draw_is_seeded():
    problem = make_problem(product_config(0.5).problem)
    examples = problem.sample(np.random.default_rng(0), 400)
    first = problem.under_views(np.random.default_rng(7), examples, 0.5)
    again = problem.under_views(np.random.default_rng(7), examples, 0.5)
    assert all(np.array_equal(p, q) for p, q in zip(first.inputs, again.inputs))
    changed = np.mean([not np.array_equal(p, q) for p, q in zip(first.inputs, examples.inputs)])
    assert 0.4 < changed < 0.6
    untouched = problem.under_views(np.random.default_rng(7), examples, 0.0)
    assert all(np.array_equal(p, q) for p, q in zip(untouched.inputs, examples.inputs))


@pytest.mark.parametrize("name", ["transpose", "matrix_sum", "matrix_vector", "eigenvalues", "eigenvectors",
                                  "invert_matrix", "singularvalues", "singularvectors"])
def test_every_problem_with_views_solves_its_viewed_questions(name):
    problem = make_problem(continuous_config(name, 3).problem)
    rng = np.random.default_rng(1)
    viewed = problem.under_views(rng, problem.sample(rng, 12), 1.0)
    for x, answer in zip(viewed.inputs, viewed.targets):
        np.testing.assert_allclose(answer, problem.solve(x[None])[0][0], atol=1e-12)


def test_training_batches_are_viewed_and_validation_is_not(tmp_path):
    experiment = Experiment(product_config(1.0))
    batch = experiment.sample_batch(np.random.default_rng(0), 32)
    assert batch["src_values"].shape[0] == 32
    valid = experiment.problem.sample(np.random.default_rng(0), 32)  # the problem's own draw: diagonal
    assert all(np.count_nonzero(x[:, :4] - np.diag(np.diag(x[:, :4]))) == 0 for x in valid.inputs)
    metrics = train_run(product_config(0.5, distribution="uniform"), tmp_path / "run", progress=False)
    assert metrics["step"] == 12


@pytest.mark.parametrize("change, words", [
    ({"name": "determinant"}, "has no answer views"),
    ({"noise": 0.1}, "not with problem.noise"),
])
def test_refused_where_a_view_cannot_be_solved(change, words):
    config = product_config(0.5, distribution="uniform")
    config = dataclasses.replace(config, problem=dataclasses.replace(config.problem, **change))
    with pytest.raises(UserError, match=words):
        Experiment(config)
