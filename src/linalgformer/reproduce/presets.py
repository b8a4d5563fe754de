"""Named presets (``configs/NAME.yaml``).

A preset is a run config (family/problem/model/train) plus two optional keys: ``title`` (one line)
and ``reproduce`` (the evaluation protocol and the ``quick`` overrides applied with ``--quick``).
"""

from __future__ import annotations

import copy
from pathlib import Path

from linalgformer.config import RunConfig, apply_override, load_yaml
from linalgformer.errors import UserError
from linalgformer.experiments.registry import run_config_from_dict

PRESET_DIR = Path(__file__).parent.parent / "presets"


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


def preset_title(name: str, protocol: dict) -> str:
    """The reproduction's title: the protocol's own, else the preset's, else its name."""
    return str(protocol.get("title") or load_yaml(preset_path(name)).get("title") or name)
