"""The ``linalgformer`` command line: generate, problems, train, evaluate, analyze, predict, reproduce, plot.

The commands call the Python API (:mod:`linalgformer.api`): this module turns flags into the API's
arguments and its results into text or JSON; the training loop and the families' plug-ins are the
API's business.

Every error a user can cause ends in one sentence on stderr and exit status 2 (``UserError``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from linalgformer.errors import UserError, shorten
from linalgformer.files import check_output, check_utf8_path, read_bounded, read_stream
from linalgformer.suites import SUITES

# Flags of `train` -> the config key they set.
TRAIN_FLAGS = {
    "problem": "problem.name", "dim": "problem.dim", "min_dim": "problem.min_dim",
    "max_dim": "problem.max_dim", "encoding": "problem.encoding",
    "input_encoding": "problem.input_encoding", "output_encoding": "problem.output_encoding",
    "distribution": "problem.distribution", "enc_layers": "model.enc_layers",
    "dec_layers": "model.dec_layers", "width": "model.width", "heads": "model.heads",
    "batch_size": "train.batch_size", "lr": "train.lr", "max_steps": "train.max_steps",
    "max_examples": "train.max_examples", "max_minutes": "train.max_minutes", "seed": "train.seed",
    "eval_every": "train.eval_every", "workers": "train.workers", "precision": "train.precision",
    "device": "train.device",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(joined_values(sys.argv[1:] if argv is None else list(argv)))
    warnings.formatwarning = one_line_warning
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with terminate_on_sigterm():
            return run_command(args)
    except UserError as err:
        print(f"linalgformer: error: {shorten(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("linalgformer: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("linalgformer: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 0
    except OSError as err:  # standard output on a full disk (> /dev/full): the files' writers say their own
        silence_stdout()
        print(f"linalgformer: error: cannot write the output: {err.strerror or err}.", file=sys.stderr)
        return 2


# Options whose value may start with "-" (a matrix whose first entry is negative): "--matrix -1,2;3,4"
# is passed on as "--matrix=-1,2;3,4", which argparse reads as the value.
DASHED_VALUES = ("--matrix",)


def joined_values(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in DASHED_VALUES and value.startswith("-") and not value.startswith("--"):
            out.append(f"{argv[i]}={value}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that Python's flush at exit cannot fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def run_command(args) -> int:
    """Run the subcommand; with ``--json``, everything it prints goes to stderr and only the one
    document it hands to :func:`emit_json` reaches stdout."""
    if not getattr(args, "json", False):
        code = args.run(args) or 0
        sys.stdout.flush()  # a full disk is reported here, not by Python at exit
        return code
    args.json_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        code = args.run(args) or 0
    args.json_stdout.flush()
    return code


def emit_json(args, document) -> None:
    """One strict RFC 8259 document: a number that is not finite (a median error with no decodable
    answer, an empty group's accuracy) is written as null."""
    out = getattr(args, "json_stdout", None) or sys.stdout
    print(json.dumps(strict_json(document), indent=2, sort_keys=True, allow_nan=False), file=out)


def strict_json(value):
    """``value`` with NaN and infinities as None, numpy scalars and arrays as Python values, tuples as
    lists, keys as strings and anything else as its text (``default=str`` before)."""
    import math

    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value if value is None or isinstance(value, (str, int, bool)) else str(value)


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that a run stops as it does on Ctrl-C (finally blocks run)."""


@contextlib.contextmanager
def terminate_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"linalgformer: warning: {message}\n"


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linalgformer", description=(
        "Train, evaluate and study transformers that learn numerical linear algebra."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_generate(sub)
    add_problems(sub)
    add_train(sub)
    add_evaluate(sub)
    add_analyze(sub)
    add_predict(sub)
    add_reproduce(sub)
    add_plot(sub)
    add_models(sub)
    add_results(sub)
    return parser


def add_problem_flags(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    p.add_argument("--problem", default="transpose" if defaults else None, help="problem name (see `linalgformer problems`)")
    p.add_argument("--dim", type=int, default=5 if defaults else None, help="matrix dimension")
    p.add_argument("--min-dim", type=int, default=None, help="smallest dimension when sizes vary")
    p.add_argument("--max-dim", type=int, default=None, help="largest dimension when sizes vary")
    p.add_argument("--encoding", default="P1000" if defaults else None, help="number encoding: P10, P1000, B1999, FP15 (tokens) or continuous (one token per number, its value beside it)")
    p.add_argument("--input-encoding", default=None, help="encoding of the input (default: --encoding)")
    p.add_argument("--output-encoding", default=None, help="encoding of the output (default: --encoding)")
    p.add_argument("--distribution", default=None,
                   help="matrix families or eigenvalue laws with weights, e.g. uniform:3,sparse,integers "
                        "(see `linalgformer problems`)")


def add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write random examples of a problem as tokens",
                       description="Write examples, one per line: INPUT_TOKENS<TAB>OUTPUT_TOKENS (or JSONL).")
    add_problem_flags(p, defaults=True)
    p.add_argument("--count", type=int, default=10, help="number of examples")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="text: tokens; jsonl: tokens and matrices")
    p.add_argument("--out", type=Path, default=None, help="output file (default: standard output)")
    p.set_defaults(run=cmd_generate)


def add_problems(sub) -> None:
    p = sub.add_parser("problems", help="list problems, encodings and eigenvalue laws")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_problems)


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (or resume the run in --out)",
                       description="Train a model. Re-running on an existing --out resumes it exactly; "
                                   "raising --max-steps/--max-minutes extends it.")
    p.add_argument("--config", type=Path, default=None, help="YAML preset (e.g. configs/transpose-5x5.yaml)")
    p.add_argument("--family", default=None, help="experiment family: charton (default), spectral, newton")
    add_problem_flags(p, defaults=False)
    p.add_argument("--layers", type=int, default=None, help="encoder and decoder layers")
    p.add_argument("--enc-layers", type=int, default=None)
    p.add_argument("--dec-layers", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="model width")
    p.add_argument("--heads", type=int, default=None, help="attention heads")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-examples", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="data-generation worker processes")
    p.add_argument("--precision", default=None, help="auto, fp32, bf16, fp16")
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. --set model.norm=pre --set train.warmup_steps=500")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_train)


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on any test distribution")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run directory or a bundled model")
    p.add_argument("--distribution", default=None,
                   help="test laws or matrix families, comma-separated: one table row each")
    p.add_argument("--dim", default=None, help="test dimension(s), comma-separated")
    p.add_argument("--count", type=int, default=1000, help="test examples per law and size")
    p.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the test set")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--data", type=Path, default=None, metavar="FILE",
                   help="score on the examples of FILE: `generate` output (text or JSONL) or the reference "
                        "code's export (N|INPUT<TAB>OUTPUT); a line that does not fit the model is refused")
    p.add_argument("--save-predictions", type=Path, default=None, metavar="FILE", help="write predictions as JSONL")
    p.add_argument("--bound", type=float, default=None, metavar="B",
                   help="test coefficients on +-B instead of the training range (an out-of-distribution test)")
    add_answer_flags(p)
    p.add_argument("--suite", default=None, choices=SUITES,
                   help="a robustness suite: accuracy per matrix family (rows, the paper's test set first) and "
                        "size (columns; --dim, default every trained size), --count examples per cell")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE",
                   help="with --suite: draw the family x size accuracy as a heatmap in FILE")
    p.set_defaults(run=cmd_evaluate)


def add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="where a model fails: accuracy by condition number, eigenvalue spread, entry",
                       description="Score a model on a test set and print accuracy against the input's and the "
                                   "answer's condition numbers, the eigenvalues' spread and gap, per answer entry "
                                   "and (eigenvectors) per property; then the share of answer entries with the "
                                   "right sign and, for token answers, each kind of answer token's accuracy "
                                   "given the true answer so far (sign, mantissa, exponent); one table and one PNG.")
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run directory or a bundled model")
    p.add_argument("--data", type=Path, default=None, metavar="FILE",
                   help="analyze the examples of FILE (as evaluate --data) instead of a fresh test set")
    p.add_argument("--distribution", default=None, help="test laws or matrix families, comma-separated")
    p.add_argument("--count", type=int, default=1000, help="test examples per law")
    p.add_argument("--bins", type=int, default=5, help="bins per feature (quantiles)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the test set")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("analysis.png"), help="PNG file")
    add_answer_flags(p)
    p.set_defaults(run=cmd_analyze)


def add_answer_flags(p) -> None:
    """How a loaded model answers (evaluate, analyze, predict): --grammar, --views, --view-average,
    --loops, --newton-steps, --zero-limit."""
    p.add_argument("--grammar", action=argparse.BooleanOptionalAction, default=None,
                   help="decode only well-formed answers (the answer grammar), or not; default: the model's "
                        "model.grammar")
    p.add_argument("--views", type=int, default=None, metavar="K",
                   help="continuous answers: the mean of the answers to K views of each question (random "
                        "signed permutations of its rows and columns, each answer taken back; vectors aligned "
                        "in sign); more precise than one answer; default: the model's model.answer_views "
                        "(1: the question alone)")
    p.add_argument("--view-average", choices=["mean", "median"], default=None,
                   help="with --views: combine the views' answers by their mean or their median (entry by "
                        "entry; robust to a view read astray); default: the model's model.view_average")
    p.add_argument("--loops", type=int, default=None, metavar="K",
                   help="a model trained with refinement passes (model.loops): run K of them after the first "
                        "answer instead (0: the first answer alone); default: as trained")
    p.add_argument("--newton-steps", type=int, default=None, metavar="K",
                   help="a continuous inversion model: refine its guess by K Newton-Schulz steps X <- X (2I - AX) "
                        "(0: the guess alone); default: the model's model.newton_steps")
    p.add_argument("--zero-limit", type=float, default=None, metavar="X",
                   help="a model with a zero gate (model.zero_gate): write an exact 0 only where the number "
                        "read out is within X units of 0 as well (0: wherever the gate says); default: the "
                        "model's model.zero_gate_limit")


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="ask a trained model (or a bundled one) a question",
                       description="Ask a model one question. RUN is a run directory, a bundled model "
                       "(`linalgformer models`) or a problem with a bundled model (e.g. eigenvalues: "
                       "the bundled model of that problem trained on the matrix's size).")
    p.add_argument("run_dir", type=Path, metavar="RUN")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--matrix", default=None, help='"[[1,2],[2,1]]" or "1 2; 2 1"')
    src.add_argument("--file", type=Path, default=None, help="file holding the matrix ('-' for stdin)")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--json", action="store_true")
    add_answer_flags(p)
    p.set_defaults(run=cmd_predict)


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="run a paper experiment preset and print its table")
    p.add_argument("name", nargs="?", default=None, help="preset name (see --list)")
    p.add_argument("--list", action="store_true", help="list presets")
    p.add_argument("--scale", choices=("paper", "quick", "cpu"), default=None,
                   help="paper: the preset as written (default); quick: a smoke test in minutes on a CPU; "
                        "cpu: the best recipe found for a laptop CPU (at most an hour)")
    p.add_argument("--quick", action="store_true", help="the same as --scale quick")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"), help="where runs and plots go")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_reproduce)


def add_plot(sub) -> None:
    p = sub.add_parser("plot", help="plot loss and accuracy against examples seen")
    p.add_argument("run_dirs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=Path("training.png"), help="PNG file")
    p.set_defaults(run=cmd_plot)


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the models shipped with the package and their measured accuracy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models)


def add_results(sub) -> None:
    p = sub.add_parser("results", help="one table from many `reproduce` results (NAME.result.json files)")
    p.add_argument("files", type=Path, nargs="+", help="result files that `reproduce` wrote beside its runs")
    p.add_argument("--text", action="store_true", help="plain text instead of a Markdown table")
    p.set_defaults(run=cmd_results)


# ----------------------------------------------------------------------------- commands


def positive(name: str, value: int | None, maximum: int | None = None) -> None:
    if value is not None and value < 1:
        raise UserError(f"--{name} must be at least 1, got {value}.")
    if value is not None and maximum is not None and value > maximum:
        raise UserError(f"--{name} must be at most {maximum}, got {value}.")


def problem_config_from_args(args):
    from linalgformer.api import problem_section

    positive("dim", args.dim)
    positive("min-dim", args.min_dim)
    positive("max-dim", args.max_dim)
    positive("count", getattr(args, "count", None), 10_000_000)
    values = {"name": args.problem, "dim": args.dim, "min_dim": args.min_dim or 0, "max_dim": args.max_dim or 0,
              "encoding": args.encoding, "input_encoding": args.input_encoding or "",
              "output_encoding": args.output_encoding or "", "distribution": args.distribution or ""}
    return problem_section(values)


def cmd_generate(args) -> int:
    from linalgformer.api import example_lines, sample_examples, write_examples

    if args.out is not None:  # before the examples are drawn: never a link, a device or a FIFO
        check_output(args.out, "--out")
    problem, examples = sample_examples(problem_config_from_args(args), args.count, args.seed)
    if args.out is None:
        for line in example_lines(problem, examples, args.format):
            print(line)
    else:
        write_examples(args.out, problem, examples, fmt=args.format)
    return 0


def cmd_problems(args) -> int:
    from linalgformer.matrix_families import GENERAL_FAMILIES, SYMMETRIC_FAMILIES
    from linalgformer.tokens import ENCODINGS
    from linalgformer.problems.charton import LAWS, PROBLEMS

    info = {"problems": list(PROBLEMS), "encodings": list(ENCODINGS), "distributions": list(LAWS),
            "matrix families": list(GENERAL_FAMILIES),
            "symmetric families": [f for f in SYMMETRIC_FAMILIES if f not in LAWS]}
    if args.json:
        emit_json(args, info)
        return 0
    for key, values in info.items():
        print(f"{key}: {', '.join(values)}")
    return 0


def train_config_dict(args) -> dict:
    from linalgformer.checkpoint import CONFIG, read_config
    from linalgformer.config import apply_override, load_yaml

    if args.config is not None:
        data = load_yaml(args.config)
    elif (args.out / CONFIG).exists():
        data = read_config(args.out)  # resume or extend the run with its own config
    else:
        data = {"family": args.family or "charton"}
    if args.family:
        data["family"] = args.family
    fields = family_fields(data.get("family", "charton"))
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            check_flag(flag, key, data.get("family", "charton"), fields)
            apply_override(data, f"{key}={json.dumps(value)}")
    if args.layers is not None:  # Charton: encoder and decoder; the other families: model.layers
        keys = ["model.layers"] if "model.layers" in fields else ["model.enc_layers", "model.dec_layers"]
        for key in keys:
            apply_override(data, f"{key}={args.layers}")
    for assignment in args.set:
        apply_override(data, assignment)
    continuous_defaults(data)
    return data


def continuous_defaults(data: dict) -> None:
    """The continuous encoding needs matrix positions (each number's place): chosen for the user
    who picked the encoding and left ``model.positions`` unset."""
    problem, model = data.get("problem"), data.setdefault("model", {})
    if data.get("family", "charton") != "charton" or not isinstance(problem, dict) or not isinstance(model, dict):
        return
    encodings = {problem.get(key) for key in ("encoding", "input_encoding", "output_encoding")}
    if "continuous" in encodings and "positions" not in model:
        model["positions"] = "matrix"


def family_fields(family: str) -> set[str]:
    """"section.key" of every setting the family's run config has (a flag that sets another is refused)."""
    from linalgformer.api import setting_names

    return setting_names(family)


def check_flag(flag: str, key: str, family: str, fields: set[str]) -> None:
    if key not in fields:
        raise UserError(f"--{flag.replace('_', '-')} does not apply to the {family} family (it has no {key}); "
                        "use --set with one of its own settings.")


def cmd_train(args) -> int:
    from linalgformer.api import fit, run_config
    from linalgformer.tables import format_metrics

    check_utf8_path(args.out, "--out")
    config = run_config(train_config_dict(args))
    final = fit(config, args.out, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(format_metrics(final))
        print(f"run directory: {args.out}")
    return 0


def parse_dims(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        dims = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--dim expects integers separated by commas, got {text!r}.") from None
    if not dims or min(dims) < 1:
        raise UserError(f"--dim expects positive integers, got {text!r}.")
    return dims


def cmd_evaluate(args) -> int:
    from linalgformer.api import load
    from linalgformer.tables import evaluation_json, evaluation_table

    positive("count", args.count, 1_000_000)
    positive("beam", args.beam, 64)
    if args.save_predictions is not None:  # before the model is loaded; api.scores checks it against the run
        check_output(args.save_predictions, "--save-predictions")
    model = answering(load(args.run_dir, args.device), args)
    dims = parse_dims(args.dim)
    if args.suite is not None or args.plot is not None:
        return evaluate_suite(args, model, dims)
    metrics = model.scores(args.count, distribution=args.distribution, dims=dims, data=args.data,
                           seed=args.seed, beam=args.beam, save_predictions=args.save_predictions, bound=args.bound)
    note_untrained_sizes(model.config.problem, dims)  # after: a size the model cannot take is one error alone
    if args.json:
        emit_json(args, evaluation_json(metrics))
    else:
        print(evaluation_table(metrics))
    return 0


def evaluate_suite(args, model, dims: list[int] | None) -> int:
    """``evaluate --suite``: the family x size table (or JSON), and its heatmap with --plot."""
    from linalgformer.plotting import plot_suite

    if args.suite is None:
        raise UserError("--plot draws a robustness suite: add --suite NAME.")
    if args.data is not None or args.distribution or args.save_predictions is not None or args.bound is not None:
        raise UserError("--suite draws its own test sets: it takes no --data, --distribution, --bound or "
                        "--save-predictions.")
    if args.plot is not None:
        check_output(args.plot, "--plot")
    result = model.suite(args.suite, args.count, dims=dims, seed=args.seed, progress=True)
    note_untrained_sizes(model.config.problem, dims)
    if args.json:
        emit_json(args, result.as_json())
    else:
        print(result.table())
    if args.plot is not None:
        print(f"wrote {plot_suite(result.as_json(), args.plot)}", file=sys.stderr)
    return 0


def cmd_analyze(args) -> int:
    from linalgformer.api import load, run_files

    positive("count", args.count, 1_000_000)
    positive("bins", args.bins, 100)
    model = answering(load(args.run_dir, args.device), args)
    if not args.out.is_dir() or args.out.is_symlink():  # a folder gets the plot inside it
        check_output(args.out, "--out", run_files(model.path) + ((args.data,) if args.data else ()), sink=True)
    analysis = model.analyze(args.count, distribution=args.distribution, data=args.data, seed=args.seed, bins=args.bins)
    print(analysis.table())
    print(f"wrote {analysis.plot(args.out)}")
    return 0


def answering(model, args):
    """``model`` answering as --grammar, --views, --view-average, --loops, --newton-steps and
    --zero-limit say (add_answer_flags)."""
    model = with_views(with_grammar(model, args.grammar), args.views)
    if args.view_average is not None:  # refused in one sentence by a model that writes tokens
        model.view_average = args.view_average
    if args.loops is not None:  # refused in one sentence by the model when out of range or untrained
        model.loops = args.loops
    if args.newton_steps is not None:  # refused in one sentence out of range or for a model that is no inverse
        model.newton_steps = args.newton_steps
    if args.zero_limit is not None:  # refused in one sentence by a model without a gate
        model.zero_gate_limit = args.zero_limit
    return model


def with_views(model, views: int | None):
    """``model`` answering the mean over ``views`` invariant views of each question (1: the question
    alone; None: as the model's model.answer_views says)."""
    if views is not None:
        positive("views", views, 64)
        if views != model.views:
            model.views = views
    return model


def with_grammar(model, grammar: bool | None):
    """``model`` decoding under the answer grammar if ``grammar`` says so (None: as trained)."""
    if grammar is not None:
        model.grammar = grammar
    return model


def note_untrained_sizes(problem, dims: list[int] | None) -> None:
    """A note on stderr when ``--dim`` asks for sizes the model was not trained on (a fair question:
    an out-of-distribution test, as in Charton's retraining experiments)."""
    from linalgformer.problems.charton.config import dim_range, size_span

    if not dims or getattr(problem, "dim", None) is None:
        return
    low, high = dim_range(problem)
    outside = [d for d in dims if not low <= d <= high]
    if outside:
        print(f"linalgformer: note: this model was trained on {size_span(low, high)} matrices; "
              f"{', '.join(f'{d}x{d}' for d in outside)} {'is' if len(outside) == 1 else 'are'} outside them "
              "(an out-of-distribution test).",
              file=sys.stderr)


def read_matrix_text(args) -> str:
    """The matrix's text: at most MAX_CHARS bytes are read, from a regular file (never a FIFO or a
    device, which could block or never end) or from standard input."""
    from linalgformer.matrix_text import MAX_CHARS

    if args.matrix is not None:
        return args.matrix
    try:
        if args.file is None or str(args.file) == "-":
            data = read_stream(getattr(sys.stdin, "buffer", sys.stdin), "the matrix on standard input", MAX_CHARS)
        else:
            data = read_bounded(args.file, "matrix file", MAX_CHARS)
        return data.decode("utf-8") if isinstance(data, bytes) else data
    except (OSError, UnicodeDecodeError) as err:
        where = "standard input" if args.file is None or str(args.file) == "-" else f"matrix file {args.file}"
        reason = "it is not UTF-8 text" if isinstance(err, UnicodeDecodeError) else err.strerror or err
        raise UserError(f"cannot read the matrix from {where}: {reason}.") from None


def cmd_predict(args) -> int:
    from linalgformer.api import load
    from linalgformer.matrix_text import parse_matrix

    positive("beam", args.beam, 64)
    matrix = parse_matrix(read_matrix_text(args))
    # a problem's name picks its bundled model trained on the matrix's size
    model = answering(load(args.run_dir, device="cpu", dim=matrix.shape[0]), args)
    answer = model.answer(matrix, beam=args.beam)
    if answer.get("warning"):
        print(f"linalgformer: warning: {answer['warning']}", file=sys.stderr)
    if args.json:
        emit_json(args, {k: v for k, v in answer.items() if not k.endswith("_text")})
    else:
        print(f"model:     {answer['prediction_text']}")
        print(f"reference: {answer['reference_text']}")
        print(f"{answer.get('error_label', 'relative error (d1)')}: {answer['error']}")
    return 0


def cmd_reproduce(args) -> int:
    from linalgformer.reproduce.driver import run_preset
    from linalgformer.reproduce.presets import list_presets

    if args.list or not args.name:
        for name, title in list_presets():
            print(f"{name:28s} {title}")
        return 0 if args.list else 2
    if args.quick and args.scale not in (None, "quick"):
        raise UserError(f"--quick and --scale {args.scale} disagree: give one of them.")
    scale = "quick" if args.quick else args.scale or "paper"
    result = run_preset(args.name, scale=scale, out_dir=args.out)
    if args.json:
        emit_json(args, {k: v for k, v in result.items() if k != "text"})
    else:
        print(result.get("title", args.name))
        print(result.get("text", ""))
    return 0


def cmd_plot(args) -> int:
    from linalgformer.plotting import plot_runs

    path = plot_runs(args.run_dirs, args.out)
    print(f"wrote {path}")
    return 0


def cmd_results(args) -> int:
    from linalgformer.reproduce.results import results_table

    print(results_table(args.files, markdown=not args.text))
    return 0


def card_score(card: dict) -> str:
    """The headline number of a model card: accuracy at 5% and 1% tolerance (and the views a model
    answers with by default, model.answer_views), or the primary metric."""
    accuracy = card.get("accuracy") or {}
    if "0.05" in accuracy:
        views = card.get("answer_views") or 1
        how = f" ({views} views, {card.get('view_average', 'mean')})" if views > 1 else ""
        return f"{100 * accuracy['0.05']:.1f}% at 5%, {100 * accuracy.get('0.01', float('nan')):.1f}% at 1%{how}"
    metrics, primary = card.get("metrics") or {}, card.get("primary_metric", "")
    if primary not in metrics:
        return ""
    parts = [f"{metrics[k]:.3f}" for k in sorted(metrics) if k.startswith("cos_")]
    return f"{primary} {metrics[primary]:.3f}" + (f" ({' / '.join(parts)})" if parts else "")


def suite_score(card: dict) -> str:
    """The card's robustness suite in a few words: mean and worst cell at 5% over families x sizes."""
    suite = card.get("suite")
    if not isinstance(suite, dict) or "mean" not in suite:
        return ""
    worst = suite.get("worst") or {}
    low = f", worst {100 * worst['acc@0.05']:.0f}% ({worst['family']} {worst['dim']}x{worst['dim']})" if worst else ""
    return f"mean {100 * suite['mean']:.1f}%{low}"


def cmd_models(args) -> int:
    from linalgformer.bundled import bundled_models, model_card
    from linalgformer.tables import render_table

    cards = [dict(model_card(path), name=name) for name, path in bundled_models().items()]
    if args.json:
        emit_json(args, cards)
        return 0
    rows = [[c["name"], c.get("problem", ""), card_score(c), suite_score(c), c.get("test_count"), c.get("description", "")]
            for c in cards]
    print(render_table(["model", "problem", "measured", "families (suite)", "tested on", "what"], rows))
    print("use: linalgformer predict MODEL --matrix \"[[1,2,3],[4,5,6],[7,8,9]]\"  (a data matrix X for pca models)")
    return 0
