"""The Layer contract: registration by assignment, dotted names, modes, dtype casting, state."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from typing_extensions import Self

import minidl as md


class Scale(md.Layer):
    """y = a * x with one learnable scalar-per-feature parameter ``a``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.a = md.Parameter(np.arange(1.0, n + 1))
        self.register_buffer("calls", np.zeros(1))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.a.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._x)
        assert self._x is not None
        self.a.grad += (grad_output * self._x).sum(axis=0)
        return grad_output * self.a.data


class Encoder(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = md.Dense(3, 4, rng=0)
        self.act = md.Tanh()
        self.fc2 = md.Dense(4, 2, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.fc2(self.act(self.fc1(x)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.fc1.backward(self.act.backward(self.fc2.backward(grad_output)))


class Net(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.scale = Scale(2)
        self.rng = np.random.default_rng(3)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.scale(self.encoder(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.encoder.backward(self.scale.backward(grad_output))


def test_named_parameters_are_dotted_and_in_definition_order() -> None:
    net = Net()
    assert [name for name, _ in net.named_parameters()] == ["encoder.fc1.W", "encoder.fc2.W", "scale.a"]
    assert net.parameters()[0] is net.encoder.fc1.W
    assert [name for name, _ in net.named_buffers()] == ["scale.calls"]
    assert [name for name, _ in net.named_generators()] == ["rng"]
    assert [name for name, _ in net.named_layers()] == ["", "encoder", "encoder.fc1", "encoder.act",
                                                         "encoder.fc2", "scale"]


def test_sequential_names_by_position() -> None:
    model = md.Sequential(md.Dense(5, 3, rng=0), md.ReLU(), md.Dense(3, 1, rng=1))
    assert [name for name, _ in model.named_parameters()] == ["0.W", "2.W"]
    assert len(model) == 3 and isinstance(model[1], md.ReLU)
    assert model.num_parameters() == 6 * 3 + 4 * 1


def test_shared_parameter_listed_once() -> None:
    a, b = md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1)
    b.W = a.W
    model = md.Sequential(a, b)
    assert [name for name, _ in model.named_parameters()] == ["0.W"]


def test_reassigning_registered_parameter_with_an_array_is_refused() -> None:
    layer = md.Dense(2, 2, rng=0)
    with pytest.raises(TypeError, match="registered Parameter"):
        layer.W = np.zeros((3, 2))  # type: ignore[assignment]
    assert isinstance(layer.W, md.Parameter)


def test_assigning_before_super_init_is_a_clear_error() -> None:
    class Broken(md.Layer):
        def __init__(self) -> None:
            self.W = md.Parameter(np.zeros(2))
            super().__init__()

    with pytest.raises(AttributeError, match=r"super\(\).__init__"):
        Broken()


def test_layers_in_a_plain_list_are_refused() -> None:
    class Listy(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = [md.Dense(2, 2, rng=0)]

    with pytest.raises(TypeError, match="LayerList"):
        Listy()

    class Registered(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = md.LayerList([md.Dense(2, 2, rng=0), md.Dense(2, 1, rng=1)])

    assert [n for n, _ in Registered().named_parameters()] == ["blocks.0.W", "blocks.1.W"]


def test_deleting_an_attribute_unregisters_it() -> None:
    net = Net()
    del net.scale
    assert [name for name, _ in net.named_parameters()] == ["encoder.fc1.W", "encoder.fc2.W"]
    net.encoder.fc2 = None
    assert [name for name, _ in net.named_parameters()] == ["encoder.fc1.W"]


def test_train_eval_recurse_and_return_self() -> None:
    net = Net()
    assert net.eval() is net
    assert not any(layer.training for layer in net.layers())
    assert net.train() is net
    assert all(layer.training for layer in net.layers())


def test_zero_grad_zeroes_every_gradient() -> None:
    net = Net()
    x = np.random.default_rng(0).normal(size=(4, 3))
    net.backward(np.ones_like(net(x)))
    assert all(np.any(p.grad != 0) for p in net.parameters())
    net.zero_grad()
    assert all(np.all(p.grad == 0) for p in net.parameters())


def test_astype_casts_parameters_grads_and_float_buffers() -> None:
    net = Net().astype(np.float32)
    for _, p in net.named_parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    assert net.scale.calls.dtype == np.float32
    assert dict(net.named_buffers())["scale.calls"] is net.scale.calls
    x = np.ones((2, 3), dtype=np.float32)
    assert net(x).dtype == np.float32
    with pytest.raises(md.DTypeError):
        net.astype(np.int32)


def test_astype_to_a_big_endian_dtype_gives_the_native_one() -> None:
    # as the constructors do (a dtype read from a file): NumPy computes in native order, and the
    # layers' dtype checks compare inputs with the parameters' dtype
    net = Net().astype(">f4")
    for _, p in net.named_parameters():
        assert p.data.dtype == np.float32 and p.data.dtype.isnative and p.grad.dtype.isnative
    assert net.scale.calls.dtype == np.float32 and net.scale.calls.dtype.isnative
    assert net(np.ones((2, 3), dtype=np.float32)).dtype == np.float32


def test_backward_accumulates_so_a_layer_used_twice_sums() -> None:
    layer = Scale(3)
    x = np.random.default_rng(1).normal(size=(5, 3))
    g = np.random.default_rng(2).normal(size=(5, 3))
    layer(x)
    layer.backward(g)
    once = layer.a.grad.copy()
    layer.backward(g)
    np.testing.assert_allclose(layer.a.grad, 2 * once, rtol=1e-15)


def test_state_dict_round_trip_and_strictness() -> None:
    source, target = Net(), Net()
    target.encoder.fc1.W.data += 1
    state = source.state_dict()
    assert list(state) == ["encoder.fc1.W", "encoder.fc2.W", "scale.a", "scale.calls", "encoder.fc1._layout",
                           "encoder.fc2._layout"]
    assert state["scale.a"] is not source.scale.a.data  # a copy, not a view
    target.load_state_dict(state)
    for (_, p), (_, q) in zip(source.named_parameters(), target.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)

    before = {k: v.copy() for k, v in target.state_dict().items()}
    bad = dict(state)
    del bad["scale.a"]
    bad["extra"] = np.zeros(1)
    bad["encoder.fc2.W"] = np.zeros((9, 9))
    with pytest.raises(md.StateDictError) as info:
        target.load_state_dict(bad)
    message = str(info.value)
    for needle in ("missing key 'scale.a'", "unexpected key 'extra'", "'encoder.fc2.W': expected shape"):
        assert needle in message
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_repr_shows_the_tree() -> None:
    text = repr(md.Sequential(md.Dense(5, 1, rng=0), md.ReLU()))
    assert "(0): Dense(in_features=5, out_features=1, bias=True)" in text
    assert "(1): ReLU()" in text


def test_sequential_error_names_the_position() -> None:
    model = md.Sequential(md.Dense(5, 3, rng=0), md.ReLU(), md.Dense(4, 1, rng=1))
    with pytest.raises(md.ShapeError, match=r"layer .2.*Dense\(4 -> 1\).*\(N, \.\.\., 4\).*\(2, 3\)"):
        model(np.ones((2, 5)))


@pytest.mark.parametrize("method", ["backward", "backward_params"])
def test_sequential_backward_errors_name_the_position(method: str) -> None:
    x = np.ones((2, 5))
    model = md.Sequential(md.Dense(5, 3, rng=0), md.ReLU(), md.Dense(3, 1, rng=1))
    model(x)
    with pytest.raises(md.ShapeError, match=r"^Sequential layer '2': Dense\(3 -> 1\)\.backward: .*"
                                            r"\(2, 1\), got \(2, 3\)"):
        getattr(model, method)(np.ones((2, 3)))

    class Refusing(md.ReLU):  # a middle layer that refuses what reaches it
        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            raise md.ShapeError("Refusing: no")

    model = md.Sequential(md.Dense(5, 3, rng=0), Refusing(), md.Dense(3, 1, rng=1))
    model(x)
    with pytest.raises(md.ShapeError, match=r"^Sequential layer '1': Refusing: no$"):
        getattr(model, method)(np.ones((2, 1)))

    class Strict(md.Dense):  # the first layer, reached through backward_params' own call
        def backward_params(self, grad_output: np.ndarray) -> None:
            raise md.DTypeError("Strict: no")

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            raise md.DTypeError("Strict: no")

    model = md.Sequential(Strict(5, 3, rng=0), md.ReLU(), md.Dense(3, 1, rng=1))
    model(x)
    with pytest.raises(md.DTypeError, match=r"^Sequential layer '0': Strict: no$"):
        getattr(model, method)(np.ones((2, 1)))
    assert model[2].W.grad.any()  # the layers behind it went back first


def test_base_layer_forward_and_backward_must_be_written() -> None:
    layer = md.Layer()
    with pytest.raises(NotImplementedError, match="forward"):
        layer(np.ones(2))
    with pytest.raises(NotImplementedError, match="backward"):
        layer.backward(np.ones(2))


def test_containers_of_registrables_are_refused() -> None:
    class Hidden(md.Layer):
        def __init__(self, value: object) -> None:
            super().__init__()
            self.things = value

    for value in ({"a": md.Dense(2, 2, rng=0)}, [md.Parameter(np.zeros(2))], (np.random.default_rng(0),)):
        with pytest.raises(TypeError, match="would not be registered"):
            Hidden(value)
    assert Hidden([np.zeros(2), 3]).things[1] == 3  # plain data is fine


def test_a_layer_cannot_contain_itself() -> None:
    outer = md.Sequential(md.Dense(2, 2, rng=0))
    inner = md.Sequential(outer)
    with pytest.raises(ValueError, match="cycle"):
        outer.append(inner)
    with pytest.raises(ValueError, match="cycle"):
        outer.me = outer


def test_sequential_append_after_delete_and_duplicates() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0), md.Tanh(), md.Dense(2, 1, rng=1))
    del model._layers["1"], model.__dict__["1"]  # as `delattr(model, "1")` would
    last = md.ReLU()
    model.append(last)
    assert list(model._layers) == ["0", "2", "3"] and model[-1] is last
    with pytest.raises(ValueError, match="already in the sequence"):
        model.append(last)
    head = model[:2]
    assert isinstance(head, md.Sequential) and head[1] is model[1]


def test_layerlist_append_after_delete_takes_a_free_name() -> None:
    """After a delete, append must not reuse the last index: it would replace that layer (and lose its
    parameters) without a word."""
    layers = md.LayerList([md.Dense(2, 2, rng=0), md.Dense(2, 2, rng=1), md.Dense(2, 2, rng=2)])
    delattr(layers, "0")
    last = md.Dense(2, 2, rng=3)
    layers.append(last)
    assert list(layers._layers) == ["1", "2", "3"] and layers[-1] is last
    assert len(layers.parameters()) == 3 and len(layers.state_dict()) == 6  # (W and the layout of each)


def test_a_layer_reached_twice_through_nested_sequentials_is_refused() -> None:
    """Inside nested Sequentials the same layer would still run twice in one pass, and its backward
    would use the second call's cache for both (wrong gradients, silently): refused like the direct
    case.  A second layer sharing the parameter is the way, and it checks."""
    a = md.Dense(3, 3, rng=0)
    for build in (lambda: md.Sequential(md.Sequential(a), md.Tanh(), md.Sequential(a)),
                  lambda: md.Sequential(md.Sequential(a), md.Tanh(), a),
                  lambda: md.Sequential(a, md.Sequential(md.Tanh(), a))):
        with pytest.raises(ValueError, match="Dense is already in the sequence"):
            build()
    with pytest.raises(ValueError, match=r"already in the sequence \(inside the layer appended\)"):
        md.Sequential(md.Sequential(a), md.Sequential(md.Sequential(md.Tanh(), a)))

    class TiedDecoder(md.Layer):  # holds the encoder to read its weights, never calls it: accepted
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            self._x = x
            return x @ self.encoder.weight.T

        def backward(self, grad_output):
            self.encoder.W.grad[1:] += (grad_output.T @ self._x)
            return grad_output @ self.encoder.weight

    md.Sequential(a, md.Tanh(), TiedDecoder(a))
    long = md.Sequential(*[md.Tanh() for _ in range(2000)])  # (checked in one walk, not one per layer)
    long.append(md.ReLU())
    assert len(long[10:1500]) == 1490
    b = md.Dense(3, 3, rng=1)
    b.W = a.W
    model = md.Sequential(md.Sequential(a), md.Tanh(), md.Sequential(b))
    model.astype(np.float64)
    report = md.GradientChecker(model, inputs=np.random.default_rng(0).normal(size=(4, 3))).run()
    assert report.passed, report


def test_none_buffer_round_trips() -> None:
    layer = md.Dense(2, 1, rng=0)
    layer.register_buffer("stat", None)
    state = layer.state_dict()
    assert list(state) == ["W", "_layout"]
    md.Dense(2, 1, rng=1).load_state_dict(state)
    other = md.Dense(2, 1, rng=1)
    other.register_buffer("stat", None)
    other.load_state_dict(state)


def test_astype_to_the_same_dtype_keeps_the_arrays() -> None:
    layer = md.Dense(3, 2, rng=0)
    data, grad = layer.W.data, layer.W.grad
    layer.astype(np.float64)
    assert layer.W.data is data and layer.W.grad is grad


class Custom(md.Dense):
    """A Dense subclass with its own back-pass (it clips the weight gradient)."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx = super().backward(grad_output)
        np.clip(self.W.grad, -0.1, 0.1, out=self.W.grad)
        return dx


def test_backward_params_never_bypasses_a_custom_backward() -> None:
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    model = md.Sequential(Custom(3, 2, rng=1))
    model(x)
    model.backward(g)
    expected = model[0].W.grad.copy()
    model.zero_grad()
    model.backward_params(g)
    np.testing.assert_array_equal(model[0].W.grad, expected)
    assert md.layer.parameter_backward(model[0]) == model[0].backward
    plain = md.Dense(3, 2, rng=1)
    assert md.layer.parameter_backward(plain) == plain.backward_params
    tanh = md.Tanh()
    assert md.layer.parameter_backward(tanh) == tanh.backward  # only the default backward_params above it


def test_zero_grad_is_lazy_but_reads_as_zero() -> None:
    p = md.Parameter(np.arange(6.0).reshape(2, 3))
    p.grad += 5.0
    array = p.grad
    p.zero_grad()
    assert p.grad_is_zero()
    assert p.grad is array and np.all(p.grad == 0)  # zeroed in place when read
    p.grad += 1.0
    p.zero_grad()
    grad, overwrite = p.grad_target()
    assert overwrite and grad is array  # a backward may write the whole array ...
    grad[...] = 7.0
    assert p.grad_target() == (array, False)  # ... once: after that it adds
    assert np.all(p.grad == 7.0)


def test_zero_grad_remakes_a_grad_whose_data_changed_shape_or_dtype() -> None:
    p = md.Parameter(np.ones((2, 3)))
    p.data = np.ones((4,), dtype=np.float32)
    p.zero_grad()
    assert p.grad.shape == (4,) and p.grad.dtype == np.float32 and np.all(p.grad == 0)
    p.data = np.ones((5,))
    p.zero_grad()
    grad, overwrite = p.grad_target()
    assert overwrite and grad.shape == (5,) and grad.dtype == np.float64


@pytest.mark.parametrize("bias", [True, False])
def test_dense_writes_after_zero_grad_and_adds_otherwise(bias: bool) -> None:
    rng = np.random.default_rng(3)
    layer = md.Dense(4, 3, bias=bias, rng=0)
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    expected = x.T @ g if not bias else np.vstack([g.sum(axis=0), x.T @ g])
    layer.W.grad += 100.0  # old values that zero_grad must make disappear
    layer.zero_grad()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.W.grad, expected, rtol=1e-13, atol=1e-13)
    layer.backward_params(g)  # no zero_grad in between: the gradients add up
    np.testing.assert_allclose(layer.W.grad, 2 * expected, rtol=1e-13, atol=1e-13)


def test_shared_parameter_after_zero_grad_sums_both_uses() -> None:
    rng = np.random.default_rng(4)
    first = md.Dense(3, 3, rng=0)
    second = md.Dense(3, 3, rng=1)
    second.W = first.W
    model = md.Sequential(first, md.Tanh(), second)
    x = rng.normal(size=(6, 3))
    for _ in range(2):  # the second round starts from stale gradients marked zero
        model.zero_grad()
        out = model(x)
        model.backward(np.ones_like(out))
    h = np.tanh(x @ first.W.data[1:] + first.W.data[0])
    g_h = np.ones_like(out) @ second.W.data[1:].T * (1 - h**2)
    expected = np.vstack([np.ones_like(out).sum(axis=0), h.T @ np.ones_like(out)])
    expected += np.vstack([g_h.sum(axis=0), x.T @ g_h])
    np.testing.assert_allclose(first.W.grad, expected, rtol=1e-12)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_backward_after_a_failed_forward_is_refused_until_a_forward_succeeds():
    """The layers before the failing one held the refused batch's caches, the others the batch before:
    the backward mixed them (the first Dense's dW came from the refused input, off by 1e307)."""
    rng = np.random.default_rng(0)
    model = md.Sequential(md.Dense(4, 6, W=rng.uniform(0, 1, (5, 6))), md.ReLU(), md.Dense(6, 3, rng=1))
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    model(x)
    with pytest.raises(md.NonFiniteError):
        model(np.full((5, 4), 1e308))  # finite, but layer '2' sees inf
    for call in (model.backward, model.backward_params):
        with pytest.raises(md.BackwardBeforeForwardError, match=r"the last forward failed at layer '2'"):
            call(g)
    model.zero_grad()
    model(x)  # a forward that succeeds clears it
    model.backward(g)
    reference = md.Sequential(md.Dense(4, 6, W=model[0].W.data.copy()), md.ReLU(),
                              md.Dense(6, 3, W=model[2].W.data.copy()))
    reference(x)
    reference.backward(g)
    np.testing.assert_array_equal(model[0].W.grad, reference[0].W.grad)


def test_a_bool_is_not_a_position():
    model = md.Sequential(md.Dense(2, 2, rng=0), md.ReLU())
    with pytest.raises(TypeError, match="indices must be ints or slices, not bool"):
        model[True]


def test_a_forward_that_fails_at_the_first_layer_mixes_nothing():
    """The first layer refuses before caching anything: the previous pass's caches are all consistent."""
    model = md.Sequential(md.Dense(3, 2, rng=0), md.ReLU())
    model(np.ones((4, 3)))
    with pytest.raises(md.ShapeError):
        model(np.ones((4, 5)))
    assert model.backward(np.ones((4, 2))).shape == (4, 3)


def test_every_error_class_is_listed_in_errors_all_and_exported() -> None:
    import inspect

    import minidl.errors as errors

    classes = {name for name, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, errors.MinidlError)}
    assert classes == set(errors.__all__)
    assert classes <= set(md.__all__)


# --- fourteenth session: what an outside review of the containers found ---------------------------


def test_a_replaced_layer_or_parameter_keeps_its_place() -> None:
    """Re-assigning a registered name moved it to the end: a Sequential then ran its layers in another
    order (silently when the shapes chained), and named_parameters / state_dict changed order, so an
    optimizer's state loaded by position met other parameters."""
    x = np.random.default_rng(0).standard_normal((2, 4))
    s = md.Sequential(md.Dense(4, 4, rng=0), md.Tanh(), md.Dense(4, 4, rng=1))
    new = md.Dense(4, 4, rng=7)
    setattr(s, "0", new)
    assert list(s._layers) == ["0", "1", "2"] and s[0] is new
    np.testing.assert_array_equal(s(x), s[2](s[1](new(x))))
    lstm = md.LSTM(3, 4, rng=0)
    lstm.W_x = md.Parameter(lstm.W_x.data.copy())
    assert [name for name, _ in lstm.named_parameters()] == ["W_x", "W_h"]

    class Two(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.body = md.Dense(4, 4, rng=0)
            self.head = md.Dense(4, 2, rng=1)

    m = Two()
    m.body = md.Dense(4, 4, rng=2)
    assert list(m.state_dict()) == ["body.W", "head.W", "body._layout", "head._layout"]
    m.body = None  # removing and adding again puts it at the end, as a new name
    m.body = md.Dense(4, 4, rng=3)
    assert list(m.state_dict()) == ["head.W", "body.W", "head._layout", "body._layout"]


def test_train_and_eval_call_each_sub_layer_s_own_train() -> None:
    """A block keeping its batch norm in eval inside train() (PyTorch's pattern) was overridden: train()
    set every sub-layer's flag directly."""
    class FrozenStats(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.fc = md.Dense(3, 3, rng=0)
            self.bn = md.BatchNorm1d(3)

        def train(self, mode: bool = True) -> Self:
            super().train(mode)
            self.bn.training = False
            return self

    block = FrozenStats()
    model = md.Sequential(block, md.ReLU()).train()
    assert model.training and block.training and block.fc.training and not block.bn.training
    model.eval()
    assert not block.fc.training and not block.bn.training
    with pytest.raises(TypeError, match=r"Sequential.train: mode must be True or False, got 'False'"):
        model.train("False")  # type: ignore[arg-type]
    assert not model.training


def test_layers_in_nested_plain_containers_are_refused() -> None:
    class Nested(md.Model):
        def __init__(self, value: Any) -> None:
            super().__init__()
            self.stages = value

    for value in ([[md.Dense(4, 4)]], {"e": [md.Dense(4, 4)]}, ([1, (md.Parameter(np.zeros(2)),)],)):
        with pytest.raises(TypeError, match=r"Nested.stages: .* objects in a plain .* would not be registered"):
            Nested(value)
    assert Nested([[1, 2], {"a": 3}]).stages == [[1, 2], {"a": 3}]  # plain data is fine


def test_names_that_would_hide_a_method_or_a_registry_are_refused() -> None:
    layer = md.Dense(2, 2, rng=0)
    for name, value in (("forward", md.Parameter(np.zeros(1))), ("train", md.Dense(1, 1)),
                        ("_layers", md.Dense(2, 2)), ("training", md.Dense(1, 1)),
                        ("parameters", np.random.default_rng(0))):
        with pytest.raises(KeyError, match=rf"cannot register .* as '{name}': that is"):
            setattr(layer, name, value)
    with pytest.raises(KeyError, match="as 'eval': that is a method or property of Dense"):
        layer.register_buffer("eval", np.zeros(2))
    with pytest.raises(TypeError, match="register_buffer: the name must be a str, got int"):
        layer.register_buffer(3, np.zeros(2))  # type: ignore[arg-type]
    assert callable(layer.forward) and layer(np.ones((1, 2))).shape == (1, 2)

    class WithDefault(md.Layer):
        bias = None  # a data default at class level is not a method: a parameter may take its name

        def __init__(self) -> None:
            super().__init__()
            self.bias = md.Parameter(np.zeros(2))

    assert [n for n, _ in WithDefault().named_parameters()] == ["bias"]


def test_load_state_dict_strict_must_be_a_bool_and_named_buffers_skip_none() -> None:
    layer = md.BatchNorm1d(2)
    with pytest.raises(TypeError, match="load_state_dict: strict must be True or False, got 'no'"):
        layer.load_state_dict(layer.state_dict(), strict="no")  # type: ignore[arg-type]
    layer.register_buffer("spare", None)
    assert [name for name, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]


def test_save_says_to_save_a_state_dict_and_load_recognises_a_pytorch_file(tmp_path: Any) -> None:
    import zipfile

    model = md.Sequential(md.Dense(2, 2, rng=0))
    with pytest.raises(TypeError, match=r"state must be a dict, got Sequential; save its state: "
                                        r"minidl.save\(model.state_dict\(\), path\)"):
        md.save(model, tmp_path / "m.npz")  # type: ignore[arg-type]
    fake = tmp_path / "model.pt"  # the layout of torch.save's zip archive
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/data/0", b"\x00" * 8)
    with pytest.raises(md.CheckpointError, match=r"looks like a PyTorch checkpoint \(a pickle\), which minidl never"):
        md.load(fake)


def test_class_level_defaults_that_are_classes_or_layers_may_be_replaced_by_registered_ones() -> None:
    class Configurable(md.Layer):
        activation = md.ReLU  # a class as a default: not a method

        def __init__(self) -> None:
            super().__init__()
            self.activation = self.activation()

    assert [name for name, _ in Configurable().named_layers()] == ["", "activation"]

    class Broken(md.Layer):
        def __init__(self) -> None:
            pass

    with pytest.raises(AttributeError, match=r"Broken.__init__ did not call super\(\).__init__\(\)"):
        Broken().train()


def test_fit_from_eval_mode_honours_a_sub_layer_s_own_train() -> None:
    class FrozenStats(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.fc = md.Dense(3, 3, rng=0)
            self.bn = md.BatchNorm1d(3)

        def forward(self, x: np.ndarray) -> np.ndarray:
            return self.bn(self.fc(x))

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return self.fc.backward(self.bn.backward(grad_output))

        def train(self, mode: bool = True) -> Self:
            super().train(mode)
            self.bn.training = False
            return self

    model = md.Sequential(FrozenStats())
    model.eval()
    x = np.random.default_rng(0).normal(size=(8, 3))
    model.fit(x, x, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=1, verbose=0)
    np.testing.assert_array_equal(model[0].bn.running_mean, np.zeros(3))  # it stayed in eval: no update
    assert not model.training  # and the modes are put back


def test_a_cached_method_is_not_shadowed_and_a_list_of_float_arrays_is_data() -> None:
    import functools

    class Tabled(md.Layer):
        @functools.cache  # noqa: B019  # (the pattern a review tried)
        def table(self) -> int:
            return 1

    with pytest.raises(KeyError, match="as 'table': that is a method or property of Tabled"):
        Tabled().table = md.Parameter(np.zeros(2))  # type: ignore[method-assign, assignment]
    assert md.Dense(3, 2, rng=0)([np.zeros(3), np.ones(3, np.float32)]).shape == (2, 2)  # stacked, as NumPy does


def test_a_residual_refusing_a_stack_s_tuple_names_single_input() -> None:
    class Scale(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return 2 * x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return 2 * grad_output

    tokens = np.zeros((2, 3), int)
    mask = np.zeros((2, 3), bool)
    stack = md.Stack(md.Embedding(10, 4, rng=0), md.Residual(Scale()), md.GRU(4, 4, return_sequences=False, rng=1))
    with pytest.raises(md.ShapeError, match="a block of your own that takes one array says so in its class, "
                                            "single_input = True"):
        stack((tokens, mask))
    Scale.single_input = True
    assert stack((tokens, mask)).shape == (2, 4)


def test_class_defaults_that_are_ufuncs_partials_or_losses_may_be_overridden() -> None:
    import functools

    class Defaults(md.Layer):
        activation = np.tanh
        scale = functools.partial(np.multiply, 2.0)
        criterion = md.MSELoss()

        def __init__(self) -> None:
            super().__init__()
            self.activation = md.ReLU()
            self.scale = md.Parameter(np.ones(2))
            self.criterion = md.Dense(2, 2, rng=0)

    assert [name for name, _ in Defaults().named_parameters()] == ["scale", "criterion.W"]
    with pytest.raises(md.DTypeError, match=r"a list of 2 arrays of different shapes \(\(2,\), \(3,\)\), which "
                                            r"cannot be stacked; several inputs are one tuple"):
        md.Dense(3, 2)([np.zeros(2), np.zeros(3)])


def test_parameter_backward_follows_the_classes_that_define_the_two_methods() -> None:
    """One walk of the MRO (it runs every step) gives what the two ``defining_class`` lookups gave:
    ``backward_params`` only where the class defining it is a subclass of the one defining
    ``backward``, multiple inheritance and instance overrides included."""
    from minidl.layer import defining_class, parameter_backward

    def reference(layer: md.Layer) -> Any:
        if "backward" in layer.__dict__:
            return layer.backward
        cls = type(layer)
        owner_b, owner_p = defining_class(cls, "backward"), defining_class(cls, "backward_params")
        assert owner_b is not None and owner_p is not None
        return layer.backward_params if issubclass(owner_p, owner_b) else layer.backward

    def own_backward(self: Any, g: Any) -> Any:
        return g

    def own_params(self: Any, g: Any) -> None:
        return None

    class OwnBackward(md.Dense):
        backward = own_backward

    class Both(md.Dense):
        backward = own_backward
        backward_params = own_params

    class OnlyParams(md.Layer):
        backward_params = own_params

    class Mixin:
        backward = own_backward

    class ParamsMixin:
        backward_params = own_params

    kinds: list[type] = [md.Dense, md.ReLU, md.Sequential, OwnBackward, Both, OnlyParams,
                         type("A", (OnlyParams, OwnBackward), {}), type("B", (Mixin, md.Dense), {}),
                         type("C", (ParamsMixin, md.ReLU), {}), type("D", (md.Dense, Mixin), {}),
                         type("E", (ParamsMixin, Mixin, md.Layer), {}), type("F", (Mixin, ParamsMixin, md.Layer), {})]
    checked = 0
    for kind in kinds:
        layer = kind(2, 2, rng=0) if issubclass(kind, md.Dense) else kind()
        assert parameter_backward(layer) == reference(layer), kind
        layer.backward = lambda g: g  # type: ignore[method-assign]  # an instance override wins
        assert parameter_backward(layer) == layer.backward
        checked += 1
    assert checked == len(kinds)
    assert parameter_backward(md.Dense(2, 2, rng=0)).__func__ is md.Dense.backward_params
    assert parameter_backward(OwnBackward(2, 2, rng=0)).__func__ is own_backward


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix is pending deprecation)
def test_a_matrix_or_masked_grad_output_is_refused_by_name() -> None:
    """An np.matrix's * is a matrix product (Sigmoid, Dropout, RReLU's backward gave wrong values silently) and a
    masked array's hidden values would be used: backward refuses both, as a layer's input refuses a masked one."""
    x = np.random.default_rng(0).normal(size=(3, 4))
    layers = (md.Sigmoid(), md.Tanh(), md.Dropout(0.5, rng=0), md.RReLU(rng=0), md.Softmax(), md.Dense(4, 4, rng=0))
    for layer in layers:
        y = layer(x)
        g = np.random.default_rng(1).normal(size=y.shape)
        for bad in (np.asmatrix(g), np.ma.masked_array(g, mask=g > 1)):
            with pytest.raises(md.DTypeError, match=rf"expected grad_output as a plain numpy array, got "
                                                    rf"{type(bad).__name__}; pass np.asarray\(grad_output\)"):
                layer.backward(bad)
        assert type(layer.backward(g)) is np.ndarray  # the plain array: as before
