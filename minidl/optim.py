"""Optimizers: they read each parameter's ``.grad`` and update its ``.data`` in place.

Update rules, defaults and state names follow PyTorch's (``torch.optim``), so the same gradients give
the same parameters (to round-off) in both.  Every update is done in place in the parameter's dtype
(float32 stays float32), using a per-parameter scratch array instead of fresh temporaries.  The state
(moments, step counts) is in :meth:`Optimizer.state_dict`, so a run can be resumed bit for bit.
Every optimizer takes PyTorch's ``maximize`` (keyword, default False): it then steps with ``-grad``
wherever it would use ``grad``, and so ascends the objective.  Every one with ``weight_decay`` takes
``decay_bias`` (keyword, default True): False leaves the biases (each parameter's
:attr:`~minidl.Parameter.bias_rows`) out of the decay, PyTorch's param group of biases with ``weight_decay=0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NoReturn

import numpy as np

from . import aligned
from .errors import NonFiniteError, StateDictError, nested_state_hint, short_repr
from .init import switch
from .layer import Layer
from .losses import Loss
from .parameter import Parameter
from .validation import is_number, plain_native

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "Optimizer", "RAdam", "RMSprop",
           "Rprop"]

Hyper = dict[str, float | bool]


def _number(who: str, name: str, value: Any) -> float:
    """``value`` as a Python float.  Python and NumPy ints and floats are accepted (``np.float32(0.1)``
    too); a bool, string, None, array or anything else raises ``TypeError`` naming ``who`` and ``name``."""
    if not is_number(value):
        raise TypeError(f"{who}: {name} must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}") from None


def _non_negative(who: str, name: str, value: Any) -> float:
    """``value`` as a Python float, finite and >= 0 (``_number``'s ``TypeError``, else ``ValueError`` naming
    ``who`` and ``name``): a hyper-parameter's rule, ``lr``'s too, at construction and when set."""
    number = _number(who, name, value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value!r}")
    return number


def _holder_kind(value: Any) -> str | None:
    """``"model"``, ``"layer"`` or ``"loss"`` for what holds parameters rather than being one (a layer holding
    layers is a model), else None."""
    if isinstance(value, Layer):
        return "model" if value._layers else "layer"
    if isinstance(value, Loss):
        return "loss"
    return None


#: The end of the message refusing a PyTorch-style parameter group (``{"params": [...], "lr": 0.1}``).
_NO_GROUPS = ("minidl's optimizers have no parameter groups and take a flat iterable of Parameters: "
              "{who}(model.parameters(), ...).  For a learning rate per group, make one optimizer per group "
              "({who}(group_a, lr=0.1) and {who}(group_b, lr=0.01)) and call each one's zero_grad and step in "
              "your own loop (fit takes one optimizer)")
#: What it adds for an optimizer with a weight decay: PyTorch's usual second group, the biases undecayed.
_NO_DECAY_GROUP = (".  For the usual group of biases with weight_decay=0 (the bias is row 0 of a layer's weights "
                   "here), pass decay_bias=False: {who}(model.parameters(), weight_decay=..., decay_bias=False)")


def _is_group(value: Any) -> bool:
    """Whether ``value`` is a PyTorch parameter group: a mapping with a ``"params"`` key."""
    return isinstance(value, Mapping) and "params" in value


def _parameter_list(who: str, params: Any, decays: bool = False) -> list[Parameter]:
    """``params`` (an iterable of Parameters) as a list, refused with what to pass instead: the model, layer
    or loss itself (or a list holding some) for its ``.parameters()``, the method ``model.parameters``
    uncalled, ``named_parameters()``'s pairs, PyTorch's parameter groups (which minidl does not have: for an
    optimizer that ``decays``, the message names ``decay_bias``), an empty list or a generator already used up."""
    no_groups = _NO_GROUPS.format(who=who) + (_NO_DECAY_GROUP.format(who=who) if decays else "")
    kind = _holder_kind(params)
    if kind is not None and not params.parameters():
        raise TypeError(f"{who}: got the {kind} {type(params).__name__} itself, which holds no parameters; pass "
                        f"the parameters to train: {who}(model.parameters(), ...)")
    if kind is not None:
        raise TypeError(f"{who}: got the {kind} {type(params).__name__} itself; pass its parameters: "
                        f"{who}({kind}.parameters(), ...)")
    if _is_group(params):
        raise TypeError(f"{who}: params is a dict with 'params', a PyTorch-style parameter group; "
                        + no_groups)
    owner = getattr(params, "__self__", None)
    if getattr(params, "__name__", None) == "parameters" and _holder_kind(owner) is not None:
        raise TypeError(f"{who}: got the method {type(owner).__name__}.parameters itself; call it: "
                        f"{who}({_holder_kind(owner)}.parameters(), ...)")
    try:
        iterator = iter(params)
    except TypeError:
        raise TypeError(f"{who}: params must be an iterable of Parameters (e.g. model.parameters()), got "
                        f"{type(params).__name__}") from None
    plist = list(iterator)
    if not plist:
        used_up = (" (an iterator that yields nothing: a generator can be read once, and this one may have been "
                   "read already; pass a list, e.g. model.parameters())" if iterator is params else "")
        raise ValueError(f"{who}: got an empty parameter list; nothing to optimise{used_up}")
    for i, p in enumerate(plist):
        if isinstance(p, Parameter):
            continue
        kind = _holder_kind(p)
        if kind is not None and len(plist) == 1:
            raise TypeError(f"{who}: params holds the {kind} {type(p).__name__} itself, not its parameters; pass "
                            f"them: {who}({kind}.parameters(), ...)")
        if kind is not None:
            raise TypeError(f"{who}: params[{i}] is the {kind} {type(p).__name__} itself, not a Parameter; put its "
                            f"parameters in the list instead: [..., *{kind}.parameters()]")
        if _is_group(p):
            raise TypeError(f"{who}: params[{i}] is a dict with 'params', a PyTorch-style parameter group; "
                            + no_groups)
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], Parameter):
            raise TypeError(f"{who}: params[{i}] is a (name, Parameter) pair, as named_parameters() gives; pass "
                            f"the parameters alone: {who}(model.parameters(), ...)")
        raise TypeError(f"{who}: params[{i}] is a {type(p).__name__}, expected a Parameter")
    return plist


class _NoParamGroups:
    """``Optimizer.param_groups``: reading it is an ``AttributeError`` that says what to use (PyTorch's
    ``opt.param_groups[0]["lr"]`` is ``opt.lr``), so that ``hasattr`` is False; having no ``__set__``, it lets
    a subclass of one's own assign ``self.param_groups`` (the instance's attribute then wins)."""

    def __get__(self, optimizer: object, owner: type | None = None) -> NoReturn:
        name = type(optimizer).__name__ if optimizer is not None else getattr(owner, "__name__", "Optimizer")
        raise AttributeError(f"{name} has no param_groups: minidl's optimizers have no parameter groups; PyTorch's "
                             f"opt.param_groups[0]['lr'] is opt.lr (read and set), the other hyper-parameters are in "
                             f"opt.hyper (docs/optimizers.md, docs/porting.md)")


class Optimizer:
    """Base class: holds the parameters, per-parameter state and hyper-parameters.

    Subclasses implement :meth:`update` for one parameter.  ``state[i]`` is a dict of arrays
    (and ints) for ``params[i]``; it is what :meth:`state_dict` saves.

    Hyper-parameters are checked here: the names in :attr:`flags` must be bools, every other one a
    finite number >= 0 (``lr`` too, at construction as when set: 0, where a schedule may anneal it,
    as PyTorch), stored as a Python float.  A wrong type (``"0.9"``, ``None``, a
    bool for a number) raises ``TypeError``, a wrong value ``ValueError``; both name the optimizer
    and the argument.
    """

    #: The hyper-parameters that are on/off switches; a subclass with other flags extends this.
    flags: frozenset[str] = frozenset({"nesterov", "amsgrad", "centered", "maximize", "decay_bias"})
    #: Hyper-parameters added after states were first saved, with the value a state saved before one
    #: existed meant: :meth:`load_state_dict` gives it to a state without it (when this optimizer has
    #: it), as PyTorch does.  An optimizer without ``maximize`` descended; one without ``decay_bias``
    #: decayed the biases.
    later_hyper: ClassVar[Mapping[str, float | bool]] = MappingProxyType({"maximize": False, "decay_bias": True})
    #: What a parameter's state may hold, for :meth:`load_state_dict` to check: arrays shaped like the
    #: parameter, whole numbers, and the keys a non-empty state must have.  ``None`` (a custom optimizer,
    #: or a subclass with its own ``update`` that does not say): any array of the parameter's shape and
    #: dtype, or any finite number.
    state_arrays: frozenset[str] | None = None
    state_counts: frozenset[str] = frozenset()
    state_required: frozenset[str] = frozenset()
    #: State arrays a stepped parameter keeps only under a setting: array -> the hyper-parameter that makes
    #: it (a flag, or a number > 0), so that :meth:`load_state_dict` refuses a state without it when that
    #: setting is on (Adam's ``max_exp_avg_sq`` with ``amsgrad``), where the next step would start it afresh.
    state_when: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: The state arrays that can never be negative (running means of squares): a file that says
    #: otherwise would make the next step take the square root of a negative number.
    state_nonnegative: frozenset[str] = frozenset()
    #: State entries that are one (finite) number per parameter, not arrays nor counts (NAdam's
    #: ``mu_product``).
    state_floats: frozenset[str] = frozenset()
    #: Hyper-parameters that the constructor takes as one pair: constructor argument -> the two keys it is
    #: stored under (the Adam family's ``betas`` -> ``beta1``, ``beta2``), for :meth:`__repr__` to show the
    #: argument as it is written, ``betas=(0.9, 0.999)``.
    repr_pairs: ClassVar[Mapping[str, tuple[str, str]]] = MappingProxyType({})

    _initial_lr: float | None = None

    def __init__(self, params: Iterable[Parameter], hyper: Hyper) -> None:
        name = type(self).__name__
        if isinstance(params, Parameter):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. model.parameters()), "
                            "not a single Parameter")
        plist = _parameter_list(name, params, "weight_decay" in hyper)
        unique: dict[int, Parameter] = {}
        for p in plist:
            unique.setdefault(id(p), p)
        self.params: list[Parameter] = list(unique.values())
        checked: Hyper = {}
        for key, value in hyper.items():
            if key in self.flags:
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"{name}: {key} must be a bool, got {type(value).__name__} {value!r}")
                checked[key] = bool(value)
                continue
            checked[key] = _non_negative(name, key, value)  # (lr too: the setter's rule)
        if "lr" not in checked:
            raise TypeError(f"{name}: the hyper-parameters must include lr")
        self.hyper: Hyper = checked
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        # Scratch arrays for the updates (not state: never saved, re-made when a shape or dtype changes).
        self._scratch: dict[tuple[int, int], np.ndarray] = {}

    @property
    def lr(self) -> float:
        return float(self.hyper["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        # the constructor's rule and message: a finite number >= 0 (0: a schedule may anneal to it)
        self.hyper["lr"] = _non_negative(type(self).__name__, "lr", value)

    param_groups = _NoParamGroups()

    @property
    def initial_lr(self) -> float | None:
        """The lr a :class:`~minidl.SequentialLR` starts its schedules from, PyTorch's ``initial_lr``: the
        lr the first schedule made on this optimizer found (set by that schedule; ``OneCycleLR`` sets its
        own start, ``max_lr / div_factor``), saved in :meth:`state_dict`.  As in PyTorch it stays: for a
        new training phase whose lr you set by hand, set it to None (or to that lr) before making the
        phase's schedules."""
        return self._initial_lr

    @initial_lr.setter
    def initial_lr(self, value: float | None) -> None:
        if value is not None:
            number = _number(type(self).__name__, "initial_lr", value)
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"{type(self).__name__}: initial_lr must be None or a finite number >= 0, "
                                 f"got {value!r}")
            value = number
        self._initial_lr = value

    @initial_lr.deleter
    def initial_lr(self) -> None:  # (as PyTorch users delete it from a param group)
        self._initial_lr = None

    def zero_grad(self) -> None:
        """Zero the ``.grad`` of every parameter given to this optimizer (a frozen one's too)."""
        for p in self.params:
            p.zero_grad()

    def step(self, zero_grad: bool = False, *, check_finite: bool = False) -> None:
        """Update every trainable parameter that has a gradient (:attr:`Parameter.has_grad`) from its
        ``.grad``.

        A parameter no backward has reached since :meth:`zero_grad` is skipped, as PyTorch skips a
        ``.grad`` of ``None``: it does not move, and its state (momentum, moments, step count) stays.
        A read-only parameter is refused before anything is updated.

        ``zero_grad=True`` then zeroes the gradients, as :meth:`zero_grad` would, for a loop that
        zeroes them before every backward anyway: the optimizer may then use the gradient arrays as
        its scratch (plain :class:`SGD` scales them in place instead of making a temporary).

        The gradients are not checked by default (a check costs a pass over every gradient, some 5% of
        a step): a NaN or inf in one goes into the parameter and the optimizer's state (whose
        :meth:`state_dict` :meth:`load_state_dict` then refuses).  ``check_finite=True`` checks them
        first and raises :class:`~minidl.NonFiniteError` naming the first parameter whose gradient holds
        one (by its index in :attr:`params` and its shape), with nothing changed: parameters, state and
        gradients are as they were (``fit(..., check_gradients=True)`` does the same check, naming the
        parameter in the model).
        """
        if check_finite is not False and switch(check_finite, "check_finite", f"{type(self).__name__}.step"):
            _check_finite(self)
        _check_writeable(self)
        for p, state in zip(self.params, self.state, strict=True):
            if p.requires_grad and p.has_grad:
                self.update(p, state)
        if zero_grad:
            self.zero_grad()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass with its own ``update`` may keep other state than its parent: unless it says
        what (``state_arrays``), :meth:`load_state_dict` checks its state loosely."""
        super().__init_subclass__(**kwargs)
        if "update" in cls.__dict__ and "state_arrays" not in cls.__dict__:
            cls.state_arrays = None
            cls.state_counts = cls.state_required = cls.state_nonnegative = cls.state_floats = frozenset()
            cls.state_when = MappingProxyType({})

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        """What the constructor would refuse in ``hyper`` beyond type and sign (e.g. a beta >= 1), so
        that :meth:`load_state_dict` refuses it too; subclasses with such ranges extend it."""
        return []

    def _state_problems(self, i: int, entry: Mapping[str, Any]) -> list[str]:
        """What the updates could not use in the state ``entry`` of parameter ``i`` beyond its types
        and shapes (e.g. a number out of its range), for :meth:`load_state_dict`; none here."""
        return []

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        """The update rule: compute the new ``p.data`` from ``p.data`` and ``p.grad`` (and ``self.hyper``) and
        write it into ``p.data`` in place; ``state`` is this parameter's dict, kept from one step to the next
        (a momentum buffer, moments, a step count), read and written here.  :meth:`step` calls it for every
        trainable parameter with a gradient; plain SGD is ``p.data -= lr * p.grad``.

        The built-in ones use ``p._data``, the array ``p.data`` returns without the property's call, and write
        it through ``out=``: ``p.data -= step`` would rebind ``data`` to itself, through its checked setter."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(p, state)")

    def _work(self, p: Parameter, slot: int = 0, dtype: type | None = None) -> np.ndarray:
        """A scratch array shaped and typed like ``p.data``, or of ``dtype`` if given (``np.bool_`` for a
        mask); uninitialised, ``slot`` picks one of several."""
        want = p._data.dtype if dtype is None else dtype
        key = (id(p), slot)
        buf = self._scratch.get(key)
        if buf is None or buf.shape != p._data.shape or buf.dtype != want:
            buf = self._scratch[key] = aligned.empty(p._data.shape, want)
        return buf

    def _undecayed_rows(self, p: Parameter) -> tuple[int, int] | None:
        """The rows ``[start, stop)`` of ``p`` the weight decay leaves out: its ``bias_rows`` under
        ``decay_bias=False``, else None (decay everything).  Called only when there is a decay."""
        rows = p.bias_rows
        if rows is None or self.hyper.get("decay_bias", True) or p._data.ndim == 0:
            return None
        start, stop, _ = rows.indices(p._data.shape[0])
        return start, max(start, stop)

    def _decayed_grad(self, p: Parameter, weight_decay: float) -> np.ndarray:
        """The gradient to step with: ``grad + weight_decay * w`` (L2 added to the gradient) in scratch
        slot 1, or ``grad`` itself.  With the hyper-parameter ``maximize``, ``-grad`` in place of
        ``grad`` (in slot 1 too: ``p.grad`` is left as it is).  Under ``decay_bias=False`` the bias rows
        get no L2 term (:meth:`_undecayed_rows`)."""
        maximize = self.hyper.get("maximize", False)
        rows = self._undecayed_rows(p) if weight_decay else None
        if rows is not None and rows == (0, p._data.shape[0]):  # a bias whole (a norm layer's beta)
            weight_decay, rows = 0.0, None
        if not weight_decay:
            return np.negative(p.grad, out=self._work(p, 1)) if maximize else p.grad
        g = np.multiply(p._data, weight_decay, out=self._work(p, 1))
        if rows is not None:
            g[rows[0]:rows[1]] = 0  # (a view: no copy)
        if maximize:
            g -= p.grad  # (w * wd - grad: the same number as -grad + w * wd, to the bit)
        else:
            g += p.grad
        return g

    def _follows_dtype(self, key: str, value: Any) -> bool:
        """Whether state ``key`` is a declared moment array (cast with its parameter by ``astype``)."""
        return isinstance(value, np.ndarray) and self.state_arrays is not None and key in self.state_arrays

    @staticmethod
    def _state_array(state: dict[str, Any], key: str, p: Parameter) -> np.ndarray:
        """``state[key]`` (see :meth:`_stored`), created as zeros like ``p.data`` if absent."""
        buf = Optimizer._stored(state, key, p)
        if buf is None:
            buf = state[key] = aligned.zeros_like(p._data)  # aligned as p.data (minidl.aligned)
        return buf

    @staticmethod
    def _stored(state: dict[str, Any], key: str, p: Parameter) -> np.ndarray | None:
        """``state[key]`` or None, cast to ``p``'s dtype if the model was cast (``astype``) since it
        was made: float32 parameters keep float32 state."""
        buf = state.get(key)
        if buf is not None and buf.dtype != p._data.dtype:
            buf = state[key] = aligned.copy(buf, p._data.dtype)
        return buf

    def __getstate__(self) -> dict[str, Any]:  # pickling/deepcopy: scratch is keyed by id(), drop it
        d = dict(self.__dict__)
        d["_scratch"] = {}
        return d

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "initial_lr" in state:  # (pickled before it became a checked property)
            state["_initial_lr"] = state.pop("initial_lr")
        self.__dict__.update(state)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyper", "state": {"0": {name: array or int}, ...}}``, copies throughout, and
        ``"initial_lr"`` once a schedule has recorded it (PyTorch keeps it in its param groups).  An array a
        setting keeps (``state_when``) that was switched on after the last step is saved as the zeros its next
        step would start from, so that the state is whole."""
        state: dict[str, Any] = {
            "type": type(self).__name__,
            "hyper": dict(self.hyper),
            "state": {  # declared arrays in the parameter's dtype, even before a step after model.astype
                str(i): {k: (v.astype(p.dtype) if self._follows_dtype(k, v) else
                             v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                for i, (p, s) in enumerate(zip(self.params, self.state, strict=True))
            },
        }
        for entry, p in zip(state["state"].values(), self.params, strict=True):
            for key, setting in self.state_when.items():  # a setting switched on since the last step:
                if entry and key not in entry and self.hyper.get(setting):  # the zeros its next step makes
                    entry[key] = np.zeros(p.shape, p.dtype)
        if self.initial_lr is not None:
            state["initial_lr"] = self.initial_lr
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state; refuses (listing every problem, changing
        nothing) a different optimizer type, parameter count, shapes or dtypes.  A whole training
        checkpoint holding this state under a key is refused with a hint to pass that entry.

        The steps, each a helper: the state's form (a mapping with ``type``, ``hyper`` and ``state``: else
        refused at once), its header (the type, no other keys, ``initial_lr``), the hyper-parameters (an
        older state's completed first), one entry per parameter, then each entry's keys and values; the
        problems of all are listed together, and only a state without any is applied."""
        self._refuse_malformed(state)
        problems = self._header_problems(state)
        initial_lr, found = _loaded_initial_lr(state.get("initial_lr"))
        problems += found
        hyper, found = self._loaded_hyper(self._with_later_hyper(state["hyper"]))
        problems += found
        per_param, found = self._per_parameter(state["state"])
        problems += found
        settings = hyper if len(hyper) == len(self.hyper) else self.hyper  # (the file's, if they all loaded)
        new_state: list[dict[str, Any]] = []
        for i, p in enumerate(self.params):
            copied, found = self._loaded_entry(i, p, per_param.get(str(i), {}), settings)
            problems += found
            new_state.append(copied)
        if problems:
            raise StateDictError(
                f"{type(self).__name__}.load_state_dict refused the state ({len(problems)} problem"
                f"{'s' if len(problems) > 1 else ''}); nothing was changed:\n  " + "\n  ".join(problems)
            )
        self.hyper = hyper
        self.state = new_state
        self._initial_lr = initial_lr

    def _refuse_malformed(self, state: Any) -> None:
        """The state's form, refused at once: a mapping (else ``TypeError``) with the keys ``type``, ``hyper``
        and ``state`` (else :class:`StateDictError`, with a hint when one of its entries is such a state: a
        whole training checkpoint given)."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict expects a mapping, got {type(state).__name__}")
        problems = [f"missing key '{key}'" for key in ("type", "hyper", "state") if key not in state]
        if problems:
            raise StateDictError(f"{name}.load_state_dict refused the state: " + "; ".join(problems)
                                 + _nested_hint(state, name, len(self.params)))

    def _header_problems(self, state: Mapping[str, Any]) -> list[str]:
        """A state saved by another optimizer type, or holding keys beyond ``type``, ``hyper``, ``state`` and
        ``initial_lr``."""
        name = type(self).__name__
        problems: list[str] = []
        if not isinstance(state["type"], str) or state["type"] != name:
            problems.append(f"state is for {short_repr(state['type'])}, not {name!r}")
        extra = [key for key in state if key not in ("type", "hyper", "state", "initial_lr")]
        if extra:
            problems.append(f"unexpected keys {extra}")
        return problems

    def _with_later_hyper(self, hyper: Any) -> Any:
        """An older state's ``hyper``, saved before a later hyper-parameter existed, completed with what it
        meant then (:attr:`later_hyper`, for those this optimizer has); anything else as it is."""
        if not isinstance(hyper, Mapping):
            return hyper
        return {**hyper, **{key: value for key, value in self.later_hyper.items()
                            if key in self.hyper and key not in hyper}}

    def _loaded_hyper(self, hyper: Any) -> tuple[Hyper, list[str]]:
        """``hyper`` converted as the constructor stores them (Python floats and bools, in the constructor's
        order, whatever the file's: the repr's too), and the problems: other keys than this optimizer's, a
        value of the wrong type or sign, or (all converted) one the constructor would refuse.  The converted
        dict misses those that failed."""
        converted: Hyper = {}
        if not isinstance(hyper, Mapping) or set(hyper) != set(self.hyper):
            got = sorted(map(str, hyper)) if isinstance(hyper, Mapping) else type(hyper).__name__
            return converted, [f"hyper-parameters: expected keys {sorted(self.hyper)}, got {got}"]
        problems: list[str] = []
        for key in self.hyper:
            number, problem = _hyper_value(hyper[key], self.hyper[key])
            if problem is None:
                converted[key] = number
            else:
                problems.append(f"hyper-parameter '{key}': {problem}")
        if len(converted) == len(hyper):
            problems += self._range_problems(converted)
        return converted, problems

    def _per_parameter(self, per_param: Any) -> tuple[Mapping[Any, Any], list[str]]:
        """The ``state`` entry: a mapping (else ``{}``) with one entry per parameter, keyed ``'0'``, ``'1'``, ...
        (the problem says how many it holds, and the first few odd keys)."""
        problems: list[str] = []
        if not isinstance(per_param, Mapping):
            problems.append(f"'state' must be a mapping, got {type(per_param).__name__}")
            per_param = {}
        expected_keys = {str(i) for i in range(len(self.params))}
        if set(per_param) != expected_keys:
            odd = sorted(repr(k) for k in set(per_param) - expected_keys)[:5]
            problems.append(f"state holds entries for {_count(len(per_param), 'parameter')}, this optimizer has "
                            f"{len(self.params)} (keys '0'..'{len(self.params) - 1}', as strings)"
                            + (f"; unexpected keys {', '.join(odd)}" if odd else ""))
        return per_param, problems

    def _loaded_entry(self, i: int, p: Parameter, entry: Any,
                      settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Parameter ``i``'s state entry, checked and copied (what :meth:`update` will read), and its problems:
        not a mapping, its keys (:meth:`_entry_key_problems`, when this optimizer says what it keeps), each
        value (:meth:`_loaded_value`), then what the updates could not use (:meth:`_state_problems`).
        ``settings``: the hyper-parameters the state is loaded with."""
        problems: list[str] = []
        if not isinstance(entry, Mapping):
            problems.append(f"state '{i}': expected a mapping, got {type(entry).__name__}")
            entry = {}
        if self.state_arrays is not None:
            problems += self._entry_key_problems(i, entry, settings)
        copied: dict[str, Any] = {}
        for key, value in entry.items():
            kept, problem = self._loaded_value(i, p, key, value)
            if problem is not None:
                problems.append(problem)
            if kept is not None:
                copied[key] = kept
        problems += self._state_problems(i, copied)
        return copied, problems

    def _entry_key_problems(self, i: int, entry: Mapping[Any, Any], settings: Mapping[str, Any]) -> list[str]:
        """Parameter ``i``'s entry holding keys this optimizer does not keep, or (not empty) lacking some it
        keeps together (:attr:`state_required`), or one it keeps under one of ``settings``
        (:attr:`state_when`: without it the next step would start it afresh)."""
        name = type(self).__name__
        arrays, counts = self.state_arrays, self.state_counts
        assert arrays is not None
        problems: list[str] = []
        unknown = sorted(set(map(str, entry)) - arrays - counts - self.state_floats)
        if unknown:
            problems.append(f"state '{i}': unexpected entries {unknown} ({name} keeps "
                            f"{sorted(arrays | counts | self.state_floats)})")
        missing = sorted(self.state_required - set(entry)) if entry else []
        if missing:
            problems.append(f"state '{i}': missing {missing} ({name} keeps them together)")
        lacking = sorted(key for key, setting in self.state_when.items()
                         if entry and key not in entry and settings.get(setting))
        if lacking and not missing:
            problems.append(f"state '{i}': missing {lacking}, which {name} keeps with "
                            + ", ".join(f"{self.state_when[k]}={settings[self.state_when[k]]!r}"
                                        for k in lacking)
                            + " (without it the next step would start it afresh, and the run would "
                              "not resume as it was)")
        return problems

    def _loaded_value(self, i: int, p: Parameter, key: Any, value: Any) -> tuple[Any, str | None]:
        """One value of parameter ``i``'s entry: ``(what to keep, or None, the problem, or None)``.  An array
        (where this optimizer keeps one, not a count or float) must have ``p``'s shape and dtype, and where
        this optimizer says what it keeps be finite, and not negative where it cannot be; it is kept as an
        aligned copy.  A number goes to :func:`_loaded_number`, as does a count given as a 0-d int or float
        array (``np.array(5)``, as a file written by other tools may hold it); anything else is refused."""
        arrays = self.state_arrays
        if arrays is not None and key in arrays and not isinstance(value, np.ndarray):
            return None, (f"state '{i}.{key}': expected an array of shape {p.shape}, got "
                          f"{type(value).__name__} {value!r}")
        if arrays is not None and key in self.state_counts and isinstance(value, np.ndarray):
            if value.ndim or value.dtype.kind not in "iuf":  # (a 0-d int or float array is its number, as a float is)
                return None, (f"state '{i}.{key}': expected a whole number, got an array of dtype {value.dtype} "
                              f"and shape {value.shape}")
            value = value[()]
        if arrays is not None and key in self.state_floats and not is_number(value):
            return None, f"state '{i}.{key}': expected a number, got {type(value).__name__}"
        if isinstance(value, np.ndarray):
            value = plain_native(value)  # a masked array's hidden entries are checked and loaded too
            problem = None
            if value.shape != p.shape:
                problem = f"state '{i}.{key}': expected shape {p.shape}, got {value.shape}"
            elif value.dtype != p.dtype:
                problem = f"state '{i}.{key}': expected dtype {p.dtype}, got {value.dtype}"
            elif arrays is not None and not np.isfinite(value).all():
                problem = f"state '{i}.{key}': holds NaN/inf"
            elif key in self.state_nonnegative and (value < 0).any():
                problem = (f"state '{i}.{key}': holds negative values (a sum or mean of squares cannot), "
                           f"e.g. {value.min()!r}")
            return aligned.copy(value), problem
        if is_number(value):
            whole = key == "step" or (arrays is not None and key in self.state_counts)
            return _loaded_number(f"state '{i}.{key}'", value, whole)
        return None, f"state '{i}.{key}': unsupported value of type {type(value).__name__}"

    def __repr__(self) -> str:
        """``Adam(1 parameter, lr=0.001, betas=(0.9, 0.999), ...)``: the hyper-parameters under the
        constructor's names, a pair of :attr:`repr_pairs` as one tuple where its first key stands."""
        firsts = {pair[0]: (name, pair[1]) for name, pair in self.repr_pairs.items()}
        seconds = {pair[1] for pair in self.repr_pairs.values() if pair[0] in self.hyper}
        args = []
        for key, value in self.hyper.items():
            if key in firsts and firsts[key][1] in self.hyper:
                name, second = firsts[key]
                args.append(f"{name}=({value}, {self.hyper[second]})")
            elif key not in seconds:
                args.append(f"{key}={value}")
        return f"{type(self).__name__}({_count(len(self.params), 'parameter')}, {', '.join(args)})"


def _nested_hint(state: Mapping[Any, Any], name: str, count: int) -> str:
    """For a state refused for lacking ``type``/``hyper``/``state``: the line naming which of its entries holds an
    optimizer's state dict (``type``, a ``hyper`` mapping and a ``state`` mapping; a training checkpoint,
    ``{"model": ..., "optimizer": opt.state_dict(), "epoch": 3}``, given whole), else ``""``.  Those saved by
    ``name`` first, and of them those with ``count`` parameter entries (a GAN's two Adams); several left are all
    named.  Best effort: a state whose reading fails gives no hint."""
    try:
        found: list[tuple[Any, Any, int]] = []  # (key, the class that saved it, its number of parameter entries)
        for key, value in state.items():
            if isinstance(value, Mapping) and all(part in value for part in ("type", "hyper", "state")):
                saved_by, hyper, per_param = value["type"], value["hyper"], value["state"]
                if isinstance(hyper, Mapping) and isinstance(per_param, Mapping):
                    found.append((key, saved_by, len(per_param)))
        same = [entry for entry in found if isinstance(entry[1], str) and entry[1] == name]
        pool = same or found
        pool = [entry for entry in pool if entry[2] == count] or pool
        if same or not pool:
            return nested_state_hint([(key, "") for key, _, _ in pool], name, "optimizer ")
        if len(pool) == 1:
            return nested_state_hint([(pool[0][0], f" (it was saved by {short_repr(pool[0][1])}, this is {name!r})")],
                                     name, "optimizer ")
        return nested_state_hint([(key, f" (saved by {short_repr(saved_by)})") for key, saved_by, _ in pool], name,
                                 "optimizer ") + f"; this is {name!r}"
    except Exception:  # (a mapping whose iteration or lookup raises: the refusal stands without the hint)
        return ""


def _loaded_initial_lr(initial_lr: Any) -> tuple[Any, list[str]]:
    """A state's ``initial_lr`` (None when it has none) as a Python float, a finite number >= 0 as an lr; and
    the problem, if it is not one."""
    if initial_lr is None:
        return None, []
    number, problem = _hyper_value(initial_lr, 0.0)
    if problem is None:
        return number, []
    return initial_lr, [f"'initial_lr': {problem}"]


def _loaded_number(where: str, value: Any, whole: bool) -> tuple[int | float | None, str | None]:
    """A number of a parameter's state entry (``where`` names it): ``(what to keep, or None, the problem, or
    None)``.  A ``whole`` one (a step count) must be a whole number >= 0 that a float counts exactly (at most
    2**53: beyond it nothing is kept) and is kept as an int; any other, finite."""
    number = value.item() if isinstance(value, np.generic) else value
    if whole and number > 2**53:  # beyond what a float counts exactly (an int or a float)
        size = f"an int of {len(str(abs(number)))} digits" if isinstance(number, int) else f"{number!r}"
        return None, f"{where}: {size} is out of range (at most 2**53)"
    problem = None
    if whole and not (float(number).is_integer() and number >= 0):
        problem = f"{where}: expected a whole number >= 0, got {value!r}"
    elif not isinstance(number, int) and not math.isfinite(number):  # (an int is finite)
        problem = f"{where}: expected a finite number, got {value!r}"
    return (int(number) if whole and math.isfinite(number) else number), problem


def _count(n: int, noun: str) -> str:
    """``"1 parameter"``, ``"2 parameters"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _hyper_value(value: Any, current: Any) -> tuple[float | bool, str | None]:
    """``value`` converted as the constructor stores it (a bool where ``current`` is one, else a
    Python float), and ``None``; or a placeholder and why ``value`` cannot be a hyper-parameter."""
    if isinstance(current, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value), None
        return False, f"expected a bool, got {value!r}"
    try:
        number = _number("", "", value)  # the constructor's conversion
    except TypeError:
        return 0.0, f"expected a number, got {value!r}"
    except ValueError:  # an int beyond float range
        number = math.inf
    if not (math.isfinite(number) and number >= 0):  # lr may be 0: a schedule may have annealed it there
        return 0.0, f"expected a finite number >= 0, got {value!r}"
    return number, None


#: The largest temporary of the plain SGD update, in bytes: a bigger parameter is updated in equal
#: blocks no larger than this.  A block costs a few microseconds of Python, so blocks are kept big.
_BLOCK_BYTES = 1 << 19


def _subtract_scaled(w: np.ndarray, g: np.ndarray, scale: float) -> None:
    """``w -= scale * g`` in place, with a temporary of at most ``_BLOCK_BYTES`` (block by block)
    rather than one the size of ``w``: the same arithmetic, so the same result to the bit."""
    if w.nbytes <= _BLOCK_BYTES or not (w.flags.c_contiguous and g.flags.c_contiguous and w.shape == g.shape):
        w -= scale * g
        return
    n_blocks = -(-w.nbytes // _BLOCK_BYTES)
    w_flat, g_flat = w.reshape(-1), g.reshape(-1)  # views: both are C-contiguous
    block = -(-w_flat.size // n_blocks)
    buf = np.empty(block, dtype=np.result_type(w, g))
    for start in range(0, w_flat.size, block):
        g_part = g_flat[start:start + block]
        w_flat[start:start + block] -= np.multiply(g_part, scale, out=buf[:g_part.size])


def _private_gradients(params: list[Parameter]) -> bool:
    """Whether no gradient array shares its memory (by the arrays' bases) with another parameter's
    gradient or with any parameter's data: only then may one update scale the gradients in place."""
    seen: set[int] = set()
    for p in params:
        for array in (p._data, p._grad):
            key = id(array if array.base is None else array.base)
            if key in seen:
                return False
            seen.add(key)
    return True


def _non_finite_gradient(params: Iterable[Parameter]) -> tuple[int, int] | None:
    """``(index in params, count)`` of the first trainable parameter whose gradient holds NaN/inf, and how many
    values do; None when none does.  One reduction per gradient: its sum is finite when every value is (the
    values are counted only when it is not, as a sum of large finite values can overflow).  The check of
    ``step(check_finite=True)`` and of ``fit(..., check_gradients=True)``."""
    with np.errstate(over="ignore", invalid="ignore"):  # (overflow, inf - inf: the values are then counted)
        for i, p in enumerate(params):
            if p.requires_grad and p.has_grad and not np.isfinite(np.add.reduce(p.grad, axis=None)):
                bad = int(np.count_nonzero(~np.isfinite(p.grad)))
                if bad:
                    return i, bad
    return None


def _check_finite(optimizer: Optimizer) -> None:
    """``step(check_finite=True)``'s check, before anything is updated: :class:`NonFiniteError` naming the first
    parameter whose gradient holds NaN/inf."""
    found = _non_finite_gradient(optimizer.params)
    if found is not None:
        i, bad = found
        p = optimizer.params[i]
        raise NonFiniteError(
            f"{type(optimizer).__name__}.step: the gradient of parameter {i} of {len(optimizer.params)} "
            f"(optimizer.params[{i}], shape {p.shape}) holds {bad} NaN/inf value(s) of {p.size}; nothing was "
            "updated (the parameters, the optimizer's state and the gradients are as they were)")


def _check_writeable(optimizer: Optimizer) -> None:
    """Refuse a step that could not update every parameter it would update (read-only data, or
    data rebound to another shape than its gradient's), before it updates any: a step must not stop
    half-way, the parameters before the bad one moved and their state advanced."""
    for i, p in enumerate(optimizer.params):
        if p.requires_grad and not p._grad_is_stale and (
                not p._data.flags.writeable or p._grad.shape != p._data.shape):
            problem = "is read-only" if p._data.flags.writeable is False else \
                f"has a gradient of shape {p._grad.shape}"
            raise ValueError(f"{type(optimizer).__name__}.step: parameter {i} of {len(optimizer.params)} "
                             f"(shape {p.shape}) {problem}; nothing was updated")


def _two_values(who: str, name: str, value: Any, names: tuple[str, str]) -> tuple[Any, Any]:
    """``value`` unpacked as a pair (``betas``, ``etas``, ...): a string, a non-iterable or an iterable
    of another length raises ``TypeError`` / ``ValueError`` naming ``who``, ``name`` and the pair's
    parts, ``names``."""
    parts = f"({names[0]}, {names[1]})"
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{who}: {name} must be a pair of numbers {parts}, got {value!r}")
    try:
        first, second = value
    except TypeError:  # not iterable: None, a number
        raise TypeError(f"{who}: {name} must be a pair of numbers {parts}, got {value!r}") from None
    except ValueError:  # iterable of the wrong length
        raise ValueError(f"{who}: {name} must be a pair {parts}, got {value!r}") from None
    return first, second


def _check_beta(who: str, name: str, value: float) -> float:
    beta = _number(who, name, value)
    if not 0 <= beta < 1:
        raise ValueError(f"{who}: {name} must be a number in [0, 1), got {value!r}")
    return beta


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay (PyTorch's rule)::

        g = grad + weight_decay * w                       (L2, added before momentum)
        b = g                                   on the first step,
        b = momentum * b + (1 - dampening) * g  afterwards           (when momentum > 0)
        g = g + momentum * b  if nesterov  else  b                   (when momentum > 0)
        w = w - lr * g

    with ``-grad`` in place of ``grad`` for ``maximize=True`` (the buffer then accumulates it).
    State per parameter: ``momentum_buffer`` (only with momentum > 0).  The arguments after
    ``momentum`` are keyword-only: PyTorch's order (``dampening, weight_decay, nesterov``) differs
    from this class's first one, so a call ported by position is refused rather than misread.
    """

    state_arrays = frozenset({"momentum_buffer"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        *more: Any,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        if more:
            raise TypeError(f"SGD takes params, lr and momentum by position, the rest by keyword (got "
                            f"{3 + len(more)} positional arguments): PyTorch's fourth is dampening, an earlier "
                            f"minidl's weight_decay, so a call by position is refused rather than misread; "
                            f"write SGD(params, lr, momentum, dampening=..., weight_decay=..., nesterov=...)")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": nesterov, "dampening": dampening, "maximize": maximize,
                                  "decay_bias": decay_bias})
        h = self.hyper  # checked: nesterov is a bool now, the numbers floats
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            return ["hyper-parameter 'nesterov': nesterov needs momentum > 0 and dampening = 0"]
        return []

    def step(self, zero_grad: bool = False, *, check_finite: bool = False) -> None:
        h = self.hyper
        if (h["momentum"] or h["weight_decay"] or type(self) is not SGD or "update" in self.__dict__
                or (zero_grad and ("zero_grad" in self.__dict__ or not _private_gradients(self.params)))):
            super().step(zero_grad, check_finite=check_finite)
        else:
            if check_finite is not False and switch(check_finite, "check_finite", "SGD.step"):
                _check_finite(self)
            self._plain_step(zero_grad)

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, momentum = h["lr"], h["momentum"]
        g = self._decayed_grad(p, h["weight_decay"])
        if not momentum:  # plain SGD: no scratch array for the parameter
            _subtract_scaled(p._data, g, lr)
            return
        work = self._work(p)
        buf = self._stored(state, "momentum_buffer", p)
        if buf is None:
            buf = state["momentum_buffer"] = aligned.copy(g)
        else:
            buf *= momentum
            if h["dampening"]:
                buf += np.multiply(g, 1 - h["dampening"], out=work)
            else:
                buf += g
        if h["nesterov"]:
            np.multiply(buf, momentum, out=work)
            work += g
            g = work
        else:
            g = buf
        np.multiply(g, lr, out=work)
        np.subtract(p._data, work, out=p._data)

    def _plain_step(self, zero_grad: bool) -> None:
        """``update``'s fast path for plain SGD (no momentum, no decay), the common case: the same numbers, in
        one loop over the parameters (and, with ``zero_grad``, the gradient itself as the scratch term)."""
        _check_writeable(self)
        h = self.hyper
        # maximize: w - (-lr) * grad, the same number as w - lr * (-grad) to the bit, with no negated copy of grad
        lr = -h["lr"] if h.get("maximize") else h["lr"]
        # (``not p._grad_is_stale`` is ``p.has_grad`` without the property call)
        if not zero_grad:
            for p in self.params:
                if p.requires_grad and not p._grad_is_stale:
                    _subtract_scaled(p._data, p.grad, lr)
            return
        for p in self.params:
            if p.requires_grad and not p._grad_is_stale:
                g, w = p._grad, p._data  # not stale: ``p.grad``'s array; w writable, g of its shape (checked above)
                if g.flags.writeable:
                    try:  # the gradient is ours to overwrite: w -= (lr * g) with no temporary
                        g *= lr
                        w -= g
                    finally:  # even if interrupted: g no longer holds the gradient
                        p.zero_grad()
                    continue
                _subtract_scaled(w, g, lr)  # anything unusual raises here with the gradient kept
            p.zero_grad()


class _WithBetas(Optimizer):
    """Base of the Adam family: ``betas=(beta1, beta2)``, each in [0, 1), stored as the
    hyper-parameters ``beta1`` and ``beta2`` after ``lr``, and read back as :attr:`betas`."""

    repr_pairs = MappingProxyType({"betas": ("beta1", "beta2")})

    def __init__(self, params: Iterable[Parameter], betas: Any, hyper: Hyper) -> None:
        who = type(self).__name__
        beta1, beta2 = _two_values(who, "betas", betas, ("beta1", "beta2"))
        beta1 = _check_beta(who, "betas[0]", beta1)
        beta2 = _check_beta(who, "betas[1]", beta2)
        rest = dict(hyper)
        super().__init__(params, {"lr": rest.pop("lr"), "beta1": beta1, "beta2": beta2, **rest})

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        return [f"hyper-parameter '{key}': must be a number in [0, 1), got {hyper[key]!r}"
                for key in ("beta1", "beta2") if not hyper[key] < 1]

    @property
    def betas(self) -> tuple[float, float]:
        return float(self.hyper["beta1"]), float(self.hyper["beta2"])

    def _decay(self, p: Parameter, decoupled: bool) -> np.ndarray:
        """The gradient to step with: with ``decoupled`` the weights first shrink by ``lr *
        weight_decay`` and the plain gradient is used (AdamW's way), otherwise L2 is added to the
        gradient (Adam's); ``-grad`` for ``grad`` with ``maximize`` (see :meth:`_decayed_grad`)."""
        lr, wd = self.hyper["lr"], self.hyper["weight_decay"]
        if decoupled:
            if wd:
                rows = self._undecayed_rows(p)
                if rows is None:
                    np.multiply(p._data, 1 - lr * wd, out=p._data)
                else:  # the rows before and after the bias rows (views: no copy)
                    before, after = p._data[:rows[0]], p._data[rows[1]:]
                    np.multiply(before, 1 - lr * wd, out=before)
                    np.multiply(after, 1 - lr * wd, out=after)
            return self._decayed_grad(p, 0.0)
        return self._decayed_grad(p, wd)

    def _moments(self, p: Parameter, state: dict[str, Any], g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Adam's two moments updated in place, ``m = beta1 m + (1 - beta1) g`` and ``v = beta2 v +
        (1 - beta2) g^2``; returns them and the parameter's scratch array (free again)."""
        beta1, beta2 = self.hyper["beta1"], self.hyper["beta2"]
        m = self._state_array(state, "exp_avg", p)
        v = self._state_array(state, "exp_avg_sq", p)
        work = self._work(p)
        m *= beta1
        m += np.multiply(g, 1 - beta1, out=work)
        v *= beta2
        np.multiply(g, g, out=work)
        work *= 1 - beta2
        v += work
        return m, v, work


class Adam(_WithBetas):
    """Adam (Kingma & Ba), PyTorch's rule, with ``t`` the step count starting at 1::

        g = grad + weight_decay * w                 (Adam: L2, "coupled"; AdamW: see below)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v)                       (amsgrad only; then v_max replaces v below)
        w = w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Defaults as PyTorch: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0``.
    ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad`` (the weight decay still pulls
    towards 0).
    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq``
    (amsgrad only).
    """

    state_arrays = frozenset({"exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
    state_when = MappingProxyType({"max_exp_avg_sq": "amsgrad"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "exp_avg", "exp_avg_sq"})
    state_nonnegative = frozenset({"exp_avg_sq", "max_exp_avg_sq"})

    #: AdamW sets this: decay the weights directly instead of adding L2 to the gradient.
    _decoupled: bool = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, betas, {"lr": lr, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                                         "maximize": maximize, "decay_bias": decay_bias})

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, beta1, beta2 = h["lr"], h["beta1"], h["beta2"]
        t = int(state.get("step", 0)) + 1
        state["step"] = t
        g = self._decay(p, self._decoupled)
        m, v, work = self._moments(p, state, g)
        if h["amsgrad"]:
            v_max = self._state_array(state, "max_exp_avg_sq", p)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        denom = np.sqrt(v, out=work)
        denom /= math.sqrt(1 - beta2**t)
        denom += h["eps"]
        step = np.divide(m, denom, out=work)
        step *= lr / (1 - beta1**t)
        np.subtract(p._data, step, out=p._data)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's rule: before the Adam step
    (taken with the plain gradient, no L2 term) the weights shrink::

        w = w * (1 - lr * weight_decay)

    Defaults as PyTorch: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01``;
    ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad``.
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decay_bias=decay_bias)


class Adamax(_WithBetas):
    """Adamax (Kingma & Ba, the infinity-norm Adam), PyTorch's rule, with ``t`` the step count from 1::

        g = grad + weight_decay * w                 (L2)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        w = w - lr / (1 - beta1^t) * m / u

    Defaults as PyTorch: ``lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0``;
    ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad``.
    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_inf`` (u).
    """

    state_arrays = frozenset({"exp_avg", "exp_inf"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "exp_avg", "exp_inf"})
    state_nonnegative = frozenset({"exp_inf"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, betas, {"lr": lr, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
                                         "decay_bias": decay_bias})

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        beta1 = h["beta1"]
        t = state["step"] = int(state.get("step", 0)) + 1
        g = self._decayed_grad(p, h["weight_decay"])
        m = self._state_array(state, "exp_avg", p)
        u = self._state_array(state, "exp_inf", p)
        work = self._work(p)
        m *= beta1
        m += np.multiply(g, 1 - beta1, out=work)
        u *= h["beta2"]
        np.abs(g, out=work)
        work += h["eps"]
        np.maximum(u, work, out=u)
        step = np.divide(m, u, out=work)
        step *= h["lr"] / (1 - beta1**t)
        np.subtract(p._data, step, out=p._data)


class NAdam(_WithBetas):
    """NAdam (Dozat: Adam with Nesterov momentum), PyTorch's rule, with ``t`` the step count from 1::

        g = grad + weight_decay * w                 (L2; decoupled_weight_decay: w = w * (1 - lr * weight_decay))
        mu_t = beta1 * (1 - 0.96^(t * momentum_decay) / 2),   P_t = mu_1 * ... * mu_t
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        w = w - lr * (1 - mu_t) / (1 - P_t) * g / d - lr * mu_(t+1) / (1 - P_t * mu_(t+1)) * m / d

    Defaults as PyTorch: ``lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    momentum_decay=4e-3, decoupled_weight_decay=False``; ``maximize=True`` (keyword-only) steps with
    ``-grad`` for ``grad``.  State per parameter: ``step`` (int), ``mu_product`` (P_t, a number in
    [0, 1]), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    flags = Optimizer.flags | {"decoupled_weight_decay"}
    state_arrays = frozenset({"exp_avg", "exp_avg_sq"})
    state_counts = frozenset({"step"})
    state_floats = frozenset({"mu_product"})
    state_required = frozenset({"step", "mu_product", "exp_avg", "exp_avg_sq"})
    state_nonnegative = frozenset({"exp_avg_sq"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, betas, {"lr": lr, "eps": eps, "weight_decay": weight_decay,
                                         "momentum_decay": momentum_decay,
                                         "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
                                         "decay_bias": decay_bias})

    def _state_problems(self, i: int, entry: Mapping[str, Any]) -> list[str]:
        product = entry.get("mu_product", 0.0)
        # (compared as given: an int may be beyond float range; NaN/inf are refused by the base already)
        if is_number(product) and (isinstance(product, int) or math.isfinite(product)) and not 0 <= product <= 1:
            shown = f"an int of {len(str(abs(product)))} digits" if isinstance(product, int) and abs(product) > 2**53 \
                else repr(product)
            # above 1, the next step's 1 - mu_product * mu could be 0
            return [f"state '{i}.mu_product': must be a product of momenta, in [0, 1], got {shown}"]
        return []

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, beta1, beta2, psi = h["lr"], h["beta1"], h["beta2"], h["momentum_decay"]
        t = state["step"] = int(state.get("step", 0)) + 1
        g = self._decay(p, bool(h["decoupled_weight_decay"]))
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = state["mu_product"] = float(state.get("mu_product", 1.0)) * mu
        m, v, work = self._moments(p, state, g)
        part = self._work(p, 2)
        denom = np.divide(v, 1 - beta2**t, out=work)
        np.sqrt(denom, out=denom)
        denom += h["eps"]
        np.divide(g, denom, out=part)
        part *= lr * (1 - mu) / (1 - product)
        np.subtract(p._data, part, out=p._data)
        np.divide(m, denom, out=part)
        part *= lr * mu_next / (1 - product * mu_next)
        np.subtract(p._data, part, out=p._data)


class RAdam(_WithBetas):
    """RAdam (Liu et al.: Adam with its variance rectified), PyTorch's rule, with ``t`` the step count::

        g = grad + weight_decay * w                 (L2; decoupled_weight_decay: w = w * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        rho_inf = 2 / (1 - beta2) - 1,   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        w = w - lr * r_t * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)    if rho_t > 5
        w = w - lr / (1 - beta1^t) * m                                             otherwise (the first steps)

    with ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``.
    Defaults as PyTorch: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    decoupled_weight_decay=False``; ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad``.
    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    flags = Optimizer.flags | {"decoupled_weight_decay"}
    state_arrays = frozenset({"exp_avg", "exp_avg_sq"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "exp_avg", "exp_avg_sq"})
    state_nonnegative = frozenset({"exp_avg_sq"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, betas, {"lr": lr, "eps": eps, "weight_decay": weight_decay,
                                         "decoupled_weight_decay": decoupled_weight_decay, "maximize": maximize,
                                         "decay_bias": decay_bias})

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, beta1, beta2 = h["lr"], h["beta1"], h["beta2"]
        t = state["step"] = int(state.get("step", 0)) + 1
        g = self._decay(p, bool(h["decoupled_weight_decay"]))
        m, v, work = self._moments(p, state, g)
        correction1, correction2 = 1 - beta1**t, 1 - beta2**t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / correction2
        if rho_t > 5:  # the variance estimate is tractable: Adam's step, rectified
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            denom = np.sqrt(v, out=work)
            denom += h["eps"]
            step = np.divide(m, denom, out=work)
            step *= lr * rect * math.sqrt(correction2) / correction1
        else:  # too few steps to trust v: momentum SGD
            step = np.multiply(m, lr / correction1, out=work)
        np.subtract(p._data, step, out=p._data)


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's rule::

        g = grad + weight_decay * w                                   (L2)
        s = alpha * s + (1 - alpha) * g^2
        a = alpha * a + (1 - alpha) * g;   d = sqrt(max(s - a^2, 0)) + eps   (centered)
                                           d = sqrt(s) + eps           (otherwise)
        b = momentum * b + g / d;  w = w - lr * b                      (momentum > 0)
        w = w - lr * g / d                                             (otherwise)

    Defaults as PyTorch: ``lr=0.01, alpha=0.99, eps=1e-8``, no weight decay, momentum 0, not centered;
    ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad`` (so ``a`` and ``b`` accumulate it).
    State per parameter: ``step`` (int), ``square_avg`` (s), ``momentum_buffer`` (b, momentum > 0),
    ``grad_avg`` (a, centered only); all start at zero.
    """

    state_arrays = frozenset({"square_avg", "momentum_buffer", "grad_avg"})
    state_when = MappingProxyType({"momentum_buffer": "momentum", "grad_avg": "centered"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "square_avg"})
    state_nonnegative = frozenset({"square_avg"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        alpha = _number("RMSprop", "alpha", alpha)
        if not 0 <= alpha <= 1:
            raise ValueError(f"RMSprop: alpha must be a number in [0, 1], got {alpha!r}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered, "maximize": maximize,
                                  "decay_bias": decay_bias})

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        if not hyper["alpha"] <= 1:
            return [f"hyper-parameter 'alpha': must be a number in [0, 1], got {hyper['alpha']!r}"]
        return []

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, alpha, momentum = h["lr"], h["alpha"], h["momentum"]
        state["step"] = int(state.get("step", 0)) + 1
        g = self._decayed_grad(p, h["weight_decay"])
        s = self._state_array(state, "square_avg", p)
        work = self._work(p)
        s *= alpha
        np.multiply(g, g, out=work)
        work *= 1 - alpha
        s += work
        if h["centered"]:
            a = self._state_array(state, "grad_avg", p)
            a *= alpha
            a += np.multiply(g, 1 - alpha, out=work)
            np.multiply(a, a, out=work)
            np.subtract(s, work, out=work)
            # s - a^2 >= 0 in exact arithmetic, but may round to a tiny negative number for a steady
            # gradient; PyTorch's sqrt then gives NaN.  Clamped, the variance estimate is 0 there.
            np.maximum(work, 0, out=work)
            denom = np.sqrt(work, out=work)
        else:
            denom = np.sqrt(s, out=work)
        denom += h["eps"]
        step = np.divide(g, denom, out=work)
        if momentum:
            b = self._state_array(state, "momentum_buffer", p)
            b *= momentum
            b += step
            step = np.multiply(b, lr, out=work)
        else:
            step *= lr
        np.subtract(p._data, step, out=p._data)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's rule, with ``t`` the step count starting at 1::

        g = grad + weight_decay * w                                   (L2)
        s = s + g^2                                                   (s starts at initial_accumulator_value)
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Defaults as PyTorch: ``lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10``; ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad`` (the same ``s``).
    State per parameter: ``step`` (int) and ``sum`` (s).
    """

    state_arrays = frozenset({"sum"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "sum"})
    state_nonnegative = frozenset({"sum"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value, "eps": eps,
                                  "maximize": maximize, "decay_bias": decay_bias})

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        step = state["step"] = int(state.get("step", 0)) + 1
        g = self._decayed_grad(p, h["weight_decay"])
        s = self._stored(state, "sum", p)
        if s is None:
            s = state["sum"] = aligned.empty(p._data.shape, p._data.dtype)
            s.fill(h["initial_accumulator_value"])
        work = self._work(p)
        s += np.multiply(g, g, out=work)
        denom = np.sqrt(s, out=work)
        denom += h["eps"]
        update = np.divide(g, denom, out=work)
        update *= h["lr"] / (1.0 + (step - 1) * h["lr_decay"])
        np.subtract(p._data, update, out=p._data)


class Adadelta(Optimizer):
    """Adadelta (Zeiler), PyTorch's rule: a step sized by the ratio of two running means, of the squared
    steps and of the squared gradients, so that ``lr`` (1 by default) is only a scale::

        g = grad + weight_decay * w                                   (L2)
        s = rho * s + (1 - rho) * g^2
        d = sqrt(u + eps) / sqrt(s + eps) * g
        u = rho * u + (1 - rho) * d^2
        w = w - lr * d

    Defaults as PyTorch: ``lr=1.0, rho=0.9, eps=1e-6, weight_decay=0``; ``maximize=True`` (keyword-only)
    steps with ``-grad`` for ``grad``.  State per parameter: ``step`` (int), ``square_avg`` (s) and
    ``acc_delta`` (u), both starting at zero.
    """

    state_arrays = frozenset({"square_avg", "acc_delta"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "square_avg", "acc_delta"})
    state_nonnegative = frozenset({"square_avg", "acc_delta"})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        decay_bias: bool = True,
    ) -> None:
        rho = _number("Adadelta", "rho", rho)
        if not 0 <= rho <= 1:
            raise ValueError(f"Adadelta: rho must be a number in [0, 1], got {rho!r}")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                                  "maximize": maximize, "decay_bias": decay_bias})

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        if not hyper["rho"] <= 1:
            return [f"hyper-parameter 'rho': must be a number in [0, 1], got {hyper['rho']!r}"]
        return []

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        rho, eps = h["rho"], h["eps"]
        state["step"] = int(state.get("step", 0)) + 1
        g = self._decayed_grad(p, h["weight_decay"])  # (scratch slot 1 with weight decay)
        s = self._state_array(state, "square_avg", p)
        u = self._state_array(state, "acc_delta", p)
        work, delta = self._work(p), self._work(p, 2)
        s *= rho
        np.multiply(g, 1 - rho, out=work)  # ((1 - rho) * g) * g, PyTorch's order of the products
        work *= g
        s += work
        std = np.add(s, eps, out=work)
        np.sqrt(std, out=std)
        np.add(u, eps, out=delta)
        np.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        u *= rho
        np.multiply(delta, 1 - rho, out=work)
        work *= delta
        u += work
        delta *= h["lr"]
        np.subtract(p._data, delta, out=p._data)


def _rprop_problems(eta_minus: float, eta_plus: float, size_min: float, size_max: float) -> list[tuple[str, str]]:
    """What Rprop refuses in its etas and step sizes: (the pair, the rule it breaks)."""
    problems = []
    if not (0 < eta_minus < 1 < eta_plus and math.isfinite(eta_plus)):
        problems.append(("etas", "0 < eta_minus < 1 < eta_plus (finite)"))
    if not (0 < size_min <= size_max and math.isfinite(size_max)):
        problems.append(("step_sizes", "0 < step_size_min <= step_size_max (finite)"))
    return problems


class Rprop(Optimizer):
    """Rprop (resilient back-propagation, Riedmiller & Braun), PyTorch's rule.  Only the sign of the
    gradient is used: every element has its own step size, which grows while its gradient keeps its
    sign and shrinks when the sign flips::

        s = clamp(eta_plus * s,  step_size_min, step_size_max)   if g * g_prev > 0    (s starts at lr)
        s = clamp(eta_minus * s, step_size_min, step_size_max),  g = 0   if g * g_prev < 0
        s = clamp(s, step_size_min, step_size_max)                otherwise
        w = w - sign(g) * s
        g_prev = g

    After a sign flip the element does not move, and its zeroed gradient is what the next step
    compares with (its step size then stays).  Defaults as PyTorch: ``lr=0.01, etas=(0.5, 1.2),
    step_sizes=(1e-6, 50)``; no weight decay (PyTorch's Rprop has none).  ``lr`` is only the initial
    step size: a schedule that changes it changes the steps of parameters that have not stepped yet.
    ``maximize=True`` (keyword-only) steps with ``-grad`` for ``grad``: the sign test then compares
    negated gradients and ``prev`` keeps ``-grad``, as PyTorch's.
    State per parameter: ``step`` (int), ``prev`` (g_prev, starting at zero) and ``step_size`` (s).

    Unlike PyTorch, which does not check ``step_sizes``, they must be ``0 < step_size_min <=
    step_size_max``, finite (PyTorch's clamp with min > max makes every step the max).  A NaN gradient
    element does not move, as in PyTorch; ``prev`` then keeps 0 where PyTorch keeps the NaN (the same
    next step: neither grows nor shrinks the step size), and an infinite one the largest finite value of
    its sign where PyTorch keeps the inf (the same signs), so the state stays loadable.  The sign test
    multiplies ``g * g_prev`` as PyTorch does, so in float16 two gradients below about 1.7e-4 underflow
    to "no sign" and the step size does not adapt (PyTorch's too).
    """

    state_arrays = frozenset({"prev", "step_size"})
    state_counts = frozenset({"step"})
    state_required = frozenset({"step", "prev", "step_size"})
    repr_pairs = MappingProxyType({"etas": ("eta_minus", "eta_plus"),
                                   "step_sizes": ("step_size_min", "step_size_max")})

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
        *,
        maximize: bool = False,
    ) -> None:
        who = type(self).__name__
        given = {"etas": _two_values(who, "etas", etas, ("eta_minus", "eta_plus")),
                 "step_sizes": _two_values(who, "step_sizes", step_sizes, ("step_size_min", "step_size_max"))}
        eta_minus, eta_plus = (_number(who, f"etas[{i}]", v) for i, v in enumerate(given["etas"]))
        size_min, size_max = (_number(who, f"step_sizes[{i}]", v) for i, v in enumerate(given["step_sizes"]))
        problems = _rprop_problems(eta_minus, eta_plus, size_min, size_max)
        if problems:
            raise ValueError("; ".join(f"{who}: {name} must be {rule}, got {tuple(given[name])!r}"
                                       for name, rule in problems))
        super().__init__(params, {"lr": lr, "eta_minus": eta_minus, "eta_plus": eta_plus,
                                  "step_size_min": size_min, "step_size_max": size_max, "maximize": maximize})

    @property
    def etas(self) -> tuple[float, float]:
        return float(self.hyper["eta_minus"]), float(self.hyper["eta_plus"])

    @property
    def step_sizes(self) -> tuple[float, float]:
        return float(self.hyper["step_size_min"]), float(self.hyper["step_size_max"])

    def _range_problems(self, hyper: Mapping[str, Any]) -> list[str]:
        keys = {"etas": ("eta_minus", "eta_plus"), "step_sizes": ("step_size_min", "step_size_max")}
        return [f"hyper-parameters '{keys[name][0]}', '{keys[name][1]}': must be {rule}, got "
                f"{hyper[keys[name][0]]!r}, {hyper[keys[name][1]]!r}"
                for name, rule in _rprop_problems(*(float(hyper[k]) for pair in keys.values() for k in pair))]

    def _state_problems(self, i: int, entry: Mapping[str, Any]) -> list[str]:
        size = entry.get("step_size")
        # (a step size is never negative: the clamp keeps it in [step_size_min, step_size_max])
        if isinstance(size, np.ndarray) and size.dtype.kind == "f" and (size < 0).any():
            return [f"state '{i}.step_size': holds negative values (a step size cannot), e.g. {size.min().item()!r}"]
        return []

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        state["step"] = int(state.get("step", 0)) + 1
        g = self._decayed_grad(p, 0.0)  # (no weight decay: -grad with maximize, else grad itself)
        prev = self._state_array(state, "prev", p)
        size = self._stored(state, "step_size", p)
        if size is None:
            size = state["step_size"] = aligned.empty(p._data.shape, p._data.dtype)
            size.fill(h["lr"])
        work, mask = self._work(p), self._work(p, 2, np.bool_)  # (slot 1 is _decayed_grad's: g with maximize)
        with np.errstate(over="ignore", invalid="ignore"):  # only the sign counts: inf * 0 is "no sign" (NaN)
            np.multiply(g, prev, out=work)
        np.greater(work, 0, out=mask)  # the same sign as last step: a longer step
        np.multiply(size, h["eta_plus"], out=size, where=mask)
        np.less(work, 0, out=mask)  # the sign flipped: a shorter step, taken next time
        np.multiply(size, h["eta_minus"], out=size, where=mask)
        np.clip(size, h["step_size_min"], h["step_size_max"], out=size)
        np.copyto(prev, g)
        np.copyto(prev, 0, where=mask)  # no move now, and nothing to compare with next step
        # A NaN gradient does not move either: PyTorch's sign(NaN) is 0 (NumPy's is NaN).  PyTorch then
        # keeps the NaN in prev, but compared with the next gradient it grows nothing, as a 0 does.
        np.isnan(prev, out=mask)
        np.copyto(prev, 0, where=mask)
        # An infinite gradient is kept as the largest finite value of its sign: the same signs next step,
        # and a state that loads (PyTorch keeps the inf; minidl refuses NaN/inf in a loaded state).
        top = np.finfo(prev.dtype).max
        np.clip(prev, -top, top, out=prev)
        step = np.sign(prev, out=work)
        step *= size
        np.subtract(p._data, step, out=p._data)
