"""What minidl's layer contract costs: its training step with the contract relaxed, against the
hand-written step.

Two rules of minidl's layers cost time that the hand-written step (``benchmarks/reference.py``) does
not spend:

* **checked inputs**: ``Dense`` checks every input (an ndarray of the right rank, width and dtype,
  no NaN/inf: one BLAS dot product over it);
* **inputs and gradients left alone**: no layer modifies its input or its ``grad_output``
  (docs/custom-layers.md; the gradient checker reports a layer that does), so ``ReLU`` writes its
  output, and its ``dx``, into new arrays.  The hand-written step applies the ReLU in place to its
  own temporaries, in forward and in backward.

This script builds the same MLP from subclasses that break these rules on purpose -- a ``Dense``
without input checks, a ``ReLU`` that works in place -- and times each variant against the
hand-written step exactly as ``train_step.py`` times minidl (alternate A B / B A rounds, median of
per-round ratios, several runs).  The variants exist for this measurement only: they are not part
of minidl, and ``tests/test_benchmark_reference.py`` checks that they compute the same step.

Usage::

    python benchmarks/contract_cost.py [--only 512] [--threads 1] [--runs 3] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.train_step import (
    LR,
    Case,
    Step,
    environment,
    estimate_step,
    minidl_train_step,
    mlp_setup,
    time_alternately,
)

__all__ = ["VARIANTS", "InPlaceReLU", "UncheckedDense", "build_variant"]


class UncheckedDense(md.Dense):
    """``Dense`` without its input checks (rank, width, dtype, NaN/inf): **not** for use."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        W = self.W.data
        self._x = x
        if not self.bias:
            return x @ W
        out = x @ W[1:]
        out += W[0]
        return out


class InPlaceReLU(md.ReLU):
    """``ReLU`` computed in place, as the hand-written step does: forward overwrites its input,
    backward its ``grad_output`` (both break the layer contract): **not** for use."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = x > 0
        x *= mask
        self._mask = mask
        self._cache = x
        self._dtype = x.dtype
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output *= self._mask
        return grad_output


#: variant name -> (Dense class, ReLU class)
VARIANTS: dict[str, tuple[type[md.Dense], type[md.ReLU]]] = {
    "minidl": (md.Dense, md.ReLU),
    "unchecked Dense": (UncheckedDense, md.ReLU),
    "in-place ReLU": (md.Dense, InPlaceReLU),
    "both": (UncheckedDense, InPlaceReLU),
}


def build_variant(name: str, init: list[np.ndarray], dtype: type) -> md.Sequential:
    """The benchmark's MLP (``Dense`` with ``W = init[i]``, ReLU between) from the variant's classes."""
    dense, relu = VARIANTS[name]
    layers: list[md.Layer] = []
    for i, W in enumerate(init):
        layers.append(dense(W.shape[0] - 1, W.shape[1], W=W, dtype=dtype))
        if i < len(init) - 1:
            layers.append(relu())
    return md.Sequential(*layers)


def variant_step(name: str, init: list[np.ndarray], case: Case, x: np.ndarray, y: np.ndarray) -> Step:
    model = build_variant(name, init, case.dtype)
    return minidl_train_step(model, md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=LR), x, y)


def cases() -> list[Case]:
    return [Case("64-128-10", "mlp", (64, 128, 10), 32, np.float32),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 64, np.float32),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 512, np.float32)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run only rows whose label contains this text")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant and row (default 3)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per run (default 1.5)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)")
    args = parser.parse_args(argv)
    limits: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    with limits:
        for line in environment():
            print(line)
        print(f"\n{args.runs} runs per cell of about {args.seconds} s each; each cell: that variant's step "
              "/ the hand-written step, median over runs of each run's median per-round ratio (runs "
              "min-max)\n")
        print("| network, batch, dtype | " + " | ".join(f"{name} / numpy" for name in VARIANTS) + " |")
        print("|---|" + "---:|" * len(VARIANTS), flush=True)
        for case in cases():
            if args.only not in case.label:
                continue
            setup = mlp_setup(case)
            cells = [case.label]
            for name in VARIANTS:
                steps = {"minidl": variant_step(name, setup.init, case, setup.x, setup.y),
                         "numpy": setup.factories["numpy"]()}
                per_step = max(estimate_step(step) for step in steps.values())
                rounds = int(min(2000, max(6, args.seconds / (2 * per_step))))
                ratios = time_alternately(steps, args.runs, rounds, 0.3).run_ratios["minidl/numpy"]
                cells.append(f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
