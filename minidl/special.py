"""``erf``, ``erfc`` and the normal CDF/PDF, vectorised, to double precision, with NumPy only.

NumPy has no ``erf``; the exact GELU needs one.  Two classical expansions, each used where it
converges fast, with fixed term counts (so the work per element is bounded and known):

* ``|x| < 2``: the Taylor series, summed by Horner's rule in ``z = x^2``::

      erf(x) = 2/sqrt(pi) * sum_{n>=0} (-1)^n x^(2n+1) / (n! (2n+1))

  truncated after 34 terms.  The terms alternate and shrink once n > x^2, so the remainder is
  below the first omitted term, ``2/sqrt(pi) * 2^69 / (34! * 69) < 3e-20`` at |x| = 2, far under
  one ulp of erf(x) there.  The sum of the terms' magnitudes is at most ~12 times erf(x) (at
  |x| = 2), so the alternation costs a few ulp at worst (measured: <= 5 ulp).

* ``|x| >= 2``: Laplace's continued fraction for the complement::

      erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))

  evaluated bottom-up from depth 72; at x = 2 it has converged to < 2e-16 by depth 60, and it
  converges faster for larger x.  ``erf = 1 - erfc`` there (no cancellation: erfc < 0.005).

``exp(-x^2)`` is computed as ``exp(-h^2) * exp(-(x - h)(x + h))`` with ``h`` = x rounded to 1/16, so
``h^2`` is exact and the rounding of ``x^2`` (relative 1e-16 but *absolute* x^2 * 1e-16) does not
become a relative error of ``x^2 * 1e-16`` in erfc for large x.

Accuracy (tests/test_layers_activations.py checks it on dense grids against ``math.erf`` and ``math.erfc``):
erf to a few ulp everywhere (relative error < 1e-15); erfc to a few ulp for x >= 2 and x <= 0,
but for 0 < x < 2, where ``erfc = 1 - erf`` loses up to log10(1/erfc(2)) ~ 2.3 digits, only to
~3e-13 relative (PyTorch's GELU, computing ``1 + erf``, has the same loss there and more beyond).
Every function keeps the input's floating dtype (float32 in, float32 out); float16 is computed in
float32 and rounded once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import DTypeError

__all__ = ["erf", "erfc", "normal_cdf", "normal_pdf", "sigmoid"]

_TAYLOR_TERMS = 34
_CF_DEPTH = 72
_SWITCH = 2.0
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ONE_OVER_SQRT_PI = 1.0 / math.sqrt(math.pi)
#: Beyond this |x|, exp(-x^2) is 0 in every float type: inputs are clamped to it, so that x * 16
#: and x^2 cannot overflow (erf(1e38) was 0 * inf = NaN)
_CLAMP = 64.0
#: 2/sqrt(pi) * (-1)^n / (n! (2n+1)), the Taylor coefficients of erf in powers x^(2n+1)
_TAYLOR = [_TWO_OVER_SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(_TAYLOR_TERMS)]


def _float_array(x: object, who: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype.kind != "f":
        if array.dtype.kind in "iub":
            return array.astype(np.float64)
        raise DTypeError(f"{who}: expected real numbers, got dtype {array.dtype}")
    return array


def _exp_minus_square(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``exp(-scale * x^2)`` (scale 1 or 1/2) without the relative error ``x^2 * eps`` that
    rounding ``x*x`` would cause: with h = x rounded to 1/16, ``h^2 * scale`` is exact."""
    x = np.clip(x, -_CLAMP, _CLAMP)  # exp(-64^2 / 2) is 0 already; NaN stays NaN
    h = np.round(x * 16.0) * (1.0 / 16.0)
    return np.exp(-(h * h) * scale) * np.exp(-((x - h) * (x + h)) * scale)


def _erf_taylor(x: np.ndarray) -> np.ndarray:
    """erf(x) for |x| < 2 by the Taylor series (Horner in x^2)."""
    z = x * x
    p = np.full_like(x, _TAYLOR[-1])
    for coefficient in _TAYLOR[-2::-1]:
        p *= z
        p += coefficient
    return x * p


def _erfc_fraction(x: np.ndarray) -> np.ndarray:
    """erfc(x) for x >= 2 by Laplace's continued fraction."""
    f = x.copy()
    for k in range(_CF_DEPTH, 0, -1):
        f = x + (0.5 * k) / f
    return _ONE_OVER_SQRT_PI * _exp_minus_square(x) / f


def _in_float32(function: Any, x: np.ndarray) -> np.ndarray:
    """``function`` of a float16 ``x`` computed in float32 and rounded once: the series' terms add up to
    ~12 times erf, so summed in float16 they lost every digit near |x| = 2."""
    return np.asarray(function(x.astype(np.float32))).astype(x.dtype)


def erf(x: object) -> np.ndarray:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, element-wise (any shape)."""
    x = _float_array(x, "erf")
    if x.dtype.itemsize < 4:
        return _in_float32(erf, x)
    out = np.empty_like(x)
    a = np.abs(x)
    small = a < _SWITCH  # False for NaN
    out[small] = _erf_taylor(x[small])
    big = ~small & np.isfinite(a)
    out[big] = np.copysign(1.0 - _erfc_fraction(a[big]), x[big])
    out[np.isinf(x)] = np.sign(x[np.isinf(x)])
    out[np.isnan(x)] = np.nan
    return out


def erfc(x: object) -> np.ndarray:
    """The complementary error function ``1 - erf(x)``, accurate in its tail (erfc(30) ~ 2.6e-393 -> 0)."""
    x = _float_array(x, "erfc")
    if x.dtype.itemsize < 4:
        return _in_float32(erfc, x)
    out = np.empty_like(x)
    finite = np.isfinite(x)
    big = (x >= _SWITCH) & finite
    out[big] = _erfc_fraction(x[big])
    low = (x <= -_SWITCH) & finite
    out[low] = 2.0 - _erfc_fraction(-x[low])
    mid = ~(big | low) & finite
    out[mid] = 1.0 - _erf_taylor(x[mid])
    out[np.isposinf(x)] = 0.0
    out[np.isneginf(x)] = 2.0
    out[np.isnan(x)] = np.nan
    return out


def normal_cdf(x: object) -> np.ndarray:
    """``Phi(x) = P(Z <= x)`` for a standard normal Z, as ``erfc(-x / sqrt(2)) / 2`` (accurate tails)."""
    x = _float_array(x, "normal_cdf")
    if x.dtype.itemsize < 4:
        return _in_float32(normal_cdf, x)
    return 0.5 * erfc(x * (-1.0 / math.sqrt(2.0)))


def normal_pdf(x: object) -> np.ndarray:
    """``phi(x) = exp(-x^2 / 2) / sqrt(2 pi)``."""
    x = _float_array(x, "normal_pdf")
    if x.dtype.itemsize < 4:
        return _in_float32(normal_pdf, x)
    return (1.0 / math.sqrt(2.0 * math.pi)) * _exp_minus_square(x, 0.5)  # (inf is clamped: 0)


def sigmoid(x: object) -> np.ndarray:
    """``1 / (1 + exp(-x))`` from ``e = exp(-|x|)``, which never overflows: ``1 / (1 + e)`` for
    x >= 0 and ``e / (1 + e)`` for x < 0, both within a few ulp (the textbook form cancels for
    x < 0, and ``(1 + tanh(x/2)) / 2`` loses every digit below about -17 in float32)."""
    return _sigmoid(_float_array(x, "sigmoid"))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """:func:`sigmoid` of a floating array or scalar, unchecked."""
    e = np.exp(-np.abs(x))
    if not isinstance(e, np.ndarray):  # a 0-D input gives NumPy scalars
        return (e if x < 0 else 1) / (1 + e)
    y = np.maximum(e, x >= 0, dtype=e.dtype)  # the numerator: e where x < 0, 1 elsewhere (NaN kept)
    e += 1
    y /= e
    return y
