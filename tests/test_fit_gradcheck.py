"""``fit(gradcheck_every=k)``: the GradientChecker run on the first batch and every k-th, before its update.

A back-pass right at the initial weights can be wrong where training leads; the check must find that, name
the epoch and the batch, apply nothing of that batch, and otherwise change nothing of the training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.gradcheck import GradientChecker


class TanhWrongWhenLarge(md.Layer):
    """tanh whose backward doubles the slope where |x| > 3: right until training makes inputs that large."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.tanh(x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        t = np.tanh(self.x)
        return grad_output * (1 - t * t) * np.where(np.abs(self.x) > 3, 2.0, 1.0)


def data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    return x, (x[:, 0] > 0).astype(np.int64)


def wrong_when_large() -> md.Sequential:
    return md.Sequential(md.Dense(5, 8, rng=0), TanhWrongWhenLarge(), md.Dense(8, 2, rng=2))


def state(model: md.Layer) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state_dict().items()}


def train(model: md.Layer, x: np.ndarray, y: np.ndarray, epochs: int, **kwargs: Any) -> md.History:
    kwargs.setdefault("batch_size", 16)
    return model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=1.0),
                     epochs=epochs, verbose=0, rng=3, **kwargs)


def test_a_backward_that_goes_wrong_during_training_is_caught_at_the_batch_with_nothing_applied() -> None:
    x, y = data()
    model = wrong_when_large()
    assert np.abs(model[0].forward(x)).max() < 3  # right at the initial weights: a check before fit passes
    assert GradientChecker(model, md.CrossEntropyLoss(), inputs=x[:4], targets=y[:4]).run().passed
    with pytest.raises(md.GradientCheckError) as caught:
        train(model, x, y, 20, gradcheck_every=4)
    message = str(caught.value)
    # 4 batches an epoch, checked at batches 0, 4, 8, ... of the fit: each epoch's first
    error = caught.value
    i = str([int(p) for p in error.samples])
    assert message.startswith("fit: epoch 6/20, batch 1/4 (samples 0..15 of the epoch's order): the gradient check "
                              "(gradcheck_every) on this batch's first 4 sample(s), with the parameters before its "
                              "update, failed: the back-pass disagrees with central differences there. The model is "
                              "left as it was then; to check it again on those samples: GradientChecker(model, loss, "
                              f"inputs=x[{i}], targets=y[{i}], seed=20, check_layers=True).run() (check_layers checks "
                              "each layer alone)\nGradient check FAILED")
    assert message.endswith(str(error.report)) and not error.report.passed
    assert error.report.results[1].name == "0.W" and error.report.results[1].status == "FAIL"
    # the samples are the first 4 of epoch 6's order (fit's rng=3 draws one permutation an epoch)
    generator = np.random.default_rng(3)
    for _ in range(5):
        generator.permutation(len(x))
    np.testing.assert_array_equal(error.samples, generator.permutation(len(x))[:4])
    # run again as the message says, on the model as it was left: the same failure, and the layer named
    again = GradientChecker(model, md.CrossEntropyLoss(), inputs=x[error.samples], targets=y[error.samples], seed=20,
                            check_layers=True).run()
    assert [r.status for r in again.results] == [r.status for r in error.report.results]
    assert not again.layers["1"].passed and again.layers["0"].passed and again.layers["2"].passed
    assert len(caught.value.history["loss"]) == 5  # type: ignore[attr-defined]
    # the parameters are those after the 20 batches before it: as a twin trained 5 epochs without the check
    twin = wrong_when_large()
    train(twin, x, y, 5)
    after, expected = state(model), state(twin)
    assert after.keys() == expected.keys()
    for key in after:
        np.testing.assert_array_equal(after[key], expected[key])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("every", [1, 2])
def test_a_right_model_trains_exactly_as_without_the_check(dtype: type, every: int) -> None:
    x, y = data(48, seed=1)
    x = x.astype(dtype)

    def build() -> md.Sequential:
        return md.Sequential(md.Dense(5, 8, rng=0, dtype=dtype), md.ReLU(), md.Dropout(0.3, rng=1),
                             md.BatchNorm1d(8, dtype=dtype), md.Dense(8, 2, rng=2, dtype=dtype))

    checked, plain = build(), build()
    h1 = train(checked, x, y, 3, gradcheck_every=every)
    h2 = train(plain, x, y, 3)
    assert h1["loss"] == h2["loss"]
    a, b = state(checked), state(plain)
    for key in a:
        assert a[key].dtype == dtype or a[key].dtype.kind != "f"
        np.testing.assert_array_equal(a[key], b[key])
    # the dropout's generator too: the next forward draws the same mask
    np.testing.assert_array_equal(checked.forward(x[:8]), plain.forward(x[:8]))


def test_the_batches_checked_and_the_samples_given(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int]] = []
    original = GradientChecker.__init__

    def spy(self: GradientChecker, *args: Any, **kwargs: Any) -> None:
        seen.append((len(kwargs["inputs"]), kwargs["seed"]))
        original(self, *args, **kwargs)

    monkeypatch.setattr(GradientChecker, "__init__", spy)
    x, y = data(40)  # batches of 16, 16, 8: 3 an epoch
    model = md.Sequential(md.Dense(5, 3, rng=0), md.Tanh(), md.Dense(3, 2, rng=1))
    train(model, x, y, 3, gradcheck_every=4, gradcheck_samples=10)
    assert seen == [(10, 0), (10, 4), (8, 8)]  # batches 0, 4, 8 of the fit; the last one has 8 samples
    seen.clear()
    train(model, x, y, 2)
    assert seen == []  # off by default


@pytest.mark.parametrize(("name", "value", "least"), [("gradcheck_every", 0, 1), ("gradcheck_every", True, 1),
                                                     ("gradcheck_every", 1.5, 1), ("gradcheck_samples", 1, 2),
                                                     ("gradcheck_samples", None, 2)])
def test_bad_settings_are_refused_before_anything_changes(name: str, value: Any, least: int) -> None:
    x, y = data(16)
    model = wrong_when_large()
    before = state(model)
    with pytest.raises(ValueError, match=rf"^fit: {name} must be an int >= {least}, got {value!r}$"):
        train(model, x, y, 1, **{name: value})
    for key, array in state(model).items():
        np.testing.assert_array_equal(array, before[key])


def test_the_function_form_and_integer_inputs() -> None:
    rng = np.random.default_rng(0)
    tokens, y = rng.integers(0, 7, (24, 3)), rng.integers(0, 2, 24)
    model = md.Sequential(md.Embedding(7, 4, rng=0), md.Flatten(), md.Dense(12, 2, rng=1))
    history = md.fit(model, tokens, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters()),
                     epochs=2, batch_size=8, verbose=0, gradcheck_every=1)
    assert len(history["loss"]) == 2


class Noisy(md.Layer):
    """Adds noise from a generator made at each forward: a cost the checker cannot difference."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + 1e-3 * np.random.default_rng().standard_normal(x.shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_check_that_cannot_run_says_it_was_the_check_and_nothing_is_applied() -> None:
    x, y = data(16)
    model = md.Sequential(md.Dense(5, 2, rng=0), Noisy())
    before = state(model)
    with pytest.raises(md.NonDeterministicError, match=r"^fit: epoch 1/1, batch 1/2 \(samples 0\.\.7 of the epoch's "
                       r"order\): the gradient check \(gradcheck_every\) on this batch's first 4 sample\(s\): "
                       r"GradientChecker: the forward is not deterministic"):
        train(model, x, y, 1, gradcheck_every=1, batch_size=8)
    for key, array in state(model).items():
        np.testing.assert_array_equal(array, before[key])


def test_several_inputs_are_named_as_a_tuple_in_the_rerun_hint() -> None:
    class TwoInputs(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.dense = md.Dense(5, 2, rng=0)

        def forward(self, x: Any) -> np.ndarray:
            a, b = x
            self.b = b
            return self.dense(a) * b

        def backward(self, grad_output: np.ndarray) -> Any:
            return self.dense.backward(grad_output * self.b), -grad_output  # the second: wrong

    x, y = data(8)
    b = np.random.default_rng(1).standard_normal((8, 2))
    model = TwoInputs()
    with pytest.raises(md.GradientCheckError, match=r"inputs=tuple\(a\[\[0, 1, 2, 3\]\] for a in x\), "
                       r"targets=y\[\[0, 1, 2, 3\]\], seed=0,"):
        md.fit(model, (x, b), y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1),
               batch_size=8, shuffle=False, verbose=0, gradcheck_every=1)
