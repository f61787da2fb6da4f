"""Where an error that stops ``fit`` outside a batch's own try says it was, and what fit puts back: between two
batches (a per-batch scheduler's step, the progress bar's update), at an epoch's start (the bar's making), at its
end (the bar's last show) and after the epochs (the early stopping's finish)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import training
from minidl.optim import SGD
from minidl.schedulers import StepLR

N, BATCH, EPOCHS, SEED = 50, 16, 3, 7  # 4 batches an epoch


class UserError(ValueError):
    pass


def data() -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(1)
    return r.standard_normal((N, 3)), r.integers(0, 3, N)


def run_fit(**kw: Any) -> tuple[np.random.Generator, BaseException]:
    """A fit of 3 epochs of 4 batches that raises; returns its generator and the error."""
    model = md.Sequential(md.Dense(3, 8, rng=0), md.ReLU(), md.Dense(8, 3, rng=1))
    optimizer = SGD(model.parameters(), lr=0.1)
    if "scheduler" in kw:
        kw["scheduler"] = kw["scheduler"](optimizer)
    generator = np.random.default_rng(SEED)
    x, y = data()
    kw.setdefault("verbose", 0)
    with pytest.raises(BaseException) as info:
        md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, rng=generator, epochs=EPOCHS,
               batch_size=BATCH, metrics=["accuracy"], **kw)
    return generator, info.value


def next_order_after(epochs_done: int) -> np.ndarray:
    """The order a fresh generator draws for the epoch after ``epochs_done`` epochs (each draws one order)."""
    fresh = np.random.default_rng(SEED)
    for _ in range(epochs_done):
        fresh.permutation(N)
    return fresh.permutation(N)


class StepRaises(StepLR):
    """A StepLR whose ``k``-th step raises."""

    def __init__(self, optimizer: md.Optimizer, k: int) -> None:
        super().__init__(optimizer, 2)
        self.k, self.n = k, 0

    def step(self, *args: Any, **kwargs: Any) -> None:
        self.n += 1
        if self.n == self.k:
            raise UserError("step")
        super().step(*args, **kwargs)


class FakeTqdm:
    """tqdm's bar class, made to raise at the ``k``-th call of ``where`` (``"ctor"``, ``"update"``, or
    ``"last_show"``: the epoch's last ``set_postfix_str``, with the samples/s); counts the bars made and closed."""

    def __init__(self, where: str, k: int) -> None:
        self.where, self.k, self.n = where, k, 0
        self.made = self.closed = 0

    def count(self, where: str) -> None:
        if where == self.where:
            self.n += 1
            if self.n == self.k:
                raise UserError(where)

    def __call__(self, **kwargs: Any) -> Any:
        self.count("ctor")
        self.made += 1
        fake = self

        class Bar:
            def update(self, n: int) -> None:
                fake.count("update")

            def set_postfix_str(self, text: str, refresh: bool = True) -> None:
                if "samples/s" in text:
                    fake.count("last_show")

            def close(self) -> None:
                fake.closed += 1

        return Bar()


def with_bar(monkeypatch: pytest.MonkeyPatch, where: str, k: int) -> FakeTqdm:
    fake = FakeTqdm(where, k)
    monkeypatch.setattr(training, "_tqdm", lambda: fake)
    return fake


# ---------------------------------------------------------------------------------------------- between batches
@pytest.mark.parametrize(("k", "epoch", "batch"), [(3, 1, 3), (6, 2, 2)])
def test_a_per_batch_scheduler_step_raising_names_the_batch_and_puts_the_generator_back(k, epoch, batch):
    generator, error = run_fit(scheduler=lambda o: StepRaises(o, k), scheduler_interval="batch")
    assert isinstance(error, UserError) and str(error) == "step"
    assert (error.epoch, error.batch) == (epoch, batch)
    assert error.history.epoch == list(range(1, epoch))
    np.testing.assert_array_equal(generator.permutation(N), next_order_after(epoch - 1))


@pytest.mark.parametrize(("k", "epoch", "batch"), [(2, 1, 2), (6, 2, 2)])
def test_the_bar_update_raising_names_the_batch_puts_the_generator_back_and_closes_the_bar(monkeypatch, k, epoch,
                                                                                           batch):
    fake = with_bar(monkeypatch, "update", k)
    generator, error = run_fit(verbose=1)
    assert isinstance(error, UserError) and str(error) == "update"
    assert (error.epoch, error.batch) == (epoch, batch)
    assert error.history.epoch == list(range(1, epoch))
    np.testing.assert_array_equal(generator.permutation(N), next_order_after(epoch - 1))
    assert fake.made == epoch and fake.closed == epoch


# ---------------------------------------------------------------------------------------------- outside the batches
@pytest.mark.parametrize("k", [1, 2])
def test_the_bar_constructor_raising_is_in_no_batch_and_puts_the_generator_back(monkeypatch, k):
    fake = with_bar(monkeypatch, "ctor", k)
    generator, error = run_fit(verbose=1)
    assert isinstance(error, UserError) and str(error) == "ctor"
    assert (error.epoch, error.batch) == (k, None)  # (the epoch's order was drawn: the generator is put back)
    assert error.history.epoch == list(range(1, k))
    np.testing.assert_array_equal(generator.permutation(N), next_order_after(k - 1))
    assert fake.made == k - 1 and fake.closed == k - 1  # the bars made before are closed


@pytest.mark.parametrize("k", [1, 2])
def test_the_bar_last_show_raising_is_in_no_batch_and_closes_the_bar(monkeypatch, k):
    fake = with_bar(monkeypatch, "last_show", k)
    generator, error = run_fit(verbose=1)
    assert isinstance(error, UserError) and str(error) == "last_show"
    assert (error.epoch, error.batch) == (k, None)
    assert error.history.epoch == list(range(1, k + 1))  # (the epoch is in the history: the generator stays past it)
    np.testing.assert_array_equal(generator.permutation(N), next_order_after(k))
    assert fake.made == k and fake.closed == k


def test_early_stopping_finish_raising_is_in_no_epoch():
    early_stopping = md.EarlyStopping(monitor="loss", patience=EPOCHS)

    def finish(model: md.Layer) -> None:
        raise UserError("finish")

    early_stopping.finish = finish  # type: ignore[method-assign]
    generator, error = run_fit(early_stopping=early_stopping)
    assert isinstance(error, UserError) and str(error) == "finish"
    assert (error.epoch, error.batch) == (None, None)
    assert error.history.epoch == [1, 2, 3]
    np.testing.assert_array_equal(generator.permutation(N), next_order_after(EPOCHS))
