"""Trained in-context models: linear self-attention (Giannou et al.), with or without LayerNorm.

Prompt tokens (B, T, d + 1) are embedded linearly to ``width``, pass ``layers`` residual blocks
h <- h + attention(norm(h)) [+ h <- h + mlp(norm(h))], and the answer is a linear read-out of the
last token (``readout="last"``: (B,)). For matrix inversion (``readout="matrix"``) the input is
A (B, d, d), its columns are the tokens, and every token's read-out is the matching column of the
answer (B, d, d). Attention is the shared :func:`~linalgformer.models.attention.attention`:
``linear`` (the paper's), ``softmax`` (the usual transformer, for comparison) or ``relu``; linear
and ReLU scores are divided by the number of tokens (``normalize``), the 1/n of an average.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from linalgformer.config import FLAG, at_least, check_fields, one_of
from linalgformer.models.attention import KINDS, MultiHeadAttention

MODEL_KINDS = ("transformer", "construction")


@dataclass
class ModelConfig:
    """The ``model:`` section of a newton-family run.

    ``kind: construction`` builds the hand-set Newton-Schulz inverse of
    :mod:`linalgformer.models.newton_construction` instead (task ``inverse`` only): ``steps``
    Newton steps (0: as many as the theory needs for relative error 1e-6 at the largest kappa)
    of order ``order``."""

    kind: str = "transformer"  # transformer | construction
    layers: int = 3
    width: int = 64
    heads: int = 4
    attention: str = "linear"  # linear | softmax | relu
    layernorm: bool = False
    mlp: bool = False  # a ReLU MLP (4 x width) after each attention
    normalize: bool = True
    init_scale: float = 0.02  # std of the residual-branch output projections
    steps: int = 0  # construction only
    order: int = 2  # construction only

    def __post_init__(self):
        check_fields(self, MODEL_RULES)
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        if self.attention not in KINDS:
            raise ValueError(f"attention must be one of {', '.join(KINDS)}, got {self.attention!r}")
        if self.layers < 1 or self.width < 1 or self.heads < 1 or self.width % self.heads:
            raise ValueError("layers, width and heads must be positive and width divisible by heads")
        if self.order < 2 or self.steps < 0:
            raise ValueError("order must be at least 2 and steps at least 0")


MODEL_RULES = {
    "kind": one_of(*MODEL_KINDS), "layers": at_least(1), "width": at_least(1), "heads": at_least(1),
    "attention": one_of(*KINDS), "layernorm": FLAG, "mlp": FLAG, "normalize": FLAG,
    "init_scale": at_least(0.0), "steps": at_least(0, " (0: as many as the theory needs)"), "order": at_least(2),
}


class Block(nn.Module):
    """h <- h + attn(norm(h)); then, with an MLP, h <- h + mlp(norm(h))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        norm = (lambda: nn.LayerNorm(config.width)) if config.layernorm else nn.Identity
        self.attn_norm, self.mlp_norm = norm(), norm()
        self.attn = MultiHeadAttention(config.width, config.heads, config.attention, normalize=config.normalize)
        self.mlp = nn.Sequential(nn.Linear(config.width, 4 * config.width), nn.ReLU(),
                                 nn.Linear(4 * config.width, config.width)) if config.mlp else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.attn_norm(h))
        if self.mlp is not None:
            h = h + self.mlp(self.mlp_norm(h))
        return h


class LinearTransformer(nn.Module):
    """Tokens (B, T, token_dim) -> answer: (B,) from the last token, or (B, d, d) per column."""

    def __init__(self, config: ModelConfig, token_dim: int, readout: str = "last"):
        super().__init__()
        if readout not in ("last", "matrix"):
            raise ValueError(f"readout must be last or matrix, got {readout!r}")
        self.config, self.readout = config, readout
        out_dim = 1 if readout == "last" else token_dim
        self.embed = nn.Linear(token_dim, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width) if config.layernorm else nn.Identity()
        self.head = nn.Linear(config.width, out_dim)
        self._init_residual_outputs()

    def _init_residual_outputs(self) -> None:
        """Small attention weights and residual outputs (std ``init_scale``): without LayerNorm a
        linear-attention layer is a cubic map, and a deep stack of them starts near the identity
        only if every factor of the cube starts small."""
        for block in self.blocks:
            attn = block.attn
            outputs = [attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj] + ([block.mlp[-1]] if block.mlp is not None else [])
            for linear in outputs:
                nn.init.normal_(linear.weight, std=self.config.init_scale)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        tokens = inputs.transpose(-1, -2) if self.readout == "matrix" else inputs  # columns of A as tokens
        h = self.embed(tokens)  # (B, T, width)
        for block in self.blocks:
            h = block(h)
        h = self.final_norm(h)
        if self.readout == "matrix":
            return self.head(h).transpose(-1, -2)  # (B, T = d, d) -> columns of the answer
        return self.head(h[:, -1])[:, 0]  # (B,)
