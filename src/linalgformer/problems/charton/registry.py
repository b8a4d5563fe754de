"""Names and settings -> a problem: :func:`make_problem`, with one clear sentence for any bad setting.

The problems are the classes listed by the modules of :data:`PROBLEM_MODULES` (each module's
``PROBLEM_CLASSES``): a new problem is one module and one line there (docs/ADDING_A_PROBLEM.md).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import replace

from linalgformer import matrices, matrix_families
from linalgformer.errors import UserError
from linalgformer.problems.charton.config import DEFAULT_COTRAINING, Codecs, ProblemConfig, Sampling
from linalgformer.problems.charton.contract import Problem
from linalgformer.problems.charton.cotraining import CoTraining
from linalgformer.problems.charton.matrix_problem import MatrixProblem
from linalgformer.tokens import CONTINUOUS, ENCODINGS, Vocabulary, make_encoding

# One line per module of problems; the import-graph test reads these names as imports.
PROBLEM_MODULES = (
    "linalgformer.problems.charton.tasks",  # the ten of Charton's paper
    "linalgformer.problems.charton.determinant",
)
MATRIX_PROBLEMS: dict[str, type[MatrixProblem]] = {
    cls.name: cls for module in PROBLEM_MODULES for cls in importlib.import_module(module).PROBLEM_CLASSES}
PROBLEMS = (*MATRIX_PROBLEMS, "cotraining")
SYMMETRIC_PROBLEMS = tuple(name for name, cls in MATRIX_PROBLEMS.items() if cls.symmetric)
SQUARE_PROBLEMS = tuple(name for name, cls in MATRIX_PROBLEMS.items() if cls.square)


def curriculum_problems(cfg: ProblemConfig) -> list[tuple[int, Problem]]:
    """[(first step, problem)] of a curriculum, sorted by step; UserError for a bad stage."""
    steps = [stage.step for stage in cfg.curriculum]
    if any(s < 0 for s in steps) or len(set(steps)) != len(steps):
        raise UserError(f"problem.curriculum stages need distinct steps >= 0, got {steps}.")
    base = replace(cfg, curriculum=[])
    return [(stage.step, make_problem(replace(base, **stage.overrides())))
            for stage in sorted(cfg.curriculum, key=lambda stage: stage.step)]


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
    if cfg.name == "cotraining" and CONTINUOUS in (cfg.encoding, cfg.input_encoding, cfg.output_encoding):
        raise UserError("the continuous encoding needs one problem per model, not cotraining.")
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
    if cfg.rectangular and name in SQUARE_PROBLEMS and cfg.name != "cotraining":
        raise UserError(f"{name} works on square matrices: set problem.rectangular to false.")
    if symmetric:
        laws = _distribution(cfg.distribution or "semicircle", matrix_families.SYMMETRIC_FAMILIES)
    elif cfg.distribution and cfg.name != "cotraining":
        _check_general_distribution(cfg.distribution, name)
        laws = _distribution(cfg.distribution, matrix_families.GENERAL_FAMILIES)
    else:
        laws = matrices.Mixture((cfg.coefficients,), (1.0,))
    return Sampling(min_dim=min_dim, max_dim=max_dim, rectangular=cfg.rectangular,
                    coefficients=cfg.coefficients, bound=float(cfg.bound), noise=float(cfg.noise),
                    laws=laws, size_power=float(cfg.size_power))


def _distribution(text: str, known: tuple[str, ...]) -> matrices.Mixture:
    try:
        return matrices.parse_mixture(text, known)
    except UserError as err:
        raise UserError(f"problem.distribution: {err}") from None


def _check_general_distribution(text: str, name: str) -> None:
    """An eigenvalue law (or a symmetric-only family) named for a problem of general matrices."""
    for item in text.split(","):
        family = item.strip().partition(":")[0]
        if family not in matrix_families.GENERAL_FAMILIES and family in matrix_families.SYMMETRIC_FAMILIES:
            raise UserError(f"{family!r} is a law of symmetric matrices: it needs a symmetric problem "
                            f"({', '.join(SYMMETRIC_PROBLEMS)}), not {name} (matrix families for {name}: "
                            f"{', '.join(matrix_families.GENERAL_FAMILIES)}).")


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
