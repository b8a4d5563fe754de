"""Charton's tokenized linear-algebra problems ("Linear algebra with transformers", TMLR 2022).

Each problem draws random matrices (:mod:`linalgformer.matrices`), rounds them to what the input
encoding can write, computes the exact answer of *that* matrix, and writes both as tokens with
:func:`linalgformer.numbers.encode_matrices`. Operands are written side by side as one matrix.

==================  ==========================  ==================================================
problem             input (as written)          output
==================  ==========================  ==================================================
transpose           A (r x c)                   A^T (c x r)
matrix_sum          [A | B], A, B r x c         A + B (r x c)
matrix_vector       [M | v], M r x c, v r x 1   M^T v (c x 1)
matrix_product      [A | B], A, B r x c         A^T B (c x c)
eigenvalues         symmetric M (n x n)         eigenvalues, descending (n x 1)
eigenvectors        symmetric M (n x n)         [lambda; Q] ((n+1) x n): row 0 the eigenvalues
                                                (descending), then Q with eigenvectors as columns
invert_matrix       A (n x n)                   A^-1
syminverse          symmetric A (n x n)         A^-1
singularvalues      A (r x c)                   sigma, descending (k x 1), k = min(r, c)
singularvectors     A (r x c)                   [sigma; U; V] ((1+r+c) x k), A = U diag(sigma) V^T
cotraining          <task> then the task's      the task's output
                    input
==================  ==========================  ==================================================

A worked example, eigenvalues of a 2x2 matrix in P1000: the input ``V2 V2 + 100 E-2 + 200 E-2 + 200
E-2 + 300 E-2`` is [[1, 2], [2, 3]]; the target ``V2 V1 + 424 E-2 - 236 E-3`` is its eigenvalues
2 +- sqrt(5) = (4.236, -0.236) rounded to three digits (no <bos>/<eos>: the experiment adds them).

Eigenvectors and singular vectors are written with a fixed sign (each column of Q, or of U, has its
largest entry positive; V follows U) so the data do not depend on the LAPACK build. The verifier
accepts any sign and any order.

Verification (``score``): d1 = sum|m| / sum|s|, d2 = ||m||_F / ||s||_F, dmax = max|m| / max|s| with m
the error and s the reference; for unique answers m = prediction - target and s = target. Where the
answer is not unique the problem's mathematics is checked instead, and every check must pass (the
reported distance is the largest): eigenvectors m = Q^T M Q - diag(lambda) with s = diag(lambda),
plus Q^T Q - I against I; inversion m = A P - I against I; singular vectors m = U^T A V - diag(sigma)
against diag(sigma), plus U^T U - I and V^T V - I against I. The orthonormality checks are ours
(the reference only checks Q^T M Q, which a scaled or zero Q passes).

With input ``noise`` the model sees a noisy matrix and must answer for the clean one (as in the
reference); the mathematical checks then use the clean matrix rebuilt from the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from linalgformer import matrices
from linalgformer.errors import UserError
from linalgformer.numbers import (
    ENCODINGS,
    NumberEncoding,
    Vocabulary,
    decode_matrix,
    encode_matrices,
    make_encoding,
)
from linalgformer.problems.base import Examples, Problem, Scores, Sequences
from linalgformer.problems.datafile import FORMATS, read_examples, write_examples  # noqa: F401

PROBLEMS = ("transpose", "matrix_sum", "matrix_vector", "matrix_product", "eigenvalues",
            "eigenvectors", "invert_matrix", "syminverse", "singularvalues", "singularvectors",
            "cotraining")
LAWS = matrices.LAWS
SYMMETRIC_PROBLEMS = ("eigenvalues", "eigenvectors", "syminverse")
SQUARE_PROBLEMS = SYMMETRIC_PROBLEMS + ("invert_matrix",)
# The reference's default co-training set (its task letters T A D M E F I).
DEFAULT_COTRAINING = ("transpose", "matrix_sum", "matrix_vector", "matrix_product", "eigenvalues",
                      "eigenvectors", "invert_matrix")
INVERSE_RESIDUAL = 1e-10  # max |A A^-1 - I| of the float64 inverse; worse matrices are redrawn
MAX_ROUNDS = 100  # sampling gives up when this many redraws still leave examples missing


@dataclass
class ProblemConfig:
    """The ``problem:`` section of a Charton run config."""

    name: str = "transpose"
    dim: int = 5
    min_dim: int = 0  # 0: dim
    max_dim: int = 0  # 0: dim
    encoding: str = "P1000"  # both sides unless overridden below
    input_encoding: str = ""  # "": encoding
    output_encoding: str = ""  # "": encoding
    precision: int = 3
    max_exponent: int = 0  # 0: the encoding's default
    distribution: str = ""  # eigenvalue law(s) of symmetric problems, e.g. "laplace,semicircle:2"
    coefficients: str = "uniform"  # uniform | gaussian
    bound: float = 10.0
    noise: float = 0.0  # input noise std, relative to the coefficients' std
    rectangular: bool = False  # columns drawn in [min_dim, max_dim] too
    tasks: str = ""  # cotraining: comma-separated problem names ("": the reference's seven)
    max_vocab_dim: int = 100  # dimension tokens V1..V{max_vocab_dim}


@dataclass(frozen=True)
class Sampling:
    """Resolved generation settings shared by every problem of one run."""

    min_dim: int
    max_dim: int
    rectangular: bool
    coefficients: str
    bound: float
    noise: float
    laws: matrices.Mixture  # eigenvalue laws (symmetric problems) or the coefficient law


@dataclass(frozen=True)
class Codecs:
    """The number encodings of each side and the shared vocabulary."""

    input: NumberEncoding
    output: NumberEncoding
    vocab: Vocabulary


# ---------------------------------------------------------------------------------------------
# batch helpers


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


def merge_sequences(parts: list[tuple[np.ndarray, Sequences]], count: int, pad_id: int) -> Sequences:
    """Scatter per-group Sequences back to batch positions, padding to the longest."""
    width = max((seq.ids.shape[1] for _, seq in parts), default=0)
    ids = np.full((count, width), pad_id, dtype=np.int64)
    lengths = np.zeros(count, dtype=np.int64)
    for indices, seq in parts:
        ids[indices, : seq.ids.shape[1]] = seq.ids
        lengths[indices] = seq.lengths
    return Sequences(ids=ids, lengths=lengths)


def prefix_token(seq: Sequences, token: int) -> Sequences:
    """Put one token in front of every sequence of the batch."""
    column = np.full((seq.ids.shape[0], 1), token, dtype=np.int64)
    return Sequences(ids=np.concatenate([column, seq.ids], axis=1), lengths=seq.lengths + 1)


def relative_errors(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d1, d2, dmax) of error batch ``m`` against reference batch ``s``, both (B, r, c)."""
    pairs = ((np.abs(m).sum(axis=(1, 2)), np.abs(s).sum(axis=(1, 2))),
             (np.sqrt((m * m).sum(axis=(1, 2))), np.sqrt((s * s).sum(axis=(1, 2)))),
             (np.abs(m).max(axis=(1, 2)), np.abs(s).max(axis=(1, 2))))
    return tuple(_ratio(top, bottom) for top, bottom in pairs)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, with 0/0 = 0, x/0 = inf and nan = inf."""
    out = np.full(top.shape, np.inf)
    np.divide(top, bottom, out=out, where=bottom > 0)
    out[(bottom == 0) & (top == 0)] = 0.0
    out[~np.isfinite(out)] = np.inf
    return out


def identity(count: int, dim: int) -> np.ndarray:
    return np.broadcast_to(np.eye(dim), (count, dim, dim))


def transpose(mats: np.ndarray) -> np.ndarray:
    return np.swapaxes(mats, -1, -2)


def diagonal(values: np.ndarray) -> np.ndarray:
    """(B, n) -> (B, n, n) diagonal matrices."""
    return values[:, :, None] * np.eye(values.shape[1])


def positive_columns(vectors: np.ndarray) -> np.ndarray:
    """(B, r, k) -> (B, 1, k) signs making each column's largest-magnitude entry positive."""
    rows = np.abs(vectors).argmax(axis=1)[:, None, :]
    signs = np.sign(np.take_along_axis(vectors, rows, axis=1))
    return np.where(signs == 0, 1.0, signs)


def safe_inverse(mats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverses, ok): batched inverse; singular or badly conditioned matrices are marked not ok."""
    count, dim = mats.shape[0], mats.shape[1]
    with np.errstate(all="ignore"):
        determinants = np.linalg.det(mats)
    invertible = np.isfinite(determinants) & (determinants != 0)
    safe = np.where(invertible[:, None, None], mats, np.eye(dim))
    inverses = np.linalg.inv(safe)
    with np.errstate(all="ignore"):
        residual = np.abs(safe @ inverses - identity(count, dim)).max(axis=(1, 2))
    return inverses, invertible & (residual <= INVERSE_RESIDUAL)


# ---------------------------------------------------------------------------------------------
# one problem on matrices


class MatrixProblem(Problem):
    """A problem whose examples are one input matrix and one output matrix (all but cotraining).

    Subclasses set ``name``, ``symmetric`` / ``square`` and define the shapes, ``solve`` and
    ``checks``; sampling, encoding and scoring are shared."""

    name = "matrix"
    summary = ""
    symmetric = False  # the input is a symmetric matrix drawn from an eigenvalue law
    square = False  # the operand is square whatever ``rectangular`` says

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

    # --- sampling -----------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator, law: str, count: int, rows: int, cols: int) -> np.ndarray:
        """(count, r, c) clean input matrices (operands side by side), before rounding."""
        if self.symmetric:
            return matrices.symmetric_matrices(rng, law, count, rows, self.sampling.coefficients,
                                               self.sampling.bound)
        shape = self.input_shape(rows, cols)
        return matrices.random_matrices(rng, count, *shape, self.sampling.coefficients,
                                        self.sampling.bound)

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
        rows = matrices.draw_dims(rng, count, s.min_dim, s.max_dim)
        cols = (matrices.draw_dims(rng, count, s.min_dim, s.max_dim)
                if s.rectangular and not self.square else rows)
        return rows, cols, s.laws.draw(rng, count)

    def _draw_group(self, rng, law, count, rows, cols):
        """(inputs, targets, ok) for one group of same shape and law."""
        clean, ok = self.round_input(self.draw(rng, law, count, rows, cols))
        targets, solved = self.solve(clean)
        ok &= solved & self.fits(self.codecs.output, targets)
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
        count = len(examples)
        if len(predictions) != count:
            raise ValueError(f"{len(predictions)} predictions for {count} examples")
        decoded = [self._decode(ids, target) for ids, target in zip(predictions, examples.targets)]
        valid = np.array([d is not None for d in decoded], dtype=bool)
        d1, d2, dmax = (np.full(count, np.inf) for _ in range(3))
        good = np.flatnonzero(valid)
        for indices in self._shape_groups(examples, good):
            d1[indices], d2[indices], dmax[indices] = self._distances(examples, decoded, indices)
        return Scores(valid=valid, exact=self._exact(examples, predictions), d1=d1, d2=d2, dmax=dmax,
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
        law = s.laws.describe() if self.symmetric else f"{s.coefficients} coefficients on +-{s.bound:g}"
        noise = f", input noise {s.noise:g}" if s.noise > 0 else ""
        return f"size {size}, {law}{noise}; {self.codecs.input.name} -> {self.codecs.output.name}"


# ---------------------------------------------------------------------------------------------
# the problems


class Transpose(MatrixProblem):
    name, summary = "transpose", "A -> A^T"

    def output_shape(self, rows, cols):
        return cols, rows

    def solve(self, inputs):
        return transpose(inputs).copy(), np.ones(len(inputs), dtype=bool)


class MatrixSum(MatrixProblem):
    name, summary = "matrix_sum", "[A|B] -> A + B"

    def input_shape(self, rows, cols):
        return rows, 2 * cols

    def operand_dims(self, shape):
        return shape[0], shape[1] // 2

    def output_shape(self, rows, cols):
        return rows, cols

    def solve(self, inputs):
        half = inputs.shape[2] // 2
        return inputs[:, :, :half] + inputs[:, :, half:], np.ones(len(inputs), dtype=bool)

    def check_input_shape(self, shape):
        if shape[1] % 2:
            raise UserError(f"{self.name} needs [A|B] side by side: an even number of columns, got {shape[1]}.")
        super().check_input_shape(shape)


class MatrixVector(MatrixProblem):
    name, summary = "matrix_vector", "[M|v] -> M^T v"

    def input_shape(self, rows, cols):
        return rows, cols + 1

    def operand_dims(self, shape):
        return shape[0], shape[1] - 1

    def output_shape(self, rows, cols):
        return cols, 1

    def solve(self, inputs):
        return transpose(inputs[:, :, :-1]) @ inputs[:, :, -1:], np.ones(len(inputs), dtype=bool)

    def check_input_shape(self, shape):
        if shape[1] < 2:
            raise UserError(f"{self.name} needs [M|v] side by side: at least 2 columns, got {shape[1]}.")
        super().check_input_shape(shape)


class MatrixProduct(MatrixSum):
    name, summary = "matrix_product", "[A|B] -> A^T B"

    def output_shape(self, rows, cols):
        return cols, cols

    def solve(self, inputs):
        half = inputs.shape[2] // 2
        return transpose(inputs[:, :, :half]) @ inputs[:, :, half:], np.ones(len(inputs), dtype=bool)


class Eigenvalues(MatrixProblem):
    name, summary = "eigenvalues", "symmetric M -> eigenvalues, descending"
    symmetric = square = True

    def output_shape(self, rows, cols):
        return rows, 1

    def solve(self, inputs):
        values = np.linalg.eigvalsh(inputs)[:, ::-1]
        return values[:, :, None].copy(), np.ones(len(inputs), dtype=bool)


class Eigenvectors(MatrixProblem):
    name, summary = "eigenvectors", "symmetric M -> [lambda; Q]"
    symmetric = square = True

    def output_shape(self, rows, cols):
        return rows + 1, rows

    def solve(self, inputs):
        values, vectors = np.linalg.eigh(inputs)
        values, vectors = values[:, ::-1], vectors[:, :, ::-1]
        vectors = vectors * positive_columns(vectors)
        return np.concatenate([values[:, None, :], vectors], axis=1), np.ones(len(inputs), dtype=bool)

    def checks(self, operands, targets, predictions):
        values, vectors = predictions[:, 0, :], predictions[:, 1:, :]
        spectrum = diagonal(values)
        eye = identity(len(values), values.shape[1])
        return [(transpose(vectors) @ operands @ vectors - spectrum, spectrum),
                (transpose(vectors) @ vectors - eye, eye)]

    def clean_operand(self, inputs, targets):
        return matrices.from_spectrum(targets[:, 0, :], targets[:, 1:, :])


class InvertMatrix(MatrixProblem):
    name, summary = "invert_matrix", "A -> A^-1"
    square = True

    def output_shape(self, rows, cols):
        return rows, rows

    def solve(self, inputs):
        return safe_inverse(inputs)

    def checks(self, operands, targets, predictions):
        eye = identity(len(operands), operands.shape[1])
        return [(operands @ predictions - eye, eye)]

    def clean_operand(self, inputs, targets):
        return np.linalg.inv(targets)


class SymInverse(InvertMatrix):
    name, summary = "syminverse", "symmetric A -> A^-1"
    symmetric = True


class SingularValues(MatrixProblem):
    name, summary = "singularvalues", "A -> singular values, descending"

    def output_shape(self, rows, cols):
        return min(rows, cols), 1

    def solve(self, inputs):
        values = np.linalg.svd(inputs, compute_uv=False)
        return values[:, :, None].copy(), np.ones(len(inputs), dtype=bool)


class SingularVectors(MatrixProblem):
    name, summary = "singularvectors", "A -> [sigma; U; V]"

    def output_shape(self, rows, cols):
        return 1 + rows + cols, min(rows, cols)

    def solve(self, inputs):
        left, values, right_t = np.linalg.svd(inputs, full_matrices=False)
        signs = positive_columns(left)
        left, right = left * signs, transpose(right_t) * signs
        return np.concatenate([values[:, None, :], left, right], axis=1), np.ones(len(inputs), dtype=bool)

    def checks(self, operands, targets, predictions):
        rows = operands.shape[1]
        values, left, right = predictions[:, 0, :], predictions[:, 1:1 + rows], predictions[:, 1 + rows:]
        spectrum = diagonal(values)
        eye = identity(len(values), values.shape[1])
        return [(transpose(left) @ operands @ right - spectrum, spectrum),
                (transpose(left) @ left - eye, eye), (transpose(right) @ right - eye, eye)]

    def clean_operand(self, inputs, targets):
        rows = inputs.shape[1]
        values, left, right = targets[:, 0, :], targets[:, 1:1 + rows], targets[:, 1 + rows:]
        return (left * values[:, None, :]) @ transpose(right)


MATRIX_PROBLEMS: dict[str, type[MatrixProblem]] = {cls.name: cls for cls in (
    Transpose, MatrixSum, MatrixVector, MatrixProduct, Eigenvalues, Eigenvectors, InvertMatrix,
    SymInverse, SingularValues, SingularVectors)}


# ---------------------------------------------------------------------------------------------
# several problems in one model


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


# ---------------------------------------------------------------------------------------------
# configuration


def make_problem(cfg: ProblemConfig) -> Problem:
    """Build the problem a config describes; UserError with one sentence for any bad setting."""
    _check_names(cfg)
    min_dim, max_dim = _dims(cfg)
    tasks = _cotraining_tasks(cfg)
    codecs = _codecs(cfg, tasks)
    problems = {name: MATRIX_PROBLEMS[name](_sampling(cfg, name, min_dim, max_dim), codecs)
                for name in (tasks or (cfg.name,))}
    for problem in problems.values():
        _check_vocab_dims(problem, max_dim, cfg.max_vocab_dim)
    if cfg.name == "cotraining":
        return CoTraining(problems=problems, codecs=codecs)
    return problems[cfg.name]


def _check_names(cfg: ProblemConfig) -> None:
    if cfg.name not in PROBLEMS:
        raise UserError(f"unknown problem {cfg.name!r} (known: {', '.join(PROBLEMS)}).")
    for key in ("encoding", "input_encoding", "output_encoding"):
        value = getattr(cfg, key)
        if value and value not in ENCODINGS:
            raise UserError(f"unknown number encoding {key}={value!r} (known: {', '.join(ENCODINGS)}).")
    matrices.check_coefficient_law(cfg.coefficients)
    if not (math.isfinite(cfg.bound) and cfg.bound > 0):
        raise UserError(f"problem.bound must be a positive number, got {cfg.bound}.")
    if not (math.isfinite(cfg.noise) and cfg.noise >= 0):
        raise UserError(f"problem.noise must be a number >= 0, got {cfg.noise}.")
    if cfg.tasks and cfg.name != "cotraining":
        raise UserError(f"problem.tasks is for cotraining only, not for {cfg.name}.")


def _dims(cfg: ProblemConfig) -> tuple[int, int]:
    min_dim = cfg.min_dim or cfg.dim
    max_dim = cfg.max_dim or cfg.dim
    if min(cfg.dim, min_dim, max_dim) < 1:
        raise UserError(f"matrix dimensions must be at least 1, got dim={cfg.dim}, "
                        f"min_dim={cfg.min_dim}, max_dim={cfg.max_dim}.")
    if min_dim > max_dim:
        raise UserError(f"problem.min_dim ({min_dim}) is larger than problem.max_dim ({max_dim}).")
    if cfg.max_vocab_dim < 1:
        raise UserError(f"problem.max_vocab_dim must be at least 1, got {cfg.max_vocab_dim}.")
    return min_dim, max_dim


def _cotraining_tasks(cfg: ProblemConfig) -> tuple[str, ...]:
    if cfg.name != "cotraining":
        return ()
    tasks = tuple(t.strip() for t in cfg.tasks.split(",") if t.strip()) or DEFAULT_COTRAINING
    for task in tasks:
        if task not in MATRIX_PROBLEMS:
            raise UserError(f"unknown cotraining task {task!r} (known: {', '.join(MATRIX_PROBLEMS)}).")
    if len(set(tasks)) != len(tasks):
        raise UserError(f"problem.tasks names a task twice: {cfg.tasks!r}.")
    if cfg.distribution and not set(tasks) & set(SYMMETRIC_PROBLEMS):
        raise UserError(f"problem.distribution needs a symmetric task ({', '.join(SYMMETRIC_PROBLEMS)}) "
                        "among the cotraining tasks.")
    return tasks


def _sampling(cfg: ProblemConfig, name: str, min_dim: int, max_dim: int) -> Sampling:
    symmetric = name in SYMMETRIC_PROBLEMS
    if cfg.distribution and not symmetric and cfg.name != "cotraining":
        raise UserError(f"problem.distribution (eigenvalue laws) needs a symmetric problem "
                        f"({', '.join(SYMMETRIC_PROBLEMS)}), not {name}.")
    if cfg.rectangular and name in SQUARE_PROBLEMS and cfg.name != "cotraining":
        raise UserError(f"{name} works on square matrices: set problem.rectangular to false.")
    if symmetric:
        laws = matrices.parse_mixture(cfg.distribution or "semicircle")
    else:
        laws = matrices.Mixture((cfg.coefficients,), (1.0,))
    return Sampling(min_dim=min_dim, max_dim=max_dim, rectangular=cfg.rectangular,
                    coefficients=cfg.coefficients, bound=float(cfg.bound), noise=float(cfg.noise),
                    laws=laws)


def _codecs(cfg: ProblemConfig, tasks: tuple[str, ...]) -> Codecs:
    max_exponent = cfg.max_exponent or None
    names = (cfg.input_encoding or cfg.encoding, cfg.output_encoding or cfg.encoding)
    try:
        encodings = [make_encoding(name, cfg.precision, max_exponent) for name in names]
    except ValueError as err:
        raise UserError(f"bad number encoding settings: {err}.") from None
    unique = [e for i, e in enumerate(encodings) if e.name not in [f.name for f in encodings[:i]]]
    vocab = Vocabulary(unique, max_dim=cfg.max_vocab_dim, tasks=tasks)
    return Codecs(input=encodings[0], output=encodings[1], vocab=vocab)


def _check_vocab_dims(problem: MatrixProblem, max_dim: int, limit: int) -> None:
    """Every input and output dimension the problem can write has a V token (shapes grow with size)."""
    largest = max(*problem.input_shape(max_dim, max_dim), *problem.output_shape(max_dim, max_dim))
    if largest > limit:
        raise UserError(f"{problem.name} at size {max_dim} x {max_dim} writes dimension V{largest}, "
                        f"beyond problem.max_vocab_dim={limit}: lower the dimension or raise max_vocab_dim.")
