"""``Conv2D``: a 2-D convolution computed as a ``Dense`` over image patches (im2col), bias absorbed."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from numpy.typing import ArrayLike, DTypeLike

from ..errors import DTypeError, ShapeError
from ..init import RNGLike, absorbed_weights, float_dtype, positive_int, switch
from ..layer import Layer
from ..parameter import Parameter
from ..validation import check_grad_output, check_input

__all__ = ["Conv2D"]


def _pair(value: int | tuple[int, int], name: str, who: str, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 2)`` as is; refuse non-ints and values below ``minimum``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(
        not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum for v in pair
    ):
        raise ValueError(f"{who}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length along one axis, as PyTorch: ``(size + 2p - d*(k - 1) - 1) // s + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _span(kernel: int, dilation: int) -> int:
    """How many input pixels a kernel dilated by ``dilation`` covers along one axis."""
    return dilation * (kernel - 1) + 1


class _Convolution(Layer):
    """What ``Conv2D`` and ``ConvTranspose2D`` share: the checked geometry (channels, kernel, stride,
    padding, dilation, groups), PyTorch-shaped kernels and biases read by ``from_kernel``, the bias
    row and the ``repr``.  Subclasses compute."""

    W: Parameter
    bias: bool
    #: the pair-valued options shown by ``repr`` when not at their default, in order
    _shown: tuple[tuple[str, tuple[int, int]], ...] = (("stride", (1, 1)), ("padding", (0, 0)),
                                                       ("dilation", (1, 1)))

    def _set_geometry(self, who: str, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                      stride: int | tuple[int, int], padding: int | tuple[int, int],
                      dilation: int | tuple[int, int], groups: int) -> None:
        self.in_channels = positive_int(in_channels, "in_channels", who)
        self.out_channels = positive_int(out_channels, "out_channels", who)
        self.kernel_size = _pair(kernel_size, "kernel_size", who, 1)
        self.stride = _pair(stride, "stride", who, 1)
        self.padding = _pair(padding, "padding", who, 0)
        self.dilation = _pair(dilation, "dilation", who, 1)
        self.groups = positive_int(groups, "groups", who)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{who}: groups must divide both in_channels and out_channels, got groups={self.groups} "
                f"with in_channels={self.in_channels}, out_channels={self.out_channels}"
            )

    @staticmethod
    def _kernel_array(kernel: ArrayLike, who: str, layout: str, dtype: DTypeLike | None) -> np.ndarray:
        """A PyTorch-shaped 4-D kernel (``layout`` in words) as a real array of ``dtype`` (by default its
        own floating dtype, else float64), or the error naming ``who``."""
        k = np.asarray(kernel)
        if k.dtype.kind not in "iuf":  # as W=...: no strings, no complex numbers losing a part
            raise DTypeError(f"{who}: the kernel must hold real numbers, got dtype {k.dtype}")
        k = k.astype(dtype if dtype is not None else k.dtype if k.dtype.kind == "f" else np.float64, copy=False)
        if k.ndim != 4:
            raise ShapeError(f"{who}: expected a kernel of shape {layout}, got {k.shape}")
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
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"]
        parts += [f"{name}={getattr(self, name)}" for name, default in self._shown if getattr(self, name) != default]
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if not self.bias:
            parts.append("bias=False")
        return ", ".join(parts)


class Conv2D(_Convolution):
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

    Computation (``M = N*H_out*W_out`` patches; ``P``: (C*kh*kw, M) the patch matrix, im2col)::

        forward:   Y = W[1:].T @ P + W[0]         (out, M), reshaped to (N, out, H_out, W_out)
        backward:  dW[1:] += P @ G.T,  dW[0] += G.sum(over M),  dP = W[1:] @ G,
                   dx = col2im(dP): each patch's gradient added back where the patch came from

    With groups, each product is a stack of G products (one batched ``matmul``): group g's
    ``Cg*kh*kw`` rows of P with group g's ``Fg`` columns of W.

    ``P`` is built once per forward by a strided view of the (padded) input and one copy, and kept
    for the backward.  Internally the batch axis sits after the channel axis (CNHW), so every copy
    moves whole image rows; the output (and ``dx``) is an ``(N, C, H, W)``-shaped *view* of that
    memory, which NumPy handles transparently.

    Args:
        kernel_size, stride, padding, dilation: an int or an ``(h, w)`` pair; zero padding on each side.
        groups: how many independent channel groups; must divide in_channels and out_channels.
        W: exact initial values of shape ``(in_channels//groups*kh*kw [+1], out)`` instead of a random draw.
        init: ``"uniform"`` (PyTorch's default: U(+-1/sqrt(fan_in)) for weights and bias, with
            ``fan_in = in_channels//groups*kh*kw``), ``"he"``, ``"glorot"`` or ``"zeros"`` (the bias
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
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        self._set_geometry("Conv2D", in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.bias = switch(bias, "bias", "Conv2D")
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        channels = "in_channels//groups" if self.groups > 1 else "in_channels"
        self.W = Parameter(absorbed_weights(
            self._who, fan_in, self.out_channels, bias=self.bias, W=W, init=init, rng=rng,
            dtype=float_dtype(dtype, "Conv2D"), fan_out=self.out_channels * kh * kw,
            layout=f" ({channels}*kh*kw{' + 1' if self.bias else ''}, out_channels)",
        ))
        self._cache: tuple[np.ndarray, tuple[int, ...], tuple[int, int]] | None = None

    # ------------------------------------------------------------------ PyTorch-shaped views
    @classmethod
    def from_kernel(
        cls,
        kernel: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        *,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        dtype: DTypeLike | None = None,
    ) -> Conv2D:
        """A ``Conv2D`` from a PyTorch-shaped kernel ``(out, in/groups, kh, kw)`` and optional bias ``(out,)``.

        E.g. ``Conv2D.from_kernel(conv.weight.detach().numpy(), conv.bias.detach().numpy(), conv.stride,
        conv.padding, dilation=conv.dilation, groups=conv.groups)``.
        """
        who = "Conv2D.from_kernel"
        k = cls._kernel_array(kernel, who, "(out, in/groups, kh, kw)", dtype)
        groups = positive_int(groups, "groups", who)
        out, channels_per_group, kh, kw = k.shape
        rows = cls._with_bias(k.reshape(out, -1).T, bias, who)
        return cls(channels_per_group * groups, out, (kh, kw), stride, padding, bias=bias is not None,
                   dilation=dilation, groups=groups, W=rows, dtype=k.dtype)

    @property
    def kernel(self) -> np.ndarray:
        """The weights as PyTorch shapes them, (out, in/groups, kh, kw): a view of ``W.data`` (writable)."""
        rows = self.W.data[1:] if self.bias else self.W.data
        return rows.T.reshape(self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    # ------------------------------------------------------------------ computation
    @property
    def _who(self) -> str:
        kh, kw = self.kernel_size
        k = kh if kh == kw else (kh, kw)
        options = ""
        if self.dilation != (1, 1):
            dh, dw = self.dilation
            options += f", dilation={dh if dh == dw else (dh, dw)}"
        if self.groups != 1:
            options += f", groups={self.groups}"
        return f"Conv2D({self.in_channels} -> {self.out_channels}, k={k}{options})"

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The per-sample output shape ``(out, H_out, W_out)`` for an input of ``height x width``."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (self.out_channels, _output_size(height, kh, sh, ph, dh), _output_size(width, kw, sw, pw, dw))

    def _too_small(self, shape: tuple[int, ...]) -> str:
        """The message for an input of ``shape`` whose padded image is smaller than the kernel's span."""
        (kh, kw), (dh, dw), (ph, pw) = self.kernel_size, self.dilation, self.padding
        span_h, span_w = _span(kh, dh), _span(kw, dw)
        dilated = "" if (dh, dw) == (1, 1) else f" dilated by {self.dilation} (spanning {(span_h, span_w)})"
        return (
            f"{self._who}: input of shape {shape} is smaller than the kernel {(kh, kw)}{dilated} "
            f"(with padding {self.padding}): expected H >= {max(1, span_h - 2 * ph)} and "
            f"W >= {max(1, span_w - 2 * pw)}, got H={shape[2]}, W={shape[3]}"
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out)."""
        W = self.W.data
        C = self.in_channels
        x = check_input(x, self._who, ndim=4, layout=f"(N, {C}, H, W)", sizes={1: C}, dtype=W.dtype)
        N, _, H, Wd = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        Hp, Wp = H + 2 * ph, Wd + 2 * pw
        if H == 0 or Wd == 0:  # padding alone would make an output of the bias (PyTorch refuses it too)
            raise ShapeError(f"{self._who}: input of shape {x.shape} has no pixels (height or width 0)")
        if Hp < _span(kh, dh) or Wp < _span(kw, dw):
            raise ShapeError(self._too_small(x.shape))
        _, Ho, Wo = self.output_shape(H, Wd)
        xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W): a view; contiguous when x came from a Conv2D
        if (sh, sw) == (1, 1):
            # "Wide rows": lay each padded image out flat (rows of Wp pixels, dw*(kw - 1) spare zeros
            # at the end).  Patch offset (i, j) of output pixel (r, q) is then flat pixel
            # r*Wp + q + i*dh*Wp + j*dw, so for every offset the patches of all output rows, taken Wp
            # wide, are ONE contiguous run: im2col and col2im copy long runs.  Columns q >= Wo
            # are junk computed in passing and dropped from the output (and get zero gradient).
            flat = np.zeros((C, N, Hp * Wp + dw * (kw - 1)), dtype=x.dtype)
            flat[:, :, : Hp * Wp].reshape(C, N, Hp, Wp)[:, :, ph:ph + H, pw:pw + Wd] = xt
            sc, sn, sp = flat.strides
            runs = as_strided(flat, (C, kh, kw, N, Ho * Wp), (sc, dh * Wp * sp, dw * sp, sn, sp), writeable=False)
            patches = np.ascontiguousarray(runs).reshape(C * kh * kw, N * Ho * Wp)
            width = Wp
        else:
            if ph or pw:
                padded = np.zeros((C, N, Hp, Wp), dtype=x.dtype)
                padded[:, :, ph:ph + H, pw:pw + Wd] = xt
                xt = padded
            windows = sliding_window_view(xt, (_span(kh, dh), _span(kw, dw)), axis=(2, 3))
            windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (C, N, Ho, Wo, kh, kw)
            patches = np.ascontiguousarray(windows.transpose(0, 4, 5, 1, 2, 3)).reshape(C * kh * kw, -1)
            width = Wo
        self._cache = (patches, x.shape, (Ho, Wo))
        weights = W[1:] if self.bias else W
        out = weights.T @ patches if self.groups == 1 else self._grouped_output(weights, patches)
        if self.bias:
            out += W[0][:, None]
        return out.reshape(self.out_channels, N, Ho, width)[..., :Wo].transpose(1, 0, 2, 3)

    def _column_blocks(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, out_channels) -> (groups, rows, out_channels//groups): group g's columns, a view
        (splitting the last axis never copies, so writes go through)."""
        return matrix.reshape(matrix.shape[0], self.groups, -1).transpose(1, 0, 2)

    def _grouped_output(self, weights: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """weights: (Cg*kh*kw, F), patches: (C*kh*kw, M) -> Y: (F, M), group by group in one matmul."""
        by_group = self._column_blocks(weights).transpose(0, 2, 1)  # (G, Fg, Cg*kh*kw)
        product = np.matmul(by_group, patches.reshape(self.groups, weights.shape[0], -1))  # (G, Fg, M)
        return product.reshape(self.out_channels, -1)

    def _grouped_patch_gradient(self, weights: np.ndarray, g: np.ndarray) -> np.ndarray:
        """weights: (Cg*kh*kw, F), g: (F, M) -> dP as a (kh, kw, C, M) view, group by group in one matmul."""
        kh, kw = self.kernel_size
        dpatches = np.matmul(self._column_blocks(weights), g.reshape(self.groups, -1, g.shape[1]))  # (G, Cg*kh*kw, M)
        return dpatches.reshape(self.in_channels, kh, kw, -1).transpose(1, 2, 0, 3)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, out, H_out, W_out) -> dx: (N, in_channels, H, W); adds into ``W.grad``
        (unless ``W`` is frozen: ``requires_grad=False``)."""
        g = self._weight_gradient(grad_output)
        assert self._cache is not None
        N, C, H, Wd = self._cache[1]
        Ho, Wo = self._cache[2]
        F = self.out_channels
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        Hp, Wp = H + 2 * ph, Wd + 2 * pw
        W = self.W.data
        weights = W[1:] if self.bias else W
        wide = (sh, sw) == (1, 1)
        if self.groups == 1:
            # rows of the patch gradient ordered (kh, kw, C), so that each kernel offset is one block
            by_offset = weights.reshape(C, kh, kw, F).transpose(1, 2, 0, 3).reshape(kh * kw * C, F)
            dpatches = by_offset @ g
        else:
            dpatches = self._grouped_patch_gradient(weights, g)
        # col2im: add each kernel offset's gradient back onto the pixels it was read from
        if wide:
            run = Ho * Wp
            dpatches = dpatches.reshape(kh, kw, C, N, run)
            dflat = np.zeros((C, N, Hp * Wp + dw * (kw - 1)), dtype=dpatches.dtype)
            for i in range(kh):
                for j in range(kw):
                    start = i * dh * Wp + j * dw
                    dflat[:, :, start:start + run] += dpatches[i, j]
            dxt = dflat[:, :, : Hp * Wp].reshape(C, N, Hp, Wp)
        else:
            dpatches = dpatches.reshape(kh, kw, C, N, Ho, Wo)
            span_h, span_w = _span(kh, dh), _span(kw, dw)
            if sh >= span_h and sw >= span_w:  # windows do not overlap: one strided assignment
                dxt = np.zeros((C, N, max(Hp, Ho * sh), max(Wp, Wo * sw)), dtype=dpatches.dtype)
                blocks = dxt[:, :, : Ho * sh, : Wo * sw].reshape(C, N, Ho, sh, Wo, sw)  # a view
                blocks[:, :, :, :span_h:dh, :, :span_w:dw] = dpatches.transpose(2, 3, 4, 0, 5, 1)
            else:
                dxt = np.zeros((C, N, Hp, Wp), dtype=dpatches.dtype)
                for i in range(kh):
                    for j in range(kw):
                        top, left = i * dh, j * dw
                        dxt[:, :, top:top + sh * (Ho - 1) + 1:sh, left:left + sw * (Wo - 1) + 1:sw] += dpatches[i, j]
        if dxt.shape[2:] != (H, Wd):
            dxt = dxt[:, :, ph:ph + H, pw:pw + Wd]
        return dxt.transpose(1, 0, 2, 3)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` as :meth:`backward` does, but skip ``dx`` (a matrix product
        and the col2im): for a first layer, whose input is the data.  ``Sequential.backward_params``
        calls it.  With ``W`` frozen (``requires_grad=False``) it only checks ``grad_output``."""
        if self.W.requires_grad:
            self._weight_gradient(grad_output)
        else:
            self._checked_cache(grad_output)

    def _checked_cache(self, grad_output: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, int]]:
        """The forward's cache, after checking that ``grad_output`` fits it."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        patches, (N, _, _, _), (Ho, Wo) = cache
        check_grad_output(grad_output, f"{self._who}.backward", (N, self.out_channels, Ho, Wo), patches.dtype)
        return cache

    def _weight_gradient(self, grad_output: np.ndarray) -> np.ndarray:
        """Check grad_output, add ``dW`` (unless ``W`` is frozen) and return the gradient as the (F, M)
        matrix ``G``."""
        patches, (N, _, _, Wd), (Ho, Wo) = self._checked_cache(grad_output)
        F = self.out_channels
        gt = grad_output.transpose(1, 0, 2, 3)  # (F, N, Ho, Wo)
        if self.stride == (1, 1):
            Wp = Wd + 2 * self.padding[1]
            g = np.zeros((F, N, Ho, Wp), dtype=grad_output.dtype)  # zero gradient on the junk columns
            g[..., :Wo] = gt
            g = g.reshape(F, N * Ho * Wp)
        else:
            g = gt.reshape(F, N * Ho * Wo)  # a view when grad_output has the layout of our output
        if not self.W.requires_grad:  # frozen: no gradient, as PyTorch computes none
            return g
        dW, overwrite = self.W.grad_target()
        rows = dW[1:] if self.bias else dW
        if overwrite:  # the gradient is zero (as after zero_grad): write it, no weight-sized temporary
            try:
                if self.groups == 1:
                    np.matmul(patches, g.T, out=rows)
                else:
                    np.matmul(*self._grouped_weight_factors(patches, g), out=self._column_blocks(rows))
                if self.bias:
                    np.add.reduce(g, axis=1, out=dW[0])
            except BaseException:  # interrupted mid-write: the gradient is still zero, say so again
                self.W.zero_grad()
                raise
        else:  # accumulate
            if self.groups == 1:
                rows += patches @ g.T
            else:
                blocks = self._column_blocks(rows)
                blocks += np.matmul(*self._grouped_weight_factors(patches, g))
            if self.bias:
                dW[0] += np.add.reduce(g, axis=1)
        return g

    def _grouped_weight_factors(self, patches: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two stacks whose product is dW's column blocks, (G, Cg*kh*kw, Fg): group g's rows of
        the patches (G, Cg*kh*kw, M) and group g's rows of ``G``, transposed (G, M, Fg)."""
        groups, M = self.groups, patches.shape[1]
        return patches.reshape(groups, -1, M), g.reshape(groups, -1, M).transpose(0, 2, 1)

    def input_shape_hint(self) -> tuple[int, ...]:
        """A small valid per-sample input, ``(in_channels, span_h + 2*sh, span_w + 2*sw)`` with the
        kernel's span ``dilation*(k - 1) + 1`` (3x3 outputs unpadded)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (self.in_channels, _span(kh, dh) + 2 * sh, _span(kw, dw) + 2 * sw)

