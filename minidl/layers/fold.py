"""``Unfold`` and ``Fold``: im2col and col2im as layers, as PyTorch's ``nn.Unfold`` and ``nn.Fold``.

``Unfold`` cuts an image into the windows a convolution's kernel sees and lays each window out as a
column: (N, C, H, W) -> (N, C*kh*kw, L), one column per window position (``L`` of them, row-major over
the output grid), its rows ordered (C, kh, kw), so that row ``(c*kh + i)*kw + j`` of column
``r*W_out + q`` is ``x_padded[n, c, r*sh + i*dh, q*sw + j*dw]``.  A convolution is then one matrix
product: ``kernel.reshape(F, -1) @ Unfold(...)(x)``, reshaped to (N, F, H_out, W_out), is ``Conv2D``'s
output.  ``Fold`` is its adjoint (col2im): (N, C*kh*kw, L) -> (N, C, H, W), each column's values added
back onto the pixels of their window (overlapping windows sum, values on the padding dropped).  Hence
each one's backward is the other's forward on ``grad_output``.

Both use ``Conv2D``'s own im2col view and col2im (``conv._kernel_windows``, ``conv._col2im``): Python
loops run only over the ``kh*kw`` kernel taps of a col2im (none when the windows do not overlap), never
over pixels or the batch.  Neither layer has parameters or checks for NaN/inf (as the pools and the
pixel shuffles: NaN/inf propagate as NumPy computes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import ShapeError
from ..layer import Layer
from ..validation import as_float_array, check_grad_output, native, size_arguments, widened
from .conv import _EMPTY, _col2im, _compact, _display, _kernel_windows, _output_size, _Pair, _span, _two_sizes

__all__ = ["Fold", "Unfold"]

_Geometry = tuple[_Pair, _Pair, _Pair, _Pair]  # kernel_size, dilation, padding, stride as (h, w) pairs


def _unfold(x: np.ndarray, kernel: _Pair, dilation: _Pair, padding: _Pair, stride: _Pair) -> np.ndarray:
    """im2col: x: (N, C, H, W) -> (N, C*kh*kw, L), a new C-ordered array, PyTorch's row and column order.
    The padded input must hold the kernel's span (checked by the caller)."""
    windows = _kernel_windows(x, kernel, stride, padding, dilation)  # (N, C, Ho, Wo, kh, kw), a view
    N, C, Ho, Wo, kh, kw = windows.shape
    columns = np.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    columns[...] = windows.transpose(0, 1, 4, 5, 2, 3)
    return columns.reshape(N, C * kh * kw, Ho * Wo)


def _fold(columns: np.ndarray, size: _Pair, kernel: _Pair, dilation: _Pair, padding: _Pair,
         stride: _Pair) -> np.ndarray:
    """col2im: columns: (N, C*kh*kw, L) -> (N, C, H, W) for ``size`` (H, W), overlapping windows summed.
    ``L`` must be the number of windows on ``size`` (checked by the caller).  float16 is summed in float32
    and rounded once."""
    (H, W), (kh, kw) = size, kernel
    Ho, Wo = (_output_size(n, k, s, p, d) for n, k, s, p, d in zip(size, kernel, stride, padding, dilation,
                                                                     strict=True))
    N, rows, _ = columns.shape
    taps = widened(columns).reshape(N, rows // (kh * kw), kh, kw, Ho, Wo).transpose(2, 3, 0, 1, 4, 5)
    return _col2im(taps, (H, W), stride, padding, dilation).astype(columns.dtype, copy=False)


def _float_input(x: object, who: str, ndim: int, layout: str, unbatched: str) -> np.ndarray:
    """``x`` as a floating ndarray of ``ndim`` axes (native byte order); an input one axis short is named as
    the unbatched input PyTorch also takes."""
    if type(x) is not np.ndarray or x.dtype.kind != "f":  # the common case skips the call
        x = as_float_array(x, who)
    if x.ndim != ndim:
        hint = (f" (an unbatched {unbatched}, which PyTorch also takes: minidl's image layers want the batch "
                "axis, x[None])") if x.ndim == ndim - 1 else ""
        raise ShapeError(f"{who}: expected a {ndim}-D input of shape {layout}, got shape {x.shape}{hint}")
    return x


#: The four sizes of a ``_Geometry``, in its order, and the least value of each.
_SIZE_NAMES = ("kernel_size", "dilation", "padding", "stride")
_MINIMA = {"kernel_size": 1, "dilation": 1, "padding": 0, "stride": 1}


def _windows(size: tuple[int, ...], geometry: _Geometry) -> _Pair:
    """How many windows of ``geometry`` fit along each axis of an image of ``size`` (H, W), as PyTorch (may be
    < 1)."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geometry
    return _output_size(size[0], kh, sh, ph, dh), _output_size(size[1], kw, sw, pw, dw)


def _spans(kernel: _Pair, dilation: _Pair) -> _Pair:
    """The pixels a window covers along each axis: ``dilation*(kernel - 1) + 1``."""
    return _span(kernel[0], dilation[0]), _span(kernel[1], dilation[1])


def _kernel_words(kernel: _Pair, dilation: _Pair) -> str:
    """``"the kernel (3, 3)"``, with its dilation and span when dilated."""
    dilated = "" if dilation == (1, 1) else \
        f" dilated by {_display(dilation)} (spanning {_display(_spans(kernel, dilation))})"
    return f"the kernel {_display(kernel)}{dilated}"


class _Folding(Layer):
    """What ``Unfold`` and ``Fold`` share: the sizes (``(h, w)`` pairs, checked when set, after construction
    too), their messages and ``repr``."""

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(self, kernel_size: int | tuple[int, int], dilation: int | tuple[int, int],
                 padding: int | tuple[int, int], stride: int | tuple[int, int]) -> None:
        super().__init__()
        name = type(self).__name__
        sizes = (_two_sizes(kernel_size, "kernel_size", name, 1), _two_sizes(dilation, "dilation", name, 1),
                 _two_sizes(padding, "padding", name, 0), _two_sizes(stride, "stride", name, 1))
        # (all checked before any is kept)
        self._kernel_size, self._dilation, self._padding, self._stride = sizes
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    @property
    def kernel_size(self) -> _Pair:
        """The window's ``(kh, kw)``, ints >= 1 (an int sets both); checked when set, after construction
        too, and used by the next forward (a backward uses its forward's)."""
        return self._kernel_size

    @kernel_size.setter
    def kernel_size(self, value: int | tuple[int, int]) -> None:
        self._set_size("kernel_size", value)

    @property
    def dilation(self) -> _Pair:
        """The spacing of a window's taps ``(dh, dw)``, ints >= 1 (an int sets both); checked when set."""
        return self._dilation

    @dilation.setter
    def dilation(self, value: int | tuple[int, int]) -> None:
        self._set_size("dilation", value)

    @property
    def padding(self) -> _Pair:
        """The zeros on each side ``(ph, pw)``, ints >= 0 (an int sets both); checked when set."""
        return self._padding

    @padding.setter
    def padding(self, value: int | tuple[int, int]) -> None:
        self._set_size("padding", value)

    @property
    def stride(self) -> _Pair:
        """The step between windows ``(sh, sw)``, ints >= 1 (an int sets both); checked when set."""
        return self._stride

    @stride.setter
    def stride(self, value: int | tuple[int, int]) -> None:
        self._set_size("stride", value)

    def _set_size(self, name: str, value: int | tuple[int, int]) -> None:
        """Keep ``value`` as the size ``name`` (one of ``_SIZE_NAMES``), a pair, checked as the constructor
        checks it (``ValueError``, nothing changed)."""
        pair = _two_sizes(value, name, type(self).__name__, _MINIMA[name])
        k, d, p, s = (pair if size == name else old for size, old in zip(_SIZE_NAMES, self._geometry(), strict=True))
        self._check_fit((k, d, p, s))
        setattr(self, f"_{name}", pair)

    def _check_fit(self, geometry: _Geometry) -> None:
        """``ValueError`` for sizes ``geometry`` that this layer cannot use with its other settings (``Fold``:
        no window on its output_size); nothing for ``Unfold``, whose image size comes with its input."""

    def _geometry(self) -> _Geometry:
        return self._kernel_size, self._dilation, self._padding, self._stride

    def _spans(self) -> _Pair:
        """The pixels a window covers along each axis: ``dilation*(kernel - 1) + 1``."""
        return _spans(self._kernel_size, self._dilation)

    def _options(self, show: Callable[[_Pair], object]) -> str:
        """The non-default options, e.g. ``", dilation=2, stride=(1, 2)"``, sizes shown by ``show``."""
        return "".join(f", {name}={show(value)}" for name, value, default in
                       (("dilation", self._dilation, 1), ("padding", self._padding, 0), ("stride", self._stride, 1))
                       if value != (default, default))

    def _windows(self, size: tuple[int, ...]) -> _Pair:
        """How many windows fit along each axis of an image of ``size`` (H, W), as PyTorch (may be < 1)."""
        return _windows(size, self._geometry())

    def _kernel_words(self) -> str:
        """``"the kernel (3, 3)"``, with its dilation and span when dilated."""
        return _kernel_words(self._kernel_size, self._dilation)


class Unfold(_Folding):
    """Extract the sliding windows of a convolution as columns (im2col), as PyTorch's ``nn.Unfold``.

    Shapes: x: (N, C, H, W) -> y: (N, C*kh*kw, L), ``L = H_out*W_out`` windows with
    ``H_out = (H + 2*padding - dilation*(kh - 1) - 1) // stride + 1`` (likewise ``W_out``), a convolution's
    output size.  Column ``l = r*W_out + q`` is the window under output pixel (r, q), its rows in
    (C, kh, kw) order::

        y[n, (c*kh + i)*kw + j, r*W_out + q] = x_padded[n, c, r*sh + i*dh, q*sw + j*dw]

    (zero padding on each side).  That is the order of a PyTorch kernel's ``weight.reshape(F, -1)`` and of
    ``Conv2D.kernel``, so ``conv.kernel.reshape(F, -1) @ y + conv.bias_row[:, None]``, reshaped to
    (N, F, H_out, W_out), is ``conv(x)``.

    Backward: ``dx = Fold((H, W), ...)(g)``, each column's gradient added back onto the pixels of its
    window (overlapping windows sum).  The output is a new C-ordered array; the layer keeps only the
    input's shape and dtype.  float32 stays float32; a float16 gradient is summed in float32 and rounded
    once.  NaN/inf are not looked for.

    Unbatched input: PyTorch also takes a (C, H, W) image; here, as in minidl's other image layers, axis 0
    is always the batch, and a 3-D input is refused (``ShapeError``, suggesting ``x[None]``).  Refused as
    PyTorch refuses them: no channels, a height or width of 0, an image smaller than the padded kernel's
    span; an empty batch (N = 0) is fine.

    Args:
        kernel_size, dilation, padding, stride: an int or an ``(h, w)`` pair, in PyTorch's order; ``kernel_size``,
            ``dilation`` and ``stride`` >= 1, ``padding`` >= 0 (each may be set later, checked as here and kept
            as a pair; a backward uses its forward's).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        dilation: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        stride: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__(kernel_size, dilation, padding, stride)
        # the last forward's input and output shapes, and the sizes it used (kernel, dilation, padding, stride)
        self._shape: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._used: _Geometry = self._geometry()

    @property
    def _who(self) -> str:
        return f"Unfold(k={_compact(self._kernel_size)}{self._options(_compact)})"

    def extra_repr(self) -> str:
        return f"kernel_size={_display(self._kernel_size)}{self._options(_display)}"

    def _checked_size(self, shape: tuple[int, ...], who: str) -> _Pair:
        """(H_out, W_out) for an input of ``shape`` (N, C, H, W); ``ShapeError`` unless the padded image
        holds a window."""
        if shape[1] == 0:
            raise ShapeError(f"{who}: input of shape {shape} has no channels")
        if 0 in shape[2:]:
            raise ShapeError(f"{who}: input of shape {shape} has {_EMPTY[2]}")
        out = self._windows(shape[2:])
        if min(out) < 1:
            needed = " and ".join(f"{a} >= {max(1, s - 2 * p)}" for a, s, p in
                                  zip("HW", self._spans(), self._padding, strict=True))
            raise ShapeError(f"{who}: input of shape {shape} is smaller than {self._kernel_words()} (with padding "
                             f"{_display(self._padding)}): expected {needed}, got H={shape[2]}, W={shape[3]}")
        return out

    def output_shape(self, channels: int, height: int, width: int) -> tuple[int, int]:
        """The per-sample output shape ``(C*kh*kw, L)`` for an input of ``(channels, height, width)``."""
        shape = (1, *size_arguments(self._who, ("channels", "height", "width"), (channels, height, width)))
        ho, wo = self._checked_size(shape, f"{self._who}.output_shape")
        return shape[1] * math.prod(self._kernel_size), ho * wo

    def input_shape_hint(self) -> tuple[int, int, int]:
        """A small valid per-sample input: one channel, ``span + 2*stride`` along each axis (at least three
        windows per axis without padding)."""
        (sh, sw), (span_h, span_w) = self._stride, self._spans()
        return 1, span_h + 2 * sh, span_w + 2 * sw

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C*kh*kw, L)."""
        who = self._who
        x = _float_input(x, who, 4, "(N, C, H, W)", "(C, H, W) image")
        self._checked_size(x.shape, who)
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        # (only now, when nothing can refuse x any more: a refused input leaves the layer as it was)
        geometry = self._geometry()
        y = _unfold(x, *geometry)
        # (the sizes kept with the shapes: a backward uses its forward's, whatever was set since)
        self._shape, self._used = (x.shape, y.shape), geometry
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C*kh*kw, L) -> dx: (N, C, H, W), ``Fold`` of ``grad_output``."""
        shapes = self._shape
        self._require_cache(shapes)
        assert shapes is not None
        (_, _, H, W), out = shapes
        g = check_grad_output(grad_output, f"{self._who}.backward", out, self._dtype)
        return _fold(g, (H, W), *self._used)


class Fold(_Folding):
    """Sum sliding windows given as columns back into an image (col2im), as PyTorch's ``nn.Fold``.

    Shapes: x: (N, C*kh*kw, L) -> y: (N, C, H, W) with ``(H, W) = output_size``; ``L`` must be the number of
    windows a convolution with these sizes has on an ``H x W`` image,
    ``L = H_out*W_out``, ``H_out = (H + 2*padding - dilation*(kh - 1) - 1) // stride + 1`` (likewise ``W_out``).
    It is ``Unfold``'s adjoint: each column's values are added onto the pixels of their window, rows in
    (C, kh, kw) order, columns row-major over the windows::

        y_padded[n, c, r*sh + i*dh, q*sw + j*dw] += x[n, (c*kh + i)*kw + j, r*W_out + q]

    and the padding is cut off (values there are dropped).  ``Fold(Unfold(x))`` is ``x`` times the number of
    windows covering each pixel; with non-overlapping windows that tile the image (stride = kernel
    size, no padding, dilation 1), ``Fold`` undoes ``Unfold`` exactly.

    Backward: ``dx = Unfold(...)(g)``, the gradient read at every window (one copy).  The output is a new
    array (with padding, or windows leaving a gap at the end, a view of one cut to ``H x W``).  float16 is
    summed in float32 and rounded once (PyTorch sums in float16).  NaN/inf are not looked for.

    Unbatched input: PyTorch also takes a (C*kh*kw, L) input; here, as in minidl's other image layers,
    axis 0 is always the batch, and a 2-D input is refused (``ShapeError``, suggesting ``x[None]``).
    Refused, as by PyTorch: axis 1 not a positive multiple of ``kh*kw``, ``L`` not the number of windows.
    Sizes that leave no window on ``output_size`` are refused at construction (``ValueError``; PyTorch
    waits for the first call).

    Args:
        output_size: ``(H, W)`` of the output, an int or a pair, >= 1.
        kernel_size, dilation, padding, stride: as ``Unfold``'s, in PyTorch's order.

    Each may be set later: checked as the constructor checks it (a size that leaves no window on
    ``output_size`` is refused, whichever of them is set), used by the next forward; a backward uses its
    forward's.
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        kernel_size: int | tuple[int, int],
        dilation: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        stride: int | tuple[int, int] = 1,
    ) -> None:
        size = _two_sizes(output_size, "output_size", "Fold", 1)
        super().__init__(kernel_size, dilation, padding, stride)
        self._output_size = size
        self._check_fit(self._geometry())
        self._batch: int | None = None  # the last input's batch size
        self._channels = 0  # the last output's
        self._used: tuple[_Pair, _Geometry] = (size, self._geometry())  # the sizes it used

    @property
    def output_size(self) -> _Pair:
        """The output's ``(H, W)``, ints >= 1 (an int sets both); checked when set, after construction too, as
        the constructor checks it (against the kernel), and used by the next forward (a backward uses its
        forward's)."""
        return self._output_size

    @output_size.setter
    def output_size(self, value: int | tuple[int, int]) -> None:
        size = _two_sizes(value, "output_size", "Fold", 1)
        self._check_fit(self._geometry(), size)
        self._output_size = size

    def _check_fit(self, geometry: _Geometry, output_size: _Pair | None = None) -> None:
        """``ValueError`` unless the sizes ``geometry`` leave a window on ``output_size`` (this layer's by
        default)."""
        size = self._output_size if output_size is None else output_size
        if min(_windows(size, geometry)) >= 1:
            return
        kernel, dilation, (ph, pw), _ = geometry
        (H, W), spans = size, _spans(kernel, dilation)
        raise ValueError(f"{self._who}: {_kernel_words(kernel, dilation)} does not fit in the output_size "
                         f"{_display(size)} with padding {_display((ph, pw))}: expected H + 2*padding >= {spans[0]} "
                         f"and W + 2*padding >= {spans[1]}, got {H + 2 * ph} and {W + 2 * pw}")

    @property
    def _who(self) -> str:
        return (f"Fold(output_size={_compact(self._output_size)}, k={_compact(self._kernel_size)}"
                f"{self._options(_compact)})")

    def extra_repr(self) -> str:
        return (f"output_size={_display(self._output_size)}, kernel_size={_display(self._kernel_size)}"
                f"{self._options(_display)}")

    @property
    def _length(self) -> int:
        """L, the number of windows (columns) an input must have."""
        bh, bw = self._windows(self._output_size)
        return bh * bw

    def _layout(self) -> str:
        return f"(N, C*{math.prod(self._kernel_size)}, {self._length})"

    def _checked_rows(self, rows: int, length: int, shape: tuple[int, ...], who: str) -> int:
        """C for an input of ``rows`` = C*kh*kw rows and ``length`` columns (``shape``, for messages)."""
        taps = math.prod(self._kernel_size)
        if rows == 0 or rows % taps:
            raise ShapeError(f"{who}: expected axis 1 to be a positive multiple of kh*kw = {taps} (C*kh*kw for the "
                             f"kernel {_display(self._kernel_size)}), got {rows} (input shape {shape})")
        if length != self._length:
            bh, bw = self._windows(self._output_size)
            raise ShapeError(f"{who}: expected axis 2 (L) to be the number of windows, {bh} * {bw} = {self._length} "
                             f"for {self._kernel_words()} on the output_size {_display(self._output_size)} (padding "
                             f"{_display(self._padding)}, stride {_display(self._stride)}), got {length} (input shape "
                             f"{shape})")
        return rows // taps

    def output_shape(self, rows: int, length: int) -> tuple[int, int, int]:
        """The per-sample output shape ``(C, H, W)`` for an input of ``(rows, length) = (C*kh*kw, L)``."""
        n_rows, n_length = shape = size_arguments(self._who, ("rows", "length"), (rows, length))
        C = self._checked_rows(n_rows, n_length, shape, f"{self._who}.output_shape")
        return (C, *self._output_size)

    def input_shape_hint(self) -> tuple[int, int]:
        """A valid per-sample input: one channel, ``(kh*kw, L)``."""
        return math.prod(self._kernel_size), self._length

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C*kh*kw, L) -> (N, C, H, W)."""
        who = self._who
        x = _float_input(x, who, 3, self._layout(), "(C*kh*kw, L) input")
        C = self._checked_rows(x.shape[1], x.shape[2], x.shape, who)
        x = native(x)
        # (only now, when nothing can refuse x any more: a refused input leaves the layer as it was)
        geometry = self._geometry()
        y = _fold(x, self._output_size, *geometry)
        # (the sizes kept: a backward uses its forward's, whatever was set since)
        self._batch, self._channels, self._used = x.shape[0], C, (self._output_size, geometry)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, H, W) -> dx: (N, C*kh*kw, L), ``Unfold`` of ``grad_output``."""
        N = self._batch
        self._require_cache(N)
        assert N is not None
        size, geometry = self._used
        g = check_grad_output(grad_output, f"{self._who}.backward", (N, self._channels, *size), self._dtype)
        return _unfold(g, *geometry)
