"""PixelShuffle and PixelUnshuffle: the channel order against loops and a hand-written case, each the other's
inverse (hypothesis), the gradient checker (alone and between convolutions), dtypes, views and layouts,
refusals, repr and summary, and PyTorch's nn.PixelShuffle / nn.PixelUnshuffle when it is installed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import PixelShuffle, PixelUnshuffle
from minidl.testing import assert_gradients_ok


def shuffle_by_loops(x: np.ndarray, r: int) -> np.ndarray:
    """y[..., c, h*r + i, w*r + j] = x[..., c*r*r + i*r + j, h, w], element by element."""
    *lead, channels, H, W = x.shape
    y = np.empty((*lead, channels // (r * r), H * r, W * r), x.dtype)
    for index in np.ndindex(*y.shape):
        *n, c, row, col = index
        y[index] = x[(*n, c * r * r + (row % r) * r + col % r, row // r, col // r)]
    return y


def unshuffle_by_loops(x: np.ndarray, r: int) -> np.ndarray:
    """y[..., c*r*r + i*r + j, h, w] = x[..., c, h*r + i, w*r + j], element by element."""
    *lead, C, height, width = x.shape
    y = np.empty((*lead, C * r * r, height // r, width // r), x.dtype)
    for index in np.ndindex(*y.shape):
        *n, channel, h, w = index
        c, (i, j) = channel // (r * r), divmod(channel % (r * r), r)
        y[index] = x[(*n, c, h * r + i, w * r + j)]
    return y


def channel_major(x: np.ndarray) -> np.ndarray:
    """x's values laid out as a Conv2D lays out its output: contiguous (C, N, H, W), seen as (N, C, H, W)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# ------------------------------------------------------------------------------------ values
def test_hand_written_case() -> None:
    """Channel c*4 + i*2 + j of pixel (h, w) goes to pixel (2h + i, 2w + j): the four channels of one output
    channel interleave, row i of each block from channels 2i and 2i + 1 (PyTorch's own output)."""
    x = np.arange(2 * 8 * 2 * 3, dtype=np.float64).reshape(2, 8, 2, 3)
    y = PixelShuffle(2)(x)
    assert y.shape == (2, 2, 4, 6)
    np.testing.assert_array_equal(y[0, 0], [[0, 6, 1, 7, 2, 8], [12, 18, 13, 19, 14, 20],
                                            [3, 9, 4, 10, 5, 11], [15, 21, 16, 22, 17, 23]])
    np.testing.assert_array_equal(y[1, 1], y[0, 0] + 72)  # sample 1, channels 4..7: 24 + 48 on
    np.testing.assert_array_equal(PixelUnshuffle(2)(y), x)


SHAPES = [  # (shape of the shuffle's input, r)
    ((2, 4, 3, 2), 2), ((1, 18, 2, 3), 3), ((3, 8, 1, 1), 2), ((2, 3, 2, 4), 1), ((1, 16, 2, 1), 4),
    ((2, 3, 8, 2, 3), 2), ((1, 2, 1, 9, 1, 2), 3), ((2, 32, 3, 2), 2),
]


@pytest.mark.parametrize("shape, r", SHAPES)
def test_both_against_loops_and_backward_is_the_inverse(shape: tuple[int, ...], r: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    shuffle = PixelShuffle(r)
    y = shuffle(x)
    np.testing.assert_array_equal(y, shuffle_by_loops(x, r))
    unshuffle = PixelUnshuffle(r)
    np.testing.assert_array_equal(unshuffle(y), x)
    np.testing.assert_array_equal(unshuffle_by_loops(y, r), x)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(shuffle.backward(g), unshuffle_by_loops(g, r))  # the inverse permutation
    np.testing.assert_array_equal(unshuffle.backward(x), y)


def test_output_shape() -> None:
    assert PixelShuffle(3).output_shape(18, 4, 5) == (2, 12, 15)
    assert PixelUnshuffle(2).output_shape(3, 8, 6) == (12, 4, 3)
    assert PixelShuffle(2).output_shape(0, 0, 3) == (0, 0, 6)
    with pytest.raises(md.ShapeError, match=r"PixelShuffle\(upscale_factor=2\)\.output_shape: expected the channels "
                                            r"\(axis -3\) to be divisible by upscale_factor\*\*2 = 4, got 6"):
        PixelShuffle(2).output_shape(6, 4, 4)
    with pytest.raises(md.ShapeError, match=r"expected the width \(axis -1\) to be divisible by downscale_factor = 2"):
        PixelUnshuffle(2).output_shape(3, 4, 5)
    with pytest.raises(TypeError, match=r"output_shape: height must be an int, got 2\.0 \(float\)"):
        PixelShuffle(2).output_shape(4, 2.0, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"output_shape: channels must be >= 0, got -4"):
        PixelShuffle(2).output_shape(-4, 2, 2)


# ------------------------------------------------------------------------------------ inverse (hypothesis)
@settings(max_examples=60, deadline=None)
@given(r=st.integers(1, 4), lead=st.lists(st.integers(0, 3), min_size=1, max_size=3), c=st.integers(0, 3),
       h=st.integers(0, 4), w=st.integers(0, 4), seed=st.integers(0, 2**32 - 1), layout=st.sampled_from(["C", "CNHW"]))
def test_each_is_the_others_inverse(r: int, lead: list[int], c: int, h: int, w: int, seed: int, layout: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, c * r * r, h, w))
    if layout == "CNHW" and x.ndim == 4:
        x = channel_major(x)
    before = x.copy()
    shuffle, unshuffle = PixelShuffle(r), PixelUnshuffle(r)
    y = shuffle(x)
    assert y.shape == (*lead, c, h * r, w * r)
    np.testing.assert_array_equal(unshuffle(y), x)
    np.testing.assert_array_equal(shuffle.backward(y), x)  # backward: the inverse permutation
    z_in = rng.standard_normal((*lead, c, h * r, w * r))  # an unshuffle's input
    z = unshuffle(z_in)
    assert z.shape == (*lead, c * r * r, h, w)
    np.testing.assert_array_equal(shuffle(z), z_in)
    np.testing.assert_array_equal(unshuffle.backward(z), z_in)
    np.testing.assert_array_equal(x, before)  # never written into


# ------------------------------------------------------------------------------------ gradient checker
@pytest.mark.parametrize("layer, shape, seed", [
    (PixelShuffle(2), (2, 8, 2, 3), 0), (PixelShuffle(3), (1, 9, 2, 2), 1), (PixelShuffle(2), (2, 1, 4, 1, 2), 2),
    (PixelUnshuffle(2), (2, 2, 4, 6), 3), (PixelUnshuffle(3), (1, 1, 3, 6), 4), (PixelShuffle(1), (2, 3, 2, 2), 5),
])
def test_gradient_checker_alone(layer: md.Layer, shape: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert [(r.name, r.checked) for r in report.results] == [("input", x.size)]


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_between_convolutions(seed: int) -> None:
    """ESPCN's upsampling (Conv2D -> PixelShuffle -> Conv2D) and the reverse, every weight and the input."""
    up = md.Sequential(md.Conv2D(2, 3 * 4, 3, padding=1, rng=seed), PixelShuffle(2), md.Tanh(),
                       md.Conv2D(3, 2, 3, rng=seed + 1))
    x = np.random.default_rng(seed).standard_normal((2, 2, 3, 3))
    assert up(x).shape == (2, 2, 4, 4)
    report = assert_gradients_ok(up, inputs=x, seed=seed)
    assert {r.name for r in report.results} == {"input", "0.W", "3.W"} and report["input"].checked == x.size
    down = md.Sequential(md.Conv2D(1, 2, 3, padding=1, rng=seed), PixelUnshuffle(2), md.Conv2D(8, 3, 1, rng=seed + 1),
                         md.Flatten(), md.Dense(3 * 2 * 2, 2, rng=seed + 2))
    x = np.random.default_rng(seed + 10).standard_normal((3, 1, 4, 4))
    report = assert_gradients_ok(down, inputs=x, loss=md.CrossEntropyLoss(), seed=seed)
    assert {r.name for r in report.results} == {"input", "0.W", "2.W", "4.W"} and report["input"].checked == x.size


# ------------------------------------------------------------------------------------ dtypes, views, layouts
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_kept(dtype: Any) -> None:
    x = np.random.default_rng(0).standard_normal((2, 8, 3, 2)).astype(dtype)
    for layer, inp in ((PixelShuffle(2), x), (PixelUnshuffle(2), x.reshape(2, 2, 12, 2))):
        y = layer(inp)
        assert y.dtype == dtype
        dx = layer.backward(np.ones_like(y))
        assert dx.dtype == dtype and dx.shape == inp.shape
        with pytest.raises(md.DTypeError, match=rf"expected grad_output of dtype {np.dtype(dtype).name}"):
            layer.backward(np.ones(y.shape, np.float64 if dtype != np.float64 else np.float32))


def test_copy_or_view_and_inputs_untouched() -> None:
    """One copy for r >= 2 (a fresh writable array); a view of x where the reshape can make one (as Flatten's)."""
    x = np.random.default_rng(0).standard_normal((2, 8, 3, 4))
    before = x.copy()
    layer = PixelShuffle(2)
    y = layer(x)
    assert not np.shares_memory(x, y) and y.flags.writeable and y.flags.c_contiguous
    g = np.ones_like(y)
    dx = layer.backward(g)
    assert not np.shares_memory(g, dx)
    assert np.shares_memory(PixelShuffle(1)(x), x)  # the identity permutation: a view, no copy
    one_pixel = x[:, :, :1, :1].copy()
    assert np.shares_memory(PixelShuffle(2)(one_pixel), one_pixel)  # 1 x 1 images: a reshape
    read_only = x.copy()
    read_only.flags.writeable = False  # e.g. a ReLU's output
    np.testing.assert_array_equal(PixelShuffle(2)(read_only), y)
    np.testing.assert_array_equal(x, before)


def test_channel_major_layout_is_kept_and_any_gradient_layout_works() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 2, 3))
    for layer, inp in ((PixelShuffle(2), x), (PixelUnshuffle(2), x.reshape(3, 2, 4, 6))):
        y = layer(inp)
        z = layer(channel_major(inp))
        np.testing.assert_array_equal(z, y)
        assert z.transpose(1, 0, 2, 3).flags.c_contiguous  # (a Conv2D's layout, for the next Conv2D)
        g = rng.standard_normal(y.shape)
        expected = layer.backward(g)
        for grad in (np.asfortranarray(g), channel_major(g), g[:, :, ::-1, :][:, :, ::-1, :]):
            np.testing.assert_array_equal(layer.backward(grad), expected)
        assert layer.backward(channel_major(g)).transpose(1, 0, 2, 3).flags.c_contiguous


def test_big_endian_input_gives_native_output() -> None:
    x = np.random.default_rng(0).standard_normal((2, 4, 2, 3))
    layer = PixelShuffle(2)
    y = layer(x.astype(">f8"))
    assert y.dtype == np.float64 and y.dtype.isnative
    np.testing.assert_array_equal(y, PixelShuffle(2)(x))
    np.testing.assert_array_equal(layer.backward(y), x)


def test_empty_inputs() -> None:
    assert PixelShuffle(2)(np.zeros((0, 8, 2, 3))).shape == (0, 2, 4, 6)
    assert PixelShuffle(2)(np.zeros((2, 0, 2, 3))).shape == (2, 0, 4, 6)
    assert PixelShuffle(2)(np.zeros((2, 4, 0, 3))).shape == (2, 1, 0, 6)
    layer = PixelUnshuffle(2)
    y = layer(np.zeros((0, 3, 4, 4), np.float32))
    assert y.shape == (0, 12, 2, 2) and y.dtype == np.float32  # (PyTorch: (0, 3, 4, 4), see the docstring)
    assert layer.backward(y).shape == (0, 3, 4, 4)


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("cls, name", [(PixelShuffle, "upscale_factor"), (PixelUnshuffle, "downscale_factor")])
def test_bad_factors(cls: Any, name: str) -> None:
    for bad in (2.0, 1.5, True, "2", None, (2, 2), 0, -1, np.int64(-3)):  # (ValueError, as every minidl layer's)
        with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be a positive int, got"):
            cls(bad)
    layer = cls(np.int64(3))
    assert getattr(layer, name) == 3 and type(getattr(layer, name)) is int
    with pytest.raises(ValueError, match="must be a positive int"):
        setattr(layer, name, 0)
    assert getattr(layer, name) == 3  # unchanged
    setattr(layer, name, 2)
    assert repr(layer) == f"{cls.__name__}({name}=2)"


def test_bad_inputs_name_the_layer_and_change_nothing() -> None:
    shuffle, unshuffle = PixelShuffle(2), PixelUnshuffle(2)
    x = np.random.default_rng(0).standard_normal((1, 4, 2, 2))
    y = shuffle(x)
    unshuffle(y)
    who, un = r"PixelShuffle\(upscale_factor=2\)", r"PixelUnshuffle\(downscale_factor=2\)"
    cases: list[tuple[md.Layer, Any, type[Exception], str]] = [
        (shuffle, np.zeros((1, 6, 2, 2)), md.ShapeError, who + r": expected the channels \(axis -3\) to be divisible "
                                                               r"by upscale_factor\*\*2 = 4, got 6 channels \(input "
                                                               r"shape \(1, 6, 2, 2\)\)"),
        (shuffle, np.zeros((1, 2, 3, 2, 2)), md.ShapeError, r"got 3 channels \(input shape \(1, 2, 3, 2, 2\)\)"),
        (shuffle, np.zeros((4, 2, 2)), md.ShapeError, who + r": expected a 4-D \(or higher\) input of shape "
                                                            r"\(N, C\*4, H, W\), got shape \(4, 2, 2\) \(an unbatched "
                                                            r"\(C, H, W\) image, which PyTorch also takes: minidl's "
                                                            r"image layers want the batch axis, x\[None\]\)"),
        (shuffle, np.zeros((4, 4)), md.ShapeError, who + r": expected a 4-D \(or higher\) input of shape "
                                                         r"\(N, C\*4, H, W\), got shape \(4, 4\)$"),
        (shuffle, np.zeros((1, 4, 2, 2), np.int64), md.DTypeError, who + ": expected a floating-point input, got "
                                                                         "dtype int64"),
        (shuffle, np.zeros((1, 4, 2, 2), bool), md.DTypeError, "got dtype bool"),
        (shuffle, {"x": 1}, md.DTypeError, who + ": expected input as a numpy array, got dict"),
        (shuffle, (x, x), md.DTypeError, "several inputs"),
        (unshuffle, np.zeros((1, 1, 5, 4)), md.ShapeError, un + r": expected the height \(axis -2\) to be divisible "
                                                                r"by downscale_factor = 2, got 5 \(input shape "
                                                                r"\(1, 1, 5, 4\)\)"),
        (unshuffle, np.zeros((1, 1, 4, 3)), md.ShapeError, un + r": expected the width \(axis -1\) to be divisible by "
                                                                r"downscale_factor = 2, got 3"),
        (unshuffle, np.zeros((4, 4, 4)), md.ShapeError, un + r": expected a 4-D \(or higher\) input of shape "
                                                             r"\(N, C, H\*2, W\*2\), got shape \(4, 4, 4\) \(an "),
    ]
    for layer, bad, error, message in cases:
        state = (layer._out, layer._used, layer._dtype)
        with pytest.raises(error, match=message):
            layer(bad)
        assert (layer._out, layer._used, layer._dtype) == state  # the last good forward's, still
    np.testing.assert_array_equal(shuffle.backward(y), x)
    with pytest.raises(md.ShapeError, match=who + r"\.backward: expected grad_output of shape \(1, 1, 4, 4\), got "
                                                  r"\(1, 4, 2, 2\)"):
        shuffle.backward(x)
    with pytest.raises(md.DTypeError, match=un + r"\.backward: expected grad_output as a numpy array, got list"):
        unshuffle.backward(x.tolist())
    for fresh in (PixelShuffle(2), PixelUnshuffle(2)):
        with pytest.raises(md.BackwardBeforeForwardError):
            fresh.backward(np.zeros((1, 1, 4, 4)))


def test_backward_uses_its_forwards_factor() -> None:
    x = np.random.default_rng(0).standard_normal((2, 36, 2, 2))
    layer = PixelShuffle(2)
    y = layer(x)
    layer.upscale_factor = 3  # the next forward's
    np.testing.assert_array_equal(layer.backward(y), x)
    with pytest.raises(md.ShapeError, match=r"PixelShuffle\(upscale_factor=2\)\.backward"):
        layer.backward(np.zeros((2, 4, 6, 6)))
    assert layer(x).shape == (2, 4, 6, 6)


def test_a_forward_that_fails_in_the_copy_keeps_the_last_pass() -> None:
    x = np.random.default_rng(0).standard_normal((1, 4, 2, 2))
    layer = PixelShuffle(2)
    y = layer(x)
    layer.upscale_factor = 2**40  # an output too large to make
    with pytest.raises((ValueError, MemoryError)):
        layer(np.zeros((1, 0, 2, 2)))
    np.testing.assert_array_equal(layer.backward(y), x)  # the cache is still the first pass's


def test_outputs_that_are_views_keep_the_inputs_layout() -> None:
    x = np.arange(16.0).reshape(1, 1, 8, 2)  # one channel, r pixels wide: NumPy's reshape makes a view
    y = PixelUnshuffle(2)(x)
    assert y.shape == (1, 4, 4, 1) and np.shares_memory(x, y)
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]])


# ------------------------------------------------------------------------------------ repr, summary, state
def test_repr_summary_and_state() -> None:
    assert repr(PixelShuffle(3)) == "PixelShuffle(upscale_factor=3)"
    assert repr(PixelUnshuffle(2)) == "PixelUnshuffle(downscale_factor=2)"
    model = md.Sequential(md.Conv2D(3, 12, 3, padding=1, rng=0), PixelShuffle(2), md.Conv2D(3, 3, 3, padding=1, rng=1),
                          PixelUnshuffle(4))
    text = str(md.summarize(model, (3, 8, 8)))
    assert "1 (PixelShuffle)" in text and "(None, 3, 16, 16)" in text
    assert "3 (PixelUnshuffle)" in text and "(None, 48, 4, 4)" in text
    lines: list[str] = []
    model.summary((3, 8, 8), print_fn=lines.append)
    assert "\n".join(lines).count("(PixelShuffle)") == 1
    assert "(1): PixelShuffle(upscale_factor=2)" in repr(model)
    assert PixelShuffle(2).state_dict() == {} and PixelShuffle(2).num_parameters() == 0
    layer = PixelUnshuffle(2)
    assert layer.astype(np.float32) is layer and layer.input_shape_hint() is None


def test_in_a_stack_it_takes_the_sequence_alone() -> None:
    assert PixelShuffle.single_input and PixelUnshuffle.single_input
    mask = np.zeros((2, 3), bool)
    x = np.random.default_rng(0).standard_normal((2, 4, 2, 2))
    stack = md.Stack(PixelShuffle(2), PixelUnshuffle(2))
    np.testing.assert_array_equal(stack((x, mask)), x)


# ------------------------------------------------------------------------------------ PyTorch
TORCH_CASES = [  # (shape of PixelShuffle's input, r)
    ((2, 4, 3, 5), 2), ((1, 27, 4, 2), 3), ((3, 32, 2, 2), 4), ((2, 5, 3, 3), 1), ((4, 8, 1, 1), 2),
    ((2, 3, 12, 2, 3), 2), ((1, 2, 2, 18, 3, 1), 3), ((1, 50, 2, 3), 5), ((8, 64, 7, 5), 2), ((2, 16, 1, 7), 2),
]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_equal_to_pytorch(dtype: str) -> None:
    """Values and gradients bit for bit (a permutation computes nothing), in every dtype and layout."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for shape, r in TORCH_CASES:
        x = rng.standard_normal(shape).astype(dtype)
        for ours, theirs, inp in ((PixelShuffle(r), torch.nn.PixelShuffle(r), x),
                                  (PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), shuffle_by_loops(x, r))):
            for layout in (inp, channel_major(inp)) if inp.ndim == 4 else (inp,):
                xt = torch.tensor(layout, requires_grad=True)
                yt = theirs(xt)
                g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
                yt.backward(torch.tensor(g))
                y = ours(layout)
                assert y.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(y, yt.detach().numpy())
                dx = ours.backward(g)
                assert dx.dtype == np.dtype(dtype)
                np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_pytorch_agrees_on_empty_inputs_and_refusals() -> None:
    torch = pytest.importorskip("torch")
    for shape in ((0, 8, 2, 3), (2, 0, 2, 3), (2, 8, 0, 3)):
        assert PixelShuffle(2)(np.zeros(shape)).shape == tuple(torch.nn.PixelShuffle(2)(torch.zeros(shape)).shape)
    # a deliberate difference: PyTorch hands an empty input back with its own shape
    assert tuple(torch.nn.PixelUnshuffle(2)(torch.zeros(0, 3, 4, 4)).shape) == (0, 3, 4, 4)
    assert PixelUnshuffle(2)(np.zeros((0, 3, 4, 4))).shape == (0, 12, 2, 2)
    for make, theirs, shape in ((PixelShuffle, torch.nn.PixelShuffle, (1, 6, 2, 2)),
                                (PixelUnshuffle, torch.nn.PixelUnshuffle, (1, 1, 5, 4)),
                                (PixelUnshuffle, torch.nn.PixelUnshuffle, (1, 1, 4, 5)),
                                (PixelShuffle, torch.nn.PixelShuffle, (4, 4))):
        with pytest.raises(RuntimeError):
            theirs(2)(torch.zeros(shape))
        with pytest.raises(md.ShapeError):
            make(2)(np.zeros(shape))
    for bad in (0, -1):
        with pytest.raises(RuntimeError):
            torch.nn.PixelShuffle(bad)(torch.zeros(1, 4, 2, 2))
    for bad_type in (2.0, True):
        with pytest.raises(TypeError):
            torch.nn.PixelShuffle(bad_type)(torch.zeros(1, 4, 2, 2))
