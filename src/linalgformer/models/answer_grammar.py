"""Grammar-constrained decoding (``model.grammar``): a written answer is always well formed.

A token answer is ``V{rows} V{cols}`` then rows x cols numbers, then ``<eos>``. The shape is the
one the question implies (M^T v of a 5x5 M is 5 x 1), given per example; each number is
one of its encoding's token patterns (P1000 at precision 3: ``sign mantissa exponent``; P10:
``sign digit digit digit exponent``, or ``sign digit exponent`` for zero; B1999: ``mantissa
exponent``; FP15: one token). Unconstrained, a model can write a second sign where the mantissa
belongs (``+ - 221 E-2``), or a header that announces a shape the question does not have, and
the whole answer fails to decode. :class:`AnswerGrammar` keeps, per decoded row, where the answer
stands (tokens written, the answer's rows and columns, numbers finished, and the place inside the
current number) and masks the logits of every step to the tokens allowed there: the model still
picks the most likely token, among the well-formed ones. The header can only be the question's
shape; after the last entry only ``<eos>`` is allowed, so an answer can neither stop early nor run
on. Every answer decodes: what is scored is the numbers.

The state is a (B, 5) int64 tensor (written, rows, cols, entries, number state), so beam search
reorders it with its beams like the KV cache. The number states are the proper prefixes of the
encoding's token patterns (a trie over token kinds; state 0 is "between numbers"), read off the
encoding by writing a few representative values: :func:`number_patterns`.

Worked example, P1000 answer of a 2x1 matrix-vector product (allowed kinds before each token)::

    token    V2    V1    +     622   E-2       -     101   E-1       <eos>
    allowed  V2    V1    sign  mant. exponent  sign  mant. exponent  <eos> only
"""

from __future__ import annotations

import math

import numpy as np
import torch

from linalgformer.tokens import NumberEncoding, Vocabulary

KINDS = ("other", "dim", "sign", "digit", "mantissa", "exponent", "number")
WRITTEN, ROWS, COLS, ENTRIES, NUMBER = range(5)


def number_patterns(encoding: NumberEncoding) -> list[tuple[str, ...]]:
    """Every sequence of token kinds one number of ``encoding`` can take, read off the tokens it
    writes for zero, both signs, and values of every digit count and exponent it can hold."""
    digits = [0.0] + [float(f"{math.pi:.10f}"[: k + 2]) for k in range(encoding.precision + 1)]
    values = np.array([s * d * 10.0 ** e for s in (1, -1) for d in digits for e in range(-3, 4)])
    values = values[encoding.fits(values)]
    return sorted({tuple(encoding.token_kind(t) for t in encoding.encode_float(float(v))) for v in values})


class AnswerGrammar:
    """What may come next in a token answer of ``encoding``; see the module docstring."""

    def __init__(self, vocab: Vocabulary, encoding: NumberEncoding):
        patterns = number_patterns(encoding)
        prefixes = sorted({p[:k] for p in patterns for k in range(len(p))}, key=lambda p: (len(p), p))
        state_of = {p: s for s, p in enumerate(prefixes)}  # () is state 0
        kind_id = {k: i for i, k in enumerate(KINDS)}
        # per (state, kind): the next state (-1: not allowed) and whether the number ends there
        self.next_state = torch.full((len(prefixes), len(KINDS)), -1, dtype=torch.long)
        self.completes = torch.zeros((len(prefixes), len(KINDS)), dtype=torch.bool)
        for prefix, s in state_of.items():
            for kind in {p[len(prefix)] for p in patterns if p[: len(prefix)] == prefix}:
                longer = prefix + (kind,)
                ends = longer in patterns
                if ends and longer in state_of:
                    raise ValueError(f"{encoding.name}: a number can both end and go on after {longer}")
                self.next_state[s, kind_id[kind]] = 0 if ends else state_of[longer]
                self.completes[s, kind_id[kind]] = ends
        owned = set(encoding.tokens)
        kinds = [k if (k == "dim" or t in owned) else "other" for t, k in zip(vocab.itos, vocab.token_kinds())]
        self.kind = torch.tensor([kind_id.get(k, 0) for k in kinds], dtype=torch.long)  # (V,)
        self.dim_value = torch.tensor(vocab.dim_values(), dtype=torch.long)  # (V,)
        self.eos_id, self.max_dim = vocab.eos_id, vocab.max_dim
        allowed = self.next_state[:, self.kind] >= 0  # (S, V)
        allowed[:, self.kind == 0] = False
        self.allowed = allowed

    def _on(self, device: torch.device) -> None:
        if self.kind.device != device:
            for name in ("next_state", "completes", "kind", "dim_value", "allowed"):
                setattr(self, name, getattr(self, name).to(device))

    def start(self, shapes: torch.Tensor) -> torch.Tensor:
        """The state of answers of ``shapes`` (B, 2) (rows, cols) before their first token: (B, 5)."""
        if shapes.ndim != 2 or shapes.shape[1] != 2 or bool((shapes < 1).any() | (shapes > self.max_dim).any()):
            raise ValueError(f"answer shapes must be (B, 2) sizes in 1..{self.max_dim}")
        self._on(shapes.device)
        state = torch.zeros(len(shapes), 5, dtype=torch.long, device=shapes.device)
        state[:, ROWS], state[:, COLS] = shapes[:, 0], shapes[:, 1]
        return state

    def mask(self, state: torch.Tensor) -> torch.Tensor:
        """(B, V) bool: the tokens each answer may write next."""
        written = state[:, WRITTEN, None]
        header = written < 2
        size = torch.where(written == 0, state[:, ROWS, None], state[:, COLS, None])  # (B, 1)
        finished = ~header & (state[:, NUMBER, None] == 0) & (state[:, ENTRIES, None] >= state[:, ROWS, None] * state[:, COLS, None])
        out = torch.where(header, self.dim_value[None, :] == size, self.allowed[state[:, NUMBER]])
        eos = torch.zeros_like(out)
        eos[:, self.eos_id] = True
        return torch.where(finished, eos, out)

    def constrain(self, logits: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``logits`` (B, V) with -inf wherever the grammar forbids the token."""
        return logits.masked_fill(~self.mask(state), float("-inf"))

    def advance(self, state: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """The state after each answer writes ``token`` (B,). A forbidden token (a finished row's
        padding, a dead beam's) leaves the number state at 0 rather than failing."""
        written = state[:, WRITTEN]
        kind = self.kind[token]
        nxt = self.next_state[state[:, NUMBER], kind]
        ends = self.completes[state[:, NUMBER], kind] & (written >= 2)
        return torch.stack([
            written + 1,
            state[:, ROWS],
            state[:, COLS],
            state[:, ENTRIES] + ends.long(),
            torch.where(written >= 2, nxt.clamp(min=0), 0),
        ], dim=1)
