"""Dropout: drop rate, inverted scaling, eval identity, seeded replay, gradient checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drop_rate_and_scaling(p: float) -> None:
    layer = md.Dropout(p, rng=0)
    x = np.random.default_rng(1).uniform(1.0, 2.0, size=(400, 500))  # no zeros in x
    y = layer(x)
    dropped = y == 0
    n = x.size
    # the drop count is Binomial(n, p): within 5 standard deviations
    assert abs(dropped.sum() - p * n) < 5 * np.sqrt(n * p * (1 - p))
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-15)
    assert np.mean(y) == pytest.approx(np.mean(x), rel=0.01)  # inverted dropout keeps the mean
    g = np.ones_like(x)
    dx = layer.backward(g)
    np.testing.assert_array_equal(dx == 0, dropped)
    np.testing.assert_allclose(dx[~dropped], 1 / (1 - p), rtol=1e-15)
    np.testing.assert_array_equal(layer.mask, dx)


def test_eval_mode_is_the_identity() -> None:
    layer = md.Dropout(0.5, rng=0).eval()
    x = np.random.default_rng(0).normal(size=(3, 4))
    y = layer(x)
    np.testing.assert_array_equal(y, x)
    g = np.ones((3, 4))
    np.testing.assert_array_equal(layer.backward(g), g)
    assert layer.mask is None
    layer.train()
    assert np.any(layer(x) == 0)


def test_p_zero_and_one() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_array_equal(md.Dropout(0.0, rng=0)(x), x)
    layer = md.Dropout(1.0, rng=0)
    np.testing.assert_array_equal(layer(x), np.zeros_like(x))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.zeros_like(x))


def test_seeded_and_registered_generator() -> None:
    x = np.ones((5, 6))
    a, b = md.Dropout(0.5, rng=7), md.Dropout(0.5, rng=7)
    np.testing.assert_array_equal(a(x), b(x))
    first, second = md.Dropout(0.5, rng=3)(np.ones((50,))), md.Dropout(0.5, rng=4)(np.ones((50,)))
    assert not np.array_equal(first, second)
    layer = md.Dropout(0.3, rng=np.random.default_rng(1))
    assert [name for name, _ in layer.named_generators()] == ["rng"]
    model = md.Sequential(md.Dense(2, 3, rng=0), md.Dropout(0.2, rng=0))
    assert [name for name, _ in model.named_generators()] == ["1.rng"]
    # replaying the generator state replays the mask
    state = layer.rng.bit_generator.state
    y1 = layer(np.ones((4, 4)))
    layer.rng.bit_generator.state = state
    np.testing.assert_array_equal(layer(np.ones((4, 4))), y1)


def test_float32_and_errors() -> None:
    layer = md.Dropout(0.5, rng=0)
    y = layer(np.ones((3, 3), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer.backward(np.ones((3, 3), dtype=np.float32)).dtype == np.float32
    with pytest.raises(md.ShapeError, match=r"Dropout\(p=0.5\).backward: expected grad_output of shape"):
        layer.backward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"p \(the drop probability\) must be in \[0, 1\]"):
        md.Dropout(1.5)
    with pytest.raises(md.BackwardBeforeForwardError):
        md.Dropout().backward(np.ones(2))
    with pytest.raises(md.DTypeError, match="Dropout"):
        layer(np.ones(3, dtype=int))
    assert md.Dropout.elementwise
    assert repr(md.Dropout(0.25)) == "Dropout(p=0.25)"


@pytest.mark.parametrize("p", [0.2, 0.5])
@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 3, 4), 1), ((5, 2), 2)])
def test_gradient_checker_replays_the_mask(p: float, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    assert_gradients_ok(md.Dropout(p, rng=seed), inputs=x, seed=seed)


def test_gradient_checker_in_a_model() -> None:
    model = md.Sequential(md.Dense(3, 6, rng=0), md.Tanh(), md.Dropout(0.4, rng=1), md.Dense(6, 2, rng=2))
    x = np.random.default_rng(0).normal(size=(5, 3))
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 1, 1, 0, 1]))


@pytest.mark.parametrize("bad", [True, False, "0.5", None])
def test_dropout_p_must_be_a_number_not_a_bool(bad) -> None:
    """Dropout(True) used to mean p = 1: everything dropped, silently."""
    with pytest.raises(TypeError, match=r"Dropout: p .* must be a number"):
        md.Dropout(bad)
    assert md.Dropout(np.float32(0.25)).p == 0.25 and md.Dropout(1).p == 1.0


def test_float16_with_a_scale_beyond_its_range_still_drops_to_zero() -> None:
    """1 / (1 - p) > 65504 is inf in float16: a dropped element was 0 * inf = NaN (PyTorch gives 0)."""
    d = md.Dropout(0.99999, rng=0)
    y = d.forward(np.ones(100_000, np.float16))
    dropped = d.mask == 0
    assert dropped.sum() > 99_900 and (y[dropped] == 0).all() and not np.isnan(y).any()
    assert np.isposinf(y[~dropped]).all()  # a kept 1 scaled by 1e5: beyond float16, as in PyTorch
    g = d.backward(np.ones(100_000, np.float16))
    assert (g[dropped] == 0).all()


def test_float16_scale_just_above_its_largest_value_rounds_down_not_to_inf() -> None:
    """1 / (1 - p) in (65504, 65520) rounds to 65504 in float16: finite, as before the inf case existed."""
    d = md.Dropout(1 - 1 / 65510, rng=0)
    y = d.forward(np.ones((1, 200_000), np.float16))
    assert set(np.unique(y).tolist()) == {0.0, 65504.0}


# ---------------------------------------------------------------------------------------------- channels
CHANNEL_DROPOUTS = [(md.Dropout1d, (40, 30, 7)), (md.Dropout2d, (40, 30, 3, 4))]


@pytest.mark.parametrize(("kind", "shape"), CHANNEL_DROPOUTS)
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_channel_dropout_drops_whole_channels(kind, shape, p: float) -> None:
    layer = kind(p, rng=0)
    x = np.random.default_rng(1).uniform(1.0, 2.0, size=shape)  # no zeros in x
    y = layer(x)
    N, C = shape[:2]
    assert layer.mask.shape == (N, C, *(1,) * (len(shape) - 2))
    flat_y = y.reshape(N, C, -1)
    dropped = (flat_y == 0).all(axis=2)
    kept = ~dropped
    assert not (flat_y[kept] == 0).any()  # a channel goes whole or not at all
    np.testing.assert_allclose(flat_y[kept], x.reshape(N, C, -1)[kept] / (1 - p), rtol=1e-15)
    n = N * C  # the drop count is Binomial(N*C, p): within 5 standard deviations
    assert abs(dropped.sum() - p * n) < 5 * np.sqrt(n * p * (1 - p))
    g = np.random.default_rng(2).normal(size=shape)
    np.testing.assert_array_equal(layer.backward(g), g * layer.mask)
    assert layer.backward(g).shape == shape


@pytest.mark.parametrize(("kind", "shape"), CHANNEL_DROPOUTS)
def test_channel_dropout_eval_p_zero_and_one_dtypes_and_repr(kind, shape) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    layer = kind(0.5, rng=0).eval()
    np.testing.assert_array_equal(layer(x), x)
    assert layer.mask is None
    np.testing.assert_array_equal(kind(0.0, rng=0)(x), x)
    np.testing.assert_array_equal(kind(1.0, rng=0)(x), np.zeros(shape))
    layer = kind(0.5, rng=0)
    assert layer(x.astype(np.float32)).dtype == np.float32
    assert layer.backward(np.ones(shape, np.float32)).dtype == np.float32
    assert layer(x.astype(np.float16)).dtype == np.float16
    assert repr(layer) == f"{kind.__name__}(p=0.5)"


@pytest.mark.parametrize(("kind", "shape"), CHANNEL_DROPOUTS)
def test_channel_dropout_refuses_another_rank_and_keeps_its_last_pass(kind, shape) -> None:
    layer = kind(0.5, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 3, *shape[2:]))
    y = layer(x)
    mask, state = layer.mask.copy(), layer.rng.bit_generator.state
    layout = "(N, C, L)" if kind is md.Dropout1d else r"(N, C, H, W)"
    for bad in (np.ones((2, 3)), np.ones((2, 3, 4, 5, 6))):
        with pytest.raises(md.ShapeError, match=rf"{kind.__name__}\(p=0.5\): expected a {len(shape)}-D input of "
                                                rf"shape {re.escape(layout)}, got shape {re.escape(str(bad.shape))}"):
            layer(bad)
    np.testing.assert_array_equal(layer.mask, mask)
    assert layer.rng.bit_generator.state == state
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), mask * np.ones_like(y))


@pytest.mark.parametrize("p", [0.3, 0.7])
@pytest.mark.parametrize("seed", range(3))
def test_channel_dropout_gradient_checker(p: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert_gradients_ok(md.Dropout1d(p, rng=seed), inputs=rng.normal(size=(3, 4, 5)), seed=seed)
    assert_gradients_ok(md.Dropout2d(p, rng=seed), inputs=rng.normal(size=(2, 3, 4, 3)), seed=seed)
    model = md.Sequential(md.Conv2D(2, 4, 3, rng=seed), md.Dropout2d(p, rng=seed), md.ReLU(), md.Flatten(),
                          md.Dense(4 * 2 * 2, 3, rng=seed))
    assert_gradients_ok(model, inputs=rng.normal(size=(3, 2, 4, 4)), loss=md.CrossEntropyLoss(),
                        targets=np.array([0, 2, 1]), seed=seed)


@pytest.mark.parametrize("make", [lambda: md.Dropout(0.5, rng=0), lambda: md.Dropout(0.5).eval(),
                                  lambda: md.Dropout(0.0), lambda: md.Flatten()])
def test_a_big_endian_input_is_computed_in_native_order_and_takes_a_native_gradient(make) -> None:
    """Training Dropout crashed on '>f8' (a ufunc's dtype must be native); eval Dropout and Flatten
    returned the input's byte order and then refused the native gradient a loss sends back."""
    x = np.arange(1.0, 7.0).reshape(2, 3, 1).astype(">f8")
    layer = make()
    y = layer(x)
    assert y.dtype == np.float64 and y.dtype.isnative
    native = make()
    np.testing.assert_array_equal(y, native(x.astype(np.float64)))
    dx = layer.backward(np.ones(y.shape))
    assert dx.dtype == np.float64 and dx.shape == x.shape
    np.testing.assert_array_equal(dx, native.backward(np.ones(y.shape)))


# ------------------------------------------------------------------------------------------------ AlphaDropout
ALPHA = 1.7580993408473766  # SELU's alpha * scale


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_alpha_dropout_values_by_its_formula(p: float) -> None:
    x = np.random.default_rng(0).normal(size=(50, 40))
    layer = md.AlphaDropout(p, rng=3)
    y = layer(x)
    a = 1 / np.sqrt((ALPHA**2 * p + 1) * (1 - p))
    kept = layer.mask != 0
    np.testing.assert_allclose(layer.mask[kept], a, rtol=1e-15)
    np.testing.assert_allclose(y[kept], a * x[kept] + ALPHA * a * p, rtol=1e-14)
    np.testing.assert_allclose(y[~kept], ALPHA * a * (p - 1), rtol=1e-14)
    assert abs(kept.mean() - (1 - p)) < 0.03
    g = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(g), g * layer.mask)


def test_alpha_dropout_keeps_a_standard_inputs_mean_and_variance() -> None:
    """Its point: after SELU the activations have mean 0 and variance 1, and alpha dropout keeps them so
    (plain dropout would not)."""
    x = np.random.default_rng(2).normal(size=400_000)
    for p in (0.1, 0.5, 0.9):
        y = md.AlphaDropout(p, rng=4)(x)
        assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01
    y = md.Dropout(0.5, rng=4)(x)
    assert abs(y.var() - 1) > 0.5


def test_alpha_dropout_eval_p_zero_one_dtypes_and_repr() -> None:
    x = np.random.default_rng(3).normal(size=(4, 5))
    layer = md.AlphaDropout(0.3, rng=0)
    layer.eval()
    assert layer(x) is x or np.array_equal(layer(x), x)
    layer.train()
    np.testing.assert_array_equal(md.AlphaDropout(0.0, rng=0)(x), x)
    np.testing.assert_array_equal(md.AlphaDropout(1.0, rng=0)(x), np.zeros_like(x))  # as PyTorch
    for dtype in (np.float32, np.float16):
        layer = md.AlphaDropout(0.3, rng=0)
        y = layer(x.astype(dtype))
        assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    assert repr(md.AlphaDropout(0.2)) == "AlphaDropout(p=0.2)"
    with pytest.raises(ValueError, match=r"AlphaDropout: p \(the drop probability\) must be in \[0, 1\]"):
        md.AlphaDropout(1.5)


@pytest.mark.parametrize("p, shape, seed", [(0.2, (4, 3), 0), (0.5, (2, 3, 4), 1), (0.8, (6,), 2)])
def test_alpha_dropout_gradient_checker(p: float, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(md.AlphaDropout(p, rng=seed), inputs=x, seed=seed)
    assert report["input"].checked == x.size
    model = md.Sequential(md.Dense(3, 6, rng=seed), md.SELU(), md.AlphaDropout(p, rng=seed), md.Dense(6, 2, rng=1))
    assert_gradients_ok(model, inputs=np.random.default_rng(seed).normal(size=(5, 3)), loss=md.MSELoss(),
                        targets=np.zeros((5, 2)))


def test_alpha_dropout_against_pytorchs_statistics() -> None:
    """PyTorch's masks come from its own generator; its dropped value and scale must be minidl's."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).normal(size=100_000)
    for p in (0.1, 0.5, 0.9):
        theirs = torch.nn.AlphaDropout(p)(torch.tensor(x)).numpy()
        values, counts = np.unique(theirs, return_counts=True)
        dropped = values[counts.argmax()]
        layer = md.AlphaDropout(p, rng=0)
        ours = layer(x)
        a = layer.mask.max()
        np.testing.assert_allclose(ours[layer.mask == 0][0], dropped, rtol=1e-14)
        kept = theirs != dropped  # PyTorch's kept values: the same a * x + b as minidl's
        np.testing.assert_allclose(theirs[kept], a * x[kept] + ALPHA * a * p, rtol=1e-12, atol=1e-14)
