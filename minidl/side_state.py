"""What a forward changes besides its output, and its putting back when the forward fails.

A forward moves buffers (batch norm's running statistics) and random generators (dropout), and a layer may
register a buffer, a generator or a sub-layer in its first forward.  :meth:`SideState.save` takes a
:class:`Snapshot` of all that, and :func:`restore` puts it back.  ``fit`` saves before each batch and restores
when the batch is refused; every other call saves in its outermost layer: ``layer(x)``
(:meth:`Layer.__call__ <minidl.layer.Layer.__call__>`, so ``model(x)`` of every model), and ``predict`` and
``evaluate``, once for all their batches.  So a call that raises, part-way through a model or inside a layer,
leaves the model's buffers, generators and registrations as they were, and the error goes on unchanged.
``model.forward(x)`` called directly saves nothing itself (its parts' calls, ``layer(x)``, each save their
own): call the model, ``model(x)``.

Only the outermost call saves: ``calls.saved`` (per thread) says that one on the stack did, and then the calls
nested in it (the layers of a ``Sequential``, a model's parts) only run.  ``fit`` sets it for its batches,
whose own save covers their calls.  The snapshot is the caller's (a local variable): calls of one model in
two threads each put back what they saved.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

if TYPE_CHECKING:
    from .layer import Layer

__all__: list[str] = []

#: every change of what is registered in a layer a :class:`SideState` has walked (``_watched``: see
#: ``Layer._registered``, and a layer's ``__init__`` run again), counted, never back, by
#: :func:`count_registration`: a side state walks its model and copies the registries again only when it
#: moved.  A fresh layer's registrations do not count (no side state lists it); registering it into a walked
#: layer does.
registrations = 0

#: the lock of the count and of the layers' sets of the side states that walked them (``_watched``);
#: re-entrant: a garbage collection inside may run a ``__del__`` that registers
_lock = threading.RLock()

_REGISTRIES = ("_parameters", "_layers", "_buffers", "_generators")


class _Calls(threading.local):
    """Per thread: whether a call on the stack saved the side state of the layer it called (see the module)."""

    saved = False


calls = _Calls()

#: a walked layer, its registries (copies of ``_parameters``, ``_layers``, ``_generators``, and the names of
#: ``_buffers``, each None: a buffer's array is read at each save, see :attr:`Snapshot.buffers`) and its
#: ``_non_persistent`` names
_Walked = tuple["weakref.ref[Layer]", tuple[dict[str, Any], ...], set[str]]


class Snapshot(NamedTuple):
    """What :meth:`SideState.save` saved, for :func:`restore`: held by the call that saved it only."""

    layers: tuple[_Walked, ...]  # every layer's registries, as at the walk (unchanged since: the count says)
    buffers: tuple[tuple[Layer, str, np.ndarray | None], ...]  # the buffer arrays themselves, each layer's all
    values: tuple[tuple[np.ndarray, np.ndarray], ...]  # each buffer array and a copy of its values
    generators: tuple[tuple[np.random.Generator, Mapping[str, Any]], ...]  # each generator and its state


class _Walk(NamedTuple):
    seen: int  # the count of registrations when walked
    stateful: tuple[weakref.ref[Layer], ...]  # the layers with a buffer or a generator registered
    builtin: bool  # every walked layer is of a class minidl defines (layer.minidl_class): no user code in a call
    snapshot: Snapshot  # the registries, and no buffer or generator (all a stateless model's save)


class SideState:
    """The walk of a model (``model.layers()``) and copies of its layers' registries, kept in the model
    (``_side_state``) for its saves: :meth:`save` reads the count of registrations (:data:`registrations`),
    walks again only when it moved, and copies the buffers and the generators' states of the layers that
    have any (a model without any, an MLP, copies nothing).  Each save's :class:`Snapshot` is its caller's:
    none is kept here, so calls in two threads do not share one.

    What the walk holds: the model and its layers weakly, and, in the copies of their registries, their
    parameters, sub-layers and generators as registered at the walk, which are the model's own while nothing
    is registered since.  A registration in one of them (:func:`count_registration`: a layer removed,
    ``del model[1]``, a parameter replaced) drops the walk at once, so what it held and the model no longer
    does is freed then, not at the model's next call.  Of the buffers it keeps the names only: an array a
    forward, ``astype`` or ``load_state_dict`` rebinds (not a registration) is not held here.  No reference
    cycle: a model let go of is freed at once, with its side state.
    """

    def __init__(self, model: Layer) -> None:
        self._model = weakref.ref(model)
        self._walk: _Walk | None = None

    def save(self) -> Snapshot:
        walk = self._walk
        if walk is None or walk.seen != registrations:  # a registration since the walk
            walk = self._walked()
        if not walk.stateful:
            return walk.snapshot
        # (alive: a layer let go of was unregistered, which a registration counts, then walked again)
        stateful = [cast("Layer", ref()) for ref in walk.stateful]
        # the buffer arrays themselves, of every such layer: the walk's copies of the registries may hold older
        # ones (a forward may rebind a buffer, batch norm's running statistics), which restore must not put back
        buffers = tuple((layer, name, buffer) for layer in stateful for name, buffer in layer._buffers.items())
        # their values and the generators' states only of layers that may move them: in a model of minidl's own
        # classes only (no user code runs in its calls), a layer in eval mode moves none (batch norm's statistics
        # are read, dropout draws nothing: tests/test_failed_forward_state.py checks each kind), so its eval-mode
        # call copies nothing; a model with a layer of one's own anywhere is saved whole in either mode
        moving = [layer for layer in stateful if layer.training] if walk.builtin else stateful
        return Snapshot(walk.snapshot.layers, buffers,
                        tuple((buffer, buffer.copy()) for layer in moving for buffer in layer._buffers.values()
                              if buffer is not None),
                        tuple((g, g.bit_generator.state) for layer in moving for g in layer._generators.values()))

    def _walked(self) -> _Walk:
        """Walk the model, copy its registries, and note this side state in each layer's ``_watched`` (a weak
        set: a registration in the layer drops the walks of the side states listed there)."""
        model = self._model()
        assert model is not None  # (saved by a call of it, or by fit, which holds it)
        seen = registrations  # (read first: a registration during the walk makes the next save walk again)
        layers = list(model.layers())
        with _lock:  # (not while count_registration lists a set)
            for layer in layers:
                watchers = layer.__dict__.get("_watched")
                if watchers is None:
                    watchers = weakref.WeakSet()
                    object.__setattr__(layer, "_watched", watchers)
                watchers.add(self)
        # the buffers' names only (each None): their arrays are the save's (Snapshot.buffers, every name of a
        # stateful layer), which restore puts back after these
        walked = tuple((weakref.ref(layer), (layer._parameters.copy(), layer._layers.copy(),
                        dict.fromkeys(layer._buffers), layer._generators.copy()), layer._non_persistent.copy())
                       for layer in layers)
        from .layer import minidl_class  # (layer.py imports this module)

        stateful = tuple(weakref.ref(layer) for layer in layers if layer._buffers or layer._generators)
        builtin = all(minidl_class(layer) for layer in layers)
        walk = self._walk = _Walk(seen, stateful, builtin, Snapshot(walked, (), (), ()))
        if registrations != seen:  # a registration (another thread's) during the walk, which it may hold: not kept
            self._walk = None
        return walk


def count_registration(layer: Layer) -> None:
    """Count a registration in ``layer``, a walked layer (``Layer._registered``, its ``__init__`` run again),
    in :data:`registrations`, under a lock (two threads' counts both count), and drop the walks of the side
    states that walked it (``_watched``; not every model's: a registration costs the same however many live):
    their copies of the registries may hold what is no longer registered (a layer removed), which must not
    live on until that model's next call."""
    global registrations
    with _lock:
        registrations += 1
        states = list(layer.__dict__.get("_watched", ()))
    for state in states:  # (after the lock: a layer freed with a walk may register in its __del__)
        state._walk = None


def restore(snapshot: Snapshot) -> None:
    """Put back what ``snapshot`` saved: every layer's registrations, the plain attribute a registration
    since replaced (``self.rng = None``, which the layer keeps in ``_replaced``), the buffers (the same
    arrays, with their values: a buffer shared by two layers stays shared) and the generators' states.
    The registries put back name each buffer with None (the walk keeps no arrays); the save's arrays,
    :attr:`Snapshot.buffers`, put back after them, are those of every buffer the registries name, but one
    taken out of ``_buffers`` by hand since the walk (no registration counted), which stays out."""
    kept = {(id(layer), name) for layer, name, _ in snapshot.buffers}
    for ref, registries, non_persistent in snapshot.layers:
        layer = ref()
        if layer is None:  # (a layer removed and let go of since the save: nothing to put back)
            continue
        names = {name for r in _REGISTRIES for name in layer.__dict__[r]}
        registered: dict[str, Any] = {}
        for r, saved in zip(_REGISTRIES, registries, strict=True):
            if r == "_buffers":
                saved = {name: None for name in saved if (id(layer), name) in kept}
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
            elif replaced.get(name, (False, None))[0]:  # registered by the failed call over a plain one
                object.__setattr__(layer, name, replaced[name][1])
            else:
                layer.__dict__.pop(name, None)
    for array, values in snapshot.values:  # the values, which a forward may change in place (count += 1)
        if array.flags.writeable:  # (one that is not kept its values)
            np.copyto(array, values)
    for layer, name, buffer in snapshot.buffers:  # the arrays, which a forward may replace (batch norm's)
        layer._buffers[name] = buffer
        object.__setattr__(layer, name, buffer)
    for generator, state in snapshot.generators:  # (one shared by two layers: the same state twice)
        generator.bit_generator.state = state


def state_of(layer: Layer) -> SideState | None:
    """The side state kept in ``layer`` (``_side_state``; made at its first save), or None for a layer
    without registries (whose ``__init__`` skipped ``super().__init__()``: nothing to save)."""
    state: SideState | None = layer.__dict__.get("_side_state")
    if state is None and "_buffers" in layer.__dict__:
        state = SideState(layer)
        object.__setattr__(layer, "_side_state", state)
    return state


def call_saving(layer: Layer, forward: Callable[[Any], Any], x: Any) -> Any:
    """``forward(x)``, the outermost call of ``layer``'s (``calls.saved`` is False): its side state saved
    before and restored if the forward raises, whatever it raises, which goes on unchanged; the calls
    nested in it save nothing."""
    state = layer.__dict__.get("_side_state") or state_of(layer)
    if state is None:
        return forward(x)
    snapshot = state.save()
    previous = calls.saved
    try:
        calls.saved = True
        return forward(x)
    except BaseException:
        restore(snapshot)
        raise
    finally:
        calls.saved = previous


@contextmanager
def saved(model: Layer) -> Iterator[None]:
    """``model``'s side state saved once for the calls inside (``predict``'s and ``evaluate``'s batches), and
    restored if one raises: a batch refused after others leaves the model as before the first; the calls
    save nothing more.  Inside another save (``fit``'s), only that one counts."""
    state = None if calls.saved else state_of(model)
    if state is None:
        yield
        return
    snapshot = state.save()
    previous = calls.saved
    try:
        calls.saved = True
        yield
    except BaseException:
        restore(snapshot)
        raise
    finally:
        calls.saved = previous
