"""GradientChecker cases from an outside review: each was a crash, a false pass or a wrong word."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.gradcheck import GradientChecker
from minidl.testing import assert_backward_params_contract

X = np.random.default_rng(0).standard_normal((4, 3))


class Scale(md.Layer):
    """y = x * w."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([1.5, -0.5, 2.0]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(0)
        return g * self.w.data


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64, np.random.PCG64])
@pytest.mark.parametrize("check_layers", [False, True])
def test_any_kind_of_generator_is_replayed_and_left_as_it_was(bit_generator: type, check_layers: bool) -> None:
    """States of MT19937, Philox and SFC64 hold arrays: comparing them with != crashed run()."""
    model = md.Sequential(md.Dense(3, 3, rng=0), md.Dropout(0.5, rng=np.random.Generator(bit_generator(1))))
    before = model[1].rng.bit_generator.state
    report = GradientChecker(model, inputs=X, check_layers=check_layers).run()
    assert report.passed and all(r.checked > 0 for r in report.results)
    after = model[1].rng.bit_generator.state
    assert after.keys() == before.keys() and all(
        np.array_equal(after["state"][k], before["state"][k]) for k in before["state"])


class Sqrt(md.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            self._y = np.sqrt(x)
        return self._y

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g / (2 * self._y)


def test_a_cost_that_is_nan_at_the_point_is_said_so_not_called_non_deterministic() -> None:
    report = GradientChecker(Sqrt(), inputs=X).run()  # X has negative entries: sqrt gives NaN
    (result,) = report.results
    assert not report.passed and result.failed == X.size
    assert any("the cost is nan at the point to check itself" in note for note in result.notes)
    assert not result.problems  # not "two backward passes returned different dx": NaN is NaN


class DoubledDxAtAKink(md.Layer):
    """y = x * (1 + relu(a)) with a at 0, a kink for every element of a; dx is doubled on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.a = md.Parameter(np.zeros(3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * (1 + np.maximum(self.a.data, 0))

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.a.grad += (g * self._x).sum(0) * (self.a.data > 0)
        return 2 * g * (1 + np.maximum(self.a.data, 0))


def test_no_note_that_every_parameter_gradient_is_right_when_none_was_checked() -> None:
    report = GradientChecker(DoubledDxAtAKink(), inputs=X).run()
    by_name = {r.name: r for r in report.results}
    assert by_name["a"].checked == 0 and by_name["a"].skipped == 3 and by_name["input"].failed
    assert not any("every parameter gradient is right" in note for note in report.notes)


class KeepsDataReference(md.Layer):
    """Uses a reference to W.data taken at construction: load_state_dict (a new array) leaves it stale."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).standard_normal((3, 2)))
        self._w = self.W.data

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self._w

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.W.grad += self._x.T @ g
        return g @ self._w.T


def test_a_layer_that_keeps_a_reference_to_its_parameter_data_fails() -> None:
    """The checker moved W.data in place, which the stale reference saw: it passed in float64."""
    layer = KeepsDataReference()
    report = GradientChecker(layer, inputs=X).run()
    assert not {r.name: r for r in report.results}["W"].passed
    assert layer._w is layer.W.data  # (the user's layer is untouched)


class Scale32(md.Layer):
    """Computes in a dtype attribute of its own, which astype(float64) does not convert."""

    def __init__(self) -> None:
        super().__init__()
        self.dtype = np.dtype(np.float32)
        self.w = md.Parameter(np.random.default_rng(0).standard_normal(3).astype(np.float32))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = np.asarray(x, self.dtype)
        return self._x * self.w.data.astype(self.dtype)

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x).sum(0)
        return (g * self.w.data).astype(self.dtype)


def test_a_model_that_still_computes_in_float32_is_named_in_a_note() -> None:
    report = GradientChecker(Scale32(), inputs=X).run()
    assert any("the model's output is float32 although the check converted" in note for note in report.notes)
    assert not any("float32" in note for note in GradientChecker(md.Dense(3, 2, rng=0), inputs=X).run().notes)


class ScaleWithOptionalFrozenGradient(Scale):
    """backward always computes dw (allowed for a frozen w); backward_params skips a frozen w."""

    def backward_params(self, g: np.ndarray) -> None:
        if self.w.requires_grad:
            self.w.grad += (g * self._x).sum(0)


class WritesFrozenGradientInBackwardParams(ScaleWithOptionalFrozenGradient):
    def backward_params(self, g: np.ndarray) -> None:
        self.w.grad += (g * self._x).sum(0)


def test_backward_params_contract_allows_a_backward_that_computes_frozen_gradients() -> None:
    g = np.random.default_rng(1).standard_normal((4, 3))
    frozen = assert_backward_params_contract(ScaleWithOptionalFrozenGradient, X, g)
    assert not frozen.w.has_grad
    with pytest.raises(AssertionError, match=r"backward_params of a frozen layer wrote the gradients of \['w'\]"):
        assert_backward_params_contract(WritesFrozenGradientInBackwardParams, X, g)


class Gain(md.Layer):
    """y = tanh(K a x) with a gain a ~ 1e-5 stored divided by K = 1e5: the cost curves on the scale of
    a itself, far below the default step (at least eps = 1e-4), where the bound grew to pass anything."""

    K = 1e5

    def __init__(self, bug: float) -> None:
        super().__init__()
        self.a = md.Parameter(np.array([1e-5, -2e-5, 3e-5]))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._y = np.tanh(self.K * self.a.data * x)
        return self._y

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = g * (1 - self._y**2) * self.K
        self.a.grad += self.bug * (d * self._x).sum(0)
        return d * self.a.data


class SigmoidGate(md.Layer):
    """y = x sigmoid(x / T), T = 1e-5: smooth, but at the default step it looked like a kink (skipped)."""

    def __init__(self, bug: float) -> None:
        super().__init__()
        self.T = md.Parameter(np.array([1e-5]))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        with np.errstate(over="ignore"):
            self._s = 1 / (1 + np.exp(-x / self.T.data))
        return x * self._s

    def backward(self, g: np.ndarray) -> np.ndarray:
        x, s, T = self._x, self._s, self.T.data
        ds = s * (1 - s)
        self.T.grad += self.bug * np.sum(g * x * ds * (-x / T**2)).reshape(1)
        return g * (s + x * ds / T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_cost_steep_in_a_tiny_parameter_is_judged_on_a_relative_step(seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((4, 3))
    right = GradientChecker(Gain(1.0), inputs=x).run()
    assert right.passed and right["a"].checked == 3 and right["a"].max_rel_error < 1e-3
    for bug in (1.01, 1.1, 0.9):  # a 10% error passed before; 1% is caught too
        report = GradientChecker(Gain(bug), inputs=x).run()
        assert not report.passed and report["a"].failed == 3, bug
    gate_x = np.random.default_rng(seed).standard_normal((4, 6)) * 1e-5
    right = GradientChecker(SigmoidGate(1.0), inputs=gate_x).run()
    assert right.passed and right["T"].checked == 1 and right["input"].skipped == 0
    flipped = GradientChecker(SigmoidGate(-1.0), inputs=gate_x).run()
    assert not flipped.passed and flipped["T"].failed == 1


class ClipNearKinks(md.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.clip(x / 6 + 0.5, 0, 1)  # kinks at -3 and 3, where the default step is relative

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * ((self._x > -3) & (self._x < 3)) / 6.0


@pytest.mark.parametrize("seed", range(6))
def test_inputs_a_fraction_of_a_step_from_a_kink_are_no_false_alarm(seed: int) -> None:
    """Within [h/2, h] of a kink the kink test can miss it and the truncation estimate is large: such an
    element is judged again on a finer step, or skipped, never failed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 4))
    offsets = np.array([1 / 48, 1 / 3, 1 / 2, 2 / 3, 0.9, 1.0, 1 / 16, 1 / 20]) * 3e-4  # h = eps * 3 there
    near = rng.random(x.shape) < 0.6
    x[near] = rng.choice([-3.0, 3.0], size=near.sum()) + rng.choice(offsets, size=near.sum()) * rng.choice(
        [-1, 1], size=near.sum())
    model = md.Sequential(ClipNearKinks(), md.Dense(4, 3, rng=seed))
    report = GradientChecker(model, inputs=x, seed=seed).run()
    assert report.passed, str(report)


class TransposeMadeOnce(md.Layer):
    """y = x W; backward keeps W.T from its first call: stale after the first optimizer step."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(0).standard_normal((3, 2)))
        self._WT: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        if self._WT is None:
            self._WT = self.W.data.T.copy()
        self.W.grad += self._x.T @ g
        return g @ self._WT


class CacheOneForwardLate(md.Layer):
    """backward uses the input of the forward before the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.random.default_rng(1).standard_normal(3))
        self._x: np.ndarray | None = None
        self._prev: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._prev, self._x = self._x, x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        xs = self._prev if self._prev is not None else self._x
        self.w.grad += (g * xs).sum(0)
        return g * self.w.data


def test_caches_from_other_weights_or_an_earlier_forward_fail() -> None:
    """Only the first forward used other data, and never other weights: both bugs passed."""
    stale_transpose = GradientChecker(TransposeMadeOnce(), inputs=X).run()
    assert not stale_transpose.passed and stale_transpose["input"].failed == X.size and stale_transpose["W"].passed
    late = GradientChecker(CacheOneForwardLate(), inputs=X).run()
    assert not late.passed and late["w"].failed == 3 and late["input"].passed


class RefusingLog(md.Layer):
    """log x, refusing x <= 0 with a ValueError (as a careful layer does); ``factor`` 2 makes dx wrong."""

    elementwise = True

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: np.ndarray) -> np.ndarray:
        if np.any(x <= 0):
            raise ValueError("RefusingLog: input must be positive")
        self._x = x
        return np.log(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g / (self.factor * self._x)


def test_a_layer_refusing_a_probe_outside_its_domain_is_no_crash() -> None:
    """3e-5 moved by the default step (1e-4) is negative: the layer's ValueError ended the check."""
    x = np.random.default_rng(0).uniform(1e-5, 1, (4, 3))
    x[0, 0] = 3e-5
    report = GradientChecker(RefusingLog(), inputs=x).run()
    assert report.passed and report["input"].checked == x.size
    assert any("ValueError: RefusingLog: input must be positive" in note for note in report["input"].notes)
    assert GradientChecker(RefusingLog(2.0), inputs=x).run()["input"].failed == x.size
    with pytest.raises(ValueError, match="must be positive"):  # at the point itself it is the user's error
        GradientChecker(RefusingLog(), inputs=-x).run()


class RowZeroHalved(md.Layer):
    """y = (x M) * x with a plain square M (no bias row); dM's row 0 is halved on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.M = md.Parameter(np.random.default_rng(0).standard_normal((4, 4)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._u = x @ self.M.data
        return self._u * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        gu = g * self._x
        dM = self._x.T @ gu
        dM[0] *= 0.5
        self.M.grad += dM
        return gu @ self.M.data.T + g * self._u


class OneElementOff(md.Dense):
    """A Dense whose dW[2, 1] is off by a relative ``by``."""

    def __init__(self, by: float) -> None:
        super().__init__(3, 2, rng=0)
        self.by = by

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(grad_output)
        self.W.grad[2, 1] += self.by * (self.W.grad[2, 1] - before[2, 1])
        return dx


def test_the_words_bias_row_are_kept_for_absorbed_biases_and_one_element_is_no_constant_factor() -> None:
    x = np.random.default_rng(1).standard_normal((5, 4))
    diagnosis = GradientChecker(RowZeroHalved(), inputs=x).run()["M"].diagnosis or ""
    assert "bias" not in diagnosis and "1/2" in diagnosis
    for by in (1e-3, 1e-6):
        result = GradientChecker(OneElementOff(by), inputs=X).run()["W"]
        assert result.failed == 1 and result.worst_index == (2, 1)
        assert "constant factor" not in (result.diagnosis or "") and "bias row 0 is right" not in (
            result.diagnosis or "")


def test_a_loss_class_instead_of_an_instance_is_named() -> None:
    with pytest.raises(TypeError, match=r"loss is the class MSELoss; pass an instance, loss=MSELoss\(\)"):
        GradientChecker(md.Dense(3, 2, rng=0), loss=md.MSELoss)
    model = md.Sequential(md.Dense(3, 2, rng=0))
    with pytest.raises(TypeError, match="got the class MSELoss"):
        model.fit(X, np.zeros((4, 2)), loss=md.MSELoss, optimizer=md.SGD(model.parameters(), lr=0.1))


class AbsWrongAt(md.Layer):
    """|x|, with the derivative at one element replaced by ``wrong`` (None: right everywhere)."""

    elementwise = True

    def __init__(self, wrong: float | None) -> None:
        super().__init__()
        self.wrong = wrong

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.abs(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = np.sign(self._x)
        if self.wrong is not None:
            d[1, 1] = self.wrong
        return g * d


@pytest.mark.parametrize("distance", [1e-4 / 48, 1e-4 / 40, 1e-4 / 20, 1e-4 / 4, 0.3e-4, 2e-4])
def test_a_wrong_derivative_a_fraction_of_a_step_from_a_kink_is_caught(distance: float) -> None:
    """At h/48 from the kink of |x| the finer re-judge (h/16, h/32: the kink a third of its step away)
    let a derivative half the right one pass."""
    x = np.array([[0.7, -0.3], [1.1, -distance]])
    assert GradientChecker(AbsWrongAt(None), inputs=x).run().passed
    wrong = GradientChecker(AbsWrongAt(-0.5), inputs=x).run()["input"]
    assert wrong.failed == 1 and wrong.worst_index == (1, 1)


@pytest.mark.parametrize("scale", [1e-2, 1e-3, 1e-4, 1e-5])
@pytest.mark.parametrize("seed", range(3))
def test_exact_max_pool_ties_of_small_values_are_skipped_not_failed(scale: float, seed: int) -> None:
    """A tie is a kink at the point itself: no retry on a smaller step can judge it, and on a step too
    small for the kink test to see it the Richardson test failed a right gradient (a first version of
    the relative-step retry did, for ties at 1e-3)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (2, 1, 4, 4)).astype(float) * scale + scale
    model = md.Sequential(md.MaxPool2D(2), md.Flatten(), md.Dense(4, 3, rng=seed))
    y = rng.standard_normal((2, 3)) * 1e3
    report = GradientChecker(model, inputs=x, loss=md.MSELoss(reduction="sum"), targets=y, seed=seed).run()
    assert report.passed, str(report)


def test_a_nan_cost_raises_no_false_contract_problems() -> None:
    """NaN != NaN made 'backward_params disagrees with backward' and 'prefix reuse is off' appear."""
    with np.errstate(invalid="ignore", divide="ignore"):
        report = GradientChecker(md.Sequential(Sqrt(), Scale()), inputs=X).run()
    assert not report.passed and not report.problems
    assert all(not r.problems for r in report.results)
    assert not any("prefix reuse" in note for note in report.notes)
    assert all(any("the cost is nan at the point" in note for note in r.notes) for r in report.results)


def test_a_layer_refusing_a_probe_in_directional_mode_is_no_crash() -> None:
    x = np.random.default_rng(0).uniform(1e-5, 1, (32, 32))
    x[0, 0] = 3e-7  # more than full_max elements: the directional pass first
    assert GradientChecker(RefusingLog(), inputs=x).run().passed
    assert not GradientChecker(RefusingLog(2.0), inputs=x).run().passed


def test_the_gru_recurrent_bias_row_keeps_its_words() -> None:
    class HalvedRecurrentBias(md.GRU):
        def backward(self, g: np.ndarray) -> np.ndarray:
            before = self.W_h.grad.copy()
            dx = super().backward(g)
            self.W_h.grad[0] = before[0] + 0.5 * (self.W_h.grad[0] - before[0])
            return dx

    report = GradientChecker(HalvedRecurrentBias(3, 4, rng=0),
                             inputs=np.random.default_rng(0).standard_normal((2, 3, 3))).run()
    assert "only row 0 (the absorbed bias row) is wrong" in (report["W_h"].diagnosis or "")


def test_a_subnormal_parameter_gets_no_zero_step() -> None:
    layer = Gain(1.0)
    layer.a.data[:] = [1e-5, 1e-322, 0.0]
    report = GradientChecker(layer, inputs=X).run()
    assert report.passed and report["a"].failed == 0


class PositiveScale(md.Layer):
    """A layer whose weights have a range: it refuses s <= 0 (the perturbed decoy may make some)."""

    def __init__(self) -> None:
        super().__init__()
        self.s = md.Parameter(np.full(3, 1e-3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if np.any(self.s.data <= 0):
            raise ValueError("PositiveScale: s must be positive")
        self._x = x
        return x * self.s.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.s.grad += (g * self._x).sum(0)
        return g * self.s.data


class InputKeptFromTheFirstForward(Scale):
    """backward uses the input of the very first forward (a cache made once)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_first"):
            self._first = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._first).sum(0)
        return g * self.w.data


def test_a_layer_refusing_moved_weights_still_leaves_the_reversed_batch_decoy() -> None:
    """The first forward falls back to the weights themselves on the reversed batch, not to the input
    itself (where a cache made once from it is right): that cache is still caught."""
    report = GradientChecker(md.Sequential(PositiveScale(), InputKeptFromTheFirstForward()), inputs=X).run()
    assert not report.passed and report["1.w"].failed == 3


class LogOfWeights(md.Layer):
    """y = x log(w), w ~ 1e-3 > 0: the checker's moved weights (about 25%) may be negative."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.array([1e-3, 2e-3, 5e-4]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * np.log(self.w.data)

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.w.grad += (g * self._x / self.w.data).sum(0)
        return g * np.log(self.w.data)


def test_the_moved_weights_decoy_makes_no_warnings_for_a_correct_layer() -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = GradientChecker(LogOfWeights(), inputs=X).run()
    assert report.passed and not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_failure_among_several_kinks_is_not_cleared_when_the_gradient_is_wrong() -> None:
    """Three ReLU kinks within the default step around x ~ 1e-6: the relative-step confirmation of a
    failure must keep a wrong dx failed."""
    W1 = [[0.0, 0.0, 0.0], [-2.1, 0.3, 0.9], [0.5, -0.6, 0.7]]
    W2 = [[-1.4], [-0.3], [0.1], [-0.2]]
    x = np.array([[-6e-7, -8e-7]])

    class HalfDx(md.Layer):
        """y = x, with dx halved on purpose."""

        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def backward(self, g: np.ndarray) -> np.ndarray:
            return 0.5 * g

    wrong = GradientChecker(md.Sequential(HalfDx(), md.Dense(2, 3, W=W1), md.ReLU(), md.Dense(3, 1, W=W2)),
                            inputs=x).run()
    assert wrong["input"].failed == 2


class TwoKinks(md.Layer):
    """s1 |x - c1| + s2 |x - c2| + x / 2: right derivatives, with c1 a hair from x and c2 within the step."""

    elementwise = True

    def __init__(self, c1: float, c2: float, s1: float, s2: float) -> None:
        super().__init__()
        self.c1, self.c2, self.s1, self.s2 = c1, c2, s1, s2

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return self.s1 * np.abs(x - self.c1) + self.s2 * np.abs(x - self.c2) + 0.5 * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * (self.s1 * np.sign(self._x - self.c1) + self.s2 * np.sign(self._x - self.c2) + 0.5)


def test_a_tiny_kink_at_the_point_behind_a_larger_one_is_skipped_not_failed() -> None:
    """Element 0: a kink 1.3e-12 below x (slope jump 4.4e-10) and one 3.2e-6 above it: the relative step
    crossed the tiny one unseen and failed the right derivative (a review's fuzz case)."""
    x = np.array([[1.7143874827784312e-05, -2.1546222828750785e-05, -2.1295402117761803e-05, -1.8558604664682762e-05,
                   -1.8642636302825092e-05, 1.2690990047899021e-05, -2.4004471851302028e-05, 1.8071544865597607e-05]])
    c1 = np.array([1.7143873498253396e-05, -2.1546224654322340e-05, -2.1295392971150715e-05, -1.8558598361408670e-05,
                   -1.8642624279573178e-05, 1.2690866745572755e-05, -2.4004466279626929e-05, 1.8071543562199510e-05])
    c2 = np.array([2.0376315858147566e-05, 5.3519087898657828e-06, -8.5454960462840173e-05, -1.6240684437972200e-06,
                   1.2274651690900552e-05, 4.6590477780316435e-06, 4.8045983366234042e-05, 1.8391550865590604e-05])
    s1 = np.array([2.2169003738667912e-10, 1.4131629010840602e-08, 1.8020047505189762e-12, 2.4909709103813763e-06,
                   1.7520246187405855e-09, 8.0368282502770683e-01, 6.7536654842968534e-10, 2.5055385283888652e-05])
    s2 = np.array([0.0184447299673783, 0.00119831486688244, 0.0074511563845895, 0.33911716100427536,
                   0.0027985417669516, 0.02686765501247698, 0.29473396616593556, 0.4513945322430675])
    report = GradientChecker(TwoKinks(c1, c2, s1, s2), inputs=x, seed=151).run()
    assert report.passed and report["input"].failed == 0


@pytest.mark.parametrize("off_by", [5e-4, 1e-2])
def test_a_small_error_failing_at_the_default_step_is_not_cleared_on_the_relative_step(off_by: float) -> None:
    """The relative-step confirmation of a failure must not clear a real error of a tiny element's
    gradient, however loose that step's own round-off bound."""

    class Off(md.Layer):
        elementwise = True

        def forward(self, x: np.ndarray) -> np.ndarray:
            self._x = x
            return np.sin(x)

        def backward(self, g: np.ndarray) -> np.ndarray:
            return g * np.cos(self._x) * (1 + off_by)

    x = np.random.default_rng(3).uniform(1e-7, 1e-6, (4, 3))
    assert GradientChecker(Off(), inputs=x).run()["input"].failed == x.size
