"""What forward passes leave in the layers, and its putting back: the caches a backward needs.

A forward keeps what its backward needs as plain attributes (``self._x = x``), in the layers and in the loss.
A call that runs passes on a model only to read their results -- ``predict`` and ``evaluate``
(:mod:`minidl.training`), and the gradient checker on a layer or loss it checks in place (one whose
``__deepcopy__`` returns itself) -- puts them back afterwards with :func:`_caches_kept`, so that the user's
next backward differentiates the user's own last forward.  :func:`_pass_owners` says where such attributes are
kept, :func:`_rebound` which of them passes rebound.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .layer import Layer
from .losses import Loss, _held_objects

__all__: list[str] = []


def _pass_owners(model: Layer, loss: Any = None) -> list[Any]:
    """Where forward passes keep what their backward needs: the layers of ``model`` and, with ``loss``, the
    loss and the losses and layers it holds (those layers' layers), each once."""
    owners: dict[int, Any] = {id(layer): layer for layer in model.layers()}
    if loss is not None:
        held = [loss, *(v for _, v in _held_objects(loss) if isinstance(v, (Layer, Loss)))]
        for v in held:
            owners.update((id(o), o) for o in (v.layers() if isinstance(v, Layer) else [v]))
    return [owner for owner in owners.values() if hasattr(owner, "__dict__")]


def _rebound(owner: Any, before: Mapping[str, Any], added: bool = False) -> list[tuple[str, Any]]:
    """``(name, value before)`` for each attribute of ``owner`` that was in ``before`` (its ``__dict__`` then)
    and is bound to another object now: what passes rebound since (``self._x = x``).  Not ``training``, nor a
    registered attribute (a parameter, a buffer, a generator, a layer), nor a container's ``_pass_state``
    (its callers put that back themselves), nor one deleted since, nor what changed in place.  ``added``: also
    those bound since over a default of the class (``_argmax: np.ndarray | None = None`` in its body), with
    that default as the value before."""
    now = vars(owner)
    registered = [getattr(owner, name, {}) for name in ("_buffers", "_parameters", "_generators", "_layers")]
    own = getattr(owner, "_pass_state", ())
    found = [(key, value) for key, value in before.items() if now.get(key, value) is not value]
    if added:
        cls = type(owner)
        found += [(key, getattr(cls, key)) for key in now if key not in before and hasattr(cls, key)]
    return [(key, value) for key, value in found
            if key != "training" and key not in own and not any(key in registry for registry in registered)]


@contextmanager
def _caches_kept(model: Layer, loss: Any = None) -> Iterator[None]:
    """Put back, afterwards, every attribute that forward passes rebound in the layers, in the loss and in
    the losses and layers it holds: a forward cache, ``self._x = x``; and a container's record of its
    last pass (``_pass_state``: a ``Sequential``'s failed layer).  Not an attribute that was None (a
    lazy layer's size found at its first forward), nor a registered one (a buffer: state a forward
    keeps on purpose, which ``state_dict`` saves), nor what changed in place (a list appended to).  So
    that ``predict`` and ``evaluate`` between a training forward and its backward leave that backward
    differentiating the training forward, as PyTorch's eval-mode predictions leave its graph; and so that a
    gradient check leaves a layer or loss it checked in place (a ``__deepcopy__`` returning itself) with the
    user's caches, not with its last evaluation's float64 ones."""
    saved = [(owner, dict(vars(owner)), [(name, getattr(owner, name)) for name in getattr(owner, "_pass_state", ())])
             for owner in _pass_owners(model, loss)]
    try:
        yield
    finally:
        for owner, before, pass_state in saved:
            now = vars(owner)
            for key, value in _rebound(owner, before):
                if value is not None:
                    now[key] = value
            for name, value in pass_state:
                object.__setattr__(owner, name, value)
