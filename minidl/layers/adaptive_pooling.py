"""Adaptive pooling: average or maximum pooling to a given output size, whatever the input's, as
PyTorch's ``AdaptiveAvgPool2d``/``AdaptiveAvgPool1d`` and ``AdaptiveMaxPool2d``/``AdaptiveMaxPool1d``.

Output position ``i`` of ``out`` along an axis of ``size`` pools the inputs ``floor(i * size / out)``
up to ``ceil((i + 1) * size / out)`` (excluded): PyTorch's windows, which may overlap.

**Average.**  A sum over a rectangle is a sum over its rows of the sums over its columns, so the pool
is two matrix products with a 0/1 window matrix ``W`` of shape (out, size) per axis, then a division by
the windows' areas: ``y = (W_h x W_w^T) / area`` (sum, then divide: a constant input comes back
exactly, as in PyTorch), and the back-pass is the transpose, ``dx = W_h^T (g / area) W_w`` (BLAS, no
Python loop; about half PyTorch's time on 14x14 maps in float32, one thread:
``benchmarks/layer_speed.py``).  A product spreads a NaN or inf over its whole (sample, channel) plane
through ``0 * NaN``, while each output should depend on its own window only.  So the planes whose
output (or incoming gradient) is not all finite, which a NaN/inf in their input makes them, are done
again window by window (a Python loop over the windows of each axis, each a slice's sum over those
planes), with the same sums and the same division: a NaN stays in the windows that hold it, and the
other planes keep the product's values.  float16 is computed in float32 and rounded once.

**Maximum.**  Every window is read as the same number of taps, the longest window's along each axis,
a shorter window repeating its last position (a repeat never wins: it was already compared): one
gather and one comparison per tap, over every (sample, channel, output) at once.  Ties go to the first
maximum in row-major order, a NaN wins (the window's last NaN), as in PyTorch's kernel; backward sends
each output's gradient to its winner, added up where overlapping windows share one.
"""

from __future__ import annotations

import math

import numpy as np

from ..layer import Layer
from ..validation import check_grad_output, is_integer
from .conv import _SPATIAL
from .pooling import spatial_input

__all__ = ["AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D"]


def windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's windows of ``out`` outputs over ``size`` inputs: the first input of each,
    ``floor(i * size / out)``, and the one after its last, ``ceil((i + 1) * size / out)``."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def window_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """(out, size): 1 on the positions of window ``i`` in row ``i``, 0 elsewhere: its product sums
    each window exactly as a sum would."""
    first, stop = windows(size, out)
    j = np.arange(size)
    return ((j >= first[:, None]) & (j < stop[:, None])).astype(dtype)


def _at(axis: int, index: slice | int) -> tuple[slice | int, ...]:
    """An index picking ``index`` along ``axis`` and everything along the axes before it."""
    return (slice(None),) * axis + (index,)


def _sum_windows(x: np.ndarray, axis: int, out: int) -> np.ndarray:
    """x with ``axis`` (of some size) replaced by the ``out`` sums of its windows, window by window."""
    y = np.empty((*x.shape[:axis], out, *x.shape[axis + 1:]), dtype=x.dtype)
    for i, (first, stop) in enumerate(zip(*windows(x.shape[axis], out), strict=True)):
        y[_at(axis, i)] = x[_at(axis, slice(first, stop))].sum(axis=axis)
    return y


def _spread_windows(g: np.ndarray, axis: int, size: int) -> np.ndarray:
    """The transpose of :func:`_sum_windows`: each of the ``out`` values along ``axis`` added to every
    position of its window of ``size`` (overlapping windows add up), window by window."""
    dx = np.zeros((*g.shape[:axis], size, *g.shape[axis + 1:]), dtype=g.dtype)
    for i, (first, stop) in enumerate(zip(*windows(size, g.shape[axis]), strict=True)):
        dx[_at(axis, slice(first, stop))] += g[_at(axis, slice(i, i + 1))]
    return dx


class _Adaptive(Layer):
    """What the adaptive pools share: ``output_size``, checked when set, and the output's size."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__()
        self.output_size = output_size
        self._layout = f"(N, C, {_SPATIAL[self._rank]})"
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] = ()  # the last forward's output spatial size
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    @property
    def output_size(self) -> int | tuple[int | None, ...] | None:
        """The output's spatial size, as given (an int, or for 2-D a pair whose None keeps the input's
        side); checked when set, after construction too."""
        return self._output_given

    @output_size.setter
    def output_size(self, value: int | tuple[int | None, ...] | None) -> None:
        name, rank = type(self).__name__, self._rank
        sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
        kept = rank > 1  # None (the input's size) for a side, as PyTorch's 2-D pool; its 1-D pool refuses it
        valid = [(s is None and kept) or (s is not None and is_integer(s) and s >= 1) for s in sizes]
        if len(sizes) != rank or not all(valid):
            shape = "an int >= 1" + (" or a pair of ints >= 1 or None (None: the input's size)" if kept else "")
            raise ValueError(f"{name}: output_size must be {shape}, got {value!r}")
        self._sizes: tuple[int | None, ...] = tuple(None if s is None else int(s) for s in sizes)
        self._output_given = tuple(value) if isinstance(value, list) else value

    def _out(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(size if out is None else out for size, out in zip(spatial, self._sizes, strict=True))

    def output_shape(self, *spatial: int) -> tuple[int, ...]:
        """The output's spatial size for an input of spatial size ``spatial``."""
        return self._out(tuple(spatial))

    def input_shape_hint(self) -> None:
        """None: any spatial size (a container infers no input shape through it: it sets the shape after it)."""
        return None

    def extra_repr(self) -> str:
        sizes = self._sizes
        return f"output_size={sizes[0] if len(set(sizes)) == 1 else sizes}"


class _AdaptiveAvgPool(_Adaptive):
    """The computation of both average pools: the mean of each window, one spatial axis after the other."""

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__(output_size)
        self._plan: tuple[tuple[object, ...], list[np.ndarray], np.ndarray] | None = None  # the last input's

    def _windows_of(self, spatial: tuple[int, ...], out: tuple[int, ...],
                    dtype: np.dtype) -> tuple[list[np.ndarray], np.ndarray]:
        """The window matrices of each spatial axis and the windows' areas (output-shaped), made once per
        input size, output size and dtype."""
        key = (spatial, out, dtype)
        plan = self._plan
        if plan is None or plan[0] != key:
            matrices = [window_matrix(size, n, dtype) for size, n in zip(spatial, out, strict=True)]
            area = np.ones((), dtype=np.int64)
            for size, n in zip(spatial, out, strict=True):
                first, stop = windows(size, n)
                area = np.multiply.outer(area, stop - first)
            plan = self._plan = (key, matrices, area.astype(dtype))
        return plan[1], plan[2]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C, *output_size)."""
        x = spatial_input(x, type(self).__name__, self._rank, self._layout)
        self._shape = x.shape
        out = self._out_shape = self._out(x.shape[2:])  # (the backward's, whatever output_size is set since)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        wide = x.astype(np.float32) if x.dtype == np.float16 else x
        matrices, area = self._windows_of(x.shape[2:], out, wide.dtype)
        y = wide
        # (inf * 0 in a product: its planes are redone below; a sum beyond the dtype is inf, as PyTorch's)
        with np.errstate(invalid="ignore", over="ignore"):
            for matrix in matrices:  # contract the first spatial axis each time: it moves to the end,
                y = np.tensordot(y, matrix, axes=([2], [1]))  # so the order comes back
            y /= area  # the sums over the windows, over their sizes: a mean, rounded once
            bad = self._planes_not_finite(y)
            if bad is not None:  # a NaN/inf spread by 0 * NaN: those (sample, channel) planes window by window
                redo = wide[bad][:, None]
                for axis, size in enumerate(out, start=2):
                    redo = _sum_windows(redo, axis, size)
                y[bad] = redo[:, 0] / area
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, *output_size) -> dx: (N, C, *spatial)."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None and self._dtype is not None
        out = self._out_shape
        check_grad_output(grad_output, f"{type(self).__name__}.backward", shape[:2] + out, self._dtype)
        g = grad_output.astype(np.float32) if self._dtype == np.float16 else grad_output
        matrices, area = self._windows_of(shape[2:], out, g.dtype)
        share = g / area  # each output's gradient over its window's size, then spread over the window
        dx = share
        with np.errstate(invalid="ignore", over="ignore"):
            for matrix in matrices:  # the transpose
                dx = np.tensordot(dx, matrix, axes=([2], [0]))
            # (a NaN/inf in the gradient, or shares that overflow where windows overlap: a product spreads
            # it over the plane, as in the forward)
            bad = self._planes_not_finite(dx)
            if bad is not None:
                redo = share[bad][:, None]
                for axis, size in enumerate(shape[2:], start=2):
                    redo = _spread_windows(redo, axis, size)
                dx[bad] = redo[:, 0]
        return dx.astype(self._dtype, copy=False)

    @staticmethod
    def _planes_not_finite(a: np.ndarray) -> np.ndarray | None:
        """Where ``a`` (N, C, ...) holds a NaN/inf, as an (N, C) mask of its planes; None if nowhere."""
        if np.isfinite(a).all():
            return None
        return ~np.isfinite(a).reshape(a.shape[0], a.shape[1], -1).all(axis=2)


class AdaptiveAvgPool2D(_AdaptiveAvgPool):
    """Average pooling of (N, C, H, W) images to ``output_size`` = (oh, ow) whatever H and W, as PyTorch's
    ``AdaptiveAvgPool2d`` (an int: a square; None for a side: the input's).  ``AdaptiveAvgPool2D(1)`` is
    :class:`GlobalAvgPool2D` keeping the (1, 1) axes; ``(7, 7)`` is a ResNet/VGG head for any image size.

    Shapes: x: (N, C, H, W) -> y: (N, C, oh, ow).  Output ``(i, j)`` is the mean of the rows
    ``floor(i H / oh)`` to ``ceil((i + 1) H / oh) - 1`` and the columns likewise (PyTorch's windows,
    which may overlap); backward spreads ``g[i, j]`` evenly over that window.  NaN/inf pass unchecked.
    """


class AdaptiveAvgPool1D(_AdaptiveAvgPool):
    """Average pooling of (N, C, L) sequences to ``output_size`` positions whatever L, as PyTorch's
    ``AdaptiveAvgPool1d``.  Shapes: x: (N, C, L) -> y: (N, C, output_size); windows as
    :class:`AdaptiveAvgPool2D`'s along the one axis.
    """

    _rank = 1

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)


def window_taps(size: int, out: int) -> np.ndarray:
    """(out, k): the positions of each of the ``out`` windows over ``size`` inputs, ``k`` the longest
    window's length, a shorter window repeating its last position."""
    first, stop = windows(size, out)
    k = int((stop - first).max())
    return np.minimum(first[:, None] + np.arange(k), stop[:, None] - 1)


class _AdaptiveMaxPool(_Adaptive):
    """The computation of both maximum pools: tap by tap over every window at once."""

    def __init__(self, output_size: int | tuple[int | None, ...] | None) -> None:
        super().__init__(output_size)
        self._argmax: np.ndarray | None = None  # per output, its winner's flat index in its (n, c) plane
        self._plan: tuple[tuple[object, ...], np.ndarray, bool] | None = None  # the last input's

    def _taps_of(self, spatial: tuple[int, ...], out: tuple[int, ...]) -> tuple[np.ndarray, bool]:
        """(taps, *out) intp: each tap's flat index in a plane, for every output, the taps in row-major
        order of their windows; and whether any windows overlap.  Made once per input and output size."""
        key = (spatial, out)
        plan = self._plan
        if plan is None or plan[0] != key:
            flat = np.zeros((1,) * (1 + len(out)), dtype=np.intp)
            stride = 1
            for axis in reversed(range(len(out))):  # the last axis first: its positions are the innermost
                taps = window_taps(spatial[axis], out[axis])  # (out_a, k_a)
                shape = [1] * (1 + len(out))
                shape[1 + axis] = out[axis]
                positions = (taps.T * stride).reshape(taps.shape[1], *shape[1:])  # (k_a, 1.., out_a, ..1)
                flat = (positions[:, None] + flat[None, :]).reshape(-1, *np.broadcast_shapes(
                    positions.shape[1:], flat.shape[1:]))  # the taps of this axis outermost
                stride *= spatial[axis]
            overlap = any(bool((windows(size, n)[1][:-1] > windows(size, n)[0][1:]).any())
                          for size, n in zip(spatial, out, strict=True))
            plan = self._plan = (key, np.ascontiguousarray(flat), overlap)
        return plan[1], plan[2]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C, *output_size)."""
        x = spatial_input(x, type(self).__name__, self._rank, self._layout)
        self._argmax = None  # (x is accepted: should the computation fail, no stale winners remain)
        self._shape = x.shape
        out = self._out_shape = self._out(x.shape[2:])  # (the backward's, whatever output_size is set since)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        taps, _ = self._taps_of(x.shape[2:], out)
        planes = x.reshape(*x.shape[:2], math.prod(x.shape[2:]))  # (N, C, S): a view for the usual layouts
        best = planes[:, :, taps[0]]
        argmax = np.empty(best.shape, dtype=np.intp)
        argmax[...] = taps[0]
        for t in range(1, taps.shape[0]):
            value = planes[:, :, taps[t]]
            wins = value > best  # strict: on a tie the earlier tap keeps the win
            # a window's taps come in row-major order, so a win's index is the largest so far: a max
            # (a repeated last position never wins, whatever its index: it was compared already)
            np.maximum(argmax, wins * taps[t], out=argmax)
            np.maximum(best, value, out=best)
        lost = np.isnan(best)
        if lost.any():  # a window holding NaN outputs NaN; its gradient goes to its *last* NaN, as
            for t in range(taps.shape[0]):  # PyTorch's kernel (val > max || isnan(val)) sends it
                nan = lost & np.isnan(planes[:, :, taps[t]])
                argmax[nan] = np.broadcast_to(taps[t], lost.shape)[nan]
        self._argmax = argmax
        return best

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, *output_size) -> dx: (N, C, *spatial): each output's gradient at its winner."""
        shape, argmax = self._shape, self._argmax
        self._require_cache(argmax)
        assert shape is not None and argmax is not None and self._dtype is not None
        check_grad_output(grad_output, f"{type(self).__name__}.backward", shape[:2] + self._out_shape, self._dtype)
        n, c = shape[:2]
        size = math.prod(shape[2:])
        index = argmax + (np.arange(n * c, dtype=np.intp) * size).reshape(n, c, *(1,) * (len(shape) - 2))
        dx = np.zeros(n * c * size, dtype=grad_output.dtype)
        _, overlap = self._taps_of(shape[2:], self._out_shape)
        if overlap:  # two windows may pick the same input: add, in the outputs' order (as PyTorch)
            np.add.at(dx, index.reshape(-1), grad_output.reshape(-1))
        else:  # each input in one window: at most one gradient each
            dx[index.reshape(-1)] = grad_output.reshape(-1)
        return dx.reshape(shape)


class AdaptiveMaxPool2D(_AdaptiveMaxPool):
    """Maximum pooling of (N, C, H, W) images to ``output_size`` = (oh, ow) whatever H and W, as PyTorch's
    ``AdaptiveMaxPool2d`` (an int: a square; None for a side: the input's).

    Shapes: x: (N, C, H, W) -> y: (N, C, oh, ow).  Output ``(i, j)`` is the maximum of the rows
    ``floor(i H / oh)`` to ``ceil((i + 1) H / oh) - 1`` and the columns likewise (PyTorch's windows, which
    may overlap); ties go to the first in row-major order, a window holding NaN outputs NaN and routes
    its gradient to its last NaN (as PyTorch).  Backward sends ``g[i, j]`` to the window's winner (added
    up where windows overlap).  NaN/inf pass unchecked.
    """


class AdaptiveMaxPool1D(_AdaptiveMaxPool):
    """Maximum pooling of (N, C, L) sequences to ``output_size`` positions whatever L, as PyTorch's
    ``AdaptiveMaxPool1d``.  Shapes: x: (N, C, L) -> y: (N, C, output_size); windows, ties and NaN as
    :class:`AdaptiveMaxPool2D`'s along the one axis.
    """

    _rank = 1

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)
