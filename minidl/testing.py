"""pytest-friendly helpers: ``assert_gradients_ok`` fails with the checker's table."""

from __future__ import annotations

from typing import Any

from .gradcheck import GradientChecker, GradientReport
from .layer import Layer

__all__ = ["assert_gradients_ok"]


def assert_gradients_ok(
    layer_or_model: Layer,
    inputs: Any = None,
    loss: Any = None,
    targets: Any = None,
    **kwargs: Any,
) -> GradientReport:
    """Run :class:`~minidl.gradcheck.GradientChecker` and raise ``GradientCheckError`` (an
    ``AssertionError``) with the report's table if any tensor fails; returns the report otherwise.

    ``kwargs`` go to the checker (``eps``, ``seed``, ``batch_size``, ``safety``, ...).
    """
    checker = GradientChecker(layer_or_model, loss=loss, inputs=inputs, targets=targets, **kwargs)
    return checker.run().raise_if_failed()
