"""The diagnoses a learner review found misleading or missing: a bias gradient taken from one sample (g[0] where
g.sum(axis=0) is due), a backward or forward computing in float32 inside a float64 check, a sign flip of a scalar
parameter, and the advice for a plain dict of Parameters.  Each buggy layer's report must say the new words and not
the misleading ones; the layer written right must pass with no note at all."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

#: the words of every float32 diagnosis (minidl.gradcheck.diagnosis.FLOAT32_WORDS)
FLOAT32_WORDS = "a float64 check needs float64 throughout"


def _run(layer: md.Layer, x: np.ndarray) -> md.GradientReport:
    return md.GradientChecker(layer, inputs=x).run()


def _x(n: int = 4, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _clean(report: md.GradientReport) -> None:
    """Passed, with no note, diagnosis or problem anywhere."""
    assert report.passed, str(report)
    assert report.notes == [] and report.problems == [], str(report)
    for r in report.results:
        assert r.notes == [] and r.diagnosis is None and r.problems == [], str(report)


# ---------------------------------------------------------------- D2: one sample's gradient where a sum is due
class _LayerNorm(md.Layer):
    """LayerNorm over the last axis with gamma, beta (D,); ``bug``: how beta's gradient is taken."""

    def __init__(self, d: int, bug: str | None = None) -> None:
        super().__init__()
        r = np.random.default_rng(1)
        self.gamma = md.Parameter(1 + 0.1 * r.normal(size=d))
        self.beta = md.Parameter(0.1 * r.normal(size=d))
        self.bug = bug
        self._c: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        xc = x - x.mean(-1, keepdims=True)
        inv = 1 / np.sqrt((xc ** 2).mean(-1, keepdims=True) + 1e-5)
        self._c = (xc * inv, inv)
        return self._c[0] * self.gamma.data + self.beta.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._c is not None
        xh, inv = self._c
        self.beta.grad += {"first": g[0], "last": g[-1], "mean": g.mean(0)}.get(self.bug or "", g.sum(0))
        self.gamma.grad += (g * xh).sum(0)
        gx = g * self.gamma.data
        return inv * (gx - gx.mean(-1, keepdims=True) - xh * (gx * xh).mean(-1, keepdims=True))


class _Scale(md.Layer):
    """y = x * s, s (D,); ``bug="first"``: s's gradient from sample 0 only."""

    def __init__(self, d: int, bug: str | None = None) -> None:
        super().__init__()
        self.s = md.Parameter(np.random.default_rng(8).normal(size=d))
        self.bug = bug
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.s.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        gs = g * self._x
        self.s.grad += gs[0] if self.bug == "first" else gs.sum(0)
        return g * self.s.data


_CACHE_WORDS = "reads something an earlier forward left"


@pytest.mark.parametrize("bug, row, sample", [("first", "g[0]", 0), ("last", "g[-1]", 3)])
def test_bias_from_one_sample_is_diagnosed_as_a_missing_batch_sum(bug: str, row: str, sample: int) -> None:
    report = _run(_LayerNorm(5, bug), _x(4, 5))
    beta = report["beta"]
    assert not beta.passed
    assert beta.diagnosis is not None
    assert f"sample {sample}'s contribution alone" in beta.diagnosis
    assert f"the sum over the batch (axis 0) is missing, e.g. {row} where g.sum(axis=0) is due" in beta.diagnosis
    # the batch-order note stays, pointing at the diagnosis, and asserts no cache
    text = str(report)
    assert "batch reversed" in text and "as the diagnosis says" in text
    assert _CACHE_WORDS not in text
    assert report["gamma"].passed and report["input"].passed


def test_scale_from_one_sample_is_diagnosed_and_the_right_layers_pass_clean() -> None:
    report = _run(_Scale(3, "first"), _x())
    s = report["s"]
    assert s.diagnosis is not None and "sample 0's contribution alone" in s.diagnosis
    assert _CACHE_WORDS not in str(report)
    _clean(_run(_Scale(3), _x()))
    _clean(_run(_LayerNorm(5), _x(4, 5)))


def test_a_batch_mean_keeps_its_factor_diagnosis() -> None:
    beta = _run(_LayerNorm(5, "mean"), _x(4, 5))["beta"]
    assert beta.diagnosis is not None and beta.diagnosis.startswith("constant factor over the whole tensor")
    assert "contribution alone" not in beta.diagnosis


class _CachedOnce(md.Layer):
    """y = x @ W with x cached at the first forward only, and W's gradient doubled: both a stale cache and a
    failure of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(3).normal(size=(3, 2)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._x is None:
            self._x = x.copy()
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += 2 * self._x.T @ g
        return g @ self.W.data.T


def test_the_batch_order_note_beside_a_failure_names_both_causes() -> None:
    text = str(_run(_CachedOnce(), _x()))
    assert "batch reversed" in text
    assert "uses one sample's gradient where a sum over the batch (axis 0) is due (g[0] for g.sum(axis=0)" in text
    assert f"or {_CACHE_WORDS}" in text


# ---------------------------------------------------------------- D3: float32 inside a float64 check
class _Dense32(md.Layer):
    """y = x @ W; ``mode``: "backward32" (backward returns and adds float32), "cache32" (x cached as float32),
    "forward32" (forward reads W as float32, its output float64), None (float64 throughout)."""

    def __init__(self, mode: str | None = None) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).normal(size=(3, 3)))
        self.mode = mode
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x.astype(np.float32) if self.mode == "cache32" else x
        w = self.W.data.astype(np.float32) if self.mode == "forward32" else self.W.data
        return np.tanh(x @ w)

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        y = np.tanh(self._x @ self.W.data)
        d = g * (1 - y * y)
        dw, dx = self._x.T @ d, d @ self.W.data.T
        if self.mode == "backward32":
            dw, dx = dw.astype(np.float32), dx.astype(np.float32)
        self.W.grad += dw
        return dx


_MISLEADING = ("only samples", "indexing or broadcasting", "relative step", "crossed a kink", "as at a kink",
               "batch norm of data at 1e6", "finer steps", "curves so fast", "kinks or a curve")


def _no_misleading(report: md.GradientReport) -> None:
    text = "\n".join(report.notes + [w for r in report.results for w in [*r.notes, r.diagnosis or ""]])
    for words in _MISLEADING:
        assert words not in text, (words, text)


def test_a_backward_in_float32_is_diagnosed_firmly() -> None:
    report = _run(_Dense32("backward32"), _x())
    assert not report.passed
    for r in report.results:
        assert not r.passed and r.diagnosis is not None
        assert "every analytic value is a float32 number" in r.diagnosis
        assert FLOAT32_WORDS in r.diagnosis
    _no_misleading(report)


def test_a_float32_cache_is_diagnosed_not_as_some_samples_wrong() -> None:
    report = _run(_Dense32("cache32"), _x())
    assert not report.passed
    for r in report.results:
        if r.failed:
            assert r.diagnosis is not None and "computes in float32" in r.diagnosis
            assert FLOAT32_WORDS in r.diagnosis
    _no_misleading(report)


def test_a_parameter_read_in_float32_by_forward_is_diagnosed() -> None:
    report = _run(_Dense32("forward32"), _x())
    w = report["W"]
    assert not w.passed and w.diagnosis is not None
    assert "does not change at all when every element of 'W' is rounded to float32" in w.diagnosis
    assert "forward reads it in float32" in w.diagnosis
    assert FLOAT32_WORDS in (report["input"].diagnosis or "")
    _no_misleading(report)


class _Tanh32(md.Layer):
    """y = tanh(x @ W), W (8, 8) read in float32 by forward; ``factor``: W's gradient times it (a real bug)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(1).normal(size=(8, 8)) / np.sqrt(8))
        self.factor = factor
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.tanh(x @ self.W.data.astype(np.float32))

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        y = np.tanh(self._x @ self.W.data)
        d = g * (1 - y * y)
        self.W.grad += self.factor * (self._x.T @ d)
        return d @ self.W.data.T


_NOT_EXPLAINED = "It does not explain the failure: along a random direction, on a step of 1e-3 of the values"


@pytest.mark.parametrize("factor", [2.0, -1.0])
def test_a_real_bug_beside_a_float32_read_keeps_its_diagnosis(factor: float) -> None:
    """The float32 words replaced the diagnosis of a real factor-2 or sign bug (an outside review)."""
    w = _run(_Tanh32(factor), _x(6, 8))["W"]
    assert not w.passed and w.diagnosis is not None
    assert w.diagnosis.startswith(f"constant factor over the whole tensor: analytic = {factor:g}")
    (note,) = [n for n in w.notes if FLOAT32_WORDS in n]
    assert "forward reads it in float32" in note and _NOT_EXPLAINED in note
    assert note.endswith(f"analytic / slope = {factor:g}: a wrong gradient besides")
    right = _run(_Tanh32(1.0), _x(6, 8))
    assert right["W"].passed and "does not explain" not in str(right)


@pytest.mark.parametrize("factor", [2.0, -1.0])
def test_a_real_bug_beside_a_float32_read_is_said_when_no_diagnosis_names_it(factor: float) -> None:
    """With no ordinary diagnosis (the staircase's values are mostly 0), the float32 words are the diagnosis, and
    say the staircase does not explain the failure."""
    class Off(_Dense32):
        def backward(self, g: np.ndarray) -> np.ndarray:
            assert self._x is not None
            d = g * (1 - np.tanh(self._x @ self.W.data) ** 2)
            self.W.grad += factor * (self._x.T @ d)
            return d @ self.W.data.T

    w = _run(Off("forward32"), _x())["W"]
    assert not w.passed and w.diagnosis is not None and w.problems == []
    assert "forward reads it in float32" in w.diagnosis and _NOT_EXPLAINED in w.diagnosis
    assert w.diagnosis.endswith(f"analytic / slope = {factor:g}: a wrong gradient besides")
    right = _run(_Dense32("forward32"), _x())["W"]
    assert right.diagnosis is not None and "forward reads it in float32" in right.diagnosis
    assert "does not explain" not in right.diagnosis


def test_the_float64_layer_passes_clean() -> None:
    _clean(_run(_Dense32(), _x()))


def test_a_float32_parameter_model_is_not_diagnosed_as_float32() -> None:
    layer = _Dense32()
    layer.W.data = layer.W.data.astype(np.float32)  # (the check runs on a float64 copy: right)
    report = _run(layer, _x())
    assert report.passed and FLOAT32_WORDS not in str(report)


def test_a_real_bug_of_a_small_relative_size_is_not_called_float32() -> None:
    class Off(_Dense32):
        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = super().backward(g)
            self.W.grad *= 1 + 1e-4
            return dx

    w = _run(Off(), _x())["W"]
    assert not w.passed and (w.diagnosis is None or FLOAT32_WORDS not in w.diagnosis)


def test_a_tiny_error_of_one_element_stays_an_isolated_element() -> None:
    class OneOff(_Dense32):
        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = super().backward(g)
            dx[2, 1] *= 1 + 2e-7  # a float64 error of its own, as small as float32's round-off
            return dx

    r = _run(OneOff(), _x())["input"]
    assert r.failed == 1 and r.diagnosis is not None
    assert r.diagnosis.startswith("only 1 isolated element(s) wrong, at [(2, 1)]")


# ---------------------------------------------------------------- S2: a sign flip of a one-element tensor
class _Temperature(md.Layer):
    """y = x / T, a scalar T; ``sign``: T's gradient with the wrong sign."""

    def __init__(self, t: float, sign: bool = False) -> None:
        super().__init__()
        self.T = md.Parameter(np.array(t))
        self.sign = sign
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x / self.T.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        assert self._x is not None
        t = self.T.data
        self.T.grad += (1 if self.sign else -1) * np.sum(g * self._x / t ** 2)
        return g / t


@pytest.mark.parametrize("shape", [(), (1,)])
def test_a_sign_flip_of_a_scalar_is_diagnosed(shape: tuple[int, ...]) -> None:
    layer = _Temperature(2.0, sign=True)
    layer.T.data = layer.T.data.reshape(shape)
    t = _run(layer, _x())["T"]
    assert not t.passed
    assert t.diagnosis == "sign flip: the analytic gradient is minus the numerical one (a wrong sign in backward)"
    _clean(_run(_Temperature(2.0), _x()))


def test_a_scalar_off_by_a_factor_is_not_called_a_sign_flip() -> None:
    class Twice(_Temperature):
        def backward(self, g: np.ndarray) -> np.ndarray:
            dx = super().backward(g)
            self.T.grad *= 2
            return dx

    t = _run(Twice(2.0), _x())["T"]
    assert not t.passed and (t.diagnosis is None or "sign flip" not in t.diagnosis)


# ---------------------------------------------------------------- S1: a plain dict of Parameters
def test_a_dict_of_parameters_is_told_to_assign_attributes_not_a_layer_list() -> None:
    class DictP(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.params = {"W": md.Parameter(np.ones((2, 2)))}

    with pytest.raises(TypeError) as info:
        DictP()
    said = str(info.value)
    assert "DictP.params: Parameter objects in a plain dict (params['W'])" in said
    assert "assign each parameter as an attribute of the layer" in said
    assert "setattr(self, f'params_{key}', p)" in said
    assert "md.LayerList holds layers, not parameters" in said
    assert "LayerList(), then" not in said

    # what it advises works: each registered under its own name
    class Attrs(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            for key in ("a", "b"):
                setattr(self, f"params_{key}", md.Parameter(np.ones((2, 2))))

    assert [name for name, _ in Attrs().named_parameters()] == ["params_a", "params_b"]


def test_a_list_of_layers_keeps_the_layer_list_advice() -> None:
    class ListL(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = [md.Dense(2, 2), md.Tanh()]

    with pytest.raises(TypeError, match=r"self\.blocks = md\.LayerList\(\), then self\.blocks\.append\(layer\)"):
        ListL()
