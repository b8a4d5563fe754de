"""``model.verifier_loss``: the loss adds the verifiers' own d1, computed by the same checks that
score answers (``MatrixProblem.checks``: Q^T M Q - diag(lambda) and Q^T Q - I for eigenvectors,
A X - I for the inverse, U^T A V for the SVD), so it is free where the verifier is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from linalgformer.experiments.registry import build_experiment
from linalgformer.models.number_units import verifier_errors
from linalgformer.training import train_run
from tests.helpers import assert_resumes_exactly
from tests.test_continuous import continuous_config


def verifier_config(name="eigenvectors", dim=3, weight=1.0, **train):
    config = continuous_config(name, dim, units="rows", **train)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, verifier_loss=weight))


def batch_and_answers(name: str, dim: int, count: int = 12, noise: float = 0.02, seed: int = 0, **problem):
    """A training batch of ``name`` and read-outs near its targets (in their units)."""
    config = verifier_config(name, dim)
    config = dataclasses.replace(config, problem=dataclasses.replace(config.problem, **problem))
    exp = build_experiment(config)
    examples = exp.problem.sample(np.random.default_rng(seed), count)
    batch = exp.tensors(*exp.problem.encode(examples), examples)
    rng = np.random.default_rng(seed + 1)
    target = batch["tgt_values"].double()
    jitter = [torch.from_numpy(rng.standard_normal(tuple(target.shape))) for _ in range(2)]
    z = target * (1 + noise * jitter[0]) + noise * jitter[1]
    return exp, examples, batch, z * batch["tgt_mask"]


def losses(exp, batch, z):
    return verifier_errors(exp.problem, z, batch["src_values"], batch["in_shape"], batch["out_shape"], batch["tgt_values"])


@pytest.mark.parametrize("name,dim,problem", [
    ("eigenvectors", 4, {}), ("eigenvectors", 4, {"min_dim": 2, "max_dim": 5}), ("invert_matrix", 3, {}),
    ("singularvectors", 3, {}), ("transpose", 3, {"min_dim": 2, "max_dim": 4}), ("matrix_vector", 3, {}),
    ("eigenvalues", 4, {})])
def test_the_loss_is_the_verifiers_d1_of_the_same_answers(name, dim, problem):
    """Read-outs near the targets, taken back to answers and scored by the problem (numpy), give
    the d1 the loss computes from the read-outs and the encoded questions (torch)."""
    from linalgformer.models.number_units import from_units

    exp, examples, batch, z = batch_and_answers(name, dim, **problem)
    answers = from_units(exp.problem, examples, z.numpy())
    scored = exp.problem.score_matrices(examples, answers).d1
    # (the targets travel as float32: checks that read them agree to float32's precision)
    np.testing.assert_allclose(losses(exp, batch, z).numpy(), scored, rtol=1e-5, atol=1e-12)
    assert scored.min() > 1e-4  # the answers were not right: the comparison saw errors


def test_exact_eigenvectors_cost_nothing_in_any_sign_and_errors_cost_something():
    exp, examples, batch, z = batch_and_answers("eigenvectors", 4, noise=0.0)
    assert float(losses(exp, batch, z).max()) < 1e-6
    flipped = z.clone()
    n = 4
    flipped[:, n + 1:n + n * n:n] *= -1  # the second eigenvector's entries (rows 1.. of column 1), negated
    assert float(losses(exp, batch, flipped).max()) < 1e-6
    assert float(losses(exp, batch, z * 1.05).min()) > 0.01


def test_the_loss_has_gradients_and_a_run_with_it_trains_and_resumes_exactly(tmp_path):
    exp, examples, batch, z = batch_and_answers("eigenvectors", 3)
    z = z.float().requires_grad_(True)
    losses(exp, batch, z).mean().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert_resumes_exactly(lambda **kw: verifier_config(**kw), tmp_path, steps=12, cut=6)


def test_the_weight_changes_the_training_loss(tmp_path):
    plain, checked = tmp_path / "plain", tmp_path / "checked"
    train_run(verifier_config(weight=0.0, max_steps=3, eval_every=3, checkpoint_every=3), plain, progress=False)
    train_run(verifier_config(weight=1.0, max_steps=3, eval_every=3, checkpoint_every=3), checked, progress=False)
    from linalgformer.tracking import read_metrics

    first = [[r["loss"] for r in read_metrics(run) if "loss" in r and r.get("kind") == "train"] for run in (plain, checked)]
    assert first[0] and first[1] and first[0][0] < first[1][0]  # the same first batch, a loss added


def test_a_verifier_loss_on_a_token_answer_is_refused():
    config = verifier_config()
    config = dataclasses.replace(config, problem=dataclasses.replace(config.problem, output_encoding="P1000"))
    with pytest.raises(Exception, match="verifier_loss checks a continuous answer"):
        build_experiment(config).build_model()
    with pytest.raises(ValueError):
        dataclasses.replace(config.model, verifier_loss=-1.0)
