"""RReLU (random leaky ReLU) and FeatureAlphaDropout: values by their formulas, training statistics, replayed
draws in the gradient checker, dtypes, arguments, generator state in checkpoints and fit, and PyTorch."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

ALPHA = 1.7580993408473766  # SELU's alpha * scale: its negative saturation
RRELU_OPTIONS = [(1 / 8, 1 / 3), (0.1, 0.3), (-0.5, 0.3), (0.2, 2.0), (0.3, 0.3)]


def with_zeros(x: np.ndarray) -> np.ndarray:
    """``x`` with a few exact zeros (RReLU's kink), -0.0 among them."""
    x = x.copy()
    flat = x.reshape(-1)
    flat[::7] = 0.0
    flat[3::11] = -0.0
    return x


# ------------------------------------------------------------------------------------------------ RReLU eval
@pytest.mark.parametrize("lower, upper", RRELU_OPTIONS)
def test_rrelu_eval_is_leaky_relu_with_the_mean_slope(lower: float, upper: float) -> None:
    x = with_zeros(np.random.default_rng(0).normal(size=(6, 7)))
    layer = md.RReLU(lower, upper, rng=0).eval()
    state = layer.rng.bit_generator.state
    mean = (lower + upper) / 2
    assert layer.eval_slope == mean
    y = layer(x)
    np.testing.assert_array_equal(y, np.where(x > 0, x, mean * x))
    g = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(g), np.where(x > 0, g, mean * g))  # the mean slope at 0 too
    assert layer.rng.bit_generator.state == state  # eval draws nothing
    np.testing.assert_array_equal(y, md.LeakyReLU(mean)(x))


def test_rrelu_defaults_and_repr() -> None:
    layer = md.RReLU()
    assert (layer.lower, layer.upper) == (1 / 8, 1 / 3)
    assert repr(layer) == "RReLU(lower=0.125, upper=0.3333333333333333)"  # PyTorch's repr
    assert repr(md.RReLU(0.1, 0.3)) == "RReLU(lower=0.1, upper=0.3)"
    assert md.RReLU.elementwise and [name for name, _ in md.RReLU(rng=0).named_generators()] == ["rng"]
    assert not list(md.RReLU().named_parameters())


@pytest.mark.parametrize("lower, upper", RRELU_OPTIONS)
def test_rrelu_eval_against_pytorch(lower: float, upper: float) -> None:
    torch = pytest.importorskip("torch")
    for seed, shape in [(0, (5, 4)), (1, (2, 3, 4)), (2, (7,)), (3, (2, 3, 2, 3))]:
        rng = np.random.default_rng(seed)
        x, g = with_zeros(rng.normal(size=shape) * 3), rng.normal(size=shape)
        for dtype in (np.float64, np.float32):
            xd, gd = x.astype(dtype), g.astype(dtype)
            layer = md.RReLU(lower, upper, rng=seed).eval()
            xt = torch.tensor(xd, requires_grad=True)
            yt = torch.nn.RReLU(lower, upper).eval()(xt)
            yt.backward(torch.tensor(gd))
            y, dx = layer(xd), layer.backward(gd)
            assert y.dtype == dx.dtype == dtype
            assert_same_bits(y, yt.detach().numpy())  # the same product in the same dtype: bit for bit
            assert_same_bits(dx, xt.grad.numpy())


def all_finite_float16() -> np.ndarray:
    """Every finite float16 value, both zeros included (63 488 of them)."""
    every = np.arange(2**16, dtype=np.uint16).view(np.float16)
    return every[np.isfinite(every)]


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal dtypes and bits: -0.0 is not 0.0 here, as it is for assert_array_equal."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    width = f"u{actual.dtype.itemsize}"
    mismatches = np.flatnonzero(actual.view(width) != expected.view(width))
    assert mismatches.size == 0, (f"{mismatches.size} of {actual.size} differ, e.g. at {mismatches[:3]}: "
                                  f"{actual.ravel()[mismatches[:3]]} against {expected.ravel()[mismatches[:3]]}")


def float16_eval_layers(slope: float, lower_upper: tuple[float, float] | None) -> list[md.Layer]:
    """LeakyReLU(slope), and RReLU(lower, upper) in eval mode (whose mean slope is ``slope``)."""
    layers: list[md.Layer] = [md.LeakyReLU(slope)]
    if lower_upper is not None:
        rrelu = md.RReLU(*lower_upper, rng=0).eval()
        assert rrelu.eval_slope == slope
        layers.append(rrelu)
    return layers


# slopes at which float32's product, rounded to float16, is the float64 product rounded once on every
# float16 value (at 0.3, 0.15 or 1.1 float32's own rounding moves a few dozen to a few hundred by 1 ulp:
# PyTorch's values, tested against PyTorch below)
@pytest.mark.parametrize("slope, lower_upper", [(0.01, None), ((1 / 8 + 1 / 3) / 2, (1 / 8, 1 / 3)),
                                                (0.2, (0.1, 0.3)), (-0.1, (-0.5, 0.3)), (1 / 3, None)])
def test_float16_eval_multiplies_in_float32_and_rounds_once(slope: float, lower_upper: Any) -> None:
    """x * slope in float16 rounded the slope to float16 first: a quarter of the negative outputs and
    gradients were 1 ulp off (-7.324 * 11/48 gave -1.678, not -1.679)."""
    x = all_finite_float16()
    g = x[::-1].copy()  # every float16 value as a gradient too
    once = np.where(x > 0, x, (x.astype(np.float64) * slope).astype(np.float16))
    dx_once = np.where(x > 0, g, (g.astype(np.float64) * slope).astype(np.float16))
    negative = x <= 0
    assert (np.where(x > 0, x, x * slope) != once)[negative].mean() > 0.15  # what the float16 product gives
    for layer in float16_eval_layers(slope, lower_upper):
        assert_same_bits(layer(x), once)
        assert_same_bits(layer.backward(g), dx_once)
        assert_same_bits(layer(np.float16(-7.324)), np.float16(-7.324 * slope))  # a 0-D input: a scalar


@pytest.mark.parametrize("slope, lower_upper", [(0.01, None), (0.15, None), (1.1, (0.2, 2.0)), (0.3, (0.3, 0.3)),
                                                ((1 / 8 + 1 / 3) / 2, (1 / 8, 1 / 3)), (0.2, (0.1, 0.3)),
                                                (-0.1, (-0.5, 0.3))])
def test_float16_eval_against_pytorch_on_every_float16_value(slope: float, lower_upper: Any) -> None:
    """PyTorch runs float16 LeakyReLU, and RReLU in eval mode, on the CPU: the same values and gradients."""
    torch = pytest.importorskip("torch")
    x = all_finite_float16()
    g = x[::-1].copy()
    theirs = [torch.nn.LeakyReLU(slope)] + ([torch.nn.RReLU(*lower_upper).eval()] if lower_upper else [])
    with np.errstate(over="ignore"):  # (at slope 1.1 the largest values overflow to inf, in PyTorch too)
        for layer, module in zip(float16_eval_layers(slope, lower_upper), theirs, strict=True):
            xt = torch.tensor(x, requires_grad=True)
            yt = module(xt)
            yt.backward(torch.tensor(g))
            assert_same_bits(layer(x), yt.detach().numpy())
            assert_same_bits(layer.backward(g), xt.grad.numpy())


# -------------------------------------------------------------------------------------------- RReLU training
@pytest.mark.parametrize("lower, upper", [(1 / 8, 1 / 3), (-0.5, 0.3), (0.2, 2.0)])
def test_rrelu_training_slopes_are_uniform_in_lower_upper(lower: float, upper: float) -> None:
    n = 200_000
    x = np.random.default_rng(1).uniform(-2.0, 2.0, size=(n // 100, 100))
    layer = md.RReLU(lower, upper, rng=2)
    y = layer(x)
    slope = layer.backward(np.ones_like(x))  # dx for g = 1: each element's slope
    positive = x > 0
    np.testing.assert_array_equal(slope[positive], 1.0)
    np.testing.assert_array_equal(y[positive], x[positive])
    s = slope[~positive]
    np.testing.assert_array_equal(y[~positive], x[~positive] * s)
    m, width = s.size, upper - lower
    assert lower <= s.min() < lower + width * 1e-3 and upper - width * 1e-3 < s.max() <= upper
    # U[lower, upper]: mean (lower + upper) / 2 within 5 standard errors, variance width^2 / 12 within 2 %
    assert abs(s.mean() - (lower + upper) / 2) < 5 * width / np.sqrt(12 * m)
    assert s.var() == pytest.approx(width**2 / 12, rel=0.02)
    counts, _ = np.histogram(s, bins=10, range=(lower, upper))  # flat: each bin Binomial(m, 1/10)
    assert np.all(np.abs(counts - m / 10) < 5 * np.sqrt(m * 0.1 * 0.9))
    assert np.unique(s).size > 0.99 * m  # one slope per element


def test_rrelu_training_with_lower_equal_to_upper_is_leaky_relu() -> None:
    x = np.random.default_rng(0).normal(size=(4, 5))
    layer = md.RReLU(0.3, 0.3, rng=0)
    np.testing.assert_array_equal(layer(x), np.where(x > 0, x, 0.3 * x))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.where(x > 0, 1.0, 0.3))


def test_rrelu_training_at_zero_and_nan_follows_pytorch() -> None:
    """x = 0 gets a random slope (its output 0), NaN slope 1 in training (PyTorch's x <= 0 test); in eval
    both get the mean slope (LeakyReLU's x > 0 test), the NaN too."""
    x = np.array([-1.0, 0.0, -0.0, 2.0, np.nan])
    layer = md.RReLU(0.1, 0.3, rng=0)
    y, dx = layer(x), layer.backward(np.ones(5))
    np.testing.assert_array_equal(y[1:], [0.0, -0.0, 2.0, np.nan])
    assert np.signbit(y[2]) and 0.1 <= dx[1] <= 0.3 and 0.1 <= dx[2] <= 0.3
    np.testing.assert_array_equal(dx[3:], [1.0, 1.0])
    layer.eval()
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones(5)), [0.2, 0.2, 0.2, 1.0, 0.2])
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.RReLU(0.1, 0.3)(xt)
    yt.backward(torch.ones(5, dtype=torch.float64))
    np.testing.assert_array_equal(yt.detach().numpy()[1:], y[1:])
    theirs = xt.grad.numpy()
    assert 0.1 <= theirs[1] <= 0.3 and 0.1 <= theirs[2] <= 0.3
    np.testing.assert_array_equal(theirs[3:], dx[3:])


def test_rrelu_training_statistics_against_pytorchs() -> None:
    """PyTorch draws from its own generator: its slopes and minidl's follow the same law."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = -np.ones(100_000)
    theirs = -torch.nn.RReLU(0.1, 0.4)(torch.tensor(x)).numpy()
    ours = -md.RReLU(0.1, 0.4, rng=0)(x)
    for s in (theirs, ours):
        assert 0.1 <= s.min() < 0.1003 and 0.3997 < s.max() <= 0.4
        assert abs(s.mean() - 0.25) < 5 * 0.3 / np.sqrt(12 * s.size)
        assert s.var() == pytest.approx(0.09 / 12, rel=0.02)


def test_rrelu_reproducible_and_a_draw_independent_of_the_signs() -> None:
    x = np.random.default_rng(0).normal(size=(30, 20))
    np.testing.assert_array_equal(md.RReLU(rng=7)(x), md.RReLU(rng=7)(x))
    np.testing.assert_array_equal(md.RReLU(rng=np.random.default_rng(7))(x), md.RReLU(rng=7)(x))
    assert not np.array_equal(md.RReLU(rng=7)(x), md.RReLU(rng=8)(x))
    # every element draws, whatever its sign: where both are negative, two inputs get the same slope
    flipped = np.where(np.random.default_rng(1).random(x.shape) < 0.5, -x, x)
    a, b = md.RReLU(rng=3), md.RReLU(rng=3)
    a(x), b(flipped)
    both = (x <= 0) & (flipped <= 0)
    assert both.sum() > 100
    np.testing.assert_array_equal(a.backward(np.ones_like(x))[both], b.backward(np.ones_like(x))[both])
    # replaying the generator state replays the slopes; a second forward draws new ones
    layer = md.RReLU(rng=4)
    state = layer.rng.bit_generator.state
    y1 = layer(x)
    y2 = layer(x)
    assert not np.array_equal(y1, y2)
    layer.rng.bit_generator.state = state
    np.testing.assert_array_equal(layer(x), y1)


def test_rrelu_backward_uses_its_forwards_slopes_whatever_the_mode_since() -> None:
    x = -np.abs(np.random.default_rng(0).normal(size=(3, 4)))
    g = np.random.default_rng(1).normal(size=x.shape)
    layer = md.RReLU(rng=0)
    y = layer(x)
    layer.eval()  # switched between the passes: the training forward's slopes still apply
    np.testing.assert_allclose(layer.backward(g), g * y / x, rtol=1e-15)
    layer(x)
    np.testing.assert_array_equal(layer.backward(g), g * layer.eval_slope)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 3, 4), 1), ((6,), 2), ((2, 2, 2, 3), 3)])
def test_rrelu_gradient_checker(training: bool, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    layer = md.RReLU(0.1, 0.6, rng=seed).train(training)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert report["input"].checked > 0.8 * x.size
    assert layer.training is training


@pytest.mark.parametrize("seed", range(3))
def test_rrelu_gradient_checker_in_a_model(seed: int) -> None:
    model = md.Sequential(md.Dense(3, 6, rng=seed), md.RReLU(rng=seed + 1), md.Dense(6, 2, rng=seed + 2))
    x = np.random.default_rng(seed).normal(size=(5, 3))
    for training in (True, False):
        model.train(training)
        assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 1, 1, 0, 1]),
                            seed=seed)


class _RedrawingRReLU(md.RReLU):
    """A wrong back-pass: slopes drawn again instead of the forward's."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x_negative = self._cache != 1
        fresh = self.rng.uniform(self.lower, self.upper, size=grad_output.shape)
        return np.where(x_negative, grad_output * fresh, grad_output)


def test_the_gradient_checker_catches_a_backward_that_redraws() -> None:
    x = -np.abs(np.random.default_rng(0).normal(size=(4, 5))) - 0.1
    report = md.GradientChecker(_RedrawingRReLU(0.1, 0.9, rng=0), inputs=x).run()
    assert not report.passed and not report["input"].passed


def test_rrelu_float32_float16_and_big_endian() -> None:
    x = np.random.default_rng(0).normal(size=(40, 30))
    x32 = x.astype(np.float32)
    layer = md.RReLU(0.1, 0.3, rng=5)
    y32 = layer(x32)
    s32 = layer.backward(np.ones_like(x32))
    assert y32.dtype == s32.dtype == np.float32
    negative = s32[x32 <= 0]
    assert negative.min() >= np.float32(0.1) and negative.max() <= np.float32(0.3)
    np.testing.assert_array_equal(s32[x32 > 0], 1.0)
    np.testing.assert_array_equal(y32, x32 * s32)
    layer.eval()
    assert layer(x32).dtype == layer.backward(np.ones_like(x32)).dtype == np.float32
    # float16: the same float32 slopes (the same seed), x * slope in float32 rounded once
    x16 = x.astype(np.float16)
    layer16 = md.RReLU(0.1, 0.3, rng=5)
    y16 = layer16(x16)
    assert y16.dtype == np.float16
    np.testing.assert_array_equal(y16, (x16.astype(np.float32) * s32).astype(np.float16))
    dx16 = layer16.backward(np.full(x.shape, 3.0, np.float16))
    np.testing.assert_array_equal(dx16, (np.float32(3.0) * s32).astype(np.float16))
    # a big-endian input: computed, and its gradient taken, in native order
    big = md.RReLU(rng=1)
    y = big(x.astype(">f8"))
    assert y.dtype == np.float64 and y.dtype.isnative
    np.testing.assert_array_equal(y, md.RReLU(rng=1)(x))
    assert big.backward(np.ones(x.shape)).dtype == np.float64


def test_rrelu_0d_and_empty_inputs() -> None:
    layer = md.RReLU(rng=0)
    y = layer(np.array(-2.0))
    assert np.shape(y) == () and -2 / 3 <= float(y) <= -0.25
    assert np.shape(layer.backward(np.array(1.0))) == ()
    assert layer(np.zeros((0, 3))).shape == (0, 3) and layer.backward(np.zeros((0, 3))).shape == (0, 3)


def test_rrelu_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"RReLU: lower must be <= upper, got lower=0.5 and upper=0.1"):
        md.RReLU(0.5, 0.1)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="RReLU: lower must be a finite number"):
            md.RReLU(bad, 0.3)
        with pytest.raises(ValueError, match="RReLU: upper must be a finite number"):
            md.RReLU(0.1, bad)
    for bad in ("0.1", None, True):
        with pytest.raises(TypeError, match="RReLU: lower must be a finite number"):
            md.RReLU(bad, 0.3)
    with pytest.raises(TypeError, match=r"RReLU: rng must be a numpy\.random\.Generator"):
        md.RReLU(rng="0")
    with pytest.raises(ValueError, match="RReLU: rng: a seed must be an int >= 0"):
        md.RReLU(rng=-1)
    with pytest.raises(TypeError):
        md.RReLU(0.1, 0.3, 0)  # rng is keyword-only, as PyTorch's third argument is inplace


def test_rrelu_bad_inputs_change_nothing() -> None:
    with pytest.raises(md.BackwardBeforeForwardError):
        md.RReLU(rng=0).backward(np.ones(2))
    layer = md.RReLU(rng=0)
    x = np.random.default_rng(0).normal(size=(3, 4))
    layer(x)
    slopes, state = layer.backward(np.ones((3, 4))), layer.rng.bit_generator.state
    with pytest.raises(md.DTypeError, match="RReLU"):
        layer(np.ones(3, dtype=int))
    with pytest.raises(md.ShapeError, match=re.escape("RReLU.backward: expected grad_output of shape (3, 4)")):
        layer.backward(np.ones((4, 3)))
    with pytest.raises(md.DTypeError, match=r"RReLU\.backward"):
        layer.backward(np.ones((3, 4), np.float32))
    assert layer.rng.bit_generator.state == state
    np.testing.assert_array_equal(layer.backward(np.ones((3, 4))), slopes)


def test_rrelu_bounds_are_checked_when_set_and_the_new_ones_used() -> None:
    """lower and upper were plain attributes: 'a' gave a bare TypeError at the next forward, NaN gave NaN
    outputs silently, and upper < lower drew slopes from the wrong range."""
    layer = md.RReLU(0.1, 0.3, rng=0)
    x = -np.ones((200, 50))
    layer(x)
    state = layer.rng.bit_generator.state
    for name, bad, error, message in [
            ("lower", "a", TypeError, "RReLU: lower must be a finite number, got 'a'"),
            ("lower", None, TypeError, "RReLU: lower must be a finite number, got None"),
            ("lower", np.nan, ValueError, "RReLU: lower must be a finite number, got nan"),
            ("upper", -np.inf, ValueError, "RReLU: upper must be a finite number, got -inf"),
            ("upper", True, TypeError, "RReLU: upper must be a finite number, got True"),
            ("upper", 10**400, ValueError, "RReLU: upper must be a finite number"),
            ("upper", 0.0, ValueError, "RReLU: lower must be <= upper, got lower=0.1 and upper=0.0"),
            ("lower", 0.5, ValueError, "RReLU: lower must be <= upper, got lower=0.5 and upper=0.3")]:
        with pytest.raises(error, match=re.escape(message)):
            setattr(layer, name, bad)
        assert (layer.lower, layer.upper) == (0.1, 0.3) and layer.rng.bit_generator.state == state
    layer.upper = 0.7  # both moved past the old range: the leading bound first
    layer.lower = 0.5
    assert (layer.lower, layer.upper, layer.eval_slope) == (0.5, 0.7, 0.6)
    assert repr(layer) == "RReLU(lower=0.5, upper=0.7)"
    slopes = -layer(x)
    assert 0.5 <= slopes.min() < 0.501 and 0.699 < slopes.max() <= 0.7
    layer.lower = 1 - 0.3  # equal bounds: one slope
    np.testing.assert_array_equal(layer(x), -0.7)
    layer.upper = 2  # an int, kept as a float
    assert type(layer.upper) is float and repr(layer) == "RReLU(lower=0.7, upper=2.0)"
    layer.eval()
    np.testing.assert_array_equal(layer(x), -1.35)


def test_eval_backward_uses_its_forwards_slope_whatever_is_set_since() -> None:
    """The eval backward read the bounds (LeakyReLU its negative_slope) at backward time: changed after the
    forward, they gave the new slope's gradient without an error."""
    x, g = np.array([-1.0, -2.0, 3.0]), np.ones(3)
    layer = md.RReLU(0.1, 0.3, rng=0).eval()
    layer(x)
    layer.upper, layer.lower = 0.7, 0.5
    np.testing.assert_array_equal(layer.backward(g), [0.2, 0.2, 1.0])  # the forward's mean slope
    layer.train()
    np.testing.assert_array_equal(layer.backward(g), [0.2, 0.2, 1.0])  # a mode set in between changes nothing
    layer.eval()
    np.testing.assert_array_equal(layer(x), [-0.6, -1.2, 3.0])
    np.testing.assert_array_equal(layer.backward(g), [0.6, 0.6, 1.0])
    x16 = x.astype(np.float16)
    layer(x16)
    layer.lower = 0.0
    np.testing.assert_array_equal(layer.backward(g.astype(np.float16)), np.array([0.6, 0.6, 1.0], np.float16))


def test_leaky_relu_backward_uses_its_forwards_slope_and_checks_it_when_set() -> None:
    x, g = np.array([-1.0, -2.0, 3.0]), np.ones(3)
    leaky = md.LeakyReLU(0.01)
    leaky(x)
    leaky.negative_slope = 0.5
    np.testing.assert_array_equal(leaky.backward(g), [0.01, 0.01, 1.0])
    np.testing.assert_array_equal(leaky(x), [-0.5, -1.0, 3.0])
    np.testing.assert_array_equal(leaky.backward(g), [0.5, 0.5, 1.0])
    assert repr(leaky) == "LeakyReLU(negative_slope=0.5)"
    for bad, error in (("a", TypeError), (np.nan, ValueError), (None, TypeError)):
        with pytest.raises(error, match="LeakyReLU: negative_slope must be a finite number"):
            leaky.negative_slope = bad
    assert leaky.negative_slope == 0.5
    np.testing.assert_array_equal(leaky.backward(g), [0.5, 0.5, 1.0])
    report = md.GradientChecker(leaky, inputs=np.random.default_rng(0).normal(size=(4, 5))).run()
    assert report.passed


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix is pending deprecation)
@pytest.mark.parametrize("make", [lambda: md.RReLU(rng=0), lambda: md.RReLU(rng=0).eval(), lambda: md.LeakyReLU(0.1),
                                  lambda: md.Dropout(0.4, rng=0), lambda: md.AlphaDropout(0.4, rng=0),
                                  lambda: md.FeatureAlphaDropout(0.4, rng=0)],
                         ids=["RReLU", "RReLU-eval", "LeakyReLU", "Dropout", "AlphaDropout", "FeatureAlphaDropout"])
def test_an_np_matrix_input_is_computed_as_its_plain_array(make: Any) -> None:
    """An np.matrix's * is a matrix product: a training forward crashed with a bare NumPy error (shapes not
    aligned).  It is computed on as the plain array it holds, as Dense does."""
    x = np.random.default_rng(0).normal(size=(4, 6))
    g = np.random.default_rng(1).normal(size=(4, 6))
    plain, matrix = make(), make()
    y = matrix(np.asmatrix(x))
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, plain(x))
    np.testing.assert_array_equal(matrix.backward(g), plain.backward(g))


# --------------------------------------------------------------------------------------- FeatureAlphaDropout
def alpha_constants(p: float) -> tuple[float, float, float]:
    """(a, the kept offset, the dropped value) of alpha dropout with drop probability p."""
    a = 1 / np.sqrt((ALPHA**2 * p + 1) * (1 - p))
    return a, ALPHA * a * p, ALPHA * a * (p - 1)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("shape", [(60, 40, 7), (40, 30, 3, 4), (20, 30, 2, 2, 2), (60, 50)])
def test_feature_alpha_dropout_drops_whole_channels_by_its_formula(p: float, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(1).normal(size=shape)
    layer = md.FeatureAlphaDropout(p, rng=0)
    y = layer(x)
    N, C = shape[:2]
    assert layer.mask.shape == (N, C, *(1,) * (len(shape) - 2))
    a, offset, dropped_value = alpha_constants(p)
    kept = (layer.mask != 0).reshape(N, C)
    np.testing.assert_allclose(layer.mask.reshape(N, C)[kept], a, rtol=1e-15)
    flat_x, flat_y = x.reshape(N, C, -1), y.reshape(N, C, -1)
    np.testing.assert_allclose(flat_y[kept], a * flat_x[kept] + offset, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(flat_y[~kept], dropped_value, rtol=1e-14)  # the whole channel
    n = N * C  # the drop count is Binomial(N*C, p): within 5 standard deviations
    assert abs((~kept).sum() - p * n) < 5 * np.sqrt(n * p * (1 - p))
    g = np.random.default_rng(2).normal(size=shape)
    dx = layer.backward(g)
    assert dx.shape == shape
    np.testing.assert_array_equal(dx, g * layer.mask)
    np.testing.assert_array_equal(dx.reshape(N, C, -1)[~kept], 0.0)


def test_feature_alpha_dropout_keeps_a_standard_inputs_mean_and_variance() -> None:
    """After SELU the activations have mean 0 and variance 1; dropping channels the alpha way keeps
    them (Dropout2d's zeros would not)."""
    x = np.random.default_rng(2).normal(size=(4000, 50, 2))
    for p in (0.1, 0.5, 0.9):
        y = md.FeatureAlphaDropout(p, rng=4)(x)
        assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02, (p, y.mean(), y.var())
    y = md.Dropout1d(0.5, rng=4)(x)
    assert abs(y.var() - 1) > 0.5


def test_feature_alpha_dropout_eval_p_zero_one_dtypes_and_repr() -> None:
    x = np.random.default_rng(3).normal(size=(4, 5, 3))
    layer = md.FeatureAlphaDropout(0.3, rng=0).eval()
    state = layer.rng.bit_generator.state
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))
    assert layer.mask is None and layer.rng.bit_generator.state == state
    np.testing.assert_array_equal(md.FeatureAlphaDropout(0.0, rng=0)(x), x)
    ones = md.FeatureAlphaDropout(1.0, rng=0)
    np.testing.assert_array_equal(ones(x), np.zeros_like(x))  # as PyTorch
    np.testing.assert_array_equal(ones.backward(np.ones_like(x)), np.zeros_like(x))
    for dtype in (np.float32, np.float16):
        layer = md.FeatureAlphaDropout(0.3, rng=0)
        y = layer(x.astype(dtype))
        assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    layer = md.FeatureAlphaDropout(0.3, rng=1)
    x32 = x.astype(np.float32)
    y32 = layer(x32)
    a, offset, dropped_value = alpha_constants(0.3)
    assert layer.mask.dtype == np.float32 and layer.mask.shape == (4, 5, 1)
    assert 0 < (layer.mask == 0).sum() < 20
    f32 = np.float32  # kept: a x + b with a and b in float32, as PyTorch; dropped: its value rounded once
    expected = np.where(layer.mask != 0, x32 * f32(a) + f32(offset), f32(dropped_value))
    assert_same_bits(y32, expected)
    assert_same_bits(layer.backward(np.ones_like(x32)), np.broadcast_to(layer.mask, x.shape) * np.ones_like(x32))
    assert repr(md.FeatureAlphaDropout(0.2)) == "FeatureAlphaDropout(p=0.2)"
    assert repr(md.FeatureAlphaDropout()) == "FeatureAlphaDropout(p=0.5)"
    assert isinstance(layer, md.AlphaDropout) and md.FeatureAlphaDropout.elementwise


def test_feature_alpha_dropout_reproducible_with_a_seed() -> None:
    x = np.random.default_rng(0).normal(size=(6, 8, 5))
    np.testing.assert_array_equal(md.FeatureAlphaDropout(rng=7)(x), md.FeatureAlphaDropout(rng=7)(x))
    assert not np.array_equal(md.FeatureAlphaDropout(rng=7)(x), md.FeatureAlphaDropout(rng=8)(x))
    assert [name for name, _ in md.FeatureAlphaDropout(rng=0).named_generators()] == ["rng"]
    layer = md.FeatureAlphaDropout(rng=3)
    state = layer.rng.bit_generator.state
    y1 = layer(x)
    layer.rng.bit_generator.state = state
    np.testing.assert_array_equal(layer(x), y1)


DROPOUT_INPUTS = {md.Dropout: (4, 3, 2), md.Dropout1d: (4, 3, 2), md.Dropout2d: (4, 3, 2, 2),
                  md.AlphaDropout: (4, 3, 2), md.FeatureAlphaDropout: (4, 3, 2)}


@pytest.mark.parametrize("cls", list(DROPOUT_INPUTS), ids=lambda cls: cls.__name__)
def test_every_dropout_names_itself_for_a_bad_rng_and_checks_p_when_set(cls: type) -> None:
    """Dropout.__init__ called as_generator without the class's name ("rng must be ...", no class); p set
    after construction was not checked (1.5: NaN outputs and a RuntimeWarning)."""
    name = cls.__name__
    with pytest.raises(TypeError, match=rf"^{name}: rng must be a numpy\.random\.Generator, an int seed >= 0 or None, "
                                        r"got '0'$"):
        cls(rng="0")
    with pytest.raises(ValueError, match=rf"^{name}: rng: a seed must be an int >= 0, got -1$"):
        cls(rng=-1)
    layer = cls(0.5, rng=0)
    for bad, error, message in [(1.5, ValueError, "must be in [0, 1], got 1.5"),
                                (-0.1, ValueError, "must be in [0, 1], got -0.1"),
                                (np.nan, ValueError, "must be in [0, 1], got nan"),
                                ("0.5", TypeError, "must be a number, got '0.5'"),
                                (True, TypeError, "must be a number, got True")]:
        with pytest.raises(error, match=re.escape(f"{name}: p (the drop probability) {message}")):
            layer.p = bad
        assert layer.p == 0.5
    x = np.random.default_rng(0).normal(size=DROPOUT_INPUTS[cls])
    layer.p = 0.2
    assert repr(layer) == f"{name}(p=0.2)"
    layer(x)
    alpha = issubclass(cls, md.AlphaDropout)
    np.testing.assert_allclose(layer.mask.max(), alpha_constants(0.2)[0] if alpha else 1.25, rtol=1e-15)
    layer.p = 1  # an int: kept as a float, everything dropped
    assert type(layer.p) is float
    np.testing.assert_array_equal(layer(x), np.zeros_like(x))


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_feature_alpha_dropout_p_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match=r"FeatureAlphaDropout: p \(the drop probability\) must be in \[0, 1\]"):
        md.FeatureAlphaDropout(bad)


@pytest.mark.parametrize("bad", ["0.5", None, True])
def test_feature_alpha_dropout_p_must_be_a_number(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"FeatureAlphaDropout: p \(the drop probability\) must be a number"):
        md.FeatureAlphaDropout(bad)


def test_feature_alpha_dropout_refuses_fewer_than_two_axes_and_keeps_its_last_pass() -> None:
    layer = md.FeatureAlphaDropout(0.5, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    y = layer(x)
    mask, state = layer.mask.copy(), layer.rng.bit_generator.state
    for bad in (np.ones(3), np.array(1.0)):
        for training in (True, False):
            layer.train(training)
            with pytest.raises(md.ShapeError, match=re.escape(
                    f"FeatureAlphaDropout(p=0.5): expected an input of shape (N, C, ...), at least 2-D, got shape "
                    f"{bad.shape}")):
                layer(bad)
    layer.train()
    with pytest.raises(md.DTypeError, match="FeatureAlphaDropout"):
        layer(np.ones((2, 3), dtype=int))
    np.testing.assert_array_equal(layer.mask, mask)
    assert layer.rng.bit_generator.state == state
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), mask * np.ones_like(y))
    with pytest.raises(md.ShapeError, match=re.escape("FeatureAlphaDropout(p=0.5).backward: expected grad_output")):
        layer.backward(np.ones((2, 3)))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.FeatureAlphaDropout().backward(np.ones((2, 3)))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("p, shape, seed", [(0.2, (3, 4, 5), 0), (0.5, (2, 3, 4, 3), 1), (0.7, (5, 4), 2),
                                            (0.4, (2, 2, 2, 2, 2), 3)])
def test_feature_alpha_dropout_gradient_checker(training: bool, p: float, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    layer = md.FeatureAlphaDropout(p, rng=seed).train(training)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert report["input"].checked == x.size


@pytest.mark.parametrize("seed", range(2))
def test_feature_alpha_dropout_gradient_checker_in_a_model(seed: int) -> None:
    model = md.Sequential(md.Conv1D(2, 4, 3, rng=seed), md.SELU(), md.FeatureAlphaDropout(0.4, rng=seed),
                          md.Flatten(), md.Dense(4 * 3, 3, rng=seed))
    x = np.random.default_rng(seed).normal(size=(3, 2, 5))
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 2, 1]), seed=seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_feature_alpha_dropout_against_pytorch(dtype: type) -> None:
    """PyTorch's channels come from its own generator; its whole channels, its kept values and its gradient
    (bit for bit, by the same formula) must be minidl's, and its dropped value differs only by its two
    roundings (minidl's is rounded once: docs/layers.md)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = np.random.default_rng(5).normal(size=(50, 40, 6)).astype(dtype)
    dt = np.dtype(dtype).type
    for p in (0.1, 0.5, 0.9, 0.999):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.FeatureAlphaDropout(p)(xt)
        yt.backward(torch.ones_like(xt))
        layer = md.FeatureAlphaDropout(p, rng=0)
        a, offset, dropped_value = alpha_constants(p)
        kept_values = x * dt(a) + dt(offset)  # a and the offset in the dtype, then one product and one sum
        dropped = {}
        for who, y, grad in (("torch", yt.detach().numpy(), xt.grad.numpy()),
                             ("minidl", layer(x), layer.backward(np.ones_like(x)))):
            assert y.dtype == grad.dtype == dtype
            assert (grad == grad[:, :, :1]).all()  # one decision per channel
            kept = np.broadcast_to(grad[:, :, :1] != 0, x.shape)
            n = x.shape[0] * x.shape[1]
            assert abs((~kept[:, :, 0]).sum() - p * n) < 5 * np.sqrt(n * p * (1 - p)) + 1, who
            assert_same_bits(grad[kept], np.full(kept.sum(), dt(a)))
            assert_same_bits(y[kept], kept_values[kept])
            assert np.unique(y[~kept]).size == 1, who
            dropped[who] = y[~kept][0]
        assert dropped["minidl"] == dt(dropped_value)  # rounded once
        assert dropped["torch"] == dt(-dt(ALPHA * a)) + dt(ALPHA * a * p)  # PyTorch: -alpha'a + alpha'a p
        eps = np.finfo(dtype).eps
        assert abs(dropped["torch"] - dropped["minidl"]) <= 2 * eps * ALPHA * a  # the cancellation's size
        if dtype == np.float32 and p == 0.999:  # the documented example
            assert (dropped["torch"], dropped["minidl"]) == (np.float32(-0.027496338), np.float32(-0.027497765))
    np.testing.assert_array_equal(torch.nn.FeatureAlphaDropout(1.0)(torch.tensor(x)).numpy(),
                                  md.FeatureAlphaDropout(1.0, rng=0)(x))


def test_feature_alpha_dropout_refuses_what_pytorch_refuses_only_when_it_draws() -> None:
    """Fewer than 2 axes: PyTorch refuses them only in training with 0 < p < 1 and a non-empty input; it
    returns them unchanged in eval mode or with p = 0, zeros with p = 1, an empty one unchecked.  minidl
    refuses them in every case (docs/layers.md)."""
    cases = [((3,), 0.5, True), ((), 0.5, True), ((3,), 0.0, True), ((3,), 1.0, True), ((), 0.5, False),
             ((0,), 0.5, True), ((0,), 0.5, False)]
    for shape, p, training in cases:
        with pytest.raises(md.ShapeError, match=re.escape(f"FeatureAlphaDropout(p={p}): expected an input of "
                                                          f"shape (N, C, ...), at least 2-D, got shape {shape}")):
            md.FeatureAlphaDropout(p, rng=0).train(training)(np.ones(shape))
    torch = pytest.importorskip("torch")
    for shape, p, training in cases:
        ones = torch.ones(shape, dtype=torch.float64)
        module = torch.nn.FeatureAlphaDropout(p).train(training)
        if training and 0 < p < 1 and ones.numel():
            with pytest.raises(RuntimeError, match="at least 2 dimensions"):
                module(ones)
        else:
            np.testing.assert_array_equal(module(ones).numpy(), np.zeros(shape) if training and p == 1 else 1.0)


# --------------------------------------------------------------------------- generator state: checkpoints, fit
IN_CHANNELS, LENGTH, OUT = 2, 6, 3


def random_model(seed: int) -> md.Sequential:
    """A small convolutional net whose two random layers draw at every training forward."""
    return md.Sequential(md.Conv1D(IN_CHANNELS, 4, 3, rng=seed), md.RReLU(rng=seed + 1),
                         md.FeatureAlphaDropout(0.3, rng=seed + 2), md.Flatten(), md.Dense(4 * 4, OUT, rng=seed + 3))


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(100)
    return rng.normal(size=(24, IN_CHANNELS, LENGTH)), rng.normal(size=(24, OUT))


def assert_bit_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
        else:
            assert a[key] == b[key], key


def test_state_dict_carries_both_generators() -> None:
    x = np.random.default_rng(0).normal(size=(4, IN_CHANNELS, LENGTH))
    first = random_model(0)
    first(x)
    state = first.state_dict(generators=True)
    assert {"1.rng", "2.rng"} <= set(state)
    second = random_model(50)
    second.load_state_dict(state)
    np.testing.assert_array_equal(second(x), first(x))  # the same next slopes and channels
    third = random_model(50)
    third.load_state_dict(first.state_dict())  # without the generators: other draws
    assert not np.array_equal(third(x), first(x))


@pytest.mark.parametrize("with_generators", [True, False])
def test_fit_resumes_bit_for_bit_from_a_checkpoint(with_generators: bool, tmp_path: pathlib.Path) -> None:
    x, y = data()

    def run(model: md.Sequential, opt: md.Optimizer, shuffler: np.random.Generator, epochs: int) -> None:
        model.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=epochs, batch_size=8, rng=shuffler, verbose=0)

    reference = random_model(0)
    reference_opt = md.Adam(reference.parameters(), lr=0.01)
    run(reference, reference_opt, np.random.default_rng(7), 5)

    first = random_model(0)
    first_opt = md.Adam(first.parameters(), lr=0.01)
    shuffler = np.random.default_rng(7)
    run(first, first_opt, shuffler, 3)
    md.save({"model": first.state_dict(generators=with_generators), "optimizer": first_opt.state_dict(),
             "shuffler": shuffler.bit_generator.state}, tmp_path / "run.ckpt")

    resumed = random_model(123)  # other weights and generators, overwritten by the checkpoint
    resumed_opt = md.Adam(resumed.parameters(), lr=0.01)
    checkpoint = md.load(tmp_path / "run.ckpt")
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    resumed_shuffler = np.random.default_rng()
    resumed_shuffler.bit_generator.state = checkpoint["shuffler"]
    run(resumed, resumed_opt, resumed_shuffler, 2)
    if with_generators:
        assert_bit_equal(resumed.state_dict(generators=True), reference.state_dict(generators=True))
    else:  # the slopes and channels came from the fresh model's generators: another run
        assert not np.array_equal(resumed.parameters()[0].data, reference.parameters()[0].data)


def generator_states(model: md.Layer) -> dict[str, str]:
    return {name: repr(g.bit_generator.state) for name, g in model.named_generators()}


def test_a_refused_later_batch_leaves_the_generators_as_that_batch_found_them() -> None:
    """The third batch is refused after both random layers drew for it: fit puts their generators back to
    where the second batch left them (saved per batch), not to where fit began."""
    x, y = data()
    seen: list[dict[str, str]] = []  # the generators after each batch's draws

    class RefuseTheThird(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            seen.append(generator_states(model))
            if len(seen) == 3:
                raise md.ShapeError("RefuseTheThird: refused")
            return x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output

    model = md.Sequential(*random_model(0), RefuseTheThird())
    before = generator_states(model)
    assert len(before) == 2
    with pytest.raises(md.ShapeError, match=r"batch 3/3 .*RefuseTheThird: refused"):
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=8, verbose=0)
    assert len(seen) == 3 and seen[0] != before and seen[1] != seen[0] and seen[2] != seen[1]
    assert generator_states(model) == seen[1]
