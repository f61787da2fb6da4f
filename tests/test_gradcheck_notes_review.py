"""The checker's notes after a review of them (s22, H9): a user's exception raised on drawn targets is
never rebuilt; the note on a layer run several times in a pass blames only what it can know; the loss
checked alone is judged by its dLoss/dy_pred; the all-zero parameter note is for the user's layers and
the loss only; a loss's parameters in a dict are checked; a loss whose deepcopy is itself is left as it
was; one check of what loss.backward() returns for fit and the checker."""

from __future__ import annotations

import errno
import sys
from typing import Any

import numpy as np
import pytest

import minidl as md

needs_notes = pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note: Python 3.11")


class ScaledMSE(md.Loss):
    """exp(log_s) * mean((y - t)^2) with a learnable log_s; ``sign=-1`` plants a wrong d/dlog_s."""

    def __init__(self, sign: float = 1.0, log_s: float = 0.3) -> None:
        self.log_s = md.Parameter(np.array([log_s]))
        self.sign = sign

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        self._d = y - t
        self._s = float(np.exp(self.log_s.data[0]))
        self._m = float(np.mean(self._d ** 2))
        return self._s * self._m

    def backward(self) -> np.ndarray:
        self.log_s.grad += np.array([self.sign * self._s * self._m], dtype=self.log_s.grad.dtype)
        return (self._s * 2 * self._d / self._d.size).astype(self._d.dtype, copy=False)


def mlp() -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))


def batch(seed: int = 0, shape: tuple[int, ...] = (5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


# ------------------------------------------------------------------ D3: a user's exception is raised as it is
def raising(make: Any) -> md.Loss:
    class Refuses(md.Loss):
        def forward(self, y: np.ndarray, t: np.ndarray) -> float:
            raise make()

        def backward(self) -> np.ndarray:
            raise AssertionError("never called")

    return Refuses()


class CodedError(ValueError):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"bad code {code}")


def with_attribute() -> ValueError:
    error = ValueError("targets out of range")
    error.field = "y_true"  # type: ignore[attr-defined]
    error.add_note("the user's own note")
    return error


@needs_notes
@pytest.mark.parametrize("make, check", [
    (lambda: OSError(errno.ENOENT, "No such file", "/tmp/x"),
     lambda e: type(e) is FileNotFoundError and e.errno == errno.ENOENT and e.filename == "/tmp/x"
     and str(e) == "[Errno 2] No such file: '/tmp/x'"),
    (lambda: ValueError("bad", 3), lambda e: e.args == ("bad", 3)),
    (lambda: CodedError(3), lambda e: type(e) is CodedError and e.code == 3 and e.args == ("bad code 3",)),
    (with_attribute, lambda e: e.field == "y_true" and str(e) == "targets out of range"
     and e.__notes__[0] == "the user's own note"),
    (lambda: AttributeError("no attribute 'wieght'", name="wieght", obj=None),
     lambda e: e.name == "wieght" and e.args == ("no attribute 'wieght'",)),
    (lambda: IndexError("index 5 is out of bounds"), lambda e: str(e) == "index 5 is out of bounds"),
])
def test_a_users_exception_on_drawn_targets_is_the_same_object_with_the_hint_as_a_note(make: Any,
                                                                                        check: Any) -> None:
    with pytest.raises(Exception) as info:
        md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0)), loss=raising(make), inputs=batch(0, (4, 3))).run()
    error = info.value
    assert check(error)
    assert error.__cause__ is None  # (raised itself, not a copy raised from it)
    assert any(n.startswith("(raised by the loss on the targets the checker drew for it with Refuses.random_targets")
               for n in error.__notes__)


def test_a_minidl_error_on_drawn_targets_keeps_the_hint_in_its_message() -> None:
    with pytest.raises(md.TargetError, match=r"^Refuses: y_true holds label 9 \(the loss refused the targets the "
                                             r"checker drew for it with Refuses\.random_targets: pass targets="):
        md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0)),
                           loss=raising(lambda: md.TargetError("Refuses: y_true holds label 9")),
                           inputs=batch(0, (4, 3))).run()


# ------------------------------------------------------------------ D1, D6: a layer run several times in a pass
class StackTanh(md.Layer):
    """tanh keeping one cache per call (a stack): right when called several times in one pass."""

    def __init__(self) -> None:
        super().__init__()
        self._ys: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        self._ys.append(y)
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * (1 - self._ys.pop() ** 2)


class BadScale(md.Layer):
    """y = 2 x, with a wrong dx (3 g)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return 3 * g


class Sandwich(md.Model):
    """act(d(act(first(x)))): ``act`` runs twice in one pass."""

    def __init__(self, first: md.Layer, act: md.Layer) -> None:
        super().__init__()
        self.first, self.act, self.d = first, act, md.Dense(3, 3, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.act(self.d(self.act(self.first(x))))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.first.backward(self.act.backward(self.d.backward(self.act.backward(g))))

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


def twice_notes(report: md.GradientReport) -> list[str]:
    return [n for n in report.notes if "times in one forward pass" in n and not n.startswith("every layer")]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_layer_of_ones_own_run_twice_is_not_blamed_when_only_the_input_fails(seed: int) -> None:
    """StackTanh is right run twice; BadScale's dx is the bug, and only 'input' fails."""
    assert md.GradientChecker(Sandwich(md.Identity(), StackTanh()), seed=seed).run().passed
    report = md.GradientChecker(Sandwich(BadScale(), StackTanh()), seed=seed).run()
    assert [r.name for r in report.results if not r.passed] == ["input"]
    assert twice_notes(report) == []
    assert any(n.startswith("only the input gradient is wrong") for n in report.notes)


def test_a_built_in_activation_run_twice_may_be_blamed_for_tensors_not_its_own() -> None:
    """A Tanh run twice gives the inner call's backward the outer call's cache: '0.W' of the first layer
    fails.  Not the Tanh's own tensor: the note says it may be the cause, not over any diagnosis."""
    report = md.GradientChecker(Sandwich(md.Dense(3, 3, rng=0), md.Tanh())).run()
    assert not report["first.W"].passed and report["d.W"].passed
    (note,) = twice_notes(report)
    assert note.startswith("layer 'act' (Tanh) ran 2 times in one forward pass, and 'first.W' fails (they may be "
                           "upstream of it, or not): this may be the cause: every built-in layer keeps one")
    assert not any("times in one forward pass" in n for r in report.results for n in r.notes)


class Cell(md.Layer):
    """h' = tanh(h W), one cache per call (a stack): right for a cell run once per time step; ``bug``
    flips the sign of dW."""

    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).normal(size=(3, 3)) * 0.5)
        self.bug = bug
        self._c: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, h: np.ndarray) -> np.ndarray:
        y = np.tanh(h @ self.W.data)
        self._c.append((h, y))
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        h, y = self._c.pop()
        dz = g * (1 - y * y)
        self.W.grad += (-1.0 if self.bug else 1.0) * (h.T @ dz)
        return dz @ self.W.data.T

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


class Unrolled(md.Model):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.cell = Cell(bug)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for _ in range(3):
            x = self.cell(x)
        return x

    def backward(self, g: np.ndarray) -> np.ndarray:
        for _ in range(3):
            g = self.cell.backward(g)
        return g

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


def test_an_rnn_style_cell_with_a_real_bug_keeps_its_diagnosis() -> None:
    assert md.GradientChecker(Unrolled(bug=False)).run().passed
    report = md.GradientChecker(Unrolled(bug=True)).run()
    assert report["cell.W"].diagnosis.startswith("sign flip")
    assert not any("whatever the diagnosis says" in n for n in report["cell.W"].notes)
    (note,) = twice_notes(report)
    assert note.startswith("layer 'cell' (Cell) ran 3 times in one forward pass, and 'cell.W' fails: this may be "
                           "the cause: a layer of your own that keeps a cache per call (a stack, as an RNN cell's) "
                           "is right, and then the diagnosis stands")


def test_a_layer_failing_alone_gets_no_ran_twice_note() -> None:
    report = md.GradientChecker(Unrolled(bug=True), check_layers=True).run()
    assert not report.layers["cell"].passed
    assert twice_notes(report) == []
    assert "checked alone, these layers fail: 'cell' (Cell)" in report.notes
    assert not any(n.startswith("every layer passes alone") for n in report.notes)


class DenseTwice(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d, self.act = md.Dense(3, 3, rng=0), md.Tanh()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d(self.act(self.d(x)))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.d.backward(self.act.backward(self.d.backward(g)))

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


def test_every_layer_passing_alone_and_a_layer_run_twice_make_one_story_without_a_loss() -> None:
    report = md.GradientChecker(DenseTwice(), check_layers=True).run()
    assert report.layers["d"].passed and not report["d.W"].passed
    (twice,) = twice_notes(report)
    assert twice.startswith("layer 'd' (Dense) ran 2 times in one forward pass, and 'd.W' fails: a built-in layer "
                            "keeps one forward cache")
    (alone,) = [n for n in report.notes if n.startswith("every layer passes alone")]
    assert alone.startswith("every layer passes alone, yet the model fails: the layer(s) run more than once in one "
                            "forward pass (see the note above) are the likely cause; if not, the error is in the "
                            "model's own backward")
    assert "loss" not in alone  # (no loss given)


# ------------------------------------------------------------------ D2: the loss alone, judged by dLoss/dy_pred
class DoubleDx(md.Layer):
    """y = x, with a wrong dx (2 g): every tensor before it fails by a factor 2."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def backward(self, g: np.ndarray) -> np.ndarray:
        return 2 * g


@pytest.mark.parametrize("seed", [0, 3])
def test_a_failing_loss_parameter_does_not_make_the_loss_backward_wrong(seed: int) -> None:
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1), DoubleDx())
    report = md.GradientChecker(model, loss=ScaledMSE(sign=-1), inputs=batch(seed)).run()
    assert not report["loss.log_s"].passed and not report["0.W"].passed
    assert not any(n.startswith("the loss's backward is wrong") for n in report.notes)
    assert ("checked alone on the model's output, ScaledMSE.backward()'s dLoss/dy_pred is right: the model's tensors "
            "fail for a reason of their own; apart from that, the gradient the loss adds into its parameter(s) "
            "'loss.log_s' is wrong") in report.notes
    # a right loss on the same model: nothing said of it
    right = md.GradientChecker(model, loss=ScaledMSE(), inputs=batch(seed)).run()
    assert right["loss.log_s"].passed and not any("ScaledMSE.backward()" in n for n in right.notes)


# ------------------------------------------------------------------ D5: the all-zero note, for the user's own
def zero_notes(report: md.GradientReport) -> list[str]:
    return [n for n in report.notes if "are all zero at the checked point" in n]


@pytest.mark.parametrize("model, shape", [
    (md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Tanh()), (5, 3)),
    (md.Sequential(md.Dense(3, 4, rng=0), md.LayerNorm(4)), (5, 3)),
    (md.TransformerEncoderLayer(4, 2, 8, dropout=0.0, rng=0), (2, 3, 4)),
])
def test_built_in_norm_models_at_init_get_no_all_zero_note(model: md.Layer, shape: tuple[int, ...]) -> None:
    assert any(not np.any(p.data) for p in model.parameters())  # (a beta at zero: what the note fired on)
    report = md.GradientChecker(model, inputs=batch(1, shape), mode="sampled", samples=6).run()
    assert report.passed and zero_notes(report) == []


class ZeroBias(md.Layer):
    """y = tanh(x + b), b zero-initialised; its backward forgets b (a bug b = 0 hides)."""

    def __init__(self) -> None:
        super().__init__()
        self.b = md.Parameter(np.zeros(3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.tanh(x + self.b.data)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dz = g * (1 - np.tanh(self._x) ** 2)
        self.b.grad += dz.sum(0)
        return dz


def test_the_users_layer_and_the_loss_still_get_the_all_zero_note() -> None:
    model = md.Sequential(md.Dense(3, 3, rng=0), md.LayerNorm(3), ZeroBias())
    report = md.GradientChecker(model, loss=ScaledMSE(log_s=0.0), inputs=batch(0)).run()
    assert all(r.passed for r in report.results)
    (note,) = zero_notes(report)
    assert note.startswith("the parameter(s) '2.b', 'loss.log_s' are all zero at the checked point")
    # (both moved off 0: ZeroBias's forgotten b fails there)
    assert not report.passed and report.moved_what == ("with '2.b' moved from 0 to small random values, "
                                                       "'loss.log_s' moved from 0 to small random values")


# ------------------------------------------------------------------ D4: a loss's parameters in a dict
class DictScale(md.Loss):
    """exp(p["log_s"]) * mean((y - t)^2); ``forget`` leaves d/dlog_s out of backward."""

    def __init__(self, forget: bool) -> None:
        self.p = {"log_s": md.Parameter(np.array([0.3])), "unused": 1.0}
        self.forget = forget

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        self._d, self._s = y - t, float(np.exp(self.p["log_s"].data[0]))
        return self._s * float(np.mean(self._d ** 2))

    def backward(self) -> np.ndarray:
        if not self.forget:
            self.p["log_s"].grad += self._s * np.mean(self._d ** 2)
        return self._s * 2 * self._d / self._d.size


def test_a_loss_parameter_in_a_dict_is_checked_by_its_key() -> None:
    right = md.GradientChecker(mlp(), loss=DictScale(forget=False), inputs=batch(0)).run()
    assert right.passed and [r.name for r in right.results][-1] == "loss.p.log_s"
    wrong = md.GradientChecker(mlp(), loss=DictScale(forget=True), inputs=batch(0)).run()
    assert [r.name for r in wrong.results if not r.passed] == ["loss.p.log_s"]


@pytest.mark.parametrize("holder, where", [
    (lambda p: {p}, "'extra'"),
    (lambda p: frozenset([p]), "'extra'"),
    (lambda p: [{"s": p}], "'extra.0'"),
])
def test_a_loss_parameter_in_another_container_gets_the_not_seen_note(holder: Any, where: str) -> None:
    class Held(ScaledMSE):
        def __init__(self) -> None:
            super().__init__()
            self.extra = holder(md.Parameter(np.ones(2)))

    report = md.GradientChecker(mlp(), loss=Held(), inputs=batch(0)).run()
    assert report.passed
    assert any(n.startswith(f"the loss (Held): the attribute(s) {where} hold parameters that the loss's "
                            "named_parameters() does not give (inside another object") for n in report.notes)


def test_a_loss_holding_an_optimizer_of_the_models_parameters_gets_no_note() -> None:
    model = mlp()

    class WithOptimizer(ScaledMSE):
        def __init__(self) -> None:
            super().__init__()
            self.opt = md.SGD(model.parameters(), lr=0.1)
            self.by_name = {"w": model[0].W}

    report = md.GradientChecker(model, loss=WithOptimizer(), inputs=batch(0)).run()
    assert report.passed and [r.name for r in report.results] == ["input", "0.W", "2.W", "loss.log_s"]
    assert not any(n.startswith("the loss (WithOptimizer)") for n in report.notes)


# ------------------------------------------------------------------ D7b: a loss whose deepcopy is itself
def test_a_loss_whose_deepcopy_is_itself_is_left_as_it_was() -> None:
    class Shared(ScaledMSE):
        def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
            return self  # (e.g. a loss wrapping a resource it does not copy)

    loss = Shared()
    loss.log_s.astype(np.float32)
    loss.log_s.grad[:] = 0.5
    data, grad = loss.log_s.data, loss.log_s.grad
    report = md.GradientChecker(mlp(), loss=loss, inputs=batch(0)).run()
    assert report.passed and report["loss.log_s"].passed
    assert loss.log_s.data is data and loss.log_s.data.dtype == np.float32 and loss.log_s.data.tolist() == [
        np.float32(0.3)]
    assert loss.log_s.grad is grad and loss.log_s.grad.tolist() == [0.5] and loss.log_s.requires_grad


# ------------------------------------------------------------------ D7c: one check of loss.backward()'s return
def test_fit_and_the_checker_refuse_a_flat_loss_gradient_in_the_same_words() -> None:
    class Flat(ScaledMSE):
        def backward(self) -> np.ndarray:
            return super().backward().ravel()

    x, y = batch(0), batch(1, (5, 2))
    with pytest.raises(md.ShapeError) as checked:
        md.GradientChecker(mlp(), loss=Flat(), inputs=x, targets=y).run()
    model, loss = mlp(), Flat()
    with pytest.raises(md.ShapeError) as fitted:
        model.fit(x, y, loss=loss, optimizer=md.SGD([*model.parameters(), *loss.parameters()], lr=0.1), verbose=0)
    words = "Flat.backward: returned a gradient of shape (10,); it must have the prediction's shape (5, 2) " \
            "(dLoss/dy_pred)"
    assert str(checked.value).split("\n")[0] == "GradientChecker: " + words
    assert words in str(fitted.value)
    from minidl.gradcheck import program
    from minidl.losses import check_loss_gradient
    assert program.check_loss_gradient is check_loss_gradient
