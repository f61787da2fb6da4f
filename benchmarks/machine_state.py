"""Which speed the machine is at: the same training step timed again and again, with two BLAS threads and one.

On the project's 2-core VM the 784-256-256-10 step (batch 64, float32) takes either about 670 µs or
about 1450 µs with two BLAS threads, switching every few seconds, while with one thread it takes the
same ~1000 µs in both states: the second virtual core comes and goes.  A benchmark run that falls in
the slow state reads other ratios (the single-threaded parts of a step weigh more), so run this just
before (or beside) a benchmark to know which state it met.

Every ``--every`` seconds it times ``--steps`` steps with the default threads and, when ``threadpoolctl``
is installed, the same with one thread; it prints one line per sample and, at the end, each state's share
and medians.  A sample is *slow* when its default-threads time is above ``--split`` times the run's
fastest sample (default 1.5: the two states differ by about 2.2x).

Usage::

    python benchmarks/machine_state.py [--seconds 60] [--every 0.5] [--steps 30] [--quiet]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md


def make_step(seed: int = 0) -> Callable[[], None]:
    """One SGD step of 784-256-256-10 on a fixed batch of 64 (float32), as ``fit`` takes it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    model = md.Sequential(md.Dense(784, 256, rng=seed, dtype=np.float32), md.ReLU(),
                          md.Dense(256, 256, rng=seed + 1, dtype=np.float32), md.ReLU(),
                          md.Dense(256, 10, rng=seed + 2, dtype=np.float32))
    loss = md.CrossEntropyLoss()
    optimizer = md.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        loss(model(x), y)
        model.backward_params(loss.backward())
        optimizer.step(zero_grad=True)

    return step


def one_thread() -> contextlib.AbstractContextManager[object] | None:
    """A context limiting BLAS to one thread, or None without ``threadpoolctl``."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(1)


def per_step_us(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1e6


def samples(step: Callable[[], None], seconds: float, every: float, steps: int) -> Iterator[tuple[float, float | None]]:
    """(default threads µs, one thread µs or None) per sample, for ``seconds`` (one sample at least)."""
    end = time.monotonic() + seconds
    while True:
        default = per_step_us(step, steps)
        limit = one_thread()
        single = None
        if limit is not None:
            with limit:
                single = per_step_us(step, steps)
        yield default, single
        if time.monotonic() >= end:
            return
        time.sleep(every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--split", type=float, default=1.5)
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args(argv)
    step = make_step()
    for _ in range(10):  # warm-up
        step()
    rows = []
    for default, single in samples(step, args.seconds, args.every, args.steps):
        rows.append((default, single))
        if not args.quiet:
            print(f"{time.strftime('%H:%M:%S')}  default threads {default:7.0f} µs"
                  + ("" if single is None else f"   one thread {single:7.0f} µs"), flush=True)
    threshold = args.split * min(d for d, _ in rows)
    print(f"\n{len(rows)} samples of {args.steps} steps (784-256-256-10, batch 64, float32); slow: default threads "
          f"above {threshold:.0f} µs ({args.split} x the fastest)")
    print("| state | share | default threads µs, median | one thread µs, median |")
    print("|---|---:|---:|---:|")
    for name, chosen in (("fast", [r for r in rows if r[0] <= threshold]),
                         ("slow", [r for r in rows if r[0] > threshold])):
        singles = [s for _, s in chosen if s is not None]
        print(f"| {name} | {len(chosen) / len(rows):.0%} | "
              f"{statistics.median(d for d, _ in chosen) if chosen else float('nan'):.0f} | "
              f"{statistics.median(singles) if singles else float('nan'):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
