"""A run directory is never left unusable or overwritten; resume is exact with dropout; a kill loses
at most ``checkpoint_minutes`` of work; a damaged optimizer state is refused before it is loaded."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from linalgformer import checkpoint as ckpt
from linalgformer import training as train_module
from linalgformer.errors import UserError
from linalgformer.tracking import read_metrics
from linalgformer.training import Trainer, train_run
from tests.helpers import tiny_config


def with_dropout(**train):
    config = tiny_config(**train)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=0.1))


def test_resume_is_exact_with_dropout(tmp_path):
    train_run(with_dropout(max_steps=8, eval_every=4, checkpoint_every=4, log_every=1), tmp_path / "whole", progress=False)
    train_run(with_dropout(max_steps=4, decay_steps=8, eval_every=4, checkpoint_every=4, log_every=1), tmp_path / "split", progress=False)
    train_run(with_dropout(max_steps=8, decay_steps=8, eval_every=4, checkpoint_every=4, log_every=1), tmp_path / "split", progress=False)
    losses = [[(r["step"], r["loss"]) for r in read_metrics(tmp_path / d) if r["kind"] == "train"] for d in ("whole", "split")]
    assert losses[0] == losses[1] and len(losses[0]) == 8
    a, b = (load_file(str(tmp_path / d / ckpt.WEIGHTS)) for d in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_run_that_fails_leaves_nothing_and_the_next_command_starts_afresh(tmp_path, monkeypatch):
    def crash(self):
        raise RuntimeError("boom")
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "run", crash)
        with pytest.raises(RuntimeError):
            train_run(tiny_config(max_steps=2), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    train_run(tiny_config(max_steps=2, eval_every=2), tmp_path / "run", progress=False)
    assert ckpt.has_checkpoint(tmp_path / "run")


def test_a_resume_that_crashes_leaves_the_previous_config(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=2, eval_every=2), run, progress=False)
    before = (run / ckpt.CONFIG).read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "step", lambda self, batch: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError):
            train_run(tiny_config(max_steps=4, eval_every=2), run, progress=False)
    assert (run / ckpt.CONFIG).read_bytes() == before
    train_run(tiny_config(max_steps=4, eval_every=2), run, progress=False)
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "final"] == [4]


def test_weights_without_a_manifest_are_refused_not_overwritten(tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=2, eval_every=2), run, progress=False)
    (run / ckpt.MANIFEST).unlink()
    weights = (run / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(UserError, match="no checkpoint manifest.*new --out"):
        train_run(tiny_config(max_steps=4), run, progress=False)
    assert (run / ckpt.WEIGHTS).read_bytes() == weights


def test_config_json_that_disagrees_with_the_weights_is_refused(tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=2, eval_every=2), run, progress=False)
    edited = json.loads((run / ckpt.CONFIG).read_text())
    edited["model"]["width"] = 64
    (run / ckpt.CONFIG).write_text(json.dumps(edited))
    config = dataclasses.replace(tiny_config(max_steps=4), model=dataclasses.replace(tiny_config().model, width=64))
    with pytest.raises(UserError, match="disagrees with the config its weights"):
        train_run(config, run, progress=False)


@pytest.mark.parametrize("damage", ["shape", "missing", "type", "groups", "rng"])
def test_a_damaged_optimizer_state_is_refused_before_loading(damage, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=2, eval_every=2), run, progress=False)
    state = torch.load(run / ckpt.STATE, weights_only=True)
    first = state["optimizer"]["state"][0]
    if damage == "shape":
        first["exp_avg"] = torch.zeros(3, 3)
    elif damage == "missing":
        del state["optimizer"]
    elif damage == "type":
        first["exp_avg_sq"] = [1.0]
    elif damage == "groups":
        state["optimizer"]["param_groups"] = []
    else:
        state["torch_rng"] = torch.zeros(3)
    torch.save(state, run / ckpt.STATE)
    manifest = json.loads((run / ckpt.MANIFEST).read_text())
    manifest["files"][ckpt.STATE] = ckpt.sha256(run / ckpt.STATE)  # re-signed: only the structure is wrong
    (run / ckpt.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="does not fit this run"):
        train_run(tiny_config(max_steps=4), run, progress=False)


def test_checkpoint_minutes_bounds_what_a_kill_loses(tmp_path, monkeypatch):
    """The clock advances a minute per step; checkpoint_every is far off: a checkpoint every 2 minutes
    all the same, so a run killed at step 7 restarts from step 6."""
    now = {"t": 0.0}
    monkeypatch.setattr(train_module, "clock", lambda: now["t"])
    real_step = Trainer.step

    def step(self, batch):
        now["t"] += 60.0
        if self.state["step"] == 7:
            raise KeyboardInterrupt
        return real_step(self, batch)
    monkeypatch.setattr(Trainer, "step", step)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(max_steps=20, eval_every=100, checkpoint_every=100, checkpoint_minutes=2), run, progress=False)
    assert json.loads((run / ckpt.MANIFEST).read_text())["step"] == 6


# ----------------------------------------------------------------------------- what is not the run's (issue 25.1)


def tree_hashes(root):
    """{relative path: bytes} of every file under ``root`` (the surroundings a command must not touch)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("files", [{"config.json": '{"mine": 1}\n'},
                                   {"config.json": "{}\n", "metrics.jsonl": '{"kind": "mine"}\n'},
                                   {"metrics.jsonl": "notes\n"}])
def test_a_folder_that_is_not_a_run_is_refused_and_left_as_it_was(tmp_path, files, capsys):
    """A user's folder holding a config.json (and metrics.jsonl) is not taken for a run: `train --out`
    ends in one sentence and exit 2, and every file is as it was."""
    from linalgformer.cli import main

    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    before = tree_hashes(tmp_path)
    assert main(["train", "--config", "configs/demo.yaml", "--out", str(folder), "--set", "train.max_steps=1"]) == 2
    assert "not a linalgformer run directory" in capsys.readouterr().err
    assert tree_hashes(tmp_path) == before and {p.name for p in folder.iterdir()} == set(files)


def test_a_failed_new_run_removes_only_what_it_created(tmp_path, monkeypatch):
    """A new run in an existing empty folder that fails before its first checkpoint leaves the folder
    and removes its own files (marker, config, metrics) and nothing else."""
    def crash(self):
        (self.run_dir / "metrics.jsonl").write_text("{}\n")
        raise KeyboardInterrupt
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr(Trainer, "run", crash)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(max_steps=2), folder, progress=False)
    assert folder.is_dir() and {p.name for p in folder.iterdir()} <= {ckpt.LOCK}


def test_a_run_is_marked_and_a_marked_run_resumes(tmp_path):
    from linalgformer import runs

    run = tmp_path / "run"
    train_run(tiny_config(max_steps=2, eval_every=2), run, progress=False)
    assert (run / runs.MARKER).is_file() and runs.is_run_dir(run)
    train_run(tiny_config(max_steps=4, eval_every=2), run, progress=False)
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "final"] == [4]
