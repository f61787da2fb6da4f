"""What a model's side state (``_side_state``, made at its first call) holds, and for how long: a layer removed
from the model, a parameter replaced, is freed at once (a registration drops the walks holding it), not at the
model's next call; a buffer array rebound (``load_state_dict``, ``astype``, batch norm's running statistics at
each training step) is never held (the walk keeps the buffers' names only).  A failed call still puts back the
buffer arrays it saved (tests/test_failed_forward_state.py checks the rest)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import minidl as md
from minidl import side_state


class Table(md.Layer):
    """``x @ table``, its buffer (given: shared)."""

    single_input = True

    def __init__(self, n: int = 3, table: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("table", np.eye(n) if table is None else table)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x @ self.table

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output @ self.table.T


class Refuses(md.Layer):
    """Refuses a batch of 3 rows; passes any other through."""

    single_input = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 3:
            raise md.ShapeError("Refuses: a batch of 3 rows")
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def _dead(ref: weakref.ref) -> bool:  # type: ignore[type-arg]
    gc.collect()
    return ref() is None


@pytest.mark.parametrize("stateful", [False, True], ids=["mlp", "with_batch_norm"])
def test_a_layer_removed_after_a_call_is_freed_at_once(stateful: bool, tmp_path: Path) -> None:
    """The review's D1(a): the walk's copies of the registries held a removed layer (and its weights and
    grads) until the model's next call, through state_dict, load_state_dict, save and astype."""
    middle: md.Layer = md.BatchNorm1d(6) if stateful else md.Dense(6, 6, rng=1)
    model = md.Sequential(md.Dense(4, 6, rng=0), middle, md.Dense(6, 2, rng=2))
    model(np.ones((5, 4)))
    removed, weights = weakref.ref(middle), [weakref.ref(p.data) for p in middle.parameters()]
    del middle
    del model[1]
    assert _dead(removed) and all(_dead(w) for w in weights)
    model.load_state_dict(model.state_dict())
    md.save({"model": model.state_dict()}, tmp_path / "model.npz")
    model.astype(np.float32)
    assert _dead(removed)
    np.testing.assert_array_equal(model(np.ones((5, 4), np.float32)).shape, (5, 2))


def test_a_layer_or_a_parameter_replaced_after_a_call_is_freed_at_once() -> None:
    model = md.Sequential(md.Dense(4, 4, rng=0), md.Dense(4, 2, rng=1))
    model(np.ones((2, 4)))
    first, weight = weakref.ref(model[0]), weakref.ref(model[1].W.data)  # (a Parameter takes no weak reference)
    model[0] = md.Dense(4, 4, rng=3)
    model[1].W = md.Parameter(np.zeros((5, 2)))  # (the bias its first row)
    assert _dead(first) and _dead(weight)
    np.testing.assert_array_equal(model(np.ones((2, 4))), np.zeros((2, 2)))


def test_a_layer_removed_from_a_nested_model_is_freed_at_once() -> None:
    """Any registration drops every side state's walk: the inner model's (called alone before) and the
    outer's."""
    inner = md.Sequential(md.Dense(4, 4, rng=0), md.Dense(4, 4, rng=1))
    outer = md.Sequential(inner, md.BatchNorm1d(4))
    inner(np.ones((2, 4)))
    outer(np.ones((2, 4)))
    removed = weakref.ref(inner[1])
    inner.pop()
    assert _dead(removed)


@pytest.mark.parametrize("how", ["load_state_dict", "astype"])
def test_a_buffer_array_replaced_after_a_call_is_freed(how: str) -> None:
    """The review's D1(b): rebinding a buffer is no registration, so the walk's copy of ``_buffers`` held
    the old array for the model's whole life, also after the next calls."""
    model = md.Sequential(Table(3), md.Dense(3, 2, rng=0))
    x = np.ones((2, 3))
    model(x)
    old = weakref.ref(model[0].table)
    if how == "load_state_dict":
        model.load_state_dict({**model.state_dict(), "0.table": np.full((3, 3), 2.0)})
    else:
        model.astype(np.float32)
        x = x.astype(np.float32)
    assert _dead(old)
    model(x)
    assert _dead(old)
    np.testing.assert_array_equal(model[0].table, np.full((3, 3), 2.0) if how == "load_state_dict" else np.eye(3))


@pytest.mark.parametrize("where", ["calls", "fit"])
def test_batch_norm_training_keeps_no_old_running_statistics(where: str) -> None:
    """Batch norm rebinds its running statistics at each training step: none but the live ones is kept."""
    bn = md.BatchNorm1d(3)
    model = md.Sequential(md.Dense(2, 3, rng=0), bn)
    x = np.random.default_rng(0).normal(size=(8, 2))
    olds = [weakref.ref(bn.running_mean), weakref.ref(bn.running_var)]
    for _ in range(3):
        if where == "calls":
            model(x)
        else:
            model.fit(x, np.zeros((8, 3)), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01),
                      batch_size=4, verbose=0)
        olds += [weakref.ref(bn.running_mean), weakref.ref(bn.running_var)]
    live = {id(bn.running_mean), id(bn.running_var)}
    gc.collect()
    assert [ref() is None for ref in olds[:-2]] == [True] * (len(olds) - 2)
    assert {id(ref()) for ref in olds[-2:]} == live


class Unset(md.Layer):
    """Passes ``x`` through; its buffer ``table`` is None."""

    single_input = True

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", None)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_failed_call_puts_back_the_live_buffer_arrays_not_the_walked_ones() -> None:
    """The walk keeps the buffers' names only: a failed call puts back the arrays of its own save (one
    rebound since the walk, one shared by two layers, one None, batch norm's moved ones), not None, nor an
    array older than the save."""
    shared = np.eye(3)
    bn = md.BatchNorm1d(3)
    model = md.Sequential(Table(3, shared), Table(3, shared), Unset(), bn, Refuses())
    x = np.random.default_rng(0).normal(size=(4, 3))
    model(x)  # walked
    model.load_state_dict({**model.state_dict(), "0.table": 2 * np.eye(3), "1.table": 2 * np.eye(3)})
    model[0].table = model[1].table = table = 3 * np.eye(3)  # rebound since the walk, shared
    model(x)  # and batch norm's statistics rebound
    stats = (bn.running_mean, bn.running_var, bn.num_batches_tracked)
    values = [s.copy() for s in stats]
    with pytest.raises(md.ShapeError):
        model(x[:3])
    assert model[0].table is table and model[1].table is table
    assert model[0]._buffers["table"] is table and model[1]._buffers["table"] is table
    assert model[2].table is None and model[2]._buffers == {"table": None}
    assert all(a is b for a, b in zip((bn.running_mean, bn.running_var, bn.num_batches_tracked), stats, strict=True))
    assert all(a is b for a, b in zip(bn._buffers.values(), stats, strict=True))
    for s, v in zip(stats, values, strict=True):
        np.testing.assert_array_equal(s, v)
    np.testing.assert_array_equal(table, 3 * np.eye(3))


def test_a_buffer_registered_or_removed_by_a_failed_call_is_put_back() -> None:
    class Edits(md.Layer):
        """Removes its buffer ``old`` and registers ``new``, then refuses a batch of 3 rows."""

        single_input = True

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("old", np.ones(2))

        def forward(self, x: np.ndarray) -> np.ndarray:
            if len(x) == 3:
                del self.old
                self.register_buffer("new", np.zeros(2))
                raise md.ShapeError("Edits: a batch of 3 rows")
            return x

    layer = Edits()
    model = md.Sequential(layer, md.Dense(2, 2, rng=0))
    model(np.ones((2, 2)))
    old = layer.old
    with pytest.raises(md.ShapeError):
        model(np.ones((3, 2)))
    assert layer._buffers == {"old": old} and layer.old is old and not hasattr(layer, "new")
    with pytest.raises(md.ShapeError):  # again: the walk (dropped by the failed call's registrations) anew
        model(np.ones((3, 2)))
    assert layer._buffers == {"old": old} and layer.old is old and not hasattr(layer, "new")


def test_registrations_in_several_threads_are_all_counted() -> None:
    """Each counts once, whatever the threads (the count is moved under a lock), and every side state's walk
    is dropped: the models' next saves walk again."""
    layers = [md.Dense(2, 2, rng=k) for k in range(4)]
    for layer in layers:
        layer(np.ones((1, 2)))  # walked: their registrations count
    count, rounds = side_state.registrations, 500

    def register(layer: md.Layer) -> Callable[[], None]:
        def run() -> None:
            for _ in range(rounds):
                layer.register_buffer("b", np.zeros(1))  # (a registration)
                del layer.b  # (another)
        return run

    threads = [threading.Thread(target=register(layer)) for layer in layers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert side_state.registrations == count + 2 * rounds * len(layers)
    assert all(layer.__dict__["_side_state"]._walk is None for layer in layers)


def test_a_model_and_its_side_state_are_freed_at_once() -> None:
    """The layers' sets of the side states that walked them (whose walks a registration drops) hold them
    weakly."""
    dense = md.Dense(2, 2, rng=0)
    model = md.Sequential(dense, md.BatchNorm1d(2))
    model(np.ones((2, 2)))
    state = weakref.ref(model.__dict__["_side_state"])
    assert state() in dense.__dict__["_watched"]
    gc.disable()
    try:
        del model
        assert state() is None and len(dense.__dict__["_watched"]) == 0
    finally:
        gc.enable()


def test_a_registration_drops_only_the_walks_of_the_models_holding_the_layer() -> None:
    """A registration dropped every live model's walk (365 us with 5000 models alive, against 17 us): now only
    those of the side states that walked the layer, so its cost does not grow with the models alive."""
    inside, outside = md.Sequential(md.Dense(2, 2, rng=0)), md.Sequential(md.Dense(2, 2, rng=1))
    for model in (inside, outside):
        model(np.ones((1, 2)))
    layer = inside[0]
    layer.register_buffer("b", np.zeros(1))
    assert inside.__dict__["_side_state"]._walk is None  # (the model holding it walks again at its next call)
    assert outside.__dict__["_side_state"]._walk is not None


def test_a_buffer_taken_out_of_the_registry_by_hand_stays_out_after_a_failed_call() -> None:
    """A name the walk lists but the save has no array for (``_buffers`` edited by hand, no registration
    counted) is not put back as None by a failed call."""
    layer = Table()
    model = md.Sequential(layer, Refuses())
    model(np.ones((2, 3)))  # walked
    del layer._buffers["table"]  # (by hand: no registration)
    with pytest.raises(md.ShapeError):
        model(np.ones((3, 3)))
    assert "table" not in layer._buffers
