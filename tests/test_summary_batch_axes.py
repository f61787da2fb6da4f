"""``summarize`` runs two batch sizes and shows each output axis as a length, ``N`` / ``kN`` (``None`` for an
output's first axis of one row per sample) or ``?``: it ran one batch and showed axis 0 as ``None`` whatever
it held (``Flatten(0)`` gave ``(None)``, a sum over the batch ``(None)``, ``Flatten(0, 1)`` ``(None, 3)``)."""

from __future__ import annotations

import copy
import tracemalloc
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import ShapeError
from minidl.summary import ModelSummary, summarize


def shapes(s: ModelSummary) -> list[tuple[str, str]]:
    return [(r.name, r.output_shape) for r in s.rows]


class SumOverBatch(md.Layer):
    """(N, F) -> (F,): the sum over the samples."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=0)


class AndItsSum(md.Layer):
    """(N, F) -> ((N, F), (F,)): the input and its sum over the samples, as a tuple."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, x.sum(axis=0)


class OneMoreRow(md.Layer):
    """(N, F) -> (N + 1, F): the first row appended once more."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, x[:1]])


class Gram(md.Layer):
    """(N, F) -> (N, N): the samples' dot products."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x @ x.T


class Squeeze(md.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.squeeze(x)


class Only(md.Layer):
    """Refuses any batch but one of ``size`` samples."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self.size:
            raise ShapeError(f"Only: expected {self.size} samples, got {len(x)}")
        return x


class Counting(md.Layer):
    """Counts its forwards on itself (a cache the summary must not touch or add to)."""

    def __init__(self) -> None:
        super().__init__()
        self.forwards = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.forwards += 1
        return x


def test_the_table_of_a_dense_mlp_is_as_before_without_a_footer() -> None:
    model = md.Sequential(md.Dense(784, 256, rng=0), md.ReLU(), md.Dense(256, 256, rng=1), md.ReLU(),
                          md.Dense(256, 10, rng=2))
    s = summarize(model)
    assert str(s).splitlines() == [
        'Model: "Sequential"',
        "Input shape: (None, 784)",
        "_" * 38,
        " Layer (type)  Output Shape  Param #",
        "=" * 38,
        " 0 (Dense)     (None, 256)   200,960",
        " 1 (ReLU)      (None, 256)         0",
        " 2 (Dense)     (None, 256)    65,792",
        " 3 (ReLU)      (None, 256)         0",
        " 4 (Dense)     (None, 10)      2,570",
        "=" * 38,
        "Total params: 269,322 (2.05 MB)",
        "Trainable params: 269,322 (2.05 MB)",
        "Non-trainable params: 0 (0.00 B)",
        "_" * 38,
    ]
    assert not s.uses_n and not s.uses_unknown


def test_the_rows_of_a_cnn_are_as_before() -> None:
    model = md.Sequential(md.Conv2D(1, 8, 3, padding=1, rng=0), md.BatchNorm2d(8), md.ReLU(), md.MaxPool2D(2),
                          md.Flatten(), md.Dropout(0.5, rng=0), md.Dense(8 * 4 * 4, 10, rng=1))
    s = summarize(model, (1, 8, 8))
    assert [r.output_shape for r in s.rows] == ["(None, 8, 8, 8)", "(None, 8, 8, 8)", "(None, 8, 8, 8)",
                                                "(None, 8, 4, 4)", "(None, 128)", "(None, 128)", "(None, 10)"]
    assert "N: the number" not in str(s) and not s.uses_n and s.total == 80 + 32 + 129 * 10


def test_flatten_0_merges_the_batch_into_18n_rows() -> None:
    """(None) before: the batch axis taken for the only axis."""
    model = md.Sequential(md.Conv2D(1, 2, 3, padding=1, rng=0), md.Flatten(0))
    s = summarize(model, (1, 3, 3))
    assert shapes(s) == [("0", "(None, 2, 3, 3)"), ("1", "(18N,)")]
    assert s.uses_n and not s.uses_unknown
    text = str(s).splitlines()
    assert text[-2:] == ["N: the number of samples in the batch", "_" * len(text[2])]
    assert " 1 (Flatten)   (18N,)                 0" in text
    assert [r.params for r in s.rows] == [20, 0] and s.total == 20


def test_flatten_0_1_then_unflatten_shows_where_the_batch_went() -> None:
    """(None, 3) and (None, 2, 3) before, for (2N, 3) and (2, N, 3)."""
    s = summarize(md.Sequential(md.Flatten(0, 1), md.Unflatten(0, (2, -1))), (2, 3))
    assert shapes(s) == [("0", "(2N, 3)"), ("1", "(2, N, 3)")]
    assert s.uses_n
    back = summarize(md.Sequential(md.Flatten(0, 1), md.Dense(4, 5, rng=0), md.Unflatten(0, (-1, 3))), (3, 4))
    assert shapes(back) == [("0", "(3N, 4)"), ("1", "(3N, 5)"), ("2", "(None, 3, 5)")]
    assert back.uses_n and back.total == 25


def test_the_footer_follows_the_rows_shown() -> None:
    """A block that merges and splits the batch inside shows (None, 3, 5); its layers, expanded, (3N, 4)."""
    block = md.Sequential(md.Flatten(0, 1), md.Dense(4, 5, rng=0), md.Unflatten(0, (-1, 3)))
    s = summarize(md.Sequential(block, md.Flatten()), (3, 4))
    assert shapes(s) == [("0", "(None, 3, 5)"), ("1", "(None, 15)")]
    assert not s.uses_n and "N: the number" not in str(s)
    nested = summarize(md.Sequential(block, md.Flatten()), (3, 4), expand_nested=True)
    assert shapes(nested) == [("0", "(None, 3, 5)"), ("0.0", "(3N, 4)"), ("0.1", "(3N, 5)"),
                              ("0.2", "(None, 3, 5)"), ("1", "(None, 15)")]
    assert nested.uses_n and "N: the number of samples in the batch" in str(nested)


class RowSum(md.Layer):
    """(N, F) -> (N,): one score per sample."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1)


def test_one_axis_is_written_as_a_python_tuple() -> None:
    """(None) before, which read as a parenthesised None, not as a shape."""
    s = summarize(md.Sequential(md.Dense(4, 3, rng=0), RowSum()), (4,))
    assert shapes(s) == [("0", "(None, 3)"), ("1", "(None,)")] and not s.uses_n
    assert str(summarize(md.Sequential(md.ReLU()), ())).splitlines()[1] == "Input shape: (None,)"


def test_a_sum_over_the_batch_is_a_fixed_shape() -> None:
    """(None) before: its 3 features taken for the batch."""
    s = summarize(md.Sequential(md.Dense(4, 3, rng=0), SumOverBatch()), (4,))
    assert shapes(s) == [("0", "(None, 3)"), ("1", "(3,)")]
    assert not s.uses_n and "N: the number" not in str(s)


def test_a_recurrent_layer_s_sequences_and_a_dense_on_every_step() -> None:
    """LSTM (N, 5, 4) -> Flatten(0, 1) (5N, 4) -> Dense (5N, 2) -> Unflatten (N, 5, 2): the middle two were
    (None, 4) and (None, 2)."""
    model = md.Sequential(md.LSTM(3, 4, return_sequences=True, rng=0), md.Flatten(0, 1), md.Dense(4, 2, rng=1),
                          md.Unflatten(0, (-1, 5)))
    s = summarize(model, (5, 3))
    assert shapes(s) == [("0", "(None, 5, 4)"), ("1", "(5N, 4)"), ("2", "(5N, 2)"), ("3", "(None, 5, 2)")]
    last = summarize(md.Sequential(md.LSTM(3, 4, return_sequences=False, rng=0)), (5, 3))
    assert shapes(last) == [("0", "(None, 4)")] and not last.uses_n


def test_a_layer_returning_a_tuple_shows_each_output() -> None:
    """[(None, 3), (None)] before."""
    s = summarize(md.Sequential(md.Dense(4, 3, rng=0), AndItsSum()), (4,))
    assert shapes(s) == [("0", "(None, 3)"), ("1", "[(None, 3), (3,)]")]
    pool = summarize(md.Sequential(md.MaxPool2D(2, return_indices=True)), (2, 4, 4))
    assert shapes(pool) == [("0", "[(None, 2, 2, 2), (None, 2, 2, 2)]")]


def test_an_axis_that_is_no_multiple_of_the_batch_is_a_question_mark() -> None:
    """(None, 3) before: the extra row hidden."""
    s = summarize(md.Sequential(md.Dense(4, 3, rng=0), OneMoreRow()), (4,))
    assert shapes(s) == [("0", "(None, 3)"), ("1", "(?, 3)")]
    assert s.uses_unknown and not s.uses_n
    assert str(s).splitlines()[-2] == "?: a length that changes with the batch size but is not a multiple of it"


def test_two_axes_of_n_are_both_written_n() -> None:
    """(None, N) would hide that both are the batch size: (None, 2) before."""
    s = summarize(md.Sequential(Gram()), (4,))
    assert shapes(s) == [("0", "(N, N)")] and s.uses_n


def test_a_given_batch_runs_n_then_n_minus_1_samples_and_one_sample_twice() -> None:
    model = md.Sequential(md.Conv2D(1, 2, 3, padding=1, rng=0), md.Flatten(0))
    x = np.random.default_rng(0).standard_normal((5, 1, 3, 3))
    dummy = str(summarize(model, (1, 3, 3)))
    for n in (5, 2, 1):  # (one sample was run alone: (None) too)
        assert str(summarize(model, inputs=x[:n])) == dummy
    assert shapes(summarize(md.Sequential(SumOverBatch()), inputs=x[:1, 0, 0])) == [("0", "(3,)")]


def test_an_output_whose_number_of_axes_changes_is_a_question_mark() -> None:
    """Two samples squeezed keep their axis, one loses it: the second forward runs one."""
    s = summarize(md.Sequential(Squeeze()), inputs=np.ones((2, 1, 3)))
    assert shapes(s) == [("0", "?")] and s.uses_unknown


class Table(md.Layer):
    """Adds a table of 3 rows: runs on batches of 3 samples only (NumPy's ValueError otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = np.zeros((3, 4))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + self.table


class Loud(md.Layer):
    """Fails at any batch size but 3 with a long message of two lines."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if len(x) != 3:
            raise RuntimeError("x" * 200 + "\nsecond line")
        return x


class TwoHeads(md.Model):
    """Head ``a`` for batches of fewer than 4 samples, else head ``b``."""

    def __init__(self) -> None:
        super().__init__()
        self.a = md.Dense(4, 3, rng=0)
        self.b = md.Dense(4, 5, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.a(x) if len(x) < 4 else self.b(x)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (4,)


def test_a_model_failing_at_the_second_batch_size_is_shown_from_the_first_forward() -> None:
    """The summary worked on a model that runs at one batch size only before it ran two: it still does,
    with the first forward's shapes (axis 0 as None, no kN) and a footer line saying why."""
    s = summarize(md.Sequential(md.Dense(2, 2, rng=0), Only(3), md.Flatten(0)))
    assert shapes(s) == [("0", "(None, 2)"), ("1", "(None, 2)"), ("2", "(None,)")]
    assert not s.uses_n and not s.uses_unknown
    assert s.one_size == ("the forward at 4 samples failed (ShapeError: Sequential layer '1': Only: expected 3 "
                          "samples, got 4)")
    text = str(s).splitlines()
    assert text[-2] == ("shapes from one batch size: the forward at 4 samples failed (ShapeError: Sequential "
                        "layer '1': Only: expected 3 samples, got 4)")
    assert text[-3] == "Non-trainable params: 0 (0.00 B)" and "N: the number" not in str(s)
    s = summarize(md.Sequential(md.Dense(4, 4, rng=0), Table()))  # (any Exception: NumPy's ValueError)
    assert shapes(s) == [("0", "(None, 4)"), ("1", "(None, 4)")]
    assert s.one_size == ("the forward at 4 samples failed (ValueError: operands could not be broadcast "
                          "together with shapes (4,4) (3,4))")
    s = summarize(md.Sequential(Only(3)), inputs=np.ones((3, 2)))
    assert shapes(s) == [("0", "(None, 2)")]
    assert s.one_size == ("the forward at 2 samples failed (ShapeError: Sequential layer '0': Only: expected 3 "
                          "samples, got 2)")
    s = summarize(md.Sequential(Only(1)), inputs=np.ones((1, 2)))  # (its sample twice)
    assert shapes(s) == [("0", "(None, 2)")] and s.one_size.startswith("the forward at 2 samples failed")
    s = summarize(md.Sequential(Loud()), (2,))  # (the first line, cut)
    assert s.one_size == "the forward at 4 samples failed (RuntimeError: " + "x" * 83 + "...)"
    assert summarize(md.Sequential(md.Dense(2, 2, rng=0))).one_size == ""


def test_only_a_failing_first_forward_raises_with_the_guessed_shape_advice() -> None:
    with pytest.raises(ShapeError) as info:
        summarize(md.Sequential(md.Dense(2, 2, rng=0), Only(4)))
    assert str(info.value) == ("summary: the forward on a dummy batch of shape (3, 2) failed: Sequential layer "
                               "'1': Only: expected 4 samples, got 3; the shape (2,) was guessed from the first "
                               "layer: pass input_shape=(...), the shape of one sample without the batch axis, "
                               "or inputs=, a batch")
    with pytest.raises(ShapeError) as info:
        summarize(md.Sequential(Only(4)), inputs=np.ones((3, 2)))
    assert str(info.value) == ("summary: the forward on the given batch of shape (3, 2) failed: Sequential layer "
                               "'0': Only: expected 4 samples, got 3")


def test_a_layer_run_at_the_first_batch_size_only_is_shown_from_it() -> None:
    """Head a runs at 3 samples, head b at 4: a is (None, 3) as one forward shows it, not ?, and b, which
    the first forward did not use, is not called."""
    s = summarize(TwoHeads())
    assert shapes(s) == [("a", "(None, 3)"), ("b", "not called")]
    assert not s.uses_unknown and not s.uses_n and s.one_size == "" and "?" not in str(s)


def test_the_summary_holds_one_copy_of_the_model_at_a_time() -> None:
    """Each forward's copy is freed before the next is made: the peak is about one copy (it held both)."""
    model = md.Sequential(md.Dense(256, 512, rng=0), md.ReLU(), md.Dense(512, 512, rng=1))
    tracemalloc.start()
    try:
        copy.deepcopy(model)
        one_copy = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        summarize(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one_copy > 2 * 2**20 and peak < 1.3 * one_copy, (one_copy, peak)


def test_both_forwards_leave_the_model_as_it_was_and_count_calls_once() -> None:
    counting = Counting()
    model = md.Sequential(md.Dense(5, 4, rng=0), md.BatchNorm1d(4), md.Dropout(0.5, rng=3), counting,
                          md.Flatten(0))
    model.train()
    model(np.random.default_rng(0).standard_normal((6, 5)))
    before = copy.deepcopy(model.state_dict())
    rng_state: dict[str, Any] = model[2].rng.bit_generator.state
    s = summarize(model)
    assert counting.forwards == 1 and model.training and all(layer.training for layer in model.layers())
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert model[2].rng.bit_generator.state == rng_state
    assert [r.calls for r in s.rows] == [1] * 5 and shapes(s)[-1] == ("4", "(4N,)")
    assert s.trainable == 24 + 8 and s.non_trainable == 8
