"""Losses: ``forward(y_pred, y_true) -> float`` and ``backward() -> dLoss/dy_pred``."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .errors import BackwardBeforeForwardError, DTypeError, ShapeError, TargetError
from .inputs import pair_of_arrays
from .layer import _AFTER_FIT, _PLAIN_TYPES, Layer
from .layers.distance import _p_norm, _p_norm_backward
from .parameter import Parameter
from .special import _sigmoid
from .validation import (
    as_array,
    as_float_array,
    cast_targets,
    check_finite,
    finite_non_negative,
    is_finite,
    is_integer,
    is_number,
    native,
    settings_renamed,
    widened,
)
from .validation import checked_setting as _setting

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "GaussianNLLLoss",
    "HalfSquaredError",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "Loss",
    "MSELoss",
    "MarginRankingLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "TargetError",
    "TripletMarginLoss",
]

_REDUCTIONS = ("mean", "sum")

#: BCELoss's floor of p (1 - p) in the gradient: PyTorch's 1e-12, a float32 constant there
_BCE_EPS = float(np.float32(1e-12))

#: The unsigned integer type of each item size: a view that makes negative labels huge.
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
#: The largest signed integer of each item size: up to that many classes a negative label seen as
#: unsigned is out of range.
_SIGNED_MAX = {size: 2 ** (8 * size - 1) - 1 for size in _UNSIGNED}


def check_loss_gradient(loss: Any, y_pred: Any, grad: Any, who_prefix: str = "", runs_in: Any = None) -> None:
    """Refuse a ``loss.backward()`` (``grad``) that is not ``dLoss/dy_pred``: an array of ``y_pred``'s
    shape and dtype, or for a loss of several predictions (``y_pred`` a tuple) a tuple of them, one per
    prediction.  Else the model's last layer would refuse it or broadcast it, and the error (or a wrong
    gradient) would be blamed on that layer, not on the loss.  ``ShapeError`` / ``DTypeError`` naming
    ``<who_prefix><LossName>.backward``; ``fit`` and ``GradientChecker`` (prefix ``"GradientChecker: "``,
    ``runs_in=float64``) both refuse with it.  ``runs_in``: the dtype the caller converted the model to
    (the checker's float64): a prediction of that dtype and a gradient of another float dtype is said as
    a loss computing in that other dtype, not the model's (which ``fit`` on a float32 model accepts)."""
    who = f"{who_prefix}{type(loss).__name__}.backward"
    several = type(y_pred) is tuple
    if several and (type(grad) is not tuple or len(grad) != len(y_pred)):
        got = f"a tuple of {len(grad)}" if type(grad) is tuple else type(grad).__name__
        raise ShapeError(f"{who}: returned {got}; the model returns a tuple of {len(y_pred)} predictions, so it must "
                         f"return a tuple of {len(y_pred)} gradients, one per prediction")
    pairs = zip(grad, y_pred, strict=True) if several else [(grad, y_pred)]
    for i, (g, given) in enumerate(pairs):
        which, p = (f"gradient {i}" if several else "gradient"), np.asarray(given)
        if not isinstance(g, np.ndarray):
            raise DTypeError(f"{who}: returned a {type(g).__name__} as its {which}; it must be an array of the "
                             f"prediction's shape {p.shape} and dtype {p.dtype} (dLoss/dy_pred)")
        if g.shape != p.shape:
            raise ShapeError(f"{who}: returned a {which} of shape {g.shape}; it must have the prediction's "
                             f"shape {p.shape} (dLoss/dy_pred)")
        if g.dtype != p.dtype:
            own = ""
            if runs_in is not None and p.dtype == runs_in and g.dtype.kind == "f":
                own = (f"the check runs in {p.dtype}, whatever the model's dtype, and the loss computes its "
                       f"gradient in {g.dtype} (a cast, or a {g.dtype} constant or buffer of its own?): make it "
                       "follow y_pred's dtype, or ")
            raise DTypeError(f"{who}: returned a {which} of dtype {g.dtype}; it must have the prediction's "
                             f"dtype {p.dtype} (dLoss/dy_pred; {own}cast with .astype(y_pred.dtype, copy=False))")


def _trailing_axis_hint(pred: tuple[int, ...], target: tuple[int, ...], prediction: bool = True) -> str:
    """``"; pass y_true.reshape(-1, 1)"`` and the like, when the shapes differ only by a trailing axis of size 1
    (regression targets ``(N,)`` for predictions ``(N, 1)``, the commonest porting mistake); else ``""``.  The
    loss still refuses the pair: broadcasting ``(N, 1)`` against ``(N,)`` would compare every prediction with
    every target.  ``prediction``: also say how to reshape ``y_pred`` when it lacks the axis (for a ``y_pred``
    that is one array)."""
    if len(target) >= 1 and pred == (*target, 1):
        return "; pass " + ("y_true.reshape(-1, 1)" if len(target) == 1 else "y_true[..., None]")
    if len(pred) >= 1 and target == (*pred, 1):
        hint = "; pass " + ("y_true.reshape(-1)" if len(pred) == 1 else "y_true[..., 0]")
        if prediction:
            hint += ", or give y_pred y_true's shape: " + ("y_pred.reshape(-1, 1)" if len(pred) == 1
                                                          else "y_pred[..., None]")
        return hint
    return ""


class Loss:
    """Base class for losses; subclass it and write ``forward`` and ``backward``.

    ``forward`` returns the loss as a Python float and keeps what ``backward`` needs;
    ``backward()`` returns ``dLoss/dy_pred`` with the shape and dtype of ``y_pred``.
    ``loss(y_pred, y_true)`` calls ``forward``.

    Every built-in loss refuses an empty ``y_pred`` (no elements) with a ``ShapeError`` ("empty
    prediction"): a mean over zero elements has no value (PyTorch returns NaN), and a silent NaN or 0
    would hide the bug that emptied the batch.

    A built-in loss's settings (``reduction``, ``weight``, ``margin``, ...) may be set after construction:
    checked as the constructor checks them (the same error; the loss unchanged when refused) and used by
    the next forward, while a backward returns the gradient of the forward that ran, whatever is set in
    between.
    """

    #: What the last forward's mean divided by, when that is not the number of samples (the first
    #: axis of ``y_pred``): ``fit`` and ``evaluate`` weight each batch's loss by it, so that their
    #: average over batches is the mean over the whole data.  ``None``: the number of samples.
    batch_weight: float | None = None
    #: True for a loss whose ``y_pred`` is a tuple of arrays (``MarginRankingLoss``: ``(x1, x2)``): the
    #: gradient checker then asks its ``random_targets`` for targets for a model's several outputs.
    several_predictions: bool = False

    def __call__(self, y_pred: np.ndarray, y_true: Any) -> float:
        """``loss(y_pred, y_true)``: :meth:`forward`, the scalar loss."""
        return self.forward(y_pred, y_true)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a loss pickled when its settings were plain attributes
        (its next forward runs; a backward of the forward before the pickle may not)."""
        self.__dict__.update(settings_renamed(type(self), state))

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, ...) the model's output; y_true: (N, ...) its targets -> the scalar loss, keeping what
        :meth:`backward` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(y_pred, y_true)")

    def backward(self) -> Any:
        """``dLoss/dy_pred``: an array of ``y_pred``'s shape and dtype (a tuple of them for a loss whose
        ``y_pred`` is a tuple, ``several_predictions``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random targets this loss accepts for ``y_pred`` (float64), for the gradient checker when it is
        given no ``targets``: N(0, 1) values of ``y_pred``'s shape here; losses that need labels or
        probabilities override it."""
        return rng.standard_normal(y_pred.shape)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, Parameter)`` for each parameter the loss holds (a learnable scale), each once: an
        attribute (``log_s``), a layer's (``head.W``), an entry of a list, tuple or mapping (``scales.0``, a
        named tuple's ``pair.left``, ``by_key.a``), a loss's it holds (``inner.log_s``).  Override it to
        name parameters kept elsewhere.  The gradient checker checks these as ``loss.<name>``; an optimizer
        trains them when given them (``md.SGD([*model.parameters(), *loss.parameters()], lr=0.1)``)."""
        return iter(_checked_pairs(_held_parameters(self), f"{type(self).__name__}.named_parameters()"))

    def parameters(self) -> list[Parameter]:
        """Every parameter once, in the order of :meth:`named_parameters`."""
        return [p for _, p in named_loss_parameters(self)]

    def _checked_pair(self, y_pred: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validate a prediction/target pair of equal shape; targets are cast to the prediction's dtype."""
        who = type(self).__name__
        y_pred = as_float_array(y_pred, who, "y_pred")
        if y_pred.size == 0:
            raise _empty_prediction(who, y_pred)
        target = as_array(y_true, who, "y_true")
        if target.dtype.kind not in "fiub":
            raise DTypeError(f"{who}: expected numeric y_true, got dtype {target.dtype}")
        if target.shape != y_pred.shape:
            raise ShapeError(f"{who}: y_pred has shape {y_pred.shape} but y_true has shape {target.shape}"
                             f"{_trailing_axis_hint(y_pred.shape, target.shape)}")
        if target.dtype != y_pred.dtype:
            target = cast_targets(target, y_pred.dtype, who, "y_true", "the prediction's dtype")
        check_finite(target, who, "y_true")
        check_finite(y_pred, who, "y_pred")
        return y_pred, target

    def _require_cache(self, cache: Any) -> None:
        """Raise :class:`~minidl.errors.BackwardBeforeForwardError` if ``cache`` (what ``forward`` keeps for
        ``backward``; set it to None in ``__init__``) is None: ``backward`` called before any forward.  The
        same-named helper as :meth:`Layer._require_cache <minidl.layer.Layer._require_cache>`."""
        if cache is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward called before forward: there is no loss to differentiate{_AFTER_FIT}"
            )

    def _require(self, cache: Any) -> None:
        """:meth:`_require_cache`'s earlier name, kept for losses written with it."""
        self._require_cache(cache)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


#: What holds no parameter, layer or generator: looked into by neither the loss's walks nor the checker's.
_ATOMS = (int, float, complex, str, bytes, np.ndarray, np.generic, type, type(None))


def _entries(value: Any) -> Iterable[tuple[Any, Any]] | None:
    """The ``(key, item)`` pairs of a mapping, a list, a deque or a tuple (a named tuple's by field name);
    ``None`` for anything else."""
    if type(value) in _PLAIN_TYPES:  # (exactly these types, most of a loss's attributes: no Mapping test)
        return None
    if isinstance(value, Mapping):
        return value.items()
    fields = getattr(value, "_fields", None)
    if isinstance(value, tuple) and isinstance(fields, tuple):
        return zip(fields, value, strict=False)
    if isinstance(value, (list, tuple, deque)):
        return enumerate(value)
    return None


def _held_objects(owner: Any) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` for each attribute of ``owner`` (a loss) and, for one that is a list, tuple or
    mapping, each of its entries in its place (``scales.0``, ``pair.left``, ``by_key.a``): where a loss
    keeps parameters, layers, generators and other losses."""
    for attr, value in list(getattr(owner, "__dict__", {}).items()):
        items = _entries(value)
        if items is None:
            yield attr, value
        else:  # (an entry that is a number, a string or an array holds nothing: a list of a million weights)
            yield from ((f"{attr}.{key}", item) for key, item in items if not isinstance(item, _ATOMS))


def _held_parameters(owner: Any, within: tuple[int, ...] = ()) -> Iterator[tuple[str, Parameter]]:
    """``(dotted_name, Parameter)`` for each parameter among :func:`_held_objects` (``log_s``), in the
    layers there (``head.W``) and in the losses there (``inner.log_s``, by their ``named_parameters()``):
    :meth:`Loss.named_parameters`.  (``within``: the losses being walked, which hold one another.)"""
    within = (*within, id(owner))
    for name, value in _held_objects(owner):
        if isinstance(value, Parameter):
            yield name, value
        elif isinstance(value, Layer):
            yield from ((f"{name}.{sub}", p) for sub, p in value.named_parameters())
        elif isinstance(value, Loss) and id(value) not in within:
            inner = _held_parameters(value, within) if type(value).named_parameters is Loss.named_parameters \
                else value.named_parameters()
            yield from ((f"{name}.{sub}", p) for sub, p in inner)


def named_loss_parameters(loss: Any) -> list[tuple[str, Parameter]]:
    """``loss.named_parameters()`` (for an object without that method, what the default finds), checked:
    ``(str, md.Parameter)`` pairs, else ``TypeError`` naming the loss; each parameter once, under its first
    name, and each name once (a repeated one gets ``#2``, ``#3``, ...)."""
    method = getattr(loss, "named_parameters", None)
    return _checked_pairs(method() if callable(method) else _held_parameters(loss),
                          f"{type(loss).__name__}.named_parameters()")


def _checked_pairs(given: Any, who: str) -> list[tuple[str, Parameter]]:
    """:func:`named_loss_parameters`' check of what ``who`` gave."""
    if given is None or isinstance(given, (Mapping, str, bytes)) or not isinstance(given, Iterable):
        raise TypeError(f"{who} must return (name, md.Parameter) pairs, got {type(given).__name__}")
    out: list[tuple[str, Parameter]] = []
    params: set[int] = set()
    names: set[str] = set()
    for item in given:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"{who} must give (name, md.Parameter) pairs, got {item!r}")
        name, p = item
        if not isinstance(p, Parameter):
            raise TypeError(f"{who} gave {name!r} as a {type(p).__name__}, expected an md.Parameter")
        if id(p) in params:
            continue
        unique, k = name, 1
        while unique in names:
            k += 1
            unique = f"{name}#{k}"
        params.add(id(p))
        names.add(unique)
        out.append((unique, p))
    return out


# ---------------------------------------------------------------------------------------- settings
# A loss's settings (reduction, margin, weight, ...) are checked when set, in the constructor and after
# it alike, by one function each, ``check(who, name, value)``: it returns the value to keep or raises
# the error that names the loss (``who``) and the setting, the loss unchanged.  A forward reads each
# setting it uses once, into a local, and keeps what its backward needs with its cache: a backward
# returns the gradient of the forward that ran, whatever is set in between.  Each is declared in the class
# body as ``_setting(name, check, doc)`` (validation.checked_setting: one mechanism, shared with the layers).


def _reduction(who: str, name: str, value: Any, choices: tuple[str, ...] = _REDUCTIONS) -> str:
    """One of ``choices`` (a ``str``), else ``ValueError``."""
    if not (isinstance(value, str) and value in choices):
        raise ValueError(f"{who}: {name} must be one of {choices}, got {value!r}")
    return str(value)


def _weights_like(value: Any) -> bool:
    """Whether ``value`` looks like weights: an array, or a non-empty list or tuple of numbers."""
    return isinstance(value, np.ndarray) or (
        isinstance(value, (list, tuple)) and len(value) > 0 and all(is_number(v) for v in value))


def _reduction_in_weights_place(keyword: str) -> Callable[[str, str, Any], str]:
    """The ``reduction`` check of a loss whose first positional argument is ``reduction`` where PyTorch's is
    ``weight``: as :func:`_reduction`, and weights given there are told to go by ``keyword`` (``weight``, or
    ``pos_weight`` for BCEWithLogitsLoss, which has no ``weight``)."""
    if keyword == "weight":
        hint = " (PyTorch's first positional argument is weight: give weight= by keyword)"
    else:
        hint = (f" (PyTorch's first positional argument is weight, which this loss does not have: give the "
                f"positives' weights as {keyword}= by keyword)")

    def check(who: str, name: str, value: Any) -> str:
        try:
            return _reduction(who, name, value)
        except ValueError as error:
            if _weights_like(value):
                raise ValueError(f"{error}{hint}") from None
            raise

    return check


def _flag(who: str, name: str, value: Any) -> bool:
    """A bool (Python or NumPy), else ``TypeError``: ``bool("no")`` would switch the option on."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be a bool, got {value!r}")
    return bool(value)


def _finite(who: str, name: str, value: Any) -> float:
    """Any finite number (not a bool) as a float, else ``ValueError``: a margin, TripletMarginLoss's eps."""
    if not (is_number(value) and is_finite(value)):
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}")
    return float(value)


def _positive(who: str, name: str, value: Any) -> float:
    """A finite number > 0 (not a bool) as a float, else ``ValueError``: HuberLoss's delta, an eps floor."""
    if not (is_number(value) and is_finite(value) and value > 0):
        raise ValueError(f"{who}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _label_smoothing(who: str, name: str, value: Any) -> float:
    """A number in [0, 1] (not a bool) as a float, else ``ValueError``."""
    if not (is_number(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{who}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _hinge_power(who: str, name: str, value: Any) -> int:
    """1 or 2 (an int, not a bool), else ``ValueError``: MultiMarginLoss's p."""
    if not is_integer(value) or value not in (1, 2):
        raise ValueError(f"{who}: {name} must be 1 or 2 (as PyTorch), got {value!r}")
    return int(value)


def _positive_margin(who: str, name: str, value: Any) -> float:
    """A finite number > 0 as a float, else ``ValueError``: TripletMarginLoss's margin (as PyTorch's)."""
    margin = _finite(who, name, value)
    if not margin > 0:
        raise ValueError(f"{who}: {name} must be > 0 (as PyTorch), got {margin!r}")
    return margin


def _norm_order(who: str, name: str, value: Any) -> float:
    """A number > 0 or ``math.inf`` as a float, else ``ValueError``: the order of a p-norm."""
    if not (is_number(value) and (value == math.inf or is_finite(value)) and value > 0):
        raise ValueError(f"{who}: {name} must be a number > 0 or math.inf (the norm's order), got {value!r}")
    return float(value)


def _kl_reduction(who: str, name: str, value: Any) -> str:
    """KLDivLoss's reduction: ``"mean"``, ``"batchmean"`` or ``"sum"``, else ``ValueError``."""
    return _reduction(who, name, value, ("mean", "batchmean", "sum"))


def _weights(who: str, name: str, value: Any) -> np.ndarray:
    """``value`` as a read-only float64 copy of numbers (not bools), finite and >= 0, else the error."""
    given = as_array(value, who, name)
    if given.dtype.kind not in "iuf":
        raise DTypeError(f"{who}: {name} must hold numbers (weights), got dtype {given.dtype}")
    w = np.array(given, dtype=np.float64)  # a copy, float64
    if not (np.isfinite(w).all() and (w >= 0).all()):
        what = "class weights" if name == "weight" else name
        raise ValueError(f"{who}: {what} must be finite and >= 0, got {value!r}")
    w.flags.writeable = False
    return w


def _class_weights(who: str, name: str, value: Any) -> np.ndarray | None:
    """``value`` as a read-only float64 copy (C,) of finite weights >= 0, one per class, or None."""
    if value is None:
        return None
    w = _weights(who, name, value)
    if w.ndim != 1 or w.size == 0:
        raise ShapeError(f"{who}: {name} must be a 1-D array of one weight per class, got shape {w.shape}")
    return w


def _pos_weight(who: str, name: str, value: Any) -> np.ndarray | None:
    """None, or the positives' weights as :func:`_weights` (any shape: checked against ``y_pred`` by the
    forward)."""
    return None if value is None else _weights(who, name, value)


def _ignore_index(who: str, name: str, value: Any) -> int | None:
    """An int (not a bool) or None, else ``TypeError``."""
    if value is not None and not is_integer(value):
        raise TypeError(f"{who}: {name} must be an int or None, got {value!r}")
    return None if value is None else int(value)


#: the docstring of the ``reduction`` setting of the losses that take "mean" or "sum"
_REDUCTION_DOC = '``"mean"`` (over what the class says) or ``"sum"``; checked when set.'


#: the elements of one BLAS dot product in :func:`sum_of_squares`: a float32 dot accumulates in float32
SQUARES_CHUNK = 1 << 16


def sum_of_squares(diff: np.ndarray) -> float:
    """``sum(diff ** 2)`` of ``diff`` (any shape) as a Python float: one BLAS dot product, the training step's
    path.  Below float64 and above ``SQUARES_CHUNK`` elements, dot products of chunks summed in float64: a
    float32 dot accumulates in float32, 8e-6 relative off at 4e6 elements (a segmentation batch), 6e-8 per
    chunk.  float16 in float32 (a float16 sum of 70000 ones is inf)."""
    if diff.dtype.type is np.float16:
        diff = diff.astype(np.float32)
    if diff.size <= SQUARES_CHUNK or diff.dtype.itemsize >= 8:
        return float(np.vdot(diff, diff))
    flat = diff.reshape(-1)
    return math.fsum(float(np.vdot(part, part)) for part in (flat[i:i + SQUARES_CHUNK]
                                                            for i in range(0, flat.size, SQUARES_CHUNK)))


class MSELoss(Loss):
    """Mean squared error, as PyTorch: ``mean((y_pred - y_true)^2)`` over every element
    (``reduction="sum"``: the sum).  Gradient: ``2 (y_pred - y_true) / size`` (or without ``/ size``).

    Shapes: y_pred and y_true: (N, ...) alike.
    """

    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)
    _reduction: str  # (its value, which the forward reads directly: a training step's loss)

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction
        self._diff: np.ndarray | None = None
        self._slope = 2.0  # the last forward's dloss/ddiff: 2 / size for the mean

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred, y_true: (N, ...) alike -> the scalar loss; keeps ``y_pred - y_true`` for the backward."""
        mean = self._reduction == "mean"
        y_pred, target = self._checked_pair(y_pred, y_true)
        self._diff = None  # the previous batch's difference goes before this one is made (peak memory)
        diff = self._diff = y_pred - target
        # one BLAS dot product (the regression step's path, so no call for the test; float16 and a large float32
        # diff through sum_of_squares)
        total = float(np.vdot(diff, diff)) if diff.size <= SQUARES_CHUNK and diff.dtype.type is not np.float16 \
            else sum_of_squares(diff)
        if not mean:
            self._slope = 2.0
            return total
        self._slope = 2.0 / diff.size
        return total / diff.size

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: y_pred's shape (N, ...) and dtype, ``2 (y_pred - y_true) / size`` (``"sum"``: no
        ``/ size``)."""
        self._require_cache(self._diff)
        assert self._diff is not None
        return self._diff * self._slope

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _only_sum(who: str, name: str, value: Any) -> str:
    """``"sum"``, else ``ValueError``: ``HalfSquaredError``'s value is a sum whatever ``reduction`` says."""
    if not (isinstance(value, str) and value == "sum"):
        raise ValueError(f"{who}: {name} must stay 'sum' (its value is a sum of squares), "
                         f"got {value!r}; a subclass whose forward returns a mean declares reduction = 'mean' in "
                         "its class body")
    return "sum"


class HalfSquaredError(Loss):
    """The regression cost ``CF = 1/2 * sum((y_hat - y)^2)``, whose gradient is exactly ``y_hat - y``.

    With a ``Dense`` layer ``y_hat = X @ W`` (X carrying the ones column) this gives the classic
    ``dCF/dW = X^T (y_hat - y)``.  Shapes: y_pred and y_true: (N, ...) alike.
    """

    # a sum, not a mean: ``fit`` and ``evaluate`` add the batches' values up.  Not a setting: any other
    # value on an instance is refused (evaluate would average the sums); a subclass whose forward
    # returns a mean declares ``reduction = "mean"`` in its class body.
    reduction = _setting("reduction", _only_sum,
                         "``'sum'``: the value is a sum of squares (fit and evaluate add the batches' values up).")
    _reduction = "sum"

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        y_pred, target = self._checked_pair(y_pred, y_true)
        self._diff = None  # the previous batch's difference goes before this one is made (peak memory)
        diff = self._diff = y_pred - target
        total = float(np.vdot(diff, diff)) if diff.size <= SQUARES_CHUNK and diff.dtype.type is not np.float16 \
            else sum_of_squares(diff)  # (as MSELoss: no call on the regression step's path)
        return 0.5 * total

    def backward(self) -> np.ndarray:
        self._require_cache(self._diff)
        assert self._diff is not None
        return self._diff.copy()


def _kept(target: np.ndarray, y_true: Any) -> np.ndarray:
    """``target`` to keep for the backward: a copy when it is (a view of) the caller's ``y_true``, which
    the caller may change or reuse before the backward runs."""
    return target.copy() if isinstance(y_true, np.ndarray) and np.may_share_memory(target, y_true) else target


def _empty_prediction(who: str, y_pred: np.ndarray, name: str = "y_pred") -> ShapeError:
    """The ``ShapeError`` for an empty ``y_pred``; ``name``: what the message calls it (e.g. one of a pair)."""
    return ShapeError(
        f"{who}: empty prediction: {name} of shape {y_pred.shape} has no elements, so there is no loss to "
        "compute (check the batch that produced it)"
    )


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits, as PyTorch's ``nn.CrossEntropyLoss``.

    Shapes:
        y_pred: (N, C) raw scores (logits), *not* probabilities; or (N, C, d1, ...), one vector of
            class scores per position (e.g. per pixel), the classes on axis 1 as in PyTorch.
        y_true: (N,) integer class labels in ``[0, C)``, or (N, C) class probabilities (e.g. one-hot);
            with positions, (N, d1, ...) labels or (N, C, d1, ...) probabilities.

    With positions every position is a row of its own: the loss is the (weighted) mean over all
    ``N * d1 * ...`` of them, as in PyTorch, and ``ignore_index`` and ``weight`` apply per position.

    Forward, with a stable log-softmax ``log p = (x - max) - log(sum(exp(x - max)))`` per row, the
    target distribution ``q`` (one-hot of the label, or the given probabilities) and class weights
    ``w`` (all 1 without ``weight``)::

        a[n, c]  = w[c] * ((1 - label_smoothing) * q[n, c] + label_smoothing / C)
        loss_n   = -sum_c a[n, c] * log p[n, c]                (0 for a row labelled ignore_index)
        loss     = sum_n loss_n / norm,   norm = sum of w[y_n] over the rows not ignored (labels),
                                                 N (probabilities), 1 (reduction="sum")

    Backward (softmax and cross-entropy fused; the forward's softmax is reused)::

        dloss/dx[n] = (p[n] * sum_c a[n, c] - a[n]) / norm

    which is ``(p - onehot) / N`` for plain labels.  As PyTorch: with ``weight`` the mean is taken
    over the weights of the labels; ``ignore_index`` applies to integer labels only (probability targets
    with one >= 0, a class, are refused, as PyTorch refuses them).  Unlike PyTorch, ``ignore_index`` is off
    by default
    (PyTorch ignores -100), so a stray label is an error, and a
    batch whose every label is ignored (or weighs 0) has loss 0 and a zero gradient, not NaN: it
    counts for nothing (``batch_weight`` 0 in ``fit``'s and ``evaluate``'s averages).  A bool y_true is
    refused whatever its shape (``DTypeError``; cast it: ``astype(np.int64)`` labels, ``astype(float)``
    one-hot rows), as NLLLoss and MultiMarginLoss refuse it.

    Args:
        reduction: ``"mean"`` or ``"sum"``.
        label_smoothing: in [0, 1].
        weight: (C,) non-negative class weights.
        ignore_index: a label value whose rows count for nothing (it may lie outside [0, C)).

    Not implemented from PyTorch: ``reduction="none"`` (a loss here is one number, the cost).
    """

    reduction = _setting("reduction", _reduction_in_weights_place("weight"), _REDUCTION_DOC)
    label_smoothing = _setting("label_smoothing", _label_smoothing,
                               "The share of the target spread evenly over the classes, in [0, 1]; checked when set.")
    weight = _setting("weight", _class_weights,
                      "(C,) non-negative class weights (a read-only float64 copy), or None; checked when set.")
    ignore_index = _setting("ignore_index", _ignore_index,
                            "The label whose rows count for nothing, an int, or None; checked when set.")
    # (their values, which the forward reads directly: a training step's loss)
    _reduction: str
    _label_smoothing: float
    _weight: np.ndarray | None
    _ignore_index: int | None

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0, *,
                 weight: Any = None, ignore_index: int | None = None) -> None:
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.weight = weight
        self.ignore_index = ignore_index
        self._probs: np.ndarray | None = None
        self._label_index: np.ndarray | None = None  # plain labels: per row, the flat index of its label
        self._coef: np.ndarray | None = None  # otherwise: the coefficients a (N, C) of the docstring
        self._norm = 1.0
        self._smoothing = 0.0  # the last forward's label_smoothing, its backward's
        self._spatial: tuple[int, ...] | None = None  # y_pred's shape when it had positions
        self._starts = np.zeros(0, dtype=np.intp)  # 0, C, 2C, ...: the flat index where each row starts

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, C) or (N, C, d1, ...) logits; y_true: (N,) or (N, d1, ...) int labels, or
        probabilities of y_pred's shape -> scalar loss."""
        logits = _checked_logits(y_pred)
        target = y_true if type(y_true) is np.ndarray else as_array(y_true, "CrossEntropyLoss", "y_true")
        given = target.shape  # as the caller passed it, for the messages
        spatial = logits.shape if logits.ndim > 2 else None
        if spatial is not None:
            logits, target = _positions_as_rows(logits, target)
        eps, mean = self._label_smoothing, self._reduction == "mean"  # (read once)
        labels, coef, norm = self._label_terms(logits, target, eps, mean, y_true=y_true, given=given,
                                               spatial=spatial)
        weighted = coef is not None and target.ndim == 1  # the mean divides by the kept weights
        self.batch_weight = norm if weighted and mean else None
        if not mean or norm == 0.0:  # all ignored or weightless: 0, nothing to divide
            norm = 1.0

        self._probs = self._label_index = self._coef = None  # the previous batch's arrays go first (peak memory)
        # C order whatever the logits' layout: the flat label indices below assume it
        shifted = np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True), order="C")
        probs = np.exp(shifted)
        sums = np.add.reduce(probs, axis=1, keepdims=True)
        log_sums = np.log(sums)[:, 0]
        probs /= sums
        if labels is not None:
            # -log p[n, y_n] = log_sum[n] - shifted[n, y_n]
            per_row = log_sums - shifted.reshape(-1).take(labels)
            if eps:
                per_row *= 1.0 - eps
                per_row += eps * (log_sums - shifted.mean(axis=1))
        else:
            assert coef is not None
            # -sum_c a log p = log_sum * sum_c a - sum_c a * shifted
            per_row = log_sums * coef.sum(axis=1) - np.einsum("nc,nc->n", coef, shifted)
        self._probs, self._label_index, self._coef, self._norm = probs, labels, coef, norm
        self._spatial, self._smoothing = spatial, eps
        return float(np.add.reduce(per_row)) / norm

    def _label_terms(self, logits: np.ndarray, target: np.ndarray, eps: float, mean: bool, *, y_true: Any,
                     given: tuple[int, ...],
                     spatial: tuple[int, ...] | None) -> tuple[np.ndarray | None, np.ndarray | None, float]:
        """The forward's targets, checked, for ``logits: (N, C)`` rows (one per position, with positions):
        ``(labels, coef, norm)``.  ``target``: (N,) integer labels or (N, C) probabilities, rows as the
        logits; ``y_true`` as the caller passed it, ``given`` its shape and ``spatial`` the logits' (or
        None), for the messages; ``eps`` the label smoothing, ``mean`` whether the reduction is the mean.

        ``labels`` (N,): for plain labels (no weight, nothing ignored), the flat index ``n * C + y_n`` of
        each row's label (the fast path), else None; ``coef`` (N, C): otherwise the coefficients ``a`` of
        the class docstring; ``norm``: what the mean divides by (N, or the kept rows' weights)."""
        who = "CrossEntropyLoss"
        n, c = logits.shape
        weight = self._weight
        if weight is not None and weight.shape != (c,):
            raise ShapeError(f"{who}: weight has {weight.size} class weight(s), but y_pred has {c} classes")
        labels: np.ndarray | None = None  # flat label indices (plain labels: the fast path)
        coef: np.ndarray | None = None  # the coefficients a (N, C) otherwise
        norm = float(n)  # what the mean divides by
        if target.ndim == 1:
            target, kept = _class_labels(who, target, given, logits.shape, self._ignore_index, spatial, True,
                                         "CrossEntropyLoss")
            if weight is None and kept is None:  # the flat index of each row's label: row * C + label
                labels = self._row_starts(n, c) + target.astype(np.intp, copy=False)
            else:
                rows = np.arange(n) if kept is None else np.flatnonzero(kept)
                picked = target[rows].astype(np.intp, copy=False)
                coef = np.zeros((n, c), dtype=logits.dtype)
                coef[rows, picked] = 1.0 - eps
                if eps:
                    coef[rows] += eps / c
                if weight is not None:
                    coef *= weight.astype(logits.dtype)
                norm = float(np.add.reduce(weight[picked])) if weight is not None else float(rows.size)
                if norm == 0.0 and mean:  # every kept row weighs 0 (PyTorch: 0/0 = NaN):
                    coef.fill(0)  # the documented loss 0 and zero gradient, smoothing's terms included
        elif target.ndim == 2:
            if target.shape != logits.shape:
                if target.shape == (n, 1) and target.dtype.kind in "iu":  # a column of labels
                    raise ShapeError(f"{who}: y_pred has shape {logits.shape}, so integer labels y_true must "
                                     f"have shape ({n},), got {target.shape}; pass y_true.reshape(-1)")
                raise ShapeError(
                    f"{who}: probability targets y_true must have the shape of y_pred {logits.shape}, "
                    f"got {target.shape}"
                )
            if target.dtype.kind == "b":  # (refused as bool labels are: see _class_labels)
                raise _bool_class_targets(who, given, True, True)
            if target.dtype.kind not in "fiu":
                raise DTypeError(f"{who}: expected numeric y_true, got dtype {target.dtype}")
            if self._ignore_index is not None and self._ignore_index >= 0:  # (a class: PyTorch refuses it too)
                raise TargetError(
                    f"{who}(ignore_index={self._ignore_index}): ignore_index applies to integer class labels, "
                    f"but y_true holds class probabilities, shape {given}, whose rows it cannot leave out; "
                    "pass integer labels, or build the loss without ignore_index for probability targets")
            coef = target if target.dtype == logits.dtype else \
                cast_targets(target, logits.dtype, who, "y_true", "the logits' dtype")
            check_finite(coef, who, "y_true")
            if np.minimum.reduce(coef, axis=None) < 0:
                row, cls = (int(i) for i in np.argwhere(coef < 0)[0])
                index: tuple[int, ...] = (row, cls)
                if spatial is not None:  # in y_true's own terms, (n, c, i1, ...)
                    n, *where = _position(row, spatial)
                    index = (n, cls, *where)
                raise TargetError.located(f"{who}: class probabilities y_true must be >= 0, got "
                                          f"{coef[row, cls].item()!r} at index {index}", index,
                                          coef.shape if spatial is None else spatial)
            if eps:
                coef = coef * (1.0 - eps) + eps / c
            if weight is not None:
                coef = coef * weight.astype(logits.dtype)
            coef = _kept(coef, y_true)  # (the caller may refill its target buffer before the backward)
        else:
            raise ShapeError(
                f"{who}: y_true must be (N,) integer labels or (N, C) probabilities; got shape "
                f"{target.shape} for y_pred of shape {logits.shape}"
            )
        return labels, coef, norm

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random class labels in ``[0, C)``: (N,) or (N, d1, ...), the targets training uses (the
        checker then takes the label path); with ``ignore_index``, about a quarter of them (at least
        one, never all) set to it.  (Pass ``targets=`` to check probability targets.)"""
        return _random_labels(y_pred, rng, self.ignore_index, type(self).__name__)

    def _row_starts(self, n: int, c: int) -> np.ndarray:
        """``[0, c, 2c, ..., (n - 1) c]``, kept from the last batch of the same shape (read-only)."""
        starts = self._starts
        if starts.shape[0] != n or (n > 1 and starts[1] != c):
            starts = np.arange(0, n * c, c, dtype=np.intp)
            starts.flags.writeable = False
            self._starts = starts
        return starts

    def backward(self) -> np.ndarray:
        """dloss/dlogits: the logits' shape, (N, C) or (N, C, d1, ...), and dtype."""
        probs = self._probs
        if probs is None:
            self._require_cache(probs)
        assert probs is not None
        c = probs.shape[1]
        scale = 1.0 / self._norm
        if self._label_index is not None:  # scale * (p - q_smooth), q_smooth = (1 - eps) onehot + eps / C
            eps = self._smoothing  # (the forward's, whatever is set since)
            grad = np.multiply(probs, scale)  # a new array: the cached probabilities stay as they are
            if eps:
                grad -= scale * eps / c
            grad.reshape(-1)[self._label_index] -= scale * (1.0 - eps)
        else:
            coef = self._coef
            assert coef is not None
            grad = probs * coef.sum(axis=1, keepdims=True)
            grad -= coef
            if scale != 1.0:
                grad *= scale
        return _rows_as_positions(grad, self._spatial)

    @property
    def probabilities(self) -> np.ndarray | None:
        """The softmax of the last forward's logits, in their shape (read-only use), or None before forward."""
        return None if self._probs is None else _rows_as_positions(self._probs, self._spatial)

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        if self.weight is not None:
            parts.append(f"weight={self.weight.tolist()}")
        if self.ignore_index is not None:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts)


def _random_labels(y_pred: np.ndarray, rng: np.random.Generator, ignore_index: int | None,
                   who: str) -> np.ndarray:
    """Labels in ``[0, C)`` for scores ``y_pred: (N, C, d1, ...)``: (N, d1, ...); with ``ignore_index``
    a quarter of them (at least one, never all, unless there is one) ignored, the others drawn from
    the classes that are not ``ignore_index`` (a kept label equal to it would be ignored too)."""
    shape = np.shape(y_pred)
    if len(shape) < 2:
        raise ShapeError(f"{who}.random_targets: expected scores of shape (N, C) or (N, C, d1, ...) to draw "
                         f"labels for, got shape {shape}")
    classes = np.arange(shape[1])
    if ignore_index is not None and shape[1] > 1:
        classes = classes[classes != ignore_index]
    labels = classes[rng.integers(0, classes.size, size=(shape[0], *shape[2:]))]
    if ignore_index is not None and labels.size > 1:
        flat = labels.reshape(-1)
        flat[rng.permutation(flat.size)[:max(1, flat.size // 4)]] = ignore_index
    return labels


def _checked_logits(y_pred: Any) -> np.ndarray:
    """CrossEntropyLoss's ``y_pred``: (N, C) or (N, C, d1, ...) finite floating logits, not empty, as an array."""
    who = "CrossEntropyLoss"
    logits = y_pred
    if type(logits) is not np.ndarray or logits.dtype.kind != "f":  # the common case skips the call
        logits = as_float_array(y_pred, who, "y_pred (logits)")
    if logits.size == 0:
        raise _empty_prediction(who, logits)
    if logits.ndim < 2:
        raise ShapeError(
            f"{who}: expected y_pred (logits) of shape (N, C) or (N, C, d1, ...), got shape {logits.shape}"
        )
    check_finite(logits, who, "y_pred (logits)")
    return logits


def _positions_as_rows(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logits: (N, C, d1, ...) -> (N*d1*..., C), one row per position; target likewise: labels
    (N, d1, ...) -> (N*d1*...,), probabilities (N, C, d1, ...) -> rows.  Shapes are checked here,
    where the message can still name them as the caller passed them."""
    shape = logits.shape
    c = shape[1]
    positions = (shape[0], *shape[2:])
    if target.shape == shape:
        target = np.moveaxis(target, 1, -1).reshape(-1, c)
    elif target.shape == positions:
        target = target.reshape(-1)
    else:
        raise ShapeError(
            f"CrossEntropyLoss: y_pred (logits) has shape {shape}, so y_true must have shape {positions} "
            f"(integer labels) or {shape} (class probabilities), got {target.shape}"
        )
    return np.moveaxis(logits, 1, -1).reshape(-1, c), target


def _rows_as_positions(rows: np.ndarray, spatial: tuple[int, ...] | None) -> np.ndarray:
    """(N*d1*..., C) rows back to the logits' shape (N, C, d1, ...): a view; as is without positions."""
    if spatial is None:
        return rows
    return np.moveaxis(rows.reshape(spatial[0], *spatial[2:], spatial[1]), -1, 1)


def _class_labels(who: str, target: np.ndarray, given: tuple[int, ...], rows_shape: tuple[int, ...],
                  ignore_index: int | None, spatial: tuple[int, ...] | None,
                  probabilities_too: bool = False,
                  ignorable: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer labels ``target: (n,)`` for ``rows_shape = (n, c)`` scores, checked: (the labels in native
    byte order, the mask of rows not labelled ``ignore_index`` or None).  ``given``: y_true's shape
    as the caller passed it, ``spatial`` y_pred's when it had positions, and ``probabilities_too``
    whether the loss takes probability targets as well, for the messages; ``ignorable``, the loss class that
    takes ``ignore_index`` (named in the hint on PyTorch's default -100).  Bool targets are refused
    whatever their shape (:func:`_bool_class_targets`), as CrossEntropyLoss refuses bool probabilities."""
    n, c = rows_shape
    if target.dtype.kind == "b":
        raise _bool_class_targets(who, given, target.shape == rows_shape, probabilities_too)
    if target.dtype.kind not in "iu":
        probabilities = f"(N, {c})" if spatial is None else str(spatial)
        also = f", or pass {probabilities} class probabilities" if probabilities_too else ""
        if target.ndim == 2 and target.shape == rows_shape:
            fix = "y_true.argmax(axis=1) (one row per sample: the labels are its largest entries)"
        elif target.dtype.kind in "fc" and not np.all(np.isfinite(target)):
            fix = "finite whole-number labels (these hold NaN or inf)"
        elif target.dtype.kind in "fc" and not np.all(target == np.round(target)):
            fix = "whole-number labels (these are not: astype(int) would cut them off)"
        else:
            fix = "y_true.astype(int)"
        raise DTypeError(f"{who}: y_true of shape {given} must hold integer class labels, got dtype "
                         f"{target.dtype}; use {fix}{also}")
    if target.shape != (n,):
        raise ShapeError(f"{who}: y_pred has shape {rows_shape}, so integer labels y_true must have shape "
                         f"({n},), got {target.shape}")
    target = native(target)  # (e.g. big-endian labels read from a file)
    kept = None if ignore_index is None else target != ignore_index
    # One reduction checks both ends: seen as unsigned, a negative label is huge.
    checked = target if kept is None else target[kept]
    # (a negative int8 label seen as unsigned is >= 128 only: with more classes, test the sign too)
    small = c > _SIGNED_MAX[target.dtype.itemsize] and target.dtype.kind == "i"
    if checked.size and (np.maximum.reduce(checked.view(_UNSIGNED[target.dtype.itemsize])) >= c
                         or (small and np.minimum.reduce(checked) < 0)):
        bad = (target < 0) | (target >= c)
        if kept is not None:
            bad &= kept
        i = int(np.argmax(bad))
        where = i if spatial is None else _position(i, spatial)
        raise TargetError.located(
            f"{who}: class label {int(target[i])} at index {where} is out of range for {c} classes "
            f"(labels must be in [0, {c - 1}]); {int(bad.sum())} label(s) out of range"
            + ("; with one output column the model is a binary classifier: use BCEWithLogitsLoss (targets 0/1 of "
               "shape (N, 1)), or give the model 2 outputs" if c == 1 else "")
            + (f" (-100 is PyTorch's default ignore_index; minidl ignores nothing by default: "
               f"md.{ignorable}(ignore_index=-100))" if ignorable and ignore_index is None and target[i] == -100
               else ""),
            (where,) if isinstance(where, int) else where, target.shape if spatial is None else
            (spatial[0], *spatial[2:]))
    return target, kept


def _bool_class_targets(who: str, given: tuple[int, ...], rows: bool, probabilities_too: bool) -> DTypeError:
    """The ``DTypeError`` for a bool ``y_true`` of shape ``given`` (as the caller passed it): neither class
    labels nor class probabilities, whatever its shape (a mask compared by mistake reads as either).  ``rows``:
    it has the scores' shape, one row per sample; ``probabilities_too``: the loss takes probabilities."""
    if rows:
        fix = ("y_true.astype(float) for one-hot rows (class probabilities), or " if probabilities_too else "") \
            + "y_true.argmax(axis=1) for the class labels"
    else:
        fix = "y_true.astype(np.int64) for class labels (False and True as classes 0 and 1)"
    what = "neither class labels nor class probabilities" if probabilities_too else "not class labels"
    return DTypeError(f"{who}: y_true of shape {given} has dtype bool, which is {what}; pass {fix}")


def _position(row: int, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """The (n, i1, ...) index of a row of :func:`_positions_as_rows` in y_true (N, d1, ...)."""
    return tuple(int(i) for i in np.unravel_index(row, (spatial[0], *spatial[2:])))


class NLLLoss(Loss):
    """Negative log-likelihood of log-probabilities, as PyTorch's ``nn.NLLLoss``: after a
    :class:`~minidl.LogSoftmax` it is the cross-entropy (``CrossEntropyLoss`` fuses the two).

    Shapes:
        y_pred: (N, C) log-probabilities, or (N, C, d1, ...) with positions (classes on axis 1).
        y_true: (N,) integer class labels in ``[0, C)``, or (N, d1, ...) with positions.

    With class weights ``w`` (all 1 without ``weight``) and the rows ``n`` not labelled
    ``ignore_index``::

        loss = -sum_n w[y_n] * y_pred[n, y_n] / sum_n w[y_n]       (reduction="sum": no division)
        dloss/dy_pred[n, c] = -w[y_n] / norm where c = y_n, else 0

    As :class:`CrossEntropyLoss`: ``ignore_index`` is off by default (PyTorch ignores -100), and a
    batch whose every label is ignored has loss 0 and a zero gradient.  The log-probabilities must be
    finite (``NonFiniteError``), which ``LogSoftmax`` of finite logits always is.
    """

    reduction = _setting("reduction", _reduction_in_weights_place("weight"), _REDUCTION_DOC)
    weight = _setting("weight", _class_weights,
                      "(C,) non-negative class weights (a read-only float64 copy), or None; checked when set.")
    ignore_index = _setting("ignore_index", _ignore_index,
                            "The label whose rows count for nothing, an int, or None; checked when set.")

    def __init__(self, reduction: str = "mean", *, weight: Any = None, ignore_index: int | None = None) -> None:
        self.reduction = reduction
        self.weight = weight
        self.ignore_index = ignore_index
        # the last forward: rows' shape and dtype, the picked rows and labels, their gradient (one value
        # for all without weight), positions
        self._cache: tuple[tuple[int, int], np.dtype, np.ndarray, np.ndarray, np.ndarray,
                           tuple[int, ...] | None] | None = None

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random class labels in ``[0, C)``: (N,) or (N, d1, ...); with ``ignore_index``, about a
        quarter of them (at least one, never all) set to it."""
        return _random_labels(y_pred, rng, self.ignore_index, type(self).__name__)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, C) or (N, C, d1, ...) log-probabilities; y_true: (N,) or (N, d1, ...) labels -> loss."""
        who = "NLLLoss"
        logp = as_float_array(y_pred, who, "y_pred (log-probabilities)")
        if logp.size == 0:
            raise _empty_prediction(who, logp)
        if logp.ndim < 2:
            raise ShapeError(f"{who}: expected y_pred (log-probabilities) of shape (N, C) or (N, C, d1, ...), "
                             f"got shape {logp.shape}")
        check_finite(logp, who, "y_pred (log-probabilities)")
        target = as_array(y_true, who, "y_true")
        given = target.shape
        spatial = logp.shape if logp.ndim > 2 else None
        rows = logp
        if spatial is not None:
            if target.shape != (spatial[0], *spatial[2:]):
                raise ShapeError(f"{who}: y_pred has shape {spatial}, so y_true must hold integer labels of shape "
                                 f"{(spatial[0], *spatial[2:])}, got {target.shape}")
            rows, target = _positions_as_rows(logp, target)
        n, c = rows.shape
        weight, mean = self.weight, self.reduction == "mean"
        if weight is not None and weight.shape != (c,):
            raise ShapeError(f"{who}: weight has {weight.size} class weight(s), but y_pred has {c} classes")
        target, kept = _class_labels(who, target, given, (n, c), self.ignore_index, spatial,
                                     ignorable="NLLLoss")
        picked_rows = np.arange(n) if kept is None else np.flatnonzero(kept)
        labels = target[picked_rows].astype(np.intp, copy=False)
        picked = rows[picked_rows, labels]
        w: np.ndarray | None = None
        if weight is None:  # every weight 1: a sum (in float64, as the weighted dot) and one gradient value
            norm = float(labels.size)
            total = -float(np.add.reduce(picked, dtype=np.float64))
        else:
            w = weight[labels]
            norm = float(np.add.reduce(w))
            total = -float(np.dot(w, picked))
        weighted = weight is not None or kept is not None  # the mean divides by the kept weights
        self.batch_weight = norm if weighted and mean else None
        if not mean or norm == 0.0:  # all ignored or weightless: 0, nothing to divide
            norm = 1.0
        values = np.asarray(-1.0 / norm, dtype=rows.dtype) if w is None else (w * (-1.0 / norm)).astype(rows.dtype)
        self._cache = ((n, c), rows.dtype, picked_rows, labels, values, spatial)
        return total / norm

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: y_pred's shape and dtype, non-zero only at each kept row's label."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        shape, dtype, picked_rows, labels, values, spatial = cache
        grad = np.zeros(shape, dtype=dtype)
        grad[picked_rows, labels] = values
        return _rows_as_positions(grad, spatial)

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        if self.weight is not None:
            parts.append(f"weight={self.weight.tolist()}")
        if self.ignore_index is not None:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts)


class MultiMarginLoss(Loss):
    """The multi-class hinge loss (the multiclass SVM loss) on class scores, as PyTorch's
    ``nn.MultiMarginLoss``.

    Shapes:
        y_pred: (N, C) class scores x.
        y_true: (N,) integer class labels y in ``[0, C)``.

    With class weights ``w`` (all 1 without ``weight``) and ``z[n, i] = margin - x[n, y_n] + x[n, i]``,
    how far a wrong class ``i`` comes within the margin of the right one::

        loss_n = w[y_n] / C * sum over i != y_n of max(0, z[n, i]) ** p          (p = 1 or 2)
        loss   = sum_n loss_n / N     (reduction="sum": no division; the weights do not divide)

        dloss/dx[n, i]   = w[y_n] / C * p * max(0, z[n, i]) ** (p - 1) / N    for i != y_n, where z > 0
        dloss/dx[n, y_n] = -(the sum of those of row n)

    (``max(0, z) ** 0`` is 1 where ``z > 0``: the hinge's slope, 0 at its kink ``z = 0`` as in
    PyTorch.)  With ``margin=1`` this is CS231n's SVM loss divided by C.  float16 is computed in
    float32 and rounded once.

    Args:
        p: 1 (the hinge) or 2 (the squared hinge).
        margin: the margin by which the right class's score should win (any finite number).
        weight: (C,) non-negative class weights.
        reduction: ``"mean"`` or ``"sum"``.

    Not implemented from PyTorch: a 1-D input (one sample), ``reduction="none"``.
    """

    p = _setting("p", _hinge_power, "1 (the hinge) or 2 (the squared hinge); checked when set.")
    margin = _setting("margin", _finite, "The margin by which the right class should win, finite; checked when set.")
    weight = _setting("weight", _class_weights,
                      "(C,) non-negative class weights (a read-only float64 copy), or None; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None, reduction: str = "mean") -> None:
        self.p, self.margin, self.weight, self.reduction = p, margin, weight, reduction
        # the last forward: dloss/dy_pred, made with the loss (it needs the same hinge values)
        self._grad: np.ndarray | None = None

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random class labels in ``[0, C)``, (N,)."""
        return _random_labels(y_pred, rng, None, type(self).__name__)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, C) scores; y_true: (N,) integer labels -> scalar loss."""
        who = "MultiMarginLoss"
        x = native(as_float_array(y_pred, who, "y_pred (scores)"))
        if x.size == 0:
            raise _empty_prediction(who, x)
        if x.ndim != 2:
            raise ShapeError(f"{who}: expected y_pred (scores) of shape (N, C), got shape {x.shape}")
        check_finite(x, who, "y_pred (scores)")
        target = as_array(y_true, who, "y_true")
        n, c = x.shape
        p, margin, weight, reduction = self.p, self.margin, self.weight, self.reduction
        if weight is not None and weight.shape != (c,):
            raise ShapeError(f"{who}: weight has {weight.size} class weight(s), but y_pred has {c} classes")
        labels, _ = _class_labels(who, target, target.shape, (n, c), None, None)
        rows, labels = np.arange(n), labels.astype(np.intp, copy=False)
        dtype = x.dtype
        x = widened(x)
        if abs(margin) > float(np.finfo(x.dtype).max):
            raise ValueError(f"{who}: margin {margin!r} overflows the scores' dtype {x.dtype}")
        # huge finite scores may overflow to inf (as in PyTorch): no warning, the loss says inf
        with np.errstate(over="ignore", invalid="ignore"):
            z = (margin - x[rows, labels])[:, None] + x  # (PyTorch's order: the same z > 0 at a kink)
            z[rows, labels] = 0.0  # the right class is no competitor of its own
            hinge = np.maximum(z, 0.0)
            scale = (1.0 if weight is None else weight[labels].astype(x.dtype)) / c
            per = hinge if p == 1 else hinge * hinge
            loss = float(np.add.reduce(np.add.reduce(per, axis=1) * scale))
            # the gradient: scale * p * hinge ** (p - 1) at the wrong classes, minus their sum at the right one
            slope = (hinge > 0).astype(x.dtype) if p == 1 else hinge * 2.0
            slope *= np.reshape(scale, (-1, 1)) if weight is not None else scale
            slope[rows, labels] = -np.add.reduce(slope, axis=1)
            if reduction == "mean":
                loss /= n
                slope *= 1.0 / n
            self._grad = slope.astype(dtype, copy=False)
        return loss

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: (N, C), y_pred's dtype."""
        grad = self._grad
        self._require_cache(grad)
        assert grad is not None
        return grad.copy()

    def extra_repr(self) -> str:
        parts = [f"p={self.p}", f"margin={self.margin}"]
        if self.weight is not None:
            parts.append(f"weight={self.weight.tolist()}")
        return ", ".join([*parts, f"reduction={self.reduction!r}"])


def _pair_of_predictions(who: str, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y_pred`` as the tuple ``(x1, x2)`` of two finite float arrays of one shape and dtype, native, or
    the error naming ``who``."""
    x1, x2 = pair_of_arrays(y_pred, who, "y_pred is the pair (x1, x2) of two arrays (a model's two outputs)",
                            ("y_pred[0]", "y_pred[1]"))
    for i, a in enumerate((x1, x2)):
        if a.size == 0:
            raise _empty_prediction(who, a)
        check_finite(a, who, f"y_pred[{i}]")
    return x1, x2


def _signs(who: str, y_true: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``y_true`` as -1/1 labels of ``shape`` in ``dtype`` (a copy), or the error naming ``who``."""
    y = as_array(y_true, who, "y_true")
    _refuse_non_numeric_signs(who, y)
    if y.shape != shape:
        raise ShapeError(f"{who}: y_true must have shape {shape}, got {y.shape}"
                         f"{_trailing_axis_hint(shape, y.shape, prediction=False)}")
    _refuse_other_labels(who, y)
    return y.astype(dtype)


def _refuse_non_numeric_signs(who: str, y: np.ndarray) -> None:
    """``DTypeError`` naming ``who`` unless the labels ``y`` (-1 or 1) are numbers: a bool array is
    refused, not read as 0 and 1 (neither of which is a label here)."""
    if y.dtype.kind not in "fiu":
        hint = "; for True/False labels pass np.where(y_true, 1, -1)" if y.dtype.kind == "b" else ""
        raise DTypeError(f"{who}: expected numeric y_true (-1 or 1), got dtype {y.dtype}{hint}")


def _refuse_other_labels(who: str, y: np.ndarray, meanings: tuple[str, str] = ("", "")) -> None:
    """``TargetError`` naming ``who`` and the first label of ``y`` that is neither -1 nor 1; ``meanings``
    of the two in the message (e.g. " (dissimilar)").  Labels that are all 0 or 1 (the other common
    encoding) are told the conversion."""
    wrong = (y != 1) & (y != -1)
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        hint = ""
        if bool(np.all((y == 0) | (y == 1))):  # (unsigned labels would wrap round: 2 * 0 - 1 is 255 in uint8)
            hint = f"; for 0/1 labels pass 2 * y_true{'.astype(np.int64)' if y.dtype.kind == 'u' else ''} - 1"
        raise TargetError.located(f"{who}: labels y_true must be -1{meanings[0]} or 1{meanings[1]}, got "
                                  f"{y[index].item()!r} at index {index}{hint}", index, y.shape)


class MarginRankingLoss(Loss):
    """Which of two scores should rank higher, as PyTorch's ``nn.MarginRankingLoss``: ``y = 1`` says
    ``x1`` should be the larger by ``margin``, ``y = -1`` that ``x2`` should.

    Shapes: y_pred: the pair ``(x1, x2)`` (a model's two outputs), each (N, ...); y_true: -1 or 1 of
    that shape::

        loss_i = max(0, margin - y_i (x1_i - x2_i))      averaged over every element, or summed
        dloss/dx1_i = -y_i, dloss/dx2_i = y_i  where margin - y_i (x1_i - x2_i) >= 0 (PyTorch's slope at
        the kink too), else 0

    ``backward()`` returns the pair ``(dx1, dx2)``.  Labels other than -1 and 1 are refused.  float16 is
    computed in float32 and rounded once.
    """

    several_predictions = True
    margin = _setting("margin", _finite, "By how much the right score should win, finite; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        self.margin, self.reduction = margin, reduction
        self._cache: tuple[np.ndarray, np.dtype] | None = None  # (dloss/dx1, the predictions' dtype)

    def random_targets(self, y_pred: Any, rng: np.random.Generator) -> np.ndarray:
        """Random labels -1 and 1 of the shape of ``x1`` (``y_pred[0]``)."""
        return rng.choice([-1.0, 1.0], np.shape(y_pred[0]))

    def forward(self, y_pred: Any, y_true: Any) -> float:
        """y_pred: (x1, x2), each (N, ...); y_true: -1 or 1 of their shape -> scalar loss."""
        who = "MarginRankingLoss"
        x1, x2 = _pair_of_predictions(who, y_pred)
        dtype = x1.dtype
        x1, x2 = widened(x1), widened(x2)
        y = _signs(who, y_true, x1.shape, x1.dtype)
        margin, reduction = self.margin, self.reduction
        with np.errstate(over="ignore"):  # huge scores: an infinite loss, quietly
            z = margin - y * (x1 - x2)
            per = np.maximum(z, 0)
            total = float(np.add.reduce(per, axis=None, dtype=np.float64))
        scale = 1.0 / per.size if reduction == "mean" else 1.0
        self._cache = (-y * (z >= 0) * scale, dtype)
        return total * scale

    def backward(self) -> tuple[np.ndarray, np.ndarray]:
        """(dloss/dx1, dloss/dx2), each x1's shape and dtype."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        slope, dtype = cache
        dx1 = slope.astype(dtype)  # (a new array each call)
        return dx1, -dx1

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


class CosineEmbeddingLoss(Loss):
    """Pairs of embeddings made to point alike (``y = 1``) or apart (``y = -1``), as PyTorch's
    ``nn.CosineEmbeddingLoss``.

    Shapes: y_pred: the pair ``(x1, x2)`` (a model's two outputs), each (N, D); y_true: (N,) -1 or 1.
    With PyTorch's ``cos = sum(x1 x2) / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12))`` per row::

        loss_n = 1 - cos_n                   where y_n = 1
                 max(0, cos_n - margin)      where y_n = -1          (averaged over N, or summed)

    backward: ``dcos/dx1 = x2 / s - cos x1 / (|x1|^2 + 1e-12)``, ``s`` the square root above (likewise
    for x2), times -1 (y = 1) or 1 where ``cos >= margin`` (y = -1; PyTorch's slope at the kink too).
    ``backward()`` returns the pair ``(dx1, dx2)``.  Labels other than -1 and 1 are refused.  float16
    is computed in float32 and rounded once.
    """

    several_predictions = True
    _EPSILON = 1e-12  # PyTorch's, added to each squared norm
    margin = _setting("margin", _finite,
                      "The cosine below which a dissimilar pair costs nothing, finite; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        self.margin, self.reduction = margin, reduction
        self._cache: tuple[np.ndarray, np.ndarray, np.dtype] | None = None  # (dx1, dx2) wide, the dtype

    def random_targets(self, y_pred: Any, rng: np.random.Generator) -> np.ndarray:
        """Random labels -1 and 1, one per row of ``x1`` (``y_pred[0]``)."""
        return rng.choice([-1.0, 1.0], np.shape(y_pred[0])[:1])

    def forward(self, y_pred: Any, y_true: Any) -> float:
        """y_pred: (x1, x2), each (N, D); y_true: (N,) -1 or 1 -> scalar loss."""
        who = "CosineEmbeddingLoss"
        x1, x2 = _pair_of_predictions(who, y_pred)
        if x1.ndim != 2:
            raise ShapeError(f"{who}: expected x1 and x2 of shape (N, D), got {x1.shape}")
        dtype = x1.dtype
        a, b = widened(x1), widened(x2)
        wide = a.dtype
        y = _signs(who, y_true, x1.shape[:1], wide)
        margin, reduction = self.margin, self.reduction
        with np.errstate(over="ignore", invalid="ignore"):  # huge embeddings: as NumPy computes, quietly
            m1 = np.einsum("nd,nd->n", a, a) + self._EPSILON
            m2 = np.einsum("nd,nd->n", b, b) + self._EPSILON
            root = np.sqrt(m1 * m2)
            cos = np.einsum("nd,nd->n", a, b) / root
            similar = y == 1
            per = np.where(similar, 1 - cos, np.maximum(cos - margin, 0))
            total = float(np.add.reduce(per, dtype=np.float64))
            scale = 1.0 / per.size if reduction == "mean" else 1.0
            # dloss/dcos per row: -1 for a similar pair, 1 for a dissimilar one within the margin, else 0
            weight = (np.where(similar, -1.0, (cos >= margin).astype(wide)) * scale).astype(wide)[:, None]
            dx1 = weight * (b / root[:, None] - (cos / m1)[:, None] * a)
            dx2 = weight * (a / root[:, None] - (cos / m2)[:, None] * b)
        self._cache = (dx1, dx2, dtype)
        return total * scale

    def backward(self) -> tuple[np.ndarray, np.ndarray]:
        """(dloss/dx1, dloss/dx2), each (N, D) of the predictions' dtype."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        dx1, dx2, dtype = cache
        with np.errstate(over="ignore"):
            return dx1.astype(dtype), dx2.astype(dtype)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def _triplet_of_predictions(who: str, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y_pred`` as the triplet ``(anchor, positive, negative)`` of three non-empty, finite float arrays
    of one shape, (D,) or (N, ..., D), and one dtype, native; or the error naming ``who``."""
    if not (type(y_pred) is tuple and len(y_pred) == 3):
        given = f"a tuple of {len(y_pred)}" if type(y_pred) is tuple else type(y_pred).__name__
        raise ShapeError(f"{who}: y_pred is the triplet (anchor, positive, negative) of three arrays (a model's "
                         f"three outputs), got {given}")
    names = [f"y_pred[{i}] ({name})" for i, name in enumerate(("anchor", "positive", "negative"))]
    a, p, n = (native(as_float_array(x, who, name)) for x, name in zip(y_pred, names, strict=True))
    if not a.shape == p.shape == n.shape:
        raise ShapeError(f"{who}: anchor, positive and negative must have the same shape, got {a.shape}, "
                         f"{p.shape} and {n.shape}")
    if not a.dtype == p.dtype == n.dtype:
        raise DTypeError(f"{who}: anchor, positive and negative must have the same dtype, got {a.dtype}, "
                         f"{p.dtype} and {n.dtype}")
    if a.ndim == 0:
        raise ShapeError(f"{who}: expected anchor, positive and negative of shape (N, D) (a batch of triplets) or "
                         f"(D,) (one triplet), got shape {a.shape}")
    for x, name in zip((a, p, n), names, strict=True):
        if x.size == 0:
            raise _empty_prediction(who, x, name)
        check_finite(x, who, name)
    return a, p, n


def _ignored_targets(who: str, y_true: Any, shape: tuple[int, ...]) -> None:
    """Refuse a ``y_true`` that is neither ``None`` nor an array with one row per triplet of predictions
    of ``shape`` (N rows for (N, ..., D), 1 row or a scalar for one triplet (D,)); its values are ignored."""
    if y_true is None:
        return
    y = as_array(y_true, who, "y_true")
    rows = shape[0] if len(shape) > 1 else 1
    if (y.shape[0] if y.ndim else 1) != rows or (y.ndim == 0 and len(shape) > 1):
        example = f"np.zeros({rows})" if len(shape) > 1 else "None or np.zeros(1)"
        raise ShapeError(f"{who}: y_true is not used (a triplet loss has no targets), but when given it must have "
                         f"one row per triplet, {rows} here (y_pred's arrays have shape {shape}), e.g. {example}; "
                         f"got shape {y.shape}")


class TripletMarginLoss(Loss):
    """An embedding learnt from triplets, as PyTorch's ``nn.TripletMarginLoss``: each anchor is pulled
    towards its positive (a sample alike) and pushed from its negative (one unlike) until the negative is
    at least ``margin`` farther away.

    Shapes: y_pred: the triplet ``(anchor, positive, negative)`` of a model's three outputs (one embedding
    tower applied to three inputs), each (N, D) (or (N, ..., D): the embeddings along the last axis, every
    leading position a triplet of its own; or (D,), one triplet).  y_true: no targets; ``None`` or any
    array with one row per triplet (N rows; its values, dtype and other axes are ignored), so that a loop
    calls ``loss((a, p, n), None)`` and ``fit`` takes a placeholder ``y`` such as ``np.zeros(N)`` (``fit``
    and ``evaluate`` need a ``y`` of N rows to batch).  With PyTorch's ``pairwise_distance``,
    ``d(x, y) = ||x - y + eps||_p`` over the last axis (``eps`` added to every difference)::

        d_pos  = d(anchor, positive)
        d_neg  = d(anchor, negative)    (swap=True: min(d(anchor, negative), d(positive, negative)))
        loss_i = max(0, margin + d_pos - d_neg)               averaged over the triplets, or summed

    Backward: where ``margin + d_pos - d_neg >= 0`` (PyTorch's slope at the kink 0 too), the slopes of
    the distances (``PairwiseDistance``'s: ``u / d`` for p = 2, ``sign(u)`` for p = 1, shared among ties
    for p = inf, 0 at a zero distance), +1 for ``d_pos`` and -1 for ``d_neg``; with ``swap`` the
    negative's distance that is the smaller takes that -1, a tie half each (PyTorch's ``min``).
    ``backward()`` returns ``(danchor, dpositive, dnegative)``, each of the predictions' shape and dtype.
    float16 is computed in float32 and rounded once.  One-element embeddings (D = 1): the distance is
    ``|u|`` exactly for every p, as PyTorch's, with slope ``sign(u)`` (PyTorch's gradient is NaN where its
    ``|u|^(p-1)`` under- or overflows, float32 p = 100 at |u| = 0.3 say).  A distance whose sum of
    |u_i|^p underflows to 0 is 0 with slope 0, as PyTorch's; where PyTorch's ``|u_i|^(p-1)`` and
    ``d^(p-1)`` under- or overflow for a large p, its gradients are NaN or inf and these finite.  A
    distance beyond the dtype's range (its sum of |u|^p, for p < inf) gives an infinite loss, or NaN for
    inf - inf, quietly as PyTorch's (the gradients there are not PyTorch's, which are NaN in places;
    ``fit`` refuses such a loss anyway).

    Args:
        margin: how much farther than the positive the negative must be: a finite number > 0 (PyTorch
            refuses 0 and less too).
        p: the norm's order: a number > 0 (below 1 not a norm, but PyTorch's formula) or ``math.inf``.
            PyTorch also takes p <= 0, which measures no distance (p = 0 counts the non-zero
            differences, all D of them with eps): refused here (``ValueError``).
        eps: added to every difference (a finite number; PyTorch's 1e-6).
        swap: use the smaller of the anchor's and the positive's distance to the negative (the "distance
            swap" of Balntas et al. 2016).
        reduction: ``"mean"`` or ``"sum"``.

    ``metrics=["accuracy"]``, ``["mse"]`` and ``["mae"]`` are refused with this loss (there are no targets
    to score); a metric of your own gets the triplet of embeddings.  Not implemented from PyTorch:
    ``reduction="none"``, anchors, positives and negatives of different shapes broadcast against each
    other (refused: a model's three outputs have one shape), an empty batch (refused, as by every loss).
    """

    several_predictions = True
    margin = _setting("margin", _positive_margin, "How much farther than the positive the negative must be, "
                      "finite and > 0; checked when set.")
    p = _setting("p", _norm_order, "The norm's order, > 0 or ``math.inf``; checked when set.")
    eps = _setting("eps", _finite, "Added to every difference, finite; checked when set.")
    swap = _setting("swap", _flag, "Whether the negative's distance is the smaller of the anchor's and the "
                    "positive's; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 reduction: str = "mean") -> None:
        self.margin, self.p, self.eps, self.swap, self.reduction = margin, p, eps, swap, reduction
        # the last forward: the differences u (+ eps) and distances d (the last axis kept) of (anchor,
        # positive), (anchor, negative) and with swap (positive, negative); the hinge's slope times the
        # reduction's scale (..., 1); the predictions' dtype; the p and swap it used (its backward's)
        self._cache: tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.dtype, float, bool] | None = None

    def random_targets(self, y_pred: Any, rng: np.random.Generator) -> np.ndarray:
        """The placeholder targets: zeros, one per row of the anchor (``y_pred[0]``), one for a single
        triplet."""
        shape = np.shape(y_pred[0])
        return np.zeros(shape[0] if len(shape) > 1 else 1)

    def forward(self, y_pred: Any, y_true: Any) -> float:
        """y_pred: (anchor, positive, negative), each (N, D) or (D,); y_true: None or N ignored rows ->
        scalar loss."""
        who = "TripletMarginLoss"
        anchor, positive, negative = _triplet_of_predictions(who, y_pred)
        _ignored_targets(who, y_true, anchor.shape)
        dtype = anchor.dtype
        a, pos, neg = widened(anchor), widened(positive), widened(negative)
        margin, p, eps, swap, reduction = self.margin, self.p, self.eps, self.swap, self.reduction
        top = float(np.finfo(a.dtype).max)
        for name, value in (("margin", margin), ("eps", eps)):
            if abs(value) > top:
                raise ValueError(f"{who}: {name} {value!r} overflows the dtype the loss is computed in, {a.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # huge differences: inf, as PyTorch, quietly
            pairs = [(a, pos), (a, neg), (pos, neg)] if swap else [(a, pos), (a, neg)]
            distances = []
            for x, y in pairs:
                u = x - y
                u += eps
                distances.append((u, _p_norm(u, p)))
            d_neg = distances[1][1] if not swap else np.minimum(distances[1][1], distances[2][1])
            z = (margin + distances[0][1]) - d_neg
            per = np.maximum(z, 0)
            total = float(np.add.reduce(per, axis=None, dtype=np.float64))
        scale = 1.0 / per.size if reduction == "mean" else 1.0
        self.batch_weight = 1.0 if anchor.ndim == 1 else None  # (one triplet, whatever fit counts of a (D,) array)
        self._cache = (distances, (z >= 0) * a.dtype.type(scale), dtype, p, swap)
        return total * scale

    def backward(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(danchor, dpositive, dnegative), each of the predictions' shape and dtype."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        distances, g, dtype, p, swap = cache  # (the forward's p and swap, whatever is set since)
        with np.errstate(over="ignore", invalid="ignore"):  # (as the loss: an overflow is inf or NaN, quietly)
            pulled = _p_norm_backward(g, *distances[0], p)  # d(d_pos)/danchor; minus it for the positive
            if not swap:
                pushed = _p_norm_backward(g, *distances[1], p)  # d(d_an)/danchor; minus it for the negative
                da, dp, dn = pulled - pushed, -pulled, pushed
            else:  # d_neg = min(d_an, d_pn): the smaller one's slope, half each at a tie (PyTorch's min)
                (_, d_an), (_, d_pn) = distances[1], distances[2]
                share = np.where(d_an < d_pn, 1, np.where(d_an == d_pn, 0.5, 0)).astype(g.dtype)
                pushed = _p_norm_backward(g * share, *distances[1], p)
                swapped = _p_norm_backward(g * (1 - share), *distances[2], p)  # d(d_pn)/dpositive
                da, dp, dn = pulled - pushed, -pulled - swapped, pushed + swapped
            return da.astype(dtype, copy=False), dp.astype(dtype, copy=False), dn.astype(dtype, copy=False)

    def extra_repr(self) -> str:
        return (f"margin={self.margin}, p={self.p}, eps={self.eps}, swap={self.swap}, "
                f"reduction={self.reduction!r}")


#: ``log(2 pi) / 2``, what ``GaussianNLLLoss(full=True)`` adds per element
_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def _variance_shape(who: str, mean_shape: tuple[int, ...], var_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape in which variances ``var_shape`` broadcast against means ``mean_shape`` (PyTorch's rule):
    ``var_shape`` itself when it is the means' shape or differs from it in one axis only, where it has
    size 1; ``var_shape + (1,)`` when it is the means' shape without the last axis; else ``ShapeError``."""
    if var_shape == mean_shape:
        return var_shape
    if mean_shape and var_shape == mean_shape[:-1]:
        return (*var_shape, 1)
    if len(var_shape) == len(mean_shape):
        differ = [i for i, (m, v) in enumerate(zip(mean_shape, var_shape, strict=True)) if m != v]
        if len(differ) == 1 and var_shape[differ[0]] == 1:
            return var_shape
    problem = f"{who}: var (y_pred[1]) of shape {var_shape} does not fit the mean (y_pred[0]) of shape {mean_shape}"
    if not mean_shape:
        raise ShapeError(f"{problem}: a scalar mean takes a scalar variance")
    raise ShapeError(
        f"{problem}: it must have the mean's shape (one variance per element), the mean's shape without the last "
        f"axis {mean_shape[:-1]}, or the mean's shape with one axis of size 1, e.g. {(*mean_shape[:-1], 1)} (one "
        "variance shared along that axis)"
    )


def _check_eps(eps: float, dtype: np.dtype, wide: np.dtype) -> None:
    """``ValueError`` unless GaussianNLLLoss's ``eps``, taken in ``wide`` (the dtype the predictions of
    ``dtype`` are computed in), is a normal number there: below the smallest, 1 / var overflows; above the
    largest, it is inf."""
    who = "GaussianNLLLoss"
    limits = np.finfo(wide)
    floor, ceiling = float(limits.tiny), float(limits.max)  # (Python floats: eps is not cast to compare)
    within = "" if wide == dtype else f" ({dtype} predictions are computed in {wide}, eps included)"
    if eps < floor:
        raise ValueError(f"{who}: eps {eps!r} is below {wide}'s smallest normal number {floor:.4g}{within}, "
                         "where 1 / var overflows; use a larger eps")
    if eps > ceiling:
        raise ValueError(f"{who}: eps {eps!r} is above {wide}'s largest finite number {ceiling:.4g}"
                         f"{within}, where it would be inf; use a smaller eps")


class GaussianNLLLoss(Loss):
    """Negative log-likelihood of targets under Gaussians whose means and variances a model predicts,
    as PyTorch's ``nn.GaussianNLLLoss``: a regression that also learns how uncertain each prediction is.

    Shapes: y_pred: the pair ``(mean, var)`` of a model's two outputs, mean (N, ...) and var of the
    mean's shape (heteroscedastic: one variance per element), of that shape without its last axis, or
    of that shape with one axis of size 1 (a variance shared along that axis: (N, ..., 1), or (1, ...)
    for one per feature); y_true: the targets t, of the mean's shape.  With ``v = max(var, eps)``
    broadcast against the mean, and ``d = mean - t``::

        loss_i      = (log v_i + d_i^2 / v_i) / 2        (+ log(2 pi) / 2 with full=True)
        dloss/dmean = d / v
        dloss/dvar  = (1 / v - d^2 / v^2) / 2            summed over the axes var is broadcast along

    averaged over every element of the mean (``reduction="mean"``) or summed (``"sum"``); the mean's
    gradient and the variance's are divided alike.  ``backward()`` returns the pair ``(dmean, dvar)``,
    each of its prediction's shape and dtype.

    As PyTorch, the clamp to ``eps`` is not differentiated: where ``var < eps`` the loss no longer
    depends on var, but the gradient is the one at ``eps``, passed to var unchanged (so a variance
    stuck below ``eps`` is still pushed, up where ``d^2 > eps``); the gradient checker agrees only
    where ``var > eps``.  Negative variances are refused (``TargetError``; PyTorch raises too), and so
    are NaN/inf in the means, variances and targets (``NonFiniteError``).  Huge finite values overflow
    to an infinite loss quietly.  float16 is computed in float32 and rounded once.

    Args:
        full: add the constant ``log(2 pi) / 2`` per element (the exact negative log-likelihood).
        eps: the floor of the variances, a finite number > 0 (PyTorch accepts 0 or less, and returns NaN
            for a zero variance then), taken in the dtype the loss is computed in: the predictions' own,
            float32 for float16 predictions (float32(1e-6) = 9.99999997e-7, where PyTorch's float16 clamp
            uses float16(1e-6) = 1.0133e-6, and an eps above float16's largest value 65504 works, where
            PyTorch raises).  An eps below that dtype's smallest normal number or above its largest finite
            one is refused by ``forward`` (``ValueError``).
        reduction: ``"mean"`` or ``"sum"``.

    Not implemented from PyTorch: a Python number as ``var`` (one fixed variance: pass an array, e.g.
    ``np.full_like(mean, var)``, or use ``MSELoss``), targets of another shape broadcast against the
    mean, and ``reduction="none"``.
    """

    several_predictions = True
    full = _setting("full", _flag, "Whether the constant log(2 pi) / 2 is added per element; checked when set.")
    eps = _setting("eps", _positive, "The floor of the variances, a finite number > 0; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        self.full, self.eps, self.reduction = full, eps, reduction
        # (d / v, v in its broadcast shape, the axes var is broadcast along, var's shape, the dtype, the scale)
        self._cache: tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[int, ...], np.dtype, float] | None = None

    def random_targets(self, y_pred: Any, rng: np.random.Generator) -> np.ndarray:
        """Random N(0, 1) targets of the mean's shape (``y_pred[0]``)."""
        return rng.standard_normal(np.shape(y_pred[0]))

    def forward(self, y_pred: Any, y_true: Any) -> float:
        """y_pred: (mean, var), mean (N, ...) and var as the class says; y_true: the mean's shape -> loss."""
        who = "GaussianNLLLoss"
        mean, var = self._predictions(y_pred)
        view = _variance_shape(who, mean.shape, var.shape)
        if mean.size == 0:  # (an empty var fits an empty mean only: the shapes are checked first)
            raise _empty_prediction(who, mean, "mean (y_pred[0])")
        target = as_array(y_true, who, "y_true")
        if target.dtype.kind not in "fiub":
            raise DTypeError(f"{who}: expected numeric y_true, got dtype {target.dtype}")
        if target.shape != mean.shape:
            raise ShapeError(f"{who}: y_true must have the shape of the mean (y_pred[0]) {mean.shape}, got "
                             f"{target.shape}{_trailing_axis_hint(mean.shape, target.shape, prediction=False)}")
        if target.dtype != mean.dtype:
            target = cast_targets(target, mean.dtype, who, "y_true", "the prediction's dtype")
        check_finite(mean, who, "y_pred[0] (mean)")
        check_finite(var, who, "y_pred[1] (var)")
        check_finite(target, who, "y_true")
        if np.minimum.reduce(var, axis=None) < 0:
            index = tuple(int(i) for i in np.argwhere(var < 0)[0])
            raise TargetError(f"{who}: var (y_pred[1]) must be >= 0 (variances), got {var[index].item()!r} at "
                              f"index {index}; end the model's variance head with Softplus (or exp of a log-variance)")
        dtype = mean.dtype
        m, v = widened(mean), widened(var).reshape(view)
        full, eps, reduction = self.full, self.eps, self.reduction
        _check_eps(eps, dtype, v.dtype)
        clamped = np.maximum(v, v.dtype.type(eps))  # (eps in the dtype: a float32 floor for float32)
        broadcast = tuple(i for i, (a, b) in enumerate(zip(view, m.shape, strict=True)) if a != b)
        with np.errstate(over="ignore"):  # huge differences, tiny variances: an infinite loss, quietly
            d = np.subtract(m, widened(target), out=np.empty(m.shape, m.dtype))  # (an array also when 0-d)
            ratio = d / clamped  # d / v, the mean's shape
            per = np.multiply(d, ratio, out=d)  # d^2 / v, in d's place (d is this forward's own array)
            per += np.log(clamped)
            total = 0.5 * float(np.add.reduce(per, axis=None))
        size = per.size
        if full:
            total += _HALF_LOG_TWO_PI * size
        scale = 1.0 / size if reduction == "mean" else 1.0
        self._cache = (ratio, clamped, broadcast, var.shape, dtype, scale)
        return total * scale

    def _predictions(self, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
        """``y_pred`` as the pair (mean, var) of two float arrays of one dtype, native, or the error (their
        shapes, sizes, values and the targets are checked by the caller)."""
        who = "GaussianNLLLoss"
        if not (type(y_pred) is tuple and len(y_pred) == 2):
            given = f"a tuple of {len(y_pred)}" if type(y_pred) is tuple else type(y_pred).__name__
            raise ShapeError(f"{who}: y_pred is the pair (mean, var) of two arrays (a model's two outputs: the "
                             f"means and the variances), got {given}")
        if is_number(y_pred[1]):
            raise DTypeError(f"{who}: var (y_pred[1]) must be an array of variances (a model's output), got the "
                             f"number {y_pred[1]!r}; for one fixed variance pass np.full_like(mean, var), or use "
                             "MSELoss")
        mean, var = (native(as_float_array(a, who, name))
                     for a, name in zip(y_pred, ("y_pred[0] (mean)", "y_pred[1] (var)"), strict=True))
        if mean.dtype != var.dtype:
            raise DTypeError(f"{who}: mean and var must have the same dtype, got {mean.dtype} and {var.dtype}")
        return mean, var

    def backward(self) -> tuple[np.ndarray, np.ndarray]:
        """(dloss/dmean, dloss/dvar), of the mean's and var's shapes and dtype."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        ratio, clamped, broadcast, var_shape, dtype, scale = cache
        # The cache is read, never written (backward may be called again); the arrays made here are
        # changed in place.  ``out=`` gives arrays also for a 0-d mean (whose arithmetic gives NumPy
        # scalars), and rounds float16's float32 results once, in the last step.
        with np.errstate(over="ignore"):  # (as the loss: an overflow is inf)
            dmean = np.multiply(ratio, scale, out=np.empty(ratio.shape, dtype))
            dvar = np.multiply(ratio, ratio, out=np.empty_like(ratio))
            np.subtract(np.reciprocal(clamped), dvar, out=dvar)  # 1/v - d^2/v^2, the mean's shape
            if broadcast:
                dvar = np.add.reduce(dvar, axis=broadcast, keepdims=True)
            if dvar.dtype == dtype:
                dvar *= 0.5 * scale
            else:
                dvar = np.multiply(dvar, 0.5 * scale, out=np.empty(dvar.shape, dtype))
            return dmean, dvar.reshape(var_shape)

    def extra_repr(self) -> str:
        return f"full={self.full}, eps={self.eps}, reduction={self.reduction!r}"


class _ElementwiseLoss(Loss):
    """Base of the losses that are a mean (``reduction="mean"``) or a sum of per-element losses over
    ``y_pred``'s elements: the reduction of the values and of the gradient, shared."""

    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def _reduced(self, per: np.ndarray) -> tuple[float, float]:
        """The per-element losses' mean or sum (as ``reduction`` says now), as a float, and the scale of
        the gradient that goes with it, ``1 / size`` or 1, for the forward to keep for its backward.
        float16 is summed in float32 (a float16 sum of 70000 ones is inf).  (float32 stays float32: a
        float64 sum takes twice as long on large arrays.)"""
        total = float(np.add.reduce(per, axis=None, dtype=np.float32 if per.dtype == np.float16 else None))
        if self.reduction == "mean":
            return total / per.size, 1.0 / per.size
        return total, 1.0

    @staticmethod
    def _reduced_grad(grad: np.ndarray, scale: float) -> np.ndarray:
        """``grad`` (a new array of the per-element slopes) times the forward's ``scale``, in place."""
        if scale != 1.0:
            grad *= scale
        return grad


class BCELoss(_ElementwiseLoss):
    """Binary cross-entropy of probabilities, as PyTorch's ``nn.BCELoss`` (after a ``Sigmoid``).

    Shapes: y_pred (probabilities p in [0, 1]) and y_true (targets t in [0, 1]): (N, ...) alike::

        loss_i  = -(t log p + (1 - t) log(1 - p)),  each log clamped at -100 (PyTorch's rule: p = 0
                  or 1 gives a finite loss)
        dloss_i = (p - t) / max(p (1 - p), 1e-12)   (PyTorch's clamp; exact where p (1 - p) >= 1e-12)

    averaged over every element (``reduction="mean"``) or summed (``"sum"``).  ``log(1 - p)`` is
    ``log1p(-p)`` below p = 0.5, so small p keep their digits.  Prefer :class:`BCEWithLogitsLoss` on
    logits: it stays exact where the sigmoid rounds to 0 or 1.
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction
        self._cache: tuple[np.ndarray, np.ndarray, float] | None = None  # (p, t, the gradient's scale)

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random targets in [0, 1) of ``y_pred``'s shape."""
        return rng.uniform(0.0, 1.0, y_pred.shape)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: probabilities (N, ...); y_true: targets in [0, 1] of the same shape -> scalar loss."""
        p, t = self._checked_pair(y_pred, y_true)
        for name, a in (("y_pred (probabilities)", p), ("y_true", t)):
            if a.min() < 0 or a.max() > 1:
                index = tuple(int(i) for i in np.argwhere((a < 0) | (a > 1))[0])
                raise TargetError.located(f"BCELoss: {name} must be in [0, 1], got {float(a[index])} at index "
                                          f"{index}", index, a.shape)
        tiny = np.finfo(p.dtype).smallest_subnormal  # log(tiny) < -100: clamped below, and never log(0)
        log_p = np.maximum(np.log(np.maximum(p, tiny)), -100.0)
        log_q = np.where(p < 0.5, np.log1p(-np.minimum(p, 0.5)), np.log(np.maximum(1 - p, tiny)))
        np.maximum(log_q, -100.0, out=log_q)
        per = t * log_p
        per += (1 - t) * log_q
        value, scale = self._reduced(per)
        self._cache = (p, _kept(t, y_true), scale)
        return -value

    def backward(self) -> np.ndarray:
        """dloss/dp: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        p, t, scale = cache
        grad = p - t
        grad /= np.maximum(p * (1 - p), _BCE_EPS)
        return self._reduced_grad(grad, scale)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Binary cross-entropy on logits, as PyTorch's ``nn.BCEWithLogitsLoss`` (sigmoid fused in).

    Shapes: y_pred (logits z) and y_true (targets t in [0, 1]): (N, ...) alike.

    With the stable ``softplus(+-z) = max(+-z, 0) + log1p(exp(-|z|))``::

        loss_i  = pos_weight * t * softplus(-z) + (1 - t) * softplus(z)   (= -[w t log s + (1-t) log(1-s)])
        dloss_i = (1 - t) * s - pos_weight * t * (1 - s),   s = sigmoid(z)  (= s - t when pos_weight = 1;
                  computed in this form, with 1 - s = sigmoid(-z), so tiny gradients keep their digits)

    averaged over every element (``reduction="mean"``) or summed (``"sum"``).  ``pos_weight``
    (optional, broadcast against the last axis, e.g. shape (C,)) weighs the positive examples.
    """

    reduction = _setting("reduction", _reduction_in_weights_place("pos_weight"), _REDUCTION_DOC)
    pos_weight = _setting("pos_weight", _pos_weight, "The positives' weights, finite and >= 0 (a read-only "
                          "float64 copy, broadcast against y_pred's last axis), or None; checked when set.")

    def __init__(self, reduction: str = "mean", pos_weight: Any = None) -> None:
        self.reduction, self.pos_weight = reduction, pos_weight
        # (sigmoid(z), sigmoid(-z), t, the pos_weight used in z's dtype or None, the gradient's scale)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, float] | None = None

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random targets in [0, 1) of ``y_pred``'s shape."""
        return rng.uniform(0.0, 1.0, y_pred.shape)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: logits (N, ...); y_true: targets in [0, 1] of the same shape -> scalar loss."""
        z, t = self._checked_pair(y_pred, y_true)
        check_finite(z, "BCEWithLogitsLoss", "y_pred (logits)")
        if t.size and (t.min() < 0 or t.max() > 1):
            bad = np.argwhere((t < 0) | (t > 1))[0]
            index = tuple(int(i) for i in bad)
            raise TargetError.located(
                f"BCEWithLogitsLoss: targets must be in [0, 1], got {float(t[index])} at index {index}", index, t.shape
            )
        e = np.exp(-np.abs(z))                      # in (0, 1]: never overflows
        tail = np.log1p(e)
        # softplus(z) = -log(1 - sigmoid(z)) and softplus(-z), each as max(+-z, 0) + log1p(exp(-|z|)):
        # no cancellation, so a confident right answer keeps its tiny loss (log1p(e^-40), not 0)
        softplus, softplus_neg = np.maximum(z, 0) + tail, np.maximum(-z, 0) + tail
        # sigmoid(z) and 1 - sigmoid(z) = sigmoid(-z), each accurate on both tails
        s, s_neg = 1 / (1 + e), e / (1 + e)
        s, s_neg = np.where(z >= 0, s, s_neg), np.where(z >= 0, s_neg, s)
        pos_weight, w = self.pos_weight, None
        if pos_weight is None:
            per = t * softplus_neg + (1 - t) * softplus
        else:
            w = pos_weight.astype(z.dtype)
            try:
                fits = np.broadcast_shapes(w.shape, z.shape) == z.shape
            except ValueError:
                fits = False
            if not fits:
                raise ShapeError(
                    f"BCEWithLogitsLoss: pos_weight of shape {w.shape} does not broadcast to y_pred's "
                    f"shape {z.shape} (it weighs the last axis, e.g. shape ({z.shape[-1] if z.ndim else 1},))"
                )
            per = w * t * softplus_neg + (1 - t) * softplus
        value, scale = self._reduced(per)
        self._cache = (s, s_neg, _kept(t, y_true), w, scale)
        return value

    def backward(self) -> np.ndarray:
        """dloss/dlogits: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        s, s_neg, t, w, scale = cache
        # (1 - t) s - w t (1 - s); with w = 1 this is s - t, but this form keeps tiny gradients exact
        grad = (1 - t) * s
        grad -= t * s_neg if w is None else w * t * s_neg
        return self._reduced_grad(grad, scale)

    def extra_repr(self) -> str:
        pos = "" if self.pos_weight is None else f", pos_weight={self.pos_weight.tolist()}"
        return f"reduction={self.reduction!r}{pos}"


class KLDivLoss(Loss):
    """Kullback-Leibler divergence, as PyTorch's ``nn.KLDivLoss``: ``y_pred`` holds log-probabilities
    ``x`` (e.g. a ``LogSoftmax``'s output), ``y_true`` probabilities ``t`` (with ``log_target=True``,
    log-probabilities ``u``, ``t = exp(u)``), e.g. a teacher's, for distillation.

    Shapes: y_pred and y_true: (N, ...) alike::

        loss_i  = t (log t - x)    (0 where t = 0, the limit; log_target: exp(u) (u - x))
        dloss_i = -t               (log_target: -exp(u))

    reduced by ``reduction``: ``"batchmean"``, the sum over N (the divergence per sample: the
    mathematical KL, PyTorch's advice), ``"mean"`` over every element (PyTorch's default, which also
    divides by the number of classes), or ``"sum"``.  Probabilities must be >= 0 (they need not sum to
    1, as in PyTorch); log-probabilities must not overflow ``exp``.
    """

    reduction = _setting("reduction", _kl_reduction,
                         '``"mean"``, ``"batchmean"`` or ``"sum"``; checked when set.')
    log_target = _setting("log_target", _flag, "Whether y_true holds log-probabilities; checked when set.")

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        self.reduction, self.log_target = reduction, log_target
        self._cache: tuple[np.ndarray, float] | None = None  # (t, the reduction's 1 / divisor)

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random probabilities of ``y_pred``'s shape, each row along the last axis summing to 1 (their
        logarithms with ``log_target``)."""
        t = rng.uniform(0.05, 1.0, y_pred.shape)
        t /= t.sum(axis=-1, keepdims=True) if t.ndim else t
        return np.log(t) if self.log_target else t

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: log-probabilities (N, ...); y_true: probabilities (or log-probabilities) alike -> scalar."""
        log_target, reduction = self.log_target, self.reduction
        given = as_array(y_true, "KLDivLoss", "y_true") if log_target else y_true  # (a list too)
        if log_target and given.dtype.kind == "f" and np.isneginf(given).any():
            index = tuple(int(i) for i in np.argwhere(np.isneginf(given))[0])
            raise TargetError(f"KLDivLoss(log_target=True): y_true holds -inf (the log of a zero probability) at index "
                              f"{index}; pass the probabilities with log_target=False, where 0 log 0 counts as 0")
        x, target = self._checked_pair(y_pred, given)  # (a list converted once)
        if log_target:
            with np.errstate(over="ignore"):
                t = np.exp(target)
            if not np.isfinite(t).all():
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(t))[0])
                raise TargetError(f"KLDivLoss(log_target=True): y_true holds log-probabilities, but exp of "
                                  f"{float(target[index])} at index {index} overflows {x.dtype}")
            per = target - x
            per *= t
        else:
            t = _kept(target, y_true)
            if t.min() < 0:
                index = tuple(int(i) for i in np.argwhere(t < 0)[0])
                raise TargetError(f"KLDivLoss: y_true must be probabilities (>= 0), got {float(t[index])} at "
                                  f"index {index} (log-probabilities need log_target=True)")
            per = np.log(np.where(t > 0, t, 1))  # log t, and 0 where t = 0: t log t -> 0 there
            per -= x
            per *= t
        divisor = {"mean": x.size, "batchmean": x.shape[0] if x.ndim else 1, "sum": 1}[reduction]
        self._cache = (t, 1.0 / divisor)
        return float(per.sum()) / divisor

    def backward(self) -> np.ndarray:
        """dloss/dy_pred = -t / divisor: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        t, scale = cache
        return t * -scale

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + (", log_target=True" if self.log_target else "")


class PoissonNLLLoss(_ElementwiseLoss):
    """Negative log-likelihood of Poisson counts, as PyTorch's ``nn.PoissonNLLLoss``: ``y_pred`` is the
    log of the rate (``log_input=True``, the default: any real number) or the rate itself (>= 0),
    ``y_true`` the observed counts (>= 0).

    Shapes: y_pred and y_true: (N, ...) alike::

        log_input:   loss_i = exp(x) - t x,             dloss_i = exp(x) - t
        otherwise:   loss_i = x - t log(x + eps),       dloss_i = 1 - t / (x + eps)

    ``full=True`` adds Stirling's approximation of ``log(t!)``, ``t log t - t + log(2 pi t) / 2``, where
    ``t > 1`` (a constant of the targets: no gradient), as PyTorch.  Averaged over every element
    (``reduction="mean"``) or summed (``"sum"``).  The arguments after ``full`` are keyword-only:
    PyTorch's positions there hold deprecated arguments.
    """

    log_input = _setting("log_input", _flag, "Whether y_pred holds log-rates (else rates); checked when set.")
    full = _setting("full", _flag, "Whether Stirling's term of log(t!) is added; checked when set.")
    eps = _setting("eps", _positive, "Added to the rates before their log (log_input=False), a finite number "
                   "> 0; checked when set.")

    def __init__(self, log_input: bool = True, full: bool = False, *, eps: float = 1e-8,
                 reduction: str = "mean") -> None:
        self.log_input, self.full, self.eps, self.reduction = log_input, full, eps, reduction
        # (exp(x) or x + eps, t, the forward's log_input, the gradient's scale)
        self._cache: tuple[np.ndarray, np.ndarray, bool, float] | None = None

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random counts (0 to 5) of ``y_pred``'s shape."""
        return rng.integers(0, 6, y_pred.shape).astype(np.float64)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: log-rates (or rates) (N, ...); y_true: counts >= 0 alike -> scalar loss."""
        x, t = self._checked_pair(y_pred, y_true)
        log_input, full, eps = self.log_input, self.full, self.eps
        for name, a in (("y_true (counts)", t), *(() if log_input else (("y_pred (rates)", x),))):
            if a.min() < 0:
                index = tuple(int(i) for i in np.argwhere(a < 0)[0])
                hint = "" if name.startswith("y_true") else " (log-rates need log_input=True)"
                raise TargetError.located(f"PoissonNLLLoss: {name} must be >= 0, got {float(a[index])} at index "
                                          f"{index}{hint}", index, a.shape)
        t = _kept(t, y_true)
        if log_input:
            # (a log-rate beyond ~709 in float64: the loss is inf, or NaN as inf - inf, as PyTorch's, quietly)
            with np.errstate(over="ignore", invalid="ignore"):
                first = np.exp(x)  # the rate
                per = first - t * x
        else:
            first = x + eps
            per = x - t * np.log(first)
        if full:
            big = t > 1
            safe = np.where(big, t, 1)  # (log of the counts <= 1 is not needed: their term is 0)
            per += np.where(big, safe * np.log(safe) - safe + 0.5 * np.log(2 * np.pi * safe), 0)
        value, scale = self._reduced(per)
        self._cache = (first, t, log_input, scale)
        return value

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        first, t, log_input, scale = cache  # (the forward's log_input, whatever is set since)
        return self._reduced_grad(first - t if log_input else 1 - t / first, scale)

    def extra_repr(self) -> str:
        return (f"log_input={self.log_input}, full={self.full}, eps={self.eps}, reduction={self.reduction!r}")


class SoftMarginLoss(_ElementwiseLoss):
    """Two-class logistic loss on ``y`` in {-1, 1}, as PyTorch's ``nn.SoftMarginLoss``.

    Shapes: y_pred (scores x) and y_true (y): (N, ...) alike::

        loss_i  = log(1 + exp(-y x)) = softplus(-y x)      (computed as max(z, 0) + log1p(exp(-|z|)))
        dloss_i = -y sigmoid(-y x)

    averaged over every element or summed.  Labels other than -1 and 1 are refused (``TargetError``; 0/1
    labels are told ``2 * y_true - 1``), bool labels too (``DTypeError``): PyTorch takes any ``y`` as it
    is, and with 0/1 labels every 0 costs a constant log 2 with a zero gradient, the negatives never learnt.
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction
        self._cache: tuple[np.ndarray, np.ndarray, float] | None = None  # (-y, sigmoid(-y x), the gradient's scale)

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random labels -1 and 1 of ``y_pred``'s shape."""
        return rng.choice([-1.0, 1.0], y_pred.shape)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: scores (N, ...); y_true: -1 or 1 alike -> scalar loss."""
        who = "SoftMarginLoss"
        x, y = self._checked_pair(y_pred, y_true)
        target = as_array(y_true, who, "y_true")  # (as given: the messages show its values)
        _refuse_non_numeric_signs(who, target)
        _refuse_other_labels(who, target)
        z = -y * x  # (a new array: the caller's y is not kept)
        per = np.log1p(np.exp(-np.abs(z)))
        per += np.maximum(z, 0)
        value, scale = self._reduced(per)
        self._cache = (-y, _sigmoid(z), scale)
        return value

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        minus_y, s, scale = cache
        return self._reduced_grad(minus_y * s, scale)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class HingeEmbeddingLoss(_ElementwiseLoss):
    """The hinge embedding loss of distances ``x`` between pairs labelled similar (``y = 1``) or not
    (``y = -1``), as PyTorch's ``nn.HingeEmbeddingLoss``: similar pairs are pulled together, dissimilar
    ones pushed until at least ``margin`` apart.

    Shapes: y_pred (x, e.g. a pair's distance) and y_true (y, -1 or 1): (N, ...) alike::

        loss_i  = x_i                        where y_i = 1
                  max(0, margin - x_i)       where y_i = -1
        dloss_i = 1 where y_i = 1;  -1 where y_i = -1 and x_i <= margin (PyTorch's slope at the kink
                  x_i = margin too);  0 elsewhere

    averaged over every element (``reduction="mean"``) or summed.  Labels other than -1 and 1 are
    refused (``TargetError``; PyTorch adds both terms for them), bool labels too (``DTypeError``).
    ``margin``: a finite number the
    prediction's dtype can hold.
    """

    margin = _setting("margin", _finite, "The distance beyond which a dissimilar pair costs nothing, finite; "
                      "checked when set.")

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        self.margin, self.reduction = margin, reduction
        self._cache: tuple[np.ndarray, float] | None = None  # the last forward's dloss_i, the gradient's scale

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random labels -1 and 1 of ``y_pred``'s shape."""
        return rng.choice([-1.0, 1.0], y_pred.shape)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, ...) distances or scores; y_true: -1 or 1 alike -> scalar loss."""
        who = "HingeEmbeddingLoss"
        x, y = self._checked_pair(y_pred, y_true)
        target = as_array(y_true, who, "y_true")  # (as given, as SoftMarginLoss)
        _refuse_non_numeric_signs(who, target)
        margin = self.margin
        if abs(margin) > float(np.finfo(x.dtype).max):
            raise ValueError(f"{who}: margin {margin!r} overflows the prediction's dtype {x.dtype}")
        _refuse_other_labels(who, target, (" (dissimilar)", " (similar)"))
        dissimilar = y == -1
        with np.errstate(over="ignore"):  # margin - x beyond the dtype's range: inf, as PyTorch
            pushed = margin - x
        per = np.where(dissimilar, np.maximum(pushed, 0), x)
        value, scale = self._reduced(per)
        self._cache = (np.where(dissimilar, -(pushed >= 0).astype(x.dtype), np.ones((), x.dtype)), scale)
        return value

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: shape and dtype of y_pred."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        slope, scale = cache
        return self._reduced_grad(slope.copy(), scale)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


class MultiLabelSoftMarginLoss(Loss):
    """Multi-label one-versus-all logistic loss, as PyTorch's ``nn.MultiLabelSoftMarginLoss``: each of C
    labels is a yes/no question about the sample, answered by its own logit.

    Shapes: y_pred: (N, C) logits x; y_true: (N, C) targets y in [0, 1] (usually 0 or 1).

    With class weights ``w`` (all 1 without ``weight``) and the stable ``softplus``::

        loss_n = 1/C * sum_c w[c] * (y[n, c] softplus(-x[n, c]) + (1 - y[n, c]) softplus(x[n, c]))
               = -1/C * sum_c w[c] * (y log sigmoid(x) + (1 - y) log sigmoid(-x))
        loss   = sum_n loss_n / N     (reduction="sum": no division)
        dloss/dx[n, c] = w[c] * (sigmoid(x[n, c]) - y[n, c]) / (C N)

    Without weights and with ``reduction="mean"`` this equals ``BCEWithLogitsLoss`` on the same (N, C)
    arrays (a mean over every element is a mean over samples of the means over labels; with ``"sum"``
    it is BCE's sum divided by C); the class is here for code ported from PyTorch, and for its
    per-class ``weight``.  ``metrics=["accuracy"]`` scores every label (yes where the logit is > 0), as
    for ``BCEWithLogitsLoss``.  float16 is computed in float32 and rounded once.
    """

    weight = _setting("weight", _class_weights,
                      "(C,) non-negative class weights (a read-only float64 copy), or None; checked when set.")
    reduction = _setting("reduction", _reduction, _REDUCTION_DOC)

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        self.weight, self.reduction = weight, reduction
        # (sigmoid(x) - y, w, scale, y_pred's dtype)
        self._cache: tuple[np.ndarray, np.ndarray, float, np.dtype] | None = None

    def random_targets(self, y_pred: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random 0/1 targets of ``y_pred``'s shape."""
        return rng.integers(0, 2, y_pred.shape).astype(np.float64)

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        """y_pred: (N, C) logits; y_true: (N, C) targets in [0, 1] -> scalar loss."""
        who = "MultiLabelSoftMarginLoss"
        x, y = self._checked_pair(y_pred, y_true)
        if x.ndim != 2:
            raise ShapeError(f"{who}: expected y_pred (logits) of shape (N, C), got shape {x.shape}")
        n, c = x.shape
        weight, reduction = self.weight, self.reduction
        if weight is not None and weight.shape != (c,):
            raise ShapeError(f"{who}: weight has {weight.size} class weight(s), but y_pred has {c} labels")
        if y.min() < 0 or y.max() > 1:
            index = tuple(int(i) for i in np.argwhere((y < 0) | (y > 1))[0])
            raise TargetError.located(f"{who}: targets y_true must be in [0, 1], got {y[index].item()!r} at index "
                                      f"{index}", index, y.shape)
        dtype = x.dtype
        x, y = widened(x), widened(y)  # (float16 computed in float32, the gradient rounded once)
        w = np.ones((), x.dtype) if weight is None else weight.astype(x.dtype)
        with np.errstate(over="ignore"):  # huge finite logits: an infinite loss, as PyTorch's, no warning
            tail = np.log1p(np.exp(-np.abs(x)))  # softplus(+-x) = max(+-x, 0) + log1p(exp(-|x|))
            per = y * (np.maximum(-x, 0) + tail) + (1 - y) * (np.maximum(x, 0) + tail)
            per *= w
        scale = 1.0 / c / (n if reduction == "mean" else 1)
        # sigmoid(x) - y as (1 - y) sigmoid(x) - y sigmoid(-x): a confident right answer keeps its tiny slope
        difference = (1 - y) * _sigmoid(x)
        difference -= y * _sigmoid(-x)
        self._cache = (difference, w, scale, dtype)
        return float(np.add.reduce(per, axis=None, dtype=np.float64)) * scale

    def backward(self) -> np.ndarray:
        """dloss/dy_pred: (N, C), y_pred's dtype."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        difference, w, scale, dtype = cache
        grad = difference * w
        grad *= scale
        with np.errstate(over="ignore"):  # (a float16 slope beyond its range: inf, as the loss)
            return grad.astype(dtype, copy=False)

    def extra_repr(self) -> str:
        weight = "" if self.weight is None else f"weight={self.weight.tolist()}, "
        return f"{weight}reduction={self.reduction!r}"


class _DifferenceLoss(_ElementwiseLoss):
    """A loss of ``d = y_pred - y_true`` element by element: a subclass gives the per-element loss
    (:meth:`_per`) and its slope (:meth:`_slope`), both of ``d`` and of the setting where the loss bends
    (:meth:`_knee`: HuberLoss's delta, SmoothL1Loss's beta), read once per forward and kept for its
    backward; the mean (``reduction="mean"``) or the sum over every element, and the cache, are shared."""

    #: the last forward's difference d, its knee and the gradient's scale
    _cache: tuple[np.ndarray, float, float] | None = None

    def forward(self, y_pred: np.ndarray, y_true: Any) -> float:
        y_pred, target = self._checked_pair(y_pred, y_true)
        d = y_pred - target
        knee = self._knee()
        value, scale = self._reduced(self._per(d, knee))
        self._cache = (d, knee, scale)
        return value

    def backward(self) -> np.ndarray:
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        d, knee, scale = cache  # (the forward's knee and reduction, whatever is set since)
        return self._reduced_grad(self._slope(d, knee), scale)

    def _knee(self) -> float:
        """The setting where the per-element loss bends, read by each forward (none here: 0)."""
        return 0.0

    def _per(self, d: np.ndarray, knee: float) -> np.ndarray:
        raise NotImplementedError

    def _slope(self, d: np.ndarray, knee: float) -> np.ndarray:
        """dloss_i/dd_i, a new array (scaled in place for the mean)."""
        raise NotImplementedError


class HuberLoss(_DifferenceLoss):
    """Huber loss, as PyTorch's ``nn.HuberLoss``: quadratic near 0, linear beyond ``delta``.

    Shapes: y_pred and y_true: (N, ...) alike.  With ``d = y_pred - y_true``::

        loss_i  = 0.5 d^2                     if |d| <= delta
                  delta (|d| - 0.5 delta)     otherwise
        dloss_i = clip(d, -delta, delta)

    averaged over every element (``reduction="mean"``) or summed (``"sum"``).
    """

    delta = _setting("delta", _positive, "Where the loss turns from quadratic to linear, a finite number > 0; "
                     "checked when set.")

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        self.reduction, self.delta = reduction, delta

    def _knee(self) -> float:
        return self.delta

    def _per(self, d: np.ndarray, knee: float) -> np.ndarray:
        a = np.abs(d)
        delta = knee
        small = np.minimum(a, delta)  # the square of the branch np.where discards must not overflow
        return np.where(a <= delta, 0.5 * small * small, delta * (a - 0.5 * delta))

    def _slope(self, d: np.ndarray, knee: float) -> np.ndarray:
        return np.clip(d, -knee, knee)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, delta={self.delta}"


class SmoothL1Loss(_DifferenceLoss):
    """Smooth L1 loss, as PyTorch's ``nn.SmoothL1Loss``: ``HuberLoss(delta=beta) / beta``, quadratic
    below ``beta`` with slope 1 beyond it (``beta = 0``: ``L1Loss``).

    Shapes: y_pred and y_true: (N, ...) alike.  With ``d = y_pred - y_true``::

        loss_i  = 0.5 d^2 / beta              if |d| < beta
                  |d| - 0.5 beta              otherwise
        dloss_i = clip(d / beta, -1, 1)       (sign(d) for beta = 0)

    averaged over every element (``reduction="mean"``) or summed (``"sum"``).
    """

    beta = _setting("beta", finite_non_negative, "Where the loss turns from quadratic to linear, a finite number >= 0 "
                    "(0: L1Loss); checked when set.")

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        self.reduction, self.beta = reduction, beta

    def _knee(self) -> float:
        return self.beta

    @staticmethod
    def _l1(d: np.ndarray, beta: float) -> bool:
        """Whether beta is 0 in ``d``'s dtype (1e-8 is, in float16): then this is the L1 loss."""
        return beta == 0 or d.dtype.type(beta) == 0

    def _per(self, d: np.ndarray, knee: float) -> np.ndarray:
        a = np.abs(d)
        beta = knee
        if self._l1(d, beta):
            return a
        small = np.minimum(a, beta)  # the square of the branch np.where discards must not overflow
        return np.where(a < beta, 0.5 * small * (small / beta), a - 0.5 * beta)  # (/ beta: 1/beta may be inf)

    def _slope(self, d: np.ndarray, knee: float) -> np.ndarray:
        if self._l1(d, knee):
            return np.sign(d)
        with np.errstate(over="ignore"):  # (a d / beta beyond the dtype is clipped to +-1 anyway)
            return np.clip(d / knee, -1.0, 1.0)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, beta={self.beta}"


class L1Loss(_DifferenceLoss):
    """Mean absolute error, as PyTorch's ``nn.L1Loss``: ``mean(|y_pred - y_true|)`` (or the sum).

    Shapes: y_pred and y_true: (N, ...) alike.  Gradient ``sign(y_pred - y_true)`` (0 where they are
    equal, as PyTorch), divided by the element count for ``reduction="mean"``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction

    def _per(self, d: np.ndarray, knee: float) -> np.ndarray:
        return np.abs(d)

    def _slope(self, d: np.ndarray, knee: float) -> np.ndarray:
        return np.sign(d)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
