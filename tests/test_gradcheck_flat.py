"""GradientChecker: a tensor the cost is flat in at the checked point (every analytic and numerical
derivative exactly 0) was reported "ok" under a plain "PASSED", though nothing of its backward was
tested; and a clamp only some samples reach was diagnosed as an indexing bug."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker, TensorResult
from minidl.errors import GradientCheckError
from minidl.testing import assert_gradients_ok


def headline(report: md.GradientReport) -> str:
    return str(report).splitlines()[0]


class GLU(md.Layer):
    """y (N, o) = (x @ W) * sigmoid(x @ V), x (N, i); ``sign1`` flips the sign of dW[0, 0] (a bug)."""

    def __init__(self, i: int, o: int, rng: int = 0, sign1: bool = False) -> None:
        super().__init__()
        r = np.random.default_rng(rng)
        self.W = md.Parameter(r.normal(size=(i, o)) / np.sqrt(i))
        self.V = md.Parameter(r.normal(size=(i, o)) / np.sqrt(i))
        self.sign1 = sign1
        self._c: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        a, s = x @ self.W.data, 1 / (1 + np.exp(-(x @ self.V.data)))
        self._c = (x, a, s)
        return a * s

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._require_cache(self._c)
        assert self._c is not None
        x, a, s = self._c
        ga, gb = g * s, g * a * s * (1 - s)
        dW = x.T @ ga
        if self.sign1:
            dW[0, 0] = -dW[0, 0]
        self.W.grad += dW
        self.V.grad += x.T @ gb
        return ga @ self.W.data.T + gb @ self.V.data.T


X = np.random.default_rng(0).normal(size=(8, 5))
Y = np.random.default_rng(1).integers(0, 3, 8)
PAD = np.full(4, -100)  # every target the loss's ignore_index: padding rows


def dead_relu_model() -> md.Sequential:
    """A wrong GLU before a ReLU that is dead for these inputs: only the last Dense moves the cost."""
    glu = GLU(5, 3, sign1=True)
    glu.W.data = -np.abs(glu.W.data)
    first = md.Dense(5, 5, rng=0)
    first.W.data = np.abs(first.W.data)
    return md.Sequential(first, md.ReLU(), glu, md.ReLU(), md.Dense(3, 2, rng=1))


def test_a_wrong_layer_on_padding_rows_is_flat_not_ok() -> None:
    report = GradientChecker(md.Sequential(GLU(5, 3, sign1=True)), md.CrossEntropyLoss(ignore_index=-100),
                             inputs=np.abs(X[:4]), targets=PAD).run()
    assert report.passed  # (not a failure: the backward is right where it was looked at)
    assert [r.status for r in report.results] == ["flat", "flat", "flat"]
    assert all(r.flat and r.checked == r.size for r in report.results)
    assert report.flat == report.results and report.nothing_checked and report.unchecked == []
    assert headline(report) == ("Gradient check PASSED, but nothing was checked (nothing tested for input, 0.W, "
                                "0.V: the cost is flat in them here); cost: loss CrossEntropyLoss")
    note = report.notes[-1]
    assert note.startswith("the cost is flat in input, 0.W, 0.V at the checked point (every analytic and numerical "
                           "derivative is exactly 0): nothing of their backward was tested")
    assert "targets equal to the loss's ignore_index" in note and "rows that carry weight, units that are alive" in note
    rows = {line.split()[0]: line.split()[-1] for line in str(report).splitlines()[3:6]}
    assert rows == {"input": "flat", "0.W": "flat", "0.V": "flat"}
    # on rows that carry weight the same layer fails
    assert not GradientChecker(md.Sequential(GLU(5, 3, sign1=True)), md.CrossEntropyLoss(ignore_index=-100),
                               inputs=X[4:], targets=Y[4:]).run().passed


def test_a_wrong_layer_before_a_dead_relu_is_named_in_the_headline() -> None:
    report = GradientChecker(dead_relu_model(), inputs=np.abs(X[:4])).run()
    assert report.passed and not report.nothing_checked
    assert {r.name: r.status for r in report.results} == {
        "input": "flat", "0.W": "flat", "2.W": "flat", "2.V": "flat", "4.W": "ok"}
    assert [r.name for r in report.flat] == ["input", "0.W", "2.W", "2.V"]
    assert headline(report) == ("Gradient check PASSED (nothing tested for input, 0.W, 2.W, 2.V: the cost is flat "
                                "in them here); cost: sum(R * output), R ~ N(0, 1)")
    assert any(n.startswith("the cost is flat in input, 0.W, 2.W, 2.V at the checked point") and "a ReLU whose "
               "input is negative for every sample" in n for n in report.notes)


def test_assert_gradients_ok_refuses_an_all_flat_check() -> None:
    args: dict[str, Any] = dict(inputs=np.abs(X[:4]), loss=md.CrossEntropyLoss(ignore_index=-100), targets=PAD)
    with pytest.raises(GradientCheckError, match=r"(?s)^Gradient check PASSED, but nothing was checked \(nothing "
                                                 r"tested for input, 0.W, 0.V.*assert_gradients_ok: the check passed, "
                                                 r"but nothing was checked \(.*flat: every derivative exactly 0\).*"
                                                 r"rows that carry weight, units that are alive.*allow_unchecked=True"):
        assert_gradients_ok(md.Sequential(GLU(5, 3, sign1=True)), **args)
    report = assert_gradients_ok(md.Sequential(GLU(5, 3, sign1=True)), allow_unchecked=True, **args)
    assert report.nothing_checked and report.passed
    # one tensor checked for real is enough (as with a skipped one)
    assert not assert_gradients_ok(dead_relu_model(), inputs=np.abs(X[:4])).nothing_checked


def test_an_unused_parameter_is_flat_in_the_words_of_does_not_depend() -> None:
    class Unused(md.Layer):
        """y = x * s, x (N, 3); ``u`` (3,) is never used."""

        def __init__(self) -> None:
            super().__init__()
            self.s = md.Parameter(np.array([0.5, -1.0, 2.0]))
            self.u = md.Parameter(np.ones(3))
            self._x: np.ndarray | None = None

        def forward(self, x: np.ndarray) -> np.ndarray:
            self._x = x
            return x * self.s.data

        def backward(self, g: np.ndarray) -> np.ndarray:
            self._require_cache(self._x)
            x = self._x
            assert x is not None
            self.s.grad += (g * x).sum(axis=0)
            return g * self.s.data

    report = GradientChecker(Unused(), inputs=X[:4, :3]).run()
    assert report.passed and report["u"].status == "flat" and report["s"].status == "ok"
    assert report["input"].status == "ok"
    assert headline(report).startswith("Gradient check PASSED (nothing tested for u: the cost is flat in it here)")
    note = next(n for n in report.notes if n.startswith("the cost is flat in u"))
    assert "nothing of its backward was tested" in note and "does not depend on it at all (a parameter forward " \
           "never uses)" in note


def test_a_tensor_zero_in_part_stays_ok() -> None:
    """Some dead units zero some elements on both sides: the others are tested, as before."""
    first = md.Dense(4, 6, rng=0)
    first.W.data[:, :3] = -np.abs(first.W.data[:, :3])  # units 0..2 dead for positive inputs (bias row too)
    m = md.Sequential(first, md.ReLU(), md.Dense(6, 2, rng=1))
    report = GradientChecker(m, inputs=np.abs(X[:4, :4]) + 0.1).run()
    w = report["0.W"]
    assert report.passed and w.status == "ok" and not w.flat and report.flat == []
    assert headline(report) == "Gradient check PASSED; cost: sum(R * output), R ~ N(0, 1)"
    assert not any("flat" in n for n in report.notes)


def test_flat_status_needs_a_pass_and_a_checked_element() -> None:
    assert TensorResult("W", (3,), passed=True, checked=3, size=3, flat=True).status == "flat"
    assert TensorResult("W", (3,), passed=False, checked=3, size=3, failed=1, flat=True).status == "FAIL"
    assert TensorResult("W", (3,), passed=True, checked=0, skipped=3, size=3).status == "skipped"
    assert TensorResult("W", (3,), passed=True, checked=3, size=3).status == "ok"


class BadClip(md.Layer):
    """y = clip(x, -1, 1); backward passes the gradient on everywhere (wrong where the clamp bites)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, -1, 1)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g.copy()


def test_a_clamp_only_some_samples_reach_is_diagnosed_as_a_clamp() -> None:
    x = np.random.default_rng(0).normal(size=(4, 5)) * 0.3
    x[0, 2] = 1.7  # only sample 0 reaches the clamp
    report = GradientChecker(BadClip(), inputs=x).run()
    assert not report.passed
    assert report["input"].diagnosis == (
        "only samples [0] of the batch are wrong, samples [1, 2, 3] are right (where they fail every numerical "
        "derivative is exactly 0 and the analytic one is not: those samples sit where forward is flat -- a clamp or "
        "threshold only they reach, e.g. np.clip -- and backward passes the gradient on anyway; or an indexing or "
        "broadcasting bug that depends on the sample)")


def test_a_sample_dependent_error_off_zero_keeps_the_indexing_hint() -> None:
    class FirstDoubled(md.Layer):
        """y = x; backward doubles sample 0's gradient (an indexing bug)."""

        def forward(self, x: np.ndarray) -> np.ndarray:
            return x.copy()

        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = g.copy()
            dx[0] *= 2
            return dx

    report = GradientChecker(FirstDoubled(), inputs=X[:4]).run()
    diagnosis = report["input"].diagnosis
    assert diagnosis is not None and diagnosis.startswith(
        "only samples [0] of the batch are wrong, samples [1, 2, 3] are right (the error depends on the sample: an "
        "indexing or broadcasting bug?)")


def test_a_tensor_checked_along_directions_can_be_flat_too() -> None:
    first = md.Dense(40, 30, rng=0)
    first.W.data = -np.abs(first.W.data)  # every unit dead for positive inputs
    x = np.abs(np.random.default_rng(0).normal(size=(4, 40)))
    report = GradientChecker(md.Sequential(first, md.ReLU(), md.Dense(30, 3, rng=1)), inputs=x).run()
    assert report["0.W"].mode == "directional" and report["0.W"].status == "flat"
    assert report["2.W"].status == "ok" and report.passed
    assert headline(report).startswith("Gradient check PASSED (nothing tested for input, 0.W: the cost is flat in "
                                       "them here)")
