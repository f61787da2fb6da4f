"""Review 27 of label checks.

SoftMarginLoss took any finite y: with 0/1 labels (the classic mistake) every 0 cost a constant log 2 with a zero
gradient, its samples never learnt, silently.  It now refuses labels other than -1 and 1 as HingeEmbeddingLoss,
MarginRankingLoss and CosineEmbeddingLoss do (one shared check, whose message tells 0/1 labels ``2 * y_true - 1``),
and bool labels as MarginRankingLoss does (``DTypeError``; HingeEmbeddingLoss read them as 0/1 and said "got 0.0").

CrossEntropyLoss refused bool (N,) labels but took a bool (N, C) array as probabilities: a bool y_true is now
refused whatever its shape, with the cast that fits it, as NLLLoss and MultiMarginLoss refuse it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

SHAPES = [(4,), (2, 3), (2, 2, 3)]


def refused(error: type[Exception], call: Callable[[], Any]) -> Exception:
    with pytest.raises(error) as caught:
        call()
    return caught.value


def zero_one(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """0/1 labels of ``shape``, the first element 1 and the second 0 (so the first bad label is at flat index 1)."""
    y = np.arange(math.prod(shape)).reshape(shape) % 2 == 0
    return y.astype(dtype)


def second_index(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(1, shape))


# ------------------------------------------------------------------------------------------- SoftMarginLoss
@pytest.mark.parametrize("shape", SHAPES)
def test_soft_margin_refuses_zero_one_labels_and_tells_the_fix(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    y = zero_one(shape)
    loss = md.SoftMarginLoss()
    error = refused(md.TargetError, lambda: loss(x, y))
    index = second_index(shape)
    assert str(error) == (f"SoftMarginLoss: labels y_true must be -1 or 1, got 0.0 at index {index}; "
                          "for 0/1 labels pass 2 * y_true - 1")
    assert error.index == index and error.shape == shape  # type: ignore[attr-defined]
    assert isinstance(error, ValueError)
    value = loss(x, 2 * y - 1)  # the fix runs, and is the formula on the -1/1 labels
    signs = np.where(y == 1, 1.0, -1.0)
    assert value == pytest.approx(float(np.mean(np.logaddexp(0, -signs * x))), rel=1e-14)
    np.testing.assert_allclose(loss.backward(), -signs / (1 + np.exp(signs * x)) / x.size, rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_soft_margin_integer_zero_one_labels_are_shown_as_given(shape: tuple[int, ...]) -> None:
    x = np.zeros(shape)
    index = second_index(shape)
    error = refused(md.TargetError, lambda: md.SoftMarginLoss("sum")(x, zero_one(shape, np.int64)))
    assert str(error) == (f"SoftMarginLoss: labels y_true must be -1 or 1, got 0 at index {index}; "
                          "for 0/1 labels pass 2 * y_true - 1")
    unsigned = zero_one(shape, np.uint8)  # 2 * y - 1 would wrap round to 255 in uint8: the hint casts first
    error = refused(md.TargetError, lambda: md.SoftMarginLoss()(x, unsigned))
    assert str(error) == (f"SoftMarginLoss: labels y_true must be -1 or 1, got 0 at index {index}; "
                          "for 0/1 labels pass 2 * y_true.astype(np.int64) - 1")
    fixed = 2 * unsigned.astype(np.int64) - 1
    assert set(np.unique(fixed).tolist()) == {-1, 1}
    assert md.SoftMarginLoss()(x, fixed) == pytest.approx(math.log(2), rel=1e-15)


@pytest.mark.parametrize(("y", "shown", "index"), [
    (np.array([1.0, -1.0, 0.0, 1.0]), "0.0", (2,)),  # 0 among -1/1 labels (e.g. "unknown"): no 0/1 hint
    (np.array([1.0, 0.5, 1.0, -1.0]), "0.5", (1,)),
    (np.array([-1.0, 1.0, 2.0, -2.0]), "2.0", (2,)),
    (np.array([1, -1, 1, 3]), "3", (3,)),
    (np.array([1, 255, 1, 1], dtype=np.uint8), "255", (1,)),  # -1 stored in uint8
    (np.array([1.0, 0.0, 1.0, 0.5]), "0.0", (1,)),  # not all 0/1: no hint
])
def test_soft_margin_refuses_other_labels_without_the_zero_one_hint(y: np.ndarray, shown: str,
                                                                     index: tuple[int, ...]) -> None:
    error = refused(md.TargetError, lambda: md.SoftMarginLoss()(np.zeros(4), y))
    assert str(error) == f"SoftMarginLoss: labels y_true must be -1 or 1, got {shown} at index {index}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("as_list", [False, True])
def test_soft_margin_refuses_bool_labels_as_margin_ranking_does(shape: tuple[int, ...], as_list: bool) -> None:
    y = zero_one(shape, bool)
    target = y.tolist() if as_list else y
    error = refused(md.DTypeError, lambda: md.SoftMarginLoss()(np.zeros(shape), target))
    assert str(error) == ("SoftMarginLoss: expected numeric y_true (-1 or 1), got dtype bool; "
                          "for True/False labels pass np.where(y_true, 1, -1)")
    ranking = refused(md.DTypeError, lambda: md.MarginRankingLoss()((np.zeros(shape), np.zeros(shape)), target))
    assert str(ranking) == str(error).replace("SoftMarginLoss", "MarginRankingLoss")
    assert md.SoftMarginLoss()(np.zeros(shape), np.where(y, 1, -1)) == pytest.approx(math.log(2), rel=1e-15)


def test_soft_margin_checks_the_prediction_and_the_shape_first() -> None:
    """The order of _checked_pair's checks stays: y_pred, then y_true's shape and finiteness, then the labels."""
    with pytest.raises(md.ShapeError, match=r"SoftMarginLoss: y_pred has shape \(3,\) but y_true has shape \(2,\)"):
        md.SoftMarginLoss()(np.zeros(3), np.array([True, False]))
    with pytest.raises(md.NonFiniteError, match="SoftMarginLoss"):
        md.SoftMarginLoss()(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(md.NonFiniteError, match="SoftMarginLoss"):
        md.SoftMarginLoss()(np.array([np.inf, 0.0]), np.array([0.0, 1.0]))


def test_a_refused_forward_keeps_the_previous_gradient() -> None:
    loss = md.SoftMarginLoss()
    x = np.array([[0.5, -2.0]])
    loss(x, np.array([[1.0, -1.0]]))
    before = loss.backward()
    with pytest.raises(md.TargetError):
        loss(x, np.array([[1.0, 0.0]]))
    np.testing.assert_array_equal(loss.backward(), before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int8, np.int64])
def test_soft_margin_takes_minus_one_one_labels_of_any_numeric_dtype(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4))
    y = rng.choice([-1.0, 1.0], (3, 4))
    reference = md.SoftMarginLoss()
    expected = reference(x, y)
    loss = md.SoftMarginLoss()
    assert loss(x, y.astype(dtype)) == expected
    np.testing.assert_array_equal(loss.backward(), reference.backward())


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("label_dtype", [np.float64, np.int8])
def test_gradient_checker_on_soft_margin_with_given_labels(shape: tuple[int, ...], seed: int,
                                                            label_dtype: Any) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    y = rng.choice([-1, 1], shape).astype(label_dtype)
    for reduction in ("mean", "sum"):
        report = assert_gradients_ok(md.Tanh(), inputs=x, loss=md.SoftMarginLoss(reduction), targets=y, seed=seed)
        assert [r.name for r in report.results if r.checked] == ["input"]
    model = md.Sequential(md.Dense(3, shape[-1], rng=seed))  # a weight too, on (N, C) scores
    inputs = rng.normal(size=(6, 3))
    labels = rng.choice([-1, 1], (6, shape[-1])).astype(label_dtype)
    report = assert_gradients_ok(model, inputs=inputs, loss=md.SoftMarginLoss(), targets=labels, seed=seed)
    assert {r.name for r in report.results if r.checked} == {"input", "0.W"}


def test_fit_refuses_zero_one_labels_with_soft_margin_and_accuracy_reads_minus_one_one() -> None:
    """fit trained on 0/1 labels and reported it; the metric, which reads -1/1 labels as no/yes, agrees with
    the loss on the labels it now takes."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 2))
    yes = x[:, :1] + 0.5 * x[:, 1:] > 0
    model = md.Sequential(md.Dense(2, 1, rng=0))
    opt = md.SGD(model.parameters(), lr=0.5)
    with pytest.raises(md.TargetError, match=r"^fit: epoch 1/5, batch 1/4 .*SoftMarginLoss: labels y_true must be -1 "
                                             r"or 1, got 0\.0 at index \(\d+, 0\); for 0/1 labels pass "
                                             r"2 \* y_true - 1$"):
        model.fit(x, yes.astype(float), loss=md.SoftMarginLoss(), optimizer=opt, epochs=5, batch_size=10,
                  verbose=0, metrics=["accuracy"], rng=0)
    with pytest.raises(md.DTypeError, match="SoftMarginLoss: expected numeric y_true"):
        model.evaluate(x, yes, loss=md.SoftMarginLoss(), metrics=["accuracy"])
    history = model.fit(x, np.where(yes, 1.0, -1.0), loss=md.SoftMarginLoss(), optimizer=opt, epochs=40,
                        batch_size=10, verbose=0, metrics=["accuracy"], rng=0)
    assert history.history["accuracy"][-1] >= 0.95
    scores = model.predict(x)
    right = float(np.mean((scores > 0) == yes))
    assert model.evaluate(x, np.where(yes, 1.0, -1.0), loss=md.SoftMarginLoss(),
                          metrics=["accuracy"])["accuracy"] == pytest.approx(right, abs=1e-12)


# --------------------------------------------------------------------- the other losses of -1/1 labels
def _hinge(y: Any, shape: tuple[int, ...]) -> Any:
    return md.HingeEmbeddingLoss()(np.zeros(shape), y)


def _ranking(y: Any, shape: tuple[int, ...]) -> Any:
    return md.MarginRankingLoss()((np.zeros(shape), np.zeros(shape)), y)


def _soft(y: Any, shape: tuple[int, ...]) -> Any:
    return md.SoftMarginLoss()(np.zeros(shape), y)


@pytest.mark.parametrize(("call", "who", "meanings"), [
    (_soft, "SoftMarginLoss", ("", "")), (_ranking, "MarginRankingLoss", ("", "")),
    (_hinge, "HingeEmbeddingLoss", (" (dissimilar)", " (similar)")),
])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_minus_one_one_loss_refuses_alike(call: Callable[[Any, tuple[int, ...]], Any], who: str,
                                                meanings: tuple[str, str], shape: tuple[int, ...]) -> None:
    index = second_index(shape)
    error = refused(md.TargetError, lambda: call(zero_one(shape), shape))
    assert str(error) == (f"{who}: labels y_true must be -1{meanings[0]} or 1{meanings[1]}, got 0.0 at index "
                          f"{index}; for 0/1 labels pass 2 * y_true - 1")
    error = refused(md.DTypeError, lambda: call(zero_one(shape, bool), shape))
    assert str(error) == (f"{who}: expected numeric y_true (-1 or 1), got dtype bool; for True/False labels pass "
                          "np.where(y_true, 1, -1)")


def test_cosine_embedding_refuses_alike() -> None:
    pair = (np.ones((4, 2)), np.ones((4, 2)))
    error = refused(md.TargetError, lambda: md.CosineEmbeddingLoss()(pair, zero_one((4,))))
    assert str(error) == ("CosineEmbeddingLoss: labels y_true must be -1 or 1, got 0.0 at index (1,); "
                          "for 0/1 labels pass 2 * y_true - 1")
    error = refused(md.DTypeError, lambda: md.CosineEmbeddingLoss()(pair, zero_one((4,), bool)))
    assert str(error) == ("CosineEmbeddingLoss: expected numeric y_true (-1 or 1), got dtype bool; "
                          "for True/False labels pass np.where(y_true, 1, -1)")


# -------------------------------------------------------------------------- bool class targets
def _bool_message(who: str, shape: tuple[int, ...], rows: bool, probabilities: bool) -> str:
    what = "neither class labels nor class probabilities" if probabilities else "not class labels"
    if rows:
        fix = ("y_true.astype(float) for one-hot rows (class probabilities), or " if probabilities else "") \
            + "y_true.argmax(axis=1) for the class labels"
    else:
        fix = "y_true.astype(np.int64) for class labels (False and True as classes 0 and 1)"
    return f"{who}: y_true of shape {shape} has dtype bool, which is {what}; pass {fix}"


@pytest.mark.parametrize(("logits_shape", "labels_shape"), [((3, 4), (3,)), ((2, 4, 5), (2, 5)),
                                                            ((2, 3, 2, 2), (2, 2, 2))])
@pytest.mark.parametrize("make", [md.CrossEntropyLoss, lambda: md.CrossEntropyLoss(label_smoothing=0.1),
                                  lambda: md.CrossEntropyLoss(ignore_index=-100)])
def test_cross_entropy_refuses_bool_targets_of_any_shape(logits_shape: tuple[int, ...],
                                                         labels_shape: tuple[int, ...],
                                                         make: Callable[[], md.CrossEntropyLoss]) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=logits_shape)
    c = logits_shape[1]
    labels = rng.integers(0, c, labels_shape)
    one_hot = np.moveaxis(np.eye(c, dtype=bool)[labels], -1, 1)  # (N, C, d1, ...)
    assert one_hot.shape == logits_shape
    error = refused(md.DTypeError, lambda: make()(x, one_hot))
    assert str(error) == _bool_message("CrossEntropyLoss", logits_shape, True, True)
    error = refused(md.DTypeError, lambda: make()(x, labels % 2 == 1))
    assert str(error) == _bool_message("CrossEntropyLoss", labels_shape, False, True)
    error = refused(md.DTypeError, lambda: make()(x, one_hot.tolist()))  # a list of bools too
    assert str(error) == _bool_message("CrossEntropyLoss", logits_shape, True, True)
    # each suggested cast runs, and gives the loss of the labels
    expected = make()(x, labels)
    assert make()(x, one_hot.astype(float)) == pytest.approx(expected, rel=1e-13)
    assert make()(x, one_hot.argmax(axis=1)) == pytest.approx(expected, rel=1e-13)
    binary = labels % 2 == 1
    assert make()(x, binary.astype(np.int64)) == make()(x, binary.astype(int))


def test_cross_entropy_still_takes_integer_and_float_one_hot_rows() -> None:
    x = np.random.default_rng(4).normal(size=(3, 4))
    labels = np.array([0, 3, 1])
    expected = md.CrossEntropyLoss()(x, labels)
    for dtype in (np.int64, np.uint8, np.float32, np.float64):
        assert md.CrossEntropyLoss()(x, np.eye(4, dtype=dtype)[labels]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("make", "who"), [(md.NLLLoss, "NLLLoss"), (md.MultiMarginLoss, "MultiMarginLoss")])
def test_nll_and_multi_margin_refuse_bool_targets_as_cross_entropy_does(make: Callable[[], md.Loss],
                                                                        who: str) -> None:
    logp = np.log(np.full((3, 4), 0.25))
    labels = np.array([0, 3, 1])
    error = refused(md.DTypeError, lambda: make()(logp, np.eye(4, dtype=bool)[labels]))
    assert str(error) == _bool_message(who, (3, 4), True, False)
    error = refused(md.DTypeError, lambda: make()(logp, np.array([True, False, True])))
    assert str(error) == _bool_message(who, (3,), False, False)
    assert make()(logp, np.eye(4, dtype=bool)[labels].argmax(axis=1)) == make()(logp, labels)


def test_nll_refuses_bool_labels_per_position() -> None:
    logp = np.log(np.full((2, 3, 5), 1 / 3))
    error = refused(md.DTypeError, lambda: md.NLLLoss()(logp, np.zeros((2, 5), bool)))
    assert str(error) == _bool_message("NLLLoss", (2, 5), False, False)


def test_float_labels_keep_their_message() -> None:
    """Only bool got a message of its own: float labels are still told astype(int) (and probabilities)."""
    x = np.zeros((3, 4))
    with pytest.raises(md.DTypeError, match=re.escape("CrossEntropyLoss: y_true of shape (3,) must hold integer "
                                                      "class labels, got dtype float64; use y_true.astype(int), "
                                                      "or pass (N, 4) class probabilities")):
        md.CrossEntropyLoss()(x, np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("loss", [md.CrossEntropyLoss(), md.NLLLoss()])
@pytest.mark.parametrize("labels, fix", [
    ([0.0, 1.0, 2.0, 1.0], "use y_true.astype(int)"),
    ([0.5, 1.0, 2.0, 1.0], "use whole-number labels (these are not: astype(int) would cut them off)"),
    ([0.0, 1.0, 2.7, 1.0], "use whole-number labels (these are not: astype(int) would cut them off)"),
    ([0.0, np.nan, 2.0, 1.0], "use finite whole-number labels (these hold NaN or inf)"),
    ([0j, 1 + 0.5j, 2 + 0j, 1 + 0j], "use whole-number labels (these are not: astype(int) would cut them off)"),
])
def test_float_labels_are_told_astype_int_only_when_it_keeps_them(loss: md.Loss, labels: list[float], fix: str) -> None:
    """A newcomer's y + 0.5 was told astype(int), which cuts 0.5 to 0 silently (new-user review)."""
    scores = np.random.default_rng(0).normal(size=(4, 3))
    with pytest.raises(md.DTypeError, match=re.escape(fix)):
        loss(scores, np.array(labels))


@pytest.mark.parametrize("value", [1.25, np.float32(1.25), 3])
def test_a_backward_given_the_loss_value_says_to_pass_its_gradient(value: object) -> None:
    """model.backward(loss_value) (a number) is told loss.backward() (new-user review)."""
    model = md.Sequential(md.Dense(3, 2, rng=0))
    model(np.ones((4, 3)))
    with pytest.raises(md.DTypeError, match=re.escape("pass the loss's gradient, loss.backward(), not the loss's "
                                                      "value")):
        model.backward(value)  # type: ignore[arg-type]
