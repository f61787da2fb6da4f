"""The checker's notes after a review of them (s22, H9): a user's exception raised on drawn targets is
never rebuilt; the note on a layer run several times in a pass blames only what it can know; the loss
checked alone is judged by its dLoss/dy_pred; the all-zero parameter note is for the user's layers and
the loss only; a loss's parameters in a dict are checked; a loss whose deepcopy is itself is left as it
was; one check of what loss.backward() returns for fit and the checker."""

from __future__ import annotations

import errno
import sys
from typing import Any

import numpy as np
import pytest

import minidl as md

needs_notes = pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note: Python 3.11")


class ScaledMSE(md.Loss):
    """exp(log_s) * mean((y - t)^2) with a learnable log_s; ``sign=-1`` plants a wrong d/dlog_s."""

    def __init__(self, sign: float = 1.0, log_s: float = 0.3) -> None:
        self.log_s = md.Parameter(np.array([log_s]))
        self.sign = sign

    def forward(self, y: np.ndarray, t: np.ndarray) -> float:
        self._d = y - t
        self._s = float(np.exp(self.log_s.data[0]))
        self._m = float(np.mean(self._d ** 2))
        return self._s * self._m

    def backward(self) -> np.ndarray:
        self.log_s.grad += np.array([self.sign * self._s * self._m], dtype=self.log_s.grad.dtype)
        return (self._s * 2 * self._d / self._d.size).astype(self._d.dtype, copy=False)


def mlp() -> md.Sequential:
    return md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, 2, rng=1))


def batch(seed: int = 0, shape: tuple[int, ...] = (5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


# ------------------------------------------------------------------ D3: a user's exception is raised as it is
def raising(make: Any) -> md.Loss:
    class Refuses(md.Loss):
        def forward(self, y: np.ndarray, t: np.ndarray) -> float:
            raise make()

        def backward(self) -> np.ndarray:
            raise AssertionError("never called")

    return Refuses()


class Coded(ValueError):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"bad code {code}")


def with_attribute() -> ValueError:
    error = ValueError("targets out of range")
    error.field = "y_true"  # type: ignore[attr-defined]
    error.add_note("the user's own note")
    return error


@needs_notes
@pytest.mark.parametrize("make, check", [
    (lambda: OSError(errno.ENOENT, "No such file", "/tmp/x"),
     lambda e: type(e) is FileNotFoundError and e.errno == errno.ENOENT and e.filename == "/tmp/x"
     and str(e) == "[Errno 2] No such file: '/tmp/x'"),
    (lambda: ValueError("bad", 3), lambda e: e.args == ("bad", 3)),
    (lambda: Coded(3), lambda e: type(e) is Coded and e.code == 3 and e.args == ("bad code 3",)),
    (with_attribute, lambda e: e.field == "y_true" and str(e) == "targets out of range"
     and e.__notes__[0] == "the user's own note"),
    (lambda: AttributeError("no attribute 'wieght'", name="wieght", obj=None),
     lambda e: e.name == "wieght" and e.args == ("no attribute 'wieght'",)),
    (lambda: IndexError("index 5 is out of bounds"), lambda e: str(e) == "index 5 is out of bounds"),
])
def test_a_users_exception_on_drawn_targets_is_the_same_object_with_the_hint_as_a_note(make: Any,
                                                                                        check: Any) -> None:
    with pytest.raises(Exception) as info:
        md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0)), loss=raising(make), inputs=batch(0, (4, 3))).run()
    error = info.value
    assert check(error)
    assert error.__cause__ is None  # (raised itself, not a copy raised from it)
    assert any(n.startswith("(raised by the loss on the targets the checker drew for it with Refuses.random_targets")
               for n in error.__notes__)


def test_a_minidl_error_on_drawn_targets_keeps_the_hint_in_its_message() -> None:
    with pytest.raises(md.TargetError, match=r"^Refuses: y_true holds label 9 \(the loss refused the targets the "
                                             r"checker drew for it with Refuses\.random_targets: pass targets="):
        md.GradientChecker(md.Sequential(md.Dense(3, 2, rng=0)),
                           loss=raising(lambda: md.TargetError("Refuses: y_true holds label 9")),
                           inputs=batch(0, (4, 3))).run()
