"""Number encodings, the vocabulary and matrix <-> token sequences (linalgformer.tokens)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linalgformer.sequences import Sequences, concat_sequences
from linalgformer.tokens import (
    TOKEN_ENCODINGS as ENCODINGS,  # the continuous encoding: test_continuous.py
    FP15,
    UnknownTokenError,
    Vocabulary,
    decode_matrix,
    encode_matrices,
    make_encoding,
    matrix_tokens,
    parse_matrix_tokens,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def encodings():
    """One default encoding per name (FP15 takes ~40 ms to build, so build each once)."""
    return {name: make_encoding(name) for name in ENCODINGS}


@pytest.fixture(scope="module")
def vocabs(encodings):
    return {name: Vocabulary([e]) for name, e in encodings.items()}


def words(tokens):
    return " ".join(tokens)


def log_uniform(rng, low, high, count):
    """Signed values with log10|x| uniform on [low, high], plus zeros."""
    x = 10.0 ** rng.uniform(low, high, count) * rng.choice([-1.0, 1.0], count)
    x[::17] = 0.0
    return x


# ----------------------------------------------------------------------------- exact formats

FLOAT_EXAMPLES = [
    ("P10", 3.14159, "+ 3 1 4 E-2"),
    ("P10", 0.0, "+ 0 E0"),
    ("P10", -0.0, "+ 0 E0"),
    ("P10", -0.0123, "- 1 2 3 E-4"),
    ("P10", 1234.5, "+ 1 2 3 E1"),
    ("P10", 9.996, "+ 1 0 0 E-1"),  # rounding carries into the exponent
    ("P10", 1e-98, "+ 1 0 0 E-100"),  # smallest exponent token
    ("P10", 9.99e-99, "+ 0 E0"),  # exponent -101 underflows to zero
    ("P10", -1e-200, "+ 0 E0"),  # underflow drops the sign
    ("P10", 9.99e102, "+ 9 9 9 E100"),
    ("P1000", 3.14159, "+ 314 E-2"),
    ("P1000", 0.0, "+ 0 E0"),
    ("P1000", -0.0123, "- 123 E-4"),
    ("P1000", 1234.5, "+ 123 E1"),
    ("B1999", 3.14159, "N314 E-2"),
    ("B1999", -0.0123, "N-123 E-4"),
    ("B1999", 0.0, "N0 E0"),
    ("B1999", -0.0, "N0 E0"),
    ("B1999", -1e-200, "N0 E0"),
    ("FP15", 3.14159, "N314e7"),
    ("FP15", 1234.5, "N123e10"),
    ("FP15", -0.0123, "N-123e5"),
    ("FP15", 0.0, "N0e0"),
    ("FP15", 1e-7, "N100e0"),  # smallest full-precision value
    ("FP15", -5e-8, "N-50e0"),  # below 1e-7: fixed point, step 1e-9
    ("FP15", 3e-10, "N0e0"),
    ("FP15", 9.99e8, "N999e15"),  # largest value
    ("FP15", 9.995e8, "NaN"),  # rounds to exponent 16: overflow
    ("FP15", -2e9, "-NaN"),
]


@pytest.mark.parametrize("name, x, expected", FLOAT_EXAMPLES)
def test_float_formats(encodings, name, x, expected):
    enc = encodings[name]
    assert words(enc.encode_float(x)) == expected
    codes, lengths = enc.encode(np.array([x]))
    assert words(enc.tokens[c] for c in codes[0, : lengths[0]]) == expected
    assert (codes[0, lengths[0] :] == -1).all()


MATRIX = np.array([[3.14159, -0.0123], [0.0, 1234.5]])
MATRIX_EXAMPLES = {
    "P10": "V2 V2 + 3 1 4 E-2 - 1 2 3 E-4 + 0 E0 + 1 2 3 E1",
    "P1000": "V2 V2 + 314 E-2 - 123 E-4 + 0 E0 + 123 E1",
    "B1999": "V2 V2 N314 E-2 N-123 E-4 N0 E0 N123 E1",
    "FP15": "V2 V2 N314e7 N-123e5 N0e0 N123e10",
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_matrix_format(encodings, vocabs, name):
    enc, vocab = encodings[name], vocabs[name]
    assert words(matrix_tokens(enc, MATRIX)) == MATRIX_EXAMPLES[name]
    seqs = encode_matrices(enc, vocab, MATRIX[None])
    assert words(vocab.to_strings(seqs.ids[0, : seqs.lengths[0]])) == MATRIX_EXAMPLES[name]
    expected = np.array([[3.14, -0.0123], [0.0, 1230.0]])
    np.testing.assert_array_equal(parse_matrix_tokens(enc, MATRIX_EXAMPLES[name].split()), expected)


def test_vector_is_a_column(encodings):
    assert words(matrix_tokens(encodings["B1999"], np.array([1.0, -2.0]))) == "V2 V1 N100 E-2 N-200 E-2"


def test_widths(encodings):
    assert {n: e.width for n, e in encodings.items()} == {"P10": 5, "P1000": 3, "B1999": 2, "FP15": 1}


def test_precision_generalises():
    assert words(make_encoding("P10", precision=4).encode_float(3.14159)) == "+ 3 1 4 2 E-3"
    assert words(make_encoding("P1000", precision=4).encode_float(31.416)) == "+ 3 142 E-2"
    assert make_encoding("P1000", precision=4).width == 4
    assert words(make_encoding("B1999", precision=2).encode_float(-3.16)) == "N-32 E-1"
    fp = make_encoding("FP15", precision=4)  # L stays 9: max_exponent 15
    assert fp.max_exponent == 15 and words(fp.encode_float(3.14159)) == "N3142e6"
    assert words(make_encoding("P10", max_exponent=5).encode_float(1e-9)) == "+ 0 E0"


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown number encoding"):
        make_encoding("P100")
    with pytest.raises(ValueError):
        make_encoding("FP15", precision=3, max_exponent=15)  # (2 + 15) is odd
    with pytest.raises(ValueError):
        make_encoding("P10", precision=0)


def test_unfit_values(encodings):
    p10 = encodings["P10"]
    x = np.array([1.0, 1e103, np.inf, np.nan, 9.994e102, -1e300])
    np.testing.assert_array_equal(p10.fits(x), [True, False, False, False, True, False])
    assert np.isnan(p10.round(x)[[1, 2, 3, 5]]).all()
    with pytest.raises(ValueError, match="does not fit"):
        p10.encode(x)
    with pytest.raises(ValueError):
        p10.encode_float(1e103)
    fp = encodings["FP15"]
    y = np.array([9.99e8, 9.995e8, -1e9, 1e-300, -np.inf])
    np.testing.assert_array_equal(fp.fits(y), [True, False, False, True, False])
    assert [fp.tokens[c] for c in fp.encode(y)[0][:, 0]] == ["N999e15", "NaN", "-NaN", "N0e0", "-NaN"]
    assert fp.decode_float(["NaN"]) is None
    with pytest.raises(ValueError):
        fp.encode(np.array([np.nan]))


# ----------------------------------------------------------------------------- round trip


def check_rounding(enc, x):
    """round(x) == decode(encode(x)) and within half a unit of the last significant digit."""
    fits = enc.fits(x)
    rounded = enc.round(x)
    for xi, ri in zip(x[fits], rounded[fits]):
        assert enc.decode_float(enc.encode_float(xi)) == ri
        assert abs(ri - xi) <= half_unit(enc, xi) * (1 + 1e-9), (enc, xi, ri)


def half_unit(enc, x):
    """Largest rounding error allowed for x (absolute), including each encoding's underflow."""
    digits = enc.precision - 1
    if isinstance(enc, FP15):
        scale = (digits + enc.max_exponent) // 2
        if abs(x) < 10.0 ** (digits - scale):
            return 0.5 * 10.0**-scale  # fixed point below the full-precision range
    elif abs(x) < 10.0 ** (digits - enc.max_exponent):
        return 10.0 ** (digits - enc.max_exponent)  # underflows to zero (or rounds up to the least)
    if x == 0:
        return 0.0
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - digits)


@pytest.mark.parametrize("name", ENCODINGS)
def test_round_trip_whole_range(encodings, name):
    enc = encodings[name]
    rng = np.random.default_rng(0)
    low, high = (-11, 9.5) if name == "FP15" else (-105, 103.5)
    x = log_uniform(rng, low, high, 3000)
    check_rounding(enc, x)
    inside = (np.abs(x) <= (9.99e8 if name == "FP15" else 9.99e102))
    assert enc.fits(x)[inside].all() and not enc.fits(x)[np.abs(x) >= (1e9 if name == "FP15" else 1e103)].any()


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("precision", [1, 2, 4])
def test_round_trip_other_precisions(name, precision):
    enc = make_encoding(name, precision=precision)
    x = log_uniform(np.random.default_rng(precision), -12, 9.5, 500)
    check_rounding(enc, x)
    assert_vectorised_equals_scalar(enc, x)


@SETTINGS
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_round_trip_any_float(encodings, x):
    for enc in encodings.values():
        check_rounding(enc, np.array([x]))


# ----------------------------------------------------------------------------- vectorised = scalar


def assert_vectorised_equals_scalar(enc, x):
    codes, lengths = enc.encode(x[enc.fits(x) | isinstance(enc, FP15)])
    kept = x[enc.fits(x) | isinstance(enc, FP15)]
    for xi, row, n in zip(kept, codes, lengths):
        assert [enc.tokens[c] for c in row[:n]] == enc.encode_float(xi), xi
        assert (row[n:] == -1).all()
    for xi in x[~enc.fits(x)]:
        if not isinstance(enc, FP15):
            with pytest.raises(ValueError):
                enc.encode_float(xi)


def awkward_values(rng):
    """Ties, powers of ten and their neighbours, integers, tiny and huge values, zeros."""
    powers = 10.0 ** np.arange(-120, 120)
    ties = np.array([0.125, 1.005, 1235.0, 2.675, 0.5, 9.995, 9.996, 99.95, 0.09996, 1e-7, 9.995e8, 5e-10, 1.5e-9])
    integers = rng.integers(-20000, 20000, 300).astype(float)
    random = log_uniform(rng, -310, 308, 2000)
    base = np.concatenate([powers, ties, integers, random, [0.0, -0.0, 5e-324, 1.7e308]])
    neighbours = np.concatenate([np.nextafter(base, np.inf), np.nextafter(base, -np.inf)])
    everything = np.concatenate([base, neighbours])
    return np.concatenate([everything, -everything])


@pytest.mark.parametrize("name", ENCODINGS)
def test_vectorised_equals_scalar(encodings, name):
    assert_vectorised_equals_scalar(encodings[name], awkward_values(np.random.default_rng(1)))


@SETTINGS
@given(x=st.lists(st.floats(allow_nan=False), min_size=1, max_size=20))
def test_vectorised_equals_scalar_any(encodings, x):
    for enc in encodings.values():
        assert_vectorised_equals_scalar(enc, np.array(x))


# ----------------------------------------------------------------------------- decoding garbage


@pytest.mark.parametrize("name", ENCODINGS)
def test_invalid_sequences(encodings, vocabs, name):
    enc, vocab = encodings[name], vocabs[name]
    good = MATRIX_EXAMPLES[name].split()
    bad = [
        [],
        good[:1],
        good[:-1],  # a number short
        good + good[2:3],  # trailing token
        ["V2", "V3"] + good[2:],  # too few numbers
        ["V0", "V2"] + good[2:],
        ["V01", "V2"] + good[2:],
        ["<pad>"] + good,
        good[2:],  # no dimensions
    ]
    for tokens in bad:
        assert parse_matrix_tokens(enc, tokens) is None, tokens
        if all(t in vocab.stoi for t in tokens):
            assert decode_matrix(enc, vocab, vocab.to_ids(tokens)) is None, tokens
    big = Vocabulary([enc], max_dim=100)
    assert parse_matrix_tokens(enc, ["V101", "V1"] + good[2:3], max_dim=100) is None
    assert decode_matrix(enc, big, [big.stoi["V2"], big.stoi["V2"]] + [len(big)] * 4) is None
    assert decode_matrix(enc, big, [-1, 0]) is None


def test_foreign_tokens_are_invalid(encodings):
    both = Vocabulary([encodings["P10"], encodings["P1000"]])
    p1000 = "V1 V1 + 314 E-2".split()
    assert decode_matrix(encodings["P10"], both, both.to_ids(p1000)) is None
    np.testing.assert_array_equal(decode_matrix(encodings["P1000"], both, both.to_ids(p1000)), [[3.14]])


def test_lenient_mantissa_but_bounded(encodings):
    p10 = encodings["P10"]
    assert p10.decode_float("+ 3 1 E0".split()) == 31.0  # fewer digits: still a number
    assert p10.decode_float("+ 3 1 4 1 E0".split()) is None  # more digits than the precision
    assert p10.decode_float("+ 3 1 4".split()) is None  # no exponent
    assert p10.parse("+ 3 1 4 E-2 + 0 E0".split(), 5) == (0.0, 8)


@SETTINGS
@given(data=st.data())
def test_decoding_random_ids_never_raises(encodings, vocabs, data):
    name = data.draw(st.sampled_from(ENCODINGS))
    enc, vocab = encodings[name], vocabs[name]
    ids = data.draw(st.lists(st.integers(-3, len(vocab) + 3), max_size=30))
    assert decode_matrix(enc, vocab, ids) is None or decode_matrix(enc, vocab, ids).ndim == 2


@SETTINGS
@given(data=st.data())
def test_decoding_token_soup(encodings, vocabs, data):
    """Shuffled valid pieces: decodes (to what the tokens say) or gives None; never raises."""
    name = data.draw(st.sampled_from(ENCODINGS))
    enc, vocab = encodings[name], vocabs[name]
    pieces = st.sampled_from(vocab.itos[:10] + enc.tokens[:40] + enc.tokens[-40:] + ["V1", "V2", "V3"])
    rows, cols = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    soup = [f"V{rows}", f"V{cols}"] + data.draw(st.lists(pieces, max_size=3 * rows * cols + 3))
    result = decode_matrix(enc, vocab, vocab.to_ids(soup))
    assert result is None or result.shape == (rows, cols)
    if result is not None:
        assert np.array_equal(parse_matrix_tokens(enc, soup), result)


garbage = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.floats(),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=3), st.none(), st.booleans()), max_size=8),
    st.builds(lambda n: np.zeros((n, 2)), st.integers(0, 3)),
    st.builds(lambda n: np.arange(n, dtype=float), st.integers(0, 5)),
)


@SETTINGS
@given(ids=garbage)
def test_decoding_garbage_never_raises(encodings, vocabs, ids):
    for name in ENCODINGS:
        result = decode_matrix(encodings[name], vocabs[name], ids)
        assert result is None or (isinstance(result, np.ndarray) and result.ndim == 2)


@SETTINGS
@given(tokens=st.lists(st.one_of(st.text(max_size=6), st.sampled_from(["V1", "+", "-", "E0", "0", "N0e0", "N0"]))))
def test_parsing_random_strings_never_raises(encodings, tokens):
    for enc in encodings.values():
        parse_matrix_tokens(enc, tokens)
        enc.decode_float(tokens)


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("name", ENCODINGS)
def test_encode_matrices_matches_per_matrix(encodings, vocabs, name):
    enc, vocab = encodings[name], vocabs[name]
    rng = np.random.default_rng(2)
    mats = rng.uniform(-10, 10, (40, 3, 2))
    mats[rng.random(mats.shape) < 0.3] = 0.0  # P10/P1000 zeros are shorter
    seqs = encode_matrices(enc, vocab, mats)
    assert seqs.ids.dtype == np.int64 and seqs.ids.shape == (40, seqs.lengths.max())
    for m, row, n in zip(mats, seqs.ids, seqs.lengths):
        assert vocab.to_strings(row[:n]) == matrix_tokens(enc, m)
        assert (row[n:] == vocab.pad_id).all()
        np.testing.assert_array_equal(decode_matrix(enc, vocab, row[:n]), enc.round(m))


def test_encode_matrices_edge_shapes(encodings, vocabs):
    enc, vocab = encodings["P10"], vocabs["P10"]
    empty = encode_matrices(enc, vocab, np.zeros((0, 2, 2)))
    assert empty.ids.shape[0] == 0 and empty.lengths.shape == (0,)
    zeros = encode_matrices(enc, vocab, np.zeros((2, 4, 1)))
    assert vocab.to_strings(zeros.ids[0]) == "V4 V1 + 0 E0 + 0 E0 + 0 E0 + 0 E0".split()
    with pytest.raises(ValueError):
        encode_matrices(enc, vocab, np.zeros((1, 101, 1)))


def test_concat_sequences():
    a = Sequences(ids=np.array([[5, 6, 0], [7, 0, 0]]), lengths=np.array([2, 1]))
    b = Sequences(ids=np.array([[8, 0], [9, 10]]), lengths=np.array([1, 2]))
    joined = concat_sequences([a, b], pad_id=0)
    np.testing.assert_array_equal(joined.ids, [[5, 6, 8], [7, 9, 10]])
    np.testing.assert_array_equal(joined.lengths, [3, 3])
    c = Sequences(ids=np.array([[1], [0]]), lengths=np.array([1, 0]))
    np.testing.assert_array_equal(concat_sequences([c, a], pad_id=0).ids, [[1, 5, 6], [7, 0, 0]])


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_sizes(encodings):
    # The reference (LAWT) reports 311, 1,301, 2,302 and 29,101 tokens with 100 dimension tokens:
    # those counts are V1..V100 plus the encoder's own symbols. Ours differ only by what is counted
    # or never emitted: +3 for <pad>/<bos>/<eos>; P10 and P1000 +2 for the "+"/"-" sign tokens (in
    # the reference they sit among its 27 extra special and "common" words); B1999 -1 net, because
    # we list N-999..N999 while the reference also lists N-1000 and N1000, which it never writes.
    # FP15 has exactly the reference's 29,001 number tokens (NaN and -NaN included).
    sizes = {name: len(Vocabulary([e], max_dim=100)) for name, e in encodings.items()}
    assert sizes == {"P10": 316, "P1000": 1306, "B1999": 2303, "FP15": 29104}
    shared = Vocabulary([encodings["P10"], encodings["P1000"]])
    assert len(shared) == 1306  # P10's tokens are all P1000 tokens


def test_vocabulary_ids_and_round_trip(encodings):
    chosen = [encodings["FP15"], encodings["P1000"], encodings["P10"]]
    vocab = Vocabulary(chosen, max_dim=7, tasks=["transpose", "eigenvalues"])
    assert len(set(vocab.itos)) == len(vocab) and all(vocab.stoi[t] == i for i, t in enumerate(vocab.itos))
    assert vocab.itos[:5] == ["<pad>", "<bos>", "<eos>", "<transpose>", "<eigenvalues>"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2)
    assert vocab.itos[vocab.dim_id(7)] == "V7" and vocab.itos[vocab.task_id("eigenvalues")] == "<eigenvalues>"
    rebuilt = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert rebuilt == vocab and rebuilt.itos == vocab.itos
    for enc in (encodings["P10"], encodings["FP15"]):
        table = vocab.table(enc)
        assert table.dtype == np.int64 and [vocab.itos[i] for i in table] == enc.tokens
    with pytest.raises(ValueError):
        vocab.dim_id(8)
    with pytest.raises(ValueError):
        vocab.task_id("inverse")


def test_unknown_tokens(encodings):
    vocab = Vocabulary([encodings["P10"]])
    with pytest.raises(UnknownTokenError, match="'N314'") as caught:
        vocab.to_ids(["V1", "N314"])
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)
    with pytest.raises(ValueError):
        vocab.table(make_encoding("P1000"))
    with pytest.raises(ValueError):
        vocab.to_strings([len(vocab)])
    with pytest.raises(ValueError):
        Vocabulary([encodings["P10"]], tasks=["a", "a"])
