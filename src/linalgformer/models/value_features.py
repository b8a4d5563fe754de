"""Value features: the embedding of a number token also sees the value it writes.

Charton's tokens name numbers (P1000 writes 3.14 as ``+ 314 E-2``) but a learned embedding table
knows nothing of the order of its 1,000 mantissa tokens: that ``314`` is close to ``315`` has to be
learned from the data, token by token. With ``model.value_features`` each number token keeps its
learned embedding and adds a learned linear map of fixed features of what it writes (its sign, its
mantissa as a fraction m in [0, 1), its exponent e)::

    features = [sign, m, sin(2 pi f m), cos(2 pi f m) for f in FREQUENCIES, e / 10,
                sin(e w), cos(e w) for w in EXPONENT_FREQUENCIES] * (token writes part of a number)

The same features enter the read-out: the row of the output weight that scores a token is its
learned row plus a second learned map of its features, so an answer's value can be read out as a
direction rather than memorised per token. The tokens, the vocabulary and the decoding are the
paper's; only what the embedding knows changes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

FREQUENCIES = (1, 2, 3, 5, 10, 20, 50, 100, 200)
EXPONENT_FREQUENCIES = (0.05, 0.2, 0.7)


def value_features(values: np.ndarray) -> torch.Tensor:
    """(V, 4) rows of ``Vocabulary.token_values`` -> (V, F) float32 features."""
    v = torch.as_tensor(values, dtype=torch.float32)
    sign, mantissa, exponent, number = v.unbind(-1)
    turns = 2 * math.pi * mantissa[:, None] * torch.tensor(FREQUENCIES, dtype=torch.float32)
    angles = exponent[:, None] * torch.tensor(EXPONENT_FREQUENCIES, dtype=torch.float32)
    features = torch.cat([sign[:, None], mantissa[:, None], turns.sin(), turns.cos(), exponent[:, None] / 10,
                          angles.sin(), angles.cos()], dim=-1)
    return features * number[:, None]


class ValueFeatures(nn.Module):
    """Learned maps of the fixed features: one into the embeddings, one into the read-out rows."""

    def __init__(self, width: int, values: np.ndarray):
        super().__init__()
        features = value_features(values)
        self.register_buffer("features", features, persistent=False)
        self.embed = nn.Linear(features.shape[1], width, bias=False)
        self.read = nn.Linear(features.shape[1], width, bias=False)

    def embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """(...,) token ids -> (..., W) the value part of their embeddings."""
        return self.embed(self.features[ids])

    def read_out_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """(K,) token ids -> (K, W) the value part of their read-out rows."""
        return self.read(self.features[ids])
