"""Answer views (``evaluate --views K``, ``lf.Model.views``): the mean of a continuous answer over K
signed permutations of the question's rows and columns, each answer taken back to the question's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import linalgformer as lf
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.experiments.charton import VIEW_SEED
from linalgformer.problems.charton import make_problem
from linalgformer.training import train_run
from tests.test_continuous import continuous_config


@pytest.mark.parametrize("name", ["transpose", "matrix_sum", "matrix_vector", "matrix_product", "eigenvalues",
                                  "eigenvectors", "invert_matrix", "syminverse", "singularvalues", "singularvectors"])
def test_a_view_moves_entries_exactly_and_its_way_back_gives_the_answer(name):
    """(Vectors, whose sign is free, come back up to their sign: ``aligned`` takes it from the answer.)"""
    problem = make_problem(continuous_config(name, 4).problem)
    x = problem.sample(np.random.default_rng(0), 1).inputs[0]
    view, back = problem.answer_view(np.random.default_rng(1), x)
    assert view.shape == x.shape and not np.array_equal(view, x)
    assert sorted(np.abs(view).ravel().tolist()) == sorted(np.abs(x).ravel().tolist())  # the same entries
    answer = problem.solve(x[None])[0][0]
    np.testing.assert_allclose(problem.aligned(back(problem.solve(view[None])[0][0]), answer), answer,
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["eigenvectors", "singularvectors"])
def test_aligning_flips_each_vector_to_the_reference_and_leaves_the_values(name):
    problem = make_problem(continuous_config(name, 3).problem)
    answer = problem.solve(problem.sample(np.random.default_rng(0), 1).inputs[0][None])[0][0]
    groups = problem.sign_groups(answer.shape)
    flipped = np.where((groups == 0) | (groups == 2), -answer, answer)  # vectors 0 and 2 negated
    assert not np.allclose(flipped, answer)
    np.testing.assert_array_equal(problem.aligned(flipped, answer), answer)
    np.testing.assert_array_equal(problem.aligned(answer, answer), answer)


def test_a_problem_without_sign_groups_is_aligned_as_it_is():
    problem = make_problem(continuous_config("eigenvalues", 3).problem)
    answer = np.array([[3.0], [1.0], [-2.0]])
    np.testing.assert_array_equal(problem.aligned(answer, -answer), answer)


@pytest.mark.parametrize("name", ["determinant"])
def test_problems_without_a_view_say_so(name):
    problem = make_problem(continuous_config(name, 3).problem)
    assert problem.answer_view(np.random.default_rng(0), np.eye(3)) is None


@pytest.fixture(scope="module")
def eigen_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("views") / "run"
    train_run(continuous_config("eigenvalues", 3, units="rows", max_steps=6), run, progress=False)
    return run


def test_k_views_answer_the_mean_of_the_k_answers(eigen_run):
    model = lf.load(eigen_run)
    exp, problem = model.experiment, model.experiment.problem
    examples = problem.sample(np.random.default_rng(3), 10)
    alone = exp.predict(model.module, problem, examples, model.device)
    by_hand = [a.copy() for a in alone]
    for view in range(1, 4):
        rng = np.random.default_rng([VIEW_SEED, view])
        views = [problem.answer_view(rng, x) for x in examples.inputs]
        seen = dataclasses.replace(examples, inputs=[x for x, _ in views])
        answers = exp.predict(model.module, problem, seen, model.device)
        by_hand = [t + back(a) for t, a, (_, back) in zip(by_hand, answers, views)]
    model.views = 4
    assert model.views == 4
    averaged = exp.predict(model.module, problem, examples, model.device)
    for got, want in zip(averaged, by_hand):
        np.testing.assert_allclose(got, want / 4, rtol=1e-6)
    again = exp.predict(model.module, problem, examples, model.device)  # seeded: the same answer twice
    assert all(np.array_equal(a, b) for a, b in zip(averaged, again))


def test_views_from_the_command_line(eigen_run, capsys):
    assert main(["evaluate", str(eigen_run), "--count", "20", "--views", "3", "--json"]) == 0
    assert main(["predict", str(eigen_run), "--matrix", "1 2 3; 2 1 0; 3 0 2", "--views", "3"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(eigen_run), "--count", "20", "--views", "0"]) == 2
    assert "--views must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [0, 65, 2.5, True, "3"])
def test_bad_views_in_python_are_one_user_error(eigen_run, bad):
    model = lf.load(eigen_run)
    with pytest.raises(UserError, match="views must be a whole number"):
        model.views = bad


def test_views_where_no_view_keeps_the_answer_are_refused(tmp_path, capsys):
    train_run(continuous_config("determinant", 2, max_steps=2), tmp_path / "t", progress=False)
    assert main(["evaluate", str(tmp_path / "t"), "--count", "5", "--views", "2"]) == 2
    assert "signed permutation" in capsys.readouterr().err
    train_run(continuous_config("eigenvalues", 2, out="P1000", max_steps=2), tmp_path / "tok", progress=False)
    with pytest.raises(UserError, match="writes tokens"):
        lf.load(tmp_path / "tok").views = 2


def test_a_model_answers_with_its_own_answer_views_unless_told(eigen_run, tmp_path, capsys):
    """``model.answer_views`` K: the model answers with the mean over K views by default (Python,
    evaluate, predict); ``--views`` / ``lf.Model.views`` still choose; an older run reads 1."""
    import json
    import shutil

    bundled = tmp_path / "viewed"
    shutil.copytree(eigen_run, bundled)
    config = json.loads((bundled / "config.json").read_text())
    config["model"]["answer_views"] = 4
    (bundled / "config.json").write_text(json.dumps(config))
    plain, viewed = lf.load(eigen_run), lf.load(bundled)
    assert plain.views == 1 and viewed.views == 4
    plain.views = 4
    matrix = np.array([[1.0, 2, 3], [2, 1, 0], [3, 0, 2]])
    np.testing.assert_array_equal(viewed.predict(matrix), plain.predict(matrix))
    for args, same_as in (([], 4), (["--views", "1"], 1), (["--views", "4"], 4)):
        assert main(["evaluate", str(bundled), "--count", "20", "--json", *args]) == 0
        got = json.loads(capsys.readouterr().out)
        assert main(["evaluate", str(eigen_run), "--count", "20", "--json", "--views", str(same_as)]) == 0
        assert got == json.loads(capsys.readouterr().out)
    del config["model"]["answer_views"]  # a run from before the field answers from one view
    (bundled / "config.json").write_text(json.dumps(config))
    assert lf.load(bundled).views == 1


def test_answer_views_for_a_token_answer_are_refused_in_one_sentence():
    from linalgformer.experiments.registry import build_experiment

    config = continuous_config("eigenvalues", 2, out="P1000", max_steps=2)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, answer_views=2))
    with pytest.raises(UserError, match="answer_views averages continuous answers"):
        build_experiment(config).build_model()


def test_the_median_of_the_views_is_the_median_of_the_answers_entry_by_entry(eigen_run, capsys):
    model = lf.load(eigen_run)
    exp, problem = model.experiment, model.experiment.problem
    examples = problem.sample(np.random.default_rng(5), 8)
    each = [[a] for a in exp.predict(model.module, problem, examples, model.device)]
    for view in range(1, 5):
        rng = np.random.default_rng([VIEW_SEED, view])
        views = [problem.answer_view(rng, x) for x in examples.inputs]
        answers = exp.predict(model.module, problem, dataclasses.replace(examples, inputs=[x for x, _ in views]),
                              model.device)
        for kept, a, (_, back) in zip(each, answers, views):
            kept.append(back(a))  # eigenvalues: no sign to align
    assert model.view_average == "mean"
    model.views, model.view_average = 5, "median"
    got = exp.predict(model.module, problem, examples, model.device)
    for answer, kept in zip(got, each):
        np.testing.assert_allclose(answer, np.median(np.stack(kept), axis=0), rtol=1e-6)
    assert main(["evaluate", str(eigen_run), "--count", "10", "--views", "5", "--view-average", "median", "--json"]) == 0
    capsys.readouterr()
    with pytest.raises(UserError, match="view average must be one of mean, median"):
        model.view_average = "mode"


def test_a_view_average_for_a_token_answer_is_refused(tmp_path, capsys):
    from linalgformer.cli import build_parser
    from linalgformer.models.charton import VIEW_AVERAGES

    train_run(continuous_config("eigenvalues", 2, out="P1000", max_steps=2), tmp_path / "tok", progress=False)
    assert main(["evaluate", str(tmp_path / "tok"), "--count", "5", "--view-average", "median"]) == 2
    assert "numbers read out by value" in capsys.readouterr().err
    flag = next(a for a in build_parser()._subparsers._group_actions[0].choices["evaluate"]._actions
                if "--view-average" in a.option_strings)
    assert tuple(flag.choices) == VIEW_AVERAGES  # the command line offers what the model takes
