"""The newton experiment: models, a tiny training loop, evaluation with baselines."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.experiments.newton import Experiment


pytestmark = pytest.mark.usefixtures("one_thread")


def experiment(problem: dict, model: dict | None = None) -> Experiment:
    return build_experiment(run_config_from_dict({"family": "newton", "problem": problem, "model": model or {}}))


@pytest.mark.parametrize("model", [{"layernorm": False}, {"layernorm": True, "mlp": True}, {"attention": "softmax"}])
def test_models_map_prompts_to_one_answer(model):
    exp = experiment({"dim": 3, "points": 6}, dict(model, layers=2, width=16, heads=2))
    batch = exp.sample_batch(np.random.default_rng(0), 5)
    assert batch["inputs"].shape == (5, 7, 4) and batch["target"].shape == (5,)
    torch.manual_seed(0)
    assert exp.build_model()(batch["inputs"]).shape == (5,)


def test_tiny_training_lowers_the_loss():
    exp = experiment({"dim": 2, "points": 10, "kappas": [2], "lambda_max": [1, 2]},
                     {"layers": 1, "width": 16, "heads": 2})
    torch.manual_seed(0)
    model = exp.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = exp.evaluate(model, 200, 1, torch.device("cpu"), baselines=False)["loss"]
    for step in range(100):
        loss = exp.loss(model, exp.sample_batch(np.random.default_rng([0, step]), 32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = exp.evaluate(model, 200, 1, torch.device("cpu"))
    assert after["loss"] < 0.5 * before
    assert after["neg_loss"] == -after["loss"]
    assert {"exact_loss", "newton2_loss", "newton5_loss", "gd_loss"} <= set(after)
    assert after["exact_loss"] < 1e-20 and set(after["by_kappa"]) == {"2"}


def test_construction_model_evaluates_to_the_inverse():
    exp = experiment({"task": "inverse", "dim": 4, "kappas": [2, 20]}, {"kind": "construction"})
    model = exp.build_model()
    metrics = exp.evaluate(model, 20, 0, torch.device("cpu"))
    assert metrics["max_rel_error"] < 1e-6
    assert metrics["baseline_steps"] == model.steps
    assert metrics["loss"] < 1e-12 and metrics["newton2_loss"] < 1e-12
    trained = experiment({"task": "inverse", "dim": 4}, {"layers": 1, "width": 8, "heads": 2}).build_model()
    assert trained(torch.zeros(3, 4, 4)).shape == (3, 4, 4)


def test_logreg_batches_and_bad_configs():
    exp = experiment({"task": "logreg", "dim": 3, "points": 5})
    batch = exp.sample_batch(np.random.default_rng(0), 4)
    assert batch["inputs"].shape == (4, 6, 4)
    with pytest.raises(UserError):
        experiment({"task": "logreg"}, {"kind": "construction"}).build_model()
    with pytest.raises(UserError):
        experiment({"task": "sorting"})
    with pytest.raises(UserError):
        experiment({"kappas": [0.5]})
