"""Unflatten and Identity: shapes and values against NumPy's reshape, the gradient checker (alone and in
models), refusals, and PyTorch's nn.Unflatten when it is installed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


@pytest.mark.parametrize("shape, dim, sizes, out", [
    ((2, 12), 1, (3, 4), (2, 3, 4)), ((2, 12), -1, (2, -1, 3), (2, 2, 2, 3)), ((6, 5), 0, (2, 3), (2, 3, 5)),
    ((2, 3, 8), 2, (-1,), (2, 3, 8)), ((2, 3, 8), -2, (3, 1), (2, 3, 1, 8)), ((1, 64), 1, [4, 4, 4], (1, 4, 4, 4)),
])
def test_unflatten_is_a_reshape_of_one_axis(shape: tuple[int, ...], dim: int, sizes: Any, out: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    layer = md.Unflatten(dim, sizes)
    y = layer(x)
    assert y.shape == out
    np.testing.assert_array_equal(y.ravel(), x.ravel())  # C order: the elements in the same order
    g = np.random.default_rng(1).normal(size=out)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(shape))


@pytest.mark.parametrize("shape, dim, sizes, seed", [((3, 12), 1, (3, 4), 0), ((2, 2, 6), -1, (2, -1), 1),
                                                     ((4, 5), 0, (2, 2), 2)])
def test_unflatten_gradient_checker(shape: tuple[int, ...], dim: int, sizes: tuple[int, ...], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(md.Unflatten(dim, sizes), inputs=x, seed=seed)
    assert report["input"].checked == x.size


def test_a_dense_layer_feeds_a_convolution_through_unflatten() -> None:
    """A decoder's first step: a vector to a stack of feature maps, every tensor checked."""
    model = md.Sequential(md.Dense(5, 2 * 3 * 3, rng=0), md.Unflatten(1, (2, 3, 3)), md.Conv2D(2, 3, 2, rng=1),
                          md.Tanh(), md.Flatten(), md.Dense(12, 2, rng=2))
    x = np.random.default_rng(0).normal(size=(4, 5))
    report = assert_gradients_ok(model, inputs=x, loss=md.CrossEntropyLoss(), seed=0)
    assert report["input"].checked == x.size and report.passed
    assert str(md.summarize(model, (5,))).count("(None, 2, 3, 3)") == 1


def test_flatten_then_unflatten_gives_the_input_back() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    model = md.Sequential(md.Flatten(), md.Unflatten(1, (3, 4, 5)))
    np.testing.assert_array_equal(model(x), x)
    np.testing.assert_array_equal(model.backward(x), x)


def test_identity_changes_nothing() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    layer = md.Identity()
    assert layer(x) is x
    g = np.ones((3, 4), np.float32)
    assert layer.backward(g) is g
    labels = np.array([1, 2, 3])
    assert md.Identity()(labels) is labels  # any array, integers too
    assert md.Identity()([1.0, 2.0]).tolist() == [1.0, 2.0]
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Identity(), md.ReLU())
    report = assert_gradients_ok(model, inputs=np.random.default_rng(1).normal(size=(5, 4)), seed=1)
    assert report.passed and repr(md.Identity()) == "Identity()"


def test_refusals() -> None:
    with pytest.raises(TypeError, match=r"Unflatten: dim must be an int, got 1\.0"):
        md.Unflatten(1.0, (2, 2))  # type: ignore[arg-type]
    for bad in ((), (2, -1, -1), (0, 3), (2, 1.5), 4, None):
        with pytest.raises(ValueError, match="Unflatten: sizes must be a non-empty tuple of ints >= 1"):
            md.Unflatten(1, bad)  # type: ignore[arg-type]
    with pytest.raises(md.ShapeError, match=r"Unflatten\(dim=1, sizes=\(3, 5\)\): cannot split axis 1 of size 12 "
                                            r"\(input shape \(2, 12\)\) into \(3, 5\): the sizes' product must be 12"):
        md.Unflatten(1, (3, 5))(np.zeros((2, 12)))
    with pytest.raises(md.ShapeError, match="cannot split axis 1 of size 10"):
        md.Unflatten(1, (3, -1))(np.zeros((2, 10)))
    with pytest.raises(md.ShapeError, match=r"dim 2 is out of range for an input of shape \(2, 12\)"):
        md.Unflatten(2, (3, 4))(np.zeros((2, 12)))
    layer = md.Unflatten(1, (3, 4))
    with pytest.raises(md.BackwardBeforeForwardError):
        layer.backward(np.zeros((2, 3, 4)))
    layer(np.zeros((2, 12)))
    with pytest.raises(md.ShapeError, match=r"Unflatten.backward: expected grad_output of shape \(2, 3, 4\)"):
        layer.backward(np.zeros((2, 12)))
    identity = md.Identity()
    with pytest.raises(md.BackwardBeforeForwardError):
        identity.backward(np.zeros(2))
    identity(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match=r"Identity.backward: expected grad_output of shape \(2, 3\)"):
        identity.backward(np.zeros((3, 2)))
    with pytest.raises(md.DTypeError, match=r"Identity\.backward: expected grad_output of dtype float64"):
        identity.backward(np.zeros((2, 3), np.float32))


def test_unflatten_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 3, 24))
    for dim, sizes in ((2, (2, 3, 4)), (-1, (4, -1)), (1, (3, 1)), (0, (1, 2))):
        theirs = torch.nn.Unflatten(dim, sizes)(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(md.Unflatten(dim, sizes)(x), theirs)


def test_identity_gives_native_arrays_and_lets_a_model_infer_its_input() -> None:
    x = np.ones((2, 3), ">f8")
    model = md.Sequential(md.Identity(), md.Tanh())
    y = model(x)
    assert y.dtype.isnative and model[0](x).dtype.isnative
    np.testing.assert_allclose(model.backward(np.ones_like(y)), 1 - np.tanh(1.0) ** 2)  # no byte-order refusal
    assert "(None, 5)" in str(md.summarize(md.Sequential(md.Identity(), md.Dense(5, 2))))  # looked past
    assert_gradients_ok(md.Sequential(md.Identity(), md.Dense(5, 2, rng=0)), seed=0)  # inputs from the Dense
    report = assert_gradients_ok(md.Identity(), inputs=np.random.default_rng(0).normal(size=(3, 2)), seed=0)
    assert report["input"].checked == 6
    with pytest.raises(md.DTypeError, match="Identity: input is a masked array"):
        md.Identity()(np.ma.array([1.0, 2.0]))
