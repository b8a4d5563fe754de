"""Reliability and security of run directories (issue 7).

* A run killed with SIGKILL at any moment (at random, or at each step of a checkpoint save) resumes
  from its last complete checkpoint and ends with the metrics and weights of an uninterrupted run.
* Two runs on one directory at once: the second is refused.
* Truncated or altered checkpoints, planted pickles, absurd safetensors headers and absurd data files
  end in one clear error, exit status 2, and nothing runs or is allocated.
* fp16 training uses a gradient scaler.

Every claim here is listed in docs/RELIABILITY.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from linalgformer import checkpoint as ckpt
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.problems.charton import datafile
from linalgformer.runs import load_run
from linalgformer.tracking import METRICS, MetricLogger, read_metrics
from linalgformer.training import Runtime, Trainer, train_run
from tests.helpers import tiny_config

REPO = Path(__file__).resolve().parents[1]
TIMING = {"elapsed", "examples_per_s", "tokens_per_s"}  # the only fields that differ between runs


# ----------------------------------------------------------------------------- helpers


def config_dict(**train) -> dict:
    """tests.helpers' tiny run (3x3 transpose, width 32), checkpointing every 2 steps, 1 thread."""
    base = {"max_steps": 30, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "eval_every": 10,
            "log_every": 2, "checkpoint_every": 2, "valid_count": 16, "seed": 0, "threads": 1}
    base.update(train)
    return {"family": "charton", "problem": {"name": "transpose", "dim": 3, "encoding": "P1000"},
            "model": {"enc_layers": 1, "dec_layers": 1, "width": 32, "heads": 2, "max_len": 64},
            "train": base}


def write_config(path: Path, **train) -> Path:
    path.write_text(yaml.safe_dump(config_dict(**train)))
    return path


def reference_run(run_dir: Path, **train) -> None:
    """The uninterrupted run, in this process (torch's thread count restored afterwards)."""
    threads = torch.get_num_threads()
    try:
        train_run(run_config_from_dict(config_dict(**train)), run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)


def subprocess_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def trajectory(run_dir: Path) -> list[dict]:
    """Every train/eval/final record without its timing fields."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir)]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / ckpt.WEIGHTS)), load_file(str(b / ckpt.WEIGHTS))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir) if r.get("kind") == "train"]


def probe_checkpoint(run_dir: Path, scratch: Path) -> int | None:
    """Load a copy of ``run_dir``'s checkpoint as a resuming run would; its step (None: none yet)."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(run_dir, scratch)
    if not ckpt.has_checkpoint(scratch):
        return None
    manifest = ckpt.verify_checkpoint(scratch)
    ckpt.load_weights(scratch / ckpt.WEIGHTS)
    state = ckpt.load_train_state(scratch)
    assert state["step"] == manifest["step"]
    load_run(scratch)
    return manifest["step"]


def assert_clean(run_dir: Path) -> None:
    leftovers = [p.name for p in run_dir.iterdir()
                 if p.name.endswith(ckpt.TEMP_SUFFIX) or p.name.endswith(ckpt.STAGED)]
    assert leftovers == [], leftovers


def fingerprint(path: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ckpt.LOCK}


def resign(run_dir: Path, name: str) -> None:
    """Rewrite the manifest's checksum for ``name``: what someone who can write the directory can do."""
    manifest = json.loads((run_dir / ckpt.MANIFEST).read_text())
    manifest["files"][name] = ckpt.sha256(run_dir / name)
    (run_dir / ckpt.MANIFEST).write_text(json.dumps(manifest))


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_clear_error(code: int, err: str, words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert words.lower() in err.lower(), err


class Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------- 1. killed runs

# Run by a subprocess: the CLI, with SIGKILL sent at the n-th os.replace onto a given file name
# (KILL_AT="name:n"), and the step each run starts from printed first.
KILL_DRIVER = r'''
import os, signal, sys
from linalgformer.training import Trainer  # the training loop
from linalgformer.cli import main

target, nth = os.environ.get("KILL_AT", ":0").split(":")
count, real_replace = [0], os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == target:
        count[0] += 1
        if count[0] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
real_run = Trainer.run

def run(self):
    print(f"START {self.state['step']}", flush=True)
    return real_run(self)

Trainer.run = run
sys.exit(main(sys.argv[1:]))
'''

# Each kill point: (file name being renamed into place, occurrence). In save order: weights staged,
# state staged, manifest committed, weights moved in, state moved in; and the rewrite of
# metrics.jsonl when a resumed run drops the records after its checkpoint.
KILL_POINTS = [("model.safetensors.next", 3), (METRICS, 1), ("train_state.pt.next", 2),
               ("checkpoint.json", 3), ("model.safetensors", 2), ("train_state.pt", 4)]


@pytest.mark.slow
def test_kill_at_every_step_of_a_checkpoint_save_loses_nothing(tmp_path):
    reference_run(tmp_path / "whole")
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_DRIVER)
    config, run = write_config(tmp_path / "c.yaml"), tmp_path / "run"
    args = [sys.executable, str(driver), "train", "--config", str(config), "--out", str(run), "--quiet"]
    expected_start = 0
    for target, nth in KILL_POINTS:
        proc = subprocess.run(args, env=subprocess_env(KILL_AT=f"{target}:{nth}"), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (target, proc.stderr[-2000:])
        if target != METRICS:  # (metrics are rewritten while the trainer is built, before it starts)
            assert f"START {expected_start}\n" in proc.stdout, (target, proc.stdout)
        before_kill = train_steps(run)
        step = probe_checkpoint(run, tmp_path / "probe")
        assert step is not None and step >= max(before_kill) - 2, (target, step, before_kill)
        expected_start = step
    proc = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"START {expected_start}\n" in proc.stdout
    assert trajectory(run) == trajectory(tmp_path / "whole")
    assert train_steps(run) == list(range(2, 31, 2))
    assert same_weights(run, tmp_path / "whole")
    assert_clean(run)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    reference_run(tmp_path / "whole", max_steps=60)
    config, run = write_config(tmp_path / "c.yaml", max_steps=60), tmp_path / "run"
    args = [sys.executable, "-m", "linalgformer", "train", "--config", str(config), "--out", str(run), "--quiet"]
    rng = np.random.default_rng(1234)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        logged = len(train_steps(run))
        deadline = time.time() + 60
        while len(train_steps(run)) <= logged and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)  # until this process trains: a kill during imports would prove little
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        kills += 1
        step = probe_checkpoint(run, tmp_path / "probe")
        assert step is None or step >= max(train_steps(run)) - 2
    assert kills >= 2
    proc = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert trajectory(run) == trajectory(tmp_path / "whole")
    assert same_weights(run, tmp_path / "whole")
    assert_clean(run)


def torchrun(config: Path, run_dir: Path, *extra: str) -> None:
    """``torchrun --nproc_per_node 2 -m linalgformer train``, as README shows it (gloo on CPU)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "linalgformer", "train", "--config", str(config), "--out", str(run_dir), "--quiet", *extra]
    proc = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1  # one report (rank 0's), not one per process
    evals = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert len(evals) == len(set(evals)), evals


TORCHRUN_CASES = {  # tokens on mixed sizes (each process chunks its own rows); numbers as values
    "tokens": ({"name": "transpose", "dim": 4, "min_dim": 2, "max_dim": 4, "encoding": "P1000"}, {}),
    "continuous": ({"name": "matrix_sum", "dim": 3, "min_dim": 2, "max_dim": 3, "encoding": "continuous"},
                   {"positions": "matrix", "position_bias": True}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", TORCHRUN_CASES)
def test_torchrun_two_processes_resume_equals_uninterrupted(case, tmp_path):
    """Two processes under plain torchrun: stopped at step 6 and resumed to 12, the run has the
    metrics and weights of one run to 12."""
    problem, model = TORCHRUN_CASES[case]
    body = dict(config_dict(max_steps=12, eval_every=6, checkpoint_every=6), problem=problem)
    body["model"] = {**body["model"], **model}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(body))
    torchrun(config, tmp_path / "whole")
    torchrun(config, tmp_path / "run", "--max-steps", "6")
    assert train_steps(tmp_path / "run")[-1] == 6
    torchrun(config, tmp_path / "run")
    assert trajectory(tmp_path / "run") == trajectory(tmp_path / "whole")
    assert train_steps(tmp_path / "run") == list(range(2, 13, 2))
    assert same_weights(tmp_path / "run", tmp_path / "whole")
    assert_clean(tmp_path / "run")


def test_metrics_cut_mid_line_are_dropped_on_resume(run):
    """A kill in the middle of a metrics line leaves a fragment; the resumed run drops it."""
    records = read_metrics(run)
    with open(run / METRICS, "a") as handle:
        handle.write('{"kind": "train", "loss": 1.2, "st')
    MetricLogger(run, tensorboard=False).truncate_after(2)
    lines = (run / METRICS).read_text().splitlines()
    kept = [r for r in records if r["kind"] != "final"]  # the resumed run writes its own final record
    assert kept and len(kept) < len(records)
    assert [json.loads(line) for line in lines] == kept  # every line whole, the fragment gone
    assert_clean(run)


# ----------------------------------------------------------------------------- 2. one run per directory


def test_second_run_on_the_same_directory_is_refused(tmp_path):
    config, run = write_config(tmp_path / "c.yaml", max_steps=100_000, eval_every=100_000,
                               checkpoint_every=50), tmp_path / "run"
    args = [sys.executable, "-m", "linalgformer", "train", "--config", str(config), "--out", str(run), "--quiet"]
    first = subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while not train_steps(run) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None and train_steps(run), "the first run did not start training"
        config_bytes = (run / ckpt.CONFIG).read_bytes()
        second = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        assert_one_clear_error(second.returncode, second.stderr.strip(), "already training")
        assert (run / ckpt.CONFIG).read_bytes() == config_bytes
        assert first.poll() is None  # the first run is undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    with ckpt.run_lock(run):  # a killed run leaves no stale lock behind
        pass


# ----------------------------------------------------------------------------- fixtures: one trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("reliability") / "run"
    train_run(tiny_config(max_steps=2, checkpoint_every=2, eval_every=100, log_every=1), path, progress=False)
    return path


@pytest.fixture
def run(trained, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(trained, path)
    return path


def test_interrupted_save_is_completed_by_the_next_reader(trained, tmp_path, monkeypatch):
    """In-process version of the kill points: after a save stopped at each of its renames, the
    checkpoint is the old one (before the commit) or the new one (after), and loadable."""
    run = trained
    config = tiny_config(max_steps=2)
    experiment = build_experiment(config)
    state = ckpt.load_train_state(run)
    for phase, target in enumerate(["model.safetensors.next", "train_state.pt.next", ckpt.MANIFEST,
                                    ckpt.WEIGHTS, ckpt.STATE]):
        trial = tmp_path / f"phase{phase}"
        shutil.copytree(run, trial)
        real = os.replace

        def interrupted(src, dst, target=target):
            if os.path.basename(str(dst)) == target:
                raise KeyboardInterrupt  # stands in for a kill at this point
            return real(src, dst)

        torch.manual_seed(phase)
        model = experiment.build_model()
        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", interrupted)
            with pytest.raises(KeyboardInterrupt):
                ckpt.save_checkpoint(trial, config, model, dict(state, step=4))
        committed = phase >= 3
        with ckpt.run_lock(trial):  # a resuming run finishes or discards the interrupted save
            manifest = ckpt.verify_checkpoint(trial)
        assert manifest["step"] == (4 if committed else 2)
        tensors, _ = ckpt.load_weights(trial / ckpt.WEIGHTS)
        expected = model.state_dict() if committed else load_file(str(run / ckpt.WEIGHTS))
        assert tensors.keys() == expected.keys() and all(torch.equal(tensors[k], expected[k]) for k in tensors)
        assert ckpt.load_train_state(trial)["step"] == manifest["step"]
        assert_clean(trial)


# ----------------------------------------------------------------------------- 3. damaged and hostile files


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "weights-truncated": (lambda r: truncate(r / ckpt.WEIGHTS), "corrupt", "both"),
    "weights-bit-flip": (lambda r: flip(r / ckpt.WEIGHTS), "corrupt", "both"),
    "weights-empty": (lambda r: (r / ckpt.WEIGHTS).write_bytes(b""), "corrupt", "both"),
    "weights-missing": (lambda r: (r / ckpt.WEIGHTS).unlink(), "missing", "both"),
    "state-truncated": (lambda r: truncate(r / ckpt.STATE), "corrupt", "train"),
    "state-bit-flip": (lambda r: flip(r / ckpt.STATE), "corrupt", "train"),
    "state-missing": (lambda r: (r / ckpt.STATE).unlink(), "missing", "train"),
    "manifest-truncated": (lambda r: truncate(r / ckpt.MANIFEST), "damaged", "both"),
    "manifest-not-json": (lambda r: (r / ckpt.MANIFEST).write_bytes(b"\xff\xfe garbage"), "damaged", "both"),
    "manifest-a-list": (lambda r: (r / ckpt.MANIFEST).write_text("[1, 2]"), "damaged", "both"),
    "manifest-files-a-list": (lambda r: (r / ckpt.MANIFEST).write_text(
        json.dumps({"format": ckpt.FORMAT, "files": []})), "unknown format", "both"),
    "manifest-other-format": (lambda r: (r / ckpt.MANIFEST).write_text(
        json.dumps({"format": "pickle-1", "files": {}})), "unknown format", "both"),
    "config-truncated": (lambda r: truncate(r / ckpt.CONFIG), "not valid JSON", "both"),
}


@pytest.mark.parametrize("damage, words, commands", DAMAGE.values(), ids=list(DAMAGE))
def test_damaged_checkpoint_is_one_clear_error(damage, words, commands, run, tmp_path, capsys):
    damage(run)
    before = fingerprint(run)
    cases = [["train", "--out", run, "--quiet"]]  # resume with the run's own config
    if commands == "both":
        cases.append(["evaluate", run, "--count", "4", "--device", "cpu"])
    for args in cases:
        code, err = run_cli(args, capsys)
        assert_one_clear_error(code, err, words)
        assert fingerprint(run) == before  # nothing already written is lost or changed


def plant_pickle(run: Path, marker: Path, how: str) -> None:
    state = {"step": 2, "optimizer": Payload(marker)}
    if how == "torch.save":
        torch.save(state, run / ckpt.STATE)
    else:
        with open(run / ckpt.STATE, "wb") as handle:
            pickle.dump(state, handle, protocol=2)
    resign(run, ckpt.STATE)  # the checksum now vouches for it: only weights_only stands in the way


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_planted_pickle_never_runs(how, run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    plant_pickle(run, marker, how)
    code, err = run_cli(["train", "--out", run, "--quiet"], capsys)
    assert_one_clear_error(code, err, "refusing to load")
    code, err = run_cli(["evaluate", run, "--count", "4", "--device", "cpu"], capsys)
    assert code == 0, err  # evaluate reads only the (verified, safetensors) weights
    with pytest.raises(UserError, match="refusing to load"):
        ckpt.load_train_state(run)
    assert not marker.exists()


def test_signed_state_that_is_not_a_dict_is_refused(run, capsys):
    torch.save([1, 2, 3], run / ckpt.STATE)
    resign(run, ckpt.STATE)
    code, err = run_cli(["train", "--out", run, "--quiet"], capsys)
    assert_one_clear_error(code, err, "not a training state")


def test_pickle_posing_as_weights_never_runs(run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"w": Payload(marker)}, run / ckpt.WEIGHTS)
    resign(run, ckpt.WEIGHTS)
    for args in (["evaluate", run, "--count", "4", "--device", "cpu"],
                 ["train", "--out", run, "--quiet"],
                 ["predict", run, "--matrix", "1 2 3; 4 5 6; 7 8 9"]):
        code, err = run_cli(args, capsys)
        assert_one_clear_error(code, err, "not a valid safetensors")
    assert not marker.exists()


def safetensors_bytes(header: dict | bytes, header_len: int | None = None, body: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + body


ABSURD_WEIGHTS = {
    "header-length-2^63": safetensors_bytes({"__metadata__": {}}, header_len=2**63),
    "header-length-beyond-file": safetensors_bytes({"__metadata__": {}}, header_len=10**12),
    "tensor-of-2^62-elements": safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 2**64 - 1]}}, body=b"\0" * 8),
    "tensor-beyond-file": safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, 4 * 2**20]}}, body=b"\0" * 8),
    "offsets-disagree-with-shape": safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}, body=b"\0" * 16),
    "header-not-json": safetensors_bytes(b"{not json" + b" " * 7),
    "only-8-bytes": struct.pack("<Q", 2**40),
}


@pytest.mark.parametrize("data", ABSURD_WEIGHTS.values(), ids=list(ABSURD_WEIGHTS))
def test_absurd_safetensors_header_is_rejected(data, run, capsys):
    (run / ckpt.WEIGHTS).write_bytes(data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(UserError, match="not a valid safetensors"):
        ckpt.load_weights(run / ckpt.WEIGHTS)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 * 1024  # nothing near the claim
    resign(run, ckpt.WEIGHTS)
    code, err = run_cli(["evaluate", run, "--count", "4", "--device", "cpu"], capsys)
    assert_one_clear_error(code, err, "not a valid safetensors")


def test_data_file_of_absurd_size_is_refused_unread(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(5 * 2**40)  # 5 TiB, sparse: stat says so, nothing is on disk
    with pytest.raises(UserError, match="TiB|GiB"):
        datafile.read_examples(path, build_experiment(tiny_config()).problem)
    with pytest.raises(UserError, match="huge.txt"):
        train_run(tiny_config(max_steps=2, data_file=str(path)), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_data_file_with_an_absurd_line_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_text("V3 V3 " + "+ 100 E-2 " * (8 * 2**20 // 10))  # 8 MiB, no newline
    problem = build_experiment(tiny_config()).problem
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="line 1 is longer than"):
            datafile.read_examples(path, problem)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * datafile.MAX_LINE_CHARS + 2**20  # one bounded line, not the 8 MiB


def test_data_file_whose_padded_arrays_would_be_absurd_is_refused(tmp_path, monkeypatch):
    from linalgformer.cli import main as cli_main

    path = tmp_path / "data.txt"
    assert cli_main(["generate", "--problem", "transpose", "--dim", "3", "--count", "40", "--out", str(path)]) == 0
    problem = build_experiment(tiny_config()).problem
    sources, targets = datafile.read_examples(path, problem)
    assert sources.ids.shape[0] == 40
    monkeypatch.setattr(datafile, "MAX_ARRAY_BYTES", 40 * sources.ids.shape[1] * 8 - 1)
    with pytest.raises(UserError, match="padded"):
        datafile.read_examples(path, problem)


# ----------------------------------------------------------------------------- 5. numerical faults


def fp16_trainer(tmp_path: Path) -> Trainer:
    config = tiny_config(max_steps=3, precision="fp16", device="cpu", eval_every=100, checkpoint_every=100,
                         log_every=1, warmup_steps=0)
    experiment = build_experiment(config)
    torch.manual_seed(0)
    model = experiment.build_model()
    (tmp_path / "run").mkdir()
    rt = Runtime(torch.device("cpu"), autocast_dtype=torch.float16)
    return Trainer(config, experiment, model, rt, tmp_path / "run", MetricLogger(tmp_path / "run", tensorboard=False),
                   progress_enabled=False)


def test_fp16_uses_a_grad_scaler(tmp_path):
    try:
        trainer = fp16_trainer(tmp_path)
        batch = trainer.experiment.sample_batch(np.random.default_rng(0), 8)
        trainer.step(batch)
    except (RuntimeError, NotImplementedError) as err:  # fp16 autocast/scaler unsupported on this CPU build
        pytest.skip(f"fp16 training is not supported here: {err}")
    assert isinstance(trainer.scaler, torch.amp.GradScaler) and trainer.scaler.is_enabled()
    assert trainer.scaler.get_scale() > 0
    trainer.save(time.time())
    state = ckpt.load_train_state(trainer.run_dir)
    assert "scale" in state["scaler"]  # the scaler's state is checkpointed (and restored on resume)


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(tmp_path):
    try:
        trainer = fp16_trainer(tmp_path)
        batch = trainer.experiment.sample_batch(np.random.default_rng(0), 8)
        trainer.step(batch)
    except (RuntimeError, NotImplementedError) as err:
        pytest.skip(f"fp16 training is not supported here: {err}")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    scale = trainer.scaler.get_scale()
    real_loss = type(trainer.experiment).loss
    type(trainer.experiment).loss = lambda self, model, b: real_loss(self, model, b) * float("inf")
    try:
        trainer.step(batch)
    finally:
        type(trainer.experiment).loss = real_loss
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the step was skipped
    assert trainer.scaler.get_scale() < scale
