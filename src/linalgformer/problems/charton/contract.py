"""The contract of a tokenized (Charton) problem, as the experiment, evaluator and CLI use it.

A problem turns random matrices into (input tokens, output tokens) pairs and judges a decoded
prediction with its own mathematics. Everything here is numpy, seeded by an explicit Generator.

Token sequences travel as :class:`~linalgformer.sequences.Sequences`: a padded int array of
vocabulary ids plus lengths,
*without* <bos>/<eos> (the seq2seq experiment adds those).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from linalgformer.sequences import Sequences

TOLERANCES = (0.05, 0.02, 0.01, 0.005)


@dataclass
class Examples:
    """A batch of numeric examples, in a fixed order.

    ``inputs[i]`` is example i's input matrix as written to tokens (operands side by side, e.g.
    [A|B] for a sum), ``targets[i]`` its exact output matrix (what the tokens encode), ``laws[i]``
    the eigenvalue law or coefficient law it was drawn from, ``dims[i]`` its dimension, and
    ``tasks[i]`` the task name (differs per example only for cotraining).
    """

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    laws: list[str]
    dims: list[int]
    tasks: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)


def join_examples(parts: list[Examples]) -> Examples:
    """The examples of ``parts``, one after the other."""
    return Examples(*([x for part in parts for x in getattr(part, name)]
                      for name in ("inputs", "targets", "laws", "dims", "tasks")))


@dataclass
class Scores:
    """Per-example verification of predictions, aligned with an :class:`Examples` batch.

    ``valid``: the prediction decoded to a matrix of the right shape; ``exact``: token-for-token
    equal to the target; ``d1``/``d2``/``dmax``: relative errors (inf where invalid);
    ``correct[tau]``: exact or d1 < tau, for every tolerance in TOLERANCES.
    """

    valid: np.ndarray
    exact: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    dmax: np.ndarray
    laws: list[str]
    dims: list[int]

    @property
    def correct(self) -> dict[float, np.ndarray]:
        return {tau: self.exact | (self.valid & (self.d1 < tau)) for tau in TOLERANCES}


class Problem(ABC):
    """A tokenized linear-algebra problem (transpose, eigenvalues, ...)."""

    name: str

    @property
    @abstractmethod
    def vocab(self):
        """The :class:`linalgformer.tokens.Vocabulary` of input and output tokens."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, count: int) -> Examples:
        """``count`` examples whose output fits the output encoding, vectorised over the batch."""

    @abstractmethod
    def encode(self, examples: Examples) -> tuple[Sequences, Sequences]:
        """(input sequences, target sequences) of vocabulary ids."""

    @abstractmethod
    def score(self, examples: Examples, predictions: list[list[int]]) -> Scores:
        """Verify decoded predictions (lists of vocabulary ids, no specials) against the examples."""

    @abstractmethod
    def examples_from_matrix(self, matrix: np.ndarray) -> Examples:
        """One example built from a user's input matrix (for ``predict``); raises UserError if unfit."""

    def max_output_length(self, dim: int) -> int:
        """Longest target for dimension ``dim`` in tokens (decoding's length limit)."""
        raise NotImplementedError
