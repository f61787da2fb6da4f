"""The shortcuts that make ``fit``'s fixed cost per call smaller behave as the work they skip: a refused seed is
refused without shuffling too, only minidl's own ``step`` goes unread, and the cheaper tests of a layer's class and
of a loss's attributes answer as before."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np
import pytest

import minidl as md
from minidl.layer import minidl_class
from minidl.losses import _held_objects


def data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3)), rng.integers(0, 2, n)


def model() -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=0), md.ReLU(), md.Dense(4, 2, rng=1))


@pytest.mark.parametrize("rng, error, words", [
    (-1, ValueError, "fit: rng: a seed must be an int >= 0, got -1"),
    (True, TypeError, "fit: rng must be a numpy.random.Generator, an int seed >= 0 or None, got True"),
    ("0", TypeError, "fit: rng must be a numpy.random.Generator, an int seed >= 0 or None, got '0'"),
    (np.bool_(False), TypeError, "fit: rng must be a numpy.random.Generator"),
])
def test_a_bad_rng_is_refused_without_shuffling_too(rng: Any, error: type, words: str) -> None:
    x, y = data()
    net = model()
    before = [p.data.copy() for p in net.parameters()]
    for shuffle in (True, False):
        with pytest.raises(error, match=words):
            net.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(net.parameters(), lr=0.1), shuffle=shuffle,
                    rng=rng, verbose=0)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, net.parameters(), strict=True))


def test_without_shuffling_the_rng_is_not_drawn_from_and_any_good_one_trains_alike() -> None:
    x, y = data()
    generator = np.random.default_rng(5)
    state = generator.bit_generator.state
    trained = []
    for rng in (generator, 3, np.int64(3), None):
        net = model()
        net.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(net.parameters(), lr=0.1), epochs=2,
                batch_size=5, shuffle=False, rng=rng, verbose=0)
        trained.append([p.data for p in net.parameters()])
    assert generator.bit_generator.state == state
    assert all(np.array_equal(a, b) for other in trained[1:] for a, b in zip(trained[0], other, strict=True))


def test_a_step_replaced_without_zero_grad_is_still_followed_by_zero_grad() -> None:
    """Only minidl's own ``step`` (of the class) skips the reading of its signature: one set on the instance, or
    a subclass's, is read, and one without ``zero_grad`` gets ``step()`` then ``zero_grad()``."""
    x, y = data()

    class PlainStep(md.SGD):
        def step(self) -> None:  # type: ignore[override]
            super().step()

    for how in ("subclass", "instance"):
        net = model()
        optimizer: md.Optimizer
        if how == "subclass":
            optimizer = PlainStep(net.parameters(), lr=0.1)
        else:
            optimizer = md.SGD(net.parameters(), lr=0.1)
            original = optimizer.step
            optimizer.step = lambda original=original: original()  # type: ignore[method-assign]
        net.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, batch_size=5, verbose=0)
        assert all(p.grad_is_zero() for p in net.parameters())
        assert not np.array_equal(net.parameters()[0].data, model().parameters()[0].data)


def test_minidl_class_tells_a_method_set_on_a_layer_from_attributes_that_are_no_methods() -> None:
    dense = md.Dense(2, 2)
    assert minidl_class(dense)
    for value in (md.ReLU(), np.random.default_rng(0), np.zeros(2), md.Dense, md.Parameter(np.zeros(2)), 3, None):
        object.__setattr__(dense, "_extra", value)
        assert minidl_class(dense), value
    for value in (print, lambda: None, dense.forward):
        object.__setattr__(dense, "_extra", value)
        assert not minidl_class(dense), value


class Pair(NamedTuple):
    left: Any
    right: Any


class Count(int):
    """An int subclass: looked into as before (not one of the plain types told at once)."""


def test_held_objects_finds_entries_behind_plain_attributes() -> None:
    loss = md.CrossEntropyLoss()
    p, q, r = (md.Parameter(np.zeros(1)) for _ in range(3))
    loss.__dict__.update(a=1.5, b="text", c=None, d=np.zeros(3), e=True, f=Count(2), scales=[p, 1.0],
                         pair=Pair(q, 2), by=OrderedDict(k=r))
    held = dict(_held_objects(loss))
    assert held["a"] == 1.5 and held["b"] == "text" and held["c"] is None and held["e"] is True
    assert held["f"] == 2 and type(held["f"]) is Count and held["d"].shape == (3,)
    assert held["scales.0"] is p and "scales.1" not in held
    assert held["pair.left"] is q and held["by.k"] is r
    assert [name for name, _ in md.losses.named_loss_parameters(loss)] == ["scales.0", "pair.left", "by.k"]
