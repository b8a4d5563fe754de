import pytest

from linalgformer.config import TrainConfig, apply_override, from_dict, load_yaml
from linalgformer.errors import UserError


def test_from_dict_types_and_defaults():
    cfg = from_dict(TrainConfig, {"lr": "3e-4", "max_steps": 10, "betas": [0.9, 0.98], "compile": "false"})
    assert cfg.lr == 3e-4 and cfg.max_steps == 10 and cfg.betas == (0.9, 0.98) and cfg.compile is False
    assert cfg.batch_size == TrainConfig().batch_size


@pytest.mark.parametrize("data, word", [
    ({"nope": 1}, "unknown key"),
    ({"max_steps": "ten"}, "integer"),
    ({"max_steps": 1.5}, "integer"),
    ({"lr": "nan"}, "finite"),
    ({"lr": [1]}, "number"),
    ({"compile": "maybe"}, "true or false"),
    ({"betas": 0.9}, "list"),
])
def test_from_dict_rejects(data, word):
    with pytest.raises(UserError, match=word):
        from_dict(TrainConfig, data, "train")


def test_apply_override_nested_and_yaml_values():
    data = {"train": {"lr": 1.0}}
    apply_override(data, "train.lr=2e-4")
    apply_override(data, "model.width=64")
    assert data == {"train": {"lr": 2e-4}, "model": {"width": 64}}
    with pytest.raises(UserError):
        apply_override(data, "no-equals-sign")
    with pytest.raises(UserError):
        apply_override(data, "train.lr.x=1")


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(UserError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(UserError, match="mapping"):
        load_yaml(scalar)


def test_yaml_is_parsed_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("a: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError):
        load_yaml(evil)
