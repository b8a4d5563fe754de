"""Typed configuration: dataclasses built from YAML/JSON dicts, with unknown keys refused.

A run is described by a :class:`RunConfig`: the experiment ``family`` (charton, spectral, newton),
a family-specific ``problem`` and ``model`` section, and the shared ``train`` section. Each family
module defines its own ``ProblemConfig`` and ``ModelConfig`` dataclasses; this module only knows how
to turn nested dicts into (frozen) dataclasses and back, and how to apply ``key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from linalgformer.errors import UserError, brief
from linalgformer.files import read_bounded


# ----------------------------------------------------------------------------- field rules


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one config field allows: ``allowed`` in words (for the message) and a test."""

    allowed: str
    test: Callable[[Any], bool]

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


class FieldError(UserError, ValueError):
    """A config field holds a value its rule refuses; ``field`` names it (the section is added by
    :func:`from_dict`). A UserError also where a dataclass is built directly (the CLI's flags)."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field} must be {allowed}, got {brief(value)}")


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def at_least(low: int | float, note: str = "") -> Rule:
    """An integer (int ``low``) or a finite number (float ``low``) >= ``low``."""
    kind, check = ("an integer", _integer) if isinstance(low, int) else ("a number", _real)
    return Rule(f"{kind} >= {_shown(low)}{note}", lambda v: check(v) and v >= low)


def greater_than(low: float, note: str = "") -> Rule:
    return Rule(f"a number > {low:g}{note}", lambda v: _real(v) and v > low)


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False, integer: bool = False) -> Rule:
    words = (f"{'an integer' if integer else 'a number'} in {'(' if low_open else '['}{_shown(low)}, "
             f"{_shown(high)}{')' if high_open else ']'}")
    check = _integer if integer else _real
    return Rule(words, lambda v: check(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))


def _shown(number: int | float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def one_of(*choices: str) -> Rule:
    shown = ", ".join(repr(c) if c == "" else c for c in choices)
    return Rule(f"one of {shown}", lambda v: v in choices)


def matching(pattern: str, allowed: str) -> Rule:
    return Rule(allowed, lambda v: isinstance(v, str) and re.fullmatch(pattern, v) is not None)


def each(rule: Rule, *, count: int | None = None, non_empty: bool = False) -> Rule:
    size = f"{count} " if count else "a non-empty list of " if non_empty else "a list of "
    words = f"{size}{'values' if count else 'values'}, each {rule.allowed}"
    return Rule(words, lambda v: isinstance(v, (list, tuple)) and (count is None or len(v) == count)
                and (not non_empty or len(v) > 0) and all(rule.holds(x) for x in v))


FLAG = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("text", lambda v: isinstance(v, str))  # checked where it is used (a path, a list of names)
SECTIONS = Rule("a list of mappings", lambda v: isinstance(v, list))  # each item is its own dataclass


def check_fields(obj: Any, rules: dict[str, Rule]) -> None:
    """Raise :class:`FieldError` for the first field of dataclass ``obj`` its rule refuses.

    Every field must have a rule (``tests/test_config_validation.py`` holds every section to it)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not rules[f.name].holds(value):
            raise FieldError(f.name, value, rules[f.name].allowed)


# ----------------------------------------------------------------------------- the train section


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
    init_from: str = ""  # start from the weights of this run directory or bundled model (e.g. retraining on larger matrices)
    valid_count: int = 500  # fixed, seeded validation set size
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on GPUs that support it, else fp32)
    workers: int = 0  # data-generation worker processes (0: in the training process)
    compile: bool = False  # torch.compile the model
    length_buckets: int = 4  # charton, mixed sizes: run each batch as this many chunks of similar length (1: off)
    threads: int = 0  # torch CPU threads (0: torch's default)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    checkpoint_minutes: float = 5.0  # also checkpoint when this much wall-clock time passed since the last one (0: off)

    def __post_init__(self):
        check_fields(self, TRAIN_RULES)


TRAIN_RULES = {
    "batch_size": at_least(1), "lr": greater_than(0.0), "optimizer": one_of("adam", "adamw"),
    "weight_decay": at_least(0.0), "betas": each(between(0.0, 1.0, high_open=True), count=2),
    "warmup_steps": at_least(0), "schedule": one_of("inverse_sqrt", "cosine", "constant"),
    "min_lr_ratio": between(0.0, 1.0), "decay_steps": at_least(0, " (0: max_steps)"),
    "clip_grad": at_least(0.0, " (0: no clipping)"), "max_steps": at_least(1),
    "max_examples": at_least(0, " (0: no limit)"), "max_minutes": at_least(0.0, " (0: no limit)"),
    "target_metric": Rule("a finite number (0: never stop on it)", _real),
    "eval_every": at_least(1), "log_every": at_least(1), "checkpoint_every": at_least(1),
    "data_file": TEXT, "init_from": TEXT, "valid_count": at_least(1),
    "seed": between(0, 2**63 - 1, integer=True), "precision": one_of("auto", "fp32", "bf16", "fp16"),
    "workers": at_least(0), "compile": FLAG, "length_buckets": at_least(1), "threads": at_least(0),
    "device": matching(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, mps, cuda or cuda:N"),
    "checkpoint_minutes": at_least(0.0, " (0: off)"),
}


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
    except FieldError as err:
        raise UserError(f"{where}.{err}.") from None
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
        text = read_bounded(path, "config file", MAX_CONFIG_BYTES).decode("utf-8")
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}.") from None
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not UTF-8 text (byte {err.start}).") from None
    try:
        data = safe_yaml(text, f"config file {path}")
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}.") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values.")
    return data


MAX_YAML_NODES = 100_000  # a config expanded through its aliases may hold at most this many values
MAX_CONFIG_BYTES = 4 * 2**20  # presets are a few kilobytes


def safe_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` of ``text``, its size bounded before anything is built: an anchor repeated
    through aliases (a "billion laughs") would expand without bound, and a recursive one forever.
    Aliases themselves are allowed (the shipped presets use them)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}, set(), what) > MAX_YAML_NODES:
            raise UserError(f"{what} expands through its YAML aliases (*name) to more than {MAX_YAML_NODES} values.")
        return yaml.safe_load(text)
    except RecursionError:  # [[[[...]]]] thousands deep: the parser and the size count recurse
        raise UserError(f"{what} is nested too deeply.") from None


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], what: str) -> int:
    """How many values ``node`` holds once every alias is written out (each shared node counted once
    per use, computed once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise UserError(f"{what} holds a recursive YAML alias (a value that contains itself).")
    open_nodes.add(key)
    children = [] if isinstance(node, yaml.ScalarNode) else (
        [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value)
    size = 1
    for child in children:
        size = min(size + _expanded_size(child, sizes, open_nodes, what), MAX_YAML_NODES + 1)
    open_nodes.discard(key)
    sizes[key] = size
    return size


def apply_override(data: dict, assignment: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to a nested dict in place."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key=value (e.g. train.lr=3e-4), got {assignment!r}.")
    try:
        value = safe_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
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


# ----------------------------------------------------------------------------- memory estimates
#
# A request that certainly cannot fit in this machine's memory is refused before any work starts.
# The estimates below are lower bounds (what the request needs at the least, not what it takes), held
# against the machine's physical memory: a refused request could never run here, and one that passes
# may still run out of memory on a busy machine or a smaller GPU.


def memory_bytes() -> int:
    """This machine's physical memory in bytes (``os.sysconf``); 2^62 where it cannot be told."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62


def check_memory(need: int, what: str, advice: str) -> None:
    """Refuse ``what`` in one sentence when it needs more than this machine's memory."""
    have = memory_bytes()
    if need > have:
        raise UserError(f"{what} needs at least {need / 2**30:,.0f} GiB of memory but this machine has "
                        f"{have / 2**30:,.0f} GiB: {advice}.")


def example_size(problem: Any) -> tuple[int, int]:
    """(numbers, tokens): lower bounds of one example of a problem section's largest size: an n x n
    matrix (Charton) holds n^2 numbers in at least n tokens (one per row); a block of s samples or
    points of dimension d holds s * d numbers in s tokens (spectral, newton)."""
    size = lambda *names: max([int(getattr(problem, n, 0) or 0) for n in names] + [1])  # noqa: E731
    n, samples = size("dim", "max_dim"), size("samples", "points")
    rows = samples if samples > 1 else n
    return n * rows, rows


def training_memory(config: RunConfig) -> int:
    """Bytes a training run needs at the least: 16 per parameter (fp32 weights, gradients and Adam's
    two moments; parameters counted as attention 4w^2 + feed-forward 2rw^2 per layer, plus a max_len x w
    positions table), 4 per activation kept for the backward pass (two w-vectors and the feed-forward's
    r*w per layer and token), and 8 per number of the validation set."""
    model, train = config.model, config.train
    width = int(getattr(model, "width", 0) or 0)
    layers = sum(int(getattr(model, name, 0) or 0) for name in ("enc_layers", "dec_layers", "layers"))
    ratio = float(getattr(model, "ffn_ratio", 0) or getattr(model, "mlp", 0) or 0)
    params = layers * (4 + 2 * ratio) * width**2 + int(getattr(model, "max_len", 0) or 0) * width
    numbers, tokens = example_size(config.problem)
    activations = train.batch_size * tokens * width * layers * (2 + ratio)
    return int(16 * params + 4 * activations + 8 * train.valid_count * numbers)


def check_training_memory(config: RunConfig) -> None:
    check_memory(training_memory(config), "this run (its model width, layers, feed-forward ratio, max_len, "
                 "batch size and validation set)", "lower model.width, model.max_len, model.ffn_ratio, "
                 "train.batch_size or train.valid_count")


def check_examples_memory(problem: Any, count: int, groups: int = 1) -> None:
    """Refuse drawing ``count`` examples (in each of ``groups`` test sets) that cannot fit: each holds
    its numbers as float64 and, at the least, one int64 token id per number."""
    numbers, _ = example_size(problem)
    check_memory(16 * count * groups * numbers, f"{count * groups:,} examples of this size",
                 "lower the count (or the size, the number of laws or sizes)")
