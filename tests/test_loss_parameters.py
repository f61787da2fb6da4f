"""A loss's own parameters: ``Loss.named_parameters()`` / ``parameters()`` (attributes, layers, entries of
lists, tuples, named tuples and mappings of any kind; overridable), the checker checking each as
``loss.<name>``, an optimizer training them in ``fit``, and a loss the checker cannot copy left as it was."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import minidl as md

Pair = collections.namedtuple("Pair", ["left", "right"])


class KeyedDict(dict):  # type: ignore[type-arg]
    """A dict subclass (as a config object might be)."""


def param(value: float) -> md.Parameter:
    return md.Parameter(np.array([value]))


class ScaledSSE(md.Loss):
    """``s * 1/2 sum((y - t)^2)`` with the scale ``s`` found by ``where(self)``; ``bug`` triples its gradient."""

    def __init__(self, holder: Any, where: Callable[[Any], md.Parameter], bug: bool = False) -> None:
        self.holder = holder
        self.where = where
        self.bug = bug

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._c = (y_pred - y_true, self.where(self.holder).data[0])
        return float(self._c[1] * 0.5 * np.sum(self._c[0] ** 2))

    def backward(self) -> np.ndarray:
        d, s = self._c
        self.where(self.holder).grad += np.array([0.5 * np.sum(d ** 2) * (3.0 if self.bug else 1.0)])
        out: np.ndarray = s * d
        return out


# the containers a loss may keep its scale in: (holder, how to reach the scale, its checked name)
HOLDERS: dict[str, tuple[Callable[[md.Parameter], Any], Callable[[Any], md.Parameter], str]] = {
    "list": (lambda p: [p], lambda h: h[0], "loss.holder.0"),
    "tuple": (lambda p: (param(0.5), p), lambda h: h[1], "loss.holder.1"),
    "namedtuple": (lambda p: Pair(param(0.5), p), lambda h: h.right, "loss.holder.right"),
    "dict": (lambda p: {"s": p}, lambda h: h["s"], "loss.holder.s"),
    "OrderedDict": (lambda p: collections.OrderedDict(s=p), lambda h: h["s"], "loss.holder.s"),
    "dict subclass": (lambda p: KeyedDict(s=p), lambda h: h["s"], "loss.holder.s"),
    "layer": (lambda p: _holding_layer(p), lambda h: h.s, "loss.holder.s"),
}


def _holding_layer(p: md.Parameter) -> md.Layer:
    layer = md.Identity()
    layer.s = p
    return layer


def data(seed: int, n: int = 5) -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = md.Sequential(md.Dense(3, 4, rng=seed), md.Tanh(), md.Dense(4, 2, rng=seed + 1))
    return model, rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


@pytest.mark.parametrize("kind", list(HOLDERS))
def test_named_parameters_finds_a_scale_in_every_container(kind: str) -> None:
    make, where, name = HOLDERS[kind]
    s = param(1.3)
    loss = ScaledSSE(make(s), where)
    named = dict(loss.named_parameters())
    assert named[name.removeprefix("loss.")] is s
    assert any(p is s for p in loss.parameters())


def test_named_parameters_names_each_parameter_once_in_order() -> None:
    class Many(md.Loss):
        def __init__(self) -> None:
            self.a = param(1.0)
            self.head = md.Dense(2, 1, rng=0)
            self.same = self.a  # the same parameter again: listed once
            self.pair = Pair(param(2.0), "not a parameter")
            self.table = {"w": self.head.W, "b": param(3.0)}
            self.rng = np.random.default_rng(0)
            self.cache = None

    loss = Many()
    assert [name for name, _ in loss.named_parameters()] == ["a", "head.W", "pair.left", "table.b"]
    assert [p.data.tolist() for p in loss.parameters()] == [[1.0], loss.head.W.data.tolist(), [2.0], [3.0]]


@pytest.mark.parametrize("cls", [md.MSELoss, md.CrossEntropyLoss, md.HuberLoss, md.BCEWithLogitsLoss])
def test_a_built_in_loss_has_no_parameters(cls: type[md.Loss]) -> None:
    assert cls().parameters() == [] and list(cls().named_parameters()) == []


@pytest.mark.parametrize("kind", list(HOLDERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_the_checker_checks_a_scale_in_every_container(kind: str, seed: int) -> None:
    make, where, name = HOLDERS[kind]
    model, x, t = data(seed, n=4 + seed)
    report = md.GradientChecker(model, loss=ScaledSSE(make(param(1.3)), where), inputs=x, targets=t).run()
    assert report.passed, report
    assert report[name].checked == 1 and report[name].max_rel_error < 1e-7
    assert report.notes == [] or not any("named_parameters" in n for n in report.notes)


@pytest.mark.parametrize("kind", list(HOLDERS))
def test_a_wrong_gradient_of_a_scale_in_any_container_fails_there_alone(kind: str) -> None:
    make, where, name = HOLDERS[kind]
    model, x, t = data(0)
    report = md.GradientChecker(model, loss=ScaledSSE(make(param(1.3)), where, bug=True), inputs=x,
                                targets=t).run()
    assert [r.name for r in report.failed] == [name]
    r = report[name]  # closed form: dL/ds = 1/2 sum(d^2); the bug says three times that
    assert r.analytic == pytest.approx(3 * r.numerical, rel=1e-6)


def test_an_override_of_named_parameters_is_how_the_checker_sees_a_scale_kept_elsewhere() -> None:
    class Overridden(ScaledSSE):
        def named_parameters(self) -> Iterator[tuple[str, md.Parameter]]:
            yield "scale", self.holder.s

    model, x, t = data(0)
    plain = md.GradientChecker(model, loss=ScaledSSE(SimpleNamespace(s=param(1.3)), lambda h: h.s, bug=True),
                               inputs=x, targets=t).run()
    assert plain.passed and "loss.scale" not in [r.name for r in plain.results]  # unseen, so not checked ...
    assert any("the attribute(s) 'holder' hold parameters" in n and "override the loss's named_parameters()" in n
               for n in plain.notes)  # ... and the note says how to show it
    loss = Overridden(SimpleNamespace(s=param(1.3)), lambda h: h.s, bug=True)
    report = md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()
    assert [r.name for r in report.failed] == ["loss.scale"]
    assert not any("named_parameters" in n for n in report.notes)
    loss.bug = False
    assert md.GradientChecker(model, loss=loss, inputs=x, targets=t).run().passed


def test_named_parameters_giving_something_else_is_refused_by_name() -> None:
    class Wrong(ScaledSSE):
        def named_parameters(self) -> Iterator[tuple[str, Any]]:
            yield "scale", np.ones(1)

    model, x, t = data(0)
    with pytest.raises(TypeError, match=r"Wrong.named_parameters\(\) gave 'scale' as a ndarray, expected an "
                                        r"md.Parameter"):
        md.GradientChecker(model, loss=Wrong([param(1.0)], lambda h: h[0]), inputs=x, targets=t).run()


def test_fit_trains_the_loss_parameters_given_to_the_optimizer() -> None:
    model, x, t = data(3, n=8)
    s = param(1.3)
    loss = ScaledSSE({"s": s}, lambda h: h["s"])
    expected = 1.3 - 0.01 * 0.5 * float(np.sum((model(x) - t) ** 2))  # one full-batch step: s - lr dL/ds
    model.fit(x, t, loss=loss, optimizer=md.SGD([*model.parameters(), *loss.parameters()], lr=0.01),
              batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert s.data[0] == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ a loss the checker cannot copy
class SelfCopyingNormLoss(md.Loss):
    """1/2 sum((bn(y) - t)^2), drawing from its own generator; ``copy.deepcopy`` gives the loss itself."""

    def __init__(self) -> None:
        self.bn = md.BatchNorm1d(2)
        self.rng = np.random.default_rng(5)
        self.extra = [md.Dropout(0.5, rng=np.random.default_rng(7))]

    def __deepcopy__(self, memo: dict[int, Any]) -> SelfCopyingNormLoss:
        return self

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self.rng.standard_normal(3)
        self.extra[0].train()  # (a held layer's flag, moved by the loss)
        self.bn.train()
        z = self.bn(y_pred)
        self._c = (z, y_true)
        return float(0.5 * np.sum((z - y_true) ** 2))

    def backward(self) -> np.ndarray:
        z, t = self._c
        out: np.ndarray = self.bn.backward(z - t)
        return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_that_copies_to_itself_keeps_its_layers_state_and_generators(seed: int) -> None:
    model, x, t = data(seed, n=6)
    loss = SelfCopyingNormLoss()
    loss.bn.running_mean[:] = [0.25, -0.5]
    loss.bn.eval()
    loss.extra[0].eval()
    before = (loss.bn.running_mean.copy(), loss.bn.running_var.copy(), int(loss.bn.num_batches_tracked),
              loss.rng.bit_generator.state, loss.extra[0].rng.bit_generator.state, loss.bn.gamma.data.copy())
    report = md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()
    assert report.passed, report
    assert {"loss.bn.gamma", "loss.bn.beta"} <= {r.name for r in report.results}
    assert np.array_equal(loss.bn.running_mean, before[0]) and np.array_equal(loss.bn.running_var, before[1])
    assert int(loss.bn.num_batches_tracked) == before[2]
    assert loss.rng.bit_generator.state == before[3] and loss.extra[0].rng.bit_generator.state == before[4]
    assert np.array_equal(loss.bn.gamma.data, before[5]) and loss.bn.gamma.data.dtype == np.float64
    assert not loss.bn.training and not loss.extra[0].training


# ------------------------------------------------------------------ after review: what an override leaves out, and more
def test_a_parameter_an_override_leaves_out_gets_the_note() -> None:
    class Partial(ScaledSSE):
        def __init__(self) -> None:
            super().__init__({"s": param(1.3)}, lambda h: h["s"])
            self.b = param(0.5)  # held directly, left out by the override below

        def named_parameters(self) -> Iterator[tuple[str, md.Parameter]]:
            yield "s", self.holder["s"]

    model, x, t = data(0)
    report = md.GradientChecker(model, loss=Partial(), inputs=x, targets=t).run()
    assert [r.name for r in report.results][-1] == "loss.s" and "loss.b" not in [r.name for r in report.results]
    assert any(n.startswith("the loss (Partial): the attribute(s) 'b' hold parameters that the loss's "
                            "named_parameters() does not give") for n in report.notes)


def test_a_deque_of_parameters_is_found_and_checked() -> None:
    s = param(1.3)
    loss = ScaledSSE(collections.deque([s]), lambda h: h[0], bug=True)
    assert dict(loss.named_parameters()) == {"holder.0": s}
    model, x, t = data(1)
    assert [r.name for r in md.GradientChecker(model, loss=loss, inputs=x, targets=t).run().failed] == \
        ["loss.holder.0"]


class Outer(md.Loss):
    """A composite loss: ``inner`` (a loss with a parameter) plus nothing of its own."""

    def __init__(self, inner: md.Loss) -> None:
        self.inner = inner

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return self.inner.forward(y_pred, y_true)

    def backward(self) -> Any:
        return self.inner.backward()


@pytest.mark.parametrize("bug", [False, True])
def test_a_parameter_of_a_loss_held_by_a_loss_is_found_and_checked(bug: bool) -> None:
    s = param(1.3)
    loss = Outer(ScaledSSE([s], lambda h: h[0], bug=bug))
    assert dict(loss.named_parameters()) == {"inner.holder.0": s} and loss.parameters() == [s]
    model, x, t = data(2)
    report = md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()
    assert "loss.inner.holder.0" in [r.name for r in report.results]
    assert [r.name for r in report.failed] == (["loss.inner.holder.0"] if bug else [])


def test_losses_holding_one_another_are_walked_once() -> None:
    a = Outer(ScaledSSE([param(1.0)], lambda h: h[0]))
    a.inner.back = a  # (a cycle: the inner loss holds the outer one)
    a.me = a
    assert [name for name, _ in a.named_parameters()] == ["inner.holder.0"]


def test_a_loss_copying_to_itself_with_a_layer_in_a_helper_object_keeps_its_state() -> None:
    class InHelper(md.Loss):
        """``SelfCopyingNormLoss`` with its batch norm in a helper object, named by an override."""

        def __init__(self) -> None:
            self.h = SimpleNamespace(bn=md.BatchNorm1d(2))

        def __deepcopy__(self, memo: dict[int, Any]) -> InHelper:
            return self

        def named_parameters(self) -> Iterator[tuple[str, md.Parameter]]:
            return ((f"h.bn.{name}", p) for name, p in self.h.bn.named_parameters())

        def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
            self.h.bn.train()
            self._c = (self.h.bn(y_pred), y_true)
            return float(0.5 * np.sum((self._c[0] - y_true) ** 2))

        def backward(self) -> np.ndarray:
            out: np.ndarray = self.h.bn.backward(self._c[0] - self._c[1])
            return out

    model, x, t = data(0, n=6)
    loss = InHelper()
    loss.h.bn.eval()
    before = (loss.h.bn.running_mean.copy(), int(loss.h.bn.num_batches_tracked))
    report = md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()
    assert report.passed and {"loss.h.bn.gamma", "loss.h.bn.beta"} <= {r.name for r in report.results}
    assert np.array_equal(loss.h.bn.running_mean, before[0]) and int(loss.h.bn.num_batches_tracked) == before[1]
    assert not loss.h.bn.training


@pytest.mark.parametrize(("given", "words"), [
    (lambda self: {"s": self.holder[0]}, r"must return \(name, md.Parameter\) pairs, got dict"),
    (lambda self: None, r"must return \(name, md.Parameter\) pairs, got NoneType"),
    (lambda self: [self.holder[0]], r"must give \(name, md.Parameter\) pairs, got Parameter"),
    (lambda self: [("s", self.holder[0], 1)], r"must give \(name, md.Parameter\) pairs, got \('s', "),
])
def test_a_malformed_override_is_refused_by_the_loss_name(given: Callable[[Any], Any], words: str) -> None:
    class Malformed(ScaledSSE):
        def named_parameters(self) -> Any:
            return given(self)

    loss = Malformed([param(1.0)], lambda h: h[0])
    with pytest.raises(TypeError, match=r"Malformed.named_parameters\(\) " + words):
        loss.parameters()
    model, x, t = data(0)
    with pytest.raises(TypeError, match=r"Malformed.named_parameters\(\) " + words):
        md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()


def test_repeats_in_an_override_are_given_once_and_names_are_made_unique() -> None:
    a, b = param(1.0), param(2.0)

    class Repeating(ScaledSSE):
        def named_parameters(self) -> Iterator[tuple[str, md.Parameter]]:
            yield from [("s", a), ("again", a), ("s", b)]

    loss = Repeating([a], lambda h: h[0])
    assert loss.parameters() == [a, b]
    model, x, t = data(0)
    report = md.GradientChecker(model, loss=loss, inputs=x, targets=t).run()
    assert [r.name for r in report.results][-2:] == ["loss.s", "loss.s#2"] and report.passed
    assert report["loss.s#2"].analytic == 0.0  # (b is not in the cost: its gradient is 0, as is its slope)


def test_fit_names_a_loss_parameter_with_a_nan_gradient() -> None:
    class NaNScale(ScaledSSE):
        def backward(self) -> np.ndarray:
            out = super().backward()
            self.holder["s"].grad[...] = np.nan
            return out

    model, x, t = data(0)
    loss = NaNScale({"s": param(1.0)}, lambda h: h["s"])
    with pytest.raises(md.NonFiniteError, match=r"the gradient of parameter 'loss.holder.s' \(1,\) holds 1 NaN"):
        model.fit(x, t, loss=loss, optimizer=md.SGD([*model.parameters(), *loss.parameters()], lr=0.1),
                  epochs=1, verbose=0, check_gradients=True)


def test_fit_refuses_a_trainable_loss_parameter_the_optimizer_does_not_hold() -> None:
    model, x, t = data(0, n=8)
    loss = ScaledSSE({"s": param(1.0)}, lambda h: h["s"])
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"fit: the loss ScaledSSE holds trainable parameter\(s\) 'holder.s' that "
                                         r"the optimizer does not.*SGD\(\[\*model.parameters\(\), "
                                         r"\*loss.parameters\(\)\], ...\), or freeze them"):
        model.fit(x, t, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1, verbose=0)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_fit_zeroes_the_gradient_of_a_frozen_loss_parameter() -> None:
    model, x, t = data(0, n=8)
    s = param(1.0)
    s.requires_grad = False
    loss = ScaledSSE({"s": s}, lambda h: h["s"])
    model.fit(x, t, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.0), batch_size=4, epochs=2,
              shuffle=False, verbose=0)
    last = 0.5 * float(np.sum((model(x[4:]) - t[4:]) ** 2))  # the last batch's alone, not four piled up (lr=0)
    assert s.data[0] == 1.0 and s.grad[0] == pytest.approx(last, rel=1e-6)


def test_fit_accepts_a_loss_holding_a_layer_trained_elsewhere() -> None:
    class Critic(md.Loss):  # scores the prediction with a critic trained by a fit of its own
        def __init__(self) -> None:
            self.critic = md.Sequential(md.Dense(2, 1, rng=9))

        def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
            self._n = len(y_pred)
            return float(np.sum(self.critic(y_pred))) / self._n

        def backward(self) -> np.ndarray:
            out: np.ndarray = self.critic.backward(np.full((self._n, 1), 1.0 / self._n))
            return out

    model, x, t = data(0, n=8)
    loss = Critic()
    critic_before = loss.critic[0].W.data.copy()
    model.fit(x, t, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1, verbose=0)
    assert np.array_equal(loss.critic[0].W.data, critic_before)
