"""What the ten matrix problems share: sampling in vectorised groups, encoding, scoring with the
problem's own checks, numpy's reference answers and the checks on a user's matrix."""

from __future__ import annotations

from typing import Callable

import numpy as np

from linalgformer import matrices, matrix_families
from linalgformer.errors import UserError
from linalgformer.linalg import relative_errors
from linalgformer.problems.charton.config import Codecs, Sampling
from linalgformer.problems.charton.contract import Examples, Problem, Scores
from linalgformer.sequences import Sequences, merge_sequences
from linalgformer.tokens import NumberEncoding, Vocabulary, decode_matrix, encode_matrices

MAX_ROUNDS = 100  # sampling gives up when this many redraws still leave examples missing


def subset(examples: Examples, indices: np.ndarray) -> Examples:
    """The examples at ``indices``, in that order."""
    pick = [int(i) for i in indices]
    return Examples(inputs=[examples.inputs[i] for i in pick],
                    targets=[examples.targets[i] for i in pick],
                    laws=[examples.laws[i] for i in pick],
                    dims=[examples.dims[i] for i in pick],
                    tasks=[examples.tasks[i] for i in pick] if examples.tasks else [])


def shape_groups(mats: list[np.ndarray]) -> list[tuple[tuple, np.ndarray]]:
    """Positions of ``mats`` grouped by shape: [((rows, cols), indices)]."""
    shapes = np.array([m.shape for m in mats], dtype=np.int64).reshape(len(mats), 2)
    return matrices.group_by(shapes[:, 0], shapes[:, 1])


View = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]  # a changed question, and its answer's way back


class MatrixProblem(Problem):
    """A problem whose examples are one input matrix and one output matrix (all but cotraining).

    Subclasses set ``name``, ``symmetric`` / ``square`` and define the shapes, ``solve`` and
    ``checks``; sampling, encoding and scoring are shared."""

    name = "matrix"
    summary = ""
    symmetric = False  # the input is a symmetric matrix drawn from an eigenvalue law
    square = False  # the operand is square whatever ``rectangular`` says
    # matrix-aware positions (models.matrix_positions): the operands in the written input's
    # columns, and the input entry whose row and column each answer entry shares
    input_split = "whole"  # whole | halves ([A|B]) | last_column ([M|v])
    output_coupling = "same"  # same: (i, j) <- (i, j) | swap: (i, j) <- (j, i) | column: i <- column i
    # continuous answers (models.number_values): the answer scales as s**output_degree when the
    # input is multiplied by s (A + B: 1, M^T v: 2, A^-1: -1); see ``output_degrees``
    output_degree = 1
    unusable_families: tuple[str, ...] = ()  # matrix families whose matrices have no answer here
    sign_free_columns = False  # the verifier accepts each answer column up to its sign (eigenvectors)
    bilinear = False  # the answer is linear in each operand apart (M^T v, A^T B): model.operand_units

    def __init__(self, sampling: Sampling, codecs: Codecs):
        self.sampling = sampling
        self.codecs = codecs

    @property
    def vocab(self) -> Vocabulary:
        return self.codecs.vocab

    # --- what each problem defines ------------------------------------------------------------
    def input_shape(self, rows: int, cols: int) -> tuple[int, int]:
        return rows, cols

    def output_shape(self, rows: int, cols: int) -> tuple[int, int]:
        raise NotImplementedError

    def output_degrees(self, rows: int, cols: int) -> np.ndarray:
        """(r', c') float: for each answer entry, d such that it scales as s**d when the input is
        multiplied by s. A continuous answer is predicted in units of max|input|**d."""
        return np.full(self.output_shape(rows, cols), float(self.output_degree))

    def operand_dims(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(rows, cols) of the operand that an input matrix of ``shape`` holds."""
        return shape

    def solve(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(targets (B, r', c'), ok (B,)) for a batch of input matrices of one shape."""
        raise NotImplementedError

    def checks(self, operands: np.ndarray, targets: np.ndarray,
               predictions: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(error m, reference s)] batches; by default m = prediction - target, s = target."""
        return [(predictions - targets, targets)]

    def clean_operand(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The matrix the mathematical checks use; with input noise, rebuilt from the target."""
        return inputs

    def sign_groups(self, shape: tuple[int, int]) -> np.ndarray | None:
        """(r', c') int: for an answer of ``shape``, the group of each entry whose entries may all
        flip sign together and leave the answer right (-1: in no group); None when none may.
        With ``sign_free_columns`` the answer is [values; vectors]: each vector column is a group
        (its eigenvector, or its pair of singular vectors u_j, v_j), the values' row is in none."""
        if not self.sign_free_columns:
            return None
        groups = np.broadcast_to(np.arange(shape[1]), shape).copy()
        groups[0] = -1
        return groups

    def aligned(self, answer: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """``answer`` with each sign group (:meth:`sign_groups`) flipped where it points away from
        the same group of ``reference`` (a negative inner product): answers to two views of one
        question agree in sign before they are averaged. Unchanged where no sign may flip."""
        groups = self.sign_groups(answer.shape)
        if groups is None:
            return answer
        out = answer.copy()
        for group in range(int(groups.max()) + 1):
            members = groups == group
            if float(np.sum(answer[members] * reference[members])) < 0:
                out[members] = -answer[members]
        return out

    # --- sampling -----------------------------------------------------------------------------
    def answer_view(self, rng: np.random.Generator, x: np.ndarray) -> View | None:
        """The question ``x`` under a random change that moves its entries exactly (signed
        permutations of rows and columns), and the map that takes the answer to the changed question
        back to the answer to ``x`` (answer views, ``evaluate --views``); None where there is none."""
        return None

    def under_views(self, rng: np.random.Generator, examples: Examples, fraction: float) -> Examples:
        """``examples`` with a random ``fraction`` of them replaced by one :meth:`answer_view` of their
        question each, answers solved anew (``problem.train_views``: the training matrices closed
        under the views the model answers with). The others, and the order, are kept."""
        chosen = np.flatnonzero(rng.random(len(examples)) < fraction)
        inputs, targets = list(examples.inputs), list(examples.targets)
        for i in chosen:
            view = self.answer_view(rng, inputs[i])
            if view is None:
                raise UserError(f"problem.train_views: {self.name} has no answer views.")
            inputs[i] = view[0]
        for _, indices in shape_groups([inputs[i] for i in chosen]):
            picked = chosen[indices]
            solved, _ = self.solve(np.stack([inputs[i] for i in picked]))
            for i, answer in zip(picked, solved):
                targets[i] = answer
        return Examples(inputs=inputs, targets=targets, laws=list(examples.laws), dims=list(examples.dims),
                        tasks=list(examples.tasks))

    def draw(self, rng: np.random.Generator, law: str, count: int, rows: int, cols: int) -> np.ndarray:
        """(count, r, c) clean input matrices (operands side by side), before rounding: ``law`` is an
        eigenvalue law or matrix family (symmetric problems) or a matrix family (``matrix_families``)."""
        s = self.sampling
        if self.symmetric:
            return matrix_families.draw_symmetric(rng, law, count, rows, s.bound, s.coefficients)
        if law in matrices.COEFFICIENT_LAWS:  # iid entries: the whole input in one draw (the paper's)
            return matrices.random_matrices(rng, count, *self.input_shape(rows, cols), law, s.bound)
        return np.concatenate([matrix_families.draw_general(rng, law, count, r, c, s.bound)
                               for r, c in self.operand_shapes(rows, cols)], axis=2)

    def operand_shapes(self, rows: int, cols: int) -> list[tuple[int, int]]:
        """The shapes of the operands written side by side in the input, left to right."""
        if self.input_split == "halves":
            return [(rows, cols), (rows, cols)]
        if self.input_split == "last_column":
            return [(rows, cols), (rows, 1)]
        return [self.input_shape(rows, cols)]

    def operand_columns(self, shape: tuple[int, int]) -> list[slice]:
        """The columns each operand fills in an input matrix of ``shape``, left to right."""
        widths = [c for _, c in self.operand_shapes(*self.operand_dims(shape))]
        ends = np.cumsum(widths)
        return [slice(int(end - width), int(end)) for end, width in zip(ends, widths)]

    def sample(self, rng: np.random.Generator, count: int) -> Examples:
        out = Examples(inputs=[], targets=[], laws=[], dims=[], tasks=[])
        for _ in range(MAX_ROUNDS):
            missing = count - len(out)
            if missing <= 0:
                return out
            self._sample_round(rng, missing, out)
        raise UserError(f"{self.name}: fewer than {count} of {MAX_ROUNDS} rounds of random matrices "
                        f"have answers that the {self.codecs.output.name} encoding can write.")

    def _sample_round(self, rng: np.random.Generator, count: int, out: Examples) -> None:
        """Draw ``count`` examples, keep those that fit, append them to ``out`` in draw order."""
        rows, cols, laws = self._draw_keys(rng, count)
        inputs: list = [None] * count
        targets: list = [None] * count
        for (r, c, law), indices in matrices.group_by(rows, cols, laws):
            x, y, ok = self._draw_group(rng, law, len(indices), r, c)
            for slot, xi, yi in zip(indices[ok], x[ok], y[ok]):
                inputs[slot], targets[slot] = xi, yi
        kept = [i for i in range(count) if inputs[i] is not None]
        out.inputs.extend(inputs[i] for i in kept)
        out.targets.extend(targets[i] for i in kept)
        out.laws.extend(str(laws[i]) for i in kept)
        out.dims.extend(int(rows[i]) for i in kept)
        out.tasks.extend([self.name] * len(kept))

    def _draw_keys(self, rng: np.random.Generator, count: int):
        s = self.sampling
        rows = matrices.draw_dims(rng, count, s.min_dim, s.max_dim, s.size_power)
        cols = (matrices.draw_dims(rng, count, s.min_dim, s.max_dim, s.size_power)
                if s.rectangular and not self.square else rows)
        return rows, cols, s.laws.draw(rng, count)

    def _draw_group(self, rng, law, count, rows, cols):
        """(inputs, targets, ok) for one group of same shape and law."""
        clean, ok = self.round_input(self.draw(rng, law, count, rows, cols))
        targets, solved = self.solve(clean)
        # an answer of zeros has no relative error to speak of (a sparse M^T v can be one): redrawn
        ok &= solved & self.fits(self.codecs.output, targets) & self.nonzero(targets)
        if self.sampling.noise <= 0.0:
            return clean, targets, ok
        noisy = matrices.add_noise(rng, clean, self.sampling.noise, self.sampling.bound,
                                   symmetric=self.symmetric)
        noisy, fit = self.round_input(noisy)
        return noisy, targets, ok & fit

    def round_input(self, mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the values the input tokens stand for, fits (B,)); matrices that do not fit become 0."""
        fit = self.fits(self.codecs.input, mats)
        rounded = self.codecs.input.round(np.where(fit[:, None, None], mats, 0.0))
        return rounded, fit

    @staticmethod
    def nonzero(mats: np.ndarray) -> np.ndarray:
        """(B,) whether each matrix has an entry other than 0."""
        return (mats.reshape(mats.shape[0], -1) != 0).any(axis=1)

    @staticmethod
    def fits(encoding: NumberEncoding, mats: np.ndarray) -> np.ndarray:
        """(B,) whether every entry of each matrix is finite and writable in ``encoding``."""
        return encoding.fits(mats.reshape(mats.shape[0], -1)).all(axis=1)

    # --- encoding -----------------------------------------------------------------------------
    def encode(self, examples: Examples) -> tuple[Sequences, Sequences]:
        return (self._encode_side(examples.inputs, self.codecs.input),
                self._encode_side(examples.targets, self.codecs.output))

    def _encode_side(self, mats: list[np.ndarray], encoding: NumberEncoding) -> Sequences:
        parts = [(indices, encode_matrices(encoding, self.vocab, np.stack([mats[i] for i in indices])))
                 for _, indices in shape_groups(mats)]
        return merge_sequences(parts, len(mats), self.vocab.pad_id)

    def max_output_length(self, dim: int) -> int:
        rows, cols = self.output_shape(dim, dim)
        return 2 + rows * cols * self.codecs.output.width

    def max_input_length(self, dim: int) -> int:
        rows, cols = self.input_shape(dim, dim)
        return 2 + rows * cols * self.codecs.input.width

    # --- verification -------------------------------------------------------------------------
    def score(self, examples: Examples, predictions: list[list[int]]) -> Scores:
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        decoded = [self._decode(ids, target) for ids, target in zip(predictions, examples.targets)]
        return self.score_matrices(examples, decoded, self._exact(examples, predictions))

    def score_matrices(self, examples: Examples, decoded: list[np.ndarray | None],
                       exact: np.ndarray | None = None) -> Scores:
        """Scores of answers given as matrices (None, or not finite, or of another shape: invalid),
        by the same checks as decoded tokens; ``exact`` defaults to equality with the target."""
        count = len(examples)
        if len(decoded) != count:
            raise ValueError(f"{len(decoded)} predictions for {count} examples")
        decoded = [d if d is not None and d.shape == t.shape and np.isfinite(d).all() else None
                   for d, t in zip(decoded, examples.targets)]
        if exact is None:
            exact = np.array([d is not None and np.array_equal(d, t) for d, t in zip(decoded, examples.targets)],
                             dtype=bool)
        valid = np.array([d is not None for d in decoded], dtype=bool)
        d1, d2, dmax = (np.full(count, np.inf) for _ in range(3))
        good = np.flatnonzero(valid)
        for indices in self._shape_groups(examples, good):
            d1[indices], d2[indices], dmax[indices] = self._distances(examples, decoded, indices)
        return Scores(valid=valid, exact=exact, d1=d1, d2=d2, dmax=dmax,
                      laws=list(examples.laws), dims=list(examples.dims))

    @staticmethod
    def _shape_groups(examples: Examples, positions: np.ndarray) -> list[np.ndarray]:
        """``positions`` split into groups whose inputs and targets have one shape each."""
        shapes = np.array([examples.inputs[i].shape + examples.targets[i].shape for i in positions],
                          dtype=np.int64).reshape(len(positions), 4)
        return [positions[where] for _, where in matrices.group_by(*shapes.T)]

    def decode_output(self, ids) -> np.ndarray | None:
        """The matrix an output id sequence (no specials) stands for, or None; never raises."""
        matrix = decode_matrix(self.codecs.output, self.vocab, [int(i) for i in ids])
        return matrix if matrix is not None and np.isfinite(matrix).all() else None

    def _decode(self, ids, target: np.ndarray) -> np.ndarray | None:
        matrix = self.decode_output(ids)
        return matrix if matrix is not None and matrix.shape == target.shape else None

    def _distances(self, examples: Examples, decoded: list, indices: np.ndarray):
        """(d1, d2, dmax) for examples of one output shape: the worst over the problem's checks."""
        inputs = np.stack([examples.inputs[i] for i in indices])
        targets = np.stack([examples.targets[i] for i in indices])
        predictions = np.stack([decoded[i] for i in indices])
        operands = self.clean_operand(inputs, targets) if self.sampling.noise > 0 else inputs
        with np.errstate(all="ignore"):
            results = [relative_errors(m, s) for m, s in self.checks(operands, targets, predictions)]
        return tuple(np.max(np.stack([r[k] for r in results]), axis=0) for k in range(3))

    def _exact(self, examples: Examples, predictions: list[list[int]]) -> np.ndarray:
        targets = self._encode_side(examples.targets, self.codecs.output) if len(examples) else None
        exact = np.zeros(len(examples), dtype=bool)
        for i, ids in enumerate(predictions):
            length = int(targets.lengths[i])
            # compared as Python ints: an untrusted id beyond int64 is simply not equal
            exact[i] = len(ids) == length and [int(x) for x in ids] == targets.ids[i, :length].tolist()
        return exact

    # --- numpy answers and user matrices ------------------------------------------------------
    def reference(self, examples: Examples) -> list[np.ndarray]:
        """numpy's answers for the input matrices as written (a classical baseline)."""
        answers: list = [None] * len(examples)
        for _, indices in shape_groups(examples.inputs):
            inputs = np.stack([examples.inputs[i] for i in indices])
            with np.errstate(all="ignore"):
                solved, _ = self.solve(inputs)
            for slot, answer in zip(indices, solved):
                answers[slot] = answer
        return answers

    def examples_from_matrix(self, matrix: np.ndarray) -> Examples:
        matrix = self._checked_user_matrix(matrix)
        rounded, fit = self.round_input(matrix[None])
        if not fit[0]:
            raise UserError(f"some entries of the matrix cannot be written in the "
                            f"{self.codecs.input.name} encoding.")
        target, ok = self.solve(rounded)
        if not (ok[0] and self.fits(self.codecs.output, target)[0]):
            raise UserError(f"{self.name}: the answer for this matrix is not defined or cannot be "
                            f"written in the {self.codecs.output.name} encoding (is it singular?).")
        rows, _ = self.operand_dims(matrix.shape)
        return Examples(inputs=[rounded[0]], targets=[target[0]], laws=["user"], dims=[rows],
                        tasks=[self.name])

    def _checked_user_matrix(self, matrix) -> np.ndarray:
        try:
            matrix = np.asarray(matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{self.name} needs a matrix of numbers.") from None
        if matrix.ndim != 2 or matrix.size == 0:
            raise UserError(f"{self.name} needs a 2-D matrix, got an array of shape {matrix.shape}.")
        if not np.isfinite(matrix).all():
            raise UserError("the matrix has infinite or NaN entries.")
        self.check_input_shape(matrix.shape)
        if self.symmetric:
            return self._symmetric_user_matrix(matrix)
        return matrix

    def check_input_shape(self, shape: tuple[int, int]) -> None:
        rows, cols = shape
        if self.square and rows != cols:
            raise UserError(f"{self.name} needs a square matrix, got {rows} x {cols}.")
        limit = self.vocab.max_dim
        out_rows, out_cols = self.output_shape(*self.operand_dims(shape))
        if max(rows, cols, out_rows, out_cols) > limit:
            raise UserError(f"{self.name}: a {rows} x {cols} input needs dimension tokens beyond "
                            f"V{limit} (the vocabulary's largest).")

    def _symmetric_user_matrix(self, matrix: np.ndarray) -> np.ndarray:
        scale = max(float(np.abs(matrix).max()), 1e-300)
        if np.abs(matrix - matrix.T).max() > 1e-9 * scale:
            raise UserError(f"{self.name} needs a symmetric matrix (this one differs from its transpose).")
        return 0.5 * (matrix + matrix.T)

    def describe(self) -> str:
        return f"{self.name}: {self.summary}; {self.setting()}"

    def setting(self) -> str:
        """Sizes, law, noise and encodings in words."""
        s = self.sampling
        size = str(s.min_dim) if s.min_dim == s.max_dim else f"{s.min_dim}..{s.max_dim}"
        size = f"{size} x {size}" if s.rectangular and not self.square else f"{size}"
        law = (s.laws.describe() if self.symmetric or s.laws.laws != (s.coefficients,)
               else f"{s.coefficients} coefficients on +-{s.bound:g}")
        noise = f", input noise {s.noise:g}" if s.noise > 0 else ""
        return f"size {size}, {law}{noise}; {self.codecs.input.name} -> {self.codecs.output.name}"
