"""The checker's report: one :class:`TensorResult` per checked tensor and a table for people."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from typing_extensions import Self

from ..errors import GradientCheckError

__all__ = ["GradientReport", "TensorResult"]

#: the tag of a tensor's name in :attr:`GradientReport.failed` when it fails in the second check (``moved``)
MOVED = " (moved)"
#: the tag of a sub-layer's failing tensor in :attr:`GradientReport.failed` (``"<path>.<name> (alone)"``): it fails
#: in the layer's check alone (``check_layers=True``, :attr:`GradientReport.layers`)
ALONE = " (alone)"


@dataclass
class TensorResult:
    """The verdict on one tensor (a parameter by dotted name, or ``"input"``; ``"input[i]"`` for each
    floating input of several).

    Attributes:
        name, shape: which tensor.
        passed: no checked element failed and no contract was broken.
        max_abs_error: ``max |analytic - numerical|`` over the checked elements (or directions).
        max_rel_error: the relative error ``|a - n| / max(|a|, |n|, floor)`` of the worst element,
            where ``floor = max(1e-3 * G, safety * bound)`` and ``G`` is the largest ``|a|`` or ``|n|``
            in the tensor: an element whose gradient is tiny next to the rest of the tensor is
            measured against the tensor's scale, not against its own (noise-level) value.
        worst_index: the worst element (a tuple index), or ``None`` (directional mode): among the
            failing elements if any failed, else among all checked ones, the one with the largest
            relative error.  ``max_rel_error``, ``analytic``, ``numerical``, ``step``, ``bound`` and
            ``tolerance`` all refer to this element (or direction).
        analytic, numerical: the two values at the worst element.
        step, bound, tolerance: there, the step ``h``, the estimated error bound and the tolerance
            ``safety * bound`` the error was compared with.
        checked, skipped, failed: counts of elements -- or of random directions when ``mode`` is
            ``"directional"`` (see :attr:`unit`); ``skipped`` are those whose +-step crossed a point
            where the cost is not differentiable (a kink).
        coarse_agreed: with :attr:`low_precision`, the elements (or directions) that agree with backward on
            the step suited to that precision: not checked at float64 accuracy, so counted neither as
            ``checked`` nor as ``skipped`` (the table's ``coarse-agree`` column).
        mode: ``"full"``, ``"sampled"``, ``"directional"``, or after a directional pass that was not
            conclusive ``"directional->full"`` / ``"directional->sampled"`` (the per-element check
            that followed); ``"frozen"`` for a parameter with ``requires_grad=False`` that backward
            wrote no gradient for (not checked; a frozen parameter that gets a gradient is checked).
        diagnosis: the bug signature in words, when one is recognised.
        problems: contract violations (wrong gradient shape, assigns instead of adds, backward_params
            disagreeing with backward, ...); any problem fails the tensor.
        notes: information that is not a failure (how the verdict was reached).
        zoomed: how many checked elements were judged only on a finer step at a cliff.
        low_precision: ``"float32"`` (or ``"float16"``) when the cost, moved along this tensor, is computed in
            that precision (the loss, or a layer the tensor goes through): the tensor was judged on a step suited
            to it against the cost's round-off there, and an element that agrees counts as not checked (it
            proves nothing at float64 accuracy) while one that disagrees fails (see the report's
            :attr:`GradientReport.low_precision`).
        flat: the whole analytic gradient (not only the sampled elements') and every checked element's (or
            direction's) numerical derivative are exactly 0: the cost does not move with the tensor at this
            point (every sample that reaches it ignored, a dead ReLU after it, or a tensor it does not use), so
            a wrong backward for it would pass as well. Never a tensor whose change a layer computing below
            float64 rounds away (that one is not checked, see :attr:`coarse_agreed`).
    """

    name: str
    shape: tuple[int, ...]
    passed: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    worst_index: tuple[int, ...] | None = None
    analytic: float = float("nan")
    numerical: float = float("nan")
    step: float = float("nan")
    bound: float = float("nan")
    tolerance: float = float("nan")
    checked: int = 0
    skipped: int = 0
    failed: int = 0
    mode: str = "full"
    diagnosis: str | None = None
    problems: list[str] = field(default_factory=list)
    size: int = 0
    notes: list[str] = field(default_factory=list)
    #: checked elements judged only on a finer step at a cliff (see docs/gradient-checker.md, Cliffs),
    #: not at the normal rule: such a tensor is ``"partial"``, never ``"ok"``
    zoomed: int = 0
    #: the precision below float64 the tensor's cost is computed in, when the check found one (see above)
    low_precision: str | None = None
    #: elements (or directions) that agree on that precision's step: not checked at float64 accuracy
    coarse_agreed: int = 0
    #: the cost is flat in the tensor at the checked point: nothing of its backward was tested (see above)
    flat: bool = False

    @property
    def unit(self) -> str:
        """What ``checked``/``skipped``/``failed`` count: ``"elements"`` or ``"directions"``."""
        return "directions" if self.mode == "directional" else "elements"

    @property
    def status(self) -> str:
        """``"FAIL"``; ``"skipped"`` (passed, but nothing could be checked: every element or direction
        at a kink or agreeing only at a precision below float64 (:attr:`coarse_agreed`), or an empty
        tensor); ``"frozen"`` (see :attr:`mode`); ``"flat"`` (passed, but every derivative checked is exactly
        0, analytic and numerical: nothing was tested, see :attr:`flat`); ``"partial"`` (passed, but checked
        only in part, or some elements only on a finer step at a cliff: see :attr:`partial`); or ``"ok"``:
        every element checked at the normal rule and right."""
        if not self.passed:
            return "FAIL"
        if self.mode == "frozen":
            return "frozen"
        if self.checked == 0:
            return "skipped"
        if self.flat:
            return "flat"
        return "partial" if self.unit == "directions" or self.checked < self.size or self.zoomed else "ok"

    @property
    def partial(self) -> bool:
        """Whether the tensor passed checked only in part (status ``"partial"``): some of its elements
        were not checked (not sampled, or skipped at kinks), some were judged only on a finer step at a
        cliff (:attr:`zoomed`), or it was checked along random directions, not element by element."""
        return self.status == "partial"


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.2e}"  # x != x: NaN


def _partial_words(partial: list[TensorResult]) -> str:
    """``input 101 of 160 elements; along 2 random directions (not element by element): 0.W, 2.W``."""
    parts = [", ".join(f"{r.name} {r.checked} of {r.size} elements"
                       + (f" ({r.zoomed} only on a finer step at a cliff)" if r.zoomed else "")
                       for r in partial if r.unit == "elements")]
    counts = sorted({r.checked for r in partial if r.unit == "directions"})
    parts += [f"along {k} random direction{'s' if k > 1 else ''} (not element by element): "
              + ", ".join(r.name for r in partial if r.unit == "directions" and r.checked == k) for k in counts]
    return "; ".join(part for part in parts if part)


@dataclass
class GradientReport:
    """Everything the checker found.  ``str(report)`` is a table; :meth:`raise_if_failed` raises it."""

    results: list[TensorResult]
    cost: str = ""
    notes: list[str] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    #: with ``check_layers=True``: each sub-layer's own report, by dotted path
    layers: dict[str, GradientReport] = field(default_factory=dict)
    #: contract violations that belong to no single tensor (a forward that modifies its input in
    #: place); any of them fails the report
    problems: list[str] = field(default_factory=list)
    #: what computes below float64, when the check found it, in words for the headline (``"the cost is
    #: computed in float32, not float64, ..."``; the first note says how it was found and what to do): the
    #: tensors it touches could not be checked at float64 accuracy, and the report fails
    low_precision: str | None = None
    #: float arrays layers hold as plain attributes that no pass of the check changed (a weight that is not an
    #: ``md.Parameter``: neither checked nor trained), as the headline names them: ``"layer '1' (MyLinear) 'W'"``
    plain_arrays: list[str] = field(default_factory=list)
    #: the check run again with the parameters of one's own that sat where a wrong backward cannot show (all 0,
    #: all 1 or -1) moved off it, when it fails there (``moved_what`` says how they were moved); it fails the report
    moved: GradientReport | None = None
    moved_what: str = ""

    @property
    def passed(self) -> bool:
        return (not self.problems and self.low_precision is None and all(r.passed for r in self.results)
                and all(r.passed for r in self.layers.values()) and (self.moved is None or self.moved.passed))

    @property
    def unchecked(self) -> list[TensorResult]:
        """Tensors that passed without a single checked element (see :attr:`TensorResult.status`)."""
        return [r for r in self.results if r.status == "skipped"]

    @property
    def flat(self) -> list[TensorResult]:
        """Tensors that passed with every derivative checked exactly 0 (status ``"flat"``): the cost does not
        move with them at this point, so nothing of their backward was tested."""
        return [r for r in self.results if r.status == "flat"]

    @property
    def partly_checked(self) -> list[TensorResult]:
        """Tensors that passed but were checked only in part (see :attr:`TensorResult.partial`)."""
        return [r for r in self.results if r.partial]

    @property
    def nothing_checked(self) -> bool:
        """Whether the report passed with no tensor that had a single element (or direction) checked: every
        one frozen, skipped at kinks, empty or flat (every derivative exactly 0), or none to check; it then
        proved nothing.  False for a failed report (its failure is what it found)."""
        return self.passed and not any(r.status in ("ok", "partial") for r in self.results)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> TensorResult:
        """The verdict on the tensor ``name`` at the checked point; ``"<name> (moved)"`` (as :attr:`failed` lists
        it) its verdict in the second check, with the parameters at a blind spot moved off it (:attr:`moved`),
        under that name.  A tensor right at the point and wrong at the second one is ``passed`` (and maybe
        ``flat``) under its own name: ``report.passed`` and ``report.failed`` count both checks."""
        for r in self.results:
            if r.name == name:
                return r
        if self.moved is not None and name.endswith(MOVED):
            for r in self.moved.results:
                if r.name == name[:-len(MOVED)]:
                    return replace(r, name=name)
        for r in self._alone():
            if r.name == name:
                return r
        have = [r.name for r in self.results]
        if self.moved is not None:
            have += [f"{r.name}{MOVED}" for r in self.moved.results]
        have += [r.name for r in self._alone()]
        raise KeyError(f"no tensor named {name!r} in the report; have {have}")

    def _alone(self) -> list[TensorResult]:
        """Every tensor of the sub-layers' own checks (:attr:`layers`), a copy named ``"<path>.<name> (alone)"``.
        (A layer checked alone is not checked again at a second point: its report has no :attr:`moved`.)"""
        return [replace(r, name=f"{path}.{r.name}{ALONE}") for path, sub in self.layers.items() for r in sub.results]

    @property
    def failed(self) -> list[TensorResult]:
        """The failing tensors: those of the checked point, then those that fail only in the second check
        (:attr:`moved`), each a copy named ``"<name> (moved)"`` (``report["A (moved)"]`` gives it too), then those
        that fail in a sub-layer's check alone (``check_layers=True``), each a copy named ``"<path>.<name>
        (alone)"`` (``"0.W (alone)"``, ``"inner.input[1] (alone)"``; ``report["0.W (alone)"]`` gives it too).  A
        report that fails for a broken contract only (:attr:`problems`, its own or a layer's) or for a precision
        below float64 (:attr:`low_precision`) may have none."""
        moved = [] if self.moved is None else [replace(r, name=f"{r.name}{MOVED}") for r in self.moved.results
                                               if not r.passed]
        return self._failed_here + moved + [r for r in self._alone() if not r.passed]

    @property
    def _failed_here(self) -> list[TensorResult]:
        """The failing tensors at the checked point (the table's)."""
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        # (a cost computed below float64: the elements that agree on its step have a column of their own)
        coarse = any(r.low_precision is not None for r in self.results)  # (coarse_agreed > 0 implies it)
        head = ("tensor", "shape", "mode", "checked", "kink-skip", *(("coarse-agree",) if coarse else ()),
                "failed", "max abs err", "max rel err", "worst index", "analytic", "numerical", "step", "bound",
                "status")
        rows = []
        for r in self.results:
            unit = " dir" if r.unit == "directions" else ""
            rows.append((
                r.name, "x".join(map(str, r.shape)) or "()", r.mode, f"{r.checked}{unit}", f"{r.skipped}{unit}",
                *((f"{r.coarse_agreed}{unit}",) if coarse else ()), f"{r.failed}{unit}", _fmt(r.max_abs_error),
                _fmt(r.max_rel_error), "-" if r.worst_index is None else str(r.worst_index), _fmt(r.analytic),
                _fmt(r.numerical), _fmt(r.step), _fmt(r.bound), r.status,
            ))
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines = []
        if self.passed:
            # (every tensor frozen, at kinks or flat: nothing failed, but nothing was proved either)
            verdict = "PASSED, but nothing was checked" if self.nothing_checked else "PASSED"
        elif self.low_precision:  # (the cause first: the tensors' verdicts follow from it)
            verdict = f"FAILED: {self.low_precision}"
            if self._failed_here:
                verdict += f" ({len(self._failed_here)} of {len(self.results)} tensors fail even so)"
        elif self._failed_here:
            verdict = f"FAILED ({len(self._failed_here)} of {len(self.results)} tensors)"
        elif self.problems:
            verdict = f"FAILED ({len(self.problems)} broken contract(s), below)"
        elif self.moved is not None and not self.moved.passed:
            verdict = f"FAILED at a second point: right at the checked point, wrong {self.moved_what} (below)"
        else:
            verdict = "FAILED"
        if self.unchecked:
            verdict += (f" ({len(self.unchecked)} of {len(self.results)} tensors could not be checked: "
                        f"{', '.join(r.name for r in self.unchecked)})")
        if self.flat:  # (passed, but every derivative 0 on both sides: a wrong backward passes as well)
            verdict += (f" (nothing tested for {', '.join(r.name for r in self.flat)}: the cost is flat in "
                        f"{'it' if len(self.flat) == 1 else 'them'} here)")
        frozen = [r.name for r in self.results if r.status == "frozen"]
        if frozen:
            verdict += f" (frozen, not checked: {', '.join(frozen)})"
        if self.partly_checked:  # a sample, elements at kinks, a few directions: say how little was proved
            verdict += f" (only partly checked: {_partial_words(self.partly_checked)})"
        if self.plain_arrays:  # (said in the headline too: a weight kept as a plain array never learns)
            verdict += (f" (not checked, and not trained: the plain array(s) {'; '.join(self.plain_arrays)} -- a "
                        "weight is an md.Parameter, see the notes)")
        if self.layers and not all(r.passed for r in self.layers.values()):
            bad = [p for p, r in self.layers.items() if not r.passed]
            verdict += f"; failing alone: {', '.join(bad)}"
        lines.append(f"Gradient check {verdict}" + (f"; cost: {self.cost}" if self.cost else ""))
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        lines.extend(f"  problem: {p}" for p in self.problems)
        for r in self.results:
            for p in r.problems:
                lines.append(f"  {r.name}: {p}")
            if r.diagnosis:
                lines.append(f"  {r.name}: diagnosis: {r.diagnosis}")
            lines.extend(f"  {r.name}: note: {n}" for n in r.notes)
        # (the whole model's notes before the layers' own reports, not read as the last layer's)
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.evaluations:
            lines.append(f"  ({self.evaluations} cost evaluations, {self.seconds:.3f} s)")
        for path, sub in self.layers.items():
            lines.append("")
            lines.append(f"Layer '{path}' checked alone:")
            lines.extend("  " + line for line in str(sub).splitlines())
        if self.moved is not None:
            lines.append("")
            lines.append(f"Checked again {self.moved_what}:")
            lines.extend("  " + line for line in str(self.moved).splitlines())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<GradientReport passed={self.passed} tensors={len(self.results)}>"

    def raise_if_failed(self) -> Self:
        """Raise :class:`~minidl.errors.GradientCheckError` with the table if anything failed.

        Returns ``self`` when everything passed (so it can be chained)."""
        if not self.passed:
            error = GradientCheckError(str(self))
            error.report = self
            raise error
        return self
