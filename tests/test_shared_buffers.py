"""A buffer shared by several layers (the same array): ``named_buffers`` and ``buffers`` list it once, as
``named_parameters`` a shared parameter and PyTorch's ``named_buffers``; ``state_dict`` keeps it under every
name, as PyTorch's does, and ``load_state_dict`` keeps it shared."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError


class Holder(md.Layer):
    """An identity layer with a persistent buffer ``table`` (given: shared) and a non-persistent ``scratch``."""

    def __init__(self, table: np.ndarray | None = None, scratch: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("table", np.arange(3.0) if table is None else table)
        self.register_buffer("scratch", np.ones(2) if scratch is None else scratch, persistent=False)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def shared_model() -> md.Sequential:
    first = Holder()
    return md.Sequential(first, Holder(first.table), Holder(scratch=first.scratch))


def test_named_buffers_and_buffers_list_a_shared_buffer_once_under_its_first_name() -> None:
    model = shared_model()
    assert [name for name, _ in model.named_buffers()] == ["0.table", "0.scratch", "1.scratch", "2.table"]
    assert [name for name, _ in model.named_buffers("net")] == ["net.0.table", "net.0.scratch", "net.1.scratch",
                                                                "net.2.table"]
    buffers = model.buffers()
    assert [b is a for b, (_, a) in zip(buffers, model.named_buffers(), strict=True)] == [True] * 4
    assert buffers[0] is model[1].table and buffers[1] is model[2].scratch  # the shared arrays themselves


def test_buffers_of_a_batch_norm_and_none_skipped() -> None:
    bn = md.BatchNorm1d(3)
    assert [b is getattr(bn, n) for b, n in zip(bn.buffers(), ["running_mean", "running_var",
                                                                 "num_batches_tracked"], strict=True)] == [True] * 3
    layer = Holder()
    layer.table = None
    assert [name for name, _ in layer.named_buffers()] == ["scratch"] and len(layer.buffers()) == 1


def test_state_dict_keeps_a_shared_buffer_under_every_name() -> None:
    model = shared_model()
    state = model.state_dict()
    assert list(state) == ["0.table", "1.table", "2.table"]
    np.testing.assert_array_equal(state["1.table"], np.arange(3.0))
    assert state["0.table"] is not state["1.table"]  # copies


def test_load_state_dict_keeps_a_shared_buffer_shared() -> None:
    model = shared_model()
    state = {key: value + 10.0 for key, value in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].table is model[1].table
    np.testing.assert_array_equal(model[1].table, np.arange(3.0) + 10.0)
    np.testing.assert_array_equal(model[2].table, np.arange(3.0) + 10.0)
    assert model[2].table is not model[0].table
    # one of its names alone (strict=False) loads into every layer holding it, as PyTorch's copy into the tensor
    model.load_state_dict({"1.table": np.full(3, 7.0)}, strict=False)
    assert model[0].table is model[1].table
    np.testing.assert_array_equal(model[0].table, np.full(3, 7.0))


def test_a_shared_buffer_given_two_values_is_refused_and_nothing_changes() -> None:
    model = shared_model()
    before = model[0].table
    state = model.state_dict()
    state["1.table"] = state["1.table"] + 1.0
    state["2.table"] = state["2.table"] - 1.0
    with pytest.raises(StateDictError, match=r"'1.table': the same array as '0.table' \(a buffer shared by two "
                                             r"layers\), but the state gives the two other values"):
        model.load_state_dict(state)
    assert model[0].table is before and model[1].table is before
    np.testing.assert_array_equal(before, np.arange(3.0))
    # equal values, NaN included, are one value
    nan = np.array([np.nan, 1.0, 2.0])
    model.load_state_dict({"0.table": nan, "1.table": nan.copy(), "2.table": nan.copy()})
    assert model[0].table is model[1].table and np.isnan(model[1].table[0])


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")

    class TorchHolder(torch.nn.Module):
        def __init__(self, table: object = None, scratch: object = None) -> None:
            super().__init__()
            self.register_buffer("table", torch.arange(3.0, dtype=torch.float64) if table is None else table)
            self.register_buffer("scratch", torch.ones(2, dtype=torch.float64) if scratch is None else scratch,
                                 persistent=False)

    first = TorchHolder()
    theirs = torch.nn.Sequential(first, TorchHolder(first.table), TorchHolder(scratch=first.scratch))
    ours = shared_model()
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert len(ours.buffers()) == len(list(theirs.buffers()))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({"1.table": np.full(3, 7.0)}, strict=False)
    theirs.load_state_dict({"1.table": torch.full((3,), 7.0, dtype=torch.float64)}, strict=False)
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy())
