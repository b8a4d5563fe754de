"""``model.zero_gate``: a continuous answer learns which of its entries are exactly zero and writes
them as exact zeros (a diagonal matrix's transpose is diagonal, not 0.003 off the diagonal)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.models.charton import ModelConfig
from linalgformer.models.number_units import zero_gate_loss
from linalgformer.runs import load_init_from
from linalgformer.training import train_run
from tests.helpers import assert_resumes_exactly
from tests.test_continuous import continuous_config


def gated_config(weight=1.0, **train):
    config = continuous_config("transpose", 3, units="rows", **train)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, zero_gate=weight))
    return dataclasses.replace(config, problem=dataclasses.replace(config.problem, distribution="diagonal"))


def test_the_loss_is_the_cross_entropy_of_which_targets_are_zero():
    target = torch.tensor([[0.0, 0.5, 1e-12, -0.2]])
    mask = torch.tensor([[True, True, True, False]])
    confident = torch.tensor([[20.0, -20.0, 20.0, 20.0]])  # right on the three real entries
    wrong = torch.tensor([[-20.0, 20.0, -20.0, -20.0]])
    assert float(zero_gate_loss(confident, target, mask)) < 1e-6
    assert float(zero_gate_loss(wrong, target, mask)) == pytest.approx(20.0, rel=1e-3)
    # the masked-out entry counts for nothing
    assert float(zero_gate_loss(confident.clone().index_fill_(1, torch.tensor([3]), -20.0), target, mask)) < 1e-6


def test_an_open_gate_writes_exact_zeros_and_a_closed_one_changes_nothing():
    exp = build_experiment(gated_config())
    model = exp.build_model().eval()
    examples = exp.problem.sample(np.random.default_rng(0), 6)
    closed = exp.predict_values(model, exp.problem, examples, torch.device("cpu"))
    assert all(np.count_nonzero(p) == p.size for p in closed)  # starts closed (bias -2): no entry zeroed
    with torch.no_grad():
        model.zero_head.bias.fill_(50.0)  # every entry: "zero"
    model.zero_gate_limit = 0.0  # the gate alone decides
    opened = exp.predict_values(model, exp.problem, examples, torch.device("cpu"))
    assert all(not np.any(p) for p in opened)


def test_an_open_gate_zeroes_only_the_entries_read_out_near_zero():
    """``model.zero_gate_limit``: where the gate says "zero" but the number read out is at least
    the limit (in the answer's unit, here max|input|) away from 0, the number stands; the rest
    become exact zeros."""
    exp = build_experiment(gated_config())
    model = exp.build_model().eval()
    assert model.zero_gate_limit == 0.1  # a new model's default
    examples = exp.problem.sample(np.random.default_rng(0), 6)
    cpu = torch.device("cpu")
    with torch.no_grad():
        model.zero_head.bias.fill_(-50.0)  # closed: the numbers as read out
        read = exp.predict_values(model, exp.problem, examples, cpu)
        model.zero_head.bias.fill_(50.0)  # open everywhere
    in_units = [np.abs(r) / np.abs(x).max() for x, r in zip(examples.inputs, read)]
    for limit in np.quantile(np.concatenate([u.ravel() for u in in_units]), [0.25, 0.75]):
        model.zero_gate_limit = float(limit)  # a quarter, then three quarters of the entries near 0
        gated = exp.predict_values(model, exp.problem, examples, cpu)
        near = [u < limit for u in in_units]
        assert 0 < sum(int(n.sum()) for n in near) < sum(n.size for n in near)  # both kinds are checked
        for r, g, n in zip(read, gated, near):
            np.testing.assert_array_equal(g[n], 0.0)
            np.testing.assert_array_equal(g[~n], r[~n])


def test_an_old_gated_run_loads_with_the_limit_resumes_and_the_limit_can_be_set(tmp_path):
    """A run saved before the limit existed loads with the default limit (an inference rule: its
    weights are the same) and still resumes (``runs.ADDED_LATER``); ``lf.Model.zero_gate_limit``
    sets it, refusing what is not a number of 0 or more."""
    import json

    import linalgformer as lf

    run = tmp_path / "run"
    train_run(gated_config(max_steps=2, eval_every=2, checkpoint_every=2), run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    del saved["model"]["zero_gate_limit"]
    (run / "config.json").write_text(json.dumps(saved))
    model = lf.load(run)
    assert model.zero_gate_limit == 0.1
    model.zero_gate_limit = 0.25
    assert model.module.zero_gate_limit == 0.25
    for bad in (-1.0, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(UserError, match="zero gate's limit"):
            model.zero_gate_limit = bad
    train_run(gated_config(max_steps=4, eval_every=2, checkpoint_every=2), run, progress=False)  # resumes


def test_a_model_without_a_gate_has_no_limit_to_set(tmp_path):
    import linalgformer as lf

    run = tmp_path / "run"
    plain = dataclasses.replace(gated_config(max_steps=2, eval_every=2, checkpoint_every=2),
                                model=dataclasses.replace(gated_config().model, zero_gate=0.0))
    train_run(plain, run, progress=False)
    with pytest.raises(UserError, match="no zero gate"):
        lf.load(run).zero_gate_limit = 0.1


def test_a_gated_model_learns_the_zeros_of_diagonal_answers(tmp_path):
    """A few dozen steps on diagonal matrices: the gate learns where the zeros are, so nearly all
    off-diagonal entries come out exactly 0 and the diagonal ones do not."""
    run = tmp_path / "run"
    train_run(gated_config(max_steps=150, lr=1e-2, eval_every=150, checkpoint_every=150), run, progress=False)
    exp = build_experiment(gated_config())
    model = exp.build_model()
    load_init_from(model, run)
    examples = exp.problem.sample(np.random.default_rng(5), 20)
    predicted = np.stack(exp.predict_values(model.eval(), exp.problem, examples, torch.device("cpu")))
    off = ~np.eye(3, dtype=bool)
    assert (predicted[:, off] == 0).mean() > 0.9
    assert (predicted[:, ~off] != 0).mean() > 0.9


def test_a_gated_run_resumes_exactly(tmp_path):
    assert_resumes_exactly(lambda **kw: gated_config(**kw), tmp_path, steps=12, cut=6)


def test_a_gate_added_to_a_trained_model_starts_fresh_and_the_rest_is_kept(tmp_path):
    plain = dataclasses.replace(gated_config(max_steps=6), model=dataclasses.replace(gated_config().model, zero_gate=0.0))
    train_run(plain, tmp_path / "plain", progress=False)
    model = build_experiment(gated_config()).build_model()
    load_init_from(model, tmp_path / "plain")
    trained = build_experiment(plain).build_model()
    load_init_from(trained, tmp_path / "plain")
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)
    assert float(model.zero_head.bias.detach()) == -2.0
    # the other way round (a source with a part the model lacks) is still refused
    with pytest.raises(UserError, match="do not match"):
        train_run(dataclasses.replace(gated_config(max_steps=6)), tmp_path / "gated", progress=False)
        load_init_from(build_experiment(plain).build_model(), tmp_path / "gated")


def test_a_gate_on_a_token_answer_is_refused_in_one_sentence():
    config = continuous_config("transpose", 3, out="P1000")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, zero_gate=1.0))
    with pytest.raises(UserError, match="zero_gate is for a continuous answer"):
        build_experiment(config).build_model()
    with pytest.raises(ValueError):
        ModelConfig(zero_gate=-1.0)


def test_the_command_line_sets_the_limit_and_refuses_it_for_a_model_without_a_gate(tmp_path, capsys):
    import json

    from linalgformer.cli import main

    gated, plain = tmp_path / "gated", tmp_path / "plain"
    train_run(gated_config(max_steps=2, eval_every=2, checkpoint_every=2), gated, progress=False)
    train_run(dataclasses.replace(gated_config(max_steps=2, eval_every=2, checkpoint_every=2),
                                  model=dataclasses.replace(gated_config().model, zero_gate=0.0)), plain, progress=False)
    capsys.readouterr()
    for limit in ("0", "0.5"):
        assert main(["evaluate", str(gated), "--count", "10", "--zero-limit", limit, "--json"]) == 0
        json.loads(capsys.readouterr().out)
    assert main(["predict", str(gated), "--matrix", "1 0 3; 0 1 0; 3 0 2", "--zero-limit", "0.2"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(gated), "--count", "10", "--zero-limit", "-1"]) == 2
    assert main(["evaluate", str(plain), "--count", "10", "--zero-limit", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["linalgformer: error: the zero gate's limit must be a number of 0 or more, got -1.0.",
                   "linalgformer: error: this model has no zero gate (model.zero_gate): there is no limit to set."]
