"""A user's matrices: files in any encoding, a bundled model by problem and size, and the warnings
of ``predict`` (problems.charton.novelty)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linalgformer as lf
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.problems.charton import ProblemConfig, make_problem
from linalgformer.problems.charton.datafile import write_examples
from linalgformer.problems.charton.novelty import TrainingRange, descriptors


def written(tmp_path, problem_name, dim, encoding, examples, name):
    problem = make_problem(ProblemConfig(name=problem_name, dim=dim, encoding=encoding))
    path = tmp_path / name
    write_examples(path, problem, examples)
    return path


@pytest.mark.parametrize("model_name, problem_name, own", [
    ("transpose-3x3", "transpose", "P1000"), ("eigenvalues-5x5", "eigenvalues", "continuous")])
def test_evaluate_data_scores_a_file_in_any_encoding_as_in_its_own(tmp_path, capsys, model_name, problem_name, own):
    """The same examples written in each encoding score the same as in the model's own (numbers of
    three significant digits, which every encoding writes exactly)."""
    dim = 3 if model_name.endswith("3x3") else 5
    problem = make_problem(ProblemConfig(name=problem_name, dim=dim, encoding="P1000"))
    examples = problem.sample(np.random.default_rng(3), 40)
    results = {}
    for encoding in ("P1000", "P10", "B1999", "FP15", "continuous"):
        path = written(tmp_path, problem_name, dim, encoding, examples, f"{encoding}.txt")
        assert main(["evaluate", model_name, "--data", str(path), "--json"]) == 0, encoding
        document = json.loads(capsys.readouterr().out)
        results[encoding] = (document["accuracy"], document["median_d1"], document["count"])
    assert all(value == results[own] for value in results.values()), results


def test_evaluate_data_refuses_what_no_encoding_writes(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("V3 V3 + banana\tV3 V3 + 1\n")
    assert main(["evaluate", "transpose-3x3", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a matrix in any encoding" in err and "Traceback" not in err


def test_load_by_problem_and_size():
    """The model trained on the size whose card has the best mean over the families' suite."""
    assert lf.load("eigenvalues", dim=5).path.name == "eigenvalues-2-8"
    assert lf.load("eigenvalues", dim=8).path.name == "eigenvalues-2-8"
    assert lf.load("transpose", dim=4).path.name == "transpose-2-8"
    with pytest.raises(UserError, match="no bundled eigenvalues model fits"):
        lf.load("eigenvalues", dim=40)
    with pytest.raises(UserError, match="dim must be a positive integer"):
        lf.load("eigenvalues", dim=0)


def test_descriptors_and_training_range():
    inputs = [np.array([[1.0, 0.0], [0.0, 1e-6]]), np.array([[3.0, -2.0], [5.0, 4.0]])]
    found = descriptors(inputs, scale_free=False)
    np.testing.assert_allclose(found["zeros"], [0.5, 0.0])
    np.testing.assert_allclose(found["decades"], [6.0, np.log10(5 / 2)])
    np.testing.assert_allclose(found["magnitude"], [0.0, np.log10(5)])
    assert "magnitude" not in descriptors(inputs, scale_free=True)
    dense = TrainingRange.of([np.random.default_rng(i).uniform(-10, 10, (2, 2)) for i in range(200)], True)
    assert list(dense.outside(inputs, True)) == [True, False]
    assert any("exact zeros" in r for r in dense.reasons(inputs[0], True))
    assert dense.reasons(inputs[1], True) == []


def test_predict_warns_of_a_wrong_answer_and_of_what_training_never_held(capsys):
    """eigenvalues-5x5 (Wigner matrices only) on the 1-D Laplacian-like tridiagonal matrix (exact
    zeros) and on a matrix with an entry of 1e11: warned, and why. A Wigner-like matrix is not."""
    tridiagonal = "2 1 0 0 0; 1 2 1 0 0; 0 1 2 1 0; 0 0 1 2 1; 0 0 0 1 2"
    assert main(["predict", "eigenvalues-5x5", "--matrix", tridiagonal, "--json"]) == 0
    out = capsys.readouterr()
    answer = json.loads(out.out)
    assert answer["error"] > 0.05 and "not within 5%" in out.err and "exact zeros" in out.err
    spread = np.array([[1e11, 1, 2, 3, 4], [1, 2, 1, 0.5, 0.1], [2, 1, 2, 1, 3], [3, 0.5, 1, 2, 1],
                       [4, 0.1, 3, 1, 2]])
    assert main(["predict", "eigenvalues-5x5", "--matrix", json.dumps(spread.tolist()), "--json"]) == 0
    assert "spread of magnitudes" in capsys.readouterr().err
    wigner = np.random.default_rng(0).uniform(-10, 10, (5, 5))
    wigner = np.tril(wigner) + np.tril(wigner, -1).T
    assert main(["predict", "eigenvalues-5x5", "--matrix", json.dumps(wigner.tolist()), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["error"] < 0.05 and "warning" not in out.err
