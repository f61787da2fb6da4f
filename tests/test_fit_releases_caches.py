"""A ``fit`` that returns lets go of its last batch's forward caches: every attribute of the layers, of the loss
and of the losses and layers it holds that was None before the fit (or unset, with the class's default None) and
that its passes bound to arrays is None again.  No backward can use them after the last one, yet a model kept for
inference carried them into every copy and pickle (a small CNN after one epoch at batch 128: 21 MB pickled
against 0.5 MB fresh).  Training goes on exactly as before; a backward with no forward since raises
``BackwardBeforeForwardError``; a ``fit`` that raises keeps them, to debug the batch that failed."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.layer import parameter_backward

AFTER_FIT = "since a fit returned: fit lets go of its last batch's caches"


def holds_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, (tuple, list)):
        return any(holds_array(v) for v in value)
    if isinstance(value, dict):
        return any(holds_array(v) for v in value.values())
    return False


def cached_arrays(*owners: Any) -> list[str]:
    """``Kind.attribute`` of each plain attribute (not a registry, a parameter, a buffer) holding arrays."""
    found = []
    for owner in owners:
        registered = set()
        for registry in ("_parameters", "_buffers", "_generators", "_layers"):
            registered |= {registry, *getattr(owner, registry, {})}
        found += [f"{type(owner).__name__}.{name}" for name, value in vars(owner).items()
                  if name not in registered and holds_array(value)]
    return sorted(found)


# ------------------------------------------------------------------ the models
def mlp(seed: int, width: int) -> md.Sequential:
    return md.Sequential(md.Dense(6, width, rng=seed), md.BatchNorm1d(width), md.ReLU(), md.Dropout(0.3, rng=seed),
                         md.Dense(width, 3, rng=seed + 1))


def cnn(seed: int, width: int) -> md.Sequential:
    return md.Sequential(md.Conv2D(2, width, 3, padding=1, rng=seed), md.ReLU(), md.MaxPool2D(2), md.Flatten(),
                         md.Dense(width * 3 * 3, 3, rng=seed + 1))


def rnn(seed: int, width: int) -> md.Sequential:
    return md.Sequential(md.LSTM(6, width, return_sequences=False, rng=seed), md.Tanh(),
                         md.Dense(width, 3, rng=seed + 1))


def encoder(seed: int, width: int) -> md.Sequential:
    return md.Sequential(md.TransformerEncoderLayer(6, 2, width, dropout=0.1, rng=seed), md.Flatten(),
                         md.Dense(4 * 6, 3, rng=seed + 1))


def embedding(seed: int, width: int) -> md.Sequential:
    return md.Sequential(md.Embedding(9, width, rng=seed), md.Flatten(), md.GELU(), md.Dense(4 * width, 3, rng=seed))


BUILDERS = {"mlp": mlp, "cnn": cnn, "rnn": rnn, "encoder": encoder, "embedding": embedding}

#: attributes each model's training forwards fill, by position in ``model.layers()`` (0 is the Sequential)
NAMED = {
    "mlp": [(1, "_x"), (2, "_cache"), (3, "_cache"), (4, "_mask"), (5, "_x")],
    "cnn": [(1, "_cache"), (2, "_cache"), (3, "_argmax"), (5, "_x")],
    "rnn": [(1, "_cache"), (2, "_cache"), (3, "_x")],
    "encoder": [(2, "_cache"), (5, "_x")],
    "embedding": [(1, "_idx"), (3, "_x"), (4, "_x")],
}


def data(kind: str, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = {"mlp": (n, 6), "cnn": (n, 2, 6, 6), "rnn": (n, 5, 6), "encoder": (n, 4, 6)}.get(kind)
    x = rng.integers(0, 9, (n, 4)) if shape is None else rng.normal(size=shape)
    return x, rng.integers(0, 3, n)


def conv_model() -> md.Sequential:
    """The review's model: Conv2D(1 -> 32, 3x3, padding 1) -> ReLU -> MaxPool2D -> Flatten -> Dense, float32."""
    return md.Sequential(md.Conv2D(1, 32, kernel_size=3, padding=1, rng=0, dtype=np.float32), md.ReLU(),
                         md.MaxPool2D(2), md.Flatten(), md.Dense(32 * 14 * 14, 10, rng=1, dtype=np.float32))


# ------------------------------------------------------------------ what fit leaves
def test_a_conv_model_pickles_to_its_fresh_size_after_fit() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((256, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 256)
    model, fresh = conv_model(), len(pickle.dumps(conv_model()))
    params = sum(p.data.nbytes for p in model.parameters())
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.01), epochs=1,
              batch_size=128, rng=0, verbose=0)
    after = len(pickle.dumps(model))
    assert params == 252_200 and 500_000 < fresh < 512_000  # (the parameters twice: data and grad)
    assert after <= 1.1 * fresh, (after, fresh)  # (the old code: 21 MB, the last batch's conv and pool caches)
    assert len(pickle.dumps(copy.deepcopy(model))) <= 1.1 * fresh
    assert cached_arrays(*model.layers()) == []


@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("seed, width, n, batch", [(0, 4, 10, 4), (1, 5, 12, 12), (2, 3, 11, 3)])
def test_the_named_caches_are_none_after_fit(kind: str, seed: int, width: int, n: int, batch: int) -> None:
    model, loss = BUILDERS[kind](seed, width), md.CrossEntropyLoss()
    fresh = cached_arrays(*model.layers(), loss)  # (what __init__ keeps: a loss's table of starts)
    x, y = data(kind, seed, n)
    model.fit(x, y, loss=loss, optimizer=md.Adam(model.parameters(), lr=1e-2), epochs=2, batch_size=batch, rng=seed,
              verbose=0)
    layers = list(model.layers())
    for index, name in NAMED[kind]:
        assert name in vars(layers[index]) or name == "_argmax", (kind, index, name)
        assert getattr(layers[index], name) is None, (kind, type(layers[index]).__name__, name)
    assert loss._probs is None and loss._label_index is None and loss._coef is None
    assert cached_arrays(*layers, loss) == fresh
    assert "_argmax" not in vars(layers[3]) if kind == "cnn" else True  # (unset again: the class's None)


def test_a_fit_with_validation_and_metrics_and_a_loss_holding_losses_releases_them_all() -> None:
    class Both(md.Loss):
        """MSE plus L1, through two losses it holds."""

        def __init__(self) -> None:
            self.parts = [md.MSELoss(), md.L1Loss()]

        def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
            return float(sum(part(y_pred, y_true) for part in self.parts))

        def backward(self) -> np.ndarray:
            out: np.ndarray = self.parts[0].backward() + self.parts[1].backward()
            return out

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 6)), rng.normal(size=(20, 3))
    model, loss = md.Sequential(md.Dense(6, 4, rng=0), md.Sigmoid(), md.Dense(4, 3, rng=1)), Both()
    model.fit(x, y, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=6, rng=0,
              verbose=0, validation_split=0.25, metrics=["mae"])
    assert cached_arrays(*model.layers(), loss, *loss.parts) == []
    assert loss.parts[0]._diff is None and loss.parts[1]._cache is None
    for part in loss.parts:
        with pytest.raises(md.BackwardBeforeForwardError, match=AFTER_FIT):
            part.backward()


def test_upsample_and_dropout_after_fit_refuse_their_backward_instead_of_a_wrong_gradient() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(8, 2, 3, 3)), rng.normal(size=(8, 2 * 6 * 6))
    up, drop = md.Upsample(2, mode="bilinear"), md.Dropout(0.5, rng=0)
    model = md.Sequential(md.Conv2D(2, 2, 1, rng=0), up, drop, md.Flatten())
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4, rng=0, verbose=0)
    assert up._used is None and up._shape == (4, 2, 3, 3)  # (the weights go; the shape, no array, stays)
    assert drop._mask is None and drop._shape == (4, 2, 6, 6)
    g = np.ones((4, 2, 6, 6))
    with pytest.raises(md.BackwardBeforeForwardError, match=r"^Dropout\.backward called before forward"):
        drop.backward(g)  # (not the identity, as after an eval-mode forward: the mask was let go of)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"^Upsample\.backward called before forward"):
        up.backward(g)  # (not an AssertionError)
    drop.eval()
    drop(np.ones((4, 2, 6, 6)))
    assert drop.backward(g) is g  # (an eval-mode forward's backward is the identity)


# ------------------------------------------------------------------ training goes on exactly as before
def manual(build: Callable[[], md.Layer], x: np.ndarray, y: np.ndarray, runs: int, batch: int) -> list[np.ndarray]:
    """What ``fit(..., shuffle=False)`` does, ``runs`` epochs, as a loop of its steps: the reference."""
    model, loss = build(), md.CrossEntropyLoss()
    optimizer = md.Adam(model.parameters(), lr=1e-2)
    backward = parameter_backward(model)
    for _ in range(runs):
        for start in range(0, len(y), batch):
            for p in model.parameters():
                p.zero_grad()
            loss(model(x[start:start + batch]), y[start:start + batch])
            backward(loss.backward())
            optimizer.step(zero_grad=True)
    return [p.data.copy() for p in model.parameters()] + [b.copy() for _, b in model.named_buffers()]


@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_then_fit_again_is_bit_for_bit_the_loop_of_its_steps(kind: str, seed: int) -> None:
    x, y = data(kind, seed, 10)
    model, loss = BUILDERS[kind](seed, 4), md.CrossEntropyLoss()
    optimizer = md.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # (the second fit starts from released caches)
        model.fit(x, y, loss=loss, optimizer=optimizer, batch_size=4, shuffle=False, verbose=0)
        assert cached_arrays(*model.layers(), loss) == cached_arrays(md.CrossEntropyLoss())
    got = [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]
    expected = manual(lambda: BUILDERS[kind](seed, 4), x, y, 2, 4)
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("kind", ["mlp", "cnn", "encoder"])
def test_predict_evaluate_and_a_call_after_fit_work(kind: str) -> None:
    x, y = data(kind, 5, 12)
    model = BUILDERS[kind](5, 4)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=5, rng=0,
              verbose=0)
    twin = copy.deepcopy(model).eval()
    expected = twin(x)
    np.testing.assert_array_equal(model.predict(x), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(x), expected)
    assert model.evaluate(x, y)["loss"] == md.CrossEntropyLoss()(expected, y)
    out = model(x)  # a training forward and its backward, as in a loop of one's own
    model.backward(np.ones_like(out))
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


# ------------------------------------------------------------------ backward after fit
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_backward_after_fit_says_there_is_no_forward(kind: str) -> None:
    x, y = data(kind, 6, 8)
    model, loss = BUILDERS[kind](6, 4), md.CrossEntropyLoss()
    model.fit(x, y, loss=loss, optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4, rng=0, verbose=0)
    with pytest.raises(md.BackwardBeforeForwardError, match=AFTER_FIT):
        model.backward(np.ones((4, 3)))
    with pytest.raises(md.BackwardBeforeForwardError, match=AFTER_FIT):
        model.backward_params(np.ones((4, 3)))
    with pytest.raises(md.BackwardBeforeForwardError,
                       match=r"^CrossEntropyLoss\.backward called before forward: there is no loss to differentiate"):
        loss.backward()


def test_attention_weights_after_fit_say_why_there_are_none() -> None:
    x, y = data("encoder", 7, 8)
    model = encoder(7, 4)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4, rng=0,
              verbose=0)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"attention_weights: no forward has run yet \(or a fit "
                                                            r"returned since"):
        _ = model[0].self_attn.attention_weights
    model.predict(x[:3])
    assert model[0].self_attn.attention_weights.shape == (3, 2, 4, 4)


# ------------------------------------------------------------------ what fit keeps
def test_a_fit_that_raises_keeps_the_caches_of_the_batch_that_failed() -> None:
    x, y = data("mlp", 8, 12)
    x[9, 2] = np.nan  # (the third batch)
    model = mlp(8, 4)
    with pytest.raises(md.NonFiniteError):
        model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4,
                  shuffle=False, verbose=0)
    assert model[0]._x is not None and model[0]._x.shape == (4, 6)  # (the failing batch's first layer)
    assert model[4]._x is not None  # (the batch before, which the last layer saw)


def test_what_was_not_none_before_fit_or_holds_no_array_is_kept() -> None:
    class Lazy(md.Layer):
        """y = 2 x, its width found at its first forward; a workspace made at the first forward and a table of
        its own made in __init__, which it reuses."""

        def __init__(self) -> None:
            super().__init__()
            self._width: int | None = None
            self._table = np.arange(3.0)
            self._x: np.ndarray | None = None

        def forward(self, x: np.ndarray) -> np.ndarray:
            if self._width is None:
                self._width = x.shape[1]
            self._table = self._table + 0.0  # (rebound: not None before, kept)
            self._x = x
            return x * 2.0

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            self._require_cache(self._x)
            return grad_output * 2.0

    x, y = data("mlp", 9, 8)
    lazy = Lazy()
    model = md.Sequential(lazy, md.Dense(6, 3, rng=0))
    model(x[:2])  # a forward of one's own before fit: its cache is not fit's to let go of
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=8, rng=0,
              verbose=0)
    assert lazy._width == 6 and lazy._table is not None and lazy._x is not None and lazy._x.shape == (8, 6)
    assert model[1]._x is not None and model[1]._x.shape == (8, 6)  # (the last batch's, over the user's)

    fresh = Lazy()
    model = md.Sequential(fresh, md.Dense(6, 3, rng=0))
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=8, rng=0,
              verbose=0)
    # (a layer of one's own keeps its attributes: fit cannot tell its cache from state it set up; Dense's goes)
    assert fresh._width == 6 and fresh._table is not None and fresh._x is not None and model[1]._x is None


class ActNorm(md.Layer):
    """y = x + shift, the shift set up from the first batch it sees (-mean over the batch) and kept: a
    data-dependent initialisation in a plain attribute, None until then, as a forward cache is."""

    def __init__(self) -> None:
        super().__init__()
        self.shift: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.shift is None:
            self.shift = -x.mean(axis=0)
        out: np.ndarray = x + self.shift
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_layer_of_ones_own_keeps_the_state_its_first_forward_set_up(seed: int) -> None:
    x, y = data("mlp", seed, 12)
    norm = ActNorm()
    model = md.Sequential(norm, md.Dense(6, 3, rng=seed))
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4, rng=0,
              verbose=0)
    assert norm.shift is not None and model[1]._x is None  # (the built-in Dense's cache let go of)
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_array_equal(norm.shift, -x[order[:4]].mean(axis=0))  # the first batch's, still
    shift = norm.shift
    out = model.predict(x[:2])
    np.testing.assert_allclose(out, model[1](x[:2] + shift), rtol=1e-12)
    assert norm.shift is shift


def test_registered_buffers_and_the_optimizer_are_untouched() -> None:
    x, y = data("mlp", 10, 12)
    model = mlp(10, 4)
    optimizer = md.Adam(model.parameters(), lr=1e-2)
    model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=optimizer, batch_size=4, rng=0, verbose=0)
    norm = model[1]
    assert norm.running_mean is norm._buffers["running_mean"] and not np.array_equal(norm.running_mean, np.zeros(4))
    assert holds_array(optimizer.state)  # (Adam's moments: the optimizer is not fit's to clear)


class ScaledDense(md.Dense):
    """A subclass of a built-in layer (forward and backward minidl's) that sets up an input scale from the first
    batch it is called on, in an overridden ``__call__``, None until then."""

    scale: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.scale is None:
            self.scale = 1.0 / (x.std(axis=0) + 1e-8)
        out: np.ndarray = super().__call__(x * self.scale)
        return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_subclass_of_a_built_in_layer_keeps_its_attributes(seed: int) -> None:
    """Only minidl's own classes are let go of: the subclass's scale was set back to None (review rz D2), its
    Dense cache is kept with it (fit cannot tell which of a subclass's attributes are caches)."""
    rng = np.random.default_rng(seed)
    x, y = 10 * rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    layer = ScaledDense(3, 2, rng=seed)
    model = md.Sequential(layer, md.Tanh())
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=1e-3), batch_size=16, verbose=0)
    assert layer.scale is not None
    np.testing.assert_allclose(layer.scale, 1.0 / (x.std(axis=0) + 1e-8))
    assert layer._x is not None and model[1]._cache is None  # (the built-in Tanh's is let go of)
