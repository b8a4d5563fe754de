"""Steps the family drivers share: train (or resume) a run and open it, how it was trained, where
this process runs, and a table of row dicts."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from linalgformer.config import RunConfig
from linalgformer.experiments.plugin import Experiment
from linalgformer.runs import load_run
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run


def trained(config: RunConfig, run_dir: Path, device: torch.device,
            progress: bool = True) -> tuple[Experiment, torch.nn.Module]:
    """Train (or resume) the run in ``run_dir``, then open it on ``device``: (experiment, model)."""
    train_run(config, run_dir, progress=progress)
    _, experiment, model = load_run(run_dir, device)
    return experiment, model


def last_record(run_dir: Path) -> dict[str, Any]:
    """The run's last metrics.jsonl record that carries a time (train, eval or final); {} if none."""
    records = [r for r in read_metrics(Path(run_dir)) if "elapsed" in r]
    return records[-1] if records else {}


def training_done(run_dir: Path) -> str:
    """e.g. "trained 1,500 steps / 96,000 examples in 180 s", from the run's metrics.jsonl."""
    records = [r for r in read_metrics(Path(run_dir)) if r.get("kind") in ("train", "final")]
    if not records:
        return "not trained"
    last = records[-1]
    return (f"trained {last.get('step', 0):,} steps / {last.get('examples', 0):,} examples in "
            f"{last.get('elapsed', float('nan')):.0f} s")


def machine() -> dict[str, Any]:
    """Where this process runs: what a result needs to be read against."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__}


def machine_line(wall_s: float) -> str:
    where = machine()
    return (f"wall time {wall_s:.0f} s (training and evaluation); machine: {where['machine']} {where['device']}, "
            f"{where['cpus']} CPUs, {where['torch_threads']} torch threads, torch {where['torch']}")
