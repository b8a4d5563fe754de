"""Bundled models answer right after install, with no training."""

import json

from linalgformer.bundled import bundled_models, model_card
from linalgformer.cli import main


def test_bundled_models_listed_with_accuracy(capsys):
    models = bundled_models()
    assert "transpose-3x3" in models
    assert "pca-10x10-top3" in models
    for path in models.values():
        card = model_card(path)
        score = (card["accuracy"] or {}).get("0.05") or card["metrics"][card["primary_metric"]]
        assert score >= 0.85 and card["test_count"] >= 1000
    assert main(["models"]) == 0
    assert "transpose-3x3" in capsys.readouterr().out


def test_predict_with_bundled_transpose(capsys):
    assert main(["predict", "transpose-3x3", "--matrix", "[[1.5,-2,3],[4,0.25,-6],[7,8,9]]", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reference"] == [[1.5, 4, 7], [-2, 0.25, 8], [3, -6, 9]]
    assert answer["error"] is not None and answer["error"] < 0.05


def test_bundled_model_rejects_wrong_size(capsys):
    assert main(["predict", "transpose-3x3", "--matrix", "1 2; 3 4"]) == 2
    assert "trained on 3x3" in capsys.readouterr().err
    big = "[[" + "],[".join([",".join(["1"] * 40)] * 40) + "]]"
    assert main(["predict", "transpose-3x3", "--matrix", big]) == 2


def test_predict_with_bundled_pca_model(capsys):
    import numpy as np

    x = np.random.default_rng(7).normal(size=(10, 10)) @ np.diag([4, 2, 1.2] + [0.5] * 7)
    assert main(["predict", "pca-10x10-top3", "--matrix", json.dumps(x.round(4).tolist()), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert np.asarray(answer["prediction"]).shape == (3, 10) and answer["abs_cos"][0] > 0.9


def test_predict_by_problem_name_picks_the_bundled_model_of_that_size(capsys):
    assert main(["predict", "transpose", "--matrix", "[[1,2,3],[4,5,6],[7,8,9]]", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["problem"] == "transpose" and answer["error"] < 0.05
    assert main(["predict", "transpose", "--matrix", json.dumps([[1.5] * 9] * 9)]) == 2  # no model of 9x9
    err = capsys.readouterr().err
    assert "no bundled transpose model fits" in err and "transpose-3x3" in err and "Traceback" not in err
    assert main(["predict", "no_such_problem", "--matrix", "[[1,2],[3,4]]"]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_every_bundled_charton_model_answers_by_its_problem_name(capsys):
    import numpy as np

    for name, path in bundled_models().items():
        card = model_card(path)
        if card.get("family", "charton") != "charton":
            continue
        config = json.loads((path / "config.json").read_text())
        dim = config["problem"]["dim"]
        rng = np.random.default_rng(0)
        matrix = rng.uniform(-5, 5, size=(dim, dim))
        if card["problem"] in ("eigenvalues", "eigenvectors", "syminverse"):
            matrix = (matrix + matrix.T) / 2
        elif card["problem"] in ("matrix_sum", "matrix_product"):
            matrix = rng.uniform(-5, 5, size=(dim, 2 * dim))
        elif card["problem"] == "matrix_vector":
            matrix = rng.uniform(-5, 5, size=(dim, dim + 1))
        text = json.dumps(matrix.round(2).tolist())
        assert main(["predict", card["problem"], "--matrix", text, "--json"]) == 0, name
        answer = json.loads(capsys.readouterr().out)
        assert answer["problem"] == card["problem"] and answer["valid"], name


def test_evaluate_takes_a_bundled_model(capsys):
    assert main(["evaluate", "transpose-3x3", "--count", "50", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"]["0.05"] >= 0.9


def test_bundled_charton_cards_tell_the_truth(capsys):
    """Each Charton card's accuracy at 5% is what `evaluate` measures now, within sampling noise."""
    import math

    for name, path in bundled_models().items():
        card = model_card(path)
        if card.get("family", "charton") != "charton":
            continue
        count = 200
        assert main(["evaluate", name, "--count", str(count), "--seed", str(card["test_seed"]), "--json"]) == 0
        measured = json.loads(capsys.readouterr().out)["accuracy"]["0.05"]
        p = card["accuracy"]["0.05"]
        assert abs(measured - p) <= 4 * math.sqrt(p * (1 - p) / count) + 0.02, (name, measured, p)


def test_predict_warns_about_questions_outside_the_training_data(capsys):
    """An exact 0 (P1000 writes it with the exponent token E0, which entries uniform on +-10 never
    use) or an entry beyond +-10 is outside what the model saw: the answer comes with a warning."""
    inside = "[[2,1,0.5],[1,3,1],[0.5,1,4]]"
    assert main(["predict", "eigenvalues-3x3", "--matrix", inside, "--json"]) == 0
    out = capsys.readouterr()
    answer = json.loads(out.out)
    assert answer["unseen_tokens"] == [] and answer["outside_training"] == []
    assert "never occur" not in out.err and "outside the training data" not in out.err
    assert ("not within 5%" in out.err) == (answer["error"] > 0.05)  # a wrong answer is always warned
    for outside, tokens in (("[[2,1,0],[1,3,1],[0,1,4]]", ["0", "E0"]), ("[[2,1,500],[1,3,1],[500,1,4]]", ["E0"])):
        assert main(["predict", "eigenvalues-3x3", "--matrix", outside, "--json"]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out)["unseen_tokens"] == tokens
        assert "never occur in this model's training data" in out.err and "Traceback" not in out.err


def test_evaluate_notes_sizes_outside_training(capsys):
    assert main(["evaluate", "transpose-3x3", "--dim", "3,4", "--count", "8", "--json"]) == 0
    err = capsys.readouterr().err
    assert "trained on 3x3 matrices; 4x4 is outside them" in err
    assert main(["evaluate", "transpose-3x3", "--dim", "3", "--count", "8", "--json"]) == 0
    assert "outside" not in capsys.readouterr().err


def test_bundled_5x5_eigenvalues_answer_by_value_at_any_scale(capsys):
    """`predict eigenvalues` on a 5x5 matrix picks the continuous eigenvalues-5x5 model, whose
    answer scales with the matrix: the same relative error at 1000 times the training range."""
    import numpy as np

    from linalgformer.problems.charton import ProblemConfig, make_problem

    problem = make_problem(ProblemConfig(name="eigenvalues", dim=5, encoding="continuous"))
    matrix = problem.sample(np.random.default_rng(3), 1).inputs[0]
    errors = []
    for scale in (1.0, 1000.0):
        assert main(["predict", "eigenvalues", "--matrix", json.dumps((scale * matrix).tolist()), "--json"]) == 0
        errors.append(json.loads(capsys.readouterr().out)["error"])
    assert errors[0] < 0.05 and abs(errors[1] - errors[0]) < 1e-4


def test_by_problem_name_the_most_accurate_fitting_model_answers():
    from linalgformer.bundled import card_rank, models_for_problem, resolve_model, trained_dims

    fits_five = lambda p: trained_dims(p)[0] <= 5 <= trained_dims(p)[1]  # noqa: E731
    several = models_for_problem("matrix_vector")
    fitting = [p for p in several.values() if fits_five(p)]
    assert len(fitting) >= 2  # matvec-5x5 (by value) and matvec-5x5-tokens
    chosen = resolve_model("matrix_vector", fits=fits_five)
    assert card_rank(chosen) == min(card_rank(p) for p in fitting)
