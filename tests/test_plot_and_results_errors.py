"""`plot` and `results` answer bad output paths and foreign JSON in one sentence, never a traceback."""

import json

import pytest

from linalgformer.cli import main
from linalgformer.training import train_run
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "run"
    train_run(tiny_config(max_steps=4, eval_every=2, checkpoint_every=2), path, progress=False)
    return path


def test_plot_into_a_folder_or_without_suffix_reports_the_file_it_wrote(run, tmp_path, capsys):
    assert main(["plot", str(run), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "training.png").is_file() and str(tmp_path / "training.png") in capsys.readouterr().out
    assert main(["plot", str(run), "--out", str(tmp_path / "curve")]) == 0
    assert (tmp_path / "curve.png").is_file() and "curve.png" in capsys.readouterr().out


def test_plot_to_an_unknown_format_is_one_sentence(run, tmp_path, capsys):
    assert main(["plot", str(run), "--out", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err
    assert "format '.xyz'" in err and "Traceback" not in err


@pytest.mark.parametrize("content", [[1, 2], {"family": "charton", "metrics": [1], "run_dir": 3}, "text"])
def test_results_of_the_wrong_shape_are_one_sentence(tmp_path, capsys, content):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(content))
    assert main(["results", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not the result of" in err and "Traceback" not in err


def test_weights_and_other_files_of_a_run_share_one_mode(run):
    modes = {p.name: p.stat().st_mode & 0o777 for p in run.iterdir() if not p.name.startswith(".")}
    assert modes["model.safetensors"] == modes["config.json"] == modes["metrics.jsonl"], modes
