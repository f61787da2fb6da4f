"""fit's ``callbacks``: called in order at each epoch's end, where a checkpoint resumes bit for bit; a stop by
return value; an error with fit's context; checked up front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal

EPOCHS = 8


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((64, 4)), rng.integers(0, 3, 64), rng.standard_normal((32, 4)),
            rng.integers(0, 3, 32))


def _make(dtype: Any, plateau: bool, seed: int = 0) -> tuple[md.Sequential, md.Adam, Any, md.EarlyStopping,
                                                             np.random.Generator]:
    """A model with batch norm and dropout (its own generator), Adam, a schedule, an EarlyStopping restoring the
    best weights, the shuffling generator; ``seed`` 0 for the run, another for the objects a resume loads into."""
    model = md.Sequential(md.Dense(4, 8, rng=seed), md.BatchNorm1d(8), md.ReLU(), md.Dropout(0.3, rng=seed + 1),
                          md.Dense(8, 3, rng=seed + 2)).astype(dtype)
    opt = md.Adam(model.parameters(), lr=0.1)
    sched = md.ReduceLROnPlateau(opt, monitor="val_loss", patience=0, factor=0.5) if plateau \
        else md.StepLR(opt, step_size=2, gamma=0.5)
    es = md.EarlyStopping("val_loss", patience=3, restore_best_weights=True)
    return model, opt, sched, es, np.random.default_rng(seed + 7)


def _fit(objects: tuple[Any, ...], dtype: Any, **kw: Any) -> md.History:
    x, y, xv, yv = _data()
    model, opt, sched, es, shuffler = objects
    return model.fit(x.astype(dtype), y, loss=md.CrossEntropyLoss(), optimizer=opt, scheduler=sched,
                     early_stopping=es, rng=shuffler, batch_size=16, validation_data=(xv.astype(dtype), yv),
                     verbose=0, **kw)


def _state(objects: tuple[Any, ...]) -> dict[str, Any]:
    model, opt, sched, es, shuffler = objects
    return {"model": model.state_dict(generators=True), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "early_stopping": es.state_dict(),
            "shuffler": shuffler.bit_generator.state}


@pytest.mark.parametrize("plateau", [False, True], ids=["StepLR", "ReduceLROnPlateau"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("when", [1, 2, 3, "stop"])
def test_a_checkpoint_saved_in_a_callback_resumes_bit_for_bit(when: int | str, dtype: Any, plateau: bool,
                                                              tmp_path: Path) -> None:
    """At any epoch, the one the early stopping stopped at too (the resumed fit then trains no epoch and ends as
    the run ended: the best weights restored, the last epoch's kept in ``last_state``)."""
    path = tmp_path / "run.ckpt"
    plain = _make(dtype, plateau)
    plain_history = _fit(plain, dtype, epochs=EPOCHS)
    k = plain_history.epoch[-1] if when == "stop" else int(when)
    # the run stops early, after a best epoch before it, and the schedule changed the lr: all of it matters
    assert plain_history.stopped_by == "early_stopping" and k <= plain_history.epoch[-1] < EPOCHS
    assert plain[3].best_epoch < plain_history.epoch[-1] and plain[3].restored
    assert len(set(plain_history["lr"])) > 1

    run = _make(dtype, plateau)

    def checkpoint(epoch: int, history: md.History) -> None:
        if epoch == k:
            md.save({**_state(run), "epoch": epoch, "history": history.history}, path)

    history = _fit(run, dtype, epochs=EPOCHS, callbacks=[checkpoint])
    # the callback changes nothing in the run
    assert states_equal(_state(run), _state(plain)) and history.history == plain_history.history

    resumed = _make(dtype, plateau, seed=100)  # other weights, generators, shuffler: all come from the file
    model, opt, sched, es, shuffler = resumed
    ck = md.load(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    es.load_state_dict(ck["early_stopping"])
    shuffler.bit_generator.state = ck["shuffler"]
    assert ck["epoch"] == k and ck["history"]["loss"] == plain_history["loss"][:k]
    rest = _fit(resumed, dtype, epochs=EPOCHS, initial_epoch=ck["epoch"])
    assert rest.epoch == plain_history.epoch[k:]
    if when == "stop":
        assert rest.history == {}
    else:
        assert rest.history == {key: values[k:] for key, values in plain_history.history.items()}
    assert rest.stopped_epoch == plain_history.stopped_epoch and rest.stopped_by == "early_stopping"
    for name, p in model.named_parameters():  # the best epoch's, restored at the end, bit for bit
        assert p.dtype == dtype and np.array_equal(p.data, dict(run[0].named_parameters())[name].data), name
    assert states_equal(_state(resumed), _state(run))
    assert states_equal(es.last_state, run[3].last_state)


def test_one_fit_with_a_checkpointing_callback_validates_once_per_epoch_and_once_before() -> None:
    """The recipe of one fit per epoch scored the validation data twice an epoch."""
    passes = {"n": 0}

    class Spy(md.Layer):
        def forward(self, x: np.ndarray) -> np.ndarray:
            passes["n"] += not self.training
            return x

        def backward(self, grad: np.ndarray) -> np.ndarray:
            return grad

    x, y, xv, yv = _data()
    model = md.Sequential(Spy(), md.Dense(4, 3, rng=0))
    saved: list[int] = []
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters()), epochs=6, verbose=0,
              validation_data=(xv, yv), callbacks=[lambda epoch, history: saved.append(epoch)])
    assert saved == [1, 2, 3, 4, 5, 6] and passes["n"] == 7


# ---------------------------------------------------------------------------------------------- order, what it sees
def test_callbacks_are_called_in_order_after_the_epoch_ended() -> None:
    x, y, xv, yv = _data()
    model = md.Sequential(md.Dense(4, 8, rng=0), md.Dropout(0.5, rng=1), md.Dense(8, 3, rng=2))
    opt = md.SGD(model.parameters(), lr=0.1)
    sched = md.StepLR(opt, step_size=1, gamma=0.5)
    es = md.EarlyStopping("val_loss", patience=10)
    calls: list[tuple[Any, ...]] = []

    def first(epoch: int, history: md.History) -> None:
        # the epoch is in the history, the schedule stepped for it, the early stopping saw it; eval mode
        calls.append(("first", epoch, list(history.epoch), opt.lr, es._epoch, model.training, model[1].training))

    class Second:
        def __call__(self, epoch: int, history: md.History) -> bool:
            calls.append(("second", epoch))
            return False

    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=opt, scheduler=sched, early_stopping=es,
                     epochs=3, verbose=0, validation_data=(xv, yv), callbacks=(first, Second()))
    assert calls == [("first", 1, [1], 0.05, 1, False, False), ("second", 1),
                     ("first", 2, [1, 2], 0.025, 2, False, False), ("second", 2),
                     ("first", 3, [1, 2, 3], 0.0125, 3, False, False), ("second", 3)]
    assert history.stopped_epoch == 0 and history.stopped_by is None
    assert model.training and model[1].training  # the modes of before the fit, as always


def test_a_callback_running_the_model_does_not_change_the_run() -> None:
    """It is called in eval mode: a prediction there draws no dropout mask and moves no running statistic."""
    x, y, xv, _ = _data()

    def run(callbacks: Any) -> dict[str, Any]:
        model = md.Sequential(md.Dense(4, 8, rng=0), md.BatchNorm1d(8), md.Dropout(0.5, rng=1), md.Dense(8, 3, rng=2))
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters()), epochs=3, verbose=0,
                  rng=0, callbacks=callbacks(model) if callbacks else None)
        return model.state_dict(generators=True)

    def predicting(model: md.Sequential) -> list[Any]:
        def predict(epoch: int, history: md.History) -> None:
            model(xv)
            model.predict(xv)

        return [predict]

    assert states_equal(run(predicting), run(None))


# ---------------------------------------------------------------------------------------------- stopping
def test_a_callback_returning_true_stops_after_that_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    x, y, xv, yv = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    opt = md.SGD(model.parameters(), lr=0.5)
    es = md.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
    seen: list[tuple[str, int]] = []

    def go_on(epoch: int, history: md.History) -> None:
        seen.append(("go_on", epoch))

    def stop_at_3(epoch: int, history: md.History) -> bool:
        seen.append(("stop_at_3", epoch))
        return epoch == 3

    def also_stop(epoch: int, history: md.History) -> np.bool_:
        seen.append(("also_stop", epoch))
        return np.bool_(epoch == 3)

    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=10, verbose=2,
                        validation_data=(xv, yv), early_stopping=es, callbacks=[go_on, stop_at_3, also_stop])
    assert history.epoch == [1, 2, 3] and history.params["epochs"] == 10
    assert history.stopped_epoch == 3 and history.stopped_by == "callbacks[1]"
    # every callback is called after the one that asked to stop
    assert seen == [(name, e) for e in (1, 2, 3) for name in ("go_on", "stop_at_3", "also_stop")]
    out = capsys.readouterr().out
    assert "training stopped after epoch 3/10 by callbacks[1] (stop_at_3)" in out
    # the early stopping did not stop; restore_best_weights restored its best epoch as at any end of training
    assert es.stopped_epoch == 0 and es.restored and es.last_state is not None
    best = es.best_state
    assert best is not None
    assert all(np.array_equal(model.state_dict()[key], value) for key, value in best.items())


def test_early_stoppings_stop_is_recorded_in_the_history_and_said_first() -> None:
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    es = md.EarlyStopping("loss", patience=1, min_delta=10.0)  # never improves after epoch 1
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                     epochs=5, verbose=0, early_stopping=es, callbacks=[lambda epoch, history: True])
    assert history.epoch == [1]  # the callback's True at epoch 1, before the early stopping's at epoch 2
    assert history.stopped_by == "callbacks[0]" and history.stopped_epoch == 1
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                     epochs=5, verbose=0, early_stopping=es, callbacks=[lambda epoch, history: epoch == 2])
    assert history.epoch == [1, 2] and history.stopped_by == "early_stopping" and history.stopped_epoch == 2


def test_a_callback_returning_something_else_is_refused_with_the_epoch_kept() -> None:
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    with pytest.raises(TypeError) as caught:
        md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=3,
               verbose=0, callbacks=[lambda epoch, history: "run.ckpt"])
    assert str(caught.value) == (
        "fit: callbacks[0] (<lambda>) after epoch 1/3 (the epoch is complete and in error.history): a callback "
        "returns True (stop training), False or None (go on), got str 'run.ckpt'")
    assert caught.value.history.epoch == [1] and caught.value.epoch == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- errors
def test_a_callbacks_error_propagates_with_fits_context_and_the_epoch_kept() -> None:
    x, y, _, _ = _data()

    def make() -> tuple[md.Sequential, md.Adam, np.random.Generator]:
        model = md.Sequential(md.Dense(4, 8, rng=0), md.Dropout(0.3, rng=1), md.Dense(8, 3, rng=2))
        return model, md.Adam(model.parameters(), lr=0.01), np.random.default_rng(5)

    es = md.EarlyStopping("loss", patience=10, restore_best_weights=True)
    model, opt, shuffler = make()
    later: list[int] = []

    def boom(epoch: int, history: md.History) -> None:
        if epoch == 2:
            raise ValueError("disk full")

    with pytest.raises(ValueError) as caught:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=4, verbose=0, rng=shuffler,
                  early_stopping=es, callbacks=[boom, lambda epoch, history: later.append(epoch)])
    error: Any = caught.value
    assert str(error) == "disk full"
    assert error.history.epoch == [1, 2] and error.epoch == 2 and error.batch is None
    assert error.__notes__ == ["(raised in fit: callbacks[0] (boom) after epoch 2/4; the epoch is complete and in "
                               "error.history; the callbacks after it were not called)"]
    assert later == [1]
    # the finished epoch kept: the model, the optimizer, the shuffler as after 2 epochs (not rewound), no restore
    model2, opt2, shuffler2 = make()
    model2.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt2, epochs=2, verbose=0, rng=shuffler2)
    assert states_equal(model.state_dict(generators=True), model2.state_dict(generators=True))
    assert states_equal(opt.state_dict(), opt2.state_dict())
    assert shuffler.bit_generator.state == shuffler2.bit_generator.state
    assert not es.restored


def test_a_minidl_error_or_an_interrupt_in_a_callback_says_where() -> None:
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))

    def bad_save(epoch: int, history: md.History) -> None:
        md.save({"x": np.array([object()])}, "never.ckpt")

    with pytest.raises(md.DTypeError) as caught:
        md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
               verbose=0, callbacks=[bad_save])
    assert str(caught.value).startswith("fit: callbacks[0] (bad_save) after epoch 1/2 (the epoch is complete and in "
                                        "error.history): minidl.save: state['x'] has dtype object")
    assert caught.value.history.epoch == [1]  # type: ignore[attr-defined]

    def interrupt(epoch: int, history: md.History) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
               verbose=0, callbacks=[interrupt])
    assert stopped.value.history.epoch == [1] and stopped.value.epoch == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- checked up front
@pytest.mark.parametrize(("callbacks", "message"), [
    ([print, 3], "fit: callbacks[1] must be a callable f(epoch, history) -> bool | None, got int 3"),
    (["save"], "fit: callbacks[0] must be a callable f(epoch, history) -> bool | None, got str 'save'"),
    (5, "fit: callbacks must be a list of callables f(epoch, history) -> bool | None, got int"),
    ("save", "fit: callbacks must be a list of callables f(epoch, history) -> bool | None, got str"),
    ([lambda epoch: None], "fit: callbacks[0] (<lambda>) cannot be called as f(epoch, history), the two arguments "
                           "fit passes it: too many positional arguments (its signature is <lambda>(epoch))"),
])
def test_callbacks_are_checked_before_training(callbacks: Any, message: str) -> None:
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    before = model.state_dict()
    with pytest.raises(TypeError) as caught:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
                  verbose=0, callbacks=callbacks)
    assert str(caught.value) == message
    assert states_equal(model.state_dict(), before)


def test_one_callable_and_an_iterator_are_taken() -> None:
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    seen: list[int] = []
    md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
           verbose=0, callbacks=lambda epoch, history: seen.append(epoch))
    md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2,
           verbose=0, callbacks=iter([lambda epoch, history: seen.append(-epoch)]))
    assert seen == [1, 2, -1, -2]


def test_a_stop_asked_at_the_last_epoch_stops_nothing_and_is_not_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    """``stopped_epoch`` is the epoch after which training stopped *before* ``epochs``: a callback's True or the
    early stopping's at the last epoch leaves it 0 (and prints no "training stopped")."""
    x, y, _, _ = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                     epochs=3, verbose=2, callbacks=[lambda epoch, history: epoch == 3])
    assert history.epoch == [1, 2, 3] and history.stopped_epoch == 0 and history.stopped_by is None
    assert "training stopped" not in capsys.readouterr().out
    es = md.EarlyStopping("loss", patience=1, min_delta=10.0)  # asks to stop at epoch 2, the last
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                     epochs=2, verbose=0, early_stopping=es)
    assert history.epoch == [1, 2] and history.stopped_epoch == 0 and history.stopped_by is None
    history = md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                     epochs=3, verbose=2, callbacks=[lambda epoch, history: epoch == 2])
    assert history.epoch == [1, 2] and history.stopped_epoch == 2 and history.stopped_by == "callbacks[0]"
    assert "training stopped after epoch 2/3 by callbacks[0] (<lambda>)" in capsys.readouterr().out
