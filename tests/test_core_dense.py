"""Dense: the absorbed bias, its closed-form back-pass, initialisation, dtypes and bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.testing import assert_gradients_ok


def augmented(x: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((x.shape[0], 1), dtype=x.dtype), x])


@pytest.mark.parametrize("n, fin, fout, seed", [(1, 1, 1, 0), (4, 5, 1, 1), (7, 3, 6, 2), (16, 10, 4, 3)])
def test_forward_is_augmented_matmul_and_backward_is_closed_form(n: int, fin: int, fout: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = md.Dense(fin, fout, rng=rng)
    x = rng.normal(size=(n, fin))
    g = rng.normal(size=(n, fout))
    W = layer.W.data
    assert W.shape == (fin + 1, fout)
    np.testing.assert_allclose(layer(x), augmented(x) @ W, rtol=1e-13, atol=1e-13)
    dx = layer.backward(g)
    np.testing.assert_allclose(layer.W.grad, augmented(x).T @ g, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dx, g @ W[1:].T, rtol=1e-13, atol=1e-13)


def test_without_bias() -> None:
    rng = np.random.default_rng(0)
    layer = md.Dense(3, 2, bias=False, rng=rng)
    x, g = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    assert layer.W.shape == (3, 2)
    np.testing.assert_allclose(layer(x), x @ layer.W.data)
    np.testing.assert_allclose(layer.backward(g), g @ layer.W.data.T)
    np.testing.assert_allclose(layer.W.grad, x.T @ g)
    assert layer.bias_row is None


def test_exact_initial_values_and_seeded_init() -> None:
    init = np.arange(12.0).reshape(4, 3)
    layer = md.Dense(3, 3, W=init)
    np.testing.assert_array_equal(layer.W.data, init)
    assert layer.W.data is not init
    np.testing.assert_array_equal(layer.bias_row, init[0])
    np.testing.assert_array_equal(layer.weight, init[1:])
    np.testing.assert_array_equal(md.Dense(4, 5, rng=42).W.data, md.Dense(4, 5, rng=42).W.data)
    assert not np.array_equal(md.Dense(4, 5, rng=1).W.data, md.Dense(4, 5, rng=2).W.data)
    bound = 1 / np.sqrt(400)
    assert np.abs(md.Dense(400, 50, rng=0).W.data).max() <= bound
    he = md.Dense(400, 50, init="he", rng=0)
    assert np.all(he.W.data[0] == 0)
    assert abs(he.W.data[1:].std() - np.sqrt(2 / 400)) < 0.01
    with pytest.raises(md.ShapeError, match=r"expected W of shape \(4, 3\), got \(3, 3\)"):
        md.Dense(3, 3, W=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown init"):
        md.Dense(3, 3, init="magic")
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        md.Dense(0, 3)


def test_float32_stays_float32() -> None:
    layer = md.Dense(4, 2, rng=0, dtype=np.float32)
    x = np.ones((3, 4), dtype=np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and layer.W.data.dtype == np.float32
    dx = layer.backward(np.ones((3, 2), dtype=np.float32))
    assert dx.dtype == np.float32 and layer.W.grad.dtype == np.float32


def test_cast_whole_model() -> None:
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Sigmoid(), md.Dense(3, 1, rng=1)).astype(np.float32)
    assert model(np.ones((2, 4), dtype=np.float32)).dtype == np.float32


def test_rebinding_parameter_arrays_is_seen_at_call_time() -> None:
    layer = md.Dense(2, 1, W=np.zeros((3, 1)))
    x = np.array([[1.0, 2.0]])
    layer.W.data = np.array([[1.0], [10.0], [100.0]])
    np.testing.assert_array_equal(layer(x), [[211.0]])
    layer.W.grad = np.zeros((3, 1))
    layer.backward(np.ones((1, 1)))
    np.testing.assert_array_equal(layer.W.grad, [[1.0], [1.0], [2.0]])


@pytest.mark.parametrize(
    "x, error, pattern",
    [
        (np.ones((4, 6)), md.ShapeError,
         r"Dense\(5 -> 1\): expected input of shape \(N, \.\.\., 5\), got shape \(4, 6\)"),
        (np.ones((2, 4, 6)), md.ShapeError,
         r"Dense\(5 -> 1\): expected input of shape \(N, \.\.\., 5\), got shape \(2, 4, 6\)"),
        (np.ones(5), md.ShapeError, r"expected a 2-D \(or higher\) input of shape \(N, \.\.\., 5\), got shape \(5,\)"),
        (np.ones((4, 5), dtype=np.int64), md.DTypeError, "floating-point input, got dtype int64"),
        (np.array([["a"] * 5]), md.DTypeError, "floating-point input"),
        (np.full((2, 5), np.nan), md.NonFiniteError, r"NaN/inf.*index \(0, 0\)"),
        (np.ones((2, 5), dtype=np.float32), md.DTypeError, "does not match the layer's parameters"),
        ("not an array", md.DTypeError, "numpy array"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(x: object, error: type, pattern: str) -> None:
    layer = md.Dense(5, 1, rng=0)
    before = layer.W.data.copy()
    with pytest.raises(error, match=pattern):
        layer(x)  # type: ignore[arg-type]
    np.testing.assert_array_equal(layer.W.data, before)
    assert np.all(layer.W.grad == 0)
    assert issubclass(error, (ValueError, TypeError))


def test_inputs_off_the_fast_path_are_checked_like_any_other() -> None:
    """forward takes a shortcut for a plain ndarray of the layer's exact dtype object; anything else
    goes through the full check: an equal dtype with metadata and an ndarray subclass are accepted,
    a byte-swapped dtype is refused, and NaN/inf is refused on either path."""
    layer = md.Dense(3, 2, rng=0)
    x = np.arange(6.0).reshape(2, 3)
    expected = x @ layer.weight + layer.bias_row
    with_metadata = x.astype(np.dtype(np.float64, metadata={"unit": "m"}))
    assert with_metadata.dtype is not layer.W.data.dtype
    np.testing.assert_array_equal(layer(with_metadata), expected)

    class Sub(np.ndarray):
        pass

    np.testing.assert_array_equal(layer(x.view(Sub)), expected)
    np.testing.assert_array_equal(layer(x.tolist()), expected)
    swapped = np.dtype(np.float64).newbyteorder()
    with pytest.raises(md.DTypeError, match=rf"{re.escape(swapped.str)} does not match the layer's parameters "
                                            r"\(float64\): it is float64 in the other byte order; convert the "
                                            r"input \(x.astype\(np.float64\)\)"):
        layer(x.astype(swapped))
    for bad in (x.copy(), x.view(Sub).copy()):
        bad[1, 2] = -np.inf
        with pytest.raises(md.NonFiniteError, match=r"index \(1, 2\)"):
            layer(bad)
    np.testing.assert_array_equal(layer._x, x.tolist())  # the last accepted input, not a refused one


def test_backward_before_forward_and_wrong_grad_shape() -> None:
    layer = md.Dense(3, 2, rng=0)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"Dense\.backward called before forward"):
        layer.backward(np.ones((4, 2)))
    layer(np.ones((4, 3)))
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(4, 2\), got \(4, 3\)"):
        layer.backward(np.ones((4, 3)))
    assert np.all(layer.W.grad == 0)


def test_overflowing_but_finite_input_is_accepted() -> None:
    layer = md.Dense(2, 1, W=np.zeros((3, 1)))
    x = np.array([[1e308, 1e308]])  # the sum overflows; every element is finite
    assert layer(x).shape == (1, 1)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float16, np.float32, np.float64]), bias=st.booleans(),
       fin=st.integers(1, 300), fout=st.integers(1, 40), n=st.integers(1, 40), lead=st.sampled_from([(), (3,)]),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), weights=st.sampled_from(["random", "zero row", "zeros"]))
def test_nan_or_inf_is_refused_before_the_product(data, dtype, bias, fin, fout, n, lead, bad, weights) -> None:
    """NaN/inf anywhere in the input is refused at its first index, before the product (so that no
    NumPy warning about inf * 0 comes first, which ``-W error`` would raise instead of the precise
    error), whatever the weights, and the layer keeps the last accepted input; a clean input gives
    the product exactly."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    W = rng.normal(size=(fin + bias, fout))
    cells = [tuple(data.draw(st.integers(0, size - 1)) for size in (n, *lead, fin))
             for _ in range(data.draw(st.integers(1, 3)))]
    if weights == "zeros":
        W[:] = 0
    elif weights == "zero row":  # the weights of the first bad feature
        W[int(bias) + cells[0][-1]] = 0
    layer = md.Dense(fin, fout, bias=bias, W=W, dtype=dtype)
    good = rng.uniform(-1, 1, size=(n, *lead, fin)).astype(dtype)  # (no float16 overflow)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer(good)
        expected = good.reshape(-1, fin) @ (layer.W.data[1:] if bias else layer.W.data)
        if bias:
            expected += layer.W.data[0]
        np.testing.assert_array_equal(out, expected.reshape(*good.shape[:-1], fout))
        x = good.copy()
        for cell in cells:
            x[cell] = bad
        with pytest.raises(md.NonFiniteError, match=re.escape(
                f"Dense({fin} -> {fout}): input holds {len(set(cells))} NaN/inf value(s), the first at index "
                f"{min(cells)}")):
            layer(x)
    assert layer._x is good


@pytest.mark.parametrize("value, overflows", [(1e30, False), (1e36, True)])
def test_a_large_finite_input_whose_squares_or_output_overflow_is_accepted(value: float, overflows: bool) -> None:
    """The finite check's sum of squares overflows (1e60 and 1e72 in float32): the input is then
    searched, found finite, and accepted, whether or not the output overflows too (1e39 in float32;
    the loss refuses a non-finite prediction later)."""
    x = np.full((16, 1000), value, np.float32)
    layer = md.Dense(1000, 2, W=np.ones((1001, 2)), dtype=np.float32)
    with np.errstate(over="ignore"):
        out = layer(x)
    assert np.isposinf(out).all() if overflows else np.isfinite(out).all()
    assert layer._x is x


@pytest.mark.parametrize("fin, fout, bias, seed", [(5, 1, True, 0), (3, 4, True, 1), (4, 2, False, 2), (1, 3, True, 3)])
def test_gradient_checker_passes_on_dense(fin: int, fout: int, bias: bool, seed: int) -> None:
    report = md.GradientChecker(md.Dense(fin, fout, bias=bias, rng=seed), seed=seed).run()
    assert report.passed, str(report)
    assert {r.name for r in report.results} == {"W", "input"}
    for record in report.results:
        assert record.max_rel_error < 1e-6


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, "U3", "not a dtype"])
def test_non_float_parameter_dtype_is_refused(dtype: object) -> None:
    with pytest.raises(md.DTypeError, match="Dense"):
        md.Dense(3, 2, dtype=dtype)  # type: ignore[arg-type]


def test_an_interrupted_gradient_write_leaves_the_gradient_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = md.Dense(3, 2, rng=0)
    x, g = np.ones((4, 3)), np.ones((4, 2))
    layer(x)
    layer.backward(g)  # some old gradient
    layer.zero_grad()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "matmul", interrupted)
    with pytest.raises(KeyboardInterrupt):
        layer.backward_params(g)
    monkeypatch.undo()
    assert np.all(layer.W.grad == 0)


def test_astype_after_zero_grad_does_not_convert_old_values() -> None:
    layer = md.Dense(2, 2, rng=0)
    layer.W.grad[...] = 1e300  # too big for float32
    layer.zero_grad()
    with np.errstate(over="raise"):
        layer.astype(np.float32)
    assert layer.W.grad.dtype == np.float32 and np.all(layer.W.grad == 0)


@pytest.mark.parametrize("W, dtype, error, match", [
    (np.full((3, 2), np.nan), np.float64, md.NonFiniteError, r"Dense\(2 -> 2, bias=True\): W holds 6 NaN/inf"),
    (np.ones((3, 2), complex), np.float64, md.DTypeError, "W must hold real numbers, got dtype complex128"),
    ([["1", "2"], ["3", "4"], ["5", "6"]], np.float64, md.DTypeError, "W must hold real numbers, got dtype <U1"),
    (np.full((3, 2), 1e300), np.float32, md.NonFiniteError, r"W holds 6 NaN/inf value\(s\) \(in float32\)"),
])
def test_exact_initial_weights_must_be_finite_real_numbers(W, dtype, error, match):
    """NaN weights were accepted (load_state_dict refuses them), complex ones lost their imaginary part
    with a warning, strings were parsed; 1e300 became inf in float32."""
    with pytest.raises(error, match=match):
        md.Dense(2, 2, W=W, dtype=dtype)


@pytest.mark.parametrize("make", [
    lambda: md.Dense(3, 2, bias="no"), lambda: md.Conv2D(1, 1, 3, bias=0),
    lambda: md.BatchNorm1d(3, affine="False"), lambda: md.BatchNorm2d(3, track_running_stats=None),
    lambda: md.LayerNorm(3, elementwise_affine=[]),
])
def test_an_on_off_argument_must_be_a_bool(make):
    """bool("no") is True: Dense(3, 2, bias="no") had a bias."""
    with pytest.raises(TypeError, match=r"must be True or False, got"):
        make()


@pytest.mark.parametrize("slope", ["0.2", float("nan"), float("inf"), None, True])
def test_leaky_relu_slope_must_be_a_finite_number(slope):
    # not a number: TypeError; NaN or inf: ValueError (a float of a wrong value)
    error = ValueError if isinstance(slope, float) else TypeError
    with pytest.raises(error, match="negative_slope must be a finite number"):
        md.LeakyReLU(slope)


@pytest.mark.parametrize("layer", [md.ReLU(), md.Sigmoid(), md.Tanh(), md.GELU(), md.LeakyReLU(), md.Softmax(),
                                   md.ELU(), md.SiLU(), md.Softplus()])
def test_a_big_endian_input_can_be_back_propagated(layer):
    """The output is native-endian, but the backward expected a big-endian grad_output: no gradient
    could pass (and the message's advice, g.astype(y.dtype), did not help)."""
    x = np.linspace(-2, 2, 12).reshape(3, 4).astype(">f8")
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    reference = type(layer)()
    reference(x.astype("<f8"))
    np.testing.assert_array_equal(dx, reference.backward(np.ones((3, 4))))


# ---------------------------------------------------------------------------------------------- leading axes
@pytest.mark.parametrize("lead", [(2, 3), (1, 4, 2), (3, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_more_leading_axes_are_rows_of_their_own(lead: tuple[int, ...], bias: bool) -> None:
    """x: (N, ..., in) -> (N, ..., out), as PyTorch's Linear: the same as the 2-D layer on the flattened rows."""
    rng = np.random.default_rng(len(lead))
    nd, flat = md.Dense(4, 3, bias=bias, rng=0), md.Dense(4, 3, bias=bias, rng=0)
    x = rng.normal(size=(*lead, 4))
    y = nd(x)
    assert y.shape == (*lead, 3)
    np.testing.assert_array_equal(y, flat(x.reshape(-1, 4)).reshape(*lead, 3))
    g = rng.normal(size=y.shape)
    dx = nd.backward(g)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, flat.backward(g.reshape(-1, 3)).reshape(x.shape), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(nd.W.grad, flat.W.grad, rtol=1e-13, atol=1e-15)
    nd.zero_grad()
    nd.backward_params(g)
    np.testing.assert_allclose(nd.W.grad, flat.W.grad, rtol=1e-13, atol=1e-15)
    assert_gradients_ok(nd, inputs=x, seed=1)


def test_leading_axes_from_a_non_contiguous_input_and_refused_gradients() -> None:
    layer = md.Dense(3, 2, rng=0)
    x = np.random.default_rng(0).normal(size=(5, 4, 3)).transpose(1, 0, 2)  # time-major, read batch-first
    before = x.copy()
    y = layer(x)
    np.testing.assert_array_equal(y, layer(np.ascontiguousarray(x)))
    assert_gradients_ok(layer, inputs=x, seed=0)
    np.testing.assert_array_equal(x, before)
    layer(x)
    with pytest.raises(md.ShapeError, match=r"Dense\(3 -> 2\)\.backward: expected grad_output of shape \(4, 5, 2\), "
                                            r"got \(20, 2\)"):
        layer.backward(np.ones((20, 2)))
    layer.requires_grad_(False)
    assert layer.backward(np.ones((4, 5, 2))).shape == (4, 5, 3)


def test_leading_axes_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = md.Dense(5, 3, rng=0)
    x = rng.normal(size=(2, 4, 5))
    linear = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(layer.weight.T))
        linear.bias.copy_(torch.tensor(layer.bias_row))
    xt = torch.tensor(x, requires_grad=True)
    yt = linear(xt)
    g = rng.normal(size=(2, 4, 3))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer(x), yt.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.W.grad[1:], linear.weight.grad.numpy().T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(layer.W.grad[0], linear.bias.grad.numpy(), rtol=1e-13, atol=1e-14)


# ------------------------------------------- W rebound to another shape: refused before the forward keeps x
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(), (2,)])
def test_a_w_with_other_rows_is_refused_before_the_cache_is_touched(bias: bool, leading: tuple[int, ...]) -> None:
    """W's shape is compared once, before the product: a W with the right columns but other rows used to be
    refused by the product's ValueError, after ``_x`` had been set to the refused batch's input; now the layer
    is left as it was (its cache still the last good forward's, its backward still that forward's)."""
    layer = md.Dense(3, 2, bias=bias, rng=0)
    good = np.arange(12.0).reshape(*leading, -1, 3)  # (4, 3) or (2, 2, 3)
    layer(good)
    cached = layer._x
    W = layer.W.data
    layer.W.data = np.ones((6, 2))
    built = (4, 2) if bias else (3, 2)
    rows = "in_features + 1 rows, the bias first" if bias else "in_features rows"
    with pytest.raises(md.ShapeError) as refused:
        layer(np.ones((5, *leading, 3)))
    assert str(refused.value) == (f"Dense(3 -> 2): W.data has shape (6, 2), but the layer was built for {built} "
                                  f"({rows}, out_features columns); its sizes are fixed: build a new Dense of the "
                                  "sizes you want")
    assert layer._x is cached
    layer.W.data = W
    layer.zero_grad()
    g = np.ones((*good.shape[:-1], 2))
    layer.backward(g)
    expected = good.reshape(-1, 3).T @ g.reshape(-1, 2)
    np.testing.assert_array_equal(layer.W.grad[1:] if bias else layer.W.grad, expected)


@pytest.mark.parametrize("shape", [(8,), (2, 3, 3)])
def test_a_w_of_another_number_of_axes_is_the_same_shape_error(shape: tuple[int, ...]) -> None:
    """A 1-D W was an IndexError (W.shape[1]); a 3-D W of the right last two axes broadcast in the product,
    an output of shape (2, 4, 3) from a Dense(3 -> 3).  Both are the ShapeError of any other shape now."""
    layer = md.Dense(3, 3, bias=False, rng=0)
    layer.W.data = np.ones(shape)
    with pytest.raises(md.ShapeError, match=re.escape(f"Dense(3 -> 3): W.data has shape {shape}, but the layer was "
                                                      "built for (3, 3) (in_features rows")):
        layer(np.ones((4, 3)))
    assert layer._x is None


def test_a_dense_pickled_before_the_built_shape_was_kept_still_runs() -> None:
    """``_W_shape`` (what the forward compares W's shape with) is made again for a Dense pickled without it."""
    layer = md.Dense(3, 2, rng=0)
    state = dict(layer.__dict__)
    del state["_W_shape"]
    old = md.Dense.__new__(md.Dense)
    old.__setstate__(state)
    x = np.ones((4, 3))
    np.testing.assert_array_equal(old(x), layer(x))
    old.W.data = np.ones((6, 2))
    with pytest.raises(md.ShapeError, match=r"built for \(4, 2\)"):
        old(x)
