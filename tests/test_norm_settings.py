"""The normalisation layers' settings after construction: each checked when set, with the constructor's check
and message, a refusal changing nothing; a good value used by the next forward, while a backward uses its
forward's; the sizes a layer was built for and ``affine`` fixed; ``track_running_stats`` switched off (and
on again) on a layer built with running statistics; pickles of the time these were plain attributes."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

Make = Callable[[], Any]

#: a layer of each kind, with an input for it
LAYERS: dict[str, tuple[Make, tuple[int, ...]]] = {
    "BatchNorm1d": (lambda: md.BatchNorm1d(3), (5, 3)),
    "BatchNorm1d-3d": (lambda: md.BatchNorm1d(3), (4, 3, 6)),
    "BatchNorm2d": (lambda: md.BatchNorm2d(3), (4, 3, 3, 2)),
    "InstanceNorm2d": (lambda: md.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 3)),
    "LayerNorm": (lambda: md.LayerNorm((3, 4)), (2, 3, 4)),
    "GroupNorm": (lambda: md.GroupNorm(2, 4), (3, 4, 5)),
}
RUNNING = ["BatchNorm1d", "BatchNorm2d", "InstanceNorm2d"]


def build(kind: str, seed: int = 0, dtype: Any = np.float64) -> tuple[Any, np.ndarray]:
    """The layer ``kind`` with random gamma/beta and running statistics (every term matters), and an input."""
    make, shape = LAYERS[kind]
    layer = make().astype(dtype)
    rng = np.random.default_rng(seed)
    for param in layer.parameters():
        param.data = rng.normal(size=param.shape).astype(dtype)
    if getattr(layer, "track_running_stats", False):
        layer.running_mean = rng.normal(size=layer.running_mean.shape).astype(dtype)
        layer.running_var = rng.uniform(0.5, 2.0, size=layer.running_var.shape).astype(dtype)
    return layer, rng.normal(loc=0.5, scale=1.5, size=shape).astype(dtype)


def expected(layer: Any, x: np.ndarray, eps: float, groups: int | None = None, batch: bool | None = None) -> np.ndarray:
    """The layer's output for ``x`` with ``eps`` (and GroupNorm's ``groups``) from the definitions, in float64.
    ``batch``: whether batch (instance) statistics normalise, for the running norms."""
    x = x.astype(np.float64)
    C = x.shape[1]
    channel = (1, C) + (1,) * (x.ndim - 2)
    if isinstance(layer, md.LayerNorm):
        axes = tuple(range(x.ndim - len(layer.normalized_shape), x.ndim))
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        shape = layer.normalized_shape
    elif isinstance(layer, md.GroupNorm):
        G = layer.num_groups if groups is None else groups
        x3 = x.reshape(x.shape[0], G, -1)
        mean = np.broadcast_to(x3.mean(axis=2, keepdims=True), x3.shape).reshape(x.shape)
        var = np.broadcast_to(x3.var(axis=2, keepdims=True), x3.shape).reshape(x.shape)
        shape = channel
    else:
        shape = channel
        if batch:
            axes = (2, 3) if isinstance(layer, md.InstanceNorm2d) else (0, *range(2, x.ndim))
            mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        else:
            mean, var = layer.running_mean.reshape(channel), layer.running_var.reshape(channel)
    y = (x - mean) / np.sqrt(var + eps)
    if getattr(layer, "affine", getattr(layer, "elementwise_affine", False)):
        y = y * layer.gamma.data.reshape(shape) + layer.beta.data.reshape(shape)
    return y


def unchanged(layer: Any) -> bytes:
    """The layer's whole state, for "a refusal changes nothing" (every attribute, parameter and buffer)."""
    return pickle.dumps(layer)


# ---------------------------------------------------------------------------------------------- eps
@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("training", [True, False])
def test_eps_set_later_is_used_by_the_next_forward_and_its_gradient(kind: str, training: bool) -> None:
    layer, x = build(kind)
    layer.train(training)
    layer.eps = np.float64(0.7)
    assert layer.eps == 0.7 and type(layer.eps) is float and "eps=0.7" in repr(layer)
    np.testing.assert_allclose(layer(x), expected(layer, x, 0.7, batch=training), rtol=1e-12, atol=1e-12)
    for seed in (0, 1):  # (the checker restores the running statistics after each of its forwards)
        assert_gradients_ok(layer, inputs=x, seed=seed)


@pytest.mark.parametrize("kind", ["BatchNorm2d", "InstanceNorm2d", "LayerNorm", "GroupNorm"])
def test_eps_set_later_keeps_float32(kind: str) -> None:
    layer, x = build(kind, dtype=np.float32)
    layer.eps = 0.25
    y = layer(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected(layer, x, 0.25, batch=True), rtol=2e-5, atol=2e-5)
    assert layer.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("bad, error, message", [
    (-1, ValueError, "eps must be positive and finite, got -1"),
    (0.0, ValueError, "eps must be positive and finite, got 0.0"),
    (float("nan"), ValueError, "eps must be positive and finite, got nan"),
    (float("inf"), ValueError, "eps must be positive and finite, got inf"),
    ("1e-5", TypeError, "eps must be a number, got '1e-5'"),
    (True, TypeError, "eps must be a number, got True"),
    (None, TypeError, "eps must be a number, got None"),
])
def test_a_bad_eps_is_refused_as_the_constructor_refuses_it_and_changes_nothing(kind: str, bad: Any, error: type,
                                                                                 message: str) -> None:
    layer, x = build(kind)
    name = type(layer).__name__
    with pytest.raises(error) as made:
        type(layer)(*([2, 4] if name == "GroupNorm" else [3]), eps=bad)
    assert str(made.value) == f"{name}: {message}"  # the constructor's message, word for word
    before = unchanged(layer)
    with pytest.raises(error) as info:
        layer.eps = bad
    assert str(info.value) == f"{name}: {message}"
    assert unchanged(layer) == before and layer.eps == 1e-5
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("training", [True, False])
def test_eps_set_between_forward_and_backward_leaves_the_backward_of_the_forward(kind: str, training: bool) -> None:
    layer, x = build(kind)
    twin = pickle.loads(pickle.dumps(layer))
    layer.train(training), twin.train(training)
    g = np.random.default_rng(7).normal(size=x.shape)
    y = layer(x)
    np.testing.assert_array_equal(twin(x), y)
    layer.eps = 0.9  # after the forward: the backward is that of the forward's eps
    np.testing.assert_allclose(layer.backward(g), twin.backward(g), rtol=1e-14, atol=1e-14)
    for mine, theirs in zip(layer.parameters(), twin.parameters(), strict=True):
        np.testing.assert_allclose(mine.grad, theirs.grad, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- the sizes a layer is built for
FIXED_SIZES = [  # (kind, setting, built value, the same in other forms, another value)
    ("BatchNorm1d", "num_features", 3, [np.int64(3), np.int32(3)], 7),
    ("BatchNorm2d", "num_features", 3, [np.int64(3)], 4),
    ("InstanceNorm2d", "num_features", 3, [np.int64(3)], 2),
    ("GroupNorm", "num_channels", 4, [np.int64(4)], 8),
    ("LayerNorm", "normalized_shape", (3, 4), [[3, 4], np.array([3, 4]), range(3, 5)], (4, 3)),
]


@pytest.mark.parametrize("kind, name, built, same, other", FIXED_SIZES)
def test_the_sizes_a_layer_is_built_for_are_fixed(kind: str, name: str, built: Any, same: list[Any],
                                                  other: Any) -> None:
    layer, x = build(kind)
    for value in same:  # the same size, in any form the constructor takes: accepted, kept as built
        setattr(layer, name, value)
        assert getattr(layer, name) == built and type(getattr(layer, name)) is type(built)
    before = unchanged(layer)
    with pytest.raises(ValueError) as info:
        setattr(layer, name, other)
    what = ("the layer was built for those axes: gamma and beta, where it has them, have that shape"
            if name == "normalized_shape" else
            "the layer was built for that many channels: gamma, beta and the running statistics, where it has "
            "them, have that size")
    assert str(info.value) == (f"{kind}: {name} cannot be changed after construction ({what}); got {other!r}, it is "
                               f"{built!r}: build a new {kind}")
    assert unchanged(layer) == before
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, name, bad, error, message", [
    ("BatchNorm1d", "num_features", 0, ValueError, "num_features must be a positive int, got 0"),
    ("BatchNorm2d", "num_features", 3.0, ValueError, "num_features must be a positive int, got 3.0"),
    ("InstanceNorm2d", "num_features", True, ValueError, "num_features must be a positive int, got True"),
    ("GroupNorm", "num_channels", "4", ValueError, "num_channels must be a positive int, got '4'"),
    ("LayerNorm", "normalized_shape", (3, 0), ValueError, "normalized_shape must be a positive int, got 0"),
    ("LayerNorm", "normalized_shape", [], ValueError, "normalized_shape must not be empty"),
    ("BatchNorm1d", "affine", "no", TypeError, "affine must be True or False, got 'no'"),
    ("GroupNorm", "affine", 1, TypeError, "affine must be True or False, got 1"),
    ("LayerNorm", "elementwise_affine", None, TypeError, "elementwise_affine must be True or False, got None"),
    ("BatchNorm2d", "track_running_stats", "no", TypeError, "track_running_stats must be True or False, got 'no'"),
    ("InstanceNorm2d", "track_running_stats", 0, TypeError, "track_running_stats must be True or False, got 0"),
])
def test_a_bad_value_gets_the_constructors_message_and_changes_nothing(kind: str, name: str, bad: Any,
                                                                       error: type, message: str) -> None:
    layer, x = build(kind)
    before = unchanged(layer)
    with pytest.raises(error) as info:
        setattr(layer, name, bad)
    assert str(info.value) == f"{kind}: {message}"
    assert unchanged(layer) == before
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind, name", [("BatchNorm1d", "affine"), ("BatchNorm2d", "affine"),
                                        ("InstanceNorm2d", "affine"), ("GroupNorm", "affine"),
                                        ("LayerNorm", "elementwise_affine")])
def test_affine_is_fixed_the_parameters_stay_registered(kind: str, name: str) -> None:
    layer, x = build(kind)
    names = [n for n, _ in layer.named_parameters()]
    assert names == ["gamma", "beta"]
    setattr(layer, name, np.True_)  # the same: accepted
    assert getattr(layer, name) is True
    before = unchanged(layer)
    with pytest.raises(ValueError) as info:
        setattr(layer, name, False)
    assert str(info.value) == (
        f"{kind}: {name} cannot be changed after construction (gamma and beta are registered, or not, at "
        "construction, and an optimizer or a checkpoint holds them; to stop training them, use "
        f"requires_grad_(False)); got False, it is True: build a new {kind}")
    assert unchanged(layer) == before and [n for n, _ in layer.named_parameters()] == names
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=True), rtol=1e-12, atol=1e-12)
    bare = type(layer)(*([2, 4] if kind == "GroupNorm" else [(3, 4)] if kind == "LayerNorm" else [3]),
                       **{name: False})
    with pytest.raises(ValueError, match=f"{name} cannot be changed after construction .*got True, it is False"):
        setattr(bare, name, True)  # (it was an AttributeError on gamma at the next forward)
    assert bare.parameters() == []


# ------------------------------------------------------------------------------------------ num_groups
@pytest.mark.parametrize("groups", [1, 4, 2])
def test_num_groups_set_later_is_used_by_the_next_forward_and_its_gradient(groups: int) -> None:
    layer, x = build("GroupNorm")
    layer.num_groups = np.int64(groups)
    assert layer.num_groups == groups and type(layer.num_groups) is int
    assert repr(layer).startswith(f"GroupNorm({groups}, 4")
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, groups=groups), rtol=1e-12, atol=1e-12)
    for seed in (0, 1):
        assert_gradients_ok(layer, inputs=x, seed=seed)


@pytest.mark.parametrize("bad, message", [
    (3, "num_channels (4) must be divisible by num_groups (3)"),
    (8, "num_channels (4) must be divisible by num_groups (8)"),
    (0, "num_groups must be a positive int, got 0"),
    (2.0, "num_groups must be a positive int, got 2.0"),
    (True, "num_groups must be a positive int, got True"),
])
def test_a_bad_num_groups_is_refused_as_the_constructor_refuses_it_and_changes_nothing(bad: Any,
                                                                                         message: str) -> None:
    with pytest.raises(ValueError) as made:
        md.GroupNorm(bad, 4)
    assert str(made.value) == f"GroupNorm: {message}"
    layer, x = build("GroupNorm")
    before = unchanged(layer)
    with pytest.raises(ValueError) as info:
        layer.num_groups = bad
    assert str(info.value) == f"GroupNorm: {message}"
    assert unchanged(layer) == before and layer.num_groups == 2
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, groups=2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("later", [1, 4])
def test_num_groups_set_between_forward_and_backward_leaves_the_backward_of_the_forward(later: int) -> None:
    layer, x = build("GroupNorm", seed=3)
    twin = pickle.loads(pickle.dumps(layer))
    g = np.random.default_rng(4).normal(size=x.shape)
    layer(x), twin(x)
    layer.num_groups = later
    np.testing.assert_allclose(layer.backward(g), twin.backward(g), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(layer.gamma.grad, twin.gamma.grad, rtol=1e-14)


# --------------------------------------------------------------------------------- track_running_stats
@pytest.mark.parametrize("kind", RUNNING)
def test_track_running_stats_off_uses_batch_statistics_and_leaves_the_buffers(kind: str) -> None:
    layer, x = build(kind)
    kept = {name: buffer.copy() for name, buffer in layer.named_buffers()}
    layer.track_running_stats = np.False_
    assert layer.track_running_stats is False
    assert ("track_running_stats=False" in repr(layer)) is (kind != "InstanceNorm2d")  # (repr omits defaults)
    for training in (True, False):  # batch (instance) statistics in both modes, as built without them
        layer.train(training)
        np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=True), rtol=1e-12, atol=1e-12)
        assert_gradients_ok(layer, inputs=x)
    for name, buffer in layer.named_buffers():  # untouched (num_batches_tracked too), still saved
        np.testing.assert_array_equal(buffer, kept[name])
    assert set(layer.state_dict()) >= set(kept)
    layer.track_running_stats = True  # on again: the kept statistics normalise in eval, training moves them
    layer.eval()
    np.testing.assert_allclose(layer(x), expected(layer, x, 1e-5, batch=False), rtol=1e-12, atol=1e-12)
    layer.train()
    layer(x)
    assert int(layer.num_batches_tracked) == 1 and not np.array_equal(layer.running_mean, kept["running_mean"])


@pytest.mark.parametrize("kind", RUNNING)
def test_track_running_stats_off_keeps_the_layers_dtype(kind: str) -> None:
    layer, x = build(kind)
    layer = type(layer)(3, affine=False, track_running_stats=True)  # (its dtype is its buffers')
    layer.track_running_stats = False
    with pytest.raises(md.DTypeError, match=r"input dtype float32 does not match the layer's running statistics "
                                            r"\(float64\)"):
        layer(x.astype(np.float32))  # (the buffers are still float64: on again, they normalise)
    layer.astype(np.float32)
    assert layer(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("kind", RUNNING)
@pytest.mark.parametrize("affine", [True, False])
def test_a_dtype_refusal_names_what_holds_the_dtype(kind: str, affine: bool) -> None:
    """Without affine parameters the dtype is the running statistics': the message does not speak of
    parameters the layer does not have."""
    layer, x = build(kind)
    layer = type(layer)(3, affine=affine, track_running_stats=True, dtype=np.float32)
    held = "parameters" if affine else "running statistics"
    with pytest.raises(md.DTypeError, match=rf"input dtype float64 does not match the layer's {held} \(float32\)"):
        layer(x)
    assert int(layer.num_batches_tracked) == 0


@pytest.mark.parametrize("kind", RUNNING)
def test_track_running_stats_cannot_be_switched_on_without_buffers(kind: str) -> None:
    layer = getattr(md, kind)(3, affine=True, track_running_stats=False)
    layer.track_running_stats = False  # the same: accepted
    before = unchanged(layer)
    with pytest.raises(ValueError) as info:
        layer.track_running_stats = True  # (it was an AttributeError on running_mean at the next forward)
    assert str(info.value) == (
        f"{kind}: track_running_stats cannot be switched on: the layer was built without running statistics (no "
        f"running_mean/running_var buffers); build a new {kind}(..., track_running_stats=True) "
        "(load_state_dict(..., strict=False) brings gamma and beta over)")
    assert unchanged(layer) == before
    layer.gamma.data[:] = 2.0
    new = getattr(md, kind)(3, affine=True, track_running_stats=True)
    result = new.load_state_dict(layer.state_dict(), strict=False)  # what the message advises
    assert result.missing_keys == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(new.gamma.data, [2.0, 2.0, 2.0])


# ------------------------------------------------------------------------------------------ old pickles
def old_form(layer: Any) -> Any:
    """``layer`` as the earlier code pickled it: every checked setting a plain attribute, not ``_<name>``."""
    state = dict(layer.__dict__)
    for name in _settings(type(layer)):
        if "_" + name in state:
            state[name] = state.pop("_" + name)
    old = type(layer).__new__(type(layer))
    old.__dict__.update(state)
    return old


def _settings(cls: type) -> list[str]:
    """The names of the public properties of ``cls``: its checked settings."""
    return [name for name in dir(cls) if not name.startswith("_") and isinstance(getattr(cls, name), property)]


@pytest.mark.parametrize("kind", [*LAYERS, "LocalResponseNorm"])
def test_a_layer_pickled_with_plain_settings_keeps_them_and_checks_them(kind: str) -> None:
    if kind == "LocalResponseNorm":
        fresh, x = md.LocalResponseNorm(3, alpha=0.5, beta=0.6, k=1.5), np.random.default_rng(0).normal(size=(2, 5, 4))
    else:
        fresh, x = build(kind)
    old = old_form(pickle.loads(pickle.dumps(fresh)))
    assert any(name in old.__dict__ for name in ("eps", "size"))
    restored = pickle.loads(pickle.dumps(old))
    assert repr(restored) == repr(fresh)
    for name in _settings(type(fresh)):
        assert name not in restored.__dict__ and getattr(restored, name) == getattr(fresh, name)
    g = np.random.default_rng(1).normal(size=x.shape)
    np.testing.assert_array_equal(restored(x), fresh(x))
    np.testing.assert_array_equal(restored.backward(g), fresh.backward(g))
    name, bad = ("alpha", float("nan")) if kind == "LocalResponseNorm" else ("eps", -1.0)
    with pytest.raises(ValueError):
        setattr(restored, name, bad)  # still checked
    assert getattr(restored, name) == getattr(fresh, name)


# -------------------------------------------------------------------------------------------- PyTorch
def torch_twin(torch: Any, layer: Any) -> Any:
    """PyTorch's layer with the settings, parameters and buffers of ``layer`` (float64)."""
    nn = torch.nn
    name = type(layer).__name__
    if name == "LayerNorm":
        theirs = nn.LayerNorm(layer.normalized_shape, eps=layer.eps, dtype=torch.float64)
    elif name == "GroupNorm":
        theirs = nn.GroupNorm(layer.num_groups, layer.num_channels, eps=layer.eps, dtype=torch.float64)
    else:
        theirs = getattr(nn, name)(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                                   track_running_stats=layer.track_running_stats, dtype=torch.float64)
    with torch.no_grad():
        if layer.parameters():
            theirs.weight.copy_(torch.tensor(layer.gamma.data))
            theirs.bias.copy_(torch.tensor(layer.beta.data))
        if getattr(theirs, "running_mean", None) is not None:
            theirs.running_mean.copy_(torch.tensor(layer.running_mean))
            theirs.running_var.copy_(torch.tensor(layer.running_var))
    return theirs


def torch_step(torch: Any, theirs: Any, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))
    return yt.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("kind", ["BatchNorm1d-3d", "BatchNorm2d", "InstanceNorm2d", "LayerNorm", "GroupNorm"])
def test_eps_and_num_groups_set_later_match_pytorch_set_later(kind: str) -> None:
    torch = pytest.importorskip("torch")
    layer, x = build(kind)
    theirs = torch_twin(torch, layer)
    g = np.random.default_rng(5).normal(size=x.shape)
    layer.eps = theirs.eps = 0.3
    if kind == "GroupNorm":
        layer.num_groups = theirs.num_groups = 4
    y, dx = torch_step(torch, theirs, x, g)
    np.testing.assert_allclose(layer(x), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.gamma.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_num_groups_set_between_forward_and_backward_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    layer, x = build("GroupNorm", seed=2)
    theirs = torch_twin(torch, layer)
    g = np.random.default_rng(6).normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    theirs.num_groups = 1  # autograd differentiates the forward that ran
    yt.backward(torch.tensor(g))
    layer(x)
    layer.num_groups = 1
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["BatchNorm1d-3d", "BatchNorm2d"])
def test_batch_norm_tracking_switched_off_against_pytorch(kind: str) -> None:
    """Training: as PyTorch's layer switched off (batch statistics, buffers untouched).  Eval: as PyTorch's
    layer built without running statistics (batch statistics); PyTorch's layer switched off normalises by its
    frozen buffers in eval instead (its attribute only stops the update), the difference docs/layers.md gives."""
    torch = pytest.importorskip("torch")
    layer, x = build(kind)
    theirs = torch_twin(torch, layer)
    layer.track_running_stats = theirs.track_running_stats = False
    g = np.random.default_rng(8).normal(size=x.shape)
    y, dx = torch_step(torch, theirs, x, g)
    np.testing.assert_allclose(layer(x), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(layer.running_mean, theirs.running_mean.numpy())
    assert int(layer.num_batches_tracked) == int(theirs.num_batches_tracked) == 0
    layer.eval(), theirs.eval()
    built_without = torch_twin(torch, layer).eval()  # (track_running_stats=False: no buffers)
    assert built_without.running_mean is None
    y, dx = torch_step(torch, built_without, x, g)
    np.testing.assert_allclose(layer(x), y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.backward(g), dx, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # PyTorch's switched-off layer: its frozen buffers in eval
        np.testing.assert_allclose(theirs(torch.tensor(x)).numpy(), expected(layer, x, 1e-5, batch=False),
                                   rtol=1e-10, atol=1e-10)


def test_running_init_again_builds_the_layer_afresh() -> None:
    """Layer supports ``__init__`` run again (the registrations count it); the fixed settings and the checks
    against the old ones (channels, buffers to switch on, groups dividing the old channels) must not refuse
    the new arguments (review: each raised ValueError)."""
    bn = md.BatchNorm2d(3)
    bn.__init__(5)  # type: ignore[misc]
    assert bn.num_features == 5 and bn.gamma.shape == (5,) and bn.running_mean.shape == (5,)
    off = md.BatchNorm2d(3, track_running_stats=False)
    off.__init__(3, track_running_stats=True)  # type: ignore[misc]
    assert off.track_running_stats and off.running_var.shape == (3,)
    gn = md.GroupNorm(2, 4)
    gn.__init__(3, 6)  # type: ignore[misc]
    assert (gn.num_groups, gn.num_channels, gn.gamma.shape) == (3, 6, (6,))
    ln = md.LayerNorm(4)
    ln.__init__((2, 3), elementwise_affine=False)  # type: ignore[misc]
    assert ln.normalized_shape == (2, 3) and not ln.elementwise_affine and "gamma" not in dict(ln.named_parameters())
    x = np.random.default_rng(0).standard_normal((4, 6, 2, 2))
    y = gn(x)
    groups = x.reshape(4, 3, -1)
    want = (groups - groups.mean(-1, keepdims=True)) / np.sqrt(groups.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, want.reshape(x.shape), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ an eps the input's dtype cannot hold

EPS_CASES = [
    ("BatchNorm1d", lambda eps, dt: md.BatchNorm1d(3, eps=eps, dtype=dt), (4, 3)),
    ("BatchNorm2d", lambda eps, dt: md.BatchNorm2d(3, eps=eps, dtype=dt), (2, 3, 2, 2)),
    ("InstanceNorm2d", lambda eps, dt: md.InstanceNorm2d(3, eps=eps, affine=True, dtype=dt), (2, 3, 2, 2)),
    ("LayerNorm", lambda eps, dt: md.LayerNorm(3, eps=eps, dtype=dt), (4, 3)),
    ("GroupNorm", lambda eps, dt: md.GroupNorm(3, 3, eps=eps, dtype=dt), (2, 3, 2)),
]


@pytest.mark.parametrize("name, make, shape", EPS_CASES, ids=[c[0] for c in EPS_CASES])
@pytest.mark.parametrize("dtype, eps", [(np.float32, 1e-50), (np.float16, 1e-8)])
def test_an_eps_that_rounds_to_zero_in_the_inputs_dtype_is_refused_and_changes_nothing(name, make, shape, dtype,
                                                                                      eps) -> None:
    """An eps that is 0 in the input's dtype made a group of equal values 0 * inf = NaN, silently: now refused
    by name, with the dtype and what to do, before any running statistic moves or any cache is made."""
    layer = make(eps, dtype)
    x = np.ones(shape, dtype=dtype)  # every channel / group constant: its variance is exactly 0
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    with pytest.raises(md.DTypeError, match=rf"^{name}\(.*eps={eps!r} is 0 in {np.dtype(dtype).name} .*NaN.*"
                                            r"the default is 1e-5\) or float64 data"):
        layer(x)
    assert all(np.array_equal(v, layer.state_dict()[k]) for k, v in before.items())
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.ones(shape, dtype=dtype))
    layer.eps = 1e-5 if dtype == np.float16 else 1e-30  # an eps the dtype holds: equal values normalise to 0
    assert np.array_equal(layer(x), np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("name, make, shape", EPS_CASES, ids=[c[0] for c in EPS_CASES])
def test_a_tiny_eps_float64_holds_still_normalises_equal_values_to_zero(name, make, shape) -> None:
    """1e-50 is 1e-50 in float64: accepted there, and in eval with running statistics of 0 variance too."""
    layer = make(1e-50, np.float64)
    x = np.full(shape, 3.0)
    assert np.array_equal(layer(x), np.zeros(shape))
    if hasattr(layer, "running_var"):
        layer.running_var[...] = 0.0
        layer.running_mean[...] = 3.0
        layer.eval()
        assert np.array_equal(layer(x), np.zeros(shape))


# ------------------------------------------------------------------ running statistics assigned by hand

BUFFER_CASES = [
    ("BatchNorm1d", lambda: md.BatchNorm1d(3), (4, 3)),
    ("BatchNorm2d", lambda: md.BatchNorm2d(3), (2, 3, 2, 2)),
    ("InstanceNorm2d", lambda: md.InstanceNorm2d(3, track_running_stats=True), (2, 3, 2, 2)),
]


@pytest.mark.parametrize("name, make, shape", BUFFER_CASES, ids=[c[0] for c in BUFFER_CASES])
@pytest.mark.parametrize("buffer", ["running_mean", "running_var"])
@pytest.mark.parametrize("value, got", [(None, "None"), (np.ones(4), r"of shape \(4,\)"),
                                        (np.ones((1, 3)), r"of shape \(1, 3\)")])
@pytest.mark.parametrize("training", [True, False])
def test_a_running_statistic_assigned_by_hand_of_another_shape_is_refused_before_anything_moves(
        name, make, shape, buffer, value, got, training) -> None:
    """A buffer set to None or to another shape by hand met a bare AttributeError or a broadcasting
    ValueError inside the forward, in training after num_batches_tracked and the other statistic had moved:
    now a ShapeError by name, with the shape expected, and nothing changed."""
    layer = make()
    layer.train(training)
    setattr(layer, buffer, value)
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    x = np.random.default_rng(0).normal(size=shape)
    with pytest.raises(md.ShapeError, match=rf"^{name}\(3\): the buffer {buffer} is {got}, not of shape \(3,\) "
                                            r"\(assigned by hand\?\).*track_running_stats=False"):
        layer(x)
    after = layer.state_dict()
    assert before.keys() == after.keys() and all(np.array_equal(v, after[k]) for k, v in before.items())
    setattr(layer, buffer, np.full(3, 0.5))  # one of the right shape: the layer works again
    assert layer(x).shape == shape
