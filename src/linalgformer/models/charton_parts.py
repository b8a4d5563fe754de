"""The parts the Charton seq2seq model (:class:`~linalgformer.models.charton.Seq2Seq`) is built from.

Each option of ``model:`` is one part, picked once by the model's builder, and each part has one
interface, so that the model's ``encode``/``forward`` do not branch on the config:

* a **position scheme** (``model.positions``): :class:`IndexPositions` (learned or sinusoidal: the
  embedding looks positions up by index) or :class:`MatrixScheme` (operand, row, column and number
  slot of every token, with the structural attention bias of ``model.position_bias``);
* a **source embedder** (``model.input_units``, the input encoding): :class:`TokenSource` (one
  memory token per source token: its embedding, plus its value features and, for the continuous
  encoding, its number by value) or :class:`RowSource` (one memory token per row of each operand);
* an **answer head** (``model.encoder_only``, the output encoding): :class:`TokenDecoder` (the
  paper's causal decoder over answer tokens), :class:`EncoderReadOut` (answer token i read from
  source position i) or :class:`NumberSlots` (one query per answer entry, each read out as a number).

A part holds no parameters of its own: the model keeps its modules under the names checkpoints have
always used (``src_embed``, ``matrix_positions``, ``decoder``, ``head``, ...), so every saved run and
bundled model loads as it is, and the parameters are made in the same order (the same seed gives the
same model). The answer heads are given the model when called.

Every model's ``forward`` returns :class:`Outputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from linalgformer.models.matrix_positions import MatrixPositions, PositionIds

Embedding = nn.Module  # models.charton.Embedding (token embedding + positions), which imports this module
Seq2Seq = nn.Module  # models.charton.Seq2Seq, the model the answer heads are given


@dataclass
class Outputs:
    """What a forward pass gives, for every kind of model (fields a model does not make are None).

    ``logits`` (B, T, K): teacher-forcing logits of token answers over the read-out's ``output_ids``;
    ``numbers`` (B, P): a continuous answer, one number per entry (row-major, in units of the input's
    scale, 0 past an answer's last entry); ``entry_values`` (B, T) and ``entries`` (B, T): with
    ``model.value_loss``, the value each decoder position reads out for the answer entry whose token
    it predicts, and that entry's row-major index (-1: none); ``zero_logits`` (B, P): with
    ``model.zero_gate``, the logit that each entry of a continuous answer is exactly zero."""

    logits: torch.Tensor | None = None
    numbers: torch.Tensor | None = None
    entry_values: torch.Tensor | None = None
    entries: torch.Tensor | None = None
    zero_logits: torch.Tensor | None = None


# ----------------------------------------------------------------------------------- positions


class IndexPositions:
    """Learned or sinusoidal positions: the :class:`Embedding` adds them by index; no ids, no bias."""

    def source(self, src: torch.Tensor) -> None:
        return None

    def target(self, tgt_in: torch.Tensor) -> None:
        return None

    def step(self, prefix: torch.Tensor | None, length: int) -> None:
        return None

    def embed(self, ids: PositionIds | None) -> None:
        return None

    def bias(self, queries: PositionIds | None, keys: PositionIds | None, mask: torch.Tensor) -> torch.Tensor:
        return mask

    def memory_bias(self, queries: PositionIds | None, memory_ids: Callable[[], PositionIds],
                    mask: torch.Tensor) -> torch.Tensor:
        return mask

    def bias_keys(self, memory_ids: Callable[[], PositionIds]) -> None:
        return None


class MatrixScheme:
    """Matrix positions (:class:`MatrixPositions`): the ids of every token, their embedding, and
    (``biased``: ``model.position_bias``) the structural bias that joins a key-padding mask."""

    def __init__(self, positions: MatrixPositions, biased: bool):
        self.positions, self.biased = positions, biased

    def source(self, src: torch.Tensor) -> PositionIds:
        return self.positions.source(src)

    def target(self, tgt_in: torch.Tensor) -> PositionIds:
        return self.positions.target(tgt_in)

    def step(self, prefix: torch.Tensor | None, length: int) -> PositionIds:
        """The ids of the newest decoder position, read off ``prefix`` (B, length + 1): every decoder
        input so far, <bos> first."""
        if prefix is None or prefix.shape[1] != length + 1:
            raise ValueError("decoding with matrix positions needs the whole prefix of decoder inputs")
        return self.positions.target(prefix).rows(slice(None), last=1)

    def embed(self, ids: PositionIds) -> torch.Tensor:
        return self.positions.embed(ids)

    def bias(self, queries: PositionIds, keys: PositionIds, mask: torch.Tensor) -> torch.Tensor:
        return self.positions.bias(queries, keys, mask) if self.biased else mask

    def memory_bias(self, queries: PositionIds, memory_ids: Callable[[], PositionIds],
                    mask: torch.Tensor) -> torch.Tensor:
        """Cross-attention: the bias between ``queries`` and the memory's ids (``memory_ids()``,
        asked for only when there is a bias)."""
        return self.positions.bias(queries, memory_ids(), mask) if self.biased else mask

    def bias_keys(self, memory_ids: Callable[[], PositionIds]) -> PositionIds | None:
        """The memory's ids that incremental decoding keeps for the bias (None without one)."""
        return memory_ids() if self.biased else None


# ----------------------------------------------------------------------------------- source embedders


ValuePart = Callable[[torch.Tensor, "torch.Tensor | None"], "torch.Tensor | None"]


class TokenSource:
    """One memory token per source token: its embedding (+ ``values(src, numbers)``, the value
    features' part and a continuous input's numbers) + its position."""

    def __init__(self, embed: Embedding, scheme: IndexPositions | MatrixScheme, values: ValuePart):
        self.embed, self.scheme, self.values = embed, scheme, values

    def __call__(self, src: torch.Tensor, values: torch.Tensor | None,
                 mask: torch.Tensor) -> tuple[torch.Tensor, PositionIds | None, torch.Tensor]:
        """src (B, S), a continuous input's numbers (B, S), key mask (B, 1, 1, S) -> embeddings
        (B, S, W), the memory's position ids, its key mask."""
        ids = self.scheme.source(src)
        return self.embed(src, pos_emb=self.scheme.embed(ids), value_emb=self.values(src, values)), ids, mask

    def memory_ids(self, src: torch.Tensor) -> PositionIds | None:
        return self.scheme.source(src)


class RowSource:
    """``model.input_units: rows``: one memory token per row of each operand, the sum over its
    entries of (the value's embedding, or for a token input the embeddings of the entry's tokens with
    their value features) x a learned gate of the entry's column, plus the row's position (and, for
    a continuous input, the ``<num>`` token's embedding). With a ``row_gate`` (``input_units:
    lines``) the columns become tokens too, each entry gated by its row, after the rows."""

    def __init__(self, embed: Embedding, scheme: MatrixScheme, values: ValuePart,
                 column_gate: torch.nn.Embedding, num_id: int | None, row_gate: torch.nn.Embedding | None = None):
        self.embed, self.scheme, self.values = embed, scheme, values
        self.column_gate, self.num_id, self.row_gate = column_gate, num_id, row_gate

    def __call__(self, src: torch.Tensor, values: torch.Tensor | None,
                 mask: torch.Tensor) -> tuple[torch.Tensor, PositionIds, torch.Tensor]:
        """src (B, S) -> (B, G, W) one token per row (then per column), their ids, and (B, 1, 1, G) which exist."""
        ids = self.scheme.source(src)
        entries = self.values(src, values)
        if self.num_id is None:  # token input: every token of a number joins its row, in its column
            tokens = self.embed.tokens(src)
            entries = tokens if entries is None else tokens + entries
        parts = [self._pooled(ids, entries, by_row) for by_row in self._axes()]
        pooled = torch.cat([p[0] for p in parts], dim=1)
        line_ids = PositionIds.join([p[1] for p in parts])
        present = torch.cat([p[2] for p in parts], dim=1)
        base = self.scheme.embed(line_ids)
        if self.num_id is not None:
            base = base + self.embed.tokens.weight[self.num_id]
        return self.embed.drop(self.embed.norm(pooled + base)), line_ids, present[:, None, None, :]

    def _pooled(self, ids: PositionIds, entries: torch.Tensor, by_row: bool):
        """(B, G, W) the entries summed into their row's (column's) token, gated by their column
        (row); the tokens' ids and which exist."""
        group, line_ids, present = self.scheme.positions.line_groups(ids, by_row)
        gate = self.column_gate(ids.col) if by_row else self.row_gate(ids.row)
        gated = entries * gate * (group >= 0)[..., None]  # (B, S, W)
        pooled = torch.zeros(len(group), present.shape[1], gated.shape[-1], dtype=gated.dtype, device=gated.device)
        pooled.scatter_add_(1, group.clamp(min=0)[..., None].expand_as(gated), gated)
        return pooled, line_ids, present

    def _axes(self) -> tuple[bool, ...]:
        """by_row of each run of line tokens: the rows, then (``lines``) the columns."""
        return (True,) if self.row_gate is None else (True, False)

    def memory_ids(self, src: torch.Tensor) -> PositionIds:
        ids = self.scheme.source(src)
        return PositionIds.join([self.scheme.positions.line_groups(ids, by_row)[1] for by_row in self._axes()])


# ----------------------------------------------------------------------------------- answer heads


class TokenDecoder:
    """The paper's decoder: causal self-attention over the answer so far, cross-attention to the
    memory, a linear read-out over the answer tokens (and, with ``value_loss``, each position's
    entry value)."""

    def __call__(self, model: Seq2Seq, memory: torch.Tensor, mask: torch.Tensor, src: torch.Tensor,
                 tgt_in: torch.Tensor | None, shapes: torch.Tensor | None, entry_values: bool) -> Outputs:
        h = model.decoder_states(tgt_in, memory, mask, src)
        if not entry_values:
            return Outputs(logits=model.logits(h))
        return Outputs(logits=model.logits(h), entry_values=model.entry_value(h)[..., 0].float(),
                       entries=model.matrix_positions.answer_entries(tgt_in))


class EncoderReadOut:
    """``model.encoder_only``: logits for answer position i read linearly from encoder position i."""

    def __call__(self, model: Seq2Seq, memory: torch.Tensor, mask: torch.Tensor, src: torch.Tensor,
                 tgt_in: torch.Tensor | None, shapes: torch.Tensor | None, entry_values: bool) -> Outputs:
        return Outputs(logits=model.read_out(memory, tgt_in.shape[1]))


class NumberSlots:
    """A continuous answer: one query per answer entry (its matrix position + a learned query), a
    bidirectional decoder over them, and one number read out of each."""

    def __call__(self, model: Seq2Seq, memory: torch.Tensor, mask: torch.Tensor, src: torch.Tensor,
                 tgt_in: torch.Tensor | None, shapes: torch.Tensor | None, entry_values: bool) -> Outputs:
        if shapes is None:
            raise ValueError("a model with a continuous answer needs the answers' shapes")
        numbers, zero_logits = model.number_slots(memory, mask, src, shapes)
        return Outputs(numbers=numbers, zero_logits=zero_logits)
