"""Files of tokenized examples: written by ``generate``, read back for training or evaluation.

Two formats, one example per line:

* ``text``: ``INPUT_TOKENS<TAB>OUTPUT_TOKENS``, tokens separated by single spaces (the reference
  code's export format without its line-number prefix), e.g. for a 2x2 transpose in P1000::

      V2 V2 + 100 E-2 + 200 E-2 + 300 E-2 + 400 E-2<TAB>V2 V2 + 100 E-2 + 300 E-2 + 200 E-2 + 400 E-2

* ``jsonl``: ``{"input": tokens, "output": tokens, "input_matrix": [[...]], "target": [[...]],
  "law": ..., "dim": ..., "task": ...}``; only ``input`` and ``output`` are read back.

Both readers also take the reference code's export, ``N|INPUT<TAB>OUTPUT`` (a line counter, a bar,
then the text format; its four encodings write the same tokens as ours). :func:`read_test_examples`
reads a file as numeric examples to score a model on (``evaluate --data``).

Files are written to a temporary file beside the destination and renamed, so an error never leaves
a partial file. Reading checks every line (known tokens, matrices that decode) and stops at the
first bad one with a :class:`UserError` naming the file and line.
"""

from __future__ import annotations

import io
import json
import re
from array import array
from pathlib import Path

import numpy as np

from linalgformer.errors import UserError
from linalgformer.files import atomic_write_lines, open_regular, parse_json
from linalgformer.problems.charton.config import size_span
from linalgformer.problems.charton.contract import Examples, Problem
from linalgformer.problems.charton.matrix_problem import MatrixProblem
from linalgformer.sequences import Sequences
from linalgformer.tokens import CONTINUOUS, ENCODINGS, decode_matrix, make_encoding, parse_matrix_tokens, sequence_text

FORMATS = ("text", "jsonl")
MAX_FILE_BYTES = 4 * 2**30  # larger files are refused from their size, before any is read
MAX_LINE_CHARS = 2**20
MAX_ARRAY_BYTES = 8 * 2**30  # a padded (examples x longest line) id array larger than this is refused
REFERENCE_COUNTER = re.compile(r"^\d+\|")  # the reference code's export starts each line with "N|"
# a line's own answer must be within this relative error (d1, by the problem's checks) of an answer
# of its input: loose, as the reference answers the unrounded matrix, yet far below another problem's
ANSWER_AGREEMENT = 0.5
CHECKED_LINES = 256  # a training file's first lines whose answers are checked against their inputs


def write_examples(path: str | Path, problem: Problem, examples: Examples, fmt: str = "text") -> int:
    """Write ``examples`` to ``path`` atomically in format ``fmt``; returns the number written."""
    if fmt not in FORMATS:
        raise UserError(f"unknown example file format {fmt!r} (known: {', '.join(FORMATS)}).")
    path = Path(path)
    lines = example_lines(problem, examples, fmt)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"cannot write {path}: directory {directory} does not exist.")
    try:
        atomic_write_lines(path, lines)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}.") from None
    return len(examples)


def example_lines(problem: Problem, examples: Examples, fmt: str):
    sources, targets = problem.encode(examples)
    for i in range(len(examples)):
        source, target = sequence_text(problem.vocab, sources, i), sequence_text(problem.vocab, targets, i)
        if fmt == "text":
            yield f"{source}\t{target}"
        else:
            yield json.dumps({"input": source, "output": target,
                              "input_matrix": examples.inputs[i].tolist(),
                              "target": examples.targets[i].tolist(),
                              "law": examples.laws[i], "dim": int(examples.dims[i]),
                              "task": examples.tasks[i] if examples.tasks else problem.name})


def read_examples(path: str | Path, problem: Problem,
                  max_bytes: int = MAX_FILE_BYTES) -> tuple[Sequences, Sequences]:
    """(input sequences, output sequences) from a text or jsonl file written by :func:`write_examples`.

    Memory is bounded before it is taken: the file's size is checked first, a line is read at most
    MAX_LINE_CHARS at a time, ids are kept in flat int64 arrays (8 bytes a token, no per-line
    objects), and the padded arrays are sized (at most MAX_ARRAY_BYTES each) before allocation."""
    path = Path(path)
    checker = _TokenChecker(problem)
    sources, targets = _Column(), _Column()
    first: list[tuple[int, tuple[list[str], list[str]]]] = []  # the first lines, to check their answers
    try:
        with _open_examples(path, max_bytes) as handle:
            for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), ""), start=1):
                pair = _parse_line(line, path, number)
                if pair is None:
                    continue
                source, target = (checker.ids(tokens, side, path, number)
                                  for tokens, side in zip(pair, ("input", "output")))
                sources.add(source)
                targets.add(target)
                if len(first) < CHECKED_LINES:
                    first.append((number, pair))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file of examples (it is not valid UTF-8).") from None
    if not sources.lengths:
        raise UserError(f"{path} holds no examples.")
    _check_first_answers(problem, first, path)
    pad = problem.vocab.pad_id
    return sources.padded(pad, path), targets.padded(pad, path)


def _check_first_answers(problem: Problem, first: list, path: Path) -> None:
    """The first lines' answers must be answers of their inputs (a file of another problem, or of
    the right problem at another size, is refused by its first misfit line)."""
    if not isinstance(problem, MatrixProblem):
        return  # cotraining: each line's task is in its tokens; checked as tokens only
    examples = Examples(inputs=[], targets=[], laws=[], dims=[], tasks=[])
    answers, where = [], []
    for number, pair in first:
        answers.append(_add_test_line(examples, problem, pair, (0, 0), f"{path} line {number}", any_size=True))
        where.append(f"{path} line {number}")
    _check_answers(examples, problem, answers, where)


def _open_examples(path: Path, max_bytes: int) -> io.TextIOWrapper:
    """``path`` opened as UTF-8 text once it is known to be a regular file of at most ``max_bytes``
    (a FIFO or device is refused unopened for reading, so nothing blocks)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UserError(f"cannot read example file {path}: {err.strerror or err}.") from None
    if size > max_bytes and path.is_file():
        raise UserError(f"example file {path} is {size / 2**30:.1f} GiB, more than the "
                        f"{max_bytes / 2**30:.1f} GiB this reader accepts.")
    return io.TextIOWrapper(open_regular(path, "example file", max_bytes), encoding="utf-8")


def _parse_line(line: str, path: Path, number: int) -> tuple[list[str], list[str]] | None:
    """(input tokens, output tokens) of one text or jsonl line; None for a blank line."""
    where = f"{path} line {number}"
    if len(line) > MAX_LINE_CHARS:
        raise UserError(f"{where} is longer than {MAX_LINE_CHARS} characters.")
    text = line.strip()
    if not text:
        return None
    if text.startswith("{"):
        return _parse_json(text, where)
    parts = REFERENCE_COUNTER.sub("", text, count=1).split("\t")
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise UserError(f"{where} is not INPUT<TAB>OUTPUT tokens.")
    return parts[0].split(), parts[1].split()


def _parse_json(text: str, where: str) -> tuple[list[str], list[str]]:
    record = parse_json(text, where)  # nesting too deep is refused too
    if not isinstance(record, dict):
        raise UserError(f"{where} is not a JSON object with input and output tokens.")
    fields = [record.get("input"), record.get("output")]
    if not all(isinstance(f, str) and f.strip() for f in fields):
        raise UserError(f"{where} needs \"input\" and \"output\" token strings.")
    return fields[0].split(), fields[1].split()


class _TokenChecker:
    """Turns a line's tokens into ids, checking they are known and decode to matrices."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.stoi = problem.vocab.stoi
        subproblems = getattr(problem, "problems", None)
        self.tasks = ({problem.vocab.task_id(name): sub for name, sub in subproblems.items()}
                      if subproblems else None)

    def ids(self, tokens: list[str], side: str, path: Path, number: int) -> list[int]:
        unknown = [t for t in tokens if t not in self.stoi]
        if unknown:
            raise UserError(f"{path} line {number}: unknown token {unknown[0]!r} in the {side}.")
        ids = [self.stoi[t] for t in tokens]
        if not self._decodes(ids, side):
            raise UserError(f"{path} line {number}: the {side} is not a matrix in this problem's "
                            f"{side} encoding.")
        return ids

    def _decodes(self, ids: list[int], side: str) -> bool:
        problem = self.problem
        if self.tasks is not None and side == "input":
            if not ids or ids[0] not in self.tasks:
                return False
            problem, ids = self.tasks[ids[0]], ids[1:]
        codecs = problem.codecs
        encoding = codecs.input if side == "input" else codecs.output
        return decode_matrix(encoding, codecs.vocab, ids) is not None


class _Column:
    """Token ids of many lines, kept flat: one int64 array of ids and one of lengths."""

    def __init__(self):
        self.flat, self.lengths = array("q"), array("q")

    def add(self, ids: list[int]) -> None:
        self.flat.extend(ids)
        self.lengths.append(len(ids))

    def padded(self, pad_id: int, path: Path) -> Sequences:
        lengths = np.frombuffer(self.lengths, dtype=np.int64).copy()
        rows, width = len(lengths), int(lengths.max())
        if rows * width * 8 > MAX_ARRAY_BYTES:
            raise UserError(f"{path} holds {rows} examples of up to {width} tokens: padded, they would "
                            f"take {rows * width * 8 / 2**30:.1f} GiB (the limit is "
                            f"{MAX_ARRAY_BYTES / 2**30:.0f} GiB).")
        ids = np.full((rows, width), pad_id, dtype=np.int64)
        ids[np.arange(width) < lengths[:, None]] = np.frombuffer(self.flat, dtype=np.int64)
        return Sequences(ids=ids, lengths=lengths)


# ----------------------------------------------------------------------------- test files


def read_test_examples(path: str | Path, problem: MatrixProblem, sizes: tuple[int, int]) -> Examples:
    """Numeric examples to score a model on, from a text, JSONL or reference-export file.

    Each input is decoded in the problem's input encoding, or else in whichever of the others
    writes it (then rounded to the input encoding, as the model reads it), and its answer
    recomputed exactly, as ``generate`` does; the line's own answer must decode, have the answer's
    shape and pass the problem's checks loosely (:data:`ANSWER_AGREEMENT`). A line that does not
    fit (encoding, size outside ``sizes``, another problem) is a UserError naming its line."""
    path = Path(path)
    examples = Examples(inputs=[], targets=[], laws=[], dims=[], tasks=[])
    answers, numbers = [], []
    try:
        with _open_examples(path, MAX_FILE_BYTES) as handle:
            for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_CHARS + 1), ""), start=1):
                pair = _parse_line(line, path, number)
                if pair is not None:
                    answers.append(_add_test_line(examples, problem, pair, sizes, f"{path} line {number}"))
                    numbers.append(number)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file of examples (it is not valid UTF-8).") from None
    if not numbers:
        raise UserError(f"{path} holds no examples.")
    _check_answers(examples, problem, answers, [f"{path} line {n}" for n in numbers])
    examples.laws[:] = [path.name] * len(examples)
    return examples


def _add_test_line(examples: Examples, problem: MatrixProblem, pair: tuple[list[str], list[str]],
                   sizes: tuple[int, int], where: str, any_size: bool = False) -> np.ndarray:
    """Append one line's input (with its exact answer) to ``examples``; returns the line's own answer.
    ``any_size``: a training file's line, whose size is not checked against ``sizes``."""
    vocab, codecs = problem.vocab, problem.codecs
    decoded, foreign = [], []
    for side, tokens, own in zip(("input", "answer"), pair, (codecs.input, codecs.output)):
        known = [t for t in tokens if t in vocab.stoi or own.name == CONTINUOUS]
        if len(known) == len(tokens):
            matrix = parse_matrix_tokens(own, tokens, max_dim=vocab.max_dim)
            if matrix is not None:
                decoded.append(matrix)
                foreign.append(False)
                continue
        if any_size:  # a training file is read in the model's own encodings, token for token
            unknown = [t for t in tokens if t not in known]
            if unknown:
                raise UserError(f"{where}: unknown token {unknown[0]!r} in the {side}.")
            raise UserError(f"{where}: the {side} is not a matrix in this model's {own.name} encoding.")
        matrix = _foreign_matrix(tokens, own, vocab.max_dim)
        if matrix is None:
            raise UserError(f"{where}: the {side} is not a matrix in any encoding ({', '.join(ENCODINGS)}) "
                            f"with precision {getattr(own, 'precision', 3)}.")
        decoded.append(matrix)
        foreign.append(True)
    matrix = decoded[0]
    if foreign[0] and problem.codecs.input.name != CONTINUOUS:  # read as the model reads it
        rounded, fit = problem.round_input(matrix[None])
        if not fit[0]:
            raise UserError(f"{where}: the input cannot be written in this model's {codecs.input.name} encoding.")
        matrix = rounded[0]
    _check_test_input(problem, matrix, None if any_size else sizes, where)
    target = problem.reference(Examples([matrix], [None], [""], [0]))[0]
    if not np.isfinite(target).all():
        raise UserError(f"{where}: {problem.name} of this input is not defined (is it singular?).")
    examples.inputs.append(matrix)
    examples.targets.append(target)
    examples.laws.append("")
    examples.dims.append(int(problem.operand_dims(matrix.shape)[0]))
    examples.tasks.append(problem.name)
    return decoded[1]


def _foreign_matrix(tokens: list[str], own, max_dim: int) -> np.ndarray | None:
    """The matrix of a side written in another encoding than the model's (a P1000 model scored on
    a B1999 file), or None; the caller re-encodes an input as the model reads it."""
    precision = getattr(own, "precision", 3)
    for name in ENCODINGS:
        try:
            encoding = make_encoding(name, precision)
        except ValueError:
            continue
        if name == own.name:
            continue
        matrix = parse_matrix_tokens(encoding, tokens, max_dim=max_dim)
        if matrix is not None and np.isfinite(matrix).all():
            return matrix
    return None


def _check_test_input(problem: MatrixProblem, matrix: np.ndarray, sizes: tuple[int, int] | None, where: str) -> None:
    """The input's shape fits the problem and, unless ``sizes`` is None, the model's trained sizes."""
    rows, cols = problem.operand_dims(matrix.shape)
    try:
        problem.check_input_shape(matrix.shape)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    if sizes is None:
        return
    if not sizes[0] <= rows <= sizes[1] or (rows != cols and not problem.sampling.rectangular):
        raise UserError(f"{where}: a {rows}x{cols} {problem.name} input, but this model was trained on "
                        f"{size_span(*sizes)} matrices (use --dim to test other sizes).")
    if problem.symmetric and not np.array_equal(matrix, matrix.T):
        raise UserError(f"{where}: {problem.name} takes symmetric matrices; this input is not symmetric.")


def _check_answers(examples: Examples, problem: MatrixProblem, answers: list[np.ndarray], where: list[str]) -> None:
    """Refuse the first line whose own answer is not an answer of its input (another problem's line)."""
    scores = problem.score_matrices(examples, answers)
    agree = scores.exact | (scores.valid & (scores.d1 < ANSWER_AGREEMENT))
    if not agree.all():
        first = int(np.flatnonzero(~agree)[0])
        shape = "x".join(map(str, examples.targets[first].shape))
        raise UserError(f"{where[first]}: its answer is not the {problem.name} of its input (a {shape} "
                        "answer within 50% is expected): is it a line of another problem?")
