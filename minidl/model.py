"""``Model`` (a layer made of layers), ``Sequential`` (layers applied in order) and ``LayerList``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from .errors import BackwardBeforeForwardError, MinidlError
from .layer import Layer, parameter_backward

if TYPE_CHECKING:
    from .training import History

__all__ = ["LayerList", "Model", "Sequential"]


def _name_in_message(error: MinidlError, where: str) -> None:
    """Prefix ``error``'s message with the position of the layer that raised it (in place)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{where}: {error.args[0]}", *error.args[1:])


def _trainable(layer: Layer) -> bool:
    """Whether ``layer`` or a sub-layer of it has a parameter with ``requires_grad``."""
    for p in layer._parameters.values():  # (a loop: ``any`` of a generator costs 0.5 us more per step)
        if p.requires_grad:
            return True
    return bool(layer._layers) and any(p.requires_grad for p in layer.parameters())


def _called_by(layer: Layer) -> set[int]:
    """The ids of the layers a forward of ``layer`` runs for sure: itself and, through nested
    ``Sequential``s, every layer they hold (a custom layer may hold a sub-layer without calling it,
    e.g. a decoder reading a tied encoder's weights)."""
    ids = {id(layer)}
    if isinstance(layer, Sequential):
        for child in layer._layers.values():
            ids |= _called_by(child)
    return ids


def _next_free_index(layers: dict[str, Layer]) -> str:
    """The position name for a new layer: the length, or higher if a deletion left that name taken."""
    index = len(layers)
    while str(index) in layers:
        index += 1
    return str(index)


class Model(Layer):
    """A layer made of layers.  Subclass it, assign layers as attributes, write ``forward`` and
    ``backward`` (which calls the sub-layers' ``backward`` in reverse order).

    Keras-style helpers: :meth:`fit`, :meth:`evaluate`, :meth:`predict` (see ``minidl.training``)
    and :meth:`summary` (see ``minidl.summary``)."""

    def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> History:
        """Train on ``(x, y)``: ``fit(x, y, loss=..., optimizer=..., epochs=, batch_size=,
        validation_data=, metrics=["accuracy"], rng=, scheduler=, verbose=)``; see
        :func:`minidl.training.fit`."""
        from .training import fit

        return fit(self, x, y, **kwargs)

    def evaluate(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> dict[str, float]:
        """``{"loss": ..., metric: ...}`` on ``(x, y)`` in eval mode; see :func:`minidl.training.evaluate`."""
        from .training import evaluate

        return evaluate(self, x, y, **kwargs)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Outputs on ``x`` (N, ...) in eval mode, in batches; see :func:`minidl.training.predict`."""
        from .training import predict

        return predict(self, x, batch_size=batch_size)

    def summary(self, input_shape: Sequence[int] | None = None, *, expand_nested: bool = False,
                print_fn: Any = print) -> None:
        """Print a table of layers, output shapes and parameter counts (Keras-like); the model is
        left unchanged.  ``input_shape``: one sample's shape, if the model cannot infer it.  See
        :func:`minidl.summary.summarize` for the table as an object."""
        from .summary import summarize

        print_fn(str(summarize(self, input_shape, expand_nested=expand_nested)))


class Sequential(Model):
    """Layers applied one after another; named by position (``"0"``, ``"1"``, ...).

    ``forward`` feeds each layer's output to the next; ``backward`` runs the layers' backward in
    reverse.  An error raised by a layer says which position it came from.
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        called: set[int] = set()
        for layer in layers:
            self._append(layer, called)

    def append(self, layer: Layer) -> Sequential:
        """Add ``layer`` at the end, named by the next free position."""
        called: set[int] = set()
        for existing in self._layers.values():
            called |= _called_by(existing)
        return self._append(layer, called)

    def _append(self, layer: Layer, called: set[int]) -> Sequential:
        """``append``, with ``called`` the ids of the layers a forward already runs (updated)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: expected a Layer, got {type(layer).__name__}")
        incoming = _called_by(layer)
        twice = incoming & called
        if id(self) not in incoming and twice:  # (containing this sequence: a cycle, refused below)
            shared = next(sub for sub in layer.layers() if id(sub) in twice)
            where = "" if shared is layer else " (inside the layer appended)"
            raise ValueError(
                f"Sequential: this {type(shared).__name__} is already in the sequence{where}; a layer keeps "
                "one forward cache, so calling it twice in one pass breaks its backward. Use a second layer "
                "that shares the parameter instead (second.W = first.W)"
            )
        setattr(self, _next_free_index(self._layers), layer)
        called |= incoming
        return self

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Layer | Sequential:
        """A layer by position, or a new ``Sequential`` of the same layer objects for a slice."""
        layers = list(self._layers.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        if isinstance(index, (bool, np.bool_)):  # an int to Python, but surely not a position
            raise TypeError(f"Sequential indices must be ints or slices, not {type(index).__name__}")
        return layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers.values()))

    #: The layer whose forward failed in the last pass after others had run (the layers before it
    #: hold that pass's caches, the others the pass before): a backward would mix two passes, so it
    #: is refused until a forward succeeds.  None when the last forward succeeded, or failed at the
    #: first layer (which leaves its cache as it was).
    _failed_at: str | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        ran = False  # whether a layer ran in this pass: if the first one fails, no cache was replaced
        for name, layer in self._layers.items():
            try:
                x = layer(x)
                ran = True
            except BaseException as error:
                if ran:
                    object.__setattr__(self, "_failed_at", name)
                if isinstance(error, MinidlError):
                    _name_in_message(error, f"{type(self).__name__} layer '{name}'")
                raise
        if self._failed_at is not None:
            object.__setattr__(self, "_failed_at", None)
        return x

    def _refuse_mixed_caches(self, who: str) -> None:
        if self._failed_at is not None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.{who}: the last forward failed at layer '{self._failed_at}', so the "
                "layers hold the caches of two different passes; run a forward that succeeds first")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._refuse_mixed_caches("backward")
        grad = grad_output
        for name, layer in reversed(self._layers.items()):
            try:
                grad = layer.backward(grad)
            except MinidlError as error:
                _name_in_message(error, f"{type(self).__name__} layer '{name}'")
                raise
        return grad

    def backward_params(self, grad_output: np.ndarray) -> None:
        """:meth:`backward` without ``dCost/dx`` for the model's input, which training on data never
        uses: the same parameter gradients, less work.

        The layers in front of the first one that has a trainable parameter are skipped: their
        backward would only make input gradients, and gradients of frozen parameters
        (``requires_grad=False``), which nothing uses.  That first layer (e.g. a ``Dense``, whose
        ``dx`` is a third of its back-pass) is asked for its parameter gradients only, by its
        ``backward_params`` unless a custom ``backward`` would be bypassed (see
        :func:`~minidl.layer.parameter_backward`).
        """
        self._refuse_mixed_caches("backward_params")
        items = list(self._layers.items())
        first = 0
        while first < len(items) and not _trainable(items[first][1]):
            first += 1
        grad = grad_output
        for i in range(len(items) - 1, first - 1, -1):
            name, layer = items[i]
            try:
                if i > first:
                    grad = layer.backward(grad)
                else:
                    parameter_backward(layer)(grad)
            except MinidlError as error:
                _name_in_message(error, f"{type(self).__name__} layer '{name}'")
                raise

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The first layer's input shape, looking past element-wise layers at the front."""
        for layer in self._layers.values():
            hint = layer.input_shape_hint()
            if hint is not None or not layer.elementwise:
                return hint
        return None


class LayerList(Layer):
    """A list of layers that registers them (named ``"0"``, ``"1"``, ...): a plain Python list
    would hide their parameters.  It has no forward of its own; index it in your model."""

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        super().__init__()
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> LayerList:
        """Add ``layer`` at the end, named by the next free position."""
        if not isinstance(layer, Layer):
            raise TypeError(f"LayerList: expected a Layer, got {type(layer).__name__}")
        setattr(self, _next_free_index(self._layers), layer)
        return self

    def __getitem__(self, index: int) -> Layer:
        return list(self._layers.values())[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers.values()))
