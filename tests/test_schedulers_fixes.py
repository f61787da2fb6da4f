"""Schedules' settings set mid-run, after a review: a MultiplicativeLR's new function inside a SequentialLR goes on
from the lr reached (its count follows the sequence's, as PyTorch's); ``step`` counts before it computes, so a
schedule whose ``lr_at`` reads ``self.last_epoch`` (PyTorch's ``get_lr`` style) is not a step late; a class-level
default of a custom schedule's setting is kept; OneCycleLR refuses an infinite start; a value with which the lr or
momentum at the current count cannot be given is refused (the schedule could neither step nor reload its state);
a lower ReduceLROnPlateau cooldown lets the running one end, as PyTorch's; bools, strs and notes checked as
the constructor and a step check them; a symmetric CyclicLR keeps following step_size_up."""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal


def sgd(lr: float = 1.0, **kwargs: Any) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr, momentum=0.9, **kwargs)


def half(e: int) -> float:
    return 0.5


def tenth(e: int) -> float:
    return 0.1 * e


def steps(s: md.LRScheduler, n: int) -> list[float]:
    return [s.step() for _ in range(n)]


def snapshot(s: md.LRScheduler) -> Any:
    """The schedule's state and repr, its schedules' attributes, the optimizer's hyper-parameters and state."""
    parts = getattr(s, "schedulers", ())
    return (s.state_dict(), repr(s), [dict(vars(x)) for x in (s, *parts)], dict(s.optimizer.hyper),
            s.optimizer.state_dict())


# ----------------------------------------------------------------- D1: a MultiplicativeLR in a container


def test_a_new_lr_lambda_in_a_sequence_multiplies_the_lr_reached_as_alone() -> None:
    """The MultiplicativeLR first in a SequentialLR counted nothing (its count stayed 0), so a new lr_lambda
    restarted from lr0: 0.0625 * 0.1 * 5 became 1.0 * 0.1 * 1 * ... * 0.1 * 5 = 0.0012."""
    o = sgd()
    m = md.MultiplicativeLR(o, half)
    s = md.SequentialLR(o, [m, md.StepLR(o, 100)], milestones=[50])
    got = steps(s, 4)
    assert m.last_epoch == 4 and o.lr == 0.0625
    m.lr_lambda = tenth
    got += steps(s, 3)
    alone = md.MultiplicativeLR(sgd(), half)
    want = steps(alone, 4)
    alone.lr_lambda = tenth
    want += steps(alone, 3)
    then = [0.0625 * math.prod(tenth(k) for k in range(5, e)) for e in (6, 7, 8)]  # (multiplied in this order)
    assert got == want == [0.5, 0.25, 0.125, 0.0625, *then]
    # its state holds the product reached: a sequence made with the new function and loaded goes on from it
    resumed = md.SequentialLR(o2 := sgd(0.3), [md.MultiplicativeLR(o2, tenth), md.StepLR(o2, 100)], milestones=[50])
    resumed.load_state_dict(s.state_dict())
    assert o2.lr == o.lr and steps(resumed, 3) == steps(s, 3)


def test_a_new_lr_lambda_in_a_chain_multiplies_the_lr_reached() -> None:
    o = sgd()
    m = md.MultiplicativeLR(o, half)
    c = md.ChainedScheduler([md.ExponentialLR(o, 0.9), m])
    got = steps(c, 4)
    m.lr_lambda = tenth
    got += steps(c, 2)
    want = [0.9**e * 0.5 ** min(e, 4) * math.prod(0.1 * k for k in range(5, e + 1)) for e in range(1, 7)]
    assert got == pytest.approx(want, rel=1e-14) and m.last_epoch == c.last_epoch == 6


def test_a_sequences_schedules_count_their_own_steps_and_a_state_of_the_earlier_code_follows() -> None:
    o = sgd()
    s = md.SequentialLR(o, [md.StepLR(o, 2), md.ExponentialLR(o, 0.9), md.LinearLR(o, 0.5, total_iters=3)],
                        milestones=[3, 7])
    counts = []
    for _ in range(9):
        counts.append([p.last_epoch for p in s.schedulers])
        s.step()
    # as PyTorch's (tested below), but 0 for a schedule not yet started (PyTorch's -1)
    assert counts == [[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 0, 0], [2, 1, 0], [2, 2, 0], [2, 3, 0], [2, 3, 0],
                      [2, 3, 1]]
    state = s.state_dict()
    state["schedulers"] = [{**child, "last_epoch": 0} for child in state["schedulers"]]  # (the earlier code's)
    again = md.SequentialLR(o2 := sgd(), [md.StepLR(o2, 2), md.ExponentialLR(o2, 0.9),
                                          md.LinearLR(o2, 0.5, total_iters=3)], milestones=[3, 7])
    again.load_state_dict(state)
    assert [p.last_epoch for p in again.schedulers] == [2, 3, 2] and steps(again, 3) == steps(s, 3)
    s.milestones = [5, 6]  # new milestones: the counts follow them
    assert [p.last_epoch for p in s.schedulers] == [4, 0, 6]


def test_a_sequence_pickled_by_the_earlier_code_counts_as_the_sequence_when_unpickled() -> None:
    o = sgd()
    s = md.SequentialLR(o, [md.MultiplicativeLR(o, half), md.ExponentialLR(o, 0.5)], milestones=[3])
    steps(s, 4)
    for part in s.schedulers:  # as the earlier code pickled them: no container known, counts at 0
        del part.__dict__["_owner"]
        part.last_epoch = 0
    restored = pickle.loads(pickle.dumps(s))
    assert [p.last_epoch for p in restored.schedulers] == [2, 1]
    assert all(p._owner is restored for p in restored.schedulers)
    restored.schedulers[0].lr_lambda = tenth  # (inactive after its milestone: the lr goes on as before)
    assert steps(restored, 2) == [0.25, 0.125]  # (the ExponentialLR from its milestone, 3)


def test_pytorch_multiplies_the_lr_reached_in_a_sequence_and_a_chain_and_counts_as_here() -> None:
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler

    def pair() -> tuple[Any, md.SGD]:
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0), sgd()

    for kind in ("sequence", "chain"):
        t, o = pair()
        tm, m = S.MultiplicativeLR(t, half), md.MultiplicativeLR(o, half)
        if kind == "sequence":
            ts = S.SequentialLR(t, [tm, S.StepLR(t, 100)], milestones=[50])
            ms: md.LRScheduler = md.SequentialLR(o, [m, md.StepLR(o, 100)], milestones=[50])
        else:
            ts = S.ChainedScheduler([S.ExponentialLR(t, 0.9), tm])
            ms = md.ChainedScheduler([md.ExponentialLR(o, 0.9), m])
        got, want = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(8):
                if i == 4:
                    tm.lr_lambdas[0] = m.lr_lambda = tenth
                t.step()
                ts.step()
                want.append(t.param_groups[0]["lr"])
                got.append(ms.step())
        assert got == pytest.approx(want, rel=1e-14), kind
        assert m.last_epoch == tm.last_epoch == 8
    t, o = pair()
    ts = S.SequentialLR(t, [S.StepLR(t, 2), S.ExponentialLR(t, 0.9), S.LinearLR(t, 0.5, total_iters=3)],
                        milestones=[3, 7])
    ms = md.SequentialLR(o, [md.StepLR(o, 2), md.ExponentialLR(o, 0.9), md.LinearLR(o, 0.5, total_iters=3)],
                         milestones=[3, 7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(12):
            assert [max(p.last_epoch, 0) for p in ts._schedulers] == [p.last_epoch for p in ms.schedulers]
            assert o.lr == pytest.approx(t.param_groups[0]["lr"], rel=1e-14)
            t.step()
            ts.step()
            ms.step()


# ---------------------------------------------------------------------- D2: step counts, then computes


class Halve(md.LRScheduler):
    """PyTorch's style: the lr from ``self.last_epoch``, not the argument."""

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * 0.5**self.last_epoch


def test_a_schedule_reading_last_epoch_in_lr_at_is_not_a_step_late() -> None:
    o = sgd()
    assert steps(Halve(o), 4) == [0.5, 0.25, 0.125, 0.0625]
    o = sgd()
    assert steps(md.ChainedScheduler([Halve(o), md.ExponentialLR(o, 0.1)]), 3) == pytest.approx(
        [0.05, 0.0025, 0.000125], rel=1e-14)  # (its count follows the chain's before the lr is computed)
    o = sgd()
    seq = md.SequentialLR(o, [md.ConstantLR(o, 0.5, 10), Halve(o)], milestones=[2])
    assert steps(seq, 4) == [0.5, 1.0, 0.5, 0.25]  # (from its milestone, its own count)


def test_a_step_that_fails_after_counting_puts_the_count_back_and_changes_nothing() -> None:
    seen = []

    class Fails(md.LRScheduler):
        def lr_at(self, epoch: int) -> float:
            seen.append((epoch, self.last_epoch))
            if epoch == 3:
                raise ArithmeticError("no lr at 3")
            return self.base_lr / (epoch + 1)

    o = sgd()
    s = Fails(o)
    steps(s, 2)
    before = snapshot(s)
    with pytest.raises(ArithmeticError, match=r"^no lr at 3$"):
        s.step()
    assert seen[-1] == (3, 3)  # counted first, as PyTorch's step
    assert states_equal(snapshot(s), before) and s.last_epoch == 2 and o.lr == 1 / 3
    o = sgd()  # a momentum out of [0, 1): CyclicLR's count put back too
    c = md.CyclicLR(o, 0.1, 1.0, 2, 2, mode="exp_range", gamma=100.0, base_momentum=0.5, max_momentum=0.6)
    before = snapshot(c)
    with pytest.raises(ValueError, match=r"^CyclicLR: the momentum at step 1 would be .*; nothing was changed$"):
        c.step()
    assert states_equal(snapshot(c), before) and c.last_epoch == 0


# ------------------------------------------------------------------ D3: a class-level default of a setting


class Decay(md.LRScheduler):
    settings = ("rate",)
    functions = ("shape",)
    rate = 0.5  # class-level defaults, read until set
    shape = staticmethod(lambda e: e)

    def __init__(self, optimizer: md.Optimizer, rate: float | None = None) -> None:
        super().__init__(optimizer)
        if rate is not None:
            self.rate = rate

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "shape":
            return value
        if not (isinstance(value, float) and 0 < value < 1):
            raise ValueError(f"Decay: rate must be in (0, 1), got {value!r}")
        return value

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.rate ** self.shape(epoch)


def test_a_class_level_default_of_a_setting_is_kept_and_the_setting_checked() -> None:
    s = Decay(sgd())
    assert steps(s, 3) == [0.5, 0.25, 0.125] and s.state_dict()["rate"] == 0.5
    with pytest.raises(ValueError, match=r"^Decay: rate must be in \(0, 1\), got 2.0$"):
        s.rate = 2.0
    s.rate = 0.1
    assert s.rate == 0.1 and Decay(sgd()).rate == 0.5 and s.step() == pytest.approx(1e-4)  # (the class's kept)
    s.shape = lambda e: 1  # a function given for the class's staticmethod
    assert s.step() == pytest.approx(0.1)
    assert Decay(sgd(), 0.25).rate == 0.25

    class Faster(Decay):
        rate = 0.25  # a subclass's own default

    assert steps(Faster(sgd()), 2) == [0.25, 0.0625]
    fresh = Decay(sgd())
    fresh.load_state_dict({**s.state_dict(), "rate": 0.2})
    assert fresh.rate == 0.2
    restored = pickle.loads(pickle.dumps(Decay(sgd())))
    assert restored.rate == 0.5 and "rate" not in vars(restored)


# --------------------------------------------------------------------- D4: OneCycleLR's start and end finite


@pytest.mark.parametrize("name, value, made", [("div_factor", 1e-320, {"max_lr": 1.0}),
                                                ("max_lr", 1e300, {"max_lr": 1.0, "div_factor": 1e-10}),
                                                ("final_div_factor", 1e-310, {"max_lr": 1.0})])
def test_onecycle_refuses_an_infinite_start_or_end_as_its_constructor_does(name: str, value: float,
                                                                           made: dict[str, Any]) -> None:
    o = sgd()
    s = md.OneCycleLR(o, total_steps=10, **made)
    s.step()
    before = snapshot(s)
    with pytest.raises(ValueError) as refused:
        setattr(s, name, value)
    assert str(refused.value).startswith("OneCycleLR: with max_lr=") and "overflow" in str(refused.value)
    assert states_equal(snapshot(s), before)
    with pytest.raises(ValueError) as made_error:
        md.OneCycleLR(o2 := sgd(), total_steps=10, **{**made, name: value})
    assert str(made_error.value) == str(refused.value) and o2.initial_lr is None and o2.lr == 1.0


# ---------------------------------------------------- D5: a value the current count cannot take is refused


def test_a_value_that_leaves_no_lr_or_momentum_at_the_current_count_is_refused() -> None:
    o = sgd()
    s = md.CyclicLR(o, 0.1, 1.0, 13, 7, mode="exp_range", gamma=0.99)
    steps(s, 5)
    before = snapshot(s)
    with pytest.raises(ValueError, match=r"^CyclicLR: gamma=2.0 is refused after 5 step\(s\): CyclicLR: the momentum "
                                         r"at step 5 would be -0.33\d+, outside \[0, 1\) \(with it the schedule "
                                         r"could neither step on nor load its own state\)$"):
        s.gamma = 2.0
    assert states_equal(snapshot(s), before)
    again = md.CyclicLR(sgd(), 0.1, 1.0, 13, 7, mode="exp_range", gamma=0.99)
    again.load_state_dict(s.state_dict())  # (it could not, with gamma=2)
    assert steps(again, 3) == steps(s, 3)


def test_a_chained_schedules_value_is_refused_when_it_or_the_chain_has_no_lr_at_the_count() -> None:
    o = sgd()
    e = md.ExponentialLR(o, 0.9)
    c = md.ChainedScheduler([e, md.StepLR(o, 1, 0.5)])
    steps(c, 2)
    before = snapshot(c)
    with pytest.raises(ValueError, match=r"^ExponentialLR: gamma=1e\+308 is refused after 2 step\(s\): "
                                         r"ExponentialLR: the lr 1.0 \* 1e\+308\*\*2 overflows"):
        e.gamma = 1e308
    assert states_equal(snapshot(c), before)
    c = md.ChainedScheduler([e := md.ExponentialLR(o := sgd(), 0.9), other := md.ExponentialLR(o, 0.5)])
    steps(c, 2)
    other.gamma = 1e150  # its lr 1e300, and the chain's 0.81e300: finite ...
    before = snapshot(c)
    with pytest.raises(ValueError, match=r"^ExponentialLR: gamma=10000000000.0 is refused after 2 step\(s\): "
                                         r"ChainedScheduler: the lr at epoch 2, 1.0 times the factors .* overflows"):
        e.gamma = 1e10  # ... and this one's too, but not their product
    assert states_equal(snapshot(c), before)
    e.gamma = 1e-100
    assert c.lr_at(2) == pytest.approx(1e100, rel=1e-12)


def test_a_users_function_with_no_lr_at_the_count_and_a_base_lr_that_overflows_are_refused() -> None:
    o = sgd()
    s = md.LambdaLR(o, half)
    steps(s, 3)
    with pytest.raises(ValueError, match=r"^LambdaLR: lr_lambda=.* is refused after 3 step\(s\): LambdaLR: "
                                         r"lr_lambda\(3\) returned nan; expected a finite number >= 0"):
        s.lr_lambda = lambda e: math.nan if e == 3 else 1.0
    assert s.lr_lambda is half
    x = md.ExponentialLR(sgd(), 10.0)
    steps(x, 5)
    with pytest.raises(ValueError, match=r"^ExponentialLR: base_lr=1e\+305 is refused after 5 step\(s\)"):
        x.base_lr = 1e305
    assert x.base_lr == 1.0


# ---------------------------------------------------------------------- D6: a lower cooldown, as PyTorch


def test_a_lower_cooldown_lets_the_running_one_end_and_its_state_loads() -> None:
    o = sgd()
    s = md.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=0, cooldown=3)
    got = [s.step(5.0), s.step(5.0)]  # the second is bad: reduced, cooldown 3
    assert s.cooldown_counter == 3
    s.cooldown = 1
    assert s.cooldown_counter == 3  # runs on from where it was
    got += [s.step(5.0) for _ in range(6)]
    assert got == [1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]  # PyTorch's (compared below)
    s = md.ReduceLROnPlateau(sgd(), mode="min", factor=0.5, patience=0, cooldown=3)
    s.step(5.0)
    s.step(5.0)
    s.cooldown = 0
    again = md.ReduceLROnPlateau(sgd(), factor=0.5)
    again.load_state_dict(s.state_dict())  # a count above cooldown (3 > 0): the running one's
    assert again.cooldown_counter == 3 and again.state_dict() == s.state_dict()
    with pytest.raises(md.StateDictError, match=r"'cooldown_counter': ReduceLROnPlateau: cooldown_counter must be an "
                                               r"int >= 0, got 2\.5"):
        again.load_state_dict({**s.state_dict(), "cooldown_counter": 2.5})


def test_pytorch_lets_the_running_cooldown_end_too() -> None:
    torch = pytest.importorskip("torch")
    t = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(t, factor=0.5, patience=0, cooldown=3)
    o = sgd()
    s = md.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=0, cooldown=3)
    got, want = [], []
    for e in range(10):
        if e == 2:  # just after the first reduction: the counter at 3
            assert s.cooldown_counter == ts.cooldown_counter == 3
            s.cooldown = ts.cooldown = 1
        t.step()
        ts.step(5.0)
        want.append(t.param_groups[0]["lr"])
        got.append(s.step(5.0))
        assert s.cooldown_counter == ts.cooldown_counter
    assert got == want


# ---------------------------------------------------------------------- D7: checked as when made, notes once


def test_has_scale_fn_takes_only_a_bool() -> None:
    s = md.CyclicLR(sgd(), 0.1, 1.0, scale_fn=half)
    for bad in ("no", math.nan, 1):
        with pytest.raises(ValueError, match=f"^CyclicLR: has_scale_fn must be a bool, got {bad!r}$"):
            s.has_scale_fn = bad  # type: ignore[assignment]
    s.has_scale_fn = np.bool_(True)  # type: ignore[assignment]  # (the one it has: nothing to change)
    assert s.has_scale_fn is True


def test_a_numpy_str_is_kept_as_a_str_and_a_0_d_array_refused() -> None:
    o = md.OneCycleLR(sgd(), 1.0, total_steps=10)
    with pytest.raises(ValueError, match=r"^OneCycleLR: anneal_strategy must be 'cos' or 'linear', got "
                                         r"array\('cos', dtype='<U3'\)$"):
        o.anneal_strategy = np.array("cos")  # type: ignore[assignment]
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear'"):
        md.OneCycleLR(sgd(), 1.0, total_steps=10, anneal_strategy=np.array("cos"))  # type: ignore[arg-type]
    o.anneal_strategy = np.str_("linear")
    assert type(o.anneal_strategy) is str and type(o.state_dict()["anneal_strategy"]) is str
    r = md.ReduceLROnPlateau(sgd(), mode=np.str_("max"), threshold_mode=np.str_("abs"), monitor=np.str_("acc"))
    r.monitor = np.str_("val_acc")
    c = md.CyclicLR(sgd(), 0.1, 1.0, mode=np.str_("triangular2"))
    c.mode = np.str_("exp_range")
    with pytest.raises(ValueError, match=r"^CyclicLR: mode must be"):
        c.mode = np.array("triangular")  # type: ignore[assignment]
    f = md.CyclicLR(sgd(), 0.1, 1.0, scale_fn=half, scale_mode=np.str_("iterations"))
    values = [r.mode, r.threshold_mode, r.monitor, c.mode, c.scale_mode, f.scale_mode]
    assert values == ["max", "abs", "val_acc", "exp_range", "iterations", "iterations"]
    assert all(type(v) is str for v in values)


@pytest.mark.parametrize("container", [None, "chain", "sequence"])
def test_a_function_raising_the_same_error_at_every_step_tried_gets_each_note_once(container: str | None) -> None:
    error = KeyError("no factor")

    def factor(e: int) -> float:
        if e >= 2:
            raise error
        return 0.5

    o = sgd()
    inner = md.MultiplicativeLR(o, factor)
    s: md.LRScheduler = inner if container is None else md.ChainedScheduler([inner]) if container == "chain" \
        else md.SequentialLR(o, [inner, md.StepLR(o, 2)], milestones=[5])
    s.step()
    for _ in range(3):
        with pytest.raises(KeyError):
            s.step()
    notes = getattr(error, "__notes__", [])
    assert len(notes) == (1 if container is None else 2) and s.last_epoch == 1
    assert notes[-1].endswith("computing the lr after 2 step(s); the "
                                        f"{type(s).__name__} had taken 1 step(s))")


# ------------------------------------------------------------- CyclicLR: symmetric follows step_size_up


def test_a_symmetric_cyclic_lr_keeps_following_step_size_up() -> None:
    o = sgd()
    s = md.CyclicLR(o, 0.1, 1.0, step_size_up=4)
    s.step()
    s.step_size_up = 2
    assert s.step_size_down == 2 and steps(s, 3) == pytest.approx([1.0, 0.55, 0.1])  # (steps 2, 3, 4)
    s.step_size_down = 6  # given: no longer follows
    s.step_size_up = 3
    assert s.step_size_down == 6
    s.step_size_down = None  # type: ignore[assignment]  # the constructor's default: follows again
    assert s.step_size_down == 3
    s.step_size_up = 5
    assert s.step_size_down == 5
    asymmetric = md.CyclicLR(sgd(), 0.1, 1.0, step_size_up=4, step_size_down=4)
    asymmetric.step_size_up = 2
    assert asymmetric.step_size_down == 4
    loaded = md.CyclicLR(sgd(), 0.1, 1.0, step_size_up=4)
    loaded.load_state_dict(asymmetric.state_dict())  # a state whose sizes differ: not symmetric any more
    loaded.step_size_up = 3
    assert loaded.step_size_down == 4
