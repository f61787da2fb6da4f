"""fit warns when the optimizer holds parameters that are neither the model's nor its loss's: the sign of a layer
replaced after the optimizer was built, whose new parameters would silently not train."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minidl as md


class Net(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.a = md.Dense(3, 4, rng=0)
        self.b = md.Dense(4, 2, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.b(self.a(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.a.backward(self.b.backward(grad_output))


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, 3)), rng.normal(size=(8, 2))


def test_a_layer_replaced_after_the_optimizer_was_built_is_named_by_a_warning() -> None:
    net = Net()
    opt = md.SGD(net.parameters(), lr=0.1)
    net.b = md.Dense(4, 2, rng=2)  # the optimizer still holds the old b.W
    x, y = _data()
    new_w = net.b.W.data.copy()
    with pytest.warns(UserWarning, match=r"fit: the optimizer holds 1 parameter\(s\) that are neither this model's "
                                         r"nor its loss's \(shapes \(5, 2\)\), so fit gives them no gradient; was a "
                                         r"layer replaced after the optimizer was built\?"):
        net.fit(x, y, loss=md.MSELoss(), optimizer=opt, epochs=1, verbose=0, rng=0)
    np.testing.assert_array_equal(net.b.W.data, new_w)  # what the warning is about: the new layer did not train


def test_many_foreign_parameters_are_counted_and_three_shapes_shown() -> None:
    net = Net()
    other = md.Sequential(md.Dense(2, 2, rng=3), md.Dense(2, 3, rng=4), md.Dense(3, 1, rng=5))
    x, y = _data(1)
    with pytest.warns(UserWarning, match=r"holds 3 parameter\(s\) .*\(shapes \(3, 2\), \(3, 3\), \(4, 1\)\)"):
        net.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD([*net.parameters(), *other.parameters()], lr=0.1),
                epochs=1, verbose=0, rng=0)
    more = md.Sequential(*(md.Dense(1, 1, rng=k) for k in range(4)))
    with pytest.warns(UserWarning, match=r"holds 4 parameter\(s\) .*\(shapes \(2, 1\), \(2, 1\), \(2, 1\), \.\.\.\)"):
        net.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD([*net.parameters(), *more.parameters()], lr=0.1),
                epochs=1, verbose=0, rng=0)


@pytest.mark.parametrize("which", ["all", "head only"])
def test_no_warning_for_the_model_s_own_parameters_or_some_of_them(which: str) -> None:
    net = Net()
    params = net.parameters() if which == "all" else net.b.parameters()  # fine-tuning the head: no warning
    x, y = _data(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = net.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(params, lr=0.1), epochs=2, verbose=0, rng=0)
    assert len(history.history["loss"]) == 2


def test_no_warning_for_the_loss_s_own_parameters() -> None:
    class ScaledMSE(md.Loss):
        def __init__(self) -> None:
            self.scale = md.Parameter(np.array([1.0]))

        def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
            self._d = y_pred - y_true
            return float(self.scale.data[0] * np.mean(self._d ** 2))

        def backward(self) -> np.ndarray:
            self.scale.grad += np.mean(self._d ** 2)
            return self.scale.data[0] * 2 * self._d / self._d.size

    net, loss = Net(), ScaledMSE()
    x, y = _data(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(x, y, loss=loss, optimizer=md.SGD([*net.parameters(), loss.scale], lr=0.01), epochs=1, verbose=0,
                rng=0)
    assert loss.scale.data[0] != 1.0  # trained with the model
