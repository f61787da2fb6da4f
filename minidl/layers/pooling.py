"""``MaxPool2D``, ``AvgPool2D`` on NCHW images and ``MaxPool1D``, ``AvgPool1D`` on (N, C, L) sequences,
vectorised over the batch and every position; ``GlobalAvgPool2D`` and ``GlobalAvgPool1D``.

All loop in Python only over the ``kh*kw`` offsets of the window (4 passes for a 2x2 pool), each
pass an array operation on the whole batch; a max pool whose windows do not overlap sends its
gradient back in one fancy-index assignment (each output's to its winner's flat index).  Without
padding, outputs keep the memory layout of the input (a ``Conv2D`` output stays channel-major), so
a pool between two convolutions costs no extra copy; a padded input is copied into C order first.

Options as PyTorch's ``MaxPool2d``/``AvgPool2d``: ``padding``, ``ceil_mode`` (both),
``dilation`` and ``return_indices`` (max: ``(y, indices)``, the winners as PyTorch gives them, for
``MaxUnpool2D``/``MaxUnpool1D``), ``count_include_pad`` and ``divisor_override`` (average).  The default
configuration (no padding, floor mode) reads the input in place; padding and ceil-mode windows that
hang over the edge cost one padded copy of the input per forward.

A 1-D pool is the 2-D computation on the one-row view (N, C, 1, L) of its input with ``1 x k``
windows: ``_MaxPool`` and ``_AvgPool`` compute, and the public classes (one per reduction and rank)
only give the signature, the docs and ``output_shape``.

Like the activations, the pools do not refuse NaN/inf (that would cost a pass over the data per
step): a window holding a NaN gives NaN in both (``np.maximum`` propagates NaN), and inf/-inf
propagate as in any max or mean (``inf + -inf`` in one average window gives NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..init import switch
from ..layer import Layer
from ..validation import check_grad_output, check_input, is_integer, native, size_arguments
from .conv import (
    _AXES,
    _EMPTY,
    _SIZE_NAMES,
    _SPATIAL,
    _as_2d,
    _compact,
    _display,
    _from_2d,
    _input_of,
    _on_plane,
    _output_size,
    _Plane,
    _sizes,
)

__all__ = ["AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "MaxPool1D", "MaxPool2D"]

#: What an output position along each spatial axis is called in messages, by rank.
_POSITIONS = {1: ("position",), 2: ("row", "column")}
#: What one element of an input's spatial grid is called in messages, by rank.
_PIXEL = {1: "position", 2: "pixel"}

#: What a forward used, kept for its backward: (kernel_size, stride, padding, dilation) on the plane,
#: ceil_mode, count_include_pad and divisor_override (a max pool's: True and None).
_Geometry = tuple[_Plane, bool, bool, "int | None"]


def _pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Windows along one axis, PyTorch's rule: ``(size + 2*padding - span) / stride + 1`` rounded down
    (or up in ceil mode, dropping a last window that would start beyond the input and its left
    padding), with ``span = dilation*(kernel - 1) + 1``."""
    if not ceil_mode:
        return _output_size(size, kernel, stride, padding, dilation)  # the convolution's
    room = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (room + stride - 1) // stride + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _first_taps(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """(out,): for each window along one axis, the index (0..kernel-1) of its first tap on the input
    rather than on the padding; ``kernel`` when every tap is on the padding."""
    starts = stride * np.arange(out) - padding
    first = np.maximum(0, -(starts // dilation))  # ceil(-start / dilation): the first tap at index >= 0
    first[(first >= kernel) | (starts + first * dilation >= size)] = kernel
    return first


def _window_counts(size: int, out: int, kernel: int, stride: int, padding: int, include_pad: bool) -> np.ndarray:
    """(out,): how many positions of each window along one axis count in an average, as PyTorch: the
    window cut at the end of the right padding, and also to the input without ``include_pad``."""
    starts = stride * np.arange(out) - padding
    ends = np.minimum(starts + kernel, size + padding)
    if not include_pad:
        starts = np.maximum(starts, 0)
        ends = np.minimum(ends, size)
    return ends - starts


class _Windows(Layer):
    """What the pools and the unpools share: ``kernel_size``, ``stride`` (by default the kernel) and
    ``padding``, one int per spatial axis (:attr:`_rank` of them), checked when set after construction
    as the constructor checks them (nothing changed when refused), and the layer's name in messages."""

    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2

    def __init__(self, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] | None,
                 padding: int | tuple[int, ...]) -> None:
        super().__init__()
        name, rank = type(self).__name__, self._rank
        self._kernel_size = _sizes(kernel_size, "kernel_size", name, 1, rank)
        self._stride = self._kernel_size if stride is None else _sizes(stride, "stride", name, 1, rank)
        self._padding = _sizes(padding, "padding", name, 0, rank)
        self._check_padding(self._kernel_size, self._padding)

    def _check_padding(self, kernel_size: tuple[int, ...], padding: tuple[int, ...]) -> None:
        """Raise if ``padding`` does not suit ``kernel_size``: any padding does here (an unpool's); a pool
        caps it at half the kernel."""

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """The window's size, one int >= 1 per spatial axis (an int sets all); checked when set (a pool's
        padding must stay at most half of it)."""
        return self._kernel_size

    @kernel_size.setter
    def kernel_size(self, value: int | tuple[int, ...]) -> None:
        kernel_size = _sizes(value, "kernel_size", type(self).__name__, 1, self._rank)
        self._check_padding(kernel_size, self._padding)
        self._kernel_size = kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        """The step between windows, one int >= 1 per spatial axis (an int sets all); checked when set.
        (Set after construction it stays as set: it does not follow a later ``kernel_size``.)"""
        return self._stride

    @stride.setter
    def stride(self, value: int | tuple[int, ...]) -> None:
        self._stride = _sizes(value, "stride", type(self).__name__, 1, self._rank)

    @property
    def padding(self) -> tuple[int, ...]:
        """The padding on each side, one int >= 0 per spatial axis (a pool's at most half the kernel);
        checked when set."""
        return self._padding

    @padding.setter
    def padding(self, value: int | tuple[int, ...]) -> None:
        padding = _sizes(value, "padding", type(self).__name__, 0, self._rank)
        self._check_padding(self._kernel_size, padding)
        self._padding = padding

    def _options(self) -> str:
        """The non-default options after stride and padding in :attr:`_who`, e.g. ``", ceil_mode=True"``."""
        return ""

    @property
    def _who(self) -> str:
        stride = "" if self._stride == self._kernel_size else f", stride={_display(self._stride)}"
        padding = "" if not any(self._padding) else f", padding={_display(self._padding)}"
        return f"{type(self).__name__}(k={_compact(self._kernel_size)}{stride}{padding}{self._options()})"


class _Pool(_Windows):
    """Shared geometry: windows of ``kernel_size`` (taps ``dilation`` apart) every ``stride`` positions
    over the input padded by ``padding`` on each side (with :attr:`_pad_value`), floor or ceil mode.
    The sizes are tuples of one int per spatial axis (:attr:`_rank` of them); the computation runs on
    (N, C, H, W) arrays, a 1-D input (N, C, L) viewed as (N, C, 1, L) (:meth:`_pairs_2d`)."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: What the padding holds: -inf for max (never the maximum), 0 for average (summed, then divided
    #: by a count that includes it or not).
    _pad_value: float = 0.0

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        dilation: int | tuple[int, ...] = 1,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        name, rank = type(self).__name__, self._rank
        self._ceil_mode = switch(ceil_mode, "ceil_mode", name)
        self._dilation = _sizes(dilation, "dilation", name, 1, rank)
        self._shape: tuple[int, ...] | None = None  # the last input's, on the plane (N, C, H, W)
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        self._geometry: _Geometry | None = None  # the last forward's sizes and options, for its backward

    def _check_padding(self, kernel_size: tuple[int, ...], padding: tuple[int, ...]) -> None:
        """``ValueError`` unless ``padding`` is at most half ``kernel_size`` on every axis (as PyTorch)."""
        if any(2 * p > k for p, k in zip(padding, kernel_size, strict=True)):
            raise ValueError(f"{type(self).__name__}: padding {_display(padding)} must be at most half the kernel "
                             f"size {_display(kernel_size)} (as PyTorch): a window must hold a {_PIXEL[self._rank]} "
                             "of the input")

    # ------------------------------------------------------------------ settings (checked when set)
    # Each may be set after construction: checked as the constructor checks it (nothing changed when
    # refused), used by the next forward, while a backward uses its forward's (kept with its cache).

    @property
    def ceil_mode(self) -> bool:
        """Whether the output size is rounded up; a bool, checked when set."""
        return self._ceil_mode

    @ceil_mode.setter
    def ceil_mode(self, value: bool) -> None:
        self._ceil_mode = switch(value, "ceil_mode", type(self).__name__)

    @property
    def dilation(self) -> tuple[int, ...]:
        """Spacing of a window's taps, one int >= 1 per spatial axis; only the max pools have the option
        (an average pool's is all ones and refuses to be set)."""
        return self._dilation

    @dilation.setter
    def dilation(self, value: int | tuple[int, ...]) -> None:
        self._dilation = _sizes(value, "dilation", type(self).__name__, 1, self._rank)

    def _options(self) -> str:
        """The non-default options after stride and padding, e.g. ``", ceil_mode=True"``."""
        return ", ceil_mode=True" if self._ceil_mode else ""

    def _pairs_2d(self) -> _Plane:
        """(kernel_size, stride, padding, dilation) as (height, width) pairs: a 1-D pool's windows are
        one row high, ``(1, k)``, on its input viewed as one row (N, C, 1, L)."""
        return _on_plane(self._kernel_size, self._stride, self._padding, self._dilation)

    def _settings(self) -> _Geometry:
        """The current sizes and options, as a forward uses them (see :data:`_Geometry`)."""
        return self._pairs_2d(), self._ceil_mode, True, None

    @staticmethod
    def _span(plane: _Plane) -> tuple[int, int]:
        """The extent (rows, columns) a window of ``plane`` covers: ``dilation*(kernel - 1) + 1``."""
        (kh, kw), _, _, (dh, dw) = plane
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1

    def _windows_of(self, padded: np.ndarray, plane: _Plane) -> np.ndarray:
        """The windows (a view, N, C, H_out, W_out, span_h, span_w) of a checked, padded plane input."""
        _, (sh, sw), _, _ = plane
        return sliding_window_view(padded, self._span(plane), axis=(2, 3))[:, :, ::sh, ::sw]

    def _padded_input(self, x: np.ndarray) -> np.ndarray:
        """Check x: (N, C, *spatial) and return it on the plane (N, C, H, W), in native byte order, padded
        (a copy) when it has padding or ceil-mode windows hang over its edge; else a view of x.  Keeps the
        input's plane shape and the settings used (:attr:`_geometry`) for the backward."""
        rank = self._rank
        x = check_input(x, self._who, ndim=2 + rank, layout=f"(N, C, {_SPATIAL[rank]})", finite=False)
        geometry = self._settings()
        extra_h, extra_w = self._checked_sizes(x.shape, geometry)
        # (only now, when nothing can refuse x any more: a refused input leaves the layer as it was)
        x = _as_2d(x, rank)
        self._shape, self._geometry = x.shape, geometry
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        _, _, (ph, pw), _ = geometry[0]
        if ph or pw or extra_h or extra_w:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)),
                       constant_values=self._pad_value)
        return x

    def _checked_sizes(self, shape: tuple[int, ...], geometry: _Geometry) -> tuple[int, int]:
        """Refuse (``ShapeError``) an input of ``shape`` the windows of ``geometry`` do not fit: an empty axis
        (windows of padding alone: PyTorch refuses it too), a padded input smaller than a window (in ceil mode:
        no window), a window covering only padding (a max pool's dilation); else return the rows and columns
        the last ceil-mode windows reach beyond the padded input, on the plane (0, 0 in floor mode).

        The forward's checks, which ``output_shape`` makes too, so that it refuses what the forward refuses
        in its words: ``shape`` is a forward's input shape (N, C, *spatial), or ``output_shape``'s spatial sizes
        alone, which its messages name as sizes (``input of 4 x 1``: it knows no batch, no channels)."""
        rank = self._rank
        spatial = shape[-rank:]
        if 0 in spatial:
            raise ShapeError(f"{self._who}: input of {_input_of(shape, rank)} has {_EMPTY[rank]}")
        H, W = spatial if rank == 2 else (1, spatial[0])
        plane = geometry[0]
        _, (sh, sw), (ph, pw), dilation = plane
        span_h, span_w = self._span(plane)
        extra_h = extra_w = 0  # rows/columns the last windows reach beyond the padded input
        if geometry[1]:  # ceil mode
            Ho, Wo = self._plane_output(H, W, geometry)
            if Ho < 1 or Wo < 1:  # needs H + 2*ph >= span_h - sh + 1 (likewise W)
                raise ShapeError(self._too_small(shape))
            extra_h = max(0, (Ho - 1) * sh + span_h - H - 2 * ph)
            extra_w = max(0, (Wo - 1) * sw + span_w - W - 2 * pw)
        elif H + 2 * ph < span_h or W + 2 * pw < span_w:
            raise ShapeError(self._too_small(shape))
        # without padding every window starts on a pixel; without dilation every window holds one (padding
        # is at most half the window, and a last window starts inside the input): a max pool's case
        if (ph or pw) and max(dilation) > 1:
            self._refuse_windows_without_pixels(shape, H, W, geometry)
        return extra_h, extra_w

    def _too_small(self, shape: tuple[int, ...]) -> str:
        """The message for an input of ``shape`` (N, C, *spatial), or spatial sizes alone, too small for one
        window."""
        spans = tuple(d * (k - 1) + 1 for k, d in zip(self._kernel_size, self._dilation, strict=True))
        if self._ceil_mode:
            needed = tuple(span - s + 1 for span, s in zip(spans, self._stride, strict=True))
            problem = f"is too small for the window {_display(spans)} in ceil mode"
        else:
            needed, problem = spans, f"is smaller than the window {_display(spans)}"
        rank = self._rank
        expected = " and ".join(f"{a} + 2*padding >= {n}" for a, n in zip(_AXES[rank], needed, strict=True))
        got = " and ".join(str(n + 2 * p) for n, p in zip(shape[-rank:], self._padding, strict=True))
        return f"{self._who}: input of {_input_of(shape, rank)} {problem}: expected {expected}, got {got}"

    def _refuse_windows_without_pixels(self, shape: tuple[int, ...], height: int, width: int,
                                       geometry: _Geometry) -> None:
        """Raise ``ShapeError`` if a window of an input of ``shape`` (as :meth:`_checked_sizes` has it), ``height
        x width`` on the plane, covers only padding (a max pool with dilation can); called by
        :meth:`_checked_sizes` only with padding and dilation, once the size checks have passed."""

    @staticmethod
    def _plane_output(height: int, width: int, geometry: _Geometry) -> tuple[int, int]:
        """``(H_out, W_out)`` on the plane, floor mode: ``((H + 2*ph - span_h) // sh + 1, ...)`` with
        ``span_h = dilation_h*(kh - 1) + 1``; ceil mode rounds up, as PyTorch (see ``ceil_mode``)."""
        ((kh, kw), (sh, sw), (ph, pw), (dh, dw)), ceil, _, _ = geometry
        return (_pool_output_size(height, kh, sh, ph, dh, ceil), _pool_output_size(width, kw, sw, pw, dw, ceil))

    def _sample_output(self, sizes: tuple[Any, ...]) -> tuple[int, ...]:
        """``output_shape``: the spatial output sizes for its arguments ``sizes`` (ints >= 0:
        :func:`size_arguments`) with the current settings, refusing what the forward refuses, in its words
        (:meth:`_checked_sizes`)."""
        sizes = size_arguments(self._who, _SIZE_NAMES[self._rank], sizes)
        geometry = self._settings()
        self._checked_sizes(sizes, geometry)
        height, width = (1, *sizes) if self._rank == 1 else sizes
        return self._plane_output(height, width, geometry)[2 - self._rank:]

    def _check_grad(self, grad_output: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
        """Check ``grad_output`` (the shape of the last output) and return the last input's shape and
        ``grad_output``, both on the plane (the sizes the forward used: :attr:`_geometry`)."""
        shape, geometry = self._shape, self._geometry
        self._require_cache(shape)
        assert shape is not None and geometry is not None
        expected = (*shape[:2], *self._plane_output(shape[2], shape[3], geometry)[2 - self._rank:])
        check_grad_output(grad_output, f"{self._who}.backward", expected, self._dtype)
        return shape, _as_2d(grad_output, self._rank)

    def _padded_plane(self, height: int, width: int, geometry: _Geometry) -> tuple[int, int]:
        """(Hp, Wp): an input plane of ``height x width`` padded on both sides, with the overhang of
        ceil-mode windows: what the forward's windows are taken from."""
        plane = geometry[0]
        _, (sh, sw), (ph, pw), _ = plane
        span_h, span_w = self._span(plane)
        Ho, Wo = self._plane_output(height, width, geometry)
        return max(height + 2 * ph, (Ho - 1) * sh + span_h), max(width + 2 * pw, (Wo - 1) * sw + span_w)

    def _scatter(
        self, shape: tuple[int, ...], dtype: np.dtype, parts: Iterable[tuple[int, int, np.ndarray]],
        geometry: _Geometry,
    ) -> np.ndarray:
        """dx: (N, C, *spatial) for an input of plane ``shape`` (N, C, H, W), with each ``part`` (N, C,
        H_out, W_out) added at offset ``(i, j)`` from the windows' top-left corners in the padded input;
        what lands on the padding is dropped.

        dx is allocated channel-major (the layout a ``Conv2D`` reads fastest) and returned as an
        (N, C, *spatial) view.
        """
        N, C, H, W = shape
        plane = geometry[0]
        _, (sh, sw), (ph, pw), _ = plane
        span_h, span_w = self._span(plane)
        Ho, Wo = self._plane_output(H, W, geometry)
        Hp, Wp = self._padded_plane(H, W, geometry)
        Hp, Wp = max(Hp, Ho * sh), max(Wp, Wo * sw)  # (room to split in blocks)
        dxt = np.zeros((C, N, Hp, Wp), dtype=dtype)
        dx = dxt.transpose(1, 0, 2, 3)
        if sh >= span_h and sw >= span_w:  # windows do not overlap: plain strided writes
            blocks = dx[:, :, : Ho * sh, : Wo * sw].reshape(N, C, Ho, sh, Wo, sw)  # splits axes: a view
            for i, j, part in parts:
                blocks[:, :, :, i, :, j] = part
        else:
            for i, j, part in parts:
                dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += part
        return _from_2d(dx[:, :, ph:ph + H, pw:pw + W], self._rank)

    def extra_repr(self) -> str:
        stride = "" if self._stride == self._kernel_size else f", stride={_display(self._stride)}"
        padding = "" if not any(self._padding) else f", padding={_display(self._padding)}"
        return f"kernel_size={_display(self._kernel_size)}{stride}{padding}{self._options()}"


class _MaxPool(_Pool):
    """The computation of ``MaxPool2D`` and ``MaxPool1D`` (documented on ``MaxPool2D``), on the plane."""

    _pad_value = -np.inf
    #: per output, its winner's offset from the window's top-left corner in the padded input,
    #: ``i*dh*Wp + j*dw`` for the tap in row i, column j (set by forward; see :meth:`_tap_offsets`)
    _argmax: np.ndarray | None = None
    #: whether the last forward returned ``(y, indices)``: its backward then takes ``(dy, None)``
    _gave_indices: bool = False

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None,
        padding: int | tuple[int, ...],
        ceil_mode: bool,
        dilation: int | tuple[int, ...],
        return_indices: bool,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, dilation)
        self._return_indices = switch(return_indices, "return_indices", type(self).__name__)

    @property
    def return_indices(self) -> bool:
        """Whether a forward returns ``(y, indices)`` (its backward then takes ``(dy, None)``) rather than
        ``y``; a bool, checked when set, used by the next forward."""
        return self._return_indices

    @return_indices.setter
    def return_indices(self, value: bool) -> None:
        self._return_indices = switch(value, "return_indices", type(self).__name__)

    def _options(self) -> str:
        dilation = "" if max(self._dilation) == 1 else f", dilation={_display(self._dilation)}"
        indices = ", return_indices=True" if self._return_indices else ""
        return dilation + super()._options() + indices

    # (Any, as PyTorch's: the array, or (y, indices) by a setting a type checker does not see; a union would make
    # every pool(x).shape of the usual case a type error)
    def forward(self, x: np.ndarray) -> Any:
        """x: (N, C, *spatial) -> y: (N, C, *spatial_out); with ``return_indices``, ``(y, indices)``,
        the indices int64 of y's shape (see :meth:`_flat_indices`)."""
        padded = self._padded_input(x)
        self._argmax = None  # (x is accepted: should the computation fail, no stale winners remain)
        gave_indices = self._return_indices
        if gave_indices is not self._gave_indices:  # (rarely true: spares Layer.__setattr__ on the hot path)
            self._gave_indices = gave_indices
        geometry = self._geometry
        assert geometry is not None
        plane = geometry[0]
        (kh, kw), stride, (ph, pw), (dh, dw) = plane
        offsets = self._tap_offsets(geometry)
        index_type = np.min_scalar_type(int(offsets[-1]))  # one byte for a 2x2 window on up to 254 columns
        H, W = padded.shape[2:]
        if stride == (kh, kw) and (dh, dw) == (1, 1) and (ph, pw) == (0, 0) and H % kh == 0 and W % kw == 0:
            best, argmax = self._tiled_max(padded, index_type, plane)
        else:
            best, argmax = self._max_tap_by_tap(self._windows_of(padded, plane), offsets, index_type, geometry)
        if best.size and np.isnan(best.max()):  # (max propagates NaN)
            self._route_nan_windows(self._windows_of(padded, plane), best, argmax, offsets, plane)
        self._argmax = argmax
        y = _from_2d(best, self._rank)
        if gave_indices:
            return y, _from_2d(self._flat_indices(argmax, offsets, geometry), self._rank)
        return y

    def _flat_indices(self, argmax: np.ndarray, offsets: np.ndarray, geometry: _Geometry) -> np.ndarray:
        """(N, C, H_out, W_out) int64: each output's winner as a flat index into its (n, c) plane of the
        *input* (unpadded), ``row * W + column`` (the column alone for a 1-D pool), as PyTorch's
        ``return_indices``; from the winners' offsets in the padded input (``argmax``, one of ``offsets``)
        through a table ``offset -> i*dh*W + j*dw`` and each window's corner ``(r*sh - ph)*W + c*sw - pw``.
        The winner is never padding, so every index is in ``[0, H*W)``."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry[0]
        shape = self._shape
        assert shape is not None
        W = shape[3]
        taps = np.arange(kh * kw)
        table = np.zeros(int(offsets[-1]) + 1, dtype=np.int64)
        table[offsets] = (taps // kw) * (dh * W) + (taps % kw) * dw
        Ho, Wo = argmax.shape[2:]
        corners = (np.arange(Ho, dtype=np.int64) * sh - ph)[:, None] * W + (np.arange(Wo, dtype=np.int64) * sw - pw)
        indices = table[argmax]  # (in argmax's memory layout, y's: an unpool reads both in that order)
        indices += corners
        return indices

    def _tiled_max(self, x: np.ndarray, index_type: np.dtype, plane: _Plane) -> tuple[np.ndarray, np.ndarray]:
        """The maxima and winners' offsets of windows that tile the plane ``x`` exactly (stride = kernel,
        no dilation, no padding but ceil mode's -inf overhang, which never wins: every window starts on
        a pixel): first along each window row, whose ``kw`` pixels lie side by side, then over the
        window's ``kh`` row maxima.  It reads the input twice, not twice per tap (2x2 windows on (64,
        16, 26, 26): 1.4x faster than tap by tap in float32, 1.5x in float64).  Ties go to the first
        row holding the maximum, and in it to the first column: the first in row-major order."""
        (kh, kw), _, _, _ = plane
        # rows: (N, C, H, W_out), each window row's maximum; col: the first column reaching it (None: 0)
        col: np.ndarray | None = None
        if kw == 1:
            rows = x
        else:
            col_type = np.min_scalar_type(kw - 1)
            left, right = x[..., 0::kw], x[..., 1::kw]
            rows, wins = np.maximum(left, right), right > left
            col = wins.view(np.uint8) if col_type == np.uint8 else wins.astype(col_type)
            for j in range(2, kw):
                value = x[..., j::kw]
                np.maximum(col, (value > rows).view(np.uint8) * col_type.type(j), out=col)
                np.maximum(rows, value, out=rows)
        if kh == 1:  # one row per window (a 1-D pool): the row maxima are the maxima
            best = rows if rows is not x else x.copy(order="K")
            argmax = np.zeros_like(best, dtype=index_type) if col is None else col.astype(index_type, copy=False)
            return best, argmax
        best = rows[:, :, 0::kh].copy(order="K")
        argmax = np.zeros_like(best, dtype=index_type)  # the winning row's offset, i*W, then + its column
        column = None if col is None else col[:, :, 0::kh].astype(index_type)
        for i in range(1, kh):
            value = rows[:, :, i::kh]
            wins = (value > best).view(np.uint8)
            np.maximum(argmax, wins * index_type.type(i * x.shape[3]), out=argmax)
            if col is not None and column is not None:  # where row i wins, its column (modular arithmetic)
                column += wins * (col[:, :, i::kh] - column)
            np.maximum(best, value, out=best)
        if column is not None:
            argmax += column
        return best, argmax

    def _max_tap_by_tap(self, windows: np.ndarray, offsets: np.ndarray,
                        index_type: np.dtype, geometry: _Geometry) -> tuple[np.ndarray, np.ndarray]:
        """The maxima and winners' offsets of any windows, one pass per tap of the window."""
        (kh, kw), _, (ph, pw), (dh, dw) = geometry[0]
        if (ph, pw) == (0, 0):  # every window starts on a pixel (ceil mode included)
            best = windows[..., 0, 0].copy(order="K")  # "K": keep the input's memory layout
            argmax = np.zeros_like(best, dtype=index_type)
            first = 1
        else:  # a padding cell must never win, not even a tie with an input of -inf: start every
            # window at its first real pixel (the winner if nothing beats -inf), from -inf
            best = np.full(windows.shape[:4], -np.inf, dtype=windows.dtype)
            argmax = np.empty(best.shape, dtype=index_type)
            argmax[...] = offsets[self._first_real_taps(geometry)].astype(index_type)
            first = 0
        for t in range(first, kh * kw):
            value = windows[..., (t // kw) * dh, (t % kw) * dw]
            wins = value > best  # strict: on a tie the earlier tap keeps the win
            # offsets grow with t, so the winner is the largest offset that won: a max (much faster
            # than a masked copy)
            np.maximum(argmax, wins.view(np.uint8) * index_type.type(offsets[t]), out=argmax)
            np.maximum(best, value, out=best)
        return best, argmax

    @staticmethod
    def _route_nan_windows(windows: np.ndarray, best: np.ndarray, argmax: np.ndarray, offsets: np.ndarray,
                           plane: _Plane) -> None:
        """A window holding NaN outputs NaN (``np.maximum`` propagates it); its gradient goes to its
        *last* NaN in row-major order, as PyTorch's kernel (``val > max || isnan(val)``) sends it."""
        (kh, kw), _, _, (dh, dw) = plane
        lost = np.isnan(best)
        for t in range(kh * kw):
            argmax[lost & np.isnan(windows[..., (t // kw) * dh, (t % kw) * dw])] = offsets[t]

    def _tap_offsets(self, geometry: _Geometry) -> np.ndarray:
        """(kh*kw,) intp: each tap's offset from its window's top-left corner in the last input padded,
        ``i*dh*Wp + j*dw`` for row i, column j; they grow in row-major tap order (``Wp`` >= the span)."""
        (kh, kw), _, _, (dh, dw) = geometry[0]
        taps = np.arange(kh * kw)
        shape = self._shape
        assert shape is not None
        return (taps // kw) * (dh * self._padded_plane(shape[2], shape[3], geometry)[1]) + (taps % kw) * dw

    def _first_taps(self, height: int, width: int, geometry: _Geometry) -> tuple[np.ndarray, np.ndarray]:
        """For an input plane of ``height x width``: per output row, and per output column, the index of the
        first tap of its windows that is not padding (``kh`` / ``kw`` when there is none)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry[0]
        ho, wo = self._plane_output(height, width, geometry)
        return _first_taps(height, ho, kh, sh, ph, dh), _first_taps(width, wo, kw, sw, pw, dw)

    def _refuse_windows_without_pixels(self, shape: tuple[int, ...], height: int, width: int,
                                       geometry: _Geometry) -> None:
        kh, kw = geometry[0][0]
        rows, cols = self._first_taps(height, width, geometry)
        if (rows == kh).any() or (cols == kw).any():
            rank = self._rank
            # (a 1-D input's single row always holds a pixel: its offending axis is the columns)
            axis, index = (0, int(np.argmax(rows == kh))) if (rows == kh).any() else (1, int(np.argmax(cols == kw)))
            raise ShapeError(f"{self._who}: input of {_input_of(shape, rank)}: the windows of output "
                             f"{_POSITIONS[rank][axis - 2 + rank]} {index} cover only padding (dilation skips every "
                             f"{_PIXEL[rank]} of the input); use less padding or dilation")

    def _first_real_taps(self, geometry: _Geometry) -> np.ndarray:
        """(H_out, W_out): the row-major index ``i*kw + j`` in each window of its first tap that is
        not padding (every window has one: :meth:`_refuse_windows_without_pixels`)."""
        shape = self._shape
        assert shape is not None
        rows, cols = self._first_taps(shape[2], shape[3], geometry)
        return rows[:, None] * geometry[0][0][1] + cols[None, :]

    def backward(self, grad_output: np.ndarray | tuple[np.ndarray, None]) -> np.ndarray:
        """grad_output: (N, C, *spatial_out) -> dx: (N, C, *spatial).  After a forward that returned
        ``(y, indices)``, grad_output is ``(dy, None)``: one gradient per output, None for the indices."""
        shape, grad_output = self._check_grad(self._gradient_of_values(grad_output))
        argmax = self._argmax
        self._require_cache(argmax)
        geometry = self._geometry  # (the forward's: settings changed since do not apply)
        assert argmax is not None and geometry is not None
        plane = geometry[0]
        (kh, kw), (sh, sw), _, (dh, dw) = plane
        span_h, span_w = self._span(plane)
        if sh >= span_h and sw >= span_w:  # windows do not overlap: each input gets at most one gradient
            return self._scatter_to_winners(shape, grad_output, argmax, geometry)
        offsets = self._tap_offsets(geometry).tolist()  # (Python ints: compared in the argmax's own dtype)
        parts = (((t // kw) * dh, (t % kw) * dw, grad_output * (argmax == offsets[t])) for t in range(kh * kw))
        return self._scatter(shape, grad_output.dtype, parts, geometry)

    def _gradient_of_values(self, grad_output: object) -> Any:
        """The gradient of the values ``y``, for :meth:`_check_grad`: ``grad_output`` as given after a
        forward that returned ``y``; ``dy`` of ``grad_output = (dy, None)`` after one that returned ``(y,
        indices)`` (the indices, integers, have no gradient: ``None``, as a backward returns for an integer
        input), else ``ShapeError`` naming the layer."""
        if not self._gave_indices:
            return grad_output
        who = f"{self._who}.backward"
        if not (type(grad_output) is tuple and len(grad_output) == 2):
            got = (f"a tuple of {len(grad_output)}" if type(grad_output) is tuple else
                   "one array" if isinstance(grad_output, np.ndarray) else type(grad_output).__name__)
            raise ShapeError(f"{who}: the forward returned (y, indices) (return_indices=True), so the backward "
                             f"takes their gradients as one tuple (dy, None), got {got}")
        indices_grad = grad_output[1]
        if indices_grad is not None:
            got = (f"an array of {indices_grad.dtype}" if isinstance(indices_grad, np.ndarray) else
                   type(indices_grad).__name__)
            raise ShapeError(f"{who}: the indices have no gradient: pass (dy, None), got {got} in place of None")
        return grad_output[0]

    def _scatter_to_winners(self, shape: tuple[int, ...], grad_output: np.ndarray, argmax: np.ndarray,
                            geometry: _Geometry) -> np.ndarray:
        """dx for windows that do not overlap: each output's gradient written at its winner's flat index
        in a zeroed (padded) input, one fancy-index assignment (4-5x faster than a masked product per
        tap written through a strided view).  dx takes grad_output's order of the N and C axes, so
        that the gradients are read in their memory order."""
        _, (sh, sw), (ph, pw), _ = geometry[0]
        N, C, H, W = shape
        Ho, Wo = argmax.shape[2:]
        Hp, Wp = self._padded_plane(H, W, geometry)
        order = (1, 0, 2, 3) if grad_output.strides[1] > grad_output.strides[0] else (0, 1, 2, 3)  # its own inverse
        winners = np.ascontiguousarray(argmax.transpose(order))  # (a view when the layout is as expected)
        corners = np.arange(Ho)[:, None] * (sh * Wp) + np.arange(Wo) * sw  # (Ho, Wo), in an image
        index = np.add(winners.reshape(N * C, Ho, Wo), corners, dtype=np.intp)
        index += (np.arange(N * C) * (Hp * Wp))[:, None, None]  # + the start of each image
        dxt = np.zeros((shape[order[0]], shape[order[1]], Hp, Wp), dtype=grad_output.dtype)
        dxt.reshape(-1)[index.reshape(-1)] = grad_output.transpose(order).reshape(-1)  # (a view, or a copy)
        return _from_2d(dxt.transpose(order)[:, :, ph:ph + H, pw:pw + W], self._rank)


class MaxPool2D(_MaxPool):
    """The maximum of each ``kh x kw`` window, as PyTorch's ``MaxPool2d``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H_out, W_out), ``H_out = (H + 2*padding - span) // stride + 1``
    with ``span = dilation*(kh - 1) + 1`` (``kh`` without dilation); ``stride`` defaults to
    ``kernel_size``; ``padding`` (at most half the kernel) pads with -inf, so it is never the maximum.

    Options (keyword-only): ``dilation`` (int or pair >= 1): the window's taps are ``dilation``
    pixels apart; ``ceil_mode``: ``H_out`` rounded up, the last window hanging over the edge takes
    the maximum of the pixels it covers (a window must start inside the input or its left padding,
    as PyTorch).  With dilation and padding every window must still reach a pixel of the input
    (``ShapeError`` otherwise; PyTorch gives -inf there).

    Backward: each output's gradient goes to the input element that was the maximum of its window;
    with overlapping windows an input collects the gradients of every window it won.  **Ties**: when
    several elements of a window share the maximum, the gradient goes to exactly one of them, the
    first in row-major order within the window (smallest row, then smallest column), as PyTorch
    does.  A window holding NaN outputs NaN and sends its gradient to its last NaN (row-major), as
    PyTorch.  The forward keeps only the winner's offset per output (one byte each for a 2x2 window
    on up to 254 columns, two bytes up to 65534).

    ``return_indices=True`` (keyword-only, as PyTorch's): the forward returns ``(y, indices)``, the
    indices (N, C, H_out, W_out) int64, each output's winner (the element its gradient goes to, by the
    rules above) as a flat index ``row * W + column`` into its (n, c) plane of the input, never the
    padding, as PyTorch's; what ``MaxUnpool2D`` takes.  Two outputs, so the backward takes two
    gradients, ``(dy, None)`` (the integer indices have none, as a backward returns ``None`` for an
    integer input), and returns ``dx``: ``Sequential(MaxPool2D(2, return_indices=True),
    MaxUnpool2D(2))`` works as it is.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, dilation, return_indices)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out)``, floor mode: ``((H + 2*ph - span_h) // sh + 1, ...)`` with
        ``span_h = dilation_h*(kh - 1) + 1``; ceil mode rounds up, as PyTorch (see ``ceil_mode``).  An input
        the forward refuses is refused in its words (``ShapeError``)."""
        h, w = self._sample_output((height, width))
        return h, w


class MaxPool1D(_MaxPool):
    """The maximum of each window of ``k`` positions, as PyTorch's ``MaxPool1d``: ``MaxPool2D``'s
    computation on the one-row view (N, C, 1, L) of the input with ``1 x k`` windows.

    Shapes: x: (N, C, L) -> y: (N, C, L_out), ``L_out = (L + 2*padding - span) // stride + 1`` with
    ``span = dilation*(k - 1) + 1``; ``stride`` defaults to ``kernel_size``; ``padding`` (at most half
    the kernel) pads with -inf, so it is never the maximum.  The sizes are ints (or 1-tuples), kept
    as 1-tuples (``kernel_size == (k,)``).

    Options (keyword-only), as ``MaxPool2D``: ``dilation`` (int >= 1): the window's taps are
    ``dilation`` positions apart; ``ceil_mode``: ``L_out`` rounded up (a last window must start inside
    the input or its left padding).  With dilation and padding every window must still reach a
    position of the input (``ShapeError`` otherwise; PyTorch gives -inf there).

    Backward: each output's gradient goes to the input element that was the maximum of its window,
    on a tie the first (leftmost) of them, in a window holding NaN its last NaN, as PyTorch;
    overlapping windows add up.

    ``return_indices=True``: the forward returns ``(y, indices)``, the indices (N, C, L_out) int64, each
    output's winner as a position in ``[0, L)`` of the input, as PyTorch's (what ``MaxUnpool1D`` takes),
    and the backward takes ``(dy, None)``, as ``MaxPool2D``'s.
    """

    _rank = 1

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        *,
        dilation: int | tuple[int] = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, dilation, return_indices)

    def output_shape(self, length: int) -> tuple[int]:
        """``(L_out,)``: ``(L + 2*padding - span) // stride + 1`` with ``span = dilation*(k - 1) + 1``,
        rounded up in ceil mode, as PyTorch.  An input the forward refuses is refused in its words
        (``ShapeError``)."""
        (length_out,) = self._sample_output((length,))
        return (length_out,)


class _AvgPool(_Pool):
    """The computation of ``AvgPool2D`` and ``AvgPool1D`` (documented on ``AvgPool2D``), on the plane."""

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None,
        padding: int | tuple[int, ...],
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: int | None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        name = type(self).__name__
        self._count_include_pad = switch(count_include_pad, "count_include_pad", name)
        self._divisor_override = self._checked_divisor(divisor_override)

    def _checked_divisor(self, divisor_override: int | None) -> int | None:
        """``divisor_override`` checked (an int >= 1 or None) and as an int."""
        if divisor_override is not None and not (is_integer(divisor_override) and divisor_override >= 1):
            raise ValueError(f"{type(self).__name__}: divisor_override must be an int >= 1 or None, "
                             f"got {divisor_override!r}")
        return None if divisor_override is None else int(divisor_override)

    @property
    def count_include_pad(self) -> bool:
        """Whether the padding counts in a window's divisor; a bool, checked when set."""
        return self._count_include_pad

    @count_include_pad.setter
    def count_include_pad(self, value: bool) -> None:
        self._count_include_pad = switch(value, "count_include_pad", type(self).__name__)

    @property
    def divisor_override(self) -> int | None:
        """What every window's sum is divided by (an int >= 1), or None; checked when set."""
        return self._divisor_override

    @divisor_override.setter
    def divisor_override(self, value: int | None) -> None:
        self._divisor_override = self._checked_divisor(value)

    @property
    def dilation(self) -> tuple[int, ...]:
        """All ones: an average pool has no dilation (as PyTorch); refused when set."""
        return self._dilation

    @dilation.setter
    def dilation(self, value: int | tuple[int, ...]) -> None:
        raise ValueError(f"{type(self).__name__}: has no dilation (as PyTorch's average pools), got {value!r}")

    def _settings(self) -> _Geometry:
        return self._pairs_2d(), self._ceil_mode, self._count_include_pad, self._divisor_override

    def _options(self) -> str:
        options = super()._options()
        if not self._count_include_pad:
            options += ", count_include_pad=False"
        if self._divisor_override is not None:
            options += f", divisor_override={self._divisor_override}"
        return options

    def _divisor(self, height: int, width: int, dtype: np.dtype, geometry: _Geometry) -> float | np.ndarray:
        """What each window's sum is divided by, for an input of ``height x width`` on the plane: one
        number, or (H_out, W_out) of ``dtype`` when the windows differ (ceil-mode overhang, padding not
        counted)."""
        ((kh, kw), (sh, sw), (ph, pw), _), ceil_mode, include_pad, divisor_override = geometry
        if divisor_override is not None:
            return float(divisor_override)
        if include_pad and not ceil_mode:  # the default: every window counts kh*kw
            return float(kh * kw)
        ho, wo = self._plane_output(height, width, geometry)
        rows = _window_counts(height, ho, kh, sh, ph, include_pad)
        cols = _window_counts(width, wo, kw, sw, pw, include_pad)
        if rows.min() == kh and cols.min() == kw:
            return float(kh * kw)
        return np.multiply.outer(rows, cols).astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C, *spatial_out)."""
        padded = self._padded_input(x)
        shape, geometry = self._shape, self._geometry
        assert shape is not None and geometry is not None
        windows = self._windows_of(padded, geometry[0])
        (kh, kw), _, _, _ = geometry[0]
        # float16 sums in float32, as PyTorch: a window of 16 values of 6e4 overflows float16 (its mean does not)
        dtype = windows.dtype  # (native byte order)
        total = windows[..., 0, 0].astype(np.float32 if dtype == np.float16 else dtype, order="K")
        for t in range(1, kh * kw):
            total += windows[..., t // kw, t % kw]
        divisor = self._divisor(shape[2], shape[3], total.dtype, geometry)
        if isinstance(divisor, float):
            total *= 1.0 / divisor
        else:
            total /= divisor
        if total.dtype != dtype:
            with np.errstate(over="ignore"):  # a mean beyond float16's range is inf, as in PyTorch
                total = total.astype(dtype)
        return _from_2d(total, self._rank)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, *spatial_out) -> dx: (N, C, *spatial)."""
        shape, grad_output = self._check_grad(grad_output)
        geometry = self._geometry  # (the forward's: settings changed since do not apply)
        assert geometry is not None
        (kh, kw), _, _, _ = geometry[0]
        divisor = self._divisor(shape[2], shape[3], grad_output.dtype, geometry)
        share = grad_output * (1.0 / divisor) if isinstance(divisor, float) else grad_output / divisor
        parts = ((i, j, share) for i in range(kh) for j in range(kw))
        return self._scatter(shape, grad_output.dtype, parts, geometry)


class AvgPool2D(_AvgPool):
    """The mean of each ``kh x kw`` window, as PyTorch's ``AvgPool2d``.

    Shapes: x: (N, C, H, W) -> y: (N, C, H_out, W_out), ``H_out = (H + 2*padding - kh) // stride + 1``;
    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with zeros.

    Options (keyword-only), as PyTorch: each window's sum is divided by
    ``divisor_override`` if given (an int >= 1); else, with ``count_include_pad=True`` (default), by
    the number of positions the window covers in the padded input (``kh*kw``, less in ceil mode for a
    last window hanging beyond the right/bottom padding); with ``count_include_pad=False``, by the
    number of input pixels it covers.  ``ceil_mode``: ``H_out`` rounded up, the last window must start
    inside the input or its left padding.

    Backward: every element of a window receives ``grad / divisor`` (summed over the windows it
    belongs to when they overlap).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out)``, floor mode: ``((H + 2*ph - kh) // sh + 1, ...)``; ceil mode rounds up, as
        PyTorch (see ``ceil_mode``).  An input the forward refuses is refused in its words (``ShapeError``)."""
        h, w = self._sample_output((height, width))
        return h, w


class AvgPool1D(_AvgPool):
    """The mean of each window of ``k`` positions, as PyTorch's ``AvgPool1d``: ``AvgPool2D``'s
    computation on the one-row view (N, C, 1, L) of the input with ``1 x k`` windows.

    Shapes: x: (N, C, L) -> y: (N, C, L_out), ``L_out = (L + 2*padding - k) // stride + 1``;
    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with zeros.
    The sizes are ints (or 1-tuples), kept as 1-tuples (``kernel_size == (k,)``).

    Options (keyword-only), as ``AvgPool2D``: each window's sum is divided by ``divisor_override`` if
    given (an int >= 1); else, with ``count_include_pad=True`` (default), by the number of positions
    the window covers in the padded input (``k``, less in ceil mode for a last window hanging beyond
    the right padding); with ``count_include_pad=False``, by the number of input positions it covers.
    ``ceil_mode``: ``L_out`` rounded up, the last window must start inside the input or its left padding.

    Backward: every element of a window receives ``grad / divisor`` (summed over overlapping windows).
    """

    _rank = 1

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        *,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)

    def output_shape(self, length: int) -> tuple[int]:
        """``(L_out,)``: ``(L + 2*padding - k) // stride + 1``, rounded up in ceil mode, as PyTorch.  An input
        the forward refuses is refused in its words (``ShapeError``)."""
        (length_out,) = self._sample_output((length,))
        return (length_out,)


def spatial_input(x: np.ndarray, name: str, rank: int, layout: str) -> np.ndarray:
    """``x`` checked as (N, C, *spatial) with ``rank`` spatial axes, none empty, in native byte order
    (read from a file it is computed, and returned, in native order); NaN/inf are let through."""
    x = check_input(x, name, ndim=2 + rank, layout=layout, finite=False)
    if 0 in x.shape[2:]:
        raise ShapeError(f"{name}: input of shape {x.shape} has {_EMPTY[rank]}")
    return native(x)


class _GlobalAvgPool(Layer):
    """The computation of ``GlobalAvgPool2D`` and ``GlobalAvgPool1D``: the mean over every spatial axis."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        rank = self._rank  # what every call needs of it, made once
        self._layout = f"(N, C, {_SPATIAL[rank]})"
        self._axes = tuple(range(2, 2 + rank))
        self._unit_axes = (1,) * rank

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *spatial) -> (N, C)."""
        x = spatial_input(x, type(self).__name__, self._rank, self._layout)
        self._shape = x.shape
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        # float16 sums in float32 (as np.mean and PyTorch): a 224 x 224 sum of 3s overflows float16
        total = np.add.reduce(x, axis=self._axes, dtype=np.float32 if x.dtype == np.float16 else None)
        total /= math.prod(x.shape[2:])
        return total.astype(x.dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C) -> dx: (N, C, *spatial)."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None
        check_grad_output(grad_output, f"{type(self).__name__}.backward", shape[:2], self._dtype)
        share = grad_output / math.prod(shape[2:])  # (divided: 1 / (H*W) may be subnormal in float16)
        dx = np.empty(shape, dtype=share.dtype)  # a real array (a broadcast view would be read-only)
        dx[...] = share.reshape(share.shape + self._unit_axes)
        return dx


class GlobalAvgPool2D(_GlobalAvgPool):
    """The mean of each channel over all its pixels, as Keras's ``GlobalAveragePooling2D`` (PyTorch:
    ``AdaptiveAvgPool2d(1)`` then ``Flatten``): the usual head of a convolutional network.

    Shapes: x: (N, C, H, W) -> y: (N, C).  Backward: every pixel of channel c of sample n receives
    ``g[n, c] / (H * W)``.  NaN/inf are passed through unchecked, as by the other pools.
    """


class GlobalAvgPool1D(_GlobalAvgPool):
    """The mean of each channel over the whole sequence, as Keras's ``GlobalAveragePooling1D`` (PyTorch:
    ``AdaptiveAvgPool1d(1)`` then ``Flatten``, or ``x.mean(-1)``): a head for sequences of any length.

    Shapes: x: (N, C, L) -> y: (N, C), as ``GlobalAvgPool2D``.  Backward: every position of channel c
    of sample n receives ``g[n, c] / L``.  NaN/inf are passed through unchecked, as by the other pools.
    """

    _rank = 1
