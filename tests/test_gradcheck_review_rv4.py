"""GradientChecker, review rv4 of the cliff zoom and the analytic round-off credit: real bugs the new
numerics passed are caught again (a 1e-7 error in a saturated attention, a clamped branch 3x off at
CosineSimilarity(eps=1e-12), tanh(1e6 x) off by 1e-3 at 0); an element judged only on a finer step makes
its tensor 'partial'; a jump no step resolves is skipped, with the step the search reached; the
evaluations the round-off probe and the cliff search take are counted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker
from minidl.gradcheck import checker as checker_module


def saturated(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights exactly 0/1 and inputs ~1e3: a softmax whose rows are exactly one-hot."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, (5, 12)).astype(float), rng.integers(0, 2, (5, 4)).astype(float),
            1e3 * rng.standard_normal((2, 3, 4)))


class OneOff(md.MultiHeadAttention):
    """One element of dx off by 1e-7 of the largest |dx|: ~100 times the analytic round-off there."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dx = super().backward(grad_output).copy()
        dx[0, 1, 2] += 1e-7 * float(np.max(np.abs(dx)))
        return dx


def test_the_analytic_round_off_is_credited_once_not_safety_times() -> None:
    W_qkv, W_o, x = saturated(8)
    report = GradientChecker(OneOff(4, 2, W_qkv=W_qkv, W_o=W_o), inputs=x, seed=8).run()
    r = report["input"]
    assert r.status == "FAIL" and r.failed == 1 and r.worst_index == (0, 1, 2), str(report)
    assert r.tolerance < 1e-8 < abs(r.analytic - r.numerical)


@pytest.mark.parametrize("seed", range(30))
def test_a_clean_saturated_attention_still_passes(seed: int) -> None:
    W_qkv, W_o, x = saturated(seed)
    report = GradientChecker(md.MultiHeadAttention(4, 2, W_qkv=W_qkv, W_o=W_o), inputs=x, seed=seed).run()
    assert report.passed and sum(r.failed for r in report.results) == 0, str(report)


def test_the_round_off_probe_is_counted_in_the_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    original = checker_module.GradientChecker._analytic_noise

    def counted(self: GradientChecker) -> Any:
        assert self._live is not None
        program = self._live[0]
        first = self._analytic_sigma is None
        before = program.evaluations
        out = original(self)
        if first:
            seen.append((before, program.evaluations))
        return out

    monkeypatch.setattr(checker_module.GradientChecker, "_analytic_noise", counted)
    W_qkv, W_o, x = saturated(1)
    report = GradientChecker(md.MultiHeadAttention(4, 2, W_qkv=W_qkv, W_o=W_o), inputs=x, seed=1).run()
    assert len(seen) == 1 and seen[0][1] - seen[0][0] == checker_module.ANALYTIC_POINTS - 1 == 7
    assert report.evaluations >= seen[0][1]


# ----------------------------------------------------------------------------- cliffs

class CosOff(md.CosineSimilarity):
    """The clamped branch (a norm at or below eps) 3 times too large."""

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx1, dx2 = super().backward(grad_output)
        assert self._cache is not None
        return np.where(self._cache[2] <= self.eps, dx1 * 3.0, dx1), dx2


def zero_row() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x1[1] = 0.0
    return x1, x2


def test_a_cliff_narrower_than_five_levels_is_zoomed_into() -> None:
    """eps = 1e-12 (F.normalize's default): linear only within 1e-12, below h / 32**5."""
    report = GradientChecker(CosOff(eps=1e-12), inputs=zero_row()).run()
    r = report["input[0]"]
    assert r.status == "FAIL" and r.failed == 4 and r.checked == 12 and r.zoomed == 4, str(report)
    assert r.worst_index is not None and r.worst_index[0] == 1 and r.step < 1e-12
    clean = GradientChecker(md.CosineSimilarity(eps=1e-12), inputs=zero_row()).run()
    c = clean["input[0]"]
    assert clean.passed and c.status == "partial" and c.checked == 12 and c.zoomed == 4, str(clean)
    assert any("4 element(s) sit at a cliff" in n and "judged only on a finer step" in n and "0 of them fail" in n
               for n in c.notes)
    assert "input[0] 12 of 12 elements (4 only on a finer step at a cliff)" in str(clean).splitlines()[0]
    assert any(n.startswith("the cliff search took ") for n in c.notes)


class Steep(md.Layer):
    """y = tanh(1e6 x); backward off by the relative ``r``."""

    def __init__(self, r: float) -> None:
        super().__init__()
        self.r = r

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.tanh(1e6 * x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * 1e6 * (1 - np.tanh(1e6 * self._x) ** 2) * (1 + self.r)


def steep_x() -> np.ndarray:
    x = np.random.default_rng(0).uniform(0.5, 1.0, (2, 3))
    x[0, 1] = 0.0
    return x


def test_a_steep_point_is_judged_one_level_finer_and_counted_only_when_judged() -> None:
    report = GradientChecker(Steep(0.0), inputs=steep_x()).run()
    r = report["input"]
    assert report.passed and r.status == "partial" and r.checked == 6 and r.skipped == 0 and r.zoomed == 1, \
        str(report)
    assert any(n.startswith("1 element(s) sit at a cliff") and "judged only on a finer step" in n for n in r.notes)
    bad = GradientChecker(Steep(1e-3), inputs=steep_x()).run()["input"]
    assert bad.status == "FAIL" and bad.failed == 1 and bad.worst_index == (0, 1)
    assert bad.max_rel_error == pytest.approx(1e-3, rel=0.05)


class SignJump(md.Layer):
    """y = x + sign(x), whose backward reports at 0 the slope of a ramp 1e-8 wide: a true jump there."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x + np.sign(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * np.where(self._x == 0, 1e8, 1.0)


def test_a_jump_no_step_resolves_is_skipped_down_to_the_float_range() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3))
    x[0, 1] = 0.0
    report = GradientChecker(SignJump(), inputs=x).run()
    r = report["input"]
    assert report.passed and r.status == "partial" and r.skipped == 1 and r.checked == 5 and r.zoomed == 0, \
        str(report)
    note = next(n for n in r.notes if "that no step resolves" in n)
    finest = float(note.split("down to ")[1].split(" ")[0])
    assert finest < 1e-300  # (searched to the float range: not 5 levels, h / 32**5 = 3e-12)
    evaluations = next(n for n in r.notes if n.startswith("the cliff search took "))
    assert 0 < int(evaluations.split()[4]) < 100  # (doubling then bisecting: not ~200 levels of 4)
