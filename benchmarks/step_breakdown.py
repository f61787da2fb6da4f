"""Where minidl's training step spends its time, piece by piece, next to the hand-written step.

For an MLP (ReLU between Dense layers, softmax cross-entropy, plain SGD) the script times, in the
same loop and alternately, each piece of minidl's step (``zero_grad``, each layer's forward, the
loss, each layer's backward, the update) and the same piece of the hand-written step (which has no
``zero_grad``: it computes fresh gradients), and prints the median of each and the difference.
The differences are minidl's overhead, located.

Usage::

    python benchmarks/step_breakdown.py [--sizes 784,256,256,10] [--batch 64] [--dtype float32]
                                        [--steps 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.reference import softmax_cross_entropy
from minidl import aligned

LR = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="784,256,256,10")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    dtype = np.dtype(args.dtype).type
    rng = np.random.default_rng(0)
    init = [(rng.uniform(-1, 1, size=(a + 1, b)) / np.sqrt(a)).astype(dtype) for a, b in itertools.pairwise(sizes)]
    x = rng.normal(size=(args.batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=args.batch)

    layers: list[md.Layer] = []
    for i, W in enumerate(init):
        layers.append(md.Dense(W.shape[0] - 1, W.shape[1], W=W, dtype=dtype))
        if i < len(init) - 1:
            layers.append(md.ReLU())
    model = md.Sequential(*layers)
    loss = md.CrossEntropyLoss()
    optimizer = md.SGD(model.parameters(), lr=LR)
    Ws = [aligned.copy(W) for W in init]  # laid out as minidl lays out its own (minidl.aligned)
    last = len(layers) - 1

    times: dict[str, dict[str, list[float]]] = {"minidl": {}, "numpy": {}}

    def record(side: str, piece: str, seconds: float) -> None:
        times[side].setdefault(piece, []).append(seconds)

    def minidl_step() -> None:
        t = clock()
        optimizer.zero_grad()
        record("minidl", "zero_grad", clock() - t)
        h = x
        for i, layer in enumerate(layers):
            t = clock()
            h = layer(h)
            record("minidl", f"forward {i} {type(layer).__name__}", clock() - t)
        t = clock()
        loss(h, y)
        g = loss.backward()
        record("minidl", "loss (forward + backward)", clock() - t)
        for i in range(last, -1, -1):
            t = clock()
            if i:
                g = layers[i].backward(g)
            else:
                layers[0].backward_params(g)  # type: ignore[attr-defined]
            record("minidl", f"backward {i} {type(layers[i]).__name__}", clock() - t)
        t = clock()
        optimizer.step(zero_grad=True)
        record("minidl", "update", clock() - t)

    def numpy_step() -> None:
        inputs, masks, h = [], [], x
        for j, W in enumerate(Ws):
            t = clock()
            inputs.append(h)
            z = h @ W[1:]
            z += W[0]
            record("numpy", f"forward {2 * j} Dense", clock() - t)
            if j < len(Ws) - 1:
                t = clock()
                mask = z > 0
                z *= mask
                masks.append(mask)
                record("numpy", f"forward {2 * j + 1} ReLU", clock() - t)
            h = z
        t = clock()
        _, g = softmax_cross_entropy(h, y)
        record("numpy", "loss (forward + backward)", clock() - t)
        grads = []
        for j in range(len(Ws) - 1, -1, -1):
            t = clock()
            dW = inputs[j].T @ g
            db = g.sum(axis=0)
            if j:
                g = g @ Ws[j][1:].T
            record("numpy", f"backward {2 * j} Dense", clock() - t)
            if j:
                t = clock()
                g *= masks[j - 1]
                record("numpy", f"backward {2 * j - 1} ReLU", clock() - t)
            grads.append((Ws[j], dW, db))
        t = clock()
        for W, dW, db in grads:
            dW *= LR
            W[1:] -= dW
            db *= LR
            W[0] -= db
        record("numpy", "update", clock() - t)

    clock = time.perf_counter
    limits = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    with limits:
        for _ in range(10):
            minidl_step()
            numpy_step()
        times = {"minidl": {}, "numpy": {}}
        for i in range(args.steps):
            for step in (minidl_step, numpy_step) if i % 2 == 0 else (numpy_step, minidl_step):
                step()

    print(f"{'-'.join(map(str, sizes))}, batch {args.batch}, {args.dtype}, {args.steps} steps each, "
          f"{'BLAS threads ' + str(args.threads) if args.threads else 'default BLAS threads'}; medians in µs\n")
    print("| piece | minidl | numpy | minidl - numpy |")
    print("|---|---:|---:|---:|")
    total = {"minidl": 0.0, "numpy": 0.0}
    for piece, values in times["minidl"].items():
        ours = statistics.median(values) * 1e6
        theirs = statistics.median(times["numpy"][piece]) * 1e6 if piece in times["numpy"] else 0.0
        total["minidl"] += ours
        total["numpy"] += theirs
        print(f"| {piece} | {ours:.1f} | {theirs:.1f} | {ours - theirs:+.1f} |")
    print(f"| **sum** | {total['minidl']:.1f} | {total['numpy']:.1f} | {total['minidl'] - total['numpy']:+.1f} "
          f"({total['minidl'] / total['numpy']:.3f}x) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
