"""GradientChecker after the 21st session's review: settings checked whenever they are set, empty batches
refused, no vacuous pass from assert_gradients_ok, NaN weights named before the check starts, and a
headline that says when a tensor was checked only in part."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import GradientCheckError, NonFiniteError, ShapeError
from minidl.gradcheck import GradientChecker
from minidl.testing import assert_gradients_ok

X = np.random.default_rng(0).standard_normal((4, 3))


def mlp() -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))


def headline(report: md.GradientReport) -> str:
    return str(report).splitlines()[0]


# ----------------------------------------------------------------------------- settings set later

BAD_SETTINGS = [
    ("eps", -1.0, ValueError, "eps must be a number in (0, 1), got -1.0"),
    ("eps", 0.0, ValueError, "eps must be a number in (0, 1), got 0.0"),
    ("eps", 5.0, ValueError, "eps must be a number in (0, 1), got 5.0"),
    ("eps", "1e-4", TypeError, "eps must be a number, got str '1e-4'"),
    ("mode", "bogus", ValueError, "mode must be one of ('auto', 'full', 'sampled', 'directional'), got 'bogus'"),
    ("mode", None, ValueError, "mode must be one of"),
    ("safety", 0.5, ValueError, "safety must be a finite number > 1, got 0.5"),
    ("safety", -1.0, ValueError, "safety must be a finite number > 1, got -1.0"),
    ("safety", True, TypeError, "safety must be a number, got bool True"),
    ("seed", -3, ValueError, "seed must be an int >= 0, got -3"),
    ("seed", None, TypeError, "seed must be an int, got NoneType None (the checker is always seeded"),
    ("seed", 1.0, TypeError, "seed must be an int, got float 1.0"),
    ("directions", 0, ValueError, "directions must be an int >= 1, got 0"),
    ("samples", 0, ValueError, "samples must be an int >= 1, got 0"),
    ("full_max", -1, ValueError, "full_max must be an int >= 0, got -1"),
    ("batch_size", 0, ValueError, "batch_size must be an int >= 1, got 0"),
    ("check_input", "False", TypeError, "check_input must be True or False, got 'False'"),
    ("check_input", 0, TypeError, "check_input must be True or False, got 0"),
    ("check_layers", "yes", TypeError, "check_layers must be True or False, got 'yes'"),
    ("reuse_prefix", None, TypeError, "reuse_prefix must be True or False, got None"),
    ("model", "net", TypeError, "expected a minidl Layer or Model, got str"),
    ("loss", md.MSELoss, TypeError, "loss is the class MSELoss; pass an instance, loss=MSELoss()"),
    ("loss", X, TypeError, "loss must have forward(y_pred, y_true) and backward(); the second positional"),
    ("inputs", np.zeros((0, 3)), ShapeError, "inputs is an empty batch (shape (0, 3))"),
]


@pytest.mark.parametrize(("name", "value", "error", "words"), BAD_SETTINGS,
                         ids=[f"{n}={v!r}"[:30] for n, v, _, _ in BAD_SETTINGS])
def test_a_setting_assigned_later_is_refused_as_the_constructor_refuses_it(name: str, value: Any, error: type,
                                                                           words: str) -> None:
    """Set after construction, they were never checked: eps=-1 failed a correct model, eps=5 passed with
    nothing checked in 0.W, mode='bogus' ran 'full' and printed 'bogus', seed=None raised len()'s error."""
    checker = GradientChecker(mlp(), inputs=X)
    before = dict(vars(checker))
    with pytest.raises(error, match=re.escape(f"GradientChecker: {words}")) as later:
        setattr(checker, name, value)
    assert vars(checker).keys() == before.keys() and all(vars(checker)[k] is before[k] for k in before)
    with pytest.raises(error) as made:
        if name == "model":
            GradientChecker(value, inputs=X)
        else:
            GradientChecker(mlp(), **{"inputs": X, name: value})
    assert str(made.value) == str(later.value)  # one check, one message
    assert checker.run().passed  # (unchanged: the refused value left nothing behind)


def test_accepted_settings_are_kept_as_plain_values_and_take_effect() -> None:
    checker = GradientChecker(mlp(), inputs=X)
    checker.seed, checker.eps, checker.batch_size = np.int64(3), np.float32(1e-3), np.int32(1024)
    checker.check_input, checker.mode, checker.directions = np.False_, np.str_("directional"), 3
    assert type(checker.seed) is int and checker.seed == 3 and type(checker.eps) is float
    assert type(checker.check_input) is bool and type(checker.mode) is str and checker.batch_size == 1024
    report = checker.run()
    assert report.passed and [r.name for r in report.results] == ["0.W", "2.W"]
    assert all(r.mode == "directional" and r.checked == 3 for r in report.results)


def test_targets_and_loss_stay_consistent_when_set_later() -> None:
    y = np.zeros((4, 2))
    checker = GradientChecker(mlp(), inputs=X)
    with pytest.raises(ValueError, match=r"GradientChecker: targets= given without loss=; the targets would be "):
        checker.targets = y
    assert checker.targets is None
    checker.loss = md.MSELoss()
    checker.targets = y
    with pytest.raises(ValueError, match=r"loss cannot be None while targets are set \(they would be ignored\); "
                                         r"set targets = None first"):
        checker.loss = None
    assert isinstance(checker.loss, md.MSELoss) and checker.targets is y
    assert checker.run().cost == "loss MSELoss"


# ----------------------------------------------------------------------------- empty batches

def test_an_empty_batch_is_refused_by_name() -> None:
    """It PASSED, 0.W listed 'ok', although the cost was identically 0."""
    with pytest.raises(ShapeError, match=r"GradientChecker: inputs is an empty batch \(shape \(0, 3\)\): with no "
                                         r"sample the cost is identically 0"):
        GradientChecker(mlp(), inputs=np.zeros((0, 3)))
    mask = np.ones((0, 5), dtype=bool)
    with pytest.raises(ShapeError, match=r"inputs\[0\] is an empty batch \(shape \(0, 5, 4\)\)"):
        GradientChecker(md.MultiHeadAttention(4, 2, rng=0), inputs=(np.zeros((0, 5, 4)), mask))
    checker = GradientChecker(mlp(), inputs=[])  # (a list is converted when the check runs)
    with pytest.raises(ShapeError, match=r"GradientChecker: inputs is an empty batch \(shape \(0,\)\)"):
        checker.run()


class NoSamples(md.Layer):
    """Draws inputs without a sample."""

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return np.zeros((0, *shape[1:]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return 2 * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return 2 * g


def test_inputs_drawn_without_a_sample_are_refused_too() -> None:
    with pytest.raises(ShapeError, match=r"GradientChecker: the inputs drawn by NoSamples\.random_inputs is an empty "
                                         r"batch \(shape \(0, 3\)\)"):
        GradientChecker(NoSamples()).run()


class Emptied(md.Layer):
    """Keeps no sample (x[:0]); a later layer then sees an empty batch."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x[:0]

    def backward(self, g: np.ndarray) -> np.ndarray:
        return np.zeros_like(self._x)


def test_a_layer_that_receives_an_empty_batch_is_not_checked_alone() -> None:
    report = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), Emptied(), md.Tanh()), inputs=X,
                             check_layers=True).run()
    assert "layer '2' (Tanh): its input is an empty batch (no sample), on which nothing can be checked: not " \
           "checked alone" in report.notes
    assert "2" not in report.layers and {"0", "1"} <= report.layers.keys()


# ----------------------------------------------------------------------------- vacuous passes

def test_assert_gradients_ok_fails_when_nothing_was_checked() -> None:
    """It returned normally on 'PASSED, but nothing was checked': a test that passes vacuously."""
    zeros = np.zeros((2, 3))
    with pytest.raises(AssertionError, match=r"(?s)^Gradient check PASSED, but nothing was checked.*input .*skipped"
                                             r".*assert_gradients_ok: the check passed, but nothing was checked .*"
                                             r"allow_unchecked=True") as info:
        assert_gradients_ok(md.ReLU(), inputs=zeros)
    assert isinstance(info.value, GradientCheckError)
    report = assert_gradients_ok(md.ReLU(), inputs=zeros, allow_unchecked=True)
    assert report.passed and report.nothing_checked and report["input"].status == "skipped"
    frozen = md.Dense(3, 2, rng=0).requires_grad_(False)
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_gradients_ok(frozen, inputs=X, check_input=False)
    assert assert_gradients_ok(frozen, inputs=X, check_input=False, allow_unchecked=True).nothing_checked
    with pytest.raises(TypeError, match=r"assert_gradients_ok: allow_unchecked must be True or False, got 'yes'"):
        assert_gradients_ok(md.ReLU(), inputs=zeros, allow_unchecked="yes")


def test_assert_gradients_ok_passes_when_something_was_checked() -> None:
    """One tensor at kinks, another checked: not vacuous (the headline names the one not checked)."""
    model = md.Sequential(md.ReLU(), md.Dense(3, 2, rng=0))
    report = assert_gradients_ok(model, inputs=np.zeros((2, 3)))
    assert not report.nothing_checked and report["input"].status == "skipped" and report["1.W"].status == "ok"
    assert "(1 of 2 tensors could not be checked: input)" in headline(report)


# ----------------------------------------------------------------------------- NaN in the state

def test_a_nan_weight_is_named_before_the_check_starts() -> None:
    """It was blamed on the next layer: "Sequential layer '2': Dense(4 -> 2): input holds 4 NaN/inf"."""
    net = mlp()
    net[0].W.data[1, 2] = np.nan
    data = net[0].W.data.copy()
    with pytest.raises(NonFiniteError, match=r"^GradientChecker: parameter '0\.W' holds 1 NaN/inf value\(s\), the "
                                             r"first at index \(1, 2\) \(nan\), before the check started") as info:
        GradientChecker(net).run()
    assert info.value.index == (1, 2) and info.value.shape == (4, 4)
    np.testing.assert_array_equal(net[0].W.data, data)
    net = mlp()
    net[2].W.data[3, 0] = -np.inf
    with pytest.raises(NonFiniteError, match=r"parameter '2\.W' holds 1 NaN/inf value\(s\), the first at index "
                                             r"\(3, 0\) \(-inf\)"):
        GradientChecker(net).run()


def test_a_nan_running_statistic_or_frozen_weight_is_named_and_inf_there_allowed() -> None:
    net = md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Tanh()).eval()
    net[1].running_mean[2] = np.nan
    with pytest.raises(NonFiniteError, match=r"GradientChecker: buffer '1\.running_mean' holds 1 NaN value\(s\), "
                                             r"the first at index \(2,\) \(nan\)") as info:
        GradientChecker(net).run()
    assert info.value.index == (2,)

    class Capped(md.Layer):
        """min(x, cap): a frozen cap of inf is no cap (state, not a weight)."""

        def __init__(self, cap: float) -> None:
            super().__init__()
            self.cap = md.Parameter(np.full(3, cap), requires_grad=False)

        def forward(self, x: np.ndarray) -> np.ndarray:
            self._x = x
            return np.minimum(x, self.cap.data)

        def backward(self, g: np.ndarray) -> np.ndarray:
            return g * (self._x < self.cap.data)

    report = GradientChecker(Capped(np.inf), inputs=X).run()
    assert report.passed and report["cap"].mode == "frozen" and report["input"].checked == X.size
    with pytest.raises(NonFiniteError, match=r"parameter 'cap' holds 3 NaN value\(s\), the first at index \(0,\)"):
        GradientChecker(Capped(np.nan), inputs=X).run()


# ----------------------------------------------------------------------------- an honest headline

def test_the_headline_says_partly_checked_for_kinks_and_directions() -> None:
    """A plain 'PASSED' when 59 of 160 input elements were skipped at kinks, or when a large tensor was
    checked along two random directions only (auto mode)."""
    x = np.round(np.random.default_rng(0).standard_normal((4, 40)))  # exact zeros: ReLU kinks
    report = GradientChecker(md.Sequential(md.ReLU(), md.Dense(40, 3, rng=1)), inputs=x).run()
    r = report["input"]
    assert report.passed and r.mode == "full" and r.skipped > 0 and r.checked + r.skipped == 160
    assert f"PASSED (only partly checked: input {r.checked} of 160 elements);" in headline(report)
    assert [t.name for t in report.partly_checked] == ["input"] and r.partial and not report["1.W"].partial

    net = md.Sequential(md.Dense(40, 30, rng=0), md.ReLU(), md.Dense(30, 3, rng=1))
    report = GradientChecker(net).run()
    assert report["0.W"].mode == "directional" and report["0.W"].partial
    assert headline(report).startswith(
        "Gradient check PASSED (only partly checked: along 2 random directions (not element by element): 0.W);")

    both = GradientChecker(md.Sequential(md.ReLU(), md.Dense(40, 30, rng=0)), inputs=x).run()
    assert both.passed and [t.name for t in both.partly_checked] == ["input", "1.W"]
    assert (f"(only partly checked: input {both['input'].checked} of 160 elements; along 2 random directions (not "
            "element by element): 1.W)") in headline(both)


def test_a_fully_checked_report_says_plain_passed() -> None:
    report = GradientChecker(mlp(), inputs=X).run()
    assert headline(report).startswith("Gradient check PASSED;") and report.partly_checked == []
    assert not report.nothing_checked


def test_a_batch_size_above_the_cap_is_refused_only_when_the_checker_draws_the_inputs() -> None:
    """batch_size only sizes the inputs the checker draws: with inputs= given it is unused, and an old call
    passing a large one with its own inputs still runs (review); drawing 2048 samples is refused when set
    (review 22: options are checked when set), the checker unchanged."""
    model = md.Sequential(md.Dense(3, 2, rng=0), md.Tanh())
    x = np.random.default_rng(0).normal(size=(5, 3))
    assert md.GradientChecker(model, inputs=x, batch_size=2048).run().passed
    checker = md.GradientChecker(model)
    with pytest.raises(ValueError, match=r"^GradientChecker: batch_size must be at most 1024 to draw the inputs, got "
                                         r"1000000000000 \(every cost evaluation runs the whole batch"):
        checker.batch_size = 10**12
    assert checker.batch_size == 4
    checker.batch_size = 1024
    assert checker.run().passed
