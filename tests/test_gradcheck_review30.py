"""The thirtieth session's review of the gradient checker: a layer or loss checked in place keeps the user's
forward caches."""

from __future__ import annotations

from typing import Any, ClassVar

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


# ---------------------------------------------------------------------------------------------- float32 given
class F32Bug(md.Layer):
    """y = x @ W, whose backward is wrong only when W is float32: the float64 copy the check runs on passes."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.linspace(0.5, 1.5, 9).reshape(3, 3))
        self._x: np.ndarray | None = None

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        dW = self._x.T @ grad_output
        if self.W.data.dtype == np.float32:
            dW = dW * 1.1
        self.W.grad += dW
        return grad_output @ self.W.data.T


COPY_NOTE = ("the check ran on a float64 copy, so code that runs only in float32 (a branch on the dtype, a cast) was "
             "not run; check it by comparing the backward in that dtype with the float64 one "
             "(docs/gradient-checker.md, \"In tests\")")


def _copy_notes(report: md.GradientReport) -> list[str]:
    return [note for note in report.notes if "float64 copy" in note]


def test_a_float32_model_is_said_to_be_checked_as_a_float64_copy() -> None:
    report = md.GradientChecker(F32Bug().astype(np.float32)).run()
    assert report.passed  # (the float32 branch is not run: the documented design, which the note says)
    assert _copy_notes(report) == [f"the model's parameters are float32: {COPY_NOTE}"]
    assert f"note: the model's parameters are float32: {COPY_NOTE}" in str(report)


def test_float32_inputs_to_a_float64_model_are_said_too() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    report = md.GradientChecker(F32Bug(), inputs=x).run()
    assert _copy_notes(report) == [f"the inputs are float32: {COPY_NOTE}"]
    report = md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0, dtype=np.float32)), inputs=x).run()
    assert _copy_notes(report) == [f"the model's parameters are float32 and the inputs are float32: {COPY_NOTE}"]
    several = md.GradientChecker(F32Bug(), inputs=[[1.0, 2.0, 3.0]]).run()  # (a list: float64)
    assert _copy_notes(several) == []


def test_a_float64_model_and_inputs_get_no_such_note() -> None:
    assert _copy_notes(md.GradientChecker(F32Bug()).run()) == []
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert _copy_notes(md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0)), inputs=x).run()) == []
    # integer indices are no floating input
    emb = md.Sequential(md.Embedding(5, 3, rng=0))
    assert _copy_notes(md.GradientChecker(emb, inputs=np.array([[0, 1], [2, 4]])).run()) == []


# ---------------------------------------------------------------------------------------------- layouts
class Layouts(md.Layer):
    """y = x @ W (x of shape (..., 3)); ``bug``: the backward is wrong only for an input that is not
    C-contiguous.  Records the layout flags (C, F) of every input its forward gets, the checker's copies' too
    (in the class: a deep copy shares it)."""

    seen: ClassVar[list[tuple[bool, bool]]] = []

    def __init__(self, bug: bool = False) -> None:
        super().__init__()
        self.W = md.Parameter(np.linspace(0.5, 1.5, 9).reshape(3, 3))
        self.bug = bug
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.seen.append((bool(x.flags.c_contiguous), bool(x.flags.f_contiguous)))
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        x2, g2 = self._x.reshape(-1, 3), grad_output.reshape(-1, 3)
        dW = x2.T @ g2
        if self.bug and not self._x.flags.c_contiguous:
            dW = dW * 1.1
        self.W.grad += dW
        return grad_output @ self.W.data.T


def _strided(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return rng.standard_normal((*shape[:-1], 2 * shape[-1])).astype(dtype)[..., ::2]


def _transposed(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.swapaxes(rng.standard_normal((shape[1], shape[0], *shape[2:])).astype(dtype), 0, 1)


def _fortran(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.asfortranarray(rng.standard_normal(shape).astype(dtype))


def test_a_backward_wrong_only_for_a_strided_input_fails_when_given_one() -> None:
    x = np.random.default_rng(0).standard_normal((4, 6))[:, ::2]
    given = x.copy()
    layer = Layouts(bug=True)
    report = md.GradientChecker(layer, inputs=x).run()
    assert not report.passed
    assert report["W"].status == "FAIL"
    assert "analytic = 1.1 x numerical" in (report["W"].diagnosis or "")
    assert report["input"].passed
    np.testing.assert_array_equal(x, given)  # (the given view is untouched)


@pytest.mark.parametrize("make", [_strided, _transposed, _fortran])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (1, 3)])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_correct_layer_passes_with_the_layout_given_and_keeps_it(make: Any, shape: tuple[int, ...], seed: int,
                                                                   dtype: Any) -> None:
    x = make(np.random.default_rng(seed), shape, dtype)
    assert x.dtype == dtype
    flags = (bool(x.flags.c_contiguous), bool(x.flags.f_contiguous))
    given, strides = x.copy(), x.strides
    layer = Layouts()
    Layouts.seen = []
    report = md.GradientChecker(layer, inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert report["input"].checked == x.size and report["W"].checked == 9
    np.testing.assert_array_equal(x, given)
    assert x.strides == strides
    # the check's forwards at the point and around it get the input in the layout class given; those on other
    # data may not: three on the batch reversed (the first forward's, and one before each analytic backward), and
    # a float32 input's precision probe (moved off float32 values)
    assert len(Layouts.seen) > 20 and Layouts.seen.count(flags) >= len(Layouts.seen) - 4, (flags, Layouts.seen)


# ---------------------------------------------------------------------------------------------- grad_output ignored
class Lin(md.Layer):
    """y = x @ W + b; ``bug``: "ones" (dW computed from ones, not grad_output), "half" (from 0.5s), "dx_ones" (dx
    computed from ones), "twice" (dW doubled), or None.  Counts its backward calls (in the class: the checker's
    copies' too)."""

    backward_calls = 0

    def __init__(self, bug: str | None = None) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.W = md.Parameter(rng.normal(size=(3, 3)))
        self.b = md.Parameter(rng.normal(size=(3,)))
        self.bug = bug
        self._x: np.ndarray | None = None

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data + self.b.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        Lin.backward_calls += 1
        assert self._x is not None
        g = grad_output
        dW = self._x.T @ (np.ones_like(g) if self.bug == "ones" else np.full_like(g, 0.5) if self.bug == "half" else g)
        if self.bug == "twice":
            dW = 2 * dW
        self.W.grad += dW
        self.b.grad += g.sum(0)
        return (np.ones_like(g) if self.bug == "dx_ones" else g) @ self.W.data.T


IGNORED = "the backward ignores its grad_output: this gradient does not change when grad_output is doubled"


def test_a_backward_that_uses_ones_for_grad_output_is_diagnosed() -> None:
    report = md.GradientChecker(Lin("ones")).run()
    assert not report.passed and report["W"].failed and report["b"].passed and report["input"].passed
    assert report["W"].diagnosis == f"{IGNORED} (it computes as if grad_output were all ones)"
    assert f"  W: diagnosis: {IGNORED} (it computes as if grad_output were all ones)" in str(report)
    # with a loss too: its gradient is the upstream one
    with_loss = md.GradientChecker(md.Sequential(Lin("ones")), loss=md.MSELoss()).run()
    assert with_loss["0.W"].diagnosis == f"{IGNORED} (it computes as if grad_output were all ones)"
    # in the middle of a model: the layers before it get a right grad_output and pass
    deep = md.GradientChecker(md.Sequential(md.Dense(3, 3, rng=1), md.Tanh(), Lin("ones"), md.Tanh())).run()
    assert [r.name for r in deep.results if not r.passed] == ["2.W"]
    assert deep["2.W"].diagnosis == IGNORED  # (the Tanh after it: its grad_output is not the cost's all ones)


def test_an_input_gradient_that_ignores_grad_output_is_diagnosed() -> None:
    report = md.GradientChecker(Lin("dx_ones")).run()
    assert report["input"].diagnosis == f"{IGNORED} (it computes as if grad_output were all ones)"
    assert report["W"].passed and report["W"].diagnosis is None


def test_a_backward_that_ignores_grad_output_otherwise_is_said_without_the_ones() -> None:
    report = md.GradientChecker(Lin("half")).run()
    assert report["W"].diagnosis == IGNORED  # (from 0.5s: not as if grad_output were all ones)


def test_other_bugs_and_right_backwards_are_not_said_to_ignore_grad_output() -> None:
    twice = md.GradientChecker(Lin("twice")).run()
    assert twice["W"].diagnosis is not None and twice["W"].diagnosis.startswith("constant factor over the whole tensor")
    assert "grad_output" not in str(twice)


def test_a_passing_check_runs_no_more_backward_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    Lin.backward_calls = 0
    report = md.GradientChecker(Lin()).run()
    assert report.passed
    calls, evaluations = Lin.backward_calls, report.evaluations
    monkeypatch.setattr(md.GradientChecker, "_upstream_ignored", lambda *args: None)
    Lin.backward_calls = 0
    again = md.GradientChecker(Lin()).run()
    assert (Lin.backward_calls, again.evaluations) == (calls, evaluations)
