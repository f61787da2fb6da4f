"""Gradient clipping: clip_grad_norm_ and clip_grad_value_ against closed forms, edge cases, PyTorch,
and fit(clip_grad_norm=...) against a hand-written loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md


def _params(*grads: np.ndarray) -> list[md.Parameter]:
    params = []
    for g in grads:
        p = md.Parameter(np.zeros_like(g))
        p.grad = g.copy()
        params.append(p)
    return params


def _flat(params: list[md.Parameter]) -> np.ndarray:
    return np.concatenate([p.grad.ravel() for p in params])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before(norm_type: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=(3, 4)), rng.normal(size=5), rng.normal(size=(2, 2, 2))]
    params = _params(*grads)
    before = _flat(params)
    expected = float(np.linalg.norm(before, ord=norm_type))
    max_norm = 0.25 * expected
    total = md.clip_grad_norm_(params, max_norm, norm_type)
    assert total == pytest.approx(expected, rel=1e-13)
    coef = max_norm / (expected + 1e-6)
    np.testing.assert_allclose(_flat(params), before * coef, rtol=1e-13)
    assert np.linalg.norm(_flat(params), ord=norm_type) <= max_norm


def test_clip_grad_norm_leaves_small_gradients_alone() -> None:
    params = _params(np.array([3.0, 4.0]))  # norm 5
    assert md.clip_grad_norm_(params, 10.0) == 5.0
    np.testing.assert_array_equal(params[0].grad, [3.0, 4.0])
    # at exactly max_norm, PyTorch's 1e-6 still scales a little
    assert md.clip_grad_norm_(params, 5.0) == 5.0
    np.testing.assert_allclose(params[0].grad, np.array([3.0, 4.0]) * 5.0 / (5.0 + 1e-6), rtol=1e-15)


def test_only_parameters_with_a_gradient_take_part_and_each_once() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0), md.Dense(2, 1, rng=1))
    model[1].W.zero_grad()  # no gradient
    model[0].W.grad = np.full((3, 2), 2.0)  # norm sqrt(6 * 4)
    shared = model[0].W
    assert md.clip_grad_norm_([shared, shared, model[1].W], 1.0) == pytest.approx(math.sqrt(24.0))
    assert not model[1].W.has_grad
    np.testing.assert_allclose(np.linalg.norm(shared.grad), 1.0, rtol=1e-5)
    assert md.clip_grad_norm_(model, 1.0) == pytest.approx(1.0, rel=1e-5)  # a layer: its parameters
    assert md.clip_grad_norm_([], 1.0) == 0.0


def test_float32_stays_float32_and_huge_gradients_do_not_overflow() -> None:
    params = _params(np.full(4, 3e30, dtype=np.float32), np.full(2, 4e30, dtype=np.float32))
    total = md.clip_grad_norm_(params, 1.0)
    assert total == pytest.approx(math.sqrt(4 * 9e60 + 2 * 16e60), rel=1e-6)
    assert all(p.grad.dtype == np.float32 for p in params)
    np.testing.assert_allclose(np.linalg.norm(_flat(params).astype(np.float64)), 1.0, rtol=1e-5)
    for norm_type in (1.0, 3.0):
        params = _params(np.full(4, 3e38, dtype=np.float32))
        assert md.clip_grad_norm_(params, 1.0, norm_type) == pytest.approx(3e38 * 4 ** (1 / norm_type), rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_is_refused_and_nothing_changes(bad: float) -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0), md.Dense(2, 1, rng=1))
    model[0].W.grad = np.ones((3, 2))
    g = np.ones((3, 1))
    g[1, 0] = bad
    model[1].W.grad = g
    with pytest.raises(md.NonFiniteError, match=r"parameter '1.W' \(shape \(3, 1\)\) holds NaN/inf; nothing"):
        md.clip_grad_norm_(model, 0.1)
    np.testing.assert_array_equal(model[0].W.grad, np.ones((3, 2)))
    np.testing.assert_array_equal(model[1].W.grad, g)
    # PyTorch's default: scale anyway (by 0 for an inf norm, by NaN for a NaN norm)
    total = md.clip_grad_norm_(model, 0.1, error_if_nonfinite=False)
    assert math.isnan(total) if np.isnan(bad) else total == math.inf
    expected_first = np.full((3, 2), np.nan) if np.isnan(bad) else np.zeros((3, 2))
    np.testing.assert_array_equal(model[0].W.grad, expected_first)


def test_clip_grad_value_clamps_in_place() -> None:
    params = _params(np.array([-3.0, 0.5, 2.0, np.nan]), np.array([[0.1, -0.2]], dtype=np.float32))
    md.clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad, [-1.0, 0.5, 1.0, np.nan])
    np.testing.assert_array_equal(params[1].grad, np.array([[0.1, -0.2]], dtype=np.float32))
    assert params[1].grad.dtype == np.float32
    md.clip_grad_value_(params, 0.0)
    np.testing.assert_array_equal(params[1].grad, np.zeros((1, 2), dtype=np.float32))


def test_bad_arguments_are_refused() -> None:
    params = _params(np.ones(2))
    for bad in (-1.0, math.nan, math.inf, "1", None):
        with pytest.raises(ValueError, match="max_norm must be a finite number >= 0"):
            md.clip_grad_norm_(params, bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="clip_value must be a finite number >= 0"):
            md.clip_grad_value_(params, bad)  # type: ignore[arg-type]
    for bad in (0, -2.0, math.nan, "2"):
        with pytest.raises(ValueError, match="norm_type must be a number > 0"):
            md.clip_grad_norm_(params, 1.0, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="error_if_nonfinite must be True or False"):
        md.clip_grad_norm_(params, 1.0, error_if_nonfinite="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"item 1 is a ndarray, not a Parameter"):
        md.clip_grad_norm_([params[0], np.ones(2)], 1.0)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected a Layer, a Parameter or an iterable"):
        md.clip_grad_norm_(3.0, 1.0)  # type: ignore[arg-type]
    np.testing.assert_array_equal(params[0].grad, np.ones(2))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=6), min_size=1, max_size=4),
       st.floats(1e-3, 1e3), st.sampled_from([1.0, 2.0, 2.5, math.inf]))
def test_after_clipping_the_norm_is_at_most_max_norm(grads: list[list[float]], max_norm: float,
                                                     norm_type: float) -> None:
    params = _params(*(np.array(g) for g in grads))
    before = _flat(params)
    total = md.clip_grad_norm_(params, max_norm, norm_type)
    after = _flat(params)
    big = float(np.max(np.abs(before)))  # the reference scaled too: NumPy's underflows for tiny elements
    expected = big * float(np.linalg.norm(before / big, ord=norm_type)) if big > 0 else 0.0
    assert total == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert np.linalg.norm(after, ord=norm_type) <= max(max_norm, total) * (1 + 1e-12)
    if total > max_norm:  # the direction is kept
        np.testing.assert_allclose(after * (total + 1e-6) / max_norm, before, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_with_clip_grad_norm_equals_a_hand_written_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(24, 3))
    y = rng.normal(size=(24, 1)) * 50.0  # large targets: large gradients, so clipping acts
    model = md.Sequential(md.Dense(3, 4, rng=seed), md.Tanh(), md.Dense(4, 1, rng=seed + 1))
    manual = md.Sequential(md.Dense(3, 4, rng=seed), md.Tanh(), md.Dense(4, 1, rng=seed + 1))
    md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1, momentum=0.9),
           epochs=2, batch_size=8, shuffle=False, verbose=0, clip_grad_norm=0.5)
    loss, opt = md.MSELoss(), md.SGD(manual.parameters(), lr=0.1, momentum=0.9)
    clipped = 0
    for _ in range(2):
        for start in range(0, 24, 8):
            opt.zero_grad()
            loss(manual(x[start:start + 8]), y[start:start + 8])
            manual.backward(loss.backward())
            clipped += md.clip_grad_norm_(manual, 0.5) > 0.5
            opt.step()
    assert clipped == 6
    for a, b in zip(model.parameters(), manual.parameters(), strict=True):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-14)


def test_fit_refuses_a_bad_clip_grad_norm() -> None:
    model = md.Sequential(md.Dense(2, 1, rng=0))
    for bad in (-1.0, math.inf, "1"):
        with pytest.raises(ValueError, match="fit: clip_grad_norm must be None or a finite number >= 0"):
            md.fit(model, np.ones((4, 2)), np.ones((4, 1)), loss=md.MSELoss(),
                   optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0, clip_grad_norm=bad)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_against_pytorch(norm_type: float) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(4, 3)), rng.normal(size=7)]
    params = _params(*grads)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g)
    for max_norm in (0.5, 100.0):
        ours = md.clip_grad_norm_(params, max_norm, norm_type)
        theirs = float(torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type))
        assert ours == pytest.approx(theirs, rel=1e-13)
        for p, t in zip(params, tensors, strict=True):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-13)


def test_frozen_parameters_are_not_clipped_nor_counted() -> None:
    """As the optimizers: a frozen parameter's gradient (written by a custom layer) never moves it, so it
    must not shrink the trainable gradients either."""
    trainable, frozen = _params(np.array([3.0, 4.0]), np.array([300.0, 400.0]))
    frozen.requires_grad = False
    assert md.clip_grad_norm_([trainable, frozen], 1.0) == 5.0
    np.testing.assert_allclose(trainable.grad, [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(frozen.grad, [300.0, 400.0])
    md.clip_grad_value_([trainable, frozen], 0.5)
    np.testing.assert_array_equal(frozen.grad, [300.0, 400.0])


def test_a_non_finite_gradient_in_fit_names_the_parameter_as_the_model_does() -> None:
    class Blow(md.Layer):
        """y = x, with an inf gradient for its parameter."""

        def __init__(self) -> None:
            super().__init__()
            self.s = md.Parameter(np.ones(1))

        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            self.s.grad += np.inf
            return grad_output

    model = md.Sequential(md.Dense(2, 1, rng=0), Blow())
    before = model[0].W.data.copy()
    with pytest.raises(md.NonFiniteError, match=r"fit: epoch 1/1, batch 1/1 .*: clip_grad_norm: the total gradient "
                                                r"norm is inf: the gradient of parameter '1.s' \(shape \(1,\)\) "
                                                r"holds NaN/inf; nothing was clipped") as info:
        md.fit(model, np.ones((4, 2)), np.ones((4, 1)), loss=md.MSELoss(), verbose=0,
               optimizer=md.SGD(model.parameters(), lr=0.1), clip_grad_norm=1.0)
    assert "error_if_nonfinite" not in str(info.value)
    np.testing.assert_array_equal(model[0].W.data, before)


@pytest.mark.parametrize("norm_type, grad, expected", [
    (400.0, [0.1, 0.05], 0.1),  # |g|**400 underflows to 0: the norm read 0 and nothing was clipped
    (2.0, [1e-200, 1e-200], np.sqrt(2) * 1e-200),
    (2.0, [2e-162, 2e-162], np.sqrt(2) * 2e-162),  # a subnormal sum of squares: 11% off before
    (3.0, [0.0, 0.0], 0.0),
])
def test_a_norm_whose_sum_of_powers_underflows_is_scaled_too(norm_type, grad, expected) -> None:
    p = md.Parameter(np.zeros(2))
    p.grad = np.array(grad)
    total = md.clip_grad_norm_(p, 0.01, norm_type)
    assert total == pytest.approx(expected, rel=1e-12, abs=0)
    if expected > 0.01:
        np.testing.assert_allclose(p.grad, np.array(grad) * 0.01 / (expected + 1e-6), rtol=1e-12)


def test_a_float32_sum_of_squares_below_the_smallest_normal_float32_is_scaled() -> None:
    p = md.Parameter(np.zeros(1000, dtype=np.float32))
    p.grad = np.full(1000, 4e-23, dtype=np.float32)  # squares summed in float32: subnormal (6% off before)
    total = md.clip_grad_norm_(p, 1.0)
    assert total == pytest.approx(float(np.float32(4e-23)) * np.sqrt(1000), rel=1e-6)


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_read_only_gradients_are_clipped_into_copies_not_half_way(clip: str) -> None:
    """A read-only gradient (np.broadcast_to, which Parameter.grad accepts and the optimizers read)
    stopped clipping with "output array is read-only" after the gradients before it were scaled."""
    a, b, c = (md.Parameter(np.zeros(3)) for _ in range(3))
    a.grad = np.full(3, 10.0)
    b.grad = np.broadcast_to(np.array(10.0), (3,))
    c.grad = np.full(3, -10.0)
    kept = a.grad
    if clip == "norm":
        total = md.clip_grad_norm_([a, b, c], 1.0)
        assert total == pytest.approx(np.sqrt(900.0))
        expected = 10.0 * 1.0 / (np.sqrt(900.0) + 1e-6)
    else:
        md.clip_grad_value_([a, b, c], 0.5)
        expected = 0.5
    np.testing.assert_allclose(a.grad, expected, rtol=1e-12)
    np.testing.assert_allclose(b.grad, expected, rtol=1e-12)
    np.testing.assert_allclose(c.grad, -expected, rtol=1e-12)
    assert a.grad is kept and b.grad.flags.writeable  # in place where it can be; a new array where not
