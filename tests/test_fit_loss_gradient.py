"""fit refuses a loss whose backward is not dLoss/dy_pred (wrong shape, dtype or kind) by the loss's name,
before the model's backward sees it, and leaves the model as it was."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md


class HalfSquares(md.Loss):
    """0.5 * sum((y_pred - y)^2), whose backward returns ``mangle(y_pred - y)``."""

    def __init__(self, mangle: Any = None) -> None:
        super().__init__()
        self.mangle = mangle

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self.diff = y_pred - y_true
        return float(0.5 * np.sum(self.diff ** 2))

    def backward(self) -> Any:
        return self.diff if self.mangle is None else self.mangle(self.diff)


class TwoHeads(md.Model):
    """x: (N, 3) -> (a: (N, 2), b: (N, 1))."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = md.Dense(3, 2, rng=0), md.Dense(3, 1, rng=1)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.a(x), self.b(x)

    def backward(self, grad_output: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return self.a.backward(grad_output[0]) + self.b.backward(grad_output[1])


class PairLoss(md.Loss):
    """sum of both heads' half squared errors against targets (N, 3) split 2 + 1."""

    several_predictions = True

    def __init__(self, mangle: Any = None) -> None:
        super().__init__()
        self.mangle = mangle

    def forward(self, y_pred: tuple[np.ndarray, np.ndarray], y_true: np.ndarray) -> float:
        self.diffs = (y_pred[0] - y_true[:, :2], y_pred[1] - y_true[:, 2:])
        return float(sum(0.5 * np.sum(d ** 2) for d in self.diffs))

    def backward(self) -> Any:
        return self.diffs if self.mangle is None else self.mangle(self.diffs)


def data(dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 3)).astype(dtype), rng.normal(size=(6, 3)).astype(dtype)


def refused(model: md.Layer, loss: md.Loss, x: np.ndarray, y: np.ndarray) -> md.MinidlError:
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    with pytest.raises(md.MinidlError) as info:
        model.fit(x, y, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=3, verbose=0)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[name], err_msg=name)
    return info.value


@pytest.mark.parametrize("mangle, kind, words", [
    (np.ravel, md.ShapeError, "returned a gradient of shape (6,); it must have the prediction's shape (3, 2)"),
    (lambda d: d[:, :1], md.ShapeError, "returned a gradient of shape (3, 1); it must have the prediction's "
                                        "shape (3, 2)"),
    (lambda d: d.T, md.ShapeError, "returned a gradient of shape (2, 3)"),
    (lambda d: d.tolist(), md.DTypeError, "returned a list as its gradient; it must be an array of the prediction's "
                                         "shape (3, 2) and dtype float32"),
    (lambda d: float(d.sum()), md.DTypeError, "returned a float as its gradient"),
    (lambda d: d.astype(np.float64), md.DTypeError, "returned a gradient of dtype float64; it must have the "
                                                    "prediction's dtype float32"),
])
def test_a_loss_backward_that_is_not_dloss_dy_pred_is_refused_by_the_loss_s_name(
        mangle: Any, kind: type, words: str) -> None:
    x, y = data(np.float32)
    error = refused(md.Sequential(md.Dense(3, 2, rng=0, dtype=np.float32)), HalfSquares(mangle), x, y[:, :2])
    assert type(error) is kind
    assert "HalfSquares.backward: " + words in str(error)
    assert "epoch 1/1, batch 1/2" in str(error) and "Dense" not in str(error)


@pytest.mark.parametrize("mangle, kind, words", [
    (lambda ds: ds[0], md.ShapeError, "returned ndarray; the model returns a tuple of 2 predictions, so it must "
                                      "return a tuple of 2 gradients"),
    (lambda ds: ds[:1], md.ShapeError, "returned a tuple of 1; the model returns a tuple of 2 predictions"),
    (list, md.ShapeError, "returned list; the model returns a tuple of 2 predictions"),
    (lambda ds: (ds[0], ds[1].ravel()), md.ShapeError, "returned a gradient 1 of shape (3,); it must have the "
                                                       "prediction's shape (3, 1)"),
    (lambda ds: (ds[0].astype(np.float32), ds[1]), md.DTypeError, "returned a gradient 0 of dtype float32"),
])
def test_a_several_predictions_loss_must_return_one_gradient_per_prediction(
        mangle: Any, kind: type, words: str) -> None:
    x, y = data()
    error = refused(TwoHeads(), PairLoss(mangle), x, y)
    assert type(error) is kind and "PairLoss.backward: " + words in str(error)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_right_custom_loss_trains_as_the_built_in_one(dtype: type) -> None:
    """A right custom loss is not refused: HalfSquares trains to the weights HalfSquaredError (the same
    function) gives, and a right several-predictions loss trains too."""
    x, y = data(dtype)
    mine, builtin = md.Sequential(md.Dense(3, 2, rng=0, dtype=dtype)), md.Sequential(md.Dense(3, 2, rng=0, dtype=dtype))
    h1 = mine.fit(x, y[:, :2], loss=HalfSquares(), optimizer=md.SGD(mine.parameters(), lr=0.05), epochs=3,
                  batch_size=3, rng=0, verbose=0)
    h2 = builtin.fit(x, y[:, :2], loss=md.HalfSquaredError(), optimizer=md.SGD(builtin.parameters(), lr=0.05),
                     epochs=3, batch_size=3, rng=0, verbose=0)
    np.testing.assert_allclose(mine[0].W.data, builtin[0].W.data, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert h1["loss"][-1] < h1["loss"][0] and h2["loss"][-1] < h2["loss"][0]
    two, (x, y) = TwoHeads(), data()
    history = two.fit(x, y, loss=PairLoss(), optimizer=md.SGD(two.parameters(), lr=0.05), epochs=5, batch_size=3,
                      verbose=0)
    assert history["loss"][-1] < history["loss"][0]
