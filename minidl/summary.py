"""``model.summary()``: a Keras-like table of the layers, their output shapes and parameter counts.

The output shapes come from one forward pass on a small random batch, in eval mode, through a deep
copy of the model: the model itself (its parameters, buffers, caches, generators and modes) is left
exactly as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .errors import DTypeError, MinidlError, ShapeError
from .inputs import Inputs, as_inputs, count, is_several
from .layer import Layer
from .validation import is_integer

__all__ = ["ModelSummary", "SummaryRow", "summarize"]

_DUMMY_BATCH = 2


@dataclass
class SummaryRow:
    """One layer: dotted ``name``, ``type_name``, ``output_shape`` (batch axis shown as ``None``;
    ``"not called"`` if the forward did not use it; ``"(its layers)"`` for a holder without a forward of
    its own, a ``LayerList``, whose layers ran), ``params`` (parameter and floating buffer
    elements in it and its sub-layers, each array once), ``depth`` (1 for the model's direct children)."""

    name: str
    type_name: str
    output_shape: str
    params: int
    depth: int
    calls: int = 1


@dataclass
class ModelSummary:
    """What :func:`summarize` returns; ``str()`` gives the table.

    ``trainable`` counts the elements of parameters with ``requires_grad``; ``non_trainable`` those of
    frozen parameters plus floating buffers (e.g. batch-norm running statistics, as Keras counts them).
    A parameter or buffer that several layers hold counts once, so the rows of two layers sharing one add
    up to more than the total.
    """

    model_name: str
    #: one sample's shape (no batch axis), or one per input for a model with several
    input_shape: tuple[int, ...] | tuple[tuple[int, ...], ...]
    rows: list[SummaryRow] = field(default_factory=list)
    trainable: int = 0
    non_trainable: int = 0
    trainable_bytes: int = 0
    non_trainable_bytes: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        cells = [
            ("  " * (row.depth - 1) + f"{row.name} ({row.type_name})"
             + (f" x{row.calls}" if row.calls > 1 else ""), row.output_shape, f"{row.params:,}")
            for row in self.rows
        ]
        widths = [max([len(header[i])] + [len(c[i]) for c in cells]) + 2 for i in range(3)]
        width = sum(widths) + 1

        def line(c: Sequence[str]) -> str:
            return (" " + c[0].ljust(widths[0]) + c[1].ljust(widths[1]) + c[2].rjust(widths[2] - 2)).rstrip()

        out = [f'Model: "{self.model_name}"', _inputs_text(self.input_shape), "_" * width,
               line(header), "=" * width]
        out += [line(c) for c in cells] or [" (no sub-layers)"]
        out += ["=" * width,
                f"Total params: {self.total:,} ({_size(self.trainable_bytes + self.non_trainable_bytes)})",
                f"Trainable params: {self.trainable:,} ({_size(self.trainable_bytes)})",
                f"Non-trainable params: {self.non_trainable:,} ({_size(self.non_trainable_bytes)})",
                "_" * width]
        return "\n".join(out)


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"  # pragma: no cover


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["None", *(str(s) for s in shape)]) + ")"


def _inputs_text(shape: tuple[int, ...] | tuple[tuple[int, ...], ...]) -> str:
    """``Input shape: (None, 64)``, or for several inputs ``Input shapes: [(None, 3, 4), (None, 3)]``."""
    shapes = [s for s in shape if isinstance(s, tuple)]
    if shapes and len(shapes) == len(shape):
        return "Input shapes: [" + ", ".join(_shape_text(s) for s in shapes) + "]"
    return f"Input shape: {_shape_text(tuple(s for s in shape if isinstance(s, int)))}"


def _describe(output: Any) -> str:
    if isinstance(output, np.ndarray):
        return _shape_text(output.shape[1:]) if output.ndim else "()"
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_describe(o) for o in output) + "]"
    return type(output).__name__


def _counts(layer: Layer) -> tuple[int, int, int, int]:
    """(trainable, non_trainable, trainable_bytes, non_trainable_bytes) of ``layer`` and its sub-layers; a
    parameter or a buffer that several of them hold (the same object) counts once, as in ``parameters()``
    and ``buffers()``."""
    trainable = frozen = trainable_bytes = frozen_bytes = 0
    for _, param in layer.named_parameters():  # (each parameter once)
        if param.requires_grad:
            trainable += param.size
            trainable_bytes += param.data.nbytes
        else:
            frozen += param.size
            frozen_bytes += param.data.nbytes
    seen: set[int] = set()
    for sub in layer.layers():  # the state's floating buffers (not a non-persistent setting: an attention mask)
        for name, buffer in sub._buffers.items():
            if buffer is None or name in sub._non_persistent or buffer.dtype.kind != "f" or id(buffer) in seen:
                continue
            seen.add(id(buffer))
            frozen += buffer.size
            frozen_bytes += buffer.nbytes
    return trainable, frozen, trainable_bytes, frozen_bytes


def summarize(
    model: Layer,
    input_shape: Sequence[int] | None = None,
    *,
    inputs: Any = None,
    dtype: DTypeLike | None = None,
    expand_nested: bool = False,
) -> ModelSummary:
    """Summarise ``model``: its layers, their output shapes and parameter counts.

    Args:
        input_shape: the shape of one sample, without the batch axis, e.g. ``(64,)`` or ``(1, 8, 8)``;
            by default ``model.input_shape_hint()``.
        inputs: instead of ``input_shape``, a batch to run, used as given: one array ``(N, ...)`` or,
            for a model with several inputs, a tuple of them (e.g. ``(x, mask)``).  Shapes are shown
            without the batch axis, whatever ``N``.
        dtype: of the dummy batch (``model.random_inputs``, N(0, 1) floats); by default the dtype of
            the model's parameters (else float64).  Not used when the batch is not floats (an
            ``Embedding``'s indices).
        expand_nested: list every layer at every depth (indented), not only the model's children.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"summary: expected a Layer, got {type(model).__name__}")
    name = type(model).__name__
    if inputs is not None:
        if input_shape is not None or dtype is not None:
            raise ValueError("summary: inputs is a batch used as given (its shapes and dtypes); give it "
                             "alone, without input_shape or dtype")
        batch = _given_batch(inputs)
    else:
        batch = _dummy_batch(model, input_shape, dtype)
    several = isinstance(batch, tuple)  # (several inputs: as_inputs and random_inputs give a tuple of arrays)
    arrays: list[np.ndarray] = list(batch) if isinstance(batch, tuple) else [batch]

    clone = copy.deepcopy(model)
    entered: list[str] = []
    shapes: dict[str, str] = {}
    calls: dict[str, int] = {}

    def wrap(layer: Layer, layer_name: str) -> None:
        original: Callable[[Any], Any] = layer.forward

        def forward(x: Any) -> Any:
            if layer_name not in calls:
                entered.append(layer_name)
            calls[layer_name] = calls.get(layer_name, 0) + 1
            out = original(x)
            shapes.setdefault(layer_name, _describe(out))
            return out

        object.__setattr__(layer, "forward", forward)

    named = [(n, layer) for n, layer in clone.named_layers() if n]
    for layer_name, layer in named:
        wrap(layer, layer_name)
    clone.eval()
    try:
        clone(batch)
    except MinidlError as error:
        if error.args and isinstance(error.args[0], str):
            what = f"of shapes {tuple(a.shape for a in arrays)}" if several else f"of shape {arrays[0].shape}"
            if inputs is not None:
                what, advice = f"on the given batch {what}", ""
            else:
                what, advice = f"on a dummy batch {what}", _dummy_advice(error, input_shape is None, several,
                                                                          arrays[0])
            error.args = (f"summary: the forward {what} failed: {error.args[0]}{advice}", *error.args[1:])
        raise

    by_name = dict(named)
    wanted = [n for n, _ in named if expand_nested or "." not in n]
    order = {n: i for i, n in enumerate(entered)}
    # a holder whose own forward did not run (a LayerList the model loops over) ran through its layers:
    # it is placed, and counts as called, where the first of them ran
    through = {n: min(i for m, i in order.items() if m.startswith(n + "."))
               for n in wanted if n not in order and any(m.startswith(n + ".") for m in order)}
    ranked = sorted((n for n in wanted if n in order or n in through),
                    key=lambda n: (order.get(n, through.get(n, 0)), n in order))  # (a holder before its first)
    ordered = ranked + [n for n in wanted if n not in order and n not in through]
    shape = tuple(a.shape[1:] for a in arrays) if several else arrays[0].shape[1:]
    result = ModelSummary(name, shape)
    for layer_name in ordered:
        layer = by_name[layer_name]
        trainable, frozen, _, _ = _counts(layer)
        described = shapes.get(layer_name, "(its layers)" if layer_name in through else "not called")
        result.rows.append(SummaryRow(layer_name, type(layer).__name__, described,
                                      trainable + frozen, layer_name.count(".") + 1,
                                      calls.get(layer_name, 1)))
    (result.trainable, result.non_trainable,
     result.trainable_bytes, result.non_trainable_bytes) = _counts(model)
    return result


def _given_batch(inputs: Any) -> Inputs:
    """``summarize(inputs=...)``: one array or a tuple of them, each with a batch axis of at least one
    sample."""
    batch = as_inputs(inputs, "summary", "inputs")
    if isinstance(batch, np.ndarray) and batch.ndim == 0:
        raise ShapeError(f"summary: inputs needs a batch axis, got shape {batch.shape}")
    if count(batch) == 0:
        raise ShapeError("summary: inputs holds no sample (its batch axis has length 0)")
    return batch


def _dummy_batch(model: Layer, input_shape: Sequence[int] | None, dtype: DTypeLike | None) -> Inputs:
    """The random batch of :data:`_DUMMY_BATCH` samples of ``input_shape`` (default: the model's hint) that
    ``model.random_inputs`` draws, floats in ``dtype``; several arrays for a model with several inputs."""
    name = type(model).__name__
    if input_shape is None:
        hint = model.input_shape_hint()
        if hint is None or any(s is None for s in hint):
            raise ShapeError(f"summary: {name} cannot infer its input shape; pass input_shape=(...), the "
                             "shape of one sample without the batch axis, e.g. (1, 8, 8), or inputs=, a batch")
        input_shape = hint
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"summary: input_shape must be a tuple of sizes, e.g. (1, 28, 28), "
                        f"got {input_shape!r}") from None
    if not all(is_integer(s) and s >= 1 for s in shape):  # 64.9 was truncated to 64, -1 a NumPy error
        raise ValueError(f"summary: input_shape must hold ints >= 1 (one sample, no batch axis), "
                         f"got {input_shape!r}")
    shape = tuple(int(s) for s in shape)
    if dtype is None:
        params = model.parameters()
        dtype = params[0].dtype if params else np.float64
    dummy = model.random_inputs((_DUMMY_BATCH, *shape), np.random.default_rng(0))

    def cast(a: np.ndarray) -> np.ndarray:
        return a.astype(dtype) if a.dtype.kind == "f" else a  # (not an Embedding's indices)

    # (a model with several inputs draws a tuple: see Layer.random_inputs)
    return tuple(cast(a) for a in dummy) if is_several(dummy) else cast(dummy)


def _dummy_advice(error: MinidlError, guessed: bool, several: bool, first: np.ndarray) -> str:
    """What to try when the forward on the dummy batch failed with ``error``; ``first``: the (first) input."""
    advice = (f"; the shape {first.shape[1:]} was guessed from the first layer: pass input_shape=(...), the "
              "shape of one sample without the batch axis, or inputs=, a batch") if guessed else ""
    if isinstance(error, DTypeError) and not several and first.dtype.kind == "f":
        advice += ("; the dummy batch is model.random_inputs(shape, rng), N(0, 1) floats unless the model says "
                   "otherwise: if its first layer takes other inputs (an Embedding's indices, several inputs as "
                   "a tuple) inside a custom Model, override random_inputs there, or pass inputs=, a batch")
    return advice
