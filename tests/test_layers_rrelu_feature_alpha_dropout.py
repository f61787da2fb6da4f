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
        for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-6)]:
            xd, gd = x.astype(dtype), g.astype(dtype)
            layer = md.RReLU(lower, upper, rng=seed).eval()
            xt = torch.tensor(xd, requires_grad=True)
            yt = torch.nn.RReLU(lower, upper).eval()(xt)
            yt.backward(torch.tensor(gd))
            y, dx = layer(xd), layer.backward(gd)
            assert y.dtype == dx.dtype == dtype
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
            np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


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
    y32 = layer(x.astype(np.float32))
    a, offset, dropped_value = alpha_constants(0.3)
    assert layer.mask.dtype == np.float32 and layer.mask.shape == (4, 5, 1)
    expected = np.where(layer.mask != 0, a * x.astype(np.float32).astype(np.float64) + offset, dropped_value)
    np.testing.assert_allclose(y32, expected, rtol=1e-6, atol=1e-6)
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


def test_feature_alpha_dropout_against_pytorch() -> None:
    """PyTorch's channels come from its own generator; its dropped value, its scale, its whole channels and
    its gradient must be minidl's."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = np.random.default_rng(5).normal(size=(50, 40, 6))
    for p in (0.1, 0.5, 0.9):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.FeatureAlphaDropout(p)(xt)
        yt.backward(torch.ones_like(xt))
        theirs = yt.detach().numpy()
        layer = md.FeatureAlphaDropout(p, rng=0)
        layer(x)
        a, offset, dropped_value = alpha_constants(p)
        their_grad = xt.grad.numpy()
        dropped = their_grad[:, :, 0] == 0
        assert (their_grad == their_grad[:, :, :1]).all()  # one decision per channel in PyTorch too
        np.testing.assert_allclose(their_grad[~dropped], layer.mask.max(), rtol=1e-14)
        np.testing.assert_allclose(layer.mask.max(), a, rtol=1e-15)
        np.testing.assert_allclose(theirs[dropped], layer(x)[layer.mask[:, :, 0] == 0][0, 0], rtol=1e-14)
        np.testing.assert_allclose(theirs[dropped], dropped_value, rtol=1e-14)
        np.testing.assert_allclose(theirs[~dropped], a * x[~dropped] + offset, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(torch.nn.FeatureAlphaDropout(1.0)(torch.tensor(x)).numpy(),
                                  md.FeatureAlphaDropout(1.0, rng=0)(x))
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):  # PyTorch refuses 1-D in training too
        torch.nn.FeatureAlphaDropout(0.5)(torch.ones(3))


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


class _Refuse(md.Layer):
    """Refuses every batch after the random layers have drawn."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise md.ShapeError("_Refuse: refused")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise AssertionError("never reached")


def test_a_refused_batch_leaves_the_generators_as_they_were() -> None:
    x, y = data()
    model = md.Sequential(*random_model(0), _Refuse())
    before = model.state_dict(generators=True)
    with pytest.raises(md.ShapeError, match="_Refuse: refused"):
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=8, verbose=0)
    assert_bit_equal(model.state_dict(generators=True), before)
