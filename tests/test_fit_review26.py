"""Review 26 of fit: the shuffling generator after a stopped fit, ``initial_epoch``, metric names as given,
``mode="auto"`` for known monitors only, ``md.fit``'s positional message, one sample given to predict, and the
batches applied before a refused one."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minidl as md


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _model(dropout: bool = False) -> md.Sequential:
    if dropout:
        return md.Sequential(md.Dense(4, 8, rng=0), md.ReLU(), md.Dropout(0.3, rng=1), md.Dense(8, 3, rng=2))
    return md.Sequential(md.Dense(4, 8, rng=0), md.ReLU(), md.Dense(8, 3, rng=2))


class _StopAt(md.Layer):
    """Identity that raises ``error`` at its forward number ``at`` (counted from 1)."""

    def __init__(self, at: int, error: BaseException) -> None:
        super().__init__()
        self.at, self.error, self.calls = at, error, 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.at:
            raise self.error
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def _after(seed: int, permutations: int, n: int) -> dict[str, Any]:
    g = np.random.default_rng(seed)
    for _ in range(permutations):
        g.permutation(n)
    return g.bit_generator.state


def _params(model: md.Layer) -> list[np.ndarray]:
    return [p.data.copy() for p in model.parameters()]


# ---------------------------------------------------------------------------------------------- 1. the generator
@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("mine")])
def test_a_fit_stopped_in_an_epoch_leaves_the_shuffling_generator_as_at_that_epoch_s_start(
        error: BaseException) -> None:
    """It moved on by the stopped epoch's permutation: a checkpoint of it skipped that epoch's order."""
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0), _StopAt(4, error))  # epoch 2, batch 2 (2 batches per epoch)
    shuffler = np.random.default_rng(7)
    with pytest.raises(type(error)) as caught:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=20,
                  epochs=3, rng=shuffler, verbose=0)
    assert shuffler.bit_generator.state == _after(7, 1, 40)  # epoch 1's permutation only
    stopped: Any = caught.value
    assert (stopped.epoch, stopped.batch, len(stopped.history)) == (2, 2, 1)


def test_a_refused_bad_label_and_a_failed_validation_put_the_generator_back_too() -> None:
    x, y = _data()
    y_bad = y.copy()
    y_bad[np.random.default_rng(7).permutation(40)[25]] = 9  # in epoch 1's batch 2
    model = _model()
    shuffler = np.random.default_rng(7)
    with pytest.raises(md.TargetError) as caught:
        model.fit(x, y_bad, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                  batch_size=20, epochs=2, rng=shuffler, verbose=0)
    assert shuffler.bit_generator.state == _after(7, 0, 40)
    assert (caught.value.epoch, caught.value.batch) == (1, 2)  # type: ignore[attr-defined]

    def metric(y_pred: np.ndarray, y_true: np.ndarray) -> float:  # refuses the validation after epoch 2
        metric.calls += 1  # type: ignore[attr-defined]
        if metric.calls == 1 + 3 + 3:  # (the check before training; epoch 1: 2 batches, its validation; epoch 2)
            raise KeyboardInterrupt
        return 0.0

    metric.calls = 0  # type: ignore[attr-defined]
    shuffler = np.random.default_rng(7)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=20,
                  epochs=3, rng=shuffler, verbose=0, metrics=[metric], validation_data=(x[:8], y[:8]))
    stopped: Any = interrupted.value
    assert (stopped.epoch, stopped.batch, len(stopped.history)) == (2, None, 1)
    assert shuffler.bit_generator.state == _after(7, 1, 40)  # epoch 2 is not in the history: nor its order


def test_a_checkpoint_of_a_fit_interrupted_at_an_epoch_s_first_batch_resumes_bit_for_bit() -> None:
    """rk/p9: the Ctrl-C at epoch 3's first batch left the shuffler two permutations on: the resume differed."""
    x, y = _data()

    def run(stop: bool) -> list[np.ndarray]:
        body = _model(dropout=True)
        model = md.Sequential(body, _StopAt(2 * 2 + 1 if stop else 0, KeyboardInterrupt()))
        opt = md.Adam(model.parameters(), lr=0.01)
        shuffler = np.random.default_rng(7)
        kw: dict[str, Any] = {"loss": md.CrossEntropyLoss(), "optimizer": opt, "batch_size": 20, "verbose": 0}
        if not stop:
            model.fit(x, y, epochs=4, rng=shuffler, **kw)
            return _params(model)
        with pytest.raises(KeyboardInterrupt) as caught:
            model.fit(x, y, epochs=4, rng=shuffler, **kw)
        assert (caught.value.epoch, caught.value.batch) == (3, 1)  # type: ignore[attr-defined]
        saved = (body.state_dict(generators=True), opt.state_dict(), shuffler.bit_generator.state)
        fresh = _model(dropout=True)
        fresh_opt = md.Adam(fresh.parameters(), lr=0.01)
        fresh.load_state_dict(saved[0])
        fresh_opt.load_state_dict(saved[1])
        resumed = np.random.default_rng(0)
        resumed.bit_generator.state = saved[2]
        history = fresh.fit(x, y, epochs=4, initial_epoch=2, rng=resumed, **{**kw, "optimizer": fresh_opt})
        assert history.epoch == [3, 4]
        return _params(fresh)

    for a, b in zip(run(False), run(True), strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_fit_per_epoch_with_initial_epoch_is_bit_for_bit_one_fit() -> None:
    """The recipe of docs/checkpoints.md ("A run you can interrupt")."""
    x, y = _data(64)
    one, per = _model(dropout=True), _model(dropout=True)
    opt_one, opt_per = md.Adam(one.parameters(), lr=0.01), md.Adam(per.parameters(), lr=0.01)
    g_one, g_per = np.random.default_rng(7), np.random.default_rng(7)
    one.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt_one, rng=g_one, epochs=5, verbose=0)
    epochs = []
    for epoch in range(5):
        h = per.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt_per, rng=g_per, epochs=epoch + 1,
                    initial_epoch=epoch, verbose=0)
        epochs += h.epoch
    assert epochs == [1, 2, 3, 4, 5]
    for a, b in zip(_params(one), _params(per), strict=True):
        np.testing.assert_array_equal(a, b)
    assert g_one.bit_generator.state == g_per.bit_generator.state


# ---------------------------------------------------------------------------------------------- 2. initial_epoch
def test_initial_epoch_trains_the_epochs_after_it_numbered_as_keras_does(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = _data()
    straight, split = _model(), _model()
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    o1, o2 = md.SGD(straight.parameters(), lr=0.1), md.SGD(split.parameters(), lr=0.1)
    full = straight.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=o1, rng=g1, epochs=4, verbose=0)
    md.fit(split, x, y, loss=md.CrossEntropyLoss(), optimizer=o2, rng=g2, epochs=2, verbose=0)
    capsys.readouterr()
    rest = md.fit(split, x, y, loss=md.CrossEntropyLoss(), optimizer=o2, rng=g2, epochs=4, initial_epoch=2, verbose=2)
    out = capsys.readouterr().out
    assert [line.split(" - ")[0] for line in out.splitlines()] == ["Epoch 3/4", "Epoch 4/4"]
    assert rest.epoch == [3, 4] and len(rest) == 2 and rest.params["epochs"] == 4
    assert rest["loss"] == full["loss"][2:]
    for a, b in zip(_params(straight), _params(split), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [5, -1, 1.5, True, "2"])
def test_initial_epoch_is_checked_with_a_message_naming_fit_and_the_values(bad: Any) -> None:
    x, y = _data()
    model = _model()
    before = _params(model)
    with pytest.raises(ValueError, match=rf"^fit: initial_epoch must be an int in \[0, epochs\].*got "
                                         rf"initial_epoch={bad!r} with epochs=4$"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=4,
                  initial_epoch=bad, verbose=0)
    for a, b in zip(before, _params(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_initial_epoch_equal_to_epochs_trains_nothing_and_messages_name_the_epoch() -> None:
    x, y = _data()
    model = _model()
    before = _params(model)
    opt = md.SGD(model.parameters(), lr=0.1)
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=3, initial_epoch=3, verbose=0,
                        metrics=["accuracy"])
    assert len(history) == 0 and history.epoch == []
    for a, b in zip(before, _params(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}  # (the fit's defaults were set, as with epochs=0)
    y_bad = y.copy()
    y_bad[-1] = 7
    with pytest.raises(md.TargetError, match=r"^fit: epoch 6/7, batch 2/2 ") as caught:
        model.fit(x, y_bad, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=7, initial_epoch=5, batch_size=20,
                  shuffle=False, verbose=0)
    assert (caught.value.epoch, caught.value.batch) == (6, 2)  # type: ignore[attr-defined]


def test_early_stopping_numbers_the_epochs_after_initial_epoch() -> None:
    x, y = _data()
    model = _model()
    es = md.EarlyStopping("loss", patience=1, min_delta=1.0)  # only the first epoch improves
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=10,
              initial_epoch=3, verbose=0, early_stopping=es, rng=0)
    assert (es.best_epoch, es.stopped_epoch) == (4, 5)
    assert es.state_dict()["epoch"] == 5

    # a loaded run goes on with initial_epoch its last epoch (as with 0), and another initial_epoch is refused
    def resumed(initial_epoch: int) -> md.EarlyStopping:
        again = md.EarlyStopping("loss")
        first = md.EarlyStopping("loss", patience=3, min_delta=1.0)
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=2,
                  verbose=0, early_stopping=first, rng=0)
        again.load_state_dict(first.state_dict())
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=2 + 8,
                  initial_epoch=initial_epoch, verbose=0, early_stopping=again, rng=0)
        return again

    for start in (0, 2):
        es = resumed(start)
        assert (es.best_epoch, es.stopped_epoch) == (1, 4)
    first = md.EarlyStopping("loss")
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=2, verbose=0,
              early_stopping=first)
    again = md.EarlyStopping("loss")
    again.load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match=r"^fit: initial_epoch=3, but the EarlyStopping goes on from a loaded run "
                                         r"whose last epoch was 2; pass initial_epoch=2"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=5,
                  initial_epoch=3, verbose=0, early_stopping=again)


def test_model_fit_and_fit_take_initial_epoch() -> None:
    assert inspect.signature(md.Model.fit).parameters["initial_epoch"].default == 0
    assert inspect.signature(md.fit).parameters["initial_epoch"].default == 0


# ---------------------------------------------------------------------------------------------- 3. metric names
def test_a_metric_name_is_recorded_as_given_and_can_be_monitored() -> None:
    x, y = _data()
    model = _model()
    es = md.EarlyStopping("val_acc", patience=50)
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        metrics=["acc"], validation_split=0.25,
                        early_stopping=es, verbose=0, epochs=2)
    assert list(history.history) == ["loss", "acc", "val_loss", "val_acc", "lr"]
    assert es.mode == "max" and es.best == max(history["val_acc"])
    assert set(model.evaluate(x, y)) == {"loss", "acc"}
    reg = md.Sequential(md.Dense(4, 1, rng=0))
    h = reg.fit(x, y[:, None].astype(float), loss=md.MSELoss(), optimizer=md.SGD(reg.parameters(), lr=0.01),
                metrics=["mean_squared_error", "MAE"], verbose=0)
    assert list(h.history) == ["loss", "mean_squared_error", "MAE", "lr"]


def test_a_monitor_not_recorded_gets_the_close_name_and_the_validation_hint_only_without_validation() -> None:
    x, y = _data()
    model = _model()
    fit: Any = lambda es, **kw: model.fit(x, y, loss=md.CrossEntropyLoss(),  # noqa: E731
                                          optimizer=md.SGD(model.parameters(), lr=0.1), metrics=["accuracy"],
                                          early_stopping=es, verbose=0, **kw)
    with pytest.raises(ValueError, match=r"^fit: EarlyStopping monitors 'val_acc', which this fit does not record "
                                         r"\(did you mean 'val_accuracy'\?\); it records") as caught:
        fit(md.EarlyStopping("val_acc"), validation_split=0.25)
    assert "validation_data" not in str(caught.value)
    with pytest.raises(ValueError, match=r"monitors 'val_loss', which this fit does not record \(val_ figures need "
                                         r"validation_data or validation_split\)"):
        fit(md.EarlyStopping("val_loss"))
    with pytest.raises(ValueError, match=r"monitors 'acuracy', which this fit does not record \(did you mean "
                                         r"'accuracy'\?\)"):
        fit(md.EarlyStopping("acuracy", mode="max"))


# ---------------------------------------------------------------------------------------------- 4. mode="auto"
@pytest.mark.parametrize("monitor", ["val_f1", "val_auc", "precision", "f1_acc_weighted"])
def test_auto_mode_refuses_a_monitor_whose_direction_it_does_not_know(monitor: str) -> None:
    """Refused by fit (review 26b: a Metric in fit's metrics may declare its direction), not at construction."""
    x, y = _data()

    def metric(y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return 0.0

    metric.__name__ = monitor.removeprefix("val_")
    model = _model()
    before = _params(model)
    opt = md.SGD(model.parameters(), lr=0.1)
    for watcher in (md.EarlyStopping(monitor), md.ReduceLROnPlateau(opt, monitor=monitor)):
        assert watcher.mode == "auto"
        kw: dict[str, Any] = {"early_stopping": watcher} if isinstance(watcher, md.EarlyStopping) else \
            {"scheduler": watcher}
        with pytest.raises(ValueError, match=rf"^fit: {type(watcher).__name__}: mode='auto' cannot tell whether "
                                             rf"{monitor!r} improves.*pass mode='max'.*or mode='min'"):
            model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=[metric], validation_split=0.25,
                      verbose=0, **kw)
    for a, b in zip(before, _params(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert md.EarlyStopping(monitor, mode="max").mode == "max"
    assert md.ReduceLROnPlateau(md.SGD(_model().parameters(), lr=0.1), monitor=monitor, mode="min").mode == "min"


@pytest.mark.parametrize(("monitor", "mode"), [("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"),
                                               ("acc", "max"), ("VAL_ACC", "max"), ("val_mae", "min"),
                                               ("mean_squared_error", "min")])
def test_auto_mode_picks_the_direction_of_the_loss_and_the_built_in_metrics(monitor: str, mode: str) -> None:
    assert md.EarlyStopping(monitor).mode == mode
    assert md.ReduceLROnPlateau(md.SGD(_model().parameters(), lr=0.1), monitor=monitor).mode == mode


def test_an_auto_schedule_given_a_new_monitor_of_unknown_direction_leaves_it_to_fit() -> None:
    schedule = md.ReduceLROnPlateau(md.SGD(_model().parameters(), lr=0.1), monitor="val_accuracy")
    schedule.monitor = "val_f1"
    assert (schedule.monitor, schedule.mode) == ("val_f1", "auto")
    es = md.EarlyStopping("val_f1", mode="min")
    es.mode = "auto"
    assert es.mode == "auto"


def test_restore_best_weights_of_a_growing_metric_of_one_s_own_restores_its_best_epoch() -> None:
    """With the old guess, 'val_f1' was minimised: training stopped as it improved and its worst epoch came back."""
    x, y = _data()

    def f1(y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return float(np.mean(y_pred.argmax(1) == y_true))

    model = _model()
    es = md.EarlyStopping("val_f1", mode="max", patience=100, restore_best_weights=True)
    h = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.3), metrics=[f1],
                  validation_split=0.25, early_stopping=es, epochs=8, verbose=0, rng=0)
    assert es.best == max(h["val_f1"]) and es.best_epoch == 1 + int(np.argmax(h["val_f1"]))


# ---------------------------------------------------------------------------------------------- 5. md.fit by position
def test_md_fit_given_the_loss_and_optimizer_by_position_says_to_name_them() -> None:
    x, y = _data()
    model = _model()
    with pytest.raises(TypeError, match=r"^fit: takes x and y by position, the rest by keyword: pass loss=\.\.\., "
                                        r"optimizer=\.\.\. \(got 4 positional arguments after the model\)$"):
        md.fit(model, x, y, md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=0.1))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing 2 required keyword-only arguments"):
        md.fit(model, x, y)  # type: ignore[call-arg]  # (nothing by position: Python's own message)
    assert list(inspect.signature(md.fit).parameters)[:5] == ["model", "x", "y", "more", "loss"]


# ---------------------------------------------------------------------------------------------- 6. one sample
def test_one_sample_given_for_a_batch_gets_the_x_none_hint() -> None:
    x, y = _data()
    model = _model()
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0)
    hint = r"x of shape \(4,\) has the axes of one sample, not of a batch: for one sample pass x\[None\]"
    with pytest.raises(md.ShapeError, match=rf"^predict: .*got shape \(4,\); {hint}, a batch of one$"):
        model.predict(x[0])
    with pytest.raises(md.ShapeError, match=rf"^evaluate: .*; {hint}"):
        model.evaluate(x[0], y[:4])
    with pytest.raises(md.ShapeError, match=rf"^evaluate: x and y need a batch axis.*; {hint} and y\[None\]"):
        model.evaluate(x[0], y[0])
    with pytest.raises(md.ShapeError, match=rf"^fit: x has 4 samples but y has 1; {hint}"):
        model.fit(x[0], y[:1], loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0)
    with pytest.raises(md.ShapeError, match=rf"^fit: epoch 1/1, batch 1/1 .*; {hint}"):
        model.fit(x[0], y[:4], loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0)
    with pytest.raises(md.ShapeError) as caught:  # a batch of the wrong width: no such hint
        model.predict(np.ones((3, 5)))
    assert "x[None]" not in str(caught.value)
    assert model.predict(x[0][None]).shape == (1, 3)


# ---------------------------------------------------------------------------------------------- 7. batches applied
def test_a_refused_late_batch_says_how_many_batches_of_the_fit_were_applied() -> None:
    """rh/p7: a bad label in the last batch (shuffle=False) left three batches applied, unsaid."""
    x, y = _data(64)
    y[-1] = 7
    model = _model()
    with pytest.raises(md.TargetError, match=r"^fit: epoch 1/1, batch 4/4 .*out of range \(3 batch\(es\) of this fit "
                                             r"were applied before this one, which was not\)$"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=16,
                  shuffle=False, verbose=0)
    y[-1] = 0
    y[0] = 7
    with pytest.raises(md.TargetError) as caught:  # the first batch: nothing to say
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=16,
                  shuffle=False, verbose=0)
    assert "were applied" not in str(caught.value)
    y[0] = 0
    stopping = md.Sequential(md.Dense(4, 3, rng=0), _StopAt(7, ValueError("mine")))
    with pytest.raises(ValueError, match=r"^mine") as mine:  # epoch 2, batch 3 of 4: 6 batches before it
        stopping.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(stopping.parameters(), lr=0.1),
                     batch_size=16, epochs=2, verbose=0, rng=0)
    assert mine.value.__notes__ == ["(raised in fit: epoch 2/2, batch 3/4 (samples 32..47 of the epoch's order); "
                                    "this batch's update was not applied; the 6 batch(es) of this fit before it were "
                                    "applied)"]


def test_the_mlp_example_resumes_with_initial_epoch_and_numbers_its_epochs_on(tmp_path: Path) -> None:
    """examples/mlp_digits.py patched history.epoch by hand after a fit numbered 1..; it now passes initial_epoch."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    script = Path(__file__).resolve().parents[1] / "examples" / "mlp_digits.py"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    ckpt = str(tmp_path / "half.ckpt")
    runs = [("--epochs", "2", "--stop-after", "1", "--checkpoint", ckpt), ("--epochs", "2", "--resume", ckpt)]
    outputs = [subprocess.run([sys.executable, str(script), "--verbose", "2", "--out", str(tmp_path / str(i)), *args],
                              capture_output=True, text=True, timeout=120, env=env, check=True).stdout
               for i, args in enumerate(runs)]
    assert [line.split(" - ")[0] for line in outputs[1].splitlines() if line.startswith("Epoch ")] == ["Epoch 2/2"]
    assert "initial_epoch=done" in script.read_text() and "history.epoch = list(range" not in script.read_text()
