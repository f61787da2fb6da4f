"""Errors say where a refused value came from: a ``Sequential`` names the layer that returned the input (or the
grad_output) a layer refused; a model of your own names itself and refuses a backward after a forward that
raised (its layers may hold the caches of two passes); ``Model.fit``/``evaluate`` have ``fit``'s keywords."""

from __future__ import annotations

import copy
import hashlib
import inspect
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import training

# ---------------------------------------------------------------------------------------------- layers of a user


class WrongShape(md.Layer):
    """A layer whose backward returns dx of the wrong width (4 instead of 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.W = md.Parameter(np.full((5, 3), 0.1))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.W.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._x is not None
        self.W.grad += self._x.T @ grad_output
        return grad_output @ self.W.data.T[:, :4]


class NoneBack(WrongShape):
    """A layer whose backward forgets to return dx."""

    def backward(self, grad_output: np.ndarray) -> Any:
        assert self._x is not None
        self.W.grad += self._x.T @ grad_output
        return None


class Swish(md.Layer):
    """The docs' Swish: its beta is float64 whatever the model's dtype (unless cast)."""

    def __init__(self) -> None:
        super().__init__()
        self.beta = md.Parameter(np.array([1.0]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x / (1 + np.exp(-self.beta.data * x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Narrow(md.Layer):
    """A layer whose forward drops a column (it returns (N, 5) of (N, 6))."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x[:, :-1]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError


X = np.random.default_rng(0).normal(size=(8, 5))

# ---------------------------------------------------------------------------------------------- Sequential


@pytest.mark.parametrize("method", ["backward", "backward_params"])
def test_a_refused_grad_output_names_the_layer_whose_backward_returned_it(method: str) -> None:
    model = md.Sequential(md.Dense(5, 5, rng=0), WrongShape())
    model(X)
    with pytest.raises(md.ShapeError) as caught:
        getattr(model, method)(np.ones((8, 3)))
    assert str(caught.value) == (
        "Sequential layer '0': Dense(5 -> 5).backward: expected grad_output of shape (8, 5), got (8, 4) (it must "
        "have the shape of the forward's output); the grad_output of layer '0' is what layer '1' (WrongShape)"
        ".backward returned as its dCost/dinput")
    model = md.Sequential(md.Dense(5, 5, rng=0), NoneBack())
    model(X)
    with pytest.raises(md.DTypeError, match=r"^Sequential layer '0': Dense\(5 -> 5\)\.backward: expected grad_output "
                                            r"as a numpy array, got NoneType; the grad_output of layer '0' is what "
                                            r"layer '1' \(NoneBack\)\.backward returned as its dCost/dinput$"):
        getattr(model, method)(np.ones((8, 3)))


@pytest.mark.parametrize("method", ["backward", "backward_params"])
def test_the_last_layer_refusing_the_callers_grad_output_names_no_other_layer(method: str) -> None:
    model = md.Sequential(md.ReLU(), md.Dense(5, 3, rng=0))
    model(X)
    with pytest.raises(md.ShapeError) as caught:
        getattr(model, method)(np.ones((8, 4)))
    assert str(caught.value) == ("Sequential layer '1': Dense(5 -> 3).backward: expected grad_output of shape (8, 3), "
                                 "got (8, 4) (it must have the shape of the forward's output)")


@pytest.mark.parametrize("method", ["backward", "backward_params"])
def test_nested_sequences_name_the_source_once_at_the_level_that_knows_it(method: str) -> None:
    inner = md.Sequential(md.Dense(5, 5, rng=0), WrongShape())
    model = md.Sequential(inner, md.Dense(3, 2, rng=1))
    model(X)
    with pytest.raises(md.ShapeError) as caught:
        getattr(model, method)(np.ones((8, 2)))
    message = str(caught.value)
    assert message.startswith("Sequential layer '0': Sequential layer '0': Dense(5 -> 5).backward: expected "
                              "grad_output of shape (8, 5), got (8, 4)")
    assert message.endswith("; the grad_output of layer '0' is what layer '1' (WrongShape).backward returned as its "
                            "dCost/dinput")
    assert message.count("is what layer") == 1  # (not also the outer layer '1', the Dense, which is right)
    model = md.Sequential(md.Sequential(md.Dense(5, 5, rng=0)), WrongShape())  # the inner sequence's last layer
    model(X)
    with pytest.raises(md.ShapeError) as caught:
        getattr(model, method)(np.ones((8, 3)))
    assert str(caught.value).endswith("(it must have the shape of the forward's output); the grad_output of layer '0' "
                                      "is what layer '1' (WrongShape).backward returned as its dCost/dinput")


def test_a_refused_input_names_the_layer_that_returned_it_and_a_dtype_changed_on_the_way() -> None:
    x = X[:, :4].astype(np.float32)
    model = md.Sequential(md.Dense(4, 6, dtype=np.float32), Swish(), md.Dense(6, 2, dtype=np.float32))
    with pytest.raises(md.DTypeError) as caught:
        model(x)
    assert str(caught.value) == (
        "Sequential layer '2': Dense(6 -> 2): input dtype float64 does not match the layer's parameters (float32); "
        "cast the input (x.astype(np.float32)) or the model (model.astype(...)); the input of layer '2' is what "
        "layer '1' (Swish) returned, float64, from the Sequential's float32 input: a layer up to '1' changed the "
        "dtype (a float64 parameter or constant? model.astype(np.float32) casts the parameters)")
    assert model.astype(np.float32)(x).dtype == np.float32  # (what the message says fixes it)
    model = md.Sequential(md.Dense(4, 6, rng=0), Narrow(), md.Dense(6, 2, rng=1))
    with pytest.raises(md.ShapeError) as caught:
        model(X[:, :4])
    assert str(caught.value).startswith("Sequential layer '2': Dense(6 -> 2): expected input of shape (N, ..., 6), got "
                                        "shape (8, 5)")
    assert str(caught.value).endswith("; the input of layer '2' is what layer '1' (Narrow) returned")


def test_the_first_layer_refusing_the_callers_input_names_no_other_layer() -> None:
    with pytest.raises(md.DTypeError) as caught:
        md.Sequential(md.Dense(5, 2, dtype=np.float32))(X)
    assert "is what layer" not in str(caught.value)
    model = md.Sequential(Swish(), md.Sequential(md.Dense(5, 2, dtype=np.float32)))  # an inner first layer
    with pytest.raises(md.DTypeError) as caught:
        model(X.astype(np.float32))
    assert str(caught.value).startswith("Sequential layer '1': Sequential layer '0': Dense(5 -> 2): input dtype "
                                        "float64 does not match")
    assert str(caught.value).endswith("; the input of layer '1' is what layer '0' (Swish) returned, float64, from the "
                                      "Sequential's float32 input: a layer up to '0' changed the dtype (a float64 "
                                      "parameter or constant? model.astype(np.float32) casts the parameters)")

# ---------------------------------------------------------------------------------------------- a model of your own


class Gated(md.Model):
    """The docs' Gated: y = Dense(a) * sigmoid(Dense(b)), x = (a, b)."""

    def __init__(self, da: int, db: int, out: int, rng: int | None = None) -> None:
        super().__init__()
        self.value, self.gate, self.sigmoid = md.Dense(da, out, rng=rng), md.Dense(db, out, rng=rng), md.Sigmoid()

    def forward(self, x: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        a, b = x
        self._v, self._s = self.value(a), self.sigmoid(self.gate(b))
        return self._v * self._s

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.value.backward(grad_output * self._s),
                self.gate.backward(self.sigmoid.backward(grad_output * self._v)))


class GatedWithParams(Gated):
    """With a backward_params of its own, which calls its parent's backward."""

    def backward_params(self, grad_output: np.ndarray) -> None:
        super().backward(grad_output)


def _gated_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), np.ones((8, 1))


@pytest.mark.parametrize(("cls", "method"), [(Gated, "backward"), (Gated, "backward_params"),
                                             (GatedWithParams, "backward_params")])
def test_a_model_of_your_own_refuses_a_backward_after_a_forward_that_raised_part_way(cls: type[Gated],
                                                                                    method: str) -> None:
    a, b, g = _gated_data()
    model = cls(3, 2, 1, rng=0)
    model((a, b))
    model.zero_grad()
    model.backward(g)
    reference = [p.grad.copy() for p in model.parameters()]
    with pytest.raises(md.ShapeError, match=r"^Gated: Dense\(2 -> 1\): expected input of shape \(N, \.\.\., 2\), got "
                                            r"shape \(8, 7\)$") if cls is Gated else pytest.raises(md.ShapeError):
        model((a + 1.0, np.ones((8, 7))))  # the value Dense ran on the new a, then the gate refused
    model.zero_grad()
    who = f"{cls.__name__}.{'backward' if cls is Gated else method}"
    with pytest.raises(md.BackwardBeforeForwardError, match=rf"^{who}: the last forward raised \(ShapeError\), maybe "
                                                            r"after some of its layers had run"):
        getattr(model, method)(g)
    assert all(not p.grad.any() for p in model.parameters())  # nothing ran
    model((a, b))  # a forward that succeeds: the back-pass is the first one again
    getattr(model, method)(g)
    for p, expected in zip(model.parameters(), reference, strict=True):
        np.testing.assert_allclose(p.grad, expected, rtol=1e-12)


def test_a_model_of_your_own_names_itself_once_in_its_layers_errors() -> None:
    a, b, _ = _gated_data()

    class Outer(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Gated(3, 2, 1, rng=0)

        def forward(self, x: Any) -> np.ndarray:
            if not isinstance(x, tuple):
                raise md.ShapeError("Outer: expected (a, b)")
            return self.inner(x)

        def backward(self, grad_output: np.ndarray) -> Any:
            return self.inner.backward(grad_output)

    outer = Outer()
    with pytest.raises(md.ShapeError, match=r"^Outer: Gated: Dense\(3 -> 1\): expected input of shape"):
        outer((np.ones((8, 4)), b))
    with pytest.raises(md.ShapeError, match=r"^Outer: expected \(a, b\)$"):  # (its own message: not twice)
        outer(a)
    outer((a, b))
    with pytest.raises(md.ShapeError, match=r"^Outer: Gated: Dense\(3 -> 1\)\.backward: expected grad_output of shape "
                                            r"\(8, 1\), got \(8, 2\)"):
        outer.backward(np.ones((8, 2)))
    class D(Gated):  # a name that starts a layer's ("Dense(...)"): still named
        pass

    with pytest.raises(md.ShapeError, match=r"^D: Dense\(2 -> 1\): expected input"):
        D(3, 2, 1, rng=0)((a, np.ones((8, 7))))
    sub = GatedWithParams(3, 2, 1, rng=0)  # its backward_params calls the wrapped backward of its parent
    sub((a, b))
    with pytest.raises(md.ShapeError, match=r"^GatedWithParams: Dense\(3 -> 1\)\.backward: expected"):
        sub.backward_params(np.ones((8, 2)))


def test_the_refusal_is_kept_by_a_copy_and_a_model_without_layers_is_not_refused() -> None:
    a, b, g = _gated_data()
    model = Gated(3, 2, 1, rng=0)
    model((a, b))
    with pytest.raises(md.ShapeError):
        model((a, np.ones((8, 7))))
    copied = copy.deepcopy(model)
    with pytest.raises(md.BackwardBeforeForwardError):
        copied.backward(g)

    class Square(md.Model):  # no layers: its cache is its own, kept only by a forward that succeeds
        def forward(self, x: np.ndarray) -> np.ndarray:
            if x.ndim != 2:
                raise md.ShapeError("Square: expected (N, F)")
            self._x = x
            return x * x

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            return 2 * self._x * grad_output

    square = Square()
    square(np.full((2, 2), 3.0))
    with pytest.raises(md.ShapeError):
        square(np.ones(3))
    np.testing.assert_array_equal(square.backward(np.ones((2, 2))), np.full((2, 2), 6.0))


def test_the_refusing_backward_keeps_the_users_signature_and_the_checker_passes() -> None:
    a, b, _ = _gated_data()
    assert Gated.backward.__name__ == "backward" and Gated.backward.__doc__ is None
    assert list(inspect.signature(Gated.backward).parameters) == ["self", "grad_output"]

    class Scaled(md.Model):  # a backward with a keyword of its own still takes it
        def __init__(self) -> None:
            super().__init__()
            self.fc = md.Dense(3, 2, rng=0)

        def forward(self, x: np.ndarray) -> np.ndarray:
            return self.fc(x)

        def backward(self, grad_output: np.ndarray, scale: float = 1.0) -> np.ndarray:
            return self.fc.backward(grad_output * scale)

    scaled = Scaled()
    scaled(a)
    once = scaled.backward(np.ones((8, 2)))
    np.testing.assert_allclose(scaled.backward(np.ones((8, 2)), scale=2.0), 2 * once, rtol=1e-12)
    assert once.shape == (8, 3) and once.any()
    report = md.GradientChecker(Gated(3, 2, 1, rng=0), inputs=(a, b)).run()
    assert report.passed

# ---------------------------------------------------------------------------------------------- Model.fit's keywords


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
    with pytest.raises(TypeError, match=r"^fit: takes x and y by position.*several inputs are one tuple"):
        model.fit(x, np.ones((4, 3), bool), y)  # type: ignore[call-arg]
    history = model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), epochs=2, verbose=0)
    assert len(history["loss"]) == 2
    assert set(model.evaluate(x, y, loss=md.MSELoss(), batch_size=2)) == {"loss"}


def test_mypy_catches_a_misspelt_keyword_of_model_fit(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("mypy")
    root = pathlib.Path(md.__file__).resolve().parent.parent  # the minidl being tested, not an installed one
    user = tmp_path / "user.py"
    user.write_text(
        "import numpy as np\n"
        "import minidl as md\n"
        "x = np.ones((4, 3))\n"
        "y = np.ones((4, 1))\n"
        "m = md.Sequential(md.Dense(3, 1))\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epochs=5)\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epoch=5)\n"
        "m.evaluate(x, y, loss=md.MSELoss(), batchsize=2)\n"
        "m.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(m.parameters(), lr=0.1), epochs='5')\n")
    # (a cache kept between runs, one per tested tree: a cold run checks numpy's stubs, 6-7 s; a warm one 0.5 s)
    cache = pathlib.Path(tempfile.gettempdir()) / f"minidl-mypy-{hashlib.sha1(str(root).encode()).hexdigest()[:10]}"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary", f"--cache-dir={cache}",
         str(user)], capture_output=True, text=True, env={"MYPYPATH": str(root), "PATH": ""}, cwd=tmp_path,
        check=False)
    errors = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": error: " in line]
    lines = [int(line.split(":")[1]) for line in result.stdout.splitlines() if ": error: " in line]
    assert lines == [7, 8, 9], result.stdout + result.stderr
    assert 'Unexpected keyword argument "epoch" for "fit" of "Model"; did you mean "epochs"?' in errors[0]
    assert 'Unexpected keyword argument "batchsize" for "evaluate" of "Model"; did you mean "batch_size"?' in errors[1]
    assert 'Argument "epochs" to "fit" of "Model" has incompatible type "str"; expected "int"' in errors[2]
