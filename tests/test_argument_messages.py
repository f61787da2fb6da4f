"""Messages for a new user's slips (review of session 23): an optimizer given the model instead of its
parameters, ``model.fit(x, y, loss, opt)`` (the method speaks of the method), a whole training checkpoint
given to ``load_state_dict``, and a loss of one's own whose ``backward`` runs before its ``forward``."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np
import pytest

import minidl as md

ROOT = pathlib.Path(__file__).resolve().parent.parent
OPTIMIZERS = [md.SGD, md.Adam, md.AdamW, md.Adamax, md.NAdam, md.RAdam, md.RMSprop, md.Adagrad, md.Adadelta, md.Rprop]


def _model() -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=0), md.ReLU(), md.Dense(4, 2, rng=1))


class _Scaled(md.Loss):
    """sum(exp(log_s) * (y_pred - y_true)**2) with a learnable log-scale: a loss holding a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.log_s = md.Parameter(np.zeros(1))
        self._d: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        self._d = y_pred - y_true
        return float(np.exp(self.log_s.data[0]) * np.sum(self._d ** 2))

    def backward(self) -> np.ndarray:
        self._require_cache(self._d)
        assert self._d is not None
        return 2 * np.exp(self.log_s.data[0]) * self._d


# ------------------------------------------------------------------------------------- 1. optimizers
@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_given_the_model_says_to_pass_its_parameters(cls: type[md.Optimizer]) -> None:
    model = _model()
    name = cls.__name__
    with pytest.raises(TypeError, match=rf"^{name}: got the model Sequential itself; pass its parameters: "
                                        rf"{name}\(model\.parameters\(\), \.\.\.\)$"):
        cls(model, lr=0.1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=rf"^{name}: got the layer Dense itself; pass its parameters: "
                                        rf"{name}\(layer\.parameters\(\), \.\.\.\)$"):
        cls(model[0], lr=0.1)  # type: ignore[call-arg]
    opt = cls(model.parameters(), lr=0.1)  # type: ignore[call-arg]
    assert opt.params == model.parameters()


def test_a_list_holding_the_model_or_a_layer_names_it_and_says_what_to_pass() -> None:
    model = _model()
    with pytest.raises(TypeError, match=r"^Adam: params holds the model Sequential itself, not its parameters; "
                                        r"pass them: Adam\(model\.parameters\(\), \.\.\.\)$"):
        md.Adam([model])
    with pytest.raises(TypeError, match=r"^SGD: params\[2\] is the layer Dense itself, not a Parameter; put its "
                                        r"parameters in the list instead: \[\.\.\., \*layer\.parameters\(\)\]$"):
        md.SGD([*model.parameters(), md.Dense(2, 2)], lr=0.1)
    with pytest.raises(TypeError, match=r"^Adam: params\[0\] is the model Sequential itself"):
        md.Adam(model.layers())  # (the model first, then its layers)


def test_a_loss_given_whole_says_to_pass_its_parameters_or_that_it_has_none() -> None:
    with pytest.raises(TypeError, match=r"^Adam: got the loss _Scaled itself; pass its parameters: "
                                        r"Adam\(loss\.parameters\(\), \.\.\.\)$"):
        md.Adam(_Scaled())
    with pytest.raises(TypeError, match=r"^Adam: got the loss CrossEntropyLoss itself, which holds no parameters; "
                                        r"pass the parameters to train: Adam\(model\.parameters\(\), \.\.\.\)$"):
        md.Adam(md.CrossEntropyLoss())  # type: ignore[arg-type]
    model = _model()
    with pytest.raises(TypeError, match=r"^SGD: params\[2\] is the loss _Scaled itself, not a Parameter; put its "
                                        r"parameters in the list instead: \[\.\.\., \*loss\.parameters\(\)\]$"):
        md.SGD([*model.parameters(), _Scaled()], lr=0.1)


def test_the_uncalled_method_and_named_pairs_say_what_to_pass() -> None:
    model = _model()
    with pytest.raises(TypeError, match=r"^Adam: got the method Sequential\.parameters itself; call it: "
                                        r"Adam\(model\.parameters\(\), \.\.\.\)$"):
        md.Adam(model.parameters)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Adam: params\[0\] is a \(name, Parameter\) pair, as named_parameters\(\) "
                                        r"gives; pass the parameters alone: Adam\(model\.parameters\(\), \.\.\.\)$"):
        md.Adam(model.named_parameters())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Adam: params\[0\] is a ndarray, expected a Parameter$"):  # unchanged
        md.Adam([np.zeros(2)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^Adam: params must be an iterable of Parameters \(e\.g\. "
                                        r"model\.parameters\(\)\), got int$"):
        md.Adam(3)  # type: ignore[arg-type]


def test_a_generator_is_taken_and_one_already_read_is_refused_saying_so() -> None:
    model, twin = _model(), _model()
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    from_list = md.Adam(model.parameters(), lr=0.1)
    from_generator = md.Adam((p for p in twin.parameters()), lr=0.1)
    assert from_generator.params == twin.parameters()
    for net, opt in ((model, from_list), (twin, from_generator)):
        net.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=opt, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    generator = (p for p in model.parameters())
    md.SGD(generator, lr=0.1)
    with pytest.raises(ValueError, match=r"^SGD: got an empty parameter list; nothing to optimise \(an iterator that "
                                         r"yields nothing: a generator can be read once, and this one may have been "
                                         r"read already; pass a list, e.g\. model\.parameters\(\)\)$"):
        md.SGD(generator, lr=0.1)
    with pytest.raises(ValueError, match=r"^Adam: got an empty parameter list; nothing to optimise$"):
        md.Adam([])
    with pytest.raises(ValueError, match=r"^Adam: got an empty parameter list; nothing to optimise$"):
        md.Adam(md.Sequential(md.ReLU()).parameters())


# ------------------------------------------------------------------- 2. fit/evaluate given loss by position
def test_model_fit_with_loss_and_optimizer_by_position_speaks_of_the_method() -> None:
    model = _model()
    before = [p.data.copy() for p in model.parameters()]
    x, y = np.zeros((8, 3)), np.zeros(8, int)
    loss, opt = md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError) as caught:
        model.fit(x, y, loss, opt)  # type: ignore[call-arg]
    assert str(caught.value) == ("Sequential.fit takes x and y by position, the rest by keyword: pass loss=..., "
                                 "optimizer=... (got 4 positional arguments)")
    with pytest.raises(TypeError, match=r"^Sequential\.fit takes x and y by position, the rest by keyword: pass "
                                        r"loss=\.\.\. \(got 3 positional arguments\)$"):
        model.fit(x, y, md.CrossEntropyLoss, optimizer=opt)  # type: ignore[call-arg]  # the class: still the loss
    with pytest.raises(TypeError, match=r"^Sequential\.fit takes x and y by position, the rest by keyword: pass "
                                        r"loss=\.\.\., optimizer=\.\.\., early_stopping=\.\.\. \(got 5 positional "
                                        r"arguments\)$"):
        model.fit(x, y, loss, opt, md.EarlyStopping())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^Sequential\.evaluate takes x and y by position, the rest by keyword: "
                                        r"pass loss=\.\.\. \(got 3 positional arguments\)$"):
        model.evaluate(x, y, loss)  # type: ignore[call-arg]
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)


def test_the_functions_keep_their_own_form_and_a_model_of_one_s_own_is_named() -> None:
    model = _model()
    x, y = np.zeros((8, 3)), np.zeros(8, int)
    loss, opt = md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"^fit: takes x and y by position, the rest by keyword: pass "
                                        r"scheduler=\.\.\. \(got 3 positional arguments after the model\)$"):
        md.fit(model, x, y, md.StepLR(opt, 1), loss=loss, optimizer=opt)  # (without loss=: Python's own message)
    with pytest.raises(TypeError, match=r"^evaluate: takes x and y by position, the rest by keyword: pass "
                                        r"loss=\.\.\. \(got 3 positional arguments after the model\)$"):
        md.evaluate(model, x, y, loss)
    mask = np.ones((8, 3), bool)
    with pytest.raises(TypeError, match=r"several inputs are one tuple: fit\(model, \(x, mask\), y, \.\.\.\) "
                                        r"\(got 3 positional arguments after the model\)$"):
        md.fit(model, x, mask, y, loss=loss, optimizer=opt)

    class Net(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.body = md.Dense(3, 2, rng=0)

        def forward(self, x: np.ndarray) -> np.ndarray:
            return self.body(x)

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return self.body.backward(grad_output)

    net = Net()
    with pytest.raises(TypeError, match=r"^Net\.fit takes x and y by position, the rest by keyword: pass "
                                        r"loss=\.\.\., optimizer=\.\.\. \(got 4 positional arguments\)$"):
        net.fit(x, y, loss, md.SGD(net.parameters(), lr=0.1))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^Net\.evaluate takes x and y by position.*several inputs are one tuple: "
                                        r"model\.evaluate\(\(x, mask\), y, \.\.\.\) \(got 3 positional arguments\)$"):
        net.evaluate(x, mask, y, loss=loss)  # type: ignore[call-arg]


# ------------------------------------------------------------------------- 3. a checkpoint given whole
def test_a_whole_checkpoint_given_to_load_state_dict_gets_the_hint(tmp_path: pathlib.Path) -> None:
    model = _model()
    opt = md.Adam(model.parameters())
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}
    md.save(checkpoint, tmp_path / "run.ckpt")
    other = md.Sequential(md.Dense(3, 4, rng=5), md.ReLU(), md.Dense(4, 2, rng=6))
    before = other.state_dict()
    for state in (checkpoint, md.load(tmp_path / "run.ckpt")):
        with pytest.raises(md.StateDictError) as caught:
            other.load_state_dict(state)
        message = caught.value.args[0]
        assert message.splitlines() == [
            "Sequential.load_state_dict refused the state (5 problems); nothing was changed:",
            "  missing key '0.W'", "  missing key '2.W'",
            "  unexpected key 'model'", "  unexpected key 'optimizer'", "  unexpected key 'epoch'",
            "The state holds a nested state dict under 'model', as a training checkpoint does: pass state['model']",
        ]
        for key, value in other.state_dict().items():
            np.testing.assert_array_equal(value, before[key])
    other.load_state_dict(checkpoint["model"])  # as the hint says
    np.testing.assert_array_equal(other[0].W.data, model[0].W.data)


def test_the_hint_names_the_key_and_only_for_a_mapping_of_the_model_s_keys() -> None:
    model = _model()
    with pytest.raises(md.StateDictError, match=r"under 'net', as a training checkpoint does: pass state\['net'\]$"):
        model.load_state_dict({"meta": {"lr": 0.1}, "net": {"0.W": model[0].W.data}})
    with pytest.raises(md.StateDictError) as caught:  # a nested mapping of other keys: no hint
        model.load_state_dict({**model.state_dict(), "extra": {"lr": 0.1}})
    assert str(caught.value.args[0]).splitlines()[1:] == ["  unexpected key 'extra'"]
    with pytest.raises(md.StateDictError, match=r"pass state\['model'\]$"):  # strict=False too: it would load nothing
        model.load_state_dict({"model": model.state_dict()}, strict=False)  # (tests/test_checkpoint_hints.py)
    result = model.load_state_dict({"model": {"lr": 0.1}}, strict=False)  # not the model's keys: not refused
    assert result.unexpected_keys == ["model"] and result.missing_keys == ["0.W", "2.W"]


# ----------------------------------------------------------------- 4. backward before forward, own loss
class _LogCosh(md.Loss):
    """docs/custom-layers.md's pattern: the cache set to None in __init__, checked first in backward."""

    def __init__(self) -> None:
        super().__init__()
        self._d: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        self._d = y_pred - y_true
        return float(np.mean(np.log(np.cosh(self._d))))

    def backward(self) -> np.ndarray:
        self._require_cache(self._d)
        assert self._d is not None
        return np.tanh(self._d) / self._d.size


def test_a_loss_of_one_s_own_refuses_backward_before_forward_with_require_cache() -> None:
    loss = _LogCosh()
    with pytest.raises(md.BackwardBeforeForwardError,
                       match=r"^_LogCosh\.backward called before forward: there is no loss to differentiate "
                             r"\(no forward since it was made, or since a fit returned: fit lets go of its last "
                             r"batch's caches\)$"):
        loss.backward()
    y_pred, y_true = np.linspace(-1, 1, 6).reshape(3, 2), np.zeros((3, 2))
    loss(y_pred, y_true)
    np.testing.assert_allclose(loss.backward(), np.tanh(y_pred) / 6)
    report = md.GradientChecker(md.Identity(), loss=_LogCosh(), inputs=y_pred, targets=y_true).run()
    assert report.passed


def test_the_built_in_losses_and_the_old_name_use_the_same_check() -> None:
    with pytest.raises(md.BackwardBeforeForwardError, match=r"^MSELoss\.backward called before forward"):
        md.MSELoss().backward()
    with pytest.raises(md.BackwardBeforeForwardError, match=r"^_Scaled\.backward called before forward"):
        _Scaled().backward()

    class Old(md.Loss):  # written with the earlier name
        def backward(self) -> np.ndarray:
            self._require(None)
            return np.zeros(1)

    with pytest.raises(md.BackwardBeforeForwardError, match=r"^Old\.backward called before forward"):
        Old().backward()
    assert "_require_cache" in md.Loss.__dict__ and md.Loss._require.__doc__ is not None


def test_the_docs_logcosh_refuses_backward_before_forward() -> None:
    text = (ROOT / "docs" / "custom-layers.md").read_text()
    start = text.index("class LogCosh(md.Loss):")
    code = text[start:text.index("\nx, y = ", start)]
    namespace: dict[str, Any] = {"md": md, "np": np}
    exec(code, namespace)
    with pytest.raises(md.BackwardBeforeForwardError, match=r"^LogCosh\.backward called before forward"):
        namespace["LogCosh"]().backward()
    assert re.search(r"self\._require_cache\(self\._d\)", code)
