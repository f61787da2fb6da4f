"""Batch normalisation (``BatchNorm1d``, ``BatchNorm2d``) and ``LayerNorm``.

With ``x_hat = (x - mean) / sqrt(var + eps)`` over a group of ``m`` values and ``y = gamma * x_hat + beta``,
the back-pass used by all three is the compact form (sums over the same group)::

    dbeta  = sum(g)
    dgamma = sum(g * x_hat)
    dx     = gamma / sqrt(var + eps) * (g - (dbeta + x_hat * dgamma) / m)

It follows from ``dx = (1/sigma) (dx_hat - mean(dx_hat) - x_hat mean(dx_hat x_hat))`` with
``dx_hat = gamma g``, because mean and variance depend on every x of the group.  When the statistics
are constants (batch norm in eval mode), ``dx = gamma / sqrt(running_var + eps) * g``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from ..errors import DTypeError, NonFiniteError, ShapeError
from ..init import float_dtype, positive_int, switch
from ..layer import Layer
from ..parameter import Parameter
from ..validation import as_array, check_grad_output, check_input, is_number

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


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


class _BatchNorm(Layer):
    """Shared batch-norm logic; subclasses fix the accepted input ranks."""

    _ranks: tuple[int, ...] = ()
    _layouts: str = ""
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
        self.num_features = positive_int(num_features, "num_features", name)
        if not is_number(eps):
            raise TypeError(f"{name}: eps must be a number, got {eps!r}")
        if not (momentum is None or is_number(momentum)):
            raise TypeError(f"{name}: momentum must be a number or None, got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = switch(affine, "affine", name)
        self.track_running_stats = switch(track_running_stats, "track_running_stats", name)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise DTypeError(f"{name}: expected a floating dtype, got {dtype}")
        C = self.num_features
        if self.affine:
            self.gamma = Parameter(np.ones(C, dtype=dtype))
            self.beta = Parameter(np.zeros(C, dtype=dtype))
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=dtype))
            self.register_buffer("running_var", np.ones(C, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self._cache: tuple[np.ndarray, np.ndarray, bool] | None = None

    @property
    def _who(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def buffer_problem(self, name: str, value: np.ndarray) -> str | None:
        """Running statistics from a checkpoint must be usable: finite, a variance >= 0 (its square
        root normalises in eval mode), a batch count >= 0 (``momentum=None`` divides by it)."""
        if name in ("running_mean", "running_var") and not np.isfinite(value).all():
            return "holds NaN/inf"
        if name == "running_var" and (value < 0).any():
            return f"a variance cannot be negative, got {value.min()!r}"
        if name == "num_batches_tracked" and (value < 0).any():
            return f"a count of batches cannot be negative, got {value.min()!r}"
        return None

    def _param_dtype(self) -> np.dtype | None:
        """The dtype inputs must have: that of the parameters or buffers (None if there are none)."""
        if self.affine:
            return self.gamma.data.dtype
        if self.track_running_stats:
            return self.running_mean.dtype
        return None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, ...) -> same shape, normalised per channel C."""
        C = self.num_features
        x = as_array(x, self._who) if isinstance(x, (list, tuple)) else x
        ndim = getattr(x, "ndim", None)
        if ndim not in self._ranks:
            check_input(x, self._who, ndim=self._ranks[0], layout=self._layouts)  # raises the shape error
        x = check_input(x, self._who, ndim=ndim, layout=self._layouts.replace("C", str(C)),  # type: ignore[arg-type]
                        sizes={1: C}, dtype=self._param_dtype())
        axes = (0, *range(2, x.ndim))
        bshape = (1, C) + (1,) * (x.ndim - 2)
        m = x.size // C
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if m < 2:
                raise ShapeError(
                    f"{self._who}: batch statistics need more than 1 value per channel in training, "
                    f"got input shape {x.shape}; use a larger batch or eval()"
                )
            mean = x.mean(axis=axes)
            xc = x - mean.reshape(bshape)
            var = _channel_dot(xc, xc) / m  # biased variance, used to normalise
            _check_statistics(var, x, self._who, "the batch variance of channel(s)")
            if self.training and self.track_running_stats:
                self._update_running(mean, var, m)
        else:
            mean, var = self.running_mean, self.running_var
            xc = x - mean.reshape(bshape)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = xc
        xhat *= inv_std.reshape(bshape)
        self._cache = (xhat, inv_std, batch_stats)
        if not self.affine:
            return xhat.copy()
        y = xhat * self.gamma.data.reshape(bshape)
        y += self.beta.data.reshape(bshape)
        return y

    def _update_running(self, mean: np.ndarray, var: np.ndarray, m: int) -> None:
        """running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.

        New arrays are assigned (never written in place), so saved copies stay valid.  With
        ``momentum=None`` the running stats are the plain average over all batches so far.
        """
        self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean = (1.0 - momentum) * self.running_mean + momentum * mean
        self.running_var = (1.0 - momentum) * self.running_var + momentum * (var * (m / (m - 1)))

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
        dbeta = g.sum(axis=axes)
        dgamma = _channel_dot(g, xhat)
        scale = inv_std
        if self.affine:  # (a frozen parameter gets no gradient)
            if self.beta.requires_grad:
                self.beta.grad += dbeta
            if self.gamma.requires_grad:
                self.gamma.grad += dgamma
            scale = inv_std * self.gamma.data
        if not batch_stats:
            return g * scale.reshape(bshape)
        m = xhat.size // C
        dx = xhat * (dgamma * (-1.0 / m)).reshape(bshape)
        dx += g
        dx -= (dbeta * (1.0 / m)).reshape(bshape)
        dx *= scale.reshape(bshape)
        return dx

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.num_features,) if self._ranks[0] == 2 else (self.num_features, 3, 3)

    def extra_repr(self) -> str:
        parts = [f"{self.num_features}", f"eps={self.eps}", f"momentum={self.momentum}"]
        if not self.affine:
            parts.append("affine=False")
        if not self.track_running_stats:
            parts.append("track_running_stats=False")
        return ", ".join(parts)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs, as PyTorch's ``nn.BatchNorm1d``.

    Per channel c, over the batch (and L): ``y = gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c``.

    Training (``train()``): mean and *biased* variance of the batch normalise, and the running
    estimates move towards the batch's mean and *unbiased* variance,
    ``running = (1 - momentum) * running + momentum * batch`` (PyTorch's direction; ``momentum=None``:
    cumulative average).  Eval (``eval()``): the running estimates normalise, so the layer is an
    affine map per channel.  ``track_running_stats=False`` always uses batch statistics.

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


class LayerNorm(Layer):
    """Normalise each sample over its last ``len(normalized_shape)`` axes, as PyTorch's ``nn.LayerNorm``.

    Shapes: x: (..., *normalized_shape) -> same shape; ``gamma`` (ones) and ``beta`` (zeros) of
    shape ``normalized_shape`` when ``elementwise_affine``.  Mean and biased variance are taken per
    sample over the normalised axes (group size m = prod(normalized_shape)); there are no running
    statistics, so train and eval behave alike.  Backward: see this module's docstring, with the sums
    for ``dx`` over the normalised axes and those for ``dgamma``/``dbeta`` over the leading axes.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        shape = tuple(normalized_shape)
        self.normalized_shape = tuple(positive_int(s, "normalized_shape", "LayerNorm") for s in shape)
        if not self.normalized_shape:
            raise ValueError("LayerNorm: normalized_shape must not be empty")
        if not is_number(eps):
            raise TypeError(f"LayerNorm: eps must be a number, got {eps!r}")
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps}")
        self.eps = float(eps)
        self.elementwise_affine = switch(elementwise_affine, "elementwise_affine", "LayerNorm")
        dtype = float_dtype(dtype, "LayerNorm")
        if self.elementwise_affine:
            self.gamma = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            self.beta = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def _who(self) -> str:
        shape = self.normalized_shape
        return f"LayerNorm({shape[0] if len(shape) == 1 else shape})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., *normalized_shape) -> same shape."""
        k = len(self.normalized_shape)
        layout = "(N, ..., " + ", ".join(str(s) for s in self.normalized_shape) + ")"
        ndim = max(getattr(x, "ndim", k + 1), k + 1)
        x = check_input(x, self._who, ndim=ndim, layout=layout,
                        sizes={ndim - k + i: s for i, s in enumerate(self.normalized_shape)},
                        dtype=self.gamma.data.dtype if self.elementwise_affine else None)
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        xhat = x - mean
        rows = xhat.reshape(-1, int(np.prod(self.normalized_shape)))  # one row per normalised group
        var = np.einsum("ij,ij->i", rows, rows).reshape(mean.shape) / rows.shape[1]  # no overflow warning
        _check_statistics(var.reshape(-1), x, self._who,
                          "the variance of group(s) (the leading axes flattened, row-major)")
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        self._cache = (xhat, inv_std)
        if not self.elementwise_affine:
            return xhat.copy()
        y = xhat * self.gamma.data
        y += self.beta.data
        return y

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
