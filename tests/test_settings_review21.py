"""Review 21: Dense's sizes are fixed settings, Parameter.data is checked when rebound, an optimizer's lr has
one rule (constructor and setter), fit names an optimizer class as it names a loss class; and the claims of
docs/custom-layers.md about adding into ``.grad`` (a shared parameter, a layer called twice, two backwards)."""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import numpy as np
import pytest

import minidl as md

OPTIMIZERS = ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "Rprop"]


def _optimizer(name: str, params: Any, lr: Any) -> md.Optimizer:
    return getattr(md, name)(params, lr=lr)


# ------------------------------------------------------------------------------------- Dense's sizes
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("name", "value", "now"), [("in_features", 7, 3), ("out_features", 5, 2),
                                                     ("bias", None, None)])
def test_a_dense_size_set_to_another_value_is_refused_and_the_layer_unchanged(name: str, value: Any, now: Any,
                                                                              bias: bool, capsys: Any) -> None:
    layer = md.Dense(3, 2, bias=bias, rng=0)
    if name == "bias":
        value, now = not bias, bias
    x = np.random.default_rng(1).normal(size=(4, 3))
    before, W, text = layer(x), layer.W.data.copy(), repr(layer)
    with pytest.raises(ValueError, match=rf"^Dense: {name} cannot be changed after construction \(the weight "
                                         rf"matrix W was built for it, and an optimizer or a checkpoint holds W\); "
                                         rf"got {value!r}, it is {now!r}: build a new Dense$"):
        setattr(layer, name, value)
    assert getattr(layer, name) == now and repr(layer) == text
    np.testing.assert_array_equal(layer.W.data, W)
    np.testing.assert_array_equal(layer(x), before)
    capsys.readouterr()
    md.Sequential(layer).summary()  # (it met a raw matmul error)
    assert "(None, 2)" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "value", "message"), [
    ("in_features", 0, "Dense: in_features must be a positive int, got 0"),
    ("in_features", 2.0, "Dense: in_features must be a positive int, got 2.0"),
    ("out_features", "2", "Dense: out_features must be a positive int, got '2'"),
    ("out_features", True, "Dense: out_features must be a positive int, got True"),
    ("bias", 1, "Dense: bias must be True or False, got 1"),
    ("bias", "no", "Dense: bias must be True or False, got 'no'"),
])
def test_a_dense_size_set_to_a_bad_value_gets_the_constructor_s_message(name: str, value: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as made:
        md.Dense(**{"in_features": 3, "out_features": 2, "bias": True, name: value})
    assert str(made.value) == message
    layer = md.Dense(3, 2, rng=0)
    with pytest.raises(type(made.value)) as set_:
        setattr(layer, name, value)
    assert str(set_.value) == message
    assert (layer.in_features, layer.out_features, layer.bias) == (3, 2, True)


def test_a_dense_size_set_to_its_own_value_is_accepted_and_numpy_ints_read_as_ints() -> None:
    layer = md.Dense(np.int64(3), np.int32(2), bias=np.bool_(True), rng=0)  # type: ignore[arg-type]
    layer.in_features, layer.out_features, layer.bias = 3, np.int16(2), True
    assert (layer.in_features, layer.out_features, layer.bias) == (3, 2, True)
    assert type(layer.in_features) is int and type(layer.out_features) is int and type(layer.bias) is bool


def test_a_subclass_is_named_in_the_refusal_and_a_second_init_starts_afresh() -> None:
    class Wide(md.Dense):
        pass

    layer = Wide(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"^Wide: out_features cannot be changed after construction .* build a new "
                                         r"Wide$"):
        layer.out_features = 4
    layer.__init__(5, 4, bias=False, rng=1)  # type: ignore[misc]  # (Layer supports a second __init__)
    assert (layer.in_features, layer.out_features, layer.bias, layer.W.shape) == (5, 4, False, (5, 4))
    x = np.random.default_rng(2).normal(size=(3, 5))
    np.testing.assert_allclose(layer(x), x @ layer.W.data)
    assert repr(layer) == "Wide(in_features=5, out_features=4, bias=False)"


def test_a_dense_pickled_with_plain_size_attributes_loads_and_a_copy_keeps_its_sizes_fixed() -> None:
    layer = md.Dense(3, 2, rng=0)
    x = np.random.default_rng(1).normal(size=(4, 3))
    state = dict(layer.__getstate__())
    for name in ("in_features", "out_features", "bias"):  # as an older minidl pickled them
        state[name] = state.pop("_" + name)
    old = md.Dense.__new__(md.Dense)
    old.__setstate__(state)
    for twin in (old, copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert (twin.in_features, twin.out_features, twin.bias) == (3, 2, True)
        np.testing.assert_array_equal(twin(x), layer(x))
        with pytest.raises(ValueError, match="in_features cannot be changed"):
            twin.in_features = 4


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4, 3), (4, 5, 3)])
def test_w_data_rebound_to_another_shape_is_a_shape_error_naming_both_shapes(bias: bool, x_shape: tuple) -> None:
    layer = md.Dense(3, 2, bias=bias, rng=0)
    built = (4, 2) if bias else (3, 2)
    layer.W.data = np.ones((6, 2))  # (taken: a custom lazy layer may fill a placeholder so)
    rows = "in_features + 1 rows, the bias first" if bias else "in_features rows"
    with pytest.raises(md.ShapeError) as refused:
        layer(np.ones(x_shape))
    assert str(refused.value) == (f"Dense(3 -> 2): W.data has shape (6, 2), but the layer was built for {built} "
                                  f"({rows}, out_features columns); its sizes are fixed: build a new Dense of the "
                                  "sizes you want")
    with pytest.raises(md.ShapeError, match=r"W.data has shape \(6, 2\)"):
        md.Sequential(layer).summary()


# ------------------------------------------------------------------------------------- Parameter.data
@pytest.mark.parametrize(("make", "got"), [
    (lambda: [[0.0, 0.0]] * 4, "got a list: pass np.asarray(value, dtype=np.float64)"),
    (lambda: 0.5, "got a float: pass np.asarray(value, dtype=np.float64)"),
    (lambda: np.float64(0.5), "got a float64: pass np.asarray(value, dtype=np.float64)"),
    (lambda: np.ones((4, 2), dtype=np.int64), "got an ndarray of dtype int64: cast it, e.g. value.astype(np.float64)"),
    (lambda: np.ones((4, 2), dtype=bool), "got an ndarray of dtype bool: cast it, e.g. value.astype(np.float64)"),
    (lambda: np.ones((4, 2), dtype=complex), "got an ndarray of dtype complex128: cast it, e.g. "
                                     "value.astype(np.float64)"),
    (lambda: np.asmatrix(np.ones((4, 2))), "got a matrix: pass np.asarray(value)"),
    (lambda: np.ma.masked_array(np.ones((4, 2))), "got a MaskedArray: pass np.asarray(value)"),
])
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix)
def test_parameter_data_refuses_what_is_not_a_floating_ndarray_and_stays(make: Any, got: str) -> None:
    layer, value = md.Dense(3, 2, rng=0), make()
    data = layer.W.data
    with pytest.raises(md.DTypeError) as refused:
        layer.W.data = value
    assert str(refused.value) == ("Parameter.data must be a floating-point ndarray (the parameter holds float64 "
                                  f"of shape (4, 2)), {got}")
    assert isinstance(refused.value, TypeError)
    assert layer.W.data is data
    assert layer(np.ones((1, 3))).shape == (1, 2)


def test_parameter_data_takes_another_float_dtype_and_an_ndarray_subclass_as_they_are(tmp_path: Any) -> None:
    p = md.Parameter(np.zeros((2, 3)))
    half = np.ones((2, 3), np.float32)
    p.data = half
    assert p.data is half and p.dtype == np.float32
    mapped = np.memmap(tmp_path / "w.bin", dtype=np.float64, mode="w+", shape=(2, 3))
    p.data = mapped
    assert p.data is mapped
    p.data = np.ones(5)  # another shape: a custom layer's placeholder filled (documented); the old grad waits
    p.zero_grad()
    assert p.grad.shape == (5,)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_an_optimizer_step_updates_the_data_array_in_place_without_rebinding_it(name: str) -> None:
    p = md.Parameter(np.linspace(-1.0, 1.0, 6).reshape(2, 3))
    data, start = p.data, p.data.copy()
    opt = _optimizer(name, [p], 0.1)
    for _ in range(3):
        p.grad = np.full((2, 3), 0.5)
        opt.step()
    assert p.data is data and not np.array_equal(data, start)


# ------------------------------------------------------------------------------------- optimizer lr
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_lr_zero_is_accepted_by_the_constructor_as_by_the_setter(name: str) -> None:
    p = md.Parameter(np.array([1.0, -2.0, 3.0]))
    opt = _optimizer(name, [p], 0)
    assert opt.lr == 0.0 and type(opt.lr) is float
    for _ in range(3):
        p.grad = np.array([0.5, -0.5, 1.0])
        opt.step()
    if name == "Rprop":  # (as PyTorch's: its step sizes start at lr, clipped to step_sizes' minimum 1e-6)
        np.testing.assert_allclose(p.data, [1.0, -2.0, 3.0] - np.sign([0.5, -0.5, 1.0]) * (1e-6 + 1.2e-6 + 1.44e-6))
    else:
        np.testing.assert_array_equal(p.data, [1.0, -2.0, 3.0])
    opt.lr = 0.0
    assert opt.lr == 0.0


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize(("lr", "error", "message"), [
    (-1.0, ValueError, "lr must be a finite number >= 0, got -1.0"),
    (-1, ValueError, "lr must be a finite number >= 0, got -1"),
    (math.nan, ValueError, "lr must be a finite number >= 0, got nan"),
    (math.inf, ValueError, "lr must be a finite number >= 0, got inf"),
    (10**400, ValueError, "lr must be a finite number, got 1"),
    ("0.1", TypeError, "lr must be a number, got str '0.1'"),
    (None, TypeError, "lr must be a number, got NoneType None"),
    (True, TypeError, "lr must be a number, got bool True"),
])
def test_the_constructor_and_the_setter_refuse_an_lr_with_one_message(name: str, lr: Any, error: type,
                                                                      message: str) -> None:
    with pytest.raises(error) as made:
        _optimizer(name, [md.Parameter(np.zeros(2))], lr)
    opt = _optimizer(name, [md.Parameter(np.zeros(2))], 0.5)
    with pytest.raises(error) as set_:
        opt.lr = lr
    assert str(made.value) == str(set_.value)
    assert str(made.value).startswith(f"{name}: {message}")
    assert opt.lr == 0.5


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_lr_zero_matches_pytorch(name: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start, grads = rng.normal(size=(3, 4)), rng.normal(size=(5, 3, 4))
    p = md.Parameter(start.copy())
    opt = _optimizer(name, [p], 0.0)
    tp = torch.nn.Parameter(torch.tensor(start))
    topt = getattr(torch.optim, name)([tp], lr=0.0)
    for g in grads:
        p.grad = g.copy()
        opt.step()
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_fit_names_an_optimizer_class_as_it_names_a_loss_class() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0))
    x, y = np.ones((4, 3)), np.zeros(4, dtype=np.int64)
    with pytest.raises(TypeError, match=r"^fit: optimizer must be a minidl Optimizer instance \(e.g. "
                                        r"Adam\(model.parameters\(\)\)\), got the class Adam$"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam, verbose=0)
    with pytest.raises(TypeError, match=r"got the class CrossEntropyLoss$"):
        model.fit(x, y, loss=md.CrossEntropyLoss, optimizer=md.Adam(model.parameters()),
                  verbose=0)
    with pytest.raises(TypeError, match=r"\), got str$"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer="adam", verbose=0)


# ------------------------------------------------------------- docs/custom-layers.md: adding into .grad
class _Shared(md.Model):
    """Two Dense layers sharing one parameter: ``y = d2(tanh(d1(x)))`` with ``d2.W is d1.W``."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        self.d1, self.t, self.d2 = md.Dense(width, width, rng=seed), md.Tanh(), md.Dense(width, width, rng=seed + 1)
        self.d2.W = self.d1.W

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d2(self.t(self.d1(x)))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.d1.backward(self.t.backward(self.d2.backward(g)))


class _Twice(_Shared):
    """One Dense called twice in the pass: ``y = d(tanh(d(x)))``, as docs/custom-layers.md warns."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.d1(self.t(self.d1(x)))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.d1.backward(self.t.backward(self.d1.backward(g)))


@pytest.mark.parametrize(("width", "n", "seed"), [(3, 4, 0), (5, 2, 1), (2, 6, 2)])
def test_a_parameter_shared_by_two_layers_gets_the_sum_of_both_uses(width: int, n: int, seed: int) -> None:
    model = _Shared(width, seed)
    x = np.random.default_rng(seed).normal(size=(n, width))
    report = md.GradientChecker(model, inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input", "d1.W"]  # one parameter, listed once
    g = np.random.default_rng(seed + 10).normal(size=(n, width))  # the sum, by hand: each use's own gradient
    model.zero_grad()
    h = model.t(model.d1(x))
    W = model.d1.W.data
    second = np.vstack([g.sum(0), h.T @ g])
    dh = (g @ W[1:].T) * (1 - h**2)
    first = np.vstack([dh.sum(0), x.T @ dh])
    model(x)
    model.backward(g)
    np.testing.assert_allclose(model.d1.W.grad, first + second, rtol=1e-12)


def test_a_layer_called_twice_in_one_pass_gets_a_wrong_weight_gradient() -> None:
    model = _Twice(3, 0)
    x = np.random.default_rng(0).normal(size=(4, 3))
    report = md.GradientChecker(model, inputs=x).run()
    assert not report.passed
    result = {r.name: r for r in report.results}
    assert result["input"].passed and not result["d1.W"].passed  # dx is right: it needs the weights alone
    assert result["d1.W"].max_rel_error > 0.1


@pytest.mark.parametrize(("make", "shape"), [
    (lambda: md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1)), (5, 3)),
    (lambda: md.Sequential(md.Conv1D(2, 3, 3, rng=0), md.BatchNorm1d(3), md.ReLU()), (4, 2, 7)),
    (lambda: md.Sequential(md.LSTM(3, 4, rng=0), md.LayerNorm(4)), (2, 5, 3)),
])
def test_a_second_backward_on_one_forward_adds_the_gradients_of_the_sum(make: Any, shape: tuple) -> None:
    rng = np.random.default_rng(3)
    model, x = make(), rng.normal(size=shape)
    y = model(x)
    g1, g2 = rng.normal(size=y.shape), rng.normal(size=y.shape)
    model.zero_grad()
    dx1, dx2 = model.backward(g1).copy(), model.backward(g2)
    twice = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    dx = model.backward(g1 + g2)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(twice[name], p.grad, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(dx1 + dx2, dx, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    np.testing.assert_allclose(model.backward(g2), dx2, rtol=1e-12)  # each call's own dx


@pytest.mark.parametrize("bias, columns", [(True, 7), (False, 9)])
@pytest.mark.parametrize("leading", [(), (3,)])
def test_w_rebound_with_other_columns_is_refused_by_the_forward(bias, columns, leading) -> None:
    """Rows right, columns not: the product took it and gave an output of another width than out_features
    (review), so repr and summary disagreed with what the layer computed.  Now the same ShapeError as rows."""
    layer = md.Dense(3, 2, bias=bias, rng=0)
    layer.W.data = np.zeros((3 + bias, columns))
    with pytest.raises(md.ShapeError, match=rf"^Dense\(3 -> 2\): W.data has shape \({3 + bias}, {columns}\), but "
                                            rf"the layer was built for \({3 + bias}, 2\)"):
        layer(np.ones((5, *leading, 3)))
    assert layer._x is None  # refused before the forward kept anything


@pytest.mark.parametrize("args, kwargs, error", [
    ((3, -1), {}, ValueError), ((0, 2), {}, ValueError), ((3, 2, "no"), {}, TypeError),
    ((3, 2), {"init": "bogus"}, ValueError), ((3, 2), {"W": np.ones((2, 2))}, md.ShapeError),
    ((3, 2), {"dtype": np.int32}, md.DTypeError),
])
def test_a_refused_second_init_leaves_the_dense_as_it_was(args, kwargs, error) -> None:
    """__init__ run again on a built Dense checked its arguments after it had dropped its sizes and its
    registered W (review: then every read was an AttributeError); now it checks them first."""
    layer = md.Dense(3, 2, rng=0)
    weights, x = layer.W.data.copy(), np.ones((5, 3))
    y = layer(x)
    with pytest.raises(error):
        layer.__init__(*args, **kwargs)  # type: ignore[misc]
    assert (layer.in_features, layer.out_features, layer.bias) == (3, 2, True)
    assert list(dict(layer.named_parameters())) == ["W"] and np.array_equal(layer.W.data, weights)
    assert np.array_equal(layer(x), y)
