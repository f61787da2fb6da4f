"""Gradient clipping, as PyTorch's ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``.

Call between the backward and the optimizer's step (``fit(clip_grad_norm=...)`` does it per batch).
Only trainable parameters that have a gradient (``requires_grad`` and :attr:`Parameter.has_grad`, as
the optimizers) take part, as PyTorch skips a ``.grad`` of ``None``; the gradients are scaled or
clamped in place and keep their dtype.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import numpy as np

from .errors import NonFiniteError
from .init import switch
from .layer import Layer
from .parameter import Parameter
from .validation import is_number

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _named(who: str, parameters: Layer | Parameter | Iterable[Parameter]) -> list[tuple[str, Parameter]]:
    """The parameters with a name for messages: the dotted name in a layer, else the position in
    what was given."""
    if isinstance(parameters, Layer):
        named: list[tuple[str, object]] = [(f"'{n}'", p) for n, p in parameters.named_parameters()]
    else:
        if isinstance(parameters, Parameter):
            parameters = [parameters]
        try:
            named = [(f"{i}", p) for i, p in enumerate(parameters)]
        except TypeError:
            raise TypeError(f"{who}: expected a Layer, a Parameter or an iterable of Parameters, "
                            f"got {type(parameters).__name__}") from None
    for name, p in named:
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: item {name} is a {type(p).__name__}, not a Parameter")
    return named  # type: ignore[return-value]


def _with_gradients(named: list[tuple[str, Parameter]]) -> list[tuple[str, Parameter]]:
    """The trainable parameters that have a gradient, each once (frozen ones never move: not counted)."""
    seen: set[int] = set()
    out: list[tuple[str, Parameter]] = []
    for name, p in named:
        if p.requires_grad and p.has_grad and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def _norm(g: np.ndarray, p: float) -> float:
    """The ``p``-norm of ``g``'s elements as a Python float (float64 arithmetic on the result), without
    overflow for huge finite elements or underflow for tiny ones (or a large ``p``): scaled by the
    largest ``|g|`` only when the direct sum of powers overflows or falls below the smallest normal
    number of the type it is summed in (where it has lost digits, or all of them)."""
    if g.size == 0:
        return 0.0
    if p == math.inf:
        return float(np.max(np.abs(g)))
    flat = g.reshape(-1)
    if p == 2.0:
        powers = float(np.vdot(flat, flat))  # in g's dtype
        tiny = float(np.finfo(flat.dtype).tiny) if flat.dtype.kind == "f" else 0.0
    elif p == 1.0:
        powers, tiny = float(np.add.reduce(np.abs(flat), dtype=np.float64)), 0.0  # (a sum of |g| loses nothing)
    else:
        powers = float(np.add.reduce(np.abs(flat, dtype=np.float64) ** p))
        tiny = float(np.finfo(np.float64).tiny)
    if math.isfinite(powers):
        if powers >= tiny or not flat.any():
            return powers ** (1.0 / p) if p != 2.0 else math.sqrt(powers)
    elif not np.isfinite(flat).all():
        return powers ** (1.0 / p)
    big = float(np.max(np.abs(flat)))  # finite elements whose sum of powers overflowed or underflowed
    scaled = np.abs(flat, dtype=np.float64) / big
    return big * float(np.add.reduce(scaled**p)) ** (1.0 / p)


def clip_grad_norm_(parameters: Layer | Parameter | Iterable[Parameter], max_norm: float,
                    norm_type: float = 2.0, *, error_if_nonfinite: bool = True) -> float:
    """Scale every gradient by ``max_norm / (total + 1e-6)`` when that is below 1, where ``total``
    is the ``norm_type``-norm of all the gradients together (as if concatenated into one vector);
    returns ``total``, the norm *before* clipping.

    Args:
        parameters: a layer or model (its parameters), a parameter, or an iterable of parameters.
        max_norm: the largest total norm to allow (>= 0).
        norm_type: ``p`` of the p-norm (> 0), or ``math.inf`` for the largest absolute element.
        error_if_nonfinite: raise ``NonFiniteError`` (naming the first parameter with NaN/inf in
            its gradient, and changing nothing) when the total norm is NaN or inf.  PyTorch's
            default is ``False``, which scales such gradients by 0 (NaN where they were inf).

    The 1e-6 is PyTorch's: a total of exactly ``max_norm`` is scaled by ``1 - 1e-6 / max_norm``.
    """
    who = "clip_grad_norm_"
    if not (is_number(max_norm) and math.isfinite(max_norm) and max_norm >= 0):
        raise ValueError(f"{who}: max_norm must be a finite number >= 0, got {max_norm!r}")
    if not (is_number(norm_type) and norm_type > 0):  # (NaN fails the comparison)
        raise ValueError(f"{who}: norm_type must be a number > 0 or math.inf, got {norm_type!r}")
    nonfinite_raises = switch(error_if_nonfinite, "error_if_nonfinite", who)
    return _clip_norm(who, _named(who, parameters), float(max_norm), float(norm_type), nonfinite_raises,
                      " (error_if_nonfinite=False scales anyway, as PyTorch does by default)")


def _clip_norm(who: str, named: list[tuple[str, Parameter]], max_norm: float, p: float, error_if_nonfinite: bool,
               advice: str = "") -> float:
    """:func:`clip_grad_norm_` on checked arguments; ``advice`` ends the non-finite error's message."""
    params = _with_gradients(named)
    norms = [_norm(q.grad, p) for _, q in params]
    if not all(math.isfinite(n) for n in norms):
        total = math.nan if any(math.isnan(n) for n in norms) else math.inf
        if error_if_nonfinite:
            name, q = next(pq for pq, n in zip(params, norms, strict=True) if not math.isfinite(n))
            raise NonFiniteError(
                f"{who}: the total gradient norm is {total}: the gradient of parameter {name} (shape "
                f"{q.shape}) holds NaN/inf; nothing was clipped{advice}")
    elif not norms or p == math.inf:
        total = max(norms, default=0.0)
    else:  # the p-norm of the per-tensor norms, scaled by the largest so that no power overflows
        big = max(norms)
        total = big * math.fsum((n / big) ** p for n in norms) ** (1.0 / p) if big > 0 else 0.0
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # (a NaN total, with error_if_nonfinite=False: NaN gradients, as PyTorch)
        # (inf * 0 = NaN, what error_if_nonfinite=False asks for: no warning then)
        with np.errstate(invalid="ignore") if not math.isfinite(total) else contextlib.nullcontext():
            for _, q in params:
                g = q.grad
                if g.flags.writeable:
                    np.multiply(g, coef, out=g)
                else:  # a read-only gradient (np.broadcast_to): replaced by its scaled copy, as the optimizers
                    q.grad = np.multiply(g, coef)  # read it; in place it would fail after others were scaled
    return total


def clip_grad_value_(parameters: Layer | Parameter | Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place (NaN stays NaN; a
    read-only gradient array is replaced by a clipped copy)."""
    who = "clip_grad_value_"
    if not (is_number(clip_value) and math.isfinite(clip_value) and clip_value >= 0):
        raise ValueError(f"{who}: clip_value must be a finite number >= 0, got {clip_value!r}")
    v = float(clip_value)
    for _, q in _with_gradients(_named(who, parameters)):
        g = q.grad
        if g.flags.writeable:
            np.clip(g, -v, v, out=g)
        else:  # read-only (np.broadcast_to): replaced by a clipped copy, as in clip_grad_norm_
            q.grad = np.clip(g, -v, v)
