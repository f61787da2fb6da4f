"""``fit``'s fixed cost per call: a one-batch ``fit`` against the bare training step of the same batch.

A user who calls ``fit`` once per epoch, or on small data, pays for every call what ``fit`` does around its
batches: the checks of its arguments, the walks of the model and the loss, the history, the modes, the
release of the caches at the end.  This script measures that cost on the network of ``loop_overhead.py``
(784-256-256-10, softmax cross-entropy, plain SGD, batch 64):

* **bare**: one step ``zero_grad / forward / loss / backward_params / step(zero_grad=True)`` on the batch;
* **fit**: ``model.fit(x, y, epochs=1, batch_size=64, verbose=0)`` on the same 64 samples (one batch), with
  ``shuffle=False`` (the batch is a view of ``x``: the loop's own cost alone) and with ``shuffle=True, rng=1``
  (a permutation drawn and the batch gathered, as by default).

Every round times each contender once, in a rotating order (each takes every place equally often), as
``--calls`` calls in a row; a mode's fixed cost is the median over rounds of ``fit - bare`` per call in the
same round, with its 95% interval from the rounds' order statistics (``loop_overhead.median_interval``).

``--revision REV`` compares with the ``minidl`` package of git revision ``REV``, extracted with ``git archive``:
the script runs itself in child processes, alternately on this tree's package and on the revision's (``--runs``
of each, in the order A B B A A B ...), and prints each one's fixed cost over all its rounds, with the medians
of the runs.  The revision's package is imported under its own name, ``minidl``, in its own process (not under
another name, as ``compare_revisions.py`` does for the step: minidl tells its own layers and losses by their
module's name, and the caches ``fit`` releases at its end are those of minidl's own classes only).

Usage::

    python benchmarks/fit_fixed_cost.py [--quick] [--rounds 200] [--calls 5] [--threads 1] [--revision REV [--runs 4]]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: the environment variable naming the folder whose ``minidl`` a child run of ``--revision`` imports
PACKAGE_DIR = "FIT_FIXED_COST_MINIDL"
sys.path.insert(0, str(ROOT))
if os.environ.get(PACKAGE_DIR):  # (a child run: the revision's minidl, before this tree's)
    sys.path.insert(0, os.environ[PACKAGE_DIR])

import minidl as md  # noqa: E402  (after the path: this tree's, or a child run's revision)
from benchmarks.loop_overhead import LR, median_interval  # noqa: E402

BATCH = 64
MODES = ("shuffle=False", "shuffle=True")


def build(pkg: Any, dtype: type = np.float32, seed: int = 0) -> Any:
    """``loop_overhead``'s 784-256-256-10 network, built from the package ``pkg``."""
    return pkg.Sequential(pkg.Dense(784, 256, rng=seed, dtype=dtype), pkg.ReLU(),
                          pkg.Dense(256, 256, rng=seed + 1, dtype=dtype), pkg.ReLU(),
                          pkg.Dense(256, 10, rng=seed + 2, dtype=dtype))


def contenders(pkg: ModuleType, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], object]]:
    """The bare step and the one-batch fits, on one model, loss and optimizer built from ``pkg``."""
    model = build(pkg)
    loss = pkg.CrossEntropyLoss()
    optimizer = pkg.SGD(model.parameters(), lr=LR)

    def bare() -> None:
        optimizer.zero_grad()
        loss(model(x), y)
        model.backward_params(loss.backward())
        optimizer.step(zero_grad=True)

    def fit(shuffle: bool) -> None:
        model.fit(x, y, loss=loss, optimizer=optimizer, epochs=1, batch_size=BATCH, shuffle=shuffle, rng=1,
                  verbose=0)

    return {"bare": bare, MODES[0]: functools.partial(fit, False), MODES[1]: functools.partial(fit, True)}


def measure(rounds: int, calls: int) -> dict[str, list[float]]:
    """Per mode, each round's ``fit - bare`` (us per call); also ``"bare"``: the bare step's us per call."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=BATCH)
    timed = contenders(md, x, y)
    keys = list(timed)
    for key in keys:  # warm-up
        for _ in range(20):
            timed[key]()
    per_call: dict[str, list[float]] = {key: [] for key in keys}
    for i in range(rounds):
        k = i % len(keys)
        for key in [*keys[k:], *keys[:k]]:
            fn = timed[key]
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            per_call[key].append((time.perf_counter() - t0) / calls * 1e6)
    costs = {mode: [f - b for f, b in zip(per_call[mode], per_call["bare"], strict=True)] for mode in MODES}
    return {"bare": per_call["bare"], **costs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (per run with --revision; default 200)")
    parser.add_argument("--calls", type=int, default=5, help="calls of each contender in a row per round")
    parser.add_argument("--revision", default=None, help="compare with the minidl of this git revision (e.g. HEAD~1)")
    parser.add_argument("--runs", type=int, default=4, help="with --revision: child runs of each package")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # (a child run's output)
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS to this many threads (via threadpoolctl; default: its own default)")
    args = parser.parse_args(argv)
    if args.revision:
        return compare(args)
    if args.threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.threads):
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    rounds = args.rounds or (10 if args.quick else 200)
    result = measure(rounds, args.calls)
    if args.json:
        print(json.dumps({"minidl": md.__file__, **result}))
        return 0
    threads = f"BLAS threads limited to {args.threads}" if args.threads else "default BLAS threads"
    print(f"784-256-256-10, batch {BATCH}, float32, one batch per fit ({md.__file__}); {rounds} rounds of "
          f"{args.calls} calls of each contender in rotating order; {threads}\n")
    print("| mode | bare step us | fit - bare us: median (95% interval) |")
    print("|---|---:|---:|")
    for mode in MODES:
        low, high, _ = median_interval(result[mode])
        print(f"| {mode} | {statistics.median(result['bare']):.0f} | {statistics.median(result[mode]):.0f} "
              f"({low:.0f} to {high:.0f}) |")
    return 0


def compare(args: argparse.Namespace) -> int:
    """This tree's package against ``args.revision``'s, in alternate child runs of this script."""
    rounds = args.rounds or (10 if args.quick else 200)
    child = [sys.executable, str(Path(__file__).resolve()), "--json", "--rounds", str(rounds), "--calls",
             str(args.calls)] + (["--threads", str(args.threads)] if args.threads else [])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", args.revision, "minidl"],
                                     check=True, capture_output=True).stdout
        except subprocess.CalledProcessError as error:
            raise SystemExit(f"--revision {args.revision}: git archive found no minidl/ there "
                             f"({error.stderr.decode(errors='replace').strip()})") from None
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        folders = {"this tree": "", args.revision: tmp}
        results: dict[str, list[dict[str, Any]]] = {label: [] for label in folders}
        labels = list(folders)
        for i in range(2 * args.runs):  # A B B A A B ...: each first as often
            label = labels[(i + i // 2) % 2]
            env = {**os.environ, PACKAGE_DIR: folders[label]}
            out = subprocess.run(child, check=True, capture_output=True, text=True, env=env).stdout
            results[label].append(json.loads(out))
    threads = f"BLAS threads limited to {args.threads}" if args.threads else "default BLAS threads"
    print(f"784-256-256-10, batch {BATCH}, float32, one batch per fit; {args.runs} runs of each package in alternate "
          f"processes, each {rounds} rounds of {args.calls} calls of each contender in rotating order; {threads}\n")
    print("| minidl | mode | bare step us | fit - bare us: median over all rounds (95% interval) | "
          "medians of the runs |")
    print("|---|---|---:|---:|---|")
    medians: dict[tuple[str, str], float] = {}
    for label, runs in results.items():
        assert all(run["minidl"].startswith(folders[label] or str(ROOT)) for run in runs), "imported the wrong minidl"
        bare = [t for run in runs for t in run["bare"]]
        for mode in MODES:
            pooled = [c for run in runs for c in run[mode]]
            medians[(label, mode)] = statistics.median(pooled)
            low, high, _ = median_interval(pooled)
            each = ", ".join(f"{statistics.median(run[mode]):.0f}" for run in runs)
            print(f"| {label} | {mode} | {statistics.median(bare):.0f} | {medians[(label, mode)]:.0f} "
                  f"({low:.0f} to {high:.0f}) | {each} |")
    print()
    for mode in MODES:
        old, new = medians[(args.revision, mode)], medians[("this tree", mode)]
        print(f"{mode}: this tree's fixed cost {new - old:+.0f} us ({(new / old - 1) * 100:+.0f}%) against "
              f"{args.revision}'s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
