"""The Python API: what the command line does, as objects for notebooks and scripts.

    import numpy as np
    import linalgformer as lf

    model = lf.load("eigenvalues-3x3")                   # a bundled model or a run directory
    model.predict(np.array([[2.0, 1, 0], [1, 3, 1], [0, 1, 4]]))   # the answer as a matrix: (3, 1)
    model.evaluate(count=1000, distribution="laplace")   # {"accuracy": 0.97, "tolerances": {...}, ...}
    run = lf.train(lf.preset("transpose-5x5", quick=True), out="runs/t5")   # a Model too
    data = lf.generate("eigenvalues", dim=5, count=100, encoding="FP15", seed=0)

Nothing here keeps state between calls: a :class:`Model` holds its run's config, experiment and
weights, and every function takes what it needs as arguments. Errors a user can cause raise the
command line's :class:`~linalgformer.errors.UserError`, one sentence each. The ``linalgformer``
command calls these same objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linalgformer.analysis import Analysis, analyze_examples
from linalgformer.bundled import resolve_model
from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.experiments.charton import accuracy_key
from linalgformer.problems.charton import ProblemConfig, make_problem
from linalgformer.problems.charton.contract import Examples, Problem, join_examples
from linalgformer.problems.charton.datafile import example_lines
from linalgformer.reproduce.presets import load_preset
from linalgformer.runs import load_run
from linalgformer.training import pick_device, train_run

__all__ = ["Model", "Generated", "load", "train", "preset", "generate", "UserError"]

TEST_SEED = 12345  # the seed of `evaluate`'s test sets, on the command line too


class Model:
    """A trained run, opened: its config, its experiment (problem + metrics) and its weights.

    ``lf.load`` and ``lf.train`` return one. ``path`` is the run directory, ``config`` the resolved
    :class:`~linalgformer.config.RunConfig`, ``module`` the torch model (in eval mode), ``metrics``
    the final validation metrics when the model comes from :func:`train` (else None)."""

    def __init__(self, run_dir: str | Path, device: str = "auto"):
        self.path = Path(run_dir)
        self.device = pick_device(device)
        self.config, self.experiment, self.module = load_run(self.path, self.device)
        self.metrics: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, family={self.config.family!r}, problem={self.problem!r})"

    @property
    def grammar(self) -> bool:
        """Whether token answers are decoded under the answer grammar (``model.grammar``; only
        well-formed answers). Settable, e.g. to score a run trained without it (Charton family)."""
        return bool(getattr(self.experiment, "use_grammar", False))

    @grammar.setter
    def grammar(self, on: bool) -> None:
        if not hasattr(self.experiment, "set_grammar"):
            raise UserError(f"the answer grammar is for token answers: the {self.config.family} family has none.")
        self.experiment.set_grammar(bool(on))

    @property
    def problem(self) -> str:
        """The problem's name (``eigenvalues``; ``pca``/``gmm`` or ``linreg``.. in the other families)."""
        section = self.config.problem
        return str(getattr(section, "name", None) or getattr(section, "task", ""))

    def predict(self, matrices: np.ndarray, beam: int = 1) -> np.ndarray:
        """The model's answer to one matrix (r, c) or to a batch (B, r, c), as numbers.

        The answer is the problem's output matrix (eigenvalues: (n, 1); eigenvectors: (n + 1, n),
        row 0 the eigenvalues); a batch gives (B, ...) when the answers share a shape, and an
        answer the model did not write as a matrix of the right shape is all NaN."""
        array = np.asarray(matrices, dtype=np.float64)
        if array.ndim not in (2, 3) or array.size == 0:
            raise UserError(f"predict takes a matrix (r, c) or a batch of them (B, r, c), got shape {array.shape}.")
        check_beam(beam)
        batch = array[None] if array.ndim == 2 else array
        answers = self.experiment.predict_matrices(self.module, list(batch), beam=beam)
        if any(a is None for a in answers) or len({a.shape for a in answers}) > 1:
            raise UserError("the model's answers do not share one shape; ask one question at a time.")
        out = np.stack(answers)
        return out[0] if array.ndim == 2 else out

    def answer(self, matrix: np.ndarray, beam: int = 1) -> dict[str, Any]:
        """One question answered as ``linalgformer predict`` does: the prediction beside numpy's
        reference, the verifier's error and a warning when the question lies outside the training data."""
        check_beam(beam)
        return self.experiment.answer(self.module, np.asarray(matrix), beam=beam)

    def scores(self, count: int = 1000, *, distribution: str | None = None, dims: list[int] | None = None,
               data: str | Path | None = None, seed: int = TEST_SEED, beam: int = 1,
               save_predictions: str | Path | None = None, bound: float | None = None) -> dict[str, Any]:
        """The experiment's raw metrics (``acc@0.05``.., ``by_law``, ``by_dim``), as the command line
        prints them; :meth:`evaluate` gives them in the API's form."""
        check_count(count)
        check_beam(beam)
        options = {} if bound is None else {"bound": check_bound(bound, self.config.family)}
        return self.experiment.evaluate(
            self.module, count, seed, self.device, distribution=distribution, dims=dims, beam=beam,
            data=None if data is None else Path(data),
            predictions=None if save_predictions is None else Path(save_predictions), **options)

    def evaluate(self, count: int = 1000, *, distribution: str | None = None, dims: list[int] | None = None,
                 data: str | Path | None = None, seed: int = TEST_SEED, beam: int = 1,
                 save_predictions: str | Path | None = None, bound: float | None = None) -> dict[str, Any]:
        """Accuracy on a fixed test set: ``count`` examples per law (``distribution``: "laplace" or
        "laplace,positive") and size (``dims``), drawn from ``seed``, with coefficients on +-``bound``
        (default: the training range; Charton family); or the examples of a file (``data``:
        ``generate`` output or the reference code's export).

        Returns ``{"accuracy": fraction correct at 5% tolerance, "tolerances": {"0.05": .., "0.02":
        .., "0.01": .., "0.005": ..}, "exact", "invalid", "count", "median_d1", "by_law": {law: the
        same keys}, "by_dim": {size: the same keys}}`` (other families: their own metrics)."""
        return accuracy_view(self.scores(count, distribution=distribution, dims=dims, data=data, seed=seed,
                                         beam=beam, save_predictions=save_predictions, bound=bound))

    def analyze(self, count: int = 1000, *, distribution: str | None = None, data: str | Path | None = None,
                seed: int = TEST_SEED, bins: int = 5) -> Analysis:
        """Where the model fails (``linalgformer analyze``): accuracy against the input's and the
        predicted answer's condition numbers, the eigenvalues' spread and gap, per answer entry
        and, for eigenvectors, per property; the answers' signs; and, for token answers, each kind
        of answer token's teacher-forced accuracy; see :mod:`linalgformer.analysis`."""
        check_count(count)
        if self.config.family != "charton":
            raise UserError(f"analyze studies tokenized (charton) models, not the {self.config.family} family.")
        sets = self.experiment.test_sets(count, seed, distribution, None, None if data is None else Path(data))
        problem, examples = sets[0] if len(sets) == 1 else (sets[0][0], join_examples([e for _, e in sets]))
        answers, preds = self.experiment.answers(self.module, problem, examples, self.device)
        result = analyze_examples(problem, examples, preds, bins=bins, answers=answers)
        result.tokens = self.experiment.token_accuracy(self.module, problem, examples, self.device)
        return result


def load(name_or_run_dir: str | Path, device: str = "auto") -> Model:
    """A trained model: a run directory, a bundled model (``lf.load("eigenvalues-3x3")``) or the
    problem of exactly one bundled model; ``device``: auto (cuda, then cpu), cpu or cuda."""
    return Model(resolve_model(name_or_run_dir), device)


def preset(name: str, quick: bool = False, overrides: dict[str, Any] | None = None,
           scale: str = "paper") -> RunConfig:
    """The run config of a preset (``configs/NAME.yaml``) at ``scale``: ``paper`` (as written),
    ``quick`` (a CPU smoke test; ``quick=True`` says the same) or ``cpu`` (the best CPU recipe);
    ``overrides``: config fields by dotted name, e.g. ``{"train.max_steps": 200}``."""
    assignments = [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
                   for key, value in (overrides or {}).items()]
    return load_preset(name, "quick" if quick else scale, assignments)[0]


def train(config: RunConfig, out: str | Path, progress: bool = True) -> Model:
    """Train ``config`` in the run directory ``out`` (resuming it if it holds the same run) and
    return the trained model, its final validation metrics in ``metrics``."""
    if not isinstance(config, RunConfig):
        raise UserError(f"train takes a run config (lf.preset(...)), not {type(config).__name__}.")
    final = train_run(config, Path(out), progress=progress)
    model = Model(out, config.train.device)
    model.metrics = final
    return model


@dataclass
class Generated:
    """Examples of a problem: the matrices and the tokens that write them.

    ``inputs``/``targets``: (count, r, c) arrays when every example has one shape (else lists of
    arrays); ``input_tokens``/``output_tokens``: one space-separated string per example, as
    ``linalgformer generate`` writes them; ``laws``: the law each was drawn from."""

    inputs: np.ndarray | list[np.ndarray]
    targets: np.ndarray | list[np.ndarray]
    input_tokens: list[str]
    output_tokens: list[str]
    laws: list[str]

    def __len__(self) -> int:
        return len(self.input_tokens)


def generate(problem: str, dim: int = 5, count: int = 10, encoding: str = "P1000", seed: int = 0,
             **settings: Any) -> Generated:
    """``count`` random examples of ``problem`` at size ``dim``, drawn from ``seed``; ``settings``
    are any other ``problem:`` fields (distribution, input_encoding, min_dim, max_dim, ...)."""
    check_count(count)
    config = problem_config(dict(settings, name=problem, dim=dim, encoding=encoding))
    chosen, examples = sample_examples(config, count, seed)
    pairs = [line.split("\t") for line in example_lines(chosen, examples, "text")]
    return Generated(inputs=stacked(examples.inputs), targets=stacked(examples.targets),
                     input_tokens=[p[0] for p in pairs], output_tokens=[p[1] for p in pairs],
                     laws=list(examples.laws))


def problem_config(values: dict[str, Any]) -> ProblemConfig:
    """A ``problem:`` section from keyword values; an unknown field is a UserError."""
    known = ProblemConfig.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown problem setting {unknown[0]!r} (known: {', '.join(known)}).")
    if not isinstance(values.get("dim"), int) or values["dim"] < 1:
        raise UserError(f"dim must be a positive integer, got {values.get('dim')!r}.")
    return ProblemConfig(**values)


def sample_examples(config: ProblemConfig, count: int, seed: int) -> tuple[Problem, Examples]:
    """(problem, ``count`` examples drawn from ``seed``): what ``generate`` writes."""
    problem = make_problem(config)
    return problem, problem.sample(np.random.default_rng(seed), count)


def accuracy_view(metrics: dict[str, Any]) -> dict[str, Any]:
    """Raw metrics -> the API's form: ``accuracy`` at 5%, ``tolerances`` by tolerance, groups alike."""
    out = {k: v for k, v in metrics.items() if not k.startswith("acc@") and not isinstance(v, dict)}
    tolerances = {k[len("acc@"):]: v for k, v in metrics.items() if k.startswith("acc@")}
    if tolerances:
        out["accuracy"] = metrics[accuracy_key(0.05)]
        out["tolerances"] = tolerances
    for key in ("by_law", "by_dim"):
        if isinstance(metrics.get(key), dict):
            out[key] = {group: accuracy_view(values) for group, values in metrics[key].items()}
    return out


def stacked(mats: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return np.stack(mats) if mats and len({m.shape for m in mats}) == 1 else list(mats)


def check_count(count: int, maximum: int = 10_000_000) -> None:
    if not isinstance(count, int) or not 1 <= count <= maximum:
        raise UserError(f"count must be an integer from 1 to {maximum}, got {count!r}.")


def check_beam(beam: int) -> None:
    if not isinstance(beam, int) or not 1 <= beam <= 64:
        raise UserError(f"beam must be an integer from 1 to 64, got {beam!r}.")


def check_bound(bound: float, family: str) -> float:
    if family != "charton":
        raise UserError(f"a test coefficient range (bound) is for the charton family, not {family}.")
    if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound) or bound <= 0:
        raise UserError(f"the test coefficient range (bound) must be a positive number, got {bound!r}.")
    return float(bound)
