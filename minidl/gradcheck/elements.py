"""The per-element check: how :class:`.GradientChecker` decides, element by element, whether a gradient is right.

Each element ``w`` of the tensor is moved alone, the cost evaluated on both sides, and the central difference
compared with the analytic value ``a`` (notation of :mod:`.numerics`).  The step is ``h = eps * max(|w|, 1)``.
:meth:`ElementCheck.run` calls the stages below in this order.

**Stage A** moves every element by ``+-h/16`` (two evaluations).  At that step the truncation error of a central
difference is usually below round-off, so the element is accepted if the difference agrees with ``a`` within
``ACCEPT = 2`` times its round-off bound alone (``16 eps_f / h``, plus ``64 u (|a| + |a + e|)`` for the analytic
value's).  Nothing is assumed about the truncation error: it can only make an element fail stage A.  **Stage B**
takes the others: four evaluations at ``+-h`` and ``+-h/2``, the Richardson verdict with its truncation estimate,
and the kink test (an element whose cost is not smooth within the step is skipped, never failed).  Stage A's
difference is a third one: if it does not sit where the ``h^2`` scaling of the other two puts it, a kink lies in
between, and the element is judged again on a finer step (``h/16`` and ``h/32``).

**The relative step** ``eps * |w|``.  A step of at least ``eps`` is too large where the cost curves on a smaller
scale (a parameter or input far below 1 that the cost is steep in, a point near a kink).  An element with
``0 < |w| < 1`` is probed again on the relative step where the default one took the cost outside its domain
(NaN/inf), where stage B's truncation estimate is too large to prove anything (``CURVED``), or where it saw a
kink -- unless the smaller step would hide a kink from the kink test, or the kink sits at the point itself
(every step crosses it).  An element that still cannot be judged is skipped, as at a kink.  The other way round,
a failure at the default step is confirmed on the relative step: it is cleared only by an agreement within
``TIGHT`` of the slope, which no gradient off by more than that can reach.

**Cliffs.**  Where the cost changes by a finite amount within a span far below the step (a norm clamped at
``1e-8``), the secant grows as ``1/h`` and no normal step judges it; a failing element whose odd difference did
not shrink from ``h`` to ``h/16`` is probed on ever finer steps ``h / CLIFF_ZOOM**k`` (:class:`_CliffLevels`) and
judged on the largest where the cost is linear, or skipped if none resolves it.

**The analytic value's own round-off.**  A backward that cancels large terms carries more round-off than the
bound allows for.  Where an element still fails, that round-off is measured (``GradientChecker._analytic_noise``)
and credited, up to ``ANALYTIC_CAP`` of the tensor's largest gradient: a bug larger than it still fails.

**A large offset.**  The step ``eps * |w|`` grows with the element, but the cost may change on a scale far
below it (a batch norm of data at 1e6 with a spread of 1e-3: saturated at +-1e2).  An element with ``|w| > 1``
still failing after the stages above (the credit too) where the cost is not linear on its failing step (secants
at ``s`` and ``s/2`` apart: a failure where it is linear stands), or skipped at a kink within the step or at a
cliff, is judged again on the steps ``min(h, step) / OFFSET_ZOOM**k`` against its own round-off (measured on a
line of a few of its spacings, at most ``eps_f``), as at a cliff: on the largest step where the cost is linear
and the verdict proves something, or skipped as at a kink if none, down to that round-off and the element's
resolution (:meth:`ElementCheck.confirm_on_finer_steps`).

A cost computed below float64 (``coarse``, see :class:`.precision.Coarse`) is checked on its own step and
round-off, without the refinements for float64 (the relative step, the cliff search, the analytic round-off),
and an element that agrees there counts as not checked.  See ``docs/gradient-checker.md`` for the measurements
behind each rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import NonFiniteError
from .diagnosis import FLOAT32_WORDS, diagnose
from .numerics import FAIL, KINK, OK, U64, Verdict, exact_steps, judge, noise_level, robust_noise_level
from .precision import Coarse, coarse_verdict, swallowed_moves
from .program import Program
from .report import TensorResult

if TYPE_CHECKING:
    from .checker import _Tensor

    #: how the checker makes a tensor's result from per-element verdicts (``GradientChecker._result``): from
    #: the tensor, its shape, the verdicts, the analytic values, the steps, the mode, the flat positions and
    #: the multiple of the bound each element allowed
    MakeResult = Callable[[_Tensor, tuple[int, ...], Verdict, np.ndarray, np.ndarray, str, np.ndarray | None,
                           np.ndarray | None], TensorResult]

__all__ = ["ACCEPT", "ANALYTIC_CAP", "CLIFF_ZOOM", "CONFIRM_STOOD", "CURVED", "OFFSET_ZOOM", "REL_FLOOR", "STAGE_A",
           "TIGHT", "ElementCheck", "is_step_artefact"]

#: stage A accepts an element whose h/16 difference is within ACCEPT x its round-off bound (tight
#: enough that stage A is as sensitive as the Richardson test of stage B, at a third of the cost)
ACCEPT = 2.0
#: stage A's step is h / STAGE_A
STAGE_A = 16
#: relative errors are measured against at least this fraction of the tensor's largest gradient
REL_FLOOR = 1e-3
#: a stage-B verdict whose truncation estimate exceeds this fraction of the slope (or of REL_FLOOR x the
#: tensor's largest gradient) proves too little: the element is judged again on a finer step
CURVED = 1e-4
#: a failure at the default step is cleared on the relative step only by an agreement within this fraction
#: of the slope: a real error disagrees by as much on any step, so no error above it can be cleared
TIGHT = 1e-4
#: the analytic gradient's measured round-off is credited to an element only while it stays below this
#: fraction of the tensor's largest gradient (round-off, not a jump or a layer that is noisy by design)
ANALYTIC_CAP = 1e-6
#: a cliff (the cost changes by a finite amount within a span far below the step) is looked into on steps
#: h / CLIFF_ZOOM**k, k = 1, 2, 4, 8, ... then bisected, for the largest step where the secant is linear,
#: as deep as the cost's round-off, the element's resolution and the float range allow (see _CliffLevels)
CLIFF_ZOOM = 32
#: a failure of an element with |w| > 1 at the default step eps * |w| is confirmed on the steps
#: h / OFFSET_ZOOM**k, k = 1, 2, ..., down to where round-off or the element's resolution ends them
#: (see ElementCheck.confirm_on_finer_steps): fine enough that a window in which the cost is linear and
#: the round-off small is not stepped over
OFFSET_ZOOM = 4
#: the element's own round-off is measured on ROUND_OFF_POINTS costs ROUND_OFF_ULPS of its spacing apart
ROUND_OFF_POINTS, ROUND_OFF_ULPS = 8, 16
#: the finer steps stop for a tensor once this many failures stood (the cost linear on their step): it fails on
#: them, and each confirmation costs 12 evaluations (its round-off line and two secants)
CONFIRM_STOOD = 4

# The probe slots: the rows of ElementCheck.f (the costs) and ElementCheck.span (the spans the probes made) that
# probe(rows, scale, slot) fills.  The cost at the + side is in f[slot], at the - side in f[slot + 1], the span
# in span[slot // 2]: at +-h (stage B), +-h/2 (stage B), +-h/16 (stage A) and +-h/32 (a kink judged again finer).
_AT_H, _AT_HALF, _AT_A, _AT_FINER = 0, 2, 4, 6
_SLOTS = _AT_FINER + 2  # the rows of f; span has _SLOTS // 2
assert _AT_HALF == _AT_H + 2  # (stage B's four costs are read as one slice, f[_AT_H:_AT_HALF + 2])


def _four_costs(view: Any, i: int, w: float, s: float, evaluate: Callable[[], float]) -> list[float]:
    """The costs with element ``i`` of ``view`` at ``w + s``, ``w - s``, ``w + s/2`` and ``w - s/2``, in that
    order; the element put back to ``w`` afterwards (also when an evaluation raises)."""
    costs: list[float] = []
    try:
        for step in (s, -s, s / 2, -s / 2):
            view[i] = w + step
            costs.append(evaluate())
    finally:
        view[i] = w
    return costs


def _curved(d1: float, d2: float, eps_f: float, s: float) -> bool:
    """Whether the secants ``d1`` on the step ``s`` and ``d2`` on ``s/2`` differ by more than 1% of the larger
    and the round-off ``eps_f`` allows: the cost is not linear on ``s`` (a saturated cost's secant doubles as the
    step halves)."""
    return abs(d1 - d2) > 0.01 * max(abs(d1), abs(d2)) + 8 * eps_f / s


class ElementCheck:
    """The per-element check of the elements ``index`` (flat positions) of one tensor: build it, then :meth:`run`.

    What it takes from :class:`.GradientChecker` is given to the constructor: the settings ``eps`` and ``safety``,
    ``analytic_noise`` (``GradientChecker._analytic_noise``: per tensor name, the analytic gradient's measured
    round-off per element, measured at its first call) and ``make_result`` (``GradientChecker._result``, see
    ``MakeResult``).  ``__init__`` sets up the point, the steps and ``floor``; each stage then needs only those
    and what the stages before it made.

    The arrays below are per checked element (length ``n = index.size``), shared by the stages, each of which
    fills or revises them for some ``rows`` (positions in ``index``).  The tensor's array is moved in place by
    the probes and restored before any stage returns.  ``coarse``: a cost computed below float64 (see the
    module's docstring).
    """

    # The verdict per element: stage A's for every element, revised by each later stage that judges it again.
    numerical: np.ndarray  #: the numerical derivative the verdict rests on (a central difference, or Richardson's)
    error: np.ndarray  #: ``|numerical - a|``
    bound: np.ndarray  #: the error's bound (round-off, plus stage B's truncation); it passes within ``factor`` x it
    status: np.ndarray  #: ``OK``, ``FAIL`` or ``KINK`` (skipped: not checked)
    truncation: np.ndarray  #: stage B's estimate of the truncation error (0: judged by stage A)
    steps: np.ndarray  #: the step each verdict was made on
    factor: np.ndarray  #: the multiple of the bound each verdict allowed
    # Stage A and stage B.
    accepted: np.ndarray  #: per element, whether stage A accepted it
    rest: np.ndarray  #: the elements stage A did not accept (positions in ``index``): stage B's
    # The relative step.
    h_rel: np.ndarray  #: the relative step ``eps * |w|`` per element
    eligible: np.ndarray  #: per element, whether the relative step may be taken (``0 < |w| < 1``, float64, ...)
    small: np.ndarray  #: per element, whether it is taken (``eligible``, a kink on it still seen, none at the point)
    curved: np.ndarray  #: the elements judged ok at the default step with a truncation too large to prove anything
    near_kink: np.ndarray  #: the elements at a kink at the default step
    relative: np.ndarray  #: the elements retried on the relative step: ``curved`` or ``near_kink``, and ``small``
    # For the notes.
    not_judged: np.ndarray  #: the elements skipped as still too curved
    lost_in_round_off: np.ndarray  #: the elements skipped as lost in round-off on the relative step
    cleared: np.ndarray  #: the failures at the default step cleared on the relative step
    zoomed: list[int]  #: the elements at a cliff judged on a finer step
    cliffs: list[int]  #: the elements at a cliff no step resolves: skipped
    finest: float  #: the finest step tried for ``cliffs`` (inf if none)
    zoom_evaluations: int  #: the cost evaluations the cliff search took
    offset_cleared: list[int]  #: the failures at the default step (|w| > 1) cleared on a finer step
    offset_failed: list[int]  #: those confirmed on a finer step
    offset_skipped: list[int]  #: those no finer step resolves: skipped
    offset_finest: float  #: the finest step the confirmation took
    offset_evaluations: int  #: the cost evaluations the confirmation took
    credited: np.ndarray  #: the failing elements judged right with the analytic value's measured round-off credited
    loose: np.ndarray  #: the ``shrunk`` elements judged ok on a verdict that proves nothing: failed

    def __init__(self, program: Program, t: _Tensor, f0: float, eps_f: float, index: np.ndarray,
                 coarse: Coarse | None, *, eps: float, safety: float,
                 analytic_noise: Callable[[], dict[str, np.ndarray]], make_result: MakeResult) -> None:
        self.program, self.t, self.f0, self.eps_f = program, t, f0, eps_f
        self.index, self.coarse, self.safety = index, coarse, safety
        self.analytic_noise, self.make_result = analytic_noise, make_result
        arr = self.arr = t.array
        self.shape = tuple(arr.shape)
        assert t.analytic is not None
        self.analytic_all = t.analytic.reshape(-1)
        self.a = self.analytic_all[index]
        # the floor of the slope's scale in the tests for a verdict proving too little (REL_FLOOR x the largest |a|)
        self.floor = REL_FLOOR * float(np.max(np.abs(self.analytic_all), initial=0.0))
        self.saved = arr.copy()
        self.view: Any = arr.reshape(-1) if arr.flags.c_contiguous else arr.flat
        self.w = self.saved.reshape(-1)[index]
        self.eps_rel = eps  # (the relative step's: it is taken only for a cost in float64)
        self.eps = eps if coarse is None else coarse.eps
        self.h = exact_steps(self.w, self.eps)
        n = self.n = index.size
        self.f = np.empty((_SLOTS, n))  # cost at +-h, +-h/2, +-h/16 (stage A), +-h/32 (kink retry): see _AT_H
        self.span = np.empty((_SLOTS // 2, n))
        self.stage = t.stage
        self.refusals: list[str] = []
        self.e_a, self.bound_a = np.empty(n), np.empty(n)  # stage A's error and bound
        # the elements whose probes took the cost outside its domain, and those of them on the relative step
        self.shrunk = self.outside = np.empty(0, dtype=np.intp)

    def run(self, batch: int | None, mode: str) -> TensorResult:
        """The stages in the order the algorithm takes them; the tensor's result with its notes and diagnosis."""
        self.probe_stages()
        self.stage_a_verdicts()
        if self.rest.size:  # (at a lower precision's round-off a kink is not judged on a finer step: skipped)
            self.stage_b(self.rest, refine=self.coarse is None)
        self.choose_relative()
        self.retry_relative()
        self.skip_kinks_at_point()
        self.skip_unjudged()
        self.confirm_failures()
        self.search_cliffs()
        self.credit_analytic_round_off()
        self.confirm_on_finer_steps()
        # (the cliff notes first: they count the elements failing at a cliff as judged there, before
        # fail_loose_shrunk fails more; the notes follow in the report's order)
        notes = self.cliff_notes()
        self.fail_loose_shrunk()
        return self.result(batch, mode, notes + self.step_notes())

    # ------------------------------------------------------------------ probing
    def evaluate(self) -> float:
        """The cost at the array as the probes moved it; NaN where a layer refused the point."""
        # a layer inside the model may refuse what a probe outside the domain made (a Dense seeing
        # the NaN of a log, a log refusing x <= 0 itself): the cost there is not finite, as when the
        # NaN reaches the cost itself (the point itself was evaluated without error)
        try:
            return self.program.evaluate(self.stage)
        except (ValueError, ArithmeticError) as error:
            if not isinstance(error, NonFiniteError) and not self.refusals:
                self.refusals.append(f"{type(error).__name__}: {error}")
            return math.nan

    def probe(self, rows: np.ndarray, scale: float, slot: int) -> None:
        """The cost at ``w +- scale * h`` for ``rows``, into ``f[slot]`` and ``f[slot + 1]``, and the spans
        the probes actually made into ``span[slot // 2]``."""
        view, evaluate = self.view, self.evaluate
        # plain Python floats in the loop: numpy scalars would cost more than the bookkeeping
        plus, minus, spans = [], [], []
        for i, wj, hj in zip(self.index[rows].tolist(), self.w[rows].tolist(), (self.h[rows] * scale).tolist(),
                             strict=True):
            up = wj + hj
            down = wj - hj
            view[i] = up
            plus.append(evaluate())
            view[i] = down
            minus.append(evaluate())
            view[i] = wj
            spans.append(up - down)
        self.f[slot, rows] = plus
        self.f[slot + 1, rows] = minus
        self.span[slot // 2, rows] = spans

    def stage_a(self, rows: np.ndarray) -> np.ndarray:
        """Stage A for ``rows``: the small step's difference; returns which of them it accepts."""
        a, f, e_a, bound_a = self.a, self.f, self.e_a, self.bound_a
        self.probe(rows, 1 / STAGE_A, _AT_A)
        e_a[rows] = (f[_AT_A, rows] - f[_AT_A + 1, rows]) / self.span[_AT_A // 2, rows] - a[rows]
        bound_a[rows] = STAGE_A * self.eps_f / self.h[rows] + 64 * U64 * (np.abs(a[rows]) + np.abs(a[rows] + e_a[rows]))
        return np.isfinite(e_a[rows]) & np.isfinite(bound_a[rows]) & (np.abs(e_a[rows]) <= ACCEPT * bound_a[rows])

    def probes_finite(self, rest: np.ndarray) -> np.ndarray:
        """Per element, whether every cost its probes saw was finite (stage B's only for ``rest``)."""
        f = self.f
        finite = np.isfinite(f[_AT_A]) & np.isfinite(f[_AT_A + 1])
        finite[rest] &= np.isfinite(f[_AT_H:_AT_HALF + 2, rest]).all(axis=0)  # (+-h and +-h/2)
        return finite

    def probe_stages(self) -> None:
        """Stage A's probes for every element, stage B's for those it does not accept, and both again on the
        relative step where a probe left the cost's domain (:meth:`retry_outside_domain`)."""
        try:
            # stage A: a small step where truncation is negligible; accept within the round-off bound
            self.accepted = self.stage_a(np.arange(self.n))
            self.rest = np.flatnonzero(~self.accepted)  # (NaN/inf never counts as agreement: judged below, failed)
            # stage B: Richardson on +-h, +-h/2 and the kink test, for the others only
            self.probe(self.rest, 1.0, _AT_H)
            self.probe(self.rest, 0.5, _AT_HALF)
            if math.isfinite(self.f0):
                self.retry_outside_domain()
        finally:
            np.copyto(self.arr, self.saved)

    def retry_outside_domain(self) -> None:
        """Stages A and B again on the relative step ``eps * |w|`` for the elements whose probes took the cost
        outside its domain (``outside``), where ``0 < |w| < 1`` (``shrunk``)."""
        w, accepted = self.w, self.accepted
        # a probe outside the function's domain (log, sqrt or 1/x of a value below the step,
        # which is at least eps absolute): again with the relative step eps * |w|, inside it
        # (where w is not 0), as for |w| >= 1
        outside = self.outside = np.flatnonzero(~self.probes_finite(self.rest))
        shrunk = self.shrunk = outside[(w[outside] != 0) & (np.abs(w[outside]) < 1)]
        if shrunk.size:
            self.h[shrunk] = exact_steps(w[shrunk], self.eps, floor=0.0)
            accepted[shrunk] = self.stage_a(shrunk)
            redo = shrunk[~accepted[shrunk]]
            self.probe(redo, 1.0, _AT_H)
            self.probe(redo, 0.5, _AT_HALF)
            self.rest = np.flatnonzero(~accepted)
            self.outside = np.flatnonzero(~self.probes_finite(self.rest))

    # ------------------------------------------------------------------ stage A's and stage B's verdicts
    def stage_a_verdicts(self) -> None:
        """Every element's verdict as stage A found it (accepted: ok); stage B then judges the rest again."""
        n = self.n
        self.numerical = self.a + self.e_a
        self.error = np.abs(self.e_a)
        self.bound = self.bound_a.copy()
        self.status = np.full(n, OK)
        self.truncation = np.zeros(n)  # stage B's estimate of the truncation error (0: judged by stage A)
        # what each element's verdict used, for the report: stage A's step and ACCEPT x bound, stage B's
        # step h and safety x bound, the kink retry's h/STAGE_A and safety x bound
        self.steps = self.h / STAGE_A
        self.factor = np.full(n, float(ACCEPT))

    def stage_b(self, rows: np.ndarray, refine: bool = True) -> None:
        """The verdict of ``rows`` from their probes at +-h, +-h/2 and +-h/16 (stage A's); a kink is
        judged again at h/16 and h/32 if ``refine``."""
        a, f, span, h, eps_f = self.a, self.f, self.span, self.h, self.eps_f
        self.steps[rows], self.factor[rows] = h[rows], self.safety
        v = judge(a[rows], self.f0, f[_AT_H, rows], f[_AT_H + 1, rows], f[_AT_HALF, rows], f[_AT_HALF + 1, rows],
                  span[_AT_H // 2, rows], span[_AT_HALF // 2, rows], h[rows], eps_f, self.safety)
        # smooth means the three central differences (h, h/2, h/16) agree with h^2 scaling: the h/16
        # one must sit within the bound of the Richardson value; if not, a kink lies in between
        assert v.truncation is not None
        # if smooth, |e_a - e_R| ~ T (2/STAGE_A)^2, T the truncation at h/2; allow 4x that
        expected = (v.truncation * (16 / STAGE_A**2) + (STAGE_A + 4) * eps_f / h[rows]
                    + 64 * U64 * np.abs(a[rows]))
        jumpy = np.abs(self.e_a[rows] - (v.numerical - a[rows])) > self.safety * expected
        v.status = np.where(jumpy, KINK, v.status)
        self.numerical[rows], self.error[rows], self.bound[rows], self.status[rows] = \
            v.numerical, v.error, v.bound, v.status
        self.truncation[rows] = v.truncation
        # a kink within +-h may still be outside +-h/16: judge those again at the finer scale
        again = rows[v.status == KINK]
        if again.size and refine:
            self.finer(again)

    def finer(self, rows: np.ndarray) -> None:
        """Judge ``rows`` again at h/16 (stage A's probes) and h/32."""
        f, span, h = self.f, self.span, self.h
        try:
            self.probe(rows, 1 / (2 * STAGE_A), _AT_FINER)
        finally:
            np.copyto(self.arr, self.saved)
        v = judge(self.a[rows], self.f0, f[_AT_A, rows], f[_AT_A + 1, rows], f[_AT_FINER, rows],
                  f[_AT_FINER + 1, rows], span[_AT_A // 2, rows], span[_AT_FINER // 2, rows], h[rows] / STAGE_A,
                  self.eps_f, self.safety)
        assert v.truncation is not None
        self.numerical[rows], self.error[rows], self.bound[rows], self.status[rows] = \
            v.numerical, v.error, v.bound, v.status
        self.truncation[rows] = v.truncation
        self.steps[rows], self.factor[rows] = h[rows] / STAGE_A, self.safety

    def too_curved(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows``, judged ok, have a truncation estimate (with it the bound) so large next to
        the slope that the verdict proves little: the step is too large for the cost's curvature."""
        scale = np.maximum(np.maximum(np.abs(self.a[rows]), np.abs(self.numerical[rows])), self.floor)
        return (self.status[rows] == OK) & (self.truncation[rows] > CURVED * scale)

    # ------------------------------------------------------------------ the relative step
    def choose_relative(self) -> None:
        """The elements judged again on the relative step ``eps * |w|`` (``relative``): too curved or at a kink
        at the default step, ``0 < |w| < 1``, and the kink tests still able to see a kink on that step."""
        f, f0, h, rest, status = self.f, self.f0, self.h, self.rest, self.status
        w, eps_f, coarse = self.w, self.eps_f, self.coarse
        # Steps of at least eps (absolute) are too large where the cost curves on a smaller scale (a
        # parameter or input far below 1 that the cost is steep in, a point near a kink): judged again
        # with the relative step eps * |w|, and at h/16 where w is 0 or at least 1.
        # (none of this for a cost computed below float64: its round-off, not the step, limits the verdict)
        curved = self.curved = rest[self.too_curved(rest)] if coarse is None else rest[:0]
        near_kink = self.near_kink = rest[status[rest] == KINK] if coarse is None else rest[:0]
        h_rel = self.h_rel = exact_steps(w, self.eps_rel, floor=0.0)
        eligible = (w != 0) & (np.abs(w) < 1) & (h_rel >= np.finfo(np.float64).tiny)  # (a subnormal step is none)
        eligible &= coarse is None
        eligible[self.shrunk] = False  # (already on the relative step)
        self.eligible = eligible
        small = self.small = eligible.copy()
        # A kink's signature, the fourth difference (~ slope jump x step), shrinks with the step: where it
        # would sink below the kink test's noise level on the relative step, that step could cross the
        # kink unseen and fail a right gradient (an exact max-pool tie at 1e-3), so it is not taken.
        fourth = np.zeros(self.n)
        fourth[rest] = np.abs((f[_AT_H, rest] + f[_AT_H + 1, rest])
                              - 4 * (f[_AT_HALF, rest] + f[_AT_HALF + 1, rest]) + 6 * f0)
        small &= fourth * (h_rel / h) > 4 * self.safety * 16 * eps_f
        # A kink at the point itself (an exact max-pool tie, a ReLU input of exactly 0) is crossed by every
        # step, so no retry can judge it: the one-sided slopes at h/16 and h/32 (stage A's and the kink
        # re-judge's probes) then agree on each side and differ across it.
        if near_kink.size:
            k = near_kink
            small[k[_kink_at_point(f0, f[_AT_FINER, k], f[_AT_FINER + 1, k], f[_AT_A, k], f[_AT_A + 1, k],
                                   h[k] / (2 * STAGE_A), eps_f)]] = False
        self.relative = np.union1d(curved[small[curved]], near_kink[small[near_kink]])

    def retry_relative(self) -> None:
        """Stages A and B again on the relative step for ``relative``; the curved elements that may not take
        it are judged again at h/16 and h/32 instead."""
        relative, accepted, h, e_a = self.relative, self.accepted, self.h, self.e_a
        if relative.size:
            try:
                h[relative] = self.h_rel[relative]
                accepted[relative] = self.stage_a(relative)
                self.status[relative] = np.where(accepted[relative], OK, self.status[relative])
                redo = relative[~accepted[relative]]
                self.probe(redo, 1.0, _AT_H)
                self.probe(redo, 0.5, _AT_HALF)
            finally:
                np.copyto(self.arr, self.saved)
            done = relative[accepted[relative]]
            self.numerical[done], self.error[done], self.bound[done], self.truncation[done] = \
                self.a[done] + e_a[done], np.abs(e_a[done]), self.bound_a[done], 0.0
            self.steps[done], self.factor[done] = h[done] / STAGE_A, ACCEPT
            if redo.size:
                self.stage_b(redo, refine=False)  # (a kink on this step is a kink within eps * |w|: skipped)
        finer_rows = self.curved[~self.small[self.curved]]
        if finer_rows.size:
            self.finer(finer_rows)

    def skip_kinks_at_point(self) -> None:
        """Skip, as at a kink, an element failing on the relative step with a kink's signature at the point."""
        f, h, relative = self.f, self.h, self.relative
        # An element that fails on the relative step may have crossed there a tiny kink at the point (behind
        # a larger one within h, or a tie) unseen: where the one-sided slopes at h/16 and h/2 of that step
        # agree on each side and differ across it, it is skipped, as at a kink, not failed.
        crossed = relative[self.status[relative] == FAIL]
        if crossed.size:
            c = crossed
            at_point = _kink_at_point(self.f0, f[_AT_HALF, c], f[_AT_HALF + 1, c], f[_AT_H, c], f[_AT_H + 1, c],
                                      h[c] / 2, self.eps_f)
            self.status[c[at_point]] = KINK

    def skip_unjudged(self) -> None:
        """Skip, as at a kink, the retried elements whose verdict still proves nothing (too curved, or on the
        relative step a round-off as large as the slope)."""
        status, factor, bound = self.status, self.factor, self.bound
        # still too curved, or (on the tiny relative step) round-off as large as the slope: not judged, and
        # skipped as a kink is (a kink between h/2 and h, missed by the kink test, looks the same)
        scale = np.maximum(np.maximum(np.abs(self.a), np.abs(self.numerical)), self.floor)
        unjudged = np.union1d(self.curved, self.near_kink)
        curved_still = unjudged[self.too_curved(unjudged)]
        round_off = unjudged[(status[unjudged] == OK) & np.isin(unjudged, self.relative) & ~self.too_curved(unjudged)
                             & (factor[unjudged] * bound[unjudged] > 1e-3 * scale[unjudged])]
        status[curved_still] = KINK
        status[round_off] = KINK
        self.not_judged = np.setdiff1d(curved_still, self.near_kink)
        self.lost_in_round_off = np.setdiff1d(round_off, self.near_kink)

    def confirm_failures(self) -> None:
        """Clear a failure at the default step that stage A, on the relative step, finds right within TIGHT."""
        a, e_a, h, rest = self.a, self.e_a, self.h, self.rest
        # A failure at the default step (or at h/16) of an element with |w| < 1 can come from several kinks
        # or a curve within the step that fool both tests: it is confirmed on the relative step, where stage
        # A's agreement, with a bound within TIGHT of the slope, clears it; anything else keeps it failed.
        failing = rest[(self.status[rest] == FAIL) & self.eligible[rest] & ~np.isin(rest, self.relative)]
        cleared = self.cleared = failing[:0]
        if failing.size:
            kept_h = h[failing].copy()
            try:
                h[failing] = self.h_rel[failing]
                agrees = self.stage_a(failing)
            finally:
                np.copyto(self.arr, self.saved)
            # tight next to the slope: a wrong gradient disagrees by as much on any step, so one off by more
            # than TIGHT of the slope cannot agree here
            tight = ACCEPT * self.bound_a[failing] <= TIGHT * np.maximum(
                np.maximum(np.abs(a[failing]), np.abs(a[failing] + e_a[failing])), self.floor)
            cleared = self.cleared = failing[agrees & tight]
            h[failing[~(agrees & tight)]] = kept_h[~(agrees & tight)]
            self.numerical[cleared], self.error[cleared], self.bound[cleared] = \
                a[cleared] + e_a[cleared], np.abs(e_a[cleared]), self.bound_a[cleared]
            self.truncation[cleared], self.steps[cleared], self.factor[cleared], self.status[cleared] = \
                0.0, h[cleared] / STAGE_A, ACCEPT, OK

    # ------------------------------------------------------------------ cliffs, and the analytic round-off
    def search_cliffs(self) -> None:
        """Judge each failing element at a cliff on the largest finer step where the cost is linear
        (:class:`_CliffLevels`), or skip it as at a kink if no step resolves the cost."""
        f, a, status, eps_f, safety = self.f, self.a, self.status, self.eps_f, self.safety
        # A cliff: the cost changes by a finite amount within a span far below the step (a norm clamped at
        # eps = 1e-8, a steep sigmoid), so the odd difference f(w+s) - f(w-s) does not shrink with s (a smooth
        # cost's shrinks 16-fold from h to h/16) and no step judges it; it is looked at on ever finer steps.
        with np.errstate(all="ignore"):  # (f holds no probe of stage B for an element stage A accepted)
            odd_h, odd_a = f[_AT_H] - f[_AT_H + 1], f[_AT_A] - f[_AT_A + 1]
            cliff = np.flatnonzero((status == FAIL) & np.isfinite(odd_h) & np.isfinite(odd_a)
                                   & (np.abs(odd_a) >= 0.5 * np.abs(odd_h))
                                   & (np.abs(odd_a) > 4 * safety * eps_f) & (self.coarse is None))
        zoomed: list[int] = []  # judged (ok or failed) on a finer step
        cliffs: list[int] = []  # no step resolved them: skipped
        self.zoomed, self.cliffs = zoomed, cliffs
        self.finest = math.inf  # the finest step tried for an element no step resolved
        before = self.program.evaluations
        try:
            for j in cliff.tolist():
                level = _CliffLevels(self.evaluate, self.view, int(self.index[j]), float(self.w[j]), float(self.h[j]),
                                     eps_f, safety)
                for k in level.candidates():
                    probe_k = level.probe(k)
                    if probe_k.state != "linear":
                        break
                    v = judge(a[j:j + 1], self.f0, np.array(probe_k.f[0:1]), np.array(probe_k.f[1:2]),
                              np.array(probe_k.f[2:3]), np.array(probe_k.f[3:4]), np.array(probe_k.spans[0:1]),
                              np.array(probe_k.spans[1:2]), np.array([probe_k.s]), eps_f, safety)
                    loose = v.status[0] == OK and safety * v.bound[0] > 1e-3 * max(abs(a[j]), abs(v.numerical[0]))
                    if v.status[0] == KINK or loose:
                        continue  # (not smooth, or round-off as large as the slope, on that step: one finer)
                    self.numerical[j], self.error[j], self.bound[j], status[j] = \
                        v.numerical[0], v.error[0], v.bound[0], v.status[0]
                    self.steps[j], self.factor[j] = probe_k.s, safety
                    zoomed.append(j)
                    break
                if not zoomed or zoomed[-1] != j:  # (no step, down to what resolves the cost, was linear)
                    status[j] = KINK
                    cliffs.append(j)
                    self.finest = min(self.finest, level.finest)
        finally:
            np.copyto(self.arr, self.saved)
        self.zoom_evaluations = self.program.evaluations - before

    def confirm_on_finer_steps(self) -> None:
        """Confirm a failure at the default step of an element with ``|w| > 1`` on the steps ``h / OFFSET_ZOOM**k``:
        judged, as at a cliff, on the largest of them where the cost is linear and the verdict proves something;
        skipped as at a kink if no step, down to the element's round-off and resolution, resolves the cost."""
        # The default step eps * |w| grows with the element; the cost may change on a scale far below it (a
        # batch norm of data with an offset of 1e6 and a spread of 1e-3): saturated at +-h, +-h/2 and +-h/16,
        # the secants agree on ~0 and a right gradient fails.  The steps below h, as fine as the element's
        # resolution and the cost's round-off allow, find the scale where the cost is linear.
        status = self.status
        self.offset_cleared, self.offset_failed, self.offset_skipped = [], [], []
        self.offset_finest, self.offset_evaluations = math.inf, 0
        if self.coarse is not None or not math.isfinite(self.f0):
            return
        # (and the elements skipped at a kink within the default step or at a cliff: a cost saturated within
        # the step looks so, and the tensor's round-off bound the cliff search stops at may be far above the
        # element's own)
        rows = np.flatnonzero(((status == FAIL) | np.isin(np.arange(self.n), self.cliffs)
                               | np.isin(np.arange(self.n), self.near_kink)) & (np.abs(self.w) > 1)
                              & np.isfinite(self.a))
        rows = np.setdiff1d(rows, np.union1d(self.outside, np.asarray(self.zoomed, dtype=np.intp)))
        before = self.program.evaluations
        stood = 0  # the failures that stood, the cost linear on their step
        try:
            for j in rows.tolist():
                if stood >= CONFIRM_STOOD:
                    break  # (the tensor fails on failures the cost is linear for; the rest keep their verdicts)
                skipped, at_cliff = status[j] == KINK, j in self.cliffs
                stood += self.confirm_one(j)
                if at_cliff and status[j] != KINK:
                    self.cliffs.remove(j)  # (judged on a finer step after all)
                elif skipped and status[j] == KINK and j in self.offset_skipped:
                    self.offset_skipped.remove(j)  # (counted where it was skipped)
        finally:
            np.copyto(self.arr, self.saved)
        self.offset_evaluations = self.program.evaluations - before

    def element_round_off(self, j: int) -> float:
        """The round-off bound of one cost evaluation as element ``j`` alone moves, measured on its own line
        (``ROUND_OFF_POINTS`` costs ``ROUND_OFF_ULPS`` of its spacing apart, the line far below any scale the
        cost changes on); at least the cost's own rounding."""
        i, w = int(self.index[j]), float(self.w[j])
        delta = ROUND_OFF_ULPS * float(np.spacing(abs(w)))
        values = [self.f0]
        for k in range(1, ROUND_OFF_POINTS + 1):
            self.view[i] = w + k * delta
            values.append(self.evaluate())
        self.view[i] = w
        line = np.array(values)
        if not np.isfinite(line).all():
            return math.inf
        # (as the checker's probe of the tensor's round-off, without discarding a jump: a jump counts as noise)
        sigma = max(noise_level(line), robust_noise_level(line))
        return max(4.0 * sigma, 2.0 * U64 * abs(self.f0), 1e-300)

    def confirm_one(self, j: int) -> bool:
        """:meth:`confirm_on_finer_steps` for the element ``j``; whether its failure stood because the cost is
        linear on the step it failed on."""
        i, w, a, safety = int(self.index[j]), float(self.w[j]), self.a[j:j + 1], self.safety
        # the element's own round-off where the tensor's bound is larger: measured on a line far finer than
        # the tensor's probe (1e-9 |w|), which may itself span the scale the cost changes on
        eps_f = min(self.eps_f, self.element_round_off(j))
        if not math.isfinite(eps_f):
            return False
        # never coarser than the step the verdict was made on (stage A's h/16 is finer than h)
        s, probed = min(float(self.h[j]), float(self.steps[j])), False
        if self.status[j] == FAIL and not self.saturated_at(j, s, eps_f):
            return True  # (the cost is linear on the failing step: the failure is a verdict, not a step too large)
        while True:
            s /= OFFSET_ZOOM
            spans = np.array([(w + s) - (w - s)]), np.array([(w + s / 2) - (w - s / 2)])
            if spans[1][0] <= 0 or s < float(np.finfo(np.float64).tiny):
                break  # (below the element's resolution)
            scale = max(abs(float(a[0])), self.floor)
            if safety * 3 * eps_f / s > 1e-3 * scale:
                break  # (the round-off alone proves nothing on this step, nor on any finer one)
            f = _four_costs(self.view, i, w, s, self.evaluate)
            self.offset_finest, probed = min(self.offset_finest, s), True
            v = judge(a, self.f0, np.array(f[0:1]), np.array(f[1:2]), np.array(f[2:3]), np.array(f[3:4]),
                      spans[0], spans[1], np.array([s]), eps_f, safety)
            assert v.truncation is not None
            scale = max(scale, abs(float(v.numerical[0])))
            # judged, as at a cliff, on the largest step where the cost is linear (smooth, the secants at s and
            # s/2 within 1% of each other as in _CliffLevels -- a saturated cost's halve -- and the truncation
            # estimate within CURVED of the slope) and the verdict proves something (its tolerance within 1e-3
            # of the slope)
            d1, d2 = (f[0] - f[1]) / spans[0][0], (f[2] - f[3]) / spans[1][0]
            if v.status[0] == KINK or not np.isfinite(v.numerical[0]) or v.truncation[0] > CURVED * scale \
                    or _curved(d1, d2, eps_f, s) \
                    or safety * v.bound[0] > 1e-3 * scale:
                continue
            (self.offset_cleared if v.status[0] == OK else self.offset_failed).append(j)
            self.set_verdict(j, v, s, int(v.status[0]))
            return False
        if probed:
            self.offset_skipped.append(j)  # (no step down to the round-off and the resolution resolved the cost)
            self.status[j] = KINK
        # (else no finer step could be taken at all: the verdict stands)
        return False

    def saturated_at(self, j: int, s: float, eps_f: float) -> bool:
        """Whether the cost is not linear in element ``j`` on the step ``s`` it failed on: its secants at ``s``
        and ``s/2`` differ by more than 1% (and the round-off ``eps_f``), as a cost that changes on a far smaller
        scale gives (saturated: the secant doubles as the step halves).  A failure on a step where the cost is
        linear stands: a finer step is sought only for a step too large for the cost."""
        w = float(self.w[j])
        f = _four_costs(self.view, int(self.index[j]), w, s, self.evaluate)
        spans = (w + s) - (w - s), (w + s / 2) - (w - s / 2)
        if not (spans[0] > 0 and spans[1] > 0 and all(math.isfinite(v) for v in f)):
            return True  # (no secant to tell by: the finer steps decide)
        return _curved((f[0] - f[1]) / spans[0], (f[2] - f[3]) / spans[1], eps_f, s)

    def set_verdict(self, j: int, v: Verdict, s: float, status: int) -> None:
        """Element ``j``'s verdict from the one-element verdict ``v`` on the step ``s``."""
        assert v.truncation is not None
        self.numerical[j], self.error[j], self.bound[j], self.truncation[j] = \
            v.numerical[0], v.error[0], v.bound[0], v.truncation[0]
        self.steps[j], self.factor[j], self.status[j] = s, self.safety, status

    def credit_analytic_round_off(self) -> None:
        """Judge right a failing element that agrees within its tolerance plus the analytic value's measured
        round-off (``GradientChecker._analytic_noise``), where that round-off is below ANALYTIC_CAP."""
        a, numerical, status, bound, factor = self.a, self.numerical, self.status, self.bound, self.factor
        # The analytic value's own round-off, measured where an element still fails (see _analytic_noise):
        # credited up to ANALYTIC_CAP of the tensor's largest gradient.
        self.credited = np.empty(0, dtype=np.intp)
        failing_now = np.flatnonzero((status == FAIL) & np.isfinite(self.error) & np.isfinite(bound))
        sigma_a = self.analytic_noise().get(self.t.name) if failing_now.size and self.coarse is None else None
        if sigma_a is not None and sigma_a.shape == self.shape:
            with np.errstate(all="ignore"):
                size = np.maximum(np.abs(a), np.abs(numerical))
                largest = float(np.max(np.where(np.isfinite(size), size, 0.0), initial=0.0))
            noise_a = 4 * sigma_a.reshape(-1)[self.index[failing_now]]
            # (an allowance above the cap is no round-off: nothing is credited, not the cap)
            noise_a = np.where(noise_a <= ANALYTIC_CAP * largest, noise_a, 0.0)
            # the element's own tolerance plus the measured round-off once, not safety times it: a bug
            # larger than that round-off still fails
            tolerance = factor[failing_now] * bound[failing_now] + noise_a
            agree = (noise_a > 0) & (self.error[failing_now] <= tolerance)
            credited = self.credited = failing_now[agree]
            # (reported as bound and tolerance = factor * bound)
            bound[credited], status[credited] = tolerance[agree] / factor[credited], OK

    def fail_loose_shrunk(self) -> None:
        """Fail the ``shrunk`` elements judged ok on a verdict that proves nothing (``loose``): on the relative
        step, the round-off bound as large as the slope."""
        shrunk = self.shrunk
        # a step this small may leave the round-off bound as large as the derivative itself: such an
        # element proves nothing (any analytic value would pass), so it counts as not judged, failed
        shrunk_scale = np.maximum(np.abs(self.numerical[shrunk]), np.abs(self.a[shrunk]))
        self.loose = shrunk[(self.factor[shrunk] * self.bound[shrunk] > 1e-3 * shrunk_scale)
                            & (self.status[shrunk] == OK)]
        self.status[self.loose] = FAIL

    # ------------------------------------------------------------------ the result
    def cliff_notes(self) -> list[str]:
        """The notes on the cliff search and the analytic round-off credited, the first of the report's."""
        status, steps, bound, zoomed, cliffs = self.status, self.steps, self.bound, self.zoomed, self.cliffs
        notes: list[str] = []
        if zoomed:
            notes.append(f"{len(zoomed)} element(s) sit at a cliff (the cost changes by a finite amount within a span "
                         "far below the step: the secant grows as 1/h, e.g. a norm clamped at eps): judged only on a "
                         f"finer step, down to {min(float(steps[j]) for j in zoomed):.1e}, where the cost is linear "
                         f"({sum(int(status[j] == FAIL) for j in zoomed)} of them fail there); not judged at the "
                         "normal step, so a passing tensor is 'partial', not 'ok'")
        if cliffs:
            notes.append(f"{len(cliffs)} element(s) sit at a cliff (the cost changes by a finite amount within a span "
                         "far below the step: the secant grows as 1/h) that no step resolves, down to "
                         f"{self.finest:.1e} (where the cost's round-off, the resolution of the element or an "
                         "underflow ends the search): not smooth at any step tried, skipped as at a kink")
        if self.zoom_evaluations:
            notes.append(f"the cliff search took {self.zoom_evaluations} cost evaluations")
        judged = len(self.offset_cleared) + len(self.offset_failed) + len(self.offset_skipped)
        if judged:
            notes.append(f"{judged} element(s) with |w| > 1 that failed at the default step eps * |w| (or were "
                         "skipped at a kink or cliff within it) were judged again on finer steps h / 4**k, down to "
                         f"{self.offset_finest:.1e} (the element's own round-off and resolution): the cost may change "
                         "on a scale far below that step (an input with a large offset next to its spread, e.g. a "
                         f"batch norm of data at 1e6); {len(self.offset_cleared)} agree and {len(self.offset_failed)} "
                         "fail on the largest step where the cost is linear, "
                         f"{len(self.offset_skipped)} are skipped as at a kink (no step resolves the cost); judged on "
                         "a finer step, a passing tensor is 'partial'")
        if judged and self.offset_evaluations:  # (not for failures that only stood: nothing to read there)
            notes.append(f"the confirmation on finer steps took {self.offset_evaluations} cost evaluations")
        if self.credited.size:
            notes.append(f"{self.credited.size} element(s) agree within the analytic gradient's own round-off, "
                         "measured at nearby points (cancellation inside backward, e.g. a saturated softmax): judged "
                         f"right with it (largest {float(np.max(bound[self.credited])):.1e})")
        return notes

    def step_notes(self) -> list[str]:
        """The notes on the cost's domain and on the relative step, in the report's order (after the cliff notes)."""
        notes: list[str] = []
        if self.refusals:
            notes.append(f"a layer raised at some probes, taken as outside its domain (the cost not finite there): "
                         f"{self.refusals[0]}")
        if self.outside.size:
            notes.append(f"{self.outside.size} element(s) could not be judged: the cost was NaN/inf at their probes "
                         "(an input at the edge of a function's domain, e.g. 0 for sqrt or x**1.5; an overflow); each "
                         "counts as failed")
        if self.shrunk.size:
            notes.append(f"{self.shrunk.size} element(s) were probed with the relative step eps * |w|: the default "
                         "step (at least eps) took the cost outside its domain (NaN/inf) there")
            if self.loose.size:
                notes.append(f"{self.loose.size} of them could not be judged even so: the cost's round-off at that "
                             "step is as large as the slope (each counts as failed)")
        if self.relative.size:
            notes.append(f"{self.relative.size} element(s) were probed again with the relative step eps * |w|: at the "
                         "default step (at least eps) the cost curved too fast, or crossed a kink")
        if self.not_judged.size:
            notes.append(f"{self.not_judged.size} element(s) could not be judged: the cost curves so fast there (or a "
                         "kink lies within the step) that even a finer step leaves a truncation error above "
                         f"{CURVED:g} of the slope; they are skipped, as at a kink (a smaller eps= may judge them)")
        if self.lost_in_round_off.size:
            notes.append(f"{self.lost_in_round_off.size} element(s) could not be judged on the relative step: the "
                         "cost's round-off there is as large as the slope; they are skipped, as at a kink")
        if self.cleared.size:
            notes.append(f"{self.cleared.size} element(s) that failed at the default step agree on the relative step "
                         "eps * |w| (kinks or a curve inside the default step fooled its tests): judged right there")
        return notes

    def result(self, batch: int | None, mode: str, notes: list[str]) -> TensorResult:
        """The tensor's result from the verdicts, with ``notes``, the per-element record for ``swapped`` and, if
        it fails, the diagnosis of the failing elements."""
        t, coarse, shape, index, arr = self.t, self.coarse, self.shape, self.index, self.arr
        status, numerical, error, bound, factor, a = self.status, self.numerical, self.error, self.bound, \
            self.factor, self.a
        shown = status if coarse is None else status.copy()  # (what the report counts)
        if coarse is not None:
            lost = swallowed_moves(coarse, status, a, numerical == 0)
            notes.insert(0, coarse_verdict(coarse, shown, error, factor * bound, self.eps_f, "elements", lost))
            status[lost] = KINK  # (not checked: not failing, for the diagnosis below)
        result = self.make_result(t, shape, Verdict(numerical, error, bound, shown), a, self.steps, mode, index,
                                  factor)
        result.low_precision = None if coarse is None else coarse.dtype.name
        result.zoomed = len(self.zoomed) + len(self.offset_cleared) + len(self.offset_failed)
        if coarse is None:
            result.notes.extend(notes)
        else:  # (the lower precision first: the notes about the tensor's contract follow)
            result.notes[:0] = notes
        # (for the diagnosis and swapped, an element that agrees at a lower precision is right as far as it goes)
        checked = status != KINK
        # for swapped (see findings.name_swapped), per element of the array: NaN / False where not checked
        if t.keep_elements:
            num, seen, tol = np.full(arr.size, np.nan), np.zeros(arr.size, dtype=bool), np.full(arr.size, np.nan)
            num[index], seen[index], tol[index] = numerical, checked, factor * bound
            t.elements = (num.reshape(shape), seen.reshape(shape), tol.reshape(shape))
        if not result.passed or result.failed:
            # (a factor is named within the accuracy of the numerical values: 1e-6, or at a lower precision
            # what its tolerance allows, up to 1e-3, where the factors named are still far apart)
            bad = (status == FAIL) & (numerical != 0) & np.isfinite(numerical)
            with np.errstate(all="ignore"):
                slack = 1e-6 if coarse is None or not bad.any() else \
                    float(np.clip(np.max(factor[bad] * bound[bad] / np.abs(numerical[bad])), 1e-6, 1e-3))
            if shape and np.any(status == FAIL):
                rows = np.unravel_index(index, shape)[0]
                bad_rows = np.unique(rows[status == FAIL])
                t.rows = (bad_rows, np.setdiff1d(np.unique(rows[status == OK]), bad_rows))
            result.diagnosis = diagnose(t.name, a, numerical, status == FAIL, checked, index, shape,
                                        batch, factor * bound, t.bias_row, slack, coarse=coarse is not None)
            if result.diagnosis is not None and FLOAT32_WORDS in result.diagnosis:
                # (float32's rounding, not the cost's shape, made elements look like kinks or a curve on the
                # default step: the notes on finer steps it led to would point elsewhere)
                result.notes = [note for note in result.notes if not is_step_artefact(note)]
        return result


#: how the notes on kinks, cliffs and finer steps start or say (:meth:`ElementCheck.cliff_notes`,
#: :meth:`ElementCheck.step_notes`, the round-off probe's), which a cost rounded to float32 causes by itself
_STEP_ARTEFACTS = ("were probed again with the relative step", "agree on the relative step",
                   "were judged again on finer steps", "the confirmation on finer steps took",
                   "could not be judged: the cost curves so fast", "could not be judged on the relative step",
                   "sit at a cliff", "the cliff search took", "the round-off probe crossed a kink")


def is_step_artefact(note: str) -> bool:
    """Whether ``note`` is one of the notes on kinks, cliffs and finer steps (see ``_STEP_ARTEFACTS``)."""
    return any(words in note for words in _STEP_ARTEFACTS)


class _Level(NamedTuple):
    """One cliff probe: the step ``s``; the costs at ``w + s, w - s, w + s/2, w - s/2`` and the two spans;
    ``state``: ``"linear"`` (the secants at s and s/2 agree within 1%), ``"curved"`` or ``"gone"`` (the
    step no longer resolves the cost: its change within round-off, below the element's resolution, an
    underflow, or not finite)."""

    s: float
    state: str
    f: list[float]
    spans: list[float]


class _CliffLevels:
    """The probes of one element at a cliff on steps ``h / CLIFF_ZOOM**k``, made on demand, once each.

    :meth:`candidates` gives the smallest ``k`` whose step is not curved (found by doubling ``k``, then
    bisecting: a true jump at an element of 0 is given up after about 8 levels, not 200), and the one
    after it: a linear step whose verdict proves nothing is tried once more one level finer."""

    def __init__(self, evaluate: Callable[[], float], view: Any, i: int, w: float, h: float, eps_f: float,
                 safety: float) -> None:
        self.evaluate, self.view, self.i, self.w, self.h = evaluate, view, i, w, h
        self.eps_f, self.safety = eps_f, safety
        self.levels: dict[int, _Level] = {}
        # the deepest k whose step is a normal float (a subnormal step resolves nothing); by logarithms, as
        # h / tiny overflows for a step above 4 (an element of 1e6)
        self.deepest = max(1, int((math.log(h) - math.log(float(np.finfo(np.float64).tiny))) / math.log(CLIFF_ZOOM)))
        self.finest = h  # the finest step probed

    def probe(self, k: int) -> _Level:
        if k in self.levels:
            return self.levels[k]
        s = self.h / float(CLIFF_ZOOM) ** k
        f: list[float] = []
        spans = [(self.w + s) - (self.w - s), (self.w + s / 2) - (self.w - s / 2)]
        state = "gone"
        if k <= self.deepest and min(spans) > 0:  # (else below the element's resolution, or an underflow)
            self.finest = min(self.finest, s)
            f = _four_costs(self.view, self.i, self.w, s, self.evaluate)
            d1, d2 = (f[0] - f[1]) / spans[0], (f[2] - f[3]) / spans[1]
            if not (math.isfinite(d1) and math.isfinite(d2)):
                state = "gone"
            elif abs(f[0] - f[1]) <= 4 * self.safety * self.eps_f or not _curved(d1, 2 * d1, self.eps_f, s):
                # (the cost's change on this step is round-off, or too small for the test below to tell a
                # saturated cost, whose secant doubles as the step halves, from a linear one: below about
                # 16 eps_f, which 4 * safety * eps_f covers only for safety above 4; no finer step resolves it)
                state = "gone"
            elif _curved(d1, d2, self.eps_f, s):
                state = "curved"
            else:
                state = "linear"
        self.levels[k] = _Level(s, state, f, spans)
        return self.levels[k]

    def candidates(self) -> list[int]:
        """The first ``k`` (finest step first found) whose step is not curved, and the next one."""
        lo, hi = 0, 1  # (the step h itself is curved: it failed)
        while self.probe(hi).state == "curved":
            if hi > self.deepest:
                return []
            lo, hi = hi, min(2 * hi, self.deepest + 1)
        while hi - lo > 1:  # (curved at lo, not at hi: the boundary in between)
            mid = (lo + hi) // 2
            if self.probe(mid).state == "curved":
                lo = mid
            else:
                hi = mid
        return [hi, hi + 1]


def _kink_at_point(f0: float, fp: np.ndarray, fm: np.ndarray, fp2: np.ndarray, fm2: np.ndarray, q: np.ndarray,
                   eps_f: float) -> np.ndarray:
    """Whether the cost has a kink at the point itself, from its values at ``w +- q`` (``fp``, ``fm``) and
    ``w +- 2q`` (``fp2``, ``fm2``): the one-sided slopes then differ across the point by the slope jump
    ``J`` and agree on each side, where a smooth cost's differ by ``f'' q`` across and by half that on
    each side.  (Every step crosses such a kink: an exact max-pool tie, a ReLU input of exactly 0.)"""
    right, left = (fp - f0) / q, (f0 - fm) / q
    right2, left2 = (fp2 - f0) / (2 * q), (f0 - fm2) / (2 * q)
    noise = 4 * eps_f / q  # of a one-sided slope over q
    jump = np.abs(right - left)
    return ((jump > 3 * noise) & (np.abs(right2 - right) <= noise + 0.1 * jump)
            & (np.abs(left2 - left) <= noise + 0.1 * jump))
