"""A run directory, owned here: recognised, opened, resolved, verified, restored, cleaned up.

The trainer (``training``) never touches the directory's policy: it receives a resolved config, a
model whose weights are loaded and the saved training state as a dict, and writes only checkpoints
and metrics. What this module decides:

* **Which folders are runs.** A run directory carries :data:`MARKER` (written when a run starts); a
  folder written before the marker existed is recognised by its checkpoint manifest
  (``checkpoint.json`` of format ``linalgformer-checkpoint-1``). Any other non-empty folder is
  refused, so ``train --out`` never overwrites a user's ``config.json`` or ``metrics.jsonl``.
* **The config of a resume** (:func:`resolve_config`): what would change the run is refused, what
  only extends it (steps, minutes, targets) is taken.
* **Verification, once.** :func:`read_saved` checks the manifest's checksums (each file hashed
  once) and reads the weights and the training state; nothing else re-reads them.
* **Cleanup of a failed new run** (:func:`opened`): only the files this process created go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from linalgformer import bundled
from linalgformer import checkpoint as ckpt
from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.experiments.plugin import Experiment
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.files import atomic_write_text

MARKER = ".linalgformer-run"  # a run directory's own mark (a folder without it is not ours)
MARKER_TEXT = "linalgformer run directory, format 1\n"
METRICS = "metrics.jsonl"
# What a new run writes in its directory: removed again if it fails before its first checkpoint
# (those of them that this process created).
NEW_RUN_FILES = (MARKER, ckpt.CONFIG, METRICS, ckpt.WEIGHTS + ckpt.STAGED, ckpt.STATE + ckpt.STAGED)
# Train-section fields that may change when a run is resumed (they do not alter the trajectory).
EXTENDABLE = {"max_steps", "max_examples", "max_minutes", "target_metric", "eval_every", "log_every",
              "checkpoint_every", "checkpoint_minutes", "workers", "compile", "threads", "device"}
# Train-section fields added after runs existed, with the behaviour such a run was trained with: a
# run whose config.json lacks one resumes with that value, so that it goes on as it started.
BEHAVIOUR_BEFORE = {"length_buckets": 1}
# Problem and model fields added after runs existed, whose default is what such a run did: a saved
# section that lacks one is read with the default, so that the run still resumes. (zero_gate_limit
# answer_views and view_average are rules of the read-out, not of the weights: an older gated run reads out with
# the new limit; an older run answers from one view, as it did.)
ADDED_LATER = {"problem": {"size_power": 0.0, "train_views": 0.0},
               "model": {"zero_gate": 0.0, "newton_steps": 0, "sign_free": False, "operand_units": False,
                         "loops": 0, "zero_gate_limit": 0.1,
                         "verifier_loss": 0.0, "answer_views": 1, "encoder_attention": "softmax",
                         "view_average": "mean"}}


def load_run(run_dir: Path, device: torch.device | str = "cpu") -> tuple[RunConfig, Experiment, torch.nn.Module]:
    """(config, experiment, model) of a trained run, weights verified and loaded, model in eval mode."""
    run_dir = Path(run_dir)
    config = run_config_from_dict(ckpt.read_config(run_dir))
    ckpt.verify_checkpoint(run_dir, (ckpt.WEIGHTS,))
    tensors, _ = ckpt.load_weights(run_dir / ckpt.WEIGHTS)
    experiment = build_experiment(config)
    model = experiment.build_model()
    ckpt.load_model_state(model, tensors, run_dir / ckpt.WEIGHTS)
    return config, experiment, model.to(device).eval()


# ----------------------------------------------------------------------------- recognising a run


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a linalgformer run: our marker, or (a run from before the marker) a
    checkpoint manifest of our format."""
    run_dir = Path(run_dir)
    return (run_dir / MARKER).is_file() or ckpt.manifest_format(run_dir) == ckpt.FORMAT


def check_run_dir(run_dir: Path) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding anything that is not a run of ours."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory; choose another --out.")
    if not run_dir.is_dir():
        return
    names = {path.name for path in run_dir.iterdir()} - {ckpt.LOCK}
    if ckpt.MANIFEST not in names and names & {ckpt.WEIGHTS, ckpt.STATE}:
        raise UserError(f"{run_dir} holds trained weights but no checkpoint manifest ({ckpt.MANIFEST}), so it "
                        f"cannot be resumed safely and is left untouched: train in a new --out, or move "
                        f"{ckpt.WEIGHTS} and {ckpt.STATE} out of it to start this run over.")
    if names and not is_run_dir(run_dir):
        raise UserError(f"{run_dir} exists and is not a linalgformer run directory (no {MARKER}); "
                        "choose another --out.")


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create run directory {run_dir}: {err.strerror or err}.") from None
    if not os.access(run_dir, os.W_OK):
        raise UserError(f"run directory {run_dir} is not writable.")


@contextlib.contextmanager
def opened(run_dir: Path, *, main: bool, fresh: bool) -> Iterator[None]:
    """Create ``run_dir`` and hold its run lock while the body trains (rank 0; other ranks just run).

    The marker is written (also into a run from before it). If a new run (``fresh``) fails before
    its first checkpoint, the files of :data:`NEW_RUN_FILES` that this process created are removed,
    and the directory too when this call made it and nothing else is left in it."""
    if not main:
        yield
        return
    created_dir = not run_dir.exists()
    make_run_dir(run_dir)
    try:
        with ckpt.run_lock(run_dir):
            before = {path.name for path in run_dir.iterdir()}
            if MARKER not in before:
                atomic_write_text(run_dir / MARKER, MARKER_TEXT)
            try:
                yield
            except BaseException:
                if fresh and not ckpt.has_checkpoint(run_dir):
                    _remove(run_dir, [name for name in NEW_RUN_FILES if name not in before])
                raise
    except BaseException:
        if created_dir:
            _remove_empty_dir(run_dir)
        raise


def _remove(run_dir: Path, names: list[str]) -> None:
    """Files this process wrote (called with the run lock held, so no other process trains here)."""
    for name in names:
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()


def _remove_empty_dir(run_dir: Path) -> None:
    """The directory this call created, if nothing but the lock file is left in it."""
    with contextlib.suppress(OSError):
        if {path.name for path in run_dir.iterdir()} <= {ckpt.LOCK}:
            (run_dir / ckpt.LOCK).unlink(missing_ok=True)
            run_dir.rmdir()


# ----------------------------------------------------------------------------- a saved checkpoint


@dataclass
class Saved:
    """A run's last checkpoint, verified and read once."""

    tensors: dict[str, torch.Tensor]  # the weights
    weights_config: dict | None  # the run config kept in the weights' metadata (None: saved before it was)
    state: dict[str, Any]  # the training state (optimizer, scheduler, progress, RNG)
    where: Path  # the run directory

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))


def read_saved(run_dir: Path) -> Saved | None:
    """The verified checkpoint of ``run_dir`` (None when it has none yet)."""
    if not ckpt.has_checkpoint(run_dir):
        return None
    ckpt.verify_checkpoint(run_dir)
    tensors, meta = ckpt.load_weights(run_dir / ckpt.WEIGHTS)
    return Saved(tensors, ckpt.metadata_config(meta, run_dir / ckpt.WEIGHTS), ckpt.load_train_state(run_dir), run_dir)


# parts a model may add to the run it starts from (they start fresh): a zero gate, a refinement loop
ADDABLE_PARTS = ("zero_head.", "answer_in.", "correction_head.")


def init_source(text: str) -> Path:
    """``train.init_from``: a run directory, or the name of a bundled model (``eigenvalues-5x5``),
    so that a preset can start from a shipped model wherever the package is installed."""
    path = Path(text)
    if path.exists():
        return path
    models = bundled.bundled_models()
    if text in models:
        return models[text]
    raise UserError(f"train.init_from {text}: no such run directory or bundled model "
                    "(`linalgformer models` lists those shipped).")


def load_init_from(model: torch.nn.Module, source: Path) -> None:
    """Copy the weights of another run (same model shape) into a fresh model; the parts of
    ``ADDABLE_PARTS`` that the source lacks (e.g. a zero gate added to a trained model) keep their
    fresh initialisation."""
    ckpt.verify_checkpoint(source, (ckpt.WEIGHTS,))
    tensors, _ = ckpt.load_weights(source / ckpt.WEIGHTS)
    fresh = model.state_dict()
    added = {name: fresh[name] for name in fresh if name.startswith(ADDABLE_PARTS) and name not in tensors}
    ckpt.load_model_state(model, {**tensors, **added}, source / ckpt.WEIGHTS)


# ----------------------------------------------------------------------------- the config of a resume


def resolve_config(run_dir: Path, config: RunConfig, saved: Saved | None) -> RunConfig:
    """Fix run-start choices (decay horizon); on a resume, refuse changes that alter the run."""
    if config.train.decay_steps <= 0:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, decay_steps=config.train.max_steps))
    if saved is None or not (run_dir / ckpt.CONFIG).exists():
        return config  # nothing trained yet: the config.json of a run that never checkpointed binds nothing
    old = ckpt.read_config(run_dir)
    check_weights_config(run_dir, old, saved.weights_config)
    new = config.to_dict()
    for section in ("family", "problem", "model"):
        before = with_added_fields(section, old.get(section), new[section])
        if before != new[section]:
            raise UserError(f"{run_dir} was trained with a different {section} "
                            f"({first_difference(before, new[section])}); use a new --out directory.")
    for key, before in BEHAVIOUR_BEFORE.items():
        if key not in old.get("train", {}):
            new["train"][key] = before
    for key, value in new["train"].items():
        if key == "decay_steps" and "decay_steps" in old.get("train", {}):
            new["train"][key] = old["train"][key]
        elif key not in EXTENDABLE and old.get("train", {}).get(key, value) != value:
            raise UserError(f"{run_dir} was trained with train.{key}={old['train'][key]!r}; changing it "
                            "would not resume the same run (use a new --out directory).")
    return run_config_from_dict(new)


def check_weights_config(run_dir: Path, stored: dict, weights: dict | None) -> None:
    """Refuse a run whose config.json disagrees with the config saved in its weights' metadata
    (fields that only extend a run may differ: a resume rewrites config.json with its first checkpoint)."""
    if weights is None:
        return  # weights saved before the config was kept in their metadata
    for section in ("family", "problem", "model"):
        saved = with_added_fields(section, weights.get(section), stored.get(section))
        if saved != with_added_fields(section, stored.get(section), saved):
            raise _config_mismatch(run_dir, section, weights.get(section), stored.get(section))
    old, now = weights.get("train") or {}, stored.get("train") or {}
    for key in sorted(set(old) | set(now)):
        if key not in EXTENDABLE and key in old and key in now and old[key] != now[key]:
            raise _config_mismatch(run_dir, f"train.{key}", old[key], now[key])


def _config_mismatch(run_dir: Path, what: str, weights: Any, stored: Any) -> UserError:
    return UserError(f"{run_dir / ckpt.CONFIG} disagrees with the config its weights were trained with "
                     f"({what}: {first_difference(weights, stored)}): it was edited or damaged; restore it "
                     "or train in a new --out.")


def with_added_fields(section: str, saved: Any, current: Any) -> Any:
    """A saved config section, with the fields of ``ADDED_LATER`` that ``current`` has and it
    lacks set to their defaults (the behaviour it was trained with)."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return saved
    added = {key: default for key, default in ADDED_LATER.get(section, {}).items()
             if key in current and key not in saved}
    return {**saved, **added}


def first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{key}: {old.get(key)!r} before, {new.get(key)!r} now"
    return f"{old!r} before, {new!r} now"


# ----------------------------------------------------------------------------- the saved training state


PROGRESS_TYPES = {"step": int, "examples": int, "elapsed": (int, float), "skipped": int, "window_losses": list}


def check_train_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, where: Path) -> None:
    """The saved training state's structure and every optimizer tensor's shape, checked against
    this model's optimizer before any of it is loaded (a wrong shape can crash fused Adam)."""
    def refuse(what: str) -> UserError:
        return UserError(f"{where} does not fit this run ({what}): the training state is damaged; "
                         "resume from a copy of the run or train in a new --out.")
    for key, kind in PROGRESS_TYPES.items():
        if key in state and (not isinstance(state[key], kind) or isinstance(state[key], bool)):
            raise refuse(f"{key} is a {type(state[key]).__name__}")
    for key in ("optimizer", "scheduler"):
        if not isinstance(state.get(key), dict):
            raise refuse(f"no {key} state")
    rng = state.get("torch_rng")
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape):
        raise refuse("no valid torch RNG state")
    saved = state["optimizer"]
    groups, per_param = saved.get("param_groups"), saved.get("state")
    if not (isinstance(groups, list) and isinstance(per_param, dict) and len(groups) == len(optimizer.param_groups)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and [len(g["params"]) for g in groups] == [len(g["params"]) for g in optimizer.param_groups]):
        raise refuse("optimizer parameter groups differ")
    ids = [i for g in groups for i in g["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in zip(ids, params):
        problem = _optimizer_entry_problem(per_param.get(index, {}), param, index)
        if problem:
            raise refuse(problem)
    if set(per_param) - set(ids):
        raise refuse("optimizer state for parameters the model does not have")


def _optimizer_entry_problem(entry: Any, param: torch.Tensor, index: int) -> str | None:
    """What is wrong with parameter ``index``'s saved optimizer state, or None."""
    if not isinstance(entry, dict):
        return f"optimizer state of parameter {index} is a {type(entry).__name__}"
    for name, value in entry.items():
        if not isinstance(value, torch.Tensor):
            return f"optimizer {name} of parameter {index} is a {type(value).__name__}"
        if name != "step" and value.shape != param.shape:
            return f"optimizer {name} of parameter {index} has shape {tuple(value.shape)}, not {tuple(param.shape)}"
        if name == "step" and value.numel() != 1:
            return f"optimizer step of parameter {index} has {value.numel()} values"
    return None
