"""MarginRankingLoss and CosineEmbeddingLoss, losses of a pair of predictions (x1, x2): their formulas by
loops, the gradient checker behind a model with two outputs (targets drawn by the loss), fit, refusals,
and PyTorch's values when it is installed."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


@pytest.mark.parametrize("margin", [0.0, 0.5, -0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_margin_ranking_matches_its_formula(margin: float, reduction: str) -> None:
    rng = np.random.default_rng(0)
    x1, x2, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.choice([-1.0, 1.0], (5, 3))
    loss = md.MarginRankingLoss(margin, reduction)
    value = loss((x1, x2), y)
    dx1, dx2 = loss.backward()
    z = [margin - b * (a - c) for a, c, b in zip(x1.ravel(), x2.ravel(), y.ravel(), strict=True)]
    scale = x1.size if reduction == "mean" else 1
    assert value == pytest.approx(math.fsum(max(0.0, v) for v in z) / scale, rel=1e-14)
    slope = np.array([-b if v >= 0 else 0.0 for v, b in zip(z, y.ravel(), strict=True)]).reshape(x1.shape) / scale
    np.testing.assert_array_equal(dx1, slope)
    np.testing.assert_array_equal(dx2, -slope)


@pytest.mark.parametrize("margin", [0.0, 0.5, -0.3])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cosine_embedding_matches_its_formula(margin: float, reduction: str) -> None:
    rng = np.random.default_rng(1)
    x1, x2, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.choice([-1.0, 1.0], 6)
    loss = md.CosineEmbeddingLoss(margin, reduction)
    value = loss((x1, x2), y)
    dx1, dx2 = loss.backward()
    total, g1, g2 = 0.0, np.zeros_like(x1), np.zeros_like(x2)
    for n in range(6):
        a, b = x1[n], x2[n]
        m1, m2 = a @ a + 1e-12, b @ b + 1e-12
        cos = (a @ b) / math.sqrt(m1 * m2)
        dcos1, dcos2 = b / math.sqrt(m1 * m2) - cos * a / m1, a / math.sqrt(m1 * m2) - cos * b / m2
        if y[n] == 1:
            total += 1 - cos
            g1[n], g2[n] = -dcos1, -dcos2
        elif cos >= margin:
            total += cos - margin
            g1[n], g2[n] = dcos1, dcos2
    scale = 6 if reduction == "mean" else 1
    assert value == pytest.approx(total / scale, rel=1e-13)
    np.testing.assert_allclose(dx1, g1 / scale, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx2, g2 / scale, rtol=1e-12, atol=1e-15)


class TwoTowers(md.Model):
    """Two embeddings of the two inputs of a pair: ((N, 3), (N, 3)) -> ((N, k), (N, k)), shared weights."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.tower = md.Sequential(md.Dense(3, 5, rng=0), md.Tanh(), md.Dense(5, k, rng=1))

    def forward(self, x: Any) -> Any:
        a, b = x
        self._n = len(a)
        both = self.tower(np.concatenate([a, b]))
        return both[:self._n], both[self._n:]

    def backward(self, grad_output: Any) -> Any:
        dx = self.tower.backward(np.concatenate(grad_output))
        return dx[:self._n], dx[self._n:]


@pytest.mark.parametrize("make", [lambda: md.MarginRankingLoss(0.2), lambda: md.CosineEmbeddingLoss(0.1, "sum")],
                         ids=["ranking", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_checker_behind_a_two_output_model(make: Any, seed: int) -> None:
    loss = make()
    k = 1 if isinstance(loss, md.MarginRankingLoss) else 3
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    report = assert_gradients_ok(TwoTowers(k), inputs=(a, b), loss=loss, seed=seed)  # labels drawn by the loss
    assert {"input[0]", "input[1]", "tower.0.W", "tower.2.W"} <= {r.name for r in report.results if r.checked}


def test_fit_learns_to_rank_and_to_embed() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    better = np.where(a[:, 0] > b[:, 0], 1.0, -1.0)  # rank by the first feature
    model = TwoTowers(1)
    history = model.fit((a, b), better[:, None], loss=md.MarginRankingLoss(0.1),
                        optimizer=md.Adam(model.parameters(), lr=0.05),
                        epochs=15, batch_size=40, verbose=0, rng=0)
    s1, s2 = model((a, b))
    assert np.mean(np.sign(s1[:, 0] - s2[:, 0]) == better) > 0.97
    assert history.history["loss"][-1] < history.history["loss"][0]
    same = np.where(np.sign(a[:, 1]) == np.sign(b[:, 1]), 1.0, -1.0)  # alike when the second features agree
    model = TwoTowers(3)
    history = model.fit((a, b), same, loss=md.CosineEmbeddingLoss(0.0), optimizer=md.Adam(model.parameters(), lr=0.05),
                        epochs=15, batch_size=40, verbose=0, rng=0)
    e1, e2 = model((a, b))
    cos = np.sum(e1 * e2, axis=1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    assert np.mean((cos > 0) == (same == 1)) > 0.9
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtypes_are_kept(dtype: type) -> None:
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    for loss, y in ((md.MarginRankingLoss(0.1), rng.choice([-1.0, 1.0], (4, 3))),
                    (md.CosineEmbeddingLoss(0.1), rng.choice([-1.0, 1.0], 4))):
        ref = type(loss)(0.1)
        value = loss((x1.astype(dtype), x2.astype(dtype)), y)
        grads = loss.backward()
        assert isinstance(value, float) and all(g.dtype == dtype for g in grads)
        expected = ref((x1.astype(dtype).astype(np.float64), x2.astype(dtype).astype(np.float64)), y)
        tolerance = 2e-3 if dtype == np.float16 else 1e-6
        assert value == pytest.approx(expected, rel=tolerance, abs=tolerance)
        for g, r in zip(grads, ref.backward(), strict=True):
            np.testing.assert_allclose(g, r, rtol=tolerance, atol=tolerance)


def test_refusals_and_quiet_overflow() -> None:
    loss = md.MarginRankingLoss()
    with pytest.raises(md.ShapeError, match=r"MarginRankingLoss: y_pred is the pair \(x1, x2\) of two arrays \(a "
                                            r"model's two outputs\), got ndarray"):
        loss(np.zeros(3), np.ones(3))
    with pytest.raises(md.ShapeError, match=r"x1 and x2 must have the same shape, got \(3,\) and \(2,\)"):
        loss((np.zeros(3), np.zeros(2)), np.ones(3))
    with pytest.raises(md.DTypeError, match="x1 and x2 must have the same dtype, got float64 and float32"):
        loss((np.zeros(3), np.zeros(3, np.float32)), np.ones(3))
    with pytest.raises(md.TargetError, match=r"MarginRankingLoss: labels y_true must be -1 or 1, got 0\.0 at index "
                                             r"\(1,\)"):
        loss((np.zeros(3), np.zeros(3)), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(md.ShapeError, match=r"MarginRankingLoss: y_true must have shape \(3,\), got \(2,\)"):
        loss((np.zeros(3), np.zeros(3)), np.ones(2))
    with pytest.raises(md.NonFiniteError, match=r"MarginRankingLoss: y_pred\[1\]"):
        loss((np.zeros(2), np.array([0.0, np.nan])), np.ones(2))
    with pytest.raises(md.ShapeError, match=r"CosineEmbeddingLoss: expected x1 and x2 of shape \(N, D\), got \(3,\)"):
        md.CosineEmbeddingLoss()((np.zeros(3), np.zeros(3)), np.ones(3))
    with pytest.raises(md.ShapeError, match=r"CosineEmbeddingLoss: .*empty prediction"):
        md.CosineEmbeddingLoss()((np.zeros((0, 2)), np.zeros((0, 2))), np.ones(0))
    with pytest.raises(ValueError, match="CosineEmbeddingLoss: margin must be a finite number"):
        md.CosineEmbeddingLoss(float("inf"))
    for made in (md.MarginRankingLoss(), md.CosineEmbeddingLoss()):
        with pytest.raises(md.BackwardBeforeForwardError):
            made.backward()
    assert repr(md.MarginRankingLoss(0.5)) == "MarginRankingLoss(margin=0.5, reduction='mean')"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert md.MarginRankingLoss()((np.array([-3e38], np.float32), np.array([3e38], np.float32)),
                                      np.ones(1)) == np.inf
        assert math.isfinite(md.CosineEmbeddingLoss()((np.full((1, 2), 1e200), np.ones((1, 2))), np.ones(1)))


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for t in range(40):
        n, d = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        x1, x2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        if t % 5 == 0:
            x2 = x1.copy()  # kinks: equal scores, parallel embeddings
        margin, reduction = float(rng.choice([0.0, 0.5, -0.3])), ["mean", "sum"][t % 2]
        y_rank, y_pair = rng.choice([-1.0, 1.0], (n, d)), rng.choice([-1.0, 1.0], n)
        for ours, theirs, y in ((md.MarginRankingLoss(margin, reduction),
                                 torch.nn.MarginRankingLoss(margin, reduction=reduction), y_rank),
                                (md.CosineEmbeddingLoss(margin, reduction),
                                 torch.nn.CosineEmbeddingLoss(margin, reduction=reduction), y_pair)):
            a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
            value = theirs(a, b, torch.tensor(y))
            value.backward()
            assert ours((x1, x2), y) == pytest.approx(value.item(), rel=1e-12, abs=1e-15)
            d1, d2 = ours.backward()
            np.testing.assert_allclose(d1, a.grad.numpy(), rtol=1e-9, atol=1e-13)
            np.testing.assert_allclose(d2, b.grad.numpy(), rtol=1e-9, atol=1e-13)


def test_built_in_metrics_refuse_two_outputs_by_name() -> None:
    rng = np.random.default_rng(6)
    a, b, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 3)), rng.choice([-1.0, 1.0], (10, 1))
    model = TwoTowers(1)
    for metric in ("accuracy", "mse"):
        with pytest.raises(md.ShapeError, match=r"the model returns 2 outputs \(a tuple\), and the built-in metrics "
                                                "score one array; pass a metric of your own"):
            model.fit((a, b), y, loss=md.MarginRankingLoss(0.1), optimizer=md.SGD(model.parameters(), lr=0.01),
                      metrics=[metric], verbose=0)
    ranked = model.evaluate((a, b), y, loss=md.MarginRankingLoss(0.1),
                            metrics=[lambda s, t: float(np.mean(np.sign(s[0] - s[1]) == t))])
    assert 0.0 <= ranked["<lambda>"] <= 1.0  # a callable takes the tuple


class PairSquares(md.Loss):
    """A pair loss of one's own that declares several_predictions but draws no targets itself."""

    several_predictions = True

    def forward(self, y_pred: Any, y_true: Any) -> float:
        self._diffs = tuple(p - t for p, t in zip(y_pred, y_true, strict=True))
        return float(sum(np.vdot(d, d) for d in self._diffs))

    def backward(self) -> Any:
        return tuple(2 * d for d in self._diffs)


def test_the_checker_draws_normal_targets_for_a_pair_loss_without_random_targets() -> None:
    a, b = np.random.default_rng(7).normal(size=(2, 4, 3))
    report = assert_gradients_ok(TwoTowers(2), inputs=(a, b), loss=PairSquares(), seed=0)
    assert report.passed
