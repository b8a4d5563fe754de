"""Model output is untrusted: decoding and scoring never raise, and invalid output counts as invalid.

Sequences come from three sources, for all four number encodings and every problem:

* hypothesis: arbitrary id lists (including ids outside the vocabulary and beyond int64) and valid
  answers put through one to four mutations (delete, insert, replace, swap, duplicate, truncate);
* a plain numpy loop: batches of random sequences shaped like answers (a ``V r V c`` header, then
  tokens drawn from the encoding, about the right count), plus mutated valid answers;
* a few mutations whose verdict is known in advance (a valid answer cut short, or with a token
  appended, is invalid; the valid answer is valid and exact).

The fast tests run a few thousand sequences; the slow test runs more than 100,000. Matrices typed
by a user (``matrix_text.parse_matrix``) are fuzzed the same way: a matrix or a UserError, nothing else.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linalgformer.errors import UserError
from linalgformer.matrix_text import parse_matrix
from linalgformer.tokens import (
    TOKEN_ENCODINGS as ENCODINGS,  # the continuous encoding: test_continuous.py
    Vocabulary,
    decode_matrix,
    encode_matrices,
    make_encoding,
    parse_matrix_tokens,
)
from linalgformer.problems.charton import PROBLEMS, ProblemConfig, make_problem

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@functools.lru_cache(maxsize=None)
def problem(name: str, encoding: str):
    return make_problem(ProblemConfig(name=name, dim=3, min_dim=2, max_dim=3, encoding=encoding))


@functools.lru_cache(maxsize=None)
def codec(encoding: str):
    enc = make_encoding(encoding)
    return enc, Vocabulary([enc], max_dim=10)


@functools.lru_cache(maxsize=None)
def examples(name: str, encoding: str, count: int = 64, seed: int = 0):
    p = problem(name, encoding)
    ex = p.sample(np.random.default_rng(seed), count)
    _, targets = p.encode(ex)
    answers = [targets.ids[i, : targets.lengths[i]].tolist() for i in range(count)]
    return ex, answers


# ----------------------------------------------------------------------------- mutations


def mutate(ids: list[int], rng: np.random.Generator, vocab_size: int, times: int) -> list[int]:
    """``ids`` after ``times`` random edits (ids drawn from the vocabulary, a little beyond it)."""
    ids = list(ids)
    for _ in range(times):
        kind = rng.integers(6)
        where = int(rng.integers(len(ids) + 1))
        token = int(rng.integers(-2, vocab_size + 2))
        if kind == 0 and ids:
            del ids[min(where, len(ids) - 1)]
        elif kind == 1:
            ids.insert(where, token)
        elif kind == 2 and ids:
            ids[min(where, len(ids) - 1)] = token
        elif kind == 3 and len(ids) > 1:
            a, b = rng.integers(len(ids), size=2)
            ids[a], ids[b] = ids[b], ids[a]
        elif kind == 4 and ids:
            ids[where:where] = ids[max(where - 3, 0):where]
        else:
            ids = ids[: where]
    return ids


def shaped_random(rng: np.random.Generator, p, count: int) -> list[list[int]]:
    """Random sequences that look like answers: a dimension header, then number tokens."""
    vocab, encoding = p.vocab, p.codecs.output
    numbers = vocab.table(encoding)
    out = []
    for _ in range(count):
        rows, cols = (int(x) for x in rng.integers(1, 5, size=2))
        length = max(rows * cols * encoding.width + int(rng.integers(-3, 4)), 0)
        body = numbers[rng.integers(len(numbers), size=length)].tolist()
        out.append([vocab.dim_id(rows), vocab.dim_id(cols), *body])
    return out


# ----------------------------------------------------------------------------- checks


def check_decoded(matrix, ids, vocab):
    assert matrix is None or (isinstance(matrix, np.ndarray) and matrix.ndim == 2
                              and matrix.dtype == np.float64)
    if matrix is not None:
        header = vocab.to_strings(ids[:2])
        assert header == [f"V{matrix.shape[0]}", f"V{matrix.shape[1]}"]


def check_scores(p, ex, preds) -> np.ndarray:
    """score() on untrusted predictions; asserts the invariants and returns the valid mask."""
    scores = p.score(ex, preds)
    n = len(preds)
    assert scores.valid.shape == scores.exact.shape == scores.d1.shape == (n,)
    invalid = ~scores.valid
    assert np.isinf(scores.d1[invalid]).all() and np.isinf(scores.d2[invalid]).all()
    assert np.isinf(scores.dmax[invalid]).all()
    assert not (scores.exact & invalid).any(), "an exact answer must be valid"
    for tau, correct in scores.correct.items():
        assert not (correct & invalid).any()
    assert not np.isnan(scores.d1).any() and not np.isnan(scores.d2).any() and not np.isnan(scores.dmax).any()
    assert (scores.d1 >= 0).all()
    for i in np.flatnonzero(scores.valid):
        decoded = p.decode_output(preds[i])
        assert decoded is not None and decoded.shape == ex.targets[i].shape and np.isfinite(decoded).all()
    return scores.valid


def fuzz_problem(name: str, encoding: str, rng: np.random.Generator, rounds: int) -> tuple[int, int]:
    """``rounds`` batches of 64 shaped-random and 64 mutated answers; returns (sequences, valid)."""
    p = problem(name, encoding)
    ex, answers = examples(name, encoding)
    total = valid = 0
    for _ in range(rounds):
        mutated = [mutate(a, rng, len(p.vocab), int(rng.integers(1, 4))) for a in answers]
        for preds in (shaped_random(rng, p, len(answers)), mutated):
            valid += int(check_scores(p, ex, preds).sum())
            total += len(preds)
    return total, valid


# ----------------------------------------------------------------------------- fast tests


@pytest.mark.parametrize("encoding", ENCODINGS)
@FUZZ
@given(ids=st.lists(st.one_of(st.integers(-5, 40_000), st.integers(-(2**70), 2**70)), max_size=40))
def test_decode_matrix_never_raises_on_arbitrary_ids(encoding, ids):
    enc, vocab = codec(encoding)
    check_decoded(decode_matrix(enc, vocab, ids), ids, vocab)


@pytest.mark.parametrize("encoding", ENCODINGS)
@FUZZ
@given(seed=st.integers(0, 2**32 - 1), times=st.integers(1, 4))
def test_decode_matrix_on_mutated_valid_matrices(encoding, seed, times):
    enc, vocab = codec(encoding)
    rng = np.random.default_rng(seed)
    rows, cols = (int(x) for x in rng.integers(1, 5, size=2))
    matrix = rng.standard_normal((rows, cols)) * 10.0 ** rng.integers(-3, 4)
    seq = encode_matrices(enc, vocab, matrix[None])
    ids = seq.ids[0, : seq.lengths[0]].tolist()
    np.testing.assert_array_equal(decode_matrix(enc, vocab, ids), enc.round(matrix))
    bad = mutate(ids, rng, len(vocab), times)
    check_decoded(decode_matrix(enc, vocab, bad), bad, vocab)


@pytest.mark.parametrize("encoding", ENCODINGS)
@FUZZ
@given(tokens=st.lists(st.one_of(
    st.sampled_from(["V0", "V1", "V2", "V3", "V01", "V999999999", "V1e3", "E", "E-0", "N", "+", "-",
                     "NaN", "-NaN", "N1e99", "Ninf", "<pad>", "<eos>", "", " ", "0", "999", "1000"]),
    st.text(max_size=6), st.none(), st.integers(), st.floats()), max_size=30))
def test_parse_matrix_tokens_never_raises_on_arbitrary_tokens(encoding, tokens):
    enc, _ = codec(encoding)
    for max_dim in (None, 10):
        matrix = parse_matrix_tokens(enc, tokens, max_dim=max_dim)
        assert matrix is None or (matrix.ndim == 2 and matrix.size == matrix.shape[0] * matrix.shape[1])


@pytest.mark.parametrize("name", PROBLEMS)
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_score_never_raises_on_arbitrary_predictions(name, data):
    encoding = data.draw(st.sampled_from(ENCODINGS))
    p = problem(name, encoding)
    ex, answers = examples(name, encoding, count=8)
    size = len(p.vocab)
    ids = st.one_of(st.integers(0, size - 1), st.integers(-3, size + 3), st.integers(-(2**70), 2**70))
    raw = data.draw(st.lists(st.lists(ids, max_size=40), min_size=8, max_size=8))
    mutated = [mutate(a, np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), size, 2)
               for a in answers]
    as_arrays = [np.asarray(a, dtype=np.int64) for a in mutated]  # predictions may come as arrays
    for preds in (raw, mutated, as_arrays):
        check_scores(p, ex, preds)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_known_verdicts(encoding):
    """Answers are valid and exact; cut short, lengthened, or with a wrong header they are invalid."""
    for name in PROBLEMS:
        p = problem(name, encoding)
        ex, answers = examples(name, encoding, count=16)
        number = p.vocab.table(p.codecs.output)[0]
        other_dim = [[p.vocab.dim_id(9)] + a[1:] for a in answers]  # 9 rows: never the target shape
        cases = {"valid": (answers, True), "cut": ([a[:-1] for a in answers], False),
                 "extra": ([a + [number] for a in answers], False), "empty": ([[] for _ in answers], False),
                 "eos inside": ([a[:2] + [p.vocab.eos_id] + a[2:] for a in answers], False),
                 "wrong rows": (other_dim, False)}
        for label, (preds, expected) in cases.items():
            scores = p.score(ex, preds)
            assert (scores.valid == expected).all(), (name, encoding, label)
            assert (scores.exact == expected).all(), (name, encoding, label)


def test_numpy_fuzz_loop_every_problem_and_encoding():
    """A few thousand sequences: every problem x encoding, shaped-random and mutated answers."""
    rng = np.random.default_rng(2024)
    total = valid = 0
    for encoding in ENCODINGS:
        for name in PROBLEMS:
            count, good = fuzz_problem(name, encoding, rng, rounds=1)
            total, valid = total + count, valid + good
    assert total >= 5000
    assert 0 < valid < total  # both paths were exercised


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_numpy_fuzz_loop_100k_sequences():
    rng = np.random.default_rng(7)
    total = valid = 0
    for encoding in ENCODINGS:
        enc, vocab = codec(encoding)
        for _ in range(10_000):  # decode_matrix directly: random ids, some beyond the vocabulary
            ids = rng.integers(-2, len(vocab) + 2, size=rng.integers(0, 30)).tolist()
            check_decoded(decode_matrix(enc, vocab, ids), ids, vocab)
            total += 1
        for name in PROBLEMS:
            count, good = fuzz_problem(name, encoding, rng, rounds=12)
            total, valid = total + count, valid + good
    assert total >= 100_000
    assert 0 < valid < total


# ----------------------------------------------------------------------------- typed matrices


HOSTILE_TEXT = ["[" * 100_000, "[[" + "1" * 5000 + "]]", "[[" + str(10**400) + "]]", "1 " * 600_000,
                '[["' + "x" * 100_000 + '"]]', "[[1e400]]", "[[NaN]]", "\x00", "[{}]", "[[],[]]", "{}"]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=range(len(HOSTILE_TEXT)))
def test_parse_matrix_hostile_text_is_a_user_error(text):
    with pytest.raises(UserError) as info:
        parse_matrix(text)
    assert len(str(info.value)) < 200  # one readable sentence, not the input echoed back


@FUZZ
@given(text=st.one_of(st.text(max_size=60), st.text(alphabet="[],;0123456789.e+-nfaIN \n", max_size=60)))
def test_parse_matrix_never_raises_anything_but_a_user_error(text):
    try:
        matrix = parse_matrix(text)
    except UserError:
        return
    assert matrix.ndim == 2 and matrix.dtype == np.float64 and np.isfinite(matrix).all()
