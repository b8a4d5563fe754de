"""Named presets (``configs/NAME.yaml``) and ``linalgformer reproduce NAME``.

A preset is a run config (family/problem/model/train) plus two optional keys: ``title`` (one line)
and ``reproduce`` (the evaluation protocol and the ``quick`` overrides applied with ``--quick``).
Running a preset is the family's business: each family module has ``reproduce(name, quick, out_dir)``
returning {"title", "table" (row dicts), "text" (the printed table), optional "plots"}.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from linalgformer.config import apply_override, load_yaml
from linalgformer.errors import UserError
from linalgformer.experiment import FAMILY_MODULES, RunConfig, family_module, run_config_from_dict

PRESET_DIR = Path(__file__).parent / "presets"


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(n for n, _ in list_presets()) or "none"
        raise UserError(f"unknown preset {name!r} (known: {known}).")
    return path


def list_presets() -> list[tuple[str, str]]:
    """(name, title) of every preset YAML."""
    out = []
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        try:
            title = str(load_yaml(path).get("title", ""))
        except UserError:
            title = "(unreadable preset)"
        out.append((path.stem, title))
    return out


def load_preset(name: str, quick: bool = False, overrides: list[str] = ()) -> tuple[RunConfig, dict]:
    """(run config, reproduce section) of preset ``name``; ``quick`` applies its quick overrides."""
    data = copy.deepcopy(load_yaml(preset_path(name)))
    protocol = data.get("reproduce") or {}
    if quick:
        for key, value in (protocol.get("quick") or {}).items():
            apply_override(data, f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    for assignment in overrides:
        apply_override(data, assignment)
    return run_config_from_dict(data), protocol


def run_preset(name: str, *, quick: bool, out_dir: Path) -> dict[str, Any]:
    family = load_yaml(preset_path(name)).get("family", "charton")
    if family not in FAMILY_MODULES:
        raise UserError(f"preset {name} names an unknown family {family!r}.")
    module = family_module(family)
    if not hasattr(module, "reproduce"):
        raise UserError(f"the {family} family has no reproduce entry yet.")
    result = module.reproduce(name, quick, Path(out_dir))
    save_result(result, Path(out_dir) / f"{name}{'-quick' if quick else ''}.result.json", family)
    return result


def machine() -> dict[str, Any]:
    """Where this process runs: what a result needs to be read against."""
    import os
    import platform

    import torch

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__}


def save_result(result: dict[str, Any], path: Path, family: str) -> None:
    """The result of ``reproduce`` beside its runs (``NAME[-quick].result.json``), for tables of many."""
    import json
    import time

    from linalgformer.checkpoint import atomic_write_text

    record = dict(result, family=family, machine=machine(), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")


def training_done(run_dir: Path) -> str:
    """e.g. "trained 1,500 steps / 96,000 examples in 180 s", from the run's metrics.jsonl."""
    from linalgformer.tracking import read_metrics

    records = [r for r in read_metrics(Path(run_dir)) if r.get("kind") in ("train", "final")]
    if not records:
        return "not trained"
    last = records[-1]
    return (f"trained {last.get('step', 0):,} steps / {last.get('examples', 0):,} examples in "
            f"{last.get('elapsed', float('nan')):.0f} s")


def run_summary(run_dir: Path, model: str = "", trained: str | None = None) -> str:
    """One line on how a run was trained (from its metrics.jsonl) and where this process evaluates it."""
    trained = training_done(run_dir) if trained is None else trained
    where = machine()
    return (f"{model + '; ' if model else ''}{trained}; machine: {where['machine']} {where['device']}, "
            f"{where['cpus']} CPUs, {where['torch_threads']} torch threads, torch {where['torch']}")
