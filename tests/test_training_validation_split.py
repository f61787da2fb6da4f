"""fit(validation_split=...): Keras's hold-out, the last samples before shuffling, the same as passing them
as validation_data; several inputs; refusals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import minidl as md


def data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def train(**kwargs: Any) -> tuple[md.History, md.Sequential]:
    x, y = kwargs.pop("x"), kwargs.pop("y")
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))
    options = {"epochs": 3, "batch_size": 8, **kwargs}
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        metrics=["accuracy"], verbose=0, rng=0, **options)
    return history, model


@pytest.mark.parametrize("split, kept", [(0.25, 30), (0.1, 36), (0.33, 26)])
def test_the_last_samples_are_the_validation_data(split: float, kept: int) -> None:
    x, y = data()
    split_history, split_model = train(x=x, y=y, validation_split=split)
    given_history, given_model = train(x=x[:kept], y=y[:kept], validation_data=(x[kept:], y[kept:]))
    assert split_history.history == given_history.history  # every figure, val_* included, to the bit
    assert split_history.params["samples"] == kept
    assert set(split_history.history) >= {"val_loss", "val_accuracy"}
    np.testing.assert_array_equal(split_model.state_dict()["2.W"], given_model.state_dict()["2.W"])


def test_several_inputs_are_split_together() -> None:
    class Two(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = md.Dense(3, 2, rng=0)

        def forward(self, x: Any) -> np.ndarray:
            features, scale = x
            self._scale = scale
            return self.dense(features) * scale

        def backward(self, g: np.ndarray) -> Any:
            return self.dense.backward(g * self._scale), None

    x, y = data()
    scale = np.linspace(0.5, 1.5, 40)[:, None]
    model = Two()
    history = model.fit((x, scale), y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        epochs=1, validation_split=0.5, verbose=0, rng=0)
    expected = model.evaluate((x[20:], scale[20:]), y[20:], loss=md.CrossEntropyLoss())["loss"]
    assert history.history["val_loss"] == [pytest.approx(expected, rel=1e-12)]


def test_early_stopping_watches_the_held_out_loss() -> None:
    x, y = data()
    stopper = md.EarlyStopping("val_loss", patience=1)
    history, _ = train(x=x, y=y, validation_split=0.2, early_stopping=stopper)
    losses = history.history["val_loss"]
    assert stopper.best == min(losses) and stopper.best_epoch == 1 + losses.index(min(losses))


@pytest.mark.parametrize("split", [1.0, -0.1, "0.2", None, True, float("nan")])
def test_a_bad_fraction_is_refused(split: Any) -> None:
    x, y = data()
    with pytest.raises(ValueError, match=r"fit: validation_split must be a number in \[0, 1\)"):
        train(x=x, y=y, validation_split=split)


def test_both_or_too_few_samples_are_refused() -> None:
    x, y = data()
    with pytest.raises(ValueError, match="fit: give validation_data or validation_split, not both"):
        train(x=x, y=y, validation_split=0.2, validation_data=(x, y))
    with pytest.raises(ValueError, match=r"fit: validation_split=0\.99 of 40 sample\(s\) leaves 0 to train on and 40 "
                                         "to validate on; each needs at least one"):
        train(x=x, y=y, validation_split=0.99)
    with pytest.raises(ValueError, match="leaves 40 to train on and 0 to validate on"):
        train(x=x, y=y, validation_split=1e-18)  # (1 - 1e-18 is 1.0)
    history, _ = train(x=x, y=y, validation_split=0.01)  # one sample held out: fine
    assert history.params["samples"] == 39


def test_messages_number_the_held_out_samples_as_in_x() -> None:
    x, y = data()
    x[35, 1] = np.nan
    with pytest.raises(md.NonFiniteError, match=r"fit: validation_split's held-out samples \(the end of x\) \(scored "
                                                r"before training, nothing was updated\): samples 30\.\.39; row 5 of "
                                                r"the batch is sample 35"):
        train(x=x, y=y, validation_split=0.25)
    x, y = data()
    with pytest.raises(ValueError, match=r"drop_last=True with 20 samples \(the first 20 of x; validation_split "
                                         r"holds out the other 20\) and batch_size 32 leaves no batch"):
        train(x=x, y=y, validation_split=0.5, drop_last=True, batch_size=32)
    with pytest.raises(ValueError, match="val_ figures need validation_data or validation_split"):
        train(x=x, y=y, early_stopping=md.EarlyStopping("val_loss"))


def test_a_float16_fraction_counts_as_a_float() -> None:
    """70000 * 0.9 is beyond float16's range: computed in float16 it was inf (an OverflowError)."""
    x, y = np.zeros((70000, 3)), np.zeros(70000, dtype=np.int64)
    history, _ = train(x=x, y=y, validation_split=np.float16(0.1), epochs=1, batch_size=70000)
    assert history.params["samples"] == math.floor(70000 * (1 - float(np.float16(0.1))))
