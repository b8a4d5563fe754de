"""He et al.'s tables: a trained encoder beside the power methods, eigh, spectral clustering and
k-means on one test set; ``depths``: one trained model per depth beside the power method per
iteration count (with a plot)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linalgformer.baselines.spectral import PowerMethod
from linalgformer.config import RunConfig
from linalgformer.tables import text_table
from linalgformer.experiments.spectral import Experiment, pca_metrics, predict
from linalgformer.plotting import pyplot, save
from linalgformer.reproduce.steps import last_record, trained


def run(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    """One trained model beside the baselines, or (``depths``) one per depth: {"table", "text", "plots"}."""
    depths = protocol.get("depths")
    if depths:
        return run_depths(config, protocol, out, [int(d) for d in depths], device)
    return run_single(config, protocol, out, device)


def train_and_evaluate(config: RunConfig, run_dir: Path, protocol: dict,
                       device: torch.device) -> tuple[dict[str, Any], float]:
    """Train (or resume) the run, then evaluate it on the protocol's test set; (metrics, train seconds)."""
    experiment, model = trained(config, run_dir, device, progress=False)
    ev = protocol.get("eval") or {}
    metrics = experiment.evaluate(model, int(ev.get("count", 2000)), int(ev.get("seed", 2025)), device)
    return metrics, float(last_record(run_dir).get("elapsed", float("nan")))


def method_row(method: str, depth: Any, metrics: dict[str, float], prefix: str, task: str, k: int) -> dict[str, Any]:
    row: dict[str, Any] = {"method": method, "layers/iters": depth}
    if task == "gmm":
        row["accuracy"] = metrics.get(f"{prefix}accuracy")
        return row
    row.update({f"cos_{j}": metrics.get(f"{prefix}cos_{j}") for j in range(1, k + 1)})
    row["mean_abs_cos"] = metrics.get(f"{prefix}mean_abs_cos")
    row["subspace_dist"] = metrics.get(f"{prefix}subspace_distance")
    row["value_err_1"] = metrics.get(f"{prefix}value_rel_error_1")
    return row


def comparison_rows(config: RunConfig, metrics: dict[str, float], protocol: dict, seconds: float) -> list[dict[str, Any]]:
    p, layers = config.problem, config.model.layers
    rows = [dict(method_row("transformer (trained)", layers, metrics, "", p.task, p.k), train_s=round(seconds))]
    paper = protocol.get("paper") or {}
    if paper:
        rows.append(dict({"method": f"paper: {paper.get('what', 'He et al.')}", "layers/iters": paper.get("layers")},
                         **{k: v for k, v in paper.items() if k not in ("what", "layers")}))
    if p.task == "gmm":
        rows += [method_row("spectral clustering (top eigenvector)", "-", metrics, "spectral_", p.task, p.k),
                 method_row("k-means (scikit-learn)", "-", metrics, "kmeans_", p.task, p.k)]
        return rows
    return rows + [
        method_row("power method, deflation (t per vector)", layers, metrics, f"power{layers}_", p.task, p.k),
        method_row("block power method (orthogonal iteration)", layers, metrics, f"block{layers}_", p.task, p.k),
        method_row("power method to convergence", "conv", metrics, "power_conv_", p.task, p.k),
        method_row("numpy eigh", "exact", metrics, "eigh_", p.task, p.k)]


def run_single(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    metrics, seconds = train_and_evaluate(config, out / "run", protocol, device)
    rows = comparison_rows(config, metrics, protocol, seconds)
    ev = protocol.get("eval") or {}
    text = (f"{ev.get('count', 2000)} test examples (seed {ev.get('seed', 2025)}), "
            f"d = {config.problem.dim}, n = {config.problem.samples}, data = {config.problem.data}, "
            f"trained {config.train.max_steps} steps max / {config.train.max_minutes:g} min max\n" + text_table(rows, ".3f"))
    return {"table": rows, "text": text, "plots": [], "metrics": metrics}


def run_depths(config: RunConfig, protocol: dict, out: Path, depths: list[int], device: torch.device) -> dict[str, Any]:
    """One trained model per depth; the power method per iteration count on the same test set."""
    rows, trained = [], {}
    for depth in depths:
        cfg = dataclasses.replace(config, model=dataclasses.replace(config.model, layers=depth))
        metrics, seconds = train_and_evaluate(cfg, out / f"layers{depth}", protocol, device)
        trained[depth] = metrics
        rows.append(dict(method_row("transformer (trained)", depth, metrics, "", "pca", config.problem.k),
                         train_s=round(seconds)))
    curves = power_curves(config, protocol, max(int(protocol.get("power_iterations", 0)), max(depths)))
    for mode, label in POWER_LABELS.items():
        rows += [method_row(label, depth, curves[mode][depth], "", "pca", config.problem.k) for depth in depths]
    plot = plot_depth(trained, curves, config.problem.k, out / "depth.png")
    return {"table": rows, "text": text_table(rows, ".3f"), "plots": [str(plot)]}


POWER_LABELS = {"sequential": "power method, deflation (t per vector)",
                "simultaneous": "block power method (orthogonal iteration)"}


def power_curves(config: RunConfig, protocol: dict, iterations: int) -> dict[str, dict[int, dict[str, float]]]:
    """PCA metrics of both power methods after t = 1..iterations iterations: {mode: {t: metrics}}."""
    ev = protocol.get("eval") or {}
    experiment = Experiment(config)
    examples = experiment.test_set(int(ev.get("count", 2000)), int(ev.get("seed", 2025)))
    k = config.problem.k
    return {mode: {t: pca_metrics(predict(PowerMethod(k, t, mode=mode), examples), examples)
                   for t in range(1, iterations + 1)} for mode in POWER_LABELS}


def plot_depth(trained: dict[int, dict[str, float]], curves: dict[str, dict[int, dict[str, float]]], k: int,
               path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 3.6), sharey=True)
    for j, ax in enumerate(np.atleast_1d(axes), start=1):
        for (mode, curve), style in zip(curves.items(), ("-", "--")):
            its = sorted(curve)
            ax.plot(its, [curve[t][f"cos_{j}"] for t in its], style, color="gray",
                    label=f"{POWER_LABELS[mode]}, t iterations")
        depths = sorted(trained)
        ax.plot(depths, [trained[d][f"cos_{j}"] for d in depths], "o-", label="trained transformer (layers)")
        ax.set(title=f"eigenvector {j}", xlabel="layers / iterations", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("mean |cos|")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)
