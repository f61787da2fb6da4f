"""pytest-friendly helpers: ``assert_gradients_ok`` fails with the checker's table; ``layer_cases``
parametrises a layer test over shapes, dtypes and seeds; ``states_equal`` compares two
``state_dict``s exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import GradientCheckError
from .gradcheck import GradientChecker, GradientReport
from .init import switch
from .inputs import Inputs
from .layer import Layer

__all__ = ["LayerCase", "assert_backward_params_contract", "assert_gradients_ok", "layer_cases", "states_equal"]


def states_equal(a: Any, b: Any) -> bool:
    """Whether two ``state_dict``s (nested dicts and lists of arrays and numbers) are exactly equal:
    the same keys, arrays of the same dtype and values (NaN equal to NaN), numbers of the same type."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(states_equal, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    return type(a) is type(b) and bool(a == b)


def assert_gradients_ok(
    layer_or_model: Layer,
    inputs: Any = None,
    loss: Any = None,
    targets: Any = None,
    *,
    allow_unchecked: bool = False,
    **kwargs: Any,
) -> GradientReport:
    """Run :class:`~minidl.gradcheck.GradientChecker` and raise ``GradientCheckError`` (an
    ``AssertionError``) with the report's table if any tensor fails, or if nothing at all was checked
    (every tensor frozen, at kinks, empty or flat: a test that passes vacuously) unless ``allow_unchecked=True``
    says that is what the test means; returns the report otherwise.

    ``kwargs`` go to the checker (``eps``, ``seed``, ``batch_size``, ``safety``, ...).
    """
    allow_unchecked = switch(allow_unchecked, "allow_unchecked", "assert_gradients_ok")
    checker = GradientChecker(layer_or_model, loss=loss, inputs=inputs, targets=targets, **kwargs)
    report = checker.run().raise_if_failed()
    if report.nothing_checked and not allow_unchecked:
        raise GradientCheckError(
            f"{report}\nassert_gradients_ok: the check passed, but nothing was checked (no tensor, or every one "
            "frozen, at kinks, empty or flat: every derivative exactly 0), so it proves nothing: check other inputs "
            "(a ReLU fed exact zeros sits on its kink; rows that carry weight, units that are alive), or pass "
            "allow_unchecked=True if that is what the test means")
    return report


def _assert_same_dx(got: Any, expected: Any, rtol: float) -> None:
    """Equal input gradients: arrays, or tuples of arrays and ``None`` (a layer with several inputs)."""
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected), f"expected {len(expected)} gradients, got {got!r}"
        for a, b in zip(got, expected, strict=True):
            assert (a is None) == (b is None), "a gradient is None on one side only"
            if b is not None:
                np.testing.assert_allclose(a, b, rtol=rtol)
    else:
        np.testing.assert_allclose(got, expected, rtol=rtol)


def assert_backward_params_contract(make: Callable[[], Layer], x: Inputs, g: np.ndarray,
                                    rtol: float = 1e-14) -> Layer:
    """Assert what a layer's own ``backward_params`` owes ``backward`` (``make()`` builds fresh, equal
    layers; ``g``: a gradient of the output of ``x``, one array or several inputs as a tuple):

    * it returns ``None`` and adds exactly the parameter gradients ``backward`` adds;
    * right after ``zero_grad`` it overwrites stale values (NaN here) in every gradient array;
    * a second call, or a ``backward`` after one, accumulates;
    * a frozen layer (``requires_grad_(False)``) still gives ``backward``'s ``dx``, and its
      ``backward_params`` leaves every gradient untouched.

    Returns the frozen layer, after its forward on ``x``, for further checks."""
    a, b = make(), make()
    a(x)
    b(x)
    dx = a.backward(g)
    expected = {name: p.grad.copy() for name, p in a.named_parameters()}
    for p in b.parameters():
        p.grad[...] = np.nan  # stale values: zero_grad marks them, the next backward must overwrite them all
    b.zero_grad()
    assert b.backward_params(g) is None  # type: ignore[func-returns-value]  # (a custom one may return dx)
    for name, p in b.named_parameters():
        np.testing.assert_allclose(p.grad, expected[name], rtol=rtol, err_msg=f"backward_params: {name}")
    b.backward_params(g)  # accumulates
    a.backward(g)  # the full backward accumulates too
    for layer in (a, b):
        for name, p in layer.named_parameters():
            np.testing.assert_allclose(p.grad, 2 * expected[name], rtol=rtol, err_msg=f"accumulated: {name}")
    frozen = make()
    frozen.requires_grad_(False)
    frozen(x)
    _assert_same_dx(frozen.backward(g), dx, rtol)  # dx still flows through a frozen layer
    frozen.zero_grad()  # (its backward may have computed the frozen gradients anyway: that is allowed)
    assert frozen.backward_params(g) is None  # type: ignore[func-returns-value]
    written = [name for name, p in frozen.named_parameters() if p.has_grad]
    assert not written, f"backward_params of a frozen layer wrote the gradients of {written}"
    return frozen


@dataclass(frozen=True)
class LayerCase:
    """One combination of shape, dtype and seed for a parametrised gradient test."""

    shape: tuple[int, ...]
    dtype: Any
    seed: int

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.shape))}-{np.dtype(self.dtype).name}-seed{self.seed}"


def layer_cases(
    shapes: Iterable[tuple[int, ...]],
    dtypes: Iterable[Any] = (np.float64, np.float32),
    seeds: Iterable[int] = (0, 1),
) -> list[LayerCase]:
    """Every combination of ``shapes x dtypes x seeds``, for ``pytest.mark.parametrize``::

        @pytest.mark.parametrize("case", layer_cases([(3, 4), (5, 2)]), ids=str)
        def test_dense(case):
            assert_gradients_ok(Dense(*case.shape, rng=case.seed, dtype=case.dtype), seed=case.seed)

    A float32 layer is checked in float64 on a copy, so the same tolerances apply to every dtype.
    """
    return [LayerCase(tuple(shape), dtype, seed) for shape in shapes for dtype in dtypes for seed in seeds]
