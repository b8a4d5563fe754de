"""Every field of every config section refused with one sentence when its value is invalid:
exit 2, no traceback, nothing created or changed, for a new and for an existing run directory;
then the corrected command succeeds. In process (``cli.main``), with two subprocess checks."""

import dataclasses
import hashlib
import os
import subprocess
import sys

import pytest

from linalgformer.cli import family_fields, main
from linalgformer.config import TRAIN_RULES, TrainConfig
from linalgformer.experiments.registry import FAMILY_MODULES, family_module

TRAIN_BAD = {
    "batch_size": 0, "lr": -0.1, "optimizer": "sgd", "weight_decay": -1, "betas": "[0.9]",
    "warmup_steps": -1, "schedule": "linear", "min_lr_ratio": 2, "decay_steps": -1, "clip_grad": -1,
    "max_steps": -5, "max_examples": -1, "max_minutes": -1, "target_metric": "nan", "eval_every": 0,
    "log_every": 0, "checkpoint_every": 0, "data_file": "/nonexistent/examples.txt",
    "init_from": "/nonexistent/run", "valid_count": 0, "seed": -1, "precision": "fp8", "workers": -1,
    "compile": "maybe", "length_buckets": 0, "threads": -1, "device": "tpu", "checkpoint_minutes": -1,
}
# (value, words the message holds when they are not the field's name)
BAD = {
    "charton": {
        "problem.name": "no such name", "problem.dim": 0, "problem.min_dim": -1, "problem.max_dim": -1,
        "problem.encoding": "P7", "problem.input_encoding": "P7", "problem.output_encoding": "P7",
        "problem.precision": 0, "problem.max_exponent": -1, "problem.distribution": "cauchy",
        "problem.coefficients": "cauchy", "problem.bound": 0, "problem.noise": -1, "problem.rectangular": "maybe", "problem.size_power": -1, "problem.train_views": 1.5,
        "problem.tasks": "transpose", "problem.max_vocab_dim": 0, "problem.curriculum": 5,
        "model.enc_layers": 0, "model.dec_layers": -1, "model.width": 0, "model.heads": 0, "model.ffn_ratio": 0,
        "model.norm": "middle", "model.positions": "rotary", "model.share_embeddings": "maybe",
        "model.dropout": 1.0, "model.max_len": 0, "model.encoder_only": "maybe", "model.value_features": "maybe", "model.position_bias": "maybe",
        "model.number_features": "digits", "model.ffn": "gelu", "model.input_units": "columns", "model.value_loss": -1.0, "model.zero_gate": -1.0, "model.newton_steps": 100,
        "model.sign_free": "yes", "model.operand_units": 2, "model.loops": -1, "model.zero_gate_limit": -0.5, "model.verifier_loss": -1.0, "model.answer_views": 0, "model.view_average": "mode", "model.encoder_attention": "cosine",
        "model.grammar": "maybe",
    },
    "spectral": {
        "problem.task": "svd", "problem.data": "web", "problem.dim": 0, "problem.samples": 0, "problem.k": 0,
        "problem.spectrum": "flat", "problem.decay": 0, "problem.classes": 1, "problem.separation": -1,
        "problem.loss": "l2", "problem.value_weight": -1, "problem.idx_images": "[1]", "problem.idx_labels": "[1]",
        "problem.test_fraction": 1, "problem.digit_classes": "[11]", "problem.random_classes": "maybe",
        "model.tokens": "pixels", "model.identity": "maybe", "model.normalize_input": "maybe", "model.width": 0,
        "model.layers": -1, "model.heads": 0, "model.head_dim": -1, "model.attention": "cosine",
        "model.combine": "sum", "model.normalize": "maybe", "model.layer_norm": "maybe", "model.mlp": -1,
        "model.readout": "cls", "model.edge_bias": "maybe",
    },
    "newton": {
        "problem.task": "svd", "problem.dim": 0, "problem.points": 0, "problem.kappas": "[]",
        "problem.lambda_max": "[1]", "problem.noise": -1, "problem.mu": 0, "problem.teacher_scale": 0,
        "problem.symmetric": "maybe", "problem.curriculum": "maybe", "problem.start_dim": 0,
        "problem.start_points": 0, "problem.dim_step": -1, "problem.points_step": -1,
        "problem.curriculum_every": 0, "model.kind": "oracle", "model.layers": 0, "model.width": 0,
        "model.heads": 0, "model.attention": "cosine", "model.layernorm": "maybe", "model.mlp": "maybe",
        "model.normalize": "maybe", "model.init_scale": -1, "model.steps": -1, "model.order": 1,
    },
}
for family in BAD:
    BAD[family].update({f"train.{k}": v for k, v in TRAIN_BAD.items()})
# fields whose message names what is wrong in other words than the field's name
WORDS = {"train.data_file": ("examples.txt", "data_file"), "train.init_from": ("/nonexistent/run", "init_from"), "problem.distribution": "distribution"}
TINY = ["--dim", "3", "--width", "32", "--heads", "2", "--layers", "1", "--batch-size", "8", "--eval-every", "100",
        "--set", "train.valid_count=8", "--set", "model.max_len=64", "--set", "train.log_every=1"]
CASES = [(family, key, value) for family in BAD for key, value in BAD[family].items()]


def fingerprint(path):
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            out[full] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return out


def test_every_field_of_every_section_has_a_rule_and_a_bad_value():
    assert set(TRAIN_RULES) == {f.name for f in dataclasses.fields(TrainConfig)}
    for family in FAMILY_MODULES:
        module = family_module(family)
        for section in (module.ProblemConfig, module.ModelConfig):
            rules = vars(sys.modules[section.__module__])
            assert any(isinstance(v, dict) and set(v) == {f.name for f in dataclasses.fields(section)}
                       for v in rules.values()), section
        assert set(BAD[family]) == family_fields(family), family


def refused(args, capsys, words):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and len(err) < 300, err
    words = (words,) if isinstance(words, str) else words
    assert any(w.lower() in err.lower() for w in words), err
    return err


@pytest.mark.parametrize("family, key, value", CASES, ids=[f"{f}-{k}" for f, k, _ in CASES])
def test_bad_value_in_a_new_run_directory(family, key, value, tmp_path, capsys):
    out = tmp_path / "run"
    refused(["train", "--family", family, "--out", str(out), "--set", f"{key}={value}"], capsys,
            WORDS.get(key, key.split(".")[1]))
    assert not out.exists()


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("existing") / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("key", sorted(BAD["charton"]))
def test_bad_value_on_an_existing_run_changes_nothing(key, existing_run, capsys):
    before = fingerprint(existing_run)
    refused(["train", "--out", str(existing_run), "--set", f"{key}={BAD['charton'][key]}"], capsys,
            WORDS.get(key, key.split(".")[1]))
    assert fingerprint(existing_run) == before


def test_corrected_commands_succeed(existing_run, tmp_path, capsys):
    out = tmp_path / "run"
    refused(["train", *TINY, "--max-steps", "2", "--out", str(out), "--set", "train.eval_every=0"], capsys, "eval_every")
    assert main(["train", *TINY, "--max-steps", "2", "--quiet", "--out", str(out)]) == 0
    refused(["train", "--out", str(existing_run), "--eval-every", "0"], capsys, "eval_every")
    assert main(["train", "--out", str(existing_run), "--max-steps", "3", "--quiet"]) == 0
    assert '"kind": "final"' in (existing_run / "metrics.jsonl").read_text()


@pytest.mark.parametrize("setting", ["train.lr=nan", "problem.dim=0"])
def test_a_refused_value_from_the_command_line(setting, tmp_path):
    """Two subprocess runs: the real entry point gives one sentence and exit 2."""
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "linalgformer", "train", "--out", str(out), "--set", setting],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert setting.split("=")[0] in done.stderr and not out.exists()


def test_yaml_alias_bombs_and_non_utf8_are_refused(tmp_path, capsys):
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)) + "train: {lr: 1}\n"
    (tmp_path / "alias.yaml").write_text(laughs)
    (tmp_path / "latin1.yaml").write_bytes("train:\n  lr: 1 # caf\xe9\n".encode("latin-1"))
    refused(["train", "--config", str(tmp_path / "alias.yaml"), "--out", str(tmp_path / "a")], capsys, "aliases")
    refused(["train", "--config", str(tmp_path / "latin1.yaml"), "--out", str(tmp_path / "b")], capsys, "UTF-8")
    refused(["train", "--out", str(tmp_path / "c"), "--set", "train.betas=&x [*x]"], capsys, "recursive")
    assert not any((tmp_path / n).exists() for n in "abc")
