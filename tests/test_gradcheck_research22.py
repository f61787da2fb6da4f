"""The gradient checker after the researcher's review (review 22, R1): a loss's own parameters, a loss
whose backward is not dLoss/dy_pred, a loss refusing drawn targets with a plain exception, a layer run
twice in one pass, the summary when every layer passes alone, the report's layout with check_layers,
batch_size checked when set, and parameters that are all zero at the checked point."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import DTypeError, ShapeError


class ScaledHuber(md.Loss):
    """mean(huber((y_pred - y_true) / s)) + log s with a learnable log-scale; ``bug`` plants one."""

    def __init__(self, bug: str | None = None, log_s: float = 0.3, dtype: Any = np.float64) -> None:
        self.log_s = md.Parameter(np.array([log_s], dtype=dtype))
        self.bug = bug
        self._c: Any = None

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        s = np.exp(self.log_s.data[0])
        r = (y_pred - y_true) / s
        a = np.abs(r)
        h = np.where(a <= 1.0, 0.5 * r * r, a - 0.5)
        self._c = (r, s, y_pred.size, y_pred.dtype)
        return float(np.mean(h) + self.log_s.data[0])

    def backward(self) -> np.ndarray:
        r, s, size, dtype = self._c
        hp = np.clip(r, -1.0, 1.0)
        dy = hp / s / size * (2 if self.bug == "factor2" else 1)
        sign = 1.0 if self.bug == "sign_s" else -1.0
        self.log_s.grad += np.array([sign * np.sum(hp * r) / size + 1.0], dtype=self.log_s.data.dtype)
        out: np.ndarray = dy.astype(dtype)
        if self.bug == "flat":
            out = out.ravel()
        elif self.bug == "float32":
            out = out.astype(np.float32)
        return out


def dense(seed: int = 0) -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=seed), md.Tanh(), md.Dense(4, 2, rng=seed + 1))


def data(seed: int, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


# ------------------------------------------------------------------ D1: a loss's own parameters
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_parameter_is_checked_as_loss_dot_name(seed: int) -> None:
    x, t = data(seed, n=4 + seed)
    report = md.GradientChecker(dense(seed), loss=ScaledHuber(log_s=0.3 * seed - 0.2), inputs=x, targets=t,
                                seed=seed).run()
    assert report.passed, report
    r = report["loss.log_s"]
    assert r.status == "ok" and r.checked == 1 and r.shape == (1,)
    assert r.max_rel_error < 1e-7 and abs(r.analytic - r.numerical) < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_a_wrong_gradient_of_a_loss_parameter_fails_there_alone(seed: int) -> None:
    x, t = data(seed)
    report = md.GradientChecker(dense(seed), loss=ScaledHuber(bug="sign_s"), inputs=x, targets=t).run()
    assert not report.passed
    assert [r.name for r in report.failed] == ["loss.log_s"]
    r = report["loss.log_s"]
    # closed form: d/dlog_s = 1 - mean(h'(r) r); the bug gives 1 + mean(h'(r) r)
    assert abs((r.analytic - 1) + (r.numerical - 1)) < 1e-6 * max(1.0, abs(r.analytic))


def test_the_users_loss_is_left_as_it_was_and_a_float32_parameter_is_checked_in_float64() -> None:
    x, t = data(0)
    loss = ScaledHuber(dtype=np.float32)
    before = loss.log_s.data.copy()
    report = md.GradientChecker(dense(), loss=loss, inputs=x, targets=t).run()
    assert report.passed and report["loss.log_s"].max_rel_error < 1e-7
    assert loss.log_s.data.dtype == np.float32 and np.array_equal(loss.log_s.data, before)
    assert not loss.log_s.has_grad and loss._c is None


def test_a_parameter_the_loss_shares_with_the_model_is_checked_once_under_the_models_name() -> None:
    class Reg(md.Loss):  # weight decay on the model's first weight, held by the loss
        def __init__(self, p: md.Parameter) -> None:
            self.p = p

        def forward(self, y: np.ndarray, t: np.ndarray) -> float:
            self._d = y - t
            return float(0.5 * np.sum(self._d ** 2) + 0.05 * np.sum(self.p.data ** 2))

        def backward(self) -> np.ndarray:
            self.p.grad += 0.1 * self.p.data
            return self._d

    model = dense()
    x, t = data(0)
    report = md.GradientChecker(model, loss=Reg(model[0].W), inputs=x, targets=t).run()
    assert report.passed, report
    assert [r.name for r in report.results] == ["input", "0.W", "2.W"]


def test_a_loss_parameter_inside_a_helper_object_gets_the_note() -> None:
    class Hidden(md.Loss):
        def __init__(self) -> None:
            self.h = SimpleNamespace(s=md.Parameter(np.array([1.5])))

        def forward(self, y: np.ndarray, t: np.ndarray) -> float:
            self._d = y - t
            return float(0.5 * self.h.s.data[0] * np.sum(self._d ** 2))

        def backward(self) -> np.ndarray:
            self.h.s.grad -= 0.5 * np.sum(self._d ** 2, keepdims=True).reshape(1)  # (wrong sign, unseen)
            return self.h.s.data[0] * self._d

    x, t = data(0)
    report = md.GradientChecker(dense(), loss=Hidden(), inputs=x, targets=t).run()
    assert report.passed and [r.name for r in report.results] == ["input", "0.W", "2.W"]
    assert any(n.startswith("the loss (Hidden): the attribute(s) 'h' hold parameters that the loss's "
                            "named_parameters() does not give (inside another object") and "'loss.log_s'" in n
               for n in report.notes)


# ------------------------------------------------------------------ D5: what loss.backward() returns
@pytest.mark.parametrize(("bug", "error", "words"), [
    ("flat", ShapeError, r"returned a gradient of shape \(10,\); it must have the prediction's shape \(5, 2\)"),
    ("float32", DTypeError, r"returned a gradient of dtype float32; it must have the prediction's dtype float64"),
])
def test_a_loss_backward_of_the_wrong_shape_or_dtype_is_refused_by_the_loss_name(bug: str, error: type,
                                                                                    words: str) -> None:
    x, t = data(0)
    with pytest.raises(error, match=r"^GradientChecker: ScaledHuber\.backward: " + words):
        md.GradientChecker(dense(), loss=ScaledHuber(bug=bug), inputs=x, targets=t).run()


def test_a_loss_of_several_predictions_returning_a_list_is_refused() -> None:
    class ListBack(md.Loss):
        several_predictions = True

        def forward(self, y: Any, t: Any) -> float:
            self._c = y
            return float(np.sum(y[0] * y[1]))

        def backward(self) -> Any:
            a, b = self._c
            return [b, a]

        def random_targets(self, y: Any, rng: np.random.Generator) -> np.ndarray:
            return np.zeros(len(y[0]))

    class Two(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.d1, self.d2 = md.Dense(3, 2, rng=0), md.Dense(3, 2, rng=1)

        def forward(self, x: np.ndarray) -> Any:
            return (self.d1(x), self.d2(x))

        def backward(self, g: Any) -> np.ndarray:
            return self.d1.backward(g[0]) + self.d2.backward(g[1])

        def input_shape_hint(self) -> tuple[int, ...]:
            return (3,)

    with pytest.raises(ShapeError, match=r"^GradientChecker: ListBack\.backward: returned list; the model returns "
                                         r"a tuple of 2 predictions, so it must return a tuple of 2 gradients"):
        md.GradientChecker(Two(), loss=ListBack()).run()


# ------------------------------------------------------------------ D4: a loss refusing drawn targets
class Picky(md.Loss):
    def __init__(self, exc: type) -> None:
        self.exc = exc

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        if t.dtype.kind == "f":
            raise self.exc("labels must be integers")
        return 0.0

    def backward(self) -> np.ndarray:
        return np.zeros(1)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the hint is a note (add_note: Python 3.11)")
@pytest.mark.parametrize("exc", [ValueError, IndexError, TypeError])
def test_a_plain_exception_on_drawn_targets_gets_the_hint_as_a_note(exc: type) -> None:
    with pytest.raises(exc) as info:
        md.GradientChecker(dense(), loss=Picky(exc)).run()
    assert info.value.args == ("labels must be integers",)
    assert info.value.__notes__[0].startswith(
        "(raised by the loss on the targets the checker drew for it with Picky.random_targets: if they are the "
        "cause, pass targets=, or override random_targets")


def test_a_key_error_keeps_its_message_and_gets_the_hint_as_a_note() -> None:
    with pytest.raises(KeyError) as info:
        md.GradientChecker(dense(), loss=Picky(KeyError)).run()
    assert str(info.value) == "'labels must be integers'"
    assert any("Picky.random_targets" in n for n in info.value.__notes__)


# ------------------------------------------------------------------ D2, D3: a layer run twice; every layer alone
class Twice(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d, self.t = md.Dense(3, 3, rng=0), md.Tanh()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d(self.t(self.d(x)))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.d.backward(self.t.backward(self.d.backward(g)))

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


@pytest.mark.parametrize("check_layers", [False, True])
def test_a_layer_run_twice_in_one_pass_is_named_when_it_fails(check_layers: bool) -> None:
    report = md.GradientChecker(Twice(), check_layers=check_layers).run()
    assert not report.passed and not report["d.W"].passed
    assert any(n.startswith("layer 'd' (Dense) ran 2 times in one forward pass, and 'd.W' fails: a built-in layer "
                            "keeps one forward cache") for n in report.notes)
    assert any("ran 2 times in one forward pass" in n for n in report["d.W"].notes)
    if check_layers:
        assert report.layers["d"].passed and any(n.startswith("every layer passes alone") for n in report.notes)


def test_two_layers_sharing_the_weight_pass_without_the_note() -> None:
    class Shared(Twice):
        def __init__(self) -> None:
            super().__init__()
            self.d2 = md.Dense(3, 3, rng=1)
            self.d2.W = self.d.W

        def forward(self, x: np.ndarray) -> np.ndarray:
            return self.d2(self.t(self.d(x)))

        def backward(self, g: np.ndarray) -> np.ndarray:
            return self.d.backward(self.t.backward(self.d2.backward(g)))

    report = md.GradientChecker(Shared()).run()
    assert report.passed and not any("times in one forward pass" in n for n in report.notes)


class TwoBranch(md.Model):
    """y = b1(x) + b2(x) + x; ``noskip`` leaves the skip path out of backward."""

    def __init__(self, bug: str | None = None) -> None:
        super().__init__()
        self.b1 = md.Sequential(md.Dense(3, 5, rng=0), md.Tanh(), md.Dense(5, 3, rng=1))
        self.b2 = md.Dense(3, 3, rng=2)
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.b1(x) + self.b2(x) + x

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = self.b1.backward(g) + self.b2.backward(g)
        return dx if self.bug == "noskip" else dx + g

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


def test_every_layer_passing_alone_points_at_the_models_own_backward() -> None:
    report = md.GradientChecker(TwoBranch("noskip"), check_layers=True).run()
    assert not report.passed and all(r.passed for r in report.layers.values())
    assert any(n.startswith("every layer passes alone, yet the model fails: the error is in the model's own "
                            "backward") and "loss" not in n for n in report.notes)  # (no loss given)
    # a right model: no such note
    right = md.GradientChecker(TwoBranch(), check_layers=True).run()
    assert right.passed and not any("passes alone" in n for n in right.notes)


def test_a_wrong_loss_backward_is_found_by_checking_the_loss_alone() -> None:
    x, t = data(0)
    for check_layers in (False, True):
        report = md.GradientChecker(dense(), loss=ScaledHuber(bug="factor2"), inputs=x, targets=t,
                                    check_layers=check_layers).run()
        assert not report.passed and report["loss.log_s"].passed
        assert any(n.startswith("the loss's backward is wrong: checked alone on the model's output, ScaledHuber"
                                ".backward() (dLoss/dy_pred) fails: constant factor over the whole tensor: analytic "
                                "= 2 x numerical") for n in report.notes)
        assert not any(n.startswith(("every layer passes alone", "several tensors fail")) for n in report.notes)
    loss_right = md.GradientChecker(TwoBranch("noskip"), loss=ScaledHuber(), check_layers=True).run()
    assert any(n.startswith("every layer passes alone, and so does the loss ScaledHuber (checked alone on the "
                            "model's output)") for n in loss_right.notes)


# ------------------------------------------------------------------ D8: layout and batch_size
def test_the_models_notes_come_before_the_layers_own_reports() -> None:
    lines = str(md.GradientChecker(Twice(), check_layers=True).run()).splitlines()
    first_layer = next(i for i, line in enumerate(lines) if line.startswith("Layer '"))
    notes = [i for i, line in enumerate(lines) if line.startswith("  note: ")]
    assert notes and max(notes) < first_layer
    assert "cost evaluations" in lines[first_layer - 2]


def test_batch_size_above_the_cap_is_refused_when_set_while_the_inputs_are_drawn() -> None:
    with pytest.raises(ValueError, match=r"^GradientChecker: batch_size must be at most 1024 to draw the inputs, "
                                         r"got 2000"):
        md.GradientChecker(dense(), batch_size=2000)
    checker = md.GradientChecker(dense())
    with pytest.raises(ValueError, match="at most 1024"):
        checker.batch_size = 2000
    assert checker.batch_size == 4
    given = md.GradientChecker(dense(), inputs=np.ones((3, 3)), batch_size=2000)
    with pytest.raises(ValueError, match=r"inputs cannot be None while batch_size is 2000: set batch_size first$"):
        given.inputs = None
    assert given.inputs is not None and given.inputs.shape == (3, 3)
    given.batch_size = 8
    given.inputs = None
    assert given.run().passed


# ------------------------------------------------------------------ MISSING: a parameter all zero at the point
class TiedBug(md.Layer):
    """h = tanh(x W + b); y = h W^T + c, whose backward recomputes h without b (a bug b = 0 hides)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(0).normal(size=(4, 3)) / 2)
        self.b = md.Parameter(np.zeros(3))
        self.c = md.Parameter(np.zeros(4))

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.tanh(x @ self.W.data + self.b.data)
        self._cache = (x, h)
        return h @ self.W.data.T + self.c.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        x, h = self._cache
        W = self.W.data
        h_nob = np.tanh(x @ W)  # the bug
        self.c.grad += g.sum(0)
        dz = (g @ W) * (1 - h_nob * h_nob)
        self.b.grad += dz.sum(0)
        self.W.grad += x.T @ dz + g.T @ h
        return dz @ W.T

    def input_shape_hint(self) -> tuple[int, ...]:
        return (4,)


def test_a_parameter_all_zero_at_a_passing_point_is_named_and_moved_the_bug_fails() -> None:
    layer = TiedBug()
    report = md.GradientChecker(layer).run()
    assert all(r.passed for r in report.results)  # (right at the checked point, b = 0)
    assert any(n.startswith("the parameter(s) 'b', 'c' are all zero at the checked point: terms they multiply are "
                            "not tested") for n in report.notes)
    # (26th session: the check runs again with them moved off 0, where the bug shows, and the report fails)
    assert not report.passed and report.moved is not None and not report.moved.passed
    assert str(report).startswith("Gradient check FAILED at a second point: right at the checked point, wrong with "
                                  "'b' moved from 0 to small random values, 'c' moved from 0 to small random values")
    layer.b.data[:] = np.random.default_rng(1).normal(size=3) * 0.5
    assert not md.GradientChecker(layer).run().passed  # (the bug the note warned of)
