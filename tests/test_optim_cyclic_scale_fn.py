"""CyclicLR's ``scale_fn`` and ``scale_mode``, as PyTorch's: a function of the cycle (``"cycle"``) or of the step
count (``"iterations"``) scales each triangle's height, and ``mode``/``gamma`` are then not used.  Closed
forms, PyTorch's values over several cycles, the checks of the arguments, and the state (which says whether
there is a function, but cannot hold it)."""

from __future__ import annotations

import math
import pathlib
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError


def sgd(lr: float = 0.5, momentum: float = 0.9) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr, momentum=momentum)


def run(schedule: md.LRScheduler, steps: int, key: str = "momentum") -> tuple[list[float], list[float]]:
    """The optimizer's lr and momentum at construction and after each step."""
    opt = schedule.optimizer
    lrs, momenta = [opt.lr], [opt.hyper[key]]
    for _ in range(steps):
        schedule.step()
        lrs.append(opt.lr)
        momenta.append(opt.hyper[key])
    return lrs, momenta


def height(e: int, up: int, down: int) -> float:
    """Where step ``e`` is on its triangle, 0 at the foot and 1 at the top."""
    into = e % (up + down)
    return into / up if into <= up else (up + down - into) / down


def wobble(x: int) -> float:
    return 1.0 + 0.5 * math.sin(x)


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
@pytest.mark.parametrize("up, down", [(3, 5), (4, 4), (1, 2)])
def test_the_height_is_scaled_by_the_function_of_the_cycle_or_the_step(scale_mode: str, up: int, down: int) -> None:
    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=up, step_size_down=down, scale_fn=wobble,
                           scale_mode=scale_mode)
    steps = 4 * (up + down) + 1  # four cycles and the foot of the fifth
    lrs, momenta = run(schedule, steps)
    at = [(e // (up + down) + 1) if scale_mode == "cycle" else e for e in range(steps + 1)]
    share = np.array([height(e, up, down) * wobble(x) for e, x in enumerate(at)])
    np.testing.assert_allclose(lrs, 0.01 + 0.09 * share, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(momenta, 0.9 - 0.1 * share, rtol=1e-13)
    assert lrs[0] == 0.01 and momenta[0] == 0.9


def test_the_built_in_modes_are_scale_functions() -> None:
    """triangular2 is 1 / 2 ** (cycle - 1) by cycle, exp_range gamma ** e by step: bit for bit."""
    pairs = [({"mode": "triangular2"}, {"scale_fn": lambda c: 1 / 2.0 ** (c - 1)}),
             ({"mode": "exp_range", "gamma": 0.9}, {"scale_fn": lambda e: 0.9**e, "scale_mode": "iterations"}),
             ({"mode": "triangular"}, {"scale_fn": lambda c: 1.0, "scale_mode": "cycle"})]
    for built_in, custom in pairs:
        ours = run(md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, step_size_down=2, **custom), 30)
        assert ours == run(md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, step_size_down=2, **built_in), 30)


def test_with_a_function_mode_and_gamma_are_not_used_and_cycle_is_the_default_scale_mode() -> None:
    seen: list[int] = []

    def record(x: int) -> float:
        seen.append(x)
        return 1.0

    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.5, scale_fn=record)
    assert schedule.scale_mode == "cycle" and schedule.has_scale_fn
    lrs, _ = run(schedule, 8)
    np.testing.assert_allclose(lrs, [0.01, 0.055, 0.1, 0.055, 0.01, 0.055, 0.1, 0.055, 0.01], rtol=1e-14)
    assert seen == [1, 1, 1, 1, 2, 2, 2, 2, 3]  # the cycles of steps 0..8, once each (the period is 4)
    plain = md.CyclicLR(sgd(), 0.01, 0.1, mode="exp_range", gamma=0.5)
    assert plain.scale_mode == "iterations" and not plain.has_scale_fn  # the mode's own, as PyTorch's
    assert md.CyclicLR(sgd(), 0.01, 0.1, mode="triangular2").scale_mode == "cycle"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"scale_fn": 0.5}, TypeError, "CyclicLR: scale_fn must be a function of the cycle .or step. count returning a "
                                   "number, or None, got 0.5"),
    ({"scale_fn": wobble, "scale_mode": "batch"}, ValueError,
     "CyclicLR: scale_mode must be 'cycle' or 'iterations', got 'batch'"),
    ({"scale_mode": "iterations"}, ValueError,
     "CyclicLR: scale_mode='iterations' is for a scale_fn, and none was given; mode='triangular' scales by the "
     "cycle .scale_mode='cycle'.: give a scale_fn, or leave scale_mode out"),
    ({"mode": "exp_range", "gamma": 0.9, "scale_mode": "cycle"}, ValueError,
     "CyclicLR: scale_mode='cycle' is for a scale_fn, and none was given; mode='exp_range' scales by the step count"),
    ({"scale_fn": wobble, "mode": "sawtooth"}, ValueError, "CyclicLR: mode must be"),
    ({"scale_fn": lambda x: "half"}, TypeError, r"CyclicLR: scale_fn\(1\) returned 'half'; expected a number"),
    ({"scale_fn": lambda x: math.nan}, ValueError, r"CyclicLR: scale_fn\(1\) returned nan; expected a finite number"),
    ({"scale_fn": lambda x: True}, TypeError, r"CyclicLR: scale_fn\(1\) returned True; expected a number"),
    ({"scale_fn": lambda x: np.ones(2)}, TypeError, r"CyclicLR: scale_fn\(1\) returned array"),
    ({"scale_fn": lambda x: 1e308, "max_lr": 1e10}, ValueError,
     r"CyclicLR: the lr or momentum at step 1 overflows \(inf, "),
])
def test_bad_scale_arguments_are_refused_and_leave_the_optimizer_alone(kwargs: dict[str, Any], error: type,
                                                                       match: str) -> None:
    opt = sgd(lr=0.7, momentum=0.3)
    settings = {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, **kwargs}
    try:
        schedule = md.CyclicLR(opt, **settings)
    except error as raised:
        assert re.search(match, str(raised)), str(raised)
        assert (opt.lr, opt.hyper["momentum"], opt.initial_lr) == (0.7, 0.3, None)
        return
    # an lr that overflows shows at the first step (step 0 is the foot of the triangle, height 0)
    with pytest.raises(error, match=match):
        schedule.step()
    assert schedule.last_epoch == 0 and (opt.lr, opt.hyper["momentum"]) == (0.01, 0.9)


def test_explicit_scale_modes_that_agree_with_the_mode_are_accepted() -> None:
    exp = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.9, scale_mode="iterations")
    tri = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, scale_mode="cycle")
    assert run(exp, 6) == run(md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.9), 6)
    assert run(tri, 6) == run(md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2), 6)


def test_a_step_whose_function_fails_changes_nothing() -> None:
    def fails_in_cycle_two(cycle: int) -> Any:
        return 1.0 if cycle == 1 else np.array(np.inf)

    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=2, scale_fn=fails_in_cycle_two)
    run(schedule, 3)
    lr, momentum = schedule.optimizer.lr, schedule.optimizer.hyper["momentum"]
    with pytest.raises(ValueError, match=r"CyclicLR: scale_fn\(2\) returned np.float64\(inf\); expected a finite"):
        schedule.step()
    opt = schedule.optimizer
    assert schedule.last_epoch == 3 and (opt.lr, opt.hyper["momentum"]) == (lr, momentum)
    half = md.CyclicLR(sgd(), 0.01, 0.1, scale_fn=lambda c: np.array(0.5))  # a 0-d array is a number
    assert half.step() == pytest.approx(0.01 + 0.09 / 2000 / 2)


def test_the_state_says_there_is_a_function_and_resumes_with_the_same_one_given_again(tmp_path: pathlib.Path) -> None:
    def make(opt: md.Optimizer, fn: Callable[[int], float] | None = wobble) -> md.CyclicLR:
        return md.CyclicLR(opt, 0.01, 0.1, step_size_up=3, step_size_down=2, scale_fn=fn, scale_mode="iterations")

    first = make(sgd())
    run(first, 7)
    state = first.state_dict()
    assert state["has_scale_fn"] is True and state["scale_mode"] == "iterations" and "scale_fn" not in state
    assert not any(callable(value) for value in state.values())
    md.save({"scheduler": state, "optimizer": first.optimizer.state_dict()}, tmp_path / "ckpt")  # plain data
    saved = md.load(tmp_path / "ckpt")
    straight = run(first, 9)
    other = sgd(lr=0.3, momentum=0.2)
    resumed = make(other)
    other.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert (other.lr, other.hyper["momentum"]) == (straight[0][0], straight[1][0])
    assert run(resumed, 9) == straight


def test_a_state_and_a_schedule_that_disagree_about_the_function_are_refused_and_nothing_changes() -> None:
    with_fn = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, scale_fn=wobble)
    plain = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, mode="triangular2")
    run(with_fn, 2)
    run(plain, 4)
    for target, source, match in ((plain, with_fn, "saved by a CyclicLR with a scale_fn, and this one has none"),
                                  (with_fn, plain, "saved by a CyclicLR without a scale_fn, and this one has one")):
        before, lr = target.state_dict(), target.optimizer.lr
        with pytest.raises(StateDictError, match=match):
            target.load_state_dict(source.state_dict())
        assert target.state_dict() == before and target.optimizer.lr == lr
    with pytest.raises(StateDictError, match="'scale_mode': CyclicLR: scale_mode must be 'cycle' or 'iterations'"):
        with_fn.load_state_dict({**with_fn.state_dict(), "scale_mode": "epochs"})


def test_a_state_of_an_earlier_minidl_loads_and_the_scale_follows_the_loaded_mode() -> None:
    source = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.8)
    run(source, 5)
    old = {key: value for key, value in source.state_dict().items() if key not in ("scale_mode", "has_scale_fn")}
    target = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3)  # triangular: scales by the cycle
    target.load_state_dict(old)
    assert target.mode == "exp_range" and target.scale_mode == "iterations"
    assert run(target, 6) == run(source, 6)


def test_a_function_that_raises_at_the_loaded_step_is_a_state_error_and_nothing_changes() -> None:
    def fragile(cycle: int) -> float:
        return 1.0 / (3 - cycle)  # ZeroDivisionError in cycle 3

    source = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=1, scale_fn=lambda c: 1.0)
    run(source, 4)  # into cycle 3
    target = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=1, scale_fn=fragile)
    before, lr = target.state_dict(), target.optimizer.lr
    with pytest.raises(StateDictError, match=r"nothing was changed.*ZeroDivisionError"):
        target.load_state_dict(source.state_dict())
    assert target.state_dict() == before and target.optimizer.lr == lr


def test_repr_names_the_function() -> None:
    schedule = md.CyclicLR(sgd(), 0.01, 0.1, step_size_up=3, scale_fn=wobble, scale_mode="iterations",
                           cycle_momentum=False)
    assert repr(schedule) == ("CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=3, scale_fn=wobble, "
                              "scale_mode='iterations', cycle_momentum=False) at epoch 0")


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    cases: list[dict[str, Any]] = [
        {"step_size_up": 4, "step_size_down": 6, "scale_fn": lambda c: 0.7 ** (c - 1), "scale_mode": "cycle"},
        {"step_size_up": 3, "scale_fn": lambda e: 1.0 / (1.0 + 0.05 * e), "scale_mode": "iterations"},
        {"step_size_up": 5, "step_size_down": 2, "scale_fn": wobble},  # (the default: by cycle)
        {"step_size_up": 2, "mode": "exp_range", "gamma": 0.5, "scale_fn": lambda c: 1.0 + c % 2},  # mode unused
    ]
    for optimizer in ("sgd", "adam"):
        for kwargs in cases:
            if optimizer == "sgd":
                ours_opt: md.Optimizer = sgd()
                key, p = "momentum", torch.zeros(2, requires_grad=True)
                theirs_opt: Any = torch.optim.SGD([p], lr=0.5, momentum=0.9)
            else:
                ours_opt = md.Adam([md.Parameter(np.zeros(2))], lr=0.5)
                key, p = "beta1", torch.zeros(2, requires_grad=True)
                theirs_opt = torch.optim.Adam([p], lr=0.5)
            ours = run(md.CyclicLR(ours_opt, 0.01, 0.1, **kwargs), 60, key)
            schedule = sched.CyclicLR(theirs_opt, 0.01, 0.1, **kwargs)
            group = theirs_opt.param_groups[0]

            def momentum(group: dict[str, Any] = group, key: str = key) -> float:
                return float(group["momentum"] if key == "momentum" else group["betas"][0])

            lrs, momenta = [group["lr"]], [momentum()]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (PyTorch's warning that no optimizer step came first)
                for _ in range(60):  # six to twenty cycles
                    schedule.step()
                    lrs.append(group["lr"])
                    momenta.append(momentum())
            np.testing.assert_allclose(ours[0], lrs, rtol=1e-14, atol=1e-17)
            np.testing.assert_allclose(ours[1], momenta, rtol=1e-14)
