"""``Sequential`` slices keep their layers' names, as PyTorch's ``nn.Sequential[1:3]`` does: the slice's
``state_dict`` keys are the full model's, and the names stay consistent with indexing, ``append``, ``len``,
iteration, ``summary`` and ``load_state_dict``."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.summary import summarize


def five() -> md.Sequential:
    return md.Sequential(md.Dense(4, 3, rng=0), md.ReLU(), md.Dense(3, 2, rng=1), md.Tanh(), md.Dense(2, 1, rng=2))


def names(model: md.Layer) -> list[str]:
    return [name for name, _ in model.named_children()]


@pytest.mark.parametrize("index, expected", [(slice(1, 3), ["1", "2"]), (slice(None, None, 2), ["0", "2", "4"]),
                                             (slice(-2, None), ["3", "4"]), (slice(None, None, -2), ["4", "2", "0"]),
                                             (slice(3, 1), [])])
def test_a_slice_keeps_the_names_and_the_layer_objects(index: slice, expected: list[str]) -> None:
    model = five()
    part = model[index]
    assert type(part) is md.Sequential and names(part) == expected
    assert list(part) == list(model)[index]  # the same objects, in the slice's order
    assert all(part._layers[name] is model._layers[name] for name in expected)
    assert len(part) == len(expected)


def test_the_state_dict_keys_of_a_slice_are_the_full_models() -> None:
    model = five()
    part = model[1:3]
    full = model.state_dict()
    assert list(part.state_dict()) == ["2.W", "2._layout"]
    np.testing.assert_array_equal(part.state_dict()["2.W"], full["2.W"])
    tail = model[2:]
    assert list(tail.state_dict()) == ["2.W", "4.W", "2._layout", "4._layout"]
    # the full model's entries for the slice load into it strictly, and the slice's into the full model
    other = five()
    for layer in other:
        if isinstance(layer, md.Dense):
            layer.W.data[...] = 7.0
    other_tail = other[2:]
    other_tail.load_state_dict({key: value for key, value in full.items() if key in tail.state_dict()})
    np.testing.assert_array_equal(other[2].W.data, model[2].W.data)
    np.testing.assert_array_equal(other[4].W.data, model[4].W.data)
    assert (other[0].W.data == 7.0).all()  # not in the slice: untouched
    result = five().load_state_dict(tail.state_dict(), strict=False)
    assert result.missing_keys == ["0.W"] and result.unexpected_keys == []


def test_positions_count_in_the_slice_whatever_the_names() -> None:
    model = five()
    part = model[2:5]
    assert part[0] is model[2] and part[-1] is model[4] and part[1] is model[3]
    assert names(part[1:]) == ["3", "4"]  # a slice of a slice keeps the names too
    with pytest.raises(IndexError):
        part[3]


def test_append_to_a_slice_takes_a_name_past_the_last_one() -> None:
    """PyTorch's append names by the length, so after ``model[1:3]`` it replaces layer "2" (the slice keeps
    two layers); here the new layer gets "3", and after ``model[3:]`` it gets "5", not "2", which would
    come after "4" in the run but sort before it."""
    model = five()
    part = model[1:3]
    extra = md.Sigmoid()
    part.append(extra)
    assert names(part) == ["1", "2", "3"] and part[-1] is extra and part[1] is model[2]
    tail = model[3:]
    tail.append(md.Sigmoid())
    assert names(tail) == ["3", "4", "5"]
    empty = model[4:1]
    empty.append(md.ReLU())
    assert names(empty) == ["0"]


def test_append_after_deleting_from_the_middle_goes_past_the_largest_name() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0), md.Tanh(), md.Tanh(), md.Dense(2, 1, rng=1))
    delattr(model, "1")
    delattr(model, "2")
    model.append(md.ReLU())
    assert names(model) == ["0", "3", "4"]  # (was "2": run after "3" but named before it)
    layers = md.LayerList([md.Dense(2, 2, rng=0), md.Dense(2, 2, rng=1), md.Dense(2, 2, rng=2),
                           md.Dense(2, 2, rng=3)])
    delattr(layers, "1")
    delattr(layers, "2")
    layers.append(md.Dense(2, 2, rng=4))
    assert list(layers._layers) == ["0", "3", "4"]


def test_a_slice_runs_forward_backward_and_names_its_layers_in_errors_and_the_summary() -> None:
    model = five()
    x = np.random.default_rng(0).standard_normal((5, 4))
    h = model[0](x)
    part = model[1:4]
    y = part(h)
    np.testing.assert_array_equal(y, model[3](model[2](model[1](h))))
    assert part.backward(np.ones_like(y)).shape == h.shape
    assert [row.name for row in summarize(part, (3,)).rows] == ["1", "2", "3"]
    with pytest.raises(md.ShapeError, match="Sequential layer '2'"):
        part(np.ones((5, 7)))
    assert "(2): Dense" in repr(part)


def test_the_same_layer_twice_is_still_refused_by_name() -> None:
    """A slice is made through the same checks as a new sequence (here, trivially, none fails)."""
    model = five()
    part = model[:2]
    with pytest.raises(ValueError, match="already in the sequence"):
        part.append(model[0])


def test_renumbering_is_one_call_away() -> None:
    model = five()
    again = md.Sequential(*model[2:])
    assert names(again) == ["0", "1", "2"] and list(again.state_dict()) == ["0.W", "2.W", "0._layout", "2._layout"]


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2), torch.nn.Tanh(),
                                 torch.nn.Linear(2, 1))
    ours = five()
    for index in (slice(1, 3), slice(None, None, 2), slice(-2, None), slice(2, None)):
        assert names(ours[index]) == list(theirs[index]._modules)
        assert [key.split(".")[0] for key in ours[index].state_dict() if not key.endswith("._layout")] == \
            [key.split(".")[0] for key in theirs[index].state_dict() if key.endswith("weight")]


def test_a_layer_list_slice_is_a_layer_list_of_the_same_layers() -> None:
    """It was a plain list (which registers nothing), and a bool index was taken as a position."""
    blocks = md.LayerList([md.Dense(4, 4, rng=i) for i in range(4)])
    part = blocks[1:3]
    assert type(part) is md.LayerList and len(part) == 2
    assert part[0] is blocks[1] and part[1] is blocks[2]
    assert [name for name, _ in part.named_layers() if name] == ["0", "1"]  # (as PyTorch's ModuleList)
    assert [name for name, _ in part.named_parameters()] == ["0.W", "1.W"]
    assert part.state_dict()["1.W"] is not None and np.array_equal(part.state_dict()["1.W"], blocks[2].W.data)
    assert [layer for layer in blocks[::-2]] == [blocks[3], blocks[1]]
    assert len(blocks[5:]) == 0 and type(blocks[5:]) is md.LayerList
    with pytest.raises(TypeError, match="LayerList indices must be ints or slices, not bool"):
        blocks[True]
    assert blocks[-1] is list(blocks)[-1]
