"""Every ``--json`` prints exactly one JSON document on stdout; progress and notes go to stderr."""

import json

import pytest

from linalgformer import cli


def one_document(capsys):
    out = capsys.readouterr().out
    json.loads(out)  # the whole of stdout is one document
    return out


@pytest.mark.parametrize("args", [["problems", "--json"], ["models", "--json"],
                                  ["predict", "transpose-3x3", "--matrix", "1 2 3; 4 5 6; 7 8 9", "--json"],
                                  ["evaluate", "transpose-3x3", "--count", "4", "--json"]])
def test_json_commands_print_one_document(args, capsys):
    assert cli.main(args) == 0
    one_document(capsys)


def test_reproduce_json_sends_progress_to_stderr(monkeypatch, capsys):
    import linalgformer.reproduce.driver as driver

    def noisy_preset(name, scale, out_dir):
        print("training 1/3 ...")  # what a driver's progress line looks like
        return {"title": name, "text": "table", "rows": [1, 2]}
    monkeypatch.setattr(driver, "run_preset", noisy_preset)
    assert cli.main(["reproduce", "spectral-pca", "--quick", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"] == [1, 2] and "training 1/3" in err
