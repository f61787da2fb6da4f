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


class Emb(md.Layer):
    """Rows of W (V, D) picked by the integer-valued input (N, 1); ``factor`` scales dW (1 is right)."""

    def __init__(self, V: int, D: int, factor: float = 1.0) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(0).normal(size=(V, D)))
        self.factor = factor
        self._i: np.ndarray | None = None

    def forward(self, idx: np.ndarray) -> np.ndarray:
        self._i = idx[:, 0].astype(int)
        return self.W.data[self._i]

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._require_cache(self._i)
        assert self._i is not None
        gw = np.zeros_like(self.W.data)
        np.add.at(gw, self._i, g)
        self.W.grad += self.factor * gw
        return np.zeros((g.shape[0], 1))


USED = np.array([[17.0], [2222.0]])  # (rows 17 and 2222 of 5000: 8 of 20000 elements of dW are not 0)


def test_a_sample_includes_elements_where_a_sparse_gradient_is_not_zero() -> None:
    """A stratified sample of 32 of 20000 elements missed the 8 that move the cost: a right embedding was called
    flat (and refused by assert_gradients_ok), a doubled dW passed as flat too."""
    right = GradientChecker(Emb(5000, 4), inputs=USED, check_input=False, mode="sampled").run()
    w = right["W"]
    assert right.passed and w.status == "partial" and not w.flat and right.flat == [], str(right)
    assert w.checked == 32 + 4 and abs(w.analytic) > 0, str(right)  # (4 = 32 // 8 added where dW is not 0)
    assert_gradients_ok(Emb(5000, 4), inputs=USED, check_input=False, mode="sampled")
    wrong = GradientChecker(Emb(5000, 4, factor=2.0), inputs=USED, check_input=False, mode="sampled").run()
    assert not wrong.passed and wrong["W"].status == "FAIL" and wrong["W"].failed == 4, str(wrong)  # (32 // 8)
    assert wrong["W"].diagnosis is not None and "analytic = 2 x numerical" in wrong["W"].diagnosis
    with pytest.raises(GradientCheckError, match="analytic = 2 x numerical"):
        assert_gradients_ok(Emb(5000, 4, factor=2.0), inputs=USED, check_input=False, mode="sampled")


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_after_a_kink_the_sample_of_a_large_sparse_tensor_tests_its_non_zero_elements(factor: float) -> None:
    """auto mode: the directional pass crosses the ReLU's kink at W[17, 0] = 0, then 128 stratified elements were
    checked, all in unused rows: flat, and a doubled dW passed."""
    model = md.Sequential(Emb(5000, 4, factor), md.ReLU())
    model[0].W.data[17, 0] = 0.0
    report = GradientChecker(model, inputs=USED, check_input=False).run()
    w = report["0.W"]
    assert w.mode == "directional->sampled" and not w.flat, str(report)
    assert (w.status, report.passed) == (("partial", True) if factor == 1.0 else ("FAIL", False)), str(report)


def test_the_sample_is_unchanged_for_a_dense_gradient_and_only_grows_for_a_sparse_one() -> None:
    checker = GradientChecker(md.Dense(3, 2), samples=32)
    shape = (500, 40)
    plain = checker._sample(shape)
    dense = np.random.default_rng(0).normal(size=shape)
    assert np.array_equal(checker._sample(shape, analytic=dense), plain)
    sparse = np.zeros(shape)
    sparse[[17, 222], 3] = 1.0
    picked = checker._sample(shape, analytic=sparse)
    assert picked.size == plain.size + 2 == 34 and np.array_equal(picked, np.unique(picked))
    assert {17 * 40 + 3, 222 * 40 + 3} <= set(picked.tolist())  # (both: min(32 // 8, 2))
    assert set(plain.tolist()) <= set(picked.tolist())  # added, not swapped in: nothing of the plain sample lost
    assert np.array_equal(checker._sample(shape, analytic=sparse), picked)  # (the checker's seed: the same again)
    assert np.array_equal(checker._sample(shape, analytic=np.zeros(shape)), plain)


def test_a_tensor_is_flat_only_if_its_whole_analytic_gradient_is_zero() -> None:
    """Flat was decided on the sampled elements' analytic values: the elements not sampled now decide too."""
    class Sampled(GradientChecker):  # (the old sample: no element where the gradient is not 0)
        def _sample(self, shape: tuple[int, ...], budget: int | None = None, analytic: Any = None) -> np.ndarray:
            return super()._sample(shape, budget)

    report = Sampled(Emb(5000, 4), inputs=USED, check_input=False, mode="sampled").run()
    w = report["W"]
    assert w.checked == 32 and w.analytic == 0 and w.numerical == 0, str(report)
    assert not w.flat and w.status == "partial" and report.flat == [] and not report.nothing_checked, str(report)


def test_a_failed_report_is_never_nothing_checked() -> None:
    """nothing_checked was True on a report whose only tensor failed (no 'ok' or 'partial' one)."""
    failed = md.GradientReport([TensorResult("W", (3,), passed=False, checked=3, failed=3, size=3)])
    assert not failed.passed and not failed.nothing_checked
    # (a doubled dW, auto mode: the directional pass fails, a sample of 2048 elements then finds it)
    report = GradientChecker(Emb(5000, 4, factor=2.0), inputs=USED, check_input=False).run()
    assert report["W"].status == "FAIL" and report["W"].mode == "directional->sampled", str(report)
    assert not report.passed and not report.nothing_checked, str(report)
    assert headline(report).startswith("Gradient check FAILED")
    skipped = md.GradientReport([TensorResult("W", (3,), passed=True, checked=0, skipped=3, size=3)])
    assert skipped.nothing_checked  # (a passing report with nothing checked, as before)


class ZeroEmb(Emb):
    """An embedding whose backward forgets dW (zeros: wrong)."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        return np.zeros((g.shape[0], 1))


def test_a_flat_tensor_checked_on_a_sample_is_not_given_a_cause() -> None:
    """Backward gives 0 everywhere, the sample moved only unused rows: the note said the cost does not depend on W
    (unused, ignored rows, dead units), which the sample cannot tell."""
    report = GradientChecker(ZeroEmb(5000, 4), inputs=USED, check_input=False, mode="sampled").run()
    assert report["W"].status == "flat" and report.nothing_checked, str(report)
    note = report.notes[-1]
    assert note == ("the cost is flat in W at the checked point (every analytic and numerical derivative is exactly "
                    "0): nothing of its backward was tested, and a wrong one would pass as well. The cause is not "
                    "certain here: W was moved on a sample of elements only (backward gives 0 for every one; one not "
                    "sampled may move the cost); check again with mode='full', and on other inputs or targets"), note
    assert "dead" not in note and "ignore_index" not in note


def test_a_flat_tensor_beside_a_float32_layer_is_not_given_a_cause() -> None:
    class Const32(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return (0.1 + 0 * x).astype(np.float32).astype(x.dtype)

        def backward(self, g: np.ndarray) -> np.ndarray:
            return g * 0.0

    model = md.Sequential(md.Dense(3, 4, rng=0), Const32(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=X[:4, :3]).run()
    assert [r.status for r in report.results] == ["flat", "flat", "ok"], str(report)
    assert report.notes[0].startswith("layer '1' (Const32) computes in float32")
    note = report.notes[-1]
    assert note.endswith("The cause is not certain here: something computes below float64 (see the first note), "
                         "whose rounding can keep the cost from moving; check again once it computes in float64, and "
                         "on other inputs or targets"), note


class SkipsFirst(Emb):
    """An embedding whose backward loop starts at sample 1 (an off-by-one: sample 0's row is forgotten)."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._i is not None
        gw = np.zeros_like(self.W.data)
        np.add.at(gw, self._i[1:], g[1:])
        self.W.grad += gw
        return np.zeros((g.shape[0], 1))


def test_elements_where_the_backward_says_zero_stay_in_the_sample() -> None:
    """The elements added where dW is not 0 once took the place of sampled ones where it is 0, the lowest first:
    a backward forgetting sample 0's row (used row 160) lost the one sampled element that showed it, and passed."""
    used = np.array([[160.0], [2222.0]])
    report = GradientChecker(SkipsFirst(5000, 4), inputs=used, check_input=False, mode="sampled").run()
    assert not report.passed and report["W"].status == "FAIL" and report["W"].failed >= 1, str(report)
