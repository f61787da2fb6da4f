"""``CosineAnnealingWarmRestarts.step(epoch)``: PyTorch's per-batch SGDR recipe, ``scheduler.step(epoch + i / iters)``,
with a fractional epoch (``T_cur`` and ``T_i`` from it, ``last_epoch`` its whole part), against the closed form
and PyTorch; a bad epoch is refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md


def sgd(lr: float = 0.1) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr)


def closed_form(epoch: float, T_0: int, T_mult: int, lr0: float, eta_min: float) -> float:
    """SGDR by hand: the cycle holding ``epoch``, then the cosine."""
    start, length = 0, T_0
    while epoch >= start + length:
        start, length = start + length, length * T_mult
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * (epoch - start) / length)) / 2


@pytest.mark.parametrize("T_0, T_mult", [(3, 1), (2, 2), (1, 3)])
def test_a_fractional_epoch_gives_the_cosine_there(T_0, T_mult) -> None:
    s = md.CosineAnnealingWarmRestarts(sgd(0.5), T_0=T_0, T_mult=T_mult, eta_min=0.01)
    iters = 4
    for epoch in range(12):
        for i in range(iters):
            lr = s.step(epoch + i / iters)
            assert lr == s.optimizer.lr == pytest.approx(closed_form(epoch + i / iters, T_0, T_mult, 0.5, 0.01),
                                                         rel=1e-14, abs=1e-15)
            assert s.last_epoch == epoch and s.epoch_fraction == i / iters
    assert s.get_last_lr() == s.optimizer.lr


def test_a_whole_epoch_and_the_plain_step_agree() -> None:
    a = md.CosineAnnealingWarmRestarts(sgd(), T_0=2, T_mult=2)
    b = md.CosineAnnealingWarmRestarts(sgd(), T_0=2, T_mult=2)
    for epoch in range(1, 10):
        assert a.step() == b.step(epoch) and a.last_epoch == b.last_epoch == epoch and b.epoch_fraction == 0.0
    # after a fractional epoch, step() goes on one epoch from it (PyTorch's T_cur + 1)
    b.step(9.25)
    assert b.step() == pytest.approx(closed_form(10.25, 2, 2, 0.1, 0.0), rel=1e-14)
    assert (b.last_epoch, b.epoch_fraction) == (10, 0.25)


def test_the_fraction_is_saved_and_an_old_state_loads() -> None:
    s = md.CosineAnnealingWarmRestarts(sgd(), T_0=3)
    s.step(1.5)
    state = s.state_dict()
    assert state["last_epoch"] == 1 and state["epoch_fraction"] == 0.5
    other = md.CosineAnnealingWarmRestarts(sgd(), T_0=3)
    other.load_state_dict(state)
    assert (other.last_epoch, other.epoch_fraction) == (1, 0.5)
    del state["epoch_fraction"]  # saved before the option existed: no fraction
    other.load_state_dict(state)
    assert other.epoch_fraction == 0.0
    assert other.state_dict() == state  # (a fraction of 0 is not saved: the state is as the earlier code's)
    with pytest.raises(md.StateDictError, match=r"'epoch_fraction': expected a number in \[0, 1\), got 1.5"):
        other.load_state_dict({**state, "epoch_fraction": 1.5})


def test_a_bad_epoch_is_refused_and_changes_nothing() -> None:
    s = md.CosineAnnealingWarmRestarts(sgd(), T_0=3)
    s.step(1.5)
    with pytest.raises(TypeError, match=r"CosineAnnealingWarmRestarts.step: epoch must be None or a number >= 0 "
                                        r"\(the epochs done, fractional for a step per batch: step\(epoch \+ i / "
                                        r"iters\)\), got str '1'"):
        s.step("1")
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"CosineAnnealingWarmRestarts.step: epoch must be a finite number >= 0"):
            s.step(bad)
    with pytest.raises(TypeError, match="got bool True"):
        s.step(True)
    assert (s.last_epoch, s.epoch_fraction) == (1, 0.5)


def test_against_pytorch_per_batch() -> None:
    torch = pytest.importorskip("torch")
    for kw in ({"T_0": 3}, {"T_0": 2, "T_mult": 2, "eta_min": 0.01}, {"T_0": 1, "T_mult": 3, "eta_min": 0.05}):
        t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.3)
        theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(t_opt, **kw)
        ours = md.CosineAnnealingWarmRestarts(sgd(0.3), **kw)
        iters = 5
        for epoch in range(14):
            for i in range(iters):
                t_opt.step()
                theirs.step(epoch + i / iters)
                ours.step(epoch + i / iters)
                expected = t_opt.param_groups[0]["lr"]
                assert ours.optimizer.lr == pytest.approx(expected, rel=1e-12, abs=1e-14), (kw, epoch, i)
                assert ours.last_epoch == theirs.last_epoch
        for _ in range(4):  # then plain steps, from the last fractional epoch on
            t_opt.step()
            theirs.step()
            ours.step()
            assert ours.optimizer.lr == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12, abs=1e-14), kw
