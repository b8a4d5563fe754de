"""Charton's tables: train (or resume) a preset's run and evaluate it with the preset's protocol;
``grid``: train on each law and test on every law (the out-of-distribution table)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from linalgformer.config import RunConfig
from linalgformer.plotting import heatmap
from linalgformer.tables import evaluation_table, render_table
from linalgformer.experiments.charton import accuracy_key
from linalgformer.reproduce.steps import trained, training_done


def run(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    """The preset's ``reproduce`` section may hold ``eval`` (count, seed, distribution, dims, beam)
    and ``grid`` (train on each of ``train`` laws, test on each of ``test`` laws)."""
    if protocol.get("grid"):
        return run_grid(config, protocol, out, device)
    metrics = train_and_evaluate(config, protocol.get("eval") or {}, out, device)
    text = evaluation_table(metrics) + f"\n{describe_model(config)}; {training_done(out)}"
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    return {"run_dir": str(out), "metrics": metrics, "table": [{"group": "all", **flat}], "text": text}


def describe_model(config: RunConfig) -> str:
    """e.g. "5x5 transpose, P1000 -> P1000, 1+1 layers x 256, 8 heads, learned positions"."""
    p, m = config.problem, config.model
    size = f"{p.dim}x{p.dim}" if not (p.min_dim and p.max_dim and p.min_dim != p.max_dim) else f"{p.min_dim}..{p.max_dim}"
    coders = f"{p.input_encoding or p.encoding} -> {p.output_encoding or p.encoding}"
    return (f"{size} {p.name}, {coders}, {m.enc_layers}+{m.dec_layers} layers x {m.width}, {m.heads} heads, "
            f"{m.positions} positions")


def train_and_evaluate(config: RunConfig, ev: dict, run_dir: Path, device: torch.device,
                       distribution: str | None = None) -> dict[str, Any]:
    experiment, model = trained(config, run_dir, device)
    dims = ev.get("dims")
    return experiment.evaluate(model, int(ev.get("count", 1000)), int(ev.get("seed", 12345)), device,
                               distribution=distribution or ev.get("distribution"),
                               dims=[int(d) for d in dims] if dims else None, beam=int(ev.get("beam", 1)))


def run_grid(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    """Train on each law, test on every law: accuracy at 5% tolerance, train law x test law."""
    grid = protocol["grid"]
    train_laws, test_laws = list(grid["train"]), list(grid["test"])
    rows, table = [], []
    for entry in train_laws:  # a law, or LABEL=DISTRIBUTION (a mixture: "mixture=laplace,positive")
        law, _, distribution = str(entry).partition("=")
        cfg = dataclasses.replace(config, problem=dataclasses.replace(config.problem, distribution=distribution or law))
        metrics = train_and_evaluate(cfg, protocol.get("eval") or {}, out / law, device, ",".join(test_laws))
        accs = {t: metrics["by_law"][t][accuracy_key(0.05)] for t in test_laws}
        table.append({"train": law, "distribution": distribution or law, **accs})
        rows.append([law] + [accs[t] for t in test_laws])
    text = "accuracy at 5% tolerance (rows: training law, columns: test law or family)\n"
    text += render_table(["train \\ test"] + test_laws, rows)
    per_law = "; ".join(f"{law}: {training_done(out / law)}"
                        for law in (str(e).partition("=")[0] for e in train_laws))
    plot = heatmap([[row[t] for t in test_laws] for row in table], [row["train"] for row in table], test_laws,
                   "accuracy within 5% (%)", out / "ood-grid.png", xlabel="test", ylabel="trained on")
    return {"run_dir": str(out), "table": table, "plots": [str(plot)],
            "text": text + f"\n{describe_model(config)}; {per_law}"}
