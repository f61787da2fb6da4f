"""MultiHeadAttention.attn_mask: PyTorch's ``attn_mask`` as a setting of the layer, boolean or additive.

Against PyTorch (boolean and float masks, per head, with key padding and cross-attention, a query that
sees no key), closed forms (a constant per row changes nothing; a mask that leaves one key gives its
value), the gradient checker, and the setter's refusals."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import MultiHeadAttention


def layer_with_bias(E: int, H: int, seed: int, dtype: Any = np.float64, causal: bool = False) -> MultiHeadAttention:
    layer = MultiHeadAttention(E, H, causal=causal, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    layer.W_qkv.data[...] = rng.normal(size=layer.W_qkv.shape) * 0.5  # peaked softmaxes, biases that count
    layer.W_o.data[0] = rng.normal(size=E)
    return layer


def masks(kind: str, H: int, T: int, S: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "bool":
        mask = rng.random((T, S)) < 0.4
        mask[:, 0] = False  # every query keeps a key (PyTorch gives NaN for a blind row with weights)
        return mask
    if kind == "float":
        return rng.normal(size=(T, S))
    if kind == "float-inf":
        bias = rng.normal(size=(H, T, S))
        bias[rng.random((H, T, S)) < 0.3] = -np.inf
        bias[:, :, 0] = 0.0
        return bias
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bool", "float", "float-inf"])
@pytest.mark.parametrize("form", ["self", "padding", "cross"])
def test_against_pytorch(kind: str, form: str) -> None:
    torch = pytest.importorskip("torch")
    from test_layers_attention import torch_module

    rng = np.random.default_rng(5)
    N, T, S, E, H = 3, 5, (4 if form == "cross" else 5), 8, 2
    x, memory = rng.normal(size=(N, T, E)), rng.normal(size=(N, S, E))
    padding = np.zeros((N, S), bool)
    padding[1, 3:] = True
    g = rng.normal(size=(N, T, E))
    mask = masks(kind, H, T, S, rng)
    for dtype, torch_dtype, rtol, atol in [(np.float64, torch.float64, 1e-11, 1e-13),
                                           (np.float32, torch.float32, 2e-5, 2e-6)]:
        ours = layer_with_bias(E, H, 6, dtype)
        ours.attn_mask = mask
        inputs: Any = {"self": x, "padding": (x, padding), "cross": (x, memory)}[form]
        cast = tuple(a.astype(dtype) if a.dtype.kind == "f" else a for a in inputs) if isinstance(inputs, tuple) \
            else inputs.astype(dtype)
        y = ours(cast)
        grads = ours.backward(g.astype(dtype))
        dx = grads[0] if isinstance(grads, tuple) else grads
        theirs = torch_module(torch, ours, torch_dtype)
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        kv = torch.tensor(memory.astype(dtype), requires_grad=True) if form == "cross" else xt
        tmask = torch.from_numpy(mask if mask.dtype == bool else mask.astype(dtype))
        if mask.ndim == 3:  # PyTorch's per-head masks are (N * H, T, S), sample-major
            tmask = tmask.repeat(N, 1, 1)
        tpad = torch.from_numpy(padding if mask.dtype == bool else np.where(padding, -np.inf, 0.0).astype(dtype))
        out, _ = theirs(xt, kv, kv, need_weights=False, attn_mask=tmask,  # (masks of one type, as PyTorch asks)
                        key_padding_mask=tpad if form == "padding" else None)
        out.backward(torch.from_numpy(g.astype(dtype)))
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=rtol, atol=atol)
        if form == "cross":
            np.testing.assert_allclose(grads[1], kv.grad.numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(ours.W_qkv.grad[1:].T, theirs.in_proj_weight.grad.numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(ours.W_qkv.grad[0], theirs.in_proj_bias.grad.numpy(), rtol=rtol, atol=atol)
        assert y.dtype == dtype and dx.dtype == dtype


@pytest.mark.parametrize(("T", "S", "H", "seed"), [(4, 4, 2, 0), (3, 5, 1, 1), (6, 2, 4, 2)])
def test_a_constant_per_row_changes_nothing_and_a_single_key_gives_its_value(T: int, S: int, H: int,
                                                                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    E = 2 * H
    x, memory = rng.normal(size=(2, T, E)), rng.normal(size=(2, S, E))
    plain = layer_with_bias(E, H, seed)
    shifted = layer_with_bias(E, H, seed)
    shifted.attn_mask = np.repeat(rng.normal(size=(T, 1)) * 5, S, axis=1)  # softmax(z + c) = softmax(z)
    np.testing.assert_allclose(shifted((x, memory)), plain((x, memory)), rtol=1e-12, atol=1e-13)
    only = np.ones((T, S), bool)
    only[:, S - 1] = False  # every query sees the last key alone: its weight is 1
    single = layer_with_bias(E, H, seed)
    single.attn_mask = only
    single((x, memory))
    weights = single.attention_weights
    np.testing.assert_array_equal(weights[..., :S - 1], 0.0)
    np.testing.assert_array_equal(weights[..., S - 1], 1.0)
    blind = layer_with_bias(E, H, seed)  # a query that sees no key: zero weights, the output bias
    blind.attn_mask = np.ones((T, S), bool)
    np.testing.assert_array_equal(blind((x, memory)), np.broadcast_to(blind.W_o.data[0], (2, T, E)))


@pytest.mark.parametrize("kind", ["bool", "float", "float-inf"])
@pytest.mark.parametrize(("shape", "causal", "seed"), [((2, 4, 4, 2), False, 0), ((1, 5, 6, 3), True, 1),
                                                       ((3, 3, 4, 1), False, 2)])
def test_gradient_checker(kind: str, shape: tuple[int, int, int, int], causal: bool, seed: int) -> None:
    N, T, E, H = shape
    rng = np.random.default_rng(seed)
    layer = layer_with_bias(E, H, seed, causal=causal)
    mask = masks(kind, H, T, T, rng)
    if kind == "float-inf":
        mask = mask if mask.ndim == 3 and mask.shape[0] == H else np.broadcast_to(mask[:1], (H, T, T)).copy()
    layer.attn_mask = mask
    padding = np.zeros((N, T), bool)
    padding[0, T - 1] = True
    report = md.GradientChecker(layer, inputs=(rng.normal(size=(N, T, E)), padding), seed=seed).run()
    assert report.passed, report


def test_the_setter_checks_copies_and_casts_and_the_mask_is_not_state() -> None:
    layer = MultiHeadAttention(4, 2, rng=0, dtype=np.float32)
    given = np.zeros((3, 3))
    layer.attn_mask = given
    given[0, 0] = 5.0  # the layer kept its own copy
    assert layer.attn_mask is not None and layer.attn_mask.dtype == np.float32 and layer.attn_mask[0, 0] == 0
    assert not layer.attn_mask.flags.writeable and "_attn_mask" not in layer.state_dict()
    layer.astype(np.float64)
    assert layer.attn_mask.dtype == np.float64
    bad = [(np.zeros(3), md.ShapeError, r"expected a mask of shape \(T, S\) or \(2, T, S\)"),
           (np.zeros((3, 3, 3)), md.ShapeError, r"got shape \(3, 3, 3\)"),
           (np.zeros((2, 0)), md.ShapeError, "expected a mask"),
           (np.zeros((3, 3), int), md.DTypeError, "expected booleans .* or floats"),
           (np.full((3, 3), np.nan), ValueError, "got NaN or \\+inf"),
           (np.full((3, 3), np.inf), ValueError, "got NaN or \\+inf")]
    for value, error, pattern in bad:
        with pytest.raises(error, match=pattern):
            layer.attn_mask = value
    assert layer.attn_mask is not None and layer.attn_mask.shape == (3, 3)  # the last good one kept
    with pytest.raises(md.ShapeError, match=r"attn_mask has shape \(3, 3\), but this input has T=4 queries and S=4 "
                                            r"keys"):
        layer(np.zeros((1, 4, 4)))
    layer.attn_mask = None
    assert layer(np.zeros((1, 4, 4))).shape == (1, 4, 4)


def test_a_transformer_block_takes_it_through_its_self_attention() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 8))
    block = md.TransformerEncoderLayer(8, 2, 16, dropout=0.0, rng=0)
    causal = md.TransformerEncoderLayer(8, 2, 16, dropout=0.0, causal=True, rng=0)
    block.self_attn.attn_mask = np.triu(np.ones((4, 4), bool), 1)  # the causal mask, given by hand
    np.testing.assert_allclose(block(x), causal(x), rtol=1e-13, atol=1e-14)
    assert md.GradientChecker(block, inputs=x).run().passed


def test_a_mask_stays_read_only_and_finite_through_astype_and_deepcopy_and_is_not_counted() -> None:
    """A review: astype and deepcopy left the mask writeable (a NaN written into it reached the
    output), astype to float32 made 1e39 +inf (NaN outputs), the checker and summary proposed T = 3
    whatever the mask, and summary counted a float mask as parameters."""
    import copy

    layer = MultiHeadAttention(8, 2, rng=0)
    mask = np.zeros((4, 4))
    mask[0, 1] = 1e39
    layer.attn_mask = mask
    with pytest.raises(md.DTypeError, match=r"astype\(float32\): .*attn_mask holds values beyond float32's range.*"
                                            r"nothing was cast"):
        layer.astype(np.float32)
    assert layer.W_qkv.data.dtype == np.float64 and layer.attn_mask.dtype == np.float64
    layer.attn_mask = np.zeros((4, 4))
    for other in (layer.astype(np.float32), copy.deepcopy(layer)):
        assert not other.attn_mask.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            other.attn_mask[0, 0] = np.nan
    assert layer.input_shape_hint() == (4, 8)
    assert md.GradientChecker(layer.astype(np.float64)).run().passed  # inputs drawn with the mask's T
    plain = md.summarize(md.Sequential(MultiHeadAttention(8, 2, rng=0)), (4, 8)).total
    assert md.summarize(md.Sequential(layer), (4, 8)).total == plain  # a setting, not parameters
    assert "attn_mask=float64(4, 4)" in repr(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = MultiHeadAttention(8, 2, rng=0, dtype=np.float32)
        small.attn_mask = np.full((4, 4), -1e300)  # -inf in float32: blocked, no overflow warning
        assert np.isneginf(small.attn_mask).all()


def test_a_decoder_s_cross_attention_mask_is_pytorch_s_memory_mask() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, memory = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 5, 8))
    ours = md.TransformerDecoderLayer(8, 2, 16, dropout=0.0, rng=0)
    memory_mask = rng.random((3, 5)) < 0.3
    memory_mask[:, 0] = False
    ours.multihead_attn.attn_mask = memory_mask
    theirs = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # the weights through the documented layouts
        for mine, torch_attn in ((ours.self_attn, theirs.self_attn), (ours.multihead_attn, theirs.multihead_attn)):
            torch_attn.in_proj_weight.copy_(torch.from_numpy(mine.in_proj_weight.copy()))
            torch_attn.in_proj_bias.copy_(torch.from_numpy(mine.in_proj_bias.copy()))
            torch_attn.out_proj.weight.copy_(torch.from_numpy(mine.out_proj_weight.copy()))
            torch_attn.out_proj.bias.copy_(torch.from_numpy(mine.out_proj_bias.copy()))
        for name in ("linear1", "linear2"):
            layer = getattr(ours, name)
            getattr(theirs, name).weight.copy_(torch.from_numpy(layer.W.data[1:].T.copy()))
            getattr(theirs, name).bias.copy_(torch.from_numpy(layer.W.data[0].copy()))
        for name in ("norm1", "norm2", "norm3"):
            getattr(theirs, name).weight.copy_(torch.from_numpy(getattr(ours, name).gamma.data.copy()))
            getattr(theirs, name).bias.copy_(torch.from_numpy(getattr(ours, name).beta.data.copy()))
    theirs.eval()
    expected = theirs(torch.from_numpy(x), torch.from_numpy(memory), memory_mask=torch.from_numpy(memory_mask))
    ours.eval()
    np.testing.assert_allclose(ours((x, memory)), expected.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_a_model_cast_keeps_its_layers_masks_read_only_and_a_nan_written_anyway_is_refused() -> None:
    import copy

    model = md.Sequential(MultiHeadAttention(8, 2, rng=0), MultiHeadAttention(8, 2, rng=1))
    model[1].attn_mask = np.full((4, 4), -1e300)  # -inf in float32: blocked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.astype(np.float32)  # (Layer.astype on the container, not the layer's own)
    buffer = dict(model.named_buffers())["1._attn_mask"]
    assert buffer.dtype == np.float32 and not buffer.flags.writeable and np.isneginf(buffer).all()
    model[1].attn_mask = np.zeros((4, 4))
    twin = copy.deepcopy(model)
    dict(twin.named_buffers())["1._attn_mask"][0, 0] = np.nan  # a deep copy's buffer is writeable
    with pytest.raises(ValueError, match="attn_mask holds NaN or \\+inf; set it again"):
        twin(np.ones((2, 4, 8), np.float32))


def test_a_cross_attention_mask_is_followed_by_the_checker_and_summary_without_inputs() -> None:
    """A (T, S) mask with S != T fits only a memory: the drawn inputs are (x, memory of S positions)."""
    decoder = md.TransformerDecoderLayer(8, 2, 16, dropout=0.0, rng=0)
    decoder.multihead_attn.attn_mask = np.zeros((4, 5))  # PyTorch's memory_mask
    assert decoder.input_shape_hint() == (4, 8)
    assert md.summarize(decoder).rows[0].output_shape == "(None, 4, 8)"
    assert md.GradientChecker(decoder).run().passed
    attention = MultiHeadAttention(8, 2, rng=0)
    attention.attn_mask = np.zeros((3, 5))
    x, memory = attention.random_inputs((2, 3, 8), np.random.default_rng(0))
    assert x.shape == (2, 3, 8) and memory.shape == (2, 5, 8)
    assert md.GradientChecker(attention).run().passed


def test_a_decoder_stack_draws_the_memory_its_masked_block_needs_and_a_square_mask_draws_none() -> None:
    blocks = [md.TransformerDecoderLayer(8, 2, 16, dropout=0.0, rng=i) for i in (0, 1)]
    blocks[1].multihead_attn.attn_mask = np.zeros((4, 5))  # only the second block's cross-attention
    stack = md.TransformerDecoder(*blocks)
    assert md.summarize(stack).rows[0].output_shape == "(None, 4, 8)"
    assert md.GradientChecker(stack).run().passed
    square = MultiHeadAttention(8, 2, rng=0)
    square.attn_mask = np.zeros((4, 4))  # self-attention: x alone, whatever length is asked
    assert isinstance(square.random_inputs((2, 6, 8), np.random.default_rng(0)), np.ndarray)


def test_a_decoder_stack_s_self_mask_on_a_later_block_sets_the_drawn_length() -> None:
    blocks = [md.TransformerDecoderLayer(8, 2, 16, dropout=0.0, rng=i) for i in (0, 1)]
    blocks[1].self_attn.attn_mask = np.zeros((4, 4))
    stack = md.TransformerDecoder(*blocks)
    assert stack.input_shape_hint() == (4, 8)
    assert md.GradientChecker(stack).run().passed
