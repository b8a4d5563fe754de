"""Run directories written by the code before the run directory had its marker and before the
Charton model was built from parts (tests/fixtures/old_runs/, made by
scripts/make_old_run_fixtures.py on 2026-12-06) resume exactly: the losses after the resume are those
the old code logged for the same run uninterrupted.

The old code's losses were logged on one CPU; another CPU's kernels may round the last bits
differently (PyTorch promises bitwise equality only on the same hardware), so those are compared to
a relative 1e-6. Bitwise exact resume on one machine is tested elsewhere (test_reliability.py, test_run_safety.py)."""

import json
import shutil
from pathlib import Path

import pytest

from linalgformer import runs
from linalgformer.experiments.registry import run_config_from_dict
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run

OLD_RUNS = Path(__file__).parent / "fixtures" / "old_runs"
NAMES = sorted(path.name for path in OLD_RUNS.iterdir())
pytestmark = pytest.mark.usefixtures("one_thread")


def config(name: str):
    """The fixture's own config (stopped at step 6), trained on to step 12."""
    data = json.loads((OLD_RUNS / name / "config.json").read_text())
    data["train"]["max_steps"] = 12
    return run_config_from_dict(data)


def train_losses(run_dir: Path) -> list[list[float]]:
    return [[r["step"], r["loss"]] for r in read_metrics(run_dir) if r["kind"] == "train"]


def old_losses(name: str) -> list[list[float]]:
    return json.loads((OLD_RUNS / name / "expected.json").read_text())["train_losses"]


def assert_close_to_old(losses: list[list[float]], name: str) -> None:
    old = old_losses(name)
    assert [step for step, _ in losses] == [step for step, _ in old]
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in old], rel=1e-6, abs=0)


@pytest.mark.parametrize("name", NAMES)
def test_an_old_run_resumes_with_the_losses_the_old_code_logged(tmp_path, name):
    run = tmp_path / name
    shutil.copytree(OLD_RUNS / name, run)
    (run / "expected.json").unlink()
    assert not (run / runs.MARKER).exists() and runs.is_run_dir(run)  # known by its checkpoint manifest
    train_run(config(name), run, progress=False)
    assert (run / runs.MARKER).is_file()  # marked from now on
    assert_close_to_old(train_losses(run), name)


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_run_starts_as_the_old_code_started(tmp_path, name):
    """The model is built from parts, but its parameters are made and initialised in the same order:
    the same seed gives the same run."""
    train_run(config(name), tmp_path / "run", progress=False)
    assert_close_to_old(train_losses(tmp_path / "run"), name)
