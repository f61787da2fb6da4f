"""How the checker's words name a layer (``layer '0.1' (Dense)``) and the model's inputs (``input``, ``input[0]``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..inputs import is_several
from ..layer import Layer

__all__ = ["label", "layer_label", "named_inputs"]


def label(path: str, layer: Layer) -> str:
    """``'0.1' (Dense)``, or ``the model itself (Net)`` at the top (see :func:`layer_label`)."""
    return f"'{path}' ({type(layer).__name__})" if path else f"the model itself ({type(layer).__name__})"


def layer_label(path: str, layer: Layer, also: Sequence[str] = ()) -> str:
    """``layer '0.1' (Dense)``, or ``the model itself (Net)`` at the top; with ``also``, the other paths the
    same layer object sits at: ``layer 'a' (Dense, also at 'b')``."""
    if not path:
        return label(path, layer)
    if not also:
        return f"layer {label(path, layer)}"
    return f"layer '{path}' ({type(layer).__name__}, also at {', '.join(f'{p!r}' for p in also)})"


def named_inputs(x: Any) -> list[tuple[str, Any]]:
    """The input's tensors by their names in the report: ``"input"``, or ``"input[i]"`` for several."""
    return [(f"input[{i}]", a) for i, a in enumerate(x)] if is_several(x) else [("input", x)]
