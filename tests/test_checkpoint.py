import os
import pickle

import pytest
import torch

from linalgformer import checkpoint as ckpt
from linalgformer import files
from linalgformer.errors import UserError


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    files.atomic_write_text(path, "old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        files.atomic_write(path, boom)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_planted_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / ckpt.STATE, "wb") as handle:
        pickle.dump({"step": 1, "x": Payload()}, handle)
    with pytest.raises(UserError, match="refusing to load"):
        ckpt.load_train_state(tmp_path)
    assert not (tmp_path / "pwned-by-pickle").exists()


def test_weights_file_that_is_not_safetensors(tmp_path):
    (tmp_path / ckpt.WEIGHTS).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="not a valid safetensors"):
        ckpt.load_weights(tmp_path / ckpt.WEIGHTS)


def test_lock_refuses_second_holder(tmp_path):
    with ckpt.run_lock(tmp_path):
        with pytest.raises(UserError, match="already training"):
            with ckpt.run_lock(tmp_path):
                pass
    with ckpt.run_lock(tmp_path):  # released
        pass


def test_train_state_round_trip_weights_only(tmp_path):
    state = {"step": 3, "torch_rng": torch.get_rng_state(), "betas": (0.9, 0.99), "nested": {"a": [1, 2.0]}}
    torch.save(state, tmp_path / ckpt.STATE)
    loaded = ckpt.load_train_state(tmp_path)
    assert loaded["step"] == 3 and loaded["betas"] == (0.9, 0.99) and torch.equal(loaded["torch_rng"], state["torch_rng"])
