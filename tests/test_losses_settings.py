"""Every loss's settings set after construction: checked as the constructor checks them (its error, the loss
unchanged when refused), used by the next forward, while a backward returns the gradient of the forward that
ran, whatever is set in between.  (They were plain attributes: ``MSELoss().reduction = "bogus"`` was accepted,
and a reduction, label_smoothing, delta, log_input, ... set between a forward and its backward changed the
gradient.)"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import losses

Data = Callable[[np.random.Generator], tuple[Any, Any]]
#: (setting, refused value, the error, the start of its message after "<loss>: ")
Refusal = tuple[str, Any, type[Exception], str]


class PassThrough(md.Layer):
    """y = x (an array or a tuple of them): the checker's input gradients are exactly the loss's backward."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: bool | None = None

    def forward(self, x: Any) -> Any:
        self._seen = True
        return x

    def backward(self, grad_output: Any) -> Any:
        self._require_cache(self._seen)
        return grad_output


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _scores(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(6, 4) scores and labels in [0, 4), each class present (ignore_index 2 leaves rows to score)."""
    return rng.normal(size=(6, 4)), np.array([0, 1, 2, 3, 2, 1])


def _regression(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(scale=1.5, size=(5, 3)), rng.normal(size=(5, 3))


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.resize([1.0, -1.0], shape)[rng.permutation(shape[0])]


WEIGHTS = [0.5, 2.0, 1.0, 0.25]
REDUCTION: list[Refusal] = [("reduction", v, ValueError, "reduction must be one of")
                            for v in ("none", "MEAN", None, 1, True)]
NOT_A_BOOL = (1, "yes", None)


def _numbers(name: str, refused: tuple[Any, ...], pattern: str) -> list[Refusal]:
    return [(name, v, ValueError, pattern) for v in refused]


def _class_weights(name: str = "weight") -> list[Refusal]:
    return [(name, [1.0, -1.0, 1.0, 1.0], ValueError, "class weights must be finite and >= 0"),
            (name, [1.0, math.nan, 1.0, 1.0], ValueError, "class weights must be finite and >= 0"),
            (name, [[1.0, 1.0, 1.0, 1.0]], md.ShapeError, "weight must be a 1-D array of one weight per class"),
            (name, 2.0, md.ShapeError, "weight must be a 1-D array of one weight per class"),
            (name, [True, False, True, True], md.DTypeError, r"weight must hold numbers \(weights\), got dtype bool"),
            (name, ["a", "b", "c", "d"], md.DTypeError, "weight must hold numbers")]


IGNORE_INDEX: list[Refusal] = [("ignore_index", v, TypeError, "ignore_index must be an int or None")
                               for v in (1.0, True, "0")]


@dataclass
class Case:
    """A loss with its base settings, data, settings to change to (valid) and refused ones."""

    cls: type[md.Loss]
    base: dict[str, Any]
    data: Data
    valid: list[tuple[str, Any]]
    refused: list[Refusal]
    #: valid settings the gradient checker is not run with (a documented, non-differentiated clamp)
    not_differentiable: set[str] = field(default_factory=set)


CASES: dict[str, Case] = {
    "MSELoss": Case(md.MSELoss, {}, _regression, [("reduction", "sum")], REDUCTION),
    "HalfSquaredError": Case(md.HalfSquaredError, {}, _regression, [], []),  # (no settings)
    "CrossEntropyLoss": Case(
        md.CrossEntropyLoss, {"label_smoothing": 0.1}, _scores,
        [("reduction", "sum"), ("label_smoothing", 0.0), ("label_smoothing", 0.4), ("weight", WEIGHTS),
         ("ignore_index", 2)],
        [*REDUCTION, *_numbers("label_smoothing", (1.5, -0.1, math.nan, True, "0.1", None),
                               r"label_smoothing must be a number in \[0, 1\]"),
         *_class_weights(), *IGNORE_INDEX]),
    "CrossEntropyLoss-probabilities": Case(
        md.CrossEntropyLoss, {"weight": WEIGHTS},
        lambda rng: (rng.normal(size=(5, 4)), rng.dirichlet(np.ones(4), size=5)),
        [("reduction", "sum"), ("label_smoothing", 0.3), ("weight", None)], []),
    "NLLLoss": Case(
        md.NLLLoss, {}, lambda rng: (_log_softmax(rng.normal(size=(6, 4))), _scores(rng)[1]),
        [("reduction", "sum"), ("weight", WEIGHTS), ("ignore_index", 2)],
        [*REDUCTION, *_class_weights(), *IGNORE_INDEX]),
    "MultiMarginLoss": Case(
        md.MultiMarginLoss, {}, _scores,
        [("p", 2), ("margin", 0.5), ("weight", WEIGHTS), ("reduction", "sum")],
        [*[("p", v, ValueError, r"p must be 1 or 2 \(as PyTorch\)") for v in (3, 0, 1.0, True, "1", None)],
         *_numbers("margin", (math.nan, math.inf, True, "1", None), "margin must be a finite number"),
         *_class_weights(), *REDUCTION]),
    "MarginRankingLoss": Case(
        md.MarginRankingLoss, {}, lambda rng: ((rng.normal(size=(6, 2)), rng.normal(size=(6, 2))),
                                               _signs(rng, (6, 2))),
        [("margin", 0.5), ("reduction", "sum")],
        [*_numbers("margin", (math.nan, -math.inf, True, "0"), "margin must be a finite number"), *REDUCTION]),
    "CosineEmbeddingLoss": Case(
        md.CosineEmbeddingLoss, {}, lambda rng: ((rng.normal(size=(6, 3)), rng.normal(size=(6, 3))),
                                                 _signs(rng, (6,))),
        [("margin", -0.3), ("reduction", "sum")],
        [*_numbers("margin", (math.nan, True, None), "margin must be a finite number"), *REDUCTION]),
    "TripletMarginLoss": Case(
        md.TripletMarginLoss, {"margin": 3.0}, lambda rng: (tuple(rng.normal(size=(3, 5, 4))), None),
        [("margin", 1.0), ("p", 1.0), ("eps", 0.1), ("swap", True), ("reduction", "sum")],
        [*_numbers("margin", (0.0, -1.0), r"margin must be > 0 \(as PyTorch\)"),
         *_numbers("margin", (math.nan, True, "1"), "margin must be a finite number"),
         *_numbers("p", (0, -1.0, math.nan, True, "2"), r"p must be a number > 0 or math\.inf"),
         *_numbers("eps", (math.inf, math.nan, True), "eps must be a finite number"),
         *[("swap", v, TypeError, "swap must be a bool") for v in NOT_A_BOOL], *REDUCTION]),
    "GaussianNLLLoss": Case(
        md.GaussianNLLLoss, {}, lambda rng: ((rng.normal(size=(5, 3)), rng.uniform(0.1, 1.5, size=(5, 3))),
                                             rng.normal(size=(5, 3))),
        [("full", True), ("eps", 0.5), ("reduction", "sum")],
        [*[("full", v, TypeError, "full must be a bool") for v in NOT_A_BOOL],
         *_numbers("eps", (0, -1e-6, math.nan, math.inf, True, "1e-6"), "eps must be a finite number > 0"),
         *REDUCTION],
        not_differentiable={"eps"}),  # (the clamp at eps, not differentiated: as PyTorch)
    "BCELoss": Case(md.BCELoss, {}, lambda rng: (rng.uniform(0.05, 0.95, (5, 3)), rng.uniform(0, 1, (5, 3))),
                    [("reduction", "sum")], REDUCTION),
    "BCEWithLogitsLoss": Case(
        md.BCEWithLogitsLoss, {}, lambda rng: (rng.normal(size=(5, 3)), rng.uniform(0, 1, (5, 3))),
        [("reduction", "sum"), ("pos_weight", [2.0, 0.5, 1.0])],
        [*REDUCTION,
         *[("pos_weight", v, ValueError, "pos_weight must be finite and >= 0") for v in ([1.0, -2.0], math.inf)],
         *[("pos_weight", v, md.DTypeError, "pos_weight must hold numbers") for v in (True, ["x"])]]),
    "KLDivLoss": Case(
        md.KLDivLoss, {}, lambda rng: (_log_softmax(rng.normal(size=(5, 3))), rng.dirichlet(np.ones(3), size=5)),
        [("reduction", "batchmean"), ("reduction", "sum"), ("log_target", True)],
        [*[("reduction", v, ValueError, r"reduction must be one of \('mean', 'batchmean', 'sum'\)")
           for v in ("none", None)],
         *[("log_target", v, TypeError, "log_target must be a bool") for v in NOT_A_BOOL]]),
    "PoissonNLLLoss": Case(
        md.PoissonNLLLoss, {"log_input": False},  # (rates > 0: log-rates too)
        lambda rng: (rng.uniform(0.2, 2.0, (5, 3)), rng.integers(0, 5, (5, 3)).astype(float)),
        [("log_input", True), ("full", True), ("eps", 0.5), ("reduction", "sum")],
        [*[("log_input", v, TypeError, "log_input must be a bool") for v in NOT_A_BOOL],
         *[("full", v, TypeError, "full must be a bool") for v in NOT_A_BOOL],
         *_numbers("eps", (0.0, -1.0, math.nan, True), "eps must be a finite number > 0"), *REDUCTION]),
    "SoftMarginLoss": Case(md.SoftMarginLoss, {}, lambda rng: (rng.normal(size=(5, 3)), _signs(rng, (5, 3))),
                           [("reduction", "sum")], REDUCTION),
    "HingeEmbeddingLoss": Case(
        md.HingeEmbeddingLoss, {}, lambda rng: (rng.uniform(0.1, 2.0, (6, 2)), _signs(rng, (6, 2))),
        [("margin", 0.6), ("reduction", "sum")],
        [*_numbers("margin", (math.nan, True, "1"), "margin must be a finite number"), *REDUCTION]),
    "MultiLabelSoftMarginLoss": Case(
        md.MultiLabelSoftMarginLoss, {}, lambda rng: (rng.normal(size=(5, 4)), rng.integers(0, 2, (5, 4)) * 1.0),
        [("weight", WEIGHTS), ("reduction", "sum")], [*_class_weights(), *REDUCTION]),
    "HuberLoss": Case(md.HuberLoss, {}, _regression, [("delta", 0.4), ("reduction", "sum")],
                      [*_numbers("delta", (0.0, -1.0, math.nan, math.inf, True, "1"),
                                 "delta must be a finite number > 0"), *REDUCTION]),
    "SmoothL1Loss": Case(md.SmoothL1Loss, {}, _regression, [("beta", 0.4), ("beta", 0.0), ("reduction", "sum")],
                         [*_numbers("beta", (-0.5, math.nan, True, None), "beta must be a finite number >= 0"),
                          *REDUCTION]),
    "L1Loss": Case(md.L1Loss, {}, _regression, [("reduction", "sum")], REDUCTION),
}

VALID = [pytest.param(key, name, value, id=f"{key}-{name}={value!r}")
         for key, case in CASES.items() for name, value in case.valid]
REFUSED = [pytest.param(key, name, value, error, pattern, id=f"{key}-{name}={value!r}")
           for key, case in CASES.items() for name, value, error, pattern in case.refused]


def _made(case: Case, **changes: Any) -> md.Loss:
    return case.cls(**{**case.base, **changes})


def _data(case: Case, seed: int = 0) -> tuple[Any, Any]:
    return case.data(np.random.default_rng(seed))


def _grads(loss: md.Loss) -> list[np.ndarray]:
    grad = loss.backward()
    return list(grad) if isinstance(grad, tuple) else [grad]


def _assert_same_grads(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


def _settings(loss: md.Loss) -> dict[str, Any]:
    """The loss's settings, by the names of its constructor's arguments."""
    names = inspect.signature(type(loss)).parameters
    return {name: getattr(loss, name) for name in names}


def _same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal settings: arrays of equal values, other values equal and of one type."""
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return np.array_equal(x, y)
        return bool(x == y) and type(x) is type(y)

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def test_every_loss_and_every_setting_is_covered() -> None:
    """Every built-in loss is a case here; each constructor argument is a checked property (one with a setter)
    that the case changes and refuses."""
    classes = {getattr(md, name) for name in losses.__all__}
    classes = {c for c in classes if isinstance(c, type) and issubclass(c, md.Loss) and c is not md.Loss}
    assert classes == {case.cls for case in CASES.values()}
    for key, case in CASES.items():
        names = set(inspect.signature(case.cls).parameters)
        for name in names:
            assert isinstance(getattr(case.cls, name), property) and getattr(case.cls, name).fset is not None, name
        assert {name for name, _ in case.valid} >= names or key == "CrossEntropyLoss-probabilities"
        if key != "CrossEntropyLoss-probabilities":
            assert {name for name, *_ in case.refused} >= names


@pytest.mark.parametrize("key, name, bad, error, pattern", REFUSED)
def test_a_refused_setting_raises_the_constructors_error_and_changes_nothing(
        key: str, name: str, bad: Any, error: type[Exception], pattern: str) -> None:
    case = CASES[key]
    y_pred, y_true = _data(case)
    loss = _made(case)
    value = loss(y_pred, y_true)
    grads = _grads(loss)
    before, settings = repr(loss), _settings(loss)
    with pytest.raises(error, match=rf"^{case.cls.__name__}: {pattern}") as refused:
        setattr(loss, name, bad)
    if name in inspect.signature(case.cls).parameters:
        with pytest.raises(error) as at_construction:
            _made(case, **{name: bad})
        assert str(at_construction.value) == str(refused.value)
    assert repr(loss) == before and _same_settings(_settings(loss), settings)
    _assert_same_grads(_grads(loss), grads)  # the last forward's backward, still
    assert loss(y_pred, y_true) == value
    _assert_same_grads(_grads(loss), grads)


@pytest.mark.parametrize("key, name, value", VALID)
def test_a_setting_is_used_by_the_next_forward(key: str, name: str, value: Any) -> None:
    case = CASES[key]
    y_pred, y_true = _data(case)
    loss = _made(case)
    loss(y_pred, y_true)
    loss.backward()
    setattr(loss, name, value)
    fresh = _made(case, **{name: value})
    assert repr(loss) == repr(fresh) and _same_settings(_settings(loss), _settings(fresh))
    assert loss(y_pred, y_true) == fresh(y_pred, y_true)
    assert loss.batch_weight == fresh.batch_weight
    _assert_same_grads(_grads(loss), _grads(fresh))


@pytest.mark.parametrize("key, name, value", VALID)
def test_a_setting_changed_between_forward_and_backward_does_not_change_the_backward(
        key: str, name: str, value: Any) -> None:
    case = CASES[key]
    y_pred, y_true = _data(case, seed=1)
    loss, unchanged = _made(case), _made(case)
    assert loss(y_pred, y_true) == unchanged(y_pred, y_true)
    setattr(loss, name, value)
    expected = _grads(unchanged)
    _assert_same_grads(_grads(loss), expected)
    _assert_same_grads(_grads(loss), expected)  # (a backward again: the same)
    assert loss(y_pred, y_true) == _made(case, **{name: value})(y_pred, y_true)  # the next forward: the new one


def test_the_settings_changes_matter() -> None:
    """Each valid setting changes the loss's value or gradient on the case's data (else the tests above would
    not see it ignored)."""
    for key, case in CASES.items():
        for name, value in case.valid:
            y_pred, y_true = _data(case)
            base, changed = _made(case), _made(case, **{name: value})
            differs = base(y_pred, y_true) != changed(y_pred, y_true)
            differs |= any(not np.array_equal(g, h) for g, h in zip(_grads(base), _grads(changed), strict=True))
            assert differs, (key, name, value)


@pytest.mark.parametrize("key", list(CASES))
def test_gradient_checker_float64_after_the_settings_change(key: str) -> None:
    """Every valid setting (the last of each name), set after construction: the backward is the float64
    central-difference gradient of the forward."""
    case = CASES[key]
    for seed in (0, 1):
        y_pred, y_true = _data(case, seed)
        loss = _made(case)
        for name, value in case.valid:
            if name not in case.not_differentiable:
                setattr(loss, name, value)
        targets = np.zeros(5) if y_true is None else y_true
        report = md.GradientChecker(PassThrough(), loss=loss, inputs=y_pred, targets=targets, seed=seed).run()
        assert report.passed, report


@pytest.mark.parametrize("key", list(CASES))
def test_settings_set_later_survive_pickle_and_deepcopy(key: str) -> None:
    case = CASES[key]
    y_pred, y_true = _data(case)
    loss = _made(case)
    for name, value in case.valid:
        setattr(loss, name, value)
    value = loss(y_pred, y_true)
    grads = _grads(loss)
    for twin in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss)):
        assert repr(twin) == repr(loss) and _same_settings(_settings(twin), _settings(loss))
        _assert_same_grads(_grads(twin), grads)  # the forward's cache travels too
        assert twin(y_pred, y_true) == value
        _assert_same_grads(_grads(twin), grads)
        for name, bad, error, _ in case.refused[:1]:  # the copy's settings are checked too
            with pytest.raises(error):
                setattr(twin, name, bad)


def test_settings_are_kept_as_plain_python_values() -> None:
    loss = md.TripletMarginLoss()
    loss.margin, loss.p, loss.eps, loss.swap = np.float32(0.5), np.int64(3), np.int64(0), np.bool_(True)
    assert [type(v) for v in (loss.margin, loss.p, loss.eps, loss.swap)] == [float, float, float, bool]
    ce = md.CrossEntropyLoss()
    ce.label_smoothing, ce.ignore_index, ce.reduction = np.float32(0.25), np.int16(-100), np.str_("sum")
    assert (type(ce.label_smoothing), type(ce.ignore_index), type(ce.reduction)) == (float, int, str)
    given = np.array([1.0, 2.0, 3.0])
    ce.weight = given
    given[0] = 7.0  # the caller's array: copied
    assert ce.weight is not None and ce.weight.tolist() == [1.0, 2.0, 3.0] and not ce.weight.flags.writeable
    assert ce.weight.dtype == np.float64
    bce = md.BCEWithLogitsLoss(pos_weight=2)
    assert bce.pos_weight is not None and bce.pos_weight.shape == () and not bce.pos_weight.flags.writeable
    mm = md.MultiMarginLoss()
    mm.p = np.int8(2)
    assert type(mm.p) is int and mm.p == 2


def test_a_weight_set_later_is_checked_against_the_classes_by_the_forward() -> None:
    """The number of classes is the forward's to know: a weight of another length is refused there, and the
    loss keeps its last forward."""
    y_pred, y_true = _scores(np.random.default_rng(0))
    loss = md.CrossEntropyLoss()
    value = loss(y_pred, y_true)
    grad = loss.backward()
    loss.weight = [1.0, 2.0, 3.0]
    with pytest.raises(md.ShapeError, match=r"CrossEntropyLoss: weight has 3 class weight\(s\), but y_pred has 4"):
        loss(y_pred, y_true)
    np.testing.assert_array_equal(loss.backward(), grad)
    loss.weight = None
    assert loss(y_pred, y_true) == value


def test_evaluate_sums_the_batches_of_a_loss_whose_reduction_is_set_to_sum_later() -> None:
    """``fit``/``evaluate`` read ``reduction`` to combine the batches: a sum is summed, a mean averaged."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    model = md.Sequential(md.Dense(3, 2, rng=0))
    loss = md.MSELoss()
    loss.reduction = "sum"
    whole = md.MSELoss(reduction="sum")(model.predict(x), y)
    assert model.evaluate(x, y, loss=loss, batch_size=3)["loss"] == pytest.approx(whole, rel=1e-12)
    loss.reduction = "mean"
    assert model.evaluate(x, y, loss=loss, batch_size=3)["loss"] == pytest.approx(whole / y.size, rel=1e-12)
    assert md.HalfSquaredError().reduction == "sum"  # (no constructor argument)


def test_half_squared_error_refuses_another_reduction_on_an_instance_and_a_subclass_may_declare_one() -> None:
    """Its value is a sum: 'mean' on an instance was accepted, and evaluate then averaged the sums
    (32.87 over one batch, 8.22 in batches of 10)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(25, 2))
    model = md.Sequential(md.Dense(3, 2, rng=0))
    loss = md.HalfSquaredError()
    whole = md.HalfSquaredError()(model.predict(x), y)
    for bad in ("mean", "bogus", None, np.array("sum")):
        with pytest.raises(ValueError, match=r"HalfSquaredError: reduction must stay 'sum' \(its value is a sum "
                                             r"of squares\), got .*; a subclass whose forward returns a mean"):
            loss.reduction = bad
    assert loss.reduction == "sum" and "_reduction" not in loss.__dict__
    assert model.evaluate(x, y, loss=loss, batch_size=10)["loss"] == pytest.approx(whole, rel=1e-12)

    class HalfMeanSquaredError(md.HalfSquaredError):
        reduction = "mean"  # the documented hook (docs/training.md)

        def forward(self, y_pred, y_true):
            return super().forward(y_pred, y_true) / len(y_pred)

    assert HalfMeanSquaredError().reduction == "mean"
    assert model.evaluate(x, y, loss=HalfMeanSquaredError(), batch_size=10)["loss"] == \
        pytest.approx(whole / len(x), rel=1e-12)
