"""Time one training step of minidl against a hand-written NumPy step (and PyTorch, when importable).

A step is forward + loss + backward + a plain SGD update (``step(zero_grad=True)``), on one fixed
batch.  For every network the contenders start from the same parameters and see the same data.
minidl is timed against each other contender in turn, *alternately* (A, B, B, A, A, B, ...: each
follows the other equally often) in this one process, so that a shared, noisy machine slows both
sides of a ratio alike; the ratio reported is the median of the per-round ratios.  A run is many
such rounds after a warm-up; the script does several runs and reports the median ratio over runs and
its spread (min..max of the runs' ratios).  minidl's time is from its rounds against the
hand-written step.  ``--block K`` gives each contender turns of K steps and times the last K - 1 of
each: a step that follows one of its own, as in a training loop, rather than the other contender's.
Against PyTorch the turns are always at least 2 steps, the first untimed: PyTorch's OpenMP threads
spin on after its step (and OpenBLAS's after minidl's), so the first step after the switch competes
with the other side's threads for the two cores, which no training loop does.

The hand-written step's parameters lie where NumPy allocates them, as in any hand-written script;
minidl aligns its own to 64 bytes (``minidl.aligned``), which moves the ratio by several percent.
``--aligned-reference`` aligns the reference's too: the framework's overhead alone.

Peak memory: the peak of ``tracemalloc`` (NumPy reports its array allocations to it) during a
steady-state step, counting everything the training holds (parameters, gradients, optimizer buffers,
cached activations) plus temporaries.  The data batch is excluded, and so are the Python objects the
training holds (layers, loss, optimizer, their dicts, array headers: a fixed 1-30 KiB, printed in a
column of their own), which would otherwise be all there is to compare on the 6-weight regression.
PyTorch's memory is not traced.

Usage::

    python benchmarks/train_step.py            # the full table (a few minutes)
    python benchmarks/train_step.py --quick    # a smoke run (a few seconds)
    python benchmarks/train_step.py --block 4  # the steady state: each step after its own
    /work/torchvenv/bin/python benchmarks/train_step.py   # with the PyTorch columns

See ``docs/performance.md`` for the measured table and what it means.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.reference import CNNStep, MLPStep
from minidl import aligned

try:  # optional: PyTorch is never a dependency of minidl
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

LR = 0.01
#: Steps per turn against PyTorch (the first not timed), at least: see ``time_alternately``.
TORCH_BLOCK = 2
Step = Callable[[], float]


# ------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    """One row of the table: a network, a batch size and a dtype."""

    name: str
    kind: str  # "mlp" or "cnn"
    sizes: tuple[int, ...]  # MLP widths, input first; for the CNN: (channels, conv1, conv2, classes)
    batch: int
    dtype: type
    loss: str = "ce"  # "ce" or "mse"

    @property
    def label(self) -> str:
        return f"{self.name}, {self.batch}, {np.dtype(self.dtype).name}"


def mlp_cases() -> list[Case]:
    cases = []
    for dtype in (np.float32, np.float64):
        cases += [
            Case("5 -> 1 regression (MSE)", "mlp", (5, 1), 32, dtype, "mse"),
            Case("64-128-10", "mlp", (64, 128, 10), 32, dtype),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 64, dtype),
            Case("784-256-256-10", "mlp", (784, 256, 256, 10), 512, dtype),
        ]
    return cases


def cnn_cases() -> list[Case]:
    return [Case("CNN 1x28x28 c16-c32-d10", "cnn", (1, 16, 32, 10), 64, dtype)
            for dtype in (np.float32, np.float64)]


# ------------------------------------------------------------------------------------------- setups
@dataclass
class Setup:
    """The data and the initial parameters of one case, and a factory per contender."""

    case: Case
    x: np.ndarray
    y: np.ndarray
    factories: dict[str, Callable[[], Step]] = field(default_factory=dict)
    init: list[np.ndarray] = field(default_factory=list)  # an MLP's initial (in + 1, out) matrices;
    # the CNN's Dense matrix
    kernels: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # the CNN's (K, b) pairs


def mlp_setup(case: Case, seed: int = 0, aligned_reference: bool = False) -> Setup:
    """The parameters and data of an MLP row and a factory per contender.  ``aligned_reference``
    gives the hand-written step's parameters minidl's 64-byte alignment (``minidl.aligned``)."""
    rng = np.random.default_rng(seed)
    dtype = case.dtype
    sizes = case.sizes
    init = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / np.sqrt(fan_in)  # PyTorch's default init, bias included
        init.append(rng.uniform(-bound, bound, size=(fan_in + 1, fan_out)).astype(dtype))
    x = rng.normal(size=(case.batch, sizes[0])).astype(dtype)
    if case.loss == "ce":
        y = rng.integers(0, sizes[-1], size=case.batch)
    else:
        y = (x @ rng.normal(size=(sizes[0], sizes[-1])) + 0.1 * rng.normal(size=(case.batch, sizes[-1])))
        y = y.astype(dtype)
    setup = Setup(case, x, y, init=init)
    setup.factories["minidl"] = lambda: minidl_mlp(init, case, x, y)
    setup.factories["numpy"] = lambda: numpy_mlp(init, case, x, y, aligned_reference)
    if torch is not None:
        setup.factories["torch"] = lambda: torch_mlp(init, case, x, y)
    return setup


def minidl_mlp_model(init: list[np.ndarray], dtype: type, pkg: Any = md) -> md.Sequential:
    """Dense layers with ``W = init[i]`` and a ReLU between consecutive ones, from the package
    ``pkg`` (minidl, or another revision of it: ``compare_revisions.py``)."""
    layers: list[md.Layer] = []
    for i, W in enumerate(init):
        layers.append(pkg.Dense(W.shape[0] - 1, W.shape[1], W=W, dtype=dtype))
        if i < len(init) - 1:
            layers.append(pkg.ReLU())
    return pkg.Sequential(*layers)


def minidl_train_step(model: md.Layer, loss: md.Loss, optimizer: md.Optimizer,
                      x: np.ndarray, y: np.ndarray) -> Step:
    """The step a minidl user writes: forward, loss, backward, then the update and the gradients
    zeroed for the next step (``step(zero_grad=True)``, as ``fit`` does: plain SGD then updates
    through the gradient arrays instead of a temporary, as the hand-written step does).

    ``backward_params`` is ``backward`` without the gradient of the model's input, which nothing
    consumes here (the hand-written and PyTorch steps skip it too).
    """
    backward = getattr(model, "backward_params", model.backward)

    def step() -> float:
        value = loss(model(x), y)
        backward(loss.backward())
        optimizer.step(zero_grad=True)
        return value

    return step


def minidl_mlp(init: list[np.ndarray], case: Case, x: np.ndarray, y: np.ndarray) -> Step:
    model = minidl_mlp_model(init, case.dtype)
    loss = md.CrossEntropyLoss() if case.loss == "ce" else md.MSELoss()
    return minidl_train_step(model, loss, md.SGD(model.parameters(), lr=LR), x, y)


def numpy_mlp(init: list[np.ndarray], case: Case, x: np.ndarray, y: np.ndarray,
              aligned_reference: bool = False) -> Step:
    copy = aligned.copy if aligned_reference else np.copy
    ref = MLPStep([copy(W) for W in init], LR, case.loss)
    return lambda: ref(x, y)


def torch_step(model: Any, criterion: Any, x: Any, y: Any) -> Step:
    """The usual PyTorch step; ``.item()`` gives the loss as a Python float, as the others do."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)

    def step() -> float:
        optimizer.zero_grad()
        value = criterion(model(x), y)
        value.backward()
        optimizer.step()
        return float(value.item())

    return step


def torch_mlp(init: list[np.ndarray], case: Case, x: np.ndarray, y: np.ndarray) -> Step:
    tdtype = torch.float32 if case.dtype == np.float32 else torch.float64
    modules: list[Any] = []
    for i, W in enumerate(init):
        linear = torch.nn.Linear(W.shape[0] - 1, W.shape[1], dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W[1:].T)))
            linear.bias.copy_(torch.from_numpy(W[0].copy()))
        modules.append(linear)
        if i < len(init) - 1:
            modules.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*modules)
    if case.loss == "ce":
        criterion = torch.nn.CrossEntropyLoss()
        ty = torch.from_numpy(y.astype(np.int64))
    else:
        criterion = torch.nn.MSELoss()
        ty = torch.from_numpy(y)
    return torch_step(model, criterion, torch.from_numpy(x), ty)


def cnn_setup(case: Case, seed: int = 0, aligned_reference: bool = False) -> Setup:
    """As :func:`mlp_setup`, for the CNN row."""
    rng = np.random.default_rng(seed)
    dtype = case.dtype
    c_in, c1, c2, classes = case.sizes
    kernels = []
    for fan_c_in, c_out in ((c_in, c1), (c1, c2)):
        bound = 1 / np.sqrt(fan_c_in * 9)
        kernels.append((rng.uniform(-bound, bound, size=(c_out, fan_c_in, 3, 3)).astype(dtype),
                        rng.uniform(-bound, bound, size=c_out).astype(dtype)))
    flat = c2 * 5 * 5  # 28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5
    bound = 1 / np.sqrt(flat)
    W = rng.uniform(-bound, bound, size=(flat + 1, classes)).astype(dtype)
    x = rng.normal(size=(case.batch, c_in, 28, 28)).astype(dtype)
    y = rng.integers(0, classes, size=case.batch)
    setup = Setup(case, x, y, init=[W], kernels=kernels)
    setup.factories["minidl"] = lambda: minidl_cnn(kernels, W, case, x, y)
    setup.factories["numpy"] = lambda: numpy_cnn(kernels, W, x, y, aligned_reference)
    if torch is not None:
        setup.factories["torch"] = lambda: torch_cnn(kernels, W, case, x, y)
    return setup


def minidl_cnn_model(kernels: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray, dtype: type,
                     pkg: Any = md) -> md.Sequential:
    """Conv 3x3 -> ReLU -> MaxPool 2 (per kernel) -> Flatten -> Dense, with the given parameters,
    from the package ``pkg`` (as :func:`minidl_mlp_model`)."""
    layers: list[md.Layer] = []
    for K, b in kernels:
        conv = pkg.Conv2D(K.shape[1], K.shape[0], 3, dtype=dtype)
        set_conv_parameters(conv, K, b)
        layers += [conv, pkg.ReLU(), pkg.MaxPool2D(2)]
    layers += [pkg.Flatten(), pkg.Dense(W.shape[0] - 1, W.shape[1], W=W, dtype=dtype)]
    return pkg.Sequential(*layers)


def set_conv_parameters(conv: md.Layer, K: np.ndarray, b: np.ndarray) -> None:
    """Copy a ``(C_out, C_in, k, k)`` kernel and ``(C_out,)`` bias into a minidl ``Conv2D``."""
    params = dict(conv.named_parameters())
    if set(params) == {"W", "b"}:
        params["W"].assign(K)
        params["b"].assign(b)
    elif set(params) == {"W"}:  # bias absorbed as row 0 of a (C_in*k*k + 1, C_out) matrix
        params["W"].assign(np.concatenate([b[None, :], K.reshape(K.shape[0], -1).T]))
    else:  # pragma: no cover - depends on the layers engineer's design
        raise RuntimeError(f"unknown Conv2D parameter layout: {sorted(params)}")


def minidl_cnn(kernels: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray, case: Case,
               x: np.ndarray, y: np.ndarray) -> Step:
    model = minidl_cnn_model(kernels, W, case.dtype)
    loss = md.CrossEntropyLoss()
    return minidl_train_step(model, loss, md.SGD(model.parameters(), lr=LR), x, y)


def numpy_cnn(kernels: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray, x: np.ndarray, y: np.ndarray,
              aligned_reference: bool = False) -> Step:
    copy = aligned.copy if aligned_reference else np.copy
    ref = CNNStep([(copy(K), copy(b)) for K, b in kernels], copy(W), LR)
    return lambda: ref(x, y)


def torch_cnn(kernels: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray, case: Case,
              x: np.ndarray, y: np.ndarray) -> Step:
    tdtype = torch.float32 if case.dtype == np.float32 else torch.float64
    modules: list[Any] = []
    for K, b in kernels:
        conv = torch.nn.Conv2d(K.shape[1], K.shape[0], 3, dtype=tdtype)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(K))
            conv.bias.copy_(torch.from_numpy(b))
        modules += [conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    linear = torch.nn.Linear(W.shape[0] - 1, W.shape[1], dtype=tdtype)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W[1:].T)))
        linear.bias.copy_(torch.from_numpy(W[0].copy()))
    model = torch.nn.Sequential(*modules, torch.nn.Flatten(), linear)
    return torch_step(model, torch.nn.CrossEntropyLoss(), torch.from_numpy(x),
                      torch.from_numpy(y.astype(np.int64)))


# ------------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Per-contender step times (seconds) and per-run ratios to the hand-written step."""

    times: dict[str, list[float]]
    run_ratios: dict[str, list[float]]  # "minidl/numpy", "minidl/torch": one median ratio per run

    def median_us(self, who: str) -> float:
        return statistics.median(self.times[who]) * 1e6


def time_alternately(steps: dict[str, Step], runs: int, rounds: int, warmup: float, block: int = 1,
                     pair_blocks: dict[str, int] | None = None) -> Timing:
    """Time minidl against each other contender in turn, in pairs: ``rounds`` rounds of one step of
    each (order A, B then B, A, alternately, so each follows the other equally often) per run, and
    ``runs`` runs.  The pairs are timed apart (minidl vs numpy, then minidl vs torch), so that one
    contender's leftovers (e.g. PyTorch's OpenMP threads spinning after a step) never fall on a pair
    it is not part of (within its own pair they slow the other side's next step: see ``pair_blocks``).

    ``block > 1``: each contender's turn is ``block`` consecutive steps, and only the steps after
    the first count (their median is the turn's time): the steady state of a training loop, each
    step following one of its own rather than the other contender's, whose step evicts the caches.
    ``pair_blocks`` sets the block of a pair apart: ``{"torch": 2}`` (as :func:`run` does) because
    a step right after the other contender's pays for its threads, not only its caches (PyTorch's
    OpenMP threads spin on after its step, OpenBLAS's after NumPy's, and they share the two cores).
    """
    names = list(steps)
    deadline = time.perf_counter() + warmup
    n_warm = 0
    while n_warm < 3 or time.perf_counter() < deadline:
        for name in names:
            steps[name]()
        n_warm += 1
    times: dict[str, list[float]] = {name: [] for name in names}
    others = [name for name in names if name != "minidl"]
    run_ratios: dict[str, list[float]] = {f"minidl/{other}": [] for other in others}
    clock = time.perf_counter
    for _ in range(runs):
        for other in others:
            pair = ("minidl", other)
            pair_block = (pair_blocks or {}).get(other, block)
            per_round: dict[str, list[float]] = {"minidl": [], other: []}
            for r in range(rounds):
                for name in pair if r % 2 == 0 else pair[::-1]:
                    fn = steps[name]
                    turn = []
                    for _ in range(pair_block):
                        start = clock()
                        fn()
                        turn.append(clock() - start)
                    per_round[name].append(statistics.median(turn[1:] or turn))
            if other == others[0]:  # minidl's times from its first pairing (the hand-written step's)
                times["minidl"] += per_round["minidl"]
            else:  # and from each other pairing, whose turns may differ (PyTorch's: 2 steps)
                times.setdefault(f"minidl@{other}", []).extend(per_round["minidl"])
            times[other] += per_round[other]
            ratios = [a / b for a, b in zip(per_round["minidl"], per_round[other], strict=True)]
            run_ratios[f"minidl/{other}"].append(statistics.median(ratios))
    return Timing(times, run_ratios)


@dataclass(frozen=True)
class Memory:
    """Peak traced bytes during a steady-state step, and the Python objects (not array data) the
    training holds, counted right after that step: the layers, the optimizer, their dicts, array
    headers."""

    peak: int
    objects: int

    @property
    def arrays(self) -> int:
        """The peak without those objects: parameters, gradients, optimizer state, cached
        activations and every temporary of the step (what the memory target is about)."""
        return self.peak - self.objects


def python_object_bytes() -> int:
    """Traced bytes of Python objects (domain 0; NumPy's array data has a domain of its own)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, 0)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@contextlib.contextmanager
def traced_warm_step(factory: Callable[[], Step]) -> Iterator[Step]:
    """Start ``tracemalloc``, build the step (so the training's state is traced) and run it twice
    (caches and optimizer state in place); yield it for the measured step, then stop tracing."""
    if tracemalloc.is_tracing():  # it would count everything since it started, and be stopped by us
        raise RuntimeError("tracemalloc is already tracing (PYTHONTRACEMALLOC, -X tracemalloc?): nothing to measure")
    gc.collect()
    tracemalloc.start()
    try:
        step = factory()
        step()
        step()
        yield step
    finally:
        tracemalloc.stop()


def peak_memory(factory: Callable[[], Step]) -> Memory:
    """The peak during one steady-state step (see :func:`traced_warm_step`).

    NumPy reports its array data to ``tracemalloc`` in a domain of its own; Python objects are in
    domain 0, whose bytes held after the step (the structure, and the step's results and caches as
    headers) are reported apart (``Memory.objects``).
    """
    with traced_warm_step(factory) as step:
        tracemalloc.reset_peak()
        step()
        peak = tracemalloc.get_traced_memory()[1]
        return Memory(peak, python_object_bytes())  # after the peak: the snapshot's own objects stay out of it


def estimate_step(step: Step) -> float:
    start = time.perf_counter()
    for _ in range(3):
        step()
    return (time.perf_counter() - start) / 3


# ------------------------------------------------------------------------------------------- report
def blas_limits(threads: int | None) -> contextlib.AbstractContextManager[object]:
    """A context that limits BLAS to ``threads`` threads (threadpoolctl), or does nothing for None."""
    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def environment() -> list[str]:
    lines = [
        f"python {platform.python_version()}, numpy {np.__version__}, minidl {md.__version__}, "
        f"torch {torch.__version__ if torch is not None else 'not installed'}",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg()),
    ]
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            lines.append(f"{pool.get('internal_api')} {pool.get('version')}: kernel "
                         f"{pool.get('architecture')}, {pool.get('num_threads')} threads ({pool.get('prefix')})")
    except ImportError:
        lines.append("threadpoolctl not installed: BLAS kernel not reported")
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                      "OMP_NUM_THREADS") if k in os.environ}
    lines.append(f"environment: {env if env else 'no OPENBLAS_*/OMP_* variables set'}")
    if torch is not None:
        lines.append(f"torch threads: {torch.get_num_threads()}")
    return lines


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def run(cases: list[Case], runs: int, seconds_per_run: float, warmup: float, memory: bool,
        out: Any = sys.stdout, block: int = 1, aligned_reference: bool = False) -> list[dict[str, Any]]:
    have_torch = torch is not None
    header = ["network, batch, dtype", "minidl µs", "numpy µs", "minidl/numpy (runs min-max)"]
    if have_torch:
        header += ["torch µs", "minidl µs, same turns", "minidl/torch (runs min-max)"]
    if memory:
        header += ["peak KiB minidl", "peak KiB numpy", "memory ratio", "objects KiB minidl / numpy"]
    print("| " + " | ".join(header) + " |", file=out)
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", file=out, flush=True)
    results = []
    for case in cases:
        setup = (cnn_setup if case.kind == "cnn" else mlp_setup)(case, aligned_reference=aligned_reference)
        steps = {name: factory() for name, factory in setup.factories.items()}
        per_step = max(estimate_step(step) for step in steps.values())
        pair_blocks = {"torch": max(block, TORCH_BLOCK)}
        mean_block = statistics.mean(pair_blocks.get(name, block) for name in steps if name != "minidl")
        rounds = int(min(2000, max(6, seconds_per_run / (per_step * 2 * mean_block * (len(steps) - 1)))))
        timing = time_alternately(steps, runs, rounds, warmup, block, pair_blocks)
        row: dict[str, Any] = {"case": case.label, "rounds": rounds, "runs": runs}
        cells = [case.label, f"{timing.median_us('minidl'):.0f}", f"{timing.median_us('numpy'):.0f}",
                 spread(timing.run_ratios["minidl/numpy"])]
        row.update(minidl_us=timing.median_us("minidl"), numpy_us=timing.median_us("numpy"),
                   ratio_numpy=statistics.median(timing.run_ratios["minidl/numpy"]),
                   ratio_numpy_runs=timing.run_ratios["minidl/numpy"])
        if have_torch:
            cells += [f"{timing.median_us('torch'):.0f}", f"{timing.median_us('minidl@torch'):.0f}",
                      spread(timing.run_ratios["minidl/torch"])]
            row.update(torch_us=timing.median_us("torch"), minidl_torch_turns_us=timing.median_us("minidl@torch"),
                       ratio_torch=statistics.median(timing.run_ratios["minidl/torch"]),
                       ratio_torch_runs=timing.run_ratios["minidl/torch"])
        del steps
        if memory:
            mem_md = peak_memory(setup.factories["minidl"])
            mem_np = peak_memory(setup.factories["numpy"])
            cells += [f"{mem_md.arrays / 1024:.1f}", f"{mem_np.arrays / 1024:.1f}",
                      f"{mem_md.arrays / mem_np.arrays:.2f}",
                      f"{mem_md.objects / 1024:.1f} / {mem_np.objects / 1024:.1f}"]
            row.update(peak_minidl=mem_md.arrays, peak_numpy=mem_np.arrays, objects_minidl=mem_md.objects,
                       objects_numpy=mem_np.objects)
        print("| " + " | ".join(cells) + " |", file=out, flush=True)
        results.append(row)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--runs", type=int, default=None, help="repeated runs per row (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="approximate seconds per run per row (default 1.5, quick 0.05)")
    parser.add_argument("--only", default="", help="run only rows whose label contains this text")
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN row")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peak-memory columns")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS (via threadpoolctl) and PyTorch to this many threads "
                             "(default: the libraries' own defaults)")
    parser.add_argument("--block", type=int, default=1,
                        help="steps per contender's turn; with K > 1 only steps 2..K are timed: the steady "
                             "state of a training loop (default 1: every step follows the other contender's)")
    parser.add_argument("--aligned-reference", action="store_true",
                        help="give the hand-written step's parameters minidl's 64-byte alignment: the framework's "
                             "overhead alone (by default the reference's arrays lie where NumPy puts them, which "
                             "changes from process to process)")
    args = parser.parse_args(argv)
    if args.block < 1:
        parser.error("--block must be >= 1")
    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.05 if args.quick else 1.5)
    warmup = 0.02 if args.quick else 0.3
    cases = mlp_cases()
    if not args.no_cnn and hasattr(md, "Conv2D") and hasattr(md, "MaxPool2D"):
        cases += cnn_cases()
    cases = [c for c in cases if args.only in c.label]
    if args.threads and torch is not None:
        torch.set_num_threads(args.threads)
    with blas_limits(args.threads):
        for line in environment():
            print(line)
        turns = ("one step per turn" if args.block == 1 else
                 f"turns of {args.block} steps, the first of each not timed (steady state)")
        if torch is not None:
            turns += (f"; against PyTorch turns of {max(args.block, TORCH_BLOCK)} steps, the first not timed "
                      "(it pays for the other side's threads, still spinning)")
        print(f"{runs} runs per row; per run, about {seconds:g} s of alternating rounds (minidl and one other "
              f"contender, A B / B A; {turns}) per pair; times are medians over every timed turn; ratios: "
              "median over the runs of each run's median per-round ratio, with the runs' min-max in brackets\n")
        print("hand-written step's parameters: " + ("64-byte aligned, as minidl's (--aligned-reference)\n"
              if args.aligned_reference else "where NumPy allocates them (minidl aligns its own to 64 bytes)\n"))
        run(cases, runs, seconds, warmup, memory=not args.no_memory, block=args.block,
            aligned_reference=args.aligned_reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
