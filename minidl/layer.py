"""``Layer``: the base class of every layer and model.

A layer computes ``y = f(x; parameters)`` in :meth:`Layer.forward`, keeping what the back-pass
needs, and in :meth:`Layer.backward` turns ``dCost/dy`` into ``dCost/dx`` while *adding*
``dCost/dparam`` into each parameter's ``.grad``.

Registration is by assignment, as in PyTorch's ``nn.Module``: ``self.W = Parameter(...)`` files a
parameter, ``self.fc = Dense(...)`` a sub-layer, ``self.rng = np.random.default_rng(0)`` a random
generator (so the gradient checker can replay it), and :meth:`Layer.register_buffer` non-trainable
state such as running statistics.  Everything is kept in insertion-ordered dicts, so names and
order are the same on every run.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import inspect
import types
import weakref
from collections.abc import Callable, Iterator, Mapping, Set
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, overload

import numpy as np
from numpy.typing import DTypeLike
from typing_extensions import Self

from . import aligned, side_state
from .errors import (
    BackwardBeforeForwardError,
    DTypeError,
    MinidlError,
    RegistrationError,
    StateDictError,
    nested_state_hint,
    short_repr,
)
from .init import switch
from .parameter import Parameter
from .side_state import call_saving
from .side_state import calls as _calls
from .validation import plain_native

__all__ = ["Layer", "LoadResult", "parameter_backward"]


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class _CheckedState(NamedTuple):
    """What :meth:`Layer._checked_state` found in a state to load: the targets, the arrays to copy into them."""

    own: dict[str, tuple[Any, np.ndarray | None, Any]]  # dotted name -> (setter, current array, check)
    own_generators: dict[str, np.random.Generator]  # dotted name -> generator, each once
    values: dict[str, np.ndarray]  # dotted name -> the array to load (plain, native byte order; not yet copied)
    missing: list[str]
    unexpected: list[Any]


_Output = TypeVar("_Output")
_Output_co = TypeVar("_Output_co", covariant=True)


class _Forwards(Protocol[_Output_co]):
    """What ``layer(x)`` returns, for a type checker: the type the layer's own ``forward`` declares (a ``Dense``'s
    array, a ``MaxPool2D``'s ``Any`` (an array or ``(y, indices)``), ``Any`` for a bare ``Layer``)."""

    def forward(self, x: Any, /) -> _Output_co: ...


#: What a "called before forward" message adds: when a fit returned since the last forward, there is no cache either.
_AFTER_FIT = " (no forward since it was made, or since a fit returned: fit lets go of its last batch's caches)"


class Layer:
    """Base class for layers and models; subclass it and write ``forward`` and ``backward``.

    Call ``super().__init__()`` first in your ``__init__``, then assign parameters and layers
    as attributes.  ``layer(x)`` calls ``forward(x)``.
    """

    #: True for layers that map each element independently (shape in == shape out). Lets a
    #: ``Sequential`` look past them when it infers the input shape of the model.
    elementwise: bool = False
    #: True for layers that take one array only (Dense, the activations, norms, convolutions...): a
    #: ``Stack`` hands such a layer the running sequence alone, not the other inputs (a padding mask, a
    #: memory) it hands the rest.  False, the default, also for layers of your own: they get the tuple.
    single_input: bool = False

    training: bool
    _parameters: dict[str, Parameter]
    _layers: dict[str, Layer]
    _buffers: dict[str, np.ndarray | None]
    _non_persistent: set[str]
    _generators: dict[str, np.random.Generator]

    def __init__(self) -> None:
        for name in self.__dict__.get("_buffers", ()):  # __init__ run again: the buffers are forgotten with their
            self.__dict__.pop(name, None)  # registry, so that registering them again is not refused as an attribute
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_layers", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_generators", {})
        object.__setattr__(self, "training", True)
        # the attributes assigned a plain container, which the walks search (see _refuse_hidden_since); None for
        # none yet (a dict made at the first), present, so that an unpickled layer without it is an old one
        object.__setattr__(self, "_plain_containers", None)
        if "_watched" in self.__dict__:  # __init__ run again on a layer a side state has walked: it walks again
            side_state.count_registration(self)

    # ------------------------------------------------------------------ computation
    def __call__(self: _Forwards[_Output], x: Any, _second: None = None, _third: None = None) -> _Output:
        """``forward(x)``, its side state put back if it raises (the outermost call); returns what ``forward``
        returns (its declared type, for a type checker).  Several inputs are one tuple: ``layer((x, mask))``."""
        # (defaults, not *args: a call with varargs loses CPython's specialised call, 0.7% of a small step; typed
        # None, so that a type checker refuses layer(x, mask) and mha(q, k, v), which raise here)
        if _second is not None or _third is not None:  # model(x, mask), mha(q, k, v): one tuple
            attention = " (attention: mha(x), or mha((x, memory)) for cross-attention, not mha(q, k, v))" \
                if any("Attention" in c.__name__ or "Transformer" in c.__name__ for c in type(self).__mro__) else ""
            raise TypeError(f"{type(self).__name__}: a layer is called with one input; several inputs are one "
                            f"tuple: layer((x, mask)), not layer(x, mask){attention}")
        try:
            if _calls.saved:  # a call on the stack saved the side state (a container's, fit's)
                return self.forward(x)
            # the outermost call: buffers, generators and registrations put back if the forward raises
            # (self is a Layer: the annotation of self only says what its forward returns; an ignore, not a cast,
            # which would cost a call in the hottest method)
            return call_saving(self, self.forward, x)  # type: ignore[arg-type]
        except MinidlError as error:
            _name_part(error, self)  # type: ignore[arg-type]
            raise

    def forward(self, x: Any) -> Any:
        """Compute the output from ``x`` and keep what :meth:`backward` needs.  A layer with several
        inputs takes them as one tuple, ``x = (a, b, ...)`` (see :mod:`minidl.inputs`), and one with several
        outputs returns a tuple (``MaxPool2D(return_indices=True)``); hence ``Any``: a subclass types it
        ``x: np.ndarray`` or ``x: tuple[np.ndarray, np.ndarray]``, and its output, which ``layer(x)`` returns."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, grad_output: np.ndarray) -> Any:
        """Return ``dCost/dx`` from ``grad_output = dCost/dy``; add ``dCost/dparam`` into ``.grad``.  For
        several inputs, a tuple with one gradient per input (``None`` for one without: a mask, indices)."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad_output)")

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dparam`` into ``.grad`` exactly as :meth:`backward` does, for callers that do not
        need ``dCost/dx`` (training on data).  Layers that can skip the work of ``dx`` override it
        (``Dense``, ``Conv2D``); by default it is :meth:`backward` with the result dropped.
        Call it through :func:`parameter_backward`, which never bypasses a custom ``backward``."""
        self.backward(grad_output)

    def backward_caveat(self) -> str | None:
        """Why this layer's backward is *not* the derivative of its forward, by design, or ``None`` (the
        default: it is).  A straight-through estimator (round in forward, pass the gradient through), or
        ``Embedding(scale_grad_by_freq=True)``, returns a sentence saying so, which ``GradientChecker``
        adds to a failed report beside the layer's name: the failure is then expected, not a bug."""
        return None

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The shape of one input sample (no batch axis) if this layer knows it, else ``None``.

        The gradient checker uses it to draw random inputs when none are given.
        """
        return None

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """A random valid input batch of ``shape`` (batch axis first), for the gradient checker and
        ``summary`` when no input is given: seeded N(0, 1) floats.  A layer that takes other inputs
        overrides it (``Embedding``: integer indices; a layer with several inputs: a tuple, ``shape``
        being the first one's); containers ask the layer their input goes to."""
        return rng.standard_normal(shape)

    def _require_cache(self, cache: Any) -> None:
        """Raise a clear error if ``backward`` is called without a forward pass to go back through (none yet, or
        none since a ``fit`` returned: it sets the last batch's caches back to None)."""
        if cache is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward called before forward: there is nothing to go back through"
                f"{_AFTER_FIT}"
            )

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        registries = self.__dict__.get("_parameters")
        if registries is None:
            if isinstance(value, (Parameter, Layer)):
                raise AttributeError(
                    f"cannot assign {type(value).__name__} '{name}' before "
                    f"{type(self).__name__}.__init__() called super().__init__()"
                )
            object.__setattr__(self, name, value)
            return
        params: dict[str, Parameter] = registries
        layers: dict[str, Layer] = self._layers
        buffers: dict[str, np.ndarray | None] = self._buffers
        generators: dict[str, np.random.Generator] = self._generators
        kind = type(value)
        if kind in _PLAIN_TYPES:  # (an object array, which may hold layers, is a container: see _is_container)
            plain = kind is not _NDARRAY or value.dtype is not _OBJECT
        elif kind is tuple:
            for item in value:  # (a loop, not ``all`` of a generator: a forward assigns a tuple every call)
                item_kind = type(item)
                if item_kind not in _PLAIN_TYPES or (item_kind is _NDARRAY and item.dtype is _OBJECT):
                    plain = False
                    break
            else:
                plain = True
        else:
            plain = False
        if plain and not (
            name in params or name in layers or name in buffers or name in generators
        ):  # the hot path: a forward caching arrays for its backward
            object.__setattr__(self, name, value)
            return
        if isinstance(value, (Parameter, Layer, np.random.Generator)):
            _check_name(self, name)
        if isinstance(value, Parameter):
            if name not in params:  # (a parameter replaced keeps its place: the order is the optimizer's)
                self._remember_plain(name)
                self._unregister(name)
            params[name] = value
            self._registered()
        elif isinstance(value, Layer):
            if value is self or any(layer is self for layer in value.layers()):
                raise ValueError(
                    f"{_attribute(self, name)}: assigning this layer would make a cycle "
                    "(it contains the layer it is assigned to)"
                )
            if name not in layers:  # (a layer replaced keeps its place: a Sequential runs them in order)
                self._remember_plain(name)
                self._unregister(name)
            layers[name] = value
            self._registered()
            _note_holder(value, self)
        elif name in params and value is not None:
            raise TypeError(
                f"{_attribute(self, name)} is a registered Parameter; assign a Parameter "
                f"(or None to remove it), not {type(value).__name__}. To change its values, "
                f"assign to {name}.data"
            )
        elif name in layers and value is not None:
            raise TypeError(
                f"{_attribute(self, name)} is a registered Layer; assign a Layer "
                f"(or None to remove it), not {type(value).__name__}"
            )
        elif name in buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(
                    f"{_attribute(self, name)} is a buffer; assign an ndarray or None, "
                    f"not {type(value).__name__}"
                )
            buffers[name] = value
        elif isinstance(value, np.random.Generator):
            self._remember_plain(name)
            generators[name] = value
            self._registered()
        else:
            self._unregister(name)
            if _is_container(value):
                _refuse_hidden_registrables(self, name, value)
                object.__setattr__(self, name, value)  # (first: a setting's descriptor may refuse the value)
                if name.startswith("_") and _minidl_type(type(self)):
                    return  # (minidl's own settings and caches hold no layer: Dense's _sizes are not searched)
                noted = self.__dict__.get("_plain_containers")  # (for the walks: see _refuse_hidden_since)
                if noted is None:
                    object.__setattr__(self, "_plain_containers", {name: None})
                elif name not in noted:
                    noted[name] = None
                return
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._unregister(name)
        object.__delattr__(self, name)

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy``: the attributes but ``_holders`` (weak references to the layers
        holding this one, which do not pickle, and which a copy of this layer alone must not inherit: each
        holder's :meth:`__setstate__` notes itself again), ``_side_state`` (the walk a side state keeps of
        this layer's, which a call of the copy makes anew) and ``_watched`` (the copy is in no side state's walk)."""
        state = self.__dict__
        if "_holders" in state or "_side_state" in state or "_watched" in state:
            state = {key: value for key, value in state.items() if key not in _NOT_COPIED}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling and ``copy.deepcopy``: the attributes, then this layer noted as the holder of its
        sub-layers (see :func:`holders_of`), also for a layer pickled before holders were kept; for one pickled
        before plain containers were noted (``_plain_containers``), its container attributes are noted now, so
        that the walks search them (a layer put in since the pickle was made is refused, not skipped)."""
        self.__dict__.update(state)
        for child in self.__dict__.get("_layers", {}).values():
            _note_holder(child, self)
        own = _minidl_type(type(self))  # (its private attributes are not noted: see __setattr__)
        noted = state.get("_plain_containers")
        if "_plain_containers" not in state and "_parameters" in state:
            noted = {name: None for name, value in state.items() if name not in _RESERVED and _is_container(value)}
        if noted and own:
            noted = {name: None for name in noted if not name.startswith("_")}
        if "_parameters" in state:
            self.__dict__["_plain_containers"] = noted or None

    def _unregister(self, name: str) -> None:
        if not (name in self._parameters or name in self._layers or name in self._buffers
                or name in self._non_persistent or name in self._generators):
            return
        self._parameters.pop(name, None)
        self._layers.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent.discard(name)
        self._generators.pop(name, None)
        self._registered()

    def _registered(self) -> None:
        """Count a change of what is registered (``side_state.count_registration``), when a side state has
        walked this layer (``_watched``): those side states drop their walks and copy the registries again at
        their next save.  A fresh layer's (in its ``__init__``, or before it is held by a walked model) counts
        nothing: no side state lists it, and the registration that puts it into a walked model counts."""
        if "_watched" in self.__dict__:
            side_state.count_registration(self)

    def _remember_plain(self, name: str) -> None:
        """Before ``name`` becomes registered: keep the plain attribute it replaces, as ``(True,
        value)``, or ``(False, None)`` for none, in ``_replaced``; fit's side state puts it back if
        the batch that registered ``name`` is refused (``self.rng = None``, then a generator)."""
        if name in self._parameters or name in self._layers or name in self._buffers or name in self._generators:
            return
        replaced = self.__dict__.get("_replaced")
        if replaced is None:
            replaced = {}
            object.__setattr__(self, "_replaced", replaced)
        replaced[name] = (True, self.__dict__[name]) if name in self.__dict__ else (False, None)

    def register_buffer(self, name: str, array: np.ndarray | None, persistent: bool = True) -> None:
        """Register non-trainable state (e.g. running statistics) under ``name``.

        Buffers are cast by :meth:`astype`, saved by :meth:`state_dict` (unless
        ``persistent=False``) and restored by the gradient checker, but never optimised.  Registering a
        buffer's name again replaces its value; a name the layer already has as a parameter, a layer, a
        generator or a plain attribute is refused (:class:`~minidl.errors.RegistrationError`), as in PyTorch.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot register a buffer before super().__init__()")
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}.register_buffer: the name must be a str, got {type(name).__name__}")
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"buffer '{name}' must be an ndarray or None, got {type(array).__name__}")
        _check_name(self, name)
        if name in self._parameters or name in self._layers:
            raise RegistrationError(f"'{name}' is already a parameter or layer of {type(self).__name__}")
        if name in self.__dict__ and name not in self._buffers:  # (a buffer registered again: its new value)
            what = "a random generator" if name in self._generators else \
                f"a plain attribute ({type(self.__dict__[name]).__name__})"
            raise RegistrationError(f"{type(self).__name__}.register_buffer: attribute '{name}' already exists "
                                    f"({what}), as PyTorch refuses it too; a buffer does not replace it: delete it "
                                    f"first (del self.{name}) or choose another name")
        self._remember_plain(name)
        self._unregister(name)
        self._buffers[name] = array
        if not persistent:
            self._non_persistent.add(name)
        self._registered()
        object.__setattr__(self, name, array)

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """Direct sub-layers, in the order they were assigned."""
        yield from self._layers.items()

    def children(self) -> Iterator[Layer]:
        """Direct sub-layers, in the order they were assigned (:meth:`named_children` without the names)."""
        for _, layer in self.named_children():
            yield layer

    def named_layers(self, prefix: str = "", *, remove_duplicate: bool = True) -> Iterator[tuple[str, Layer]]:
        """This layer (named ``prefix``) and every sub-layer below it, depth first, each once; with
        ``remove_duplicate=False`` a layer held in several places is listed under each of its names
        (PyTorch's ``named_modules(remove_duplicate=False)``).

        Every walk of the model (``parameters()``, ``state_dict()``, ``load_state_dict()``, ``summary()``, the
        gradient checker, ``fit``) goes through here, so here a layer, parameter or generator put into a plain
        container attribute after it was assigned (``self.blocks = []``, then ``self.blocks.append(Dense(...))``)
        is refused (``TypeError``), as assigning a container holding one is: it would be skipped silently.  The
        walks run every step, where skipping one is harmless, do not search (:func:`every_parameter`)."""
        if not remove_duplicate:
            yield from _walk_every_place(self, prefix, frozenset(), type(self).__name__)
            return
        seen: set[int] = set()
        owner = type(self).__name__  # (not self: walk is in a reference cycle with itself, which must not hold it)

        def walk(layer: Layer, name: str) -> Iterator[tuple[str, Layer]]:
            if id(layer) in seen:
                return
            seen.add(id(layer))
            if "_layers" not in layer.__dict__:  # (else a bare AttributeError deep in a walk's user)
                raise _no_registries(layer)
            if layer.__dict__.get("_plain_containers"):  # (only a layer assigned a container is searched)
                _refuse_hidden_since(owner, name, layer)
            yield name, layer
            for child_name, child in layer._layers.items():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def layers(self) -> Iterator[Layer]:
        """This layer and every sub-layer below it, depth first, each once (:meth:`named_layers` without the names)."""
        for _, layer in self.named_layers():
            yield layer

    def named_parameters(self, prefix: str = "", *, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, Parameter)`` for every parameter, in definition order.

        A parameter shared by several layers (or in a layer held in several places) is listed once, under
        its first name; with ``remove_duplicate=False`` under each of its names, in the same order, as
        PyTorch's ``named_parameters(remove_duplicate=False)``.
        """
        if not remove_duplicate:
            for layer_name, layer in self.named_layers(prefix, remove_duplicate=False):
                for name, param in layer._parameters.items():
                    yield (f"{layer_name}.{name}" if layer_name else name), param
            return
        seen: set[int] = set()
        for layer_name, layer in self.named_layers(prefix):
            for name, param in layer._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{layer_name}.{name}" if layer_name else name), param

    def parameters(self) -> list[Parameter]:
        """Every parameter once, in the order of :meth:`named_parameters`."""
        return [param for _, param in self.named_parameters()]

    def named_buffers(self, prefix: str = "", *, remove_duplicate: bool = True) -> Iterator[tuple[str, np.ndarray]]:
        """``(dotted_name, array)`` for every registered buffer, persistent or not; one set to ``None`` is
        skipped, as in PyTorch.

        A buffer shared by several layers (the same array) is listed once, under its first name, as
        :meth:`named_parameters` lists a shared parameter and PyTorch's ``named_buffers`` a shared buffer
        (:meth:`state_dict` keeps it under every name, as PyTorch's does); with ``remove_duplicate=False``
        under each of its names, as PyTorch's ``named_buffers(remove_duplicate=False)``.
        """
        seen: set[int] = set()
        for layer_name, layer in self.named_layers(prefix, remove_duplicate=remove_duplicate):
            for name, buffer in layer._buffers.items():
                if buffer is not None and (not remove_duplicate or id(buffer) not in seen):
                    seen.add(id(buffer))
                    yield (f"{layer_name}.{name}" if layer_name else name), buffer

    def buffers(self) -> list[np.ndarray]:
        """Every buffer once, in the order of :meth:`named_buffers`."""
        return [buffer for _, buffer in self.named_buffers()]

    def named_generators(self, prefix: str = "") -> Iterator[tuple[str, np.random.Generator]]:
        """The random generators assigned as attributes, e.g. a dropout layer's ``rng``."""
        for layer_name, layer in self.named_layers(prefix):
            for name, generator in layer._generators.items():
                yield (f"{layer_name}.{name}" if layer_name else name), generator

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of parameter elements (each shared parameter once); ``trainable_only``: of those with
        ``requires_grad``."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ modes and dtype
    def train(self, mode: bool = True) -> Self:
        """Set training mode on this layer and, through their own ``train``, every sub-layer (as
        PyTorch: a sub-layer's override, say one keeping a batch norm in eval, is honoured); returns
        ``self``."""
        flag = switch(mode, "mode", f"{type(self).__name__}.train")
        children = self.__dict__.get("_layers")
        if children is None:
            raise _no_registries(self)
        object.__setattr__(self, "training", flag)
        for child in children.values():
            child.train(flag)
        return self

    def eval(self) -> Self:
        """Set evaluation mode (e.g. dropout off, batch norm uses running stats); returns ``self``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Self:
        """Freeze (``False``) or unfreeze every parameter of this layer and its sub-layers, as
        PyTorch's ``Module.requires_grad_``; returns ``self``.

        Optimizers skip a frozen parameter, the built-in layers compute no gradient for it, and
        ``Sequential.backward_params`` stops at the first layer with a trainable parameter: freezing
        the front of a network (fine-tuning its last layers) also saves the back-pass through it.
        """
        flag = switch(requires_grad, "requires_grad", f"{type(self).__name__}.requires_grad_")
        for param in self.parameters():
            param.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        """Zero the ``.grad`` of every parameter (a training loop's every step: without the search of plain
        containers that :meth:`named_layers` makes, see :func:`every_parameter`)."""
        for param in every_parameter(self):
            param.zero_grad()

    def _cast_buffer(self, name: str, buffer: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """The floating buffer ``name`` in ``dtype``, for :meth:`astype` (a read-only one stays read-only)."""
        cast = buffer.astype(dtype)
        cast.flags.writeable = buffer.flags.writeable
        return cast

    def dtype_problem(self, dtype: np.dtype) -> str | None:
        """Why this layer cannot compute in the floating ``dtype`` (its own constructor refuses it), or
        None: :meth:`astype` asks every layer first and casts nothing when one says why."""
        return None

    def astype(self, dtype: DTypeLike) -> Self:
        """Cast every parameter and floating buffer to ``dtype`` (e.g. ``np.float32``); returns ``self``.

        Arrays that already have ``dtype`` are left as they are (not copied)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise DTypeError(f"{type(self).__name__}.astype: expected a floating dtype, got {dtype}")
        if not dtype.isnative:  # (">f4", say from a weight file: native float32, as the constructors make it)
            dtype = np.dtype(dtype.type)
        for name, layer in self.named_layers():  # every refusal before anything is cast
            problem = layer.dtype_problem(dtype)
            if problem is not None:
                raise DTypeError(f"{type(self).__name__}.astype({dtype.name}): {f'layer {name}: ' if name else ''}"
                                 f"{problem}; nothing was cast")
        for param in self.parameters():
            param.astype(dtype)
        for layer in self.layers():
            for name, buffer in list(layer._buffers.items()):
                if buffer is not None and buffer.dtype.kind == "f" and buffer.dtype != dtype:
                    setattr(layer, name, layer._cast_buffer(name, buffer, dtype))
        return self

    # ------------------------------------------------------------------ state
    @overload
    def state_dict(self, *, generators: Literal[False] = False) -> dict[str, np.ndarray]: ...

    @overload
    def state_dict(self, *, generators: bool) -> dict[str, Any]: ...

    def state_dict(self, *, generators: bool = False) -> dict[str, Any]:
        """Copies of every parameter's data and persistent buffer, keyed by dotted name, and the layout of each
        layer whose parameter shapes do not fix its structure (:meth:`state_layout`: a ``Dense``, a convolution, a
        recurrent layer), an int64 array under ``<dotted name>._layout`` (``"0._layout"``; ``"_layout"`` for
        the layer itself) that :meth:`load_state_dict` compares.

        With ``generators=True`` the state of every registered random generator (e.g. a dropout
        layer's ``rng``) is added too, as a copy of ``generator.bit_generator.state`` (a dict of
        ints and strings) under its dotted name: what a bit-for-bit resume of a model that draws
        random numbers needs.  :func:`minidl.save` can store it.  A generator shared by several
        layers is listed once, under its first name.
        """
        state: dict[str, Any] = {}
        for name, param in self.named_parameters():
            state[name] = param.data.copy()
        for layer_name, layer in self.named_layers():
            for name, buffer in layer._buffers.items():
                if buffer is not None and name not in layer._non_persistent:
                    state[f"{layer_name}.{name}" if layer_name else name] = buffer.copy()
        for key, (_, _, layout) in self._layout_targets().items():
            state[key] = np.array(layout, dtype=np.int64)
        if generators:
            for name, generator in self._unique_generators().items():
                state[name] = copy.deepcopy(generator.bit_generator.state)
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy ``state`` (from :meth:`state_dict`) into this layer's parameters and buffers.

        Every problem is collected first: with ``strict=True`` missing and unexpected keys are
        refused, and in any mode a non-array value, a shape or dtype mismatch, a parameter holding
        NaN/inf, or a buffer value its layer cannot use (:meth:`buffer_problem`, e.g. a negative
        running variance) is refused.  If anything is refused a single
        :class:`~minidl.errors.StateDictError` lists it all and nothing is changed.  Returns the
        skipped keys (``strict=False``).  Even with ``strict=False`` a state none of whose keys is this
        layer's, but which holds under one of them a mapping with every parameter and buffer key of this
        layer (a whole training checkpoint), is refused with a hint to pass that entry: it would load nothing.

        Generator states (``state_dict(generators=True)``) are optional: a state without any is
        loaded as before and leaves the generators alone.  A state with some must, under
        ``strict=True``, have them all, and each must be a valid state for the same kind of bit
        generator (e.g. ``PCG64``).

        Layouts (``<path>._layout``, see :meth:`state_layout`) are optional too (a state saved before they
        were, or made by hand, is checked by its shapes alone, and a missing one is never reported), but
        each one present is compared whatever ``strict`` is: a layout other than the layer's (a
        ``Conv2D(2, 3, kernel_size=2)``'s state for a ``Conv2D(8, 3, kernel_size=1)``: the same W shape, (9,
        3), another meaning), one for a layer that has none, or one that is not a 1-D int array, is refused.
        """
        own, own_generators, values, missing, unexpected = self._checked_state(state, strict)
        # every copy first: a copy that fails (memory) must not leave the arrays before it replaced
        copies = {key: aligned.copy(value) for key, value in values.items()}
        for key, value in copies.items():
            own[key][0](value)
        for key, generator in own_generators.items():
            if key in state:
                generator.bit_generator.state = copy.deepcopy(dict(state[key]))
        return LoadResult(missing, unexpected)

    def _checked_state(self, state: Mapping[str, Any], strict: bool = True) -> _CheckedState:
        """What :meth:`load_state_dict` would load of ``state``, every check made and nothing changed (its
        ``StateDictError``, with the same message, when it would refuse the state): a check alone for a state
        to load later (``fit`` checks a resumed ``EarlyStopping``'s best weights before training)."""
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{who} expects a mapping, got {type(state).__name__}")
        strict = switch(strict, "strict", who)
        own = self._state_targets()
        own_generators = self._unique_generators()
        layouts = self._layout_targets()
        with_generators = any(key in own_generators for key in state)
        missing = [key for key in own if key not in state]
        if with_generators:
            missing += [key for key in own_generators if key not in state]
        unexpected = [key for key in state if key not in own and key not in own_generators and key not in layouts]
        # a layout for a layer that has none (saved from another kind of layer): refused in any mode, not unexpected
        layout_problems, unexpected = self._layout_problems(state, layouts, unexpected)
        problems: list[str] = []
        if strict:
            problems += [f"missing key '{key}'" for key in missing]
            problems += [f"unexpected key '{key}'" if isinstance(key, str) else
                         f"unexpected key {key!r} (of type {type(key).__name__}; keys must be str, as state_dict() "
                         "gives them)"
                         for key in unexpected]
        whole = not strict and len(unexpected) == len(state)  # nothing would load: a checkpoint given whole?
        # (strict: the hint ends the error raised for the unexpected keys; else it is the reason to refuse)
        hint = _nested_hint(state, unexpected, type(self).__name__, own.keys() | own_generators.keys(),
                            own.keys(), whole) if unexpected and (strict or whole) else ""
        problems += layout_problems
        if not strict and hint and not layout_problems:
            raise StateDictError(
                f"{who} refused the state (strict=False): none of its keys "
                f"({', '.join(short_repr(key) for key in unexpected[:5])}{', ...' if len(unexpected) > 5 else ''}) "
                f"names a parameter, buffer or generator of this {type(self).__name__}, so nothing would be "
                f"loaded; nothing was changed{hint}"
            )
        values: dict[str, np.ndarray] = {}  # the arrays to load, as plain native-order ndarrays
        first_key: dict[int, str] = {}  # an array's id -> the first key of the state that loads into it
        for key, (_, current, check) in own.items():
            if key not in state:
                continue
            value = state[key]
            if isinstance(value, np.ndarray):
                value = values[key] = plain_native(value)
            # a buffer shared by several layers is saved under each name: the values must agree (it is one array)
            first = key if current is None else first_key.setdefault(id(current), key)
            if not isinstance(value, np.ndarray):
                problems.append(f"'{key}': expected an ndarray, got {type(value).__name__}")
            elif current is not None and value.shape != current.shape:
                problems.append(f"'{key}': expected shape {current.shape}, got {value.shape}")
            elif current is not None and value.dtype != current.dtype:
                problems.append(f"'{key}': expected dtype {current.dtype}, got {value.dtype}")
            elif first != key and first in values and not np.array_equal(values[first], value, equal_nan=True):
                problems.append(f"'{key}': the same array as '{first}' (a buffer shared by two layers), but the "
                                "state gives the two other values")
            else:
                problem = check(value)
                if problem:
                    problems.append(f"'{key}': {problem}")
        for key, generator in own_generators.items():
            if key in state:
                problem = _generator_state_problem(generator, state[key])
                if problem:
                    problems.append(f"'{key}': {problem}")
        if problems:
            raise StateDictError(
                f"{type(self).__name__}.load_state_dict refused the state "
                f"({len(problems)} problem{'s' if len(problems) > 1 else ''}); nothing was changed:\n  "
                + "\n  ".join(problems) + hint
            )
        return _CheckedState(own, own_generators, values, missing, unexpected)

    def _unique_generators(self) -> dict[str, np.random.Generator]:
        """Dotted name -> generator, each generator once (under its first name)."""
        seen: set[int] = set()
        result: dict[str, np.random.Generator] = {}
        for name, generator in self.named_generators():
            if id(generator) not in seen:
                seen.add(id(generator))
                result[name] = generator
        return result

    def buffer_problem(self, name: str, value: np.ndarray) -> str | None:
        """What is wrong with ``value`` (of the right shape and dtype) as this layer's buffer
        ``name``, or None: :meth:`load_state_dict` refuses a state that says something.  A layer
        whose buffers have a valid range overrides it (``BatchNorm``: no negative variance)."""
        return None

    def state_layout(self) -> tuple[int, ...] | None:
        """What this layer's parameter shapes do not say of its structure, as a tuple of ints, or None (the
        default: the shapes say it all).  A layer whose bias is row 0 of one 2-D ``W`` needs one: ``Dense(8, 3)``
        and ``Dense(9, 3, bias=False)`` both have a (9, 3) ``W``, so ``Dense`` gives ``(in_features, bias)``.
        :meth:`state_dict` saves it as ``<path>._layout`` and :meth:`load_state_dict` refuses a state whose
        layout differs.  A layer of your own overrides it together with :meth:`layout_words`."""
        return None

    def layout_words(self, layout: tuple[int, ...]) -> str | None:
        """``layout``, one :meth:`state_layout` of a layer of this class could give, in the words of a refusal
        (``Dense``: ``"8 input features with a bias"``); None for one no such layer has (another length, a
        size < 1, a flag other than 0 or 1), which the refusal shows as numbers."""
        return None

    def _layout_targets(self) -> dict[str, tuple[str, Layer, tuple[int, ...]]]:
        """``<dotted name>._layout`` -> (the layer's dotted name, the layer, its :meth:`state_layout`) for every
        layer that has one, each once (under its first name, as its parameters)."""
        targets: dict[str, tuple[str, Layer, tuple[int, ...]]] = {}
        for name, layer in self.named_layers():
            layout = layer.state_layout()
            if layout is not None:
                targets[_layout_key(name)] = (name, layer, _checked_layout(layer, layout))
        return targets

    def _layout_problems(self, state: Mapping[Any, Any], layouts: dict[str, tuple[str, Layer, tuple[int, ...]]],
                         unexpected: list[Any]) -> tuple[list[str], list[Any]]:
        """For :meth:`load_state_dict`: what is wrong with the layouts in ``state`` (``layouts``: this layer's, from
        :meth:`_layout_targets`), and ``unexpected`` without the layouts of leaf layers that have none (each a
        problem).  A layout key that names no layer, or a layer that holds others (``"_layout"`` of a bare
        ``Dense``'s state given to a ``Sequential``: its keys lack a prefix), stays unexpected, as any key of a
        layer not here."""
        problems: list[str] = []
        for key, (name, layer, layout) in layouts.items():
            if key in state:
                problem = _layout_problem(name, layer, layout, state[key])
                if problem:
                    problems.append(problem)
        candidates = [key for key in unexpected if isinstance(key, str) and (key == _LAYOUT or key.endswith(_SUFFIX))]
        if not candidates:
            return problems, unexpected
        places = dict(self.named_layers(remove_duplicate=False))  # (a shared layer: at each of its places)
        known = self._state_targets().keys() | layouts.keys()
        refused: set[str] = set()
        for key in candidates:
            name = key[:-len(_SUFFIX)] if key != _LAYOUT else ""
            place = places.get(name)
            if place is None or place.state_layout() is not None:
                continue
            if next(place.children(), None) is None:  # a leaf layer of another kind
                refused.add(key)
                problems.append(f"{_layer_label(name, place)}: the state holds a layout for it, "
                                f"{_layout_text(state[key])}, but this layer has none: the state was saved from "
                                "another kind of layer")
                continue
            prefix = _missing_prefix(name, places, known, state, unexpected)
            if prefix is not None:  # (else unexpected, as any key: the hints on nested states apply)
                refused.add(key)
                inner = f"{name}.{prefix}"[:-1] if name else prefix[:-1]
                problems.append(f"{_layer_label(name, place)}: the state holds a layout for it, "
                                f"{_layout_text(state[key])}, but it holds layers and has none: its keys lack the "
                                f"prefix '{prefix}' (with it they are those of {_layer_label(inner, places[inner])})")
        return problems, [key for key in unexpected if key not in refused]

    def _state_targets(self) -> dict[str, tuple[Any, np.ndarray | None, Any]]:
        """Dotted name -> (function that stores a new array, current array, function that says
        what is wrong with a new array of the right shape and dtype, or None)."""
        targets: dict[str, tuple[Any, np.ndarray | None, Any]] = {}
        for name, param in self.named_parameters():

            def set_param(value: np.ndarray, param: Parameter = param) -> None:
                param.data = value
                if param._grad.shape != value.shape or param._grad.dtype != value.dtype:
                    param.zero_grad()  # no gradient: the array is re-made when next needed

            targets[name] = (set_param, param.data, _parameter_problem)
        holders = self._buffer_holders()
        for layer_name, layer in self.named_layers():
            for name, buffer in layer._buffers.items():
                if buffer is None or name in layer._non_persistent:  # as state_dict: nothing to save
                    continue

                # a buffer shared by several layers: every one gets the loaded array (PyTorch copies into
                # the shared tensor), so it stays shared
                places = holders[id(buffer)]

                def set_buffer(value: np.ndarray, places: list[tuple[Layer, str]] = places) -> None:
                    for holder, attribute in places:
                        setattr(holder, attribute, value)

                check = functools.partial(layer.buffer_problem, name)
                targets[f"{layer_name}.{name}" if layer_name else name] = (set_buffer, buffer, check)
        return targets

    def _buffer_holders(self) -> dict[int, list[tuple[Layer, str]]]:
        """id of each buffer array -> every (layer, name) that holds it (several for a shared buffer)."""
        holders: dict[int, list[tuple[Layer, str]]] = {}
        for layer in self.layers():
            for name, buffer in layer._buffers.items():
                if buffer is not None:
                    holders.setdefault(id(buffer), []).append((layer, name))
        return holders

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """Arguments shown inside this layer's ``repr``; override in subclasses."""
        return ""

    def __repr__(self) -> str:
        children = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self._layers.items()
        ]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + "\n" + "\n".join(children) + "\n)"


#: the last part of a layout's key in a state dict (``"0._layout"``; the layer's own: ``"_layout"``): a name no
#: parameter, buffer, layer or generator may take (``_RESERVED``)
_LAYOUT = "_layout"
_SUFFIX = "." + _LAYOUT
#: how many numbers of a state's layout a message shows at most
_SHOWN = 8


def _layout_key(name: str) -> str:
    """The state dict key of the layout of the layer at dotted ``name``."""
    return f"{name}{_SUFFIX}" if name else _LAYOUT


def _name_part(error: MinidlError, layer: Layer) -> None:
    """Say in ``error``'s message which part of ``layer`` raised it, if ``layer``'s forward did not.

    ``error._raised_in`` is the outermost layer the message already places: the layer that raised
    (a message names its layer's kind: ``Dense(8 -> 3): ...``), or a container that put the position
    of its part in front (``Sequential layer '0': ...``).  A model of one's own calls its parts in its
    ``forward``; when one raises, this puts its dotted name in front (``Net layer 'encoder': ...``),
    so that every model, nested too, gives the path from the model called to the layer.
    """
    owner = getattr(error, "_raised_in", None)
    if owner is not None and owner is not layer and layer._layers and error.args and isinstance(error.args[0], str):
        path = next((name for name, part in layer.named_layers() if part is owner), None)
        if path:
            error.args = (f"{type(layer).__name__} layer '{path}': {error.args[0]}", *error.args[1:])
    with contextlib.suppress(AttributeError):  # (an exception class with __slots__)
        error._raised_in = layer  # type: ignore[attr-defined]


def _layer_label(name: str, layer: Layer) -> str:
    """``layer '0' (Conv2D)``; the layer loaded into itself: ``Conv2D``."""
    return f"layer {name!r} ({type(layer).__name__})" if name else type(layer).__name__


def _checked_layout(layer: Layer, layout: Any) -> tuple[int, ...]:
    """``layout`` from ``layer.state_layout()`` as a tuple of ints, or a ``TypeError`` naming the class."""
    if isinstance(layout, tuple) and all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))
                                         for n in layout):
        return tuple(int(n) for n in layout)
    raise TypeError(f"{type(layer).__name__}.state_layout() must return None or a tuple of ints, got "
                    f"{short_repr(layout)}")


def _missing_prefix(name: str, places: dict[str, Layer], known: Set[str], state: Mapping[Any, Any],
                    unexpected: list[Any]) -> str | None:
    """For the layout key of the container at dotted ``name``: the prefix (``"0."``) that, put after ``name``,
    makes every unexpected key under ``name`` one of the model's (``known``) that ``state`` does not hold, the
    first sub-layer with a layout whose does; None if there is none (the state is not one sub-layer's saved
    alone)."""
    base = f"{name}." if name else ""
    under = [key[len(base):] for key in unexpected if isinstance(key, str) and key.startswith(base)]
    for path, layer in places.items():
        if path.startswith(base) and path != name and layer.state_layout() is not None:
            prefix = f"{path[len(base):]}."
            if all(f"{base}{prefix}{key}" in known and f"{base}{prefix}{key}" not in state for key in under):
                return prefix
    return None


def _is_layout(value: Any) -> bool:
    """Whether ``value`` from a state can be a layout: a 1-D array of ints, or of floats that are all finite whole
    numbers (a cast or an average over a whole state dict makes a layout floats), compared as ints."""
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        return False
    if value.dtype.kind in "iu":
        return True
    with np.errstate(invalid="ignore"):
        return value.dtype.kind == "f" and bool(np.all(np.isfinite(value)) and np.all(value == np.trunc(value)))


def _layout_text(value: Any) -> str:
    """A layout from a state, as a message shows it: ``(2, 1, 2, 2, 1)``, ``an array of shape (2, 2)``..."""
    if not isinstance(value, np.ndarray):
        return f"a {type(value).__name__}"
    if not _is_layout(value):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    numbers = [int(n) for n in value[:_SHOWN]]
    more = f", ... ({value.size} numbers)" if value.size > _SHOWN else ("," if value.size == 1 else "")
    return f"({', '.join(map(str, numbers))}{more})"


def features_layout_words(layout: tuple[int, ...], biases: str) -> str | None:
    """``layout_words`` of a layer whose layout is ``(input features, bias)`` (``Dense``, the recurrent layers):
    ``(8, 1)``: ``"8 input features with <biases>"``; None for another length, a size < 1, a flag not 0 or 1."""
    if len(layout) != 2 or layout[0] < 1 or layout[1] not in (0, 1):
        return None
    return f"{layout[0]} input feature{'s' if layout[0] != 1 else ''} {'with' if layout[1] else 'without'} {biases}"


def _layout_problem(name: str, layer: Layer, layout: tuple[int, ...], value: Any) -> str | None:
    """What is wrong with ``value`` as the layout of ``layer`` (at dotted ``name``, whose layout is ``layout``),
    or None: not a layout (:func:`_is_layout`), or another layout, said in the layer's words where it has some."""
    label = _layer_label(name, layer)
    mine = layer.layout_words(layout)
    if not _is_layout(value):
        floats = isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f"
        return (f"'{_layout_key(name)}': expected the layout of {label}, a 1-D array of whole numbers such as "
                f"{np.array(layout, dtype=np.int64)!r}, got {_layout_text(value)}"
                + (" with numbers that are not finite whole numbers (arithmetic over a whole state dict, e.g. an "
                   "average of two checkpoints of different layouts, made them so: leave the '_layout' entries out "
                   "of it)" if floats else ""))
    this = f"{layout}" if mine is None else f"{layout} ({mine})"
    if value.size != len(layout):
        return (f"{label}: the state holds a layout of {value.size} number{'s' if value.size != 1 else ''}, "
                f"{_layout_text(value)}, from another kind of layer (a {type(layer).__name__}'s has {len(layout)}); "
                f"this layer's is {this}")
    given = tuple(int(n) for n in value)
    if given == layout:
        return None
    words = layer.layout_words(given)
    if words is not None and mine is not None:
        return f"{label}: the state holds {words}, this layer {mine}"
    return (f"{label}: the state holds the layout {_layout_text(value)}, which no {type(layer).__name__} has; "
            f"this layer's is {this}")


def _nested_hint(state: Mapping[Any, Any], unexpected: list[Any], owner: str, own: Set[str], stored: Set[str],
                 whole: bool) -> str:
    """For a state with unexpected keys: the line naming those that hold a state dict of this layer (a training
    checkpoint, ``{"model": model.state_dict(), "optimizer": ..., "epoch": 3}``, given whole), else ``""``.

    ``whole``: the entry must hold every key of ``stored`` (the parameters and buffers; none: no entry is this
    layer's), the rule for refusing a state with ``strict=False``; else any one key of ``own`` (those and the
    generators) will do, for the last line of an error raised anyway.  An entry named ``'model'`` is named
    alone; else every match is.  Best effort: a state whose reading fails gives no hint."""
    try:
        if whole:
            nested = [key for key in unexpected if stored and isinstance(state[key], Mapping)  # (a quick look first,
                      and all(inner in state[key] for inner in stored) and stored <= set(state[key])]  # then its keys)
        else:
            nested = [key for key in unexpected
                      if isinstance(state[key], Mapping) and any(inner in own for inner in state[key])]
        if "model" in nested:
            nested = ["model"]
        return nested_state_hint([(key, "") for key in nested], owner)
    except Exception:  # (a mapping whose iteration or lookup raises, an unhashable key: the real checks say it)
        return ""


class _Holders(list[weakref.ref[Layer]]):
    """A layer's weak references to the layers holding it.  A copy or a pickle of it is empty (weak references
    do not pickle): also when a layer's own ``__getstate__`` keeps it, the holders of the copy note
    themselves again (:meth:`Layer.__setstate__`)."""

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return _Holders, ()

    def __copy__(self) -> _Holders:
        return _Holders()

    def __deepcopy__(self, memo: dict[int, Any]) -> _Holders:
        return _Holders()


def _note_holder(child: Layer, holder: Layer) -> None:
    """Note, by a weak reference in ``child._holders``, that ``holder`` registered ``child`` as a sub-layer
    (dead references are dropped here). Only registration writes it; nothing removes a holder that lets
    ``child`` go: :func:`holders_of` checks each one still holds it, so a registry put back by hand (``fit``
    undoing a refused batch) cannot leave a holder out."""
    refs = child.__dict__.get("_holders", ())
    if any(ref() is holder for ref in refs):
        return
    live = [ref for ref in refs if ref() is not None]
    object.__setattr__(child, "_holders", _Holders([*live, weakref.ref(holder)]))


def holders_of(layer: Layer) -> list[Layer]:
    """The layers that hold ``layer`` as a direct sub-layer now (registered it under some name, and still
    have it), in the order they took it: what an edit of a container asks about the containers above it."""
    found = []
    for ref in layer.__dict__.get("_holders", ()):
        holder = ref()
        if holder is not None and any(child is layer for child in holder.__dict__.get("_layers", {}).values()):
            found.append(holder)
    return found


def every_parameter(layer: Layer) -> list[Parameter]:
    """Every parameter of ``layer`` and its sub-layers, each once, in :meth:`Layer.parameters`' order, from the
    registries alone: without the search of plain containers for layers put in unregistered that every
    :meth:`Layer.named_layers` makes, which costs a walk of each container attribute of a user's layer (a cache of
    500 steps: 0.6 ms).  For the walks a training loop runs every step (``zero_grad``, ``Sequential``'s
    ``backward_params``): a parameter hidden in a container, which no optimizer holds (their parameters come from
    the searching walks), is harmless to skip there.  A layer whose class overrides ``parameters()`` or
    ``named_parameters()`` (to add a shared one) is asked its own, as PyTorch's ``zero_grad`` asks it."""
    cls = type(layer)
    if cls.parameters is not Layer.parameters or cls.named_parameters is not Layer.named_parameters:
        return layer.parameters()
    found: dict[int, Parameter] = {}
    for current in _registered_layers(layer):
        for param in current.__dict__["_parameters"].values():
            found.setdefault(id(param), param)
    return list(found.values())


def _registered_layers(layer: Layer) -> Iterator[Layer]:
    """``layer`` and every layer registered below it, each once, depth first in order (as :meth:`Layer.named_layers`),
    from the registries alone: without the search of plain containers the walks make."""
    seen: set[int] = set()
    pending = [layer]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        registries = current.__dict__
        if "_layers" not in registries:
            raise _no_registries(current)
        yield current
        pending.extend(reversed(registries["_layers"].values()))


def _minidl_type(cls: type) -> bool:
    """Whether ``cls`` is a class minidl defines (not a user's subclass of one)."""
    module = cls.__module__
    return module == "minidl" or module.startswith("minidl.")


def _walk_every_place(layer: Layer, name: str, above: frozenset[int], owner: str) -> Iterator[tuple[str, Layer]]:
    """``named_layers(remove_duplicate=False)``: ``layer`` and its sub-layers, depth first, under every
    name; ``above``: the ids of the layers it is inside (a layer inside itself, a cycle, which assignment
    refuses, is not walked into for ever); ``owner``: the class name of the layer walked, for messages."""
    if id(layer) in above:
        return
    if "_layers" not in layer.__dict__:
        raise _no_registries(layer)
    if layer.__dict__.get("_plain_containers"):
        _refuse_hidden_since(owner, name, layer)
    yield name, layer
    inside = above | {id(layer)}
    for child_name, child in layer._layers.items():
        yield from _walk_every_place(child, f"{name}.{child_name}" if name else child_name, inside, owner)


#: Values that can never be registered: assigning one to an unregistered name needs no bookkeeping.
_PLAIN_TYPES = frozenset({np.ndarray, type(None), bool, int, float, str})


def parameter_backward(layer: Layer) -> Callable[[np.ndarray], object]:
    """``layer.backward_params`` when it is safe to use in place of ``layer.backward``, else ``layer.backward``.

    It is not safe when a subclass overrides ``backward`` below the class that defines
    ``backward_params`` (e.g. a user's ``Dense`` subclass with its own back-pass, which the inherited
    ``backward_params`` would bypass), or when ``backward`` was replaced on the instance.  What it
    cannot see: a ``backward`` replaced on the class that also defines ``backward_params``
    (``md.Dense.backward = ...``), or supplied by a ``__getattribute__``; subclass instead (the
    gradient checker compares what training calls with ``backward`` and reports the difference).
    """
    if "backward" in layer.__dict__:
        return layer.backward
    defined = type(layer).__dict__
    if "backward_params" in defined and "backward" in defined:  # (a Dense: both its own, no walk)
        return layer.backward_params
    # the classes that define the two methods (Layer at the latest), found in one walk of the MRO: it
    # runs every step (Sequential.backward_params), where two defining_class() generators cost 2-3 us
    owner_backward: type | None = None
    owner_params: type | None = None
    for cls in type(layer).__mro__:
        defined = cls.__dict__
        if owner_params is None and "backward_params" in defined:
            owner_params = cls
        if owner_backward is None and "backward" in defined:
            owner_backward = cls
        if owner_backward is not None and owner_params is not None:
            break
    assert owner_backward is not None and owner_params is not None
    return layer.backward_params if issubclass(owner_params, owner_backward) else layer.backward


def defining_class(cls: type, name: str) -> type | None:
    """The class in ``cls``'s MRO whose body defines ``name`` (what an override is told apart by), or
    None."""
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


def minidl_own(obj: Any) -> bool:
    """Whether a layer's or loss's ``forward`` and ``backward`` are minidl's own (a built-in one, or a subclass
    that overrides neither): known to keep one forward cache, and tested right for one call."""
    if "forward" in vars(obj) or "backward" in vars(obj):
        return False
    for method in ("forward", "backward"):
        owner = defining_class(type(obj), method)
        if owner is None or not (owner.__module__ == "minidl" or owner.__module__.startswith("minidl.")):
            return False
    return True


def minidl_class(obj: Any) -> bool:
    """Whether ``obj`` is of a class minidl defines (not a subclass of one's own, whatever it overrides) and
    has no method of its own set on it: then no user code runs in its calls, and its attributes are minidl's."""
    # (callable() first: most attributes are not, and it is cheaper than the isinstance tests that follow)
    return _minidl_type(type(obj)) and not any(
        callable(value) and not isinstance(value, (type, np.random.Generator, Layer, Parameter, np.ndarray))
        for value in vars(obj).values())


def _parameter_problem(value: np.ndarray) -> str | None:
    """A parameter from a state must be finite: NaN/inf weights make every output NaN."""
    return nonfinite_problem(value)


def nonfinite_problem(value: np.ndarray) -> str | None:
    """``"holds 3 NaN/inf value(s)"`` for a float or complex array that holds any, else None: what
    :meth:`Layer.load_state_dict` says of a parameter, and a :meth:`Layer.buffer_problem` of a buffer."""
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        return f"holds {int(np.count_nonzero(~np.isfinite(value)))} NaN/inf value(s)"
    return None


def _no_registries(layer: Layer) -> AttributeError:
    """The error for a layer whose ``__init__`` skipped ``super().__init__()``."""
    return AttributeError(f"{type(layer).__name__}.__init__ did not call super().__init__(), so the layer has no "
                          "registries (a Layer subclass calls it first thing in __init__)")


#: attributes every layer keeps for itself: a parameter, layer, buffer or generator may not take their names
_RESERVED = frozenset({"training", "_parameters", "_layers", "_buffers", "_non_persistent", "_generators",
                       "_replaced", "_holders", "_side_state", "_watched", "_plain_containers", _LAYOUT})
#: the attributes a pickled or deep-copied layer leaves out (see ``Layer.__getstate__``)
_NOT_COPIED = frozenset({"_holders", "_side_state", "_watched"})


def _attribute(owner: Layer, name: str) -> str:
    """``owner``'s attribute ``name`` in a message: ``Net.fc`` for a name Python would write so, else
    ``Sequential attribute '2'`` (``Sequential.2`` reads as a number)."""
    return f"{type(owner).__name__}.{name}" if name.isidentifier() else f"{type(owner).__name__} attribute {name!r}"


def _check_name(owner: Layer, name: str) -> None:
    """Refuse a name that would collide in ``state_dict``: dots join the names of nested layers, so
    ``sub.W`` as an attribute would meet the parameter ``W`` of a child ``sub``, and a child named
    ``""`` would give its ``W`` the key of its parent's ``W`` (one of the two would be lost).  Refuse
    too a name that would hide a method or property of the class (``forward``, ``train``) or one of
    the layer's own registries, as PyTorch does (the error would come later, from far away)."""
    if name in _RESERVED or _is_method(type(owner), name):
        what = "the key of the layer's layout in state_dict" if name == _LAYOUT else \
            "one of the layer's own registries" if name in _RESERVED else \
            f"a method or property of {type(owner).__name__}"
        raise RegistrationError(f"{type(owner).__name__}: cannot register a parameter, layer, buffer or generator "
                                f"as {name!r}: that is {what}, which it would hide; choose another name")
    if name and "." not in name:
        return
    if not name:
        raise ValueError(f"{type(owner).__name__}: a parameter, layer, buffer or generator needs a name, got '' "
                         "(its key in state_dict would collide with its parent's)")
    raise ValueError(f"{type(owner).__name__}: a parameter, layer, buffer or generator name may not "
                     f"contain '.', got {name!r} (dots separate the names of nested layers)")


def _is_method(cls: type, name: str) -> bool:
    """Whether ``cls`` defines ``name`` as a function, method or property (a class-level default,
    ``bias = None``, ``activation = md.ReLU``, ``np.tanh`` or a layer, is not one)."""
    found = inspect.getattr_static(cls, name, None)
    return isinstance(found, _METHOD_TYPES)


#: what a class body defines as a method: functions (plain, cached, partial), properties, static/class methods
_METHOD_TYPES = (types.FunctionType, property, functools.cached_property, staticmethod, classmethod,
                 functools.partialmethod, functools.singledispatchmethod, type(functools.lru_cache(maxsize=None)(len)))

#: the plain containers that register nothing, searched for layers, parameters and generators when one is assigned
#: (refused) and at every walk of the model (one put in since); their subclasses too (an ``OrderedDict``, a
#: ``defaultdict``, a named tuple).  Not every iterable: a user's sequence (a data set) may load when iterated.
_CONTAINERS = (list, tuple, dict, set, frozenset, collections.deque, collections.UserList, collections.UserDict)
#: the dtype of an array of Python objects (one dtype object): such an array is a container, as a list
_OBJECT = np.dtype(object)
_NDARRAY = np.ndarray  # (a module global: the hot path of ``__setattr__`` reads it)


def _is_container(value: Any) -> bool:
    """Whether ``value`` is a plain container (:data:`_CONTAINERS`) or an array of Python objects (``dtype=object``),
    either of which may hold layers, parameters or generators that nothing registers."""
    return isinstance(value, _CONTAINERS) or (isinstance(value, np.ndarray) and value.dtype == _OBJECT)


#: how many places a refusal names at most
_PLACES_SHOWN = 4


def _hidden_places(value: Any) -> list[tuple[str, str, Any]]:
    """Where layers, parameters and generators sit inside the plain container ``value`` (lists of lists, dicts
    of deques, ... to any depth, and object arrays), which registers none of them: ``(path, type name, object)``
    in the order met, the path as Python indexes it (``"[0]"``, ``"['enc'][1]"``; ``"{...}"`` for a set's item)."""
    found: list[tuple[str, str, Any]] = []
    pending: collections.deque[tuple[str, Any]] = collections.deque([("", value)])
    seen: set[int] = set()
    while pending:
        path, container = pending.popleft()
        if id(container) in seen:  # (a list that holds itself)
            continue
        seen.add(id(container))
        if isinstance(container, np.ndarray):
            items: Any = ((index, container[index]) for index in np.ndindex(container.shape))
        elif isinstance(container, (dict, collections.UserDict)):
            items = container.items()
        elif isinstance(container, (set, frozenset)):
            items = ((_IN_SET, item) for item in container)
        else:
            items = enumerate(container)
        for key, item in items:  # (the path made only for what is found: a cache of arrays is assigned every call)
            kind = type(item)
            if kind in _PLAIN_TYPES and (kind is not np.ndarray or item.dtype != object):  # (a cache, a setting)
                continue
            if isinstance(item, (Layer, Parameter, np.random.Generator)):
                found.append((path + _index_text(key), kind.__name__, item))
            elif _is_container(item):
                pending.append((path + _index_text(key), item))
    return found


#: the key :func:`_hidden_places` gives a set's items (which have no index)
_IN_SET = object()


def _index_text(key: Any) -> str:
    """``key`` as Python indexes with it: ``[0]``, ``['enc']``, ``[1, 2]`` (an array's), ``{...}`` (a set's item)."""
    if key is _IN_SET:
        return "{...}"
    if isinstance(key, tuple) and all(isinstance(i, int) for i in key):
        return f"[{', '.join(map(str, key))}]"
    return f"[{key!r}]"


def _registrables_in(value: Any) -> set[str]:
    """The type names of the layers, parameters and generators inside plain containers (lists of
    lists, dicts of lists, ... to any depth), which assignment would not register."""
    return {kind for _, kind, _ in _hidden_places(value)}


def _registered_below(layer: Layer) -> set[int]:
    """The ids of ``layer`` and of the layers, parameters and generators registered in it, at any depth (its
    registries, read directly: the walks, which search containers with :func:`_unregistered_places`, are not
    called from it)."""
    found: set[int] = set()
    for current in _registered_layers(layer):
        registries = current.__dict__
        found.add(id(current))
        found.update(map(id, registries.get("_parameters", {}).values()))
        found.update(map(id, registries.get("_generators", {}).values()))  # (a layer pickled before generators)
    return found


def _unregistered_places(owner: Layer, value: Any) -> list[tuple[str, str]]:
    """``(path, type name)`` of the layers, parameters and generators in the plain container ``value`` of
    ``owner`` that are registered nowhere in ``owner``: a reference to one of its own sub-layers or parameters
    (``self._ran.append(self.blocks[0])``, a record of a route for backward) hides nothing, a walk reaches it."""
    places = _hidden_places(value)
    if not places:
        return []
    registered = _registered_below(owner)  # (only when a container holds one: it walks the whole subtree)
    return [(path, kind) for path, kind, item in places if id(item) not in registered]


def _hidden_message(subject: str, name: str, value: Any, places: list[tuple[str, str]]) -> str:
    """What is wrong with the attribute ``name`` (``subject``: where it is, ``Net.blocks``), a plain container
    ``value`` holding layers, parameters or generators (``places``, from :func:`_unregistered_places`), and what
    to do instead."""
    kinds = ", ".join(sorted({kind for _, kind in places}))
    shown = ", ".join(f"{name}{path}" for path, _ in places[:_PLACES_SHOWN])
    more = f" and {len(places) - _PLACES_SHOWN} more" if len(places) > _PLACES_SHOWN else ""
    said = (f"{subject}: {kinds} objects in a plain {type(value).__name__} ({shown}{more}) "
            "would not be registered (invisible to optimizers, checkers and state_dict); ")
    if {kind for _, kind in places} == {"Parameter"}:
        # (md.LayerList holds layers only, and minidl has no ParameterList or ParameterDict)
        return said + ("assign each parameter as an attribute of the layer (self.W = md.Parameter(...); for a "
                       f"number of them known only at run time, setattr(self, f'{name}_{{key}}', p) for each, read "
                       f"back with getattr): md.LayerList holds layers, not parameters")
    return said + ("assign each as an attribute, or use minidl.LayerList / minidl.Sequential for layers "
                   f"(self.{name} = md.LayerList(), then self.{name}.append(layer), as PyTorch's nn.ModuleList)"
                   + ("; a parameter among them, as an attribute (md.LayerList holds layers only)"
                      if "Parameter" in kinds else ""))


def _refuse_hidden_registrables(owner: Layer, name: str, value: Any) -> None:
    """Refuse a container holding layers, parameters or generators, at any depth, but those registered in
    ``owner`` already (references to its own sub-layers): they would not be registered."""
    places = _unregistered_places(owner, value)
    if places:
        raise TypeError(_hidden_message(_attribute(owner, name), name, value, places))


def _only_plain(value: list[Any] | tuple[Any, ...] | dict[Any, Any], depth: int) -> bool:
    """Whether the list, tuple or dict ``value`` holds only plain values (arrays but of objects, numbers, strings,
    None), or lists, tuples and dicts of them ``depth`` levels down: the quick answer for a cache (a list of
    ``(x, h)`` pairs), which :func:`_hidden_places` gives at 1.3 us an item."""
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind in _PLAIN_TYPES:
            if kind is _NDARRAY and item.dtype is _OBJECT:
                return False
        elif not (depth and (kind is tuple or kind is list or kind is dict) and _only_plain(item, depth - 1)):
            return False
    return True


def _refuse_hidden_since(owner: str, path: str, layer: Layer) -> None:
    """Refuse, in a walk of a layer of class ``owner`` (at ``layer``, its sub-layer ``path``; ``""``: itself), a
    plain container attribute of ``layer`` that holds layers, parameters or generators now: put in after the
    container was assigned (``self.blocks = []``, then ``self.blocks.append(...)``), which assignment cannot see,
    they are registered nowhere, and every walk (parameters, state_dict, the checker, fit) would skip them silently.
    One registered in ``layer`` (a reference to a sub-layer, kept for backward) is not refused: the walk reaches it.

    Cheap: only the attributes assigned a container are searched (``_plain_containers``, which ``__setattr__``
    notes); one set around it (``object.__setattr__``, ``__dict__``) is not, as PyTorch's ``Module`` leaves it."""
    noted = layer.__dict__.get("_plain_containers")
    if not noted:
        return
    for name in noted:
        value: Any = layer.__dict__.get(name)
        kind = type(value)
        if kind is tuple or kind is list or kind is dict:  # (a layer's settings and caches: plain values)
            if _only_plain(value, 1):
                continue
        elif not _is_container(value):  # (since replaced by another value, or deleted)
            continue
        places = _unregistered_places(layer, value)
        if places:
            # (a sub-layer's attribute named once, from the layer walked: "Sequential layer '1.0' (Net) attribute
            # 'blocks'", not the layer's path and then the attribute's owner again)
            subject = f"{owner} layer '{path}' ({type(layer).__name__}) attribute {name!r}" if path else \
                _attribute(layer, name)
            raise TypeError(
                f"{_hidden_message(subject, name, value, places)}.  They were put into the "
                f"{type(value).__name__} after it was assigned (assigning one that holds them is refused), so "
                "parameters(), state_dict(), load_state_dict(), summary(), the gradient checker and fit would all "
                "skip them")


def _generator_state_problem(generator: np.random.Generator, value: Any) -> str | None:
    """Why ``value`` cannot be ``generator.bit_generator.state`` (tried on a copy), or ``None``."""
    kind = type(generator.bit_generator).__name__
    if not isinstance(value, Mapping):
        return f"expected a {kind} generator state (a dict), got {type(value).__name__}"
    if value.get("bit_generator") != kind:
        return f"expected a {kind} generator state, got one for {value.get('bit_generator')!r}"
    trial = copy.deepcopy(generator.bit_generator)
    try:
        trial.state = copy.deepcopy(dict(value))
    except Exception as error:  # numpy raises TypeError/ValueError/KeyError/OverflowError here
        return f"invalid {kind} generator state ({type(error).__name__}: {error})"
    return None
