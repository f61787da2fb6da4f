"""Hardtanh, ReLU6, Hardsigmoid, Hardswish, SELU, CELU, Mish, Softsign, LogSigmoid: values and slopes
against per-element formulas, PyTorch's conventions at the kinks, gradient checks, dtypes, arguments."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _hardtanh(x: float, lo: float, hi: float) -> tuple[float, float]:
    """(value, slope) per element, with the math module."""
    return min(max(x, lo), hi), 1.0 if lo < x < hi else 0.0


def _hardsigmoid(x: float) -> tuple[float, float]:
    return min(max(x + 3, 0.0), 6.0) / 6, 1 / 6 if -3 < x < 3 else 0.0


def _hardswish(x: float) -> tuple[float, float]:
    slope = 0.0 if x <= -3 else (x / 3 + 0.5 if x < 3 else 1.0)
    return x * min(max(x + 3, 0.0), 6.0) / 6, slope


def _selu(x: float) -> tuple[float, float]:
    if x > 0:
        return SELU_SCALE * x, SELU_SCALE
    return SELU_SCALE * SELU_ALPHA * math.expm1(x), SELU_SCALE * SELU_ALPHA * math.exp(x)


def _celu(x: float, alpha: float) -> tuple[float, float]:
    return (x, 1.0) if x > 0 else (alpha * math.expm1(x / alpha), math.exp(x / alpha))


def _mish(x: float) -> tuple[float, float]:
    softplus = math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))
    t = math.tanh(softplus)
    return x * t, t + x * _sigmoid(x) * (1 - t * t)


def _softsign(x: float) -> tuple[float, float]:
    return x / (1 + abs(x)), (1 / (1 + abs(x))) ** 2


def _logsigmoid(x: float) -> tuple[float, float]:
    value = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
    return value, _sigmoid(-x)


ACTIVATIONS: list[tuple[str, Callable[[], md.Layer], Callable[[float], tuple[float, float]]]] = [
    ("hardtanh", lambda: md.Hardtanh(), lambda x: _hardtanh(x, -1.0, 1.0)),
    ("hardtanh-2-0.5", lambda: md.Hardtanh(-2.0, 0.5), lambda x: _hardtanh(x, -2.0, 0.5)),
    ("relu6", lambda: md.ReLU6(), lambda x: _hardtanh(x, 0.0, 6.0)),
    ("hardsigmoid", lambda: md.Hardsigmoid(), _hardsigmoid),
    ("hardswish", lambda: md.Hardswish(), _hardswish),
    ("selu", lambda: md.SELU(), _selu),
    ("celu", lambda: md.CELU(), lambda x: _celu(x, 1.0)),
    ("celu-0.3", lambda: md.CELU(0.3), lambda x: _celu(x, 0.3)),
    ("mish", lambda: md.Mish(), _mish),
    ("softsign", lambda: md.Softsign(), _softsign),
    ("logsigmoid", lambda: md.LogSigmoid(), _logsigmoid),
]
IDS = [a[0] for a in ACTIVATIONS]
KINKS = [-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 3.0, 6.0]


@pytest.mark.parametrize("name, build, formula", ACTIVATIONS, ids=IDS)
def test_values_and_slopes_match_the_formulas(name: str, build: Any, formula: Any) -> None:
    x = np.concatenate([np.linspace(-40, 40, 321), KINKS, [-1e-12, 1e-12, -700.0, 700.0]])
    g = np.random.default_rng(0).normal(size=x.shape)
    layer = build()
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # (underflow to 0 is right)
        y = layer(x)
        dx = layer.backward(g)
    values = np.array([formula(float(v)) for v in x])
    np.testing.assert_allclose(y, values[:, 0], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(dx, g * values[:, 1], rtol=1e-13, atol=1e-300)


def test_slopes_at_the_kinks_follow_pytorch() -> None:
    """The one-sided slopes differ there; the choice is PyTorch's (checked against it below)."""
    cases: list[tuple[md.Layer, list[float], list[float]]] = [
        (md.Hardtanh(), [-1.0, 1.0], [0.0, 0.0]),
        (md.ReLU6(), [0.0, 6.0], [0.0, 0.0]),
        (md.Hardsigmoid(), [-3.0, 3.0], [0.0, 0.0]),
        (md.Hardswish(), [-3.0, 3.0], [0.0, 1.0]),
        (md.SELU(), [0.0], [SELU_SCALE * SELU_ALPHA]),
        (md.CELU(0.5), [0.0], [1.0]),
        (md.Softsign(), [0.0], [1.0]),
        (md.LogSigmoid(), [0.0], [0.5]),
    ]
    for layer, points, slopes in cases:
        layer(np.array(points))
        np.testing.assert_array_equal(layer.backward(np.ones(len(points))), slopes, err_msg=repr(layer))


@pytest.mark.parametrize("name, build, formula", ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 3, 2), 1), ((7,), 2)])
def test_gradient_checker(name: str, build: Any, formula: Any, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    report = assert_gradients_ok(build(), inputs=x, seed=seed)
    assert report["input"].checked == x.size
    assert report["input"].max_rel_error < 1e-6


@pytest.mark.parametrize("name, build, formula", ACTIVATIONS, ids=IDS)
def test_gradient_checker_at_the_kinks_gives_no_false_alarm(name: str, build: Any, formula: Any) -> None:
    x = np.array(KINKS).reshape(2, 4)
    assert_gradients_ok(build(), inputs=x)


@pytest.mark.parametrize("name, build, formula", ACTIVATIONS, ids=IDS)
def test_float32_stays_float32(name: str, build: Any, formula: Any) -> None:
    x = np.linspace(-8, 8, 33, dtype=np.float32).reshape(3, 11)
    layer, ref = build(), build()
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, ref(x.astype(np.float64)), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(dx, ref.backward(np.ones((3, 11))), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name, build, formula", ACTIVATIONS, ids=IDS)
def test_float16_stays_float16_and_is_close(name: str, build: Any, formula: Any) -> None:
    x64 = np.linspace(-6.0, 6.0, 97)
    x16 = x64.astype(np.float16)
    layer, ref = build(), build()
    y = layer(x16)
    dx = layer.backward(np.ones(x16.shape, np.float16))
    assert y.dtype == dx.dtype == np.float16
    y64 = ref(x16.astype(np.float64))
    d64 = ref.backward(np.ones(x16.shape))
    np.testing.assert_allclose(y.astype(np.float64), y64, rtol=4 * 2.0**-11, atol=2.0**-14)
    np.testing.assert_allclose(dx.astype(np.float64), d64, rtol=4 * 2.0**-11, atol=2.0**-14)


def test_mish_float16_is_computed_in_float32_and_rounded_once() -> None:
    x16 = np.linspace(-6.0, 6.0, 241).astype(np.float16)
    layer, exact = md.Mish(), md.Mish()
    y = layer(x16)
    expected = exact(x16.astype(np.float64))
    np.testing.assert_array_equal(y, np.asarray(expected).astype(np.float32).astype(np.float16))


def test_tails_keep_their_digits_and_never_overflow() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        logsig = md.LogSigmoid()
        np.testing.assert_allclose(logsig(np.array([-800.0, 40.0])), [-800.0, -math.exp(-40.0)], rtol=1e-15)
        np.testing.assert_allclose(logsig.backward(np.ones(2)), [1.0, math.exp(-40.0)], rtol=1e-15)
        softsign = md.Softsign()
        assert softsign(np.array([1e300]))[0] == 1.0
        assert softsign.backward(np.ones(1))[0] == 0.0  # 1e-600: no overflow on the way to it
        mish = md.Mish()
        np.testing.assert_allclose(mish(np.array([-800.0, 800.0, 1e300])), [-800.0 * math.exp(-800.0), 800.0, 1e300])
        np.testing.assert_allclose(mish.backward(np.ones(3)), [0.0, 1.0, 1.0], atol=1e-300)
        for layer in (md.SELU(), md.CELU(0.25)):
            y = layer(np.array([-1e4]))
            assert np.isfinite(y).all() and np.isfinite(layer.backward(np.ones(1))).all()
    assert md.Softsign()(np.array([1e4], np.float32)).dtype == np.float32


def test_nan_in_gives_nan_out() -> None:
    x = np.array([np.nan, 1.0])
    for _, build, _ in ACTIVATIONS:
        layer = build()
        y = layer(x)
        assert np.isnan(y[0]) and np.isfinite(y[1]), repr(layer)


def test_in_a_model_the_checker_passes() -> None:
    model = md.Sequential(md.Dense(4, 6, rng=0), md.SELU(), md.Dense(6, 6, rng=1), md.Mish(),
                          md.Dense(6, 5, rng=2), md.Hardswish(), md.Dense(5, 4, rng=3), md.Softsign(),
                          md.Dense(4, 3, rng=4), md.LogSigmoid())
    x = np.random.default_rng(1).normal(size=(5, 4))
    report = assert_gradients_ok(model, inputs=x, loss=md.MSELoss(), targets=-np.ones((5, 3)))
    assert {"input", "0.W", "8.W"} <= {r.name for r in report.results if r.checked}


def test_arguments_are_checked_and_shown() -> None:
    for bad in ("1", float("nan"), float("inf"), None, True):
        error = ValueError if isinstance(bad, float) else TypeError
        with pytest.raises(error, match="Hardtanh: min_val must be a finite number"):
            md.Hardtanh(min_val=bad)
        with pytest.raises(error, match="Hardtanh: max_val must be a finite number"):
            md.Hardtanh(max_val=bad)
        with pytest.raises(error, match="CELU: alpha must be a finite number"):
            md.CELU(bad)
    for lo, hi in ((1.0, 1.0), (2.0, -1.0)):
        with pytest.raises(ValueError, match=f"Hardtanh: min_val must be less than max_val, got min_val={lo} "
                                             f"and max_val={hi}"):
            md.Hardtanh(lo, hi)
    with pytest.raises(ValueError, match="CELU: alpha must not be 0"):
        md.CELU(0.0)
    assert repr(md.Hardtanh(-2, 3)) == "Hardtanh(min_val=-2.0, max_val=3.0)"
    assert repr(md.ReLU6()) == "ReLU6()"
    assert repr(md.CELU(0.5)) == "CELU(alpha=0.5)"
    assert [repr(c()) for c in (md.SELU, md.Mish, md.Hardsigmoid, md.Hardswish, md.Softsign, md.LogSigmoid)] == [
        "SELU()", "Mish()", "Hardsigmoid()", "Hardswish()", "Softsign()", "LogSigmoid()"]
    assert isinstance(md.ReLU6(), md.Hardtanh) and md.ReLU6().max_val == 6.0


def test_backward_checks_the_gradient_and_the_output_is_safe_to_change() -> None:
    for _, build, _ in ACTIVATIONS:
        layer = build()
        with pytest.raises(md.BackwardBeforeForwardError):
            layer.backward(np.ones(3))
        y = layer(np.array([-4.0, 0.25, 4.0]))
        with pytest.raises(md.ShapeError, match=type(layer).__name__):
            layer.backward(np.ones(2))
        g = layer.backward(np.ones(3))
        y[...] = 0  # the output is the caller's: the back-pass does not depend on it
        np.testing.assert_array_equal(layer.backward(np.ones(3)), g)


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    x = np.concatenate([np.linspace(-30, 30, 241), KINKS])
    g = np.random.default_rng(0).normal(size=x.shape)
    pairs = [(md.Hardtanh(), torch.nn.Hardtanh()), (md.Hardtanh(-2.0, 0.5), torch.nn.Hardtanh(-2.0, 0.5)),
             (md.ReLU6(), torch.nn.ReLU6()), (md.Hardsigmoid(), torch.nn.Hardsigmoid()),
             (md.Hardswish(), torch.nn.Hardswish()), (md.SELU(), torch.nn.SELU()), (md.CELU(), torch.nn.CELU()),
             (md.CELU(0.3), torch.nn.CELU(0.3)), (md.Mish(), torch.nn.Mish()), (md.Softsign(), torch.nn.Softsign()),
             (md.LogSigmoid(), torch.nn.LogSigmoid())]
    for ours, theirs in pairs:
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt).backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), theirs(xt).detach().numpy(), rtol=1e-12, atol=1e-15,
                                   err_msg=repr(ours))
        # PyTorch's Hardsigmoid backward multiplies by 1/6 rounded to float32 (2.98e-8 relative); its CELU
        # slope is (y + alpha) / alpha, which cancels where exp(x / alpha) is small (4e-6 relative at -30;
        # minidl's exp(x / alpha) matches the math module to 1e-13 above)
        rtol = {md.Hardsigmoid: 1e-7, md.CELU: 2e-6}.get(type(ours), 1e-12)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=rtol, atol=1e-15, err_msg=repr(ours))


# --- what an outside review found -----------------------------------------------------------------


FLOAT16_ROUNDED_ONCE = [("hardtanh-0.3", lambda: md.Hardtanh(-2.0, 0.3)), ("hardsigmoid", lambda: md.Hardsigmoid()),
                        ("hardswish", lambda: md.Hardswish()), ("selu", lambda: md.SELU()),
                        ("elu-0.3", lambda: md.ELU(0.3)), ("celu-0.3", lambda: md.CELU(0.3)),
                        ("softsign", lambda: md.Softsign()), ("logsigmoid", lambda: md.LogSigmoid())]


@pytest.mark.parametrize("name, build", FLOAT16_ROUNDED_ONCE, ids=[a[0] for a in FLOAT16_ROUNDED_ONCE])
def test_float16_is_computed_in_float32_and_rounded_once(name: str, build: Any) -> None:
    """Computed in float16, CELU(0.3)'s slope was 0.56% off (x / alpha rounded before exp), Hardsigmoid
    at -0.000733 gave 0.5 (x + 3 rounded), SELU and LogSigmoid a float16 ulp or two; PyTorch computes
    float16 in float32.  Now each is the float64 value rounded to float16, on a dense grid."""
    x16 = np.concatenate([np.linspace(-8.0, 8.0, 1601), [-0.000733, -2.445, 0.2998]]).astype(np.float16)
    layer, exact = build(), build()
    y = layer(x16)
    dx = layer.backward(np.ones(x16.shape, np.float16))
    y64 = np.asarray(exact(x16.astype(np.float64)))
    d64 = exact.backward(np.ones(x16.shape))
    assert y.dtype == dx.dtype == np.float16
    np.testing.assert_array_equal(y, y64.astype(np.float16))
    np.testing.assert_array_equal(dx, d64.astype(np.float16))


def test_hardswish_multiplies_x_last_so_no_finite_input_overflows() -> None:
    """x * clip(x + 3, 0, 6) overflowed float16 from x = 10923 on (PyTorch: 12000 -> 12000)."""
    with np.errstate(over="raise"):
        assert md.Hardswish()(np.array([12000.0], np.float16))[0] == 12000.0
        assert md.Hardswish()(np.array([3e38], np.float32))[0] == np.float32(3e38)
        assert md.Hardswish()(np.array([1e308]))[0] == 1e308


def test_hardswish_backward_does_not_overflow_at_the_largest_floats() -> None:
    """The middle branch's 2x + 3, which np.where then discarded, overflowed at |x| = 3e38 in float32."""
    layer = md.Hardswish()
    for dtype in (np.float32, np.float64):
        big = np.finfo(dtype).max
        x = np.array([-big, -3.0, -1.5, 0.0, 2.0, 3.0, big], dtype)
        with np.errstate(all="raise"):
            layer(x)
            dx = layer.backward(np.ones_like(x))
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, np.array([0.0, 0.0, 0.0, 0.5, 7 / 6, 1.0, 1.0], dtype))


def test_an_infinite_gradient_where_the_slope_is_zero_gives_zero() -> None:
    layer = md.Hardswish()
    layer(np.array([-5.0, -3.0, 0.0, 5.0]))
    np.testing.assert_array_equal(layer.backward(np.full(4, np.inf)), [0.0, 0.0, np.inf, np.inf])


def test_alpha_changed_after_construction_is_used_and_checked() -> None:
    """CELU kept 1/alpha from construction: alpha = 0.5 set later gave -0.316 at x = -1 (a mix)."""
    for cls in (md.CELU, md.ELU):
        changed, fresh = cls(1.0), cls(0.5)
        changed.alpha = 0.5
        x = np.array([-1.0, 2.0])
        np.testing.assert_array_equal(changed(x), fresh(x))
        np.testing.assert_array_equal(changed.backward(np.ones(2)), fresh.backward(np.ones(2)))
        assert repr(changed) == f"{cls.__name__}(alpha=0.5)"
        with pytest.raises(TypeError, match=f"{cls.__name__}: alpha must be a finite number, got 'big'"):
            changed.alpha = "big"  # type: ignore[assignment]
        assert changed.alpha == 0.5
    with pytest.raises(ValueError, match="CELU: alpha must not be 0"):
        md.CELU().alpha = 0.0


def test_celu_with_a_tiny_alpha_divides_instead_of_overflowing_its_reciprocal() -> None:
    for dtype in (np.float16, np.float32):
        layer = md.CELU(1e-5 if dtype == np.float16 else 1e-39)
        with np.errstate(all="raise", under="ignore"):  # (exp(-1 / alpha) is 0)
            y = layer(np.array([0.0, -1.0, 1.0], dtype))
            dx = layer.backward(np.ones(3, dtype))
        alpha = 1e-5 if dtype == np.float16 else 1e-39
        np.testing.assert_array_equal(y, np.array([0.0, -alpha, 1.0]).astype(dtype))  # alpha (e^(-1/alpha) - 1)
        np.testing.assert_array_equal(dx, [1.0, 0.0, 1.0])


def test_hardtanh_bounds_beyond_float16_are_no_bounds() -> None:
    """The bounds were cast to float16 with an overflow warning; 0.2998 (float16) < 0.3 was 'equal'."""
    x = np.array([-np.inf, -60000.0, 0.2998, 0.5], np.float16)
    layer = md.Hardtanh(-70000.0, 0.3)
    with np.errstate(all="raise"):
        y = layer(x)
        dx = layer.backward(np.ones(4, np.float16))
    np.testing.assert_array_equal(y, np.array([-np.inf, -60000.0, 0.2998, 0.3], np.float16))
    np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, 0.0])


# --- GLU --------------------------------------------------------------------------------------------


def _glu_by_hand(x: np.ndarray, axis: int) -> np.ndarray:
    a, b = np.split(x, 2, axis=axis)
    return a / (1 + np.exp(-b))


@pytest.mark.parametrize("shape, axis, seed", [((3, 8), -1, 0), ((2, 6, 5), 1, 1), ((4, 2), 0, 2),
                                               ((2, 3, 2, 4), 2, 3)])
def test_glu_halves_gate_and_pass_the_checker(shape: tuple[int, ...], axis: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    layer = md.GLU(axis)
    y = layer(x)
    np.testing.assert_allclose(y, _glu_by_hand(x, axis), rtol=1e-14)
    expected = list(shape)
    expected[axis] //= 2
    assert y.shape == tuple(expected)
    report = assert_gradients_ok(md.GLU(axis), inputs=x, seed=seed)
    assert report["input"].checked == x.size


def test_glu_backward_by_hand_and_in_a_model() -> None:
    x = np.array([[1.0, -2.0, 0.5, 40.0]])  # a = (1, -2), b = (0.5, 40): s(40) rounds to 1
    layer = md.GLU()
    layer(x)
    s = 1 / (1 + np.exp(-np.array([0.5, 40.0])))
    g = np.array([[2.0, 3.0]])
    dx = layer.backward(g)
    np.testing.assert_allclose(dx[0, :2], g[0] * s, rtol=1e-15)
    np.testing.assert_allclose(dx[0, 2:], g[0] * np.array([1.0, -2.0]) * s * np.exp(-np.array([0.5, 40.0])) * s,
                               rtol=1e-14)
    assert dx[0, 3] != 0.0  # 1 - s would be 0 at b = 40; sigmoid(-40) keeps it
    model = md.Sequential(md.Dense(4, 8, rng=0), md.GLU(), md.Dense(4, 2, rng=1))
    assert_gradients_ok(model, inputs=np.random.default_rng(0).normal(size=(5, 4)), loss=md.MSELoss(),
                        targets=np.zeros((5, 2)))


def test_glu_dtypes_nan_and_refusals() -> None:
    x = np.linspace(-4, 4, 24).reshape(3, 8)
    for dtype in (np.float32, np.float16):
        layer = md.GLU()
        y = layer(x.astype(dtype))
        dx = layer.backward(np.ones(y.shape, dtype))
        assert y.dtype == dx.dtype == dtype
        np.testing.assert_allclose(y.astype(np.float64), _glu_by_hand(x.astype(dtype).astype(np.float64), -1),
                                   rtol=2.0**-10 if dtype == np.float16 else 1e-6, atol=1e-7)
    nan = x.copy()
    nan[0, 1] = np.nan  # in a: only the output it gates is NaN
    y = md.GLU()(nan)
    assert np.isnan(y[0, 1]) and np.isfinite(np.delete(y.ravel(), 1)).all()
    with pytest.raises(md.ShapeError, match=r"GLU\(axis=-1\): the input's axis -1 must have an even size .* got 5"):
        md.GLU()(np.ones((2, 5)))
    with pytest.raises(md.ShapeError, match=r"GLU\(axis=2\): the input has 2 dimension\(s\)"):
        md.GLU(2)(np.ones((2, 4)))
    with pytest.raises(TypeError, match=r"GLU: axis must be an int, got 1.0"):
        md.GLU(1.0)  # type: ignore[arg-type]
    with pytest.raises(md.DTypeError, match="GLU"):
        md.GLU()(np.ones((2, 4), dtype=int))
    layer = md.GLU()
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.ones((2, 2)))
    layer(np.ones((2, 4)))
    with pytest.raises(md.ShapeError, match=r"GLU\.backward"):
        layer.backward(np.ones((2, 4)))
    assert repr(md.GLU(1)) == "GLU(axis=1)"


def test_glu_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    for shape, axis in (((3, 8), -1), ((2, 6, 5), 1), ((4, 2), 0)):
        x = rng.normal(scale=3.0, size=shape)
        layer = md.GLU(axis)
        y = layer(x)
        g = rng.normal(size=y.shape)
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.GLU(axis)(xt).backward(torch.tensor(g))
        np.testing.assert_allclose(y, torch.nn.GLU(axis)(xt).detach().numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_lecun_init_keeps_a_selu_stack_self_normalising() -> None:
    """A SELU network needs N(0, 1/fan_in) weights; the default init shrinks the variance toward 0 and
    "he" lets it grow (a user's review measured 0.0098 and 16 after ten layers)."""
    layer = md.Dense(400, 300, init="lecun", rng=0)
    assert layer.weight.std() == pytest.approx(1 / np.sqrt(400), rel=0.02) and not layer.bias_row.any()
    x = np.random.default_rng(0).normal(size=(2000, 100))
    for init, low, high in (("lecun", 0.9, 1.1), ("uniform", 0.0, 0.1), ("he", 5.0, np.inf)):
        h = x
        for i in range(10):
            h = md.SELU()(md.Dense(100, 100, init=init, rng=i)(h))
        assert low < h.var() < high, (init, h.var())
