"""LogSoftmax + NLLLoss (= CrossEntropyLoss) and BCELoss (on probabilities): values against direct
formulas, the gradient checker, edge cases and PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

# ----------------------------------------------------------------------------- LogSoftmax


@pytest.mark.parametrize(("shape", "axis", "seed"), [((3, 4), -1, 0), ((5, 2), 0, 1), ((2, 3, 4), 1, 2)])
def test_log_softmax_is_the_log_of_the_softmax(shape: tuple[int, ...], axis: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(scale=3.0, size=shape)
    y = md.LogSoftmax(axis=axis)(x)
    np.testing.assert_allclose(y, np.log(md.Softmax(axis=axis)(x)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.exp(y).sum(axis=axis), 1.0, rtol=1e-14)


def test_log_softmax_keeps_its_digits_where_the_softmax_underflows() -> None:
    x = np.array([[0.0, -1000.0, 1e300], [2.0, 1.0, 0.0]])
    y = md.LogSoftmax()(x)
    np.testing.assert_array_equal(y[0], [-1e300, -1e300, 0.0])
    e = np.exp([2.0, 1.0, 0.0])
    np.testing.assert_allclose(y[1], np.log(e / e.sum()), rtol=1e-15)
    assert md.LogSoftmax()(np.array([[0.0, -800.0]]))[0, 1] == -800.0  # log(softmax) would be -inf


@pytest.mark.parametrize(("shape", "axis", "seed"), [((4, 3), -1, 0), ((3, 5), 0, 1), ((2, 3, 2), 1, 2)])
def test_log_softmax_gradient_checker_and_jacobian(shape: tuple[int, ...], axis: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=shape)
    assert_gradients_ok(md.LogSoftmax(axis=axis), inputs=x, seed=seed)
    # the closed form dx = g - softmax * sum(g) along the axis
    layer = md.LogSoftmax(axis=axis)
    layer(x)
    g = rng.normal(size=shape)
    s = md.Softmax(axis=axis)(x)
    np.testing.assert_allclose(layer.backward(g), g - s * g.sum(axis=axis, keepdims=True), rtol=1e-12, atol=1e-14)


def test_log_softmax_float32_errors_and_repr() -> None:
    layer = md.LogSoftmax()
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    y = layer(x)
    assert y.dtype == layer.backward(np.ones_like(y)).dtype == np.float32
    np.testing.assert_allclose(y, md.LogSoftmax()(x.astype(np.float64)), rtol=1e-6)
    with pytest.raises(md.ShapeError, match=r"LogSoftmax\(axis=2\): the input has 2 dimension\(s\)"):
        md.LogSoftmax(axis=2)(x)
    with pytest.raises(TypeError, match="LogSoftmax: axis must be an int"):
        md.LogSoftmax(axis=1.0)  # type: ignore[arg-type]
    assert repr(md.LogSoftmax(0)) == "LogSoftmax(axis=0)"


# ----------------------------------------------------------------------------- NLLLoss


@pytest.mark.parametrize(("n", "c", "seed"), [(1, 2, 0), (6, 3, 1), (9, 10, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_log_softmax_then_nll_is_cross_entropy(n: int, c: int, seed: int, reduction: str) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(scale=2.0, size=(n, c)), rng.integers(0, c, size=n)
    weight = rng.uniform(0.2, 2.0, size=c)
    for kwargs in ({}, {"weight": weight}, {"ignore_index": int(y[0])}):
        ce, nll = md.CrossEntropyLoss(reduction, **kwargs), md.NLLLoss(reduction, **kwargs)
        log_softmax = md.LogSoftmax()
        assert nll(log_softmax(x), y) == pytest.approx(ce(x, y), rel=1e-13, abs=1e-15)
        np.testing.assert_allclose(log_softmax.backward(nll.backward()), ce.backward(), rtol=1e-12, atol=1e-15)
        assert (nll.batch_weight is None) == (ce.batch_weight is None)
        if ce.batch_weight is not None:
            assert nll.batch_weight == pytest.approx(ce.batch_weight, rel=1e-15)


def test_nll_closed_form_with_weights_and_ignored_rows() -> None:
    logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]))
    y = np.array([0, 1, 2, -1])
    loss = md.NLLLoss(weight=[1.0, 2.0, 3.0], ignore_index=-1)
    expected = -(1.0 * logp[0, 0] + 2.0 * logp[1, 1] + 3.0 * logp[2, 2]) / 6.0
    assert loss(logp, y) == pytest.approx(expected, rel=1e-15)
    grad = np.zeros((4, 3))
    grad[0, 0], grad[1, 1], grad[2, 2] = -1 / 6, -2 / 6, -3 / 6
    np.testing.assert_allclose(loss.backward(), grad, rtol=1e-15)
    assert loss.batch_weight == 6.0
    everything_ignored = md.NLLLoss(ignore_index=0)
    assert everything_ignored(logp, np.zeros(4, dtype=int)) == 0.0
    np.testing.assert_array_equal(everything_ignored.backward(), np.zeros((4, 3)))


@pytest.mark.parametrize(("shape", "seed"), [((3, 4), 0), ((2, 3, 5), 1), ((2, 4, 3, 2), 2)])
def test_nll_gradient_checker_through_log_softmax(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    labels = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    model = md.Sequential(md.LogSoftmax(axis=1))
    report = assert_gradients_ok(model, inputs=x, loss=md.NLLLoss(weight=rng.uniform(0.5, 2, shape[1])),
                                 targets=labels, seed=seed)
    assert report["input"].checked == x.size


def test_nll_with_positions_is_nll_over_every_position() -> None:
    rng = np.random.default_rng(3)
    x = md.LogSoftmax(axis=1)(rng.normal(size=(2, 3, 4, 5)))
    labels = rng.integers(0, 3, size=(2, 4, 5))
    loss, flat = md.NLLLoss(), md.NLLLoss()
    rows = np.moveaxis(x, 1, -1).reshape(-1, 3)
    assert loss(x, labels) == pytest.approx(flat(rows, labels.reshape(-1)), rel=1e-14)
    np.testing.assert_allclose(np.moveaxis(loss.backward(), 1, -1).reshape(-1, 3), flat.backward(), rtol=1e-15)


def test_nll_errors_name_the_problem() -> None:
    logp = np.log(np.full((2, 3), 1 / 3))
    with pytest.raises(md.TargetError, match=r"NLLLoss: class label 3 at index 1 is out of range for 3 classes"):
        md.NLLLoss()(logp, np.array([0, 3]))
    with pytest.raises(md.DTypeError, match=r"NLLLoss: y_true of shape \(2,\) must hold integer class labels"):
        md.NLLLoss()(logp, np.array([0.0, 1.0]))
    with pytest.raises(md.ShapeError, match=r"must hold integer labels of shape \(2, 4\), got \(2, 3, 4\)"):
        md.NLLLoss()(np.zeros((2, 3, 4)), np.zeros((2, 3, 4), dtype=int))
    with pytest.raises(md.NonFiniteError, match="NLLLoss: y_pred"):
        md.NLLLoss()(np.array([[0.0, -np.inf]]), np.array([0]))
    with pytest.raises(md.ShapeError, match="weight has 2 class weight"):
        md.NLLLoss(weight=[1.0, 2.0])(logp, np.array([0, 1]))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.NLLLoss().backward()
    assert repr(md.NLLLoss(weight=[1, 2], ignore_index=-1)) == \
        "NLLLoss(reduction='mean', weight=[1.0, 2.0], ignore_index=-1)"


def test_nll_keeps_float32() -> None:
    logp = md.LogSoftmax()(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    loss = md.NLLLoss()
    loss(logp, np.array([0, 1, 2, 0]))
    assert loss.backward().dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_without_weight_sums_float32_in_float64(reduction: str) -> None:
    """The unweighted loss sums the picked float32 log-probabilities in float64 (as the weighted one):
    -2**24 and -1s, whose float32 sums would round, give the exact value; the gradient is float32
    -1/N (mean) or -1 at each label, 0 elsewhere."""
    n = 4  # (in float32, -2**24 - 1 rounds to -2**24: the float32 sum would be 2**24)
    logp = np.zeros((n, 2), dtype=np.float32)
    logp[:, 1] = -1.0
    logp[0, 1] = -(2.0**24)
    loss = md.NLLLoss(reduction)
    value = loss(logp, np.ones(n, dtype=int))
    total = 2.0**24 + n - 1
    assert value == (total / n if reduction == "mean" else total)
    grad = loss.backward()
    expected = np.zeros((n, 2), dtype=np.float32)
    expected[:, 1] = np.float32(-1.0 / n) if reduction == "mean" else -1.0
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, expected)


def test_nll_trains_like_cross_entropy() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    a = md.Sequential(md.Dense(4, 3, rng=0))
    b = md.Sequential(md.Dense(4, 3, rng=0), md.LogSoftmax())
    md.fit(a, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(a.parameters(), lr=0.5), epochs=3, batch_size=8,
           rng=1, verbose=0)
    md.fit(b, x, y, loss=md.NLLLoss(), optimizer=md.SGD(b.parameters(), lr=0.5), epochs=3, batch_size=8,
           rng=1, verbose=0, metrics=["accuracy"])
    np.testing.assert_allclose(a[0].W.data, b[0].W.data, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- BCELoss


@pytest.mark.parametrize(("shape", "seed"), [((5,), 0), ((4, 3), 1), ((2, 3, 2), 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_on_probabilities_matches_the_formula_and_the_logits_version(shape, seed, reduction) -> None:
    rng = np.random.default_rng(seed)
    z, t = rng.normal(scale=2.0, size=shape), rng.uniform(size=shape)
    p = 1 / (1 + np.exp(-z))
    loss = md.BCELoss(reduction)
    value = loss(p, t)
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert value == pytest.approx(per.mean() if reduction == "mean" else per.sum(), rel=1e-13)
    logits = md.BCEWithLogitsLoss(reduction)
    assert value == pytest.approx(logits(z, t), rel=1e-12)
    # d/dz of BCE(sigmoid(z)) = dL/dp * p (1 - p) is the logits version's gradient
    np.testing.assert_allclose(loss.backward() * p * (1 - p), logits.backward(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("shape", "seed"), [((4, 2), 0), ((6,), 1), ((2, 2, 3), 2)])
def test_bce_gradient_checker_after_a_sigmoid(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=shape), rng.uniform(size=shape)
    report = assert_gradients_ok(md.Sequential(md.Sigmoid()), inputs=x, loss=md.BCELoss(), targets=t, seed=seed)
    assert report["input"].checked == x.size
    # and directly on probabilities (away from 0 and 1)
    assert_gradients_ok(md.Sequential(md.Softplus()), inputs=rng.uniform(-3, -0.5, size=shape),
                        loss=md.BCELoss("sum"), targets=t, seed=seed)


def test_bce_clamps_its_logs_at_minus_100_as_pytorch() -> None:
    loss = md.BCELoss("sum")
    assert loss(np.array([0.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0])) == 200.0
    with np.errstate(all="raise"):  # no log(0), no division by zero
        assert loss(np.array([1e-50, 1 - 1e-17]), np.array([1.0, 0.0])) == 200.0
        grad = loss.backward()
    np.testing.assert_allclose(grad, [-1e12, 1e12], rtol=1e-8)  # PyTorch's clamp of p (1 - p) at 1e-12
    small = np.array([1e-10])  # log1p keeps the digits of log(1 - p) for small p
    assert loss(small, np.array([0.0])) == pytest.approx(1e-10, rel=1e-9)


def test_bce_errors_and_float32() -> None:
    with pytest.raises(md.TargetError, match=r"BCELoss: y_pred \(probabilities\) must be in \[0, 1\], got 1.5"):
        md.BCELoss()(np.array([0.5, 1.5]), np.array([0.0, 1.0]))
    with pytest.raises(md.TargetError, match=r"BCELoss: y_true must be in \[0, 1\], got -1.0 at index \(1,\)"):
        md.BCELoss()(np.array([0.5, 0.5]), np.array([0.0, -1.0]))
    with pytest.raises(md.ShapeError, match="y_pred has shape"):
        md.BCELoss()(np.array([0.5, 0.5]), np.array([0.0]))
    loss = md.BCELoss()
    p = np.array([0.2, 0.7, 0.0, 1.0], dtype=np.float32)
    assert math.isfinite(loss(p, np.array([0.0, 1.0, 1.0, 0.0])))
    assert loss.backward().dtype == np.float32
    assert repr(md.BCELoss("sum")) == "BCELoss(reduction='sum')"


def test_nll_and_bce_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    y[2] = -1
    w = rng.uniform(0.5, 2.0, size=4)
    logp = md.LogSoftmax()(x)
    ours = md.NLLLoss(weight=w, ignore_index=-1)
    value = ours(logp, y)
    lt = torch.tensor(logp, requires_grad=True)
    theirs = torch.nn.NLLLoss(weight=torch.tensor(w), ignore_index=-1)(lt, torch.tensor(y))
    theirs.backward()
    assert value == pytest.approx(theirs.item(), rel=1e-13)
    np.testing.assert_allclose(ours.backward(), lt.grad.numpy(), rtol=1e-13)
    p, t = rng.uniform(0.01, 0.99, size=(5, 3)), rng.uniform(size=(5, 3))
    p[0, :2], t[0, :2] = [0.0, 1.0], [1.0, 0.0]  # the clamped logs
    bce = md.BCELoss()
    pt = torch.tensor(p, requires_grad=True)
    theirs = torch.nn.BCELoss()(pt, torch.tensor(t))
    theirs.backward()
    assert bce(p, t) == pytest.approx(theirs.item(), rel=1e-13)
    np.testing.assert_allclose(bce.backward(), pt.grad.numpy(), rtol=1e-12)


def test_accuracy_follows_the_new_losses() -> None:
    """metrics=["accuracy"]: per-element yes/no at 0.5 for BCELoss (a multi-label (N, C) output is not an
    argmax over classes), the loss's ignore_index for NLLLoss."""
    p = np.array([[0.9, 0.8], [0.2, 0.6], [0.4, 0.1]])
    t = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    model = md.Sequential(md.Sigmoid())
    logits = np.log(p / (1 - p))
    assert md.evaluate(model, logits, t, loss=md.BCELoss(), metrics=["accuracy"])["accuracy"] == pytest.approx(4 / 6)
    logp = md.LogSoftmax()(np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]))
    scores = md.evaluate(md.Sequential(md.Flatten()), logp, np.array([0, 0, -1]),
                         loss=md.NLLLoss(ignore_index=-1), metrics=["accuracy"])
    assert scores["accuracy"] == 0.5
