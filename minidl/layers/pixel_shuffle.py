"""``PixelShuffle`` and ``PixelUnshuffle``: the sub-pixel rearrangement of images (ESPCN, Shi et al. 2016),
as PyTorch's ``nn.PixelShuffle`` and ``nn.PixelUnshuffle``.

With the factor ``r``, ``PixelShuffle`` moves each group of ``r*r`` channels of a pixel into an ``r x r``
block of pixels of one channel: (N, C*r*r, H, W) -> (N, C, H*r, W*r) with::

    y[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w]

(channel ``c*r*r + i*r + j`` is the block's row ``i``, column ``j``).  A convolution to ``C*r*r``
channels followed by it upsamples by ``r`` with learned filters, without the checkerboard artefacts of a
strided transposed convolution.  ``PixelUnshuffle`` is the inverse, (N, C, H*r, W*r) -> (N, C*r*r, H, W):
it folds each ``r x r`` block into channels (a lossless downsampling).

Both are permutations of the elements: the forward splits axes (a view), transposes them (a view) and
merges them (one copy, or a view wherever NumPy's reshape can make one, e.g. ``r = 1``, 1 x 1 images); the
backward is the other layer's forward on ``grad_output``, the inverse permutation.  Nothing is computed,
so every dtype gives exactly its input's values, and NaN/inf pass through unchecked (as by ``Flatten``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..init import positive_int
from ..layer import Layer
from ..validation import as_float_array, check_grad_output, native, size_arguments

__all__ = ["PixelShuffle", "PixelUnshuffle"]


def _channel_major(a: np.ndarray) -> bool:
    """Whether a 4-D (N, C, H, W) array is laid out contiguously as (C, N, H, W), as ``Conv2D``'s output
    and ``dx`` are (and not also C-ordered, as when N = 1)."""
    return a.ndim == 4 and not a.flags.c_contiguous and a.transpose(1, 0, 2, 3).flags.c_contiguous


def _shuffle(a: np.ndarray, r: int) -> np.ndarray:
    """(..., C*r*r, H, W) -> (..., C, H*r, W*r), ``out[..., c, h*r + i, w*r + j] = a[..., c*r*r + i*r + j, h, w]``.
    A channel-major (N, C, H, W) array gives a channel-major result (what the next ``Conv2D`` reads
    fastest), any other an array in C order."""
    *lead, channels, H, W = a.shape
    C = channels // (r * r)
    if _channel_major(a):  # in memory (C*r*r, N, H, W): shuffled as it lies, the batch axis second
        (N,) = lead
        blocks = a.transpose(1, 0, 2, 3).reshape(C, r, r, N, H, W).transpose(0, 3, 4, 1, 5, 2)
        return blocks.reshape(C, N, H * r, W * r).transpose(1, 0, 2, 3)
    k = len(lead)  # (..., C, i, j, h, w) -> (..., C, h, i, w, j)
    blocks = a.reshape(*lead, C, r, r, H, W).transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return blocks.reshape(*lead, C, H * r, W * r)


def _unshuffle(a: np.ndarray, r: int) -> np.ndarray:
    """(..., C, H*r, W*r) -> (..., C*r*r, H, W), the inverse of :func:`_shuffle` (its layout rule too)."""
    *lead, C, height, width = a.shape
    H, W = height // r, width // r
    if _channel_major(a):  # in memory (C, N, H*r, W*r)
        (N,) = lead
        blocks = a.transpose(1, 0, 2, 3).reshape(C, N, H, r, W, r).transpose(0, 3, 5, 1, 2, 4)
        return blocks.reshape(C * r * r, N, H, W).transpose(1, 0, 2, 3)
    k = len(lead)  # (..., C, h, i, w, j) -> (..., C, i, j, h, w)
    blocks = a.reshape(*lead, C, H, r, W, r).transpose(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return blocks.reshape(*lead, C * r * r, H, W)


class _PixelRearrange(Layer):
    """What both layers share: the factor ``r``, the input check, the cache (the output's shape and dtype
    and the ``r`` of the last forward: a backward uses its forward's, whatever the factor was set to since)."""

    single_input = True  # (a Stack hands it the sequence alone)

    #: The factor's argument name, as PyTorch's.
    _factor_name: str = ""
    _factor: int

    def __init__(self, factor: int) -> None:
        super().__init__()
        self._set_factor(factor)
        # the last forward's output shape, factor and dtype (dx's shape follows from the first two)
        self._out: tuple[int, ...] | None = None
        self._used = 0
        self._dtype: np.dtype | None = None

    def _set_factor(self, value: object) -> None:
        object.__setattr__(self, "_factor", positive_int(value, self._factor_name, type(self).__name__))

    @property
    def _who(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return f"{self._factor_name}={self._factor}"

    def _layout(self) -> str:
        raise NotImplementedError

    def _rearranged(self, shape: tuple[int, ...], who: str) -> tuple[int, ...]:
        """The output's shape for an input of ``shape`` (..., C, H, W); ``ShapeError`` if it does not divide."""
        raise NotImplementedError

    def output_shape(self, channels: int, height: int, width: int) -> tuple[int, int, int]:
        """The per-sample output shape ``(C', H', W')`` for an input of ``(channels, height, width)``;
        ``ShapeError`` where the factor does not divide them."""
        shape = size_arguments(self._who, ("channels", "height", "width"), (channels, height, width))
        C, H, W = self._rearranged(shape, f"{self._who}.output_shape")
        return C, H, W

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``PixelShuffle``: x: (N, C*r*r, H, W) -> (N, C, H*r, W*r); ``PixelUnshuffle``: the reverse (both
        with any extra axes after N kept)."""
        who = self._who
        if type(x) is not np.ndarray or x.dtype.kind != "f":  # the common case skips the call
            x = as_float_array(x, who)
        if x.ndim < 4:
            unbatched = (" (an unbatched (C, H, W) image, which PyTorch also takes: minidl's image layers want "
                         "the batch axis, x[None])") if x.ndim == 3 else ""
            raise ShapeError(f"{who}: expected a 4-D (or higher) input of shape {self._layout()}, got shape "
                             f"{x.shape}{unbatched}")
        out = self._rearranged(x.shape, who)
        x = native(x)  # (e.g. read from a file: the output, and so grad_output, are native)
        r = self._factor
        y = self._apply(x, r)  # (before the cache changes: a failed copy leaves the last pass's)
        self._out, self._used = out, r  # (plain tuples and ints: Layer.__setattr__'s fast path)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward's output shape -> dx: its input's shape, the inverse permutation."""
        out, r = self._out, self._used
        self._require_cache(out)
        assert out is not None
        g = check_grad_output(grad_output, f"{type(self).__name__}({self._factor_name}={r}).backward", out,
                              self._dtype)
        return self._undo(g, r)

    def _apply(self, x: np.ndarray, r: int) -> np.ndarray:
        raise NotImplementedError

    def _undo(self, g: np.ndarray, r: int) -> np.ndarray:
        raise NotImplementedError


class PixelShuffle(_PixelRearrange):
    """Rearrange ``r*r`` channels into ``r x r`` blocks of pixels, as PyTorch's ``nn.PixelShuffle``: the
    sub-pixel convolution's upsampling step (a ``Conv2D`` to ``C*r*r`` channels, then this).

    Shapes: x: (N, C*r*r, H, W) -> y: (N, C, H*r, W*r),
    ``y[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w]``.  Extra axes after the batch axis,
    (N, ..., C*r*r, H, W), are kept, as PyTorch's leading axes; an unbatched (C*r*r, H, W) image is refused
    (minidl's image layers take a batch axis first: ``x[None]``).  Empty axes are allowed (an empty output,
    as PyTorch's).  No parameters.

    Backward: ``dx = PixelUnshuffle(r)(g)``, the inverse permutation.  The output is one copy of x,
    rearranged, or a view of x wherever NumPy's reshape can make one (e.g. ``r = 1``, 1 x 1 images, one
    channel one pixel wide): do not write into it, as into ``Flatten``'s.  A channel-major input (a
    ``Conv2D``'s output) gives a channel-major output, for the next ``Conv2D``; any other copy is NCHW.
    NaN/inf are passed through unchecked.

    Args:
        upscale_factor: ``r``, an int >= 1 (may be set later; a backward uses its forward's).
    """

    _factor_name = "upscale_factor"

    def __init__(self, upscale_factor: int) -> None:
        super().__init__(upscale_factor)

    @property
    def upscale_factor(self) -> int:
        """``r``: each pixel's ``r*r`` channels become an ``r x r`` block."""
        return self._factor

    @upscale_factor.setter
    def upscale_factor(self, value: int) -> None:
        self._set_factor(value)

    def _layout(self) -> str:
        return f"(N, C*{self._factor ** 2}, H, W)"

    def _rearranged(self, shape: tuple[int, ...], who: str) -> tuple[int, ...]:
        *lead, channels, H, W = shape
        r = self._factor
        if channels % (r * r):
            raise ShapeError(f"{who}: expected the channels (axis -3) to be divisible by upscale_factor**2 = "
                             f"{r * r}, got {channels} channels (input shape {tuple(shape)})")
        return (*lead, channels // (r * r), H * r, W * r)

    def _apply(self, x: np.ndarray, r: int) -> np.ndarray:
        return _shuffle(x, r)

    def _undo(self, g: np.ndarray, r: int) -> np.ndarray:
        return _unshuffle(g, r)


class PixelUnshuffle(_PixelRearrange):
    """Fold each ``r x r`` block of pixels into ``r*r`` channels, as PyTorch's ``nn.PixelUnshuffle``: the
    inverse of ``PixelShuffle``, a downsampling that loses nothing.

    Shapes: x: (N, C, H*r, W*r) -> y: (N, C*r*r, H, W), ``y[n, c*r*r + i*r + j, h, w] = x[n, c, h*r + i, w*r + j]``;
    extra axes after N kept, unbatched input refused, as by ``PixelShuffle``.  No parameters.

    Backward: ``dx = PixelShuffle(r)(g)``.  View or copy, memory layout and NaN/inf: as ``PixelShuffle``.
    Differs from PyTorch on empty inputs: PyTorch returns them with the input's shape ((0, 3, 4, 4) stays
    (0, 3, 4, 4) for ``r = 2``); here they get the output shape of the formula, (0, 12, 2, 2).

    Args:
        downscale_factor: ``r``, an int >= 1 (may be set later; a backward uses its forward's).
    """

    _factor_name = "downscale_factor"

    def __init__(self, downscale_factor: int) -> None:
        super().__init__(downscale_factor)

    @property
    def downscale_factor(self) -> int:
        """``r``: each ``r x r`` block becomes ``r*r`` channels of one pixel."""
        return self._factor

    @downscale_factor.setter
    def downscale_factor(self, value: int) -> None:
        self._set_factor(value)

    def _layout(self) -> str:
        r = self._factor
        return f"(N, C, H*{r}, W*{r})"

    def _rearranged(self, shape: tuple[int, ...], who: str) -> tuple[int, ...]:
        *lead, C, height, width = shape
        r = self._factor
        for axis, name, size in ((-2, "height", height), (-1, "width", width)):
            if size % r:
                raise ShapeError(f"{who}: expected the {name} (axis {axis}) to be divisible by downscale_factor "
                                 f"= {r}, got {size} (input shape {tuple(shape)})")
        return (*lead, C * r * r, height // r, width // r)

    def _apply(self, x: np.ndarray, r: int) -> np.ndarray:
        return _unshuffle(x, r)

    def _undo(self, g: np.ndarray, r: int) -> np.ndarray:
        return _shuffle(g, r)
