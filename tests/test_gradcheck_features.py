"""GradientChecker (issue 3): kinks, determinism, accumulation, shared parameters, per-layer checks,
diagnosis, modes, prefix reuse, and the framework's own layers."""

from __future__ import annotations

import math
import types
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as m
from minidl.errors import NonDeterministicError
from minidl.gradcheck import GradientChecker
from minidl.testing import assert_gradients_ok, layer_cases

H = 1e-4  # the default relative step

# ----------------------------------------------------------------------------- test layers


class Abs(m.Layer):
    elementwise = True

    def __init__(self, wrong_positive: bool = False) -> None:
        super().__init__()
        self.wrong_positive = wrong_positive

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.abs(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = np.sign(self._x)
        if self.wrong_positive:
            d = np.where(self._x > 0, 0.5, d)
        return g * d


class Clip(m.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.clip(x, -0.5, 0.5)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * ((self._x > -0.5) & (self._x < 0.5))


class PairMax(m.Layer):
    """Max over pairs of features (N, 2k) -> (N, k): a 1-D max-pool."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        pairs = x.reshape(x.shape[0], -1, 2)
        self._arg = pairs.argmax(axis=2)
        self._shape = x.shape
        return pairs.max(axis=2)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.zeros((g.shape[0], g.shape[1], 2))
        np.put_along_axis(dx, self._arg[..., None], g[..., None], axis=2)
        return dx.reshape(self._shape)


class Tied(m.Layer):
    """y = tanh(x @ A) @ A.T: one Parameter used twice (weight tying)."""

    def __init__(self, n: int, k: int, forget_second_use: bool = False) -> None:
        super().__init__()
        self.n = n
        self.A = m.Parameter(np.random.default_rng(0).standard_normal((n, k)) * 0.5)
        self.forget = forget_second_use

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._h = np.tanh(x @ self.A.data)
        return self._h @ self.A.data.T

    def backward(self, g: np.ndarray) -> np.ndarray:
        A = self.A.data
        if not self.forget:
            self.A.grad += g.T @ self._h
        dz = (g @ A) * (1 - self._h**2)
        self.A.grad += self._x.T @ dz
        return dz @ A.T

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.n,)


class AssignDense(m.Dense):
    """Assigns the gradient instead of adding it."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._x
        assert x is not None
        self.W.grad[1:] = x.T @ g
        self.W.grad[0] = g.sum(axis=0)
        return g @ self.W.data[1:].T


class BuggyDense(m.Dense):
    """A Dense with a configurable back-pass bug."""

    def __init__(self, *args: object, bug: str = "", **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.bug = bug

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._x
        assert x is not None
        W, dW = self.W.data, self.W.grad
        weights = x.T @ g
        bias = g.sum(axis=0)
        dx = g @ W[1:].T
        if self.bug == "factor2":
            weights = 2 * weights
        elif self.bug == "sign":
            weights, bias = -weights, -bias
        elif self.bug == "zero":
            weights, bias = 0 * weights, 0 * bias
        elif self.bug == "transpose":
            weights = weights.T
        elif self.bug == "bias_mean":
            bias = g.mean(axis=0)
        elif self.bug == "batch":
            weights, bias = weights * x.shape[0], bias * x.shape[0]
        elif self.bug == "dx":
            dx = dx * 1.5
        dW[1:] += weights
        dW[0] += bias
        return dx


class Counting(m.Layer):
    """Identity that counts its forward calls in a class-level dict (shared by the checker's copy)."""

    elementwise = True
    calls: ClassVar[dict[str, int]] = {}

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        Counting.calls[label] = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        Counting.calls[self.label] += 1
        return x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


class Unregistered(m.Layer):
    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self.gens = types.SimpleNamespace(rng=np.random.default_rng(1))  # hidden from registration

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._m = self.gens.rng.random(x.shape) > 0.5
        return x * self._m

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self._m


# ----------------------------------------------------------------------------- kinks


def _near(values: np.ndarray, at: float, seed: int) -> np.ndarray:
    """Put 60% of the elements exactly at ``at`` or within one step of it."""
    rng = np.random.default_rng(seed)
    offsets = rng.choice([0.0, 0.3 * H, -0.5 * H, 0.9 * H, -H, 0.25 * H, 0.6 * H, H / 3], size=values.shape)
    return np.where(rng.random(values.shape) < 0.6, at + offsets * max(abs(at), 1.0), values)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["relu", "leaky", "abs", "clip", "pairmax"])
def test_no_false_alarm_at_or_near_kinks(name: str, seed: int) -> None:
    base = np.random.default_rng(seed + 10).standard_normal((4, 6))
    if name == "clip":
        layer: m.Layer = Clip()
        x = np.where(base > 0, _near(base, 0.5, seed), _near(base, -0.5, seed))
    elif name == "pairmax":
        layer = PairMax()
        x = base.copy()
        x[:, 1::2] = _near(x[:, 1::2], 0.0, seed) + x[:, 0::2]  # ties and near-ties in each pair
    else:
        layer = {"relu": m.ReLU(), "leaky": m.LeakyReLU(0.1), "abs": Abs()}[name]
        x = _near(base, 0.0, seed)
    for mode in ("full", "auto"):
        report = GradientChecker(layer, inputs=x, seed=seed, mode=mode).run()
        assert report.passed, str(report)
        r = report["input"]
        if name in ("relu", "leaky"):  # exactly at the kink: skipped; one-sided slopes disagree
            assert r.skipped == int(np.sum(x == 0))
        # anything further than h/16 from a kink is checked (at a finer step if need be)
        assert r.checked == x.size - r.skipped


def test_wrong_gradient_off_the_kink_is_still_caught() -> None:
    x = _near(np.random.default_rng(0).standard_normal((4, 6)), 0.0, 0)
    report = GradientChecker(Abs(wrong_positive=True), inputs=x, mode="full").run()
    assert not report.passed
    r = report["input"]
    assert r.failed == int(np.sum(x > 0))  # every positive element is checked, even 0.25 h from the kink


def test_relu_mlp_with_exact_zero_inputs() -> None:
    x = np.random.default_rng(3).standard_normal((4, 5))
    x[x < 0] = 0.0
    net = m.Sequential(m.ReLU(), m.Dense(5, 3, rng=0), m.ReLU(), m.Dense(3, 2, rng=1))
    report = assert_gradients_ok(net, inputs=x)
    assert report["input"].skipped == int(np.sum(x == 0))


# ----------------------------------------------------------------------------- determinism / contracts


def test_non_determinism_names_the_layer() -> None:
    net = m.Sequential(m.Dense(3, 4, rng=0), m.Tanh(), Unregistered(), m.Dense(4, 2, rng=1))
    with pytest.raises(NonDeterministicError, match=r"'2' \(Unregistered\)") as info:
        GradientChecker(net).run()
    assert "attribute" in str(info.value)


def test_framework_dropout_checked_in_training_mode() -> None:
    net = m.Sequential(m.Dense(5, 6, rng=0), m.layers.Dropout(0.4, rng=3), m.Dense(6, 2, rng=1))
    state = net[1].rng.bit_generator.state
    assert assert_gradients_ok(net).passed and net.training
    assert net[1].rng.bit_generator.state == state


def test_assigns_instead_of_adds_is_reported() -> None:
    report = GradientChecker(m.Sequential(AssignDense(3, 2, rng=0))).run()
    assert not report.passed
    assert any("assigns into .grad instead of adding" in p for p in report["0.W"].problems)
    assert "assigns" in str(report)


def test_shared_parameter_checked_through_both_uses() -> None:
    assert assert_gradients_ok(Tied(4, 3)).passed
    report = GradientChecker(Tied(4, 3, forget_second_use=True)).run()
    assert not report.passed and not report["A"].passed and report["input"].passed


def test_shared_parameter_across_sequential_stages() -> None:
    a = m.Dense(4, 4, rng=0)
    net = m.Sequential(a, m.Tanh(), m.Dense(4, 4, rng=1), m.Tanh())
    net[2].W = a.W  # tie layer 2 to layer 0: perturbing it must re-run from layer 0
    report = assert_gradients_ok(net)
    assert [r.name for r in report.results] == ["input", "0.W"]


# ----------------------------------------------------------------------------- localisation and diagnosis


@pytest.mark.parametrize(
    ("bug", "words"),
    [
        ("factor2", "analytic = 2 x numerical"),
        ("sign", "sign flip"),
        ("zero", "all zero"),
        ("transpose", "transpose"),
        ("bias_mean", "only row 0"),
        ("batch", "analytic = 4 x numerical (N = 4 the batch size"),
    ],
)
def test_diagnosis_in_words(bug: str, words: str) -> None:
    net = m.Sequential(m.Dense(3, 5, rng=0), m.Tanh(), BuggyDense(5, 5, rng=1, bug=bug))
    report = GradientChecker(net, mode="full").run()
    r = report["2.W"]
    assert not r.passed and report["0.W"].passed and report["input"].passed
    assert r.diagnosis is not None and words in r.diagnosis, str(report)
    assert words in str(report)
    if bug == "bias_mean":
        assert "1/N" in r.diagnosis and r.worst_index is not None and r.worst_index[0] == 0


def test_only_input_gradient_wrong_note_and_localisation() -> None:
    net = m.Sequential(BuggyDense(3, 4, rng=0, bug="dx"))
    report = GradientChecker(net).run()
    assert not report["input"].passed and report["0.W"].passed
    assert any("only the input gradient is wrong" in n for n in report.notes)
    r = report["input"]
    assert r.worst_index is not None and abs(r.analytic / r.numerical - 1.5) < 1e-6
    assert "1.5" in (r.diagnosis or "") or "3/2" in (r.diagnosis or "")


def test_check_layers_points_at_the_guilty_layer() -> None:
    net = m.Sequential(m.Dense(3, 5, rng=0), m.Tanh(), BuggyDense(5, 4, rng=1, bug="dx"), m.Sigmoid())
    report = GradientChecker(net, check_layers=True).run()
    assert not report.passed
    assert set(report.layers) == {"0", "1", "2", "3"}
    assert [p for p, r in report.layers.items() if not r.passed] == ["2"]
    assert not report.layers["2"]["input"].passed and report.layers["2"]["W"].passed
    assert "failing alone: 2" in str(report) and "BuggyDense" in str(report)


# ----------------------------------------------------------------------------- modes and cost


def test_sampled_mode_is_stratified() -> None:
    net = m.Sequential(m.Dense(40, 30, rng=0))
    report = GradientChecker(net, mode="sampled", samples=50, seed=1).run()
    assert report.passed
    r = report["0.W"]
    assert r.mode == "sampled" and r.checked == 50 < r.size
    checker = GradientChecker(net, mode="sampled", samples=50)
    index = checker._sample((41, 30))
    assert index.size == 50 == np.unique(index).size
    rows, cols = np.unravel_index(index, (41, 30))
    # representatives of the edges: both ends of the bias row 0 and of the last row
    assert {(0, 0), (0, 29), (40, 0), (40, 29)} <= set(zip(rows.tolist(), cols.tolist(), strict=True))
    # most of the budget on the rest, spread over the rows
    assert np.sum(rows > 0) >= 0.75 * 50 and np.sum(rows == 0) <= 50 // 4
    assert len(set(rows.tolist())) > 30


class InteriorBug(m.Dense):
    """dW rows 1..-2 and dx samples 1..-2 scaled by 1.5: row 0 and the last row are right."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(g)
        c = self.W.grad - before
        c[1:-1] *= 1.5
        self.W.grad[...] = before + c
        dx[1:-1] *= 1.5
        return dx


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_mode_reaches_interior_rows_and_samples(seed: int) -> None:
    net = m.Sequential(InteriorBug(200, 64, rng=seed), m.Tanh(), m.Dense(64, 4, rng=seed + 1))
    report = GradientChecker(net, mode="sampled", batch_size=8, seed=seed).run()
    assert not report["0.W"].passed and not report["input"].passed, str(report)
    assert report["0.W"].checked == 32 and report["2.W"].passed
    for shape in [(201, 64), (8, 200), (785, 64)]:
        rows = np.unravel_index(GradientChecker(net, seed=seed)._sample(shape), shape)[0]
        interior = set(rows.tolist()) - {0, shape[0] - 1}
        assert len(interior) >= min(shape[0] - 2, 20), (shape, sorted(interior))


class Scaled(m.Dense):
    """Weight gradient (1 + 1e-6) times the right one."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(g)
        self.W.grad += 1e-6 * (self.W.grad - before)
        return dx


@pytest.mark.parametrize("mode", ["auto", "full", "sampled", "directional"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_mode_catches_a_1e6_relative_error(mode: str, seed: int) -> None:
    net = m.Sequential(Scaled(12, 8, rng=seed), m.Tanh(), m.Dense(8, 5, rng=seed + 1))
    report = GradientChecker(net, mode=mode, seed=seed, samples=16).run()
    assert not report.passed and [r.name for r in report.failed] == ["0.W"], str(report)
    assert report["0.W"].mode == ("full" if mode == "auto" else mode)
    clean = m.Sequential(m.Dense(12, 8, rng=seed), m.Tanh(), m.Dense(8, 5, rng=seed + 1))
    assert GradientChecker(clean, mode=mode, seed=seed, samples=16).run().passed


def test_auto_mode_drills_down_only_into_failing_tensors() -> None:
    class OneElement(m.Dense):
        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = super().backward(g)
            self.W.grad[7, 3] += 1e-3
            return dx

    net = m.Sequential(m.Dense(40, 30, rng=0), m.Tanh(), OneElement(30, 20, rng=1))
    report = GradientChecker(net).run()  # auto: every tensor > 512 elements
    assert not report.passed
    assert report["0.W"].mode == "directional" and report["input"].mode == "full"
    r = report["2.W"]
    assert r.mode == "directional->full" and r.failed == 1 and r.worst_index == (7, 3)
    assert "isolated" in (r.diagnosis or "")


def test_prefix_reuse_skips_earlier_layers() -> None:
    net = m.Sequential(Counting("first"), m.Dense(4, 3, rng=0), m.Tanh(), Counting("last"), m.Dense(3, 2, rng=1))
    x = np.random.default_rng(0).standard_normal((3, 4))
    report = GradientChecker(net, inputs=x, mode="full").run()
    assert report.passed
    calls = dict(Counting.calls)
    # every evaluation runs the stages after the perturbed tensor; only input and 1.W re-run layer 0
    assert calls["last"] > calls["first"] > 0
    off = GradientChecker(net, inputs=x, mode="full", reuse_prefix=False).run()
    assert off.passed
    assert Counting.calls["first"] - calls["first"] == Counting.calls["last"] - calls["last"]


def test_prefix_reuse_holds_after_a_layer_with_a_transposed_output() -> None:
    """Conv2D returns a transposed view; a stored copy in C order made BatchNorm2d reduce in another
    order, the re-run cost differed in the last bits and prefix reuse was switched off."""
    net = m.Sequential(m.Conv2D(1, 2, 3, rng=0), m.BatchNorm2d(2), m.Flatten(), m.Dense(18, 2, rng=1))
    x = np.random.default_rng(0).standard_normal((3, 1, 5, 5))
    assert not net[0](x).flags.c_contiguous
    report = GradientChecker(net, inputs=x).run()
    assert report.passed and not any("prefix reuse is off" in n for n in report.notes)


# ----------------------------------------------------------------------------- framework layers


def test_framework_layers_and_losses() -> None:
    rng = np.random.default_rng(0)
    conv = m.Sequential(m.layers.Conv2D(2, 3, 3, padding=1, rng=0), m.layers.MaxPool2D(2), m.layers.Flatten(),
                        m.Dense(12, 3, rng=1))
    assert_gradients_ok(conv, inputs=rng.standard_normal((2, 2, 4, 4)), loss=m.CrossEntropyLoss(),
                        targets=np.array([0, 2]))
    bn = m.Sequential(m.Dense(4, 5, rng=0), m.layers.BatchNorm1d(5), m.Tanh(), m.Dense(5, 3, rng=1),
                      m.Softmax())
    assert_gradients_ok(bn, loss=m.MSELoss())
    assert_gradients_ok(m.layers.LayerNorm(6), inputs=rng.standard_normal((3, 6)))


@pytest.mark.parametrize("case", layer_cases(shapes=[(3, 4), (5, 2)], dtypes=[np.float64, np.float32],
                                             seeds=[0, 1]), ids=str)
def test_layer_cases_helper(case: object) -> None:
    n_in, n_out = case.shape  # type: ignore[attr-defined]
    layer = m.Dense(n_in, n_out, rng=case.seed, dtype=case.dtype)  # type: ignore[attr-defined]
    assert_gradients_ok(layer, seed=case.seed)  # type: ignore[attr-defined]


@settings(max_examples=12, deadline=None)
@given(batch=st.integers(1, 4), n_in=st.integers(1, 5), n_out=st.integers(1, 4), bias=st.booleans(),
       seed=st.integers(0, 1000))
def test_property_dense_tanh_any_shape(batch: int, n_in: int, n_out: int, bias: bool, seed: int) -> None:
    net = m.Sequential(m.Dense(n_in, n_out, bias=bias, rng=seed), m.Tanh())
    x = np.random.default_rng(seed).standard_normal((batch, n_in))
    report = GradientChecker(net, inputs=x, seed=seed).run()
    assert report.passed, str(report)
    assert {r.name for r in report.results} == {"input", "0.W"}
    assert all(r.checked + r.skipped == r.size for r in report.results)


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4), seed=st.integers(0, 1000))
def test_property_elementwise_any_rank(shape: list[int], seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(shape)
    report = GradientChecker(m.Sigmoid(), inputs=x, seed=seed).run()
    assert report.passed and report["input"].shape == tuple(shape)


class TwoTerms(m.Layer):
    """y = x * a, whose backward adds the gradient as two cancelling terms (a legal += pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = m.Parameter(np.array([0.7, -1.3, 0.2]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.a.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        true = (g * self._x).sum(axis=0)
        self.a.grad += 1e3
        self.a.grad += true - 1e3  # rounds differently from 2 * grad when run twice
        return g * self.a.data

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


def test_accumulation_check_tolerates_round_off_of_several_terms() -> None:
    report = GradientChecker(TwoTerms()).run()
    assert not report["a"].problems, str(report)


# ----------------------------------------------------------------------------- helpers


def test_same_and_copy_value_helpers() -> None:
    from minidl.gradcheck._state import copy_value, same

    a = np.array([1.0, np.nan, 0.0])
    assert same(a, a.copy())  # the same NaN is the same value for a determinism check
    assert not same(a, np.array([1.0, np.nan, -0.0]))  # bit for bit
    assert not same(a, a.astype(np.float32)) and not same(a, a[:2]) and not same(a, None)
    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    assert same(strided, strided.copy()) and not same(strided, strided + 1)
    pair = (np.ones(2), [np.zeros(3)])
    copied = copy_value(pair)
    assert same(pair, copied) and copied[0] is not pair[0]
    copied[1][0][0] = 5.0
    assert not same(pair, copied) and pair[1][0][0] == 0.0
    assert same({"a": np.ones(1)}, {"a": np.ones(1)}) and same(None, None) and same(3, 3)


# ----------------------------------------------------------------------------- report text and measures


def test_tensor_with_every_element_at_a_kink_is_skipped_not_ok() -> None:
    report = GradientChecker(m.Sequential(m.ReLU()), inputs=np.zeros((4, 3))).run()
    r = report["input"]
    assert r.checked == 0 and r.skipped == 12 and r.passed
    assert r.status == "skipped" and report.passed and report.unchecked == [r]
    text = str(report)
    assert "PASSED, but nothing was checked (1 of 1 tensors could not be checked: input)" in text
    assert "skipped" in text.splitlines()[3]
    ok = GradientChecker(m.Sequential(m.ReLU()), inputs=np.ones((4, 3))).run()
    assert ok["input"].status == "ok" and "could not be checked" not in str(ok)


def test_passing_tensor_reports_a_meaningful_relative_error() -> None:
    # BatchNorm after a Dense: dCost/d(bias row) is 0 up to round-off; its elements must not show
    # a large ratio of two noise-sized numbers
    net = m.Sequential(m.Dense(5, 4, rng=0), m.layers.BatchNorm1d(4), m.Tanh())
    report = GradientChecker(net, batch_size=6).run()
    assert report.passed
    for r in report.results:
        assert r.max_rel_error < 1e-6, str(report)
        # the columns refer to one element: its error measured against its own size (no floor) is
        # at least the reported (floored) relative error
        scale = max(abs(r.analytic), abs(r.numerical))
        assert abs(r.analytic - r.numerical) / max(scale, r.tolerance) >= r.max_rel_error * (1 - 1e-9)


def test_worst_element_columns_refer_to_one_failing_element() -> None:
    net = m.Sequential(m.Dense(3, 5, rng=0), m.Tanh(), BuggyDense(5, 4, rng=1, bug="bias_mean"))
    r = GradientChecker(net, mode="full").run()["2.W"]
    assert r.worst_index is not None and r.worst_index[0] == 0  # a failing (bias-row) element
    assert abs(r.analytic - r.numerical) > r.tolerance
    rel = abs(r.analytic - r.numerical) / max(abs(r.analytic), abs(r.numerical))
    assert r.max_rel_error == pytest.approx(rel, rel=1e-9) and r.max_rel_error == pytest.approx(0.75, rel=1e-6)


def test_directional_counts_are_labelled_as_directions() -> None:
    report = GradientChecker(m.Sequential(m.Dense(30, 20, rng=0)), mode="directional", directions=3).run()
    r = report["0.W"]
    assert r.mode == "directional" and r.unit == "directions" and r.checked == 3 and r.worst_index is None
    row = next(line for line in str(report).splitlines() if line.startswith("0.W"))
    assert "3 dir" in row
    assert report["input"].unit == "elements" or report["input"].mode == "directional"


def test_directional_fallback_is_a_note_not_a_problem() -> None:
    class OneElement(m.Dense):
        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = super().backward(g)
            self.W.grad[7, 3] += 1e-3
            return dx

    report = GradientChecker(m.Sequential(OneElement(30, 20, rng=1))).run()
    r = report["0.W"]
    assert r.mode == "directional->full" and not r.problems
    assert any("directional pass failed" in n for n in r.notes)
    assert "0.W: note: the directional pass failed" in str(report)


# ----------------------------------------------------------------------------- the training path


class ScaleBP(m.Layer):
    """y = x * s with its own backward_params (as Dense has); ``bug`` breaks backward_params only."""

    def __init__(self, n: int, bug: str = "") -> None:
        super().__init__()
        self.n = n
        self.s = m.Parameter(np.random.default_rng(0).uniform(0.5, 1.5, n))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.s.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.s.grad += (g * self._x).sum(axis=0)
        return g * self.s.data

    def backward_params(self, g: np.ndarray) -> None:
        if self.bug == "first-sample":
            self.s.grad += (g * self._x)[0]
        elif self.bug == "raise":
            raise RuntimeError("backward_params not written yet")
        else:
            self.s.grad += np.einsum("ni,ni->i", g, self._x)  # the same sum, computed differently

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.n,)


class DoubleDense(m.Dense):
    """y = 2 (x W + b), backward overridden to match; backward_params inherited from Dense (half)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * super().forward(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return super().backward(2 * g)


def test_backward_params_that_disagrees_with_backward_fails() -> None:
    x = np.random.default_rng(0).standard_normal((8, 3))
    net = m.Sequential(ScaleBP(3, bug="first-sample"), m.Dense(3, 2, rng=0))
    report = GradientChecker(net, inputs=x).run()  # backward itself is right: only fit's path is wrong
    assert not report.passed and [r.name for r in report.failed] == ["0.s"]
    problems = report["0.s"].problems
    assert any(p.startswith("backward_params disagrees with backward for the model itself (Sequential): "
                            "training would use wrong gradients") for p in problems), problems
    assert any("for '0' (ScaleBP): training would use wrong gradients" in p for p in problems), problems
    assert "training would use wrong gradients" in str(report)
    # the layer alone (the model is the layer)
    alone = GradientChecker(ScaleBP(3, bug="first-sample"), inputs=x).run()
    assert not alone["s"].passed and "for the model itself (ScaleBP)" in alone["s"].problems[0]


def test_backward_params_that_agrees_passes_and_raising_one_fails() -> None:
    x = np.random.default_rng(1).standard_normal((5, 3))
    report = GradientChecker(m.Sequential(ScaleBP(3), m.Tanh(), m.Dense(3, 2, rng=0)), inputs=x).run()
    assert report.passed and not any(r.problems or r.notes for r in report.results), str(report)
    broken = GradientChecker(m.Sequential(ScaleBP(3, bug="raise"), m.Dense(3, 2, rng=0)), inputs=x).run()
    assert not broken.passed
    assert any("raised RuntimeError: backward_params not written yet" in p for p in broken["0.s"].problems)


def test_inherited_backward_params_bypassed_by_training_is_a_note() -> None:
    # fit and Sequential.backward_params call backward here (parameter_backward); the inherited
    # Dense.backward_params is wrong for this class, which is worth saying but is not a failure
    net = m.Sequential(DoubleDense(3, 4, rng=0), m.Tanh(), m.Dense(4, 2, rng=1))
    report = GradientChecker(net).run()
    assert report.passed, str(report)
    notes = report["0.W"].notes
    assert any("DoubleDense overrides backward but inherits backward_params from Dense" in n for n in notes)
    assert "0.W: note: backward_params disagrees" in str(report)


class MeanBiasDense(m.Dense):
    """A Dense whose overridden backward averages the bias row's gradient over the batch (wrong: it sums);
    backward_params inherited from Dense (right)."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = super().backward(g)
        self.W.grad[0] -= g.sum(axis=0) - g.mean(axis=0)
        return dx


def test_inherited_backward_params_is_not_noted_beside_a_failing_backward() -> None:
    """The note doubled a beginner's report: backward is wrong, so of course the inherited backward_params, which
    training does not call, differs from it (teacher review S2)."""
    report = GradientChecker(m.Sequential(MeanBiasDense(3, 4, rng=0), m.Tanh(), m.Dense(4, 2, rng=1))).run()
    assert not report.passed and report["0.W"].status == "FAIL", str(report)
    assert "only row 0 (the absorbed bias row) is wrong" in (report["0.W"].diagnosis or ""), str(report)
    assert "backward_params disagrees" not in str(report), str(report)


def test_framework_layers_backward_params_agree() -> None:
    rng = np.random.default_rng(0)
    conv = m.Sequential(m.layers.Conv2D(2, 3, 3, padding=1, rng=0), m.ReLU(), m.layers.Flatten(),
                        m.Dense(48, 3, rng=1))
    report = GradientChecker(conv, inputs=rng.standard_normal((2, 2, 4, 4)), mode="sampled").run()
    assert report.passed and not any(r.problems or r.notes for r in report.results), str(report)


# ----------------------------------------------------------------------------- round-off estimate near kinks


class ScaledDx(m.Dense):
    """A Dense whose dx is (1 + rel) times the right one."""

    rel = 0.0

    def backward(self, g: np.ndarray) -> np.ndarray:
        return super().backward(g) * (1 + self.rel)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("near", [[3e-9], [-1e-9, 5e-9, 1.4e-8]])
def test_elements_near_a_kink_do_not_loosen_the_bound_for_the_rest(near: list[float], seed: int) -> None:
    # ReLU inputs a few 1e-9 from 0: the round-off probe (steps of 1e-9) crosses their kink; that
    # must not inflate the error bound of the whole input tensor and hide a 1e-4 (or 1e-6) bug
    x = np.random.default_rng(seed).standard_normal((4, 6))
    x.reshape(-1)[[9, 14, 20][: len(near)]] = near
    for rel in (0.0, 1e-4, 1e-6):
        dense = ScaledDx(6, 3, rng=seed)
        dense.rel = rel
        report = GradientChecker(m.Sequential(m.ReLU(), dense), inputs=x, seed=seed).run()
        r = report["input"]
        assert r.bound < 1e-8, str(report)
        if rel == 0.0:
            assert report.passed, str(report)
        else:
            assert not r.passed and r.failed >= 6, str(report)


def test_probe_noise_discards_a_kink_crossing() -> None:
    from minidl.gradcheck.numerics import noise_level, probe_noise

    rng = np.random.default_rng(0)
    j = np.arange(17.0)
    smooth = 1.0 + 1e-9 * j + rng.standard_normal(17) * 1e-16
    sigma, crossed = probe_noise(smooth, 0.0)
    assert not crossed and 3e-17 < sigma < 3e-16
    hinge = smooth + 1e-9 * np.maximum(j - 5.3, 0.0)  # a slope jump between points 5 and 6
    assert noise_level(hinge) > 1e-12  # the high-order estimate is inflated by 4 orders
    sigma, crossed = probe_noise(hinge, 0.0)
    assert crossed and sigma < 1e-15


# ----------------------------------------------------------------------------- exact ties in large tensors


def _zero_background(seed: int) -> np.ndarray:
    """Images that are 0 outside a random 6x6 centre: every pooling window there is a 4-way tie."""
    rng = np.random.default_rng(seed)
    return np.pad(rng.random((4, 1, 6, 6)), ((0, 0), (0, 0), (5, 5), (5, 5)))


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_ties_in_a_large_input_cost_a_sample_not_a_full_check(seed: int) -> None:
    x = _zero_background(seed)  # 4x1x16x16 = 1024 input elements > 2 * full_max
    clean = m.Sequential(m.layers.MaxPool2D(2), m.layers.Flatten(), m.Dense(64, 10, rng=seed))
    report = GradientChecker(clean, inputs=x, seed=seed, full_max=256).run()
    assert report.passed, str(report)
    r = report["input"]
    assert r.mode == "directional->sampled" and r.checked + r.skipped == 64 and r.checked > 0
    assert any("directional pass crossed a kink; 64 of 1024 elements" in n for n in r.notes)
    assert report.evaluations < 1000  # a full check of the input took ~7000
    # a 1e-6 relative bug in a smooth tensor of the same model is still caught (directional pass)
    buggy = m.Sequential(m.layers.MaxPool2D(2), m.layers.Flatten(), Scaled(64, 10, rng=seed))
    bad = GradientChecker(buggy, inputs=x, seed=seed, full_max=256).run()
    assert [t.name for t in bad.failed] == ["2.W"] and bad["2.W"].mode == "directional->full", str(bad)
    # and a wrong input gradient shows in the sample
    wrong = m.Sequential(m.layers.MaxPool2D(2), m.layers.Flatten(), ScaledDx(64, 10, rng=seed))
    wrong[2].rel = 1e-4
    assert not GradientChecker(wrong, inputs=x, seed=seed, full_max=256).run()["input"].passed



class KinkGate(m.Layer):
    """y = x * relu(W), x: (N, *W.shape); W[0] sits exactly at ReLU's kink (every random direction crosses
    it), and ``factor`` scales the gradient of the one element ``bug`` (flat index; 1.0: a correct backward)."""

    def __init__(self, shape: tuple[int, ...], seed: int, bug: int = 0, factor: float = 1.0) -> None:
        super().__init__()
        w = np.random.default_rng(seed).normal(size=shape)
        w.flat[bug] = 1.0
        w.flat[0] = 0.0
        self.W = m.Parameter(w)
        self.bug, self.factor = bug, factor

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * np.maximum(self.W.data, 0)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dW = (g * self._x).sum(axis=0) * (self.W.data > 0)
        dW.flat[self.bug] *= self.factor
        self.W.grad += dW
        return g * np.maximum(self.W.data, 0)


@pytest.mark.parametrize("shape, full_max, bug, seed", [((600,), 512, 301, 1), ((600,), 512, 599, 2),
                                                        ((10, 30), 200, 137, 3)])
def test_a_kink_in_a_tensor_of_at_most_twice_full_max_checks_every_element(shape, full_max, bug, seed) -> None:
    """The documented rule (``mode``): a tensor of more than ``full_max`` but at most ``2 * full_max``
    elements whose directional pass crosses a kink is checked element by element; a stratified sample
    there (a mutation review: the rule tested only the failing branch) passed a single wrong element."""
    size = int(np.prod(shape))
    assert full_max < size <= 2 * full_max
    x = np.random.default_rng(seed + 10).normal(size=(4, *shape))
    for factor in (1.5, 1.0):  # the one element's gradient 1.5 times too large, then right
        report = GradientChecker(KinkGate(shape, seed, bug, factor), inputs=x, seed=seed, full_max=full_max).run()
        r = report["W"]
        if factor == 1.0:
            assert report.passed, str(report)
        else:
            assert not report.passed and r.failed == 1, str(report)
            assert r.worst_index == np.unravel_index(bug, shape), str(report)
        assert r.mode == "directional->full", str(report)
        assert r.checked == size - 1 and r.skipped == 1, str(report)  # W[0], at the kink, is skipped
        assert any("the directional pass crossed a kink; every element was then checked" in n for n in r.notes)


# ----------------------------------------------------------------------------- contracts in words


class DoubleInPlace(m.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        x *= 2  # breaks the contract: modifies its input
        return x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return 2 * g


class ReluInPlace(m.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        np.maximum(x, 0, out=x)  # idempotent, so the cost is still repeatable
        self._mask = x > 0
        return x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self._mask


def test_forward_modifying_its_input_in_place_is_named() -> None:
    x = np.ones((4, 3))
    with pytest.raises(NonDeterministicError, match=r"layer '0' \(DoubleInPlace\): forward modified its input "
                                                     r"in place") as info:
        GradientChecker(m.Sequential(DoubleInPlace(), m.Dense(3, 2, rng=0)), inputs=x).run()
    assert "Randomness must come from" not in str(info.value)
    assert np.all(x == 1.0)  # the caller's array is untouched
    x = np.random.default_rng(0).standard_normal((4, 3))
    net = m.Sequential(m.Dense(3, 3, rng=1), ReluInPlace(), m.Dense(3, 2, rng=0))
    report = GradientChecker(net, inputs=x).run()
    assert not report.passed and all(r.passed for r in report.results)
    assert report.problems and "layer '1' (ReluInPlace): forward modified its input in place" in report.problems[0]
    assert "broken contract" in str(report).splitlines()[0]
    first = GradientChecker(m.Sequential(ReluInPlace(), m.Dense(3, 2, rng=0)), inputs=x).run()
    assert not first.passed and "'0' (ReluInPlace)" in first.problems[0]
    alone = GradientChecker(ReluInPlace(), inputs=x).run()  # the model itself: worded so
    assert not alone.passed
    assert alone.problems[0].startswith("the model itself (ReluInPlace): forward modified its input in place")


class TanhGradInPlace(m.Layer):
    """A right tanh whose backward multiplies its grad_output in place."""

    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, g: np.ndarray) -> np.ndarray:
        g *= 1 - self._y**2  # breaks the contract: modifies grad_output
        return g


def test_a_backward_modifying_its_grad_output_is_named() -> None:
    """Alone or in a Sequential the gradients come out right, so only the contract check sees it; in a
    Residual, which reuses grad_output for its skip path, they are wrong, and without the check the
    report blamed the model's dx (found by a review)."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    words = "backward modified its grad_output in place"
    alone = GradientChecker(TanhGradInPlace(), inputs=x).run()
    assert not alone.passed and all(r.passed for r in alone.results)
    assert alone.problems == [p for p in alone.problems if p.startswith("the model itself (TanhGradInPlace)")]
    assert words in alone.problems[0]
    chain = GradientChecker(m.Sequential(m.Dense(3, 3, rng=1), TanhGradInPlace(), m.Dense(3, 2, rng=2)),
                            inputs=x).run()
    assert not chain.passed and chain.problems[0].startswith(f"layer '1' (TanhGradInPlace): {words}")
    skip = GradientChecker(m.Residual(m.Sequential(m.Dense(3, 3, rng=1), TanhGradInPlace())), inputs=x).run()
    assert not skip.passed and skip.problems[0].startswith(f"layer 'block.1' (TanhGradInPlace): {words}")
    right = GradientChecker(m.Residual(m.Sequential(m.Dense(3, 3, rng=1), m.Tanh())), inputs=x).run()
    assert right.passed and not right.problems


class NormalisedInPlace(m.Layer):
    """y = x @ (W / |W| per column), the division done on W itself: idempotent, so the cost repeats."""

    def __init__(self, drift: bool = False) -> None:
        super().__init__()
        self.W = m.Parameter(np.random.default_rng(3).standard_normal((3, 2)))
        self.drift = drift

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.drift:
            self.W.data *= 1.001  # changes at every call
        else:
            self.W.data /= np.linalg.norm(self.W.data, axis=0)  # breaks the contract: changes a parameter
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.W.grad += self._x.T @ g  # (ignores the normalisation)
        return g @ self.W.data.T


def test_a_forward_changing_a_parameter_is_named() -> None:
    """The report used to say PASSED, with every element of W counted as a kink (found by a review)."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    report = GradientChecker(m.Sequential(m.Tanh(), NormalisedInPlace()), inputs=x).run()
    assert not report.passed
    assert report.problems[0].startswith("layer '1' (NormalisedInPlace): forward changed the parameter(s) '1.W'")
    with pytest.raises(NonDeterministicError, match=r"a forward changed the parameter\(s\) 'W', so evaluations "
                                                     r"at the same point gave different costs.*register_buffer"):
        GradientChecker(NormalisedInPlace(drift=True), inputs=x).run()
    assert GradientChecker(m.Sequential(m.BatchNorm1d(3), m.Dense(3, 2, rng=0)), inputs=x).run().passed


class Returns(m.Layer):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def forward(self, x: np.ndarray) -> object:
        if self.what == "tuple":
            return x, x[:, :1]
        return None  # a forgotten return

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


def test_a_forward_that_returns_no_array_and_a_positional_input_get_clear_errors() -> None:
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"Returns\.forward returned None, not an array \(a forward without a "
                                        r"return statement\?\)"):
        GradientChecker(Returns("none"), inputs=x).run()
    with pytest.raises(TypeError, match=r"Sequential\.forward returned 2 outputs .*Sequential\.backward was given "
                                        r"the tuple of their gradients .*takes a tuple of gradients, one per output"):
        GradientChecker(m.Sequential(m.Dense(3, 3, rng=0), Returns("tuple")), inputs=x).run()
    with pytest.raises(TypeError, match=r"loss must have .*the second positional argument is the loss: for the "
                                        r"input batch write GradientChecker\(model, inputs=x\)"):
        GradientChecker(m.Dense(3, 2), x)


class PlainWeight(m.Layer):
    """A weight kept as a plain array (not registered) beside a registered bias; a helper object holds a
    Parameter; a constant as a buffer and a private cache are fine."""

    def __init__(self) -> None:
        super().__init__()
        self.W = np.random.default_rng(0).standard_normal((3, 2))  # forgotten md.Parameter
        self.b = m.Parameter(np.zeros(2))
        self.extra = types.SimpleNamespace(scale=m.Parameter(np.ones(2)))  # invisible to registration
        self.register_buffer("offset", np.full(2, 0.5))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W + self.b.data * self.extra.scale.data + self.offset

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.b.grad += (g * self.extra.scale.data).sum(axis=0)
        return g @ self.W.T


def test_weights_the_check_cannot_see_get_a_note() -> None:
    """It passes (the registered tensors are right), but a student who forgot md.Parameter is told."""
    report = GradientChecker(m.Sequential(PlainWeight()), inputs=np.ones((4, 3))).run()
    assert report.passed
    # (the headline says it too: a student reading only "PASSED" believed the layer would learn; teacher review D2)
    assert report.plain_arrays == ["layer '0' (PlainWeight) 'W'"]
    assert str(report).startswith("Gradient check PASSED (not checked, and not trained: the plain array(s) layer "
                                  "'0' (PlainWeight) 'W' -- a weight is an md.Parameter, see the notes); cost: ")
    assert [r.name for r in report.results] == ["input", "0.b"]
    assert report.notes[:2] == [
        "layer '0' (PlainWeight) holds the float array(s) 'W', neither parameters nor buffers, which no pass of "
        "the check changed: the check does not vary them and optimizers do not train them. A weight is an "
        "md.Parameter; a constant or running statistic, self.register_buffer; a workspace, a private name "
        "(self._buf)",
        "layer '0' (PlainWeight): the attribute(s) 'extra' hold parameters or layers inside another object, "
        "where they are not registered: the check does not see them and optimizers do not train them (assign "
        "them to the layer itself, or use md.LayerList)"]
    assert "offset" not in str(report) and "_x" not in str(report)


class HalfDx(m.Layer):
    """Identity forward, but a backward that halves dx: every tensor before it fails."""

    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * 1.0

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * 0.5


def test_several_failing_tensors_point_to_check_layers() -> None:
    words = "several tensors fail: run with check_layers=True"
    net = m.Sequential(m.Dense(3, 4, rng=0), m.Tanh(), HalfDx(), m.Dense(4, 2, rng=1))
    report = GradientChecker(net).run()
    assert [r.passed for r in report.results] == [False, False, True]
    assert any(n.startswith(words) for n in report.notes)
    layered = GradientChecker(net, check_layers=True).run()  # then the sub-reports name the layer
    assert not any(n.startswith(words) for n in layered.notes) and "failing alone: 2" in str(layered)
    right = GradientChecker(m.Sequential(m.Dense(3, 4, rng=0), m.Tanh(), m.Dense(4, 2, rng=1))).run()
    assert right.passed and not any(n.startswith(words) for n in right.notes)


class GlobalNoise(m.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + np.random.rand(*x.shape)  # the global generator: cannot be replayed

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


def test_numpys_global_generator_is_left_where_it_was() -> None:
    np.random.seed(5)
    expected = np.random.rand(3)
    np.random.seed(5)
    with pytest.raises(NonDeterministicError):
        GradientChecker(GlobalNoise(), inputs=np.ones((2, 3))).run()
    np.testing.assert_array_equal(np.random.rand(3), expected)


class LazyWeight(m.Layer):
    """Fills a placeholder weight at its first forward (the shape known only then), as lazy layers do;
    keeps public caches (self.x, self.out) and a frozen parameter as running state."""

    def __init__(self, out: int) -> None:
        super().__init__()
        self.out = out
        self.W = m.Parameter(np.zeros((0, out)))
        self.count = m.Parameter(np.zeros(1), requires_grad=False)  # state, not trained
        self.owner = types.SimpleNamespace(layer=self)  # a helper pointing at a registered layer

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.W.data.size == 0:
            self.W.data = np.random.default_rng(0).standard_normal((x.shape[1], self.out))
            self.W.zero_grad()
        if self.training:
            self.count.data += 1
        self.x = x
        self.out_ = self.x @ self.W.data
        return self.out_

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.W.grad += self.x.T @ g
        return g @ self.W.data.T


@pytest.mark.parametrize("built", [False, True])
def test_lazy_weights_public_caches_and_state_in_a_frozen_parameter_are_no_alarm(built: bool) -> None:
    """The review of the contract checks: a placeholder filled at the first forward is not 'a forward
    changing a parameter', a frozen parameter may hold state, a public cache is not a forgotten weight,
    and a helper pointing at the layer itself hides nothing.  (A built layer used to crash the checker:
    its stale gradient lagged the new weight's shape in the snapshot's restore.)"""
    x = np.random.default_rng(1).standard_normal((4, 3))
    layer = LazyWeight(2)
    if built:
        layer(x)
    report = GradientChecker(m.Sequential(layer, m.Tanh()), inputs=x).run()
    assert report.passed and not report.problems and report.notes == []
    assert [(r.name, r.mode == "frozen") for r in report.results] == [("input", False), ("0.W", False),
                                                                      ("0.count", True)]


class LazyPlainWeight(m.Layer):
    """A weight made (as a plain array: a forgotten md.Parameter) in __init__ or at the first forward;
    a public cache of the input beside it."""

    def __init__(self, lazy: bool) -> None:
        super().__init__()
        self.W = None if lazy else np.random.default_rng(0).standard_normal((3, 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.W is None:
            self.W = np.random.default_rng(0).standard_normal((x.shape[1], 2))
        self.x = x  # a cache: assigned by every forward, never named
        return x @ self.W

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g @ self.W.T


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("batch", [np.ones((4, 3)), np.random.default_rng(0).standard_normal((1, 3))])
def test_a_plain_weight_gets_the_note_and_a_public_cache_does_not(lazy: bool, batch: np.ndarray) -> None:
    """A cache is what the checker's recorded forwards assign (on their own copies of x); values are no
    guide: with a batch of one or of ones the reversed batch caches the same values (found by a review)."""
    layer = LazyPlainWeight(lazy)
    layer(batch)  # as a user would have run it before checking
    report = GradientChecker(layer, inputs=batch).run()
    assert report.passed and [r.name for r in report.results] == ["input"]
    # (and with one sample, the note that a sum/mean mix-up over the batch cannot show)
    assert len(report.notes) == 1 + (batch.shape[0] == 1)
    assert report.notes[0].startswith("the model itself (LazyPlainWeight) holds the float array(s) 'W', neither")
    assert all(n.startswith("the inputs hold one sample") for n in report.notes[1:])


class Gate(m.Layer):
    """Multiplies by a mask its parent sets on it; keeps a workspace filled in place and a cache made in
    backward, all public: none of them a weight."""

    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self.buf = np.zeros((4, 3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        np.multiply(x, self.mask, out=self.buf)
        return self.buf.copy()

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.dx = g * self.mask
        return self.dx


class Gated(m.Model):
    def __init__(self) -> None:
        super().__init__()
        self.dense, self.gate = m.Dense(3, 3, rng=0), Gate()

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = self.dense(x)
        self.gate.mask = (h > 0).astype(h.dtype)  # a cache the parent sets on its sub-layer
        return self.gate(h)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return self.dense.backward(self.gate.backward(g))


def test_caches_set_by_a_parent_in_backward_or_in_place_are_not_called_weights() -> None:
    """Found by a review of the plain-weight note: each of these was named a forgotten weight."""
    report = GradientChecker(Gated(), inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert report.passed and report.notes == []
    layered = GradientChecker(Gated(), inputs=np.random.default_rng(0).standard_normal((4, 3)),
                              check_layers=True).run()  # alone, the gate's mask is never set again
    assert layered.passed and "holds the float array" not in str(layered)


def test_a_frozen_parameter_changed_by_forward_is_named_when_it_breaks_determinism() -> None:
    class Counter(m.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.seen = m.Parameter(np.zeros(1), requires_grad=False)  # state in a frozen parameter

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.seen.data += 1
            return x * self.seen.data

        def backward(self, g: np.ndarray) -> np.ndarray:
            return g * self.seen.data

    with pytest.raises(NonDeterministicError, match=r"a forward changed the parameter\(s\) 'seen', so "
                                                     r"evaluations at the same point.*register_buffer"):
        GradientChecker(Counter(), inputs=np.ones((2, 3))).run()


class Steps(m.Layer):
    """A step counter in a frozen parameter indexes a table: the fifth run would index past its end."""

    def __init__(self) -> None:
        super().__init__()
        self.step = m.Parameter(np.zeros(1), requires_grad=False)
        self.table = m.Parameter(np.arange(1.0, 5.0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.step.data += 1
        return x * self.table.data[int(self.step.data[0]) % 4 + 4 * (self.step.data[0] > 4)]

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


def test_a_run_that_fails_while_blaming_a_parameter_leaves_the_non_determinism_error() -> None:
    """The run that looks for changed parameters fails here (an index past the table): what it changed
    before failing is still named, and its IndexError does not replace the message."""
    with pytest.raises(NonDeterministicError, match=r"a forward changed the parameter\(s\) 'step'"):
        GradientChecker(Steps(), inputs=np.ones((2, 3))).run()


class TwoHeads(m.Model):
    def __init__(self, second: int = 2) -> None:
        super().__init__()
        self.a, self.b = m.Dense(3, 2, rng=0), m.Dense(3, second, rng=1)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.a(x), self.b(x)

    def backward(self, g: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return self.a.backward(g[0]) + self.b.backward(g[1])


class PairSquares:
    """A loss over the pair of outputs (duck-typed: forward and backward)."""

    def forward(self, y_pred: tuple[np.ndarray, np.ndarray], y_true: np.ndarray) -> float:
        self._d = (y_pred[0] - y_true[0], y_pred[1] - y_true[1])
        return float(sum((d**2).sum() for d in self._d))

    def backward(self) -> tuple[np.ndarray, np.ndarray]:
        return (2 * self._d[0], 2 * self._d[1])


class LabelsAndBoxes(PairSquares):
    """Its first output scored against integer labels, drawn by its own random_targets."""

    def forward(self, y_pred: tuple[np.ndarray, np.ndarray], y_true: tuple[np.ndarray, np.ndarray]) -> float:
        assert y_true[0].dtype.kind == "i"
        return super().forward(y_pred, (y_pred[0] * 0 + y_true[0][:, None], y_true[1]))

    def random_targets(self, y_pred: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> tuple:
        return rng.integers(0, 2, len(y_pred[0])), rng.standard_normal(y_pred[1].shape)


class PairMSE(m.MSELoss):
    """A built-in loss subclassed for a pair of outputs; its inherited random_targets reads one array."""

    def forward(self, y_pred: tuple[np.ndarray, np.ndarray], y_true: tuple[np.ndarray, np.ndarray]) -> float:
        self._d = (y_pred[0] - y_true[0], y_pred[1] - y_true[1])
        return float(sum((d**2).sum() for d in self._d))

    def backward(self) -> tuple[np.ndarray, np.ndarray]:
        return (2 * self._d[0], 2 * self._d[1])


def test_several_outputs_take_a_loss_s_own_random_targets() -> None:
    assert GradientChecker(TwoHeads(5), LabelsAndBoxes(), inputs=np.ones((4, 3))).run().passed
    # a subclass of a built-in loss that does not say: N(0, 1) targets, one per output
    assert GradientChecker(TwoHeads(5), PairMSE(), inputs=np.ones((4, 3))).run().passed


@pytest.mark.parametrize("second", [2, 5])  # (5: outputs of two widths, which no single array can hold)
def test_a_tuple_output_with_a_loss_that_takes_it_is_checked_with_or_without_targets(second: int) -> None:
    x = np.random.default_rng(1).standard_normal((4, 3))
    rng = np.random.default_rng(2)
    targets = (rng.standard_normal((4, 2)), rng.standard_normal((4, second)))
    assert GradientChecker(TwoHeads(second), PairSquares(), inputs=x, targets=targets).run().passed
    report = GradientChecker(TwoHeads(second), PairSquares(), inputs=x).run()  # the targets drawn
    assert report.passed and [r.name for r in report.results] == ["input", "a.W", "b.W"]


class NoSuperInit(m.Layer):
    def __init__(self) -> None:  # forgets super().__init__()
        self.k = 2.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.k

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self.k


def test_a_layer_that_did_not_call_super_init_is_told_so() -> None:
    layer = NoSuperInit()
    np.testing.assert_array_equal(layer(np.ones(2)), [2.0, 2.0])  # it runs, but has no registries
    words = r"NoSuperInit\.__init__ did not call super\(\)\.__init__\(\), so the layer has no registries"
    with pytest.raises(AttributeError, match=words):
        GradientChecker(layer, inputs=np.ones((2, 3))).run()
    for walk in (layer.parameters, layer.state_dict, lambda: m.Sequential(m.Dense(3, 3), layer).parameters()):
        with pytest.raises(AttributeError, match=words):
            walk()


class PlainRunningMean(m.Layer):
    """Subtracts a running mean kept as a plain attribute (not a buffer): it moves at every call."""

    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.seen = 0.9 * self.seen + 0.1 * float(x.mean())
        return x - self.seen

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


def test_state_changing_between_calls_is_told_to_become_a_buffer() -> None:
    with pytest.raises(NonDeterministicError, match=r"the model itself \(PlainRunningMean\): the same input gave "
                                                     r"a different output.*self\.register_buffer\(name, array\)"):
        GradientChecker(PlainRunningMean(), inputs=np.ones((2, 3))).run()


class StaleCopy(m.Layer):
    """Forward multiplies by a copy of ``s`` taken in __init__: the cost does not depend on ``s``."""

    def __init__(self) -> None:
        super().__init__()
        self.s = m.Parameter(np.full(3, 2.0))
        self._s = self.s.data.copy()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self._s

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.s.grad += (g * self._x).sum(axis=0)
        return g * self._s


def test_parameter_the_cost_does_not_depend_on_is_diagnosed() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3))
    r = GradientChecker(StaleCopy(), inputs=x).run()["s"]
    assert not r.passed and r.numerical == 0.0
    assert r.diagnosis is not None and r.diagnosis.startswith("the cost does not depend on this parameter")
    assert "stale copy" in r.diagnosis


class Embedding(m.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.E = m.Parameter(np.random.default_rng(0).standard_normal((5, 3)))

    def forward(self, i: np.ndarray) -> np.ndarray:
        self._i = i
        return self.E.data[i]

    def backward(self, g: np.ndarray) -> None:
        np.add.at(self.E.grad, self._i, g)


def test_integer_input_not_checked_is_noted() -> None:
    report = GradientChecker(Embedding(), inputs=np.array([[0, 1], [2, 2]])).run()
    assert report.passed and [r.name for r in report.results] == ["E"]
    assert any("the input is an array of int64, not a float array: dCost/dinput is not checked" in n
               for n in report.notes)
    assert "not checked" in str(report)
    quiet = GradientChecker(Embedding(), inputs=np.array([[0, 1]]), check_input=False).run()
    # (its one note: a batch of one sample cannot show a sum/mean mix-up over the batch)
    assert [n for n in quiet.notes if not n.startswith("the inputs hold one sample")] == []


def test_a_contract_problem_alone_does_not_trigger_a_drill_down() -> None:
    class BigScale(ScaleBP):
        pass

    # 600 > full_max elements: directional; the backward_params problem fails the tensor by itself
    report = GradientChecker(BigScale(600, bug="first-sample"), inputs=np.ones((2, 600)) * 0.5).run()
    r = report["s"]
    assert not r.passed and r.mode == "directional" and r.failed == 0 and r.problems
    assert report.evaluations < 200


class _IgnoresOverwrite(m.Layer):
    """y = x @ W, whose backward takes grad_target() but always adds (a misuse of the protocol)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = m.Parameter(np.random.default_rng(0).normal(size=(3, 2)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        dW, _ = self.W.grad_target()
        dW += self._x.T @ grad_output  # wrong right after zero_grad: the array holds old values
        return grad_output @ self.W.data.T


def test_checker_catches_a_backward_that_adds_into_a_stale_gradient() -> None:
    report = GradientChecker(_IgnoresOverwrite(), inputs=np.random.default_rng(1).normal(size=(4, 3))).run()
    assert not report.passed
    (w,) = [r for r in report.results if r.name == "W"]
    assert not w.passed
    assert "grad_target()" in str(report)


def test_checker_leaves_a_zeroed_model_exactly_as_it_was() -> None:
    model = m.Sequential(m.Dense(3, 4, rng=0), m.Tanh(), m.Dense(4, 2, rng=1))
    x = np.random.default_rng(2).normal(size=(5, 3))
    model.backward(np.ones_like(model(x)))
    model.zero_grad()  # marked zero, the arrays still hold the old values
    before = [(p._grad, p._grad.copy()) for p in model.parameters()]
    assert GradientChecker(model, inputs=x).run().passed
    for p, (array, values) in zip(model.parameters(), before, strict=True):
        assert p._grad is array and p._grad_is_stale and np.array_equal(p._grad, values)


class _InfDx(m.Layer):
    """y = x * w, correct; its dx is g * y / x: inf where x = 0 (a wrong, non-finite gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = m.Parameter(np.array([0.5, 1.0, 1.5]))

    def forward(self, x):
        self._x = x
        self._y = x * self.w.data
        return self._y

    def backward(self, g):
        self.w.grad += (g * self._x).sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (self._y + 1e-300) / self._x


class _Pow(m.Layer):
    """y = x ** 1.5 (x >= 0), with dx two thirds of the truth: wrong everywhere."""

    def forward(self, x):
        self._x = x
        with np.errstate(invalid="ignore"):
            return x ** 1.5

    def backward(self, g):
        return g * self._x ** 0.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf in the checker's arithmetic: reported in the table
def test_non_finite_values_never_count_as_agreement() -> None:
    """A NaN/inf analytic value, or a cost that is NaN at the probe points, used to pass (every
    comparison with NaN is False); they fail now, and a note says when the cost was not finite."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    x[1, 2] = 0.0
    report = GradientChecker(_InfDx(), inputs=x).run()
    assert not report.passed and report["input"].failed >= 1 and report["w"].passed
    assert report["input"].max_abs_error == math.inf
    x = np.abs(np.random.default_rng(0).standard_normal((4, 3)))
    assert not GradientChecker(_Pow(), inputs=x).run().passed  # the bug, away from 0
    x[2, 0] = 0.0  # at the edge of the domain the probes see NaN: no element can be judged, none passes
    with np.errstate(invalid="ignore"):
        report = GradientChecker(_Pow(), inputs=x).run()
    assert not report.passed and report["input"].failed == 12
    assert any("1 element(s) could not be judged: the cost was NaN/inf at their probes" in note
               for note in report["input"].notes)


class _Swap(m.Layer):
    """x * w over 600 features, w[0]'s gradient credited to w[1]: +e on one, -e on the other."""

    def __init__(self) -> None:
        super().__init__()
        self.w = m.Parameter(np.random.default_rng(0).standard_normal(600))

    def forward(self, x):
        self._x = x
        return x * self.w.data

    def backward(self, g):
        gw = (g * self._x).sum(0)
        gw[1] += gw[0]
        gw[0] = 0.0
        self.w.grad += gw
        return g * self.w.data

    def input_shape_hint(self):
        return (600,)


@pytest.mark.parametrize("seed", [3, 7, 13, 15, 18, 0, 1])
def test_directional_pass_sees_errors_that_cancel_under_plus_minus_one(seed) -> None:
    """With +-1 directions the two equal and opposite errors cancelled whenever their signs matched:
    this bug passed on seeds 3, 7, 13, 15 and 18 of 20.  Random magnitudes leave no exact cancellation."""
    report = GradientChecker(_Swap(), seed=seed).run()
    assert not report.passed and not report["w"].passed
    assert report["w"].failed >= 1


class _RowBug(m.Layer):
    """y = 2x; dx wrong (x 1.5) in the given samples, or in the given features of every sample."""

    def __init__(self, rows=(), cols=()) -> None:
        super().__init__()
        self.rows, self.cols = list(rows), list(cols)

    def forward(self, x):
        self._shape = x.shape
        return 2 * x

    def backward(self, g):
        dx = 2 * g
        dx[self.rows] *= 1.5
        dx[:, self.cols] *= 1.5
        return dx


def test_the_diagnosis_names_wrong_samples_only_when_others_are_known_right() -> None:
    x = np.random.default_rng(0).normal(size=(8, 3))
    report = GradientChecker(_RowBug(rows=[2, 5]), inputs=x).run()
    assert "only samples [2, 5] of the batch are wrong, samples [0, 1, 3, 4, 6, 7] are right" in \
        str(report["input"].diagnosis)
    # every sample wrong in features 0..3, checked on a sample of elements: no sample is known right,
    # so the diagnosis must not blame the sampled rows (it used to list the rows that were sampled)
    x = np.random.default_rng(1).normal(size=(16, 8))
    report = GradientChecker(_RowBug(cols=[0, 1, 2, 3]), inputs=x, mode="sampled").run()
    assert not report.passed
    assert "only samples" not in str(report["input"].diagnosis)


class CacheOnce(m.Layer):
    """A bug: the input is cached at the first forward only."""

    def __init__(self) -> None:
        super().__init__()
        self.W = m.Parameter(np.random.default_rng(0).standard_normal((5, 3)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._x is None:
            self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.W.grad += self._x.T @ grad_output
        return grad_output @ self.W.data.T


class MaskByShape(m.Layer):
    """A bug: the ReLU's forward is right, but the mask its backward uses is made again only when
    the shape changes."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._mask is None or self._mask.shape != x.shape:
            self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self._mask


@pytest.mark.parametrize("make", [CacheOnce, lambda: m.Sequential(m.Dense(4, 5, rng=0), MaskByShape())])
def test_a_cache_kept_from_an_earlier_forward_fails(make):
    """Every forward of the check used the same x, so a cache made once (or again only on a new shape)
    was always right there, and wrong from a training run's second batch on.  The first forward now
    sees the batch reversed."""
    x = np.random.default_rng(1).standard_normal((4, 5 if make is CacheOnce else 4))
    report = m.GradientChecker(make(), inputs=x).run()
    assert not report.passed
    assert report.failed, str(report)


def test_a_forward_set_on_the_instance_survives_the_check():
    """The recorder deleted the instance's own forward on exit: NotImplementedError, or the class's."""
    class Act(m.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.forward = self._sin  # type: ignore[method-assign]
            self.backward = self._dsin  # type: ignore[method-assign]

        def _sin(self, x: np.ndarray) -> np.ndarray:
            self._x = x
            return np.sin(x)

        def _dsin(self, g: np.ndarray) -> np.ndarray:
            return g * np.cos(self._x)

    layer = Act()
    report = m.GradientChecker(layer, inputs=np.linspace(-2, 2, 20).reshape(4, 5)).run()
    assert report.passed, str(report)
    assert layer.__dict__["forward"] == layer._sin


def test_a_tensor_checked_only_on_a_sample_says_so_in_the_headline():
    """A large input with most elements at ReLU kinks was sampled (24 of 6272 elements off the kinks)
    under a plain 'PASSED'."""
    x = np.zeros((8, 28, 28))
    x[:, 8:20, 8:20] = np.random.default_rng(0).standard_normal((8, 12, 12))
    report = m.GradientChecker(m.Sequential(m.ReLU(), m.Tanh()), inputs=x).run()
    sampled = [r for r in report.results if r.mode == "directional->sampled"]
    assert report.passed and sampled
    assert f"only partly checked: input {sampled[0].checked} of 6272 elements" in str(report).splitlines()[0]


class _Log(m.Layer):
    def forward(self, x):
        self._x = x
        return np.log(x)

    def backward(self, g):
        return g / self._x


class _LogOff(_Log):
    def backward(self, g):
        return g / self._x * 1.001


@pytest.mark.parametrize("low", [1e-12, 1e-9, 1e-6, 3e-5, 1e-3])
def test_a_function_near_the_edge_of_its_domain_is_judged_with_a_relative_step(low) -> None:
    """log(x) for x below the step (at least eps = 1e-4 absolute) failed 20 of 20 with inf errors: the
    probes left the domain.  Such elements are probed again with the relative step eps * |x| (and the
    round-off probe with 1e-9 * |x|): the right backward passes, one off by 0.1% still fails."""
    x = np.random.default_rng(0).uniform(low, 10 * low, (4, 5))
    with np.errstate(invalid="ignore", divide="ignore"):
        good = GradientChecker(_Log(), inputs=x).run()
        bad = GradientChecker(_LogOff(), inputs=x).run()
    assert good.passed, str(good)
    assert not bad.passed and bad["input"].failed >= 1  # (how many depends on the round-off bound: see docs)
    assert "1.001 x numerical" in bad["input"].diagnosis or "(1 + 1.00e-03) x numerical" in bad["input"].diagnosis
    assert (low >= 1e-4) or any("relative step eps * |w|" in note for note in good["input"].notes)


def test_a_backward_returning_none_is_not_called_a_wrong_mask_in_dx() -> None:
    """'only the input gradient is wrong ... a missing transpose, a wrong mask or factor in dx' was
    added when backward returned None, where nothing was compared."""
    class NoDx(m.Dense):
        def backward(self, grad_output):
            super().backward(grad_output)
            return None

    report = GradientChecker(NoDx(3, 2, rng=0), inputs=np.ones((2, 3))).run()
    assert not report.passed and "backward returned None" in str(report)
    assert "only the input gradient is wrong" not in str(report)


def test_a_failing_huge_tensor_is_localised_on_a_sample_not_element_by_element() -> None:
    """A failing Dense(1000, 1000) drilled down through a million elements: an hour of evaluations."""
    class Off(m.Dense):
        def backward(self, g):
            dx = super().backward(g)
            self.W.grad[1:] *= 1.01
            return dx

    report = GradientChecker(Off(200, 50, rng=0), inputs=np.random.default_rng(0).normal(size=(3, 200)),
                             check_input=False).run()
    w = report["W"]
    assert not report.passed and w.mode == "directional->sampled" and w.checked == 2048
    assert report.evaluations < 20_000  # not ~10 per element of 10050


class _XLogX(m.Layer):
    """x log x, with a backward that returns 0 for x < 1e-6 (the truth there is log x + 1, about -29)."""

    def forward(self, x):
        self._x = x
        return x * np.log(x)

    def backward(self, g):
        return g * np.where(self._x < 1e-6, 0.0, np.log(self._x) + 1)


def test_a_relative_step_too_small_to_prove_anything_does_not_pass() -> None:
    """With x ~ 1e-13 next to x ~ 1 the cost's round-off at a step of 1e-17 was larger than the slope,
    so any analytic value passed there (an all-zero backward included)."""
    x = np.full((4, 5), 1e-13)
    x[:, 0] = 1.0
    x *= np.random.default_rng(0).uniform(1, 2, x.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        report = GradientChecker(_XLogX(), inputs=x).run()
    assert not report.passed
    assert any("could not be judged even so" in note for note in report["input"].notes)


def test_near_the_domain_edge_inside_a_model_too() -> None:
    """A Dense after the log refused the probe's NaN (NonFiniteError) before the retry could happen."""
    x = np.random.default_rng(0).uniform(1e-6, 1e-5, (4, 5))
    with np.errstate(invalid="ignore", divide="ignore"):
        good = GradientChecker(m.Sequential(_Log(), m.Dense(5, 3, rng=0)), inputs=x).run()
        bad = GradientChecker(m.Sequential(_LogOff(), m.Dense(5, 3, rng=0)), inputs=x).run()
    assert good.passed, str(good)
    assert not bad.passed and bad["input"].failed == 20


def test_a_sampled_mode_that_checked_everything_is_not_partial() -> None:
    report = GradientChecker(m.Dense(3, 2, rng=0), inputs=np.ones((2, 3)), mode="sampled").run()
    assert str(report).splitlines()[0].startswith("Gradient check PASSED;")


class _MSEOverN(m.Loss):
    """Mean squared error whose backward divides by N instead of N * C: every gradient C times too large."""

    def forward(self, y_pred, y_true):
        self._d = y_pred - y_true
        return float((self._d**2).mean())

    def backward(self):
        return 2 * self._d / self._d.shape[0]


def test_a_factor_every_tensor_shares_is_blamed_on_what_they_share() -> None:
    """A wrong loss backward showed as the same factor on every tensor, each explained on its own."""
    rng = np.random.default_rng(0)
    model = m.Sequential(m.Dense(4, 5, rng=0), m.Tanh(), m.Dense(5, 3, rng=1))
    report = GradientChecker(model, loss=_MSEOverN(), inputs=rng.normal(size=(6, 4)),
                             targets=rng.normal(size=(6, 3))).run()
    assert not report.passed and len(report.failed) == 3
    assert any("every tensor is off by the same factor (analytic = 3 x numerical)" in n for n in report.notes)
    # one tensor wrong: no such note
    class Off(m.Dense):
        def backward(self, g):
            dx = super().backward(g)
            self.W.grad *= 3
            return dx

    report = GradientChecker(m.Sequential(Off(4, 5, rng=0), m.Tanh(), m.Dense(5, 3, rng=1)),
                             inputs=rng.normal(size=(6, 4))).run()
    assert not report.passed and not any("same factor" in n for n in report.notes)
    # a middle layer doubling grad_output: the tensors before it share the factor, the last Dense is
    # right, so the loss is not to blame and no note says it is
    class Doubling(m.Tanh):
        def backward(self, g):
            return 2 * super().backward(g)

    report = GradientChecker(m.Sequential(m.Dense(4, 5, rng=0), Doubling(), m.Dense(5, 3, rng=1)),
                             inputs=rng.normal(size=(6, 4))).run()
    assert not report.passed and report["2.W"].passed and not any("same factor" in n for n in report.notes)


# ----------------------------------------------------------------------------- swapped gradients


class _Gated(m.Layer):
    """y = tanh(x @ W1 + b1) * (x @ W2 + b2): two weights and two biases of one shape each.

    ``bug``: "swap_W" / "swap_b" writes each gradient into the other's .grad, "one_way" writes W1's
    gradient into W2's .grad and none into W1's, "both" W1's into both, "factor2" doubles W2's."""

    def __init__(self, n: int, k: int, bug: str = "", seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.n = n
        self.W1 = m.Parameter(rng.standard_normal((n, k)) * 0.5)
        self.W2 = m.Parameter(rng.standard_normal((n, k)) * 0.5)
        self.b1 = m.Parameter(rng.standard_normal(k) * 0.1)
        self.b2 = m.Parameter(rng.standard_normal(k) * 0.1)
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        self._t = np.tanh(x @ self.W1.data + self.b1.data)
        self._u = x @ self.W2.data + self.b2.data
        return self._t * self._u

    def backward(self, g: np.ndarray) -> np.ndarray:
        d1 = g * self._u * (1 - self._t**2)
        d2 = g * self._t
        gW1, gW2, gb1, gb2 = self._x.T @ d1, self._x.T @ d2, d1.sum(axis=0), d2.sum(axis=0)
        if self.bug == "swap_W":
            gW1, gW2 = gW2, gW1
        elif self.bug == "swap_b":
            gb1, gb2 = gb2, gb1
        elif self.bug == "one_way":
            gW1, gW2 = 0 * gW1, gW1
        elif self.bug == "both":
            gW2 = gW1
        elif self.bug == "factor2":
            gW2 = 2 * gW2
        self.W1.grad += gW1
        self.W2.grad += gW2
        self.b1.grad += gb1
        self.b2.grad += gb2
        return d1 @ self.W1.data.T + d2 @ self.W2.data.T

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.n,)


class _SumOfTwo(m.Layer):
    """y = x @ (W1 + W2): the two gradients are equal, so writing each into the other's .grad is right."""

    def __init__(self, swap: bool) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.W1 = m.Parameter(rng.standard_normal((3, 2)))
        self.W2 = m.Parameter(rng.standard_normal((3, 2)))
        self.swap = swap

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ (self.W1.data + self.W2.data)

    def backward(self, g: np.ndarray) -> np.ndarray:
        gw = self._x.T @ g
        first, second = (self.W2, self.W1) if self.swap else (self.W1, self.W2)
        first.grad += gw
        second.grad += gw.copy()
        return g @ (self.W1.data + self.W2.data).T

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


class _TanhTimesW(m.Layer):
    """y = tanh(x) * W, W of the batch's shape (4, 3); ``bug`` "dx" returns W's gradient as dx, "swap"
    also writes dx into W's .grad."""

    def __init__(self, bug: str = "") -> None:
        super().__init__()
        self.W = m.Parameter(np.random.default_rng(0).standard_normal((4, 3)))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._t = np.tanh(x)
        return self._t * self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        gw, dx = g * self._t, g * self.W.data * (1 - self._t**2)
        if self.bug == "dx":
            dx = gw
        elif self.bug == "swap":
            gw, dx = dx, gw
        self.W.grad += gw
        return dx

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("n", "k"), [(3, 2), (4, 4), (2, 5), (1, 3)])
@pytest.mark.parametrize("which", ["W", "b"])
def test_swapped_gradients_are_diagnosed_on_both_tensors(which: str, n: int, k: int, seed: int) -> None:
    net = m.Sequential(m.Dense(3, n, rng=seed), m.Tanh(), _Gated(n, k, bug=f"swap_{which}", seed=seed))
    report = GradientChecker(net, seed=seed).run()
    a, b = f"2.{which}1", f"2.{which}2"
    assert not report.passed and {r.name for r in report.failed} == {a, b}, str(report)
    for this, other in ((a, b), (b, a)):
        assert report[this].diagnosis == (
            f"the analytic gradient of '{this}' equals the numerical gradient of '{other}' (and vice versa): "
            "the two gradients are swapped in backward (each written into the other's .grad)"), str(report)
    assert all(r.diagnosis is None for r in report.results if r.passed)
    assert f"{a}: diagnosis: the analytic gradient of '{a}' equals the numerical gradient of '{b}'" in str(report)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_gradient_written_into_the_wrong_parameter_is_diagnosed(seed: int) -> None:
    # W1's gradient into W2's .grad, none into W1's: W2 names W1, W1 was never written
    report = GradientChecker(_Gated(3, 2, bug="one_way", seed=seed), seed=seed).run()
    assert {r.name for r in report.failed} == {"W1", "W2"}
    assert report["W2"].diagnosis == ("the analytic gradient of 'W2' equals the numerical gradient of 'W1': "
                                      "backward writes the gradient of 'W1' into the .grad of 'W2'")
    assert "backward never wrote it" in str(report["W1"].diagnosis)
    # W1's gradient into both: W1 passes, W2 names it
    report = GradientChecker(_Gated(3, 2, bug="both", seed=seed), seed=seed).run()
    assert [r.name for r in report.failed] == ["W2"] and report["W1"].diagnosis is None
    assert "equals the numerical gradient of 'W1': backward writes" in str(report["W2"].diagnosis)


def test_no_swap_diagnosis_without_a_swap() -> None:
    assert GradientChecker(_Gated(3, 2)).run().passed
    # an unrelated bug in one of two same-shaped tensors
    report = GradientChecker(_Gated(3, 2, bug="factor2")).run()
    assert [r.name for r in report.failed] == ["W2"]
    assert str(report["W2"].diagnosis).startswith("constant factor over the whole tensor: analytic = 2 x")
    assert "numerical gradient of" not in str(report)
    # equal gradients: swapping them changes nothing, and nothing is said
    for swap in (False, True):
        report = GradientChecker(_SumOfTwo(swap)).run()
        assert report.passed and all(r.diagnosis is None for r in report.results), str(report)


def test_a_parameter_gradient_returned_as_dx_is_diagnosed() -> None:
    report = GradientChecker(_TanhTimesW("dx")).run()
    assert [r.name for r in report.failed] == ["input"]
    assert report["input"].diagnosis == ("the analytic dCost/dinput equals the numerical gradient of 'W': "
                                         "backward returns the gradient of 'W' as dx")
    for mode in ("full", "sampled"):
        report = GradientChecker(_TanhTimesW("swap"), mode=mode, samples=5).run()
        assert {r.name for r in report.failed} == {"input", "W"}
        for r in report.results:
            assert "(and vice versa): dx and the gradient of 'W' are swapped in backward" in str(r.diagnosis)
    # directional results hold no per-element values to compare: no such diagnosis
    report = GradientChecker(_TanhTimesW("swap"), mode="directional").run()
    assert not report.passed and "numerical gradient of" not in str(report)


class _LogSum(m.Layer):
    """y = x * log(a + b + c), right; a + b + c = 3e-4, so a's relative step (|a| > 1) leaves the
    logarithm's domain (a cannot be judged) while b's (b = 0, absolute step) does not."""

    def __init__(self) -> None:
        super().__init__()
        self.a = m.Parameter(np.array([5.0, 6.0, 7.0]))
        self.b = m.Parameter(np.zeros(3))
        self.c = np.array([-4.9997, -5.9997, -6.9997])

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x, self._s = x, self.a.data + self.b.data + self.c
        return x * np.log(self._s)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        ds = (grad_output * self._x).sum(axis=0) / self._s
        self.a.grad += ds
        self.b.grad += ds
        return grad_output * np.log(self._s)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the probes leave the logarithm's domain
def test_no_swap_is_claimed_for_elements_that_could_not_be_judged() -> None:
    report = GradientChecker(_LogSum()).run()
    assert "could not be judged" in " ".join(report["a"].notes)
    assert not any("equals the numerical gradient" in (r.diagnosis or "") for r in report.results)


class _Shifted(m.Layer):
    """y = tanh((x + P) @ W): dCost/dx equals dCost/dP exactly; dx carries a tiny error of its own."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.P = m.Parameter(0.01 * rng.standard_normal((4, 3)))
        self.W = m.Parameter(0.05 * rng.standard_normal((3, 2)))
        self.rel = 1e-7 * rng.standard_normal((4, 3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._z = x + self.P.data
        self._y = np.tanh(self._z @ self.W.data)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        d = grad_output * (1 - self._y**2)
        dz = d @ self.W.data.T
        self.P.grad += dz
        self.W.grad += self._z.T @ d
        return dz * (1 + self.rel)  # a small error of dx's own, not P's gradient


@pytest.mark.parametrize("seed", range(8))
def test_legitimately_equal_gradients_with_an_own_error_are_not_called_swapped(seed: int) -> None:
    """The input's and P's gradients are equal by construction, and P is checked with a looser tolerance:
    dx's own small error fell inside P's tolerance and was diagnosed as 'returns the gradient of P'."""
    x = np.random.default_rng(100 + seed).uniform(0, 255, (4, 3))
    report = GradientChecker(_Shifted(seed), inputs=x, seed=seed).run()
    assert report["P"].passed and report["W"].passed
    assert "gradient of 'P'" not in (report["input"].diagnosis or "")


class _DoubleTanh(m.Tanh):
    """Tanh whose dx is twice too large."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return 2.0 * super().backward(grad_output)


def test_only_input_wrong_note_needs_a_checked_parameter() -> None:
    """With the only parameter frozen (not checked), the note said 'every parameter gradient is right'."""
    model = m.Sequential(m.Dense(3, 4, rng=0), _DoubleTanh())
    model[0].requires_grad_(False)
    report = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert report["input"].status == "FAIL" and report["0.W"].status == "frozen"
    assert not any("only the input gradient is wrong" in n for n in report.notes)
    model[0].requires_grad_()
    unfrozen = GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, 3))).run()
    assert unfrozen["0.W"].status == "FAIL"  # the bug sits behind it: it was not 'right'


@pytest.mark.parametrize(("loss", "shape"), [(m.NLLLoss(), (4, 3)), (m.NLLLoss(weight=[1.0, 2.0, 0.5]), (2, 3, 2)),
                                             (m.BCELoss(), (4, 3)), (m.BCEWithLogitsLoss(), (4, 3)),
                                             (m.CrossEntropyLoss(), (4, 3)), (m.MSELoss(), (4, 3))])
def test_checker_draws_targets_each_loss_accepts(loss: m.Loss, shape: tuple[int, ...]) -> None:
    """Without targets= the checker drew N(0, 1) targets, which NLLLoss (labels) and the BCE losses
    (values in [0, 1]) refuse; each loss now draws its own (Loss.random_targets)."""
    last = {"NLLLoss": m.LogSoftmax(axis=1), "BCELoss": m.Sigmoid()}.get(type(loss).__name__)
    layers: list[m.Layer] = [last] if last is not None else [m.Tanh()]
    x = np.random.default_rng(1).standard_normal(shape)
    report = GradientChecker(m.Sequential(*layers), inputs=x, loss=loss).run()
    assert report.passed and report["input"].checked == x.size
    targets = loss.random_targets(x, np.random.default_rng(0))
    if isinstance(loss, m.NLLLoss):
        assert targets.shape == (shape[0], *shape[2:]) and targets.dtype.kind == "i"
        assert targets.min() >= 0 and targets.max() < shape[1]
    elif isinstance(loss, (m.BCELoss, m.BCEWithLogitsLoss)):
        assert targets.shape == shape and targets.min() >= 0 and targets.max() < 1
