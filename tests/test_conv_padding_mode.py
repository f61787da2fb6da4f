"""Conv1D/Conv2D's padding_mode (zeros, reflect, replicate, circular, as PyTorch's): against np.pad and an unpadded
convolution, against PyTorch, the gradient checker, refusals, repr, settings and old pickles; and the fixed
settings in_channels, out_channels, groups and bias (a change refused, a second __init__ checked first, W.data
rebound to another shape refused)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
MODES = list(PADDING_MODES[1:])
NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# (class, in, out, kernel, stride, padding, dilation, groups, bias, input shape): odd sizes, stride, dilation, groups
CASES = [
    (md.Conv2D, 3, 4, 3, 1, 1, 1, 1, True, (2, 3, 5, 6)),
    (md.Conv2D, 4, 6, (3, 2), (2, 1), (2, 1), (1, 2), 2, True, (2, 4, 7, 5)),
    (md.Conv2D, 2, 2, 3, 2, (0, 2), 1, 2, False, (1, 2, 5, 3)),
    (md.Conv2D, 3, 2, 2, 1, (1, 0), 1, 1, True, (2, 3, 3, 4)),
    (md.Conv1D, 3, 4, 3, 1, 2, 1, 1, True, (2, 3, 7)),
    (md.Conv1D, 4, 2, 3, 2, 3, 2, 2, False, (2, 4, 5)),
    (md.Conv1D, 2, 3, 1, 1, 1, 1, 1, True, (3, 2, 2)),
]


def make(case: tuple, mode: str, seed: int = 0, dtype: Any = np.float64) -> md.Conv2D | md.Conv1D:
    cls, cin, cout, k, s, p, d, g, bias, _ = case
    return cls(cin, cout, k, s, p, bias, dilation=d, groups=g, padding_mode=mode, rng=seed, dtype=dtype)


def spatial_padding(layer: md.Conv2D | md.Conv1D) -> list[tuple[int, int]]:
    return [(0, 0), (0, 0)] + [(p, p) for p in layer.padding]


def padded_by_numpy(x: np.ndarray, layer: md.Conv2D | md.Conv1D, mode: str) -> np.ndarray:
    return np.pad(x, spatial_padding(layer), mode=NP_MODE[mode])  # type: ignore[call-overload]


def unpadded_twin(layer: md.Conv2D | md.Conv1D) -> md.Conv2D | md.Conv1D:
    """The same weights, zero padding 0."""
    return type(layer)(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, 0, layer.bias,
                       dilation=layer.dilation, groups=layer.groups, W=layer.W.data.copy(), dtype=layer.W.dtype)


def pad_gradient_by_numpy(gp: np.ndarray, shape: tuple[int, ...], layer: md.Conv2D | md.Conv1D,
                          mode: str) -> np.ndarray:
    """The adjoint of np.pad: the padded array's gradient added onto the input position each element copies,
    found by padding the positions' own numbers with np.pad."""
    positions = np.arange(int(np.prod(shape))).reshape(shape)
    index = np.pad(positions, spatial_padding(layer), mode=NP_MODE[mode])  # type: ignore[call-overload]
    dx = np.zeros(int(np.prod(shape)))
    np.add.at(dx, index.ravel(), gp.ravel())
    return dx.reshape(shape)


# ---------------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].__name__}{c[-1]}")
def test_equals_np_pad_then_an_unpadded_convolution(case: tuple, mode: str) -> None:
    layer = make(case, mode, seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(case[-1])
    twin = unpadded_twin(layer)
    xp = padded_by_numpy(x, layer, mode)
    y = layer(x)
    np.testing.assert_array_equal(y, twin(xp))  # the same patches, the same product
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    dxp = twin.backward(g)
    np.testing.assert_allclose(dx, pad_gradient_by_numpy(dxp, x.shape, layer, mode), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(layer.W.grad, twin.W.grad)
    assert dx.shape == x.shape and dx.dtype == x.dtype


@pytest.mark.parametrize("mode", MODES)
def test_a_1d_layer_equals_the_2d_layer_on_the_one_row_view(mode: str) -> None:
    one = md.Conv1D(3, 4, 3, 2, 2, dilation=2, padding_mode=mode, rng=3)
    two = md.Conv2D.from_kernel(one.kernel[:, :, None, :], one.bias_row, (1, 2), (0, 2), dilation=(1, 2),
                                padding_mode=mode)
    x = np.random.default_rng(4).standard_normal((2, 3, 6))
    y = one(x)
    np.testing.assert_array_equal(y, two(x[:, :, None, :])[:, :, 0, :])
    g = np.random.default_rng(5).standard_normal(y.shape)
    np.testing.assert_array_equal(one.backward(g), two.backward(g[:, :, None, :])[:, :, 0, :])
    np.testing.assert_array_equal(one.W.grad, two.W.grad)


def test_closed_form_reflect_replicate_circular_of_a_sum_kernel() -> None:
    """A kernel of ones over 3 positions with padding 1: each output the sum of its padded window."""
    x = np.array([[[1.0, 2.0, 4.0, 8.0]]])
    want = {"zeros": [3, 7, 14, 12], "reflect": [5, 7, 14, 16], "replicate": [4, 7, 14, 20],
            "circular": [11, 7, 14, 13]}
    for mode, values in want.items():
        layer = md.Conv1D.from_kernel(np.ones((1, 1, 3)), padding=1, padding_mode=mode)
        np.testing.assert_array_equal(layer(x), [[values]])
        # d(sum of outputs)/dx: how many windows read each position, the padded copies counted where they came from
        counts = {"zeros": [2, 3, 3, 2], "reflect": [2, 4, 4, 2], "replicate": [3, 3, 3, 3],
                  "circular": [3, 3, 3, 3]}[mode]
        np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 4))), [[counts]])


def test_float32_stays_float32_and_a_frozen_layer_still_gives_dx() -> None:
    layer = md.Conv2D(2, 3, 3, padding=1, padding_mode="reflect", rng=0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5)).astype(np.float32)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == layer.W.grad.dtype == np.float32
    frozen = copy.deepcopy(layer).requires_grad_(False)
    frozen(x)
    np.testing.assert_array_equal(frozen.backward(np.ones_like(y)), dx)


# ---------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize(("case", "mode", "seed"), [
    pytest.param(case, mode, seed, id=f"{case[0].__name__}{case[-1]}-{mode}-{seed}")
    for case in CASES for mode in PADDING_MODES
    for seed in ((0,) if mode == "zeros" else (0, 1))  # (zeros: checked at length in test_layers_conv*.py)
])
def test_gradient_checker(case: tuple, mode: str, seed: int) -> None:
    layer = make(case, mode, seed=seed)
    x = np.random.default_rng(seed + 10).standard_normal((1, *case[-1][1:]))  # (one sample: the checker's time)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert [r.name for r in report.results] == ["input", "W"]
    for result in report.results:  # small tensors: every element checked
        assert result.mode == "full" and result.checked == result.size and result.failed == 0


# ---------------------------------------------------------------------------------------------- PyTorch
TORCH_CASES = [
    (md.Conv2D, 3, 4, 3, 1, 1, 1, 1, True, (2, 3, 5, 6)),
    (md.Conv2D, 4, 6, (3, 2), (2, 1), (2, 1), (1, 2), 2, True, (2, 4, 7, 5)),
    (md.Conv2D, 2, 4, 2, 2, (1, 2), 1, 2, False, (2, 2, 3, 3)),
    (md.Conv1D, 3, 4, 3, 1, 2, 1, 1, True, (2, 3, 7)),
    (md.Conv1D, 4, 2, 3, 2, 3, 2, 2, False, (2, 4, 5)),
    (md.Conv1D, 2, 3, 5, 1, 4, 1, 1, True, (2, 2, 5)),
]


@pytest.mark.parametrize("mode", list(PADDING_MODES))
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0].__name__}{c[-1]}")
def test_against_pytorch(case: tuple, mode: str) -> None:
    torch = pytest.importorskip("torch")
    cls, cin, cout, k, s, p, d, g, bias, shape = case
    torch.manual_seed(0)
    theirs = (torch.nn.Conv2d if cls is md.Conv2D else torch.nn.Conv1d)(
        cin, cout, k, s, p, d, g, bias, padding_mode=mode).double()
    ours = cls.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy() if bias else None,
                           theirs.stride, theirs.padding, dilation=theirs.dilation, groups=theirs.groups,
                           padding_mode=theirs.padding_mode)
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g_out = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(g_out))
    np.testing.assert_allclose(ours.backward(g_out), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    kernel_grad = (ours.W.grad[1:] if bias else ours.W.grad).T.reshape(theirs.weight.shape)  # (kernel's layout)
    np.testing.assert_allclose(kernel_grad, theirs.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(ours.W.grad[0], theirs.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_padding_same_with_a_mode_against_pytorch(mode: str) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = torch.nn.Conv2d(2, 3, (3, 5), padding="same", dilation=(2, 1), padding_mode=mode).double()
    ours = md.Conv2D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy(), padding="same",
                                 dilation=(2, 1), padding_mode=mode)
    assert ours.padding == (2, 2)
    x = np.random.default_rng(7).standard_normal((2, 2, 5, 6))
    np.testing.assert_allclose(ours(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("bad", ["zero", "Reflect", None, 0, "constant"])
def test_an_unknown_padding_mode_is_refused_by_the_constructor_and_the_setter(bad: Any) -> None:
    message = f"Conv2D: padding_mode must be one of ('zeros', 'reflect', 'replicate', 'circular'), got {bad!r}"
    with pytest.raises(ValueError) as made:
        md.Conv2D(2, 3, 3, padding_mode=bad)
    assert str(made.value) == message
    layer = md.Conv2D(2, 3, 3, padding=1, padding_mode="circular", rng=0)
    with pytest.raises(ValueError) as set_:
        layer.padding_mode = bad
    assert str(set_.value) == message
    assert layer.padding_mode == "circular"


@pytest.mark.parametrize(("make_layer", "shape", "message"), [
    (lambda: md.Conv1D(3, 4, 3, padding=3, padding_mode="reflect"), (2, 3, 3),
     "Conv1D(3 -> 4, k=3): padding_mode='reflect' needs a padding smaller than the input along each axis (as "
     "PyTorch), got padding 3 for an input of shape (2, 3, 3): expected L >= 4, got L=3"),
    (lambda: md.Conv2D(2, 4, 3, padding=(1, 2), padding_mode="reflect", groups=2), (1, 2, 5, 2),
     "Conv2D(2 -> 4, k=3, groups=2): padding_mode='reflect' needs a padding smaller than the input along each "
     "axis (as PyTorch), got padding (1, 2) for an input of shape (1, 2, 5, 2): expected H >= 2 and W >= 3, got "
     "H=5, W=2"),
    (lambda: md.Conv1D(3, 4, 3, padding=3, padding_mode="circular"), (2, 3, 2),
     "Conv1D(3 -> 4, k=3): padding_mode='circular' needs a padding at most the input's size (it wraps around "
     "once) along each axis (as PyTorch), got padding 3 for an input of shape (2, 3, 2): expected L >= 3, got L=2"),
    (lambda: md.Conv2D(2, 4, 3, padding="same", padding_mode="reflect", dilation=2), (1, 2, 2, 6),
     "Conv2D(2 -> 4, k=3, dilation=2): padding_mode='reflect' needs a padding smaller than the input along each "
     "axis (as PyTorch), got padding (2, 2) for an input of shape (1, 2, 2, 6): expected H >= 3 and W >= 3, got "
     "H=2, W=6"),
])
def test_a_padding_the_mode_cannot_make_is_a_shape_error_and_changes_nothing(make_layer: Any, shape: tuple,
                                                                             message: str) -> None:
    layer = make_layer()
    rng = np.random.default_rng(8)
    fits = shape[:2] + tuple(n + 3 for n in shape[2:])
    y = layer(rng.standard_normal(fits))
    g = rng.standard_normal(y.shape)
    before = copy.deepcopy(layer)
    with pytest.raises(md.ShapeError) as refused:
        layer(rng.standard_normal(shape))
    assert str(refused.value) == message
    np.testing.assert_array_equal(layer.backward(g), before.backward(g))  # the earlier forward's cache kept


def test_what_the_modes_accept_at_the_edge_as_pytorch() -> None:
    """reflect up to size - 1, circular up to the size, replicate and zeros any padding."""
    x = np.random.default_rng(9).standard_normal((1, 1, 3))
    for mode, padding in (("reflect", 2), ("circular", 3), ("replicate", 7), ("zeros", 7)):
        layer = md.Conv1D(1, 1, 1, padding=padding, padding_mode=mode, bias=False, W=np.ones((1, 1)))
        y = layer(x)[0, 0]
        assert y.shape == (3 + 2 * padding,)
        np.testing.assert_array_equal(y[padding:padding + 3], x[0, 0])
    # a single position: replicate repeats it, reflect refuses any padding
    one = np.ones((1, 1, 1))
    np.testing.assert_array_equal(md.Conv1D(1, 1, 3, padding=1, padding_mode="replicate", bias=False,
                                            W=np.ones((3, 1)))(one), [[[3.0]]])
    with pytest.raises(md.ShapeError, match="expected L >= 2, got L=1"):
        md.Conv1D(1, 1, 3, padding=1, padding_mode="reflect")(one)


@pytest.mark.parametrize("mode", list(PADDING_MODES))
def test_padding_same_as_pytorch_allows_it(mode: str) -> None:
    """'same' goes with every mode (stride 1); an odd total padding is refused as with zeros (minidl's padding is
    the same on both sides), and so is a stride."""
    layer = md.Conv2D(2, 3, 3, padding="same", padding_mode=mode, rng=0)
    x = np.random.default_rng(10).standard_normal((1, 2, 4, 5))
    assert layer(x).shape == (1, 3, 4, 5)
    with pytest.raises(ValueError, match="odd on some axis"):
        md.Conv2D(2, 3, 2, padding="same", padding_mode=mode)
    with pytest.raises(ValueError, match="needs stride 1"):
        md.Conv1D(2, 3, 3, 2, padding="same", padding_mode=mode)


# ---------------------------------------------------------------------------------------------- repr, settings
def test_repr_shows_a_mode_other_than_zeros_and_from_kernel_keeps_it() -> None:
    assert repr(md.Conv2D(3, 8, 3, padding=1)) == "Conv2D(3, 8, kernel_size=(3, 3), padding=(1, 1))"
    assert repr(md.Conv2D(3, 8, 3, padding=1, padding_mode="zeros")) == \
        "Conv2D(3, 8, kernel_size=(3, 3), padding=(1, 1))"
    assert repr(md.Conv2D(3, 8, 3, padding=1, groups=1, bias=False, padding_mode="reflect")) == \
        "Conv2D(3, 8, kernel_size=(3, 3), padding=(1, 1), bias=False, padding_mode='reflect')"
    conv = md.Conv1D.from_kernel(np.ones((8, 3, 5)), padding=2, padding_mode="circular")
    assert repr(conv) == "Conv1D(3, 8, kernel_size=5, padding=2, bias=False, padding_mode='circular')"
    assert conv.padding_mode == "circular" and md.Conv1D(3, 8, 5).padding_mode == "zeros"
    assert md.layers.conv.PADDING_MODES == PADDING_MODES
    model = md.Sequential(conv)
    assert "padding_mode='circular'" in repr(model)


def test_the_summary_and_the_checker_run_on_the_input_shape_hint_of_a_large_reflect_padding(capsys: Any) -> None:
    conv = md.Conv1D(2, 3, 3, padding=6, padding_mode="reflect", rng=0)
    assert conv.input_shape_hint() == (2, 7)  # (the span 3 + 2 would be 5: too short to reflect 6)
    assert md.Conv2D(2, 3, 3, padding=(1, 4), padding_mode="circular").input_shape_hint() == (2, 5, 5)
    assert md.Conv2D(2, 3, 3, padding=(1, 4)).input_shape_hint() == (2, 5, 5)
    md.Sequential(conv).summary()
    assert "(None, 3, 17)" in capsys.readouterr().out
    assert md.GradientChecker(conv, seed=0).run().passed


@pytest.mark.parametrize(("first", "then"), [("zeros", "reflect"), ("circular", "replicate"), ("reflect", "zeros")])
def test_padding_mode_set_later_is_used_by_the_next_forward_and_not_by_a_pending_backward(first: str,
                                                                                         then: str) -> None:
    x = np.random.default_rng(11).standard_normal((2, 3, 6, 5))
    layer, plain, changed = (md.Conv2D(3, 4, 3, padding=(2, 1), padding_mode=m, rng=0)
                             for m in (first, first, then))
    y = layer(x)
    np.testing.assert_array_equal(y, plain(x))
    layer.padding_mode = then  # between a forward and its backward
    g = np.random.default_rng(12).standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(g), plain.backward(g))
    np.testing.assert_array_equal(layer(x), changed(x))
    np.testing.assert_array_equal(layer.backward(g), changed.backward(g))
    assert repr(layer) == repr(changed)


# ---------------------------------------------------------------------------------------------- fixed settings
@pytest.mark.parametrize("cls, shape", [(md.Conv2D, (2, 4, 5, 5)), (md.Conv1D, (2, 4, 6))])
@pytest.mark.parametrize(("name", "value"), [("in_channels", 7), ("out_channels", 2), ("groups", 1),
                                             ("bias", False)])
def test_a_fixed_setting_set_to_another_value_is_refused_and_the_layer_unchanged(cls: Any, shape: tuple, name: str,
                                                                                value: Any, capsys: Any) -> None:
    layer = cls(4, 6, 3, groups=2, rng=0)
    now = getattr(layer, name)
    x = np.random.default_rng(13).standard_normal(shape)
    before, W, text = layer(x), layer.W.data.copy(), repr(layer)
    with pytest.raises(ValueError) as refused:
        setattr(layer, name, value)
    assert str(refused.value) == (f"{cls.__name__}: {name} cannot be changed after construction (the weights W were "
                                  f"built for it, and an optimizer or a checkpoint holds W); got {value!r}, it is "
                                  f"{now!r}: build a new {cls.__name__}")
    assert getattr(layer, name) == now and repr(layer) == text
    np.testing.assert_array_equal(layer.W.data, W)
    np.testing.assert_array_equal(layer(x), before)
    md.Sequential(layer).summary()
    assert "Conv" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "value", "message", "error"), [
    ("in_channels", 0, "Conv2D: in_channels must be a positive int, got 0", ValueError),
    ("out_channels", 2.0, "Conv2D: out_channels must be a positive int, got 2.0", ValueError),
    ("groups", True, "Conv2D: groups must be a positive int, got True", ValueError),
    ("bias", 1, "Conv2D: bias must be True or False, got 1", TypeError),
])
def test_a_fixed_setting_set_to_a_bad_value_gets_the_constructor_s_message(name: str, value: Any, message: str,
                                                                          error: type) -> None:
    with pytest.raises(error) as made:
        md.Conv2D(**{"in_channels": 2, "out_channels": 2, "kernel_size": 3, name: value})
    assert str(made.value) == message
    layer = md.Conv2D(2, 2, 3, rng=0)
    with pytest.raises(error) as set_:
        setattr(layer, name, value)
    assert str(set_.value) == message
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias) == (2, 2, 1, True)


def test_a_fixed_setting_set_to_its_own_value_is_accepted_and_numpy_values_read_as_python_ones() -> None:
    layer = md.Conv1D(np.int64(4), np.int32(6), 3, bias=np.bool_(True), groups=np.int8(2), rng=0)  # type: ignore[arg-type]
    layer.in_channels, layer.out_channels, layer.groups, layer.bias = 4, np.int16(6), 2, True
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias) == (4, 6, 2, True)
    assert all(type(getattr(layer, n)) is int for n in ("in_channels", "out_channels", "groups"))
    assert type(layer.bias) is bool


def test_a_second_init_starts_afresh_and_a_refused_one_leaves_the_layer_as_it_was() -> None:
    class MyConv(md.Conv2D):
        pass

    layer = MyConv(4, 6, 3, groups=2, padding=1, padding_mode="reflect", rng=0)
    x = np.random.default_rng(14).standard_normal((2, 4, 5, 5))
    y = layer(x)
    W, text, params = layer.W, repr(layer), dict(layer.named_parameters())
    for args, kwargs, error in [((4, 6, 3), {"groups": 4}, ValueError), ((4, 6, 3), {"bias": "yes"}, TypeError),
                                ((4, 6, 3), {"padding_mode": "mirror"}, ValueError),
                                ((4, 6, 3), {"W": np.ones((5, 6))}, md.ShapeError),
                                ((4, 6, 3), {"padding": "same", "stride": 2}, ValueError)]:
        with pytest.raises(error):
            layer.__init__(*args, **kwargs)  # type: ignore[misc]
        assert layer.W is W and repr(layer) == text and dict(layer.named_parameters()) == params
        np.testing.assert_array_equal(layer(x), y)
    with pytest.raises(ValueError, match=r"^MyConv: groups cannot be changed"):
        layer.groups = 1
    layer.__init__(3, 5, 2, bias=False, rng=1)  # type: ignore[misc]  # (Layer supports a second __init__)
    assert (layer.in_channels, layer.out_channels, layer.groups, layer.bias, layer.padding_mode, layer.W.shape) == \
        (3, 5, 1, False, "zeros", (12, 5))
    assert repr(layer) == "MyConv(3, 5, kernel_size=(2, 2), bias=False)"
    x3 = np.random.default_rng(15).standard_normal((1, 3, 4, 4))
    np.testing.assert_array_equal(layer(x3), unpadded_twin(layer)(x3))


@pytest.mark.parametrize(("cls", "shape", "bias", "groups", "built", "layout"), [
    (md.Conv2D, (2, 4, 5, 5), True, 1, (37, 6), "(in_channels*kh*kw + 1, out_channels)"),
    (md.Conv2D, (2, 4, 5, 5), False, 2, (18, 6), "(in_channels//groups*kh*kw, out_channels)"),
    (md.Conv1D, (2, 4, 7), True, 2, (7, 6), "(in_channels//groups*k + 1, out_channels)"),
])
def test_w_data_rebound_to_another_shape_is_a_shape_error_at_forward_and_backward(
        cls: Any, shape: tuple, bias: bool, groups: int, built: tuple, layout: str) -> None:
    layer = cls(4, 6, 3, bias=bias, groups=groups, rng=0)
    x = np.random.default_rng(16).standard_normal(shape)
    y = layer(x)
    W = layer.W.data
    for other in (np.ones((built[0], 3)), np.ones((built[0] + 1, 6))):
        layer.W.data = other
        message = (f"{layer._who}: W.data has shape {other.shape}, but the layer was built for {built} {layout}; "
                   f"its sizes are fixed: build a new {cls.__name__} of the sizes you want")
        with pytest.raises(md.ShapeError) as at_backward:
            layer.backward(np.ones_like(y))
        assert str(at_backward.value) == message
        with pytest.raises(md.ShapeError) as at_forward:
            layer(x)
        assert str(at_forward.value) == message
    layer.W.data = W
    np.testing.assert_array_equal(layer(x), y)


# ---------------------------------------------------------------------------------------------- pickles
def old_form(layer: md.Conv2D | md.Conv1D) -> Any:
    """``layer`` as minidl pickled it before: channels, groups and bias plain attributes, no padding_mode, a
    forward's cache of four entries."""
    state = dict(layer.__getstate__())
    for name in ("in_channels", "out_channels", "groups", "bias"):
        state[name] = state.pop("_" + name)
    state.pop("_padding_mode")
    if state["_cache"] is not None:
        assert state["_cache"][-1] is None
        state["_cache"] = state["_cache"][:4]
    old = type(layer).__new__(type(layer))
    old.__dict__.update(state)
    return old


@pytest.mark.parametrize("cls, shape", [(md.Conv2D, (2, 4, 5, 5)), (md.Conv1D, (2, 4, 6))])
def test_a_conv_pickled_before_padding_mode_loads_pads_with_zeros_and_keeps_its_sizes_fixed(cls: Any,
                                                                                            shape: tuple) -> None:
    layer = cls(4, 6, 3, padding=1, groups=2, rng=0)
    x = np.random.default_rng(17).standard_normal(shape)
    y = layer(x)
    g = np.random.default_rng(18).standard_normal(y.shape)
    restored = pickle.loads(pickle.dumps(old_form(layer)))
    assert repr(restored) == repr(layer) and restored.padding_mode == "zeros"
    for name in ("in_channels", "out_channels", "groups", "bias", "padding_mode"):
        assert name not in restored.__dict__
    np.testing.assert_array_equal(restored.backward(g), layer.backward(g))  # the pickled forward's cache
    np.testing.assert_array_equal(restored(x), y)
    with pytest.raises(ValueError, match="in_channels cannot be changed"):
        restored.in_channels = 2
    restored.padding_mode = "replicate"
    assert "padding_mode='replicate'" in repr(restored)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        np.testing.assert_array_equal(twin(x), y)
        with pytest.raises(ValueError, match="groups cannot be changed"):
            twin.groups = 1


def test_a_pickled_mode_layer_keeps_its_mode_and_its_pending_backward() -> None:
    layer = md.Conv2D(2, 3, 3, padding=1, padding_mode="reflect", rng=0)
    x = np.random.default_rng(19).standard_normal((2, 2, 4, 4))
    y = layer(x)
    twin = pickle.loads(pickle.dumps(layer))
    g = np.ones_like(y)
    np.testing.assert_array_equal(twin.backward(g), layer.backward(g))
    assert twin.padding_mode == "reflect"


@pytest.mark.parametrize("layer, sizes, words", [
    (lambda: md.Conv2D(2, 3, 3, padding=3, padding_mode="reflect"), (3, 3),
     r"padding_mode='reflect' needs a padding smaller than the input .* expected H >= 4 and W >= 4, got H=3, W=3"),
    (lambda: md.Conv2D(2, 3, 3, padding=(0, 2), padding_mode="reflect"), (5, 2), r"expected H >= 1 and W >= 3"),
    (lambda: md.Conv1D(2, 3, 3, padding=4, padding_mode="circular"), (3,),
     r"padding_mode='circular' needs a padding at most the input's size .* expected L >= 4, got L=3"),
    (lambda: md.Conv2D(2, 3, 5), (2, 2), r"input of shape \(1, 2, 2, 2\) is smaller than the kernel"),
    (lambda: md.Conv1D(2, 3, 3, padding=1), (0,), r"has no positions \(length 0\)"),
])
def test_output_shape_refuses_what_the_forward_refuses_in_the_same_words(
        layer: Any, sizes: tuple[int, ...], words: str) -> None:
    conv = layer()
    with pytest.raises(md.ShapeError, match=words) as from_output_shape:
        conv.output_shape(*sizes)
    with pytest.raises(md.ShapeError) as from_forward:
        conv(np.zeros((1, 2, *sizes)))
    assert str(from_output_shape.value).split(": ", 1)[1] == str(from_forward.value).split(": ", 1)[1]


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_output_shape_of_a_mode_is_the_forward_s(mode: str) -> None:
    for conv, sizes in [(md.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(1, 2), padding_mode=mode),
                         (5, 4)), (md.Conv1D(2, 3, 3, stride=2, padding=2, padding_mode=mode), (7,))]:
        y = conv(np.random.default_rng(0).normal(size=(2, 2, *sizes)))
        assert conv.output_shape(*sizes) == y.shape[1:]


def test_from_kernel_names_itself_when_its_padding_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^Conv2D.from_kernel: padding_mode must be one of .*got 'wrap'"):
        md.Conv2D.from_kernel(np.ones((2, 1, 3, 3)), padding_mode="wrap")
    with pytest.raises(ValueError, match=r"^Conv1D.from_kernel: padding_mode must be one of .*got 'Zeros'"):
        md.Conv1D.from_kernel(np.ones((2, 1, 3)), padding_mode="Zeros")
