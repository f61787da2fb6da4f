"""A loss whose backward computes in float32: the gradient checker (which runs in float64, whatever the
model's dtype) says so in the one shared check_loss_gradient; fit, which takes such a loss on a float32
model, keeps its plain words on a float64 one."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import DTypeError
from minidl.losses import check_loss_gradient


class Squares(md.Loss):
    """mean((y_pred - y)^2) with per-output weights; ``how`` says how the backward ends up in another dtype."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.w = np.array([1.0, 2.0], dtype=np.float32)  # (a float32 constant of the loss's own)

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._c = (y_pred, y_true)
        return float(np.mean(self.w * (y_pred - y_true) ** 2))

    def backward(self) -> Any:
        y, t = self._c
        g = 2 * self.w * (y - t) / y.size
        if self.how == "cast":
            return g.astype(np.float32)
        if self.how == "constant":  # (the result array allocated from the constant's dtype)
            out = np.empty_like(self.w, shape=y.shape)
            out[...] = g
            return out
        return g.astype(np.int64)  # "int": not a float at all


def data(dtype: type) -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    model = md.Sequential(md.Dense(3, 2, rng=0)).astype(dtype)
    return model, rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(4, 2)).astype(dtype)


@pytest.mark.parametrize("how", ["cast", "constant"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_checker_says_it_runs_in_float64_and_the_loss_computes_in_float32(how: str, dtype: type) -> None:
    model, x, t = data(dtype)
    with pytest.raises(DTypeError) as info:
        md.GradientChecker(model, loss=Squares(how), inputs=x, targets=t).run()
    assert str(info.value) == (
        "GradientChecker: Squares.backward: returned a gradient of dtype float32; it must have the prediction's "
        "dtype float64 (dLoss/dy_pred; the check runs in float64, whatever the model's dtype, and the loss "
        "computes its gradient in float32 (a cast, or a float32 constant or buffer of its own?): make it follow "
        "y_pred's dtype, or cast with .astype(y_pred.dtype, copy=False))")


def test_the_checker_keeps_the_plain_words_for_a_gradient_that_is_no_float() -> None:
    model, x, t = data(np.float64)
    with pytest.raises(DTypeError, match=r"^GradientChecker: Squares\.backward: returned a gradient of dtype int64; "
                                         r"it must have the prediction's dtype float64 \(dLoss/dy_pred; cast with "
                                         r"\.astype\(y_pred\.dtype, copy=False\)\)"):
        md.GradientChecker(model, loss=Squares("int"), inputs=x, targets=t).run()


def test_fit_takes_the_float32_loss_on_a_float32_model_and_keeps_its_words_on_a_float64_one() -> None:
    model, x, t = data(np.float32)
    history = model.fit(x, t, loss=Squares("cast"), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1,
                        verbose=0)
    assert np.isfinite(history["loss"][0])
    model, x, t = data(np.float64)
    with pytest.raises(DTypeError) as info:
        model.fit(x, t, loss=Squares("cast"), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1, verbose=0)
    assert str(info.value).endswith(": Squares.backward: returned a gradient of dtype float32; it must have the "
                                    "prediction's dtype float64 (dLoss/dy_pred; cast with .astype(y_pred.dtype, "
                                    "copy=False))")  # (after fit's where: epoch, batch)


def test_the_hint_is_said_per_prediction_of_a_loss_of_several() -> None:
    loss = Squares("cast")
    y = (np.zeros((2, 2)), np.zeros((2, 1)))
    with pytest.raises(DTypeError, match=re.escape("returned a gradient 1 of dtype float16; it must have the "
                                                   "prediction's dtype float64 (dLoss/dy_pred; the check runs in "
                                                   "float64, whatever the model's dtype, and the loss computes its "
                                                   "gradient in float16 (a cast, or a float16 constant")):
        check_loss_gradient(loss, y, (np.zeros((2, 2)), np.zeros((2, 1), np.float16)), "GradientChecker: ",
                            runs_in=np.float64)
