"""Matrix-aware positions: every token knows which operand, row, column and number slot it holds.

With ``model.positions: matrix`` a token's position embedding is the sum of four small learned
tables, ``operand[o] + row[r] + col[c] + slot[s]``, instead of an embedding of its index in the
sequence. The ids are read off the tokens themselves with the rules the encodings write by (the
``V{rows} V{cols}`` header, then the entries row by row, each number starting with a sign, a
B1999 mantissa or an FP15 token and ending with an exponent or that FP15 token), so they cost
nothing to store and are the same in training, in evaluation and in decoding with the KV cache.

Ids (0 always means "none"):

* operand: 1 the first operand (A, M), 2 the second (B of [A|B], v of [M|v]), 3 the answer;
* row, col: 1 + the entry's row / column *in its operand* (A and B of [A|B] both run 1..c);
* slot: 1 the ``V{rows}`` header token, 2 the ``V{cols}`` one, 3 + k the k-th token of a number
  (P1000: 3 sign, 4 mantissa, 5 exponent; P10: 3 sign, 4-6 digits, 7 exponent; FP15: 3).

Position coupling: an answer token gets the row and column of the input entries it is made from,
so that attention finds its operands by position instead of counting tokens. ``output_coupling``:
``same`` (answer (i, j) <- row i, col j: A + B, and the answer's own frame for eigenvalues and
the rest), ``swap`` (answer (i, j) <- row j, col i: the transpose), ``column`` (answer entry i of
M^T v <- column i, no row). The decoder input at position t carries the ids of the token it
*predicts* (t + 1): they follow from the tokens so far (after an exponent comes the next entry's
first slot), which is what keeps cached decoding exact.

Structural bias (``model.position_bias``): matching ids through learned embeddings needs the
attention weights to align four tables, and a key that shares only the row scores half of one that
shares row and column. With the bias, each head adds, to the score of every key, a learned number
per kind of match (same row, same column, same slot) and per operand of the key: a head can learn
"the entry of A in my row and column" directly (encoder self-attention and the decoder's
cross-attention). The weights start at 1 (a key sharing row, column and slot scores +3, one
sharing two of them +2): started at 0, Adam's steps of about the learning rate (5e-4) left them
below 0.5 after 1,000 steps, too small to matter (docs/RESULTS.md, section 3).

Worked example, the sum of two 2x2 matrices in P1000, A = [[1, 2], [3, 4]], B = [[5, 6], [7, 8]]
(input [A|B], 2 x 4; answer A + B = [[6, 8], [10, 12]])::

    input   V2 V4 + 100 E-2 + 200 E-2 + 500 E-2 + 600 E-2 + 300 E-2 + 400 E-2 + 700 E-2 ...
    operand 0  0  1 1   1   1 1   1   2 2   2   2 2   2   1 1   1   1 1   1   2 2   2
    row     0  0  1 1   1   1 1   1   1 1   1   1 1   1   2 2   2   2 2   2   2 2   2
    col     0  0  1 1   1   2 2   2   1 1   1   2 2   2   1 1   1   2 2   2   1 1   1
    slot    1  2  3 4   5   3 4   5   3 4   5   3 4   5   3 4   5   3 4   5   3 4   5

    decoder <bos> V2 V2 + 600 E-2 + 800 E-2 + 100 E-1 + 120 E-1
    (ids of the token predicted next)
    operand 3     3  3  3 3   3   3 3   3   3 3   3   3 3   0
    row     0     0  1  1 1   1   1 1   2   2 2   2   2 2   0
    col     0     0  1  1 1   2   2 2   1   1 1   2   2 2   0
    slot    1     2  3  4 5   3   4 5   3   4 5   3   4 5   0

so the decoder query that writes the mantissa of (A + B)[0, 1] carries (row 1, col 2, slot 4),
exactly the ids of the mantissas of A[0, 1] and B[0, 1] in the encoder. For the transpose the
answer's row and col ids are swapped; for M^T v the answer's entry i carries col i + 1.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

INPUT_SPLITS = ("whole", "halves", "last_column")
OUTPUT_COUPLINGS = ("same", "swap", "column")
ANSWER = 3
OPERANDS = 4  # none, first, second, answer
NUMBER_SLOTS = 12  # tokens of one number that get their own slot id (P10 at precision 10 needs 12)
SLOTS = 3 + NUMBER_SLOTS


@dataclass(frozen=True)
class MatrixLayout:
    """What the position ids need to know of a problem and its vocabulary.

    ``starts``/``ends``/``numbers``: bool per vocabulary id (the token begins / ends / belongs to a
    number); ``dim_value``: n for the token ``V{n}``, else 0; ``input_split``: how the written
    input's columns divide into operands (``whole`` A, ``halves`` [A|B], ``last_column`` [M|v]);
    ``output_coupling``: see the module docstring."""

    starts: np.ndarray
    ends: np.ndarray
    numbers: np.ndarray
    dim_value: np.ndarray
    max_dim: int
    input_split: str = "whole"
    output_coupling: str = "same"

    def __post_init__(self):
        if self.input_split not in INPUT_SPLITS:
            raise ValueError(f"input_split must be one of {', '.join(INPUT_SPLITS)}, got {self.input_split!r}")
        if self.output_coupling not in OUTPUT_COUPLINGS:
            raise ValueError(f"output_coupling must be one of {', '.join(OUTPUT_COUPLINGS)}, "
                             f"got {self.output_coupling!r}")


@dataclass
class PositionIds:
    """(B, T) int64 ids of each kind; see the module docstring."""

    operand: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    slot: torch.Tensor

    @staticmethod
    def join(parts: list["PositionIds"]) -> "PositionIds":
        """The ids of several runs of tokens, one after the other (dim 1)."""
        return PositionIds(*(torch.cat([getattr(p, f.name) for p in parts], dim=1) for f in dataclasses.fields(PositionIds)))

    def stack(self) -> torch.Tensor:
        """(B, T, 4): operand, row, col, slot."""
        return torch.stack([self.operand, self.row, self.col, self.slot], dim=-1)

    def rows(self, index, last: int = 0) -> PositionIds:
        """Batch rows ``index`` (a slice or LongTensor); ``last`` > 0 keeps only the last positions."""
        pick = (lambda t: t[index][:, -last:]) if last else (lambda t: t[index])
        return PositionIds(pick(self.operand), pick(self.row), pick(self.col), pick(self.slot))


class MatrixPositions(nn.Module):
    """The four id tables, shared by the encoder and the decoder so that coupled ids mean the same."""

    def __init__(self, width: int, layout: MatrixLayout, heads: int = 0):
        super().__init__()
        self.layout = layout
        # structural bias (``model.position_bias``): per head, per kind of match (row, col, slot) and
        # per operand of the key, a learned score added where a key shares the query's id; 1 at first
        self.bias_weight = nn.Parameter(torch.ones(heads, 3, OPERANDS)) if heads else None
        self.operand = nn.Embedding(OPERANDS, width)
        self.row = nn.Embedding(layout.max_dim + 1, width)
        self.col = nn.Embedding(layout.max_dim + 1, width)
        self.slot = nn.Embedding(SLOTS, width)
        for name in ("starts", "ends", "numbers", "dim_value"):
            table = torch.as_tensor(np.asarray(getattr(layout, name)), dtype=torch.long)
            self.register_buffer(name, table, persistent=False)

    def bias(self, queries: PositionIds, keys: PositionIds, keep: torch.Tensor) -> torch.Tensor:
        """Additive attention mask (B, H, Tq, Tk): the learned structural bias where keys share the
        queries' row, column or slot, and -inf where ``keep`` (bool, broadcastable) is False."""
        same = torch.stack([(q[:, :, None] == k[:, None, :]) & (q[:, :, None] > 0) for q, k in
                            ((queries.row, keys.row), (queries.col, keys.col), (queries.slot, keys.slot))],
                           dim=-1).float()  # (B, Tq, Tk, 3)
        weight = self.bias_weight[:, :, keys.operand].permute(2, 0, 3, 1)  # (H, 3, B, Tk) -> (B, H, Tk, 3)
        scores = torch.einsum("bqkf,bhkf->bhqk", same, weight)
        return scores.masked_fill(~keep, float("-inf"))

    def embed(self, ids: PositionIds) -> torch.Tensor:
        """(B, T, W) position embeddings of the ids."""
        return self.operand(ids.operand) + self.row(ids.row) + self.col(ids.col) + self.slot(ids.slot)

    # ------------------------------------------------------------------------------- the ids

    def _header(self, tokens: torch.Tensor):
        """(first V token mask, second V token mask, rows (B, 1), cols (B, 1)) of written matrices."""
        dims = self.dim_value[tokens]  # (B, T)
        ordinal = (dims > 0).long().cumsum(1) * (dims > 0)
        first, second = ordinal == 1, ordinal == 2
        rows = (dims * first).sum(1, keepdim=True).clamp(min=1)
        cols = (dims * second).sum(1, keepdim=True).clamp(min=1)
        return first, second, rows, cols

    def _number_slot(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T): index of each token inside its number (0 at a number's first token); -1 before any."""
        pos = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        last_start = torch.where(self.starts[tokens].bool(), pos, -1).cummax(1).values
        return torch.where(last_start >= 0, pos - last_start, -1)

    def _clip(self, index: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """0-based index -> 1-based id inside the tables, 0 where not ``keep``."""
        return torch.where(keep, (index + 1).clamp(1, self.layout.max_dim), 0)

    def source(self, tokens: torch.Tensor) -> PositionIds:
        """Ids of every input token (B, S) at its own place."""
        first, second, _, cols = self._header(tokens)
        entry = self.starts[tokens].cumsum(1) - 1
        inner = self._number_slot(tokens)
        number = self.numbers[tokens].bool() & (inner >= 0)
        operand, row, col = self._split(entry // cols, entry % cols, cols)
        slot = torch.where(number, 3 + inner.clamp(max=NUMBER_SLOTS - 1), 0)
        slot = torch.where(first, 1, torch.where(second, 2, slot))
        return PositionIds(torch.where(number, operand, 0), self._clip(row, number), self._clip(col, number), slot)

    def _split(self, i: torch.Tensor, j: torch.Tensor, cols: torch.Tensor):
        """(operand, row, col) in the operand's frame for written input entry (i, j)."""
        split = self.layout.input_split
        if split == "whole":
            return torch.ones_like(i), i, j
        width = cols // 2 if split == "halves" else cols - 1
        second = j >= width
        return torch.where(second, 2, 1), i, torch.where(second, j - width, j)

    def _answer_place(self, prefix: torch.Tensor):
        """What :meth:`target` and :meth:`answer_entries` read off a decoder prefix (B, T): the
        header masks, the answer's columns (B, 1), the index of the entry each position writes
        into, the index inside its number, and which positions continue or open an entry."""
        first, second, rows, cols = self._header(prefix)
        ends = self.ends[prefix].bool()
        entry = ends.long().cumsum(1)  # numbers finished so far = index of the next entry
        inner = self._number_slot(prefix)
        inside = self.numbers[prefix].bool() & (inner >= 0) & ~ends
        opens = (second | ends) & (entry < rows * cols)
        return first, second, cols, entry, inner, inside, opens

    def answer_entries(self, prefix: torch.Tensor) -> torch.Tensor:
        """(B, T): the row-major index of the answer entry whose token each decoder input position
        predicts (every token of the entry's number), -1 where it predicts none (the header, <eos>)."""
        _, _, _, entry, _, inside, opens = self._answer_place(prefix)
        return torch.where(opens | inside, entry, -1)

    def target(self, prefix: torch.Tensor) -> PositionIds:
        """Ids of the token each decoder input position predicts: prefix (B, T) starts with <bos>."""
        first, second, cols, entry, inner, inside, opens = self._answer_place(prefix)
        in_answer = opens | inside
        slot = torch.where(inside, 4 + inner.clamp(max=NUMBER_SLOTS - 2), torch.where(opens, 3, 0))
        bos = torch.zeros_like(first)
        bos[:, 0] = True
        slot = torch.where(bos & ~first, 1, torch.where(first, 2, slot))
        row, col = self._couple(entry // cols, entry % cols)
        return PositionIds(torch.where(in_answer | bos | first, ANSWER, 0),
                           self._clip(row, in_answer & (row >= 0)), self._clip(col, in_answer), slot)

    def answer(self, i: torch.Tensor, j: torch.Tensor, real: torch.Tensor) -> PositionIds:
        """Ids of answer entries (i, j) read out all at once (a continuous answer): the answer
        operand, the coupled row and column, and slot 3 (a number's first token); 0 where not ``real``."""
        row, col = self._couple(i, j)
        return PositionIds(torch.where(real, ANSWER, 0), self._clip(row, real & (row >= 0)),
                           self._clip(col, real), torch.where(real, 3, 0))

    def row_groups(self, ids: PositionIds) -> tuple[torch.Tensor, PositionIds, torch.Tensor]:
        """Row tokens (``model.input_units: rows``): (B, S) the row token each entry joins (-1: none),
        the row tokens' ids (B, G) (operand, row, no column, slot 3) and (B, G) which exist. G is
        twice the largest row id of the batch: the rows of the first operand, then of the second."""
        return self.line_groups(ids, by_row=True)

    def line_groups(self, ids: PositionIds, by_row: bool) -> tuple[torch.Tensor, PositionIds, torch.Tensor]:
        """:meth:`row_groups`, or with ``by_row`` False the same for column tokens (operand, no row,
        column, slot 3; ``model.input_units: lines`` has both)."""
        number = ids.operand > 0
        line = ids.row if by_row else ids.col
        lines = max(int(line.max()), 1)
        group = torch.where(number, (ids.operand - 1) * lines + (line - 1), -1)
        counts = torch.zeros(len(group), 2 * lines, device=group.device)
        present = counts.scatter_add_(1, group.clamp(min=0), number.float()) > 0
        index = torch.arange(2 * lines, device=group.device).expand(len(group), -1)
        keep = lambda t: torch.where(present, t, 0)  # noqa: E731
        at, none = keep(index % lines + 1), torch.zeros_like(index)
        line_ids = PositionIds(keep(index // lines + 1), at if by_row else none, none if by_row else at,
                               keep(3 + 0 * index))
        return group, line_ids, present

    def _couple(self, i: torch.Tensor, j: torch.Tensor):
        """(row, col) ids of answer entry (i, j) in the input's frame; row -1 = none."""
        coupling = self.layout.output_coupling
        if coupling == "swap":
            return j, i
        if coupling == "column":
            return torch.full_like(i, -1), i
        return i, j


def token_flags(token_kinds: list[str], dim_values: list[int]) -> dict[str, np.ndarray]:
    """starts / ends / numbers / dim_value arrays from each vocabulary token's kind.

    Kinds as :meth:`linalgformer.tokens.Vocabulary.token_kinds` gives them: ``sign``, ``digit``,
    ``mantissa``, ``exponent``, ``number`` (FP15), ``dim`` or ``other``."""
    kinds = np.asarray(token_kinds)
    starts = np.isin(kinds, ("sign", "mantissa", "number"))
    ends = np.isin(kinds, ("exponent", "number"))
    numbers = np.isin(kinds, ("sign", "digit", "mantissa", "exponent", "number"))
    return {"starts": starts, "ends": ends, "numbers": numbers, "dim_value": np.asarray(dim_values, dtype=np.int64)}
