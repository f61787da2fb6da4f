"""Telling a cost, or a layer's output, computed below float64 from the values the check already has.

A number computed in float64 is exactly a float32 number (its 52-bit fraction fits in 23 bits) about once
in ``2**29 = 5e8`` values, a float16 number about once in ``2**42``; a value computed in float32 and
returned as a float64 always is.  So a cost that is a float32 number at every evaluation the check makes
(the perturbed ones included) is computed in float32, and a layer whose float64 output holds only float32
numbers computes in float32 -- except where a value is *short*, which float64 arithmetic gives as often
as float32's: 0, a whole number (a count, integer data), a dyadic fraction of few bits (0.375, a mean of
integers over 4).  Those say nothing and are left out (:func:`informative`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .numerics import noise_level, robust_noise_level

__all__ = ["LOWER", "STIR", "CostTally", "array_precision", "coarse_eps", "coarse_noise", "informative", "odds",
           "shows_float64", "unit_round_off", "value_precision"]

#: the precisions below float64 looked for, narrowest first
LOWER = (np.dtype(np.float16), np.dtype(np.float32))
#: a value of at most this many significant bits is short: float64 gives it as readily as float32 does
SHORT_BITS = 8
#: elements of an array looked at (all of a float32 computation's are float32 numbers: a part shows it)
SAMPLE = 4096
#: distinct informative cost values that must all be float32 numbers for the cost to be called float32;
#: or, when the cost never changes at the check's steps (a float16 cost), this many evaluations of it
DISTINCT, FLAT = 3, 16
#: the spacings of that precision's numbers a flat cost is moved by per step when the checker stirs it (see
#: :meth:`CostTally.flat`): ~48.8, not a whole number, so that a float64 cost linear along the move does not
#: land on that precision's numbers
STIR = 37 * (1 + 1 / math.pi)


def unit_round_off(dtype: np.dtype) -> float:
    """Half the spacing of ``dtype``'s numbers at 1: 2**-24 for float32, 2**-11 for float16."""
    return float(np.finfo(dtype).eps) / 2


def odds(dtype: np.dtype) -> str:
    """How rarely a float64 result is a ``dtype`` number by chance, in words: ``"once in 5e8 values"``."""
    mantissa, exponent = f"{2.0 ** (52 - np.finfo(dtype).nmant):.0e}".split("e")
    return f"once in {mantissa}e{int(exponent)} values"


def coarse_eps(dtype: np.dtype) -> float:
    """The relative step suited to a cost computed in ``dtype``: about ``u**(1/3)`` (4.3e-3 for float32, 0.087
    for float16), where a central difference's round-off ``u/h`` and its truncation ``h**2`` meet; times 1.1,
    not a power of two, so that a float64 cost at ``w +- h`` on short numbers (a toy input, a dead ReLU) shows
    float64 bits and is not taken for a float32 one."""
    return 1.1 * unit_round_off(dtype) ** (1 / 3)


def coarse_noise(values: np.ndarray) -> float:
    """The round-off deviation of cost values at equally spaced points (at least 7) on the coarse step: the
    larger of :func:`~.numerics.noise_level` and :func:`~.numerics.robust_noise_level`, whatever their ratio.
    A lower precision's staircase (flat, then a jump) is what the outlier-robust estimate leaves out as a kink
    crossed (its median second difference is 0), and a bound too tight would fail right gradients; a kink
    crossed only loosens it."""
    if len(values) < 7:
        return 0.0
    return max(noise_level(values), robust_noise_level(values))


def _significant_bits(v: np.ndarray) -> np.ndarray:
    """The number of bits from the first to the last 1 of each finite non-zero float64 value's significand."""
    m, _ = np.frexp(np.abs(v))
    significand = (m * 2.0 ** 53).astype(np.int64)  # (exact: m is in [0.5, 1))
    _, lowest = np.frexp((significand & -significand).astype(np.float64))  # (2**k: exponent k + 1)
    return 53 - (lowest - 1)


def informative(v: np.ndarray) -> np.ndarray:
    """Where a float64 value can tell float64 arithmetic from a lower precision's: finite, not 0, not a
    whole number, and of more than ``SHORT_BITS`` significant bits."""
    v = np.asarray(v, dtype=np.float64)
    out = np.isfinite(v) & (v != 0)
    out[out] = (v[out] != np.round(v[out])) & (_significant_bits(v[out]) > SHORT_BITS)
    return out


def _fits(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Whether each (finite) value is exactly a ``dtype`` number."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return v.astype(dtype).astype(np.float64) == v


def value_precision(v: np.ndarray) -> tuple[np.dtype | None, bool]:
    """The narrowest of :data:`LOWER` whose numbers all the informative values of the float64 array ``v`` are
    (None if one is not a float32 number, or if none is informative), and whether some value is informative
    and not a float32 number (a float64 computation shows)."""
    flat = np.asarray(v, dtype=np.float64).reshape(-1)[:SAMPLE]
    values = flat[informative(flat)]
    if values.size == 0:
        return None, False
    for dtype in LOWER:
        if bool(np.all(_fits(values, dtype))):
            return dtype, False
    return None, True


def array_precision(value: Any) -> np.dtype | None:
    """The precision below float64 a layer's output (an array, or a tuple of them) was computed in, or None:
    a float array's own dtype when it is float16 or float32; for a float64 array, :func:`value_precision`.
    For several arrays, the first one's that is below float64."""
    for a in value if type(value) is tuple else (value,):
        if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
            continue
        if a.dtype.itemsize < 8:
            return a.dtype
        if a.dtype == np.float64:
            found, _ = value_precision(a)
            if found is not None:
                return found
    return None


def shows_float64(value: Any, dtype: np.dtype) -> bool:
    """Whether a layer's input or parameter (an array, a tuple of them) holds an informative value that is not
    a ``dtype`` number: whatever computed it worked in a finer precision than ``dtype``."""
    for a in value if type(value) is tuple else (value,):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype.itemsize > dtype.itemsize:
            flat = np.asarray(a, dtype=np.float64).reshape(-1)[:SAMPLE]
            values = flat[informative(flat)]
            if values.size and not bool(np.all(_fits(values, dtype))):
                return True
    return False


class CostTally:
    """What the cost values a check evaluates say about the precision the cost is computed in, gathered one
    value at a time (a few operations each: the cost's own evaluation is far dearer)."""

    def __init__(self) -> None:
        self.informative = 0  # informative values seen
        self.distinct: set[float] = set()  # (at most DISTINCT of them)
        # whether every informative value so far is a number of that precision
        self.fits = {dtype: True for dtype in LOWER}
        self.values: set[float] = set()  # the first finite values, up to DISTINCT of them
        self.count = 0
        #: set by the checker once it has moved a flat cost far enough to show it coarse (see :meth:`flat`)
        self.stirred = False

    def add(self, v: float) -> None:
        if not math.isfinite(v):
            return
        self.count += 1
        if len(self.values) < DISTINCT:
            self.values.add(v)
        if not self.fits[LOWER[-1]] or v == 0 or v == round(v):
            return
        m, _ = math.frexp(abs(v))
        significand = int(m * 2 ** 53)
        if significand.bit_length() - (significand & -significand).bit_length() + 1 <= SHORT_BITS:
            return
        self.informative += 1
        if len(self.distinct) < DISTINCT:
            self.distinct.add(v)
        for dtype in LOWER:
            if self.fits[dtype] and not _fits(np.array([v]), dtype)[0]:
                self.fits[dtype] = False

    def precision(self) -> np.dtype | None:
        """float16 or float32 when every informative cost value was a number of it, at least ``DISTINCT``
        different ones; else None."""
        if len(self.distinct) >= DISTINCT:
            return next((dtype for dtype in LOWER if self.fits[dtype]), None)
        return None

    def flat(self) -> np.dtype | None:
        """The precision of a cost that may be too coarse to move at the check's steps (a float16 loss): it took
        at most two values in ``FLAT`` evaluations, each such a number and one not 0 nor whole (a float16 cost
        near 1 may be short: 0.7890625). A candidate only, for the checker to move the cost further
        (:attr:`stirred`) and :meth:`precision` to judge; None when there is none, or once stirred."""
        values = np.array(sorted(self.values))
        if self.stirred or self.count < FLAT or len(values) >= DISTINCT or not np.any(values != np.round(values)) \
                or not self.fits[LOWER[-1]]:
            return None
        return next((dtype for dtype in LOWER if self.fits[dtype] and bool(np.all(_fits(values, dtype)))), None)
