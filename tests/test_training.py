"""The training loop: it learns, it is exactly the hand-written loop, it is reproducible, it stops cleanly."""

from __future__ import annotations

import copy
import re
import sys
import time
import warnings

import numpy as np
import pytest

import minidl as md
from minidl import training
from minidl.errors import NonFiniteError, ShapeError
from minidl.optim import SGD, Adam
from minidl.schedulers import StepLR
from minidl.testing import states_equal
from minidl.training import Accuracy, History


def blobs(n: int = 240, seed: int = 0, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Three separable Gaussian blobs in 2-D with integer labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return x.astype(dtype), y


def mlp(dtype: type = np.float64, seed: int = 0) -> md.Sequential:
    return md.Sequential(md.Dense(2, 16, rng=seed, dtype=dtype), md.ReLU(), md.Dense(16, 3, rng=seed + 1,
                                                                                     dtype=dtype))


def fit(model, x, y, **kw):
    kw.setdefault("loss", md.CrossEntropyLoss())
    kw.setdefault("optimizer", SGD(model.parameters(), lr=0.1))
    kw.setdefault("verbose", 0)
    return model.fit(x, y, **kw)


class Spy(md.Layer):
    """Identity layer recording the mode and dtypes it sees."""

    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []
        self.dtypes: list[np.dtype] = []

    def forward(self, x):
        self.modes.append(self.training)
        self.dtypes.append(x.dtype)
        return x

    def backward(self, grad_output):
        self.dtypes.append(grad_output.dtype)
        return grad_output


# ---------------------------------------------------------------------------------------------- learning
def test_fit_learns_and_fills_the_history():
    x, y = blobs()
    xv, yv = blobs(90, seed=1)
    model = mlp()
    h = fit(model, x, y, epochs=8, batch_size=16, validation_data=(xv, yv), metrics=["accuracy"], rng=0)
    assert isinstance(h, History)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert h.epoch == list(range(1, 9))
    assert len(h) == 8 and len(h.epoch_times) == 8
    assert all(len(v) == 8 and all(type(e) is float for e in v) for v in h.history.values())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["accuracy"][-1] > 0.9 and h["val_accuracy"][-1] > 0.9
    assert h["lr"] == [0.1] * 8
    assert h.params == {"epochs": 8, "batch_size": 16, "samples": 240, "steps": 15}
    scores = model.evaluate(xv, yv)
    assert scores["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    assert scores["loss"] == pytest.approx(h["val_loss"][-1])
    assert "val_loss" in h and "nope" not in h
    with pytest.raises(KeyError, match="val_loss"):
        h["nope"]


@pytest.mark.parametrize("make_optimizer", [
    lambda params: Adam(params, lr=0.01),
    lambda params: md.SGD(params, lr=0.1),  # fit's step(zero_grad=True) updates through the gradients
    lambda params: md.SGD(params, lr=0.1, momentum=0.9),
], ids=["adam", "sgd", "sgd-momentum"])
def test_fit_is_exactly_the_hand_written_loop(make_optimizer):
    x, y = blobs(100)
    a, b = mlp(), mlp()
    opt_a, opt_b = make_optimizer(a.parameters()), make_optimizer(b.parameters())
    h = fit(a, x, y, optimizer=opt_a, epochs=3, batch_size=32, rng=7)
    gen = np.random.default_rng(7)
    loss = md.CrossEntropyLoss()
    epoch_losses = []
    for _ in range(3):
        order = gen.permutation(100)
        total = 0.0
        for start in range(0, 100, 32):
            idx = order[start:start + 32]
            b.zero_grad()
            value = loss(b(x[idx]), y[idx])
            b.backward(loss.backward())
            opt_b.step()
            total += value * len(idx)
        epoch_losses.append(total / 100)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert not pa.grad.any()  # fit's last step zeroed the gradients
    np.testing.assert_allclose(h["loss"], epoch_losses, rtol=1e-14)


def test_fit_calls_a_wrapped_step_without_arguments():
    import functools

    x, y = blobs(40)
    model = mlp()
    opt = md.SGD(model.parameters(), lr=0.05)
    inner, calls = opt.step, []

    @functools.wraps(inner)
    def logged():  # a hook around step() that takes nothing, as wraps() hides
        calls.append(1)
        inner()

    opt.step = logged  # type: ignore[method-assign]
    fit(model, x, y, optimizer=opt, epochs=1, batch_size=20, verbose=0)
    assert len(calls) == 2


def test_fit_takes_an_optimizer_whose_step_has_no_zero_grad_argument():
    class HalfStep(md.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

        def step(self):  # an override from before step(zero_grad=...) existed
            for p in self.params:
                p.data -= 0.5 * self.lr * p.grad

    x, y = blobs(60)
    a, b = mlp(), mlp()
    fit(a, x, y, optimizer=HalfStep(a.parameters()), epochs=2, batch_size=20, rng=1, verbose=0)
    fit(b, x, y, optimizer=md.SGD(b.parameters(), lr=0.05), epochs=2, batch_size=20, rng=1, verbose=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-12, atol=1e-15)
    assert all(p.grad_is_zero() for p in a.parameters())  # zeroed after its step(), as after step(zero_grad=True)


def test_a_refused_fit_leaves_early_stopping_and_evaluate_defaults_as_they_were():
    """Checks that run late (the seed, validation_data scored before training) refuse the call before
    it resets the caller's EarlyStopping or changes what evaluate() scores with."""
    x, y = blobs(60)
    model = mlp()
    es = md.EarlyStopping("loss", restore_best_weights=True)
    fit(model, x, y, epochs=3, batch_size=20, rng=0, early_stopping=es)
    best_epoch, best_state, scored = es.best_epoch, es.best_state, model.evaluate(x, y)
    assert best_epoch == 3 and best_state is not None
    refusals = [
        (dict(validation_data=(x[:, :1], y)), ShapeError, "validation_data"),
        (dict(rng=-1), ValueError, "fit: rng: a seed must be an int >= 0, got -1"),
        (dict(rng=True), TypeError, "fit: rng must be a numpy.random.Generator"),
    ]
    for kwargs, error, words in refusals:
        with pytest.raises(error, match=words):
            fit(model, x, y, loss=md.MSELoss(), epochs=2, early_stopping=es, **kwargs)
        assert es.best_epoch == best_epoch and es.best_state is best_state
        assert model.evaluate(x, y) == scored  # still the first fit's CrossEntropyLoss


@pytest.mark.parametrize("name", ["lr", "loss", "val_loss", "val_mine"])
def test_a_metric_may_not_take_a_key_of_the_history(name: str) -> None:
    def metric(y_pred, y_true):
        return 1.0

    metric.__name__ = name
    x, y = blobs(20)
    with pytest.raises(ValueError, match=f"a metric cannot be named '{name}'"):
        fit(mlp(), x, y, metrics=[metric])


def test_fit_and_accuracy_refuse_flags_and_numbers_of_the_wrong_type():
    x, y = blobs(20)
    for flag in ("shuffle", "check_gradients", "drop_last"):
        with pytest.raises(TypeError, match=f"fit: {flag} must be True or False, got 'False'"):
            fit(mlp(), x, y, **{flag: "False"})
    with pytest.raises(TypeError, match="Accuracy: binary must be True or False, got 'False'"):
        Accuracy(binary="False")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Accuracy: threshold must be a number, got 'x'"):
        Accuracy(threshold="x")  # type: ignore[arg-type]
    for huge in (float("nan"), float("inf"), 10**400):  # (an int beyond float range raised OverflowError)
        with pytest.raises(ValueError, match="Accuracy: threshold must be finite"):
            Accuracy(threshold=huge)
    assert Accuracy(threshold=np.float32(0.25)).threshold == 0.25
    with pytest.raises(TypeError, match=r"validation_data must be a pair \(x_val, y_val\), got a tuple of 1 item"):
        fit(mlp(), x, y, validation_data=(x,))
    with pytest.raises(TypeError, match="got a dict"):
        fit(mlp(), x, y, validation_data={"x": x, "y": y})


def test_shuffling_is_reproducible_by_seed():
    x, y = blobs(100)
    runs = {}
    for name, rng in [("a", 3), ("b", 3), ("c", 4), ("gen", np.random.default_rng(3))]:
        model = mlp()
        fit(model, x, y, epochs=2, batch_size=10, rng=rng)
        runs[name] = model.state_dict()
    for key in runs["a"]:
        np.testing.assert_array_equal(runs["a"][key], runs["b"][key])
        np.testing.assert_array_equal(runs["a"][key], runs["gen"][key])
    assert any(not np.array_equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_no_shuffle_takes_the_batches_in_order():
    x, y = blobs(50)
    a, b = mlp(), mlp()
    fit(a, x, y, epochs=1, batch_size=20, shuffle=False)
    opt, loss = SGD(b.parameters(), lr=0.1), md.CrossEntropyLoss()
    for start in (0, 20, 40):
        b.zero_grad()
        loss(b(x[start:start + 20]), y[start:start + 20])
        b.backward(loss.backward())
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_scheduler_is_stepped_each_epoch():
    x, y = blobs(40)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1)
    h = fit(model, x, y, optimizer=opt, epochs=5, scheduler=StepLR(opt, step_size=2, gamma=0.5))
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])
    assert opt.lr == pytest.approx(0.025)  # after 5 completed epochs: 0.1 * 0.5 ** (5 // 2)


def test_zero_epochs_and_a_last_short_batch():
    x, y = blobs(41)
    model = mlp()
    assert len(fit(model, x, y, epochs=0)) == 0
    h = fit(model, x, y, epochs=1, batch_size=40)
    assert h.params["steps"] == 2


# ---------------------------------------------------------------------------------------------- non-finite
class NanOnCall(md.Loss):
    """Cross-entropy that returns NaN on its ``bad``-th call."""

    def __init__(self, bad: int) -> None:
        self.inner = md.CrossEntropyLoss()
        self.calls = 0
        self.bad = bad

    def forward(self, y_pred, y_true):
        self.calls += 1
        value = self.inner(y_pred, y_true)
        return float("nan") if self.calls == self.bad else value

    def backward(self):
        return self.inner.backward()


def test_nan_loss_stops_naming_epoch_and_batch_without_applying_the_step():
    x, y = blobs(60)
    model, twin = mlp(), mlp()
    # 60 samples in batches of 25 -> 3 batches per epoch; call 5 is epoch 2, batch 2.
    with pytest.raises(NonFiniteError, match=r"epoch 2/4, batch 2/3.*loss is nan.*not applied") as info:
        fit(model, x, y, loss=NanOnCall(5), epochs=4, batch_size=25, shuffle=False)
    # the twin does the 4 good steps (3 of epoch 1, 1 of epoch 2) and nothing else
    fit(twin, x, y, epochs=1, batch_size=25, shuffle=False)
    fit(twin, x[:25], y[:25], epochs=1, batch_size=25, shuffle=False)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert len(info.value.history) == 1  # epoch 1 completed and recorded
    assert model.training  # the mode is restored on the way out


class InfGradientOnCall(NanOnCall):
    """Cross-entropy whose backward returns an infinite gradient on its ``bad``-th call (the loss is finite)."""

    def forward(self, y_pred, y_true):
        return self.inner(y_pred, y_true)

    def backward(self):
        self.calls += 1
        grad = self.inner.backward()
        return np.full_like(grad, np.inf) if self.calls == self.bad else grad


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_validation_that_fails_after_an_epoch_names_it_and_keeps_the_history():
    """The last batch of epoch 2 puts inf into the weights (no check_gradients): the validation after
    epoch 2 fails.  The error used to carry neither the epoch nor error.history."""
    x, y = blobs(40)
    model = mlp()
    with pytest.raises(NonFiniteError, match=r"^fit: epoch 2/3, validation after the epoch's training \(its updates "
                                             r"were applied; it is not in error.history\): ") as info:
        fit(model, x, y, loss=InfGradientOnCall(4), epochs=3, batch_size=20, shuffle=False,
            validation_data=(x, y), verbose=0)
    assert info.value.history.epoch == [1]
    assert not np.isfinite(model.parameters()[0].data).all()  # the update was applied, as the message says


def test_nan_in_the_data_is_reported_with_epoch_and_batch():
    x, y = blobs(40)
    x[23, 1] = np.nan
    model = mlp()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError, match=r"epoch 1/2, batch 3/4 \(samples 20\.\.29.*NaN") as info:
        fit(model, x, y, epochs=2, batch_size=10, shuffle=False)
    assert "Dense(2 -> 16)" in str(info.value)
    after = model.state_dict()
    assert any(not np.array_equal(before[k], after[k]) for k in before)  # batches 1-2 were applied


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_exploding_training_is_caught():
    x, y = blobs(64)
    model = mlp()
    with pytest.raises(NonFiniteError, match="epoch"):
        fit(model, x * 1e150, y, optimizer=SGD(model.parameters(), lr=1e150), epochs=5, batch_size=8)


class NanGradient(md.Layer):
    """A parameterised identity whose gradient is NaN (its forward is fine)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = md.Parameter(np.ones(1))

    def forward(self, x):
        return x * self.scale.data

    def backward(self, grad_output):
        self.scale.grad += np.nan
        return grad_output * self.scale.data


def test_check_gradients_refuses_a_nan_gradient_before_the_step():
    x, y = blobs(20)
    model = md.Sequential(md.Dense(2, 3, rng=0), NanGradient())
    before = model.state_dict()
    with pytest.raises(NonFiniteError, match=r"epoch 1/1, batch 1/2.*gradient of parameter '1.scale'"):
        fit(model, x, y, epochs=1, batch_size=10, check_gradients=True)
    after = model.state_dict()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


# ---------------------------------------------------------------------------------------------- modes, dtypes
def test_fit_trains_in_train_mode_validates_in_eval_mode_and_restores_modes():
    x, y = blobs(40)
    spy = Spy()
    model = md.Sequential(md.Dense(2, 8, rng=0), spy, md.ReLU(), md.Dense(8, 3, rng=1))
    model.eval()
    model[0].train()  # a mixed state must come back exactly
    fit(model, x, y, epochs=2, batch_size=20, validation_data=(x[:10], y[:10]))
    # the validation set scored once before training (eval mode), then per epoch two training batches
    # (train mode) and one validation batch (eval mode)
    assert spy.modes == [False, True, True, False, True, True, False]
    assert [layer.training for layer in model] == [True, False, False, False]


@pytest.mark.parametrize("initial", [True, False])
def test_predict_and_evaluate_run_in_eval_mode_and_restore_it(initial):
    x, y = blobs(30)
    spy = Spy()
    model = md.Sequential(md.Dense(2, 3, rng=0), spy)
    model.train(initial)
    out = model.predict(x, batch_size=7)
    assert out.shape == (30, 3)
    np.testing.assert_allclose(out, model[0](x))
    scores = model.evaluate(x, y, loss=md.CrossEntropyLoss(), metrics=["accuracy"], batch_size=8)
    assert set(scores) == {"loss", "accuracy"}
    assert spy.modes[:9] == [False] * 9
    assert model.training is initial and spy.training is initial


def test_predict_does_not_hand_back_the_input():
    x = np.ones((4, 3))
    out = md.Sequential(Spy()).predict(x)
    assert out is not x and not np.shares_memory(out, x)


def test_predict_takes_the_batch_size_by_position_as_the_method_does():
    x, _ = blobs(30)
    model = mlp()
    np.testing.assert_array_equal(md.predict(model, x, 7), model.predict(x, 7))
    np.testing.assert_allclose(md.predict(model, x, 7), md.predict(model, x, batch_size=30), rtol=1e-12)


def test_evaluate_reuses_the_last_fit_or_asks():
    x, y = blobs(30)
    model = mlp()
    with pytest.raises(ValueError, match="loss="):
        model.evaluate(x, y)
    fit(model, x, y, metrics=["accuracy"])
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}
    assert set(model.evaluate(x, y, loss=md.CrossEntropyLoss())) == {"loss"}


def test_float32_stays_float32_through_fit():
    x, y = blobs(64, dtype=np.float32)
    spy = Spy()
    model = md.Sequential(md.Dense(2, 8, rng=0, dtype=np.float32), md.Tanh(), spy,
                          md.Dense(8, 3, rng=1, dtype=np.float32))
    opt = Adam(model.parameters(), lr=0.01)
    h = fit(model, x, y, optimizer=opt, epochs=2, batch_size=16, validation_data=(x, y),
            metrics=["accuracy"])
    assert set(spy.dtypes) == {np.dtype(np.float32)}
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
    assert all(v.dtype == np.float32 for s in opt.state for v in s.values() if isinstance(v, np.ndarray))
    assert model.predict(x).dtype == np.float32
    assert h["loss"][-1] < h["loss"][0]


def test_float64_targets_are_cast_once_for_a_float32_model():
    x = np.random.default_rng(0).standard_normal((32, 2)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0]])  # float64
    model = md.Sequential(md.Dense(2, 1, rng=0, dtype=np.float32))
    h = fit(model, x, y, loss=md.MSELoss(), optimizer=SGD(model.parameters(), lr=0.1), epochs=20,
            batch_size=8, metrics=["mse", "mae"])
    assert model[0].W.dtype == np.float32
    assert h["mse"][-1] < 1e-3 and h["mae"][-1] < h["mae"][0]


def test_a_users_loss_and_metric_see_targets_in_the_models_dtype():
    """The built-in losses cast for themselves; a user's loss and metric see the cast targets too (fit
    and evaluate cast float targets once, up front)."""
    seen = []

    class HalfSquares(md.Loss):
        def forward(self, y_pred, y_true):
            seen.append(("loss", y_true.dtype))
            self._diff = y_pred - y_true
            return float(0.5 * np.sum(self._diff ** 2))

        def backward(self):
            return self._diff

    def metric(y_pred, y_true):
        seen.append(("metric", y_true.dtype))
        return float(np.mean(np.abs(y_pred - y_true)))

    x = np.random.default_rng(1).standard_normal((16, 2)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0]])  # float64
    model = md.Sequential(md.Dense(2, 1, rng=0, dtype=np.float32))
    fit(model, x, y, loss=HalfSquares(), optimizer=SGD(model.parameters(), lr=0.01), epochs=1, batch_size=8,
        metrics=[metric], validation_data=(x, y), verbose=0)
    md.evaluate(model, x, y, loss=HalfSquares(), metrics=[metric])
    assert {what for what, _ in seen} == {"loss", "metric"}
    assert all(dtype == np.float32 for _, dtype in seen), seen
    assert model[0].W.grad.dtype == np.float32


# ---------------------------------------------------------------------------------------------- errors
def test_errors_inside_a_batch_name_the_epoch_and_batch():
    _, y = blobs(30)
    model = mlp()
    with pytest.raises(ShapeError, match=r"fit: epoch 1/1, batch 1/3.*Dense\(2 -> 16\)"):
        fit(model, np.ones((30, 5)), y, epochs=1, batch_size=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": "mse"}, TypeError, "Loss instance"),
        ({"optimizer": "adam"}, TypeError, "Optimizer instance"),
        ({"optimizer": SGD([md.Parameter(np.zeros(2))], lr=0.1)}, ValueError, "none of this model"),
        ({"epochs": -1}, ValueError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"verbose": 3}, ValueError, "verbose"),
        ({"validation_data": np.ones(3)}, TypeError, "validation_data"),
        ({"metrics": ["f1"]}, ValueError, "unknown metric"),
    ],
)
def test_bad_arguments_are_refused_before_training(kwargs, error, match):
    x, y = blobs(20)
    model = mlp()
    before = model.state_dict()
    with pytest.raises(error, match=match):
        fit(model, x, y, **kwargs)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize(
    ("loss", "hint"),
    [
        (md.CrossEntropyLoss(), "use 'accuracy', 'mse', 'mae' or a callable metric(y_pred, y_true) -> float"),
        (md.HingeEmbeddingLoss(), "use 'mse', 'mae' or a callable metric(y_pred, y_true) -> float ('accuracy' is "
                                  "refused with HingeEmbeddingLoss)"),
        (md.GaussianNLLLoss(), "use 'mse', 'mae' or a callable metric(y_pred, y_true) -> float ('accuracy' is "
                               "refused with GaussianNLLLoss)"),
        (md.TripletMarginLoss(), "use a callable metric(y_pred, y_true) -> float ('accuracy', 'mse' and 'mae' are "
                                 "refused with TripletMarginLoss)"),
    ],
    ids=["cross-entropy", "hinge-embedding", "gaussian-nll", "triplet"],
)
def test_an_unknown_metric_is_told_only_the_built_in_ones_its_loss_takes(loss, hint):
    x, y = blobs(20)
    model = mlp()
    with pytest.raises(ValueError) as refused:
        fit(model, x, y, loss=loss, metrics=["auc"])
    assert str(refused.value) == f"fit: unknown metric 'auc'; {hint}"
    with pytest.raises(ValueError) as refused:
        model.evaluate(x, y, loss=loss, metrics=["AUC"])
    assert str(refused.value) == f"evaluate: unknown metric 'AUC'; {hint}"


def test_mismatched_lengths_are_refused():
    x, y = blobs(20)
    with pytest.raises(ShapeError, match="20 samples but y has 19"):
        fit(mlp(), x, y[:19])


# ---------------------------------------------------------------------------------------------- metrics
def test_accuracy_metric_forms():
    acc = Accuracy()
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    assert acc(logits, np.array([0, 1, 2, 1])) == 0.75
    assert acc(logits, np.eye(3)[[0, 1, 0, 0]]) == 0.75
    assert acc(np.array([[0.9], [0.2], [0.6]]), np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert Accuracy(threshold=0.0)(np.array([0.3, -0.2]), np.array([[1.0], [1.0]])) == 0.5
    with pytest.raises(ShapeError, match="Accuracy"):
        acc(logits, np.array([0, 1]))


def test_accuracy_picks_the_logit_threshold_for_bce_with_logits():
    [(name, fn)] = training._resolve_metrics(["acc"], md.BCEWithLogitsLoss())
    assert name == "acc" and fn.threshold == 0.0  # (the name as given, as Keras records it)
    [(_, fn)] = training._resolve_metrics(["accuracy"], md.MSELoss())
    assert fn.threshold == 0.5


def test_accuracy_skips_ignored_labels_and_says_how_many_it_scored():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    acc = Accuracy(ignore_index=-1)
    assert acc(logits, np.array([0, -1, 2, 1])) == pytest.approx(2 / 3)  # rows 0, 2, 3: two right
    assert acc.batch_weight == 3.0
    assert acc(logits, np.array([-1, -1, -1, -1])) == 0.0 and acc.batch_weight == 0.0
    assert acc(logits, np.eye(3)[[0, 1, 0, 0]]) == 0.75 and acc.batch_weight is None  # one-hot: all scored
    assert acc(np.array([[0.9], [0.2], [0.7]]), np.array([1, -1, 0])) == 0.5 and acc.batch_weight == 2.0  # binary
    assert acc(logits, np.array([0.0, -1.0, 2.0, 1.0])) == pytest.approx(2 / 3)  # float labels too
    for bad in (1.5, True, "2", np.float64(2.0)):
        with pytest.raises(TypeError, match="Accuracy: ignore_index must be an int"):
            Accuracy(ignore_index=bad)
    assert Accuracy(ignore_index=np.int64(-3)).ignore_index == -3
    assert Accuracy()(logits, np.array([0, -1, 2, 1])) == 0.5  # without ignore_index -1 is a wrong label
    assert repr(acc) == "Accuracy(threshold=0.5, ignore_index=-1)" and repr(Accuracy()) == "Accuracy(threshold=0.5)"
    [(_, fn)] = training._resolve_metrics(["accuracy"], md.CrossEntropyLoss(ignore_index=-100))
    assert fn.ignore_index == -100
    [(_, fn)] = training._resolve_metrics(["accuracy"], md.CrossEntropyLoss())
    assert fn.ignore_index is None


@pytest.mark.parametrize("batch_size", [3, 4, 25])
def test_fit_and_evaluate_accuracy_leave_padding_out(batch_size):
    """With CrossEntropyLoss(ignore_index=...), the accuracy in the history and from evaluate is the
    fraction right among the labelled samples, whatever the batches: batches are weighted by how many
    samples they scored, not by their size (one batch below holds padding only)."""
    x, y = blobs(25, seed=3)
    y = y.copy()
    y[:4] = -1
    y[[10, 17]] = -1
    model = mlp(seed=1)
    loss = md.CrossEntropyLoss(ignore_index=-1)
    kept = y != -1

    def expected() -> float:
        return float(np.mean(model.predict(x).argmax(1)[kept] == y[kept]))

    def first_logit(y_pred, y_true):  # a plain callable: weighed by the batch size
        return float(np.mean(y_pred[:, 0]))

    before = expected()
    got = model.evaluate(x, y, loss=loss, metrics=["accuracy"], batch_size=batch_size)["accuracy"]
    assert got == pytest.approx(before, rel=1e-12)
    # lr=0: nothing moves, the accuracy of every batch is the untrained model's (a fit with every parameter
    # frozen, which this test used, is refused: it trains nothing)
    optimizer = SGD(model.parameters(), lr=0.0)
    history = model.fit(x, y, loss=loss, optimizer=optimizer, metrics=["accuracy", first_logit], epochs=1,
                        batch_size=batch_size, shuffle=True, rng=0, verbose=0)
    assert history.history["accuracy"][-1] == pytest.approx(before, rel=1e-12)
    assert history.history["first_logit"][-1] == pytest.approx(float(np.mean(model.predict(x)[:, 0])), rel=1e-12)
    # metrics without a loss: resolved against the loss of the last fit, so padding stays out
    got = model.evaluate(x, y, metrics=["accuracy"], batch_size=batch_size)
    assert list(got) == ["accuracy"] and got["accuracy"] == pytest.approx(before, rel=1e-12)
    plain = model.evaluate(x, y, loss=md.CrossEntropyLoss(ignore_index=-1), metrics=[Accuracy()],
                           batch_size=batch_size)["accuracy"]
    assert plain == pytest.approx(float(np.mean(model.predict(x).argmax(1) == y)), rel=1e-12)  # counts -1 wrong


@pytest.mark.parametrize("make", [lambda: md.MSELoss(reduction="sum"), md.HalfSquaredError,
                                  lambda: md.CrossEntropyLoss(reduction="sum", ignore_index=-1)])
def test_summed_losses_add_up_over_batches(make):
    """A loss whose value is a sum (reduction="sum", HalfSquaredError) combines over batches as the
    total: what one batch of all the data gives, whatever the batch size (not batch sums averaged)."""
    rng = np.random.default_rng(1)
    loss = make()
    classify = isinstance(loss, md.CrossEntropyLoss)
    x = rng.normal(size=(37, 5))
    y = rng.integers(-1, 3, size=37) if classify else rng.normal(size=(37, 3))
    model = md.Sequential(md.Dense(5, 3, rng=0))
    whole = loss(model.predict(x), y)
    for batch_size in (1, 8, 37, 256):
        assert model.evaluate(x, y, loss=loss, batch_size=batch_size)["loss"] == pytest.approx(whole, rel=1e-12)
    optimizer = SGD(model.parameters(), lr=0.0)  # lr=0: every batch sees the same model (a fit with every
    # parameter frozen, which this test used, is refused: it trains nothing)
    history = model.fit(x, y, loss=loss, optimizer=optimizer, epochs=1, batch_size=8, shuffle=True, rng=0,
                        verbose=0)
    assert history.history["loss"][0] == pytest.approx(whole, rel=1e-12)


def test_binary_accuracy_scores_every_element():
    rng = np.random.default_rng(0)
    y_pred = rng.normal(size=(6, 1, 4, 4))
    y_true = (rng.random((6, 1, 4, 4)) > 0.5).astype(float)
    expected = float(np.mean((y_pred > 0) == (y_true > 0.5)))
    assert Accuracy(threshold=0.0)(y_pred, y_true) == pytest.approx(expected)  # (N, 1, H, W): per pixel
    multi = rng.normal(size=(6, 3))
    hot = (rng.random((6, 3)) > 0.5).astype(float)
    assert Accuracy(threshold=0.0, binary=True)(multi, hot) == pytest.approx(float(np.mean((multi > 0) == hot)))
    [(_, fn)] = training._resolve_metrics(["accuracy"], md.BCEWithLogitsLoss())
    assert fn.binary is True and fn.threshold == 0.0

    class MyBCE(md.BCEWithLogitsLoss):
        pass

    [(_, fn)] = training._resolve_metrics(["accuracy"], MyBCE())
    assert fn.threshold == 0.0 and fn.binary is True
    with pytest.raises(ShapeError, match="Accuracy: cannot compare"):
        Accuracy()(rng.random(4), rng.random((4, 3)))  # not column 0 of y_true, silently
    for metric in (training.MeanSquaredError(), training.MeanAbsoluteError()):
        with pytest.raises(ShapeError, match="does not match y_pred of shape"):
            metric(rng.random((4, 3)), rng.integers(0, 3, 4))


def _snapshot(model, optimizer):
    return ([p.data.copy() for p in model.parameters()], copy.deepcopy(optimizer.state_dict()),
            {k: v.copy() for k, v in model.state_dict().items()})


def _unchanged(model, optimizer, snap) -> bool:
    data, opt_state, state = snap
    same_opt = states_equal(optimizer.state_dict(), opt_state)
    return (all(np.array_equal(p.data, d) for p, d in zip(model.parameters(), data, strict=True)) and same_opt
            and all(np.array_equal(v, state[k]) for k, v in model.state_dict().items()))


@pytest.mark.parametrize("bad", ["float labels", "late label out of range", "late NaN", "wrong width"])
def test_bad_validation_data_fails_before_any_update(bad):
    x, y = blobs(40)
    x_val, y_val = x[:30].copy(), y[:30].copy()
    if bad == "float labels":
        y_val = y_val.astype(float)
    elif bad == "late label out of range":
        y_val[25] = 7
    elif bad == "late NaN":
        x_val[27, 1] = np.nan
    else:
        x_val = np.ones((30, 5))
    model = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.Dropout(0.2, rng=1), md.ReLU(),
                          md.Dense(8, 3, rng=2))
    optimizer = Adam(model.parameters(), lr=0.1)
    snap = _snapshot(model, optimizer)
    with pytest.raises(md.MinidlError, match=r"fit: validation_data \(scored before training, nothing was updated\)"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, epochs=2, batch_size=8,
                  validation_data=(x_val, y_val), validation_batch_size=10, verbose=0)
    assert _unchanged(model, optimizer, snap)
    state = model[2].rng.bit_generator.state
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, epochs=1, batch_size=8, rng=0,
              validation_data=(x[:30], y[:30]), verbose=0)  # a good set: scored first, generators kept
    fresh = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.Dropout(0.2, rng=1), md.ReLU(),
                          md.Dense(8, 3, rng=2))
    fresh[2].rng.bit_generator.state = state
    fresh.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=Adam(fresh.parameters(), lr=0.1), epochs=1,
              batch_size=8, rng=0, verbose=0)  # the same training without validation data
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_a_failing_metric_or_a_foreign_error_refuses_the_batch():
    """A metric that cannot score the batch fails before the update (first batch: nothing changes); an
    exception that is not minidl's (a user's loss raising ValueError) still restores the batch norm
    statistics the refused batch's forward had moved."""
    x, y = blobs(40)
    model = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.ReLU(), md.Dense(8, 3, rng=2))
    optimizer = SGD(model.parameters(), lr=0.1)
    snap = _snapshot(model, optimizer)
    with pytest.raises(ShapeError, match=r"fit: epoch 1/1, batch 1/5 .*MeanSquaredError"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, epochs=1, batch_size=8, metrics=["mse"],
                  verbose=0)
    assert _unchanged(model, optimizer, snap)

    class Picky(md.CrossEntropyLoss):
        def forward(self, y_pred, y_true):
            if (y_true == 2).all():
                raise ValueError("a batch of twos")
            return super().forward(y_pred, y_true)

    y_twos = y.copy()
    y_twos[8:16] = 2
    with pytest.raises(ValueError, match="a batch of twos"):
        model.fit(x, y_twos, loss=Picky(), optimizer=optimizer, epochs=1, batch_size=8, shuffle=False, verbose=0)
    after_first = {k: v.copy() for k, v in model.state_dict().items()}
    replay = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.ReLU(), md.Dense(8, 3, rng=2))
    replay.fit(x[:8], y[:8], loss=md.CrossEntropyLoss(), optimizer=SGD(replay.parameters(), lr=0.1), epochs=1,
               batch_size=8, verbose=0)  # only the first batch, which was applied
    for k, v in replay.state_dict().items():
        np.testing.assert_allclose(after_first[k], v, rtol=1e-12, err_msg=k)


def test_callable_metrics_use_their_name():
    def worst(y_pred, y_true):
        return float(np.max(np.abs(y_pred.argmax(1) - y_true)))

    x, y = blobs(30)
    h = fit(mlp(), x, y, metrics=[worst], epochs=1)
    assert "worst" in h.history


# ---------------------------------------------------------------------------------------------- progress
def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = blobs(30)
    fit(mlp(), x, y, epochs=2, verbose=2, metrics=["accuracy"], validation_data=(x, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 - ") and lines[1].startswith("Epoch 2/2 - ")
    for part in ("samples/s", "loss: ", "accuracy: ", "val_loss: ", "val_accuracy: ", "lr: 0.1"):
        assert part in lines[1]


def test_verbose_1_without_tqdm_falls_back_to_lines(capsys, monkeypatch):
    monkeypatch.setattr(training, "_tqdm", lambda: None)
    x, y = blobs(30)
    fit(mlp(), x, y, epochs=3, verbose=1)
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 3 and out.err == ""


def test_verbose_1_with_tqdm_draws_a_bar_on_stderr(capsys):
    pytest.importorskip("tqdm")
    x, y = blobs(30)
    fit(mlp(), x, y, epochs=2, verbose=1, metrics=["accuracy"])
    out = capsys.readouterr()
    assert out.out == ""
    assert "Epoch 2/2" in out.err and "accuracy: " in out.err and "samples/s" in out.err


def test_verbose_0_is_silent(capsys):
    x, y = blobs(30)
    fit(mlp(), x, y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------------------------------- backward
def test_fit_skips_the_gradient_of_the_data_on_a_sequential():
    x, y = blobs(20)
    front = Spy()  # no parameters, in front of the first Dense: its backward would only make dx
    model = md.Sequential(front, md.Dense(2, 3, rng=0))
    fit(model, x, y, epochs=1, batch_size=10)
    assert len(front.dtypes) == 2  # two forwards, no backward


class OwnBackward(md.Sequential):
    """A Sequential with a custom back-pass (here: doubling the gradient); fit must not bypass it."""

    def backward(self, grad_output):
        return super().backward(2.0 * grad_output)


def test_fit_respects_an_overridden_backward():
    x, y = blobs(20)
    a = OwnBackward(md.Dense(2, 3, rng=0))
    b = md.Sequential(md.Dense(2, 3, rng=0))
    fit(a, x, y, optimizer=SGD(a.parameters(), lr=0.05), epochs=1, batch_size=20, shuffle=False)
    fit(b, x, y, optimizer=SGD(b.parameters(), lr=0.1), epochs=1, batch_size=20, shuffle=False)
    np.testing.assert_allclose(a[0].W.data, b[0].W.data, rtol=1e-14)
    assert md.layer.parameter_backward(a) == a.backward
    assert md.layer.parameter_backward(b) == b.backward_params


class Boom(md.Layer):
    """Raises a plain (non-minidl) error on its third forward."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom")
        return x

    def backward(self, grad_output):
        return grad_output


def test_a_foreign_error_keeps_its_message_gets_a_note_and_modes_are_restored(capsys):
    """A user's error is not rewritten (its message is theirs); on Python 3.11+ a note, which the
    traceback prints under it, says where fit was."""
    x, y = blobs(40)
    model = md.Sequential(md.Dense(2, 3, rng=0), Boom())
    model.eval()
    with pytest.raises(RuntimeError) as caught:
        fit(model, x, y, epochs=2, batch_size=10, shuffle=False, verbose=1)
    assert str(caught.value) == "boom"
    assert not any(layer.training for layer in model.layers())
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [
            "(raised in fit: epoch 1/2, batch 3/4 (samples 20..29 of the epoch's order); "
            "this batch's update was not applied; the 2 batch(es) of this fit before it were applied)"]
    assert len(caught.value.history) == 0
    capsys.readouterr()


def test_a_nan_in_the_data_is_traced_to_its_sample_in_fit_evaluate_and_predict():
    """The layer's message gives the position in the batch; with shuffling that row could not be found
    in x (found by a review): the batch's row is now named as a sample of the data."""
    x, y = blobs(120)
    x[100, 1] = np.nan
    model = mlp()
    order = np.random.default_rng(0).permutation(120)
    batch, row = divmod(int(np.flatnonzero(order == 100)[0]), 16)
    with pytest.raises(md.NonFiniteError, match=rf"fit: epoch 1/1, batch {batch + 1}/8 \(samples {16 * batch}\.\."
                                                rf"{16 * batch + 15} of the epoch's order; row {row} of the batch is "
                                                rf"sample 100\): .*first at index \({row}, 1\)") as caught:
        fit(model, x, y, batch_size=16, rng=0)
    assert caught.value.index == (row, 1)
    with pytest.raises(md.NonFiniteError, match=r"fit: epoch 1/1, batch 7/8 \(samples 96\.\.111 of the epoch's "
                                                r"order; row 4 of the batch is sample 100\)"):
        fit(model, x, y, batch_size=16, shuffle=False)
    for call, who in ((lambda: md.evaluate(model, x, y, loss=md.CrossEntropyLoss(), batch_size=32), "evaluate"),
                      (lambda: model.predict(x, batch_size=32), "predict")):
        with pytest.raises(md.NonFiniteError, match=rf"^{who}: samples 96\.\.119; row 4 of the batch is sample 100: "
                                                    r"Sequential layer '0'"):
            call()
    with pytest.raises(md.NonFiniteError, match=r"fit: validation_data \(scored before training, nothing was "
                                                r"updated\): samples 0\.\.119; row 100 of the batch is sample 100"):
        fit(model, x[:100], y[:100], validation_data=(x, y))


class RowsOfPatches(md.Layer):
    """(N, 4) -> (2N, 2): each half of a sample a row of its own (axis 0 is then not the batch)."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(-1, 2)

    def backward(self, g):
        return g.reshape(self._shape)


def test_a_nan_is_not_traced_to_a_sample_through_an_array_of_other_rows():
    """Row 7 of a (2N, 2) array is half of sample 3: no 'sample' is claimed there (found by a review)."""
    x = np.ones((16, 4))
    x[3, 2] = np.nan
    model = md.Sequential(RowsOfPatches(), md.Dense(2, 3, rng=0))
    with pytest.raises(md.NonFiniteError, match=r"^predict: samples 0\.\.15: .*first at index \(7, 0\)") as caught:
        model.predict(x)
    assert caught.value.shape == (32, 2) and "row 7 of the batch" not in str(caught.value)


class StepFailsHalfway(SGD):
    """Updates its first parameter, then fails: the update is partly applied."""

    def step(self, zero_grad=False):
        first = self.params[0]
        first.data -= self.lr * first.grad
        raise RuntimeError("lost the connection to the parameter server")


def test_the_note_says_when_the_optimizer_failed_part_way():
    x, y = blobs(20)
    model = mlp()
    with pytest.raises(RuntimeError) as caught:
        fit(model, x, y, optimizer=StepFailsHalfway(model.parameters(), lr=0.1), batch_size=20)
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == ["(raised in fit: epoch 1/1, batch 1/1 (samples 0..19 of the epoch's "
                                          "order); inside the optimizer's step)"]


def test_the_samples_per_second_shown_are_the_training_s(capsys):
    """A slow validation must not lower the training rate shown (found by a review: 16k samples/s shown
    where training ran at 250k)."""
    x, y = blobs(40)
    model = mlp()

    def slow_in_eval(y_pred, y_true):
        if not model.training:
            time.sleep(0.25)
        return 0.0

    fit(model, x, y, epochs=1, batch_size=20, validation_data=(x, y), metrics=[slow_in_eval], verbose=2)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    seconds, rate = re.match(r"Epoch 1/1 - ([0-9.]+)s - ([0-9]+) samples/s - ", line).groups()
    assert float(seconds) >= 0.25  # the epoch's time includes the validation
    # two tiny batches take far less than the 0.25 s validation, even on a loaded machine
    assert int(rate) > 2 * 40 / float(seconds)


def test_a_fit_refused_at_its_first_batch_leaves_early_stopping_and_evaluate_s_defaults():
    """A float32 x for a float64 model is only refused by the first layer, in the first batch: that
    call trained nothing, so the EarlyStopping passed to it keeps the last fit's best weights and
    evaluate() keeps the last fit's loss and metrics (found by a review: both were reset)."""
    x, y = blobs(60)
    model = mlp()
    es = md.EarlyStopping("val_loss", patience=2, restore_best_weights=True)
    fit(model, x, y, epochs=3, batch_size=20, validation_data=(x, y), metrics=["accuracy"], early_stopping=es)
    best, best_epoch, best_state = es.best, es.best_epoch, es.best_state
    scores = model.evaluate(x, y)
    assert set(scores) == {"loss", "accuracy"}
    with pytest.raises(md.DTypeError, match=r"fit: epoch 1/3, batch 1/3"):
        fit(model, x.astype(np.float32), y, epochs=3, batch_size=20, validation_data=(x, y),
            loss=md.CrossEntropyLoss(label_smoothing=0.5), early_stopping=es)
    assert (es.best, es.best_epoch) == (best, best_epoch) and es.best_state is best_state
    assert model.evaluate(x, y) == scores
    fit(model, x, y, epochs=1, batch_size=20, early_stopping=md.EarlyStopping("loss"))  # a good call does change them
    assert set(model.evaluate(x, y)) == {"loss"}


@pytest.mark.parametrize("stop", [KeyboardInterrupt, ValueError])
def test_what_stops_the_validation_after_an_epoch_gets_the_history_and_a_note(stop):
    """The end-of-epoch validation is often most of an epoch's time: a Ctrl-C or a user's metric failing
    there now carries the epochs completed so far, as in a training batch."""
    x, y = blobs(60)
    calls = []

    def probe(y_pred, y_true):
        if not model.training:
            calls.append(1)
            if len(calls) == 3:  # call 1: the scoring before training; 2: after epoch 1; 3: after epoch 2
                raise stop("stop here")
        return 0.0

    model = mlp()
    with pytest.raises(stop) as caught:
        fit(model, x, y, epochs=4, batch_size=20, validation_data=(x, y), validation_batch_size=100,
            metrics=[probe])
    assert len(caught.value.history) == 1 and caught.value.history["loss"][0] > 0
    if stop is ValueError and sys.version_info >= (3, 11):
        assert caught.value.__notes__ == ["(raised in fit: epoch 2/4, validation after the epoch's training (its "
                                          "updates were applied; it is not in error.history))"]


def test_a_refused_batch_leaves_buffers_and_generators_as_after_the_previous_batch():
    """A NaN/inf loss stops fit before the step; batch norm's running statistics and dropout's
    generator, which the refused forward already moved, are put back too."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2))
    y = np.zeros((8, 1))
    y[4:] = 1e200  # the second batch's loss is inf

    def build():
        return md.Sequential(md.Dense(2, 3, rng=0), md.BatchNorm1d(3), md.Dropout(0.3, rng=5), md.Dense(3, 1, rng=1))

    failed, reference = build(), build()
    with pytest.raises(md.NonFiniteError, match="batch 2/2"):
        fit(failed, x, y, loss=md.MSELoss(), optimizer=SGD(failed.parameters(), lr=1e-3), batch_size=4,
            shuffle=False, verbose=0)
    fit(reference, x[:4], y[:4], loss=md.MSELoss(), optimizer=SGD(reference.parameters(), lr=1e-3),
        batch_size=4, shuffle=False, verbose=0)
    for (name, a), (_, b) in zip(failed.state_dict(generators=True).items(),
                                 reference.state_dict(generators=True).items(), strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a == b, name


class LazyNoise(md.Layer):
    """Registers its running maximum and its generator in its first forward (a lazy layer)."""

    def forward(self, x):
        if "peak" not in self._buffers:
            self.register_buffer("peak", np.abs(x).max(axis=0))
            self.noise = np.random.default_rng(7)
        else:
            self.peak = np.maximum(self.peak, np.abs(x).max(axis=0))
        self.noise.standard_normal(3)  # moves the generator
        return x

    def backward(self, grad_output):
        return grad_output


def test_a_refused_batch_unregisters_the_buffers_and_generators_it_registered():
    """_SideState listed the layers with buffers (and the generators) when fit started: a buffer
    registered in the first forward stayed, with the refused batch's values, after the refusal."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2))
    y = np.zeros((8, 1))
    y[:4] = 1e200  # the first batch's loss is inf

    def build() -> md.Sequential:
        return md.Sequential(md.Dense(2, 3, rng=0), LazyNoise(), md.Dense(3, 1, rng=1))

    model = build()
    with pytest.raises(md.NonFiniteError, match="batch 1/2"):
        fit(model, x, y, loss=md.MSELoss(), optimizer=SGD(model.parameters(), lr=1e-3), batch_size=4,
            shuffle=False, verbose=0)
    lazy = model[1]
    assert "peak" not in lazy._buffers and not hasattr(lazy, "peak")
    assert "noise" not in lazy._generators and not hasattr(lazy, "noise")
    assert set(model.state_dict(generators=True)) == {"0.W", "2.W", "0._layout", "2._layout"}
    # training on from there is training from scratch on the good half
    y[:4] = 0
    reference = build()
    for m in (model, reference):
        fit(m, x[4:], y[4:], loss=md.MSELoss(), optimizer=SGD(m.parameters(), lr=1e-3), batch_size=4,
            shuffle=False, verbose=0)
    for (name, a), (_, b) in zip(model.state_dict(generators=True).items(),
                                 reference.state_dict(generators=True).items(), strict=True):
        assert name in {"0.W", "1.peak", "1.noise", "2.W", "0._layout", "2._layout"}
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a == b, name


class LazyRng(md.Layer):
    """The other lazy pattern: a plain None in __init__, a generator from the first forward."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = None

    def forward(self, x):
        if self.rng is None:
            self.rng = np.random.default_rng(0)
        self.rng.standard_normal(1)
        return x

    def backward(self, grad_output):
        return grad_output


class LazyNorm(md.Layer):
    """Makes its BatchNorm1d sub-layer in its first forward."""

    def forward(self, x):
        if "bn" not in self._layers:
            self.bn = md.BatchNorm1d(x.shape[1])
        return self.bn.forward(x)

    def backward(self, grad_output):
        return self.bn.backward(grad_output)


def _mse_fit(model, x, y, **kwargs):
    return fit(model, x, y, loss=md.MSELoss(), optimizer=SGD(model.parameters(), lr=1e-3), batch_size=4,
               shuffle=False, verbose=0, **kwargs)


def test_undoing_a_lazy_registration_puts_back_the_plain_attribute_it_replaced():
    """The first fix deleted the attribute: 'self.rng is None' then raised AttributeError, also after
    validation_data's scoring, which restores the side state with no batch refused (a review's case)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2)), np.zeros((8, 1))
    model = md.Sequential(md.Dense(2, 1, rng=0), LazyRng())
    _mse_fit(model, x, y, validation_data=(x, y))
    assert isinstance(model[1].rng, np.random.Generator)
    model = md.Sequential(md.Dense(2, 1, rng=0), LazyRng())
    y[:4] = 1e200
    with pytest.raises(md.NonFiniteError, match="batch 1/2"):
        _mse_fit(model, x, y)
    assert model[1].rng is None and "rng" not in model[1]._generators
    y[:4] = 0
    _mse_fit(model, x, y)  # trains on


def test_a_sub_layer_made_in_a_forward_is_covered_by_the_next_refused_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 2))
    y = np.zeros((8, 1))
    y[4:] = 1e200  # batch 1 makes the BatchNorm and moves its statistics; batch 2 is refused
    model = md.Sequential(md.Dense(2, 2, rng=0), LazyNorm(), md.Dense(2, 1, rng=1))
    with pytest.raises(md.NonFiniteError, match="batch 2/2"):
        _mse_fit(model, x, y)
    reference = md.Sequential(md.Dense(2, 2, rng=0), LazyNorm(), md.Dense(2, 1, rng=1))
    _mse_fit(reference, x[:4], y[:4])
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(getattr(model[1].bn, name), getattr(reference[1].bn, name), err_msg=name)
    assert reference[1].bn.num_batches_tracked == 1
    first_refused = md.Sequential(md.Dense(2, 2, rng=0), LazyNorm(), md.Dense(2, 1, rng=1))
    with pytest.raises(md.NonFiniteError, match="batch 1/2"):
        _mse_fit(first_refused, x[::-1].copy(), y[::-1].copy())
    assert "bn" not in first_refused[1]._layers and not hasattr(first_refused[1], "bn")


def test_a_sub_layer_a_users_layer_appends_to_a_minidl_container_is_undone():
    """Only user-defined layers' registries were restored: a Sequential of minidl's, appended to by a
    user's forward, kept the refused batch's BatchNorm (a review's case)."""

    class LazyBody(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.body = md.Sequential()

        def forward(self, x):
            if len(self.body) == 0:
                self.body.append(md.BatchNorm1d(x.shape[1]))
            return self.body.forward(x)

        def backward(self, grad_output):
            return self.body.backward(grad_output)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2)), np.zeros((8, 1))
    y[:4] = 1e200
    model = md.Sequential(md.Dense(2, 2, rng=0), LazyBody(), md.Dense(2, 1, rng=1))
    with pytest.raises(md.NonFiniteError, match="batch 1/2"):
        _mse_fit(model, x, y)
    assert len(model[1].body) == 0 and not hasattr(model[1].body, "0")
    assert set(model.state_dict()) == {"0.W", "2.W", "0._layout", "2._layout"}


def test_a_buffer_deleted_or_made_persistent_by_a_refused_batch_is_put_back():
    class Fiddler(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("kept", np.ones(2))
            self.register_buffer("scratch", np.zeros(2), persistent=False)

        def forward(self, x):
            del self.kept
            self.register_buffer("scratch", np.ones(2))  # now persistent
            return x

        def backward(self, grad_output):
            return grad_output

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 2)), np.full((4, 1), 1e200)
    model = md.Sequential(md.Dense(2, 1, rng=0), Fiddler())
    with pytest.raises(md.NonFiniteError):
        _mse_fit(model, x, y)
    assert set(model.state_dict()) == {"0.W", "1.kept", "0._layout"}
    np.testing.assert_array_equal(model[1].kept, 1.0)
    np.testing.assert_array_equal(model[1].scratch, 0.0)


def test_fit_and_predict_accept_data_that_converts_itself() -> None:
    class Frame:  # a stand-in for a pandas DataFrame / Series
        def __init__(self, values: np.ndarray) -> None:
            self.values = values

        def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
            return self.values

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.integers(0, 2, size=20)
    model = md.Sequential(md.Dense(3, 2, rng=0))
    history = model.fit(Frame(x), Frame(y), loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                        epochs=2, batch_size=8, verbose=0, rng=0)
    assert len(history.history["loss"]) == 2
    np.testing.assert_array_equal(model.predict(Frame(x)), model.predict(x))
    with pytest.raises(md.DTypeError, match="predict: expected x as a numpy array, got dict"):
        model.predict({"a": 1})  # type: ignore[arg-type]


def test_an_error_in_the_optimizer_step_refuses_the_batch_too():
    """The update is part of the batch: an optimizer that raises leaves the batch norm statistics of
    that batch unmoved, and its error gets the batch's context and the history."""
    x, y = blobs(40)

    class Failing(SGD):
        calls = 0

        def update(self, p, state):
            Failing.calls += 1
            if Failing.calls > 4:  # the second batch (4 parameters per step)
                raise md.StateDictError("no update today")
            super().update(p, state)

    def build():
        return md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.ReLU(), md.Dense(8, 3, rng=2))

    model = build()
    with pytest.raises(md.StateDictError, match=r"fit: epoch 1/1, batch 2/5 .*no update today") as info:
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=Failing(model.parameters(), lr=0.1, momentum=0.5),
                  epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert info.value.history.epoch == []  # no epoch completed
    replay = build()
    replay.fit(x[:8], y[:8], loss=md.CrossEntropyLoss(), optimizer=SGD(replay.parameters(), lr=0.1, momentum=0.5),
               epochs=1, batch_size=8, verbose=0)  # the first batch only, which was applied
    for key, value in replay.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], value, rtol=1e-12, err_msg=key)


def test_epochs_zero_does_nothing_even_with_bad_validation_data():
    x, y = blobs(20)
    model = mlp()
    before = [p.data.copy() for p in model.parameters()]
    history = fit(model, x, y, epochs=0, validation_data=(x, y.astype(float)))
    assert history.epoch == []
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before, strict=True))


class BatchMean(md.Model):
    """One row for the whole batch: not a per-sample model."""

    def forward(self, x):
        return x.mean(axis=0, keepdims=True)

    def backward(self, grad_output):  # pragma: no cover - predict only
        raise NotImplementedError


@pytest.mark.parametrize("batch_size", [2, 256])
def test_predict_refuses_an_output_without_one_row_per_sample(batch_size):
    """With batches of 2 the rows the model did not return stayed uninitialised memory."""
    with pytest.raises(md.ShapeError, match=r"predict: the model's output must have one row per sample; "
                                            r"a batch of \d+ gave an output of shape \(1, 4\)"):
        md.predict(BatchMean(), np.arange(20.0).reshape(5, 4), batch_size=batch_size)


@pytest.mark.parametrize("n", [3, 300])
def test_predict_returns_a_writable_array_whatever_the_number_of_batches(n):
    """With one batch it returned the last layer's read-only cache (a Softmax output), with several a copy."""
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Softmax())
    p = model.predict(np.random.default_rng(0).normal(size=(n, 4)), batch_size=256)
    p[p < 0.5] = 0.0  # what a user does with probabilities
    assert p.flags.writeable and (p >= 0).all()


@pytest.mark.parametrize("metric", ["mse", "mae"])
def test_regression_metrics_pair_elements_only_across_axes_of_size_1(metric):
    """(N, 2, 3) predictions against (N, 3, 2) targets were reshaped and scored pairing the wrong elements."""
    model = md.Sequential(md.Flatten())  # the identity on (N, 6)
    x = np.arange(12.0).reshape(2, 6)
    assert model.evaluate(x, x.reshape(2, 6, 1), metrics=[metric])[metric] == 0.0
    with pytest.raises(md.ShapeError, match=r"y_true of shape \(2, 3, 2\) does not match y_pred of shape \(2, 6\)"):
        model.evaluate(x, x.reshape(2, 3, 2), metrics=[metric])


def test_a_layer_left_in_eval_mode_stays_in_eval_mode_while_fit_trains():
    """fit called model.train() every epoch: a batch norm the user froze with .eval() moved its running
    statistics on every batch (and was put back in eval mode at the end, the change unseen)."""
    x, y = blobs(48)
    model = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.ReLU(), md.Dense(8, 3, rng=1))
    model(x)  # some statistics to freeze
    model[1].eval()
    frozen = {k: v.copy() for k, v in model[1]._buffers.items()}
    trained = [p for name, p in model.named_parameters() if not name.startswith("1.")]
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(trained, lr=1e-2), epochs=2,
                        batch_size=16, validation_data=(x, y), rng=0, verbose=0)
    assert all(np.array_equal(model[1]._buffers[k], v) for k, v in frozen.items())
    assert not model[1].training and model.training and history.history["loss"][1] < history.history["loss"][0]


def test_a_model_in_eval_mode_is_trained_in_train_mode_and_put_back():
    x, y = blobs(48)
    model = md.Sequential(md.Dense(2, 8, rng=0), md.BatchNorm1d(8), md.ReLU(), md.Dense(8, 3, rng=1))
    model.eval()
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=1,
              batch_size=16, rng=0, verbose=0)
    assert int(model[1].num_batches_tracked) == 3  # trained in train mode: three batches counted
    assert not any(layer.training for layer in model.layers())


def test_drop_last_skips_a_last_batch_batch_norm_cannot_take():
    x, y = blobs(33)
    model = md.Sequential(md.Dense(2, 4, rng=0), md.BatchNorm1d(4), md.Dense(4, 3, rng=1))
    opt = md.SGD(model.parameters(), lr=0.1)
    with pytest.raises(md.ShapeError, match=r"batch 2/2 \(samples 32\.\.32 of the epoch's order; this epoch's last "
                                            r"batch has only 1 sample\(s\): drop_last=True skips it\)"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, batch_size=32, rng=0, verbose=0)
    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, batch_size=32, rng=0, verbose=0,
                        drop_last=True, epochs=2)
    assert history.params["steps"] == 1 and int(model[1].num_batches_tracked) == 3  # 1 + 2 full batches
    with pytest.raises(ValueError, match="drop_last=True with 33 samples and batch_size 64 leaves no batch"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, batch_size=64, drop_last=True)
    with pytest.raises(TypeError, match="drop_last must be True or False"):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, drop_last="yes")


def test_metrics_given_as_an_iterator_are_kept_for_evaluate():
    x, y = blobs(30)
    model = mlp()
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
              metrics=(name for name in ["accuracy"]), verbose=0)
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}


def test_the_drop_last_hint_only_where_drop_last_helps_and_arguments_before_any_state():
    x, y = blobs(33)
    model = md.Sequential(md.Dense(2, 4, rng=0), md.Dense(4, 3, rng=1))
    opt = md.SGD(model.parameters(), lr=0.1)
    bad = x.copy()
    bad[32, 0] = np.nan  # in the short last batch: not a batch-size problem
    with pytest.raises(md.NonFiniteError) as info:
        model.fit(bad, y, loss=md.CrossEntropyLoss(), optimizer=opt, batch_size=32, shuffle=False, verbose=0)
    assert "drop_last" not in str(info.value)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, metrics=["accuracy"], verbose=0)
    with pytest.raises(TypeError, match="drop_last must be True or False"):
        model.fit(x, y, loss=md.MSELoss(), optimizer=opt, metrics=["mae"], drop_last="yes")
    assert set(model.evaluate(x, y)) == {"loss", "accuracy"}  # the refused call changed nothing
    assert model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=0, batch_size=64,
                     drop_last=True).epoch == []  # trains nothing, refuses nothing


def test_any_exception_that_stops_a_batch_carries_the_history_of_the_completed_epochs():
    class Interrupting(md.Layer):
        """Identity that raises KeyboardInterrupt (a Ctrl-C) at its forward number ``at``."""

        def __init__(self, at: int) -> None:
            super().__init__()
            self.calls, self.at = 0, at

        def forward(self, x):
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
            return x

        def backward(self, grad_output):
            return grad_output

    x, y = blobs(40)
    model = md.Sequential(md.Dense(2, 3, rng=0), Interrupting(at=2 * 2 + 1))  # 2 batches per epoch: epoch 3
    with pytest.raises(KeyboardInterrupt) as caught:
        fit(model, x, y, epochs=5, batch_size=20, rng=0)
    history = caught.value.history  # type: ignore[attr-defined]
    assert history.epoch == [1, 2] and len(history["loss"]) == 2


def test_the_registration_count_moves_on_registrations_only():
    """A side state copies the registries only when this count moved: by a registration in a layer one has
    walked (a model called, or fit), not by a forward's caches, a plain attribute or a fresh layer."""
    from minidl import side_state

    layer = md.Dense(2, 3, rng=0)
    count = side_state.registrations
    layer.register_buffer("early", np.zeros(3))  # fresh: in no side state's walk
    assert side_state.registrations == count
    layer(np.ones((1, 2)))  # walked now; a forward caches arrays: no registration
    layer.note = "x"
    assert side_state.registrations == count
    layer.register_buffer("stat", np.zeros(3))
    layer.rng = np.random.default_rng(0)
    del layer.stat
    layer.extra = md.Parameter(np.zeros(1))
    assert side_state.registrations == count + 4


class LazyPlain(md.Layer):
    """Plain attributes that a forward turns into registrations: a string changed by an accepted
    batch, an array and a tuple (each put back as it was just before the refused batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = "unset"
        self.center = np.zeros(2)
        self.kernel = (1, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 1:
            self.rng = "seeded"  # plain: no registration
        else:
            self.rng = np.random.default_rng(0)
            # (register_buffer refuses a plain attribute's name, as PyTorch: a parameter and a layer replace one)
            self.center = md.Parameter(np.ones(2))
            self.kernel = md.ReLU()
        return x

    def backward(self, grad_output):
        return grad_output


def test_a_refused_batch_puts_back_the_plain_attributes_its_registrations_replaced():
    """A review's cases: the attribute came back from a copy made batches earlier ('unset'), and an
    array or tuple attribute was deleted (the next forward raised AttributeError)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2)), np.zeros((8, 1))
    y[4:] = 1e200  # batch 2 is refused
    model = md.Sequential(md.Dense(2, 1, rng=0), LazyPlain())
    with pytest.raises(md.NonFiniteError, match="batch 2/2"):
        _mse_fit(model, x, y)
    lazy = model[1]
    assert lazy.rng == "seeded" and "rng" not in lazy._generators
    np.testing.assert_array_equal(lazy.center, 0.0)
    assert lazy.kernel == (1, 1) and not lazy._buffers and not lazy._parameters and not lazy._layers


def test_a_refused_batch_that_gives_a_residual_a_shortcut_leaves_the_identity():
    class Grow(md.Layer):
        def __init__(self, res: md.Residual) -> None:
            super().__init__()
            self.res = res

        def forward(self, x):
            if self.res.shortcut is None:
                self.res.shortcut = md.Dense(2, 2, rng=3)  # a lazily added projection
                raise RuntimeError("refused")
            return self.res(x)

        def backward(self, grad_output):
            return self.res.backward(grad_output)

    res = md.Residual(md.Dense(2, 2, rng=0))
    with pytest.raises(RuntimeError, match="refused"):
        _mse_fit(md.Sequential(Grow(res)), np.ones((8, 2)), np.zeros((8, 2)))
    assert res.shortcut is None and set(res.state_dict()) == {"block.W", "block._layout"}
    np.testing.assert_allclose(res(np.ones((1, 2))), np.ones((1, 2)) + md.Dense(2, 2, rng=0)(np.ones((1, 2))))


def test_running_init_again_still_moves_the_registration_count():
    from minidl import side_state

    layer = md.Dense(2, 3, rng=0)
    count = side_state.registrations
    md.Dense.__init__(layer, 2, 3, rng=1)  # fresh: in no side state's walk
    assert side_state.registrations == count
    layer(np.ones((1, 2)))
    md.Dense.__init__(layer, 2, 3, rng=1)
    assert side_state.registrations > count


def test_fit_names_a_float64_target_beyond_the_float32_model_s_range() -> None:
    """fit casts floating targets to the model's dtype once; 1e39 became inf there (a RuntimeWarning)
    and then a NaN/inf error at its batch."""
    model = md.Sequential(md.Dense(3, 1, rng=0, dtype=np.float32))
    before = model.state_dict()
    y = np.ones((8, 1))
    y[5, 0] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(md.TargetError, match=r"fit: y holds 1 value\(s\) beyond float32's range .*the model's "
                                                 r"dtype, the first at index \(5, 0\) \(1e\+39\)"):
            model.fit(np.ones((8, 3), np.float32), y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
                      verbose=0)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
