"""Flatten(start_dim, end_dim), as PyTorch's nn.Flatten: values against NumPy's reshape (by hand and
hypothesis), views, empty axes, the gradient checker (alone and in models that merge the batch axis and
split it again), Unflatten as its inverse, refusals and their messages, the settings' checks, repr,
pickles of the earlier Flatten, and PyTorch's nn.Flatten when it is installed."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_gradients_ok


def expected_shape(shape: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    """The output shape, written independently of the layer: axes s..e (resolved) become one."""
    s, e = start % len(shape), end % len(shape)
    return (*shape[:s], int(np.prod(shape[s:e + 1], dtype=np.int64)), *shape[e + 1:])


# (input shape, start_dim, end_dim, output shape)
CASES = [
    ((2, 3, 4, 5), 1, -1, (2, 60)),
    ((2, 3, 4, 5), 2, -1, (2, 3, 20)),         # attention over pixels: (N, C, H*W)
    ((2, 3, 4, 5), 0, -1, (120,)),             # the batch too
    ((2, 3, 4, 5), 0, 1, (6, 4, 5)),           # batch and time merged: (N*T, ...)
    ((2, 3, 4, 5), 1, 2, (2, 12, 5)),
    ((2, 3, 4, 5), -3, -2, (2, 12, 5)),
    ((2, 3, 4, 5), 1, -2, (2, 12, 5)),
    ((2, 3, 4, 5), -2, 3, (2, 3, 20)),         # start from the end, end from the start
    ((2, 3, 4, 5), 3, 3, (2, 3, 4, 5)),        # one axis: nothing merged
    ((2, 3, 4, 5), -4, 0, (2, 3, 4, 5)),
    ((6,), 0, -1, (6,)),
    ((6,), 0, 0, (6,)),
    ((2, 3), 0, -1, (6,)),
]


@pytest.mark.parametrize("shape, start, end, out", CASES)
def test_values_and_gradient_are_numpys_reshape(shape: tuple[int, ...], start: int, end: int,
                                                out: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    layer = md.Flatten(start, end)
    y = layer(x)
    assert y.shape == out == expected_shape(shape, start, end)
    np.testing.assert_array_equal(y, x.reshape(out))
    g = np.random.default_rng(1).normal(size=out)
    dx = layer.backward(g)
    assert dx.shape == shape
    np.testing.assert_array_equal(dx, g.reshape(shape))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=5).map(tuple), data=st.data())
def test_any_shape_and_dims_against_numpy_and_unflatten_inverts_it(shape: tuple[int, ...],
                                                                   data: st.DataObject) -> None:
    """Every valid (start_dim, end_dim), either counted from either end, on shapes with empty axes too; and
    Unflatten(s, the merged sizes) gives x back (forward and backward)."""
    ndim = len(shape)
    s = data.draw(st.integers(0, ndim - 1))
    e = data.draw(st.integers(s, ndim - 1))
    start = data.draw(st.sampled_from([s, s - ndim]))
    end = data.draw(st.sampled_from([e, e - ndim]))
    x = np.arange(math.prod(shape), dtype=float).reshape(shape)
    layer = md.Flatten(start, end)
    y = layer(x)
    out = (*shape[:s], math.prod(shape[s:e + 1]), *shape[e + 1:])
    assert y.shape == out
    np.testing.assert_array_equal(y.ravel(), x.ravel())  # C order: the same elements in the same order
    assert layer.backward(np.ones(out)).shape == shape
    if 0 not in shape[s:e + 1]:  # (Unflatten's sizes are >= 1)
        back = md.Sequential(md.Flatten(start, end), md.Unflatten(s, shape[s:e + 1]))
        np.testing.assert_array_equal(back(x), x)
        np.testing.assert_array_equal(back.backward(x), x)


@pytest.mark.parametrize("shape, start, end, seed", [
    ((3, 2, 4), 2, -1, 0), ((2, 3, 2, 2), 0, 1, 1), ((2, 3, 2, 2), 0, -1, 2), ((2, 3, 2, 2), -3, -2, 3),
    ((4, 5), 0, 1, 4), ((2, 2, 3), 1, 1, 5), ((2, 3, 2, 2), 1, 2, 6),
])
def test_gradient_checker(shape: tuple[int, ...], start: int, end: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(md.Flatten(start, end), inputs=x, seed=seed)
    assert report["input"].checked == x.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_model_merges_the_batch_with_time_and_splits_it_again(seed: int) -> None:
    """(N, T, E) -> Flatten(0, 1) -> (N*T, E) -> Dense, BatchNorm1d over the N*T rows -> Unflatten(0, (-1, T))
    -> (N, T, H): every tensor checked, and fit/predict run on it with uneven batches."""
    T = 3
    model = md.Sequential(md.Flatten(0, 1), md.Dense(4, 5, rng=seed), md.BatchNorm1d(5), md.Tanh(),
                          md.Unflatten(0, (-1, T)), md.Flatten(), md.Dense(5 * T, 2, rng=seed + 1))
    x = np.random.default_rng(seed).normal(size=(4, T, 4))
    report = assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 1, 1, 0]),
                                 seed=seed)
    assert report["input"].checked == x.size and report.passed
    rng = np.random.default_rng(seed + 10)
    data, labels = rng.normal(size=(10, T, 4)), rng.integers(0, 2, size=10)
    history = md.fit(model, data, labels, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), 0.1),
                     epochs=2, batch_size=4, rng=seed, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert md.predict(model, data, batch_size=3).shape == (10, 2)


def test_flatten_pixels_for_a_layer_on_the_last_axis() -> None:
    """Conv2D (N, C, H, W) -> Flatten(2) (N, C, H*W) -> Dense over the pixels -> Flatten -> Dense."""
    model = md.Sequential(md.Conv2D(2, 3, 3, padding=1, rng=0), md.Flatten(2), md.Dense(16, 2, rng=1), md.Tanh(),
                          md.Flatten(), md.Dense(6, 2, rng=2))
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 4))
    report = assert_gradients_ok(model, inputs=x, seed=0)
    assert report["input"].checked == x.size
    assert str(md.summarize(model, (2, 4, 4))).count("(None, 3, 16)") == 1


def test_a_model_without_the_batch_axis_is_refused_by_fit_and_predict() -> None:
    """Flatten(0) at the end leaves no row per sample: the training functions say so (not Flatten)."""
    model = md.Sequential(md.Flatten(0, 1), md.Dense(4, 2, rng=0))
    x = np.random.default_rng(0).normal(size=(10, 3, 4))
    with pytest.raises(md.ShapeError, match=r"predict: the model's output must have one row per sample; a batch "
                                            r"of 4 gave an output of shape \(12, 2\)"):
        md.predict(model, x, batch_size=4)
    with pytest.raises(md.ShapeError, match=r"MSELoss: y_pred has shape \(12, 2\) but y_true has shape \(4, 2\)"):
        md.fit(model, x, np.zeros((10, 2)), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), 0.1),
               batch_size=4, verbose=0)


def test_views_empty_axes_and_dtypes() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    for start, end in [(1, -1), (2, -1), (0, 1), (0, -1)]:
        y = md.Flatten(start, end)(x)
        assert y.dtype == np.float32 and np.shares_memory(y, x)  # a view, no copy
    for t in (x.transpose(0, 2, 1, 3), x[..., ::2]):  # not contiguous: some reshapes view, others copy
        for start, end in [(0, 1), (1, 2), (2, 3), (0, 2), (1, -1)]:
            y = md.Flatten(start, end)(t)
            np.testing.assert_array_equal(y, t.reshape(expected_shape(t.shape, start, end)))
            assert np.shares_memory(y, t) == np.shares_memory(t.reshape(expected_shape(t.shape, start, end)), t)
    strided = x[..., ::2]  # strides (240, 80, 20, 8) bytes
    assert np.shares_memory(md.Flatten(0, 2)(strided), strided)  # axes 0..2 still one stride apart: a view
    assert not np.shares_memory(md.Flatten(2, 3)(strided), strided)  # (4, 3) with strides (20, 8): a copy
    big = x.astype(">f4")  # (read from a file): a native output, as the other layers give
    assert md.Flatten(2)(big).dtype == np.dtype("float32") and md.Flatten(2)(big).dtype.isnative
    for shape, start, end, out in [((0, 3, 4), 2, -1, (0, 3, 4)), ((0, 3, 4), 0, 1, (0, 4)), ((0, 3), 0, -1, (0,)),
                                   ((2, 0, 3), 1, -1, (2, 0)), ((2, 0, 3), 0, 1, (0, 3)), ((0, 2, 3), 1, 2, (0, 6))]:
        layer = md.Flatten(start, end)
        assert layer(np.zeros(shape)).shape == out  # (a -1 reshape would be ambiguous here)
        assert layer.backward(np.zeros(out)).shape == shape
    with pytest.raises(md.DTypeError, match="Flatten: expected a floating-point input, got dtype int64"):
        md.Flatten(0)(np.zeros((2, 3), dtype=np.int64))


def test_refusals_name_the_layer_the_dims_and_the_shape() -> None:
    with pytest.raises(md.ShapeError, match=r"^Flatten: expected an input of shape \(N, d1, ...\) with at least 2 "
                                            r"dimensions, got shape \(3,\)$"):
        md.Flatten()(np.zeros(3))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=2\): flattening axes start_dim=2 to end_dim=-1 "
                                            r"needs an input with at least 3 dimensions, got shape \(2, 3\)$"):
        md.Flatten(2)(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=0\): flattening axes start_dim=0 to end_dim=-1 "
                                            r"needs an input with at least 1 dimension, got shape \(\)$"):
        md.Flatten(0)(np.zeros(()))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=-5\): .* needs an input with at least 5 "
                                            r"dimensions, got shape \(2, 3, 4, 5\)$"):
        md.Flatten(-5)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=-2, end_dim=1\): flattening axes start_dim=-2 to "
                                            r"end_dim=1 needs an input with 2 to 3 dimensions, got shape "
                                            r"\(2, 3, 4, 5\): start_dim -2 is axis 2 there, after end_dim 1, axis 1$"):
        md.Flatten(-2, 1)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=2, end_dim=-3\): .* needs an input with at least 5 "
                                            r"dimensions, got shape \(2, 3, 4, 5\): start_dim 2 is axis 2 there, "
                                            r"after end_dim -3, axis 1$"):
        md.Flatten(2, -3)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(md.ShapeError, match=r"needs an input with 2 dimensions, got shape \(2, 3, 4\)"):
        md.Flatten(-2, 0)(np.zeros((2, 3, 4)))  # (axes -2 and 0 are in order on 2-D inputs only)
    layer = md.Flatten(2)
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.zeros((2, 3, 20)))
    layer(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(md.ShapeError, match=r"^Flatten\(start_dim=2\)\.backward: expected grad_output of shape "
                                            r"\(2, 3, 20\), got \(2, 60\)"):
        layer.backward(np.zeros((2, 60), np.float32))
    with pytest.raises(md.DTypeError, match=r"^Flatten\(start_dim=2\)\.backward: expected grad_output of dtype "
                                            r"float32, got float64"):
        layer.backward(np.zeros((2, 3, 20)))
    with pytest.raises(md.DTypeError, match=r"Flatten\(start_dim=2\)\.backward: expected grad_output as a numpy "
                                            r"array, got list"):
        layer.backward([[0.0]])  # type: ignore[arg-type]
    assert layer.backward(np.ones((2, 3, 20), np.float32)).shape == (2, 3, 4, 5)  # the refusals kept the cache


def test_settings_are_checked_when_made_and_when_set() -> None:
    for bad in (1.0, True, np.bool_(False), "1", None):
        with pytest.raises(TypeError, match=rf"^Flatten: start_dim must be an int, got {bad!r}$"):
            md.Flatten(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=rf"^Flatten: end_dim must be an int, got {bad!r}$"):
            md.Flatten(1, bad)  # type: ignore[arg-type]
    for start, end, side in [(3, 1, "start"), (-1, -2, "end"), (1, 0, "start")]:
        with pytest.raises(ValueError, match=rf"^Flatten: start_dim {start} comes after end_dim {end} \(both counted "
                                             rf"from the {side}\): no input has axes from start_dim to end_dim$"):
            md.Flatten(start, end)
    layer = md.Flatten(np.int64(2), end_dim=np.int32(-1))
    assert (layer.start_dim, layer.end_dim) == (2, -1) and type(layer.start_dim) is int
    layer(np.zeros((2, 3, 4)))
    for name in ("start_dim", "end_dim"):
        with pytest.raises(TypeError, match=rf"^Flatten: {name} must be an int, got 0\.5$"):
            setattr(layer, name, 0.5)
    assert (layer.start_dim, layer.end_dim) == (2, -1) and repr(layer) == "Flatten(start_dim=2)"
    with pytest.raises(TypeError):  # __init__ run again on a built layer with a bad value: left as it was
        layer.__init__(0, False)  # type: ignore[misc]
    with pytest.raises(ValueError):
        layer.__init__(2, 0)  # type: ignore[misc]
    assert (layer.start_dim, layer.end_dim) == (2, -1) and layer.backward(np.zeros((2, 3, 4))).shape == (2, 3, 4)
    layer.start_dim = 0  # set between a forward and its backward: the backward is its forward's
    assert layer.backward(np.ones((2, 3, 4))).shape == (2, 3, 4)
    assert layer(np.zeros((2, 3, 4))).shape == (24,)  # the next forward takes it
    layer.end_dim = 0
    assert layer(np.zeros((2, 3, 4))).shape == (2, 3, 4) and repr(layer) == "Flatten(start_dim=0, end_dim=0)"
    layer.start_dim = 1  # one at a time: a pair no input takes is refused by the forward
    with pytest.raises(md.ShapeError, match=r"^Flatten\(end_dim=0\): start_dim 1 comes after end_dim 0 \(both counted "
                                            r"from the start\): no input has axes from start_dim to end_dim; got "
                                            r"shape \(2, 3, 4\)$"):
        layer(np.zeros((2, 3, 4)))


def test_repr_shows_the_dims_that_are_not_the_defaults() -> None:
    assert repr(md.Flatten()) == repr(md.Flatten(1, -1)) == "Flatten()"
    assert repr(md.Flatten(2)) == "Flatten(start_dim=2)"
    assert repr(md.Flatten(end_dim=2)) == "Flatten(end_dim=2)"
    assert repr(md.Flatten(0, 1)) == "Flatten(start_dim=0, end_dim=1)"
    assert repr(md.Sequential(md.Flatten(-3, -2))).count("Flatten(start_dim=-3, end_dim=-2)") == 1


def old_flatten(shape: tuple[int, ...] | None) -> md.Flatten:
    """A Flatten as the code before start_dim/end_dim pickled it: no ``_start_dim``, ``_end_dim`` nor ``_out``;
    ``_shape`` the last forward's input shape (None before any)."""
    layer = md.Flatten()
    state = {k: v for k, v in layer.__dict__.items() if k not in ("_start_dim", "_end_dim", "_out")}
    state["_shape"] = shape
    state["_dtype"] = None if shape is None else np.dtype(np.float64)
    old = md.Flatten.__new__(md.Flatten)
    old.__dict__.update(state)
    return old


def test_a_flatten_pickled_before_the_dims_loads_as_the_default() -> None:
    fresh = pickle.loads(pickle.dumps(old_flatten(None)))
    assert (fresh.start_dim, fresh.end_dim) == (1, -1) and repr(fresh) == "Flatten()"
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.testing.assert_array_equal(fresh(x), x.reshape(2, 12))
    mid = pickle.loads(pickle.dumps(old_flatten((2, 3, 4))))  # pickled between a forward and its backward
    np.testing.assert_array_equal(mid.backward(np.ones((2, 12))), np.ones((2, 3, 4)))
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 12\)"):
        mid.backward(np.ones((2, 3, 4)))
    model = md.Sequential(md.Dense(4, 6, rng=0), md.Unflatten(1, (2, 3)), md.Flatten(), md.Dense(6, 2, rng=1))
    model._layers["2"] = old_flatten(None)  # (as an old model held it)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.state_dict().keys() == model.state_dict().keys()
    assert_gradients_ok(restored, inputs=np.random.default_rng(1).normal(size=(3, 4)), seed=1)


def test_pickle_deepcopy_and_state_dict_keep_the_dims() -> None:
    layer = md.Flatten(-3, 2)
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    y = layer(x)
    for twin in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert (twin.start_dim, twin.end_dim) == (-3, 2) and repr(twin) == "Flatten(start_dim=-3, end_dim=2)"
        np.testing.assert_array_equal(twin.backward(np.ones_like(y)), np.ones_like(x))  # its forward's cache
        np.testing.assert_array_equal(twin(x), y)
    assert layer.state_dict() == {}  # the dims are the architecture, not state: as in PyTorch
    layer.load_state_dict({})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_against_torch_if_installed(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for shape, start, end, _ in [*CASES, ((0, 3, 4), 0, 1, None), ((2, 0, 3), 1, -1, None)]:
        x = rng.normal(size=shape).astype(dtype)
        ours = md.Flatten(start, end)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.Flatten(start, end)(xt)
        y = ours(x)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        assert y.shape == tuple(yt.shape) and y.dtype == x.dtype
        g = rng.normal(size=y.shape).astype(dtype)
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(ours.backward(g), xt.grad.numpy())
    for start, end, shape in [(2, -1, (2, 3)), (-2, 1, (2, 3, 4, 5)), (0, -1, ())]:
        refused = False
        try:
            torch.nn.Flatten(start, end)(torch.zeros(shape))
        except (IndexError, RuntimeError):
            refused = True
        with pytest.raises(md.ShapeError):
            md.Flatten(start, end)(np.zeros(shape))
        assert refused or shape == ()  # (PyTorch flattens a 0-d tensor to (1,); minidl refuses it)


def test_a_subclass_is_named_by_its_own_name_in_every_message() -> None:
    class MyFlat(md.Flatten):
        pass

    with pytest.raises(md.DTypeError, match=r"^MyFlat: expected a floating-point input"):
        MyFlat(2)(np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(md.ShapeError, match=r"^MyFlat\(start_dim=2\): flattening axes"):
        MyFlat(2)(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match=r"^MyFlat: expected an input of shape \(N, d1, \.\.\.\)"):
        MyFlat()(np.zeros(3))


def test_the_forward_keeps_its_shapes_as_plain_attributes() -> None:
    """The forward writes its two shapes past Layer.__setattr__ (the hot path): they are still plain
    attributes, pickled and copied with the layer, and nothing is registered."""
    layer = md.Flatten(2)
    layer(np.zeros((2, 3, 4, 5)))
    assert (layer._shape, layer._out) == ((2, 3, 4, 5), (2, 3, 20))
    assert layer.state_dict() == {} and list(layer.named_parameters()) == []
    again = pickle.loads(pickle.dumps(layer))
    assert again.backward(np.ones((2, 3, 20))).shape == (2, 3, 4, 5)
