"""Linear-attention transformers whose weights are set by hand to run Newton-Schulz exactly.

No training: every weight below is 0, 1 or a constant of the algorithm. Layers are the shared
:class:`~linalgformer.models.attention.MultiHeadAttention` (kind ``linear``, no bias, concatenated
heads) with a residual connection, h <- h + attention(h); nothing else (no MLP, no LayerNorm).

How one head computes a matrix product
--------------------------------------
Write the N token states as the columns of H (width x N) and let B[name] be the rows of H that
hold one named *block*. Linear attention returns Out = V S with V = W_v H the values and
S[j, i] = k_j . q_i = (H^T W_k^T W_q H)[j, i]. Setting W_k to copy block P and W_q to copy c
times block Q gives S = c B[P]^T B[Q]; setting W_v to copy block R and W_o to add it to block R'
gives B[R'] += c B[R] B[P]^T B[Q]. A head here is a list of such *score terms* (key block,
query block, coefficient) and *value terms* (source block, destination block, coefficient), each
in its own slot of the head's dimensions. Every layer's docstring-level formula below is one or
two of these heads.

Matrix inversion (:class:`NewtonInverseConstruction`)
-----------------------------------------------------
Tokens are the columns of A plus bookkeeping: token i = [A e_i | X e_i | Z e_i | Y e_i | e_i],
blocks A, X (the iterate), Z (A X, general A only), Y (Horner accumulator, order >= 3 only) and
I (the identity: token i carries e_i). The embedding writes A and I; X, Z, Y start at 0.

* layer 0 (init):  X += I (alpha A^T)      score (A, I, alpha) -> A^T I;  value I -> X.
  So X_0 = alpha A^T; alpha must be < 2 / s_max(A)^2 (default 2 / (s_max^2 + s_min^2)).
* one Newton-Schulz step of order n, X <- X sum_m c_m (A X)^m, c_m = (-1)^m C(n, m+1), in
  Horner form with Z = A X. For symmetric A the score term (A, X) is A^T X = A X already; for
  general A a first layer writes Z = A X (score (I, X) -> X; value A -> Z), and the score term
  (I, Z) stands for A X. Then (``Zs`` = that score term):
    n = 2:  X += X (c_1 Zs + (c_0 - 1) I)                one head  [+ Z -= Z: second head]
    n >= 3: first   Y += X (c_{n-1} Zs + c_{n-2} I)
            middle  Y += Y (Zs - I) + X (c_m I)           m = n-3, ..., 1 (two heads)
            last    X += Y Zs + (c_0 - 1) X; Y -= Y [; Z -= Z]  (two heads)
  i.e. n - 1 layers per step for symmetric A and n for general A: one layer (symmetric) or two
  (general) per Newton step, the count of Giannou et al.
The inverse is read from block X of every token: column i of A^-1 is X e_i.

In-context linear / ridge regression (:class:`NewtonRegressionConstruction`)
---------------------------------------------------------------------------
Prompt tokens [x_i, y_i] (query last, y zeroed) become [a | y | p | w | yhat | 1] (width 3d + 3)
with a = x_i, y = y_i, the constant 1, and p, w, yhat zero. Ridge regression with parameter lam
appends d tokens [sqrt(n lam) e_k, 0] to the prompt (then A^T A + n lam I = A'^T A' for the
augmented A'). Keys are the N = n (+ d) data tokens (a mask hides the query); attention divides by
N, so the matrix that gets inverted is S = A'^T A' / N. With X_t the Newton-Schulz iterates for
S^-1 (X_0 = alpha S), token i keeps p_i = X_t a_i / 2^t: dividing by 2^t turns the step
X <- 2 X - X S X into the residual form p <- p - 2^(t-1) (1/N) sum_j p_j (a_j . p_i), which is
exactly one linear-attention head. The 3 + T layers:

* layer 1 (init):  p_i += alpha (1/N) sum_j a_j (a_j . a_i)  score (a, a, alpha); value a -> p
* layer 1 + t, t = 0..T-1 (Newton):  score (a, p, -2^(t-1)); value p -> p
* layer T + 2 (weights): w_i += 2^T (1/N) sum_j y_j p_j = X_T A'^T y / N   score (y, 1, 2^T); value p -> w
* layer T + 3 (predict): yhat_i += (1/N) sum_j (w . a_i) 1 = w . a_i   score (w, a, 1); value 1 -> yhat

The answer is yhat of the last (query) token: a_q^T X_T A^T y / N, which tends to the least-squares
(ridge) prediction a_q^T (A^T A + n lam I)^-1 A^T y. (Giannou et al. state 3 + T layers of two
heads and width 4d + 3; this layout needs one head and width 3d + 3.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import sqrt

import torch
from torch import nn

from linalgformer.linalg import newton_schulz_coefficients
from linalgformer.models.attention import MultiHeadAttention


@dataclass(frozen=True)
class Head:
    """Score terms (key block, query block, coef) and value terms (source, destination, coef)."""

    scores: tuple[tuple[str, str, float], ...]
    values: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class Layout:
    """Named blocks of rows of a token; ``width`` is the model width (padding included)."""

    sizes: dict[str, int]
    width: int
    starts: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self):
        offset = 0
        for name, size in self.sizes.items():
            self.starts[name] = offset
            offset += size
        if offset > self.width:
            raise ValueError(f"blocks need width {offset}, got {self.width}")

    def rows(self, name: str) -> slice:
        return slice(self.starts[name], self.starts[name] + self.sizes[name])


def head_slots(head: Head, layout: Layout) -> int:
    """Head dimensions a head needs: its score terms and its value terms side by side."""
    return max(sum(layout.sizes[k] for k, _, _ in head.scores), sum(layout.sizes[s] for s, _, _ in head.values))


def attention_layer(layout: Layout, heads: list[Head], count: int, *, normalize: bool,
                    dtype: torch.dtype) -> MultiHeadAttention:
    """A linear-attention layer of ``count`` heads with the given heads' weights (others zero).

    ``normalize`` divides the scores by the number of keys (the 1/N of an empirical average)."""
    layer = MultiHeadAttention(layout.width, count, "linear", normalize=normalize, bias=False).to(dtype)
    for p in layer.parameters():
        nn.init.zeros_(p)
    dim = layer.head_dim
    with torch.no_grad():
        for index, head in enumerate(heads):
            if head_slots(head, layout) > dim:
                raise ValueError(f"head needs {head_slots(head, layout)} dims, layer has {dim}")
            _set_scores(layer, layout, head, index * dim)
            _set_values(layer, layout, head, index * dim)
    return layer


def _set_scores(layer: MultiHeadAttention, layout: Layout, head: Head, base: int) -> None:
    for key, query, coef in head.scores:
        size = layout.sizes[key]
        if layout.sizes[query] != size:
            raise ValueError(f"score term ({key}, {query}) pairs blocks of different sizes")
        dims = slice(base, base + size)
        eye = torch.eye(size, dtype=layer.k_proj.weight.dtype)
        layer.k_proj.weight[dims, layout.rows(key)] = eye
        layer.q_proj.weight[dims, layout.rows(query)] = coef * eye
        base += size


def _set_values(layer: MultiHeadAttention, layout: Layout, head: Head, base: int) -> None:
    for source, destination, coef in head.values:
        size = layout.sizes[source]
        dims = slice(base, base + size)
        eye = torch.eye(size, dtype=layer.v_proj.weight.dtype)
        layer.v_proj.weight[dims, layout.rows(source)] = eye
        layer.out_proj.weight[layout.rows(destination), dims] += coef * eye
        base += size


def sized_layout(sizes: dict[str, int], head_groups: list[list[Head]], heads: int) -> Layout:
    """The smallest width (a multiple of ``heads``) that holds the blocks and every head."""
    probe = Layout(sizes, sum(sizes.values()))
    need = max(head_slots(h, probe) for group in head_groups for h in group)
    head_dim = max(need, -(-sum(sizes.values()) // heads))
    return Layout(sizes, heads * head_dim)


# --- matrix inversion ---

def inverse_step_heads(order: int, symmetric: bool) -> list[list[Head]]:
    """The layers (each a list of heads) of one Newton-Schulz step of ``order`` (see module doc)."""
    c = newton_schulz_coefficients(order)
    zs = ("A", "X", 1.0) if symmetric else ("I", "Z", 1.0)
    clear = () if symmetric else (("Z", "Z", -1.0),)
    layers: list[list[Head]] = [] if symmetric else [[Head(scores=(("I", "X", 1.0),), values=(("A", "Z", 1.0),))]]
    identity = ("I", "I", 1.0)
    if order == 2:
        update = Head(scores=((zs[0], zs[1], float(c[1])), ("I", "I", c[0] - 1.0)), values=(("X", "X", 1.0),))
        layers.append([update] + ([Head(scores=(identity,), values=clear)] if clear else []))
        return layers
    layers.append([Head(scores=((zs[0], zs[1], float(c[-1])), ("I", "I", float(c[-2]))), values=(("X", "Y", 1.0),))])
    for m in range(order - 3, 0, -1):
        layers.append([Head(scores=(zs, ("I", "I", -1.0)), values=(("Y", "Y", 1.0),)),
                       Head(scores=(("I", "I", float(c[m])),), values=(("X", "Y", 1.0),))])
    layers.append([Head(scores=(zs,), values=(("Y", "X", 1.0),)),
                   Head(scores=(identity,), values=(("X", "X", c[0] - 1.0), ("Y", "Y", -1.0)) + clear)])
    return layers


class NewtonInverseConstruction(nn.Module):
    """A (B, d, d) -> X_T (B, d, d), the T-th Newton-Schulz iterate of order ``order``.

    1 + T * (order - 1) layers for symmetric A, 1 + T * order for general A (see the module doc).
    ``alpha`` is a weight: the construction is exact for every A with alpha < 2 / s_max(A)^2."""

    def __init__(self, dim: int, steps: int, alpha: float, order: int = 2, symmetric: bool = False,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.dim, self.steps, self.order, self.symmetric, self.alpha = dim, steps, order, symmetric, alpha
        init = [Head(scores=(("A", "I", alpha),), values=(("I", "X", 1.0),))]
        step = inverse_step_heads(order, symmetric)
        blocks = ["A", "X"] + ([] if symmetric else ["Z"]) + (["Y"] if order > 2 else []) + ["I"]
        self.layout = sized_layout({b: dim for b in blocks}, [init] + step, heads=2)
        self.layers_per_step = len(step)
        groups = [init] + step * steps
        self.layers = nn.ModuleList(attention_layer(self.layout, g, 2, normalize=False, dtype=dtype) for g in groups)
        self.requires_grad_(False)  # hand-set, not trained

    def embed(self, a: torch.Tensor) -> torch.Tensor:
        """Tokens (B, d, width): token i holds column i of A and e_i."""
        h = a.new_zeros(a.shape[0], self.dim, self.layout.width)
        h[..., self.layout.rows("A")] = a.transpose(-1, -2)
        h[..., self.layout.rows("I")] = torch.eye(self.dim, dtype=a.dtype, device=a.device)
        return h

    def read(self, h: torch.Tensor) -> torch.Tensor:
        return h[..., self.layout.rows("X")].transpose(-1, -2)  # X e_i in token i -> X (B, d, d)

    def iterates(self, a: torch.Tensor) -> list[torch.Tensor]:
        """[X_0, ..., X_T]: block X after the init layer and after each step's last layer."""
        h, out = self.embed(a), []
        for index, layer in enumerate(self.layers):
            h = h + layer(h)
            if index % self.layers_per_step == 0:
                out.append(self.read(h))
        return out

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.iterates(a)[-1]


# --- in-context linear and ridge regression ---

def regression_heads(steps: int, alpha: float) -> list[list[Head]]:
    """The 3 + T single-head layers of the regression construction (see the module doc)."""
    init = [Head(scores=(("a", "a", alpha),), values=(("a", "p", 1.0),))]
    newton = [[Head(scores=(("a", "p", -(2.0 ** (t - 1))),), values=(("p", "p", 1.0),))] for t in range(steps)]
    weights = [Head(scores=(("y", "one", 2.0 ** steps),), values=(("p", "w", 1.0),))]
    predict = [Head(scores=(("w", "a", 1.0),), values=(("one", "yhat", 1.0),))]
    return [init] + newton + [weights, predict]


class NewtonRegressionConstruction(nn.Module):
    """Prompt (B, n + 1, d + 1) -> a_q^T X_T A'^T y / N (B,): T Newton steps on S = A'^T A' / N.

    ``alpha`` (a weight) must be < 2 / lambda_max(S)^2 for the prompts it is used on, and is best
    2 / (lambda_max^2 + lambda_min^2) over their spectral interval; ``ridge`` > 0 adds the d ridge
    tokens described in the module doc."""

    def __init__(self, dim: int, steps: int, alpha: float, ridge: float = 0.0,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.dim, self.steps, self.alpha, self.ridge = dim, steps, alpha, ridge
        groups = regression_heads(steps, alpha)
        self.layout = sized_layout({"a": dim, "y": 1, "p": dim, "w": dim, "yhat": 1, "one": 1}, groups, heads=1)
        self.layers = nn.ModuleList(attention_layer(self.layout, g, 1, normalize=True, dtype=dtype) for g in groups)
        self.requires_grad_(False)  # hand-set, not trained

    def embed(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, N + 1, width), key mask (1, 1, N + 1, N + 1)): data, ridge tokens, query."""
        batch, length, _ = prompt.shape
        data = prompt[:, :-1]
        if self.ridge > 0:
            extra = sqrt((length - 1) * self.ridge) * torch.eye(self.dim, self.dim + 1, dtype=prompt.dtype, device=prompt.device)
            data = torch.cat([data, extra.expand(batch, -1, -1)], dim=1)
        tokens = torch.cat([data, prompt[:, -1:]], dim=1)
        h = prompt.new_zeros(batch, tokens.shape[1], self.layout.width)
        h[..., self.layout.rows("a")] = tokens[..., :-1]
        h[..., self.layout.rows("y")] = tokens[..., -1:]
        h[..., self.layout.rows("one")] = 1.0
        keys = torch.ones(tokens.shape[1], dtype=torch.bool, device=prompt.device)
        keys[-1] = False  # the query is not a key
        return h, keys.expand(tokens.shape[1], -1)[None, None]

    def hidden_states(self, prompt: torch.Tensor) -> list[torch.Tensor]:
        """Token states after the embedding and after each layer."""
        h, mask = self.embed(prompt)
        states = [h]
        for layer in self.layers:
            h = h + layer(h, mask=mask)
            states.append(h)
        return states

    def query_iterates(self, prompt: torch.Tensor) -> list[torch.Tensor]:
        """[X_t a_q for t = 0..T] (B, d), read from block p of the query token (times 2^t)."""
        states = self.hidden_states(prompt)[1:self.steps + 2]
        return [2.0 ** t * h[:, -1, self.layout.rows("p")] for t, h in enumerate(states)]

    def forward(self, prompt: torch.Tensor) -> torch.Tensor:
        return self.hidden_states(prompt)[-1][:, -1, self.layout.rows("yhat")][:, 0]
