"""The third reliability probe (issue 25, items 2-10), one table per class: each bad request ends in
exit status 2 and one sentence on stderr, no traceback, and leaves every file around it as it was
(the folder is hashed before and after, symlinks by their target and the target's content).

Classes: writing through links and onto special files or the run's own files; bounded, non-blocking
reads; deeply nested JSON; resource bombs; a full disk; strict ``--json``; the obvious spellings on
the command line; the Python API; a run directory whose name is not UTF-8."""

import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import linalgformer as lf
from linalgformer import checkpoint as ckpt
from linalgformer.cli import main, strict_json
from linalgformer.errors import UserError
from linalgformer.runs import load_run
from linalgformer.training import train_run
from tests.helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")
MATRIX = "1 2 3; 4 5 6; 7 8 9"
DEEP = 100_000  # nesting levels of the hostile JSON and YAML


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("third") / "run"
    train_run(tiny_config(max_steps=4, eval_every=100, checkpoint_every=100, log_every=2), path, progress=False)
    return path


def fingerprint(root: Path) -> dict:
    """Every entry under ``root``: a file's SHA-256, a link's target and the target's content, a FIFO."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.join(folder, os.readlink(path))
                out[path] = ("link", os.readlink(path), _content(target))
            else:
                out[path] = _content(path)
    return out


def _content(path: str):
    if not os.path.lexists(path):
        return "missing"
    if os.path.isdir(path):
        return "dir"
    if not os.path.isfile(path):
        return "special"
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def assert_refused(args, words, root: Path, capsys) -> str:
    """``main(args)`` exits 2 with one sentence holding ``words``; nothing under ``root`` changed."""
    before = fingerprint(root)
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("linalgformer: error: ") and words.lower() in err.lower(), err
    assert fingerprint(root) == before
    return err


def setup(tmp_path: Path, trained: Path) -> tuple[Path, Path]:
    """(a copy of the trained run, a folder of the user's own files outside it)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine\n")
    return run, outside


def OUT(tmp_path: Path) -> Path:  # (the folder of the user's own files, in the tables)
    return tmp_path / "outside"


def check_case(make, words, trained: Path, tmp_path: Path, capsys) -> None:
    """One row of a table: set the case up in a copy of the run, then it must be refused cleanly."""
    run, _ = setup(tmp_path, trained)
    args = make(tmp_path, run)
    capsys.readouterr()
    assert_refused(args, words, tmp_path, capsys)


def data_file(tmp_path: Path, name: str = "data.txt") -> Path:
    path = tmp_path / name
    assert main(["generate", "--dim", "3", "--count", "4", "--out", str(path)]) == 0
    return path


def replace_with(path: Path, make) -> Path:
    if path.exists() or path.is_symlink():
        path.unlink()
    make(path)
    return path


def fifo(path: Path) -> Path:
    return replace_with(path, os.mkfifo)


def link(path: Path, target: Path) -> Path:
    return replace_with(path, lambda p: p.symlink_to(target))


def resign(run: Path) -> None:
    """Make the manifest vouch for the files as they now are (a hostile but consistent run)."""
    manifest = json.loads((run / ckpt.MANIFEST).read_text())
    manifest["files"] = {name: ckpt.sha256(run / name) for name in (ckpt.WEIGHTS, ckpt.STATE)}
    (run / ckpt.MANIFEST).write_text(json.dumps(manifest))


# ----------------------------------------------------------------------------- 2. links and special files

TINY_RESUME = ["--max-steps", "6", "--quiet"]
LINKS = [
    ("metrics-symlink", lambda t, r: (link(r / "metrics.jsonl", OUT(t) / "notes.txt"),
                                         ["train", "--out", r] + TINY_RESUME)[1], "symbolic link"),
    ("metrics-dangling-symlink", lambda t, r: (link(r / "metrics.jsonl", OUT(t) / "new.txt"),
                                                  ["train", "--out", r] + TINY_RESUME)[1], "symbolic link"),
    ("lock-symlink", lambda t, r: (link(r / ".lock", OUT(t) / "lock"), ["train", "--out", r] + TINY_RESUME)[1],
     "symbolic link"),
    ("lock-fifo", lambda t, r: (fifo(r / ".lock"), ["train", "--out", r] + TINY_RESUME)[1], "FIFO"),
    ("generate-onto-fifo", lambda t, r: ["generate", "--out", fifo(t / "pipe")], "FIFO"),
    ("generate-through-symlink", lambda t, r: ["generate", "--out", link(t / "out.txt", OUT(t) / "notes.txt")],
     "symbolic link"),
    ("generate-onto-folder", lambda t, r: ["generate", "--out", OUT(t)], "folder"),
    ("predictions-onto-fifo", lambda t, r: ["evaluate", r, "--count", "2", "--save-predictions", fifo(t / "p")],
     "FIFO"),
    ("predictions-through-symlink", lambda t, r: ["evaluate", r, "--count", "2", "--save-predictions",
                                                     link(t / "p.jsonl", OUT(t) / "notes.txt")], "symbolic link"),
    ("predictions-onto-weights", lambda t, r: ["evaluate", r, "--count", "2", "--save-predictions",
                                                  r / ckpt.WEIGHTS], "run's own"),
    ("predictions-onto-manifest", lambda t, r: ["evaluate", r, "--count", "2", "--save-predictions",
                                                   r / ckpt.MANIFEST], "run's own"),
    ("predictions-hard-link-to-weights", lambda t, r: (os.link(r / ckpt.WEIGHTS, t / "p.jsonl"),
                                                          ["evaluate", r, "--count", "2", "--save-predictions",
                                                           t / "p.jsonl"])[1], "run's own"),
    ("predictions-onto-data", lambda t, r: ["evaluate", r, "--data", data_file(t), "--save-predictions",
                                               t / "data.txt"], "reads"),
    ("analyze-plot-onto-weights", lambda t, r: ["analyze", r, "--count", "2", "--out", r / ckpt.WEIGHTS],
     "run's own"),
]


@pytest.mark.parametrize("name, make, words", LINKS, ids=[c[0] for c in LINKS])
def test_no_write_through_links_special_files_or_own_files(name, make, words, trained, tmp_path, capsys):
    check_case(make, words, trained, tmp_path, capsys)


# ----------------------------------------------------------------------------- 3. bounded reads


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


READS = [
    ("predict-file-fifo", lambda t, r: ["predict", r, "--file", fifo(t / "m")], "not a regular file"),
    ("predict-file-dev-zero", lambda t, r: ["predict", r, "--file", "/dev/zero"], "not a regular file"),
    ("predict-file-300MB-sparse", lambda t, r: ["predict", r, "--file", sparse(t / "m.txt", 300 * 2**20)],
     "more than"),
    ("manifest-fifo", lambda t, r: ["evaluate", fifo(r / ckpt.MANIFEST) and r, "--count", "2"], "damaged"),
    ("manifest-dev-zero", lambda t, r: ["evaluate", link(r / ckpt.MANIFEST, Path("/dev/zero")) and r, "--count", "2"],
     "damaged"),
    ("manifest-sparse", lambda t, r: ["evaluate", sparse(r / ckpt.MANIFEST, 300 * 2**20) and r, "--count", "2"],
     "damaged"),
    ("init-from-manifest-fifo", lambda t, r: ["train", "--out", t / "new", "--dim", "3", "--width", "32", "--heads", "2",
                                              "--layers", "1", "--set", f"train.init_from={fifo(r / ckpt.MANIFEST).parent}"],
     "damaged"),
    ("config-file-fifo", lambda t, r: ["train", "--config", fifo(t / "c.yaml"), "--out", t / "new"],
     "not a regular file"),
    ("config-file-dev-zero", lambda t, r: ["train", "--config", "/dev/zero", "--out", t / "new"],
     "not a regular file"),
    ("data-file-fifo", lambda t, r: ["evaluate", r, "--data", fifo(t / "d.txt")], "not a regular file"),
    ("data-file-dev-zero", lambda t, r: ["evaluate", r, "--data", "/dev/zero"], "not a regular file"),
    ("train-data-file-fifo", lambda t, r: ["train", "--out", t / "new", "--dim", "3", "--set",
                                           f"train.data_file={fifo(t / 'd.txt')}"], "not a regular file"),
]


@pytest.mark.parametrize("name, make, words", READS, ids=[c[0] for c in READS])
def test_reads_are_bounded_and_never_block(name, make, words, trained, tmp_path, capsys):
    check_case(make, words, trained, tmp_path, capsys)


def test_standard_input_is_read_up_to_its_limit(trained, tmp_path):
    """``predict`` from stdin = /dev/zero: refused after reading at most the limit (memory bounded)."""
    with open("/dev/zero", "rb") as zero:
        done = run_cli(["predict", str(trained)], stdin=zero, limit_memory=True)
    assert done.returncode == 2 and "more than" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def run_cli(args, stdin=None, stdout=subprocess.PIPE, file_size: int | None = None, limit_memory: bool = False):
    """``python -m linalgformer ARGS`` in a subprocess (with a file-size or memory limit)."""
    def limits():
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "linalgformer", *map(str, args)], stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=limits, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done


# ----------------------------------------------------------------------------- 4. deeply nested JSON


def deep_weights(run: Path) -> None:
    """The weights' metadata config nested DEEP levels, the manifest re-signed to match."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(run / ckpt.WEIGHTS))
    save_file(tensors, str(run / ckpt.WEIGHTS), metadata={"format": ckpt.FORMAT, "config": "[" * DEEP + "]" * DEEP})
    resign(run)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


NESTED = [
    ("manifest", lambda t, r: ["evaluate", write(r / ckpt.MANIFEST, "[" * DEEP + "]" * DEEP) and r, "--count", "2"],
     "damaged"),
    ("manifest-just-deep-enough-to-parse", lambda t, r: ["evaluate", write(r / ckpt.MANIFEST, '{"a":' * 900 + "1"
                                                                           + "}" * 900) and r], "damaged"),
    ("config-json", lambda t, r: ["evaluate", write(r / ckpt.CONFIG, '{"a":' * DEEP + "1" + "}" * DEEP) and r],
     "config.json"),
    ("weights-metadata", lambda t, r: (deep_weights(r), ["train", "--out", r] + TINY_RESUME)[1], "metadata"),
    ("results-file", lambda t, r: ["results", write(t / "x.result.json", "[" * DEEP + "]" * DEEP)], "nested too deeply"),
    ("jsonl-data-line", lambda t, r: ["evaluate", r, "--data", write(t / "d.jsonl", '{"input": ' + "[" * DEEP
                                                                      + "]" * DEEP + "}\n")], "nested too deeply"),
    ("yaml-config", lambda t, r: ["train", "--config", write(t / "c.yaml", "[" * DEEP + "]" * DEEP), "--out", t / "new"],
     "nested too deeply"),
]


@pytest.mark.parametrize("name, make, words", NESTED, ids=[c[0] for c in NESTED])
def test_deeply_nested_json_is_one_sentence(name, make, words, trained, tmp_path, capsys):
    check_case(make, words, trained, tmp_path, capsys)


# ----------------------------------------------------------------------------- 5. resource bombs

TINY_NEW = ["--dim", "3", "--width", "32", "--heads", "2", "--layers", "1", "--batch-size", "8", "--quiet"]
MANY = lambda value, n: ",".join([value] * n)  # noqa: E731
BOMBS = [
    ("model-width", lambda t, r: ["train", "--out", t / "new", "--width", str(2**20)] + TINY_NEW[:2] + ["--heads", "2"],
     "model.width"),
    ("max-len", lambda t, r: ["train", "--out", t / "new", *TINY_NEW, "--set", "model.max_len=10000000000"], "max_len"),
    ("ffn-ratio", lambda t, r: ["train", "--out", t / "new", *TINY_NEW, "--set", "model.ffn_ratio=100000000"], "ffn_ratio"),
    ("batch-size", lambda t, r: ["train", "--out", t / "new", *TINY_NEW[:-3], "--batch-size", str(10**12)], "batch_size"),
    ("valid-count", lambda t, r: ["train", "--out", t / "new", *TINY_NEW, "--set", "train.valid_count=100000000000"],
     "valid_count"),
    ("generate-dim-99-count-1e7", lambda t, r: ["generate", "--dim", "99", "--count", "10000000", "--out", t / "x.txt"],
     "needs at least"),
    ("evaluate-count-x-sizes", lambda t, r: ["evaluate", r, "--count", "1000000", "--dim", MANY("30", 100)],
     "needs at least"),
    ("evaluate-thousands-of-sizes", lambda t, r: ["evaluate", r, "--count", "1", "--dim", MANY("3", 5000)], "at most 100"),
    ("evaluate-thousands-of-laws", lambda t, r: ["evaluate", r, "--count", "1", "--distribution", MANY("gaussian", 5000)],
     "at most 100"),
    ("analyze-thousands-of-laws", lambda t, r: ["analyze", r, "--count", "1", "--distribution", MANY("gaussian", 5000),
                                                "--out", t / "a.png"], "at most 100"),
    ("analyze-bins", lambda t, r: ["analyze", r, "--bins", str(10**9), "--out", t / "a.png"], "at most 100"),
]


@pytest.mark.parametrize("name, make, words", BOMBS, ids=[c[0] for c in BOMBS])
def test_resource_bombs_are_refused_before_work_starts(name, make, words, trained, tmp_path, capsys):
    check_case(make, words, trained, tmp_path, capsys)


# ----------------------------------------------------------------------------- 6. a full disk


def test_output_to_a_full_disk_is_one_sentence(tmp_path):
    with open("/dev/full", "w") as full:
        done = run_cli(["generate", "--count", "50"], stdout=full)
    assert done.returncode == 2 and "No space left" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = run_cli(["generate", "--count", "50", "--out", "/dev/full"])
    assert done.returncode == 2 and "device" in done.stderr


def test_writes_beyond_the_file_size_limit_are_one_sentence_and_keep_the_checkpoint(trained, tmp_path):
    """RLIMIT_FSIZE (EFBIG, as a full disk gives ENOSPC): the resumed run's checkpoint write fails in
    one sentence and the previous checkpoint still loads; --out and --save-predictions leave nothing."""
    run, _ = setup(tmp_path, trained)
    step = json.loads((run / ckpt.MANIFEST).read_text())["step"]
    before = fingerprint(tmp_path / "outside")
    done = run_cli(["train", "--out", run, "--max-steps", "6", "--quiet"], file_size=20_000)
    assert done.returncode == 2 and "File too large" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert ckpt.verify_checkpoint(run)["step"] == step
    load_run(run)
    assert not [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".next"))]
    done = run_cli(["generate", "--count", "500", "--out", tmp_path / "x.txt"], file_size=2_000)
    assert done.returncode == 2 and "File too large" in done.stderr and not (tmp_path / "x.txt").exists()
    done = run_cli(["evaluate", run, "--count", "200", "--save-predictions", tmp_path / "p.jsonl"], file_size=2_000)
    assert done.returncode == 2 and "File too large" in done.stderr and not (tmp_path / "p.jsonl").exists()
    assert not list(tmp_path.glob(".*.tmp")) and fingerprint(tmp_path / "outside") == before


# ----------------------------------------------------------------------------- 7. strict JSON


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"not RFC 8259 JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict(trained, capsys):
    assert strict_json({"a": math.inf, "b": [np.float64("nan"), np.int64(3)], 4: (1.5, None)}) == \
        {"a": None, "b": [None, 3], "4": [1.5, None]}
    assert main(["evaluate", str(trained), "--count", "3", "--json"]) == 0
    out = strict_loads(capsys.readouterr().out)
    assert "median_d1" in out  # a model trained 4 steps: its median error is not finite, so null
    assert out["median_d1"] is None or math.isfinite(out["median_d1"])


# ----------------------------------------------------------------------------- 8. the obvious spellings


@pytest.mark.parametrize("args", [["--matrix", "-1,2,3;4,5,6;7,8,-9"], ["--matrix=-1,2,3;4,5,6;7,8,-9"],
                                  ["--matrix", "-1 2 3; 4 5 6; 7 8 9", "--json"]])
def test_a_matrix_starting_with_minus(args, trained, capsys):
    assert main(["predict", str(trained), *args]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_continuous_encoding_picks_matrix_positions(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--encoding", "continuous", "--out", str(out), "--max-steps", "2", "--eval-every", "100",
            "--set", "train.valid_count=4", *TINY_NEW]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((out / ckpt.CONFIG).read_text())["model"]["positions"] == "matrix"


def test_a_file_here_named_like_a_bundled_model_does_not_shadow_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "transpose-3x3").write_text("my notes")
    assert main(["predict", "transpose-3x3", "--matrix", MATRIX]) == 0
    assert "model:" in capsys.readouterr().out
    (tmp_path / "transpose").mkdir()
    assert_refused(["predict", "transpose", "--matrix", MATRIX], "hides the bundled transpose models", tmp_path, capsys)
    assert isinstance(lf.load("transpose-3x3"), lf.Model)


# ----------------------------------------------------------------------------- 9. the Python API


@pytest.fixture(scope="module")
def model(trained):
    return lf.load(trained, device="cpu")


def set_grammar(model, value):
    model.grammar = value


API = [
    ("load-a-number", lambda m, t: lf.load(123), "named by"),
    ("load-bad-device", lambda m, t: lf.load(m.path, device="tpu"), "device"),
    ("load-device-not-text", lambda m, t: lf.load(m.path, device=0), "device"),
    ("evaluate-seed-negative", lambda m, t: m.evaluate(count=2, seed=-1), "seed"),
    ("evaluate-bound-1e308", lambda m, t: m.evaluate(count=2, bound=1e308), "at most"),
    ("evaluate-distribution-not-text", lambda m, t: m.evaluate(count=2, distribution=5), "distribution"),
    ("evaluate-dims-not-a-list", lambda m, t: m.evaluate(count=2, dims="3"), "dims"),
    ("evaluate-predictions-a-folder", lambda m, t: m.evaluate(count=2, save_predictions=t), "folder"),
    ("evaluate-count-true", lambda m, t: m.evaluate(count=True), "count"),
    ("analyze-bins-1e9", lambda m, t: m.analyze(count=2, bins=10**9), "bins"),
    ("generate-seed-negative", lambda m, t: lf.generate("transpose", dim=3, seed=-1), "seed"),
    ("generate-bomb", lambda m, t: lf.generate("transpose", dim=99, count=10_000_000), "needs at least"),
    ("predict-complex", lambda m, t: m.predict(np.eye(3) * 1j), "complex"),
    ("answer-complex", lambda m, t: m.answer(np.eye(3) + 1j), "complex"),
    ("predict-text", lambda m, t: m.predict(np.array([["a", "b"], ["c", "d"]])), "numbers"),
    ("predict-3x4-to-3x3", lambda m, t: m.predict(np.ones((3, 4))), "3x3"),
    ("grammar-not-a-bool", lambda m, t: set_grammar(m, "no"), "True or False"),
]


@pytest.mark.parametrize("name, call, words", API, ids=[c[0] for c in API])
def test_api_raises_one_user_error(name, call, words, model, tmp_path):
    before = fingerprint(tmp_path), fingerprint(model.path)
    with pytest.raises(UserError) as caught:
        call(model, tmp_path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and len(message) <= 300 and words.lower() in message.lower(), message
    assert (fingerprint(tmp_path), fingerprint(model.path)) == before
    assert model.grammar is False


# ----------------------------------------------------------------------------- 10. a name that is not UTF-8


def test_a_run_directory_whose_name_is_not_utf8_is_refused_at_the_start(tmp_path, capsys):
    out = os.fsdecode(bytes(tmp_path) + b"/run-\xff")
    assert_refused(["train", "--out", out, *TINY_NEW], "not valid UTF-8", tmp_path, capsys)
    with pytest.raises(UserError, match="UTF-8"):
        lf.train(tiny_config(max_steps=1), out, progress=False)
    assert list(tmp_path.iterdir()) == []
