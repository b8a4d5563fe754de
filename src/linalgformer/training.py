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

Where and how it runs (device, precision, threads, processes) is chosen by :mod:`linalgformer.runtime`;
the optimizer and learning-rate schedule are built by :mod:`linalgformer.optimizers`.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from linalgformer import checkpoint as ckpt
from linalgformer import runs
from linalgformer.config import RunConfig, TrainConfig, check_training_memory, dump_json
from linalgformer.errors import UserError
from linalgformer.tables import by_method
from linalgformer.experiments.plugin import Experiment
from linalgformer.experiments.registry import build_experiment
from linalgformer.files import atomic_write_text
from linalgformer.optimizers import build_optimizer
from linalgformer.runtime import Runtime, agree, broadcast, end_process_group, setup_runtime, wrap_ddp
from linalgformer.tracking import MetricLogger, progress_bar

# moved to runtime and optimizers; callers still import them from here
from linalgformer.optimizers import lr_factor  # noqa: F401
from linalgformer.runtime import autocast_dtype, bf16_is_fast, pick_device  # noqa: F401

VALID_SEED_OFFSET = 1_000_003  # the validation set's seed is train.seed + this
clock = time.monotonic  # the checkpoint interval's clock (tests replace it)


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


# ----------------------------------------------------------------------------- training state


def restore(saved: dict[str, Any], optimizer, scheduler, scaler, where: Path) -> None:
    """Load a saved training state (checked against this optimizer first) into the optimizer,
    scheduler, gradient scaler and torch's RNG: in memory, the files were read by ``runs``."""
    runs.check_train_state(saved, optimizer, where)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["torch_rng"])
    if torch.cuda.is_available() and "cuda_rng" in saved:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


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
    """The loop over one run: built from ready parts (a model with its weights loaded, the saved
    training state as a dict), it reads no file; it writes checkpoints and metrics as it trains."""

    config: RunConfig
    experiment: Experiment
    model: torch.nn.Module
    rt: Runtime
    run_dir: Path
    logger: MetricLogger
    progress_enabled: bool = True
    saved: dict[str, Any] | None = None  # the training state to resume from (runs.read_saved)
    config_written: bool = False
    last_save: float = 0.0  # clock() at the last checkpoint

    def __post_init__(self):
        train = self.config.train
        self.optimizer, self.scheduler = build_optimizer(self.model, train)
        self.scaler = self.rt.grad_scaler()
        # window_losses: the losses since the last train record, so that a run resumed between two
        # records logs the same mean as an uninterrupted one
        self.state = {"step": 0, "examples": 0, "elapsed": 0.0, "skipped": 0, "window_losses": []}
        if self.saved is not None:
            restore(self.saved, self.optimizer, self.scheduler, self.scaler, self.run_dir / ckpt.STATE)
            self.state.update({k: v for k, v in self.saved.items() if k in self.state})
        self.window = Window(self.state["window_losses"])
        self.net = self.model
        if self.rt.distributed:
            self.net = wrap_ddp(self.model, self.rt.device)
        if train.compile:
            self.net = torch.compile(self.net)

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; returns the loss (NaN if the step was skipped)."""
        self.net.train()
        with self.rt.autocast():
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
        with self.rt.autocast(), torch_rng_kept():
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


def seeded_model(experiment: Experiment, config: RunConfig, rt: Runtime) -> torch.nn.Module:
    """The experiment's fresh model, initialised from ``train.seed``, on the runtime's device."""
    torch.manual_seed(config.train.seed)
    return experiment.build_model().to(rt.device)


def build_trainer(config: RunConfig, run_dir: Path, rt: Runtime, *, experiment: Experiment | None = None,
                  model: torch.nn.Module | None = None, progress: bool = True, logging: bool = True) -> Trainer:
    """A fresh :class:`Trainer` of ``config`` writing into ``run_dir`` (benchmarks; ``train_run``
    resumes through :mod:`linalgformer.runs`). ``experiment`` and ``model`` default to the
    config's, the model seeded by ``train.seed``; ``logging=False`` writes no metrics.jsonl."""
    experiment = experiment if experiment is not None else build_experiment(config)
    model = model if model is not None else seeded_model(experiment, config, rt)
    logger = MetricLogger(run_dir, enabled=rt.main and logging)
    return Trainer(config, experiment, model, rt, Path(run_dir), logger, progress)


def train_run(config: RunConfig, run_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir``; returns the final validation metrics.

    The run directory is checked, its checkpoint verified and read, and the config resolved
    against it (:mod:`linalgformer.runs`); the experiment and model are built once (the saved
    weights, or those of ``train.init_from``, loaded) before anything is written: a bad config
    leaves the directory as it was. A resumed run rewrites ``config.json`` only with its first
    checkpoint, so a crash before it leaves the previous one; a new run that fails before its first
    checkpoint removes what it wrote, so that the corrected command starts afresh."""
    run_dir = Path(run_dir)
    rt = setup_runtime(config.train)
    if rt.main:
        runs.check_run_dir(run_dir)
    saved = runs.read_saved(run_dir)
    config = runs.resolve_config(run_dir, config, saved)
    check_batch_split(config.train, rt)
    check_training_memory(config)  # a model or batch that cannot fit is refused before it is built
    experiment = build_experiment(config)
    model = seeded_model(experiment, config, rt)
    if saved is not None:
        ckpt.load_model_state(model, saved.tensors, run_dir / ckpt.WEIGHTS)
    elif config.train.init_from:
        runs.load_init_from(model, runs.init_source(config.train.init_from))  # a source that does not fit is refused now
    with runs.opened(run_dir, main=rt.main, fresh=saved is None):
        if rt.main and saved is None:
            atomic_write_text(run_dir / ckpt.CONFIG, dump_json(config.to_dict()))
        logger = MetricLogger(run_dir, enabled=rt.main)
        logger.truncate_after(0 if saved is None else saved.step)  # the records after the checkpoint go
        trainer = Trainer(config, experiment, model, rt, run_dir, logger, progress,
                          saved=None if saved is None else saved.state)
        try:
            final = trainer.run()
        finally:
            logger.close()
    if rt.owns_group:
        end_process_group()
    return final


def check_batch_split(train: TrainConfig, rt: Runtime) -> None:
    if train.batch_size % rt.world:
        raise UserError(f"train.batch_size {train.batch_size} is not divisible by the {rt.world} processes.")
