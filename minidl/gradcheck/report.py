"""The checker's report: one :class:`TensorResult` per checked tensor and a table for people."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import GradientCheckError

__all__ = ["GradientReport", "TensorResult"]


@dataclass
class TensorResult:
    """The verdict on one tensor (a parameter by dotted name, or ``"input"``).

    Attributes:
        name, shape: which tensor.
        passed: no checked element failed and no contract was broken.
        max_abs_error: ``max |analytic - numerical|`` over checked elements.
        max_rel_error: ``max |a - n| / max(|a|, |n|, safety * bound)`` (the bound keeps elements whose
            gradient is at noise level from showing a meaningless ratio).
        worst_index: the element with the largest ``error / bound`` (a tuple index), or ``None``.
        analytic, numerical: the two values at ``worst_index``.
        step, bound, tolerance: at ``worst_index``, the step ``h``, the estimated error bound and the
            tolerance ``safety * bound`` the error was compared with.
        checked, skipped, failed: element counts; ``skipped`` are elements whose +-step crossed a
            point where the cost is not differentiable (a kink).
        mode: ``"full"``, ``"sampled"`` or ``"directional"`` (how the verdict was reached).
        diagnosis: the bug signature in words, when one is recognised.
        problems: contract violations (wrong gradient shape, assigns instead of adds, ...).
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

    @property
    def status(self) -> str:
        return "ok" if self.passed else "FAIL"


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.2e}"  # x != x: NaN


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

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and all(r.passed for r in self.layers.values())

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> TensorResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no tensor named {name!r} in the report; have {[r.name for r in self.results]}")

    @property
    def failed(self) -> list[TensorResult]:
        return [r for r in self.results if not r.passed]

    def __str__(self) -> str:
        head = ("tensor", "shape", "mode", "checked", "kink-skip", "failed", "max abs err",
                "max rel err", "worst index", "analytic", "numerical", "step", "bound", "status")
        rows = []
        for r in self.results:
            rows.append((
                r.name, "x".join(map(str, r.shape)) or "()", r.mode, str(r.checked), str(r.skipped),
                str(r.failed), _fmt(r.max_abs_error), _fmt(r.max_rel_error),
                "-" if r.worst_index is None else str(r.worst_index), _fmt(r.analytic), _fmt(r.numerical),
                _fmt(r.step), _fmt(r.bound), r.status,
            ))
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines = []
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failed)} of {len(self.results)} tensors)"
        if self.layers and not all(r.passed for r in self.layers.values()):
            bad = [p for p, r in self.layers.items() if not r.passed]
            verdict += f"; failing alone: {', '.join(bad)}"
        lines.append(f"Gradient check {verdict}" + (f"; cost: {self.cost}" if self.cost else ""))
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        for r in self.results:
            for p in r.problems:
                lines.append(f"  {r.name}: {p}")
            if r.diagnosis:
                lines.append(f"  {r.name}: diagnosis: {r.diagnosis}")
        for path, sub in self.layers.items():
            lines.append("")
            lines.append(f"Layer '{path}' checked alone:")
            lines.extend("  " + line for line in str(sub).splitlines())
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.evaluations:
            lines.append(f"  ({self.evaluations} cost evaluations, {self.seconds:.3f} s)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<GradientReport passed={self.passed} tensors={len(self.results)}>"

    def raise_if_failed(self) -> GradientReport:
        """Raise :class:`~minidl.errors.GradientCheckError` with the table if anything failed.

        Returns ``self`` when everything passed (so it can be chained)."""
        if not self.passed:
            raise GradientCheckError(str(self))
        return self
