"""Strict state_dict / load_state_dict for layers, models (with buffers and generators) and optimizers."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import optim


# ------------------------------------------------------------------------------ fixtures
class Noisy(md.Layer):
    """A layer with a parameter, a persistent and a non-persistent buffer and a generator."""

    def __init__(self, n: int = 3, seed: int = 0, dtype: Any = np.float64) -> None:
        super().__init__()
        self.scale = md.Parameter(np.linspace(0.5, 1.5, n), dtype=dtype)
        self.count: np.ndarray
        self.register_buffer("count", np.zeros(n, dtype=np.int64))
        self.register_buffer("last", None, persistent=False)
        self.rng = np.random.default_rng(seed)

    def forward(self, x: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(x.shape).astype(x.dtype)
        self.count = self.count + 1
        return x * self.scale.data + 0.01 * noise

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self.scale.data


class Net(md.Model):
    def __init__(self, seed: int = 0, dtype: Any = np.float64) -> None:
        super().__init__()
        self.fc1 = md.Dense(3, 4, rng=seed, dtype=dtype)
        self.act = md.Tanh()
        self.fc2 = md.Dense(4, 3, rng=seed + 1, dtype=dtype)
        self.noise = Noisy(3, seed=seed + 2, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.noise(self.fc2(self.act(self.fc1(x))))

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.fc1.backward(self.act.backward(self.fc2.backward(self.noise.backward(g))))


def snapshot(layer: md.Layer) -> dict[str, Any]:
    """Everything a load could change, as copies: state (with generators), grads, array identities."""
    return {
        "state": layer.state_dict(generators=True),
        "grads": {name: p.grad.copy() for name, p in layer.named_parameters()},
        "ids": {name: id(p.data) for name, p in layer.named_parameters()},
    }


def assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    else:
        assert a == b


# ------------------------------------------------------------------------------ layers and models
def test_state_dict_holds_copies_of_parameters_and_persistent_buffers() -> None:
    net = Net()
    state = net.state_dict()
    assert list(state) == ["fc1.W", "fc2.W", "noise.scale", "noise.count", "fc1._layout", "fc2._layout"]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["fc1.W"][...] = 7
    assert not np.any(net.fc1.W.data == 7)


def test_round_trip_into_a_differently_seeded_model() -> None:
    source, target = Net(seed=0), Net(seed=10)
    source.noise.count[...] = 5
    result = target.load_state_dict(source.state_dict())
    assert result == md.LoadResult([], [])
    assert_same(target.state_dict(), source.state_dict())
    state = source.state_dict()
    target.load_state_dict(state)
    state["fc2.W"][...] = 0  # the model holds copies, not the caller's arrays
    assert np.any(target.fc2.W.data != 0)


def test_strict_load_lists_every_problem_and_changes_nothing() -> None:
    target = Net(seed=3)
    target.fc1.W.grad[...] = 0.25
    before = snapshot(target)
    bad: dict[str, Any] = Net(seed=4).state_dict()
    del bad["noise.scale"]                                  # missing
    bad["fc3.W"] = np.zeros((2, 2))                         # unexpected
    bad["fc1.W"] = np.zeros((9, 4))                         # shape mismatch
    bad["fc2.W"] = bad["fc2.W"].astype(np.float32)          # dtype mismatch
    bad["noise.count"] = [0, 0, 0]                          # not an array
    with pytest.raises(md.StateDictError) as info:
        target.load_state_dict(bad)
    message = str(info.value)
    assert "(5 problems); nothing was changed" in message
    for needle in ("missing key 'noise.scale'", "unexpected key 'fc3.W'",
                   "'fc1.W': expected shape (4, 4), got (9, 4)",
                   "'fc2.W': expected dtype float64, got float32",
                   "'noise.count': expected an ndarray, got list"):
        assert needle in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, md.MinidlError)
    assert_same(snapshot(target), before)


def test_non_strict_loads_the_matching_keys_and_reports_the_rest() -> None:
    source, target = Net(seed=0), Net(seed=5)
    state = source.state_dict()
    del state["fc2.W"]
    state["extra.W"] = np.ones(2)
    old_fc2 = target.fc2.W.data.copy()
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["fc2.W"] and result.unexpected_keys == ["extra.W"]
    np.testing.assert_array_equal(target.fc1.W.data, source.fc1.W.data)
    np.testing.assert_array_equal(target.fc2.W.data, old_fc2)


def test_non_strict_still_refuses_mismatched_shapes_and_dtypes() -> None:
    target = Net(seed=5)
    before = snapshot(target)
    state = Net(seed=0).state_dict()
    state["fc1.W"] = state["fc1.W"][:2]
    state["noise.count"] = state["noise.count"].astype(np.int32)
    with pytest.raises(md.StateDictError, match=r"(?s)2 problems.*fc1.W.*noise.count"):
        target.load_state_dict(state, strict=False)
    assert_same(snapshot(target), before)


def test_refuses_a_non_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        Net().load_state_dict([("fc1.W", np.ones(1))])  # type: ignore[arg-type]


def test_float32_model_keeps_float32_and_refuses_float64() -> None:
    net32 = Net(dtype=np.float32).astype(np.float32)
    state = net32.state_dict()
    assert state["fc1.W"].dtype == np.float32 and state["noise.count"].dtype == np.int64
    with pytest.raises(md.StateDictError, match="expected dtype float32, got float64"):
        net32.load_state_dict(Net().state_dict())
    fresh = Net(seed=9, dtype=np.float32).astype(np.float32)
    fresh.load_state_dict(state)
    assert_same(fresh.state_dict(), state)


def test_grad_is_reallocated_only_when_needed() -> None:
    net = Net()
    grad = net.fc1.W.grad
    net.load_state_dict(Net(seed=1).state_dict())
    assert net.fc1.W.grad is grad  # same shape and dtype: the gradient array is kept


def test_shared_parameter_is_saved_once_and_loads() -> None:
    a, b = md.Dense(3, 3, rng=0), md.Dense(3, 3, rng=1)
    b.W = a.W
    model = md.Sequential(a, b)
    state = model.state_dict()
    assert list(state) == ["0.W", "0._layout", "1._layout"]  # (two layers: two layouts)
    c, d = md.Dense(3, 3, rng=5), md.Dense(3, 3, rng=6)
    d.W = c.W
    md.Sequential(c, d).load_state_dict(state)
    assert d.W.data is c.W.data
    np.testing.assert_array_equal(c.W.data, a.W.data)


# ------------------------------------------------------------------------------ generators
def draws(layer: md.Layer) -> np.ndarray:
    return np.array([g.standard_normal(4) for _, g in layer.named_generators()])


def test_generators_are_opt_in() -> None:
    net = Net()
    assert "noise.rng" not in net.state_dict()
    state = net.state_dict(generators=True)
    assert list(state)[-1] == "noise.rng"
    assert state["noise.rng"]["bit_generator"] == "PCG64"
    assert state["noise.rng"] is not net.noise.rng.bit_generator.state


def test_generator_state_round_trip_replays_the_stream(tmp_path: pathlib.Path) -> None:
    source = Net(seed=0)
    source.noise.rng.standard_normal(17)  # move the stream along
    md.save({"model": source.state_dict(generators=True)}, tmp_path / "ckpt")
    target = Net(seed=42)
    target.load_state_dict(md.load(tmp_path / "ckpt")["model"])
    np.testing.assert_array_equal(draws(target), draws(source))


def test_state_without_generators_loads_and_leaves_them_alone() -> None:
    """Backward compatible: states saved without generators still load strictly."""
    target = Net(seed=1)
    before = copy.deepcopy(target.noise.rng.bit_generator.state)
    result = target.load_state_dict(Net(seed=0).state_dict())
    assert result.missing_keys == []
    assert target.noise.rng.bit_generator.state == before


def test_generator_mismatches_are_refused_with_everything_else() -> None:
    class TwoRngs(md.Layer):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.w = md.Parameter(np.ones(2))
            self.a = np.random.default_rng(seed)
            self.b = np.random.default_rng(seed + 1)

    target = TwoRngs(0)
    before = snapshot(target)
    state = TwoRngs(5).state_dict(generators=True)
    del state["b"]
    state["w"] = np.ones(3)
    with pytest.raises(md.StateDictError) as info:
        target.load_state_dict(state)
    message = str(info.value)
    assert "missing key 'b'" in message and "'w': expected shape (2,)" in message
    assert_same(snapshot(target), before)

    state = TwoRngs(5).state_dict(generators=True)
    state["a"] = np.random.Generator(np.random.MT19937(0)).bit_generator.state
    state["b"] = {"bit_generator": "PCG64", "state": {"state": "oops", "inc": 1},
                  "has_uint32": 0, "uinteger": 0}
    with pytest.raises(md.StateDictError) as info:
        target.load_state_dict(state)
    message = str(info.value)
    assert "'a': expected a PCG64 generator state, got one for 'MT19937'" in message
    assert "'b': invalid PCG64 generator state" in message
    assert_same(snapshot(target), before)

    state = TwoRngs(5).state_dict(generators=True)
    state["a"] = np.zeros(3)
    with pytest.raises(md.StateDictError, match="'a': expected a PCG64 generator state \\(a dict\\)"):
        target.load_state_dict(state)
    assert_same(snapshot(target), before)

    # non-strict: the generator states present are loaded, the missing one is reported
    state = TwoRngs(5).state_dict(generators=True)
    del state["b"]
    assert target.load_state_dict(state, strict=False).missing_keys == ["b"]
    assert target.a.bit_generator.state == TwoRngs(5).a.bit_generator.state


def test_other_bit_generators_round_trip(tmp_path: pathlib.Path) -> None:
    layer, other = md.Layer(), md.Layer()
    rng = np.random.Generator(np.random.MT19937(3))  # a key array inside the state
    rng.random(5)
    other_rng = np.random.Generator(np.random.MT19937(8))
    layer.rng, other.rng = rng, other_rng
    md.save({"m": layer.state_dict(generators=True)}, tmp_path / "c")
    other.load_state_dict(md.load(tmp_path / "c")["m"])
    np.testing.assert_array_equal(other_rng.random(5), rng.random(5))


def test_shared_generator_is_listed_once() -> None:
    shared = np.random.default_rng(0)
    model = md.Sequential(Noisy(seed=0), Noisy(seed=1))
    model[0].rng = shared
    model[1].rng = shared
    state = model.state_dict(generators=True)
    assert [k for k in state if k.endswith("rng")] == ["0.rng"]
    model.load_state_dict(state)


# ------------------------------------------------------------------------------ optimizers
def optimizer_factories() -> list[Any]:
    """Every optimizer that exists, with non-default settings that create state."""
    table = {
        "SGD": lambda ps: md.SGD(ps, lr=0.1, momentum=0.9),
        "Adam": lambda ps: find("Adam")(ps, lr=0.01, amsgrad=True),
        "AdamW": lambda ps: find("AdamW")(ps, lr=0.01),
        "RMSprop": lambda ps: find("RMSprop")(ps, lr=0.01, momentum=0.5, centered=True),
        "Adadelta": lambda ps: find("Adadelta")(ps, lr=0.5, weight_decay=0.01),
        "Rprop": lambda ps: find("Rprop")(ps, lr=0.05, etas=(0.4, 1.3)),
    }
    return [pytest.param(make, id=name) for name, make in table.items() if find(name) is not None]


def find(name: str) -> Any:
    return getattr(md, name, None) or getattr(optim, name, None)


def trained(make: Any, seed: int = 0, dtype: Any = np.float64) -> tuple[md.Layer, md.Optimizer]:
    model = md.Sequential(md.Dense(3, 2, rng=seed, dtype=dtype), md.Dense(2, 1, rng=seed + 1, dtype=dtype))
    opt = make(model.parameters())
    for step in range(3):
        for p in model.parameters():
            p.grad[...] = np.random.default_rng(step).standard_normal(p.shape)
        opt.step()
    return model, opt


@pytest.mark.parametrize("make", optimizer_factories())
def test_optimizer_state_round_trip(make: Any, tmp_path: pathlib.Path) -> None:
    _, opt = trained(make)
    state = opt.state_dict()
    assert state["type"] == type(opt).__name__
    assert any(isinstance(v, np.ndarray) for s in state["state"].values() for v in s.values())
    md.save({"optimizer": state}, tmp_path / "c")
    _, fresh = trained(make, seed=7)
    fresh.load_state_dict(md.load(tmp_path / "c")["optimizer"])
    assert_same(fresh.state_dict(), state)
    # the state is a copy both ways
    entry = state["state"]["0"]
    entry[next(k for k, v in entry.items() if isinstance(v, np.ndarray))][...] = 99
    assert not any(np.any(v == 99) for v in fresh.state[0].values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("make", optimizer_factories())
def test_optimizer_strict_load_lists_every_problem_and_changes_nothing(make: Any) -> None:
    _, opt = trained(make)
    before = copy.deepcopy(opt.state_dict())
    state = copy.deepcopy(before)
    first = state["state"]["0"]
    arrays = [k for k, v in first.items() if isinstance(v, np.ndarray)]
    first[arrays[0]] = first[arrays[0]][:1]                      # shape
    state["state"]["1"][arrays[0]] = state["state"]["1"][arrays[0]].astype(np.float32)  # dtype
    state["state"]["2"] = {}                                     # one parameter too many
    state["hyper"]["lr"] = -1.0                                  # invalid hyper-parameter
    state["extra"] = 1                                           # unexpected key
    with pytest.raises(md.StateDictError) as info:
        opt.load_state_dict(state)
    message = str(info.value)
    for needle in (f"state '0.{arrays[0]}': expected shape",
                   f"state '1.{arrays[0]}': expected dtype float64",
                   "state holds entries for 3 parameters, this optimizer has 2",
                   "hyper-parameter 'lr': expected a finite number >= 0, got -1.0",
                   "unexpected keys ['extra']"):
        assert needle in message, message
    assert_same(opt.state_dict(), before)


@pytest.mark.parametrize("make", optimizer_factories())
@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda s: s.update(type="Other"), "state is for 'Other'"),
        (lambda s: s.pop("hyper"), "missing key 'hyper'"),
        (lambda s: s["hyper"].pop("lr"), "hyper-parameters: expected keys"),
        (lambda s: s["hyper"].update(lr="fast"), "hyper-parameter 'lr': expected a number"),
        (lambda s: s["hyper"].update(lr=float("nan")), "hyper-parameter 'lr': expected a finite number"),
        (lambda s: s.update(state=[1, 2]), "'state' must be a mapping"),
        (lambda s: s["state"].update({"0": 3}), "state '0': expected a mapping"),
        (lambda s: s["state"]["0"].update(junk="x"), "state '0.junk': unsupported value of type str"),
    ],
)
def test_optimizer_refusals(make: Any, edit: Any, needle: str) -> None:
    _, opt = trained(make)
    before = copy.deepcopy(opt.state_dict())
    state = copy.deepcopy(before)
    edit(state)
    with pytest.raises(md.StateDictError) as info:
        opt.load_state_dict(state)
    assert needle in str(info.value)
    assert_same(opt.state_dict(), before)


def test_optimizer_refuses_another_optimizers_state() -> None:
    model, sgd = trained(lambda ps: md.SGD(ps, lr=0.1, momentum=0.9))
    others = [find(n) for n in ("Adam", "RMSprop") if find(n) is not None]
    if not others:
        state = sgd.state_dict() | {"type": "Adam"}
        with pytest.raises(md.StateDictError, match="state is for 'Adam', not 'SGD'"):
            sgd.load_state_dict(state)
        return
    for cls in others:
        other = cls(model.parameters())
        with pytest.raises(md.StateDictError, match=f"state is for 'SGD', not '{cls.__name__}'"):
            other.load_state_dict(sgd.state_dict())


def test_optimizer_bool_hyper_parameter_must_stay_bool() -> None:
    _, opt = trained(lambda ps: md.SGD(ps, lr=0.1, momentum=0.9))
    state = opt.state_dict()
    state["hyper"]["nesterov"] = 1
    with pytest.raises(md.StateDictError, match="'nesterov': expected a bool"):
        opt.load_state_dict(state)
    state["hyper"]["nesterov"] = np.bool_(True)  # numpy bools are fine, stored as bool
    opt.load_state_dict(state)
    assert opt.hyper["nesterov"] is True


def test_optimizer_load_accepts_a_zero_lr_annealed_by_a_schedule() -> None:
    _, opt = trained(lambda ps: md.SGD(ps, lr=0.1, momentum=0.9))
    opt.hyper["lr"] = 0.0  # as a schedule that annealed to zero leaves it
    state = opt.state_dict()
    _, fresh = trained(lambda ps: md.SGD(ps, lr=0.1, momentum=0.9))
    fresh.load_state_dict(state)
    assert fresh.lr == 0.0


def test_states_equal_is_exact() -> None:
    from minidl.testing import states_equal

    a = {"w": np.array([1.0, np.nan]), "n": 3, "sub": [{"m": np.zeros(2, np.float32)}]}
    assert states_equal(a, {"w": np.array([1.0, np.nan]), "n": 3, "sub": [{"m": np.zeros(2, np.float32)}]})
    assert not states_equal(a, {**a, "w": np.array([1.0, 2.0])})
    assert not states_equal(a, {**a, "sub": [{"m": np.zeros(2, np.float64)}]})  # dtype matters
    assert not states_equal(a, {**a, "n": 3.0})  # so does the number's type
    assert not states_equal(a, {"w": a["w"], "n": 3})  # and the keys
    model = md.Sequential(md.Dense(3, 2, rng=0))
    assert states_equal(model.state_dict(), model.state_dict())


# ------------------------------------------------- values a model cannot use (fourth audit)
@pytest.mark.parametrize("key, value, match", [
    ("0.W", lambda v: np.where(np.arange(v.size).reshape(v.shape) == 1, np.nan, v), r"'0\.W': holds 1 NaN/inf"),
    ("1.running_var", lambda v: np.array([-1.0, 1.0, 1.0]), r"'1\.running_var': a variance cannot be negative"),
    ("1.running_mean", lambda v: np.array([np.inf, 0.0, 0.0]), r"'1\.running_mean': holds 1 NaN/inf value\(s\)"),
    ("1.num_batches_tracked", lambda v: np.array(-1), r"'1\.num_batches_tracked': a count of batches cannot"),
])
def test_a_state_the_model_cannot_use_is_refused(key, value, match):
    """A negative running variance made predict NaN; num_batches_tracked = -1 with momentum=None made
    the next training forward divide by zero after counting the batch; NaN weights loaded silently."""
    model = md.Sequential(md.Dense(2, 3, rng=0), md.BatchNorm1d(3, momentum=None))
    model(np.random.default_rng(0).normal(size=(4, 2)))
    before = model.state_dict()
    bad = dict(before)
    bad[key] = value(before[key])
    with pytest.raises(md.StateDictError, match=match):
        model.load_state_dict(bad)
    after = model.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_a_copy_that_fails_half_way_changes_nothing(monkeypatch):
    """Each array was copied and stored in one loop: a MemoryError on the second copy left the first
    parameter replaced.  All copies are made first now."""
    import minidl.aligned as aligned_module

    model = md.Sequential(md.Dense(2, 2, rng=0), md.Dense(2, 2, rng=1))
    old = model.state_dict()
    new = {k: v if k.endswith("_layout") else v + 1.0 for k, v in old.items()}
    calls = []
    copy = aligned_module.copy

    def failing_copy(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("simulated")
        return copy(*args, **kwargs)

    monkeypatch.setattr(aligned_module, "copy", failing_copy)
    with pytest.raises(MemoryError):
        model.load_state_dict(new)
    monkeypatch.undo()
    assert len(calls) == 2
    got = model.state_dict()
    assert all(np.array_equal(got[k], old[k]) for k in old)


def test_a_dotted_attribute_name_is_refused():
    """setattr(layer, 'sub.W', Parameter) collided with the parameter W of the child 'sub': two entries
    named 'sub.W' in named_parameters, one lost by state_dict."""
    class Holder(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.sub = md.Dense(2, 2, rng=0)

    holder = Holder()
    for value in (md.Parameter(np.ones((3, 2))), md.Dense(1, 1), np.random.default_rng(0)):
        with pytest.raises(ValueError, match=r"may not contain '\.', got 'sub\.W'"):
            setattr(holder, "sub.W", value)
    with pytest.raises(ValueError, match=r"may not contain '\.'"):
        holder.register_buffer("sub.count", np.zeros(2))
    assert [name for name, _ in holder.named_parameters()] == ["sub.W"]
    assert list(holder.state_dict()) == ["sub.W", "sub._layout"]


def test_an_empty_name_is_refused_as_it_would_share_its_parents_keys():
    """setattr(layer, '', child): the child's W got the key 'W' of its parent's W, one of them lost."""
    class Holder(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.W = md.Parameter(np.zeros(3))

    holder = Holder()
    for value in (md.Parameter(np.ones(2)), md.Dense(2, 3, bias=False, rng=0), np.random.default_rng(0)):
        with pytest.raises(ValueError, match="needs a name, got ''"):
            setattr(holder, "", value)
    with pytest.raises(ValueError, match="needs a name, got ''"):
        holder.register_buffer("", np.zeros(2))
    assert [name for name, _ in holder.named_parameters()] == ["W"] and list(holder.state_dict()) == ["W"]


def _trained_bn_model() -> tuple[md.Sequential, optim.Adam]:
    model = md.Sequential(md.Dense(2, 2, rng=0), md.BatchNorm1d(2))
    opt = optim.Adam(model.parameters())
    out = model(np.random.default_rng(0).standard_normal((4, 2)))
    model.backward(np.ones_like(out))
    opt.step()
    return model, opt


def test_masked_arrays_are_checked_by_their_hidden_entries_too():
    """The checks saw only the unmasked entries; the copy then kept the hidden ones, unmasked: a
    negative running variance or a NaN weight got in."""
    model, opt = _trained_bn_model()
    before, opt_before = snapshot(model), copy.deepcopy(opt.state_dict())
    for key, value in [("1.running_var", np.ma.masked_less(np.array([-1.0, 1.0]), 0)),
                       ("0.W", np.ma.masked_invalid(np.array([[np.nan, 1.0], [2.0, 3.0], [4.0, 5.0]])))]:
        state = model.state_dict()
        state[key] = value
        with pytest.raises(md.StateDictError, match=r"negative|NaN"):
            model.load_state_dict(state)
        assert_same(snapshot(model), before)
    state = opt.state_dict()
    moments = np.abs(state["state"]["0"]["exp_avg_sq"])
    moments[0, 0] = -1.0
    state["state"]["0"]["exp_avg_sq"] = np.ma.masked_less(moments, 0)
    with pytest.raises(md.StateDictError, match="negative"):
        opt.load_state_dict(state)
    assert_same(opt.state_dict(), opt_before)


def test_a_big_endian_state_loads_as_the_same_numbers():
    """A checkpoint written on a big-endian machine holds '>f8' arrays: the same float64 numbers."""
    model, opt = _trained_bn_model()
    state = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in model.state_dict().items()}
    fresh = md.Sequential(md.Dense(2, 2, rng=5), md.BatchNorm1d(2))
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        assert value.dtype.isnative and value.dtype == model.state_dict()[key].dtype
        np.testing.assert_array_equal(value, model.state_dict()[key])
    opt_state = opt.state_dict()
    opt_state["state"]["0"] = {k: v.astype(v.dtype.newbyteorder(">")) if isinstance(v, np.ndarray) else v
                               for k, v in opt_state["state"]["0"].items()}
    other = optim.Adam(fresh.parameters())
    other.load_state_dict(opt_state)
    loaded, saved = other.state_dict()["state"]["0"], opt.state_dict()["state"]["0"]
    np.testing.assert_array_equal(loaded["exp_avg"], saved["exp_avg"])


def test_counts_beyond_two_to_the_53_are_refused_whatever_their_type():
    """A float step count of 2**60 got past the int-only bound (and the same code then refused its own
    state); a batch count near the int64 limit wrapped around to a negative one at the next step."""
    model, opt = _trained_bn_model()
    state = opt.state_dict()
    for count in (2.0**60, 2**60, float("inf")):
        state["state"]["0"]["step"] = count
        with pytest.raises(md.StateDictError, match=r"state '0.step'"):
            opt.load_state_dict(state)
    assert opt.state_dict()["state"]["0"]["step"] == 1
    bn = model[1]
    bn_state = bn.state_dict()
    bn_state["num_batches_tracked"] = np.array(np.iinfo(np.int64).max)
    with pytest.raises(md.StateDictError, match=r"at most 2\*\*53"):
        bn.load_state_dict(bn_state)
    bn_state["num_batches_tracked"] = np.array(2**53)
    bn.load_state_dict(bn_state)  # the bound itself is a count


def test_int_keys_in_an_optimizer_state_are_named_in_the_refusal():
    opt = optim.SGD([md.Parameter(np.zeros(2))], lr=0.1)
    state = opt.state_dict()
    state["state"] = {0: {}}
    with pytest.raises(md.StateDictError, match=r"keys '0'..'0', as strings\); unexpected keys 0"):
        opt.load_state_dict(state)
