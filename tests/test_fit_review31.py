"""Review 31 of fit: the progress bar's samples/s timed from the batches (not the bar's making), and a resumed
EarlyStopping whose best weights do not fit the model refused before training, not after every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
import minidl.training as training
from minidl.testing import states_equal


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 4)), rng.integers(0, 3, 64)


# ---------------------------------------------------------------------------------------------- samples/s
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_the_bars_samples_per_second_do_not_count_its_making(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar that takes 100 s to make and 1 s per batch: 40 samples in 4 batches are 10 samples/s."""
    clock = _Clock()
    shown: list[str] = []

    class SlowBar:
        def __init__(self, **kwargs: Any) -> None:
            clock.now += 100.0

        def update(self, n: int) -> None:
            clock.now += 1.0

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            shown.append(text)

        def close(self) -> None:
            pass

    monkeypatch.setattr(training, "time", clock)
    monkeypatch.setattr(training, "_tqdm", lambda: SlowBar)
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    history = model.fit(x[:40], y[:40], loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        epochs=2, batch_size=10, verbose=1)
    ends = [text for text in shown if "samples/s" in text]
    assert len(ends) == 2 and all(text.endswith(" - 10 samples/s") for text in ends), ends
    assert history.epoch_times == [104.0, 104.0]  # the epoch's seconds: everything in it, the bar too


# ---------------------------------------------------------------------------------------------- best_state checked
def _loaded_early_stopping(best_state: dict[str, np.ndarray]) -> md.EarlyStopping:
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    es = md.EarlyStopping("loss", patience=2, restore_best_weights=True)
    md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
           verbose=0, early_stopping=es)
    state = es.state_dict()
    state["best"], state["best_state"] = -1e9, best_state  # an unbeatable best, of another model
    loaded = md.EarlyStopping("loss")
    loaded.load_state_dict(state)
    return loaded


@pytest.mark.parametrize(("other", "dtype", "problems"), [
    (md.Sequential(md.Dense(6, 2, rng=0)), np.float64,
     "  layer '0' (Dense): the state holds 6 input features with a bias, this layer 4 input features with a bias\n"
     "  '0.W': expected shape (5, 3), got (7, 2)"),
    (md.Sequential(md.Dense(4, 3, rng=0)), np.float32, "  '0.W': expected dtype float32, got float64"),
])
def test_a_resumed_early_stoppings_best_weights_that_do_not_fit_are_refused_before_training(
        other: md.Sequential, dtype: Any, problems: str) -> None:
    es = _loaded_early_stopping(other.state_dict())
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=3)).astype(dtype)
    opt = md.Adam(model.parameters(), lr=0.1)
    shuffler = np.random.default_rng(1)
    before, opt_before, es_before = model.state_dict(), opt.state_dict(), es.state_dict()
    shuffled = shuffler.bit_generator.state
    with pytest.raises(md.StateDictError) as caught:
        model.fit(x.astype(dtype), y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=10, initial_epoch=2,
                  verbose=0, rng=shuffler, early_stopping=es)
    assert caught.value.args[0] == (
        "fit: the EarlyStopping goes on from a loaded run whose best weights (best_state), which "
        "restore_best_weights loads at the end, do not fit this model; nothing was trained: "
        f"Sequential.load_state_dict refused the state ({problems.count(chr(10)) + 1} problem"
        f"{'s' if chr(10) in problems else ''}); nothing was changed:\n" + problems)
    # nothing trained, nothing changed
    assert states_equal(model.state_dict(), before) and states_equal(opt.state_dict(), opt_before)
    assert states_equal(es.state_dict(), es_before) and shuffler.bit_generator.state == shuffled
    # the same early stopping, its best weights no longer restored, trains
    es.restore_best_weights = False
    history = model.fit(x.astype(dtype), y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=4, initial_epoch=2,
                        verbose=0, early_stopping=es)
    assert history.epoch == [3, 4]


def test_the_check_of_a_state_changes_nothing() -> None:
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Dropout(0.5, rng=1))
    other = md.Sequential(md.Dense(4, 3, rng=5), md.Dropout(0.5, rng=6))
    before = model.state_dict(generators=True)
    checked = model._checked_state(other.state_dict(generators=True))
    assert sorted(checked.values) == ["0.W"] and not checked.missing and not checked.unexpected
    assert states_equal(model.state_dict(generators=True), before)
