"""Seeded weight initialisation.  Randomness only ever comes from an explicit ``Generator`` or seed."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .errors import DTypeError, NonFiniteError, ShapeError
from .validation import as_array

__all__ = ["absorbed_weights", "as_generator", "float_dtype", "given_weights", "initial_weights", "positive_int",
           "switch"]

RNGLike = np.random.Generator | int | None


def as_generator(rng: RNGLike, who: str = "") -> np.random.Generator:
    """A ``Generator`` from a ``Generator`` (returned as is), a seed (an int >= 0; not a bool), or
    ``None`` (fresh entropy).  ``who`` names the caller in the messages."""
    if isinstance(rng, np.random.Generator):
        return rng
    _check_rng(rng, who)
    return np.random.default_rng(rng)  # (None: fresh entropy)


def _check_rng(rng: RNGLike, who: str = "") -> None:
    """Refuse what :func:`as_generator` refuses, without making a generator (for a caller that may need none)."""
    if rng is None or isinstance(rng, np.random.Generator):
        return
    where = f"{who}: " if who else ""
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{where}rng: a seed must be an int >= 0, got {rng}")
        return
    raise TypeError(f"{where}rng must be a numpy.random.Generator, an int seed >= 0 or None, got {rng!r}")


def float_dtype(dtype: DTypeLike, who: str) -> np.dtype:
    """``dtype`` as a floating ``np.dtype`` in the machine's byte order; a layer's parameters cannot be
    integers (``DTypeError``).  (A big-endian ``">f4"``, say from a weight file, gives native float32:
    NumPy computes outputs and gradients in native order, which the layer's dtype checks compare with.)"""
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{who}: {dtype!r} is not a dtype") from None
    if result.kind != "f":
        raise DTypeError(f"{who}: parameters need a floating dtype (e.g. np.float64, np.float32), got {result}")
    return result if result.isnative else result.newbyteorder("=")


#: the weight initialisations the layers take as ``init=``
SCHEMES = ("uniform", "he", "glorot", "lecun", "zeros")


def initial_weights(
    scheme: str,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: DTypeLike,
) -> np.ndarray:
    """Draw a weight array of ``shape``.

    Schemes: ``"uniform"`` (PyTorch's default for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in))),
    ``"he"`` (N(0, 2/fan_in), for ReLU nets), ``"glorot"`` (U(+-sqrt(6/(fan_in+fan_out)))),
    ``"lecun"`` (N(0, 1/fan_in), for SELU nets: it keeps their mean 0 and variance 1), ``"zeros"``.
    """
    if scheme == "uniform":
        bound = 1.0 / np.sqrt(fan_in)
        values = rng.uniform(-bound, bound, size=shape)
    elif scheme == "he":
        values = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif scheme == "lecun":
        values = rng.normal(0.0, np.sqrt(1.0 / fan_in), size=shape)
    elif scheme == "glorot":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-bound, bound, size=shape)
    elif scheme == "zeros":
        values = np.zeros(shape)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; use one of {', '.join(map(repr, SCHEMES))}")
    return values.astype(dtype)


def positive_int(value: object, name: str, who: str) -> int:
    """``value`` as an int >= 1, else ``ValueError`` naming ``who`` and the argument."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def switch(value: object, name: str, who: str) -> bool:
    """``value`` as a bool, else ``TypeError``: ``bool("no")`` would switch the option on."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)


def switch_setting(who: str, name: str, value: object) -> bool:
    """:func:`switch` in the argument order of a checked setting's check (``validation.checked_setting``)."""
    return switch(value, name, who)


def given_weights(who: str, name: str, value: ArrayLike, shape: tuple[int, ...], layout: str,
                  dtype: np.dtype) -> np.ndarray:
    """Exact initial values ``value`` for the parameter ``name``, as a fresh ``dtype`` array of
    ``shape`` (``layout`` says its axes in words for the message), refusing anything but finite real
    numbers, as ``load_state_dict`` refuses them."""
    given = as_array(value, who, name)
    if given.dtype.kind not in "iuf":  # strings would be parsed, complex numbers lose their imaginary part
        raise DTypeError(f"{who}: {name} must hold real numbers, got dtype {given.dtype}")
    with np.errstate(over="ignore"):  # too large for dtype: inf, refused just below
        values = np.array(given, dtype=dtype)
    if values.shape != shape:
        raise ShapeError(f"{who}: expected {name} of shape {shape}{layout}, got {values.shape}")
    if not np.isfinite(values).all():
        raise NonFiniteError(f"{who}: {name} holds {int(np.count_nonzero(~np.isfinite(values)))} NaN/inf "
                             f"value(s) (in {np.dtype(dtype).name})")
    return values


def absorbed_weights(
    who: str,
    fan_in: int,
    out: int,
    *,
    bias: bool,
    W: ArrayLike | None,
    init: str,
    rng: RNGLike,
    dtype: np.dtype,
    fan_out: int | None = None,
    init_fan_in: int | None = None,
    layout: str = "",
) -> np.ndarray:
    """The initial weight matrix of a layer whose bias is absorbed as row 0 (``Dense``, ``Conv2D``).

    Shape ``(fan_in + 1, out)`` with ``bias`` (row 0 the bias), else ``(fan_in, out)``.  ``W`` gives
    exact values (checked against that shape; ``layout`` says the rows in words for the message);
    otherwise the ``init`` scheme is drawn from ``rng``, and the bias row starts at zero except with
    ``"uniform"``, which draws it like PyTorch does.  ``init_fan_in``/``fan_out``: the fans of the
    draw when they are not the rows and columns (a transposed convolution's, as PyTorch counts them).
    """
    shape = (fan_in + 1 if bias else fan_in, out)
    if not (isinstance(init, str) and init in SCHEMES):  # (also with W given: a typo is a typo)
        raise ValueError(f"{who}: unknown init scheme {init!r}; init must be one of {', '.join(map(repr, SCHEMES))}")
    if W is not None:
        return given_weights(who, "W", W, shape, layout, dtype)
    values = initial_weights(init, shape, fan_in if init_fan_in is None else init_fan_in,
                             out if fan_out is None else fan_out, as_generator(rng), dtype)
    if bias and init != "uniform":
        values[0] = 0
    return values
