"""The determinant of a square matrix, a problem of the follow-up work on Charton's transformers,
added in one module (docs/ADDING_A_PROBLEM.md walks through it).

The input is A (n x n), entries drawn from the coefficient law (uniform on +-10 by default) and
rounded to the input encoding; the answer is det A of that rounded matrix, written as a 1 x 1
matrix. A worked example in P1000, A = [[1, 2], [3, 4]]: the input ``V2 V2 + 100 E-2 + 200 E-2
+ 300 E-2 + 400 E-2``, the target ``V1 V1 - 200 E-2`` (det A = -2). The answer is unique: the
verifier's error is d1 = |prediction - det A| / |det A|. A singular draw (det A = 0, where a
relative error means nothing) is drawn again.
"""

from __future__ import annotations

import numpy as np

from linalgformer.problems.charton.matrix_problem import MatrixProblem


class Determinant(MatrixProblem):
    name, summary = "determinant", "A -> det A"
    square = True  # the determinant needs a square matrix, whatever problem.rectangular says
    # matrix-aware positions: the input is one operand; the 1 x 1 answer keeps its own frame
    input_split, output_coupling = "whole", "same"
    unusable_families = ("lowrank",)  # det = 0

    def output_shape(self, rows, cols):
        return 1, 1

    def output_degrees(self, rows, cols):
        return np.full((1, 1), float(rows))  # det(sA) = s^n det A

    def solve(self, inputs):
        with np.errstate(all="ignore"):
            values = np.linalg.det(inputs)
        return values.reshape(-1, 1, 1), np.isfinite(values) & (values != 0)


PROBLEM_CLASSES = (Determinant,)
