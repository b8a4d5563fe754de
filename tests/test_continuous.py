"""The continuous encoding: numbers by value on either side, scored by the problems' own verifiers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linalgformer as lf
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.experiments.charton import answer_tensors, from_units
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.models.number_values import number_features
from linalgformer.problems.charton import ProblemConfig, make_problem
from linalgformer.tokens import (
    Vocabulary,
    encode_matrices,
    make_encoding,
    matrix_tokens,
    parse_matrix_tokens,
)
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run
from tests.helpers import assert_resumes_exactly

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NINE = ("transpose", "matrix_sum", "matrix_vector", "matrix_product", "eigenvalues", "eigenvectors",
        "invert_matrix", "singularvalues", "singularvectors")
MAGNITUDES = st.floats(min_value=-6, max_value=6).map(lambda e: 10.0 ** e)
ENTRIES = st.tuples(st.sampled_from((-1.0, 1.0)), MAGNITUDES).map(lambda p: p[0] * p[1])


def continuous_config(name="matrix_sum", dim=2, inp="continuous", out="continuous", units="entries", **train):
    base = {"max_steps": 12, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "eval_every": 6,
            "log_every": 3, "checkpoint_every": 6, "valid_count": 16, "seed": 0}
    base.update(train)
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": name, "dim": dim, "encoding": "P1000", "input_encoding": inp, "output_encoding": out},
        "model": {"enc_layers": 1, "dec_layers": 1, "width": 32, "heads": 2, "max_len": 128,
                  "positions": "matrix", "position_bias": True, "input_units": units},
        "train": base,
    })


# ----------------------------------------------------------------------------- the encoding


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_values_travel_exactly_beside_one_token_per_entry(rows, cols, data):
    mats = np.array(data.draw(st.lists(ENTRIES, min_size=2 * rows * cols, max_size=2 * rows * cols))).reshape(2, rows, cols)
    encoding = make_encoding("continuous")
    vocab = Vocabulary([encoding])
    seq = encode_matrices(encoding, vocab, mats)
    assert seq.ids.shape == (2, 2 + rows * cols) and (seq.lengths == 2 + rows * cols).all()
    assert set(vocab.to_strings(seq.ids[0, 2:])) == {"<num>"}
    np.testing.assert_array_equal(seq.values[:, 2:], mats.reshape(2, -1))  # no rounding at all
    np.testing.assert_array_equal(encoding.round(mats), mats)


@SETTINGS
@given(st.lists(ENTRIES, min_size=1, max_size=12))
def test_text_round_trips_exactly_across_magnitudes_and_signs(entries):
    encoding = make_encoding("continuous")
    m = np.array(entries).reshape(len(entries), 1)
    assert np.array_equal(parse_matrix_tokens(encoding, matrix_tokens(encoding, m)), m)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e301])
def test_non_finite_numbers_do_not_fit(bad):
    encoding = make_encoding("continuous")
    assert not encoding.fits(np.array([1.0, bad]))[1]
    with pytest.raises(ValueError):
        encoding.encode_float(bad)
    assert parse_matrix_tokens(encoding, ["V1", "V1", str(bad)]) is None


def test_a_users_non_finite_matrix_is_refused_in_one_sentence():
    problem = make_problem(ProblemConfig(name="eigenvalues", dim=2, encoding="continuous"))
    with pytest.raises(UserError, match="infinite or NaN"):
        problem.examples_from_matrix(np.array([[1.0, np.nan], [np.nan, 1.0]]))


def test_features_tell_magnitudes_apart_from_1e_minus_300_to_1e300():
    values = torch.tensor([[0.0, 1e-300, 1e-6, 3.14, -3.14, 1e6, 1e300]], dtype=torch.float64)
    features = number_features(values, "absolute")
    assert torch.isfinite(features).all()
    rows = {tuple(np.round(r, 5)) for r in features[0].numpy()}
    assert len(rows) == values.shape[1]  # every value has its own features
    assert features[0, 3, 0] == 1 and features[0, 4, 0] == -1  # the sign
    small = number_features(torch.tensor([[1e-300, 1e300, 0.0]], dtype=torch.float64))
    assert not torch.equal(small[0, 0], small[0, 2])  # 1e-600 below the largest is not an exact zero


@pytest.mark.parametrize("scale", [1e-6, 0.37, 1e6])
def test_relative_features_do_not_see_the_inputs_scale(scale):
    values = torch.tensor([[0.0, -2.5, 1e-4, 7.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(number_features(scale * values), number_features(values), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(number_features(scale * values, "absolute"), number_features(values, "absolute"))


# ----------------------------------------------------------------------------- answers and units


@pytest.mark.parametrize("name", NINE + ("determinant", "syminverse"))
def test_degrees_are_the_answers_homogeneity(name):
    """Scaling the input by s scales each answer entry by s**d (what read-out units rely on)."""
    problem = make_problem(ProblemConfig(name=name, dim=3, encoding="continuous"))
    examples = problem.sample(np.random.default_rng(0), 8)
    inputs = np.stack(examples.inputs)
    for s in (1e-3, 7.0):
        scaled, _ = problem.solve(s * inputs)
        degrees = problem.output_degrees(3, 3)
        np.testing.assert_allclose(scaled, np.stack(examples.targets) * s ** degrees, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", NINE)
def test_units_round_trip_and_the_verifiers_score_continuous_answers(name):
    """An exact answer is correct at 0.5%, a 10%-off one is not at 5%, as for the token encodings."""
    problem = make_problem(ProblemConfig(name=name, dim=3, min_dim=2, max_dim=3, encoding="continuous"))
    examples = problem.sample(np.random.default_rng(1), 16)
    tensors = answer_tensors(problem, examples)
    back = from_units(problem, examples, tensors["tgt_values"].double().numpy())
    for got, target in zip(back, examples.targets):
        np.testing.assert_allclose(got, target, rtol=1e-5, atol=1e-6)
    exact = problem.score_matrices(examples, [t.copy() for t in examples.targets])
    assert exact.correct[0.005].all()
    off = problem.score_matrices(examples, [1.1 * t for t in examples.targets])
    assert not off.correct[0.05].any()
    wrong_shape = problem.score_matrices(examples, [t[:1] for t in examples.targets])
    assert not wrong_shape.valid.any()


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("inp, out, units", [("continuous", "continuous", "entries"), ("FP15", "continuous", "entries"),
                                             ("continuous", "P1000", "entries"), ("continuous", "continuous", "rows"),
                                             ("continuous", "P1000", "rows")])
def test_every_pairing_of_sides_trains_and_scores(inp, out, units, tmp_path):
    config = continuous_config("eigenvalues", 2, inp, out, units, max_steps=6)
    train_run(config, tmp_path / "run", progress=False)
    evals = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "eval"]
    assert evals and 0.0 <= evals[-1]["acc@0.05"] <= 1.0 and evals[-1]["count"] == 16


@pytest.mark.parametrize("name, units", [("matrix_sum", "entries"), ("matrix_vector", "rows"), ("eigenvectors", "rows")])
def test_padding_slots_do_not_change_an_answer(name, units):
    """Mixed sizes in one batch: padded entries, rows and answer slots change no answer."""
    exp = build_experiment(continuous_config(name, 3, units=units, max_steps=1))
    model = exp.build_model().eval()
    problem = make_problem(dataclasses.replace(exp.config.problem, min_dim=2, max_dim=3))
    examples = problem.sample(np.random.default_rng(0), 12)
    together = exp.predict_values(model, problem, examples, torch.device("cpu"))
    for i in range(len(examples)):
        alone = exp.predict_values(model, problem, examples_at(examples, [i]), torch.device("cpu"))[0]
        np.testing.assert_allclose(alone, together[i], rtol=1e-4, atol=1e-6)


def examples_at(examples, rows):
    from linalgformer.problems.charton.matrix_problem import subset
    return subset(examples, np.array(rows))


def test_a_continuous_run_resumes_exactly(tmp_path):
    assert_resumes_exactly(continuous_config, tmp_path, steps=12, cut=6)


@pytest.mark.parametrize("change, message", [
    ({"model": {"positions": "sinusoidal", "position_bias": False}}, "positions=matrix"),
    ({"problem": {"name": "cotraining"}}, "cotraining"),
    ({"train": {"data_file": "x.txt"}}, "data_file"),
])
def test_unfit_settings_are_refused_in_one_sentence(change, message):
    config = continuous_config()
    for section, fields in change.items():
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **fields)})
    with pytest.raises(UserError, match=message):
        build_experiment(config).build_model()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("continuous") / "run"
    train_run(continuous_config(max_steps=6), run, progress=False)
    return run


def test_predict_evaluate_and_generate_from_the_command_line(trained, tmp_path, capsys):
    assert main(["predict", str(trained), "--matrix", "1 2 3 4; 5 6 7 8", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert np.shape(answer["prediction"]) == (2, 2) and answer["reference"] == [[4.0, 6.0], [12.0, 14.0]]
    data = tmp_path / "sum.txt"
    assert main(["generate", "--problem", "matrix_sum", "--dim", "2", "--encoding", "continuous",
                 "--count", "5", "--out", str(data)]) == 0
    line = data.read_text().splitlines()[0]
    assert "<num>" not in line and line.startswith("V2 V4 ")
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 5


@pytest.mark.parametrize("args, message", [
    (["--matrix", "1 2 nan 4; 5 6 7 8"], "finite"),
    (["--matrix", "1 2 3; 4 5 6"], "takes a 2x4 input"),
    (["--matrix", "1 2 3 4; 5 6 7 8", "--beam", "3"], "beam"),
])
def test_bad_questions_get_one_sentence_and_status_2(trained, args, message, capsys):
    assert main(["predict", str(trained), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("name, units", [("matrix_vector", "entries"), ("invert_matrix", "rows"), ("eigenvectors", "entries")])
def test_a_continuous_model_is_equivariant_to_the_inputs_scale(name, units):
    """Scaling the input by c scales every answer entry by c**d: coefficients far outside the
    training range are answered as well as those inside it."""
    exp = build_experiment(continuous_config(name, 3, units=units, max_steps=1))
    model = exp.build_model().eval()
    examples = exp.problem.sample(np.random.default_rng(0), 8)
    base = exp.predict_values(model, exp.problem, examples, torch.device("cpu"))
    for c in (1e-4, 300.0):
        scaled = dataclasses.replace(examples, inputs=[c * x for x in examples.inputs],
                                     targets=[t * c ** exp.problem.output_degrees(3, 3) for t in examples.targets])
        got = exp.predict_values(model, exp.problem, scaled, torch.device("cpu"))
        for g, b in zip(got, base):
            np.testing.assert_allclose(g, b * c ** exp.problem.output_degrees(3, 3), rtol=1e-4, atol=1e-12)


def test_analyze_and_the_python_api_take_continuous_answers(trained, tmp_path, capsys):
    assert main(["analyze", str(trained), "--count", "20", "--out", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").is_file()
    model = lf.load(trained)
    answers = model.predict(np.ones((3, 2, 4)))
    assert answers.shape == (3, 2, 2) and np.isfinite(answers).all()
    assert 0.0 <= model.evaluate(count=10, bound=1000.0)["accuracy"] <= 1.0
