"""Layers and parameters put into a plain container after it was assigned (``self.blocks = []``, then
``self.blocks.append(md.Dense(...))``, PyTorch's common pitfall) are registered nowhere: every walk of the model
refuses them, with the refusal at assignment's advice, instead of skipping them silently."""

from __future__ import annotations

import collections
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 3))
Y = RNG.standard_normal((8, 3))


def _append(blocks: Any, layers: list[md.Layer]) -> None:
    for layer in layers:
        blocks.append(layer)


def _keys(blocks: Any, layers: list[md.Layer]) -> None:
    for i, layer in enumerate(layers):
        blocks[f"b{i}"] = layer


def _nested(blocks: Any, layers: list[md.Layer]) -> None:
    blocks[0].append(layers[0])
    blocks[1]["deep"] = [layers[1]]


# (what each case is built from, and the place the message names)
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any, list[md.Layer]], None], str]] = {
    "list": (list, _append, "blocks[0], blocks[1]"),
    "dict": (dict, _keys, "blocks['b0'], blocks['b1']"),
    "deque": (collections.deque, _append, "blocks[0], blocks[1]"),
    "nested list": (lambda: [[], {}], _nested, "blocks[0][0], blocks[1]['deep'][0]"),
}


class Pitfall(md.Model):
    """``self.blocks = <empty container>``, then layers put in: invisible to assignment."""

    def __init__(self, case: str) -> None:
        super().__init__()
        make, fill, _ = CASES[case]
        self.stem = md.Dense(3, 3, rng=0)
        self.blocks = make()
        fill(self.blocks, [md.Dense(3, 3, rng=1), md.Dense(3, 3, rng=2)])

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.stem(x)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self.stem.backward(grad)


def _message(case: str) -> str:
    places = re.escape(CASES[case][2])
    return (rf"Pitfall\.blocks: Dense objects in a plain \w+ \({places}\) would not be registered .*"
            r"md\.LayerList\(\).*put into the \w+ after it was assigned")


def _fit(model: md.Model, params: list[md.Parameter]) -> Any:
    return model.fit(X, Y, loss=md.MSELoss(), optimizer=md.Adam(params), epochs=1, verbose=0)


def _load(model: md.Model) -> Any:
    return model.load_state_dict({})


ENTRY_POINTS: dict[str, Callable[[md.Model], Any]] = {
    "parameters": lambda m: m.parameters(),
    "named_parameters": lambda m: list(m.named_parameters()),
    "named_parameters(remove_duplicate=False)": lambda m: list(m.named_parameters(remove_duplicate=False)),
    "layers": lambda m: list(m.layers()),
    "buffers": lambda m: m.buffers(),
    "num_parameters": lambda m: m.num_parameters(),
    "state_dict": lambda m: m.state_dict(),
    "load_state_dict": _load,
    "summary": lambda m: m.summary(input_shape=(3,)),
    "gradient checker": lambda m: md.GradientChecker(m, inputs=X).run(),
    "Adam(model.parameters())": lambda m: md.Adam(m.parameters()),
    "fit, optimizer of the stem": lambda m: _fit(m, m.stem.parameters()),
    "call": lambda m: m(X),
    "astype": lambda m: m.astype(np.float32),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_layers_put_into_a_plain_container_after_it_was_assigned_are_refused_by_every_walk(
        case: str, entry: str) -> None:
    model = Pitfall(case)
    with pytest.raises(TypeError, match=_message(case)):
        ENTRY_POINTS[entry](model)


def test_the_refusal_gives_the_advice_of_the_refusal_at_assignment() -> None:
    with pytest.raises(TypeError) as caught:
        Pitfall("list").parameters()
    message = str(caught.value)
    assert message.startswith("Pitfall.blocks: Dense objects in a plain list (blocks[0], blocks[1]) would not be "
                              "registered (invisible to optimizers, checkers and state_dict); assign each as an "
                              "attribute, or use minidl.LayerList / minidl.Sequential for layers (self.blocks = "
                              "md.LayerList(), then self.blocks.append(layer), as PyTorch's nn.ModuleList).  They "
                              "were put into the list after it was assigned")


def test_a_sub_layer_with_the_pitfall_is_named_by_its_path() -> None:
    inner = Pitfall("deque")
    layers = list(inner.blocks)
    inner.blocks.clear()  # (else the Sequentials refuse it: they walk it for cycles)
    model = md.Sequential(md.Dense(3, 3, rng=0), md.Sequential(inner))
    inner.blocks.extend(layers)
    with pytest.raises(TypeError, match=r"^Sequential layer '1\.0' \(Pitfall\) attribute 'blocks': Dense objects in a "
                                        r"plain deque \(blocks\[0\], blocks\[1\]\) would not be registered"):
        model.parameters()


def test_parameters_and_generators_put_in_later_are_refused_too() -> None:
    model = Pitfall("list")
    model.blocks.clear()
    model.parameters()  # (emptied again: fine)
    model.blocks.append((md.Parameter(np.zeros(2)), np.random.default_rng(0)))
    with pytest.raises(TypeError, match=r"Pitfall\.blocks: Generator, Parameter objects in a plain list "
                                        r"\(blocks\[0\]\[0\], blocks\[0\]\[1\]\)"):
        model.state_dict()


def test_many_places_are_counted_not_all_listed() -> None:
    model = Pitfall("list")
    model.blocks.extend(md.Tanh() for _ in range(5))
    with pytest.raises(TypeError, match=r"\(blocks\[0\], blocks\[1\], blocks\[2\], blocks\[3\] and 3 more\)"):
        model.parameters()


def test_the_pitfall_no_longer_trains_and_saves_a_different_model_silently() -> None:
    """The reviewer's script: before, fit trained around the blocks and a strict load of the checkpoint 'succeeded'
    into a model with other blocks."""
    model = Pitfall("list")
    path = os.path.join(tempfile.mkdtemp(), "n.ckpt")
    with pytest.raises(TypeError, match="would not be registered"):
        md.save({"model": model.state_dict()}, path)
    with pytest.raises(TypeError, match="would not be registered"):
        Pitfall("list").load_state_dict(md.Dense(3, 3, rng=0).state_dict(), strict=False)


def test_the_fix_the_message_gives_works() -> None:
    class Fixed(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = md.LayerList()
            for i in range(2):
                self.blocks.append(md.Dense(3, 3, rng=i))

        def forward(self, x: np.ndarray) -> np.ndarray:
            for block in self.blocks:
                x = block(x)
            return x

        def backward(self, grad: np.ndarray) -> np.ndarray:
            for block in reversed(list(self.blocks)):
                grad = block.backward(grad)
            return grad

    model = Fixed()
    assert [name for name, _ in model.named_parameters()] == ["blocks.0.W", "blocks.1.W"]
    assert md.GradientChecker(model, inputs=X).run().passed


class PlainData(md.Model):
    """Lists of arrays, strings and numbers (an RNN's caches, names, a history): no layer, nothing refused."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = md.Dense(3, 3, rng=0)
        self.cache: list[np.ndarray] = []
        self.names: list[str] = []
        self.log: dict[str, list[float]] = {}
        self.seen: collections.deque[Any] = collections.deque(maxlen=4)
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.fc(x)
        self.cache.append(x)
        self.names.append("fc")
        self.log.setdefault("norm", []).append(float(np.abs(y).sum()))
        self.seen.append(("call", x.shape, None))
        self.pairs.append((x, y))
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self.fc.backward(grad)


def test_containers_of_arrays_strings_and_numbers_filled_later_are_fine() -> None:
    model = PlainData()
    model(X)
    assert [name for name, _ in model.named_parameters()] == ["fc.W"]
    assert list(model.state_dict()) == ["fc.W", "fc._layout"]
    assert md.GradientChecker(model, inputs=X).run().passed
    history = model.fit(X, Y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters()), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert len(model.cache) > 2 and model.names[0] == "fc"
    model.summary(input_shape=(3,))


def test_a_container_replaced_by_another_value_is_not_searched() -> None:
    model = Pitfall("list")
    model.blocks = None  # (the hidden layers are let go of)
    assert [name for name, _ in model.named_parameters()] == ["stem.W"]
    model.blocks = md.LayerList([md.Dense(3, 3, rng=1)])
    assert [name for name, _ in model.named_parameters()] == ["stem.W", "blocks.0.W"]


@pytest.mark.parametrize("container", [
    collections.deque, lambda layers: collections.UserList(layers), lambda layers: collections.OrderedDict(
        (str(i), layer) for i, layer in enumerate(layers)), lambda layers: collections.UserDict(
        {str(i): layer for i, layer in enumerate(layers)}),
])
def test_list_like_containers_of_layers_are_refused_at_assignment(container: Callable[[list[Any]], Any]) -> None:
    class Holder(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = container([md.Dense(3, 3, rng=0)])

    kind = type(container([])).__name__
    with pytest.raises(TypeError, match=rf"^Holder\.blocks: Dense objects in a plain {kind} \(blocks\[(0|'0')\]\) "
                                        "would not be registered"):
        Holder()


def test_a_layer_list_called_as_a_layer_says_it_is_a_container() -> None:
    blocks = md.LayerList([md.Dense(3, 3, rng=0), md.Tanh()])
    with pytest.raises(TypeError, match=r"^LayerList is a container of layers, not a layer: it has no forward of its "
                                        r"own .*call its layers in your model's forward \(for layer in self\.blocks: "
                                        r"x = layer\(x\)\), or use md\.Sequential"):
        blocks(X)
    with pytest.raises(TypeError, match=r"^LayerList is a container of layers, not a layer: it has no backward"):
        blocks.backward(Y)
    assert md.Sequential(*blocks)(X).shape == (8, 3)  # (the layers themselves are untouched)
