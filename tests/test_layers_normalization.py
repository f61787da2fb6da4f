"""BatchNorm1d, BatchNorm2d and LayerNorm: statistics, running-stat updates, train/eval, gradient checks."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


def randomise(layer: md.Layer, seed: int) -> md.Layer:
    """Non-trivial gamma/beta (and running stats) so that every term of the back-pass matters."""
    rng = np.random.default_rng(seed)
    for _, param in layer.named_parameters():
        param.data = rng.normal(size=param.shape)
    if getattr(layer, "track_running_stats", False):
        layer.running_mean = rng.normal(size=layer.running_mean.shape)
        layer.running_var = rng.uniform(0.5, 2.0, size=layer.running_var.shape)
    return layer


@pytest.mark.parametrize("layer, shape, axes", [
    (md.BatchNorm1d(3), (6, 3), (0,)),
    (md.BatchNorm1d(2), (4, 2, 5), (0, 2)),
    (md.BatchNorm2d(3), (4, 3, 2, 5), (0, 2, 3)),
])
def test_training_forward_normalises_per_channel(layer: md.Layer, shape: tuple[int, ...],
                                                 axes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=3.0, scale=2.0, size=shape)
    y = layer(x)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-13)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-4)  # var / (var + eps)
    randomise(layer, 1)
    y = layer(x)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    bshape = [1] * len(shape)
    bshape[1] = shape[1]
    gamma, beta = layer.gamma.data.reshape(bshape), layer.beta.data.reshape(bshape)
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(var + 1e-5) + beta, rtol=1e-12, atol=1e-13)


def test_running_statistics_follow_pytorch_formula() -> None:
    rng = np.random.default_rng(2)
    layer = md.BatchNorm2d(2)
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    mean, var = np.zeros(2), np.ones(2)
    for step in range(3):
        x = rng.normal(loc=step, scale=1 + step, size=(3, 2, 2, 2))
        layer(x)
        m = 3 * 2 * 2
        batch_mean = x.mean(axis=(0, 2, 3))
        unbiased = x.var(axis=(0, 2, 3)) * m / (m - 1)
        mean = 0.9 * mean + 0.1 * batch_mean
        var = 0.9 * var + 0.1 * unbiased
        np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-14)
        np.testing.assert_allclose(layer.running_var, var, rtol=1e-14)
        assert int(layer.num_batches_tracked) == step + 1
    # eval: the running statistics normalise, and nothing is updated
    layer.eval()
    x = rng.normal(size=(2, 2, 3, 3))
    y = layer(x)
    expected = (x - mean.reshape(1, 2, 1, 1)) / np.sqrt(var.reshape(1, 2, 1, 1) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-13)
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-14)
    assert int(layer.num_batches_tracked) == 3


def test_momentum_none_is_a_cumulative_average_and_custom_momentum() -> None:
    rng = np.random.default_rng(3)
    batches = [rng.normal(loc=i, size=(4, 3)) for i in range(3)]
    layer = md.BatchNorm1d(3, momentum=None)
    for x in batches:
        layer(x)
    np.testing.assert_allclose(layer.running_mean, np.mean([x.mean(axis=0) for x in batches], axis=0), rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, np.mean([x.var(axis=0, ddof=1) for x in batches], axis=0),
                               rtol=1e-13)
    layer = md.BatchNorm1d(3, momentum=0.5)
    layer(batches[0])
    np.testing.assert_allclose(layer.running_mean, 0.5 * batches[0].mean(axis=0), rtol=1e-14)
    frozen, follows = md.BatchNorm1d(3, momentum=0.0), md.BatchNorm1d(3, momentum=1.0)  # both ends are valid
    for x in batches:
        frozen(x)
        follows(x)
    np.testing.assert_array_equal(frozen.running_mean, 0.0)
    np.testing.assert_array_equal(frozen.running_var, 1.0)
    np.testing.assert_allclose(follows.running_mean, batches[-1].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(follows.running_var, batches[-1].var(axis=0, ddof=1), rtol=1e-14)


def test_no_tracking_and_no_affine() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(loc=2.0, size=(5, 3))
    layer = md.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    assert list(layer.named_parameters()) == [] and list(layer.named_buffers()) == []
    y = layer(x)  # batch statistics even in eval mode
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-13)
    assert "affine=False" in repr(layer) and "track_running_stats=False" in repr(layer)
    assert layer(x.astype(np.float32)).dtype == np.float32  # nothing to match: any float dtype


def test_state_dict_astype_and_float32() -> None:
    layer = md.BatchNorm2d(2)
    assert sorted(layer.state_dict()) == ["beta", "gamma", "num_batches_tracked", "running_mean", "running_var"]
    layer.astype(np.float32)
    assert layer.running_mean.dtype == np.float32 and layer.gamma.data.dtype == np.float32
    x = np.random.default_rng(0).normal(size=(2, 2, 3, 3)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and layer.running_var.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    layer.eval()
    assert layer(x).dtype == np.float32
    with pytest.raises(md.DTypeError, match=r"BatchNorm2d\(2\): input dtype float64"):
        layer(x.astype(np.float64))


def test_errors_name_the_layer() -> None:
    with pytest.raises(md.ShapeError, match=r"BatchNorm2d\(3\): expected input of shape \(N, 3, H, W\), "
                                            r"got shape \(2, 4, 5, 5\)"):
        md.BatchNorm2d(3)(np.zeros((2, 4, 5, 5)))
    with pytest.raises(md.ShapeError, match=r"BatchNorm2d\(3\): expected a 4-D input"):
        md.BatchNorm2d(3)(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match=r"BatchNorm1d\(3\): expected a 2-D or 3-D input of shape \(N, 3\) or "
                                            r"\(N, 3, L\), got shape \(2, 3, 4, 4\)$"):
        md.BatchNorm1d(3)(np.zeros((2, 3, 4, 4)))
    with pytest.raises(md.ShapeError, match=r"more than 1 value per channel"):
        md.BatchNorm1d(3)(np.zeros((1, 3)))
    md.BatchNorm1d(3).eval()(np.zeros((1, 3)))  # fine in eval mode
    layer = md.BatchNorm1d(3)
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.zeros((2, 3)))
    layer(np.random.default_rng(0).normal(size=(2, 3)))
    with pytest.raises(md.ShapeError, match=r"BatchNorm1d\(3\).backward: expected grad_output of shape \(2, 3\)"):
        layer.backward(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="momentum"):
        md.BatchNorm1d(3, momentum=2.0)


BN_CASES = [
    (lambda: md.BatchNorm1d(3), (5, 3)),
    (lambda: md.BatchNorm1d(2), (3, 2, 4)),
    (lambda: md.BatchNorm2d(2), (3, 2, 3, 2)),
    (lambda: md.BatchNorm2d(3, affine=False), (2, 3, 2, 2)),
]


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e160), (np.float32, 1e25)])
@pytest.mark.parametrize("make, shape, what", [
    (lambda: md.BatchNorm1d(3), (8, 3), r"BatchNorm1d\(3\): the batch variance of channel\(s\) 1 "),
    (lambda: md.BatchNorm2d(3), (4, 3, 2, 2), r"BatchNorm2d\(3\): the batch variance of channel\(s\) 1 "),
    (lambda: md.LayerNorm(3), (8, 3), r"LayerNorm\(3\): the variance of group\(s\) \(the leading axes flattened, "
                                      r"row-major\) 0, 1, 2, 3, 4, \.\.\. "),
])
def test_huge_finite_inputs_whose_variance_overflows_are_refused(make, shape, what, dtype, big) -> None:
    """Finite inputs too large for their dtype's squares: the variance is inf, so normalising would give
    zeros and the running variance would become inf, silently.  Refused instead, with nothing changed
    and no RuntimeWarning first (under -W error it would replace the error)."""
    layer = randomise(make(), 0).astype(dtype)
    x = np.random.default_rng(1).normal(size=shape).astype(dtype)
    if isinstance(layer, md.LayerNorm):
        x *= big  # every sample
    else:
        x[:, 1] *= big  # channel 1 only
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pattern = what + rf"is not finite in {np.dtype(dtype).name} .*scale the input down"
        with pytest.raises(md.NonFiniteError, match=pattern):
            layer(x)
    assert all(np.array_equal(v, before[k]) for k, v in layer.state_dict().items())
    assert layer._cache is None  # (a fresh layer: nothing cached by the refused call)
    x /= big  # the same data at a sane scale goes through, and a refused call then leaves its cache
    assert np.isfinite(layer(x)).all()
    cache = layer._cache
    with pytest.raises(md.NonFiniteError):
        layer(x * big)
    assert layer._cache is cache


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("make, shape", BN_CASES)
def test_batchnorm_gradient_checker(make: object, shape: tuple[int, ...], seed: int, mode: str) -> None:
    layer = randomise(make(), seed)  # type: ignore[operator]
    if mode == "eval":
        layer.eval()
    x = np.random.default_rng(seed + 10).normal(loc=1.0, scale=2.0, size=shape)
    before = {name: None if b is None else b.copy() for name, b in layer.named_buffers()}
    assert_gradients_ok(layer, inputs=x, seed=seed)
    for name, buffer in layer.named_buffers():  # the checker restores the running statistics
        np.testing.assert_array_equal(buffer, before[name])


def test_batchnorm_in_a_cnn_with_cross_entropy() -> None:
    model = md.Sequential(md.Conv2D(1, 2, 3, rng=0), md.BatchNorm2d(2), md.ReLU(), md.Flatten(),
                          md.Dense(8, 3, rng=1))
    x = np.random.default_rng(5).normal(size=(4, 1, 4, 4))
    assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), targets=np.array([0, 1, 2, 1]))


# ----------------------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("normalized_shape, shape", [(4, (3, 4)), ((2, 3), (2, 2, 3)), (5, (2, 3, 5))])
def test_layernorm_forward(normalized_shape: int | tuple[int, ...], shape: tuple[int, ...]) -> None:
    layer = randomise(md.LayerNorm(normalized_shape), 0)
    x = np.random.default_rng(1).normal(loc=-2.0, scale=3.0, size=shape)
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    axes = tuple(range(len(shape) - k, len(shape)))
    xhat = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)
    expected = xhat * layer.gamma.data + layer.beta.data
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-13)
    plain = md.LayerNorm(normalized_shape, elementwise_affine=False)
    np.testing.assert_allclose(plain(x), xhat, rtol=1e-12, atol=1e-13)
    assert list(plain.named_parameters()) == []


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("make, shape", [
    (lambda: md.LayerNorm(4), (3, 4)),
    (lambda: md.LayerNorm((2, 3)), (2, 2, 3)),
    (lambda: md.LayerNorm(3), (2, 2, 3)),
    (lambda: md.LayerNorm(5, elementwise_affine=False), (2, 5)),
])
def test_layernorm_gradient_checker(make: object, shape: tuple[int, ...], seed: int) -> None:
    layer = randomise(make(), seed)  # type: ignore[operator]
    x = np.random.default_rng(seed).normal(size=shape)
    assert_gradients_ok(layer, inputs=x, seed=seed)


def test_layernorm_errors_dtype_and_hint() -> None:
    layer = md.LayerNorm((2, 3))
    with pytest.raises(md.ShapeError, match=r"LayerNorm\(\(2, 3\)\): expected input of shape \(\.\.\., 2, 3\), "
                                            r"got shape \(4, 3, 2\)"):
        layer(np.zeros((4, 3, 2)))
    with pytest.raises(md.ShapeError, match=r"LayerNorm\(\(2, 3\)\): expected a 2-D \(or higher\) input"):
        layer(np.zeros(6))
    assert layer.input_shape_hint() == (2, 3)
    layer32 = md.LayerNorm(4, dtype=np.float32)
    y = layer32(np.ones((2, 4), dtype=np.float32))
    assert y.dtype == np.float32
    assert layer32.backward(np.ones_like(y)).dtype == np.float32


def test_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.normal(loc=1.0, size=(4, 3, 2, 2))
    ours = randomise(md.BatchNorm2d(3), 0)
    theirs = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.gamma.data))
        theirs.bias.copy_(torch.tensor(ours.beta.data))
        theirs.running_mean.copy_(torch.tensor(ours.running_mean))
        theirs.running_var.copy_(torch.tensor(ours.running_var))
    for mode in ("train", "eval"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        theirs.zero_grad()
        ours.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        yt = theirs(xt)
        g = rng.normal(size=x.shape)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.gamma.grad, theirs.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.beta.grad, theirs.bias.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-13)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-13)
    ln, tln = md.LayerNorm((2, 2)), torch.nn.LayerNorm((2, 2), dtype=torch.float64)
    xt = torch.tensor(x, requires_grad=True)
    yt = tln(xt)
    g = rng.normal(size=x.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ln(x), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ln.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ln.gamma.grad, tln.weight.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("kw", [{"eps": True}, {"momentum": True}, {"momentum": "0.1"}, {"eps": None}])
def test_batchnorm_numbers_must_be_numbers(kw) -> None:
    with pytest.raises(TypeError, match=f"BatchNorm1d: {next(iter(kw))} must be a number"):
        md.BatchNorm1d(3, **kw)
    assert md.BatchNorm1d(3, eps=np.float64(1e-3), momentum=None).momentum is None
    if "eps" in kw:
        with pytest.raises(TypeError, match="LayerNorm: eps must be a number"):
            md.LayerNorm(3, **kw)


@pytest.mark.parametrize("shape", [(4,), (2, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_layernorm_takes_an_input_without_leading_axes(shape, seed) -> None:
    """(..., *normalized_shape), as the docs and PyTorch say: a lone (4,) vector was refused."""
    rng = np.random.default_rng(seed)
    layer = md.LayerNorm(shape)
    layer.gamma.data[...] = rng.uniform(0.5, 2, shape)
    layer.beta.data[...] = rng.normal(size=shape)
    x = rng.normal(size=shape)
    y = layer(x)
    expected = (x - x.mean()) / np.sqrt(x.var() + layer.eps) * layer.gamma.data + layer.beta.data
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-13)
    batched = md.LayerNorm(shape)
    batched.load_state_dict(layer.state_dict())
    np.testing.assert_allclose(batched(x[None])[0], y, rtol=1e-14, atol=1e-15)
    report = md.GradientChecker(layer, inputs=x).run()
    assert report.passed and report["input"].checked == x.size


def test_batchnorm_without_running_statistics_does_not_advise_eval() -> None:
    with pytest.raises(md.ShapeError, match=r"more than 1 value per channel without running statistics "
                                            r"\(track_running_stats=False\), got input shape \(1, 3\); "
                                            r"use a larger batch$"):
        md.BatchNorm1d(3, track_running_stats=False).eval()(np.ones((1, 3)))
    with pytest.raises(md.ShapeError, match=r"per channel in training, .*; use a larger batch or eval\(\)$"):
        md.BatchNorm1d(3)(np.ones((1, 3)))


def test_layernorm_takes_nested_lists_by_their_own_rank() -> None:
    """A list has no ndim: its leading axes were checked as the normalised ones ('expected (..., 3),
    got (2, 3)'), and a (3, 1) list crashed in a reshape."""
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]]
    np.testing.assert_array_equal(md.LayerNorm(3)(rows), md.LayerNorm(3)(np.array(rows)))
    with pytest.raises(md.ShapeError, match=r"expected input of shape \(\.\.\., 3\), got shape \(3, 1\)"):
        md.LayerNorm(3)([[1.0], [2.0], [3.0]])
    with pytest.raises(md.ShapeError, match=r"got shape \(2, 3, 3, 2\)"):
        md.LayerNorm((2, 3), elementwise_affine=False)(np.ones((2, 3, 3, 2)).tolist())


# --- fourteenth session: what an outside review found ---------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_instance_norm_running_variance_cannot_overflow_in_the_average(dtype: type) -> None:
    """Each sample's variance was finite, their mean (sum first) overflowed: running_var became inf
    with a RuntimeWarning, eval outputs collapsed to beta, and the layer's own checkpoint was refused."""
    big = 9e153 if dtype is np.float64 else 1.3e19
    x = np.tile(np.array([big, -big], dtype=dtype).reshape(1, 1, 1, 2), (4, 1, 1, 1))
    layer = md.InstanceNorm2d(1, track_running_stats=True, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x)  # the biased variance big**2 per sample: finite, and so is their average
    assert np.isfinite(layer.running_var).all() and layer.running_var.dtype == dtype
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * 2 * big**2 if dtype is np.float64 else
                               np.float32(0.9) + np.float32(0.1) * np.float32(2) * np.float32(big) ** 2, rtol=1e-6)
    md.InstanceNorm2d(1, track_running_stats=True, dtype=dtype).load_state_dict(layer.state_dict())


def test_batch_norm_dtype_argument_is_checked_as_the_other_layers() -> None:
    layer = md.BatchNorm1d(3, dtype=">f4")
    assert layer.gamma.data.dtype == np.float32 and layer.running_var.dtype.isnative
    assert layer(np.ones((4, 3), np.float32)).dtype == np.float32
    with pytest.raises(md.DTypeError, match="BatchNorm2d"):
        md.BatchNorm2d(3, dtype="abc")
    with pytest.raises(md.DTypeError, match="BatchNorm1d"):
        md.BatchNorm1d(3, dtype=np.int32)


@pytest.mark.parametrize("make", [lambda eps: md.BatchNorm1d(3, eps=eps), lambda eps: md.BatchNorm2d(3, eps=eps),
                                  lambda eps: md.LayerNorm(3, eps=eps), lambda eps: md.InstanceNorm2d(3, eps=eps),
                                  lambda eps: md.GroupNorm(1, 3, eps=eps)])
def test_every_norm_refuses_an_infinite_eps(make: Any) -> None:
    """eps=inf made BatchNorm and LayerNorm output beta with zero gradients; GroupNorm refused it."""
    for eps in (math.inf, math.nan, 0.0, -1e-5):
        with pytest.raises(ValueError, match="eps must be positive and finite"):
            make(eps)
    with pytest.raises(TypeError, match="eps must be a number"):
        make("1e-5")


@pytest.mark.parametrize("shape", [True, 3.0, "3", None, (3, True), (3, 0), []])
def test_layer_norm_normalized_shape_must_be_positive_ints(shape: Any) -> None:
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape must"):
        md.LayerNorm(shape)


def test_layer_norm_takes_an_int_or_an_iterable_of_them() -> None:
    for shape, expected in ((3, (3,)), (np.int64(3), (3,)), ((2, 3), (2, 3)), ([2, 3], (2, 3)),
                            (np.array([2, 3]), (2, 3)), (range(2, 4), (2, 3))):
        assert md.LayerNorm(shape).normalized_shape == expected


@pytest.mark.parametrize("make", [lambda: md.BatchNorm1d(3, dtype=np.float32),
                                  lambda: md.BatchNorm1d(3, affine=False, dtype=np.float32),
                                  lambda: md.InstanceNorm2d(3, track_running_stats=True, dtype=np.float32)])
def test_a_running_statistic_assigned_in_another_dtype_is_refused_at_forward(make: Any) -> None:
    """A float64 running_var assigned to a float32 layer was kept and spread into checkpoints that a
    fresh float32 layer refuses."""
    layer = make()
    layer.running_var = np.full(3, 4.0)
    x = np.random.default_rng(0).normal(size=(4, 3) if isinstance(layer, md.BatchNorm1d) else (4, 3, 2, 2))
    expected = (r"the buffer running_var is float64, not the layer's float32 \(assigned by hand\?\); assign "
                r"running_var.astype\(np.float32\)") if layer.affine else \
        r"the buffers running_mean \(float32\) and running_var \(float64\) differ in dtype \(one assigned by hand\?\)"
    with pytest.raises(md.DTypeError, match=expected):
        layer(x.astype(np.float32))
    with pytest.raises(md.DTypeError, match=expected):  # (checked before the input: not a message about it)
        layer(x)
    assert layer.running_var.dtype == np.float64 and int(layer.num_batches_tracked) == 0
    layer.running_var = layer.running_var.astype(np.float32)
    assert layer(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("make, shape", [
    (lambda **kw: md.BatchNorm1d(4, **kw), (6, 4)),
    (lambda **kw: md.BatchNorm1d(3, **kw), (5, 3, 7)),
    (lambda **kw: md.BatchNorm2d(3, **kw), (2, 3, 4, 5)),
], ids=["bn1d", "bn1d-seq", "bn2d"])
@pytest.mark.parametrize("frozen, sums", [
    ("affine=False", 0), ("gamma and beta", 0), ("gamma", 0), ("beta", 1), ("nothing", 1),
])
def test_batch_norm_eval_backward_computes_only_the_channel_sums_it_uses(
        make: Any, shape: tuple[int, ...], frozen: str, sums: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """In eval mode dx is ``g * gamma / sqrt(var + eps)``: the sums over g (beta's gradient) and over
    g * xhat (gamma's) are computed only for a parameter that is trained; dx and the trained gradients
    are those of the fully trainable layer, and a frozen parameter's gradient stays untouched."""
    import minidl.layers.normalization as normalization
    rng = np.random.default_rng(3)
    affine = frozen != "affine=False"
    reference = randomise(make(affine=affine), 1).eval()
    layer = randomise(make(affine=affine), 1).eval()
    if frozen == "gamma and beta":
        layer.requires_grad_(False)
    elif frozen in ("gamma", "beta"):
        getattr(layer, frozen).requires_grad = False
    x, g = rng.normal(size=shape), rng.normal(size=shape)
    reference(x)
    dx_ref = reference.backward(g)
    layer(x)
    products: list[tuple[int, ...]] = []
    real = normalization._channel_dot
    monkeypatch.setattr(normalization, "_channel_dot", lambda a, b: (products.append(a.shape), real(a, b))[1])
    dx = layer.backward(g)
    assert len(products) == sums  # gamma's g * xhat sum: only for a trained gamma
    np.testing.assert_array_equal(dx, dx_ref)
    reference_grads = dict(reference.named_parameters())
    for name, param in layer.named_parameters():
        if param.requires_grad:
            np.testing.assert_array_equal(param.grad, reference_grads[name].grad)
        else:
            assert not param.has_grad
            np.testing.assert_array_equal(param.grad, np.zeros(param.shape))


@pytest.mark.parametrize("frozen", [False, True])
def test_batch_norm_training_backward_still_uses_both_sums_when_frozen(frozen: bool) -> None:
    """With batch statistics dx itself needs both channel sums: frozen or not, dx is the same."""
    rng = np.random.default_rng(4)
    x, g = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 3, 4))
    reference, layer = randomise(md.BatchNorm1d(3), 2), randomise(md.BatchNorm1d(3), 2)
    layer.requires_grad_(not frozen)
    reference(x)
    layer(x)
    np.testing.assert_array_equal(layer.backward(g), reference.backward(g))
    assert layer.gamma.has_grad is (not frozen) and layer.beta.has_grad is (not frozen)
