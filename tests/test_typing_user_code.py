"""What a type checker sees of typed user code (a reviewer's ``mypy --strict`` probes): the methods that return
``self`` return the caller's class (``Sequential(...).eval().predict(x)``), ``layer(x)`` returns what the layer's
``forward`` declares (a max-pool's ``Any``, as PyTorch's: an array, or ``(y, indices)`` by a setting), calls that
always raise are refused (``mha(q, k, v)``, ``model.fit(x, y, 32)``), and the settings and the checker's loss are
typed.  The run-time messages of those calls are unchanged (asserted here too)."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import minidl as md

USER = '''\
from typing import Any
import numpy as np
import minidl as md

x = np.ones((4, 3))
y = np.ones((4, 1))


class Net(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.fc = md.Dense(3, 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.fc(x)

    def backward(self, grad_output: np.ndarray) -> Any:
        return self.fc.backward(grad_output)


class DuckLoss:
    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        return 0.0

    def backward(self) -> np.ndarray:
        return np.zeros(1)


net = Net()
reveal_type(net.train())  # L30
reveal_type(net.eval())
reveal_type(net.requires_grad_(False))
reveal_type(net.astype(np.float32))
seq = md.Sequential(md.Dense(3, 1))
reveal_type(seq.eval().predict(x))  # L35
reveal_type(seq.append(md.ReLU()))
reveal_type(md.LayerList([md.Dense(2, 2)]).extend([md.ReLU()]))
reveal_type(md.Parameter(np.ones(2)).astype(np.float32))
reveal_type(md.Dense(3, 1)(x))  # L39
reveal_type(md.MaxPool2D(2, return_indices=True)(x))
reveal_type(md.Identity()(x))
reveal_type(net(x))
reveal_type(md.CELU().alpha)  # L43
reveal_type(md.Softshrink().lambd)
reveal_type(md.GradientChecker(net, md.MSELoss()).loss)
md.GradientChecker(net, DuckLoss())
md.GradientChecker(net, x)  # L47: not a loss
mha = md.MultiHeadAttention(8, 2)
q = np.zeros((2, 3, 8))
mha(q, q, q)  # L50
net.fit(x, y, 32, loss=md.MSELoss(), optimizer=md.SGD(net.parameters(), lr=0.1))  # L51
net.evaluate(x, y, md.MSELoss())  # L52
md.fit(net, x, y, 32, loss=md.MSELoss(), optimizer=md.SGD(net.parameters(), lr=0.1))  # L53
md.evaluate(net, x, y, md.MSELoss())  # L54
'''


@pytest.fixture(scope="module")
def mypy_output(run_mypy: Callable[[str], str]) -> str:
    return run_mypy(USER)


def _revealed(output: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"user\.py:(\d+): note: Revealed type is \"(.*)\"", output)}


def _errors(output: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for m in re.finditer(r"user\.py:(\d+): error: (.*)", output):
        found.setdefault(int(m[1]), []).append(m[2])
    return found


def test_the_methods_returning_self_are_typed_as_the_callers_class(mypy_output: str) -> None:
    revealed = _revealed(mypy_output)
    assert [revealed[line] for line in (30, 31, 32, 33)] == ["user.Net"] * 4, mypy_output
    assert revealed[35] == "Any"  # (predict: an array, or a tuple of them; "Layer" has no attribute "predict" before)
    assert revealed[36] == "minidl.model.Sequential"
    assert revealed[37] == "minidl.model.LayerList"
    assert revealed[38] == "minidl.parameter.Parameter"


def test_a_layer_call_returns_what_its_forward_declares(mypy_output: str) -> None:
    revealed = _revealed(mypy_output)
    array = "numpy.ndarray[tuple[Any, ...], numpy.dtype[Any]]"
    assert revealed[39] == array, mypy_output
    assert revealed[40] == "Any"  # (an array, or (y, indices) by a setting: a union would refuse pool(x).shape)
    assert revealed[41] == "Any"
    assert revealed[42] == array


def test_the_settings_and_the_checkers_loss_are_typed(mypy_output: str) -> None:
    revealed = _revealed(mypy_output)
    assert revealed[43] == revealed[44] == "float", mypy_output
    assert revealed[45] == "minidl.gradcheck.checker.LossLike | None"


def test_mypy_refuses_the_calls_that_always_raise_and_an_array_as_the_loss(mypy_output: str) -> None:
    errors = _errors(mypy_output)
    assert sorted(errors) == [47, 50, 51, 52, 53, 54], mypy_output  # (a duck-typed loss, line 46, is accepted)
    assert 'Argument 2 to "GradientChecker" has incompatible type' in errors[47][0]
    assert 'expected "LossLike | None"' in errors[47][0]
    assert errors[50] == [
        'Argument 2 to "__call__" of "Layer" has incompatible type "ndarray[tuple[int, int, int], dtype[float64]]"; '
        'expected "None"  [arg-type]',
        'Argument 3 to "__call__" of "Layer" has incompatible type "ndarray[tuple[int, int, int], dtype[float64]]"; '
        'expected "None"  [arg-type]']
    assert errors[51] == ['Argument 3 to "fit" of "Model" has incompatible type "int"; expected "Never"  [arg-type]']
    assert errors[52] == ['Argument 3 to "evaluate" of "Model" has incompatible type "MSELoss"; expected "Never"  '
                          '[arg-type]']
    assert errors[53] == ['Argument 4 to "fit" has incompatible type "int"; expected "Never"  [arg-type]']
    assert errors[54] == ['Argument 4 to "evaluate" has incompatible type "MSELoss"; expected "Never"  [arg-type]']


def test_those_calls_still_raise_their_messages() -> None:
    mha = md.MultiHeadAttention(8, 2)
    q = np.zeros((2, 3, 8))
    with pytest.raises(TypeError, match=r"^MultiHeadAttention: a layer is called with one input; several inputs are "
                                        r"one tuple: layer\(\(x, mask\)\), not layer\(x, mask\) \(attention: mha\(x\)"):
        mha(q, q, q)  # type: ignore[arg-type]
    x, y = np.ones((4, 3)), np.ones((4, 1))
    net = md.Sequential(md.Dense(3, 1, rng=0))
    with pytest.raises(TypeError, match=r"^Sequential\.fit takes x and y by position, the rest by keyword"):
        net.fit(x, y, 32, loss=md.MSELoss(), optimizer=md.SGD(net.parameters(), lr=0.1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fit: takes x and y by position, the rest by keyword"):
        md.fit(net, x, y, 32, loss=md.MSELoss(), optimizer=md.SGD(net.parameters(), lr=0.1))  # type: ignore[arg-type]
    pool = md.MaxPool2D(2, return_indices=True)
    out = pool(np.zeros((1, 1, 4, 4)))
    assert type(out) is tuple and [a.shape for a in out] == [(1, 1, 2, 2)] * 2
