"""KLDivLoss: closed forms, the three reductions, log targets, gradient checks, fit's epoch value,
refusals, and PyTorch's values when it is installed."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

REDUCTIONS = ["mean", "batchmean", "sum"]


def _kl_by_hand(x: np.ndarray, t: np.ndarray) -> float:
    """sum of t (log t - x), 0 where t = 0, with the math module."""
    return sum(ti * (math.log(ti) - xi) for xi, ti in zip(x.ravel().tolist(), t.ravel().tolist(), strict=True)
               if ti > 0)


def _divisor(reduction: str, shape: tuple[int, ...]) -> int:
    return {"mean": int(np.prod(shape)), "batchmean": shape[0], "sum": 1}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_two_known_distributions(reduction: str) -> None:
    """KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 log 2 + 1/2 log(2/3), for each of two samples."""
    x = np.log(np.array([[0.25, 0.75], [0.25, 0.75]]))
    t = np.full((2, 2), 0.5)
    loss = md.KLDivLoss(reduction)
    per_sample = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert loss(x, t) == pytest.approx(2 * per_sample / _divisor(reduction, (2, 2)), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), -t / _divisor(reduction, (2, 2)), rtol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, seed", [((4, 5), 0), ((3, 2, 4), 1), ((1, 7), 2), ((6,), 3)])
def test_matches_the_formula_with_zero_targets(reduction: str, shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) - 2.0
    t = rng.uniform(0, 1, size=shape)
    t.flat[::3] = 0.0  # no NaN from 0 log 0, whatever x
    x.flat[0] = -700.0
    loss = md.KLDivLoss(reduction)
    with np.errstate(all="raise"):
        value = loss(x, t)
        grad = loss.backward()
    assert value == pytest.approx(_kl_by_hand(x, t) / _divisor(reduction, shape), rel=1e-13)
    np.testing.assert_allclose(grad, -t / _divisor(reduction, shape), rtol=1e-15, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_log_target_is_the_same_divergence(reduction: str) -> None:
    rng = np.random.default_rng(4)
    x = np.log(rng.dirichlet(np.ones(6), size=5))
    t = rng.dirichlet(np.ones(6), size=5)
    plain, logged = md.KLDivLoss(reduction), md.KLDivLoss(reduction, log_target=True)
    assert logged(x, np.log(t)) == pytest.approx(plain(x, t), rel=1e-13)
    np.testing.assert_allclose(logged.backward(), plain.backward(), rtol=1e-14)


def test_a_distribution_against_itself_is_zero() -> None:
    p = np.random.default_rng(5).dirichlet(np.ones(4), size=3)
    loss = md.KLDivLoss("batchmean")
    assert loss(np.log(p), p) == pytest.approx(0.0, abs=1e-16)
    np.testing.assert_allclose(loss.backward(), -p / 3, rtol=1e-15)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n, c, seed", [(4, 3, 0), (2, 5, 1), (6, 2, 2)])
def test_gradient_checker_behind_log_softmax(log_target: bool, reduction: str, n: int, c: int, seed: int) -> None:
    model = md.Sequential(md.Dense(3, c, rng=seed), md.LogSoftmax())
    x = np.random.default_rng(seed).normal(size=(n, 3))
    loss = md.KLDivLoss(reduction, log_target=log_target)
    report = assert_gradients_ok(model, inputs=x, loss=loss, seed=seed)  # targets drawn by the loss
    assert {r.name for r in report.results if r.checked} == {"input", "0.W"}
    targets = loss.random_targets(np.zeros((n, c)), np.random.default_rng(seed))
    probabilities = np.exp(targets) if log_target else targets
    assert probabilities.min() > 0
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-14)


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(6)
    x = np.log(rng.dirichlet(np.ones(5), size=4)).astype(np.float32)
    t = rng.dirichlet(np.ones(5), size=4)
    for log_target in (False, True):
        loss, ref = md.KLDivLoss("batchmean", log_target), md.KLDivLoss("batchmean", log_target)
        target = np.log(t) if log_target else t
        value = loss(x, target.astype(np.float32))
        grad = loss.backward()
        assert grad.dtype == np.float32
        assert value == pytest.approx(ref(x.astype(np.float64), target), rel=1e-5)
        np.testing.assert_allclose(grad, ref.backward(), rtol=1e-6)


def test_fit_and_evaluate_give_the_loss_of_all_the_data() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(10, 3))
    t = rng.dirichlet(np.ones(4), size=10)
    for reduction in ("mean", "batchmean", "sum"):
        model = md.Sequential(md.Dense(3, 4, rng=0), md.LogSoftmax())
        whole = md.KLDivLoss(reduction)(model(x), t)
        loss = md.KLDivLoss(reduction)
        scores = model.evaluate(x, t, loss=loss, batch_size=3)
        assert scores["loss"] == pytest.approx(whole, rel=1e-13)
        before = model.state_dict()["0.W"].copy()
        history = model.fit(x, t, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
                            batch_size=4, verbose=0, rng=0)
        assert len(history.history["loss"]) == 2 and history.history["loss"][-1] > 0
        assert not np.array_equal(model.state_dict()["0.W"], before)


def test_refusals_name_the_problem_and_keep_the_last_state() -> None:
    loss = md.KLDivLoss()
    x = np.log(np.full((2, 2), 0.5))
    loss(x, np.full((2, 2), 0.5))
    kept = loss.backward()
    with pytest.raises(md.TargetError, match=r"KLDivLoss: y_true must be probabilities \(>= 0\), got -0.25 at "
                                             r"index \(1, 0\) \(log-probabilities need log_target=True\)"):
        loss(x, np.array([[0.5, 0.5], [-0.25, 1.25]]))
    np.testing.assert_array_equal(loss.backward(), kept)
    with pytest.raises(md.TargetError, match=r"exp of 800.0 at index \(0, 1\) overflows float64"):
        md.KLDivLoss(log_target=True)(x, np.array([[0.0, 800.0], [0.0, 0.0]]))
    with pytest.raises(md.NonFiniteError, match="KLDivLoss"):
        loss(x, np.array([[0.5, np.nan], [0.5, 0.5]]))
    with pytest.raises(md.ShapeError, match=r"KLDivLoss: y_pred has shape \(2, 2\) but y_true has shape \(2,\)"):
        loss(x, np.ones(2))
    with pytest.raises(ValueError, match=r"KLDivLoss: reduction must be one of \('mean', 'batchmean', 'sum'\), "
                                         r"got 'none'"):
        md.KLDivLoss("none")
    with pytest.raises(TypeError, match="KLDivLoss: log_target must be a bool, got 1"):
        md.KLDivLoss(log_target=1)  # type: ignore[arg-type]
    with pytest.raises(md.BackwardBeforeForwardError):
        md.KLDivLoss().backward()
    assert repr(md.KLDivLoss("batchmean", log_target=True)) == "KLDivLoss(reduction='batchmean', log_target=True)"
    assert repr(md.KLDivLoss()) == "KLDivLoss(reduction='mean')"


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_against_pytorch(reduction: str, log_target: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = np.log(rng.dirichlet(np.ones(5), size=(4, 3)))  # (4, 3, 5)
    t = rng.dirichlet(np.ones(5), size=(4, 3))
    t[0, 0, 1] = 0.0
    target = np.log(np.where(t > 0, t, 1e-300)) if log_target else t
    ours = md.KLDivLoss(reduction, log_target)
    xt = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():  # PyTorch warns that its "mean" is not the mathematical KL
        warnings.simplefilter("ignore", UserWarning)
        theirs = torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(xt, torch.tensor(target))
    theirs.backward()
    assert ours(x, target) == pytest.approx(theirs.item(), rel=1e-13)
    np.testing.assert_allclose(ours.backward(), xt.grad.numpy(), rtol=1e-13, atol=1e-300)



@pytest.mark.parametrize("make", [lambda: md.KLDivLoss("batchmean"), md.BCELoss, md.BCEWithLogitsLoss, md.MSELoss,
                                  md.L1Loss, md.HuberLoss, md.SmoothL1Loss, md.HalfSquaredError,
                                  lambda: md.KLDivLoss(log_target=True), md.CrossEntropyLoss, md.PoissonNLLLoss,
                                  md.SoftMarginLoss],
                         ids=["KLDiv", "BCE", "BCEWithLogits", "MSE", "L1", "Huber", "SmoothL1", "HalfSquared",
                              "KLDiv-log", "CrossEntropy-probabilities", "PoissonNLL", "SoftMargin"])
def test_the_gradient_is_of_the_targets_given_to_forward(make) -> None:
    """KLDivLoss, BCELoss and BCEWithLogitsLoss kept the caller's y_true and read it again in backward: a
    target buffer refilled between forward and backward changed the gradient."""
    rng = np.random.default_rng(9)
    y_pred = rng.uniform(0.1, 0.9, size=(3, 4))
    y_true = rng.uniform(0.0, 1.0, size=(3, 4))
    kept, fresh = make(), make()
    if isinstance(kept, md.SoftMarginLoss):  # its labels are -1 or 1 (others are refused)
        y_true = np.where(y_true > 0.5, 1.0, -1.0)
    kept(y_pred, y_true)
    fresh(y_pred, y_true.copy())
    y_true[...] = 0.5  # the caller reuses its buffer
    np.testing.assert_array_equal(kept.backward(), fresh.backward())


def test_a_minus_infinite_log_target_is_refused_with_the_way_out() -> None:
    """The same distribution was accepted as probabilities (0 log 0 = 0) and refused as log-targets with a
    bare non-finite error (PyTorch gives NaN)."""
    x = md.LogSoftmax()(np.array([[1.0, 2.0, 3.0]]))
    p = np.array([[0.0, 0.5, 0.5]])
    assert md.KLDivLoss("batchmean")(x, p) == pytest.approx(0.21446, abs=1e-5)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    with pytest.raises(md.TargetError, match=r"KLDivLoss\(log_target=True\): y_true holds -inf \(the log of a zero "
                                             r"probability\) at index \(0, 0\); pass the probabilities with "
                                             r"log_target=False"):
        md.KLDivLoss("batchmean", log_target=True)(x, log_p)
    with pytest.raises(md.TargetError, match=r"y_true holds -inf \(the log of a zero probability\) at index \(0, 0\)"):
        md.KLDivLoss("batchmean", log_target=True)(x, log_p.tolist())  # a list: the same hint
