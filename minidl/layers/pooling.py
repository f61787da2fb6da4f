"""``MaxPool2D`` and ``AvgPool2D`` on NCHW images, vectorised over the batch and every pixel.

Both loop in Python only over the ``kh*kw`` offsets of the window (4 passes for a 2x2 pool), each
pass an array operation on the whole batch.  Outputs keep the memory layout of the input (a
``Conv2D`` output stays channel-major), so a pool between two convolutions costs no extra copy.

Like the activations, the pools do not refuse NaN/inf (that would cost a pass over the data per
step): a window holding a NaN gives NaN in both (``np.maximum`` propagates NaN), and inf/-inf
propagate as in any max or mean (``inf + -inf`` in one average window gives NaN).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..layer import Layer
from ..validation import check_grad_output, check_input
from .conv import _output_size, _pair

__all__ = ["AvgPool2D", "MaxPool2D"]


class _Pool2D(Layer):
    """Shared geometry: windows of ``kernel_size`` every ``stride`` pixels over the input padded by
    ``padding`` on each side (with :attr:`_pad_value`), floor mode."""

    #: What the padding holds: -inf for max (never the maximum), 0 for average (counted, as PyTorch).
    _pad_value: float = 0.0

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", name, 1)
        self.padding = _pair(padding, "padding", name, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size} (as PyTorch): a window must hold a pixel of the input")
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    @property
    def _who(self) -> str:
        kh, kw = self.kernel_size
        k = kh if kh == kw else (kh, kw)
        stride = "" if self.stride == self.kernel_size else f", stride={self.stride}"
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"{type(self).__name__}(k={k}{stride}{padding})"

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """Check x: (N, C, H, W) and return its windows: a view (N, C, H_out, W_out, kh, kw) of x,
        or of a padded copy of it."""
        x = check_input(x, self._who, ndim=4, layout="(N, C, H, W)", finite=False)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if x.shape[2] == 0 or x.shape[3] == 0:  # windows of padding alone (PyTorch refuses it too)
            raise ShapeError(f"{self._who}: input of shape {x.shape} has no pixels (height or width 0)")
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ShapeError(f"{self._who}: input of shape {x.shape} is smaller than the window {(kh, kw)}")
        self._shape = x.shape
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=self._pad_value)
        return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(H_out, W_out) = ((H + 2*ph - kh) // sh + 1, (W + 2*pw - kw) // sw + 1)``."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return _output_size(height, kh, sh, ph), _output_size(width, kw, sw, pw)

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
        """dx: (N, C, H, W), with each ``part`` (N, C, H_out, W_out) added at window offset ``(i, j)``
        of the padded input; what lands on the padding is dropped.

        dx is allocated channel-major (the layout a ``Conv2D`` reads fastest) and returned as an
        (N, C, H, W) view.
        """
        N, C, H, W = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = self.output_shape(H, W)
        H, W = H + 2 * ph, W + 2 * pw  # the padded input's
        dxt = np.zeros((C, N, max(H, Ho * sh), max(W, Wo * sw)), dtype=dtype)
        dx = dxt.transpose(1, 0, 2, 3)
        if sh >= kh and sw >= kw:  # windows do not overlap: plain strided writes
            blocks = dx[:, :, : Ho * sh, : Wo * sw].reshape(N, C, Ho, sh, Wo, sw)  # splits axes: a view
            for i, j, part in parts:
                blocks[:, :, :, i, :, j] = part
        else:
            for i, j, part in parts:
                dx[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += part
        return dx[:, :, ph:H - ph, pw:W - pw]

    def extra_repr(self) -> str:
        stride = "" if self.stride == self.kernel_size else f", stride={self.stride}"
        padding = "" if self.padding == (0, 0) else f", padding={self.padding}"
        return f"kernel_size={self.kernel_size}{stride}{padding}"


class MaxPool2D(_Pool2D):
    """The maximum of each ``kh x kw`` window, as PyTorch's ``MaxPool2d`` (floor mode).

    Shapes: x: (N, C, H, W) -> y: (N, C, H_out, W_out), ``H_out = (H + 2*padding - kh) // stride + 1``;
    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with -inf, so
    it is never the maximum.

    Backward: each output's gradient goes to the input element that was the maximum of its window;
    with overlapping windows an input collects the gradients of every window it won.  **Ties**: when
    several elements of a window share the maximum, the gradient goes to exactly one of them, the
    first in row-major order within the window (smallest row, then smallest column), as PyTorch
    does.  The forward keeps only the winner's offset per output (one byte each).
    """

    _pad_value = -np.inf
    _argmax: np.ndarray | None = None  # per output, the winner's offset in its window (set by forward)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        windows = self._windows(x)
        kh, kw = self.kernel_size
        index_type = np.uint8 if kh * kw <= 256 else np.int32
        if self.padding == (0, 0):
            best = windows[..., 0, 0].copy(order="K")  # "K": keep the input's memory layout
            argmax = np.zeros_like(best, dtype=index_type)
            first = 1
        else:  # a padding cell must never win, not even a tie with an input of -inf: start every
            # window at its first real pixel (the winner if nothing beats -inf), from -inf
            best = np.full(windows.shape[:4], -np.inf, dtype=windows.dtype)
            argmax = np.empty(best.shape, dtype=index_type)
            argmax[...] = self._first_real_offsets(*best.shape[2:]).astype(index_type)
            first = 0
        for t in range(first, kh * kw):
            value = windows[..., t // kw, t % kw]
            wins = value > best  # strict: on a tie the earlier offset keeps the win
            # offsets come in increasing order, so the winner is the largest t that won: a max
            # (much faster than a masked copy)
            np.maximum(argmax, wins.view(np.uint8) * index_type(t), out=argmax)
            np.maximum(best, value, out=best)
        self._argmax = argmax
        return best

    def _first_real_offsets(self, ho: int, wo: int) -> np.ndarray:
        """(H_out, W_out): the row-major offset in each window of its first pixel that is not padding."""
        kw, (sh, sw), (ph, pw) = self.kernel_size[1], self.stride, self.padding
        rows = np.maximum(0, ph - sh * np.arange(ho))
        cols = np.maximum(0, pw - sw * np.arange(wo))
        return rows[:, None] * kw + cols[None, :]

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
        shape = self._check_grad(grad_output)
        argmax = self._argmax
        assert argmax is not None
        kh, kw = self.kernel_size
        parts = ((t // kw, t % kw, grad_output * (argmax == t)) for t in range(kh * kw))
        return self._scatter(shape, grad_output.dtype, parts)


class AvgPool2D(_Pool2D):
    """The mean of each ``kh x kw`` window, as PyTorch's ``AvgPool2d`` (floor mode).

    Shapes: x: (N, C, H, W) -> y: (N, C, H_out, W_out), ``H_out = (H + 2*padding - kh) // stride + 1``;
    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with zeros that
    count in the mean (PyTorch's default ``count_include_pad=True``).  Backward: every element of a
    window receives ``grad / (kh*kw)`` (summed over the windows it belongs to when they overlap).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, H_out, W_out)."""
        windows = self._windows(x)
        kh, kw = self.kernel_size
        total = windows[..., 0, 0].copy(order="K")
        for t in range(1, kh * kw):
            total += windows[..., t // kw, t % kw]
        total *= 1.0 / (kh * kw)
        return total

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, H_out, W_out) -> dx: (N, C, H, W)."""
        shape = self._check_grad(grad_output)
        kh, kw = self.kernel_size
        share = grad_output * (1.0 / (kh * kw))
        return self._scatter(shape, grad_output.dtype, ((i, j, share) for i in range(kh) for j in range(kw)))
