"""Is a question like the ones a model was trained on? Cheap descriptors of each input matrix,
held against the range a sample of the training distribution spans.

``predict`` warns when a question lies outside that range (an exact zero for a model that never
saw one, entries spread over more decades than any training matrix had, a magnitude beyond the
trained one for a token model); ``benchmarks/warning_calibration.py`` measures how often a wrong
answer is warned and how often a right one is, family by family.

Descriptors of an input x (all entries of all operands):

* ``zeros``: the share of exact zeros;
* ``decades``: log10(max |x| / min nonzero |x|), how many decades the entries span;
* ``magnitude``: log10 max |x| (left out for a model that reads numbers by value: it is exactly
  scale-equivariant, so no magnitude is new to it);
* ``trace``: tr(x) / |x|_F for a square input (0 for the others), which tells a positive
  semi-definite matrix (near 1) from a Wigner one (near 0) without an eigenvalue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the training range is widened by this much on each side: a question a hair beyond the sample's
# extremes is not news
MARGINS = {"zeros": 0.05, "decades": 0.5, "magnitude": 0.3, "trace": 0.05}
WORDS = {"zeros": "share of exact zeros", "decades": "spread of magnitudes (decades)",
         "magnitude": "largest magnitude (log10)", "trace": "trace against its Frobenius norm"}


def descriptors(inputs: list[np.ndarray], scale_free: bool) -> dict[str, np.ndarray]:
    """(B,) arrays per descriptor for a batch of input matrices (any shapes)."""
    zeros, decades, magnitude, trace = (np.zeros(len(inputs)) for _ in range(4))
    for i, x in enumerate(inputs):
        x = np.asarray(x, dtype=np.float64)
        flat = np.abs(x).ravel()
        nonzero = flat[flat > 0]
        zeros[i] = 1.0 - nonzero.size / max(flat.size, 1)
        if nonzero.size:
            decades[i] = np.log10(nonzero.max() / nonzero.min())
            magnitude[i] = np.log10(nonzero.max())
            if x.ndim == 2 and x.shape[0] == x.shape[1]:
                trace[i] = np.trace(x) / np.sqrt((x * x).sum())
    out = {"zeros": zeros, "decades": decades, "trace": trace}
    if not scale_free:
        out["magnitude"] = magnitude
    return out


@dataclass(frozen=True)
class TrainingRange:
    """[low, high] of each descriptor over a sample of training questions."""

    low: dict[str, float]
    high: dict[str, float]

    @classmethod
    def of(cls, inputs: list[np.ndarray], scale_free: bool) -> "TrainingRange":
        found = descriptors(inputs, scale_free)
        return cls(low={k: float(v.min()) for k, v in found.items()},
                   high={k: float(v.max()) for k, v in found.items()})

    def outside(self, inputs: list[np.ndarray], scale_free: bool) -> np.ndarray:
        """(B,) whether each question lies outside the range in some descriptor."""
        found = descriptors(inputs, scale_free)
        out = np.zeros(len(inputs), dtype=bool)
        for name, values in found.items():
            out |= (values < self.low[name] - MARGINS[name]) | (values > self.high[name] + MARGINS[name])
        return out

    def reasons(self, matrix: np.ndarray, scale_free: bool) -> list[str]:
        """Why one question lies outside the range, in words (empty: it does not)."""
        found = descriptors([matrix], scale_free)
        words = []
        for name, values in found.items():
            value, low, high = float(values[0]), self.low[name], self.high[name]
            if value < low - MARGINS[name] or value > high + MARGINS[name]:
                words.append(f"its {WORDS[name]} is {value:.3g}, training spanned {low:.3g} to {high:.3g}")
        return words
