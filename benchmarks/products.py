"""The matrix products of a 784-256-256-10 training step: NumPy's BLAS against PyTorch's, one by one.

A NumPy framework cannot be faster than its own matrix multiplies, and neither can the hand-written
NumPy step it is measured against.  When PyTorch's step is faster than the hand-written NumPy step
(``train_step.py`` at batch 512), this script shows where from: the same products, on the same
arrays (``torch.from_numpy`` shares their memory), timed in alternate blocks (NumPy, PyTorch,
PyTorch, NumPy, ...) of ``--calls`` calls each, the first ``--warm`` of a block not timed: with several
threads, the other library's idle workers spin on the cores for milliseconds after its last product
(OpenBLAS's and OpenMP's busy-waiting), which the untimed calls absorb.  Per product the median call
of each library and the median of the per-round ratios; then the sum of the medians.

Usage::

    python benchmarks/products.py [--batch 512] [--dtype float64] [--threads 1] [--rounds 8]

Needs PyTorch (a separate venv; see docs/performance.md); prints NumPy's times alone without it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def products(batch: int, dtype: type, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each product's two operands, as the step lays them out (a transpose is a view, as in the step)."""
    def a(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    x, h1, h2 = a(batch, 784), a(batch, 256), a(batch, 256)
    g1, g2, g3 = a(batch, 256), a(batch, 256), a(batch, 10)
    W1, W2, W3 = a(784, 256), a(256, 256), a(256, 10)
    return {
        "forward x @ W1": (x, W1), "forward h1 @ W2": (h1, W2), "forward h2 @ W3": (h2, W3),
        "dW3 = h2.T @ g3": (h2.T, g3), "dh2 = g3 @ W3.T": (g3, W3.T),
        "dW2 = h1.T @ g2": (h1.T, g2), "dh1 = g2 @ W2.T": (g2, W2.T),
        "dW1 = x.T @ g1": (x.T, g1),
    }


def block(f: Callable[[], object], calls: int, warm: int) -> list[float]:
    """The times of the last ``calls - warm`` of ``calls`` calls of ``f`` in a row."""
    times = []
    for i in range(calls):
        t0 = time.perf_counter()
        f()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=8, help="blocks per library and product (default 8)")
    parser.add_argument("--calls", type=int, default=30, help="calls per block (default 30)")
    parser.add_argument("--warm", type=int, default=10, help="untimed calls at the start of a block (default 10)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS and PyTorch to this many threads")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    cases = products(args.batch, dtype, np.random.default_rng(0))
    torch_blas = ""
    if torch is not None:
        config = torch.__config__.show()
        torch_blas = "MKL" if "USE_MKL=ON" in config else "its own BLAS"
    print(f"784-256-256-10 step's products, batch {args.batch}, {args.dtype}, {args.rounds} rounds of blocks of "
          f"{args.calls} calls ({args.warm} untimed), "
          f"{'threads ' + str(args.threads) if args.threads else 'default threads'}; NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__} ({torch_blas})" if torch is not None else " (no PyTorch)") + "\n")
    print("| product | numpy µs | torch µs | numpy / torch (median of rounds) |")
    print("|---|---:|---:|---:|")
    sums = {"numpy": 0.0, "torch": 0.0}
    for name, (a, b) in cases.items():
        contenders: dict[str, Callable[[], object]] = {"numpy": lambda a=a, b=b: a @ b}
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)  # the same memory, transposed views included
            contenders["torch"] = lambda ta=ta, tb=tb: ta @ tb
        times: dict[str, list[float]] = {who: [] for who in contenders}
        ratios = []
        for r in range(args.rounds):
            order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
            medians = {}
            for who in order:
                got = block(contenders[who], args.calls, args.warm)
                times[who] += got
                medians[who] = statistics.median(got)
            if torch is not None:
                ratios.append(medians["numpy"] / medians["torch"])
        median = {who: statistics.median(t) for who, t in times.items()}
        for who in median:
            sums[who] += median[who]
        if torch is None:
            print(f"| {name} | {median['numpy'] * 1e6:.1f} | - | - |")
        else:
            print(f"| {name} | {median['numpy'] * 1e6:.1f} | {median['torch'] * 1e6:.1f} | "
                  f"{statistics.median(ratios):.3f} |")
    if torch is None:
        print(f"| **sum** | {sums['numpy'] * 1e6:.1f} | - | - |")
    else:
        print(f"| **sum of the medians** | {sums['numpy'] * 1e6:.1f} | {sums['torch'] * 1e6:.1f} | "
              f"{sums['numpy'] / sums['torch']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
