"""`linalgformer generate` writes the reference code's token formats exactly."""

import json
import re

import pytest

from linalgformer.cli import main

NUMBER = {
    "P10": r"[+-] (?:0|[1-9] \d \d) E-?\d+",
    "P1000": r"[+-] \d{1,3} E-?\d+",
    "B1999": r"N-?\d{1,3} E-?\d+",
    "FP15": r"N-?\d{1,3}e\d+",
}


def matrix_re(encoding: str, rows: int, cols: int) -> str:
    return rf"V{rows} V{cols}" + rf"(?: {NUMBER[encoding]}){{{rows * cols}}}"


@pytest.mark.parametrize("encoding", list(NUMBER))
def test_generate_text_format(encoding, tmp_path, capsys):
    out = tmp_path / "ex.txt"
    assert main(["generate", "--problem", "eigenvalues", "--dim", "4", "--count", "20",
                 "--encoding", encoding, "--seed", "3", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 20
    for line in lines:
        source, target = line.split("\t")
        assert re.fullmatch(matrix_re(encoding, 4, 4), source), source
        assert re.fullmatch(matrix_re(encoding, 4, 1), target), target
    assert out.read_text() == _generate_again(tmp_path, encoding)  # same seed, same file


def _generate_again(tmp_path, encoding):
    again = tmp_path / "again.txt"
    main(["generate", "--problem", "eigenvalues", "--dim", "4", "--count", "20",
          "--encoding", encoding, "--seed", "3", "--out", str(again)])
    return again.read_text()


def test_generate_stdout_and_jsonl(capsys):
    assert main(["generate", "--problem", "matrix_sum", "--dim", "2", "--count", "2", "--format", "jsonl",
                 "--input-encoding", "FP15", "--output-encoding", "P1000"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert re.fullmatch(matrix_re("FP15", 2, 4), row["input"])
        assert re.fullmatch(matrix_re("P1000", 2, 2), row["output"])
        assert len(row["input_matrix"]) == 2 and len(row["target"]) == 2
