"""The units of answers read out as numbers (:mod:`linalgformer.models.number_values`, Output).

Every Charton problem is homogeneous: scaling the input by s scales an answer entry by s**d (the
problem's ``output_degrees``). A model reads each entry out in units of max|input|**d; these
functions turn targets into those units, read-outs back into answers, and measure the relative
error the verifiers score (``d1``). They serve a continuous answer and the auxiliary value loss of a
token answer (``model.value_loss``).

``problem`` is a Charton matrix problem (``name``, ``output_degrees``, ``operand_dims``) and
``examples`` its examples (``inputs``, ``dims``, ``targets``): the arithmetic needs nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

if TYPE_CHECKING:
    from linalgformer.problems.charton.contract import Examples

ZERO_TARGET = 1e-9  # an answer entry this small in its units (max|input|**d) counts as exactly zero


def answer_units(problem, examples) -> list[np.ndarray]:
    """Per example, the unit its answer is read out in: max|input|**d for each entry (d: the
    problem's ``output_degrees``; max|input| is 1 for an all-zero input)."""
    out = []
    for x, dim, target in zip(examples.inputs, examples.dims, examples.targets):
        scale = float(np.abs(x).max()) if np.size(x) else 0.0
        scale = scale if scale > 0 else 1.0
        degrees = problem.output_degrees(*problem.operand_dims(np.shape(x)))
        if degrees.shape != target.shape:
            raise ValueError(f"{problem.name}: degrees of shape {degrees.shape} for an answer of shape {target.shape}")
        out.append(scale ** degrees)
    return out


def operand_units(problem, examples) -> tuple[Examples, np.ndarray]:
    """``model.operand_units``, for a bilinear problem (M^T v, A^T B): each example with every
    operand divided by its own largest entry (1 for an all-zero operand) and its target by the
    product of those scales, and (B,) that product, the factor that takes an answer to the
    divided question back to the question's. The model then sees every operand at one scale:
    an answer does not change when one operand is scaled apart from the other (by 1e5, say),
    which the units of the whole input (max|input|**d) cannot see."""
    inputs, targets, factors = [], [], np.ones(len(examples))
    for i, (x, target) in enumerate(zip(examples.inputs, examples.targets)):
        parts = []
        for columns in problem.operand_columns(np.shape(x)):
            part = np.asarray(x[:, columns], dtype=np.float64)
            scale = float(np.abs(part).max()) if part.size else 0.0
            scale = scale if scale > 0 else 1.0
            parts.append(part / scale)
            factors[i] *= scale
        inputs.append(np.hstack(parts))
        targets.append(target / factors[i])
    return dataclasses.replace(examples, inputs=inputs, targets=targets), factors


def answer_tensors(problem, examples) -> dict[str, torch.Tensor]:
    """``out_shape`` (B, 2), the targets in their units row-major ``tgt_values`` (B, P) float32,
    ``tgt_mask`` (B, P) for the entries that exist (P: the largest answer) and ``in_shape`` (B, 2)
    the questions' shapes."""
    units = answer_units(problem, examples)
    shapes = np.array([t.shape for t in examples.targets], dtype=np.int64).reshape(len(examples), 2)
    width = int(shapes.prod(axis=1).max(initial=1))
    values, mask = np.zeros((len(examples), width)), np.zeros((len(examples), width), dtype=bool)
    for i, (target, unit) in enumerate(zip(examples.targets, units)):
        flat = (target / unit).reshape(-1)
        values[i, : flat.size], mask[i, : flat.size] = flat, True
    in_shapes = np.array([np.shape(x) for x in examples.inputs], dtype=np.int64).reshape(len(examples), 2)
    out = {"out_shape": torch.from_numpy(shapes), "tgt_values": torch.from_numpy(values.astype(np.float32)),
           "tgt_mask": torch.from_numpy(mask), "in_shape": torch.from_numpy(in_shapes)}
    if getattr(problem, "sign_free_columns", False):  # model.sign_free: which entries flip sign together (-1: none)
        groups = np.full((len(examples), width), -1, dtype=np.int64)
        for i, target in enumerate(examples.targets):
            groups[i, : target.size] = problem.sign_groups(target.shape).reshape(-1)
        out["tgt_sign_group"] = torch.from_numpy(groups)
    return out


def from_units(problem, examples, z: np.ndarray) -> list[np.ndarray]:
    """(B, P) read-outs in units -> the answers as matrices of their targets' shapes."""
    out = []
    for i, (target, unit) in enumerate(zip(examples.targets, answer_units(problem, examples))):
        out.append(z[i, : target.size].reshape(target.shape) * unit)
    return out


def relative_error_loss(z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum |z - t| / sum |t| over each answer's entries: the verifiers' d1."""
    return relative_errors(z, target.to(z.device), mask.to(z.device)).mean()


def relative_errors(z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,): sum |z - t| / sum |t| over each row's ``mask``ed places."""
    error = ((z - target).abs() * mask).sum(1)
    size = (target.abs() * mask).sum(1)
    return error / size.clamp_min(1e-6)


def sign_free_errors(z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``model.sign_free``: (B,) the relative error of :func:`relative_errors` with each sign group
    (``groups`` (B, P), -1: none; e.g. an eigenvector's entries) taken with the sign, + or -, that
    is nearer its target: the error the sign-free verifiers see, so that the model need not learn
    the targets' sign convention (a discontinuous function of the question)."""
    target, mask, groups = target.to(z.device), mask.to(z.device), groups.to(z.device)
    plus, minus = (z - target).abs() * mask, (z + target).abs() * mask
    grouped = groups >= 0
    members = F.one_hot(groups.clamp(min=0), int(groups.max().clamp(min=0)) + 1) * grouped[..., None]
    members = members.to(z.dtype)  # (B, P, G)
    per_group = torch.minimum(torch.einsum("bp,bpg->bg", plus, members), torch.einsum("bp,bpg->bg", minus, members))
    error = (plus * ~grouped).sum(1) + per_group.sum(1)
    return error / (target.abs() * mask).sum(1).clamp_min(1e-6)


def verifier_errors(problem, z: torch.Tensor, values: torch.Tensor, in_shapes: torch.Tensor,
                    out_shapes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``model.verifier_loss``: (B,) the verifiers' own d1 of the read-outs z (B, P, in their units),
    differentiable: the worst over the problem's checks (``MatrixProblem.checks``, the code that
    scores answers) of |m|_1 / |s|_1, on the questions ``values`` (B, S: a continuous source, two
    size slots then the entries row-major) in units of their largest entry. Every check is
    homogeneous, so units change no ratio. Where the answer is not unique (an eigenvector's sign,
    a rotation within a nearly repeated eigenvalue's eigenspace) the checks are as free as the
    verifier is; for problems without checks of their own it is the entry-wise d1."""
    values, target = values.to(z.device, z.dtype), target.to(z.device, z.dtype)
    out = z.new_zeros(len(z))
    shapes = torch.cat([in_shapes, out_shapes], dim=1).to(z.device)
    for shape in torch.unique(shapes, dim=0):
        rows = (shapes == shape).all(dim=1).nonzero()[:, 0]
        r, c, ro, co = (int(v) for v in shape)
        question = values[rows, 2:2 + r * c].reshape(-1, r, c)
        question = question / question.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-30)
        answer = z[rows, : ro * co].reshape(-1, ro, co)
        wanted = target[rows, : ro * co].reshape(-1, ro, co)
        ratios = [m.abs().sum(dim=(1, 2)) / s.abs().sum(dim=(1, 2)).clamp_min(1e-6)
                  for m, s in problem.checks(question, wanted, answer)]
        out = out.index_put((rows,), torch.stack(ratios).amax(dim=0))
    return out


def zero_gate_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``model.zero_gate``: the mean over the batch's entries (``mask``) of the binary cross-entropy
    of the logits (B, P) that each entry is exactly zero, against which targets (B, P, in their
    units) are: below ``ZERO_TARGET`` (a zero of exact arithmetic, or one float rounding made)."""
    target, mask = target.to(logits.device), mask.to(logits.device)
    is_zero = (target.abs() < ZERO_TARGET).float()
    loss = F.binary_cross_entropy_with_logits(logits, is_zero, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp_min(1)


def entry_value_error(z: torch.Tensor, entries: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``model.value_loss``: (B,) the relative error of the values z (B, T) that the decoder positions
    read out for the answer entries ``entries`` (B, T) (-1: none) whose tokens they predict, against
    the targets (B, P) in their units (every token of an entry is held to the entry's value)."""
    target, mask = target.to(z.device), mask.to(z.device)
    index = entries.clamp(min=0)
    real = (entries >= 0) & mask.gather(1, index)
    return relative_errors(z, target.gather(1, index), real)

