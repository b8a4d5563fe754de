"""A continuous-input transformer encoder for spectral problems (He et al.).

Input: a batch of data matrices ``x`` (B, n, d). Tokens are either

* ``tokens="covariance"``: the d rows of the second moment C = X^T X / n, each followed (when
  ``identity``) by the one-hot coordinate e_i — the paper's auxiliary identity block, which lets
  attention form C_ij = <C_i, e_j> and so multiply by C — so token i is [C_i1 .. C_id, e_i] (2d);
* ``tokens="samples"``: the n samples x_t themselves (d numbers each).

With ``normalize_input`` the data are divided by sqrt(|C|_F), so that the model sees C / |C|_F
(eigenvectors do not change; eigenvalues are multiplied back on the way out). With ``edge_bias``
head h of every layer adds beta_h * E_ij to its score for the pair of tokens (i, j), a learned
scalar per head (Graphormer-style edge bias): E = C / |C|_F for covariance tokens (one head can
then apply C directly), the Gram matrix X X^T / |X X^T|_F for sample tokens.

A linear read-in maps tokens to ``width``; then ``layers`` residual blocks, each
``x + attention(x)`` (relu by default, heads averaged, scores divided by the number of tokens) and,
with ``mlp > 0``, ``x + MLP(x)``; ``layer_norm`` puts a LayerNorm before each (pre-LN).

Read-outs:

* eigenvectors (B, d, k): ``token`` — covariance token i gives entry i of each of the k vectors
  (the natural equivariant read-out); ``pool`` — the mean of the tokens through a linear map to d*k;
  ``flatten`` — all tokens concatenated through a linear map (the authors' read-out);
* eigenvalues (B, k): the mean token through a linear map;
* cluster logits (B, n, classes): one linear map per sample token (clustering needs sample tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from linalgformer.config import FLAG, at_least, check_fields, one_of
from linalgformer.models.attention import KINDS, MultiHeadAttention

TOKENS = ("covariance", "samples")
READOUTS = ("auto", "token", "pool", "flatten")


@dataclass
class ModelConfig:
    """The ``model:`` section of a spectral run."""

    tokens: str = "covariance"  # covariance (d rows of C) | samples (n rows of X)
    identity: bool = True  # covariance tokens also carry the one-hot coordinate e_i
    normalize_input: bool = True  # feed C / |C|_F (X / sqrt|C|_F)
    width: int = 128
    layers: int = 6
    heads: int = 4
    head_dim: int = 0  # per-head width; 0: width when heads are averaged, width/heads when concatenated
    attention: str = "relu"  # relu | softmax | linear
    combine: str = "average"  # average (He et al.) | concat
    normalize: bool = True  # relu/linear scores divided by the number of tokens
    layer_norm: bool = False  # pre-LayerNorm before attention and MLP
    mlp: int = 0  # ReLU MLP hidden size as a multiple of width after each attention (0: none)
    readout: str = "auto"  # auto (token for covariance tokens, pool for samples) | token | pool | flatten
    edge_bias: bool = False  # add beta_(layer, head) * E_ij to the scores: E = C (covariance) or X X^T (samples)

    def __post_init__(self):
        check_fields(self, MODEL_RULES)
        checks = [(self.tokens in TOKENS, f"tokens must be one of {', '.join(TOKENS)}"),
                  (self.attention in KINDS, f"attention must be one of {', '.join(KINDS)}"),
                  (self.combine in ("average", "concat"), "combine must be average or concat"),
                  (self.readout in READOUTS, f"readout must be one of {', '.join(READOUTS)}"),
                  (self.width > 0 and self.heads > 0 and self.layers >= 0, "width, heads must be > 0, layers >= 0"),
                  (self.readout != "token" or self.tokens == "covariance", "readout token needs covariance tokens")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


MODEL_RULES = {
    "tokens": one_of(*TOKENS), "identity": FLAG, "normalize_input": FLAG, "width": at_least(1),
    "layers": at_least(0), "heads": at_least(1), "head_dim": at_least(0, " (0: automatic)"),
    "attention": one_of(*KINDS), "combine": one_of("average", "concat"), "normalize": FLAG,
    "layer_norm": FLAG, "mlp": at_least(0, " (0: none)"), "readout": one_of(*READOUTS), "edge_bias": FLAG,
}


@dataclass
class Outputs:
    """What the model must produce for its problem: dims and which heads."""

    dim: int  # d
    samples: int  # n
    k: int = 0  # eigenvectors/eigenvalues (0: none)
    classes: int = 0  # cluster logits per sample (0: none)


class EncoderLayer(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)) when ``mlp`` > 0."""

    def __init__(self, width: int, heads: int, kind: str = "relu", *, combine: str = "average",
                 head_dim: int | None = None, normalize: bool = True, layer_norm: bool = False,
                 mlp: int = 0, bias: bool = True, edge_bias: bool = False):
        super().__init__()
        # per-head weight of an edge bias, alternating signs so relu heads see both signs of C_ij
        self.edge_weight = nn.Parameter(torch.tensor([(-1.0) ** h for h in range(heads)])) if edge_bias else None
        self.attn = MultiHeadAttention(width, heads, kind, combine=combine, head_dim=head_dim,
                                       normalize=normalize, bias=bias)
        self.norm1 = nn.LayerNorm(width) if layer_norm else nn.Identity()
        self.mlp = None
        if mlp > 0:
            self.norm2 = nn.LayerNorm(width) if layer_norm else nn.Identity()
            self.mlp = nn.Sequential(nn.Linear(width, mlp * width, bias=bias), nn.ReLU(),
                                     nn.Linear(mlp * width, width, bias=bias))

    def forward(self, x: torch.Tensor, edges: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, width); edges (B, T, T), used when the layer has an edge bias."""
        bias = None
        if self.edge_weight is not None and edges is not None:
            bias = edges[:, None] * self.edge_weight[:, None, None]  # (B, H, T, T)
        x = x + self.attn(self.norm1(x), bias=bias)
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


def second_moment(x: torch.Tensor) -> torch.Tensor:
    """C = X^T X / n: (B, n, d) -> (B, d, d)."""
    return x.transpose(-1, -2) @ x / x.shape[-2]


def frobenius_scale(c: torch.Tensor) -> torch.Tensor:
    """|C|_F per example (B, 1, 1), floored away from zero."""
    return torch.linalg.matrix_norm(c).clamp(min=1e-12)[:, None, None]


class SpectralEncoder(nn.Module):
    """Tokens -> read-in -> layers -> eigenvectors/eigenvalues and/or cluster logits."""

    def __init__(self, config: ModelConfig, outputs: Outputs):
        super().__init__()
        self.config, self.outputs = config, outputs
        self.readout = config.readout if config.readout != "auto" else (
            "token" if config.tokens == "covariance" else "pool")
        if outputs.classes and config.tokens != "samples":
            raise ValueError("cluster labels are read from sample tokens: set model.tokens to samples")
        self.read_in = nn.Linear(self.token_size(), config.width)
        head_dim = config.head_dim or None
        self.layers = nn.ModuleList(
            EncoderLayer(config.width, config.heads, config.attention, combine=config.combine,
                         head_dim=head_dim, normalize=config.normalize, layer_norm=config.layer_norm,
                         mlp=config.mlp, edge_bias=config.edge_bias) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width) if config.layer_norm else nn.Identity()
        self.vector_head, self.value_head, self.logit_head = self.output_heads()

    def token_count(self) -> int:
        return self.outputs.dim if self.config.tokens == "covariance" else self.outputs.samples

    def token_size(self) -> int:
        d = self.outputs.dim
        return 2 * d if self.config.tokens == "covariance" and self.config.identity else d

    def output_heads(self) -> tuple[nn.Module | None, nn.Module | None, nn.Module | None]:
        """Linear maps to eigenvectors, eigenvalues and cluster logits (None where not asked for)."""
        width, out = self.config.width, self.outputs
        vectors = values = logits = None
        if out.k:
            inputs = {"token": width, "pool": width, "flatten": width * self.token_count()}[self.readout]
            vectors = nn.Linear(inputs, out.k if self.readout == "token" else out.dim * out.k)
            values = nn.Linear(width, out.k)
        if out.classes:
            logits = nn.Linear(width, out.classes)
        return vectors, values, logits

    def normalised(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C (B, d, d), divided by its scale (B, 1, 1) when ``normalize_input``; and that scale."""
        c = second_moment(x)
        scale = frobenius_scale(c) if self.config.normalize_input else torch.ones_like(c[:, :1, :1])
        return c / scale, scale

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, d) -> tokens (B, T, token_size) and the input scale (B, 1, 1) divided out."""
        c, scale = self.normalised(x)
        if self.config.tokens == "samples":
            return x / scale.sqrt(), scale
        if self.config.identity:
            eye = torch.eye(c.shape[-1], dtype=c.dtype, device=c.device).expand_as(c)
            c = torch.cat([c, eye], dim=-1)  # (B, d, 2d): row i is [C_i, e_i]
        return c, scale

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """The edge-bias matrix: C / |C|_F (B, d, d) or X X^T / |X X^T|_F (B, n, n)."""
        if self.config.tokens == "covariance":
            return self.normalised(x)[0]
        gram = x @ x.transpose(-1, -2)
        return gram / frobenius_scale(gram)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens, scale = self.tokens(batch["x"])
        edges = self.edges(batch["x"]) if self.config.edge_bias else None  # (B, T, T)
        h = self.read_in(tokens)  # (B, T, width)
        for layer in self.layers:
            h = layer(h, edges)
        return self.read_out(self.final_norm(h), scale)

    def read_out(self, h: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        b, out = h.shape[0], self.outputs
        result: dict[str, torch.Tensor] = {}
        if out.k:
            pooled = h.mean(dim=1)  # (B, width)
            if self.readout == "token":
                result["vectors"] = self.vector_head(h)  # (B, d, k)
            else:
                flat = pooled if self.readout == "pool" else h.reshape(b, -1)
                result["vectors"] = self.vector_head(flat).view(b, out.dim, out.k)
            result["values"] = self.value_head(pooled) * scale[:, 0]  # (B, k)
        if out.classes:
            result["logits"] = self.logit_head(h)  # (B, n, classes)
        return result
