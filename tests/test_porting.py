"""state_dict_from_torch without torch: hand-made NumPy dicts under PyTorch's key names (layouts, transposes,
suffixes, errors); tests/test_porting_torch.py compares the ported models' outputs with PyTorch's."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.porting import state_dict_from_torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)


def r(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def ported(model: md.Layer, state: dict[str, Any], **kwargs: Any) -> dict[str, np.ndarray]:
    """The converted state, checked to load into ``model`` (strict)."""
    result = state_dict_from_torch(model, state, **kwargs)
    model.load_state_dict(result)
    return result


# ------------------------------------------------------------------------------ layouts
def test_dense_is_the_bias_row_over_the_transposed_weight() -> None:
    w, b, w2 = r(4, 3), r(4), r(2, 4)
    model = md.Sequential(md.Dense(3, 4), md.ReLU(), md.Dense(4, 2, bias=False))
    state = ported(model, {"0.weight": w, "0.bias": b, "2.weight": w2})
    assert set(state) == {"0.W", "2.W"}
    np.testing.assert_array_equal(state["0.W"], np.vstack([b, w.T]))
    np.testing.assert_array_equal(state["2.W"], w2.T)
    x = r(5, 3)
    np.testing.assert_allclose(model(x), np.maximum(x @ w.T + b, 0) @ w2.T, rtol=1e-13)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_convolutions_are_from_kernels_layout(groups: int, bias: bool) -> None:
    cases = [(md.Conv2D(4, 6, 3, groups=groups, bias=bias), r(6, 4 // groups, 3, 3), r(6), md.Conv2D),
             (md.Conv1D(4, 6, 3, groups=groups, bias=bias), r(6, 4 // groups, 3), r(6), md.Conv1D),
             (md.ConvTranspose2D(4, 6, (2, 3), groups=groups, bias=bias), r(4, 6 // groups, 2, 3), r(6),
              md.ConvTranspose2D),
             (md.ConvTranspose1D(4, 6, 3, groups=groups, bias=bias), r(4, 6 // groups, 3), r(6), md.ConvTranspose1D)]
    for layer, weight, b, kind in cases:
        state = ported(layer, {"weight": weight, **({"bias": b} if bias else {})})
        expected = kind.from_kernel(weight, b if bias else None, groups=groups)  # the documented recipe
        np.testing.assert_array_equal(state["W"], expected.W.data)
        np.testing.assert_array_equal(layer.kernel, weight)


def test_norms_rename_weight_and_bias_and_keep_the_running_statistics() -> None:
    model = md.Sequential(md.BatchNorm2d(3), md.GroupNorm(1, 3), md.InstanceNorm2d(3, affine=True,
                          track_running_stats=True), md.LayerNorm((3, 2)), md.InstanceNorm2d(3), md.PReLU(3))
    torch_state: dict[str, Any] = {"5.weight": r(3)}
    for i in (0, 2):
        torch_state |= {f"{i}.weight": r(3), f"{i}.bias": r(3), f"{i}.running_mean": r(3),
                        f"{i}.running_var": r(3) ** 2, f"{i}.num_batches_tracked": np.array(7)}
    torch_state |= {"1.weight": r(3), "1.bias": r(3), "3.weight": r(3, 2), "3.bias": r(3, 2)}
    state = ported(model, torch_state)
    for i in (0, 1, 2, 3):
        np.testing.assert_array_equal(state[f"{i}.gamma"], torch_state[f"{i}.weight"])
        np.testing.assert_array_equal(state[f"{i}.beta"], torch_state[f"{i}.bias"])
    assert state["0.num_batches_tracked"].dtype == np.int64 and state["0.num_batches_tracked"].shape == ()
    assert int(model[0].num_batches_tracked) == 7
    np.testing.assert_array_equal(model[2].running_var, torch_state["2.running_var"])
    np.testing.assert_array_equal(model[5].weight.data, torch_state["5.weight"])


def test_values_take_the_dtype_of_the_minidl_parameters() -> None:
    model = md.Sequential(md.Embedding(5, 3, dtype=np.float32), md.BatchNorm1d(3, dtype=np.float32))
    state = ported(model, {"0.weight": r(5, 3), "1.weight": np.ones(3, np.float16), "1.bias": np.zeros(3, int),
                           "1.running_mean": np.zeros(3), "1.running_var": np.ones(3),
                           "1.num_batches_tracked": np.array(2, dtype=np.int32)})
    assert {key: value.dtype for key, value in state.items()} == {
        "0.W": np.float32, "1.gamma": np.float32, "1.beta": np.float32, "1.running_mean": np.float32,
        "1.running_var": np.float32, "1.num_batches_tracked": np.int64}


def test_attention_matches_from_projections() -> None:
    E = 8
    w_in, b_in, w_out, b_out = r(3 * E, E), r(3 * E), r(E, E), r(E)
    layer = md.MultiHeadAttention(E, 2)
    state = ported(layer, {"in_proj_weight": w_in, "in_proj_bias": b_in, "out_proj.weight": w_out,
                           "out_proj.bias": b_out})
    expected = md.MultiHeadAttention.from_projections(w_in, w_out, 2, b_in, b_out)
    np.testing.assert_array_equal(state["W_qkv"], expected.W_qkv.data)
    np.testing.assert_array_equal(state["W_o"], expected.W_o.data)
    no_bias = ported(md.MultiHeadAttention(E, 2, bias=False), {"in_proj_weight": w_in, "out_proj.weight": w_out})
    np.testing.assert_array_equal(no_bias["W_qkv"], w_in.T)


def recurrent_state(kind: str, inputs: int, H: int, suffix: str = "_l0", bias: bool = True) -> dict[str, np.ndarray]:
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
    state = {f"weight_ih{suffix}": r(G * H, inputs), f"weight_hh{suffix}": r(G * H, H)}
    if bias:
        state |= {f"bias_ih{suffix}": r(G * H), f"bias_hh{suffix}": r(G * H)}
    return state


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_rnn_and_lstm_sum_the_two_biases_into_one_row(kind: str) -> None:
    t = recurrent_state(kind, 3, 5)
    state = ported(getattr(md, kind)(3, 5), t)
    np.testing.assert_array_equal(state["W_x"], np.vstack([t["bias_ih_l0"] + t["bias_hh_l0"], t["weight_ih_l0"].T]))
    np.testing.assert_array_equal(state["W_h"], t["weight_hh_l0"].T)
    t = recurrent_state(kind, 3, 5, bias=False)
    state = ported(getattr(md, kind)(3, 5, bias=False), t)
    np.testing.assert_array_equal(state["W_x"], t["weight_ih_l0"].T)


def test_gru_keeps_the_recurrent_bias_as_a_row_of_its_own() -> None:
    t = recurrent_state("GRU", 3, 5)
    state = ported(md.GRU(3, 5), t)
    np.testing.assert_array_equal(state["W_x"], np.vstack([t["bias_ih_l0"], t["weight_ih_l0"].T]))
    np.testing.assert_array_equal(state["W_h"], np.vstack([t["bias_hh_l0"], t["weight_hh_l0"].T]))


def test_stacked_and_bidirectional_cells_read_the_layer_and_reverse_suffixes() -> None:
    model = md.Sequential(md.Stack(md.Bidirectional(md.LSTM(3, 4), md.LSTM(3, 4)),
                                   md.Bidirectional(md.LSTM(8, 4), md.LSTM(8, 4))), md.Dense(8, 2))
    t = {f"0.{key}": value for suffix, n in [("_l0", 3), ("_l0_reverse", 3), ("_l1", 8), ("_l1_reverse", 8)]
         for key, value in recurrent_state("LSTM", n, 4, suffix).items()}
    t |= {"1.weight": r(2, 8), "1.bias": r(2)}
    state = ported(model, t)
    np.testing.assert_array_equal(state["0.1.backward_layer.W_h"], t["0.weight_hh_l1_reverse"].T)
    np.testing.assert_array_equal(state["0.0.forward_layer.W_h"], t["0.weight_hh_l0"].T)
    two = recurrent_state("GRU", 3, 4) | recurrent_state("GRU", 4, 4, "_l1")
    stack = ported(md.Stack(md.GRU(3, 4), md.GRU(4, 4)), two)
    assert set(stack) == {"0.W_x", "0.W_h", "1.W_x", "1.W_h"}


def test_a_stack_of_other_layers_keeps_its_positions() -> None:
    model = md.Stack(md.Embedding(10, 4), md.GRU(4, 4))
    state = ported(model, {"0.weight": r(10, 4)} | {f"1.{k}": v for k, v in recurrent_state("GRU", 4, 4).items()})
    assert set(state) == {"0.W", "1.W_x", "1.W_h"}


def test_a_transformer_stack_reads_pytorchs_layers_k() -> None:
    E, F = 8, 16
    encoder = md.TransformerEncoder(md.TransformerEncoderLayer(E, 2, F), md.TransformerEncoderLayer(E, 2, F),
                                    norm=md.LayerNorm(E))
    t: dict[str, np.ndarray] = {"norm.weight": r(E), "norm.bias": r(E)}
    for k in (0, 1):
        t |= {f"layers.{k}.self_attn.in_proj_weight": r(3 * E, E), f"layers.{k}.self_attn.in_proj_bias": r(3 * E),
              f"layers.{k}.self_attn.out_proj.weight": r(E, E), f"layers.{k}.self_attn.out_proj.bias": r(E),
              f"layers.{k}.linear1.weight": r(F, E), f"layers.{k}.linear1.bias": r(F),
              f"layers.{k}.linear2.weight": r(E, F), f"layers.{k}.linear2.bias": r(E)}
        t |= {f"layers.{k}.norm{j}.{p}": r(E) for j in (1, 2) for p in ("weight", "bias")}
    state = ported(encoder, t)
    np.testing.assert_array_equal(state["1.linear2.W"][1:], t["layers.1.linear2.weight"].T)
    np.testing.assert_array_equal(state["norm.gamma"], t["norm.weight"])


def test_the_model_is_not_changed_and_values_are_copies() -> None:
    model = md.Sequential(md.Embedding(4, 2))
    before = model[0].W.data.copy()
    weight = r(4, 2)
    state = state_dict_from_torch(model, {"0.weight": weight})
    np.testing.assert_array_equal(model[0].W.data, before)
    state["0.W"][0, 0] = 99.0
    assert weight[0, 0] != 99.0


def test_tied_parameters_are_keyed_as_state_dict_keys_them_and_their_torch_entries_must_agree() -> None:
    a, b = md.Dense(3, 3), md.Dense(3, 3)
    b.W = a.W
    model = md.Sequential(a, md.ReLU(), b)
    w, bias = r(3, 3), r(3)
    state = ported(model, {"0.weight": w, "0.bias": bias, "2.weight": w, "2.bias": bias})  # torch's tied Linears
    assert list(state) == ["0.W"] and model[2].W is model[0].W
    np.testing.assert_array_equal(state["0.W"], np.vstack([bias, w.T]))
    message = refusal(model, {"0.weight": w, "0.bias": bias, "2.weight": w + 1, "2.bias": bias})
    assert message.splitlines()[1:] == [
        "  layer '2' (Dense): its 'W' is tied to layer '0' (Dense)'s ('0.W'), but the torch entries converted for "
        "them differ: '2.weight', '2.bias' against '0.weight', '0.bias' (tie them in the torch model too, or untie "
        "them in the minidl one)"]


def test_a_layer_held_in_two_places_reads_both_and_they_must_agree() -> None:
    class Twice(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            shared, norm = md.Dense(2, 2), md.BatchNorm1d(2)
            self.a, self.b, self.c, self.d = shared, norm, shared, norm

    model = Twice()  # PyTorch's state_dict lists a shared module in every place
    t = {"0.weight": r(2, 2), "0.bias": r(2), "1.weight": r(2), "1.bias": r(2), "1.running_mean": r(2),
         "1.running_var": r(2) ** 2, "1.num_batches_tracked": np.array(3)}
    t = {f"{'ab'[int(k[0])]}{k[1:]}": v for k, v in t.items()}
    t |= {f"{'cd'['ab'.index(k[0])]}{k[1:]}": v for k, v in t.items()}
    state = ported(model, t)
    assert set(state) == {"a.W", "b.gamma", "b.beta", "b.running_mean", "b.running_var", "b.num_batches_tracked"}
    message = refusal(model, t | {"d.running_var": t["b.running_var"] + 1})
    assert message.splitlines()[1:] == [
        "  layer 'd' (BatchNorm1d): its 'running_var' is tied to layer 'b' (BatchNorm1d)'s ('b.running_var'), "
        "but the torch entries converted for them differ: 'd.weight', 'd.bias', 'd.running_mean', 'd.running_var', "
        "'d.num_batches_tracked' against 'b.weight', 'b.bias', 'b.running_mean', 'b.running_var', "
        "'b.num_batches_tracked' (tie them in the torch model too, or untie them in the minidl one)"]


@pytest.mark.parametrize("kind", ["RNN", "GRU"])
def test_float32_torch_biases_are_summed_in_float64(kind: str) -> None:
    H = 6
    t = {key: value.astype(np.float32) for key, value in recurrent_state(kind, 3, H).items()}
    t["bias_ih_l0"][:] = 1.0
    t["bias_hh_l0"][:] = 1e-8  # lost in a float32 sum
    state = ported(getattr(md, kind)(3, H), t)
    assert state["W_x"].dtype == np.float64
    summed = np.float64(1.0) + np.float64(np.float32(1e-8))
    assert summed != 1.0
    if kind == "RNN":
        np.testing.assert_array_equal(state["W_x"][0], np.full(H, summed))
    else:  # the GRU keeps the two rows, each exactly the float32 value
        np.testing.assert_array_equal(state["W_h"][0], t["bias_hh_l0"].astype(np.float64))


class FakeTensor:
    """What the reader meets in a tensor that requires grad (``numpy()`` refused until ``detach()``) or a
    bfloat16 one (no NumPy dtype: ``float()`` first)."""

    def __init__(self, value: np.ndarray, grad: bool = True, dtype: str = "torch.float32") -> None:
        self.value, self.grad, self.dtype = value, grad, dtype

    def detach(self) -> FakeTensor:
        return FakeTensor(self.value, False, self.dtype)

    def float(self) -> FakeTensor:
        return FakeTensor(self.value, self.grad, "torch.float32")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad.")
        if self.dtype == "torch.bfloat16":
            raise TypeError("Got unsupported ScalarType BFloat16")
        return self.value


def test_tensors_that_require_grad_and_bfloat16_ones_are_read() -> None:
    w, b = r(2, 3).astype(np.float32), r(2).astype(np.float32)
    state = ported(md.Dense(3, 2), {"weight": FakeTensor(w), "bias": FakeTensor(b, dtype="torch.bfloat16")})
    np.testing.assert_array_equal(state["W"], np.vstack([b, w.T]).astype(np.float64))


# ------------------------------------------------------------------------------ refusals
def refusal(model: md.Layer, state: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(model, state, **kwargs)
    return str(info.value)


def test_every_problem_is_listed_with_the_layer_and_the_torch_key() -> None:
    model = md.Sequential(md.Dense(3, 4), md.ReLU(), md.Dense(4, 2, bias=False))
    message = refusal(model, {"0.weight": r(4, 3), "2.weight": r(2, 5), "2.bias": r(2), "1.weight": r(1)})
    assert message.splitlines() == [
        "state_dict_from_torch refused the torch state (4 problems):",
        "  layer '0' (Dense): missing torch key '0.bias' (expected shape (4,))",
        "  layer '2' (Dense): torch '2.weight' has shape (2, 5), expected (2, 4)",
        "  unused torch key '2.bias': layer '2' (Dense) has no such entry (strict=False to leave it out)",
        "  unused torch key '1.weight': layer '1' (ReLU) has no such entry (strict=False to leave it out)",
    ]


def test_a_missing_recurrent_key_names_its_suffix() -> None:
    t = recurrent_state("LSTM", 3, 4) | recurrent_state("LSTM", 3, 4, "_l0_reverse")
    del t["bias_hh_l0_reverse"]
    message = refusal(md.Bidirectional(md.LSTM(3, 4), md.LSTM(3, 4)), t)
    assert "layer 'backward_layer' (LSTM): missing torch key 'bias_hh_l0_reverse' (expected shape (16,))" in message
    message = refusal(md.Stack(md.LSTM(3, 4), md.LSTM(4, 4)), recurrent_state("LSTM", 3, 4))
    assert "layer '1' (LSTM): missing torch key 'weight_ih_l1' (expected shape (16, 4))" in message


def test_unused_keys_are_allowed_with_strict_false_and_absent_layers_left_out() -> None:
    model = md.Sequential(md.Dense(3, 4), md.Dense(4, 2))  # a new head on a ported body
    state = state_dict_from_torch(model, {"0.weight": r(4, 3), "0.bias": r(4), "extra.weight": r(2)}, strict=False)
    assert set(state) == {"0.W"}
    model.load_state_dict(state, strict=False)
    message = refusal(model, {"0.weight": r(4, 3), "0.bias": r(4), "1.weight": r(2, 4)}, strict=False)
    assert "layer '1' (Dense): missing torch key '1.bias'" in message  # partly there: refused in any mode
    message = refusal(model, {"0.weight": r(4, 4), "0.bias": r(4)}, strict=False)
    assert "torch '0.weight' has shape (4, 4), expected (4, 3)" in message


class Mine(md.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.out = md.Dense(3, 4), md.ReLU(), md.Dense(4, 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.out(self.act(self.fc1(x)))


def test_strict_false_refuses_a_state_of_which_nothing_is_read() -> None:
    torch_state = {"hidden.fc1.weight": r(4, 3), "hidden.fc1.bias": r(4)}  # the torch module's names differ
    assert refusal(Mine(), torch_state, strict=False).splitlines() == [
        "state_dict_from_torch refused the torch state (7 problems):",
        "  strict=False, but none of the 2 torch entries was read, so nothing would be loaded; the model's layers "
        "expected these (are its layer names the torch module's?):",
        "  layer 'fc1' (Dense): missing torch key 'fc1.weight' (expected shape (4, 3))",
        "  layer 'fc1' (Dense): missing torch key 'fc1.bias' (expected shape (4,))",
        "  layer 'out' (Dense): missing torch key 'out.weight' (expected shape (2, 4))",
        "  layer 'out' (Dense): missing torch key 'out.bias' (expected shape (2,))",
        "  unused torch key 'hidden.fc1.weight': no minidl layer at 'hidden' (children of the Mine itself: fc1, "
        "act, out)",
        "  unused torch key 'hidden.fc1.bias': no minidl layer at 'hidden' (children of the Mine itself: fc1, "
        "act, out)",
    ]
    assert state_dict_from_torch(Mine(), {}, strict=False) == {}  # (an empty state: nothing to refuse)


def test_an_unused_key_below_no_minidl_layer_names_the_children_there() -> None:
    torch_state = {"fc1.weight": r(4, 3), "fc1.bias": r(4), "out.weight": r(2, 4), "out.bias": r(2),
                   "hidden.fc1.weight": r(1), "act.inner.weight": r(1)}
    assert refusal(Mine(), torch_state).splitlines()[1:] == [
        "  unused torch key 'hidden.fc1.weight': no minidl layer at 'hidden' (children of the Mine itself: fc1, "
        "act, out) (strict=False to leave it out)",
        "  unused torch key 'act.inner.weight': no minidl layer at 'act.inner' (layer 'act' (ReLU) holds no layers) "
        "(strict=False to leave it out)",
    ]


class Scale(md.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.s = md.Parameter(np.ones(3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.s.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self.s.data


class ScaledDense(md.Dense):
    def __init__(self) -> None:
        super().__init__(3, 3)
        self.extra = md.Parameter(np.ones(3))


def test_a_layer_of_an_unsupported_kind_is_named() -> None:
    message = refusal(md.Sequential(md.Dense(3, 3), Scale()), {"0.weight": r(3, 3), "0.bias": r(3), "1.s": r(3)})
    assert ("layer '1' (Scale): no PyTorch converter for this kind of layer, which holds 's'; supported: Dense,"
            in message)
    message = refusal(md.Sequential(ScaledDense()), {"0.weight": r(3, 3), "0.bias": r(3)})
    assert "layer '0' (ScaledDense): no PyTorch converter for its 'extra'" in message


def test_arguments_are_checked() -> None:
    class Module:
        def state_dict(self) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match=r"torch_state must be a mapping \(a state_dict\), got Module: pass "
                                        r"module.state_dict\(\)"):
        state_dict_from_torch(md.Dense(2, 2), Module())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a minidl Layer, got dict"):
        state_dict_from_torch({}, {})  # type: ignore[arg-type]
    message = refusal(md.Dense(2, 2), {"weight": r(2, 2)})
    assert "the Dense itself: missing torch key 'bias' (expected shape (2,))" in message


def test_the_docs_code_runs() -> None:
    """docs/porting.md's python blocks run in order (a block that needs torch is skipped without it), and what
    a block prints is the comment under its ``print``."""
    text = (ROOT / "docs" / "porting.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for code in blocks:
        if "import torch" in code:
            pytest.importorskip("torch")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/porting.md", "exec"), namespace)
        shown = code.partition("print(error)\n")[2]
        if shown:
            assert out.getvalue() == "".join(line.removeprefix("# ") + "\n" for line in shown.splitlines())
