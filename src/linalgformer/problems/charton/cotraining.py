"""Several problems in one model: the input starts with the task's token."""

from __future__ import annotations

import numpy as np

from linalgformer import matrices
from linalgformer.errors import UserError
from linalgformer.problems.charton.config import Codecs
from linalgformer.problems.charton.contract import Examples, Problem, Scores
from linalgformer.problems.charton.matrix_problem import MatrixProblem, subset
from linalgformer.sequences import Sequences, merge_sequences, prefix_token
from linalgformer.tokens import Vocabulary


class CoTraining(Problem):
    """Several problems in one model: the input starts with the task's token, drawn uniformly."""

    name = "cotraining"

    def __init__(self, problems: dict[str, MatrixProblem], codecs: Codecs):
        self.problems = problems
        self.codecs = codecs

    @property
    def vocab(self) -> Vocabulary:
        return self.codecs.vocab

    def sample(self, rng: np.random.Generator, count: int) -> Examples:
        names = np.asarray(list(self.problems), dtype=object)
        picks = names[rng.integers(0, len(names), size=count)]
        parts = [(indices, self.problems[task].sample(rng, len(indices)))
                 for (task,), indices in matrices.group_by(picks)]
        return _scatter_examples(parts, count)

    def _by_task(self, examples: Examples):
        return [(self.problems[task], indices)
                for (task,), indices in matrices.group_by(np.asarray(examples.tasks, dtype=object))]

    def encode(self, examples: Examples) -> tuple[Sequences, Sequences]:
        inputs, outputs = [], []
        for problem, indices in self._by_task(examples):
            source, target = problem.encode(subset(examples, indices))
            inputs.append((indices, prefix_token(source, self.vocab.task_id(problem.name))))
            outputs.append((indices, target))
        pad = self.vocab.pad_id
        return merge_sequences(inputs, len(examples), pad), merge_sequences(outputs, len(examples), pad)

    def score(self, examples: Examples, predictions: list[list[int]]) -> Scores:
        count = len(examples)
        valid, exact = np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
        d1, d2, dmax = (np.full(count, np.inf) for _ in range(3))
        for problem, indices in self._by_task(examples):
            part = problem.score(subset(examples, indices), [predictions[i] for i in indices])
            valid[indices], exact[indices] = part.valid, part.exact
            d1[indices], d2[indices], dmax[indices] = part.d1, part.d2, part.dmax
        return Scores(valid=valid, exact=exact, d1=d1, d2=d2, dmax=dmax,
                      laws=list(examples.laws), dims=list(examples.dims))

    def reference(self, examples: Examples) -> list[np.ndarray]:
        answers: list = [None] * len(examples)
        for problem, indices in self._by_task(examples):
            for slot, answer in zip(indices, problem.reference(subset(examples, indices))):
                answers[slot] = answer
        return answers

    def decode_output(self, ids) -> np.ndarray | None:
        """Outputs carry no task token: every task writes with the same output encoding."""
        return next(iter(self.problems.values())).decode_output(ids)

    def examples_from_matrix(self, matrix: np.ndarray, task: str = "") -> Examples:
        if task not in self.problems:
            raise UserError(f"cotraining needs a task for this matrix, one of: {', '.join(self.problems)}.")
        return self.problems[task].examples_from_matrix(matrix)

    def max_output_length(self, dim: int) -> int:
        return max(p.max_output_length(dim) for p in self.problems.values())

    def max_input_length(self, dim: int) -> int:
        return 1 + max(p.max_input_length(dim) for p in self.problems.values())

    def describe(self) -> str:
        problems = list(self.problems.values())
        laws = {p.sampling.laws.describe() for p in problems if p.symmetric}
        law = f"; eigenvalue law {', '.join(sorted(laws))}" if laws else ""
        return (f"cotraining of {', '.join(self.problems)} (task token first){law}; "
                f"{problems[0].setting()}")


def _scatter_examples(parts: list[tuple[np.ndarray, Examples]], count: int) -> Examples:
    """Put per-group Examples back at their batch positions."""
    slots: list = [None] * count
    for indices, part in parts:
        for j, slot in enumerate(indices):
            slots[slot] = (part.inputs[j], part.targets[j], part.laws[j], part.dims[j], part.tasks[j])
    columns = list(zip(*slots)) if slots else [(), (), (), (), ()]
    return Examples(*(list(c) for c in columns))
