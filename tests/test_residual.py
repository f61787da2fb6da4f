"""``Residual``: y = block(x) + shortcut(x), its back-pass through both paths, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok, states_equal


def dense_block(width: int, rng: int) -> md.Sequential:
    return md.Sequential(md.Dense(width, width, rng=rng), md.ReLU(), md.Dense(width, width, rng=rng + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("width", [1, 3, 7])
def test_identity_residual_passes_the_checker(width: int, seed: int) -> None:
    report = assert_gradients_ok(md.Residual(dense_block(width, seed)), seed=seed)
    assert {r.name for r in report.results} == {"input", "block.0.W", "block.2.W"}


@pytest.mark.parametrize("seed", [0, 3])
def test_residual_with_a_shortcut_inside_a_classifier_passes_the_checker(seed: int) -> None:
    model = md.Sequential(
        md.Dense(4, 6, rng=seed),
        md.Residual(md.Sequential(md.Dense(6, 3, rng=seed), md.Tanh()), shortcut=md.Dense(6, 3, rng=seed + 1)),
        md.Dense(3, 5, rng=seed + 2),
    )
    report = assert_gradients_ok(model, loss=md.CrossEntropyLoss(), seed=seed, batch_size=6)
    assert {"1.block.0.W", "1.shortcut.W"} <= {r.name for r in report.results}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 2, 5, 3)])
def test_convolutional_residual_block_passes_the_checker(shape: tuple[int, ...], seed: int) -> None:
    c = shape[1]
    block = md.Sequential(md.Conv2D(c, c, 3, padding=1, rng=seed), md.BatchNorm2d(c), md.ReLU(),
                          md.Conv2D(c, c, 3, padding=1, rng=seed + 1))
    x = np.random.default_rng(seed).standard_normal(shape)
    assert_gradients_ok(md.Residual(block), inputs=x, seed=seed)
    down = md.Residual(md.Conv2D(c, 2 * c, 3, stride=2, padding=1, rng=seed),
                       shortcut=md.Conv2D(c, 2 * c, 1, stride=2, rng=seed + 1))
    assert_gradients_ok(down, inputs=x, seed=seed)


def test_forward_and_backward_are_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3))
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    dense = md.Dense(3, 3, W=W)
    residual = md.Residual(dense)
    x_before, g_before = x.copy(), g.copy()
    np.testing.assert_allclose(residual(x), x @ W[1:] + W[0] + x, rtol=1e-14)
    dense.W.zero_grad()
    np.testing.assert_allclose(residual.backward(g), g @ W[1:].T + g, rtol=1e-14)
    np.testing.assert_allclose(dense.W.grad[1:], x.T @ g, rtol=1e-14)
    np.testing.assert_allclose(dense.W.grad[0], g.sum(axis=0), rtol=1e-14)
    assert np.array_equal(x, x_before) and np.array_equal(g, g_before)  # neither modified


def test_backward_params_adds_what_backward_adds() -> None:
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 2))
    grads = []
    for method in ("backward", "backward_params"):
        model = md.Residual(md.Dense(5, 2, rng=0), shortcut=md.Dense(5, 2, rng=1))
        model.zero_grad()
        model(x)
        assert (getattr(model, method)(g) is None) == (method == "backward_params")
        grads.append({name: p.grad.copy() for name, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys() == {"block.W", "shortcut.W"}
    for name in grads[0]:
        np.testing.assert_array_equal(grads[0][name], grads[1][name])


def test_a_block_returning_its_read_only_cache_is_not_written_into() -> None:
    residual = md.Residual(md.ReLU())  # ReLU returns its cached, read-only output
    x = np.array([[-1.0, 2.0]])
    y = residual(x)
    np.testing.assert_array_equal(y, [[-1.0, 4.0]])
    y[0, 0] = 0.0  # the result is the caller's own array
    np.testing.assert_array_equal(residual.backward(np.ones((1, 2))), [[1.0, 2.0]])


def test_fit_trains_a_residual_model() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = md.Sequential(md.Dense(6, 8, rng=0), md.Residual(dense_block(8, 1)), md.Dense(8, 2, rng=3))
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.01),
                        epochs=20, batch_size=16, metrics=["accuracy"], rng=0, verbose=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] >= 0.95


def test_state_dict_names_both_paths_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = md.Residual(dense_block(3, 0), shortcut=md.Dense(3, 3, rng=5))
    assert set(model.state_dict()) == {"block.0.W", "block.2.W", "shortcut.W", "block.0._layout",
                                       "block.2._layout", "shortcut._layout"}
    md.save(model.state_dict(), tmp_path / "r.npz")
    other = md.Residual(dense_block(3, 10), shortcut=md.Dense(3, 3, rng=11))
    assert not states_equal(model.state_dict(), other.state_dict())
    other.load_state_dict(md.load(tmp_path / "r.npz"))
    assert states_equal(model.state_dict(), other.state_dict())


def test_float32_stays_float32() -> None:
    model = md.Residual(dense_block(4, 0)).astype(np.float32)
    x = np.ones((2, 4), np.float32)
    assert model(x).dtype == np.float32
    assert model.backward(np.ones((2, 4), np.float32)).dtype == np.float32


# ---------------------------------------------------------------------------------------- refusals
def test_an_identity_shortcut_needs_the_block_to_keep_the_shape() -> None:
    residual = md.Residual(md.Dense(5, 3, rng=0))
    with pytest.raises(md.ShapeError, match=r"block's output has shape \(2, 3\) but the input \(identity "
                                            r"shortcut\) has shape \(2, 5\)"):
        residual(np.ones((2, 5)))


def test_a_forward_the_block_refuses_keeps_the_last_pass_for_backward() -> None:
    residual = md.Residual(md.Dense(3, 3, rng=0))
    residual(np.ones((2, 3)))
    with pytest.raises(md.NonFiniteError, match=r"Residual block: Dense\(3 -> 3\): input holds 1 NaN/inf"):
        residual(np.array([[1.0, np.nan, 0.0]]))
    assert residual.backward(np.ones((2, 3))).shape == (2, 3)  # still the last good pass


def test_a_forward_that_fails_after_the_block_ran_refuses_backward_until_a_good_one() -> None:
    residual = md.Residual(md.Tanh(), shortcut=md.Dense(3, 3, rng=1))  # Tanh takes any width
    residual(np.ones((2, 3)))
    with pytest.raises(md.ShapeError, match=r"Residual shortcut: Dense\(3 -> 3\): expected input of shape"):
        residual(np.ones((2, 4)))
    with pytest.raises(md.BackwardBeforeForwardError, match="last forward failed after the block ran"):
        residual.backward(np.ones((2, 3)))
    with pytest.raises(md.BackwardBeforeForwardError):
        residual.backward_params(np.ones((2, 3)))
    residual(np.ones((2, 3)))
    assert residual.backward(np.ones((2, 3))).shape == (2, 3)


def test_backward_before_forward_and_a_wrong_gradient_are_refused() -> None:
    residual = md.Residual(md.Dense(2, 2, rng=0))
    with pytest.raises(md.BackwardBeforeForwardError, match="before forward"):
        residual.backward(np.ones((1, 2)))
    residual(np.ones((3, 2)))
    with pytest.raises(md.ShapeError, match=r"Residual.backward: expected grad_output of shape \(3, 2\)"):
        residual.backward(np.ones((2, 2)))
    with pytest.raises(md.DTypeError, match=r"Residual\.backward: expected grad_output of dtype float64"):
        residual.backward(np.ones((3, 2), np.float32))


def test_a_layer_on_both_paths_and_non_layers_are_refused() -> None:
    dense = md.Dense(2, 2)
    with pytest.raises(ValueError, match="share a layer"):
        md.Residual(md.Sequential(dense, md.ReLU()), shortcut=dense)
    with pytest.raises(TypeError, match="Layer as block, got ufunc"):
        md.Residual(np.tanh)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Layer as shortcut, got int"):
        md.Residual(dense, shortcut=3)  # type: ignore[arg-type]


def test_mismatched_dtypes_of_the_two_paths_are_refused() -> None:
    residual = md.Residual(md.Sequential(md.Dense(2, 2, rng=0), md.Sigmoid()),
                           shortcut=_CastTo32())
    with pytest.raises(md.DTypeError, match="block's output is float64 but the shortcut's is float32"):
        residual(np.ones((1, 2)))


class _CastTo32(md.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output.astype(np.float64)


def test_random_inputs_come_from_the_block() -> None:
    class Tokens(md.Layer):  # a block whose input is integers
        def forward(self, x: np.ndarray) -> np.ndarray:
            return x

        def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
            return rng.integers(0, 3, size=shape)

    drawn = md.Residual(Tokens()).random_inputs((2, 4), np.random.default_rng(0))
    np.testing.assert_array_equal(drawn, np.random.default_rng(0).integers(0, 3, size=(2, 4)))
    floats = md.Residual(md.Dense(4, 4)).random_inputs((2, 4), np.random.default_rng(0))
    np.testing.assert_array_equal(floats, np.random.default_rng(0).standard_normal((2, 4)))


def test_a_layer_inside_a_nested_residual_is_seen_by_the_used_twice_checks() -> None:
    """A Residual runs its block and shortcut for sure: a layer inside one, used again elsewhere in
    the same pass, would back-propagate through the wrong cache (it was accepted, and the checker
    failed it)."""
    dense = md.Dense(3, 3, rng=0)
    with pytest.raises(ValueError, match="share a layer"):
        md.Residual(md.Sequential(md.Tanh(), md.Residual(dense)), shortcut=dense)
    other = md.Dense(3, 3, rng=1)
    with pytest.raises(ValueError, match="already in the sequence"):
        md.Sequential(md.Residual(other), md.Tanh(), other)


def test_a_big_endian_input_adds_to_the_blocks_native_output() -> None:
    x = np.array([[0.5, -1.0]], dtype=">f8")
    y = md.Residual(md.Tanh())(x)
    np.testing.assert_array_equal(y, np.tanh([[0.5, -1.0]]) + np.array([[0.5, -1.0]]))


def _head_gradient_after(model: md.Sequential, bad: np.ndarray) -> np.ndarray:
    """The last layer's gradient from a backward of the good pass, after a forward refused ``bad``."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    y = model(x)
    with pytest.raises(md.MinidlError):
        model(bad)
    model.zero_grad()
    model.backward(np.ones_like(y))
    return model[-1].W.grad.copy()


def test_a_first_container_that_refused_before_running_anything_keeps_the_good_pass() -> None:
    """The refusal of a backward after a failed forward is for caches of two passes: a first layer
    that is a container, refusing the input before any of its layers ran, changed none (it was
    refused all the same for a while, where the flat Sequential(Dense, ReLU, Dense) was not)."""
    nan = np.full((4, 3), np.nan)
    for first in (md.Sequential(md.Dense(3, 3, rng=0), md.ReLU()), md.Residual(md.Dense(3, 3, rng=0))):
        model = md.Sequential(first, md.Dense(3, 2, rng=1))
        fresh = md.Sequential(copy_of(first), md.Dense(3, 2, rng=1))
        x = np.random.default_rng(0).standard_normal((4, 3))
        fresh.zero_grad()
        fresh.backward(np.ones_like(fresh(x)))
        np.testing.assert_array_equal(_head_gradient_after(model, nan), fresh[-1].W.grad)
    partly = md.Sequential(md.Sequential(md.Tanh(), md.Dense(3, 4, rng=2)), md.Dense(4, 2, rng=1))
    partly(np.ones((4, 3)))
    with pytest.raises(md.ShapeError):
        partly(np.ones((4, 5)))  # the Tanh ran (a new cache), the Dense refused: two passes now
    with pytest.raises(md.BackwardBeforeForwardError, match="failed at layer '0'"):
        partly.backward(np.ones((4, 2)))


def copy_of(layer: md.Layer) -> md.Layer:
    import copy

    return copy.deepcopy(layer)


def test_reassigning_a_path_forgets_the_last_forward_and_a_deleted_path_can_be_set_again() -> None:
    """A backward after ``r.shortcut = new`` went through the block's cache and the new shortcut's
    (another pass, or none: the block's gradient was added before the shortcut refused)."""
    r = md.Residual(md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1))
    r(np.ones((2, 3)))
    r.shortcut = md.Dense(3, 3, rng=2)
    r.zero_grad()
    with pytest.raises(md.BackwardBeforeForwardError, match="before forward"):
        r.backward(np.ones((2, 3)))
    assert not r.block.W.has_grad
    del r.block
    r.block = md.Dense(3, 3, rng=3)
    assert r(np.ones((2, 3))).shape == (2, 3)
