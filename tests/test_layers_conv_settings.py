"""Convolutions' sizes set after construction: checked when set (the constructor's message, nothing changed),
used by the next forward, while a backward uses its forward's sizes whatever was set in between."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

# (layer factory, input shape, a setting changed after the forward, its new value)
CASES = [
    (lambda: md.Conv2D(3, 4, 3, rng=0), (2, 3, 9, 9), "stride", (2, 1)),
    (lambda: md.Conv2D(3, 4, 3, rng=0), (2, 3, 9, 9), "padding", 1),
    (lambda: md.Conv2D(3, 4, 3, rng=0), (2, 3, 9, 9), "dilation", 2),
    (lambda: md.Conv2D(4, 4, 3, groups=2, rng=0), (2, 4, 9, 9), "stride", 2),
    (lambda: md.Conv1D(3, 4, 3, rng=0), (2, 3, 11), "stride", 2),
    (lambda: md.Conv1D(3, 4, 3, rng=0), (2, 3, 11), "padding", "same"),
    (lambda: md.ConvTranspose2D(3, 4, 3, rng=0), (2, 3, 5, 5), "stride", 2),
    (lambda: md.ConvTranspose2D(3, 4, 3, stride=2, rng=0), (2, 3, 5, 5), "output_padding", 1),
    (lambda: md.ConvTranspose2D(3, 4, 3, rng=0), (2, 3, 5, 5), "padding", (1, 0)),
    (lambda: md.ConvTranspose1D(3, 4, 3, rng=0), (2, 3, 6), "dilation", 2),
]


@pytest.mark.parametrize("make, shape, name, value", CASES)
def test_backward_uses_its_forwards_sizes(make, shape, name, value) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    plain, changed = make(), make()
    y = plain(x)
    assert np.array_equal(changed(x), y)
    setattr(changed, name, value)  # between the forward and its backward
    g = rng.standard_normal(y.shape)
    dx = plain.backward(g)
    assert np.array_equal(changed.backward(g), dx)
    assert np.array_equal(changed.W.grad, plain.W.grad)


@pytest.mark.parametrize("make, shape, name, value", CASES)
def test_next_forward_uses_the_new_sizes(make, shape, name, value) -> None:
    x = np.random.default_rng(2).standard_normal(shape)
    layer = make()
    layer(x)
    setattr(layer, name, value)
    kwargs = {n: getattr(layer, n) for n in ("stride", "padding", "dilation", "output_padding") if hasattr(layer, n)}
    fresh = type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size, groups=layer.groups,
                        W=layer.W.data.copy(), **kwargs)
    y = layer(x)
    assert np.array_equal(y, fresh(x))
    g = np.random.default_rng(3).standard_normal(y.shape)
    assert np.array_equal(layer.backward(g), fresh.backward(g))


@pytest.mark.parametrize("make, shape, name, bad, words", [
    (lambda: md.Conv2D(3, 4, 3), (2, 3, 9, 9), "stride", (0, 1), "stride must be an int >= 1"),
    (lambda: md.Conv2D(3, 4, 3), (2, 3, 9, 9), "padding", -1, "padding must be an int >= 0"),
    (lambda: md.Conv2D(3, 4, 3), (2, 3, 9, 9), "padding", "full", "padding must be an int >= 0"),
    (lambda: md.Conv2D(3, 4, 2), (2, 3, 9, 9), "padding", "same", "odd on some axis"),
    (lambda: md.Conv2D(3, 4, 3, stride=2), (2, 3, 9, 9), "padding", "same", "needs stride 1"),
    (lambda: md.Conv2D(3, 4, 3), (2, 3, 9, 9), "dilation", 0, "dilation must be an int >= 1"),
    (lambda: md.Conv2D(3, 4, 3), (2, 3, 9, 9), "kernel_size", 5, "kernel_size cannot be changed"),
    (lambda: md.Conv1D(3, 4, 3), (2, 3, 11), "stride", (1, 1), "stride must be an int >= 1"),
    (lambda: md.ConvTranspose2D(3, 4, 3), (2, 3, 5, 5), "padding", "same", "padding must be an int >= 0"),
    (lambda: md.ConvTranspose2D(3, 4, 3, stride=2, output_padding=1), (2, 3, 5, 5), "stride", 1,
     "output_padding must be smaller than the stride or the dilation"),
    (lambda: md.ConvTranspose2D(3, 4, 3, stride=2), (2, 3, 5, 5), "output_padding", 2,
     "output_padding must be smaller than the stride or the dilation"),
    (lambda: md.ConvTranspose1D(3, 4, 3, dilation=2, output_padding=1), (2, 3, 6), "dilation", 1,
     "output_padding must be smaller than the stride or the dilation"),
])
def test_bad_settings_are_refused_and_change_nothing(make, shape, name, bad, words) -> None:
    layer = make()
    x = np.random.default_rng(4).standard_normal(shape)
    y = layer(x)
    before = {n: getattr(layer, n) for n in ("kernel_size", "stride", "padding", "dilation", "output_padding")
              if hasattr(layer, n)}
    with pytest.raises(ValueError, match=words) as refused:
        setattr(layer, name, bad)
    assert str(refused.value).startswith(type(layer).__name__ + ":")
    assert {n: getattr(layer, n) for n in before} == before
    assert np.array_equal(layer(x), y)  # the layer works as before


def test_constructor_gives_the_same_message() -> None:
    with pytest.raises(ValueError) as made:
        md.Conv2D(3, 4, 3, stride=(0, 1))
    layer = md.Conv2D(3, 4, 3)
    with pytest.raises(ValueError) as set_later:
        layer.stride = (0, 1)
    assert str(set_later.value) == str(made.value)


def test_sizes_are_kept_as_tuples_and_same_kernel_is_accepted() -> None:
    layer = md.Conv2D(3, 4, 3)
    layer.stride, layer.padding, layer.dilation = 2, (1, 0), 1
    assert (layer.stride, layer.padding, layer.dilation) == ((2, 2), (1, 0), (1, 1))
    layer.kernel_size = (3, 3)  # the same size: nothing to refuse
    assert layer.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="needs stride 1"):
        layer.padding = "same"  # computed for the current stride, 2
    assert layer.padding == (1, 0)
    layer.stride = 1
    layer.padding = "same"
    assert layer.padding == (1, 1)
    layer.padding = (1, 0)
    conv1 = md.Conv1D(2, 2, 5, dilation=2)
    conv1.padding = "same"
    assert conv1.padding == (4,)
    assert "padding=(1, 0)" in repr(layer)
