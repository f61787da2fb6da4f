"""CrossEntropyLoss and BCEWithLogitsLoss: values against direct formulas, fused gradients, checks."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

import minidl as md


class Identity(md.Layer):
    """y = x, so that the checker's "input" gradient is exactly the loss's backward."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._shape)
        return grad_output


def naive_log_softmax(x: np.ndarray) -> np.ndarray:
    """log(exp(x) / sum(exp(x))) written out directly (fine for moderate logits)."""
    e = np.exp(x)
    return np.log(e / e.sum(axis=1, keepdims=True))


# ----------------------------------------------------------------------------- CrossEntropyLoss
@pytest.mark.parametrize("n, c, seed", [(1, 2, 0), (5, 3, 1), (8, 10, 2)])
def test_ce_integer_labels_match_the_direct_formula(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=(n, c))
    y = rng.integers(0, c, size=n)
    per_row = -naive_log_softmax(x)[np.arange(n), y]
    mean, total = md.CrossEntropyLoss(), md.CrossEntropyLoss(reduction="sum")
    assert mean(x, y) == pytest.approx(per_row.mean(), rel=1e-13)
    assert total(x, y) == pytest.approx(per_row.sum(), rel=1e-13)
    softmax = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    onehot = np.eye(c)[y]
    np.testing.assert_allclose(mean.backward(), (softmax - onehot) / n, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(total.backward(), softmax - onehot, rtol=1e-12, atol=1e-15)


def test_ce_onehot_targets_equal_integer_labels() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 4)), np.array([0, 3, 1, 1, 2, 3])
    for smoothing in (0.0, 0.1):
        a, b = md.CrossEntropyLoss(label_smoothing=smoothing), md.CrossEntropyLoss(label_smoothing=smoothing)
        assert a(x, y) == pytest.approx(b(x, np.eye(4)[y]), rel=1e-14)
        np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-13, atol=1e-16)


def test_ce_probability_targets_match_the_formula() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3))
    q = rng.random((5, 3))
    q /= q.sum(axis=1, keepdims=True)
    loss = md.CrossEntropyLoss()
    assert loss(x, q) == pytest.approx(-(q * naive_log_softmax(x)).sum(axis=1).mean(), rel=1e-13)
    p = np.exp(naive_log_softmax(x))
    np.testing.assert_allclose(loss.backward(), (p - q) / 5, rtol=1e-12, atol=1e-16)
    # unnormalised non-negative targets: the gradient is p * sum(q) - q, as PyTorch's autograd gives
    w = 2.5 * q
    loss(x, w)
    np.testing.assert_allclose(loss.backward(), (p * w.sum(axis=1, keepdims=True) - w) / 5, rtol=1e-12)


def test_ce_label_smoothing_matches_pytorch_definition() -> None:
    rng = np.random.default_rng(5)
    n, c, eps = 4, 5, 0.2
    x, y = rng.normal(size=(n, c)), rng.integers(0, c, size=n)
    logp = naive_log_softmax(x)
    expected = ((1 - eps) * -logp[np.arange(n), y] + eps * -logp.mean(axis=1)).mean()
    loss = md.CrossEntropyLoss(label_smoothing=eps)
    assert loss(x, y) == pytest.approx(expected, rel=1e-13)
    q = (1 - eps) * np.eye(c)[y] + eps / c
    np.testing.assert_allclose(loss.backward(), (np.exp(logp) - q) / n, rtol=1e-12, atol=1e-16)


def test_ce_is_stable_for_huge_logits() -> None:
    x = np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 5e3 - 1.0]])
    y = np.array([0, 2])
    loss = md.CrossEntropyLoss(reduction="sum")
    value = loss(x, y)
    # row 0: log-softmax of the true class is ~0; row 1: -log(e^-1 / (1 + e^-1)) = 1 + log(1 + e^-1)
    assert value == pytest.approx(1 + np.log1p(np.exp(-1.0)), rel=1e-14)
    assert np.all(np.isfinite(loss.backward()))
    assert loss(x - 123.0, y) == pytest.approx(value, rel=1e-14)  # shift invariance


def test_ce_keeps_float32_and_reuses_nothing_stale() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    loss = md.CrossEntropyLoss()
    loss(x, np.array([1, 2, 3]))
    assert loss.backward().dtype == np.float32
    loss(x, np.eye(4, dtype=np.float64)[[0, 0, 1]])
    assert loss.backward().dtype == np.float32
    first = loss.backward()
    np.testing.assert_array_equal(loss.backward(), first)  # backward twice gives the same answer
    assert loss.probabilities is not None
    np.testing.assert_allclose(loss.probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_ce_one_loss_over_batches_of_changing_shape_equals_a_fresh_loss_each_time() -> None:
    """The loss keeps the row starts (0, C, 2C, ...) of the last shape: a batch of another N or C (a
    last, smaller batch; one row; another head) must not use stale ones."""
    rng = np.random.default_rng(7)
    kept = md.CrossEntropyLoss()
    for n, c in [(4, 3), (4, 5), (6, 5), (1, 5), (1, 2), (6, 5), (5, 6), (6, 5)]:
        x, y = rng.normal(size=(n, c)), rng.integers(0, c, size=n)
        fresh = md.CrossEntropyLoss()
        assert kept(x, y) == fresh(x, y)
        np.testing.assert_array_equal(kept.backward(), fresh.backward())
        np.testing.assert_allclose(kept.backward(), (np.exp(x) / np.exp(x).sum(1, keepdims=True) - np.eye(c)[y]) / n,
                                   rtol=1e-12, atol=1e-15)


def test_ce_errors_name_the_problem() -> None:
    loss = md.CrossEntropyLoss()
    x = np.zeros((3, 4))
    with pytest.raises(md.TargetError, match=r"class label 4 at index 2 is out of range for 4 classes"):
        loss(x, np.array([0, 1, 4]))
    with pytest.raises(md.TargetError, match=r"class label -1 at index 0"):
        loss(x, np.array([-1, 1, 2]))
    with pytest.raises(md.MinidlError):  # catchable as minidl's and as a ValueError
        loss(x, np.array([0, 9, 9]))
    with pytest.raises(ValueError):
        loss(x, np.array([0, 9, 9]))
    with pytest.raises(md.DTypeError, match=r"integer class labels.*float64"):
        loss(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(md.ShapeError, match=r"labels y_true must have shape \(3,\), got \(2,\)"):
        loss(x, np.array([0, 1]))
    with pytest.raises(md.ShapeError, match=r"shape of y_pred \(3, 4\), got \(3, 5\)"):
        loss(x, np.zeros((3, 5)))
    with pytest.raises(md.ShapeError, match=r"expected y_pred \(logits\) of shape \(N, C\)"):
        loss(np.zeros(4), np.array([1]))
    with pytest.raises(md.NonFiniteError, match="logits"):
        loss(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.CrossEntropyLoss().backward()
    with pytest.raises(ValueError, match="reduction"):
        md.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="label_smoothing"):
        md.CrossEntropyLoss(label_smoothing=1.5)


CE_CASES = [
    ((4, 3), 0, "mean", 0.0, "labels"),
    ((7, 5), 1, "sum", 0.0, "labels"),
    ((5, 4), 2, "mean", 0.1, "labels"),
    ((6, 3), 3, "mean", 0.0, "probs"),
    ((3, 6), 4, "sum", 0.25, "probs"),
]


@pytest.mark.parametrize("shape, seed, reduction, smoothing, kind", CE_CASES)
def test_ce_gradient_checker(
    shape: tuple[int, int], seed: int, reduction: str, smoothing: float, kind: str
) -> None:
    rng = np.random.default_rng(seed)
    n, c = shape
    x = rng.normal(size=shape)
    if kind == "labels":
        t: np.ndarray = rng.integers(0, c, size=n)
    else:
        t = rng.random(shape)
        t /= t.sum(axis=1, keepdims=True)
    loss = md.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
    report = md.GradientChecker(Identity(), loss=loss, inputs=x, targets=t, seed=seed).run()
    assert report.passed, str(report)
    # through a Dense layer: checks the weight gradient too
    report = md.GradientChecker(md.Dense(3, c, rng=seed), loss=loss, inputs=rng.normal(size=(n, 3)),
                                targets=t, seed=seed).run()
    assert report.passed, str(report)


def test_ce_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    for reduction, smoothing in (("mean", 0.0), ("sum", 0.15)):
        ours = md.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
        xt = torch.tensor(x, requires_grad=True)
        ref = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(xt, torch.tensor(y))
        ref.backward()
        assert ours(x, y) == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


# ----------------------------------------------------------------------------- BCEWithLogitsLoss
def naive_bce(z: np.ndarray, t: np.ndarray, w: np.ndarray | float = 1.0) -> np.ndarray:
    s = 1 / (1 + np.exp(-z))
    return -(w * t * np.log(s) + (1 - t) * np.log(1 - s))


@pytest.mark.parametrize("shape, seed", [((4,), 0), ((5, 3), 1), ((2, 3, 2), 2)])
def test_bce_matches_the_direct_formula(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, t = rng.normal(scale=2.0, size=shape), rng.random(shape)
    mean, total = md.BCEWithLogitsLoss(), md.BCEWithLogitsLoss(reduction="sum")
    assert mean(z, t) == pytest.approx(naive_bce(z, t).mean(), rel=1e-13)
    assert total(z, t) == pytest.approx(naive_bce(z, t).sum(), rel=1e-13)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(mean.backward(), (s - t) / z.size, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(total.backward(), s - t, rtol=1e-12, atol=1e-16)


def test_bce_pos_weight() -> None:
    rng = np.random.default_rng(8)
    z, t, w = rng.normal(size=(4, 3)), rng.random((4, 3)), np.array([0.5, 1.0, 3.0])
    loss = md.BCEWithLogitsLoss(pos_weight=w)
    assert loss(z, t) == pytest.approx(naive_bce(z, t, w).mean(), rel=1e-13)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(loss.backward(), ((1 - t) * s - w * t * (1 - s)) / z.size, rtol=1e-12)


def test_bce_pos_weight_of_zero_ignores_the_positives_of_that_column() -> None:
    """pos_weight >= 0, as PyTorch: 0 in a column leaves only the negatives' term there."""
    z, t = np.array([[0.3, -1.2], [2.0, 0.4]]), np.ones((2, 2))
    loss = md.BCEWithLogitsLoss(pos_weight=[1.0, 0.0])
    assert loss(z, t) == pytest.approx(naive_bce(z, t, np.array([1.0, 0.0])).mean(), rel=1e-14)
    assert loss(z, t) == pytest.approx(np.mean(naive_bce(z, t)[:, 0]) / 2, rel=1e-14)  # half the elements count
    np.testing.assert_array_equal(loss.backward()[:, 1], 0.0)


def test_bce_is_stable_and_keeps_float32() -> None:
    z = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    t = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    loss = md.BCEWithLogitsLoss(reduction="sum")
    # softplus: 800 (t=1, z=-800), ~e^-40, log 2, ~e^-40, 800
    assert loss(z, t) == pytest.approx(1600 + np.log(2) + 2 * np.exp(-40.0), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [-1.0, np.exp(-40.0), 0.0, -np.exp(-40.0), 1.0],
                               rtol=1e-12, atol=1e-300)
    loss32 = md.BCEWithLogitsLoss()
    loss32(z.astype(np.float32), t)
    assert loss32.backward().dtype == np.float32


def test_bce_errors() -> None:
    loss = md.BCEWithLogitsLoss()
    with pytest.raises(md.TargetError, match=r"targets must be in \[0, 1\], got 1.5 at index \(1,\)"):
        loss(np.zeros(3), np.array([0.0, 1.5, 1.0]))
    with pytest.raises(md.ShapeError, match="BCEWithLogitsLoss"):
        loss(np.zeros(3), np.zeros(4))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.BCEWithLogitsLoss().backward()


@pytest.mark.parametrize("shape, seed, reduction, pos_weight", [
    ((4, 1), 0, "mean", None), ((5, 3), 1, "sum", None), ((3, 2), 2, "mean", (2.0, 0.5)),
])
def test_bce_gradient_checker(
    shape: tuple[int, int], seed: int, reduction: str, pos_weight: tuple[float, ...] | None
) -> None:
    rng = np.random.default_rng(seed)
    z, t = rng.normal(size=shape), rng.random(shape)
    loss = md.BCEWithLogitsLoss(reduction=reduction, pos_weight=pos_weight)
    report = md.GradientChecker(Identity(), loss=loss, inputs=z, targets=t, seed=seed).run()
    assert report.passed, str(report)
    report = md.GradientChecker(md.Dense(2, shape[1], rng=seed), loss=loss,
                                inputs=rng.normal(size=(shape[0], 2)), targets=t, seed=seed).run()
    assert report.passed, str(report)


def test_bce_against_pytorch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    z, t, w = rng.normal(size=(5, 3)), rng.random((5, 3)), np.array([1.0, 2.0, 0.3])
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))(zt, torch.tensor(t))
    ref.backward()
    ours = md.BCEWithLogitsLoss(pos_weight=w)
    assert ours(z, t) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(ours.backward(), zt.grad.numpy(), rtol=1e-10)


def test_bce_pos_weight_must_fit_the_logits_and_be_non_negative():
    loss = md.BCEWithLogitsLoss(pos_weight=np.ones((2, 4)))
    with pytest.raises(md.ShapeError, match=r"pos_weight of shape \(2, 4\) does not broadcast"):
        loss(np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="pos_weight must be finite and >= 0"):
        md.BCEWithLogitsLoss(pos_weight=np.array([1.0, -2.0]))
    ok = md.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 3.0]))
    assert np.isfinite(ok(np.zeros((2, 3)), np.ones((2, 3))))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64])
def test_ce_label_range_check_for_every_integer_dtype(dtype: type) -> None:
    loss = md.CrossEntropyLoss()
    x = np.zeros((4, 3))
    assert loss(x, np.array([0, 1, 2, 2], dtype=dtype)) == pytest.approx(np.log(3.0), rel=1e-15)
    with pytest.raises(md.TargetError, match=r"class label 3 at index 1"):
        loss(x, np.array([0, 3, 2, 2], dtype=dtype))
    if np.issubdtype(dtype, np.signedinteger):
        with pytest.raises(md.TargetError, match=r"class label -1 at index 2"):
            loss(x, np.array([0, 1, -1, 2], dtype=dtype))
        strided = np.array([0, -7, 1, -7, 2, -7], dtype=dtype)[::2]  # a view skipping bad labels
        assert loss(np.zeros((3, 3)), strided) == pytest.approx(np.log(3.0), rel=1e-15)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_ce_gradient_does_not_depend_on_the_logits_layout(label_smoothing: float) -> None:
    rng = np.random.default_rng(5)
    logits, labels = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    wide = rng.normal(size=(6, 8))
    wide[:, ::2] = logits
    results = []
    for layout in (logits, np.asfortranarray(logits), wide[:, ::2], logits[::-1][::-1]):
        loss = md.CrossEntropyLoss(label_smoothing=label_smoothing)
        value = loss(layout, labels)
        results.append((value, loss.backward()))
    for value, grad in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-14)
        np.testing.assert_allclose(grad, results[0][1], rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(results[0][1].sum(axis=1), 0.0, atol=1e-15)  # rows of p - q sum to 0


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">i8", "<i4"])
def test_ce_accepts_labels_of_either_byte_order(dtype: str) -> None:
    x = np.zeros((3, 300))
    loss = md.CrossEntropyLoss()
    assert loss(x, np.array([0, 299, 7], dtype=dtype)) == pytest.approx(np.log(300.0), rel=1e-14)
    with pytest.raises(md.TargetError, match=r"class label 300 at index 0"):
        loss(x, np.array([300, 0, 0], dtype=dtype))


# ----------------------------------------------------------------- class weights and ignore_index
def naive_weighted_ce(x, y, weight, ignore_index, smoothing, reduction):  # type: ignore[no-untyped-def]
    """PyTorch's definition written out row by row, with plain loops."""
    n, c = x.shape
    logp = naive_log_softmax(x)
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=float)
    total, norm = 0.0, 0.0
    for i in range(n):
        if ignore_index is not None and y[i] == ignore_index:
            continue
        row = (1 - smoothing) * w[y[i]] * -logp[i, y[i]]
        row += smoothing / c * sum(w[k] * -logp[i, k] for k in range(c))
        total += row
        norm += w[y[i]]
    return total / norm if reduction == "mean" else total


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("use_weight, ignore", [(True, None), (False, -100), (True, 1), (False, 2)])
@pytest.mark.parametrize("n, c, seed", [(6, 3, 0), (9, 5, 1)])
def test_ce_weight_and_ignore_index_match_the_definition_and_the_checker(
        reduction: str, smoothing: float, use_weight: bool, ignore: int | None, n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(n, c))
    y = rng.integers(0, c, size=n)
    y[0] = 0  # at least one row is kept whatever is ignored
    if ignore is not None:
        y[1:3] = ignore
    weight = rng.uniform(0.2, 3.0, size=c) if use_weight else None
    loss = md.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing, weight=weight, ignore_index=ignore)
    assert loss(x, y) == pytest.approx(naive_weighted_ce(x, y, weight, ignore, smoothing, reduction), rel=1e-12)
    report = md.GradientChecker(Identity(), loss=loss, inputs=x, targets=y, seed=seed).run()
    assert report.passed, str(report)
    if ignore is not None:  # an ignored row gets no gradient at all
        np.testing.assert_array_equal(loss.backward()[y == ignore], 0.0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ce_weight_with_probability_targets(reduction: str) -> None:
    rng = np.random.default_rng(3)
    x, q = rng.normal(size=(5, 4)), rng.dirichlet(np.ones(4), size=5)
    weight = np.array([0.5, 2.0, 1.0, 3.0])
    loss = md.CrossEntropyLoss(reduction=reduction, weight=weight)
    per_row = -(q * weight * naive_log_softmax(x)).sum(axis=1)
    expected = per_row.mean() if reduction == "mean" else per_row.sum()  # PyTorch: divided by N here
    assert loss(x, q) == pytest.approx(expected, rel=1e-12)
    assert md.GradientChecker(Identity(), loss=loss, inputs=x, targets=q).run().passed
    # one-hot probabilities and labels agree only for "sum" (the mean divides by N, not by the weights)
    y = rng.integers(0, 4, size=5)
    if reduction == "sum":
        assert loss(x, np.eye(4)[y]) == pytest.approx(loss(x, y), rel=1e-12)


def test_ce_weight_and_ignore_index_errors() -> None:
    with pytest.raises(md.ShapeError, match="1-D array of one weight per class"):
        md.CrossEntropyLoss(weight=np.ones((2, 2)))
    with pytest.raises(ValueError, match="finite and >= 0"):
        md.CrossEntropyLoss(weight=[1.0, -1.0])
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        md.CrossEntropyLoss(ignore_index=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        md.CrossEntropyLoss(ignore_index=True)
    x = np.zeros((3, 4))
    with pytest.raises(md.ShapeError, match=r"weight has 3 class weight.*4 classes"):
        md.CrossEntropyLoss(weight=[1.0, 1.0, 1.0])(x, np.array([0, 1, 2]))
    loss = md.CrossEntropyLoss(ignore_index=-100)
    with pytest.raises(md.TargetError, match="class label 7 at index 2"):
        loss(x, np.array([-100, 1, 7]))
    with pytest.raises(md.TargetError, match="class label -3 at index 0"):
        loss(x, np.array([-3, 1, -100]))
    for empty, labels in ((loss, [-100, -100, -100]), (md.CrossEntropyLoss(weight=[0.0, 1, 1, 1]), [0, 0, 0])):
        assert empty(x, np.array(labels)) == 0.0  # a batch that counts for nothing: no NaN
        assert empty.batch_weight == 0.0
        np.testing.assert_array_equal(empty.backward(), 0.0)
    total = md.CrossEntropyLoss(reduction="sum", ignore_index=-100)
    assert total(x, np.array([-100, -100, -100])) == 0.0
    np.testing.assert_array_equal(total.backward(), 0.0)
    weight = np.array([1.0, 2.0, 3.0, 4.0])
    loss = md.CrossEntropyLoss(weight=weight)
    weight[0] = 100.0  # the loss keeps its own copy
    assert loss.weight is not None and loss.weight[0] == 1.0 and not loss.weight.flags.writeable
    assert "weight=[1.0, 2.0, 3.0, 4.0]" in repr(loss)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_ce_refuses_probability_targets_with_ignore_index_and_keeps_its_last_forward(shape: tuple[int, ...]) -> None:
    """ignore_index applies to labels only: probabilities with one that is a class would be taken whole, silently
    (PyTorch raises too). The refusal leaves the last good forward's cache, so its backward is still that forward's."""
    rng = np.random.default_rng(shape[0])
    x = rng.normal(size=shape)
    q = rng.random(shape)
    q /= q.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 3, size=(shape[0], *shape[2:]))
    loss = md.CrossEntropyLoss(ignore_index=0)
    value = loss(x, labels)
    grad = loss.backward()
    with pytest.raises(md.TargetError, match=r"CrossEntropyLoss\(ignore_index=0\): ignore_index applies to integer "
                       rf"class labels, but y_true holds class probabilities, shape {re.escape(str(shape))}"):
        loss(x, q)
    np.testing.assert_array_equal(loss.backward(), grad)
    assert loss(x, labels) == value
    # without ignore_index, or with a negative one (no class: PyTorch's default -100), they are taken whole
    plain = md.CrossEntropyLoss()(x, q)
    assert np.isfinite(plain) and plain > 0
    assert md.CrossEntropyLoss(ignore_index=-100)(x, q) == plain


def test_ce_weight_and_ignore_index_against_pytorch() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 5, size=8)
    y[[2, 5]] = -100
    agrees_with_torch(x, y, rng.uniform(0.1, 2.0, size=5))


def agrees_with_torch(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> None:
    """Loss and gradient as PyTorch's, with class weights and ignore_index -100, in three settings."""
    torch = pytest.importorskip("torch")
    for reduction, smoothing in (("mean", 0.0), ("mean", 0.1), ("sum", 0.2)):
        ours = md.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing, weight=weight, ignore_index=-100)
        xt = torch.tensor(x, requires_grad=True)
        ref = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), reduction=reduction, label_smoothing=smoothing,
                                        ignore_index=-100)(xt, torch.tensor(y))
        ref.backward()
        assert ours(x, y) == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_weighted_ce_averages_over_batches_like_one_batch() -> None:
    """fit/evaluate weight each batch's mean by loss.batch_weight (the kept rows' class weights)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 3)), rng.integers(0, 3, size=10)
    y[[0, 1, 2]] = -1  # the whole first batch of 3 is ignored
    model = md.Sequential(md.Dense(3, 3, rng=0))
    loss = md.CrossEntropyLoss(weight=[0.5, 1.0, 2.0], ignore_index=-1)
    whole = loss(model(x), y)
    for batch_size in (3, 4, 10):
        assert model.evaluate(x, y, loss=loss, batch_size=batch_size)["loss"] == pytest.approx(whole, rel=1e-12)
    history = model.fit(x, y, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=3,
                        shuffle=False, verbose=0)  # the all-ignored batch does not stop training
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert md.CrossEntropyLoss().batch_weight is None  # plain losses: weighted by the number of samples


# ----------------------------------------------------------------- CrossEntropyLoss with positions
def rows_of(a: np.ndarray) -> np.ndarray:
    """(N, C, d1, ...) -> (N*d1*..., C): every position a row, the classes last."""
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


SPATIAL_CASES = [  # logits shape, seed, reduction, label smoothing, targets, class weights, ignore_index
    ((2, 3, 4), 0, "mean", 0.0, "labels", False, None),
    ((2, 4, 3, 5), 1, "mean", 0.0, "labels", False, None),
    ((1, 3, 2, 2, 3), 2, "sum", 0.1, "labels", False, None),
    ((3, 5, 2, 3), 3, "mean", 0.2, "labels", True, -1),
    ((2, 3, 4, 2), 4, "mean", 0.0, "probs", False, None),
    ((2, 4, 3), 5, "sum", 0.15, "probs", True, None),
]


def spatial_targets(shape: tuple[int, ...], rng: np.random.Generator, kind: str,
                    ignore_index: int | None) -> np.ndarray:
    c = shape[1]
    if kind == "probs":
        t = rng.random(shape)
        return t / t.sum(axis=1, keepdims=True)
    labels = rng.integers(0, c, size=(shape[0], *shape[2:]))
    if ignore_index is not None:
        labels.reshape(-1)[::3] = ignore_index
    return labels


def spatial_problem(case: tuple) -> tuple[np.ndarray, np.ndarray, Any]:
    """The logits, targets and a maker of the loss of one of ``SPATIAL_CASES``."""
    shape, seed, reduction, smoothing, kind, weighted, ignore = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    t = spatial_targets(shape, rng, kind, ignore)
    weight = rng.uniform(0.2, 2.0, size=shape[1]) if weighted else None
    return x, t, lambda: md.CrossEntropyLoss(reduction, smoothing, weight=weight, ignore_index=ignore)


@pytest.mark.parametrize("case", SPATIAL_CASES)
def test_ce_with_positions_is_ce_over_every_position(case: tuple) -> None:
    """(N, C, d1, ...) logits give the loss of the (N*d1*..., C) rows and the rows' gradient, put back."""
    x, t, make = spatial_problem(case)
    kind = case[4]
    spatial, flat = make(), make()
    t_rows = rows_of(t) if kind == "probs" else t.reshape(-1)
    assert spatial(x, t) == pytest.approx(flat(rows_of(x), t_rows), rel=1e-13)
    assert spatial.batch_weight == flat.batch_weight
    grad = spatial.backward()
    assert grad.shape == x.shape and grad.dtype == x.dtype
    np.testing.assert_allclose(rows_of(grad), flat.backward(), rtol=1e-13, atol=1e-16)
    softmax = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)  # over the classes, axis 1
    np.testing.assert_allclose(spatial.probabilities, softmax, rtol=1e-12)


@pytest.mark.parametrize("case", SPATIAL_CASES)
def test_ce_with_positions_gradient_checker(case: tuple) -> None:
    x, t, make = spatial_problem(case)
    report = md.GradientChecker(Identity(), loss=make(), inputs=x, targets=t, seed=case[1]).run()
    assert report.passed, str(report)


def test_ce_with_positions_trains_a_per_pixel_classifier_checked_end_to_end() -> None:
    """A 1x1-convolution 'segmenter' (N, 2, H, W) -> (N, 3, H, W): checked by the checker, then fitted."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 2, 4, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)  # labels (16, 4, 4) in {0, 1, 2}
    model = md.Sequential(md.Conv2D(2, 8, 1, rng=0), md.Tanh(), md.Conv2D(8, 3, 1, rng=1))
    loss = md.CrossEntropyLoss()
    report = md.GradientChecker(model, loss=loss, inputs=x[:3], targets=y[:3], seed=0).run()
    assert report.passed, str(report)
    before = model.evaluate(x, y, loss=loss, metrics=["accuracy"])
    model.fit(x, y, loss=loss, optimizer=md.Adam(model.parameters(), lr=0.05), epochs=60, batch_size=8,
              rng=0, verbose=0)
    after = model.evaluate(x, y, loss=loss, metrics=["accuracy"])
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > 0.9  # per pixel: (16, 3, 4, 4) scores against (16, 4, 4) labels


def test_ce_with_positions_names_the_shapes_and_the_position() -> None:
    loss = md.CrossEntropyLoss()
    x = np.zeros((2, 3, 4, 5))
    with pytest.raises(md.ShapeError, match=r"shape \(2, 3, 4, 5\), so y_true must have shape \(2, 4, 5\) "
                                            r"\(integer labels\) or \(2, 3, 4, 5\).*got \(2, 5, 4\)"):
        loss(x, np.zeros((2, 5, 4), dtype=int))
    labels = np.zeros((2, 4, 5), dtype=int)
    labels[1, 2, 3] = 3
    with pytest.raises(md.TargetError, match=r"class label 3 at index \(1, 2, 3\) is out of range for 3"):
        loss(x, labels)
    with pytest.raises(md.DTypeError, match=r"y_true of shape \(2, 4, 5\) must hold integer"):
        loss(x, labels.astype(float))
    with pytest.raises(md.ShapeError, match=r"\(N, C\) or \(N, C, d1, \.\.\.\), got shape \(4,\)"):
        loss(np.zeros(4), np.zeros(4, dtype=int))
    # a refused batch leaves the last good one's gradient (and its layout) as it was
    good = np.ones((2, 3, 4, 5))
    loss(good, np.zeros((2, 4, 5), dtype=int))
    expected = loss.backward()
    with pytest.raises(md.TargetError):
        loss(x.reshape(2, 3, 20), labels.reshape(2, 20))
    np.testing.assert_array_equal(loss.backward(), expected)


def test_ce_with_positions_keeps_float32() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    loss = md.CrossEntropyLoss(label_smoothing=0.1)
    loss(x, rng.integers(0, 4, size=(2, 3, 3)))
    assert loss.backward().dtype == np.float32


def test_ce_with_positions_against_pytorch() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 4, 5, 2))
    y = rng.integers(0, 4, size=(3, 5, 2))
    y[0, 1, 1] = y[2, 4, 0] = -100
    agrees_with_torch(x, y, rng.uniform(0.1, 2.0, size=4))


def test_ce_with_positions_advises_the_probability_shape_of_its_logits() -> None:
    with pytest.raises(md.DTypeError, match=r"use y_true.astype\(int\), or pass \(2, 5, 3, 3\) class probabilities"):
        md.CrossEntropyLoss()(np.zeros((2, 5, 3, 3)), np.zeros((2, 3, 3)))
    with pytest.raises(md.DTypeError, match=r"or pass \(N, 5\) class probabilities"):
        md.CrossEntropyLoss()(np.zeros((2, 5)), np.zeros(2))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_a_batch_of_weightless_rows_has_loss_0_also_with_label_smoothing(smoothing) -> None:
    """With smoothing the other classes' terms stayed: a summed loss and gradient while the batch
    weighed 0 (a test's find; PyTorch gives NaN)."""
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    loss = md.CrossEntropyLoss(label_smoothing=smoothing, weight=[0.0, 1.0, 1.0])
    assert loss(x, np.array([0, 0])) == 0.0 and loss.batch_weight == 0.0
    np.testing.assert_array_equal(loss.backward(), 0.0)
    summed = md.CrossEntropyLoss(label_smoothing=smoothing, weight=[0.0, 1.0, 1.0], reduction="sum")
    value = summed(x, np.array([0, 0]))
    assert (value > 0) == (smoothing > 0)  # a sum divides by nothing: smoothing's terms count


# --- fourteenth session: what an outside review found ---------------------------------------------


class ScaledLabelGradient(md.CrossEntropyLoss):
    """A cross-entropy whose gradient is wrong on the integer-label path only (10% too large)."""

    def backward(self) -> np.ndarray:
        grad = super().backward()
        return grad * 1.1 if self._label_index is not None else grad


@pytest.mark.parametrize(("shape", "seed"), [((5, 3), 0), ((4, 2), 1), ((2, 3, 4), 2)])
def test_checker_without_targets_checks_cross_entropy_on_labels(shape: tuple[int, ...], seed: int) -> None:
    """The checker drew N(0, 1) "probabilities" for CrossEntropyLoss (the base class's targets), so a
    gradient wrong on the label path, the one training uses, passed."""
    x = np.random.default_rng(seed).standard_normal(shape)
    targets = md.CrossEntropyLoss().random_targets(x, np.random.default_rng(seed))
    assert targets.shape == (shape[0], *shape[2:]) and targets.dtype.kind == "i"
    assert targets.min() >= 0 and targets.max() < shape[1]
    assert md.GradientChecker(md.Sequential(Identity()), inputs=x, loss=md.CrossEntropyLoss(), seed=seed).run().passed
    bad = md.GradientChecker(md.Sequential(Identity()), inputs=x, loss=ScaledLabelGradient(), seed=seed).run()
    assert not bad.passed and bad["input"].status == "FAIL"


@pytest.mark.parametrize("loss_type", [md.CrossEntropyLoss, md.NLLLoss])
def test_random_targets_with_ignore_index_ignore_some_rows_never_all(loss_type: type) -> None:
    loss = loss_type(ignore_index=-100)
    for n, seed in ((8, 0), (2, 1), (5, 2)):
        labels = loss.random_targets(np.zeros((n, 4)), np.random.default_rng(seed))
        ignored = int((labels == -100).sum())
        assert ignored == max(1, n // 4) and ignored < n
        kept = labels[labels != -100]
        assert kept.min() >= 0 and kept.max() < 4
    for ignore in (0, 1, 2):  # a real class: the kept labels are drawn from the others (a review found
        inside = loss_type(ignore_index=ignore)  # [1, 1] for ignore_index=1: everything ignored, vacuous)
        for seed in range(50):
            labels = inside.random_targets(np.zeros((2, 3, 2)), np.random.default_rng(seed))
            assert labels.shape == (2, 2) and int((labels == ignore).sum()) == 1
    assert loss.random_targets(np.zeros((1, 4)), np.random.default_rng(0)).tolist() != [-100]
    x = np.random.default_rng(3).standard_normal((8, 4))
    model = md.Sequential(Identity() if loss_type is md.CrossEntropyLoss else md.LogSoftmax(axis=1))
    assert md.GradientChecker(model, inputs=x, loss=loss).run().passed


def test_cross_entropy_names_a_column_of_labels_and_refuses_negative_probabilities() -> None:
    loss = md.CrossEntropyLoss()
    with pytest.raises(md.ShapeError, match=r"integer labels y_true must have shape \(4,\), got \(4, 1\); "
                                            r"pass y_true.reshape\(-1\)"):
        loss(np.zeros((4, 3)), np.array([[0], [1], [2], [0]]))
    with pytest.raises(md.TargetError, match=r"must be >= 0, got -0.5 at index \(1, 2\)"):
        loss(np.zeros((2, 3)), np.array([[1.0, 0.0, 0.0], [0.5, 1.0, -0.5]]))
    with pytest.raises(md.TargetError, match=r"must be >= 0, got -1.0 at index \(1, 0, 2\)"):  # (N, C, d) terms
        q = np.full((2, 3, 4), 1 / 3)
        q[1, 0, 2] = -1.0
        loss(np.zeros((2, 3, 4)), q)
    assert loss._probs is None  # nothing kept from a refused batch


@pytest.mark.parametrize("value", [True, "0.1", None, float("nan"), 1.5, -0.1])
def test_label_smoothing_must_be_a_number_in_range(value: Any) -> None:
    with pytest.raises(ValueError, match="label_smoothing must be a number in"):
        md.CrossEntropyLoss(label_smoothing=value)


@pytest.mark.parametrize(("z", "t"), [(40.0, 1.0), (700.0, 1.0), (-40.0, 0.0), (-700.0, 0.0), (30.0, 0.0)])
def test_bce_with_logits_keeps_the_tail_of_a_confident_answer(z: float, t: float) -> None:
    """``softplus(z) - z t`` cancelled to 0 for z = 40, t = 1 (the loss is log1p(e^-40) = 4.2e-18)."""
    expected = math.log1p(math.exp(-abs(z))) + (max(z, 0.0) if t == 0 else max(-z, 0.0))
    assert md.BCEWithLogitsLoss()(np.array([[z]]), np.array([[t]])) == pytest.approx(expected, rel=1e-15, abs=0)
    weighted = md.BCEWithLogitsLoss(pos_weight=[3.0])(np.array([[z]]), np.array([[t]]))
    assert weighted == pytest.approx(expected * (3.0 if t == 1 else 1.0), rel=1e-15, abs=0)


def test_a_loss_refusing_the_drawn_targets_says_where_they_came_from() -> None:
    """A loss of one's own that wraps CrossEntropyLoss gets the base class's N(0, 1) targets, which the
    cross-entropy now refuses as negative probabilities: the error names random_targets and targets=."""
    class Wrapped(md.Loss):
        def __init__(self) -> None:
            self.ce = md.CrossEntropyLoss()

        def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
            return self.ce(y_pred, y_true)

        def backward(self) -> np.ndarray:
            return self.ce.backward()

    model = md.Sequential(md.Dense(4, 3, rng=0))
    with pytest.raises(md.TargetError, match=r"must be >= 0, .*\(the loss refused the targets the checker drew for "
                                             r"it with Wrapped.random_targets: pass targets=, or override"):
        md.GradientChecker(model, inputs=np.ones((2, 4)), loss=Wrapped()).run()
    report = md.GradientChecker(model, inputs=np.ones((2, 4)), loss=Wrapped(), targets=np.array([0, 2])).run()
    assert report.passed
    with pytest.raises(md.ShapeError, match="random_targets: expected scores of shape"):  # the loss named
        md.CrossEntropyLoss().random_targets(np.zeros(3), np.random.default_rng(0))


def test_a_model_output_the_loss_refuses_is_not_blamed_on_the_drawn_targets() -> None:
    with pytest.raises(md.TargetError, match=r"y_pred \(probabilities\) must be in \[0, 1\]") as caught:
        md.GradientChecker(md.Sequential(md.Dense(3, 1, rng=0)), inputs=np.ones((4, 3)), loss=md.BCELoss()).run()
    assert "random_targets" not in str(caught.value)
