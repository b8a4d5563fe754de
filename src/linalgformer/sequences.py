"""Batches of token-id sequences: the ground floor every tokenized piece shares.

A :class:`Sequences` is a padded int array of vocabulary ids plus the length of each row, *without*
<bos>/<eos> (:func:`with_bos_eos` adds them for the seq2seq decoder). The helpers are vectorised
over the batch and know nothing of numbers, matrices or problems: only ids, lengths and a pad id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Sequences:
    """A batch of token-id sequences: ``ids`` (B, L) int64 padded with ``pad_id``, ``lengths`` (B,).

    ``values`` (B, L) float64, only for numbers written by value (the ``continuous`` encoding): the
    number each ``<num>`` token stands for, 0 elsewhere; None for the token encodings."""

    ids: np.ndarray
    lengths: np.ndarray
    values: np.ndarray | None = None


class Specials(Protocol):
    """The special ids a vocabulary provides (``tokens.Vocabulary`` is one)."""

    pad_id: int
    bos_id: int
    eos_id: int


def compact(ids: np.ndarray, keep: np.ndarray, lengths: np.ndarray, pad_id: int) -> np.ndarray:
    """Move each row's kept entries to its front, in order; pad the rest. (B, L) -> (B, max len)."""
    out = np.full((len(ids), int(lengths.max(initial=0))), pad_id, dtype=np.int64)
    rows, cols = np.nonzero(keep)
    targets = np.cumsum(keep, axis=1) - 1
    out[rows, targets[rows, cols]] = ids[rows, cols]
    return out


def concat_sequences(parts: Sequence[Sequences], pad_id: int) -> Sequences:
    """Join batches example-wise: row b is parts[0] row b, then parts[1] row b, ... (vectorised)."""
    if not parts:
        raise ValueError("concat_sequences needs at least one part")
    ids = np.concatenate([p.ids for p in parts], axis=1)
    keep = np.concatenate([np.arange(p.ids.shape[1]) < p.lengths[:, None] for p in parts], axis=1)
    lengths = np.sum([p.lengths for p in parts], axis=0).astype(np.int64)
    return Sequences(ids=compact(ids, keep, lengths, pad_id), lengths=lengths)


def merge_sequences(parts: list[tuple[np.ndarray, Sequences]], count: int, pad_id: int) -> Sequences:
    """Scatter per-group Sequences back to batch positions, padding to the longest."""
    width = max((seq.ids.shape[1] for _, seq in parts), default=0)
    ids = np.full((count, width), pad_id, dtype=np.int64)
    lengths = np.zeros(count, dtype=np.int64)
    with_values = any(seq.values is not None for _, seq in parts)
    values = np.zeros((count, width)) if with_values else None
    for indices, seq in parts:
        ids[indices, : seq.ids.shape[1]] = seq.ids
        lengths[indices] = seq.lengths
        if with_values:
            values[indices, : seq.ids.shape[1]] = 0.0 if seq.values is None else seq.values
    return Sequences(ids=ids, lengths=lengths, values=values)


def prefix_token(seq: Sequences, token: int) -> Sequences:
    """Put one token in front of every sequence of the batch."""
    column = np.full((seq.ids.shape[0], 1), token, dtype=np.int64)
    return Sequences(ids=np.concatenate([column, seq.ids], axis=1), lengths=seq.lengths + 1)


def take(seq: Sequences, index: np.ndarray) -> Sequences:
    """Rows ``index`` of a padded batch, trimmed to their longest length."""
    lengths = seq.lengths[index]
    width = int(lengths.max())
    values = None if seq.values is None else seq.values[index, :width]
    return Sequences(seq.ids[index, :width], lengths, values)


def with_bos_eos(tgt: Sequences, vocab: Specials) -> np.ndarray:
    """(B, L) padded ids -> (B, L+2): <bos> ids <eos> then padding."""
    b, length = tgt.ids.shape
    out = np.full((b, length + 2), vocab.pad_id, dtype=np.int64)
    out[:, 0] = vocab.bos_id
    out[:, 1:length + 1] = tgt.ids
    out[np.arange(b), tgt.lengths + 1] = vocab.eos_id
    keep = np.arange(length + 2)[None, :] <= (tgt.lengths + 1)[:, None]
    return np.where(keep, out, vocab.pad_id)
