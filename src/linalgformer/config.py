"""Typed configuration: dataclasses built from YAML/JSON dicts, with unknown keys refused.

A run is described by a :class:`RunConfig`: the experiment ``family`` (charton, spectral, newton),
a family-specific ``problem`` and ``model`` section, and the shared ``train`` section. Each family
module defines its own ``ProblemConfig`` and ``ModelConfig`` dataclasses; this module only knows how
to turn nested dicts into (frozen) dataclasses and back, and how to apply ``key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from linalgformer.errors import UserError


@dataclasses.dataclass
class TrainConfig:
    """The training loop's knobs, shared by every family."""

    batch_size: int = 64  # global batch: split across torchrun processes
    lr: float = 1e-4
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000
    schedule: str = "inverse_sqrt"  # inverse_sqrt | cosine | constant
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    decay_steps: int = 0  # cosine horizon; 0: max_steps at the run's start (kept when a run is extended)
    clip_grad: float = 5.0  # 0 disables clipping
    max_steps: int = 10_000
    max_examples: int = 0  # 0: no limit
    max_minutes: float = 0.0  # 0: no limit
    target_metric: float = 0.0  # stop once the family's primary metric reaches it (0: never)
    eval_every: int = 500
    log_every: int = 50
    checkpoint_every: int = 500
    data_file: str = ""  # train on examples read from this file (written by `generate`) instead of fresh ones
    init_from: str = ""  # start from the weights of this run directory (e.g. retraining on larger matrices)
    valid_count: int = 500  # fixed, seeded validation set size
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on GPUs that support it, else fp32)
    workers: int = 0  # data-generation worker processes (0: in the training process)
    compile: bool = False  # torch.compile the model
    length_buckets: int = 4  # charton, mixed sizes: run each batch as this many chunks of similar length (1: off)
    threads: int = 0  # torch CPU threads (0: torch's default)
    device: str = "auto"  # auto | cpu | cuda


@dataclasses.dataclass
class RunConfig:
    family: str
    problem: Any
    model: Any
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {"family": self.family, "problem": to_dict(self.problem),
                "model": to_dict(self.model), "train": to_dict(self.train)}


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``, checking keys and value types; raise UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping of keys to values, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"unknown key {where}.{unknown[0]} (known: {', '.join(sorted(names))}).")
    values = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: {err}.") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}.")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        items = [_coerce(inner, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"{where} must be true or false, got {value!r}.")
    if hint in (int, float):
        return _number(hint, value, where)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"{where} must be a string, got {value!r}.")
        return str(value)
    return value


def _number(kind: type, value: Any, where: str) -> int | float:
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number, got {value!r}.")
    try:
        number = kind(value) if not isinstance(value, str) else kind(float(value)) if kind is int and _is_integral(value) else kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}.") from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise UserError(f"{where} must be an integer, got {value!r}.")
    if kind is float and not (number == number and abs(number) != float("inf")):
        raise UserError(f"{where} must be a finite number, got {value!r}.")
    return number


def _is_integral(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping safely (``yaml.safe_load``); a clear UserError on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}.") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values.")
    return data


def apply_override(data: dict, assignment: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to a nested dict in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key=value (e.g. train.lr=3e-4), got {assignment!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    value = _yaml_number(value)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: {part} is not a section.")
        node = child
    node[parts[-1]] = value


def _yaml_number(value: Any) -> Any:
    """PyYAML reads ``2e-4`` (no dot) as a string; users mean a number."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                continue
    return value


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
