"""The numerical side of the check: steps, the noise level of the cost, and the per-element verdict.

Notation (per checked element, or per direction in directional mode):

* ``f0`` the cost at the unperturbed point; ``fp1, fm1`` at ``w + h, w - h``; ``fp2, fm2`` at
  ``w + h/2, w - h/2``.
* ``D1 = (fp1 - fm1) / (2h)`` and ``D2 = (fp2 - fm2) / h``: central differences, error ``~ h^2 f'''/6``.
* ``Richardson = D2 + (D2 - D1) / 3``: the h^2 terms cancel, error ``~ h^4``.  It is the numerical
  derivative we compare with.
* ``noise``: ``eps_f``, a bound on the round-off error of one cost evaluation, measured on the model
  itself (:func:`noise_level`).
* ``bound = |D1 - D2| / 3 + 3 eps_f / h + 64 u (|a| + |n|)``: the truncation error of ``D2`` (which
  bounds that of the Richardson value, several orders of magnitude smaller), plus the worst-case
  round-off of the Richardson combination, plus round-off in the analytic value itself.
* An element *fails* when ``|a - n| > safety * bound``; the default ``safety = 10``.
* A failing element is a *kink* (non-differentiable inside ``[w - h, w + h]``) when the five values
  are not those of a smooth function: the fourth difference ``fm1 - 4 fm2 + 6 f0 - 4 fp2 + fp1``
  (``~ h^4 f''''`` if smooth) is well above its noise and comparable to the second difference
  ``fp1 - 2 f0 + fm1`` -- for a kink both are ``~ |jump| h``.  Kinks are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np

#: unit round-off of float64
U64 = float(np.finfo(np.float64).eps) / 2

OK, FAIL, KINK = 0, 1, 2


def exact_steps(w: np.ndarray, eps: float) -> np.ndarray:
    """Steps ``h = eps * max(|w|, 1)``, adjusted so that ``w + h`` and ``w + h/2`` are exact.

    ``h`` is rounded to a power-of-two multiple of the spacing at ``w`` by ``(w + h) - w``; halving a
    float is exact, so both probes move ``w`` by exactly the step divided by.
    """
    raw = eps * np.maximum(np.abs(w), 1.0)
    h = (w + raw) - w
    return np.where(h > 0, h, raw)


def noise_level(values: np.ndarray) -> float:
    """Estimate the standard deviation of the round-off noise in equally spaced cost values.

    A simplified version of Moré & Wild's ECnoise: along a line with a tiny spacing the smooth
    part of the cost contributes almost nothing to high-order differences, which then hold only
    noise; for white noise of deviation s, ``mean(diff(f, k)**2) = s^2 (2k)! / (k!)^2``.  The
    median over orders 3..6 is returned.
    """
    values = np.asarray(values, dtype=np.float64)
    levels = []
    diff = values
    for k in range(1, min(len(values) - 1, 6) + 1):
        diff = np.diff(diff)
        if k >= 3:
            gamma = factorial(k) ** 2 / factorial(2 * k)
            levels.append(float(np.sqrt(gamma * np.mean(diff * diff))))
    return float(np.median(levels)) if levels else 0.0


@dataclass
class Verdict:
    """Per-element results of :func:`judge`; arrays of one shape."""

    numerical: np.ndarray
    error: np.ndarray
    bound: np.ndarray
    status: np.ndarray  # OK, FAIL or KINK


def judge(
    analytic: np.ndarray,
    f0: float,
    fp1: np.ndarray,
    fm1: np.ndarray,
    fp2: np.ndarray,
    fm2: np.ndarray,
    h: np.ndarray,
    eps_f: float,
    safety: float,
) -> Verdict:
    """Compare analytic derivatives with the Richardson value, element by element (see module doc)."""
    D1 = (fp1 - fm1) / (2 * h)
    D2 = (fp2 - fm2) / h
    numerical = D2 + (D2 - D1) / 3
    error = np.abs(analytic - numerical)
    bound = np.abs(D1 - D2) / 3 + 3 * eps_f / h + 64 * U64 * (np.abs(analytic) + np.abs(numerical))
    status = np.where(error > safety * bound, FAIL, OK)
    if np.any(status == FAIL):
        second = fp1 - 2 * f0 + fm1
        fourth = fm1 - 4 * fm2 + 6 * f0 - 4 * fp2 + fp1
        kink = (np.abs(fourth) > safety * 16 * eps_f) & (np.abs(fourth) > 0.1 * np.abs(second))
        # a jump in the slope also shows as one-sided slopes that disagree at both step sizes
        status = np.where((status == FAIL) & kink, KINK, status)
    return Verdict(numerical, error, bound, status)
