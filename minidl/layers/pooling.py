"""``MaxPool2D`` and ``AvgPool2D`` on NCHW images, vectorised over the batch and every pixel.

Both loop in Python only over the ``kh*kw`` offsets of the window (4 passes for a 2x2 pool), each
pass an array operation on the whole batch.  Without padding, outputs keep the memory layout of the
input (a ``Conv2D`` output stays channel-major), so a pool between two convolutions costs no extra
copy; a padded input is copied into C order first.

Options as PyTorch's ``MaxPool2d``/``AvgPool2d``: ``padding``, ``ceil_mode`` (both),
``dilation`` (max), ``count_include_pad`` and ``divisor_override`` (average).  The default
configuration (no padding, floor mode) reads the input in place; padding and ceil-mode windows that
hang over the edge cost one padded copy of the input per forward.

Like the activations, the pools do not refuse NaN/inf (that would cost a pass over the data per
step): a window holding a NaN gives NaN in both (``np.maximum`` propagates NaN), and inf/-inf
propagate as in any max or mean (``inf + -inf`` in one average window gives NaN).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..init import switch
from ..layer import Layer
from ..validation import check_grad_output, check_input, is_integer
from .conv import _output_size, _pair

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]


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


class _Pool2D(Layer):
    """Shared geometry: windows of ``kernel_size`` (taps ``dilation`` apart) every ``stride`` pixels over
    the input padded by ``padding`` on each side (with :attr:`_pad_value`), floor or ceil mode."""

    #: What the padding holds: -inf for max (never the maximum), 0 for average (summed, then divided
    #: by a count that includes it or not).
    _pad_value: float = 0.0
    #: Spacing of a window's taps; only ``MaxPool2D`` has the option.
    dilation: tuple[int, int] = (1, 1)

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size} (as PyTorch): a window must hold a pixel of the input")
        self.ceil_mode = switch(ceil_mode, "ceil_mode", name)
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    def _options(self) -> str:
        """The non-default options after stride and padding, e.g. ``", ceil_mode=True"``."""
        return ", ceil_mode=True" if self.ceil_mode else ""

    @property
    def _who(self) -> str:
        kh, kw = self.kernel_size
        k = kh if kh == kw else (kh, kw)
        stride = "" if self.stride == self.kernel_size else f", stride={self.stride}"
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"{type(self).__name__}(k={k}{stride}{padding}{self._options()})"

    def _span(self) -> tuple[int, int]:
        """The extent (rows, columns) a window covers: ``dilation*(kernel - 1) + 1``."""
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """Check x: (N, C, H, W) and return its windows: a view (N, C, H_out, W_out, span_h, span_w) of
        x, or of a padded copy of it (padding, and in ceil mode the overhang of the last windows)."""
        x = check_input(x, self._who, ndim=4, layout="(N, C, H, W)", finite=False)
        (sh, sw), (ph, pw) = self.stride, self.padding
        span_h, span_w = self._span()
        H, W = x.shape[2], x.shape[3]
        if H == 0 or W == 0:  # windows of padding alone (PyTorch refuses it too)
            raise ShapeError(f"{self._who}: input of shape {x.shape} has no pixels (height or width 0)")
        extra_h = extra_w = 0  # rows/columns the last windows reach beyond the padded input
        if self.ceil_mode:
            Ho, Wo = self.output_shape(H, W)
            if Ho < 1 or Wo < 1:  # needs H + 2*ph >= span_h - sh + 1 (likewise W)
                raise ShapeError(
                    f"{self._who}: input of shape {x.shape} is too small for the window {(span_h, span_w)} "
                    f"in ceil mode: expected H + 2*padding >= {span_h - sh + 1} and W + 2*padding >= "
                    f"{span_w - sw + 1}, got {H + 2 * ph} and {W + 2 * pw}")
            extra_h = max(0, (Ho - 1) * sh + span_h - H - 2 * ph)
            extra_w = max(0, (Wo - 1) * sw + span_w - W - 2 * pw)
        elif H + 2 * ph < span_h or W + 2 * pw < span_w:
            raise ShapeError(
                f"{self._who}: input of shape {x.shape} is smaller than the window {(span_h, span_w)}: "
                f"expected H + 2*padding >= {span_h} and W + 2*padding >= {span_w}, "
                f"got {H + 2 * ph} and {W + 2 * pw}")
        self._refuse_windows_without_pixels(x.shape)
        # (only now, when nothing can refuse x any more: a refused input leaves the layer as it was)
        self._shape = x.shape
        if not x.dtype.isnative:  # e.g. read from a file: computed (and returned) in native order
            x = x.astype(x.dtype.newbyteorder("="))
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        if ph or pw or extra_h or extra_w:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph + extra_h), (pw, pw + extra_w)),
                       constant_values=self._pad_value)
        return sliding_window_view(x, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw]

    def _refuse_windows_without_pixels(self, shape: tuple[int, ...]) -> None:
        """Raise ``ShapeError`` if a window of an input of ``shape`` covers only padding (``MaxPool2D``
        with dilation can); the size checks have passed."""

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out)``, floor mode: ``((H + 2*ph - span_h) // sh + 1, ...)`` with
        ``span_h = dilation_h*(kh - 1) + 1``; ceil mode rounds up, as PyTorch (see ``ceil_mode``)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ceil = self.ceil_mode
        return (_pool_output_size(height, kh, sh, ph, dh, ceil), _pool_output_size(width, kw, sw, pw, dw, ceil))

    def _check_grad(self, grad_output: np.ndarray) -> tuple[int, ...]:
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None
        expected = (*shape[:2], *self.output_shape(shape[2], shape[3]))
        check_grad_output(grad_output, f"{self._who}.backward", expected, self._dtype)
        return shape

    def _scatter(
        self, shape: tuple[int, ...], dtype: np.dtype, parts: Iterable[tuple[int, int, np.ndarray]]
    ) -> np.ndarray:
        """dx: (N, C, H, W), with each ``part`` (N, C, H_out, W_out) added at offset ``(i, j)`` from the
        windows' top-left corners in the padded input; what lands on the padding is dropped.

        dx is allocated channel-major (the layout a ``Conv2D`` reads fastest) and returned as an
        (N, C, H, W) view.
        """
        N, C, H, W = shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        span_h, span_w = self._span()
        Ho, Wo = self.output_shape(H, W)
        # the padded input's size, with the overhang of ceil-mode windows, and room to split in blocks
        Hp = max(H + 2 * ph, (Ho - 1) * sh + span_h, Ho * sh)
        Wp = max(W + 2 * pw, (Wo - 1) * sw + span_w, Wo * sw)
        dxt = np.zeros((C, N, Hp, Wp), dtype=dtype)
        dx = dxt.transpose(1, 0, 2, 3)
        if sh >= span_h and sw >= span_w:  # windows do not overlap: plain strided writes
            blocks = dx[:, :, : Ho * sh, : Wo * sw].reshape(N, C, Ho, sh, Wo, sw)  # splits axes: a view
            for i, j, part in parts:
                blocks[:, :, :, i, :, j] = part
        else:
            for i, j, part in parts:
                dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += part
        return dx[:, :, ph:ph + H, pw:pw + W]

    def extra_repr(self) -> str:
        stride = "" if self.stride == self.kernel_size else f", stride={self.stride}"
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"kernel_size={self.kernel_size}{stride}{padding}{self._options()}"


class MaxPool2D(_Pool2D):
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
    does.  The forward keeps only the winner's offset per output (one byte each).
    """

    _pad_value = -np.inf
    _argmax: np.ndarray | None = None  # per output, the winner's offset in its window (set by forward)

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        *,
        dilation: int | tuple[int, int] = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation = _pair(dilation, "dilation", type(self).__name__, 1)

    def _options(self) -> str:
        dilation = "" if self.dilation == (1, 1) else f", dilation={self.dilation}"
        return dilation + super()._options()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        windows = self._windows(x)
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        index_type = np.uint8 if kh * kw <= 256 else np.int32
        if self.padding == (0, 0):  # every window starts on a pixel (ceil mode included)
            best = windows[..., 0, 0].copy(order="K")  # "K": keep the input's memory layout
            argmax = np.zeros_like(best, dtype=index_type)
            first = 1
        else:  # a padding cell must never win, not even a tie with an input of -inf: start every
            # window at its first real pixel (the winner if nothing beats -inf), from -inf
            best = np.full(windows.shape[:4], -np.inf, dtype=windows.dtype)
            argmax = np.empty(best.shape, dtype=index_type)
            argmax[...] = self._first_real_offsets().astype(index_type)
            first = 0
        for t in range(first, kh * kw):
            value = windows[..., (t // kw) * dh, (t % kw) * dw]
            wins = value > best  # strict: on a tie the earlier offset keeps the win
            # offsets come in increasing order, so the winner is the largest t that won: a max
            # (much faster than a masked copy)
            np.maximum(argmax, wins.view(np.uint8) * index_type(t), out=argmax)
            np.maximum(best, value, out=best)
        self._argmax = argmax
        return best

    def _first_taps(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """For an input of ``shape``: per output row, and per output column, the index of the first tap
        of its windows that is not padding (``kh`` / ``kw`` when there is none)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho, wo = self.output_shape(shape[2], shape[3])
        return _first_taps(shape[2], ho, kh, sh, ph, dh), _first_taps(shape[3], wo, kw, sw, pw, dw)

    def _refuse_windows_without_pixels(self, shape: tuple[int, ...]) -> None:
        # without padding every window starts on a pixel; without dilation every window holds one
        # (padding is at most half the window, and a last window starts inside the input)
        if self.padding == (0, 0) or self.dilation == (1, 1):
            return
        (kh, kw) = self.kernel_size
        rows, cols = self._first_taps(shape)
        if (rows == kh).any() or (cols == kw).any():
            axis, index = ("row", int(np.argmax(rows == kh))) if (rows == kh).any() else \
                ("column", int(np.argmax(cols == kw)))
            raise ShapeError(f"{self._who}: input of shape {shape}: the windows of output {axis} {index} "
                             "cover only padding (dilation skips every pixel of the input); "
                             "use less padding or dilation")

    def _first_real_offsets(self) -> np.ndarray:
        """(H_out, W_out): the row-major offset ``i*kw + j`` in each window of its first tap that is
        not padding (every window has one: :meth:`_refuse_windows_without_pixels`)."""
        shape = self._shape
        assert shape is not None
        rows, cols = self._first_taps(shape)
        return rows[:, None] * self.kernel_size[1] + cols[None, :]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
        shape = self._check_grad(grad_output)
        argmax = self._argmax
        assert argmax is not None
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        parts = (((t // kw) * dh, (t % kw) * dw, grad_output * (argmax == t)) for t in range(kh * kw))
        return self._scatter(shape, grad_output.dtype, parts)


class AvgPool2D(_Pool2D):
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
        super().__init__(kernel_size, stride, padding, ceil_mode)
        name = type(self).__name__
        self.count_include_pad = switch(count_include_pad, "count_include_pad", name)
        if divisor_override is not None and not (is_integer(divisor_override) and divisor_override >= 1):
            raise ValueError(f"{name}: divisor_override must be an int >= 1 or None, got {divisor_override!r}")
        self.divisor_override = None if divisor_override is None else int(divisor_override)

    def _options(self) -> str:
        options = super()._options()
        if not self.count_include_pad:
            options += ", count_include_pad=False"
        if self.divisor_override is not None:
            options += f", divisor_override={self.divisor_override}"
        return options

    def _divisor(self, height: int, width: int, dtype: np.dtype) -> float | np.ndarray:
        """What each window's sum is divided by: one number, or (H_out, W_out) of ``dtype`` when the
        windows differ (ceil-mode overhang, padding not counted)."""
        if self.divisor_override is not None:
            return float(self.divisor_override)
        kh, kw = self.kernel_size
        if self.count_include_pad and not self.ceil_mode:  # the default: every window counts kh*kw
            return float(kh * kw)
        (sh, sw), (ph, pw) = self.stride, self.padding
        ho, wo = self.output_shape(height, width)
        rows = _window_counts(height, ho, kh, sh, ph, self.count_include_pad)
        cols = _window_counts(width, wo, kw, sw, pw, self.count_include_pad)
        if rows.min() == kh and cols.min() == kw:
            return float(kh * kw)
        return np.multiply.outer(rows, cols).astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        windows = self._windows(x)
        kh, kw = self.kernel_size
        # float16 sums in float32, as PyTorch: a window of 16 values of 6e4 overflows float16 (its mean does not)
        dtype = windows.dtype  # (native byte order)
        total = windows[..., 0, 0].astype(np.float32 if dtype == np.float16 else dtype, order="K")
        for t in range(1, kh * kw):
            total += windows[..., t // kw, t % kw]
        shape = self._shape
        assert shape is not None
        divisor = self._divisor(shape[2], shape[3], total.dtype)
        if isinstance(divisor, float):
            total *= 1.0 / divisor
        else:
            total /= divisor
        if total.dtype != dtype:
            with np.errstate(over="ignore"):  # a mean beyond float16's range is inf, as in PyTorch
                return total.astype(dtype)
        return total

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
        shape = self._check_grad(grad_output)
        kh, kw = self.kernel_size
        divisor = self._divisor(shape[2], shape[3], grad_output.dtype)
        share = grad_output * (1.0 / divisor) if isinstance(divisor, float) else grad_output / divisor
        return self._scatter(shape, grad_output.dtype, ((i, j, share) for i in range(kh) for j in range(kw)))


class GlobalAvgPool2D(Layer):
    """The mean of each channel over all its pixels, as Keras's ``GlobalAveragePooling2D`` (PyTorch:
    ``AdaptiveAvgPool2d(1)`` then ``Flatten``): the usual head of a convolutional network.

    Shapes: x: (N, C, H, W) -> y: (N, C).  Backward: every pixel of channel c of sample n receives
    ``g[n, c] / (H * W)``.  NaN/inf are passed through unchecked, as by the other pools.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C)."""
        x = check_input(x, "GlobalAvgPool2D", ndim=4, layout="(N, C, H, W)", finite=False)
        if x.shape[2] == 0 or x.shape[3] == 0:
            raise ShapeError(f"GlobalAvgPool2D: input of shape {x.shape} has no pixels (height or width 0)")
        if not x.dtype.isnative:  # e.g. read from a file: computed (and returned) in native order
            x = x.astype(x.dtype.newbyteorder("="))
        self._shape = x.shape
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        # float16 sums in float32 (as np.mean and PyTorch): a 224 x 224 sum of 3s overflows float16
        total = np.add.reduce(x, axis=(2, 3), dtype=np.float32 if x.dtype == np.float16 else None)
        total /= x.shape[2] * x.shape[3]
        return total.astype(x.dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C) -> dx: (N, C, H, W)."""
        shape = self._shape
        self._require_cache(shape)
        assert shape is not None
        check_grad_output(grad_output, "GlobalAvgPool2D.backward", shape[:2], self._dtype)
        share = grad_output / (shape[2] * shape[3])  # (divided: 1 / (H*W) may be subnormal in float16)
        dx = np.empty(shape, dtype=share.dtype)  # a real array (a broadcast view would be read-only)
        dx[...] = share[:, :, None, None]
        return dx
