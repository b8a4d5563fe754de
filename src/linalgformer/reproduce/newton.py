"""Giannou et al.'s tables: the hand-set Newton-Schulz constructions against the classical
iterates (``newton-inverse``, no training), and trained linear transformers per depth beside
Newton and gradient descent per step (``newton-linreg``, ``newton-logreg``), with plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linalgformer.baselines.newton import ExactRegression, newton_schulz_iterates, predicted_steps
from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.tables import text_table
from linalgformer.experiments.newton import (ORDERS, TOLERANCE, TestSet, baseline_losses, example_losses,
                                             model_answers, test_set)
from linalgformer.models.newton_construction import NewtonInverseConstruction, NewtonRegressionConstruction
from linalgformer.plotting import pyplot, save
from linalgformer.problems.newton import ProblemConfig, sample_inverse, sample_linreg, split_prompt
from linalgformer.reproduce.steps import trained


def run(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    """{"table", "text", "plots", ...}: the constructions for task inverse, else trained models per depth."""
    if config.problem.task == "inverse":
        return run_constructions(config, protocol, out)
    return run_trained(config, protocol, out, device)


# --- constructions (newton-inverse) ---


def inverse_errors(x: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Relative Frobenius errors (B,) of iterates ``x`` against the exact inverses."""
    return np.linalg.norm(x - inverse, axis=(-2, -1)) / np.linalg.norm(inverse, axis=(-2, -1))


def first_below(errors: list[float], tol: float) -> int | None:
    return next((t for t, e in enumerate(errors) if e < tol), None)


def inverse_row(problem: ProblemConfig, kappa: float, order: int, count: int, seed: int) -> tuple[dict, list[float]]:
    """Construction for kappa and order vs the classical iterates: a table row and its error curve."""
    matrices = sample_inverse(np.random.default_rng([seed, int(kappa * 1000), order]), problem, count,
                              np.full(count, kappa))
    steps, alpha = predicted_steps(kappa, TOLERANCE, order), 2.0 / (1.0 + kappa ** -2)
    model = NewtonInverseConstruction(problem.dim, steps, alpha, order, problem.symmetric)
    built = [x.numpy() for x in model.iterates(torch.from_numpy(matrices.matrices))]
    classical = newton_schulz_iterates(matrices.matrices, steps, order, alpha)
    errors = [float(inverse_errors(x, matrices.inverses).max()) for x in built]
    gap = max(float(np.abs(b - c).max() / np.abs(c).max()) for b, c in zip(built, classical))
    row = {"construction": "inverse " + ("symmetric" if problem.symmetric else "general"), "kappa": kappa,
           "kappa_eff": kappa, "order": order, "steps_theory": steps, "steps_measured": first_below(errors, TOLERANCE),
           "layers": len(model.layers), "width": model.layout.width, "rel_error": errors[-1], "iterate_gap": gap}
    return row, errors


def regression_row(problem: ProblemConfig, kappa: float, ridge: float, count: int, seed: int) -> tuple[dict, list[float]]:
    """In-context least squares / ridge construction for prompts of condition number kappa.

    alpha and the step count come from the batch's empirical spectral interval [lo, hi] of
    S = (A^T A + n ridge I) / N (the construction is built for a known interval)."""
    prompts = sample_linreg(np.random.default_rng([seed, int(kappa * 1000), int(ridge * 1000)]), problem, count,
                            np.full(count, kappa))
    a, _, query = split_prompt(prompts.tokens)
    n, dim = a.shape[-2], a.shape[-1]
    keys = n + (dim if ridge > 0 else 0)
    cov = (np.swapaxes(a, -1, -2) @ a + n * ridge * np.eye(dim)) / keys
    eig = np.linalg.eigvalsh(cov)
    lo, hi = eig[:, 0].min(), eig[:, -1].max()
    steps = predicted_steps(hi / lo, TOLERANCE)
    model = NewtonRegressionConstruction(dim, steps, 2.0 / (hi ** 2 + lo ** 2), ridge)
    tokens = torch.from_numpy(prompts.tokens)
    built = [v.numpy() for v in model.query_iterates(tokens)]
    classical = [np.einsum("bde,be->bd", x, query) for x in newton_schulz_iterates(cov, steps, 2, 2.0 / (hi ** 2 + lo ** 2))]
    exact = np.linalg.solve(cov, query[..., None])[..., 0]
    errors = [float((np.linalg.norm(v - exact, axis=-1) / np.linalg.norm(exact, axis=-1)).max()) for v in built]
    answer_gap = np.abs(model(tokens).numpy() - ExactRegression(ridge)(tokens).numpy()).max()
    gap = max(float(np.abs(b - c).max() / np.abs(c).max()) for b, c in zip(built, classical))
    row = {"construction": f"linreg ridge={ridge:g}", "kappa": kappa, "kappa_eff": float(hi / lo), "order": 2, "steps_theory": steps,
           "steps_measured": first_below(errors, TOLERANCE), "layers": len(model.layers),
           "width": model.layout.width, "rel_error": errors[-1], "iterate_gap": gap,
           "answer_gap": float(answer_gap)}
    return row, errors


def quadratic_rows(problem: ProblemConfig, kappa: float, count: int, seed: int) -> list[dict[str, Any]]:
    """Residual |I - A X_t|_2 per step of the general-A construction: r_{t+1} = r_t^2."""
    matrices = sample_inverse(np.random.default_rng([seed, 7]), problem, count, np.full(count, kappa))
    steps, alpha = predicted_steps(kappa, TOLERANCE), 2.0 / (1.0 + kappa ** -2)
    model = NewtonInverseConstruction(problem.dim, steps, alpha, 2, False)
    eye = np.eye(problem.dim)
    rows, previous = [], None
    for t, x in enumerate(model.iterates(torch.from_numpy(matrices.matrices))):
        r = float(np.linalg.norm(eye - matrices.matrices @ x.numpy(), ord=2, axis=(-2, -1)).max())
        ratio = float(np.log(r) / np.log(previous)) if previous and 0 < r < 1 and 0 < previous < 1 else None
        rows.append({"step": t, "residual": r, "log_ratio": ratio})
        previous = r
    return rows


def run_constructions(config: RunConfig, protocol: dict, out: Path) -> dict[str, Any]:
    problem = config.problem
    ev = protocol.get("eval") or {}
    count, seed = int(ev.get("count", 64)), int(ev.get("seed", 2024))
    general, symmetric = dataclasses.replace(problem, symmetric=False), dataclasses.replace(problem, symmetric=True)
    rows, curves = [], {}
    for order in ORDERS:
        for kappa in problem.kappas:
            row, errors = inverse_row(general, kappa, order, count, seed)
            rows.append(row)
            curves[("inverse", order, kappa)] = errors
    for kappa in problem.kappas:
        rows.append(inverse_row(symmetric, kappa, 2, count, seed)[0])
    regression = dataclasses.replace(problem, task="linreg", noise=0.0)
    for ridge in protocol.get("ridges", [0.0, 0.1]):
        for kappa in protocol.get("regression_kappas", [5, 10, 20, 50, 100]):
            row, errors = regression_row(regression, float(kappa), float(ridge), count, seed)
            rows.append(row)
            curves[("linreg", ridge, float(kappa))] = errors
    quadratic = quadratic_rows(general, max(problem.kappas), count, seed)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_construction_errors(curves, out), plot_steps_vs_kappa(rows, out)]
    for row in rows:
        row.setdefault("answer_gap", None)
    text = (f"relative error after the predicted steps (target {TOLERANCE:g}), {count} matrices per row, "
            f"d = {problem.dim}:\n" + text_table(rows, ".3g")
            + f"\n\nquadratic convergence, general A, kappa = {max(problem.kappas):g} "
              "(log_ratio = log r_t / log r_(t-1) -> 2):\n" + text_table(quadratic, ".3g"))
    return {"table": rows, "quadratic": quadratic, "text": text, "plots": [str(p) for p in plots]}


# --- trained models (newton-linreg, newton-logreg) ---


def variant_configs(config: RunConfig, protocol: dict) -> dict[str, RunConfig]:
    """(variant name -> config) from the protocol's ``variants`` (model overrides by name)."""
    variants = protocol.get("variants") or {"lsa": {}}
    chosen = protocol.get("use_variants") or list(variants)
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise UserError(f"unknown model variant {unknown[0]!r} (known: {', '.join(variants)}).")
    return {v: dataclasses.replace(config, model=dataclasses.replace(config.model, **(variants[v] or {})))
            for v in chosen}


def train_depths(config: RunConfig, depths: list[int], out: Path, test: TestSet,
                 device: torch.device) -> dict[int, np.ndarray]:
    """Train (or resume) one model per depth; per-example test losses of each."""
    losses = {}
    for depth in depths:
        run_config = dataclasses.replace(config, model=dataclasses.replace(config.model, layers=depth))
        _, model = trained(run_config, out / f"layers{depth}", device)
        losses[depth] = example_losses(config.problem.task, model_answers(model, test.inputs, device), test.target)
    return losses


def curve_rows(depths: list[int], models: dict[str, dict[int, np.ndarray]], baselines: dict[str, np.ndarray],
               mask: np.ndarray) -> list[dict[str, Any]]:
    """One row per depth / step count k: each model with k layers beside each solver after k steps."""
    rows = []
    for k in depths:
        row: dict[str, Any] = {"k": k}
        row.update({name: float(np.mean(by_depth[k][mask])) for name, by_depth in models.items()})
        row.update({name: float(np.mean(curve[min(k, len(curve) - 1)][mask])) for name, curve in baselines.items()})
        rows.append(row)
    return rows


def run_trained(config: RunConfig, protocol: dict, out: Path, device: torch.device) -> dict[str, Any]:
    ev = protocol.get("eval") or {}
    count, seed = int(ev.get("count", 1000)), int(ev.get("seed", 2024))
    depths = [int(d) for d in protocol.get("depths", [1, 2, 3, 4, 5, 6])]
    test = test_set(config.problem, count, seed)
    models = {f"{name}": train_depths(cfg, depths, out / name, test, device)
              for name, cfg in variant_configs(config, protocol).items()}
    baselines = baseline_losses(config.problem, test, max(depths))
    rows = curve_rows(depths, models, baselines, np.ones(count, dtype=bool))
    by_kappa = {f"{k:g}": curve_rows(depths, models, baselines, test.kappa == k) for k in np.unique(test.kappa)} \
        if test.kappa.any() else {}
    plots = [plot_loss_curves(rows, by_kappa, out)]
    text = (f"mean test loss on {count} prompts (seed {seed}); k = layers of the model / steps of the solver:\n"
            + text_table(rows, ".3g"))
    for kappa, kappa_rows in by_kappa.items():
        text += f"\n\nkappa = {kappa}:\n" + text_table(kappa_rows, ".3g")
    return {"table": rows, "by_kappa": by_kappa, "text": text, "plots": [str(p) for p in plots]}


# --- plots ---


def plot_construction_errors(curves: dict[tuple, list[float]], out: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (kind, key, kappa), errors in curves.items():
        if kind == "inverse" and key == 2:
            axes[0].semilogy(range(len(errors)), np.maximum(errors, 1e-17), marker=".", label=f"kappa {kappa:g}")
        if kind == "linreg" and key == 0.0:
            axes[1].semilogy(range(len(errors)), np.maximum(errors, 1e-17), marker=".", label=f"kappa {kappa:g}")
    titles = ("inverse construction (order 2, general A)", "in-context least squares construction")
    for ax, title in zip(axes, titles):
        ax.axhline(TOLERANCE, color="grey", linestyle=":")
        ax.set(title=title, xlabel="Newton step t", ylabel="max relative error")
        ax.legend(fontsize=7)
    return save(fig, out / "construction_error_vs_steps.png")


def plot_steps_vs_kappa(rows: list[dict[str, Any]], out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for order in ORDERS:
        mine = [r for r in rows if r["construction"] == "inverse general" and r["order"] == order]
        kappas = [r["kappa"] for r in mine]
        ax.plot(kappas, [r["steps_measured"] for r in mine], marker="o", label=f"order {order} measured")
        ax.plot(kappas, [r["steps_theory"] for r in mine], linestyle=":", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set(title=f"steps to relative error {TOLERANCE:g} (dotted: theory)", xlabel="condition number", ylabel="steps")
    ax.legend(fontsize=7)
    return save(fig, out / "steps_vs_kappa.png")


def plot_loss_curves(rows: list[dict[str, Any]], by_kappa: dict[str, list[dict]], out: Path) -> Path:
    """Test loss against layers (models, solid) and steps (solvers, dashed): all, then by kappa.

    Curves at rounding level (the exact solver on noiseless data) are left out; the axis stops
    at 1e-10."""
    plt = pyplot()
    panels = {"all": rows, **{f"kappa {k}": r for k, r in by_kappa.items()}}
    cols = min(3, len(panels))
    grid = -(-len(panels) // cols)
    fig, axes = plt.subplots(grid, cols, figsize=(4.2 * cols, 3.4 * grid), squeeze=False)
    for ax, (title, panel) in zip(axes.flat, panels.items()):
        ks = [r["k"] for r in panel]
        for name in [c for c in panel[0] if c != "k"]:
            values = [r[name] for r in panel]
            if max(values) < 1e-12:
                continue
            style = {"linestyle": "--"} if name.startswith(("newton", "gd", "exact")) else {"marker": "o"}
            ax.semilogy(ks, np.maximum(values, 1e-10), label=name, **style)
        ax.set_ylim(bottom=1e-10)
        ax.set(title=title, xlabel="layers (model) / steps (solver)", ylabel="test loss")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out / "loss_vs_layers.png")
