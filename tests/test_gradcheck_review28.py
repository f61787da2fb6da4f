"""Review 28 of the gradient checker: failures of the second check listed by ``report.failed``, ``check_input``
per input, a note on a batch of one, ``params=``, the repeated-index hint, the blind-spot advice once acted on,
probe warnings kept quiet, and an isolated element in a small input."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker

X = np.random.default_rng(0).normal(size=(5, 4))


class LoRA(md.Layer):
    """y = x @ W + x @ A @ B with B = 0 (as LoRA starts); ``doubled``: A's gradient twice what it is."""

    def __init__(self, doubled: bool = False) -> None:
        super().__init__()
        g = np.random.default_rng(0)
        self.W = md.Parameter(g.normal(size=(4, 3)) * 0.5)
        self.A = md.Parameter(g.normal(size=(4, 2)) * 0.5)
        self.B = md.Parameter(np.zeros((2, 3)))
        self.doubled = doubled
        self._c: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        u = x @ self.A.data
        self._c = (x, u)
        return x @ self.W.data + u @ self.B.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._c is not None
        x, u = self._c
        self.W.grad += x.T @ g
        self.B.grad += u.T @ g
        du = g @ self.B.data.T
        self.A.grad += (2 if self.doubled else 1) * x.T @ du
        return g @ self.W.data.T + du @ self.A.data.T


def test_a_failure_only_in_the_second_check_is_listed_by_failed_tagged_moved() -> None:
    report = GradientChecker(LoRA(doubled=True), inputs=X).run()
    assert not report.passed
    assert [r.name for r in report.failed] == ["A (moved)"]
    assert report.failed[0].diagnosis is not None and "analytic = 2 x numerical" in report.failed[0].diagnosis
    # report[name] is the verdict at the checked point (flat there); the tagged name gives the second check's
    assert report["A"].passed and report["A"].status == "flat"
    assert not report["A (moved)"].passed and report["A (moved)"].status == "FAIL"
    assert report.moved is not None and report.moved["A"].name == "A"  # (the sub-report keeps its own names)
    # the table's headline counts the checked point's tensors, as before
    assert str(report).startswith("Gradient check FAILED at a second point")
    with pytest.raises(KeyError, match=r"'A \(moved\)'"):
        report["C"]
    right = GradientChecker(LoRA(), inputs=X).run()
    assert right.passed and right.failed == []


def test_the_blind_spot_advice_is_dropped_once_the_second_check_ran() -> None:
    report = GradientChecker(LoRA(), inputs=X).run()
    blind = [n for n in report.notes if n.startswith("the parameter(s) 'B' are all zero")]
    assert len(blind) == 1 and "check at a random point too" not in blind[0]
    assert blind[0].endswith("passes)")
    assert "checked again with 'B' moved from 0 to small random values: passes there too" in report.notes
    failed = GradientChecker(LoRA(doubled=True), inputs=X).run()
    assert not any("check at a random point too" in n for n in failed.notes)


class Weighted(md.Layer):
    """y = v * w for inputs (v, w), w a float mask without a gradient (backward returns None for it)."""

    def forward(self, x: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        self._w = x[1]
        return x[0] * x[1]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
        return g * self._w, None


def test_check_input_takes_one_bool_per_input() -> None:
    inputs = (X, (X > 0).astype(float))
    report = GradientChecker(Weighted(), inputs=inputs).run()
    assert report["input[1]"].problems == [
        "backward returned None instead of dCost/dinput[1] (if the input has no gradient -- a float mask, sample "
        "weights --, leave it out of the check: check_input=(True, False), one bool per input)"]
    report = GradientChecker(Weighted(), inputs=inputs, check_input=(True, False)).run()
    assert report.passed and [r.name for r in report.results] == ["input[0]"]
    assert GradientChecker(Weighted(), inputs=inputs, check_input=[True, False]).check_input == (True, False)
    with pytest.raises(ValueError, match=r"check_input has 3 entries, one per input, but the inputs are 2 arrays "
                                         r"\(input\[0\], input\[1\]\); give one bool per input"):
        GradientChecker(Weighted(), inputs=inputs, check_input=(True, False, True)).run()
    with pytest.raises(TypeError, match=r"check_input\[1\] must be True or False, got 'no'"):
        GradientChecker(Weighted(), inputs=inputs, check_input=(True, "no"))
    with pytest.raises(ValueError, match="check_input must be True, False, or one bool per input, got an empty"):
        GradientChecker(Weighted(), inputs=inputs, check_input=())
    with pytest.raises(ValueError, match="check_input has 2 entries, one per input, but the inputs are one array"):
        GradientChecker(md.Dense(4, 3, rng=0), inputs=X, check_input=(True, False)).run()


def test_a_single_input_returned_none_is_told_check_input_false() -> None:
    class NoDx(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return 2 * x

        def backward(self, g: np.ndarray) -> None:
            return None

    report = GradientChecker(NoDx(), inputs=X).run()
    assert report["input"].problems == [
        "backward returned None instead of dCost/dinput (if the input has no gradient -- a float mask, sample "
        "weights --, leave it out of the check: check_input=False)"]


class BatchMeanScale(md.Layer):
    """y = s * x; backward averages ds over the batch where forward sums: wrong for N > 1 only."""

    def __init__(self) -> None:
        super().__init__()
        self.s = md.Parameter(np.array([0.7, 1.2, -0.4, 0.9]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return self.s.data * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.s.grad += (g * self._x).mean(axis=0)
        return g * self.s.data


def test_a_batch_of_one_sample_says_a_batch_mix_up_cannot_show() -> None:
    one = GradientChecker(BatchMeanScale(), inputs=X[:1]).run()
    assert one.passed
    assert any(n.startswith("the inputs hold one sample (a batch of N = 1): a sum and a mean over the batch are "
                            "then the same") for n in one.notes)
    several = GradientChecker(BatchMeanScale(), inputs=X).run()
    assert not several.passed and not any("one sample" in n for n in several.notes)


def test_params_restricts_the_checked_parameters() -> None:
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Tanh(), md.Dense(3, 2, rng=1))
    report = GradientChecker(model, inputs=X, params=["2.W"]).run()
    assert [r.name for r in report.results] == ["input", "2.W"]
    assert "params= chose '2.W': the parameter(s) '0.W' were not checked" in report.notes
    only_input = GradientChecker(model, inputs=X, params=[]).run()
    assert [r.name for r in only_input.results] == ["input"]
    with pytest.raises(ValueError, match=r"params names '2.w', which is not a parameter of Sequential; did you "
                                         r"mean '2.W'\? \(its parameters, as named_parameters\(\) names them: "
                                         r"0.W, 2.W\)"):
        GradientChecker(model, inputs=X, params=["2.w"]).run()
    with pytest.raises(TypeError, match=r"got the string '2.W' \(one name: params=\['2.W'\]\)"):
        GradientChecker(model, inputs=X, params="2.W")
    with pytest.raises(ValueError, match=r"names '2\.W' more than once"):
        GradientChecker(model, inputs=X, params=["2.W", "2.W"])


class IdxScale(md.Layer):
    """y = v * scale[idx][:, None] for inputs (v, idx); ``fancy``: ``grad[idx] += c`` (loses repeats)."""

    def __init__(self, fancy: bool) -> None:
        super().__init__()
        self.scale = md.Parameter(np.array([1.1, 0.8, 1.3]))
        self.fancy = fancy

    def forward(self, x: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        self._c = x
        return x[0] * self.scale.data[x[1]][:, None]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
        v, idx = self._c
        contrib = (g * v).sum(axis=1)
        if self.fancy:
            self.scale.grad[idx] += contrib
        else:
            np.add.at(self.scale.grad, idx, contrib)
        return g * self.scale.data[idx][:, None], None


def test_repeated_indices_lost_by_fancy_assignment_get_the_add_at_hint() -> None:
    inputs = (X, np.array([0, 2, 2, 1, 0]))
    report = GradientChecker(IdxScale(fancy=True), inputs=inputs).run()
    assert report["scale"].diagnosis == (
        "the failing elements lie only in rows [0, 2] of 'scale', which input[1] holds more than once, and rows it "
        "holds once ([1]) are right: a gradient scattered with grad[idx] += v keeps one contribution per repeated "
        "index (NumPy's fancy-index assignment does not add them up); use np.add.at(grad, idx, v)")
    assert GradientChecker(IdxScale(fancy=False), inputs=inputs).run().passed


def test_no_repeated_index_hint_without_the_signature() -> None:
    class WrongRow1(IdxScale):
        def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
            dx = super().backward(g)
            self.scale.grad[1] += 0.5  # wrong in the row used once, not in the repeated ones
            return dx

    report = GradientChecker(WrongRow1(fancy=False), inputs=(X, np.array([0, 2, 2, 1, 0]))).run()
    assert not report.passed and "np.add.at" not in str(report["scale"].diagnosis)


def test_probe_warnings_of_the_users_forward_stay_inside_the_checker() -> None:
    class LogSq(md.Layer):
        """log(x**2 + c): a probe step on c (1e-6) leaves the domain."""

        def __init__(self) -> None:
            super().__init__()
            self.c = md.Parameter(np.array([1e-6]))

        def forward(self, x: np.ndarray) -> np.ndarray:
            self._x = x
            return np.log(x ** 2 + self.c.data)

        def backward(self, g: np.ndarray) -> np.ndarray:
            den = self._x ** 2 + self.c.data
            self.c.grad += np.sum(g / den)
            return g * 2 * self._x / den

    xs = np.random.default_rng(0).normal(size=(5, 6)) * 1e-3
    xs[0, 0] = 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = GradientChecker(LogSq(), inputs=xs).run()
    assert report.passed
    assert any("took the cost outside its domain" in n for n in report["c"].notes)
    # outside the probes numpy warns as the user set it up
    with pytest.warns(RuntimeWarning, match="invalid value encountered in log"):
        np.log(np.array([-1.0]))


class Spoiled(md.Layer):
    """y = x * w (per feature); backward's dx then goes through ``spoil`` (in place): a bug in some of its
    elements, for the diagnosis to name."""

    def __init__(self, spoil: Callable[[np.ndarray], None]) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([0.5, -1.5, 2.0, 0.7]))
        self.spoil = spoil

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(axis=0)
        dx = g * self.w.data
        self.spoil(dx)
        return dx


def flip_one(dx: np.ndarray) -> None:  # the sign of dx at (0, 1) only
    dx[0, 1] *= -1


def double_first_sample(dx: np.ndarray) -> None:
    dx[0] *= 2


def three_in_a_column(dx: np.ndarray) -> None:  # one feature's gradient wrong in 3 samples, 3 factors
    dx[0:3, 1] *= np.array([2.0, -3.0, 5.0])


def three_apart(dx: np.ndarray) -> None:  # at (0, 1), (2, 3), (4, 0), 3 factors
    dx[[0, 2, 4], [1, 3, 0]] *= np.array([2.0, -3.0, 5.0])


def test_one_wrong_element_of_twenty_is_isolated_not_a_wrong_sample() -> None:
    report = GradientChecker(Spoiled(flip_one), inputs=X).run()
    assert report["input"].diagnosis == (
        "only 1 isolated element(s) wrong, at [(0, 1)], where the analytic value is minus the numerical one (a sign "
        "flip): an indexing bug or a special case in backward?")


def test_a_whole_wrong_sample_is_still_a_wrong_sample() -> None:
    diagnosis = GradientChecker(Spoiled(double_first_sample), inputs=X).run()["input"].diagnosis
    assert diagnosis is not None and diagnosis.startswith("only samples [0] of the batch are wrong")


def test_failing_elements_sharing_a_column_are_not_isolated() -> None:
    diagnosis = GradientChecker(Spoiled(three_in_a_column), inputs=X).run()["input"].diagnosis
    assert diagnosis is not None and "isolated" not in diagnosis
    assert diagnosis.startswith("only samples [0, 1, 2] of the batch are wrong, samples [3, 4] are right")


def test_elements_apart_with_no_common_factor_are_still_isolated() -> None:
    assert GradientChecker(Spoiled(three_apart), inputs=X).run()["input"].diagnosis == (
        "only 3 isolated element(s) wrong, at [(0, 1), (2, 3), (4, 0)]: an indexing bug or a special case in "
        "backward?")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cliff_search_on_an_element_of_3e5_does_not_overflow(seed: int) -> None:
    """The cliff search's deepest level was log(h / tiny) / log(zoom): h / tiny overflows to inf for a step above 4
    (an element of 1e6 * eps), and int(inf) raised OverflowError out of run(): a batch norm on constant features of
    3e5 (a large offset in the data) crashed the checker.  By logarithms it is finite."""
    model = md.Sequential(md.BatchNorm1d(4), md.Dense(4, 2, rng=seed))
    report = md.GradientChecker(model, inputs=np.full((2, 4), 3e5)).run()
    assert report.passed
    assert {r.name: r.status for r in report.results} == {"input": "partial", "0.gamma": "flat", "0.beta": "ok",
                                                          "1.W": "ok"}
