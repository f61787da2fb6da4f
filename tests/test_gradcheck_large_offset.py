"""Inputs with a large offset next to the scale the cost changes on (a batch norm of data at 1e6 with a spread of
1e-3): the default step eps * |w| (1e2 there) saturates the cost, so a failure of an element with |w| > 1 is
confirmed on finer steps, down to the element's own round-off; a right backward passes, a wrong one still fails."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

R = np.random.default_rng


def _data(offset: float, spread: float, seed: int, batch: int) -> np.ndarray:
    return offset + spread * R(seed).normal(size=(batch, 4))


@pytest.mark.parametrize("spread", [1e-3, 0.0])
@pytest.mark.parametrize("offset", [3e5, 1e6])
@pytest.mark.parametrize("batch", [2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_norm_on_large_offset_passes(seed: int, batch: int, offset: float, spread: float) -> None:
    model = md.Sequential(md.BatchNorm1d(4), md.Dense(4, 2, rng=seed))
    report = md.GradientChecker(model, inputs=_data(offset, spread, seed, batch)).run()
    assert report.passed, str(report)
    assert not any(r.failed for r in report.results)


def test_batch_norm_on_large_offset_is_judged_on_finer_steps() -> None:
    """The 11 elements that failed at the default step 1e2 (analytic 5.0, numerical 9e-4) are judged on a finer
    step (~1e-4) where the cost is linear: every element the cost is not flat in agrees there."""
    model = md.Sequential(md.BatchNorm1d(4), md.Dense(4, 2, rng=0))
    report = md.GradientChecker(model, inputs=_data(1e6, 1e-3, 0, 7)).run()
    assert report.passed, str(report)
    x = report.results[0]
    assert x.name == "input" and x.status == "partial" and x.failed == 0
    assert x.checked >= 14 and x.zoomed == x.checked
    assert any("judged again on finer steps" in note for note in x.notes), x.notes


@pytest.mark.parametrize("layer", [lambda: md.LayerNorm(4), lambda: md.GroupNorm(2, 4)],
                         ids=["LayerNorm", "GroupNorm"])
@pytest.mark.parametrize("spread", [1e-3, 0.0])
@pytest.mark.parametrize("offset", [3e5, 1e6])
def test_other_norms_on_large_offset_pass(layer, offset: float, spread: float) -> None:  # type: ignore[no-untyped-def]
    x = offset + spread * R(0).normal(size=(5, 4))
    report = md.GradientChecker(md.Sequential(layer(), md.Dense(4, 2, rng=0)), inputs=x).run()
    assert report.passed, str(report)


def test_dense_on_inputs_of_a_million_passes() -> None:
    report = md.GradientChecker(md.Dense(4, 2, rng=0), inputs=1e6 + R(0).normal(size=(5, 4))).run()
    assert report.passed and all(r.status == "ok" for r in report.results), str(report)


class _BatchNorm(md.Layer):
    """Batch normalisation of (N, D) without parameters; ``factor`` scales dx, ``centre=False`` leaves out the
    mean term of dx (a bug either way but the defaults)."""

    def __init__(self, factor: float = 1.0, centre: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.factor, self.centre, self.eps = factor, centre, eps
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        mu = x.mean(axis=0)
        inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=0) + self.eps)
        xhat = (x - mu) * inv
        self._cache = (xhat, inv)
        return xhat

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._cache)
        assert self._cache is not None
        xhat, inv = self._cache
        g = grad_output
        dx = g - xhat * (g * xhat).mean(axis=0)
        if self.centre:
            dx = dx - g.mean(axis=0)
        return self.factor * inv * dx


@pytest.mark.parametrize("offset", [3e5, 1e6])
def test_custom_batch_norm_right_passes(offset: float) -> None:
    model = md.Sequential(_BatchNorm(), md.Dense(4, 2, rng=0))
    report = md.GradientChecker(model, inputs=_data(offset, 1e-3, 0, 7)).run()
    assert report.passed, str(report)


@pytest.mark.parametrize("bug", [{"factor": 1.01}, {"centre": False}], ids=["dx*1.01", "missing-mean-term"])
@pytest.mark.parametrize("offset", [3e5, 1e6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_custom_batch_norm_wrong_fails(bug: dict[str, object], offset: float, seed: int) -> None:
    model = md.Sequential(_BatchNorm(**bug), md.Dense(4, 2, rng=seed))  # type: ignore[arg-type]
    report = md.GradientChecker(model, inputs=_data(offset, 1e-3, seed, 7)).run()
    assert not report.passed, str(report)
    assert [r.name for r in report.results if not r.passed] == ["input"]


def test_plain_mlp_cost_unchanged() -> None:
    """No failure, no confirmation: the cost evaluations of a passing check are those before the change."""
    model = md.Sequential(md.Dense(3, 5, rng=0), md.Tanh(), md.Dense(5, 2, rng=1))
    checker = md.GradientChecker(model, inputs=R(0).normal(size=(4, 3)))
    report = checker.run()
    assert report.passed
    assert report.evaluations == EXPECTED_MLP_EVALUATIONS, report.evaluations


EXPECTED_MLP_EVALUATIONS = 141  # (on main before the change too)


class _SinOneWrong(md.Layer):
    """y = sin(x @ W), its dx wrong by ``1 + d`` in the one element ``j``: a bug on an input of |x| ~ 100."""

    def __init__(self, scale: float, seed: int, d: float, j: int) -> None:
        super().__init__()
        self.W = md.Parameter(scale * R(seed).normal(size=(5, 3)))
        self.d, self.j = d, j
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.W.data
        self._cache = (x, z)
        return np.sin(z)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._cache is not None
        x, z = self._cache
        g = grad_output * np.cos(z)
        self.W.grad += x.T @ g
        dx = g @ self.W.data.T
        dx.flat[self.j] *= 1 + self.d
        return dx


@pytest.mark.parametrize(("offset", "scale", "j"), [(100.0, 10.0, 10), (1e3, 1.0, 15)])
def test_a_failure_on_a_step_where_the_cost_is_linear_is_not_cleared_on_a_coarser_one(offset: float, scale: float,
                                                                                       j: int) -> None:
    """The element failed at stage A's h/16, where the cost is linear (3e-4 off, its tolerance 2e-4 of it); the
    finer steps for |w| > 1 once started at h/4, coarser than that, where the tolerance took the bug in: they
    are only for a step too large for the cost (secants at s and s/2 apart), and never start above the verdict's."""
    x = offset + R(10).normal(size=(4, 5)) * max(1.0, offset * 1e-3)
    model = md.Sequential(_SinOneWrong(scale, 0, 3e-4, j), md.Dense(3, 2, rng=0))
    report = md.GradientChecker(model, inputs=x).run()
    assert not report.passed
    assert report["input"].failed == 1 and report["input"].status == "FAIL", str(report)


class _TanhDxOff(md.Layer):
    """y = tanh(x @ W / 10), its dx 0.1% too large everywhere: a bug in every element of an input of |x| ~ 5."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(R(0).normal(size=(20, 8)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.tanh(x @ self.W.data / 10)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        gz = grad_output * (1 - np.tanh(self._x @ self.W.data / 10) ** 2) / 10
        self.W.grad += self._x.T @ gz
        return 1.001 * (gz @ self.W.data.T)


def test_the_finer_steps_stop_once_a_few_failures_stood(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each confirmation costs 12 evaluations; a tensor failing everywhere with |w| > 1 (640 elements) once took
    11895 evaluations instead of 4215: once CONFIRM_STOOD failures stood, the cost linear on their step, the
    stage stops for that tensor, which fails on them."""
    from minidl.gradcheck import elements

    calls: list[int] = []
    original = elements.ElementCheck.saturated_at

    def counted(self: elements.ElementCheck, j: int, s: float, eps_f: float) -> bool:
        calls.append(j)
        return original(self, j, s, eps_f)

    monkeypatch.setattr(elements.ElementCheck, "saturated_at", counted)
    report = md.GradientChecker(_TanhDxOff(), inputs=5 + R(2).normal(size=(32, 20))).run()
    assert not report.passed and report["input"].failed == 640
    assert len(calls) == elements.CONFIRM_STOOD
    assert report.evaluations < 4400
    assert not any("confirmation on finer steps" in note for note in report["input"].notes)
