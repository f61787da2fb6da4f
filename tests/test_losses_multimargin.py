"""MultiMarginLoss, the multiclass SVM loss: its formula by loops (value and gradient), CS231n's SVM loss,
the gradient checker behind a Dense layer, dtypes, refusals, fit, and PyTorch's values when it is installed."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


def by_hand(x: np.ndarray, y: np.ndarray, p: int, margin: float, weight: np.ndarray | None,
            reduction: str) -> tuple[float, np.ndarray]:
    """(loss, dloss/dx) by loops over the samples and the wrong classes."""
    n, c = x.shape
    w = np.ones(c) if weight is None else weight
    total, grad = 0.0, np.zeros_like(x)
    for k in range(n):
        right = y[k]
        for i in range(c):
            z = margin - x[k, right] + x[k, i]
            if i == right or z <= 0:
                continue
            total += w[right] * z**p / c
            slope = w[right] * p * z ** (p - 1) / c
            grad[k, i] += slope
            grad[k, right] -= slope
    scale = n if reduction == "mean" else 1
    return total / scale, grad / scale


def svm_loss_cs231n(scores: np.ndarray, y: np.ndarray, delta: float = 1.0) -> float:
    """CS231n's multiclass SVM loss: the mean over samples of sum_{j != y} max(0, s_j - s_y + delta)."""
    losses = [sum(max(0.0, s[j] - s[t] + delta) for j in range(len(s)) if j != t)
              for s, t in zip(scores, y, strict=True)]
    return float(np.mean(losses))


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3, -0.5])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_its_formula(p: int, margin: float, weighted: bool, reduction: str) -> None:
    rng = np.random.default_rng(p + 10 * weighted)
    x = rng.normal(size=(7, 5))
    y = rng.integers(0, 5, 7)
    weight = rng.uniform(0.2, 2.0, 5) if weighted else None
    loss = md.MultiMarginLoss(p, margin, weight, reduction)
    value, grad = loss(x, y), loss.backward()
    expected_value, expected_grad = by_hand(x, y, p, margin, weight, reduction)
    assert value == pytest.approx(expected_value, rel=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)  # what the right class loses, the others gain


def test_is_cs231n_svm_loss_over_the_classes() -> None:
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # CS231n's cat/car/frog example
    y = np.array([0, 1, 2])
    assert md.MultiMarginLoss()(scores, y) == pytest.approx(svm_loss_cs231n(scores, y) / 3, rel=1e-14)
    assert svm_loss_cs231n(scores, y) == pytest.approx((2.9 + 0 + 12.9) / 3)  # the lecture's numbers


def test_no_loss_and_no_gradient_once_the_right_class_wins_by_the_margin() -> None:
    x = np.array([[2.0, 0.5, 1.0], [-1.0, 0.0, -3.0]])
    y = np.array([0, 1])
    loss = md.MultiMarginLoss()
    assert loss(x, y) == 0.0
    assert not loss.backward().any()
    # at the kink (z = 0 exactly) the slope is 0, as PyTorch's `z > 0`
    loss(np.array([[1.0, 0.0]]), np.array([0]))
    assert not loss.backward().any()


@pytest.mark.parametrize("make", [lambda: md.MultiMarginLoss(), lambda: md.MultiMarginLoss(2, 0.5),
                                  lambda: md.MultiMarginLoss(1, 2.0, [1.0, 0.5, 2.0, 1.5], "sum")],
                         ids=["hinge", "squared", "weighted-sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_checker_behind_a_dense_layer(make: Any, seed: int) -> None:
    model = md.Sequential(md.Dense(3, 4, rng=seed))
    x = np.random.default_rng(seed).normal(size=(6, 3))
    report = assert_gradients_ok(model, inputs=x, loss=make(), seed=seed)  # labels drawn by the loss
    assert {r.name for r in report.results if r.checked} == {"input", "0.W"}


def test_random_targets_are_labels() -> None:
    labels = md.MultiMarginLoss().random_targets(np.zeros((40, 3)), np.random.default_rng(0))
    assert labels.shape == (40,) and set(np.unique(labels)) == {0, 1, 2}


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtypes_are_kept(dtype: type) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, 6)
    loss, ref = md.MultiMarginLoss(2), md.MultiMarginLoss(2)
    value = loss(x.astype(dtype), y)
    grad = loss.backward()
    assert grad.dtype == dtype and isinstance(value, float)
    exact = ref(x.astype(dtype).astype(np.float64), y)
    tolerance = 1e-3 if dtype == np.float16 else 1e-6  # (float16: computed in float32, rounded once)
    assert value == pytest.approx(exact, rel=tolerance)
    np.testing.assert_allclose(grad, ref.backward(), rtol=tolerance, atol=tolerance / 10)


def test_backward_gives_a_new_array_each_time() -> None:
    loss = md.MultiMarginLoss()
    loss(np.array([[0.0, 0.5]]), np.array([0]))
    first = loss.backward()
    first[...] = 7.0
    np.testing.assert_array_equal(loss.backward(), [[-0.5, 0.5]])  # 1 / C at the class within the margin


def test_refusals() -> None:
    with pytest.raises(ValueError, match=r"MultiMarginLoss: p must be 1 or 2 \(as PyTorch\), got 3"):
        md.MultiMarginLoss(3)
    with pytest.raises(ValueError, match="MultiMarginLoss: p must be 1 or 2"):
        md.MultiMarginLoss(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MultiMarginLoss: margin must be a finite number, got inf"):
        md.MultiMarginLoss(margin=float("inf"))
    with pytest.raises(ValueError, match="MultiMarginLoss: class weights must be finite and >= 0"):
        md.MultiMarginLoss(weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"MultiMarginLoss: reduction must be one of \('mean', 'sum'\)"):
        md.MultiMarginLoss(reduction="none")
    loss = md.MultiMarginLoss(weight=[1.0, 2.0])
    with pytest.raises(md.ShapeError, match="MultiMarginLoss: weight has 2 class weight"):
        loss(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(md.ShapeError, match=r"MultiMarginLoss: expected y_pred \(scores\) of shape \(N, C\), got"):
        md.MultiMarginLoss()(np.zeros(3), np.array([0]))
    with pytest.raises(md.TargetError, match="MultiMarginLoss: class label 3 at index 1 is out of range for 3 classes"):
        md.MultiMarginLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(md.DTypeError, match="MultiMarginLoss: y_true of shape"):
        md.MultiMarginLoss()(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(md.NonFiniteError, match="MultiMarginLoss"):
        md.MultiMarginLoss()(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.MultiMarginLoss().backward()
    assert repr(md.MultiMarginLoss()) == "MultiMarginLoss(p=1, margin=1.0, reduction='mean')"
    assert repr(md.MultiMarginLoss(2, 0.5, [1, 2])) == \
        "MultiMarginLoss(p=2, margin=0.5, weight=[1.0, 2.0], reduction='mean')"


def test_fit_trains_a_linear_svm_to_separate_three_blobs() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[3.0, 0.0], [-3.0, 3.0], [0.0, -3.0]])
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.normal(scale=0.5, size=(300, 2))
    model = md.Sequential(md.Dense(2, 3, rng=0))
    history = model.fit(x, y, loss=md.MultiMarginLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        epochs=20, batch_size=30, metrics=["accuracy"], verbose=0, rng=0)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < 0.01 < history.history["loss"][0]


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for p, margin, weighted, reduction in [(1, 1.0, False, "mean"), (2, 0.7, True, "sum"), (1, -0.2, True, "mean"),
                                           (2, 1.5, False, "mean")]:
        x = 2 * rng.normal(size=(9, 6))
        y = rng.integers(0, 6, 9)
        weight = rng.uniform(0, 2, 6) if weighted else None
        ours = md.MultiMarginLoss(p, margin, weight, reduction)
        theirs = torch.nn.MultiMarginLoss(p, margin, None if weight is None else torch.tensor(weight),
                                          reduction=reduction)
        xt = torch.tensor(x, requires_grad=True)
        value = theirs(xt, torch.tensor(y))
        value.backward()
        assert ours(x, y) == pytest.approx(value.item(), rel=1e-13)
        np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_float16_is_computed_in_float32_whatever_the_byte_order() -> None:
    x = np.array([[-200.0, 200.0]], np.float16)  # z = 401: its square overflows float16
    for scores in (x, x.astype(">f2")):
        loss = md.MultiMarginLoss(2)
        assert loss(scores, np.array([0])) == 401.0**2 / 2
        grad = loss.backward()
        assert grad.dtype == np.float16 and grad.dtype.isnative
        np.testing.assert_array_equal(grad, np.array([[-401.0, 401.0]], np.float16))


def test_huge_scores_give_inf_without_a_warning_and_a_huge_margin_is_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert md.MultiMarginLoss(2)(np.array([[-1e30, 1e30]], np.float32), np.array([0])) == np.inf  # as PyTorch
        assert md.MultiMarginLoss()(np.array([[-3e38, 3e38]], np.float32), np.array([0])) == np.inf
    with pytest.raises(ValueError, match=r"MultiMarginLoss: margin 1e\+39 overflows the scores' dtype float32"):
        md.MultiMarginLoss(margin=1e39)(np.zeros((1, 2), np.float32), np.array([0]))


def test_the_kink_is_decided_as_pytorch_computes_z() -> None:
    """z = (margin - x[y]) + x[i], in that order: near z = 0 the rounding decides which side wins."""
    loss = md.MultiMarginLoss(margin=1e-8)
    assert loss(np.array([[2.0, 2.0]], np.float32), np.array([0])) == 0.0  # (1e-8 - 2) + 2 rounds to 0
    assert not loss.backward().any()
    loss = md.MultiMarginLoss()
    assert loss(np.array([[1.0, 1e-17]]), np.array([0])) == pytest.approx(5e-18, rel=1e-6)


@pytest.mark.parametrize("make", [md.MultiMarginLoss, md.CrossEntropyLoss, md.NLLLoss])
def test_a_negative_small_integer_label_is_refused_however_many_classes(make: Any) -> None:
    x = np.random.default_rng(0).normal(size=(2, 200))
    with pytest.raises(md.TargetError, match="class label -100 at index 1 is out of range for 200 classes"):
        make()(x, np.array([3, -100], np.int8))
    with pytest.raises(md.DTypeError, match=r"use y_true.argmax\(axis=1\)"):
        md.MultiMarginLoss()(x, np.eye(200)[[3, 7]])
