"""``model.summary()``: a Keras-like table of the layers, their output shapes and parameter counts.

The output shapes come from two forward passes at two batch sizes (a random batch of 3 then 4 samples,
or a given batch of ``n`` samples then its first ``n - 1``, or its one sample twice), each in eval mode
through its own deep copy of the model: the model itself (its parameters, buffers, caches, generators
and modes) is left exactly as it was.  An axis of the same length at both sizes is a fixed number; one
that follows the batch size is ``kN`` (``N`` samples), shown as ``None`` when it is an output's first
axis of exactly ``N`` rows, as in Keras; one that changes otherwise is ``?``.  When the second forward
fails (a model that runs at one batch size only), or a layer runs in the first forward only, the shapes
are the first forward's with axis 0 shown as ``None``, as a single forward shows them.  Each copy is
freed before the next is made: the summary holds at most one copy of the model at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .errors import DTypeError, MinidlError, ShapeError
from .inputs import Inputs, as_inputs, count, is_several, rows, take_rows
from .layer import Layer
from .validation import is_integer

__all__ = ["ModelSummary", "SummaryRow", "summarize"]

#: the two batch sizes of the dummy batch: a layer that merges the batch into another axis (``Flatten(0)``)
#: or reduces it away (a sum over the batch) is told apart by comparing the outputs at both
_DUMMY_SIZES = (3, 4)

#: a layer's output at one batch size: an array's shape, a list of them for a tuple or a list, else a type
_Shapes = tuple[int, ...] | list[Any] | str


@dataclass
class SummaryRow:
    """One layer: dotted ``name``, ``type_name``, ``output_shape`` (e.g. ``"(None, 32)"``: an output's
    first axis of ``N`` rows, one per sample, is ``None``; any other axis that grows with the batch is
    ``kN``, e.g. ``"(18N,)"`` after ``Flatten(0)``, and one that changes with it otherwise ``?``;
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
    up to more than the total.  ``uses_n``: some output shape has an axis ``kN`` (a multiple of the
    batch size other than an output's first axis of ``N`` rows, which is ``None``); ``uses_unknown``:
    some axis changes with the batch size but is not a multiple of it (``?``).  Each adds a footer line,
as does ``one_size``.
    """

    model_name: str
    #: one sample's shape (no batch axis), or one per input for a model with several
    input_shape: tuple[int, ...] | tuple[tuple[int, ...], ...]
    rows: list[SummaryRow] = field(default_factory=list)
    trainable: int = 0
    non_trainable: int = 0
    trainable_bytes: int = 0
    non_trainable_bytes: int = 0
    uses_n: bool = False
    uses_unknown: bool = False
    #: why the shapes come from one batch size (the second forward failed, e.g. ``"the forward at 4
    #: samples failed (ValueError: ...)"``), else ``""``; a footer line
    one_size: str = ""

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
                f"Non-trainable params: {self.non_trainable:,} ({_size(self.non_trainable_bytes)})"]
        if self.uses_n:
            out.append("N: the number of samples in the batch")
        if self.uses_unknown:
            out.append("?: a length that changes with the batch size but is not a multiple of it")
        if self.one_size:
            out.append(f"shapes from one batch size: {self.one_size}")
        out.append("_" * width)
        return "\n".join(out)


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GB"  # pragma: no cover


def _tuple_text(dims: Sequence[str]) -> str:
    """``(None, 3)``, ``(18N,)`` (one axis: a trailing comma, as a Python tuple), ``()``."""
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _inputs_text(shape: tuple[int, ...] | tuple[tuple[int, ...], ...]) -> str:
    """``Input shape: (None, 64)``, or for several inputs ``Input shapes: [(None, 3, 4), (None, 3)]``."""
    def text(sample: tuple[int, ...]) -> str:
        return _tuple_text(["None", *(str(s) for s in sample)])

    shapes = [s for s in shape if isinstance(s, tuple)]
    if shapes and len(shapes) == len(shape):
        return "Input shapes: [" + ", ".join(text(s) for s in shapes) + "]"
    return f"Input shape: {text(tuple(s for s in shape if isinstance(s, int)))}"


def _shapes(output: Any) -> _Shapes:
    """What the summary keeps of one output: see :data:`_Shapes`."""
    if isinstance(output, np.ndarray):
        return output.shape
    if isinstance(output, (tuple, list)):
        return [_shapes(o) for o in output]
    return type(output).__name__


def _axis(first: int, second: int, sizes: tuple[int, int]) -> str:
    """One axis of lengths ``first`` and ``second`` at the batch sizes ``sizes``: the length when it did
    not change, ``N`` / ``kN`` when it is ``k`` times the batch size at both, else ``?``."""
    if first == second:
        return str(first)
    k = first // sizes[0]
    if k >= 1 and first == k * sizes[0] and second == k * sizes[1]:
        return "N" if k == 1 else f"{k}N"
    return "?"


def _one_size(first: _Shapes) -> str:
    """The text of an output seen at one batch size only: axis 0 of each array is ``None``, as if it were
    one row per sample (``()`` for a scalar)."""
    if isinstance(first, tuple):
        return _tuple_text(["None", *(str(s) for s in first[1:])]) if first else "()"
    if isinstance(first, list):
        return "[" + ", ".join(_one_size(f) for f in first) + "]"
    return first


def _describe(first: _Shapes, second: _Shapes | None, sizes: tuple[int, int]) -> tuple[str, set[str]]:
    """The text of a layer's output from its shapes at the two batch sizes ``sizes``, and which of ``N``
    (some axis ``kN``) and ``?`` (some axis that changed otherwise) it uses.  Outputs that do not even
    have the same structure at both sizes (another number of axes) are ``?`` whole.  ``second`` is
    ``None`` when the layer did not run at the second size (or that forward failed): see :func:`_one_size`."""
    if second is None:
        return _one_size(first), set()
    if isinstance(first, tuple) and isinstance(second, tuple) and len(first) == len(second):
        dims = [_axis(a, b, sizes) for a, b in zip(first, second, strict=True)]
        if dims and dims[0] == "N" and not any(d.endswith("N") for d in dims[1:]):
            dims[0] = "None"  # one row per sample, the familiar Keras batch axis
        used = {"N" for d in dims if d.endswith("N")} | {"?" for d in dims if d == "?"}
        return _tuple_text(dims), used
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        parts = [_describe(a, b, sizes) for a, b in zip(first, second, strict=True)]
        return "[" + ", ".join(text for text, _ in parts) + "]", set().union(*(used for _, used in parts))
    if isinstance(first, str) and first == second:
        return first, set()
    return "?", {"?"}


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

    The shapes come from forwards at two batch sizes (see the module's docstring): an output's first
    axis of one row per sample is ``None``, another axis that is ``k`` times the batch size ``kN``
    (``(18N,)`` after ``Flatten(0)``), one that changes otherwise ``?``, one that does not its length.

    Args:
        input_shape: the shape of one sample, without the batch axis, e.g. ``(64,)`` or ``(1, 8, 8)``;
            by default ``model.input_shape_hint()``.
        inputs: instead of ``input_shape``, a batch to run, used as given: one array ``(n, ...)`` or,
            for a model with several inputs, a tuple of them (e.g. ``(x, mask)``); the second forward
            runs its first ``n - 1`` samples (for ``n == 1``, its sample twice).  The shapes shown do not
            depend on ``n``: an axis that follows the batch size is ``None`` / ``kN``.
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
        other = _other_batch(batch)
    else:
        batch, other = _dummy_batches(model, input_shape, dtype)
    several = isinstance(batch, tuple)  # (several inputs: as_inputs and random_inputs give a tuple of arrays)
    arrays: list[np.ndarray] = list(batch) if isinstance(batch, tuple) else [batch]
    sizes = (count(batch), count(other))

    # the table (order, calls, rows, parameters) comes from the first forward; the second, through a fresh
    # copy of the model (nothing the first left in the copy can change it), only gives the shapes again.
    # A model that runs at the first size only (a table of so many rows, a check of the batch size) is
    # shown as one forward shows it, with a footer saying why
    try:
        table, entered, calls, shapes = _run(model, batch, rows=True)
    except MinidlError as error:
        _explain(error, batch, inputs is not None, input_shape)
        raise
    one_size = ""
    try:
        other_shapes = _run(model, other, rows=False)[3]
    except Exception as error:  # (whatever the layers raise: the first forward worked)
        other_shapes = {}
        one_size = f"the forward at {sizes[1]} samples failed ({_short(error)})"
    described = {n: _describe(first, other_shapes.get(n), sizes) for n, first in shapes.items()}

    by_name = {n: (type_name, params) for n, type_name, params in table}
    wanted = [n for n, _, _ in table if expand_nested or "." not in n]
    order = {n: i for i, n in enumerate(entered)}
    # a holder whose own forward did not run (a LayerList the model loops over) ran through its layers:
    # it is placed, and counts as called, where the first of them ran
    through = {n: min(i for m, i in order.items() if m.startswith(n + "."))
               for n in wanted if n not in order and any(m.startswith(n + ".") for m in order)}
    ranked = sorted((n for n in wanted if n in order or n in through),
                    key=lambda n: (order.get(n, through.get(n, 0)), n in order))  # (a holder before its first)
    ordered = ranked + [n for n in wanted if n not in order and n not in through]
    shape = tuple(a.shape[1:] for a in arrays) if several else arrays[0].shape[1:]
    used = set().union(*(described[n][1] for n in ordered if n in described))  # (of the rows shown)
    result = ModelSummary(name, shape, uses_n="N" in used, uses_unknown="?" in used, one_size=one_size)
    for layer_name in ordered:
        type_name, params = by_name[layer_name]
        text = described[layer_name][0] if layer_name in described else \
            "(its layers)" if layer_name in through else "not called"
        result.rows.append(SummaryRow(layer_name, type_name, text, params, layer_name.count(".") + 1,
                                      calls.get(layer_name, 1)))
    (result.trainable, result.non_trainable,
     result.trainable_bytes, result.non_trainable_bytes) = _counts(model)
    return result


def _run(model: Layer, batch: Inputs, *, rows: bool
         ) -> tuple[list[tuple[str, str, int]], list[str], dict[str, int], dict[str, _Shapes]]:
    """One forward of ``batch`` through a deep copy of ``model`` in eval mode: with ``rows``, each named
    layer of the copy (after the forward: a layer may make its parameters then) as (name, type name,
    parameter and buffer elements), the names of those that ran in the order they first ran, how many
    times each ran and its first output's shapes.  Only these are kept: the copy is freed on return."""
    clone = copy.deepcopy(model)
    entered: list[str] = []
    shapes: dict[str, _Shapes] = {}
    calls: dict[str, int] = {}

    def wrap(layer: Layer, layer_name: str) -> None:
        original: Callable[[Any], Any] = layer.forward

        def forward(x: Any) -> Any:
            if layer_name not in calls:
                entered.append(layer_name)
            calls[layer_name] = calls.get(layer_name, 0) + 1
            out = original(x)
            if layer_name not in shapes:
                shapes[layer_name] = _shapes(out)
            return out

        object.__setattr__(layer, "forward", forward)

    named = [(n, layer) for n, layer in clone.named_layers() if n]
    try:
        for layer_name, layer in named:
            wrap(layer, layer_name)
        clone.eval()
        clone(batch)
    finally:  # (each wrapper holds its layer: a cycle that would keep the copy alive until a collection)
        for _, layer in named:
            layer.__dict__.pop("forward", None)
    table = [(n, type(layer).__name__, sum(_counts(layer)[:2])) for n, layer in named] if rows else []
    return table, entered, calls, shapes


def _short(error: BaseException) -> str:
    """``ValueError: its message`` on one line, cut to about 100 characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= 100 else text[:97] + "..."


def _explain(error: MinidlError, batch: Inputs, given: bool, input_shape: Sequence[int] | None) -> None:
    """Say in ``error`` that the summary's (first) forward on ``batch`` failed, and what to try."""
    if not (error.args and isinstance(error.args[0], str)):
        return
    several = isinstance(batch, tuple)
    first = batch[0] if isinstance(batch, tuple) else batch
    what = f"of shapes {tuple(a.shape for a in batch)}" if several else f"of shape {first.shape}"
    if given:
        what, advice = f"on the given batch {what}", ""
    else:
        what = f"on a dummy batch {what}"
        advice = _dummy_advice(error, input_shape is None, several, first)
    error.args = (f"summary: the forward {what} failed: {error.args[0]}{advice}", *error.args[1:])


def _other_batch(batch: Inputs) -> Inputs:
    """The second batch size of a given batch of ``n`` samples: its first ``n - 1``; for one sample, that
    sample twice (a batch of 2)."""
    n = count(batch)
    return rows(batch, 0, n - 1) if n >= 2 else take_rows(batch, np.zeros(2, dtype=np.intp))


def _given_batch(inputs: Any) -> Inputs:
    """``summarize(inputs=...)``: one array or a tuple of them, each with a batch axis of at least one
    sample."""
    batch = as_inputs(inputs, "summary", "inputs")
    if isinstance(batch, np.ndarray) and batch.ndim == 0:
        raise ShapeError(f"summary: inputs needs a batch axis, got shape {batch.shape}")
    if count(batch) == 0:
        raise ShapeError("summary: inputs holds no sample (its batch axis has length 0)")
    return batch


def _dummy_batches(model: Layer, input_shape: Sequence[int] | None,
                   dtype: DTypeLike | None) -> tuple[Inputs, Inputs]:
    """The random batches of :data:`_DUMMY_SIZES` samples of ``input_shape`` (default: the model's hint)
    that ``model.random_inputs`` draws (each from ``default_rng(0)``), floats in ``dtype``; several arrays
    for a model with several inputs."""
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

    def cast(a: np.ndarray) -> np.ndarray:
        return a.astype(dtype) if a.dtype.kind == "f" else a  # (not an Embedding's indices)

    def draw(size: int) -> Inputs:
        dummy = model.random_inputs((size, *shape), np.random.default_rng(0))
        # (a model with several inputs draws a tuple: see Layer.random_inputs)
        return tuple(cast(a) for a in dummy) if is_several(dummy) else cast(dummy)

    return draw(_DUMMY_SIZES[0]), draw(_DUMMY_SIZES[1])


def _dummy_advice(error: MinidlError, guessed: bool, several: bool, first: np.ndarray) -> str:
    """What to try when the forward on the dummy batch failed with ``error``; ``first``: the (first) input."""
    advice = (f"; the shape {first.shape[1:]} was guessed from the first layer: pass input_shape=(...), the "
              "shape of one sample without the batch axis, or inputs=, a batch") if guessed else ""
    if isinstance(error, DTypeError) and not several and first.dtype.kind == "f":
        advice += ("; the dummy batch is model.random_inputs(shape, rng), N(0, 1) floats unless the model says "
                   "otherwise: if its first layer takes other inputs (an Embedding's indices, several inputs as "
                   "a tuple) inside a custom Model, override random_inputs there, or pass inputs=, a batch")
    return advice
