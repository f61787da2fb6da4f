"""Layouts in state dicts: a state of one architecture no longer loads silently into another whose 2-D weight
shapes agree by chance (the bias is row 0 of one W, so ``Conv2D(2, 3, kernel_size=2)`` and ``Conv2D(8, 3,
kernel_size=1)`` both have a (9, 3) W, ``Dense(8, 3)`` and ``Dense(9, 3, bias=False)`` both a (9, 3) one)."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal


def _arrays(model: md.Layer) -> dict[str, Any]:
    """Everything a load could change, as copies: parameters, gradients, buffers, generators."""
    return {"state": model.state_dict(generators=True),
            "grads": {name: p.grad.copy() for name, p in model.named_parameters()}}


def _unchanged(model: md.Layer, before: dict[str, Any]) -> bool:
    after = _arrays(model)
    return (states_equal(after["state"], before["state"])
            and after["grads"].keys() == before["grads"].keys()
            and all(np.array_equal(after["grads"][k], v) for k, v in before["grads"].items()))


def _round_trip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    md.save({"model": state}, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = md.load(buffer)["model"]
    return loaded


def _refusal(model: md.Layer, state: Any, strict: bool = True) -> str:
    """The message of the refusal of ``state``; the model must be unchanged after it."""
    before = _arrays(model)
    with pytest.raises(md.StateDictError) as caught:
        model.load_state_dict(state, strict=strict)
    assert _unchanged(model, before)
    return str(caught.value)


# ------------------------------------------------------------------------------ the two examples
@pytest.mark.parametrize("strict", [True, False])
def test_a_conv_state_is_refused_by_a_conv_whose_W_has_its_shape_but_not_its_meaning(strict: bool) -> None:
    source = md.Sequential(md.Conv2D(2, 3, kernel_size=2, rng=0))
    target = md.Sequential(md.Conv2D(8, 3, kernel_size=1, rng=1))
    assert source.parameters()[0].shape == target.parameters()[0].shape == (9, 3)
    target.parameters()[0].grad[...] = 0.5  # (a gradient too stays as it was)
    message = _refusal(target, source.state_dict(), strict)
    assert message == (
        "Sequential.load_state_dict refused the state (1 problem); nothing was changed:\n"
        "  layer '0' (Conv2D): the state holds a kernel (2, 2) over 2 input channels with a bias, this layer a "
        "kernel (1, 1) over 8 input channels with a bias")


@pytest.mark.parametrize("strict", [True, False])
def test_a_dense_state_is_refused_by_a_dense_without_bias_of_one_more_input(strict: bool) -> None:
    source, target = md.Dense(8, 3, rng=0), md.Dense(9, 3, bias=False, rng=1)
    assert source.W.shape == target.W.shape == (9, 3)
    message = _refusal(target, _round_trip(source.state_dict()), strict)
    assert message == (
        "Dense.load_state_dict refused the state (1 problem); nothing was changed:\n"
        "  Dense: the state holds 8 input features with a bias, this layer 9 input features without a bias")


def test_the_layout_is_state_not_a_parameter() -> None:
    model = md.Sequential(md.Dense(8, 3, rng=0), md.ReLU(), md.Conv1D(3, 4, 2, rng=1), md.GRU(4, 5, rng=2))
    state = model.state_dict()
    assert list(state) == ["0.W", "2.W", "3.W_x", "3.W_h", "0._layout", "2._layout", "3._layout"]
    assert state["0._layout"].dtype == np.int64 and state["0._layout"].tolist() == [8, 1]
    assert state["2._layout"].tolist() == [3, 1, 2, 1, 0] and state["3._layout"].tolist() == [4, 1]
    assert [name for name, _ in model.named_parameters()] == ["0.W", "2.W", "3.W_x", "3.W_h"]
    assert model.num_parameters() == 9 * 3 + 7 * 4 + 5 * 15 + 6 * 15
    opt = md.Adam(model.parameters())
    assert len(opt.state_dict()["state"]) == 4


# ------------------------------------------------------------------------------ round trips
def _cnn(seed: int) -> md.Sequential:
    return md.Sequential(md.Conv2D(1, 4, 3, padding=1, rng=seed), md.BatchNorm2d(4), md.ReLU(),
                         md.Conv2D(4, 4, 3, groups=2, bias=False, rng=seed + 1), md.ConvTranspose2D(4, 2, 2, stride=2,
                                                                                                     rng=seed + 2),
                         md.Flatten(), md.Dense(2 * 4 * 4, 3, rng=seed + 3))


def _mlp(seed: int) -> md.Sequential:
    return md.Sequential(md.Dense(4, 8, rng=seed), md.Tanh(), md.Dense(8, 3, rng=seed + 1))


def _rnn(seed: int) -> md.Sequential:
    return md.Sequential(md.LSTM(3, 5, rng=seed),
                         md.Bidirectional(md.GRU(5, 2, rng=seed + 1), md.GRU(5, 2, rng=seed + 2)),
                         md.Dense(4, 2, rng=seed + 3))


@pytest.mark.parametrize("make", [_cnn, _mlp, _rnn], ids=["cnn", "mlp", "rnn"])
def test_a_round_trip_through_save_and_load_still_loads(make: Any) -> None:
    source, target = make(0), make(10)
    state = _round_trip(source.state_dict())
    assert any(key.endswith("._layout") for key in state)
    assert target.load_state_dict(state) == md.LoadResult([], [])
    assert states_equal(target.state_dict(), source.state_dict())
    x = np.random.default_rng(0).standard_normal({_cnn: (2, 1, 4, 4), _mlp: (2, 4), _rnn: (2, 6, 3)}[make])
    source.eval(), target.eval()
    np.testing.assert_array_equal(target(x), source(x))


def test_a_round_trip_keeps_refusing_mismatches() -> None:
    # a CNN whose first kernel is 1x1 over 9 channels: W (10, 4) as the 3x3 over 1 channel's
    cnn = md.Sequential(md.Conv2D(9, 4, 1, rng=0))
    message = _refusal(cnn, _round_trip(md.Sequential(md.Conv2D(1, 4, 3, padding=1, rng=1)).state_dict()))
    assert message.endswith("layer '0' (Conv2D): the state holds a kernel (3, 3) over 1 input channel with a bias, "
                            "this layer a kernel (1, 1) over 9 input channels with a bias")
    # an MLP whose head lost its bias and gained an input
    mlp = md.Sequential(md.Dense(4, 8, rng=0), md.Tanh(), md.Dense(9, 3, bias=False, rng=1))
    message = _refusal(mlp, _round_trip(_mlp(0).state_dict()), strict=False)
    assert message.endswith("layer '2' (Dense): the state holds 8 input features with a bias, this layer 9 input "
                            "features without a bias")
    # an RNN of one more input without biases: W_x (4, 20) and W_h (5, 20) as the biased LSTM's
    rnn = _rnn(0)
    rnn[0] = md.LSTM(4, 5, bias=False, rng=3)
    message = _refusal(rnn, _round_trip(_rnn(1).state_dict()))
    assert message.endswith("layer '0' (LSTM): the state holds 3 input features with biases, this layer 4 input "
                            "features without biases")


@pytest.mark.parametrize("source, target, words", [
    (md.Conv1D(2, 3, 4, rng=0), md.Conv1D(4, 3, 2, rng=1),
     "a kernel of size 4 over 2 input channels with a bias, this layer a kernel of size 2 over 4 input channels"),
    (md.Conv2D(4, 4, 1, groups=2, rng=0), md.Conv2D(2, 4, 1, rng=1),
     "a kernel (1, 1) over 4 input channels in 2 groups with a bias, this layer a kernel (1, 1) over 2 input "
     "channels with a bias"),
    (md.ConvTranspose2D(2, 3, (1, 4), rng=0), md.ConvTranspose2D(2, 3, (2, 2), rng=1),
     "a transposed convolution's kernel (1, 4) over 2 input channels with a bias, this layer a transposed "
     "convolution's kernel (2, 2) over 2 input channels"),
    (md.ConvTranspose1D(4, 3, 2, rng=0), md.ConvTranspose1D(2, 3, 4, rng=1),
     "a transposed convolution's kernel of size 2 over 4 input"),
    (md.RNN(8, 3, rng=0), md.RNN(9, 3, bias=False, rng=1), "8 input features with biases, this layer 9 input"),
    (md.GRU(8, 3, rng=0), md.GRU(9, 3, bias=False, rng=1), None),  # (W_h's bias row: the shapes differ too)
])
def test_every_layer_with_an_absorbed_bias_refuses_another_layout(source: md.Layer, target: md.Layer,
                                                                     words: str | None) -> None:
    message = _refusal(target, source.state_dict(), strict=False)
    name = type(target).__name__
    assert f"\n  {name}: the state holds " in message
    if words is not None:
        assert words in message and "expected shape" not in message


def test_a_state_without_layouts_loads_as_before() -> None:
    """A state saved before layouts were, converted from PyTorch, or made by hand: checked by its shapes."""
    for make in (_cnn, _mlp, _rnn):
        source, target = make(0), make(10)
        old = {key: value for key, value in source.state_dict().items() if not key.endswith("_layout")}
        assert target.load_state_dict(_round_trip(old)) == md.LoadResult([], [])  # no layout reported missing
        assert states_equal(target.state_dict(), source.state_dict())
    # (and so, as before, the shapes alone decide: such a state loads into the other architecture)
    old = {"W": md.Dense(8, 3, rng=0).W.data}
    md.Dense(9, 3, bias=False).load_state_dict(old)
    # some layouts present, others not: those present are compared
    state = _mlp(0).state_dict()
    del state["0._layout"]
    assert _mlp(5).load_state_dict(state) == md.LoadResult([], [])
    message = _refusal(md.Sequential(md.Dense(4, 8), md.Tanh(), md.Dense(9, 3, bias=False)), state, strict=False)
    assert "layer '2' (Dense)" in message and "layer '0'" not in message


# ------------------------------------------------------------------------------ malformed layouts
@pytest.mark.parametrize("value, got", [
    ([8, 1], "got a list"),
    ((8, 1), "got a tuple"),
    (np.array([8.5, 1.0]), "got an array of dtype float64 and shape (2,) with numbers that are not finite whole "
                           "numbers (arithmetic over a whole state dict, e.g. an average of two checkpoints of "
                           "different layouts, made them so: leave the '_layout' entries out of it)"),
    (np.array([8.0, np.nan], dtype=np.float32), "got an array of dtype float32 and shape (2,) with numbers that are "
                                                "not finite whole numbers (arithmetic over a whole state dict, e.g. "
                                                "an average of two checkpoints of different layouts, made them so: "
                                                "leave the '_layout' entries out of it)"),
    (np.array([8.0, np.inf]), "got an array of dtype float64 and shape (2,) with numbers that are not finite whole "
                              "numbers (arithmetic over a whole state dict, e.g. an average of two checkpoints of "
                              "different layouts, made them so: leave the '_layout' entries out of it)"),
    (np.array([[8.0, 1.0]]), "got an array of dtype float64 and shape (1, 2)"),
    (np.array([8 + 0j, 1 + 0j]), "got an array of dtype complex128 and shape (2,)"),
    (np.array([True, True]), "got an array of dtype bool and shape (2,)"),
    (np.array([[8, 1]]), "got an array of dtype int64 and shape (1, 2)"),
    (np.array(8), "got an array of dtype int64 and shape ()"),
    (np.array(["8", "1"]), "got an array of dtype <U1 and shape (2,)"),
    (None, "got a NoneType"),
])
def test_a_layout_that_is_not_a_1d_array_of_whole_numbers_is_refused(value: Any, got: str) -> None:
    state = md.Sequential(md.Dense(8, 3, rng=0)).state_dict()
    state["0._layout"] = value
    for strict in (True, False):
        message = _refusal(md.Sequential(md.Dense(8, 3, rng=1)), state, strict)
        assert message.splitlines()[1:] == [
            "  '0._layout': expected the layout of layer '0' (Dense), a 1-D array of whole numbers such as "
            f"array([8, 1]), {got}"]


@pytest.mark.parametrize("value, shown", [
    (np.array([8, -1]), "(8, -1)"),
    (np.array([8, 2]), "(8, 2)"),
    (np.array([0, 1]), "(0, 1)"),
    (np.array([8.0, 2.0], dtype=np.float32), "(8, 2)"),
])
def test_a_layout_no_such_layer_has_is_refused_as_numbers(value: np.ndarray, shown: str) -> None:
    state = md.Dense(8, 3, rng=0).state_dict()
    state["_layout"] = value
    message = _refusal(md.Dense(8, 3, rng=1), state, strict=False)
    assert message.splitlines()[1:] == [
        f"  Dense: the state holds the layout {shown}, which no Dense has; this layer's is (8, 1) (8 input features "
        "with a bias)"]


@pytest.mark.parametrize("value, shown", [
    (np.array([8, 1, 0]), "a layout of 3 numbers, (8, 1, 0)"),
    (np.array([], dtype=np.int64), "a layout of 0 numbers, ()"),
    (np.array([8], dtype=np.uint8), "a layout of 1 number, (8,)"),
    (np.array([2.0, 1.0, 2.0, 2.0, 1.0, 0.0]), "a layout of 6 numbers, (2, 1, 2, 2, 1, 0)"),  # (a Conv2D's, cast)
    (np.arange(100_000), "a layout of 100000 numbers, (0, 1, 2, 3, 4, 5, 6, 7, ... (100000 numbers))"),
])
def test_a_layout_of_another_length_is_refused_as_another_kind_of_layers(value: np.ndarray, shown: str) -> None:
    state = md.Dense(8, 3, rng=0).state_dict()
    state["_layout"] = value
    message = _refusal(md.Dense(8, 3, rng=1), state, strict=False)
    assert message.splitlines()[1:] == [
        f"  Dense: the state holds {shown}, from another kind of layer (a Dense's has 2); this layer's is (8, 1) (8 "
        "input features with a bias)"]


@pytest.mark.parametrize("value", [np.array([2**63 - 1, 1]), np.array([2**64 - 1, 1], dtype=np.uint64)])
def test_a_huge_layout_is_refused_as_it_is(value: np.ndarray) -> None:
    state = md.Dense(8, 3, rng=0).state_dict()
    state["_layout"] = value
    assert _refusal(md.Dense(8, 3, rng=1), state).splitlines()[1:] == [
        f"  Dense: the state holds {int(value[0])} input features with a bias, this layer 8 input features with a bias"]


def test_a_conv_layout_with_channels_that_groups_do_not_divide_is_no_conv_layout() -> None:
    state = md.Conv2D(4, 4, 1, groups=2, rng=0).state_dict()
    state["_layout"] = np.array([3, 2, 1, 1, 1, 0])
    message = _refusal(md.Conv2D(4, 4, 1, groups=2, rng=1), state)
    assert "the state holds the layout (3, 2, 1, 1, 1, 0), which no Conv2D has; this layer's is (4, 2, 1, 1, 1, 0) " \
           "(a kernel (1, 1) over 4 input channels in 2 groups with a bias)" in message


class _Plain(md.Layer):
    """A layer of one's own with a W like a Dense(8, 3)'s, and no layout."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.zeros((9, 3)))


@pytest.mark.parametrize("strict", [True, False])
def test_a_layout_for_a_layer_that_has_none_is_refused(strict: bool) -> None:
    state = md.Sequential(md.Dense(8, 3, rng=0)).state_dict()
    message = _refusal(md.Sequential(_Plain()), state, strict)
    assert message.splitlines()[1:] == [
        "  layer '0' (_Plain): the state holds a layout for it, (8, 1), but this layer has none: the state was saved "
        "from another kind of layer"]  # (not also an unexpected key)
    # a layout whose path names no layer is an unexpected key as any other
    state = md.Sequential(md.Dense(8, 3, rng=0), md.Dense(3, 3, rng=1)).state_dict()
    target = md.Sequential(md.Dense(8, 3, rng=2))
    if strict:
        assert _refusal(target, state).splitlines()[1:] == ["  unexpected key '1.W'", "  unexpected key '1._layout'"]
    else:
        assert target.load_state_dict(state, strict=False) == md.LoadResult([], ["1.W", "1._layout"])


def test_a_layout_mismatch_is_listed_with_every_other_problem() -> None:
    state = md.Sequential(md.Dense(8, 3, rng=0), md.Dense(3, 2, rng=1)).state_dict()
    state["1.W"] = state["1.W"][:, :1]
    message = _refusal(md.Sequential(md.Dense(9, 3, bias=False, rng=2), md.Dense(3, 2, rng=3), md.Dense(2, 2)),
                       state)
    assert message.splitlines() == [
        "Sequential.load_state_dict refused the state (3 problems); nothing was changed:",
        "  missing key '2.W'",
        "  layer '0' (Dense): the state holds 8 input features with a bias, this layer 9 input features without a "
        "bias",
        "  '1.W': expected shape (4, 2), got (4, 1)"]


# ------------------------------------------------------------------------------ checkpoints and hooks
def test_a_whole_checkpoint_is_still_refused_with_the_hint_and_its_entry_loads() -> None:
    model = _mlp(0)
    opt = md.Adam(model.parameters())
    checkpoint = _round_trip({"model": _mlp(1).state_dict(), "optimizer": opt.state_dict(), "epoch": 3})["model"]
    checkpoint = {"model": checkpoint, "optimizer": opt.state_dict(), "epoch": 3}
    for strict in (True, False):
        message = _refusal(model, checkpoint, strict)
        assert message.endswith("pass state['model']")
    # an old checkpoint, nested, without layouts: refused whole with the same hint too
    old = {"model": {k: v for k, v in _mlp(1).state_dict().items() if not k.endswith("_layout")}, "epoch": 3}
    assert _refusal(model, old, strict=False).endswith("pass state['model']")
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])


def test_early_stopping_restores_best_weights_with_their_layouts() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 3))
    model = _mlp(0)
    es = md.EarlyStopping("loss", patience=1, restore_best_weights=True)
    md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=3, verbose=0,
           early_stopping=es)
    assert es.best_state is not None and "0._layout" in es.best_state
    again = md.EarlyStopping("loss")
    again.load_state_dict(_round_trip(es.state_dict()))
    with pytest.raises(md.StateDictError, match=re.escape("layer '2' (Dense): the state holds 8 input features")):
        md.Sequential(md.Dense(4, 8), md.Tanh(), md.Dense(9, 3, bias=False)).load_state_dict(again.best_state or {})


def test_the_layout_key_is_reserved() -> None:
    layer = md.Dense(2, 2)
    with pytest.raises(KeyError, match="cannot register a parameter, layer, buffer or generator as '_layout': "
                                       "that is the key of the layer's layout in state_dict"):
        layer.register_buffer("_layout", np.zeros(2))
    with pytest.raises(KeyError, match="'_layout'"):
        layer._layout = md.Parameter(np.zeros(2))  # type: ignore[assignment]
    assert layer.state_dict()["_layout"].tolist() == [2, 1]


class _Scaled(md.Layer):
    """A layer of one's own that declares a layout."""

    def __init__(self, n: int, twice: bool) -> None:
        super().__init__()
        self.twice = twice
        self.w = md.Parameter(np.ones(n))

    def state_layout(self) -> tuple[int, ...]:
        return (int(self.twice),)

    def layout_words(self, layout: tuple[int, ...]) -> str | None:
        return {0: "a single scale", 1: "a doubled scale"}.get(layout[0]) if len(layout) == 1 else None


def test_a_layer_of_ones_own_can_declare_a_layout() -> None:
    state = _Scaled(3, True).state_dict()
    assert list(state) == ["w", "_layout"]
    _Scaled(3, True).load_state_dict(state)
    assert _refusal(_Scaled(3, False), state).endswith("_Scaled: the state holds a doubled scale, this layer a "
                                                       "single scale")


def test_a_state_layout_that_is_not_a_tuple_of_ints_is_a_type_error() -> None:
    class Bad(_Scaled):
        def state_layout(self) -> Any:
            return [1.5]

    with pytest.raises(TypeError, match=r"Bad.state_layout\(\) must return None or a tuple of ints, got \[1.5\]"):
        Bad(2, True).state_dict()


# ------------------------------------------------------------------------------ review: whole-state arithmetic
def _mixed(seed: int, dtype: Any = np.float64) -> md.Sequential:
    return md.Sequential(md.Conv2D(2, 3, 2, rng=seed, dtype=dtype), md.ReLU(), md.Flatten(),
                         md.Dense(12, 2, rng=seed + 1, dtype=dtype), md.LSTM(2, 3, rng=seed + 2, dtype=dtype))


def test_a_state_cast_as_a_whole_loads_into_a_model_of_that_dtype() -> None:
    # what checkpoints.md says to do for a dtype mismatch: cast the whole state
    state = {key: value.astype(np.float32) for key, value in _mixed(0).state_dict().items()}
    assert state["0._layout"].dtype == np.float32
    model = _mixed(5, np.float32)
    assert model.load_state_dict(state) == md.LoadResult([], [])
    assert states_equal({k: v for k, v in model.state_dict().items() if not k.endswith("._layout")},
                        {k: v for k, v in state.items() if not k.endswith("._layout")})
    assert model.state_dict()["0._layout"].dtype == np.int64  # (its own layouts, not the state's floats)


def test_an_average_and_an_ema_of_states_load() -> None:
    a, b = _mixed(0).state_dict(), _mixed(10).state_dict()
    average = {key: (a[key] + b[key]) / 2 for key in a}
    model = _mixed(20)
    assert model.load_state_dict(average) == md.LoadResult([], [])
    np.testing.assert_array_equal(model.state_dict()["3.W"], (a["3.W"] + b["3.W"]) / 2)
    ema = dict(a)
    for _ in range(50):
        ema = {key: 0.999 * ema[key] + 0.001 * b[key] for key in ema}
    assert model.load_state_dict(ema, strict=False) == md.LoadResult([], [])
    np.testing.assert_array_equal(model.state_dict()["0.W"], ema["0.W"])


def test_an_average_of_two_layouts_is_still_refused() -> None:
    a = md.Sequential(md.Dense(8, 3, rng=0)).state_dict()
    b = md.Sequential(md.Dense(9, 3, bias=False, rng=1)).state_dict()
    average = {key: (a[key] + b[key]) / 2 for key in a}
    message = _refusal(md.Sequential(md.Dense(8, 3, rng=2)), average, strict=False)
    assert message.splitlines()[1:] == [
        "  '0._layout': expected the layout of layer '0' (Dense), a 1-D array of whole numbers such as "
        "array([8, 1]), got an array of dtype float64 and shape (2,) with numbers that are not finite whole numbers "
        "(arithmetic over a whole state dict, e.g. an average of two checkpoints of different layouts, made them "
        "so: leave the '_layout' entries out of it)"]
    average["0._layout"] = np.array([9.0, 0.0])  # (whole numbers, but another layout)
    assert _refusal(md.Sequential(md.Dense(8, 3, rng=2)), average).splitlines()[1:] == [
        "  layer '0' (Dense): the state holds 9 input features without a bias, this layer 8 input features with a "
        "bias"]


# ------------------------------------------------------------------------------ review: transposed convolutions
@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("conv, transposed, kernel", [
    (md.Conv2D(2, 3, 2, rng=0), md.ConvTranspose2D(2, 3, 2, rng=1), "(2, 2)"),
    (md.Conv1D(2, 3, 2, rng=0), md.ConvTranspose1D(2, 3, 2, rng=1), "of size 2"),
])
def test_a_convolution_state_is_refused_by_the_transposed_convolution_of_its_settings(
        conv: md.Layer, transposed: md.Layer, kernel: str, strict: bool) -> None:
    assert conv.W.shape == transposed.W.shape
    assert conv.state_dict()["_layout"].tolist()[-1] == 0 and transposed.state_dict()["_layout"].tolist()[-1] == 1
    name = type(transposed).__name__
    assert _refusal(transposed, conv.state_dict(), strict).splitlines()[1:] == [
        f"  {name}: the state holds a kernel {kernel} over 2 input channels with a bias, this layer a transposed "
        f"convolution's kernel {kernel} over 2 input channels with a bias"]
    name = type(conv).__name__
    assert _refusal(conv, transposed.state_dict(), strict).splitlines()[1:] == [
        f"  {name}: the state holds a transposed convolution's kernel {kernel} over 2 input channels with a bias, "
        f"this layer a kernel {kernel} over 2 input channels with a bias"]


def test_a_conv1d_layout_in_a_conv2d_is_from_another_kind_of_layer() -> None:
    state = md.Conv1D(2, 3, 4, rng=0).state_dict()
    state["W"] = np.zeros((9, 3))
    assert _refusal(md.Conv2D(2, 3, 2, rng=1), state, strict=False).splitlines()[1:] == [
        "  Conv2D: the state holds a layout of 5 numbers, (2, 1, 4, 1, 0), from another kind of layer (a Conv2D's "
        "has 6); this layer's is (2, 1, 2, 2, 1, 0) (a kernel (2, 2) over 2 input channels with a bias)"]


# ------------------------------------------------------------------------------ review: a state without its prefix
@pytest.mark.parametrize("strict", [True, False])
def test_a_bare_dense_state_for_a_sequential_says_its_keys_lack_the_prefix(strict: bool) -> None:
    state = md.Dense(4, 1, rng=0).state_dict()
    message = _refusal(md.Sequential(md.Dense(4, 1, rng=1)), state, strict)
    prefix = ("  Sequential: the state holds a layout for it, (4, 1), but it holds layers and has none: its keys "
              "lack the prefix '0.' (with it they are those of layer '0' (Dense))")
    assert message.splitlines()[1:] == (["  missing key '0.W'", "  unexpected key 'W'", prefix] if strict else
                                        [prefix])
    assert "another kind of layer" not in message
    # deeper: a block's state given to the model that holds it
    block = md.Sequential(md.Dense(4, 2, rng=0), md.Tanh(), md.Dense(2, 1, rng=1))
    model = md.Sequential(md.Sequential(md.Dense(4, 2, rng=2), md.Tanh(), md.Dense(2, 1, rng=3)))
    assert block.load_state_dict(block.state_dict()) == md.LoadResult([], [])
    message = _refusal(model, md.Dense(4, 2, rng=0).state_dict(), strict)
    assert message.splitlines()[-1] == (
        "  Sequential: the state holds a layout for it, (4, 1), but it holds layers and has none: its keys lack the "
        "prefix '0.0.' (with it they are those of layer '0.0' (Dense))")


def test_a_layout_for_a_container_that_no_prefix_explains_is_an_unexpected_key() -> None:
    state = md.Sequential(md.Dense(4, 1, rng=0)).state_dict()
    state["_layout"] = np.array([7, 1])
    model = md.Sequential(md.Dense(4, 1, rng=1))
    assert model.load_state_dict(state, strict=False) == md.LoadResult([], ["_layout"])
    assert _refusal(md.Sequential(md.Dense(4, 1, rng=1)), state).splitlines()[1:] == ["  unexpected key '_layout'"]
