"""The cost as a function the checker can evaluate cheaply and repeatably.

``Program`` wraps the checker's private float64 copy of the model (and loss).  It

* splits a ``Sequential`` (nested ones too) into *stages*, so that perturbing a tensor used first by
  stage k re-runs only stages k, k+1, ... from the stored input of stage k (prefix reuse);
* replays every registered ``np.random.Generator`` to the state it had when that stage first ran,
  and restores every buffer, before each evaluation -- so dropout-like layers draw the same numbers
  every time and are checked in training mode;
* computes the cost: the loss with its targets, or ``CF = sum(R * y)`` with a fixed random ``R`` (for several
  outputs, a tuple of arrays, ``sum_i R_i . y_i`` over the floating ones).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..layer import Layer
from ..losses import check_loss_gradient
from ..model import Sequential
from ._state import copy_value
from .precision import CostTally


def _is_float(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "fc"


def _floats(y: Any) -> list[np.ndarray]:
    """The float arrays of an output: itself, or those of a tuple of several."""
    return [a for a in (y if type(y) is tuple else (y,)) if _is_float(a)]


def _several_outputs(y: Any) -> bool:
    """Whether ``y`` is several outputs the cost without a loss takes, ``sum_i R_i . y_i`` over the floating
    ones: a tuple of arrays, one at least floating (an integer one, indices, takes no gradient: ``None``)."""
    return type(y) is tuple and all(isinstance(a, np.ndarray) for a in y) and any(map(_is_float, y))


def _shapes(y: Any) -> Any:
    """An output's shape, or its parts' (``None`` for a part without one)."""
    return tuple(getattr(a, "shape", None) for a in y) if type(y) is tuple else getattr(y, "shape", None)


def flatten_stages(model: Layer, prefix: str = "") -> list[tuple[str, Layer]]:
    """The layers a plain ``Sequential`` applies in order (recursively); any other layer is one stage."""
    if isinstance(model, Sequential) and type(model).forward is Sequential.forward and len(model) > 0:
        stages: list[tuple[str, Layer]] = []
        for name, child in model.named_children():
            stages.extend(flatten_stages(child, f"{prefix}.{name}" if prefix else name))
        return stages
    return [(prefix, model)]


class Program:
    """Evaluate ``cost(model(x))`` from any stage, repeatably.  See the module docstring."""

    def __init__(self, model: Layer, loss: Any, x: Any, targets: Any, rng: np.random.Generator,
                 reuse_prefix: bool = True) -> None:
        self.model = model
        self.loss = loss
        self.x = x
        self.targets = targets
        self.rng = rng
        self.stages = flatten_stages(model) if reuse_prefix else [("", model)]
        self.generators: list[np.random.Generator] = []
        seen: set[int] = set()
        for _, gen in model.named_generators():
            if id(gen) not in seen:
                seen.add(id(gen))
                self.generators.append(gen)
        # buffers of each stage, restored before every evaluation that runs the stage
        self.stage_buffers: list[list[tuple[Layer, str, np.ndarray | None]]] = []
        for _, layer in self.stages:
            self.stage_buffers.append([
                (sub, name, None if buf is None else buf.copy())
                for sub in layer.layers() for name, buf in sub._buffers.items()
            ])
        self.has_buffers = any(self.stage_buffers)
        self.gen_start = self._gen_states()
        self.stage_inputs: list[Any] = []
        self.stage_gens: list[list[Any]] = []
        #: the default cost's projection: an array, or for several outputs a tuple with one per float output
        #: (None for another: indices, a mask), or None with a loss
        self.R: Any = None
        #: NaN/inf values in the last baseline's output (an array's), for the checker's notes; while
        #: there are any, ``sum(R * output)`` is taken quietly (inf - inf is NaN, not a warning)
        self.nonfinite_outputs = 0
        self.evaluations = 0
        #: whether NumPy's floating-point warnings are off already (:meth:`probing`): evaluate then skips its errstate
        self._probing = False
        #: the prediction the loss last judged, for :func:`check_loss_gradient`
        self.y_pred: Any = None
        self.on_evaluate: Callable[[], None] | None = None
        #: what the loss's values say about the precision it computes in (see :mod:`.precision`)
        self.tally = CostTally()

    # ------------------------------------------------------------------ state replay
    def _gen_states(self) -> list[Any]:
        return [g.bit_generator.state for g in self.generators]

    def _set_gens(self, states: list[Any]) -> None:
        for g, s in zip(self.generators, states, strict=True):
            g.bit_generator.state = s

    def _restore_buffers(self, first_stage: int) -> None:
        for entries in self.stage_buffers[first_stage:]:
            for sub, name, saved in entries:
                current = sub._buffers.get(name)
                if saved is None:
                    if current is not None:
                        setattr(sub, name, None)
                elif (current is not None and current.shape == saved.shape and current.dtype == saved.dtype
                      and current.flags.writeable):
                    np.copyto(current, saved)
                else:
                    setattr(sub, name, saved.copy())

    def reset(self) -> None:
        """Generators and buffers as at the start (before a full forward)."""
        self._set_gens(self.gen_start)
        self._restore_buffers(0)

    # ------------------------------------------------------------------ evaluation
    def baseline(self, check: bool = True) -> tuple[Any, float]:
        """Run the whole model once, storing each stage's input and generator states; returns (y, cost).
        ``check=False``: the output is not checked (the probe that draws a loss's targets)."""
        self.reset()
        act = self.x  # the activation: each stage's input in turn, at the end the model's output
        self.stage_inputs = []
        self.stage_gens = []
        for _, layer in self.stages:
            self.stage_inputs.append(act if act is self.x else copy_value(act))
            self.stage_gens.append(self._gen_states())
            act = layer(act)
        if check:
            self._check_output(act)
        # several outputs (a plain tuple, as several inputs are) for a loss that takes them; anything else
        # one array
        y = act if type(act) is tuple else np.asarray(act)
        self.nonfinite_outputs = sum(int(a.size - np.count_nonzero(np.isfinite(a))) for a in _floats(y))
        if self.loss is None and self.R is None:
            # a fixed random projection, never all-ones: every output element gets its own weight
            if type(y) is not tuple:
                self.R = np.asarray(self.rng.standard_normal(np.shape(y)))
            elif _several_outputs(y):
                self.R = tuple(np.asarray(self.rng.standard_normal(a.shape)) if _is_float(a) else None for a in y)
        self.evaluations += 1
        if self.loss is None and self.R is None:  # (the unchecked probe of several outputs: no cost)
            return y, math.nan
        return y, self.cost(y)

    def _check_output(self, y: Any) -> None:
        """The model's output must be something to differentiate: an array (or a number), several outputs (a
        tuple of arrays, one at least floating), or with a loss whatever that loss takes; ``None`` is a forward
        that forgot its ``return``."""
        name = type(self.stages[-1][1]).__name__
        if y is None:
            raise TypeError(f"GradientChecker: {name}.forward returned None, not an array (a forward without "
                            "a return statement?)")
        if self.loss is None and not _several_outputs(y) and not isinstance(y, (np.ndarray, np.generic, int, float)):
            what = "a tuple holding no floating array" if type(y) is tuple and all(
                isinstance(a, np.ndarray) for a in y) else f"a {type(y).__name__}"
            raise TypeError(f"GradientChecker: {name}.forward returned {what}, not an array: without a loss the "
                            "cost is sum(R * output), which needs one array, or several outputs as a tuple of "
                            "arrays, one at least floating (the cost sum_i R_i . y_i over those); return one of "
                            "these, or pass a loss that takes this output")

    def cost(self, y: Any) -> float:
        """The cost of the output ``y``: ``loss.forward(y, targets)``, or without a loss ``sum(R * y)`` with the
        fixed random ``R`` :meth:`baseline` drew (summed over the outputs of a model with several, one ``R`` per
        floating output); an output whose shape is not ``R``'s raises :class:`~minidl.errors.NonDeterministicError`."""
        if self.loss is None:
            assert self.R is not None
            several = type(self.R) is tuple
            pairs = list(zip(self.R, y, strict=True)) if several and type(y) is tuple and len(y) == len(self.R) \
                else [(self.R, y)] if not several and type(y) is not tuple else None
            if pairs is None or any(r is not None and np.shape(a) != r.shape for r, a in pairs):
                from ..errors import NonDeterministicError

                raise NonDeterministicError(
                    f"the model's output shape changed between evaluations ({_shapes(self.R)} -> {_shapes(y)})"
                )
            with np.errstate(invalid="ignore", over="ignore") if self.nonfinite_outputs else contextlib.nullcontext():
                return sum(float(np.dot(r.reshape(-1), np.asarray(a).reshape(-1))) for r, a in pairs if r is not None)
        # (as baseline hands it over: several outputs a plain tuple, anything else one array)
        self.y_pred = y if type(y) is tuple else np.asarray(y)
        value = float(self.loss.forward(self.y_pred, self.targets))
        self.tally.add(value)
        return value

    def upstream(self) -> Any:
        """dCost/dy for the last evaluated cost."""
        if self.loss is None:
            assert self.R is not None
            if type(self.R) is tuple:  # (None for an output that takes no gradient)
                return tuple(None if r is None else r.copy() for r in self.R)
            return self.R.copy()
        g = self.loss.backward()
        check_loss_gradient(self.loss, self.y_pred, g, "GradientChecker: ", runs_in=np.float64)
        return g  # (a tuple, one per output of a model with several)

    def evaluate(self, stage: int = 0, act: Any = None) -> float:
        """The cost, running stages ``stage, stage+1, ...`` from ``act``, by default the stored input of ``stage``.

        NumPy's floating-point warnings are silenced here: these are the check's probes (a step may take the
        user's forward out of its domain, ``log`` of a negative number), whose NaN/inf the checker handles and
        says in its own notes; the unperturbed point's forward (:meth:`baseline`) and backward keep them.  Inside
        :meth:`probing` (the checker's numerical phase) they are off already: no ``np.errstate`` per call."""
        if not self._probing:
            with self.probing():
                return self.evaluate(stage, act)
        if self.generators:
            self._set_gens(self.stage_gens[stage])
        if self.has_buffers:
            self._restore_buffers(stage)
        if act is None:
            act = self.stage_inputs[stage]
        for _, layer in self.stages[stage:]:
            act = layer(act)
        self.evaluations += 1
        return self.cost(act)

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        """NumPy's floating-point warnings off for a run of probe evaluations (a tensor's numerical derivatives),
        entered once instead of at each :meth:`evaluate` (~1 us each)."""
        if self._probing:
            yield
            return
        self._probing = True
        try:
            with np.errstate(all="ignore"):
                yield
        finally:
            self._probing = False

    def first_stage_of(self) -> dict[int, int]:
        """``id(parameter) -> index of the first stage that uses it``."""
        first: dict[int, int] = {}
        for k, (_, layer) in enumerate(self.stages):
            for _, p in layer.named_parameters():
                first.setdefault(id(p), k)
        return first
