"""GradientChecker, review 22: a tensor checked only in part says so in its own status; an inf running
statistic is refused like a NaN one; no false FAIL from a saturated attention's round-off or at a cliff
(CosineSimilarity at a zero vector), while small real bugs in those regimes are still caught."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker
from minidl.errors import NonFiniteError


def headline(report: md.GradientReport) -> str:
    return str(report).splitlines()[0]


# ----------------------------------------------------------------------------- status "partial"

def test_a_tensor_checked_in_part_has_status_partial() -> None:
    x = np.round(np.random.default_rng(0).standard_normal((4, 40)))  # exact zeros: ReLU kinks
    report = GradientChecker(md.Sequential(md.ReLU(), md.Dense(40, 3, rng=1)), inputs=x).run()
    r = report["input"]
    assert report.passed and 0 < r.checked < r.size and r.status == "partial" and r.partial
    assert report["1.W"].status == "ok" and not report["1.W"].partial
    assert report.partly_checked == [r] and not report.nothing_checked and report.unchecked == []
    row = next(line for line in str(report).splitlines() if line.startswith("input "))
    assert row.split()[-1] == "partial"
    directional = GradientChecker(md.Sequential(md.Dense(40, 30, rng=0), md.Tanh(), md.Dense(30, 3, rng=1))).run()
    assert directional["0.W"].mode == "directional" and directional["0.W"].status == "partial"
    assert directional["2.W"].status == "ok" and directional.passed
    sampled = GradientChecker(md.Dense(8, 8, rng=0), mode="sampled", samples=10).run()
    assert sampled["W"].status == "partial" and sampled["W"].checked == 10 and sampled.passed


def test_a_failing_tensor_stays_fail_and_a_whole_one_ok() -> None:
    class Half(md.Dense):
        def backward(self, g: np.ndarray) -> np.ndarray:
            return 0.5 * super().backward(g)

    report = GradientChecker(Half(3, 2, rng=0)).run()
    assert report["input"].status == "FAIL" and report["W"].status == "ok" and not report.passed


# ----------------------------------------------------------------------------- inf in a running statistic

@pytest.mark.parametrize(("name", "value"), [("running_var", np.inf), ("running_mean", -np.inf)])
@pytest.mark.parametrize("training", [False, True])
def test_an_inf_running_statistic_is_refused_by_name_and_index(name: str, value: float, training: bool) -> None:
    net = md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Tanh()).train(training)
    getattr(net[1], name)[2] = value
    before = getattr(net[1], name).copy()
    with pytest.raises(NonFiniteError, match=rf"^GradientChecker: buffer '1\.{name}' holds 1 NaN/inf value\(s\), the "
                                             rf"first at index \(2,\) \({value!r}\), before the check started: .*"
                                             r"BatchNorm1d cannot use it") as info:
        GradientChecker(net).run()
    assert info.value.index == (2,) and info.value.shape == (4,)
    np.testing.assert_array_equal(getattr(net[1], name), before)


def test_an_inf_buffer_its_layer_accepts_is_still_allowed() -> None:
    """A -inf mask (the base buffer_problem says nothing) is state, not a diverged statistic."""

    class Masked(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mask", np.array([0.0, -np.inf, 0.0]))

        def forward(self, x: np.ndarray) -> np.ndarray:
            self._keep = np.isfinite(self.mask)
            return np.where(self._keep, x, 0.0)

        def backward(self, g: np.ndarray) -> np.ndarray:
            return np.where(self._keep, g, 0.0)

    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(Masked(), inputs=x).run()
    assert report.passed and report["input"].status == "ok" and report["input"].checked == 12


# ----------------------------------------------------------------------------- a saturated attention

def saturated(seed: int) -> tuple[md.MultiHeadAttention, np.ndarray]:
    """Weights exactly 0/1 and inputs ~1e3: scores ~1e6, a softmax whose rows are exactly one-hot."""
    rng = np.random.default_rng(seed)
    E = 4
    W_qkv = rng.integers(0, 2, (E + 1, 3 * E)).astype(float)
    W_o = rng.integers(0, 2, (E + 1, E)).astype(float)
    return md.MultiHeadAttention(E, 2, W_qkv=W_qkv, W_o=W_o), 1e3 * rng.standard_normal((2, 3, E))


@pytest.mark.parametrize("seed", [1, 2, 8, 12, 14, 16])  # the seeds that failed
def test_a_saturated_attention_passes(seed: int) -> None:
    layer, x = saturated(seed)
    report = GradientChecker(layer, inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert sum(r.failed for r in report.results) == 0
    assert any("the analytic gradient's own round-off" in n for r in report.results for n in r.notes)


class OffInput(md.MultiHeadAttention):
    """dx off by a relative 1e-6: far above the analytic round-off (~1e-9), a real bug."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return super().backward(grad_output) * (1 + 1e-6)


class LeakyQkv(md.MultiHeadAttention):
    """1e-6 of the largest gradient leaked into one element of W_qkv, where the cost is flat."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        before = self.W_qkv.grad.copy()
        dx = super().backward(grad_output)
        added = self.W_qkv.grad - before
        self.W_qkv.grad[1, 0] += 1e-6 * float(np.max(np.abs(added)))
        return dx


@pytest.mark.parametrize("seed", [1, 12, 14])
def test_small_bugs_in_a_saturated_attention_are_caught(seed: int) -> None:
    rng_layer, x = saturated(seed)
    off = OffInput(4, 2, W_qkv=rng_layer.W_qkv.data.copy(), W_o=rng_layer.W_o.data.copy())
    report = GradientChecker(off, inputs=x, seed=seed).run()
    assert report["input"].status == "FAIL" and report["input"].failed >= 12
    leaky = LeakyQkv(4, 2, W_qkv=rng_layer.W_qkv.data.copy(), W_o=rng_layer.W_o.data.copy())
    report = GradientChecker(leaky, inputs=x, seed=seed, check_input=False).run()
    r = report["W_qkv"]
    assert r.status == "FAIL" and r.worst_index == (1, 0)


# ----------------------------------------------------------------------------- a cliff: CosineSimilarity at 0

def zero_row(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x1[1] = 0.0  # its norm is clamped at eps = 1e-8: f(+-h) differ by O(1) for every h >> 1e-8
    return x1, x2


@pytest.mark.parametrize("seed", range(4))
def test_cosine_at_a_zero_vector_is_checked_on_a_finer_step(seed: int) -> None:
    report = GradientChecker(md.CosineSimilarity(), inputs=zero_row(seed), seed=seed).run()
    r = report["input[0]"]
    # (judged only on a finer step, not at the normal rule: 'partial', not 'ok'; review rv4)
    assert report.passed and r.status == "partial" and r.checked == 12 and r.skipped == 0, str(report)
    assert r.zoomed == 4
    assert any("sit at a cliff" in n and "judged only on a finer step" in n for n in r.notes)


class ClampedOff(md.CosineSimilarity):
    """The clamped branch (a norm at or below eps) off by 1e-4: a bug only a zero vector shows."""

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx1, dx2 = super().backward(grad_output)
        assert self._cache is not None
        n1 = self._cache[2]
        return np.where(n1 <= self.eps, dx1 * (1 + 1e-4), dx1), dx2


def test_a_bug_in_the_clamped_branch_is_caught_at_the_cliff() -> None:
    x1, x2 = zero_row(0)
    report = GradientChecker(ClampedOff(), inputs=(x1, x2), seed=0).run()
    r = report["input[0]"]
    assert r.status == "FAIL" and r.failed == 4 and r.worst_index is not None and r.worst_index[0] == 1
    assert report["input[1]"].status == "ok"


class Jump(md.Layer):
    """y = x + 1 where x > 0: a true step (no step resolves it); backward is the slope 1 off the jump."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + (x > 0)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g.copy()


def test_an_unresolvable_cliff_is_skipped_not_failed() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    x[0, 1] = 1e-13  # the jump within 1e-13: below every step tried
    report = GradientChecker(Jump(), inputs=x).run()
    r = report["input"]
    assert report.passed and r.status == "partial" and r.skipped == 1 and r.checked == 5, str(report)
