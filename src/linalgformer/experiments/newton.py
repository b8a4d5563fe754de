"""The in-context Newton family (Giannou et al.): experiment, evaluation and reproductions.

Tasks (``problem.task``): ``linreg`` and ``logreg`` prompts answered at the query token, and
``inverse`` (A -> A^-1). Models (``model.kind``): a trained linear transformer, or for ``inverse``
the hand-set Newton-Schulz construction. The loss of one example is

* linreg: (yhat - y_query)^2;  logreg: (yhat - w* . a_query)^2, w* the regularised minimiser;
* inverse: |X - A^-1|_F^2 / |A^-1|_F^2 (the squared relative error).

``evaluate`` reports the mean loss (``loss``; ``neg_loss`` = -loss is the primary metric, higher
is better), the classical solvers' losses after ``steps`` steps on the same fixed seeded test set
(``newton2_loss`` ... ``gd_loss``, ``exact_loss``), and the same per condition number under
``by_kappa``. ``reproduce(name, quick, out_dir)`` runs a preset: ``newton-inverse`` (constructions,
no training), ``newton-linreg`` and ``newton-logreg`` (one trained model per depth beside Newton
and gradient descent per step).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from linalgformer.baselines.newton import (GD_SCALES, DampedNewtonLogistic, ExactInverse, ExactRegression,
                                           GradientDescentLogistic, GradientDescentRegression,
                                           NewtonSchulzInverse, NewtonSchulzRegression, newton_schulz_iterates,
                                           predicted_steps)
from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.experiment import Batch
from linalgformer.experiment import Experiment as BaseExperiment
from linalgformer.models.linear_transformer import LinearTransformer, ModelConfig
from linalgformer.models.newton_construction import NewtonInverseConstruction, NewtonRegressionConstruction
from linalgformer.problems.incontext import (Curriculum, ProblemConfig, sample_inverse, sample_linreg,
                                             sample_logreg, split_prompt)

__all__ = ["ProblemConfig", "ModelConfig", "Experiment", "reproduce"]

ORDERS = (2, 3, 4, 5)  # Newton-Schulz orders run beside the models
TOLERANCE = 1e-6  # relative error the constructions are sized for
EVAL_CHUNK = 512


# ----------------------------------------------------------------------------- data


@dataclass
class TestSet:
    """Model inputs (prompts (B, n+1, d+1) or matrices (B, d, d)), targets and kappas (B,)."""

    inputs: np.ndarray
    target: np.ndarray
    kappa: np.ndarray


def draw(problem: ProblemConfig, rng: np.random.Generator, count: int, kappa: np.ndarray | None = None,
         dim: int | None = None, points: int | None = None) -> TestSet:
    if problem.task == "inverse":
        m = sample_inverse(rng, problem, count, kappa)
        return TestSet(m.matrices, m.inverses, m.kappa)
    if problem.task == "logreg":
        p = sample_logreg(rng, problem, count, dim, points)
    else:
        p = sample_linreg(rng, problem, count, kappa, dim, points)
    return TestSet(p.tokens, p.target, p.kappa)


def test_set(problem: ProblemConfig, count: int, seed: int) -> TestSet:
    """The fixed test set: kappas in turn (equal shares), everything else from ``seed``."""
    kappa = np.resize(np.asarray(problem.kappas, dtype=np.float64), count)
    return draw(problem, np.random.default_rng(seed), count, kappa)


def example_losses(task: str, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-example loss (B,) of answers ``pred`` (numpy)."""
    if task == "inverse":
        return ((pred - target) ** 2).sum((-2, -1)) / (target ** 2).sum((-2, -1))
    return (pred - target) ** 2


def torch_loss(task: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean training loss, the torch twin of :func:`example_losses`."""
    if task == "inverse":
        return (((pred - target) ** 2).sum((-2, -1)) / (target ** 2).sum((-2, -1))).mean()
    return ((pred - target) ** 2).mean()


# ----------------------------------------------------------------------------- baselines


def baselines_for(problem: ProblemConfig, steps: int) -> dict[str, Any]:
    """The classical solvers beside a model, each with the model's call signature."""
    if problem.task == "inverse":
        solvers = {"exact": ExactInverse()}
        solvers.update({f"newton{n}": NewtonSchulzInverse(steps, n) for n in ORDERS})
        return solvers
    if problem.task == "logreg":
        solvers = {"exact": DampedNewtonLogistic(None, problem.mu), "newton": DampedNewtonLogistic(steps, problem.mu)}
        solvers.update({f"gd@{s:g}": GradientDescentLogistic(steps, problem.mu, s) for s in GD_SCALES})
        return solvers
    solvers = {"exact": ExactRegression()}
    solvers.update({f"newton{n}": NewtonSchulzRegression(steps, n) for n in ORDERS})
    solvers.update({f"gd@{s:g}": GradientDescentRegression(steps, s) for s in GD_SCALES})
    return solvers


def baseline_losses(problem: ProblemConfig, test: TestSet, steps: int) -> dict[str, np.ndarray]:
    """Per-example losses (steps + 1, B) after 0..steps steps ((1, B) for exact solvers).

    Gradient descent is run for every step size in GD_SCALES and reported as ``gd``: at each step
    count, the step size with the lowest mean loss (its best of the grid)."""
    inputs = torch.from_numpy(test.inputs)
    curves = {name: np.stack([example_losses(problem.task, a.numpy(), test.target) for a in solver.iterates(inputs)])
              for name, solver in baselines_for(problem, steps).items()}
    grid = [curves.pop(name) for name in list(curves) if name.startswith("gd@")]
    if grid:
        stacked = np.stack(grid)  # (scales, steps + 1, B)
        best = np.nanmean(stacked, axis=-1).argmin(0)
        curves["gd"] = stacked[best, np.arange(stacked.shape[1])]
    return curves


# ----------------------------------------------------------------------------- metrics


def model_answers(model: nn.Module, inputs: np.ndarray, device: torch.device) -> np.ndarray:
    """The model's answers on ``inputs``, in chunks, as float64 numpy."""
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), EVAL_CHUNK):
            chunk = torch.as_tensor(inputs[start:start + EVAL_CHUNK], dtype=dtype, device=device)
            out.append(model(chunk).detach().to("cpu", torch.float64).numpy())
    model.train(was_training)
    return np.concatenate(out)


def summarize(losses: dict[str, np.ndarray], kappa: np.ndarray, task: str) -> dict[str, Any]:
    """Mean of each per-example loss vector; ``model`` -> ``loss``, others -> ``NAME_loss``."""
    def means(mask: np.ndarray) -> dict[str, float]:
        out = {("loss" if name == "model" else f"{name}_loss"): float(np.mean(v[mask])) for name, v in losses.items()}
        if task == "inverse":
            out["max_rel_error"] = float(np.sqrt(np.max(losses["model"][mask])))
        return out

    metrics = means(np.ones(len(kappa), dtype=bool))
    if kappa.any():
        metrics["by_kappa"] = {f"{k:g}": means(kappa == k) for k in np.unique(kappa)}
    return metrics


# ----------------------------------------------------------------------------- experiment


class Experiment(BaseExperiment):
    """In-context Newton: problems of :mod:`linalgformer.problems.incontext`, linear transformers.

    With ``problem.curriculum`` the dimension and prompt length grow with the number of batches
    drawn by this object (``set_step`` sets it, e.g. on resume)."""

    primary_metric = "neg_loss"

    def __init__(self, config: RunConfig):
        super().__init__(config)
        self.problem: ProblemConfig = config.problem
        self.curriculum = Curriculum(self.problem)
        self.step = 0
        self._baselines: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}

    def set_step(self, step: int) -> None:
        self.step = step

    def build_model(self) -> nn.Module:
        model, problem = self.config.model, self.problem
        if model.kind == "construction":
            return self.construction()
        if problem.task == "inverse":
            return LinearTransformer(model, problem.dim, readout="matrix")
        return LinearTransformer(model, problem.dim + 1, readout="last")

    def construction(self) -> NewtonInverseConstruction:
        """Newton-Schulz inverse sized for the largest kappa: alpha = 2 / (1 + 1/kappa^2)."""
        model, problem = self.config.model, self.problem
        if problem.task != "inverse":
            raise UserError(f"model.kind construction is built for task inverse, not {problem.task}.")
        top = max(problem.kappas)
        steps = model.steps or predicted_steps(top, TOLERANCE, model.order)
        return NewtonInverseConstruction(problem.dim, steps, 2.0 / (1.0 + top ** -2), model.order, problem.symmetric)

    def sample_batch(self, rng: np.random.Generator, size: int) -> Batch:
        dim, points = self.curriculum.stage(self.step)
        self.step += 1
        batch = draw(self.problem, rng, size, dim=dim, points=points)
        return {"inputs": torch.as_tensor(batch.inputs, dtype=torch.float32),
                "target": torch.as_tensor(batch.target, dtype=torch.float32)}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return torch_loss(self.problem.task, model(batch["inputs"]).float(), batch["target"])

    def batch_tokens(self, batch: Batch) -> int:
        return int(batch["inputs"].shape[0] * batch["inputs"].shape[1])

    def default_steps(self, model: nn.Module) -> int:
        return int(getattr(model, "steps", self.config.model.layers))

    def baseline_losses(self, count: int, seed: int, steps: int) -> dict[str, np.ndarray]:
        key = (count, seed, steps)
        if key not in self._baselines:
            self._baselines[key] = baseline_losses(self.problem, test_set(self.problem, count, seed), steps)
        return self._baselines[key]

    def evaluate(self, model: nn.Module, count: int, seed: int, device: torch.device, *,
                 steps: int | None = None, baselines: bool = True, **_: Any) -> dict[str, Any]:
        """Mean losses of the model and (after ``steps`` steps, default: the model's depth) of
        the classical solvers, overall and by kappa, on the test set drawn from ``seed``."""
        test = test_set(self.problem, count, seed)
        losses = {"model": example_losses(self.problem.task, model_answers(model, test.inputs, device), test.target)}
        steps = self.default_steps(model) if steps is None else steps
        if baselines:
            for name, curve in self.baseline_losses(count, seed, steps).items():
                losses[name] = curve[min(steps, len(curve) - 1)]
        metrics = summarize(losses, test.kappa, self.problem.task)
        metrics["neg_loss"] = -metrics["loss"]
        metrics["baseline_steps"] = float(steps)
        return metrics


# ----------------------------------------------------------------------------- reproduce


def reproduce(name: str, quick: bool, out_dir: Path) -> dict[str, Any]:
    """Run preset ``name``: {"title", "table" (row dicts), "text", "plots" (paths), "wall_s"}."""
    from linalgformer.reproduce import load_preset

    config, protocol = load_preset(name, quick)
    out = Path(out_dir) / (f"{name}-quick" if quick else name)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    start = time.time()
    if config.problem.task == "inverse":
        result = reproduce_constructions(config, protocol, out)
    else:
        result = reproduce_trained(config, protocol, out)
    wall = round(time.time() - start, 1)
    result.update(title=protocol.get("title") or name, name=name, quick=quick, out_dir=str(out), wall_s=wall)
    if protocol.get("paper"):
        result["text"] += f"\n\npaper: {protocol['paper']}"
    result["text"] += "\n\nplots: " + ", ".join(result["plots"]) + f"\nwall time: {wall} s"
    return result


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def text_table(rows: list[dict[str, Any]]) -> str:
    from linalgformer.evaluate import render_table

    header = list(rows[0])
    return render_table(header, [[number(row.get(c)) for c in header] for row in rows])


# --- constructions (newton-inverse) ---


def relative_errors(x: np.ndarray, inverse: np.ndarray) -> np.ndarray:
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
    errors = [float(relative_errors(x, matrices.inverses).max()) for x in built]
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


def reproduce_constructions(config: RunConfig, protocol: dict, out: Path) -> dict[str, Any]:
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
            f"d = {problem.dim}:\n" + text_table(rows)
            + f"\n\nquadratic convergence, general A, kappa = {max(problem.kappas):g} "
              "(log_ratio = log r_t / log r_(t-1) -> 2):\n" + text_table(quadratic))
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


def train_depths(config: RunConfig, depths: list[int], out: Path, test: TestSet) -> dict[int, np.ndarray]:
    """Train (or resume) one model per depth; per-example test losses of each."""
    from linalgformer.checkpoint import load_run
    from linalgformer.train import pick_device, train_run

    losses = {}
    for depth in depths:
        run_config = dataclasses.replace(config, model=dataclasses.replace(config.model, layers=depth))
        run_dir = out / f"layers{depth}"
        train_run(run_config, run_dir)
        device = pick_device(config.train.device)
        _, _, model = load_run(run_dir, device)
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


def reproduce_trained(config: RunConfig, protocol: dict, out: Path) -> dict[str, Any]:
    ev = protocol.get("eval") or {}
    count, seed = int(ev.get("count", 1000)), int(ev.get("seed", 2024))
    depths = [int(d) for d in protocol.get("depths", [1, 2, 3, 4, 5, 6])]
    test = test_set(config.problem, count, seed)
    models = {f"{name}": train_depths(cfg, depths, out / name, test)
              for name, cfg in variant_configs(config, protocol).items()}
    baselines = baseline_losses(config.problem, test, max(depths))
    rows = curve_rows(depths, models, baselines, np.ones(count, dtype=bool))
    by_kappa = {f"{k:g}": curve_rows(depths, models, baselines, test.kappa == k) for k in np.unique(test.kappa)} \
        if test.kappa.any() else {}
    plots = [plot_loss_curves(rows, by_kappa, out)]
    text = (f"mean test loss on {count} prompts (seed {seed}); k = layers of the model / steps of the solver:\n"
            + text_table(rows))
    for kappa, kappa_rows in by_kappa.items():
        text += f"\n\nkappa = {kappa}:\n" + text_table(kappa_rows)
    return {"table": rows, "by_kappa": by_kappa, "text": text, "plots": [str(p) for p in plots]}


# --- plots ---


def plot_construction_errors(curves: dict[tuple, list[float]], out: Path) -> Path:
    from linalgformer.plotting import pyplot, save

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
    from linalgformer.plotting import pyplot, save

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
    from linalgformer.plotting import pyplot, save

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
