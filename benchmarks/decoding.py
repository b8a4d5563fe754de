"""Decoding throughput: greedy with the KV cache, greedy without it, and beam search, side by side.

A randomly initialised model of the reference shape (2 + 2 layers, width 256, 8 heads) decodes
5x5 transpose answers written in P1000 (``--dim``, ``--encoding`` to change). The cost of decoding
depends on the number of steps, not on the weights, so ``<eos>`` is suppressed (its read-out bias
set to -1e4) and every example runs the full ``max_len`` steps: the cost of a trained model whose
answers all have the longest length. Variants are timed in turn, round after round, in one process;
the ratio is the median over rounds of (no-cache time / cache time).

    .venv/bin/python benchmarks/decoding.py
    .venv/bin/python benchmarks/decoding.py --batch 256 --beam 4 --rounds 5 --json
    .venv/bin/python benchmarks/decoding.py --before HEAD     # beside the decoding code of a git commit
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from linalgformer.models import charton_decoding as current


def load_before(ref: str):
    """The seq2seq model and its decoding as they were at git ``ref`` (``models/charton.py`` and
    ``models/charton_decoding.py``; before the renames ``models/seq2seq.py`` and ``models/decoding.py``),
    imported as a separate package (the rest of linalgformer is today's), for a "before" row."""
    package = common.scratch_dir("linalgformer-before-") / "before_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, older in (("seq2seq", "seq2seq"), ("decoding", "decoding")):
        text = git_show(ref, f"{'charton' if name == 'seq2seq' else 'charton_decoding'}.py") or git_show(ref, f"{older}.py")
        for module in ("linalgformer.models.charton", "linalgformer.models.seq2seq"):
            text = text.replace(module + "\n", "before_models.seq2seq\n").replace(module + " ", "before_models.seq2seq ")
        (package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("before_models.seq2seq"), importlib.import_module("before_models.decoding")


def git_show(ref: str, name: str) -> str:
    """``src/linalgformer/models/NAME`` at git ``ref``; "" if it did not exist there."""
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(["git", "show", f"{ref}:src/linalgformer/models/{name}"], cwd=root,
                           capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else ""


def build(args, device: torch.device):
    """(model, src, src_len, max_len) for the chosen problem, on ``device``."""
    from linalgformer.experiments.registry import build_experiment

    preset = {**common.REFERENCE, "problem": {"name": args.problem, "dim": args.dim, "encoding": args.encoding}}
    config = common.run_config(preset)
    experiment = build_experiment(config)
    torch.manual_seed(0)
    model = experiment.build_model().to(device).eval()
    with torch.no_grad():
        model.head.bias[model.eos_id] = -1e4  # never stop early: every example decodes max_len steps
    batch = experiment.sample_batch(np.random.default_rng(0), args.batch)
    max_len = experiment.problem.max_output_length(args.dim) + 2  # as Experiment.predict decodes
    return model, batch["src_ids"].to(device), batch["src_len"].to(device), max_len


def variants(model, src, src_len, max_len: int, beam: int, autocast, module=current, tag: str = "") -> dict:
    def run(fn, **kw):
        def call():
            with autocast():
                return fn(model, src, src_len, max_len, **kw)
        return call

    out = {f"{tag}greedy, cache": run(module.greedy, use_cache=True),
           f"{tag}greedy, no cache": run(module.greedy, use_cache=False)}
    if beam > 1:
        out[f"{tag}beam {beam}, cache"] = run(module.beam_search, beam=beam)
    return out


def before_model(args, model, device: torch.device):
    seq2seq, decoding = load_before(args.before)
    old = seq2seq.Seq2Seq(model.cfg, model.vocab_size, model.pad_id, model.bos_id, model.eos_id)
    old.load_state_dict(model.state_dict())
    return old.to(device).eval(), decoding


def measure(args, device: torch.device) -> dict:
    model, src, src_len, max_len = build(args, device)
    rows = []
    for precision in args.precisions:
        dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
        autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
        fns = variants(model, src, src_len, max_len, args.beam, autocast)
        same = fns["greedy, cache"]() == fns["greedy, no cache"]()
        if args.before:
            old, module = before_model(args, model, device)
            before = variants(old, src, src_len, max_len, args.beam, autocast, module, f"{args.before}: ")
            before.pop(f"{args.before}: greedy, no cache")
            if any(fns[k.split(": ", 1)[1]]() != fn() for k, fn in before.items()):
                raise SystemExit(f"decoding at {args.before} gives different tokens")
            fns.update(before)
        times = common.interleaved(fns, args.rounds, 1, 1, device)
        for name, ts in times.items():
            sec = common.median(ts)
            rows.append({"precision": precision, "variant": name, "s_per_batch": sec,
                         "examples_per_s": args.batch / sec, "tokens_per_s": args.batch * max_len / sec,
                         "vs_no_cache": common.paired_ratio(times, "greedy, no cache", name),
                         "same_tokens_as_no_cache": same if name.startswith("greedy") else None})
    return {"machine": common.machine(device), "problem": args.problem, "dim": args.dim, "encoding": args.encoding,
            "batch": args.batch, "max_len": max_len, "source_len": int(src.shape[1]), "rounds": args.rounds,
            "rows": rows}


def print_result(result: dict) -> None:
    print(f"machine: {common.describe(result['machine'])}")
    print(f"{result['dim']}x{result['dim']} {result['problem']} {result['encoding']}: source {result['source_len']} "
          f"tokens, {result['max_len']} decoding steps per example (eos suppressed), batch {result['batch']}, "
          f"reference model shape, {result['rounds']} rounds")
    print(common.format_table(result["rows"], [
        ("precision", "prec", ""), ("variant", "variant", ""), ("s_per_batch", "s/batch", ".3f"),
        ("examples_per_s", "ex/s", ".1f"), ("tokens_per_s", "tok/s", ",.0f"),
        ("vs_no_cache", "x greedy no cache", ".2f"), ("same_tokens_as_no_cache", "same tokens", "")]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="transpose")
    parser.add_argument("--dim", type=int, default=5)
    parser.add_argument("--encoding", default="P1000")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--beam", type=int, default=4, help="beam size (1: no beam row)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (autocast)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="add rows for the seq2seq model + its decoding (models/charton*.py) as they were at GIT_REF")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    args.precisions = [p.strip() for p in args.precisions.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.set_threads(args.threads)
    device = common.pick_device(args.device)
    return common.emit(measure(args, device), args.json, print_result)


if __name__ == "__main__":
    raise SystemExit(main())
