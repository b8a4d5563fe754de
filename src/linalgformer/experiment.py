"""One experiment abstraction for the three families: problem + model + loss + metrics.

The trainer (``linalgformer.train``), the evaluator and the CLI only ever talk to an
:class:`Experiment`. A family (charton, spectral, newton) is a module that defines

* ``ProblemConfig`` and ``ModelConfig`` dataclasses (the ``problem`` and ``model`` config sections),
* an ``Experiment`` subclass built from a :class:`~linalgformer.config.RunConfig`.

Batches are dicts of CPU tensors so that they can be produced in worker processes and moved to the
device by the trainer. Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from linalgformer.config import RunConfig, TrainConfig, from_dict
from linalgformer.errors import UserError

Batch = dict[str, torch.Tensor]

FAMILY_MODULES = {
    "charton": "linalgformer.experiments.charton",
    "spectral": "linalgformer.experiments.spectral",
    "newton": "linalgformer.experiments.newton",
}
# Keys a preset YAML may hold beside the run config (read by ``linalgformer.reproduce``).
PRESET_ONLY = ("title", "reproduce")


class Experiment(ABC):
    """A trainable, evaluable experiment. Subclasses set ``primary_metric`` (higher is better)."""

    primary_metric: str = "accuracy"

    def __init__(self, config: RunConfig):
        self.config = config

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (the trainer seeds torch before calling this)."""

    @abstractmethod
    def sample_batch(self, rng: np.random.Generator, size: int) -> Batch:
        """``size`` new training examples as CPU tensors, drawn only from ``rng``."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Scalar training loss of ``model`` on ``batch`` (already on the model's device)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, count: int, seed: int, device: torch.device,
                 **options: Any) -> dict[str, Any]:
        """Metrics on a fixed test set of ``count`` examples drawn from ``seed``.

        Returns a flat dict of floats (including ``primary_metric``) and, optionally, nested tables
        under keys starting with ``by_`` (e.g. ``by_law``)."""

    def set_step(self, step: int) -> None:
        """Told the global step before each training batch is drawn (for curricula); default: ignored."""

    def answer(self, model: nn.Module, matrix: np.ndarray, beam: int = 1) -> dict[str, Any]:
        """The model's answer to one user matrix (``linalgformer predict``), beside the reference."""
        raise UserError(f"`predict` is not available for the {self.config.family} family; use `evaluate`.")

    def batch_tokens(self, batch: Batch) -> int:
        """Number of non-padding input+output positions in a batch (for tokens/s)."""
        return sum(int(v.numel()) for k, v in batch.items() if k.endswith("ids"))


def family_module(family: str):
    if family not in FAMILY_MODULES:
        raise UserError(f"unknown experiment family {family!r} (known: {', '.join(FAMILY_MODULES)}).")
    return importlib.import_module(FAMILY_MODULES[family])


def run_config_from_dict(data: dict) -> RunConfig:
    """Resolve a nested dict (YAML preset, overrides applied) into a typed RunConfig."""
    if not isinstance(data, dict):
        raise UserError("a run config must be a mapping with family, problem, model and train.")
    data = {k: v for k, v in data.items() if k not in PRESET_ONLY}
    unknown = sorted(set(data) - {"family", "problem", "model", "train"})
    if unknown:
        raise UserError(f"unknown config section {unknown[0]!r} (known: family, problem, model, train).")
    family = data.get("family", "charton")
    module = family_module(family)
    return RunConfig(
        family=family,
        problem=from_dict(module.ProblemConfig, data.get("problem") or {}, "problem"),
        model=from_dict(module.ModelConfig, data.get("model") or {}, "model"),
        train=from_dict(TrainConfig, data.get("train") or {}, "train"),
    )


def build_experiment(config: RunConfig) -> Experiment:
    return family_module(config.family).Experiment(config)
