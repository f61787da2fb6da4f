"""A call that fails leaves the model as it was: the layers that ran before the failure keep no moved
buffer (batch norm's running statistics), no advanced generator (dropout's) and no registration, outside
``fit`` too (``model(x)``, ``predict``, ``evaluate``), in every container and nesting, and the error goes on
unchanged.  Only the outermost call saves, and ``fit``'s own per-batch save covers its calls;
``model.forward(x)`` called directly saves nothing itself (its parts' calls each save their own)."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md

SEEDS = [0, 1, 2]


class Counter(md.Layer):
    """Counts its calls in a buffer, in place (``+=``), and scales by a draw of its generator: both on every
    call, in eval mode too."""

    single_input = True

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.register_buffer("calls", np.zeros((), dtype=np.int64))
        self.rng = np.random.default_rng(seed)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self._scale = 1.0 + 0.1 * self.rng.standard_normal()
        return x * self._scale

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self._scale


class Picky(md.Layer):
    """Refuses a batch of 3 rows (``error``); passes any other through."""

    single_input = True

    def __init__(self, error: type[Exception] = md.ShapeError) -> None:
        super().__init__()
        self.error = error

    def forward(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 3:
            raise self.error("Picky: refuses a batch of 3 rows")
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


class SelfRefusing(Counter):
    """Moves its own buffer and generator, then refuses a batch of 3 rows."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = super().forward(x)
        if len(x) == 3:
            raise md.ShapeError("SelfRefusing: refuses a batch of 3 rows")
        return y


class Net(md.Model):
    """A model of one's own calling its parts."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.encoder = md.Sequential(md.BatchNorm1d(4), md.Dropout(0.5, rng=seed))
        self.count = Counter(seed + 10)
        self.head = md.Dense(4, 2, rng=seed)
        self.check = Picky()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.check(self.head(self.count(self.encoder(x))))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        g = self.head.backward(self.check.backward(grad_output))
        return self.encoder.backward(self.count.backward(g))


class Pair(md.Layer):
    """A layer (not a Model) of one's own holding layers."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.first = md.Sequential(md.BatchNorm1d(4), Counter(seed), md.Dropout(0.3, rng=seed))
        self.second = Picky()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.second(self.first(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.first.backward(self.second.backward(grad_output))


def _stateful(seed: int) -> list[md.Layer]:
    return [md.BatchNorm1d(4), md.Dropout(0.5, rng=seed), Counter(seed + 5)]


def _transformer(seed: int) -> md.Layer:
    blocks = [md.TransformerEncoderLayer(8, 2, 16, dropout=0.3, rng=seed + i) for i in range(2)]
    return md.TransformerEncoder(*blocks, norm=Picky())


#: name -> (build(seed), the shape of a good batch: 4 rows; the bad one has 3, which Picky refuses)
BUILDS: dict[str, tuple[Callable[[int], md.Layer], tuple[int, ...]]] = {
    "Sequential": (lambda s: md.Sequential(*_stateful(s), md.Dense(4, 2, rng=s), Picky()), (4, 4)),
    "nested Sequential": (lambda s: md.Sequential(md.Sequential(*_stateful(s)),
                                                  md.Sequential(md.Dense(4, 4, rng=s), md.Sequential(Picky()))),
                          (4, 4)),
    "Residual": (lambda s: md.Residual(md.Sequential(*_stateful(s), md.Dense(4, 4, rng=s), Picky())), (4, 4)),
    "Sequential of Residuals": (lambda s: md.Sequential(md.Residual(md.Sequential(*_stateful(s))),
                                                        md.Residual(md.Sequential(md.Dense(4, 4, rng=s), Picky()))),
                                (4, 4)),
    "Stack": (lambda s: md.Stack(*_stateful(s), md.Dense(4, 3, rng=s), Picky()), (4, 4)),
    "Bidirectional": (lambda s: md.Bidirectional(
        md.Sequential(Counter(s), md.Dropout(0.5, rng=s), md.LSTM(4, 3, rng=s)),
        md.Sequential(Counter(s + 1), md.LSTM(4, 3, rng=s + 1), Picky())), (4, 5, 4)),
    "TransformerEncoder": (_transformer, (4, 5, 8)),
    "Model of one's own": (Net, (4, 4)),
    "Sequential holding a Model of one's own": (lambda s: md.Sequential(Counter(s), Net(s)), (4, 4)),
}


def _snapshot(model: md.Layer) -> dict[str, Any]:
    return {key: value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)
            for key, value in model.state_dict(generators=True).items()}


def _assert_same_state(model: md.Layer, other: md.Layer) -> None:
    """Bit-equal state dicts (buffers, parameters, generators' states), and the same next draws of each
    generator (drawn from copies)."""
    a, b = _snapshot(model), _snapshot(other)
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert a[key].tobytes() == b[key].tobytes(), key
        else:
            assert a[key] == b[key], key
    draws = [copy.deepcopy(g).random(5) for _, g in model.named_generators()]
    fresh = [copy.deepcopy(g).random(5) for _, g in other.named_generators()]
    assert len(draws) == len(fresh) and all(np.array_equal(d, f) for d, f in zip(draws, fresh, strict=True))


def _inputs(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(100 + seed)
    return rng.standard_normal(shape), rng.standard_normal((3, *shape[1:])), rng.standard_normal(shape)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(BUILDS))
def test_a_failed_call_leaves_the_model_as_a_fresh_model_after_the_same_good_calls(name: str, seed: int) -> None:
    build, shape = BUILDS[name]
    model, fresh = build(seed), build(seed)
    first, bad, after = _inputs(shape, seed)
    model(first)  # a good call first: the state to keep is not the initial one
    fresh(first)
    with pytest.raises(md.ShapeError, match="Picky: refuses a batch of 3 rows"):
        model(bad)
    _assert_same_state(model, fresh)
    np.testing.assert_array_equal(model(after), fresh(after))  # the next good call as if none had failed
    _assert_same_state(model, fresh)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_of_ones_own_holding_layers_called_as_layer_x(seed: int) -> None:
    model, fresh = Pair(seed), Pair(seed)
    first, bad, after = _inputs((4, 4), seed)
    model(first)
    fresh(first)
    with pytest.raises(md.ShapeError) as caught:
        model(bad)
    assert str(caught.value) == "Pair layer 'second': Picky: refuses a batch of 3 rows"
    _assert_same_state(model, fresh)
    np.testing.assert_array_equal(model(after), fresh(after))


def test_the_error_goes_on_unchanged() -> None:
    """The reviewer's example: the same exception, with the same message (the path to the layer), and the
    buffers and the generator as before."""
    x = np.random.default_rng(0).standard_normal((8, 4))
    model = md.Sequential(md.BatchNorm1d(4), md.Dropout(0.5, rng=0), md.Dense(5, 2, rng=0))
    fresh = md.Sequential(md.BatchNorm1d(4), md.Dropout(0.5, rng=0), md.Dense(5, 2, rng=0))
    with pytest.raises(md.ShapeError) as caught:
        model(x)
    assert type(caught.value) is md.ShapeError
    assert str(caught.value) == ("Sequential layer '2': Dense(5 -> 2): expected input of shape (N, ..., 5), "
                                 "got shape (8, 4)")
    _assert_same_state(model, fresh)
    np.testing.assert_array_equal(model[0].running_mean, np.zeros(4))
    assert int(model[0].num_batches_tracked) == 0

    residual = md.Residual(md.Sequential(md.BatchNorm1d(4), md.Dense(4, 3, rng=0)))
    with pytest.raises(md.ShapeError, match=r"^Residual: the block's output has shape \(8, 3\) but the input"):
        residual(x)
    _assert_same_state(residual, md.Residual(md.Sequential(md.BatchNorm1d(4), md.Dense(4, 3, rng=0))))

    net = Net(0)
    with pytest.raises(md.ShapeError) as caught:
        net(np.ones((3, 4)))
    assert str(caught.value) == "Net layer 'check': Picky: refuses a batch of 3 rows"
    _assert_same_state(net, Net(0))


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_any_exception_is_undone_and_goes_on_as_raised(error: type[BaseException]) -> None:
    model = md.Sequential(*_stateful(3), Picky(error))  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        model(np.ones((3, 4)))
    assert type(caught.value) is error and str(caught.value) == "Picky: refuses a batch of 3 rows"
    _assert_same_state(model, md.Sequential(*_stateful(3), Picky()))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_that_fails_after_moving_its_own_state_is_restored(seed: int) -> None:
    layer, fresh = SelfRefusing(seed), SelfRefusing(seed)
    x = np.ones((4, 2))
    layer(x)
    fresh(x)
    calls = layer.calls
    with pytest.raises(md.ShapeError, match=r"^SelfRefusing: refuses a batch of 3 rows$"):
        layer(np.ones((3, 2)))
    assert layer.calls is calls and int(calls) == 1  # the same array, its value put back in place
    _assert_same_state(layer, fresh)
    np.testing.assert_array_equal(layer(x), fresh(x))


def test_batch_norm_refuses_before_it_moves_its_statistics() -> None:
    """Its own checks (a constant channel's variance that would overflow aside, the input itself) come
    before the update: called alone, or by forward, a refused input changes nothing."""
    bn = md.BatchNorm1d(3)
    x = np.random.default_rng(0).standard_normal((5, 3))
    x[2, 1] = np.nan
    for call in (bn, bn.forward):
        with pytest.raises(md.MinidlError):
            call(x)
        _assert_same_state(bn, md.BatchNorm1d(3))
    with pytest.raises(md.ShapeError, match="more than 1 value per channel"):
        bn.forward(np.ones((1, 3)))
    _assert_same_state(bn, md.BatchNorm1d(3))


def test_a_registration_made_by_a_failed_call_is_undone() -> None:
    class LazyRng(md.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.rng = None

        def forward(self, x: np.ndarray) -> np.ndarray:
            if self.rng is None:
                self.rng = np.random.default_rng(0)
                self.register_buffer("seen", np.zeros(x.shape[1]))
            self.rng.standard_normal(1)
            return x

    model = md.Sequential(LazyRng(), Picky())
    with pytest.raises(md.ShapeError):
        model(np.ones((3, 2)))
    lazy = model[0]
    assert lazy.rng is None and "rng" not in lazy._generators and "seen" not in lazy._buffers
    assert not hasattr(lazy, "seen")
    model(np.ones((4, 2)))  # now it registers
    assert isinstance(lazy.rng, np.random.Generator) and set(lazy._buffers) == {"seen"}


class Holder(md.Layer):
    """Adds 1 to its buffer ``table`` in place (given: shared)."""

    def __init__(self, table: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("table", np.arange(3.0) if table is None else table)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.table += 1.0
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_shared_buffer_is_put_back_shared_with_its_values() -> None:
    first = Holder()
    model = md.Sequential(first, Holder(first.table), md.Dense(2, 1, rng=0), Picky())
    table = first.table
    with pytest.raises(md.ShapeError):
        model(np.ones((3, 2)))
    assert model[0].table is table and model[1].table is table and model[1]._buffers["table"] is table
    np.testing.assert_array_equal(table, np.arange(3.0))


def test_a_refused_batch_in_fit_keeps_a_shared_buffer_shared() -> None:
    first = Holder()
    model = md.Sequential(first, Holder(first.table), md.Dense(2, 1, rng=0))
    x, y = np.ones((4, 2)), np.full((4, 1), np.inf)
    with pytest.raises(md.NonFiniteError):
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), batch_size=4, verbose=0)
    assert model[0].table is model[1].table
    np.testing.assert_array_equal(model[1].table, np.arange(3.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_predict_and_evaluate_refused_at_a_later_batch_leave_the_model_as_before(seed: int) -> None:
    """Their batches run in eval mode, where a Counter still counts and draws: the batch refused after
    an accepted one leaves neither's change."""
    def build() -> md.Sequential:
        return md.Sequential(md.BatchNorm1d(4), Counter(seed), md.Dense(4, 2, rng=seed), Picky())

    model = build()
    x = np.random.default_rng(seed).standard_normal((7, 4))  # batches of 4 and 3
    with pytest.raises(md.ShapeError, match=r"^predict: samples 4\.\.6: Sequential layer '3': Picky: refuses"):
        model.predict(x, batch_size=4)
    _assert_same_state(model, build())
    with pytest.raises(md.ShapeError, match=r"^evaluate: samples 4\.\.6: Sequential layer '3': Picky: refuses"):
        model.evaluate(x, np.zeros((7, 2)), loss=md.MSELoss(), batch_size=4)
    _assert_same_state(model, build())
    fresh = build()
    np.testing.assert_array_equal(model.predict(x[:4]), fresh.predict(x[:4]))
    _assert_same_state(model, fresh)


def _count_saves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from minidl.side_state import SideState, Snapshot

    saves: list[int] = []
    original = SideState.save

    def save(self: SideState) -> Snapshot:
        saves.append(id(self))
        return original(self)

    monkeypatch.setattr(SideState, "save", save)
    return saves


def test_only_the_outermost_call_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    saves = _count_saves(monkeypatch)
    model = md.Sequential(md.Sequential(*_stateful(0)), md.Residual(md.Sequential(md.Dense(4, 4, rng=0))), Net(0))
    x = np.ones((4, 4))
    model(x)
    assert len(saves) == 1
    model.forward(x)  # called directly: saves nothing itself, its three parts' calls each save their own
    assert len(saves) == 1 + 3 and saves[0] not in saves[1:]
    model[2](x)  # a part called alone saves its own
    assert len(saves) == 5 and saves[4] == saves[3]
    model.predict(np.ones((10, 4)), batch_size=4)  # once for its three batches
    assert len(saves) == 6 and saves[5] == saves[0]


def test_fit_saves_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """fit's per-batch save covers its calls of the model: no second save per batch, also through a model
    of one's own; the validation after each epoch saves once per batch of it (one call each)."""
    saves = _count_saves(monkeypatch)
    model = Net(0)
    x, y = np.random.default_rng(0).standard_normal((12, 4)), np.zeros((12, 2))
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), batch_size=4, epochs=2,
              verbose=0)
    assert len(saves) == 2 * 3
    del saves[:]
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.01), batch_size=4, epochs=1,
              verbose=0, validation_data=(x, y), validation_batch_size=8)
    assert len(saves) == 1 + 3 + 2  # the validation before training, the batches, the validation after


def test_the_saved_state_is_not_pickled_nor_deep_copied() -> None:
    model = md.Sequential(*_stateful(0), md.Dense(4, 2, rng=0))
    model(np.ones((4, 4)))
    assert "_side_state" in model.__dict__
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert "_side_state" not in twin.__dict__
        _assert_same_state(twin, model)
        with pytest.raises(md.ShapeError):
            twin(np.ones((4, 5)))
        _assert_same_state(twin, model)


def test_a_model_let_go_of_is_freed_at_once() -> None:
    """What a call keeps in the model (``_side_state``) refers to it weakly: no reference cycle, so the model
    (e.g. the summary's copy) is freed when the last reference goes, not at the next garbage collection."""
    model = md.Sequential(*_stateful(0), md.Dense(4, 2, rng=0))
    model(np.ones((4, 4)))
    with pytest.raises(md.ShapeError):
        model(np.ones((4, 5)))
    gone = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert gone() is None
    finally:
        gc.enable()


def test_forward_called_directly_saves_nothing_itself_its_parts_calls_each_save_their_own() -> None:
    """Documented: ``model.forward(x)`` is not guarded (``model(x)`` is): the parts that ran before the
    failing one keep their changes, as if called one by one; the failing part's own call is put back."""
    def build() -> md.Sequential:
        return md.Sequential(md.BatchNorm1d(4), Counter(0), SelfRefusing(1))

    model, by_hand = build(), build()
    bad = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(md.ShapeError) as caught:
        model.forward(bad)
    assert str(caught.value) == "Sequential layer '2': SelfRefusing: refuses a batch of 3 rows"
    by_hand[1](by_hand[0](bad))  # the two parts before it, each a call of its own that succeeded
    _assert_same_state(model, by_hand)
    assert int(model[1].calls) == 1 and int(model[2].calls) == 0  # the failing part's own change put back
    with pytest.raises(md.ShapeError):
        model(bad)  # called: nothing changed
    _assert_same_state(model, by_hand)

    net = Net(0)  # a model of one's own: the same
    with pytest.raises(md.ShapeError, match=r"^Picky: refuses a batch of 3 rows$"):
        net.forward(np.ones((3, 4)))
    assert int(net.count.calls) == 1 and int(net.encoder[0].num_batches_tracked) == 1


class Keyword(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d = md.Dense(4, 2, rng=0)

    def forward(self, inputs: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return self.d(inputs) * scale

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.d.backward(grad_output)


class Several(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d = md.Dense(4, 2, rng=0)

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return sum((self.d(x) for x in xs), np.zeros((1, 2)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.d.backward(grad_output)


def test_a_model_s_forward_is_its_own_keyword_and_star_args_calls_work() -> None:
    """A review's case: ``forward`` wrapped to save named its input ``x`` and required one argument, so a
    keyword call or a ``*xs`` forward raised TypeError."""
    x = np.ones((3, 4))
    d = md.Dense(4, 2, rng=0)(x)
    np.testing.assert_array_equal(Keyword().forward(inputs=x), d)
    np.testing.assert_array_equal(Keyword().forward(inputs=x, scale=2.0), 2.0 * d)
    np.testing.assert_array_equal(Several().forward(), np.zeros((1, 2)))
    np.testing.assert_array_equal(Several().forward(x, x), 2.0 * d)
    assert Keyword.forward.__qualname__ == "Keyword.forward" and Several.forward.__qualname__ == "Several.forward"
    assert "__wrapped__" not in Keyword.forward.__dict__


class Gate(md.Layer):
    """Passes its input on; in the thread named 'A' it waits for ``go``, then refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.go = threading.Event(), threading.Event()

    def forward(self, x: np.ndarray) -> np.ndarray:
        if threading.current_thread().name == "A":
            self.inside.set()
            assert self.go.wait(10)
            raise ValueError("A refuses")
        if len(x) == 3:
            raise ValueError("refuses a batch of 3 rows")
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def _in_thread_a(model: md.Layer, gate: Gate, x: np.ndarray) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def call() -> None:
        try:
            model(x)
        except ValueError as error:
            raised.append(error)

    thread = threading.Thread(target=call, name="A")
    thread.start()
    assert gate.inside.wait(10)  # A is inside its call, its Holder's change made
    return thread, raised


@pytest.mark.parametrize("other", ["fails", "succeeds"])
def test_calls_in_two_threads_each_put_back_what_they_saved(other: str) -> None:
    """The review's p2: one side state per layer, shared by the threads, so another thread's call in the
    meantime replaced what a failed call put back (or let go of it: the failed call's change stayed).  Each
    call now puts back its own snapshot: the model as at that call's start."""
    gate = Gate()
    model = md.Sequential(Holder(), md.BatchNorm1d(3), gate)
    x = np.random.default_rng(0).standard_normal((4, 3))
    table, mean = model[0].table, model[1].running_mean
    thread, raised = _in_thread_a(model, gate, x + 10.0)  # A: Holder and batch norm moved, then it waits
    if other == "fails":
        with pytest.raises(ValueError, match="3 rows"):
            model(x[:3])  # the main thread's call, failing after moving them again
        np.testing.assert_array_equal(model[0].table, np.arange(3.0) + 1.0)  # as at its start: A's change
    else:
        model(x)
    gate.go.set()
    thread.join(10)
    assert [str(e) for e in raised] == ["A refuses"]
    # A puts back what it saved: the model as at its start (a call of the same model in another thread in the
    # meantime, if any, is undone with it: calls of one model at once are not isolated)
    assert model[0].table is table and model[1].running_mean is mean
    np.testing.assert_array_equal(table, np.arange(3.0))
    np.testing.assert_array_equal(mean, np.zeros(3))
    assert int(model[1].num_batches_tracked) == 0


def _count_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The id of each layer walked (``layer.layers()``, which a side state's walk calls) from now on."""
    walks: list[int] = []
    original = md.Layer.layers

    def layers(self: md.Layer) -> Any:
        walks.append(id(self))
        return original(self)

    monkeypatch.setattr(md.Layer, "layers", layers)
    return walks


class Functional(md.Layer):
    """A forward making fresh layers (functional style)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return md.Dense(x.shape[1], x.shape[1], rng=0)(md.ReLU()(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_fresh_layers_do_not_make_a_model_walk_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review's D3: every fresh layer anywhere (its ``__init__``, its registrations) moved the count, so
    a forward making layers (or any code elsewhere) made every model walk again and copy its registries at
    each save, also in fit."""
    walks = _count_walks(monkeypatch)
    model = md.Sequential(md.BatchNorm1d(4), Functional(), md.Dropout(0.5, rng=0))
    other = md.Sequential(md.Dense(4, 4, rng=0), md.BatchNorm1d(4))
    x = np.ones((4, 4))
    del walks[:]
    model(x)
    other(x)
    assert (walks.count(id(model)), walks.count(id(other))) == (1, 1)
    for _ in range(3):
        model(x)
        md.Sequential(md.Dense(4, 4, rng=1), md.BatchNorm1d(4), md.Dropout(0.5, rng=1))  # fresh, unused
        other(x)
    assert (walks.count(id(model)), walks.count(id(other))) == (1, 1)

    def fit_walks(epochs: int) -> int:
        """The walks of the model by a fit of 2 batches an epoch."""
        del walks[:]
        model.fit(x, np.zeros((4, 4)), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.0),
                  batch_size=2, epochs=epochs, verbose=0)
        return walks.count(id(model))

    assert fit_walks(3) == fit_walks(1)  # none per batch (the review's +8% of a fit)


def test_a_registration_into_a_walked_model_makes_it_walk_again(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = _count_walks(monkeypatch)
    model = md.Sequential(md.Sequential(md.Dense(4, 4, rng=0)), md.BatchNorm1d(4))
    x = np.ones((4, 4))
    del walks[:]
    model(x)
    assert walks.count(id(model)) == 1
    inner = md.Sequential()  # fresh: its registrations count nothing...
    inner.append(Counter(0))
    model(x)
    assert walks.count(id(model)) == 1
    model[0].append(inner)  # ...until it goes into the walked model (a registration in one of its layers)
    model(x)
    assert walks.count(id(model)) == 2 and int(inner[0].calls) == 1
    inner[0].register_buffer("seen", np.zeros(1))  # a registration in a layer walked now
    model(x)
    assert walks.count(id(model)) == 3
    md.BatchNorm1d.__init__(model[1], 4)  # __init__ run again on a walked layer
    model(x)
    assert walks.count(id(model)) == 4
    model(x)
    assert walks.count(id(model)) == 4

    with pytest.raises(md.ShapeError):  # and the registrations made since are put back by a failed call
        model(np.ones((3, 5)))
    assert [type(layer).__name__ for layer in model.layers()] == ["Sequential", "Sequential", "Dense",
                                                                  "Sequential", "Counter", "BatchNorm1d"]


def test_the_per_thread_flag_is_put_back_to_its_previous_value() -> None:
    """A review's S3: fit (and a call's save) set the flag back to False, not to what it was: a fit run inside
    a call that saved (a layer training a part of itself in its forward) made the rest of that call save
    again, its save no longer the outermost."""
    from minidl.side_state import calls

    model = md.Sequential(md.BatchNorm1d(4), md.Dense(4, 2, rng=0))
    x, y = np.ones((4, 4)), np.zeros((4, 2))
    assert calls.saved is False
    calls.saved = True  # as inside a call that saved
    try:
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.0), batch_size=2, verbose=0)
        assert calls.saved is True
        with pytest.raises(md.NonFiniteError):
            model.fit(x, np.full((4, 2), np.inf), loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.0),
                      batch_size=2, verbose=0)
        assert calls.saved is True
    finally:
        calls.saved = False
    with pytest.raises(KeyboardInterrupt):
        md.Sequential(md.BatchNorm1d(4), Picky(KeyboardInterrupt))(np.ones((3, 4)))  # type: ignore[arg-type]
    assert calls.saved is False


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gradient_checker_saves_nothing_on_its_copies(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """The checker calls deep copies of the model thousands of times: a failed call's putting back is not
    needed there (its own snapshot covers the user's objects), and saving cost it 12% (review rs2 D2). The
    model is left as it was, and the flag as it was found."""
    from minidl import side_state

    saves = _count_saves(monkeypatch)
    model = md.Sequential(md.Dense(4, 4, rng=seed), md.BatchNorm1d(4), md.Dropout(0.3, rng=seed), md.Dense(4, 2, rng=1))
    before = model.state_dict()
    rng = np.random.default_rng(seed)
    report = md.GradientChecker(model, md.MSELoss(), inputs=rng.normal(size=(6, 4)),  # type: ignore[arg-type]
                                targets=rng.normal(size=(6, 2))).run()
    assert report.passed and saves == [] and side_state.calls.saved is False
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    model(np.ones((3, 4)))  # the user's own calls save again
    assert len(saves) == 1


# ------------------------------------------------------------------ eval mode: built-in layers saved for nothing
# every built-in layer kind with a buffer or a generator, and an input it takes: in eval mode its forward moves
# neither (what SideState.save relies on to copy nothing for an eval-mode call of built-in layers)
EVAL_STATEFUL: dict[str, tuple[Callable[[int], md.Layer], tuple[int, ...]]] = {
    "BatchNorm1d": (lambda s: md.BatchNorm1d(4), (6, 4)),
    "BatchNorm1d momentum=None": (lambda s: md.BatchNorm1d(4, momentum=None), (6, 4)),
    "BatchNorm2d": (lambda s: md.BatchNorm2d(3), (2, 3, 4, 4)),
    "InstanceNorm2d tracked": (lambda s: md.InstanceNorm2d(3, track_running_stats=True), (2, 3, 4, 4)),
    "Dropout": (lambda s: md.Dropout(0.5, rng=s), (6, 4)),
    "Dropout1d": (lambda s: md.Dropout1d(0.5, rng=s), (2, 3, 5)),
    "Dropout2d": (lambda s: md.Dropout2d(0.5, rng=s), (2, 3, 4, 4)),
    "AlphaDropout": (lambda s: md.AlphaDropout(0.5, rng=s), (6, 4)),
    "FeatureAlphaDropout": (lambda s: md.FeatureAlphaDropout(0.5, rng=s), (2, 3, 4, 4)),
    "RReLU": (lambda s: md.RReLU(rng=s), (6, 4)),
    "MultiHeadAttention": (lambda s: md.MultiHeadAttention(4, 2, dropout=0.5, rng=s), (2, 3, 4)),
    "TransformerEncoderLayer": (lambda s: md.TransformerEncoderLayer(4, 2, 8, dropout=0.5, rng=s), (2, 3, 4)),
}


def _moving_state(layer: md.Layer) -> list[Any]:
    return [b.copy() for _, b in layer.named_buffers() if b is not None] + \
        [g.bit_generator.state for _, g in layer.named_generators()]


@pytest.mark.parametrize("kind", list(EVAL_STATEFUL))
@pytest.mark.parametrize("seed", [0, 1])
def test_a_built_in_layer_in_eval_mode_moves_no_buffer_or_generator(kind: str, seed: int) -> None:
    make, shape = EVAL_STATEFUL[kind]
    layer = make(seed)
    rng = np.random.default_rng(seed)
    layer(rng.normal(size=shape))  # (in training: statistics moved, lazy registrations made)
    assert any(True for _ in layer.named_buffers()) or any(True for _ in layer.named_generators())
    layer.eval()
    before = _moving_state(layer)
    for _ in range(3):
        layer(rng.normal(size=shape))
    after = _moving_state(layer)
    assert len(after) == len(before) and all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(before, after, strict=True))


def test_every_built_in_layer_with_a_buffer_or_generator_is_in_the_eval_list() -> None:
    """A new built-in kind holding one must be checked above before eval-mode calls skip saving it."""
    import inspect

    checked = {type(EVAL_STATEFUL[kind][0](0)) for kind in EVAL_STATEFUL}
    built = 0
    for name in dir(md):
        cls = getattr(md, name)
        if not (inspect.isclass(cls) and issubclass(cls, md.Layer)) or cls in checked:
            continue
        for args in [(), (4,), (4, 4), (4, 2, 8)]:
            try:
                layer = cls(*args)
            except Exception:  # (other arguments: not built here)
                continue
            built += 1
            stateful = [type(sub) for _, sub in layer.named_layers() if sub._buffers or sub._generators]
            assert set(stateful) <= checked, f"{name}: holds {stateful}, not checked in eval mode"
            break
    assert built > 40


def test_an_eval_mode_call_of_built_in_layers_copies_nothing_and_ones_own_layer_is_saved() -> None:
    from minidl.side_state import state_of

    class OwnNoise(md.Layer):
        """Adds noise from its generator in either mode (a layer of one's own: saved in eval mode too)."""

        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(0)

        def forward(self, x: np.ndarray) -> np.ndarray:
            out: np.ndarray = x + self.rng.normal(size=x.shape)
            return out

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return grad_output

    model = md.Sequential(md.BatchNorm1d(4), md.Dropout(0.5, rng=0), md.Dense(4, 2, rng=0))
    state = state_of(model)
    assert state is not None
    trained = state.save()
    assert len(trained.values) == 3 and len(trained.generators) == 1
    model.eval()
    evaluated = state.save()
    assert evaluated.values == () and evaluated.generators == ()
    own = md.Sequential(md.BatchNorm1d(4), OwnNoise()).eval()
    own_state = state_of(own)
    assert own_state is not None
    saved = own_state.save()  # (a layer of one's own anywhere: the whole model saved, in eval mode too)
    assert len(saved.values) == 3 and len(saved.generators) == 1
    with pytest.raises(md.ShapeError):
        own(np.ones((3, 5)))  # BatchNorm1d(4) refuses: nothing moved, nothing to put back
    x = np.ones((3, 4))
    first = own(x)
    other = md.Sequential(md.BatchNorm1d(4), OwnNoise()).eval()
    np.testing.assert_array_equal(first, other(x))


class SwitchesToTrain(md.Layer):
    """Monte Carlo dropout at inference: switches its built-in parts to training inside its forward; ``fail``:
    a later part refuses, after they moved."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = md.Dropout(0.5, rng=0)
        self.bn = md.BatchNorm1d(4)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.drop.train()
        self.bn.train()
        try:
            y = self.bn(self.drop(x))
        finally:
            self.drop.eval()
            self.bn.eval()
        raise ValueError(f"a later part refuses {y.shape}")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


class MovesItsParts(md.Layer):
    """Draws from its built-in child's generator and adapts its batch norm's mean in place, in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = md.Dropout(0.1, rng=0)
        self.bn = md.BatchNorm1d(4)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = x + 0.01 * self.drop.rng.standard_normal(x.shape)
        self.bn.running_mean += 0.1 * x.mean(axis=0)
        raise ValueError("refuses")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


class AdaptingBatchNorm(md.BatchNorm1d):
    """A subclass of a built-in layer whose eval forward moves a buffer through a helper it overrides."""

    def _check_buffers(self) -> None:
        super()._check_buffers()
        self.running_mean *= 0.5


@pytest.mark.parametrize("kind", ["switches to train", "moves its parts", "subclass of a built-in"])
@pytest.mark.parametrize("seed", [0, 1])
def test_an_eval_mode_call_with_code_of_ones_own_is_put_back_whole(kind: str, seed: int) -> None:
    """The eval-mode saving shortcut is for models of minidl's classes only: user code in the call may move a
    built-in layer's state in eval mode (review rz D1: each case was left changed)."""
    model: md.Layer
    if kind == "switches to train":
        model = SwitchesToTrain()
    elif kind == "moves its parts":
        model = MovesItsParts()
    else:
        norm = AdaptingBatchNorm(4)
        norm.running_mean[:] = 1.0
        model = md.Sequential(norm, md.Dense(3, 2, rng=seed))  # (Dense refuses 4 features)
    model.eval()
    before = {k: copy.deepcopy(v) for k, v in model.state_dict(generators=True).items()}
    with pytest.raises((ValueError, md.ShapeError)):
        model(np.random.default_rng(seed).standard_normal((8, 4)))
    after = model.state_dict(generators=True)
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert np.array_equal(after[key], value) if isinstance(value, np.ndarray) else after[key] == value, key
