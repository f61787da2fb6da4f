"""Every spatial layer's ``output_shape`` takes its sizes as ints (Python or NumPy, never a bool): another type
is a ``TypeError``, a negative size a ``ValueError``, both naming the layer, the argument and the value
(``minidl.validation.size_arguments``); NumPy ints give Python ints; and valid sizes give the forward's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md

Run = Callable[[Any, tuple[int, ...], np.random.Generator], tuple[int, ...]]


def per_sample(channels: int) -> Run:
    """The forward's per-sample shape for an input of ``channels`` and the spatial ``sizes``."""
    return lambda layer, sizes, rng: layer(rng.standard_normal((2, channels, *sizes))).shape[1:]


def spatial(layer: Any, sizes: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """The forward's spatial output sizes for an input of 3 channels and the spatial ``sizes``."""
    return layer(rng.standard_normal((2, 3, *sizes))).shape[2:]


def whole(layer: Any, sizes: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """The forward's per-sample shape for a per-sample input of shape ``sizes``."""
    return layer(rng.standard_normal((2, *sizes))).shape[1:]


def unpooled(layer: Any, sizes: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """A max unpool's spatial output sizes for values (and indices, all 0) of the spatial ``sizes``."""
    shape = (2, 3, *sizes)
    return layer((rng.standard_normal(shape), np.zeros(shape, dtype=np.int64))).shape[2:]


HW, L = ("height", "width"), ("length",)
# (layer, output_shape's argument names, valid arguments, the forward's shape in output_shape's terms)
CASES: list[Any] = [pytest.param(*case, id=type(case[0]()).__name__ + f"-{i}") for i, case in enumerate([
    (lambda: md.Conv2D(2, 3, 3, stride=2, padding=1, rng=0), HW, [(5, 6), (1, 1), (8, 3)], per_sample(2)),
    (lambda: md.Conv1D(2, 3, 3, dilation=2, padding_mode="reflect", padding=1, rng=0), L, [(5,), (9,)],
     per_sample(2)),
    (lambda: md.ConvTranspose2D(2, 3, 3, stride=2, padding=1, output_padding=1, rng=0), HW, [(1, 1), (4, 5)],
     per_sample(2)),
    (lambda: md.ConvTranspose1D(2, 3, 4, stride=3, rng=0), L, [(1,), (6,)], per_sample(2)),
    (lambda: md.MaxPool2D(3, stride=2, padding=1, ceil_mode=True), HW, [(5, 6), (2, 7)], spatial),
    (lambda: md.MaxPool1D(2, dilation=2), L, [(3,), (8,)], spatial),
    (lambda: md.AvgPool2D(2), HW, [(4, 5), (2, 2)], spatial),
    (lambda: md.AvgPool1D(3, stride=1, padding=1, count_include_pad=False), L, [(1,), (6,)], spatial),
    (lambda: md.AdaptiveAvgPool2D((3, None)), HW, [(4, 5), (1, 2)], spatial),
    (lambda: md.AdaptiveMaxPool1D(2), L, [(1,), (7,)], spatial),
    (lambda: md.Unfold(2, padding=1), ("channels", *HW), [(2, 3, 4), (1, 1, 1)], whole),
    (lambda: md.Fold((4, 5), 2), ("rows", "length"), [(4, 12), (8, 12)], whole),
    (lambda: md.PixelShuffle(2), ("channels", *HW), [(8, 3, 4), (4, 1, 1)], whole),
    (lambda: md.PixelUnshuffle(2), ("channels", *HW), [(3, 4, 6), (1, 2, 2)], whole),
    (lambda: md.MaxUnpool2D(2), HW, [(3, 4), (1, 1)], unpooled),
    (lambda: md.MaxUnpool1D(3, stride=2), L, [(1,), (5,)], unpooled),
    (lambda: md.Upsample(scale_factor=(2, 3)), HW, [(3, 4), (1, 1)], spatial),
    (lambda: md.Upsample(size=(5, 7), mode="bilinear"), HW, [(3, 4), (6, 9)], spatial),
    (lambda: md.ReflectionPad2D((1, 2, 0, 1)), HW, [(3, 4), (2, 3)], spatial),
    (lambda: md.ConstantPad1D((2, -1), 0.5), L, [(1,), (4,)], spatial),
    (lambda: md.CircularPad2D(1), HW, [(1, 1), (3, 2)], spatial),
])]


def who(layer: Any) -> str:
    """How the layer's messages name it (the adaptive pools: by their class)."""
    return getattr(layer, "_who", type(layer).__name__)


@pytest.mark.parametrize("bad", [2.5, True, -1, "3", None, np.float64(4.0), np.bool_(True)], ids=repr)
@pytest.mark.parametrize("make, names, valid, run", CASES)
def test_a_size_that_is_not_an_int_or_negative_is_refused_naming_the_layer_the_argument_and_the_value(
        make: Any, names: tuple[str, ...], valid: list[tuple[int, ...]], run: Run, bad: Any) -> None:
    layer = make()
    error, words = (ValueError, "must be >= 0, got -1") if bad == -1 else \
        (TypeError, f"must be an int, got {bad!r} ({type(bad).__name__})")
    for i, name in enumerate(names):
        sizes = list(valid[0])
        sizes[i] = bad
        with pytest.raises(error) as refused:
            layer.output_shape(*sizes)
        assert type(refused.value) is error  # (not a ShapeError: the argument, not an input, is wrong)
        assert str(refused.value) == f"{who(layer)}.output_shape: {name} {words}"


@pytest.mark.parametrize("make, names, valid, run", CASES)
def test_numpy_int_sizes_give_the_python_ints_of_python_int_sizes(
        make: Any, names: tuple[str, ...], valid: list[tuple[int, ...]], run: Run) -> None:
    layer = make()
    for sizes in valid:
        expected = layer.output_shape(*sizes)
        for kind in (np.int64, np.int32, np.uint8):
            got = layer.output_shape(*(kind(n) for n in sizes))
            assert got == expected
            assert all(type(n) is int for n in (*got, *expected)), (kind, got)


@pytest.mark.parametrize("make, names, valid, run", CASES)
def test_output_shape_is_the_shape_the_forward_makes(
        make: Any, names: tuple[str, ...], valid: list[tuple[int, ...]], run: Run) -> None:
    layer, rng = make(), np.random.default_rng(0)
    for sizes in valid:
        assert layer.output_shape(*sizes) == run(layer, sizes, rng), sizes


@pytest.mark.parametrize("layer", [md.AdaptiveAvgPool2D(2), md.AdaptiveMaxPool1D(2), md.ZeroPad2D(1),
                                   md.ReplicationPad1D(1)], ids=lambda layer: type(layer).__name__)
def test_a_wrong_number_of_sizes_is_a_type_error_as_for_a_fixed_signature(layer: Any) -> None:
    """The adaptive pools' and paddings' ``output_shape(*sizes)`` take one size per spatial axis; another count
    is what Python says of ``Conv2D.output_shape(3)``: a ``TypeError``."""
    expected = "(height, width)" if layer._rank == 2 else "(length)"
    for sizes in ((), (4,) * (layer._rank + 1)):
        with pytest.raises(TypeError) as refused:
            layer.output_shape(*sizes)
        assert str(refused.value) == (f"{who(layer)}.output_shape: expected {layer._rank} size(s) {expected}, "
                                      f"got {len(sizes)}: {sizes!r}")
