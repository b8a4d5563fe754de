"""One attention function for the three families: softmax, linear and ReLU.

``attention(q, k, v, kind=...)`` takes per-head tensors of shape (batch, heads, tokens, head_dim):

* ``softmax``: softmax(q k^T / sqrt(dh)) v, through ``F.scaled_dot_product_attention`` (fused
  kernels; supports a causal flag, a boolean/additive mask and dropout);
* ``relu``:    relu(q k^T) v            (He et al.: ReLU instead of softmax);
* ``linear``:  (q k^T) v                (Giannou et al., von Oswald et al.: no nonlinearity).

For ``relu`` and ``linear`` the scores are divided by the number of key tokens when
``normalize=True`` (the 1/n of the papers' constructions) and multiplied by ``scale`` when given.
``mask`` (broadcastable to (batch, heads, q_tokens, k_tokens)) is boolean: True = may attend.
``bias`` (same broadcast shape, float) is added to the scaled scores before the nonlinearity
(an edge bias, e.g. a covariance entry C_ij per pair of tokens).

:class:`MultiHeadAttention` wraps projections around it, with heads concatenated (then projected by
W_o, the usual transformer) or averaged (He et al.: each head's output is already width d and the
layer returns their mean).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("softmax", "relu", "linear")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str = "softmax", *,
              mask: torch.Tensor | None = None, causal: bool = False, normalize: bool = False,
              scale: float | None = None, dropout: float = 0.0,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of ``kind`` over (B, H, Tq, dh) queries and (B, H, Tk, dh) keys/values."""
    if kind == "softmax" and bias is not None:
        mask = _softmax_bias(mask, bias, causal, q.shape[-2], k.shape[-2], q.device)
        causal = False
    if kind == "softmax":
        if causal and (mask is not None or q.shape[-2] != k.shape[-2]):
            # SDPA drops is_causal when given a mask and aligns it top-left when Tq != Tk; we want
            # both constraints, aligned bottom-right (the last query sees every key), like relu/linear.
            mask = _causal_softmax_mask(mask, q.shape[-2], k.shape[-2], q.device)
            causal = False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                              is_causal=causal and mask is None, scale=scale)
    if kind not in KINDS:
        raise ValueError(f"unknown attention kind {kind!r} (known: {', '.join(KINDS)})")
    scores = q @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
    if scale is not None:
        scores = scores * scale
    if bias is not None:
        scores = scores + bias
    if kind == "relu":
        scores = F.relu(scores)
    keep = _keep_mask(mask, causal, q.shape[-2], k.shape[-2], q.device)
    if keep is not None:
        scores = scores.masked_fill(~keep, 0.0)
    if normalize:
        scores = scores / _key_counts(keep, k.shape[-2], scores)
    if dropout > 0.0:
        scores = F.dropout(scores, p=dropout)
    return scores @ v


def _keep_mask(mask: torch.Tensor | None, causal: bool, tq: int, tk: int,
               device: torch.device) -> torch.Tensor | None:
    keep = None
    if causal:
        keep = torch.ones(tq, tk, dtype=torch.bool, device=device).tril(tk - tq)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("relu/linear attention takes a boolean mask (True = attend)")
        keep = mask if keep is None else keep & mask
    return keep


def _causal_softmax_mask(mask: torch.Tensor | None, tq: int, tk: int,
                         device: torch.device) -> torch.Tensor:
    """A boolean or additive mask with the bottom-right causal constraint folded in."""
    if mask is None or mask.dtype == torch.bool:
        return _keep_mask(mask, True, tq, tk, device)
    causal = _keep_mask(None, True, tq, tk, device)
    return mask.masked_fill(~causal, float("-inf"))


def _softmax_bias(mask: torch.Tensor | None, bias: torch.Tensor, causal: bool, tq: int, tk: int,
                  device: torch.device) -> torch.Tensor:
    """One additive mask for SDPA: the bias, with -inf where the mask or causality forbids."""
    if mask is not None and mask.dtype != torch.bool:
        bias = bias + mask
        mask = None
    keep = _keep_mask(mask, causal, tq, tk, device)
    return bias if keep is None else bias.masked_fill(~keep, float("-inf"))


def _key_counts(keep: torch.Tensor | None, tk: int, scores: torch.Tensor) -> torch.Tensor | float:
    if keep is None:
        return float(tk)
    return keep.sum(-1, keepdim=True).clamp(min=1).to(scores.dtype)


class MultiHeadAttention(nn.Module):
    """Projections around :func:`attention`; ``combine`` is ``concat`` or ``average``.

    With ``combine="concat"`` the model width d is split into ``heads`` heads of d/heads dims and
    the concatenation is projected by W_o. With ``combine="average"`` every head has width
    ``head_dim`` (default d), and the output is W_o applied to the mean of the heads' outputs
    (He et al.'s averaged heads; set ``out_proj=False`` to drop W_o).
    """

    def __init__(self, width: int, heads: int, kind: str = "softmax", *, combine: str = "concat",
                 head_dim: int | None = None, normalize: bool = False, bias: bool = True,
                 out_proj: bool = True, dropout: float = 0.0):
        super().__init__()
        if combine not in ("concat", "average"):
            raise ValueError(f"combine must be concat or average, got {combine!r}")
        if combine == "concat" and width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.kind, self.combine, self.heads, self.normalize, self.dropout = kind, combine, heads, normalize, dropout
        self.head_dim = head_dim or (width // heads if combine == "concat" else width)
        inner = self.heads * self.head_dim
        self.q_proj = nn.Linear(width, inner, bias=bias)
        self.k_proj = nn.Linear(width, inner, bias=bias)
        self.v_proj = nn.Linear(width, inner, bias=bias)
        out_in = inner if combine == "concat" else self.head_dim
        self.out_proj = nn.Linear(out_in, width, bias=bias) if out_proj else nn.Identity()

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, H*dh) -> (B, H, T, dh)
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, causal: bool = False,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(context)), self.split(self.v_proj(context))
        scale = None if self.kind == "softmax" else 1.0
        out = attention(q, k, v, self.kind, mask=mask, causal=causal, normalize=self.normalize,
                        scale=scale, dropout=self.dropout if self.training else 0.0, bias=bias)  # (B, H, T, dh)
        if self.combine == "average":
            return self.out_proj(out.mean(dim=1))
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


def reference_attention(q, k, v, kind: str = "softmax", *, mask=None, causal: bool = False,
                        normalize: bool = False, scale: float | None = None, bias=None) -> torch.Tensor:
    """Explicit loop-free textbook attention (for tests): the definition, without fused kernels."""
    scale = (1.0 / math.sqrt(q.shape[-1])) if (scale is None and kind == "softmax") else (scale or 1.0)
    scores = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    keep = _keep_mask(mask, causal, q.shape[-2], k.shape[-2], q.device)
    if kind == "softmax":
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1) @ v
    if kind == "relu":
        scores = scores.clamp(min=0)
    if keep is not None:
        scores = scores * keep
    if normalize:
        scores = scores / (keep.sum(-1, keepdim=True).clamp(min=1) if keep is not None else k.shape[-2])
    return scores @ v
