"""From a researcher's review of the checker (26th session): a parameter all 1 (or -1) at the checked
point hides a backward that uses w where 1/w or w**2 is due (a temperature T = 1): a passing report says
so; with ``check_layers=True`` a layer with several outputs is checked alone (the cost sum_i R_i . y_i),
and one that still cannot be (an input that is not an array) is named as a suspect instead of "every layer
passes alone, yet the model fails: the error is in the model's own backward"; a backward that draws from
its generator is named."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md


class TempSoftmax(md.Layer):
    """y = softmax(x / T) over axis 1; ``bug``: dT divided by T instead of T**2."""

    def __init__(self, T: float, bug: bool = False) -> None:
        super().__init__()
        self.T = md.Parameter(np.array(T))
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        z = x / self.T.data
        e = np.exp(z - z.max(axis=1, keepdims=True))
        y: np.ndarray = e / e.sum(axis=1, keepdims=True)
        self._cache = (x, y)
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x, y = self._cache
        T = self.T.data
        dz = y * (grad_output - (grad_output * y).sum(axis=1, keepdims=True))
        self.T.grad += -(dz * x).sum() / (T if self.bug else T ** 2)
        out: np.ndarray = dz / T
        return out


def check(model: md.Layer, seed: int, **kwargs: object) -> md.GradientReport:
    rng = np.random.default_rng(seed)
    return md.GradientChecker(model, md.MSELoss(), inputs=rng.normal(size=(4, 3)),  # type: ignore[arg-type]
                              targets=rng.normal(size=(4, 3)), **kwargs).run()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bug", [False, True])
def test_a_parameter_at_one_is_checked_again_moved_off_it(seed: int, bug: bool) -> None:
    report = check(TempSoftmax(1.0, bug), seed)
    assert all(r.passed for r in report.results)  # (at T = 1, T and T**2 are the same number: the bug cannot show)
    assert any(note.startswith("the parameter(s) 'T' are all 1 or -1 at the checked point, where w, 1/w and "
                               "w**3 are equal") for note in report.notes)
    if bug:  # moved to T = 1.3 it shows, and the report fails
        assert not report.passed and report.moved is not None
        assert [r.status for r in report.moved.results] == ["ok", "FAIL"]
        assert str(report).startswith("Gradient check FAILED at a second point: right at the checked point, wrong "
                                      "with 'T' moved from 1 or -1 to 1.3 times that (below)")
    else:
        assert report.passed and report.moved is None
        assert "checked again with 'T' moved from 1 or -1 to 1.3 times that: passes there too" in report.notes


@pytest.mark.parametrize("seed", [0, 1])
def test_away_from_one_the_bug_fails_and_no_note_is_added(seed: int) -> None:
    assert not check(TempSoftmax(2.0, bug=True), seed).passed
    report = check(TempSoftmax(2.0), seed)
    assert report.passed
    assert not any("all 1 or -1" in note for note in report.notes)


def test_a_built_in_layer_at_one_gets_no_note() -> None:  # (LayerNorm's gamma is 1 at every model's init)
    rng = np.random.default_rng(0)
    report = md.GradientChecker(md.Sequential(md.Dense(3, 4, rng=0), md.LayerNorm(4)), md.MSELoss(),
                                inputs=rng.normal(size=(4, 3)), targets=rng.normal(size=(4, 4))).run()
    assert report.passed
    assert not any("all 1 or -1" in note for note in report.notes)


class Split(md.Layer):
    """(2 x, tanh x): two outputs; ``bug``: the second's backward leaves out tanh'."""

    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._t = np.tanh(x)
        return 2.0 * x, self._t

    def backward(self, grad_output: tuple[np.ndarray, np.ndarray]) -> np.ndarray:  # type: ignore[override]
        ga, gb = grad_output
        out: np.ndarray = 2.0 * ga + (gb if self.bug else gb * (1 - self._t ** 2))
        return out


class TwoHeads(md.Model):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.split = Split(bug)
        self.a = md.Dense(4, 3, rng=0)
        self.b = md.Dense(4, 3, rng=1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        u, v = self.split(x)
        self._ya, self._yb = self.a(u), self.b(v)
        out: np.ndarray = self._ya * self._yb
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.split.backward((self.a.backward(grad_output * self._yb),
                                               self.b.backward(grad_output * self._ya)))
        return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_layers_checks_a_layer_with_several_outputs_alone(seed: int) -> None:
    # (it was skipped, "not checked alone", and the note blamed the model's own backward)
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    right = md.GradientChecker(TwoHeads(False), md.MSELoss(), inputs=x, targets=t, check_layers=True).run()
    assert right.passed and sorted(right.layers) == ["a", "b", "split"]
    split = right.layers["split"]
    assert split.cost == "sum_i R_i . y_i over the floating outputs (2 of 2), R_i ~ N(0, 1)" and split.passed
    report = md.GradientChecker(TwoHeads(True), md.MSELoss(), inputs=x, targets=t, check_layers=True).run()
    assert not report.passed and not report.layers["split"].passed
    assert report.layers["a"].passed and report.layers["b"].passed
    assert "checked alone, these layers fail: 'split' (Split)" in report.notes
    assert not any("yet the model fails" in note for note in report.notes)


def test_a_model_whose_output_is_a_tuple_is_checked_without_a_loss_too() -> None:
    # (it was refused, "returned a tuple, not an array": now the cost sum_i R_i . y_i, as check_layers takes)
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert md.GradientChecker(Split(False), inputs=x).run().passed
    assert not md.GradientChecker(Split(True), inputs=x).run().passed


class Scaled(md.Layer):
    """(x, how) -> 2 x, ``how`` a string (a layer checked alone needs arrays); ``bug``: dx = g."""

    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug

    def forward(self, x: tuple[np.ndarray, str]) -> np.ndarray:
        out: np.ndarray = 2.0 * x[0]
        return out

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, None]:
        return (grad_output if self.bug else 2.0 * grad_output), None


class Named(md.Model):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.a = md.Dense(4, 3, rng=0)
        self.scaled = Scaled(bug)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.scaled((self.a(x), "double"))
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.a.backward(self.scaled.backward(grad_output)[0])
        return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_layers_names_a_layer_it_could_not_check_alone_as_a_suspect(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    assert md.GradientChecker(Named(False), md.MSELoss(), inputs=x, targets=t, check_layers=True).run().passed
    report = md.GradientChecker(Named(True), md.MSELoss(), inputs=x, targets=t, check_layers=True).run()
    assert not report.passed
    [note] = [n for n in report.notes if "yet the model fails" in n]
    assert note.startswith("every layer checked alone passes, and so does the loss MSELoss (checked alone on the "
                           "model's output), yet the model fails: the error is in a layer not checked alone (layer "
                           "'scaled' (Scaled): see the notes above), or in the model's own backward")


class Noisy(md.Layer):
    """y = x + s * noise, the noise drawn from the layer's generator in forward; ``bug``: backward draws
    it again (the gradient of s then uses other noise)."""

    def __init__(self, bug: bool, seed: int) -> None:
        super().__init__()
        self.s = md.Parameter(np.array(0.7))
        self.rng = np.random.default_rng(seed)
        self.bug = bug

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._noise = self.rng.standard_normal(x.shape)
        out: np.ndarray = x + self.s.data * self._noise
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(grad_output.shape) if self.bug else self._noise
        self.s.grad += (grad_output * noise).sum()
        return grad_output


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_backward_drawing_from_the_generator_is_named(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    model = md.Sequential(md.Dense(3, 3, rng=seed), Noisy(False, seed))
    report = md.GradientChecker(model, md.MSELoss(), inputs=x, targets=t).run()
    assert report.passed and not any("draws from" in n for n in report.notes)
    model = md.Sequential(md.Dense(3, 3, rng=seed), Noisy(True, seed))
    report = md.GradientChecker(model, md.MSELoss(), inputs=x, targets=t).run()
    assert not report.passed
    assert "layer '1' (Noisy): backward draws from the layer's random generator: the noise it uses is then not " \
           "the forward's; keep the forward's draw (its mask or noise) in the cache and reuse it in backward" \
           in report.notes


class ScaleInPlace(md.Layer):
    """y = a x; ``bug``: x *= a, in place on the previous layer's output (its cache)."""

    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug
        self.a = md.Parameter(np.array([1.5]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        y = x if self.bug else x.copy()
        y *= self.a.data
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.a.grad += np.array([(grad_output * self._x).sum()])
        out: np.ndarray = grad_output * self.a.data
        return out


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_an_in_place_forward_gives_the_same_rows_whether_the_prefix_is_reused_or_not(reuse_prefix: bool) -> None:
    # (with the prefix reused, the stored input was scaled again at every evaluation: 'a' was 'skipped')
    x = np.random.default_rng(5).normal(size=(4, 3))
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 4, rng=2), ScaleInPlace(True))
    report = md.GradientChecker(model, inputs=x, reuse_prefix=reuse_prefix).run()
    assert [(r.name, r.status) for r in report.results] == [("input", "ok"), ("0.W", "ok"), ("2.W", "ok"),
                                                             ("3.a", "FAIL")]
    assert report.problems[0].startswith("layer '3' (ScaleInPlace): forward modified its input in place")
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 4, rng=2), ScaleInPlace(False))
    assert md.GradientChecker(model, inputs=x, reuse_prefix=reuse_prefix).run().passed


class OnlyAtOne(TempSoftmax):
    """A layer whose forward refuses T above 1.2 (a domain the move to 1.3 leaves)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.T.data > 1.2:
            raise ValueError(f"T must be at most 1.2, got {float(self.T.data)}")
        return super().forward(x)


def test_a_second_check_that_raises_is_a_note_and_the_verdict_stands() -> None:
    report = check(OnlyAtOne(1.0), 0)
    assert report.passed and report.moved is None
    assert "checked again with 'T' moved from 1 or -1 to 1.3 times that: could not be (ValueError: T must be at " \
           "most 1.2, got 1.3)" in report.notes
