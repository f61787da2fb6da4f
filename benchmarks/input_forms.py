"""What the extra inputs cost: the same layer's forward + backward with and without a padding mask, and
cross-attention against self-attention.

Each row times the plain form (A) and the new one (B) of one layer, float32, alternately in the same
process (A B B A ...; a block of steps per turn), and prints the medians and the median over rounds of
the per-round ratio B / A with its range.  Usage::

    python benchmarks/input_forms.py [--rounds 15] [--steps 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.train_step import blas_limits


def _block(step: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def compare(plain: Callable[[], object], new: Callable[[], object], rounds: int, steps: int) -> tuple[float, ...]:
    """(median plain s, median new s, median ratio, min ratio, max ratio) over alternating rounds."""
    plain(), new()  # warm-up
    a_times, b_times, ratios = [], [], []
    for r in range(rounds):
        if r % 2:
            b, a = _block(new, steps), _block(plain, steps)
        else:
            a, b = _block(plain, steps), _block(new, steps)
        a_times.append(a)
        b_times.append(b)
        ratios.append(b / a)
    return (statistics.median(a_times), statistics.median(b_times), statistics.median(ratios), min(ratios),
            max(ratios))


def cases(rng: np.random.Generator) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    import minidl as md

    f32 = np.float32
    lstm = md.LSTM(64, 128, rng=0, dtype=f32)
    x = rng.normal(size=(32, 50, 64)).astype(f32)
    g = rng.normal(size=(32, 50, 128)).astype(f32)
    pad = np.arange(50)[None, :] >= rng.integers(10, 51, size=32)[:, None]
    attn = md.MultiHeadAttention(64, 4, rng=0, dtype=f32)
    xa = rng.normal(size=(32, 20, 64)).astype(f32)
    ga = rng.normal(size=xa.shape).astype(f32)
    pad_a = np.arange(20)[None, :] >= rng.integers(5, 21, size=32)[:, None]
    memory = rng.normal(size=(32, 20, 64)).astype(f32)

    def run(layer: md.Layer, inputs: object, grad: np.ndarray) -> Callable[[], object]:
        return lambda: (layer(inputs), layer.backward(grad))

    return [
        ("LSTM(64 -> 128), 32x50, padding mask (lengths 10..50)", run(lstm, x, g), run(lstm, (x, pad), g)),
        ("MultiHeadAttention(64, 4), 32x20, key padding mask", run(attn, xa, ga), run(attn, (xa, pad_a), ga)),
        ("MultiHeadAttention(64, 4), 32x20, cross (S=20) vs self", run(attn, xa, ga), run(attn, (xa, memory), ga)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="steps per turn")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS to this many threads")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| layer, input | plain µs | new µs | new / plain (rounds min-max) |")
    print("|---|---:|---:|---:|")
    with blas_limits(args.threads):
        for label, plain, new in cases(rng):
            a, b, ratio, low, high = compare(plain, new, args.rounds, args.steps)
            print(f"| {label} | {a * 1e6:.0f} | {b * 1e6:.0f} | {ratio:.3f} ({low:.3f}-{high:.3f}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
