"""The determinant: a problem added as one module plus one registry line (docs/ADDING_A_PROBLEM.md)."""

import numpy as np
import pytest

import linalgformer as lf
from linalgformer.cli import main
from linalgformer.problems.charton import PROBLEMS, ProblemConfig, make_problem
from linalgformer.problems.charton.registry import PROBLEM_MODULES
from linalgformer.tokens import decode_matrix


@pytest.fixture(scope="module")
def problem():
    return make_problem(ProblemConfig(name="determinant", dim=3, encoding="P1000"))


def test_registered_by_one_line_and_listed(capsys):
    assert "determinant" in PROBLEMS
    assert sum("determinant" in module for module in PROBLEM_MODULES) == 1
    assert main(["problems"]) == 0
    assert "determinant" in capsys.readouterr().out


def test_the_answer_is_the_determinant_of_the_input_as_written(problem):
    examples = problem.sample(np.random.default_rng(0), 50)
    src, tgt = problem.encode(examples)
    for i in range(len(examples)):
        matrix = decode_matrix(problem.codecs.input, problem.vocab, src.ids[i, : src.lengths[i]].tolist())
        answer = decode_matrix(problem.codecs.output, problem.vocab, tgt.ids[i, : tgt.lengths[i]].tolist())
        assert answer.shape == (1, 1)
        np.testing.assert_allclose(answer[0, 0], np.linalg.det(matrix), rtol=5e-3)


def test_the_verifier_takes_a_close_answer_and_refuses_a_far_one(problem):
    examples = problem.sample(np.random.default_rng(1), 3)
    encode = lambda values: problem.encode(  # noqa: E731
        type(examples)(inputs=examples.inputs, targets=[np.array([[v]]) for v in values],
                       laws=examples.laws, dims=examples.dims))[1]
    dets = [float(np.linalg.det(x)) for x in examples.inputs]
    close, far = encode([d * 1.01 for d in dets]), encode([d * 1.2 for d in dets])
    ids = lambda seq: [seq.ids[i, : seq.lengths[i]].tolist() for i in range(3)]  # noqa: E731
    assert problem.score(examples, ids(close)).correct[0.05].all()
    assert not problem.score(examples, ids(far)).correct[0.05].any()
    assert not problem.score(examples, ids(close)).correct[0.005].any()


def test_a_singular_matrix_has_no_answer(problem):
    with pytest.raises(lf.UserError, match="not defined"):
        problem.examples_from_matrix(np.array([[1.0, 2, 3], [2, 4, 6], [1, 1, 1]]))


def test_trains_with_the_quick_preset(tmp_path):
    tiny = {"model.width": 32, "model.heads": 2, "train.max_steps": 4, "train.eval_every": 4,
            "train.valid_count": 8, "train.batch_size": 16}
    run = lf.train(lf.preset("determinant-3x3", quick=True, overrides=tiny), out=tmp_path / "det", progress=False)
    assert run.problem == "determinant" and run.metrics["count"] == 8
    assert run.predict(np.diag([2.0, 3.0, -4.0]) + 0.5).shape == (1, 1)
