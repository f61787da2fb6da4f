"""Exact snapshots of a layer's state, so the checker can prove (and enforce) that it changed nothing.

The checker works on a float64 deep copy and never touches the user's model; the snapshot is a
second line of defence: after the check, the original is compared bit for bit with the snapshot
and anything that differs (a shared object the copy could not separate, say) is put back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layer import Layer
from ..parameter import Parameter

__all__ = ["LayerSnapshot", "copy_value", "same"]


def _bytes(a: np.ndarray) -> np.ndarray:
    """The array's bytes as a flat uint8 view (no copy for a contiguous array)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def same(a: Any, b: Any) -> bool:
    """Bit-exact equality: arrays of one shape and dtype with the same bytes (so NaN equals the same
    NaN and -0.0 differs from 0.0); tuples, lists and dicts element by element; ``==`` otherwise."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.hasobject:
            return bool(np.all(a == b))
        return bool(np.array_equal(_bytes(a), _bytes(b)))
    if a is None or b is None:
        return a is b
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return False


def copy_value(v: Any) -> Any:
    """An independent copy of a layer's input or output, an array in its memory layout (a layer fed
    the copy reduces in the same order, to the same bits, as when fed the original), else a deep copy."""
    return v.copy(order="K") if isinstance(v, np.ndarray) else copy.deepcopy(v)


@dataclass
class LayerSnapshot:
    """Copies of every parameter (data and grad), buffer, generator state and train flag."""

    params: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, bool]] = field(
        default_factory=list)
    buffers: list[tuple[Layer, str, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)
    generators: list[tuple[np.random.Generator, Any]] = field(default_factory=list)
    modes: list[tuple[Layer, bool]] = field(default_factory=list)

    @classmethod
    def take(cls, layer: Layer, extra: list[Any] | tuple[Any, ...] = ()) -> LayerSnapshot:
        """The snapshot of ``layer``, and of ``extra``: parameters, layers and generators outside it (a
        loss's)."""
        snap = cls()
        roots = [layer, *(v for v in extra if isinstance(v, Layer))]
        params = [p for root in roots for p in root.parameters()] + [p for p in extra if isinstance(p, Parameter)]
        for p in {id(p): p for p in params}.values():
            # (parameter, data object, grad object, data copy, grad copy, grad-is-stale flag, requires_grad);
            # the grad is taken as stored, without the zero-fill that reading ``p.grad`` after zero_grad does
            grad = p._grad
            snap.params.append((p, p.data, grad, p.data.copy(), grad.copy(), p._grad_is_stale, p.requires_grad))
        for sub in {id(sub): sub for root in roots for sub in root.layers()}.values():
            for name, buf in sub._buffers.items():
                snap.buffers.append((sub, name, buf, None if buf is None else buf.copy()))
            snap.modes.append((sub, sub.training))
        gens = [g for root in roots for _, g in root.named_generators()]
        gens += [g for g in extra if isinstance(g, np.random.Generator)]
        for gen in {id(g): g for g in gens}.values():
            snap.generators.append((gen, gen.bit_generator.state))
        return snap

    def differences(self) -> list[str]:
        """What differs now from the snapshot (empty if nothing)."""
        out: list[str] = []
        for p, data, grad, data_copy, grad_copy, stale, req in self.params:
            if p.data is not data or not same(p.data, data_copy):
                out.append(f"parameter data {p!r}")
            if p._grad is not grad or p._grad_is_stale != stale or not (stale or same(grad, grad_copy)):
                out.append(f"parameter grad {p!r}")
            if p.requires_grad != req:
                out.append(f"requires_grad of {p!r}")
        for sub, name, buf, buf_copy in self.buffers:
            if sub._buffers.get(name) is not buf or not same(buf, buf_copy):
                out.append(f"buffer {type(sub).__name__}.{name}")
        for gen, state in self.generators:
            if not same(gen.bit_generator.state, state):  # (MT19937, Philox, SFC64 states hold arrays)
                out.append(f"generator {gen!r}")
        for sub, mode in self.modes:
            if sub.training != mode:
                out.append(f"training flag of {type(sub).__name__}")
        return out

    def restore(self) -> None:
        """Put every object and value back exactly as it was when the snapshot was taken."""
        for p, data, grad, data_copy, grad_copy, stale, req in self.params:
            if data.shape == data_copy.shape and data.dtype == data_copy.dtype and data.flags.writeable:
                np.copyto(data, data_copy)
            p.data = data
            if grad.shape == grad_copy.shape and grad.dtype == grad_copy.dtype and grad.flags.writeable:
                np.copyto(grad, grad_copy)
            # as stored, not through the setter: a stale grad may lag a data that changed shape (a
            # layer that fills a placeholder weight and calls zero_grad), which the setter refuses
            p._grad = grad
            p._grad_is_stale = stale
            p.requires_grad = req
        for sub, name, buf, buf_copy in self.buffers:
            if buf is not None and buf_copy is not None and buf.flags.writeable:
                np.copyto(buf, buf_copy)
            if sub._buffers.get(name) is not buf:
                setattr(sub, name, buf)
        for gen, state in self.generators:
            gen.bit_generator.state = state
        for sub, mode in self.modes:
            object.__setattr__(sub, "training", mode)
