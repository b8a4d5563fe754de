"""The spectral family (He et al., "Learning Spectral Methods by Transformers").

Tasks (``problem.task``):

* ``pca``: from a data matrix X (n x d) predict the top-k eigenvectors (d x k) and eigenvalues of
  C = X^T X / n. Loss per eigenvector: ``abs_cos`` 1 - |cos| (default; sign-invariant, an
  eigenvector is only defined up to sign), ``cos2`` 1 - cos^2, or ``signed_cos`` 1 - cos against
  targets whose largest entry is positive (the authors' loss); plus ``value_weight`` times the
  squared eigenvalue error relative to lambda_1.
* ``gmm``: label each of the n samples of a Gaussian-mixture block; loss: cross-entropy under the
  best renaming of the classes (the minimum over all label permutations).

Data (``problem.data``): synthetic, scikit-learn's digits, or MNIST-style IDX files (projected on the
top ``dim`` principal components and standardised, cut into random blocks of ``samples`` images;
training blocks from the training images, test blocks from the held-out ones).

``evaluate`` reports, on a fixed seeded test set, for PCA: ``cos_j`` (mean |cos| of eigenvector j),
``mean_abs_cos`` (primary metric), ``subspace_distance`` (RMS sine of the principal angles; mean and
``subspace_distance_median`` over instances) and
``value_rel_error_j``; for clustering: ``accuracy`` after the best matching of labels (Hungarian).
Each is repeated for the classical baselines on the same examples under a prefix: ``eigh_``,
``power{t}_`` (deflated power method, t = model layers iterations per vector), ``block{t}_``
(orthogonal iteration, t iterations), ``power_conv_`` (to convergence); ``spectral_`` and ``kmeans_``.

The presets (``spectral-pca``, ``spectral-pca-relu``, ``spectral-depth``, ``spectral-gmm``,
``spectral-digits``, ``spectral-digits-gmm``) are run by :mod:`linalgformer.reproduce.spectral`.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linalgformer.baselines.spectral import Eigh, KMeansClustering, PowerMethod, SpectralClustering
from linalgformer.config import RunConfig
from linalgformer.datasets import ProjectedData, distinct_blocks, load_digits_projected, load_idx_projected
from linalgformer.errors import UserError
from linalgformer.experiments.plugin import Batch
from linalgformer.experiments.plugin import Experiment as BaseExperiment
from linalgformer.linalg import canonical_sign
from linalgformer.models.spectral import ModelConfig, Outputs, SpectralEncoder
from linalgformer.problems.spectral import (ProblemConfig, SpectralExamples, abs_cosines,
                                            eigenvalue_relative_error, matched_accuracy, pca_examples, sample_gmm,
                                            sample_pca, subspace_distance)

__all__ = ["ProblemConfig", "ModelConfig", "Experiment"]

Predictor = Callable[[Batch], Batch]
EVAL_CHUNK = 500


# ----------------------------------------------------------------------------- data


def to_batch(examples: SpectralExamples) -> Batch:
    """numpy examples -> the batch dict of CPU tensors (float32 inputs and targets)."""
    batch = {"x": torch.from_numpy(examples.x.astype(np.float32))}
    if examples.vectors is not None:
        batch["vectors"] = torch.from_numpy(examples.vectors.astype(np.float32))
        batch["values"] = torch.from_numpy(examples.values.astype(np.float32))
    if examples.labels is not None:
        batch["labels"] = torch.from_numpy(examples.labels)
    return batch


def load_real_data(problem: ProblemConfig) -> ProjectedData:
    if problem.data == "digits":
        return load_digits_projected(problem.dim, problem.test_fraction)
    if problem.task == "gmm" and not problem.idx_labels:
        raise UserError("clustering IDX images needs problem.idx_labels (the labels file).")
    return load_idx_projected(problem.idx_images, problem.idx_labels or None, problem.dim, problem.test_fraction)


def real_blocks(problem: ProblemConfig, data: ProjectedData, rng: np.random.Generator, count: int,
                split: str) -> SpectralExamples:
    """Random blocks of ``samples`` distinct images from one pool; labels renumbered 0..classes-1."""
    points, labels = data.pool(split)
    if problem.task == "gmm" and problem.random_classes:
        return random_class_blocks(problem, points, labels, rng, count)
    if problem.task == "gmm":
        chosen = problem.digit_classes or tuple(range(problem.classes))
        keep = np.isin(labels, chosen)
        points, labels = points[keep], np.searchsorted(np.array(sorted(chosen)), labels[keep])
    idx = distinct_blocks(rng, len(points), count, problem.samples)  # (count, n)
    if problem.task == "pca":
        return pca_examples(points[idx], problem.k)
    return SpectralExamples(x=points[idx], labels=labels[idx].astype(np.int64))


def random_class_blocks(problem: ProblemConfig, points: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                        count: int) -> SpectralExamples:
    """Blocks whose ``classes`` labels are drawn afresh per block, so that no fixed classifier solves
    them: the model has to cluster. Each block holds ``samples`` distinct images of its labels."""
    names = np.unique(labels)
    by_label = {name: np.flatnonzero(labels == name) for name in names}
    x = np.empty((count, problem.samples, points.shape[1]))
    y = np.empty((count, problem.samples), dtype=np.int64)
    for b in range(count):
        chosen = rng.choice(names, size=problem.classes, replace=False)
        pool = np.concatenate([by_label[name] for name in chosen])
        idx = pool[distinct_blocks(rng, len(pool), 1, problem.samples)[0]]
        x[b], y[b] = points[idx], np.searchsorted(np.sort(chosen), labels[idx])
    return SpectralExamples(x=x, labels=y)


# ----------------------------------------------------------------------------- losses


def vector_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean over examples and eigenvectors of 1 - |cos|, 1 - cos^2 or 1 - cos; (B, d, k) inputs."""
    cos = (pred * target).sum(-2) / (pred.norm(dim=-2) * target.norm(dim=-2)).clamp(min=1e-8)  # (B, k)
    if kind == "abs_cos":
        return (1 - cos.abs()).mean()
    if kind == "cos2":
        return (1 - cos.square()).mean()
    return (1 - cos).mean()


def value_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared eigenvalue error relative to the top eigenvalue (scale-free), (B, k) inputs."""
    return ((pred - target) / target[:, :1].clamp(min=1e-12)).square().mean()


def matched_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (B, n, c) vs (B, n) under the best permutation of class names, per example."""
    logp = F.log_softmax(logits.float(), dim=-1)
    classes = logits.shape[-1]
    per_perm = []
    for perm in itertools.permutations(range(classes)):
        renamed = torch.tensor(perm, device=labels.device)[labels]  # (B, n)
        per_perm.append(-logp.gather(-1, renamed[..., None])[..., 0].mean(-1))  # (B,)
    return torch.stack(per_perm, -1).min(-1).values.mean()


# ----------------------------------------------------------------------------- metrics


def pca_metrics(pred: dict[str, np.ndarray], examples: SpectralExamples, prefix: str = "") -> dict[str, float]:
    cos = abs_cosines(pred["vectors"], examples.vectors)  # (B, k)
    out = {f"{prefix}cos_{j + 1}": float(cos[:, j].mean()) for j in range(cos.shape[1])}
    out[f"{prefix}mean_abs_cos"] = float(cos.mean())
    distance = subspace_distance(pred["vectors"], examples.vectors)
    out[f"{prefix}subspace_distance"] = float(distance.mean())
    out[f"{prefix}subspace_distance_median"] = float(np.median(distance))
    if "values" in pred:
        errors = eigenvalue_relative_error(pred["values"], examples.values)
        out.update({f"{prefix}value_rel_error_{j + 1}": float(errors[:, j].mean()) for j in range(errors.shape[1])})
    return out


def cluster_metrics(pred: dict[str, np.ndarray], examples: SpectralExamples, classes: int,
                    prefix: str = "") -> dict[str, float]:
    return {f"{prefix}accuracy": float(matched_accuracy(pred["labels"], examples.labels, classes).mean())}


def predict(predictor: Predictor, examples: SpectralExamples, device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """Run a model or baseline over ``examples`` in chunks; numpy float64 outputs (labels for logits)."""
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, len(examples), EVAL_CHUNK):
        chunk = SpectralExamples(x=examples.x[start:start + EVAL_CHUNK])
        with torch.no_grad():
            out = predictor({"x": to_batch(chunk)["x"].to(device)})
        if "logits" in out:
            out = dict(out, labels=out["logits"].argmax(-1))
        parts.append({k: v.detach().cpu().numpy() for k, v in out.items() if k != "logits"})
    return {k: np.concatenate([p[k] for p in parts]).astype(np.float64 if k != "labels" else np.int64)
            for k in parts[0]}


# ----------------------------------------------------------------------------- the experiment


class Experiment(BaseExperiment):
    """PCA or clustering by a :class:`SpectralEncoder`, beside the classical spectral algorithms."""

    def __init__(self, config: RunConfig):
        super().__init__(config)
        self.problem: ProblemConfig = config.problem
        self.primary_metric = "mean_abs_cos" if self.problem.task == "pca" else "accuracy"
        self._real: ProjectedData | None = None
        self._baselines: dict[tuple[int, int], dict[str, float]] = {}

    def outputs(self) -> Outputs:
        p = self.problem
        return Outputs(dim=p.dim, samples=p.samples, k=p.k if p.task == "pca" else 0,
                       classes=p.classes if p.task == "gmm" else 0)

    def build_model(self) -> nn.Module:
        try:
            return SpectralEncoder(self.config.model, self.outputs())
        except ValueError as err:
            raise UserError(f"model: {err}.") from None

    def draw(self, rng: np.random.Generator, count: int, split: str = "train") -> SpectralExamples:
        p = self.problem
        if p.data != "synthetic":
            if self._real is None:
                self._real = load_real_data(p)
            return real_blocks(p, self._real, rng, count, split)
        if p.task == "pca":
            return sample_pca(rng, count, p.dim, p.samples, p.k, p.spectrum, p.decay)
        return sample_gmm(rng, count, p.dim, p.samples, p.classes, p.separation)

    def sample_batch(self, rng: np.random.Generator, size: int) -> Batch:
        return to_batch(self.draw(rng, size, "train"))

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        out = model(batch)
        if self.problem.task == "gmm":
            return matched_cross_entropy(out["logits"], batch["labels"])
        loss = vector_loss(out["vectors"].float(), batch["vectors"], self.problem.loss)
        if self.problem.value_weight:
            loss = loss + self.problem.value_weight * value_loss(out["values"].float(), batch["values"])
        return loss

    def batch_tokens(self, batch: Batch) -> int:
        x = batch["x"]
        per_example = x.shape[2] if self.config.model.tokens == "covariance" else x.shape[1]
        return int(x.shape[0] * per_example)

    def test_set(self, count: int, seed: int) -> SpectralExamples:
        return self.draw(np.random.default_rng(seed), count, "test")

    def baselines(self) -> dict[str, Predictor]:
        p, t = self.problem, self.config.model.layers
        if p.task == "gmm":
            return {"spectral_": SpectralClustering(p.classes), "kmeans_": KMeansClustering(p.classes)}
        return {"eigh_": Eigh(p.k), f"power{t}_": PowerMethod(p.k, t),
                f"block{t}_": PowerMethod(p.k, t, mode="simultaneous"), "power_conv_": PowerMethod(p.k, None)}

    def score(self, pred: dict[str, np.ndarray], examples: SpectralExamples, prefix: str = "") -> dict[str, float]:
        if self.problem.task == "gmm":
            return cluster_metrics(pred, examples, self.problem.classes, prefix)
        return pca_metrics(pred, examples, prefix)

    def evaluate(self, model: nn.Module, count: int, seed: int, device: torch.device,
                 **options: Any) -> dict[str, Any]:
        """Model metrics on ``count`` seeded test examples, then the baselines' (``baselines=False``
        skips them; they are computed once per (count, seed) and cached)."""
        examples = self.test_set(count, seed)
        was_training = model.training
        model.eval()
        metrics = self.score(predict(model, examples, device), examples)
        model.train(was_training)
        if options.get("baselines", True):
            metrics.update(self.baseline_metrics(examples, count, seed))
        return metrics

    def answer(self, model: nn.Module, matrix: np.ndarray, beam: int = 1) -> dict[str, Any]:
        """``linalgformer predict`` on one data matrix X (n x d): the model's top-k eigenvectors (or
        cluster labels) beside numpy's eigh (or spectral clustering); ``error`` = 1 - mean |cos| (or
        1 - the share of samples on which the two labelings agree, after the best renaming)."""
        examples = self.user_examples(matrix)
        device = next(model.parameters()).device
        model.eval()
        pred = predict(model, examples, device)
        if self.problem.task == "gmm":
            reference = predict(SpectralClustering(self.problem.classes), examples)["labels"]
            agree = float(matched_accuracy(pred["labels"], reference, self.problem.classes)[0])
            return {"problem": "gmm", "prediction": pred["labels"][0].tolist(), "reference": reference[0].tolist(),
                    "reference_method": "spectral clustering", "error": 1.0 - agree, "valid": True,
                    "error_label": "disagreement with spectral clustering (best renaming)",
                    "prediction_text": " ".join(map(str, pred["labels"][0])),
                    "reference_text": " ".join(map(str, reference[0])) + "  (spectral clustering)"}
        vectors = canonical_sign(pred["vectors"] / np.linalg.norm(pred["vectors"], axis=-2, keepdims=True))
        cos = abs_cosines(vectors, examples.vectors)[0]
        text = lambda v, values: (np.array2string(v[0].T, precision=4, suppress_small=True)  # noqa: E731
                                  + f"  (rows: eigenvectors; eigenvalues {np.array2string(values[0], precision=4)})")
        return {"problem": "pca", "prediction": vectors[0].T.tolist(), "prediction_values": pred["values"][0].tolist(),
                "reference": examples.vectors[0].T.tolist(), "reference_values": examples.values[0].tolist(),
                "abs_cos": cos.tolist(), "error": float(1.0 - cos.mean()), "valid": True,
                "error_label": f"1 - mean |cos| (per vector: {', '.join(f'{c:.4f}' for c in cos)})",
                "prediction_text": text(vectors, pred["values"]), "reference_text": text(examples.vectors, examples.values)}

    def user_examples(self, matrix: np.ndarray) -> SpectralExamples:
        """One user data matrix (n x d) as examples, checked against what the model was trained on."""
        p, x = self.problem, np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != p.dim:
            raise UserError(f"this model takes a data matrix with {p.dim} columns (n samples x d = {p.dim}); "
                            f"got shape {'x'.join(map(str, x.shape))}.")
        fixed_n = self.config.model.tokens == "samples" or self.config.model.readout == "flatten"
        if fixed_n and x.shape[0] != p.samples:
            raise UserError(f"this model reads one token per sample and was trained on {p.samples} samples; "
                            f"got {x.shape[0]} rows.")
        if not np.abs(x).sum():
            raise UserError("the data matrix is all zeros: it has no principal directions.")
        if p.task == "gmm":
            return SpectralExamples(x=x[None])
        return pca_examples(x[None], p.k)

    def baseline_metrics(self, examples: SpectralExamples, count: int, seed: int) -> dict[str, float]:
        if (count, seed) not in self._baselines:
            scores: dict[str, float] = {}
            for prefix, baseline in self.baselines().items():
                scores.update(self.score(predict(baseline, examples), examples, prefix))
            self._baselines[(count, seed)] = scores
        return dict(self._baselines[(count, seed)])
