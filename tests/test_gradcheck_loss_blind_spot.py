"""A loss's own parameter at a blind spot (all 0, all 1 or -1) is moved off it for a second check, as the
model's are: a temperature T = 1 in the loss whose gradient divides by T where T**2 is due passed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import minidl as md


class TemperedSSE(md.Loss):
    """``1/2 sum((y/T - t)^2)``, a learnable temperature ``T`` (scalar); ``bug``: dT divided by T, not T**2."""

    def __init__(self, T: float = 1.0, bug: bool = False) -> None:
        self.T = md.Parameter(np.array(T))
        self.bug = bug

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        d = y_pred / self.T.data - y_true
        self._cache = (y_pred, d)
        return float(0.5 * np.sum(d ** 2))

    def backward(self) -> np.ndarray:
        y, d = self._cache
        T = self.T.data
        self.T.grad += -np.sum(d * y) / (T if self.bug else T ** 2)
        out: np.ndarray = d / T
        return out


class ShiftedSSE(md.Loss):
    """``1/2 sum((s * y + b - t)^2)`` with a learnable scale ``s`` (all 1) and shift ``b`` (all 0) per column;
    ``bug``: ds computed from ``s*y - t`` (b's term left out: right only while b is 0)."""

    def __init__(self, columns: int, bug: bool = False) -> None:
        self.s = md.Parameter(np.ones(columns))
        self.b = md.Parameter(np.zeros(columns))
        self.bug = bug

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        d = self.s.data * y_pred + self.b.data - y_true
        self._cache = (y_pred, y_true, d)
        return float(0.5 * np.sum(d ** 2))

    def backward(self) -> np.ndarray:
        y, t, d = self._cache
        self.s.grad += np.sum((self.s.data * y - t if self.bug else d) * y, axis=0)
        self.b.grad += np.sum(d, axis=0)
        out: np.ndarray = d * self.s.data
        return out


def check(loss: md.Loss, seed: int, columns: int = 3) -> md.GradientReport:
    rng = np.random.default_rng(seed)
    return md.GradientChecker(md.Dense(2, columns, rng=seed), loss,  # type: ignore[arg-type]
                              inputs=rng.normal(size=(5, 2)), targets=rng.normal(size=(5, columns))).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_temperature_at_one_is_checked_again_moved(seed: int) -> None:
    loss = TemperedSSE(bug=True)
    report = check(loss, seed)
    assert not report.passed and report.moved is not None
    assert str(report).startswith("Gradient check FAILED at a second point: right at the checked point")
    assert "wrong with 'loss.T' moved from 1 or -1 to 1.3 times that" in str(report)
    by_name = {r.name: r.status for r in report.moved.results}
    assert by_name["loss.T"] == "FAIL"
    assert float(loss.T.data) == 1.0 and not np.any(loss.T.grad)  # the user's loss is as it was


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_right_loss_temperature_passes_both_checks(seed: int) -> None:
    report = check(TemperedSSE(), seed)
    assert report.passed and report.moved is None
    assert "checked again with 'loss.T' moved from 1 or -1 to 1.3 times that: passes there too" in report.notes


@pytest.mark.parametrize("columns", [1, 3])
@pytest.mark.parametrize("bug", [False, True])
def test_a_loss_shift_at_zero_is_checked_again_moved(columns: int, bug: bool) -> None:
    loss = ShiftedSSE(columns, bug=bug)
    report = check(loss, 0, columns)
    assert report.passed is not bug
    if bug:
        assert report.moved is not None
        text = str(report)
        assert "'loss.s' moved from 1 or -1 to 1.3 times that" in text
        assert "'loss.b' moved from 0 to small random values" in text
        assert {r.name: r.status for r in report.moved.results}["loss.s"] == "FAIL"
    else:
        assert any(note.startswith("checked again with") and "passes there too" in note for note in report.notes)
    np.testing.assert_array_equal(loss.s.data, np.ones(columns))
    np.testing.assert_array_equal(loss.b.data, np.zeros(columns))


class Uncopyable(TemperedSSE):
    """A loss whose ``__deepcopy__`` returns itself: checked in place, its parameters never moved."""

    def __deepcopy__(self, memo: dict[int, object]) -> Uncopyable:
        return self


def test_a_loss_that_cannot_be_copied_keeps_its_parameters() -> None:
    loss = Uncopyable(bug=True)
    report = check(loss, 0)
    assert report.passed and report.moved is None  # (not moved: the user's own object)
    assert any("'loss.T'" in note and "all 1 or -1" in note for note in report.notes)
    assert float(loss.T.data) == 1.0
    assert copy.deepcopy(loss) is loss
