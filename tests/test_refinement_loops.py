"""``model.loops``: after its first answer the decoder runs again K times, each pass reading the
answer so far (its numbers, beside the question) and adding a correction, weights shared."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import linalgformer as lf
from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.runs import load_init_from
from linalgformer.training import train_run
from tests.helpers import assert_resumes_exactly
from tests.test_continuous import continuous_config


def looped_config(loops=2, **train):
    config = continuous_config("eigenvalues", 3, units="rows", **train)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, loops=loops))


def answers(exp, model, seed=0, count=8):
    examples = exp.problem.sample(np.random.default_rng(seed), count)
    return np.stack(exp.predict_values(model.eval(), exp.problem, examples, torch.device("cpu")))


def test_loops_added_to_a_trained_model_start_as_that_model(tmp_path):
    """The read-back and the correction start at zero: a trained one-pass model given loops answers
    as it did, to the bit, until the loops are trained."""
    plain = looped_config(loops=0, max_steps=6)
    train_run(plain, tmp_path / "plain", progress=False)
    one_pass = build_experiment(plain)
    trained = one_pass.build_model()
    load_init_from(trained, tmp_path / "plain")
    looped_exp = build_experiment(looped_config(loops=3))
    looped = looped_exp.build_model()
    load_init_from(looped, tmp_path / "plain")
    np.testing.assert_array_equal(answers(looped_exp, looped), answers(one_pass, trained))


def test_trained_loops_change_the_answer_and_their_number_can_be_set(tmp_path):
    run = tmp_path / "run"
    train_run(looped_config(max_steps=30, lr=3e-3, eval_every=30, checkpoint_every=30), run, progress=False)
    model = lf.load(run)
    assert model.loops == 2
    x = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
    trained = model.predict(x)
    model.loops = 0
    first = model.predict(x)
    model.loops = 6
    more = model.predict(x)
    assert not np.array_equal(trained, first) and not np.array_equal(trained, more)


@pytest.mark.parametrize("bad", [-1, 65, 1.5, True, "2"])
def test_a_bad_number_of_loops_is_refused(tmp_path, bad):
    run = tmp_path / "run"
    train_run(looped_config(max_steps=2, eval_every=2, checkpoint_every=2), run, progress=False)
    with pytest.raises(UserError, match="loops"):
        lf.load(run).loops = bad


def test_a_model_without_loops_has_none_to_run(tmp_path):
    run = tmp_path / "run"
    train_run(looped_config(loops=0, max_steps=2, eval_every=2, checkpoint_every=2), run, progress=False)
    model = lf.load(run)
    assert model.loops == 0
    with pytest.raises(UserError, match="not trained with refinement"):
        model.loops = 3


def test_a_looped_run_resumes_exactly(tmp_path):
    assert_resumes_exactly(lambda **kw: looped_config(**kw), tmp_path, steps=12, cut=6)


def test_a_token_answer_refuses_loops():
    config = continuous_config("eigenvalues", 3, inp="P1000", out="P1000")
    with pytest.raises(UserError, match="loops"):
        build_experiment(dataclasses.replace(config, model=dataclasses.replace(config.model, loops=2))).build_model()


def test_the_command_line_runs_the_passes_asked_for(tmp_path, capsys):
    from linalgformer.cli import main

    looped, plain = tmp_path / "looped", tmp_path / "plain"
    train_run(looped_config(max_steps=4, eval_every=4, checkpoint_every=4), looped, progress=False)
    train_run(looped_config(loops=0, max_steps=2, eval_every=2, checkpoint_every=2), plain, progress=False)
    for loops in ("0", "5"):
        assert main(["evaluate", str(looped), "--count", "10", "--loops", loops, "--json"]) == 0
    assert main(["predict", str(looped), "--matrix", "1 2 3; 2 1 0; 3 0 2", "--loops", "3"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(looped), "--count", "10", "--loops", "-1"]) == 2
    assert main(["analyze", str(plain), "--count", "10", "--loops", "2", "--out", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["linalgformer: error: loops must be a whole number from 0 to 64, got -1.",
                   "linalgformer: error: this model was not trained with refinement passes (model.loops): "
                   "it has none to run."]
    assert not (tmp_path / "a.png").exists()
