"""Pools' settings set after construction: checked when set (the constructor's message, nothing changed), used
by the next forward, while a backward uses its forward's settings whatever was set in between."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

SETTINGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad", "divisor_override")

# (layer factory, input shape, a setting changed after the forward, its new value)
CASES = [
    (lambda: md.MaxPool2D(2), (2, 3, 8, 8), "kernel_size", 3),
    (lambda: md.MaxPool2D(2), (2, 3, 8, 8), "stride", 1),
    (lambda: md.MaxPool2D(3, stride=2), (2, 3, 9, 9), "padding", 1),
    (lambda: md.MaxPool2D(3, stride=2, padding=1), (2, 3, 9, 9), "dilation", 2),
    (lambda: md.MaxPool2D(3, stride=2), (2, 3, 8, 8), "ceil_mode", True),
    (lambda: md.MaxPool2D(2, ceil_mode=True), (2, 3, 7, 7), "ceil_mode", False),
    (lambda: md.MaxPool1D(3, stride=1), (2, 3, 11), "stride", 2),
    (lambda: md.MaxPool1D(2), (2, 3, 11), "kernel_size", 4),
    (lambda: md.AvgPool2D(2), (2, 3, 8, 8), "stride", 1),
    (lambda: md.AvgPool2D(3, stride=2, padding=1), (2, 3, 9, 9), "count_include_pad", False),
    (lambda: md.AvgPool2D(3, stride=2, padding=1), (2, 3, 9, 9), "divisor_override", 5),
    (lambda: md.AvgPool2D(3, stride=2, padding=1, divisor_override=5), (2, 3, 9, 9), "divisor_override", None),
    (lambda: md.AvgPool2D(3, stride=2), (2, 3, 8, 8), "ceil_mode", True),
    (lambda: md.AvgPool1D(4, padding=2), (2, 3, 11), "padding", 0),
    (lambda: md.AvgPool1D(3, stride=2, ceil_mode=True, count_include_pad=False), (2, 3, 10), "kernel_size", 2),
]


def _kwargs(layer: md.Layer) -> dict:
    kwargs = {n: getattr(layer, n) for n in SETTINGS if hasattr(layer, n)}
    if isinstance(layer, (md.AvgPool1D, md.AvgPool2D)):
        del kwargs["dilation"]
    return kwargs


@pytest.mark.parametrize("make, shape, name, value", CASES)
def test_backward_uses_its_forwards_settings(make, shape, name, value) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    plain, changed = make(), make()
    y = plain(x)
    assert np.array_equal(changed(x), y)
    setattr(changed, name, value)  # between the forward and its backward
    g = rng.standard_normal(y.shape)
    assert np.array_equal(changed.backward(g), plain.backward(g))


@pytest.mark.parametrize("make, shape, name, value", CASES)
def test_next_forward_uses_the_new_settings(make, shape, name, value) -> None:
    x = np.random.default_rng(2).standard_normal(shape)
    layer = make()
    layer(x)
    setattr(layer, name, value)
    fresh = type(layer)(**_kwargs(layer))
    y = layer(x)
    assert y.shape == fresh(x).shape and np.array_equal(y, fresh(x))
    assert layer.output_shape(*shape[2:]) == fresh.output_shape(*shape[2:]) == y.shape[2:]
    g = np.random.default_rng(3).standard_normal(y.shape)
    assert np.array_equal(layer.backward(g), fresh.backward(g))
    assert repr(layer) == repr(fresh)


def test_a_stale_grad_shape_is_checked_against_the_forwards_output() -> None:
    layer = md.MaxPool2D(2)
    y = layer(np.zeros((1, 1, 8, 8)))
    layer.stride = 1  # the next forward's output would be 7x7; this backward still expects 4x4
    assert layer.backward(np.ones(y.shape)).shape == (1, 1, 8, 8)
    with pytest.raises(md.ShapeError):
        layer.backward(np.ones((1, 1, 7, 7)))


@pytest.mark.parametrize("make, name, bad, words", [
    (lambda: md.MaxPool2D(2), "kernel_size", 0, "kernel_size must be an int >= 1"),
    (lambda: md.MaxPool2D(2), "stride", (0, 1), "stride must be an int >= 1"),
    (lambda: md.MaxPool2D(2), "padding", -1, "padding must be an int >= 0"),
    (lambda: md.MaxPool2D(2), "padding", 2, "must be at most half the kernel size"),
    (lambda: md.MaxPool2D(4, padding=2), "kernel_size", 3, "must be at most half the kernel size"),
    (lambda: md.MaxPool2D(2), "dilation", 0, "dilation must be an int >= 1"),
    (lambda: md.MaxPool2D(2), "ceil_mode", 1, "ceil_mode"),
    (lambda: md.MaxPool1D(2), "stride", (1, 1), "stride must be an int >= 1"),
    (lambda: md.MaxPool1D(4, padding=2), "kernel_size", (3,), "must be at most half the kernel size"),
    (lambda: md.AvgPool2D(2), "count_include_pad", "no", "count_include_pad"),
    (lambda: md.AvgPool2D(2), "divisor_override", 0, "divisor_override must be an int >= 1 or None"),
    (lambda: md.AvgPool2D(2), "divisor_override", 2.5, "divisor_override must be an int >= 1 or None"),
    (lambda: md.AvgPool2D(2), "dilation", 2, "has no dilation"),
    (lambda: md.AvgPool1D(2), "dilation", 1, "has no dilation"),
    (lambda: md.AvgPool1D(2, padding=1), "padding", 2, "must be at most half the kernel size"),
])
def test_bad_settings_are_refused_and_change_nothing(make, name, bad, words) -> None:
    layer = make()
    x = np.random.default_rng(4).standard_normal((2, 3, 9) if "1D" in type(layer).__name__ else (2, 3, 9, 9))
    y = layer(x)
    before = {n: getattr(layer, n) for n in SETTINGS if hasattr(layer, n)}
    with pytest.raises((ValueError, TypeError), match=words) as refused:
        setattr(layer, name, bad)
    assert str(refused.value).startswith(type(layer).__name__ + ":")
    assert {n: getattr(layer, n) for n in before} == before
    assert np.array_equal(layer(x), y)  # the layer works as before


@pytest.mark.parametrize("cls, name, bad, kwargs", [
    (md.MaxPool2D, "stride", (0, 1), {}),
    (md.MaxPool2D, "padding", 2, {}),
    (md.MaxPool1D, "dilation", 0, {}),
    (md.AvgPool2D, "divisor_override", 0, {}),
    (md.AvgPool1D, "ceil_mode", "yes", {}),
])
def test_constructor_gives_the_same_message(cls, name, bad, kwargs) -> None:
    with pytest.raises((ValueError, TypeError)) as made:
        cls(2, **{name: bad})
    layer = cls(2)
    with pytest.raises(type(made.value)) as set_later:
        setattr(layer, name, bad)
    assert str(set_later.value) == str(made.value)


def test_settings_are_kept_normalised() -> None:
    pool = md.MaxPool2D(2)
    pool.kernel_size, pool.stride, pool.padding, pool.dilation = 4, (2, 1), (2, 1), 2
    assert (pool.kernel_size, pool.stride, pool.padding, pool.dilation) == ((4, 4), (2, 1), (2, 1), (2, 2))
    pool.kernel_size = 5  # the stride set stays as set (it does not follow the kernel)
    assert pool.stride == (2, 1)
    avg = md.AvgPool1D(3)
    avg.divisor_override = np.int64(4)
    assert avg.divisor_override == 4 and type(avg.divisor_override) is int
    assert avg.dilation == (1,)


def test_float32_stays_float32_after_changes() -> None:
    pool = md.AvgPool2D(2)
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    pool(x)
    pool.padding, pool.count_include_pad, pool.ceil_mode = 1, False, True
    y = pool(x)
    assert y.dtype == np.float32 and pool.backward(np.ones_like(y)).dtype == np.float32
