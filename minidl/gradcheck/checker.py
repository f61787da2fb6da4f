"""``GradientChecker``: proves a back-pass right (or shows where and how it is wrong) by central differences.

The pieces: :mod:`.program` evaluates the cost repeatably and cheaply, :mod:`.numerics` turns cost
values into a verdict with an error bound, :mod:`.elements` judges a tensor element by element with them,
:mod:`.diagnosis` names bug signatures, :mod:`.report` prints the table.  How it works is described in
``docs/gradient-checker.md``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import enum
import itertools
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, SupportsFloat

import numpy as np
from typing_extensions import Self

from .. import side_state
from ..errors import MinidlError, NonDeterministicError, NonFiniteError, ShapeError, TargetError
from ..inputs import as_inputs, is_several
from ..layer import _RESERVED, Layer, defining_class, minidl_own, parameter_backward
from ..layers.reshape import Identity
from ..losses import _ATOMS, Loss, _entries, _held_objects, named_loss_parameters
from ..model import LayerList, Sequential
from ..parameter import Parameter
from ..pass_caches import _caches_kept
from ..validation import checked_setting
from . import settings as _settings
from ._state import LayerSnapshot, copy_value, same
from .diagnosis import factor_words, ignored_upstream, is_input
from .elements import REL_FLOOR, STAGE_A, ElementCheck
from .findings import (
    built_lazily_note,
    called_twice,
    caveats,
    contract_problems,
    dtype_notes,
    float32_reads,
    loss_hidden_notes,
    name_repeated_indices,
    name_swapped,
    one_sample,
    plain_arrays,
    rebound_problem,
    result_notes,
    reversed_batch_problem,
    reversed_batch_verdicts,
    shared_factor,
    unregistered,
)
from .names import label, layer_label, named_inputs
from .numerics import (
    COARSE,
    FAIL,
    KINK,
    OK,
    U64,
    Verdict,
    column_noise,
    kinks,
    probe_noise,
    richardson,
)
from .precision import (
    STIR,
    Coarse,
    LowLayer,
    array_precision,
    coarse_eps,
    coarse_noise,
    coarse_verdict,
    float_arrays,
    low_precision_words,
    shows_float64,
    swallowed_moves,
    unit_round_off,
)
from .program import Program, _floats
from .report import GradientReport, TensorResult
from .settings import MODES

__all__ = ["GradientChecker", "LossLike"]


class LossLike(Protocol):
    """What the checker takes as ``loss``: a minidl :class:`~minidl.losses.Loss` or an object of one's own with
    these two methods (it is checked for them when given).  ``y_pred``: the model's output (a tuple for one with
    several); the cost is ``float(forward(...))``; ``backward()`` gives ``dLoss/dy_pred`` (a tuple for a tuple)."""

    def forward(self, y_pred: Any, y_true: Any, /) -> SupportsFloat: ...

    def backward(self) -> Any: ...

#: points of the round-off probe (besides the unperturbed one)
NOISE_STEPS = 16
#: A tensor of more than this many times ``full_max`` elements whose directional pass fails is drilled
#: down on a sample, not element by element (16 x 512 = 8192 elements: about 80k evaluations).
DRILL_MAX_FACTOR = 16
#: points (the checked one included) of the analytic round-off probe: the analytic gradients at points a
#: relative 1e-9 apart along a random line, whose high-order differences hold only their round-off
ANALYTIC_POINTS = 8


@dataclass
class _Tensor:
    """One tensor to check: its array (perturbed in place), first stage, and analytic gradient."""

    name: str
    array: np.ndarray
    stage: int
    analytic: np.ndarray | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frozen: bool = False  # requires_grad=False and backward wrote no gradient: nothing to check
    #: whether another tensor has this one's shape: then a per-element check keeps, per element of the
    #: array, the numerical gradient, whether the element was checked, and the tolerance it was judged
    #: with, in :attr:`elements` (for ``swapped``)
    keep_elements: bool = False
    elements: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: the parameter's ``bias_rows`` (``Parameter.bias_rows``: a slice of axis 0, or None), for the words
    bias_rows: slice | None = None
    #: after a per-element check with failing elements: the rows (positions on axis 0) holding one, and the rows
    #: checked right (an element checked, none failing), for the repeated-index hint (see ``findings.repeated_index``)
    rows: tuple[np.ndarray, np.ndarray] | None = None
    #: the words of a backward that is not batch-permutation consistent (``GradientChecker._check_reversed_batch``),
    #: for the tensor's result (``findings.reversed_batch_verdicts``), or None
    reversed_batch: str | None = None

    @property
    def bias_row(self) -> bool:
        """Whether row 0 is an absorbed bias (``bias_rows == slice(0, 1)`` on a 2-D or larger parameter: a
        ``Dense``'s ``W`` with ``bias=True``, or a layer of one's own that says so), for the words."""
        return self.bias_rows is not None and self.array.ndim >= 2 and self.bias_rows.start in (None, 0) \
            and self.bias_rows.stop == 1  # (not slice(None), a bias whole, even of one row)


@dataclass
class _Call:
    """One recorded forward call of a sub-layer (for determinism localisation and check_layers)."""

    path: str
    layer: Layer
    x: Any
    y: Any
    generators: list[Any]
    modified: bool = False  # the forward changed the array it was given (in place)
    changed_params: tuple[str, ...] = ()  # trainable parameters the forward changed (watched calls only)
    #: ``id`` of each array the call was given (per input, as ``named_inputs`` orders them), before ``x`` was
    #: copied: a model input passed on as it is (an index array, a mask) is found by identity
    sources: tuple[int, ...] = ()
    #: the input and the output themselves (not copies; watched calls only), to find a backward that modifies them
    given: Any = None
    output: Any = None


@dataclass
class _BackCall:
    """One recorded backward call of a sub-layer (watched first pass): copies of what it was given and what it
    gave, to compare a second backward on the same forward with the first."""

    path: str
    layer: Layer
    upstream: Any
    dx: Any
    grads: list[np.ndarray]  # the layer's parameters' .grad after the call


#: a layer's own attributes :class:`_Attributes` leaves alone: its registries and bookkeeping (the parameters,
#: buffers and generators are :class:`LayerSnapshot`'s), and the methods a :class:`_Recorder` sets on it
_NOT_CACHES = _RESERVED | {"forward", "backward"}


@dataclass
class _Attributes:
    """Every sub-layer's own attributes as a forward left them (its caches): each attribute's object, and a list's
    or dict's items (a stack of caches), to put back before a second backward on the same forward -- one that
    popped its stack, released its cache (``self._c = None``) or counted its calls then reads what the first read."""

    layers: list[tuple[str, Layer, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def take(cls, root: Layer) -> _Attributes:
        """The attributes of ``root`` and its sub-layers."""
        taken = cls()
        for path, layer in root.named_layers():
            own = {name: v for name, v in vars(layer).items() if name not in _NOT_CACHES}
            items = {name: list(v) if isinstance(v, list) else dict(v) for name, v in own.items()
                     if type(v) in (list, dict)}
            taken.layers.append((path, layer, own, items))
        return taken

    def released(self) -> tuple[str, Layer] | None:
        """The first layer (in ``named_layers`` order) that took a cache out of its attributes since: one set to
        None or deleted, or a list or dict with fewer items (a stack popped); None if none."""
        for path, layer, own, items in self.layers:
            now = vars(layer)
            for name, v in own.items():
                if v is not None and (now.get(name) is None
                                      or (name in items and now[name] is v and len(v) < len(items[name]))):
                    return path, layer
        return None

    def restore(self) -> None:
        """Put every attribute back (a list or dict refilled in place), and take away those added since."""
        for _, layer, own, items in self.layers:
            now = vars(layer)
            for name in [n for n in now if n not in own and n not in _NOT_CACHES]:
                del now[name]
            now.update(own)
            for name, contents in items.items():
                value = own[name]
                if isinstance(value, list):
                    value[:] = contents
                else:
                    value.clear()
                    value.update(contents)


class _Path(enum.Enum):
    """How the cost's dependence on a tensor meets a layer computing below float64 (see ``_through``)."""

    THROUGH = "through"  # the tensor's change moves the layer's output, and that reaches the cost
    SWALLOWED = "swallowed"  # it moves the layer's input by less than the layer's precision resolves
    APART = "apart"  # neither: the layer's output stays put, or its change does not reach the cost


class _FirstPass(NamedTuple):
    """What the first recorded pass found against the layer contract (each None when nothing)."""

    in_place: _Call | None  # a forward that modified its input
    changed_params: _Call | None  # a forward that changed a (trainable) parameter
    grad_modified: tuple[str, Layer] | None  # a backward that modified its grad_output
    draws_in_backward: tuple[str, Layer] | None  # a backward that drew from its layer's generators
    #: a backward that modified its forward's input, output or cache in place: (path, layer, what it modified:
    #: "input", "output" or "cache", what a second backward on the same forward gave otherwise: "dx" and the
    #: layer's own names of its parameters)
    cache_modified: tuple[str, Layer, str, tuple[str, ...]] | None = None
    #: parameters a forward put in place of others, or created: (dotted name, whether it is made again at every
    #: forward, or existed before: False for one built lazily, once, at the first call)
    rebound: tuple[tuple[str, bool], ...] = ()
    #: a layer whose backward took its cache out of its attributes so that a second backward on the same forward
    #: raises (path, layer): allowed in training, which runs one, not by the contract, which says two work
    released: tuple[str, Layer] | None = None


#: the advice that ends the note on parameters at a blind spot (all 0: "zero"; all 1 or -1: "unit"), dropped once the
#: check has run again with them moved off it (see ``GradientChecker._check_moved``)
_BLIND_ADVICE = {"zero": "; check at a random point too (e.g. a zero-initialised bias set to small random values)",
                 "unit": "; check at another value too (e.g. set it to 1.3)"}


def _quiet(quiet: bool) -> Any:
    """A context without NumPy's floating-point warnings if ``quiet``, else one that changes nothing."""
    return np.errstate(all="ignore") if quiet else contextlib.nullcontext()


def _own_copy(value: Any) -> np.ndarray:
    """A given input as the checker's own array: a copy, floats in float64, in the layout class it was given
    (:func:`_in_layout`), so that a backward that depends on it is checked as it is called."""
    given = np.asarray(value)
    return _in_layout(given.astype(np.float64, copy=False) if given.dtype.kind == "f" else given, given)


def _in_layout(values: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """A copy of ``values`` (``pattern``'s shape) in the layout class of ``pattern``: the same axis order (a
    transposed or Fortran-order input stays so), and for one neither C- nor F-contiguous (a strided view,
    ``x[:, ::2]``) a view with gaps into a fresh array twice its size, contiguous neither."""
    x = np.array(values, order="K", copy=True)
    if pattern.flags.c_contiguous or pattern.flags.f_contiguous or x.dtype.hasobject:
        return x
    wide = np.empty(2 * x.size, dtype=x.dtype)
    gapped = np.lib.stride_tricks.as_strided(wide, x.shape, tuple(2 * s for s in x.strides))
    gapped[...] = x
    return gapped


def _reversed(x: Any) -> Any:
    """An input with its batch reversed (a copy in its layout class), or a copy of it if it has no batch axis."""
    return _in_layout(x[::-1], x) if isinstance(x, np.ndarray) and x.ndim >= 1 else copy_value(x)


def _input_gradient(dx: Any, name: str) -> Any:
    """The gradient of the input ``name`` (``"input"``, or ``"input[i]"`` of several) in what a backward returned."""
    return dx if name == "input" else dx[int(name[len("input["):-1])]


def _several_gradients_note(work: Layer, y: Any, upstream: tuple[Any, ...]) -> str:
    """The note for an error a model with several outputs (``y``, checked without a loss) raised in a backward
    given the tuple of their gradients (``upstream``): it may take one array."""
    name = type(work).__name__

    def part(a: Any) -> str:
        return "None" if a is None else f"{a.dtype} {a.shape}"

    nones = "; None for an output that takes none" if any(a is None for a in upstream) else ""
    return (f"(GradientChecker: {name}.forward returned {len(y)} outputs (a tuple: {', '.join(map(part, y))}), so "
            f"without a loss the cost is sum_i R_i . y_i over the floating ones, and {name}.backward was given the "
            f"tuple of their gradients ({', '.join(map(part, upstream))}{nones}).  A model with several outputs "
            "takes a tuple of gradients, one per output, in a backward as in training; if its backward takes one "
            "array (of one of the outputs), check it with a loss that takes the tuple of outputs and gives the "
            "gradient its backward takes (loss=...), or return one array)")


def _flipped(value: Any, batch: int | None) -> Any:
    """A copy of ``value`` with its batch reversed: an array whose axis 0 has ``batch`` positions reversed, one
    without it copied, a tuple (several inputs or outputs) item by item; None for anything else (or no batch)."""
    if batch is None:
        return None
    if type(value) is tuple:
        items = [None if v is None else _flipped(v, batch) for v in value]
        return None if any(f is None and v is not None for f, v in zip(items, value, strict=True)) else tuple(items)
    if isinstance(value, np.ndarray):
        return _in_layout(value[::-1], value) if value.ndim >= 1 and value.shape[0] == batch else value.copy()
    return None


def _differences(y: Any, y0: Any) -> Any:
    """The output ``y`` minus ``y0`` (float arrays; others, which must be the same, None), item by item for several;
    None when they do not match."""
    if type(y0) is tuple:
        if type(y) is not tuple or len(y) != len(y0):
            return None
        items = [_differences(a, b) for a, b in zip(y, y0, strict=True)]
        return None if any(d is None and isinstance(b, np.ndarray) and b.dtype.kind == "f"
                           for d, b in zip(items, y0, strict=True)) else tuple(items)
    if not (isinstance(y, np.ndarray) and isinstance(y0, np.ndarray) and y.shape == y0.shape):
        return None
    return y - y0 if y0.dtype.kind == "f" and y.dtype.kind == "f" else None


def _equivariant(y: Any, expected: Any, rel: float) -> bool:
    """Whether the output ``y`` is ``expected`` (the checked point's output, its batch reversed) to round-off: the
    same structure, shapes and dtypes, finite float arrays within ``rel`` times their largest value, others
    equal."""
    if type(expected) is tuple:
        return type(y) is tuple and len(y) == len(expected) and all(
            _equivariant(a, b, rel) for a, b in zip(y, expected, strict=True))
    if expected is None or not isinstance(y, np.ndarray) or y.shape != expected.shape or y.dtype != expected.dtype:
        return expected is None and y is None
    if y.dtype.kind != "f":
        return bool(np.array_equal(y, expected))
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(expected))):
        return False
    return bool(np.max(np.abs(y - expected), initial=0.0) <= rel * np.max(np.abs(expected), initial=0.0))


def _batch_of(x: Any) -> int | None:
    """The batch size: the length of the input's first axis (the first input's, of several); None for an
    input that is no array with an axis."""
    first = x[0] if is_several(x) else x
    return first.shape[0] if isinstance(first, np.ndarray) and first.ndim >= 1 else None


def _form_problem(dx: Any, n: int) -> str | None:
    """What is wrong with the form of what ``backward`` returned for ``n`` inputs (a tuple of ``n``), or None."""
    if isinstance(dx, (tuple, list)) and len(dx) == n:
        return None
    got = (f"a {type(dx).__name__} of {len(dx)} item(s)" if isinstance(dx, (tuple, list)) else
           "None" if dx is None else "one array" if isinstance(dx, np.ndarray) else f"a {type(dx).__name__}")
    return (f"backward returned {got}, expected a tuple of {n} gradients, one per input (None for an input "
            "without gradient)")


def _input_problems(x: Any, dx: Any, checked: Sequence[bool]) -> list[str]:
    """For several inputs, what is wrong with ``backward``'s tuple outside the checked floating inputs' own
    tensors: its form when no checked input is floating, and a gradient returned for an input that has none
    (``checked``: per input, whether ``check_input`` checks it; a float input left out may get anything)."""
    named = named_inputs(x)
    if not is_several(x):
        return []
    floats = [isinstance(v, np.ndarray) and v.dtype.kind == "f" for _, v in named]
    form = _form_problem(dx, len(named))
    if form is not None:
        # (else said on each checked floating input's tensor)
        return [] if any(f and c for f, c in zip(floats, checked, strict=True)) else [form]
    return [f"backward returned a gradient for {name} (an array of {value.dtype}), which has none: return "
            "None for it" for (name, value), grad, is_float in zip(named, dx, floats, strict=True)
            if not is_float and grad is not None]


def _input_tensors(x: Any, dx: Any, dx2: Any, checked: Sequence[bool]) -> list[_Tensor]:
    """The floating inputs to check, with the gradients ``backward`` returned for them (``dx``, and
    ``dx2`` from a second backward at the same point): one array for one input, one entry per input
    of a tuple for several (``None`` for an input without gradient).  ``checked``: per input, whether
    ``check_input`` checks it."""
    named = named_inputs(x)
    several = is_several(x)
    tensors = []
    for i, (name, value) in enumerate(named):
        if not (checked[i] and isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            continue
        t = _Tensor(name, value, 0, None)
        tensors.append(t)
        form = _form_problem(dx, len(named)) if several else None
        if form is not None:
            t.problems.append(form)
            continue
        grad = dx[i] if several else dx
        grad2 = (dx2[i] if isinstance(dx2, (tuple, list)) and len(dx2) == len(named) else None) if several else dx2
        if grad is None:
            leave_out = tuple(c and k != i for k, c in enumerate(checked)) if several else False
            t.problems.append(f"backward returned None instead of dCost/d{name} (if the input has no gradient -- a "
                              f"float mask, sample weights --, leave it out of the check: check_input={leave_out}"
                              f"{', one bool per input' if several else ''})")
        elif np.shape(grad) != value.shape:
            t.problems.append(f"backward returned dCost/d{name} of shape {np.shape(grad)}, expected {value.shape}")
        else:
            t.analytic = np.asarray(grad, dtype=np.float64)
            again = None if grad2 is None else np.asarray(grad2, dtype=np.float64)
            finite = np.isfinite(t.analytic)  # (a cost that is NaN at the point makes a NaN dx: not a difference)
            largest = float(np.max(np.abs(t.analytic), initial=0, where=finite))
            if again is None or again.shape != t.analytic.shape or not np.allclose(
                    again, t.analytic, rtol=1e-12, atol=1e-12 * largest, equal_nan=True):
                t.problems.append(f"two backward passes at the same point returned different dCost/d{name}")
    return tensors


def _close(a: Any, b: Any) -> bool:
    """Whether two gradients (arrays, or tuples of them and None) are equal to round-off: float arrays within 1e-9
    of the larger's largest value (NaN equal to NaN), anything else bit for bit."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_close(u, v) for u, v in zip(a, b, strict=True))
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype.kind == "f" == b.dtype.kind):
        return same(a, b)
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b, equal_nan=True):  # (the usual answer, bit for bit: one pass, not four)
        return True
    with np.errstate(all="ignore"):
        largest = max(float(np.max(np.abs(a), initial=0.0, where=np.isfinite(a))),
                      float(np.max(np.abs(b), initial=0.0, where=np.isfinite(b))))
        return bool(np.allclose(a, b, rtol=0.0, atol=1e-9 * largest, equal_nan=True))


def _second_backward(work: Layer, first: Sequence[_BackCall], upstream: np.ndarray,
                     forwards: Sequence[_Call]) -> tuple[str, Layer, tuple[str, ...]] | None:
    """A second backward of ``work`` on the same forward (its gradients zeroed, its state as before the first),
    compared call by call with the ``first`` one's: the first layer (innermost first, in the order of the
    backward) that was given the same ``grad_output`` and gave another ``dx`` or parameter gradient modified what
    its forward left (its output, its cache) in place (the layers' attributes are put back before it, see
    :class:`_Attributes`: a stack of caches popped, a cache released, is there again).  Returns its path, the layer
    and what differed (``"dx"``, its own parameters' names), or None (also when the second backward raises, or
    calls other layers)."""
    try:
        with _Recorder(work, watch=True, forwards=forwards) as again:
            work.backward(upstream)
    except Exception:
        return None
    if len(again.back_calls) != len(first):
        return None
    for one, two in zip(first, again.back_calls, strict=True):
        if one.layer is not two.layer or not _close(one.upstream, two.upstream):
            return None  # (a layer the backward met first gave another grad_output: it would have been named)
        differ = ["dx"] if not _close(one.dx, two.dx) else []
        differ += [name for (name, _), g1, g2 in zip(one.layer.named_parameters(), one.grads, two.grads,
                                                             strict=True) if not _close(g1, g2)]
        if differ:
            return one.path, one.layer, tuple(differ)
    return None


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):
        error.add_note(note)


def _with_hint(error: MinidlError, hint: str) -> Exception:
    """A minidl ``error`` again, of its type, its message followed by ``hint`` (its ``index``/``shape``
    and notes kept); when its type cannot be made from one message, ``error`` itself with ``hint`` as a
    note.  (A user's exception is never rebuilt: see the caller.)"""
    with contextlib.suppress(Exception):
        again = type(error)(f"{error} {hint}")
        if str(again) == f"{error} {hint}":
            for name in ("index", "shape"):  # (what a minidl error carries besides its message)
                if hasattr(error, name):
                    with contextlib.suppress(Exception):
                        setattr(again, name, getattr(error, name))
            for note in getattr(error, "__notes__", []):
                _add_note(again, note)
            return again
    _add_note(error, hint)
    return error


def _refuse_nan_state(model: Layer) -> None:
    """``NonFiniteError`` naming the first trainable parameter that holds NaN/inf, frozen parameter or
    buffer that holds NaN, or buffer that holds inf where its layer says it cannot (its
    ``buffer_problem``, which ``load_state_dict`` asks too: a running statistic), by dotted name and
    first bad index: the cost would not be a number (or, with an infinite running variance, flat in
    the input), and the error would be blamed on the input of the layer after it.  inf elsewhere may
    be meant (a -inf mask, a cap of inf)."""
    state: list[tuple[str, Any, bool, Layer | None, str]] = [
        (f"parameter '{name}'", p.data, p.requires_grad, None, "") for name, p in model.named_parameters()]
    seen: set[int] = set()
    for path, layer in model.named_layers():
        for name, buf in layer._buffers.items():
            if buf is not None and id(buf) not in seen:  # (a shared buffer once, under its first name)
                seen.add(id(buf))
                state.append((f"buffer '{path}.{name}'" if path else f"buffer '{name}'", buf, False, layer, name))
    for what, value, trained, owner, name in state:
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            continue
        infinite = not trained and owner is not None and bool(np.isinf(value).any()) \
            and owner.buffer_problem(name, value) is not None
        bad = ~np.isfinite(value) if trained or infinite else np.isnan(value)
        if not bad.any():
            continue
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN/inf" if trained or infinite else "NaN"
        why = "the cost would not be a number at any point" if trained else \
            "a forward that reads it (a running statistic in eval mode) would make the cost NaN/inf, or flat " \
            f"in its input ({type(owner).__name__} cannot use it, as load_state_dict says)" if infinite else \
            "a forward that reads it (a running statistic in eval mode) would make the cost NaN"
        error = NonFiniteError(
            f"GradientChecker: {what} holds {int(bad.sum())} {kind} value(s), the first at index {first} "
            f"({value[first].item()!r}), before the check started: {why}; "
            "initialise or load finite values (a NaN weight or running statistic is often left by a diverged "
            "training step)")
        error.index, error.shape = first, value.shape
        raise error


def _zero_grad_poisoned(layer: Layer, extra: Sequence[tuple[str, Parameter]] = ()) -> None:
    """``zero_grad``, after filling every gradient array with NaN: ``zero_grad`` only marks a gradient
    zero, and a backward that adds into the array ``grad_target()`` hands out for overwriting (instead
    of writing all of it) then shows NaN, not a gradient that looks right by luck.  ``extra``: named
    parameters outside the layer (a loss's), the same."""
    for p in [*layer.parameters(), *(q for _, q in extra)]:
        if p.grad.flags.writeable:
            p.grad.fill(np.nan)
    _zero_grad(layer, extra)


def _zero_grad(layer: Layer, extra: Sequence[tuple[str, Parameter]]) -> None:
    """``layer.zero_grad()``, and ``zero_grad`` of the named parameters ``extra`` (a loss's)."""
    layer.zero_grad()
    for _, p in extra:
        p.zero_grad()


def _stale_hint(cls: type) -> str:
    """Words for a class that overrides ``backward`` below the class its ``backward_params`` comes from."""
    b, bp = defining_class(cls, "backward"), defining_class(cls, "backward_params")
    if b is not None and bp is not None and b is not bp and issubclass(b, bp):
        return f"; {b.__name__} overrides backward but inherits backward_params from {bp.__name__}"
    return ""


def _draws_for_several(loss: Any) -> bool:
    """Whether ``loss.random_targets`` draws targets for a model's several outputs: a loss's own override
    (not the base ``Loss``'s, which draws for one array), in a built-in pair loss (``several_predictions``)
    or a loss of one's own; else the checker draws N(0, 1) arrays, one per output."""
    owner = defining_class(type(loss), "random_targets")
    if owner is None or owner is Loss:
        return False
    return bool(getattr(loss, "several_predictions", False)) or not owner.__module__.startswith("minidl.")


def _holds_nonfinite(value: Any) -> bool:
    """Whether a float array (or a tuple's) in ``value`` holds NaN or inf."""
    arrays = value if type(value) is tuple else (value,)
    return any(isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays)


def _reach(value: Any, depth: int = 2) -> Iterator[Any]:
    """``value`` and what it holds, up to ``depth`` levels down: the entries of a container (a set, a
    deque), the attributes of an object (a helper, another loss); not inside a parameter, a layer or a
    generator (their state is theirs), nor into numbers, strings and arrays."""
    yield value
    if depth == 0 or isinstance(value, (*_ATOMS, Parameter, Layer, np.random.Generator)):
        return
    with contextlib.suppress(Exception):  # (an object that refuses to be looked into holds nothing we see)
        items = _entries(value)
        inside = [v for _, v in items] if items is not None else \
            list(value) if isinstance(value, Collection) else \
            list(vars(value).values()) if hasattr(value, "__dict__") else []
        for v in inside:
            if not isinstance(v, _ATOMS):
                yield from _reach(v, depth - 1)


def _loss_parameters(loss: Any, model: Layer) -> tuple[list[tuple[str, Parameter]], list[str]]:
    """The parameters a loss holds that the model does not (a learnable scale: the cost is a function of
    them too), by its ``named_parameters()`` (a loss of minidl's: its attributes, the layers and losses
    there, the entries of a list, tuple or mapping there), named ``loss.<name>``; and the attributes (or
    entries) that hold other parameters, inside a helper object or a nested container or left out by an
    override, which are not checked (a note says so)."""
    if loss is None or not hasattr(loss, "__dict__"):
        return [], []
    in_model = {id(p) for p in model.parameters()}
    found = [(f"loss.{name}", p) for name, p in named_loss_parameters(loss) if id(p) not in in_model]
    known = in_model | {id(p) for _, p in found}

    def unseen(v: Any) -> bool:  # (a parameter not found, or a layer holding one)
        if isinstance(v, Parameter):
            return id(v) not in known
        return isinstance(v, Layer) and any(id(p) not in known for p in v.parameters())

    return found, [name for name, value in _held_objects(loss) if any(unseen(v) for v in _reach(value))]


def _loss_state(loss: Any) -> list[Any]:
    """What of a loss's the check could change if the loss were not copied (a ``__deepcopy__`` returning
    itself): its parameters, and the layers (their buffers, generators and training flags) and generators
    it holds, up to two levels down (in a helper object, in a loss it holds)."""
    if loss is None:
        return []
    held = [v for _, value in _held_objects(loss) for v in _reach(value)
            if isinstance(v, (Layer, np.random.Generator))]
    return [p for _, p in named_loss_parameters(loss)] + held


class _Recorder:
    """Temporarily wraps every sub-layer's ``forward`` (on the checker's copy) to record each call.

    With ``watch``, also what breaks the layer contract behind the cost's back: a forward that
    changes a parameter (``changed_params`` of its call), a ``backward`` that changes the
    ``grad_output`` it was given (``grad_modified``, innermost layer first), and one that changes the
    input or output of its layer's last call in ``forwards`` (the calls a watched forward recorded):
    ``cache_modified``, innermost first.  Each backward call is kept in ``back_calls``.
    """

    def __init__(self, root: Layer, watch: bool = False, forwards: Sequence[_Call] = ()) -> None:
        self.root = root
        self.watch = watch
        self.calls: list[_Call] = []
        self.grad_modified: list[tuple[str, Layer]] = []
        self.draws_in_backward: list[tuple[str, Layer]] = []
        self.forwards = forwards
        self.cache_modified: list[tuple[str, Layer, str]] = []
        self.back_calls: list[_BackCall] = []
        self.methods = ("forward", "backward") if watch else ("forward",)
        self.own: list[tuple[Layer, str, Any]] = []  # a method set on the instance by the user, put back on exit

    def __enter__(self) -> Self:
        for path, layer in self.root.named_layers():
            for method in self.methods:
                if method in layer.__dict__:
                    self.own.append((layer, method, layer.__dict__[method]))
            object.__setattr__(layer, "forward", self._forward(path, layer, layer.forward))
            if self.watch:
                object.__setattr__(layer, "backward", self._backward(path, layer, layer.backward))
        return self

    def _forward(self, path: str, layer: Layer, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            gens = [g.bit_generator.state for _, g in layer.named_generators()]
            x_in = copy_value(x)
            # (trainable ones only: a frozen parameter may serve as state, named only if it makes the
            # cost non-deterministic; and a change of shape is a placeholder filled at the first
            # forward, a lazy layer, not a broken contract)
            params = [(name, p, p.data.copy()) for name, p in layer.named_parameters()
                      if p.requires_grad] if self.watch else []
            y = original(x)
            changed = tuple(f"{path}.{name}" if path else name for name, p, before in params
                            if p.data.shape == before.shape and not same(p.data, before))
            call = _Call(path, layer, x_in, copy_value(y), gens, not same(x, x_in), changed,
                         tuple(id(a) for _, a in named_inputs(x)))
            if self.watch:
                call.given, call.output = x, y
            self.calls.append(call)
            return y

        return forward

    def _backward(self, path: str, layer: Layer, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def backward(grad_output: Any) -> Any:
            given = copy_value(grad_output)
            gens = [g.bit_generator.state for _, g in layer.named_generators()]
            # (its last forward's input and output, if they are as that forward left them: a later layer's
            # forward may have changed them -- an in-place ReLU its input's -- which is not this backward's doing)
            last = next((c for c in reversed(self.forwards) if c.layer is layer and not c.modified), None)
            kept = [(what, now, then) for what, now, then in
                    ((("input", last.given, last.x), ("output", last.output, last.y)) if last is not None else ())
                    if same(now, then)]
            dx = original(grad_output)
            if not same(grad_output, given):
                self.grad_modified.append((path, layer))
            if gens != [g.bit_generator.state for _, g in layer.named_generators()]:
                self.draws_in_backward.append((path, layer))
            changed = [what for what, now, then in kept if not same(now, then)]
            if changed:
                self.cache_modified.append((path, layer, changed[0]))
            self.back_calls.append(_BackCall(path, layer, given, copy_value(dx),
                                             [p.grad.copy() for _, p in layer.named_parameters()]))
            return dx

        return backward

    def __exit__(self, *exc: object) -> None:
        for _, layer in self.root.named_layers():
            for method in self.methods:
                if method in layer.__dict__:
                    object.__delattr__(layer, method)
        for layer, method, value in self.own:
            object.__setattr__(layer, method, value)


class _Culprits:
    """What computes below float64, and which tensors it touches: the layers found from the recorded pass before
    the tensors are checked (:meth:`GradientChecker._low_precision_layers`), the loss found as they are checked
    (from the cost values, ``in_cost``), and per tensor the culprit it was judged for: the first, in the order of
    the forward, that its change goes through (:meth:`GradientChecker._through`).  ``from_loss``: the names of the
    loss's own parameters (their change reaches the cost alone, through no layer)."""

    def __init__(self, checker: GradientChecker, program: Program, work: Layer, x: Any, calls: list[_Call],
                 from_loss: set[str]) -> None:
        self.checker, self.program, self.work, self.calls, self.from_loss = checker, program, work, calls, from_loss
        # a layer that computes below float64 (found now, from the recorded pass), and the loss (found as the
        # tensors are checked, from the cost values: then the tensors already checked are checked again)
        self.layers = checker._low_precision_layers(work, x, calls)
        self.in_cost: np.dtype | None = None
        # (for each culprit, the last stage it runs in: the tensors first used up to it may go through it)
        self.upstream = [max((k for k, (_, layer) in enumerate(program.stages)
                              if layer is call.layer or any(sub is call.layer for sub in layer.layers())), default=0)
                         for call, _ in self.layers]
        # (how each tensor's change meets each culprit, see _through; and the culprit each tensor was judged for)
        self.paths: dict[tuple[str, int], _Path] = {}
        self.judged_for: dict[str, int] = {}

    def step(self, dtype: np.dtype) -> float:
        """The relative step a tensor is judged on for that precision."""
        return max(self.checker.eps, coarse_eps(dtype))

    def goes_through(self, t: _Tensor, k: int) -> bool:
        """Whether the change of ``t`` goes through the ``k``-th layer (asked of the forward once per pair)."""
        if t.name in self.from_loss or t.stage > self.upstream[k]:
            return False
        if (t.name, k) not in self.paths:
            call, dtype = self.layers[k]
            self.paths[t.name, k] = self.checker._through(self.program, self.work, t, call.layer, dtype, self.calls,
                                                          self.step(dtype))
        return self.paths[t.name, k] is _Path.THROUGH

    def coarse_for(self, t: _Tensor) -> Coarse | None:
        """The precision ``t`` is judged for: the cost's, once found below float64; else the first layer's its change
        goes through; None (float64) when there is none."""
        if self.in_cost is not None:
            return Coarse(self.in_cost, f"the cost is computed in {self.in_cost.name} (see the first note below the "
                                        "table)", True, self.step(self.in_cost))
        # (the first culprit the tensor's change goes through, in the order of the forward)
        k = next((k for k in range(len(self.layers)) if self.goes_through(t, k)), None)
        if k is None:
            return None
        self.judged_for[t.name] = k
        call, dtype = self.layers[k]
        return Coarse(dtype, f"{layer_label(call.path, call.layer)} computes in {dtype.name} and the cost "
                             "depends on this tensor through it (see the first note below the table)", False,
                      self.step(dtype))

    def words(self, results: list[TensorResult], loss_name: str, f0: float) -> tuple[str | None, list[str]]:
        """The report's headline and first notes on what computes below float64 (see
        :func:`.precision.low_precision_words`), after :meth:`blame_swallowed` has said which results owe their
        verdict to a layer that rounded their change away."""
        lows = [r.name for r in results if r.low_precision is not None]
        swallowed, lost, zero_backward = self.blame_swallowed(results, lows)
        return low_precision_words(
            self.in_cost, loss_name,
            [LowLayer(layer_label(call.path, call.layer), call.y, dtype,
                      tuple(name for name in lows if self.judged_for.get(name) == k),
                      tuple(name for name, j in swallowed.items() if j == k),
                      tuple(name for name, j in swallowed.items() if j == k and name in lost), tuple(zero_backward))
             for k, (call, dtype) in enumerate(self.layers)], f0, lows)

    def blame_swallowed(self, results: list[TensorResult],
                        lows: list[str]) -> tuple[dict[str, int], set[str], set[str]]:
        """The tensors whose change a layer below float64 rounded away (``lows``: those judged for a culprit
        already), by the culprit; their results say so instead of a flat cost or a forward that ignores them.
        Returns them, those not checked for it (``lost``), and those that backward gives 0 too."""
        # (a tensor whose change the first culprit rounded away and no culprit showed: its numerical derivative of 0
        # is that rounding's, which its diagnosis says instead of a forward that ignores the tensor)
        swallowed: dict[str, int] = {}
        for (name, k), path in self.paths.items():  # (each tensor's culprits in the order of the forward)
            if path is _Path.SWALLOWED and name not in lows:
                swallowed.setdefault(name, k)
        # (one that backward gives 0 as well is not flat: the cost stayed put for the rounding's sake, and backward's
        # 0 was not tested; not checked, and the layer is blamed for it in the headline)
        lost: set[str] = set()
        zero_backward: set[str] = set()  # (those of them that backward gives 0 too)
        for r in results:
            if r.name not in swallowed:
                continue
            call, dtype = self.layers[swallowed[r.name]]
            layer, d = layer_label(call.path, call.layer), dtype.name
            who = "the input" if r.name == "input" else r.name
            why = (f"{layer} computes in {d} and its input moves with this tensor by less than {d} resolves, so its "
                   "output did not move")
            if r.flat:
                lost.add(r.name)
                zero_backward.add(r.name)
                r.flat, r.coarse_agreed, r.checked, r.low_precision = False, r.checked, 0, d
                r.diagnosis = (f"the cost did not move with {who} at the check's steps, and backward gives 0 too "
                               f"(every derivative exactly 0): {why}, and backward's 0 was not tested (the true "
                               "derivative need not be 0): it cannot be checked through that layer; make the layer "
                               "compute in its input's dtype")
            elif r.diagnosis is not None and r.diagnosis.startswith("the cost does not depend"):
                what = "dx" if is_input(r.name) else "gradient"
                if not r.problems:  # (not a FAIL of the backward, which was not tested: the layer is blamed instead)
                    lost.add(r.name)
                    r.passed, r.failed, r.coarse_agreed, r.checked, r.low_precision = True, 0, r.checked, 0, d
                r.diagnosis = (f"the cost did not move with {who} at the check's steps (every numerical derivative "
                               f"is exactly 0) while backward gives a non-zero {what}: {why} (not a forward that "
                               "ignores the tensor): it cannot be checked through that layer; make the layer compute "
                               "in its input's dtype")
        return swallowed, lost, zero_backward


class GradientChecker:
    """Check a layer's or model's back-pass against central differences, tensor by tensor.

    Args:
        model: any :class:`~minidl.Layer` (a model, a ``Sequential``, a single layer).
        loss: a loss (``forward(y_pred, y_true) -> float``, ``backward() -> dL/dy_pred``).  Without one
            the cost is ``CF = sum(R * model(x))`` with a fixed seeded random ``R`` (never all-ones),
            which checks the back-pass for an arbitrary upstream gradient.  The loss's own parameters
            (``md.Parameter`` attributes: a learnable scale) are checked too, as ``loss.<name>``; its
            ``backward`` must return an array of the prediction's shape and dtype (``ShapeError`` /
            ``DTypeError`` naming the loss otherwise, as ``fit``).
        inputs: the input batch; by default seeded N(0, 1) inputs of shape
            ``(batch_size, *model.input_shape_hint())``: ``model.random_inputs(shape, rng)``, which a
            layer that takes other inputs overrides (``Embedding``: integer indices).  For a model with
            several inputs, a tuple of arrays (see :mod:`minidl.inputs`): each floating one is checked
            as its own tensor, ``"input[0]"``, ``"input[1]"``, ...; integer and boolean ones (indices,
            masks) are passed as they are.  An empty batch (an array of shape ``(0, ...)``) is refused
            (``ShapeError``): the cost would be identically 0.
        targets: the targets for ``loss`` (integer labels are kept as they are); when a loss is given
            without them, drawn by ``loss.random_targets(y_pred, rng)`` if it has one (seeded N(0, 1)
            values of the output's shape otherwise; labels for ``CrossEntropyLoss`` and ``NLLLoss``,
            values in [0, 1) for the BCE losses).
        eps: the relative step: element ``w`` is moved by ``h = eps * max(|w|, 1)`` and by ``h / 2``.
        seed: seeds the random inputs, ``R``, directions and samples.
        mode: ``"auto"`` (default: per element for tensors of at most ``full_max`` elements, else a
            directional pass that drills down per element only if it is not conclusive: every
            element after a failure, a stratified sample of ``max(samples, full_max // 4)`` after
            kinks in a tensor of more than ``2 * full_max`` elements), ``"full"`` (every element),
            ``"sampled"`` (``samples`` elements per tensor, stratified: a quarter of the budget for
            the edges -- row 0, the absorbed bias, and the corners --, the rest spread over the
            whole tensor) or ``"directional"`` (``directions`` random directions per tensor, six
            cost evaluations each).
        samples, directions, full_max: see ``mode``.
        safety: an element fails when its error exceeds ``safety`` times its estimated error bound.
        check_input: also check ``dCost/dinput`` (the tensor named ``"input"``, or one per floating input); a
            tuple of bools, one per input, checks those that are True: ``(True, False)`` leaves out a float
            input that has no gradient (a mask, sample weights), for which backward returns None (a
            ``ValueError`` when its length is not the number of inputs).
        params: the dotted names of the parameters to check (as ``named_parameters()`` gives them, the loss's
            as ``loss.<name>``), or None (default) for every one; the others are not perturbed, and a note
            names them.  A name that is no parameter is a ``ValueError`` naming the close ones.
        check_layers: also check every registered sub-layer alone, on the input it received in the
            model's forward, with a random upstream gradient; the results are in ``report.layers``, and their
            failing tensors in ``report.failed`` as ``"<path>.<name> (alone)"``.  Each leaves out an input that is
            (the same array as) a model input ``check_input`` leaves out, and checks only the parameters
            ``params`` chooses.
        batch_size: samples in inferred inputs (several, so that batch reductions are exercised), at
            most 1024 while ``inputs`` is None, refused when set (a larger batch is given as ``inputs=``;
            with ``inputs`` it is unused).
        reuse_prefix: in a ``Sequential``, perturbing layer k re-runs layers k, k+1, ... only.

    Besides the gradients it checks that ``backward`` adds into ``.grad`` (``+=``), that
    ``backward_params`` -- which ``fit`` calls -- adds the same parameter gradients as ``backward``,
    that no forward modifies its input in place, and that the cost is deterministic.  Options of the
    wrong type raise ``TypeError``, out of range ``ValueError`` (the switches take only True or False),
    when the checker is made and when one is assigned again (``checker.eps = 1e-5``): a refused value
    changes nothing.  Before it starts, the check refuses a parameter holding NaN/inf, a buffer
    holding NaN, or inf in a buffer its layer cannot hold (a running statistic: ``buffer_problem``)
    (``NonFiniteError`` naming it and its first bad index), which the cost would otherwise blame on the
    layer after it.

    The check runs in float64 on a deep copy of the model, so the model you pass is left exactly as
    it was (parameters' data and grad, buffers, generator states, train/eval mode), even if it
    raises in the middle of the check.  Layers keep their mode: a model in training mode is checked
    in training mode, its generators replayed before every evaluation.
    """

    def __init__(
        self,
        model: Layer,
        loss: LossLike | None = None,
        inputs: Any = None,
        targets: Any = None,
        eps: float = 1e-4,
        *,
        seed: int = 0,
        mode: str = "auto",
        safety: float = 10.0,
        check_input: bool | Sequence[bool] = True,
        check_layers: bool = False,
        batch_size: int = 4,
        samples: int = 32,
        directions: int = 2,
        full_max: int = 512,
        reuse_prefix: bool = True,
        params: Collection[str] | None = None,
    ) -> None:
        self.model = model
        self._whole_model = True  # False for a layer check_layers checks alone (see findings.unregistered)
        # parameters of one's own at a point where a wrong backward cannot show, (name, "zero" or "unit"), found by
        # a passing check; run() checks again with them moved (not when this is that second check)
        self._blind: list[tuple[str, str]] = []
        self._moved = False
        # the loss's own parameters (checked as loss.<name>) and attributes hiding some, during a run
        self._loss_params: list[tuple[str, Parameter]] = []
        self._loss_hidden: list[str] = []
        self._loss: LossLike | None = None
        self._targets: Any = None
        self._inputs: Any = None
        self._batch_size = 1  # (a placeholder under the cap while inputs is set; batch_size is set below)
        self.loss = loss
        self.targets = targets
        self.inputs = inputs
        self.eps = eps
        self.seed = seed
        self.mode = mode
        self.safety = safety
        self.check_input = check_input
        self.check_layers = check_layers
        self.batch_size = batch_size
        self.samples = samples
        self.directions = directions
        self.full_max = full_max
        self.reuse_prefix = reuse_prefix
        self.params = params

    # ------------------------------------------------------------------ settings
    # Each is checked when the checker is made and whenever it is assigned again, with the same check
    # and message; a refused value changes nothing.
    model = checked_setting("model", _settings.layer, "The layer or model checked (never changed by the check).")
    eps = checked_setting("eps", _settings.eps, "The relative step, a number in (0, 1).")
    seed = checked_setting("seed", _settings.seed, "Seeds the inputs, R, directions and samples; an int >= 0.")
    mode = checked_setting("mode", _settings.mode, f"One of {MODES}.")
    safety = checked_setting("safety", _settings.safety, "An element fails when its error exceeds safety times "
                             "its bound; a finite number > 1.")
    check_input = checked_setting("check_input", _settings.check_input, "Also check dCost/dinput; a bool, or a "
                                  "tuple of bools, one per input.")
    check_layers = checked_setting("check_layers", _settings.switch_setting,
                                   "Also check every sub-layer alone; a bool.")
    samples = checked_setting("samples", _settings.at_least(1), "Elements per tensor in sampled mode, an int >= 1.")
    directions = checked_setting("directions", _settings.at_least(1),
                                 "Random directions per tensor in directional mode, an int >= 1.")
    full_max = checked_setting("full_max", _settings.at_least(0), "In auto mode, the largest tensor checked "
                               "element by element; an int >= 0.")
    reuse_prefix = checked_setting("reuse_prefix", _settings.switch_setting,
                                   "In a Sequential, re-run only the layers after a perturbed one; a bool.")
    params = checked_setting("params", _settings.params, "The dotted names of the parameters to check (a tuple), "
                             "or None for every one.")

    def _checked_inputs(self, x: Any) -> list[bool]:
        """Per input of ``x``, whether ``check_input`` checks it; a tuple of another length than the inputs is
        a ``ValueError``."""
        n = len(named_inputs(x))
        given = self.check_input
        if not isinstance(given, tuple):
            return [given] * n
        if len(given) != n:
            are = f"{n} arrays ({', '.join(name for name, _ in named_inputs(x))})" if is_several(x) else \
                "one array"
            raise ValueError(f"{type(self).__name__}: check_input has {len(given)} entries, one per input, but the "
                             f"inputs are {are}; give one bool per input (or True/False for all)")
        return list(given)

    def _chosen(self, names: list[str]) -> set[str] | None:
        """The parameter names ``params`` chooses among ``names`` (every one when it is None); a name that is
        none of them is a ``ValueError`` with the close ones."""
        if self.params is None:
            return None
        for name in self.params:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=3, cutoff=0.6) or \
                    [n for n in names if n.lower() == name.lower()]
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"{type(self).__name__}: params names {name!r}, which is not a parameter of "
                                 f"{type(self.model).__name__}{hint} (its parameters, as named_parameters() names "
                                 f"them: {', '.join(names) or 'none'})")
        return set(self.params)

    @property
    def inputs(self) -> Any:
        """The input batch, or None for seeded inputs of shape ``(batch_size, *model.input_shape_hint())``
        (then ``batch_size`` must be at most the cap); an empty batch is refused."""
        return self._inputs

    @inputs.setter
    def inputs(self, value: Any) -> None:
        who = type(self).__name__
        kept = _settings.inputs(who, "inputs", value)
        if kept is None:  # (the inputs would be drawn: batch_size is capped)
            try:
                _settings.drawn_batch_size(who, self._batch_size)
            except ValueError as error:
                raise ValueError(f"{error}; inputs cannot be None while batch_size is {self._batch_size}: set "
                                 "batch_size first") from None
        self._inputs = kept

    @property
    def batch_size(self) -> int:
        """Samples in the inputs the checker draws (``inputs=None``), an int >= 1, at most
        ``MAX_BATCH_SIZE`` (1024) while ``inputs`` is None; unused when ``inputs`` is given."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: Any) -> None:
        who = type(self).__name__
        kept = _settings.batch_size(who, "batch_size", value)
        if self._inputs is None:
            _settings.drawn_batch_size(who, kept)
        self._batch_size = kept

    @property
    def loss(self) -> LossLike | None:
        """The loss (``forward(y_pred, y_true)``, ``backward()``), or None for ``sum(R * output)``."""
        return self._loss

    @loss.setter
    def loss(self, value: Any) -> None:
        kept = _settings.loss(type(self).__name__, "loss", value)
        if kept is None and self._targets is not None:
            raise ValueError(f"{type(self).__name__}: loss cannot be None while targets are set (they would be "
                             "ignored); set targets = None first")
        self._loss = kept

    @property
    def targets(self) -> Any:
        """The targets for :attr:`loss`, or None (drawn by the loss)."""
        return self._targets

    @targets.setter
    def targets(self, value: Any) -> None:
        if value is not None and self._loss is None:
            raise ValueError(f"{type(self).__name__}: targets= given without loss=; the targets would be ignored")
        self._targets = value

    # ------------------------------------------------------------------ public
    def run(self) -> GradientReport:
        """Run the check and return the report (a failed check does not raise: see
        :meth:`GradientReport.raise_if_failed`)."""
        # (the loss's parameters too: a loss whose __deepcopy__ returns itself is checked in place)
        try:
            snapshot = LayerSnapshot.take(self.model, _loss_state(self.loss))
        except Exception as error:  # (a loss's own named_parameters() that raises: nothing has changed)
            _add_note(error, f"(raised during GradientChecker.run on {type(self.model).__name__}, before the "
                             "check began: nothing was changed)")
            raise
        global_rng = np.random.get_state()  # (a layer drawing from np.random would move the user's stream)
        start = time.perf_counter()
        calls_saved = side_state.calls.saved
        try:
            # the check calls copies, thousands of times: a failed call's putting back (side_state) is not
            # needed on them, and the snapshot above covers the user's objects
            side_state.calls.saved = True
            # a layer or loss checked in place (a __deepcopy__ returning itself) gets the user's caches back, its
            # forward's self._x, not the check's last evaluation point in float64 (also when the check raises)
            with _caches_kept(self.model, self.loss):
                report = self._run()
                if report.passed and self._blind and not self._moved:
                    self._check_moved(report)
        except Exception as error:
            _add_note(error, f"(raised during GradientChecker.run on {type(self.model).__name__}; "
                             "the check runs on a copy, so your model is unchanged)")
            raise
        finally:
            side_state.calls.saved = calls_saved
            np.random.set_state(global_rng)
            if snapshot.differences():  # never expected (the check works on a copy); enforced anyway
                snapshot.restore()
        report.seconds = time.perf_counter() - start
        return report

    def _check_moved(self, report: GradientReport) -> None:
        """Check again with the parameters found at a blind spot (the model's and the loss's) moved off it (all 0:
        small random values; all 1 or -1: times 1.3), on another copy: a backward right only there (a term of a
        zero bias left out, a temperature's 1/T where 1/T**2 is due) fails the report, as ``report.moved``; else a
        note says it passed."""
        model, loss = copy.deepcopy((self.model, self.loss))
        params = dict(model.named_parameters())
        if loss is not self.loss:  # (a loss that cannot be copied keeps its parameters: they are the user's)
            params.update(_loss_parameters(loss, model)[0])
        rng = np.random.default_rng([self.seed, 29])
        moved = []
        kept = set()  # (the kinds of blind spot some parameter of which could not be moved: their advice stands)
        for name, kind in self._blind:
            p = params.get(name)
            if p is None or not (p.data.flags.writeable and p.data.dtype.kind == "f"):
                kept.add(kind)
                continue
            if kind == "zero":
                p.data[...] = 0.1 * rng.standard_normal(p.data.shape)
            else:
                p.data[...] = 1.3 * p.data
            moved.append(f"'{name}' moved " + ("from 0 to small random values" if kind == "zero"
                                               else "from 1 or -1 to 1.3 times that"))
        if not moved:
            return
        what = f"with {', '.join(moved)}"
        other = copy.copy(self)
        other.model, other.loss, other._blind, other._moved = model, loss, [], True
        start = time.perf_counter()
        try:
            again = other._run()
            again.seconds = time.perf_counter() - start
        except Exception as error:  # (moved, a layer may leave its domain): said, the verdict stands
            report.notes.append(f"checked again {what}: could not be ({type(error).__name__}: {error})")
            return
        report.evaluations += again.evaluations
        # (the advice to check at another point is what was just done: its note keeps what it found)
        for kind in {kind for _, kind in self._blind} - kept:
            report.notes[:] = [n[:-len(_BLIND_ADVICE[kind])] if n.startswith("the parameter(s) ")
                               and n.endswith(_BLIND_ADVICE[kind]) else n for n in report.notes]
        if again.passed:
            report.notes.append(f"checked again {what}: passes there too")
        else:
            report.moved, report.moved_what = again, what

    # ------------------------------------------------------------------ setup
    def _prepare(self) -> tuple[Layer, Any, Any, Any, np.random.Generator]:
        _refuse_nan_state(self.model)
        rng = np.random.default_rng(self.seed)
        # One copy of both, so that a parameter or layer the loss shares with the model stays shared.
        work, loss = copy.deepcopy((self.model, self.loss))
        work.astype(np.float64)
        for p in work.parameters():  # a fresh array each, as load_state_dict and a float32 model's astype give:
            p.data = p.data.copy()  # a layer that kept a reference to p.data computes with stale values, and fails
        self._loss_params, self._loss_hidden = _loss_parameters(loss, work)
        for _, p in self._loss_params:
            p.astype(np.float64)
            p.data = p.data.copy()
        if self.inputs is None:
            hint = work.input_shape_hint()
            if hint is None:
                raise ShapeError(
                    f"GradientChecker: cannot infer the input shape of {type(self.model).__name__} "
                    "(its input_shape_hint() is None); pass inputs=, e.g. "
                    "GradientChecker(model, inputs=np.random.default_rng(0).standard_normal((4, ...))), or for a "
                    "model whose first layer is an Embedding integer indices, "
                    "np.random.default_rng(0).integers(0, num_embeddings, (4, ...)) (with a mask: a tuple)"
                )
            # N(0, 1) floats, unless the model's first layer takes other inputs (an Embedding's indices)
            x: Any = work.random_inputs((_settings.drawn_batch_size(type(self).__name__, self.batch_size), *hint),
                                        rng)
        else:  # one array or several (each its own copy), by fit's rule: a tuple mixing arrays is refused
            given = as_inputs(self.inputs, "GradientChecker", "inputs")
            x = tuple(_own_copy(a) for a in given) if type(given) is tuple else _own_copy(given)
        # An empty batch is refused here, where a list has been converted and inputs drawn by a layer's
        # random_inputs are looked at too.
        _settings.empty_batch(type(self).__name__, x, "inputs" if self.inputs is not None else
                              f"the inputs drawn by {type(self.model).__name__}.random_inputs")

        def own(value: Any) -> np.ndarray:  # a copy; floating targets in float64
            value = np.array(value, copy=True)
            return value.astype(np.float64) if value.dtype.kind == "f" else value

        targets = self.targets
        if type(targets) is tuple:  # (one per output of a model with several, for a loss taking them)
            targets = tuple(own(t) for t in targets)
        elif targets is not None:
            targets = own(targets)
        return work, loss, x, targets, rng

    def _run(self) -> GradientReport:
        """One check, as a sequence of steps: the setup and the passes on a copy of the model (the analytic
        gradients, then each tensor against central differences), then the report, with what the results,
        the recorded calls and the model's state say together (see :mod:`.findings`)."""
        work, loss, x, targets, rng = self._prepare()
        # Refused before any pass runs: a check_input of the wrong length, a name params does not know.
        checked_inputs = self._checked_inputs(x)
        every = [name for name, _ in work.named_parameters()] + [name for name, _ in self._loss_params]
        chosen = self._chosen(every)
        from_loss = {name for name, _ in self._loss_params}  # the names of the loss's own parameters
        first_pass = self._first_forward(work, x)
        # Compared at the end with the plain arrays after every pass: one they leave alone is a weight (unregistered).
        first_arrays = plain_arrays(work)
        if loss is not None and targets is None:
            targets = self._draw_targets(work, loss, x, rng)
        # A forward that modifies its input in place would scale a reused stage input again at every
        # evaluation, so then each evaluation runs the whole model from the input, as without reuse.
        program = Program(work, loss, x, targets, rng, reuse_prefix=self.reuse_prefix and first_pass.in_place is None)
        y0, f0 = program.baseline()
        calls = self._check_determinism(program, work, f0, first_pass.in_place)
        notes = dtype_notes(y0, x, checked_inputs)
        problems: list[str] = []
        tensors = self._analytic(program, work, x, problems, chosen, checked_inputs, first_pass)
        self._check_backward_params(program, work, tensors, calls)
        self._check_prefix_reuse(program, tensors, f0, notes)
        batch = _batch_of(x)
        notes.extend(self._scope_notes(batch, every, chosen))
        culprits = _Culprits(self, program, work, x, calls, from_loss)
        results = self._check_tensors(program, tensors, f0, batch, culprits)
        headline, precision_notes = culprits.words(results, type(loss).__name__, f0)
        float32_reads(program, tensors, results, f0)
        # Looked at only now, after every pass, so that the analytic backward and the perturbed forwards
        # have run again since first_arrays: an array they assigned or wrote again is a cache, not a weight.
        unregistered_notes, plain = unregistered(work, first_arrays, {id(c.layer) for c in calls}, self._whole_model)
        # These notes go first, because the headline points at the precision notes.
        notes[:0] = precision_notes + loss_hidden_notes(loss, self._loss_hidden) + unregistered_notes
        cost = f"loss {type(loss).__name__}" if loss is not None else "sum(R * output), R ~ N(0, 1)"
        if loss is None and type(y0) is tuple:  # (several outputs: see Program.baseline)
            cost = f"sum_i R_i . y_i over the floating outputs ({len(_floats(y0))} of {len(y0)}), R_i ~ N(0, 1)"
            if any("backward returned dCost/dinput" in p and "of shape" in p for r in results for p in r.problems):
                notes.append(f"{type(work).__name__}.forward returned a tuple of {len(y0)} outputs, so backward was "
                             "given a tuple of their gradients: a backward that takes one array makes an array of "
                             "the tuple (an output returned with its cache by mistake?)")
        report = GradientReport(results, cost=cost, notes=notes, evaluations=program.evaluations,
                                low_precision=headline, plain_arrays=plain)
        report.problems.extend(problems)
        layer_caveats = caveats(work, [r.name for r in results if not r.passed])
        in_place = first_pass.in_place or next((c for c in calls if c.modified), None)
        report.problems.extend(contract_problems(in_place, first_pass))
        if first_pass.released is not None:
            report.notes.append(f"{layer_label(*first_pass.released)}: backward released its cache (a second backward "
                                "on the same forward raises: the contract allows two; fine for training, which runs "
                                "one)")
        name_swapped(tensors, results)
        name_repeated_indices(work, tensors, results, x, calls)
        self._upstream_ignored(program, work, tensors, results, from_loss)
        one_sample(program, work, tensors, results, from_loss, self.seed)
        # A shared factor is looked for only when every tensor fails: a factor in a middle layer's
        # grad_output leaves the layers after it right, and would point at that layer, not at the loss.
        judged = [r for r in results if r.mode != "frozen" and r.name not in from_loss]
        shared = shared_factor(judged) if all(not r.passed and not r.problems for r in judged) else None
        # From here on, each step adds its notes to the report's.
        report.notes.extend(result_notes(report, from_loss, bool(precision_notes), shared))
        model_failed = [r for r in judged if not r.passed]
        loss_wrong = self._point_at_the_cause(report, loss, work, x, y0, program.targets, calls, judged, model_failed)
        self._note_blind_spots(report, work, tensors)
        self._failure_advice(report, model_failed, shared, calls, first_pass, loss_wrong)
        # The layers' caveats go first, because the failure is then the layer's design, not a bug.
        if not report.passed:
            report.notes[:0] = layer_caveats
        return report

    def _draw_targets(self, work: Layer, loss: Any, x: Any, rng: np.random.Generator) -> Any:
        """Targets for a loss given without them: ones it accepts (labels, probabilities), drawn by the loss itself
        when it can say (``random_targets``), else N(0, 1) of the output's shape (one array per output).  The loss
        judges them at once, where its refusal can say where they came from (pass targets=, or override
        random_targets); a refusal about the model's output alone is raised as it is."""
        probe = Program(work, None, x, None, np.random.default_rng(self.seed), reuse_prefix=False)
        y, _ = probe.baseline(check=False)  # unchecked, because the loss judges its output
        # targets the loss accepts (labels, probabilities), drawn by the loss itself when it can say
        draw = getattr(loss, "random_targets", None)
        targets: Any
        if type(y) is not tuple:
            targets = draw(np.asarray(y), rng) if callable(draw) else rng.standard_normal(np.shape(y))
        elif callable(draw) and _draws_for_several(loss):
            targets = draw(y, rng)  # several outputs, and a loss that says what it takes for them
        else:  # several outputs: N(0, 1) targets, one array each
            targets = tuple(rng.standard_normal(np.shape(a)) for a in y)
        try:  # the loss judges them now, where its refusal can say where they came from
            loss.forward(y if type(y) is tuple else np.asarray(y), targets)
        except Exception as error:
            about = str(error)
            if isinstance(error, MinidlError) and "y_true" not in about \
                    and ("y_pred" in about or not isinstance(error, TargetError)):
                raise  # about the model's output alone, not the targets: raised as it is
            # A loss of one's own refusing with a ValueError, IndexError, ... may be refusing the targets,
            # which its message cannot tell.
            sure = isinstance(error, MinidlError)
            hint = (f"({'the loss refused' if sure else 'raised by the loss on'} the targets the checker drew "
                    f"for it with {type(loss).__name__}.random_targets: {'' if sure else 'if they are the cause, '}"
                    "pass targets=, or override random_targets in the loss to draw targets it accepts)")
            if not isinstance(error, MinidlError):
                # a user's exception is raised as it is (its type, args, errno, attributes and notes),
                # the hint a note on it (Python >= 3.11; on 3.10 unchanged)
                _add_note(error, hint)
                raise
            again = _with_hint(error, hint)
            if again is error:
                raise
            raise again from error
        return targets

    def _scope_notes(self, batch: int | None, every: list[str], chosen: set[str] | None) -> list[str]:
        """Notes on what the check's scope leaves untested: a model or inputs given below (or above) float64 (the
        check runs on a float64 copy, so code run only in their dtype is not), a batch of one sample (a sum and a
        mean over the batch are then the same; said on the whole model's first check only), and the parameters
        ``params=`` left out (``every``: all the parameter names, ``chosen``: those checked, None for every one)."""
        notes = []
        given = () if self.inputs is None else self.inputs if type(self.inputs) is tuple else (self.inputs,)
        found = {"the model's parameters": [p.data.dtype for p in self.model.parameters()],
                 "the inputs": [a.dtype for a in given if isinstance(a, np.ndarray)]}
        other = {what: sorted({d.name for d in dtypes if d.kind == "f" and d != np.float64})
                 for what, dtypes in found.items()}
        if any(other.values()) and not self._moved:
            dtypes = sorted({d for names in other.values() for d in names})
            said = " and ".join(f"{what} are {' and '.join(names)}" for what, names in other.items() if names)
            notes.append(f"{said}: the check ran on a float64 copy, so code that runs only in {' or '.join(dtypes)} "
                         "(a branch on the dtype, a cast) was not run; check it by comparing the backward in that "
                         "dtype with the float64 one (docs/gradient-checker.md, \"In tests\")")
        if batch == 1 and self._whole_model and not self._moved:
            notes.append("the inputs hold one sample (a batch of N = 1): a sum and a mean over the batch are then the "
                         "same, so a backward that mixes them up (a 1/N missing or too many) cannot fail here; check "
                         "with several samples too (the checker draws 4 when it draws the inputs)")
        if chosen is not None and len(chosen) < len(every):
            left = [name for name in every if name not in chosen]
            notes.append(f"params= chose {', '.join(repr(name) for name in self.params or ()) or 'no parameter'}: "
                         f"the parameter(s) {', '.join(repr(name) for name in left)} were not checked")
        return notes

    def _upstream_ignored(self, program: Program, work: Layer, tensors: list[_Tensor], results: list[TensorResult],
                          from_loss: Collection[str]) -> None:
        """Whether the backward ignores its grad_output, for each of the model's tensors with failing elements
        (:func:`.diagnosis.ignored_upstream`, said before the tensor's diagnosis): two more backward passes at the
        point, with the cost's upstream gradient as it is and doubled, and for a tensor whose gradient did not
        change, two forwards along a random direction (the slope of ``sum(output)``: as if grad_output were all
        ones?).  Nothing runs when no tensor fails; a pass that raises says nothing."""
        by_name = {r.name: r for r in results}
        failing = [t for t in tensors if t.analytic is not None and not t.frozen and t.name not in from_loss
                   and t.name in by_name and by_name[t.name].failed]
        if not failing:
            return
        params = dict(work.named_parameters())
        rng = np.random.default_rng([self.seed, 37])

        def gradients(scale: float) -> list[np.ndarray]:
            program.reset()
            _zero_grad(work, self._loss_params)
            with _quiet(True):
                program.cost(work.forward(program.x))
                g = program.upstream()
                upstream: Any = tuple(None if a is None else scale * a for a in g) if type(g) is tuple else scale * g
                dx = work.backward(upstream)
            program.evaluations += 1  # (one forward and backward: counted as a cost evaluation)
            return [np.array(_input_gradient(dx, t.name) if is_input(t.name) else params[t.name].grad,
                             dtype=np.float64) for t in failing]

        def ones_slopes(t: _Tensor, analytic: np.ndarray) -> tuple[float, float] | None:
            saved = t.array.copy()
            d = rng.standard_normal(saved.shape) * np.maximum(np.abs(saved), 1.0)
            sums = []
            try:
                for step in (1e-6, -1e-6):
                    np.copyto(t.array, saved + step * d)
                    program.reset()
                    with _quiet(True):
                        y = work.forward(program.x)
                    program.evaluations += 1
                    if not (isinstance(y, np.ndarray) and y.dtype.kind == "f"):
                        return None
                    sums.append(float(np.sum(y)))
            finally:
                np.copyto(t.array, saved)
            return float(np.sum(analytic * d)), (sums[0] - sums[1]) / 2e-6

        try:
            once, twice = gradients(1.0), gradients(2.0)
            words = [ignored_upstream(a, a2, ones_slopes(t, a) if ignored_upstream(a, a2, None) else None)
                     for t, a, a2 in zip(failing, once, twice, strict=True)]
        except Exception:
            return
        finally:
            _zero_grad(work, self._loss_params)
            program.reset()
        for t, said in zip(failing, words, strict=True):
            if said is not None:
                r = by_name[t.name]
                r.diagnosis = f"{said}; {r.diagnosis}" if r.diagnosis else said

    def _check_tensors(self, program: Program, tensors: list[_Tensor], f0: float, batch: int | None,
                       culprits: _Culprits) -> list[TensorResult]:
        """Each tensor checked against central differences (:meth:`_check_tensor`), judged for the precision of
        the first low-precision layer its change goes through (``culprits``).  A cost found computed below float64
        as the tensors are checked (from its values) has every tensor checked so far checked again for it; a cost
        that has not moved is moved to tell a coarse one from a constant (:meth:`_stir`)."""
        results: list[TensorResult] = []
        shapes = [t.array.shape for t in tensors]
        loss = program.loss

        def check(i: int) -> TensorResult:
            t = tensors[i]
            t.notes[:], t.elements, t.rows = base_notes[i], None, None  # (as before a first check)
            try:
                with program.probing():  # (NumPy's warnings off once for the tensor's probes, see Program.evaluate)
                    return self._check_tensor(program, t, f0, batch, culprits.coarse_for(t))
            except Exception as error:
                _add_note(error, f"(GradientChecker: raised while perturbing tensor '{t.name}', "
                                 f"shape {tuple(t.array.shape)})")
                raise

        base_notes = [list(t.notes) for t in tensors]
        # (for the analytic round-off probe, measured only if some element fails: see _analytic_noise)
        self._live: tuple[Program, Layer, list[_Tensor]] | None = (program, program.model, tensors)
        self._analytic_sigma: dict[str, np.ndarray] | None = None
        try:
            for i, t in enumerate(tensors):
                t.keep_elements = shapes.count(t.array.shape) > 1
                results.append(check(i))
                flat = program.tally.flat() if loss is not None else None
                if flat is not None:
                    self._stir(program, tensors, flat, f0)
                # (the verdicts so far took the cost for float64, or, should a later value not fit, for lower)
                if loss is not None and program.tally.precision() != culprits.in_cost:
                    culprits.in_cost = program.tally.precision()
                    results[:] = [check(j) for j in range(i + 1)]
        finally:
            self._live = self._analytic_sigma = None
        for r in results:  # (an inherited backward_params that training does not call differs from a failing
            # backward as a matter of course: noise beside that failure; said only where backward is right)
            if not r.passed:
                r.notes = [n for n in r.notes if not n.startswith("backward_params disagrees with backward for ")]
        reversed_batch_verdicts(tensors, results)
        return results

    def _point_at_the_cause(self, report: GradientReport, loss: Any, work: Layer, x: Any, y0: Any, targets: Any,
                            calls: list[_Call], judged: list[TensorResult], model_failed: list[TensorResult]) -> bool:
        """Where the failures of the model's own tensors (``judged``; ``model_failed``: those that fail) point, in
        notes: each layer checked alone (with ``check_layers``), a layer run more than once in one forward pass with
        one cache, the loss checked alone, and check_layers' conclusion when every layer passes alone.  Returns
        whether the loss's backward (its dLoss/dy_pred) is wrong."""
        unchecked = self._check_sublayers(report, calls, work, x) if self.check_layers else []
        twice = called_twice(work, calls, report.results, report.layers)
        report.notes.extend(twice)
        loss_dy, loss_wrong = self._check_loss(report, loss, work, judged, model_failed, y0, targets)
        self._conclude_layers(report, loss, loss_dy, loss_wrong, model_failed, unchecked, twice)
        return loss_wrong

    def _failure_advice(self, report: GradientReport, model_failed: list[TensorResult], shared: float | None,
                        calls: list[_Call], first_pass: _FirstPass, loss_wrong: bool) -> None:
        """Advice for a failing check, in notes: run with check_layers when several of the model's own tensors
        fail (``model_failed``) and nothing already names the cause (a ``shared`` factor, the loss's backward), and
        keep the forward's draw when a backward draws from its layer's generator."""
        notes = report.notes
        if not self.check_layers and len(model_failed) >= 2 and shared is None \
                and len({c.path for c in calls}) > 2 and not loss_wrong:
            # a wrong dx in a middle layer fails every tensor before it, and no one tensor is to blame
            notes.append("several tensors fail: run with check_layers=True, which checks each layer alone and "
                         "names the ones that fail (a wrong dx fails every tensor upstream of its layer)")
        if not report.passed and first_pass.draws_in_backward is not None:
            notes.append(f"{layer_label(*first_pass.draws_in_backward)}: backward draws from the layer's random "
                         "generator: the noise it uses is then not the forward's; keep the forward's draw (its "
                         "mask or noise) in the cache and reuse it in backward")

    def _check_loss(self, report: GradientReport, loss: Any, work: Layer, judged: list[TensorResult],
                    model_failed: list[TensorResult], y0: Any, targets: Any) -> tuple[TensorResult | None, bool]:
        """The loss checked alone on the model's output ``y0`` when the model's own tensors (``judged``) fail
        (``model_failed``) and the loss may be to blame, and a note when that finds its dLoss/dy_pred or its own
        parameters' gradient wrong; returns the dLoss/dy_pred result (None when it was not checked) and whether it
        is wrong."""
        # the loss checked alone on the model's output, when the model's own tensors fail and the loss may be
        # to blame: with check_layers (no layer to blame), or when every tensor fails
        loss_alone = None
        if loss is not None and model_failed and not any(r.problems for r in model_failed) \
                and (self.check_layers or len(model_failed) == len(judged)) and not isinstance(work, Identity):
            loss_alone = self._check_loss_alone(y0, targets)
            report.evaluations += loss_alone.evaluations if loss_alone is not None else 0
        # judged by its dLoss/dy_pred (the Identity's input row); its own parameters are named apart: a wrong
        # gradient into them leaves the model's back-pass right
        loss_dy = next((r for r in loss_alone.results if is_input(r.name)), None) if loss_alone is not None else None
        loss_wrong = loss_dy is not None and not loss_dy.passed
        loss_params_failed = ", ".join(f"'{r.name}'" for r in loss_alone.results
                                       if not is_input(r.name) and not r.passed) if loss_alone is not None else ""
        if loss_wrong:
            assert loss_dy is not None
            words = f": {loss_dy.diagnosis}" if loss_dy.diagnosis else \
                f" (worst element {loss_dy.worst_index}: analytic {loss_dy.analytic:.6g}, numerical " \
                f"{loss_dy.numerical:.6g})"
            also = f" (and so do its parameter(s) {loss_params_failed})" if loss_params_failed else ""
            report.notes.append(f"the loss's backward is wrong: checked alone on the model's output, "
                                f"{type(loss).__name__}.backward() (dLoss/dy_pred) fails{words}{also}; the model's "
                                "tensors fail because the back-pass starts from that gradient")
        elif loss_params_failed:
            report.notes.append(f"checked alone on the model's output, {type(loss).__name__}.backward()'s "
                                "dLoss/dy_pred is right: the model's tensors fail for a reason of their own; apart "
                                f"from that, the gradient the loss adds into its parameter(s) {loss_params_failed} "
                                "is wrong")
        return loss_dy, loss_wrong

    def _conclude_layers(self, report: GradientReport, loss: Any, loss_dy: TensorResult | None, loss_wrong: bool,
                         model_failed: list[TensorResult], unchecked: list[str], twice: list[str]) -> None:
        """check_layers' conclusion, when the model fails (``model_failed``: its own tensors that fail) while every
        layer checked alone passes (and the loss checked alone, ``loss_dy``, is not wrong, ``loss_wrong``): the error
        is in how the model combines its layers' gradients, in a layer not checked alone (``unchecked``), or in a
        layer run more than once (``twice``: those notes)."""
        if not loss_wrong and self.check_layers and model_failed and report.layers \
                and all(r.passed for r in report.layers.values()):
            also = f", and so does the loss {type(loss).__name__} (checked alone on the model's output)" \
                if loss_dy is not None else ""
            tail = " or in the loss's backward" if loss is not None and loss_dy is None else ""
            where = "the model's own backward (how a Model of your own combines its layers' gradients: a branch " \
                "or a skip path not added, a layer's gradient passed to the wrong one, a wrong order)"
            # (a layer that could not be checked alone may be the one that is wrong)
            cause = f"the error is in {where}{tail}" if not unchecked else \
                f"the error is in a layer not checked alone ({', '.join(unchecked)}: see the notes above), or in " \
                f"{where}{tail}"
            if twice:
                cause = "the layer(s) run more than once in one forward pass (see the note above) are the likely " \
                    f"cause; if not, {cause}"
            report.notes.append(f"every layer {'checked alone passes' if unchecked else 'passes alone'}{also}, yet "
                                f"the model fails: {cause}")

    def _note_blind_spots(self, report: GradientReport, work: Layer, tensors: list[_Tensor]) -> None:
        """On a passing check of the whole model, a note on the parameters of one's own at a point where a wrong
        backward cannot show (all zero; all 1 or -1), kept in ``_blind`` for :meth:`run` to check again with them
        moved off it (:meth:`_check_moved`)."""
        # a parameter all zero at the point: every term it multiplies is zero there, right or wrong.  Only the
        # user's layers' and the loss's: a built-in layer's backward is tested at random points (its zero
        # LayerNorm/BatchNorm beta, added, not multiplied, at every model's init would make it noise)
        users = {id(p) for _, layer in work.named_layers() if not minidl_own(layer)
                 for p in layer._parameters.values()} | {id(p) for _, p in self._loss_params}
        by_tensor = dict(work.named_parameters()) | dict(self._loss_params)
        own = [t for t in tensors if not is_input(t.name) and not t.frozen and t.analytic is not None
               and t.array.size > 0 and t.name in by_tensor and id(by_tensor[t.name]) in users]
        # a parameter all 1 (or -1): w, 1/w and w**3 are equal there (and w**2 too at 1), so a backward that uses
        # one where another is due passes (a temperature T = 1 whose gradient divides by T, not T**2)
        blind_spots = [
            ([t.name for t in own if not np.any(t.array)],
             "are all zero at the checked point: terms they multiply are not tested (a backward that leaves out such "
             f"a term, or uses a value computed without it, passes){_BLIND_ADVICE['zero']}"),
            ([t.name for t in own if np.all(np.abs(t.array) == 1)],
             "are all 1 or -1 at the checked point, where w, 1/w and w**3 are equal (and w**2 too at 1): a backward "
             "that uses one of them where another is due passes (a temperature T = 1 whose gradient divides by T, "
             f"not T**2){_BLIND_ADVICE['unit']}"),
        ]
        if report.passed and self._whole_model:
            report.notes.extend(f"the parameter(s) {', '.join(repr(name) for name in names)} {words}"
                                for names, words in blind_spots if names)
            self._blind = [(name, kind) for (names, _), kind in zip(blind_spots, ("zero", "unit"), strict=True)
                           for name in names]

    # ------------------------------------------------------------------ precision
    def _low_precision_layers(self, work: Layer, x: Any, calls: list[_Call]) -> list[tuple[_Call, np.dtype]]:
        """The layers that compute below float64 (see :mod:`.precision`) and their precisions, in the order their
        calls return (the forward's, a sub-layer before its container), or [] (the usual case).

        ``calls``, a pass recorded at the checked point, say whether some layer's output holds only float32 (or
        float16) numbers. A float64 layer gives that too when its input and weights are such numbers (a float32
        data set; a float32 model, converted: an Identity, a ReLU, an Embedding pass them on), so then one more
        recorded forward runs with every floating input, parameter and buffer moved off those numbers (by a
        relative ~1e-9): a layer whose output still holds only such numbers, while its input or its parameters
        do not, computes in that precision (a container returning such a layer's output is that layer, not
        another). Every one is kept: which of them a tensor's change goes through is the checker's next question
        (:meth:`_through`). The state of ``work`` is put back."""
        if not any(array_precision(c.y) is not None for c in calls):
            return []  # (the usual case: nothing more to run)
        snapshot = LayerSnapshot.take(work)
        rng = np.random.default_rng([self.seed, 23])

        def moved(a: Any) -> Any:
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                return copy_value(a)
            signs = rng.integers(0, 2, size=a.shape) * 2.0 - 1.0
            return a * (1.0 + signs * rng.uniform(0.5, 1.0, size=a.shape) * 1e-9)

        found: list[tuple[_Call, np.dtype]] = []
        try:
            with _quiet(True):
                for p in work.parameters():
                    if p.data.dtype.kind == "f" and p.data.flags.writeable:
                        np.copyto(p.data, moved(p.data))
                for layer in work.layers():
                    for buf in layer._buffers.values():
                        if buf is not None and buf.dtype.kind == "f" and buf.flags.writeable:
                            np.copyto(buf, moved(buf))
                with _Recorder(work) as rec:
                    work.forward(tuple(moved(a) for a in x) if is_several(x) else moved(x))
            for c in rec.calls:  # (innermost first: a layer's call is recorded when it returns)
                dtype = array_precision(c.y)
                if dtype is not None and (shows_float64(c.x, dtype)
                                          or any(shows_float64(p.data, dtype) for p in c.layer.parameters())) \
                        and not any(same(c.y, f.y) and any(sub is f.layer for sub in c.layer.layers())
                                    for f, _ in found):
                    found.append((c, dtype))
        except Exception:  # (a layer that refuses the moved values: nothing is said)
            return []
        finally:
            snapshot.restore()
        return found

    def _through(self, program: Program, work: Layer, t: _Tensor, layer: Layer, dtype: np.dtype,
                 calls: list[_Call], eps: float) -> _Path:
        """How the cost's dependence on the tensor ``t`` meets ``layer``, which computes in ``dtype``: THROUGH if
        ``t`` is one of its parameters, or if, moved by the step it would be judged on (each element by ``eps
        max(|w|, 1)`` times 0.5 to 1, either sign: a smaller move may not change a float16 output), it changes
        what ``layer`` returns in a recorded forward (``calls``: one at the point) and that change reaches the
        model's output -- which a second forward, with ``layer`` returning what it returned at the point, tells.
        SWALLOWED if the layer's output stayed put while its input moved, but by less than ``dtype`` resolves
        (its input rounded to ``dtype`` is the same: the rounding is why); APART otherwise (a layer whose output
        stays put, a constant, or is multiplied by zero after it, does not make the cost coarse along ``t``).
        One or two forwards, counted in ``program.evaluations``, for a tensor in a stage up to the layer's only;
        a forward that raises or calls ``layer`` a different number of times is taken to go through (the
        cautious side)."""
        if any(p.data is t.array for p in layer.parameters()):
            return _Path.THROUGH
        saved = t.array.copy()
        rng = np.random.default_rng([self.seed, 29])
        at_point = [c for c in calls if c.layer is layer]
        pinned = iter([c.y for c in at_point])
        own, original = layer.__dict__.get("forward"), layer.forward

        def pin(x: Any) -> Any:  # (the layer runs, its generators and buffers move as usual; its output is kept)
            original(x)
            return copy_value(next(pinned))

        def rounded(value: Any) -> list[np.ndarray]:
            return [a.astype(dtype) for a in float_arrays(value)]

        try:
            np.copyto(t.array, saved + eps * np.maximum(np.abs(saved), 1.0) * rng.uniform(0.5, 1.0, saved.shape)
                      * rng.choice([-1.0, 1.0], saved.shape))
            program.reset()
            program.evaluations += 1
            with _quiet(True), _Recorder(work) as rec:
                moved = work.forward(program.x)
            after = [c for c in rec.calls if c.layer is layer]
            if len(after) != len(at_point):
                return _Path.THROUGH
            if all(same(a.y, b.y) for a, b in zip(at_point, after, strict=True)):
                # (its output did not move: the cost does not move through it, for its rounding's sake if its input
                # moved by less than it resolves)
                swallowed = any(not same(a.x, b.x) for a, b in zip(at_point, after, strict=True)) and all(
                    all(np.array_equal(u, v, equal_nan=True) for u, v in zip(rounded(a.x), rounded(b.x), strict=True))
                    for a, b in zip(at_point, after, strict=True))
                return _Path.SWALLOWED if swallowed else _Path.APART
            program.reset()
            program.evaluations += 1
            object.__setattr__(layer, "forward", pin)
            with _quiet(True):
                kept = work.forward(program.x)
            return _Path.THROUGH if not same(moved, kept) else _Path.APART
        except Exception:  # (a layer that refuses the moved point: taken to go through, the cautious side)
            return _Path.THROUGH
        finally:
            if own is None:
                layer.__dict__.pop("forward", None)
            else:
                object.__setattr__(layer, "forward", own)
            np.copyto(t.array, saved)
            program.reset()

    def _stir(self, program: Program, tensors: list[_Tensor], dtype: np.dtype, f0: float) -> None:
        """Move a cost that has not moved (see :meth:`.precision.CostTally.flat`) far enough to tell a coarse
        one from a constant: the first tensor that backward says it moves is moved along its analytic gradient
        ``a``, by ``k s a`` for ``k = +-1 .. +-4``, ``s`` such that the cost should change by ``37 (1 + 1/pi)``
        (~48.8) spacings of ``dtype``'s numbers at ``f0`` per unit of ``k`` (8 evaluations, once). Not a whole
        number of spacings: a float64 cost linear along ``a`` would then land on ``dtype`` numbers from a
        ``dtype`` number ``f0`` and pass for a coarse one (a hinge's dead side, reached by the move); rounded to
        ``dtype``, the values are not short either. A coarse cost then takes several values, all ``dtype``
        numbers, which the tally sees; a constant one (a forward that ignores the tensor) takes none."""
        program.tally.stirred = True
        t = next((t for t in tensors if not t.frozen and t.analytic is not None and t.analytic.shape == t.array.shape
                  and np.all(np.isfinite(t.analytic)) and np.any(t.analytic)), None)
        if t is None or not math.isfinite(f0):
            return
        saved = t.array.copy()
        a = t.analytic
        assert a is not None
        s = STIR * float(np.spacing(np.asarray(abs(f0)).astype(dtype))) / float(np.sum(a * a))
        try:
            with _quiet(True):
                for k in (1, -1, 2, -2, 3, -3, 4, -4):
                    np.copyto(t.array, saved + k * s * a)
                    with contextlib.suppress(ValueError, ArithmeticError):  # (outside its domain: no value)
                        program.evaluate(t.stage)
        finally:
            np.copyto(t.array, saved)

    def _check_loss_alone(self, y0: Any, targets: Any) -> GradientReport | None:
        """The loss checked alone (its dLoss/dy_pred, its parameters) on the model's output ``y0`` and the
        check's targets: an ``Identity`` model fed ``y0``.  None when ``y0`` is not one float array, or
        that check raised (the model's check says what it can)."""
        if not (isinstance(y0, np.ndarray) and y0.dtype.kind == "f" and y0.ndim >= 1 and y0.shape[0] > 0):
            return None
        checker = GradientChecker(Identity(), loss=self.loss, inputs=y0, targets=targets, eps=self.eps,
                                  seed=self.seed, mode=self.mode, safety=self.safety, samples=self.samples,
                                  directions=self.directions, full_max=self.full_max)
        checker._whole_model = False
        try:
            return checker.run()
        except Exception:
            return None

    # ------------------------------------------------------------------ determinism
    def _record(self, program: Program, work: Layer) -> tuple[float, list[_Call]]:
        program.reset()
        with _Recorder(work) as rec:
            f = program.cost(work.forward(program.x))
        program.evaluations += 1
        return f, rec.calls

    def _first_forward(self, work: Layer, x: Any) -> _FirstPass:
        """One recorded forward and backward before anything else runs (the state of ``work`` put back
        afterwards): the first sub-layer call whose forward modified its input in place, the first
        that changed a parameter, and the first layer whose backward changed its ``grad_output``.

        Only the very first forward can show it: a layer such as an in-place ReLU leaves an input it
        has already modified unchanged.  It runs on ``x`` with its batch reversed (the same values,
        so the same domain), not on ``x``: a layer that keeps a cache from an earlier forward (made
        once, or again only when the shape changes) then holds the wrong one for the analytic
        backward, and fails, as it would from the second batch of a training run."""
        snapshot = LayerSnapshot.take(work)
        grad_modified: list[tuple[str, Layer]] = []
        draws: list[tuple[str, Layer]] = []
        cache_modified: tuple[str, Layer, str, tuple[str, ...]] | None = None
        rebound: tuple[tuple[str, bool], ...] = ()
        released: tuple[str, Layer] | None = None
        decoy: Any = tuple(_reversed(a) for a in x) if is_several(x) else _reversed(x)
        rng = np.random.default_rng([self.seed, 17])
        # Other weights too, and a backward: a cache derived from the weights (W.T made once) is then
        # stale, as after an optimizer's step.  If the model refuses that (a layer whose weights have a
        # range), the reversed batch on the weights themselves; if it refuses that too, the input itself.
        attempts = [(True, decoy), (False, decoy), (False, x)]
        try:
            for k, (move, value) in enumerate(attempts):
                snapshot.restore()
                if move:
                    # Quiet, because a frozen parameter may hold inf as state, and inf - inf is NaN there.
                    with _quiet(True):
                        for p in work.parameters():
                            if p.data.dtype.kind == "f" and p.data.flags.writeable:
                                p.data += 0.25 * (np.abs(p.data) + 0.01) * rng.standard_normal(p.data.shape)
                # No warnings with moved weights, because they may take a correct layer's math out of range.
                try:
                    before = {name: p for name, p in work.named_parameters()}
                    with _Recorder(work, watch=True) as rec, _quiet(move):
                        y = work.forward(copy_value(value))
                    rebound = tuple((name, name in before) for name, p in work.named_parameters()
                                    if before.get(name) is not p)
                    if rebound:  # made once, lazily ("creates"), or at every forward ("rebinds"): one more tells
                        made = dict(work.named_parameters())
                        with contextlib.suppress(Exception), _quiet(True):
                            work.forward(copy_value(value))
                        now = dict(work.named_parameters())
                        rebound = tuple((name, existed or now.get(name) is not made[name])
                                        for name, existed in rebound)
                    break
                except Exception:
                    if k == len(attempts) - 1:
                        raise
            if isinstance(y, np.ndarray) and y.dtype.kind == "f":
                shape: tuple[int, ...] = y.shape  # (y is the forward's Any, narrowed: its shape is Any)
                upstream = rng.standard_normal(shape)
                given = upstream.copy()
                done = False
                # An error here is suppressed, because the analytic pass raises it too.
                with contextlib.suppress(Exception), _quiet(move), \
                        _Recorder(work, watch=True, forwards=rec.calls) as back:
                    _zero_grad(work, ())
                    after_forward, attributes = LayerSnapshot.take(work), _Attributes.take(work)
                    work.backward(upstream)
                    done = True
                grad_modified, draws = back.grad_modified, back.draws_in_backward
                if done and not grad_modified and not draws:
                    released = attributes.released()
                    if released is not None:  # (does a second backward on what the first left raise?)
                        after_forward.restore()
                        try:
                            with _quiet(True):
                                work.backward(given.copy())
                            released = None
                        except Exception:
                            pass
                    after_forward.restore()
                    attributes.restore()
                    with _quiet(move):
                        again = _second_backward(work, back.back_calls, given, rec.calls)
                    if back.cache_modified:  # (named by what it modified; and what the second backward gave)
                        path, layer, what = back.cache_modified[0]
                        differ = again[2] if again is not None and again[1] is layer else ()
                        cache_modified = path, layer, what, differ
                    elif again is not None:
                        cache_modified = again[0], again[1], "cache", again[2]
        finally:
            snapshot.restore()
        return _FirstPass(next((c for c in rec.calls if c.modified), None),
                          next((c for c in rec.calls if c.changed_params), None),
                          grad_modified[0] if grad_modified else None, draws[0] if draws else None,
                          cache_modified, rebound, released if cache_modified is None else None)

    def _check_determinism(self, program: Program, work: Layer, f0: float,
                           in_place: _Call | None = None) -> list[_Call]:
        """Evaluate the cost again (twice, recording every layer's output); on any difference, name
        the parameters a forward at this same point changes, or the layer that modified its input in
        place (``in_place``, found by :meth:`_first_forward`), or else the first layer whose output
        changed for the same input.  Returns the recorded calls."""
        again = program.evaluate(0)
        f1, calls1 = self._record(program, work)
        f2, calls2 = self._record(program, work)
        in_place = in_place or next((c for c in calls1 if c.modified), None)
        if again == f0 == f1 == f2 or all(math.isnan(f) for f in (f0, again, f1, f2)):
            # A cost that is NaN at the point itself is no nondeterminism: no element can be judged, which
            # each tensor says.
            return calls1
        # the parameters one more forward at this same point changes (frozen ones too: state kept in a
        # parameter); a change the first pass saw but that stopped (idempotent) is not the cause
        before = [(name, p, p.data.copy()) for name, p in work.named_parameters()]
        # A forward that raises is let be, because what it changed before failing still counts.
        with contextlib.suppress(Exception):
            program.evaluate(0)
        changed = [name for name, p, data in before if not same(p.data, data)]
        if changed:
            names = ", ".join(f"'{name}'" for name in changed)
            raise NonDeterministicError(
                f"GradientChecker: a forward changed the parameter(s) {names}, so evaluations at the same point "
                f"gave different costs ({f0!r}, {again!r}, {f1!r}, {f2!r}). A forward reads its parameters, only "
                "an optimizer changes them; state that should change in a forward (running statistics) is a "
                "buffer (self.register_buffer)."
            )
        if in_place is not None:
            raise NonDeterministicError(
                f"GradientChecker: {layer_label(in_place.path, in_place.layer)}: forward modified its input "
                f"in place, so every evaluation starts from a different input and evaluations at the same "
                f"point gave different costs ({f0!r}, {again!r}, {f1!r}, {f2!r}). Never modify x in forward "
                "(write y = x * 2, not x *= 2; np.maximum(x, 0), not np.maximum(x, 0, out=x))."
            )
        where = "the cost (the loss, or something outside the layers)"
        for c1, c2 in zip(calls1, calls2, strict=False):
            if not same(c1.y, c2.y):
                if same(c1.x, c2.x):
                    where = (f"{layer_label(c1.path, c1.layer)}: the same input gave a different output")
                else:
                    where = (f"{layer_label(c1.path, c1.layer)}, whose input already differed (state kept "
                             "outside the registered layers?)")
                break
        else:
            if len(calls1) != len(calls2):
                where = "the model: the two forward passes called different layers"
        raise NonDeterministicError(
            f"GradientChecker: the forward is not deterministic, so it cannot be differenced: two "
            f"evaluations at the same point gave different costs ({f0!r}, {again!r}, {f1!r}, {f2!r}). "
            f"Look at {where}. Randomness must come from a np.random.Generator assigned as a layer "
            "attribute (self.rng = ...), which the checker replays; a generator kept in a list or dict, "
            "np.random.* global functions, or state that changes between calls cannot be replayed (keep "
            "such state, a running statistic, as a buffer: self.register_buffer(name, array), which the "
            "checker puts back before every evaluation)."
        )

    def _check_prefix_reuse(self, program: Program, tensors: list[_Tensor], f0: float,
                            notes: list[str]) -> None:
        for k in sorted({t.stage for t in tensors} - {0}):
            again = program.evaluate(k)
            if again != f0 and not (math.isnan(again) and math.isnan(f0)):
                for t in tensors:
                    t.stage = 0
                notes.append(f"re-running from stage {k} did not reproduce the cost; prefix reuse is off")
                return

    # ------------------------------------------------------------------ analytic side
    def _cache_modified_tensors(self, tensors: list[_Tensor], culprit: tuple[str, Layer, str, tuple[str, ...]]) -> None:
        """Give the tensors whose gradient a second backward on the same forward gave otherwise (``culprit``: the
        layer whose backward modified what its forward left, see :func:`_second_backward`) that problem: the
        culprit's own parameters, and the model's input when the culprit is the model itself.  The accumulation
        check's words on them ("assigns into .grad", a second backward's other dx) are dropped: it runs a forward
        again, which rebuilt the cache (or read an input the backward had changed)."""
        path, layer, what, differ = culprit
        names = {f"{path}.{d}" if path else d for d in differ if d != "dx"}
        if not path and "dx" in differ:
            names.update(t.name for t in tensors if is_input(t.name))
        words = "input" if what == "input" else "output" if what == "output" else "output or cache"
        misleading = ("backward assigns into .grad", "a second backward did not add",
                      "two backward passes at the same point returned different")
        for t in tensors:
            if t.name in names:
                t.problems = [p for p in t.problems if not p.startswith(misleading)]
                t.problems.append(f"{layer_label(path, layer)}: backward modified its forward's {words} in place: a "
                                  f"second backward on the same forward gives another dCost/d{t.name} (see the "
                                  "problem below the table)")

    def _backward(self, program: Program, work: Layer, keep: bool = False) -> tuple[float, Any, Any, Any]:
        """A forward and backward at the checked point, after a forward on the batch reversed: the cost, what
        backward returned, and copies of the output and of the upstream gradient it was given.  ``keep``: the
        checker's input is put back after the backward (a backward that modifies its forward's input)."""
        # a forward on other data first: a backward must use its own forward's cache, not the one before
        program.reset()
        with contextlib.suppress(Exception), _quiet(True):
            x = program.x
            work.forward(tuple(_reversed(a) for a in x) if is_several(x) else _reversed(x))
        program.reset()
        y = work.forward(program.x)
        f = program.cost(y)
        upstream = program.upstream()
        kept = copy_value(y), copy_value(upstream)  # (before the backward, which must not change them)
        inputs = [a for _, a in named_inputs(program.x) if isinstance(a, np.ndarray) and a.flags.writeable] \
            if keep else []
        saved = [a.copy() for a in inputs]
        try:
            dx = work.backward(upstream)
        except (TypeError, ValueError, AttributeError, IndexError) as error:
            if program.loss is None and type(upstream) is tuple:
                _add_note(error, _several_gradients_note(work, y, upstream))
            raise
        finally:
            for a, before in zip(inputs, saved, strict=True):
                np.copyto(a, before)
        return f, dx, *kept

    def _check_reversed_batch(self, program: Program, work: Layer, tensors: list[_Tensor], y: Any,
                              upstream: Any) -> None:
        """Find each tensor whose backward is not batch-permutation consistent: its words (see
        :func:`.findings.reversed_batch_problem`) in ``t.reversed_batch``, for its result.

        A forward on the batch reversed, then a backward with the upstream gradient reversed (``y`` and
        ``upstream``: the output and the upstream gradient at the checked point).  Where the forward is
        equivariant -- its outputs on the reversed batch are the reversed outputs, near the point too (a
        per-sample layer, a batch norm; not a dropout's draws, a time-major sequence, a layer mixing the
        positions of axis 0) --, the exact parameter gradients are the checked point's and the input gradient is
        the reversed one.  A backward that reads a cache made at an earlier forward (once, at the first; or kept
        from another call) gives others, whatever the checked point's gradients are: the check at that point
        alone passes when the cache happens to hold it (the user ran ``model(x)`` on the same ``x``).

        Equivariance is asked of the outputs at the point (within 1e-10 of their largest value) and, per
        tensor, of the outputs' change when that tensor alone moves by ``eps`` (a step as the checker's) in a
        random Gaussian direction (within 1e-6 of the change): a parameter that acts per position of axis 0 (a
        bias of the batch's shape) breaks it for its own gradient only, however small it is, and a saturated
        output that hides a broken one at the point shows it in its change.  A tensor that fails this is not compared;
        all are skipped for a batch of one sample, an output or upstream gradient that is no array (or tuple of
        them), a model that refuses the reversed batch or a moved tensor, or a layer computing at float16.  Two
        forwards per tensor, one more forward and a backward; not counted as cost evaluations.  The state
        (generators, buffers, the tensors' values) is put back and the gradients zeroed."""
        batch = _batch_of(program.x)
        loss_names = {name for name, _ in self._loss_params}
        live = [t for t in tensors if t.analytic is not None and not t.frozen and not t.problems
                and t.name not in loss_names and t.array.flags.writeable]
        x = program.x
        decoy, y_flipped, up_flipped = _flipped(x, batch), _flipped(y, batch), _flipped(upstream, batch)
        if batch is None or batch < 2 or not live or decoy is None or y_flipped is None or up_flipped is None:
            return
        params = dict(work.named_parameters())
        if program.loss is not None:  # (a parameter the loss's backward adds to, weight decay: not the model's alone)
            try:
                _zero_grad(work, self._loss_params)
                program.cost(y)
                program.upstream()
                touched = {name for name, p in params.items() if np.any(p.grad)}
            except Exception:
                return
            finally:
                _zero_grad(work, self._loss_params)
            live = [t for t in live if t.name not in touched]
        rng = np.random.default_rng([self.seed, 31])

        def forward(value: Any) -> Any:
            program.reset()
            return work.forward(value)

        again: dict[str, np.ndarray | None] = {}
        try:
            with _quiet(True):
                y_again = forward(decoy)
                if not _equivariant(y_again, y_flipped, 1e-10):
                    return
                equivariant = []
                for t in live:
                    saved = t.array.copy()
                    # (Gaussian, not +-1 of one size: a direction that the reversal maps onto itself hides a
                    # per-position parameter)
                    direction = rng.standard_normal(saved.shape)
                    try:
                        t.array += direction * self.eps * np.maximum(np.abs(saved), 1.0)
                        moved = _differences(forward(x), y)
                        moved_again = _differences(forward(_flipped(x, batch)), y_again)
                    finally:
                        np.copyto(t.array, saved)
                    if moved is not None and _equivariant(moved_again, _flipped(moved, batch), 1e-6):
                        equivariant.append(t)
                if not equivariant:
                    return
                _zero_grad(work, self._loss_params)
                with _Recorder(work) as rec:
                    forward(decoy)
                dx = work.backward(up_flipped)
            for t in equivariant:
                if not is_input(t.name):
                    again[t.name] = params[t.name].grad.copy() if t.name in params else None
                    continue
                g = _input_gradient(dx, t.name) if t.name == "input" or (
                    isinstance(dx, (tuple, list)) and len(dx) == len(x)) else None
                again[t.name] = _flipped(np.asarray(g, dtype=np.float64), batch) if g is not None else None
        except Exception:
            return  # (the model refuses the reversed batch, or a moved tensor: nothing is said)
        finally:
            _zero_grad(work, self._loss_params)
            program.reset()
        # Round-off: float64 sums in another order; a layer computing at float32 allows for its precision.
        low = [d for d in (array_precision(c.y) for c in rec.calls) if d is not None]
        rel = max([1e-5] + [1e5 * unit_round_off(d) for d in low])
        if rel >= 0.1:
            return
        floor = rel * max(float(np.max(np.abs(t.analytic), initial=0.0)) for t in live if t.analytic is not None)
        owners = dict(work.named_layers())
        for t in equivariant:
            got = again.get(t.name)
            if t.analytic is None or got is None:
                continue
            path = t.name.rpartition(".")[0]
            owner = None if is_input(t.name) else layer_label(path, owners.get(path, work))
            problem = reversed_batch_problem(t.name, owner, t.analytic, got, rel, floor)
            t.reversed_batch = problem

    def _analytic(self, program: Program, work: Layer, x: Any, problems: list[str], chosen: set[str] | None,
                  checked: list[bool], first_pass: _FirstPass) -> list[_Tensor]:
        """The tensors to check with their analytic gradients: the parameters ``chosen`` (None: all) and the
        inputs ``checked`` (one bool per input); contract problems that belong to no tensor are added to
        ``problems``.  What the first pass found (``first_pass``): a parameter a forward rebinds is not checked (its
        problem says why); a parameter (or the model's input) whose gradient a second backward on the same forward
        gave otherwise, as its layer's backward modified its cache, gets that problem, not the misleading one of
        the accumulation check (which runs a forward again)."""
        params = list(work.named_parameters()) + self._loss_params
        if chosen is not None:  # with params=, the others are not perturbed; their backward still runs
            params = [(name, p) for name, p in params if name in chosen]
        _zero_grad_poisoned(work, self._loss_params)
        keep = first_pass.cache_modified is not None and first_pass.cache_modified[2] == "input"
        cost, dx, y, upstream = self._backward(program, work, keep)
        dx = copy_value(dx) if dx is not None else None
        # a frozen parameter whose backward wrote no gradient (as the built-in layers do) has none to check
        frozen = [not p.requires_grad and not p.has_grad for _, p in params]
        first = [p.grad.copy() for _, p in params]
        # the accumulation contract: a second backward must add the same gradient again
        _, dx2, _, _ = self._backward(program, work, keep)
        second = [p.grad.copy() for _, p in params]
        stage_of = program.first_stage_of()
        # A loss's parameter changes the cost only, so only the last stage is run again for it.
        stage_of.update((id(p), len(program.stages) - 1) for _, p in self._loss_params)
        tensors: list[_Tensor] = []
        for (name, p), g1, g2, is_frozen in zip(params, first, second, frozen, strict=True):
            t = _Tensor(name, p.data, stage_of.get(id(p), 0), g1, bias_rows=p.bias_rows)
            if is_frozen:
                t.analytic, t.frozen = None, True
                t.notes.append("frozen (requires_grad=False) and backward wrote no gradient for it, as the "
                               "built-in layers do for a frozen parameter: not checked (unfreeze it with "
                               "requires_grad=True to check its gradient)")
            elif g1.shape != p.data.shape:
                t.problems.append(f"backward left .grad of shape {g1.shape}, expected {p.data.shape}")
                t.analytic = None
            elif not math.isfinite(cost):
                pass  # a cost that is NaN/inf at the point makes such gradients, rightly: nothing to compare
            elif np.isnan(g1).any():
                t.problems.append("backward left NaN in .grad: a NaN gradient, or a backward that took "
                                  "grad_target() and did not overwrite every element when told to (the checker "
                                  "fills .grad with NaN before zero_grad, which only marks it zero)")
            elif g2.shape == g1.shape:
                # adding the same gradient twice may round differently from doubling it when a layer
                # adds several terms; a violated contract is off by a whole gradient, not by round-off
                tol = 1e-7 * (np.abs(g1) + float(np.max(np.abs(g1), initial=0.0)))
                if not np.all(np.abs(g2 - 2 * g1) <= tol):
                    if np.any(g1 != 0) and np.all(np.abs(g2 - g1) <= tol):
                        t.problems.append("backward assigns into .grad instead of adding (+=): a second "
                                          "backward gave the same gradient, not twice it")
                    else:
                        t.problems.append("a second backward did not add the same gradient again "
                                          "(the accumulation contract: param.grad += ...)")
            tensors.append(t)
        if any(checked):
            tensors[:0] = _input_tensors(x, dx, dx2, checked)
            problems.extend(_input_problems(x, dx, checked))
        # (one made at the first forward and kept is there now, built: checked as it is)
        rebound = [name for name, again in first_pass.rebound if again]
        built = [name for name, again in first_pass.rebound if not again]
        for t in tensors:
            if t.name in rebound:
                t.problems, t.analytic = [rebound_problem(t.name)], None
                rebound.remove(t.name)
            elif t.name in built:
                t.notes.append(built_lazily_note(t.name))
        problems.extend(rebound_problem(name) for name in rebound)
        if first_pass.cache_modified is not None:
            self._cache_modified_tensors(tensors, first_pass.cache_modified)
        self._check_reversed_batch(program, work, tensors, y, upstream)
        _zero_grad(work, self._loss_params)
        return tensors

    # ------------------------------------------------------------------ the training path
    def _check_backward_params(self, program: Program, work: Layer, tensors: list[_Tensor],
                               calls: list[_Call]) -> None:
        """``fit`` trains with ``parameter_backward(model)`` -- ``model.backward_params`` unless that would
        bypass a custom ``backward`` -- and ``Sequential.backward_params`` does the same for its first
        layer with parameters: it must add exactly the parameter gradients that ``backward`` adds.

        Checked for the model (at the checked point, with the cost's upstream gradient) and for every
        sub-layer whose class has its own ``backward_params`` (on the input it received in the
        model's forward, with a random upstream gradient).  A disagreement where training would use
        ``backward_params`` is a problem on each parameter tensor it affects; an inherited
        ``backward_params`` that training never uses (a subclass overrides ``backward`` only) but that
        disagrees is a note."""
        by_id = {id(p): name for name, p in work.named_parameters()}
        by_name = {t.name: t for t in tensors}

        def compare(layer: Layer, where: str, params: list[tuple[str, Any]],
                    run: Callable[[str], list[np.ndarray]]) -> None:
            used = parameter_backward(layer) != layer.backward
            # (a frozen parameter's gradient is used by no optimizer: backward_params may skip it)
            targets = [by_name.get(by_id.get(id(p), "")) if p.requires_grad else None for _, p in params]
            try:
                grads_b = run("backward")
            except Exception:
                return  # the analytic pass already ran backward at this point; nothing to compare
            try:
                grads_p = run("backward_params")
            except Exception as error:
                if used:
                    for t in targets:
                        if t is not None:
                            t.problems.append(f"backward_params of {where} raised {type(error).__name__}: {error}")
                return
            for t, gb, gp in zip(targets, grads_b, grads_p, strict=True):
                if t is None:
                    continue
                if gb.shape == gp.shape:
                    finite = np.isfinite(gb)  # (a cost that is NaN at the point makes NaN gradients on both sides)
                    tol = 1e-9 * (np.abs(gb) + float(np.max(np.abs(gb), initial=0.0, where=finite)))
                    with np.errstate(invalid="ignore"):  # (inf - inf)
                        same = (np.abs(gp - gb) <= tol) | (gp == gb) | (np.isnan(gp) & np.isnan(gb))
                    if np.all(same):
                        continue
                    detail = (f"max |difference| {float(np.max(np.abs(gp - gb))):.2e}, largest gradient "
                              f"{float(np.max(np.abs(gb), initial=0.0)):.2e}")
                else:
                    detail = f"it left .grad of shape {gp.shape}, backward {gb.shape}"
                if used:
                    t.problems.append(f"backward_params disagrees with backward for {where}: training would "
                                      f"use wrong gradients ({detail})")
                else:
                    t.notes.append(f"backward_params disagrees with backward for {where} ({detail})"
                                   f"{_stale_hint(type(layer))}: training calls backward (parameter_backward), "
                                   "but a direct call of backward_params gives other gradients")

        def model_run(name: str) -> list[np.ndarray]:
            _zero_grad_poisoned(work)
            program.reset()
            program.cost(work.forward(program.x))
            getattr(work, name)(program.upstream())
            return [p.grad.copy() for _, p in params]

        if type(work).backward_params is not Layer.backward_params:
            params = list(work.named_parameters())
            try:
                compare(work, label("", work), params, model_run)
            finally:
                work.zero_grad()
        rng = np.random.default_rng([self.seed, 17])
        done: set[str] = set()
        for call in calls:
            layer = call.layer
            if not call.path or call.path in done or type(layer).backward_params is Layer.backward_params:
                continue
            done.add(call.path)
            sub_params = list(layer.named_parameters())
            if not sub_params or not isinstance(call.y, np.ndarray):
                continue
            upstream = np.asarray(rng.standard_normal(call.y.shape))

            def layer_run(name: str, call: _Call = call, upstream: np.ndarray = upstream) -> list[np.ndarray]:
                alone = copy.deepcopy(call.layer)  # a fresh copy for each method: the same state for both
                for (_, g), state in zip(alone.named_generators(), call.generators, strict=False):
                    g.bit_generator.state = state
                _zero_grad_poisoned(alone)
                alone.forward(copy_value(call.x))
                getattr(alone, name)(upstream.copy())
                return [p.grad.copy() for _, p in alone.named_parameters()]

            compare(layer, label(call.path, layer), sub_params, layer_run)

    # ------------------------------------------------------------------ numerical side
    def _noise(self, program: Program, t: _Tensor, f0: float, coarse: Coarse | None = None) -> float:
        """Bound on the round-off error of one cost evaluation while ``t`` moves (see numerics).

        The cost at ``NOISE_STEPS`` points a relative 1e-9 apart along a random +-1 direction; an
        element that sits within that span of a kink makes the probe cross it, which
        :func:`~.numerics.probe_noise` detects and discards (a note says so).

        ``coarse`` (a cost computed below float64): the points are spaced as stage A's probes on the coarse
        step, ``coarse.eps / 16`` (times ``|w|`` from 1 up), where that precision's rounding shows (at 1e-9 the
        cost mostly does not change at all); the bound is at least the lower precision's rounding of the cost
        itself when the loss computes in it."""
        arr = t.array
        saved = arr.copy()
        rng = np.random.default_rng([self.seed, 7, arr.size])
        signs = rng.integers(0, 2, size=arr.shape) * 2.0 - 1.0
        values = [f0]
        # apart by 1e-9 * |w| (1e-9 for an element at 0): relative, so that a steep function of a small
        # element (log at 1e-6) does not show its curvature as noise; if that leaves the cost's domain,
        # with the elements at 0 kept still
        size = np.abs(saved)
        scales = (np.where(size > 0, size, 1.0) * 1e-9, size * 1e-9) if coarse is None else \
            (np.maximum(size, 1.0) * (coarse.eps / STAGE_A), size * (coarse.eps / STAGE_A))
        for scale in scales:
            direction = signs * scale
            values = [f0]
            try:
                for j in range(1, NOISE_STEPS + 1):
                    np.copyto(arr, saved + j * direction)
                    try:
                        values.append(program.evaluate(t.stage))
                    except (ValueError, ArithmeticError):  # a layer refused the probe (a NaN, x <= 0 for a log):
                        # the cost is not finite there
                        values.append(math.nan)
            finally:
                np.copyto(arr, saved)
            if np.isfinite(values).all() or not math.isfinite(f0):
                break
        floor = 2.0 * U64 * abs(f0)
        if coarse is not None and math.isfinite(f0):
            if coarse.in_cost:  # (the loss rounds every value it returns to that precision)
                floor = 2.0 * unit_round_off(coarse.dtype) * abs(f0)
            # (the points before the first the cost is not finite at: a line that leaves its domain)
            finite = np.array(list(itertools.takewhile(math.isfinite, values)))
            return max(4.0 * coarse_noise(finite), floor, 1e-300)
        if not math.isfinite(f0):
            where = "" if not program.nonfinite_outputs else \
                f"; the model's output holds {program.nonfinite_outputs} NaN/inf value(s)"
            t.notes.append(f"the cost is {f0} at the point to check itself (an input outside a function's domain, "
                           f"an overflow, an infinite constant such as a -inf padding{where}), so no element can "
                           "be judged: each counts as failed")
            return math.nan
        if not np.isfinite(values).all():
            t.notes.append("the cost is not finite at points within ~1e-8 of this one (NaN/inf: an input at "
                           "the edge of a function's domain, an overflow), so no element can be judged: "
                           "each counts as failed")
            return math.nan
        sigma, crossed = probe_noise(np.array(values), floor / 4.0)
        if crossed:
            t.notes.append("the round-off probe crossed a kink (an element within ~1e-8 of a point where "
                           "the cost is not differentiable); its outlier-robust estimate was used")
        return max(4.0 * sigma, floor, 1e-300)

    def _check_tensor(self, program: Program, t: _Tensor, f0: float, batch: int | None,
                      coarse: Coarse | None = None) -> TensorResult:
        """The verdict on one tensor; ``coarse``: the cost, moved along it, is computed below float64 (see
        :class:`.precision.Coarse`), and the tensor is judged for that."""
        arr = t.array
        shape = tuple(arr.shape)
        if t.frozen:
            return TensorResult(t.name, shape, passed=not t.problems, mode="frozen", problems=list(t.problems),
                                size=int(arr.size), notes=list(t.notes))
        if t.analytic is None or arr.size == 0:
            return TensorResult(t.name, shape, passed=not t.problems and t.analytic is not None,
                                problems=list(t.problems), size=int(arr.size), notes=list(t.notes))
        eps_f = self._noise(program, t, f0, coarse)
        mode = self.mode
        if mode == "auto":
            mode = "full" if arr.size <= self.full_max else "directional"
        if mode == "directional":
            result, conclusive = self._check_directional(program, t, f0, eps_f, coarse)
            # (a contract problem already noted on the tensor is no reason to drill down)
            if self.mode == "directional" or (not result.failed and conclusive):
                return result
            if result.failed and arr.size > DRILL_MAX_FACTOR * self.full_max:
                # localising a failure element by element would take hours on a million elements:
                # a stratified sample instead, and the directional verdict stands if it finds nothing
                index = self._sample(shape, max(self.samples, 4 * self.full_max), t.analytic)
                part = self._check_elements(program, t, f0, eps_f, index, batch, "directional->sampled", coarse)
                if part.failed:
                    part.notes.append(f"the directional pass failed; {index.size} of {arr.size} elements "
                                      "(stratified) were then checked one by one (mode='full' checks all)")
                    return part
                result.notes.append(f"the directional pass failed, but none of {index.size} of {arr.size} "
                                    "elements checked one by one (stratified) did: the error sits in few elements "
                                    "(mode='full' finds them, at about 10 evaluations per element)")
                return result
            if result.failed or arr.size <= 2 * self.full_max:
                # a failure is localised element by element; a small tensor is checked whole
                why = "failed" if result.failed else "crossed a kink"
                index = np.arange(arr.size)
                full = self._check_elements(program, t, f0, eps_f, index, batch, "directional->full", coarse)
                full.notes.append(f"the directional pass {why}; every element was then checked")
                return full
            # a large tensor with elements at kinks (exact max-pool ties, zero inputs to a ReLU): random
            # directions keep crossing them, and a full check would cost thousands of evaluations;
            # check a stratified sample one by one instead (its kink elements are skipped, the rest checked)
            index = self._sample(shape, max(self.samples, self.full_max // 4), t.analytic)
            part = self._check_elements(program, t, f0, eps_f, index, batch, "directional->sampled", coarse)
            part.notes.append(f"the directional pass crossed a kink; {index.size} of {arr.size} elements "
                              "(stratified) were then checked one by one (mode='full' checks every element)")
            return part
        index = self._sample(shape, analytic=t.analytic) if mode == "sampled" else np.arange(arr.size)
        return self._check_elements(program, t, f0, eps_f, index, batch, mode, coarse)

    def _sample(self, shape: tuple[int, ...], budget: int | None = None,
                analytic: np.ndarray | None = None) -> np.ndarray:
        """Stratified sample of ``budget`` (default ``samples``) flat indices, sorted.

        A quarter of the budget (at least 4) goes to representatives of the edges: the first and
        last element, both ends of row 0 (the absorbed bias row of a ``Dense`` W, sample 0 of a
        batch) and of the last row, a few random elements of row 0, then other corners.  The rest --
        most of the budget -- is spread over the other elements: their flat index range is cut into
        equal blocks and one random element is drawn from each, so every part of the tensor (every
        row, when the budget allows) is represented.

        ``analytic`` (the tensor's analytic gradient, its shape): a sample holding fewer than
        ``min(budget // 8, its non-zero elements)`` (at least 1) elements where it is not 0 -- a sparse
        gradient, an embedding's few used rows -- gets more of them, drawn at random among those elements,
        so that the backward is tested where it says the cost moves (a sample of zeros only would pass a
        wrong one, and call a right one flat).  They are added, not swapped in (at most ``budget // 8``
        more): an element where the backward says 0 is where a forgotten contribution shows, so the
        sample without ``analytic`` is always a part of the sample with it.
        """
        budget = self.samples if budget is None else budget
        size = int(np.prod(shape))
        if size <= budget:
            return np.arange(size)
        rng = np.random.default_rng([self.seed, 11, size])
        quota = min(budget, max(4, budget // 4))
        wanted: list[int] = [0, size - 1]
        if len(shape) >= 2:
            row = size // shape[0]
            wanted += [row - 1, size - row]
            wanted += rng.choice(row, size=min(row, max(1, quota // 4)), replace=False).tolist()
        corners = np.ravel_multi_index(
            tuple(np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(len(shape), -1)), shape)
        wanted += rng.permutation(corners).tolist()
        reps: list[int] = []
        for i in wanted:
            if i not in reps and len(reps) < quota:
                reps.append(int(i))
        taken = set(reps)
        edges = np.linspace(0, size, budget - len(reps) + 1).astype(np.int64).tolist()
        for lo, hi in itertools.pairwise(edges):
            free = hi - lo - sum(lo <= i < hi for i in reps)
            while free > 0:  # a block holding only representatives draws nothing
                i = int(rng.integers(lo, hi))
                if i not in taken:
                    taken.add(i)
                    break
        while len(taken) < budget:  # narrow blocks that only met representatives: top up anywhere
            taken.add(int(rng.integers(0, size)))
        if analytic is not None:
            flat = analytic.reshape(-1)
            chosen = np.fromiter(taken, dtype=np.int64, count=len(taken))
            have = int(np.count_nonzero(flat[chosen]))
            if have < max(1, budget // 8):  # (a dense gradient stops here: no scan of the whole tensor)
                moving = np.flatnonzero(flat)
                want = min(moving.size, max(1, budget // 8))
                if have < want:
                    pick = np.random.default_rng([self.seed, 31, size])
                    spare = moving[~np.isin(moving, chosen)]
                    taken.update(pick.choice(spare, size=want - have, replace=False).tolist())
        return np.array(sorted(taken), dtype=np.int64)

    def _analytic_noise(self) -> dict[str, np.ndarray]:
        """Per checked tensor (by name), the round-off deviation of each element's analytic gradient,
        measured: the analytic gradients at ``ANALYTIC_POINTS`` points a relative 1e-9 apart along a
        random +-1 line through every tensor at once (1e-9 for an element at 0), whose high-order
        differences hold only round-off (as the cost's probe, :meth:`_noise`); 0 for an element whose
        values jump on the line (a kink crossed).  A backward that cancels large terms (a saturated
        softmax whose rows sum to 1 exactly) carries far more round-off than the ``64 u |a|`` the bound
        assumes.  Measured once per check, and only when some element fails; ``{}`` if a probe raised."""
        if self._analytic_sigma is not None or self._live is None:
            return self._analytic_sigma or {}
        program, work, tensors = self._live
        params = dict(work.named_parameters()) | dict(self._loss_params)
        live = [t for t in tensors if t.analytic is not None and not t.frozen]
        saved = [t.array.copy() for t in live]
        rng = np.random.default_rng([self.seed, 19])
        steps = [(rng.integers(0, 2, size=v.shape) * 2.0 - 1.0) * np.where(v != 0, np.abs(v), 1.0) * 1e-9
                 for v in saved]
        values: dict[str, list[np.ndarray]] = {t.name: [np.asarray(t.analytic)] for t in live}
        self._analytic_sigma = {}
        try:
            for j in range(1, ANALYTIC_POINTS):
                for t, v, d in zip(live, saved, steps, strict=True):
                    np.copyto(t.array, v + j * d)
                program.reset()
                _zero_grad(work, self._loss_params)
                with _quiet(True):
                    y = work.forward(program.x)
                    program.cost(y)
                    dx = work.backward(program.upstream())
                program.evaluations += 1  # (one forward and backward: counted as a cost evaluation)
                for t in live:
                    g = _input_gradient(dx, t.name) if is_input(t.name) else params[t.name].grad
                    values[t.name].append(np.array(g, dtype=np.float64, copy=True).reshape(t.array.shape))
        except Exception:
            return self._analytic_sigma  # (a layer refused the moved point: nothing is credited)
        finally:
            for t, v in zip(live, saved, strict=True):
                np.copyto(t.array, v)
            _zero_grad(work, self._loss_params)
            program.reset()
        with _quiet(True):
            self._analytic_sigma = {name: column_noise(np.array(v).reshape(len(v), -1)).reshape(v[0].shape)
                                    for name, v in values.items()}
        return self._analytic_sigma

    def _check_elements(self, program: Program, t: _Tensor, f0: float, eps_f: float, index: np.ndarray,
                        batch: int | None, mode: str, coarse: Coarse | None = None) -> TensorResult:
        """Per-element check of the elements ``index`` (flat positions), in two stages and their refinements:
        see :mod:`.elements` for how an element is judged.  ``coarse``: a cost computed below float64 (see
        :class:`.precision.Coarse`)."""
        return ElementCheck(program, t, f0, eps_f, index, coarse, eps=self.eps, safety=self.safety,
                            analytic_noise=self._analytic_noise, make_result=self._result).run(batch, mode)

    def _check_directional(self, program: Program, t: _Tensor, f0: float, eps_f: float,
                           coarse: Coarse | None = None) -> tuple[TensorResult, bool]:
        """``directions`` random directions, six evaluations each (steps H, H/2, H/16); a direction that
        crosses a kink (non-smooth five-point values, or the three differences not scaling as H^2) is
        retried with H/16 and H/256.  ``coarse``: on ``coarse.eps``, and a direction that agrees counts as
        not checked (see :class:`.precision.Coarse`).

        Returns the result and whether every direction was conclusive (no kink at any step).
        """
        arr = t.array
        shape = tuple(arr.shape)
        assert t.analytic is not None
        saved = arr.copy()
        scale = np.maximum(np.abs(saved), 1.0) / np.sqrt(arr.size)
        rng = np.random.default_rng([self.seed, 13, arr.size])
        a_dirs, nums, errs, bounds, stats, steps = [], [], [], [], [], []
        still: list[bool] = []  # (per direction: every cost value at its last steps that of the point)
        conclusive = True
        try:
            for _ in range(self.directions):
                # random signs and magnitudes: two errors of opposite sign cannot cancel exactly (with
                # +-1 they would in a quarter of the pairs of directions, e.g. a gradient credited to
                # the neighbouring element)
                d = (rng.integers(0, 2, size=arr.shape) * 2.0 - 1.0) * rng.uniform(0.5, 1.5, size=arr.shape)
                d *= scale
                a_dir = float(np.dot(t.analytic.reshape(-1), d.reshape(-1)))
                for shrink in (1.0, 1 / 16, 1 / 256):
                    H = (self.eps if coarse is None else coarse.eps) * shrink
                    fv, predicted = [], []
                    for s in (H, -H, H / 2, -H / 2, H / 16, -H / 16):
                        np.copyto(arr, saved + s * d)
                        try:
                            fv.append(program.evaluate(t.stage))
                        except (ValueError, ArithmeticError):  # a layer refused the probe: outside its domain,
                            fv.append(math.nan)  # inconclusive (then checked element by element)
                        predicted.append(float(np.dot(t.analytic.reshape(-1), (arr - saved).reshape(-1))))
                    np.copyto(arr, saved)
                    fp1, fm1, fp2, fm2, fp3, fm3 = fv
                    e1 = (fp1 - fm1 - (predicted[0] - predicted[1])) / (2 * H)
                    e2 = (fp2 - fm2 - (predicted[2] - predicted[3])) / H
                    e3 = (fp3 - fm3 - (predicted[4] - predicted[5])) / (H / 8)
                    verdict = richardson(np.array([a_dir]), np.array([e1]), np.array([e2]), np.array([H]),
                                         eps_f, self.safety)
                    assert verdict.truncation is not None
                    # smooth: the h/16 difference agrees with the extrapolated value within ~T/64
                    expected = verdict.truncation[0] / 16 + 20 * eps_f / H + 64 * U64 * abs(a_dir)
                    jumpy = abs(e3 - (verdict.numerical[0] - a_dir)) > self.safety * expected
                    if jumpy or kinks(f0, np.array([fp1]), np.array([fm1]), np.array([fp2]), np.array([fm2]),
                                      eps_f, self.safety)[0]:
                        verdict.status[0] = KINK
                        continue
                    break
                conclusive &= bool(verdict.status[0] != KINK)
                a_dirs.append(a_dir)
                nums.append(verdict.numerical[0])
                errs.append(verdict.error[0])
                bounds.append(verdict.bound[0])
                stats.append(verdict.status[0])
                steps.append(H)
                still.append(all(value == f0 for value in fv))
        finally:
            np.copyto(arr, saved)
        v = Verdict(np.array(nums), np.array(errs), np.array(bounds), np.array(stats))
        coarse_notes = [] if coarse is None else \
            [coarse_verdict(coarse, v.status, v.error, self.safety * v.bound, eps_f, "directions",
                            swallowed_moves(coarse, v.status, np.array(a_dirs), np.array(still)))]
        result = self._result(t, shape, v, np.array(a_dirs), np.array(steps), "directional", None)
        result.notes[:0] = coarse_notes
        result.low_precision = None if coarse is None else coarse.dtype.name
        result.worst_index = None
        if result.failed:
            ratios = [a / n for a, n, s in zip(a_dirs, nums, stats, strict=True) if s == FAIL and n != 0]
            if len(ratios) >= 2 and np.allclose(ratios, ratios[0], rtol=1e-6):
                words = factor_words(ratios[0], None, shape)
                result.diagnosis = f"constant factor along every direction: {words}"
        return result, conclusive

    def _result(self, t: _Tensor, shape: tuple[int, ...], v: Verdict, analytic: np.ndarray, steps: np.ndarray,
                mode: str, flat_index: np.ndarray | None, factor: np.ndarray | None = None) -> TensorResult:
        """The tensor's result from per-element verdicts; ``steps`` and ``factor`` (default: the
        safety factor) are the step and the multiple of the bound each element was judged with."""
        factor = np.full(v.bound.shape, self.safety) if factor is None else factor
        checked = (v.status == OK) | (v.status == FAIL)
        failed = int(np.sum(v.status == FAIL))
        res = TensorResult(t.name, shape, passed=failed == 0 and not t.problems, mode=mode,
                           checked=int(np.sum(checked)), skipped=int(np.sum(v.status == KINK)),
                           failed=failed, problems=list(t.problems), size=int(np.prod(shape)),
                           notes=list(t.notes), coarse_agreed=int(np.sum(v.status == COARSE)))
        if np.any(checked):
            # relative error against max(|a|, |n|, floor): the floor (1e-3 of the tensor's largest
            # gradient, at least the tolerance) keeps an element whose gradient is ~0 next to the rest
            # of the tensor from showing a large ratio of two round-off-sized numbers
            size = np.maximum(np.abs(analytic), np.abs(v.numerical))
            scale = float(np.max(np.where(checked, size, 0.0)))
            denom = np.maximum(size, np.maximum(REL_FLOOR * scale, factor * v.bound))
            rel = np.where(denom > 0, v.error / np.where(denom > 0, denom, 1.0), 0.0)
            error = v.error
            unjudged = ~(np.isfinite(error) & np.isfinite(v.bound))  # NaN/inf: the worst there is, shown as inf
            if unjudged.any():
                rel = np.where(unjudged, np.inf, rel)
                error = np.where(np.isfinite(error), error, np.inf)
            # the worst element: the largest relative error among the failing ones, else among all
            pool = (v.status == FAIL) if failed else checked
            k = int(np.argmax(np.where(pool, rel, -np.inf)))
            res.max_abs_error = float(np.max(np.where(checked, error, 0.0)))
            res.max_rel_error = float(rel[k])
            if flat_index is not None:
                res.worst_index = tuple(int(i) for i in np.unravel_index(int(flat_index[k]), shape))
            res.analytic = float(analytic[k])
            res.numerical = float(v.numerical[k])
            res.step = float(steps[k])
            res.bound = float(v.bound[k])
            res.tolerance = float(factor[k] * v.bound[k])
            # (the whole analytic gradient 0, not only the sampled elements', and every checked numerical one: the
            # cost does not move with the tensor here)
            res.flat = failed == 0 and t.analytic is not None and not np.any(t.analytic) \
                and not np.any(v.numerical[checked])
        return res

    # ------------------------------------------------------------------ per-layer checks
    def _check_sublayers(self, report: GradientReport, calls: list[_Call], work: Layer, x: Any) -> list[str]:
        """Check each layer the model called alone (``report.layers``); returns the labels of those that
        could not be (an input or output the default cost cannot take, an empty batch, NaN/inf).

        Each is checked as the model is: an input it was given that *is* (the same array) a model input
        ``check_input`` leaves out is left out there too (a mask passed on; one computed from it is checked), and
        with ``params=`` only the chosen parameters are (by identity, under the layer's own names; a layer none of
        whose parameters is chosen checks only its inputs), as the note on the parameters not checked says."""
        left_out = {id(a) for (_, a), checked in zip(named_inputs(x), self._checked_inputs(x), strict=True)
                    if not checked}
        chosen = None if self.params is None else \
            {id(p) for name, p in work.named_parameters() if name in self.params}
        done: set[str] = set()
        unchecked: list[str] = []
        for call in calls:
            path, layer = call.path, call.layer
            if not path or path in done or type(layer) in (Sequential, LayerList):
                continue
            done.add(path)
            if not all(isinstance(a, np.ndarray) and a.dtype.kind in "fiub" for _, a in named_inputs(call.x)):
                unchecked.append(layer_label(path, layer))
                report.notes.append(f"{layer_label(path, layer)}: input is not a float, integer or boolean array "
                                    "(or a tuple of such arrays), not checked alone")
                continue
            if type(call.y) is tuple and not any(isinstance(a, np.ndarray) and a.dtype.kind in "fc"
                                                 for a in call.y):  # (a tuple of several outputs takes
                # sum_i R_i . y_i over its float ones; without one, nothing is differentiable)
                unchecked.append(layer_label(path, layer))
                report.notes.append(f"{layer_label(path, layer)}: returns several outputs (a tuple) none of which "
                                    "is a float array: not checked alone (the whole model's check covers it)")
                continue
            if any(a.ndim >= 1 and a.shape[0] == 0 for _, a in named_inputs(call.x)):
                unchecked.append(layer_label(path, layer))
                report.notes.append(f"{layer_label(path, layer)}: its input is an empty batch (no sample), on "
                                    "which nothing can be checked: not checked alone")
                continue
            alone = copy.deepcopy(layer)
            for (_, g), state in zip(alone.named_generators(), call.generators, strict=False):
                g.bit_generator.state = state
            if _holds_nonfinite(call.x) or _holds_nonfinite(call.y):  # (as the recorded pass saw them)
                # (a -inf padding before a max pool: the padding's output, the pool's input)
                unchecked.append(layer_label(path, layer))
                report.notes.append(f"{layer_label(path, layer)}: its input or output holds NaN/inf, so a cost "
                                    "near it is not a number: not checked alone (the whole model's check covers it)")
                continue
            own_inputs = [source not in left_out for source in call.sources] or [True]
            checker = GradientChecker(alone, inputs=call.x, eps=self.eps, seed=self.seed + len(done),
                                      mode=self.mode, safety=self.safety, samples=self.samples,
                                      directions=self.directions, full_max=self.full_max,
                                      check_input=tuple(own_inputs) if is_several(call.x) else own_inputs[0],
                                      params=None if chosen is None else
                                      [name for name, p in layer.named_parameters() if id(p) in chosen])
            # (the whole model's report judges plain arrays: alone, a cache the parent sets looks unused)
            checker._whole_model = False
            try:
                sub = checker.run()
            except Exception as error:
                if type(call.y) is not tuple:
                    raise
                # (a layer whose model uses one of its outputs may take one gradient, not the tuple)
                unchecked.append(layer_label(path, layer))
                report.notes.append(f"{layer_label(path, layer)}: returns several outputs (a tuple), and its "
                                    f"backward did not take a tuple of their gradients ({type(error).__name__}): "
                                    "not checked alone (the whole model's check covers it)")
                continue
            report.layers[path] = sub
            report.evaluations += sub.evaluations
        # (one that fails only for computing below float64 is said to, not taken for a wrong backward)
        guilty = [f"{label(p, next(c.layer for c in calls if c.path == p))}"
                  + (" (it computes below float64: not checked, see its report)" if r.low_precision and not r.failed
                     and not r.problems else "")
                  for p, r in report.layers.items() if not r.passed]
        if guilty:
            report.notes.append("checked alone, these layers fail: " + ", ".join(guilty))
        return unchecked
