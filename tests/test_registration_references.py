"""Plain containers of a layer that hold references to what is registered in it (a route recorded for backward,
a list of its own blocks) are not hidden layers: neither the walks nor assignment refuse them; a layer registered
nowhere in the container is still refused, named alone.  And the review's other findings on the search of plain
containers: layers unpickled from before it, object arrays, the cost of the walks run every step."""

from __future__ import annotations

import copy
import pickle
import re
from typing import Any

import numpy as np
import pytest

import minidl as md

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4))
Y = RNG.standard_normal((8, 4))


class Routed(md.Model):
    """Runs its blocks and records the route in a plain list, for backward in reverse (stochastic depth, routing)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = md.LayerList([md.Dense(4, 4, rng=0), md.Dense(4, 4, rng=1)])
        self._ran: list[md.Layer] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._ran = []
        for block in self.blocks:
            x = block(x)
            self._ran.append(block)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        for block in reversed(self._ran):
            grad = block.backward(grad)
        return grad


def test_a_route_of_registered_blocks_kept_for_backward_is_not_refused() -> None:
    model = Routed()
    model(X)
    assert [name for name, _ in model.named_parameters()] == ["blocks.0.W", "blocks.1.W"]
    assert list(model.state_dict()) == ["blocks.0.W", "blocks.1.W", "blocks.0._layout", "blocks.1._layout"]
    assert md.GradientChecker(model, inputs=X).run().passed
    before = model.blocks[0].W.data.copy()
    history = model.fit(X, Y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
                        batch_size=4, verbose=0)
    assert len(history.history["loss"]) == 2
    assert not np.array_equal(model.blocks[0].W.data, before)
    assert len(model.parameters()) == 2
    model.summary(input_shape=(4,))


def test_a_fresh_layer_put_into_the_route_is_still_refused_alone() -> None:
    model = Routed()
    model(X)
    model._ran.append(md.Tanh())
    with pytest.raises(TypeError, match=r"^Routed\._ran: Tanh objects in a plain list \(_ran\[2\]\) would not be "
                                        r"registered"):
        model.parameters()


class Holder(md.Model):
    def __init__(self, fresh: bool) -> None:
        super().__init__()
        self.a = md.Dense(2, 2, rng=0)
        self.inner = md.Sequential(md.Dense(2, 2, rng=1), md.Tanh())
        pair: list[Any] = [self.a, self.inner[0], self.a.W, {"deep": (self.inner,)}]
        if fresh:
            pair.insert(1, md.Dense(2, 2, rng=2))
        self.pair = pair

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.inner(self.a(x))


def test_a_container_of_registered_sub_layers_and_parameters_is_accepted_at_assignment() -> None:
    model = Holder(fresh=False)
    assert [name for name, _ in model.named_parameters()] == ["a.W", "inner.0.W"]
    assert model.pair[0] is model.a


def test_a_container_mixing_registered_and_fresh_layers_is_refused_naming_only_the_fresh_one() -> None:
    with pytest.raises(TypeError, match=r"^Holder\.pair: Dense objects in a plain list \(pair\[1\]\) would not be "
                                        r"registered"):
        Holder(fresh=True)


def test_a_sub_layer_let_go_of_makes_the_reference_to_it_hidden() -> None:
    model = Holder(fresh=False)
    model.a = md.Dense(2, 2, rng=3)  # (the old one is now held only by the list)
    with pytest.raises(TypeError, match=r"^Holder\.pair: Dense, Parameter objects in a plain list \(pair\[0\], "
                                        r"pair\[2\]\)"):
        model.parameters()


class Extra(md.Model):
    """A plain list assigned empty, as any layer pickled before containers were noted may hold."""

    def __init__(self) -> None:
        super().__init__()
        self.extra: list[Any] = []
        self.d = md.Dense(2, 2, rng=0)
        self.settings = {"scale": 2.0}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d(x)


def _pickled_before_containers_were_noted(layer: md.Layer) -> md.Layer:
    for part in layer.layers():
        del part.__dict__["_plain_containers"]
    return pickle.loads(pickle.dumps(layer))


def test_a_layer_pickled_before_containers_were_noted_has_its_containers_searched() -> None:
    old = _pickled_before_containers_were_noted(Extra())
    assert old._plain_containers == {"extra": None, "settings": None}
    assert [name for name, _ in old.named_parameters()] == ["d.W"]
    old.extra.append(md.Dense(2, 2, rng=1))
    with pytest.raises(TypeError, match=r"^Extra\.extra: Dense objects in a plain list \(extra\[0\]\) would not be "
                                        r"registered"):
        old.parameters()
    old.extra.append(old.d)  # (a reference to its own sub-layer: fine)
    del old.extra[0]
    assert len(old.parameters()) == 1


def test_a_container_set_around_registration_stays_unsearched_in_a_copy() -> None:
    model = Extra()
    model.__dict__["teacher"] = [md.Dense(2, 2, rng=1)]
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert [name for name, _ in copied.named_parameters()] == ["d.W"]


class Plain(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d = md.Dense(2, 2, rng=0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d(x)


def _objects(*items: Any) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array


@pytest.mark.parametrize("wrap, place", [(lambda a: a, "t[1]"), (lambda a: (np.zeros(2), a), "t[1][1]")])
def test_an_object_array_of_layers_assigned_directly_is_refused(wrap: Any, place: str) -> None:
    model = Plain()
    with pytest.raises(TypeError, match=rf"^Plain\.t: Dense objects in a plain \w+ \({re.escape(place)}\) would not "
                                        "be registered"):
        model.t = wrap(_objects(None, md.Dense(2, 2, rng=1)))
    assert "t" not in vars(model)


def test_an_object_array_filled_after_it_was_assigned_is_refused_by_the_walks() -> None:
    model = Plain()
    model.t = np.empty((2, 2), dtype=object)
    model.names = np.array(["a", None], dtype=object)  # (Python objects that are no layers: fine)
    model.mine = _objects(model.d, model.d.W)  # (references to its own: fine)
    assert [name for name, _ in model.named_parameters()] == ["d.W"]
    model.t[1, 0] = md.Tanh()
    with pytest.raises(TypeError, match=r"^Plain\.t: Tanh objects in a plain ndarray \(t\[1, 0\]\) would not be "
                                        r"registered .* put into the ndarray after it was assigned"):
        model.state_dict()


def test_an_object_array_in_a_list_filled_after_it_was_assigned_is_refused_by_the_walks() -> None:
    model = Plain()
    model.t = [np.empty(2, dtype=object), np.zeros(2)]
    assert len(model.parameters()) == 1
    model.t[0][1] = md.Tanh()
    with pytest.raises(TypeError, match=r"^Plain\.t: Tanh objects in a plain list \(t\[0\]\[1\]\)"):
        model.parameters()


class Steps(md.Layer):
    """A cache of one pair per step in a plain list (an RNN's), and, once ``hide`` is set, a layer appended to it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = md.Dense(4, 4, rng=0)
        self._steps: list[Any] = []
        self.hide = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._steps = []
        for _ in range(3):
            self._steps.append((x, [x, 1.0]))
        if self.hide:
            self._steps.append(md.Dense(4, 4, rng=1))
        return self.fc(x)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self.fc.backward(grad)


def test_the_walks_run_every_step_do_not_search_containers() -> None:
    """zero_grad (a PyTorch-style loop's every step) and Sequential.backward_params do not pay for the search; a
    parameter hidden in a container, which no optimizer holds, is harmless to skip there."""
    steps = Steps()
    model = md.Sequential(md.Dense(4, 4, rng=2), steps)
    y = model(X)
    model.backward_params(np.ones_like(y))
    assert model[0].W.grad.any()
    steps.hide = True
    y = model(X)
    model.zero_grad()
    assert not model[0].W.grad.any() and not steps.fc.W.grad.any()
    model.backward_params(np.ones_like(y))
    assert model[0].W.grad.any()
    with pytest.raises(TypeError, match=r"^Sequential layer '1' \(Steps\) attribute '_steps': Dense objects in a "
                                        r"plain list \(_steps\[3\]\)"):
        model.parameters()
    steps._steps.pop()
    assert [name for name, _ in model.named_parameters()] == ["0.W", "1.fc.W"]


def test_the_containers_of_minidl_s_own_layers_are_not_noted_but_those_of_a_user_s_subclass_are() -> None:
    class Mine(md.Dense):
        def __init__(self) -> None:
            super().__init__(2, 2, rng=0)
            self.extra: list[Any] = []

    assert md.Dense(2, 2, rng=0)._plain_containers is None
    assert all(layer._plain_containers is None for layer in md.Sequential(md.Dense(2, 2), md.LSTM(2, 3)).layers())
    assert "extra" in Mine()._plain_containers  # (and Dense's own: a subclass runs a user's code)
    mine = Mine()
    mine.extra.append(md.Tanh())
    with pytest.raises(TypeError, match=r"^Mine\.extra: Tanh objects in a plain list \(extra\[0\]\)"):
        mine.parameters()
    dense = md.Dense(2, 2, rng=0)
    dense.__dict__["_plain_containers"] = {"_sizes": None}  # (as a Dense was pickled when its sizes were noted)
    assert pickle.loads(pickle.dumps(dense))._plain_containers is None


def test_a_container_added_from_outside_to_a_built_in_layer_is_searched() -> None:
    """minidl's own classes note no container they set themselves (their private settings and caches: Dense's
    _sizes), but one a user adds to a built-in layer under a public name is searched as any other."""
    seq = md.Sequential(md.Dense(2, 2, rng=0))
    seq.extra = []
    seq.extra.append(md.Dense(2, 2, rng=1))
    with pytest.raises(TypeError, match=r"Sequential.extra: Dense objects in a plain list \(extra\[0\]\)"):
        seq.parameters()
    dense = md.Dense(2, 2, rng=2)
    dense.heads = []
    dense.heads.append(md.Dense(2, 2, rng=3))
    with pytest.raises(TypeError, match=r"Dense.heads: Dense objects in a plain list \(heads\[0\]\)"):
        dense.state_dict()
    copied = copy.deepcopy(dense)  # (the note survives a copy)
    with pytest.raises(TypeError, match=r"Dense.heads"):
        copied.parameters()
    assert "_sizes" not in (md.Dense(2, 2).__dict__["_plain_containers"] or {})


class _Tied(md.Model):
    """A model whose parameters() adds a parameter it shares with another model (held, not registered)."""

    def __init__(self, shared: md.Parameter) -> None:
        super().__init__()
        self.d = md.Dense(2, 2, rng=0)
        object.__setattr__(self, "shared", shared)

    def parameters(self) -> list[md.Parameter]:
        return [*super().parameters(), self.shared]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d(x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.d.backward(grad_output)


def test_zero_grad_asks_an_overridden_parameters() -> None:
    """zero_grad reads the registries (no search of containers, every step), but a model that overrides
    parameters() is asked its own, as PyTorch's zero_grad asks it: else the shared gradient piles up."""
    shared = md.Parameter(np.zeros(2))
    model = _Tied(shared)
    shared.grad += 5.0
    model.d.W.grad += 1.0
    model.zero_grad()
    np.testing.assert_array_equal(shared.grad, 0.0)
    np.testing.assert_array_equal(model.d.W.grad, 0.0)
