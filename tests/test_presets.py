"""Every preset resolves to a valid run; two Charton presets run end to end at a tiny scale."""

import pytest
import torch

from linalgformer.reproduce import driver as reproduce_module
from linalgformer.cli import main
from linalgformer.experiments.registry import build_experiment
from linalgformer.errors import UserError
from linalgformer.reproduce.presets import SCALES, list_presets, load_preset

NAMES = [name for name, _ in list_presets()]
TINY = ["model.enc_layers=1", "model.dec_layers=1", "model.width=32", "model.heads=2", "train.max_steps=4",
        "train.eval_every=2", "train.checkpoint_every=2", "train.valid_count=8", "train.max_minutes=0"]


def test_configs_folder_is_the_shipped_presets():
    """``configs/`` (used by the Makefile and the docs) is the package's presets folder, not a copy."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    assert (root / "configs" / "demo.yaml").is_file()
    assert (root / "configs").resolve() == (root / "src" / "linalgformer" / "presets").resolve()


def test_presets_exist():
    charton = [n for n in NAMES if n.split("-")[0] in ("transpose", "matrix", "eigenvalues", "eigenvectors",
                                                       "invert", "syminverse", "singularvalues", "singularvectors")]
    assert len(charton) >= 15 and "eigenvalues-ood" in NAMES and "cotraining-5x5" in NAMES


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", SCALES)
def test_preset_builds(name, scale):
    if scale == "cpu" and "cpu" not in (load_preset(name)[1]):
        with pytest.raises(UserError, match="no cpu scale"):
            load_preset(name, scale)
        return
    config, protocol = load_preset(name, scale)
    if config.family == "charton":
        experiment = build_experiment(config)
        with torch.device("meta"):  # shapes checked, nothing allocated
            assert experiment.build_model() is not None
        assert "eval" in protocol or "grid" in protocol or "retrain" in protocol or "quick" in protocol


@pytest.fixture
def tiny_presets(monkeypatch):
    real = reproduce_module.load_preset

    def tiny(name, scale="paper", overrides=()):
        config, protocol = real(name, scale, list(overrides) + TINY)
        protocol = dict(protocol, eval={**(protocol.get("eval") or {}), "count": 4})
        if "grid" in protocol:
            protocol["grid"] = {"train": ["semicircle", "laplace"], "test": ["semicircle", "laplace", "positive"]}
        return config, protocol

    monkeypatch.setattr(reproduce_module, "load_preset", tiny)


def test_reproduce_demo_tiny(tiny_presets, tmp_path, capsys):
    assert main(["reproduce", "demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tol 0.05" in out and "paper:" in out
    assert (tmp_path / "demo-quick" / "model.safetensors").exists()


@pytest.mark.slow
def test_reproduce_ood_grid_tiny(tiny_presets, tmp_path, capsys):
    assert main(["reproduce", "eigenvalues-ood", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train \\ test" in out and "laplace" in out and "positive" in out
    assert (tmp_path / "eigenvalues-ood-quick" / "laplace" / "config.json").exists()


def test_reproduce_writes_a_result_that_results_tabulates(tiny_presets, tmp_path, capsys):
    assert main(["reproduce", "demo", "--quick", "--out", str(tmp_path)]) == 0
    result = tmp_path / "demo-quick.result.json"
    assert result.is_file()
    capsys.readouterr()
    assert main(["results", str(result)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| preset | problem") and "| demo --quick | transpose | 3x3 | P1000 -> P1000 |" in table[2]
    assert main(["results", str(tmp_path / "missing.result.json")]) == 2
