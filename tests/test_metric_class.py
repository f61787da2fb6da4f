"""``md.Metric``, exported: a subclass names its history key, declares a direction for ``mode="auto"``, and
weighs its batches by the ``batch_weight`` it sets (the docs' Recall, in docs/training.md)."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import training


class Recall(md.Metric):
    """Of the samples of class 1, the fraction predicted so: y_pred (N, C) scores, y_true (N,) labels."""

    name, direction = "recall", "max"

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        positive = y_true == 1
        self.batch_weight = int(positive.sum())  # a batch of no positive sample weighs nothing
        return float((y_pred.argmax(axis=1)[positive] == 1).sum() / max(self.batch_weight, 1))


def data(seed: int, n: int = 37) -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = md.Sequential(md.Dense(3, 2, rng=seed))
    return model, rng.normal(size=(n, 3)), rng.integers(0, 2, size=n)


def test_metric_is_exported() -> None:
    assert md.Metric is training.Metric and "Metric" in md.__all__


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [4, 10, 37])
def test_a_metric_weighs_its_batches_by_the_weight_it_sets(seed: int, batch_size: int) -> None:
    model, x, y = data(seed)
    predicted = model.predict(x).argmax(axis=1)
    expected = np.sum((predicted == 1) & (y == 1)) / np.sum(y == 1)  # over every positive sample at once
    scores = model.evaluate(x, y, metrics=[Recall()], batch_size=batch_size)
    assert scores["recall"] == pytest.approx(expected, rel=1e-12)


def test_a_declared_direction_decides_mode_auto() -> None:
    model, x, y = data(0)
    es = md.EarlyStopping(monitor="val_recall", patience=1)
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
                        metrics=[Recall()], validation_split=0.3, early_stopping=es, rng=0, verbose=0)
    assert es.mode == "max"
    assert set(history.history) >= {"loss", "recall", "val_loss", "val_recall"}
