"""The ``problem:`` section of a Charton run config, and the settings resolved from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from linalgformer import matrices
from linalgformer.config import FLAG, SECTIONS, TEXT, at_least, between, check_fields, greater_than, matching, one_of
from linalgformer.tokens import ENCODINGS, NumberEncoding, Vocabulary

LAWS = matrices.LAWS
# The reference's default co-training set (its task letters T A D M E F I).
DEFAULT_COTRAINING = ("transpose", "matrix_sum", "matrix_vector", "matrix_product", "eigenvalues",
                      "eigenvectors", "invert_matrix")


@dataclass
class CurriculumStage:
    """From training step ``step`` on, draw training examples with these settings (0 / "": the
    problem's own). Evaluation always uses the problem's own settings: the curriculum's goal."""

    step: int = 0
    min_dim: int = 0
    max_dim: int = 0
    bound: float = 0.0  # coefficient range +-bound
    distribution: str = ""  # matrix families / eigenvalue laws (matrix_families)

    def __post_init__(self):
        check_fields(self, STAGE_RULES)

    def overrides(self) -> dict:
        """The ProblemConfig fields this stage changes."""
        values = {"min_dim": self.min_dim, "max_dim": self.max_dim, "bound": self.bound,
                  "distribution": self.distribution}
        return {k: v for k, v in values.items() if v}


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
    # matrix families with weights (matrix_families; symmetric problems: also the eigenvalue laws),
    # e.g. "uniform:4,sparse,integers" or "laplace,semicircle:2"; "": the coefficient law / semicircle
    distribution: str = ""
    coefficients: str = "uniform"  # uniform | gaussian
    bound: float = 10.0
    noise: float = 0.0  # input noise std, relative to the coefficients' std
    rectangular: bool = False  # columns drawn in [min_dim, max_dim] too
    size_power: float = 0.0  # mixed sizes: size n drawn with probability ~ n**size_power (0: uniform; 2: ~ its entries)
    # training only: this fraction of the training questions is shown under a random answer view (the
    # signed permutations that model.answer_views answers with), its answer recomputed, so that the
    # training matrices are closed under the views (a diagonal operand's views are monomial matrices)
    train_views: float = 0.0
    tasks: str = ""  # cotraining: comma-separated problem names ("": the reference's seven)
    max_vocab_dim: int = 100  # dimension tokens V1..V{max_vocab_dim}
    # training stages by step, e.g. sizes 2..3 first, then 2..5: [{step: 0, min_dim: 2, max_dim: 3},
    # {step: 3000, min_dim: 2, max_dim: 5}]; before the first stage's step, the problem's settings
    curriculum: list[CurriculumStage] = field(default_factory=list)

    def __post_init__(self):
        check_fields(self, PROBLEM_RULES)


# Names (problems, encodings, laws, tasks) are checked again, with the known ones listed, by
# ``registry.make_problem``; composite text (``distribution``, ``tasks``) is parsed there.
STAGE_RULES = {
    "step": at_least(0), "min_dim": at_least(0, " (0: the problem's)"), "max_dim": at_least(0, " (0: the problem's)"),
    "bound": at_least(0.0, " (0: the problem's)"), "distribution": TEXT,
}
PROBLEM_RULES = {
    "name": matching(r"[a-z][a-z0-9_]*", "a problem name such as transpose (`linalgformer problems` lists them)"),
    "dim": at_least(1), "min_dim": at_least(0, " (0: dim)"),
    "max_dim": at_least(0, " (0: dim)"), "encoding": one_of(*ENCODINGS),
    "input_encoding": one_of("", *ENCODINGS), "output_encoding": one_of("", *ENCODINGS),
    "precision": at_least(1), "max_exponent": at_least(0, " (0: the encoding's default)"),
    "distribution": TEXT, "coefficients": one_of(*matrices.COEFFICIENT_LAWS), "bound": greater_than(0.0),
    "noise": at_least(0.0), "rectangular": FLAG, "size_power": between(0.0, 8.0),
    "train_views": between(0.0, 1.0), "tasks": TEXT, "max_vocab_dim": at_least(1),
    "curriculum": SECTIONS,
}


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
    size_power: float = 0.0  # sizes drawn with probability ~ n**size_power (matrices.draw_dims)


@dataclass(frozen=True)
class Codecs:
    """The number encodings of each side and the shared vocabulary."""

    input: NumberEncoding
    output: NumberEncoding
    vocab: Vocabulary


def dim_range(cfg) -> tuple[int, int]:
    """(smallest, largest) matrix dimension a ``problem:`` section trains on (``dim`` when not mixed)."""
    return getattr(cfg, "min_dim", 0) or cfg.dim, getattr(cfg, "max_dim", 0) or cfg.dim


def size_span(low: int, high: int) -> str:
    """e.g. "5x5" or "5x5 to 8x8"."""
    return f"{low}x{low}" if low == high else f"{low}x{low} to {high}x{high}"
