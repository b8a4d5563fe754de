"""A ReLU-attention transformer whose weights are set by hand to run the deflated power method.

It is built from the same :class:`~linalgformer.models.spectral.EncoderLayer` as the trained models
(ReLU attention, heads averaged, no LayerNorm, no MLP, residual), and it reproduces
``baselines.spectral.power_method(..., mode="sequential")`` iterate for iterate.

**Tokens.** One token per coordinate i = 1..d, of width 2d + 2k::

    token i = [ C_i1 .. C_id | e_i (one-hot) | a_1[i] b_1[i] .. a_k[i] b_k[i] ]

with C = X^T X / n / |X^T X / n|_F the normalised second moment, and two slots (a_j, b_j) per
vector: the iterate w_j lives in one of them, the other is zero. Before the first layer w_j = s_j,
the start vector, in a_j (the paper's auxiliary input: identity block and random starts).

**Three facts about one ReLU-attention layer** (out_i = sum_j relu(q_i . k_j) v_j, heads averaged,
W_o = H * identity so that the average becomes a sum, residual x + out):

1. Multiply. With q_i = +-C_i (the C block of token i) and k_j = e_j, the scores are relu(+-C_ij);
   two heads with values +w_j and -w_j add up to sum_j (relu(C_ij) - relu(-C_ij)) w_j = (C w)_i.
2. Project. For a finished vector u and the iterate w, heads with scores relu(+-w_i u_j) and values
   +-u_j sum to w_i |u|^2; heads with scores relu(+-u_i w_j) and values -+u_j sum to -u_i (u . w):
   together |u|^2 w - (u . w) u = |u|^2 (w - (u^ . w) u^), u^ = u / |u|, the Gram-Schmidt
   deflation of the baseline times the positive number |u|^2.
3. Move. The result is written into the empty slot of the pair, and a head with q_i = e_i, k_j = e_j
   (score delta_ij) and value -w_j empties the old one (x + (-x) = 0 exactly). Writing in place
   instead (x + (new - x)) would lose new's digits whenever |new| << |x|.

**Exactness.** Normalisation w / |w| needs a division and a square root, which attention and ReLU
(piecewise polynomial maps) cannot compute exactly. So the construction carries *unnormalised*
iterates: by facts 1-2 each slot is a positive multiple of the baseline's unit iterate after every
layer (C w and the projection are linear and commute with positive scaling). The read-out
normalises each vector (and takes the Rayleigh quotient for eigenvalues); |cos|, the metric, is blind
to that scale anyway. The price is range, not accuracy: every projection multiplies the iterate by
|u|^2 < 1, and |u_j| itself carries the factors of the vectors before it, so the log of the last
vector's scale falls like t^2: at d = 10, k = 3 it is about 1e-69 after 3 iterations, 1e-137 after
4, and float64 underflows at 5. Run it in float64 and at modest depth (the tests use t = 3).

**Depth.** Eigenvector j (1-based) takes t iterations of (1 multiply + (j - 1) projections):
t * k (k + 1) / 2 layers in all (6t for k = 3), 5 heads of width 2d + 2k each (8 in the module:
with H a power of two, W_o = H * identity after the mean over heads is exact, so the emptied slot
is exactly zero and no stale digits leak into the next write).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from linalgformer.models.spectral import EncoderLayer, frobenius_scale, second_moment

HEADS = 8  # 5 are used; a power of two makes the average-then-multiply by H exact


@dataclass(frozen=True)
class Step:
    """What one layer does: multiply slot ``slot`` by C, or project it off slot ``against``."""

    slot: int
    iteration: int  # 1-based power iteration of this slot that the layer belongs to
    against: int | None = None  # None: the multiply layer

    @property
    def completes_iteration(self) -> bool:
        return self.against == self.slot - 1 or (self.against is None and self.slot == 0)


def schedule(k: int, iterations: int) -> list[Step]:
    """The layers, in order, for sequential deflation of k vectors with ``iterations`` each."""
    steps = []
    for slot in range(k):
        for t in range(1, iterations + 1):
            steps.append(Step(slot, t))
            steps.extend(Step(slot, t, against) for against in range(slot))
    return steps


class PowerIterationTransformer(nn.Module):
    """``iterations`` deflated power iterations for the top ``k`` eigenvectors, by hand-set weights.

    Called like the models: ``model(batch)`` with ``batch["x"]`` (B, n, d) and ``batch["start"]``
    (B, d, k) start vectors returns ``vectors`` (B, d, k) unit columns and ``values`` (B, k)."""

    def __init__(self, dim: int, k: int, iterations: int):
        super().__init__()
        self.dim, self.k, self.width = dim, k, 2 * dim + 2 * k
        self.steps = schedule(k, iterations)
        side = [0] * k  # which slot of each pair holds the iterate
        self.sides: list[tuple[int, ...]] = []  # after each layer
        layers = []
        for step in self.steps:
            layers.append(self.build_layer(step, side))
            side[step.slot] = 1 - side[step.slot]
            self.sides.append(tuple(side))
        self.layers = nn.ModuleList(layers)

    # ------------------------------------------------------------------ weights

    def slot(self, j: int, side: int) -> int:
        return 2 * self.dim + 2 * j + side

    def build_layer(self, step: Step, side: list[int]) -> EncoderLayer:
        layer = EncoderLayer(self.width, HEADS, "relu", combine="average", head_dim=self.width,
                             normalize=False, layer_norm=False, mlp=0, bias=False)
        attn = layer.attn
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            nn.init.zeros_(proj.weight)
        old, new = self.slot(step.slot, side[step.slot]), self.slot(step.slot, 1 - side[step.slot])
        heads = self.multiply_heads(old, new) if step.against is None else \
            self.project_heads(old, new, self.slot(step.against, side[step.against]))
        heads.append((self.identity_rows(1), self.identity_rows(1), {old: (old, -1.0)}))  # empty old
        with torch.no_grad():
            attn.out_proj.weight.copy_(HEADS * torch.eye(self.width))
            for h, (q_rows, k_rows, values) in enumerate(heads):
                self.set_head(attn, h, q_rows, k_rows, values)
        return layer

    def set_head(self, attn, h: int, q_rows: dict[int, tuple[int, float]],
                 k_rows: dict[int, tuple[int, float]], values: dict[int, tuple[int, float]]) -> None:
        """Head h: query/key/value dim ``a`` reads token entry ``src`` times ``sign``; each map is
        {head dim a: (token entry src, sign)} (value dims are token dims: W_o is H * identity)."""
        base = h * self.width
        for proj, rows in ((attn.q_proj, q_rows), (attn.k_proj, k_rows), (attn.v_proj, values)):
            for a, (src, sign) in rows.items():
                proj.weight[base + a, src] = sign

    def identity_rows(self, block: int, sign: float = 1.0) -> dict[int, tuple[int, float]]:
        """Head dims 0..d-1 read the C block (block 0) or the e block (block 1) of the token."""
        return {a: (block * self.dim + a, sign) for a in range(self.dim)}

    def multiply_heads(self, w: int, new: int) -> list:
        c_plus, c_minus, eye = self.identity_rows(0), self.identity_rows(0, -1.0), self.identity_rows(1)
        return [(c_plus, eye, {new: (w, 1.0)}),  # relu(C_ij) w_j
                (c_minus, eye, {new: (w, -1.0)})]  # -relu(-C_ij) w_j

    def project_heads(self, w: int, new: int, u: int) -> list:
        return [({0: (w, 1.0)}, {0: (u, 1.0)}, {new: (u, 1.0)}),  # relu(w_i u_j) u_j
                ({0: (w, -1.0)}, {0: (u, 1.0)}, {new: (u, -1.0)}),  # -relu(-w_i u_j) u_j
                ({0: (u, 1.0)}, {0: (w, 1.0)}, {new: (u, -1.0)}),  # -relu(u_i w_j) u_j
                ({0: (u, -1.0)}, {0: (w, 1.0)}, {new: (u, 1.0)})]  # +relu(-u_i w_j) u_j

    # ------------------------------------------------------------------ running

    def tokens(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """(B, n, d), (B, d, k) -> tokens (B, d, 2d + 2k)."""
        c = second_moment(x)
        c = c / frobenius_scale(c)
        eye = torch.eye(self.dim, dtype=c.dtype, device=c.device).expand_as(c)
        pairs = torch.stack([start.to(c.dtype), torch.zeros_like(start, dtype=c.dtype)], dim=-1)
        return torch.cat([c, eye, pairs.flatten(-2)], dim=-1)  # pairs: (B, d, k, 2) -> (B, d, 2k)

    def vectors(self, h: torch.Tensor, sides: tuple[int, ...]) -> torch.Tensor:
        """The k iterates (B, d, k), unnormalised, read from their current slots."""
        return torch.stack([h[..., self.slot(j, s)] for j, s in enumerate(sides)], dim=-1)

    def trajectory(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The (unnormalised) iterates (B, d, k) after every layer."""
        h = self.tokens(batch["x"], batch["start"])
        states = []
        for layer, sides in zip(self.layers, self.sides):
            h = layer(h)
            states.append(self.vectors(h, sides))
        return states

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        vectors = self.trajectory(batch)[-1]
        vectors = vectors / vectors.norm(dim=-2, keepdim=True).clamp(min=1e-300)
        c = second_moment(batch["x"].to(vectors.dtype))
        values = torch.einsum("bik,bij,bjk->bk", vectors, c, vectors)  # Rayleigh quotients
        return {"vectors": vectors, "values": values}
