"""Losses and running norms pickled when their settings were plain attributes (before they became
checked properties, stored in ``_<name>``) unpickle with their settings, and run."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import minidl as md


def old_form(obj: object, *names: str) -> object:
    """``obj`` as the earlier code pickled it: each of ``names`` a plain attribute, not ``_<name>``."""
    state = dict(obj.__dict__)
    for name in names:
        state[name] = state.pop("_" + name)
    old = type(obj).__new__(type(obj))
    old.__dict__.update(state)
    return old


@pytest.mark.parametrize("make, names, y", [
    (lambda: md.MSELoss(reduction="sum"), ("reduction",), None),
    (lambda: md.HuberLoss(reduction="sum", delta=0.5), ("reduction", "delta"), None),
    (lambda: md.CrossEntropyLoss(label_smoothing=0.1, ignore_index=2), ("reduction", "label_smoothing",
                                                                       "ignore_index", "weight"), "labels"),
    (lambda: md.BCEWithLogitsLoss(pos_weight=np.array([2.0, 0.5, 1.0])), ("reduction", "pos_weight"),
     "binary"),
])
def test_a_loss_pickled_with_plain_settings_keeps_them(make, names, y) -> None:
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((4, 3))
    target = {None: rng.standard_normal((4, 3)), "labels": np.array([0, 1, 2, 1]),
              "binary": (rng.random((4, 3)) > 0.5).astype(float)}[y]
    fresh = make()
    restored = pickle.loads(pickle.dumps(old_form(make(), *names)))
    assert repr(restored) == repr(fresh)
    for name in names:
        assert name not in restored.__dict__
        np.testing.assert_array_equal(getattr(restored, name), getattr(fresh, name))
    assert restored(pred, target) == fresh(pred, target)
    np.testing.assert_array_equal(restored.backward(), fresh.backward())


@pytest.mark.parametrize("make", [lambda: md.BatchNorm2d(3, momentum=0.3),
                                  lambda: md.InstanceNorm2d(3, momentum=0.2, track_running_stats=True)])
def test_a_running_norm_pickled_with_a_plain_momentum_keeps_it(make) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4))
    fresh = make()
    restored = pickle.loads(pickle.dumps(old_form(make(), "momentum")))
    assert repr(restored) == repr(fresh) and restored.momentum == fresh.momentum
    np.testing.assert_array_equal(restored(x), fresh(x))
    np.testing.assert_array_equal(restored.running_mean, fresh.running_mean)
    with pytest.raises(ValueError):
        restored.momentum = 2.0  # still checked
    assert restored.momentum == fresh.momentum
