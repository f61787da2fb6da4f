"""Review 31 of fit: a resumed EarlyStopping whose best weights do not fit the model refused before training, not
after every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 4)), rng.integers(0, 3, 64)


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
