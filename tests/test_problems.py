"""Charton problems: targets, token layout, verification, sampling rules, configs, example files."""

import json

import numpy as np
import pytest
import scipy.linalg

from linalgformer.errors import UserError
from linalgformer.tokens import encode_matrices
from linalgformer.problems.charton import (
    LAWS,
    PROBLEMS,
    ProblemConfig,
    make_problem,
    read_examples,
    write_examples,
)

MATRIX_PROBLEMS = [p for p in PROBLEMS if p != "cotraining"]


def problem(name: str, **kw):
    kw.setdefault("dim", 4)
    return make_problem(ProblemConfig(name=name, **kw))


def draw(name: str, count: int = 40, seed: int = 0, **kw):
    p = problem(name, **kw)
    return p, p.sample(np.random.default_rng(seed), count)


def output_ids(p, matrix: np.ndarray) -> list[int]:
    seq = encode_matrices(p.codecs.output, p.vocab, np.asarray(matrix, dtype=float)[None])
    return seq.ids[0, : seq.lengths[0]].tolist()


def target_ids(p, examples) -> list[list[int]]:
    _, tgt = p.encode(examples)
    return [tgt.ids[i, : tgt.lengths[i]].tolist() for i in range(len(examples))]


def numpy_answer(name: str, x: np.ndarray) -> np.ndarray:
    """The answer written independently of the problem code (scipy where it has it)."""
    half = x.shape[1] // 2
    if name == "transpose":
        return x.T
    if name == "matrix_sum":
        return x[:, :half] + x[:, half:]
    if name == "matrix_vector":
        return np.einsum("ji,j->i", x[:, :-1], x[:, -1])[:, None]
    if name == "matrix_product":
        return np.einsum("ki,kj->ij", x[:, :half], x[:, half:])
    if name == "eigenvalues":
        return scipy.linalg.eigvalsh(x)[::-1, None]
    if name in ("invert_matrix", "syminverse"):
        return scipy.linalg.inv(x)
    if name == "singularvalues":
        return scipy.linalg.svdvals(x)[:, None]
    raise KeyError(name)


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize("name", ["transpose", "matrix_sum", "matrix_vector", "matrix_product",
                                  "eigenvalues", "invert_matrix", "syminverse", "singularvalues"])
def test_unique_targets_equal_scipy(name):
    p, ex = draw(name, rectangular=name not in ("eigenvalues", "invert_matrix", "syminverse"),
                 min_dim=2, max_dim=5)
    for x, y in zip(ex.inputs, ex.targets):
        assert np.allclose(y, numpy_answer(name, x), rtol=1e-9, atol=1e-9)
    assert all(np.allclose(a, y) for a, y in zip(p.reference(ex), ex.targets))


def test_eigenvectors_target_is_eigenvalues_then_orthonormal_eigenvectors():
    _, ex = draw("eigenvectors")
    for x, y in zip(ex.inputs, ex.targets):
        values, q = y[0], y[1:]
        assert y.shape == (5, 4)
        assert np.allclose(values, scipy.linalg.eigvalsh(x)[::-1])
        assert np.allclose(x @ q, q * values, atol=1e-9)
        assert np.allclose(q.T @ q, np.eye(4), atol=1e-12)
        assert np.all(q[np.abs(q).argmax(axis=0), range(4)] > 0)  # fixed sign


def test_singularvectors_target_is_sigma_u_v():
    _, ex = draw("singularvectors", rectangular=True, min_dim=2, max_dim=5)
    shapes = set()
    for x, y in zip(ex.inputs, ex.targets):
        r, c = x.shape
        k = min(r, c)
        shapes.add((r, c))
        assert y.shape == (1 + r + c, k)
        sigma, u, v = y[0], y[1:1 + r], y[1 + r:]
        assert np.allclose(sigma, scipy.linalg.svdvals(x))
        assert np.allclose(u * sigma @ v.T, x, atol=1e-9)
    assert len(shapes) > 3


def test_inputs_are_what_the_tokens_say():
    for encoding in ("P10", "P1000", "B1999", "FP15"):
        p, ex = draw("eigenvalues", 5, encoding=encoding)
        assert all(np.array_equal(x, p.codecs.input.round(x)) for x in ex.inputs)
        assert all(np.array_equal(x, x.T) for x in ex.inputs)


def test_token_layout_of_a_worked_example():
    p = problem("eigenvalues", dim=2)
    ex = p.examples_from_matrix(np.array([[1.0, 2.0], [2.0, 3.0]]))
    src, tgt = p.encode(ex)
    assert " ".join(p.vocab.to_strings(src.ids[0, : src.lengths[0]])) == \
        "V2 V2 + 100 E-2 + 200 E-2 + 200 E-2 + 300 E-2"
    assert " ".join(p.vocab.to_strings(tgt.ids[0, : tgt.lengths[0]])) == "V2 V1 + 424 E-2 - 236 E-3"


def test_matrix_vector_and_product_operand_layout():
    p = problem("matrix_vector", dim=2)
    ex = p.examples_from_matrix(np.array([[1.0, 2.0, 5.0], [3.0, 4.0, 6.0]]))  # [M | v]
    assert np.allclose(ex.targets[0], [[1 * 5 + 3 * 6], [2 * 5 + 4 * 6]])  # M^T v
    p = problem("matrix_product", dim=2)
    ex = p.examples_from_matrix(np.array([[1.0, 2.0, 5.0, 6.0], [3.0, 4.0, 7.0, 8.0]]))  # [A | B]
    a, b = np.array([[1, 2], [3, 4]]), np.array([[5, 6], [7, 8]])
    assert np.allclose(ex.targets[0], a.T @ b)


# ----------------------------------------------------------------------------- verification


@pytest.mark.parametrize("name", MATRIX_PROBLEMS)
def test_exact_answers_score_exact_and_close(name):
    p, ex = draw(name, 30)
    scores = p.score(ex, target_ids(p, ex))
    assert scores.exact.all() and scores.valid.all() and scores.correct[0.005].all()
    # the d1 of the rounded target itself: rounding A^-1 to 3 digits costs ~kappa * 5e-4 in AP - I
    assert np.median(scores.d1) < (0.02 if name in ("invert_matrix", "syminverse") else 0.005)


@pytest.mark.parametrize("name", MATRIX_PROBLEMS)
def test_ten_percent_perturbed_answers_are_wrong(name):
    p, ex = draw(name, 30)
    rng = np.random.default_rng(1)
    preds = [output_ids(p, y * (1 + 0.1 * rng.choice([-1.0, 1.0], size=y.shape))) for y in ex.targets]
    scores = p.score(ex, preds)
    assert scores.valid.all() and not scores.exact.any()
    assert not scores.correct[0.05].any(), scores.d1


@pytest.mark.parametrize("name", MATRIX_PROBLEMS)
def test_slightly_off_answers_pass_at_five_percent(name):
    p, ex = draw(name, 30)
    rng = np.random.default_rng(2)
    preds = [output_ids(p, y * (1 + 0.002 * rng.standard_normal(y.shape))) for y in ex.targets]
    scores = p.score(ex, preds)
    if name in ("invert_matrix", "syminverse"):  # AP - I amplifies errors by the condition number
        well_conditioned = np.array([np.linalg.cond(x) < 30 for x in ex.inputs])
        assert well_conditioned.sum() >= 3
        assert (scores.d1[well_conditioned] < 0.05).all()
    else:
        assert (scores.d1 < 0.05).all()


def test_eigenvector_verifier_accepts_any_sign_and_order():
    p, ex = draw("eigenvectors", 20)
    rng = np.random.default_rng(3)
    preds = []
    for y in ex.targets:
        order = rng.permutation(y.shape[1])
        signs = np.ones_like(y)
        signs[1:] = rng.choice([-1.0, 1.0], y.shape[1])  # flip whole eigenvectors (columns of Q)
        preds.append(output_ids(p, (y * signs)[:, order]))
    scores = p.score(ex, preds)
    assert not scores.exact.all() and scores.correct[0.01].all()


def test_eigenvector_verifier_refuses_scaled_or_zero_vectors():
    p, ex = draw("eigenvectors", 10)
    scaled = [output_ids(p, np.vstack([4 * y[0], 2 * y[1:]])) for y in ex.targets]
    zero = [output_ids(p, np.zeros_like(y)) for y in ex.targets]
    assert not p.score(ex, scaled).correct[0.05].any()
    assert not p.score(ex, zero).correct[0.05].any()


def test_singular_vector_verifier_accepts_consistent_signs_and_order():
    p, ex = draw("singularvectors", 20, rectangular=True, min_dim=2, max_dim=4)
    rng = np.random.default_rng(4)
    preds = []
    for x, y in zip(ex.inputs, ex.targets):
        k = y.shape[1]
        order, flips = rng.permutation(k), rng.choice([-1.0, 1.0], k)
        signs = np.ones_like(y)
        signs[1:] = flips  # flip u_j and v_j together
        preds.append(output_ids(p, (y * signs)[:, order]))
    assert p.score(ex, preds).correct[0.01].all()
    # flipping only U's columns is not an SVD any more
    bad = []
    for x, y in zip(ex.inputs, ex.targets):
        z = y.copy()
        z[1:1 + x.shape[0]] *= -1
        bad.append(output_ids(p, z))
    assert not p.score(ex, bad).correct[0.05].any()


def test_singular_values_are_scored_as_a_vector():
    p, ex = draw("singularvalues", 20)
    good = p.score(ex, [output_ids(p, y * 1.004) for y in ex.targets])
    assert good.correct[0.01].all() and (good.d1 > 0).all()
    reversed_order = p.score(ex, [output_ids(p, y[::-1]) for y in ex.targets])
    assert not reversed_order.correct[0.05].any()


def test_invalid_predictions_are_counted_and_never_raise():
    p, ex = draw("eigenvalues", 6)
    wrong_shape = output_ids(p, np.ones((3, 1)))
    rng = np.random.default_rng(5)
    garbage = rng.integers(0, len(p.vocab), size=12).tolist()
    preds = [[], wrong_shape, garbage, [10**9, -3], target_ids(p, ex)[4][:-1], target_ids(p, ex)[5]]
    scores = p.score(ex, preds)
    assert scores.valid.tolist() == [False] * 5 + [True]
    assert np.isinf(scores.d1[:5]).all() and np.isinf(scores.d2[:5]).all() and np.isinf(scores.dmax[:5]).all()
    assert scores.exact.tolist() == [False] * 5 + [True]


def test_random_token_soup_never_raises():
    p, ex = draw("cotraining", 50)
    rng = np.random.default_rng(6)
    preds = [rng.integers(0, len(p.vocab), size=rng.integers(0, 30)).tolist() for _ in range(50)]
    scores = p.score(ex, preds)
    assert len(scores.valid) == 50


def test_distances_match_their_definitions():
    p, ex = draw("matrix_sum", 1)
    y = ex.targets[0]
    pred = p.codecs.output.round(y + 0.01 * np.sign(y))
    s = p.score(ex, [output_ids(p, pred)])
    m = pred - y
    assert s.d1[0] == pytest.approx(np.abs(m).sum() / np.abs(y).sum())
    assert s.d2[0] == pytest.approx(np.linalg.norm(m) / np.linalg.norm(y))
    assert s.dmax[0] == pytest.approx(np.abs(m).max() / np.abs(y).max())


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("name", PROBLEMS)
def test_seeds_reproduce_exactly(name):
    p = problem(name, min_dim=2, max_dim=4)
    a, b = (p.encode(p.sample(np.random.default_rng(11), 30)) for _ in range(2))
    c = p.encode(p.sample(np.random.default_rng(12), 30))
    assert np.array_equal(a[0].ids, b[0].ids) and np.array_equal(a[1].ids, b[1].ids)
    assert not np.array_equal(a[0].ids, c[0].ids)


def test_fp15_out_of_range_answers_are_not_generated():
    p, ex = draw("matrix_product", 200, encoding="FP15", bound=4e4, dim=2)
    assert len(ex) == 200
    assert max(np.abs(y).max() for y in ex.targets) < 9.995e8
    # without the filter a good share of these products overflow FP15
    raw = np.random.default_rng(0).uniform(-4e4, 4e4, size=(2000, 2, 4))
    overflow = np.abs(np.einsum("bki,bkj->bij", raw[:, :, :2], raw[:, :, 2:])).max(axis=(1, 2)) > 9.995e8
    assert overflow.mean() > 0.3
    _, tgt = p.encode(ex)
    assert not ({"NaN", "-NaN"} & set(p.vocab.to_strings(tgt.ids.reshape(-1))))


def test_hopeless_configs_stop_with_a_user_error():
    p = problem("matrix_product", encoding="FP15", bound=1e8, dim=3)
    with pytest.raises(UserError, match="FP15"):
        p.sample(np.random.default_rng(0), 5)


def test_ill_conditioned_inverses_are_redrawn():
    _, ex = draw("syminverse", 100, distribution="marcenko", dim=5)
    residual = [np.abs(x @ y - np.eye(5)).max() for x, y in zip(ex.inputs, ex.targets)]
    assert max(residual) <= 1e-10


def test_mixed_sizes_pad_and_report_dims():
    p, ex = draw("transpose", 200, min_dim=2, max_dim=6, rectangular=True)
    src, tgt = p.encode(ex)
    assert set(ex.dims) == {2, 3, 4, 5, 6}
    assert {x.shape[1] for x in ex.inputs} == {2, 3, 4, 5, 6}
    assert np.array_equal(src.lengths, [2 + 3 * x.size for x in ex.inputs])
    assert tgt.ids.shape[1] == tgt.lengths.max() == p.max_output_length(6)
    assert (src.ids[np.arange(src.ids.shape[1]) >= src.lengths[:, None]] == p.vocab.pad_id).all()


def test_law_mixtures_are_recorded_per_example():
    _, ex = draw("eigenvalues", 300, distribution="laplace:1,positive:1,marcenko:2")
    assert set(ex.laws) == {"laplace", "positive", "marcenko"}
    for x, law in zip(ex.inputs, ex.laws):
        if law in ("positive", "marcenko"):
            assert np.linalg.eigvalsh(x).min() > -0.05  # PSD up to input rounding
    assert ex.laws.count("marcenko") > 100


def test_gaussian_coefficients_reach_beyond_the_bound():
    _, ex = draw("transpose", 300, coefficients="gaussian")
    assert max(np.abs(x).max() for x in ex.inputs) > 10.0


def test_noisy_inputs_keep_the_clean_answers_and_symmetry():
    p, ex = draw("eigenvectors", 30, noise=0.05)
    clean = p.reference(ex)  # numpy's answer for the noisy input
    assert all(np.array_equal(x, x.T) for x in ex.inputs)
    assert any(not np.allclose(c[0], y[0]) for c, y in zip(clean, ex.targets))
    scores = p.score(ex, target_ids(p, ex))
    assert scores.exact.all() and np.median(scores.d1) < 0.005
    q, ex2 = draw("invert_matrix", 30, noise=0.05)
    assert np.median(q.score(ex2, target_ids(q, ex2)).d1) < 0.01


def test_cotraining_prefixes_the_task_token_and_scores_per_task():
    p, ex = draw("cotraining", 200, tasks="transpose,eigenvalues,invert_matrix")
    assert set(ex.tasks) == {"transpose", "eigenvalues", "invert_matrix"}
    src, tgt = p.encode(ex)
    firsts = p.vocab.to_strings(src.ids[:, 0])
    assert firsts == [f"<{t}>" for t in ex.tasks]
    assert p.score(ex, target_ids(p, ex)).exact.all()
    assert p.max_output_length(4) == problem("invert_matrix").max_output_length(4)


def test_examples_from_a_user_matrix():
    p = problem("eigenvalues")
    m = np.array([[2.0, 1.0], [1.0, 2.0]])
    ex = p.examples_from_matrix(m)
    assert np.allclose(ex.targets[0].ravel(), [3.0, 1.0]) and ex.laws == ["user"] and ex.dims == [2]
    bad = [(np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"), (np.ones((2, 3)), "square"),
           (np.array([[np.nan]]), "NaN"), (np.ones(3), "2-D"), (np.ones((101, 101)), "V100")]
    for matrix, word in bad:
        with pytest.raises(UserError, match=word):
            p.examples_from_matrix(matrix)
    with pytest.raises(UserError, match="even number"):
        problem("matrix_sum").examples_from_matrix(np.ones((2, 3)))
    with pytest.raises(UserError, match="singular"):
        problem("invert_matrix").examples_from_matrix(np.ones((2, 2)))
    with pytest.raises(UserError, match="needs a task"):
        problem("cotraining").examples_from_matrix(m)
    assert problem("cotraining").examples_from_matrix(m, task="eigenvalues").tasks == ["eigenvalues"]


@pytest.mark.parametrize("name", MATRIX_PROBLEMS)
def test_max_output_length_bounds_the_targets(name):
    p, ex = draw(name, 10, min_dim=3, max_dim=5)
    _, tgt = p.encode(ex)
    assert tgt.lengths.max() <= p.max_output_length(5)
    assert p.describe().startswith(name)


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("change, words", [
    ({"name": "permanent"}, "unknown problem"),
    ({"encoding": "P7"}, "encoding must be one of"),
    ({"output_encoding": "FP16"}, "output_encoding must be one of"),
    ({"name": "eigenvalues", "distribution": "cauchy"}, "unknown law"),
    ({"dim": 0}, "dim must be an integer >= 1"),
    ({"min_dim": 6, "max_dim": 3}, "larger than"),
    ({"dim": 101}, "max_vocab_dim"),
    ({"name": "matrix_sum", "dim": 60}, "V120"),
    ({"name": "transpose", "distribution": "laplace"}, "symmetric problem"),
    ({"name": "eigenvalues", "rectangular": True}, "square"),
    ({"tasks": "transpose"}, "cotraining only"),
    ({"name": "cotraining", "tasks": "transpose,fft"}, "unknown cotraining task"),
    ({"name": "cotraining", "tasks": "transpose,transpose"}, "twice"),
    ({"name": "cotraining", "tasks": "transpose", "distribution": "laplace"}, "symmetric task"),
    ({"coefficients": "cauchy"}, "coefficients must be one of"),
    ({"bound": -1.0}, "bound must be a number > 0"),
    ({"noise": -0.1}, "noise must be a number >= 0"),
    ({"precision": 0}, "precision must be an integer >= 1"),
    ({"encoding": "FP15", "max_exponent": 3}, "max_exponent"),
])
def test_bad_configs_are_user_errors(change, words):
    with pytest.raises(UserError, match=words):
        make_problem(ProblemConfig(**change))


def test_every_law_and_problem_builds():
    for law in LAWS:
        assert problem("syminverse", distribution=law).sampling.laws.laws == (law,)
    assert {problem(n).name for n in PROBLEMS} == set(PROBLEMS)


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_example_files_round_trip(tmp_path, fmt):
    p, ex = draw("cotraining", 25, min_dim=2, max_dim=4)
    path = tmp_path / f"data.{fmt}"
    assert write_examples(path, p, ex, fmt=fmt) == 25
    src, tgt = read_examples(path, p)
    want_src, want_tgt = p.encode(ex)
    assert np.array_equal(src.ids, want_src.ids) and np.array_equal(src.lengths, want_src.lengths)
    assert np.array_equal(tgt.ids, want_tgt.ids) and np.array_equal(tgt.lengths, want_tgt.lengths)
    first = path.read_text().splitlines()[0]
    if fmt == "text":
        assert first.count("\t") == 1 and "  " not in first
    else:
        record = json.loads(first)
        assert np.allclose(record["input_matrix"], ex.inputs[0]) and record["task"] == ex.tasks[0]
    assert [f.name for f in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("line, words", [
    ("V2 V1 + 100 E0 + 200 E0", "not INPUT<TAB>OUTPUT"),
    ("V2 V1 + 100 E0 + 200 E0\tV2 V1 + 1OO E0 + 200 E0", "unknown token '1OO'"),
    ("V2 V1 + 100 E0\tV2 V1 + 100 E0 + 200 E0", "input is not a matrix"),
    ('{"input": "V1 V1 + 1 E0"}', "needs \"input\" and \"output\""),
    ("{not json", "not valid JSON"),
])
def test_malformed_files_name_file_and_line(tmp_path, line, words):
    p = problem("eigenvalues", dim=2)
    path = tmp_path / "bad.txt"
    good = "V2 V2 + 100 E0 + 200 E0 + 200 E0 + 300 E0\tV2 V1 + 424 E-2 - 236 E-3"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(UserError, match=words) as err:
        read_examples(path, p)
    assert "bad.txt line 3" in str(err.value)


def test_unreadable_empty_and_huge_files_are_user_errors(tmp_path):
    p = problem("transpose", dim=2)
    with pytest.raises(UserError, match="cannot read"):
        read_examples(tmp_path / "missing.txt", p)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="no examples"):
        read_examples(tmp_path / "empty.txt", p)
    (tmp_path / "big.txt").write_text("x" * 100)
    with pytest.raises(UserError, match="GiB"):
        read_examples(tmp_path / "big.txt", p, max_bytes=10)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="UTF-8"):
        read_examples(tmp_path / "binary.txt", p)


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    p, ex = draw("transpose", 5)
    path = tmp_path / "out.txt"
    write_examples(path, p, ex)
    before = path.read_text()
    calls = []

    def failing(ids):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk on fire")
        return [p.vocab.itos[i] for i in ids]

    monkeypatch.setattr(p.vocab, "to_strings", failing)
    with pytest.raises(RuntimeError):
        write_examples(path, p, ex)
    assert path.read_text() == before  # the old file is untouched
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(UserError, match="format"):
        write_examples(tmp_path / "x.csv", p, ex, fmt="csv")
