"""Padding layers: widen (or, with negative sizes, crop) the spatial axes of (N, C, L) sequences and
(N, C, H, W) images, as PyTorch's ``ConstantPad``, ``ZeroPad``, ``ReflectionPad``, ``ReplicationPad``
and ``CircularPad`` (1d and 2d).

Along an axis of length ``L`` padded by ``(before, after)`` the output has ``L + before + after``
positions, and position ``j`` reads the input at ``s = j - before`` when ``0 <= s < L``.  Outside, the
mode decides what it reads::

    constant     the value (no input position)
    reflect      the mirror image without the edge: -s before the start, 2 (L - 1) - s past the end
                 (so before, after < L)
    replicate    the edge: position 0, or L - 1
    circular     the other end: s + L, or s - L (so before, after <= L)

A negative size crops that side, at most the whole axis.  As in PyTorch, reflect, replicate and
constant crop after the other side is padded (``ReflectionPad1d((-1, 2))`` of ``[0, 1, 2, 3]`` is
``[1, 2, 3, 2, 1]``), and circular crops first and wraps around what is left (``CircularPad1d((-1, 1))``
of ``[0, 1, 2, 3]`` is ``[1, 2, 3, 1]``; each side at most that length).  In an image each output
pixel reads one input pixel, its row by the rule along the height and its column by the rule along the
width, and the forward copies blocks: along each axis the inside and each padded side read a run of
input positions (a slice).

Backward sends each output's gradient to the input position it read, added up where several read
one.  Along each axis: the inside part is copied, and each padded side is added onto the run of
positions it read (a slice: a reflection reads one backwards, a wrap forwards), or, for ``replicate``,
onto the edge, position after position (a loop over the side's width).  NaN/inf are passed through
unchecked, as by the pools.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..layer import Layer
from ..validation import check_grad_output, check_input, is_integer, is_number, native, size_arguments
from .conv import _AXES, _EMPTY, _SIZE_NAMES, _SPATIAL, _input_of

__all__ = [
    "CircularPad1D", "CircularPad2D", "ConstantPad1D", "ConstantPad2D", "ReflectionPad1D", "ReflectionPad2D",
    "ReplicationPad1D", "ReplicationPad2D", "ZeroPad1D", "ZeroPad2D",
]


def _at(axis: int, index: slice | int | np.ndarray) -> tuple[slice | int | np.ndarray, ...]:
    """An index picking ``index`` along ``axis`` and everything along the axes before it."""
    return (slice(None),) * axis + (index,)


def sources(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """(size + before + after,) the input position each output position reads along an axis (for
    ``constant``, positions outside ``[0, size)`` read the value instead)."""
    if mode == "circular":  # (as PyTorch: crop first, then wrap around what is left)
        start, kept = max(-before, 0), size - max(-before, 0) - max(-after, 0)
        return start + (np.arange(-max(before, 0), kept + max(after, 0)) % kept)
    s = np.arange(-before, size + after)
    if mode == "reflect":  # |s| mirrors the start, (L - 1) - |(L - 1) - s| the end
        return (size - 1) - np.abs((size - 1) - np.abs(s))
    if mode == "replicate":
        return np.clip(s, 0, size - 1)
    return s


def _as_slice(positions: np.ndarray) -> slice:
    """Positions that run by steps of +1 or -1 (a padded side's reads, but for replicate) as a slice."""
    first, last = int(positions[0]), int(positions[-1])
    step = 1 if last >= first else -1
    stop = last + step
    return slice(first, stop if stop >= 0 else None, step)


def _blocks(size: int, before: int, read: np.ndarray) -> list[tuple[slice, slice]]:
    """Along an axis whose output positions read ``read`` (from :func:`sources`; not ``constant``):
    (output positions, the input positions they read) for the inside (first, perhaps empty) and each
    padded side, each a slice (a reflection backwards, a wrap forwards, a replicated edge one position)."""
    inside, at = _inside(size, before, read.size)
    sides = (slice(0, inside.start), slice(inside.stop, read.size))
    return [(inside, at), *((side, _as_slice(read[side])) for side in sides if side.stop > side.start)]


def _inside(size: int, before: int, out: int) -> tuple[slice, slice]:
    """(the output positions that read the input directly, the input positions they read)."""
    first, stop = min(max(before, 0), out), min(max(before + size, 0), out)
    return slice(first, stop), slice(first - before, stop - before)


def _inside_region(shape: tuple[int, ...], out: tuple[int, ...],
                   pairs: list[tuple[int, int, int]]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Over every axis of an input of ``shape`` padded to ``out`` by ``pairs`` ((axis, before, after),
    from :meth:`_Pad._pairs`): (the output's region that holds the input, the input's region it holds)."""
    to, read = [slice(None)] * len(shape), [slice(None)] * len(shape)
    for axis, before, _ in pairs:
        to[axis], read[axis] = _inside(shape[axis], before, out[axis])
    return tuple(to), tuple(read)


def fold(g: np.ndarray, axis: int, size: int, before: int, mode: str, source: np.ndarray) -> np.ndarray:
    """The gradient along ``axis`` of a padding (not ``constant``) whose forward read ``source`` (from
    :func:`sources`): g's shape with ``size`` along ``axis``, ``dx[s]`` the sum of the ``g[j]`` whose ``j``
    read ``s``; block by block, as the forward copied them."""
    (inside, read), *sides = _blocks(size, before, source)
    if read.stop - read.start == size:  # nothing cropped: the inside part is the whole input
        dx = g[_at(axis, inside)].copy()
    else:
        shape = list(g.shape)
        shape[axis] = size
        dx = np.zeros(shape, dtype=g.dtype)
        dx[_at(axis, read)] = g[_at(axis, inside)]
    for side, reads in sides:
        part, target = g[_at(axis, side)], dx[_at(axis, reads)]
        if mode != "replicate":  # a reflection or a wrap: a run of positions, each read once by the side
            target += part
            continue
        # every position of the side read the same edge: added one after another, and the left side's
        # sum before the inside's (as PyTorch's loop over the output adds them)
        steps = [part[_at(axis, slice(k, k + 1))] for k in range(part.shape[axis])]
        if side.start == 0:
            steps = [sum(steps[1:], steps[0].copy())]
        for step in steps:
            target += step
    return dx


def padded(x: np.ndarray, pairs: Sequence[tuple[int, int, int]], mode: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """``x`` padded (not ``constant``) by ``mode`` along each ``(axis, before, after)`` of ``pairs``: (a new
    array, the input position each output position read along each axis (:func:`sources`), in the order of
    ``pairs``).  Block by block: each of (side, inside, side) per axis reads one block of x (a slice copy).
    The caller has checked that the padding fits ``x`` (:meth:`_Pad._padded_sizes`' rules).  The padding
    layers and ``Conv1D``/``Conv2D``'s ``padding_mode`` use it."""
    out, reads, blocks = list(x.shape), [], []
    for axis, before, after in pairs:
        out[axis] += before + after
        reads.append(sources(x.shape[axis], before, after, mode))
        blocks.append(_blocks(x.shape[axis], before, reads[-1]))
    y = np.empty(out, dtype=x.dtype)
    for block in itertools.product(*blocks):
        to, read = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        for (axis, _, _), (to_axis, read_axis) in zip(pairs, block, strict=True):
            to[axis], read[axis] = to_axis, read_axis
        y[tuple(to)] = x[tuple(read)]  # (a replicated edge: one position, broadcast)
    return y, reads


def unpadded(g: np.ndarray, shape: tuple[int, ...], pairs: Sequence[tuple[int, int, int]], reads: Sequence[np.ndarray],
             mode: str) -> np.ndarray:
    """The gradient of :func:`padded`: ``g`` (its output's shape) -> the input's ``shape``, each element of g
    added onto the position it read; folded along the axes of ``pairs`` in their order (``reads`` as
    :func:`padded` returned them).  An array of its own when ``pairs`` holds an axis."""
    for (axis, before, _), read in zip(pairs, reads, strict=True):
        g = fold(g, axis, shape[axis], before, mode, read)
    return g


class _Pad(Layer):
    """The computation shared by the padding layers: ``padding`` as PyTorch orders it, ``(left, right)``
    for a sequence and ``(left, right, top, bottom)`` for an image, and the mode's rule."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2
    #: What the positions outside the input read (see the module's docstring).
    mode: str = "constant"

    _padding: tuple[int, ...]

    def __init__(self, padding: int | tuple[int, ...]) -> None:
        super().__init__()
        self.padding = padding  # (checked by the property)
        self._shape: tuple[int, ...] | None = None  # the last input's
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        # the last forward's output shape, its (axis, before, after) per axis and, but for constant,
        # the input position each output position read along each axis
        self._cache: tuple[tuple[int, ...], list[tuple[int, int, int]], list[np.ndarray]] | None = None
        self._layout = f"(N, C, {_SPATIAL[self._rank]})"

    @property
    def padding(self) -> tuple[int, ...]:
        """``(left, right)``, or ``(left, right, top, bottom)``: positions added on each side of the last
        axis, then of the one before; a negative size crops."""
        return self._padding

    @padding.setter
    def padding(self, value: int | tuple[int, ...]) -> None:
        sides = 2 * self._rank
        sizes = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,) * sides
        if len(sizes) != sides or not all(is_integer(v) for v in sizes):
            names = "(left, right)" if self._rank == 1 else "(left, right, top, bottom)"
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple {names} of ints, "
                             f"got {value!r}")
        object.__setattr__(self, "_padding", tuple(int(v) for v in sizes))

    def _pairs(self) -> list[tuple[int, int, int]]:
        """(axis, before, after) of each spatial axis, the last first (PyTorch's order of ``padding``)."""
        p = self._padding
        return [(1 + self._rank - k, p[2 * k], p[2 * k + 1]) for k in range(self._rank)]

    @property
    def _who(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return f"padding={self._padding}"

    def output_shape(self, *sizes: int) -> tuple[int, ...]:
        """The padded spatial sizes of an input with spatial sizes ``sizes`` ((L,) or (H, W), ints >= 0: see
        :func:`size_arguments`); raises ``ShapeError`` where the forward does: an empty axis, a padding that
        does not fit the input."""
        return self._padded_sizes(size_arguments(self._who, _SIZE_NAMES[self._rank], sizes))

    def _padded_sizes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The padded spatial sizes of an input of ``shape``: a forward's (N, C, *spatial), or ``output_shape``'s
        spatial sizes alone (its message then names the sizes: it knows no channels); ``ShapeError`` for an
        empty axis or a padding that does not fit.  The forward's checks: output_shape refuses what it
        refuses, in its words."""
        rank = self._rank
        sizes = shape[-rank:]
        if 0 in sizes:
            raise ShapeError(f"{self._who}: input of {_input_of(shape, rank)} has {_EMPTY[rank]}")
        out = list(sizes)
        for axis, before, after in self._pairs():
            size, name = sizes[axis - 2], _AXES[rank][axis - 2]
            out[axis - 2] = size + before + after
            problem = ""
            if min(before, after) < -size:
                problem = "crops more than the whole axis"
            elif out[axis - 2] < 1:
                problem = "leaves no position"
            elif self.mode == "reflect" and max(before, after) >= size:
                problem = "reflects beyond the axis: each side must be smaller than it"
            elif self.mode == "circular" and max(before, after) > size - max(-before, 0) - max(-after, 0):
                problem = "wraps around more than once: each side must be at most as long as the axis (once cropped)"
            if problem:
                raise ShapeError(f"{self._who}: padding ({before}, {after}) of {name} = {size} {problem}")
        return tuple(out)

    def _fill(self, dtype: np.dtype) -> np.ndarray:
        """The value the padded positions hold, in ``dtype``: the constant paddings define it."""
        raise NotImplementedError(f"{type(self).__name__}: mode 'constant' is for a padding with a value")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, L) -> (N, C, L + left + right), or (N, C, H, W) -> (N, C, H + top + bottom,
        W + left + right)."""
        x = check_input(x, self._who, ndim=2 + self._rank, layout=self._layout, finite=False)
        out = (*x.shape[:2], *self._padded_sizes(x.shape))
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        pairs = self._pairs()
        reads: list[np.ndarray] = []
        if self.mode == "constant":
            y = np.full(out, self._fill(x.dtype), dtype=x.dtype)
            to, read = _inside_region(x.shape, out, pairs)
            y[to] = x[read]
        else:
            y, reads = padded(x, pairs[::-1], self.mode)  # (the first spatial axis first, as backward folds)
            reads.reverse()  # (kept in the order of pairs)
        # what backward needs, all of this pass (the padding may be changed in between)
        self._shape, self._cache = x.shape, (out, pairs, reads)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward's output shape -> dx: the input's shape, an array of its own."""
        shape, cache = self._shape, self._cache
        self._require_cache(cache)
        assert shape is not None and cache is not None
        out, pairs, reads = cache
        g = check_grad_output(grad_output, f"{type(self).__name__}.backward", out, self._dtype)
        if self.mode == "constant":  # the inside part; zeros where the forward cropped
            to, read = _inside_region(shape, out, pairs)
            inside = g[to]
            if inside.shape == shape:
                return inside.copy()
            dx = np.zeros(shape, dtype=g.dtype)
            dx[read] = inside
            return dx
        return unpadded(g, shape, pairs[::-1], reads[::-1], self.mode)


class _ConstantPad(_Pad):
    """A constant padding: ``value``, a number the input's dtype can hold (checked at forward)."""

    _value: float

    def __init__(self, padding: int | tuple[int, ...], value: float) -> None:
        super().__init__(padding)
        self.value = value

    @property
    def value(self) -> float:
        """What the padded positions hold (inf and NaN allowed: ``-inf`` before a max pool)."""
        return self._value

    @value.setter
    def value(self, value: float) -> None:
        if not is_number(value):
            raise TypeError(f"{type(self).__name__}: value must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float's range
            number = math.inf
        if math.isinf(number) and (is_integer(value) or bool(np.isfinite(value))):  # (a long double too)
            raise ValueError(f"{type(self).__name__}: value {value!r} is beyond a float's range")
        object.__setattr__(self, "_value", number)

    def _fill(self, dtype: np.dtype) -> np.ndarray:
        value = self._value
        if math.isfinite(value) and abs(value) > float(np.finfo(dtype).max):  # as PyTorch: no silent inf
            raise ValueError(f"{self._who}: value {value!r} overflows the input's dtype {np.dtype(dtype)} "
                             f"(largest {float(np.finfo(dtype).max)!r})")
        return np.array(value, dtype=dtype)

    def extra_repr(self) -> str:
        return f"padding={self._padding}, value={self._value!r}"


class ConstantPad2D(_ConstantPad):
    """Pad (N, C, H, W) images with a constant, as PyTorch's ``nn.ConstantPad2d``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H + top + bottom, W + left + right).

    Args:
        padding: an int for every side, or ``(left, right, top, bottom)``; a negative size crops.
        value: what the padded positions hold.
    """


class ConstantPad1D(_ConstantPad):
    """Pad (N, C, L) sequences with a constant, as PyTorch's ``nn.ConstantPad1d``.

    Shapes: x: (N, C, L) -> y: (N, C, L + left + right).

    Args:
        padding: an int for both sides, or ``(left, right)``; a negative size crops.
        value: what the padded positions hold.
    """

    _rank = 1


class ZeroPad2D(ConstantPad2D):
    """Pad (N, C, H, W) images with zeros, as PyTorch's ``nn.ZeroPad2d`` (Keras's ``ZeroPadding2D``):
    ``ConstantPad2D(padding, 0.0)``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H + top + bottom, W + left + right).
    """

    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"padding={self._padding}"


class ZeroPad1D(ConstantPad1D):
    """Pad (N, C, L) sequences with zeros, as PyTorch's ``nn.ZeroPad1d``: ``ConstantPad1D(padding, 0.0)``.

    Shapes: x: (N, C, L) -> y: (N, C, L + left + right).
    """

    def __init__(self, padding: int | tuple[int, int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"padding={self._padding}"


class _ReflectionPad(_Pad):
    """The computation of ``ReflectionPad2D`` and ``ReflectionPad1D``."""

    mode = "reflect"


class ReflectionPad2D(_ReflectionPad):
    """Pad (N, C, H, W) images with their mirror image at each border, the border itself not repeated,
    as PyTorch's ``nn.ReflectionPad2d`` (``[a, b, c]`` padded by 2 on the left reads ``[c, b, a, b, c]``).

    Shapes: x: (N, C, H, W) -> y: (N, C, H + top + bottom, W + left + right); each side smaller than
    its axis.  ``padding``: an int or ``(left, right, top, bottom)``.
    """


class ReflectionPad1D(_ReflectionPad):
    """Pad (N, C, L) sequences with their mirror image at each end, the end itself not repeated, as
    PyTorch's ``nn.ReflectionPad1d``.  Shapes: x: (N, C, L) -> y: (N, C, L + left + right); each side
    smaller than L.  ``padding``: an int or ``(left, right)``."""

    _rank = 1


class _ReplicationPad(_Pad):
    """The computation of ``ReplicationPad2D`` and ``ReplicationPad1D``."""

    mode = "replicate"


class ReplicationPad2D(_ReplicationPad):
    """Pad (N, C, H, W) images by repeating their border pixels, as PyTorch's ``nn.ReplicationPad2d``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H + top + bottom, W + left + right).  Backward: an edge
    pixel receives the sum of the gradients of all its copies.  ``padding``: an int or
    ``(left, right, top, bottom)``.
    """


class ReplicationPad1D(_ReplicationPad):
    """Pad (N, C, L) sequences by repeating their end positions, as PyTorch's ``nn.ReplicationPad1d``.
    Shapes: x: (N, C, L) -> y: (N, C, L + left + right).  ``padding``: an int or ``(left, right)``."""

    _rank = 1


class _CircularPad(_Pad):
    """The computation of ``CircularPad2D`` and ``CircularPad1D``."""

    mode = "circular"


class CircularPad2D(_CircularPad):
    """Pad (N, C, H, W) images with the opposite border (the image wrapped around, as on a torus), as
    PyTorch's ``nn.CircularPad2d``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H + top + bottom, W + left + right); each side at most its
    axis (as cropped: a crop comes first).  ``padding``: an int or ``(left, right, top, bottom)``.
    """


class CircularPad1D(_CircularPad):
    """Pad (N, C, L) sequences with the other end (the sequence wrapped around), as PyTorch's
    ``nn.CircularPad1d``.  Shapes: x: (N, C, L) -> y: (N, C, L + left + right); each side at most L.
    ``padding``: an int or ``(left, right)``."""

    _rank = 1
