"""The exceptions minidl raises, so that users can catch them precisely.

Each one subclasses the built-in exception a Python user would expect (``ValueError`` for bad
values and shapes, ``TypeError`` for bad types, ``RuntimeError`` for calls in the wrong order),
and :class:`MinidlError`, so ``except minidl.MinidlError`` catches everything minidl raises on
purpose.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackwardBeforeForwardError",
    "CheckpointError",
    "DTypeError",
    "GradientCheckError",
    "IndexRangeError",
    "MinidlError",
    "NonDeterministicError",
    "NonFiniteError",
    "RegistrationError",
    "ShapeError",
    "StateDictError",
    "TargetError",
]


class MinidlError(Exception):
    """Base class of every exception minidl raises deliberately."""


class ShapeError(MinidlError, ValueError):
    """An array has the wrong number of dimensions or the wrong size along one of them."""


class DTypeError(MinidlError, TypeError):
    """An array has the wrong dtype (e.g. integers where floats are needed), or is not an array."""


class NonFiniteError(MinidlError, ValueError):
    """An array holds NaN or inf where finite numbers are needed.

    ``index`` and ``shape``: where the first one is in the checked array, and that array's shape, when
    the check searched for it; when the array has one row per sample of the batch, ``fit``,
    ``evaluate`` and ``predict`` turn its row into the sample of your data.
    """

    index: tuple[int, ...] | None = None
    shape: tuple[int, ...] | None = None


class TargetError(MinidlError, ValueError):
    """A loss's targets (or a prediction with a range of its own: ``BCELoss``'s probabilities,
    ``GaussianNLLLoss``'s variances) are outside their valid range (a class label >= C, a probability
    outside [0, 1], a negative variance), or of a kind the loss's settings do not apply to (class
    probabilities for a ``CrossEntropyLoss`` whose ``ignore_index`` is a class).

    ``index`` and ``shape``: where the first bad value is in the checked array, and that array's shape,
    when the check located it; as for :class:`NonFiniteError`, ``fit`` and ``evaluate`` turn its row into
    the sample of your data.
    """

    index: tuple[int, ...] | None = None
    shape: tuple[int, ...] | None = None

    @classmethod
    def located(cls, message: str, index: tuple[int, ...], shape: tuple[int, ...]) -> TargetError:
        """The error with ``message``, the bad value's ``index`` in the checked array of ``shape``."""
        error = cls(message)
        error.index, error.shape = index, shape
        return error


class IndexRangeError(MinidlError, IndexError, ValueError):
    """An index is outside its valid range (an ``Embedding`` index not in ``[0, num_embeddings)``):
    an ``IndexError``, as NumPy and PyTorch raise, and a ``ValueError``, as ``TargetError`` is."""


class BackwardBeforeForwardError(MinidlError, RuntimeError):
    """``backward`` (or another reader of the forward's cache, such as
    ``MultiHeadAttention.attention_weights``) was called on a layer or loss that has no cached forward pass."""


class _AsWritten:
    """For a ``KeyError`` with a sentence for its message: shown as written, where ``KeyError`` repr()s its
    argument (``KeyError: 'W'`` for a missing key), which would quote the sentence and escape its newlines."""

    args: tuple[Any, ...]

    def __str__(self) -> str:
        if len(self.args) == 1:
            return str(self.args[0])
        return super().__str__()  # (none: "", several: the tuple, as every exception shows them)


class StateDictError(_AsWritten, MinidlError, KeyError):
    """``load_state_dict`` refused a state: lists every missing/unexpected key and mismatch."""


class RegistrationError(_AsWritten, MinidlError, KeyError):
    """A parameter, layer, buffer or generator was given a name it may not take: one of the layer's methods
    (``forward``), one of its own registries (``_parameters``), or, for a buffer, a parameter's or layer's
    name.  A ``KeyError``, as it always was."""


class CheckpointError(MinidlError, ValueError):
    """A checkpoint file is corrupt, truncated, of an unknown format, or holds unsafe data."""


class NonDeterministicError(MinidlError, RuntimeError):
    """The cost is not a deterministic function of the parameters, so it cannot be differenced."""


class GradientCheckError(MinidlError, AssertionError):
    """The back-pass disagrees with central differences; the message is the checker's table.

    ``report``: the :class:`~minidl.gradcheck.GradientReport` (``None`` if raised without one);
    ``samples``: from ``fit(gradcheck_every=...)``, the positions in ``fit``'s ``x`` of the samples checked."""

    report: Any = None
    samples: Any = None


# ------------------------------------------------------------------ message helpers (not exported)
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to about 60 characters, and never raising (a ``__repr__`` that fails gives
    ``<Type instance at 0x...>``): for values from a user's state put in a message."""
    return _SHORT.repr(value)


def nested_state_hint(entries: Sequence[tuple[Any, str]], owner: str, kind: str = "") -> str:
    """The last line of a refused ``load_state_dict`` given a whole training checkpoint
    (``{"model": ..., "optimizer": ..., "epoch": 3}``): ``entries`` are ``(key, note)`` for each entry holding a
    nested ``kind`` state dict that ``owner`` (the type name of the layer or optimizer) might load, the note
    appended after its ``state[key]`` (e.g. which optimizer saved it); ``""`` for none.  At most 5 are named."""
    if not entries:
        return ""
    keys = [short_repr(key) for key, _ in entries[:5]]
    places = [f"state[{key}]{note}" for key, (_, note) in zip(keys, entries, strict=False)]
    if len(entries) == 1:
        return (f"\nThe state holds a nested {kind}state dict under {keys[0]}, as a training checkpoint does: "
                f"pass {places[0]}")
    if len(entries) > 5:
        names = f"{', '.join(keys)} and {len(entries) - 5} more"
        choices = f"{', '.join(places)} or one of the {len(entries) - 5} more"
    else:
        names = f"{', '.join(keys[:-1])} and {keys[-1]}"
        choices = f"{', '.join(places[:-1])} or {places[-1]}"
    return (f"\nThe state holds nested {kind}state dicts under {names}, as a training checkpoint does: pass the "
            f"one for this {owner}: {choices}")
