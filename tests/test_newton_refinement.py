"""``model.newton_steps``: a learned first guess of A^-1 refined by Newton-Schulz steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.models.newton_refinement import (
    classical_start,
    framed,
    newton_schulz,
    refine_inverse,
    unframed,
)
from linalgformer.problems.charton import make_problem
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run
from tests.test_continuous import continuous_config


def inversion_config(steps=2, dims=(2, 3), **train):
    config = continuous_config("invert_matrix", dims[1], units="rows", **train)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, newton_steps=steps),
                               problem=dataclasses.replace(config.problem, min_dim=dims[0], max_dim=dims[1]))


def batch_of(problem, examples):
    src, _ = problem.encode(examples)
    from linalgformer.models.number_units import answer_tensors
    return torch.from_numpy(src.values), answer_tensors(problem, examples)


def test_blocks_of_mixed_sizes_go_in_and_out_of_an_identity_padded_frame():
    sides = torch.tensor([2, 3])
    flat = torch.tensor([[1.0, 2, 3, 4, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
    m = framed(flat, sides, 3)
    assert torch.equal(m[0], torch.tensor([[1.0, 2, 0], [3, 4, 0], [0, 0, 1]]))
    assert torch.equal(m[1], flat[1].reshape(3, 3))
    assert torch.equal(unframed(m, sides, 9), flat)


def test_an_exact_inverse_is_a_fixed_point_and_errors_square_each_step():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.uniform(-1, 1, (64, 4, 4)) + 3 * np.eye(4))  # well conditioned
    exact = torch.linalg.inv(a)
    torch.testing.assert_close(newton_schulz(exact, a, 3), exact)
    guess = exact + 0.02 * torch.from_numpy(rng.standard_normal((64, 4, 4)))
    errors = [float((newton_schulz(guess, a, k) - exact).norm()) for k in range(4)]
    assert errors[1] < 0.2 * errors[0] and errors[2] < 0.2 * errors[1] and errors[3] < 1e-4


def test_the_classical_start_converges_on_any_invertible_matrix():
    a = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (200, 5, 5)))
    residual = torch.eye(5) - a @ newton_schulz(classical_start(a), a, 40)
    assert float(torch.linalg.matrix_norm(residual, ord=2).median()) < 1e-6


def test_refinement_reads_each_question_from_its_source_and_works_in_units():
    """A batch of 2x2 and 3x3 questions with a rough guess of A'^-1 (A' = A / max|A|): the steps
    bring every answer to numpy's inverse, in the model's units."""
    problem = make_problem(inversion_config().problem)
    examples = problem.sample(np.random.default_rng(0), 16)
    values, answers = batch_of(problem, examples)
    target = answers["tgt_values"].double()
    rough = target * (1 + 0.05 * torch.from_numpy(np.random.default_rng(2).standard_normal(target.shape)))
    refined = refine_inverse(rough, values, answers["out_shape"], 6)
    error = ((refined - target).abs() * answers["tgt_mask"]).sum(1) / (target.abs() * answers["tgt_mask"]).sum(1)
    assert float(error.median()) < 1e-6
    assert torch.equal(refine_inverse(rough, values, answers["out_shape"], 0), rough)


def test_a_refined_model_trains_scores_and_keeps_padding_out_of_its_answers(tmp_path):
    train_run(inversion_config(steps=2, max_steps=6), tmp_path / "run", progress=False)
    evals = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    assert evals and np.isfinite(evals[-1]["median_d1"])
    exp = build_experiment(inversion_config(steps=2))
    model = exp.build_model().eval()
    examples = exp.problem.sample(np.random.default_rng(0), 8)
    together = exp.predict_values(model, exp.problem, examples, torch.device("cpu"))
    from linalgformer.problems.charton.matrix_problem import subset
    for i in range(len(examples)):
        alone = exp.predict_values(model, exp.problem, subset(examples, np.array([i])), torch.device("cpu"))[0]
        np.testing.assert_allclose(alone, together[i], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("problem, out, message", [("transpose", "continuous", "refines an inverse"),
                                                    ("invert_matrix", "P1000", "continuous encoding on both sides")])
def test_refinement_elsewhere_is_refused_in_one_sentence(problem, out, message):
    config = continuous_config(problem, 3, out=out)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, newton_steps=2))
    with pytest.raises(UserError, match=message):
        build_experiment(config).build_model()


def newton_numpy(a: np.ndarray, x: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        x = x @ (2 * np.eye(len(a)) - a @ x)
    return x


@pytest.fixture(scope="module")
def learned_only_run(tmp_path_factory):
    """A tiny continuous inversion run trained without steps (a learned-only guess)."""
    run = tmp_path_factory.mktemp("inverse") / "run"
    train_run(inversion_config(steps=0, max_steps=2, eval_every=2, checkpoint_every=2), run, progress=False)
    return run


def test_newton_steps_can_be_set_at_inference_whatever_the_model_was_trained_with(learned_only_run):
    """lf.Model.newton_steps: the model's guess, then K steps X <- X (2I - A X) on it."""
    import linalgformer as lf

    model = lf.load(learned_only_run)
    assert model.newton_steps == 0
    a = np.array([[3.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 5.0]])
    guess = model.predict(a)
    model.newton_steps = 1
    np.testing.assert_allclose(model.predict(a), newton_numpy(a, guess, 1), rtol=1e-3, atol=1e-5)
    model.newton_steps = 0
    np.testing.assert_array_equal(model.predict(a), guess)


@pytest.mark.parametrize("bad", [-1, 65, 1.5, True, "2"])
def test_a_bad_number_of_newton_steps_is_refused(learned_only_run, bad):
    import linalgformer as lf

    with pytest.raises(UserError, match="newton_steps"):
        lf.load(learned_only_run).newton_steps = bad


def test_newton_steps_on_the_command_line(learned_only_run, capsys):
    """evaluate/predict --newton-steps K; a model that answers no inverse refuses it in one sentence."""
    from tests.test_reliability import assert_one_clear_error, run_cli

    code, err = run_cli(["evaluate", learned_only_run, "--count", "4", "--newton-steps", "2", "--json"], capsys)
    assert code == 0, err
    code, err = run_cli(["predict", "transpose-2-8", "--matrix", "1 2; 3 4", "--newton-steps", "2"], capsys)
    assert_one_clear_error(code, err, "refine a continuous inverse")
    code, err = run_cli(["predict", learned_only_run, "--matrix", "1 2; 3 4", "--newton-steps", "99"], capsys)
    assert_one_clear_error(code, err, "newton_steps must be a whole number")
