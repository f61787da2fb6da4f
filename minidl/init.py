"""Seeded weight initialisation.  Randomness only ever comes from an explicit ``Generator`` or seed."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .errors import DTypeError

__all__ = ["as_generator", "float_dtype", "initial_weights"]

RNGLike = np.random.Generator | int | None


def as_generator(rng: RNGLike) -> np.random.Generator:
    """A ``Generator`` from a ``Generator`` (returned as is), a seed, or ``None`` (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def float_dtype(dtype: DTypeLike, who: str) -> np.dtype:
    """``dtype`` as a floating ``np.dtype``; a layer's parameters cannot be integers (``DTypeError``)."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{who}: {dtype!r} is not a dtype") from None
    if result.kind != "f":
        raise DTypeError(f"{who}: parameters need a floating dtype (e.g. np.float64, np.float32), got {result}")
    return result


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
    ``"zeros"``.
    """
    if scheme == "uniform":
        bound = 1.0 / np.sqrt(fan_in)
        values = rng.uniform(-bound, bound, size=shape)
    elif scheme == "he":
        values = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif scheme == "glorot":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-bound, bound, size=shape)
    elif scheme == "zeros":
        values = np.zeros(shape)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}; use 'uniform', 'he', 'glorot' or 'zeros'")
    return values.astype(dtype)
