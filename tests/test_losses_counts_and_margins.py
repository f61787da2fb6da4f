"""PoissonNLLLoss and SoftMarginLoss: their formulas element by element, gradient checks behind a Dense
layer, dtypes, refusals, fit, and PyTorch's values when it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok


def _poisson_by_hand(x: float, t: float, log_input: bool, full: bool, eps: float = 1e-8) -> tuple[float, float]:
    """(loss, slope) per element with the math module."""
    if log_input:
        loss, slope = math.exp(x) - t * x, math.exp(x) - t
    else:
        loss, slope = x - t * math.log(x + eps), 1 - t / (x + eps)
    if full and t > 1:
        loss += t * math.log(t) - t + 0.5 * math.log(2 * math.pi * t)
    return loss, slope


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_poisson_matches_its_formula(log_input: bool, full: bool, reduction: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    if not log_input:
        x = np.abs(x)
        x[0, 0] = 0.0  # a rate of 0: log(eps), finite
    t = rng.integers(0, 7, (5, 4)).astype(np.float64)
    loss = md.PoissonNLLLoss(log_input, full, reduction=reduction)
    value, grad = loss(x, t), loss.backward()
    by_hand = np.array([_poisson_by_hand(a, b, log_input, full) for a, b in zip(x.ravel(), t.ravel(), strict=True)])
    scale = x.size if reduction == "mean" else 1
    assert value == pytest.approx(by_hand[:, 0].sum() / scale, rel=1e-13)
    np.testing.assert_allclose(grad.ravel(), by_hand[:, 1] / scale, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_soft_margin_matches_its_formula_and_keeps_tiny_losses(reduction: str) -> None:
    x = np.array([[-40.0, -1.0, 0.0, 2.5, 40.0, 800.0]])
    y = np.array([[1.0, -1.0, 1.0, 1.0, 1.0, -1.0]])
    loss = md.SoftMarginLoss(reduction)
    with np.errstate(over="raise"):
        value, grad = loss(x, y), loss.backward()
    per = [math.log1p(math.exp(-a * b)) if -a * b < 700 else -a * b for a, b in zip(x[0], y[0], strict=True)]
    slope = [-b / (1 + math.exp(a * b)) if a * b > -700 else -b for a, b in zip(x[0], y[0], strict=True)]
    scale = x.size if reduction == "mean" else 1
    assert value == pytest.approx(sum(per) / scale, rel=1e-14)
    np.testing.assert_allclose(grad[0], np.array(slope) / scale, rtol=1e-14)
    assert grad[0, 4] != 0.0  # exp(-40) keeps its digits


@pytest.mark.parametrize("make", [lambda: md.PoissonNLLLoss(), lambda: md.PoissonNLLLoss(full=True),
                                  lambda: md.PoissonNLLLoss(False), lambda: md.SoftMarginLoss(),
                                  lambda: md.SoftMarginLoss("sum")],
                         ids=["poisson-log", "poisson-full", "poisson-rate", "soft-margin", "soft-margin-sum"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_checker_behind_a_dense_layer(make, seed: int) -> None:
    loss = make()
    last = md.Softplus() if isinstance(loss, md.PoissonNLLLoss) and not loss.log_input else md.Tanh()
    model = md.Sequential(md.Dense(3, 4, rng=seed), last)  # (a rate must be >= 0)
    x = np.random.default_rng(seed).normal(size=(6, 3))
    report = assert_gradients_ok(model, inputs=x, loss=loss, seed=seed)  # targets drawn by the loss
    assert {r.name for r in report.results if r.checked} == {"input", "0.W"}


def test_random_targets_are_counts_and_signs() -> None:
    rng = np.random.default_rng(3)
    counts = md.PoissonNLLLoss().random_targets(np.zeros((50, 4)), rng)
    assert counts.min() >= 0 and np.array_equal(counts, np.round(counts))
    signs = md.SoftMarginLoss().random_targets(np.zeros((50, 4)), rng)
    assert set(np.unique(signs)) == {-1.0, 1.0}


def test_float32_stays_float32_and_the_targets_are_copied() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4))
    t = rng.integers(0, 5, (3, 4)).astype(np.float32)
    y = rng.choice([-1.0, 1.0], (3, 4)).astype(np.float32)
    for loss, target in ((md.PoissonNLLLoss(), t), (md.SoftMarginLoss(), y)):
        ref = type(loss)()
        value = loss(x.astype(np.float32), target)
        kept = target.copy()
        target[...] = 0  # the caller reuses its buffer: the gradient is of what forward saw
        grad = loss.backward()
        assert grad.dtype == np.float32
        assert value == pytest.approx(ref(x, kept.astype(np.float64)), rel=1e-5)
        np.testing.assert_allclose(grad, ref.backward(), rtol=1e-5, atol=1e-7)


def test_refusals() -> None:
    with pytest.raises(md.TargetError, match=r"PoissonNLLLoss: y_true \(counts\) must be >= 0, got -1.0 at index "
                                             r"\(0, 1\)"):
        md.PoissonNLLLoss()(np.zeros((1, 2)), np.array([[0.0, -1.0]]))
    with pytest.raises(md.TargetError, match=r"PoissonNLLLoss: y_pred \(rates\) must be >= 0, got -0.5 at index "
                                             r"\(0, 0\) \(log-rates need log_input=True\)"):
        md.PoissonNLLLoss(log_input=False)(np.array([[-0.5, 1.0]]), np.zeros((1, 2)))
    with pytest.raises(TypeError, match="PoissonNLLLoss: full must be a bool, got 1"):
        md.PoissonNLLLoss(True, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PoissonNLLLoss: eps must be a finite number > 0, got 0"):
        md.PoissonNLLLoss(eps=0)
    with pytest.raises(TypeError):
        md.PoissonNLLLoss(True, False, None, 1e-8)  # type: ignore[misc]  # PyTorch's deprecated position
    with pytest.raises(ValueError, match=r"SoftMarginLoss: reduction must be one of \('mean', 'sum'\)"):
        md.SoftMarginLoss("none")
    with pytest.raises(md.NonFiniteError, match="SoftMarginLoss"):
        md.SoftMarginLoss()(np.zeros(2), np.array([1.0, np.nan]))
    with pytest.raises(md.BackwardBeforeForwardError):
        md.PoissonNLLLoss().backward()
    assert repr(md.PoissonNLLLoss()) == "PoissonNLLLoss(log_input=True, full=False, eps=1e-08, reduction='mean')"
    assert repr(md.SoftMarginLoss()) == "SoftMarginLoss(reduction='mean')"


def test_fit_learns_poisson_rates() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2))
    counts = rng.poisson(np.exp(0.5 * x[:, :1] - 0.3 * x[:, 1:] + 1.0)).astype(np.float64)
    model = md.Sequential(md.Dense(2, 1, rng=0))
    history = model.fit(x, counts, loss=md.PoissonNLLLoss(), optimizer=md.Adam(model.parameters(), lr=0.05),
                        epochs=60, batch_size=50, verbose=0, rng=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_allclose(model.state_dict()["0.W"].ravel(), [1.0, 0.5, -0.3], atol=0.15)


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 5))
    t = rng.integers(0, 6, (4, 5)).astype(np.float64)
    y = rng.choice([-1.0, 1.0], (4, 5))
    cases = [(md.PoissonNLLLoss(li, full, reduction=red), torch.nn.PoissonNLLLoss(log_input=li, full=full,
                                                                                  reduction=red),
              x if li else np.abs(x), t) for li in (True, False) for full in (False, True) for red in ("mean", "sum")]
    cases += [(md.SoftMarginLoss(red), torch.nn.SoftMarginLoss(reduction=red), 10 * x, y) for red in ("mean", "sum")]
    for ours, theirs, pred, target in cases:
        xt = torch.tensor(pred, requires_grad=True)
        value = theirs(xt, torch.tensor(target))
        value.backward()
        assert ours(pred, target) == pytest.approx(value.item(), rel=1e-13)
        np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_an_overflowing_log_rate_gives_inf_quietly_as_pytorch() -> None:
    with np.errstate(all="raise"):
        assert md.PoissonNLLLoss()(np.array([[800.0]]), np.array([[1.0]])) == math.inf
        assert math.isnan(md.PoissonNLLLoss()(np.array([[1e308]]), np.array([[10.0]])))  # inf - inf


def test_accuracy_with_soft_margin_reads_the_sign_of_the_score() -> None:
    """metrics=["accuracy"] took SoftMarginLoss's scores as probabilities (> 0.5, or argmax over two
    outputs): 0.75 and 0.5 where every sign was right."""
    model = md.Sequential(md.Dense(1, 1, W=np.array([[0.0], [1.0]])))  # y = x
    x = np.array([[0.3], [-0.2], [0.7], [2.0]])
    y = np.array([[1.0], [-1.0], [1.0], [1.0]])
    assert model.evaluate(x, y, loss=md.SoftMarginLoss(), metrics=["accuracy"])["accuracy"] == 1.0
    two = md.Sequential(md.Dense(1, 2, W=np.array([[0.0, 0.0], [1.0, -1.0]])))  # (x, -x)
    labels = np.stack([y[:, 0], -y[:, 0]], axis=1)
    assert two.evaluate(x, labels, loss=md.SoftMarginLoss(), metrics=["accuracy"])["accuracy"] == 1.0
    labels[0] = [-1.0, -1.0]
    assert two.evaluate(x, labels, loss=md.SoftMarginLoss(), metrics=["accuracy"])["accuracy"] == 7 / 8
