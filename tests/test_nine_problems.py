"""benchmarks/nine_problems.py: a row names a bundled model or a run directory; a run directory this
machine does not have (the unlearned problems have no bundled model) is a row that says so, not a
crash of the whole table."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "nine_problems.py"


def nine_problems(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_a_missing_run_is_a_row_that_says_so(tmp_path):
    done = nine_problems("--rows", f"invert_matrix={tmp_path}/no-such-run", "transpose=transpose-2-8@1", "--count", "20")
    assert done.returncode == 0, done.stderr
    assert f"| invert_matrix | {tmp_path}/no-such-run (not on this machine) |" in done.stdout
    assert "| transpose | transpose-2-8 | 1 | 100.0% |" in done.stdout


def test_json_is_pure_and_marks_the_missing_run(tmp_path):
    done = nine_problems("--rows", f"invert_matrix={tmp_path}/gone", "--count", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"problem": "invert_matrix", "source": f"{tmp_path}/gone", "missing": True}]
