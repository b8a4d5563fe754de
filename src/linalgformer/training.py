"""The training loop, shared by every experiment family.

``train_run(config, run_dir)`` trains ``build_experiment(config)`` and keeps ``run_dir`` a complete,
resumable run (see ``checkpoint``). Properties the tests hold it to:

* **Exact resume.** The batch of step s on rank r is drawn from ``default_rng([seed, r, s])``, so the
  data stream does not depend on where a run was stopped, nor on the number of worker processes.
  Weights, optimizer, scheduler and torch RNG state are restored from the last checkpoint and the
  metrics written after it are dropped, so a resumed run logs the same numbers as an uninterrupted one.
* **Distributed.** Under ``torchrun`` (WORLD_SIZE > 1) the model is wrapped in
  DistributedDataParallel (nccl on GPU, gloo on CPU); ``train.batch_size`` is the global batch,
  split evenly over the processes; only rank 0 writes and reports; the processes leave the process
  group together when the run ends.
* **Numerical faults.** A step whose loss or gradient norm is NaN/Inf is skipped with a warning and
  the weights are left untouched; fp16 uses a gradient scaler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from linalgformer import checkpoint as ckpt
from linalgformer.config import RunConfig, TrainConfig, dump_json
from linalgformer.errors import UserError
from linalgformer.tables import by_method
from linalgformer.experiments.plugin import Experiment
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.files import atomic_write_text
from linalgformer.tracking import MetricLogger, progress_bar

# Train-section fields that may change when a run is resumed (they do not alter the trajectory).
EXTENDABLE = {"max_steps", "max_examples", "max_minutes", "target_metric", "eval_every", "log_every",
              "checkpoint_every", "checkpoint_minutes", "workers", "compile", "threads", "device"}
# Train-section fields added after runs existed, with the behaviour such a run was trained with: a
# run whose config.json lacks one resumes with that value, so that it goes on as it started.
BEHAVIOUR_BEFORE = {"length_buckets": 1}
VALID_SEED_OFFSET = 1_000_003  # the validation set's seed is train.seed + this
clock = time.monotonic  # the checkpoint interval's clock (tests replace it)


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    autocast_dtype: torch.dtype | None = None
    owns_group: bool = False  # this process started the process group, so it ends it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(name: str = "auto") -> torch.device:
    """cuda if available (or asked for), else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available.")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively here: a GPU that supports bf16, or a CPU that oneDNN runs
    bf16 on (AVX-512 and newer). Elsewhere (e.g. AVX2-only CPUs) bf16 is emulated, ~100x slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and bf16_is_fast(device) else None
    if precision == "bf16":
        if not bf16_is_fast(device):
            warnings.warn(f"precision bf16 on a {device.type} without native bf16 matmuls runs far slower "
                          "than fp32 here (precision auto picks fp32).", stacklevel=2)
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    raise UserError(f"unknown precision {precision!r} (known: auto, fp32, bf16, fp16).")


def setup_runtime(train: TrainConfig) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    if world == 1:
        device = pick_device(train.device)
        return Runtime(device, autocast_dtype=autocast_dtype(train.precision, device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and train.device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    return Runtime(device, rank, world, autocast_dtype(train.precision, device), owns_group)


def end_process_group() -> None:
    """Leave the process group once every process has reached this point: a process that tears its
    gloo threads down while another still talks to it can abort at exit (SIGABRT)."""
    dist.barrier()
    dist.destroy_process_group()


# ----------------------------------------------------------------------------- data


class BatchStream(IterableDataset):
    """Endless batches; worker w of n yields steps start+w, start+w+n, ... (DataLoader keeps order)."""

    def __init__(self, experiment: Experiment, seed: int, rank: int, start_step: int, size: int):
        self.experiment, self.seed, self.rank, self.start, self.size = experiment, seed, rank, start_step, size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        step = self.start + worker
        while True:
            self.experiment.set_step(step)  # curricula follow the global step, also on resume
            yield self.experiment.sample_batch(np.random.default_rng([self.seed, self.rank, step]), self.size)
            step += workers


def batch_stream(experiment: Experiment, train: TrainConfig, rt: Runtime, start_step: int):
    check_batch_split(train, rt)
    stream = BatchStream(experiment, train.seed, rt.rank, start_step, train.batch_size // rt.world)
    loader = DataLoader(stream, batch_size=None, num_workers=train.workers,
                        pin_memory=rt.device.type == "cuda", prefetch_factor=4 if train.workers else None)
    with torch_rng_kept():
        return iter(loader)


@contextlib.contextmanager
def torch_rng_kept() -> Iterator[None]:
    """Leave torch's global RNG as it was: the data loader draws a base seed from it when an iterator
    is made, and evaluation may draw from it; the training steps (dropout) alone must consume it, so
    that a resumed run draws the same dropout masks as an uninterrupted one."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ----------------------------------------------------------------------------- optimisation


def lr_factor(train: TrainConfig, step: int) -> float:
    """Linear warmup, then inverse-sqrt, cosine (to min_lr_ratio over decay_steps) or constant."""
    warm = max(train.warmup_steps, 0)
    if warm and step < warm:
        return (step + 1) / warm
    if train.schedule == "inverse_sqrt":
        return math.sqrt(max(warm, 1) / max(step + 1, 1))
    if train.schedule == "cosine":
        horizon = max(train.decay_steps - warm, 1)
        progress = min(max(step - warm, 0) / horizon, 1.0)
        return train.min_lr_ratio + (1 - train.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(model: torch.nn.Module, train: TrainConfig):
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if train.optimizer not in kinds:
        raise UserError(f"unknown optimizer {train.optimizer!r} (known: adam, adamw).")
    if train.schedule not in ("inverse_sqrt", "cosine", "constant"):
        raise UserError(f"unknown schedule {train.schedule!r} (known: inverse_sqrt, cosine, constant).")
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError("this model has no trainable parameters (a hand-set construction?): "
                        "evaluate or reproduce it instead of training it.")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = kinds[train.optimizer](parameter_groups(params, train.weight_decay), lr=train.lr,
                                       betas=tuple(train.betas), fused=fused_ok(params) or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(train, step))
    return optimizer, scheduler


def parameter_groups(params: list[torch.Tensor], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices (weights, embeddings) only; biases and norm gains (1-D) are left out,
    as nanoGPT does. One group when there is no decay, so that such runs are as before."""
    if not weight_decay:
        return [{"params": params, "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def fused_ok(params: list[torch.Tensor]) -> bool:
    """Use the fused (one kernel per step) Adam where torch has it: floating parameters on CPU or CUDA.

    It measured 2.82 -> 2.50 s/step on the 6+1 x 512 eigenvalue model on this CPU (benchmarks/train.py),
    and a resumed run is still bit-identical to an uninterrupted one (tests/test_train.py).
    """
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


# ----------------------------------------------------------------------------- run directory


def resolve_config(run_dir: Path, config: RunConfig) -> RunConfig:
    """Fix run-start choices (decay horizon); on a resume, refuse changes that alter the run."""
    if config.train.decay_steps <= 0:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, decay_steps=config.train.max_steps))
    if not (run_dir / ckpt.CONFIG).exists() or not ckpt.has_checkpoint(run_dir):
        return config  # nothing trained yet: the config.json of a run that never checkpointed binds nothing
    old = ckpt.read_config(run_dir)
    check_weights_config(run_dir, old)
    new = config.to_dict()
    for section in ("family", "problem", "model"):
        if old.get(section) != new[section]:
            raise UserError(f"{run_dir} was trained with a different {section} ({_first_difference(old.get(section), new[section])}); "
                            "use a new --out directory.")
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


def check_weights_config(run_dir: Path, stored: dict) -> None:
    """Refuse a run whose config.json disagrees with the config saved in its weights' metadata
    (fields that only extend a run may differ: a resume rewrites config.json with its first checkpoint)."""
    ckpt.verify_checkpoint(run_dir)
    weights = ckpt.weights_config(run_dir / ckpt.WEIGHTS)
    if weights is None:
        return  # weights saved before the config was kept in their metadata
    for section in ("family", "problem", "model"):
        if weights.get(section) != stored.get(section):
            raise _config_mismatch(run_dir, section, weights.get(section), stored.get(section))
    old, now = weights.get("train") or {}, stored.get("train") or {}
    for key in sorted(set(old) | set(now)):
        if key not in EXTENDABLE and key in old and key in now and old[key] != now[key]:
            raise _config_mismatch(run_dir, f"train.{key}", old[key], now[key])


def _config_mismatch(run_dir: Path, what: str, weights: Any, stored: Any) -> UserError:
    return UserError(f"{run_dir / ckpt.CONFIG} disagrees with the config its weights were trained with "
                     f"({what}: {_first_difference(weights, stored)}): it was edited or damaged; restore it "
                     "or train in a new --out.")


def _first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{key}: {old.get(key)!r} before, {new.get(key)!r} now"
    return f"{old!r} before, {new!r} now"


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel without buffer broadcasts: the models' buffers are constants (output
    ids, position tables), and a broadcast per forward would pair up wrongly, and deadlock, when
    processes run different numbers of forwards in a step (Charton's length-sorted chunks are
    decided per process, from its own rows)."""
    ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel
    # newer torch names the switch forward_sync_buffers (it still syncs once at init: harmless here)
    newer = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
    return ddp(model, device_ids=ids, **{"forward_sync_buffers" if newer else "broadcast_buffers": False})


def restore(run_dir: Path, model, optimizer, scheduler, scaler) -> dict[str, Any]:
    ckpt.verify_checkpoint(run_dir)
    tensors, _ = ckpt.load_weights(run_dir / ckpt.WEIGHTS)
    ckpt.load_model_state(model, tensors, run_dir / ckpt.WEIGHTS)
    state = ckpt.load_train_state(run_dir)
    check_train_state(state, optimizer, run_dir / ckpt.STATE)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if torch.cuda.is_available() and "cuda_rng" in state:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state


PROGRESS_TYPES = {"step": int, "examples": int, "elapsed": (int, float), "skipped": int, "window_losses": list}


def check_train_state(state: dict[str, Any], optimizer, where: Path) -> None:
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
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not (isinstance(groups, list) and isinstance(per_param, dict) and len(groups) == len(optimizer.param_groups)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            and [len(g["params"]) for g in groups] == [len(g["params"]) for g in optimizer.param_groups]):
        raise refuse("optimizer parameter groups differ")
    ids = [i for g in groups for i in g["params"]]
    for index, param in zip(ids, params):
        entry = per_param.get(index, {})
        if not isinstance(entry, dict):
            raise refuse(f"optimizer state of parameter {index} is a {type(entry).__name__}")
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise refuse(f"optimizer {name} of parameter {index} is a {type(value).__name__}")
            if name != "step" and value.shape != param.shape:
                raise refuse(f"optimizer {name} of parameter {index} has shape {tuple(value.shape)}, "
                             f"not {tuple(param.shape)}")
            if name == "step" and value.numel() != 1:
                raise refuse(f"optimizer step of parameter {index} has {value.numel()} values")
    if set(per_param) - set(ids):
        raise refuse("optimizer state for parameters the model does not have")


def init_weights(model: torch.nn.Module, source: Path) -> None:
    """Copy the weights of another run (same model shape) into a fresh model."""
    ckpt.verify_checkpoint(source, (ckpt.WEIGHTS,))
    tensors, _ = ckpt.load_weights(source / ckpt.WEIGHTS)
    ckpt.load_model_state(model, tensors, source / ckpt.WEIGHTS)


def snapshot(progress: dict[str, Any], optimizer, scheduler, scaler) -> dict[str, Any]:
    state = dict(progress, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                 torch_rng=torch.get_rng_state())
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


# ----------------------------------------------------------------------------- the loop


@dataclass
class Trainer:
    config: RunConfig
    experiment: Experiment
    model: torch.nn.Module
    rt: Runtime
    run_dir: Path
    logger: MetricLogger
    progress_enabled: bool = True
    config_written: bool = False
    last_save: float = 0.0  # clock() at the last checkpoint

    def __post_init__(self):
        train = self.config.train
        self.optimizer, self.scheduler = build_optimizer(self.model, train)
        fp16 = self.rt.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.rt.device.type) if fp16 else None
        # window_losses: the losses since the last train record, so that a run resumed between two
        # records logs the same mean as an uninterrupted one
        self.state = {"step": 0, "examples": 0, "elapsed": 0.0, "skipped": 0, "window_losses": []}
        if ckpt.has_checkpoint(self.run_dir):
            self.state.update({k: v for k, v in restore(self.run_dir, self.model, self.optimizer,
                                                        self.scheduler, self.scaler).items()
                               if k in self.state})
        elif train.init_from:
            init_weights(self.model, Path(train.init_from))
        self.logger.truncate_after(self.state["step"])
        self.window = Window(self.state["window_losses"])
        self.net = self.model
        if self.rt.distributed:
            self.net = wrap_ddp(self.model, self.rt.device)
        if train.compile:
            self.net = torch.compile(self.net)

    def autocast(self):
        if self.rt.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.rt.device.type, dtype=self.rt.autocast_dtype)

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; returns the loss (NaN if the step was skipped)."""
        self.net.train()
        with self.autocast():
            loss = self.experiment.loss(self.net, batch)
        self.optimizer.zero_grad(set_to_none=True)
        scaled = self.scaler.scale(loss) if self.scaler else loss
        scaled.backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        clip = self.config.train.clip_grad
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip > 0 else float("inf"))
        value = float(loss.detach())
        if not (math.isfinite(value) and math.isfinite(float(norm))) and self.scaler is None:
            warnings.warn(f"step {self.state['step']}: non-finite loss or gradient ({value}); step skipped")
            self.optimizer.zero_grad(set_to_none=True)
            self.state["skipped"] += 1
        elif self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return value

    def evaluate(self) -> dict[str, Any]:
        train = self.config.train
        self.model.eval()
        with self.autocast(), torch_rng_kept():
            metrics = self.experiment.evaluate(self.model, train.valid_count, train.seed + VALID_SEED_OFFSET, self.rt.device)
        return {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}

    def should_stop(self, start_time: float, metrics: dict[str, Any] | None) -> bool:
        train = self.config.train
        elapsed = self.state["elapsed"] + time.time() - start_time
        stop = (self.state["step"] >= train.max_steps
                or (train.max_examples and self.state["examples"] >= train.max_examples)
                or (train.max_minutes and elapsed >= train.max_minutes * 60)
                or (train.target_metric and metrics is not None
                    and metrics.get(self.experiment.primary_metric, -math.inf) >= train.target_metric))
        return agree(bool(stop), self.rt)

    def save(self, start_time: float) -> None:
        if self.rt.main and not self.config_written:  # a resume keeps the old config.json until now
            atomic_write_text(self.run_dir / ckpt.CONFIG, dump_json(self.config.to_dict()))
            self.config_written = True
        self.last_save = clock()
        if self.rt.main:
            progress = dict(self.state, elapsed=self.state["elapsed"] + time.time() - start_time,
                            window_losses=list(self.window.losses))
            ckpt.save_checkpoint(self.run_dir, self.config, self.model,
                                 snapshot(progress, self.optimizer, self.scheduler, self.scaler))

    def run(self) -> dict[str, Any]:
        train = self.config.train
        start = time.time()
        self.last_save = clock()
        data = batch_stream(self.experiment, train, self.rt, self.state["step"])
        bar = progress_bar(train.max_steps, self.state["step"], enabled=self.progress_enabled and self.rt.main)
        window = self.window
        metrics = None
        while not self.should_stop(start, metrics):
            batch = to_device(next(data), self.rt.device)
            loss = self.step(batch)
            self.state["step"] += 1
            self.state["examples"] += train.batch_size
            window.add(loss, train.batch_size, self.experiment.batch_tokens(batch) * self.rt.world)
            bar.update(1)
            metrics = self.periodic(start, window, bar)
        bar.close()
        final = self.evaluate() if self.rt.main else {}
        self.save(start)
        self.logger.log(self.record("final", start, final))
        return dict(final, step=self.state["step"], examples=self.state["examples"])

    def periodic(self, start: float, window: "Window", bar) -> dict[str, Any] | None:
        train, step = self.config.train, self.state["step"]
        metrics = None
        if step % train.log_every == 0:
            self.logger.log(self.record("train", start, window.flush()))
            bar.set_postfix(loss=f"{window.last_loss:.4g}")
        if step % train.eval_every == 0:
            metrics = self.evaluate() if self.rt.main else {}
            metrics = broadcast(metrics, self.rt)
            self.logger.log(self.record("eval", start, metrics))
            shown = by_method(metrics)["model"]  # the model's numbers; baselines stay in metrics.jsonl
            if self.rt.main:
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()
                                                        if isinstance(v, float))[:300])
        if step % train.checkpoint_every == 0 or self.checkpoint_due():
            self.save(start)
        return metrics

    def checkpoint_due(self) -> bool:
        """Whether ``train.checkpoint_minutes`` of wall-clock time passed since the last checkpoint
        (or the start): a kill loses at most that much work, whatever ``checkpoint_every`` is."""
        minutes = self.config.train.checkpoint_minutes
        return agree(bool(minutes) and clock() - self.last_save >= minutes * 60, self.rt)

    def record(self, kind: str, start: float, values: dict[str, Any]) -> dict[str, Any]:
        return dict(values, kind=kind, step=self.state["step"], examples=self.state["examples"],
                    lr=self.scheduler.get_last_lr()[0], skipped=self.state["skipped"],
                    elapsed=round(self.state["elapsed"] + time.time() - start, 3))


class Window:
    """Running loss and throughput between two log records."""

    def __init__(self, losses: list[float] = ()):
        self.reset()
        self.losses = [float(x) for x in losses]  # carried over from before a resume
        self.last_loss = math.nan

    def reset(self):
        self.losses, self.examples, self.tokens, self.t0 = [], 0, 0, time.time()

    def add(self, loss: float, examples: int, tokens: int):
        self.losses.append(loss)
        self.examples += examples
        self.tokens += tokens

    def flush(self) -> dict[str, float]:
        seconds = max(time.time() - self.t0, 1e-9)
        finite = [x for x in self.losses if math.isfinite(x)]
        self.last_loss = float(np.mean(finite)) if finite else math.nan
        out = {"loss": self.last_loss, "examples_per_s": self.examples / seconds,
               "tokens_per_s": self.tokens / seconds}
        self.reset()
        return out


def agree(flag: bool, rt: Runtime) -> bool:
    """True on every rank if it is true on any rank."""
    if not rt.distributed:
        return flag
    value = torch.tensor([int(flag)], device=rt.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast(obj: Any, rt: Runtime) -> Any:
    if not rt.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def seeded_model(experiment: Experiment, config: RunConfig, rt: Runtime) -> torch.nn.Module:
    """The experiment's fresh model, initialised from ``train.seed``, on the runtime's device."""
    torch.manual_seed(config.train.seed)
    return experiment.build_model().to(rt.device)


def build_trainer(config: RunConfig, run_dir: Path, rt: Runtime, *, experiment: Experiment | None = None,
                  model: torch.nn.Module | None = None, progress: bool = True, logging: bool = True) -> Trainer:
    """The :class:`Trainer` of ``config`` in ``run_dir`` (restored from its checkpoint if it has one).

    ``experiment`` and ``model`` default to the config's, the model seeded by ``train.seed``;
    ``logging=False`` writes no metrics.jsonl (benchmarks)."""
    experiment = experiment if experiment is not None else build_experiment(config)
    model = model if model is not None else seeded_model(experiment, config, rt)
    logger = MetricLogger(run_dir, enabled=rt.main and logging)
    return Trainer(config, experiment, model, rt, Path(run_dir), logger, progress)


def train_run(config: RunConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir``; returns the final validation metrics.

    The config is resolved once against the run directory, and the experiment and model are built
    once (weights of ``train.init_from`` loaded), before anything is written: a bad config leaves
    the directory as it was. A resumed run rewrites ``config.json`` only with its first checkpoint,
    so a crash before it leaves the previous one; a new run that fails before its first checkpoint
    removes what it wrote, so that the corrected command starts afresh."""
    run_dir = Path(run_dir)
    rt = setup_runtime(config.train)
    if rt.main:
        _check_run_dir(run_dir)
    config = resolve_config(run_dir, config)
    check_batch_split(config.train, rt)
    experiment = build_experiment(config)
    model = seeded_model(experiment, config, rt)
    fresh = not ckpt.has_checkpoint(run_dir)
    if fresh and config.train.init_from:
        init_weights(model, Path(config.train.init_from))  # a source that does not fit is refused now
    created = not run_dir.exists()
    if rt.main:
        _make_run_dir(run_dir)
    try:
        with ckpt.run_lock(run_dir) if rt.main else nullcontext():
            try:
                final = _train_locked(config, run_dir, rt, experiment, model, progress, fresh)
            except BaseException:
                if rt.main and fresh and not ckpt.has_checkpoint(run_dir):
                    _remove_new_run(run_dir)
                raise
    except BaseException:
        if rt.main and created:
            _remove_empty_dir(run_dir)
        raise
    if rt.owns_group:
        end_process_group()
    return final


def _train_locked(config: RunConfig, run_dir: Path, rt: Runtime, experiment: Experiment,
                  model: torch.nn.Module, progress: bool, fresh: bool) -> dict[str, Any]:
    if rt.main and not fresh:
        ckpt.verify_checkpoint(run_dir)  # a damaged run is refused before anything is rewritten
    if rt.main and fresh:
        atomic_write_text(run_dir / ckpt.CONFIG, dump_json(config.to_dict()))
    trainer = build_trainer(config, run_dir, rt, experiment=experiment, model=model, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.logger.close()


def check_batch_split(train: TrainConfig, rt: Runtime) -> None:
    if train.batch_size % rt.world:
        raise UserError(f"train.batch_size {train.batch_size} is not divisible by the {rt.world} processes.")


# What a new run writes in its directory: removed again if it fails before its first checkpoint.
NEW_RUN_FILES = (ckpt.CONFIG, "metrics.jsonl", ckpt.WEIGHTS + ckpt.STAGED, ckpt.STATE + ckpt.STAGED)


def _remove_new_run(run_dir: Path) -> None:
    """What a new run wrote (called with the run lock held, so no other process trains here)."""
    for name in NEW_RUN_FILES:
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()


def _remove_empty_dir(run_dir: Path) -> None:
    """The directory this call created, if nothing but the lock file is left in it."""
    with contextlib.suppress(OSError):
        if {path.name for path in run_dir.iterdir()} <= {ckpt.LOCK}:
            (run_dir / ckpt.LOCK).unlink(missing_ok=True)
            run_dir.rmdir()


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory; choose another --out.")
    if not run_dir.is_dir():
        return
    names = {path.name for path in run_dir.iterdir()} - {ckpt.LOCK}
    if names and ckpt.CONFIG not in names:
        raise UserError(f"{run_dir} exists and is not a linalgformer run directory; choose another --out.")
    if ckpt.MANIFEST not in names and names & {ckpt.WEIGHTS, ckpt.STATE}:
        raise UserError(f"{run_dir} holds trained weights but no checkpoint manifest ({ckpt.MANIFEST}), so it "
                        f"cannot be resumed safely and is left untouched: train in a new --out, or move "
                        f"{ckpt.WEIGHTS} and {ckpt.STATE} out of it to start this run over.")


def _make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create run directory {run_dir}: {err.strerror or err}.") from None
    if not os.access(run_dir, os.W_OK):
        raise UserError(f"run directory {run_dir} is not writable.")
