"""Session 31's review of the Layer/Model API by a PyTorch user: a buffer over a plain attribute, ``fit`` on a
model with nothing to train, a ``Sequential`` from a mapping of names, and the porting hint after edits."""

from __future__ import annotations

import collections
import copy
import pickle
import warnings

import numpy as np
import pytest

import minidl as md
from minidl.porting import state_dict_from_torch

# ------------------------------------------------------------------ register_buffer over an attribute


class Holder(md.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_buffer_over_a_plain_attribute_is_refused_and_the_attribute_kept() -> None:
    layer = Holder()
    layer.plain = 5
    with pytest.raises(md.RegistrationError) as info:
        layer.register_buffer("plain", np.zeros(1))
    assert isinstance(info.value, KeyError)
    assert str(info.value) == ("Holder.register_buffer: attribute 'plain' already exists (a plain attribute (int)), "
                               "as PyTorch refuses it too; a buffer does not replace it: delete it first "
                               "(del self.plain) or choose another name")
    assert layer.plain == 5 and dict(layer.named_buffers()) == {} and "plain" not in layer.state_dict()


def test_a_buffer_over_an_attribute_set_to_none_or_a_generator_is_refused() -> None:
    layer = Holder()
    layer.stats = None
    with pytest.raises(md.RegistrationError, match=r"attribute 'stats' already exists \(a plain attribute "
                                                   r"\(NoneType\)\)"):
        layer.register_buffer("stats", np.zeros(1))
    layer.rng = np.random.default_rng(0)
    with pytest.raises(md.RegistrationError, match=r"attribute 'rng' already exists \(a random generator\)"):
        layer.register_buffer("rng", np.zeros(1))
    assert dict(layer.named_generators()) == {"rng": layer.rng}


def test_a_buffer_after_the_attribute_is_deleted_and_a_buffer_registered_again_work() -> None:
    layer = Holder()
    layer.plain = 5
    del layer.plain
    layer.register_buffer("plain", np.zeros(1))
    layer.register_buffer("plain", np.ones(2), persistent=False)  # again: the new value
    assert np.array_equal(layer.plain, np.ones(2)) and list(dict(layer.named_buffers())) == ["plain"]
    assert "plain" not in layer.state_dict()
    layer.register_buffer("plain", None)
    layer.register_buffer("plain", np.zeros(3))
    assert list(layer.state_dict()) == ["plain"]


def test_init_run_again_registers_its_buffers_again() -> None:
    norm = md.BatchNorm1d(3)
    norm.running_mean[:] = 2.0
    md.BatchNorm1d.__init__(norm, 4)
    assert norm.running_mean.shape == (4,) and np.array_equal(norm.running_mean, np.zeros(4))
    assert list(norm.state_dict()) == list(md.BatchNorm1d(4).state_dict())


# ------------------------------------------------------------------ fit with nothing to train


class ScaledMSE(md.Loss):
    """``s * mean((y - t)^2)`` with a trainable scale ``s`` of its own."""

    def __init__(self) -> None:
        self.s = md.Parameter(np.array([1.5]))

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._d = y_pred - y_true
        return float(self.s.data[0] * np.mean(self._d ** 2))

    def backward(self) -> np.ndarray:
        if self.s.requires_grad:
            self.s.grad += np.array([np.mean(self._d ** 2)])
        out: np.ndarray = self.s.data[0] * 2.0 * self._d / self._d.size
        return out


# what the refusals end with: how to score the model or refresh its statistics without training it
INSTEAD = ("; to score the model without training it, model.evaluate(x, y, loss=...); to refresh running "
           "statistics (a batch norm's) without training, model.train() then model(xb) for each batch")


def _three_layers() -> tuple[md.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    model = md.Sequential(md.Dense(3, 4, rng=0), md.ReLU(), md.Dense(4, 2, rng=1))
    return model, rng.normal(size=(16, 3)), rng.normal(size=(16, 2))


@pytest.mark.parametrize("how", ["function", "method"])
def test_fit_with_the_whole_model_frozen_is_refused_before_anything_changes(how: str) -> None:
    model, x, y = _three_layers()
    model.requires_grad_(False)
    optimizer = md.Adam(model.parameters(), lr=0.1)
    before = model.state_dict()
    with pytest.raises(ValueError) as info:
        if how == "function":
            md.fit(model, x, y, loss=md.MSELoss(), optimizer=optimizer, verbose=0)
        else:
            model.fit(x, y, loss=md.MSELoss(), optimizer=optimizer, verbose=0)
    assert str(info.value) == (
        "fit: no parameter of the model requires a gradient (its 2 parameters are all frozen, requires_grad=False), "
        "so fit would train nothing (PyTorch stops at backward: \"element 0 of tensors does not require grad\"): "
        "unfreeze the model with model.requires_grad_(True), or only the layers to train with "
        "layer.requires_grad_(True) (e.g. model[-1] of a Sequential), before fit" + INSTEAD)
    assert all(np.array_equal(value, before[key]) for key, value in model.state_dict().items())
    assert optimizer.state_dict()["state"] == md.Adam(model.parameters(), lr=0.1).state_dict()["state"]
    model.requires_grad_(True)  # unfrozen as the message says: it trains
    model.fit(x, y, loss=md.MSELoss(), optimizer=optimizer, verbose=0)
    assert not np.array_equal(model[0].W.data, before["0.W"])


def test_fit_with_part_of_the_model_frozen_trains_the_rest() -> None:
    model, x, y = _three_layers()
    model[0].requires_grad_(False)
    frozen, trained = model[0].W.data.copy(), model[2].W.data.copy()
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0, epochs=2)
    assert np.array_equal(model[0].W.data, frozen) and not np.array_equal(model[2].W.data, trained)


def test_fit_with_a_frozen_model_trains_the_loss_parameters_the_optimizer_holds() -> None:
    model, x, y = _three_layers()
    model.requires_grad_(False)
    loss = ScaledMSE()
    model.fit(x, y, loss=loss, optimizer=md.SGD([*model.parameters(), *loss.parameters()], lr=0.1), verbose=0)
    assert loss.s.data[0] != 1.5
    loss.s.requires_grad = False  # the loss's frozen too: nothing left
    with pytest.raises(ValueError, match=r"^fit: no parameter of the model requires a gradient \(its 2 parameters "
                                         r"are all frozen, requires_grad=False\), nor any of the loss ScaledMSE's "
                                         r"that the optimizer holds, so fit would train nothing"):
        model.fit(x, y, loss=loss, optimizer=md.SGD([*model.parameters(), *loss.parameters()], lr=0.1), verbose=0)


def test_fit_with_a_frozen_model_and_a_loss_parameter_the_optimizer_lacks_says_so_first() -> None:
    model, x, y = _three_layers()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match=r"the loss ScaledMSE holds trainable parameter\(s\) 's' that the optimizer "
                                         r"does not"):
        model.fit(x, y, loss=ScaledMSE(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0)


def test_fit_whose_optimizer_holds_only_frozen_parameters_of_a_trainable_model_is_refused() -> None:
    model, x, y = _three_layers()
    model[0].requires_grad_(False)
    optimizer = md.SGD(model[0].parameters(), lr=0.1, momentum=0.9)  # the frozen layer's only
    before, state = model.state_dict(), optimizer.state_dict()
    with pytest.raises(ValueError) as info:
        model.fit(x, y, loss=md.MSELoss(), optimizer=optimizer, verbose=0)
    assert str(info.value) == (
        "fit: every parameter of this model that the optimizer holds is frozen (requires_grad=False), so fit would "
        "train nothing; the trainable ones, '2.W', are not in it: build the optimizer on all of them, e.g. "
        "SGD(model.parameters(), ...), which skips the frozen ones" + INSTEAD)
    # nothing changed: the parameters, the optimizer's state (no step, no momentum buffer), the model's modes
    assert all(np.array_equal(value, before[key]) for key, value in model.state_dict().items())
    assert repr(optimizer.state_dict()) == repr(state) and model.training
    # an optimizer over frozen and trainable parameters alike trains the trainable ones
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0)


def _temperature_fit(model: md.Layer) -> tuple[ScaledMSE, dict[str, np.ndarray]]:
    """``model`` (frozen, or without parameters) fitted with an optimizer that holds only the loss's scale."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 3))
    loss, before = ScaledMSE(), model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no warning either: the loss's parameter is not foreign)
        history = md.fit(model, x, y, loss=loss, optimizer=md.SGD([loss.s], lr=0.1), epochs=3, batch_size=16,
                         shuffle=False, verbose=0)
    # one batch an epoch: s -= 0.1 * mean((model(x) - y)^2), the model unchanged
    error = float(np.mean((model(x) - y) ** 2))
    s = 1.5
    for epoch in range(3):
        assert history["loss"][epoch] == pytest.approx(s * error, rel=1e-12)
        s -= 0.1 * error
    assert loss.s.data[0] == pytest.approx(s, rel=1e-12)
    return loss, before


def test_fit_of_a_frozen_model_whose_optimizer_holds_only_the_loss_parameters_trains_them() -> None:
    model = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 3, rng=1))
    model.requires_grad_(False)  # temperature scaling: the model frozen, the loss's scale trained
    _, before = _temperature_fit(model)
    assert all(np.array_equal(value, before[key]) for key, value in model.state_dict().items())


def test_fit_of_a_model_without_parameters_whose_optimizer_holds_only_the_loss_parameters_trains_them() -> None:
    model = md.Sequential(md.Tanh())
    loss, _ = _temperature_fit(model)
    assert model.parameters() == [] and model.state_dict() == {}
    loss.s.requires_grad = False  # the loss's frozen too: the optimizer holds nothing to train
    with pytest.raises(ValueError, match=r"^fit: no parameter of the model requires a gradient \(it has none"):
        md.fit(model, np.zeros((4, 3)), np.zeros((4, 3)), loss=loss, optimizer=md.SGD([loss.s], lr=0.1), verbose=0)


@pytest.mark.parametrize(("epochs", "initial_epoch"), [(0, 0), (3, 3)])
def test_fit_with_nothing_to_train_and_no_epoch_to_train_is_not_refused(epochs: int, initial_epoch: int) -> None:
    model, x, y = _three_layers()
    model.requires_grad_(False)
    before = model.state_dict()
    history = model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=epochs,
                        initial_epoch=initial_epoch, verbose=0)
    assert history.epoch == [] and all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"^fit: no parameter of the model requires a gradient"):  # one epoch: refused
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=epochs + 1,
                  initial_epoch=initial_epoch, verbose=0)


# ------------------------------------------------------------------ Sequential(OrderedDict(...))


def _named() -> md.Sequential:
    return md.Sequential(collections.OrderedDict([("conv", md.Dense(3, 4, rng=0)), ("act", md.ReLU()),
                                                  ("head", md.Dense(4, 2, rng=1))]))


def test_sequential_of_a_mapping_names_its_layers_by_the_keys() -> None:
    model = _named()
    assert [name for name, _ in model.named_children()] == ["conv", "act", "head"]
    assert list(model.state_dict()) == ["conv.W", "head.W", "conv._layout", "head._layout"]
    assert model[0] is model.conv and model[-1] is model.head and len(model) == 3
    assert repr(model).splitlines()[1:4] == ["  (conv): Dense(in_features=3, out_features=4, bias=True)",
                                             "  (act): ReLU()", "  (head): Dense(in_features=4, out_features=2, "
                                             "bias=True)"]
    x = np.random.default_rng(0).normal(size=(5, 3))
    plain = md.Sequential(md.Dense(3, 4, rng=0), md.ReLU(), md.Dense(4, 2, rng=1))
    np.testing.assert_array_equal(model(x), plain(x))
    lines: list[str] = []
    model.summary(input_shape=(3,), print_fn=lines.append)
    assert any(line.startswith(" conv (Dense) ") for line in "\n".join(lines).splitlines())
    assert [name for name, _ in md.Sequential({"b": md.ReLU(), "a": md.Tanh()}).named_children()] == ["b", "a"]
    assert len(md.Sequential({})) == 0


def test_a_named_sequence_keeps_its_names_through_edits_slices_copies_and_porting() -> None:
    model = _named()
    assert [name for name, _ in model[1:].named_children()] == ["act", "head"]
    model.append(md.Tanh())
    model.insert(1, md.Identity())
    assert [name for name, _ in model.named_children()] == ["conv", "1", "act", "head", "0"]
    del model[2]
    assert [name for name, _ in model.named_children()] == ["conv", "1", "head", "0"]
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert [name for name, _ in other.named_children()] == ["conv", "1", "head", "0"]
    again = md.Sequential(collections.OrderedDict(model.named_children()))
    assert [name for name, _ in again.named_children()] == ["conv", "1", "head", "0"]
    rng = np.random.default_rng(0)
    torch_state = {"conv.weight": rng.normal(size=(4, 3)), "conv.bias": rng.normal(size=4),
                   "head.weight": rng.normal(size=(2, 4)), "head.bias": rng.normal(size=2)}
    ported = state_dict_from_torch(_named(), torch_state)
    assert list(ported) == ["conv.W", "head.W"]
    np.testing.assert_array_equal(ported["conv.W"][1:], torch_state["conv.weight"].T)


@pytest.mark.parametrize(("mapping", "error", "message"), [
    ({1: md.ReLU()}, TypeError, "Sequential: the names of a mapping's layers must be str (they are the prefixes of "
                                "the state_dict keys), got int 1"),
    ({"a.b": md.ReLU()}, ValueError, "Sequential: a parameter, layer, buffer or generator name may not contain '.', "
                                     "got 'a.b' (dots separate the names of nested layers)"),
    ({"": md.ReLU()}, ValueError, "Sequential: a parameter, layer, buffer or generator needs a name, got '' (its key "
                                  "in state_dict would collide with its parent's)"),
    ({"forward": md.ReLU()}, md.RegistrationError, "Sequential: cannot register a parameter, layer, buffer or "
                                                   "generator as 'forward': that is a method or property of "
                                                   "Sequential, which it would hide; choose another name"),
    ({"_stale": md.ReLU()}, md.RegistrationError, "Sequential: cannot name a layer '_stale': attribute '_stale' "
                                                  "already exists (as PyTorch's add_module refuses it); choose "
                                                  "another name"),
    ({"ok": md.ReLU(), "bad": 3}, TypeError, "Sequential: the mapping's 'bad' must be a Layer, got int"),
])
def test_a_mapping_with_a_name_or_layer_it_may_not_have_is_refused(mapping: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        md.Sequential(mapping)
    assert str(info.value) == message


def test_a_mapping_among_other_arguments_or_one_layer_twice_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^Sequential: a mapping of names to layers must be the only argument "
                                        r"\(Sequential\(OrderedDict\(\[\('conv', \.\.\.\), \('act', \.\.\.\)\]\)\)\), "
                                        r"got one among 2 arguments$"):
        md.Sequential(md.ReLU(), {"a": md.Tanh()})
    relu = md.ReLU()
    with pytest.raises(ValueError, match="this ReLU is already in the sequence"):
        md.Sequential({"a": relu, "b": relu})


# ------------------------------------------------------------------ porting after del / insert / pop


def _torch_mlp_state(seed: int = 0) -> dict[str, np.ndarray]:
    """What ``nn.Sequential(Linear(3, 4), ReLU(), Linear(4, 2))`` saves, the state of a PyTorch model
    edited as below (``del ts[1]`` of a dropout renumbers its last Linear to "2")."""
    rng = np.random.default_rng(seed)
    return {"0.weight": rng.normal(size=(4, 3)), "0.bias": rng.normal(size=4),
            "2.weight": rng.normal(size=(2, 4)), "2.bias": rng.normal(size=2)}


HINT = ("names its layers '0', '2', '3'. After del, insert or pop, minidl keeps each layer's name while PyTorch "
        "renumbers them from '0', so the paths differ: rebuild it numbered from '0' with the same layers, model = "
        "md.Sequential(*model) (a nested one in place: parent[i] = md.Sequential(*parent[i]); a LayerList: "
        "md.LayerList(blocks)), then port again")


def test_porting_a_sequence_with_a_gap_hints_to_number_it_again() -> None:
    model = md.Sequential(md.Dense(3, 4), md.Dropout(0.5), md.ReLU(), md.Dense(4, 2))
    del model[1]
    state = _torch_mlp_state()
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(model, state)
    assert str(info.value).splitlines() == [
        "state_dict_from_torch refused the torch state (4 problems):",
        "  layer '3' (Dense): missing torch key '3.weight' (expected shape (2, 4))",
        "  layer '3' (Dense): missing torch key '3.bias' (expected shape (2,))",
        "  unused torch key '2.weight': layer '2' (ReLU) has no such entry (strict=False to leave it out)",
        "  unused torch key '2.bias': layer '2' (ReLU) has no such entry (strict=False to leave it out)",
        f"Hint: the Sequential itself {HINT}"]
    model = md.Sequential(*model)  # as the hint says: the same layers, "0", "1", "2"
    model.load_state_dict(state_dict_from_torch(model, state))
    x = np.random.default_rng(1).normal(size=(5, 3))
    expected = np.maximum(x @ state["0.weight"].T + state["0.bias"], 0) @ state["2.weight"].T + state["2.bias"]
    np.testing.assert_allclose(model(x), expected, rtol=1e-12)


def test_the_hint_names_a_nested_sequence_and_one_out_of_order() -> None:
    inner = md.Sequential(md.Dense(3, 4), md.ReLU(), md.Dense(4, 2))
    inner.insert(1, md.Dropout(0.5))  # named "3": "0", "3", "1", "2"
    del inner[1]  # "0", "1", "2" in order again; a layer that joins is named "4"
    inner.insert(0, md.Tanh())  # "4", "0", "1", "2" against PyTorch's "0", "1", "2", "3"
    model = md.Sequential(md.Dense(3, 3), inner)
    rng = np.random.default_rng(0)
    state = {"0.weight": rng.normal(size=(3, 3)), "0.bias": rng.normal(size=3),
             "1.1.weight": rng.normal(size=(4, 3)), "1.1.bias": rng.normal(size=4),
             "1.3.weight": rng.normal(size=(2, 4)), "1.3.bias": rng.normal(size=2)}
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(model, state)
    assert str(info.value).splitlines()[-1] == (
        "Hint: layer '1' (Sequential) names its layers '4', '0', '1', '2'. After del, insert or pop, minidl keeps "
        "each layer's name while PyTorch renumbers them from '0', so the paths differ: rebuild it numbered from "
        "'0' with the same layers, model = md.Sequential(*model) (a nested one in place: parent[i] = "
        "md.Sequential(*parent[i]); a LayerList: md.LayerList(blocks)), then port again")
    model[1] = md.Sequential(*model[1])
    assert list(state_dict_from_torch(model, state)) == ["0.W", "1.1.W", "1.3.W"]


def test_no_hint_without_both_missing_and_unused_keys_or_without_a_gap() -> None:
    model = md.Sequential(md.Dense(3, 4), md.Dropout(0.5), md.ReLU(), md.Dense(4, 2))
    del model[1]
    state = {"0.weight": np.zeros((4, 3)), "0.bias": np.zeros(4), "3.weight": np.zeros((2, 5)),
             "3.bias": np.zeros(2)}  # a shape problem only: the names pair
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(model, state)
    assert "Hint" not in str(info.value)
    plain = md.Sequential(md.Dense(3, 4), md.ReLU(), md.Dense(4, 2))  # no gap: the names are not the problem
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(plain, {**{k: v for k, v in _torch_mlp_state().items() if k != "2.bias"},
                                      "9.x": np.zeros(1)})
    assert "missing torch key '2.bias'" in str(info.value) and "unused torch key '9.x'" in str(info.value)
    assert "Hint" not in str(info.value)
    named = _named()  # names of a mapping: not numbers out of count
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(named, _torch_mlp_state())
    assert "Hint" not in str(info.value)


class _BodyHead(md.Model):
    """A body ``Sequential`` with a dropout deleted (named "0", "2") and a head, as a PyTorch module whose
    body was edited alike (its "0", "1") but whose head is named ``classifier``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = md.Sequential(md.Dense(4, 8), md.Dropout(0.5), md.ReLU())
        del self.body[1]
        self.head = md.Dense(8, 3)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.head(self.body(x))
        return out


def test_no_hint_for_a_gap_where_the_names_pair_when_the_mismatch_is_elsewhere() -> None:
    rng = np.random.default_rng(0)
    state = {"body.0.weight": rng.normal(size=(8, 4)), "body.0.bias": rng.normal(size=8),
             "classifier.weight": rng.normal(size=(3, 8)), "classifier.bias": rng.normal(size=3)}
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(_BodyHead(), state)
    assert str(info.value).splitlines() == [
        "state_dict_from_torch refused the torch state (4 problems):",
        "  layer 'head' (Dense): missing torch key 'head.weight' (expected shape (3, 8))",
        "  layer 'head' (Dense): missing torch key 'head.bias' (expected shape (3,))",
        "  unused torch key 'classifier.weight': no minidl layer at 'classifier' (children of the _BodyHead itself: "
        "body, head) (strict=False to leave it out)",
        "  unused torch key 'classifier.bias': no minidl layer at 'classifier' (children of the _BodyHead itself: "
        "body, head) (strict=False to leave it out)"]  # no hint: the body pairs, the head's name is the problem
    with pytest.raises(md.StateDictError) as info:  # the missing and the unused keys under the body: a hint
        state_dict_from_torch(_BodyHead(), {("body.1.weight" if key == "body.0.weight" else key): value
                                            for key, value in state.items()})
    assert str(info.value).splitlines()[-1].startswith("Hint: layer 'body' (Sequential) names its layers '0', '2'.")


def test_the_hint_names_only_the_gapped_sequence_the_unpaired_keys_lie_under() -> None:
    first = md.Sequential(md.Dense(3, 4), md.Dropout(0.5), md.ReLU())
    second = md.Sequential(md.Dense(4, 4), md.Dropout(0.5), md.Dense(4, 2))
    del first[1], second[1]  # both "0", "2": the first pairs with PyTorch's "0", "1", the second does not
    rng = np.random.default_rng(0)
    state = {"0.0.weight": rng.normal(size=(4, 3)), "0.0.bias": rng.normal(size=4),
             "1.0.weight": rng.normal(size=(4, 4)), "1.0.bias": rng.normal(size=4),
             "1.1.weight": rng.normal(size=(2, 4)), "1.1.bias": rng.normal(size=2)}
    with pytest.raises(md.StateDictError) as info:
        state_dict_from_torch(md.Sequential(first, second), state)
    assert str(info.value).splitlines()[-1].startswith(
        "Hint: layer '1' (Sequential) names its layers '0', '2'. After del, insert or pop")


def test_a_named_sequence_indexed_by_a_name_says_a_name_is_an_attribute() -> None:
    """``seq["fc"]`` was list's "list indices must be integers or slices, not str"; now the sequence's own
    words, and for one of its names where that layer is."""
    seq = md.Sequential(collections.OrderedDict([("fc", md.Dense(2, 3, rng=0)), ("act", md.ReLU())]))
    with pytest.raises(TypeError, match=r"^Sequential indices must be ints or slices, not str; a layer by its name "
                                        r"is an attribute: getattr\(model, 'fc'\)$"):
        seq["fc"]  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^Sequential indices must be ints or slices, not str$"):
        seq["nope"]  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^Sequential indices must be ints or slices, not float$"):
        seq[1.0]  # type: ignore[call-overload]
    assert seq[np.int64(1)] is seq.act and seq[-2] is seq.fc


def test_errors_shown_as_written_show_several_arguments_as_every_exception_does() -> None:
    """RegistrationError("a", "b") printed only 'a', hiding the second argument."""
    for cls in (md.RegistrationError, md.StateDictError):
        assert str(cls("a sentence\nwith a newline")) == "a sentence\nwith a newline"
        assert str(cls("a", "b")) == "('a', 'b')" == str(KeyError("a", "b"))
        assert str(cls()) == "" == str(KeyError())
