"""Two choices of how a continuous answer is read: ``model.sign_free`` (an eigenvector's loss takes
the sign nearer its target, as the verifier does) and ``model.operand_units`` (each operand of a
bilinear problem in units of its own largest entry)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.models.number_units import answer_tensors, operand_units, relative_errors, sign_free_errors
from linalgformer.training import train_run
from tests.helpers import assert_resumes_exactly
from tests.test_continuous import continuous_config


def with_model(config, **fields):
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **fields))


def sign_free_config(name="eigenvectors", dim=3, **train):
    return with_model(continuous_config(name, dim, units="rows", **train), sign_free=True)


def operand_config(name="matrix_vector", dim=3, **train):
    return with_model(continuous_config(name, dim, units="rows", **train), operand_units=True)


# ----------------------------------------------------------------------------- model.sign_free

def eigen_batch(count=4, dim=3, seed=0):
    exp = build_experiment(sign_free_config(dim=dim))
    examples = exp.problem.sample(np.random.default_rng(seed), count)
    return exp, examples, answer_tensors(exp.problem, examples)


def test_an_answer_vector_of_the_other_sign_costs_nothing():
    _, _, batch = eigen_batch()
    target, mask, groups = batch["tgt_values"], batch["tgt_mask"], batch["tgt_sign_group"]
    flipped = target.clone()
    flipped[groups == 1] *= -1  # every example's second eigenvector, the other way round
    assert float(relative_errors(flipped, target, mask).min()) > 0.1  # the plain loss counts it wrong
    torch.testing.assert_close(sign_free_errors(flipped, target, mask, groups), torch.zeros(len(target)))


def test_the_values_row_keeps_its_sign_and_without_groups_the_loss_is_the_plain_one():
    _, _, batch = eigen_batch()
    target, mask, groups = batch["tgt_values"], batch["tgt_mask"], batch["tgt_sign_group"]
    negated = target.clone()
    negated[groups == -1] *= -1  # the eigenvalues' row (and the padding)
    assert float(sign_free_errors(negated, target, mask, groups).min()) > 0.1
    guess = torch.randn_like(target)
    torch.testing.assert_close(sign_free_errors(guess, target, mask, torch.full_like(groups, -1)),
                               relative_errors(guess, target, mask))


def test_each_vector_takes_the_nearer_sign_on_its_own():
    target = torch.tensor([[2.0, 1.0, 1.0, -1.0]])
    mask = torch.ones_like(target, dtype=torch.bool)
    groups = torch.tensor([[-1, 0, 1, 1]])
    z = torch.tensor([[2.0, -1.0, 0.0, 0.0]])  # group 0 flipped (free); group 1 zero: |t| either way
    assert float(sign_free_errors(z, target, mask, groups)) == pytest.approx(2.0 / 5.0)


def test_sign_groups_cover_each_vector_column_and_singular_vectors_flip_u_and_v_together():
    exp = build_experiment(sign_free_config("singularvectors", 3))
    groups = exp.problem.sign_groups((7, 3))  # [sigma; U (3 rows); V (3 rows)]
    assert (groups[0] == -1).all()
    np.testing.assert_array_equal(groups[1:], np.broadcast_to(np.arange(3), (6, 3)))
    assert build_experiment(continuous_config("eigenvalues", 3)).problem.sign_groups((3, 1)) is None


def test_a_sign_free_run_trains_and_resumes_exactly(tmp_path):
    assert_resumes_exactly(lambda **kw: sign_free_config(**kw), tmp_path, steps=12, cut=6)


# ----------------------------------------------------------------------------- model.operand_units

def test_dividing_each_operand_by_its_largest_entry_keeps_the_answer_up_to_the_factor():
    exp = build_experiment(operand_config())
    examples = exp.problem.sample(np.random.default_rng(1), 5)
    divided, factors = operand_units(exp.problem, examples)
    for x, x1, t, t1, f in zip(examples.inputs, divided.inputs, examples.targets, divided.targets, factors):
        assert np.abs(x1[:, :-1]).max() == pytest.approx(1.0) and np.abs(x1[:, -1:]).max() == pytest.approx(1.0)
        np.testing.assert_allclose(t1 * f, t)
        np.testing.assert_allclose(exp.problem.solve(x1[None])[0][0], t1)  # still the question's answer


def test_scaling_one_operand_apart_scales_the_answer_exactly():
    """M^T (c v) = c M^T v and (c A)^T B = c A^T B: an untrained model in operand units answers
    them so, to rounding, for c from 1e-5 to 1e5 (in the units of the whole input it cannot)."""
    for name, dim in (("matrix_vector", 3), ("matrix_product", 2)):
        exp = build_experiment(operand_config(name, dim))
        model = exp.build_model().eval()
        x = exp.problem.sample(np.random.default_rng(2), 1).inputs[0]
        left = exp.problem.operand_columns(x.shape)[0]
        base = exp.predict_matrices(model, [x])[0]
        for c in (1e-5, 1e5):
            scaled = x.copy()
            scaled[:, left] *= c
            np.testing.assert_allclose(exp.predict_matrices(model, [scaled])[0], c * base, rtol=1e-5)
    whole = build_experiment(with_model(operand_config(), operand_units=False))
    model = whole.build_model().eval()
    x = whole.problem.sample(np.random.default_rng(2), 1).inputs[0]
    scaled = x.copy()
    scaled[:, -1] *= 1e5
    base, far = whole.predict_matrices(model, [x])[0], whole.predict_matrices(model, [scaled])[0]
    assert np.abs(far - 1e5 * base).sum() > 1e-3 * np.abs(1e5 * base).sum()


def test_an_all_zero_operand_is_answered_zero_not_nan():
    exp = build_experiment(operand_config())
    x = exp.problem.sample(np.random.default_rng(3), 1).inputs[0]
    x[:, -1] = 0.0
    _, factors = operand_units(exp.problem, exp.problem.examples_from_matrix(x))
    assert np.isfinite(factors).all()


def test_an_operand_units_run_trains_and_resumes_exactly(tmp_path):
    assert_resumes_exactly(lambda **kw: operand_config(**kw), tmp_path, steps=12, cut=6)


def test_a_short_operand_units_run_scores_its_own_test_set(tmp_path):
    train_run(operand_config(max_steps=20, eval_every=20, checkpoint_every=20), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").exists()


# ----------------------------------------------------------------------------- what is refused

@pytest.mark.parametrize("config, words", [
    (lambda: with_model(continuous_config("transpose", 3, units="rows"), sign_free=True), "sign_free"),
    (lambda: with_model(continuous_config("matrix_sum", 3, units="rows"), operand_units=True), "operand_units"),
    (lambda: with_model(continuous_config("eigenvalues", 3, units="rows"), operand_units=True), "operand_units"),
])
def test_an_option_for_other_problems_is_refused_in_one_sentence(config, words):
    with pytest.raises(UserError, match=words):
        build_experiment(config()).build_model()


@pytest.mark.parametrize("fields, words", [({"sign_free": True}, "sign_free"), ({"operand_units": True}, "operand_units")])
def test_a_token_answer_refuses_them(fields, words):
    config = with_model(continuous_config("eigenvectors", 3, inp="P1000", out="P1000"), **fields)
    with pytest.raises(UserError, match=words):
        build_experiment(config).build_model()
