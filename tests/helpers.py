"""Tiny configs shared by the training tests."""

import torch
from safetensors.torch import load_file

from linalgformer import checkpoint as ckpt
from linalgformer.experiments.registry import run_config_from_dict
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run


def tiny_config(**train):
    base = {"max_steps": 20, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "eval_every": 10,
            "log_every": 5, "checkpoint_every": 10, "valid_count": 16, "seed": 0}
    base.update(train)
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": "transpose", "dim": 3, "encoding": "P1000"},
        "model": {"enc_layers": 1, "dec_layers": 1, "width": 32, "heads": 2, "max_len": 64},
        "train": base,
    })


def assert_resumes_exactly(make_config, tmp_path, steps: int, cut: int) -> None:
    """A run stopped at ``cut`` and resumed to ``steps`` logs the same losses and ends with the same
    weights as an uninterrupted one (``make_config(**train)`` builds the run's config)."""
    train_run(make_config(max_steps=steps), tmp_path / "whole", progress=False)
    train_run(make_config(max_steps=cut, decay_steps=steps), tmp_path / "split", progress=False)
    train_run(make_config(max_steps=steps, decay_steps=steps), tmp_path / "split", progress=False)
    losses = [[(r["step"], r["loss"]) for r in read_metrics(tmp_path / d) if r["kind"] == "train"]
              for d in ("whole", "split")]
    assert losses[0] == losses[1] and len(losses[0]) >= 2
    a, b = (load_file(str(tmp_path / d / ckpt.WEIGHTS)) for d in ("whole", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
