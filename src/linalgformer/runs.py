"""A trained run, opened: its config resolved, its experiment built, its verified weights loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from linalgformer import checkpoint as ckpt
from linalgformer.config import RunConfig
from linalgformer.experiments.plugin import Experiment
from linalgformer.experiments.registry import build_experiment, run_config_from_dict


def load_run(run_dir: Path, device: torch.device | str = "cpu") -> tuple[RunConfig, Experiment, torch.nn.Module]:
    """(config, experiment, model) of a trained run, weights verified and loaded, model in eval mode."""
    run_dir = Path(run_dir)
    config = run_config_from_dict(ckpt.read_config(run_dir))
    ckpt.verify_checkpoint(run_dir, (ckpt.WEIGHTS,))
    tensors, _ = ckpt.load_weights(run_dir / ckpt.WEIGHTS)
    experiment = build_experiment(config)
    model = experiment.build_model()
    ckpt.load_model_state(model, tensors, run_dir / ckpt.WEIGHTS)
    return config, experiment, model.to(device).eval()
