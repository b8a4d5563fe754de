"""The in-context Newton family (Giannou et al.): the experiment plug-in and its evaluation.

Tasks (``problem.task``): ``linreg`` and ``logreg`` prompts answered at the query token, and
``inverse`` (A -> A^-1). Models (``model.kind``): a trained linear transformer, or for ``inverse``
the hand-set Newton-Schulz construction. The loss of one example is

* linreg: (yhat - y_query)^2;  logreg: (yhat - w* . a_query)^2, w* the regularised minimiser;
* inverse: |X - A^-1|_F^2 / |A^-1|_F^2 (the squared relative error).

``evaluate`` reports the mean loss (``loss``; ``neg_loss`` = -loss is the primary metric, higher
is better), the classical solvers' losses after ``steps`` steps on the same fixed seeded test set
(``newton2_loss`` ... ``gd_loss``, ``exact_loss``), and the same per condition number under
``by_kappa``. The presets (``newton-inverse``, ``newton-linreg``, ``newton-logreg``) are run by
:mod:`linalgformer.reproduce.newton`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from linalgformer.baselines.newton import (GD_SCALES, DampedNewtonLogistic, ExactInverse, ExactRegression,
                                           GradientDescentLogistic, GradientDescentRegression,
                                           NewtonSchulzInverse, NewtonSchulzRegression, predicted_steps)
from linalgformer.config import RunConfig
from linalgformer.errors import UserError
from linalgformer.experiments.plugin import Batch
from linalgformer.experiments.plugin import Experiment as BaseExperiment
from linalgformer.models.newton import LinearTransformer, ModelConfig
from linalgformer.models.newton_construction import NewtonInverseConstruction
from linalgformer.problems.newton import (Curriculum, ProblemConfig, sample_inverse, sample_linreg,
                                             sample_logreg)

__all__ = ["ProblemConfig", "ModelConfig", "Experiment"]

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
    """In-context Newton: problems of :mod:`linalgformer.problems.newton`, linear transformers.

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
