"""The training loop's own cost: ``minidl.training.fit`` against a bare loop of the same steps.

The network is 784-256-256-10 with softmax cross-entropy and plain SGD, batch 64 (the issue's
reference).  Per epoch the two contenders do the same training steps on the same batches:

* **bare**: a Python ``for`` over batches sliced *before* the clock starts, each step
  ``zero_grad / forward / loss / backward / step(zero_grad=True)`` (fit's step, in the loop a user
  writes by hand, minus the batching: the floor);
* **fit**: ``model.fit(x, y, epochs=1, ...)`` with shuffling (a fresh permutation and a fancy-index
  copy per batch), the running loss, the history, and ``verbose=0`` (no output) or ``verbose=1``
  (a tqdm progress bar, written to a null stream); and, to tell the loop's bookkeeping from the
  shuffle's memory traffic, ``verbose=0`` with ``shuffle=False`` (each batch a view of ``x``: no
  copy at all).

The shuffled modes move data that the bare loop does not (a gathered copy of 64 rows a batch), so
a fourth contender is the loop a user writes by hand to shuffle: **hand-shuffled**, the bare loop over
``x[idx], y[idx]`` for ``idx`` the slices of a fresh ``permutation(n)`` (the same order fit draws).
Its cost over the bare loop is what shuffling costs any NumPy loop; fit's over it is what fit adds.
A fifth, **hand-copied**, copies each batch in order (``x[start:stop].copy()``): the same bytes moved
without the shuffle, which tells what of the gather's cost is the copy and what the random rows.

Every round times the bare loops and each fit mode once, in a rotating order (so that each takes every
place equally often and no mode is timed in a block of its own, which drifts by 2-3 points on a shared
machine), and a mode's overhead is the median over rounds of ``fit / bare - 1`` in the same round, by
the wall clock and by the process's CPU time (which leaves out the time the
process waited for a core on a busy machine; with ``--threads 1`` it is the fairer of the two), and
as the ratio of the fastest epochs (the least disturbed by other processes).  Each median comes with its
95% interval from the rounds' order statistics (no assumption on the noise's distribution): the target
is met when the interval's top is under it, and undecided while the interval straddles it.
The bare loop calls the same backward method that ``fit`` calls (it is printed:
``backward_params`` skips the unused gradient of the data, ``backward`` computes it), so that the
overhead is the loop's alone; the first line gives the bare loop with ``backward`` over the bare
loop with ``backward_params``: what skipping that gradient saves.

Usage::

    python benchmarks/loop_overhead.py [--quick] [--samples 8192] [--pairs 15] [--threads 1]

(``--pairs`` P: 6 P rounds, each contender in each place P times; 90 rounds by default.)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from minidl.layer import parameter_backward

LR = 0.01


def build(dtype: type, seed: int = 0) -> md.Sequential:
    return md.Sequential(md.Dense(784, 256, rng=seed, dtype=dtype), md.ReLU(),
                         md.Dense(256, 256, rng=seed + 1, dtype=dtype), md.ReLU(),
                         md.Dense(256, 10, rng=seed + 2, dtype=dtype))


def fit_backward_name() -> str:
    """Which backward ``fit`` calls on this script's model (``backward_params`` or ``backward``): the choice of
    :func:`minidl.layer.parameter_backward`, the function ``fit`` asks."""
    return parameter_backward(build(np.float32)).__name__


def bare_epoch(model: md.Sequential, loss: md.Loss, optimizer: md.Optimizer,
               batches: Iterable[tuple[np.ndarray, np.ndarray]], backward_name: str) -> float:
    """fit's steps over ``batches`` (a list sliced before the clock starts, or a generator making each batch):
    ``zero_grad / forward / loss / backward / step(zero_grad=True)``; returns the summed loss."""
    backward = getattr(model, backward_name)
    total = 0.0
    for xb, yb in batches:
        optimizer.zero_grad()
        value = loss(model(xb), yb)
        backward(loss.backward())
        optimizer.step(zero_grad=True)  # as fit does
        total += value * len(xb)
    return total


def hand_shuffled_epoch(model: md.Sequential, loss: md.Loss, optimizer: md.Optimizer, x: np.ndarray,
                        y: np.ndarray, batch_size: int, seed: int, backward_name: str) -> float:
    """The bare loop over shuffled batches, as written by hand: a fresh permutation from ``seed`` (fit's
    ``rng=seed`` draws the same), each batch the fancy-indexed copy ``x[idx], y[idx]``."""
    order = np.random.default_rng(seed).permutation(len(x))
    shuffled = ((x[idx], y[idx]) for idx in (order[start:start + batch_size]
                                              for start in range(0, len(x), batch_size)))
    return bare_epoch(model, loss, optimizer, shuffled, backward_name)


def hand_copied_epoch(model: md.Sequential, loss: md.Loss, optimizer: md.Optimizer, x: np.ndarray,
                      y: np.ndarray, batch_size: int, backward_name: str) -> float:
    """The bare loop over batches copied in order, ``x[start:stop].copy()``: the same bytes moved as the
    hand-shuffled loop's gather, from consecutive rows, to tell the copy's cost from the shuffle's."""
    copied = ((x[start:start + batch_size].copy(), y[start:start + batch_size].copy())
              for start in range(0, len(x), batch_size))
    return bare_epoch(model, loss, optimizer, copied, backward_name)


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free interval for the median of ``values``: the order statistics x_(j+1) and
    x_(n-j) (1-based) for the largest j with P(Binomial(n, 1/2) <= j) <= (1 - level) / 2, so that it
    holds the true median with probability 1 - 2 P(B <= j) >= level.  Returns (low, high, coverage);
    below 6 values no such j exists at 95% and the interval is the whole range, with its lower coverage."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_interval: no values")
    tail, cdf, j = (1 - level) / 2, 0.0, 0
    for i in range(n):
        cdf += math.comb(n, i) / 2 ** n
        if cdf > tail:
            break
        j = i
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n
    return xs[j], xs[n - 1 - j], coverage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default 8192)")
    parser.add_argument("--pairs", type=int, default=None, help="timed (bare, fit) pairs per mode (default 15)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS to this many threads (via threadpoolctl; default: its own default)")
    args = parser.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.threads):
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    n = args.samples or (1024 if args.quick else 8192)
    pairs = args.pairs or (2 if args.quick else 15)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 784)).astype(dtype)
    y = rng.integers(0, 10, size=n)
    bs = args.batch_size
    batches = [(x[i:i + bs].copy(), y[i:i + bs].copy()) for i in range(0, n, bs)]
    used = fit_backward_name()

    model = build(dtype)
    loss = md.CrossEntropyLoss()
    optimizer = md.SGD(model.parameters(), lr=LR)
    threads = f"BLAS threads limited to {args.threads}" if args.threads else "default BLAS threads"
    print(f"784-256-256-10, batch {bs}, {np.dtype(dtype).name}, {n} samples ({len(batches)} steps) per epoch; "
          f"fit calls model.{used}; {6 * pairs} rounds of the three bare loops and the three fit modes; {threads}\n")

    # the cost of the unused input gradient, for the record: bare loops with either backward
    for name in ("backward", "backward_params"):
        bare_epoch(model, loss, optimizer, batches[:4], name)
    ratio_dx = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        bare_epoch(model, loss, optimizer, batches, "backward_params")
        t1 = time.perf_counter()
        bare_epoch(model, loss, optimizer, batches, "backward")
        t2 = time.perf_counter()
        ratio_dx.append((t2 - t1) / (t1 - t0))
    print(f"bare loop with backward / with backward_params: {statistics.median(ratio_dx):.3f} "
          f"(runs {min(ratio_dx):.3f}-{max(ratio_dx):.3f})\n")

    modes = [(0, True), (1, True), (0, False)]
    sink = io.StringIO()

    def fit_epoch(verbose: int, shuffle: bool) -> None:
        with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            model.fit(x, y, loss=loss, optimizer=optimizer, epochs=1, batch_size=bs, shuffle=shuffle, rng=1,
                      verbose=verbose)

    contenders: list[Callable[[], object]] = [
        functools.partial(bare_epoch, model, loss, optimizer, batches, used),
        functools.partial(hand_shuffled_epoch, model, loss, optimizer, x, y, bs, 1, used)]
    contenders += [functools.partial(fit_epoch, verbose, shuffle) for verbose, shuffle in modes]
    contenders.append(functools.partial(hand_copied_epoch, model, loss, optimizer, x, y, bs, used))
    for run_one in contenders:  # warm-up (imports tqdm, fills caches)
        run_one()
    # every round times the bare loop and each fit mode once, in a rotating order (each contender takes
    # every place equally often), and each mode's overhead is its ratio to the same round's bare loop:
    # no mode is measured in a block of its own, which drifts by 2-3 points on a shared machine
    wall: list[list[float]] = [[] for _ in contenders]
    cpu: list[list[float]] = [[] for _ in contenders]
    for i in range(pairs * len(contenders)):
        k = i % len(contenders)
        for j in [*range(k, len(contenders)), *range(k)]:
            t0, c0 = time.perf_counter(), time.process_time()
            contenders[j]()
            wall[j].append(time.perf_counter() - t0)
            cpu[j].append(time.process_time() - c0)
    print(f"{len(wall[0])} rounds, each the bare, hand-shuffled and hand-copied loops and every fit mode once, in "
          "rotating order; overhead: median over rounds of fit / bare - 1 in the same round\n")
    level = median_interval(wall[0])[2]
    gather = [h / b - 1 for h, b in zip(wall[1], wall[0], strict=True)]
    low, high, _ = median_interval(gather)
    print(f"hand-shuffled loop / bare loop - 1 (what shuffling's gather costs a loop written by hand): "
          f"{statistics.median(gather) * 100:+.1f}% ({low * 100:+.1f}% to {high * 100:+.1f}%); "
          f"hand-shuffled epoch {statistics.median(wall[1]) * 1e3:.1f} ms\n")
    copied = [c / b - 1 for c, b in zip(wall[-1], wall[0], strict=True)]
    low, high, _ = median_interval(copied)
    print(f"hand-copied loop / bare loop - 1 (each batch copied in order: the gather's bytes without the "
          f"shuffle): {statistics.median(copied) * 100:+.1f}% ({low * 100:+.1f}% to {high * 100:+.1f}%)\n")
    print(f"| mode | bare epoch ms | fit epoch ms | fit overhead, wall: median ({level:.1%} interval of the median; "
          "rounds min-max) | fit overhead, process CPU time: median (interval) | fastest fit / fastest bare - 1 "
          "| fit / the same loop by hand - 1: median (interval) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, (verbose, shuffle) in enumerate(modes, start=2):
        by_hand = wall[1] if shuffle else wall[0]  # the loop a user writes for the same batches
        over_hand = [f / h - 1 for f, h in zip(wall[m], by_hand, strict=True)]
        hand_low, hand_high, _ = median_interval(over_hand)
        overheads = [f / b - 1 for f, b in zip(wall[m], wall[0], strict=True)]
        cpu_overheads = [f / b - 1 for f, b in zip(cpu[m], cpu[0], strict=True)]
        low, high, _ = median_interval(overheads)
        cpu_low, cpu_high, _ = median_interval(cpu_overheads)
        label = ("verbose=0" if verbose == 0 else "verbose=1 (tqdm bar)") + ("" if shuffle else ", shuffle=False")
        print(f"| {label} | {statistics.median(wall[0]) * 1e3:.1f} | {statistics.median(wall[m]) * 1e3:.1f} | "
              f"{statistics.median(overheads) * 100:+.1f}% ({low * 100:+.1f}% to {high * 100:+.1f}%; "
              f"{min(overheads) * 100:+.1f}% to {max(overheads) * 100:+.1f}%) | "
              f"{statistics.median(cpu_overheads) * 100:+.1f}% ({cpu_low * 100:+.1f}% to {cpu_high * 100:+.1f}%) | "
              f"{(min(wall[m]) / min(wall[0]) - 1) * 100:+.1f}% | "
              f"{statistics.median(over_hand) * 100:+.1f}% ({hand_low * 100:+.1f}% to {hand_high * 100:+.1f}%) |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
