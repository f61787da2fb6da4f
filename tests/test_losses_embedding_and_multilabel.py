"""HingeEmbeddingLoss and MultiLabelSoftMarginLoss: their formulas element by element, the gradient checker
behind a Dense layer, closed forms, dtypes, refusals, fit, and PyTorch's values when it is installed."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


@pytest.mark.parametrize("margin", [1.0, 0.25, -0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hinge_embedding_matches_its_formula(margin: float, reduction: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    y = rng.choice([-1.0, 1.0], (6, 4))
    loss = md.HingeEmbeddingLoss(margin, reduction)
    value, grad = loss(x, y), loss.backward()
    per = [a if b == 1 else max(0.0, margin - a) for a, b in zip(x.ravel(), y.ravel(), strict=True)]
    slope = [1.0 if b == 1 else (-1.0 if a <= margin else 0.0) for a, b in zip(x.ravel(), y.ravel(), strict=True)]
    scale = x.size if reduction == "mean" else 1
    assert value == pytest.approx(math.fsum(per) / scale, rel=1e-14)
    np.testing.assert_array_equal(grad.ravel(), np.array(slope) / scale)


def test_hinge_embedding_kink_slope_is_pytorchs() -> None:
    loss = md.HingeEmbeddingLoss(margin=1.0, reduction="sum")
    assert loss(np.array([1.0, 0.5]), np.array([-1.0, -1.0])) == 0.5
    np.testing.assert_array_equal(loss.backward(), [-1.0, -1.0])  # at x = margin too (clamp_min's >=)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_multilabel_soft_margin_matches_its_formula(weighted: bool, reduction: str) -> None:
    rng = np.random.default_rng(1)
    x = 3 * rng.normal(size=(5, 4))
    x[0, 0] = 40.0  # a confident right answer keeps its tiny loss
    y = rng.integers(0, 2, (5, 4)).astype(np.float64)
    y[0, 0] = 1.0
    w = rng.uniform(0.5, 2.0, 4) if weighted else np.ones(4)
    loss = md.MultiLabelSoftMarginLoss(w if weighted else None, reduction)
    value, grad = loss(x, y), loss.backward()
    sigmoid = 1 / (1 + np.exp(-x))
    per = (y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)) * w  # -(y log s + (1 - y) log(1 - s))
    scale = x.shape[1] * (x.shape[0] if reduction == "mean" else 1)
    assert value == pytest.approx(per.sum() / scale, rel=1e-12)
    np.testing.assert_allclose(grad, w * (sigmoid - y) / scale, rtol=1e-12, atol=1e-17)
    assert grad[0, 0] != 0.0


def test_multilabel_soft_margin_is_bce_with_logits_without_weights() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 3)), rng.integers(0, 2, (7, 3)).astype(np.float64)
    ours, bce = md.MultiLabelSoftMarginLoss(), md.BCEWithLogitsLoss()
    assert ours(x, y) == pytest.approx(bce(x, y), rel=1e-14)
    np.testing.assert_allclose(ours.backward(), bce.backward(), rtol=1e-13, atol=1e-17)
    ours, bce = md.MultiLabelSoftMarginLoss(reduction="sum"), md.BCEWithLogitsLoss("sum")
    assert ours(x, y) == pytest.approx(bce(x, y) / 3, rel=1e-14)  # a sum over samples of means over labels


def test_accuracy_scores_every_label() -> None:
    from minidl.training import _resolve_metrics

    y = np.array([[0.0, 1, 1], [1, 1, 0]])
    ((_, accuracy),) = _resolve_metrics(["accuracy"], md.MultiLabelSoftMarginLoss())
    assert accuracy(np.array([[-5.0, 4, 5], [5, 6, -5]]), y) == 1.0
    assert accuracy(np.array([[-5.0, 5, -5], [5, -5, -5]]), y) == pytest.approx(4 / 6)


def test_float16_sums_and_huge_values_give_no_overflow_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = np.zeros((1000, 100), np.float16)
        loss = md.MultiLabelSoftMarginLoss()
        assert loss(x, np.zeros_like(x)) == pytest.approx(math.log(2), rel=1e-6)  # (a float16 sum: inf)
        grad = loss.backward()
        assert grad.dtype == np.float16 and grad[0, 0] == np.float16(0.5 / 1e5)
        assert md.HingeEmbeddingLoss()(np.ones(70000, np.float16), np.ones(70000)) == 1.0
        assert md.MultiLabelSoftMarginLoss([2.0])(np.array([[3e38]], np.float32), np.zeros((1, 1))) == np.inf
        assert md.MultiLabelSoftMarginLoss()(np.array([[3e38, 3e38]], np.float32), np.zeros((1, 2))) > 3e38
        assert md.HingeEmbeddingLoss()(np.array([2e38, 1e38], np.float32), np.ones(2)) == pytest.approx(1.5e38)


@pytest.mark.parametrize("make", [lambda: md.HingeEmbeddingLoss(), lambda: md.HingeEmbeddingLoss(0.5, "sum"),
                                  lambda: md.MultiLabelSoftMarginLoss(), lambda: md.MultiLabelSoftMarginLoss(
                                      [1.0, 0.0, 2.0, 0.5], "sum")],
                         ids=["hinge", "hinge-sum", "multilabel", "multilabel-weighted-sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_checker_behind_a_dense_layer(make: Any, seed: int) -> None:
    model = md.Sequential(md.Dense(3, 4, rng=seed))
    x = np.random.default_rng(seed).normal(size=(6, 3))
    report = assert_gradients_ok(model, inputs=x, loss=make(), seed=seed)  # targets drawn by the loss
    assert {r.name for r in report.results if r.checked} == {"input", "0.W"}


def test_random_targets_dtypes_and_copies() -> None:
    rng = np.random.default_rng(3)
    signs = md.HingeEmbeddingLoss().random_targets(np.zeros((50, 3)), rng)
    assert set(np.unique(signs)) == {-1.0, 1.0}
    labels = md.MultiLabelSoftMarginLoss().random_targets(np.zeros((50, 3)), rng)
    assert set(np.unique(labels)) == {0.0, 1.0}
    x = rng.normal(size=(4, 3))
    pairs = ((md.HingeEmbeddingLoss(), signs[:4].astype(np.float32)),
             (md.MultiLabelSoftMarginLoss(), labels[:4].astype(np.float32)))
    for loss, target in pairs:  # (targets of the prediction's dtype: the loss sees the caller's own array)
        ref = type(loss)()
        value = loss(x.astype(np.float32), target)
        expected = ref(x, target.astype(np.float64))
        target[...] = 0.5  # the caller reuses its buffer: the gradient is of what forward saw
        grad = loss.backward()
        assert grad.dtype == np.float32 and value == pytest.approx(expected, rel=1e-5)
        np.testing.assert_allclose(grad, ref.backward(), rtol=1e-5, atol=1e-7)


def test_refusals() -> None:
    with pytest.raises(md.TargetError, match=r"HingeEmbeddingLoss: labels y_true must be -1 \(dissimilar\) or 1 "
                                             r"\(similar\), got 0\.0 at index \(1,\)"):
        md.HingeEmbeddingLoss()(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="HingeEmbeddingLoss: margin must be a finite number, got nan"):
        md.HingeEmbeddingLoss(float("nan"))
    with pytest.raises(ValueError, match=r"HingeEmbeddingLoss: margin 1e\+39 overflows the prediction's dtype float32"):
        md.HingeEmbeddingLoss(1e39)(np.zeros(2, np.float32), np.ones(2))
    with pytest.raises(md.ShapeError, match="HingeEmbeddingLoss: y_pred has shape"):
        md.HingeEmbeddingLoss()(np.zeros(2), np.ones(3))
    with pytest.raises(md.TargetError, match=r"MultiLabelSoftMarginLoss: targets y_true must be in \[0, 1\], got "
                                             r"2\.0 at index \(0, 1\)"):
        md.MultiLabelSoftMarginLoss()(np.zeros((1, 2)), np.array([[0.0, 2.0]]))
    with pytest.raises(md.ShapeError, match=r"MultiLabelSoftMarginLoss: expected y_pred \(logits\) of shape \(N, C\)"):
        md.MultiLabelSoftMarginLoss()(np.zeros(3), np.zeros(3))
    with pytest.raises(md.ShapeError, match="MultiLabelSoftMarginLoss: weight has 2 class weight"):
        md.MultiLabelSoftMarginLoss([1.0, 2.0])(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="MultiLabelSoftMarginLoss: class weights must be finite and >= 0"):
        md.MultiLabelSoftMarginLoss([1.0, -2.0])
    with pytest.raises(md.NonFiniteError, match="MultiLabelSoftMarginLoss"):
        md.MultiLabelSoftMarginLoss()(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    for loss in (md.HingeEmbeddingLoss(), md.MultiLabelSoftMarginLoss()):
        with pytest.raises(md.BackwardBeforeForwardError):
            loss.backward()
    assert repr(md.HingeEmbeddingLoss()) == "HingeEmbeddingLoss(margin=1.0, reduction='mean')"
    assert repr(md.MultiLabelSoftMarginLoss([1, 2])) == "MultiLabelSoftMarginLoss(weight=[1.0, 2.0], reduction='mean')"


def test_huge_values_give_inf_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = md.HingeEmbeddingLoss(1e38)
        assert loss(np.array([-3e38], np.float32), np.array([-1.0])) == np.inf  # as PyTorch: margin - x overflows
        assert md.MultiLabelSoftMarginLoss()(np.array([[3e38, -3e38]], np.float32), np.zeros((1, 2))) > 1e37


def test_fit_learns_several_labels_at_once() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], axis=1).astype(np.float64)  # two yes/no labels
    model = md.Sequential(md.Dense(3, 2, rng=0))
    history = model.fit(x, y, loss=md.MultiLabelSoftMarginLoss(), optimizer=md.Adam(model.parameters(), lr=0.1),
                        epochs=30, batch_size=50, metrics=[md.training.Accuracy(threshold=0.0, binary=True)],
                        verbose=0, rng=0)
    assert history.history["accuracy"][-1] > 0.97


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = 2 * rng.normal(size=(6, 5))
    signs = rng.choice([-1.0, 1.0], (6, 5))
    labels = rng.integers(0, 2, (6, 5)).astype(np.float64)
    w = rng.uniform(0, 2, 5)
    cases = [(md.HingeEmbeddingLoss(m, r), torch.nn.HingeEmbeddingLoss(m, reduction=r), np.abs(x), signs)
             for m, r in ((1.0, "mean"), (2.5, "sum"), (-0.3, "mean"))]
    cases += [(md.MultiLabelSoftMarginLoss(weight, r),
               torch.nn.MultiLabelSoftMarginLoss(None if weight is None else torch.tensor(weight), reduction=r),
               x, labels) for weight, r in ((None, "mean"), (w, "sum"), (w, "mean"))]
    for ours, theirs, pred, target in cases:
        xt = torch.tensor(pred, requires_grad=True)
        value = theirs(xt, torch.tensor(target))
        value.backward()
        assert ours(pred, target) == pytest.approx(value.item(), rel=1e-13)
        np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_squared_errors_sum_float16_in_float32_and_hinge_refuses_accuracy() -> None:
    x, y = np.ones((70000, 1), np.float16), np.zeros((70000, 1), np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert md.MSELoss()(x, y) == 1.0 and md.HalfSquaredError()(x, y) == 35000.0  # (float16 sums: inf)
    model = md.Sequential(md.Dense(2, 1, rng=0))
    with pytest.raises(ValueError, match=r"fit: metrics=\['accuracy'\] with HingeEmbeddingLoss: its predictions are "
                                         "distances"):
        model.fit(np.zeros((4, 2)), np.ones(4), loss=md.HingeEmbeddingLoss(),
                  optimizer=md.SGD(model.parameters(), lr=0.1), metrics=["accuracy"], verbose=0)
