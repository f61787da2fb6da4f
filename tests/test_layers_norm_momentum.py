"""``momentum`` of the running-statistics norms.  ``InstanceNorm2d(momentum=None)`` stays refused: PyTorch's
``InstanceNorm2d`` passes ``None`` on as 0.0 (running statistics that never move, ``num_batches_tracked``
left at 0; checked below against torch), while ``BatchNorm``'s ``None`` is a cumulative average, so minidl
does not guess which was meant; ``momentum=0.0`` is PyTorch's behaviour.  The momentum is checked when set
after construction too (``inorm.momentum = None`` turned the layer into a cumulative average silently)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md

EPS = 1e-5


def batches(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(loc=i - 1.0, scale=1.0 + i, size=(3, 2, 4, 5)) for i in range(count)]


def instance_averages(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch average of the instance means and of the unbiased instance variances, per channel."""
    return x.mean(axis=(2, 3)).mean(axis=0), x.var(axis=(2, 3), ddof=1).mean(axis=0)


def test_momentum_none_is_refused_with_what_pytorch_does_and_how_to_get_it() -> None:
    with pytest.raises(TypeError) as info:
        md.InstanceNorm2d(2, momentum=None, track_running_stats=True)  # type: ignore[arg-type]
    assert str(info.value) == (
        "InstanceNorm2d: momentum must be a number in [0, 1], got None (PyTorch's InstanceNorm2d takes None as "
        "0.0, running statistics that never move, where BatchNorm's None is a cumulative average; pass "
        "momentum=0.0 for PyTorch's behaviour)")


def test_momentum_zero_keeps_the_running_statistics_where_they_started() -> None:
    layer = md.InstanceNorm2d(2, momentum=0.0, track_running_stats=True)
    for x in batches(4):
        layer(x)
    np.testing.assert_array_equal(layer.running_mean, np.zeros(2))
    np.testing.assert_array_equal(layer.running_var, np.ones(2))
    assert int(layer.num_batches_tracked) == 4
    x = batches(1, seed=5)[0]
    np.testing.assert_allclose(layer.eval()(x), x / np.sqrt(1.0 + EPS), rtol=1e-15)


@pytest.mark.parametrize("bad, error, match", [
    (None, TypeError, r"InstanceNorm2d: momentum must be a number in \[0, 1\], got None \(PyTorch's"),
    ("0.1", TypeError, r"InstanceNorm2d: momentum must be a number in \[0, 1\], got '0.1'$"),
    (1.5, ValueError, r"InstanceNorm2d: momentum must be in \[0, 1\], got 1.5$"),
    (float("nan"), ValueError, r"InstanceNorm2d: momentum must be in \[0, 1\], got nan$"),
])
def test_instance_norm_momentum_set_later_is_checked_and_a_refusal_changes_nothing(bad: Any, error: type,
                                                                                     match: str) -> None:
    layer = md.InstanceNorm2d(2, momentum=0.25, track_running_stats=True)
    first, second = batches(2)
    layer(first)
    with pytest.raises(error, match=match):
        layer.momentum = bad
    assert layer.momentum == 0.25
    layer(second)  # still the exponential average with 0.25
    mean1, var1 = instance_averages(first)
    mean2, var2 = instance_averages(second)
    np.testing.assert_allclose(layer.running_mean, 0.75 * 0.25 * mean1 + 0.25 * mean2, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, 0.75 * (0.75 + 0.25 * var1) + 0.25 * var2, rtol=1e-13)


def test_instance_norm_momentum_set_later_is_used_by_the_next_forward() -> None:
    layer = md.InstanceNorm2d(2, momentum=0.1, track_running_stats=True)
    layer.momentum = np.float64(0.5)  # type: ignore[assignment]
    assert layer.momentum == 0.5 and type(layer.momentum) is float
    x = batches(1)[0]
    layer(x)
    mean, var = instance_averages(x)
    np.testing.assert_allclose(layer.running_mean, 0.5 * mean, rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, 0.5 + 0.5 * var, rtol=1e-14)
    assert "momentum=0.5" in repr(layer)


def test_batch_norm_momentum_set_later_is_checked_and_none_is_its_cumulative_average() -> None:
    layer = md.BatchNorm2d(2, momentum=0.1)
    for bad, error in (("x", TypeError), (-0.5, ValueError), (True, TypeError)):
        with pytest.raises(error, match="BatchNorm2d: momentum must be"):
            layer.momentum = bad
        assert layer.momentum == 0.1
    layer.momentum = None
    xs = batches(3)
    for x in xs:
        layer(x)
    stacked = np.stack(xs)  # (3 batches, N, C, H, W)
    np.testing.assert_allclose(layer.running_mean, stacked.mean(axis=(1, 3, 4)).mean(axis=0), rtol=1e-13)
    unbiased = np.stack([x.transpose(1, 0, 2, 3).reshape(2, -1).var(axis=1, ddof=1) for x in xs])
    np.testing.assert_allclose(layer.running_var, unbiased.mean(axis=0), rtol=1e-13)


def test_pytorchs_momentum_none_is_minidls_momentum_zero_if_torch_is_installed() -> None:
    torch = pytest.importorskip("torch")
    ours = md.InstanceNorm2d(2, momentum=0.0, affine=True, track_running_stats=True)
    theirs = torch.nn.InstanceNorm2d(2, momentum=None, affine=True, track_running_stats=True, dtype=torch.float64)
    rng = np.random.default_rng(3)
    ours.gamma.data = rng.normal(size=2)
    ours.beta.data = rng.normal(size=2)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.gamma.data))
        theirs.bias.copy_(torch.from_numpy(ours.beta.data))
    for x in batches(5):
        np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ours.running_mean, theirs.running_mean.numpy())
    np.testing.assert_array_equal(ours.running_var, theirs.running_var.numpy())
    np.testing.assert_array_equal(theirs.running_mean.numpy(), np.zeros(2))  # PyTorch's None: never moves
    assert int(theirs.num_batches_tracked) == 0  # (and PyTorch never counts)
    ours.eval()
    theirs.eval()
    x = batches(1, seed=9)[0]
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-12, atol=1e-14)
