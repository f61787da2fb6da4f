"""Frozen parameters (``requires_grad=False``, ``Layer.requires_grad_``): no gradient from the built-in
layers, the back-pass stops at the first trainable layer, optimizers and ``fit`` leave them alone, and
the gradient checker reports them as frozen instead of failing them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import minidl as md
from minidl.gradcheck import GradientChecker


def _layer_cases() -> list[tuple[str, md.Layer, tuple[int, ...]]]:
    return [
        ("dense", md.Dense(5, 3, rng=0), (4, 5)),
        ("dense-nobias", md.Dense(5, 3, bias=False, rng=1), (2, 5)),
        ("conv", md.Conv2D(2, 3, 3, padding=1, rng=2), (2, 2, 5, 5)),
        ("conv-stride2", md.Conv2D(1, 2, 3, stride=2, rng=3), (3, 1, 7, 6)),
        ("batchnorm1d", md.BatchNorm1d(4), (6, 4)),
        ("batchnorm2d", md.BatchNorm2d(3), (2, 3, 4, 4)),
        ("batchnorm1d-eval", md.BatchNorm1d(4).eval(), (6, 4)),
        ("layernorm", md.LayerNorm(4), (3, 4)),
    ]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("name", "layer", "shape"), _layer_cases(), ids=[c[0] for c in _layer_cases()])
def test_frozen_parameters_get_no_gradient_and_dx_is_unchanged(name: str, layer: md.Layer,
                                                              shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    for p in layer.parameters():  # BN/LN start at gamma 1, beta 0: make them generic
        p.data[...] = rng.standard_normal(p.shape)
    reference = copy.deepcopy(layer)
    g = rng.standard_normal(reference(x).shape)
    dx_ref = reference.backward(g)
    names = [n for n, _ in layer.named_parameters()]
    for frozen_name in [*names, None]:  # each parameter alone, then all of them
        frozen = copy.deepcopy(layer)
        params = dict(frozen.named_parameters())
        if frozen_name is None:
            frozen.requires_grad_(False)
        else:
            params[frozen_name].requires_grad = False
        frozen(x)
        dx = frozen.backward(g)
        np.testing.assert_array_equal(dx, dx_ref)
        for n, p in params.items():
            if p.requires_grad:
                np.testing.assert_array_equal(p.grad, dict(reference.named_parameters())[n].grad)
            else:
                assert not p.has_grad
                np.testing.assert_array_equal(p.grad, np.zeros(p.shape))


@pytest.mark.parametrize("layer", [md.Dense(4, 2, rng=0), md.Conv2D(1, 2, 3, rng=0)], ids=["dense", "conv"])
def test_backward_params_of_a_frozen_layer_writes_nothing_but_still_checks(layer: md.Layer) -> None:
    x = np.ones((2, 4)) if isinstance(layer, md.Dense) else np.ones((2, 1, 4, 4))
    y = layer.requires_grad_(False)(x)
    layer.backward_params(np.ones_like(y))
    assert not any(p.has_grad for p in layer.parameters())
    with pytest.raises(md.ShapeError, match=r"expected .*got"):
        layer.backward_params(np.ones((y.shape[0] + 1, *y.shape[1:])))


def test_requires_grad_freezes_every_parameter_and_returns_the_layer() -> None:
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Sequential(md.Dense(4, 4, rng=1), md.LayerNorm(4)),
                          md.Dense(4, 2, rng=2))
    total = model.num_parameters()
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    assert model.num_parameters(trainable_only=True) == 0
    model[1].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, False]
    assert model.requires_grad_(np.True_).num_parameters(trainable_only=True) == total


@pytest.mark.parametrize("value", ["False", 0, 1, None, 0.0])
def test_requires_grad_takes_only_bools(value: object) -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0))
    with pytest.raises(TypeError, match="requires_grad_: requires_grad must be True or False"):
        model.requires_grad_(value)  # type: ignore[arg-type]
    assert model[0].W.requires_grad  # unchanged
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        md.Parameter(np.zeros(2), requires_grad=value)  # type: ignore[arg-type]


class Spy(md.Layer):
    """A parameter-free layer that counts its backward calls (a pass-through)."""

    def __init__(self) -> None:
        super().__init__()
        self.backwards = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.backwards += 1
        return grad_output


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_params_stops_at_the_first_trainable_layer(seed: int) -> None:
    rng = np.random.default_rng(seed)
    front, back = Spy(), Spy()
    model = md.Sequential(md.Dense(6, 5, rng=seed), front, md.BatchNorm1d(5), md.ReLU(),
                          md.Dense(5, 4, rng=seed + 1), back, md.ReLU(), md.Dense(4, 3, rng=seed + 2))
    full = copy.deepcopy(model)
    for layer in model[:3]:
        layer.requires_grad_(False)
    x, g = rng.standard_normal((8, 6)), rng.standard_normal((8, 3))
    full(x)
    full.backward_params(g)
    assert (full[1].backwards, full[5].backwards) == (1, 1)
    model(x)
    model.backward_params(g)
    assert (front.backwards, back.backwards) == (0, 1)  # the frozen front is not run backward at all
    assert not any(p.has_grad for layer in model[:3] for p in layer.parameters())
    for i in (4, 7):
        np.testing.assert_array_equal(model[i].W.grad, full[i].W.grad)
    # backward still runs every layer (it returns dx)
    model(x)
    model.zero_grad()
    np.testing.assert_array_equal(model.backward(g), full.backward(g))
    assert front.backwards == 1
    # the whole model frozen: nothing to do, nothing run
    model.requires_grad_(False)
    model(x)
    model.backward_params(g)
    assert (front.backwards, back.backwards) == (1, 2)


@pytest.mark.parametrize("seed", [0, 3])
def test_fine_tuning_the_head_with_fit_equals_training_it_on_the_frozen_features(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    body = md.Sequential(md.Dense(6, 8, rng=seed), md.ReLU())
    head = md.Dense(8, 2, rng=seed + 1)
    model = md.Sequential(copy.deepcopy(body), copy.deepcopy(head))
    model[0].requires_grad_(False)
    body_before = model[0][0].W.data.copy()
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters(), lr=0.05),
                     epochs=5, batch_size=8, rng=seed, verbose=0)
    np.testing.assert_array_equal(model[0][0].W.data, body_before)
    assert not model[0][0].W.has_grad
    assert history.history["loss"][-1] < history.history["loss"][0]
    # the same as training the head alone on the frozen body's outputs, batch for batch
    features = body(x)
    md.fit(head, features, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(head.parameters(), lr=0.05),
           epochs=5, batch_size=8, rng=seed, verbose=0)
    np.testing.assert_allclose(model[1].W.data, head.W.data, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- the gradient checker


@pytest.mark.parametrize(("sizes", "seed"), [((3, 4, 2), 0), ((5, 3, 3), 1), ((2, 6, 1), 2)])
def test_checker_reports_frozen_tensors_and_checks_the_rest(sizes: tuple[int, int, int], seed: int) -> None:
    a, b, c = sizes
    model = md.Sequential(md.Dense(a, b, rng=seed), md.Tanh(), md.Dense(b, c, rng=seed + 1))
    model[0].requires_grad_(False)
    report = GradientChecker(model, seed=seed).run()
    assert report.passed, report
    assert report["0.W"].status == "frozen" and report["0.W"].checked == 0
    assert report["2.W"].status == "ok" and report["2.W"].checked == (b + 1) * c
    assert report["input"].status == "ok" and report["input"].checked == 4 * a  # through the frozen layer
    assert report.unchecked == []
    assert "(frozen, not checked: 0.W)" in str(report).splitlines()[0]
    assert "requires_grad=True to check" in str(report)
    assert not model[0].W.requires_grad  # the model is left as it was
    # unfrozen, the same tensor is checked
    assert GradientChecker(model.requires_grad_(), seed=seed).run()["0.W"].status == "ok"


class Scale(md.Layer):
    """y = s * x with a (1,) parameter ``s``; ``factor`` scales the gradient of ``s`` (1 is right).
    Writes the gradient of ``s`` whether or not it is frozen."""

    def __init__(self, factor: float = 1.0) -> None:
        super().__init__()
        self.s = md.Parameter(np.array([1.5]))
        self.factor = factor

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return self.s.data * x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self.s.grad += self.factor * np.sum(grad_output * self._x)
        return grad_output * self.s.data


@pytest.mark.parametrize(("factor", "status"), [(1.0, "ok"), (2.0, "FAIL")])
def test_a_frozen_parameter_that_gets_a_gradient_is_checked(factor: float, status: str) -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0), Scale(factor))
    model.requires_grad_(False)
    report = GradientChecker(model).run()
    assert report["1.s"].status == status and report["1.s"].mode == "full"
    assert report["0.W"].status == "frozen"
    assert report.passed is (status == "ok")


def test_a_wrong_gradient_next_to_a_frozen_layer_still_fails() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0), Scale(factor=-1.0), md.Dense(2, 2, rng=1))
    model[0].requires_grad_(False)
    report = GradientChecker(model).run()
    assert not report.passed
    r = report["1.s"]
    assert r.status == "FAIL" and r.analytic == pytest.approx(-r.numerical, rel=1e-6)
    assert report["0.W"].status == "frozen"


def test_a_check_with_everything_frozen_says_nothing_was_checked() -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0)).requires_grad_(False)
    report = GradientChecker(model, check_input=False).run()
    assert report.passed
    assert str(report).splitlines()[0].startswith("Gradient check PASSED, but nothing was checked (frozen")
    assert str(GradientChecker(model).run()).splitlines()[0].startswith("Gradient check PASSED (frozen")



def test_fit_with_every_parameter_frozen_is_refused_before_anything_changes() -> None:
    """It trained nothing, silently (PyTorch stops at backward): refused, saying how to unfreeze
    (tests/test_api_review31.py has the other cases)."""
    model = md.Sequential(md.Dense(3, 2, rng=0), md.Dense(2, 1, rng=1))
    before = model.state_dict()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match=r"no parameter of the model requires a gradient .*"
                                         r"model\.requires_grad_\(True\)"):
        md.fit(model, np.ones((4, 3)), np.ones((4, 1)), loss=md.MSELoss(),
               optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2, verbose=0)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert not any(p.has_grad for p in model.parameters())
