"""The Python API (``import linalgformer as lf``) on bundled models: no training except one tiny run."""

import runpy
from pathlib import Path

import numpy as np
import pytest

import linalgformer as lf
from linalgformer.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eigen():
    return lf.load("eigenvalues-3x3")


def test_the_issue_snippet_runs_as_written(tmp_path, monkeypatch):
    """Issue 15's snippet, line for line; only lf.train is given a few steps (unchanged it trains the
    quick preset for 2,500 steps, too long for the suite) and runs/t5 lies in a temporary folder."""
    monkeypatch.chdir(tmp_path)
    model = lf.load("eigenvalues-3x3")          # a bundled name or a run directory
    answer = model.predict(np.array([[4.0, -7.5, 2.0], [-7.5, 1.0, 6.0], [2.0, 6.0, -3.0]]))
    batch = model.predict(np.stack([np.diag([5.0, -3.0, 8.0]) + 1.5] * 2))   # (B, n, n)
    result = model.evaluate(count=1000, distribution="laplace")
    run = lf.train(lf.preset("transpose-5x5", quick=True, overrides={"train.max_steps": 3, "train.eval_every": 3,
                                                                    "train.valid_count": 8}),
                   out="runs/t5", progress=False)
    data = lf.generate("eigenvalues", dim=5, count=100, encoding="FP15", seed=0)
    np.testing.assert_allclose(answer.ravel(), [10.596, 1.587, -10.183], rtol=0.05)
    assert batch.shape == (2, 3, 1)
    assert 0.3 < result["accuracy"] < 0.9 and result["accuracy"] == result["tolerances"]["0.05"]
    assert list(result["by_law"]) == ["laplace"] and result["by_law"]["laplace"]["count"] == 1000
    assert isinstance(run, lf.Model) and run.path == Path("runs/t5") and run.metrics["count"] == 8
    assert run.predict(np.arange(25.0).reshape(5, 5) - 12).shape == (5, 5)
    assert data.inputs.shape == (100, 5, 5) and data.targets.shape == (100, 5, 1)
    assert data.input_tokens[0].startswith("V5 V5 N") and len(data.output_tokens[0].split()) == 7


def test_predict_answers_like_the_command_line(eigen):
    matrix = np.array([[4.0, -7.5, 2.0], [-7.5, 1.0, 6.0], [2.0, 6.0, -3.0]])
    assert np.allclose(eigen.predict(matrix), eigen.answer(matrix)["prediction"])
    assert np.allclose(eigen.predict(matrix[None])[0], eigen.predict(matrix))


@pytest.mark.parametrize("matrix, words", [
    (np.ones((2, 3, 3, 3)), "predict takes a matrix"),
    (np.array([[1.0, 2, 3], [0, 1, 2], [0, 0, 1]]), "symmetric"),
    (np.eye(4) + 1, "trained on 3x3"),
])
def test_predict_refuses_what_the_model_cannot_answer(eigen, matrix, words):
    with pytest.raises(UserError, match=words):
        eigen.predict(matrix)


def test_load_generate_and_preset_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="neither a run directory"):
        lf.load(tmp_path / "missing")
    with pytest.raises(UserError, match="unknown problem setting 'colour'"):
        lf.generate("transpose", colour="red")
    with pytest.raises(UserError, match="unknown problem 'nope'"):
        lf.generate("nope")
    with pytest.raises(UserError, match="unknown preset"):
        lf.preset("nope")
    with pytest.raises(UserError, match="count must be"):
        lf.generate("transpose", count=0)


def test_generate_matches_the_generate_command(tmp_path):
    from linalgformer.cli import main

    out = tmp_path / "g.txt"
    assert main(["generate", "--problem", "matrix_sum", "--dim", "2", "--count", "5", "--seed", "3",
                 "--out", str(out)]) == 0
    data = lf.generate("matrix_sum", dim=2, count=5, seed=3)
    assert out.read_text().splitlines() == [f"{x}\t{y}" for x, y in zip(data.input_tokens, data.output_tokens)]
    np.testing.assert_allclose(data.targets, data.inputs[:, :, :2] + data.inputs[:, :, 2:])


def test_the_package_loads_the_api_on_first_use():
    import importlib

    assert "load" in dir(lf) and lf.load is lf.api.load
    assert importlib.import_module("linalgformer.training").train_run  # the loop is still a module
    assert lf.train is lf.api.train  # and the name stays the API's
    with pytest.raises(AttributeError):
        getattr(lf, "nothing_here")


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_run(script, tmp_path, capsys):
    runpy.run_path(str(script))["main"](tmp_path)
    out = capsys.readouterr().out
    assert "accuracy at 5%" in out
    assert len(list((ROOT / "examples").glob("*.py"))) == 2
