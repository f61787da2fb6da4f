"""The thirtieth session's review of the gradient checker: a layer or loss checked in place keeps the user's
forward caches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md


class SelfCopy(md.Layer):
    """y = x @ W, checked in place: its ``__deepcopy__`` returns itself.  ``stop_at``: the forward call (counted
    over every instance) that raises KeyboardInterrupt, as a user's Ctrl-C in the middle of a check."""

    calls = 0
    stop_at: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.eye(3) * 0.7 + 0.1)
        self._x: np.ndarray | None = None

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        SelfCopy.calls += 1
        if SelfCopy.stop_at is not None and SelfCopy.calls >= SelfCopy.stop_at:
            raise KeyboardInterrupt
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += self._x.T @ grad_output
        return grad_output @ self.W.data.T

    def __deepcopy__(self, memo: dict[int, Any]) -> SelfCopy:
        return self


class SelfCopyLoss(md.Loss):
    """0.5 * mean((y_pred - y_true)**2), checked in place: its ``__deepcopy__`` returns itself."""

    def __init__(self) -> None:
        super().__init__()
        self._d: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._d = y_pred - y_true
        return float(0.5 * np.mean(self._d ** 2))

    def backward(self) -> np.ndarray:
        assert self._d is not None
        return self._d / self._d.size

    def __deepcopy__(self, memo: dict[int, Any]) -> SelfCopyLoss:
        return self


@pytest.fixture(autouse=True)
def _no_stop() -> Any:
    SelfCopy.calls, SelfCopy.stop_at = 0, None
    yield
    SelfCopy.calls, SelfCopy.stop_at = 0, None


def _user_model() -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    """A float32 model with an in-place-checked layer after the user's forward; the input and the output."""
    model = md.Sequential(md.Dense(3, 3, rng=0), SelfCopy()).astype(np.float32)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    return model, x, model(x)


def _user_grad(model: md.Sequential, y: np.ndarray) -> np.ndarray:
    model.zero_grad()
    model.backward(np.ones_like(y))
    return model[1].W.grad.copy()


def test_a_layer_checked_in_place_keeps_the_users_forward_cache() -> None:
    model, x, y = _user_model()
    cache = model[1]._x
    expected = _user_grad(model, y)
    md.GradientChecker(model, inputs=x).run()
    assert model[1]._x is cache  # the same array: float32, the user's forward's point, not the check's last one
    assert cache.dtype == np.float32
    got = _user_grad(model, y)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_a_layer_checked_in_place_keeps_the_users_cache_when_the_check_is_interrupted() -> None:
    model, x, _ = _user_model()
    cache = model[1]._x
    SelfCopy.stop_at = SelfCopy.calls + 6  # in the middle of the check's passes
    with pytest.raises(KeyboardInterrupt):
        md.GradientChecker(model, inputs=x).run()
    assert model[1]._x is cache
    assert model[1].W.data.dtype == np.float32


def test_a_loss_checked_in_place_keeps_the_users_forward_cache() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0))
    loss = SelfCopyLoss()
    x, t = np.ones((4, 3)), np.zeros((4, 2))
    loss(model(x), t)
    cache = loss._d
    md.GradientChecker(model, inputs=x, loss=loss, targets=t + 0.5).run()
    assert loss._d is cache
    np.testing.assert_array_equal(loss.backward(), cache / cache.size)
