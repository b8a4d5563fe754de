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

The API names no family: what only some families can do it asks the run's experiment (the
plug-in, :mod:`linalgformer.experiments.plugin`), and ``generate`` draws from the family that
writes its examples as data (``registry.EXAMPLES_FAMILY``).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from linalgformer import checkpoint as ckpt
from linalgformer.analysis import Analysis, analyze_examples
from linalgformer.bundled import bundled_models, models_for_problem, resolve_model, trained_on_rows
from linalgformer.config import RunConfig, check_examples_memory, from_dict
from linalgformer.errors import UserError
from linalgformer.experiments.registry import EXAMPLES_FAMILY, config_fields, family_module, run_config_from_dict
from linalgformer.files import check_output, check_utf8_path
from linalgformer.matrix_text import MAX_ABS
from linalgformer.reproduce.presets import load_preset
from linalgformer.runs import load_run
from linalgformer.suites import SuiteResult, run_suite
from linalgformer.training import pick_device, train_run

__all__ = ["Model", "Generated", "load", "train", "preset", "generate", "UserError"]

TEST_SEED = 12345  # the seed of `evaluate`'s test sets, on the command line too
HEADLINE_TOLERANCE = "0.05"  # Model.evaluate's "accuracy": the share of answers within 5%


class Model:
    """A trained run, opened: its config, its experiment (problem + metrics) and its weights.

    ``lf.load`` and ``lf.train`` return one. ``path`` is the run directory, ``config`` the resolved
    :class:`~linalgformer.config.RunConfig`, ``module`` the torch model (in eval mode), ``metrics``
    the final validation metrics when the model comes from :func:`train` (else None)."""

    def __init__(self, run_dir: str | Path, device: str = "auto"):
        self.path = Path(check_name(run_dir))
        check_utf8_path(self.path, "the run directory")
        self.device = pick_device(check_device(device))
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
        if not isinstance(on, (bool, np.bool_)):
            raise UserError(f"grammar must be True or False, got {on!r}.")
        if not hasattr(self.experiment, "set_grammar"):
            raise UserError(f"the answer grammar is for token answers: the {self.config.family} family has none.")
        self.experiment.set_grammar(bool(on))

    @property
    def views(self) -> int:
        """How many views of each question an answer averages (1: the question alone). Settable to
        K > 1 for a continuous answer of a problem whose answer a signed permutation of the question
        moves in a known way (every Charton matrix problem; eigen- and singular vectors are aligned
        in sign before averaging): the mean of K answers, each taken back, is more precise. A model
        starts at its config's ``model.answer_views`` (1 unless it was trained or bundled with more)."""
        return int(getattr(getattr(self.experiment, "answer_mode", None), "views", 1))

    @views.setter
    def views(self, views: int) -> None:
        views = whole_number("views", views, 1, 64)
        self.answer_setting("set_views", "answer views are for matrix problems")(views)

    @property
    def view_average(self) -> str:
        """How the answers to the views combine (``model.view_average``): ``mean``, or ``median``
        entry by entry (robust to a view the model reads astray). Settable."""
        return str(getattr(getattr(self.experiment, "answer_mode", None), "view_average", "mean"))

    @view_average.setter
    def view_average(self, average: str) -> None:
        self.answer_setting("set_view_average", "answer views are for matrix problems")(average)

    @property
    def loops(self) -> int:
        """How many refinement passes follow a continuous answer's first (``model.loops``: the decoder
        reads its answer so far and adds a correction, weights shared). Settable, to run more (or
        fewer) passes than the model was trained with."""
        return int(getattr(self.module, "loops", 0))

    @loops.setter
    def loops(self, loops: int) -> None:
        loops = whole_number("loops", loops, 0, 64)
        if not getattr(self.module, "cfg", None) or not getattr(self.module.cfg, "loops", 0):
            raise UserError("this model was not trained with refinement passes (model.loops): it has none to run.")
        self.module.loops = loops

    @property
    def newton_steps(self) -> int:
        """How many Newton-Schulz steps X <- X (2I - A X) refine a continuous inverse after the
        model's guess (``model.newton_steps``; 0: the guess alone). Settable to any 0..64, whatever
        the model was trained with."""
        return int(getattr(getattr(self.experiment, "answer_mode", None), "newton_steps", 0))

    @newton_steps.setter
    def newton_steps(self, steps: int) -> None:
        steps = whole_number("newton_steps", steps, 0, 64)
        self.answer_setting("set_newton_steps", "Newton-Schulz steps refine an inverse")(steps)

    def answer_setting(self, method: str, what: str):
        """The experiment's setter ``method`` for how the model answers, or one sentence saying
        ``what`` it is for when this family's experiments have none."""
        if not hasattr(self.experiment, method):
            raise UserError(f"{what}: the {self.config.family} family has none.")
        return getattr(self.experiment, method)

    @property
    def zero_gate_limit(self) -> float:
        """A model with a zero gate (``model.zero_gate``) writes an exact 0 where the gate finds an
        entry zero and the number read out lies within this many units (the answer's unit, a power
        of the largest input entry) of 0; 0: wherever the gate finds it. Settable."""
        return float(getattr(self.module, "zero_gate_limit", 0.0))

    @zero_gate_limit.setter
    def zero_gate_limit(self, limit: float) -> None:
        if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, float, np.integer, np.floating)) \
                or not math.isfinite(limit) or limit < 0:
            raise UserError(f"the zero gate's limit must be a number of 0 or more, got {limit!r}.")
        if not getattr(self.module, "cfg", None) or not getattr(self.module.cfg, "zero_gate", 0):
            raise UserError("this model has no zero gate (model.zero_gate): there is no limit to set.")
        self.module.zero_gate_limit = float(limit)

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
        array = real_array(matrices)
        if array.ndim not in (2, 3) or array.size == 0:
            raise UserError(f"predict takes a matrix (r, c) or a batch of them (B, r, c), got shape {array.shape}.")
        check_beam(beam)
        batch = array[None] if array.ndim == 2 else array
        self.experiment.check_question(batch.shape[1:])  # a 3x4 question to a 3x3 model is refused, not answered NaN
        answers = self.experiment.predict_matrices(self.module, list(batch), beam=beam)
        if any(a is None for a in answers) or len({a.shape for a in answers}) > 1:
            raise UserError("the model's answers do not share one shape; ask one question at a time.")
        out = np.stack(answers)
        return out[0] if array.ndim == 2 else out

    def answer(self, matrix: np.ndarray, beam: int = 1) -> dict[str, Any]:
        """One question answered as ``linalgformer predict`` does: the prediction beside numpy's
        reference, the verifier's error and a warning when the question lies outside the training data."""
        check_beam(beam)
        return self.experiment.answer(self.module, real_array(matrix), beam=beam)

    def scores(self, count: int = 1000, *, distribution: str | None = None, dims: list[int] | None = None,
               data: str | Path | None = None, seed: int = TEST_SEED, beam: int = 1,
               save_predictions: str | Path | None = None, bound: float | None = None) -> dict[str, Any]:
        """The experiment's raw metrics (``acc@0.05``.., ``by_law``, ``by_dim``), as the command line
        prints them; :meth:`evaluate` gives them in the API's form."""
        check_count(count)
        check_beam(beam)
        check_seed(seed)
        options = {} if bound is None else {"bound": check_bound(bound, self.experiment)}
        self.check_test_sets(count, distribution, dims)
        if save_predictions is not None:  # never a link, a device, the run's own files or the data file
            check_output(Path(save_predictions), "save_predictions",
                         run_files(self.path) + ((Path(data),) if data is not None else ()))
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

    def suite(self, name: str = "families", count: int = 200, *, dims: list[int] | None = None,
              seed: int = TEST_SEED, progress: bool = False) -> SuiteResult:
        """Accuracy per matrix family and size (``evaluate --suite``): ``count`` examples per cell,
        the paper's test distribution first; ``dims`` default to every size the model was trained
        on. ``.table()`` prints it, ``.as_json()`` gives the numbers; see :mod:`linalgformer.suites`."""
        problem, trained = self.experiment.suite_problem()
        sizes = list(dims) if dims else trained
        report = (lambda family: print(f"suite: {family}", file=sys.stderr)) if progress else None
        return run_suite(lambda family, sizes_: self.scores(count, distribution=family, dims=sizes_, seed=seed),
                         name, self.problem, problem.symmetric, sizes, count,
                         excluded=problem.unusable_families, progress=report)

    def check_test_sets(self, count: int, distribution: Any, dims: Any) -> None:
        """Refuse test sets that are not text / a list of sizes, hold more than MAX_GROUPS laws or
        sizes, or cannot fit in memory (``count`` examples per law and size)."""
        if distribution is not None and not isinstance(distribution, str):
            raise UserError(f"distribution must be text (laws separated by commas), got {distribution!r}.")
        if dims is not None and (not isinstance(dims, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims)):
            raise UserError(f"dims must be a list of positive integers, got {dims!r}.")
        laws = [law for law in (distribution or "").split(",") if law.strip()]
        if max(len(laws), len(dims or ())) > MAX_GROUPS:
            raise UserError(f"at most {MAX_GROUPS} laws and {MAX_GROUPS} sizes per evaluation, got "
                            f"{len(laws)} laws and {len(dims or ())} sizes.")
        section = self.config.problem if not dims else SimpleNamespace(dim=max(dims))
        check_examples_memory(section, count, max(len(laws), 1) * max(len(dims or ()), 1))

    def analyze(self, count: int = 1000, *, distribution: str | None = None, data: str | Path | None = None,
                seed: int = TEST_SEED, bins: int = 5) -> Analysis:
        """Where the model fails (``linalgformer analyze``): accuracy against the input's and the
        predicted answer's condition numbers, the eigenvalues' spread and gap, per answer entry
        and, for eigenvectors, per property; the answers' signs; and, for token answers, each kind
        of answer token's teacher-forced accuracy; see :mod:`linalgformer.analysis`."""
        check_count(count)
        check_seed(seed)
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
            raise UserError(f"bins must be an integer from 1 to {MAX_BINS}, got {bins!r}.")
        self.experiment.check_analyzable()
        self.check_test_sets(count, distribution, None)
        problem, examples = self.experiment.analysis_set(count, seed, distribution,
                                                         None if data is None else Path(data))
        answers, preds = self.experiment.answers(self.module, problem, examples, self.device)
        result = analyze_examples(problem, examples, preds, bins=bins, answers=answers)
        result.tokens = self.experiment.token_accuracy(self.module, problem, examples, self.device)
        return result


def load(name_or_run_dir: str | Path, device: str = "auto", dim: int | None = None) -> Model:
    """A trained model: a run directory, a bundled model (``lf.load("eigenvalues-3x3")``) or a
    problem's bundled model (``lf.load("eigenvalues", dim=6)``: the one ``predict`` picks for a 6x6
    question, trained on that size; without ``dim`` the problem must have exactly one);
    ``device``: auto (cuda, then cpu), cpu or cuda."""
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise UserError(f"dim must be a positive integer, got {dim!r}.")
    fits = None if dim is None else trained_on_rows(dim)
    return Model(resolve_model(unshadowed(check_name(name_or_run_dir)), fits=fits), device)


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
    final = fit(config, out, progress=progress)
    model = Model(out, config.train.device)
    model.metrics = final
    return model


def fit(config: RunConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """:func:`train` without opening the trained model: the final validation metrics (what
    ``linalgformer train`` prints; under torchrun every process trains, none loads the model)."""
    if not isinstance(config, RunConfig):
        raise UserError(f"train takes a run config (lf.preset(...)), not {type(config).__name__}.")
    check_utf8_path(Path(check_name(out)), "the run directory")
    return train_run(config, Path(out), progress=progress)


def run_config(data: dict[str, Any]) -> RunConfig:
    """A run config from a nested dict (a YAML preset's content, overrides applied), resolved
    against its family's ``problem``/``model`` sections: what ``linalgformer train`` builds."""
    return run_config_from_dict(data)


def setting_names(family: str) -> set[str]:
    """``"section.key"`` of every setting a ``family``'s run config has (``model.width``, ...)."""
    return config_fields(family)


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
    check_seed(seed)
    config = problem_config(dict(settings, name=problem, dim=dim, encoding=encoding))
    chosen, examples = sample_examples(config, count, seed)
    pairs = [line.split("\t") for line in example_lines(chosen, examples, "text")]
    return Generated(inputs=stacked(examples.inputs), targets=stacked(examples.targets),
                     input_tokens=[p[0] for p in pairs], output_tokens=[p[1] for p in pairs],
                     laws=list(examples.laws))


def examples_family():
    """The plug-in module of the family whose examples ``generate`` writes (``EXAMPLES_FAMILY``)."""
    return family_module(EXAMPLES_FAMILY)


def problem_config(values: dict[str, Any]) -> Any:
    """A ``problem:`` section from keyword values; an unknown field is a UserError."""
    section = examples_family().ProblemConfig
    known = section.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown problem setting {unknown[0]!r} (known: {', '.join(known)}).")
    if not isinstance(values.get("dim"), int) or values["dim"] < 1:
        raise UserError(f"dim must be a positive integer, got {values.get('dim')!r}.")
    return section(**values)


def problem_section(values: dict[str, Any]) -> Any:
    """A ``problem:`` section from values checked as a config file's are (key names, types and
    ranges; errors name ``problem.KEY``): what ``linalgformer generate`` builds from its flags."""
    return from_dict(examples_family().ProblemConfig, values, "problem")


def sample_examples(config: Any, count: int, seed: int) -> tuple[Any, Any]:
    """(problem, ``count`` examples drawn from ``seed``): what ``generate`` writes."""
    check_examples_memory(config, count)  # --dim 99 --count 10000000 is refused before it is drawn
    return examples_family().draw_examples(config, count, seed)


def example_lines(problem: Any, examples: Any, fmt: str = "text"):
    """The examples' lines in format ``fmt`` (text: ``INPUT_TOKENS<TAB>OUTPUT_TOKENS``; jsonl)."""
    return examples_family().example_lines(problem, examples, fmt)


def write_examples(path: str | Path, problem: Any, examples: Any, fmt: str = "text") -> int:
    """Write the examples to ``path`` atomically in format ``fmt``; returns the number written."""
    return examples_family().write_examples(path, problem, examples, fmt=fmt)


def accuracy_view(metrics: dict[str, Any]) -> dict[str, Any]:
    """Raw metrics -> the API's form: ``accuracy`` at 5%, ``tolerances`` by tolerance (``acc@TAU``
    keys), groups alike."""
    out = {k: v for k, v in metrics.items() if not k.startswith("acc@") and not isinstance(v, dict)}
    tolerances = {k[len("acc@"):]: v for k, v in metrics.items() if k.startswith("acc@")}
    if tolerances:
        out["accuracy"] = tolerances[HEADLINE_TOLERANCE]
        out["tolerances"] = tolerances
    for key in ("by_law", "by_dim"):
        if isinstance(metrics.get(key), dict):
            out[key] = {group: accuracy_view(values) for group, values in metrics[key].items()}
    return out


def stacked(mats: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return np.stack(mats) if mats and len({m.shape for m in mats}) == 1 else list(mats)


def check_count(count: int, maximum: int = 10_000_000) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= maximum:
        raise UserError(f"count must be an integer from 1 to {maximum}, got {count!r}.")


def check_beam(beam: int) -> None:
    if not isinstance(beam, int) or not 1 <= beam <= 64:
        raise UserError(f"beam must be an integer from 1 to 64, got {beam!r}.")


def check_bound(bound: float, experiment: Any) -> float:
    experiment.check_test_bound()  # a family whose test sets have no coefficient range refuses
    if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound) or bound <= 0:
        raise UserError(f"the test coefficient range (bound) must be a positive number, got {bound!r}.")
    if bound > MAX_ABS:  # the largest entry a typed matrix may hold: beyond, products overflow
        raise UserError(f"the test coefficient range (bound) must be at most {MAX_ABS:g}, got {bound!r}.")
    return float(bound)


MAX_BINS = 100  # analyze: quantile bins per feature
MAX_GROUPS = 100  # evaluate / analyze: laws, and sizes, per call (one table row each)


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise UserError(f"seed must be an integer from 0 to 2^63 - 1, got {seed!r}.")


def check_name(name: Any) -> str | Path:
    """A run directory or model name must be text or a path (``lf.load(123)`` is refused)."""
    if isinstance(name, bytes) or not isinstance(name, (str, Path)) or not str(name):
        raise UserError(f"a model is named by a run directory or a bundled model's name, got {name!r}.")
    return name


def check_device(device: Any) -> str:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise UserError(f"device must be auto, cpu, mps, cuda or cuda:N, got {device!r}.")
    return device


def real_array(matrices: Any) -> np.ndarray:
    """``matrices`` as a float64 array; complex, text or ragged input is refused (never cast)."""
    try:
        array = np.asarray(matrices)
    except ValueError:  # ragged nested lists
        raise UserError("the matrix is ragged: its rows have different lengths.") from None
    if np.iscomplexobj(array):
        raise UserError("the matrix holds complex numbers: these models take real matrices.")
    if array.dtype.kind not in "biuf":
        raise UserError(f"the matrix must hold numbers, got {array.dtype} entries.")
    return array.astype(np.float64)


def run_files(run_dir: Path) -> tuple[Path, ...]:
    """The files of a run directory no output may overwrite: what a run writes there (its config,
    weights, state, manifest, metrics, card) and its hidden files (lock, marker, staged saves)."""
    names = {ckpt.CONFIG, ckpt.WEIGHTS, ckpt.STATE, ckpt.MANIFEST, ckpt.LOCK, "metrics.jsonl", "card.json"}
    try:
        names |= {p.name for p in Path(run_dir).iterdir() if p.name.startswith(".") or p.name.endswith(ckpt.STAGED)}
    except OSError:
        pass
    return tuple(Path(run_dir) / name for name in sorted(names))


def unshadowed(name: str | Path) -> str | Path:
    """``name``, or the bundled model it names when a file or folder of that name here is not a run
    directory (it would shadow the model with a "not a run directory" error)."""
    path = Path(name)
    if not path.exists() or (path / ckpt.CONFIG).is_file() or "/" in str(name):
        return name
    models = bundled_models()
    if str(name) in models:
        return models[str(name)]
    if models_for_problem(str(name)):
        raise UserError(f"{name} here is not a run directory, and it hides the bundled {name} models "
                        f"({', '.join(models_for_problem(str(name)))}): name one of them, or rename {name}.")
    return name


def whole_number(name: str, value, low: int, high: int) -> int:
    """``value`` as an int when it is a whole number from ``low`` to ``high`` (not a bool), else one
    sentence naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise UserError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(value)
