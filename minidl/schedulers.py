"""Learning-rate schedules: they set ``optimizer.lr`` once per epoch, as PyTorch's ``lr_scheduler``.

Call :meth:`LRScheduler.step` after each epoch (``fit(..., scheduler=...)`` does it for you; with
``scheduler_interval="batch"`` it steps after every batch, and the counts below are batches).  With
``e`` the number of completed epochs (``last_epoch``) and ``lr0`` the optimizer's lr when the
schedule was made, the lr for the next epoch is (closed forms, no drift from repeated products):

- :class:`StepLR`:            ``lr0 * gamma ** (e // step_size)``
- :class:`MultiStepLR`:       ``lr0 * gamma ** (number of milestones <= e)``
- :class:`ExponentialLR`:     ``lr0 * gamma ** e``
- :class:`CosineAnnealingLR`: ``eta_min + (lr0 - eta_min) * (1 + cos(pi * e / T_max)) / 2``
- :class:`CosineAnnealingWarmRestarts`: that cosine over ``T_0`` epochs, then again from ``lr0`` over
  ``T_0 * T_mult``, ``T_0 * T_mult**2``, ... epochs
- :class:`LinearLR`:          ``lr0 * (start + (end - start) * min(e, total_iters) / total_iters)`` (a warm-up)
- :class:`SequentialLR`:      one schedule after another, each counting its epochs from its milestone
- :class:`OneCycleLR`:        up from ``max_lr / div_factor`` to ``max_lr``, then down (and the momentum
  the other way), counting batches: ``fit(..., scheduler_interval="batch")``
- :class:`CyclicLR`:          triangles between ``base_lr`` and ``max_lr`` (and the momentum the other
  way), counting batches, their height scaled by the mode or a ``scale_fn`` of your own
- :class:`LambdaLR`:          ``lr0 * lr_lambda(e)``, a function of your own
- :class:`ConstantLR`:        ``lr0 * factor`` for ``e < total_iters``, then ``lr0``
- :class:`PolynomialLR`:      ``lr0 * (1 - min(e, total_iters) / total_iters) ** power``
- :class:`MultiplicativeLR`:  ``lr0 * lr_lambda(1) * ... * lr_lambda(e)``, multiplied in that order
- :class:`ChainedScheduler`:  schedules together: ``lr0`` times each one's factor ``lr_i(e) / lr0``

:class:`ReduceLROnPlateau` has no closed form: it multiplies the lr by ``factor`` when a monitored
value stops improving, so its :meth:`~ReduceLROnPlateau.step` takes that value.
"""

from __future__ import annotations

import bisect
import copy
import functools
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import StateDictError
from .optim import Optimizer
from .validation import finite_non_negative, is_finite, is_integer, is_number, settings_renamed

__all__ = ["ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
           "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR",
           "PolynomialLR", "ReduceLROnPlateau", "SequentialLR", "StepLR"]


#: The largest epoch count a state may hold: floats count whole numbers exactly up to here.
_MAX_EPOCH = 2**53


class _Setting(property):
    """A schedule's setting (``base_lr``, a name in ``settings`` or ``functions``): it reads ``_<name>``, and
    setting it goes through :meth:`LRScheduler._set`, which checks the value as the constructor does; a
    refusal leaves the schedule as it was."""


def _setting(name: str) -> _Setting:
    """The property of the setting ``name``: :meth:`LRScheduler.__init_subclass__` makes one for each name a
    class lists in ``settings`` or ``functions``.  Its getter is ``attrgetter`` (C: a setting read in a step
    costs little); the setter checks the value (:meth:`LRScheduler._set`), then that the schedule can still
    give the lr of the step it has reached (:meth:`LRScheduler._check_goes_on`), and puts back the schedule,
    and the container it belongs to with its schedules, as they were when either refuses."""

    def set_checked(schedule: LRScheduler, value: Any) -> None:
        if schedule._constructing:  # (a constructor that raises leaves nothing to put back)
            schedule._set(name, value)
            return
        top = schedule._owner if schedule._owner is not None else schedule
        saved = [(s, dict(s.__dict__)) for s in (top, *getattr(top, "_schedulers", ()))]
        if not any(s is schedule for s, _ in saved):  # (a stale owner: an old pickle's)
            saved.append((schedule, dict(schedule.__dict__)))
        try:
            schedule._set(name, value)
            schedule._check_goes_on(name, value)
        except BaseException:
            for s, before in saved:
                s.__dict__.clear()
                s.__dict__.update(before)
            raise

    return _Setting(attrgetter("_" + name), set_checked, None,
                    f"The setting {name!r}, checked when set as the constructor checks it (the schedule unchanged "
                    f"when refused); the next step uses it.")


def _add_note_once(error: BaseException, note: str) -> None:
    """``note`` added to ``error`` (Python 3.11+), unless it has it already: a function that raises the same
    exception object again, at every step tried, gets it once."""
    if hasattr(error, "add_note") and note not in getattr(error, "__notes__", ()):
        error.add_note(note)


def _check_lr_value(who: str, lr: Any, epoch: int) -> None:
    """A ``ValueError`` unless ``lr`` (the lr after ``epoch`` steps) is one an optimizer takes."""
    if not (is_number(lr) and is_finite(lr) and lr >= 0):
        raise ValueError(f"{who}: the lr after {epoch} step(s) would be {lr!r}, not a finite number >= 0")


def _raw_class_attribute(cls: type, name: str) -> Any:
    """``name`` as ``cls`` or the first of its bases that has it holds it (a staticmethod as itself), or
    ``_NONE``."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return _NONE


_NONE = object()


class LRScheduler:
    """Base class: subclasses implement :meth:`lr_at` (the lr after ``epoch`` completed epochs).

    A subclass whose constructor takes arguments that shape the schedule names them in
    :attr:`settings` and checks them in :meth:`_check_setting`: :meth:`state_dict` saves them and
    :meth:`load_state_dict` restores them, as PyTorch's schedulers do.  (A subclass may instead
    override both methods; keys the base class does not know are then left to it.)

    A subclass whose lr depends on more than ``last_epoch`` names that state in :attr:`run_state`
    and checks it in :meth:`_check_run_state`: it is saved, and required and restored on load.

    Each name in :attr:`settings` and :attr:`functions` is a property (made for the subclass that lists
    it and has a :meth:`_check_setting`; a class-level value of that name is its default, read until it is
    set): setting it checks the value as the constructor does, with its message, then that the lr at the
    count reached can still be given (:meth:`_check_goes_on`), and a refusal changes nothing; :meth:`_set`
    says what else a change does.

    :meth:`step` counts, then asks :meth:`lr_at` for the new count (which ``self.last_epoch`` also holds
    then, as in PyTorch's ``get_lr``), and puts the count back if that fails.
    """

    #: The constructor's arguments that shape the schedule (saved and restored with the state).
    settings: tuple[str, ...] = ()
    #: The constructor's arguments that are the user's functions (``lr_lambda``, ``scale_fn``): checked when
    #: set, as :attr:`settings`, but never saved (a checkpoint holds no function).
    functions: tuple[str, ...] = ()
    #: What the run has accumulated besides ``last_epoch`` (saved, and required on load).
    run_state: tuple[str, ...] = ()
    #: Run state added after states were first saved, with the value a state saved before it existed
    #: meant: :meth:`load_state_dict` gives it to a state without it (the rest of :attr:`run_state` is
    #: required).
    later_run_state: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Whether making the schedule records the optimizer's lr as its ``initial_lr`` when none is (PyTorch's
    #: schedules do, its ``ReduceLROnPlateau`` does not).
    records_initial_lr = True
    #: The class name of the :class:`SequentialLR` or :class:`ChainedScheduler` this schedule belongs to (None:
    #: its own): that one steps it, and its own :meth:`step` is refused.
    _part_of: str | None = None
    #: That container itself (a setting of this schedule is checked against the container's lr too).
    _owner: _OfSchedules | None = None
    #: True while :meth:`step` has counted the step it is computing (a note on an error then says the steps
    #: taken before it).
    _stepping = False
    #: True while a subclass's constructor runs.
    _constructing = False

    # (An instance's attributes are set one by one, never through its ``__dict__``, on the way to a step: a
    # ``__dict__`` once read holds them for good, and every attribute read in a step is then slower.)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A constructor that refuses its arguments leaves the optimizers it was given as they were: their
        hyper-parameters (the lr and momentum a schedule sets when made) and ``initial_lr``, which the base
        records before a subclass checks its own arguments (PyTorch checks them first).  Given means an
        argument of the subclass's ``__init__``, or an item of a list, tuple, set or mapping (key or value)
        argument, one level deep (not an optimizer reached otherwise: a default value, an attribute, a
        nested list, a mixin's ``__init__``)."""
        super().__init_subclass__(**kwargs)
        if cls._check_setting is not LRScheduler._check_setting:  # (else a subclass keeps plain attributes)
            for name in (*cls.settings, *cls.functions):
                default = _raw_class_attribute(cls, name)
                if isinstance(default, property):  # (one made already, or of the class's own: has_scale_fn)
                    continue
                setattr(cls, name, _setting(name))
                if default is not _NONE and "_" + name not in cls.__dict__:
                    setattr(cls, "_" + name, default)  # a class-level default, read until the setting is set
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def init_or_undo(self: LRScheduler, *args: Any, **kw: Any) -> None:
            given: dict[int, Optimizer] = {}
            for value in (*args, *kw.values()):
                items = [*value, *value.values()] if isinstance(value, Mapping) else value \
                    if isinstance(value, (list, tuple, set, frozenset)) else (value,)
                given.update((id(o), o) for o in items if isinstance(o, Optimizer))
            saved = [(o, dict(o.hyper), o.initial_lr) for o in given.values()]
            outermost = not self._constructing  # (a subclass's __init__ calls its base's)
            if outermost:  # settings set in a constructor are not yet checked against the lr: see _check_goes_on
                self._constructing = True
            try:
                init(self, *args, **kw)
            except BaseException:
                for optimizer, hyper, initial_lr in saved:
                    optimizer.hyper.clear()
                    optimizer.hyper.update(hyper)
                    optimizer.initial_lr = initial_lr
                raise
            finally:
                if outermost:
                    self._constructing = False

        cls.__init__ = init_or_undo  # type: ignore[method-assign]

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self._optimizer = optimizer
        self._base_lr = optimizer.lr
        if optimizer.initial_lr is None and self.records_initial_lr:  # the first schedule: PyTorch's initial_lr
            optimizer.initial_lr = optimizer.lr
        self.last_epoch = 0
        # the lr this schedule last gave the optimizer (None after a load: not known), to notice another
        # hand on it: a second schedule, an lr set by hand, an optimizer state loaded without this one's
        self._lr_set: float | None = optimizer.lr
        self._stepping = False

    if TYPE_CHECKING:
        base_lr: float
    else:
        base_lr = _setting("base_lr")

    def _refuse_another_optimizer(self, value: Optimizer) -> None:
        if value is not self._optimizer:
            name = type(self).__name__
            raise AttributeError(f"{name}: the optimizer cannot change (the schedule has set its lr, and "
                                 f"records what it set): make a new {name} for the other optimizer")

    if TYPE_CHECKING:
        @property
        def optimizer(self) -> Optimizer: ...

        @optimizer.setter
        def optimizer(self, value: Optimizer) -> None: ...
    else:
        optimizer = property(attrgetter("_optimizer"), _refuse_another_optimizer, None,
                             "The optimizer whose lr the schedule sets (fixed when made).")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and copying): also a schedule pickled when its settings were plain attributes."""
        for key, value in settings_renamed(type(self), state).items():
            setattr(self, key, value)

    def _init_settings(self, **values: Any) -> None:
        """The constructor's settings, each checked by :meth:`_check_setting` and kept in turn,
        without what setting one later also does (:meth:`_set`): the caller checks them together."""
        for name, value in values.items():
            setattr(self, "_" + name, self._check_setting(name, value))

    def _set(self, name: str, value: Any) -> None:
        """Set the setting ``name`` (``base_lr``, or one in :attr:`settings` or :attr:`functions`) after the
        constructor: checked as the constructor checks it (:meth:`_check_setting`; ``base_lr``: a finite number
        >= 0) and kept, used from the next step on (the lr follows the closed form with the new value, as
        after loading a state that holds it).  A subclass extends it to recompute what derives from the
        setting, or to refuse a change that makes no sense mid-schedule; whatever it raises, the setter puts
        the schedule back as it was.  A schedule in a :class:`ChainedScheduler` is refused a value the chain
        refuses, and one in any container a ``base_lr`` of its own (the container's is every schedule's)."""
        who, owner = type(self).__name__, self._part_of
        if name == "base_lr":
            if owner is not None:
                raise ValueError(f"{who}: base_lr is the lr0 of the {owner} this {who} belongs to, which all its "
                                 f"schedules share: set the {owner}'s base_lr")
            value = finite_non_negative(who, name, value)
        else:
            value = self._check_setting(name, value)
        setattr(self, "_" + name, value)
        reason = _not_a_factor(self) if owner == "ChainedScheduler" else None
        if reason is not None:
            raise ValueError(f"{who}: {name}={value!r} is refused: this {who} belongs to a ChainedScheduler, which "
                             f"refuses a {who} {reason}")

    def _check_goes_on(self, name: str, value: Any) -> None:
        """After the setting ``name`` was set to ``value`` (and kept): a ``ValueError`` when the schedule, or the
        container it belongs to, can no longer give the lr (and momentum) of the step it has reached
        (:meth:`_check_current`), so that it could neither step on nor load its own state.  Not checked while
        a constructor runs (a custom one sets its settings one by one, and the lr may need them all)."""
        if self._constructing:
            return
        top = self._owner if self._owner is not None and self._part_of is not None else self
        try:
            top._check_current()
        except Exception as error:
            said = error if isinstance(error, (ValueError, TypeError)) else f"{type(error).__name__}: {error}"
            raise ValueError(f"{type(self).__name__}: {name}={value!r} is refused after {self.last_epoch} step(s): "
                             f"{said} (with it the schedule could neither step on nor load its own state)") \
                from error

    def _check_current(self) -> None:
        """A ``ValueError`` (or what a user's function raises) when the lr at ``last_epoch`` is not one the
        schedule can give the optimizer (none for a schedule without :meth:`lr_at`, which steps its own way)."""
        if type(self).lr_at is not LRScheduler.lr_at:
            _check_lr_value(type(self).__name__, self.lr_at(self.last_epoch), self.last_epoch)

    def _note(self, error: BaseException, name: str, x: int, epoch: int) -> None:
        """What the user's function ``name`` (``lr_lambda``, ``scale_fn``) raised when called with ``x``, for the
        lr after ``epoch`` steps, keeps its type and message, with a note naming the schedule and its count
        (Python 3.11+; once; in a container, the container's note follows: :meth:`_OfSchedules._note_part`)."""
        who = type(self).__name__
        if self._part_of is not None:
            _add_note_once(error, f"(raised by {who}'s {name}({x!r}), computing its lr {epoch} step(s) into its "
                                  f"schedule)")
            return
        taken = self.last_epoch - 1 if self._stepping else self.last_epoch
        _add_note_once(error, f"(raised by {who}'s {name}({x!r}), computing the lr after {epoch} step(s); the "
                              f"{who} had taken {taken} step(s))")

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at(epoch)")

    def get_last_lr(self) -> float:
        """The lr the optimizer holds now."""
        return self._optimizer.lr

    def step(self) -> float:
        """Count one more completed epoch and set the optimizer's lr for the next one; returns it.  The count
        comes first, as in PyTorch: ``lr_at`` is asked for the new ``last_epoch``, which it may read as well.
        (If the optimizer refuses the lr, or computing it raises, the count is put back: nothing changed.)
        Refused, changing nothing, when the optimizer's lr is no longer the one this schedule set, or when
        the schedule belongs to a :class:`SequentialLR` or :class:`ChainedScheduler`: see
        :meth:`_check_can_step`."""
        self._check_can_step()
        epoch = self.last_epoch + 1
        self.last_epoch = epoch
        self._stepping = True
        try:
            lr = self.lr_at(epoch)
            self._write_lr(lr)
        except BaseException:
            self.last_epoch = epoch - 1
            self._stepping = False
            raise
        self._stepping = False
        return lr

    def _write_lr(self, lr: float) -> None:
        """Give the optimizer ``lr`` (checked by it first: a refusal changes nothing) and remember it."""
        optimizer = self._optimizer
        optimizer.lr = lr
        self._lr_set = optimizer.lr

    def _check_can_step(self) -> None:
        """A ``RuntimeError`` when this schedule belongs to a :class:`SequentialLR` or :class:`ChainedScheduler`
        (the lr is that one's: step it), or when another hand changed the lr (:meth:`_check_lr_unchanged`)."""
        if self._part_of is not None:
            name, owner = type(self).__name__, self._part_of
            raise RuntimeError(f"{name}.step: this {name} belongs to a {owner}, which sets the lr from its schedules "
                               f"and steps them: step the {owner}, not the schedules in it")
        self._check_lr_unchanged()

    def _check_lr_unchanged(self) -> None:
        """A ``RuntimeError`` when something else changed the optimizer's lr since this schedule set it:
        the schedules here are closed forms, ``lr = f(epoch)`` from ``lr0``, so the next step would undo
        that change silently (PyTorch's "chainable" schedules would build on it instead; here a
        :class:`ChainedScheduler` multiplies schedules)."""
        lr, mine = self._optimizer.lr, self._lr_set
        if mine is not None and lr != mine:
            name = type(self).__name__
            raise RuntimeError(
                f"{name}.step: the optimizer's lr is {lr!r}, not the {mine!r} this {name} set (after {self.last_epoch} "
                f"step(s)): something else changed it since, a second schedule on the same optimizer, an lr set "
                f"by hand, or an optimizer state loaded without this schedule's.  minidl's schedules compute the lr "
                f"from lr0 in closed form and do not build on another's lr (the step would undo that change): run "
                f"schedules one after another with SequentialLR or together with ChainedScheduler, load the "
                f"schedule's state with the optimizer's, or make a new schedule from the lr you set"
            )

    def _check_setting(self, name: str, value: Any) -> Any:
        """``value`` for the setting ``name``, checked and stored as the constructor does (a
        ``ValueError`` naming the scheduler otherwise)."""
        raise NotImplementedError(f"{type(self).__name__} lists settings but does not check them")

    def _check_run_state(self, name: str, value: Any, settings: Mapping[str, Any]) -> Any:
        """``value`` for the run-state entry ``name``, checked against the ``settings`` the load will
        leave (a ``ValueError`` otherwise)."""
        raise NotImplementedError(f"{type(self).__name__} lists run state but does not check it")

    def state_dict(self) -> dict[str, Any]:
        """``{"type", "base_lr", "last_epoch", <settings>, <run_state>}``: enough to resume the schedule
        where it was.  A :attr:`later_run_state` entry at the value its absence means is left out: the state
        is then the one the code before that entry saved."""
        state = {"type": type(self).__name__, "base_lr": self.base_lr, "last_epoch": self.last_epoch}
        for key in (*self.settings, *self.run_state):
            value = getattr(self, key)
            if key in self.later_run_state and value == self.later_run_state[key]:
                continue
            state[key] = list(value) if isinstance(value, list) else value
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the count, ``base_lr``, the settings and the run state; refuses (listing every
        problem, changing nothing) another scheduler's state, bad values and unknown keys.  A state
        without the settings (saved before they were) keeps this scheduler's."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict expects a mapping, got {type(state).__name__}")
        problems = [f"missing key '{k}'" for k in ("type", "base_lr", "last_epoch") if k not in state]
        if "type" in state and (not isinstance(state["type"], str) or state["type"] != name):
            problems.append(f"state is for {state['type']!r}, not {name!r}")  # the rest would mislead
        settings: dict[str, Any] = {}
        run_state: dict[str, Any] = {}
        if not problems:
            # a subclass with its own state_dict may save more: its load_state_dict reads it
            own_keys = type(self).state_dict is LRScheduler.state_dict
            kept_keys = (*self.settings, *self.run_state)
            unknown = sorted(map(str, set(state) - {"type", "base_lr", "last_epoch", *kept_keys}))
            if unknown and own_keys:
                problems.append(f"unexpected keys {unknown} ({name} keeps type, base_lr, last_epoch"
                                f"{''.join(', ' + key for key in kept_keys)})")
            base_lr, last_epoch = state["base_lr"], state["last_epoch"]
            if not (is_number(base_lr) and is_finite(base_lr) and base_lr >= 0):
                problems.append(f"'base_lr': expected a finite number >= 0, got {base_lr!r}")
            if not (is_integer(last_epoch) and 0 <= last_epoch <= _MAX_EPOCH):
                problems.append(f"'last_epoch': expected an int >= 0 (at most 2**53), got {last_epoch!r}")
            for key in self.settings:
                if key in state:
                    try:
                        settings[key] = self._check_setting(key, state[key])
                    except (TypeError, ValueError) as error:
                        problems.append(f"'{key}': {error}")
            loaded_settings = {key: settings.get(key, getattr(self, key)) for key in self.settings}
            for key in self.run_state:
                if key not in state and key in self.later_run_state:
                    run_state[key] = self.later_run_state[key]
                    continue
                if key not in state:
                    problems.append(f"missing key '{key}'")
                    continue
                try:
                    run_state[key] = self._check_run_state(key, state[key], loaded_settings)
                except (TypeError, ValueError) as error:
                    problems.append(f"'{key}': {error}")
        if problems:
            raise StateDictError(f"{name}.load_state_dict refused the state (nothing was changed): "
                                 + "; ".join(problems))
        self._base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        for key, value in settings.items():  # (checked above, one by one: kept as they are)
            if isinstance(getattr(type(self), key, None), _Setting):
                setattr(self, "_" + key, value)
            else:
                setattr(self, key, value)
        for key, value in run_state.items():
            setattr(self, key, value)
        self._lr_set = None  # the optimizer's lr is its own state's: not checked at the next step

    def _load_and_set_lr(self, state: Mapping[str, Any]) -> None:
        """:meth:`load_state_dict`, then the optimizer's lr for the loaded epoch, for the schedules whose
        constructor set epoch 0's (an optimizer state loaded before would otherwise keep it); all or
        nothing: an lr the loaded state cannot give (a function's bad value, an overflow) is a
        ``StateDictError`` and the schedule is left as it was."""
        before = dict(self.__dict__)
        LRScheduler.load_state_dict(self, state)
        try:
            self._write_lr(self.lr_at(self.last_epoch))  # (the optimizer checks the lr before taking it)
        except Exception as error:
            self.__dict__.update(before)
            raise StateDictError(f"{type(self).__name__}.load_state_dict refused the state (nothing was changed): "
                                 f"the lr at the loaded epoch {state.get('last_epoch')!r}: {error}") from error

    def extra_repr(self) -> str:
        return ""

    def progress_repr(self) -> str:
        """How far the run has gone, for ``repr`` after the settings: ``"at epoch 3"``."""
        return f"at epoch {self.last_epoch}"

    def __repr__(self) -> str:
        """``StepLR(step_size=3, gamma=0.5) at epoch 0``: the settings as the constructor takes them (after
        the optimizer), then the progress, which no constructor takes."""
        return f"{type(self).__name__}({self.extra_repr()}) {self.progress_repr()}"


def _check_positive_int(who: str, name: str, value: Any) -> int:
    """A Python or NumPy int in [1, 2**53], as a Python int."""
    if not (is_integer(value) and 1 <= value <= _MAX_EPOCH):
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_gamma(who: str, gamma: Any) -> float:
    """A finite ``gamma > 0``: below 1 a decay, above 1 a rise (an lr range test), as PyTorch allows."""
    if not (is_number(gamma) and is_finite(gamma) and gamma > 0):
        raise ValueError(f"{who}: gamma must be a finite number > 0, got {gamma!r}")
    return float(gamma)


def _scaled(who: str, lr0: float, gamma: float, times: int) -> float:
    """``lr0 * gamma ** times``.  Where ``gamma ** times`` alone leaves the normal floats (above 1e308
    for a rising schedule, below 2.2e-308 for a falling one) while the product need not, it is taken
    in two halves, ``(lr0 * gamma**h) * gamma**(times - h)`` (a half that overflows too would need an
    lr0 below the normal floats); an lr that overflows is a ``ValueError`` naming the schedule
    (Python's float power raises a bare ``OverflowError``)."""
    try:
        power = gamma**times
    except OverflowError:
        power = math.inf
    if sys.float_info.min <= power < math.inf or lr0 == 0.0 or gamma == 1.0:
        lr = lr0 * power
    else:
        half = times // 2
        try:
            lr = lr0 * gamma**half * gamma ** (times - half)
        except OverflowError:
            lr = math.inf
    if not math.isfinite(lr):
        raise ValueError(f"{who}: the lr {lr0!r} * {gamma!r}**{times} overflows") from None
    return lr


def _check_milestones(who: str, milestones: Any) -> list[int]:
    if isinstance(milestones, (str, bytes, Mapping)) or not isinstance(milestones, Iterable):
        raise ValueError(f"{who}: milestones must be a sequence of positive ints, got {milestones!r}")
    return sorted(_check_positive_int(who, "a milestone", m) for m in milestones)


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: ``lr0 * gamma ** (e // step_size)``."""

    settings = ("step_size", "gamma")
    step_size: int
    gamma: float
    # (each kept in _<name>, which the steps read)
    _step_size: int
    _gamma: float

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self._init_settings(step_size=step_size, gamma=gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_positive_int("StepLR", name, value) if name == "step_size" else _check_gamma("StepLR", value)

    def lr_at(self, epoch: int) -> float:
        return _scaled("StepLR", self._base_lr, self._gamma, epoch // self._step_size)

    def extra_repr(self) -> str:
        return f"step_size={self.step_size}, gamma={self.gamma}"


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch: ``lr0 * gamma ** #{m <= e}``."""

    settings = ("milestones", "gamma")
    milestones: list[int]
    gamma: float
    # (each kept in _<name>, which the steps read)
    _milestones: list[int]
    _gamma: float

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self._init_settings(milestones=milestones, gamma=gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "milestones":
            return _check_milestones("MultiStepLR", value)
        return _check_gamma("MultiStepLR", value)

    def lr_at(self, epoch: int) -> float:
        return _scaled("MultiStepLR", self._base_lr, self._gamma, sum(1 for m in self._milestones if m <= epoch))

    def extra_repr(self) -> str:
        return f"milestones={self.milestones}, gamma={self.gamma}"


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``lr0 * gamma ** e``."""

    settings = ("gamma",)
    gamma: float
    # (each kept in _<name>, which the steps read)
    _gamma: float

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self._init_settings(gamma=gamma)

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_gamma("ExponentialLR", value)

    def lr_at(self, epoch: int) -> float:
        return _scaled("ExponentialLR", self._base_lr, self._gamma, epoch)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``lr0`` down to ``eta_min`` over ``T_max`` epochs (SGDR without restarts)::

        lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * e / T_max)) / 2

    This is PyTorch's closed form; past ``T_max`` it climbs back up along the same cosine.
    """

    settings = ("T_max", "eta_min")
    T_max: int
    eta_min: float
    # (each kept in _<name>, which the steps read)
    _T_max: int
    _eta_min: float

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self._init_settings(T_max=T_max, eta_min=eta_min)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "T_max":
            return _check_positive_int("CosineAnnealingLR", "T_max", value)
        if not (is_number(value) and is_finite(value) and value >= 0):
            raise ValueError(f"CosineAnnealingLR: eta_min must be a finite number >= 0, got {value!r}")
        return float(value)

    def lr_at(self, epoch: int) -> float:
        eta_min = self._eta_min
        cos = (1 + math.cos(math.pi * epoch / self._T_max)) / 2
        return eta_min + (self._base_lr - eta_min) * cos

    def extra_repr(self) -> str:
        return f"T_max={self.T_max}, eta_min={self.eta_min}"


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter), as PyTorch's ``CosineAnnealingWarmRestarts``: the cosine of
    :class:`CosineAnnealingLR` over ``T_0`` epochs, then again from ``lr0`` (a warm restart) over
    ``T_0 * T_mult`` epochs, then ``T_0 * T_mult**2``, ...::

        lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    with ``T_i`` the length of the current cycle and ``T_cur`` the epochs since it began.  Often
    stepped per batch (``fit(..., scheduler_interval="batch")``); ``T_0`` then counts batches.  Or per
    batch as PyTorch's SGDR recipe does, with a fractional epoch: ``scheduler.step(epoch + i / iters)``
    (see :meth:`step`).
    """

    settings = ("T_0", "T_mult", "eta_min")
    run_state = ("epoch_fraction",)
    later_run_state = MappingProxyType({"epoch_fraction": 0.0})
    #: The fractional part of the last epoch given to :meth:`step` (``last_epoch`` holds its whole part, as
    #: PyTorch's), so that a :meth:`step` without an epoch goes on one epoch from there (PyTorch's
    #: ``T_cur + 1``); 0 otherwise.  Saved with the state when not 0.
    epoch_fraction: float = 0.0
    T_0: int
    T_mult: int
    eta_min: float
    # (each kept in _<name>, which the steps read)
    _T_0: int
    _T_mult: int
    _eta_min: float

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self._init_settings(T_0=T_0, T_mult=T_mult, eta_min=eta_min)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name in ("T_0", "T_mult"):
            return _check_positive_int("CosineAnnealingWarmRestarts", name, value)
        if not (is_number(value) and is_finite(value) and value >= 0):
            raise ValueError(f"CosineAnnealingWarmRestarts: eta_min must be a finite number >= 0, got {value!r}")
        return float(value)

    def cycle(self, epoch: float) -> tuple[float, int]:
        """``(T_cur, T_i)`` after ``epoch`` epochs (fractional too): the epochs into the current cycle and its
        length."""
        T_0, T_mult = self._T_0, self._T_mult
        if T_mult == 1:
            return epoch % T_0, T_0
        # cycles end at T_0 * (T_mult**n - 1) / (T_mult - 1): whole numbers, so no rounding of a logarithm
        start, length = 0, T_0
        while epoch >= start + length:
            start, length = start + length, length * T_mult
        return epoch - start, length

    def lr_at(self, epoch: float) -> float:
        T_cur, T_i = self.cycle(epoch)
        eta_min = self._eta_min
        return eta_min + (self._base_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2

    def step(self, epoch: float | None = None) -> float:
        """Without ``epoch``: one epoch (or batch) more, as every schedule's :meth:`LRScheduler.step`.  With it,
        PyTorch's ``step(epoch)``: the lr at ``epoch``, a number >= 0, fractional for SGDR stepped per batch
        (``scheduler.step(epoch + i / iters)`` for batch ``i`` of ``iters``), with ``T_cur`` and ``T_i`` computed
        from it as PyTorch does; ``last_epoch`` becomes its whole part (PyTorch's ``floor(epoch)``) and
        :attr:`epoch_fraction` the rest, and a later ``step()`` goes on one epoch from ``epoch``.  Returns the
        lr; a refused step (the lr changed by another hand, a bad epoch) changes nothing."""
        if epoch is None and not self.epoch_fraction:
            return super().step()
        if epoch is not None and not is_number(epoch):
            raise TypeError(f"CosineAnnealingWarmRestarts.step: epoch must be None or a number >= 0 (the epochs "
                            f"done, fractional for a step per batch: step(epoch + i / iters)), got "
                            f"{type(epoch).__name__} {epoch!r}")
        if epoch is not None and not (is_finite(epoch) and 0 <= epoch <= _MAX_EPOCH):
            raise ValueError(f"CosineAnnealingWarmRestarts.step: epoch must be a finite number >= 0 (at most "
                             f"2**53), got {epoch!r}")
        self._check_can_step()
        target = self.last_epoch + 1 + self.epoch_fraction if epoch is None else float(epoch)
        self._write_lr(self.lr_at(target))  # (refused by the optimizer: nothing changed)
        whole = math.floor(target)
        self.last_epoch, self.epoch_fraction = whole, target - whole
        return self._optimizer.lr

    def _check_run_state(self, name: str, value: Any, settings: Mapping[str, Any]) -> Any:
        if not (is_number(value) and is_finite(value) and 0 <= value < 1):
            raise ValueError(f"expected a number in [0, 1), got {value!r}")
        return float(value)

    def extra_repr(self) -> str:
        return f"T_0={self.T_0}, T_mult={self.T_mult}, eta_min={self.eta_min}"

    def progress_repr(self) -> str:
        """``"at epoch 3"``, or with the fraction a ``step(epoch)`` left, ``"at epoch 3.5"``."""
        if self.epoch_fraction:
            return f"at epoch {self.last_epoch + self.epoch_fraction}"
        return super().progress_repr()


class LinearLR(LRScheduler):
    """Scale the lr linearly from ``start_factor * lr0`` to ``end_factor * lr0`` over ``total_iters``
    epochs, then keep it there, as PyTorch's ``LinearLR`` (a warm-up with the defaults' shape)::

        lr = lr0 * (start_factor + (end_factor - start_factor) * min(e, total_iters) / total_iters)

    Unlike the other schedules its first epoch does not run at ``lr0``: the constructor sets the
    optimizer's lr to ``start_factor * lr0`` at once, as PyTorch does.  (A schedule made after it on
    the same optimizer would take that as its ``lr0``: chain them with :class:`SequentialLR`.)
    """

    settings = ("start_factor", "end_factor", "total_iters")
    start_factor: float
    end_factor: float
    total_iters: int
    # (each kept in _<name>, which the steps read)
    _start_factor: float
    _end_factor: float
    _total_iters: int

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        super().__init__(optimizer)
        self._init_settings(start_factor=start_factor, end_factor=end_factor, total_iters=total_iters)
        self._write_lr(self.lr_at(0))

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "total_iters":
            return _check_positive_int("LinearLR", name, value)
        low_open = name == "start_factor"  # as PyTorch: start_factor in (0, 1], end_factor in [0, 1]
        if not (is_number(value) and (value > 0 if low_open else value >= 0) and value <= 1):
            raise ValueError(f"LinearLR: {name} must be a number in {'(' if low_open else '['}0, 1], got {value!r}")
        return float(value)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As every schedule's, then the optimizer's lr for the loaded epoch: the constructor lowered it
        to epoch 0's, which an optimizer state loaded before would otherwise not undo."""
        self._load_and_set_lr(state)

    def lr_at(self, epoch: int) -> float:
        total, start = self._total_iters, self._start_factor
        return self._base_lr * (start + (self._end_factor - start) * (min(epoch, total) / total))

    def extra_repr(self) -> str:
        return f"start_factor={self.start_factor}, end_factor={self.end_factor}, total_iters={self.total_iters}"


class _OfSchedules(LRScheduler):
    """Base of the schedules made of schedules, :class:`SequentialLR` and :class:`ChainedScheduler`: they
    hold ``schedulers``, all started from one ``lr0`` (:meth:`_lr0`), saved and loaded with their own state,
    and stepped by it alone, which sets their counts as PyTorch's container steps them (before the lr is
    computed, as the count is, and put back if the step fails; :meth:`_all_counts_at`).  A subclass checks its
    schedules, then calls :meth:`_start`."""

    records_initial_lr = False  # (they read it: _start)
    _schedulers: list[LRScheduler]

    @property
    def schedulers(self) -> tuple[LRScheduler, ...]:
        """The schedules, in order (fixed when made: a tuple, not the list given)."""
        return tuple(self._schedulers)

    @schedulers.setter
    def schedulers(self, value: Any) -> None:
        name = type(self).__name__
        raise AttributeError(f"{name}: the schedules cannot be replaced (they belong to this {name}, which started "
                             f"them from one lr0 and steps them): make a new {name} of new schedules")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """As every schedule's; the schedules of one pickled before they knew their container know it, and
        count as it counts (they were left at 0)."""
        super().__setstate__(state)
        earlier = [s for s in self._schedulers if s._part_of is not None and s._owner is None]
        for s in earlier:
            s._owner = self
        if earlier:
            self._sync_counts()

    def _all_counts_at(self, epoch: int) -> list[int]:
        """Every schedule's count when this one has taken ``epoch`` steps: a subclass's."""
        raise NotImplementedError

    def _sync_counts(self) -> None:
        """Every schedule's count as this one's count makes it (made, loaded, milestones changed)."""
        for s, count in zip(self._schedulers, self._all_counts_at(self.last_epoch), strict=True):
            s.last_epoch = count

    def _check_current(self) -> None:
        """As every schedule's, and each schedule's own lr at its own count (a schedule's load computes it)."""
        super()._check_current()
        for s in self._schedulers:
            s._check_current()

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's; a new ``base_lr`` is every schedule's ``lr0``, as when made."""
        super()._set(name, value)
        if name == "base_lr":
            for s in self._schedulers:
                s._base_lr = self._base_lr

    def _note_part(self, error: BaseException, i: int, epoch: int) -> None:
        """What schedule ``i`` raised, computing its part of this one's lr after ``epoch`` steps, gets a note
        naming this schedule, the part and the count (Python 3.11+; once)."""
        name = type(self).__name__
        taken = self.last_epoch - 1 if self._stepping else self.last_epoch
        _add_note_once(error, f"(in {name}'s schedule {i} ({type(self._schedulers[i]).__name__}), computing the lr "
                              f"after {epoch} step(s); the {name} had taken {taken} step(s))")

    def _listed(self, schedulers: Any) -> list[LRScheduler]:
        """``schedulers`` as a list, not empty (the items are the subclass's to check)."""
        name = type(self).__name__
        if isinstance(schedulers, (str, bytes, Mapping)) or not isinstance(schedulers, Iterable):
            raise TypeError(f"{name}: schedulers must be a list of schedules, got {type(schedulers).__name__}")
        listed = list(schedulers)
        if not listed:
            raise ValueError(f"{name}: needs at least one schedule")
        return listed

    def _check_distinct(self, schedulers: list[LRScheduler]) -> None:
        if len({id(s) for s in schedulers}) != len(schedulers):
            raise ValueError(f"{type(self).__name__}: a schedule is listed twice; each keeps its own settings, "
                             f"give two")

    def _lr0(self, schedulers: list[LRScheduler]) -> float:
        """The ``lr0`` every schedule starts from: PyTorch's ``initial_lr`` (or, cleared by the user since the
        schedules were made, the largest lr they found)."""
        initial_lr = self._optimizer.initial_lr
        return initial_lr if initial_lr is not None else max(s.base_lr for s in schedulers)

    def _check_schedule_settings(self, i: int, schedule: LRScheduler) -> None:
        """A ``ValueError`` when ``schedule``'s settings are ones this container refuses (checked when made and
        on every load); none here."""

    def _check_free(self, i: int, schedule: LRScheduler) -> None:
        """A ``ValueError`` when ``schedule`` belongs to a container already."""
        if schedule._part_of is not None:
            raise ValueError(f"{type(self).__name__}: schedule {i} ({type(schedule).__name__}) belongs to a "
                             f"{schedule._part_of} already, which steps it: give new schedules")

    def _start(self, schedulers: list[LRScheduler]) -> None:
        """Start every schedule from :meth:`_lr0` (recorded as the optimizer's ``initial_lr`` when it has
        none, as a first schedule records it), set the optimizer's lr for epoch 0 and make the schedules
        this one's (their own ``step`` refused from then on); a refusal, by a schedule or the optimizer,
        changes nothing."""
        optimizer = self._optimizer
        lr0 = self._lr0(schedulers)  # (an initial_lr, or a base_lr: checked already)
        trial = [copy.copy(s) for s in schedulers]  # the values first: a refusal changes nothing
        self._schedulers = trial
        for t, count in zip(trial, self._all_counts_at(0), strict=True):
            t._base_lr, t.last_epoch = lr0, count
        self._base_lr = lr0
        lr = self.lr_at(0)
        initial_lr = optimizer.initial_lr
        if initial_lr is None:
            optimizer.initial_lr = lr0
        try:
            self._write_lr(lr)  # (refused by the optimizer: raises before any schedule changed)
        except BaseException:
            optimizer.initial_lr = initial_lr
            raise
        for s in schedulers:
            s._base_lr, s._part_of, s._owner = lr0, type(self).__name__, self
        self._schedulers = schedulers
        self._sync_counts()

    def state_dict(self) -> dict[str, Any]:
        """The base state, the settings, and each schedule's own state (``"schedulers"``)."""
        state = super().state_dict()
        state["schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore this schedule and every schedule in it, and set the optimizer's lr for the loaded
        epoch (so the order of loading the optimizer and building the schedules does not matter);
        or refuse, changing nothing."""
        name = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict expects a mapping, got {type(state).__name__}")
        refused = f"{name}.load_state_dict refused the state (nothing was changed): "
        if state.get("type") != name:
            raise StateDictError(f"{refused}state is for {state.get('type')!r}, not {name!r}")
        keys = {"type", "base_lr", "last_epoch", *self.settings, "schedulers"}
        unknown = sorted(map(str, set(state) - keys))
        if unknown:
            raise StateDictError(f"{refused}unexpected keys {unknown} ({name} keeps {sorted(keys)})")
        children = state.get("schedulers")
        if not isinstance(children, (list, tuple)) or len(children) != len(self._schedulers):
            got = f"{len(children)}" if isinstance(children, (list, tuple)) else f"{type(children).__name__}"
            raise StateDictError(f"{refused}'schedulers': expected a list of {len(self._schedulers)} schedule "
                                 f"states, got {got}")
        trial = copy.copy(self)  # the whole state on copies first (children are flat: shallow copies do)
        trial._schedulers = [copy.copy(s) for s in self._schedulers]
        optimizer = self._optimizer
        lr_before = optimizer.lr  # (a LinearLR's load sets it: put back whatever the trial did)
        try:
            for i, (s, child) in enumerate(zip(trial._schedulers, children, strict=True)):
                try:
                    s.load_state_dict(child)
                except (StateDictError, TypeError) as error:
                    raise StateDictError(f"{refused}schedule {i}: {error}") from None
                try:  # the settings this container's constructor refuses are refused here too
                    self._check_schedule_settings(i, s)
                except ValueError as error:
                    raise StateDictError(f"{refused}{error}") from None
            LRScheduler.load_state_dict(trial, {k: v for k, v in state.items() if k != "schedulers"})
            trial._sync_counts()
            try:
                lr = trial.lr_at(trial.last_epoch)
                optimizer.lr = lr  # (checked by the optimizer now; the finally puts the lr back)
            except Exception as error:  # an overflowing lr, a function refusing or failing, a negative lr
                # the optimizer refuses
                raise StateDictError(f"{refused}the lr at the loaded epoch: {type(error).__name__}: {error}") \
                    from error
        finally:
            optimizer.lr = lr_before
        for s, child in zip(self._schedulers, children, strict=True):
            s.load_state_dict(child)
        LRScheduler.load_state_dict(self, {k: v for k, v in state.items() if k != "schedulers"})
        self._sync_counts()  # (a state saved before the counts followed, or edited: the count is this one's)
        self._write_lr(lr)


class SequentialLR(_OfSchedules):
    """One schedule after another, as PyTorch's ``SequentialLR``: ``schedulers[i]`` sets the lr from
    epoch ``milestones[i - 1]`` on (``schedulers[0]`` from epoch 0), counting its own epochs from 0
    there.  A linear warm-up, then a cosine::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        cosine = CosineAnnealingLR(opt, T_max=45)
        schedule = SequentialLR(opt, [warmup, cosine], milestones=[5])

    Every schedule starts from the same ``lr0``, PyTorch's ``initial_lr``: the lr the first schedule made
    on the optimizer found (:attr:`Optimizer.initial_lr`), whichever of them changed it when made
    (``LinearLR``, ``ConstantLR`` and ``LambdaLR`` set epoch 0's lr at once) and in whatever order.  For
    a new training phase whose lr was set by hand, set ``opt.initial_lr = None`` before making its
    schedules (as PyTorch needs ``initial_lr`` deleted from its param group; a :class:`ChainedScheduler`
    goes on from the lr its schedules found instead, as PyTorch's).  The
    constructor sets the optimizer's lr for epoch 0, and so does :meth:`load_state_dict` for the
    loaded epoch.  The schedules must drive this optimizer, have closed forms (not ``ReduceLROnPlateau``,
    nor a ``ChainedScheduler`` or another ``SequentialLR``) and be distinct; a ``MultiplicativeLR`` may
    only come first (after a milestone PyTorch's would go on from the lr the schedule before it left);
    none may belong to another sequence or chain.  They belong to the sequence from then on: their own
    ``step`` is refused (step the sequence), and each one's ``last_epoch`` is its own count, as PyTorch's
    sequence steps it (0 until its milestone, then the epochs since, kept at the next milestone; so a
    ``MultiplicativeLR``'s new ``lr_lambda`` multiplies the lr it reached).  ``milestones``: strictly
    increasing positive epochs, one fewer than the schedules.
    """

    settings = ("milestones",)
    milestones: list[int]
    # (each kept in _<name>, which the steps read)
    _milestones: list[int]

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Iterable[int]) -> None:
        super().__init__(optimizer)
        schedulers = self._listed(schedulers)
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, (ReduceLROnPlateau, _OfSchedules, _CyclesMomentum)):
                raise TypeError(f"SequentialLR: schedule {i} must be an LRScheduler with a closed form of the lr "
                                f"alone (not ReduceLROnPlateau, a ChainedScheduler, a SequentialLR, nor OneCycleLR "
                                f"or CyclicLR, which set the momentum too), got {type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedule {i} ({type(s).__name__}) drives another optimizer")
            if i > 0 and isinstance(s, MultiplicativeLR):
                raise ValueError(f"SequentialLR: schedule {i} is a {type(s).__name__}, which may only come first: "
                                 f"here every schedule starts from lr0 at its milestone, where PyTorch's "
                                 f"MultiplicativeLR would go on from the lr the schedule before it left (times "
                                 f"lr_lambda(0)); a LambdaLR gives any lr0 * factor(e)")
            self._check_free(i, s)
        self._check_distinct(schedulers)
        self._schedulers = schedulers
        self._init_settings(milestones=milestones)
        self._start(schedulers)

    def _check_setting(self, name: str, value: Any) -> Any:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValueError(f"SequentialLR: milestones must be a sequence of positive ints, got {value!r}")
        given = list(value)
        milestones = [_check_positive_int("SequentialLR", "a milestone", m) for m in given]
        if len(milestones) != len(self._schedulers) - 1 or any(a >= b for a, b in itertools.pairwise(milestones)):
            raise ValueError(f"SequentialLR: expected {len(self._schedulers) - 1} strictly increasing milestone(s) "
                             f"for {len(self._schedulers)} schedules, got {given}")
        return milestones

    def _part(self, epoch: int) -> tuple[int, int]:
        """The schedule in use at ``epoch`` (its index: a milestone starts the next one) and that schedule's own
        epoch, counted from 0 at its milestone."""
        milestones = self._milestones
        i = bisect.bisect_right(milestones, epoch)
        return i, epoch - milestones[i - 1] if i else epoch

    def lr_at(self, epoch: int) -> float:
        i, own = self._part(epoch)
        try:
            return self._schedulers[i].lr_at(own)
        except Exception as error:
            self._note_part(error, i, epoch)
            raise

    def step(self) -> float:
        """As every schedule's; the schedule in use counts its own epochs, from 0 at its milestone (as PyTorch's
        sequence steps it; the one before keeps the count it reached), set before its lr is computed and put
        back if the step fails.  (The schedule in use is found once: the lr is :meth:`lr_at`'s, not asked of it.)"""
        self._check_can_step()
        epoch = self.last_epoch + 1
        i, own = self._part(epoch)
        part = self._schedulers[i]
        count = part.last_epoch
        part.last_epoch = own
        self.last_epoch = epoch
        self._stepping = True
        try:
            try:
                lr = part.lr_at(own)
            except Exception as error:
                self._note_part(error, i, epoch)
                raise
            self._write_lr(lr)
        except BaseException:
            self.last_epoch = epoch - 1
            self._stepping = False
            part.last_epoch = count
            raise
        self._stepping = False
        return lr

    def _all_counts_at(self, epoch: int) -> list[int]:
        starts = [0, *self._milestones]
        ends = [*self._milestones, None]
        return [0 if epoch < start else epoch - start if end is None else min(epoch, end - 1) - start
                for start, end in zip(starts, ends, strict=True)]

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's; new milestones set the schedules' counts from this one's."""
        super()._set(name, value)
        if name == "milestones":
            self._sync_counts()

    def extra_repr(self) -> str:
        return f"{[type(s).__name__ for s in self._schedulers]}, milestones={self.milestones}"


def _not_a_factor(schedule: LRScheduler) -> str | None:
    """Why a :class:`ChainedScheduler` refuses ``schedule``'s settings (None: it takes them), when made, on
    every load, and when one of them is set."""
    if isinstance(schedule, CosineAnnealingLR) and schedule.eta_min != 0:
        return (f"with eta_min={schedule.eta_min}: its lr is not lr0 times a factor (PyTorch's chain mixes it with "
                f"the other factors, depending on their order); give eta_min=0, or run it in a SequentialLR")
    return None


def _unchainable(schedule: LRScheduler) -> str | None:
    """Why a :class:`ChainedScheduler` refuses ``schedule`` (None: it takes it).  Refused are the schedules
    that do not multiply the lr by a factor of their own, which PyTorch's chain would not compose."""
    if isinstance(schedule, ReduceLROnPlateau):
        return "which has no closed form (its lr follows the values passed to step; PyTorch's ChainedScheduler " \
               "refuses it too)"
    if isinstance(schedule, ChainedScheduler):
        return "which cannot be nested: list its schedules in this one"
    if isinstance(schedule, SequentialLR):
        return "which cannot be chained (a SequentialLR and a ChainedScheduler do not nest)"
    if isinstance(schedule, _CyclesMomentum):
        return "which sets the momentum too, and its lr from its own settings whatever the schedules before it did"
    if isinstance(schedule, LambdaLR):
        return "which sets lr0 * lr_lambda(e) whatever the schedules before it did (PyTorch's chain would not " \
               "multiply them): chain a MultiplicativeLR, or put every factor in the one function"
    if isinstance(schedule, CosineAnnealingWarmRestarts):
        return "which sets its cosine from lr0 whatever the schedules before it did (PyTorch's chain would not " \
               "multiply them)"
    return None


class ChainedScheduler(_OfSchedules):
    """Schedules applied together, as PyTorch's ``ChainedScheduler``: the lr is ``lr0`` times each
    schedule's factor, ``lr_i(e) / lr0``::

        lr = lr0 * (lr_1(e) / lr0) * (lr_2(e) / lr0) * ...

    e.g. a low start on a decay, ``ChainedScheduler([ConstantLR(opt, 0.1, 20), ExponentialLR(opt, 0.9)])``:
    ``lr0 * 0.1 * 0.9**e`` for ``e < 20``, then ``lr0 * 0.9**e``.  PyTorch's steps each schedule in turn,
    each multiplying the lr it finds; minidl's computes the product in closed form (PyTorch's values to
    round-off).  ``lr0`` is the lr PyTorch's chain builds on: the one the first of its schedules to be made
    found, whatever the order they were made in (each schedule a chain takes keeps or lowers the lr when
    made, so it is the largest of their ``base_lr``), and every schedule starts from it.  That is the
    optimizer's ``initial_lr`` only when the schedules were the first made on it: a chain made for a new
    phase, after another schedule has moved the lr, goes on from the lr it left (or one set by hand
    before the chain's schedules were made), as PyTorch's does.  The chain records ``lr0`` as the
    optimizer's ``initial_lr`` only when it has none (as any first schedule does; a :class:`SequentialLR`
    made later starts from that one, as PyTorch's).  An lr set by hand after the first of the schedules
    was made is not built on (PyTorch's chain multiplies whatever lr it finds): set it before.  The
    constructor sets the optimizer's lr for epoch 0 (the product of the factors at 0: ``ConstantLR``'s
    ``factor``, ``LinearLR``'s ``start_factor``), as do the schedules PyTorch chains; so does
    :meth:`load_state_dict` for the loaded epoch, refusing a state with settings the constructor refuses
    (a cosine's ``eta_min > 0``).  ``optimizer`` defaults to the schedules' (PyTorch's argument order:
    ``ChainedScheduler(schedulers, optimizer=None)``).

    The schedules chained are those whose lr is ``lr0`` times a factor, as PyTorch's chain multiplies
    them: ``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``ConstantLR``, ``LinearLR``, ``PolynomialLR``,
    ``MultiplicativeLR``, ``CosineAnnealingLR`` with ``eta_min=0``, and schedules of your own (their
    factor ``lr_at(e) / base_lr``).  Refused: ``ReduceLROnPlateau`` (as PyTorch), ``LambdaLR`` and
    ``CosineAnnealingWarmRestarts`` (PyTorch's set their own lr whatever came before them in the
    chain), ``OneCycleLR`` and ``CyclicLR`` (the momentum too), a ``SequentialLR`` or ``ChainedScheduler``
    (PyTorch takes a nested chain: list its schedules instead), a ``CosineAnnealingLR`` with
    ``eta_min > 0`` (PyTorch's chain mixes it with the other factors in an order-dependent way), a
    schedule of another optimizer (as PyTorch), one listed twice, one that has already stepped (each
    counts from epoch 0 here, from its own count in PyTorch), one that belongs to another chain or
    sequence.  They belong to the chain from then on: their own ``step`` is refused (step the chain), and
    their counts follow its.  Past ``T_max`` a chained cosine climbs back times the
    other factors; PyTorch's recursive cosine there reaches 0 and restarts without them.
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None) -> None:
        listed = self._listed(schedulers)
        for i, s in enumerate(listed):
            if not isinstance(s, LRScheduler):
                raise TypeError(f"ChainedScheduler: schedule {i} must be an LRScheduler, got {type(s).__name__}")
        super().__init__(listed[0].optimizer if optimizer is None else optimizer)
        for i, s in enumerate(listed):
            reason = _unchainable(s)
            if reason is not None:
                raise TypeError(f"ChainedScheduler: schedule {i} is a {type(s).__name__}, {reason}")
            if s.optimizer is not self.optimizer:
                raise ValueError(f"ChainedScheduler: schedule {i} ({type(s).__name__}) drives another optimizer "
                                 f"than {'the one passed' if optimizer is not None else 'schedule 0'}")
            self._check_schedule_settings(i, s)
            self._check_free(i, s)
            if s.last_epoch != 0:
                raise ValueError(f"ChainedScheduler: schedule {i} ({type(s).__name__}) has stepped {s.last_epoch} "
                                 f"time(s); a chain counts every schedule's epochs from 0: give it schedules that "
                                 f"have not stepped")
        self._check_distinct(listed)
        self._start(listed)

    def _lr0(self, schedulers: list[LRScheduler]) -> float:
        """The lr the first of the schedules to be made found, which PyTorch's chain builds on: the largest
        of their ``base_lr`` (each one found the lr the ones made before it left, and a schedule a chain takes
        keeps or lowers the lr when made)."""
        return max(s.base_lr for s in schedulers)

    def _check_schedule_settings(self, i: int, schedule: LRScheduler) -> None:
        reason = _not_a_factor(schedule)
        if reason is not None:
            raise ValueError(f"ChainedScheduler: schedule {i} is a {type(schedule).__name__} {reason}")

    def step(self) -> float:
        """As every schedule's; the schedules' counts follow the chain's (as PyTorch's chain steps each), set
        before the lr is computed and put back if the step fails, so their states hold it (a
        ``MultiplicativeLR``'s product with it)."""
        self._check_can_step()  # (first: a refused step moves no count)
        parts = self._schedulers
        before = [s.last_epoch for s in parts]
        for s in parts:
            s.last_epoch = self.last_epoch + 1
        try:
            return super().step()
        except BaseException:
            for s, count in zip(parts, before, strict=True):
                s.last_epoch = count
            raise

    def _all_counts_at(self, epoch: int) -> list[int]:
        return [epoch] * len(self._schedulers)

    def lr_at(self, epoch: int) -> float:
        lr = lr0 = self._base_lr
        for i, s in enumerate(self._schedulers):
            try:
                own = s.lr_at(epoch)
            except Exception as error:
                self._note_part(error, i, epoch)
                raise
            base = s._base_lr
            lr *= own / base if base > 0 else 0.0
        if not math.isfinite(lr):
            raise ValueError(f"ChainedScheduler: the lr at epoch {epoch}, {lr0!r} times the factors of "
                             f"{[type(s).__name__ for s in self._schedulers]}, overflows")
        return lr

    def extra_repr(self) -> str:
        return f"{[type(s).__name__ for s in self._schedulers]}"


def _check_bool(who: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{who}: {name} must be a bool, got {value!r}")
    return bool(value)


class _CyclesMomentum(LRScheduler):
    """Base of the schedules that move the optimizer's momentum against the lr (SGD's and RMSprop's
    ``momentum``, the Adam family's ``beta1``): :class:`OneCycleLR` and :class:`CyclicLR`.  A subclass
    gives :meth:`_at` (the lr and the momentum after ``epoch`` steps), holds the settings
    ``cycle_momentum``, ``base_momentum`` and ``max_momentum`` (checked by
    :meth:`_check_momentum_setting`), and may refuse a loaded state in :meth:`_check_loaded`."""

    cycle_momentum: bool
    base_momentum: float
    max_momentum: float
    # (each kept in _<name>, which the steps read)
    _cycle_momentum: bool
    _base_momentum: float
    _max_momentum: float
    _momentum_key: str | None = None

    def _at(self, epoch: int) -> tuple[float, float]:
        """(lr, momentum) after ``epoch`` steps."""
        raise NotImplementedError

    def _check_momentum_setting(self, name: str, value: Any) -> Any:
        who = type(self).__name__
        if name == "cycle_momentum":
            return _check_bool(who, name, value)
        if not (is_number(value) and is_finite(value) and 0 <= value < 1):
            raise ValueError(f"{who}: {name} must be a number in [0, 1), got {value!r}")
        return float(value)

    def _momentum_key_of(self, optimizer: Optimizer) -> str:
        """The optimizer's hyper-parameter the momentum cycles in, or a ``ValueError``."""
        who = type(self).__name__
        key = "beta1" if "beta1" in optimizer.hyper else "momentum" if "momentum" in optimizer.hyper else None
        if key is None:
            raise ValueError(f"{who}: cycle_momentum=True needs an optimizer with a momentum or betas (SGD, "
                             f"RMSprop, the Adam family), not {type(optimizer).__name__}; pass cycle_momentum=False")
        if key == "momentum" and optimizer.hyper.get("nesterov") and min(self.base_momentum, self.max_momentum) <= 0:
            raise ValueError(f"{who}: the optimizer uses Nesterov momentum, which needs momentum > 0; "
                             "give base_momentum and max_momentum > 0")
        return key

    def lr_at(self, epoch: int) -> float:
        return self._at(epoch)[0]

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's; a momentum setting is checked against the optimizer, as when made."""
        super()._set(name, value)
        if name in ("cycle_momentum", "base_momentum", "max_momentum"):
            self._momentum_key = self._momentum_key_of(self._optimizer) if self._cycle_momentum else None

    def _momentum_refused(self, key: str, momentum: float, epoch: int) -> str | None:
        """Why the optimizer's ``key`` cannot be ``momentum`` at step ``epoch`` (None: it can)."""
        nesterov = key == "momentum" and self._optimizer.hyper.get("nesterov")
        if 0 < momentum < 1 if nesterov else 0 <= momentum < 1:
            return None
        return (f"{type(self).__name__}: the {key} at step {epoch} would be {momentum!r}, outside "
                f"{'(0, 1) (Nesterov)' if nesterov else '[0, 1)'}")

    def _check_current(self) -> None:
        """The lr and the momentum at ``last_epoch``."""
        epoch = self.last_epoch
        lr, momentum = self._at(epoch)
        _check_lr_value(type(self).__name__, lr, epoch)
        key = self._momentum_key
        reason = None if key is None else self._momentum_refused(key, momentum, epoch)
        if reason is not None:
            raise ValueError(reason)

    def _set_for(self, epoch: int) -> float:
        """Give the optimizer the lr and momentum after ``epoch`` steps (a refusal changes nothing)."""
        lr, momentum = self._at(epoch)
        key = self._momentum_key
        if key is not None:  # (e.g. CyclicLR's exp_range with gamma > 1 leaves [base, max] momentum)
            hyper = self._optimizer.hyper
            if not (0 <= momentum < 1) or (momentum == 0 and key == "momentum" and hyper.get("nesterov")):
                raise ValueError(f"{self._momentum_refused(key, momentum, epoch)}; nothing was changed")
            self._write_lr(lr)  # checked by the optimizer first: a refusal changes nothing
            hyper[key] = momentum
        else:
            self._write_lr(lr)
        return lr

    def step(self) -> float:
        """Count one more step and set the optimizer's lr and momentum for the next; returns the lr.  As
        every schedule's: the count comes first, and a step the schedule refuses (``ValueError``) changes
        nothing, as when another hand changed the lr (see :meth:`LRScheduler._check_lr_unchanged`)."""
        self._check_can_step()
        epoch = self.last_epoch + 1
        self.last_epoch = epoch
        self._stepping = True
        try:
            lr = self._set_for(epoch)
        except BaseException:
            self.last_epoch = epoch - 1
            self._stepping = False
            raise
        self._stepping = False
        return lr

    def _momentum_repr(self) -> str:
        """The momentum settings, for ``repr``."""
        if not self._cycle_momentum:
            return ", cycle_momentum=False"
        return f", base_momentum={self.base_momentum}, max_momentum={self.max_momentum}"

    def _check_loaded(self) -> None:
        """A ``ValueError`` for a loaded state the schedule cannot run from; none here."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As every schedule's (refused too when :meth:`_check_loaded` refuses), then the optimizer's lr
        and momentum for the loaded step."""
        name = type(self).__name__
        before = dict(self.__dict__)
        super().load_state_dict(state)
        try:
            self._check_loaded()
            self._momentum_key = self._momentum_key_of(self._optimizer) if self._cycle_momentum else None
            self._set_for(self.last_epoch)
        except Exception as error:  # (a ValueError of the settings, or what a CyclicLR's scale_fn raised)
            self.__dict__.clear()
            self.__dict__.update(before)
            said = error if isinstance(error, (ValueError, TypeError)) else f"{type(error).__name__}: {error}"
            raise StateDictError(f"{name}.load_state_dict refused the state (nothing was changed): "
                                 f"{said}") from error


class OneCycleLR(_CyclesMomentum):
    """The 1cycle policy (Smith & Topin), as PyTorch's ``OneCycleLR``: the lr climbs from
    ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of ``total_steps``, then falls
    to ``max_lr / div_factor / final_div_factor``; the momentum (SGD's and RMSprop's ``momentum``,
    the Adam family's ``beta1``) moves the other way, from ``max_momentum`` down to
    ``base_momentum`` and back.  Meant to step every batch: ``fit(..., scheduler_interval="batch")``
    with ``total_steps = epochs * batches per epoch``.

    Each phase runs from step ``s0`` to ``s1`` (``pct_start * total_steps - 1``, then
    ``total_steps - 1``), and at step ``e`` its values go from ``a`` to ``b`` by
    ``p = (e - s0) / (s1 - s0)``::

        cos:     b + (a - b) * (1 + cos(pi * p)) / 2
        linear:  a + (b - a) * p

    ``three_phase=True`` adds a phase: up to ``max_lr``, back down to the initial lr over as many
    steps, then down to the minimum.  The constructor sets the optimizer's lr (and momentum) for
    step 0 at once, as PyTorch does; the optimizer's own lr is not used.  Stepping it more than
    ``total_steps`` times raises ``ValueError`` (``fit`` checks before training); after exactly
    ``total_steps`` steps (the count after the last batch, which trains nothing) the lr is the
    minimum, where PyTorch's formula runs on past it.  With
    ``cycle_momentum=True`` (the default, as PyTorch's) a plain ``SGD(momentum=0)`` gets momentum.
    The length is ``total_steps``, or ``epochs * steps_per_epoch`` (PyTorch's arguments, in its order;
    giving both forms is refused, where PyTorch uses ``total_steps``).
    """

    settings = ("max_lr", "total_steps", "pct_start", "anneal_strategy", "div_factor", "final_div_factor",
                "three_phase", "cycle_momentum", "base_momentum", "max_momentum")

    def __init__(self, optimizer: Optimizer, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        super().__init__(optimizer)
        by_epochs = epochs is not None or steps_per_epoch is not None
        if (total_steps is not None) == by_epochs or (by_epochs and (epochs is None or steps_per_epoch is None)):
            raise ValueError(f"OneCycleLR: give total_steps, or epochs and steps_per_epoch (total_steps = their "
                             f"product), not both; got total_steps={total_steps!r}, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r}")
        if total_steps is None:
            total_steps = _check_positive_int("OneCycleLR", "epochs", epochs) * \
                _check_positive_int("OneCycleLR", "steps_per_epoch", steps_per_epoch)
        self._init_settings(max_lr=max_lr, total_steps=total_steps, pct_start=pct_start,
                            anneal_strategy=anneal_strategy, div_factor=div_factor, final_div_factor=final_div_factor,
                            three_phase=three_phase, cycle_momentum=cycle_momentum, base_momentum=base_momentum,
                            max_momentum=max_momentum)
        self._check_phases(self._phases())
        self._check_ends()
        self._momentum_key = self._momentum_key_of(optimizer) if self.cycle_momentum else None
        self._base_lr = self.max_lr / self.div_factor  # lr0, as PyTorch's initial_lr
        optimizer.initial_lr = self.base_lr  # (PyTorch's OneCycleLR sets it so, whatever it was)
        self._set_for(0)

    # the settings, typed for readers (properties: LRScheduler.__init_subclass__)
    max_lr: float
    total_steps: int
    pct_start: float
    anneal_strategy: str
    div_factor: float
    final_div_factor: float
    three_phase: bool
    # (each kept in _<name>, which the steps read)
    _max_lr: float
    _total_steps: int
    _pct_start: float
    _anneal_strategy: str
    _div_factor: float
    _final_div_factor: float
    _three_phase: bool

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "total_steps":
            return _check_positive_int("OneCycleLR", name, value)
        if name == "anneal_strategy":
            if not (isinstance(value, str) and value in ("cos", "linear")):
                raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {value!r}")
            return str(value)  # (a NumPy str too)
        if name == "three_phase":
            return _check_bool("OneCycleLR", name, value)
        if name in ("cycle_momentum", "base_momentum", "max_momentum"):
            return self._check_momentum_setting(name, value)
        ok = is_number(value) and is_finite(value)
        if name == "pct_start":
            ok = ok and 0 < value < 1
            rule = "a number in (0, 1)"
        else:  # max_lr, div_factor, final_div_factor
            ok = ok and value > 0
            rule = "a finite number > 0"
        if not ok:
            raise ValueError(f"OneCycleLR: {name} must be {rule}, got {value!r}")
        return float(value)

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's: the phases follow the new settings from the next step, and ``base_lr``
        follows ``max_lr / div_factor``; refused are settings that leave a phase without steps (as when
        made), a ``total_steps`` below the steps taken, and a ``base_lr`` of its own."""
        if name == "base_lr":
            raise ValueError("OneCycleLR: base_lr is max_lr / div_factor, where the cycle starts: set max_lr or "
                             "div_factor")
        super()._set(name, value)
        self._base_lr = self.max_lr / self.div_factor
        self._check_phases(self._phases())
        self._check_ends()
        if self.last_epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: total_steps={self.total_steps} is fewer than the {self.last_epoch} steps "
                             f"taken; give total_steps >= {self.last_epoch}, or make a new OneCycleLR")

    def _phases(self) -> list[tuple[float, tuple[float, float], tuple[float, float]]]:
        """Each phase as (its last step, (lr from, to), (momentum from, to))."""
        top, low = self._max_momentum, self._base_momentum
        peak, total = self._max_lr, self._total_steps
        initial = peak / self._div_factor
        least = initial / self._final_div_factor
        rise = self._pct_start * total - 1
        end = total - 1.0
        if self._three_phase:
            return [(rise, (initial, peak), (top, low)), (2 * rise, (peak, initial), (low, top)),
                    (end, (initial, least), (top, top))]
        return [(rise, (initial, peak), (top, low)), (end, (peak, least), (low, top))]

    def _check_ends(self) -> None:
        """The lrs the cycle starts and ends at, ``max_lr / div_factor`` and that over ``final_div_factor``, must
        be finite numbers (an lr an optimizer takes), when made and when set."""
        initial = self.max_lr / self.div_factor
        least = initial / self.final_div_factor
        if not (math.isfinite(initial) and math.isfinite(least)):
            raise ValueError(f"OneCycleLR: with max_lr={self.max_lr!r}, div_factor={self.div_factor!r} and "
                             f"final_div_factor={self.final_div_factor!r} the cycle would start at max_lr / "
                             f"div_factor = {initial!r} and end at {least!r}, which overflow; give a larger "
                             f"div_factor or final_div_factor, or a smaller max_lr")

    def _check_phases(self, phases: list[tuple[float, tuple[float, float], tuple[float, float]]]) -> None:
        start = 0.0
        for i, (last, _, _) in enumerate(phases):
            if not last > start:
                raise ValueError(
                    f"OneCycleLR: with total_steps={self.total_steps}, pct_start={self.pct_start} and "
                    f"three_phase={self.three_phase}, phase {i + 1} of {len(phases)} has no steps (it would end at "
                    f"step {last:g}, starting at {start:g}); give more total_steps or another pct_start")
            start = last

    def _at(self, epoch: int) -> tuple[float, float]:
        """(lr, momentum) after ``epoch`` steps."""
        if epoch > self._total_steps:
            raise ValueError(f"OneCycleLR: stepped {epoch} times, past its total_steps={self._total_steps}")
        start = 0.0
        phases = self._phases()
        for i, (last, (a, b), (ma, mb)) in enumerate(phases):
            if epoch <= last or i == len(phases) - 1:
                # (clipped at 1: the count after the last step, which trains nothing, gets the last phase's
                # end, where PyTorch's formula runs past it, below zero for a linear one)
                p = min((epoch - start) / (last - start), 1.0)
                if self._anneal_strategy == "cos":
                    c = (1 + math.cos(math.pi * p)) / 2
                    return b + (a - b) * c, mb + (ma - mb) * c
                return a + (b - a) * p, ma + (mb - ma) * p
            start = last
        raise AssertionError("unreachable: the last phase takes every step")

    def _check_loaded(self) -> None:
        """Its phases valid, its lrs finite, and its count at most ``total_steps``."""
        self._check_phases(self._phases())
        self._check_ends()
        if self.last_epoch > self.total_steps:
            raise ValueError(f"'last_epoch' {self.last_epoch} is past total_steps={self.total_steps}")

    def extra_repr(self) -> str:
        return (f"max_lr={self.max_lr}, total_steps={self.total_steps}, pct_start={self.pct_start}, "
                f"anneal_strategy={self.anneal_strategy!r}, three_phase={self.three_phase}, "
                f"div_factor={self.div_factor}, final_div_factor={self.final_div_factor}" + self._momentum_repr())


class CyclicLR(_CyclesMomentum):
    """Cyclical learning rates (Smith, 2017), as PyTorch's ``CyclicLR``: the lr climbs from ``base_lr`` to
    ``max_lr`` over ``step_size_up`` steps and falls back over ``step_size_down`` (the same by default),
    again and again; the momentum moves the other way, from ``max_momentum`` to ``base_momentum`` and
    back.  Meant to step every batch: ``fit(..., scheduler_interval="batch")``.  At step ``e``::

        cycle = floor(1 + e / (up + down)),   x = 1 + e / (up + down) - cycle   (where in the cycle)
        f     = x / r  if x <= r  else  (x - 1) / (r - 1),   r = up / (up + down)
        lr    = base_lr + (max_lr - base_lr) * f * scale

    with ``scale`` 1 (``mode="triangular"``), ``1 / 2 ** (cycle - 1)`` (``"triangular2"``: each cycle
    half as high) or ``gamma ** e`` (``"exp_range"``); or, given a function ``scale_fn``, ``scale_fn(cycle)``
    (``scale_mode="cycle"``, the default with one) or ``scale_fn(e)`` (``"iterations"``), and then ``mode``
    and ``gamma`` are not used.  ``scale_fn`` must return a finite number (a 0-d array too).  Without a
    ``scale_fn``, ``scale_mode`` is the mode's own (``"iterations"`` for ``"exp_range"``, else ``"cycle"``):
    giving the other is refused (PyTorch ignores it).  The constructor sets the optimizer's lr to
    ``base_lr`` (and its momentum to ``max_momentum``) at once, as PyTorch does.

    :meth:`state_dict` saves whether there is a ``scale_fn``, not the function (a function cannot be
    written to a checkpoint; PyTorch saves only a callable object's attributes): make the schedule with the
    same function, then load the state (a state saved with a ``scale_fn`` is refused by a schedule without
    one, and the other way round).
    """

    settings = ("max_lr", "step_size_up", "step_size_down", "mode", "gamma", "scale_mode", "has_scale_fn",
                "cycle_momentum", "base_momentum", "max_momentum")
    functions = ("scale_fn",)
    #: Whether ``step_size_down`` was left out (or set to None): it then follows ``step_size_up`` when that is set.
    _down_follows_up = False

    def __init__(self, optimizer: Optimizer, base_lr: float, max_lr: float, step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular", gamma: float = 1.0,
                 scale_fn: Callable[[int], float] | None = None, scale_mode: str | None = None,
                 cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9) -> None:
        before_initial = optimizer.initial_lr if isinstance(optimizer, Optimizer) else None
        super().__init__(optimizer)
        base = finite_non_negative("CyclicLR", "base_lr", base_lr)
        self._init_settings(scale_fn=scale_fn, max_lr=max_lr, step_size_up=step_size_up,
                            step_size_down=step_size_up if step_size_down is None else step_size_down, mode=mode,
                            gamma=gamma, cycle_momentum=cycle_momentum, base_momentum=base_momentum,
                            max_momentum=max_momentum)
        self._scale_mode = self._given_scale_mode(scale_mode)
        self._down_follows_up = step_size_down is None
        self._momentum_key = self._momentum_key_of(optimizer) if self.cycle_momentum else None
        self._base_lr = base
        if before_initial is None:  # (PyTorch's CyclicLR sets the lr to base_lr before recording it)
            optimizer.initial_lr = base
        self._set_for(0)

    # the settings, typed for readers (properties: LRScheduler.__init_subclass__)
    scale_fn: Callable[[int], float] | None
    max_lr: float
    step_size_up: int
    step_size_down: int
    mode: str
    gamma: float
    scale_mode: str
    # (each kept in _<name>, which the steps read)
    _scale_fn: Callable[[int], float] | None
    _max_lr: float
    _step_size_up: int
    _step_size_down: int
    _mode: str
    _gamma: float
    _scale_mode: str

    @staticmethod
    def _mode_scales_by(mode: str) -> str:
        """The ``scale_mode`` of a built-in ``mode``: ``exp_range``'s ``gamma ** e`` counts steps."""
        return "iterations" if mode == "exp_range" else "cycle"

    def _given_scale_mode(self, scale_mode: str | None) -> str:
        """The constructor's ``scale_mode``: checked, and without a ``scale_fn`` the mode's own."""
        own = self._mode_scales_by(self.mode)
        if scale_mode is None:
            return own if self.scale_fn is None else "cycle"
        checked: str = self._check_setting("scale_mode", scale_mode)
        if self.scale_fn is None and checked != own:
            raise ValueError(f"CyclicLR: scale_mode={checked!r} is for a scale_fn, and none was given; "
                             f"mode={self.mode!r} scales by {'the step count' if own == 'iterations' else 'the cycle'}"
                             f" (scale_mode={own!r}): give a scale_fn, or leave scale_mode out")
        return checked

    @property
    def has_scale_fn(self) -> bool:
        """Whether the schedule has a ``scale_fn`` (saved with the state, which the function is not)."""
        return self.scale_fn is not None

    @has_scale_fn.setter
    def has_scale_fn(self, value: bool) -> None:  # (load_state_dict restores it: checked to be this one's)
        if _check_bool("CyclicLR", "has_scale_fn", value) != self.has_scale_fn:
            raise ValueError("CyclicLR: has_scale_fn follows scale_fn; set scale_fn")

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's; ``step_size_down=None`` and ``scale_mode=None`` are the constructor's defaults
        (``step_size_up``; the mode's own, or ``"cycle"`` with a ``scale_fn``).  A ``step_size_down`` left out
        (or set to None) follows ``step_size_up`` when that is set, as without a ``scale_fn`` the scale follows
        the mode: a ``scale_mode`` that contradicts it is refused, as when made."""
        follows = self._down_follows_up
        if name == "step_size_down":
            follows = value is None
            if follows:
                value = self.step_size_up
        if name == "scale_mode":
            value = self._given_scale_mode(value)
        had_fn = self.scale_fn is not None
        super()._set(name, value)
        self._down_follows_up = follows
        if follows:
            self._step_size_down = self._step_size_up
        if self.scale_fn is None:
            self._scale_mode = self._mode_scales_by(self.mode)
        elif not had_fn:  # a scale_fn where there was none: by the cycle, as the constructor's default
            self._scale_mode = "cycle"

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "scale_fn":
            if value is not None and not callable(value):
                raise TypeError(f"CyclicLR: scale_fn must be a function of the cycle (or step) count returning a "
                                f"number, or None, got {value!r}")
            return value
        if name in ("step_size_up", "step_size_down"):
            return _check_positive_int("CyclicLR", name, value)
        if name == "mode":
            if not (isinstance(value, str) and value in ("triangular", "triangular2", "exp_range")):
                raise ValueError(f"CyclicLR: mode must be 'triangular', 'triangular2' or 'exp_range', got {value!r}")
            return str(value)  # (a NumPy str too)
        if name == "scale_mode":
            if not (isinstance(value, str) and value in ("cycle", "iterations")):
                raise ValueError(f"CyclicLR: scale_mode must be 'cycle' or 'iterations', got {value!r}")
            return str(value)
        if name == "has_scale_fn":
            saved = _check_bool("CyclicLR", name, value)
            if saved and self.scale_fn is None:
                raise ValueError("the state was saved by a CyclicLR with a scale_fn, and this one has none (a "
                                 "function is not saved): make the schedule with the same scale_fn, then load")
            if not saved and self.scale_fn is not None:
                raise ValueError("the state was saved by a CyclicLR without a scale_fn, and this one has one: make "
                                 "the schedule without it (mode= as saved), then load")
            return saved
        if name in ("cycle_momentum", "base_momentum", "max_momentum"):
            return self._check_momentum_setting(name, value)
        if name == "gamma":
            return _check_gamma("CyclicLR", value)
        return finite_non_negative("CyclicLR", name, value)  # max_lr

    def _check_loaded(self) -> None:
        """Without a ``scale_fn`` the scale follows the loaded mode, as PyTorch's load does; a ``step_size_down``
        that followed ``step_size_up`` goes on following it if the loaded ones are equal."""
        if self.scale_fn is None:
            self._scale_mode = self._mode_scales_by(self.mode)
        if self.step_size_down != self.step_size_up:
            self._down_follows_up = False

    def _scale(self, cycle: int, epoch: int) -> float:
        """The height of the cycle ``cycle`` at step ``epoch``: the mode's, or ``scale_fn``'s (checked)."""
        scale_fn = self._scale_fn
        if scale_fn is not None:
            x = cycle if self._scale_mode == "cycle" else epoch
            try:
                scale = scale_fn(x)
            except Exception as error:
                self._note(error, "scale_fn", x, epoch)
                raise
            if isinstance(scale, np.ndarray) and scale.ndim == 0:  # e.g. np.where(x < 3, ...)
                scale = scale[()]
            if not is_number(scale):
                raise TypeError(f"CyclicLR: scale_fn({x}) returned {scale!r}; expected a number")
            if not is_finite(scale):
                raise ValueError(f"CyclicLR: scale_fn({x}) returned {scale!r}; expected a finite number")
            return float(scale)
        mode = self._mode
        if mode == "triangular":
            return 1.0
        if mode == "triangular2":
            return 0.5 ** (cycle - 1)  # (1 / 2.0 ** (cycle - 1) would overflow after 1024 cycles)
        gamma = self._gamma
        try:
            scale = gamma**epoch
        except OverflowError:
            raise ValueError(f"CyclicLR: gamma ** {epoch} = {gamma!r} ** {epoch} overflows") from None
        if not math.isfinite(scale):
            raise ValueError(f"CyclicLR: gamma ** {epoch} = {gamma!r} ** {epoch} overflows")
        return scale

    def _at(self, epoch: int) -> tuple[float, float]:
        up = self._step_size_up
        total = up + self._step_size_down
        ratio = up / total
        cycle = math.floor(1 + epoch / total)
        x = 1.0 + epoch / total - cycle
        f = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        scale = self._scale(cycle, epoch)
        base, top = self._base_lr, self._max_momentum
        lr = base + (self._max_lr - base) * f * scale
        momentum = top - (top - self._base_momentum) * f * scale
        if not (math.isfinite(lr) and math.isfinite(momentum)):  # (a huge scale_fn value)
            raise ValueError(f"CyclicLR: the lr or momentum at step {epoch} overflows ({lr!r}, {momentum!r})")
        return lr, momentum

    def extra_repr(self) -> str:
        if self.scale_fn is not None:
            shape = (f"scale_fn={getattr(self.scale_fn, '__name__', repr(self.scale_fn))}, "
                     f"scale_mode={self.scale_mode!r}")
        else:
            shape = f"mode={self.mode!r}" + (f", gamma={self.gamma}" if self.mode == "exp_range" else "")
        return (f"base_lr={self.base_lr}, max_lr={self.max_lr}, step_size_up={self.step_size_up}, "
                f"step_size_down={self.step_size_down}, {shape}" + self._momentum_repr())


def _times_factor(schedule: LambdaLR | MultiplicativeLR, lr: float, epoch: int, asked: int) -> float:
    """``lr * lr_lambda(epoch)``, for the lr after ``asked`` steps: the function must return a number (a 0-d
    array too, e.g. ``np.where``'s), finite and >= 0 (a ``TypeError`` or ``ValueError`` naming the schedule
    otherwise), and the product must not overflow (a ``ValueError``)."""
    try:
        factor = schedule._lr_lambda(epoch)
    except Exception as error:
        schedule._note(error, "lr_lambda", epoch, asked)
        raise
    if isinstance(factor, np.ndarray) and factor.ndim == 0:  # e.g. np.where(e < 5, ..., ...)
        factor = factor[()]
    if not is_number(factor):
        raise TypeError(f"{type(schedule).__name__}: lr_lambda({epoch}) returned {factor!r}; expected a number")
    if not (is_finite(factor) and factor >= 0):
        raise ValueError(f"{type(schedule).__name__}: lr_lambda({epoch}) returned {factor!r}; expected a finite "
                         f"number >= 0")
    product = lr * float(factor)
    if not math.isfinite(product):
        raise ValueError(f"{type(schedule).__name__}: the lr {lr!r} * lr_lambda({epoch}) = {lr!r} * {factor!r} "
                         f"overflows")
    return product


def _check_lr_lambda(who: str, value: Any) -> Any:
    if not callable(value):
        raise TypeError(f"{who}: lr_lambda must be a function of the epoch count, got {value!r}")
    return value


class LambdaLR(LRScheduler):
    """``lr0 * lr_lambda(e)``, as PyTorch's ``LambdaLR``: a schedule of your own, e.g. a warm-up
    ``LambdaLR(opt, lambda e: min(1.0, (e + 1) / 5))``.  ``lr_lambda(e)`` must return a finite number
    >= 0 (a ``ValueError`` naming the schedule otherwise, and the step changes nothing).

    The constructor sets the optimizer's lr to ``lr0 * lr_lambda(0)`` at once, as PyTorch does.  The
    function is not saved by :meth:`state_dict` (a function cannot be written to a checkpoint; PyTorch
    saves it only when it is an object with attributes): make the schedule with the same function,
    then load the state.
    """

    functions = ("lr_lambda",)
    lr_lambda: Callable[[int], float]
    _lr_lambda: Callable[[int], float]

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        super().__init__(optimizer)
        self._init_settings(lr_lambda=lr_lambda)
        self._write_lr(self.lr_at(0))

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_lr_lambda(type(self).__name__, value)

    def lr_at(self, epoch: int) -> float:
        return _times_factor(self, self._base_lr, epoch, epoch)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As every schedule's, then the optimizer's lr for the loaded epoch (the constructor set epoch 0's)."""
        self._load_and_set_lr(state)

    def extra_repr(self) -> str:
        return f"lr_lambda={getattr(self.lr_lambda, '__name__', repr(self.lr_lambda))}"


class MultiplicativeLR(LRScheduler):
    """Multiply the lr by ``lr_lambda(e)`` at the ``e``-th step, as PyTorch's ``MultiplicativeLR``: after
    ``e`` steps the lr is ``lr0 * f(1) * f(2) * ... * f(e)``, multiplied in that order (PyTorch's values
    bit for bit).  ``lr_lambda(0)`` is never called: the constructor leaves the lr as it is.  Each
    ``lr_lambda(e)`` must return a finite number >= 0 (a 0-d array too); a bad value, or an lr that
    would overflow, is refused and the step changes nothing.

    Products are kept, so a step multiplies once (no ``e`` calls per step), whatever :meth:`lr_at` was
    asked before (a plot of the schedule): :meth:`lr_at` goes on from the nearest product kept at or
    before the epoch asked (the farthest reached, the latest asked, those at ``last_epoch`` and the
    next), else from ``lr0``.  The state holds the product at ``last_epoch`` (``last_lr``): a resumed
    schedule goes on from it without calling the function for the epochs before, as PyTorch's goes on
    from the optimizer's lr (asked for an earlier epoch, it multiplies again from ``lr0``).  The
    function itself is not saved (as :class:`LambdaLR`'s): make the schedule with the same function,
    then load the state.  Unlike PyTorch's, it does not build on an lr set by another hand (see
    :meth:`LRScheduler.step`); chain it with other schedules in a :class:`ChainedScheduler`.
    """

    run_state = ("last_lr",)
    functions = ("lr_lambda",)
    lr_lambda: Callable[[int], float]
    _lr_lambda: Callable[[int], float]

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        super().__init__(optimizer)
        self._init_settings(lr_lambda=lr_lambda)
        # the products kept, (epoch, lr) pairs: (the lr0 they start from, the loaded one (its epoch on, the
        # products go on from it; never dropped), the others).  Tuples, replaced, never changed in place: a
        # copy (a container's trial copies) shares them safely.
        self._products: tuple[float, tuple[tuple[int, float], ...], tuple[tuple[int, float], ...]] = \
            (self.base_lr, (), ())

    def lr_at(self, epoch: int) -> float:
        lr0, loaded, kept = self._products
        if lr0 != self._base_lr:  # a new lr0 (given by a SequentialLR or ChainedScheduler): from the start
            lr0, loaded, kept = self._base_lr, (), ()
        known = dict((*kept, *loaded))
        start = max((e for e in known if e <= epoch), default=None)
        reached, lr = (0, lr0) if start is None else (start, known[start])
        run = (self.last_epoch, self.last_epoch + 1)  # (what its next step, or its chain's, goes on from)
        new = {}
        try:
            while reached < epoch:
                lr = _times_factor(self, lr, reached + 1, epoch)
                reached += 1
                if reached in run:
                    new[reached] = lr
        finally:  # (a refusal on the way keeps what was reached)
            if reached > 0 and reached not in known:
                new[reached] = lr
            known.update(new)
            loaded_epochs = {e for e, _ in loaded}
            keep = {max(known, default=0), reached, *run} - loaded_epochs  # the farthest, the latest, the run's
            self._products = (lr0, loaded, tuple((e, known[e]) for e in sorted(keep) if e in known))
        return lr

    @property
    def last_lr(self) -> float:
        """The lr after ``last_epoch`` steps (saved with the state)."""
        return self.lr_at(self.last_epoch)

    @last_lr.setter
    def last_lr(self, lr: float) -> None:
        # (set by load_state_dict after base_lr and last_epoch: the product it goes on from)
        self._products = (self._base_lr, ((self.last_epoch, lr),), ())

    def _check_run_state(self, name: str, value: Any, settings: Mapping[str, Any]) -> Any:
        return finite_non_negative("MultiplicativeLR", name, value)  # last_lr

    def _check_setting(self, name: str, value: Any) -> Any:
        return _check_lr_lambda(type(self).__name__, value)

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's; a new ``lr_lambda`` multiplies the lr reached so far from the next step on (as
        PyTorch's, and as this schedule made with it and loaded with the state would)."""
        if name != "lr_lambda":
            super()._set(name, value)
            return
        try:
            anchor: tuple[tuple[int, float], ...] = ((self.last_epoch, self.last_lr),)
        except Exception:  # (not kept, and the function it was reached with fails: the new one from lr0)
            anchor = ()
        super()._set(name, value)
        self._products = (self.base_lr, anchor, ())

    def extra_repr(self) -> str:
        return f"lr_lambda={getattr(self.lr_lambda, '__name__', repr(self.lr_lambda))}"


class ConstantLR(LRScheduler):
    """``lr0 * factor`` for the first ``total_iters`` epochs, then ``lr0``, as PyTorch's ``ConstantLR``
    (a low start).  The constructor sets the optimizer's lr to ``lr0 * factor`` at once, as PyTorch does.
    With ``total_iters=0`` the lr is ``lr0`` throughout, as PyTorch's closed form says; its stepped form
    keeps ``lr0 * factor`` for ever then (probed on 2.13), which is not what the schedule describes.
    """

    settings = ("factor", "total_iters")
    factor: float
    total_iters: int
    # (each kept in _<name>, which the steps read)
    _factor: float
    _total_iters: int

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5) -> None:
        super().__init__(optimizer)
        self._init_settings(factor=factor, total_iters=total_iters)
        self._write_lr(self.lr_at(0))

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "total_iters":
            return _check_count("ConstantLR", name, value)
        if not (is_number(value) and 0 <= value <= 1):  # as PyTorch
            raise ValueError(f"ConstantLR: factor must be a number in [0, 1], got {value!r}")
        return float(value)

    def lr_at(self, epoch: int) -> float:
        return self._base_lr * self._factor if epoch < self._total_iters else self._base_lr

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As every schedule's, then the optimizer's lr for the loaded epoch (the constructor set epoch 0's)."""
        self._load_and_set_lr(state)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, total_iters={self.total_iters}"


class PolynomialLR(LRScheduler):
    """The lr falls to 0 along a polynomial over ``total_iters`` epochs and stays there, as PyTorch's
    ``PolynomialLR``: ``lr0 * (1 - min(e, total_iters) / total_iters) ** power`` (``power=1``: a line)."""

    settings = ("total_iters", "power")
    total_iters: int
    power: float
    # (each kept in _<name>, which the steps read)
    _total_iters: int
    _power: float

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0) -> None:
        super().__init__(optimizer)
        self._init_settings(total_iters=total_iters, power=power)

    def _check_setting(self, name: str, value: Any) -> Any:
        if name == "total_iters":
            return _check_positive_int("PolynomialLR", name, value)
        return finite_non_negative("PolynomialLR", name, value)  # (a negative power: 1 / 0 at the end)

    def lr_at(self, epoch: int) -> float:
        total = self._total_iters
        return self._base_lr * (1.0 - min(total, epoch) / total) ** self._power

    def extra_repr(self) -> str:
        return f"total_iters={self.total_iters}, power={self.power}"


def _check_count(who: str, name: str, value: Any) -> int:
    """A Python or NumPy int in [0, 2**53], as a Python int."""
    if not (is_integer(value) and 0 <= value <= _MAX_EPOCH):
        raise ValueError(f"{who}: {name} must be an int >= 0, got {value!r}")
    return int(value)


def _auto_mode(monitor: Any) -> str:
    """``mode="auto"``: as EarlyStopping's (and Keras 3's), the direction of the loss, a name ending in ``loss`` or a
    built-in metric; ``"auto"`` for any other monitor, which ``fit`` decides from its metrics or refuses."""
    from .early_stopping import auto_mode

    return auto_mode("ReduceLROnPlateau", monitor)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a monitored value has stopped improving, as PyTorch's.

    Call :meth:`step` with the value after each epoch (``fit(..., scheduler=...)`` passes
    ``history[monitor]``'s new entry).  A value is better than the best so far when it is below
    ``best * (1 - threshold)`` (``threshold_mode="rel"``) or ``best - threshold`` (``"abs"``) in
    ``mode="min"``; above ``best * (1 + threshold)`` or ``best + threshold`` in ``mode="max"``.  NaN is
    never better.  After more than ``patience`` epochs in a row that are not better, the lr becomes
    ``max(lr * factor, min_lr)`` (kept as is unless that lowers it by more than ``eps``), and the
    next ``cooldown`` epochs count no bad epochs.

    Args:
        optimizer: the optimizer whose ``lr`` is reduced.
        mode: ``"min"`` (a loss), ``"max"`` (an accuracy) or ``"auto"`` (the default; minidl's addition, as in
            Keras 3, so that ``monitor="val_accuracy"`` cannot cut the lr while accuracy rises): the direction of
            the loss and any name ending in ``loss`` (``"min"``, PyTorch's default) or of a built-in metric
            (``"max"`` for ``"accuracy"``/``"acc"``, ``"min"`` for ``"mse"``, ``"mae"``...), with or without
            ``val_``; for any other ``monitor``, the ``direction`` its :class:`~minidl.training.Metric` declares,
            which only ``fit`` knows: ``mode`` reads ``"auto"`` until a fit decides it (a fit whose metrics do
            not tell, or a ``step`` before, is a ``ValueError`` asking for ``"min"`` or ``"max"``).
        factor: the lr's multiplier on a plateau, in (0, 1).
        patience: epochs without improvement tolerated before reducing (an int >= 0).
        threshold: how much better a value must be to count (finite, >= 0).
        threshold_mode: ``"rel"`` or ``"abs"``, as above.
        cooldown: epochs after a reduction during which bad epochs are not counted (an int >= 0).
        min_lr: the lr is never reduced below this (finite, >= 0; one number: minidl optimizers
            have one lr).
        eps: a reduction smaller than this (or equal) is skipped (finite, >= 0).
        monitor: the history key ``fit`` passes to :meth:`step` (minidl's addition): ``"val_loss"``
            (needs ``validation_data`` or ``validation_split``), ``"loss"``, ``"val_accuracy"``, ...

    Unlike the closed-form schedules, the lr follows the values: :attr:`best`,
    :attr:`num_bad_epochs` and :attr:`cooldown_counter` are saved with the state, and ``step()``
    requires the value.
    """

    records_initial_lr = False  # (as PyTorch's: it has no closed form from an lr0)

    settings = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
                "monitor")
    run_state = ("best", "num_bad_epochs", "cooldown_counter")
    mode: str
    factor: float
    patience: int
    threshold: float
    threshold_mode: str
    cooldown: int
    min_lr: float
    eps: float
    monitor: str
    # (each kept in _<name>, which the steps read)
    _mode: str
    _factor: float
    _patience: int
    _threshold: float
    _threshold_mode: str
    _cooldown: int
    _min_lr: float
    _eps: float
    _monitor: str
    #: Whether ``mode`` was given as ``"auto"`` (it then follows ``monitor`` when that is set before a step).
    _mode_auto = False

    def __init__(self, optimizer: Optimizer, mode: str = "auto", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0,
                 eps: float = 1e-8, *, monitor: str = "val_loss") -> None:
        super().__init__(optimizer)
        self._mode_auto = isinstance(mode, str) and mode == "auto"
        if self._mode_auto:
            mode = _auto_mode(monitor)
        self._init_settings(mode=mode, factor=factor, patience=patience, threshold=threshold,
                            threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps, monitor=monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _check_setting(self, name: str, value: Any) -> Any:
        who = "ReduceLROnPlateau"
        if name in ("mode", "threshold_mode"):
            allowed = ("min", "max") if name == "mode" else ("rel", "abs")
            if name == "mode" and isinstance(value, str) and value == "auto":  # (not decided yet: a saved state)
                return "auto"
            if not (isinstance(value, str) and value in allowed):
                raise ValueError(f"{who}: {name} must be {allowed[0]!r} or {allowed[1]!r}, got {value!r}")
            return str(value)  # (a NumPy str too)
        if name == "factor":
            if not (is_number(value) and 0 < value < 1):
                raise ValueError(f"{who}: factor must be a number in (0, 1), got {value!r}")
            return float(value)
        if name in ("patience", "cooldown"):
            return _check_count(who, name, value)
        if name == "monitor":
            if not (isinstance(value, str) and value):
                raise TypeError(f"{who}: monitor must be the name of a history key, e.g. 'val_loss', got {value!r}")
            return str(value)
        return finite_non_negative(who, name, value)  # threshold, min_lr, eps

    def _set(self, name: str, value: Any) -> None:
        """As every schedule's, with ``mode="auto"`` as in the constructor.  ``mode`` and ``monitor`` may change
        only before the first step (``best`` starts again from the new mode's worst): after it, the best value
        so far was judged by the old ones (refused: make a new schedule).  A ``patience`` below the bad epochs
        counted lowers that count to it (the next bad epoch reduces the lr, as PyTorch's, which keeps the count);
        a cooldown in progress runs on from where it is, whatever the new ``cooldown`` (as PyTorch's: the
        new one is the next cooldown's length)."""
        if name not in ("mode", "monitor"):
            super()._set(name, value)
            if name == "patience":
                self.num_bad_epochs = min(self.num_bad_epochs, self._patience)
            return
        old = (self.mode, self.monitor)
        auto = self._mode_auto
        if name == "mode":
            auto = isinstance(value, str) and value == "auto"
            value = _auto_mode(self.monitor) if auto else value
        super()._set(name, value)
        self._mode_auto = auto
        if auto and (name == "mode" or self.monitor != old[1]):
            mode = _auto_mode(self.monitor)  # ("auto" keeps the direction of a run that has stepped, as it was)
            keep = mode == "auto" and old[0] != "auto" and self.monitor == old[1] and self.last_epoch > 0
            self._mode = old[0] if keep else mode
        if (self.mode, self.monitor) != old:
            if self.last_epoch > 0:
                raise ValueError(f"ReduceLROnPlateau: {name} cannot change after the first step: the best value so "
                                 f"far, {self.best!r}, is of {old[1]!r} in mode {old[0]!r}; make a new "
                                 f"ReduceLROnPlateau")
            self.best = math.inf if self.mode == "min" else -math.inf

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """As every schedule's; the loaded ``mode`` is kept as it is (a decided ``"auto"`` is saved as its decision:
        it no longer follows ``monitor``), ``"auto"`` only when it was not decided yet."""
        super().load_state_dict(state)
        self._mode_auto = self._mode == "auto" or (self._mode_auto and "mode" not in state)

    def _decide(self, direction: str) -> None:
        """``fit``'s decision of an auto ``mode`` from its metrics (before the first step: ``best`` starts from the
        worst of that direction)."""
        if direction != self._mode and self.last_epoch == 0:
            self._mode = direction
            self.best = math.inf if direction == "min" else -math.inf

    def _check_run_state(self, name: str, value: Any, settings: Mapping[str, Any]) -> Any:
        if name == "best":
            try:
                best = float(value) if is_number(value) else math.nan
            except OverflowError:  # an int beyond float range
                best = math.nan
            if math.isnan(best):
                raise ValueError(f"expected a number (inf allowed, not NaN), got {value!r}")
            return best
        if name == "cooldown_counter":  # (above cooldown when that was lowered during a cooldown: it runs on)
            return _check_count("ReduceLROnPlateau", name, value)
        limit = settings["patience"]
        if not (is_integer(value) and 0 <= value <= limit):
            raise ValueError(f"expected an int in [0, patience={limit}], got {value!r}")
        return int(value)

    def is_better(self, value: float, best: float) -> bool:
        """Whether ``value`` beats ``best`` by the threshold (False when either is NaN)."""
        threshold, relative = self._threshold, self._threshold_mode == "rel"
        if self._mode == "min":
            return value < (best * (1.0 - threshold) if relative else best - threshold)
        return value > (best * (threshold + 1.0) if relative else best + threshold)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: float) -> float:  # type: ignore[override]  # the closed forms take no value
        """Record one more epoch's monitored value and reduce the lr on a plateau; returns the lr.
        (A refused value, or an lr the optimizer refuses, changes nothing.)"""
        if is_number(metrics) or (isinstance(metrics, np.ndarray) and metrics.shape == ()
                                  and metrics.dtype.kind in "iuf"):
            current = float(metrics)
        else:
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number, got {metrics!r}")
        if self._mode == "auto":  # (fit decides it first)
            from .early_stopping import unknown_direction

            raise ValueError(unknown_direction("ReduceLROnPlateau.step", self.monitor))
        best, bad_epochs, cooldown_counter = self.best, self.num_bad_epochs + 1, self.cooldown_counter
        if self.is_better(current, best):
            best, bad_epochs = current, 0
        if cooldown_counter > 0:
            cooldown_counter, bad_epochs = cooldown_counter - 1, 0  # bad epochs in cooldown are ignored
        optimizer = self._optimizer
        if bad_epochs > self._patience:
            old_lr = optimizer.lr
            new_lr = max(old_lr * self._factor, self._min_lr)
            if old_lr - new_lr > self._eps:
                optimizer.lr = new_lr
            cooldown_counter, bad_epochs = self._cooldown, 0
        self.last_epoch += 1
        self.best, self.num_bad_epochs, self.cooldown_counter = best, bad_epochs, cooldown_counter
        return optimizer.lr

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError("ReduceLROnPlateau has no lr per epoch: its lr follows the values passed "
                                  "to step(metrics)")

    def _check_current(self) -> None:
        """Nothing: the lr is the optimizer's, which no setting changes."""

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, factor={self.factor}, patience={self.patience}, threshold={self.threshold}, "
                f"threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown}, min_lr={self.min_lr}, "
                f"eps={self.eps}, monitor={self.monitor!r}")

    def progress_repr(self) -> str:
        """``"at epoch 4 (best=0.25, 2 bad epochs, 0 cooldown epochs left)"``."""
        bad, left = self.num_bad_epochs, self.cooldown_counter
        return (f"at epoch {self.last_epoch} (best={self.best}, {bad} bad epoch{'' if bad == 1 else 's'}, "
                f"{left} cooldown epoch{'' if left == 1 else 's'} left)")
