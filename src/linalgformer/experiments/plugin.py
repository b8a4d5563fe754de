"""The plug-in interface of an experiment family: problem + model + loss + metrics.

The trainer (``linalgformer.training``), the evaluator and the CLI only ever talk to an
:class:`Experiment`. A family (charton, spectral, newton) is a module of this package, registered
by name in :mod:`linalgformer.experiments.registry`, that defines

* ``ProblemConfig`` and ``ModelConfig`` dataclasses (the ``problem`` and ``model`` config sections),
* an ``Experiment`` subclass built from a :class:`~linalgformer.config.RunConfig`,
* and, for the family whose examples are written as data (``registry.EXAMPLES_FAMILY``:
  ``linalgformer generate``), ``draw_examples``, ``example_lines`` and ``write_examples``.

The Python API (:mod:`linalgformer.api`) names no family: what only some families can do (a
question's shape, a test coefficient range, robustness suites, ``analyze``) it asks the experiment,
whose defaults below refuse in one sentence.

Batches are dicts of CPU tensors so that they can be produced in worker processes and moved to the
device by the trainer. Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from linalgformer.config import RunConfig
from linalgformer.errors import UserError

Batch = dict[str, torch.Tensor]



class Experiment(ABC):
    """A trainable, evaluable experiment. Subclasses set ``primary_metric`` (higher is better)."""

    primary_metric: str = "accuracy"

    reads_data_files = False  # whether train.data_file (examples written by `generate`) applies

    def __init__(self, config: RunConfig):
        self.config = config
        if config.train.data_file and not self.reads_data_files:
            raise UserError(f"train.data_file applies to the charton family only, not to {config.family} "
                            "(its examples are drawn afresh).")

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

    def predict_matrices(self, model: nn.Module, matrices: list[np.ndarray], beam: int = 1) -> list[np.ndarray | None]:
        """The model's answers to user matrices (None where the output is not an answer); by
        default one :meth:`answer` each, a family may batch them."""
        return [None if (pred := self.answer(model, m, beam=beam)["prediction"]) is None else np.asarray(pred)
                for m in matrices]

    def batch_tokens(self, batch: Batch) -> int:
        """Number of non-padding input+output positions in a batch (for tokens/s)."""
        return sum(int(v.numel()) for k, v in batch.items() if k.endswith("ids"))

    # -- what the API (linalgformer.api) asks of a trained model's family; defaults: it has none --

    def check_question(self, shape: tuple[int, ...]) -> None:
        """Refuse a user matrix of a shape the model does not take (``Model.predict``, before it is
        answered); default: any shape is asked."""

    def check_test_bound(self) -> None:
        """Refuse a test coefficient range (``evaluate --bound``) where test sets have none."""
        raise UserError(f"a test coefficient range (bound) is for the charton family, not {self.config.family}.")

    def suite_problem(self) -> tuple[Any, list[int]]:
        """(the problem a robustness suite tests, the sizes the model was trained on): ``evaluate
        --suite``; the problem gives ``name``, ``symmetric`` and ``unusable_families``."""
        raise UserError(f"suites test matrix problems (charton), not the {self.config.family} family.")

    def check_analyzable(self) -> None:
        """Refuse ``analyze`` where the family's answers cannot be studied; a family that allows it
        provides ``analysis_set``, ``answers`` and ``token_accuracy``."""
        raise UserError(f"analyze studies tokenized (charton) models, not the {self.config.family} family.")
