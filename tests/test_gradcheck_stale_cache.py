"""A backward that reads a cache made at an earlier forward (once, at the first) is wrong from the second batch of
training on.  The checker runs a forward on the batch reversed before the checked point, which catches it on a
fresh layer; but after the user's own ``model(x)`` on the same ``x`` the copy it checks holds that very cache.  The
batch-permutation consistency check (a forward on the reversed batch, a backward with the reversed upstream
gradient: the same parameter gradients, the reversed input gradient) fails it there too, and never a correct
layer (per-sample, batch norm, attention, recurrent), nor one whose forward is not equivariant (dropout's draws,
axis 0 that is not the batch), which it skips."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker
from minidl.gradcheck import checker
from minidl.gradcheck._state import LayerSnapshot

X = np.random.default_rng(0).normal(size=(4, 3))
REVERSED = "the backward after a forward on the batch reversed gave another dCost/d"


class CacheOnce(md.Layer):
    """Bug: caches the input only at the first forward ever (y = x W)."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None
        self.W = md.Parameter(np.linspace(0.5, 1.5, 9).reshape(3, 3))

    def input_shape_hint(self) -> tuple[int, ...]:
        return (3,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._x is None:
            self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += self._x.T @ g
        return g @ self.W.data.T


class TanhOnce(md.Layer):
    """Bug: caches tanh(x) only at the first forward (no parameters: only dx is wrong)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        if self._y is None:
            self._y = y
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._y is not None
        return g * (1 - self._y ** 2)


class MaskedOnce(md.Layer):
    """Bug: y = (x * m) W with several inputs (x, m), x cached at the first forward only."""

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None
        self.W = md.Parameter(np.linspace(-1.0, 1.0, 6).reshape(3, 2))

    def forward(self, inputs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        x, m = inputs
        if self._x is None:
            self._x = x
        self._m = m
        return (x * m) @ self.W.data

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, None]:
        assert self._x is not None
        self.W.grad += (self._x * self._m).T @ g
        return (g @ self.W.data.T) * self._m, None


class CumsumTime(md.Layer):
    """Correct; axis 0 is time, not the batch: y = cumsum(x W, axis 0) on (T, N, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(5).normal(size=(3, 2)))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.cumsum(x @ self.W.data, axis=0)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dz = np.cumsum(g[::-1], axis=0)[::-1]
        self.W.grad += np.einsum("tni,tnj->ij", self._x, dz)
        return dz @ self.W.data.T


class PerPosition(md.Layer):
    """Correct; y = tanh(((x + P) W) * scale) with P of the batch's shape: axis 0 of P pairs with the batch's, so
    the forward is equivariant only as far as P is small (1e-12 here: the outputs on the reversed batch are the
    reversed ones to 1e-12), but P's gradient is another at the reversed batch, rightly.  (A saturated tanh that
    hides a larger P: test_gradcheck_features.py, ``_Shifted``.)"""

    def __init__(self, scale: float, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.P = md.Parameter(1e-12 * rng.standard_normal((4, 3)))
        self.W = md.Parameter(rng.standard_normal((3, 2)))
        self.scale = scale

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._z = x + self.P.data
        self._y = np.tanh(self.scale * (self._z @ self.W.data))
        return self._y

    def backward(self, g: np.ndarray) -> np.ndarray:
        d = self.scale * g * (1 - self._y ** 2)
        self.W.grad += self._z.T @ d
        dz = d @ self.W.data.T
        self.P.grad += dz
        return dz


def _failing(report: md.GradientReport) -> dict[str, list[str]]:
    return {r.name: r.problems for r in report.results if not r.passed}


def test_cache_once_after_a_user_forward_on_the_same_x_fails_W() -> None:
    layer = CacheOnce()
    layer(X)
    report = GradientChecker(layer, inputs=X).run()
    assert not report.passed
    assert list(_failing(report)) == ["W"]
    (problem,) = _failing(report)["W"]
    assert problem.startswith(REVERSED + "W than the reversed batch's own (max |difference| ")
    assert "the backward of the model itself (CacheOnce)" in problem
    assert "a cache made once, or kept from another call" in problem
    # the numerical check itself agrees at this point: the consistency check alone fails it
    (w,) = [r for r in report.results if r.name == "W"]
    assert w.failed == 0 and w.checked == 9


def test_cache_once_inside_a_sequential_after_a_user_forward_names_its_layer() -> None:
    model = md.Sequential(md.Dense(3, 3, rng=0), CacheOnce())
    model(X)
    report = GradientChecker(model, inputs=X).run()
    assert list(_failing(report)) == ["1.W"]
    (problem,) = _failing(report)["1.W"]
    assert REVERSED + "1.W" in problem and "layer '1' (CacheOnce)" in problem
    difference = float(problem.split("max |difference| ")[1].split(",")[0])
    assert difference > 0.1


def test_cache_once_fresh_still_fails_and_a_note_says_why() -> None:
    report = GradientChecker(CacheOnce(), inputs=X).run()
    assert not report.passed
    assert "W" in _failing(report)
    # (its differences fail it already: the words are a note beside that failure's diagnosis)
    assert report["W"].failed > 0
    assert any(n.startswith(REVERSED + "W") for n in report["W"].notes)


def test_cache_once_with_a_loss_after_a_user_forward_fails() -> None:
    layer = CacheOnce()
    layer(X)
    targets = np.random.default_rng(7).normal(size=(4, 3))
    report = GradientChecker(layer, loss=md.MSELoss(), inputs=X, targets=targets).run()
    assert list(_failing(report)) == ["W"]
    assert report["W"].failed == 0 and REVERSED + "W" in report["W"].problems[0]


@pytest.mark.parametrize("seed", range(20))
def test_a_parameter_acting_per_position_of_the_batch_is_not_compared(seed: int) -> None:
    model = PerPosition(1.0, seed)
    report = GradientChecker(model, inputs=np.random.default_rng(seed).standard_normal((4, 3)), seed=seed).run()
    assert report.passed, str(report)


def test_a_stale_input_gradient_fails_the_input_and_the_layers_before() -> None:
    model = md.Sequential(md.Dense(3, 3, rng=1), TanhOnce())
    model(X)
    report = GradientChecker(model, inputs=X).run()
    failing = _failing(report)
    assert set(failing) == {"input", "0.W"}
    assert any(p.startswith(REVERSED + "input than") and "a backward reads" in p for p in failing["input"])
    assert any("layer '0' (Dense)" in p for p in failing["0.W"])


def test_several_inputs_are_reversed_together() -> None:
    mask = (np.random.default_rng(2).random((5, 3)) > 0.3).astype(float)
    x = np.random.default_rng(3).normal(size=(5, 3))
    layer = MaskedOnce()
    layer((x, mask))
    report = GradientChecker(layer, inputs=(x, mask), check_input=(True, False)).run()
    assert list(_failing(report)) == ["W"]
    assert REVERSED + "W" in _failing(report)["W"][0]


def test_the_model_is_left_as_it_was() -> None:
    stale = CacheOnce()
    model = md.Sequential(md.Dense(3, 3, rng=0), stale)
    model(X)
    cache = stale._x
    assert cache is not None
    kept = cache.copy()
    snapshot = LayerSnapshot.take(model)
    GradientChecker(model, inputs=X).run()
    assert snapshot.differences() == []
    assert stale._x is cache and np.array_equal(cache, kept)


def test_one_sample_cannot_show_it_and_is_skipped_silently() -> None:
    x = X[:1]
    layer = CacheOnce()
    layer(x)
    report = GradientChecker(layer, inputs=x).run()
    assert report.passed
    assert not any("reversed" in n for n in report.notes)


def _correct_models(seed: int) -> list[tuple[str, md.Layer, object]]:
    rng = np.random.default_rng(seed)
    bn = md.Sequential(md.Dense(4, 5, rng=seed), md.BatchNorm1d(5), md.Tanh(), md.Dense(5, 2, rng=seed + 1))
    bn.train()
    drop = md.Sequential(md.Dense(4, 6, rng=seed), md.Dropout(0.4, rng=seed), md.Dense(6, 2, rng=seed + 1))
    drop.train()
    tokens = rng.integers(0, 7, size=(3, 5))
    return [
        ("dense", md.Sequential(md.Dense(4, 5, rng=seed), md.ReLU(), md.Dense(5, 3, rng=seed + 1)),
         rng.standard_normal((5, 4))),
        ("conv", md.Sequential(md.Conv2D(2, 3, 3, padding=1, rng=seed), md.Tanh()), rng.standard_normal((3, 2, 5, 5))),
        ("batchnorm-train", bn, rng.standard_normal((6, 4))),
        ("batchnorm-before-bias", md.Sequential(md.Dense(4, 5, rng=seed), md.BatchNorm1d(5)),
         rng.standard_normal((7, 4))),
        ("layernorm", md.Sequential(md.Dense(4, 6, rng=seed), md.LayerNorm(6)), rng.standard_normal((5, 4))),
        ("attention", md.MultiHeadAttention(4, 2, rng=seed), rng.standard_normal((3, 5, 4))),
        ("rnn", md.RNN(3, 4, rng=seed), rng.standard_normal((4, 5, 3))),
        ("lstm", md.LSTM(3, 2, rng=seed), rng.standard_normal((3, 4, 3))),
        ("time-major", CumsumTime(), rng.standard_normal((5, 3, 3))),
        ("dropout-train", drop, rng.standard_normal((6, 4))),
        ("embedding", md.Sequential(md.Embedding(7, 3, rng=seed), md.Dense(3, 2, rng=seed)), tokens),
        ("one-sample", md.Sequential(md.Dense(4, 3, rng=seed), md.Tanh()), rng.standard_normal((1, 4))),
        ("per-position", PerPosition(1.0, seed), rng.standard_normal((4, 3))),
        ("per-position-steep", PerPosition(3.0, seed), rng.standard_normal((4, 3))),
    ]


#: the models whose forward is not equivariant under reversing the batch (or that have one sample): skipped
SKIPPED = {"time-major", "dropout-train", "one-sample"}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", range(14))
def test_no_false_alarm_on_correct_layers(seed: int, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    name, model, x = _correct_models(seed)[k]
    model(x)  # (the user's own forward first, as in the bug's case: a correct layer overwrites its cache)
    snapshot = LayerSnapshot.take(model)
    compared: list[str] = []
    judge = checker.reversed_batch_problem

    def spy(tensor: str, *args: object) -> str | None:
        compared.append(tensor)
        return judge(tensor, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(checker, "reversed_batch_problem", spy)
    report = GradientChecker(model, inputs=x, seed=seed).run()
    assert report.passed, f"{name}:\n{report}"
    assert not any(REVERSED in p for r in report.results for p in r.problems)
    assert snapshot.differences() == []
    # the check ran on every tensor of an equivariant forward (the input too, but not integer indices), and
    # was skipped on the others
    expected = [] if name in SKIPPED else [r.name for r in report.results]
    if name.startswith("per-position"):  # (P, whose axis 0 pairs with the batch's, is never compared)
        assert "P" not in compared and "P" in [r.name for r in report.results]
    else:
        assert compared == expected


def test_the_check_layers_pass_on_correct_layers_too() -> None:
    model = md.Sequential(md.Dense(4, 5, rng=0), md.BatchNorm1d(5), md.ReLU(), md.Dense(5, 2, rng=1))
    report = GradientChecker(model, inputs=np.random.default_rng(4).standard_normal((6, 4)), check_layers=True).run()
    assert report.passed, str(report)


class _CenterOverBatch(md.Layer):
    """y = x - max over the batch (N, D) -> (N, D), the gradient of the max sent to the first argmax: right, and
    its subgradient at tied samples follows the batch's order."""

    def __init__(self) -> None:
        super().__init__()
        self._first: tuple[tuple[int, ...], np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        i = np.argmax(x, axis=0)
        self._first = x.shape, i
        return x - x[i, np.arange(x.shape[1])]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._first is not None
        shape, i = self._first
        dx = grad_output.copy()
        dx[i, np.arange(shape[1])] -= grad_output.sum(axis=0)
        return dx


@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tied_samples_at_a_kink_are_no_stale_cache(n: int, seed: int) -> None:
    """A max over tied samples: the right backward's subgradient picks the first of them, so on the reversed batch
    another sample; the tensor's elements sit at kinks, and the reversal's difference is a note, not a failure."""
    model = md.Sequential(_CenterOverBatch(), md.Dense(3, 2, rng=seed))
    report = md.GradientChecker(model, inputs=np.ones((n, 3)), seed=seed).run()
    assert report.passed, str(report)
    assert report["input"].skipped > 0 and not report["input"].problems
    # and the same layer on distinct samples is compared and passes
    spread = md.GradientChecker(model, inputs=np.random.default_rng(seed).normal(size=(n, 3)), seed=seed).run()
    assert spread.passed, str(spread)
