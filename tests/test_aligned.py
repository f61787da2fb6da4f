"""Parameters, gradients and optimizer state start on a cache line (minidl.aligned)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import aligned


def _big(model: md.Layer) -> list[md.Parameter]:
    return [p for p in model.parameters() if p.data.nbytes >= aligned.MIN_BYTES]


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.dtype(">f8"), np.complex128]))
@example(shape=(16, 32), dtype=np.float64)  # exactly MIN_BYTES: aligned (a boundary the draws rarely hit)
def test_empty_copy_and_zeros_keep_shape_dtype_and_values(shape, dtype) -> None:
    source = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape).astype(dtype)
    for array in (aligned.empty(shape, dtype), aligned.copy(source), aligned.zeros_like(source)):
        assert array.shape == shape and array.dtype == np.dtype(dtype)
        assert array.flags.c_contiguous and array.flags.writeable
        assert aligned.is_aligned(array) or array.nbytes < aligned.MIN_BYTES
    np.testing.assert_array_equal(aligned.copy(source), source)
    assert not aligned.zeros_like(source).any()
    other = aligned.copy(source)
    other.reshape(-1)[:1] = 7  # a copy: the source is untouched
    np.testing.assert_array_equal(source, np.arange(source.size).reshape(shape).astype(dtype))


def test_copy_converts_like_astype_and_makes_a_transposed_array_c_contiguous() -> None:
    source = np.linspace(-2, 2, 4096).reshape(64, 64).T  # a Fortran-ordered view
    out = aligned.copy(source, np.float32)
    assert out.dtype == np.float32 and out.flags.c_contiguous and aligned.is_aligned(out)
    np.testing.assert_array_equal(out, source.astype(np.float32))


def test_small_and_object_arrays_are_plain_numpy_arrays() -> None:
    small = aligned.empty((3, 2), np.float64)
    assert small.base is None  # no padding for 48 bytes
    objects = aligned.copy(np.array([None, "a", 3] * 2000, dtype=object))
    assert objects.dtype == object and objects[1] == "a"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parameters_gradients_and_optimizer_state_are_aligned(dtype, seed) -> None:
    # odd offsets first: NumPy's own arrays after them land anywhere (16 bytes is all malloc promises)
    padding = [np.empty(n, np.uint8) for n in np.random.default_rng(seed).integers(1, 5000, size=9)]
    model = md.Sequential(md.Dense(100, 33, rng=seed, dtype=dtype), md.ReLU(), md.Dense(33, 40, rng=seed, dtype=dtype),
                          md.Conv2D(8, 16, 3, rng=seed, dtype=dtype))  # (not run: only the arrays count)
    big = _big(model)
    assert len(big) == 3  # the two Dense weights and the kernel (the conv bias is small)
    assert all(aligned.is_aligned(p.data) and aligned.is_aligned(p._grad) for p in big)
    optimizer = md.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    optimizer.step()
    moments = [a for s in optimizer.state for a in s.values() if isinstance(a, np.ndarray) and a.nbytes >= 4096]
    assert len(moments) == 2 * len(big)
    assert all(aligned.is_aligned(a) for a in moments)
    del padding


def test_alignment_survives_astype_load_state_dict_and_a_new_shape() -> None:
    model = md.Dense(100, 40, rng=0)
    model.astype(np.float32)
    assert aligned.is_aligned(model.W.data) and aligned.is_aligned(model.W._grad)
    assert model.W.dtype == np.float32
    state = {"W": np.asfortranarray(np.full((101, 40), 0.5, np.float32))}
    model.load_state_dict(state)
    assert aligned.is_aligned(model.W.data) and model.W.data.flags.c_contiguous
    np.testing.assert_array_equal(model.W.data, 0.5)
    model.W.data = np.zeros((201, 40), np.float32)  # rebound by a user to another shape
    model.W.zero_grad()
    target, overwrite = model.W.grad_target()
    assert overwrite and target.shape == (201, 40) and aligned.is_aligned(target)


def test_sgd_momentum_buffer_is_an_aligned_copy_of_the_first_gradient() -> None:
    model = md.Dense(100, 40, rng=0)
    optimizer = md.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.W.grad = np.full(model.W.shape, 2.0)
    optimizer.step()
    buf = optimizer.state[0]["momentum_buffer"]
    assert aligned.is_aligned(buf) and not np.shares_memory(buf, model.W._grad)
    np.testing.assert_array_equal(buf, 2.0)


@pytest.mark.parametrize("make", [lambda ps: md.Adagrad(ps, lr=0.1), lambda ps: md.Adam(ps, lr=0.1),
                                  lambda ps: md.RMSprop(ps, lr=0.1, momentum=0.9), lambda ps: md.Rprop(ps),
                                  lambda ps: md.Adadelta(ps)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_optimizers_state_is_aligned_also_after_the_model_is_cast(make, seed) -> None:
    """Adagrad's sum was made by np.full_like, and state cast after model.astype by ndarray.astype."""
    padding = [np.empty(n, np.uint8) for n in np.random.default_rng(seed).integers(1, 5000, size=9)]
    model = md.Dense(100, 40, rng=0)
    optimizer = make(model.parameters())
    for dtype in (np.float64, np.float32):
        model.astype(dtype)
        model.W.grad = np.ones_like(model.W.data)
        optimizer.step()
        arrays = [a for a in optimizer.state[0].values() if isinstance(a, np.ndarray)]
        assert arrays and all(a.dtype == dtype and aligned.is_aligned(a) for a in arrays)
    del padding
