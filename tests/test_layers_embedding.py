"""Embedding: the lookup, its scatter-add back-pass (repeated indices, padding row, frozen table), the
gradient checker with integer inputs, bad indices, PyTorch, summary and fit on integer data."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import Embedding, IndexRangeError
from minidl.layer import parameter_backward
from minidl.summary import summarize
from minidl.testing import states_equal


def loop_gradient(W: np.ndarray, idx: np.ndarray, g: np.ndarray, padding_idx: int | None = None) -> np.ndarray:
    """dW by hand: one row addition per position, in order; none for the padding row."""
    dW = np.zeros_like(W)
    rows, grads = idx.reshape(-1), g.reshape(-1, W.shape[1])
    for m in range(rows.size):
        if rows[m] != padding_idx:
            dW[rows[m]] += grads[m]
    return dW


# ------------------------------------------------------------------ closed form
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_is_a_row_lookup_and_backward_a_sum_of_rows(shape, padding_idx, dtype) -> None:
    rng = np.random.default_rng(len(shape))
    layer = Embedding(7, 3, padding_idx=padding_idx, rng=rng, dtype=dtype)
    idx = rng.integers(0, 7, size=shape)
    idx.flat[0] = idx.flat[-1] = 2  # a repeated index
    if padding_idx is not None:
        idx.flat[1] = padding_idx % 7
    y = layer(idx)
    assert y.shape == (*shape, 3) and y.dtype == dtype and y.flags.writeable
    np.testing.assert_array_equal(y, layer.W.data[idx])
    assert not np.shares_memory(y, layer.W.data)
    g = rng.normal(size=y.shape).astype(dtype)
    dx = layer.backward(g)
    assert dx.shape == shape and dx.dtype == dtype and not dx.any()
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(layer.W.grad, loop_gradient(layer.W.data, idx, g, layer.padding_idx), rtol=tol, atol=tol)


def test_repeated_indices_add_their_rows_and_a_second_backward_adds_again() -> None:
    layer = Embedding(4, 2, W=np.arange(8.0).reshape(4, 2))
    idx = np.array([[1, 1, 1], [3, 1, 0]])
    g = np.arange(12.0).reshape(2, 3, 2)
    layer(idx)
    layer.backward(g)
    expected = np.array([[10.0, 11.0], [0 + 2 + 4 + 8, 1 + 3 + 5 + 9], [0.0, 0.0], [6.0, 7.0]])
    np.testing.assert_array_equal(layer.W.grad, expected)
    layer.backward(g)  # no zero_grad in between: adds
    np.testing.assert_array_equal(layer.W.grad, 2 * expected)
    layer.zero_grad()
    layer.W.grad.fill(np.nan)  # old values in the array; zero_grad only marks it zero
    layer.zero_grad()
    layer.backward_params(g)
    np.testing.assert_array_equal(layer.W.grad, expected)


def test_sequential_backward_returns_zeros_of_the_index_shape_and_fit_skips_them() -> None:
    model = md.Sequential(Embedding(6, 2, rng=0), md.Flatten(), md.Dense(6, 2, rng=1))
    idx, g = np.array([[1, 1, 5], [0, 2, 1]]), np.ones((2, 2))
    model(idx)
    dx = model.backward(g)
    assert dx.shape == (2, 3) and dx.dtype == np.float64 and not dx.any()
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.backward_params(g)  # what fit calls: the Embedding's backward_params, which makes no zeros
    assert parameter_backward(model[0]).__func__ is Embedding.backward_params  # type: ignore[attr-defined]
    for p, before in zip(model.parameters(), grads, strict=True):
        np.testing.assert_array_equal(p.grad, before)


def test_a_strided_gradient_array_is_added_into_correctly() -> None:
    layer = Embedding(5, 3, rng=0)
    idx, g = np.array([[4, 0, 4]]), np.ones((1, 3, 3))
    layer(idx)
    layer.W.grad = np.zeros((3, 5)).T  # rebound to a non-contiguous array of the right shape
    layer.backward(g)
    np.testing.assert_array_equal(layer.W.grad, loop_gradient(layer.W.data, idx, g))


def test_empty_batch() -> None:
    layer = Embedding(5, 3, rng=0)
    y = layer(np.zeros((0, 4), dtype=np.int64))
    assert y.shape == (0, 4, 3)
    assert layer.backward(np.zeros((0, 4, 3))).shape == (0, 4)
    assert layer.W.grad_is_zero()


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64,
                                   np.dtype(">i8"), np.dtype("<i4")])
def test_every_integer_dtype_is_accepted(dtype) -> None:
    layer = Embedding(6, 2, rng=0)
    idx = np.array([[5, 0], [3, 3]]).astype(dtype)
    np.testing.assert_array_equal(layer(idx), layer.W.data[idx.astype(np.int64)])
    layer.backward(np.ones((2, 2, 2)))
    np.testing.assert_array_equal(layer.W.grad.sum(axis=1), [2, 0, 0, 4, 0, 2])
    np.testing.assert_array_equal(layer([[1, 2]]), layer.W.data[[[1, 2]]])  # a list of ints is converted


# ------------------------------------------------------------------ construction
def test_initialisation_is_seeded_standard_normal_with_a_zero_padding_row() -> None:
    layer = Embedding(1000, 64, rng=0)
    assert layer.W.shape == (1000, 64) and layer.W.dtype == np.float64
    assert abs(layer.W.data.mean()) < 0.01 and abs(layer.W.data.std() - 1) < 0.01  # N(0, 1), as PyTorch
    np.testing.assert_array_equal(Embedding(9, 4, rng=3).W.data, Embedding(9, 4, rng=3).W.data)
    assert not np.array_equal(Embedding(9, 4, rng=1).W.data, Embedding(9, 4, rng=2).W.data)
    padded = Embedding(9, 4, padding_idx=-2, rng=3)
    assert padded.padding_idx == 7 and not padded.W.data[7].any()
    np.testing.assert_array_equal(np.delete(padded.W.data, 7, axis=0), np.delete(Embedding(9, 4, rng=3).W.data, 7, 0))
    assert Embedding(9, 4, rng=0, dtype=np.float32).W.dtype == np.float32


def test_exact_initial_values_are_validated_like_dense() -> None:
    init = np.arange(6.0).reshape(3, 2)
    layer = Embedding(3, 2, W=init)
    np.testing.assert_array_equal(layer.W.data, init)
    assert layer.W.data is not init
    assert Embedding(3, 2, W=[[0, 0], [1, 2], [3, 4]], padding_idx=0).W.dtype == np.float64
    with pytest.raises(md.ShapeError, match=r"Embedding\(3, 2\): expected W of shape \(3, 2\) \(num_embeddings, "
                                            r"embedding_dim\), got \(2, 3\)"):
        Embedding(3, 2, W=init.T)
    with pytest.raises(md.NonFiniteError, match=r"Embedding\(3, 2\): W holds 1 NaN/inf"):
        Embedding(3, 2, W=[[0, 1], [2, np.inf], [4, 5]])
    with pytest.raises(md.DTypeError, match="W must hold real numbers, got dtype complex128"):
        Embedding(3, 2, W=init.astype(complex))
    with pytest.raises(ValueError, match=r"W\[2\], the padding row \(padding_idx=2\), must be zero"):
        Embedding(3, 2, W=init, padding_idx=-1)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_embeddings": 0}, ValueError, "num_embeddings must be a positive int"),
    ({"embedding_dim": 2.0}, ValueError, "embedding_dim must be a positive int"),
    ({"padding_idx": 5}, ValueError, r"padding_idx must be in \[-5, 4\] \(num_embeddings=5\), got 5"),
    ({"padding_idx": -6}, ValueError, r"padding_idx must be in \[-5, 4\]"),
    ({"padding_idx": True}, TypeError, "padding_idx must be an int or None, got True"),
    ({"padding_idx": 1.0}, TypeError, "padding_idx must be an int or None"),
    ({"dtype": np.int32}, md.DTypeError, "parameters need a floating dtype"),
])
def test_bad_arguments_are_refused(kwargs, error, match) -> None:
    args = {"num_embeddings": 5, "embedding_dim": 2, **kwargs}
    with pytest.raises(error, match=match):
        Embedding(args.pop("num_embeddings"), args.pop("embedding_dim"), **args)


def test_repr_astype_and_state_dict_round_trip(tmp_path) -> None:
    layer = Embedding(6, 3, padding_idx=1, rng=0)
    assert repr(layer) == "Embedding(num_embeddings=6, embedding_dim=3, padding_idx=1)"
    assert repr(Embedding(6, 3)) == "Embedding(num_embeddings=6, embedding_dim=3)"
    idx = np.array([[0, 1, 5]])
    state = layer.state_dict()
    assert list(state) == ["W"]
    other = Embedding(6, 3, padding_idx=1, rng=99)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other(idx), layer(idx))
    md.save(layer.state_dict(), tmp_path / "emb.npz")
    assert states_equal(md.load(tmp_path / "emb.npz"), state)
    layer.astype(np.float32)
    y = layer(idx)
    assert y.dtype == np.float32 and layer.W.dtype == np.float32
    layer.backward(np.ones((1, 3, 3), np.float32))
    assert layer.W.grad.dtype == np.float32
    np.testing.assert_array_equal(y, state["W"].astype(np.float32)[idx])


# ------------------------------------------------------------------ padding row and frozen table
def test_the_padding_row_gets_no_gradient_and_no_update() -> None:
    layer = Embedding(5, 2, padding_idx=0, rng=0)
    idx, g = np.array([[0, 2, 0], [0, 4, 2]]), np.ones((2, 3, 2))
    layer(idx)
    layer.backward(g)
    assert not layer.W.grad[0].any()
    layer.W.grad[0] = 7.0  # add mode (no zero_grad): the padding row keeps what it holds
    layer.backward(g)
    np.testing.assert_array_equal(layer.W.grad[0], [7.0, 7.0])
    for optimizer in (md.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1),
                      md.Adam(layer.parameters(), lr=0.1)):
        before = layer.W.data.copy()
        for _ in range(3):
            layer.zero_grad()
            layer(idx)
            layer.backward(g)
            optimizer.step()
        np.testing.assert_array_equal(layer.W.data[0], [0.0, 0.0])  # data unchanged by the steps
        assert not np.array_equal(layer.W.data[2], before[2])  # (the others did move)


def test_padding_positions_output_zeros_whatever_the_row_holds() -> None:
    """So that the back-pass (no gradient for the row) is the exact derivative: PyTorch would output the
    row itself, which is the same while it is zero (as the layer keeps it)."""
    layer = Embedding(4, 2, padding_idx=3, rng=0)
    layer.W.data[3] = 5.0
    y = layer(np.array([[3, 1, 3]]))
    np.testing.assert_array_equal(y[0, [0, 2]], 0.0)
    np.testing.assert_array_equal(y[0, 1], layer.W.data[1])


def test_a_frozen_table_gets_no_gradient_and_is_reported_frozen() -> None:
    layer = Embedding(5, 2, rng=0)
    layer.requires_grad_(False)
    idx = np.array([[1, 2]])
    layer(idx)
    assert not layer.backward(np.ones((1, 2, 2))).any()
    assert not layer.W.has_grad
    report = md.GradientChecker(layer, inputs=idx).run()
    assert report["W"].mode == "frozen"
    model = md.Sequential(Embedding(5, 2, rng=0).requires_grad_(False), md.Flatten(), md.Dense(4, 3, rng=1))
    report = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=idx).run()
    assert report.passed and report["0.W"].mode == "frozen" and report["2.W"].mode == "full"


# ------------------------------------------------------------------ gradient checker
@pytest.mark.parametrize("vocab, dim, shape, padding_idx, seed", [
    (6, 3, (4, 5), None, 0), (9, 2, (3,), 0, 1), (5, 4, (2, 3, 2), -1, 2), (40, 8, (4, 6), 3, 3),
])
def test_gradient_checker_passes_on_embedding(vocab, dim, shape, padding_idx, seed) -> None:
    rng = np.random.default_rng(seed)
    layer = Embedding(vocab, dim, padding_idx=padding_idx, rng=rng)
    idx = rng.integers(0, vocab, size=shape)
    idx.flat[-1] = idx.flat[0]  # a repeated index: the scatter must add
    if padding_idx is not None:
        idx.flat[1] = padding_idx % vocab  # (the padding row: zero gradient, checked as such)
    report = md.GradientChecker(layer, inputs=idx, seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["W"]
    assert "the input is an array of int64, not a float array: dCost/dinput is not checked" in report.notes
    assert report["W"].max_rel_error < 1e-6


@pytest.mark.parametrize("padding_idx, seed", [(None, 0), (0, 1), (-1, 2)])
def test_gradient_checker_passes_on_embedding_flatten_dense_with_cross_entropy(padding_idx, seed) -> None:
    rng = np.random.default_rng(seed)
    model = md.Sequential(Embedding(12, 3, padding_idx=padding_idx, rng=rng), md.Flatten(), md.Dense(3 * 4, 5, rng=rng))
    idx = rng.integers(0, 12, size=(6, 4))
    idx[0, :2] = idx[1, 3] = 7
    idx[2, 1:] = model[0].padding_idx if padding_idx is not None else 0
    report = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=idx, seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["0.W", "2.W"]


def test_checker_draws_integer_inputs_itself() -> None:
    """Without inputs= the checker asks the first layer for random_inputs, as it asks a loss for
    random_targets: valid indices with a repeated one and the padding index."""
    report = md.GradientChecker(Embedding(20, 3, padding_idx=5, rng=0)).run()
    assert report.passed and [r.name for r in report.results] == ["W"]
    drawn = Embedding(20, 3, padding_idx=5).random_inputs((4, 3), np.random.default_rng(0))
    assert drawn.shape == (4, 3) and drawn.dtype == np.int64
    assert drawn.flat[-1] == drawn.flat[0] and drawn.flat[-2] == 5 and drawn.min() >= 0 and drawn.max() < 20
    model = md.Sequential(md.Sequential(Embedding(10, 2, rng=0)), md.Flatten(), md.Dense(6, 2, rng=1))
    report = md.GradientChecker(model, loss=md.CrossEntropyLoss(), check_layers=True).run()
    assert report.passed, str(report)
    assert report.layers["0.0"].passed and report.layers["0.0"].results[0].name == "W"  # checked alone too


def test_checker_on_an_embedding_a_custom_model_hides_asks_for_integer_inputs() -> None:
    class Wrapper(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.emb = Embedding(5, 2, rng=0)

        def forward(self, x):
            return self.emb(x)

        def backward(self, g):
            return self.emb.backward(g)

        def input_shape_hint(self):
            return (3,)

    with pytest.raises(md.DTypeError, match=r"expected integer indices, got dtype float64.*astype\(np.int64\)"):
        md.GradientChecker(Wrapper()).run()
    assert md.GradientChecker(Wrapper(), inputs=np.array([[0, 4, 4]])).run().passed


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("idx, error, pattern", [
    (np.array([[1.0, 2.0]]), md.DTypeError,
     r"Embedding\(5, 2\): expected integer indices, got dtype float64 \(a float array is refused even when its "
     r"values are whole\); cast them first, e.g. idx.astype\(np.int64\)"),
    ([[1.0, 2.0]], md.DTypeError, "got dtype float64"),
    (np.array([[True, False]]), md.DTypeError, "got dtype bool"),
    (np.array([["a", "b"]]), md.DTypeError, "got dtype <U1"),
    (np.array([[1 + 0j]]), md.DTypeError, "got dtype complex128"),
    ("not an array", md.DTypeError, "expected indices as a numpy array, got str"),
    (np.array(3), md.ShapeError, r"expected indices of shape \(N, \.\.\.\) with a batch axis, got a 0-D array"),
    (np.array([[0, 4], [5, 9]]), IndexRangeError,
     r"^Embedding\(5, 2\): index 5 at position \(1, 0\) is out of range; valid indices are 0\.\.4 "
     r"\(2 of the 4 indices are out of range\)$"),
    (np.array([[0, 1, -1]]), IndexRangeError,
     r"index -1 at position \(0, 2\) is out of range \(negative indices do not count from the end here, as in "
     r"PyTorch\); valid indices are 0\.\.4$"),
    (np.array([0, 7], dtype=np.uint8), IndexRangeError, r"index 7 at position \(1,\) is out of range"),
    (np.array([[-3]], dtype=np.int32), IndexRangeError, r"index -3 at position \(0, 0\)"),
    (np.array([2**63 + 1], dtype=np.uint64), IndexRangeError, rf"index {2**63 + 1} at position \(0,\)"),
])
def test_bad_indices_are_refused_and_change_nothing(idx, error, pattern) -> None:
    layer = Embedding(5, 2, rng=0)
    good = np.array([[1, 2]])
    layer(good)
    before = layer.state_dict()
    with pytest.raises(error, match=pattern):
        layer(idx)
    assert states_equal(layer.state_dict(), before) and layer.W.grad_is_zero()
    assert layer._idx is good  # the last accepted input is still the one backward goes back through
    layer.backward(np.ones((1, 2, 2)))


INDEX_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                np.dtype(">i4"), np.dtype(">u8")]


@settings(max_examples=150, deadline=None)
@given(dtype=st.sampled_from(INDEX_DTYPES), shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
       seed=st.integers(0, 2**32 - 1), spread=st.integers(0, 3), padding=st.sampled_from([None, 0, -1]),
       float32=st.booleans())
def test_any_integer_indices_give_the_rows_or_a_clean_refusal(dtype, shape, seed, spread, padding,
                                                               float32) -> None:
    """Property: indices of any integer dtype and shape, some out of range in either direction, give
    ``W[idx]`` (zeros at the padding index) and the hand-written scatter-add, or IndexRangeError with
    the layer exactly as it was."""
    rng = np.random.default_rng(seed)
    layer = Embedding(6, 3, padding_idx=padding, rng=seed, dtype=np.float32 if float32 else np.float64)
    low = -spread if np.dtype(dtype).kind == "i" else 0
    idx = rng.integers(low, 6 + spread, size=shape).astype(dtype)
    before = layer.state_dict()
    if idx.size and (idx.min() < 0 or idx.max() >= 6):
        with pytest.raises(IndexRangeError, match=r"out of range.*valid indices are 0\.\.5"):
            layer(idx)
        assert states_equal(layer.state_dict(), before) and layer._idx is None
        return
    y = layer(idx)
    expected = layer.W.data[idx.astype(np.int64)]
    assert y.shape == (*shape, 3) and y.dtype == layer.W.data.dtype
    np.testing.assert_array_equal(y, expected)
    g = rng.standard_normal(y.shape).astype(y.dtype)
    layer.zero_grad()
    dx = layer.backward(g)
    assert dx.shape == idx.shape and not dx.any()
    pad = None if padding is None else padding % 6
    np.testing.assert_allclose(layer.W.grad, loop_gradient(layer.W.data, idx.astype(np.int64), g, pad),
                               rtol=1e-5 if float32 else 1e-12, atol=1e-6 if float32 else 0)


def test_the_index_error_is_an_index_error_a_value_error_and_a_minidl_error() -> None:
    assert issubclass(IndexRangeError, (IndexError)) and issubclass(IndexRangeError, ValueError)
    assert issubclass(IndexRangeError, md.MinidlError)
    model = md.Sequential(Embedding(5, 2, rng=0), md.Flatten())
    with pytest.raises(IndexRangeError, match=r"^Sequential layer '0': Embedding\(5, 2\): index 9"):
        model(np.array([[9, 0]]))


def test_backward_before_forward_and_a_wrong_gradient() -> None:
    layer = Embedding(5, 2, rng=0)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"Embedding\.backward called before forward"):
        layer.backward(np.ones((1, 2, 2)))
    layer(np.array([[1, 2, 3]]))
    with pytest.raises(md.ShapeError, match=r"Embedding\(5, 2\)\.backward: expected grad_output of shape \(1, 3, 2\)"):
        layer.backward(np.ones((1, 3)))
    with pytest.raises(md.DTypeError, match="expected grad_output of dtype float64, got float32"):
        layer.backward_params(np.ones((1, 3, 2), np.float32))
    assert layer.W.grad_is_zero()


# ------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding_idx", [None, 0, -3])
@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
def test_against_pytorch(dtype, padding_idx, scale_grad_by_freq) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = Embedding(50, 7, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq, rng=1, dtype=dtype)
    theirs = torch.nn.Embedding(50, 7, padding_idx=padding_idx, scale_grad_by_freq=scale_grad_by_freq,
                                dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.W.data))
    idx = rng.integers(0, 50, size=(16, 9))
    idx[0, :5] = 3  # repeated
    idx[1, :4] = 47 if padding_idx is None else ours.padding_idx
    g = rng.normal(size=(16, 9, 7)).astype(dtype)
    y = ours(idx)
    ours.backward(g)
    yt = theirs(torch.from_numpy(idx))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(ours.W.grad, theirs.weight.grad.numpy(), rtol=tol, atol=tol)
    with pytest.raises(IndexError):  # both refuse a negative index
        theirs(torch.tensor([[-1]]))
    with pytest.raises(IndexError):
        ours(np.array([[-1]]))


# ------------------------------------------------------------------ summary and training
def test_summary_of_an_embedding_model_draws_integer_indices() -> None:
    model = md.Sequential(Embedding(100, 16, rng=0), md.Flatten(), md.Dense(16 * 5, 3, rng=1))
    s = summarize(model, (5,))
    assert [(r.name, r.output_shape, r.params) for r in s.rows] == [
        ("0", "(None, 5, 16)", 1600), ("1", "(None, 80)", 0), ("2", "(None, 3)", 243)]
    assert s.trainable == 1843
    lines: list[str] = []
    model.astype(np.float32).summary((5,), print_fn=lines.append)
    assert "Input shape: (None, 5)" in lines[0]
    with pytest.raises(md.ShapeError, match=re.escape("the shape (3,) was guessed from the first layer")):
        summarize(model)  # the guess, sequences of 3, does not fit Dense(80 -> 3)
    guessed = summarize(md.Sequential(Embedding(10, 4, padding_idx=0, rng=0)))
    assert guessed.input_shape == (3,) and guessed.rows[0].output_shape == "(None, 3, 4)"


def token_task(n: int, rng: np.random.Generator, vocab: int = 30, length: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of noise tokens (4..vocab-1) holding one keyword (1, 2 or 3, the class - 1) at a random
    position within a random length, padded with 0 after it."""
    x = rng.integers(4, vocab, size=(n, length))
    y = rng.integers(0, 3, size=n)
    for i, size in enumerate(rng.integers(2, length + 1, size=n)):
        x[i, rng.integers(0, size)] = y[i] + 1
        x[i, size:] = 0
    return x, y


def train(seed: int) -> tuple[md.Sequential, md.History, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    (x, y), val = token_task(300, rng), token_task(200, rng)
    model = md.Sequential(Embedding(30, 8, padding_idx=0, rng=seed), md.Flatten(), md.Dense(8 * 6, 3, rng=seed + 1))
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.02),
                        epochs=8, batch_size=32, metrics=["accuracy"], validation_data=val, rng=seed, verbose=0)
    return model, history, val


def test_fit_evaluate_predict_on_integer_tokens() -> None:
    model, history, (x_val, y_val) = train(0)
    losses = history["loss"]
    assert losses[0] > 0.5 and losses[-1] < 0.05 and all(b < a for a, b in itertools.pairwise(losses))
    assert history["accuracy"][-1] == 1.0 and history["val_accuracy"][-1] >= 0.99
    scores = model.evaluate(x_val, y_val)
    assert scores["loss"] < 0.05 and scores["accuracy"] >= 0.99
    predicted = model.predict(x_val, batch_size=64)
    assert predicted.shape == (200, 3) and (predicted.argmax(axis=1) == y_val).mean() >= 0.99
    assert not model[0].W.data[0].any()  # the padding row was never trained
    _, again, _ = train(0)
    assert again.history == history.history  # deterministic from the seeds


def test_the_checker_reverses_a_one_dimensional_index_batch_too() -> None:
    """The checker's first forward runs on the batch reversed, so that a layer keeping a stale cache
    fails; an (N,) batch of indices was not reversed, and such a layer passed."""

    class Stale(Embedding):  # keeps the indices of its first forward
        def forward(self, idx: np.ndarray) -> np.ndarray:
            out = super().forward(idx)
            if getattr(self, "_first", None) is None:
                object.__setattr__(self, "_first", self._idx)
            object.__setattr__(self, "_idx", self._first)
            return out

    idx = np.array([0, 3, 5, 6, 1, 2])
    assert not md.GradientChecker(Stale(7, 2, rng=0), inputs=idx).run().passed
    assert md.GradientChecker(Embedding(7, 2, rng=0), inputs=idx).run().passed


def test_summary_of_a_custom_model_starting_with_an_embedding_says_to_override_random_inputs() -> None:
    class Tagger(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed = Embedding(5, 2, rng=0)

        def forward(self, idx: np.ndarray) -> np.ndarray:
            return self.embed(idx)

    with pytest.raises(md.DTypeError, match=r"if its first layer takes other inputs .* inside a custom Model, "
                                            r"override random_inputs there"):
        Tagger().summary(input_shape=(3,))

    class DrawingTagger(Tagger):
        def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
            return self.embed.random_inputs(shape, rng)

    lines: list[str] = []
    DrawingTagger().summary(input_shape=(3,), print_fn=lines.append)
    assert "(None, 3, 2)" in lines[0]
