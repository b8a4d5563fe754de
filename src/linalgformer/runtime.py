"""Where and how the training loop runs: device, precision, threads and processes.

:func:`setup_runtime` makes these choices once per run from the ``train`` section and the
``torchrun`` environment, and returns them as a :class:`Runtime`; the trainer (``training``) asks it
for its autocast context and gradient scaler, wraps its model with :func:`wrap_ddp`, and keeps the
processes in step with :func:`agree` and :func:`broadcast`.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from linalgformer.config import TrainConfig
from linalgformer.errors import UserError


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

    def autocast(self):
        """The autocast context of this precision (none for fp32)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16's gradient scaler; None for the other precisions."""
        fp16 = self.autocast_dtype == torch.float16
        return torch.amp.GradScaler(self.device.type) if fp16 else None


# ----------------------------------------------------------------------------- device and precision


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


# ----------------------------------------------------------------------------- threads


def free_cores() -> int:
    """The cores this process may use that other work is not using now (at least 1): the cores of
    its affinity mask less the machine's 1-minute load average (rounded), or less the processes
    running this instant besides this one, whichever is busier."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
        with open("/proc/loadavg") as handle:
            busy = max(busy, int(handle.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return cores
    return max(1, min(cores, cores - round(busy)))


def choose_threads(train: TrainConfig) -> int:
    """``train.threads``, or (0: unset) no more threads than there are free cores. On a busy machine
    a thread beyond the free cores does not add speed: it waits for a core while its peers spin at
    each barrier, which slowed the demo 3x beside one busy process (docs/PERFORMANCE.md)."""
    return train.threads if train.threads > 0 else auto_threads()


@functools.lru_cache(maxsize=1)
def auto_threads() -> int:
    """The thread count of runs without ``train.threads``, chosen once per process (every run of
    a process computes alike): torch's default, capped at the free cores."""
    return min(torch.get_num_threads(), free_cores())


# ----------------------------------------------------------------------------- processes


def setup_runtime(train: TrainConfig) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(choose_threads(train))
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
