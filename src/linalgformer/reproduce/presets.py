"""Named presets (``configs/NAME.yaml``).

A preset is a run config (family/problem/model/train) plus two optional keys: ``title`` (one line)
and ``reproduce`` (the evaluation protocol and the overrides of each reduced scale). Scales:
``paper`` (the preset as written), ``quick`` (``reproduce.quick``: minutes on a CPU, a smoke test)
and ``cpu`` (``reproduce.cpu``: the best recipe found for a laptop CPU, within an hour).
"""

from __future__ import annotations

import copy
from pathlib import Path

from linalgformer.config import RunConfig, apply_override, load_yaml
from linalgformer.errors import UserError
from linalgformer.experiments.registry import run_config_from_dict

PRESET_DIR = Path(__file__).parent.parent / "presets"
SCALES = ("paper", "quick", "cpu")


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


def load_preset(name: str, scale: str = "paper", overrides: list[str] = ()) -> tuple[RunConfig, dict]:
    """(run config, reproduce section) of preset ``name`` at ``scale`` (see the module docstring)."""
    data = copy.deepcopy(load_yaml(preset_path(name)))
    protocol = data.get("reproduce") or {}
    for key, value in scale_overrides(name, protocol, scale).items():
        apply_override(data, f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    for assignment in overrides:
        apply_override(data, assignment)
    return run_config_from_dict(data), protocol


def scale_overrides(name: str, protocol: dict, scale: str) -> dict:
    """The ``--set``-style overrides of a scale; UserError when the preset has no such scale."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r} (known: {', '.join(SCALES)}).")
    if scale == "paper":
        return {}
    if scale == "cpu" and "cpu" not in protocol:
        raise UserError(f"preset {name} has no cpu scale (its reproduce.cpu section); try --scale quick.")
    return dict(protocol.get(scale) or {})


def run_name(name: str, scale: str) -> str:
    """The run folder and result name of a preset at a scale: NAME, NAME-quick, NAME-cpu."""
    return name if scale == "paper" else f"{name}-{scale}"


def preset_title(name: str, protocol: dict) -> str:
    """The reproduction's title: the protocol's own, else the preset's, else its name."""
    return str(protocol.get("title") or load_yaml(preset_path(name)).get("title") or name)
