"""Final review 28: the "isolated element(s)" diagnosis kept from failing elements that share a column or one
factor, ``bias_rows`` restored on layers pickled before it existed, a ``Parameter`` subclass's attributes through
pickle and deepcopy, an assignable ``param_groups`` in an optimizer subclass, and an empty ``bias_rows`` refused."""

from __future__ import annotations

import copy
import io
import pickle
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker


class Lin(md.Layer):
    """y = x @ W, W (3, 4); ``scale``: the factors backward puts on dW's elements (row, column) -> factor."""

    def __init__(self, scale: dict[tuple[int, int], float]) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).normal(size=(3, 4)))
        self.scale = scale

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = self._x.T @ g
        for (i, j), f in self.scale.items():
            d[i, j] *= f
        self.W.grad += d
        return g @ self.W.data.T


def _w_diagnosis(scale: dict[tuple[int, int], float]) -> str | None:
    inputs = np.random.default_rng(0).normal(size=(6, 3))
    return GradientChecker(Lin(scale), inputs=inputs, check_input=False).run()["W"].diagnosis


def test_a_doubled_column_is_one_factor_not_isolated_elements() -> None:
    assert _w_diagnosis({(0, 1): 2, (1, 1): 2, (2, 1): 2}) == (
        "the 3 failing elements share one factor; there analytic = 2 x numerical (a dropped or extra factor (e.g. "
        "the 2 of a square))")


def test_elements_apart_sharing_one_factor_are_one_factor_not_isolated() -> None:
    # each in a row and a column of its own, all doubled
    assert _w_diagnosis({(0, 1): 2, (1, 2): 2, (2, 3): 2}) == (
        "the 3 failing elements share one factor; there analytic = 2 x numerical (a dropped or extra factor (e.g. "
        "the 2 of a square))")


# ---------------------------------------------------------------- bias_rows of a layer pickled before it existed
class _OldPickler(pickle.Pickler):
    """Pickles every ``Parameter`` as a minidl before ``bias_rows`` did: its slots without ``_bias_rows``."""

    def reducer_override(self, obj: object) -> Any:
        if type(obj) is not md.Parameter:
            return NotImplemented
        func, args, (attributes, slots), *rest = obj.__reduce_ex__(4)
        return (func, args, (attributes, {k: v for k, v in slots.items() if k != "_bias_rows"}), *rest)


def old_pickle(obj: object) -> object:
    """``obj`` pickled as a minidl before ``Parameter.bias_rows`` pickled it, loaded by this one."""
    buffer = io.BytesIO()
    _OldPickler(buffer, protocol=4).dump(obj)
    return pickle.loads(buffer.getvalue())


def test_the_old_pickle_has_no_bias_rows() -> None:
    old = old_pickle(md.Parameter(np.ones((3, 2)), bias_rows=slice(0, 1)))
    assert isinstance(old, md.Parameter) and old.bias_rows is None


@pytest.mark.parametrize("make", [
    lambda: md.Dense(3, 4), lambda: md.Dense(3, 4, bias=False), lambda: md.Conv2D(2, 3, kernel_size=2),
    lambda: md.Conv1D(2, 3, kernel_size=2, bias=False), lambda: md.ConvTranspose2D(2, 3, kernel_size=2),
    lambda: md.ConvTranspose1D(2, 3, kernel_size=2), lambda: md.RNN(3, 4), lambda: md.LSTM(3, 4),
    lambda: md.GRU(3, 4), lambda: md.GRU(3, 4, bias=False), lambda: md.MultiHeadAttention(4, num_heads=2),
    lambda: md.MultiHeadAttention(4, num_heads=2, bias=False), lambda: md.BatchNorm1d(3), lambda: md.BatchNorm2d(3),
    lambda: md.InstanceNorm2d(3, affine=True), lambda: md.LayerNorm(4), lambda: md.GroupNorm(2, 4),
])
def test_a_layer_pickled_before_bias_rows_gets_them_again(make: Callable[[], md.Layer]) -> None:
    fresh = make()
    old = old_pickle(md.Sequential(fresh))
    assert isinstance(old, md.Sequential)
    expected = {name: p.bias_rows for name, p in fresh.named_parameters()}
    assert any(rows is not None for rows in expected.values()) or "bias=False" in repr(fresh)
    assert {name: p.bias_rows for name, p in old[0].named_parameters()} == expected


def test_decay_bias_false_leaves_an_old_pickled_dense_bias_row_exact() -> None:
    old = old_pickle(md.Dense(3, 4, rng=0))
    assert isinstance(old, md.Dense)
    before = old.W.data.copy()
    old.W.grad = np.zeros_like(before)
    md.SGD(old.parameters(), lr=0.1, weight_decay=0.5, decay_bias=False).step()
    np.testing.assert_array_equal(old.W.data[0], before[0])
    np.testing.assert_allclose(old.W.data[1:], before[1:] * (1 - 0.1 * 0.5), rtol=1e-15)


class BadBias(md.Dense):
    """Dense whose backward doubles the bias row's gradient."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(g)
        self.W.grad[0] += self.W.grad[0] - before[0]
        return dx


def test_the_checker_names_the_bias_row_of_an_old_pickled_dense() -> None:
    old = old_pickle(md.Sequential(BadBias(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1)))
    diagnosis = GradientChecker(old, seed=0).run()["0.W"].diagnosis
    assert diagnosis is not None and diagnosis.startswith("only row 0 (the absorbed bias row) is wrong")


# ---------------------------------------------------------------- a Parameter subclass's attributes
class Tagged(md.Parameter):
    """A parameter with an attribute of its own."""


@pytest.mark.parametrize("copy_of", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))])
def test_a_parameter_subclass_keeps_its_attributes(copy_of: Callable[[Any], Any]) -> None:
    p = Tagged(np.ones((3, 2)), bias_rows=slice(0, 1))
    p.tag = "embedding"
    q = copy_of(p)
    assert type(q) is Tagged and q.tag == "embedding" and q.bias_rows == slice(0, 1)
    np.testing.assert_array_equal(q.data, p.data)


# ---------------------------------------------------------------- param_groups
def test_param_groups_read_says_where_lr_is() -> None:
    opt = md.SGD(md.Dense(2, 2).parameters(), lr=0.1)
    with pytest.raises(AttributeError, match=r"^SGD has no param_groups: .* opt\.param_groups\[0\]\['lr'\] is opt\.lr"):
        _ = opt.param_groups
    assert not hasattr(opt, "param_groups")
    with pytest.raises(AttributeError, match=r"^'SGD' object has no attribute 'nope'$"):
        _ = opt.nope  # type: ignore[attr-defined]


def test_a_subclass_may_assign_param_groups() -> None:
    class Grouped(md.SGD):
        def __init__(self, params: Any, lr: float) -> None:
            super().__init__(params, lr=lr)
            self.param_groups = [{"params": self.params, "lr": lr}]

    opt = Grouped(md.Dense(2, 2).parameters(), lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and len(opt.param_groups[0]["params"]) == 1
    assert copy.deepcopy(opt).param_groups[0]["lr"] == 0.1


# ---------------------------------------------------------------- bias_rows selecting no row
@pytest.mark.parametrize("rows", [slice(5, 7), slice(3, None), slice(2, 1)])
def test_bias_rows_selecting_no_row_is_refused(rows: slice) -> None:
    p = md.Parameter(np.ones((3, 2)))
    with pytest.raises(ValueError, match=rf"^Parameter.bias_rows: {re.escape(repr(rows))} selects no row of a "
                                         r"parameter of shape \(3, 2\) \(3 rows\)$"):
        p.bias_rows = rows
    assert p.bias_rows is None
    with pytest.raises(ValueError, match="selects no row"):
        md.Parameter(np.ones((3, 2)), bias_rows=rows)
    p.bias_rows = slice(2, 9)  # (a slice past the end that still holds a row: as NumPy takes it)
    assert p.bias_rows == slice(2, 9)


# ---------------------------------------------------------------- the last review's (rH) findings
def _diagnosis_of(shape: tuple[int, ...], wrong: list[tuple[int, ...]]) -> str | None:
    """The diagnosis of a tensor of ``shape`` whose analytic gradient is the numerical one but at ``wrong``,
    scaled there by 2, 3, ... (different factors)."""
    from minidl.gradcheck.diagnosis import diagnose
    numerical = np.random.default_rng(0).normal(size=shape) + 3.0
    analytic = numerical.copy()
    for i, where in enumerate(wrong):
        analytic[where] *= 2 + i
    failed = np.abs(analytic - numerical).reshape(-1) > 1e-6
    return diagnose("x", analytic.reshape(-1), numerical.reshape(-1), failed, np.ones(numerical.size, bool),
                    np.arange(numerical.size), shape, None, np.full(numerical.size, 1e-6))


@pytest.mark.parametrize(("shape", "wrong"), [
    ((20, 1), [(3, 0), (11, 0)]), ((4, 1, 2, 2), [(0, 0, 0, 1), (3, 0, 1, 0)]), ((20, 4), [(3, 1), (11, 2)]),
])
def test_an_axis_of_size_one_is_not_a_shared_column(shape: tuple[int, ...], wrong: list[tuple[int, ...]]) -> None:
    """Every element shares an axis of size 1 (one column, one channel): the elements are still apart."""
    assert _diagnosis_of(shape, wrong) == (
        f"only 2 isolated element(s) wrong, at {wrong}: an indexing bug or a special case in backward?")


@pytest.mark.parametrize("copy_of", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))])
def test_bias_rows_set_to_none_by_the_user_stay_none_through_copies(copy_of: Callable[[Any], Any]) -> None:
    dense = md.Dense(3, 4)
    dense.W.bias_rows = None  # (its user decays the bias on purpose)
    assert copy_of(dense).W.bias_rows is None
    assert copy_of(md.Sequential(dense))[0].W.bias_rows is None


@pytest.mark.parametrize("copy_of", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))])
def test_a_parameter_referring_to_its_layer_copies(copy_of: Callable[[Any], Any]) -> None:
    """A cycle, parameter -> layer -> parameter: the layer is rebuilt before the parameter it holds."""
    dense = md.Dense(3, 4, rng=0)
    owned = Tagged(dense.W.data, bias_rows=slice(0, 1))
    owned.owner = dense
    dense.W = owned
    copied = copy_of(owned)
    assert copied.bias_rows == slice(0, 1) and copied.owner.W is copied and copied.owner.W.bias_rows == slice(0, 1)
    np.testing.assert_array_equal(copied.data, dense.W.data)


def test_an_attribute_error_inside_an_optimizer_property_keeps_its_name() -> None:
    class Reporting(md.SGD):
        @property
        def extra(self) -> Any:
            return self.missing_thing  # type: ignore[attr-defined]

    opt = Reporting(md.Dense(2, 2).parameters(), lr=0.1)
    with pytest.raises(AttributeError, match="'missing_thing'"):
        _ = opt.extra


def test_a_placeholder_of_zero_rows_may_have_bias_rows() -> None:
    """A custom layer may fill its weight at the first forward: the rows are checked against a weight that has some."""
    p = md.Parameter(np.zeros((0, 4)), bias_rows=slice(0, 1))
    assert p.bias_rows == slice(0, 1)
