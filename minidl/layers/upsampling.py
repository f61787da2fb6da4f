"""Layers that make images larger: ``ConvTranspose2D`` (learned, bias absorbed) and ``Upsample``.

``ConvTranspose2D`` is the adjoint of ``Conv2D``: its forward is ``Conv2D``'s input gradient
(col2im: every input pixel scatters ``pixel @ kernel`` into the output) and its input gradient is
``Conv2D``'s forward (im2col of ``grad_output`` and one product).  ``Upsample`` repeats each pixel
(``"nearest"``) or interpolates between neighbours (``"bilinear"``), as PyTorch's ``nn.Upsample``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike, DTypeLike

from ..errors import ShapeError
from ..init import RNGLike, absorbed_weights, float_dtype, positive_int, switch, switch_setting
from ..layer import Layer
from ..validation import check_grad_output, check_input, native, size_arguments
from .conv import (
    _AXES,
    _EMPTY,
    _SIZE_NAMES,
    _as_2d,
    _Convolution,
    _display,
    _from_2d,
    _input_of,
    _name_in_messages,
    _on_plane,
    _Pair,
    _Plane,
    _sizes,
    _span,
    _two_sizes,
)

__all__ = ["ConvTranspose1D", "ConvTranspose2D", "Upsample"]


def _transposed_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int,
                            dilation: int) -> int:
    """Output length along one axis, as PyTorch: ``(size - 1)*s - 2p + d*(k - 1) + output_padding + 1``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def _check_output_padding(who: str, rank: int, output_padding: tuple[int, ...], stride: tuple[int, ...],
                          dilation: tuple[int, ...]) -> None:
    """``ValueError`` unless each output_padding is smaller than its stride or its dilation (as PyTorch)."""
    names = {1: ("length",), 2: ("height", "width")}[rank]
    for axis, op, s, d in zip(names, output_padding, stride, dilation, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"{who}: output_padding must be smaller than the stride or the dilation (as PyTorch), got "
                f"output_padding={_display(output_padding)} with stride={_display(stride)}, "
                f"dilation={_display(dilation)} (along the {axis})"
            )


class _TransposedConvolution(_Convolution):
    """The computation of ``ConvTranspose2D`` and ``ConvTranspose1D`` (see ``ConvTranspose2D``), on
    (N, C, H, W) arrays: a 1-D layer's input (N, C, L) is viewed as (N, C, 1, L) and its ``k``-wide
    kernel as ``1 x k``, as ``Conv1D`` does.

    ``in_channels``, ``out_channels``, ``groups`` and ``bias`` are fixed, and ``W.data`` rebound to another
    shape is refused, as ``_Convolution`` says."""

    _named = False  # (no "same" / "valid" padding, as PyTorch's transposed convolutions)
    _transposed = True  # (its layout says so: a Conv2D's state of the same W shape is refused)
    _stride_in_name = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...], padding: int | tuple[int, ...],
                 output_padding: int | tuple[int, ...], bias: bool, *, dilation: int | tuple[int, ...],
                 groups: int, W: ArrayLike | None, init: str, rng: RNGLike, dtype: DTypeLike) -> None:
        # Everything checked (and W drawn) before anything is replaced: a refused __init__ run again on a
        # built layer leaves it as it was.
        name, rank = type(self).__name__, self._rank
        geometry = self._checked_geometry(name, in_channels, out_channels, kernel_size, stride, padding, dilation,
                                          groups, named_padding=False)
        channels_in, channels_out, kernel, strides, _, dilations, count = geometry
        extra = _sizes(output_padding, "output_padding", name, 0, rank)
        _check_output_padding(name, rank, extra, strides, dilations)
        has_bias = switch_setting(name, "bias", bias)
        taps = math.prod(kernel)
        weights = absorbed_weights(
            _name_in_messages(name, channels_in, channels_out, kernel, dilations, count, strides),
            channels_in // count * taps, channels_out, bias=has_bias, W=W, init=init, rng=rng,
            dtype=float_dtype(dtype, name), init_fan_in=channels_out // count * taps, fan_out=channels_in * taps,
            layout=" " + self._weights_layout(count, has_bias),
        )
        self._start(geometry, has_bias, weights)
        self._output_padding = extra
        # the last forward: X (G, Cg, M), the input's shape on the plane (N, C, H, W), the output's (Ho, Wo)
        # and the sizes it used (a backward uses its forward's, whatever was set since)
        self._cache: tuple[np.ndarray, tuple[int, ...], tuple[int, int], _Plane] | None = None

    @property
    def output_padding(self) -> tuple[int, ...]:
        """The extra size on one side of the output, one int >= 0 per spatial axis, each smaller than its
        stride or its dilation; checked when set (against the stride and dilation, which are checked against
        it), used by the next forward (a backward uses its forward's)."""
        return self._output_padding

    @output_padding.setter
    def output_padding(self, value: int | tuple[int, ...]) -> None:
        output_padding = _sizes(value, "output_padding", type(self).__name__, 0, self._rank)
        self._check_settings(output_padding=output_padding)
        self._output_padding = output_padding

    def _check_settings(self, **changed: tuple[int, ...]) -> None:
        """``ValueError`` unless each output_padding is smaller than its stride or its dilation (as PyTorch),
        with the settings in ``changed`` in place of this layer's."""
        settings = {"output_padding": self._output_padding, "stride": self._stride, "dilation": self._dilation,
                    **changed}
        _check_output_padding(type(self).__name__, self._rank, settings["output_padding"], settings["stride"],
                              settings["dilation"])

    # ------------------------------------------------------------------ PyTorch-shaped weights
    @classmethod
    def _transposed_from_kernel(cls, kernel: ArrayLike, bias: ArrayLike | None, stride: int | tuple[int, ...],
                                padding: int | tuple[int, ...], output_padding: int | tuple[int, ...],
                                dilation: int | tuple[int, ...], groups: int,
                                dtype: DTypeLike | None) -> Any:
        who = f"{cls.__name__}.from_kernel"
        layout = "(in, out/groups, k)" if cls._rank == 1 else "(in, out/groups, kh, kw)"
        k = cls._kernel_array(kernel, who, layout, dtype)
        groups = positive_int(groups, "groups", who)
        in_channels, per_group, *sizes = k.shape
        if in_channels % groups:
            raise ValueError(f"{who}: groups must divide in_channels, got groups={groups} with a kernel "
                             f"of shape {k.shape}")
        out = per_group * groups
        # W[1 + c*taps + t, g*Fg + o] = kernel[g*Cg + c, o, t] (t the tap, row-major over the kernel's axes)
        rows = k.reshape(groups, in_channels // groups, per_group, -1).transpose(1, 3, 0, 2).reshape(-1, out)
        return cls(in_channels, out, tuple(sizes), stride, padding, output_padding,  # type: ignore[call-arg]
                   bias=bias is not None, dilation=dilation, groups=groups, W=cls._with_bias(rows, bias, who),
                   dtype=k.dtype)

    @property
    def kernel(self) -> np.ndarray:
        """PyTorch's weight ``(in, out/groups, kh, kw)`` (1-D: ``(in, out/groups, k)``).  With ``groups=1``
        a writable view of ``W.data``; with groups its axes cannot be a view of W's layout, so it is a
        read-only copy (a write raises instead of being lost): change the weights through ``W.data`` or
        :meth:`from_kernel`."""
        groups = self._groups
        rows = self.W.data[1:] if self._bias else self.W.data
        cg, fg = self._in_channels // groups, self._out_channels // groups
        k = rows.reshape(cg, -1, groups, fg).transpose(2, 0, 3, 1).reshape(self._in_channels, fg, *self._kernel_size)
        if not np.may_share_memory(k, self.W.data):
            k.flags.writeable = False
        return k

    # ------------------------------------------------------------------ geometry
    def _checked_sizes(self, sizes: tuple[Any, ...], shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """The spatial output sizes for an input's spatial ``sizes`` (of ``shape``; by default one sample's,
        for ``output_shape``, whose arguments must be ints >= 0: :func:`size_arguments`), refusing
        (``ShapeError``) what PyTorch refuses: an empty axis, an empty output.  The forward's check, so that
        ``output_shape`` refuses what it refuses, in its words."""
        if shape is None:
            sizes = size_arguments(self._who, _SIZE_NAMES[self._rank], sizes)
            shape = (1, self._in_channels, *sizes)
        rank = self._rank
        if min(sizes) < 1:  # (sizes: one per spatial axis, never empty)
            raise ShapeError(f"{self._who}: input of shape {shape} has {_EMPTY[rank]}")
        out = self._output_sizes(sizes)
        if min(out) < 1:
            axes = _AXES[rank]
            raise ShapeError(
                f"{self._who}: input of shape {shape} gives an empty output ({' x '.join(map(str, out))}) with "
                f"padding {_display(self._padding)}: expected "
                f"{' and '.join(f'{a} >= {m}' for a, m in zip(axes, self._smallest_input(), strict=True))}, got "
                f"{', '.join(f'{a}={n}' for a, n in zip(axes, sizes, strict=True))}"
            )
        return out

    def _output_sizes(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """The output's spatial sizes for an input's (one per spatial axis)."""
        return tuple(_transposed_output_size(n, k, s, p, op, d) for n, k, s, p, op, d in zip(
            sizes, self._kernel_size, self._stride, self._padding, self._output_padding, self._dilation, strict=True))

    def _smallest_input(self) -> tuple[int, ...]:
        """The smallest spatial sizes whose output has at least one position along every axis."""
        sizes = []
        for k, s, p, op, d in zip(self._kernel_size, self._stride, self._padding, self._output_padding, self._dilation,
                                  strict=True):
            cut = 2 * p - d * (k - 1) - op  # H_out = (H - 1)*s - cut + 1 >= 1  <=>  H >= 1 + ceil(cut / s)
            sizes.append(1 + max(0, -(-cut // s)))
        return tuple(sizes)

    def _pairs_2d(self) -> tuple[_Pair, _Pair, _Pair, _Pair]:
        """(kernel_size, stride, padding, dilation) as the (height, width) pairs of the computation."""
        return _on_plane(self._kernel_size, self._stride, self._padding, self._dilation)

    # ------------------------------------------------------------------ computation
    def _tap_matrix(self) -> np.ndarray:
        """(G, Cg, taps*Fg): group g's weights, row ``c``, column ``t*Fg + o`` for tap ``t`` (a view of W
        for ``groups=1``, else a small copy)."""
        rows = self.W.data[1:] if self._bias else self.W.data
        groups, cg = self._groups, self._in_channels // self._groups
        if groups == 1:
            return rows.reshape(1, cg, -1)
        taps = math.prod(self._kernel_size)
        return rows.reshape(cg, taps, groups, -1).transpose(2, 0, 1, 3).reshape(groups, cg, -1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out); 1-D: (N, in, L) -> (N, out, L_out)."""
        W = self.W.data
        C, rank = self._in_channels, self._rank
        x = check_input(x, self._who, ndim=2 + rank, layout=f"(N, {C}, {', '.join(_AXES[rank])})", sizes={1: C},
                        dtype=W.dtype)
        out = self._checked_sizes(x.shape[2:], x.shape)
        x = _as_2d(x, rank)
        N, _, H, Wd = x.shape
        F = self._out_channels
        Ho, Wo = (1, *out) if rank == 1 else out
        plane = self._pairs_2d()
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = plane
        G = self._groups
        if W.shape != (C // G * kh * kw + self._bias, F):
            self._refuse_W(W)
        Fg = F // G
        X = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(G, C // G, N * H * Wd)  # CNHW pixels
        taps = np.matmul(self._tap_matrix().transpose(0, 2, 1), X).reshape(G, kh, kw, Fg, N, H, Wd)
        # col2im into the output before its padding is cut off: (H - 1)*s + d*(k - 1) + output_padding + 1
        Hf, Wf = Ho + 2 * ph, Wo + 2 * pw
        span_h, span_w = _span(kh, dh), _span(kw, dw)
        if sh >= span_h and sw >= span_w:  # taps never overlap: one strided assignment
            full = np.zeros((G, Fg, N, max(Hf, H * sh), max(Wf, Wd * sw)), dtype=taps.dtype)
            blocks = full[..., : H * sh, : Wd * sw].reshape(G, Fg, N, H, sh, Wd, sw)  # a view
            blocks[:, :, :, :, :span_h:dh, :, :span_w:dw] = taps.transpose(0, 3, 4, 5, 1, 6, 2)
        else:
            full = np.zeros((G, Fg, N, Hf, Wf), dtype=taps.dtype)
            for i in range(kh):
                for j in range(kw):
                    top, left = i * dh, j * dw
                    full[..., top:top + sh * (H - 1) + 1:sh, left:left + sw * (Wd - 1) + 1:sw] += taps[:, i, j]
        y = full.reshape(F, N, *full.shape[3:])[:, :, ph:ph + Ho, pw:pw + Wo]
        if self._bias:
            y += W[0][:, None, None, None]
        self._cache = (X, x.shape, (Ho, Wo), plane)  # only now: a refused input leaves the layer as it was
        return _from_2d(y.transpose(1, 0, 2, 3), rank)

    def _patches(self, grad_output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Check ``grad_output`` and return the cached ``X`` (G, Cg, M) and im2col of ``grad_output``,
        ``P``: (G, kh*kw*Fg, M), ``P[g, (i*kw + j)*Fg + o, (n, h, w)] = g_padded[n, g*Fg + o,
        h*sh + i*dh, w*sw + j*dw]`` (on the plane)."""
        X, N, (H, Wd), (Ho, Wo) = self._checked(grad_output)
        F = self._out_channels
        assert self._cache is not None
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self._cache[3]  # the forward's sizes
        gt = _as_2d(grad_output, self._rank).transpose(1, 0, 2, 3)  # (F, N, Ho, Wo)
        if ph or pw:
            padded = np.zeros((F, N, Ho + 2 * ph, Wo + 2 * pw), dtype=gt.dtype)
            padded[:, :, ph:ph + Ho, pw:pw + Wo] = gt
            gt = padded
        G = self._groups
        Fg = F // G
        s0, s1, s2, s3 = gt.strides
        windows = as_strided(gt, (G, kh, kw, Fg, N, H, Wd), (Fg * s0, dh * s2, dw * s3, s0, s1, sh * s2, sw * s3),
                             writeable=False)
        return X, np.ascontiguousarray(windows).reshape(G, kh * kw * Fg, N * H * Wd)

    def _checked(self, grad_output: np.ndarray) -> tuple[np.ndarray, int, tuple[int, int], tuple[int, int]]:
        """Check ``grad_output`` against the last forward, and ``W`` against the shape the layer was built for:
        (X, N, the input's (H, W) and the output's (Ho, Wo) on the plane)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        X, (N, C, H, Wd), (Ho, Wo), ((kh, kw), *_) = cache
        F = self._out_channels
        W = self.W.data
        if W.shape != (C // self._groups * kh * kw + self._bias, F):
            self._refuse_W(W)
        expected = (N, F, Ho, Wo) if self._rank == 2 else (N, F, Wo)
        check_grad_output(grad_output, f"{self._who}.backward", expected, X.dtype)
        return X, N, (H, Wd), (Ho, Wo)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the output's shape -> dx: the input's shape; adds into ``W.grad`` (unless ``W`` is
        frozen: ``requires_grad=False``)."""
        X, P = self._patches(grad_output)
        if self.W.requires_grad:
            self._add_weight_gradient(X, P, grad_output)
        assert self._cache is not None
        N, C, H, Wd = self._cache[1]
        dX = np.matmul(self._tap_matrix(), P)  # (G, Cg, M)
        return _from_2d(dX.reshape(C, N, H, Wd).transpose(1, 0, 2, 3), self._rank)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` as :meth:`backward` does, but skip ``dx`` (a matrix product):
        for a first layer, whose input is the data.  With ``W`` frozen it only checks ``grad_output``."""
        if self.W.requires_grad:
            self._add_weight_gradient(*self._patches(grad_output), grad_output)
        else:
            self._checked(grad_output)

    def _add_weight_gradient(self, X: np.ndarray, P: np.ndarray, grad_output: np.ndarray) -> None:
        """dW[1:] (group g's columns, rows ``(c, tap)``) += X_g @ P_g.T; dW[0] += g summed over every axis
        but the channels.  Right after ``zero_grad`` the product is written straight into ``W.grad``
        (``groups=1``) instead of added."""
        dW, overwrite = self.W.grad_target()
        rows = dW[1:] if self._bias else dW
        G = self._groups
        others = (0, *range(2, grad_output.ndim))
        try:
            if G == 1 and overwrite and rows.flags.c_contiguous:
                np.matmul(X[0], P[0].T, out=rows.reshape(X.shape[1], -1))  # (Cg, taps*F) is rows' layout
            else:
                product = np.matmul(X, P.transpose(0, 2, 1))  # (G, Cg, taps*Fg): group g's (c, tap) x o
                blocks = product.reshape(G, rows.shape[0], -1).transpose(1, 0, 2).reshape(rows.shape)
                if overwrite:
                    rows[...] = blocks
                else:
                    rows += blocks
            if self._bias:
                if overwrite:
                    np.add.reduce(grad_output, axis=others, out=dW[0])
                else:
                    dW[0] += np.add.reduce(grad_output, axis=others)
        except BaseException:
            if overwrite:  # interrupted mid-write: the gradient is still zero, say so again
                self.W.zero_grad()
            raise

    def input_shape_hint(self) -> tuple[int, ...]:
        """A small valid per-sample input: ``(in_channels, *sizes)`` with each size at least 3 (2 with
        stride 2 or more) and at least the smallest input whose output is not empty."""
        return (self.in_channels, *(max(m, 3 if s == 1 else 2) for m, s in zip(self._smallest_input(), self.stride,
                                                                                strict=True)))


class ConvTranspose2D(_TransposedConvolution):
    """2-D transposed convolution on NCHW images, as PyTorch's ``nn.ConvTranspose2d``, bias absorbed.

    Input pixel ``(h, w)`` of channel ``c`` adds ``x[n, c, h, w] * kernel[c, :, i, j]`` to output pixel
    ``(h*stride - padding + i*dilation, w*stride - padding + j*dilation)`` for every kernel tap
    ``(i, j)``; what lands outside the output (on the cut-off ``padding``) is dropped, and the bias is
    added to every output pixel.  This is the adjoint of a ``Conv2D`` with the same kernel, stride,
    padding, dilation and groups (its ``in_channels`` being our ``out_channels``): our forward is its
    ``dx``, our ``dx`` its forward (cut to ``H x W``).

    Shapes:
        x: (N, in_channels, H, W) -> y: (N, out_channels, H_out, W_out),
        ``H_out = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1`` (likewise W_out).
        W: (in_channels//groups*kh*kw + 1, out_channels) with ``bias=True``: row 0 is the bias and row
        ``1 + (c*kh + i)*kw + j``, column ``o`` holds the weight from input channel ``c`` (counted
        within its group) to output channel ``o`` at tap ``(i, j)``: ``Conv2D``'s layout (one column per
        output channel, rows in ``(C, kh, kw)`` order), so PyTorch's ``weight[c, o % Fg, i, j]`` sits
        at ``W[1 + ((c % Cg)*kh + i)*kw + j, o]``.  Without bias, W has no row 0.
        :attr:`kernel` is PyTorch's ``(in, out/groups, kh, kw)`` weight and :meth:`from_kernel` builds
        a layer from one.

    Groups (``G = groups``, ``Cg = in_channels//G``, ``Fg = out_channels//G``): input channels
    ``g*Cg .. (g+1)*Cg - 1`` feed only output channels ``g*Fg .. (g+1)*Fg - 1``, the columns of group g.

    Computation (``M = N*H*W`` input pixels; ``X``: (Cg, M) per group; ``A``: (Cg, kh*kw*Fg) per group,
    group g's columns of ``W[1:]`` with the rows' ``(kh, kw)`` moved next to the columns)::

        forward:   T = A.T @ X       (kh*kw*Fg, M): every pixel's contribution at every tap
                   y = col2im(T) + W[0]   (one strided add per tap, on the whole batch)
        backward:  P = im2col(g)      (kh*kw*Fg, M): g at the positions each pixel was sent to
                   dx = A @ P,  dA += X @ P.T,  dW[0] += g summed over (N, H_out, W_out)

    ``in_channels``, ``out_channels``, ``groups`` and ``bias`` are fixed (``W`` is shaped for them): setting
    another value is refused (``ValueError``), as is ``W.data`` rebound to another shape (``ShapeError`` at the
    next forward or backward).

    Python loops run only over the ``kh*kw`` taps of the forward's col2im (none when the stride is at
    least the dilated kernel, e.g. k=2, stride=2: then one strided assignment).  The output and ``dx``
    are ``(N, C, H, W)``-shaped views of channel-major (CNHW) memory, as ``Conv2D``'s.

    Args:
        kernel_size, stride, padding, dilation: an int or an ``(h, w)`` pair.
        output_padding: an int or pair added to one side of the output, to pick among the sizes
            that a ``Conv2D`` with this stride maps to the same ``H``; must be smaller than the stride
            or the dilation (per axis), as PyTorch requires.
        groups: how many independent channel groups; must divide in_channels and out_channels.
        W: exact initial values of shape ``(in_channels//groups*kh*kw [+1], out_channels)``.
        init: ``"uniform"`` (PyTorch's default: U(+-1/sqrt(fan_in)) for weights and bias), ``"he"``,
            ``"glorot"``, ``"lecun"`` or ``"zeros"`` (the bias starts at zero except with ``"uniform"``).  Fans as
            PyTorch computes them for its ``(in, out/groups, kh, kw)`` weight: ``fan_in =
            out_channels//groups*kh*kw`` (not the rows of W), ``fan_out = in_channels*kh*kw``.
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    _shown = (("stride", (1, 1)), ("padding", (0, 0)), ("output_padding", (0, 0)), ("dilation", (1, 1)))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, bias,
                         dilation=dilation, groups=groups, W=W, init=init, rng=rng, dtype=dtype)

    @classmethod
    def from_kernel(
        cls,
        kernel: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        dtype: DTypeLike | None = None,
    ) -> ConvTranspose2D:
        """A layer from PyTorch's weight ``(in, out/groups, kh, kw)`` and optional bias ``(out,)``, e.g.
        ``ConvTranspose2D.from_kernel(t.weight.detach().numpy(), t.bias.detach().numpy(), t.stride,
        t.padding, t.output_padding, dilation=t.dilation, groups=t.groups)``."""
        layer: ConvTranspose2D = cls._transposed_from_kernel(kernel, bias, stride, padding, output_padding,
                                                             dilation, groups, dtype)
        return layer

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The per-sample output shape ``(out, H_out, W_out)`` for an input of ``height x width``; ``ShapeError``
        (the forward's) for sizes the forward refuses: no pixels, an empty output."""
        h, w = self._checked_sizes((height, width))
        return (self._out_channels, h, w)


class ConvTranspose1D(_TransposedConvolution):
    """1-D transposed convolution on (N, C, L) sequences, as PyTorch's ``nn.ConvTranspose1d``, bias
    absorbed: ``ConvTranspose2D``'s computation on the sequence viewed as an image one row high, with a
    ``1 x k`` kernel (see ``ConvTranspose2D`` for the formulas).  The adjoint of a ``Conv1D`` with the same
    kernel, stride, padding, dilation and groups: a learned upsampling of sequences (a decoder's).

    Shapes:
        x: (N, in_channels, L) -> y: (N, out_channels, L_out),
        ``L_out = (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
        W: (in_channels//groups*k + 1, out_channels) with ``bias=True``: row 0 is the bias and row
        ``1 + c*k + i``, column ``o`` the weight from input channel ``c`` (within its group) to output
        channel ``o`` at tap ``i``: PyTorch's ``weight[c, o % Fg, i]``.  :attr:`kernel` is PyTorch's
        ``(in, out/groups, k)`` weight and :meth:`from_kernel` builds a layer from one.

    Args: as ``ConvTranspose2D``'s, each size one int (or a 1-tuple).
    """

    _rank = 1
    _shown = (("stride", (1,)), ("padding", (0,)), ("output_padding", (0,)), ("dilation", (1,)))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] = 0,
        output_padding: int | tuple[int] = 0,
        bias: bool = True,
        *,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, bias,
                         dilation=dilation, groups=groups, W=W, init=init, rng=rng, dtype=dtype)

    @classmethod
    def from_kernel(
        cls,
        kernel: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] = 0,
        output_padding: int | tuple[int] = 0,
        *,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        dtype: DTypeLike | None = None,
    ) -> ConvTranspose1D:
        """A layer from PyTorch's weight ``(in, out/groups, k)`` and optional bias ``(out,)``, e.g. for a
        ``torch.nn.ConvTranspose1d`` ``t``: ``ConvTranspose1D.from_kernel(t.weight.detach().numpy(),
        t.bias.detach().numpy(), t.stride, t.padding, t.output_padding, dilation=t.dilation, groups=t.groups)``."""
        layer: ConvTranspose1D = cls._transposed_from_kernel(kernel, bias, stride, padding, output_padding,
                                                             dilation, groups, dtype)
        return layer

    def output_shape(self, length: int) -> tuple[int, int]:
        """The per-sample output shape ``(out, L_out)`` for an input of length ``length``; ``ShapeError`` (the
        forward's) for lengths the forward refuses: 0, an empty output."""
        (n,) = self._checked_sizes((length,))
        return (self._out_channels, n)


def _linear_weights(size: int, out: int, ratio: float, dtype: np.dtype, align_corners: bool = False) -> np.ndarray:
    """(out, size): row ``o`` interpolates output ``o`` from the input, as PyTorch's linear modes: source
    ``max(0, (o + 0.5) * ratio - 0.5)`` (``align_corners=False``; ``ratio`` input pixels per output pixel,
    ``1/scale``) or ``o * (size - 1)/(out - 1)`` (``True``: the corner pixels' centres meet), between
    ``floor`` of it and the next pixel (the last pixel repeated at the end)."""
    if align_corners:
        source = np.arange(out) * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        source = np.maximum(ratio * (np.arange(out) + 0.5) - 0.5, 0.0)
    low = np.minimum(source.astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = source - low
    weights = np.zeros((out, size))
    np.add.at(weights, (np.arange(out), low), 1.0 - frac)
    np.add.at(weights, (np.arange(out), high), frac)
    return weights.astype(dtype)


def _nearest_index(size: int, out: int) -> np.ndarray:
    """(out,) the pixel each output copies, PyTorch's nearest index ``min(floor(o * size/out), size - 1)``,
    computed in float32 as PyTorch's ``nearest_idx`` computes it, whatever the data's dtype (at rounding
    edges, e.g. 47 * 3/141, float32 and exact arithmetic pick different pixels)."""
    ratio = np.float32(size) / np.float32(out)
    return np.minimum(np.floor(np.arange(out, dtype=np.float32) * ratio).astype(np.int64), size - 1)


def _scatter_add(g: np.ndarray, index: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The adjoint of ``take(x, index, axis)``: ``g`` added back into ``size`` slots along ``axis``."""
    out = np.zeros((*g.shape[:axis], size, *g.shape[axis + 1:]), dtype=g.dtype)
    np.add.at(np.moveaxis(out, axis, 0), index, np.moveaxis(g, axis, 0))  # (through views: into out)
    return out


#: An ``Upsample``'s settings, checked: (scale_factor, size, mode, align_corners), one of the first two None.
_Settings = tuple["_Pair | None", "_Pair | None", str, "bool | None"]

#: What an ``Upsample`` forward used, kept for its backward: mode, output height and width, and bilinear
#: (A_h, A_w), or nearest to a size the (rows, columns) copied, or (None, None) for nearest by whole blocks.
_Used = tuple[str, int, int, "np.ndarray | None", "np.ndarray | None"]


class Upsample(Layer):
    """Enlarge NCHW images by integer factors, or resize them to a size, as PyTorch's ``nn.Upsample``.

    Shapes: x: (N, C, H, W) -> y: (N, C, sh*H, sw*W), ``(sh, sw) = scale_factor``, or (N, C, Ho, Wo) with
    ``size=(Ho, Wo)``.  No parameters.

    ``mode="nearest"``: ``y[n, c, r, q] = x[n, c, r // sh, q // sw]`` (each pixel repeated as an
    ``sh x sw`` block: one broadcast copy); backward: ``dx`` is the sum of ``g`` over each block.

    ``mode="bilinear"``: ``y = A_h @ x @ A_w.T`` per image, with ``A_h``: (sh*H, H) the interpolation
    matrix of one axis (two weights per row: output ``r`` reads source ``max(0, (r + 0.5)/sh - 0.5)``
    with ``align_corners=False``, PyTorch's default, or ``r * (H - 1)/(sh*H - 1)`` with ``True``, between
    its floor and the next pixel, clamped at the edge); backward: ``dx = A_h.T @ g @ A_w``.  The
    matrices are dense (``sh*H x H``): fine for the image sizes this framework is for, quadratic in the
    image side.

    Like the pools it does not refuse NaN/inf (no pass over the data).  An input laid out
    contiguously channel-major (a strided ``Conv2D``'s output) gives a channel-major output, for the
    next ``Conv2D``; any other layout an NCHW one.

    ``size=(Ho, Wo)`` instead of ``scale_factor``: any output size (smaller too).  Bilinear uses ``Ho/H`` in
    place of the factor; nearest copies row ``min(floor(r * H / Ho), H - 1)`` (PyTorch's pixel) by index,
    and its backward adds each copy's gradient back (``np.add.at``).

    The four settings may be set later: checked as the constructor checks them (nothing changed when
    refused), used by the next forward, while a backward uses its forward's.  Setting ``scale_factor``
    or ``size`` to a value makes the other None (the last one set wins); ``align_corners`` only with
    ``"bilinear"``.

    Args:
        scale_factor: an int >= 1 or an ``(h, w)`` pair of them (fractional factors are not supported:
            give ``size``).
        size: keyword-only, instead of ``scale_factor``: the output's ``(Ho, Wo)``, or one int for both.
        mode: ``"nearest"`` or ``"bilinear"``.
        align_corners: only for ``"bilinear"``: ``None`` or ``False`` (pixels as squares, PyTorch's
            default), or ``True`` (the corners' pixel centres map onto each other).
    """

    single_input = True  # (a Stack hands it the sequence alone)

    MODES = ("nearest", "bilinear")

    def __init__(self, scale_factor: int | tuple[int, int] | None = None, mode: str = "nearest",
                 align_corners: bool | None = None, *, size: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self._scale_factor, self._size, self._mode, self._align_corners = self._checked(
            scale_factor, size, mode, align_corners)
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._used: _Used | None = None  # what the last forward used, for its backward
        # bilinear's interpolation matrices (read-only), kept while their key (sizes, ratios, corners,
        # dtype) stays the same: a forward of the same size builds none; not pickled or deep-copied
        self._linear: tuple[tuple[object, ...], np.ndarray, np.ndarray] | None = None

    @classmethod
    def _checked(cls, scale_factor: int | tuple[int, int] | None, size: int | tuple[int, int] | None, mode: str,
                 align_corners: bool | None, setting: str | None = None) -> _Settings:
        """The four settings checked and normalised (pairs of ints, a bool), by the constructor (``setting``
        None) or by the setter of ``setting`` (the others as they are), whose advice ends the messages of
        the rules between two settings: ``ValueError`` (``TypeError`` for a non-bool ``align_corners``)."""
        if (scale_factor is None) == (size is None):
            advice = ""
            if setting is not None:  # a setter's None, the other None too
                other = "size" if setting == "scale_factor" else "scale_factor"
                advice = f": set {other} to a value instead (setting one of them makes the other None)"
            raise ValueError("Upsample: give either scale_factor or size (as PyTorch), got "
                             f"scale_factor={scale_factor!r} and size={size!r}{advice}")
        factors = None if scale_factor is None else _two_sizes(scale_factor, "scale_factor", "Upsample", 1)
        sizes = None if size is None else _two_sizes(size, "size", "Upsample", 1)
        if not isinstance(mode, str) or mode not in cls.MODES:
            raise ValueError(f"Upsample: mode must be one of {cls.MODES}, got {mode!r}")
        if align_corners is not None and mode == "nearest":
            todo = {"mode": "set align_corners = None first", "align_corners": "set mode = 'bilinear' first"}
            raise ValueError("Upsample: align_corners can only be set with mode='bilinear' (as PyTorch), got "
                             f"align_corners={align_corners!r} with mode='nearest': "
                             f"{todo.get(setting or '', 'leave align_corners None for nearest')}")
        corners = None if align_corners is None else switch(align_corners, "align_corners", "Upsample")
        return factors, sizes, mode, corners

    # ------------------------------------------------------------------ settings (checked when set)
    # Each may be set after construction: checked as the constructor checks it (nothing changed when
    # refused), used by the next forward, while a backward uses its forward's (kept in _used).

    @property
    def scale_factor(self) -> _Pair | None:
        """The ``(sh, sw)`` factors, ints >= 1 (an int sets both), or None when ``size`` is given; set to a
        value, ``size`` becomes None; set to None only while ``size`` has a value."""
        return self._scale_factor

    @scale_factor.setter
    def scale_factor(self, value: int | tuple[int, int] | None) -> None:
        settings = self._checked(value, self._size if value is None else None, self._mode, self._align_corners,
                                 "scale_factor")
        self._scale_factor, self._size = settings[:2]

    @property
    def size(self) -> _Pair | None:
        """The output's ``(Ho, Wo)``, ints >= 1 (an int sets both), or None when ``scale_factor`` is given;
        set to a value, ``scale_factor`` becomes None; set to None only while ``scale_factor`` has one."""
        return self._size

    @size.setter
    def size(self, value: int | tuple[int, int] | None) -> None:
        settings = self._checked(self._scale_factor if value is None else None, value, self._mode,
                                 self._align_corners, "size")
        self._scale_factor, self._size = settings[:2]

    @property
    def mode(self) -> str:
        """``"nearest"`` or ``"bilinear"``; ``"nearest"`` is refused while ``align_corners`` is not None."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = self._checked(self._scale_factor, self._size, value, self._align_corners, "mode")[2]

    @property
    def align_corners(self) -> bool | None:
        """None, or True/False with ``mode="bilinear"`` only (None reads as False, PyTorch's default)."""
        return self._align_corners

    @align_corners.setter
    def align_corners(self, value: bool | None) -> None:
        self._align_corners = self._checked(self._scale_factor, self._size, self._mode, value, "align_corners")[3]

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled when its settings were plain attributes
        and its forward kept only ``_weights`` (its backward then read the settings)."""
        state = dict(state)
        state.setdefault("_linear", None)  # (pickled before the matrices were kept)
        if "scale_factor" in state:  # (pickled before the settings became checked properties)
            for name in ("scale_factor", "size", "mode", "align_corners"):
                state["_" + name] = state.pop(name)
            weights, shape = state.pop("_weights", None), state.get("_shape")
            if shape is not None:  # what that forward used, as its backward read it
                Ho, Wo = state["_size"] or (state["_scale_factor"][0] * shape[2], state["_scale_factor"][1] * shape[3])
                state["_used"] = (state["_mode"], Ho, Wo, *(weights or (None, None)))
            else:
                state["_used"] = None
        self.__dict__.update(state)

    def __getstate__(self) -> dict[str, Any]:
        """Pickling and ``copy.deepcopy``: the layer's state but bilinear's kept matrices (made again when
        needed; the last forward's, for its backward, are in ``_used``)."""
        state = super().__getstate__()
        if state.get("_linear") is not None:
            state = {**state, "_linear": None}
        return state

    def _linear_matrices(self, H: int, Ho: int, rh: float, W: int, Wo: int, rw: float, corners: bool,
                         dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear's ``(A_h, A_w)``: (Ho, H) and (Wo, W), read-only, built once per key and kept."""
        key = (H, Ho, rh, W, Wo, rw, corners, dtype)
        kept = self._linear
        if kept is None or kept[0] != key:
            a_h, a_w = _linear_weights(H, Ho, rh, dtype, corners), _linear_weights(W, Wo, rw, dtype, corners)
            a_h.setflags(write=False)
            a_w.setflags(write=False)
            kept = self._linear = (key, a_h, a_w)
        return kept[1], kept[2]

    @property
    def _who(self) -> str:
        return f"Upsample({self._shown_size()}, mode={self._mode!r}{self._shown_corners()})"

    def _shown_size(self) -> str:
        """``scale_factor=2`` or ``size=(8, 12)``, whichever is set (a pair of equal ints as one)."""
        name, sizes = ("scale_factor", self._scale_factor) if self._scale_factor is not None else ("size", self._size)
        assert sizes is not None
        h, w = sizes
        return f"{name}={h if h == w else (h, w)}"

    def _shown_corners(self) -> str:
        return "" if self._align_corners is None else f", align_corners={self._align_corners}"

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(sh*height, sw*width)``, or ``size`` (with the current settings: the next forward's); an empty
        input is refused as the forward refuses it (``ShapeError``)."""
        h, w = sizes = size_arguments(self._who, _SIZE_NAMES[2], (height, width))
        return self._output_size(h, w, sizes)

    def _output_size(self, height: int, width: int, shape: tuple[int, ...]) -> tuple[int, int]:
        """The output's ``(Ho, Wo)`` for an input of ``height x width`` (ints), of ``shape`` (N, C, H, W) in a
        forward, ``(H, W)`` in ``output_shape`` (its message then names the sizes: it knows no channels);
        ``ShapeError`` if it has no pixels.  The forward's check: output_shape refuses what it refuses."""
        if height == 0 or width == 0:
            raise ShapeError(f"{self._who}: input of {_input_of(shape, 2)} has {_EMPTY[2]}")
        if self._size is not None:
            return self._size
        sh, sw = self._scale_factor  # type: ignore[misc]
        return sh * height, sw * width

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> (N, C, sh*H, sw*W), or (N, C, Ho, Wo) with ``size``."""
        x = check_input(x, self._who, ndim=4, layout="(N, C, H, W)", finite=False)
        x = native(x)  # (e.g. read from a file: the output, and so grad_output, are native)
        H, W = x.shape[2:]
        factors, mode = self._scale_factor, self._mode  # (its backward uses them, kept in _used, whatever is set)
        Ho, Wo = self._output_size(H, W, x.shape)
        channel_major = x.transpose(1, 0, 2, 3).flags.c_contiguous and not x.flags.c_contiguous
        xt = x.transpose(1, 0, 2, 3) if channel_major else x  # work in the input's memory order
        a_h: np.ndarray | None = None
        a_w: np.ndarray | None = None
        if mode == "nearest" and factors is not None:  # whole blocks: one broadcast copy
            sh, sw = factors
            blocks = np.broadcast_to(xt[:, :, :, None, :, None], (*xt.shape[:3], sh, W, sw))
            y = blocks.reshape(*xt.shape[:2], Ho, Wo) if (sh, sw) != (1, 1) else xt.copy()  # (never a view of x)
        elif mode == "nearest":  # to a size: rows, then columns, gathered (a NaN/inf stays in its own pixels)
            a_h, a_w = _nearest_index(H, Ho), _nearest_index(W, Wo)
            y = np.take(np.take(xt, a_h, axis=2), a_w, axis=3)
        else:
            corners = bool(self._align_corners)
            # source pixels per output pixel: PyTorch's 1/scale_factor when it is given, else input/output
            rh, rw = (1.0 / factors[0], 1.0 / factors[1]) if factors is not None else (H / Ho, W / Wo)
            a_h, a_w = self._linear_matrices(H, Ho, rh, W, Wo, rw, corners, x.dtype)
            rows = xt.reshape(-1, W) @ a_w.T  # (.. * H, Wo)
            y = np.matmul(a_h, rows.reshape(-1, H, Wo)).reshape(*xt.shape[:2], Ho, Wo)
        self._shape, self._used = x.shape, (mode, Ho, Wo, a_h, a_w)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        return y.transpose(1, 0, 2, 3) if channel_major else y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, C, sh*H, sw*W) or (N, C, Ho, Wo), the last forward's -> dx: (N, C, H, W)."""
        shape, used = self._shape, self._used
        self._require_cache(used)  # (set with shape; a fit that returned lets go of bilinear's weights in it)
        assert shape is not None and used is not None
        N, C, H, W = shape
        mode, Ho, Wo, a_h, a_w = used
        check_grad_output(grad_output, f"{self._who}.backward", (N, C, Ho, Wo), self._dtype)
        if a_h is None or a_w is None:  # nearest by whole blocks: each block's sum, its rows first, then its columns
            sh, sw = Ho // H, Wo // W
            g = grad_output.reshape(N, C, H, sh, Wo)  # splitting an axis: a view of a C-ordered g
            rows = g[:, :, :, 0].copy() if sh > 1 else g[:, :, :, 0]
            for i in range(1, sh):
                rows += g[:, :, :, i]
            blocks = rows.reshape(N, C, H, W, sw)
            dx = blocks[..., 0].copy()  # (strided adds: 4x faster than g.reshape(...).sum(axis=(3, 5)))
            for j in range(1, sw):
                dx += blocks[..., j]
            return dx
        if mode == "nearest":  # to a size: each copied pixel's gradient added back, columns then rows
            return _scatter_add(_scatter_add(grad_output, a_w, W, 3), a_h, H, 2)
        rows = np.matmul(a_h.T, grad_output.reshape(N * C, Ho, Wo))  # (N*C, H, Wo)
        return (rows.reshape(-1, Wo) @ a_w).reshape(N, C, H, W)

    def extra_repr(self) -> str:
        size = f"scale_factor={self._scale_factor}" if self._scale_factor is not None else f"size={self._size}"
        return f"{size}, mode={self._mode!r}{self._shown_corners()}"
