"""What minidl's layer contract costs: its training step against the same step with the contract
relaxed, and against the hand-written step.

Two rules of minidl's layers cost time that the hand-written step (``benchmarks/reference.py``) does
not spend:

* **checked inputs**: ``Dense`` checks every input (an ndarray of the right rank, width and dtype,
  no NaN/inf: one BLAS dot product over it);
* **inputs and gradients left alone**: no layer modifies its input or its ``grad_output``
  (docs/custom-layers.md; the gradient checker reports a forward that modifies its input), so
  ``ReLU`` writes its output, and its ``dx``, into new arrays.  The hand-written step applies the
  ReLU in place to its own temporaries, in forward and in backward.

This script builds the same MLP from subclasses that break these rules on purpose -- a ``Dense``
without input checks, a ``ReLU`` that works in place -- and times minidl's step against the
hand-written step and against each variant, pair by pair, in alternate A B / B A rounds (the
``time_alternately`` of ``train_step.py``; median of per-round ratios, several runs).  Each variant
is timed *directly against minidl*: on a machine whose speed drifts, the difference of two ratios
measured seconds apart is noise of the size of the effects.  The variants exist for this
measurement only: they are not part of minidl, and ``tests/test_benchmark_reference.py`` checks
that they break the rules and still compute minidl's steps.

Usage::

    python benchmarks/contract_cost.py [--only 512] [--threads 1] [--runs 3] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
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
    blas_limits,
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
        """x: (N, in_features) -> (N, out_features), whatever x holds."""
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
        """x: (any shape), overwritten by max(x, 0) and returned."""
        mask = x > 0
        x *= mask
        self._mask = mask
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (the forward's shape), multiplied by the 0/1 slope in place and returned."""
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
    """The benchmark's MLP from the variant's classes: ``Dense`` layers with ``W = init[i]``, each
    ``(in + 1, out)`` with row 0 the bias, and a ReLU between consecutive ones."""
    dense, relu = VARIANTS[name]
    layers: list[md.Layer] = []
    for i, W in enumerate(init):
        layers.append(dense(W.shape[0] - 1, W.shape[1], W=W, dtype=dtype))
        if i < len(init) - 1:
            layers.append(relu())
    return md.Sequential(*layers)


def variant_step(name: str, init: list[np.ndarray], case: Case, x: np.ndarray, y: np.ndarray) -> Step:
    """One training step of the variant (as ``train_step.minidl_train_step``) on x: (N, in), y: (N,)."""
    model = build_variant(name, init, case.dtype)
    return minidl_train_step(model, md.CrossEntropyLoss(), md.SGD(model.parameters(), lr=LR), x, y)


def cases() -> list[Case]:
    """The rows: the MLPs of ``train_step.py`` in float32 nearest their targets."""
    return [Case("64-128-10", "mlp", (64, 128, 10), 32, np.float32),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 64, np.float32),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 512, np.float32)]


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run only rows whose label contains this text")
    parser.add_argument("--runs", type=int, default=3, help="runs per row (default 3)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="approximate seconds per run per pair (default 1.5)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)")
    args = parser.parse_args(argv)
    variants = [name for name in VARIANTS if name != "minidl"]
    with blas_limits(args.threads):
        for line in environment():
            print(line)
        print(f"\n{args.runs} runs per row; per run and pair about {args.seconds} s of alternating rounds; "
              "each cell: median over the runs of each run's median per-round ratio (runs min-max).  "
              "The last column is implied: (minidl / numpy) * (both / minidl), run by run.\n")
        header = ["network, batch, dtype", "minidl / numpy", *(f"{name} / minidl" for name in variants),
                  "both / numpy"]
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1), flush=True)
        for case in cases():
            if args.only not in case.label:
                continue
            setup = mlp_setup(case)
            steps = {"minidl": setup.factories["minidl"](), "numpy": setup.factories["numpy"]()}
            for name in variants:
                steps[name] = variant_step(name, setup.init, case, setup.x, setup.y)
            per_step = max(estimate_step(step) for step in steps.values())
            rounds = int(min(2000, max(6, args.seconds / (2 * per_step))))
            ratios = time_alternately(steps, args.runs, rounds, 0.3).run_ratios
            to_numpy = ratios["minidl/numpy"]
            faster = {name: [1 / r for r in ratios[f"minidl/{name}"]] for name in variants}
            both = [a * b for a, b in zip(to_numpy, faster["both"], strict=True)]
            cells = [case.label, cell(to_numpy), *(cell(faster[name]) for name in variants), cell(both)]
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
