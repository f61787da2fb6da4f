"""Every spatial layer's ``output_shape`` agrees with its forward on a grid of small sizes (0..6 along each axis)
and of settings (kernel, stride, padding, dilation, ceil_mode, ...): it raises exactly where the forward raises,
the same exception type in the forward's words, and elsewhere gives the shape the forward makes.

The words: where the forward names its input by its shape ``(N, C, *spatial)`` and the layer cannot know the
channels in ``output_shape`` (the pools, the adaptive pools, the unpools, ``Upsample``, the paddings), the message
names the sizes instead, ``input of 4 x 1`` / ``input of length 4``, and is otherwise the forward's; a layer that
knows them (the convolutions) says the forward's message word for word for an input of one sample; ``Unfold``,
``Fold`` and the pixel shuffles take the channels as an argument and name their method (``.output_shape``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

import minidl as md

SIZES = range(7)  # 0..6 along each axis

#: A refusal: the exception's type and message; an acceptance: the output shape in output_shape's terms.
Outcome = tuple[type, str] | tuple[int, ...]


def outcome(call: Callable[[], Any]) -> Outcome:
    try:
        result = call()
    except Exception as error:  # (any type: output_shape must raise the forward's)
        return type(error), str(error)
    return tuple(result)


def words(sizes: tuple[int, ...]) -> str:
    """How output_shape's messages name an input of the spatial ``sizes``, where its forward says its shape."""
    return f"length {sizes[0]}" if len(sizes) == 1 else " x ".join(map(str, sizes))


def values(y: Any) -> np.ndarray:
    """A forward's output values (a max pool with ``return_indices`` gives ``(y, indices)``)."""
    return y[0] if isinstance(y, tuple) else y


def spatial_run(layer: Any, sizes: tuple[int, ...]) -> tuple[Outcome, Outcome]:
    """(output_shape's, the forward's) for an input of 2 channels and the spatial ``sizes``; the forward's message
    with the input's shape put in output_shape's words."""
    x = np.arange(2 * int(np.prod(sizes)), dtype=np.float64).reshape(1, 2, *sizes)
    forward = outcome(lambda: values(layer(x)).shape[2:])
    if isinstance(forward[0], type):
        forward = (forward[0], str(forward[1]).replace(f"shape {x.shape}", words(sizes)))
    return outcome(lambda: layer.output_shape(*sizes)), forward


def unpool_run(layer: Any, sizes: tuple[int, ...]) -> tuple[Outcome, Outcome]:
    """As :func:`spatial_run` for a max unpool: x and indices (all 0) of the spatial ``sizes``."""
    shape = (1, 2, *sizes)
    forward = outcome(lambda: layer((np.ones(shape), np.zeros(shape, dtype=np.int64))).shape[2:])
    if isinstance(forward[0], type):
        forward = (forward[0], str(forward[1]).replace(f"shape {shape}", words(sizes)))
    return outcome(lambda: layer.output_shape(*sizes)), forward


def conv_run(layer: Any, sizes: tuple[int, ...]) -> tuple[Outcome, Outcome]:
    """(output_shape's, the forward's per-sample shape) for one sample of the layer's channels: the same words."""
    x = np.ones((1, layer.in_channels, *sizes))
    return outcome(lambda: layer.output_shape(*sizes)), outcome(lambda: layer(x).shape[1:])


def sample_run(layer: Any, sizes: tuple[int, ...]) -> tuple[Outcome, Outcome]:
    """(output_shape's, the forward's per-sample shape) for ``sizes``, one sample's shape (channels first): the
    forward's words, said by ``output_shape`` of the sample (``Unfold`` gives the batch of one, as a convolution)."""
    x = np.ones((1, *sizes))
    forward = outcome(lambda: layer(x).shape[1:])
    if isinstance(forward[0], type):
        message = str(forward[1]).replace(f"{layer._who}:", f"{layer._who}.output_shape:", 1)
        if not isinstance(layer, md.Unfold):
            message = message.replace(f"shape {x.shape}", f"shape {sizes}")
        forward = (forward[0], message)
    return outcome(lambda: layer.output_shape(*sizes)), forward


def grid(rank: int) -> Iterable[tuple[int, ...]]:
    return itertools.product(SIZES, repeat=rank)


#: What the refusals say, by the phrase that tells one from another.
PHRASES = ("has no pixels", "has no positions", "has no channels", "is smaller than the window", "in ceil mode",
           "cover only padding", "is smaller than the kernel", "padding_mode=", "gives an empty output", "does not fit",
           "crops more than", "leaves no position", "reflects beyond", "wraps around", "divisible by",
           "positive multiple", "number of windows")


def agree(layers: Iterable[Any], run: Callable[[Any, tuple[int, ...]], tuple[Outcome, Outcome]],
          sizes: Callable[[Any], Iterable[tuple[int, ...]]]) -> dict[str, int]:
    """Assert output_shape's outcome is the forward's for every layer and sizes; count the acceptances and the
    refusals by exception type and phrase (:data:`PHRASES`), so that a test can say what its grid holds."""
    seen: dict[str, int] = {}
    for layer in layers:
        for size in sizes(layer):
            got, expected = run(layer, size)
            assert got == expected, (repr(layer), size)
            kind = "accepted"
            if isinstance(expected[0], type):
                phrase = next((p for p in PHRASES if p in str(expected[1])), "?")
                kind = f"{expected[0].__name__}: {phrase}"
            seen[kind] = seen.get(kind, 0) + 1
    return seen


def pool_settings(rank: int) -> Iterable[dict[str, Any]]:
    """Kernel, stride, padding (at most half the kernel), dilation and ceil_mode: every combination along one
    axis for a 1-D pool; for a 2-D pool each axis's own among a few of them."""
    if rank == 1:
        for k, s, d, ceil in itertools.product((1, 2, 3, 4), (1, 2, 3), (1, 2, 3), (False, True)):
            for p in range(k // 2 + 1):
                yield {"kernel_size": k, "stride": s, "padding": p, "dilation": d, "ceil_mode": ceil}
        return
    for (kh, kw), (sh, sw), (ph, pw), (dh, dw) in [
        ((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1), (1, 1)), ((3, 2), (1, 2), (1, 0), (1, 1)),
        ((2, 3), (3, 1), (1, 1), (2, 1)), ((3, 3), (2, 3), (1, 1), (3, 2)), ((4, 1), (2, 1), (2, 0), (1, 1)),
        ((1, 3), (1, 2), (0, 1), (1, 3)), ((5, 3), (4, 2), (2, 0), (1, 2)), ((4, 3), (1, 2), (1, 0), (1, 1)),
    ]:
        for ceil in (False, True):
            yield {"kernel_size": (kh, kw), "stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw),
                   "ceil_mode": ceil}


# ---------------------------------------------------------------------------------------------- the pools
@pytest.mark.parametrize("pool", [md.MaxPool1D, md.MaxPool2D, md.AvgPool1D, md.AvgPool2D], ids=lambda c: c.__name__)
def test_a_pool_s_output_shape_refuses_what_its_forward_refuses_and_else_gives_its_shape(pool: Any) -> None:
    rank, average = pool._rank, pool in (md.AvgPool1D, md.AvgPool2D)
    layers = []
    for settings in pool_settings(rank):
        if not average:
            layers.append(pool(**settings, return_indices=settings["ceil_mode"]))
        elif max(np.atleast_1d(settings.pop("dilation"))) == 1:  # (an average pool has no dilation)
            layers += [pool(**settings, count_include_pad=include) for include in (True, False)]
    seen = agree(layers, spatial_run, lambda layer: grid(rank))
    empty = "has no positions" if rank == 1 else "has no pixels"
    refusals = {empty, "is smaller than the window", "in ceil mode"} | (set() if average else {"cover only padding"})
    assert seen.keys() == {"accepted"} | {f"ShapeError: {phrase}" for phrase in refusals}, seen
    assert seen["accepted"] > 400, seen


def test_a_pool_s_refusals_name_the_sizes_where_the_forward_names_the_input_s_shape() -> None:
    pool = md.MaxPool2D(2)
    with pytest.raises(md.ShapeError) as refused:
        pool.output_shape(4, 1)
    assert str(refused.value) == ("MaxPool2D(k=2): input of 4 x 1 is smaller than the window (2, 2): expected "
                                  "H + 2*padding >= 2 and W + 2*padding >= 2, got 4 and 1")
    with pytest.raises(md.ShapeError) as forward:
        pool(np.ones((2, 3, 4, 1)))
    assert str(forward.value) == str(refused.value).replace("input of 4 x 1", "input of shape (2, 3, 4, 1)")
    with pytest.raises(md.ShapeError, match=r"^AvgPool1D\(k=2\): input of length 0 has no positions \(length 0\)$"):
        md.AvgPool1D(2).output_shape(0)
    with pytest.raises(md.ShapeError, match=r"^MaxPool2D\(k=3, stride=\(1, 1\), padding=\(1, 1\), ceil_mode=True\): "
                                            r"input of 5 x 0 "
                                            r"has no pixels \(height or width 0\)$"):
        md.MaxPool2D(3, 1, 1, ceil_mode=True).output_shape(5, 0)
    with pytest.raises(md.ShapeError, match=r"^MaxPool1D\(k=2, stride=1, padding=1, dilation=3\): input of length 2: "
                                            r"the windows of output position 0 cover only padding"):
        md.MaxPool1D(2, 1, 1, dilation=3).output_shape(2)
    assert md.MaxPool1D(2, 1, 1, dilation=3).output_shape(3) == (2,)


# ---------------------------------------------------------------------------------------------- Upsample
def test_upsample_s_output_shape_refuses_an_empty_input_as_its_forward() -> None:
    layers = [md.Upsample(scale_factor=2), md.Upsample(scale_factor=(1, 3), mode="bilinear"),
              md.Upsample(size=(3, 5)), md.Upsample(size=4, mode="bilinear", align_corners=True)]
    seen = agree(layers, spatial_run, lambda layer: grid(2))
    assert seen == {"accepted": 4 * 6 * 6, "ShapeError: has no pixels": 4 * (7 * 7 - 6 * 6)}
    with pytest.raises(md.ShapeError) as refused:
        md.Upsample(scale_factor=2).output_shape(4, 0)
    assert str(refused.value) == "Upsample(scale_factor=2, mode='nearest'): input of 4 x 0 has no pixels (height or " \
                                 "width 0)"


# ---------------------------------------------------------------------------------------------- adaptive pools
@pytest.mark.parametrize("adaptive", [md.AdaptiveAvgPool1D, md.AdaptiveMaxPool1D, md.AdaptiveAvgPool2D,
                                      md.AdaptiveMaxPool2D], ids=lambda c: c.__name__)
def test_an_adaptive_pool_s_output_shape_refuses_an_empty_input_as_its_forward(adaptive: Any) -> None:
    """Any other size is accepted (a window may be one position long, several windows may share it)."""
    rank = adaptive._rank
    sizes = [1, 3, 7] if rank == 1 else [1, (2, 5), (None, 3), (4, None)]
    seen = agree([adaptive(size) for size in sizes], spatial_run, lambda layer: grid(rank))
    empty = "has no positions (length 0)" if rank == 1 else "has no pixels (height or width 0)"
    assert seen == {"accepted": len(sizes) * 6 ** rank,
                    f"ShapeError: {empty.split(' (')[0]}": len(sizes) * (7 ** rank - 6 ** rank)}
    with pytest.raises(md.ShapeError) as refused:
        adaptive(2).output_shape(*(3,) * (rank - 1), 0)
    assert str(refused.value) == f"{adaptive.__name__}: input of {words((*(3,) * (rank - 1), 0))} {empty}"


# ---------------------------------------------------------------------------------------------- unpools
@pytest.mark.parametrize("unpool", [md.MaxUnpool1D, md.MaxUnpool2D], ids=lambda c: c.__name__)
def test_an_unpool_s_output_shape_refuses_what_its_forward_refuses(unpool: Any) -> None:
    rank = unpool._rank
    layers = [unpool(k, s, p) for k, s, p in itertools.product((1, 2, 3), (1, 2, 3), (0, 1, 2))]
    layers += [unpool(2, output_size=3), unpool(3, 2, 1, output_size=(5,) * rank), unpool(2, 3, output_size=4)]
    if rank == 2:
        layers += [unpool((2, 3), (1, 2), (1, 0)), unpool((3, 1), 2, (0, 1), output_size=(4, 2))]
    seen = agree(layers, unpool_run, lambda layer: grid(rank))
    empty = "has no positions" if rank == 1 else "has no pixels"
    assert seen.keys() == {"accepted", f"ShapeError: {empty}", "ShapeError: gives an empty output",
                           "ShapeError: does not fit"}, seen
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool2D\(k=2\): x of 0 x 3 has no pixels \(height or width 0\)$"):
        md.MaxUnpool2D(2).output_shape(0, 3)
    with pytest.raises(md.ShapeError, match=r"^MaxUnpool1D\(k=2, padding=1\): an input x of length 1 gives an empty "
                                            r"output: \(L - 1\)\*2 - 2\*1 \+ 2 = 0; use less padding, or set "
                                            r"output_size$"):
        md.MaxUnpool1D(2, padding=1).output_shape(1)


# ---------------------------------------------------------------------------------------------- paddings
def padding_layers(rank: int) -> list[Any]:
    """Every padding mode with paddings that pad, crop, or do both, along each axis."""
    sides = [(1, 2), (0, 0), (-1, 1), (2, -3), (-2, -2), (3, 0)]
    pads = sides if rank == 1 else [a + b for a, b in itertools.product(sides[:4], sides[2:])]
    constant = (md.ConstantPad1D, md.ConstantPad2D)[rank - 1]
    makers: list[Callable[[Any], Any]] = [lambda p: constant(p, 0.5), *(pair[rank - 1] for pair in [
        (md.ZeroPad1D, md.ZeroPad2D), (md.ReflectionPad1D, md.ReflectionPad2D),
        (md.ReplicationPad1D, md.ReplicationPad2D), (md.CircularPad1D, md.CircularPad2D)])]
    return [make(p) for make in makers for p in pads]


@pytest.mark.parametrize("rank", [1, 2])
def test_a_padding_s_output_shape_refuses_what_its_forward_refuses(rank: int) -> None:
    seen = agree(padding_layers(rank), spatial_run, lambda layer: grid(rank))
    empty = "has no positions" if rank == 1 else "has no pixels"
    assert seen.keys() == {"accepted", *(f"ShapeError: {phrase}" for phrase in (
        empty, "crops more than", "leaves no position", "reflects beyond", "wraps around"))}, seen
    with pytest.raises(md.ShapeError) as refused:
        md.ZeroPad2D(1).output_shape(3, 0)
    assert str(refused.value) == "ZeroPad2D(padding=(1, 1, 1, 1)): input of 3 x 0 has no pixels (height or width 0)"


# ---------------------------------------------------------------------------------------------- the others
@pytest.mark.parametrize("rank", [1, 2])
def test_a_convolution_s_output_shape_refuses_what_its_forward_refuses_word_for_word(rank: int) -> None:
    conv, transposed = (md.Conv1D, md.ConvTranspose1D) if rank == 1 else (md.Conv2D, md.ConvTranspose2D)
    layers: list[Any] = []
    for k, s, p, d in itertools.product((1, 2, 3), (1, 2), (0, 1, 2), (1, 2)):
        kernel: Any = k if rank == 1 else (k, 4 - k)
        for mode in ("zeros", "reflect", "circular", "replicate"):
            layers.append(conv(2, 3, kernel, s, p, dilation=d, padding_mode=mode, rng=0))
        for op in range(max(s, d)):
            layers.append(transposed(2, 3, kernel, s, p, op, dilation=d, rng=0))
    seen = agree(layers, conv_run, lambda layer: grid(rank))
    empty = "has no positions" if rank == 1 else "has no pixels"
    assert seen.keys() == {"accepted", *(f"ShapeError: {phrase}" for phrase in (
        empty, "is smaller than the kernel", "padding_mode=", "gives an empty output"))}, seen


def test_unfold_fold_and_the_pixel_shuffles_output_shape_refuse_what_their_forward_refuses() -> None:
    """They take the channels (Fold: the rows) as an argument: 0 channels, and a channel count a shuffle cannot
    take, among the sizes."""
    per_sample = [(c, h, w) for c in (0, 1, 4, 8) for h, w in grid(2)]
    settings: list[tuple[Any, ...]] = [(2, 1, 0, 1), (3, 2, 1, 2), ((2, 3), (1, 2), (1, 0), (2, 1))]
    layers = [md.Unfold(k, dilation=d, padding=p, stride=s) for k, d, p, s in settings]
    seen = agree(layers, sample_run, lambda layer: per_sample)
    assert seen.keys() == {"accepted", *(f"ShapeError: {phrase}" for phrase in (
        "has no channels", "has no pixels", "is smaller than the kernel"))}, seen
    shuffles = [md.PixelShuffle(1), md.PixelShuffle(2), md.PixelUnshuffle(2), md.PixelUnshuffle(3)]
    seen = agree(shuffles, sample_run, lambda layer: per_sample)
    assert seen.keys() == {"accepted", "ShapeError: divisible by"}, seen  # (empty axes: an empty output)
    folds = [md.Fold((4, 5), 2), md.Fold(3, (2, 1), stride=(1, 2), padding=(1, 0))]
    seen = agree(folds, sample_run, lambda fold: [(rows, length) for rows in (0, 1, 2, 4, 6) for length in range(13)])
    assert seen.keys() == {"accepted", "ShapeError: positive multiple", "ShapeError: number of windows"}, seen
