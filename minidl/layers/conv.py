"""``Conv2D`` and ``Conv1D``: convolutions computed as a ``Dense`` over patches (im2col), bias absorbed.

The computation (``M = N*H_out*W_out`` patches; ``P``: (C*kh*kw, M) the patch matrix, im2col; with a bias,
``P1`` is P under a row of ones, which meets the bias row W[0] as in ``Dense``; ``G``: the output's gradient
as an (out, M) matrix)::

    forward:   Y = W.T @ P1                   (out, M), reshaped to (N, out, H_out, W_out)
    backward:  dW += P1 @ G.T  (row 0: the bias's gradient, G summed over M),  dP = W[1:] @ G,
               dx = col2im(dP): each patch's gradient added back where the patch came from

``Conv1D`` is ``Conv2D``'s computation run on a one-row view ``(N, C, 1, L)`` of its ``(N, C, L)``
input with a ``1 x k`` kernel: both are thin public faces (signature, docs, output size) of one
private class, ``_Im2colConvolution``, whose messages speak the shapes of the layer's own input.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, DTypeLike

from ..aligned import empty
from ..errors import DTypeError, ShapeError
from ..init import RNGLike, absorbed_weights, float_dtype, positive_int, switch_setting
from ..layer import Layer
from ..parameter import Parameter, bias_rows_again
from ..validation import check_grad_output, check_input, checked_setting, settings_renamed, size_arguments

__all__ = ["Conv1D", "Conv2D"]

#: The names of the spatial axes in messages, by their number (a layer's "rank"): (N, C, L) sequences
#: and (N, C, H, W) images.
_AXES = {1: ("L",), 2: ("H", "W")}
#: The spatial axes in an input's layout, by rank: "(N, C, L)", "(N, C, H, W)".
_SPATIAL = {rank: ", ".join(axes) for rank, axes in _AXES.items()}
#: What an input with a spatial axis of size 0 is said to have, by rank.
_EMPTY = {1: "no positions (length 0)", 2: "no pixels (height or width 0)"}
#: The names of ``output_shape``'s spatial size arguments, by rank.
_SIZE_NAMES = {1: ("length",), 2: ("height", "width")}


def _input_of(shape: tuple[int, ...], rank: int) -> str:
    """How a message names an input after "input of": a forward's (N, C, *spatial) ``shape`` as ``shape (2, 3,
    4, 1)``; ``output_shape``'s spatial sizes alone (``rank`` of them: the layer knows neither the batch nor the
    channels) as ``4 x 1``, or ``length 4``."""
    if len(shape) > rank:
        return f"shape {shape}"
    return f"length {shape[0]}" if rank == 1 else " x ".join(map(str, shape))


#: ``padding_mode``: how ``Conv1D`` and ``Conv2D`` pad their input, as PyTorch's ``Conv1d``/``Conv2d``
#: (the last three: the padding layers' rules, ``ReflectionPad2D`` etc.).
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
#: why a convolution's channels, groups and bias switch cannot change once built (a change refused)
_SHAPED = "the weights W were built for it, and an optimizer or a checkpoint holds W"

_Pair = tuple[int, int]
#: Kernel size, stride, padding and dilation as (height, width) pairs: the sizes the computation uses.
_Plane = tuple[_Pair, _Pair, _Pair, _Pair]
#: A convolution's checked geometry: in_channels, out_channels, kernel_size, stride, padding, dilation, groups.
_Geometry = tuple[int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], int]
#: What a forward that padded by a padding_mode other than zeros keeps for its backward: the mode, the
#: (axis, before, after) of each padded axis of the (C, N, H, W) input and the positions each read
#: (padding.padded's).
_Folding = tuple[str, list[tuple[int, int, int]], list[np.ndarray]]


def _channels(who: str, name: str, value: Any) -> int:
    """An int >= 1 (``positive_int``'s check and message), in the argument order of a checked setting."""
    return positive_int(value, name, who)


def _padding_mode(who: str, name: str, value: Any) -> str:
    """One of :data:`PADDING_MODES`, else ``ValueError`` (as PyTorch)."""
    if not isinstance(value, str) or value not in PADDING_MODES:
        raise ValueError(f"{who}: {name} must be one of {PADDING_MODES}, got {value!r}")
    return str(value)


def _name_in_messages(cls_name: str, in_channels: int, out_channels: int, kernel_size: tuple[int, ...],
                      dilation: tuple[int, ...], groups: int, stride: tuple[int, ...] | None = None) -> str:
    """How the messages of a convolution name the layer: ``Conv2D(3 -> 8, k=3, dilation=2, groups=...)``; with
    ``stride`` (the transposed convolutions') also ``stride=2`` first, when not 1."""
    options = ""
    if stride is not None and max(stride) > 1:
        options += f", stride={_compact(stride)}"
    if max(dilation) > 1:
        options += f", dilation={_compact(dilation)}"
    if groups != 1:
        options += f", groups={groups}"
    return f"{cls_name}({in_channels} -> {out_channels}, k={_compact(kernel_size)}{options})"


def _sizes(value: int | tuple[int, ...], name: str, who: str, minimum: int, rank: int) -> tuple[int, ...]:
    """One int per spatial axis: ``3 -> (3,) * rank``; a tuple of ``rank`` ints as is; refuse non-ints and
    values below ``minimum``."""
    sizes = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
    if len(sizes) != rank or any(
        not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum for v in sizes
    ):
        what = f"an int >= {minimum}" + (" or a pair of them" if rank == 2 else "")
        raise ValueError(f"{who}: {name} must be {what}, got {value!r}")
    return tuple(int(v) for v in sizes)


def _two_sizes(value: int | tuple[int, int], name: str, who: str, minimum: int) -> _Pair:
    """``3 -> (3, 3)``; ``(3, 2)`` as is; refuse non-ints and values below ``minimum``."""
    h, w = _sizes(value, name, who, minimum, 2)
    return h, w


def _display(sizes: tuple[int, ...]) -> int | tuple[int, ...]:
    """A size per spatial axis as messages show it: a 2-D layer's pair as a pair, a 1-D layer's as an int."""
    return sizes[0] if len(sizes) == 1 else sizes


def _compact(sizes: tuple[int, ...]) -> int | tuple[int, ...]:
    """As in ``k=3`` of a layer's name: one int when every axis has the same size."""
    return sizes[0] if min(sizes) == max(sizes) else sizes


def _on_plane(k: tuple[int, ...], s: tuple[int, ...], p: tuple[int, ...],
              d: tuple[int, ...]) -> tuple[_Pair, _Pair, _Pair, _Pair]:
    """Kernel size, stride, padding and dilation (one int per spatial axis) as the (height, width) pairs
    of the 2-D computation: a 1-D layer's sequence is an image one row high, its kernel ``1 x k``
    (stride 1, no padding, no dilation along the height)."""
    if len(k) == 1:
        return (1, k[0]), (1, s[0]), (0, p[0]), (1, d[0])
    return (k[0], k[1]), (s[0], s[1]), (p[0], p[1]), (d[0], d[1])


def _as_2d(a: np.ndarray, rank: int) -> np.ndarray:
    """(N, C, L) -> the view (N, C, 1, L); (N, C, H, W) as is."""
    return a[:, :, None, :] if rank == 1 else a


def _from_2d(a: np.ndarray, rank: int) -> np.ndarray:
    """(N, C, 1, L) -> the view (N, C, L) for a 1-D layer; as is for a 2-D one."""
    return a[:, :, 0, :] if rank == 1 else a


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length along one axis, as PyTorch: ``(size + 2p - d*(k - 1) - 1) // s + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


#: How many positions (columns) ``_summed_product`` takes per block.
_BLOCK = 512


def _summed_product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b.T`` for a: (k, M), b: (f, M): a weight gradient summed over M positions.  When the
    weights are few and the positions many (``k*f <= 256``, ``M >= 16*_BLOCK``: a first layer's 3x3
    kernels on 46592 positions), it is taken block by block in one batched ``matmul`` and summed:
    OpenBLAS's single product of that shape packs both long operands through memory, the blocks stay
    in cache (measured: (10, 46592) by (46592, 16), 510 -> 250 us in float32, 690 -> 460 in float64;
    with larger weights the single product is as fast or faster)."""
    (k, M), f = a.shape, b.shape[0]
    if k * f > 256 or M < 16 * _BLOCK or a.dtype.itemsize < 4:  # (float16 blocks would be summed in float16)
        return np.matmul(a, b.T, out=out)
    blocks, whole = M // _BLOCK, M // _BLOCK * _BLOCK
    per_block = np.matmul(a[:, :whole].reshape(k, blocks, _BLOCK).transpose(1, 0, 2),
                          b[:, :whole].reshape(f, blocks, _BLOCK).transpose(1, 2, 0))  # (blocks, k, f)
    total = np.add.reduce(per_block, axis=0, out=out)
    if whole < M:
        total += a[:, whole:] @ b[:, whole:].T
    return total


def _span(kernel: int, dilation: int) -> int:
    """How many input pixels a kernel dilated by ``dilation`` covers along one axis."""
    return dilation * (kernel - 1) + 1


def _kernel_windows(a: np.ndarray, kernel: _Pair, stride: _Pair, padding: _Pair, dilation: _Pair) -> np.ndarray:
    """im2col as a view: a: (..., H, W) -> (..., H_out, W_out, kh, kw), element ``[..., r, q, i, j]`` the
    tap (i, j) of the window at output (r, q), ``a_padded[..., r*sh + i*dh, q*sw + j*dw]``.  A read-only
    strided view of ``a``, or of a zero-padded copy of it with padding.  The caller has checked that the
    padded size holds the kernel's span."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        *lead, H, W = a.shape
        padded = np.zeros((*lead, H + 2 * ph, W + 2 * pw), dtype=a.dtype)
        padded[..., ph:ph + H, pw:pw + W] = a
        a = padded
    windows = sliding_window_view(a, (_span(kh, dh), _span(kw, dw)), axis=(-2, -1))
    return windows[..., ::sh, ::sw, ::dh, ::dw]


def _col2im(taps: np.ndarray, size: _Pair, stride: _Pair, padding: _Pair, dilation: _Pair) -> np.ndarray:
    """The adjoint of :func:`_kernel_windows`: taps: (kh, kw, ..., H_out, W_out), a value per kernel tap and
    window -> (..., H, W) for an input of ``size`` (H, W), each value added onto the element the tap read
    (overlapping windows sum), what lands on the padding dropped.  Python loops only over the ``kh*kw``
    taps, none when the windows do not overlap (one strided assignment).  A new array, or (with
    padding, or windows leaving a gap at the end) a view of one, cut to ``H x W``."""
    kh, kw, *lead, Ho, Wo = taps.shape
    (H, W), (sh, sw), (ph, pw), (dh, dw) = size, stride, padding, dilation
    Hp, Wp = H + 2 * ph, W + 2 * pw
    span_h, span_w = _span(kh, dh), _span(kw, dw)
    if sh >= span_h and sw >= span_w:  # windows do not overlap: one strided assignment
        out = np.zeros((*lead, max(Hp, Ho * sh), max(Wp, Wo * sw)), dtype=taps.dtype)
        blocks = out[..., : Ho * sh, : Wo * sw].reshape(*lead, Ho, sh, Wo, sw)  # a view
        k = len(lead)  # (kh, kw, ..., Ho, Wo) -> (..., Ho, kh, Wo, kw), the blocks' order
        blocks[..., :span_h:dh, :, :span_w:dw] = taps.transpose(*range(2, 2 + k), 2 + k, 0, 3 + k, 1)
    else:
        out = np.zeros((*lead, Hp, Wp), dtype=taps.dtype)
        for i in range(kh):
            for j in range(kw):
                top, left = i * dh, j * dw
                out[..., top:top + sh * (Ho - 1) + 1:sh, left:left + sw * (Wo - 1) + 1:sw] += taps[i, j]
    if out.shape[-2:] != (H, W):
        out = out[..., ph:ph + H, pw:pw + W]
    return out


class _Convolution(Layer):
    """What ``Conv2D``, ``Conv1D``, ``ConvTranspose2D`` and ``ConvTranspose1D`` share: the checked geometry
    (channels, kernel, stride, padding, dilation, groups; the sizes as tuples of one int per spatial axis),
    the fixed settings, PyTorch-shaped kernels and biases read by ``from_kernel``, the bias row and the
    ``repr``.  Subclasses compute.

    ``in_channels``, ``out_channels``, ``groups`` and ``bias`` are fixed (``W`` is shaped for them: a change
    is refused, as ``kernel_size``'s), and so is ``W``'s shape (``W.data`` rebound to another is refused by
    the next forward or backward, :meth:`_refuse_W`).  The computations read the stored values
    (``_groups``, ...), not the properties."""

    single_input = True  # (a Stack hands it the sequence alone)

    W: Parameter
    in_channels = checked_setting("in_channels", _channels, "The input's channels, an int >= 1; fixed.",
                                  fixed=_SHAPED)
    out_channels = checked_setting("out_channels", _channels, "The output's channels, an int >= 1; fixed.",
                                   fixed=_SHAPED)
    groups = checked_setting("groups", _channels, "How many independent channel groups, an int >= 1 dividing "
                             "in_channels and out_channels; fixed.", fixed=_SHAPED)
    bias = checked_setting("bias", switch_setting, "Whether ``W`` has the bias row 0; fixed.", fixed=_SHAPED)
    _in_channels: int  # (where the settings keep their values)
    _out_channels: int
    _groups: int
    _bias: bool
    #: How many spatial axes the input has: 2 for (N, C, H, W) images, 1 for (N, C, L) sequences.
    _rank: int = 2
    #: the size options shown by ``repr`` when not at their default, in order
    _shown: tuple[tuple[str, tuple[int, ...]], ...] = (("stride", (1, 1)), ("padding", (0, 0)),
                                                       ("dilation", (1, 1)))

    #: whether the messages' name of the layer shows its stride (the transposed convolutions')
    _stride_in_name = False
    #: whether the layer is a transposed convolution: the last number of its layout (same W shape, another meaning)
    _transposed = False

    @property
    def _who(self) -> str:
        """How the messages name the layer: ``Conv2D(3 -> 8, k=3, dilation=2)`` (see ``_name_in_messages``)."""
        return _name_in_messages(type(self).__name__, self._in_channels, self._out_channels, self._kernel_size,
                                 self._dilation, self._groups, self._stride if self._stride_in_name else None)

    def _start(self, geometry: _Geometry, bias: bool, weights: np.ndarray) -> None:
        """What ``__init__`` does once every argument is checked and ``W`` drawn (so that a refused ``__init__``
        run again on a built layer leaves it as it was): ``Layer``'s, then the fixed settings afresh, the
        sizes and ``W``."""
        super().__init__()
        for setting in ("_in_channels", "_out_channels", "_groups", "_bias"):  # (run again: the fixed ones afresh)
            self.__dict__.pop(setting, None)
        (self.in_channels, self.out_channels, self._kernel_size, self._stride, self._padding, self._dilation,
         self.groups) = geometry
        self.bias = bias
        self.W = Parameter(weights, bias_rows=slice(0, 1) if bias else None)  # (bias_rows: the bias row 0)

    def state_layout(self) -> tuple[int, ...]:
        """``(in_channels, groups, *kernel_size, bias, transposed)``: what W's shape does not tell apart
        (``Conv2D(2, 3, kernel_size=2)``'s and ``Conv2D(8, 3, kernel_size=1)``'s are both (9, 3), and
        ``ConvTranspose2D(2, 3, kernel_size=2)``'s too); ``state_dict`` saves it, ``load_state_dict`` compares it."""
        return (self._in_channels, self._groups, *self._kernel_size, int(self._bias), int(self._transposed))

    def layout_words(self, layout: tuple[int, ...]) -> str | None:
        """``(2, 1, 2, 2, 1, 0)``: ``"a kernel (2, 2) over 2 input channels with a bias"`` (``in 2 groups`` when
        there are several; ``"a transposed convolution's kernel ..."`` when the last number is 1)."""
        rank = self._rank
        if (len(layout) != rank + 4 or min(layout[:-2]) < 1 or layout[-2] not in (0, 1) or layout[-1] not in (0, 1)
                or layout[0] % layout[1]):
            return None
        channels, groups, kernel, bias, transposed = layout[0], layout[1], layout[2:-2], layout[-2], layout[-1]
        size = f"of size {kernel[0]}" if rank == 1 else f"({', '.join(map(str, kernel))})"
        kind = "transposed convolution's kernel" if transposed else "kernel"
        return (f"a {kind} {size} over "
                f"{channels} input channel{'s' if channels != 1 else ''}"
                f"{f' in {groups} groups' if groups > 1 else ''} {'with' if bias else 'without'} a bias")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled when its channels, groups and bias were plain
        attributes, or before ``W.bias_rows`` (set again)."""
        super().__setstate__(settings_renamed(type(self), state))
        bias_rows_again(self.__dict__.get("W"), slice(0, 1) if self.__dict__.get("_bias") else None)

    def _weights_layout(self, groups: int, bias: bool) -> str:
        """W's shape in words, as the messages say it: ``(in_channels//groups*kh*kw + 1, out_channels)``."""
        channels = "in_channels//groups" if groups > 1 else "in_channels"
        kernel = "*".join(("k",) if self._rank == 1 else ("kh", "kw"))
        return f"({channels}*{kernel}{' + 1' if bias else ''}, out_channels)"

    def _refuse_W(self, W: np.ndarray) -> NoReturn:
        """``ShapeError``: ``W.data`` was rebound to another shape than the layer was built for."""
        shape = (self._in_channels // self._groups * math.prod(self._kernel_size) + self._bias, self._out_channels)
        raise ShapeError(f"{self._who}: W.data has shape {W.shape}, but the layer was built for {shape} "
                         f"{self._weights_layout(self._groups, self._bias)}; its sizes are fixed: build a new "
                         f"{type(self).__name__} of the sizes you want")

    def _checked_geometry(self, who: str, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                          stride: int | tuple[int, ...], padding: int | tuple[int, ...] | str,
                          dilation: int | tuple[int, ...], groups: int, named_padding: bool = True) -> _Geometry:
        """(in_channels, out_channels, kernel_size, stride, padding, dilation, groups) checked and normalised
        (the sizes one int per spatial axis), or the constructor's error; nothing of the layer read or changed."""
        rank = self._rank
        channels_in = positive_int(in_channels, "in_channels", who)
        channels_out = positive_int(out_channels, "out_channels", who)
        kernel = _sizes(kernel_size, "kernel_size", who, 1, rank)
        strides = _sizes(stride, "stride", who, 1, rank)
        dilations = _sizes(dilation, "dilation", who, 1, rank)
        paddings = self._checked_padding(padding, who, named_padding, kernel, strides, dilations)
        count = positive_int(groups, "groups", who)
        if channels_in % count or channels_out % count:
            raise ValueError(
                f"{who}: groups must divide both in_channels and out_channels, got groups={count} "
                f"with in_channels={channels_in}, out_channels={channels_out}"
            )
        return channels_in, channels_out, kernel, strides, paddings, dilations, count

    def _checked_padding(self, padding: int | tuple[int, ...] | str, who: str, named_padding: bool,
                         kernel: tuple[int, ...], stride: tuple[int, ...],
                         dilation: tuple[int, ...]) -> tuple[int, ...]:
        """``padding`` as one int per spatial axis (``"same"``/``"valid"`` too where ``named_padding``, for
        that kernel size, stride and dilation), checked."""
        if isinstance(padding, str) and named_padding:
            return self._named_padding(padding, who, kernel, stride, dilation)
        return _sizes(padding, "padding", who, 0, self._rank)  # type: ignore[arg-type]  # (a str: refused)

    # ------------------------------------------------------------------ settings (checked when set)
    # kernel_size is fixed by the weights' shape; stride, padding and dilation may be set after construction:
    # checked as the constructor checks them (nothing changed when refused), used by the next forward, while
    # a backward uses its forward's (kept with its cache).
    _named: bool = True  # whether padding may be given as "same" / "valid"

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """The kernel's size, one int per spatial axis; fixed (the weights ``W`` are shaped for it)."""
        return self._kernel_size

    @kernel_size.setter
    def kernel_size(self, value: int | tuple[int, ...]) -> None:
        name = type(self).__name__
        if _sizes(value, "kernel_size", name, 1, self._rank) != self._kernel_size:
            raise ValueError(f"{name}: kernel_size cannot be changed after construction (the weights W are shaped "
                             f"for the kernel {_display(self._kernel_size)}), got {value!r}: build a new layer "
                             "(e.g. with from_kernel)")

    @property
    def stride(self) -> tuple[int, ...]:
        """The step between windows, one int >= 1 per spatial axis (an int sets all); checked when set, used
        by the next forward (a backward uses its forward's)."""
        return self._stride

    @stride.setter
    def stride(self, value: int | tuple[int, ...]) -> None:
        stride = _sizes(value, "stride", type(self).__name__, 1, self._rank)
        self._check_settings(stride=stride)
        self._stride = stride

    @property
    def padding(self) -> tuple[int, ...]:
        """The padding on each side (zeros, or by a convolution's ``padding_mode``), one int >= 0 per spatial
        axis (an int sets all; ``"same"``/``"valid"`` as the constructor takes them, computed for the current
        stride and dilation); checked when set."""
        return self._padding

    @padding.setter
    def padding(self, value: int | tuple[int, ...] | str) -> None:
        padding = self._checked_padding(value, type(self).__name__, self._named, self._kernel_size, self._stride,
                                        self._dilation)
        self._check_settings(padding=padding)
        self._padding = padding

    @property
    def dilation(self) -> tuple[int, ...]:
        """The spacing of the kernel's taps, one int >= 1 per spatial axis (an int sets all); checked when set."""
        return self._dilation

    @dilation.setter
    def dilation(self, value: int | tuple[int, ...]) -> None:
        dilation = _sizes(value, "dilation", type(self).__name__, 1, self._rank)
        self._check_settings(dilation=dilation)
        self._dilation = dilation

    def _check_settings(self, **changed: tuple[int, ...]) -> None:
        """``ValueError`` (as the constructor's) if the settings with ``changed`` do not go together; nothing
        here (a transposed convolution checks its output_padding)."""

    def _named_padding(self, padding: str, who: str, kernel: tuple[int, ...], stride: tuple[int, ...],
                       dilation: tuple[int, ...]) -> tuple[int, ...]:
        """PyTorch's ``padding="valid"`` (none) or ``"same"`` (the output as long as the input, stride 1) as
        the padding per spatial axis: ``dilation*(k - 1) / 2`` on each side."""
        if padding == "valid":
            return (0,) * self._rank
        if padding != "same":
            raise ValueError(f"{who}: padding must be an int >= 0, one per spatial axis, 'same' or 'valid', "
                             f"got {padding!r}")
        if max(stride) > 1:
            raise ValueError(f"{who}: padding='same' needs stride 1 (as PyTorch), got stride {_display(stride)}")
        totals = tuple(d * (k - 1) for k, d in zip(kernel, dilation, strict=True))
        if any(total % 2 for total in totals):
            raise ValueError(
                f"{who}: padding='same' with kernel_size {_display(kernel)} and dilation "
                f"{_display(dilation)} needs {_display(totals)} padding in all, odd on some axis: PyTorch pads "
                "one more at the end, which minidl does not (its padding is the same on both sides); use an odd "
                "kernel size or an even dilation, or pad the input yourself")
        return tuple(total // 2 for total in totals)

    @classmethod
    def _kernel_array(cls, kernel: ArrayLike, who: str, layout: str, dtype: DTypeLike | None) -> np.ndarray:
        """A PyTorch-shaped kernel (``layout`` in words: two axes, then one per spatial axis) as a real array
        of ``dtype`` (by default its own floating dtype, else float64), or the error naming ``who``."""
        k = np.asarray(kernel)
        if k.dtype.kind not in "iuf":  # as W=...: no strings, no complex numbers losing a part
            raise DTypeError(f"{who}: the kernel must hold real numbers, got dtype {k.dtype}")
        k = k.astype(dtype if dtype is not None else k.dtype if k.dtype.kind == "f" else np.float64, copy=False)
        if k.ndim != 2 + cls._rank:
            raise ShapeError(f"{who}: expected a kernel of shape {layout}, got {k.shape}")
        if k.size == 0:  # (a reshape would fail with NumPy's words)
            raise ShapeError(f"{who}: the kernel of shape {k.shape} is empty; every axis of {layout} must be at "
                             "least 1")
        return k

    @staticmethod
    def _with_bias(rows: np.ndarray, bias: ArrayLike | None, who: str) -> np.ndarray:
        """``rows`` (C*kh*kw, out) with the bias ``(out,)`` stacked as row 0, if one is given."""
        if bias is None:
            return rows
        b = np.asarray(bias, dtype=rows.dtype)
        if b.shape != (rows.shape[1],):
            raise ShapeError(f"{who}: expected a bias of shape ({rows.shape[1]},), got {b.shape}")
        return np.vstack([b[None, :], rows])

    @property
    def bias_row(self) -> np.ndarray | None:
        """The bias, (out_channels,): a view of ``W.data[0]``, or ``None`` without bias."""
        return self.W.data[0] if self.bias else None

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={_display(self.kernel_size)}"]
        parts += [f"{name}={_display(getattr(self, name))}" for name, default in self._shown
                  if getattr(self, name) != default]
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if not self.bias:
            parts.append("bias=False")
        return ", ".join(parts)


_Conv = TypeVar("_Conv", bound="_Im2colConvolution")


class _Im2colConvolution(_Convolution):
    """The computation of ``Conv2D`` and ``Conv1D`` (see ``Conv2D``), on (N, C, H, W) arrays: a 1-D
    layer's input (N, C, L) is viewed as (N, C, 1, L) and its ``k``-wide kernel as ``1 x k``
    (:meth:`_pairs_2d`), so every line below is the 2-D computation.  Only the messages, the shapes
    checked and returned, and the public signatures (in the subclasses) depend on the rank.

    The fixed settings are ``_Convolution``'s; ``padding_mode`` may be set, checked, and is used by the next
    forward."""

    padding_mode = checked_setting(
        "padding_mode", _padding_mode, "How the input is padded: ``'zeros'`` (the default), ``'reflect'``, "
        "``'replicate'`` or ``'circular'``, as PyTorch's; checked when set, used by the next forward (a backward "
        "uses its forward's).")
    #: (the class's default: a layer pickled before padding_mode existed pads with zeros)
    _padding_mode: str = "zeros"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...],
        padding: int | tuple[int, ...] | str,
        bias: bool,
        *,
        dilation: int | tuple[int, ...],
        groups: int,
        padding_mode: str = "zeros",
        W: ArrayLike | None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike,
    ) -> None:
        # Everything checked (and W drawn) before anything is replaced: a refused __init__ run again on a
        # built layer leaves it as it was.
        name = type(self).__name__
        geometry = self._checked_geometry(name, in_channels, out_channels, kernel_size, stride, padding, dilation,
                                          groups)
        channels_in, channels_out, kernel, _, _, dilations, count = geometry
        has_bias = switch_setting(name, "bias", bias)
        mode = _padding_mode(name, "padding_mode", padding_mode)
        taps = math.prod(kernel)
        weights = absorbed_weights(
            _name_in_messages(name, channels_in, channels_out, kernel, dilations, count), channels_in // count * taps,
            channels_out, bias=has_bias, W=W, init=init, rng=rng, dtype=float_dtype(dtype, name),
            fan_out=channels_out * taps, layout=" " + self._weights_layout(count, has_bias),
        )
        self._start(geometry, has_bias, weights)
        self.padding_mode = mode
        # the last forward: the patches, the input's shape on the plane, the output's (Ho, Wo), the sizes used
        # and, for a padding_mode other than zeros that padded, (mode, (axis, before, after) per padded axis,
        # the positions each read): what the backward folds back
        self._cache: tuple[np.ndarray, tuple[int, ...], tuple[int, int], _Plane, _Folding | None] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled when its channels, groups and bias were plain
        attributes (``_Convolution``'s) and before padding_mode (which then pads with zeros, as it did)."""
        cache = state.get("_cache")
        if isinstance(cache, tuple) and len(cache) == 4:  # (a forward's cache of then: zero padding)
            state = {**state, "_cache": (*cache, None)}
        super().__setstate__(state)

    # ------------------------------------------------------------------ PyTorch-shaped views
    @classmethod
    def _from_kernel(cls: type[_Conv], kernel: ArrayLike, bias: ArrayLike | None, stride: int | tuple[int, ...],
                     padding: int | tuple[int, ...] | str, dilation: int | tuple[int, ...], groups: int,
                     dtype: DTypeLike | None, padding_mode: str = "zeros") -> _Conv:
        """What ``from_kernel`` does: a layer from a PyTorch-shaped kernel ``(out, in/groups, *kernel_size)``."""
        who = f"{cls.__name__}.from_kernel"
        axes = "k" if cls._rank == 1 else "kh, kw"
        k = cls._kernel_array(kernel, who, f"(out, in/groups, {axes})", dtype)
        groups = positive_int(groups, "groups", who)
        padding_mode = _padding_mode(who, "padding_mode", padding_mode)
        out, channels_per_group, *kernel_size = k.shape
        rows = cls._with_bias(k.reshape(out, -1).T, bias, who)
        # (padding_mode passed only when not the default: a subclass's own __init__ need not take it)
        mode: dict[str, Any] = {} if padding_mode == "zeros" else {"padding_mode": padding_mode}
        return cls(channels_per_group * groups, out, tuple(kernel_size), stride, padding, bias=bias is not None,
                   dilation=dilation, groups=groups, W=rows, dtype=k.dtype, **mode)

    @property
    def kernel(self) -> np.ndarray:
        """The weights as PyTorch shapes them, (out, in/groups, *kernel_size): a view of ``W.data`` (writable)."""
        rows = self.W.data[1:] if self.bias else self.W.data
        return rows.T.reshape(self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    # ------------------------------------------------------------------ geometry
    def _pairs_2d(self) -> tuple[_Pair, _Pair, _Pair, _Pair]:
        """(kernel_size, stride, padding, dilation) as the (height, width) pairs the computation uses:
        a 1-D layer's ``k`` is ``(1, k)``, its stride ``(1, s)``, its padding ``(0, p)``."""
        return _on_plane(self._kernel_size, self._stride, self._padding, self._dilation)

    def _too_small(self, shape: tuple[int, ...]) -> str:
        """The message for an input of ``shape`` whose padded size is smaller than the kernel's span."""
        spans = tuple(_span(k, d) for k, d in zip(self.kernel_size, self.dilation, strict=True))
        dilated = "" if max(self.dilation) == 1 else \
            f" dilated by {_display(self.dilation)} (spanning {_display(spans)})"
        axes = _AXES[self._rank]
        needed = " and ".join(f"{a} >= {max(1, s - 2 * p)}" for a, s, p in zip(axes, spans, self.padding, strict=True))
        sizes = ", ".join(f"{a}={n}" for a, n in zip(axes, shape[2:], strict=True))
        return (f"{self._who}: input of shape {shape} is smaller than the kernel {_display(self.kernel_size)}{dilated} "
                f"(with padding {_display(self.padding)}): expected {needed}, got {sizes}")

    def input_shape_hint(self) -> tuple[int, ...]:
        """A small valid per-sample input, ``(in_channels, *(span + 2*stride per axis))`` with the kernel's
        span ``dilation*(k - 1) + 1`` along each axis (3 outputs per axis unpadded); with a padding_mode other
        than zeros, at least ``padding + 1`` along each axis (what ``'reflect'`` needs)."""
        least = (0,) * self._rank if self._padding_mode == "zeros" else tuple(p + 1 for p in self._padding)
        return (self.in_channels, *(max(_span(k, d) + 2 * s, n) for k, s, d, n in
                                    zip(self.kernel_size, self.stride, self.dilation, least, strict=True)))

    def _check_mode_padding(self, shape: tuple[int, ...]) -> None:
        """``ShapeError`` where PyTorch refuses the padding_mode's padding for an input of ``shape`` (as
        given): reflect's at least the input's size, circular's more than it."""
        mode = self._padding_mode
        if mode in ("zeros", "replicate"):
            return
        reflect = mode == "reflect"
        axes, sizes = _AXES[self._rank], shape[2:]
        if any(p + reflect > n for p, n in zip(self._padding, sizes, strict=True)):
            rule = "smaller than the input" if reflect else "at most the input's size (it wraps around once)"
            needed = " and ".join(f"{a} >= {p + reflect}" for a, p in zip(axes, self._padding, strict=True))
            got = ", ".join(f"{a}={n}" for a, n in zip(axes, sizes, strict=True))
            raise ShapeError(f"{self._who}: padding_mode={mode!r} needs a padding {rule} along each axis (as "
                             f"PyTorch), got padding {_display(self._padding)} for an input of shape {shape}: "
                             f"expected {needed}, got {got}")

    def _checked_sizes(self, sizes: tuple[Any, ...]) -> tuple[int, ...]:
        """``output_shape``'s spatial output sizes for its arguments ``sizes`` (ints >= 0: :func:`size_arguments`),
        refusing (``ShapeError``, the forward's words) what the forward refuses: an empty axis, a padded input
        smaller than the kernel, a padding its padding_mode cannot take."""
        sizes = size_arguments(self._who, _SIZE_NAMES[self._rank], sizes)
        shape = (1, self._in_channels, *sizes)
        if any(n < 1 for n in sizes):
            raise ShapeError(f"{self._who}: input of shape {shape} has {_EMPTY[self._rank]}")
        if any(n + 2 * p < _span(k, d) for n, k, p, d in
               zip(sizes, self.kernel_size, self.padding, self.dilation, strict=True)):
            raise ShapeError(self._too_small(shape))
        self._check_mode_padding(shape)
        return tuple(_output_size(n, k, s, p, d) for n, k, s, p, d in
                     zip(sizes, self.kernel_size, self.stride, self.padding, self.dilation, strict=True))

    def _mode_padded(self, xt: np.ndarray, shape: tuple[int, ...], padding: _Pair) -> tuple[np.ndarray, _Folding]:
        """xt: (C, N, H, W) padded by ``padding`` (ph, pw) on each side by the padding_mode (not zeros), as
        ``ReflectionPad2D`` etc. pad; ``ShapeError`` (nothing changed) where PyTorch refuses the padding for
        the input (``shape``: as given): reflect's at least the input's size, circular's more than it."""
        from .padding import padded  # (here: padding.py reads this module's axis names)

        mode = self._padding_mode
        self._check_mode_padding(shape)
        pairs = [(axis, p, p) for axis, p in ((2, padding[0]), (3, padding[1])) if p]
        xp, reads = padded(xt, pairs, mode)
        return xp, (mode, pairs, reads)

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, *spatial) -> (N, out_channels, *spatial_out): (N, C, H, W) for ``Conv2D``,
        (N, C, L) for ``Conv1D``."""
        W = self.W.data
        x, shape, plane, (Ho, Wo) = self._input_geometry(x, W)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = plane
        N, C = x.shape[0], self._in_channels
        xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W): a view; contiguous after a Conv2D (and ReLU, a pool)
        folding = None
        if (ph or pw) and self._padding_mode != "zeros":  # padded here, the windows then read it unpadded
            xt, folding = self._mode_padded(xt, shape, (ph, pw))
            ph = pw = 0
        # The bias absorbed, as in Dense: a row of ones on top of the patches meets the bias row W[0],
        # so one matrix product adds the bias and, in backward, sums its gradient.
        ones = 1 if self._bias and self._groups == 1 else 0  # (grouped layers add the bias apart)
        windows = _kernel_windows(xt, (kh, kw), (sh, sw), (ph, pw), (dh, dw))  # (C, N, Ho, Wo, kh, kw)
        patches = empty((ones + C * kh * kw, N * Ho * Wo), x.dtype)
        patches[ones:].reshape(C, kh, kw, N, Ho, Wo)[...] = windows.transpose(0, 4, 5, 1, 2, 3)
        if ones:
            patches[0] = 1
        # (the sizes and the mode kept: a backward uses its forward's)
        self._cache = (patches, x.shape, (Ho, Wo), plane, folding)
        if self._groups == 1:
            out = W.T @ patches  # (with the bias, when it has one)
        else:
            out = self._grouped_output(W[1:] if self._bias else W, patches)
            if self._bias:
                out += W[0][:, None]
        return _from_2d(out.reshape(self._out_channels, N, Ho, Wo).transpose(1, 0, 2, 3), self._rank)

    def _input_geometry(self, x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], _Plane,
                                                                   tuple[int, int]]:
        """The forward's checks of ``x: (N, in_channels, *spatial)`` and of ``W``'s shape, and its geometry:
        ``(x as (N, C, H, W), x's shape as given, the sizes as (height, width) pairs, (H_out, W_out))``;
        a 1-D layer's ``x`` viewed as (N, C, 1, L) (:func:`_as_2d`)."""
        C = self._in_channels
        rank = self._rank
        x = check_input(x, self._who, ndim=2 + rank, layout=f"(N, {C}, {_SPATIAL[rank]})", sizes={1: C},
                        dtype=W.dtype)
        if 0 in x.shape[2:]:  # padding alone would make an output of the bias (PyTorch refuses it too)
            raise ShapeError(f"{self._who}: input of shape {x.shape} has {_EMPTY[rank]}")
        plane = self._pairs_2d()
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = plane
        shape = x.shape
        x = _as_2d(x, rank)
        _, _, H, Wd = x.shape
        Hp, Wp = H + 2 * ph, Wd + 2 * pw
        if Hp < _span(kh, dh) or Wp < _span(kw, dw):
            raise ShapeError(self._too_small(shape))
        if W.shape != (C // self._groups * kh * kw + self._bias, self._out_channels):
            self._refuse_W(W)
        return x, shape, plane, (_output_size(H, kh, sh, ph, dh), _output_size(Wd, kw, sw, pw, dw))

    def _column_blocks(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, out_channels) -> (groups, rows, out_channels//groups): group g's columns, a view
        (splitting the last axis never copies, so writes go through)."""
        return matrix.reshape(matrix.shape[0], self._groups, -1).transpose(1, 0, 2)

    def _grouped_output(self, weights: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """weights: (Cg*kh*kw, F), patches: (C*kh*kw, M) -> Y: (F, M), group by group in one matmul."""
        by_group = self._column_blocks(weights).transpose(0, 2, 1)  # (G, Fg, Cg*kh*kw)
        M = patches.shape[1]  # (sizes given, not -1: M is 0 for an empty batch)
        product = np.matmul(by_group, patches.reshape(self._groups, weights.shape[0], M))  # (G, Fg, M)
        return product.reshape(self._out_channels, M)

    def _grouped_patch_gradient(self, weights: np.ndarray, g: np.ndarray) -> np.ndarray:
        """weights: (Cg*kh*kw, F), g: (F, M) -> dP as a (kh, kw, C, M) view, group by group in one matmul."""
        (kh, kw), _, _, _ = self._pairs_2d()
        G, (F, M) = self._groups, g.shape  # (sizes given, not -1: M is 0 for an empty batch)
        dpatches = np.matmul(self._column_blocks(weights), g.reshape(G, F // G, M))  # (G, Cg*kh*kw, M)
        return dpatches.reshape(self._in_channels, kh, kw, M).transpose(1, 2, 0, 3)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, out, *spatial_out) -> dx: (N, in_channels, *spatial); adds into ``W.grad``
        (unless ``W`` is frozen: ``requires_grad=False``)."""
        g = self._weight_gradient(grad_output)
        assert self._cache is not None
        _, (N, C, H, Wd), (Ho, Wo), ((kh, kw), (sh, sw), (ph, pw), (dh, dw)), folding = self._cache
        F = self._out_channels
        W = self.W.data
        weights = W[1:] if self._bias else W
        if self._groups == 1:
            # rows of the patch gradient ordered (kh, kw, C), so that each kernel offset is one block
            by_offset = weights.reshape(C, kh, kw, F).transpose(1, 2, 0, 3).reshape(kh * kw * C, F)
            dpatches = by_offset @ g
        else:
            dpatches = self._grouped_patch_gradient(weights, g)
        # col2im: add each kernel offset's gradient back onto the pixels it was read from
        if folding is None:  # zeros (or no padding): what lands on the padding is dropped
            dxt = _col2im(dpatches.reshape(kh, kw, C, N, Ho, Wo), (H, Wd), (sh, sw), (ph, pw), (dh, dw))
        else:  # onto the padded input, then each padded position's gradient onto the position it copied
            from .padding import unpadded  # (here: padding.py reads this module's axis names)

            mode, pairs, reads = folding
            dxp = _col2im(dpatches.reshape(kh, kw, C, N, Ho, Wo), (H + 2 * ph, Wd + 2 * pw), (sh, sw), (0, 0),
                          (dh, dw))
            dxt = unpadded(dxp, (C, N, H, Wd), pairs, reads, mode)
        return _from_2d(dxt.transpose(1, 0, 2, 3), self._rank)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` as :meth:`backward` does, but skip ``dx`` (a matrix product
        and the col2im): for a first layer, whose input is the data.  ``Sequential.backward_params``
        calls it.  With ``W`` frozen (``requires_grad=False``) it only checks ``grad_output``."""
        if self.W.requires_grad:
            self._weight_gradient(grad_output)
        else:
            self._checked_cache(grad_output)

    def _checked_cache(self, grad_output: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, int], _Plane,
                                                               _Folding | None]:
        """The forward's cache, after checking that ``grad_output`` fits it and that ``W`` has its shape."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        patches, (N, C, _, _), (Ho, Wo), ((kh, kw), *_), _ = cache
        W = self.W.data
        if W.shape != (C // self._groups * kh * kw + self._bias, self._out_channels):
            self._refuse_W(W)
        # the shape the layer returned: a 1-D layer's output has no height axis
        expected = (N, self._out_channels, *(Ho, Wo)[2 - self._rank:])
        check_grad_output(grad_output, f"{self._who}.backward", expected, patches.dtype)
        return cache

    def _weight_gradient(self, grad_output: np.ndarray) -> np.ndarray:
        """Check grad_output, add ``dW`` (unless ``W`` is frozen) and return the gradient as the (F, M)
        matrix ``G``."""
        patches, (N, _, _, _), (Ho, Wo), _, _ = self._checked_cache(grad_output)
        gt = _as_2d(grad_output, self._rank).transpose(1, 0, 2, 3)  # (F, N, Ho, Wo)
        g = gt.reshape(self._out_channels, N * Ho * Wo)  # a view when grad_output has our output's layout
        if not self.W.requires_grad:  # frozen: no gradient, as PyTorch computes none
            return g
        dW, overwrite = self.W.grad_target()
        if overwrite:  # the gradient is zero (as after zero_grad): write it, no weight-sized temporary
            try:
                if self._groups == 1:  # (the bias's gradient from the patches' row of ones)
                    _summed_product(patches, g, out=dW)
                else:
                    rows = dW[1:] if self._bias else dW
                    np.matmul(*self._grouped_weight_factors(patches, g), out=self._column_blocks(rows))
                    if self._bias:
                        np.add.reduce(g, axis=1, out=dW[0])
            except BaseException:  # interrupted mid-write: the gradient is still zero, say so again
                self.W.zero_grad()
                raise
        elif self._groups == 1:  # accumulate
            dW += _summed_product(patches, g)
        else:
            blocks = self._column_blocks(dW[1:] if self._bias else dW)
            blocks += np.matmul(*self._grouped_weight_factors(patches, g))
            if self._bias:
                dW[0] += np.add.reduce(g, axis=1)
        return g

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self._padding_mode == "zeros" else f"{text}, padding_mode={self._padding_mode!r}"

    def _grouped_weight_factors(self, patches: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two stacks whose product is dW's column blocks, (G, Cg*kh*kw, Fg): group g's rows of
        the patches (G, Cg*kh*kw, M) and group g's rows of ``G``, transposed (G, M, Fg)."""
        groups, M = self._groups, patches.shape[1]  # (sizes given, not -1: M is 0 for an empty batch)
        return (patches.reshape(groups, patches.shape[0] // groups, M),
                g.reshape(groups, g.shape[0] // groups, M).transpose(0, 2, 1))


class Conv2D(_Im2colConvolution):
    """2-D convolution (cross-correlation, as in PyTorch) on NCHW images, bias absorbed as in ``Dense``.

    Every output pixel is a ``Dense`` applied to the image patch under the kernel: with the
    patch flattened to ``p`` (length ``C*kh*kw``), ``y[n, :, i, j] = [1, p] @ W``.  The kernel's
    taps are ``dilation`` pixels apart, and ``groups`` splits the channels into independent
    convolutions (below), both as in PyTorch.

    Shapes:
        x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out),
        ``H_out = (H + 2*padding - dilation*(kh - 1) - 1) // stride + 1`` (likewise W_out).
        W: (in_channels//groups*kh*kw + 1, out_channels) with ``bias=True``: row 0 is the bias and
        row ``1 + (c*kh + i)*kw + j`` holds the weights of input channel ``c`` at kernel offset
        ``(i, j)``, i.e. the patch is flattened in ``(C, kh, kw)`` order, the order of PyTorch's
        ``weight.reshape(out, -1)``.  Without bias, W has no row 0.
        :attr:`kernel` is the PyTorch-shaped view ``(out, in/groups, kh, kw)`` of those rows and
        :meth:`from_kernel` builds a layer from such a kernel.

    Groups (``G = groups``, ``Cg = in_channels//G``, ``Fg = out_channels//G``): output channel ``o``
    is in group ``g = o // Fg`` and sees only the input channels ``g*Cg .. (g+1)*Cg - 1``.  W keeps
    one column per output channel, as PyTorch's kernel keeps one row: columns ``g*Fg .. (g+1)*Fg - 1``
    hold group g, their rows laid out as above with ``c`` counted within the group (``0 <= c < Cg``),
    so they multiply the patch rows of group g's input channels.  ``G = in_channels`` is a depthwise
    convolution; ``G = 1`` is the plain layout.

    Computation (``M = N*H_out*W_out`` patches; ``P``: (C*kh*kw, M) the patch matrix, im2col; with a
    bias, ``P1`` is P under a row of ones, which meets the bias row W[0] as in ``Dense``)::

        forward:   Y = W.T @ P1                   (out, M), reshaped to (N, out, H_out, W_out)
        backward:  dW += P1 @ G.T  (row 0: the bias's gradient, G summed over M),  dP = W[1:] @ G,
                   dx = col2im(dP): each patch's gradient added back where the patch came from

    With groups, each product is a stack of G products (one batched ``matmul``): group g's
    ``Cg*kh*kw`` rows of P with group g's ``Fg`` columns of W; the bias is added, and its gradient
    summed, apart.

    ``P`` is built once per forward by a strided view of the (padded) input and one copy, and kept
    for the backward.  Internally the batch axis sits after the channel axis (CNHW), so every copy
    moves whole image rows; the output is an ``(N, C, H, W)``-shaped contiguous *view* of that memory
    (``dx`` too, without padding), which NumPy handles transparently (and whose gradient is ``G``
    as a view).

    Args:
        kernel_size, stride, padding, dilation: an int or an ``(h, w)`` pair; ``padding`` on each side.
            ``padding="same"`` (stride 1: the output as large as the input, when ``dilation*(k - 1)`` is
            even) or ``"valid"`` (none), as PyTorch.
        groups: how many independent channel groups; must divide in_channels and out_channels.
        padding_mode: ``"zeros"`` (default), ``"reflect"``, ``"replicate"`` or ``"circular"``, as PyTorch's:
            the input padded by that rule (``ReflectionPad2D``'s, ...) before a convolution without padding;
            reflect needs the padding smaller than the input, circular at most its size (``ShapeError``).
        W: exact initial values of shape ``(in_channels//groups*kh*kw [+1], out)`` instead of a random draw.
        init: ``"uniform"`` (PyTorch's default: U(+-1/sqrt(fan_in)) for weights and bias, with
            ``fan_in = in_channels//groups*kh*kw``), ``"he"``, ``"glorot"``, ``"lecun"`` or ``"zeros"`` (the bias
            starts at zero except with ``"uniform"``).
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, dilation=dilation,
                         groups=groups, padding_mode=padding_mode, W=W, init=init, rng=rng, dtype=dtype)

    @classmethod
    def from_kernel(
        cls,
        kernel: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        dtype: DTypeLike | None = None,
    ) -> Conv2D:
        """A ``Conv2D`` from a PyTorch-shaped kernel ``(out, in/groups, kh, kw)`` and optional bias ``(out,)``.

        E.g. ``Conv2D.from_kernel(conv.weight.detach().numpy(), conv.bias.detach().numpy(), conv.stride,
        conv.padding, dilation=conv.dilation, groups=conv.groups, padding_mode=conv.padding_mode)``.
        """
        return cls._from_kernel(kernel, bias, stride, padding, dilation, groups, dtype, padding_mode)

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The per-sample output shape ``(out, H_out, W_out)`` for an input of ``height x width``."""
        height_out, width_out = self._checked_sizes((height, width))
        return (self.out_channels, height_out, width_out)


class Conv1D(_Im2colConvolution):
    """1-D convolution (cross-correlation, as PyTorch's ``nn.Conv1d``) on (N, C, L) sequences, bias absorbed.

    ``Conv2D``'s computation on the one-row view (N, C, 1, L) of the input with a ``1 x k`` kernel:
    every output position is a ``Dense`` applied to the window under the kernel, flattened to ``p``
    (length ``C*k``): ``y[n, :, t] = [1, p] @ W``.  Taps ``dilation`` positions apart and ``groups``
    as in ``Conv2D`` (and PyTorch).

    Shapes:
        x: (N, in_channels, L) -> y: (N, out_channels, L_out),
        ``L_out = (L + 2*padding - dilation*(k - 1) - 1) // stride + 1``.
        W: (in_channels//groups*k + 1, out_channels) with ``bias=True``: row 0 is the bias and row
        ``1 + c*k + j`` holds the weights of input channel ``c`` (counted within its group) at kernel
        offset ``j``, i.e. the window is flattened in ``(C, k)`` order, the order of PyTorch's
        ``weight.reshape(out, -1)``; column ``o`` is output channel ``o``.  Without bias, W has no row 0.
        (This is exactly ``Conv2D``'s W for the kernel ``1 x k``.)
        :attr:`kernel` is the PyTorch-shaped view ``(out, in/groups, k)`` of those rows and
        :meth:`from_kernel` builds a layer from such a kernel.

    The size options are stored as 1-tuples, as in PyTorch's ``Conv1d`` (``kernel_size == (k,)``).
    The output (and ``dx``) is an (N, C, L)-shaped view of channel-major memory, as ``Conv2D``'s.

    Args:
        kernel_size, stride, padding, dilation: an int (or a 1-tuple); ``padding`` on each side.
            ``padding="same"`` (stride 1: the output as long as the input, when ``dilation*(k - 1)`` is
            even) or ``"valid"`` (none), as PyTorch.
        groups: how many independent channel groups; must divide in_channels and out_channels.
        padding_mode: ``"zeros"`` (default), ``"reflect"``, ``"replicate"`` or ``"circular"``, as PyTorch's:
            the input padded by that rule (``ReflectionPad1D``'s, ...) before a convolution without padding;
            reflect needs the padding smaller than L, circular at most L (``ShapeError``).
        W: exact initial values of shape ``(in_channels//groups*k [+1], out)`` instead of a random draw.
        init: ``"uniform"`` (PyTorch's default: U(+-1/sqrt(fan_in)) for weights and bias, with
            ``fan_in = in_channels//groups*k``), ``"he"``, ``"glorot"``, ``"lecun"`` or ``"zeros"`` (the bias
            starts at zero except with ``"uniform"``).
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    _rank = 1
    _shown = (("stride", (1,)), ("padding", (0,)), ("dilation", (1,)))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        bias: bool = True,
        *,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, dilation=dilation,
                         groups=groups, padding_mode=padding_mode, W=W, init=init, rng=rng, dtype=dtype)

    @classmethod
    def from_kernel(
        cls,
        kernel: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        *,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        dtype: DTypeLike | None = None,
    ) -> Conv1D:
        """A ``Conv1D`` from a PyTorch-shaped kernel ``(out, in/groups, k)`` and optional bias ``(out,)``.

        E.g. ``Conv1D.from_kernel(conv.weight.detach().numpy(), conv.bias.detach().numpy(), conv.stride,
        conv.padding, dilation=conv.dilation, groups=conv.groups, padding_mode=conv.padding_mode)`` for a
        ``torch.nn.Conv1d``.
        """
        return cls._from_kernel(kernel, bias, stride, padding, dilation, groups, dtype, padding_mode)

    def output_shape(self, length: int) -> tuple[int, int]:
        """The per-sample output shape ``(out, L_out)`` for an input of length ``length``."""
        (length_out,) = self._checked_sizes((length,))
        return (self.out_channels, length_out)
