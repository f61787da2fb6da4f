"""Gradient checking: :class:`GradientChecker` and its :class:`GradientReport`.

See ``docs/gradient-checker.md`` for how it works (error measure, bound, kinks, modes).
"""

from .checker import GradientChecker
from .report import GradientReport, TensorResult

__all__ = ["GradientChecker", "GradientReport", "TensorResult"]
