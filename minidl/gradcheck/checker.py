"""``GradientChecker``: proves a back-pass right (or shows where it is wrong) by central differences."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NonDeterministicError, ShapeError
from ..layer import Layer
from ._state import LayerSnapshot
from .numerics import FAIL, KINK, OK, U64, exact_steps, judge, noise_level
from .program import Program
from .report import GradientReport, TensorResult

__all__ = ["GradientChecker"]


@dataclass
class _Tensor:
    """One tensor to check: its array (perturbed in place), first stage, and analytic gradient."""

    name: str
    array: np.ndarray
    stage: int
    analytic: np.ndarray | None
    problems: list[str]


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):
        error.add_note(note)


class GradientChecker:
    """Check a layer's or model's back-pass against central differences, tensor by tensor.

    Args:
        model: any :class:`~minidl.Layer` (a model, a ``Sequential``, a single layer).
        loss: a loss (``forward(y_pred, y_true) -> float``, ``backward() -> dL/dy_pred``).  Without one
            the cost is ``CF = sum(R * model(x))`` with a fixed seeded random ``R`` (never all-ones),
            which checks the back-pass for an arbitrary upstream gradient.
        inputs: the input batch; by default seeded N(0, 1) inputs of shape
            ``(batch_size, *model.input_shape_hint())``.
        targets: the targets for ``loss`` (integer labels are kept as they are); drawn like the
            output when a loss is given without them.
        eps: the relative step: element ``w`` is moved by ``h = eps * max(|w|, 1)`` (and ``h / 2``).
        seed: seeds the random inputs, ``R`` and the noise-estimation directions.
        batch_size: samples in inferred inputs (several, so batch reductions are exercised).
        safety: an element fails when its error exceeds ``safety`` times its estimated error bound.
        check_input: also check ``dCost/dinput`` (the tensor named ``"input"``).

    The check runs in float64 on a deep copy of the model, so the model you pass is left exactly as
    it was (parameters' data and grad, buffers, generator states, train/eval mode), even if it
    raises in the middle of the check.
    """

    def __init__(
        self,
        model: Layer,
        loss: Any = None,
        inputs: Any = None,
        targets: Any = None,
        eps: float = 1e-4,
        *,
        seed: int = 0,
        batch_size: int = 4,
        safety: float = 10.0,
        check_input: bool = True,
    ) -> None:
        if not isinstance(model, Layer):
            raise TypeError(f"GradientChecker: expected a minidl Layer or Model, got {type(model).__name__}")
        if not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ValueError(f"GradientChecker: eps must be a number in (0, 1), got {eps!r}")
        if loss is not None and not (hasattr(loss, "forward") and hasattr(loss, "backward")):
            raise TypeError("GradientChecker: loss must have forward(y_pred, y_true) and backward()")
        self.model = model
        self.loss = loss
        self.inputs = inputs
        self.targets = targets
        self.eps = float(eps)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.safety = float(safety)
        self.check_input = bool(check_input)

    # ------------------------------------------------------------------ public
    def run(self) -> GradientReport:
        """Run the check and return the report (it never raises on a failed check; see
        :meth:`GradientReport.raise_if_failed`)."""
        snapshot = LayerSnapshot.take(self.model)
        start = time.perf_counter()
        try:
            report = self._run()
        except Exception as error:
            _add_note(error, f"(raised during GradientChecker.run on {type(self.model).__name__}; "
                             "the check runs on a copy, so your model is unchanged)")
            raise
        finally:
            changed = snapshot.differences()
            if changed:  # never expected: the check works on a copy; enforce it anyway
                snapshot.restore()
        report.seconds = time.perf_counter() - start
        return report

    # ------------------------------------------------------------------ setup
    def _prepare(self) -> tuple[Layer, Any, Any, Any, np.random.Generator]:
        rng = np.random.default_rng(self.seed)
        work = copy.deepcopy(self.model)
        work.astype(np.float64)
        loss = copy.deepcopy(self.loss)
        if self.inputs is None:
            hint = work.input_shape_hint()
            if hint is None:
                raise ShapeError(
                    f"GradientChecker: cannot infer the input shape of {type(self.model).__name__} "
                    "(its input_shape_hint() is None); pass inputs=, e.g. "
                    "GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, ...)))"
                )
            x: Any = rng.standard_normal((self.batch_size, *hint))
        else:
            x = np.array(self.inputs, copy=True)
            if x.dtype.kind == "f":
                x = x.astype(np.float64)
        targets = self.targets
        if targets is not None:
            targets = np.array(targets, copy=True)
            if targets.dtype.kind == "f":
                targets = targets.astype(np.float64)
        return work, loss, x, targets, rng

    def _run(self) -> GradientReport:
        work, loss, x, targets, rng = self._prepare()
        if loss is not None and targets is None:
            # draw targets shaped like the output
            probe = Program(work, None, x, None, np.random.default_rng(self.seed))
            y, _ = probe.baseline()
            targets = rng.standard_normal(np.shape(y))
        program = Program(work, loss, x, targets, rng)
        y, f0 = program.baseline()
        again = program.evaluate(0)
        if again != f0:
            raise NonDeterministicError(
                f"GradientChecker: the cost is not a deterministic function of the parameters: two "
                f"evaluations at the same point gave {f0!r} and {again!r}. A layer draws random numbers "
                "from a generator that is not registered as an attribute (np.random.* or a generator kept "
                "in a list/dict), or keeps state between calls; make it deterministic or pass the "
                "generator as an attribute (self.rng = ...)."
            )
        tensors = self._analytic(program, work, x)
        results = [self._check_full(program, t, f0) for t in tensors]
        cost = "loss " + type(loss).__name__ if loss is not None else "sum(R * output), R ~ N(0, 1)"
        return GradientReport(results, cost=cost, evaluations=program.evaluations)

    # ------------------------------------------------------------------ analytic side
    def _backward(self, program: Program, work: Layer) -> tuple[float, Any]:
        program.reset()
        y = work.forward(program.x)
        f = program.cost(y)
        dx = work.backward(program.upstream())
        return f, dx

    def _analytic(self, program: Program, work: Layer, x: Any) -> list[_Tensor]:
        params = list(work.named_parameters())
        work.zero_grad()
        f1, dx = self._backward(program, work)
        first = [p.grad.copy() for _, p in params]
        # the accumulation contract: a second backward must add the same gradient again
        f2, dx2 = self._backward(program, work)
        second = [p.grad.copy() for _, p in params]
        if f1 != program.evaluate(0) or f2 != f1:
            raise NonDeterministicError(
                "GradientChecker: the cost differs between forward passes at the same point; "
                "a layer's forward is not deterministic"
            )
        stage_of = program.first_stage_of()
        tensors: list[_Tensor] = []
        for (name, p), g1, g2 in zip(params, first, second, strict=True):
            problems: list[str] = []
            analytic: np.ndarray | None = g1
            if g1.shape != p.data.shape:
                problems.append(f"backward left .grad of shape {g1.shape}, expected {p.data.shape}")
                analytic = None
            else:
                scale = np.abs(g1) * 8 * U64 + 1e-300
                if not np.all(np.abs(g2 - 2 * g1) <= 4 * scale):
                    if np.any(g1 != 0) and np.all(np.abs(g2 - g1) <= 4 * scale):
                        problems.append("backward assigns into .grad instead of adding (+=): a second "
                                        "backward gave the same gradient, not twice it")
                    else:
                        problems.append("a second backward did not add the same gradient again "
                                        "(the accumulation contract: .grad += ...)")
            tensors.append(_Tensor(name, p.data, stage_of.get(id(p), 0), analytic, problems))
        if self.check_input and isinstance(x, np.ndarray) and x.dtype.kind == "f":
            problems = []
            analytic = None
            if dx is None:
                problems.append("backward returned None instead of dCost/dinput")
            elif np.shape(dx) != x.shape:
                problems.append(f"backward returned dCost/dinput of shape {np.shape(dx)}, expected {x.shape}")
            else:
                analytic = np.asarray(dx, dtype=np.float64).copy()
                if dx2 is not None and np.shape(dx2) == x.shape and not np.array_equal(dx, dx2):
                    problems.append("two backward passes at the same point returned different dCost/dinput")
            tensors.insert(0, _Tensor("input", x, 0, analytic, problems))
        work.zero_grad()
        return tensors

    # ------------------------------------------------------------------ numerical side
    def _noise(self, program: Program, t: _Tensor, f0: float) -> float:
        """Bound on the round-off error of one cost evaluation when ``t`` moves (see numerics)."""
        arr = t.array
        saved = arr.copy()
        rng = np.random.default_rng([self.seed, 7, arr.size])
        direction = rng.choice([-1.0, 1.0], size=arr.shape) * np.maximum(np.abs(saved), 1.0) * 1e-9
        values = []
        try:
            for j in range(9):
                np.copyto(arr, saved + j * direction)
                values.append(program.evaluate(t.stage) if j else f0)
        finally:
            np.copyto(arr, saved)
        sigma = noise_level(np.array(values))
        return max(4.0 * sigma, 2.0 * U64 * abs(f0), 1e-300)

    def _check_full(self, program: Program, t: _Tensor, f0: float) -> TensorResult:
        arr = t.array
        shape = tuple(arr.shape)
        if t.analytic is None or arr.size == 0:
            return TensorResult(t.name, shape, passed=not t.problems and t.analytic is not None,
                                problems=t.problems, size=arr.size)
        eps_f = self._noise(program, t, f0)
        flat_w = arr.reshape(-1).copy()
        steps = exact_steps(flat_w, self.eps)
        n = arr.size
        fvals = np.empty((4, n))
        stage = t.stage
        for i in range(n):
            index = np.unravel_index(i, shape)
            w = flat_w[i]
            h = steps[i]
            try:
                for j, s in enumerate((h, -h, 0.5 * h, -0.5 * h)):
                    arr[index] = w + s
                    fvals[j, i] = program.evaluate(stage)
            finally:
                arr[index] = w
        analytic = t.analytic.reshape(-1)
        v = judge(analytic, f0, fvals[0], fvals[1], fvals[2], fvals[3], steps, eps_f, self.safety)
        return self._result(t, shape, analytic, v.numerical, v.error, v.bound, v.status, steps, "full")

    def _result(self, t: _Tensor, shape: tuple[int, ...], analytic: np.ndarray, numerical: np.ndarray,
                 error: np.ndarray, bound: np.ndarray, status: np.ndarray, steps: np.ndarray,
                 mode: str, flat_index: np.ndarray | None = None) -> TensorResult:
        checked = status != KINK
        failed = int(np.sum(status == FAIL))
        res = TensorResult(t.name, shape, passed=failed == 0 and not t.problems, mode=mode,
                           checked=int(np.sum(checked)), skipped=int(np.sum(status == KINK)),
                           failed=failed, problems=list(t.problems), size=int(np.prod(shape)))
        if np.any(checked):
            score = np.where(checked, error / (self.safety * bound), -np.inf)
            k = int(np.argmax(score))
            denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numerical)), self.safety * bound)
            rel = np.where(checked, error / denom, 0.0)
            res.max_abs_error = float(np.max(np.where(checked, error, 0.0)))
            res.max_rel_error = float(np.max(rel))
            pos = k if flat_index is None else int(flat_index[k])
            res.worst_index = tuple(int(i) for i in np.unravel_index(pos, shape))
            res.analytic = float(analytic[k])
            res.numerical = float(numerical[k])
            res.step = float(steps[k])
            res.bound = float(bound[k])
        _ = OK
        return res
