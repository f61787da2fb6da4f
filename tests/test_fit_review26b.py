"""Review 26b of fit: a run of one fit per epoch with restore_best_weights is the single fit, an error between
batches or after them says where fit stopped, mode="auto" by a name ending in 'loss' and by a Metric's declared
direction, an auto EarlyStopping follows its monitor, a loaded ReduceLROnPlateau keeps its loaded mode, and
predict's one-sample hint without a count of samples."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.training import Metric

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _after(seed: int, permutations: int, n: int) -> dict[str, Any]:
    g = np.random.default_rng(seed)
    for _ in range(permutations):
        g.permutation(n)
    return g.bit_generator.state


# ---------------------------------------------------------------------------------------------- D1: one fit per epoch
def _run(path: Path | None, load_back: bool = True) -> tuple[list[np.ndarray], Any, list[int]]:
    """The run of 12 epochs, as one fit (``path`` None) or one fit per epoch saved to and loaded from ``path``."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    xv, yv = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)

    def make() -> tuple[md.Sequential, md.Adam, md.StepLR, md.EarlyStopping, np.random.Generator]:
        model = md.Sequential(md.Dense(4, 8, rng=0), md.ReLU(), md.Dropout(0.2, rng=1), md.Dense(8, 3, rng=2))
        opt = md.Adam(model.parameters(), lr=1e-1)
        return (model, opt, md.StepLR(opt, step_size=2, gamma=0.5),
                md.EarlyStopping("val_loss", patience=6, restore_best_weights=True), np.random.default_rng(7))

    kw: dict[str, Any] = dict(loss=md.CrossEntropyLoss(), batch_size=16, validation_data=(xv, yv), verbose=0)
    epochs = 12
    model, opt, sched, es, shuffler = make()
    if path is None:
        h = model.fit(x, y, optimizer=opt, rng=shuffler, epochs=epochs, scheduler=sched, early_stopping=es, **kw)
        return [p.data.copy() for p in model.parameters()], es.state_dict(), h.epoch
    seen: list[int] = []
    for epoch in range(epochs):
        if epoch:  # a new process: everything from the file
            ck = md.load(path)
            model, opt, sched, es, shuffler = make()
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            es.load_state_dict(ck["early_stopping"])
            shuffler.bit_generator.state = ck["shuffler"]
        h = model.fit(x, y, optimizer=opt, rng=shuffler, epochs=epoch + 1, initial_epoch=epoch, scheduler=sched,
                      early_stopping=es, **kw)
        seen += h.epoch
        if load_back and es.restored and not es.stopped_epoch and epoch + 1 < epochs:
            model.load_state_dict(es.last_state)
        md.save({"model": model.state_dict(generators=True), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "early_stopping": es.state_dict(),
                 "shuffler": shuffler.bit_generator.state}, path)
        if es.stopped_epoch:
            break
    return [p.data.copy() for p in model.parameters()], es.state_dict(), seen


def test_one_fit_per_epoch_with_restore_best_weights_and_a_schedule_is_bit_for_bit_the_single_fit(
        tmp_path: Path) -> None:
    """Each fit restored the best weights, so the next one trained on from the best epoch, not the last."""
    single, state, epochs = _run(None)
    assert state["best_epoch"] < epochs[-1] - 1  # the best epoch is not the last: the restores mattered
    chunked, state2, epochs2 = _run(tmp_path / "run.ckpt")
    assert epochs2 == epochs
    for a, b in zip(single, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (state2["best_epoch"], state2["stopped_epoch"], state2["best"]) == \
        (state["best_epoch"], state["stopped_epoch"], state["best"])
    wrong, _, _ = _run(tmp_path / "wrong.ckpt", load_back=False)  # the recipe of before
    assert not all(np.array_equal(a, b) for a, b in zip(single, wrong, strict=True))
    text = (DOCS / "checkpoints.md").read_text()  # (the recipe saves in a callback now; the loop is described)
    assert "model.load_state_dict(es.last_state)" in text and "es.load_state_dict(es.state_dict())" in text


def test_the_interruptible_recipe_counts_an_epoch_done_only_after_its_save() -> None:
    """``done = epoch + 1`` came before md.save: a Ctrl-C in the save said one epoch more than the file held.  The
    recipe (a callback's checkpoint) now reads the epochs done from the file itself."""
    text = (DOCS / "checkpoints.md").read_text()
    block = text[text.index("### A run you can interrupt"):]
    block = block[block.index("```python"):]
    block = block[:block.index("```", 3)]
    assert "callbacks=[checkpoint]" in block and "\"epoch\": epoch}" in block
    assert block.index("md.save(") < block.index("raise KeyboardInterrupt")
    assert "run.ckpt holds {md.load('run.ckpt')['epoch']} epoch(s)" in block


# ---------------------------------------------------------------------------------------------- D2: between batches
def test_an_interrupt_in_a_per_batch_schedule_step_says_where_and_puts_the_generator_back() -> None:
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    opt = md.SGD(model.parameters(), lr=0.1)
    calls = [0]

    def factor(step: int) -> float:
        calls[0] += 1
        if calls[0] == 1 + 4 + 2:  # (construction; epoch 1: 4 batches; epoch 2: after its 2nd batch)
            raise KeyboardInterrupt
        return 1.0

    shuffler = np.random.default_rng(7)
    with pytest.raises(KeyboardInterrupt) as caught:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, rng=shuffler, epochs=3, batch_size=10,
                  scheduler=md.LambdaLR(opt, factor), scheduler_interval="batch", verbose=0)
    stopped: Any = caught.value
    assert (stopped.epoch, stopped.batch, stopped.history.epoch) == (2, 2, [1])
    assert shuffler.bit_generator.state == _after(7, 1, 40)


def test_an_error_in_an_epoch_s_schedule_step_says_the_epoch_and_no_batch() -> None:
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    opt = md.SGD(model.parameters(), lr=0.1)

    def factor(epoch: int) -> float:
        if epoch == 2:
            raise ValueError("mine")
        return 1.0

    shuffler = np.random.default_rng(7)
    with pytest.raises(ValueError, match=r"^mine") as caught:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, rng=shuffler, epochs=3, batch_size=10,
                  scheduler=md.LambdaLR(opt, factor), verbose=0)
    stopped: Any = caught.value
    assert (stopped.epoch, stopped.batch, stopped.history.epoch) == (2, None, [1, 2])  # (epoch 2 is recorded)
    assert shuffler.bit_generator.state == _after(7, 2, 40)  # (so the generator stays past it)


# ---------------------------------------------------------------------------------------------- M1: mode="auto"
class _F1(Metric):
    name = "f1"
    direction = "max"

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return float(np.mean(y_pred.argmax(1) == y_true))


def test_auto_mode_minimises_a_name_ending_in_loss() -> None:
    optimizer = md.SGD(md.Sequential(md.Dense(4, 3, rng=0)).parameters(), lr=0.1)
    for monitor in ("val_my_loss", "my_loss", "VAL_NLL_LOSS"):
        assert md.EarlyStopping(monitor).mode == "min"
        assert md.ReduceLROnPlateau(optimizer, monitor=monitor).mode == "min"


def test_auto_mode_takes_a_metric_s_declared_direction_in_fit() -> None:
    assert Metric.direction is None
    x, y = _data()
    model = md.Sequential(md.Dense(4, 8, rng=0), md.ReLU(), md.Dense(8, 3, rng=2))
    opt = md.SGD(model.parameters(), lr=0.3)
    es = md.EarlyStopping("val_f1", patience=100, restore_best_weights=True)
    plateau = md.ReduceLROnPlateau(opt, monitor="val_f1", patience=100)
    assert (es.mode, plateau.mode) == ("auto", "auto")  # (only fit knows the metrics)
    h = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=[_F1()], validation_split=0.25,
                  early_stopping=es, scheduler=plateau, epochs=8, verbose=0, rng=0)
    assert (es.mode, plateau.mode) == ("max", "max")

    def g(y_pred: np.ndarray, y_true: np.ndarray) -> float:  # (a function declares no direction)
        return 0.0

    assert es.best == max(h["val_f1"]) == plateau.best and es.best_epoch == 1 + int(np.argmax(h["val_f1"]))
    with pytest.raises(ValueError, match=r"^fit: EarlyStopping: mode='auto' cannot tell whether 'val_g' improves.*"
                                         r"direction = 'max' or 'min' on the Metric.*pass mode='max'.*or mode='min'"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=[g], verbose=0,
                  validation_split=0.25, early_stopping=md.EarlyStopping("val_g"))


def test_auto_mode_refuses_in_fit_a_monitor_no_metric_tells_and_changes_nothing() -> None:
    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    before = [p.data.copy() for p in model.parameters()]

    def f1(y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return 0.5

    opt = md.SGD(model.parameters(), lr=0.1)
    plateau = md.ReduceLROnPlateau(opt, monitor="f1")
    with pytest.raises(ValueError, match=r"^fit: ReduceLROnPlateau: mode='auto' cannot tell whether 'f1'"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=[f1], scheduler=plateau, verbose=0)
    for a, p in zip(before, model.parameters(), strict=True):
        np.testing.assert_array_equal(a, p.data)
    with pytest.raises(ValueError, match=r"^ReduceLROnPlateau.step: mode='auto' cannot tell whether 'f1'"):
        plateau.step(0.5)
    assert plateau.last_epoch == 0


# ---------------------------------------------------------------------------------------------- S1-S3
def test_an_auto_early_stopping_decides_again_when_its_monitor_changes() -> None:
    es = md.EarlyStopping("val_loss")
    es.monitor = "val_accuracy"
    assert es.mode == "max"
    es.monitor = "val_f1"
    assert es.mode == "auto"
    es.monitor = "loss"
    assert es.mode == "min"
    fixed = md.EarlyStopping("val_loss", mode="min")
    fixed.monitor = "val_accuracy"
    assert fixed.mode == "min"  # (a mode given stays)


def test_a_plateau_schedule_loaded_with_a_mode_keeps_it_when_its_monitor_changes() -> None:
    optimizer = md.SGD(md.Sequential(md.Dense(4, 3, rng=0)).parameters(), lr=0.1)
    given = md.ReduceLROnPlateau(optimizer, monitor="val_f1", mode="max")
    loaded = md.ReduceLROnPlateau(optimizer)  # auto, val_loss
    loaded.load_state_dict(given.state_dict())
    loaded.monitor = "loss"
    assert loaded.mode == "max"


# ---------------------------------------------------------------------------------------------- S4
def test_predict_of_one_sample_counts_no_samples_before_the_hint() -> None:
    model = md.Sequential(md.Dense(4, 3, rng=0))
    with pytest.raises(md.ShapeError) as caught:
        model.predict(np.ones(4))
    assert re.match(r"^predict: Sequential layer '0': Dense\(4 -> 3\): .*pass x\[None\], a batch of one$",
                    str(caught.value))
    with pytest.raises(md.ShapeError, match=r"^predict: samples 0\.\.2: "):  # (a batch of the wrong width: counted)
        model.predict(np.ones((3, 5)))


# ---------------------------------------------------------------------------------------------- M2
def test_training_md_says_what_changed_for_existing_code() -> None:
    text = (DOCS / "training.md").read_text()
    note = text[text.index("Changes for existing code"):][:800]
    assert "`metrics=[\"acc\"]`" in note and "`val_acc`" in note and "mode=\"auto\"" in note
    assert text.index("Changes for existing code") < text.index("```python")


# ---------------------------------------------------------------- a decided auto mode, set again (review 26, 2nd round)
def _decided(es: md.EarlyStopping | None = None, plateau: bool = False) -> tuple[Any, Any, Any]:
    x, y = _data()
    model = md.Sequential(md.Dense(4, 8, rng=0), md.ReLU(), md.Dense(8, 3, rng=2))
    opt = md.SGD(model.parameters(), lr=0.3)
    es = es or md.EarlyStopping("val_f1", patience=100)
    sched = md.ReduceLROnPlateau(opt, monitor="val_f1", patience=100) if plateau else None
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=[_F1()], validation_split=0.25,
              early_stopping=es, scheduler=sched, epochs=3, verbose=0, rng=0)
    return model, es, sched


def test_setting_a_decided_early_stopping_s_monitor_or_auto_again_keeps_its_direction() -> None:
    # (it read "auto" again with a best epoch, and its own state was then refused by load_state_dict)
    _, es, _ = _decided()
    assert es.mode == "max" and es.best_epoch > 0
    es.monitor = "val_f1"
    assert es.mode == "max"
    es.load_state_dict(es.state_dict())
    es.mode = "auto"
    assert es.mode == "max"
    es.load_state_dict(es.state_dict())


def test_setting_a_stepped_plateau_s_monitor_to_the_same_name_is_no_change() -> None:
    _, _, sched = _decided(plateau=True)
    assert sched.mode == "max" and sched.last_epoch > 0
    sched.monitor = "val_f1"  # (was refused: "monitor cannot change after the first step")
    sched.mode = "auto"
    assert sched.mode == "max"
    with pytest.raises(ValueError, match="monitor cannot change after the first step"):
        sched.monitor = "val_loss"
    assert (sched.mode, sched.monitor) == ("max", "val_f1")


def test_a_metric_s_direction_other_than_min_or_max_is_refused_by_name() -> None:
    class Bad(_F1):
        direction = "MAX"

    x, y = _data()
    model = md.Sequential(md.Dense(4, 3, rng=0))
    es = md.EarlyStopping("val_f1")
    with pytest.raises(ValueError, match=r"^fit: the metric 'f1' declares direction='MAX'; expected 'max'"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), metrics=[Bad()],
                  validation_split=0.25, early_stopping=es, verbose=0)
    assert es.mode == "auto"


def test_a_stepped_plateau_refuses_a_fit_whose_metric_says_the_other_direction() -> None:
    class F1Min(_F1):
        direction = "min"

    model, _, sched = _decided(plateau=True)
    x, y = _data()
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau's mode='auto' was decided 'max' for 'val_f1' and it "
                                         r"has stepped.*this fit's metrics say 'min'; make a new ReduceLROnPlateau"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=sched.optimizer, metrics=[F1Min()],
                  validation_split=0.25, scheduler=sched, epochs=1, verbose=0)
    assert sched.mode == "max"
