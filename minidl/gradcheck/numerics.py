"""The numerical side of the check: steps, the noise level of the cost, and the per-element verdict.

Notation (per checked element, or per random direction in directional mode):

* ``a`` the analytic derivative; ``f0`` the cost at the unperturbed point; ``fp1, fm1`` the cost at
  ``w + h, w - h``; ``fp2, fm2`` at ``w + h/2, w - h/2``.
* ``e1 = (fp1 - fm1)/(2h) - a`` and ``e2 = (fp2 - fm2)/h - a``: how far the two central differences
  are from the analytic value.  (The probes' actual displacements are used, so a probe that is not
  exactly representable costs no accuracy.)  For a right ``a`` and a smooth cost, ``e1 ~ h^2 f'''/6``
  and ``e2 ~ e1/4``: the truncation error of a central difference.
* ``e = e2 + (e2 - e1)/3``: the error of the Richardson extrapolation (h^2 terms cancel), the
  number we test.  The numerical derivative reported is ``a + e``.
* ``eps_f``: a bound on the round-off error of one cost evaluation, *measured* on the model
  (:func:`probe_noise`: a high-order estimate, checked against an outlier-robust one so that a
  kink crossed by the probe cannot inflate it).
* ``bound = |e1 - e2|/3 + 3 eps_f/h + 64 u (|a| + |a + e|)``: the estimated truncation error of the
  h/2 difference (which bounds that of the Richardson value, orders of magnitude smaller), plus the
  worst-case round-off of the Richardson combination, plus round-off in the analytic value itself.
* An element *fails* when ``|e| > safety * bound`` (default ``safety = 10``).
* An element is a *kink* (the cost is not differentiable inside ``[w - h, w + h]``) when its
  five values are not those of a smooth function: the fourth difference
  ``fm1 - 4 fm2 + 6 f0 - 4 fp2 + fp1`` (``~ h^4 f''''/16`` if smooth, ``~ |slope jump| h`` at a kink)
  is well above its noise and at least a tenth of the second difference ``fp1 - 2 f0 + fm1``.
  Kinks are skipped and counted, never failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np

#: unit round-off of float64
U64 = float(np.finfo(np.float64).eps) / 2

OK, FAIL, KINK = 0, 1, 2
#: an element (or direction) that agrees on the step suited to a cost computed below float64: not checked at
#: float64 accuracy (see :mod:`.precision`), counted apart from both the checked and the kink-skipped ones
COARSE = 3


def exact_steps(w: np.ndarray, eps: float, floor: float = 1.0) -> np.ndarray:
    """Steps ``h = eps * max(|w|, floor)``, rounded so that ``w + h`` is exactly representable
    (``floor=0``: the relative step ``eps * |w|``)."""
    raw = eps * np.maximum(np.abs(w), floor)
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


def robust_noise_level(values: np.ndarray) -> float:
    """A noise estimate that a few outliers cannot move: the median absolute deviation of the second
    differences (each ``~ N(c, 6 s^2)`` for white noise of deviation ``s`` on a smooth trend, ``c``
    the trend's constant second difference), scaled to ``s``.

    A kink crossed between two of the equally spaced points bends the line once: it shows in at
    most two second differences, whatever its slope jump, so with ``n`` points up to ``(n - 3) / 4``
    kinks leave the median untouched.
    """
    d2 = np.diff(np.asarray(values, dtype=np.float64), 2)
    if d2.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / np.sqrt(6.0)


#: a probe whose high-order estimate exceeds this many times the robust one is not round-off-like
#: (on correct models the ratio stayed within 0.36 .. 2.3 over 420 tensors)
OUTLIER_RATIO = 4.0


def probe_noise(values: np.ndarray, floor: float) -> tuple[float, bool]:
    """The round-off deviation of cost values measured at equally spaced points along a line.

    Returns ``(s, crossed)``.  Normally ``s = max(high-order estimate, robust estimate)``.  When the
    high-order estimate (:func:`noise_level`) is more than ``OUTLIER_RATIO`` times the robust one
    (:func:`robust_noise_level`, or ``floor``, the deviation below which round-off is quantised),
    the probe crossed a kink -- some element sat within the probe's span of a point where the cost
    is not differentiable -- and only the robust estimate is used, doubled: one element near a kink
    must not loosen the bound for the whole tensor (those elements are handled per element by the
    kink tests).
    """
    high = noise_level(values)
    robust = robust_noise_level(values)
    if high > OUTLIER_RATIO * max(robust, floor):
        return 2.0 * robust, True
    return max(high, robust), False


def column_noise(values: np.ndarray) -> np.ndarray:
    """Per column of ``values`` (points along axis 0, equally spaced on a tiny line), the deviation of
    its round-off noise, as :func:`noise_level` for each column; 0 where the column is not
    round-off-like (its high-order estimate above ``OUTLIER_RATIO`` times the outlier-robust one: a
    jump, a kink crossed on the line), so that a jump is never taken for noise."""
    values = np.asarray(values, dtype=np.float64)
    levels = []
    diff = values
    for k in range(1, min(len(values) - 1, 6) + 1):
        diff = np.diff(diff, axis=0)
        if k >= 3:
            gamma = factorial(k) ** 2 / factorial(2 * k)
            levels.append(np.sqrt(gamma * np.mean(diff * diff, axis=0)))
    if not levels:
        return np.zeros(values.shape[1:])
    high = np.median(np.array(levels), axis=0)
    d2 = np.diff(values, 2, axis=0)
    robust = 1.4826 * np.median(np.abs(d2 - np.median(d2, axis=0)), axis=0) / np.sqrt(6.0)
    round_off = np.isfinite(high) & (high <= OUTLIER_RATIO * np.maximum(robust, np.finfo(np.float64).tiny))
    return np.where(round_off, np.maximum(high, robust), 0.0)


@dataclass
class Verdict:
    """Per-element results; arrays of one shape."""

    numerical: np.ndarray
    error: np.ndarray
    bound: np.ndarray
    status: np.ndarray  # OK, FAIL or KINK
    truncation: np.ndarray | None = None  # |e1 - e2| / 3: the truncation error estimate at h/2


def richardson(a: np.ndarray, e1: np.ndarray, e2: np.ndarray, h: np.ndarray, eps_f: float,
               safety: float) -> Verdict:
    """Verdict from the errors ``e1`` (step h) and ``e2`` (step h/2) of the two central differences."""
    e = e2 + (e2 - e1) / 3
    numerical = a + e
    truncation = np.abs(e1 - e2) / 3
    bound = truncation + 3 * eps_f / h + 64 * U64 * (np.abs(a) + np.abs(numerical))
    error = np.abs(e)
    # agreement must be shown: a NaN or inf error or bound (a non-finite analytic value, a cost that is
    # not finite at the probes) fails rather than slipping through a comparison that is False
    status = np.where(np.isfinite(error) & np.isfinite(bound) & (error <= safety * bound), OK, FAIL)
    return Verdict(numerical, error, bound, status, truncation)


def kinks(f0: float, fp1: np.ndarray, fm1: np.ndarray, fp2: np.ndarray, fm2: np.ndarray, eps_f: float,
          safety: float) -> np.ndarray:
    """True where the five cost values show a non-differentiable point inside ``[w - h, w + h]``."""
    second = fp1 - 2 * f0 + fm1
    fourth = (fm1 + fp1) - 4 * (fm2 + fp2) + 6 * f0
    return (np.abs(fourth) > safety * 16 * eps_f) & (np.abs(fourth) > 0.1 * np.abs(second))


def judge(a: np.ndarray, f0: float, fp1: np.ndarray, fm1: np.ndarray, fp2: np.ndarray, fm2: np.ndarray,
          d1: np.ndarray, d2: np.ndarray, h: np.ndarray, eps_f: float, safety: float) -> Verdict:
    """Per-element verdict; ``d1``/``d2`` are the actual probe spans (``w+h - (w-h)`` etc.).

    An element whose five values show a kink is ``KINK`` whatever its error: across a kink the
    Richardson bound is meaningless (it may be inflated enough to hide a bug).
    """
    e1 = (fp1 - fm1) / d1 - a
    e2 = (fp2 - fm2) / d2 - a
    verdict = richardson(a, e1, e2, h, eps_f, safety)
    kink = kinks(f0, fp1, fm1, fp2, fm2, eps_f, safety)
    verdict.status = np.where(kink, KINK, verdict.status)
    return verdict
