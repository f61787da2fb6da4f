"""Telling a cost, or a layer's output, computed below float64 from the values the check already has.

A number computed in float64 is exactly a float32 number (its 52-bit fraction fits in 23 bits) about once
in ``2**29 = 5e8`` values, a float16 number about once in ``2**42``; a value computed in float32 and
returned as a float64 always is.  So a cost that is a float32 number at every evaluation the check makes
(the perturbed ones included) is computed in float32, and a layer whose float64 output holds only float32
numbers computes in float32 -- except where a value is *short*, which float64 arithmetic gives as often
as float32's: 0, a whole number (a count, integer data), a dyadic fraction of few bits (0.375, a mean of
integers over 4).  Those say nothing and are left out (:func:`informative`).

The tensors such a cost touches are judged on a step suited to its precision (:class:`Coarse`,
:func:`coarse_verdict`), and the report says what was found (:func:`low_precision_words`); the checker finds
the layer, which tensors go through it, and moves a flat cost (it runs the model).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .numerics import COARSE, FAIL, OK, noise_level, robust_noise_level

__all__ = ["LOWER", "STIR", "Coarse", "CostTally", "LowLayer", "array_precision", "coarse_eps", "coarse_noise",
           "coarse_verdict", "float_arrays", "informative", "low_precision_words", "odds", "shows_float64",
           "unit_round_off", "value_precision"]

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


def _informative_values(a: np.ndarray) -> np.ndarray:
    """The informative values among the first ``SAMPLE`` elements of the array ``a``, in float64."""
    flat = np.asarray(a, dtype=np.float64).reshape(-1)[:SAMPLE]
    return flat[informative(flat)]


def float_arrays(value: Any) -> Iterator[np.ndarray]:
    """The float arrays of a layer's input, output or parameter: an array, or a tuple of them."""
    for a in value if type(value) is tuple else (value,):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            yield a


def value_precision(v: np.ndarray) -> np.dtype | None:
    """The narrowest of :data:`LOWER` whose numbers all the informative values of the float64 array ``v`` are;
    None if one is not a float32 number, or if none is informative."""
    values = _informative_values(v)
    if values.size == 0:
        return None
    return next((dtype for dtype in LOWER if bool(np.all(_fits(values, dtype)))), None)


def array_precision(value: Any) -> np.dtype | None:
    """The precision below float64 a layer's output (an array, or a tuple of them) was computed in, or None:
    a float array's own dtype when it is float16 or float32; for a float64 array, :func:`value_precision`.
    For several arrays, the first one's that is below float64."""
    for a in float_arrays(value):
        if a.dtype.itemsize < 8:
            return a.dtype
        if a.dtype == np.float64:
            found = value_precision(a)
            if found is not None:
                return found
    return None


def shows_float64(value: Any, dtype: np.dtype) -> bool:
    """Whether a layer's input or parameter (an array, a tuple of them) holds an informative value that is not
    a ``dtype`` number: whatever computed it worked in a finer precision than ``dtype``."""
    for a in float_arrays(value):
        if a.dtype.itemsize > dtype.itemsize:
            values = _informative_values(a)
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
        # (once a value is no float32 number, as a float64 cost's first is, nothing more is looked at)
        if not self.fits[LOWER[-1]] or not informative(np.array([v]))[0]:
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


# ---------------------------------------------------------------------------------------------- judging, words


@dataclass
class Coarse:
    """How to judge a tensor whose cost is computed below float64: on a step suited to that precision, against
    the cost's round-off measured there; an element that agrees proves nothing at float64 accuracy and counts
    as not checked, one that disagrees is wrong whatever the precision."""

    dtype: np.dtype
    #: why, for the tensor's note: "the cost is computed in float32 (see the report's first note)"
    cause: str
    #: the loss computes in ``dtype`` (every cost value rounded to it), not a layer the tensor goes through
    in_cost: bool
    #: the relative step suited to ``dtype`` (at least the checker's ``eps``)
    eps: float


def _within(share: float) -> str:
    """How close to the tolerance the worst of the elements that agree came, ``share`` the largest error /
    tolerance among them: ``"within 37% of the tolerance at most"``, ``"within less than 1% of the tolerance"``
    (not "0%" for a share that rounds to it), or ``"exactly"`` for no error at all (said without parentheses)."""
    if share == 0:
        return "exactly"
    if share < 0.01:
        return "within less than 1% of the tolerance"
    return f"within {share:.0%} of the tolerance at most"


def swallowed_moves(coarse: Coarse, status: np.ndarray, analytic: np.ndarray, still: np.ndarray) -> np.ndarray:
    """Which failed elements (or directions) of a tensor judged for a layer computing below float64 (not for the
    loss's precision) did not move the cost at all (``still``: a numerical derivative of exactly 0, or every cost
    value along a direction that of the point) while backward's derivative is not 0: the layer's rounding
    swallowed that change (its input moved by less than the layer resolves), which proves nothing either way.
    A boolean mask, the shape of ``status``."""
    if coarse.in_cost:
        return np.zeros(status.shape, dtype=bool)
    return (status == FAIL) & still & (analytic != 0) & np.isfinite(analytic)


def coarse_verdict(coarse: Coarse, status: np.ndarray, error: np.ndarray, tolerance: np.ndarray, eps_f: float,
                   unit: str, swallowed: np.ndarray | None = None) -> str:
    """Elements (or directions) judged against a cost computed below float64 (``status``, ``error`` and
    ``tolerance`` one each; ``eps_f`` the cost's round-off; ``unit`` "elements" or "directions"): those that agree
    are set to ``COARSE`` (not checked at float64 accuracy: the agreement proves nothing finer), and so are those
    ``swallowed`` (a mask, see :func:`swallowed_moves`: the layer's rounding kept the cost from moving); those that
    fail stay failed, those at kinks skipped.  Returns the tensor's note saying so (its first)."""
    agree = status == OK
    lost = np.zeros(status.shape, dtype=bool) if swallowed is None else swallowed & (status == FAIL)
    status[lost] = COARSE
    n, k, bad, m = status.size, int(np.sum(agree)), int(np.sum(status == FAIL)), int(np.sum(lost))
    kinks_ = n - k - bad - m
    status[agree] = COARSE
    words = (f"{coarse.cause}, so this tensor could not be checked at float64 accuracy; judged on a step of "
             f"{coarse.eps:.1e} (suited to {coarse.dtype.name}) against the cost's round-off there ({eps_f:.1e} per "
             "value)")
    if k:
        with np.errstate(all="ignore"):
            share = float(np.max(error[agree] / tolerance[agree]))
        within = _within(share)
        words += (f", {k} of {n} {unit} agree with backward {within if share == 0 else f'({within})'}, which proves "
                  "nothing finer: they count as not checked")
    if m:
        words += (f"{';' if k else ','} {m} of {n} {unit} did not move the cost at all (a numerical derivative of "
                  f"exactly 0, backward's is not): the layer's {coarse.dtype.name} rounding swallowed their change, "
                  "which proves nothing either way: they count as not checked")
    if bad:
        words += (f"{';' if k or m else ','} {bad} of {n} {unit} disagree by more than that round-off explains: "
                  "backward is wrong there, whatever the precision")
    if kinks_:
        words += f"; {kinks_} are skipped at kinks"
    return words


class LowLayer(NamedTuple):
    """A layer that computes below float64, for the report's words."""

    label: str  # "layer '1' (LowTanh)"
    output: Any  # its output (an array, or a tuple of them) in the pass that found it
    dtype: np.dtype
    #: the tensors judged for it (it is the first such layer their change goes through)
    felt: tuple[str, ...] = ()
    #: the tensors that move its input by less than ``dtype`` resolves, and so not its output (their cost stays put)
    swallowed: tuple[str, ...] = ()
    #: those of them whose numerical derivatives are all 0: not checked (not flat, not failed), the layer blamed for it
    lost: tuple[str, ...] = ()
    #: those lost that backward gives 0 as well
    zero: tuple[str, ...] = ()


def _layers_compute(layers: Sequence[LowLayer]) -> str:
    """``"layer '1' (A) computes in float32"``, ``"layers '1' (A) and '3' (B) compute in float32"``, ``"layer '1'
    (A) computes in float16 and layer '3' (B) in float32"``."""
    if len(layers) == 1:
        return f"{layers[0].label} computes in {layers[0].dtype.name}"
    labels = [x.label for x in layers]
    if len({x.dtype for x in layers}) == 1:
        names = [labels[0], *(label.removeprefix("layer ") for label in labels[1:])]
        return f"layers {', '.join(names[:-1])} and {names[-1]} compute in {layers[0].dtype.name}"
    first = layers[0]
    parts = [f"{first.label} computes in {first.dtype.name}", *(f"{x.label} in {x.dtype.name}" for x in layers[1:])]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def low_precision_words(in_cost: np.dtype | None, loss_name: str, layers: Sequence[LowLayer], f0: float,
                        felt: list[str]) -> tuple[str | None, list[str]]:
    """The report's headline words and first notes for a cost computed below float64: by the loss (``in_cost``,
    ``loss_name`` its class's name), by layers (``layers``, in the order of the forward); ``f0`` the cost at the
    point, ``felt`` the tensors judged for the loss's precision. ``(None, [])`` when there is none. A note for
    each layer (the loss's precision: for the first only), those some tensor was judged for (or swallowed by)
    first; no headline (notes only) when no checked tensor was judged for any."""
    judged = ("each tensor it touches{} ({}) was judged on a step suited to {} against the cost's round-off "
              "measured there: an element that agrees proves nothing at float64 accuracy and counts as not "
              "checked; one that disagrees is wrong whatever the precision")
    headline, notes = None, []
    if in_cost is not None:
        d = in_cost.name
        spacing = float(np.spacing(np.asarray(abs(f0)).astype(in_cost))) if math.isfinite(f0) else math.nan
        headline = f"the cost is computed in {d}, not float64, so the gradients could not be checked at " \
                   "float64 accuracy (see the first note)"
        notes.append(
            f"the cost is computed in {d}: every value the check evaluated (leaving out 0, whole numbers and "
            f"short fractions) is exactly a {d} number, which a float64 result is about {odds(in_cost)}: the loss "
            f"({loss_name}) computes in {d} (an astype(np.{d}), np.{d}(...), a {d} constant) and returns the value "
            f"as a float. The cost then moves in steps of {d}'s resolution ({spacing:.1e} at {f0:.4g}), far "
            "coarser than the float64 differences the check takes: right gradients look wrong, flat, or like kinks "
            "and a cost curving too fast; " + judged.format("", ", ".join(felt) or "none", d)
            + ". Make the loss compute in y_pred's dtype (float64 here)")
    named = [x for x in layers if in_cost is None and (x.felt or x.swallowed)] or list(layers[:1])
    named += [x for x in layers if in_cost is None and x not in named]  # (after them: no tensor was judged for it)
    blamed = [x for x in named if in_cost is None and (x.felt or x.lost)]
    if blamed:
        one = len(blamed) == 1
        headline = f"{_layers_compute(blamed)}, not float64, so the gradients through {'it' if one else 'them'} " \
                   f"could not be checked at float64 accuracy (see the first note{'' if one else 's'})"
    for layer in named:
        d = layer.dtype.name
        y = layer.output
        out = y if type(y) is not tuple else next(a for a in y if array_precision(a) is not None)
        what = (f"is an array of {d}, although its input and parameters are float64 (a dtype of its own, an "
                "attribute such as self.dtype that astype does not convert?)" if out.dtype != np.float64 else
                f"is float64 but holds only {d} numbers, from an input and parameters that are not such numbers, "
                f"which a float64 computation gives about {odds(layer.dtype)} (an astype(np.{d}) inside its forward, "
                f"a {d} constant or attribute)")
        words = (f"{layer.label} computes in {d}: its output {what}. The cost then moves in {d}'s steps as the "
                 "tensors before it move, and right gradients look wrong, or like kinks and a cost curving too fast")
        if in_cost is not None:
            words += " (the cost's own precision, above, was what the tensors were judged for)"
        elif layer.felt:
            words += "; " + judged.format(" first of the layers computing below float64" if len(layers) > 1 else "",
                                          ", ".join(layer.felt), d)
        elif not layer.swallowed and len(layers) == 1:
            words += ("; no checked tensor's cost showed it (the cost depends on none through the layer's "
                      "output), so none was judged for it")
        elif not layer.swallowed:
            words += ("; no checked tensor was judged for it (none moves the cost through its output, or each that "
                      "does went through an earlier such layer first)")
        if layer.swallowed and in_cost is None:
            one = len(layer.swallowed) == 1
            words += (f"; {'the tensor' if one else 'the tensors'} {', '.join(layer.swallowed)} "
                      f"move{'s' if one else ''} its input by less than {d} resolves, so its output, and the cost, "
                      f"did not move with {'it' if one else 'them'} at the check's steps: a numerical derivative of 0 "
                      f"there is {d}'s rounding, not a forward that ignores the tensor")
            zero = [name for name in layer.lost if name in layer.zero]
            other = [name for name in layer.lost if name not in layer.zero]
            if zero or other:
                words += " (" + "; ".join(
                    ([f"{', '.join(zero)}: backward gives 0 as well, which was not tested: not checked, not flat"]
                     if zero else [])
                    + ([f"{', '.join(other)}: backward's non-zero gradient was not tested: not checked, not failed"]
                       if other else [])) + ")"
        notes.append(words + ". Make the layer compute in its input's dtype")
    return headline, notes
