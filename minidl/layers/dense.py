"""``Dense``: a fully connected layer whose bias is absorbed into the weight matrix as row 0."""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import ShapeError
from ..init import RNGLike, absorbed_weights, float_dtype, positive_int, switch_setting
from ..layer import Layer, features_layout_words
from ..parameter import Parameter, bias_rows_again
from ..validation import check_finite, check_grad_output, check_input, checked_setting, settings_renamed
from ._products import add_product

__all__ = ["Dense"]

#: why Dense's sizes and its bias switch cannot change once built (the message of a change refused)
_SHAPED = "the weight matrix W was built for it, and an optimizer or a checkpoint holds W"


def _size(who: str, name: str, value: Any) -> int:
    """An int >= 1 (``positive_int``'s check and message)."""
    return positive_int(value, name, who)


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

    ``in_features``, ``out_features`` and ``bias`` are fixed: checked when set, and a change refused
    (``ValueError``; build a new layer).  So is ``W``'s shape: rebinding ``W.data`` to another is refused by
    the next forward (``ShapeError``).
    """

    single_input = True  # (a Stack hands it the sequence alone)

    in_features = checked_setting("in_features", _size, "The input's width, an int >= 1; fixed.", fixed=_SHAPED)
    out_features = checked_setting("out_features", _size, "The output's width, an int >= 1; fixed.", fixed=_SHAPED)
    bias = checked_setting("bias", switch_setting, "Whether ``W`` has the bias row 0; fixed.", fixed=_SHAPED)
    _in_features: int  # (where the settings keep their values: the forward and backward read these)
    _out_features: int
    _bias: bool

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
        # Checked before anything is replaced: a refused __init__ run again on a built layer leaves it as it was.
        who = type(self).__name__
        sizes = (_size(who, "in_features", in_features), _size(who, "out_features", out_features),
                 switch_setting(who, "bias", bias))
        weights = absorbed_weights(f"Dense({sizes[0]} -> {sizes[1]}, bias={sizes[2]})", sizes[0], sizes[1],
                                   bias=sizes[2], W=W, init=init, rng=rng, dtype=float_dtype(dtype, "Dense"))
        super().__init__()
        for name in ("_in_features", "_out_features", "_bias"):  # __init__ run again on a built layer: afresh
            self.__dict__.pop(name, None)
        self.in_features, self.out_features, self.bias = sizes
        self.W = Parameter(weights, bias_rows=slice(0, 1) if sizes[2] else None)  # (bias_rows: the bias row 0)
        self._x: np.ndarray | None = None
        # How error messages name the layer and its input, made once: forward runs every step.
        self._who = f"Dense({self.in_features} -> {self.out_features})"
        self._who_backward = f"{self._who}.backward"
        self._layout = f"(N, ..., {self.in_features})"
        self._sizes = {-1: self.in_features}
        self._W_shape = (self.in_features + self.bias, self.out_features)  # (the forward compares W's with it)

    def state_layout(self) -> tuple[int, ...]:
        """``(in_features, bias)``: what W's shape does not tell apart (``Dense(8, 3)``'s and ``Dense(9, 3,
        bias=False)``'s are both (9, 3)); ``state_dict`` saves it, ``load_state_dict`` compares it."""
        return (self._in_features, int(self._bias))

    def layout_words(self, layout: tuple[int, ...]) -> str | None:
        """``(8, 1)``: ``"8 input features with a bias"``."""
        return features_layout_words(layout, "a bias")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled when its sizes were plain attributes, or before
        ``W.bias_rows`` (set again)."""
        super().__setstate__(settings_renamed(type(self), state))
        bias_rows_again(self.__dict__.get("W"), slice(0, 1) if self.__dict__.get("_bias") else None)
        if "_W_shape" not in self.__dict__ and "_out_features" in self.__dict__:  # pickled before it existed
            self.__dict__["_W_shape"] = (self._in_features + self._bias, self._out_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, ..., in_features) -> (N, ..., out_features)."""
        W = self.W._data  # (W.data without the property call: every step reads it)
        if type(x) is not np.ndarray or x.ndim != 2 or x.shape[1] != self._in_features or x.dtype is not W.dtype:
            # not the common case at a glance: convert, or raise the precise error
            x = check_input(x, self._who, ndim=2, layout=self._layout, sizes=self._sizes, dtype=W.dtype,
                            finite=False, more_dims=True)
            if x.ndim != 2:
                return self._forward_rows(x)
        check_finite(x, self._who)
        if W.shape != self._W_shape:  # W.data rebound to another shape: refused before anything is kept
            self._refuse_W(W)
        self._x = x
        if not self._bias:
            return x @ W
        out = x @ W[1:]
        out += W[0]
        return out

    def _forward_rows(self, x: np.ndarray) -> np.ndarray:
        """The forward of an input with more leading axes (N, ..., in_features), checked but for NaN/inf:
        every position a row.  (Apart from the 2-D path, which runs every step and stays as short.)"""
        check_finite(x, self._who)
        W = self.W._data
        if W.shape != self._W_shape:
            self._refuse_W(W)
        self._x = x  # as given: backward flattens it again (a view, unless x is not contiguous)
        rows = x.reshape(-1, self._in_features)
        if not self._bias:
            out = rows @ W
        else:
            out = rows @ W[1:]
            out += W[0]
        return out.reshape(*x.shape[:-1], self._out_features)

    def _refuse_W(self, W: np.ndarray) -> NoReturn:
        """The ``ShapeError`` of a ``W.data`` rebound to another shape than the layer was built for (the forward
        compares the shapes first)."""
        rows = "in_features + 1 rows, the bias first" if self._bias else "in_features rows"
        raise ShapeError(f"{self._who}: W.data has shape {W.shape}, but the layer was built for {self._W_shape} "
                         f"({rows}, out_features columns); its sizes are fixed: build a new Dense of the "
                         "sizes you want")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, ..., out_features) -> dx: (N, ..., in_features); adds into ``W.grad`` (unless
        ``W`` is frozen: ``requires_grad=False``)."""
        self.backward_params(grad_output)
        W = self.W._data
        return grad_output @ (W[1:].T if self._bias else W.T)  # (matmul keeps any leading axes)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` like :meth:`backward`, but skip ``dx`` (one of the back-pass's two
        products, a third of forward and backward): for a first layer, whose input (the data) needs no gradient.
        ``Sequential.backward_params`` calls it."""
        x = self._x
        if x is None:
            self._require_cache(x)
        assert x is not None
        if x.ndim == 2:
            shape = (x.shape[0], self._out_features)
            if type(grad_output) is not np.ndarray or grad_output.shape != shape or grad_output.dtype is not x.dtype:
                check_grad_output(grad_output, self._who_backward, shape, x.dtype)  # (not at a glance: the call)
        else:  # every leading position is a row of its own
            check_grad_output(grad_output, self._who_backward, (*x.shape[:-1], self._out_features), x.dtype)
            x, grad_output = x.reshape(-1, self._in_features), grad_output.reshape(-1, self._out_features)
        if not self.W.requires_grad:  # frozen: no gradient, as PyTorch computes none
            return
        # dW[1:] += x^T g and dW[0] += g summed over the rows (the bias's column of ones); dW += x^T g without bias
        add_product(self.W, x, grad_output, self._bias)

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
