"""Training throughput and peak memory against matrix size and model width (brief).

Each point runs in its own process (so that peak memory is that point's alone): build the
experiment and the model, then ``--steps`` timed ``Trainer.step`` calls after one warm-up step, on
batches drawn synchronously. Memory is the process's peak resident set (``ru_maxrss``) at the end,
and its growth over training (peak minus the resident set once the model is built): activations,
gradients and Adam's state. On a GPU it is ``torch.cuda.max_memory_allocated``.

Matrix size sweeps 5x5..20x20 transpose at the reference model shape (P1000: three tokens per
coefficient, so a 20x20 matrix is 1,202 tokens; the position table grows to fit); width sweeps
128..512 at 5x5 with heads fixed at 8 and FFN at 4x width.

    .venv/bin/python benchmarks/scaling.py
    .venv/bin/python benchmarks/scaling.py --dims 3,5,8 --widths 256 --batch 16 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common


def rss_mib() -> float:
    """Peak resident set of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2 ** 20
    except OSError:
        return rss_mib()


def one_point(point: dict) -> dict:
    """Measure one (dim, width) point in this process."""
    from linalgformer.training import to_device

    common.set_threads(point["threads"])
    device = common.pick_device(point["device"])
    problem = {"name": point["problem"], "dim": point["dim"], "encoding": point["encoding"]}
    preset = {**common.REFERENCE, "problem": problem}
    config = common.run_config(preset, {"batch_size": point["batch"], "precision": point["precision"]})
    from linalgformer.experiments.registry import build_experiment
    probe = build_experiment(config)
    need = max(probe.problem.max_input_length(point["dim"]), probe.problem.max_output_length(point["dim"]) + 2)
    model = {**common.REFERENCE["model"], "width": point["width"], "max_len": max(1024, need)}
    config = common.run_config({**preset, "model": model}, {"batch_size": point["batch"], "precision": point["precision"]})
    experiment, trainer = common.build_trainer(config, device)
    batches = [to_device(experiment.sample_batch(np.random.default_rng([0, 0, s]), point["batch"]), device)
               for s in range(point["steps"] + 1)]
    before = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.step(batches[0])  # warm-up (allocates Adam's state)
    times = []
    for batch in batches[1:]:
        start = time.perf_counter()
        trainer.step(batch)
        common.sync(device)
        times.append(time.perf_counter() - start)
    sec = common.median(times)
    b = batches[0]
    tokens = experiment.batch_tokens(b) / point["batch"]
    flops = trainer.model.flops_per_example(int(b["src_len"].float().mean()), int((b["tgt_len"] - 1).float().mean()))
    out = {**point, "params": trainer.model.num_parameters(), "src_len": int(b["src_len"].max()),
           "tgt_len": int(b["tgt_len"].max()), "s_per_step": sec, "examples_per_s": point["batch"] / sec,
           "tokens_per_s": point["batch"] * tokens / sec, "gflops": point["batch"] * flops / sec / 1e9,
           "peak_rss_mib": rss_mib(), "train_growth_mib": rss_mib() - before}
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return out


def points(args) -> list[dict]:
    base = {"problem": args.problem, "encoding": args.encoding, "batch": args.batch, "steps": args.steps,
            "precision": args.precision, "threads": args.threads, "device": args.device}
    out = [{**base, "sweep": "dim", "dim": d, "width": 256} for d in args.dims]
    out += [{**base, "sweep": "width", "dim": 5, "width": w} for w in args.widths]
    return out


def run_point_in_subprocess(point: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--point", json.dumps(point)], capture_output=True, text=True)
    if proc.returncode:
        return {**point, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


COLUMNS = [("sweep", "sweep", ""), ("dim", "dim", "d"), ("width", "width", "d"), ("params", "params", ",d"),
           ("src_len", "src tok", "d"), ("tgt_len", "tgt tok", "d"), ("s_per_step", "s/step", ".3f"),
           ("examples_per_s", "ex/s", ".1f"), ("tokens_per_s", "tok/s", ",.0f"), ("gflops", "GFLOP/s", ".1f"),
           ("peak_rss_mib", "peak RSS MiB", ",.0f"), ("train_growth_mib", "growth MiB", ",.0f"),
           ("cuda_peak_mib", "CUDA peak MiB", ",.0f")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="transpose")
    parser.add_argument("--encoding", default="P1000")
    parser.add_argument("--dims", default="3,5,8,12,20", help="matrix sizes at width 256")
    parser.add_argument("--widths", default="128,256,512", help="model widths at 5x5")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per point (after one warm-up)")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: measure one point, print JSON
    args = parser.parse_args(argv)
    args.dims = [int(d) for d in args.dims.split(",") if d.strip()]
    args.widths = [int(w) for w in args.widths.split(",") if w.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.point:
        print(json.dumps(one_point(json.loads(args.point))))
        return 0
    rows = [run_point_in_subprocess(p) for p in points(args)]
    common.set_threads(args.threads)
    device = common.pick_device(args.device)
    result = {"machine": common.machine(device), "batch": args.batch, "encoding": args.encoding,
              "precision": args.precision, "rows": rows}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    print(f"machine: {common.describe(result['machine'])}")
    print(f"{args.problem} {args.encoding}, batch {args.batch}, {args.precision}, {args.steps} timed steps per point, "
          "reference model shape (2+2 layers, 8 heads, FFN 4x width); one process per point")
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    print(common.format_table(rows, columns))
    for r in rows:
        if "error" in r:
            print(f"{r['sweep']} dim {r['dim']} width {r['width']}: {r['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
