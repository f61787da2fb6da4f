"""Layers that compare two inputs: ``PairwiseDistance`` and ``CosineSimilarity``, as PyTorch's, for
siamese networks and metric learning (with ``HingeEmbeddingLoss``, say).

Each takes one tuple ``(x1, x2)`` of arrays of the same shape and returns one number per pair of
vectors; its backward returns the tuple of the two gradients (``minidl.inputs``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..inputs import pair_of_arrays
from ..layer import Layer
from ..validation import check_grad_output, is_finite, is_integer, is_number, widened

__all__ = ["CosineSimilarity", "PairwiseDistance"]


def _pair_of_inputs(x: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as two float arrays of one shape and dtype with a batch axis (native byte order; float16
    stays float16: the layers compute it in float32), or the error naming ``who``."""
    x1, x2 = pair_of_arrays(x, who, "takes one tuple (x1, x2) of two arrays", ("x1", "x2"))
    if x1.ndim < 2:
        raise ShapeError(f"{who}: expected inputs of shape (N, ..., D) with a batch axis, got shape {x1.shape}")
    return x1, x2


def _p_norm(u: np.ndarray, p: float) -> np.ndarray:
    """``||u||_p = (sum |u_i|^p)^(1/p)`` over the last axis, kept (size 1): u (..., D) -> (..., 1), as
    PyTorch's vector norm computes it (no rescaling: a sum beyond the dtype's range is inf, an underflow
    0; one element (D = 1): exactly ``|u|`` for every p, as PyTorch).  ``p``: a number > 0 (below 1 not
    a norm, but PyTorch's formula still) or ``math.inf`` (the largest ``|u_i|``; 0 for D = 0).  Call it
    under ``np.errstate(over="ignore")`` for quiet overflows."""
    if u.shape[-1] == 1:  # |u|, not (|u|^p)^(1/p), which rounds, underflows to 0 or overflows for large p
        return np.abs(u)
    if p == 2:
        return np.sqrt(np.einsum("...i,...i->...", u, u))[..., None]
    if p == 1:
        return np.abs(u).sum(axis=-1, keepdims=True)
    if p == math.inf:
        return np.abs(u).max(axis=-1, keepdims=True) if u.shape[-1] else np.zeros((*u.shape[:-1], 1), u.dtype)
    return (np.abs(u) ** p).sum(axis=-1, keepdims=True) ** (1 / p)


def _p_norm_backward(g: np.ndarray, u: np.ndarray, d: np.ndarray, p: float) -> np.ndarray:
    """``g * dd/du`` (..., D) for ``d = _p_norm(u, p)`` (..., 1) and its gradient ``g`` (..., 1), in
    u's dtype, with PyTorch's slope::

        D = 1:    sign(u)                             (d = |u|)
        p = 2:    u / d                               (0 where d = 0)
        p = 1:    sign(u)
        p = inf:  sign(u) / k at the k elements where |u| = d, 0 elsewhere: (g / k) sign(u), rounded
                  once as PyTorch's (bit for bit)
        else:     sign(u) |u|^(p-1) / d^(p-1)         (0 where d = 0, and where u_i = 0 for p < 1)

    A distance whose sum of |u_i|^p underflows to 0 has slope 0, as PyTorch's.  Deliberately not
    PyTorch's: where its ``|u_i|^(p-1)`` or ``d^(p-1)`` under- or overflows (a large p; D = 1 with
    float32 p = 100 and |u| = 0.3, say) PyTorch's gradient is NaN or inf, and this one the finite
    ``(|u_i| / d)^(p-1)`` (``sign(u)`` for D = 1).  NaN all along a vector whose ``d`` is NaN (a NaN in
    ``u``), never a quiet 0 from ``sign``.  No floating-point warnings (an infinite ``d`` gives what NumPy
    makes of it)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = g
        if u.shape[-1] == 1 or p == 1:
            slope = np.sign(u)
        elif p == 2:
            slope = np.where(d == 0, 0, u / d)
        elif p == math.inf:
            winners = np.abs(u) == d
            slope = np.sign(u) * winners  # 0 or +-1, exact: g / k is the one rounding (PyTorch's)
            scale = g / winners.sum(axis=-1, keepdims=True, dtype=u.dtype)
        else:
            slope = np.where(d == 0, 0, np.sign(u) * (np.abs(u) / d) ** (p - 1))
            if p < 1:  # |u_i|^(p-1) is infinite at u_i = 0, where sign gives 0: PyTorch's 0 there, not NaN
                slope = np.where(u == 0, 0, slope)
        nan_vectors = np.isnan(d)
        if nan_vectors.any():  # NaN slopes all along a vector holding NaN (whatever sign() made of it)
            slope = np.where(nan_vectors, np.nan, slope)
        grad = scale * slope.astype(u.dtype, copy=False)
    return grad.astype(u.dtype, copy=False)


class PairwiseDistance(Layer):
    """The p-norm distance between the rows of two inputs, as PyTorch's ``nn.PairwiseDistance``:
    ``d = ||x1 - x2 + eps||_p`` over the last axis.

    Shapes: x = (x1, x2), each (N, ..., D) -> d: (N, ...) (``keepdim=True``: (N, ..., 1)).

    With ``u = x1 - x2 + eps``, backward sends ``g * dd/du`` to x1 and its negative to x2::

        p = 2:    dd/du = u / d                       (0 where d = 0, as PyTorch)
        p = 1:    dd/du = sign(u)
        p = inf:  d = max |u|; dd/du = sign(u) / k at the k elements where |u| = d, 0 elsewhere
        else:     dd/du = sign(u) |u|^(p-1) / d^(p-1) (0 where d = 0)

    One-element vectors (D = 1): ``d = |u|`` exactly for every p, as PyTorch's, and ``dd/du = sign(u)``
    (deliberately: PyTorch's gradient is NaN where its ``|u|^(p-1)`` under- or overflows, float32 p = 100
    at |u| = 0.3 say, as for longer vectors at a large p where its ``|u_i|^(p-1)`` and ``d^(p-1)`` are
    tiny; this one stays finite there).  A distance whose sum of |u_i|^p underflows to 0 is 0, with slope 0, as
    PyTorch's.

    ``eps`` (PyTorch's 1e-6) keeps ``u`` off 0, where the norm has no slope, for equal inputs.  A pair
    holding NaN has a NaN distance and NaN gradients; a distance beyond the dtype's range is inf, without
    a warning.  float16 is computed in float32 and rounded once.

    Args:
        p: the norm's order, a number >= 1 or ``math.inf``.
        eps: added to every difference.
        keepdim: keep the last axis (size 1).

    All three are checked when set, after construction too, and used by the next forward; a backward uses
    the ``p`` and ``keepdim`` of its forward, whatever is set in between.
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.p, self.eps, self.keepdim = p, eps, keepdim
        # the last forward: u, d with the last axis kept (both in float32 for float16), the inputs' dtype, and
        # the p and keepdim it used (its backward's, whatever is set since)
        self._cache: tuple[np.ndarray, np.ndarray, np.dtype, float, bool] | None = None

    @property
    def p(self) -> float:
        """The norm's order, >= 1 or ``math.inf``; checked when set, after construction too."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        if not is_number(value) or not (value >= 1):
            raise ValueError(f"PairwiseDistance: p must be a number >= 1 or math.inf (a norm), got {value!r}")
        self._p = float(value)

    @property
    def eps(self) -> float:
        """Added to every difference, finite; checked when set."""
        return self._eps

    @eps.setter
    def eps(self, value: float) -> None:
        if not is_number(value) or not is_finite(value):
            raise ValueError(f"PairwiseDistance: eps must be a finite number, got {value!r}")
        self._eps = float(value)

    @property
    def keepdim(self) -> bool:
        """Whether the last axis is kept (size 1); checked when set."""
        return self._keepdim

    @keepdim.setter
    def keepdim(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"PairwiseDistance: keepdim must be a bool, got {value!r}")
        self._keepdim = value

    def forward(self, x: Any) -> np.ndarray:
        """(x1, x2): (N, ..., D) each -> (N, ...) distances."""
        x1, x2 = _pair_of_inputs(x, "PairwiseDistance")
        dtype, p, keepdim = x1.dtype, self._p, self._keepdim
        with np.errstate(over="ignore", invalid="ignore"):  # huge differences: inf, as PyTorch, quietly
            u = widened(x1) - widened(x2)
            u += self._eps
            d = _p_norm(u, p)
            y = d.astype(dtype, copy=False)  # (a float16 distance beyond 65504: inf, quietly)
        self._cache = (u, d, dtype, p, keepdim)
        return y if keepdim else y[..., 0]

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """grad_output: the distances' shape -> (dx1, dx2), each (N, ..., D)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        u, d, dtype, p, keepdim = cache  # (the forward's p and keepdim)
        shape = d.shape if keepdim else d.shape[:-1]
        g = check_grad_output(grad_output, "PairwiseDistance.backward", shape, dtype)
        g = g if keepdim else g[..., None]
        with np.errstate(over="ignore", invalid="ignore"):  # (huge values: inf or NaN quietly, as the forward)
            dx1 = _p_norm_backward(g, u, d, p).astype(dtype, copy=False)
        return dx1, -dx1

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}" + (", keepdim=True" if self.keepdim else "")


class CosineSimilarity(Layer):
    """The cosine of the angle between two inputs along ``axis``, as PyTorch's ``nn.CosineSimilarity``:
    ``cos = sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps))``.

    Shapes: x = (x1, x2), each (N, D, ...) -> (N, ...): the shape without ``axis`` (PyTorch's ``dim``,
    1 by default).

    With ``n1 = ||x1||``, ``n2 = ||x2||`` above ``eps``, backward::

        dcos/dx1 = x2 / (n1 n2) - cos x1 / n1^2,      dcos/dx2 = x1 / (n1 n2) - cos x2 / n2^2

    A norm at or below ``eps`` is taken as the constant ``eps`` (the input divided by it), and its
    gradient is that function's: PyTorch clamps the norm the same way but differentiates the unclamped
    one there (its gradient is not its forward's slope), so the two differ for vectors shorter than
    ``eps`` (1e-8 by default).  float16 is computed in float32 and rounded once; huge values overflow
    quietly, as in PyTorch.

    Args:
        axis: the axis of the vectors (PyTorch's ``dim``).
        eps: the smallest norm divided by.

    Both are checked when set, after construction too, and used by the next forward; a backward uses the
    ``axis`` and ``eps`` of its forward, whatever is set in between.
    """

    def __init__(self, axis: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.axis, self.eps = axis, eps
        # the last forward: the inputs, their norms (clamped at eps, the axis kept), cos (the axis kept),
        # all in float32 for float16; the axis, the inputs' dtype, the eps it clamped at (its backward's)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.dtype,
                           float] | None = None

    @property
    def axis(self) -> int:
        """The axis of the vectors (PyTorch's ``dim``), an int; checked when set, after construction too."""
        return self._axis

    @axis.setter
    def axis(self, value: int) -> None:
        if not is_integer(value):
            raise TypeError(f"CosineSimilarity: axis must be an int, got {value!r}")
        self._axis = int(value)

    @property
    def eps(self) -> float:
        """The smallest norm divided by, finite and > 0; checked when set (a backward uses its forward's)."""
        return self._eps

    @eps.setter
    def eps(self, value: float) -> None:
        if not is_number(value) or not is_finite(value) or value <= 0:
            raise ValueError(f"CosineSimilarity: eps must be a finite number > 0, got {value!r}")
        self._eps = float(value)

    def forward(self, x: Any) -> np.ndarray:
        """(x1, x2): (N, D, ...) each -> (N, ...) cosines."""
        who = "CosineSimilarity"
        x1, x2 = _pair_of_inputs(x, who)
        axis = self._axis
        if not -x1.ndim <= axis < x1.ndim:
            raise ShapeError(f"{who}: axis {axis} is out of range for inputs of shape {x1.shape}")
        axis %= x1.ndim
        eps, dtype = self._eps, x1.dtype
        x1, x2 = widened(x1), widened(x2)
        with np.errstate(over="ignore", invalid="ignore"):  # huge or infinite values: as NumPy computes, quietly
            n1 = np.maximum(np.sqrt(np.sum(x1 * x1, axis=axis, keepdims=True)), eps)
            n2 = np.maximum(np.sqrt(np.sum(x2 * x2, axis=axis, keepdims=True)), eps)
            cos = np.sum((x1 / n1) * (x2 / n2), axis=axis, keepdims=True)
        self._cache = (x1, x2, n1, n2, cos, axis, dtype, eps)
        return np.squeeze(cos, axis=axis).astype(dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """grad_output: the cosines' shape -> (dx1, dx2), each the inputs' shape."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        x1, x2, n1, n2, cos, axis, dtype, eps = cache  # (the forward's axis and eps)
        g = check_grad_output(grad_output, "CosineSimilarity.backward", np.squeeze(cos, axis=axis).shape, dtype)
        g = np.expand_dims(g, axis)
        with np.errstate(over="ignore", invalid="ignore"):
            # a norm clamped at eps is a constant: its input is only divided by it
            dx1 = g * (x2 / (n1 * n2) - np.where(n1 > eps, cos / (n1 * n1), 0) * x1)
            dx2 = g * (x1 / (n1 * n2) - np.where(n2 > eps, cos / (n2 * n2), 0) * x2)
            return dx1.astype(dtype, copy=False), dx2.astype(dtype, copy=False)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, eps={self.eps}"
