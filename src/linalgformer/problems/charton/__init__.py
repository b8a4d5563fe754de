"""Charton's tokenized linear-algebra problems ("Linear algebra with transformers", TMLR 2022).

Each problem draws random matrices (:mod:`linalgformer.matrices`), rounds them to what the input
encoding can write, computes the exact answer of *that* matrix, and writes both as tokens with
:func:`linalgformer.tokens.encode_matrices`. Operands are written side by side as one matrix.

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

The package, file by file: ``contract`` (what a tokenized problem provides: Examples, Scores,
Problem), ``config`` (the ``problem:`` section and the resolved sampling and encodings),
``matrix_problem`` (sampling, encoding, scoring and user-matrix checks shared by the ten problems),
``tasks`` (the ten problems), ``cotraining`` (several problems in one model), ``registry``
(:func:`make_problem`: names and settings -> a problem) and ``datafile`` (files of examples).
"""

from __future__ import annotations

from linalgformer.problems.charton.config import LAWS, CurriculumStage, ProblemConfig
from linalgformer.problems.charton.contract import TOLERANCES, Examples, Problem, Scores
from linalgformer.problems.charton.datafile import FORMATS, read_examples, write_examples
from linalgformer.problems.charton.registry import PROBLEMS, curriculum_problems, make_problem

__all__ = ["LAWS", "PROBLEMS", "ProblemConfig", "TOLERANCES", "Examples", "Problem", "Scores", "FORMATS",
           "read_examples", "write_examples", "make_problem", "curriculum_problems", "CurriculumStage"]
