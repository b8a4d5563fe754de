"""`evaluate --data` (generate files and the reference code's export) and `analyze`, on bundled models."""

import json

import numpy as np
import pytest

import linalgformer as lf
from linalgformer.analysis import analyze_examples
from linalgformer.cli import main
from linalgformer.experiments.registry import build_experiment
from linalgformer.problems.charton import ProblemConfig, make_problem
from linalgformer.problems.charton.datafile import example_lines, read_test_examples

SEED, COUNT = 12345, 300


def reference_file(path, problem, examples):
    """The reference code's export: a line counter, a bar, INPUT<TAB>OUTPUT."""
    lines = example_lines(problem, examples, "text")
    path.write_text("".join(f"{i}|{line}\n" for i, line in enumerate(lines, start=1)))
    return path


def evaluate_json(args, capsys):
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_reference_file_scores_as_the_same_examples_generated_by_us(tmp_path, capsys):
    model = lf.load("eigenvalues-3x3")
    problem = model.experiment.problem
    examples = problem.sample(np.random.default_rng([SEED, 0]), COUNT)  # evaluate's own test set
    path = reference_file(tmp_path / "eig.txt", problem, examples)
    ours = evaluate_json(["eigenvalues-3x3", "--count", str(COUNT), "--seed", str(SEED)], capsys)
    theirs = evaluate_json(["eigenvalues-3x3", "--data", str(path)], capsys)
    assert theirs["accuracy"] == ours["accuracy"] and theirs["count"] == COUNT
    assert theirs["exact"] == ours["exact"] and 0.5 < ours["accuracy"]["0.01"] < 1.0  # not trivially equal
    assert list(theirs["by_law"]) == ["eig.txt"]


@pytest.mark.parametrize("encoding", ["P10", "P1000", "B1999", "FP15"])
def test_the_four_encodings_read_back_as_the_examples_written(encoding, tmp_path):
    problem = make_problem(ProblemConfig(name="eigenvectors", dim=3, encoding=encoding))
    examples = problem.sample(np.random.default_rng(4), 20)
    read = read_test_examples(reference_file(tmp_path / "x.txt", problem, examples), problem, (3, 3))
    np.testing.assert_array_equal(np.stack(read.inputs), np.stack(examples.inputs))
    np.testing.assert_allclose(np.stack(read.targets), np.stack(examples.targets), atol=1e-9)


@pytest.mark.parametrize("setting, bad_line, words", [
    ({}, "3|V3 V3 + 100 E-2\tV3 V1 + 100 E-2", "line 3: the input is not a matrix"),
    ({}, "3|only input tokens", "line 3 is not INPUT<TAB>OUTPUT"),
    ({}, "3|V3 V3 + banana\tV3 V1 + 100 E-2", "line 3: the input is not a matrix in any encoding"),
    ({"dim": 4}, None, "line 1: a 4x4 eigenvalues input, but this model was trained on 3x3"),
    ({"name": "syminverse"}, None, "line 1: its answer is not the eigenvalues of its input"),
])
def test_lines_that_do_not_fit_are_refused_with_their_number(setting, bad_line, words, tmp_path, capsys):
    config = ProblemConfig(**{"name": "eigenvalues", "dim": 3, "encoding": "P1000", **setting})
    problem = make_problem(config)
    path = reference_file(tmp_path / "f.txt", problem, problem.sample(np.random.default_rng(0), 4))
    if bad_line:
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:2] + [bad_line] + lines[3:]) + "\n")
    assert main(["evaluate", "eigenvalues-3x3", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_file_in_another_encoding_is_scored(tmp_path, capsys):
    """An FP15 file to a P1000 model: decoded, then read as the model reads its numbers."""
    problem = make_problem(ProblemConfig(name="eigenvalues", dim=3, encoding="FP15"))
    path = reference_file(tmp_path / "f.txt", problem, problem.sample(np.random.default_rng(0), 4))
    assert main(["evaluate", "eigenvalues-3x3", "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 4


def test_save_predictions_on_a_data_file(tmp_path, capsys):
    data = lf.generate("transpose", dim=3, count=40, seed=2)
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"input": x, "output": y}) + "\n"
                            for x, y in zip(data.input_tokens, data.output_tokens)))
    out = tmp_path / "preds.jsonl"
    assert main(["evaluate", "transpose-3x3", "--data", str(path), "--save-predictions", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == data.input_tokens and [r["target"] for r in rows] == data.output_tokens
    assert sum(r["correct@0.05"] for r in rows) >= 38
    with pytest.raises(lf.UserError, match="takes no --distribution"):
        lf.load("transpose-3x3").evaluate(data=path, distribution="laplace")


def test_analyze_prints_its_table_and_writes_its_plot(tmp_path, capsys):
    png = tmp_path / "a.png"
    assert main(["analyze", "eigenvalues-3x3", "--count", "100", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert all(group in out for group in ("input cond", "eig spread", "eig gap", "entry"))
    assert "answer cond" not in out  # eigenvalues are a vector: no condition number
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_accuracy_by_input_condition_number_is_the_direct_computation(tmp_path):
    model = lf.load("eigenvalues-3x3")
    analysis = model.analyze(200, distribution="laplace", bins=4)
    rows = model.evaluate(200, distribution="laplace", save_predictions=tmp_path / "p.jsonl")
    correct = np.array([json.loads(line)["correct@0.05"] for line in (tmp_path / "p.jsonl").read_text().splitlines()])
    problem = model.experiment.test_problems("laplace")[0][1]
    inputs = problem.sample(np.random.default_rng([12345, 0]), 200).inputs
    cond = np.array([np.linalg.svd(x, compute_uv=False) for x in inputs])
    cond = cond[:, 0] / cond[:, -1]
    worst = cond >= np.quantile(cond, 0.75)  # the last of 4 quantile bins
    row = [r for r in analysis.rows if r["group"] == "input cond"][-1]
    assert row["count"] == worst.sum() == 50
    assert row["acc@0.05"] == pytest.approx(correct[worst].mean())
    assert rows["accuracy"] == pytest.approx(correct.mean()) == pytest.approx(analysis.correct[0.05].mean())


def test_eigenvector_properties_are_told_apart():
    problem = make_problem(ProblemConfig(name="eigenvectors", dim=3, encoding="P1000"))
    examples = problem.sample(np.random.default_rng(5), 30)
    scaled = [np.vstack([t[:1], 2 * t[1:]]) for t in examples.targets]  # right eigenvalues, norms 2
    ids = problem.encode(type(examples)(examples.inputs, scaled, examples.laws, examples.dims))[1]
    preds = [ids.ids[i, : ids.lengths[i]].tolist() for i in range(len(examples))]
    rows = {r["bin"]: r["acc@0.05"] for r in analyze_examples(problem, examples, preds).rows if r["group"] == "property"}
    assert rows == {"eigenvalues": 1.0, "unit norms": 0.0, "orthogonality": 0.0, "Q^T M Q": 0.0}


@pytest.mark.parametrize("written, trained, words", [
    ({"problem": "transpose", "dim": 3}, {"problem": "matrix_sum", "dim": 3}, "even number of columns"),
    ({"problem": "eigenvalues", "dim": 3}, {"problem": "eigenvectors", "dim": 3}, "not the eigenvectors"),
    ({"problem": "matrix_vector", "dim": 3}, {"problem": "transpose", "dim": 4}, "not the transpose"),
])
def test_a_training_file_of_another_problem_is_refused_by_its_line(written, trained, words, tmp_path, capsys):
    data = tmp_path / "data.txt"
    assert main(["generate", "--problem", written["problem"], "--dim", str(written["dim"]), "--count", "20",
                 "--out", str(data)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--problem", trained["problem"], "--dim", str(trained["dim"]), "--out", str(run),
                 "--set", f"train.data_file={data}", "--max-steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and "line 1" in err and not run.exists()


def test_sign_agreement_tells_a_model_that_ignores_the_question_from_one_that_reads_it():
    problem = make_problem(ProblemConfig(name="matrix_vector", dim=3, encoding="P1000"))
    examples = problem.sample(np.random.default_rng(8), 200)

    def signs(answers):
        ids = problem.encode(type(examples)(examples.inputs, answers, examples.laws, examples.dims))[1]
        preds = [ids.ids[i, : ids.lengths[i]].tolist() for i in range(len(examples))]
        return analyze_examples(problem, examples, preds)
    right = signs(examples.targets).signs
    assert right["sign agreement"] == 1.0 and right["correlation"] > 0.999 and right["entries"] == 600
    shuffled = signs([examples.targets[(i + 1) % 200] for i in range(200)]).signs  # plausible answers, other questions
    assert abs(shuffled["sign agreement"] - 0.5) < 0.08 and abs(shuffled["correlation"]) < 0.15
    flipped = signs([-t for t in examples.targets])
    assert flipped.signs["sign agreement"] == 0.0 and flipped.signs["correlation"] < -0.999
    # M^T v has signed entries: a flipped answer is wrong entry by entry (only eigenvectors and
    # singular vectors are compared up to each column's sign)
    # (up to entries near 0, which are within 5% of the answer's mean size either way)
    assert all(r["acc@0.05"] < 0.1 for r in flipped.rows if r["group"] == "entry")


def test_analyze_prints_the_sign_line(capsys):
    assert main(["analyze", "matvec-3x3", "--count", "50", "--out", "/dev/null"]) == 0
    out = capsys.readouterr().out
    assert "have the target's sign (a coin toss: 50%)" in out


@pytest.mark.parametrize("encoding,kinds", [
    ("P1000", ["dim", "dim"] + ["sign", "mantissa", "exponent"] * 4 + ["<eos>"]),
    ("P10", ["dim", "dim"] + ["sign", "digit 1", "digit 2", "digit 3", "exponent"] * 4 + ["<eos>"]),
    ("FP15", ["dim", "dim"] + ["number"] * 4 + ["<eos>"]),
])
def test_token_labels_name_what_each_answer_token_writes(encoding, kinds):
    config = lf.preset("transpose-5x5", overrides={"problem.dim": 2, "problem.encoding": encoding})
    experiment = build_experiment(config)
    _, tgt = experiment.problem.encode(experiment.problem.sample(np.random.default_rng(0), 3))
    labels = experiment.token_labels(tgt)
    assert labels.shape == (3, tgt.ids.shape[1] + 1)
    assert all(list(row[: len(kinds)]) == kinds for row in labels)


def test_a_model_that_learned_its_problem_ranks_every_kind_of_token_first():
    model = lf.load("transpose-3x3")
    problem = model.experiment.problem
    accuracy = model.experiment.token_accuracy(model.module, problem, problem.sample(np.random.default_rng(1), 100),
                                               model.device)
    assert set(accuracy) == {"dim", "sign", "mantissa", "exponent", "<eos>"}
    assert min(accuracy.values()) > 0.98
    analysis = model.analyze(50)
    assert "next-token accuracy given the true answer so far: dim" in analysis.table()
