"""``Dense``: a fully connected layer whose bias is absorbed into the weight matrix as row 0."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..init import RNGLike, absorbed_weights, float_dtype, positive_int, switch
from ..layer import Layer
from ..parameter import Parameter
from ..validation import check_finite, check_grad_output, check_input

__all__ = ["Dense"]

class Dense(Layer):
    """``y = [1, x] @ W``: one weight matrix ``W`` whose row 0 is the bias (the x0 = 1 trick).

    Shapes:
        x: (N, in_features) -> y: (N, out_features); or any leading axes, x: (N, ..., in_features) ->
        y: (N, ..., out_features), as PyTorch's ``Linear`` (e.g. every step of a sequence (N, T, E))
        W: (in_features + 1, out_features) with ``bias=True`` (``W[0]`` is the bias, ``W[1:]`` the
        weights), (in_features, out_features) with ``bias=False``.

    The augmented input ``[1, x]`` is never built: the forward is ``x @ W[1:] + W[0]`` and the
    back-pass ``dW[1:] += x.T @ g``, ``dW[0] += g.sum(0)``, ``dx = g @ W[1:].T``.  Right after
    ``zero_grad`` the products are written straight into ``W.grad`` (see
    :meth:`~minidl.Parameter.grad_target`), so a training step allocates no weight-sized temporary.

    Args:
        W: exact initial values (any array of the right shape), instead of a random draw.
        init: ``"uniform"`` (PyTorch's default), ``"he"``, ``"glorot"``, ``"lecun"`` (for SELU) or ``"zeros"``;
            the bias row starts at zero except with ``"uniform"``, which draws it like PyTorch does.
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        W: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features", "Dense")
        self.out_features = positive_int(out_features, "out_features", "Dense")
        self.bias = switch(bias, "bias", "Dense")
        self.W = Parameter(absorbed_weights(
            f"Dense({self.in_features} -> {self.out_features}, bias={self.bias})", self.in_features,
            self.out_features, bias=self.bias, W=W, init=init, rng=rng, dtype=float_dtype(dtype, "Dense"),
        ))
        self._x: np.ndarray | None = None
        # How error messages name the layer and its input, made once: forward runs every step.
        self._who = f"Dense({self.in_features} -> {self.out_features})"
        self._who_backward = f"{self._who}.backward"
        self._layout = f"(N, ..., {self.in_features})"
        self._sizes = {-1: self.in_features}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, ..., in_features) -> (N, ..., out_features)."""
        W = self.W.data
        if type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] != self.in_features or x.dtype is not W.dtype:
            # not the common case at a glance: convert, or raise the precise error
            x = check_input(x, self._who, ndim=2, layout=self._layout, sizes=self._sizes, dtype=W.dtype,
                            finite=False, more_dims=True)
            if x.ndim != 2:
                return self._forward_rows(x)
        check_finite(x, self._who)
        self._x = x
        if not self.bias:
            return x @ W
        out = x @ W[1:]
        out += W[0]
        return out

    def _forward_rows(self, x: np.ndarray) -> np.ndarray:
        """The forward of an input with more leading axes (N, ..., in_features), checked but for NaN/inf:
        every position a row.  (Apart from the 2-D path, which runs every step and stays as short.)"""
        check_finite(x, self._who)
        self._x = x  # as given: backward flattens it again (a view, unless x is not contiguous)
        rows = x.reshape(-1, self.in_features)
        W = self.W.data
        if not self.bias:
            out = rows @ W
        else:
            out = rows @ W[1:]
            out += W[0]
        return out.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, ..., out_features) -> dx: (N, ..., in_features); adds into ``W.grad`` (unless
        ``W`` is frozen: ``requires_grad=False``)."""
        self.backward_params(grad_output)
        W = self.W.data
        return grad_output @ (W[1:].T if self.bias else W.T)  # (matmul keeps any leading axes)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` like :meth:`backward`, but skip ``dx`` (a third of the
        back-pass's work): for a first layer, whose input (the data) needs no gradient.
        ``Sequential.backward_params`` calls it."""
        x = self._x
        if x is None:
            self._require_cache(x)
        assert x is not None
        if x.ndim == 2:
            shape = (x.shape[0], self.out_features)
            if type(grad_output) is not np.ndarray or grad_output.shape != shape or grad_output.dtype is not x.dtype:
                check_grad_output(grad_output, self._who_backward, shape, x.dtype)  # (not at a glance: the call)
        else:  # every leading position is a row of its own
            check_grad_output(grad_output, self._who_backward, (*x.shape[:-1], self.out_features), x.dtype)
            x, grad_output = x.reshape(-1, self.in_features), grad_output.reshape(-1, self.out_features)
        if not self.W.requires_grad:  # frozen: no gradient, as PyTorch computes none
            return
        dW, overwrite = self.W.grad_target()
        if overwrite:  # the gradient is zero (as after zero_grad): write it, with no temporary
            try:
                if not self.bias:
                    np.matmul(x.T, grad_output, out=dW)
                else:
                    np.matmul(x.T, grad_output, out=dW[1:])
                    np.add.reduce(grad_output, axis=0, out=dW[0])
            except BaseException:  # interrupted mid-write: the gradient is still zero, say so again
                self.W.zero_grad()
                raise
        elif not self.bias:  # add: a parameter used twice in one pass, or no zero_grad in between
            dW += x.T @ grad_output
        else:
            dW[1:] += x.T @ grad_output
            dW[0] += np.add.reduce(grad_output, axis=0)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.in_features,)

    @property
    def weight(self) -> np.ndarray:
        """The weights without the bias row, (in_features, out_features): a view of ``W.data``."""
        return self.W.data[1:] if self.bias else self.W.data

    @property
    def bias_row(self) -> np.ndarray | None:
        """The bias, (out_features,): a view of ``W.data[0]``, or ``None`` without bias."""
        return self.W.data[0] if self.bias else None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"
