"""EarlyStopping: the stopping rule on given sequences, and in fit against shorter fits of the same run."""

from __future__ import annotations

import math

import numpy as np
import pytest

import minidl as md


def _stops_after(values: list[float], **kwargs: object) -> tuple[int, md.EarlyStopping]:
    es = md.EarlyStopping("loss", **kwargs)  # type: ignore[arg-type]
    model = md.Dense(1, 1, rng=0)
    for epoch, v in enumerate(values, start=1):
        if es.update(epoch, {"loss": v}, model):
            return epoch, es
    return 0, es


@pytest.mark.parametrize(("values", "kwargs", "stop", "best_epoch"), [
    ([5, 4, 3, 3.5, 3.2, 2.0], {"patience": 2}, 5, 3),
    ([5, 4, 3, 3.5, 2.9, 3.1], {"patience": 2}, 0, 5),
    ([5, 4, 4.5], {"patience": 0}, 3, 2),
    ([5, 4, 4.5], {"patience": 1}, 3, 2),  # 0 and 1 alike, as in Keras
    ([5, 4.95, 4.9, 4.85], {"patience": 2, "min_delta": 0.1}, 3, 1),
    ([5, math.nan, math.nan, 1], {"patience": 2}, 3, 1),  # NaN never improves
    ([math.nan, 3, 2], {"patience": 2}, 0, 3),
    ([0.5, 0.7, 0.6, 0.65], {"patience": 2, "mode": "max"}, 4, 2),
    ([0.80, 0.79, 0.78, 0.77], {"patience": 2, "mode": "max", "min_delta": 0.05}, 3, 1),  # worse is no gain
    ([0.80, 0.83, 0.84, 0.90], {"patience": 2, "mode": "max", "min_delta": 0.05}, 3, 1),  # rises below min_delta
])
def test_the_stopping_rule(values: list[float], kwargs: dict[str, object], stop: int, best_epoch: int) -> None:
    stopped, es = _stops_after(values, **kwargs)
    assert stopped == stop and es.stopped_epoch == stop
    assert es.best_epoch == best_epoch and es.best == values[best_epoch - 1]


def test_auto_mode_maximises_accuracy_like_figures() -> None:
    assert md.EarlyStopping("val_accuracy").mode == "max"
    assert md.EarlyStopping("val_loss").mode == "min"
    assert md.EarlyStopping("val_accuracy", mode="min").mode == "min"


def _data(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x, xv = rng.normal(size=(48, 3)), rng.normal(size=(24, 3))
    w = np.array([[1.0], [2.0], [-1.0]])
    return x, x @ w + rng.normal(size=(48, 1)) * 2.0, xv, xv @ w  # noisy training targets: it overfits


def _model(seed: int) -> md.Sequential:
    return md.Sequential(md.Dense(3, 24, rng=seed), md.BatchNorm1d(24), md.ReLU(), md.Dense(24, 1, rng=seed + 1))


def _fit(model: md.Sequential, seed: int, epochs: int, es: md.EarlyStopping | None = None) -> md.History:
    x, y, xv, yv = _data(seed)
    return md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.Adam(model.parameters(), lr=0.05),
                  epochs=epochs, batch_size=8, validation_data=(xv, yv), rng=seed, verbose=0, early_stopping=es)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("restore", [True, False])
def test_fit_stops_and_ends_with_the_best_or_the_last_weights(seed: int, restore: bool) -> None:
    es = md.EarlyStopping(patience=3, restore_best_weights=restore)
    model = _model(seed)
    history = _fit(model, seed, 100, es)
    assert 0 < es.best_epoch < es.stopped_epoch == len(history) < 100
    val = history["val_loss"]
    assert es.best == min(val) == val[es.best_epoch - 1]
    assert all(v >= es.best for v in val[es.best_epoch:])  # none of the last `patience` improved
    assert es.restored is restore
    # the same run cut at the best (or the stopping) epoch: the same parameters and buffers, bit for bit
    short = _model(seed)
    _fit(short, seed, es.best_epoch if restore else es.stopped_epoch)
    for (name, a), b in zip(model.state_dict().items(), short.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    _, _, xv, yv = _data(seed)
    if restore:
        assert md.evaluate(model, xv, yv, loss=md.MSELoss())["loss"] == pytest.approx(es.best, rel=1e-12)


def test_a_monitor_the_fit_does_not_record_is_refused_before_training() -> None:
    model = _model(0)
    before = model.state_dict()
    x, y, _, _ = _data(0)
    with pytest.raises(ValueError, match=r"monitors 'val_loss', which this fit does not record \(val_ figures "
                                         r"need validation_data or validation_split\); it records \['loss'\]"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0,
               early_stopping=md.EarlyStopping())
    with pytest.raises(ValueError, match=r"records \['loss', 'mae'\]"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0,
               metrics=["mae"], early_stopping=md.EarlyStopping("accuracy"))
    with pytest.raises(TypeError, match="early_stopping must be an EarlyStopping"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0,
               early_stopping="val_loss")  # type: ignore[arg-type]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_one_instance_serves_several_fits_and_prints_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    es = md.EarlyStopping("loss", patience=1, restore_best_weights=True)
    x, y, _, _ = _data(0)
    model = md.Sequential(md.Dense(3, 1, rng=0))
    md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=3, verbose=2,
           early_stopping=es)
    assert es.stopped_epoch == 0 and es.best_epoch == 3  # still improving: ran to the end
    assert "best loss: " in capsys.readouterr().out
    md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=5.0), epochs=50, verbose=2,
           early_stopping=es)  # far too large a step: diverges at once
    assert es.best_epoch == 1 and es.stopped_epoch == 2
    assert "early stopping after epoch 2: loss did not improve for 1 epoch(s)" in capsys.readouterr().out


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="monitor must be the name of a history key"):
        md.EarlyStopping("")
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="patience must be an int >= 0"):
            md.EarlyStopping(patience=bad)  # type: ignore[arg-type]
    for bad in (-0.1, math.nan, "0"):
        with pytest.raises(ValueError, match="min_delta must be a finite number >= 0"):
            md.EarlyStopping(min_delta=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        md.EarlyStopping(mode="up")
    with pytest.raises(TypeError, match="restore_best_weights must be True or False"):
        md.EarlyStopping(restore_best_weights=1)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="monitor 'val_loss' is not in the history"):
        md.EarlyStopping().update(1, {"loss": 1.0}, md.Dense(1, 1))


def test_after_fit_raises_the_best_state_is_there_to_load() -> None:
    """As in Keras, a fit that raises restores nothing (its parameters are those of the last good batch);
    the best epoch's state is kept in ``best_state``."""
    x, y, xv, yv = _data(0)
    model = md.Sequential(md.Dense(3, 1, rng=0))
    es = md.EarlyStopping(patience=50, restore_best_weights=True)
    with pytest.raises(md.NonFiniteError, match="the loss is"):
        md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=2.0), epochs=500,
               batch_size=8, validation_data=(xv, yv), verbose=0, early_stopping=es, shuffle=False)  # diverges
    assert es.best_state is not None and not es.restored and es.best_epoch == 1
    model.load_state_dict(es.best_state)
    assert md.evaluate(model, xv, yv, loss=md.MSELoss())["loss"] == pytest.approx(es.best, rel=1e-12)


def test_no_summary_is_printed_when_no_epoch_ran(capsys: pytest.CaptureFixture[str]) -> None:
    x, y, _, _ = _data(0)
    model = md.Sequential(md.Dense(3, 1, rng=0))
    md.fit(model, x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=0, verbose=2,
           early_stopping=md.EarlyStopping("loss"))
    assert capsys.readouterr().out == ""


def test_monitoring_lr_says_why_it_is_not_a_figure() -> None:
    """history has an 'lr' key, yet the message listed only ['loss'] with no word on why."""
    model = md.Sequential(md.Dense(2, 1, rng=0))
    with pytest.raises(ValueError, match=r"monitors 'lr', which this fit does not record \(as a figure: the history's "
                                         r"lr is the schedule's, not the model's\); it records \['loss'\]"):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                  early_stopping=md.EarlyStopping("lr"), verbose=0)
