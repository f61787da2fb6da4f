"""The training loop's own cost counted, not timed: instructions and simulated cache misses of an epoch of
``fit`` against the bare loop of ``loop_overhead.py``, under valgrind's cachegrind.

On a shared machine the wall clock of an epoch moves by 10-30% from one round to the next, so a loop
overhead of a few percent is a median of noisy ratios.  Cachegrind runs the same code on a simulated CPU
and counts exactly: the instructions executed, and the misses of its first-level data cache (D1) and
last-level cache (LL).  Each contender runs 1 and then 3 epochs in a fresh process (BLAS on one thread,
so that the count is deterministic); half the difference is one epoch, without the start-up.  Cachegrind
does not time anything: what it cannot see is how long a miss takes, or the machine's other processes.

Usage (valgrind must be installed; about a minute per run at 2048 samples, twice that with --cache-sim)::

    python benchmarks/loop_instructions.py [--samples 2048] [--cache-sim]

``--worker MODE EPOCHS`` runs one contender without valgrind (what each measured process runs).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.loop_overhead import LR, bare_epoch, build, fit_backward_name

#: the contenders: the bare loop over batches sliced beforehand (views of x), and fit with and without shuffling
MODES = ("bare", "fit", "fit-no-shuffle")
#: cachegrind's summary lines read, as the table's columns
COUNTS = {"I   refs": "instructions", "D1  misses": "D1 misses", "LL misses": "LL misses"}


def worker(mode: str, epochs: int, samples: int, batch_size: int = 64) -> None:
    """``epochs`` epochs of ``mode`` on the 784-256-256-10 network, float32 (one process's work)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=samples)
    model = build(np.float32)
    loss = md.CrossEntropyLoss()
    optimizer = md.SGD(model.parameters(), lr=LR)
    batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, samples, batch_size)]  # (fit's, unshuffled)
    backward = fit_backward_name()  # (once: it builds a model, millions of instructions)
    for _ in range(epochs):
        if mode == "bare":
            bare_epoch(model, loss, optimizer, batches, backward)
        else:
            model.fit(x, y, loss=loss, optimizer=optimizer, epochs=1, batch_size=batch_size,
                      shuffle=mode == "fit", rng=1, verbose=0)


def parse_counts(report: str) -> dict[str, int]:
    """The counts of cachegrind's summary (``==123== I   refs:      2,265,008,296``), by column name."""
    found = {}
    for line in report.splitlines():
        for key, column in COUNTS.items():
            match = re.search(re.escape(key) + r":\s+([\d,]+)", line)
            if match:
                found[column] = int(match.group(1).replace(",", ""))
    return found


def measure(mode: str, epochs: int, samples: int, cache_sim: bool) -> dict[str, int]:
    """Cachegrind's counts of one fresh process running ``epochs`` epochs of ``mode``."""
    command = ["valgrind", "--tool=cachegrind", f"--cache-sim={'yes' if cache_sim else 'no'}",
               "--cachegrind-out-file=/dev/null", sys.executable, __file__, "--worker", mode, str(epochs),
               "--samples", str(samples)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return parse_counts(done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2048, help="samples per epoch (default 2048: 32 batches)")
    parser.add_argument("--cache-sim", action="store_true", help="also simulate the caches (about twice as slow)")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "EPOCHS"), help="run one contender, unmeasured")
    args = parser.parse_args(argv)
    if args.worker:
        mode, epochs = args.worker
        if mode not in MODES:
            parser.error(f"MODE must be one of {MODES}, got {mode!r}")
        worker(mode, int(epochs), args.samples)
        return 0
    if shutil.which("valgrind") is None:
        print("loop_instructions.py: valgrind is not installed (it counts; this script only drives it)")
        return 2
    per_epoch: dict[str, dict[str, float]] = {}
    for mode in MODES:
        one, three = (measure(mode, e, args.samples, args.cache_sim) for e in (1, 3))
        per_epoch[mode] = {column: (three[column] - one[column]) / 2 for column in one}
        print(f"{mode}: {per_epoch[mode]}", flush=True)
    steps = -(-args.samples // 64)
    print(f"\n784-256-256-10, batch 64, float32, {args.samples} samples ({steps} steps) per epoch; one BLAS thread; "
          "per epoch: (3 epochs - 1 epoch) / 2\n")
    columns = list(per_epoch["bare"])
    print("| contender | " + " | ".join(f"{c} per epoch | vs bare" for c in columns) + " |")
    print("|---|" + "---:|---:|" * len(columns))
    for mode in MODES:
        cells = [f"{per_epoch[mode][c]:,.0f} | " + (f"{(per_epoch[mode][c] / per_epoch['bare'][c] - 1) * 100:+.2f}%"
                                                    if per_epoch["bare"][c] else "-")  # (LL: the data fit, 0 misses)
                 for c in columns]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
