"""Numbers by value (the ``continuous`` encoding): embeddings computed from a number, and answers
read out as numbers.

**Input.** Every matrix entry is one ``<num>`` token (``tokens.Continuous``) whose value x travels
beside the ids. Its embedding is the learned ``<num>`` embedding plus its matrix-aware position
(operand, row, column: ``models/matrix_positions``) plus a learned linear map of fixed features of
x (``model.number_features``), computed in float64 so that magnitudes from 1e-300 to 1e300 (the
encoding's range) all keep distinct features; nothing is rounded to digits:

* ``relative``: x seen against the input's largest entry s = max |x|: the sign; u = x / s and
  sin/cos(pi f u) for f in ``RELATIVE_FREQUENCIES``; r = log10 |u| (how many decades x lies below
  the largest entry, clipped to 12) as r / 12 and sin/cos(2 pi r / p) for the periods
  ``LOG_PERIODS`` (the periods 1, 1/2, ... see the mantissa: log10 of 3.14 and of 314 differ by a
  whole number); a flag for an exact zero. These do not change when the whole input is multiplied
  by a positive number: with a continuous answer, read out in units of s**d (below), the model is
  exactly equivariant to the input's scale, so coefficients far outside the training range are no
  harder than those inside it (tested).
* ``absolute``: the relative features plus the magnitude itself, e = log10 |x|, as e / 10, e / 100
  and sin/cos(2 pi e / p): what a token answer needs (its exponent tokens name the magnitude).
* ``auto`` (default): ``relative`` for a continuous answer, ``absolute`` for a token answer.
* ``xval``: only u times a learned vector, as xVal (Golkar et al., 2023) scales the embedding of its
  number token by the value (normalised by the input's largest entry rather than by a data-set
  constant, so no magnitude saturates).

**Output.** With a continuous answer the token decoder is replaced by a non-autoregressive one:
one query per answer entry, built from the answer's matrix-aware position ids (coupled to the input
entries it is made of, as for tokens), runs ``dec_layers`` of bidirectional self-attention among the
entries, cross-attention to the encoder (with the structural bias when it is on) and an FFN; a
linear read-out gives one number z per entry. Every Charton problem is homogeneous: scaling the
input by s scales an answer entry by s**d (d = 1 for A + B and eigenvalues, 2 for M^T v, -1 for the
inverse, 0 for unit eigenvectors; ``MatrixProblem.output_degrees``). The model predicts the entry
in units of max|input|**d, so its outputs stay of order one whatever the magnitudes, and the
experiment multiplies back: answer = z * s**d. The loss is the relative error the verifiers score
(``d1``: sum |z - t| / sum |t| per example, t the target in the same units).
"""

from __future__ import annotations

import math

import torch
from torch import nn

NUMBER_FEATURES = ("auto", "relative", "absolute", "xval")
RELATIVE_FREQUENCIES = (1, 2, 4, 8, 16, 32)
LOG_PERIODS = (100.0, 10.0, 1.0, 0.5, 0.25, 0.125)
DECADES = 12.0  # entries more than this many decades below the largest one look alike
LOG_FLOOR = -300.0


def input_scale(values: torch.Tensor) -> torch.Tensor:
    """(B, S) values -> (B,) the largest magnitude of each input (1 for an all-zero input)."""
    scale = values.abs().amax(dim=1)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def log_magnitude(x: torch.Tensor) -> torch.Tensor:
    """log10 |x| (float64), 0 at an exact zero, clipped to the encoding's range."""
    zero = x == 0
    return torch.log10(torch.where(zero, torch.ones_like(x), x.abs())).clamp(LOG_FLOOR, -LOG_FLOOR)


def periodic(t: torch.Tensor) -> list[torch.Tensor]:
    """sin and cos of 2 pi t / p for each period p in LOG_PERIODS: (..., P) each."""
    angles = 2 * math.pi * t[..., None] / t.new_tensor(LOG_PERIODS)
    return [angles.sin(), angles.cos()]


def number_features(values: torch.Tensor, kind: str = "relative") -> torch.Tensor:
    """(B, S) float values (0 off the numbers) -> (B, S, F) float32 features; see the module doc."""
    x = values.double()
    u = x / input_scale(x)[:, None]
    if kind == "xval":
        return u[..., None].float()
    zero = x == 0
    decades = log_magnitude(x) - torch.log10(input_scale(x))[:, None]  # log10 |u|, without u's underflow
    below = torch.where(zero, torch.full_like(x, -DECADES), decades.clamp(-DECADES, 0.0))
    turns = math.pi * u[..., None] * u.new_tensor(RELATIVE_FREQUENCIES)
    features = [torch.sign(x)[..., None], u[..., None], turns.sin(), turns.cos(), (below / DECADES)[..., None],
                *periodic(below), zero.double()[..., None]]
    if kind == "absolute":
        e = log_magnitude(x)
        features += [(e / 10)[..., None], (e / 100)[..., None], *periodic(e)]
    return torch.cat(features, dim=-1).float()


def feature_count(kind: str) -> int:
    return int(number_features(torch.ones(1, 1), kind).shape[-1])


class NumberValues(nn.Module):
    """The learned map of a number's features into its embedding (``<num>`` positions only)."""

    def __init__(self, width: int, kind: str = "relative"):
        super().__init__()
        if kind not in NUMBER_FEATURES or kind == "auto":
            raise ValueError(f"number_features must be one of {', '.join(NUMBER_FEATURES[1:])}, got {kind!r}")
        self.kind = kind
        self.embed = nn.Linear(feature_count(kind), width, bias=False)

    def forward(self, values: torch.Tensor, is_number: torch.Tensor) -> torch.Tensor:
        """values (B, S), is_number (B, S) bool -> (B, S, W), zero where not a number."""
        features = number_features(values.masked_fill(~is_number, 0.0), self.kind)
        return self.embed(features.to(self.embed.weight.dtype)) * is_number[..., None]
