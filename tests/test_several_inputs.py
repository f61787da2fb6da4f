"""Layers and models with several inputs: a tuple in, a tuple of gradients back (minidl.inputs).

The gradient checker checks each floating input as its own tensor and leaves masks alone; fit,
evaluate and predict batch every input the same way; a wrong or missing tuple is caught."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.inputs import as_inputs, count, is_several, rows, take_rows
from minidl.testing import assert_backward_params_contract


class Gated(md.Model):
    """y = Dense(a) * sigmoid(Dense(b)): two float inputs (N, da) and (N, db) -> (N, out)."""

    def __init__(self, da: int, db: int, out: int, seed: int = 0, bug: str = "") -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.value = md.Dense(da, out, rng=rng)
        self.gate = md.Dense(db, out, rng=rng)
        self.sigmoid = md.Sigmoid()
        self.bug = bug

    def forward(self, x: Any) -> np.ndarray:
        a, b = x
        self._v = self.value(a)
        self._s = self.sigmoid(self.gate(b))
        return self._v * self._s

    def backward(self, grad_output: np.ndarray) -> Any:
        da = self.value.backward(grad_output * self._s)
        db = self.gate.backward(self.sigmoid.backward(grad_output * self._v))
        if self.bug == "swap":
            return db, da
        if self.bug == "one":
            return da
        if self.bug == "none":
            return da, None
        if self.bug == "first twice":
            return da, da
        return da, db


class MaskedMean(md.Layer):
    """The mean over the unmasked steps: x (N, T, F) and keep (N, T) booleans -> (N, F)."""

    def forward(self, x: Any) -> np.ndarray:
        values, keep = x
        weights = (keep / keep.sum(axis=1, keepdims=True)).astype(values.dtype)
        self._cache = (weights, values.shape)
        return np.einsum("nt,ntf->nf", weights, values)

    def backward(self, grad_output: np.ndarray) -> Any:
        weights, shape = self._cache
        return np.broadcast_to(weights[:, :, None] * grad_output[:, None, :], shape).copy(), None


def _pair(n: int, da: int, db: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, da)), rng.standard_normal((n, db))


@pytest.mark.parametrize("n, da, db, out", [(4, 3, 2, 2), (6, 1, 5, 3), (1, 4, 4, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_two_float_inputs_are_checked_as_two_tensors(n: int, da: int, db: int, out: int, seed: int) -> None:
    a, b = _pair(n, da, db, seed)
    report = md.GradientChecker(Gated(da, db, out, seed), inputs=(a, b), seed=seed).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input[0]", "input[1]", "value.W", "gate.W"]
    by_name = {r.name: r for r in report.results}
    assert by_name["input[0]"].shape == (n, da) and by_name["input[1]"].shape == (n, db)
    assert by_name["input[0]"].checked == n * da  # every element, not a sample


def test_the_checker_leaves_the_given_inputs_alone() -> None:
    a, b = _pair(3, 2, 2, 0)
    a32 = a.astype(np.float32)
    saved = a32.copy(), b.copy()
    assert md.GradientChecker(Gated(2, 2, 2), inputs=(a32, b)).run().passed
    assert a32.dtype == np.float32 and np.array_equal(a32, saved[0]) and np.array_equal(b, saved[1])


def test_a_mask_is_passed_as_is_and_not_checked() -> None:
    rng = np.random.default_rng(3)
    for n, t, f in [(3, 4, 2), (2, 5, 3)]:
        x = rng.standard_normal((n, t, f))
        keep = rng.random((n, t)) < 0.6
        keep[:, 0] = True
        report = md.GradientChecker(md.Sequential(MaskedMean(), md.Dense(f, 2, rng=rng)), inputs=(x, keep)).run()
        assert report.passed, str(report)
        assert [r.name for r in report.results] == ["input[0]", "1.W"]
        assert any("input[1] is an array of bool, not a float array" in note for note in report.notes)
        # the closed form: masked steps get no gradient, kept ones 1/count of the upstream row
        layer = MaskedMean()
        g = rng.standard_normal((n, f))
        layer((x, keep))
        dx, dmask = layer.backward(g)
        assert dmask is None
        expected = keep[:, :, None] * g[:, None, :] / keep.sum(axis=1)[:, None, None]
        np.testing.assert_allclose(dx, expected, rtol=1e-14)


def test_a_sequential_returns_its_first_layers_tuple() -> None:
    rng = np.random.default_rng(0)
    x, keep = rng.standard_normal((2, 3, 4)), np.ones((2, 3), dtype=bool)
    model = md.Sequential(MaskedMean(), md.Dense(4, 2, rng=rng))
    model((x, keep))
    dx, dmask = model.backward(np.ones((2, 2)))
    assert dx.shape == x.shape and dmask is None


@pytest.mark.parametrize("bug, words", [
    ("swap", "the gradients of two inputs are swapped in the tuple backward returns"),
    ("one", "backward returned one array, expected a tuple of 2 gradients, one per input"),
    ("none", "backward returned None instead of dCost/dinput[1]"),
    ("first twice", "backward returns the dCost/dinput[0] as dCost/dinput[1]"),
])
def test_a_wrong_tuple_is_named(bug: str, words: str) -> None:
    a, b = _pair(4, 3, 3, 0)
    report = md.GradientChecker(Gated(3, 3, 2, bug=bug), inputs=(a, b)).run()
    assert not report.passed
    assert words in str(report), str(report)
    by_name = {r.name: r for r in report.results}
    assert by_name["value.W"].passed and by_name["gate.W"].passed  # the parameters are right
    assert not by_name["input[1]"].passed
    assert bug in ("none", "first twice") or not by_name["input[0]"].passed


def test_each_sublayer_is_checked_alone_on_its_tuple() -> None:
    rng = np.random.default_rng(1)

    class Outer(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Gated(3, 2, 2)
            self.head = md.Dense(2, 1, rng=rng)

        def forward(self, x: Any) -> np.ndarray:
            return self.head(self.inner(x))

        def backward(self, grad_output: np.ndarray) -> Any:
            return self.inner.backward(self.head.backward(grad_output))

    report = md.GradientChecker(Outer(), inputs=_pair(4, 3, 2, 1), check_layers=True).run()
    assert report.passed, str(report)
    assert set(report.layers) >= {"inner", "head"}
    assert [r.name for r in report.layers["inner"].results][:2] == ["input[0]", "input[1]"]


def test_fit_evaluate_and_predict_batch_every_input_alike() -> None:
    rng = np.random.default_rng(0)
    n = 200
    a, b = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    teacher = Gated(3, 2, 1, seed=5)
    y = teacher((a, b))
    model = Gated(3, 2, 1, seed=6)
    before = md.evaluate(model, (a, b), y, loss=md.MSELoss())["loss"]
    history = md.fit(model, (a, b), y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters(), lr=0.05),
                     epochs=40, batch_size=16, rng=1, verbose=0, validation_data=((a[:50], b[:50]), y[:50]))
    after = md.evaluate(model, (a, b), y)["loss"]
    assert after < 0.05 * before, (before, after)
    assert history["loss"][-1] < history["loss"][0]
    np.testing.assert_allclose(md.predict(model, (a, b), batch_size=7), model((a, b)), rtol=1e-12)
    np.testing.assert_allclose(model.predict((a, b)), model((a, b)), rtol=1e-12)


def test_fit_shuffles_the_inputs_together() -> None:
    class Pairs(md.Layer):
        """Refuses a batch whose second input is not twice its first (row by row)."""

        def __init__(self) -> None:
            super().__init__()
            self.w = md.Parameter(np.ones((1, 1)))

        def forward(self, x: Any) -> np.ndarray:
            a, b = x
            assert np.array_equal(b, 2 * a), "rows of the two inputs were shuffled apart"
            self._a = a
            return a * self.w.data

        def backward(self, grad_output: np.ndarray) -> Any:
            self.w.grad += (grad_output * self._a).sum(keepdims=True).reshape(1, 1)
            return grad_output * self.w.data, None

    a = np.arange(40.0)[:, None]
    layer = Pairs()
    md.fit(layer, (a, 2 * a), 0.5 * a, loss=md.MSELoss(), optimizer=md.SGD(layer.parameters(), lr=1e-4),
           epochs=20, batch_size=7, rng=0, verbose=0)
    assert abs(layer.w.data[0, 0] - 0.5) < 1e-3  # it trained, on batches whose rows stayed paired


def test_bad_several_inputs_are_refused() -> None:
    model = Gated(3, 2, 1)
    a, b = _pair(10, 3, 2, 0)
    y = np.zeros((10, 1))
    opt = md.SGD(model.parameters(), lr=0.1)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(md.ShapeError, match=r"x\[0\] has 10, x\[1\] has 9"):
        md.fit(model, (a, b[:9]), y, loss=md.MSELoss(), optimizer=opt, verbose=0)
    with pytest.raises(md.ShapeError, match="x has 10 samples but y has 9"):
        md.fit(model, (a, b), y[:9], loss=md.MSELoss(), optimizer=opt, verbose=0)
    with pytest.raises(md.ShapeError, match=r"x\[1\] needs a batch axis"):
        md.predict(model, (a, np.ones(())))
    with pytest.raises(md.DTypeError, match=r"x mixes numpy arrays with other values \(item 1: list\)"):
        md.predict(model, (a, [1.0] * 10))
    with pytest.raises(md.ShapeError, match=r"validation x\[0\] has 10, validation x\[1\] has 4"):
        md.fit(model, (a, b), y, loss=md.MSELoss(), optimizer=opt, verbose=0, validation_data=((a, b[:4]), y))
    assert all(np.array_equal(p.data, q) for p, q in zip(model.parameters(), before, strict=True))


def test_what_counts_as_several_inputs() -> None:
    a, b = np.zeros((3, 2)), np.ones((3,), dtype=bool)
    assert is_several((a, b)) and is_several((a,))
    assert not is_several([a, b]) and not is_several(()) and not is_several(a) and not is_several((a, [1, 2]))
    # a tuple of numbers or lists is data for one array, as before
    converted = as_inputs(([1.0, 2.0], [3.0, 4.0]), "test")
    assert isinstance(converted, np.ndarray) and converted.shape == (2, 2)
    assert count((a, b)) == 3 and count(a) == 3
    first, second = rows((a, b), 1, 3)
    assert first.shape == (2, 2) and second.shape == (2,) and np.shares_memory(first, a)
    taken = take_rows((a, b), np.array([2, 0]))
    assert isinstance(taken, tuple) and taken[0].shape == (2, 2) and taken[1].dtype == bool


def test_a_one_input_layer_refuses_several_instead_of_stacking_them() -> None:
    a, b = _pair(2, 3, 3, 0)
    model = md.Sequential(md.Dense(3, 2, rng=0))
    pattern = r"Dense\(3 -> 2\): expected input as one numpy array, got a tuple of 2 items holding arrays"
    with pytest.raises(md.DTypeError, match=pattern):
        md.predict(model, (a, b))  # two inputs of two samples: once silently stacked into (2, 2, 3)
    with pytest.raises(md.DTypeError, match=pattern):
        md.GradientChecker(md.Dense(3, 2, rng=0), inputs=(a, b)).run()
    with pytest.raises(md.DTypeError, match=r"inputs mixes numpy arrays with other values \(item 1: list\)"):
        md.GradientChecker(Gated(3, 3, 2), inputs=(a, b.tolist())).run()
    Pair = __import__("collections").namedtuple("Pair", "a b")
    with pytest.raises(md.DTypeError, match=r"x is a Pair holding arrays; several inputs are a plain tuple"):
        md.predict(Gated(3, 3, 2), Pair(a, b))
    with pytest.raises(md.ShapeError, match="x needs a non-empty batch axis"):
        md.predict(model, np.array(1.0))
    with pytest.raises(md.DTypeError, match="predict: x is a masked array"):  # its hidden values would be used
        md.predict(model, np.ma.masked_array(1.0))


class Indexed(md.Layer):
    """y = table[indices] * gain: integer indices (N,) and a float gain (N, 1) -> (N, F)."""

    def __init__(self, bug: str = "") -> None:
        super().__init__()
        self.table = md.Parameter(np.random.default_rng(0).normal(size=(5, 2)))
        self.bug = bug

    def forward(self, x: Any) -> np.ndarray:
        self._x = x
        indices, gain = x
        return self.table.data[indices] * gain

    def backward(self, grad_output: np.ndarray) -> Any:
        indices, gain = self._x
        np.add.at(self.table.grad, indices, grad_output * gain)
        dgain = (grad_output * self.table.data[indices]).sum(axis=1, keepdims=True)
        return (np.zeros(indices.shape), dgain) if self.bug == "index gradient" else (None, dgain)


def test_an_index_input_must_get_none_and_the_float_one_is_checked() -> None:
    rng = np.random.default_rng(2)
    inputs = (np.array([0, 3, 3, 1]), rng.normal(size=(4, 1)))
    report = md.GradientChecker(Indexed(), inputs=inputs).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == ["input[1]", "table"]
    wrong = md.GradientChecker(Indexed("index gradient"), inputs=inputs).run()
    assert not wrong.passed and all(r.passed for r in wrong.results)
    assert wrong.problems == ["backward returned a gradient for input[0] (an array of int64), which has none: "
                              "return None for it"]


def test_without_a_float_input_the_tuples_form_is_still_checked() -> None:
    class Lookup(md.Layer):
        def __init__(self, wrong: bool) -> None:
            super().__init__()
            self.table = md.Parameter(np.arange(6.0).reshape(3, 2))
            self.wrong = wrong

        def forward(self, x: Any) -> np.ndarray:
            self._indices, keep = x
            return self.table.data[self._indices] * keep[:, None]

        def backward(self, grad_output: np.ndarray) -> Any:
            np.add.at(self.table.grad, self._indices, grad_output)
            return None if self.wrong else (None, None)

    inputs = (np.array([0, 2, 2]), np.ones(3, dtype=bool))
    assert md.GradientChecker(Lookup(False), inputs=inputs).run().passed
    report = md.GradientChecker(Lookup(True), inputs=inputs).run()
    assert report.problems == ["backward returned None, expected a tuple of 2 gradients, one per input (None for "
                               "an input without gradient)"]


def test_summary_of_a_model_with_several_inputs() -> None:
    class Masked(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.pool = MaskedMean()
            self.head = md.Dense(4, 2, rng=0, dtype=np.float32)

        def forward(self, x: Any) -> np.ndarray:
            return self.head(self.pool(x))

        def backward(self, grad_output: np.ndarray) -> Any:
            return self.pool.backward(self.head.backward(grad_output))

        def input_shape_hint(self) -> tuple[int, ...]:
            return (3, 4)

        def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
            return rng.standard_normal(shape), np.ones(shape[:2], dtype=bool)

    text = str(md.summarize(Masked()))
    assert "pool" in text and "(None, 4)" in text and "(None, 2)" in text, text
    assert md.GradientChecker(Masked()).run().passed


def test_containers_refuse_what_they_cannot_take_before_anything_runs() -> None:
    rng = np.random.default_rng(11)
    d = md.Dense(3, 3, rng=0)
    for build in (lambda: md.Sequential(md.Stack(md.Dense(3, 3, rng=1), d), d),
                  lambda: md.Stack(md.Sequential(md.Dense(3, 3, rng=1), d), d)):
        with pytest.raises(ValueError, match="already"):  # one layer run twice in a pass: its cache would break
            build()
    gru = md.GRU(3, 2, rng=0)
    with pytest.raises(ValueError, match="would share a layer"):
        md.Bidirectional(md.Stack(gru), gru)
    x, mask = rng.normal(size=(2, 4, 4)), np.zeros((2, 4), dtype=bool)
    residual = md.Residual(md.MultiHeadAttention(4, 2, rng=0))
    residual(x)
    dx = residual.backward(np.ones((2, 4, 4)))
    with pytest.raises(md.ShapeError, match="Residual: takes one array, got a tuple of several inputs"):
        residual((x, mask))
    np.testing.assert_array_equal(residual.backward(np.ones((2, 4, 4))), dx)  # the last pass is kept
    rows = ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])  # a tuple of lists is data, as everywhere
    np.testing.assert_allclose(md.Residual(md.Dense(3, 3, rng=0))(rows), np.array(rows) + md.Dense(3, 3, rng=0)(
        np.array(rows)))
    block = md.TransformerEncoderLayer(4, 2, 8, dropout=0.0, rng=0)
    with pytest.raises(ValueError, match="TransformerEncoder: the final norm is a layer of a block"):
        md.TransformerEncoder(block, norm=block.norm1)
    stack = md.Stack(md.Dense(4, 4, rng=0))
    with pytest.raises(md.BackwardBeforeForwardError, match=r"Stack\.backward_params: no forward ran"):
        stack.backward_params(np.ones((2, 4)))
    stack = md.Stack(md.LSTM(4, 3, rng=0))  # (a new one)
    with pytest.raises(md.ShapeError, match=r"Stack: expected x or a tuple .* got a tuple of 1"):
        stack((x,))
    with pytest.raises(TypeError, match="Stack indices must be integers, got slice"):
        stack[0:1]  # type: ignore[call-overload]
    with pytest.raises(md.DTypeError, match=r"the last input is an array of int64: a padding mask must be booleans"):
        md.GRU(4, 4, rng=0)((x, np.zeros((2, 4), dtype=np.int64)))
    Pair = __import__("collections").namedtuple("Pair", "x mask")
    with pytest.raises(md.DTypeError, match=r"x is a Pair holding arrays; several inputs are a plain tuple"):
        md.TransformerDecoderLayer(4, 2, 8, rng=0)(Pair(x, x))


def test_stack_backward_params_skips_what_training_does_not_need() -> None:
    """As Sequential.backward_params: nothing in front of the first trainable layer runs its backward, and
    that layer is asked for its parameter gradients only; the gradients are backward's."""
    rng = np.random.default_rng(12)
    calls: list[str] = []

    class Spy(md.GRU):
        def backward(self, grad_output: np.ndarray) -> Any:
            calls.append("backward")
            return super().backward(grad_output)

    def build() -> md.Stack:
        frozen = Spy(3, 3, rng=2)
        frozen.requires_grad_(False)  # a frozen first layer: nothing to train, no gradient wanted
        return md.Stack(frozen, md.GRU(3, 4, rng=0), md.GRU(4, 2, return_sequences=False, rng=1))

    x, mask = rng.normal(size=(3, 5, 3)), np.arange(5)[None, :] >= np.array([5, 3, 1])[:, None]
    g = rng.normal(size=(3, 2))
    assert_backward_params_contract(build, (x, mask), g, rtol=1e-13)
    stack = build()
    stack((x, mask))
    calls.clear()
    stack.backward_params(g)
    assert calls == []  # the frozen layer in front is skipped
    assert stack[1].W_x.has_grad and not stack[0].W_x.has_grad
    stack.backward(g)
    assert calls == ["backward"]  # (backward does run it: dx is wanted)


# --- fourteenth session: a Stack gives the other inputs only to layers that take them -------------


def _tokens_and_mask(seed: int, n: int = 3, t: int = 6, vocab: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, t), bool)
    mask[0, t - 2:] = True
    mask[n - 1, 2:] = True
    return rng.integers(0, vocab, size=(n, t)), mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stack_embeds_tokens_and_runs_masked_recurrent_layers_with_single_input_layers_between(seed: int) -> None:
    """Stack handed (tokens, mask) to Embedding and (h, mask) to LayerNorm and Dropout, which refused
    it, so an embedded masked recurrent stack needed a hand-written Model."""
    tokens, mask = _tokens_and_mask(seed)

    def make() -> tuple[md.Layer, ...]:
        return (md.Embedding(20, 8, rng=seed), md.GRU(8, 16, rng=seed + 1), md.LayerNorm(16),
                md.Dense(16, 12, rng=seed + 2), md.LSTM(12, 16, return_sequences=False, rng=seed + 3))

    parts = make()
    stack = md.Stack(*parts)
    y = stack((tokens, mask))
    by_hand = parts[4]((parts[3](parts[2](parts[1]((parts[0](tokens), mask)))), mask))
    np.testing.assert_array_equal(y, by_hand)
    g = np.random.default_rng(seed + 9).standard_normal(y.shape)
    for p in stack.parameters():
        p.zero_grad()
    assert stack.backward(g) == (None, None)  # tokens and a mask: no gradients
    got = {name: p.grad.copy() for name, p in stack.named_parameters()}
    for p in stack.parameters():
        p.zero_grad()
    d4 = parts[4].backward(g)[0]
    d1 = parts[1].backward(parts[2].backward(parts[3].backward(d4)))[0]
    parts[0].backward(d1)
    for name, p in stack.named_parameters():
        np.testing.assert_array_equal(got[name], p.grad, err_msg=name)
    report = md.GradientChecker(stack, inputs=(tokens, mask), seed=seed).run()
    assert report.passed, report
    assert_backward_params_contract(lambda: md.Stack(*make()), (tokens, mask), g)


def test_a_stack_still_gives_the_tuple_to_a_layer_of_your_own_and_a_sequential_as_its_first_layer() -> None:
    class MaskAware(md.Layer):  # single_input is False by default: it gets (h, mask)
        def forward(self, x: Any) -> np.ndarray:
            h, mask = x
            return np.where(mask[..., None], 0.0, h)

        def backward(self, grad_output: np.ndarray) -> Any:
            return grad_output, None

    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    _, mask = _tokens_and_mask(0, n=2, t=4)
    stack = md.Stack(md.Dense(3, 3, rng=0), MaskAware(), md.Sequential(md.GRU(3, 5, rng=1), md.ReLU()))
    assert stack[2].single_input is False and md.Sequential(md.ReLU()).single_input is True
    y = stack((x, mask))
    assert (y[mask] == 0).all()  # the GRU got the mask: zeros at the padding (then ReLU keeps them)
    dx, dmask = stack.backward(np.ones_like(y))
    assert dx.shape == x.shape and dmask is None
    assert md.GradientChecker(stack, inputs=(x, mask)).run().passed


def test_a_stack_never_drops_the_mask_silently() -> None:
    """A review of single_input: a Sequential that starts with a one-array layer but holds a recurrent
    one, and a subclass of a built-in layer whose forward takes (x, mask), were handed the array alone
    (the mask lost, the padding read); a Residual, which takes one array, was handed the tuple."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4))
    mask = np.zeros((2, 5), bool)
    mask[0, 3:] = True
    mixed = md.Stack(md.Sequential(md.Dense(4, 4, rng=0), md.LSTM(4, 4, return_sequences=False, rng=1)))
    assert mixed[0].single_input is False
    with pytest.raises(md.DTypeError, match=r"Stack layer 0: Sequential layer '0': Dense\(4 -> 4\): expected input "
                                            r"as one numpy array, got a tuple"):
        mixed((x, mask))  # refused, as before: never run without its mask

    class MaskedDense(md.Dense):  # a built-in one-array layer, subclassed to take the mask
        def forward(self, x: Any) -> np.ndarray:
            h, m = x
            return super().forward(np.where(m[..., None], 0.0, h))

        def backward(self, grad_output: np.ndarray) -> Any:
            return super().backward(grad_output), None

    class Scaled(md.Dense):  # a subclass that keeps Dense's forward: still one array
        pass

    stack = md.Stack(md.GRU(4, 4, rng=0), MaskedDense(4, 4, rng=1), Scaled(4, 4, rng=2))
    y = stack((x, mask))
    hand = md.GRU(4, 4, rng=0)((x, mask))
    expected = Scaled(4, 4, rng=2)(MaskedDense(4, 4, rng=1)((hand, mask)))
    np.testing.assert_array_equal(y, expected)
    assert md.GradientChecker(stack, inputs=(x, mask)).run().passed
    residual = md.Stack(md.GRU(4, 4, rng=0), md.Residual(md.Sequential(md.LayerNorm(4), md.Dense(4, 4, rng=2))),
                        md.GRU(4, 4, rng=3))
    assert residual((x, mask)).shape == (2, 5, 4)
    assert md.GradientChecker(residual, inputs=(x, mask)).run().passed


def test_a_pytorch_user_s_ways_of_passing_a_mask_get_messages_that_say_what_to_do() -> None:
    """From a user's walk through the docs: model(x, mask), fit(x, mask, y), predict(x, mask) (the mask
    taken for batch_size, printed whole), [x, mask] (a list: stacked, the booleans made indices), and a
    0/1 float mask where T equals hidden_size (taken for h_0 silently)."""
    tokens, mask = _tokens_and_mask(0, n=4, t=5)
    model = md.Sequential(md.Stack(md.Embedding(20, 8, rng=0), md.GRU(8, 5, return_sequences=False, rng=1)),
                          md.Dense(5, 2, rng=2))
    with pytest.raises(TypeError, match=r"called with one input; several inputs are one tuple: layer\(\(x, mask\)\)"):
        model(tokens, mask)
    for method, keywords in (("fit", {"loss": md.CrossEntropyLoss(), "optimizer": md.SGD(model.parameters(),
                                                                                       lr=0.1)}),
                             ("evaluate", {"loss": md.CrossEntropyLoss()})):
        for call, said in ((getattr(model, method), rf"^Sequential\.{method} takes x and y by position.*several "
                                                     rf"inputs are one tuple: model\.{method}\(\(x, mask\), y"),
                           (lambda *a, method=method, **k: getattr(md, method)(model, *a, **k),
                            rf"^{method}: takes x and y by position.*several inputs are one tuple: "
                            rf"{method}\(model, \(x, mask\), y")):
            with pytest.raises(TypeError, match=said):
                call(tokens, mask, np.zeros(4, int), **keywords)
            with pytest.raises(TypeError, match="several inputs are one tuple"):  # y as a list
                call(tokens, mask, [0, 1, 0, 1], **keywords)
    with pytest.raises(TypeError, match=r"Sequential\.evaluate takes x and y by position, the rest by keyword "
                                        r"\(batch_size=, metrics=, ...\)"):
        model.evaluate((tokens, mask), np.zeros(4, int), 32, loss=md.CrossEntropyLoss())
    with pytest.raises(TypeError, match=r"not mha\(q, k, v\)"):
        md.MultiHeadAttention(4, 2)(np.ones((1, 2, 4)), np.ones((1, 2, 4)), np.ones((1, 2, 4)))
    with pytest.raises(TypeError, match=r"predict: batch_size must be an int >= 1, got an array of shape \(4, 5\); "
                                        r"several inputs are one tuple"):
        model.predict(tokens, mask)  # type: ignore[arg-type]
    with pytest.raises(md.DTypeError, match=r"is a list of 2 arrays mixing booleans with numbers \(bool, int64\); "
                                            r"several inputs are one tuple"):
        model([tokens, mask])
    with pytest.raises(md.DTypeError, match="inputs is a list of 2 arrays"):
        md.GradientChecker(model, inputs=[tokens, mask]).run()
    assert model.predict((tokens, mask)).shape == (4, 2)
    embedded = md.Embedding(20, 3, rng=0)(tokens)  # T = 5 = hidden_size: a float mask has h_0's shape
    gru = md.GRU(3, 5, rng=1)
    with pytest.warns(UserWarning, match=r"holds only 0s and 1s in floats and is taken as the initial state h_0 "
                                         r"\(T equals hidden_size\); if it is a padding mask, pass booleans"):
        as_state = gru((embedded, mask.astype(float)))  # (a one-hot state is a state: taken, with a warning)
        assert not np.allclose(as_state, md.GRU(3, 5, rng=1)((embedded, mask)))  # a state, not a mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zeros = gru((embedded, np.zeros((4, 5))))  # an initial state of zeros (or ones, or others) is a state
        np.testing.assert_array_equal(zeros, gru(embedded))
        assert gru((embedded, np.full((4, 5), 0.5))).shape == (4, 5, 5)
    with pytest.raises(TypeError, match=r"Sequential\.fit takes x and y by position, the rest by keyword "
                                        r"\(batch_size=, epochs=, validation_data=, ...\) \(got 3 positional "
                                        r"arguments\)$"):
        model.fit((tokens, mask), np.zeros(4, int), 32, loss=md.CrossEntropyLoss(),  # Keras's positional batch_size
                  optimizer=md.SGD(model.parameters(), lr=0.1))


def test_sgd_says_why_a_fourth_positional_argument_is_refused() -> None:
    with pytest.raises(TypeError, match=r"SGD takes params, lr and momentum by position, the rest by keyword \(got 4 "
                                        r"positional arguments\): PyTorch's fourth is dampening"):
        md.SGD([md.Parameter(np.zeros(2))], 0.1, 0.9, 0.5)


def test_a_residual_takes_the_tuple_when_its_block_needs_the_mask_and_refuses_it() -> None:
    """Residual said single_input = True whatever its block: a masked Bidirectional inside it ran
    without the mask in a Stack, silently (and the checker cannot see it)."""
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    mask = np.zeros((2, 5), bool)
    mask[0, 3:] = True
    masked = md.Residual(md.Bidirectional(md.GRU(4, 2, rng=1), md.GRU(4, 2, rng=2)))
    assert masked.single_input is False and md.Residual(md.Dense(4, 4)).single_input is True
    with pytest.raises(md.ShapeError, match="Residual: takes one array"):
        md.Stack(md.Dense(4, 4, rng=0), masked)((x, mask))
    assert md.Sequential().single_input is True  # (the identity)
    y = md.Stack(md.GRU(4, 4, rng=0), md.Sequential(), md.GRU(4, 4, rng=1))((x, mask))
    assert y.shape == (2, 5, 4)


def test_a_list_or_tuple_in_third_place_that_is_not_an_input_gets_the_keyword_hint() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0))
    x, y = np.zeros((8, 3)), np.zeros(8, int)
    # no loss given yet
    with pytest.raises(TypeError, match=r"several inputs are one tuple: model\.fit\(\(x, mask\), y"):
        model.fit(x, np.ones((8, 3), bool), y)
    for call, hint in ((lambda: md.evaluate(model, x, y, ["accuracy"], loss=md.CrossEntropyLoss()), "metrics="),
                       (lambda: md.fit(model, x, y, (x, y), loss=md.CrossEntropyLoss(),
                                       optimizer=md.SGD(model.parameters(), lr=0.1)), "validation_data=")):
        with pytest.raises(TypeError, match=rf"takes x and y by position, the rest by keyword \(.*{hint}"):
            call()
    with pytest.raises(TypeError, match=r"not layer\(x, mask\)$"):  # (the attention hint only for attention)
        md.Dense(3, 2)(x, x)


def test_the_spread_input_hint_for_small_batches_lists_and_0d_values() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0))
    x, y = np.zeros((2, 3)), np.zeros(2, int)
    loss, opt = md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=0.1)
    for third in (["accuracy", "loss"], [x, y], np.array(32)):  # as long as x, but not an input; 0-d
        with pytest.raises(TypeError, match=r"the rest by keyword \("):
            md.fit(model, x, y, third, loss=loss, optimizer=opt)
    mask = np.ones((2, 3), bool)
    with pytest.raises(TypeError, match="several inputs are one tuple"):  # x as a list: still a spread input
        model.fit(x.tolist(), mask, y, loss=loss, optimizer=opt)


class TwoHeads(md.Model):
    """Two outputs (a tuple) from one input: x (N, 3) -> ((N, 2), (N, 2))."""

    def __init__(self) -> None:
        super().__init__()
        self.a = md.Dense(3, 2, rng=0)
        self.b = md.Dense(3, 2, rng=1)

    def forward(self, x: np.ndarray) -> Any:
        return self.a(x), self.b(x)

    def backward(self, grad_output: Any) -> np.ndarray:
        ga, gb = grad_output
        return self.a.backward(ga) + self.b.backward(gb)


class BothHeadsMSE(md.Loss):
    """The mean squared error of both heads against one target (a loss that takes a tuple)."""

    def forward(self, y_pred: Any, y_true: Any) -> float:
        self._diffs = tuple(head - y_true for head in y_pred)
        return float(sum(np.vdot(d, d) for d in self._diffs)) / self._diffs[0].size

    def backward(self) -> Any:
        return tuple(2 * d / d.size for d in self._diffs)


def test_a_model_with_two_outputs_weighs_its_batches_by_their_samples() -> None:
    """fit and evaluate weigh a batch by its samples (the first output's rows), not by the tuple's length:
    batches of 4, 4 and 2 average to the full-batch loss."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    model = TwoHeads()
    full = BothHeadsMSE()(model(x), y)
    history = model.fit(x, y, loss=BothHeadsMSE(), optimizer=md.SGD(model.parameters(), lr=1e-300), epochs=1,
                        batch_size=4, shuffle=False, verbose=0)
    assert history.history["loss"] == [pytest.approx(full, rel=1e-14)]
    assert model.evaluate(x, y, loss=BothHeadsMSE(), batch_size=4)["loss"] == pytest.approx(full, rel=1e-14)


@pytest.mark.parametrize("batch_size", [4, 10, 256])
def test_predict_gathers_every_output_of_a_model_with_several(batch_size: int) -> None:
    x = np.random.default_rng(1).normal(size=(10, 3))
    model = TwoHeads()
    a, b = model(x)
    predicted = model.predict(x, batch_size=batch_size)
    assert type(predicted) is tuple and len(predicted) == 2
    np.testing.assert_array_equal(predicted[0], a)
    np.testing.assert_array_equal(predicted[1], b)
    assert all(p.flags.writeable and not np.may_share_memory(p, x) for p in predicted)


def test_predict_refuses_outputs_that_change_between_batches_or_lack_rows() -> None:
    class Unsteady(md.Model):
        def __init__(self, outputs: Any) -> None:
            super().__init__()
            self.outputs, self.calls = outputs, 0

        def forward(self, x: np.ndarray) -> Any:
            self.calls += 1
            return self.outputs(x, self.calls)

        def backward(self, grad_output: Any) -> Any:
            return grad_output

    x = np.ones((6, 2))
    cases = [
        (lambda x, k: (x, x) if k == 1 else x, r"outputs changed between batches: 2, then one array"),
        (lambda x, k: (x, x) if k == 1 else (x, x, x), r"outputs changed between batches: 2, then 3"),
        (lambda x, k: (x, x[:, :1] if k == 1 else x), r"output 1 changed shape between batches: \(1,\) per sample, "
                                                      r"then \(2,\)"),
        (lambda x, k: (x, x.sum()), r"output 1 of 2 must have one row per sample; a batch of 4 gave an output of "
                                    r"shape \(\)"),
    ]
    cases.append((lambda x, k: (), r"the model returned an empty tuple: no output to gather"))
    for outputs, message in cases:
        with pytest.raises(md.ShapeError, match=message):
            md.predict(Unsteady(outputs), x, batch_size=4)
    for batch_size in (4, 6):  # one array returned twice: two arrays of predict's own, whatever the batches
        first, second = md.predict(Unsteady(lambda x, k: (x + 1,) * 2), x, batch_size=batch_size)
        assert first is not second and not np.may_share_memory(first, second)
        np.testing.assert_array_equal(first, x + 1)
