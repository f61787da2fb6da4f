"""Review 26 of losses: regression targets ``(N,)`` for predictions ``(N, 1)`` (the commonest porting mistake)
are still refused, not broadcast, and the message now ends with the reshape that fixes them, in every loss
whose target must have the prediction's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md

#: Every loss whose y_true must have y_pred's shape (one array each), with values each accepts.
SAME_SHAPE: list[Callable[[], md.Loss]] = [
    md.MSELoss, md.HalfSquaredError, md.BCELoss, md.BCEWithLogitsLoss, md.L1Loss, md.HuberLoss, md.SmoothL1Loss,
    md.PoissonNLLLoss, md.SoftMarginLoss, md.HingeEmbeddingLoss, md.KLDivLoss,
]


def refusal(call: Callable[[], Any]) -> str:
    with pytest.raises(md.ShapeError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize("make", SAME_SHAPE)
def test_a_column_of_predictions_with_a_flat_target_is_told_to_reshape_the_target(make: Callable[[], md.Loss]) -> None:
    loss = make()
    name = type(loss).__name__
    y_pred, y_true = np.full((9, 1), 0.5), np.ones(9)
    assert refusal(lambda: loss(y_pred, y_true)) == (f"{name}: y_pred has shape (9, 1) but y_true has shape (9,); "
                                                     "pass y_true.reshape(-1, 1)")
    fixed = make()
    value = fixed(y_pred, y_true.reshape(-1, 1))  # the suggested call runs, and as on equal shapes
    assert value == make()(y_pred.ravel(), y_true) and fixed.backward().shape == (9, 1)


@pytest.mark.parametrize("make", SAME_SHAPE)
def test_flat_predictions_with_a_column_target_are_told_both_ways_round(make: Callable[[], md.Loss]) -> None:
    loss = make()
    name = type(loss).__name__
    y_pred, y_true = np.full(9, 0.5), np.ones((9, 1))
    assert refusal(lambda: loss(y_pred, y_true)) == (f"{name}: y_pred has shape (9,) but y_true has shape (9, 1); "
                                                     "pass y_true.reshape(-1), or give y_pred y_true's shape: "
                                                     "y_pred.reshape(-1, 1)")
    assert make()(y_pred, y_true.reshape(-1)) == make()(y_pred.reshape(-1, 1), y_true)


@pytest.mark.parametrize(("pred", "true", "hint", "fix"), [
    ((4, 5, 1), (4, 5), "; pass y_true[..., None]", lambda t: t[..., None]),
    ((4, 5), (4, 5, 1), "; pass y_true[..., 0], or give y_pred y_true's shape: y_pred[..., None]", lambda t: t[..., 0]),
    ((1, 1), (1,), "; pass y_true.reshape(-1, 1)", lambda t: t.reshape(-1, 1)),
])
def test_more_axes_get_an_indexing_hint(pred: tuple[int, ...], true: tuple[int, ...], hint: str,
                                        fix: Callable[[np.ndarray], np.ndarray]) -> None:
    message = refusal(lambda: md.L1Loss()(np.zeros(pred), np.zeros(true)))
    assert message == f"L1Loss: y_pred has shape {pred} but y_true has shape {true}{hint}"
    assert md.L1Loss()(np.zeros(pred), fix(np.zeros(true))) == 0.0


@pytest.mark.parametrize(("pred", "true"), [((9, 1), (8,)), ((9,), (8, 1)), ((9, 2), (9,)), ((), (1,)), ((1,), ()),
                                            ((9, 1, 1), (9,)), ((9, 3), (9, 3, 2))])
def test_other_mismatches_keep_the_plain_message(pred: tuple[int, ...], true: tuple[int, ...]) -> None:
    assert refusal(lambda: md.MSELoss()(np.zeros(pred), np.zeros(true))) == (
        f"MSELoss: y_pred has shape {pred} but y_true has shape {true}")


def test_multilabel_soft_margin_gets_the_hint_too() -> None:
    message = refusal(lambda: md.MultiLabelSoftMarginLoss()(np.zeros((4, 3)), np.ones((4, 3, 1))))
    assert message.endswith("y_true has shape (4, 3, 1); pass y_true[..., 0], or give y_pred y_true's shape: "
                            "y_pred[..., None]")


def test_losses_of_several_predictions_hint_at_y_true_only() -> None:
    pair = (np.ones((3, 1)), np.ones((3, 1)))
    assert refusal(lambda: md.MarginRankingLoss()(pair, np.ones(3))) == (
        "MarginRankingLoss: y_true must have shape (3, 1), got (3,); pass y_true.reshape(-1, 1)")
    embeddings = (np.ones((3, 4)), np.ones((3, 4)))
    assert refusal(lambda: md.CosineEmbeddingLoss()(embeddings, np.ones((3, 1)))) == (
        "CosineEmbeddingLoss: y_true must have shape (3,), got (3, 1); pass y_true.reshape(-1)")
    assert refusal(lambda: md.GaussianNLLLoss()(pair, np.ones(3))) == (
        "GaussianNLLLoss: y_true must have the shape of the mean (y_pred[0]) (3, 1), got (3,); "
        "pass y_true.reshape(-1, 1)")
    assert refusal(lambda: md.MarginRankingLoss()(pair, np.ones(2))) == (
        "MarginRankingLoss: y_true must have shape (3, 1), got (2,)")


def test_fit_on_flat_regression_targets_says_the_fix_and_the_fix_trains() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 3)), rng.normal(size=9)
    model = md.Sequential(md.Dense(3, 1))
    message = refusal(lambda: model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                                        epochs=1, verbose=0))
    assert message.endswith("MSELoss: y_pred has shape (9, 1) but y_true has shape (9,); pass y_true.reshape(-1, 1)")
    model.fit(x, y.reshape(-1, 1), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1,
              verbose=0)
