"""``train.init_from`` names a run directory or a bundled model: a preset can start from a shipped
model (singularvalues-5x5-transfer starts from eigenvalues-5x5) wherever the package is installed."""

from __future__ import annotations

import pytest
import torch

from linalgformer import bundled
from linalgformer import checkpoint as ckpt
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.reproduce.presets import load_preset
from linalgformer.runs import init_source, load_init_from


def test_a_bundled_name_is_its_directory_and_a_path_is_itself(tmp_path):
    assert init_source("eigenvalues-5x5") == bundled.bundled_models()["eigenvalues-5x5"]
    assert init_source(str(tmp_path)) == tmp_path
    with pytest.raises(UserError, match="train.init_from no-such-model: no such run directory or bundled model"):
        init_source("no-such-model")


def test_the_transfer_preset_starts_as_the_eigenvalue_model():
    """Every weight of the singular-value model starts as eigenvalues-5x5's (stored float16, loaded
    float32): the two problems share the model's shape, only the answer differs."""
    config, _ = load_preset("singularvalues-5x5-transfer")
    assert config.problem.name == "singularvalues" and config.train.init_from == "eigenvalues-5x5"
    model = build_experiment(config).build_model()
    load_init_from(model, init_source(config.train.init_from))
    shipped, _ = ckpt.load_weights(bundled.bundled_models()["eigenvalues-5x5"] / ckpt.WEIGHTS)
    state = model.state_dict()
    assert set(shipped) <= set(state)
    for name, tensor in shipped.items():
        assert torch.equal(state[name], tensor.to(state[name].dtype)), name


def test_an_unknown_start_is_one_sentence_and_leaves_no_run(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--config", "configs/singularvalues-5x5-transfer.yaml", "--out", str(out),
                 "--set", "train.init_from=eigenvalues-9x9", "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "train.init_from eigenvalues-9x9" in err and "Traceback" not in err
    assert not out.exists()
