"""GradientChecker: the stable API, restoration of the user's model, and bugs it must catch."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
import types

import numpy as np
import pytest

import minidl as m
from minidl.errors import GradientCheckError, NonDeterministicError, ShapeError
from minidl.gradcheck import GradientChecker
from minidl.init import as_generator
from minidl.testing import assert_gradients_ok

# ----------------------------------------------------------------------------- small test layers


class Scale(m.Layer):
    """User-written layer with its own parameter: y = x * s (s: (features,))."""

    def __init__(self, features: int, rng: int = 0) -> None:
        super().__init__()
        self.features = features
        self.s = m.Parameter(np.random.default_rng(rng).uniform(0.5, 1.5, features))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.s.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._require_cache(self._x)
        assert self._x is not None
        self.s.grad += (g * self._x).sum(axis=0)
        return g * self.s.data

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.features,)


class NoTranspose(m.Dense):
    """Forgets the transpose in dx (square layer so that shapes still match)."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._x
        assert x is not None
        self.W.grad[1:] += x.T @ g
        self.W.grad[0] += g.sum(axis=0)
        return g @ self.W.data[1:]  # should be W[1:].T


class DroppedFactor(m.Layer):
    """y = x^2 with the factor 2 dropped in the back-pass."""

    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * x

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self._x  # should be 2 * g * x


class Dropout(m.Layer):
    """Inverted dropout drawing from a registered generator (checked in training mode)."""

    elementwise = True

    def __init__(self, p: float = 0.5, rng: int = 0) -> None:
        super().__init__()
        self.p = p
        self.rng = as_generator(rng)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            return x
        self._mask = (self.rng.random(x.shape) >= self.p) / (1 - self.p)
        return x * self._mask

    def backward(self, g: np.ndarray) -> np.ndarray:
        if not self.training:
            return g
        assert self._mask is not None
        return g * self._mask


class GlobalNoise(m.Layer):
    """Non-deterministic: draws from a generator hidden in a holder object (not registered)."""

    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self.hidden = types.SimpleNamespace(rng=np.random.default_rng(0))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._m = self.hidden.rng.random(x.shape)
        return x * self._m

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self._m


class RaiseAfter(m.Layer):
    """Raises on the n-th forward call (a fault in the middle of the check)."""

    elementwise = True

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.calls = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls >= self.n:
            raise RuntimeError("boom in forward")
        return np.tanh(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g


class WrongShape(m.Dense):
    def backward(self, g: np.ndarray) -> np.ndarray:
        return super().backward(g)[:, :-1]


def mlp(seed: int = 0, dtype: type = np.float64) -> m.Sequential:
    return m.Sequential(m.Dense(5, 7, rng=seed, dtype=dtype), m.Tanh(),
                        m.Dense(7, 3, rng=seed + 1, dtype=dtype))


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correct_mlp_passes_with_all_records(seed: int) -> None:
    report = GradientChecker(mlp(seed), seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input", "0.W", "2.W"]
    for r in report.results:
        assert r.passed and r.checked == r.size and r.failed == 0
        assert r.max_abs_error < 1e-8 and r.max_rel_error < 1e-6
        assert 0 < r.bound < 1e-8  # a sane error estimate
        # the tolerance and step the shown element was judged with: stage A (accepted at h/16 within
        # 2 x its round-off bound) or stage B (Richardson at h, within the safety factor 10 x bound)
        stage_a = r.tolerance == pytest.approx(2 * r.bound)
        assert stage_a or r.tolerance == pytest.approx(10 * r.bound)
        if stage_a:
            assert r.step < 1e-4 / 4  # h/16, h = 1e-4 max(|w|, 1) with |w| < 4 here: not h itself
        assert r.worst_index is not None and len(r.worst_index) == len(r.shape)
    # on a smooth model most elements are accepted in stage A, and the table says so (it used to show
    # h and 10 x bound for them, what stage B would have used)
    assert any(r.tolerance == pytest.approx(2 * r.bound) for r in report.results)
    assert report["0.W"].shape == (6, 7)
    assert report["input"].shape[0] > 1  # a batch of several samples
    text = str(report)
    assert "PASSED" in text and "0.W" in text and "input" in text
    assert report.raise_if_failed() is report


def test_with_loss_inputs_and_targets_checks_that_cost() -> None:
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    report = GradientChecker(mlp(), loss=m.MSELoss(), inputs=x, targets=t).run()
    assert report.passed, str(report)
    assert "MSELoss" in report.cost
    assert report["input"].shape == (6, 5)


def test_user_layer_parameter_found_and_checked() -> None:
    layer = Scale(4)
    report = assert_gradients_ok(layer)
    assert [r.name for r in report.results] == ["input", "s"]
    net = m.Sequential(m.Dense(3, 4, rng=0), Scale(4), m.Sigmoid())
    assert "1.s" in [r.name for r in assert_gradients_ok(net).results]


def test_missing_transpose_points_at_input_gradient() -> None:
    net = m.Sequential(m.Dense(4, 4, rng=0), m.Tanh(), NoTranspose(4, 4, rng=1))
    report = GradientChecker(net).run()
    assert not report.passed
    failed = {r.name for r in report.results if not r.passed}
    assert failed == {"input", "0.W"}  # dx of layer 2 is wrong: everything before it
    assert report["2.W"].passed


def test_dropped_factor_fails_and_raise_if_failed_shows_table() -> None:
    net = m.Sequential(m.Dense(3, 4, rng=0), DroppedFactor(), m.Dense(4, 2, rng=1))
    report = GradientChecker(net).run()
    assert not report.passed and report["2.W"].passed and not report["0.W"].passed
    with pytest.raises(GradientCheckError, match=r"0\.W"):
        report.raise_if_failed()
    with pytest.raises(AssertionError, match="FAIL"):
        assert_gradients_ok(net)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="without loss"):
        GradientChecker(mlp(), targets=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="mode"):
        GradientChecker(mlp(), mode="fast")
    with pytest.raises(TypeError, match="Layer"):
        GradientChecker(lambda x: x)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"seed": None}, TypeError, "seed must be an int, got NoneType"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"full_max": 2.0}, TypeError, "full_max must be an int"),
        ({"full_max": -1}, ValueError, "full_max must be an int >= 0"),
        ({"samples": 0}, ValueError, "samples must be an int >= 1"),
        ({"samples": True}, TypeError, "samples must be an int"),
        ({"directions": "2"}, TypeError, "directions must be an int"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"eps": "1e-4"}, TypeError, "eps must be a number"),
        ({"eps": float("nan")}, ValueError, "eps must be a number in"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"safety": None}, TypeError, "safety must be a number"),
        ({"safety": float("inf")}, ValueError, "safety must be a finite number > 1"),
        ({"safety": 1.0}, ValueError, "safety"),
        ({"mode": None}, ValueError, "mode must be one of"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        GradientChecker(mlp(), **kwargs)


def test_the_documented_defaults_are_the_real_ones() -> None:
    """docs/gradient-checker.md prints the constructor's signature; every default there is the code's
    (a changed default, e.g. a looser safety factor, would pass every other test)."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "gradient-checker.md").read_text()
    documented = re.search(r"`GradientChecker\((.*?)\)`", text, re.S)
    assert documented is not None
    pairs = [part.strip().split("=") for part in documented.group(1).replace("\n", " ").split(",")
             if "=" in part]
    defaults = {name: ast.literal_eval(value) for name, value in pairs}
    signature = inspect.signature(GradientChecker.__init__).parameters
    real = {name: p.default for name, p in signature.items() if p.default is not inspect.Parameter.empty}
    assert defaults == real
    assert real["safety"] == 10.0 and real["eps"] == 1e-4 and real["mode"] == "auto"


def test_numpy_numbers_are_accepted_as_options() -> None:
    checker = GradientChecker(mlp(), seed=np.int64(3), full_max=np.int32(10), eps=np.float32(1e-4),
                              safety=np.float64(20))
    assert checker.seed == 3 and isinstance(checker.seed, int) and checker.full_max == 10
    assert checker.run().passed


def test_no_hint_asks_for_inputs() -> None:
    with pytest.raises(ShapeError, match="inputs="):
        GradientChecker(m.Tanh()).run()
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    assert GradientChecker(m.Tanh(), inputs=x).run().passed


# ----------------------------------------------------------------------------- restoration


def _state(model: m.Layer) -> list[bytes]:
    out = []
    for _, p in model.named_parameters():
        out += [p.data.tobytes(), p.grad.tobytes(), str(p.data.dtype).encode()]
    for _, b in model.named_buffers():
        out.append(b.tobytes() if b is not None else b"None")
    for _, g in model.named_generators():
        out.append(repr(g.bit_generator.state).encode())
    out += [str(layer.training).encode() for layer in model.layers()]
    return out


def test_float32_model_checked_in_float64_and_unchanged() -> None:
    net = mlp(dtype=np.float32)
    for _, p in net.named_parameters():
        p.grad[...] = 0.25  # a stale gradient the user has
    net.register_buffer("stat", np.arange(3, dtype=np.float32))
    net.eval()
    before = _state(net)
    report = GradientChecker(net).run()
    assert report.passed, str(report)
    assert report["0.W"].max_abs_error < 1e-8  # float64 accuracy
    assert _state(net) == before
    assert net[0].W.data.dtype == np.float32 and not net.training


def test_model_unchanged_when_forward_raises_mid_check() -> None:
    net = m.Sequential(m.Dense(3, 4, rng=0), RaiseAfter(20), Dropout(0.3, rng=5))
    before = _state(net)
    with pytest.raises(RuntimeError, match="boom") as info:
        GradientChecker(net).run()
    assert _state(net) == before
    notes = " ".join(getattr(info.value, "__notes__", []))
    if hasattr(BaseException, "add_note"):  # Python >= 3.11
        assert "your model is unchanged" in notes and "while perturbing tensor" in notes


def test_backward_wrong_shape_is_reported() -> None:
    net = m.Sequential(WrongShape(3, 4, rng=0))
    before = _state(net)
    report = GradientChecker(net).run()
    assert not report.passed
    assert any("shape" in p for p in report["input"].problems)
    assert report["0.W"].passed
    assert _state(net) == before


def test_dropout_checked_in_training_mode_by_replay() -> None:
    net = m.Sequential(m.Dense(4, 6, rng=0), Dropout(0.5, rng=1), m.Dense(6, 2, rng=2))
    before = _state(net)
    report = assert_gradients_ok(net)
    assert net.training and report.passed
    assert _state(net) == before  # the generator state too


def test_non_deterministic_forward_raises_clear_error() -> None:
    net = m.Sequential(m.Dense(3, 3, rng=0), GlobalNoise())
    before = _state(net)
    with pytest.raises(NonDeterministicError, match="deterministic"):
        GradientChecker(net).run()
    assert _state(net) == before
