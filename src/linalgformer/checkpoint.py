"""Run directories: safe, atomic, verifiable checkpoints.

A run directory holds

* ``config.json``      the resolved :class:`~linalgformer.config.RunConfig` (written at the start);
* ``model.safetensors`` the weights (safetensors: no code can hide in it), with the run config in
  the file's metadata so that the weights carry their own config;
* ``train_state.pt``   optimizer, scheduler, step, examples seen, elapsed time and RNG states, saved
  with ``torch.save`` and read back with ``weights_only=True`` (tensors and plain Python values only);
* ``checkpoint.json``  the manifest: step and the SHA-256 of both files above. A file that was
  truncated or altered after the manifest was written is detected on load.
* ``metrics.jsonl``    one JSON object per log step and per evaluation (see ``tracking``).

Every file is written to a temporary name in the same directory, fsynced and renamed. A checkpoint is
saved in three phases so that a run killed at any moment leaves one complete, loadable checkpoint:

1. the new weights and state are staged as ``model.safetensors.next`` and ``train_state.pt.next``;
2. the manifest naming their checksums is renamed into place: this is the commit point;
3. the staged files are renamed over the old ones.

A kill before 2 leaves the old manifest and the old files (the staged ones are stale and ignored);
a kill after 2 leaves staged files that match the new manifest, and the next reader
(:func:`verify_checkpoint`) finishes step 3. The run lock removes stale temporary files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.files import (TEMP_SUFFIX, atomic_write_bytes, atomic_write_text, fsync_dir, open_lock,
                               parse_json, read_json)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE = "train_state.pt"
MANIFEST = "checkpoint.json"
LOCK = ".lock"
FORMAT = "linalgformer-checkpoint-1"
STAGED = ".next"  # suffix of a checkpoint file written but not yet moved into place


MAX_MANIFEST_BYTES = 2**20


def state_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: Path, config: RunConfig, model: torch.nn.Module,
                    state: dict[str, Any]) -> None:
    """Stage weights and training state, commit the manifest that vouches for both, move them in."""
    run_dir = Path(run_dir)
    tied = tied_names(model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in tied}
    meta = {"format": FORMAT, "config": json.dumps(config.to_dict(), sort_keys=True)}
    # serialised in memory, written by atomic_write: a full disk is one UserError, the old checkpoint kept
    atomic_write_bytes(run_dir / (WEIGHTS + STAGED), safetensors_bytes(tensors, metadata=meta))
    atomic_write_bytes(run_dir / (STATE + STAGED), state_bytes(state))
    manifest = {"format": FORMAT, "step": int(state.get("step", 0)),
                "files": {name: sha256(run_dir / (name + STAGED)) for name in (WEIGHTS, STATE)}}
    atomic_write_text(run_dir / MANIFEST, json.dumps(manifest, indent=2))  # the commit point
    for name in (WEIGHTS, STATE):
        with contextlib.suppress(FileNotFoundError):  # a reader may have moved it in already
            os.replace(run_dir / (name + STAGED), run_dir / name)
    fsync_dir(run_dir)


def _finish_commit(run_dir: Path, name: str, expected: Any) -> None:
    """Move a staged file in if the manifest vouches for it (a save killed after its commit point)."""
    staged = run_dir / (name + STAGED)
    if not isinstance(expected, str) or not staged.is_file() or sha256(staged) != expected:
        return
    try:
        os.replace(staged, run_dir / name)
    except FileNotFoundError:
        pass  # another process moved it in first
    except OSError as err:
        raise UserError(f"{run_dir} holds an interrupted checkpoint that cannot be completed "
                        f"({err.strerror or err}).") from None
    fsync_dir(run_dir)


def recover(run_dir: Path) -> None:
    """Finish a save that was killed after its commit point; delete what a kill left half-written.

    Called with the run lock held (by :func:`run_lock`), so no other process is writing here."""
    run_dir = Path(run_dir)
    files = _manifest_files(run_dir)
    for name in (WEIGHTS, STATE):
        if (run_dir / (name + STAGED)).is_file():  # only staged files are hashed: the others stay as they are
            with contextlib.suppress(UserError):
                _finish_commit(run_dir, name, files.get(name))
    names = (WEIGHTS, STATE, MANIFEST, CONFIG, "metrics.jsonl")
    for path in run_dir.iterdir():
        temp = path.name.endswith(TEMP_SUFFIX) and any(path.name.startswith(f".{n}") for n in names)
        if temp or path.name in (WEIGHTS + STAGED, STATE + STAGED):
            with contextlib.suppress(OSError):
                path.unlink()


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / MANIFEST).exists()


def _read_manifest(run_dir: Path) -> Any:
    """The manifest, read bounded (a FIFO, a device or nesting too deep is a ValueError UserError)."""
    return read_json(Path(run_dir) / MANIFEST, "the checkpoint manifest", MAX_MANIFEST_BYTES)


def _manifest_files(run_dir: Path) -> dict:
    """The manifest's {name: sha256} ({} when it is missing or unreadable)."""
    try:
        files = _read_manifest(run_dir)["files"]
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return {}
    return files if isinstance(files, dict) else {}


def manifest_format(run_dir: Path) -> str | None:
    """The ``format`` of the run's checkpoint manifest (None when there is none or it is unreadable):
    a folder with one of ours is a run directory, also one written before runs carried a marker."""
    try:
        manifest = _read_manifest(run_dir)
    except (OSError, ValueError, RecursionError, UserError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def read_config(run_dir: Path) -> dict:
    """The run's config.json as a dict; UserError if the directory is not a linalgformer run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory." if run_dir.exists()
                        else f"run directory {run_dir} does not exist.")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a linalgformer run directory (no {CONFIG}).")
    try:
        data = read_json(path, "the run config")
    except (OSError, ValueError):
        raise UserError(f"{path} is not valid JSON: the run directory is damaged.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a run config.")
    return data


def verify_checkpoint(run_dir: Path, names: tuple[str, ...] = (WEIGHTS, STATE)) -> dict:
    """Check the manifest's checksums for ``names``; return the manifest."""
    run_dir = Path(run_dir)
    try:
        manifest = _read_manifest(run_dir)
        files = manifest["files"]
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no checkpoint yet (no {MANIFEST}).") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{run_dir / MANIFEST} is damaged: cannot verify the checkpoint.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise UserError(f"{run_dir} holds a checkpoint of an unknown format.")
    for name in names:
        path = run_dir / name
        if path.is_file() and sha256(path) == files.get(name):
            continue  # each file hashed once when it is sound
        _finish_commit(run_dir, name, files.get(name))
        if not path.is_file():
            raise UserError(f"checkpoint file {path} is missing.")
        if sha256(path) != files.get(name):
            raise UserError(f"checkpoint file {path} is corrupt or was altered (checksum mismatch).")
    return manifest


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a safetensors file; UserError for anything that is not one."""
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            meta = parse_json(handle.read(header_len), "the weights' header").get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a valid safetensors weights file ({type(err).__name__}).") from None
    return tensors, meta


def tied_names(model: torch.nn.Module) -> dict[str, str]:
    """{name: the first name of the same tensor} for weights tied to an earlier one (e.g. the shared
    embeddings and read-out of ``model.share_embeddings``): saved once, restored to every name."""
    first: dict[tuple, str] = {}
    tied = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype) if tensor.numel() else (name,)
        if key in first:
            tied[name] = first[key]
        else:
            first[key] = name
    return tied


def weights_config(path: Path) -> dict | None:
    """The run config kept in a weights file's metadata (None for weights saved without one)."""
    return metadata_config(load_weights(path)[1], path)


def metadata_config(meta: dict, path: Path) -> dict | None:
    """The run config in the metadata ``meta`` of the weights file ``path`` (None: saved without one)."""
    try:
        config = parse_json(meta["config"], f"the config in the metadata of {path}")
    except KeyError:
        return None
    except (TypeError, ValueError):
        raise UserError(f"the config in the metadata of {path} is damaged.") from None
    if not isinstance(config, dict):
        raise UserError(f"the config in the metadata of {path} is damaged.")
    return config


def load_model_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    tensors = dict(tensors)
    for name, source in tied_names(model).items():
        if name not in tensors and source in tensors:
            tensors[name] = tensors[source]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError:
        raise UserError(f"the weights in {where} do not match the model described by its config.") from None


def load_train_state(run_dir: Path) -> dict[str, Any]:
    """The training state, loaded with ``weights_only=True``: a planted pickle is refused."""
    path = Path(run_dir) / STATE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"refusing to load {path}: not a plain training state ({first[:120]}).") from None
    if not isinstance(state, dict):
        raise UserError(f"refusing to load {path}: it holds a {type(state).__name__}, not a training state.")
    return state


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory; a second run on it is refused."""
    path = Path(run_dir) / LOCK
    handle = open_lock(path)  # never through a link, never a FIFO
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another linalgformer process is already training in {run_dir}.") from None
        recover(run_dir)
        yield
    finally:
        handle.close()
