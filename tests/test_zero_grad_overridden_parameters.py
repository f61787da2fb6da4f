"""``Layer.zero_grad`` walks the registries (``every_parameter``), except for a layer whose class overrides
``parameters()`` or ``named_parameters()``: that one is asked its own, as PyTorch's ``zero_grad`` asks it, so
a parameter it yields from outside the registries (a shared one) is zeroed too and its gradient does not pile
up over the steps of a training loop.  And ``every_parameter`` lists what ``parameters()`` lists, in its order,
as its docstring promises."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.layer import every_parameter


class _ExtraByNamedParameters(md.Layer):
    """``inner(x) + extra``: ``extra`` (2,) is held outside the registries and yielded by an overridden
    ``named_parameters`` only."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = md.Dense(2, 2, rng=0)
        object.__setattr__(self, "_extra", md.Parameter(np.array([0.5, -0.25])))  # (not registered)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.inner(x) + self._extra.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._extra.grad += g.sum(axis=0)
        return self.inner.backward(g)

    def named_parameters(self, prefix: str = "", *, remove_duplicate: bool = True):  # type: ignore[override]
        yield from super().named_parameters(prefix, remove_duplicate=remove_duplicate)
        yield (f"{prefix}.extra" if prefix else "extra"), self._extra


class _ExtraByParameters(_ExtraByNamedParameters):
    """The same, told by an overridden ``parameters()`` (``named_parameters`` as Layer's)."""

    named_parameters = md.Layer.named_parameters  # type: ignore[assignment]

    def parameters(self) -> list[md.Parameter]:
        return [*md.Layer.parameters(self), self._extra]


@pytest.mark.parametrize("cls", [_ExtraByNamedParameters, _ExtraByParameters])
def test_zero_grad_clears_a_parameter_only_the_override_yields(cls: type[_ExtraByNamedParameters]) -> None:
    layer = cls()
    assert [p is layer._extra for p in layer.parameters()] == [False, True]
    assert [p is layer._extra for p in every_parameter(layer)] == [False, True]
    layer._extra.grad += 5.0
    layer.inner.W.grad += 1.0
    layer.zero_grad()
    assert not layer._extra.has_grad and not layer.inner.W.has_grad
    np.testing.assert_array_equal(layer._extra.grad, [0.0, 0.0])
    np.testing.assert_array_equal(layer.inner.W.grad, np.zeros((3, 2)))


def _by_hand(w: np.ndarray, extra: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HalfSquaredError of ``[1, x] @ w + extra`` against y: dCF/dw and dCF/dextra (one batch, no accumulation)."""
    ones_x = np.hstack([np.ones((len(x), 1)), x])
    r = ones_x @ w + extra - y
    return ones_x.T @ r, r.sum(axis=0)


@pytest.mark.parametrize("cls", [_ExtraByNamedParameters, _ExtraByParameters])
def test_a_two_step_training_loop_with_zero_grad_does_not_accumulate(cls: type[_ExtraByNamedParameters]) -> None:
    """The PyTorch loop (``model.zero_grad()``, forward, backward, step) twice: each step's gradient of the
    overridden parameter is the batch's own, computed by hand, and so is the update."""
    layer, loss, lr = cls(), md.HalfSquaredError(), 0.1
    optimizer = md.SGD(layer.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    w, extra = layer.inner.W.data.copy(), layer._extra.data.copy()
    for _ in range(2):
        layer.zero_grad()
        loss(layer(x), y)
        layer.backward(loss.backward())
        grad_w, grad_extra = _by_hand(w, extra, x, y)
        np.testing.assert_allclose(layer._extra.grad, grad_extra, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.inner.W.grad, grad_w, rtol=1e-12, atol=1e-12)
        optimizer.step()
        w, extra = w - lr * grad_w, extra - lr * grad_extra
        np.testing.assert_allclose(layer._extra.data, extra, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.inner.W.data, w, rtol=1e-12, atol=1e-12)


def test_a_two_step_fit_updates_the_overridden_parameter_by_each_batch_alone() -> None:
    """``fit`` (two full batches, no shuffle) zeroes the gradients of ``parameters()`` before each step:
    the parameters after it are those of two hand-computed SGD steps."""
    layer, lr = _ExtraByNamedParameters(), 0.1
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    w, extra = layer.inner.W.data.copy(), layer._extra.data.copy()
    md.fit(layer, x, y, loss=md.HalfSquaredError(), optimizer=md.SGD(layer.parameters(), lr=lr), epochs=2,
           batch_size=5, shuffle=False, verbose=0)
    for _ in range(2):
        grad_w, grad_extra = _by_hand(w, extra, x, y)
        w, extra = w - lr * grad_w, extra - lr * grad_extra
    np.testing.assert_allclose(layer._extra.data, extra, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.inner.W.data, w, rtol=1e-12, atol=1e-12)


class _Branches(md.Layer):
    """Own parameter, then two sub-layers, the second a Sequential, and the first shared again at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = md.Parameter(np.ones(3))
        self.left = md.Dense(3, 3, rng=1)
        self.right = md.Sequential(md.Dense(3, 4, rng=2), md.ReLU(), md.Sequential(md.Dense(4, 3, rng=3)),
                                   md.LayerNorm(3))
        self.again = self.left

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.right(self.left(x * self.scale.data))


@pytest.mark.parametrize("make", [
    lambda: md.Sequential(md.Dense(2, 3, rng=0), md.Dense(3, 4, rng=1), md.Dense(4, 1, rng=2)),
    lambda: md.Sequential(md.Sequential(md.Dense(2, 3, rng=0), md.LayerNorm(3)), md.ReLU(),
                          md.Sequential(md.Dense(3, 3, rng=1), md.Sequential(md.Dense(3, 2, rng=2))),
                          md.BatchNorm1d(2)),
    _Branches,
], ids=["flat", "nested", "branches-shared"])
def test_every_parameter_is_parameters_in_its_order(make) -> None:
    model = make()
    expected = model.parameters()
    assert len(expected) >= 3
    assert [id(p) for p in every_parameter(model)] == [id(p) for p in expected]
