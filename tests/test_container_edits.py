"""Editing ``Sequential`` and ``LayerList`` as PyTorch's ``nn.Sequential`` / ``nn.ModuleList``: ``insert``,
``extend``, ``pop``, ``del model[i]`` / ``del model[i:j]``, ``model[i] = layer``, ``+`` and ``+=``.

One rule for names: a layer keeps its name while it stays; a layer that joins is named one past the
largest number the container has ever given (so a name never comes back for another layer); one that
replaces another takes its name; a new container numbers from "0" (a ``Sequential`` slice keeps the
names).  Every edit keeps the guard (no layer run twice in one pass, also by a container that runs the one
edited; no cycle), a refused edit changes nothing, and an edit forgets the last forward (backward refused
until a forward).  Also ``named_parameters`` / ``named_buffers(remove_duplicate=False)`` and ``summary`` counting a
parameter or buffer shared by two layers once."""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import BackwardBeforeForwardError
from minidl.summary import summarize


def five() -> md.Sequential:
    """Dense(4->3), ReLU, Dense(3->3), Tanh, Dense(3->2), float64, named "0" .. "4"."""
    return md.Sequential(md.Dense(4, 3, rng=0), md.ReLU(), md.Dense(3, 3, rng=1), md.Tanh(), md.Dense(3, 2, rng=2))


def names(container: md.Layer) -> list[str]:
    return [name for name, _ in container.named_children()]


def chain(layers: list[md.Layer], x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The output, dx and parameter gradients of ``layers`` applied by hand, in order (grads zeroed first)."""
    for layer in layers:
        layer.zero_grad()
    for layer in layers:
        x = layer(x)
    y = x
    for layer in reversed(layers):
        g = layer.backward(g)
    return y, g, [p.grad.copy() for layer in layers for p in layer.parameters()]


def snapshot(model: md.Layer) -> list[tuple[int, dict[str, Any]]]:
    """What a refused edit must leave as it was: every attribute of the container and of each layer in it
    (names and order in the registries, the last-forward marks, registration counts, caches), the
    registries copied, the values by identity.  Not ``_holders``, each layer's weak references to the
    layers that took it: making the argument of a refused edit (``md.Residual(model)``) takes it."""
    def attributes(layer: md.Layer) -> dict[str, Any]:
        return {key: list(value.items()) if isinstance(value, dict) else set(value) if isinstance(value, set)
                else value for key, value in layer.__dict__.items() if key != "_holders"}
    return [(id(layer), attributes(layer)) for layer in model.layers()]


def same(a: Any, b: Any) -> bool:
    """Equal containers of the same objects (numbers and strings by value)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(p, q) for p, q in zip(a, b, strict=True))
    if isinstance(a, (set, int, str, float)):
        return type(a) is type(b) and a == b
    return a is b


# ----------------------------------------------------------------------------------------- names and order
@pytest.mark.parametrize("index, position, expected", [
    (0, 0, ["5", "0", "1", "2", "3", "4"]),
    (1, 1, ["0", "5", "1", "2", "3", "4"]),
    (-1, 4, ["0", "1", "2", "3", "5", "4"]),
    (5, 5, ["0", "1", "2", "3", "4", "5"]),
    (-5, 0, ["5", "0", "1", "2", "3", "4"]),
])
def test_insert_puts_the_layer_at_its_place_under_the_next_free_name(index: int, position: int,
                                                                      expected: list[str]) -> None:
    model = five()
    before = list(model)
    new = md.Sigmoid()
    assert model.insert(index, new) is model
    assert names(model) == expected
    assert list(model) == [*before[:position], new, *before[position:]]
    assert model[position] is new
    # every layer that stays keeps its keys: "2.W" is the same Dense as before the insert
    kept = [name for name in expected if name in ("0", "2", "4")]
    assert list(model.state_dict()) == [f"{name}.W" for name in kept] + [f"{name}._layout" for name in kept]
    np.testing.assert_array_equal(model.state_dict()["2.W"], before[2].W.data)


def test_insert_of_a_dense_before_the_others_keeps_every_old_key_on_its_layer() -> None:
    """PyTorch renumbers: its "1.weight" would be the new layer's, and an old checkpoint would load into
    it; here the old state loads back, the new layer reported missing."""
    model = five()
    state = model.state_dict()
    model.insert(1, md.Dense(3, 3, rng=9))
    assert list(model.state_dict()) == ["0.W", "5.W", "2.W", "4.W", "0._layout", "5._layout", "2._layout", "4._layout"]
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["5.W"] and result.unexpected_keys == []
    np.testing.assert_array_equal(model[3].W.data, state["2.W"])


def test_extend_appends_in_order_from_lists_sequentials_layer_lists_and_generators() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0))
    a, b, c, d, e = md.Tanh(), md.ReLU(), md.Sigmoid(), md.Dense(2, 2, rng=1), md.Tanh()
    assert model.extend([a]) is model
    model.extend(md.Sequential(b, c))
    model.extend(md.LayerList([d]))
    model.extend(layer for layer in [e])
    model.extend([])
    assert names(model) == ["0", "1", "2", "3", "4", "5"]
    assert list(model)[1:] == [a, b, c, d, e]
    model += md.Sequential(md.Softplus())
    assert names(model)[-1] == "6" and isinstance(model[-1], md.Softplus)


def test_append_and_extend_after_a_gap_go_past_every_name_given() -> None:
    model = five()
    del model[1:3]
    assert names(model) == ["0", "3", "4"]
    model.extend([md.ReLU(), md.Tanh()])
    assert names(model) == ["0", "3", "4", "5", "6"]
    del model[-2:]
    model.append(md.ReLU())  # the largest number in use is "4" again, but "5" and "6" were given
    assert names(model) == ["0", "3", "4", "7"]


@pytest.mark.parametrize("index, expected, removed", [
    (1, ["0", "2", "3", "4"], ["1"]), (-1, ["0", "1", "2", "3"], ["4"]), (0, ["1", "2", "3", "4"], ["0"]),
    (slice(1, 3), ["0", "3", "4"], ["1", "2"]), (slice(None, None, 2), ["1", "3"], ["0", "2", "4"]),
    (slice(-2, None), ["0", "1", "2"], ["3", "4"]), (slice(3, 1), ["0", "1", "2", "3", "4"], []),
])
def test_del_leaves_the_other_names_and_their_state_dict_keys(index: int | slice, expected: list[str],
                                                               removed: list[str]) -> None:
    model = five()
    by_name = dict(model._layers)
    del model[index]
    assert names(model) == expected
    assert all(model._layers[name] is by_name[name] for name in expected)
    assert not any(name in model.__dict__ for name in removed)  # the attributes go too
    kept = [name for name in expected if name in ("0", "2", "4")]
    assert list(model.state_dict()) == [f"{name}.W" for name in kept] + [f"{name}._layout" for name in kept]
    assert len(model.parameters()) == len([name for name in expected if name in ("0", "2", "4")])


def test_pop_returns_the_layer_and_leaves_a_gap() -> None:
    model = five()
    layers = list(model)
    assert model.pop() is layers[4] and names(model) == ["0", "1", "2", "3"]
    assert model.pop(1) is layers[1] and names(model) == ["0", "2", "3"]
    assert model.pop(-3) is layers[0] and names(model) == ["2", "3"]
    assert model.pop(np.int64(0)) is layers[2] and list(model) == [layers[3]]
    blocks = md.LayerList([md.ReLU(), md.Tanh(), md.Sigmoid()])
    inner = list(blocks)
    part_list = blocks.pop(slice(0, 2))
    assert type(part_list) is md.LayerList and names(part_list) == ["0", "1"] and list(part_list) == inner[:2]
    assert names(blocks) == ["2"] and blocks.pop() is inner[2] and len(blocks) == 0


def test_pop_slice_returns_the_removed_layers_under_their_names() -> None:
    model = five()
    layers = list(model)
    part = model.pop(slice(1, 3))
    assert type(part) is md.Sequential and names(part) == ["1", "2"] and list(part) == layers[1:3]
    assert names(model) == ["0", "3", "4"] and list(model) == [layers[0], *layers[3:]]


def test_setitem_replaces_in_place_under_the_old_name() -> None:
    model = five()
    layers = list(model)
    head = md.Dense(3, 5, rng=7)
    model[-1] = head
    assert names(model) == ["0", "1", "2", "3", "4"] and model[4] is head and model._layers["4"] is head
    assert list(model)[:4] == layers[:4]
    model[1] = md.Sigmoid()
    assert isinstance(model[1], md.Sigmoid) and names(model) == ["0", "1", "2", "3", "4"]
    assert model.state_dict()["4.W"].shape == (4, 5)
    # a layer wrapped in place: the replaced layer does not count as already in the sequence
    dense = model[2]
    model[2] = md.Residual(dense)
    assert model[2].block is dense and names(model) == ["0", "1", "2", "3", "4"]
    assert list(model.state_dict()) == ["0.W", "2.block.W", "4.W", "0._layout", "2.block._layout", "4._layout"]


def test_plus_makes_a_new_sequence_numbered_from_zero_and_leaves_both_alone() -> None:
    a = five()
    del a[1]
    b = md.Sequential(md.Dense(2, 2, rng=5), md.Tanh())
    x = np.random.default_rng(0).standard_normal((3, 4))
    y = a(x)
    c = a + b
    assert type(c) is md.Sequential and names(c) == ["0", "1", "2", "3", "4", "5"]
    assert list(c) == list(a) + list(b)
    assert names(a) == ["0", "2", "3", "4"] and len(b) == 2
    assert a.backward(np.ones_like(y)).shape == x.shape  # a was not edited: its last forward stands
    with pytest.raises(ValueError, match="Sequential: this Dense is already in the sequence"):
        a + a
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+: 'Sequential' and 'list'"):
        a + [md.ReLU()]  # type: ignore[operator]  # noqa: RUF005
    with pytest.raises(TypeError, match=r"unsupported operand type\(s\) for \+=: 'Sequential' and 'list'"):
        a += [md.ReLU()]  # type: ignore[arg-type]
    assert names(a) == ["0", "2", "3", "4"]


# --------------------------------------------------------------------------- refusals change nothing
def _run(model: md.Sequential) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    return x, model(x)


REFUSED: list[tuple[str, Callable[[md.Sequential], Any], type[Exception], str]] = [
    ("insert out of range", lambda m: m.insert(6, md.ReLU()), IndexError,
     "Sequential.insert: index 6 is out of range for 5 layers (from -5 to 5)"),
    ("insert too negative", lambda m: m.insert(-6, md.ReLU()), IndexError,
     "Sequential.insert: index -6 is out of range for 5 layers (from -5 to 5)"),
    ("insert a bool", lambda m: m.insert(True, md.ReLU()), TypeError,
     "Sequential.insert: the index must be an int, got bool"),
    ("insert at a float", lambda m: m.insert(1.0, md.ReLU()), TypeError,
     "Sequential.insert: the index must be an int, got float"),
    ("insert a non-layer", lambda m: m.insert(1, np.tanh), TypeError,
     "Sequential.insert: expected a Layer, got ufunc"),
    ("insert a layer already in it", lambda m: m.insert(0, m[2]), ValueError,
     "Sequential.insert: this Dense is already in the sequence; a layer keeps one forward cache"),
    ("insert a container holding one", lambda m: m.insert(0, md.Sequential(md.Tanh(), m[4])), ValueError,
     "Sequential.insert: this Dense is already in the sequence (inside the layer inserted)"),
    ("insert the sequence itself", lambda m: m.insert(0, m), ValueError,
     "Sequential.insert: this Sequential is the Sequential itself; adding it would make a cycle"),
    ("insert a container of it", lambda m: m.insert(0, md.Residual(m)), ValueError,
     "Sequential.insert: this Residual contains the Sequential itself; adding it would make a cycle"),
    # (refused before the edits existed too, as "Sequential: this Dense ...": what this case adds is the
    # method named in the message and the check that nothing changed)
    ("append a layer already in it", lambda m: m.append(m[0]), ValueError,
     "Sequential.append: this Dense is already in the sequence"),
    ("extend with a non-layer inside", lambda m: m.extend([md.ReLU(), 3, md.Tanh()]), TypeError,
     "Sequential.extend: expected a Layer, got int"),
    ("extend with a layer twice", lambda m: (lambda t: m.extend([t, md.ReLU(), t]))(md.Tanh()), ValueError,
     "Sequential.extend: this Tanh is already in the sequence"),
    ("extend with one already in it", lambda m: m.extend([md.ReLU(), m[1]]), ValueError,
     "Sequential.extend: this ReLU is already in the sequence"),
    ("extend by one layer", lambda m: m.extend(md.ReLU()), TypeError,
     "Sequential.extend: expected an iterable of layers, got ReLU; append(layer) adds one layer"),
    ("extend by itself", lambda m: m.extend(m), ValueError, "Sequential.extend: this Dense is already in the sequence"),
    ("+= itself", lambda m: m.__iadd__(m), ValueError, "Sequential.extend: this Dense is already in the sequence"),
    ("pop out of range", lambda m: m.pop(5), IndexError,
     "Sequential.pop: index 5 is out of range for 5 layers (from -5 to 4)"),
    ("del out of range", lambda m: m.__delitem__(-6), IndexError,
     "Sequential.__delitem__: index -6 is out of range for 5 layers (from -5 to 4)"),
    ("del a bool", lambda m: m.__delitem__(False), TypeError,
     "Sequential.__delitem__: the index must be an int or a slice, got bool"),
    ("setitem out of range", lambda m: m.__setitem__(5, md.ReLU()), IndexError,
     "Sequential.__setitem__: index 5 is out of range for 5 layers (from -5 to 4)"),
    ("setitem a layer already elsewhere", lambda m: m.__setitem__(1, m[3]), ValueError,
     "Sequential[1]: this Tanh is already in the sequence"),
    ("setitem a non-layer", lambda m: m.__setitem__(1, None), TypeError,
     "Sequential[1]: expected a Layer, got NoneType"),
    ("setitem a slice", lambda m: m.__setitem__(slice(0, 2), md.ReLU()), TypeError,
     "Sequential: a slice cannot be assigned (model[i:j] = ...); delete it"),
    ("setattr a layer already in it", lambda m: setattr(m, "7", m[0]), ValueError,
     "Sequential: assigning a layer as '7': this Dense is already in the sequence"),
    ("setattr a number over a layer", lambda m: setattr(m, "2", 5), TypeError,
     "Sequential attribute '2' is a registered Layer; assign a Layer (or None to remove it), not int"),
    ("setattr a cycle", lambda m: setattr(m, "me", m), ValueError,
     "Sequential: assigning a layer as 'me': this Sequential is the Sequential itself; adding it would make a cycle"),
]


@pytest.mark.parametrize("what, edit, error, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_refused_edit_changes_nothing_and_the_last_forward_still_backs_up(
        what: str, edit: Callable[[md.Sequential], Any], error: type[Exception], message: str) -> None:
    model = five()
    x, y = _run(model)
    g = np.random.default_rng(2).standard_normal(y.shape)
    before = snapshot(model)
    with pytest.raises(error, match="^" + re.escape(message)):
        edit(model)
    assert same(snapshot(model), before), what
    # the last forward's caches are untouched and usable: the same gradients as the layers by hand
    model.zero_grad()
    dx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    _, dx_hand, grads_hand = chain(list(model), x, g)
    np.testing.assert_array_equal(dx, dx_hand)
    for a, b in zip(grads, grads_hand, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pop_from_an_empty_container_is_refused() -> None:
    with pytest.raises(IndexError, match=r"Sequential\.pop: pop from an empty Sequential"):
        md.Sequential().pop()
    with pytest.raises(IndexError, match=r"LayerList\.pop: pop from an empty LayerList"):
        md.LayerList().pop()
    with pytest.raises(IndexError, match=r"Sequential.insert: index 1 is out of range for 0 layers \(from 0 to 0\)"):
        md.Sequential().insert(1, md.ReLU())
    assert names(md.Sequential().insert(0, md.ReLU())) == ["0"]


# ------------------------------------------------------------------------- an edit forgets the last forward
EDITS: list[tuple[str, Callable[[md.Sequential], Any], str]] = [
    ("insert", lambda m: m.insert(1, md.Tanh()), "layer '5' was inserted at position 1"),
    ("append", lambda m: m.append(md.Tanh()), "layer '5' was appended"),
    ("extend", lambda m: m.extend([md.Tanh(), md.ReLU()]), "layers '5', '6' were appended"),
    ("+=", lambda m: m.__iadd__(md.Sequential(md.Tanh())), "layer '5' was appended"),
    ("pop", lambda m: m.pop(3), "layer '3' was deleted"),
    ("del", lambda m: m.__delitem__(1), "layer '1' was deleted"),
    ("del slice", lambda m: m.__delitem__(slice(2, 4)), "layers '2', '3' were deleted"),
    ("setitem", lambda m: m.__setitem__(3, md.Sigmoid()), "layer '3' was replaced"),
    ("setattr new", lambda m: setattr(m, "9", md.Tanh()), "layer '9' was added by assignment"),
    ("setattr replace", lambda m: setattr(m, "1", md.Tanh()), "layer '1' was replaced by assignment"),
    ("setattr None", lambda m: setattr(m, "1", None), "layer '1' was removed by assignment"),
    ("delattr", lambda m: delattr(m, "3"), "layer '3' was deleted"),
]


@pytest.mark.parametrize("what, edit, description", EDITS, ids=[e[0] for e in EDITS])
def test_after_an_edit_backward_is_refused_until_a_forward(what: str, edit: Callable[[md.Sequential], Any],
                                                           description: str) -> None:
    """The layers' caches are those of a pass through the layers as they were: a backward now would skip a
    deleted layer, or back up through an inserted one's cache of another pass."""
    model = five()
    x, y = _run(model)
    g = np.ones_like(y)
    edit(model)
    for method in ("backward", "backward_params"):
        with pytest.raises(BackwardBeforeForwardError) as info:
            getattr(model, method)(g)
        assert str(info.value) == (
            f"Sequential.{method}: the sequence was edited after its last forward ({description}), so its layers' "
            "caches are not those of one pass through its present layers; run a forward first")
    y = model(x)
    g = np.random.default_rng(3).standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    y_hand, dx_hand, grads_hand = chain(list(model), x, g)
    np.testing.assert_array_equal(y, y_hand)
    np.testing.assert_array_equal(dx, dx_hand)
    for a, b in zip(grads, grads_hand, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_edit_that_changes_nothing_keeps_the_last_forward() -> None:
    model = five()
    _, y = _run(model)
    del model[4:2]  # an empty slice
    model.extend([])
    model[2] = model[2]  # the same layer
    assert names(model) == ["0", "1", "2", "3", "4"]
    assert model.backward(np.ones_like(y)).shape == (3, 4)


def test_a_forward_that_fails_after_an_edit_is_named_and_one_refused_at_the_first_layer_keeps_the_edit() -> None:
    model = five()
    _run(model)
    model.insert(3, md.Dense(3, 6, rng=4))  # breaks the width: Dense "4" gets 6 features
    with pytest.raises(md.ShapeError, match="Sequential layer '4'"):
        model(np.ones((3, 4)))
    with pytest.raises(BackwardBeforeForwardError, match="the last forward failed at layer '4'"):
        model.backward(np.ones((3, 2)))
    model = five()
    _run(model)
    model.append(md.Tanh())
    with pytest.raises(md.ShapeError, match="Sequential layer '0'"):
        model(np.ones((3, 7)))  # refused by the first layer before anything ran
    with pytest.raises(BackwardBeforeForwardError, match=r"edited after its last forward \(layer '5' was appended\)"):
        model.backward(np.ones((3, 2)))


def test_an_edit_of_a_nested_sequence_refuses_the_outer_backward() -> None:
    inner = md.Sequential(md.Dense(3, 3, rng=1), md.Tanh())
    outer = md.Sequential(md.Dense(4, 3, rng=0), inner, md.Dense(3, 2, rng=2))
    y = outer(np.ones((2, 4)))
    inner.insert(1, md.ReLU())
    with pytest.raises(BackwardBeforeForwardError, match=r"^Sequential layer '1': Sequential.backward: the sequence "
                                                         r"was edited after its last forward \(layer '2' was inserted"):
        outer.backward(np.ones_like(y))
    # (training's back-pass asks the inner sequence for its backward: a trainable layer is in front of it)
    with pytest.raises(BackwardBeforeForwardError, match=r"^Sequential layer '1': Sequential.backward: the "
                                                         "sequence was edited"):
        outer.backward_params(np.ones_like(y))
    front = md.Sequential(inner, md.Dense(3, 2, rng=2))
    y = front(np.ones((2, 3)))
    inner.pop()
    with pytest.raises(BackwardBeforeForwardError, match=r"^Sequential layer '0': Sequential.backward_params: the "
                                                         r"sequence was edited after its last forward \(layer '1' was "
                                                         "deleted"):
        front.backward_params(np.ones_like(y))
    outer(np.ones((2, 4)))
    assert outer.backward(np.ones_like(y)).shape == (2, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_gradient_checker_passes_on_edited_models(seed: int) -> None:
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 6))
    model = md.Sequential(md.Dense(4, width, rng=seed), md.Tanh(), md.Dense(width, 3, rng=seed + 1)).astype(np.float64)
    model(rng.standard_normal((2, 4)))
    model.insert(1, md.LayerNorm(width).astype(np.float64))
    model[-1] = md.Dense(width, 2, rng=seed + 2).astype(np.float64)
    model.extend([md.Sigmoid(), md.Dense(2, 3, rng=seed + 3).astype(np.float64)])
    del model[4]  # the Sigmoid ("4"), the first layer extended
    model.insert(0, md.Dense(4, 4, rng=seed + 4).astype(np.float64))
    assert names(model) == ["6", "0", "3", "1", "2", "5"]
    assert [type(layer).__name__ for layer in model] == ["Dense", "Dense", "LayerNorm", "Tanh", "Dense", "Dense"]
    report = md.GradientChecker(model, seed=seed, batch_size=int(rng.integers(2, 5))).run()
    assert report.passed, str(report)
    assert {r.name.split(".")[0] for r in report.results if "." in r.name} == {"6", "0", "3", "2", "5"}
    # and training's back-pass after a forward
    x = rng.standard_normal((5, 4))
    y = model(x)
    g = rng.standard_normal(y.shape)
    model.zero_grad()
    model.backward_params(g)
    grads = [p.grad.copy() for p in model.parameters()]
    _, _, grads_hand = chain(list(model), x, g)
    for a, b in zip(grads, grads_hand, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fit_trains_an_edited_model_in_its_new_order() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 2))
    model = md.Sequential(md.Dense(4, 8, rng=0), md.Dense(8, 2, rng=1))
    model.insert(1, md.Tanh())
    history = model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=3,
                        batch_size=8, rng=0, verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    assert names(model) == ["0", "2", "1"] and isinstance(model[1], md.Tanh)


# ------------------------------------------------------------------ the containers above an edited sequence
def nested() -> tuple[md.Sequential, md.Sequential, md.Dense]:
    """``outer`` = Sequential(Residual(Sequential(Dense, inner)), d), ``inner`` = Sequential(Tanh, Dense): the
    outer sequence runs ``inner`` as its layer '0.block.1', and ``d``."""
    inner = md.Sequential(md.Tanh(), md.Dense(3, 3, rng=1))
    d = md.Dense(3, 3, rng=2)
    outer = md.Sequential(md.Residual(md.Sequential(md.Dense(3, 3, rng=0), inner)), d)
    return outer, inner, d


RUN_TWICE_ABOVE: list[tuple[str, Callable[[md.Sequential, md.Layer], Any], str]] = [
    ("append", lambda inner, d: inner.append(d), "Sequential.append: this Dense"),
    ("insert", lambda inner, d: inner.insert(0, d), "Sequential.insert: this Dense"),
    ("extend", lambda inner, d: inner.extend([md.ReLU(), d]), "Sequential.extend: this Dense"),
    ("+=", lambda inner, d: inner.__iadd__(md.Sequential(d)), "Sequential.extend: this Dense"),
    ("setitem, inside", lambda inner, d: inner.__setitem__(0, md.Residual(d)),
     "Sequential[0]: this Dense (inside the layer assigned)"),
    ("setattr", lambda inner, d: setattr(inner, "9", d), "Sequential: assigning a layer as '9': this Dense"),
]


@pytest.mark.parametrize("what, edit, start", RUN_TWICE_ABOVE, ids=[r[0] for r in RUN_TWICE_ABOVE])
def test_an_edit_that_would_make_a_container_above_run_a_layer_twice_is_refused(
        what: str, edit: Callable[[md.Sequential, md.Layer], Any], start: str) -> None:
    """Accepted before: the outer sequence then ran ``d`` twice and its ``d.W.grad`` was wrong (the second
    call's cache overwrote the first's)."""
    outer, inner, d = nested()
    x = np.random.default_rng(0).standard_normal((4, 3))
    y = outer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    outer.zero_grad()
    dx = outer.backward(g)
    grads = [p.grad.copy() for p in outer.parameters()]
    before = snapshot(outer)
    with pytest.raises(ValueError) as info:
        edit(inner, d)
    assert str(info.value) == (
        f"{start} is already run by a Sequential that holds this Sequential (as its layer '0.block.1'); a layer "
        "keeps one forward cache, so calling it twice in one pass breaks its backward. Use a second layer that "
        "shares the parameter instead (second.W = first.W)")
    assert same(snapshot(outer), before), what
    outer.zero_grad()  # the last forward stands: the same gradients again
    np.testing.assert_array_equal(outer.backward(g), dx)
    for p, grad in zip(outer.parameters(), grads, strict=True):
        np.testing.assert_array_equal(p.grad, grad)


def test_every_container_that_runs_the_edited_one_is_asked() -> None:
    # the layer shared sits in a Residual's other path, in a Stack, in an enclosing Sequential; the edited
    # container is a Sequential or a Residual whose path is reassigned
    d = md.Dense(3, 3, rng=0)
    inner = md.Sequential(md.Tanh())
    both = md.Residual(inner, shortcut=md.Sequential(d))
    with pytest.raises(ValueError, match=r"^Sequential.append: this Dense is already run by a Residual that holds "
                                         r"this Sequential \(as its layer 'block'\)"):
        inner.append(d)
    inner = md.Sequential(md.Tanh())
    stack = md.Stack(md.Dense(3, 3, rng=1), inner, md.Sequential(d))
    with pytest.raises(ValueError, match=r"^Sequential.insert: this Dense is already run by a Stack that holds "
                                         r"this Sequential \(as its layer '1'\)"):
        inner.insert(0, d)
    block = md.Residual(md.Tanh())
    outer = md.Sequential(md.Sequential(block), d)
    with pytest.raises(ValueError, match=r"^Residual.block: this Dense is already run by a Sequential that holds "
                                         r"this Residual \(as its layer '0.0'\)"):
        block.block = d
    assert isinstance(block.block, md.Tanh) and list(outer)[1] is d and len(stack) == 3 and both.shortcut[0] is d
    block.block = md.Dense(3, 3, rng=2)  # a layer of its own is fine
    x = np.random.default_rng(0).standard_normal((2, 3))
    report = md.GradientChecker(outer.astype(np.float64), inputs=x).run()
    assert report.passed, str(report)


def test_an_edit_is_not_refused_for_a_holder_that_does_not_run_it_or_no_longer_holds_it() -> None:
    class Keeps(md.Layer):  # holds a sequence without running it (its own business, as at construction)
        def __init__(self, kept: md.Layer) -> None:
            super().__init__()
            self.kept = kept

        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output

    d = md.Dense(3, 3, rng=0)
    inner = md.Sequential(md.Tanh())
    outer = md.Sequential(Keeps(inner), d)
    wrapped = md.Sequential(Keeps(md.LayerList([inner, d])))
    inner.append(d)  # neither outer nor wrapped runs inner (nor does a LayerList): accepted
    assert list(inner)[1] is d and len(outer) == 2 and len(wrapped) == 1
    # a sequence that left the one above it is free of it
    e = md.Dense(3, 3, rng=1)
    second = md.Sequential(md.Tanh())
    above = md.Sequential(second, e)
    with pytest.raises(ValueError, match="already run by a Sequential that holds this Sequential"):
        second.append(e)
    del above[0]
    second.append(e)
    third = md.Sequential(md.Tanh())
    above = md.Sequential(third, md.Dense(3, 3, rng=2))
    above[0] = md.ReLU()  # replaced: no longer held
    third.append(above[1])
    assert names(third) == ["0", "1"]


def test_copies_and_pickles_keep_the_guard_of_the_containers_above() -> None:
    """Each layer's weak references to its holders are rebuilt by the copy (they do not pickle), and point to
    the copies, never to the original."""
    outer, inner, d = nested()
    assert "_holders" in d.__dict__ and "_holders" not in d.__getstate__()
    for twin in (copy.deepcopy(outer), pickle.loads(pickle.dumps(outer))):
        twin_inner, twin_d = twin[0].block[1], twin[1]
        with pytest.raises(ValueError, match=r"is already run by a Sequential that holds this Sequential \(as its "
                                             r"layer '0.block.1'\)"):
            twin_inner.append(twin_d)
        twin_inner.append(d)  # the original's d: the copy does not run it
        assert twin_inner[-1] is d
    with pytest.raises(ValueError, match="is already run by a Sequential"):  # the original's guard is intact
        inner.append(d)
    # a layer pickled alone takes no holder along (a copy of a branch is free of the model it came from)
    alone = copy.deepcopy(inner)
    alone.append(md.Sequential(*[copy.deepcopy(d)]))
    assert len(alone) == 3


class Keeping(md.Residual):
    """A ``__getstate__`` of the common kind: every attribute but a scratch one (so ``_holders`` too)."""

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "scratch"}


def test_a_layer_whose_own_getstate_keeps_every_attribute_still_pickles_and_keeps_the_guard() -> None:
    d = md.Dense(3, 3, rng=0)
    inner = md.Sequential(md.Tanh())
    held = Keeping(inner)
    outer = md.Sequential(held, d)
    assert "_holders" in held.__dict__ and "_holders" in held.__getstate__()
    for twin in (copy.deepcopy(outer), pickle.loads(pickle.dumps(outer))):
        with pytest.raises(ValueError, match=r"already run by a Sequential that holds this Sequential \(as its layer "
                                             r"'0.block'\)"):
            twin[0].block.append(twin[1])
        with pytest.raises(ValueError, match=r"^Keeping.block: this Dense is already run by a Sequential that holds "
                                             r"this Keeping \(as its layer '0'\)"):
            twin[0].block = twin[1]


# ------------------------------------------------------------------------------- a name never comes back
def test_a_deleted_layers_name_is_not_given_to_another_so_an_old_checkpoint_cannot_fill_it() -> None:
    """Before, the largest number in use was free again once the last layer went: the new first layer was
    named "2" and ``load_state_dict(old, strict=True)`` filled it with the deleted layer's weights."""
    model = md.Sequential(md.Dense(4, 4, rng=0), md.Tanh(), md.Dense(4, 4, rng=1))
    old = model.state_dict()
    del model[-1]
    new = md.Dense(4, 4, rng=5)
    model.insert(0, new)
    assert names(model) == ["3", "0", "1"]
    with pytest.raises(md.StateDictError, match=r"missing key '3\.W'\n  unexpected key '2\.W'"):
        model.load_state_dict(old)
    result = model.load_state_dict(old, strict=False)
    assert result.missing_keys == ["3.W"] and result.unexpected_keys == ["2.W", "2._layout"]
    assert not np.array_equal(new.W.data, old["2.W"])
    np.testing.assert_array_equal(model[1].W.data, old["0.W"])


@pytest.mark.parametrize("make", [lambda: five(), lambda: md.LayerList(list(five()))],
                         ids=["Sequential", "LayerList"])
def test_every_way_a_layer_leaves_moves_the_mark(make: Callable[[], Any]) -> None:
    container = make()
    container.pop()
    container.append(md.Tanh())  # PyTorch: "4" again
    assert names(container) == ["0", "1", "2", "3", "5"]
    del container[-2:]
    container.extend([md.ReLU(), md.Tanh()])
    assert names(container) == ["0", "1", "2", "6", "7"]
    setattr(container, "11", md.Sigmoid())  # a name set by hand counts too
    delattr(container, "11")
    container.insert(0, md.ReLU())
    assert names(container) == ["12", "0", "1", "2", "6", "7"]
    setattr(container, "12", None)  # a plain value over a layer: it left
    container += [md.Tanh()] if isinstance(container, md.LayerList) else md.Sequential(md.Tanh())
    assert names(container)[-1] == "13"
    container[0] = md.ReLU()  # a replacement keeps the name: no number is used up
    container.append(md.Tanh())
    assert names(container)[-1] == "14"
    # a new container numbers from "0"; a Sequential slice keeps the names and goes on past them
    part = container[1:3]
    part.append(md.Tanh())
    assert names(part) == (["1", "2", "3"] if isinstance(container, md.Sequential) else ["0", "1", "2"])


# ------------------------------------------------------------------------------ copies of an edited model
def edited() -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    model = five()
    x, _ = _run(model)
    del model[3]  # the Tanh "3"
    model.insert(1, md.Dense(3, 3, rng=3))  # "5"
    model.pop()  # the last Dense "4": the mark stays at 6
    model.append(md.Dense(3, 2, rng=4))  # "6"
    return model, x, np.random.default_rng(4).standard_normal((x.shape[0], 2))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_an_edited_sequence_keeps_names_order_mark_the_edit_and_gradients(how: str) -> None:
    model, x, g = edited()
    twin = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert names(twin) == names(model) == ["0", "5", "1", "2", "6"]
    assert [type(layer).__name__ for layer in twin] == ["Dense", "Dense", "ReLU", "Dense", "Dense"]
    for method in ("backward", "backward_params"):  # the edit is not forgotten by the copy
        with pytest.raises(BackwardBeforeForwardError, match=r"edited after its last forward \(layer '6' was "
                                                             r"appended\)"):
            getattr(twin, method)(g)
    for container in (model, twin):
        container.zero_grad()
        container(x)
        container.backward_params(g)
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        assert mine is not theirs
        np.testing.assert_array_equal(mine.grad, theirs.grad)
    for container in (model, twin):  # the copy keeps the mark: "6" is not given again
        container.pop()
        container.append(md.Tanh())
    assert names(twin) == names(model) == ["0", "5", "1", "2", "7"]


def test_a_sequence_pickled_without_the_mark_names_past_the_names_in_use() -> None:
    """The earlier code kept no mark: a container it pickled after a deletion knows only its names."""
    model, _, _ = edited()
    state = model.__getstate__()
    assert state["_left_up_to"] == 6
    state = {key: value for key, value in state.items() if key != "_left_up_to"}
    old = md.Sequential.__new__(md.Sequential)
    old.__setstate__(state)
    old.append(md.Tanh())
    assert names(old) == ["0", "5", "1", "2", "6", "7"]
    del old[-2:]
    old.append(md.Tanh())  # from here on, the mark is kept
    assert names(old)[-1] == "8"


# ------------------------------------------------------------------------------ odd indices, subclasses
@pytest.mark.parametrize("make", [lambda: five(), lambda: md.LayerList(list(five()))],
                         ids=["Sequential", "LayerList"])
def test_bools_are_refused_as_indices_and_numpy_ints_taken(make: Callable[[], Any]) -> None:
    container = make()
    who = type(container).__name__
    before = snapshot(container)
    calls: list[tuple[Callable[[Any], Any], str]] = [
        (lambda i: container.insert(i, md.ReLU()), f"{who}.insert: the index must be an int, got "),
        (lambda i: container.__setitem__(i, md.ReLU()), f"{who}.__setitem__: the index must be an int, got "),
        (lambda i: container.__delitem__(i), f"{who}.__delitem__: the index must be an int or a slice, got "),
        (lambda i: container.pop(i), f"{who}.pop: the index must be an int or a slice, got "),
        (lambda i: container[i], f"{who} indices must be ints or slices, not ")]
    for flag in (True, np.bool_(False)):
        for call, message in calls:
            with pytest.raises(TypeError) as info:
                call(flag)
            assert str(info.value) == message + type(flag).__name__
    assert same(snapshot(container), before)
    layers = list(container)
    for kind in (np.int8, np.int64, np.uint8):
        assert container[kind(2)] is layers[2] and container[np.int16(-1)] is layers[-1]
    relu, tanh = md.ReLU(), md.Tanh()
    container.insert(np.int64(-1), relu)
    container[np.uint8(0)] = tanh
    assert container.pop(np.int8(-2)) is relu
    del container[np.int32(1)]
    assert names(container) == ["0", "2", "3", "4"] and list(container) == [tanh, *layers[2:]]


def test_del_with_a_negative_step_names_the_layers_in_their_order() -> None:
    model = five()
    _run(model)
    del model[::-2]
    assert names(model) == ["1", "3"]
    with pytest.raises(BackwardBeforeForwardError, match=r"\(layers '0', '2', '4' were deleted\)"):
        model.backward(np.ones((3, 3)))


def test_refusals_of_plain_assignment_name_the_subclass() -> None:
    class Alias(md.Sequential):
        def __init__(self) -> None:
            super().__init__(md.Dense(3, 3, rng=0), md.Tanh())
            self.first = self[0]

    with pytest.raises(ValueError, match=r"^Alias: assigning a layer as 'first': this Dense is already in the "
                                         "sequence; a layer keeps one forward cache"):
        Alias()

    class Net(md.Sequential):
        pass

    tanh = md.Tanh()
    with pytest.raises(ValueError, match=r"^Net: this Tanh is already in the sequence"):
        Net(tanh, tanh)
    net = Net(md.Dense(3, 3, rng=0))
    with pytest.raises(ValueError, match=r"^Net: assigning a layer as '7': this Dense is already in the sequence"):
        setattr(net, "7", net[0])
    with pytest.raises(ValueError, match=r"^Net: assigning a layer as 'me': this Net is the Net itself"):
        net.me = net
    with pytest.raises(TypeError, match=r"^Net attribute '0' is a registered Layer; assign a Layer"):
        setattr(net, "0", "relu")


@pytest.mark.parametrize("base", [md.Sequential, md.LayerList])
def test_a_subclass_setattr_sees_every_layer_that_joins_and_may_refuse_one(base: type) -> None:
    """Its own ``__setattr__`` saw the layers of ``append`` before the edits came; it sees them again (each
    edit checks first, then assigns them one by one), and one it refuses leaves the container as it was."""
    seen: list[str] = []

    class Logged(base):  # type: ignore[misc, valid-type]
        def __setattr__(self, name: str, value: Any) -> None:
            if isinstance(value, md.Sigmoid):
                raise ValueError(f"Logged refuses a Sigmoid as {name}")
            if isinstance(value, md.Layer):
                seen.append(name)
            super().__setattr__(name, value)

    made = Logged(md.ReLU(), md.Tanh()) if base is md.Sequential else Logged([md.ReLU(), md.Tanh()])
    assert "_stale" not in made.__dict__  # a new sequence has no forward to forget
    made.append(md.Tanh())
    made.extend([md.ReLU(), md.Tanh()])
    made.insert(0, md.ReLU())
    assert seen == ["0", "1", "2", "3", "4", "5"] and names(made) == ["5", "0", "1", "2", "3", "4"]
    x = np.ones((2, 3))
    if base is md.Sequential:
        made(x)
    before = snapshot(made)
    with pytest.raises(ValueError, match="Logged refuses a Sigmoid as 7"):
        made.extend([md.Tanh(), md.Sigmoid()])
    with pytest.raises(ValueError, match="Logged refuses a Sigmoid as 6"):
        made.insert(1, md.Sigmoid())
    assert same(snapshot(made), before) and names(made) == ["5", "0", "1", "2", "3", "4"]
    if base is md.Sequential:
        assert made.backward(x).shape == x.shape  # the last forward still stands


# ------------------------------------------------------------------------------------------------ LayerList
def test_layer_list_edits_follow_the_same_rule() -> None:
    a, b, c, d = (md.Dense(2, 2, rng=i) for i in range(4))
    blocks = md.LayerList([a, b, c])
    assert blocks.insert(1, d) is blocks
    assert names(blocks) == ["0", "3", "1", "2"] and list(blocks) == [a, d, b, c]
    del blocks[0]
    assert names(blocks) == ["3", "1", "2"]
    blocks[0] = a
    assert names(blocks) == ["3", "1", "2"] and blocks[0] is a
    assert list(blocks.state_dict()) == ["3.W", "1.W", "2.W", "3._layout", "1._layout", "2._layout"]
    assert blocks.pop(1) is b and names(blocks) == ["3", "2"]
    blocks.extend([b, d])
    assert names(blocks) == ["3", "2", "4", "5"] and list(blocks) == [a, c, b, d]
    blocks += [md.Tanh()]
    assert names(blocks)[-1] == "6"
    both = md.LayerList([a]) + [b, md.Tanh()]  # noqa: RUF005
    assert type(both) is md.LayerList and names(both) == ["0", "1", "2"] and both[1] is b
    assert names(md.LayerList([a]) + md.Sequential(md.Tanh())) == ["0", "1"]
    # it has no forward: the same layer may be in it twice (the model decides what it runs)
    twice = md.LayerList([a, a])
    twice.insert(1, a)
    assert list(twice) == [a, a, a] and len(twice.parameters()) == 1


LIST_REFUSED: list[tuple[str, Callable[[md.LayerList], Any], type[Exception], str]] = [
    ("insert out of range", lambda blocks: blocks.insert(4, md.ReLU()), IndexError,
     "LayerList.insert: index 4 is out of range for 3 layers (from -3 to 3)"),
    ("insert a non-layer", lambda blocks: blocks.insert(0, "relu"), TypeError,
     "LayerList.insert: expected a Layer, got str"),
    ("insert itself", lambda blocks: blocks.insert(0, blocks), ValueError,
     "LayerList.insert: this LayerList is the LayerList itself; adding it would make a cycle"),
    ("extend with a non-layer", lambda blocks: blocks.extend([md.ReLU(), None]), TypeError,
     "LayerList.extend: expected a Layer, got NoneType"),
    ("extend with a cycle", lambda blocks: blocks.extend([md.ReLU(), md.Sequential(blocks)]), ValueError,
     "LayerList.extend: this Sequential contains the LayerList itself"),
    ("+= a number", lambda blocks: blocks.__iadd__(3), TypeError,
     "LayerList.extend: expected an iterable of layers, got int"),
    ("setitem out of range", lambda blocks: blocks.__setitem__(-4, md.ReLU()), IndexError,
     "LayerList.__setitem__: index -4 is out of range for 3 layers (from -3 to 2)"),
    ("del out of range", lambda blocks: blocks.__delitem__(3), IndexError,
     "LayerList.__delitem__: index 3 is out of range"),
    ("pop out of range", lambda blocks: blocks.pop(3), IndexError, "LayerList.pop: index 3 is out of range"),
]


@pytest.mark.parametrize("what, edit, error, message", LIST_REFUSED, ids=[r[0] for r in LIST_REFUSED])
def test_a_refused_layer_list_edit_changes_nothing(what: str, edit: Callable[[md.LayerList], Any],
                                                   error: type[Exception], message: str) -> None:
    blocks = md.LayerList([md.Dense(2, 2, rng=0), md.Tanh(), md.Dense(2, 2, rng=1)])
    before = snapshot(blocks)
    with pytest.raises(error, match="^" + re.escape(message)):
        edit(blocks)
    assert same(snapshot(blocks), before), what


# -------------------------------------------------------------- named_parameters / named_buffers duplicates
class Holder(md.Layer):
    """An identity layer with a persistent buffer ``table`` (given: shared) and a non-persistent ``scratch``."""

    def __init__(self, table: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("table", np.arange(3.0) if table is None else table)
        self.register_buffer("scratch", np.ones(2), persistent=False)
        self.register_buffer("unset", None)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def tied() -> tuple[md.Layer, md.Dense, md.Dense]:
    """A LayerList holding a Dense twice and a second Dense tied to it (``second.W = first.W``), plus a nested
    list holding the first again."""
    first, second = md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1)
    second.W = first.W
    return md.LayerList([first, second, md.LayerList([first])]), first, second


def test_named_parameters_with_duplicates_lists_each_place() -> None:
    model, first, _ = tied()
    assert [name for name, _ in model.named_parameters()] == ["0.W"]
    every = list(model.named_parameters(remove_duplicate=False))
    assert [name for name, _ in every] == ["0.W", "1.W", "2.0.W"]
    assert all(p is first.W for _, p in every)
    assert [name for name, _ in model.named_parameters("net", remove_duplicate=False)] == \
        ["net.0.W", "net.1.W", "net.2.0.W"]
    assert [name for name, _ in model.named_layers(remove_duplicate=False)] == ["", "0", "1", "2", "2.0"]
    assert [name for name, _ in model.named_layers()] == ["", "0", "1", "2"]
    assert len(model.parameters()) == 1 and model.num_parameters() == 12


def test_named_buffers_with_duplicates_lists_each_place_and_skips_none() -> None:
    first = Holder()
    model = md.LayerList([first, Holder(first.table), md.LayerList([first])])
    assert [name for name, _ in model.named_buffers()] == ["0.table", "0.scratch", "1.scratch"]
    every = list(model.named_buffers(remove_duplicate=False))
    assert [name for name, _ in every] == ["0.table", "0.scratch", "1.table", "1.scratch", "2.0.table",
                                           "2.0.scratch"]
    assert every[2][1] is first.table and every[4][1] is first.table
    assert len(model.buffers()) == 3


def test_named_parameters_and_buffers_with_duplicates_as_torch() -> None:
    torch = pytest.importorskip("torch")
    model, _, _ = tied()
    linear_a, linear_b = torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3, bias=False)
    linear_b.weight = linear_a.weight
    theirs = torch.nn.ModuleList([linear_a, linear_b, torch.nn.ModuleList([linear_a])])
    for flag in (True, False):
        ours_names = [name.rsplit(".", 1)[0] for name, _ in model.named_parameters(remove_duplicate=flag)]
        their_names = [name.rsplit(".", 1)[0] for name, _ in theirs.named_parameters(remove_duplicate=flag)]
        assert ours_names == their_names
        assert [n for n, _ in model.named_layers(remove_duplicate=flag)] == \
            [n for n, _ in theirs.named_modules(remove_duplicate=flag)]

    class TorchHolder(torch.nn.Module):
        def __init__(self, table: Any = None) -> None:
            super().__init__()
            self.register_buffer("table", torch.arange(3.0) if table is None else table)
            self.register_buffer("scratch", torch.ones(2), persistent=False)
            self.register_buffer("unset", None)

    first = Holder()
    ours = md.LayerList([first, Holder(first.table), md.LayerList([first])])
    tfirst = TorchHolder()
    theirs = torch.nn.ModuleList([tfirst, TorchHolder(tfirst.table), torch.nn.ModuleList([tfirst])])
    for flag in (True, False):
        assert [n for n, _ in ours.named_buffers(remove_duplicate=flag)] == \
            [n for n, _ in theirs.named_buffers(remove_duplicate=flag)]


# ------------------------------------------------------------------------------------ summary, shared arrays
def test_summary_counts_a_buffer_shared_by_two_layers_once() -> None:
    bn = md.BatchNorm1d(3)
    other = md.BatchNorm1d(3)
    other.running_mean = bn.running_mean  # one table read by both
    model = md.Sequential(md.Dense(3, 3, rng=0), bn, other)
    table = summarize(model, (3,))
    # Dense 4*3 = 12 trainable; per norm gamma, beta 6 trainable, running_var 3; the running_mean 3 once
    assert table.trainable == 12 + 6 + 6
    assert table.non_trainable == 3 + 3 + 3
    assert table.total == 33 and table.non_trainable_bytes == 9 * 8
    assert [row.params for row in table.rows] == [12, 12, 12]  # each holder's row counts it
    outer = summarize(md.Sequential(model), (3,))
    assert outer.rows[0].params == 33  # the container's row: once
    assert summarize(md.Sequential(md.Dense(3, 3, rng=0), md.BatchNorm1d(3), md.BatchNorm1d(3)), (3,)).total == 36


def test_summary_counts_a_parameter_shared_by_two_layers_once() -> None:
    first, second = md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1)
    second.W = first.W
    model = md.Sequential(first, md.Tanh(), second)
    table = summarize(model, (3,))
    assert table.trainable == 12 and table.total == 12 and table.trainable_bytes == 12 * 8
    assert [row.params for row in table.rows] == [12, 0, 12]
    first.W.requires_grad = False
    table = summarize(model, (3,))
    assert table.trainable == 0 and table.non_trainable == 12


# --------------------------------------------------------------------------------------- against PyTorch
def test_edits_against_torch() -> None:
    """The order of the layers after each edit is PyTorch's; the names are PyTorch's where it keeps them
    (replacement, extend and append without a gap, ``+``, ``pop`` of the last), and elsewhere each layer's
    name from before the edit, where PyTorch renumbers the positions."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    kinds = [(md.ReLU, nn.ReLU), (md.Tanh, nn.Tanh), (md.Sigmoid, nn.Sigmoid), (md.Softplus, nn.Softplus),
             (md.SiLU, nn.SiLU), (md.GELU, nn.GELU), (md.ELU, nn.ELU), (md.Mish, nn.Mish)]
    tag = {ours: i for i, (ours, _) in enumerate(kinds)} | {theirs: i for i, (_, theirs) in enumerate(kinds)}

    def pair(i: int) -> tuple[md.Layer, Any]:
        return kinds[i][0](), kinds[i][1]()

    def order(container: Any) -> list[int]:
        return [tag[type(layer)] for layer in container]

    def fresh() -> tuple[md.Sequential, Any]:
        made = [pair(i) for i in range(5)]
        return md.Sequential(*(a for a, _ in made)), nn.Sequential(*(b for _, b in made))

    # names equal to PyTorch's
    for edit in ("setitem", "setitem-neg", "extend", "append", "pop-last", "plus", "iadd"):
        ours, theirs = fresh()
        a, b = pair(7)
        if edit == "setitem":
            ours[2], theirs[2] = a, b
        elif edit == "setitem-neg":
            ours[-1], theirs[-1] = a, b
        elif edit == "extend":
            c, d = pair(6)
            ours.extend([a, c])
            theirs.extend([b, d])
        elif edit == "append":
            ours.append(a)
            theirs.append(b)
        elif edit == "pop-last":
            assert tag[type(ours.pop(-1))] == tag[type(theirs.pop(-1))]
        elif edit == "plus":
            ours, theirs = ours + md.Sequential(a), theirs + nn.Sequential(b)
        else:
            ours += md.Sequential(a)
            theirs += nn.Sequential(b)
        assert order(ours) == order(theirs), edit
        assert names(ours) == list(theirs._modules), edit

    # a new layer after the last one left: PyTorch names it by the length, so the left layer's name (and an old
    # checkpoint's keys) come back for it; here it is named past every name given
    ours, theirs = fresh()
    ours.pop()
    theirs.pop(-1)  # (PyTorch's Sequential.pop takes no default)
    a, b = pair(7)
    ours.append(a)
    theirs.append(b)
    assert order(ours) == order(theirs)
    assert list(theirs._modules) == ["0", "1", "2", "3", "4"] and names(ours) == ["0", "1", "2", "3", "5"]

    # the same order; the names from before (PyTorch: the positions)
    for edit in ("insert-0", "insert-2", "insert-neg", "insert-end", "del-1", "del-neg", "del-slice", "del-step",
                 "pop-1"):
        ours, theirs = fresh()
        before = {id(layer): name for name, layer in ours.named_children()}
        a, b = pair(7)
        if edit.startswith("insert"):
            index = {"insert-0": 0, "insert-2": 2, "insert-neg": -2, "insert-end": 5}[edit]
            ours.insert(index, a)
            theirs.insert(index, b)
        elif edit.startswith("del"):
            index = {"del-1": 1, "del-neg": -2, "del-slice": slice(1, 3), "del-step": slice(None, None, 2)}[edit]
            del ours[index]
            del theirs[index]
        else:
            assert tag[type(ours.pop(1))] == tag[type(theirs.pop(1))]
        assert order(ours) == order(theirs), edit
        assert list(theirs._modules) == [str(i) for i in range(len(theirs))]
        assert names(ours) == [before.get(id(layer), "5") for layer in ours], edit

    # insert takes the same range of indices
    for index in (-7, -6, -5, 0, 5, 6):
        ours, theirs = fresh()
        refused = []
        for container, layer in ((ours, md.ReLU()), (theirs, nn.ReLU())):
            try:
                container.insert(index, layer)
                refused.append(False)
            except IndexError:
                refused.append(True)
        assert refused[0] == refused[1] == (not -5 <= index <= 5), index


@pytest.mark.parametrize("edit", [False, True])
def test_a_sequence_pickled_before_the_rename_to_stale_still_refuses_a_backward(edit: bool) -> None:
    """``_stale`` was named ``_failed_at``: a sequence pickled then, after a failed forward or an edit, is read
    with it renamed, and its backward is refused as before the pickle."""
    rng = np.random.default_rng(0)
    seq = md.Sequential(md.Dense(3, 4, rng=rng), md.ReLU(), md.Dense(4, 2, rng=rng))
    if edit:
        seq(np.ones((2, 3)))
        seq.append(md.ReLU())
        expected = r"Sequential.backward: the sequence was edited after its last forward \(layer '3' was appended"
    else:
        seq.append(md.Dense(5, 2, rng=rng))
        with pytest.raises(md.ShapeError):
            seq(np.ones((2, 3)))
        expected = r"Sequential.backward: the last forward failed at layer '3', so the layers hold the caches"
    assert seq._stale is not None
    state = dict(pickle.loads(pickle.dumps(seq)).__dict__)
    state["_failed_at"] = state.pop("_stale")  # as pickled before the rename
    old = md.Sequential.__new__(md.Sequential)
    old.__setstate__(state)  # what unpickling does with that state
    assert "_failed_at" not in old.__dict__ and old._stale == seq._stale
    for twin in (old, copy.deepcopy(old), pickle.loads(pickle.dumps(old))):
        with pytest.raises(BackwardBeforeForwardError, match=expected):
            twin.backward(np.ones((2, 2)))
