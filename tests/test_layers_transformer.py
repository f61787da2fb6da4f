"""TransformerEncoderLayer: PyTorch's block to round-off, the gradient checker through every branch (dropout
included), eval mode, a refused backward after a failed forward, and training."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import TransformerEncoderLayer
from minidl.testing import assert_gradients_ok


def to_torch(layer: TransformerEncoderLayer, torch: Any) -> Any:
    """PyTorch's layer with ``layer``'s weights (float64, dropout 0)."""
    attn = layer.self_attn
    module = torch.nn.TransformerEncoderLayer(
        attn.embed_dim, attn.num_heads, layer.linear1.out_features, dropout=0.0, activation=layer.activation_name,
        batch_first=True, norm_first=layer.norm_first).double()
    with torch.no_grad():
        module.self_attn.in_proj_weight.copy_(torch.tensor(attn.in_proj_weight))
        module.self_attn.in_proj_bias.copy_(torch.tensor(attn.in_proj_bias))
        module.self_attn.out_proj.weight.copy_(torch.tensor(attn.out_proj_weight))
        module.self_attn.out_proj.bias.copy_(torch.tensor(attn.out_proj_bias))
        for name in ("linear1", "linear2"):
            ours, theirs = getattr(layer, name), getattr(module, name)
            theirs.weight.copy_(torch.tensor(ours.weight.T))
            theirs.bias.copy_(torch.tensor(ours.bias_row))
        for name in ("norm1", "norm2"):
            ours, theirs = getattr(layer, name), getattr(module, name)
            theirs.weight.copy_(torch.tensor(ours.gamma.data))
            theirs.bias.copy_(torch.tensor(ours.beta.data))
    return module


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal", [False, True])
def test_against_torch_if_installed(norm_first: bool, activation: str, causal: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=activation, norm_first=norm_first,
                                    causal=causal, rng=1)
    for p in (layer.norm1.gamma, layer.norm1.beta, layer.norm2.gamma, layer.norm2.beta):  # not the 1s and 0s
        p.data += rng.normal(scale=0.2, size=p.data.shape)
    module = to_torch(layer, torch).train()
    x = rng.normal(size=(3, 5, 8))
    xt = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64) if causal else None
    yt = module(xt, src_mask=mask, is_causal=causal)
    g = rng.normal(size=x.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    attn = module.self_attn
    pairs = [(layer.self_attn.W_qkv.grad[1:].T, attn.in_proj_weight.grad),
             (layer.self_attn.W_qkv.grad[0], attn.in_proj_bias.grad),
             (layer.self_attn.W_o.grad[1:].T, attn.out_proj.weight.grad),
             (layer.linear1.W.grad[1:].T, module.linear1.weight.grad),
             (layer.linear2.W.grad[0], module.linear2.bias.grad),
             (layer.norm1.gamma.grad, module.norm1.weight.grad),
             (layer.norm2.beta.grad, module.norm2.bias.grad)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "norm_first", "dropout", "seed"), [
    ((2, 3, 4), False, 0.0, 0), ((2, 3, 4), True, 0.0, 1), ((3, 2, 6), False, 0.3, 2), ((1, 4, 6), True, 0.5, 3),
])
def test_gradient_checker_through_every_branch(shape: tuple[int, int, int], norm_first: bool, dropout: float,
                                              seed: int) -> None:
    """In train mode with dropout too: the checker replays the three dropouts' generators."""
    E = shape[2]
    layer = TransformerEncoderLayer(E, 2, 5, dropout=dropout, activation="gelu", norm_first=norm_first, rng=seed)
    x = np.random.default_rng(seed).normal(size=shape)
    report = assert_gradients_ok(layer, inputs=x, seed=seed)
    assert {r.name for r in report.results} == {"input", "self_attn.W_qkv", "self_attn.W_o", "linear1.W",
                                                "linear2.W", "norm1.gamma", "norm1.beta", "norm2.gamma",
                                                "norm2.beta"}


def test_eval_mode_drops_nothing_and_the_names_follow_pytorch() -> None:
    layer = TransformerEncoderLayer(4, 2, 6, dropout=0.5, rng=0)
    twin = copy.deepcopy(layer)
    twin.dropout.p = twin.dropout1.p = twin.dropout2.p = twin.self_attn.dropout = 0.0
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.testing.assert_array_equal(layer.eval()(x), twin(x))
    assert not np.array_equal(layer.train()(x), twin(x))
    assert [name for name, _ in layer.named_parameters()] == [
        "self_attn.W_qkv", "self_attn.W_o", "linear1.W", "linear2.W", "norm1.gamma", "norm1.beta", "norm2.gamma",
        "norm2.beta"]
    assert repr(layer).startswith("TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=6, dropout=0.5, "
                                  "activation='relu', norm_first=False")


def test_a_forward_that_fails_part_way_refuses_the_next_backward() -> None:
    layer = TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=0)
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    y = layer(x)
    good = layer.backward(np.ones_like(y))
    layer.linear1.astype(np.float32)  # the attention runs, then the MLP refuses the float64 input
    with pytest.raises(md.DTypeError):
        layer(x)
    with pytest.raises(md.BackwardBeforeForwardError, match="a forward failed part-way"):
        layer.backward(np.ones_like(y))
    layer.linear1.astype(np.float64)
    layer(x)
    np.testing.assert_allclose(layer.backward(np.ones_like(y)), good, rtol=1e-12, atol=1e-14)
    with pytest.raises(md.BackwardBeforeForwardError):
        TransformerEncoderLayer(4, 2, 6, rng=0).backward(np.ones((1, 1, 4)))
    for norm_first in (False, True):  # an input refused at once keeps the last pass usable, as other layers do
        block = TransformerEncoderLayer(4, 2, 6, dropout=0.0, norm_first=norm_first, rng=0)
        y = block(x)
        dx = block.backward(np.ones_like(y))
        with pytest.raises(md.ShapeError, match=r"TransformerEncoderLayer: .*expected input of shape \(N, T, 4\)|"
                                                r"TransformerEncoderLayer: LayerNorm"):
            block(np.ones((2, 3, 5)))
        np.testing.assert_array_equal(block.backward(np.ones_like(y)), dx)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"activation": "tanh"}, ValueError, "activation must be 'relu', 'gelu', or a layer class or function that "
                                         "makes a new layer \\(e.g. md.Mish\\), got 'tanh'"),
    ({"nhead": 3}, ValueError, r"TransformerEncoderLayer: d_model \(4\) must be divisible by nhead \(3\)"),
    ({"dim_feedforward": 0}, ValueError, "dim_feedforward"),
    ({"norm_first": "yes"}, TypeError, "norm_first"),
    ({"dropout": 1.5}, ValueError, r"TransformerEncoderLayer: dropout \(the drop probability\) must be in \[0, 1\]"),
    ({"layer_norm_eps": 0.0}, ValueError, r"TransformerEncoderLayer: LayerNorm"),
    ({"dtype": np.float16}, md.DTypeError, r"TransformerEncoderLayer: float16 is not supported"),
])
def test_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    """Refused before anything is drawn from the caller's generator, in the block's words."""
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    settings: dict[str, Any] = {"d_model": 4, "nhead": 2, "rng": rng, **kwargs}
    with pytest.raises(error, match=match):
        TransformerEncoderLayer(**settings)
    assert rng.bit_generator.state == state


def test_it_trains_saves_and_loads(tmp_path: Any) -> None:
    """A task attention solves: is the first token's feature larger than the last one's?"""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4, 4))
    y = (x[:, 0, 0] > x[:, -1, 0]).astype(int)
    model = md.Sequential(TransformerEncoderLayer(4, 2, 16, dropout=0.0, norm_first=True, rng=0), md.Flatten(),
                          md.Dense(16, 2, rng=1))
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=1e-2),
                        epochs=30, batch_size=32, metrics=["accuracy"], rng=0, verbose=0)
    assert history["loss"][-1] < 0.3 * history["loss"][0] and history["accuracy"][-1] > 0.9
    md.save({"model": model.state_dict()}, tmp_path / "block.npz")
    twin = md.Sequential(TransformerEncoderLayer(4, 2, 16, dropout=0.0, norm_first=True, rng=5), md.Flatten(),
                         md.Dense(16, 2, rng=6))
    twin.load_state_dict(md.load(tmp_path / "block.npz")["model"])
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))


def test_the_attention_weights_drop_too_as_in_pytorch() -> None:
    """PyTorch's block gives its attention dropout=dropout: four places drop in training, not three."""
    layer = TransformerEncoderLayer(4, 2, 6, dropout=0.3, rng=0)
    assert layer.self_attn.dropout == 0.3 and "dropout=0.3" in repr(layer.self_attn)
    twin = copy.deepcopy(layer)
    twin.dropout.p = twin.dropout1.p = twin.dropout2.p = 0.0  # only the attention still drops
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    assert not np.allclose(twin(x), twin.eval()(x))
    assert_gradients_ok(layer.train(), inputs=x, seed=0)
    weights = [p.data.copy() for p in TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=0).parameters()]
    for a, b in zip(weights, [p.data for p in layer.parameters()], strict=True):
        np.testing.assert_array_equal(a, b)  # the weights do not depend on the dropout


@pytest.mark.parametrize("make", [lambda: TransformerEncoderLayer(4, 2, 6, dropout=0.3, rng=0),
                                  lambda: md.TransformerDecoderLayer(4, 2, 6, dropout=0.3, rng=0)],
                         ids=["encoder", "decoder"])
def test_each_dropout_draws_its_own_stream(make: Any) -> None:
    """One generator per dropout, each seeded apart: two seeded alike would drop correlated masks."""
    generators = dict(make().named_generators())
    assert len(generators) >= 4
    draws = {name: g.random(8).tobytes() for name, g in generators.items()}
    assert len(set(draws.values())) == len(draws), sorted(draws)


@pytest.mark.parametrize("norm_first", [False, True])
def test_an_input_refused_at_once_keeps_the_last_pass_also_in_a_stack(norm_first: bool) -> None:
    """A pre-norm's LayerNorm takes any rank, so the block checks the shape itself before any sub-layer
    runs; Sequential asks the block whether it failed part-way (found by a review)."""
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    for bad in (np.ones((2, 4)), np.ones((2, 3, 4, 1)), np.ones((2, 0, 4)), np.ones((2, 3, 5))):
        stack = md.Sequential(TransformerEncoderLayer(4, 2, 6, dropout=0.0, norm_first=norm_first, rng=0))
        y = stack(x)
        dx = stack.backward(np.ones_like(y))
        with pytest.raises(md.ShapeError, match=r"TransformerEncoderLayer: expected .*\(N, T, 4\)"):
            stack(bad)
        np.testing.assert_array_equal(stack.backward(np.ones_like(y)), dx)
    stack = md.Sequential(TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=0))
    y = stack(x)
    stack[0].linear1.astype(np.float32)  # fails part-way: the stack refuses too
    with pytest.raises(md.DTypeError):
        stack(x)
    with pytest.raises(md.BackwardBeforeForwardError, match="failed at layer '0'"):
        stack.backward(np.ones_like(y))


def test_every_constructor_refusal_names_the_block() -> None:
    for kwargs, error in (({"causal": "yes"}, TypeError), ({"rng": "abc"}, TypeError)):
        with pytest.raises(error, match=r"^TransformerEncoderLayer: "):
            TransformerEncoderLayer(4, 2, 6, **kwargs)


# --- an activation of the user's choice ------------------------------------------------------------


@pytest.mark.parametrize("block", [TransformerEncoderLayer, md.TransformerDecoderLayer])
@pytest.mark.parametrize("activation", [md.Mish, md.SiLU, lambda: md.PReLU(init=0.1), lambda: md.LeakyReLU(0.2)],
                         ids=["Mish", "SiLU", "PReLU", "LeakyReLU"])
def test_a_layer_class_or_factory_as_activation_passes_the_checker(block: Any, activation: Any) -> None:
    """PyTorch takes any callable; minidl takes a layer class or a function that makes a new layer, once per
    block (a learned activation's parameters are the block's: ``activation.weight``)."""
    layer = block(6, 2, 7, dropout=0.0, activation=activation, rng=3)
    x = np.random.default_rng(4).normal(size=(2, 3, 6))
    inputs = (x, np.random.default_rng(5).normal(size=(2, 4, 6))) if block is md.TransformerDecoderLayer else x
    report = assert_gradients_ok(layer, inputs=inputs)
    assert layer.activation_name is None
    made = activation()
    assert type(layer.activation) is type(made)
    assert f"activation={made!r}" in repr(layer)
    assert ("activation.weight" in dict(layer.named_parameters())) == isinstance(made, md.PReLU)
    if isinstance(made, md.PReLU):
        assert report["activation.weight"].checked == 1
    twin = block(6, 2, 7, dropout=0.0, activation=activation, rng=3)
    assert twin.activation is not layer.activation


def test_an_activation_instance_or_a_function_that_makes_no_layer_is_refused() -> None:
    shared = md.GELU()
    with pytest.raises(TypeError, match=r"TransformerEncoderLayer: activation must be a layer class or a function "
                                        r"that makes a new layer .* not the layer GELU\(approximate='none'\): one "
                                        r"instance in two blocks would share its backward's cache"):
        TransformerEncoderLayer(4, 2, 5, activation=shared)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"TransformerDecoderLayer: activation\(\) must make a Layer .* got ufunc"):
        md.TransformerDecoderLayer(4, 2, 5, activation=lambda: np.tanh)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="TransformerEncoderLayer: activation must be 'relu', 'gelu', or a layer"):
        TransformerEncoderLayer(4, 2, 5, activation=3)  # type: ignore[arg-type]


def test_a_silu_block_matches_torch_with_its_silu_if_installed() -> None:
    torch = pytest.importorskip("torch")
    layer = TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation=md.SiLU, rng=1)
    layer.activation_name = "relu"  # (to_torch builds PyTorch's block with this; its activation replaced below)
    module = to_torch(layer, torch)
    module.activation = torch.nn.functional.silu
    layer.activation_name = None
    x = np.random.default_rng(2).normal(size=(3, 5, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    g = np.random.default_rng(3).normal(size=x.shape)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(layer(x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-11, atol=1e-12)


def test_a_learned_activation_takes_the_blocks_dtype_and_a_shared_one_is_refused() -> None:
    """A float32 block with activation=md.PReLU failed at its first forward (the slope was float64); a
    factory returning one layer each time made two blocks share it (backward wrong by 0.43); np.tanh, a
    function of the array as PyTorch takes, gave Python's own message."""
    block = TransformerEncoderLayer(8, 2, 12, activation=md.PReLU, dtype=np.float32, rng=0)
    assert block.activation.weight.dtype == np.float32
    assert block(np.zeros((2, 3, 8), np.float32)).dtype == np.float32
    shared = md.PReLU(init=0.2)
    blocks = [TransformerEncoderLayer(6, 2, 7, dropout=0.0, activation=lambda: shared, rng=i) for i in range(2)]
    with pytest.raises(ValueError, match="TransformerEncoder: block 1 holds a layer that an earlier block already"):
        md.TransformerEncoder(*blocks)
    with pytest.raises(ValueError, match="Sequential: this PReLU is already in the sequence"):
        md.Sequential(*blocks)
    with pytest.raises(TypeError, match=r"TransformerEncoderLayer: activation must be a layer class or a function of "
                                        r"no arguments that makes a new layer .*calling <ufunc 'tanh'> with no "
                                        r"arguments failed"):
        TransformerEncoderLayer(6, 2, 7, activation=np.tanh)  # type: ignore[arg-type]


def test_a_block_subclass_holding_a_tied_layer_it_does_not_call_is_accepted() -> None:
    """Blocks say that they call every sub-layer, for the stacks' shared-layer check; a subclass that adds
    a tied layer it never calls was refused ("this Embedding is already in the sequence")."""
    embedding = md.Embedding(10, 6, rng=0)

    class TiedBlock(TransformerEncoderLayer):
        def __init__(self, tied: md.Embedding, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tied = tied

    model = md.Sequential(embedding, TiedBlock(embedding, 6, 2, 8, dropout=0.0, rng=0))
    assert model(np.array([[1, 2, 3]])).shape == (1, 3, 6)


def test_an_activation_that_changes_the_width_is_named() -> None:
    """GLU halves linear1's width: linear2 refused it with the block's own input shape, (2, 3, 8), in the
    message, which looked like the user's input was wrong."""
    block = TransformerEncoderLayer(8, 2, 16, activation=md.GLU, rng=0)
    with pytest.raises(md.ShapeError, match=r"^TransformerEncoderLayer: the activation GLU\(axis=-1\)'s output has "
                                            r"shape \(2, 3, 8\), not its input's \(2, 3, 16\) \(dim_feedforward=16\); "
                                            r"it must keep the shape"):
        block(np.zeros((2, 3, 8)))
    with pytest.raises(md.BackwardBeforeForwardError):
        block.backward(np.zeros((2, 3, 8)))


def test_an_activation_that_changes_the_dtype_is_named() -> None:
    class Up(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return np.tanh(x).astype(np.float64)

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output

    block = TransformerEncoderLayer(8, 2, 16, activation=Up, dtype=np.float32, rng=0)
    with pytest.raises(md.DTypeError, match=r"^TransformerEncoderLayer: the activation Up\(\)'s output is float64, "
                                            r"not its input's float32; it must keep the dtype"):
        block(np.zeros((2, 3, 8), np.float32))


def test_an_activation_whose_backward_changes_the_dtype_is_named() -> None:
    class Back64(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return np.tanh(x)

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output.astype(np.float64)

    block = TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=Back64, dtype=np.float32, rng=0)
    y = block(np.zeros((1, 2, 8), np.float32))
    with pytest.raises(md.DTypeError, match=r"^TransformerEncoderLayer: the activation Back64\(\)'s backward's "
                                            r"gradient is float64, not its input's float32"):
        block.backward(np.ones_like(y))


def test_an_activation_whose_backward_gives_a_list_or_another_shape_is_named_in_float64_too() -> None:
    """np.dtype('float64') == None is True: a list from the backward of a float64 block passed the check."""
    class ListBack(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            return np.tanh(x)

        def backward(self, grad_output: np.ndarray) -> Any:
            return grad_output.tolist()

    class Shorter(ListBack):
        def backward(self, grad_output: np.ndarray) -> Any:
            return grad_output[..., :-1]

    cases = ((ListBack, md.DTypeError, "backward's gradient is a list, not a plain numpy.ndarray"),
             (Shorter, md.ShapeError, r"backward's gradient has shape \(1, 2, 15\)"))
    for activation, error, match in cases:
        block = TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=activation, rng=0)
        y = block(np.ones((1, 2, 8)))
        with pytest.raises(error, match=match):
            block.backward(np.ones_like(y))


def test_an_activation_that_returns_nothing_or_an_int_is_told_so() -> None:
    for value, match in ((None, r"output is None \(does it return its result\?\)"), (3, "output is an int,")):
        class Odd(md.Layer):
            def forward(self, x: np.ndarray, value: Any = value) -> Any:
                return value

            def backward(self, grad_output: np.ndarray) -> np.ndarray:
                return grad_output

        with pytest.raises(md.DTypeError, match=match):
            TransformerEncoderLayer(8, 2, 16, activation=Odd, rng=0)(np.zeros((2, 3, 8)))
