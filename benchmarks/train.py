"""Training throughput: our Trainer step beside a plain ``nn.Transformer`` loop, measured side by side.

For each configuration and precision, in one process and interleaved round by round:

* ``ours``: ``Experiment.sample_batch`` + ``Trainer.step`` (autocast, ``Experiment.loss``, backward,
  gradient clipping, Adam, scheduler) exactly as ``linalgformer train`` runs it with ``workers=0``;
* ``plain``: the same batches from the same generator, through a textbook PyTorch loop: token and
  learned position embeddings, ``nn.Transformer`` (post-norm, ReLU, no dropout, batch-first) with
  key-padding and causal masks, a linear read-out, cross-entropy, ``clip_grad_norm_`` and
  ``torch.optim.Adam`` with its defaults;
* ``ours -fused-adam (before)``: ``ours`` with the optimizer rebuilt without ``fused=True`` (the trainer
  asks for the fused kernel since it measured faster here; these rows show what it buys);
* ``ours -answer-readout (before)`` (``eigvec`` only: FP15 in, P1000 out): the model reading out
  all 30,307 vocabulary tokens, as before it read out only the 1,306 an answer can contain;
* ``ours -length_buckets (before)`` (``mixed`` only: sizes 5..15 in one batch): the batch run
  as one block padded to its longest example, as before ``train.length_buckets`` ran it as chunks
  of similar length;
* with ``--ablate`` (bf16 only): ``ours -fp32_attn (before)``, the model with its
  ``fp32_cpu_attention`` switch off, i.e. the attention as it ran before that change;
* with ``--compile``: ``ours +compile``, the trainer with ``train.compile: true`` (``torch.compile``
  of the model; the warm-up steps pay for compiling).

Precisions: ``auto`` (the default) is fp32, plus bf16 where bf16 matmuls are native (a GPU, or a CPU
that oneDNN runs bf16 on); on an AVX2-only CPU bf16 is emulated and far slower, so it is left out
unless asked for by name.

Throughput is examples/s and tokens/s (non-padding source + target tokens, as the trainer logs);
MFU is model FLOPs (``Seq2Seq.flops_per_example``, forward + backward) per second over the measured
512x512 matmul peak of the same precision on the same machine. Speed-ups are medians of per-round
ratios (plain time / ours time in the same round).

    .venv/bin/python benchmarks/train.py                               # reference + eigen, fp32 (+ bf16 where native)
    .venv/bin/python benchmarks/train.py --configs reference --rounds 3 --json
    .venv/bin/python benchmarks/train.py --loss-curve 300              # fp32 vs bf16 loss, same data
    .venv/bin/python benchmarks/train.py --configs reference --profile 2   # where a step's time goes
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


# ---------------------------------------------------------------------------------- the baseline

class PlainTransformer(nn.Module):
    """Embeddings + ``nn.Transformer`` + read-out, the shape of our Seq2Seq (what a plain loop writes)."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        w = cfg.width
        self.src_tokens, self.tgt_tokens = nn.Embedding(vocab_size, w), nn.Embedding(vocab_size, w)
        self.src_pos, self.tgt_pos = nn.Embedding(cfg.max_len, w), nn.Embedding(cfg.max_len, w)
        self.transformer = nn.Transformer(w, cfg.heads, cfg.enc_layers, cfg.dec_layers, cfg.ffn_width,
                                          dropout=0.0, batch_first=True)
        self.head = nn.Linear(w, vocab_size)

    def forward(self, src, src_len, tgt_in):
        s, t = src.shape[1], tgt_in.shape[1]
        pad = torch.arange(s, device=src.device)[None, :] >= src_len[:, None]  # (B, S), True = padding
        x = self.src_tokens(src) + self.src_pos(torch.arange(s, device=src.device))
        y = self.tgt_tokens(tgt_in) + self.tgt_pos(torch.arange(t, device=src.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=src.device)
        h = self.transformer(x, y, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                             tgt_is_causal=True)
        return self.head(h)  # (B, T, V)


def plain_stepper(experiment, config, device: torch.device, dtype):
    torch.manual_seed(0)
    model = PlainTransformer(config.model, len(experiment.vocab)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, betas=tuple(config.train.betas))
    pad = experiment.vocab.pad_id

    def step(batch):
        model.train()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            tgt = batch["tgt_ids"]
            logits = model(batch["src_ids"], batch["src_len"], tgt[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt[:, 1:].reshape(-1),
                                   ignore_index=pad)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.clip_grad)
        optimizer.step()
        return float(loss.detach())

    return step


# ---------------------------------------------------------------------------------- our stack

def set_switches(model, switches: dict) -> None:
    """Set the speed switches (e.g. ``fp32_cpu_attention`` of every attention block) wherever
    ``model`` has them."""
    for module in model.modules():
        for name, value in switches.items():
            if hasattr(module, name):
                setattr(module, name, value)


def ours_stepper(config, device: torch.device, unfused_adam: bool = False, switches: dict | None = None):
    """``Trainer.step`` of a trainer built as ``train_run`` builds it; ``switches`` sets the model's
    speed switch (``Attention.fp32_cpu_attention``) for ablations."""
    from linalgformer.training import lr_factor

    switches = dict(switches or {})
    train_changes = {k: switches.pop(k) for k in TRAIN_SWITCHES if k in switches}
    if train_changes:  # e.g. train.compile: the trainer wraps the model in torch.compile
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **train_changes))
    experiment, trainer = common.build_trainer(config, device, full_readout=switches.pop("full_readout", False))
    set_switches(trainer.model, switches)
    if unfused_adam:  # the trainer before it asked for fused Adam: same hyper-parameters, foreach kernels
        train = config.train
        trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=train.lr, betas=tuple(train.betas),
                                             weight_decay=train.weight_decay)
        trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: lr_factor(train, s))
    return experiment, trainer, trainer.step


# label -> (unfused Adam, speed switches); "ours" is the stack as shipped
OURS = {"ours": (False, {}), "ours -fused-adam (before)": (True, {})}
ABLATIONS = {"ours -fp32_attn (before)": (False, {"fp32_cpu_attention": False})}
READOUT = {"ours -answer-readout (before)": (False, {"full_readout": True})}
COMPILED = {"ours +compile": (False, {"compile": True})}
BUCKETS = {"ours -length_buckets (before)": (False, {"length_buckets": 1})}
TRAIN_SWITCHES = ("compile", "length_buckets")  # switches that are train-config fields


def variants_for(args, precision: str, name: str = "") -> dict:
    chosen = dict(OURS) if args.fused else {"ours": OURS["ours"]}
    if args.ablate and precision != "fp32":  # the switch does nothing in fp32
        chosen.update(ABLATIONS)
    if name == "mixed":  # the only configuration whose lengths vary within a batch
        chosen.update(BUCKETS)
    if name == "eigvec":  # the only configuration whose answers use fewer tokens than the vocabulary
        chosen.update(READOUT)
    if args.compile:
        chosen.update(COMPILED)
    return chosen


def with_data(experiment, step_fn, batch_size: int, device: torch.device, seed: int = 0):
    """A no-argument step: draw the next batch synchronously (as workers=0 does), then train on it."""
    from linalgformer.training import to_device

    counter = itertools.count()

    def step():
        rng = np.random.default_rng([seed, 0, next(counter)])
        return step_fn(to_device(experiment.sample_batch(rng, batch_size), device))

    return step


# ---------------------------------------------------------------------------------- measurement

def shape_of(experiment, model, batch_size: int) -> dict:
    """Mean lengths, tokens per example and FLOPs per example of this configuration's batches."""
    batch = experiment.sample_batch(np.random.default_rng(12345), batch_size)
    src = float(batch["src_len"].float().mean())
    tgt_in = float((batch["tgt_len"] - 1).float().mean())  # decoder inputs: <bos> + answer
    flops = model.flops_per_example(round(src), round(tgt_in))
    return {"src_len": src, "tgt_in_len": tgt_in, "tokens_per_example": experiment.batch_tokens(batch) / batch_size,
            "flops_per_example": flops, "params": model.num_parameters()}


def measure_config(name: str, args, device: torch.device, peaks: dict) -> list[dict]:
    preset = common.PRESETS[name]
    steps, labels = {}, {}
    shape = None
    for precision in args.precisions:
        config = common.run_config(preset, {"batch_size": args.batch, "precision": precision})
        for label, (unfused, switches) in variants_for(args, precision, name).items():
            experiment, trainer, fn = ours_stepper(config, device, unfused, switches)
            steps[f"{label}/{precision}"] = with_data(experiment, fn, args.batch, device)
            labels[f"{label}/{precision}"] = (label, precision)
            shape = shape or shape_of(experiment, trainer.model, args.batch)
        steps[f"plain/{precision}"] = with_data(experiment, plain_stepper(experiment, config, device,
                                                                           PRECISIONS[precision]),
                                                args.batch, device)
        labels[f"plain/{precision}"] = ("plain", precision)
    rounds = args.rounds if name == "reference" else args.eigen_rounds  # eigen, eigvec, mixed: slow steps
    log = (lambda msg: print(f"  [{name}] {msg}", file=sys.stderr)) if args.verbose else None
    times = common.interleaved(steps, rounds, args.per_round, args.warmup, device, log)
    base32 = "plain/fp32" if "plain/fp32" in times else next(iter(times))
    rows = []
    for key, ts in times.items():
        label, precision = labels[key]
        sec = common.median(ts)
        ex_s = args.batch / sec
        peak = peaks[precision]
        rows.append({"config": name, "variant": label, "precision": precision, "s_per_step": sec,
                     "examples_per_s": ex_s, "tokens_per_s": ex_s * shape["tokens_per_example"],
                     "gflops": ex_s * shape["flops_per_example"] / 1e9,
                     "mfu": ex_s * shape["flops_per_example"] / 1e9 / peak,
                     "vs_plain_fp32": common.paired_ratio(times, base32, key),
                     "vs_plain_same": common.paired_ratio(times, f"plain/{precision}", key),
                     "rounds": len(ts), "steps_per_round": args.per_round, **shape})
    return rows


COLUMNS = [("config", "config", ""), ("variant", "variant", ""), ("precision", "prec", ""),
           ("s_per_step", "s/step", ".3f"), ("examples_per_s", "ex/s", ".1f"), ("tokens_per_s", "tok/s", ",.0f"),
           ("gflops", "GFLOP/s", ".1f"), ("mfu", "MFU", ".1%"), ("vs_plain_fp32", "x plain fp32", ".2f"),
           ("vs_plain_same", "x plain same prec", ".2f")]


def run_throughput(args, device: torch.device) -> dict:
    peaks = {p: max(common.matmul_peak(torch.float32 if p == "fp32" else PRECISIONS[p], device) for _ in range(2))
             for p in args.precisions}
    rows = []
    for name in args.configs:
        rows.extend(measure_config(name, args, device, peaks))
    peaks_after = {p: common.matmul_peak(torch.float32 if p == "fp32" else PRECISIONS[p], device)
                   for p in args.precisions}
    return {"machine": common.machine(device), "batch": args.batch, "matmul_peak_gflops": peaks,
            "matmul_peak_gflops_after": peaks_after, "rows": rows}


def print_throughput(result: dict) -> None:
    print(f"machine: {common.describe(result['machine'])}")
    print("512x512 matmul peak, GFLOP/s (before / after): "
          + ", ".join(f"{p} {v:.1f} / {result['matmul_peak_gflops_after'][p]:.1f}"
                      for p, v in result["matmul_peak_gflops"].items()))
    for name in dict.fromkeys(r["config"] for r in result["rows"]):
        r = next(r for r in result["rows"] if r["config"] == name)
        print(f"{name}: batch {result['batch']}, source {r['src_len']:.0f} + decoder {r['tgt_in_len']:.0f} tokens, "
              f"{r['params'] / 1e6:.2f}M parameters, {r['flops_per_example'] / 1e9:.2f} GFLOP/example (fwd+bwd); "
              f"{r['rounds']} rounds x {r['steps_per_round']} steps per variant")
    print(common.format_table(result["rows"], COLUMNS))


# ---------------------------------------------------------------------------------- loss curves

def run_loss_curve(args, device: torch.device) -> dict:
    """fp32 and bf16 from the same initialisation on the same batches, plus (unless --no-yardstick)
    fp32 from another seed, the yardstick for "within noise"; one step of each in turn. Every
    window also gets the standard error of fp32's window mean (batch-to-batch noise)."""
    runs = {}
    plan = [("fp32", "fp32", 0, {}), ("bf16", "bf16", 0, {})]
    if args.yardstick:
        plan.append(("fp32 seed 1", "fp32", 1, {}))
    if args.ablate:  # bf16 with torch's own bf16 attention (the model's fp32_cpu_attention switch off)
        plan.append(("bf16 -fp32_attn", "bf16", 0, {"fp32_cpu_attention": False}))
    for label, precision, seed, switches in plan:
        config = common.run_config(common.PRESETS[args.configs[0]],
                                   {"batch_size": args.batch, "precision": precision, "lr": args.lr,
                                    "warmup_steps": args.warmup_steps})
        experiment, trainer = common.build_trainer(config, device, seed=seed)
        set_switches(trainer.model, switches)
        runs[label] = with_data(experiment, trainer.step, args.batch, device)
    losses = {label: [] for label in runs}
    for step in range(args.loss_curve):
        for label, fn in runs.items():
            losses[label].append(fn())
        if args.verbose and (step + 1) % args.window == 0:
            print(f"  steps {step + 2 - args.window}-{step + 1}: " + ", ".join(
                f"{k} {np.mean(v[-args.window:]):.4f}" for k, v in losses.items()), file=sys.stderr, flush=True)
    rows = []
    for start in range(0, args.loss_curve, args.window):
        mean = {k: float(np.mean(v[start:start + args.window])) for k, v in losses.items()}
        row = {"steps": f"{start + 1}-{min(start + args.window, args.loss_curve)}", "fp32": mean["fp32"],
               "bf16": mean["bf16"], "bf16_minus_fp32": mean["bf16"] - mean["fp32"],
               "fp32_se": window_noise(losses["fp32"][start:start + args.window])}
        if "fp32 seed 1" in mean:
            row.update(fp32_seed1=mean["fp32 seed 1"], seed1_minus_fp32=mean["fp32 seed 1"] - mean["fp32"])
        if "bf16 -fp32_attn" in mean:
            row["bf16_bf16attn_minus_fp32"] = mean["bf16 -fp32_attn"] - mean["fp32"]
        rows.append(row)
    return {"machine": common.machine(device), "config": args.configs[0], "steps": args.loss_curve,
            "lr": args.lr, "warmup_steps": args.warmup_steps, "batch": args.batch, "window": args.window,
            "rows": rows, "losses": losses}


def window_noise(losses: list[float]) -> float:
    """Standard error of a window's mean loss, from the step-to-step scatter (successive
    differences, so that the loss's downward trend is not counted as noise)."""
    if len(losses) < 3:
        return float("nan")
    return float(np.std(np.diff(losses)) / np.sqrt(2) / np.sqrt(len(losses)))


def print_loss_curve(result: dict) -> None:
    print(f"machine: {common.describe(result['machine'])}")
    print(f"{result['config']}: {result['steps']} steps, batch {result['batch']}, lr {result['lr']}, warmup "
          f"{result['warmup_steps']}; mean loss per window of {result['window']} steps (same batches for all); "
          f"fp32 s.e.: standard error of fp32's window mean from its step-to-step scatter")
    first = result["rows"][0]
    print(common.format_table(result["rows"], [
        ("steps", "steps", ""), ("fp32", "fp32", ".4f"), ("bf16", "bf16", ".4f")]
        + ([("fp32_seed1", "fp32 seed 1", ".4f")] if "fp32_seed1" in first else [])
        + [("bf16_minus_fp32", "bf16 - fp32", "+.4f"), ("fp32_se", "fp32 s.e.", ".4f")]
        + ([("seed1_minus_fp32", "seed1 - fp32", "+.4f")] if "seed1_minus_fp32" in first else [])
        + ([("bf16_bf16attn_minus_fp32", "bf16 (bf16 attention) - fp32", "+.4f")]
           if "bf16_bf16attn_minus_fp32" in first else [])))
    later = result["rows"][1:] or result["rows"]
    gap = max(abs(r["bf16_minus_fp32"]) for r in later)
    final = result["rows"][-1]
    inside = sum(abs(r["bf16_minus_fp32"]) <= 2 * r["fp32_se"] for r in later)
    print(f"largest |bf16 - fp32| after the first window: {gap:.4f}; within 2 s.e. of fp32's window mean in "
          f"{inside} of {len(later)} windows; last window bf16 - fp32 = {final['bf16_minus_fp32']:+.4f}")
    if "seed1_minus_fp32" in first:
        noise = max(abs(r["seed1_minus_fp32"]) for r in later)
        verdict = "within" if gap <= noise else "outside"
        print(f"largest |seed 1 - seed 0| (fp32): {noise:.4f} -> bf16 is {verdict} the seed-to-seed noise")


# ---------------------------------------------------------------------------------- profile

def run_profile(args, device: torch.device) -> str:
    """torch.profiler's table of where ``ours`` spends a step, per precision (first config)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    out = [f"machine: {common.describe(common.machine(device))}"]
    plan = [(p, {}) for p in args.precisions]
    if args.ablate:  # and the attention as it ran before (bf16 only)
        plan += [(p, dict(ABLATIONS["ours -fp32_attn (before)"][1])) for p in args.precisions if p != "fp32"]
    for precision, switches in plan:
        config = common.run_config(common.PRESETS[args.configs[0]], {"batch_size": args.batch, "precision": precision})
        experiment, _, fn = ours_stepper(config, device, switches=switches)  # the trainer's own Adam
        step = with_data(experiment, fn, args.batch, device)
        for _ in range(max(args.warmup, 1)):
            step()
        with profile(activities=activities) as prof:
            for _ in range(args.profile):
                step()
            common.sync(device)
        label = "ours -fp32_attn (before)" if switches else "ours (Trainer.step as shipped)"
        out.append(f"\n{args.configs[0]} {precision}, {label}, {args.profile} steps, batch {args.batch}:")
        out.append(prof.key_averages().table(sort_by=sort, row_limit=args.profile_rows, max_name_column_width=64))
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="reference,eigen", help="comma-separated: reference, eigen, eigvec, mixed")
    parser.add_argument("--precisions", default="auto",
                        help="comma-separated: fp32, bf16; auto: fp32, and bf16 where it is native (bf16_is_fast)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (reference config)")
    parser.add_argument("--eigen-rounds", type=int, default=2, help="timed rounds (eigen, eigvec, mixed configs)")
    parser.add_argument("--per-round", type=int, default=2, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant")
    parser.add_argument("--no-fused", dest="fused", action="store_false", help="skip the ours -fused-adam (before) rows")
    parser.add_argument("--compile", action="store_true",
                        help="add an `ours +compile` row (train.compile: torch.compile; warm-up steps compile)")
    parser.add_argument("--ablate", action="store_true",
                        help="add rows with the model's speed switch off (what it buys); with --loss-curve, a run too")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--loss-curve", type=int, default=0, metavar="N",
                        help="instead of throughput: fp32 vs bf16 loss over the first N steps")
    parser.add_argument("--window", type=int, default=50, help="loss-curve averaging window")
    parser.add_argument("--no-yardstick", dest="yardstick", action="store_false",
                        help="loss curve without the second fp32 seed (a third cheaper; fp32's s.e. stays)")
    parser.add_argument("--lr", type=float, default=1e-4, help="loss-curve learning rate")
    parser.add_argument("--warmup-steps", type=int, default=100, help="loss-curve warmup steps")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of throughput: torch.profiler table of N steps of ours (first config)")
    parser.add_argument("--profile-rows", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--save", metavar="PATH", help="also write the result as JSON to PATH")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",")]
    args.precisions = [p.strip() for p in args.precisions.split(",")]
    for name in args.configs:
        if name not in common.PRESETS:
            parser.error(f"unknown config {name!r} (known: {', '.join(common.PRESETS)})")
    for p in args.precisions:
        if p not in PRECISIONS and p != "auto":
            parser.error(f"unknown precision {p!r} (known: {', '.join(PRECISIONS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = common.pick_device(args.device)
    args.precisions = common.resolve_precisions(args.precisions, device)
    if args.profile:
        print(run_profile(args, device))
        return 0
    if args.loss_curve:
        return common.emit(run_loss_curve(args, device), args.json, print_loss_curve, args.save)
    return common.emit(run_throughput(args, device), args.json, print_throughput, args.save)


if __name__ == "__main__":
    raise SystemExit(main())
