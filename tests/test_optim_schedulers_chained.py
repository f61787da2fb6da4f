"""MultiplicativeLR and ChainedScheduler: PyTorch's lr sequences (MultiplicativeLR bit for bit, a chain to
round-off), what their constructors set, refusals that change nothing, resuming from a state, and fit."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import StateDictError


def sgd(lr: float = 0.1) -> md.SGD:
    return md.SGD([md.Parameter(np.zeros(2))], lr=lr, momentum=0.9)


def run(schedule: md.LRScheduler, steps: int) -> list[float]:
    """The optimizer's lr when the schedule is made (or loaded) and after each step."""
    return [schedule.optimizer.lr] + [schedule.step() for _ in range(steps)]


def torch_run(make: Callable[[Any], Any], steps: int, lr: float = 0.1) -> list[float]:
    """The same with PyTorch (its warning that no optimizer step came first silenced)."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schedule = make(opt)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(steps):
            schedule.step()
            lrs.append(opt.param_groups[0]["lr"])
    return [float(lr) for lr in lrs]


class Counted:
    """A factor function that records the epochs it is called with."""

    def __init__(self, f: Callable[[int], Any]) -> None:
        self.f = f
        self.calls: list[int] = []

    def __call__(self, epoch: int) -> Any:
        self.calls.append(epoch)
        return self.f(epoch)


# the factor functions compared with PyTorch: (name, function)
FACTORS: list[tuple[str, Callable[[int], Any]]] = [
    ("constant", lambda e: 0.95),
    ("shrinking", lambda e: 1.0 / (e + 3) + 0.7),
    ("rise then fall", lambda e: 1.07 if e < 10 else 0.85),
    ("int and zero-d array", lambda e: 1 if e % 3 else np.where(e < 15, np.float64(0.9), 1.1)),
]

#: A NumPy float32 factor: PyTorch's lr becomes a float32 there (NumPy 2 keeps float * float32 in float32);
#: minidl's stays a Python float, the float64 product of the factors' values.
FLOAT32 = [("float32", lambda e: np.float32(0.9) + np.float32(e % 4) / np.float32(20))]


# ------------------------------------------------------------------------------ MultiplicativeLR
def test_multiplicative_lr_multiplies_step_by_step_and_leaves_the_lr_when_made() -> None:
    o = sgd(0.2)
    f = Counted(lambda e: 0.5 + 0.1 * e)
    schedule = md.MultiplicativeLR(o, f)
    assert (o.lr, o.initial_lr, f.calls) == (0.2, 0.2, [])  # lr_lambda(0) is never called, as PyTorch
    lrs = run(schedule, 5)
    assert lrs == [0.2, 0.2 * 0.6, 0.2 * 0.6 * 0.7, 0.2 * 0.6 * 0.7 * 0.8, 0.2 * 0.6 * 0.7 * 0.8 * 0.9,
                   0.2 * 0.6 * 0.7 * 0.8 * 0.9 * 1.0]  # (Python multiplies left to right, as PyTorch)
    assert f.calls == [1, 2, 3, 4, 5]  # one call per step: the product so far is kept

    def decay(e: int) -> float:
        return 0.9

    assert repr(md.MultiplicativeLR(sgd(), decay)) == "MultiplicativeLR(lr_lambda=decay) at epoch 0"


@pytest.mark.parametrize("name, f", FACTORS, ids=[name for name, _ in FACTORS])
def test_multiplicative_lr_equals_torch_bit_for_bit(name: str, f: Callable[[int], Any]) -> None:
    torch = pytest.importorskip("torch")
    theirs = torch_run(lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, f), 30, lr=0.3)
    ours = run(md.MultiplicativeLR(sgd(0.3), f), 30)
    assert ours == theirs


def test_a_float32_factor_keeps_the_lr_a_python_float() -> None:
    """A deliberate difference: PyTorch's lr turns float32 (rounded at every step); minidl's is the float64
    product of the factors' values."""
    f = FLOAT32[0][1]
    ours = run(md.MultiplicativeLR(sgd(0.3), f), 30)
    want = [0.3]
    for e in range(1, 31):
        want.append(want[-1] * float(f(e)))
    assert ours == want and all(type(lr) is float for lr in ours)
    torch = pytest.importorskip("torch")
    theirs = torch_run(lambda o: torch.optim.lr_scheduler.MultiplicativeLR(o, f), 30, lr=0.3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_multiplicative_lr_at_an_earlier_epoch_multiplies_again_and_keeps_the_farther_product() -> None:
    f = Counted(lambda e: 0.9 if e % 2 else 1.1)
    schedule = md.MultiplicativeLR(sgd(1.0), f)
    lrs = run(schedule, 6)
    assert [schedule.lr_at(e) for e in range(7)] == lrs
    f.calls.clear()
    assert schedule.step() == lrs[-1] * 0.9 and f.calls == [7]  # still one call: the step-6 product was kept


@pytest.mark.parametrize("bad, error, match", [
    (math.nan, ValueError, r"lr_lambda\(3\) returned nan; expected a finite number >= 0"),
    (math.inf, ValueError, r"lr_lambda\(3\) returned inf; expected a finite number >= 0"),
    (-0.5, ValueError, r"lr_lambda\(3\) returned -0.5; expected a finite number >= 0"),
    ("1", TypeError, r"lr_lambda\(3\) returned '1'; expected a number"),
    (None, TypeError, r"lr_lambda\(3\) returned None; expected a number"),
    (True, TypeError, r"lr_lambda\(3\) returned True; expected a number"),
    (np.array([0.5, 0.5]), TypeError, r"lr_lambda\(3\) returned array\(\[0.5, 0.5\]\); expected a number"),
    (1e308, ValueError, r"the lr 20.0 \* lr_lambda\(3\) = 20.0 \* 1e\+308 overflows"),
])
def test_multiplicative_lr_refuses_a_bad_factor_and_the_step_changes_nothing(bad: Any, error: type,
                                                                               match: str) -> None:
    """PyTorch takes NaN, a negative factor and an overflow to inf into the lr silently."""
    o = sgd(20.0)
    schedule = md.MultiplicativeLR(o, lambda e: 1.0 if e < 3 else bad)
    run(schedule, 2)
    before = (schedule.state_dict(), o.lr, o.hyper["momentum"])
    for _ in range(2):  # refused again: nothing moved
        with pytest.raises(error, match="^MultiplicativeLR: " + match):
            schedule.step()
        assert (schedule.state_dict(), o.lr, o.hyper["momentum"]) == before


def test_multiplicative_lr_refuses_a_non_function_and_leaves_the_optimizer() -> None:
    o = sgd(0.1)
    for bad in (0.5, [lambda e: 0.9], None):
        with pytest.raises(TypeError, match=r"^MultiplicativeLR: lr_lambda must be a function of the epoch count, "
                                            r"got "):
            md.MultiplicativeLR(o, bad)  # type: ignore[arg-type]
        assert (o.lr, o.initial_lr) == (0.1, None)
    with pytest.raises(TypeError, match="MultiplicativeLR: expected an Optimizer, got float"):
        md.MultiplicativeLR(0.1, lambda e: 0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer_first", [True, False])
def test_multiplicative_lr_resumes_from_its_state_without_calling_the_function_for_past_epochs(
        optimizer_first: bool) -> None:
    f = FACTORS[1][1]
    first = md.MultiplicativeLR(sgd(0.3), f)
    run(first, 7)
    state, opt_state = first.state_dict(), first.optimizer.state_dict()
    assert state == {"type": "MultiplicativeLR", "base_lr": 0.3, "last_epoch": 7, "last_lr": first.optimizer.lr}
    straight = run(first, 8)
    other = sgd(0.9)
    if optimizer_first:
        other.load_state_dict(opt_state)
    counted = Counted(f)
    resumed = md.MultiplicativeLR(other, counted)
    resumed.load_state_dict(state)
    if not optimizer_first:
        other.load_state_dict(opt_state)
    assert run(resumed, 8) == straight  # bit for bit
    assert counted.calls == list(range(8, 16))  # epochs 1-7 came from the state's product


@pytest.mark.parametrize("bad, match", [
    ({"last_lr": math.nan}, r"'last_lr': MultiplicativeLR: last_lr must be a finite number >= 0, got nan"),
    ({"last_lr": -0.1}, r"'last_lr': MultiplicativeLR: last_lr must be a finite number >= 0, got -0.1"),
    ({"last_lr": "0.1"}, r"'last_lr'"),
    ({"last_lr": None}, r"'last_lr'"),
    ({"gamma": 0.9}, r"unexpected keys \['gamma'\] \(MultiplicativeLR keeps type, base_lr, last_epoch, last_lr\)"),
    ({"type": "LambdaLR"}, r"state is for 'LambdaLR', not 'MultiplicativeLR'"),
    ({"last_epoch": -1}, r"'last_epoch': expected an int >= 0"),
])
def test_multiplicative_lr_refuses_a_bad_state_and_changes_nothing(bad: dict[str, Any], match: str) -> None:
    schedule = md.MultiplicativeLR(sgd(0.3), lambda e: 0.9)
    run(schedule, 3)
    good = schedule.state_dict()
    with pytest.raises(StateDictError, match=r"^MultiplicativeLR.load_state_dict refused the state \(nothing was "
                                             r"changed\): .*" + match):
        schedule.load_state_dict({**good, **bad})
    assert schedule.state_dict() == good and schedule.step() == pytest.approx(0.3 * 0.9**4, rel=1e-15)
    missing = {k: v for k, v in good.items() if k != "last_lr"}
    with pytest.raises(StateDictError, match="missing key 'last_lr'"):
        schedule.load_state_dict(missing)


def test_multiplicative_lr_does_not_build_on_an_lr_set_by_hand() -> None:
    """PyTorch's multiplies whatever lr it finds; minidl's schedules refuse another hand on the lr."""
    o = sgd(0.1)
    schedule = md.MultiplicativeLR(o, lambda e: 0.5)
    schedule.step()
    o.lr = 0.3
    with pytest.raises(RuntimeError, match=r"MultiplicativeLR.step: the optimizer's lr is 0.3, not the 0.05 this "
                                           r"MultiplicativeLR set.*ChainedScheduler"):
        schedule.step()
    assert (schedule.last_epoch, o.lr) == (1, 0.3)


def test_multiplicative_lr_comes_first_in_a_sequence_as_pytorchs_and_is_refused_after_a_milestone() -> None:
    """PyTorch's SequentialLR gives a MultiplicativeLR after a milestone the lr the schedule before it left,
    times lr_lambda(0): not the restart from lr0 every schedule here makes."""
    f = Counted(lambda e: 0.5 + 0.1 * e)
    o = sgd(1.0)
    seq = md.SequentialLR(o, [md.MultiplicativeLR(o, f), md.ExponentialLR(o, 0.5)], milestones=[3])
    assert run(seq, 6) == pytest.approx([1.0, 0.6, 0.42, 1.0, 0.5, 0.25, 0.125], rel=1e-15)  # PyTorch's (probed)
    assert 0 not in f.calls
    o = sgd(1.0)
    first, multiplicative = md.ExponentialLR(o, 0.5), md.MultiplicativeLR(o, f)
    with pytest.raises(ValueError, match=r"^SequentialLR: schedule 1 is a MultiplicativeLR, which may only come "
                                         r"first: .*would go on from the lr the schedule before it left"):
        md.SequentialLR(o, [first, multiplicative], milestones=[3])
    assert (o.lr, first.base_lr, multiplicative.base_lr) == (1.0, 1.0, 1.0)


def test_multiplicative_lr_in_a_sequence_against_torch() -> None:
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    f = FACTORS[2][1]
    theirs = torch_run(lambda o: sched.SequentialLR(o, [sched.MultiplicativeLR(o, f), sched.CosineAnnealingLR(o, 9)],
                                                    milestones=[12]), 25)
    o = sgd()
    ours = run(md.SequentialLR(o, [md.MultiplicativeLR(o, f), md.CosineAnnealingLR(o, 9)], milestones=[12]), 25)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-18)


# ------------------------------------------------------------------------------ ChainedScheduler
def test_chained_constant_and_exponential_as_pytorchs_docstring_example() -> None:
    """PyTorch's docstring example, lr 0.05, ConstantLR(factor=0.1, total_iters=20) and ExponentialLR(0.9);
    the values PyTorch 2.13 gives (its docstring's numbers leave out the factor at some epochs)."""
    o = sgd(0.05)
    chain = md.ChainedScheduler([md.ConstantLR(o, factor=0.1, total_iters=20), md.ExponentialLR(o, gamma=0.9)])
    lrs = run(chain, 25)
    want = [0.05 * (0.1 if e < 20 else 1.0) * 0.9**e for e in range(26)]
    np.testing.assert_allclose(lrs, want, rtol=1e-14)
    assert lrs[19:22] == pytest.approx([0.0006754258588364966, 0.00607883272952847, 0.005470949456575623],
                                       rel=1e-14)  # (probed)
    assert chain.optimizer is o and chain.base_lr == 0.05 and o.initial_lr == 0.05
    assert repr(chain) == "ChainedScheduler(['ConstantLR', 'ExponentialLR']) at epoch 25"


def _warmup(o: md.Optimizer) -> md.LRScheduler:
    """A schedule of one's own, as docs/optimizers.md writes it (lr0 * min(1, (e + 1) / 4))."""

    class Warmup(md.LRScheduler):
        def __init__(self, optimizer: md.Optimizer) -> None:
            super().__init__(optimizer)
            self._write_lr(self.lr_at(0))

        def lr_at(self, epoch: int) -> float:
            return self.base_lr * min(1.0, (epoch + 1) / 4)

        def load_state_dict(self, state: Any) -> None:
            self._load_and_set_lr(state)

    return Warmup(o)


# (minidl's schedules, PyTorch's, the product by hand): made in the order listed, on one optimizer
CHAINS: dict[str, tuple[Callable[[md.Optimizer], list[md.LRScheduler]], Callable[[Any, Any], list[Any]],
                        Callable[[int], float]]] = {
    "constant+exponential": (
        lambda o: [md.ConstantLR(o, 0.25, 7), md.ExponentialLR(o, 0.93)],
        lambda S, o: [S.ConstantLR(o, 0.25, 7), S.ExponentialLR(o, 0.93)],
        lambda e: (0.25 if e < 7 else 1.0) * 0.93**e),
    "linear+multiplicative+multistep": (
        lambda o: [md.LinearLR(o, 0.2, 1.0, 4), md.MultiplicativeLR(o, lambda e: 0.97), md.MultiStepLR(o, [3, 7, 7])],
        lambda S, o: [S.LinearLR(o, 0.2, 1.0, 4), S.MultiplicativeLR(o, lambda e: 0.97), S.MultiStepLR(o, [3, 7, 7])],
        lambda e: (0.2 + 0.8 * min(e, 4) / 4) * 0.97**e * 0.1 ** ((e >= 3) + 2 * (e >= 7))),
    "step+polynomial+constant": (
        lambda o: [md.StepLR(o, 4, 0.5), md.PolynomialLR(o, 20, 2.0), md.ConstantLR(o, 0.5, 3)],
        lambda S, o: [S.StepLR(o, 4, 0.5), S.PolynomialLR(o, 20, 2.0), S.ConstantLR(o, 0.5, 3)],
        lambda e: 0.5 ** (e // 4) * (1 - min(e, 20) / 20) ** 2 * (0.5 if e < 3 else 1.0)),
    "exponential+cosine (eta_min=0, up to T_max)": (
        lambda o: [md.ExponentialLR(o, 1.02), md.CosineAnnealingLR(o, 30)],
        lambda S, o: [S.ExponentialLR(o, 1.02), S.CosineAnnealingLR(o, 30)],
        lambda e: 1.02**e * (1 + math.cos(math.pi * e / 30)) / 2),
    "warm-up+multiplicative (made in another order)": (
        lambda o: [md.MultiplicativeLR(o, FACTORS[2][1]), md.LinearLR(o, 0.1, 1.0, 10)][::-1],
        lambda S, o: [S.MultiplicativeLR(o, FACTORS[2][1]), S.LinearLR(o, 0.1, 1.0, 10)][::-1],
        lambda e: (0.1 + 0.9 * min(e, 10) / 10) * math.prod(FACTORS[2][1](k) for k in range(1, e + 1))),
    "one alone": (
        lambda o: [md.MultiStepLR(o, [2, 5], 0.3)],
        lambda S, o: [S.MultiStepLR(o, [2, 5], 0.3)],
        lambda e: 0.3 ** ((e >= 2) + (e >= 5))),
}


@pytest.mark.parametrize("name", CHAINS)
def test_a_chain_is_lr0_times_the_product_of_the_factors(name: str) -> None:
    make, _, by_hand = CHAINS[name]
    o = sgd(0.1)
    chain = md.ChainedScheduler(make(o))
    np.testing.assert_allclose(run(chain, 30), [0.1 * by_hand(e) for e in range(31)], rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("name", CHAINS)
def test_a_chain_equals_torchs(name: str) -> None:
    torch = pytest.importorskip("torch")
    make, make_theirs, _ = CHAINS[name]
    theirs = torch_run(lambda o: torch.optim.lr_scheduler.ChainedScheduler(make_theirs(torch.optim.lr_scheduler, o)),
                       30)
    o = sgd(0.1)
    ours = run(md.ChainedScheduler(make(o)), 30)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-18)


def test_a_chain_starts_every_schedule_from_the_lr0_the_first_one_found() -> None:
    """A ConstantLR made first lowers the lr to 0.025: the ExponentialLR made after it would take that as
    its lr0 (every lr a quarter of PyTorch's, whose schedules all start from initial_lr)."""
    o = sgd(0.1)
    constant, exponential = md.ConstantLR(o, 0.25, 2), md.ExponentialLR(o, 0.5)
    assert (o.lr, exponential.base_lr) == (0.025, 0.025)
    chain = md.ChainedScheduler([exponential, constant], optimizer=o)
    assert constant.base_lr == exponential.base_lr == chain.base_lr == 0.1
    assert run(chain, 3) == pytest.approx([0.025, 0.0125, 0.025, 0.0125], rel=1e-15)


def test_a_chain_takes_a_schedule_of_ones_own() -> None:
    o = sgd(0.2)
    chain = md.ChainedScheduler([_warmup(o), md.ExponentialLR(o, 0.5)])
    assert run(chain, 4) == pytest.approx([0.05, 0.05, 0.0375, 0.025, 0.0125], rel=1e-15)


def test_a_chained_cosine_past_t_max_climbs_back_times_the_other_factors() -> None:
    """Documented difference: PyTorch's recursive cosine reaches 0 at T_max and restarts without the
    other factors (probed: 0.1 * 0.95**6 * ... would be 0.00954915 there, not the product 0.0070195)."""
    o = sgd(0.1)
    chain = md.ChainedScheduler([md.ExponentialLR(o, 0.95), md.CosineAnnealingLR(o, 5)])
    lrs = run(chain, 8)
    want = [0.1 * 0.95**e * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(9)]
    np.testing.assert_allclose(lrs, want, rtol=1e-14, atol=1e-18)
    assert lrs[5] == 0.0 and f"{lrs[6]:.5g}" == "0.0070195"


def test_a_refused_step_in_a_chain_changes_nothing() -> None:
    o = sgd(0.1)
    chain = md.ChainedScheduler([md.ExponentialLR(o, 0.9), md.MultiplicativeLR(o, lambda e: 0.5 if e < 3 else -1)])
    run(chain, 2)
    before = (chain.state_dict(), o.lr)
    with pytest.raises(ValueError, match=r"^MultiplicativeLR: lr_lambda\(3\) returned -1; expected a finite number"):
        chain.step()
    assert (chain.state_dict(), o.lr) == before
    o = sgd(0.1)
    chain = md.ChainedScheduler([md.ExponentialLR(o, 1e155), md.ExponentialLR(o, 1e155)])  # each finite, not both
    with pytest.raises(ValueError, match=r"^ChainedScheduler: the lr at epoch 1, 0.1 times the factors of "
                                         r"\['ExponentialLR', 'ExponentialLR'\], overflows"):
        chain.step()
    assert (chain.last_epoch, o.lr) == (0, 0.1)


def test_a_chains_schedules_belong_to_it() -> None:
    """A schedule stepped directly once in a chain used to find its own lr unchanged (the chain's factor
    at 0 is 1 here) and step, dropping the chain's other factors: it is refused as soon as it is chained."""
    o = sgd(0.1)
    exponential = md.ExponentialLR(o, 0.9)
    chain = md.ChainedScheduler([md.StepLR(o, 3, 0.5), exponential])
    for _ in range(2):
        before = (chain.state_dict(), exponential.state_dict(), o.lr)
        with pytest.raises(RuntimeError, match=r"^ExponentialLR\.step: this ExponentialLR belongs to a "
                                               r"ChainedScheduler, which sets the lr from its schedules and steps "
                                               r"them: step the ChainedScheduler, not the schedules in it$"):
            exponential.step()
        assert (chain.state_dict(), exponential.state_dict(), o.lr) == before
        chain.step()
    assert o.lr == pytest.approx(0.1 * 0.81, rel=1e-15) and exponential.last_epoch == 2


# refusals: (the schedules made, the optimizer passed or None, the error, its message)
REFUSALS: dict[str, tuple[Callable[[md.Optimizer, md.Optimizer], Any], str | None, type, str]] = {
    "empty": (lambda o, p: [], None, ValueError, "ChainedScheduler: needs at least one schedule"),
    "not a list": (lambda o, p: md.StepLR(o, 2), None, TypeError,
                   "ChainedScheduler: schedulers must be a list of schedules, got StepLR"),
    "not a schedule": (lambda o, p: [md.StepLR(o, 2), o], None, TypeError,
                       "ChainedScheduler: schedule 1 must be an LRScheduler, got SGD"),
    "plateau": (lambda o, p: [md.StepLR(o, 2), md.ReduceLROnPlateau(o)], None, TypeError,
                r"ChainedScheduler: schedule 1 is a ReduceLROnPlateau, which has no closed form .*refuses it too"),
    "lambda": (lambda o, p: [md.LambdaLR(o, lambda e: 0.9), md.StepLR(o, 2)], None, TypeError,
               r"ChainedScheduler: schedule 0 is a LambdaLR, which sets lr0 \* lr_lambda\(e\) whatever the "
               r"schedules before it did .*chain a MultiplicativeLR"),
    "warm restarts": (lambda o, p: [md.StepLR(o, 2), md.CosineAnnealingWarmRestarts(o, 4)], None, TypeError,
                      "ChainedScheduler: schedule 1 is a CosineAnnealingWarmRestarts, which sets its cosine from lr0"),
    "one-cycle": (lambda o, p: [md.StepLR(o, 2), md.OneCycleLR(o, 1.0, 10)], None, TypeError,
                  "ChainedScheduler: schedule 1 is a OneCycleLR, which sets the momentum too"),
    "cyclic": (lambda o, p: [md.CyclicLR(o, 0.01, 0.1)], None, TypeError,
               "ChainedScheduler: schedule 0 is a CyclicLR, which sets the momentum too"),
    "sequence": (lambda o, p: [md.StepLR(o, 2), md.SequentialLR(o, [md.StepLR(o, 2), md.ExponentialLR(o, 0.9)], [3])],
                 None, TypeError, "ChainedScheduler: schedule 1 is a SequentialLR, which cannot be chained"),
    "nested": (lambda o, p: [md.ChainedScheduler([md.StepLR(o, 2)]), md.StepLR(o, 3)], None, TypeError,
               "ChainedScheduler: schedule 0 is a ChainedScheduler, which cannot be nested: list its schedules"),
    "another optimizer": (lambda o, p: [md.StepLR(o, 2), md.ConstantLR(p, 0.5)], None, ValueError,
                          r"ChainedScheduler: schedule 1 \(ConstantLR\) drives another optimizer than schedule 0"),
    "another optimizer passed": (lambda o, p: [md.ConstantLR(o, 0.5)], "p", ValueError,
                                 r"ChainedScheduler: schedule 0 \(ConstantLR\) drives another optimizer than the one "
                                 r"passed"),
    "not an optimizer": (lambda o, p: [md.StepLR(o, 2)], "number", TypeError,
                         "ChainedScheduler: expected an Optimizer, got float"),
    "cosine with eta_min": (lambda o, p: [md.ConstantLR(o, 0.5), md.CosineAnnealingLR(o, 5, 1e-3)], None, ValueError,
                            r"ChainedScheduler: schedule 1 is a CosineAnnealingLR with eta_min=0.001: its lr is not "
                            r"lr0 times a factor"),
    "stepped": (lambda o, p: [md.ConstantLR(o, 0.5), _stepped(md.ExponentialLR(o, 0.9))], None, ValueError,
                r"ChainedScheduler: schedule 1 \(ExponentialLR\) has stepped 2 time\(s\); a chain counts every "
                r"schedule's epochs from 0"),
    "listed twice": (lambda o, p: [md.ConstantLR(o, 0.5)] * 2, None, ValueError,
                     "ChainedScheduler: a schedule is listed twice; each keeps its own settings, give two"),
    "in a chain already": (lambda o, p: [md.StepLR(o, 2), _chained(md.ExponentialLR(o, 0.9))], None, ValueError,
                           r"ChainedScheduler: schedule 1 \(ExponentialLR\) belongs to a ChainedScheduler already, "
                           r"which steps it: give new schedules"),
    "in a sequence already": (lambda o, p: [_in_sequence(md.ConstantLR(o, 0.5)), md.StepLR(o, 2)], None, ValueError,
                              r"ChainedScheduler: schedule 0 \(ConstantLR\) belongs to a SequentialLR already"),
}


def _chained(schedule: md.LRScheduler) -> md.LRScheduler:
    md.ChainedScheduler([schedule, md.StepLR(schedule.optimizer, 2)])
    return schedule


def _in_sequence(schedule: md.LRScheduler) -> md.LRScheduler:
    md.SequentialLR(schedule.optimizer, [schedule, md.StepLR(schedule.optimizer, 2)], milestones=[3])
    return schedule


def _stepped(schedule: md.LRScheduler) -> md.LRScheduler:
    schedule.step()
    schedule.step()
    return schedule


@pytest.mark.parametrize("name", REFUSALS)
def test_a_chain_refuses_what_it_cannot_multiply_and_changes_nothing(name: str) -> None:
    make, passed, error, match = REFUSALS[name]
    o, p = sgd(0.1), sgd(0.2)
    md.ExponentialLR(o, 0.9)  # a first phase's schedule records initial_lr 0.1; the lr set by hand for the
    o.lr = 0.05  # chain's phase: a chain would start from 0.05 and must leave initial_lr at 0.1
    schedules = make(o, p)
    listed = schedules if isinstance(schedules, list) else []
    before = ([(x.lr, x.initial_lr, x.hyper["momentum"]) for x in (o, p)],
              [(s.base_lr, s.last_epoch) for s in listed if isinstance(s, md.LRScheduler)])
    optimizer = {"p": p, "number": 0.1, None: None}[passed]
    with pytest.raises(error, match="^" + match):
        md.ChainedScheduler(schedules, optimizer=optimizer)  # type: ignore[arg-type]
    assert before == ([(x.lr, x.initial_lr, x.hyper["momentum"]) for x in (o, p)],
                      [(s.base_lr, s.last_epoch) for s in listed if isinstance(s, md.LRScheduler)])


def test_a_chain_is_refused_by_a_sequence() -> None:
    o = sgd(0.1)
    chain = md.ChainedScheduler([md.StepLR(o, 2), md.ExponentialLR(o, 0.9)])
    with pytest.raises(TypeError, match=r"^SequentialLR: schedule 1 must be an LRScheduler with a closed form of the "
                                        r"lr alone \(not ReduceLROnPlateau, a ChainedScheduler"):
        md.SequentialLR(o, [md.LinearLR(o), chain], milestones=[2])


def test_a_chain_whose_epoch_zero_lr_fails_changes_no_schedule() -> None:
    o = sgd(0.1)
    warm = md.LinearLR(o, 0.1, total_iters=3)
    with pytest.raises(NotImplementedError):
        md.ChainedScheduler([md.LRScheduler(o), warm])  # no lr_at: raises computing epoch 0's lr
    assert (warm.base_lr, o.lr, o.initial_lr) == (0.1, pytest.approx(0.01), 0.1)
    o = sgd(0.1)
    schedules, bare = [md.ConstantLR(o, 0.5, 2), md.StepLR(o, 2)], md.LRScheduler(o)
    o.initial_lr = None  # cleared after the schedules were made: a refused chain leaves it cleared and its
    with pytest.raises(NotImplementedError):  # schedules free,
        md.ChainedScheduler([*schedules, bare])
    assert (o.lr, o.initial_lr) == (0.05, None)
    chain = md.ChainedScheduler(schedules)  # and a chain records its lr0 (the largest lr they found)
    assert (chain.base_lr, o.initial_lr, o.lr) == (0.1, 0.1, 0.05)


# ------------------------------------------------------------------------------ ChainedScheduler's state
def _chain(lr: float = 0.1, f: Callable[[int], Any] = FACTORS[1][1]) -> md.ChainedScheduler:
    o = sgd(lr)
    return md.ChainedScheduler([md.LinearLR(o, 0.25, 1.0, 5), md.MultiplicativeLR(o, f), md.StepLR(o, 3, 0.5)])


@pytest.mark.parametrize("optimizer_first", [True, False])
def test_a_chain_resumes_from_its_state_as_if_it_had_not_stopped(optimizer_first: bool) -> None:
    first = _chain()
    run(first, 4)  # inside the warm-up: LinearLR's load must set the lr again
    state, opt_state = first.state_dict(), first.optimizer.state_dict()
    assert [s["type"] for s in state["schedulers"]] == ["LinearLR", "MultiplicativeLR", "StepLR"]
    assert {k: state[k] for k in ("type", "base_lr", "last_epoch")} == {"type": "ChainedScheduler", "base_lr": 0.1,
                                                                         "last_epoch": 4}
    assert [c["last_epoch"] for c in state["schedulers"]] == [4, 4, 4]  # (their counts follow the chain's)
    straight = run(first, 10)
    counted = Counted(FACTORS[1][1])
    resumed = _chain(0.7, counted)
    other = resumed.optimizer
    if optimizer_first:
        other.load_state_dict(opt_state)
        resumed.load_state_dict(state)
    else:
        resumed.load_state_dict(state)
        other.load_state_dict(opt_state)
    assert run(resumed, 10) == straight  # bit for bit
    assert resumed.state_dict() == first.state_dict()
    assert counted.calls == list(range(5, 15))  # the product to epoch 4 came from the state


def test_a_bad_chain_state_is_refused_and_changes_nothing() -> None:
    chain = _chain()
    run(chain, 2)
    good = chain.state_dict()
    children = good["schedulers"]
    before = (chain.state_dict(), chain.optimizer.lr)
    for bad, match in (
            ({**good, "schedulers": [children[0], {**children[1], "last_lr": -1.0}, children[2]]},
             r"schedule 1: MultiplicativeLR.load_state_dict refused .*'last_lr'"),
            ({**good, "schedulers": [children[0], children[1], {**children[2], "gamma": 0.0}]},
             r"schedule 2: .*StepLR: gamma must be a finite number > 0"),
            ({**good, "schedulers": children[:2]}, "'schedulers': expected a list of 3 schedule states, got 2"),
            ({**good, "schedulers": None}, "'schedulers': expected a list of 3 schedule states, got NoneType"),
            ({**good, "milestones": [2]}, r"unexpected keys \['milestones'\] \(ChainedScheduler keeps \['base_lr', "
                                          r"'last_epoch', 'schedulers', 'type'\]\)"),
            ({**good, "type": "SequentialLR"}, "state is for 'SequentialLR', not 'ChainedScheduler'"),
            ({**good, "last_epoch": 2.5}, "'last_epoch': expected an int >= 0"),
            ({**good, "base_lr": 1e300, "schedulers": [children[0], {**children[1], "base_lr": 1e-300, "last_lr": 1.0},
                                                        children[2]]},  # a factor of 1e300 at the loaded epoch
             r"the lr at the loaded epoch: ValueError: ChainedScheduler: the lr at epoch 2, 1e\+300 times the "
             r"factors of \['LinearLR', 'MultiplicativeLR', 'StepLR'\], overflows")):
        with pytest.raises(StateDictError, match=r"^ChainedScheduler.load_state_dict refused the state \(nothing was "
                                                 r"changed\): " + match):
            chain.load_state_dict(bad)
        assert (chain.state_dict(), chain.optimizer.lr) == before
    with pytest.raises(TypeError, match=r"ChainedScheduler\.load_state_dict expects a mapping, got list"):
        chain.load_state_dict([good])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ in fit
def _regression() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    return x, x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((40, 1))


def _schedule(o: md.Optimizer, kind: str) -> md.LRScheduler:
    if kind == "multiplicative":
        return md.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.97)
    return md.ChainedScheduler([md.LinearLR(o, 0.2, 1.0, 3), md.ExponentialLR(o, 0.9)])


@pytest.mark.parametrize("kind", ["multiplicative", "chained"])
@pytest.mark.parametrize("interval", ["epoch", "batch"])
def test_fit_steps_them_as_a_hand_written_loop(kind: str, interval: str) -> None:
    x, y = _regression()
    nets = [md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 1, rng=1)) for _ in range(2)]
    opts = [md.SGD(n.parameters(), lr=0.05, momentum=0.5) for n in nets]
    schedules = [_schedule(o, kind) for o in opts]
    history = md.fit(nets[0], x, y, loss=md.MSELoss(), optimizer=opts[0], epochs=4, batch_size=16, rng=3,
                     scheduler=schedules[0], scheduler_interval=interval, verbose=0)
    gen, loss, lrs = np.random.default_rng(3), md.MSELoss(), []
    for _ in range(4):
        lrs.append(opts[1].lr)
        order = gen.permutation(40)
        for start in range(0, 40, 16):
            idx = order[start:start + 16]
            nets[1].zero_grad()
            loss(nets[1](x[idx]), y[idx])
            nets[1].backward(loss.backward())
            opts[1].step()
            if interval == "batch":
                schedules[1].step()
        if interval == "epoch":
            schedules[1].step()
    assert history["lr"] == lrs and len(set(lrs)) == 4
    assert schedules[0].last_epoch == (12 if interval == "batch" else 4)
    assert schedules[0].state_dict() == schedules[1].state_dict() and opts[0].lr == opts[1].lr
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def _random_chain(rng: np.random.Generator) -> list[tuple[str, tuple[Any, ...]]]:
    """One to four schedules of the kinds a chain takes, with random settings: (class name, arguments after
    the optimizer).  (ConstantLR's total_iters >= 1: with 0 PyTorch's stays at ``lr0 * factor``, minidl's
    ConstantLR gives ``lr0``.)"""
    chain: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(8))
        a, b, n = float(rng.uniform(0.05, 1.0)), float(rng.uniform(0.0, 1.0)), int(rng.integers(1, 12))
        table = rng.uniform(0.8, 1.1, size=31)
        chain.append([
            ("StepLR", (n % 5 + 1, a + 0.3)),
            ("MultiStepLR", (sorted(int(x) for x in rng.integers(1, 30, size=3)), a)),
            ("ExponentialLR", (0.85 + 0.2 * b,)),
            ("ConstantLR", (a, n)),
            ("LinearLR", (a, b, n)),
            ("PolynomialLR", (4 * n, 3 * b)),
            ("MultiplicativeLR", (lambda e, t=table: float(t[e]),)),
            ("CosineAnnealingLR", (30 + n,)),  # (within T_max: PyTorch's is the product there)
        ][kind])
    return chain


def test_random_chains_equal_torchs() -> None:
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    rng = np.random.default_rng(7)
    for _ in range(40):
        chain, lr = _random_chain(rng), float(rng.uniform(0.001, 1.0))

        def theirs(o: Any, chain: list[tuple[str, tuple[Any, ...]]] = chain) -> Any:
            return sched.ChainedScheduler([getattr(sched, name)(o, *args) for name, args in chain])

        o = sgd(lr)
        ours = md.ChainedScheduler([getattr(md, name)(o, *args) for name, args in chain])
        np.testing.assert_allclose(run(ours, 30), torch_run(theirs, 30, lr=lr), rtol=1e-14, atol=1e-300)


# ------------------------------------------------------------------------------ a chain for a new phase
def test_a_chain_for_a_new_phase_goes_on_from_the_lr_its_schedules_found() -> None:
    """PyTorch's chain builds on the lr its schedules found, not on initial_lr (the first schedule ever made
    on the optimizer): after an ExponentialLR took the lr from 0.1 to 0.0125, a chain starts from 0.0125,
    whatever order its schedules were made in, and leaves initial_lr at 0.1 (a chain used to take 0.1)."""
    for reverse in (False, True):
        o = sgd(0.1)
        run(md.ExponentialLR(o, 0.5), 3)
        makers: list[Callable[[md.Optimizer], md.LRScheduler]] = [lambda o: md.ConstantLR(o, 0.5, 2),
                                                                  lambda o: md.ExponentialLR(o, 0.9)]
        made = [make(o) for make in (makers[::-1] if reverse else makers)]
        chain = md.ChainedScheduler(made[::-1] if reverse else made)
        assert (chain.base_lr, o.initial_lr) == (0.0125, 0.1)
        assert run(chain, 3) == pytest.approx([0.00625, 0.005625, 0.010125, 0.0091125], rel=1e-15)  # PyTorch's
    seq = md.SequentialLR(o, [md.ExponentialLR(o, 0.5), md.StepLR(o, 2)], milestones=[2])
    assert (seq.base_lr, o.lr) == (0.1, 0.1)  # a sequence made later starts from initial_lr, as PyTorch's
    o = sgd(0.1)
    md.ExponentialLR(o, 0.5)
    o.lr = 0.02  # set by hand before the chain's schedule was made: built on, as PyTorch's (not 0.1)
    chain = md.ChainedScheduler([md.ExponentialLR(o, 0.9)])
    assert (o.lr, o.initial_lr) == (0.02, 0.1) and run(chain, 2) == pytest.approx([0.02, 0.018, 0.0162], rel=1e-15)


# (a first phase on the optimizer, then the chain's schedules, made in the order listed and chained as
# listed): minidl's and PyTorch's, given the module
PHASES: dict[str, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], list[Any]],
                        Callable[[list[Any]], list[Any]]]] = {
    "exponential, then constant+exponential": (
        lambda S, o: run_any(S.ExponentialLR(o, 0.5), 3),
        lambda S, o: [S.ConstantLR(o, 0.5, 2), S.ExponentialLR(o, 0.9)],
        lambda made: made),
    "step, an lr set by hand, then exponential+step": (
        lambda S, o: set_lr(run_any(S.StepLR(o, 2), 3), 0.01),
        lambda S, o: [S.ExponentialLR(o, 0.5), S.StepLR(o, 3)],
        lambda made: made),
    "exponential, then step+warm-up+multiplicative made backwards": (
        lambda S, o: run_any(S.ExponentialLR(o, 0.8), 5),
        lambda S, o: [S.MultiplicativeLR(o, FACTORS[1][1]), S.LinearLR(o, 0.5, 1.0, 3), S.StepLR(o, 2, 0.3)],
        lambda made: made[::-1]),
    "cosine, then constant+polynomial+cosine": (
        lambda S, o: run_any(S.CosineAnnealingLR(o, 10), 4),
        lambda S, o: [S.ConstantLR(o, 0.25, 3), S.PolynomialLR(o, 12, 2.0), S.CosineAnnealingLR(o, 15)],
        lambda made: [made[2], made[0], made[1]]),
}


def run_any(schedule: Any, steps: int) -> Any:
    """Step minidl's or PyTorch's schedule ``steps`` times; returns its optimizer."""
    for _ in range(steps):
        schedule.step()
    return schedule.optimizer


def set_lr(optimizer: Any, lr: float) -> None:
    """Set minidl's or PyTorch's optimizer's lr by hand."""
    if isinstance(optimizer, md.Optimizer):
        optimizer.lr = lr
    else:
        optimizer.param_groups[0]["lr"] = lr


@pytest.mark.parametrize("name", PHASES)
def test_a_chain_for_a_new_phase_equals_torchs(name: str) -> None:
    torch = pytest.importorskip("torch")
    phase_one, make, order = PHASES[name]
    sched = torch.optim.lr_scheduler

    def theirs(o: Any) -> Any:
        phase_one(sched, o)
        return sched.ChainedScheduler(order(make(sched, o)))

    o = sgd(0.1)
    phase_one(md, o)
    ours = run(md.ChainedScheduler(order(make(md, o))), 14)
    np.testing.assert_allclose(ours, torch_run(theirs, 14), rtol=1e-14, atol=1e-18)
    assert o.initial_lr == 0.1


def test_random_chains_for_a_new_phase_equal_torchs() -> None:
    """A random first phase (an ExponentialLR stepped 0 to 5 times, sometimes an lr set by hand after it),
    then a random chain made in a random order."""
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    rng = np.random.default_rng(11)
    for _ in range(30):
        chain, lr, gamma = _random_chain(rng), float(rng.uniform(0.001, 1.0)), float(rng.uniform(0.5, 1.2))
        steps, by_hand = int(rng.integers(0, 6)), float(rng.uniform(0.001, 1.0)) if rng.random() < 0.3 else None
        order = [int(i) for i in rng.permutation(len(chain))]

        def phase_and_chain(lib: Any, o: Any, chain: list[tuple[str, tuple[Any, ...]]] = chain, gamma: float = gamma,
                            steps: int = steps, by_hand: float | None = by_hand, order: list[int] = order) -> Any:
            run_any(lib.ExponentialLR(o, gamma), steps)
            if by_hand is not None:
                set_lr(o, by_hand)
            made: list[Any] = [None] * len(chain)
            for i in order:
                name, args = chain[i]
                made[i] = getattr(lib, name)(o, *args)
            return lib.ChainedScheduler(made)

        o = sgd(lr)
        ours = run(phase_and_chain(md, o), 30)
        np.testing.assert_allclose(ours, torch_run(lambda o: phase_and_chain(sched, o), 30, lr=lr), rtol=1e-14,
                                   atol=1e-300)
        assert o.initial_lr == lr


# ------------------------------------------------------------------------------ previews cost no step
def test_multiplicative_lr_steps_call_the_function_once_each_whatever_was_previewed() -> None:
    """A preview of 200 epochs (a plot) made every later step multiply again from lr0: 5050 calls for
    100 steps.  The products kept are the farthest, the latest and those at last_epoch and the next."""
    f = Counted(FACTORS[1][1])
    schedule = md.MultiplicativeLR(sgd(0.3), f)
    plot = [schedule.lr_at(e) for e in range(200)]
    assert f.calls == list(range(1, 200))
    f.calls.clear()
    assert run(schedule, 100) == plot[:101]  # the same products, bit for bit
    assert len(f.calls) <= 100 and len(set(f.calls)) == len(f.calls)
    f.calls.clear()
    assert [schedule.lr_at(e) for e in range(200)] == plot  # a preview between steps
    f.calls.clear()
    assert [schedule.step() for _ in range(50)] == plot[101:151]
    assert len(f.calls) <= 50 and len(set(f.calls)) == len(f.calls)
    f.calls.clear()
    far = schedule.lr_at(400)
    assert schedule.lr_at(400) == far and f.calls == list(range(200, 401))  # from the farthest, then kept
    f.calls.clear()
    assert schedule.step() == plot[151] and len(f.calls) <= 1


@pytest.mark.parametrize("container", ["chain", "sequence"])
def test_a_preview_through_a_container_costs_its_steps_nothing(container: str) -> None:
    f = Counted(FACTORS[2][1])
    o = sgd(0.3)
    multiplicative = md.MultiplicativeLR(o, f)
    schedule: md.LRScheduler = md.ChainedScheduler([md.StepLR(o, 7, 0.5), multiplicative]) if container == "chain" \
        else md.SequentialLR(o, [multiplicative, md.ExponentialLR(o, 0.9)], milestones=[150])
    plot = [schedule.lr_at(e) for e in range(200)]
    f.calls.clear()
    assert run(schedule, 100) == plot[:101]
    assert len(f.calls) <= 100 and len(set(f.calls)) == len(f.calls)  # (5050 before)
    if container == "chain":  # (a sequence's schedules keep their own counts at 0: not between steps)
        f.calls.clear()
        assert [schedule.lr_at(e) for e in range(200)] == plot
        f.calls.clear()
        assert run(schedule, 30)[1:] == plot[101:131] and len(f.calls) <= 30


def test_a_loaded_product_stays_the_one_the_schedule_goes_on_from() -> None:
    """The product loaded at epoch 5 (here not lr0's: the function was another) is where every later epoch
    starts, whatever was asked before; the epochs before it multiply from lr0."""
    f = Counted(lambda e: 0.5)
    schedule = md.MultiplicativeLR(sgd(1.0), f)
    schedule.load_state_dict({"type": "MultiplicativeLR", "base_lr": 1.0, "last_epoch": 5, "last_lr": 0.75})
    assert f.calls == [] and schedule.lr_at(5) == 0.75
    assert schedule.lr_at(20) == 0.75 * 0.5**15 and schedule.lr_at(3) == 0.125
    assert schedule.lr_at(9) == 0.75 * 0.5**4 and schedule.lr_at(5) == 0.75 and schedule.state_dict()["last_lr"] == 0.75
    assert schedule.step() == 0.375


# ------------------------------------------------------------------------------ a loaded chain's settings
def test_a_chain_refuses_a_state_whose_settings_its_constructor_refuses() -> None:
    """A cosine with eta_min > 0 set in a chain's state used to load and run (its lr not lr0 times a factor)."""
    o = sgd(0.1)
    chain = md.ChainedScheduler([md.ExponentialLR(o, 0.9), md.CosineAnnealingLR(o, 10)])
    run(chain, 2)
    state = chain.state_dict()
    children = state["schedulers"]
    before = (chain.state_dict(), o.lr, repr(chain.schedulers[1]))
    with pytest.raises(StateDictError, match=r"^ChainedScheduler.load_state_dict refused the state \(nothing was "
                                             r"changed\): ChainedScheduler: schedule 1 is a CosineAnnealingLR with "
                                             r"eta_min=0.05: its lr is not lr0 times a factor"):
        chain.load_state_dict({**state, "schedulers": [children[0], {**children[1], "eta_min": 0.05}]})
    assert (chain.state_dict(), o.lr, repr(chain.schedulers[1])) == before
    chain.load_state_dict({**state, "schedulers": [children[0], {**children[1], "T_max": 20, "eta_min": 0}]})
    assert o.lr == pytest.approx(0.1 * 0.81 * (1 + math.cos(math.pi * 2 / 20)) / 2, rel=1e-15)
    assert chain.step() == pytest.approx(0.1 * 0.9**3 * (1 + math.cos(math.pi * 3 / 20)) / 2, rel=1e-15)


# ------------------------------------------------------------------------------ schedules inside another
def test_a_sequences_schedules_belong_to_it() -> None:
    o = sgd(0.1)
    warmup, cosine = md.LinearLR(o, 0.5, 1.0, 2), md.CosineAnnealingLR(o, 10)
    seq = md.SequentialLR(o, [warmup, cosine], milestones=[2])
    for steps in (1, 2):  # before and after the milestone
        for schedule in (warmup, cosine):
            before = (seq.state_dict(), schedule.state_dict(), o.lr)
            with pytest.raises(RuntimeError, match=rf"^{type(schedule).__name__}\.step: this "
                                                   rf"{type(schedule).__name__} belongs to a SequentialLR, which sets "
                                                   r"the lr from its schedules and steps them: step the SequentialLR"):
                schedule.step()
            assert (seq.state_dict(), schedule.state_dict(), o.lr) == before
        seq.step()
        assert o.lr == pytest.approx([0.075, 0.1][steps - 1], rel=1e-15)


@pytest.mark.parametrize("container", ["chain", "sequence"])
def test_fit_refuses_a_schedule_inside_another_before_training(container: str) -> None:
    x, y = _regression()
    net = md.Sequential(md.Dense(3, 1, rng=0))
    o = md.SGD(net.parameters(), lr=0.1)
    inner = md.ExponentialLR(o, 0.9)
    outer = md.ChainedScheduler([inner, md.ConstantLR(o, 0.5, 2)]) if container == "chain" \
        else md.SequentialLR(o, [inner, md.ConstantLR(o, 0.5, 2)], milestones=[3])
    weights = [p.data.copy() for p in net.parameters()]
    owner = type(outer).__name__
    with pytest.raises(RuntimeError, match=rf"^fit: ExponentialLR\.step: this ExponentialLR belongs to a {owner}, "
                                           rf".*step the {owner}, not the schedules in it$"):
        md.fit(net, x, y, loss=md.MSELoss(), optimizer=o, epochs=2, scheduler=inner, verbose=0)
    assert all(np.array_equal(p.data, w) for p, w in zip(net.parameters(), weights, strict=True))
    assert (inner.last_epoch, outer.last_epoch, o.lr) == (0, 0, 0.1 if container == "sequence" else 0.05)
    history = md.fit(net, x, y, loss=md.MSELoss(), optimizer=o, epochs=2, scheduler=outer, verbose=0)
    assert outer.last_epoch == 2 and len(history["lr"]) == 2


def test_a_sequence_refuses_a_schedule_of_another_container_and_changes_nothing() -> None:
    o = sgd(0.1)
    chained = _chained(md.ExponentialLR(o, 0.9))
    later = md.StepLR(o, 2)
    before = (o.lr, o.initial_lr, chained.base_lr, later.base_lr)
    with pytest.raises(ValueError, match=r"^SequentialLR: schedule 1 \(ExponentialLR\) belongs to a "
                                         r"ChainedScheduler already, which steps it: give new schedules$"):
        md.SequentialLR(o, [later, chained], milestones=[2])
    sequenced = _in_sequence(md.ExponentialLR(o, 0.5))
    with pytest.raises(ValueError, match=r"^SequentialLR: schedule 0 \(ExponentialLR\) belongs to a SequentialLR "
                                         r"already"):
        md.SequentialLR(o, [sequenced, later], milestones=[2])
    assert (chained.base_lr, later.base_lr) == before[2:] and later._part_of is None


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("container", ["chain", "sequence"])
def test_copies_of_a_container_step_as_it_and_their_schedules_still_belong_to_it(how: str, container: str) -> None:
    import copy
    import pickle
    o = sgd(0.1)
    schedules = [md.ConstantLR(o, 0.5, 3), md.ExponentialLR(o, 0.9)]
    outer: md.ChainedScheduler | md.SequentialLR = md.ChainedScheduler(schedules) if container == "chain" \
        else md.SequentialLR(o, schedules, milestones=[3])
    run(outer, 2)
    twin = copy.deepcopy(outer) if how == "deepcopy" else pickle.loads(pickle.dumps(outer))
    assert twin.state_dict() == outer.state_dict() and twin.optimizer is not o
    assert [s.state_dict() for s in twin.schedulers] == [s.state_dict() for s in schedules]
    with pytest.raises(RuntimeError, match=f"belongs to a {type(outer).__name__}"):
        twin.schedulers[1].step()
    assert run(twin, 4) == run(outer, 4)
    outer.load_state_dict(twin.state_dict())  # states still move between them
    assert outer.state_dict() == twin.state_dict() and o.lr == twin.optimizer.lr


# ------------------------------------------------------------------------------ a sequence resumed
@pytest.mark.parametrize("optimizer_first", [True, False])
@pytest.mark.parametrize("stop", [2, 6])  # before and after the milestone
def test_a_sequence_holding_a_multiplicative_lr_resumes_as_if_it_had_not_stopped(optimizer_first: bool,
                                                                                 stop: int) -> None:
    def build(lr: float, f: Callable[[int], Any]) -> md.SequentialLR:
        o = sgd(lr)
        return md.SequentialLR(o, [md.MultiplicativeLR(o, f), md.CosineAnnealingLR(o, 10)], milestones=[4])

    first = build(0.1, FACTORS[1][1])
    run(first, stop)
    state, opt_state = first.state_dict(), first.optimizer.state_dict()
    assert [s["type"] for s in state["schedulers"]] == ["MultiplicativeLR", "CosineAnnealingLR"]
    straight = run(first, 8)
    resumed = build(0.7, FACTORS[1][1])
    other = resumed.optimizer
    if optimizer_first:
        other.load_state_dict(opt_state)
        resumed.load_state_dict(state)
    else:
        resumed.load_state_dict(state)
        other.load_state_dict(opt_state)
    assert other.lr == straight[0] and run(resumed, 8) == straight  # bit for bit
    assert resumed.state_dict() == first.state_dict()
    want = [0.1 * math.prod(FACTORS[1][1](k) for k in range(1, e + 1)) if e < 4 else
            0.1 * (1 + math.cos(math.pi * (e - 4) / 10)) / 2 for e in range(stop, stop + 9)]
    np.testing.assert_allclose(straight, want, rtol=1e-14)
