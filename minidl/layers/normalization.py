"""Batch normalisation (``BatchNorm1d``, ``BatchNorm2d``), ``LayerNorm``, ``GroupNorm``, ``InstanceNorm2d`` and
``LocalResponseNorm`` (AlexNet's cross-channel normalisation, whose back-pass is in its own docstring).

They differ in the group of ``m`` values whose statistics normalise: a channel over the batch (batch
norm), a sample (layer norm), a sample's group of channels (group norm), a sample's channel (instance
norm).  With ``x_hat = (x - mean) / sqrt(var + eps)`` over the group, ``y = gamma * x_hat + beta`` and
``dx_hat = gamma g``, the back-pass is (means over the group)::

    dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)

because mean and variance depend on every x of the group.  Batch norm, whose ``gamma`` is constant
over a group, uses its compact form (sums over the group)::

    dbeta  = sum(g)
    dgamma = sum(g * x_hat)
    dx     = gamma / sqrt(var + eps) * (g - (dbeta + x_hat * dgamma) / m)

When the statistics are constants (running statistics in eval mode), ``dx = gamma / sqrt(running_var
+ eps) * g``.  ``dgamma``/``dbeta`` always sum over every axis but that of ``gamma``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import DTypeLike

from ..errors import DTypeError, NonFiniteError, ShapeError
from ..init import float_dtype, positive_int, switch, switch_setting
from ..layer import Layer, nonfinite_problem
from ..parameter import Parameter, bias_rows_again
from ..validation import (
    as_array,
    check_finite,
    check_grad_output,
    check_input,
    checked_setting,
    finite_number,
    is_number,
    native,
    settings_renamed,
    widened,
)

if TYPE_CHECKING:
    from ..validation import Setting

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm", "LocalResponseNorm"]


def _check_statistics(var: np.ndarray, x: np.ndarray, who: str, what: str) -> None:
    """Refuse a variance that overflowed (finite inputs too large for their dtype): normalising by it
    would silently give zeros, and the running statistics would hold inf.  ``var``: one per group."""
    if np.isfinite(var).all():
        return
    bad = np.flatnonzero(~np.isfinite(var))
    listed = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
    raise NonFiniteError(
        f"{who}: {what} {listed} is not finite in {x.dtype} (input magnitudes up to "
        f"{float(np.max(np.abs(x))):.3g}: their squares overflow); scale the input down. Nothing was updated."
    )


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b)`` over every axis but 1 (the channel axis), without a temporary product array."""
    letters = "n" + "c" + "hwl"[: a.ndim - 2]
    return np.einsum(f"{letters},{letters}->c", a, b)


def _row_squares(rows: np.ndarray) -> np.ndarray:
    """``sum(rows**2)`` along the last axis, (..., m) -> (...), with no temporary of ``rows``' size.

    ``einsum`` sums naively: in float32 its relative error grows with m (about 2e-7 at m = 1k,
    1.6e-6 at 32k, 7e-5 at 1M, where PyTorch stays near 5e-7).  Longer rows go through ``matmul``
    instead (BLAS's blocked dot: about 3e-7 at any m, and faster), under ``errstate``: its overflow
    warning would come before the refusal of an infinite variance that follows.
    """
    if rows.shape[-1] < _LONG_ROW:
        return np.einsum("...m,...m->...", rows, rows)
    with np.errstate(over="ignore", invalid="ignore"):
        return (rows[..., None, :] @ rows[..., :, None])[..., 0, 0]


#: the row length from which :func:`_row_squares` sums by ``matmul``
_LONG_ROW = 4096


# ---------------------------------------------------------------------------------------- settings
# Every setting of these layers is checked when set, in the constructor and after it alike, by one function
# each, ``check(who, name, value)`` (validation.checked_setting, as the losses' settings): it returns the
# value to keep or raises the error naming the layer class and the setting, the layer unchanged.  A forward
# reads each setting once and keeps what its backward needs (eps is in the kept 1/sqrt(var + eps), the
# number of groups in its shape).  The sizes a layer is built for (num_features, num_channels,
# normalized_shape) and whether it has gamma/beta (affine) are fixed: its parameters and buffers were made
# for them, and an optimizer or a checkpoint holds those.


def _positive_eps(who: str, name: str, eps: Any) -> float:
    """``eps`` as a float, > 0 and finite (``TypeError`` for a non-number, else ``ValueError``)."""
    if not is_number(eps):
        raise TypeError(f"{who}: {name} must be a number, got {eps!r}")
    if not 0.0 < eps < math.inf:
        raise ValueError(f"{who}: {name} must be positive and finite, got {eps}")
    return float(eps)


#: at or above it an ``eps`` is > 0 in every float dtype (float16's smallest positive value is 6e-8)
_EPS_ABOVE_UNDERFLOW = 1e-7


def _eps_in(who: str, eps: float, dtype: np.dtype, group: str) -> float:
    """``eps``, refused (``DTypeError``) when it rounds to 0 in the input's ``dtype``: a ``group`` whose values
    are all equal would then be normalised by 1/sqrt(0) into NaN, silently.  One comparison when eps >= 1e-7."""
    if eps < _EPS_ABOVE_UNDERFLOW and dtype.type(eps) == 0:
        raise DTypeError(f"{who}: eps={eps!r} is 0 in {dtype} (whose smallest positive value is "
                         f"{float(np.finfo(dtype).smallest_subnormal):.3g}), so a {group} of equal values would be "
                         f"normalised into NaN; use an eps that {dtype} holds (the default is 1e-5) or float64 data")
    return eps


def _count(who: str, name: str, value: Any) -> int:
    """An int >= 1 (``positive_int``'s check and message)."""
    return positive_int(value, name, who)


def _sizes(who: str, name: str, value: Any) -> tuple[int, ...]:
    """LayerNorm's ``normalized_shape``: one size (an int: True, 3.0 and the like refused) or an iterable of
    them (a tuple, list, range, array), not empty, as a tuple of ints >= 1."""
    one = isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or \
        (isinstance(value, np.ndarray) and value.ndim == 0)
    sizes = tuple(positive_int(s, name, who) for s in ((value,) if one else tuple(value)))
    if not sizes:
        raise ValueError(f"{who}: {name} must not be empty")
    return sizes


#: why the sizes a layer is built for are fixed (the messages of a change refused)
_CHANNELS_FIXED = ("the layer was built for that many channels: gamma, beta and the running statistics, where it "
                   "has them, have that size")
_SHAPE_FIXED = "the layer was built for those axes: gamma and beta, where it has them, have that shape"
#: why ``affine`` / ``elementwise_affine`` is fixed
_AFFINE_FIXED = ("gamma and beta are registered, or not, at construction, and an optimizer or a checkpoint "
                 "holds them; to stop training them, use requires_grad_(False)")


#: every setting of these layers (each kept in ``_<name>``)
_SETTING_NAMES = ("num_features", "eps", "momentum", "affine", "track_running_stats", "normalized_shape",
                  "elementwise_affine", "num_groups", "num_channels", "size", "alpha", "beta", "k")

#: why ``InstanceNorm2d`` refuses ``momentum=None``, for its message
_INSTANCE_NONE = ("PyTorch's InstanceNorm2d takes None as 0.0, running statistics that never move, where "
                  "BatchNorm's None is a cumulative average; pass momentum=0.0 for PyTorch's behaviour")


def _checked_momentum(momentum: Any, who: str, none_ok: bool) -> float | None:
    """``momentum`` as a float in [0, 1] (or None where ``none_ok``: batch norm's cumulative average), else a
    ``TypeError`` or ``ValueError`` naming ``who``."""
    if momentum is None and none_ok:
        return None
    if not is_number(momentum):
        if none_ok:
            raise TypeError(f"{who}: momentum must be a number or None, got {momentum!r}")
        hint = f" ({_INSTANCE_NONE})" if momentum is None else ""
        raise TypeError(f"{who}: momentum must be a number in [0, 1], got {momentum!r}{hint}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{who}: momentum must be in [0, 1]{' or None' if none_ok else ''}, got {momentum}")
    return float(momentum)


def _momentum_or_none(who: str, name: str, value: Any) -> float | None:
    """Batch norm's momentum: a number in [0, 1], or None (a cumulative average)."""
    return _checked_momentum(value, who, none_ok=True)


def _momentum_number(who: str, name: str, value: Any) -> float:
    """Instance norm's momentum: a number in [0, 1] (PyTorch's None, which means 0.0 there, refused)."""
    momentum = _checked_momentum(value, who, none_ok=False)
    assert momentum is not None
    return momentum


def _normalise_groups(
    x3: np.ndarray, eps: float, x: np.ndarray, who: str, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``x3`` (N, G, m): ``x_hat`` (N, G, m, a new array), ``1/sqrt(var + eps)``, the mean and
    the biased variance (N, G) each.  A variance that overflowed is refused (``what`` names the rows)."""
    mean = x3.mean(axis=2)
    xhat = x3 - mean[..., None]
    var = _row_squares(xhat) / x3.shape[2]
    _check_statistics(var.reshape(-1), x, who, what)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat *= inv_std[..., None]
    return xhat, inv_std, mean, var


def _groups_backward(dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """``dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) * inv_std`` per row: dx_hat, x_hat
    (N, G, m), inv_std (N, G) -> dx (N, G, m), a new array."""
    dx = xhat * (dxhat * xhat).mean(axis=2, keepdims=True)
    np.subtract(dxhat, dx, out=dx)
    dx -= dxhat.mean(axis=2, keepdims=True)
    dx *= inv_std[..., None]
    return dx


def _scale_shift(xhat: np.ndarray, affine: bool, layer: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The output ``gamma * x_hat + beta`` (``gamma``/``beta`` of ``layer`` reshaped to ``shape``), or a
    copy of ``x_hat`` without affine: always a new array, since ``x_hat`` is the backward's cache."""
    if not affine:
        return xhat.copy()
    y = xhat * layer.gamma.data.reshape(shape)
    y += layer.beta.data.reshape(shape)
    return y


class _Norm(Layer):
    """What every normalisation here shares: one input, and settings that are checked properties (each kept
    in ``_<name>``), which a layer pickled when they were plain attributes gets back when unpickled."""

    single_input = True  # (a Stack hands it the sequence alone)

    def __init__(self) -> None:
        super().__init__()
        # __init__ run again on a built layer (Layer supports it) starts afresh: its fixed settings and the
        # checks made against the old ones (sizes, buffers to switch on) must not refuse the new arguments
        for name in _SETTING_NAMES:
            self.__dict__.pop("_" + name, None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled when its settings were plain attributes, or
        before ``beta.bias_rows`` (set again: a bias whole)."""
        self.__dict__.update(settings_renamed(type(self), state))
        bias_rows_again(self.__dict__.get("beta"), slice(None))


class _RunningNorm(_Norm):
    """Per-channel ``gamma``/``beta`` and running statistics, shared by batch and instance norm:
    settings, buffers, the running-stat update and ``repr``.  Subclasses normalise."""

    #: the constructor's defaults of ``affine`` and ``track_running_stats`` (``repr`` shows the others)
    _defaults: tuple[bool, bool] = (True, True)

    num_features = checked_setting("num_features", _count, "The number of channels C, an int >= 1; fixed.",
                                   fixed=_CHANNELS_FIXED)
    eps = checked_setting("eps", _positive_eps, "Added to the variance before its square root, a finite number "
                          "> 0; checked when set, used by the next forward (a backward uses its forward's).")
    momentum = checked_setting(
        "momentum", _momentum_or_none,
        "The weight of a batch's statistics in the running ones, in [0, 1]; ``None`` (batch norm only): a "
        "cumulative average.  Checked when set after construction too (a refusal changes nothing).")
    affine = checked_setting("affine", switch_setting, "Whether the layer has ``gamma`` and ``beta``; fixed.",
                             fixed=_AFFINE_FIXED)
    running_mean: np.ndarray
    running_var: np.ndarray
    num_batches_tracked: np.ndarray

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine  # (checked)
        self.track_running_stats = track_running_stats
        dtype = float_dtype(dtype, name)  # (native byte order: '>f4' is float32)
        C = self.num_features
        if self.affine:
            self.gamma = Parameter(np.ones(C, dtype=dtype))
            self.beta = Parameter(np.zeros(C, dtype=dtype), bias_rows=slice(None))  # (a bias whole)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=dtype))
            self.register_buffer("running_var", np.ones(C, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self._cache: tuple[np.ndarray, np.ndarray, bool] | None = None

    def _set_track_running_stats(self, value: Any) -> None:
        name = type(self).__name__
        flag = switch(value, "track_running_stats", name)
        if flag and "_track_running_stats" in self.__dict__ and not self._holds_running_stats():
            raise ValueError(
                f"{name}: track_running_stats cannot be switched on: the layer was built without running "
                f"statistics (no running_mean/running_var buffers); build a new {name}(..., "
                "track_running_stats=True) (load_state_dict(..., strict=False) brings gamma and beta over)")
        self._track_running_stats = flag

    track_running_stats = cast("Setting[bool]", property(  # (the getter in C: forwards read it)
        attrgetter("_track_running_stats"), _set_track_running_stats, None,
        """Whether running statistics move in training and normalise in eval (else batch statistics do,
        always).  A bool, checked when set; a layer built with them may switch it off and on again (the
        buffers stay, untouched while it is off), one built without has no buffers to switch on."""))

    def _holds_running_stats(self) -> bool:
        """Whether the layer has its running-statistics buffers (made when built with track_running_stats)."""
        buffers = self._buffers
        return buffers.get("running_mean") is not None and buffers.get("running_var") is not None

    @property
    def _who(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def buffer_problem(self, name: str, value: np.ndarray) -> str | None:
        """Running statistics from a checkpoint must be usable: finite, a variance >= 0 (its square
        root normalises in eval mode), a batch count in [0, 2**53] (``momentum=None`` divides by it)."""
        if name in ("running_mean", "running_var") and not np.isfinite(value).all():
            return nonfinite_problem(value)
        if name == "running_var" and (value < 0).any():
            return f"a variance cannot be negative, got {value.min()!r}"
        if name == "num_batches_tracked" and (value < 0).any():
            return f"a count of batches cannot be negative, got {value.min()!r}"
        if name == "num_batches_tracked" and (value > 2**53).any():  # the next step's +1 must not wrap around
            return f"a count of batches must be at most 2**53, got {value.max()!r}"
        return None

    def _param_dtype(self) -> np.dtype | None:
        """The dtype inputs must have: that of the parameters or buffers (None if there are none)."""
        if self.affine:
            return self.gamma.data.dtype
        if self._holds_running_stats():  # (tracked or not: the layer's dtype, the next to use them sees)
            return self.running_mean.dtype
        return None

    def _dtype_of(self) -> str:
        """What :meth:`_param_dtype` is the dtype of, for messages."""
        return "the layer's parameters" if self.affine else "the layer's running statistics"

    def _check_buffers(self) -> None:
        """The running statistics in the layer's dtype (its parameters'; without them, one dtype for
        both): a buffer assigned by hand in another would spread (and make checkpoints a fresh layer
        refuses), as PyTorch refuses it; and each of shape (C,), not None (a buffer assigned by hand that a
        forward would meet only after it had moved the others)."""
        buffers = self._buffers
        for name in ("running_mean", "running_var"):
            buffer = buffers.get(name)
            if buffer is None or buffer.shape != (self.num_features,):
                got = "None" if buffer is None else f"of shape {buffer.shape}"
                raise ShapeError(f"{self._who}: the buffer {name} is {got}, not of shape ({self.num_features},) "
                                 f"(assigned by hand?); assign one of that shape, or set track_running_stats=False "
                                 f"to normalise by batch statistics without it")
        mean, var = self.running_mean.dtype, self.running_var.dtype
        if not self.affine:
            if mean != var:
                raise DTypeError(f"{self._who}: the buffers running_mean ({mean}) and running_var ({var}) differ in "
                                 f"dtype (one assigned by hand?); give both one dtype, or astype() the layer")
            return
        dtype = self.gamma.data.dtype
        for name, kind in (("running_mean", mean), ("running_var", var)):
            if kind != dtype:
                raise DTypeError(f"{self._who}: the buffer {name} is {kind}, not the layer's {dtype} "
                                 f"(assigned by hand?); assign {name}.astype(np.{dtype.name}), or astype() the layer")

    def _update_running(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        """running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance
        (``var`` is biased, over groups of ``m`` values; instance norm passes the batch averages).

        New arrays are assigned (never written in place), so saved copies stay valid.  With
        ``momentum=None`` the running stats are the plain average over all batches so far.  (The
        unbiased variance cannot overflow where the biased one did not: the sum of squares it divides,
        by ``m - 1``, was finite.)
        """
        self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
        momentum = self.momentum
        if momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked)
        self.running_mean = (1.0 - momentum) * self.running_mean + momentum * mean
        self.running_var = (1.0 - momentum) * self.running_var + momentum * (var * (m / (m - 1)))

    def extra_repr(self) -> str:
        parts = [f"{self.num_features}", f"eps={self.eps}", f"momentum={self.momentum}"]
        if self.affine != self._defaults[0]:
            parts.append(f"affine={self.affine}")
        if self.track_running_stats != self._defaults[1]:
            parts.append(f"track_running_stats={self.track_running_stats}")
        return ", ".join(parts)


class _BatchNorm(_RunningNorm):
    """Shared batch-norm logic; subclasses fix the accepted input ranks."""

    _ranks: tuple[int, ...] = ()
    _layouts: str = ""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, ...) -> same shape, normalised per channel C."""
        C = self.num_features
        x = as_array(x, self._who) if isinstance(x, (list, tuple)) else x
        ndim = getattr(x, "ndim", None)
        if ndim not in self._ranks:
            if ndim is not None:
                ranks = " or ".join(f"{r}-D" for r in self._ranks)
                raise ShapeError(f"{self._who}: expected a {ranks} input of shape "
                                 f"{self._layouts.replace('C', str(C))}, got shape {x.shape}")
            check_input(x, self._who, ndim=self._ranks[0], layout=self._layouts)  # not an array: says so
        track = self._track_running_stats
        if track:
            self._check_buffers()
        x = check_input(x, self._who, ndim=ndim, layout=self._layouts.replace("C", str(C)),  # type: ignore[arg-type]
                        sizes={1: C}, dtype=self._param_dtype(), dtype_of=self._dtype_of())
        eps = _eps_in(self._who, self.eps, x.dtype, "channel")
        axes = (0, *range(2, x.ndim))
        bshape = (1, C) + (1,) * (x.ndim - 2)
        m = x.size // C
        batch_stats = self.training or not track
        if batch_stats:
            if m < 2:
                when, advice = ("in training", "a larger batch or eval()") if track else \
                    ("without running statistics (track_running_stats=False)", "a larger batch")
                raise ShapeError(
                    f"{self._who}: batch statistics need more than 1 value per channel {when}, "
                    f"got input shape {x.shape}; use {advice}"
                )
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = _channel_dot(xc, xc) / m  # biased variance, used to normalise
            _check_statistics(var, x, self._who, "the batch variance of channel(s)")
            if self.training and track:
                self._update_running(mean, var, m)
        else:
            mean, var = self.running_mean, self.running_var
            xc = x - mean.reshape(bshape)
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = xc
        xhat *= inv_std.reshape(bshape)
        self._cache = (xhat, inv_std, batch_stats)
        return _scale_shift(xhat, self.affine, self, bshape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape; adds into ``gamma.grad`` and ``beta.grad``
        (those not frozen)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        xhat, inv_std, batch_stats = cache
        check_grad_output(grad_output, f"{self._who}.backward", xhat.shape, xhat.dtype)
        C = self.num_features
        axes = (0, *range(2, xhat.ndim))
        bshape = (1, C) + (1,) * (xhat.ndim - 2)
        g = grad_output
        # the two channel sums feed dx under batch statistics, else only the unfrozen parameters' grads
        # (eval with affine=False or both frozen: neither is computed)
        want_beta = self.affine and self.beta.requires_grad
        want_gamma = self.affine and self.gamma.requires_grad
        dbeta = g.sum(axis=axes) if batch_stats or want_beta else None
        dgamma = _channel_dot(g, xhat) if batch_stats or want_gamma else None
        scale = inv_std
        if self.affine:  # (a frozen parameter gets no gradient)
            if want_beta:
                self.beta.grad += dbeta
            if want_gamma:
                self.gamma.grad += dgamma
            scale = inv_std * self.gamma.data
        if not batch_stats:
            return g * scale.reshape(bshape)
        assert dbeta is not None and dgamma is not None
        m = xhat.size // C
        dx = xhat * (dgamma * (-1.0 / m)).reshape(bshape)
        dx += g
        dx -= (dbeta * (1.0 / m)).reshape(bshape)
        dx *= scale.reshape(bshape)
        return dx

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.num_features,) if self._ranks[0] == 2 else (self.num_features, 3, 3)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs, as PyTorch's ``nn.BatchNorm1d``.

    Per channel c, over the batch (and L): ``y = gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c``.

    Training (``train()``): mean and *biased* variance of the batch normalise, and the running
    estimates move towards the batch's mean and *unbiased* variance,
    ``running = (1 - momentum) * running + momentum * batch`` (PyTorch's direction; ``momentum=None``:
    cumulative average).  Eval (``eval()``): the running estimates normalise, so the layer is an
    affine map per channel.  ``track_running_stats=False`` always uses batch statistics.

    ``eps``, ``momentum`` and ``track_running_stats`` may be set after construction: checked as the
    constructor checks them, used by the next forward (a backward uses its forward's).  Switched off, the
    layer uses batch statistics in training and eval and leaves its buffers as they are (PyTorch's switched-off
    layer normalises by them in eval); a layer built without buffers cannot switch it on.
    ``num_features`` and ``affine`` are fixed: build a new layer.

    Parameters ``gamma`` (ones) and ``beta`` (zeros), (C,) each (PyTorch's ``weight`` and ``bias``);
    buffers ``running_mean`` (zeros), ``running_var`` (ones), ``num_batches_tracked``.
    The back-pass is in this module's docstring.
    """

    _ranks = (2, 3)
    _layouts = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs, per channel over N, H and W, as PyTorch's
    ``nn.BatchNorm2d``.  Everything else as :class:`BatchNorm1d`."""

    _ranks = (4,)
    _layouts = "(N, C, H, W)"


class InstanceNorm2d(_RunningNorm):
    """Instance normalisation over (N, C, H, W) inputs, as PyTorch's ``nn.InstanceNorm2d``.

    Shapes: x: (N, C, H, W) -> same shape.  Per sample n and channel c, over (H, W) (m = H*W values):
    ``y = gamma_c * (x - mean_nc) / sqrt(var_nc + eps) + beta_c``, biased variance; GroupNorm with one
    channel per group.  ``affine=True`` adds ``gamma`` (ones) and ``beta`` (zeros), (C,) each.
    ``track_running_stats=True`` keeps ``running_mean``/``running_var`` buffers: in training they move
    towards the batch average of the instance means and *unbiased* instance variances (BatchNorm's
    update; ``momentum`` must be a number: PyTorch's None, which freezes them as ``momentum=0.0`` does
    here, is refused, since BatchNorm's None is a cumulative average), and in eval
    mode they normalise, as batch norm's do.  Without them, eval mode uses the instance statistics too.
    Instance statistics need H*W > 1.  ``num_batches_tracked`` counts training steps (PyTorch's stays 0).
    Settings after construction as :class:`BatchNorm1d`'s (``track_running_stats`` switched off: instance
    statistics, the buffers left as they are, where PyTorch's layer still moves them, in eval too).
    """

    _defaults = (False, False)
    momentum = checked_setting(  # (a number: PyTorch's None means 0 here, never update; refused, not guessed)
        "momentum", _momentum_number,
        "The weight of a batch's statistics in the running ones, in [0, 1] (None refused: pass 0.0 for "
        "PyTorch's None).  Checked when set after construction too (a refusal changes nothing).")

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        dtype: DTypeLike = np.float64,
    ) -> None:
        name = type(self).__name__
        _momentum_number(name, "momentum", momentum)  # (first, as before: its errors first)
        _positive_eps(name, "eps", eps)
        dtype = float_dtype(dtype, name)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> same shape, normalised per sample and channel over (H, W)."""
        C = self.num_features
        track = self._track_running_stats
        if track:
            self._check_buffers()
        x = check_input(x, self._who, ndim=4, layout=f"(N, {C}, H, W)", sizes={1: C}, dtype=self._param_dtype(),
                        dtype_of=self._dtype_of())
        eps = _eps_in(self._who, self.eps, x.dtype, "channel")
        N, _, H, W = x.shape
        bshape = (1, C, 1, 1)
        instance_stats = self.training or not track
        if instance_stats:
            if H * W < 2:
                raise ShapeError(f"{self._who}: instance statistics need more than 1 value per channel "
                                 f"(H*W > 1), got input shape {x.shape}")
            update = self.training and track
            if update and N == 0:
                raise ShapeError(f"{self._who}: an empty batch cannot update the running statistics, "
                                 f"got input shape {x.shape}")
            xhat3, inv_std, mean, var = _normalise_groups(
                x.reshape(N, C, H * W), eps, x, self._who,
                "the variance of instance(s) (numbered n*C + c)")
            if update:  # (the average of finite variances as a sum of shares: it cannot overflow)
                self._update_running(mean.mean(axis=0), np.add.reduce(var / N, axis=0), H * W)
            xhat = xhat3.reshape(x.shape)
        else:
            inv_std = 1.0 / np.sqrt(self.running_var + eps)
            xhat = x - self.running_mean.reshape(bshape)
            xhat *= inv_std.reshape(bshape)
        self._cache = (xhat, inv_std, instance_stats)
        return _scale_shift(xhat, self.affine, self, bshape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape; adds into ``gamma.grad`` and ``beta.grad``
        (those not frozen)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        xhat, inv_std, instance_stats = cache
        g = check_grad_output(grad_output, f"{self._who}.backward", xhat.shape, xhat.dtype)
        N, C, H, W = xhat.shape
        bshape = (1, C, 1, 1)
        if self.affine:  # (a frozen parameter gets no gradient)
            if self.beta.requires_grad:
                self.beta.grad += g.sum(axis=(0, 2, 3))
            if self.gamma.requires_grad:
                self.gamma.grad += _channel_dot(g, xhat)
        if not instance_stats:  # running statistics: an affine map per channel
            scale = inv_std * self.gamma.data if self.affine else inv_std
            return g * scale.reshape(bshape)
        if self.affine:
            g = g * self.gamma.data.reshape(bshape)
        return _groups_backward(g.reshape(N, C, H * W), xhat.reshape(N, C, H * W), inv_std).reshape(xhat.shape)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.num_features, 3, 3)


class LayerNorm(_Norm):
    """Normalise each sample over its last ``len(normalized_shape)`` axes, as PyTorch's ``nn.LayerNorm``.

    Shapes: x: (..., *normalized_shape) -> same shape; ``gamma`` (ones) and ``beta`` (zeros) of
    shape ``normalized_shape`` when ``elementwise_affine``.  Mean and biased variance are taken per
    sample over the normalised axes (group size m = prod(normalized_shape)); there are no running
    statistics, so train and eval behave alike.  Backward: see this module's docstring, with the sums
    for ``dx`` over the normalised axes and those for ``dgamma``/``dbeta`` over the leading axes.

    ``eps`` may be set after construction (checked, used by the next forward); ``normalized_shape`` and
    ``elementwise_affine`` are fixed (build a new layer).
    """

    normalized_shape = checked_setting(
        "normalized_shape", _sizes, "The trailing axes' sizes normalised over, a tuple of ints >= 1 (an int: one "
        "axis); fixed.", fixed=_SHAPE_FIXED)
    eps = checked_setting("eps", _positive_eps, "Added to the variance before its square root, a finite number "
                          "> 0; checked when set, used by the next forward (a backward uses its forward's).")
    elementwise_affine = checked_setting("elementwise_affine", switch_setting,
                                         "Whether the layer has ``gamma`` and ``beta``; fixed.", fixed=_AFFINE_FIXED)

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps  # (checked by the settings)
        self.elementwise_affine = elementwise_affine
        dtype = float_dtype(dtype, type(self).__name__)
        if self.elementwise_affine:
            self.gamma = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            self.beta = Parameter(np.zeros(self.normalized_shape, dtype=dtype), bias_rows=slice(None))  # (a bias)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def _who(self) -> str:
        shape = self.normalized_shape
        return f"LayerNorm({shape[0] if len(shape) == 1 else shape})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., *normalized_shape) -> same shape."""
        k = len(self.normalized_shape)
        layout = "(..., " + ", ".join(str(s) for s in self.normalized_shape) + ")"
        x = as_array(x, self._who) if isinstance(x, (list, tuple)) else x  # (its rank decides the axes)
        ndim = max(getattr(x, "ndim", k), k)  # leading axes optional, as PyTorch
        x = check_input(x, self._who, ndim=ndim, layout=layout, more_dims=True,
                        sizes={ndim - k + i: s for i, s in enumerate(self.normalized_shape)},
                        dtype=self.gamma.data.dtype if self.elementwise_affine else None)
        eps = _eps_in(self._who, self.eps, x.dtype, "group")
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        xhat = x - mean
        rows = xhat.reshape(-1, int(np.prod(self.normalized_shape)))  # one row per normalised group
        var = _row_squares(rows).reshape(mean.shape) / rows.shape[1]
        _check_statistics(var.reshape(-1), x, self._who,
                          "the variance of group(s) (the leading axes flattened, row-major)")
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat *= inv_std
        self._cache = (xhat, inv_std)
        return _scale_shift(xhat, self.elementwise_affine, self, self.normalized_shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape; adds into ``gamma.grad`` and ``beta.grad``
        (those not frozen)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        xhat, inv_std = cache
        check_grad_output(grad_output, f"{self._who}.backward", xhat.shape, xhat.dtype)
        k = len(self.normalized_shape)
        axes = tuple(range(xhat.ndim - k, xhat.ndim))
        lead = tuple(range(xhat.ndim - k))
        g = grad_output
        if self.elementwise_affine:  # (a frozen parameter gets no gradient)
            if self.beta.requires_grad:
                self.beta.grad += g.sum(axis=lead)
            if self.gamma.requires_grad:
                self.gamma.grad += (g * xhat).sum(axis=lead)
            g = g * self.gamma.data
        # per sample: dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), g = gamma * grad_output
        dx = xhat * (g * xhat).mean(axis=axes, keepdims=True)
        np.subtract(g, dx, out=dx)
        dx -= g.mean(axis=axes, keepdims=True)
        dx *= inv_std
        return dx

    def input_shape_hint(self) -> tuple[int, ...]:
        return self.normalized_shape

    def extra_repr(self) -> str:
        affine = "" if self.elementwise_affine else ", elementwise_affine=False"
        return f"{self.normalized_shape}, eps={self.eps}{affine}"


class GroupNorm(_Norm):
    """Normalise each sample over groups of channels, as PyTorch's ``nn.GroupNorm``.

    Shapes: x: (N, C, *) -> same shape, with any number of trailing axes ``*`` (none included).  The C
    channels form G = ``num_groups`` consecutive groups of C/G; per sample and group, the mean and
    biased variance over the group's C/G channels and ``*`` (m = C/G * prod(*) values) give ``x_hat``,
    and ``y = gamma_c * x_hat + beta_c`` with ``gamma`` (ones) and ``beta`` (zeros) of shape (C,) when
    ``affine``.  No running statistics: train and eval behave alike.  G = 1 is LayerNorm over (C, *)
    with a per-channel affine, G = C instance norm.  Backward: this module's docstring, with means
    over each group for ``dx`` and per-channel sums over N and ``*`` for ``dgamma``/``dbeta``.

    ``num_groups`` (a divisor of C) and ``eps`` may be set after construction (checked, used by the next
    forward; a backward uses its forward's); ``num_channels`` and ``affine`` are fixed (build a new layer).
    """

    num_channels = checked_setting("num_channels", _count, "The number of channels C, an int >= 1; fixed.",
                                   fixed=_CHANNELS_FIXED)
    eps = checked_setting("eps", _positive_eps, "Added to the variance before its square root, a finite number "
                          "> 0; checked when set, used by the next forward (a backward uses its forward's).")
    affine = checked_setting("affine", switch_setting, "Whether the layer has ``gamma`` and ``beta``; fixed.",
                             fixed=_AFFINE_FIXED)

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        self.num_groups, self.num_channels = num_groups, num_channels  # (checked: each, then together)
        self._check_groups(self.num_groups)
        self.eps, self.affine = eps, affine
        dtype = float_dtype(dtype, type(self).__name__)
        if self.affine:
            self.gamma = Parameter(np.ones(self.num_channels, dtype=dtype))
            self.beta = Parameter(np.zeros(self.num_channels, dtype=dtype), bias_rows=slice(None))  # (a bias)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def _set_num_groups(self, value: Any) -> None:
        groups = positive_int(value, "num_groups", type(self).__name__)
        if "_num_channels" in self.__dict__:  # (the constructor checks once both are made)
            self._check_groups(groups)
        self._num_groups = groups

    num_groups = cast("Setting[int]", property(  # (the getter in C: forwards read it)
        attrgetter("_num_groups"), _set_num_groups, None,
        """The number of groups G, an int >= 1 dividing ``num_channels``; checked when set, used by the next
        forward (a backward uses its forward's)."""))

    def _check_groups(self, groups: int) -> None:
        """``ValueError`` unless ``groups`` divides the channels."""
        if self.num_channels % groups:
            raise ValueError(f"{type(self).__name__}: num_channels ({self.num_channels}) must be divisible by "
                             f"num_groups ({groups})")

    @property
    def _who(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *) -> same shape, normalised per sample over each group of C/G channels (and ``*``)."""
        G, C = self.num_groups, self.num_channels
        layout = f"(N, {C}, *)"
        x = as_array(x, self._who)
        if x.ndim < 2:
            raise ShapeError(f"{self._who}: expected an input of shape {layout} (at least 2-D), got shape {x.shape}")
        x = check_input(x, self._who, ndim=x.ndim, layout=layout, sizes={1: C},
                        dtype=self.gamma.data.dtype if self.affine else None)
        eps = _eps_in(self._who, self.eps, x.dtype, "group")
        N = x.shape[0]
        m = C // G * math.prod(x.shape[2:])
        if m == 0:
            raise ShapeError(f"{self._who}: every group needs at least one value, got input shape {x.shape} "
                             "(an empty trailing axis)")
        xhat3, inv_std, _, _ = _normalise_groups(x.reshape(N, G, m), eps, x, self._who,
                                                 "the variance of group(s) (numbered n*G + g)")
        xhat = xhat3.reshape(x.shape)
        self._cache = (xhat, inv_std)
        return _scale_shift(xhat, self.affine, self, (1, C) + (1,) * (x.ndim - 2))

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape; adds into ``gamma.grad`` and ``beta.grad``
        (those not frozen)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        xhat, inv_std = cache
        g = check_grad_output(grad_output, f"{self._who}.backward", xhat.shape, xhat.dtype)
        N, C = xhat.shape[:2]
        s = math.prod(xhat.shape[2:])  # values per channel and sample
        g3 = g.reshape(N, C, s)
        if self.affine:  # (a frozen parameter gets no gradient)
            xhat_c = xhat.reshape(N, C, s)
            if self.beta.requires_grad:
                self.beta.grad += g3.sum(axis=(0, 2))
            if self.gamma.requires_grad:
                self.gamma.grad += np.einsum("ncs,ncs->c", g3, xhat_c)
            g3 = g3 * self.gamma.data.reshape(1, C, 1)
        G = inv_std.shape[1]  # (the forward's number of groups, whatever is set since)
        m = C // G * s
        dx = _groups_backward(g3.reshape(N, G, m), xhat.reshape(N, G, m), inv_std)
        return dx.reshape(xhat.shape)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.num_channels, 3, 3)

    def extra_repr(self) -> str:
        affine = "" if self.affine else ", affine=False"
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}{affine}"


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """``s[:, c] = sum(a[:, c - before : c + after + 1])`` along the channel axis 1, channels outside ``[0, C)``
    counting as zeros: (N, C, *) -> a new array of that shape and memory layout.  One pass per window offset
    that reaches another channel: at most ``2C - 1``, whatever the window's size."""
    C = a.shape[1]
    s = a.copy(order="K")
    for offset in range(1, min(after, C - 1) + 1):  # channel c gets channel c + offset
        s[:, : C - offset] += a[:, offset:]
    for offset in range(1, min(before, C - 1) + 1):  # channel c gets channel c - offset
        s[:, offset:] += a[:, : C - offset]
    return s


def _all_finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds no NaN/inf (one BLAS pass in the common case, ``np.isfinite`` for float16, as
    ``check_finite``)."""
    try:
        check_finite(a, "")
    except NonFiniteError:
        return False
    return True


class LocalResponseNorm(_Norm):
    """Divide each value by a power of the energy of its neighbouring channels, as PyTorch's
    ``nn.LocalResponseNorm`` (AlexNet's local response normalisation).  No parameters.

    Shapes: x: (N, C, *) -> same shape, with at least one trailing axis: (N, C, L), (N, C, H, W),
    (N, C, D, H, W), ... (PyTorch's ranks).  Per sample and position, channel c's window is the ``n = size``
    channels ``W(c) = [c - n//2, c + (n-1)//2]`` (an even size reaches one channel further down than up, as
    PyTorch pads), channels outside ``[0, C)`` counting as zeros (a window at the edge, or a size above C,
    sees fewer)::

        S_c    = sum_{j in W(c)} x_j^2
        base_c = k + alpha/n * S_c        (alpha divided by the size, not by the channels the window sees)
        y_c    = x_c / base_c^beta

    Back-pass.  ``dbase_c/dx_j = 2 alpha/n * x_j`` for ``j`` in ``W(c)``, so, with ``g = grad_output``::

        dx_j = g_j / base_j^beta - (2 alpha beta / n) * x_j * sum_{c: j in W(c)} g_c y_c / base_c

    and ``j in W(c)`` exactly when ``c in W*(j) = [j - (n-1)//2, j + n//2]``: the adjoint of the window sum
    is the window sum over the mirrored window, the same window for an odd size.  Both sums loop over the
    window's offsets only, each an array operation on the whole batch.

    With ``beta = 0`` the output is ``x``, and with ``alpha = 0`` it is ``x / k^beta``, whatever the input: no
    base is computed or checked (deliberately not PyTorch's NaN for ``alpha = 0`` and inputs whose squares
    overflow, its ``0 * inf``).  Otherwise refused, as by the other normalisations (``NonFiniteError``, nothing
    changed): NaN/inf in the input; a base that is not finite (finite inputs whose squares, or their window's
    sum, overflow the dtype, or alpha/size times that sum: PyTorch's output would silently be zeros); a base
    of 0 where ``beta != 0`` (possible only with ``k <= 0``, ``alpha < 0`` or a ``k`` the dtype rounds to 0,
    as float32 does 1e-300: PyTorch's output is NaN, or 0 with a NaN gradient for ``beta < 0``); an output
    that is not finite (``base^beta`` is NaN for a negative base and a fractional ``beta``, as in PyTorch, or
    underflows to 0, or the quotient overflows).  A ``k`` or ``alpha/size`` beyond the range of the dtype
    the input is computed in (float32 and ``k = 1e39``) is a ``ValueError`` naming it.  So ``k <= 0`` and
    ``alpha < 0``, which PyTorch accepts as this does, work only on inputs that keep every base away from 0
    (and positive, with a fractional ``beta``).  float32 stays float32; float16 is computed in float32 and
    rounded once.  An input laid out channel-major (a ``Conv2D``'s output) gives a channel-major output.

    Args:
        size: the number of channels a window spans, an int >= 1.
        alpha, beta, k: finite numbers (PyTorch's defaults 1e-4, 0.75 and 1).

    All four are checked when set, after construction too, and used by the next forward; a backward uses
    the ``size``, ``alpha`` and ``beta`` of its forward, whatever is set in between (``k`` is in its base).
    """

    size = checked_setting("size", _count, "The number of channels a window spans, an int >= 1; checked when set, "
                           "after construction too.")
    alpha = checked_setting("alpha", finite_number, "The scale of the window's sum of squares (divided by "
                            "``size``), finite; checked when set.")
    beta = checked_setting("beta", finite_number, "The power of the base, finite; checked when set.")
    k = checked_setting("k", finite_number, "The constant added to the base, finite; checked when set.")
    _size: int
    _alpha: float
    _beta: float
    _k: float

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        # the last forward: x (float16 as float32), the base and base**beta (0-d where they are constants), and
        # the size, alpha and beta it used (its backward's, whatever is set since); and the output's dtype
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray, int, float, float] | None = None
        self._dtype: np.dtype | None = None

    @property
    def _who(self) -> str:
        return f"LocalResponseNorm({self._size})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, *), at least 3-D -> same shape."""
        x = check_input(x, self._who, ndim=3, layout="(N, C, *)", more_dims=True)  # (NaN/inf refused)
        x = native(x)  # (e.g. read from a file: the output, and so grad_output, are native)
        wide = widened(x)
        base, denominator = self._denominator(wide)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # refused below, by name
            y = wide / denominator
            if y.dtype != x.dtype:  # float16: rounded once
                y = y.astype(x.dtype)
        self._refuse_bad_denominators(wide, base, denominator, y)
        self._cache, self._dtype = (wide, base, denominator, self._size, self._alpha, self._beta), x.dtype
        return y

    def _constant(self, name: str, value: float, dtype: np.dtype) -> np.ndarray:
        """``value`` (``name``: k or alpha/size) in the computing ``dtype``, 0-d; ``ValueError`` naming it if it
        overflows that dtype (a float32 input with k = 1e39)."""
        with np.errstate(over="ignore"):
            held = np.asarray(value, dtype=dtype)
        if not np.isfinite(held):
            raise ValueError(f"{self._who}: {name}={value!r} overflows {dtype} (largest "
                             f"{float(np.finfo(dtype).max)!r}), the dtype the input is computed in; use float64 "
                             f"or a smaller {name.split('/')[0]}. Nothing was changed.")
        return held

    def _denominator(self, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(base, base**beta) for ``wide`` (N, C, *): full arrays, or 0-d where they are constants (``beta =
        0``: ``base**0 = 1`` whatever the base; ``alpha = 0``: the base is ``k``, whatever the input)."""
        if self._beta == 0:
            one = np.ones((), dtype=wide.dtype)
            return one, one
        k = self._constant("k", self._k, wide.dtype)
        if self._alpha == 0:
            base = k
        else:
            scale = self._constant("alpha/size", self._alpha / self._size, wide.dtype)
            n = self._size
            with np.errstate(over="ignore", invalid="ignore"):  # refused after, by name
                base = _window_sum(wide * wide, n // 2, (n - 1) // 2)
                base *= scale
                base += k
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            return base, np.asarray(base**self._beta)

    def _refuse_bad_denominators(self, x: np.ndarray, base: np.ndarray, denominator: np.ndarray,
                                 y: np.ndarray) -> None:
        """``NonFiniteError`` for a base that is not finite or (``beta != 0``) is 0, or an output that is not
        finite, naming the first such position of ``x`` (N, C, *) and why; nothing else when all is well."""
        if self._beta == 0:  # y = x
            return
        k = x.dtype.type(self._k)  # (what the base adds: 1e-300 is 0 in float32)
        zero_base_possible = not (k > 0 and self._alpha >= 0)
        if _all_finite(base) and not (zero_base_possible and not base.all()) and _all_finite(y):
            return
        base, denominator = np.broadcast_to(base, x.shape), np.broadcast_to(denominator, x.shape)
        bad = ~np.isfinite(base)
        if zero_base_possible:
            bad |= base == 0
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            value = base[first].item()
            where = f"at {int(bad.sum())} position(s), the first at index {first}"
            if value == 0:
                if k == 0 and self.k > 0 and self.alpha >= 0:
                    why = (f"k={self.k} is 0 in {x.dtype}, the dtype the input is computed in (use float64 or a "
                           "larger k)")
                else:
                    why = (f"k={self.k} with alpha={self.alpha} allows a base of 0 (k > 0 and alpha >= 0 keep it "
                           "positive)")
                problem = (f"the denominator's base k + alpha/size * sum(x**2) is 0 {where}, which base**beta "
                           f"(beta={self.beta}) cannot divide by; {why}")
            else:
                problem = (f"the denominator's base k + alpha/size * sum(x**2) is {value} {where}: "
                           f"{self._overflow_cause(x, first)}")
        else:
            bad = ~np.isfinite(y)
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            value = base[first].item()
            where = f"at {int(bad.sum())} position(s), the first at index {first}"
            if value < 0 and not self.beta.is_integer():
                problem = (f"the output is NaN {where}: the base there, {value:.6g}, is negative, and its power "
                           f"beta={self.beta} (fractional) is not a real number; k={self.k} with "
                           f"alpha={self.alpha} allows a negative base (k > 0 and alpha >= 0 keep it positive)")
            elif denominator[first] == 0:
                problem = (f"the denominator base**beta underflows {x.dtype} to 0 {where} (base {value:.6g}, "
                           f"beta={self.beta}): the output and its gradient would divide by 0; use float64 or a "
                           "larger k")
            else:
                problem = (f"the output overflows {y.dtype} {where} (input {x[first].item():.6g}, base "
                           f"{value:.6g}, base**beta {denominator[first].item():.6g})")
        error = NonFiniteError(f"{self._who}: {problem}. Nothing was changed.")
        error.index, error.shape = first, x.shape
        raise error

    def _overflow_cause(self, x: np.ndarray, first: tuple[int, ...]) -> str:
        """Why the base at ``first`` of ``x`` (N, C, *) overflows: the squares of the window's inputs, their
        sum, alpha/size times it, or k added to that, each computed in ``x``'s dtype."""
        c, C, n = first[1], x.shape[1], self.size
        channels = slice(max(0, c - n // 2), min(C, c + (n - 1) // 2 + 1))
        index: tuple[Any, ...] = (first[0], channels, *first[2:])
        window = x[index]
        with np.errstate(over="ignore", invalid="ignore"):
            squares = window * window
            total = squares.sum()
            scaled = x.dtype.type(self.alpha / n) * total
        if not np.isfinite(squares).all():
            return (f"the squares of the input overflow {x.dtype} (magnitudes up to "
                    f"{float(np.max(np.abs(window))):.3g}); scale the input down")
        if not np.isfinite(total):
            return (f"the sum of the squares over the window overflows {x.dtype} (each square is finite, the "
                    f"largest {float(np.max(squares)):.3g}); scale the input down")
        if not np.isfinite(scaled):
            return (f"alpha/size * sum(x**2) overflows {x.dtype} (alpha/size={self.alpha / n:.6g}, "
                    f"sum(x**2)={float(total):.6g}); use a smaller alpha or scale the input down")
        return (f"k + alpha/size * sum(x**2) overflows {x.dtype} (k={self.k}, alpha/size * "
                f"sum(x**2)={float(scaled):.6g})")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx: x's shape (the formula in the class docstring)."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        wide, base, denominator, n, alpha, beta = cache  # (the forward's settings)
        g = widened(check_grad_output(grad_output, f"LocalResponseNorm({n}).backward", wide.shape, self._dtype))
        coefficient = 2.0 * alpha * beta / n
        if coefficient == 0.0:  # (alpha = 0 or beta = 0: y = x / k**beta, no term across channels)
            dx = g / denominator
        else:  # two full arrays at a time: share's buffer is reused for dx
            share = g * wide
            share /= denominator
            share /= base  # g_c y_c / base_c
            cross = _window_sum(share, (n - 1) // 2, n // 2)  # over the mirrored window W*(j)
            cross *= wide
            cross *= coefficient
            dx = np.divide(g, denominator, out=share)
            dx -= cross
        return dx if dx.dtype == self._dtype else dx.astype(self._dtype)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
