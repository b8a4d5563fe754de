"""Number encodings (float <-> tokens), matrix <-> tokens, and the vocabulary.

Four ways of writing a real number as tokens, in the token formats of Charton's reference code
(facebookresearch/LAWT, ``src/envs/encoders.py``), with 3 significant digits by default. Each is
an instance of :class:`NumberEncoding`, built by :func:`make_encoding`. Worked examples
(3 significant digits, rounding as ``"%.2e" % x`` for P10, P1000, B1999):

======  ===============  ==================  ===========================================
name    3.14159          -0.0123             0.0
======  ===============  ==================  ===========================================
P10     ``+ 3 1 4 E-2``  ``- 1 2 3 E-4``     ``+ 0 E0``
P1000   ``+ 314 E-2``    ``- 123 E-4``       ``+ 0 E0``
B1999   ``N314 E-2``     ``N-123 E-4``       ``N0 E0``
FP15    ``N314e7``       ``N-123e5``         ``N0e0``
======  ===============  ==================  ===========================================

A matrix is ``V{rows} V{cols}`` then its entries row by row; a vector is an n x 1 matrix. The 2x2
matrix [[3.14159, -0.0123], [0.0, 1234.5]] is written

- P10:   ``V2 V2 + 3 1 4 E-2 - 1 2 3 E-4 + 0 E0 + 1 2 3 E1``
- P1000: ``V2 V2 + 314 E-2 - 123 E-4 + 0 E0 + 123 E1``
- B1999: ``V2 V2 N314 E-2 N-123 E-4 N0 E0 N123 E1``
- FP15:  ``V2 V2 N314e7 N-123e5 N0e0 N123e10``

A fifth encoding, ``continuous`` (:class:`Continuous`), writes no digits at all: every number is the
one token ``<num>`` and its value travels beside the ids (``Sequences.values``), as in xVal
(Golkar et al., 2023); the model embeds the value itself (``models/number_values.py``). The matrix
above is ``V2 V2 <num> <num> <num> <num>`` with values ``0 0 3.14159 -0.0123 0.0 1234.5``.

Batches travel as :class:`~linalgformer.sequences.Sequences` of vocabulary ids; the batch
function here (:func:`encode_matrices`) is vectorised over the whole batch, while decoding (:func:`decode_matrix`) reads one prediction and never raises.
"""

from __future__ import annotations

import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from linalgformer.sequences import Sequences, compact

TOKEN_ENCODINGS = ("P10", "P1000", "B1999", "FP15")
CONTINUOUS = "continuous"
ENCODINGS = (*TOKEN_ENCODINGS, CONTINUOUS)
NUM_TOKEN = "<num>"
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")

_TINY = 1e-290  # below this every encoding (max_exponent <= 250) writes zero
_MAX_P_EXPONENT = 250
_POW10 = np.array([float(10**k) for k in range(309)])  # correctly rounded powers of ten
_DIM_TOKEN = re.compile(r"V([1-9][0-9]{0,8})")


class UnknownTokenError(ValueError, KeyError):
    """A token string that is not in the vocabulary (both a ValueError and a KeyError)."""

    def __str__(self) -> str:
        return str(self.args[0])


# ----------------------------------------------------------------------------- float arithmetic


def _compose(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """mantissa * 10**exponent as float64, exact whenever 10**|exponent| is (|exponent| <= 22)."""
    m = np.asarray(mantissa, dtype=np.float64)
    e = np.asarray(exponent, dtype=np.int64)
    up = _POW10[np.clip(e, 0, 308)]
    down = _POW10[np.clip(-e, 0, 308)]
    with np.errstate(over="ignore"):
        return np.where(e >= 0, m * up, m / down)


def _format_significant(a: float, digits: int) -> tuple[int, int]:
    """(mantissa, power) with a ~ mantissa * 10**(power - digits + 1), read off ``"%.{d-1}e" % a``."""
    text = f"%.{digits - 1}e" % a
    mantissa, power = text.split("e")
    return int(mantissa.replace(".", "")), int(power)


def _round_significant(a: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Round a >= 0 (finite) to ``digits`` significant digits exactly as ``"%.{digits-1}e"`` does.

    Returns (mantissa, exponent) int64 arrays with a ~ mantissa * 10**exponent and mantissa in
    [10**(digits-1), 10**digits), or mantissa 0 for a < 1e-290. Computed in floating point; the
    rare entries too close to a rounding tie or a power of ten are re-done with string formatting.
    """
    positive = a >= _TINY
    safe = np.where(positive, a, 1.0)
    power = np.floor(np.log10(safe)).astype(np.int64)
    scaled = _compose(safe, (digits - 1) - power)
    mantissa = np.rint(scaled)
    frac = scaled - np.floor(scaled)
    doubtful = (np.abs(frac - 0.5) < scaled * 1e-12) | (scaled < 10 ** (digits - 1)) | (scaled >= 10**digits)
    for i in np.flatnonzero(doubtful & positive):
        mantissa[i], power[i] = _format_significant(float(a[i]), digits)
    carry = mantissa >= 10**digits
    mantissa = np.where(carry, mantissa // 10, mantissa).astype(np.int64)
    power = power + carry
    return np.where(positive, mantissa, 0), power - (digits - 1)


def _finite_or_zero(x) -> tuple[np.ndarray, np.ndarray]:
    """(x as float64 with non-finite entries replaced by 0, finite mask)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    return np.where(finite, x, 0.0), finite


# ----------------------------------------------------------------------------- encodings


class NumberEncoding(ABC):
    """A way of writing one real number as a few tokens.

    ``tokens`` lists every number token the encoding can emit; ``encode`` returns indices into it
    (``-1`` pads numbers shorter than ``width``). ``precision`` is the number of significant
    digits; ``max_exponent`` bounds the exponent tokens (P10, P1000, B1999: E-max..E+max; FP15:
    exponents 0..max-1). Subclasses describe one split of x into (mantissa, exponent) and one
    layout of codes; encoding, rounding and fitting follow from those.
    """

    name: str
    max_precision: int = 10

    def __init__(self, precision: int, max_exponent: int):
        if not 1 <= precision <= self.max_precision:
            raise ValueError(f"{self.name} precision must be in 1..{self.max_precision}, got {precision}")
        self.precision = precision
        self.max_exponent = max_exponent
        self.tokens: list[str] = self._make_tokens()
        self._meaning: dict[str, tuple[str, int, int]] = self._make_meaning()

    # -- what subclasses provide
    @property
    @abstractmethod
    def width(self) -> int:
        """Most tokens one number takes."""

    @abstractmethod
    def _make_tokens(self) -> list[str]:
        """Every token this encoding can emit, in a fixed order."""

    @abstractmethod
    def _make_meaning(self) -> dict[str, tuple[str, int, int]]:
        """token -> (kind, integer, unused) for parsing."""

    @abstractmethod
    def _split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signed mantissa, exponent, fits) for float64 x; value = mantissa * 10**exponent."""

    @abstractmethod
    def _codes(self, mantissa: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes (N, width), lengths (N,)) for fitting (mantissa, exponent) pairs."""

    @abstractmethod
    def encode_float(self, x: float) -> list[str]:
        """One float as token strings, written independently of the vectorised path."""

    @abstractmethod
    def parse(self, tokens: Sequence[str], start: int) -> tuple[float, int] | None:
        """Read one number at ``tokens[start]``: (value, position after it), or None if invalid."""

    # -- shared behaviour
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (flattened to (N,)) -> (codes int64 (N, width), -1 = padding; lengths int64 (N,)).

        Raises ValueError if some value does not fit (see :meth:`fits`).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        mantissa, exponent, fits = self._split(x)
        if not fits.all():
            bad = x[~fits][0]
            raise ValueError(f"{bad!r} does not fit the {self.name} encoding; check fits() first")
        return self._codes(mantissa, exponent)

    def fits(self, x: np.ndarray) -> np.ndarray:
        """Boolean array (shape of x): finite and within the encoding's exponent range."""
        x = np.asarray(x, dtype=np.float64)
        return self._split(x.reshape(-1))[2].reshape(x.shape)

    def round(self, x: np.ndarray) -> np.ndarray:
        """The values the encoded tokens stand for (shape of x); NaN where x does not fit."""
        x = np.asarray(x, dtype=np.float64)
        mantissa, exponent, fits = self._split(x.reshape(-1))
        value = np.where(fits, self._value(mantissa, exponent), np.nan)
        return value.reshape(x.shape)

    def _value(self, mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
        return _compose(mantissa, exponent)

    def decode_float(self, tokens: Sequence[str]) -> float | None:
        """The value of a complete token list, or None if it is not exactly one valid number."""
        got = self.parse(tokens, 0)
        if got is None or got[1] != len(tokens):
            return None
        return got[0]

    def _lookup(self, tokens: Sequence[str], position: int) -> tuple[str, int, int] | None:
        """Meaning of ``tokens[position]`` for this encoding (None: absent, foreign, or not a str)."""
        if position >= len(tokens):
            return None
        token = tokens[position]
        return self._meaning.get(token) if isinstance(token, str) else None

    def token_kind(self, token: str) -> str:
        """What one of ``tokens`` is: sign, digit, mantissa, exponent or number (a whole number)."""
        return self._meaning[token][0]

    def token_value(self, token: str) -> tuple[float, float, float]:
        """(sign, mantissa fraction in [0, 1), exponent) that one of ``tokens`` writes (0 where none)."""
        kind, value, exponent = self._meaning[token]
        if kind == "sign":
            return float(value), 0.0, 0.0
        if kind == "exponent":
            return 0.0, 0.0, float(value)
        scale = getattr(self, "base", 10**self.precision)  # a digit of P10/P1000, or a whole mantissa
        sign = float(np.sign(value)) if kind != "digit" else 0.0
        return sign, abs(value) / scale, float(exponent)

    def to_dict(self) -> dict:
        """JSON-able parameters: ``make_encoding(**d)`` rebuilds this encoding."""
        return {"name": self.name, "precision": self.precision, "max_exponent": self.max_exponent}

    def _key(self) -> tuple:
        return (self.name, self.precision, self.max_exponent)

    def __eq__(self, other) -> bool:
        return isinstance(other, NumberEncoding) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(precision={self.precision}, max_exponent={self.max_exponent})"


class _SignificandExponent(NumberEncoding):
    """Shared rounding of P10, P1000 and B1999: ``"%.{p-1}e"``, exponent tokens E-max..E+max.

    An exponent below -max_exponent underflows to zero, written with exponent 0 (and sign +);
    one above +max_exponent does not fit.
    """

    def __init__(self, precision: int = 3, max_exponent: int = 100):
        if not 1 <= max_exponent <= _MAX_P_EXPONENT:
            raise ValueError(f"{self.name} max_exponent must be in 1..{_MAX_P_EXPONENT}, got {max_exponent}")
        super().__init__(precision, max_exponent)

    def _exponent_tokens(self) -> list[str]:
        return [f"E{e}" for e in range(-self.max_exponent, self.max_exponent + 1)]

    def _exponent_meaning(self) -> dict[str, tuple[str, int, int]]:
        return {f"E{e}": ("exponent", e, 0) for e in range(-self.max_exponent, self.max_exponent + 1)}

    def _split(self, x):
        x, finite = _finite_or_zero(x)
        mantissa, exponent = _round_significant(np.abs(x), self.precision)
        mantissa = np.where(exponent < -self.max_exponent, 0, mantissa)
        exponent = np.where(mantissa == 0, 0, exponent)
        fits = finite & (exponent <= self.max_exponent)
        return np.where(x < 0, -mantissa, mantissa), exponent, fits

    def _scalar_parts(self, x: float) -> tuple[int, int]:
        """(signed mantissa, exponent) of one float, the reference's way; ValueError if unfit."""
        if not math.isfinite(x):
            raise ValueError(f"{x!r} does not fit the {self.name} encoding")
        mantissa, power = _format_significant(abs(x), self.precision)
        exponent = power - (self.precision - 1)
        if exponent < -self.max_exponent or mantissa == 0:
            return 0, 0
        if exponent > self.max_exponent:
            raise ValueError(f"{x!r} does not fit the {self.name} encoding")
        return (-mantissa if x < 0 else mantissa), exponent


class Positional(_SignificandExponent):
    """Sign token, the mantissa's digits in base ``base`` (one token each), exponent token.

    Tokens: ``+``, ``-``, ``0``..``{base-1}``, ``E-max``..``E{max}``. A nonzero mantissa always
    takes the same number of digits; zero is the single digit ``0`` (so zero is shorter).
    """

    base: int
    digits_per_token: int

    @property
    def mantissa_tokens(self) -> int:
        """Digits (in base ``base``) of a nonzero mantissa."""
        return -(-self.precision // self.digits_per_token)

    @property
    def width(self) -> int:
        return 2 + self.mantissa_tokens

    def _make_tokens(self):
        return ["+", "-"] + [str(d) for d in range(self.base)] + self._exponent_tokens()

    def _make_meaning(self):
        meaning = {"+": ("sign", 1, 0), "-": ("sign", -1, 0)}
        meaning.update({str(d): ("digit", d, 0) for d in range(self.base)})
        meaning.update(self._exponent_meaning())
        return meaning

    def _codes(self, mantissa, exponent):
        n, count = self.mantissa_tokens, len(mantissa)
        magnitude = np.abs(mantissa)
        places = self.base ** np.arange(n - 1, -1, -1, dtype=np.int64)
        exponent_code = 2 + self.base + exponent + self.max_exponent
        zero = magnitude == 0
        codes = np.full((count, 2 + n), -1, dtype=np.int64)
        codes[:, 0] = (mantissa < 0).astype(np.int64)
        codes[:, 1 : 1 + n] = 2 + (magnitude[:, None] // places) % self.base
        codes[:, 1 + n] = exponent_code
        codes[zero, 1] = 2
        codes[zero, 2] = exponent_code[zero]
        codes[zero, 3:] = -1
        return codes, np.where(zero, 3, 2 + n).astype(np.int64)

    def _mantissa_tokens(self, magnitude: int) -> list[str]:
        """Base-``base`` digits of a nonnegative integer, most significant first."""
        digits = [str(magnitude % self.base)]
        while magnitude >= self.base:
            magnitude //= self.base
            digits.append(str(magnitude % self.base))
        return digits[::-1]

    def encode_float(self, x):
        mantissa, exponent = self._scalar_parts(float(x))
        sign = "-" if mantissa < 0 else "+"
        return [sign, *self._mantissa_tokens(abs(mantissa)), f"E{exponent}"]

    def parse(self, tokens, start):
        first = self._lookup(tokens, start)
        if first is None or first[0] != "sign":
            return None
        position, mantissa = start + 1, 0
        while position - start - 1 < self.mantissa_tokens:
            digit = self._lookup(tokens, position)
            if digit is None or digit[0] != "digit":
                break
            mantissa, position = mantissa * self.base + digit[1], position + 1
        exponent = self._lookup(tokens, position)
        if position == start + 1 or exponent is None or exponent[0] != "exponent":
            return None
        return float(first[1] * _compose(mantissa, exponent[1])), position + 1


class P10(Positional):
    """Base 10: ``+ 3 1 4 E-2`` is 3.14; 0.0 is ``+ 0 E0``; [[1, -2], [0, 0.5]] is
    ``V2 V2 + 1 0 0 E-2 - 2 0 0 E-2 + 0 E0 + 5 0 0 E-3``. Width 2 + precision."""

    name = "P10"
    base = 10
    digits_per_token = 1


class P1000(Positional):
    """Base 1000, the mantissa in one token (3 digits): ``+ 314 E-2`` is 3.14; 0.0 is ``+ 0 E0``;
    [[1, -2], [0, 0.5]] is ``V2 V2 + 100 E-2 - 200 E-2 + 0 E0 + 500 E-3``. With precision p the
    mantissa takes ceil(p / 3) base-1000 digits, e.g. precision 4: 31.416 is ``+ 3 142 E-2``."""

    name = "P1000"
    base = 1000
    digits_per_token = 3


class B1999(_SignificandExponent):
    """Signed mantissa token, exponent token: ``N314 E-2`` is 3.14, ``N-123 E-4`` is -0.0123,
    0.0 is ``N0 E0``; [[1, -2], [0, 0.5]] is ``V2 V2 N100 E-2 N-200 E-2 N0 E0 N500 E-3``.

    Tokens ``N-999``..``N999`` (2 * 10**precision - 1 of them) then ``E-max``..``E{max}``.
    """

    name = "B1999"
    max_precision = 6

    @property
    def width(self) -> int:
        return 2

    @property
    def _largest(self) -> int:
        return 10**self.precision - 1

    def _make_tokens(self):
        return [f"N{m}" for m in range(-self._largest, self._largest + 1)] + self._exponent_tokens()

    def _make_meaning(self):
        meaning = {f"N{m}": ("mantissa", m, 0) for m in range(-self._largest, self._largest + 1)}
        meaning.update(self._exponent_meaning())
        return meaning

    def _codes(self, mantissa, exponent):
        codes = np.stack([mantissa + self._largest, 2 * self._largest + 1 + exponent + self.max_exponent], axis=1)
        return codes.astype(np.int64), np.full(len(mantissa), 2, dtype=np.int64)

    def encode_float(self, x):
        mantissa, exponent = self._scalar_parts(float(x))
        return [f"N{mantissa}", f"E{exponent}"]

    def parse(self, tokens, start):
        mantissa, exponent = self._lookup(tokens, start), self._lookup(tokens, start + 1)
        if mantissa is None or exponent is None or (mantissa[0], exponent[0]) != ("mantissa", "exponent"):
            return None
        return float(_compose(mantissa[1], exponent[1])), start + 2


class FP15(NumberEncoding):
    """One token ``N{signed mantissa}e{exponent}`` standing for mantissa * 10**exponent / 10**9.

    3.14159 is ``N314e7``, 1234.5 is ``N123e10``, 0.0 is ``N0e0``; [[1, -2], [0, 0.5]] is
    ``V2 V2 N100e7 N-200e7 N0e0 N500e6``. Exponents run 0..max_exponent-1 (default 16), so with 3
    digits the full-precision range is 1e-7..9.99e8. Below 1e-7 the exponent stays 0 and the
    mantissa shrinks (fixed point, step 1e-9; below 5e-10 the value is ``N0e0``). Above 9.99e8
    the value does not fit: :meth:`encode` writes the reference's overflow tokens ``NaN`` /
    ``-NaN``, which decode to None.

    General precision p (reference parameters p-1, max_exponent): the scale is 10**L with
    L = (p - 1 + max_exponent) / 2, which must be an integer; the default max_exponent = 19 - p
    keeps L = 9, the top of the range near 1e9.
    """

    name = "FP15"
    max_precision = 5

    def __init__(self, precision: int = 3, max_exponent: int | None = None):
        max_exponent = 19 - precision if max_exponent is None else max_exponent
        if max_exponent < 1 or (precision - 1 + max_exponent) % 2:
            raise ValueError(
                f"FP15 needs max_exponent >= 1 with precision - 1 + max_exponent even, got {max_exponent}"
            )
        self._digit_unit = 10 ** (precision - 1)  # smallest full-precision mantissa
        self._scale_power = (precision - 1 + max_exponent) // 2
        super().__init__(precision, max_exponent)
        self._step = np.array([10 ** (precision - 1 - e) for e in range(max_exponent + 1)], dtype=np.float64)

    @property
    def width(self) -> int:
        return 1

    @property
    def limit(self) -> float:
        """10**L: values beyond it overflow at once (as in the reference)."""
        return float(10**self._scale_power)

    def _make_tokens(self):
        unit = self._digit_unit
        tokens = [f"N{m}e0" for m in range(-unit + 1, unit)]
        for e in range(self.max_exponent):
            for m in range(unit, 10 * unit):
                tokens += [f"N{m}e{e}", f"N-{m}e{e}"]
        return tokens + ["NaN", "-NaN"]

    def _make_meaning(self):
        meaning = {}
        for token in self.tokens[:-2]:
            mantissa, exponent = token[1:].split("e")
            meaning[token] = ("number", int(mantissa), int(exponent))
        return meaning

    def _split(self, x):
        x, finite = _finite_or_zero(x)
        magnitude = np.abs(x)
        over = ~finite | (magnitude > self.limit)
        v = np.where(over, 0.0, magnitude) * float(10 ** (self._scale_power - self.precision + 1))
        exponent = np.floor(np.log10(np.where(v > 0, v, 1.0))).astype(np.int64)
        exponent = np.clip(exponent, 0, self.max_exponent)
        mantissa = np.floor(v * self._step[exponent] + 0.5).astype(np.int64)
        carry = mantissa == 10 * self._digit_unit
        mantissa, exponent = np.where(carry, self._digit_unit, mantissa), exponent + carry
        over |= exponent >= self.max_exponent
        mantissa = np.where(over, 0, mantissa)
        exponent = np.where(over | (mantissa == 0), 0, exponent)
        return np.where(x < 0, -mantissa, mantissa), exponent, ~over

    def _value(self, mantissa, exponent):
        return _compose(mantissa, exponent - self._scale_power)

    def token_kind(self, token):
        return "number"  # the overflow tokens NaN / -NaN too

    def token_value(self, token):
        if token not in self._meaning:  # NaN / -NaN: beyond the largest exponent
            return (-1.0 if token.startswith("-") else 1.0), 0.0, float(self.max_exponent)
        _, mantissa, exponent = self._meaning[token]
        return float(np.sign(mantissa)), abs(mantissa) / (10 * self._digit_unit), float(exponent)

    def encode(self, x):
        """Like :meth:`NumberEncoding.encode`, but finite values beyond the range (and +-inf) are
        written ``NaN`` / ``-NaN`` as the reference does; only NaN input raises ValueError."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if np.isnan(x).any():
            raise ValueError("NaN does not fit the FP15 encoding")
        mantissa, exponent, fits = self._split(x)
        codes, lengths = self._codes(mantissa, exponent)
        overflow_code = len(self.tokens) - 2 + (x < 0)
        return np.where(fits, codes[:, 0], overflow_code)[:, None], lengths

    def _codes(self, mantissa, exponent):
        unit = self._digit_unit
        magnitude = np.abs(mantissa)
        small = mantissa + unit - 1
        large = (2 * unit - 1) + exponent * 18 * unit + (magnitude - unit) * 2 + (mantissa < 0)
        codes = np.where(magnitude < unit, small, large).astype(np.int64)
        return codes[:, None], np.ones(len(mantissa), dtype=np.int64)

    def encode_float(self, x):
        x = float(x)
        if math.isnan(x):
            raise ValueError("NaN does not fit the FP15 encoding")
        overflow = ["-NaN" if x < 0 else "NaN"]
        v = abs(x) * 10 ** (self._scale_power - self.precision + 1)
        if abs(x) > self.limit:
            return overflow
        if v == 0:
            return ["N0e0"]
        exponent = max(int(math.log10(v)), 0)
        mantissa = int(v * 10 ** (self.precision - 1 - exponent) + 0.5)
        if mantissa == 10 * self._digit_unit:
            mantissa, exponent = self._digit_unit, exponent + 1
        if exponent >= self.max_exponent:
            return overflow
        sign = "-" if x < 0 and mantissa > 0 else ""
        return [f"N{sign}{mantissa}e{exponent}"]

    def parse(self, tokens, start):
        meaning = self._lookup(tokens, start)
        if meaning is None:
            return None
        return float(self._value(meaning[1], meaning[2])), start + 1


class Continuous(NumberEncoding):
    """Numbers by value: each is the single token ``<num>``, its float64 value kept beside the ids.

    Nothing is rounded: :meth:`round` is the identity and every finite number up to 1e300 fits
    (``max_exponent``), so magnitudes from 1e-300 to 1e300 keep their full precision; what the
    model makes of them is the model's business (``models/number_values.py``). ``precision`` is
    accepted and ignored (it is the token encodings' setting). Text files write the value itself
    in place of ``<num>`` (``repr``: the shortest text that reads back exactly)."""

    name = CONTINUOUS
    max_precision = 17

    def __init__(self, precision: int = 3, max_exponent: int = 300):
        super().__init__(min(max(precision, 1), self.max_precision), max_exponent)
        self.limit = 10.0 ** max_exponent

    @property
    def width(self) -> int:
        return 1

    def _make_tokens(self):
        return [NUM_TOKEN]

    def _make_meaning(self):
        return {NUM_TOKEN: ("number", 0, 0)}

    def _split(self, x):
        x, finite = _finite_or_zero(x)
        fits = finite & (np.abs(x) <= self.limit)
        return np.where(fits, x, 0.0), np.zeros(x.shape, dtype=np.int64), fits

    def _value(self, mantissa, exponent):
        return np.asarray(mantissa, dtype=np.float64)

    def _codes(self, mantissa, exponent):
        return np.zeros((len(mantissa), 1), dtype=np.int64), np.ones(len(mantissa), dtype=np.int64)

    def encode_float(self, x):
        if not math.isfinite(float(x)) or abs(float(x)) > self.limit:
            raise ValueError(f"{x!r} does not fit the continuous encoding")
        return [repr(float(x))]

    def parse(self, tokens, start):
        if start >= len(tokens) or not isinstance(tokens[start], str):
            return None
        try:
            value = float(tokens[start])
        except ValueError:
            return None
        return (value, start + 1) if math.isfinite(value) and abs(value) <= self.limit else None

    def token_value(self, token):
        return 0.0, 0.0, 0.0  # the value is not in the token


_ENCODING_CLASSES = {"P10": P10, "P1000": P1000, "B1999": B1999, "FP15": FP15, CONTINUOUS: Continuous}


def make_encoding(name: str, precision: int = 3, max_exponent: int | None = None) -> NumberEncoding:
    """The encoding called ``name`` (one of ENCODINGS); max_exponent None takes its default
    (100 for P10, P1000, B1999; 19 - precision for FP15; 300 for continuous). Raises ValueError on a bad name or
    parameter."""
    if name not in _ENCODING_CLASSES:
        raise ValueError(f"unknown number encoding {name!r}; choose one of {', '.join(ENCODINGS)}")
    cls = _ENCODING_CLASSES[name]
    if max_exponent is None:
        return cls(precision)
    return cls(precision, max_exponent)


# ----------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Token strings <-> ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, one ``<task>`` token per task,
    ``V1``..``V{max_dim}``, then every encoding's number tokens in order (a token shared by
    several encodings, such as P10's and P1000's ``+``, ``7`` or ``E-2``, appears once).

    Sizes with max_dim 100 and no task: P10 316, P1000 1,306, B1999 2,303, FP15 29,104. The
    reference's published counts (311, 1,301, 2,302, 29,101) count only the V tokens and the
    encoder's own symbols: ours add the 3 specials, and for P10/P1000 the ``+``/``-`` signs (the
    reference keeps those among its 27 extra "common" and special words); for B1999 ours has
    ``N-999``..``N999`` where the reference also lists ``N-1000``/``N1000``, which it never emits.
    """

    def __init__(self, encodings: Sequence[NumberEncoding], max_dim: int = 100, tasks: Sequence[str] = ()):
        if max_dim < 1:
            raise ValueError(f"max_dim must be at least 1, got {max_dim}")
        self.encodings = tuple(encodings)
        self.max_dim = max_dim
        self.tasks = tuple(tasks)
        words = [*SPECIAL_TOKENS, *(f"<{task}>" for task in self.tasks)]
        if len(set(words)) != len(words):
            raise ValueError(f"task names must be distinct and not pad/bos/eos: {list(self.tasks)}")
        words += [f"V{n}" for n in range(1, max_dim + 1)]
        self.itos: list[str] = list(dict.fromkeys(words + [t for e in self.encodings for t in e.tokens]))
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2
        self._tables: dict[NumberEncoding, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        names = ", ".join(e.name for e in self.encodings)
        return f"Vocabulary({len(self)} tokens: {names}, max_dim={self.max_dim}, tasks={list(self.tasks)})"

    def table(self, encoding: NumberEncoding) -> np.ndarray:
        """int64 array: encoding-local code -> vocabulary id (ValueError if a token is missing)."""
        if encoding not in self._tables:
            self._tables[encoding] = np.array(self.to_ids(encoding.tokens), dtype=np.int64)
        return self._tables[encoding]

    def dim_id(self, n: int) -> int:
        """Id of the dimension token ``V{n}``."""
        if not 1 <= n <= self.max_dim:
            raise ValueError(f"dimension {n} is outside 1..{self.max_dim} of this vocabulary")
        return self.stoi[f"V{n}"]

    def task_id(self, name: str) -> int:
        """Id of the task token ``<{name}>``."""
        if name not in self.tasks:
            raise ValueError(f"unknown task {name!r}; this vocabulary has {list(self.tasks)}")
        return self.stoi[f"<{name}>"]

    def to_strings(self, ids) -> list[str]:
        """Token strings of ids (ValueError on an id outside the vocabulary)."""
        out = []
        for i in ids:
            i = operator.index(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is outside the vocabulary (size {len(self)})")
            out.append(self.itos[i])
        return out

    def to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of token strings; UnknownTokenError (a ValueError and KeyError) names a stranger."""
        try:
            return [self.stoi[t] for t in tokens]
        except KeyError as missing:
            raise UnknownTokenError(f"unknown token {missing.args[0]!r}") from None

    def token_kinds(self) -> list[str]:
        """Per id, what the token is: ``sign``, ``digit``, ``mantissa``, ``exponent`` or ``number``
        (FP15, overflow tokens included) as its encoding reads it, ``dim`` for ``V{n}``, else ``other``."""
        meaning = {t: e.token_kind(t) for e in self.encodings for t in e.tokens}
        return [meaning.get(t, "dim" if _DIM_TOKEN.fullmatch(t) else "other") for t in self.itos]

    def token_values(self) -> np.ndarray:
        """(V, 4) float: per id, the sign (+-1, 0 if none), the mantissa as a fraction of its range
        ([0, 1): P1000 ``314`` is 0.314, P10 ``7`` is 0.7), the exponent a token writes, and 1 for
        a token that writes part of a number (all 0 for the others). What value features read."""
        out = np.zeros((len(self.itos), 4))
        owner = {t: e for e in reversed(self.encodings) for t in e.tokens}
        for i, token in enumerate(self.itos):
            if token in owner:
                out[i] = (*owner[token].token_value(token), 1.0)
        return out

    def dim_values(self) -> list[int]:
        """Per id, n for the dimension token ``V{n}``, else 0."""
        return [_dimension(t, None) or 0 for t in self.itos]

    def to_dict(self) -> dict:
        """JSON-able description; :meth:`from_dict` rebuilds the same vocabulary."""
        return {
            "encodings": [e.to_dict() for e in self.encodings],
            "max_dim": self.max_dim,
            "tasks": list(self.tasks),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        """Inverse of :meth:`to_dict`."""
        encodings = [make_encoding(**spec) for spec in d["encodings"]]
        return cls(encodings, max_dim=d["max_dim"], tasks=d.get("tasks", ()))


# ----------------------------------------------------------------------------- matrices


def matrix_tokens(encoding: NumberEncoding, m: np.ndarray) -> list[str]:
    """``V{rows} V{cols}`` then the entries row by row (a 1-D array is an n x 1 matrix); the
    continuous encoding writes each value as text (``repr``, exact)."""
    m = np.asarray(m, dtype=np.float64)
    m = m.reshape(-1, 1) if m.ndim == 1 else m
    if m.ndim != 2:
        raise ValueError(f"expected a matrix or a vector, got shape {m.shape}")
    if isinstance(encoding, Continuous):
        return [f"V{m.shape[0]}", f"V{m.shape[1]}", *(t for x in m.reshape(-1) for t in encoding.encode_float(x))]
    codes, _ = encoding.encode(m.reshape(-1))
    numbers = [encoding.tokens[c] for c in codes.reshape(-1) if c >= 0]
    return [f"V{m.shape[0]}", f"V{m.shape[1]}", *numbers]


def _dimension(token, max_dim: int | None) -> int | None:
    """n for a ``V{n}`` token within 1..max_dim, else None."""
    match = _DIM_TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return None
    n = int(match.group(1))
    return n if max_dim is None or n <= max_dim else None


def parse_matrix_tokens(
    encoding: NumberEncoding, tokens: Sequence[str], max_dim: int | None = None
) -> np.ndarray | None:
    """The matrix written by ``tokens`` (exactly, nothing after it), or None if invalid."""
    if len(tokens) < 2:
        return None
    rows, cols = _dimension(tokens[0], max_dim), _dimension(tokens[1], max_dim)
    if rows is None or cols is None or rows * cols > len(tokens) - 2:
        return None
    values, position = [], 2
    for _ in range(rows * cols):
        got = encoding.parse(tokens, position)
        if got is None:
            return None
        value, position = got
        values.append(value)
    if position != len(tokens):
        return None
    return np.array(values, dtype=np.float64).reshape(rows, cols)


def _ids_as_tokens(vocab: Vocabulary, ids) -> list[str] | None:
    """Token strings of arbitrary (possibly garbage) ids, or None if any is not a valid id."""
    try:
        values = [operator.index(i) for i in ids]
    except (TypeError, ValueError, OverflowError):
        return None
    if any(not 0 <= i < len(vocab) for i in values):
        return None
    return [vocab.itos[i] for i in values]


def decode_matrix(encoding: NumberEncoding, vocab: Vocabulary, ids: Sequence[int]) -> np.ndarray | None:
    """The matrix that ids (no specials) write, or None when they do not write exactly one.

    Never raises: bad ids, foreign tokens, wrong counts, trailing tokens and dimensions beyond
    ``vocab.max_dim`` all give None.
    """
    tokens = _ids_as_tokens(vocab, ids)
    if tokens is None:
        return None
    return parse_matrix_tokens(encoding, tokens, max_dim=vocab.max_dim)


def sequence_text(vocab: Vocabulary, seq: Sequences, i: int) -> str:
    """Row i of a batch as text: its tokens, each ``<num>`` written as the value it stands for."""
    tokens = vocab.to_strings(seq.ids[i, : seq.lengths[i]].tolist())
    if seq.values is not None:
        tokens = [repr(float(seq.values[i, k])) if t == NUM_TOKEN else t for k, t in enumerate(tokens)]
    return " ".join(tokens)


def encode_matrices(encoding: NumberEncoding, vocab: Vocabulary, mats: np.ndarray) -> Sequences:
    """A batch of equal-shape matrices (B, r, c) -> Sequences of ``V{r} V{c}`` + entries row-major.

    Vectorised over the batch. Raises ValueError if an entry does not fit the encoding (FP15
    writes its overflow tokens instead) or a dimension exceeds ``vocab.max_dim``.
    """
    mats = np.asarray(mats, dtype=np.float64)
    if mats.ndim != 3:
        raise ValueError(f"expected a batch of matrices (B, rows, cols), got shape {mats.shape}")
    batch, rows, cols = mats.shape
    header = np.array([vocab.dim_id(rows), vocab.dim_id(cols)], dtype=np.int64)
    codes, lengths = encoding.encode(mats.reshape(-1))
    count = rows * cols
    keep = (codes >= 0).reshape(batch, count * encoding.width)
    body = vocab.table(encoding)[np.maximum(codes, 0)].reshape(batch, count * encoding.width)
    body_lengths = lengths.reshape(batch, count).sum(axis=1)
    if not keep.all():
        body = compact(body, keep, body_lengths, vocab.pad_id)
    ids = np.concatenate([np.broadcast_to(header, (batch, 2)), body], axis=1)
    values = None
    if isinstance(encoding, Continuous):  # one <num> per entry: its value beside it
        values = np.concatenate([np.zeros((batch, 2)), mats.reshape(batch, count)], axis=1)
    return Sequences(ids=ids, lengths=(body_lengths + 2).astype(np.int64), values=values)
