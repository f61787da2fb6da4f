"""ConvTranspose1D/ConvTranspose2D's fixed settings in_channels, out_channels, groups and bias (a change refused, a
second __init__ checked first, W.data rebound to another shape refused, old pickles loading), and output_shape
refusing what the forward refuses (against PyTorch's refusals and sizes where torch is installed)."""

from __future__ import annotations

import copy
import itertools
import pickle
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

FIXED = ("in_channels", "out_channels", "groups", "bias")
# (class, per-sample input shape) of the layers built by ``built``: 4 -> 6 channels, k=3, stride 2, groups 2
CLASSES = [(md.ConvTranspose2D, (4, 3, 3)), (md.ConvTranspose1D, (4, 5))]


def built(cls: Any, **kwargs: Any) -> Any:
    return cls(4, 6, 3, **{"stride": 2, "groups": 2, "rng": 0, **kwargs})


def data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------------------------- fixed settings
@pytest.mark.parametrize("cls, sample", CLASSES)
@pytest.mark.parametrize(("name", "value"), [("in_channels", 7), ("out_channels", 2), ("groups", 1),
                                             ("bias", False)])
def test_a_fixed_setting_set_to_another_value_is_refused_and_the_layer_unchanged(
        cls: Any, sample: tuple, name: str, value: Any, capsys: Any) -> None:
    layer = built(cls)
    now = getattr(layer, name)
    x = data((2, *sample), 1)
    before, W, text, who = layer(x), layer.W.data.copy(), repr(layer), layer._who
    with pytest.raises(ValueError) as refused:
        setattr(layer, name, value)
    assert str(refused.value) == (f"{cls.__name__}: {name} cannot be changed after construction (the weights W were "
                                  f"built for it, and an optimizer or a checkpoint holds W); got {value!r}, it is "
                                  f"{now!r}: build a new {cls.__name__}")
    assert getattr(layer, name) == now and repr(layer) == text and layer._who == who
    assert name not in layer.__dict__
    np.testing.assert_array_equal(layer.W.data, W)
    np.testing.assert_array_equal(layer(x), before)
    md.Sequential(layer).summary()  # (it built a forward of the layer's input_shape_hint)
    assert f"(None, 6, {', '.join(map(str, layer.output_shape(*layer.input_shape_hint()[1:])[1:]))})" in \
        capsys.readouterr().out


@pytest.mark.parametrize("cls", [md.ConvTranspose2D, md.ConvTranspose1D])
@pytest.mark.parametrize(("name", "value", "message", "error"), [
    ("in_channels", 0, "in_channels must be a positive int, got 0", ValueError),
    ("out_channels", 2.0, "out_channels must be a positive int, got 2.0", ValueError),
    ("groups", True, "groups must be a positive int, got True", ValueError),
    ("bias", 1, "bias must be True or False, got 1", TypeError),
])
def test_a_fixed_setting_set_to_a_bad_value_gets_the_constructor_s_message(cls: Any, name: str, value: Any,
                                                                          message: str, error: type) -> None:
    with pytest.raises(error) as made:
        cls(**{"in_channels": 2, "out_channels": 2, "kernel_size": 3, name: value})
    assert str(made.value) == f"{cls.__name__}: {message}"
    layer = cls(2, 2, 3, rng=0)
    with pytest.raises(error) as set_:
        setattr(layer, name, value)
    assert str(set_.value) == f"{cls.__name__}: {message}"
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias) == (2, 2, 1, True)


@pytest.mark.parametrize("cls", [md.ConvTranspose2D, md.ConvTranspose1D])
def test_a_fixed_setting_set_to_its_own_value_is_accepted_and_numpy_values_read_as_python_ones(cls: Any) -> None:
    layer = cls(np.int64(4), np.int32(6), 3, bias=np.bool_(True), groups=np.int8(2), rng=0)
    layer.in_channels, layer.out_channels, layer.groups, layer.bias = 4, np.int16(6), 2, True
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias) == (4, 6, 2, True)
    assert all(type(getattr(layer, n)) is int for n in ("in_channels", "out_channels", "groups"))
    assert type(layer.bias) is bool
    assert all(name not in layer.__dict__ for name in FIXED)


@pytest.mark.parametrize("cls, sample", CLASSES)
def test_a_second_init_starts_afresh_and_a_refused_one_leaves_the_layer_as_it_was(cls: Any, sample: tuple) -> None:
    class Mine(cls):
        pass

    layer = Mine(4, 6, 3, 2, 1, 1, groups=2, rng=0)
    x = data((2, *sample), 2)
    y = layer(x)
    g = data(y.shape, 3)
    W, text, params = layer.W, repr(layer), dict(layer.named_parameters())
    refused: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"groups": 4}, ValueError), ({"bias": "yes"}, TypeError),
        ({"output_padding": 1}, ValueError),  # (stride 1: too large)
        ({"stride": 2, "output_padding": 2}, ValueError), ({"W": np.ones((5, 6))}, md.ShapeError),
        ({"padding": "same"}, ValueError), ({"init": "orthogonal"}, ValueError)]
    for kwargs, error in refused:
        with pytest.raises(error):
            layer.__init__(4, 6, 3, **kwargs)  # type: ignore[misc]
        assert layer.W is W and repr(layer) == text and dict(layer.named_parameters()) == params
        assert layer.output_padding == (1,) * len(sample[1:])
    dx = layer.backward(g)  # the pending backward still the forward's
    np.testing.assert_array_equal(layer(x), y)
    np.testing.assert_array_equal(layer.backward(g), dx)
    with pytest.raises(ValueError, match=r"^Mine: groups cannot be changed"):
        layer.groups = 1
    layer.__init__(3, 5, 2, bias=False, rng=1)  # type: ignore[misc]  # (Layer supports a second __init__)
    taps = 2 ** len(sample[1:])
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias, layer.W.shape) == \
        (3, 5, 1, False, (3 * taps, 5))
    assert layer.output_padding == (0,) * len(sample[1:]) and layer.stride == (1,) * len(sample[1:])
    kernel = "(2, 2)" if cls is md.ConvTranspose2D else "2"
    assert repr(layer) == f"Mine(3, 5, kernel_size={kernel}, bias=False)"
    with pytest.raises(ValueError, match=r"^Mine: bias cannot be changed"):
        layer.bias = True
    with pytest.raises(RuntimeError):  # (the forward of before is gone with its layer)
        layer.backward(g)
    x3 = data((2, 3, *(4,) * len(sample[1:])), 4)
    twin = cls.from_kernel(layer.kernel.copy())
    np.testing.assert_array_equal(layer(x3), twin(x3))
    assert_gradients_ok(layer, inputs=x3, seed=5)


@pytest.mark.parametrize(("cls", "sample", "bias", "groups", "built_for", "layout"), [
    (md.ConvTranspose2D, (4, 3, 3), True, 1, (37, 6), "(in_channels*kh*kw + 1, out_channels)"),
    (md.ConvTranspose2D, (4, 3, 3), False, 2, (18, 6), "(in_channels//groups*kh*kw, out_channels)"),
    (md.ConvTranspose1D, (4, 5), True, 2, (7, 6), "(in_channels//groups*k + 1, out_channels)"),
])
def test_w_data_rebound_to_another_shape_is_a_shape_error_at_forward_and_backward(
        cls: Any, sample: tuple, bias: bool, groups: int, built_for: tuple, layout: str) -> None:
    layer = built(cls, bias=bias, groups=groups)
    x = data((2, *sample), 6)
    y = layer(x)
    g = data(y.shape, 7)
    W = layer.W.data
    # (the same number of elements too: reshapes would not have noticed)
    for other in (np.ones((built_for[0], 3)), np.ones((built_for[0] + 1, 6)), np.ones((built_for[1], built_for[0]))):
        layer.W.data = other
        message = (f"{layer._who}: W.data has shape {other.shape}, but the layer was built for {built_for} {layout}; "
                   f"its sizes are fixed: build a new {cls.__name__} of the sizes you want")
        for call in (lambda: layer.backward(g), lambda: layer.backward_params(g), lambda: layer(x)):
            with pytest.raises(md.ShapeError) as refused:
                call()
            assert str(refused.value) == message
    layer.W.data = W
    dx = layer.backward(g)  # (the refused forward left the cache as it was)
    np.testing.assert_array_equal(layer(x), y)
    np.testing.assert_array_equal(layer.backward(g), dx)


# ---------------------------------------------------------------------------------------------- pickles
def old_form(layer: Any) -> Any:
    """``layer`` as minidl pickled it before: channels, groups and bias plain attributes."""
    state = dict(layer.__getstate__())
    for name in FIXED:
        state[name] = state.pop("_" + name)
    cls: Any = type(layer)
    old = cls.__new__(cls)
    old.__dict__.update(state)
    return old


@pytest.mark.parametrize("cls, sample", CLASSES)
def test_a_layer_pickled_with_plain_settings_loads_and_keeps_its_sizes_fixed(cls: Any, sample: tuple) -> None:
    layer = built(cls, padding=1, output_padding=1)
    x = data((2, *sample), 8)
    y = layer(x)
    g = data(y.shape, 9)
    restored = pickle.loads(pickle.dumps(old_form(layer)))
    assert repr(restored) == repr(layer) and restored._who == layer._who
    assert all(name not in restored.__dict__ for name in FIXED)
    np.testing.assert_array_equal(restored.backward(g), layer.backward(g))  # the pickled forward's cache
    np.testing.assert_array_equal(restored(x), y)
    with pytest.raises(ValueError, match="in_channels cannot be changed"):
        restored.in_channels = 2
    restored.output_padding = 0  # (a setting that may change: the next forward's output one smaller)
    assert restored.output_shape(*sample[1:]) == (6, *(n - 1 for n in layer.output_shape(*sample[1:])[1:]))
    assert restored(x).shape == (2, *restored.output_shape(*sample[1:]))
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        np.testing.assert_array_equal(twin(x), y)
        with pytest.raises(ValueError, match="groups cannot be changed"):
            twin.groups = 1


# ---------------------------------------------------------------------------------------------- output_shape
@pytest.mark.parametrize("layer, sizes, words", [
    (lambda: md.ConvTranspose1D(2, 3, 3, padding=2), (1,),
     r"input of shape \(1, 2, 1\) gives an empty output \(-1\) with padding 2: expected L >= 3, got L=1"),
    (lambda: md.ConvTranspose1D(2, 3, 3, padding=2), (2,), r"gives an empty output \(0\) .* expected L >= 3"),
    (lambda: md.ConvTranspose2D(2, 3, 3, padding=(0, 2)), (1, 1),
     r"gives an empty output \(3 x -1\) with padding \(0, 2\): expected H >= 1 and W >= 3, got H=1, W=1"),
    (lambda: md.ConvTranspose2D(2, 3, 4, stride=3, padding=(5, 0)), (3, 3),
     r"gives an empty output \(0 x 10\) .* expected H >= 4 and W >= 1, got H=3, W=3"),
    (lambda: md.ConvTranspose1D(2, 3, 3), (0,), r"input of shape \(1, 2, 0\) has no positions \(length 0\)"),
    (lambda: md.ConvTranspose2D(2, 3, 3, padding=1), (4, 0), r"has no pixels \(height or width 0\)"),
])
def test_output_shape_refuses_what_the_forward_refuses_in_the_same_words(
        layer: Any, sizes: tuple[int, ...], words: str) -> None:
    conv = layer()
    with pytest.raises(md.ShapeError, match=words) as from_output_shape:
        conv.output_shape(*sizes)
    assert str(from_output_shape.value).startswith(f"{conv._who}: input of shape (1, 2, ")
    with pytest.raises(md.ShapeError) as from_forward:
        conv(np.zeros((1, 2, *sizes)))
    assert str(from_forward.value) == str(from_output_shape.value)


def test_output_shape_is_the_forward_s_where_it_accepts_and_refuses_where_it_refuses() -> None:
    """On a grid of lengths and geometries (empty outputs and large output paddings among them)."""
    seen = {"accepted": 0, "refused": 0}
    for k, s, p, d in itertools.product((1, 2, 3), (1, 2, 3), (0, 1, 3), (1, 2)):
        for op in range(max(s, d)):
            layer = md.ConvTranspose1D(2, 3, k, s, p, op, dilation=d, rng=0)
            plane = md.ConvTranspose2D(2, 3, (2, k), (1, s), (0, p), (0, op), dilation=(1, d), rng=0)
            for n in range(4):
                x = np.ones((1, 2, n))
                try:
                    y = layer(x)
                except md.ShapeError as refused:
                    with pytest.raises(md.ShapeError) as too:
                        layer.output_shape(n)
                    assert str(too.value) == str(refused)
                    with pytest.raises(md.ShapeError):
                        plane.output_shape(2, n)
                    seen["refused"] += 1
                else:
                    assert layer.output_shape(n) == y.shape[1:] == (3, (n - 1) * s - 2 * p + d * (k - 1) + op + 1)
                    assert plane.output_shape(2, n) == plane(x[:, :, None].repeat(2, 2)).shape[1:] == \
                        (3, 3, y.shape[2])
                    seen["accepted"] += 1
    assert min(seen.values()) > 100


# ---------------------------------------------------------------------------------------------- PyTorch
def test_output_shape_and_output_padding_refusals_are_pytorch_s() -> None:
    """Where PyTorch refuses (an output padding not smaller than the stride or the dilation at construction
    here, at forward there; an empty or negative output size) minidl refuses, and elsewhere the sizes agree."""
    torch = pytest.importorskip("torch")
    counts = {"sizes": 0, "output_padding": 0, "too small": 0}
    for k, s, p, op, d in itertools.product((1, 2, 4), (1, 2, 3), (0, 2, 4), (0, 1, 2, 3), (1, 2, 3)):
        weight = torch.zeros(2, 3, k, dtype=torch.float64)  # (nn.ConvTranspose1d's forward, without its init)
        for n in (1, 2, 3, 5):
            try:
                y = torch.nn.functional.conv_transpose1d(torch.zeros(1, 2, n, dtype=torch.float64), weight, None, s,
                                                         p, op, 1, d)
                expected: Any = tuple(y.shape[1:])
            except RuntimeError as refused:
                expected = str(refused)
            try:
                layer = md.ConvTranspose1D(2, 3, k, s, p, op, dilation=d)
            except ValueError as ours:
                assert "output padding must be smaller than either stride or dilation" in expected
                assert "output_padding must be smaller than the stride or the dilation" in str(ours)
                counts["output_padding"] += 1
                continue
            try:
                got: Any = layer.output_shape(n)
            except md.ShapeError as ours:
                assert "Output size is too small" in expected and "gives an empty output" in str(ours)
                counts["too small"] += 1
                continue
            assert got == expected
            counts["sizes"] += 1
    assert min(counts.values()) > 50
