"""Upsample's settings set after construction: checked when set (the constructor's message, nothing changed when
refused), used by the next forward, while a backward uses its forward's settings whatever was set in between;
``scale_factor`` and ``size``: the last one set wins; ``align_corners`` only with ``"bilinear"``."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import Upsample
from minidl.testing import assert_gradients_ok

SETTINGS = ("scale_factor", "size", "mode", "align_corners")
SHAPES = [(2, 3, 4, 5), (1, 2, 3, 3)]

# (layer factory, changes set after a forward: (name, value) in order)
CASES: list[tuple[Callable[[], Upsample], tuple[tuple[str, Any], ...]]] = [
    (lambda: Upsample(2), (("scale_factor", 3),)),
    (lambda: Upsample(2), (("scale_factor", (1, 3)),)),
    (lambda: Upsample((2, 3)), (("scale_factor", 1),)),
    (lambda: Upsample(2), (("size", (7, 3)),)),
    (lambda: Upsample(size=(7, 3)), (("scale_factor", 2),)),
    (lambda: Upsample(size=(7, 3)), (("size", 6),)),
    (lambda: Upsample(2), (("mode", "bilinear"),)),
    (lambda: Upsample(2, "bilinear"), (("mode", "nearest"),)),
    (lambda: Upsample(size=(5, 9), mode="bilinear"), (("mode", "nearest"),)),
    (lambda: Upsample(2, "bilinear"), (("align_corners", True),)),
    (lambda: Upsample(3, "bilinear", align_corners=True), (("align_corners", False),)),
    (lambda: Upsample(3, "bilinear", align_corners=True), (("align_corners", None), ("mode", "nearest"))),
    (lambda: Upsample(2), (("mode", "bilinear"), ("align_corners", True), ("size", (3, 8)))),
    (lambda: Upsample(size=4, mode="bilinear", align_corners=False), (("scale_factor", (3, 2)),)),
]
IDS = [f"u{i}" for i in range(len(CASES))]


def settings(layer: Upsample) -> dict[str, Any]:
    return {name: getattr(layer, name) for name in SETTINGS}


def fresh(layer: Upsample) -> Upsample:
    """A new layer made with ``layer``'s current settings."""
    s = settings(layer)
    return Upsample(s["scale_factor"], s["mode"], s["align_corners"], size=s["size"])


def change(layer: Upsample, changes: tuple[tuple[str, Any], ...]) -> None:
    for name, value in changes:
        setattr(layer, name, value)


# ------------------------------------------------------------------ a backward uses its forward's settings
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_backward_uses_its_forwards_settings(make, changes, shape) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    plain, changed = make(), make()
    y = plain(x)
    assert np.array_equal(changed(x), y)
    change(changed, changes)  # between the forward and its backward
    g = rng.standard_normal(y.shape)
    assert np.array_equal(changed.backward(g), plain.backward(g))


@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_a_stale_grad_shape_is_checked_against_the_forwards_output(make, changes) -> None:
    layer = make()
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4))
    y = layer(x)
    change(layer, changes)
    next_shape = (1, 2, *layer.output_shape(3, 4))
    if next_shape != y.shape:  # the next forward's output shape is not this backward's
        with pytest.raises(md.ShapeError, match=r"\.backward: expected grad_output of shape "
                                                + str(y.shape).replace("(", r"\(").replace(")", r"\)")):
            layer.backward(np.ones(next_shape))
    assert layer.backward(np.ones(y.shape)).shape == x.shape


# ------------------------------------------------------------------ the next forward uses the new settings
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_next_forward_uses_the_new_settings(make, changes, shape, seed) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    layer = make()
    layer(x)
    change(layer, changes)
    new = fresh(layer)
    y, expected = layer(x), new(x)
    assert y.shape == expected.shape == (*shape[:2], *layer.output_shape(*shape[2:]))
    assert np.array_equal(y, expected)
    g = rng.standard_normal(y.shape)
    assert np.array_equal(layer.backward(g), new.backward(g))
    assert repr(layer) == repr(new) and layer._who == new._who


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_gradient_checker_after_a_change(make, changes, seed) -> None:
    layer = make()
    x = np.random.default_rng(seed).standard_normal((2, 2, 3, 4))
    layer(x)
    change(layer, changes)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert [(r.name, r.checked, r.failed) for r in report.results] == [("input", x.size, 0)]


@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_against_pytorch_after_a_change(make, changes) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for shape in SHAPES:
        x = rng.standard_normal(shape)
        layer = make()
        layer(x)
        change(layer, changes)
        s = settings(layer)
        options = {"scale_factor": s["scale_factor"]} if s["size"] is None else {"size": s["size"]}
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.Upsample(mode=s["mode"], align_corners=s["align_corners"], **options)(xt)
        functional = torch.nn.functional.interpolate(torch.tensor(x), mode=s["mode"],
                                                     align_corners=s["align_corners"], **options)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(torch.tensor(g))
        y = layer(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y, functional.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_after_changes() -> None:
    layer = Upsample(2)
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer(x)
    layer.mode, layer.align_corners, layer.size = "bilinear", True, (7, 9)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (2, 3, 7, 9)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# ------------------------------------------------------------------ scale_factor or size: the last one set wins
def test_the_last_of_scale_factor_and_size_set_wins() -> None:
    layer = Upsample(2)
    layer.size = (5, 7)
    assert (layer.scale_factor, layer.size) == (None, (5, 7)) and layer.output_shape(2, 3) == (5, 7)
    assert repr(layer) == "Upsample(size=(5, 7), mode='nearest')"
    layer.scale_factor = None  # already None: nothing changes
    assert (layer.scale_factor, layer.size) == (None, (5, 7))
    layer.scale_factor = (2, 3)
    assert (layer.scale_factor, layer.size) == ((2, 3), None) and layer.output_shape(2, 3) == (4, 9)
    assert layer._who == "Upsample(scale_factor=(2, 3), mode='nearest')"
    layer.size = None  # already None
    assert (layer.scale_factor, layer.size) == ((2, 3), None)


@pytest.mark.parametrize("make, name, other", [
    (lambda: Upsample(2), "scale_factor", "size"),
    (lambda: Upsample(size=(4, 6), mode="bilinear"), "size", "scale_factor"),
])
def test_the_one_set_cannot_become_none(make, name, other) -> None:
    layer = make()
    with pytest.raises(ValueError) as refused:
        setattr(layer, name, None)
    with pytest.raises(ValueError) as made:
        Upsample()
    assert str(refused.value) == (f"{made.value}: set {other} to a value instead (setting one of them makes the "
                                  "other None)")


# ------------------------------------------------------------------ refusals leave the layer as it was
REFUSED: list[tuple[Callable[[], Upsample], str, Any, type[Exception], str]] = [
    (lambda: Upsample(2), "scale_factor", "2", ValueError, "scale_factor must be an int >= 1 or a pair of them"),
    (lambda: Upsample(2), "scale_factor", 0, ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", -2, ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", True, ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", 2.0, ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", 1.5, ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", (2, 0), ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", (1, 2, 3), ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(size=5), "scale_factor", (2, 1.5), ValueError, "scale_factor must be an int >= 1"),
    (lambda: Upsample(2), "scale_factor", None, ValueError, "give either scale_factor or size"),
    (lambda: Upsample(2), "size", 0, ValueError, "size must be an int >= 1 or a pair of them"),
    (lambda: Upsample(2), "size", (4, -1), ValueError, "size must be an int >= 1"),
    (lambda: Upsample(2), "size", False, ValueError, "size must be an int >= 1"),
    (lambda: Upsample(2), "size", 2.5, ValueError, "size must be an int >= 1"),
    (lambda: Upsample(size=(3, 4)), "size", "4", ValueError, "size must be an int >= 1"),
    (lambda: Upsample(size=(3, 4)), "size", None, ValueError, "give either scale_factor or size"),
    (lambda: Upsample(2), "mode", "bicubic", ValueError, r"mode must be one of \('nearest', 'bilinear'\)"),
    (lambda: Upsample(2), "mode", "Bilinear", ValueError, "mode must be one of"),
    (lambda: Upsample(2, "bilinear"), "mode", None, ValueError, "mode must be one of"),
    (lambda: Upsample(2, "bilinear"), "mode", 1, ValueError, "mode must be one of"),
    (lambda: Upsample(2, "bilinear", align_corners=True), "mode", "nearest", ValueError,
     r"align_corners can only be set with mode='bilinear' \(as PyTorch\), got align_corners=True with "
     r"mode='nearest': set align_corners = None first"),
    (lambda: Upsample(size=4, mode="bilinear", align_corners=False), "mode", "nearest", ValueError,
     "got align_corners=False with mode='nearest': set align_corners = None first"),
    (lambda: Upsample(2), "align_corners", True, ValueError,
     "got align_corners=True with mode='nearest': set mode = 'bilinear' first"),
    (lambda: Upsample(size=(2, 3)), "align_corners", False, ValueError, "set mode = 'bilinear' first"),
    (lambda: Upsample(2, "bilinear"), "align_corners", "no", TypeError, "align_corners must be True or False"),
    (lambda: Upsample(2, "bilinear", align_corners=True), "align_corners", 0, TypeError,
     "align_corners must be True or False, got 0"),
]


@pytest.mark.parametrize("make, name, bad, error, words", REFUSED)
def test_bad_settings_are_refused_and_change_nothing(make, name, bad, error, words) -> None:
    layer = make()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 3, 4))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    before = (settings(layer), repr(layer), layer._who, layer.output_shape(3, 4))
    with pytest.raises(error, match=words) as refused:
        setattr(layer, name, bad)
    assert type(refused.value) is error and str(refused.value).startswith("Upsample: ")
    assert (settings(layer), repr(layer), layer._who, layer.output_shape(3, 4)) == before
    reference = fresh(layer)
    reference(x)
    assert np.array_equal(layer.backward(g), reference.backward(g))  # the forward's cache is intact
    assert np.array_equal(layer(x), y)  # and the next forward is as before
    assert np.array_equal(layer.backward(g), reference.backward(g))


@pytest.mark.parametrize("name, bad, kwargs", [
    ("scale_factor", 0, {}),
    ("scale_factor", 2.0, {}),
    ("scale_factor", True, {}),
    ("size", (3, 0), {"scale_factor": None}),
    ("mode", "bicubic", {}),
    ("align_corners", "no", {"mode": "bilinear"}),
])
def test_constructor_gives_the_same_message(name, bad, kwargs) -> None:
    args = {"scale_factor": 2, **kwargs, name: bad}
    with pytest.raises((ValueError, TypeError)) as made:
        Upsample(args.pop("scale_factor"), **args)
    layer = Upsample(2, **{k: v for k, v in kwargs.items() if k != "scale_factor"})
    with pytest.raises(type(made.value)) as set_later:
        setattr(layer, name, bad)
    assert str(set_later.value) == str(made.value)


def test_constructor_says_what_to_do_with_align_corners_and_nearest() -> None:
    with pytest.raises(ValueError, match=r"^Upsample: align_corners can only be set with mode='bilinear' \(as "
                                         r"PyTorch\), got align_corners=False with mode='nearest': leave "
                                         r"align_corners None for nearest$"):
        Upsample(2, align_corners=False)


def test_settings_are_kept_normalised() -> None:
    layer = Upsample(2)
    layer.scale_factor = np.int64(3)
    assert layer.scale_factor == (3, 3) and all(type(v) is int for v in layer.scale_factor)
    layer.size = [np.int32(4), 6]
    assert layer.size == (4, 6) and all(type(v) is int for v in layer.size)
    layer.mode = "bilinear"
    layer.align_corners = np.bool_(True)
    assert layer.align_corners is True
    assert repr(layer) == "Upsample(size=(4, 6), mode='bilinear', align_corners=True)"
    layer.align_corners = None
    layer.mode = "nearest"
    assert repr(layer) == "Upsample(size=(4, 6), mode='nearest')"


# ------------------------------------------------------------------ copies, pickles, state
@pytest.mark.parametrize("make, changes", CASES, ids=IDS)
def test_deepcopy_and_pickle_keep_the_settings_and_the_forward(make, changes) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 3, 4))
    layer = make()
    y = layer(x)
    change(layer, changes)  # after the forward: the copies keep both
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert settings(twin) == settings(layer) and repr(twin) == repr(layer)
        assert np.array_equal(twin.backward(g), dx)  # the forward's settings, copied
        assert np.array_equal(twin(x), fresh(layer)(x))
        twin.scale_factor = 5  # settable, and independent of the original
        assert twin.output_shape(1, 1) == (5, 5) and layer.scale_factor != (5, 5)
    assert layer.state_dict() == {} and layer.load_state_dict({}) == md.LoadResult([], [])  # (as PyTorch's:
    # the settings are the constructor's arguments, not state)


def test_a_layer_pickled_before_the_settings_were_properties_still_loads() -> None:
    """Its settings were public attributes and the forward kept only its weights (None by blocks)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 2, 3, 4))
    for make in (lambda: Upsample(2), lambda: Upsample(size=(5, 7), mode="bilinear", align_corners=True),
                 lambda: Upsample(size=(2, 9))):
        layer = make()
        y = layer(x)
        new_names = {"_used", *("_" + name for name in SETTINGS)}
        state = {k: v for k, v in layer.__dict__.items() if k not in new_names}
        assert layer._used is not None
        weights = layer._used[3:]
        state.update(settings(layer), _weights=None if weights[0] is None else weights)
        old = Upsample.__new__(Upsample)
        old.__setstate__(state)
        assert settings(old) == settings(layer) and repr(old) == repr(layer)
        g = rng.standard_normal(y.shape)
        assert np.array_equal(old.backward(g), layer.backward(g))
        assert np.array_equal(old(x), y)
        unused = Upsample.__new__(Upsample)
        unused.__setstate__({**state, "_shape": None, "_weights": None})
        with pytest.raises(md.BackwardBeforeForwardError):
            unused.backward(g)
