"""A user-written layer is registered, found and checked with no extra code; a wrong back-pass is caught."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md


class Bilinear(md.Layer):
    """y[n] = u[n] @ A @ v[n] + b, where x = [u, v]: (N, 2d) -> y: (N, 1)."""

    def __init__(self, d: int, rng: np.random.Generator, transpose_bug: bool = False, factor: float = 1.0) -> None:
        super().__init__()
        self.d = d
        self.A = md.Parameter(rng.normal(size=(d, d)))
        self.b = md.Parameter(rng.normal(size=(1,)))
        self.transpose_bug = transpose_bug
        self.factor = factor
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        u, v = x[:, : self.d], x[:, self.d :]
        return (np.einsum("ni,ij,nj->n", u, self.A.data, v) + self.b.data)[:, None]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self._x
        self._require_cache(x)
        assert x is not None
        u, v = x[:, : self.d], x[:, self.d :]
        g = grad_output[:, 0]
        dA = np.einsum("n,ni,nj->ij", g, u, v)
        self.A.grad += dA.T if self.transpose_bug else dA
        self.b.grad += self.factor * g.sum(keepdims=True)
        A = self.A.data
        return np.hstack([g[:, None] * (v @ A.T), g[:, None] * (u @ A)])


class Net(md.Model):
    def __init__(self, **bug: object) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.fc = md.Dense(3, 4, rng=rng)
        self.act = md.Tanh()
        self.head = Bilinear(2, rng, **bug)  # type: ignore[arg-type]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.act(self.fc(x)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self.fc.backward(self.act.backward(self.head.backward(grad_output)))


def test_custom_parameters_are_found() -> None:
    assert [name for name, _ in Net().named_parameters()] == ["fc.W", "head.A", "head.b"]


def test_correct_custom_layer_passes() -> None:
    report = md.GradientChecker(Net(), inputs=np.random.default_rng(1).normal(size=(5, 3))).run()
    assert report.passed, str(report)
    assert sorted(r.name for r in report.results) == ["fc.W", "head.A", "head.b", "input"]


@pytest.mark.parametrize("bug, guilty", [({"transpose_bug": True}, "head.A"), ({"factor": 2.0}, "head.b")])
def test_wrong_backward_fails_on_the_right_tensor(bug: dict[str, object], guilty: str) -> None:
    report = md.GradientChecker(Net(**bug), inputs=np.random.default_rng(1).normal(size=(5, 3))).run()
    assert not report.passed
    failed = [r.name for r in report.results if not r.passed]
    assert failed == [guilty]
    assert guilty in str(report)
    with pytest.raises(md.GradientCheckError, match=guilty):
        report.raise_if_failed()
