"""GradientChecker: a backward that modifies in place what its forward left (its input, its output, its cache),
and a forward that rebinds a parameter (found by a learner's review).

A backward that does ``y *= 1 - y`` on its cached output computes the right gradient once: the check passed, since
its accumulation check runs a forward again (rebuilding the cache) before the second backward.  One that does
``x *= 0`` on its cached input zeroed the checker's input, which the report called "assigns into .grad".  The
layer contract (docs/custom-layers.md): backward(g1) then backward(g2) on the same forward gives the gradients of
g1 + g2, and x is never modified."""

from __future__ import annotations

import numpy as np

import minidl as md
from minidl.gradcheck import GradientChecker

X = np.random.default_rng(0).normal(size=(4, 3))
CONTRACT = "a backward only reads its cache; backward(g1) then backward(g2) on the same forward must give"
MISLEADING = ("assigns into .grad", "did not add the same gradient", "two backward passes at the same point")


def _sig(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


class SigP(md.Layer):
    """y = sigmoid(x * a); ``bug``: its backward turns its cached sigmoid into its derivative in place."""

    def __init__(self, bug: bool = True) -> None:
        super().__init__()
        self.a = md.Parameter(np.random.default_rng(1).normal(size=3))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _sig(x * self.a.data)
        self._c = (x, y)
        return y.copy()

    def backward(self, g: np.ndarray) -> np.ndarray:
        x, y = self._c
        if self.bug:
            y *= 1 - y  # breaks the contract
            d = g * y
        else:
            s = 1 - y  # a fresh array of its own: writing into it is fine
            s *= y
            d = g * s
        self.a.grad += (d * x).sum(0)
        return d * self.a.data


class BwdMutX(md.Layer):
    """y = x * a; the backward is right, then zeroes the cached input (the caller's x) in place."""

    def __init__(self) -> None:
        super().__init__()
        self.a = md.Parameter(np.random.default_rng(1).normal(size=3))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * self.a.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._x
        self.a.grad += (g * x).sum(0)
        dx = g * self.a.data
        x *= 0.0  # breaks the contract: "frees" the cache in place
        return dx


class SigOut(md.Layer):
    """y = sigmoid(x), returning its cached output itself; its backward modifies it in place."""

    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = _sig(x)
        return self._y

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._y *= 1 - self._y
        return g * self._y


class Scratch(md.Layer):
    """y = tanh(x) @ W, right: its backward reuses a scratch buffer it owns (written whole every time)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.random.default_rng(2).normal(size=(3, 3)))
        self._buf: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._t = np.tanh(x)
        return self._t @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        if self._buf is None or self._buf.shape != g.shape:
            self._buf = np.empty_like(g)
        np.matmul(g, self.W.data.T, out=self._buf)
        self.W.grad += self._t.T @ g
        self._buf *= 1 - self._t**2
        return self._buf.copy()


class ParamLater(md.Layer):
    """y = x @ W with W made in forward: at every forward (``every``), or once, lazily."""

    def __init__(self, every: bool = True) -> None:
        super().__init__()
        self.every = every

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.every or "W" not in self._parameters:
            self.W = md.Parameter(np.ones((x.shape[1], 2)))
        self._x = x
        return x @ self.W.data

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.W.grad += self._x.T @ g
        return g @ self.W.data.T


def _no_misleading(report: md.GradientReport) -> None:
    words = report.problems + [p for r in report.results for p in r.problems]
    assert not [p for p in words if p.startswith(MISLEADING) or f": {MISLEADING[0]}" in p], words


def test_a_backward_that_modifies_its_cache_fails_naming_the_layer() -> None:
    report = GradientChecker(SigP(), inputs=X).run()
    assert not report.passed and report.failed
    assert report.problems == [
        "the model itself (SigP): backward modified its forward's output or cache in place (the layer contract: "
        f"{CONTRACT} the gradients of g1 + g2): a second backward on the same forward gives another dx, dCost/da. "
        "Compute into new arrays: d = y * (1 - y), not y *= 1 - y"]
    assert {r.name for r in report.failed} == {"input", "a"}
    assert report["a"].problems == [
        "the model itself (SigP): backward modified its forward's output or cache in place: a second backward on "
        "the same forward gives another dCost/da (see the problem below the table)"]
    _no_misleading(report)


def test_a_backward_that_modifies_its_cache_fails_inside_a_sequential() -> None:
    report = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), SigP(), md.Dense(3, 2, rng=1)), inputs=X).run()
    assert not report.passed
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "layer '1' (SigP): backward modified its forward's output or cache in place")
    assert [r.name for r in report.failed] == ["1.a"]
    assert "layer '1' (SigP)" in report["1.a"].problems[0]


def test_a_backward_that_zeroes_its_input_is_named_not_called_an_assignment() -> None:
    """It zeroed the checker's input too, which made the second backward's gradient of 'a' equal to the first's:
    the report said "assigns into .grad instead of adding (+=)"."""
    x = X.copy()
    report = GradientChecker(BwdMutX(), inputs=x).run()
    assert np.array_equal(x, X)  # (the checker works on its copy)
    assert not report.passed and [r.name for r in report.failed] == ["a"]
    assert report.problems == [
        "the model itself (BwdMutX): backward modified its forward's input in place (the layer contract: "
        f"{CONTRACT} the gradients of g1 + g2): the caller's x (the model's input, or the output and cache of "
        "the layer before) is changed behind its back, and a second backward on the same forward gives another "
        "dCost/da. Compute into new arrays (dx = g * a), never x *= ..."]
    assert report["a"].problems == [
        "the model itself (BwdMutX): backward modified its forward's input in place: a second backward on the "
        "same forward gives another dCost/da (see the problem below the table)"]
    _no_misleading(report)
    # the table is the checker's input's: the checked gradients agree (its input was put back)
    assert report["a"].checked == 3 and report["a"].failed == 0 and report["input"].passed


def test_a_backward_that_zeroes_its_input_fails_after_a_dense() -> None:
    report = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), BwdMutX()), inputs=X).run()
    assert not report.passed and [r.name for r in report.failed] == ["1.a"]
    assert len(report.problems) == 1
    assert report.problems[0].startswith("layer '1' (BwdMutX): backward modified its forward's input in place")
    _no_misleading(report)


def test_a_backward_that_modifies_its_returned_output_is_named() -> None:
    report = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), SigOut(), md.Dense(3, 2, rng=1)),
                             inputs=X).run()
    assert not report.passed
    assert report.problems == [
        "layer '1' (SigOut): backward modified its forward's output in place (the layer contract: "
        f"{CONTRACT} the gradients of g1 + g2): a second backward on the same forward reads the changed array. "
        "Compute into new arrays: d = y * (1 - y), not y *= 1 - y"]


def test_right_backwards_writing_their_own_arrays_pass() -> None:
    for model in (SigP(bug=False), Scratch(), md.Sequential(md.Dense(3, 3, rng=0), Scratch(), SigP(bug=False))):
        report = GradientChecker(model, inputs=X).run()
        assert report.passed and not report.problems, str(report)


def test_a_cell_that_pops_a_stack_of_caches_is_no_cache_modified_in_place() -> None:
    """A cell run once per time step keeps one cache per call and pops it in backward: a second backward reads
    another cache by design (review of this change: its check alone got the problem)."""
    from test_gradcheck_notes_review import Unrolled

    for bug in (False, True):
        report = GradientChecker(Unrolled(bug=bug), check_layers=True).run()
        assert report.passed is not bug
        every = report.problems + [p for r in report.results for p in r.problems] + [
            p for sub in report.layers.values() for p in sub.problems + [q for r in sub.results for q in r.problems]]
        assert not [p for p in every if "modified its forward's" in p], every


def test_built_in_models_raise_no_false_alarm() -> None:
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 2, 5, 5))
    tokens = rng.normal(size=(2, 3, 4))
    models = [
        (md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 4, rng=1), md.ReLU(), md.Dense(4, 2, rng=2),
                       md.Sigmoid()), X),
        (md.Sequential(md.Dense(3, 4, rng=0), md.BatchNorm1d(4), md.Dropout(0.3, rng=1), md.Dense(4, 2, rng=2),
                       md.Softmax()), X),
        (md.Residual(md.Sequential(md.Dense(3, 3, rng=0), md.LayerNorm(3), md.GELU())), X),
        (md.Sequential(md.Conv2D(2, 3, 3, rng=0), md.MaxPool2D(2), md.Flatten(), md.Dense(3, 2, rng=1)), images),
        (md.Sequential(md.LSTM(4, 3, rng=0)), tokens),
        (md.MultiHeadAttention(4, 2, rng=0), tokens),
    ]
    for model, x in models:
        report = GradientChecker(model, inputs=x).run()
        assert report.passed and not report.problems, str(report)


def test_a_forward_that_rebinds_a_parameter_says_so() -> None:
    """Each forward made a new W: the report said W fails with every error 0, and that the backward "reads
    something an earlier forward left"."""
    report = GradientChecker(ParamLater(), inputs=X).run()
    assert not report.passed and [r.name for r in report.failed] == ["W"]
    assert report["W"].problems == [
        "forward rebinds parameter 'W' (create it in __init__ and only use it in forward): each forward that makes "
        "a new Parameter leaves the checker's perturbed one (and an optimizer's, and a loaded state_dict's) out of "
        "the cost, so its gradient cannot be checked nor trained"]
    inner = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), ParamLater()), inputs=X).run()
    assert [r.name for r in inner.failed] == ["1.W"]
    assert inner["1.W"].problems[0].startswith("forward rebinds parameter '1.W' (create it in __init__")
    assert inner["0.W"].passed


def test_a_forward_that_builds_a_parameter_at_its_first_call_is_checked_as_built() -> None:
    """A Keras-style build (W made once, at the first call) failed with 0 elements checked and the words "each
    forward ... cannot be checked nor trained" (an outside review): the checker's copy holds W after its first
    pass, so W is checked, with a note."""
    report = GradientChecker(ParamLater(every=False), inputs=X).run()
    assert report.passed and not report.problems, str(report)
    assert report["W"].checked == 6 and report["W"].problems == []
    assert report["W"].notes == [
        "forward creates parameter 'W' at its first call (built lazily): checked as built (an optimizer made before "
        "that first call does not hold it: make it after, or create the parameter in __init__)"]
    assert "cannot be checked nor trained" not in str(report)
    # made before the check (the model was called once), it is an ordinary parameter
    made = ParamLater(every=False)
    made(X)
    again = GradientChecker(made, inputs=X).run()
    assert again.passed and again["W"].notes == []


class LazyDense(md.Model):
    """Keras style: a Dense sub-layer built at the first call from the input's width; ``bug``: dx doubled."""

    def __init__(self, units: int, bug: bool = False) -> None:
        super().__init__()
        self.units, self.bug, self.built = units, bug, False

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.built:
            self.d = md.Dense(x.shape[1], self.units, rng=0)
            self.built = True
        return self.d(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = self.d.backward(g)
        return 2 * dx if self.bug else dx


def test_a_sub_layer_built_at_the_first_call_is_checked_and_its_bugs_found() -> None:
    model = LazyDense(2)
    report = GradientChecker(model, inputs=X).run()
    assert report.passed, str(report)
    assert report["d.W"].checked == 8 and report["d.W"].failed == 0
    assert report["d.W"].notes[0].startswith("forward creates parameter 'd.W' at its first call (built lazily): "
                                             "checked as built")
    assert not model.built  # (the user's model is left as it was: the check ran on a copy)
    bad = GradientChecker(LazyDense(2, bug=True), inputs=X).run()
    assert [r.name for r in bad.failed] == ["input"] and bad["d.W"].passed


class Swish(md.Layer):
    """y = x * sigmoid(b x); ``bug``: backward turns its cached sigmoid into its derivative in place; ``count``: it
    counts its calls (``self.calls += 1``, monitoring); ``free``: it releases its cache at the end."""

    def __init__(self, bug: bool = False, count: bool = False, free: bool = False) -> None:
        super().__init__()
        self.b = md.Parameter(np.array([0.7]))
        self.bug, self.count, self.free = bug, count, free
        self.calls = 0
        self._c: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        s = _sig(self.b.data * x)
        self._c = (x, s)
        return x * s

    def backward(self, g: np.ndarray) -> np.ndarray:
        self._require_cache(self._c)
        assert self._c is not None
        x, s = self._c
        if self.bug:
            s *= 1 - s  # breaks the contract
            ds = s
        else:
            ds = s * (1 - s)
        self.b.grad += np.sum(g * x * x * ds)
        dx = g * _sig(self.b.data * x) + g * self.b.data * x * ds
        if self.count:
            self.calls += 1
        if self.free:
            self._c = None
        return dx


RELEASED = ("the model itself (Swish): backward released its cache (a second backward on the same forward raises: "
            "the contract allows two; fine for training, which runs one)")


def test_a_call_counter_does_not_switch_off_the_cache_check() -> None:
    """A backward that counts its calls changed an attribute, which exempted it from the cache check (an outside
    review): the buggy layer passed."""
    for count in (False, True):
        report = GradientChecker(Swish(bug=True, count=count), inputs=X).run()
        assert not report.passed and {r.name for r in report.failed} == {"input", "b"}
        assert len(report.problems) == 1
        assert report.problems[0].startswith(
            "the model itself (Swish): backward modified its forward's output or cache in place")
    right = GradientChecker(Swish(count=True), inputs=X).run()
    assert right.passed and not right.problems and RELEASED not in right.notes


def test_a_backward_that_releases_its_cache_gets_a_note_and_its_bugs_are_still_found() -> None:
    """A right backward that frees its cache (self._c = None) makes a second backward on the same forward raise,
    which the contract (docs/custom-layers.md) says works: a note, not a failure.  A buggy one that frees its cache
    passed silently (the release exempted it from the cache check)."""
    report = GradientChecker(Swish(free=True), inputs=X).run()
    assert report.passed and not report.problems
    assert RELEASED in report.notes
    inner = GradientChecker(md.Sequential(md.Dense(3, 3, rng=0), Swish(free=True)), inputs=X).run()
    assert inner.passed and [n for n in inner.notes if "released its cache" in n] == [
        RELEASED.replace("the model itself", "layer '1'")]
    bad = GradientChecker(Swish(bug=True, free=True), inputs=X).run()
    assert not bad.passed and {r.name for r in bad.failed} == {"input", "b"}
    assert bad.problems[0].startswith(
        "the model itself (Swish): backward modified its forward's output or cache in place")
    assert RELEASED not in bad.notes


def test_a_popped_stack_is_refilled_for_the_second_backward() -> None:
    """A cell that pops its stack of caches: the second backward reads the same caches again (the stack is put back),
    so a bug in place is found in it, and the right cell passes with the release note (a second backward on what
    the first left pops an empty stack)."""
    from test_gradcheck_notes_review import Cell, Unrolled

    class InPlaceCell(Cell):
        def backward(self, g: np.ndarray) -> np.ndarray:
            _, y = self._c[-1]
            dx = super().backward(g)
            y *= 0.5  # breaks the contract, after the right gradient
            return dx

    class UnrolledInPlace(Unrolled):
        def __init__(self) -> None:
            super().__init__(bug=False)
            self.cell = InPlaceCell(bug=False)

    right = GradientChecker(Unrolled(bug=False), inputs=X).run()
    assert right.passed and not right.problems
    assert [n for n in right.notes if "released its cache" in n] == [
        "layer 'cell' (Cell): backward released its cache (a second backward on the same forward raises: the "
        "contract allows two; fine for training, which runs one)"]
    bad = GradientChecker(UnrolledInPlace(), inputs=X).run()
    assert not bad.passed
    assert bad.problems[0].startswith("layer 'cell' (InPlaceCell): backward modified its forward's output in place")
