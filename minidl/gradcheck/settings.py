"""The checks of ``GradientChecker``'s settings: each takes ``(who, name, value)`` and returns the value
to keep or raises the error naming the checker and the setting (``validation.checked_setting`` calls
them when the checker is made and whenever a setting is assigned again, so one check, one message)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..init import switch_setting
from ..layer import Layer
from ..validation import is_integer, is_number

__all__ = ["MAX_BATCH_SIZE", "MODES", "at_least", "batch_size", "check_input", "drawn_batch_size", "empty_batch", "eps",
           "inputs", "layer", "loss", "mode", "params", "safety", "seed", "switch_setting"]

MODES = ("auto", "full", "sampled", "directional")
#: the largest ``batch_size`` of inferred inputs: every cost evaluation runs the whole batch, and a few
#: samples exercise the batch reductions; a larger batch is passed as ``inputs=``
MAX_BATCH_SIZE = 1024


def _integer(who: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (Python or NumPy integer, not bool), else TypeError/ValueError."""
    if not is_integer(value):
        hint = " (the checker is always seeded, so that a report can be reproduced)" if name == "seed" else ""
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__} {value!r}{hint}")
    if value < low:
        raise ValueError(f"{who}: {name} must be an int >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{who}: {name} must be an int in [{low}, {high}], got {value!r}")
    return int(value)


def _number(who: str, name: str, value: Any) -> float:
    """``value`` as a float (Python or NumPy real, not bool), else TypeError."""
    if not is_number(value):
        raise TypeError(f"{who}: {name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def at_least(low: int) -> Callable[[str, str, Any], int]:
    """The check of an int setting ``>= low`` (``samples``, ``directions``: 1; ``full_max``: 0)."""
    def check(who: str, name: str, value: Any) -> int:
        return _integer(who, name, value, low)
    return check


def check_input(who: str, name: str, value: Any) -> bool | tuple[bool, ...]:
    """True or False (every floating input checked, or none), or a tuple (or list) of them, one per input, kept
    as a tuple: ``(True, False)`` leaves out a float input without a gradient (a mask, sample weights).  Its
    length is compared with the number of inputs when the check runs (the inputs may be drawn then)."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise ValueError(f"{who}: {name} must be True, False, or one bool per input, got an empty "
                             f"{type(value).__name__}")
        return tuple(switch_setting(who, f"{name}[{i}]", v) for i, v in enumerate(value))
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {value!r} (or a tuple of them, one per "
                        "input)")
    return bool(value)


def params(who: str, name: str, value: Any) -> tuple[str, ...] | None:
    """None (every parameter), or the dotted names of the parameters to check (as ``named_parameters()`` gives
    them; ``loss.<name>`` for the loss's), kept as a tuple (empty: the inputs only); whether they exist is checked
    when the check runs."""
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{who}: {name} must be a list of parameter names, got the string {value!r} (one name: "
                        f"{name}=[{value!r}])")
    try:
        names = tuple(value)
    except TypeError:
        raise TypeError(f"{who}: {name} must be None or a list of parameter names, got {type(value).__name__} "
                        f"{value!r}") from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{who}: {name} must hold parameter names (strings, as named_parameters() gives them), got "
                        f"{bad[0]!r} of type {type(bad[0]).__name__}")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{who}: {name} names {twice!r} more than once")
    return names


def seed(who: str, name: str, value: Any) -> int:
    """An int >= 0 (``None`` refused: the check is always seeded)."""
    return _integer(who, name, value, 0)


def batch_size(who: str, name: str, value: Any) -> int:
    """An int >= 1: the samples of the inferred inputs (at most ``MAX_BATCH_SIZE`` when they are drawn,
    :func:`drawn_batch_size`; unused when ``inputs=`` is given)."""
    return _integer(who, name, value, 1)


def drawn_batch_size(who: str, value: int) -> int:
    """``value``, the samples of the inputs about to be drawn, if at most ``MAX_BATCH_SIZE``, else ValueError."""
    if value > MAX_BATCH_SIZE:
        raise ValueError(f"{who}: batch_size must be at most {MAX_BATCH_SIZE} to draw the inputs, got {value!r} "
                         "(every cost evaluation runs the whole batch, and a few samples exercise the batch "
                         "reductions; pass a larger batch as inputs=)")
    return value


def eps(who: str, name: str, value: Any) -> float:
    """A number in (0, 1): the relative step."""
    step = _number(who, name, value)
    if not 0 < step < 1:
        raise ValueError(f"{who}: {name} must be a number in (0, 1), got {value!r}")
    return step


def safety(who: str, name: str, value: Any) -> float:
    """A finite number > 1: an element fails when its error exceeds ``safety`` times its bound."""
    factor = _number(who, name, value)
    if not 1 < factor < math.inf:
        raise ValueError(f"{who}: {name} must be a finite number > 1, got {value!r}")
    return factor


def mode(who: str, name: str, value: Any) -> str:
    """One of :data:`MODES` (a NumPy string as a plain str)."""
    if not isinstance(value, str) or value not in MODES:
        raise ValueError(f"{who}: {name} must be one of {MODES}, got {value!r}")
    return str(value)


def layer(who: str, name: str, value: Any) -> Layer:
    """A minidl ``Layer`` (a model, a ``Sequential``, one layer)."""
    if not isinstance(value, Layer):
        raise TypeError(f"{who}: expected a minidl Layer or Model, got {type(value).__name__}")
    return value


def loss(who: str, name: str, value: Any) -> Any:
    """``None`` or an object with ``forward(y_pred, y_true)`` and ``backward()`` (an instance, not a class)."""
    if isinstance(value, type):  # (its methods would pass the check below, unbound)
        raise TypeError(f"{who}: loss is the class {value.__name__}; pass an instance, loss={value.__name__}()")
    if value is not None and not (hasattr(value, "forward") and hasattr(value, "backward")):
        hint = ("; the second positional argument is the loss: for the input batch write "
                f"{who}(model, inputs=x)") if isinstance(value, (np.ndarray, list, tuple)) else ""
        raise TypeError(f"{who}: loss must have forward(y_pred, y_true) and backward(){hint}")
    return value


def empty_batch(who: str, x: Any, what: str = "inputs") -> None:
    """``ShapeError`` if ``x`` (one array, or a tuple of several inputs) holds an array whose first
    (batch) axis has length 0: no sample, so the cost is identically 0 and nothing can be checked."""
    arrays = x if type(x) is tuple else (x,)
    for i, a in enumerate(arrays):
        shape = getattr(a, "shape", None) if isinstance(a, np.ndarray) else None
        if shape and shape[0] == 0:
            where = f"{what}[{i}]" if type(x) is tuple else what
            raise ShapeError(f"{who}: {where} is an empty batch (shape {shape}): with no sample the cost is "
                             "identically 0 and so is every gradient, so nothing could be checked; give it at "
                             "least one sample (a few, so that the batch reductions are exercised)")


def inputs(who: str, name: str, value: Any) -> Any:
    """``None`` (inputs drawn) or the input batch, kept as given (converted when the check runs); an
    array (or a tuple of them) with an empty batch is refused here, anything else when the check runs."""
    empty_batch(who, value, name)
    return value
