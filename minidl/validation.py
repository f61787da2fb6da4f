"""Input checks shared by layers and losses: cheap enough for the hot path, precise in their messages.

What the built-in layers and losses check (docs/checkpoints.md has the full list):

* ``forward`` inputs: an ndarray (lists/tuples/numbers and objects with ``__array__``, such as a
  pandas DataFrame, are converted; anything else, a ragged list or a failed conversion is a
  ``DTypeError``) of a floating dtype, of the documented rank and sizes, and of the parameters'
  dtype for layers that have parameters.
* NaN/inf policy: layers that hold parameters or are normally a model's entry (``Dense``,
  ``Conv1D``, ``Conv2D``, ``ConvTranspose2D``, ``ConvTranspose1D``, the normalisations, the recurrent layers,
  ``MultiHeadAttention``) refuse NaN/inf inputs
  with ``NonFiniteError`` (one reduction, :func:`check_finite`).  Parameter-free element-wise or
  reshaping layers (the activations, ``Dropout``, ``Flatten``, the pools, ``Upsample``, the pixel
  shuffles, ``Unfold``/``Fold``, the paddings) do **not**
  check -- it would cost a pass over the data per layer per step -- and propagate NaN/inf as NumPy
  computes them; every loss refuses a non-finite ``y_pred`` or ``y_true``, so a NaN born mid-model
  stops training at the loss.
* ``backward``: every built-in layer calls :func:`check_grad_output` (an ndarray of the forward
  output's shape and dtype; NaN is not looked for).  Its cost is an ``isinstance``, a shape-tuple
  compare and a dtype compare: no pass over the data.
* Losses refuse an empty ``y_pred`` (``ShapeError``, "empty prediction").
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import numpy as np

from .errors import DTypeError, NonFiniteError, ShapeError, TargetError

__all__ = ["as_array", "as_float_array", "cast_targets", "check_finite", "check_grad_output", "check_input",
           "check_padding_mask", "is_finite", "is_integer", "is_number", "plain_native",
           "size_arguments"]


def is_number(value: Any) -> bool:
    """A Python or NumPy int or float, not a bool (``True`` is an int to Python, never a number here)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_finite(number: Any) -> bool:
    """Whether a number (Python or NumPy) is finite; an int beyond float range is not."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


_T = TypeVar("_T")

if TYPE_CHECKING:
    class Setting(Generic[_T]):
        """What the type checker sees of a setting: it reads as the checked value, and takes anything (the
        check is at run time: a list as a weight, a NumPy float as a margin)."""

        @overload
        def __get__(self, owner: None, owner_type: type) -> Setting[_T]: ...
        @overload
        def __get__(self, owner: object, owner_type: type | None = None) -> _T: ...
        def __get__(self, owner: object, owner_type: type | None = None) -> Any: ...
        def __set__(self, owner: object, value: Any) -> None: ...


def checked_setting(name: str, check: Callable[[str, str, Any], _T], doc: str, *,
                    fixed: str | None = None) -> Setting[_T]:
    """The checked setting ``name`` of a loss or layer class, declared in its body (``margin =
    checked_setting("margin", _finite, "...")``): a property whose value lives in the attribute ``_<name>``;
    setting it keeps ``check(type(owner).__name__, name, value)``, which returns the value to keep or raises
    the error naming the class and the setting (the constructor sets it the same way: one check, one
    message).  A refused value changes nothing.  The getter is ``attrgetter`` (C), a few tens of ns.

    ``fixed``: why the setting cannot change once made (what was built for it, e.g. parameters of its
    shape).  Setting it again to an equal value is accepted; another (checked first) is a ``ValueError``
    giving that reason and saying to build a new object.  (A pickle of the time these were plain
    attributes: :func:`settings_renamed`.)
    """
    private = "_" + name

    def set_checked(owner: Any, value: Any) -> None:
        who = type(owner).__name__
        kept = check(who, name, value)
        if fixed is not None and private in owner.__dict__ and kept != owner.__dict__[private]:
            raise ValueError(f"{who}: {name} cannot be changed after construction ({fixed}); got {value!r}, it "
                             f"is {owner.__dict__[private]!r}: build a new {who}")
        setattr(owner, private, kept)

    return cast("Setting[_T]", property(attrgetter(private), set_checked, None, doc))


def settings_renamed(cls: type, state: dict[str, Any]) -> dict[str, Any]:
    """An unpickled object's ``state`` with the settings pickled as plain attributes, before they became
    checked properties of ``cls`` (each stored in ``_<name>``), moved to where the properties read them."""
    state = dict(state)
    for name in [k for k in state if isinstance(getattr(cls, k, None), property) and "_" + k not in state]:
        state["_" + name] = state.pop(name)
    return state


def finite_non_negative(who: str, name: str, value: Any) -> float:
    """A finite number >= 0 (not a bool) as a float, else ``ValueError`` naming ``who`` and the setting ``name``
    (SmoothL1Loss's beta, a schedule's base_lr or threshold)."""
    if not (is_number(value) and is_finite(value) and value >= 0):
        raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def finite_number(who: str, name: str, value: object) -> float:
    """``value`` as a float: not a number is a ``TypeError``, NaN or inf a ``ValueError`` naming ``who`` and
    the argument ``name`` (a layer's setting, checked when made and when set)."""
    if not is_number(value):
        raise TypeError(f"{who}: {name} must be a finite number, got {value!r}")
    if not is_finite(value):
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def is_integer(value: Any) -> bool:
    """A Python or NumPy int, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def size_arguments(who: str, names: tuple[str, ...], sizes: tuple[Any, ...]) -> tuple[int, ...]:
    """The sizes given to ``who``'s ``output_shape`` (its arguments ``names``: height, width, length, ...) as
    Python ints.  ``TypeError`` for a count other than ``len(names)`` or a size that is not an int (a Python or
    NumPy int, never a bool: ``2.5``, ``True``, ``"3"``, ``None``), ``ValueError`` for a negative one, each
    naming the layer, the argument and the value.  0 passes: the layer refuses an empty axis in its own
    (its forward's) words, or accepts it."""
    if len(sizes) != len(names):
        raise TypeError(f"{who}.output_shape: expected {len(names)} size(s) ({', '.join(names)}), "
                        f"got {len(sizes)}: {sizes!r}")
    for name, size in zip(names, sizes, strict=True):
        if not is_integer(size):
            raise TypeError(f"{who}.output_shape: {name} must be an int, got {size!r} ({type(size).__name__})")
        if size < 0:
            raise ValueError(f"{who}.output_shape: {name} must be >= 0, got {size}")
    return tuple(int(size) for size in sizes)


def as_array(x: Any, who: str, what: str = "input") -> np.ndarray:
    """Return ``x`` as an ``ndarray`` (as is if it already is one); lists, tuples, numbers and
    objects that convert themselves (``__array__``: a pandas DataFrame, an xarray, a CPU tensor) are
    converted, an ``np.matrix`` to a plain view of its data (a layer's ``*`` would be a matrix product).
    A masked array, anything else, a ragged list, a failed conversion, or a tuple holding arrays (several
    inputs, not data: refused, never stacked) raises ``DTypeError`` naming ``who`` and ``what``."""
    if type(x) is np.ndarray:  # the common case, first: no subclass checks on the hot path
        return x
    if isinstance(x, np.ndarray):
        if isinstance(x, np.ma.MaskedArray):  # its hidden entries would be computed with as if data
            raise DTypeError(f"{who}: {what} is a masked array; layers and losses compute on plain arrays "
                             "(the masked entries' hidden values would be used): pass x.filled(value), or "
                             "np.asarray(x) for its data")
        if isinstance(x, np.matrix):  # its * is a matrix product, its reductions keep 2 axes: its data (a view)
            return np.asarray(x)
        return x
    if isinstance(x, tuple) and any(isinstance(a, np.ndarray) for a in x):  # not stacked into one array
        if type(x) is not tuple:
            raise DTypeError(f"{who}: {what} is a {type(x).__name__} holding arrays; several inputs are a plain "
                             "tuple of numpy arrays (tuple(...) of it)")
        other = next(((i, a) for i, a in enumerate(x) if not isinstance(a, np.ndarray)), None)
        if other is not None:
            raise DTypeError(f"{who}: {what} mixes numpy arrays with other values (item {other[0]}: "
                             f"{type(other[1]).__name__}); several inputs are a tuple of numpy arrays")
        raise DTypeError(f"{who}: expected {what} as one numpy array, got a tuple of {len(x)} items holding "
                         "arrays: several inputs (minidl.inputs), which this takes only as one array")
    if isinstance(x, list) and len(x) > 1 and all(isinstance(a, np.ndarray) for a in x):
        kinds = {a.dtype.kind for a in x}
        shapes = {a.shape for a in x}
        if (len(kinds) > 1 and "b" in kinds) or len(shapes) > 1:  # [tokens, mask], [x, h_0]: several inputs
            what_is = f"mixing booleans with numbers ({', '.join(sorted({a.dtype.name for a in x}))})" \
                if len(shapes) == 1 else \
                f"of different shapes ({', '.join(map(str, sorted(shapes)))}), which cannot be stacked"
            raise DTypeError(f"{who}: {what} is a list of {len(x)} arrays {what_is}; several inputs are one "
                             f"tuple, (x, mask), not a list (a list is stacked into one array)")
    if not (isinstance(x, (list, tuple, int, float, np.generic)) or hasattr(type(x), "__array__")):
        raise DTypeError(f"{who}: expected {what} as a numpy array, got {type(x).__name__}")
    try:
        return np.asarray(x)
    except (ValueError, TypeError, RuntimeError) as error:  # ragged nested lists, a refusing __array__
        raise DTypeError(
            f"{who}: could not make a numpy array of {what} ({type(x).__name__}): {error}"
        ) from None


def as_float_array(x: Any, who: str, what: str = "input") -> np.ndarray:
    """Return ``x`` as a floating ``ndarray`` (no copy when it already is one), else raise ``DTypeError``."""
    x = as_array(x, who, what)
    if x.dtype.kind != "f":
        raise DTypeError(
            f"{who}: expected a floating-point {what}, got dtype {x.dtype}; "
            "convert it first, e.g. x.astype(np.float64)"
        )
    return x


def widened(x: np.ndarray) -> np.ndarray:
    """``x`` itself, or float16 as float32 (a copy): what computes float16 in float32 to round once, as
    PyTorch does (float16 sums of squares and of many terms overflow or lose whole digits)."""
    return x.astype(np.float32) if x.dtype.itemsize < 4 else x


def native(x: np.ndarray) -> np.ndarray:
    """``x`` in the machine's byte order: itself, or (a big-endian array read from a file) a copy with the
    canonical native dtype, so that the layer computes, returns and checks ``is`` against native arrays."""
    return x if x.dtype.isnative else x.astype(x.dtype.type)


def plain_native(value: np.ndarray) -> np.ndarray:
    """``value`` as a plain ndarray in the machine's byte order (no copy when it is one), for a load to
    check and keep: a masked array's hidden entries are data too (a copy keeps them, unmasked), and a
    big-endian array (a checkpoint from a big-endian machine) holds the same numbers."""
    value = np.asarray(value)  # an ndarray subclass (np.ma.MaskedArray, np.matrix) as its plain data
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    return value


def check_finite(x: np.ndarray, who: str, what: str = "input") -> None:
    """Raise ``NonFiniteError`` if ``x`` holds NaN or inf.

    The common case costs one BLAS dot product: ``sum(x * x)`` is NaN or inf whenever an element
    is (squares are never negative, so nothing cancels), and BLAS raises no floating-point warnings.
    Only when it trips is the array searched, to tell an overflow of huge finite values from a real
    NaN/inf and to say where.  (Measured: 2.3 us for a (32, 128) float32 input, 53 us for
    (512, 784), against 9 and 184 us for a summation under ``np.errstate``.)  float16 has no BLAS dot, and its
    sum of squares overflows at 65504 (so it would be searched): ``np.isfinite`` instead (measured on (32, 96,
    27, 27): 1.6 ms, not 16; 0.35 ms for float32's dot).
    """
    if x.size == 0:
        return
    try:
        if x.itemsize == 2:  # float16 (24 ns to ask)
            if np.isfinite(x).all():
                return
        elif x.flags.c_contiguous:
            if math.isfinite(np.vdot(x, x)):
                return
        else:  # its memory in order, if it is one block (a Conv2D's channel-major output: 12 us, not 21)
            ordered = x.transpose(sorted(range(x.ndim), key=x.strides.__getitem__, reverse=True))
            if ordered.flags.c_contiguous and math.isfinite(np.vdot(ordered, ordered)):
                return
    except TypeError:  # an np.matrix: its vdot is a 1x1 matrix, not a number; searched below
        pass
    bad = ~np.isfinite(x)
    if not bad.any():  # the sum overflowed, the elements are fine
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    error = NonFiniteError(
        f"{who}: {what} holds {int(bad.sum())} NaN/inf value(s), the first at index {first} "
        f"({x[first].item()!r})"
    )
    error.index, error.shape = first, x.shape
    raise error


def cast_targets(y: np.ndarray, dtype: np.dtype, who: str, what: str, whose: str) -> np.ndarray:
    """``y`` cast to the float ``dtype`` (``whose``: what that dtype is, for the message).  A finite value
    beyond the dtype's range (a float64 target of 1e39 for a float32 model) is a ``TargetError`` naming
    it, not the inf the cast would make of it; NaN and inf pass as they are, for the caller to judge."""
    dtype = np.dtype(dtype)
    top = float(np.finfo(dtype).max)
    fits = (y.dtype.kind == "f" and y.dtype.itemsize <= dtype.itemsize) or y.dtype.kind == "b" or \
        (y.dtype.kind in "iu" and max(-float(np.iinfo(y.dtype).min), float(np.iinfo(y.dtype).max)) <= top)
    if fits:  # a float no wider, or integers inside the range: nothing can overflow
        return y.astype(dtype)
    with np.errstate(over="ignore"):
        cast = y.astype(dtype)
    if cast.size and not (cast.flags.c_contiguous and math.isfinite(np.vdot(cast, cast))):  # (one BLAS pass)
        big = ~np.isfinite(cast) & np.isfinite(y)  # what the cast made infinite (65519 rounds to 65504: not)
        if big.any():
            first = tuple(int(i) for i in np.argwhere(big)[0])
            raise TargetError(f"{who}: {what} holds {int(big.sum())} value(s) beyond {dtype.name}'s range "
                              f"(+-{top:.4g}), {whose}, the first at index {first} ({y[first].item()!r})")
    return cast


def user_stacklevel() -> int:
    """For ``warnings.warn`` called in minidl: the stack level of the first frame outside the package (the
    user's line, however deep in containers the warning was raised)."""
    root = os.path.dirname(os.path.abspath(__file__)) + os.sep  # (a sibling minidl_extras/ is the user's)
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(root):
        frame, level = frame.f_back, level + 1
    return level


def _shape_hint(shape: tuple[int, ...], ndim: int, sizes: Mapping[int, int] | None, what: str) -> str:
    """What a refused input's shape suggests, for the message (or ""): images without their channel axis
    (``x[:, None]``), channels last where the layer takes them first (the transpose), or a sample of several
    axes where the layer works on the last one (flatten it first)."""
    if what != "input" or not sizes or not shape:
        return ""
    channels = sizes.get(1)
    if channels is not None and len(shape) == ndim - 1 and channels == 1:
        return "; for one channel, give the input its channel axis: x[:, None]"
    if channels is not None and len(shape) == ndim >= 3 and shape[1] != channels and shape[-1] == channels:
        order = (0, ndim - 1, *range(1, ndim - 1))
        return (f"; it looks channels-last, and this layer takes channels first (N, C, ...): "
                f"x.transpose{order}")
    last = sizes.get(-1)
    if last is not None and len(shape) > 2 and shape[-1] != last and math.prod(shape[1:]) == last:
        return (f"; each sample has shape {shape[1:]}, {last} values, and this layer works on the last axis: "
                "flatten them first (a Flatten() layer before it, or x.reshape(len(x), -1))")
    return ""


def check_input(
    x: Any,
    who: str,
    *,
    ndim: int,
    layout: str,
    sizes: Mapping[int, int] | None = None,
    dtype: np.dtype | None = None,
    finite: bool = True,
    more_dims: bool = False,
    what: str = "input",
    dtype_of: str = "the layer's parameters",
) -> np.ndarray:
    """Validate a layer input and return it as an ndarray.

    Args:
        who: the layer, as it should appear in the message, e.g. ``"Dense(5 -> 1)"``.
        ndim: the required number of dimensions (the least, with ``more_dims``).
        layout: the expected shape in words, e.g. ``"(N, 5)"``.
        sizes: required sizes by axis, e.g. ``{1: 5}``.
        dtype: the dtype the input must have (the layer's parameter dtype), if any.
        finite: whether to refuse NaN/inf.
        what: the input's name in messages (one of several inputs: ``"memory"``).
        dtype_of: what ``dtype`` is the dtype of, in messages (a norm layer without affine parameters:
            its running statistics).
    """
    if type(x) is not np.ndarray or x.dtype.kind != "f":  # the common case skips the call
        x = as_float_array(x, who, what)
    if x.ndim != ndim and not (more_dims and x.ndim > ndim):
        rank = f"{ndim}-D (or higher)" if more_dims else f"{ndim}-D"
        raise ShapeError(f"{who}: expected a {rank} {what} of shape {layout}, got shape {x.shape}"
                         f"{_shape_hint(x.shape, ndim, sizes, what)}")
    if sizes:
        for axis, size in sizes.items():
            if x.shape[axis] != size:
                raise ShapeError(f"{who}: expected {what} of shape {layout}, got shape {x.shape}"
                                 f"{_shape_hint(x.shape, ndim, sizes, what)}")
    if dtype is not None and x.dtype != dtype:
        name = "x" if what == "input" else what
        if x.dtype.newbyteorder("=") == dtype:  # e.g. read from a big-endian file
            raise DTypeError(
                f"{who}: {what} dtype {x.dtype} does not match {dtype_of} ({dtype}): it is "
                f"{dtype} in the other byte order; convert the {what} ({name}.astype(np.{dtype}))"
            )
        raise DTypeError(
            f"{who}: {what} dtype {x.dtype} does not match {dtype_of} ({dtype}); "
            f"cast the {what} ({name}.astype(np.{dtype})) or the model (model.astype(...))"
        )
    if finite:
        check_finite(x, who, what)
    return x


def check_grad_output(
    grad_output: Any,
    who: str,
    shape: tuple[int, ...],
    dtype: np.dtype | None = None,
    *,
    finite: bool = False,
) -> np.ndarray:
    """Validate the ``grad_output`` given to ``backward`` and return it.

    It must be an ``ndarray`` of exactly ``shape`` (the forward's output shape) and, if given,
    ``dtype`` (the forward's output dtype: a float64 gradient into a float32 layer is refused rather
    than silently upcasting ``dx``).  ``finite=True`` also refuses NaN/inf.  Raises ``DTypeError`` /
    ``ShapeError`` / ``NonFiniteError`` naming ``who`` (e.g. ``"Dense(5 -> 1).backward"``).
    A NumPy scalar is accepted when ``shape`` is ``()`` (an activation's output for a 0-D input).

    Cost: an ``isinstance``, a shape-tuple compare and a dtype compare (no pass over the data), so
    every built-in ``backward`` calls it.
    """
    if type(grad_output) is not np.ndarray and isinstance(grad_output, (np.matrix, np.ma.MaskedArray)):
        # (a matrix's * is a matrix product; a masked array's hidden values would be used)
        raise DTypeError(f"{who}: expected grad_output as a plain numpy array, got {type(grad_output).__name__}; "
                         "pass np.asarray(grad_output)")
    if not isinstance(grad_output, np.ndarray):
        if not (isinstance(grad_output, np.generic) and tuple(shape) == ()):
            hint = "; pass the loss's gradient, loss.backward(), not the loss's value" \
                if isinstance(grad_output, (float, int, np.generic)) and not isinstance(grad_output, bool) else ""
            raise DTypeError(
                f"{who}: expected grad_output as a numpy array, got {type(grad_output).__name__}{hint}"
            )
        grad_output = np.asarray(grad_output)
    if grad_output.shape != tuple(shape):
        raise ShapeError(
            f"{who}: expected grad_output of shape {tuple(shape)}, got {grad_output.shape} "
            "(it must have the shape of the forward's output)"
        )
    if dtype is not None and grad_output.dtype != dtype:
        raise DTypeError(
            f"{who}: expected grad_output of dtype {np.dtype(dtype)}, got {grad_output.dtype} "
            "(it must have the dtype of the forward's output; cast it, e.g. g.astype(y.dtype))"
        )
    if finite:
        check_finite(grad_output, who, "grad_output")
    return grad_output


def check_padding_mask(mask: object, N: int, T: int, who: str, what: str = "key_padding_mask",
                       over: str = "an input", steps: str = "T", width: int | str = "E") -> None:
    """Refuse a padding mask that is not (N, T) booleans (True at a padding position); ``over``,
    ``steps`` and ``width`` name the sequence it covers in messages (``"a memory"``, ``"S"``, its
    feature size)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise DTypeError(
            f"{who}: expected {what} as a numpy array of booleans of shape (N, {steps}) = ({N}, {T}), True at a "
            f"padding position, got {got}. Numbers are refused because libraries disagree on what 1 means "
            "(PyTorch: padding; Hugging Face's attention_mask: a real token); write e.g. lengths_mask == 0 as you "
            "mean it")
    if mask.shape != (N, T):
        raise ShapeError(f"{who}: expected {what} of shape (N, {steps}) = ({N}, {T}) for {over} of shape "
                         f"({N}, {T}, {width}), got {mask.shape}")
