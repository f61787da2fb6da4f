"""``Model.fit``/``Model.evaluate`` have the keywords of ``minidl.training.fit``/``evaluate`` (same names, types,
defaults), so that a type checker catches a misspelt one as it does for ``md.fit``, and still refuse inputs
spread over positions with ``refuse_spread_inputs``' message."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

import minidl as md
from minidl import training


@pytest.mark.parametrize("name", ["fit", "evaluate"])
def test_model_fit_and_evaluate_take_the_keywords_of_the_functions(name: str) -> None:
    function = list(inspect.signature(getattr(training, name)).parameters.values())
    method = list(inspect.signature(getattr(md.Model, name)).parameters.values())
    assert function[0].name == "model" and method[0].name == "self"
    described = [(p.name, p.kind, p.default, p.annotation) for p in method[1:]]
    assert described == [(p.name, p.kind, p.default, p.annotation) for p in function[1:]]
    assert "loss" in [p.name for p in method]
    assert inspect.signature(getattr(md.Model, name)).return_annotation == \
        inspect.signature(getattr(training, name)).return_annotation


def test_model_fit_refuses_a_misspelt_keyword_and_spread_inputs_before_asking_for_loss() -> None:
    x, y = np.ones((4, 3)), np.ones((4, 1))
    model = md.Sequential(md.Dense(3, 1, rng=0))
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epoch=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^Sequential\.fit takes x and y by position.*several inputs are one tuple"):
        model.fit(x, np.ones((4, 3), bool), y)  # type: ignore[arg-type]
    history = model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2, verbose=0)
    assert len(history["loss"]) == 2
    assert set(model.evaluate(x, y, loss=md.MSELoss(), batch_size=2)) == {"loss"}


def test_mypy_catches_a_misspelt_keyword_of_model_fit(run_mypy: Callable[[str], str]) -> None:
    output = run_mypy(
        "import numpy as np\n"
        "import minidl as md\n"
        "x = np.ones((4, 3))\n"
        "y = np.ones((4, 1))\n"
        "m = md.Sequential(md.Dense(3, 1))\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epochs=5)\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epoch=5)\n"
        "m.evaluate(x, y, loss=md.MSELoss(), batchsize=2)\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epochs='5')\n")
    errors = [line.split(": ", 1)[1] for line in output.splitlines() if ": error: " in line]
    lines = [int(line.split(":")[1]) for line in output.splitlines() if ": error: " in line]
    assert lines == [7, 8, 9], output
    assert 'Unexpected keyword argument "epoch" for "fit" of "Model"; did you mean "epochs"?' in errors[0]
    assert 'Unexpected keyword argument "batchsize" for "evaluate" of "Model"; did you mean "batch_size"?' in errors[1]
    assert 'Argument "epochs" to "fit" of "Model" has incompatible type "str"; expected "int"' in errors[2]
