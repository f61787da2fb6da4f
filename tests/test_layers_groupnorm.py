"""GroupNorm and InstanceNorm2d: closed forms, identities, gradient checks, PyTorch, dtypes and refusals."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest

import minidl as md
from minidl import GroupNorm, InstanceNorm2d
from minidl.testing import assert_gradients_ok, states_equal

EPS = 1e-5
L = TypeVar("L", bound=md.Layer)


def randomise(layer: L, seed: int) -> L:
    """Non-trivial gamma/beta (and running stats), in the layer's dtype, so every term of the back-pass matters."""
    rng = np.random.default_rng(seed)
    for _, param in layer.named_parameters():
        param.data = rng.normal(size=param.shape).astype(param.dtype)
    if getattr(layer, "track_running_stats", False):
        running: Any = layer
        dtype = running.running_mean.dtype
        running.running_mean = rng.normal(size=running.running_mean.shape).astype(dtype)
        running.running_var = rng.uniform(0.5, 2.0, size=running.running_var.shape).astype(dtype)
    return layer


def affine_of(layer: Any, C: int) -> tuple[np.ndarray, np.ndarray]:
    if layer.affine:
        return layer.gamma.data, layer.beta.data
    return np.ones(C), np.zeros(C)


def ref_forward(x: np.ndarray, G: int, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Group norm by loops over samples and groups, straight from the definition."""
    N, C = x.shape[:2]
    k = C // G
    y = np.empty_like(x)
    for n in range(N):
        for j in range(G):
            block = x[n, j * k:(j + 1) * k]
            mu = block.mean()
            var = ((block - mu) ** 2).mean()
            y[n, j * k:(j + 1) * k] = (block - mu) / math.sqrt(var + EPS)
    bshape = (1, C) + (1,) * (x.ndim - 2)
    return y * gamma.reshape(bshape) + beta.reshape(bshape)


def ref_backward(x: np.ndarray, G: int, gamma: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
    """dx, dgamma, dbeta with the Jacobian of each group written out: d x_hat_i / d x_j =
    (delta_ij - 1/m - x_hat_i x_hat_j / m) / sigma (symmetric), so dx = J @ (gamma * g) per group."""
    N, C = x.shape[:2]
    k = C // G
    bshape = (1, C) + (1,) * (x.ndim - 2)
    xhat = ref_forward(x, G, np.ones(C), np.zeros(C))
    dxhat = g * gamma.reshape(bshape)
    dx = np.empty_like(x)
    for n in range(N):
        for j in range(G):
            sl = (n, slice(j * k, (j + 1) * k))
            block = x[sl].ravel()
            sigma = math.sqrt(block.var() + EPS)
            xh = xhat[sl].ravel()
            m = block.size
            J = (np.eye(m) - 1.0 / m - np.outer(xh, xh) / m) / sigma
            dx[sl] = (J @ dxhat[sl].ravel()).reshape(x[sl].shape)
    axes = (0, *range(2, x.ndim))
    return dx, (g * xhat).sum(axis=axes), g.sum(axis=axes)


def snapshot(layer: Any) -> dict[str, Any]:
    """Everything a refused call must leave as it was: parameters, their gradients, buffers and the cache."""
    state: dict[str, Any] = dict(layer.state_dict())
    for name, param in layer.named_parameters():
        state[name + ".has_grad"] = param.has_grad  # (reading .grad would count as having one)
        state[name + ".grad"] = param.grad.copy() if param.has_grad else None
    state["cache"] = layer._cache  # the same object (identity), compared with `is`
    return state


def assert_unchanged(layer: Any, before: dict[str, Any]) -> None:
    after = snapshot(layer)
    assert after.pop("cache") is before["cache"]
    assert states_equal({k: v for k, v in before.items() if k != "cache"}, after)


GN_SHAPES = [  # (G, C, input shape)
    (2, 4, (3, 4)),              # no trailing axes
    (3, 6, (2, 6, 5)),
    (2, 6, (2, 6, 3, 2)),
    (1, 4, (2, 4, 2, 3)),        # one group: layer norm over (C, H, W)
    (4, 4, (2, 4, 3, 2)),        # one channel per group: instance norm
    (2, 4, (2, 4, 2, 1, 3)),     # three trailing axes
]


# ----------------------------------------------------------------------------- closed form


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("G, C, shape", GN_SHAPES)
def test_groupnorm_matches_the_per_group_formula(G: int, C: int, shape: tuple[int, ...], affine: bool) -> None:
    layer = randomise(GroupNorm(G, C, affine=affine), 0)
    rng = np.random.default_rng(1)
    x = rng.normal(loc=2.0, scale=3.0, size=shape)
    gamma, beta = affine_of(layer, C)
    y = layer(x)
    np.testing.assert_allclose(y, ref_forward(x, G, gamma, beta), rtol=1e-12, atol=1e-12)
    g = rng.normal(size=shape)
    dx = layer.backward(g)
    dx_ref, dgamma, dbeta = ref_backward(x, G, gamma, g)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    if affine:
        np.testing.assert_allclose(layer.gamma.grad, dgamma, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.beta.grad, dbeta, rtol=1e-12, atol=1e-12)
    else:
        assert list(layer.named_parameters()) == []


@pytest.mark.parametrize("spatial", [(), (3,), (2, 3)])
def test_one_group_is_layernorm_over_channels_and_space(spatial: tuple[int, ...]) -> None:
    """G = 1 is LayerNorm((C, *)) whose gamma/beta are per channel (broadcast over the trailing axes)."""
    C = 3
    gn = randomise(GroupNorm(1, C), 2)
    ln = md.LayerNorm((C, *spatial))
    expand = (C,) + (1,) * len(spatial)
    ln.gamma.data = np.broadcast_to(gn.gamma.data.reshape(expand), (C, *spatial)).copy()
    ln.beta.data = np.broadcast_to(gn.beta.data.reshape(expand), (C, *spatial)).copy()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, C, *spatial))
    g = rng.normal(size=x.shape)
    np.testing.assert_allclose(gn(x), ln(x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gn.backward(g), ln.backward(g), rtol=1e-12, atol=1e-13)
    axes = tuple(range(1, 1 + len(spatial)))
    np.testing.assert_allclose(gn.gamma.grad, ln.gamma.grad.sum(axis=axes), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gn.beta.grad, ln.beta.grad.sum(axis=axes), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_one_channel_per_group_is_instance_norm(mode: str) -> None:
    """G = C is InstanceNorm2d with affine (in both modes, as it has no running statistics)."""
    gn = randomise(GroupNorm(3, 3), 4)
    inorm = InstanceNorm2d(3, affine=True)
    inorm.gamma.data, inorm.beta.data = gn.gamma.data.copy(), gn.beta.data.copy()
    gn.train(mode == "train")
    inorm.train(mode == "train")
    rng = np.random.default_rng(5)
    x = rng.normal(loc=-1.0, size=(2, 3, 4, 3))
    g = rng.normal(size=x.shape)
    np.testing.assert_allclose(gn(x), inorm(x), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(gn.backward(g), inorm.backward(g), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gn.gamma.grad, inorm.gamma.grad, rtol=1e-13)
    np.testing.assert_allclose(gn.beta.grad, inorm.beta.grad, rtol=1e-13)


@pytest.mark.parametrize("affine", [True, False])
def test_instancenorm_matches_the_per_instance_formula(affine: bool) -> None:
    layer = randomise(InstanceNorm2d(3, affine=affine), 6)
    rng = np.random.default_rng(7)
    x = rng.normal(loc=1.0, scale=2.0, size=(3, 3, 4, 5))
    g = rng.normal(size=x.shape)
    gamma, beta = affine_of(layer, 3)
    for mode in ("train", "eval"):  # no running statistics: the instance statistics in both modes
        layer.train(mode == "train")
        layer.zero_grad()
        np.testing.assert_allclose(layer(x), ref_forward(x, 3, gamma, beta), rtol=1e-12, atol=1e-12)
        dx_ref, dgamma, dbeta = ref_backward(x, 3, gamma, g)
        np.testing.assert_allclose(layer.backward(g), dx_ref, rtol=1e-12, atol=1e-12)
        if affine:
            np.testing.assert_allclose(layer.gamma.grad, dgamma, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(layer.beta.grad, dbeta, rtol=1e-12, atol=1e-12)


def test_instancenorm_running_statistics_and_eval() -> None:
    """Training: running stats move towards the batch averages of the instance means and *unbiased*
    instance variances (PyTorch's rule); eval: they normalise, and the layer is an affine map per channel."""
    layer = InstanceNorm2d(2, momentum=0.2, affine=True, track_running_stats=True)
    randomise(layer, 8)
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    rng = np.random.default_rng(9)
    for step in range(3):
        x = rng.normal(loc=step, scale=1 + step, size=(3, 2, 2, 3))
        layer(x)
        mean = 0.8 * mean + 0.2 * x.mean(axis=(2, 3)).mean(axis=0)
        var = 0.8 * var + 0.2 * x.var(axis=(2, 3), ddof=1).mean(axis=0)
        np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(layer.running_var, var, rtol=1e-14)
        assert int(layer.num_batches_tracked) == step + 1
    layer.eval()
    x = rng.normal(size=(2, 2, 3, 3))
    g = rng.normal(size=x.shape)
    scale = (layer.gamma.data / np.sqrt(var + EPS)).reshape(1, 2, 1, 1)
    y = layer(x)
    np.testing.assert_allclose(y, (x - mean.reshape(1, 2, 1, 1)) * scale + layer.beta.data.reshape(1, 2, 1, 1),
                               rtol=1e-13, atol=1e-14)
    layer.zero_grad()
    np.testing.assert_allclose(layer.backward(g), g * scale, rtol=1e-14)
    xhat = (x - mean.reshape(1, 2, 1, 1)) / np.sqrt(var + EPS).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(layer.gamma.grad, (g * xhat).sum(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(layer.beta.grad, g.sum(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-14)  # eval updates nothing
    assert int(layer.num_batches_tracked) == 3
    layer(np.ones((1, 2, 1, 1)))  # eval with running stats: one pixel is fine


def test_group_of_one_value_gives_beta_and_no_input_gradient() -> None:
    """G = C without trailing axes: each group is one value, x_hat = 0 (PyTorch refuses only N = 1)."""
    layer = randomise(GroupNorm(3, 3), 10)
    y = layer(np.random.default_rng(0).normal(size=(2, 3)))
    np.testing.assert_array_equal(y, np.broadcast_to(layer.beta.data, (2, 3)))
    np.testing.assert_array_equal(layer.backward(np.ones((2, 3))), np.zeros((2, 3)))


def test_strided_and_empty_batches() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(size=(3, 4, 5, 2))
    strided = base.transpose(0, 1, 3, 2)  # not C-contiguous
    for layer in (randomise(GroupNorm(2, 4), 0), randomise(InstanceNorm2d(4, affine=True), 0)):
        g = rng.normal(size=strided.shape)
        y, dx = layer(strided), layer.backward(g)
        np.testing.assert_allclose(y, layer(strided.copy()), rtol=1e-15)
        np.testing.assert_allclose(dx, layer.backward(g.T.copy().T), rtol=1e-15)  # strided g too
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            empty = layer(np.zeros((0, 4, 2, 2)))
            assert empty.shape == (0, 4, 2, 2) and layer.backward(empty).shape == (0, 4, 2, 2)


# ----------------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("G, C, shape", GN_SHAPES)
def test_groupnorm_gradient_checker(G: int, C: int, shape: tuple[int, ...], affine: bool, seed: int) -> None:
    layer = randomise(GroupNorm(G, C, affine=affine), seed)
    x = np.random.default_rng(seed + 20).normal(loc=1.0, scale=2.0, size=shape)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert {r.name for r in report.results} == ({"input", "gamma", "beta"} if affine else {"input"})


@pytest.mark.parametrize("layer", [GroupNorm(2, 4), InstanceNorm2d(4, affine=True, track_running_stats=True)],
                         ids=["GroupNorm", "InstanceNorm2d"])
def test_frozen_gamma_gets_no_gradient(layer: Any) -> None:
    randomise(layer, 3)
    x = np.random.default_rng(12).normal(size=(2, 4, 3, 2))
    g = np.random.default_rng(13).normal(size=x.shape)
    layer(x)
    dx = layer.backward(g)
    layer.zero_grad()
    layer.gamma.requires_grad = False
    layer(x)
    np.testing.assert_array_equal(layer.backward(g), dx)  # the same dx
    assert not layer.gamma.has_grad and layer.beta.has_grad
    report = assert_gradients_ok(layer, inputs=x)
    assert report["gamma"].status == "frozen" and report["beta"].status == "ok"
    assert report["input"].status == "ok"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("affine, track", [(False, False), (True, False), (False, True), (True, True)])
def test_instancenorm_gradient_checker(affine: bool, track: bool, mode: str, seed: int) -> None:
    layer = randomise(InstanceNorm2d(3, affine=affine, track_running_stats=track), seed)
    layer.train(mode == "train")
    x = np.random.default_rng(seed + 30).normal(loc=1.0, scale=2.0, size=(2, 3, 3, 2))
    before = layer.state_dict()
    assert_gradients_ok(layer, inputs=x, seed=seed)
    assert states_equal(layer.state_dict(), before)  # the checker restores the running statistics


def test_checker_draws_its_own_inputs_from_the_hint() -> None:
    assert GroupNorm(2, 4).input_shape_hint() == (4, 3, 3)
    assert InstanceNorm2d(5).input_shape_hint() == (5, 3, 3)
    assert_gradients_ok(randomise(GroupNorm(2, 4), 0))
    assert_gradients_ok(randomise(InstanceNorm2d(2, affine=True, track_running_stats=True), 0))


def test_in_a_cnn_with_cross_entropy() -> None:
    model = md.Sequential(md.Conv2D(1, 4, 3, rng=0), GroupNorm(2, 4), md.ReLU(), InstanceNorm2d(4, affine=True),
                          md.Flatten(), md.Dense(16, 3, rng=1))
    x = np.random.default_rng(14).normal(size=(3, 1, 4, 4))
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 2, 1]))


# ----------------------------------------------------------------------------- dtypes, state, repr


@pytest.mark.parametrize("make", [
    lambda dt: GroupNorm(2, 4, dtype=dt),
    lambda dt: GroupNorm(2, 4, affine=False, dtype=dt),
    lambda dt: InstanceNorm2d(4, affine=True, track_running_stats=True, dtype=dt),
    lambda dt: InstanceNorm2d(4, dtype=dt),
])
def test_float32_stays_float32(make: Callable[[Any], Any]) -> None:
    layer = randomise(make(np.float32), 0)
    layer64 = randomise(make(np.float64), 0)
    x = np.random.default_rng(15).normal(size=(2, 4, 3, 3))
    g = np.random.default_rng(16).normal(size=x.shape)
    for mode in ("train", "eval"):
        layer.train(mode == "train")
        layer64.train(mode == "train")
        y = layer(x.astype(np.float32))
        dx = layer.backward(g.astype(np.float32))
        assert y.dtype == dx.dtype == np.float32
        np.testing.assert_allclose(y, layer64(x), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, layer64.backward(g), rtol=1e-4, atol=1e-5)
        for (name, p), (_, p64) in zip(layer.named_parameters(), layer64.named_parameters(), strict=True):
            assert p.grad.dtype == np.float32, name
            np.testing.assert_allclose(p.grad, p64.grad, rtol=1e-4, atol=1e-4)
        for name, buffer in layer.named_buffers():
            assert buffer is not None
            assert buffer.dtype == (np.int64 if name == "num_batches_tracked" else np.float32)


def test_float16_follows_the_module_policy() -> None:
    """As BatchNorm/LayerNorm: float16 is computed in float16 (no parameters: any float dtype is
    accepted), and a variance whose squares overflow float16 is refused."""
    x = np.random.default_rng(17).normal(size=(2, 4, 3, 3))
    for layer in (GroupNorm(2, 4, affine=False), InstanceNorm2d(4), GroupNorm(2, 4, dtype=np.float16)):
        reference = (GroupNorm(2, 4, affine=False) if isinstance(layer, GroupNorm) else InstanceNorm2d(4))(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = layer(x.astype(np.float16))
            dx = layer.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == np.float16
        np.testing.assert_allclose(y, reference, atol=1e-2)
        with pytest.raises(md.NonFiniteError, match="is not finite in float16"):
            layer((x * 1e3).astype(np.float16))


def test_astype_state_dict_and_load() -> None:
    gn = GroupNorm(2, 4)
    assert sorted(gn.state_dict()) == ["beta", "gamma"]
    assert sorted(GroupNorm(2, 4, affine=False).state_dict()) == []
    inorm = InstanceNorm2d(4)
    assert list(inorm.named_parameters()) == [] and list(inorm.named_buffers()) == []
    inorm = InstanceNorm2d(4, affine=True, track_running_stats=True)
    assert sorted(inorm.state_dict()) == ["beta", "gamma", "num_batches_tracked", "running_mean", "running_var"]
    for layer in (gn, inorm):
        layer.astype(np.float32)
        assert all(p.dtype == np.float32 for p in layer.parameters())
    assert inorm.running_var.dtype == np.float32 and inorm.num_batches_tracked.dtype == np.int64
    trained = InstanceNorm2d(4, affine=True, track_running_stats=True)
    trained(np.random.default_rng(18).normal(size=(2, 4, 3, 3)))
    fresh = InstanceNorm2d(4, affine=True, track_running_stats=True)
    fresh.load_state_dict(trained.state_dict())
    assert states_equal(fresh.state_dict(), trained.state_dict())
    bad = {**trained.state_dict(), "running_var": -np.ones(4)}
    with pytest.raises(md.StateDictError, match=r"running_var.*negative"):
        fresh.load_state_dict(bad)


def test_repr() -> None:
    assert repr(GroupNorm(2, 6)) == "GroupNorm(2, 6, eps=1e-05)"
    assert repr(GroupNorm(3, 6, eps=1e-3, affine=False)) == "GroupNorm(3, 6, eps=0.001, affine=False)"
    assert repr(InstanceNorm2d(3)) == "InstanceNorm2d(3, eps=1e-05, momentum=0.1)"
    assert (repr(InstanceNorm2d(3, affine=True, track_running_stats=True))
            == "InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)")
    assert repr(md.BatchNorm1d(3, affine=False)) == "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=False)"


# ----------------------------------------------------------------------------- refusals


def bad_forwards(layer: Any) -> list[tuple[Any, type[Exception], str]]:
    """(input, exception, message pattern) for a layer built with 4 channels, float64, in train mode."""
    rng = np.random.default_rng(19)
    ok = rng.normal(size=(2, 4, 3, 3))
    nan = ok.copy()
    nan[1, 2, 0, 1] = np.nan
    huge = ok.copy()
    huge[1] *= 1e160
    if isinstance(layer, GroupNorm):
        who, layout = r"GroupNorm\(2, 4\)", r"\(N, 4, \*\)"
        shapes = [
            (np.zeros((2, 3, 3, 3)), md.ShapeError,
             rf"{who}: expected input of shape {layout}, got shape \(2, 3, 3, 3\)"),
            (np.zeros(4), md.ShapeError,
             rf"{who}: expected an input of shape {layout} \(at least 2-D\), got shape \(4,\)"),
            (np.zeros((2, 4, 0)), md.ShapeError, rf"{who}: every group needs at least one value, got input shape "
                                                 r"\(2, 4, 0\)"),
        ]
        what = r"the variance of group\(s\) \(numbered n\*G \+ g\) 2, 3 "
    else:
        who, layout = r"InstanceNorm2d\(4\)", r"\(N, 4, H, W\)"
        shapes = [
            (np.zeros((2, 3, 3, 3)), md.ShapeError,
             rf"{who}: expected input of shape {layout}, got shape \(2, 3, 3, 3\)"),
            (np.zeros((2, 4, 9)), md.ShapeError,
             rf"{who}: expected a 4-D input of shape {layout}, got shape \(2, 4, 9\)"),
            (np.zeros((2, 4, 1, 1)), md.ShapeError, rf"{who}: instance statistics need more than 1 value per channel "
                                                    r"\(H\*W > 1\), got input shape \(2, 4, 1, 1\)"),
            (np.zeros((2, 4, 0, 3)), md.ShapeError, rf"{who}: instance statistics need more than 1 value"),
        ]
        if layer.track_running_stats:
            shapes.append((np.zeros((0, 4, 2, 2)), md.ShapeError, rf"{who}: an empty batch cannot update the "
                           r"running statistics, got input shape \(0, 4, 2, 2\)"))
        what = r"the variance of instance\(s\) \(numbered n\*C \+ c\) 4, 5, 6, 7 "
    held = "parameters" if layer.affine else "running statistics"  # (what holds the layer's dtype)
    return [
        *shapes,
        (ok.astype(np.float32), md.DTypeError, rf"{who}: input dtype float32 does not match the layer's {held} "
                                               r"\(float64\)"),
        (ok.astype(np.int64), md.DTypeError, rf"{who}: expected a floating-point input, got dtype int64"),
        ("x", md.DTypeError, rf"{who}: expected input as a numpy array, got str"),
        ([[1.0, 2.0], [3.0]], md.DTypeError, rf"{who}: could not make a numpy array of input"),
        (nan, md.NonFiniteError, rf"{who}: input holds 1 NaN/inf value\(s\), the first at index \(1, 2, 0, 1\)"),
        (huge, md.NonFiniteError, rf"{who}: {what}is not finite in float64 .*scale the input down"),
    ]


LAYERS_TO_REFUSE = [
    lambda: GroupNorm(2, 4),
    lambda: InstanceNorm2d(4, affine=True),
    lambda: InstanceNorm2d(4, track_running_stats=True),
]


@pytest.mark.parametrize("make", LAYERS_TO_REFUSE)
def test_bad_inputs_are_refused_and_change_nothing(make: Callable[[], Any]) -> None:
    layer = randomise(make(), 0)
    x = np.random.default_rng(20).normal(size=(2, 4, 3, 3))
    for with_cache in (False, True):
        if with_cache:  # a pass that worked: its cache, gradients and running stats must survive the refusals
            layer.backward(np.ones_like(layer(x)))
        for bad, error, pattern in bad_forwards(layer):
            before = snapshot(layer)
            copy = bad.copy() if isinstance(bad, np.ndarray) else bad
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
                with pytest.raises(error, match=pattern):
                    layer(bad)
            assert_unchanged(layer, before)
            if isinstance(bad, np.ndarray):
                np.testing.assert_array_equal(bad, copy)


@pytest.mark.parametrize("make", LAYERS_TO_REFUSE)
def test_bad_gradients_are_refused_and_change_nothing(make: Callable[[], Any]) -> None:
    layer = randomise(make(), 0)
    who = layer._who.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(md.BackwardBeforeForwardError, match="backward called before forward"):
        layer.backward(np.ones((2, 4, 3, 3)))
    y = layer(np.random.default_rng(21).normal(size=(2, 4, 3, 3)))
    for bad, error, pattern in [
        (np.ones((2, 4, 3, 2)), md.ShapeError, rf"{who}.backward: expected grad_output of shape \(2, 4, 3, 3\), "
                                               r"got \(2, 4, 3, 2\)"),
        (np.ones_like(y, dtype=np.float32), md.DTypeError, rf"{who}.backward: expected grad_output of dtype "
                                                            "float64, got float32"),
        (y.tolist(), md.DTypeError, rf"{who}.backward: expected grad_output as a numpy array, got list"),
    ]:
        before = snapshot(layer)
        with pytest.raises(error, match=pattern):
            layer.backward(bad)
        assert_unchanged(layer, before)
    layer.backward(np.ones_like(y))  # and the cache still works


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"num_groups": 0}, ValueError, r"GroupNorm: num_groups must be a positive int, got 0"),
    ({"num_groups": 2.0}, ValueError, r"GroupNorm: num_groups must be a positive int, got 2.0"),
    ({"num_groups": True}, ValueError, r"GroupNorm: num_groups must be a positive int, got True"),
    ({"num_channels": -4}, ValueError, r"GroupNorm: num_channels must be a positive int, got -4"),
    ({"num_channels": "4"}, ValueError, r"GroupNorm: num_channels must be a positive int, got '4'"),
    ({"num_groups": 3}, ValueError, r"GroupNorm: num_channels \(4\) must be divisible by num_groups \(3\)"),
    ({"num_groups": 8}, ValueError, r"GroupNorm: num_channels \(4\) must be divisible by num_groups \(8\)"),
    ({"eps": 0.0}, ValueError, r"GroupNorm: eps must be positive and finite, got 0.0"),
    ({"eps": -1e-5}, ValueError, r"GroupNorm: eps must be positive and finite, got -1e-05"),
    ({"eps": math.inf}, ValueError, r"GroupNorm: eps must be positive and finite, got inf"),
    ({"eps": math.nan}, ValueError, r"GroupNorm: eps must be positive and finite, got nan"),
    ({"eps": "1e-5"}, TypeError, r"GroupNorm: eps must be a number, got '1e-5'"),
    ({"eps": None}, TypeError, r"GroupNorm: eps must be a number, got None"),
    ({"eps": True}, TypeError, r"GroupNorm: eps must be a number, got True"),
    ({"affine": 1}, TypeError, r"GroupNorm: affine must be True or False, got 1"),
    ({"affine": "no"}, TypeError, r"GroupNorm: affine must be True or False, got 'no'"),
    ({"dtype": np.int32}, md.DTypeError, r"GroupNorm: parameters need a floating dtype .* got int32"),
    ({"dtype": "junk"}, md.DTypeError, r"GroupNorm: 'junk' is not a dtype"),
])
def test_groupnorm_bad_arguments(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        GroupNorm(**{"num_groups": 2, "num_channels": 4, **kwargs})


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"num_features": 0}, ValueError, r"InstanceNorm2d: num_features must be a positive int, got 0"),
    ({"num_features": 3.0}, ValueError, r"InstanceNorm2d: num_features must be a positive int, got 3.0"),
    ({"eps": 0}, ValueError, r"InstanceNorm2d: eps must be positive and finite, got 0"),
    ({"eps": math.inf}, ValueError, r"InstanceNorm2d: eps must be positive and finite, got inf"),
    ({"eps": "0.1"}, TypeError, r"InstanceNorm2d: eps must be a number, got '0.1'"),
    ({"momentum": -0.1}, ValueError, r"InstanceNorm2d: momentum must be in \[0, 1\]"),
    ({"momentum": 1.5}, ValueError, r"InstanceNorm2d: momentum must be in \[0, 1\]"),
    ({"momentum": math.nan}, ValueError, r"InstanceNorm2d: momentum must be in \[0, 1\]"),
    ({"momentum": None}, TypeError, r"InstanceNorm2d: momentum must be a number in \[0, 1\], got None"),
    ({"momentum": "0.1"}, TypeError, r"InstanceNorm2d: momentum must be a number in \[0, 1\], got '0.1'"),
    ({"momentum": True}, TypeError, r"InstanceNorm2d: momentum must be a number in \[0, 1\], got True"),
    ({"affine": 1}, TypeError, r"InstanceNorm2d: affine must be True or False, got 1"),
    ({"track_running_stats": "yes"}, TypeError, r"InstanceNorm2d: track_running_stats must be True or False"),
    ({"dtype": np.int64}, md.DTypeError, r"InstanceNorm2d: parameters need a floating dtype .* got int64"),
])
def test_instancenorm_bad_arguments(kwargs: dict[str, Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        InstanceNorm2d(**{"num_features": 3, **kwargs})


def test_numpy_numbers_are_accepted() -> None:
    layer = GroupNorm(np.int64(2), np.int32(4), eps=np.float32(1e-3))
    assert (layer.num_groups, layer.num_channels, layer.eps) == (2, 4, pytest.approx(1e-3))
    assert type(layer.num_groups) is int and type(layer.eps) is float
    inorm = InstanceNorm2d(np.int64(3), momentum=np.float64(0.5), affine=np.bool_(True))  # type: ignore[arg-type]
    assert inorm.momentum == 0.5 and inorm.affine is True


# ----------------------------------------------------------------------------- PyTorch


def torch_pair(torch: Any, ours: Any, theirs: Any) -> None:
    """Copy our gamma/beta and running statistics into the PyTorch layer."""
    with torch.no_grad():
        if getattr(ours, "affine", False):
            theirs.weight.copy_(torch.tensor(ours.gamma.data))
            theirs.bias.copy_(torch.tensor(ours.beta.data))
        if getattr(ours, "track_running_stats", False):
            theirs.running_mean.copy_(torch.tensor(ours.running_mean))
            theirs.running_var.copy_(torch.tensor(ours.running_var))


def compare_step(torch: Any, ours: Any, theirs: Any, x: np.ndarray, g: np.ndarray, tol: float) -> float:
    """One forward and backward of both; asserts agreement to ``tol`` and returns the largest difference.

    Differences are relative to each tensor's scale, at least 1; for ``dx`` the scale is that of the
    terms that cancel in it, ``|g * gamma| / sigma``: with 2 values per group ``dx`` is about
    ``eps / var`` times them, and both libraries' float32 round-off is relative to the terms."""
    ours.zero_grad()
    theirs.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))
    y, dx = ours(x), ours.backward(g)
    gamma = np.max(np.abs(ours.gamma.data)) if ours.affine else 1.0
    terms = float(np.max(np.abs(g)) * gamma * np.max(ours._cache[1]))  # _cache[1]: 1 / sigma
    pairs = [(y, yt.detach().numpy(), 1.0), (dx, xt.grad.numpy(), terms)]
    if ours.affine:
        pairs += [(ours.gamma.grad, theirs.weight.grad.numpy(), 1.0), (ours.beta.grad, theirs.bias.grad.numpy(), 1.0)]
    if getattr(ours, "track_running_stats", False):
        pairs += [(ours.running_mean, theirs.running_mean.numpy(), 1.0),
                  (ours.running_var, theirs.running_var.numpy(), 1.0)]
    worst = 0.0
    for a, b, scale in pairs:
        assert a.dtype == b.dtype
        diff = float(np.max(np.abs(a.astype(np.float64) - b)) / max(scale, float(np.max(np.abs(b)))))
        assert diff < tol, (diff, tol)
        worst = max(worst, diff)
    return worst


TORCH_DTYPES = [("float64", 1e-10), ("float32", 1e-5)]


@pytest.mark.parametrize("dtype, tol", TORCH_DTYPES)
@pytest.mark.parametrize("G, C, shape", [*GN_SHAPES, (4, 8, (3, 8, 5, 4))])
def test_groupnorm_against_pytorch(G: int, C: int, shape: tuple[int, ...], dtype: str, tol: float) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(22)
    for affine in (True, False):
        ours = randomise(GroupNorm(G, C, affine=affine, dtype=dtype), 1)
        theirs = torch.nn.GroupNorm(G, C, affine=affine, dtype=getattr(torch, dtype))
        torch_pair(torch, ours, theirs)
        for mode in ("train", "eval"):
            ours.train(mode == "train")
            theirs.train(mode == "train")
            x = rng.normal(loc=1.0, scale=2.0, size=shape).astype(dtype)
            compare_step(torch, ours, theirs, x, rng.normal(size=shape).astype(dtype), tol)


@pytest.mark.parametrize("dtype, tol", TORCH_DTYPES)
@pytest.mark.parametrize("affine, track", [(False, False), (True, False), (False, True), (True, True)])
def test_instancenorm_against_pytorch(affine: bool, track: bool, dtype: str, tol: float) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    ours = randomise(InstanceNorm2d(3, momentum=0.3, affine=affine, track_running_stats=track, dtype=dtype), 2)
    theirs = torch.nn.InstanceNorm2d(3, momentum=0.3, affine=affine, track_running_stats=track,
                                     dtype=getattr(torch, dtype))
    torch_pair(torch, ours, theirs)
    for step, mode in enumerate(["train"] * 4 + ["eval"] * 2):  # several steps: running buffers stay equal
        ours.train(mode == "train")
        theirs.train(mode == "train")
        shape = (4, 3, 3 + step % 2, 5)
        x = rng.normal(loc=step, scale=1 + step, size=shape).astype(dtype)
        compare_step(torch, ours, theirs, x, rng.normal(size=shape).astype(dtype), tol)
    if track:
        assert int(ours.num_batches_tracked) == 4 and int(theirs.num_batches_tracked) == 0  # PyTorch never counts


@pytest.mark.parametrize("make", [lambda dt: GroupNorm(2, 2, affine=False, dtype=dt),
                                  lambda dt: InstanceNorm2d(2, dtype=dt),
                                  lambda dt: md.LayerNorm((2, 512, 512), elementwise_affine=False, dtype=dt)])
def test_float32_statistics_of_large_groups_stay_accurate(make) -> None:
    """Naive float32 sums of 262,144 (524,288) squares per row put the output 2e-5 (6e-5) off its float64
    value; long rows are summed by BLAS's blocked dot: 1.4e-6 (3.3e-6)."""
    x = np.random.default_rng(0).normal(size=(2, 2, 512, 512))
    y32 = make(np.float32)(x.astype(np.float32))
    y64 = make(np.float64)(x)
    assert np.abs(y32 - y64).max() < 6e-6
