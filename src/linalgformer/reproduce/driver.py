"""``linalgformer reproduce NAME``: the steps every reproduction shares, around one family driver.

A family driver is ``run(config, protocol, out, device) -> {"table", "text", optional "plots", ...}``;
this module loads the preset, picks the output folder and the device, runs the driver (after the
run a ``retrain`` preset starts from), times it, adds the title, the "paper:", plot and machine
lines, and saves the result as ``NAME[-SCALE].result.json`` beside the runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from linalgformer.files import atomic_write_text
from linalgformer.reproduce import charton, newton, spectral
from linalgformer.reproduce.presets import load_preset, preset_title, run_name
from linalgformer.reproduce.steps import machine, machine_line
from linalgformer.training import pick_device

DRIVERS = {"charton": charton.run, "spectral": spectral.run, "newton": newton.run}


def run_preset(name: str, *, scale: str = "paper", out_dir: Path) -> dict[str, Any]:
    """Reproduce preset ``name`` at ``scale`` (paper, quick, cpu) and save its result beside its runs."""
    result = reproduce(name, scale, Path(out_dir))
    save_result(result, Path(out_dir) / f"{run_name(name, scale)}.result.json")
    return result


def reproduce(name: str, scale: str, out_dir: Path) -> dict[str, Any]:
    """Run preset ``name`` end to end: the family driver's result, titled, timed and signed."""
    config, protocol = load_preset(name, scale)
    out = Path(out_dir) / run_name(name, scale)
    if protocol.get("retrain"):  # start from the run of another preset, reproduced first if needed
        base = reproduce(protocol["retrain"]["from"], "quick" if scale == "quick" else "paper", out_dir)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, init_from=base["run_dir"]))
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    start = time.time()
    result = DRIVERS[config.family](config, protocol, out, pick_device(config.train.device))
    wall = round(time.time() - start, 1)
    result.update(title=preset_title(name, protocol), name=name, quick=scale == "quick", scale=scale,
                  family=config.family, out_dir=str(out),
                  wall_s=wall)
    result["text"] += closing_lines(protocol, result.get("plots", []), wall)
    return result


def closing_lines(protocol: dict, plots: list[str], wall_s: float) -> str:
    """The "paper:" line (when the preset quotes the paper in words), one line per plot, the machine."""
    paper = protocol.get("paper")
    lines = [f"paper: {paper}"] if isinstance(paper, str) else []
    lines += [f"plot: {path}" for path in plots] + [machine_line(wall_s)]
    return "".join("\n" + line for line in lines)


def save_result(result: dict[str, Any], path: Path) -> None:
    """The result of ``reproduce`` beside its runs (``NAME[-SCALE].result.json``), for tables of many."""
    record = dict(result, machine=machine(), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
