"""``named_parameters`` / ``named_buffers(remove_duplicate=False)`` as PyTorch's (every place a shared
parameter, buffer or layer is held), and ``summary`` counting a parameter or buffer shared by two layers
once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.summary import summarize


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
