"""The ten matrix problems of Charton's paper: each defines its shapes, its exact answer (``solve``)
and the checks of a prediction where the answer is not unique. A new problem gets its own module
(``determinant.py``) and one line in ``registry.PROBLEM_MODULES`` (docs/ADDING_A_PROBLEM.md)."""

from __future__ import annotations

import numpy as np

from linalgformer import matrices
from linalgformer.errors import UserError
from linalgformer.linalg import canonical_sign, column_signs, diagonal, identity, safe_inverse, transpose
from linalgformer.problems.charton.matrix_problem import MatrixProblem


def signed_permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """An n x n permutation matrix with random signs: orthogonal, and it moves entries exactly."""
    return np.eye(n)[rng.permutation(n)] * rng.choice([-1.0, 1.0], n)


def same(answer: np.ndarray) -> np.ndarray:
    """The way back of a view that leaves the answer as it is."""
    return answer


def row_and_column_view(rng: np.random.Generator, x: np.ndarray):
    """(P x Q, P, Q): x with its rows and columns moved by random signed permutations."""
    p, q = signed_permutation(rng, x.shape[0]), signed_permutation(rng, x.shape[1])
    return p @ x @ q, p, q


class Transpose(MatrixProblem):
    name, summary = "transpose", "A -> A^T"
    output_coupling = "swap"

    def output_shape(self, rows, cols):
        return cols, rows

    def solve(self, inputs):
        return transpose(inputs).copy(), np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """P A Q, whose transpose is Q^T A^T P^T."""
        view, p, q = row_and_column_view(rng, x)
        return view, lambda answer: q @ answer @ p


class MatrixSum(MatrixProblem):
    name, summary = "matrix_sum", "[A|B] -> A + B"
    input_split = "halves"

    def input_shape(self, rows, cols):
        return rows, 2 * cols

    def operand_dims(self, shape):
        return shape[0], shape[1] // 2

    def output_shape(self, rows, cols):
        return rows, cols

    def solve(self, inputs):
        half = inputs.shape[2] // 2
        return inputs[:, :, :half] + inputs[:, :, half:], np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """[P A Q | P B Q], whose sum is P (A + B) Q."""
        half = x.shape[1] // 2
        p, q = signed_permutation(rng, x.shape[0]), signed_permutation(rng, half)
        return np.hstack([p @ x[:, :half] @ q, p @ x[:, half:] @ q]), lambda answer: p.T @ answer @ q.T

    def check_input_shape(self, shape):
        if shape[1] % 2:
            raise UserError(f"{self.name} needs [A|B] side by side: an even number of columns, got {shape[1]}.")
        super().check_input_shape(shape)


class MatrixVector(MatrixProblem):
    name, summary = "matrix_vector", "[M|v] -> M^T v"
    output_degree = 2  # M^T v: a product of two entries
    bilinear = True
    input_split, output_coupling = "last_column", "column"

    def input_shape(self, rows, cols):
        return rows, cols + 1

    def operand_dims(self, shape):
        return shape[0], shape[1] - 1

    def output_shape(self, rows, cols):
        return cols, 1

    def solve(self, inputs):
        return transpose(inputs[:, :, :-1]) @ inputs[:, :, -1:], np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """[P M Q | P v], whose M^T v is Q^T M^T v."""
        p, q = signed_permutation(rng, x.shape[0]), signed_permutation(rng, x.shape[1] - 1)
        return np.hstack([p @ x[:, :-1] @ q, p @ x[:, -1:]]), lambda answer: q @ answer

    def check_input_shape(self, shape):
        if shape[1] < 2:
            raise UserError(f"{self.name} needs [M|v] side by side: at least 2 columns, got {shape[1]}.")
        super().check_input_shape(shape)


class MatrixProduct(MatrixSum):
    name, summary = "matrix_product", "[A|B] -> A^T B"
    output_degree = 2
    bilinear = True

    def output_shape(self, rows, cols):
        return cols, cols

    def solve(self, inputs):
        half = inputs.shape[2] // 2
        return transpose(inputs[:, :, :half]) @ inputs[:, :, half:], np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """[P A Q | P B R], whose A^T B is Q^T A^T B R."""
        half = x.shape[1] // 2
        p, q, r = signed_permutation(rng, x.shape[0]), signed_permutation(rng, half), signed_permutation(rng, half)
        return np.hstack([p @ x[:, :half] @ q, p @ x[:, half:] @ r]), lambda answer: q @ answer @ r.T


class Eigenvalues(MatrixProblem):
    name, summary = "eigenvalues", "symmetric M -> eigenvalues, descending"
    symmetric = square = True

    def output_shape(self, rows, cols):
        return rows, 1

    def solve(self, inputs):
        values = np.linalg.eigvalsh(inputs)[:, ::-1]
        return values[:, :, None].copy(), np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """Q M Q^T, Q a random signed permutation: the same eigenvalues."""
        q = signed_permutation(rng, len(x))
        return q @ x @ q.T, same


class Eigenvectors(MatrixProblem):
    name, summary = "eigenvectors", "symmetric M -> [lambda; Q]"
    symmetric = square = True
    sign_free_columns = True

    def output_degrees(self, rows, cols):
        return values_then_vectors(self.output_shape(rows, cols))

    def output_shape(self, rows, cols):
        return rows + 1, rows

    def solve(self, inputs):
        values, vectors = np.linalg.eigh(inputs)
        values, vectors = values[:, ::-1], vectors[:, :, ::-1]
        vectors = canonical_sign(vectors)
        return np.concatenate([values[:, None, :], vectors], axis=1), np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """Q M Q^T, Q a random signed permutation: the same eigenvalues, eigenvectors Q v (taken
        back by Q^T; their signs are aligned before averaging, ``aligned``)."""
        q = signed_permutation(rng, len(x))
        return q @ x @ q.T, lambda answer: np.vstack([answer[:1], q.T @ answer[1:]])

    def checks(self, operands, targets, predictions):
        values, vectors = predictions[:, 0, :], predictions[:, 1:, :]
        spectrum = diagonal(values)
        eye = identity(len(values), values.shape[1], like=values)
        return [(transpose(vectors) @ operands @ vectors - spectrum, spectrum),
                (transpose(vectors) @ vectors - eye, eye)]

    def clean_operand(self, inputs, targets):
        return matrices.from_spectrum(targets[:, 0, :], targets[:, 1:, :])


class InvertMatrix(MatrixProblem):
    name, summary = "invert_matrix", "A -> A^-1"
    output_degree = -1
    square = True
    unusable_families = ("lowrank",)  # always singular

    def output_shape(self, rows, cols):
        return rows, rows

    def solve(self, inputs):
        return safe_inverse(inputs)

    def answer_view(self, rng, x):
        """P A Q (P A P^T for a symmetric A), whose inverse is Q^T A^-1 P^T."""
        p = signed_permutation(rng, x.shape[0])
        q = p.T if self.symmetric else signed_permutation(rng, x.shape[1])
        return p @ x @ q, lambda answer: q @ answer @ p

    def checks(self, operands, targets, predictions):
        eye = identity(len(operands), operands.shape[1], like=operands)
        return [(operands @ predictions - eye, eye)]

    def clean_operand(self, inputs, targets):
        return np.linalg.inv(targets)


class SymInverse(InvertMatrix):
    name, summary = "syminverse", "symmetric A -> A^-1"
    symmetric = True
    unusable_families = ("laplacian",)  # always singular (its rows sum to zero)


class SingularValues(MatrixProblem):
    name, summary = "singularvalues", "A -> singular values, descending"

    def output_shape(self, rows, cols):
        return min(rows, cols), 1

    def solve(self, inputs):
        values = np.linalg.svd(inputs, compute_uv=False)
        return values[:, :, None].copy(), np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """P A Q, P and Q random signed permutations: the same singular values."""
        return signed_permutation(rng, x.shape[0]) @ x @ signed_permutation(rng, x.shape[1]), same


class SingularVectors(MatrixProblem):
    name, summary = "singularvectors", "A -> [sigma; U; V]"
    sign_free_columns = True

    def output_degrees(self, rows, cols):
        return values_then_vectors(self.output_shape(rows, cols))

    def output_shape(self, rows, cols):
        return 1 + rows + cols, min(rows, cols)

    def solve(self, inputs):
        left, values, right_t = np.linalg.svd(inputs, full_matrices=False)
        signs = column_signs(left)
        left, right = left * signs, transpose(right_t) * signs
        return np.concatenate([values[:, None, :], left, right], axis=1), np.ones(len(inputs), dtype=bool)

    def answer_view(self, rng, x):
        """P A Q, P and Q random signed permutations: the same singular values, singular vectors
        P u and Q^T v (taken back; signs aligned before averaging, ``aligned``)."""
        p, q = signed_permutation(rng, x.shape[0]), signed_permutation(rng, x.shape[1])
        rows = x.shape[0]
        return p @ x @ q, lambda answer: np.vstack([answer[:1], p.T @ answer[1:1 + rows], q @ answer[1 + rows:]])

    def checks(self, operands, targets, predictions):
        rows = operands.shape[1]
        values, left, right = predictions[:, 0, :], predictions[:, 1:1 + rows], predictions[:, 1 + rows:]
        spectrum = diagonal(values)
        eye = identity(len(values), values.shape[1], like=values)
        return [(transpose(left) @ operands @ right - spectrum, spectrum),
                (transpose(left) @ left - eye, eye), (transpose(right) @ right - eye, eye)]

    def clean_operand(self, inputs, targets):
        rows = inputs.shape[1]
        values, left, right = targets[:, 0, :], targets[:, 1:1 + rows], targets[:, 1 + rows:]
        return (left * values[:, None, :]) @ transpose(right)


def values_then_vectors(shape: tuple[int, int]) -> np.ndarray:
    """Degrees of [values; vectors]: the first row scales with the matrix, unit vectors do not."""
    degrees = np.zeros(shape)
    degrees[0] = 1.0
    return degrees


# what the registry reads (problems.charton.registry.PROBLEM_MODULES), in the listing's order
PROBLEM_CLASSES: tuple[type[MatrixProblem], ...] = (
    Transpose, MatrixSum, MatrixVector, MatrixProduct, Eigenvalues, Eigenvectors, InvertMatrix,
    SymInverse, SingularValues, SingularVectors)
