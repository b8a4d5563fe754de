"""What the benchmarks share: threads, the machine, the matmul peak, interleaved timing, tables.

Speed claims here are ratios taken inside one process: every variant runs a short block of steps in
turn, round after round, so that a neighbour's load (the machine may be shared) hits all of them
alike. :func:`interleaved` returns the per-round times; :func:`paired_ratio` takes the median over
rounds of (baseline time / variant time) within the same round.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

# The paper-shaped configurations the benchmarks share (Charton's "Linear algebra with transformers").
REFERENCE = {"family": "charton",
             "problem": {"name": "transpose", "dim": 5, "encoding": "P10"},
             "model": {"enc_layers": 2, "dec_layers": 2, "width": 256, "heads": 8, "ffn_ratio": 4.0}}
EIGEN = {"family": "charton",
         "problem": {"name": "eigenvalues", "dim": 5, "encoding": "FP15"},
         "model": {"enc_layers": 6, "dec_layers": 1, "width": 512, "heads": 8, "ffn_ratio": 4.0}}
EIGVEC = {"family": "charton",  # FP15 in, P1000 out: the model reads out 1,306 of 30,307 tokens
          "problem": {"name": "eigenvectors", "dim": 5, "input_encoding": "FP15", "output_encoding": "P1000"},
          "model": {"enc_layers": 6, "dec_layers": 1, "width": 512, "heads": 8, "ffn_ratio": 4.0}}
MIXED = {"family": "charton",  # sizes 5..15 in one batch: sources of 27..227 tokens (the eigenvalues-5-15 preset)
         "problem": {"name": "eigenvalues", "min_dim": 5, "max_dim": 15, "dim": 15, "input_encoding": "FP15",
                     "output_encoding": "P1000"},
         "model": {"enc_layers": 6, "dec_layers": 1, "width": 512, "heads": 8, "ffn_ratio": 4.0}}
PRESETS = {"reference": REFERENCE, "eigen": EIGEN, "eigvec": EIGVEC, "mixed": MIXED}


def set_threads(threads: int) -> None:
    """Pin torch's intra-op threads (0: leave torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precisions(names: list[str], device: torch.device) -> list[str]:
    """``auto`` -> fp32, plus bf16 where bf16 matmuls are native; says on stderr when bf16 is left out."""
    from linalgformer.training import bf16_is_fast

    if names != ["auto"]:
        return names
    if bf16_is_fast(device):
        return ["fp32", "bf16"]
    print(f"note: no native bf16 matmuls on this {device.type} (bf16 would be emulated, far slower than "
          "fp32): bf16 rows left out; ask for them with --precisions fp32,bf16", file=sys.stderr)
    return ["fp32"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    """A one-line description of where the numbers come from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model() or platform.processor() or platform.machine()
    return {"device": device.type, "name": name, "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "load_average": load_average()}


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (other processes on a shared machine show here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def describe(info: dict) -> str:
    load = info.get("load_average")
    return (f"{info['name']} ({info['device']}, {info['cpus']} cpus, {info['threads']} torch threads), "
            f"torch {info['torch']}, python {info['python']}"
            + (f"; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end" if load else ""))


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 512, seconds: float = 0.5) -> float:
    """Best GFLOP/s of an n x n @ n x n matmul in ``dtype`` (best of 5 timed bursts)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 5:
        a @ b
        reps += 1
    sync(device)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * n ** 3 / best / 1e9


def interleaved(steps: dict[str, Callable[[], object]], rounds: int, per_round: int, warmup: int,
                device: torch.device, progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, one list entry per round (mean over ``per_round`` calls).

    Each function first runs ``warmup`` untimed calls; then, round after round, each runs
    ``per_round`` timed calls in turn."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - start) / per_round)
        if progress:
            progress(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()))
    return times


def paired_ratio(times: dict[str, list[float]], baseline: str, variant: str) -> float:
    """Median over rounds of baseline time / variant time (> 1: the variant is faster)."""
    return statistics.median(b / v for b, v in zip(times[baseline], times[variant]))


def median(values: list[float]) -> float:
    return statistics.median(values)


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """rows of dicts -> an aligned text table; columns are (key, header, format spec)."""
    cells = [[format(row.get(key, ""), spec) if row.get(key) is not None else "-" for key, _, spec in columns]
             for row in rows]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, (_, header, _) in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, ((_, h, _), w) in enumerate(zip(columns, widths)))]
    lines.append("-" * len(lines[0]))
    for c in cells:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def emit(result, as_json: bool, printer: Callable, save: str | None = None) -> int:
    """Print ``result`` as JSON (NaN written as null) or through ``printer``, and write it as JSON to
    ``save`` when given; a benchmark's exit status."""
    if save:
        Path(save).write_text(json.dumps(_nan_to_none(result), indent=1) + "\n")
    if as_json:
        json.dump(_nan_to_none(result), sys.stdout, indent=1)
        print()
    else:
        printer(result)
    return 0


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def scratch_dir(prefix: str) -> Path:
    """A temporary directory removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


def run_config(preset: dict, train: dict | None = None):
    """A typed RunConfig from one of the presets above plus train-section overrides."""
    from linalgformer.experiments.registry import run_config_from_dict

    return run_config_from_dict({**preset, "train": {"batch_size": 64, **(train or {})}})


def build_trainer(config, device: torch.device, seed: int = 0, full_readout: bool = False):
    """(experiment, Trainer) as ``train_run`` builds them (``linalgformer.training.build_trainer``), on a
    throwaway run directory, the model seeded by ``seed``, nothing logged; ``full_readout`` builds
    the Charton model as it was before it read out only answer tokens."""
    from linalgformer.experiments.registry import build_experiment
    from linalgformer.training import Runtime, autocast_dtype, seeded_model
    from linalgformer.training import build_trainer as trainer_of

    experiment = build_experiment(config)
    if full_readout:
        experiment.restrict_read_out = False
    rt = Runtime(device, autocast_dtype=autocast_dtype(config.train.precision, device))
    init = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))  # seed: init only
    trainer = trainer_of(config, scratch_dir("linalgformer-bench-"), rt, experiment=experiment,
                         model=seeded_model(experiment, init, rt), progress=False, logging=False)
    return experiment, trainer


def add_result_flags(parser) -> None:
    """``--json`` (the result as JSON on stdout) and ``--from-json FILE`` (print a saved result's table)."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON (progress on stderr)")
    parser.add_argument("--from-json", type=Path, default=None, metavar="FILE", help="print the table of a saved result")


def result_args(parser, print_table: Callable):
    """``parser``'s arguments with the result flags added (:func:`add_result_flags`), or None when
    ``--from-json`` asked for a saved result's table (printed here); a measurement runs on one
    thread (the machine may be shared)."""
    add_result_flags(parser)
    args = parser.parse_args()
    if replay(args, print_table):
        return None
    torch.set_num_threads(1)
    return args


def replay(args, print_table: Callable) -> bool:
    """With ``--from-json FILE``: print that result's table and say so (True)."""
    if args.from_json is None:
        return False
    print_table(json.loads(args.from_json.read_text()))
    return True
