"""Peak of NumPy's array data alone during one training step, for the small networks.

``train_step.py`` reports the ``tracemalloc`` peak without the Python objects the training holds;
on the 6-weight regression what is left is still mostly the step's short-lived Python objects.
This script looks at array data only: NumPy reports it to ``tracemalloc`` in a domain of its own
(``np.lib.tracemalloc_domain``), and ``tracemalloc`` has no per-domain peak, so the domain's total is
sampled after every line and every C call of the step.  That is a lower bound (a temporary made and
freed inside one C call is missed), slow (seconds per step), and exact enough for arrays of a few
hundred bytes.

Usage::

    python benchmarks/array_memory.py
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.train_step import Case, Step, mlp_setup, traced_warm_step


def sampled_array_peak(step: Step) -> int:
    """Bytes of array data traced at the fullest sampled moment of one call of ``step``."""
    only_arrays = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]
    peak = 0

    def sample() -> None:
        nonlocal peak
        traces = tracemalloc.take_snapshot().filter_traces(only_arrays).traces
        peak = max(peak, sum(trace.size for trace in traces))

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if event in ("line", "return"):
            sample()
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_return":
            sample()

    sys.settrace(on_line)
    sys.setprofile(on_call)
    try:
        step()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return peak


def measure(factory: Callable[[], Step]) -> int:
    """The sampled array-data peak of one steady-state step."""
    with traced_warm_step(factory) as step:
        return sampled_array_peak(step)


def main() -> int:
    print("| network, batch, dtype | array peak bytes minidl | array peak bytes numpy | ratio |")
    print("|---|---:|---:|---:|")
    for dtype in (np.float32, np.float64):
        for sizes, batch, loss in (((5, 1), 32, "mse"), ((64, 128, 10), 32, "ce")):
            case = Case("5 -> 1 regression (MSE)" if loss == "mse" else "64-128-10", "mlp", sizes, batch, dtype, loss)
            setup = mlp_setup(case)
            ours, theirs = measure(setup.factories["minidl"]), measure(setup.factories["numpy"])
            print(f"| {case.label} | {ours} | {theirs} | {ours / theirs:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
