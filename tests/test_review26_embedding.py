"""Review 26 of Embedding: PyTorch's ``scale_grad_by_freq`` (each row's gradient divided by how many times its index
occurs in the batch: a heuristic, not the derivative, so the gradient checker is framed around it), and PyTorch's
``max_norm`` / ``norm_type`` / ``sparse``, which a porter passes: refused with why and what to do instead (the old
layer failed with Python's bare "unexpected keyword argument")."""

from __future__ import annotations

import copy
import pickle
import re
import textwrap

import numpy as np
import pytest

import minidl as md
from minidl import Embedding


def scaled_loop_gradient(W: np.ndarray, idx: np.ndarray, g: np.ndarray, padding_idx: int | None = None) -> np.ndarray:
    """dW by hand with PyTorch's scale_grad_by_freq: each position's gradient times 1 / (count of its index)."""
    dW = np.zeros_like(W)
    rows, grads = idx.reshape(-1), g.reshape(-1, W.shape[1])
    for m in range(rows.size):
        if rows[m] != padding_idx:
            dW[rows[m]] += grads[m] / np.count_nonzero(rows == rows[m])
    return dW


def weight_gradient(model: md.Sequential, idx: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The first layer's W.grad for MSELoss on ``targets``, from one forward and backward."""
    model.zero_grad()
    loss = md.MSELoss()
    loss(model(idx), targets)
    model.backward(loss.backward())
    return model[0].W.grad.copy()


# ------------------------------------------------------------------ scale_grad_by_freq: the closed form
@pytest.mark.parametrize("shape", [(6,), (4, 3), (2, 3, 4)])
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scale_grad_by_freq_divides_each_row_by_its_index_count(shape, padding_idx, dtype) -> None:
    rng = np.random.default_rng(len(shape))
    layer = Embedding(7, 3, padding_idx=padding_idx, scale_grad_by_freq=True, rng=rng, dtype=dtype)
    idx = rng.integers(0, 7, size=shape)
    idx.flat[0] = idx.flat[-1] = idx.flat[2] = 2  # an index used three times
    if padding_idx is not None:
        idx.flat[1] = padding_idx % 7
    y = layer(idx)
    np.testing.assert_array_equal(y, Embedding(7, 3, padding_idx=padding_idx, W=layer.W.data,
                                                  dtype=dtype)(idx))  # forward alike
    g = rng.normal(size=y.shape).astype(dtype)
    dx = layer.backward(g)
    assert dx.shape == shape and not dx.any()
    assert layer.W.grad.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    expected = scaled_loop_gradient(layer.W.data.astype(np.float64), idx, g.astype(np.float64), layer.padding_idx)
    np.testing.assert_allclose(layer.W.grad, expected, rtol=tol, atol=tol)
    plain = Embedding(7, 3, padding_idx=padding_idx, W=layer.W.data, dtype=dtype)
    plain(idx)
    plain.backward(g)
    assert not np.array_equal(layer.W.grad, plain.W.grad)  # (the repeated index makes a difference)


def test_scaled_gradients_add_across_backwards_each_scaled_by_its_own_batch() -> None:
    layer = Embedding(4, 2, scale_grad_by_freq=True, W=np.arange(8.0).reshape(4, 2))
    layer(np.array([[1, 1, 1, 3]]))
    layer.backward(np.ones((1, 4, 2)) * 6.0)
    np.testing.assert_array_equal(layer.W.grad, [[0, 0], [6, 6], [0, 0], [6, 6]])  # (6 + 6 + 6) / 3 and 6 / 1
    layer(np.array([[1, 2]]))
    layer.backward(np.ones((1, 2, 2)))
    np.testing.assert_array_equal(layer.W.grad, [[0, 0], [7, 7], [1, 1], [6, 6]])
    layer.zero_grad()
    layer.backward_params(np.ones((1, 2, 2)))  # (fit's path, after zero_grad: the table is zeroed first)
    np.testing.assert_array_equal(layer.W.grad, [[0, 0], [1, 1], [1, 1], [0, 0]])
    frozen = Embedding(4, 2, scale_grad_by_freq=True, rng=0).requires_grad_(False)
    frozen(np.array([[1, 1]]))
    frozen.backward(np.ones((1, 2, 2)))
    assert not frozen.W.has_grad


def test_the_setting_is_checked_may_change_later_and_a_backward_uses_its_forward_s() -> None:
    layer = Embedding(4, 2, W=np.zeros((4, 2)))
    assert layer.scale_grad_by_freq is False
    for bad in (1, "yes", None, np.array([True])):
        with pytest.raises(TypeError, match=r"^Embedding: scale_grad_by_freq must be True or False, got "):
            layer.scale_grad_by_freq = bad
        assert layer.scale_grad_by_freq is False
    with pytest.raises(TypeError, match=r"scale_grad_by_freq must be True or False, got 0"):
        Embedding(4, 2, scale_grad_by_freq=0)
    idx, g = np.array([[2, 2]]), np.ones((1, 2, 2))
    layer(idx)
    layer.scale_grad_by_freq = np.True_
    assert layer.scale_grad_by_freq is True
    layer.backward(g)  # the forward ran unscaled
    np.testing.assert_array_equal(layer.W.grad[2], [2.0, 2.0])
    layer.zero_grad()
    layer(idx)
    layer.scale_grad_by_freq = False
    layer.backward(g)  # the forward ran scaled
    np.testing.assert_array_equal(layer.W.grad[2], [1.0, 1.0])


def test_repr_state_dict_copies_and_astype_keep_the_setting(tmp_path) -> None:
    layer = Embedding(6, 3, padding_idx=1, scale_grad_by_freq=True, rng=0)
    assert repr(layer) == "Embedding(num_embeddings=6, embedding_dim=3, padding_idx=1, scale_grad_by_freq=True)"
    assert repr(Embedding(6, 3, scale_grad_by_freq=False)) == "Embedding(num_embeddings=6, embedding_dim=3)"
    assert list(layer.state_dict()) == ["W"]  # a setting, not state (PyTorch saves only the weight too)
    plain = Embedding(6, 3, padding_idx=1, rng=5)
    plain.load_state_dict(layer.state_dict())  # either setting loads the other's state: W means the same
    np.testing.assert_array_equal(plain.W.data, layer.W.data)
    md.save(layer.state_dict(), tmp_path / "e.ckpt")
    layer.load_state_dict(md.load(tmp_path / "e.ckpt"))
    idx, g = np.array([[0, 2, 2]]), np.ones((1, 3, 3))
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer).astype(np.float32)):
        assert other.scale_grad_by_freq is True and repr(other) == repr(layer)
        other(idx)
        other.backward(g.astype(other.W.dtype))
        np.testing.assert_array_equal(other.W.grad[2], [1.0, 1.0, 1.0])
    old = Embedding(6, 3, rng=0)  # pickled before the setting existed: no _scale_grad_by_freq in its state
    state = dict(old.__dict__)
    state.pop("_scale_grad_by_freq", None)
    revived = Embedding.__new__(Embedding)
    revived.__setstate__(state)
    assert revived.scale_grad_by_freq is False and repr(revived) == repr(old)
    revived(idx)
    revived.backward(g)
    np.testing.assert_array_equal(revived.W.grad[2], [2.0, 2.0, 2.0])


# ------------------------------------------------------------------ scale_grad_by_freq and the gradient checker
CASES = [(6, 3, (4, 5), None, 0), (9, 2, (3,), 0, 1), (5, 4, (2, 3, 2), -1, 2), (40, 8, (4, 6), 3, 3)]


@pytest.mark.parametrize("vocab, dim, shape, padding_idx, seed", CASES)
def test_the_scaled_gradient_is_the_checker_verified_gradient_divided_by_the_counts(
        vocab, dim, shape, padding_idx, seed) -> None:
    """The scaled gradient is not the derivative of the cost, so the checker cannot verify it directly: it
    verifies the plain gradient of the same cost (Embedding -> Flatten -> Dense, MSELoss, the same targets),
    and the scaled one must be that divided, row by row, by the index counts."""
    rng = np.random.default_rng(seed)
    emb = Embedding(vocab, dim, padding_idx=padding_idx, rng=rng)
    model = md.Sequential(emb, md.Flatten(), md.Dense(dim * int(np.prod(shape[1:], dtype=int)), 3, rng=rng))
    idx = rng.integers(0, vocab, size=shape)
    idx.flat[-1] = idx.flat[0]  # a repeated index
    if padding_idx is not None:
        idx.flat[1] = emb.padding_idx
    targets = rng.normal(size=(shape[0], 3))
    report = md.GradientChecker(model, loss=md.MSELoss(), inputs=idx, targets=targets, seed=seed).run()
    assert report.passed, str(report)
    assert report["0.W"].max_rel_error < 1e-6
    plain = weight_gradient(model, idx, targets)
    emb.scale_grad_by_freq = True
    scaled = weight_gradient(model, idx, targets)
    counts = np.bincount(idx.reshape(-1), minlength=vocab)
    used = counts > 0
    np.testing.assert_allclose(scaled[used], plain[used] / counts[used, None], rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(scaled[~used], 0.0)
    assert counts.max() > 1 and not np.allclose(scaled, plain)
    # the checker, given the scaled layer and the repeated index, says the gradient is not the derivative
    assert not md.GradientChecker(model, loss=md.MSELoss(), inputs=idx, targets=targets, seed=seed).run().passed


@pytest.mark.parametrize("vocab, dim, shape, padding_idx, seed", CASES)
def test_with_every_index_distinct_the_scaled_gradient_is_the_plain_one_and_passes_the_checker(
        vocab, dim, shape, padding_idx, seed) -> None:
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    vocab = max(vocab, size + 1)
    idx = rng.permutation(vocab)[:size].reshape(shape)  # no index twice (the padding one included)
    emb = Embedding(vocab, dim, padding_idx=padding_idx, scale_grad_by_freq=True, rng=rng)
    report = md.GradientChecker(emb, inputs=idx, seed=seed).run()
    assert report.passed, str(report)
    model = md.Sequential(emb, md.Flatten(), md.Dense(dim * size // shape[0], 3, rng=rng))
    targets = rng.normal(size=(shape[0], 3))
    assert md.GradientChecker(model, loss=md.MSELoss(), inputs=idx, targets=targets, seed=seed).run().passed
    scaled = weight_gradient(model, idx, targets)
    emb.scale_grad_by_freq = False
    np.testing.assert_array_equal(scaled, weight_gradient(model, idx, targets))


# ------------------------------------------------------------------ PyTorch
# (scale_grad_by_freq against PyTorch: tests/test_layers_embedding.py::test_against_pytorch, both settings)
def test_the_suggested_renormalisation_is_pytorch_s_max_norm() -> None:
    """The two lines the max_norm refusal gives, run after a step, leave W as PyTorch's renormalisation of
    every row would (PyTorch renormalises the batch's rows, at the next forward)."""
    torch = pytest.importorskip("torch")
    emb = Embedding(20, 4, rng=0)
    emb.W.data[3] *= 1e-3  # rows under the bound stay as they are
    with pytest.raises(ValueError) as caught:
        Embedding(20, 4, max_norm=1.5)
    snippet = textwrap.dedent(str(caught.value).split("\n", 1)[1])
    weight = torch.from_numpy(emb.W.data.copy())
    with torch.no_grad():
        torch.embedding_renorm_(weight, torch.arange(20), 1.5, 2.0)
    exec(snippet, {"np": np, "emb": emb})
    np.testing.assert_allclose(emb.W.data, weight.numpy(), rtol=1e-15, atol=0)
    assert np.linalg.norm(emb.W.data, axis=1).max() <= 1.5


# ------------------------------------------------------------------ max_norm, norm_type, sparse
@pytest.mark.parametrize("max_norm", [1.0, 2, np.float32(0.5)])
def test_max_norm_is_refused_saying_why_and_what_to_do(max_norm) -> None:
    with pytest.raises(ValueError) as caught:
        Embedding(5, 3, max_norm=max_norm)
    bound = str(max_norm)
    assert str(caught.value) == (
        f"Embedding(5, 3): max_norm is not supported, got {max_norm!r}: PyTorch renormalises the looked-up rows of "
        "W in place during the forward, a side effect that would change the model on every forward (predict, "
        "evaluate, each probe of a gradient check, which would then compare two different models). Renormalise "
        "the rows after each optimizer step instead (emb: this layer; every row, not only the batch's):\n"
        "    norms = np.linalg.norm(emb.W.data, axis=1, keepdims=True)\n"
        f"    emb.W.data *= np.where(norms > {bound}, {bound} / (norms + 1e-7), 1.0)")
    assert not isinstance(caught.value, TypeError)  # (the old layer: "unexpected keyword argument 'max_norm'")


def test_pytorch_s_defaults_are_accepted_and_the_rest_refused() -> None:
    layer = Embedding(5, 3, padding_idx=0, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False)
    assert repr(layer) == "Embedding(num_embeddings=5, embedding_dim=3, padding_idx=0)"
    assert Embedding(5, 3, norm_type=2, sparse=np.False_).W.shape == (5, 3)
    assert Embedding(5, 3, norm_type=1.0).W.shape == (5, 3)  # (without max_norm PyTorch ignores it too)
    with pytest.raises(ValueError, match=r"^Embedding\(5, 3\): norm_type must be a number \(the p of max_norm's "
                                         r"p-norm\), got True$"):
        Embedding(5, 3, norm_type=True)
    with pytest.raises(ValueError, match=r"max_norm is not supported, got 1\.0"):
        Embedding(5, 3, max_norm=1.0, norm_type=1.0)  # (max_norm first: the cause)
    with pytest.raises(ValueError, match=r"^Embedding\(5, 3\): sparse gradients are not supported, got sparse=True: "
                                         r"W\.grad is a dense array, and the back-pass adds only into the rows the "
                                         r"batch used; leave sparse out \(False\)$"):
        Embedding(5, 3, sparse=True)
    with pytest.raises(TypeError, match=r"^Embedding\(5, 3\): sparse must be True or False, got 'no'$"):
        Embedding(5, 3, sparse="no")


def test_the_docs_say_how_to_replace_max_norm() -> None:
    doc = Embedding.__doc__ or ""
    assert "max_norm" in doc and "scale_grad_by_freq" in doc and "sparse" in doc
    with open(md.__file__.replace("minidl/__init__.py", "docs/layers.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("## Embedding"):text.index("## Dropout")]
    assert "scale_grad_by_freq" in section and "np.linalg.norm(emb.W.data, axis=1, keepdims=True)" in section
    assert re.search(r"`sparse=True`", section)
