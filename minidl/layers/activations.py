"""Element-wise activation layers.  Each forward keeps exactly what its backward needs."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

from ..errors import ShapeError
from ..init import RNGLike, as_generator, float_dtype, positive_int
from ..layer import Layer
from ..parameter import Parameter
from ..special import _sigmoid, normal_cdf, normal_pdf
from ..validation import as_float_array, check_grad_output, check_input, finite_number, is_number, widened

__all__ = ["CELU", "ELU", "GELU", "GLU", "SELU", "Activation", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh",
           "LeakyReLU", "LogSigmoid", "LogSoftmax", "Mish", "PReLU", "RReLU", "ReLU", "ReLU6", "SiLU", "Sigmoid",
           "Softmax", "Softmin", "Softplus", "Softshrink", "Softsign", "Tanh", "Tanhshrink"]


class Activation(Layer):
    """Base for parameter-free element-wise layers: x: (any shape) -> y: same shape.

    Inputs must be floating arrays (``DTypeError`` otherwise), but NaN/inf are *not* refused: that
    would cost a pass over the data per layer per step.  They propagate as NumPy computes them
    (NaN in gives NaN out), and the loss refuses a non-finite prediction.  ``backward`` checks that
    ``grad_output`` is an array of the forward output's shape and dtype.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    elementwise = True

    def __init__(self) -> None:
        super().__init__()
        self._cache: np.ndarray | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        self._who_backward = f"{type(self).__name__}.backward"  # for messages, made once

    def _keep(self, y: np.ndarray) -> np.ndarray:
        """Cache the output ``y`` for backward and return it read-only: changing it in place would
        silently corrupt the back-pass, so NumPy refuses instead (copy it first to change it)."""
        if isinstance(y, np.ndarray):  # a 0-D input gives a NumPy scalar, immutable anyway
            y.flags.writeable = False
        self._cache = y
        return y

    def _input(self, x: np.ndarray) -> np.ndarray:
        if type(x) is not np.ndarray or x.dtype.kind != "f":  # the common case skips the call
            x = as_float_array(x, type(self).__name__)
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            # the output's dtype: NumPy computes a big-endian input into a native-order output
            self._dtype = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
        return x

    #: ``x`` itself, or float16 as float32: the smooth activations compute in float32 and round once
    _wide = staticmethod(widened)

    def _narrow(self, y: np.ndarray) -> np.ndarray:
        """``y`` in the forward output's dtype (a float16 result computed wide, rounded once)."""
        return y.astype(self._dtype) if self._dtype is not None and y.dtype != self._dtype else y

    def _scaled(self, x: np.ndarray, slope: float) -> np.ndarray:
        """``x * slope`` in the forward output's dtype, float16 multiplied in float32 and rounded once, as
        PyTorch (``x * slope`` rounds the slope to float16 first: a quarter of the products 1 ulp off)."""
        if x.dtype.itemsize < 4:
            return self._narrow(self._wide(x) * slope)
        return x * slope

    def _cached_for(self, grad_output: np.ndarray) -> np.ndarray:
        """The forward cache, after checking that ``grad_output`` has the forward output's shape and dtype."""
        cache = self._cache
        if cache is None:
            self._require_cache(cache)
        assert cache is not None
        if type(grad_output) is not np.ndarray or grad_output.shape != cache.shape or \
                grad_output.dtype is not self._dtype:
            check_grad_output(grad_output, self._who_backward, cache.shape, self._dtype)
        return cache


class ReLU(Activation):
    """``y = max(x, 0)``; ``dy/dx`` is 1 where x > 0 and 0 elsewhere (0 at the kink x = 0).

    The output is the backward cache (returned read-only, as Sigmoid's): ``y > 0`` exactly where
    ``x > 0`` (NaN in gives NaN out and a zero slope).  Keeping ``y``, which the next layer keeps
    anyway, instead of a mask saves memory, and making the 0/1 slope as a float array in backward
    multiplies without NumPy's mixed-type cast buffer.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape, e.g. (N, ...) -> y: the same shape."""
        x = self._input(x)
        if x.dtype != np.float32:
            return self._keep(np.maximum(x, 0))
        # float32: the same maximum against an array of zeros.  NumPy's float32 maximum against a scalar is
        # not vectorised; against an array of zeros it is faster while the data fit in cache, allocation
        # included (NumPy 2.4, in us: 1.1 against 1.4 on (32, 128), 22 against 28 on (512, 256)).  On a
        # 2.7 MB map it is slower, but the CNN step was no faster with the scalar (measured).  float64 is
        # fast either way.  An image keeps its memory layout: a Conv2D's channel-major output stays
        # channel-major for the layers after it (a Dense's output is C-ordered anyway).
        y = np.zeros_like(x) if x.ndim > 2 else np.zeros(x.shape, x.dtype)
        return self._keep(np.maximum(x, y, out=y))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward output's shape -> dx: the same shape."""
        y = self._cached_for(grad_output)
        dx = (y > 0).astype(grad_output.dtype)
        dx *= grad_output
        return dx


class Sigmoid(Activation):
    """``y = 1 / (1 + exp(-x))``; ``dy/dx = y (1 - y)``.

    Computed from ``e = exp(-|x|)``, which never overflows: ``1 / (1 + e)`` for x >= 0 and
    ``e / (1 + e)`` for x < 0, both to within a few ulps (the textbook form cancels for x < 0, and
    ``(1 + tanh(x/2)) / 2`` loses all digits below about -17 in float32).  Below about -745 (float64)
    or -104 (float32) the result underflows to 0, as the true value is below the smallest float.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape, e.g. (N, ...) -> y: the same shape."""
        return self._keep(_sigmoid(self._input(x)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward output's shape -> dx: the same shape."""
        y = self._cached_for(grad_output)
        return grad_output * y * (1 - y)


class Tanh(Activation):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape, e.g. (N, ...) -> y: the same shape."""
        x = self._input(x)
        y = np.tanh(x)
        return self._keep(y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: the forward output's shape -> dx: the same shape."""
        y = self._cached_for(grad_output)
        return grad_output * (1 - y * y)


#: The default of ``dim=``, a keyword taken only to say that the axis is ``axis=`` here.
_NO_DIM = object()


def _refuse_dim(who: str, dim: object) -> None:
    """PyTorch's ``dim=`` (None too: its implicit dim is not the last axis) is ``axis=`` here."""
    if dim is not _NO_DIM:
        raise TypeError(f"{who}: the axis is given as axis= here (PyTorch's dim=), got dim={dim!r}")


class LeakyReLU(Activation):
    """``y = x`` for x > 0, ``negative_slope * x`` elsewhere (PyTorch's default slope 0.01).

    ``dy/dx`` is 1 where x > 0 and ``negative_slope`` elsewhere (the slope is used at the kink x = 0).
    ``negative_slope`` is checked when set, after construction too; the backward uses the slope its
    forward used (kept with the mask ``x > 0``), whatever is set in between.  float16 is multiplied in
    float32 and rounded once (as PyTorch; the slope in float16 first would be a second rounding).
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self._forward_slope = self._negative_slope  # the last forward's, for its backward

    @property
    def negative_slope(self) -> float:
        return self._negative_slope

    @negative_slope.setter
    def negative_slope(self, value: float) -> None:
        self._negative_slope = finite_number(type(self).__name__, "negative_slope", value)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._input(x)
        slope = self._negative_slope
        positive = x > 0
        self._cache = positive
        if slope is not self._forward_slope:  # rarely true: spares Layer.__setattr__ on the hot path
            self._forward_slope = slope
        return np.where(positive, x, self._scaled(x, slope))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        positive = self._cached_for(grad_output)
        return np.where(positive, grad_output, self._scaled(grad_output, self._forward_slope))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class RReLU(Activation):
    """Randomized leaky ReLU, as PyTorch's ``nn.RReLU(lower=1/8, upper=1/3)`` (Xu et al., 2015):
    ``y = x`` for x > 0, ``a * x`` elsewhere, with a slope ``a`` that is random in training.

    Training: every element draws its own ``a = lower + (upper - lower) * u``, ``u ~ U[0, 1)`` from
    ``self.rng`` (a registered generator: checkpoints keep it, ``fit`` restores it after a refused
    batch, and the gradient checker replays it, so every re-evaluation draws the same slopes), and
    ``dx = a * g`` where ``x <= 0``, ``g`` elsewhere (NaN: slope 1, as PyTorch).  The slopes are drawn
    for every element, not just the negative ones, so a draw does not depend on the input's signs;
    the per-element slope (1 where x > 0) is the backward's cache.

    Eval: :class:`LeakyReLU` with the mean slope ``(lower + upper) / 2`` (the slope at the kink x = 0
    too; a NaN gets that slope, as PyTorch); the cache is the mask ``x > 0`` and the slope used.

    The backward always uses its forward's slopes, whatever mode or bounds are set in between.
    ``lower`` and ``upper`` are checked when set, after construction too: both finite (either may be
    negative or above 1, as PyTorch) and ``lower <= upper``; a bound set past the other is refused (to
    move both past each other, set the one that leads first).

    Shapes: x: any shape -> same shape.  float16 is multiplied in float32 and rounded to float16 once
    (never the slope to float16 first): in training with slopes drawn in float32 (PyTorch has no float16
    RReLU in training on the CPU), in eval mode by the mean slope as PyTorch computes it (the same on
    every float16 value, forward and backward).
    """

    def __init__(self, lower: float = 1.0 / 8.0, upper: float = 1.0 / 3.0, *, rng: RNGLike = None) -> None:
        super().__init__()
        who = type(self).__name__
        low, high = finite_number(who, "lower", lower), finite_number(who, "upper", upper)
        self._check_order(low, high)
        self._lower, self._upper = low, high
        self.rng = as_generator(rng, who)
        self._eval_slope_used = self.eval_slope  # an eval forward's slope, for its backward

    def _check_order(self, lower: float, upper: float) -> None:
        if lower > upper:
            raise ValueError(f"{type(self).__name__}: lower must be <= upper, got lower={lower!r} and "
                             f"upper={upper!r}")

    @property
    def lower(self) -> float:
        """The slopes' lower bound; checked when set (finite, at most ``upper``)."""
        return self._lower

    @lower.setter
    def lower(self, value: float) -> None:
        lower = finite_number(type(self).__name__, "lower", value)
        self._check_order(lower, self._upper)
        self._lower = lower

    @property
    def upper(self) -> float:
        """The slopes' upper bound; checked when set (finite, at least ``lower``)."""
        return self._upper

    @upper.setter
    def upper(self, value: float) -> None:
        upper = finite_number(type(self).__name__, "upper", value)
        self._check_order(self._lower, upper)
        self._upper = upper

    @property
    def eval_slope(self) -> float:
        """The slope of x <= 0 in eval mode: ``(lower + upper) / 2``."""
        return (self._lower + self._upper) / 2.0

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape -> same shape."""
        x = self._input(x)
        if not self.training:
            positive = x > 0
            slope = self.eval_slope
            self._cache = positive
            self._eval_slope_used = slope
            return np.where(positive, x, self._scaled(x, slope))
        wide = self._wide(x)
        slope_array = self.rng.random(x.shape, dtype=np.float64 if wide.dtype.itemsize == 8 else np.float32)
        slope_array *= self._upper - self._lower
        slope_array += self._lower
        np.copyto(slope_array, 1, where=~(wide <= 0))  # x > 0 or NaN: slope 1
        self._cache = slope_array
        return self._narrow(wide * slope_array)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx = grad_output * the forward's slope."""
        cache = self._cached_for(grad_output)
        if cache.dtype == bool:  # an eval forward: the mask x > 0, and its slope
            return np.where(cache, grad_output, self._scaled(grad_output, self._eval_slope_used))
        return self._narrow(self._wide(grad_output) * cache)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}"


class Hardtanh(Activation):
    """``y = clip(x, min_val, max_val)``, as PyTorch's ``nn.Hardtanh(min_val=-1, max_val=1)``.

    ``dy/dx`` is 1 strictly between the bounds and 0 elsewhere, the bounds included (PyTorch's
    convention at the two kinks).  NaN in gives NaN out and a zero slope.  float16 is compared and
    clipped in float32 (as PyTorch: 0.2998 < 0.3 there, not equal), and a bound beyond the dtype's
    range is no bound.
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        super().__init__()
        who = type(self).__name__
        self.min_val = finite_number(who, "min_val", min_val)
        self.max_val = finite_number(who, "max_val", max_val)
        if not self.min_val < self.max_val:
            raise ValueError(f"{who}: min_val must be less than max_val, got min_val={min_val!r} and "
                             f"max_val={max_val!r}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._input(x)
        largest = float(np.finfo(x.dtype).max)  # (a bound the dtype cannot hold is infinite)
        x = self._wide(x)
        low = self.min_val if self.min_val >= -largest else -math.inf
        high = self.max_val if self.max_val <= largest else math.inf
        self._cache = (x > low) & (x < high)  # where the slope is 1
        return self._narrow(np.clip(x, low, high))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        inside = self._cached_for(grad_output)
        return np.where(inside, grad_output, 0)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """``y = min(max(x, 0), 6)``, as PyTorch's ``nn.ReLU6``: :class:`Hardtanh` from 0 to 6 (slope 1
    strictly between, 0 elsewhere, at x = 0 and x = 6 too)."""

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class Hardsigmoid(Activation):
    """``y = min(max(x + 3, 0), 6) / 6``, as PyTorch's ``nn.Hardsigmoid``: a piecewise-linear sigmoid.

    ``dy/dx`` is 1/6 for -3 < x < 3 and 0 elsewhere, x = -3 and x = 3 included (as PyTorch).
    float16 is computed in float32 and rounded once (as PyTorch).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        self._cache = (x > -3) & (x < 3)  # where the slope is 1/6
        y = np.clip(x + 3, 0, 6)
        y /= 6
        return self._narrow(y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        inside = self._cached_for(grad_output)
        return self._narrow(np.where(inside, self._wide(grad_output) / 6, 0))


class Hardswish(Activation):
    """``y = x * min(max(x + 3, 0), 6) / 6``, as PyTorch's ``nn.Hardswish`` (MobileNetV3's).

    ``dy/dx`` is 0 for x <= -3, ``x / 3 + 1/2`` for -3 < x < 3, and 1 for x >= 3 (PyTorch's choice at
    the kinks, where the two sides' slopes are -1/2 and 0, 3/2 and 1).  The input is the backward's
    cache.  ``x`` is multiplied last, by a factor in [0, 1], so no finite input overflows; float16
    is computed in float32 and rounded once (as PyTorch).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        self._cache = x
        y = np.clip(x + 3, 0, 6)
        y /= 6
        y *= x
        return self._narrow(y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self._cached_for(grad_output)
        g = self._wide(grad_output)
        # (2x + 3) / 6 = x / 3 + 1/2, without that sum's cancellation near x = -3/2; x clipped to the middle
        # first, where it changes nothing, so that 2x does not overflow at |x| near the largest float
        middle = np.clip(x, -3, 3)
        middle *= 2
        middle += 3
        middle /= 6
        middle *= g
        # 0 where the slope is (an infinite gradient there gives 0, not inf * 0)
        return self._narrow(np.where(x <= -3, 0, np.where(x < 3, middle, g)))


class _ExponentialLinear(Activation):
    """Base of ELU, CELU and SELU, PyTorch's one formula for the three::

        y     = scale * x                          for x > 0,
                scale * alpha * (exp(x / a) - 1)   elsewhere
        dy/dx = scale                              for x > 0,
                scale * alpha / a * exp(x / a)     elsewhere (that at the kink x = 0, as PyTorch)

    with ``a = alpha`` for CELU and 1 for the others.  Both are computed from ``min(x, 0)``, which
    never overflows: ``expm1`` for the value (accurate near 0), ``exp`` for the slope (``expm1 + 1``
    would lose the slope's digits far below 0).  The slope is the backward's cache.  float16 is
    computed in float32 and rounded once (as PyTorch).  ``alpha`` is checked when set, after
    construction too.
    """

    _scale = 1.0  # SELU's differs
    _input_over_alpha = False  # CELU's exp(x / alpha)

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = finite_number(type(self).__name__, "alpha", value)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        negative = np.minimum(x, 0)  # x where x <= 0, else 0 (NaN kept)
        scale, alpha = self._scale, self.alpha
        if self._input_over_alpha:
            with np.errstate(over="ignore"):  # x / alpha beyond the dtype: -inf, whose exp is the right 0
                negative = negative / alpha
        positive = x > 0
        slope = scale if self._input_over_alpha else scale * alpha  # (alpha / alpha: exactly 1)
        self._cache = np.where(positive, scale, slope * np.exp(negative))
        return self._narrow(np.where(positive, x * scale if scale != 1.0 else x, scale * alpha * np.expm1(negative)))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self._narrow(grad_output * self._cached_for(grad_output))


class ELU(_ExponentialLinear):
    """``y = x`` for x > 0, ``alpha * (exp(x) - 1)`` elsewhere (PyTorch's ``nn.ELU``, alpha 1).

    ``dy/dx`` is 1 for x > 0 and ``alpha * exp(x)`` elsewhere (``alpha`` at the kink x = 0, as
    PyTorch).  Computed as its base :class:`_ExponentialLinear` says: overflow-free, accurate near 0.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class CELU(_ExponentialLinear):
    """``y = x`` for x > 0, ``alpha * (exp(x / alpha) - 1)`` elsewhere (PyTorch's ``nn.CELU``, alpha 1):
    ELU with a slope that is continuous at 0 for every ``alpha``.

    ``dy/dx`` is 1 for x > 0 and ``exp(x / alpha)`` elsewhere (1 at the kink).  ``alpha`` must not be 0.
    ``x / alpha`` is a division (PyTorch multiplies by ``1 / alpha``, which overflows for a tiny alpha).
    """

    _input_over_alpha = True

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    @property  # (the base's getter again: its setter, extended by an inherited property's .setter, is untyped)
    def alpha(self) -> float:
        """The scale of the negative side and of its input; not 0, checked when set, after construction too."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        alpha = finite_number("CELU", "alpha", value)
        if alpha == 0:
            raise ValueError("CELU: alpha must not be 0 (the formula divides by it), got 0")
        self._alpha = alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(_ExponentialLinear):
    """Scaled ELU, as PyTorch's ``nn.SELU``: ``y = scale * x`` for x > 0, ``scale * alpha * (exp(x) - 1)``
    elsewhere, with the self-normalising constants ``alpha = 1.6732632423543772``, ``scale =
    1.0507009873554805`` (Klambauer et al., 2017).

    ``dy/dx`` is ``scale`` for x > 0 and ``scale * alpha * exp(x)`` elsewhere (that at the kink).
    """

    _scale = 1.0507009873554804934193349852946

    def __init__(self) -> None:
        super().__init__(1.6732632423543772848170429916717)


class SiLU(Activation):
    """``y = x * sigmoid(x)`` (also called swish), as PyTorch's ``nn.SiLU``.

    ``dy/dx = s + x * s * (1 - s)`` with ``s = sigmoid(x)``; ``1 - s`` is computed as
    ``sigmoid(-x)``, which keeps its digits where ``s`` rounds to 1 (large x).
    """

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        s = _sigmoid(x)
        self._x, self._cache = x, s
        return self._narrow(x * s)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        s = self._cached_for(grad_output)
        x = self._x
        assert x is not None
        slope = s * _sigmoid(-x)
        slope *= x
        slope += s
        return self._narrow(grad_output * slope)


class Mish(Activation):
    """``y = x * tanh(softplus(x))``, as PyTorch's ``nn.Mish`` (Misra, 2019).

    ``dy/dx = t + x * sigmoid(x) * (1 - t^2)`` with ``t = tanh(softplus(x))``.  The softplus is
    ``max(x, 0) + log1p(exp(-|x|))`` and the sigmoid is computed from ``exp(-|x|)``: neither
    overflows.  float16 is computed in float32 and rounded once (as ``SiLU``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        softplus = np.log1p(np.exp(-np.abs(x)))
        softplus += np.maximum(x, 0)
        t = np.tanh(softplus)
        self._x, self._cache = x, t
        return self._narrow(x * t)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        t = self._cached_for(grad_output)
        x = self._x
        assert x is not None
        slope = 1 - t * t
        slope *= _sigmoid(x)
        slope *= x
        slope += t
        return self._narrow(grad_output * slope)


class Softplus(Activation):
    """``y = log(1 + exp(beta * x)) / beta``, and ``y = x`` where ``beta * x > threshold``, as
    PyTorch's ``nn.Softplus(beta=1, threshold=20)``.

    ``dy/dx = sigmoid(beta * x)`` (1 where linear).  Computed as ``max(bx, 0) + log1p(exp(-|bx|))``,
    which never overflows.  At ``beta * x = threshold`` the two pieces differ by about
    ``exp(-threshold) / beta``: a tiny step, as in PyTorch.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = finite_number("Softplus", "beta", beta)
        if self.beta <= 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta!r}")
        self.threshold = finite_number("Softplus", "threshold", threshold)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._input(x)
        bx = x * self.beta if self.beta != 1.0 else x
        y = np.log1p(np.exp(-np.abs(bx)))
        y += np.maximum(bx, 0)
        if self.beta != 1.0:
            y /= self.beta
        linear = bx > self.threshold
        self._cache = np.where(linear, 1.0, _sigmoid(bx))  # the slope
        return np.where(linear, x, y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self._cached_for(grad_output)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softsign(Activation):
    """``y = x / (1 + |x|)``, as PyTorch's ``nn.Softsign``; ``dy/dx = 1 / (1 + |x|)^2``.

    ``1 + |x|`` is the backward's cache, divided twice there (its square would overflow for huge x).
    float16 is computed in float32 and rounded once (as PyTorch).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        d = np.abs(x)
        d += 1
        self._cache = d
        return self._narrow(x / d)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        d = self._cached_for(grad_output)
        dx = self._wide(grad_output) / d
        dx /= d
        return self._narrow(dx)


class _Shrink(Activation):
    """Base of ``Hardshrink`` and ``Softshrink``: zero on the dead zone ``[-lambd, lambd]`` (its ends
    included), slope 1 outside it (NaN included, as PyTorch's scalar code; its vectorised code gives a
    NaN slope 0 or 1 by the NaN's place in the array).  ``lambd`` is rounded to the dtype it is
    compared in (see :meth:`_outside`), a ``lambd`` beyond that dtype's range to its largest value
    (nothing finite is outside; PyTorch refuses it); float16 is computed in float32 and rounded once.
    With ``lambd = 0`` there is no dead zone: the layer is the identity, and its slope is 1 at 0 too
    (PyTorch's is 0 there, which the gradient checker would rightly refuse).  A dead zone narrower than
    the checker's smallest step (``eps / 32``, 3e-6 by default) is invisible to central differences:
    an input inside it fails the check though its slope 0 is right; check such a layer away from it.
    """

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    @property
    def lambd(self) -> float:
        """The dead zone's half-width; checked when set, after construction too."""
        return self._lambd

    @lambd.setter
    def lambd(self, value: float) -> None:
        self._lambd = finite_number(type(self).__name__, "lambd", value)

    def _outside(self, x: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, float]:
        """Where ``x`` (wide) is outside the dead zone, and ``lambd`` rounded to ``dtype`` as PyTorch
        rounds it (a double to float32, then to float16): its Hardshrink rounds it to a float16 input's
        dtype (a float16 x of 0.30005 is inside for lambd = 0.3), its Softshrink to float32 (outside).
        The backward's cache is the slope: 1 outside, and everywhere when ``lambd`` is 0 or less (no
        dead zone: the identity; at 0 a -0.0 comes out as 0.0, as PyTorch's)."""
        largest = float(np.finfo(dtype).max)
        lambd = max(-largest, min(self.lambd, largest))
        if dtype.itemsize < 4:
            lambd = float(np.float32(lambd))
        lambd = float(dtype.type(lambd))
        outside = ~((x >= -lambd) & (x <= lambd))
        self._cache = outside if lambd > 0 else np.ones(x.shape, dtype=bool)
        return outside, lambd

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return np.where(self._cached_for(grad_output), grad_output, 0)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


class Hardshrink(_Shrink):
    """``y = x`` where ``|x| > lambd``, else 0, as PyTorch's ``nn.Hardshrink(lambd=0.5)``.

    ``dy/dx`` is 1 outside ``[-lambd, lambd]`` and 0 on it, its ends included (PyTorch's convention at
    the kinks); NaN in gives NaN out with slope 1 (as PyTorch).  A negative ``lambd`` leaves no dead
    zone (the identity, as PyTorch).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._input(x)
        wide = self._wide(x)
        outside, _ = self._outside(wide, x.dtype)
        return self._narrow(np.where(outside, wide, 0))


class Softshrink(_Shrink):
    """``y = x - lambd`` for ``x > lambd``, ``x + lambd`` for ``x < -lambd``, else 0, as PyTorch's
    ``nn.Softshrink(lambd=0.5)``; ``lambd >= 0``; NaN gives NaN.  (The zeros are +0.0, as PyTorch's
    vectorised code gives them; its scalar code gives ``0 * x``, -0.0 for a negative x.)

    ``dy/dx`` is 1 outside ``[-lambd, lambd]`` and 0 on it, its ends included (as PyTorch).
    """

    @property  # (the base's getter again: its setter, extended by an inherited property's .setter, is untyped)
    def lambd(self) -> float:
        """The dead zone's half-width, >= 0; checked when set, after construction too."""
        return self._lambd

    @lambd.setter
    def lambd(self, value: float) -> None:
        lambd = finite_number("Softshrink", "lambd", value)
        if lambd < 0:
            raise ValueError(f"Softshrink: lambd must be >= 0, got {value!r}")
        self._lambd = lambd

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._input(x)
        wide = self._wide(x)
        outside, lambd = self._outside(wide, wide.dtype)  # (for float16, lambd in float32: as PyTorch)
        y = np.where(outside, wide, 0)  # (NaN counts as outside: it stays NaN)
        np.subtract(wide, lambd, out=y, where=wide > lambd)
        np.add(wide, lambd, out=y, where=wide < -lambd)
        return self._narrow(y)


class Tanhshrink(Activation):
    """``y = x - tanh(x)``, as PyTorch's ``nn.Tanhshrink``; ``dy/dx = tanh(x)^2`` (the backward's cache).

    Computed as written, as PyTorch does: for ``|x|`` much below 1 the difference of two close numbers
    keeps few digits (``y`` is near ``x^3 / 3``).  float16 is computed in float32 and rounded once,
    where PyTorch rounds ``tanh(x)`` to float16 before the difference (at x = 0.05 minidl's 4.16e-5 is
    the exact value rounded, PyTorch's 3.05e-5); and the slope is ``tanh(x)^2``, where PyTorch's
    ``1 - (1 - tanh(x)^2)`` keeps no digits below x = 1e-4 in float32.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        t = np.tanh(x)
        y = x - t
        t *= t
        self._cache = t
        return self._narrow(y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        slope = self._cached_for(grad_output)  # (grad_output checked before it is used)
        return self._narrow(self._wide(grad_output) * slope)


class LogSigmoid(Activation):
    """``y = log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, as PyTorch's ``nn.LogSigmoid``: never
    overflows, and keeps its digits where ``sigmoid(x)`` rounds to 0 or 1.

    ``dy/dx = sigmoid(-x)`` (the backward's cache, from the same ``exp(-|x|)``).  float16 is computed in
    float32 and rounded once (as PyTorch).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        e = np.exp(-np.abs(x))
        y = np.minimum(x, 0)
        y -= np.log1p(e)
        slope = np.maximum(e, x < 0, dtype=e.dtype)  # sigmoid(-x)'s numerator: 1 where x < 0, else e (NaN kept)
        slope /= 1 + e
        self._cache = slope
        return self._narrow(y)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return self._narrow(grad_output * self._cached_for(grad_output))


class _AlongAxis(Activation):
    """Base of the layers that normalise along one ``axis``: every output depends on the whole slice."""

    elementwise = False

    def __init__(self, axis: int = -1, *, dim: object = _NO_DIM) -> None:
        super().__init__()
        _refuse_dim(type(self).__name__, dim)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"{type(self).__name__}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _along_axis(self, x: np.ndarray) -> np.ndarray:
        """``x`` checked: a float array that has ``axis``."""
        x = as_float_array(x, type(self).__name__)
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError(
                f"{type(self).__name__}(axis={self.axis}): the input has {x.ndim} dimension(s) (shape "
                f"{x.shape}), so axis {self.axis} does not exist"
            )
        return self._input(x)  # after the axis check, so a refused input leaves the layer as it was

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AlongAxis):
    """``y = exp(x - max) / sum(exp(x - max))`` along ``axis`` (default the last); rows sum to 1.

    Not element-wise: every output depends on the whole slice along ``axis``.  The back-pass is the
    Jacobian-vector product ``dx = y * (g - sum(g * y, axis))``, which never builds the Jacobian
    ``diag(y) - y y^T``.  For classification train on logits with :class:`~minidl.CrossEntropyLoss`
    (it fuses the softmax) and use ``Softmax`` only to read probabilities.

    Shapes: x: (..., C, ...) -> y: same shape.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., C, ...) -> same shape, normalised along ``axis`` (each slice sums to 1)."""
        x = self._along_axis(x)
        if x.size == 0:  # nothing to normalise (a zero-length axis has no max): an empty output
            return self._keep(np.empty(x.shape, self._dtype))  # (native order, read-only, as any output)
        x = self._wide(x)  # (float16 in float32, rounded once, as PyTorch: its sums lose digits)
        y = x - x.max(axis=self.axis, keepdims=True)
        np.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        return self._keep(self._narrow(y))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: y's shape -> dx: the same shape, ``y * (g - sum(g * y, axis))``."""
        cache = self._cached_for(grad_output)
        y = self._wide(cache)
        dx = self._wide(grad_output) * y
        dx -= y * dx.sum(axis=self.axis, keepdims=True)
        return self._narrow(dx)


class Softmin(Softmax):
    """``y = softmax(-x)`` along ``axis`` (default the last), as PyTorch's ``nn.Softmin(dim)``: the
    smallest input gets the largest weight; rows sum to 1.  Backward: minus :class:`Softmax`'s, at
    ``-x``.  Shapes: x: (..., C, ...) -> y: same shape.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., C, ...) -> same shape, ``softmax(-x)`` along ``axis`` (each slice sums to 1)."""
        return super().forward(-self._along_axis(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: y's shape -> dx: the same shape, minus Softmax's backward."""
        dx = super().backward(grad_output)
        np.negative(dx, out=dx)
        return dx


class LogSoftmax(_AlongAxis):
    """``y = x - max - log(sum(exp(x - max)))`` along ``axis`` (default the last): log-probabilities,
    as PyTorch's ``nn.LogSoftmax``; pair it with :class:`~minidl.NLLLoss`.

    Backward: ``dx = g - exp(y) * sum(g, axis)`` (``exp(y)`` is the softmax).  Computed from the
    shifted ``x - max``, so no ``exp`` overflows and ``y`` keeps its digits where the softmax would
    round to 0 (``log(softmax)`` would give -inf there).

    Shapes: x: (..., C, ...) -> y: same shape.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., C, ...) -> same shape, log-probabilities along ``axis`` (each slice's exp sums to 1)."""
        x = self._along_axis(x)
        if x.size == 0:  # nothing to normalise (a zero-length axis has no max): an empty output
            return self._keep(np.empty(x.shape, self._dtype))  # (native order, read-only, as any output)
        x = self._wide(x)  # (float16 in float32, rounded once, as PyTorch)
        y = x - x.max(axis=self.axis, keepdims=True)
        y -= np.log(np.exp(y).sum(axis=self.axis, keepdims=True))
        return self._keep(self._narrow(y))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: y's shape -> dx: the same shape, ``g - exp(y) * sum(g, axis)``."""
        cache = self._cached_for(grad_output)
        g = self._wide(grad_output)
        dx = np.exp(self._wide(cache))
        dx *= -g.sum(axis=self.axis, keepdims=True)
        dx += g
        return self._narrow(dx)


class GELU(Activation):
    """Gaussian error linear unit, as PyTorch's ``nn.GELU(approximate=...)``.

    ``approximate="none"`` (the default, exact): ``y = x * Phi(x)`` with ``Phi`` the standard normal
    CDF, ``Phi(x) = erfc(-x / sqrt(2)) / 2`` from :mod:`minidl.special` (an erf accurate to a few
    ulp, tested against ``math.erf``); ``dy/dx = Phi(x) + x * phi(x)``, ``phi`` the normal PDF.

    ``approximate="tanh"``: ``y = x/2 * (1 + tanh(u))``, ``u = sqrt(2/pi) * (x + 0.044715 x^3)``,
    computed as ``y = x * s`` with ``s = sigmoid(2u)`` (the same number: ``1 + tanh(u)`` cancels for
    x < 0, and PyTorch's float32 GELU loses every digit below about -5 to it);
    ``dy/dx = s + x * s (1 - s) * 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)``, with ``s (1 - s) =
    e / (1 + e)^2``, ``e = exp(-|2u|)``, accurate in both tails.  The tanh form is ~3x cheaper; the
    exact form costs a series or continued fraction per element.
    """

    _C = math.sqrt(2.0 / math.pi)
    _A = 0.044715

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._x: np.ndarray | None = None
        self._e: np.ndarray | None = None  # tanh form: exp(-|2u|), for the backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self._wide(self._input(x))
        self._x = x
        if self.approximate == "none":
            cdf = normal_cdf(x)
            self._cache = cdf
            return self._narrow(x * cdf)
        bound = self._saturated(x)
        xc = np.clip(x, -bound, bound)  # s is 0 or 1 beyond: x^3 cannot overflow
        self._x = xc  # what the backward needs: the slope's terms in x vanish where x was clipped
        u2 = xc * xc  # 2u = x (2C + 2CA x^2)
        u2 *= 2.0 * self._C * self._A
        u2 += 2.0 * self._C
        u2 *= xc
        e = np.exp(-np.abs(u2))
        s = np.maximum(e, u2 >= 0, dtype=e.dtype)  # the numerator of s: 1 where u >= 0, else e (NaN kept)
        s /= 1.0 + e
        self._cache = s
        self._e = e
        return self._narrow(x * s)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        cached = self._cached_for(grad_output)
        x = self._x
        assert x is not None
        if self.approximate == "none":
            slope = x * normal_pdf(x)
            slope += cached
        else:
            e = self._e
            assert e is not None
            xc = x  # clipped by the forward
            d = 1.0 + e
            d *= d
            slope = np.divide(e, d, out=d) if isinstance(d, np.ndarray) else e / d  # s (1 - s), 0 where clipped
            du2 = xc * xc  # d(2u)/dx = 2C (1 + 3A x^2)
            du2 *= 2.0 * self._C * 3.0 * self._A
            du2 += 2.0 * self._C
            slope *= du2
            slope *= xc
            slope += cached
        return self._narrow(grad_output * slope)

    @staticmethod
    def _saturated(x: np.ndarray) -> float:
        """An |x| beyond which s(1 - s) = exp(-|2u|) is 0 in x's dtype, and below which
        ``x^3`` does not overflow: the cube root of the dtype's largest value, over 4."""
        return float(np.finfo(x.dtype).max) ** (1.0 / 3.0) / 4.0

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class GLU(Layer):
    """Gated linear unit, as PyTorch's ``nn.GLU(dim=-1)``: the input's ``axis`` is split in halves ``a``
    and ``b``, and ``y = a * sigmoid(b)`` (the second half gates the first).

    Shapes: x: (..., 2H, ...) -> y: (..., H, ...) along ``axis``.  Backward, with ``s = sigmoid(b)``::

        da = g * s,    db = g * a * s * (1 - s)    (1 - s computed as sigmoid(-b): exact where s rounds to 1)

    Parameter-free, so NaN/inf pass unchecked, as through the activations; float16 is computed in float32
    and rounded once.
    """

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(self, axis: int = -1, *, dim: object = _NO_DIM) -> None:
        super().__init__()
        _refuse_dim(type(self).__name__, dim)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"GLU: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self._halves: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (a, b, s), float32 at least
        self._dtype: np.dtype | None = None  # the last forward's output dtype

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., 2H, ...) -> (..., H, ...) along ``axis``."""
        x = as_float_array(x, "GLU")
        if not -x.ndim <= self.axis < x.ndim:
            raise ShapeError(f"GLU(axis={self.axis}): the input has {x.ndim} dimension(s) (shape {x.shape}), so "
                             f"axis {self.axis} does not exist")
        size = x.shape[self.axis]
        if size % 2:
            raise ShapeError(f"GLU(axis={self.axis}): the input's axis {self.axis} must have an even size (it is "
                             f"split in halves), got {size} (shape {x.shape})")
        dtype = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
        wide = x.astype(np.float32) if x.dtype.itemsize < 4 else x
        a, b = np.split(wide, 2, axis=self.axis)
        s = _sigmoid(b)
        self._halves, self._dtype = (a, b, s), dtype
        return (a * s).astype(dtype, copy=False)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (..., H, ...) -> dx: (..., 2H, ...)."""
        halves = self._halves
        self._require_cache(halves)
        assert halves is not None
        a, b, s = halves
        check_grad_output(grad_output, "GLU.backward", a.shape, self._dtype)
        g = grad_output.astype(np.float32) if grad_output.dtype.itemsize < 4 else grad_output
        shape = list(a.shape)
        shape[self.axis] *= 2
        dx = np.empty(shape, dtype=np.result_type(g, s))
        da, db = np.split(dx, 2, axis=self.axis)  # views: the two halves are written in place
        np.multiply(g, s, out=da)
        np.multiply(da, a, out=db)
        db *= _sigmoid(-b)
        return dx.astype(self._dtype, copy=False)

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """None: any shape with an even ``axis`` (a container infers no input through it: it halves an axis)."""
        return None

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class PReLU(Layer):
    """Parametric ReLU, as PyTorch's ``nn.PReLU``: ``y = x`` where ``x > 0``, else ``a * x``, with the
    slope ``a`` learned: one for all (``num_parameters=1``) or one per channel (axis 1, as PyTorch).

    Shapes: x: (N, ...) -> same shape; with ``num_parameters = C > 1``, x: (N, C, ...).  ``weight``:
    (num_parameters,), PyTorch's name, starting at ``init`` (0.25).

    Backward::

        dx = g          where x > 0,   a * g  elsewhere   (at x = 0 the slope is a, as PyTorch's)
        da = sum of g * x over the elements where x <= 0 (per channel, or over all)

    It holds a parameter, so as ``Dense`` it refuses NaN/inf input (one BLAS pass) and an input of
    another dtype than its weight's.
    """

    single_input = True  # (a Stack hands it the sequence alone)
    elementwise = True

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        # (not self.num_parameters: that is Layer's count of parameter elements)
        self.num_slopes = positive_int(num_parameters, "num_parameters", "PReLU")
        if not is_number(init):
            raise TypeError(f"PReLU: init must be a number, got {init!r}")
        if not math.isfinite(init):
            raise ValueError(f"PReLU: init must be a finite number, got {init!r}")
        self.weight = Parameter(np.full(self.num_slopes, float(init), dtype=float_dtype(dtype, "PReLU")))
        self._who = f"PReLU({self.num_slopes})"
        self._x: np.ndarray | None = None

    def _slopes(self, ndim: int) -> np.ndarray:
        """``weight`` shaped to broadcast over an input of ``ndim`` axes: (C, 1, ...) after the batch axis."""
        a = self.weight.data
        return a if self.num_slopes == 1 else a.reshape((self.num_slopes,) + (1,) * (ndim - 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        C = self.num_slopes
        if C == 1:
            x = check_input(x, self._who, ndim=0, more_dims=True, layout="(N, ...)", dtype=self.weight.data.dtype)
        else:
            x = check_input(x, self._who, ndim=2, more_dims=True, layout=f"(N, {C}, ...)", sizes={1: C},
                            dtype=self.weight.data.dtype)
        self._x = x
        return np.where(x > 0, x, x * self._slopes(x.ndim))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape; adds into ``weight.grad`` (unless frozen)."""
        x = self._x
        self._require_cache(x)
        assert x is not None
        check_grad_output(grad_output, f"{self._who}.backward", x.shape, x.dtype)
        negative = x <= 0
        if self.weight.requires_grad:  # g * x where x <= 0; 0 elsewhere (x is finite: no inf * 0, no overflow)
            part = np.where(negative, grad_output, 0) * x
            axes = tuple(i for i in range(x.ndim) if not (self.num_slopes > 1 and i == 1))
            self.weight.grad += part.sum(axis=axes).reshape(self.num_slopes).astype(x.dtype, copy=False)
        return np.where(negative, grad_output * self._slopes(x.ndim), grad_output)

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """None: any shape (with ``C > 1``, any with C channels), so a container looks past it to the
        next layer, as past ``ReLU``."""
        return None

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_slopes}"
