"""Bad input everywhere a user can type: exit status 2, one sentence, no traceback, nothing changed."""

import hashlib
import os
import stat

import pytest

from linalgformer.cli import main
from linalgformer.training import train_run
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    train_run(tiny_config(max_steps=5, eval_every=100, checkpoint_every=100), path, progress=False)
    return path


@pytest.fixture(scope="module")
def corrupt_run(run_dir, tmp_path_factory):
    import shutil

    path = tmp_path_factory.mktemp("corrupt") / "run"
    shutil.copytree(run_dir, path)
    (path / "model.safetensors").write_bytes(b"not weights at all")
    return path


def fingerprint(path):
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            if name != ".lock":
                full = os.path.join(root, name)
                out[full] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return out


def bad_yaml(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


CASES = [
    # generate
    ("generate-unknown-problem", lambda r, t: ["generate", "--problem", "nope"], "unknown problem"),
    ("generate-unknown-encoding", lambda r, t: ["generate", "--encoding", "P7"], "problem.encoding must be one of"),
    ("generate-unknown-law", lambda r, t: ["generate", "--problem", "eigenvalues", "--distribution", "cauchy"], "cauchy"),
    ("generate-law-nonsymmetric", lambda r, t: ["generate", "--problem", "transpose", "--distribution", "laplace"], "symmetric"),
    ("generate-dim-zero", lambda r, t: ["generate", "--dim", "0"], "at least 1"),
    ("generate-dim-huge", lambda r, t: ["generate", "--dim", "500"], "V500"),
    ("generate-bad-int", lambda r, t: ["generate", "--dim", "five"], "invalid int"),
    ("generate-min-gt-max", lambda r, t: ["generate", "--min-dim", "6", "--max-dim", "4"], "dim"),
    ("generate-count-zero", lambda r, t: ["generate", "--count", "0"], "at least 1"),
    ("generate-unwritable", lambda r, t: ["generate", "--out", str(t / "missing" / "x.txt")], "does not exist"),
    ("generate-bad-format", lambda r, t: ["generate", "--format", "xml"], "invalid choice"),
    # train
    ("train-unknown-key", lambda r, t: ["train", "--out", str(t / "new"), "--set", "train.nope=1"], "unknown key"),
    ("train-unknown-section", lambda r, t: ["train", "--config", bad_yaml(t, "family: charton\nextra: 1\n"), "--out", str(t / "new")], "unknown config section"),
    ("train-bad-yaml", lambda r, t: ["train", "--config", bad_yaml(t, "problem: [1, 2\n"), "--out", str(t / "new")], "not valid YAML"),
    ("train-missing-config", lambda r, t: ["train", "--config", str(t / "none.yaml"), "--out", str(t / "new")], "cannot read"),
    ("train-bad-value", lambda r, t: ["train", "--out", str(t / "new"), "--set", "train.max_steps=lots"], "integer"),
    ("train-bad-lr", lambda r, t: ["train", "--out", str(t / "new"), "--lr", "abc"], "invalid float"),
    ("train-unknown-family", lambda r, t: ["train", "--family", "quantum", "--out", str(t / "new")], "unknown experiment family"),
    ("train-wrong-family", lambda r, t: ["train", "--family", "spectral", "--config", "configs/demo.yaml", "--out", str(t / "new")], "key of the charton family"),
    ("evaluate-bad-bound", lambda r, t: ["evaluate", str(r), "--bound", "-3"], "positive number"),
    ("train-unknown-problem", lambda r, t: ["train", "--problem", "nope", "--out", str(t / "new")], "unknown problem"),
    ("train-width-heads", lambda r, t: ["train", "--width", "30", "--heads", "4", "--out", str(t / "new")], "divisible"),
    ("train-changed-model", lambda r, t: ["train", "--out", str(r), "--width", "64"], "different model"),
    ("train-foreign-dir", lambda r, t: ["train", "--out", str(t / "foreign")], "not a linalgformer run"),
    ("train-bad-precision", lambda r, t: ["train", "--out", str(t / "new"), "--precision", "fp8"], "precision"),
    ("train-set-syntax", lambda r, t: ["train", "--out", str(t / "new"), "--set", "justakey"], "key=value"),
    # evaluate
    ("evaluate-missing-dir", lambda r, t: ["evaluate", str(t / "nothing")], "does not exist"),
    ("evaluate-foreign-dir", lambda r, t: ["evaluate", str(t / "foreign")], "not a linalgformer run"),
    ("evaluate-corrupt", lambda r, t: ["evaluate", "CORRUPT"], "corrupt"),
    ("evaluate-unknown-law", lambda r, t: ["evaluate", str(r), "--distribution", "cauchy"], "matrix family"),
    ("evaluate-bad-dim", lambda r, t: ["evaluate", str(r), "--dim", "3,x"], "integers"),
    ("evaluate-dim-too-large", lambda r, t: ["evaluate", str(r), "--dim", "30", "--count", "2"], "positions"),
    ("evaluate-count-zero", lambda r, t: ["evaluate", str(r), "--count", "0"], "at least 1"),
    ("evaluate-beam-zero", lambda r, t: ["evaluate", str(r), "--beam", "0"], "at least 1"),
    # predict
    ("predict-ragged", lambda r, t: ["predict", str(r), "--matrix", "[[1,2,3],[4,5]]"], "ragged"),
    ("predict-nan", lambda r, t: ["predict", str(r), "--matrix", "1 2 3; 4 nan 6; 7 8 9"], "finite"),
    ("predict-inf", lambda r, t: ["predict", str(r), "--matrix", "[[1,2,3],[4,Infinity,6],[7,8,9]]"], "finite"),
    ("predict-text", lambda r, t: ["predict", str(r), "--matrix", "hello world"], "not a number"),
    ("predict-empty", lambda r, t: ["predict", str(r), "--matrix", ""], "empty"),
    ("predict-huge-value", lambda r, t: ["predict", str(r), "--matrix", "1e200 0 0; 0 1 0; 0 0 1"], "too large"),
    ("predict-wrong-size", lambda r, t: ["predict", str(r), "--matrix", "[[" + "],[".join([",".join(["1"] * 30)] * 30) + "]]"], "trained on 3x3"),
    ("predict-missing-file", lambda r, t: ["predict", str(r), "--file", str(t / "m.txt")], "cannot read"),
    ("predict-unknown-model", lambda r, t: ["predict", "no-such-model", "--matrix", "1"], "neither a run directory"),
    ("predict-corrupt", lambda r, t: ["predict", "CORRUPT", "--matrix", "1 2 3; 4 5 6; 7 8 9"], "corrupt"),
    # reproduce / plot
    ("reproduce-unknown", lambda r, t: ["reproduce", "nope"], "unknown preset"),
    ("plot-no-metrics", lambda r, t: ["plot", str(t / "foreign"), "--out", str(t / "p.png")], "no metrics"),
]


@pytest.mark.parametrize("name, make_args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, make_args, words, run_dir, corrupt_run, tmp_path, capsys):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    args = [str(corrupt_run) if a == "CORRUPT" else a for a in make_args(run_dir, tmp_path)]
    before = fingerprint(run_dir), fingerprint(tmp_path)
    with pytest.raises(SystemExit) if "invalid" in words else _no_exit():
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert words.lower() in err.lower(), err
    if "invalid" not in words:
        assert len(err.splitlines()) == 1, err
    assert (fingerprint(run_dir), fingerprint(tmp_path)) == before
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["generate", "--dim", "five"])
    assert info.value.code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    assert main(["generate", "--out", str(locked / "x.txt")]) == 2


@pytest.mark.parametrize("flag", [["--encoding", "P10"], ["--enc-layers", "2"], ["--distribution", "laplace"]])
def test_charton_flags_are_refused_for_other_families(flag, tmp_path, capsys):
    assert main(["train", "--family", "spectral", *flag, "--out", str(tmp_path / "run")]) == 2
    assert "does not apply to the spectral family" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_layers_sets_the_depth_of_any_family(tmp_path):
    from linalgformer.cli import build_parser, train_config_dict

    args = build_parser().parse_args(["train", "--family", "newton", "--layers", "5", "--out", str(tmp_path)])
    assert train_config_dict(args)["model"] == {"layers": 5}
    args = build_parser().parse_args(["train", "--layers", "3", "--out", str(tmp_path)])
    assert train_config_dict(args)["model"]["enc_layers"] == train_config_dict(args)["model"]["dec_layers"] == 3
