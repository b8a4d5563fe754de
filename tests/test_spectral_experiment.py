"""The spectral experiment: batches, losses, evaluation with baselines, training a few steps."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.experiments.spectral import matched_cross_entropy, vector_loss

TINY = {"width": 16, "layers": 2, "heads": 2}
pytestmark = pytest.mark.usefixtures("one_thread")


def experiment(problem=None, model=None, train=None):
    return build_experiment(run_config_from_dict({
        "family": "spectral", "problem": problem or {"dim": 5, "samples": 6, "k": 2},
        "model": dict(TINY, **(model or {})), "train": train or {}}))


@pytest.mark.parametrize("model", [{}, {"tokens": "samples"}, {"tokens": "samples", "readout": "flatten"},
                                   {"layer_norm": True, "mlp": 2, "attention": "softmax", "combine": "concat"}])
def test_model_outputs_have_the_target_shapes(model):
    exp = experiment(model=model)
    batch = exp.sample_batch(np.random.default_rng(0), 3)
    out = exp.build_model()(batch)
    assert out["vectors"].shape == batch["vectors"].shape == (3, 5, 2)
    assert out["values"].shape == batch["values"].shape == (3, 2)


def test_covariance_tokens_hold_the_normalised_rows_and_the_identity():
    exp = experiment()
    model = exp.build_model()
    x = exp.sample_batch(np.random.default_rng(0), 2)["x"]
    tokens, scale = model.tokens(x)
    c = x.transpose(1, 2) @ x / 6
    torch.testing.assert_close(tokens[..., :5] * scale, c)
    torch.testing.assert_close(tokens[..., 5:], torch.eye(5).expand(2, 5, 5))


def test_losses_are_sign_and_label_invariant():
    target = torch.linalg.qr(torch.randn(4, 6, 3))[0]
    flipped = target * torch.tensor([-1.0, 1.0, -1.0])
    assert vector_loss(2 * flipped, target, "abs_cos") < 1e-6
    assert vector_loss(flipped, target, "cos2") < 1e-6
    assert vector_loss(flipped, target, "signed_cos") > 0.5
    labels = torch.tensor([[0, 1, 1, 2]])
    logits = 20 * torch.nn.functional.one_hot(torch.tensor([[2, 0, 0, 1]]), 3).float()  # renamed classes
    assert matched_cross_entropy(logits, labels) < 1e-6


@pytest.mark.parametrize("problem,model", [
    ({"dim": 5, "samples": 6, "k": 2, "spectrum": "geometric", "decay": 0.3}, {}),
    ({"task": "gmm", "dim": 4, "samples": 8, "separation": 6.0}, {"tokens": "samples"})])
def test_loss_decreases_over_a_few_steps(problem, model):
    exp = experiment(problem, model)
    torch.manual_seed(0)
    net = exp.build_model()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch = exp.sample_batch(np.random.default_rng(0), 32)
    losses = []
    for _ in range(40):
        loss = exp.loss(net, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_evaluate_reports_model_and_baselines_on_a_fixed_test_set():
    exp = experiment(train={"seed": 0})
    net = exp.build_model()
    first = exp.evaluate(net, 40, 7, torch.device("cpu"))
    assert first == exp.evaluate(net, 40, 7, torch.device("cpu"))
    assert exp.primary_metric == "mean_abs_cos" and 0 <= first["mean_abs_cos"] <= 1
    assert first["eigh_cos_1"] == pytest.approx(1.0) and first["power_conv_cos_2"] == pytest.approx(1.0)
    assert 0 < first["power2_cos_2"] < 1 and "block2_mean_abs_cos" in first
    gmm = experiment({"task": "gmm", "dim": 4, "samples": 8}, {"tokens": "samples"})
    metrics = gmm.evaluate(gmm.build_model(), 10, 1, torch.device("cpu"))
    assert gmm.primary_metric == "accuracy" and {"accuracy", "spectral_accuracy", "kmeans_accuracy"} <= set(metrics)


def test_digits_blocks_come_from_disjoint_pools():
    exp = experiment({"data": "digits", "dim": 6, "samples": 5, "k": 2})
    train = exp.draw(np.random.default_rng(0), 200, "train").x.reshape(-1, 6)
    test = exp.draw(np.random.default_rng(0), 200, "test").x.reshape(-1, 6)
    train_rows = {tuple(np.round(r, 9)) for r in train}
    assert not any(tuple(np.round(r, 9)) in train_rows for r in test)


def test_bad_model_choices_are_user_errors():
    with pytest.raises(UserError):
        experiment(model={"tokens": "pixels"})
    with pytest.raises(UserError):
        experiment({"task": "gmm"}, {"tokens": "covariance"}).build_model()


def test_quick_depth_reproduction_trains_evaluates_and_plots(tmp_path):
    from linalgformer.reproduce.driver import reproduce

    result = reproduce("spectral-depth", "quick", tmp_path)
    methods = [(row["method"], row["layers/iters"]) for row in result["table"]]
    assert ("transformer (trained)", 1) in methods and ("power method, deflation (t per vector)", 2) in methods
    assert all(0 <= row["cos_1"] <= 1 for row in result["table"])
    assert (tmp_path / "spectral-depth-quick" / "depth.png").stat().st_size > 1000
    assert "wall time" in result["text"] and "cos_3" in result["text"]


def test_predict_answers_pca_of_a_user_matrix_beside_eigh():
    exp = experiment()
    x = np.random.default_rng(3).normal(size=(9, 5))  # any n works with covariance tokens
    answer = exp.answer(exp.build_model(), x)
    assert np.asarray(answer["prediction"]).shape == np.asarray(answer["reference"]).shape == (2, 5)
    reference = np.linalg.eigh(x.T @ x / 9)[1][:, ::-1][:, :2].T
    assert np.allclose(np.abs(np.sum(reference * answer["reference"], axis=1)), 1.0)
    assert 0.0 <= answer["error"] <= 1.0 and len(answer["abs_cos"]) == 2


def test_predict_answers_clustering_beside_spectral_clustering():
    exp = experiment({"task": "gmm", "dim": 4, "samples": 8, "classes": 2}, {"tokens": "samples"})
    x = np.random.default_rng(4).normal(size=(8, 4))
    answer = exp.answer(exp.build_model(), x)
    assert len(answer["prediction"]) == len(answer["reference"]) == 8 and 0.0 <= answer["error"] <= 0.5


@pytest.mark.parametrize("shape, model", [((9, 4), {}), ((5,), {}), ((7, 5), {"tokens": "samples"})])
def test_predict_refuses_a_matrix_the_model_cannot_take(shape, model):
    exp = experiment(model=model)
    with pytest.raises(UserError):
        exp.answer(exp.build_model(), np.ones(shape))


def test_random_class_digit_blocks_draw_their_labels_afresh():
    exp = experiment({"task": "gmm", "data": "digits", "dim": 6, "samples": 12, "classes": 2, "random_classes": True},
                     {"tokens": "samples"})
    blocks = exp.draw(np.random.default_rng(0), 40, "train")
    assert blocks.x.shape == (40, 12, 6) and set(np.unique(blocks.labels)) <= {0, 1}
    points, labels = exp._real.pool("train")
    digit_sets = {frozenset(labels[np.flatnonzero((points == row).all(1))[0]] for row in block) for block in blocks.x}
    assert len(digit_sets) > 5 and all(len(s) <= 2 for s in digit_sets)  # a different pair from block to block
    with pytest.raises(UserError):
        experiment({"task": "gmm", "data": "digits", "random_classes": True, "digit_classes": [1, 2]})


@pytest.mark.parametrize("name, method", [("spectral-pca", "numpy eigh"), ("spectral-gmm", "k-means (scikit-learn)"),
                                          ("spectral-digits-gmm", "spectral clustering (top eigenvector)")])
def test_quick_presets_print_the_model_beside_the_baselines(name, method, tmp_path, capsys):
    from linalgformer.cli import main

    assert main(["reproduce", name, "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "transformer (trained)" in out and method in out and "wall time" in out
    assert (tmp_path / f"{name}-quick.result.json").is_file()
