"""GradientChecker and a cost computed below float64: a loss whose forward computes in float32 (or float16)
and returns a float, or a layer that computes in float32 inside a float64 model, makes the cost a step
function at the check's steps. The report says so at the top and on every tensor it touches, judges those
tensors on a step suited to that precision (an element that agrees counts as not checked, one that
disagrees fails, with its diagnosis), and fails; float64 models and losses of every kind, a cost of 0 and an
Identity on float32-valued inputs say nothing of it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from test_gradcheck_review import Scale32

import minidl as md
from minidl import GradientChecker
from minidl.gradcheck import checker as checker_module
from minidl.testing import assert_gradients_ok


class LowMSE(md.Loss):
    """Mean squared error whose forward rounds the squares to ``dtype`` and averages there; ``factor`` scales
    its (float64) backward: 1 is right."""

    def __init__(self, dtype: Any = np.float32, factor: float = 1.0) -> None:
        super().__init__()
        self.dtype, self.factor = np.dtype(dtype), factor

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._c = (y_pred, y_true)
        return float(np.mean(((y_pred - y_true) ** 2).astype(self.dtype)))

    def backward(self) -> np.ndarray:
        y, t = self._c
        return self.factor * 2 * (y - t) / y.size


class LowTanh(md.Layer):
    """tanh computed in ``dtype``, returned in its input's dtype (float64 in the check)."""

    def __init__(self, dtype: Any = np.float32) -> None:
        super().__init__()
        self._dtype = np.dtype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x.astype(self._dtype)).astype(x.dtype)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * (1 - self._y ** 2)


class LowLinear(md.Layer):
    """x @ W multiplied in float32, returned in x's dtype."""

    def __init__(self, n: int, m: int, rng: int = 0) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(rng).standard_normal((n, m)) / np.sqrt(n))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return (x.astype(np.float32) @ self.W.data.astype(np.float32)).astype(x.dtype)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.W.grad += self._x.T @ grad_output
        return grad_output @ self.W.data.T


class MeanBias(md.Dense):
    """The bias gradient averaged over the batch instead of summed."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.W.grad[1:] += self._x.T @ grad_output
        self.W.grad[0] += grad_output.mean(axis=0)
        return grad_output @ self.W.data[1:].T


class Net(md.Model):
    """A model of one's own (one stage for the checker) with a float32 activation in the middle."""

    def __init__(self) -> None:
        super().__init__()
        self.a = md.Dense(3, 4, rng=0)
        self.act = LowTanh()
        self.b = md.Dense(4, 2, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.b(self.act(self.a(x)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.a.backward(self.act.backward(self.b.backward(grad_output)))


def mlp(n_in: int, hidden: int, n_out: int, act: md.Layer | None = None) -> md.Sequential:
    return md.Sequential(md.Dense(n_in, hidden, rng=0), act if act is not None else md.Tanh(),
                         md.Dense(hidden, n_out, rng=1))


def data(seed: int, batch: int, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, n_in)), rng.standard_normal((batch, n_out))


SHAPES = [(5, 3, 4, 2), (2, 4, 6, 3), (8, 2, 3, 1)]  # (batch, in, hidden, out)


def assert_not_checked(report: md.GradientReport, names: list[str], dtype: str, cause: str) -> None:
    """Each named tensor was judged for ``dtype``: not checked, not failed, no kink or curvature notes, its
    first note naming the cause."""
    for name in names:
        r = report[name]
        assert r.low_precision == dtype, str(report)
        assert r.status == "skipped" and r.failed == 0 and r.checked == 0 and r.diagnosis is None, str(report)
        assert r.coarse_agreed == r.size and r.skipped == 0, str(report)  # (not checked, not skipped at kinks)
        assert r.notes[0].startswith(cause), r.notes
        assert "so this tensor could not be checked at float64 accuracy; judged on a step of" in r.notes[0]
        assert f"(suited to {dtype})" in r.notes[0] and f"{r.size} of {r.size} elements agree with backward" \
            in r.notes[0]
        assert not any("kink" in n or "curved too fast" in n or "relative step" in n for n in r.notes), r.notes


# ---------------------------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
def test_a_loss_computing_in_float32_is_said_at_the_top_and_on_every_tensor(shape: tuple[int, ...],
                                                                              seed: int) -> None:
    batch, n_in, hidden, n_out = shape
    x, t = data(seed, batch, n_in, n_out)
    report = GradientChecker(mlp(n_in, hidden, n_out), loss=LowMSE(), inputs=x, targets=t, seed=seed).run()
    assert not report.passed and not report.failed
    assert report.low_precision == ("the cost is computed in float32, not float64, so the gradients could not be "
                                    "checked at float64 accuracy (see the first note)")
    head = str(report).splitlines()[0]
    assert head.startswith("Gradient check FAILED: the cost is computed in float32, not float64"), head
    assert "(3 of 3 tensors could not be checked: input, 0.W, 2.W)" in head
    assert report.notes[0].startswith("the cost is computed in float32: every value the check evaluated")
    assert "the loss (LowMSE) computes in float32" in report.notes[0]
    assert "each tensor it touches (input, 0.W, 2.W)" in report.notes[0]
    assert report.notes[0].endswith("Make the loss compute in y_pred's dtype (float64 here)")
    assert_not_checked(report, ["input", "0.W", "2.W"], "float32",
                       "the cost is computed in float32 (see the first note below the table)")
    with pytest.raises(md.GradientCheckError, match="the cost is computed in float32"):
        report.raise_if_failed()


@pytest.mark.parametrize("seed", [0, 3])
def test_a_loss_computing_in_float16_is_not_taken_for_a_cost_that_ignores_its_input(seed: int) -> None:
    """At the check's steps a float16 cost does not move at all: it was 'the cost does not depend on the
    input', every tensor failing, and 'the loss's backward is wrong'."""
    x, t = data(seed, 5, 3, 2)
    report = GradientChecker(mlp(3, 4, 2), loss=LowMSE(np.float16), inputs=x, targets=t, seed=seed).run()
    assert report.low_precision is not None and report.low_precision.startswith("the cost is computed in float16")
    assert_not_checked(report, ["input", "0.W", "2.W"], "float16", "the cost is computed in float16")
    assert "(suited to float16)" in report["input"].notes[0] and "8.7e-02" in report["input"].notes[0]
    assert not any("backward is wrong" in n for n in report.notes)
    assert "once in 4e12 values" in report.notes[0]


def test_a_float16_cost_of_few_bits_is_confirmed_on_the_coarse_step() -> None:
    """0.7890625 has 7 significant bits, as many a float64 mean of integers has: a cost that never moves at the
    usual steps and is such a number is only a candidate, confirmed when it moves, in float16 numbers, on the
    coarse step."""
    from minidl.gradcheck.precision import informative

    x, t = data(0, 6, 4, 2)
    model = mlp(4, 4, 2)
    f0 = LowMSE(np.float16).forward(model(x), t)
    assert f0 == 0.7890625 and not informative(np.array([f0]))
    report = GradientChecker(model, loss=LowMSE(np.float16), inputs=x, targets=t).run()
    assert report.low_precision is not None and report.low_precision.startswith("the cost is computed in float16")
    assert_not_checked(report, ["input", "0.W", "2.W"], "float16", "the cost is computed in float16")


class Hinge(md.Layer):
    """y = max(w - 1, 0) for each row of x; backward forgets the mask (dw = the sum of grad_output: wrong where
    w < 1, as here)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([[w]]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(self.w.data - 1.0, 0.0) + 0.0 * x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.w.grad += grad_output.sum(axis=0, keepdims=True)
        return 0.0 * grad_output


def test_a_float64_cost_linear_along_the_stir_is_not_taken_for_a_coarse_one() -> None:
    """The cost, 0.25 on the hinge's flat side, never moves at the check's steps; moved 37 float16 spacings per
    step along the analytic gradient (w + 37 k 2**-12 crosses 1 - 2**-8), an L1 cost linear there took
    float16 numbers (0.255126953125, 0.26416015625, ...): 'the cost is computed in float16', and w, whose
    backward is wrong, was skipped at a kink. Not a whole number of spacings: the verdict is as for float64."""
    report = GradientChecker(Hinge(1 - 2 ** -8), loss=md.L1Loss(), inputs=np.ones((1, 1)),
                             targets=np.array([[-0.25]]), check_input=False).run()
    assert report.low_precision is None and not any("float16" in n for n in report.notes), str(report)
    r = report["w"]
    assert r.status == "FAIL" and r.low_precision is None and r.diagnosis is not None \
        and r.diagnosis.startswith("the cost does not depend on this parameter"), str(report)


class Ignores(md.Layer):
    """Forward ignores its input (a constant); backward passes the gradient on as if it did not."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape, 0.5)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_constant_cost_of_few_bits_is_not_taken_for_a_coarse_one() -> None:
    """The cost 0.25 never moves and is a float16 number: on the coarse step it does not move either, so the
    forward ignores its input, as the report said before."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(Ignores(), inputs=x, loss=md.MSELoss(), targets=np.zeros((4, 3))).run()
    assert report.low_precision is None and report["input"].low_precision is None
    assert report["input"].status == "FAIL" and report["input"].checked == 12
    assert report["input"].diagnosis is not None and report["input"].diagnosis.startswith(
        "the cost does not depend on the input")
    assert not any("float16" in n for n in report.notes + report["input"].notes)


@pytest.mark.parametrize("seed", [55, 6, 7])
def test_a_relu_net_under_a_float32_cost_fails_no_right_gradient(seed: int) -> None:
    """Kinks within the coarse step are skipped, not judged again on a finer one, where the cost's round-off
    hides them (seed 55: one element of 0.W failed, 'an isolated element wrong')."""
    rng = np.random.default_rng(seed)
    batch, n_in, hidden, n_out = (int(n) for n in rng.integers(1, 7, 4))
    x, t = data(seed, batch, n_in, n_out)
    report = GradientChecker(mlp(n_in, hidden, n_out, md.ReLU()), loss=LowMSE(), inputs=x, targets=t,
                             seed=seed).run()
    assert report.low_precision is not None and not report.failed, str(report)
    assert all(r.low_precision == "float32" for r in report.results)


def table(report: md.GradientReport) -> dict[str, dict[str, str]]:
    """The printed table: by tensor name, by column."""
    lines = str(report).splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[2])]  # (the rule under the header: one run a column)

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    head = cells(lines[1])
    return {row[0]: dict(zip(head, row, strict=True)) for row in map(cells, lines[3:3 + len(report.results)])}


def test_elements_that_agree_on_a_coarse_step_are_counted_apart_from_kinks() -> None:
    """They were counted as skipped at kinks ('kink-skip' 28 for an input with two elements at a kink): they are
    not checked at float64 accuracy, in a column of their own; elements at a kink within the step stay
    kink-skipped."""
    seed = 55  # (batch 6, 5 inputs, 5 hidden, 6 outputs; a ReLU with elements at a kink)
    x, t = data(seed, 6, 5, 6)
    report = GradientChecker(mlp(5, 5, 6, md.ReLU()), loss=LowMSE(), inputs=x, targets=t, seed=seed).run()
    r = report["input"]
    assert (r.checked, r.skipped, r.coarse_agreed, r.failed) == (0, 2, 28, 0), str(report)
    assert r.status == "skipped" and "28 of 30 elements agree with backward" in r.notes[0] \
        and r.notes[0].endswith("they count as not checked; 2 are skipped at kinks"), r.notes[0]
    rows = table(report)
    assert list(rows["input"])[3:7] == ["checked", "kink-skip", "coarse-agree", "failed"]
    assert [rows["input"][c] for c in ("checked", "kink-skip", "coarse-agree", "failed")] == ["0", "2", "28", "0"]
    assert [rows["2.W"][c] for c in ("kink-skip", "coarse-agree")] == ["0", "36"]
    # along directions, in directions
    x, t = data(2, 4, 30, 2)
    report = GradientChecker(mlp(30, 40, 2), loss=LowMSE(), inputs=x, targets=t, seed=2).run()
    assert report["0.W"].coarse_agreed == 2 and report["0.W"].skipped == 0
    assert table(report)["0.W"]["coarse-agree"] == "2 dir"
    # a float64 check has no such column
    report = GradientChecker(mlp(30, 5, 2, md.ReLU()), loss=md.MSELoss(), inputs=x, targets=t).run()
    assert report.low_precision is None and "coarse-agree" not in str(report)
    assert all(r.coarse_agreed == 0 for r in report.results)


def test_a_wrong_loss_backward_under_a_float32_cost_still_fails_with_its_diagnosis() -> None:
    x, t = data(0, 5, 3, 2)
    report = GradientChecker(mlp(3, 4, 2), loss=LowMSE(factor=0.5), inputs=x, targets=t).run()
    assert report.low_precision is not None
    head = str(report).splitlines()[0]
    assert head.startswith("Gradient check FAILED: the cost is computed in float32") and \
        "(3 of 3 tensors fail even so)" in head
    for name in ("input", "0.W", "2.W"):
        r = report[name]
        assert r.status == "FAIL" and r.low_precision == "float32"
        # (named within the float32 cost's accuracy, not only within 1e-6)
        assert r.diagnosis is not None and "analytic = 1/2 x numerical" in r.diagnosis, r.diagnosis
        assert "disagree by more than that round-off explains: backward is wrong there" in r.notes[0]
    assert any(n.startswith("the loss's backward is wrong: checked alone on the model's output, LowMSE.backward()")
               for n in report.notes)


def test_a_wrong_bias_gradient_under_a_float32_cost_is_still_located() -> None:
    x, t = data(0, 5, 3, 2)
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), MeanBias(4, 2, rng=1))
    report = GradientChecker(model, loss=LowMSE(), inputs=x, targets=t).run()
    r = report["2.W"]
    assert r.status == "FAIL" and r.failed == 2 and r.coarse_agreed == 8 and r.skipped == 0 \
        and r.worst_index is not None \
        and r.worst_index[0] == 0
    assert r.diagnosis is not None and r.diagnosis.startswith("only row 0 (the absorbed bias row) is wrong; there "
                                                              "analytic = 1/5 x numerical"), r.diagnosis
    assert report["input"].status == report["0.W"].status == "skipped"
    assert "1 of 3 tensors fail even so" in str(report).splitlines()[0]


def test_a_backward_wrong_below_float32_resolution_does_not_pass() -> None:
    """A dx off by 1e-3 agrees at float32's resolution: not failed, but not passed either."""

    class Off(md.Dense):
        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return super().backward(grad_output) * (1 + 1e-3)

    x, t = data(0, 5, 3, 2)
    model = md.Sequential(Off(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, loss=LowMSE(), inputs=x, targets=t).run()
    assert not report.passed and report["input"].status == "skipped" and report.low_precision is not None
    with pytest.raises(md.GradientCheckError):
        assert_gradients_ok(model, x, LowMSE(), t)
    # (and in float64 the same bug fails)
    assert report["input"].low_precision == "float32"
    right = GradientChecker(model, loss=md.MSELoss(), inputs=x, targets=t).run()
    assert right.low_precision is None and right["input"].status == "FAIL"


def test_how_close_to_the_tolerance_the_agreeing_elements_came_is_not_rounded_to_0_percent() -> None:
    """The input barely moves the cost (the first layer's weights 1e-9): its numerical derivatives are 0 and its
    analytic ones ~1e-10, a share of the tolerance that was printed 'within 0% of the tolerance at most'; a
    tensor no element of which moves the cost (multiplied by zero after it) agrees exactly."""
    x, t = data(0, 5, 3, 2)
    W = np.random.default_rng(0).standard_normal((4, 4))
    W[1:] *= 1e-9
    report = GradientChecker(mlp(3, 4, 2), loss=LowMSE(), inputs=x, targets=t).run()
    share = re.search(r"agree with backward \(within (\d+)% of the tolerance at most\)", report["0.W"].notes[0])
    assert share is not None and 1 <= int(share.group(1)) <= 100, report["0.W"].notes[0]
    model = md.Sequential(md.Dense(3, 4, W=W), md.Tanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, loss=LowMSE(), inputs=x, targets=t).run()
    r = report["input"]
    assert r.low_precision == "float32", str(report)
    assert "15 of 15 elements agree with backward (within less than 1% of the tolerance), which proves nothing " \
           "finer" in r.notes[0], r.notes[0]
    model = md.Sequential(md.Dense(3, 4, rng=0), Zero(), md.Tanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, loss=LowMSE(), inputs=x, targets=t).run()
    for name, n in (("input", 15), ("0.W", 16)):
        assert f"{n} of {n} elements agree with backward exactly, which proves nothing finer" in \
            report[name].notes[0], report[name].notes[0]
    assert not any("within 0%" in n for r in report.results for n in r.notes)


def test_a_large_tensor_under_a_float32_cost_is_judged_along_directions() -> None:
    x, t = data(2, 4, 30, 2)
    report = GradientChecker(mlp(30, 40, 2), loss=LowMSE(), inputs=x, targets=t, seed=2).run()
    assert report.low_precision is not None
    r = report["0.W"]  # (31 x 40 elements: directional in auto mode)
    assert r.mode == "directional" and r.status == "skipped" and r.low_precision == "float32"
    assert "2 of 2 directions agree with backward" in r.notes[0]


# ---------------------------------------------------------------------------------------------- a layer


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("loss", [None, "mse"])
def test_a_layer_computing_in_float32_is_named(shape: tuple[int, ...], seed: int, loss: str | None) -> None:
    batch, n_in, hidden, n_out = shape
    x, t = data(seed, batch, n_in, n_out)
    model = mlp(n_in, hidden, n_out, LowTanh())
    report = GradientChecker(model, inputs=x, seed=seed, loss=md.MSELoss() if loss else None,
                             targets=t if loss else None).run()
    assert report.low_precision == ("layer '1' (LowTanh) computes in float32, not float64, so the gradients "
                                    "through it could not be checked at float64 accuracy (see the first note)")
    assert str(report).startswith("Gradient check FAILED: layer '1' (LowTanh) computes in float32")
    assert report.notes[0].startswith("layer '1' (LowTanh) computes in float32: its output is float64 but holds "
                                      "only float32 numbers")
    assert "each tensor it touches (input, 0.W)" in report.notes[0]
    assert_not_checked(report, ["input", "0.W"], "float32",
                       "layer '1' (LowTanh) computes in float32 and the cost depends on this tensor through it")
    # the layer after it is checked as usual
    assert report["2.W"].status == "ok" and report["2.W"].low_precision is None


def test_a_float32_layer_with_weights_in_the_middle_is_named() -> None:
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), LowLinear(4, 3, rng=1), md.Tanh(), md.Dense(3, 2, rng=2))
    report = GradientChecker(model, seed=4).run()
    assert report.low_precision is not None and report.low_precision.startswith("layer '2' (LowLinear) computes")
    assert [r.name for r in report.results if r.low_precision] == ["input", "0.W", "2.W"]
    assert report["4.W"].status == "ok"


def test_a_float32_layer_first_on_float32_valued_inputs_is_named() -> None:
    """Its input is float32 numbers (a float32 data set), so the recorded pass cannot tell it from a float64
    layer passing them on; the pass on inputs moved off them can."""
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    report = GradientChecker(md.Sequential(LowTanh(), md.Dense(3, 2, rng=1)), inputs=x).run()
    assert report.low_precision is not None and report.low_precision.startswith("layer '0' (LowTanh) computes")
    assert report["input"].status == "skipped" and report["1.W"].status == "ok"
    # no checked tensor goes through it: a note, the report passes
    alone = GradientChecker(md.Sequential(LowTanh(), md.Dense(3, 2, rng=1)), inputs=x, check_input=False).run()
    assert alone.passed and alone.low_precision is None
    assert alone.notes[0].startswith("layer '0' (LowTanh) computes in float32") and \
        "no checked tensor's cost showed it" in alone.notes[0]


def test_a_tensor_before_a_dead_relu_and_a_float32_layer_is_judged_for_it() -> None:
    """Sample 1 reaches the float32 layer through the ReLU, samples 0 and 2 do not: the cost, moved along the
    input, is a staircase with few steps, which the noise it shows did not reveal (the input was judged as in
    float64 and failed, 'only samples [1] of the batch are wrong')."""
    x, _ = data(168, 3, 2, 1)
    model = md.Sequential(md.Dense(2, 1, rng=0), md.ReLU(), md.Dense(1, 1, rng=2), LowTanh(), md.Dense(1, 1, rng=1))
    report = GradientChecker(model, inputs=x, seed=168).run()
    assert report.low_precision is not None and not report.failed, str(report)
    assert [r.name for r in report.results if r.low_precision] == ["input", "0.W", "2.W"]
    assert report["4.W"].status == "ok"


class Const32(md.Layer):
    """Returns float32 numbers that do not depend on its input (its float64 input is ignored); its backward,
    zeros, is right."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return (0.1 + 0.3 * np.arange(x.shape[-1]) + 0 * x).astype(np.float32).astype(x.dtype)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return np.zeros(self._shape)


class Zero(md.Layer):
    """x * 0, in float64."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * 0.0

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * 0.0


@pytest.mark.parametrize("layers, label", [
    (lambda: [Const32()], "layer '1' (Const32)"),
    (lambda: [LowTanh(), Zero()], "layer '1' (LowTanh)"),
], ids=["constant-output", "output-multiplied-by-zero"])
def test_a_float32_layer_whose_output_does_not_reach_the_cost_is_not_blamed_for_the_tensors_before_it(
        layers: Any, label: str) -> None:
    """Moving the tensors before it changes its input, not the cost through its output: they were judged for
    float32, not checked, and the report failed ('... computes in float32, not float64, so the gradients through
    it could not be checked')."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    model = md.Sequential(md.Dense(3, 4, rng=0), *layers(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=x).run()
    assert report.passed and report.low_precision is None, str(report)
    # (the cost does not move with the tensors before the layer: flat, nothing of their backward tested)
    assert [r.status for r in report.results] == ["flat", "flat", "ok"]  # input, 0.W; the last Dense's W
    assert all(r.low_precision is None for r in report.results), str(report)
    assert report.notes[0].startswith(f"{label} computes in float32: its output is float64 but holds only float32")
    assert "no checked tensor's cost showed it (the cost depends on none through the layer's output), so none " \
           "was judged for it" in report.notes[0]


def test_a_float32_layer_whose_output_reaches_the_cost_in_part_is_blamed() -> None:
    """Half of its output is multiplied by zero after it, the other half reaches the cost."""

    class HalfZero(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x * np.array([0.0, 1.0, 0.0, 1.0])

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output * np.array([0.0, 1.0, 0.0, 1.0])

    model = md.Sequential(md.Dense(3, 4, rng=0), LowTanh(), HalfZero(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert report.low_precision is not None and report.low_precision.startswith("layer '1' (LowTanh) computes")
    assert [r.name for r in report.results if r.low_precision] == ["input", "0.W"]


class ReZero(md.Layer):
    """y = x + alpha f(x), alpha a parameter at 0 (a ReZero / LayerScale residual): at the point the cost does not
    depend on f's output, which only alpha's change moves."""

    def __init__(self, f: md.Layer) -> None:
        super().__init__()
        self.f = f
        self.alpha = md.Parameter(np.zeros(1))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._fx = self.f(x)
        return x + self.alpha.data * self._fx

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.alpha.grad += np.sum(grad_output * self._fx)
        return grad_output + self.f.backward(grad_output * self.alpha.data)


class ScaledDx(md.Dense):
    """A Dense whose dx is multiplied by ``factor`` (1 is right; its dW stays right)."""

    def __init__(self, *args: Any, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.factor = factor

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.factor * super().backward(grad_output)


class ConstFirst(md.Model):
    """A float32 constant layer (Const32) that runs first, on the input, then Dense, a float32 tanh and Dense;
    ``factor`` scales the dx (1 is right)."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.c, self.a, self.act, self.b = Const32(), md.Dense(3, 4, rng=0), LowTanh(), md.Dense(4, 3, rng=1)
        self.factor = factor

    def forward(self, x: np.ndarray) -> np.ndarray:
        k = self.c(x)  # (first: the first layer computing in float32 the forward meets)
        return self.b(self.act(self.a(x))) + k

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.c.backward(grad_output)
        return self.factor * self.a.backward(self.act.backward(self.b.backward(grad_output)))


def rezero_model(factor: float) -> md.Sequential:
    return md.Sequential(ScaledDx(3, 4, rng=0, factor=factor), ReZero(LowTanh()), md.Dense(4, 4, rng=3), LowTanh(),
                         md.Dense(4, 2, rng=1))


LATER_LAYER = {  # (the model for a dx factor, the float32 layer the input is judged for)
    "rezero-first": (rezero_model, "layer '3' (LowTanh)"),
    "constant-first": (ConstFirst, "layer 'act' (LowTanh)"),
}


@pytest.mark.parametrize("factor", [2.0, -1.0, 0.0])
@pytest.mark.parametrize("name", list(LATER_LAYER))
def test_a_wrong_dx_behind_a_float32_layer_that_a_first_one_hides_still_fails(name: str, factor: float) -> None:
    """A first float32 layer that the input's change does not go through (a ReZero branch at alpha = 0, a
    constant) hid the float32 layer after it: no tensor was judged for a lower precision, the staircase the
    second one makes was read as kinks, and a dx doubled, negated or zeroed passed."""
    mk, label = LATER_LAYER[name]
    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(mk(factor), inputs=x).run()
    r = report["input"]
    assert not report.passed and r.status == "FAIL" and r.failed == r.size and r.skipped == 0, str(report)
    assert r.low_precision == "float32" and r.notes[0].startswith(f"{label} computes in float32 and the cost "
                                                                  "depends on this tensor through it"), r.notes
    assert "disagree by more than that round-off explains: backward is wrong there, whatever the precision" \
        in r.notes[0]


@pytest.mark.parametrize("name", list(LATER_LAYER))
def test_a_right_dx_behind_a_float32_layer_that_a_first_one_hides_is_not_checked_not_skipped(name: str) -> None:
    """The input is judged for the float32 layer its change goes through (the first such), not skipped at kinks,
    and the report names that layer and fails."""
    mk, label = LATER_LAYER[name]
    report = GradientChecker(mk(1.0), inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert_not_checked(report, ["input"], "float32", f"{label} computes in float32")
    assert report.low_precision is not None and report.low_precision.startswith(
        f"{label} computes in float32, not float64, so the gradients through it could not be checked"), str(report)
    assert not report.passed and report.notes[0].startswith(f"{label} computes in float32: its output is float64")


def test_rezero_tensors_are_judged_for_the_float32_layer_they_go_through() -> None:
    """The ReZero branch's float32 output is multiplied by alpha = 0: the tensors before it, and alpha (which
    scales that output in float64, not moves it), go through the later float32 layer only, which is blamed; the
    branch's layer is named after it; the tensors after both are checked as usual."""
    report = GradientChecker(rezero_model(1.0), inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert [r.name for r in report.results if r.low_precision] == ["input", "0.W", "1.alpha", "2.W"], str(report)
    assert all(report[name].notes[0].startswith("layer '3' (LowTanh) computes in float32 and the cost depends")
               for name in ("input", "0.W", "1.alpha", "2.W")), str(report)
    assert report["4.W"].status == "ok" and report["4.W"].low_precision is None
    assert report.low_precision is not None and report.low_precision.startswith(
        "layer '3' (LowTanh) computes in float32, not float64, so the gradients through it could not be checked "
        "at float64 accuracy (see the first note)"), report.low_precision
    assert report.notes[0].startswith("layer '3' (LowTanh) computes in float32: its output is float64")
    assert "each tensor it touches first of the layers computing below float64 (input, 0.W, 1.alpha, 2.W) was " \
           "judged" in report.notes[0]
    assert report.notes[1].startswith("layer '1.f' (LowTanh) computes in float32: its output is float64")
    assert "; no checked tensor was judged for it (none moves the cost through its output, or each that does went " \
           "through an earlier such layer first). Make the layer" in report.notes[1]


def test_layers_of_different_precisions_are_named_each_with_its_own() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3))
    model = md.Sequential(md.Dense(3, 4, rng=0), LowTanh(), md.Dense(4, 4, rng=3), LowTanh(np.float16),
                          md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=x).run()
    assert report.low_precision is not None and report.low_precision.startswith(
        "layer '1' (LowTanh) computes in float32 and layer '3' (LowTanh) in float16, not float64"), str(report)
    assert [(r.name, r.low_precision) for r in report.results] == [
        ("input", "float32"), ("0.W", "float32"), ("2.W", "float16"), ("4.W", None)]


class Affine(md.Layer):
    """x * scale + shift, in float64."""

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale + self.shift

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self.scale


def test_a_change_a_float32_layer_rounds_away_is_not_called_a_forward_that_ignores_the_tensor() -> None:
    """x * 1e-8 + 0.5 moves the float32 layer's input by less than float32 resolves: its output and the cost stay
    put, every numerical derivative is 0 -- float32's doing, not 'the forward ignores its input'."""
    model = md.Sequential(md.Dense(3, 4, rng=0), Affine(1e-8, 0.5), LowTanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    for name, words in (("input", "the cost did not move with the input at the check's steps (every numerical "
                                  "derivative is exactly 0) while backward gives a non-zero dx: "),
                        ("0.W", "the cost did not move with 0.W at the check's steps (every numerical derivative is "
                                "exactly 0) while backward gives a non-zero gradient: ")):
        r = report[name]  # (not checked, not failed: the layer is blamed, RV1 S-1: it said "only dx is wrong")
        assert (r.status, r.checked, r.failed, r.coarse_agreed) == ("skipped", 0, 0, r.size), str(report)
        assert r.diagnosis is not None, str(report)
        assert r.diagnosis == words + (
            "layer '2' (LowTanh) computes in float32 and its input moves with this tensor by less than float32 "
            "resolves, so its output did not move (not a forward that ignores the tensor): it cannot be checked "
            "through that layer; make the layer compute in its input's dtype"), r.diagnosis
        assert "ignores its input" not in r.diagnosis
    assert report["3.W"].status == "ok"
    assert report.notes[0].startswith("layer '2' (LowTanh) computes in float32: its output is float64")
    assert "; the tensors input, 0.W move its input by less than float32 resolves, so its output, and the cost, " \
           "did not move with them at the check's steps: a numerical derivative of 0 there is float32's rounding, " \
           "not a forward that ignores the tensor (input, 0.W: backward's non-zero gradient was not tested: not " \
           "checked, not failed). Make the layer" in report.notes[0], report.notes[0]
    assert "no checked tensor's cost showed it" not in report.notes[0]
    assert "(input, 0.W: backward's non-zero gradient was not tested: not checked, not failed)" in report.notes[0]
    assert not report.passed
    assert str(report).startswith("Gradient check FAILED: layer '2' (LowTanh) computes in float32"), str(report)
    assert not any("only the input gradient is wrong" in note for note in report.notes), str(report)


class ZeroDx(Affine):
    """x * scale + shift whose backward returns zeros (wrong: dx should be grad_output * scale)."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * 0.0


SQUASHED_HEAD = ("Gradient check FAILED: layer '1' (LowTanh) computes in float32, not float64, so the gradients "
                 "through it could not be checked at float64 accuracy (see the first note) (1 of 2 tensors could not "
                 "be checked: input); cost: sum(R * output), R ~ N(0, 1)")


def test_a_zero_dx_whose_change_a_float32_layer_rounds_away_is_not_flat_and_fails_the_report() -> None:
    """x * 1e-8 + 0.5 before a float32 tanh, its backward zeros: every derivative exactly 0 on both sides, which
    made the input 'flat' and the report PASS (a wrong backward passed; the cost stayed put for float32's rounding,
    not because it does not depend on the input)."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(md.Sequential(ZeroDx(1e-8, 0.5), LowTanh(), md.Dense(3, 2, rng=1)), inputs=x).run()
    r = report["input"]
    assert not report.passed and report.flat == [] and not report.nothing_checked, str(report)
    assert r.status == "skipped" and not r.flat and r.checked == 0 and r.coarse_agreed == 12, str(report)
    assert r.low_precision == "float32" and report["2.W"].status == "ok"
    assert str(report).splitlines()[0] == SQUASHED_HEAD
    assert r.diagnosis == (
        "the cost did not move with the input at the check's steps, and backward gives 0 too (every derivative "
        "exactly 0): layer '1' (LowTanh) computes in float32 and its input moves with this tensor by less than "
        "float32 resolves, so its output did not move, and backward's 0 was not tested (the true derivative need "
        "not be 0): it cannot be checked through that layer; make the layer compute in its input's dtype")
    assert report.notes[0].endswith(
        "not a forward that ignores the tensor (input: backward gives 0 as well, which was not tested: not checked, "
        "not flat). Make the layer compute in its input's dtype"), report.notes[0]
    assert not any("the cost is flat" in n for n in report.notes), report.notes
    with pytest.raises(AssertionError, match="could not be checked: input"):
        assert_gradients_ok(md.Sequential(ZeroDx(1e-8, 0.5), LowTanh(), md.Dense(3, 2, rng=1)), inputs=x)


@pytest.mark.parametrize("backward", [Affine, ZeroDx])
def test_a_right_or_zero_dx_of_parameters_before_a_rounding_float32_layer_is_never_passed(backward: type) -> None:
    """The tensors before the layer (input, 0.W) are swallowed: with a right backward or a zero one they are not
    checked, and the report fails for the layer either way."""
    model = md.Sequential(md.Dense(3, 4, rng=0), backward(1e-8, 0.5), LowTanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert not report.passed and report.flat == [], str(report)
    assert str(report).startswith("Gradient check FAILED: layer '2' (LowTanh) computes in float32"), str(report)
    assert [report[name].status for name in ("input", "0.W", "3.W")] == ["skipped", "skipped", "ok"], str(report)
    assert all("float32 resolves" in (report[name].diagnosis or "") for name in ("input", "0.W")), str(report)


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_moves_a_float32_layer_rounds_away_on_the_coarse_step_are_not_called_a_forward_that_ignores_them(
        factor: float) -> None:
    """x * 1e-6 + 0.5 before a float32 tanh: the input goes through it and is judged on float32's step, on which
    its elements still do not move the layer's output (numerical derivatives exactly 0). A right backward failed
    with 'the cost does not depend on the input'; such elements are not checked, in the words of the rounding
    (a doubled one is not checked either: the report fails for the layer)."""

    class Scaled(Affine):
        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return factor * super().backward(grad_output)

    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(md.Sequential(Scaled(1e-6, 0.5), LowTanh(), md.Dense(3, 2, rng=1)), inputs=x).run()
    r = report["input"]
    assert not report.passed and report.low_precision is not None, str(report)
    assert r.status == "skipped" and r.failed == 0 and r.diagnosis is None and r.low_precision == "float32", \
        str(report)
    assert r.coarse_agreed + r.skipped == r.size and r.coarse_agreed >= 8, str(report)
    assert f", {r.coarse_agreed} of 12 elements did not move the cost at all (a numerical derivative of exactly " \
           "0, backward's is not): the layer's float32 rounding swallowed their change, which proves nothing either " \
           "way: they count as not checked" in r.notes[0], r.notes[0]
    assert "does not depend" not in str(report) and "only the input gradient is wrong" not in str(report)
    assert str(report).splitlines()[0] == SQUASHED_HEAD


def test_a_directional_check_through_a_rounding_float32_layer_counts_still_directions_as_not_checked() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3))
    model = md.Sequential(Affine(1e-6, 0.5), LowTanh(), md.Dense(3, 2, rng=1))
    report = GradientChecker(model, inputs=x, mode="directional").run()
    r = report["input"]
    assert not report.passed and r.status == "skipped" and r.failed == 0 and r.diagnosis is None, str(report)
    assert "directions did not move the cost at all (a numerical derivative of exactly 0" in r.notes[0], r.notes[0]


def test_the_forwards_that_tell_which_tensors_go_through_a_float32_layer_are_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each forward _through runs is one of report.evaluations (it ran uncounted)."""
    forwards: list[int] = []

    class Counting(md.Identity):
        def forward(self, x: Any) -> Any:
            forwards.append(1)
            return super().forward(x)

    seen = {"forwards": 0, "counted": 0}
    through = checker_module.GradientChecker._through

    def counted(self: Any, program: Any, *args: Any, **kwargs: Any) -> Any:
        n, evaluations = len(forwards), program.evaluations
        try:
            return through(self, program, *args, **kwargs)
        finally:
            seen["forwards"] += len(forwards) - n
            seen["counted"] += program.evaluations - evaluations

    monkeypatch.setattr(checker_module.GradientChecker, "_through", counted)
    x = np.random.default_rng(0).standard_normal((5, 3))
    for layer in (LowTanh(), Const32()):
        model = md.Sequential(Counting(), md.Dense(3, 4, rng=0), layer, md.Dense(4, 2, rng=1))
        GradientChecker(model, inputs=x).run()
    assert seen["forwards"] > 0 and seen["counted"] == seen["forwards"], seen


def test_a_float16_layer_is_named_with_its_precision() -> None:
    report = GradientChecker(mlp(3, 4, 2, LowTanh(np.float16)), seed=1).run()
    assert report.low_precision is not None and report.low_precision.startswith("layer '1' (LowTanh) computes in "
                                                                                "float16")
    assert report["input"].low_precision == report["0.W"].low_precision == "float16"


def test_in_a_model_of_ones_own_the_tensors_after_the_layer_are_checked_as_usual() -> None:
    """One stage: which tensors go through the layer is seen from the cost moved along each."""
    report = GradientChecker(Net(), inputs=np.random.default_rng(1).standard_normal((4, 3))).run()
    assert report.low_precision is not None and report.low_precision.startswith("layer 'act' (LowTanh) computes")
    assert report["input"].status == report["a.W"].status == "skipped"
    assert report["b.W"].status == "ok" and report["b.W"].low_precision is None


def test_a_wrong_backward_behind_a_float32_layer_still_fails() -> None:

    class Doubled(md.Dense):
        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            dx = super().backward(grad_output)
            self.W.grad[...] *= 2
            return dx

    model = md.Sequential(Doubled(3, 4, rng=0), LowTanh(), md.Dense(4, 2, rng=1))
    report = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((5, 3))).run()
    r = report["0.W"]
    assert r.status == "FAIL" and r.low_precision == "float32"
    assert r.diagnosis is not None and "analytic = 2 x numerical" in r.diagnosis


def test_a_layer_checked_alone_that_computes_in_float32_is_not_called_wrong() -> None:
    x, _ = data(0, 5, 3, 2)
    report = GradientChecker(mlp(3, 4, 2, LowTanh()), inputs=x, check_layers=True).run()
    assert report.layers["1"].low_precision is not None and report.layers["0"].passed
    assert "checked alone, these layers fail: '1' (LowTanh) (it computes below float64: not checked, see its " \
           "report)" in report.notes


def test_a_layer_with_a_dtype_of_its_own_is_named_with_the_output_note() -> None:
    report = GradientChecker(md.Sequential(Scale32()), inputs=np.random.default_rng(2).standard_normal((4, 3))).run()
    assert report.notes[0].startswith("layer '0' (Scale32) computes in float32: its output is an array of float32, "
                                      "although its input and parameters are float64")
    assert any(n.startswith("the model's output is float32 although the check converted") for n in report.notes)
    assert report["input"].low_precision == "float32" and report["0.w"].low_precision == "float32"
    assert report["input"].status == report["0.w"].status == "skipped"


# ---------------------------------------------------------------------------------------------- float64


def l1_on_integers() -> dict[str, Any]:
    rng = np.random.default_rng(5)
    return {"model": md.Identity(), "inputs": rng.integers(-3, 4, (4, 3)) + 0.5, "loss": md.L1Loss(),
            "targets": rng.integers(-3, 4, (4, 3)).astype(float)}


def float32_valued(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CLEAN = {
    "dense-tanh": lambda: {"model": mlp(3, 4, 2)},
    "dense-tanh-mse": lambda: {"model": mlp(3, 4, 2), "loss": md.MSELoss()},
    "dense-tanh-mse-float32-data": lambda: {"model": mlp(3, 4, 3), "inputs": float32_valued(4, 3),
                                            "loss": md.MSELoss(), "targets": float32_valued(4, 3, seed=1)},
    "conv2d": lambda: {"model": md.Sequential(md.Conv2D(2, 3, 3, rng=0), md.ReLU(), md.Flatten()),
                       "inputs": float32_valued(2, 2, 5, 5)},
    "batchnorm": lambda: {"model": md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Tanh())},
    "embedding": lambda: {"model": md.Sequential(md.Embedding(10, 4, rng=0), md.Flatten(), md.Dense(12, 2, rng=1)),
                          "inputs": np.random.default_rng(0).integers(0, 10, (4, 3))},
    "embedding-float32-ce": lambda: {
        "model": md.Sequential(md.Embedding(10, 4, rng=0, dtype=np.float32), md.Flatten(),
                               md.Dense(12, 3, rng=1, dtype=np.float32)),
        "inputs": np.random.default_rng(0).integers(0, 10, (4, 3)), "loss": md.CrossEntropyLoss()},
    "relu-integer-inputs": lambda: {"model": md.Sequential(md.Dense(3, 5, rng=0), md.ReLU(), md.Dense(5, 2, rng=1)),
                                    "inputs": np.random.default_rng(0).integers(-3, 4, (4, 3)).astype(float)},
    "relu-first-integer-inputs": lambda: {"model": md.Sequential(md.ReLU(), md.Dense(3, 2, rng=1)),
                                          "inputs": np.random.default_rng(0).integers(-3, 4, (4, 3)) + 0.5},
    "relu-first-float32-inputs": lambda: {"model": md.Sequential(md.ReLU(), md.Dense(3, 2, rng=1)),
                                          "inputs": float32_valued(4, 3)},
    "float32-model-float32-inputs": lambda: {
        "model": md.Sequential(md.Flatten(), md.Dense(3, 4, rng=0, dtype=np.float32), md.Tanh(),
                               md.Dense(4, 2, rng=1, dtype=np.float32)), "inputs": float32_valued(4, 3)},
    "dropout-float32-inputs": lambda: {"model": md.Sequential(md.Dropout(0.5, rng=0), md.Dense(3, 2, rng=1)),
                                       "inputs": float32_valued(4, 3)},
    "maxpool-integer-float32": lambda: {
        "model": md.Sequential(md.MaxPool2D(2), md.Flatten()),
        "inputs": np.random.default_rng(0).permutation(32).reshape(2, 1, 4, 4).astype(np.float32)},
    "identity-float32-inputs": lambda: {"model": md.Identity(), "inputs": float32_valued(4, 3)},
    "identity-float32-mse": lambda: {"model": md.Identity(), "inputs": float32_valued(4, 3), "loss": md.MSELoss(),
                                     "targets": float32_valued(4, 3, seed=1)},
    "identity-float32-l1": lambda: {"model": md.Identity(), "inputs": float32_valued(4, 3), "loss": md.L1Loss(),
                                    "targets": float32_valued(4, 3, seed=1)},
    "identity-l1-integers": l1_on_integers,
    "cost-exactly-0": lambda: {"model": md.Identity(), "inputs": np.arange(12.0).reshape(4, 3) / 4,
                               "loss": md.MSELoss(), "targets": np.arange(12.0).reshape(4, 3) / 4},
}


@pytest.mark.parametrize("name", list(CLEAN))
def test_float64_models_and_losses_say_nothing_of_a_lower_precision(name: str) -> None:
    report = GradientChecker(**CLEAN[name]()).run()
    assert report.passed and report.low_precision is None, str(report)
    # (at the cost's minimum, MSE on its own targets, every derivative is exactly 0: nothing tested there, "flat")
    status = "flat" if name == "cost-exactly-0" else "ok"
    assert all(r.low_precision is None and r.status == status for r in report.results), str(report)
    # (the note that a model or inputs given in float32 were checked as a float64 copy is no lower precision)
    assert not any("float32" in n or "float16" in n for n in report.notes
                   if "the check ran on a float64 copy" not in n), report.notes


def test_a_cost_of_0_at_the_point_is_no_evidence() -> None:
    kwargs = CLEAN["cost-exactly-0"]()
    model, program_costs = kwargs["model"], []
    original = checker_module.Program.cost

    def cost(self: Any, y: Any) -> float:
        program_costs.append(original(self, y))
        return program_costs[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checker_module.Program, "cost", cost)
        report = GradientChecker(model, **{k: v for k, v in kwargs.items() if k != "model"}).run()
    assert program_costs[0] == 0.0 and report.low_precision is None


def test_a_float64_model_runs_no_more_forwards_than_before() -> None:
    """The layers' outputs are looked at in the pass the determinism check records anyway; the one more
    forward (inputs and weights moved off float32 numbers) runs only when some output holds only such numbers."""
    calls: list[int] = []

    class Counting(md.Identity):
        def forward(self, x: Any) -> Any:
            calls.append(1)
            return super().forward(x)

    def forwards(x: np.ndarray) -> tuple[int, int]:
        calls.clear()
        report = GradientChecker(md.Sequential(Counting(), md.Dense(3, 2, rng=0)), inputs=x).run()
        assert report.low_precision is None
        return len(calls), report.evaluations

    x = np.random.default_rng(0).standard_normal((4, 3))
    n64, evaluations64 = forwards(x)
    n32, evaluations32 = forwards(x.astype(np.float32))
    assert n32 == n64 + 1 and evaluations32 == evaluations64


# ---------------------------------------------------------------------------------------------- the rule


def test_only_long_non_integer_values_count_as_evidence() -> None:
    from minidl.gradcheck.precision import informative

    v = np.array([0.0, 3.0, -7.0, 0.375, -1.5, 1e6, np.nan, np.inf, 0.1, float(np.float32(0.1)), 1 / 3,
                  2.41015625, 2.421875])  # (the last two: 10 and 8 significant bits)
    assert informative(v).tolist() == [False] * 8 + [True, True, True, True, False]


def test_array_precision() -> None:
    from minidl.gradcheck.precision import array_precision, shows_float64, value_precision

    rng = np.random.default_rng(0)
    x32 = rng.standard_normal(50).astype(np.float32)
    assert array_precision(x32.astype(np.float64)) == np.float32
    assert array_precision(x32.astype(np.float16).astype(np.float64)) == np.float16
    assert array_precision(x32) == np.float32  # (an array of float32 itself)
    assert array_precision(rng.standard_normal(50)) is None
    # zeros and whole numbers beside float32 numbers: still float32; one float64 value spoils it
    mixed = np.concatenate([x32.astype(np.float64), np.zeros(5), np.arange(5.0)])
    assert array_precision(mixed) == np.float32
    mixed[3] = 0.1
    assert array_precision(mixed) is None and value_precision(mixed) is None
    assert shows_float64(mixed, np.dtype(np.float32)) and shows_float64(mixed, np.dtype(np.float16))
    assert not shows_float64(x32.astype(np.float64), np.dtype(np.float32))
    assert shows_float64(x32.astype(np.float64), np.dtype(np.float16))
    assert value_precision(np.arange(10.0)) is None  # (nothing informative)
    assert not shows_float64(np.arange(10.0), np.dtype(np.float32))
    assert not shows_float64(x32, np.dtype(np.float32))  # (no finer precision than float32 itself)
    assert array_precision((rng.standard_normal(3), x32.astype(np.float64))) == np.float32


def test_the_cost_tally() -> None:
    from minidl.gradcheck.precision import CostTally

    rng = np.random.default_rng(0)

    def tally(values: Any) -> Any:
        out = CostTally()
        for v in values:
            out.add(float(v))
        return out

    assert tally(rng.standard_normal(40)).precision() is None
    assert tally(rng.standard_normal(40).astype(np.float32)).precision() == np.float32
    assert tally(rng.standard_normal(40).astype(np.float16)).precision() == np.float16
    # two distinct float32 values are not enough; a third is
    assert tally([np.float32(0.1), np.float32(0.2)]).precision() is None
    assert tally([np.float32(0.1), np.float32(0.2), np.float32(0.3)]).precision() == np.float32
    # one float64 value among float32 ones: not float32
    assert tally([*rng.standard_normal(10).astype(np.float32), 0.1]).precision() is None
    # 0, whole numbers and short fractions say nothing
    assert tally([0.0, 1.0, 2.5, 0.375] * 10).precision() is None
    # a cost that never moves, or takes two values: a candidate, until the checker has moved it further
    flat = tally([float(np.float16(0.8755))] * 20)
    assert flat.precision() is None and flat.flat() == np.float16
    assert tally([0.7890625] * 10 + [0.79296875] * 10).flat() == np.float16  # (7 and 8 bits: short)
    assert tally([float(np.float32(0.1))] * 20).flat() == np.float32
    assert tally([0.25] * 15).flat() is None  # (too few)
    assert tally([0.1] * 20).flat() is None  # (no float16 or float32 number)
    assert tally([2.0] * 20).flat() is None  # (a whole number)
    assert tally([0.25, 0.5, 0.75] * 20).flat() is None  # (three values: the cost moves)
    flat.stirred = True
    assert flat.flat() is None


def test_a_float64_model_on_short_numbers_with_a_dead_relu_is_not_taken_for_float32() -> None:
    # (the cost stays flat and short, 0.25, until the stir; a power-of-two coarse step kept it float32-valued)
    model = md.Sequential(md.Dense(2, 2, W=-np.ones((3, 2))), md.ReLU(),
                          md.Dense(2, 1, W=np.array([[0.5], [1.0], [1.0]])))
    report = GradientChecker(model, loss=md.MSELoss(), inputs=np.array([[1.0, 2.0], [3.0, 1.0]]),
                             targets=np.zeros((2, 1))).run()
    assert report.passed and report.low_precision is None
