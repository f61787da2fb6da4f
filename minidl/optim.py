"""Optimizers: they read each parameter's ``.grad`` and update its ``.data`` in place.

Update rules and defaults follow PyTorch's, so the same gradients give the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .errors import StateDictError
from .parameter import Parameter

__all__ = ["SGD", "Optimizer"]

Hyper = dict[str, float | bool]


class Optimizer:
    """Base class: holds the parameters, per-parameter state and hyper-parameters.

    Subclasses implement :meth:`update` for one parameter.  ``state[i]`` is a dict of arrays
    (and ints) for ``params[i]``; it is what :meth:`state_dict` saves.
    """

    def __init__(self, params: Iterable[Parameter], hyper: Hyper) -> None:
        name = type(self).__name__
        if isinstance(params, Parameter):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. model.parameters()), "
                            "not a single Parameter")
        try:
            plist = list(params)
        except TypeError:
            raise TypeError(
                f"{name}: params must be an iterable of Parameters, got {type(params).__name__}"
            ) from None
        if not plist:
            raise ValueError(f"{name}: got an empty parameter list; nothing to optimise")
        for i, p in enumerate(plist):
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: params[{i}] is a {type(p).__name__}, expected a Parameter")
        unique: dict[int, Parameter] = {}
        for p in plist:
            unique.setdefault(id(p), p)
        self.params: list[Parameter] = list(unique.values())
        lr = hyper.get("lr")
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"{name}: lr must be a finite number > 0, got {lr!r}")
        for key, value in hyper.items():
            if key != "lr" and not isinstance(value, bool) and (not np.isfinite(value) or value < 0):
                raise ValueError(f"{name}: {key} must be a finite number >= 0, got {value!r}")
        self.hyper: Hyper = dict(hyper)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    @property
    def lr(self) -> float:
        return float(self.hyper["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be a finite number > 0, got {value!r}")
        self.hyper["lr"] = float(value)

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Update every trainable parameter from its ``.grad``."""
        for p, state in zip(self.params, self.state, strict=True):
            if p.requires_grad:
                self.update(p, state)

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyper", "state": {"0": {name: array or int}, ...}}``, copies throughout."""
        return {
            "type": type(self).__name__,
            "hyper": dict(self.hyper),
            "state": {
                str(i): {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                for i, s in enumerate(self.state)
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state; refuses (listing every problem, changing
        nothing) a different optimizer type, parameter count, shapes or dtypes."""
        name = type(self).__name__
        problems: list[str] = []
        if not isinstance(state, Mapping):
            raise TypeError(f"{name}.load_state_dict expects a mapping, got {type(state).__name__}")
        for key in ("type", "hyper", "state"):
            if key not in state:
                problems.append(f"missing key '{key}'")
        if problems:
            raise StateDictError(f"{name}.load_state_dict refused the state: " + "; ".join(problems))
        if state["type"] != name:
            problems.append(f"state is for {state['type']!r}, not {name!r}")
        extra = [key for key in state if key not in ("type", "hyper", "state")]
        if extra:
            problems.append(f"unexpected keys {extra}")
        hyper = state["hyper"]
        if not isinstance(hyper, Mapping) or set(hyper) != set(self.hyper):
            got = sorted(map(str, hyper)) if isinstance(hyper, Mapping) else type(hyper).__name__
            problems.append(f"hyper-parameters: expected keys {sorted(self.hyper)}, got {got}")
        else:
            for key, value in hyper.items():
                problem = _hyper_problem(key, value, self.hyper[key])
                if problem:
                    problems.append(f"hyper-parameter '{key}': {problem}")
        per_param = state["state"]
        if not isinstance(per_param, Mapping):
            problems.append(f"'state' must be a mapping, got {type(per_param).__name__}")
            per_param = {}
        expected_keys = {str(i) for i in range(len(self.params))}
        if set(per_param) != expected_keys:
            problems.append(f"state holds entries for {len(per_param)} parameters, "
                            f"this optimizer has {len(self.params)}")
        new_state: list[dict[str, Any]] = []
        for i, p in enumerate(self.params):
            entry = per_param.get(str(i), {})
            if not isinstance(entry, Mapping):
                problems.append(f"state '{i}': expected a mapping, got {type(entry).__name__}")
                entry = {}
            copied: dict[str, Any] = {}
            for key, value in entry.items():
                if isinstance(value, np.ndarray):
                    if value.shape != p.shape:
                        problems.append(f"state '{i}.{key}': expected shape {p.shape}, got {value.shape}")
                    elif value.dtype != p.dtype:
                        problems.append(f"state '{i}.{key}': expected dtype {p.dtype}, got {value.dtype}")
                    copied[key] = np.array(value, copy=True)
                elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                    copied[key] = value.item() if isinstance(value, np.generic) else value
                else:
                    problems.append(f"state '{i}.{key}': unsupported value of type {type(value).__name__}")
            new_state.append(copied)
        if problems:
            raise StateDictError(
                f"{name}.load_state_dict refused the state ({len(problems)} problem"
                f"{'s' if len(problems) > 1 else ''}); nothing was changed:\n  " + "\n  ".join(problems)
            )
        self.hyper = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in hyper.items()}
        self.state = new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"


def _hyper_problem(key: str, value: Any, current: Any) -> str | None:
    """Why ``value`` cannot replace the hyper-parameter ``key`` (now ``current``), or ``None``."""
    if isinstance(current, bool):
        return None if isinstance(value, (bool, np.bool_)) else f"expected a bool, got {value!r}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"expected a number, got {value!r}"
    if not np.isfinite(value) or value < 0:  # lr may be 0: a schedule may have annealed it there
        return f"expected a finite number >= 0, got {value!r}"
    return None


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule::

        g = grad + weight_decay * w              (L2, added before momentum)
        b = g (first step), else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b  (when momentum > 0)
        w = w - lr * g
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "nesterov": bool(nesterov), "dampening": dampening})

    def update(self, p: Parameter, state: dict[str, Any]) -> None:
        h = self.hyper
        lr, momentum, wd = h["lr"], h["momentum"], h["weight_decay"]
        g = p.grad
        if wd:
            g = g + wd * p.data
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - h["dampening"]) * g
            g = g + momentum * buf if h["nesterov"] else buf
        p.data -= lr * g
