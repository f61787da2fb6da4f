"""``Model`` (a layer made of layers), ``Sequential`` (layers applied in order), ``Stack`` (in order, each
given the other inputs of a tuple: masks, a memory), ``LayerList``, and the two-path containers
``Residual`` (``block(x) + x``) and ``Bidirectional`` (a sequence read both ways)."""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast, overload

import numpy as np
from typing_extensions import Never, Self

from .errors import BackwardBeforeForwardError, DTypeError, MinidlError, RegistrationError, ShapeError
from .inputs import Inputs, is_several
from .layer import Layer, _check_name, defining_class, every_parameter, holders_of, parameter_backward
from .validation import as_array, check_grad_output, check_padding_mask

if TYPE_CHECKING:
    from .early_stopping import EarlyStopping
    from .init import RNGLike
    from .losses import Loss
    from .optim import Optimizer
    from .schedulers import LRScheduler
    from .training import Callback, History, MetricLike

__all__ = ["Bidirectional", "LayerList", "Model", "Residual", "Sequential", "Stack"]


def _name_in_message(error: MinidlError, where: str, owner: Layer) -> None:
    """Prefix ``error``'s message with the position of the layer that raised it in ``owner`` (in place),
    and remember ``owner`` as the outermost layer the message places (``error._raised_in``: see
    :func:`~minidl.layer._name_part`, which names the path to it in a model of one's own)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{where}: {error.args[0]}", *error.args[1:])
    with contextlib.suppress(AttributeError):
        error._raised_in = owner  # type: ignore[attr-defined]


def _trainable(layer: Layer) -> bool:
    """Whether ``layer`` or a sub-layer of it has a parameter with ``requires_grad``."""
    for p in layer._parameters.values():  # (a loop: ``any`` of a generator costs 0.5 us more per step)
        if p.requires_grad:
            return True
    return bool(layer._layers) and any(p.requires_grad for p in every_parameter(layer))  # (every step: unsearched)


def _partly_ran(layer: Layer) -> bool:
    """Whether ``layer``, whose forward just raised, may have replaced a cache before it did: a layer
    without sub-layers refuses before it keeps anything; a ``Sequential`` or a two-path container
    knows whether one of its layers ran (a ``Sequential``'s ``_stale`` also holds an edit made since
    its forward: counted as "ran some", the safe side); so does a container with a ``_failed_part_way()``
    method (``TransformerEncoderLayer``); any other container is assumed to have run some."""
    if isinstance(layer, Sequential):
        return layer._stale is not None
    if isinstance(layer, _TwoPaths):
        first = layer._layers.get(layer._paths[0])
        return layer._mixed or (first is not None and _partly_ran(first))
    told = getattr(layer, "_failed_part_way", None)
    if callable(told):
        return bool(told())
    return bool(layer._layers)


def _runs_every_sublayer(layer: Layer) -> bool:
    """Whether a forward of ``layer`` surely runs every layer it holds: a ``Sequential``, a ``Stack``, a
    two-path container (``Residual``, ``Bidirectional``), or a layer whose own class (not a parent) sets
    ``calls_every_sublayer`` (the transformer blocks).  A custom layer, or a subclass of a block, may hold a
    sub-layer without calling it (e.g. a decoder reading a tied encoder's weights); a ``LayerList`` runs
    nothing."""
    return isinstance(layer, (Sequential, Stack, _TwoPaths)) or "calls_every_sublayer" in type(layer).__dict__


def _called_by(layer: Layer, edited: Mapping[int, Sequence[Layer]] | None = None) -> set[int]:
    """The ids of the layers a forward of ``layer`` runs for sure: itself and, through the layers that run
    every layer they hold (:func:`_runs_every_sublayer`), every layer below.  ``edited``: the sub-layers that
    the containers of these ids will hold after an edit being checked (in place of their present ones)."""
    ids = {id(layer)}
    if _runs_every_sublayer(layer):
        children = layer._layers.values() if edited is None or id(layer) not in edited else edited[id(layer)]
        for child in children:
            ids |= _called_by(child, edited)
    return ids


def _refuse_running_twice_above(container: Layer, after: Sequence[Layer], new: Sequence[Layer], label: str,
                                verb: str) -> None:
    """Raise if an edit that makes ``after`` the sub-layers of ``container``, ``new`` joining them, would make a
    layer above it run a layer twice in one pass: one of those that run ``container`` (each holder that runs
    every layer it holds, :func:`_runs_every_sublayer`, and so on up, found through the layers' weak
    references to their holders) already runs one of ``new`` through another of its layers.  The container's
    own rule (no layer twice in itself) is its caller's to check; this one changes nothing."""
    edited = {id(container): after}
    incoming: set[int] = set()  # the ids of the layers a forward of the new layers runs
    for layer in new:
        incoming |= _called_by(layer)
    pending = [(container, "")]  # a layer whose run changes, with its path from the holder being looked at
    seen = {id(container)}
    while pending:
        inner, path = pending.pop()
        for holder in holders_of(inner):
            if id(holder) in seen or not _runs_every_sublayer(holder):
                continue  # (a LayerList, a custom layer: as when it took its layers, what it runs is its own)
            seen.add(id(holder))
            name = next(key for key, child in holder._layers.items() if child is inner)
            where = f"{name}.{path}" if path else name
            called: set[int] = set()  # the ids of the layers the holder's earlier layers run
            for child in holder._layers.values():
                runs = _called_by(child, edited)
                twice = runs & called & incoming
                if twice:
                    shared = next(sub for layer in new for sub in layer.layers() if id(sub) in twice)
                    inside = "" if any(shared is layer for layer in new) else f" (inside the layer {verb})"
                    raise ValueError(
                        f"{label}: this {type(shared).__name__}{inside} is already run by a {type(holder).__name__} "
                        f"that holds this {type(container).__name__} (as its layer '{where}'); a layer keeps one "
                        "forward cache, so calling it twice in one pass breaks its backward. Use a second layer "
                        "that shares the parameter instead (second.W = first.W)")
                called |= runs
            pending.append((holder, where))


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _spread_inputs_refused_first(method: _Method) -> _Method:
    """``Model.fit`` / ``Model.evaluate`` / ``minidl.fit`` (whose first argument is the model) refusing inputs
    spread over positions (``model.fit(x, mask, y)``, ``model.fit(x, y, 32)``) with
    :func:`~minidl.training.refuse_spread_inputs`'s message before Python checks the keywords (it would first
    ask for ``loss=`` and ``optimizer=``); the function keeps its signature, for type checkers and ``inspect``."""
    who = method.__name__
    of_a_class = "." in method.__qualname__  # (a method's message names the model's class: "Sequential.fit")

    @functools.wraps(method)
    def refusing(self: Model, x: Any, y: Any, *more: Any, **keywords: Any) -> Any:
        if more:
            from .training import refuse_spread_inputs

            refuse_spread_inputs(who, x, more, model=self if of_a_class else None)
        return method(self, x, y, **keywords)

    return cast(_Method, refusing)


class Model(Layer):
    """A layer made of layers.  Subclass it, assign layers as attributes, write ``forward`` and
    ``backward`` (which calls the sub-layers' ``backward`` in reverse order).

    Keras-style helpers: :meth:`fit`, :meth:`evaluate`, :meth:`predict` (see ``minidl.training``)
    and :meth:`summary` (see ``minidl.summary``)."""

    @_spread_inputs_refused_first
    def fit(
        self,
        x: Inputs,
        y: np.ndarray,
        *more: Never,
        loss: Loss,
        optimizer: Optimizer,
        epochs: int = 1,
        initial_epoch: int = 0,
        batch_size: int = 32,
        validation_data: tuple[Inputs, np.ndarray] | None = None,
        validation_split: float = 0.0,
        metrics: Sequence[MetricLike] | None = None,
        shuffle: bool = True,
        rng: RNGLike = None,
        scheduler: LRScheduler | None = None,
        scheduler_interval: str = "epoch",
        verbose: int = 1,
        validation_batch_size: int = 256,
        check_gradients: bool = False,
        drop_last: bool = False,
        clip_grad_norm: float | None = None,
        early_stopping: EarlyStopping | None = None,
        gradcheck_every: int | None = None,
        gradcheck_samples: int = 4,
        callbacks: Sequence[Callback] | None = None,
    ) -> History:
        """Train on ``(x, y)`` (x: (N, ...) or a tuple of inputs, y: (N, ...)); the keywords are those of
        :func:`minidl.training.fit`, named here so that a type checker catches a misspelt one (``epoch=``)."""
        from .training import fit

        return fit(self, x, y, *more, loss=loss, optimizer=optimizer, epochs=epochs, initial_epoch=initial_epoch,
                   batch_size=batch_size, validation_data=validation_data, validation_split=validation_split,
                   metrics=metrics, shuffle=shuffle, rng=rng, scheduler=scheduler,
                   scheduler_interval=scheduler_interval, verbose=verbose, validation_batch_size=validation_batch_size,
                   check_gradients=check_gradients, drop_last=drop_last, clip_grad_norm=clip_grad_norm,
                   early_stopping=early_stopping, gradcheck_every=gradcheck_every, gradcheck_samples=gradcheck_samples,
                   callbacks=callbacks)

    @_spread_inputs_refused_first
    def evaluate(
        self,
        x: Inputs,
        y: np.ndarray,
        *more: Never,
        loss: Loss | None = None,
        metrics: Sequence[MetricLike] | None = None,
        batch_size: int = 256,
    ) -> dict[str, float]:
        """``{"loss": ..., metric: ...}`` on ``(x, y)`` in eval mode; the keywords are those of
        :func:`minidl.training.evaluate`."""
        from .training import evaluate

        return evaluate(self, x, y, *more, loss=loss, metrics=metrics, batch_size=batch_size)

    def predict(self, x: Inputs, batch_size: int = 256) -> Any:
        """Outputs on ``x`` (N, ...) in eval mode, in batches (a tuple of them for a model with several
        outputs); see :func:`minidl.training.predict`."""
        from .training import predict

        return predict(self, x, batch_size=batch_size)

    def summary(self, input_shape: Sequence[int] | None = None, *, inputs: Any = None,
                expand_nested: bool = False, print_fn: Any = print) -> None:
        """Print a table of layers, output shapes and parameter counts (Keras-like); the model is
        left unchanged.  ``input_shape``: one sample's shape, if the model cannot infer it; or
        ``inputs``: a batch to run instead (a tuple of arrays for several inputs).  See
        :func:`minidl.summary.summarize` for the table as an object."""
        from .summary import summarize

        print_fn(str(summarize(self, input_shape, inputs=inputs, expand_nested=expand_nested)))


def _shaping_layer(layers: Iterable[Layer]) -> Layer | None:
    """The layer of a chain that says what its input is: the first one, looking past element-wise
    layers without a hint at the front (a ``ReLU``, ``Dropout`` or ``PReLU`` takes any shape): its
    ``input_shape_hint`` and ``random_inputs`` are the chain's."""
    last = None
    for layer in layers:
        last = layer
        if layer.input_shape_hint() is not None or not layer.elementwise:
            return layer
    return last


def _hint_past_elementwise(layers: Iterable[Layer]) -> tuple[int, ...] | None:
    """The input shape of a chain of ``layers``: its shaping layer's hint (see :func:`_shaping_layer`)."""
    layer = _shaping_layer(layers)
    return None if layer is None else layer.input_shape_hint()


def takes_one_array(layer: Layer) -> bool:
    """Whether ``layer.single_input`` speaks for the ``forward`` that runs: it does when the flag was set
    by that forward's class or below it, or when the forward is minidl's own.  A subclass of a built-in
    one-array layer whose ``forward`` takes ``(x, mask)`` gets the tuple unless it says
    ``single_input = True`` itself."""
    if not layer.single_input:
        return False
    cls = type(layer)  # (two MRO walks: a Stack asks once per layer and pass, its backward reuses the answer)
    forward, flag = defining_class(cls, "forward"), defining_class(cls, "single_input")
    if forward is None or flag is None:
        return False
    return issubclass(flag, forward) or forward.__module__.startswith("minidl.")


def _quoted(names: Sequence[str]) -> str:
    """``layer '3'`` or ``layers '3', '4'``, for the descriptions of edits."""
    return ("layer " if len(names) == 1 else "layers ") + ", ".join(f"'{name}'" for name in names)


class _Positions(Layer):
    """What ``Sequential`` and ``LayerList`` share: layers by position, each under a number name that it
    keeps while it stays, and the edits by position.  The naming rule, the same for every edit: a layer
    that joins (``append``, ``extend``, ``insert``, ``+=``) gets one past the largest number the container
    has ever given (a high-water mark: a name is never given to another layer); ``model[i] = layer`` puts
    the new layer under the name of the one it replaces; ``del``, ``pop`` leave a gap.  No edit renames a
    layer that stays, so its ``state_dict`` keys are the same before and after, and no key of a layer that
    left comes back for another.  Every edit checks everything before it changes anything."""

    #: One past the largest number a layer that left had as its name (set when one leaves; missing in a
    #: container that never lost one, or pickled before it was kept): see :meth:`_next_number`.
    _left_up_to: int = 0

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers.values()))

    # ------------------------------------------------------------------ hooks
    def _check_new(self, layers: Sequence[Any], label: str, verb: str, replaced: str | None = None) -> None:
        """Raise if ``layers`` may not join (``replaced``: the name of the layer the one given replaces):
        each must be a layer that does not contain this container.  ``label`` starts the messages;
        ``verb`` (``"appended"``) says what is done to the layer."""
        who = type(self).__name__
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"{label}: expected a Layer, got {type(layer).__name__}")
            if layer is self or any(sub is self for sub in layer.layers()):
                raise ValueError(f"{label}: this {type(layer).__name__} {'is' if layer is self else 'contains'} the "
                                 f"{who} itself; adding it would make a cycle")

    def _edited(self, what: str) -> None:
        """Called after an edit that changed the layers, ``what`` describing it (``"layer '3' was
        appended"``).  A ``LayerList`` keeps no pass of its own: nothing to do."""

    # ------------------------------------------------------------------ mechanics
    def _next_number(self) -> int:
        """The number the next layer that joins is named (several: from it on): one past the largest number
        among the names in use and among those of the layers that left (``_left_up_to``, which only goes up),
        so a ``state_dict`` key never comes back for another layer (an old checkpoint, even loaded with
        ``strict=True``, cannot fill a newcomer with a deleted layer's weights)."""
        in_use = max((int(name) for name in self._layers if name.isascii() and name.isdecimal()), default=-1) + 1
        return max(in_use, self._left_up_to)

    def _unregister(self, name: str) -> None:
        if name in self._layers:  # a layer leaves (del, pop, delattr, a plain value set over it): mark its number
            object.__setattr__(self, "_left_up_to", self._next_number())
        super()._unregister(name)

    def _position(self, index: Any, method: str, *, insert: bool = False) -> int:
        """``index`` (negative from the end) as a position from 0; for ``insert`` the end is one too."""
        who = type(self).__name__
        try:
            if isinstance(index, (bool, np.bool_)):  # an int to Python, but surely not a position
                raise TypeError
            i = operator.index(index)
        except TypeError:
            kinds = "an int or a slice" if method in ("pop", "__delitem__") else "an int"
            raise TypeError(f"{who}.{method}: the index must be {kinds}, got {type(index).__name__}") from None
        n = len(self._layers)
        top = n if insert else n - 1
        if not -n <= i <= top:
            valid = f"from {-n} to {top}" if top >= -n else "it is empty"
            raise IndexError(f"{who}.{method}: index {i} is out of range for {n} layer{'' if n == 1 else 's'} "
                             f"({valid})")
        return i + n if i < 0 else i

    def _names_at(self, index: Any, method: str) -> list[str]:
        """The names of the layers at ``index``, a position or a slice."""
        names = list(self._layers)
        if isinstance(index, slice):
            return names[index]
        return [names[self._position(index, method)]]

    def _add(self, layers: Sequence[Layer], position: int | None = None,
             names: Sequence[str] | None = None) -> list[str]:
        """Register ``layers`` (already checked) under ``names``, by default the next numbers (see
        :meth:`_next_number`), at ``position`` (default: the end); returns their names.  Each is assigned by
        ``setattr`` when a subclass has a ``__setattr__`` of its own, which sees them as it did before the
        edits existed; should it refuse one, the container is put back as it was (:meth:`_add_through`)."""
        if names is None:
            start = self._next_number()
            names = [str(start + k) for k in range(len(layers))]
        setter = type(self).__setattr__
        if setter is Layer.__setattr__ or setter is Sequential.__setattr__:  # (checked already: register)
            for name, layer in zip(names, layers, strict=True):
                Layer.__setattr__(self, name, layer)
        else:
            self._add_through(setter, names, layers)
        if position is not None and position < len(self._layers) - len(layers):
            new = set(names)
            order = list(self._layers.items())
            kept = [item for item in order if item[0] not in new]
            moved = [item for item in order if item[0] in new]
            self._layers.clear()  # (in place: the dict is the one fit's side state restores into)
            self._layers.update(kept[:position] + moved + kept[position:])
            self._registered()
        return list(names)

    def _add_through(self, setter: Any, names: Sequence[str], layers: Sequence[Layer]) -> None:
        """``setattr`` each layer by a subclass's ``__setattr__``; should it raise, the container is put back
        as it was (its attributes, and its registries in place) before the error goes on."""
        attributes = dict(self.__dict__)
        inside = {key: value.copy() for key, value in attributes.items()
                  if key in ("_parameters", "_layers", "_buffers", "_generators", "_non_persistent", "_replaced")}
        try:
            for name, layer in zip(names, layers, strict=True):
                setter(self, name, layer)
        except BaseException:
            for key, saved in inside.items():
                live = attributes[key]
                live.clear()
                live.update(saved)
            self.__dict__.clear()
            self.__dict__.update(attributes)
            raise

    # ------------------------------------------------------------------ edits
    def _append_one(self, layer: Layer) -> None:
        self._check_new([layer], f"{type(self).__name__}.append", "appended")
        self._edited(f"{_quoted(self._add([layer]))} was appended")

    def extend(self, layers: Iterable[Layer]) -> Self:
        """Add ``layers`` (a list, a ``Sequential``, a ``LayerList``...) at the end, in order, each named as
        by ``append``; all or none: one refused adds none.  Returns ``self``."""
        who = type(self).__name__
        try:
            iterator = iter(layers)
        except TypeError:
            one = "; append(layer) adds one layer" if isinstance(layers, Layer) else ""
            raise TypeError(f"{who}.extend: expected an iterable of layers, got {type(layers).__name__}{one}") \
                from None
        new = list(iterator)
        self._check_new(new, f"{who}.extend", "added")
        if new:
            names = self._add(new)
            self._edited(f"{_quoted(names)} {'was' if len(names) == 1 else 'were'} appended")
        return self

    def insert(self, index: int, layer: Layer) -> Self:
        """Put ``layer`` before position ``index`` (from ``-len`` to ``len``: the end, as ``append``; else
        an ``IndexError``, as PyTorch's ``Sequential.insert``).  It is named as by ``append``, one past the
        largest number ever given, whatever its place: the other layers keep theirs.  Returns ``self``."""
        self._check_new([layer], f"{type(self).__name__}.insert", "inserted")
        position = self._position(index, "insert", insert=True)
        names = self._add([layer], position)
        self._edited(f"{_quoted(names)} was inserted at position {position}")
        return self

    def __setitem__(self, index: int, layer: Layer) -> None:
        """``model[i] = layer``: ``layer`` takes position ``i`` and the name of the layer it replaces."""
        who = type(self).__name__
        if isinstance(index, slice):
            raise TypeError(f"{who}: a slice cannot be assigned (model[i:j] = ...); delete it (del model[i:j]) "
                            "and insert the new layers")
        name = self._names_at(index, "__setitem__")[0]
        if layer is self._layers[name]:
            return
        self._check_new([layer], f"{who}[{index}]", "assigned", replaced=name)
        Layer.__setattr__(self, name, layer)  # (a registered name keeps its place)
        self._edited(f"{_quoted([name])} was replaced")

    def __delitem__(self, index: int | slice) -> None:
        """``del model[i]``, ``del model[i:j]``: the other layers keep their names (a gap is left)."""
        names = set(self._names_at(index, "__delitem__"))
        names_in_order = [name for name in self._layers if name in names]  # (``del model[::-1]`` too)
        for name in names_in_order:
            Layer.__delattr__(self, name)
        if names:
            self._edited(f"{_quoted(names_in_order)} {'was' if len(names) == 1 else 'were'} deleted")

    def _pop(self, index: int | slice) -> Any:
        """``pop``: the layer at ``index``, or for a slice the container's slice, removed."""
        if isinstance(index, slice):
            part = self[index]  # type: ignore[index]  # (both subclasses index)
            del self[index]
            return part
        if not self._layers:
            raise IndexError(f"{type(self).__name__}.pop: pop from an empty {type(self).__name__}")
        position = self._position(index, "pop")
        layer = list(self._layers.values())[position]
        del self[position]
        return layer


class Sequential(_Positions, Model):
    """Layers applied one after another, each under a name, a number (``"0"``, ``"1"``, ...: the prefixes of
    the ``state_dict`` keys), which it keeps while it stays in the sequence.  ``Sequential(mapping)`` (an
    ``OrderedDict`` or a dict of names to layers, as PyTorch's ``nn.Sequential(OrderedDict(...))``) names them
    by its keys instead, each checked as any registered name is (a str, no dot, not an attribute of the
    sequence); ``Sequential(OrderedDict(model.named_children()))`` is a new sequence under the same names.

    The rule for names, the same for every edit: a new sequence (``Sequential(*layers)``, ``a + b``)
    numbers its layers from ``"0"``; a layer that joins one (``append``, ``extend``, ``insert``, ``+=``)
    is named one past the largest number the sequence has ever given (so a name, and the ``state_dict`` keys
    under it, never come back for another layer); ``model[i] = layer`` gives the new layer the
    name of the one it replaces; ``del model[i]``, ``del model[i:j]`` and ``pop`` leave a gap; a slice
    ``model[i:j]`` is a new sequence of the same layer objects under their names.  So no edit renames a
    layer that stays: its ``state_dict`` keys are the same before and after (PyTorch's ``del``, ``insert``
    and ``pop`` renumber the layers after the place, and its ``append`` after a ``pop`` gives the popped
    name again).  ``model[i]`` counts positions, whatever the names; ``Sequential(*model)`` numbers them
    from ``"0"`` again.

    Every edit refuses a layer that a forward would run twice (it keeps one cache), in this sequence or in
    a container that runs it (a ``Sequential``, ``Residual``, ``Stack``... above it, found through the
    weak references every layer keeps to the layers holding it), and a cycle; a refused edit changes
    nothing.  An edit forgets the last forward: a backward is refused until a
    forward has run through the present layers.

    ``forward`` feeds each layer's output to the next; ``backward`` runs the layers' backward in
    reverse.  An error raised by a layer says which position it came from.
    """

    @property
    def single_input(self) -> bool:  # type: ignore[override]  # (a class attribute on Layer)
        """Whether every layer takes one array only (see ``Layer.single_input``): then a ``Stack`` hands
        it the running array alone; else the tuple, which it hands its first layer (a ``Dense`` there
        refuses it, where the array alone would let a later recurrent layer read the padding)."""
        return all(takes_one_array(layer) for layer in self._layers.values())  # (empty: the identity, one array)

    def __init__(self, *layers: Layer | Mapping[str, Layer]) -> None:
        super().__init__()
        who = type(self).__name__
        names: list[str] | None = None
        if len(layers) == 1 and isinstance(layers[0], Mapping):  # Sequential(OrderedDict(conv=..., act=...))
            names, layers = self._mapping_names(layers[0])
        elif any(isinstance(layer, Mapping) for layer in layers):
            raise TypeError(f"{who}: a mapping of names to layers must be the only argument "
                            f"({who}(OrderedDict([('conv', ...), ('act', ...)]))), got one among {len(layers)} "
                            "arguments")
        self._check_new(layers, who, "appended")
        self._add(cast("tuple[Layer, ...]", layers), names=names)
        self.__dict__.pop("_stale", None)  # (a subclass's __setattr__ took them as edits: none to forget)
        self.__dict__.pop("_edit", None)

    def _mapping_names(self, mapping: Mapping[Any, Any]) -> tuple[list[str], tuple[Any, ...]]:
        """The names and layers of ``Sequential(mapping)``, each name checked as any registered name is (a str,
        not empty, no dot, none of the sequence's methods or attributes), before anything is added."""
        who = type(self).__name__
        items = list(mapping.items())
        for name, layer in items:
            if not isinstance(name, str):
                raise TypeError(f"{who}: the names of a mapping's layers must be str (they are the prefixes of the "
                                f"state_dict keys), got {type(name).__name__} {name!r}")
            _check_name(self, name)
            if hasattr(self, name):  # (a setting or cache of the sequence's: the layer would hide it)
                raise RegistrationError(f"{who}: cannot name a layer {name!r}: attribute {name!r} already exists "
                                        "(as PyTorch's add_module refuses it); choose another name")
            if not isinstance(layer, Layer):
                raise TypeError(f"{who}: the mapping's {name!r} must be a Layer, got {type(layer).__name__}")
        return [name for name, _ in items], tuple(layer for _, layer in items)

    #: Why the layers' caches are not those of one pass through the present layers, so that a backward is
    #: refused until a forward succeeds; None when they are.  Either the name of the layer whose forward
    #: failed in the last pass after others had run (the layers before it hold that pass's caches, the
    #: others the pass before), or, after an edit, what the edit was (``_edit`` says which).  None when the
    #: last forward succeeded and nothing was edited since, or it failed at a first layer that changed no
    #: cache (see :func:`_partly_ran`).  Named ``_failed_at`` in older pickles (see ``__setstate__``).
    _stale: str | None = None
    #: What ``predict`` and ``evaluate`` put back after their passes (with the caches they rebound).
    _pass_state = ("_stale", "_edit")
    #: The edit made since the last forward ("layer '3' was inserted at position 1"), or None.
    _edit: str | None = None

    def forward(self, x: Any) -> np.ndarray:
        """x: the first layer's input -> the last layer's output (``x = layer(x)`` through the layers in order)."""
        ran = False  # whether a layer ran in this pass: if the first one fails, no cache was replaced
        for name, layer in self._layers.items():
            try:
                x = layer(x)
                ran = True
            except BaseException as error:
                self._forward_failed(name, layer, error, ran)
                raise
        if self._stale is not None:  # this pass ran every layer: their caches are one pass's again
            object.__setattr__(self, "_stale", None)
            object.__setattr__(self, "_edit", None)
        return x

    def _forward_failed(self, name: str, layer: Layer, error: BaseException, ran: bool) -> None:
        """The forward's bookkeeping when ``layer`` (named ``name``) raised ``error``: if a layer ran before it
        in this pass (``ran``) or it ran part of itself, the layers hold the caches of two passes, which the
        back-passes then refuse (``_stale``); a minidl error's message is prefixed with the layer's name."""
        if ran or _partly_ran(layer):
            object.__setattr__(self, "_stale", name)
            object.__setattr__(self, "_edit", None)
        if isinstance(error, MinidlError):
            _name_in_message(error, f"{type(self).__name__} layer '{name}'", self)

    def _refuse_mixed_caches(self, who: str) -> None:
        if self._stale is not None:  # (one test on the way of every backward: an edit sets it too)
            if self._edit is not None:
                raise BackwardBeforeForwardError(
                    f"{type(self).__name__}.{who}: the sequence was edited after its last forward ({self._edit}), "
                    "so its layers' caches are not those of one pass through its present layers; run a forward "
                    "first")
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.{who}: the last forward failed at layer '{self._stale}', so the "
                "layers hold the caches of two different passes; run a forward that succeeds first")

    def backward(self, grad_output: np.ndarray) -> Any:
        """``dCost/dx`` through every layer in reverse: an array, or the first layer's tuple of
        gradients when it takes several inputs."""
        self._refuse_mixed_caches("backward")
        grad = grad_output
        for name, layer in reversed(self._layers.items()):
            try:
                grad = layer.backward(grad)
            except MinidlError as error:
                _name_in_message(error, f"{type(self).__name__} layer '{name}'", self)
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
        if self._stale is not None:  # (the test inline: this runs every training step)
            self._refuse_mixed_caches("backward_params")
        layers = tuple(self._layers.values())
        first = 0
        while first < len(layers) and not _trainable(layers[first]):
            first += 1
        grad = grad_output
        i = len(layers) - 1
        try:  # one try around the loop, the layer's name looked up only for a message
            while i > first:
                grad = layers[i].backward(grad)
                i -= 1
            if i == first:
                parameter_backward(layers[i])(grad)
        except MinidlError as error:
            _name_in_message(error, f"{type(self).__name__} layer '{list(self._layers)[i]}'", self)
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling and ``copy.deepcopy``: as any layer's, with ``_stale`` taken from ``_failed_at``, its
        name in a sequence pickled before it was renamed."""
        if "_failed_at" in state:  # pickled before the rename
            state = {("_stale" if key == "_failed_at" else key): value for key, value in state.items()}
        super().__setstate__(state)

    def _check_new(self, layers: Sequence[Any], label: str, verb: str, replaced: str | None = None) -> None:
        """As for any container (layers, no cycle), and no layer a forward runs twice: one already run by
        a layer of the sequence (but the one ``replaced``), or by another of ``layers``, or, when this
        sequence is run by a container (a ``Sequential``, a ``Residual``... at any depth), one that container
        already runs elsewhere."""
        super()._check_new(layers, label, verb, replaced)
        called: set[int] = set()  # the ids of the layers a forward runs (nested containers included)
        for name, existing in self._layers.items():
            if name != replaced:
                called |= _called_by(existing)
        for layer in layers:
            incoming = _called_by(layer)
            twice = incoming & called
            if twice:
                shared = next(sub for sub in layer.layers() if id(sub) in twice)
                where = "" if shared is layer else f" (inside the layer {verb})"
                raise ValueError(
                    f"{label}: this {type(shared).__name__} is already in the sequence{where}; a layer keeps "
                    "one forward cache, so calling it twice in one pass breaks its backward. Use a second layer "
                    "that shares the parameter instead (second.W = first.W)"
                )
            called |= incoming
        if layers and "_holders" in self.__dict__:  # (held by no layer: nothing above to ask)
            after = [layer for name, layer in self._layers.items() if name != replaced]
            _refuse_running_twice_above(self, [*after, *layers], layers, label, verb)

    def _edited(self, what: str) -> None:
        """Forget the last forward: the layers' caches are not those of a pass through the present layers."""
        object.__setattr__(self, "_stale", what)  # (the one test the back-passes make)
        object.__setattr__(self, "_edit", what)

    def append(self, layer: Layer) -> Self:
        """Add ``layer`` at the end, named one past the largest number ever given (``"n"`` after ``"0"`` ...
        ``"n-1"`` that lost no layer); returns ``self``."""
        self._append_one(layer)
        return self

    def extend(self, layers: Iterable[Layer]) -> Self:
        """Add ``layers`` at the end, in order, named as by :meth:`append`; one refused adds none.  Returns
        ``self``."""
        super().extend(layers)
        return self

    def insert(self, index: int, layer: Layer) -> Self:
        """Put ``layer`` before position ``index`` (``-len`` to ``len``, else ``IndexError``), named as by
        :meth:`append`: ``Sequential(a, b).insert(1, c)`` runs ``a, c, b`` named ``"0"``, ``"2"``, ``"1"``.
        Returns ``self``."""
        super().insert(index, layer)
        return self

    @overload
    def pop(self, index: int = -1) -> Layer: ...

    @overload
    def pop(self, index: slice) -> Sequential: ...

    def pop(self, index: int | slice = -1) -> Layer | Sequential:
        """Remove the layer at position ``index`` (default: the last) and return it; for a slice, the
        layers removed, as the slice ``model[index]`` (under their names)."""
        return self._pop(index)

    def __add__(self, other: Sequential) -> Sequential:
        """A new ``Sequential`` of this sequence's layers then ``other``'s (the same objects), numbered from
        ``"0"``, as PyTorch's; a layer in both is refused."""
        if not isinstance(other, Sequential):
            return NotImplemented
        return Sequential(*self, *other)

    def __iadd__(self, other: Sequential) -> Self:
        """``model += other``: :meth:`extend` by ``other``'s layers."""
        if not isinstance(other, Sequential):
            return NotImplemented
        return self.extend(other)

    def __setattr__(self, name: str, value: Any) -> None:
        layers = self.__dict__.get("_layers")
        if layers is None or not (name in layers or isinstance(value, Layer)) or value is layers.get(name):
            super().__setattr__(name, value)
            return
        # a layer added, replaced or removed by plain assignment (setattr(model, "2", layer)): an edit
        if isinstance(value, Layer):
            self._check_new([value], f"{type(self).__name__}: assigning a layer as {name!r}", "assigned",
                            replaced=name)
        what = "removed" if name in layers and not isinstance(value, Layer) else \
            "replaced" if name in layers else "added"
        super().__setattr__(name, value)
        self._edited(f"{_quoted([name])} was {what} by assignment")

    def __delattr__(self, name: str) -> None:
        layer = name in self.__dict__.get("_layers", ())
        super().__delattr__(name)
        if layer:
            self._edited(f"{_quoted([name])} was deleted")

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Layer | Sequential:
        """A layer by position, or for a slice a new ``Sequential`` of the same layer objects under the
        same names, as PyTorch's: ``model[1:3]`` holds layers ``"1"`` and ``"2"``, so its ``state_dict``
        keys are the full model's (``md.Sequential(*model[1:3])`` numbers them from ``"0"`` again)."""
        if isinstance(index, slice):
            part = Sequential()
            names = list(self._layers)[index]
            layers = [self._layers[name] for name in names]
            part._check_new(layers, "Sequential", "appended")  # (it cannot fail: the layers ran as one pass)
            part._add(layers, names=names)
            return part
        layers = list(self._layers.values())
        if isinstance(index, (bool, np.bool_)) or not hasattr(index, "__index__"):  # (a bool: surely not a position)
            by_name = (f"; a layer by its name is an attribute: getattr(model, {index!r})"
                       if isinstance(index, str) and index in self._layers else "")
            raise TypeError(f"{type(self).__name__} indices must be ints or slices, not {type(index).__name__}"
                            f"{by_name}")
        return layers[index]

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """What the layer that gives the hint draws (the first, past element-wise ones at the front:
        floats, or e.g. an ``Embedding``'s indices, a decoder's ``(x, memory)``)."""
        layer = _shaping_layer(self._layers.values())
        return super().random_inputs(shape, rng) if layer is None else layer.random_inputs(shape, rng)

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The first layer's input shape, looking past element-wise layers at the front."""
        return _hint_past_elementwise(self._layers.values())


class LayerList(_Positions):
    """A list of layers that registers them (named ``"0"``, ``"1"``, ...): a plain Python list
    would hide their parameters.  It has no forward of its own; index it in your model.

    The edits of PyTorch's ``ModuleList`` (``append``, ``extend``, ``insert``, ``pop``, ``del``,
    ``blocks[i] = layer``, ``+``, ``+=``) follow ``Sequential``'s rule for names: a layer keeps its name
    while it stays (a deletion leaves a gap, a layer that joins is named one past the largest number ever
    given, one that replaces another takes its name); a new list (``LayerList(layers)``, a slice, ``a + b``) is
    numbered from ``"0"``.  The same layer may be in the list twice (the model decides what it runs)."""

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        super().__init__()
        layers = list(layers)
        self._check_new(layers, type(self).__name__, "appended")
        self._add(layers)

    def append(self, layer: Layer) -> Self:
        """Add ``layer`` at the end, named one past the largest number ever given (``"n"`` after ``"0"`` ...
        ``"n-1"`` that lost no layer)."""
        self._append_one(layer)
        return self

    def extend(self, layers: Iterable[Layer]) -> Self:
        """Add ``layers`` at the end, in order, named as by :meth:`append`; one refused adds none."""
        super().extend(layers)
        return self

    def insert(self, index: int, layer: Layer) -> Self:
        """Put ``layer`` before position ``index`` (``-len`` to ``len``, else ``IndexError``), named as by
        :meth:`append`."""
        super().insert(index, layer)
        return self

    @overload
    def pop(self, index: int = -1) -> Layer: ...

    @overload
    def pop(self, index: slice) -> LayerList: ...

    def pop(self, index: int | slice = -1) -> Layer | LayerList:
        """Remove the layer at position ``index`` (default: the last) and return it; for a slice, the
        layers removed, as the slice ``blocks[index]``."""
        return self._pop(index)

    def __add__(self, other: Iterable[Layer]) -> LayerList:
        """A new ``LayerList`` of this list's layers then ``other``'s, numbered from ``"0"``."""
        try:
            more = iter(other)
        except TypeError:
            return NotImplemented
        return LayerList([*self, *more])

    def __iadd__(self, other: Iterable[Layer]) -> Self:
        """``blocks += layers``: :meth:`extend`."""
        return self.extend(other)

    def forward(self, x: Any) -> NoReturn:
        """Refused: a ``LayerList`` is a container, not a layer (the base class's "must implement forward" would
        read as if it were to be subclassed)."""
        raise TypeError(f"{type(self).__name__} is a container of layers, not a layer: it has no forward of its own "
                        "(nor does PyTorch's ModuleList); call its layers in your model's forward "
                        "(for layer in self.blocks: x = layer(x)), or use md.Sequential, which runs them in turn")

    def backward(self, grad_output: Any) -> NoReturn:
        """Refused, as :meth:`forward`."""
        raise TypeError(f"{type(self).__name__} is a container of layers, not a layer: it has no backward of its own; "
                        "call its layers' backward in reverse in your model's backward, or use md.Sequential")

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> LayerList: ...

    def __getitem__(self, index: int | slice) -> Layer | LayerList:
        """A layer by position, or for a slice a new ``LayerList`` of the same layer objects, named from
        ``"0"`` (as PyTorch's ``ModuleList``; it was a plain list, which registers nothing)."""
        layers = list(self._layers.values())
        if isinstance(index, slice):
            return LayerList(layers[index])
        if isinstance(index, (bool, np.bool_)):  # an int to Python, but surely not a position
            raise TypeError(f"{type(self).__name__} indices must be ints or slices, not {type(index).__name__}")
        return layers[index]


class Stack(Model):
    """Layers applied in turn, as by a ``Sequential``, except that every layer gets the other items of a
    tuple input along with the running sequence: given ``(x, *extra)`` (a padding mask, a memory), layer
    ``k`` computes ``h = layer((h, *extra))``, or ``h = layer(h)`` if it takes one array only
    (``layer.single_input``: ``Embedding``, ``Dense``, ``Dropout``, the norms and activations...).  A
    ``Sequential`` hands the tuple to its first layer only, so the later layers of a masked stack would
    read the padding.  ``backward`` returns one gradient per input: ``dx`` and, per extra input, the sum
    over the layers of its gradients (``None`` for a mask).

    ``md.Stack(md.LSTM(8, 32), md.LSTM(32, 32))((x, padding_mask))`` is PyTorch's two-layer LSTM on packed
    sequences.  The layers are registered as ``"0"``, ``"1"``, ...; a forward that fails after a layer has
    run refuses the next backward.
    """

    #: what a layer is called in messages ("TransformerEncoder block 1: ...")
    _item = "layer"

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        who = type(self).__name__
        if not layers:
            raise ValueError(f"{who}: give at least one layer")
        item = self._item
        called: set[int] = set()  # the layers a forward already runs (nested containers included)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{who}: {item} {i} is a {type(layer).__name__}, expected a minidl Layer")
            if any(layer is other for other in layers[:i]):
                raise ValueError(f"{who}: {item} {i} is {item} {next(j for j in range(i) if layers[j] is layer)} "
                                 f"again; one {item} keeps one forward cache, so give each place its own {item}")
            incoming = _called_by(layer)
            if incoming & called:
                raise ValueError(f"{who}: {item} {i} holds a layer that an earlier {item} already runs; a layer "
                                 "keeps one forward cache, so calling it twice in one pass breaks its backward")
            called |= incoming
            setattr(self, str(i), layer)
        self._count = len(layers)
        self._complete = False  # whether the last forward ran to its end (every cache from one pass)
        self._extras = 0  # how many other inputs that pass was given
        self._got_extras: list[bool] = []  # per layer, whether that pass gave it the other inputs
        self._sequence_has_gradient = True  # whether that pass's x was a float array (not tokens)

    def __getitem__(self, index: int) -> Layer:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        return getattr(self, str(range(self._count)[index]))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Layer]:
        return iter([getattr(self, str(i)) for i in range(self._count)])

    def _split(self, x: Any) -> tuple[Any, tuple[np.ndarray, ...]]:
        """The running sequence and the other inputs every layer gets."""
        if is_several(x):
            if len(x) == 1:
                raise ShapeError(f"{type(self).__name__}: expected x or a tuple (x, ...) of several inputs, got a "
                                 "tuple of 1")
            return x[0], tuple(x[1:])
        if isinstance(x, tuple):
            as_array(x, type(self).__name__, "x")  # a tuple mixing arrays and other values is refused by name
        return x, ()

    def forward(self, x: Any) -> np.ndarray:
        """x: the sequence (N, ...), or ``(x, *others)`` -> the last layer's output; each layer gets the running
        sequence, and the others too unless it takes one array (``single_input``)."""
        h, extra = self._split(x)
        # integer tokens for a first Embedding have no gradient: None in backward's tuple, as for a mask
        self._sequence_has_gradient = not (isinstance(h, np.ndarray) and h.dtype.kind != "f")
        ran = False
        got_extras = [bool(extra) and not takes_one_array(layer) for layer in self]  # (backward reads it too)
        for i, layer in enumerate(self):
            try:
                h = layer((h, *extra) if got_extras[i] else h)
            except BaseException as error:
                if ran or _partly_ran(layer):
                    self._complete = False
                if isinstance(error, MinidlError):
                    _name_in_message(error, f"{type(self).__name__} {self._item} {i}", self)
                raise
            if not ran:
                ran, self._complete = True, False
        self._complete, self._extras, self._got_extras = True, len(extra), got_extras
        return h

    def _refuse_incomplete(self, method: str = "backward") -> None:
        if not self._complete:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.{method}: no forward ran to its end since it was made or a forward failed "
                "part-way (its layers would hold the caches of two passes); run a forward that succeeds first")

    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: the output's shape -> dx: x's shape, or after ``(x, *others)`` the tuple ``(dx, *d_others)``
        (each summed over the layers given it; ``None`` for one without a gradient: a mask, integer tokens)."""
        self._refuse_incomplete()
        g = grad_output
        summed: list[Any] = [None] * self._extras  # the other inputs' gradients, summed over the layers
        layers = list(self)
        for i in range(len(layers) - 1, -1, -1):
            try:
                d = layers[i].backward(g)
            except MinidlError as error:
                _name_in_message(error, f"{type(self).__name__} {self._item} {i}", self)
                raise
            if not self._got_extras[i]:
                g = d
                continue
            g = d[0]
            summed = [s if e is None else e if s is None else s + e for s, e in zip(summed, d[1:], strict=True)]
        return (g if self._sequence_has_gradient else None, *summed) if self._extras else g

    def backward_params(self, grad_output: np.ndarray) -> None:
        """:meth:`backward` without the gradients of the inputs, which training on data never uses, as
        ``Sequential.backward_params``: the layers in front of the first one with a trainable parameter
        are skipped, and that one is asked for its parameter gradients only."""
        self._refuse_incomplete("backward_params")
        g = grad_output
        layers = list(self)
        first = next((i for i, layer in enumerate(layers) if _trainable(layer)), len(layers))
        for i in range(len(layers) - 1, first - 1, -1):
            try:
                if i > first:
                    d = layers[i].backward(g)
                    g = d[0] if self._got_extras[i] else d
                else:
                    parameter_backward(layers[i])(g)
            except MinidlError as error:
                _name_in_message(error, f"{type(self).__name__} {self._item} {i}", self)
                raise

    def _failed_part_way(self) -> bool:
        """For a container holding this stack: whether its last forward raised after a layer had run."""
        return not self._complete

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The first layer's input shape, looking past element-wise layers at the front (as ``Sequential``)."""
        return _hint_past_elementwise(self._layers.values())

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """What the layer that gives the hint draws (as ``Sequential``)."""
        layer = _shaping_layer(self._layers.values())
        assert layer is not None  # (a Stack has at least one layer)
        return layer.random_inputs(shape, rng)


class _TwoPaths(Model):
    """A container whose forward runs two layers on its input, always both (``Residual``'s block and
    shortcut, ``Bidirectional``'s two directions): the shared-layer refusal (also when a path is
    reassigned), the refusal of a backward after a forward that failed half-way, running a path with
    its name in the errors, and the default input drawn by the first path."""

    #: the attribute names of the two paths
    _paths: tuple[str, str]
    #: what happened when the second path or the combination fails, for the refusal's message
    _half_way: str
    #: whether the second path may be None (``Residual``'s identity shortcut)
    _second_optional = False
    _output: tuple[tuple[int, ...], np.dtype] | None
    _mixed: bool

    def __init__(self, first: Layer, second: Layer | None) -> None:
        super().__init__()
        a, b = self._paths
        self._refuse(a, first, second, optional=False)
        self._refuse(b, second, first, optional=self._second_optional)
        setattr(self, a, first)
        setattr(self, b, second)
        object.__setattr__(self, "_output", None)  # the output's shape and dtype, for backward
        object.__setattr__(self, "_mixed", False)  # the last forward failed after the first path ran

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._paths and "_mixed" in self.__dict__:  # a path reassigned: the same checks
            a, b = self._paths
            other = getattr(self, b if name == a else a, None)
            self._refuse(name, value, other, optional=name == b and self._second_optional)
            if isinstance(value, Layer) and "_holders" in self.__dict__:  # (no layer twice in those that run it)
                paths = [value if path == name else getattr(self, path, None) for path in self._paths]
                _refuse_running_twice_above(self, [path for path in paths if isinstance(path, Layer)], [value],
                                            f"{type(self).__name__}.{name}", "assigned")
            super().__setattr__(name, value)
            object.__setattr__(self, "_output", None)  # the last forward went through the old path
            object.__setattr__(self, "_mixed", False)
            return
        super().__setattr__(name, value)

    def _refuse(self, name: str, layer: Any, other: Any, optional: bool) -> None:
        """Raise if ``layer`` may not be the path ``name`` beside ``other``: not a layer, or sharing one."""
        who = type(self).__name__
        if layer is None and optional:
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{who}: expected a Layer as {name}, got {type(layer).__name__}")
        if isinstance(other, Layer) and _called_by(layer) & _called_by(other):
            raise ValueError(
                f"{who}: the two paths ({' and '.join(self._paths)}) would share a layer; a layer keeps one "
                "forward cache, so calling it on both paths breaks its backward. Give each path a layer of "
                "its own (a second layer may share a parameter: second.W = first.W)"
            )

    def _run(self, name: str, value: Any, *, backward: bool = False, params_only: bool = False) -> Any:
        """The path ``name``'s forward of ``value`` (or its backward, or its parameter gradients only),
        with ``"<container> <name>"`` prefixed to its errors."""
        layer = getattr(self, name)
        try:
            if not backward:
                return layer(value)
            return parameter_backward(layer)(value) if params_only else layer.backward(value)
        except MinidlError as error:
            _name_in_message(error, f"{type(self).__name__} {name}", self)
            raise

    def _check_grad(self, grad_output: np.ndarray, method: str) -> np.ndarray:
        """``grad_output``, checked against the last output, if a backward may go through the paths."""
        who = f"{type(self).__name__}.{method}"
        if self._mixed:
            raise BackwardBeforeForwardError(
                f"{who}: the last forward failed after {self._half_way}, so the two paths hold the caches of "
                "different passes; run a forward that succeeds first")
        if self._output is None:
            raise BackwardBeforeForwardError(f"{who} called before forward: there is nothing to go back through")
        return check_grad_output(grad_output, who, *self._output)

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """What the first path draws (both take the same input)."""
        return getattr(self, self._paths[0]).random_inputs(shape, rng)

    def input_shape_hint(self) -> tuple[int, ...] | None:
        first, second = (getattr(self, name) for name in self._paths)
        hint = first.input_shape_hint()
        return hint if hint is not None or second is None else second.input_shape_hint()


class Residual(_TwoPaths):
    """A residual connection: ``y = block(x) + shortcut(x)``, the shortcut the identity unless given
    (as in ResNets: give a ``shortcut``, e.g. a 1x1 ``Conv2D``, when the block changes the shape).

    Shapes:
        x: whatever the block (and the shortcut) take -> y: the block's output shape and dtype,
        which the shortcut's output (the identity's: ``x`` itself) must have too.

    Backward: ``grad_output`` reaches ``x`` by both paths, and the two gradients add::

        dx = block.backward(g) + g                    (identity shortcut)
        dx = block.backward(g) + shortcut.backward(g)

    A forward that fails after the block ran (the shortcut refused ``x``, or the two outputs do not
    match) leaves the block holding that pass's cache and the shortcut the one before, so a
    backward is refused until a forward succeeds.
    """

    _paths = ("block", "shortcut")
    _half_way = "the block ran"
    _second_optional = True
    block: Layer
    shortcut: Layer | None

    @property
    def single_input(self) -> bool:  # type: ignore[override]  # (a class attribute on Layer)
        """Whether its paths take one array only (see ``Layer.single_input``): then a ``Stack`` hands it
        the running array alone; else the tuple, which it refuses (a masked block would lose its mask)."""
        paths = [self._layers.get(name) for name in self._paths]
        return all(path is None or takes_one_array(path) for path in paths)

    def __init__(self, block: Layer, shortcut: Layer | None = None) -> None:
        super().__init__(block, shortcut)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, ...) -> ``block(x) + x``, or ``block(x) + shortcut(x)``: the block's output shape, which the other
        path's must be."""
        if is_several(x):  # refused before the block runs: the last pass stays usable
            raise ShapeError("Residual: takes one array, got a tuple of several inputs; the sum x + block(x) of "
                             "a block with several inputs is a line of a Model of your own "
                             "(h = x + self.block((x, mask))).  (In a Stack: a block of your own that takes one "
                             "array says so in its class, single_input = True, and the Stack then hands the "
                             "Residual the array alone.)")
        y = self._run("block", x)  # if it raises, nothing of this pass was kept here
        try:
            s = as_array(x, "Residual") if self.shortcut is None else self._run("shortcut", x)
            if not isinstance(s, np.ndarray) or not isinstance(y, np.ndarray):
                raise DTypeError(f"Residual: the block and the shortcut must return arrays, got "
                                 f"{type(y).__name__} and {type(s).__name__}")
            if s.shape != y.shape:
                path = "the input (identity shortcut)" if self.shortcut is None else "the shortcut's output"
                raise ShapeError(
                    f"Residual: the block's output has shape {y.shape} but {path} has shape {s.shape}; "
                    "they are added, so give a shortcut that maps x to the block's output shape"
                )
            if s.dtype.newbyteorder("=") != y.dtype.newbyteorder("="):  # (byte order aside: NumPy adds those)
                raise DTypeError(f"Residual: the block's output is {y.dtype} but the shortcut's is {s.dtype}; "
                                 "they must match (cast the model, model.astype(...))")
        except BaseException:
            object.__setattr__(self, "_mixed", True)
            raise
        object.__setattr__(self, "_mixed", False)  # (plain attributes: past Layer.__setattr__'s checks)
        object.__setattr__(self, "_output", (y.shape, y.dtype))
        return y + s

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: y's shape -> dx: x's shape; adds the parameter gradients of both paths."""
        g = self._check_grad(grad_output, "backward")
        dx = self._run("block", g, backward=True)
        return dx + (g if self.shortcut is None else self._run("shortcut", g, backward=True))

    def backward_params(self, grad_output: np.ndarray) -> None:
        """:meth:`backward` without ``dx``: each path is asked for its parameter gradients only."""
        g = self._check_grad(grad_output, "backward_params")
        self._run("block", g, backward=True, params_only=True)
        if self.shortcut is not None:
            self._run("shortcut", g, backward=True, params_only=True)


class Bidirectional(_TwoPaths):
    """A sequence read both ways, as Keras's ``Bidirectional`` and PyTorch's ``bidirectional=True``:
    ``forward`` reads ``x`` in order, ``backward`` reads it from the last step to the first, and their
    outputs are concatenated along the features (the second's reversed back into step order).

    Shapes:
        x: (N, T, I) -> (N, T, H_f + H_b) when both layers return every step's state, or
        (N, H_f + H_b) when both return only their last one (``return_sequences=False``: the reversed
        reader's last state is the one after step 0).  Or the pair ``(x, padding_mask)``, the mask (N, T)
        booleans, True at padding: each direction gets its own view, ``(x, mask)`` and the reversed
        ``(x[:, ::-1], mask[:, ::-1])``, so that the reversed reader of a right-padded sequence crosses
        the padding first, from its initial state (as PyTorch's packed sequences); ``backward`` then
        returns ``(dx, None)``.

    ``forward`` and ``backward`` are two layers with parameters of their own (e.g. two ``LSTM`` s with
    different seeds), not one layer twice: each keeps one forward cache.  Backward: ``g`` is split at
    ``H_f`` into ``g_f`` and ``g_b``; ``dx = forward.backward(g_f) + rev(backward.backward(rev(g_b)))``,
    with ``rev`` reversing the steps (``g_b`` is not reversed when it has no step axis).
    """

    _paths = ("forward_layer", "backward_layer")
    _half_way = "the forward_layer ran"
    forward_layer: Layer
    backward_layer: Layer

    def __init__(self, forward: Layer, backward: Layer) -> None:
        super().__init__(forward, backward)
        self._split: tuple[int, bool] | None = None  # H_f and whether the outputs have a step axis
        self._masked = False  # whether the last forward was given a pair (x, padding_mask)

    def forward(self, x: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """x: (N, T, I), or ``(x, padding_mask)`` -> (N, T, H_f + H_b), or (N, H_f + H_b) for layers that return
        their last state: the forward layer's output then the backward layer's (run on x reversed in time)."""
        mask = None
        if is_several(x):
            if len(x) != 2:
                raise ShapeError(f"Bidirectional: expected x or a pair (x, padding_mask), got a tuple of {len(x)}")
            x, mask = x
        x = as_array(x, "Bidirectional")
        if x.ndim < 2:
            raise ShapeError(f"Bidirectional: expected a sequence batch (N, T, ...), got shape {x.shape}")
        if mask is not None:
            check_padding_mask(mask, x.shape[0], x.shape[1], "Bidirectional", "padding mask",
                               width=", ".join(map(str, x.shape[2:])) or "...")
        # if the forward layer raises, nothing of this pass was kept here
        y_f = self._run("forward_layer", x if mask is None else (x, mask))
        try:
            y_b = self._run("backward_layer", x[:, ::-1] if mask is None else (x[:, ::-1], mask[:, ::-1]))
            self._check_outputs(x, y_f, y_b)
        except BaseException:
            object.__setattr__(self, "_mixed", True)
            raise
        sequences = y_f.ndim == 3
        out = np.empty((*y_f.shape[:-1], y_f.shape[-1] + y_b.shape[-1]), dtype=y_f.dtype)
        out[..., : y_f.shape[-1]] = y_f
        out[..., y_f.shape[-1]:] = y_b[:, ::-1] if sequences else y_b
        object.__setattr__(self, "_mixed", False)
        object.__setattr__(self, "_masked", mask is not None)
        object.__setattr__(self, "_split", (y_f.shape[-1], sequences))
        object.__setattr__(self, "_output", (out.shape, out.dtype))
        return out

    @staticmethod
    def _check_outputs(x: np.ndarray, y_f: Any, y_b: Any) -> None:
        """Both outputs (N, T, H) with x's T steps, or both (N, H), of one dtype; else raise."""
        if not isinstance(y_f, np.ndarray) or not isinstance(y_b, np.ndarray):
            raise DTypeError(f"Bidirectional: both layers must return arrays, got {type(y_f).__name__} and "
                             f"{type(y_b).__name__}")
        for y in (y_f, y_b):
            if y.ndim not in (2, 3) or (y.ndim == 3 and y.shape[:2] != x.shape[:2]) or y.shape[0] != x.shape[0]:
                raise ShapeError(
                    f"Bidirectional: each direction must return (N, T, H), a state per step, with the input's "
                    f"(N, T) = {x.shape[:2]}, or (N, H), its last state; got {y_f.shape} and {y_b.shape}"
                )
        if y_f.ndim != y_b.ndim:
            raise ShapeError(f"Bidirectional: one direction returns every step's state and the other its last "
                             f"one ({y_f.shape} and {y_b.shape}); set the same return_sequences in both")
        if y_f.dtype != y_b.dtype:
            raise DTypeError(f"Bidirectional: the directions' outputs are {y_f.dtype} and {y_b.dtype}; they must "
                             "match (cast the model, model.astype(...))")

    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: the output's shape -> dx: (N, T, I), or ``(dx, None)`` after a pair (x, padding_mask);
        adds both directions' parameter gradients."""
        g_f, g_b = self._split_grad(grad_output, "backward")
        d_f = self._run("forward_layer", g_f, backward=True)
        d_b = self._run("backward_layer", g_b, backward=True)
        if not self._masked:
            return d_f + d_b[:, ::-1]
        return d_f[0] + d_b[0][:, ::-1], None

    def backward_params(self, grad_output: np.ndarray) -> None:
        """:meth:`backward` without ``dx``: each direction is asked for its parameter gradients only."""
        g_f, g_b = self._split_grad(grad_output, "backward_params")
        self._run("forward_layer", g_f, backward=True, params_only=True)
        self._run("backward_layer", g_b, backward=True, params_only=True)

    def _split_grad(self, grad_output: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
        g = self._check_grad(grad_output, method)
        assert self._split is not None
        h_f, sequences = self._split
        g_b = g[..., h_f:]
        return g[..., :h_f], g_b[:, ::-1] if sequences else g_b
