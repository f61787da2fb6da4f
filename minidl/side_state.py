"""What a forward changes besides its output, and its putting back when the forward fails.

A forward moves buffers (batch norm's running statistics) and random generators (dropout), and a layer may
register a buffer, a generator or a sub-layer in its first forward.  :class:`SideState` saves all that and
restores it.  ``fit`` saves it before each batch and restores it when the batch is refused; every other call
saves it in its outermost layer: ``layer(x)`` (:meth:`Layer.__call__ <minidl.layer.Layer.__call__>`), a model's
``forward`` called directly (``Model`` subclasses' ``forward``, see :func:`saves_side_state`), and so
``predict`` and ``evaluate``, batch by batch.  So a call that raises, part-way through a model or inside a
layer, leaves the model's buffers, generators and registrations as they were, and the error goes on
unchanged.

Only the outermost call saves: ``calls.saved`` (per thread) says that one on the stack did, and then the calls
nested in it (the layers of a ``Sequential``, a model's parts) only run.  ``fit`` sets it for its batches,
whose own save covers their calls.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

if TYPE_CHECKING:
    from .layer import Layer

__all__: list[str] = []

#: every change of what any layer registers (``Layer._registered``, a layer's ``__init__``), counted, never
#: back: a :class:`SideState` walks its model and copies the registries again only when it moved
registrations = 0

_REGISTRIES = ("_parameters", "_layers", "_buffers", "_generators")


class _Calls(threading.local):
    """Per thread: whether a call on the stack saved the side state of the layer it called (see the module)."""

    saved = False


calls = _Calls()


class SideState:
    """What a forward changes besides its output: buffers (batch norm's running statistics), the
    states of random generators (dropout), and what a layer registers lazily in a forward (a buffer,
    a generator, a sub-layer).  :meth:`save` before the forward, :meth:`restore` when it (or the rest
    of a refused batch) fails: every layer's registrations are put back, the plain attribute a
    registration replaced (``self.rng = None``, which the layer keeps in ``_replaced``), and the
    buffers (the same arrays, with their values: a buffer shared by two layers stays shared) and the
    generators' states.

    Per save only the count of registrations (:data:`registrations`) is read, and the buffers and
    generators saved; the model is walked and its registries copied only when the count has moved
    since the last copy, which then stands for every save until the next change.  Which layers hold
    buffers or generators is a registration too, so it is listed at that copy: a model without any (an
    MLP) saves nothing else.

    It refers to the layers weakly (a layer keeps its own, ``_side_state``: no reference cycle, so a model
    let go of is freed at once), and to the saved arrays and generators until :meth:`forget`.
    """

    def __init__(self, model: Layer) -> None:
        self._model = weakref.ref(model)
        self._seen = -1  # the count of registrations at the last copy
        self._layers: list[tuple[weakref.ref[Layer], tuple[dict[str, Any], ...], set[str]]] = []
        self._stateful: list[weakref.ref[Layer]] = []  # the layers with a buffer or a generator registered
        self._buffers: list[tuple[Layer, str, np.ndarray | None]] = []  # the arrays themselves
        self._values: list[tuple[np.ndarray, np.ndarray]] = []  # each array and a copy of its values
        self._generators: list[tuple[np.random.Generator, Mapping[str, Any]]] = []

    def save(self) -> None:
        if registrations != self._seen:  # a registration since the last copy (in this model or another)
            model = self._model()
            assert model is not None  # (saved by a call of it, or by fit, which holds it)
            self._seen = registrations
            layers = list(model.layers())
            self._layers = [(weakref.ref(layer), (layer._parameters.copy(), layer._layers.copy(),
                             layer._buffers.copy(), layer._generators.copy()), layer._non_persistent.copy())
                            for layer in layers]
            self._stateful = [weakref.ref(layer) for layer in layers if layer._buffers or layer._generators]
            self.forget()  # (none to save from now on, when none is stateful)
        if self._stateful:
            # (alive: a layer let go of was unregistered, which a registration counts, then walked again)
            stateful = [cast("Layer", ref()) for ref in self._stateful]
            self._buffers = [(layer, name, buffer) for layer in stateful for name, buffer in layer._buffers.items()]
            self._values = [(buffer, buffer.copy()) for _, _, buffer in self._buffers if buffer is not None]
            self._generators = [(g, g.bit_generator.state) for layer in stateful for g in layer._generators.values()]

    def forget(self) -> None:
        """Let go of the saved buffers' copies (after a call that succeeded: nothing to restore)."""
        self._buffers, self._values, self._generators = [], [], []

    def restore(self) -> None:
        for ref, registries, non_persistent in self._layers:
            layer = ref()
            if layer is None:  # (a layer removed and let go of since the save: nothing to put back)
                continue
            names = {name for r in _REGISTRIES for name in layer.__dict__[r]}
            registered: dict[str, Any] = {}
            for r, saved in zip(_REGISTRIES, registries, strict=True):
                live = layer.__dict__[r]
                live.clear()
                live.update(saved)
                registered.update(saved)
            names.update(registered)
            layer._non_persistent.clear()
            layer._non_persistent.update(non_persistent)
            replaced = layer.__dict__.get("_replaced", {})
            for name in names:  # registered before or since: the attribute as it was
                if name in registered:
                    object.__setattr__(layer, name, registered[name])
                elif replaced.get(name, (False, None))[0]:  # registered by the refused batch over a plain one
                    object.__setattr__(layer, name, replaced[name][1])
                else:
                    layer.__dict__.pop(name, None)
        for array, values in self._values:  # the values, which a forward may change in place (count += 1)
            if array.flags.writeable:  # (one that is not kept its values)
                np.copyto(array, values)
        for layer, name, buffer in self._buffers:  # the arrays, which a forward may replace (batch norm's)
            layer._buffers[name] = buffer
            object.__setattr__(layer, name, buffer)
        for generator, state in self._generators:  # (one shared by two layers: the same state twice)
            generator.bit_generator.state = state


def _state_of(layer: Layer) -> SideState | None:
    """The side state kept in ``layer`` (``_side_state``; made at its first outermost call), or None for a
    layer without registries (whose ``__init__`` skipped ``super().__init__()``: nothing to save)."""
    state: SideState | None = layer.__dict__.get("_side_state")
    if state is None and "_buffers" in layer.__dict__:
        state = SideState(layer)
        object.__setattr__(layer, "_side_state", state)
    return state


def call_saving(layer: Layer, forward: Callable[[Any], Any], x: Any) -> Any:
    """``forward(x)``, the outermost call of ``layer``'s (``calls.saved`` is False): its side state saved
    before and restored if the forward raises, whatever it raises, which goes on unchanged; the calls
    nested in it save nothing."""
    state = layer.__dict__.get("_side_state") or _state_of(layer)
    if state is None:
        return forward(x)
    if state._stateful or registrations != state._seen:  # (else nothing to save: an MLP's calls)
        state.save()
    calls.saved = True
    try:
        return forward(x)
    except BaseException:
        state.restore()
        raise
    finally:
        calls.saved = False
        if state._stateful:
            state.forget()


@contextmanager
def saved(model: Layer) -> Iterator[None]:
    """``model``'s side state saved once for the calls inside (``predict``'s and ``evaluate``'s batches), and
    restored if one raises: a batch refused after others leaves the model as before the first; the calls
    save nothing more.  Inside another save (``fit``'s), only that one counts."""
    state = None if calls.saved else _state_of(model)
    if state is None:
        yield
        return
    state.save()
    calls.saved = True
    try:
        yield
    except BaseException:
        state.restore()
        raise
    finally:
        calls.saved = False
        if state._stateful:
            state.forget()


_Forward = TypeVar("_Forward", bound=Callable[..., Any])


def saves_side_state(forward: _Forward) -> _Forward:
    """``forward`` (a method) saving the side state when it is the outermost call, as ``layer(x)`` does:
    ``Model`` puts it on every subclass's ``forward``, so that ``model.forward(x)`` called directly
    leaves nothing changed when it raises either.  Through ``model(x)``, or nested, it only runs."""
    code = getattr(forward, "__code__", None)
    plain = code is not None and code.co_argcount == 2 and not code.co_kwonlyargcount \
        and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)  # forward(self, x)
    saving = functools.wraps(forward)(_saving_plain(forward) if plain else _saving_more(forward))
    saving._saves_side_state = True  # type: ignore[attr-defined]
    return cast(_Forward, saving)


def _saving_plain(forward: Callable[[Layer, Any], Any]) -> Callable[[Layer, Any], Any]:
    def saving(self: Layer, x: Any) -> Any:  # (no varargs: CPython's specialised calls, in and out)
        if calls.saved:
            return forward(self, x)
        return call_saving(self, forward.__get__(self), x)

    return saving


def _saving_more(forward: Callable[..., Any]) -> Callable[..., Any]:
    def saving(self: Layer, x: Any, *more: Any, **keywords: Any) -> Any:  # a forward with more arguments
        if calls.saved:
            return forward(self, x, *more, **keywords)
        return call_saving(self, lambda y: forward(self, y, *more, **keywords), x)

    return saving
