"""The gradient checker's note on a layer run more than once in one forward pass, when the same layer
object sits at several paths (two attributes, twice in a LayerList, in two Sequentials): counted per
object and named at every path; and no note when such a layer passes or two layers only share a weight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md


class Net(md.Model):
    """y = second(tanh(first(x))), ``build`` registering the layers and giving the paths of the two to run
    (found at each call: the checker runs a deep copy)."""

    def __init__(self, build: Callable[[Net], tuple[str, str]]) -> None:
        super().__init__()
        self.t = md.Tanh()
        self.paths = build(self)

    def at(self, path: str) -> Any:
        return dict(self.named_layers(remove_duplicate=False))[path]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.at(self.paths[1])(self.t(self.at(self.paths[0])(x)))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.at(self.paths[0]).backward(self.t.backward(self.at(self.paths[1]).backward(g)))

    def input_shape_hint(self) -> tuple[int, ...]:
        return (4,)


def two_attributes(net: Net) -> tuple[str, str]:
    net.a = net.b = md.Dense(4, 4, rng=0)
    return "a", "b"


def twice_in_a_list(net: Net) -> tuple[str, str]:
    d = md.Dense(4, 4, rng=0)
    net.blocks = md.LayerList([d, md.Identity(), d])
    return "blocks.0", "blocks.2"


def in_two_sequentials(net: Net) -> tuple[str, str]:
    d = md.Dense(4, 4, rng=0)
    net.enc, net.dec = md.Sequential(d), md.Sequential(d)
    return "enc", "dec"


def one_attribute(net: Net) -> tuple[str, str]:
    net.d = md.Dense(4, 4, rng=0)
    return "d", "d"


@pytest.mark.parametrize("check_layers", [False, True])
@pytest.mark.parametrize(("build", "label", "path"), [
    (two_attributes, "layer 'a' (Dense, also at 'b')", "a"),
    (twice_in_a_list, "layer 'blocks.0' (Dense, also at 'blocks.2')", "blocks.0"),
    (in_two_sequentials, "layer 'enc.0' (Dense, also at 'dec.0')", "enc.0"),
    (one_attribute, "layer 'd' (Dense)", "d"),  # (one path, two calls)
])
def test_a_layer_at_several_paths_run_twice_is_named_at_each(build: Callable[[Net], tuple[str, str]], label: str,
                                                             path: str, check_layers: bool) -> None:
    report = md.GradientChecker(Net(build), check_layers=check_layers).run()
    assert not report.passed and not report[f"{path}.W"].passed
    notes = [n for n in report.notes if "times in one forward pass" in n]
    assert len(notes) == 1
    assert notes[0].startswith(f"{label} ran 2 times in one forward pass, and '{path}.W' fails: a built-in layer "
                               "keeps one forward cache")
    assert report[f"{path}.W"].notes == [f"{label} ran 2 times in one forward pass: the gradient is computed from "
                                         "one stale forward cache (see the report's note), whatever the diagnosis "
                                         "says"]
    if check_layers:  # (checked alone once, under the path it was recorded at)
        assert list(report.layers) == [path, "t"] and report.layers[path].passed


def test_two_sequentials_in_one_sequential_cannot_share_a_layer() -> None:
    d = md.Dense(4, 4, rng=0)
    with pytest.raises(ValueError, match=r"^Sequential: this Dense is already in the sequence \(inside the layer "
                                         r"appended\)"):
        md.Sequential(md.Sequential(d, md.Tanh()), md.Sequential(d))


class OneCache(md.Layer):
    """y = x * w, keeping one forward cache (a user's layer: the note can only say *may*)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = md.Parameter(np.linspace(0.5, 1.5, 4))
        self._cache: Any = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._require_cache(self._cache)
        self.w.grad += np.sum(g * self._cache, axis=0)
        return g * self.w.data


class StackCache(OneCache):
    """As OneCache, keeping a cache per call (a stack): right when run twice in one pass."""

    def __init__(self) -> None:
        super().__init__()
        self._stack: list[np.ndarray] = []

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._stack.append(x)
        return x * self.w.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._stack.pop()
        self.w.grad += np.sum(g * x, axis=0)
        return g * self.w.data


def test_a_users_layer_at_two_paths_run_twice_may_be_the_cause() -> None:
    def build(net: Net) -> tuple[str, str]:
        net.a = net.b = OneCache()
        return "a", "b"

    report = md.GradientChecker(Net(build)).run()
    assert not report.passed and not report["a.w"].passed
    notes = [n for n in report.notes if "times in one forward pass" in n]
    assert len(notes) == 1
    assert notes[0].startswith("layer 'a' (OneCache, also at 'b') ran 2 times in one forward pass, and 'a.w' "
                               "fails: this may be the cause: a layer of your own that keeps a cache per call")
    assert not any("times in one forward pass" in n for n in report["a.w"].notes)  # (not firm: not on the tensor)


def test_a_layer_at_two_paths_that_passes_gets_no_note() -> None:
    def build(net: Net) -> tuple[str, str]:
        net.a = net.b = StackCache()
        return "a", "b"

    report = md.GradientChecker(Net(build)).run()
    assert report.passed and report["a.w"].passed
    assert not any("times in one forward pass" in n or "also at" in n for n in report.notes)


def test_a_layer_at_two_paths_run_once_gets_no_note() -> None:
    class Once(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.a = self.b = md.Dense(4, 4, rng=0)

        def forward(self, x: np.ndarray) -> np.ndarray:
            return self.b(x)

        def backward(self, g: np.ndarray) -> np.ndarray:
            return self.b.backward(g)

        def input_shape_hint(self) -> tuple[int, ...]:
            return (4,)

    report = md.GradientChecker(Once()).run()
    assert report.passed and [r.name for r in report.results] == ["input", "a.W"]
    assert not any("times in one forward pass" in n for n in report.notes)


def test_two_layers_in_a_list_sharing_one_weight_get_no_note() -> None:
    def build(net: Net) -> tuple[str, str]:
        d1, d2 = md.Dense(4, 4, rng=0), md.Dense(4, 4, rng=1)
        d2.W = d1.W
        net.blocks = md.LayerList([d1, md.Identity(), d2])
        return "blocks.0", "blocks.2"

    report = md.GradientChecker(Net(build)).run()
    assert report.passed and report["blocks.0.W"].passed
    assert not any("times in one forward pass" in n or "also at" in n for n in report.notes)
