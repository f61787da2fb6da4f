"""Time GradientChecker on an MLP 784-64-10 (ReLU) at batch 8, against a naive full check and PyTorch.

Run:            .venv/bin/python benchmarks/gradcheck_speed.py [--quick]
With PyTorch:   /work/torchvenv/bin/python benchmarks/gradcheck_speed.py
                (a separate venv: python3 -m venv /work/torchvenv --system-site-packages;
                 /work/torchvenv/bin/pip install torch.  PyTorch is never a dependency of minidl.)

Measured in one run, on the same network, weights and inputs:
* minidl default check (mode="auto": directional pass, per-element drill-down only where it fails);
* minidl full per-element check (mode="full");
* the naive full check: every element moved by +-eps, two whole forwards each, no reuse
  (``--quick`` times 3000 random elements and extrapolates, saying so);
* torch.autograd.gradcheck, slow mode (whole Jacobians) and fast mode, when torch is importable.
Times are CPU seconds of this process (time.process_time), with one BLAS / torch thread: on a small
machine shared with other work, wall-clock time mostly measures the neighbours.
The naive and minidl checks also run on the same network with a 1e-6 relative bug in the first
weight matrix, to show that the speed does not cost sensitivity.

Exact ties: MaxPool2D(2) -> Dense and Conv2D -> ReLU -> MaxPool2D(2) -> Dense on 28x28 images that
are 0 outside a random 12x12 centre (every background pooling window is a 4-way tie, so random
directions always cross a kink): the default check, the full check of the input it replaces
(skipped with --quick), and a 1e-6 relative bug in the Dense weights, which must still be caught.
"""

from __future__ import annotations

import os

# one BLAS thread, like torch.set_num_threads(1) below: on a small shared machine multi-threaded BLAS
# on tiny matrices mostly measures thread contention.  Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import minidl as m  # noqa: E402
from minidl.gradcheck import GradientChecker  # noqa: E402


def build(seed: int = 0) -> tuple[m.Sequential, np.ndarray]:
    net = m.Sequential(m.Dense(784, 64, rng=seed), m.ReLU(), m.Dense(64, 10, rng=seed + 1))
    x = np.random.default_rng(seed + 2).standard_normal((8, 784))
    return net, x


class ScaledGrad(m.Dense):
    """Dense whose weight gradient is (1 + 1e-6) times the right one."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(g)
        self.W.grad += 1e-6 * (self.W.grad - before)
        return dx


def naive_full(net: m.Sequential, x: np.ndarray, R: np.ndarray, eps: float, limit: int | None,
               rng: np.random.Generator) -> tuple[float, int, float]:
    """The textbook check: perturb each element by +-eps, two whole forwards, relative error.

    Returns (seconds, elements done, max relative error).  With ``limit`` only that many random
    elements are done (the caller extrapolates the time).
    """
    net.zero_grad()
    y = net(x)
    dx = net.backward(R)
    tensors = [("input", x, dx)] + [(n, p.data, p.grad.copy()) for n, p in net.named_parameters()]
    total = sum(t[1].size for t in tensors)
    worst = 0.0
    done = 0
    start = time.process_time()
    for _, array, grad in tensors:
        flat, gflat = array.reshape(-1), grad.reshape(-1)
        count = flat.size if limit is None else max(1, round(limit * flat.size / total))
        index = range(flat.size) if limit is None else rng.choice(flat.size, count, replace=False)
        for i in index:
            w = flat[i]
            flat[i] = w + eps
            fp = float(np.dot(R.reshape(-1), net(x).reshape(-1)))
            flat[i] = w - eps
            fm = float(np.dot(R.reshape(-1), net(x).reshape(-1)))
            flat[i] = w
            num = (fp - fm) / (2 * eps)
            worst = max(worst, abs(num - gflat[i]) / max(abs(num), abs(gflat[i]), 1e-12))
            done += 1
    del y
    return time.process_time() - start, done, worst


def torch_gradcheck(net: m.Sequential, x: np.ndarray) -> dict[str, float] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    W0 = torch.tensor(net[0].W.data, dtype=torch.float64, requires_grad=True)
    W1 = torch.tensor(net[2].W.data, dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, W0: torch.Tensor, W1: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x @ W0[1:] + W0[0])
        return h @ W1[1:] + W1[0]

    out: dict[str, float] = {}
    for label, fast in (("torch gradcheck fast_mode", True), ("torch gradcheck slow mode", False)):
        start = time.process_time()
        ok = torch.autograd.gradcheck(f, (xt, W0, W1), fast_mode=fast, raise_exception=False)
        out[label] = time.process_time() - start
        out[label + " passed"] = float(ok)
    out["torch version"] = float(".".join(torch.__version__.split(".")[:2]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="extrapolate the naive check from 3000 elements")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}")
    net, x = build()
    n_elements = x.size + sum(p.size for p in net.parameters())
    print(f"MLP 784-64-10 (ReLU), batch 8: {n_elements} elements (input + weights)\n")

    rows: list[tuple[str, float, str]] = []
    start = time.process_time()
    default = GradientChecker(net, inputs=x, seed=0).run()
    t_default = time.process_time() - start
    rows.append(("minidl default (auto)", t_default, f"passed={default.passed}, {default.evaluations} evals"))

    start = time.process_time()
    full = GradientChecker(net, inputs=x, seed=0, mode="full").run()
    t_full = time.process_time() - start
    skipped = sum(r.skipped for r in full.results)
    rows.append(("minidl full (every element)", t_full,
                 f"passed={full.passed}, {full.evaluations} evals, {skipped} kink-skipped"))

    R = np.random.default_rng(1).standard_normal((8, 10))
    limit = 3000 if args.quick else None
    t_naive, done, worst = naive_full(net, x.copy(), R, 1e-6, limit, np.random.default_rng(0))
    if limit is not None:
        t_naive *= n_elements / done
    rows.append(("naive full (2 whole forwards/element)", t_naive,
                 f"max rel err {worst:.1e}" + (f" (extrapolated from {done} elements)" if limit else "")))

    torch_times = torch_gradcheck(net, x)
    if torch_times is None:
        rows.append(("torch.autograd.gradcheck", float("nan"), "torch not importable: run with a torch venv"))
    else:
        for label in ("torch gradcheck fast_mode", "torch gradcheck slow mode"):
            rows.append((label, torch_times[label], f"passed={bool(torch_times[label + ' passed'])}"))

    width = max(len(r[0]) for r in rows)
    for label, seconds, extra in rows:
        print(f"  {label.ljust(width)}  {seconds:9.3f} s   {extra}")
    print(f"\n  default check vs naive full: {t_naive / t_default:8.0f}x faster")
    print(f"  full check vs naive full:    {t_naive / t_full:8.2f}x")
    if torch_times is not None:
        print(f"  full check vs torch slow:    {torch_times['torch gradcheck slow mode'] / t_full:8.2f}x faster")
        print(f"  default vs torch fast_mode:  {torch_times['torch gradcheck fast_mode'] / t_default:8.2f}x")

    buggy = m.Sequential(ScaledGrad(784, 64, rng=0), m.ReLU(), m.Dense(64, 10, rng=1))
    start = time.process_time()
    report = GradientChecker(buggy, inputs=x, seed=0, mode="directional").run()
    print(f"\n  1e-6 relative bug in 0.W, directional pass only: caught={not report.passed} "
          f"({time.process_time() - start:.3f} s); tensors failing: {[r.name for r in report.failed]}")
    ties(args.quick)


def ties(quick: bool) -> None:
    rng = np.random.default_rng(0)
    x = np.pad(rng.random((8, 1, 12, 12)), ((0, 0), (0, 0), (8, 8), (8, 8)))
    print("\nExact ties (zero background, 8 images 28x28), default mode:")
    for label, layers in (("MaxPool -> Dense", [m.layers.MaxPool2D(2), m.layers.Flatten()]),
                          ("Conv -> ReLU -> MaxPool -> Dense",
                           [m.layers.Conv2D(1, 8, 3, padding=1, rng=0), m.ReLU(), m.layers.MaxPool2D(2),
                            m.layers.Flatten()])):
        features = 196 if len(layers) == 2 else 8 * 196
        net = m.Sequential(*layers, m.Dense(features, 10, rng=1))
        start = time.process_time()
        report = GradientChecker(net, inputs=x, seed=0).run()
        spent = time.process_time() - start
        r = report["input"]
        print(f"  {label}: {spent:.3f} s, passed={report.passed}, {report.evaluations} evals; input "
              f"{r.mode}: {r.checked} checked, {r.skipped} at a kink")
        if not quick:
            start = time.process_time()
            whole = GradientChecker(net, inputs=x, seed=0, mode="full").run()
            print(f"    the input checked whole instead (mode='full'): {time.process_time() - start:.2f} s, "
                  f"passed={whole.passed}, {whole.evaluations} evals")
        buggy = m.Sequential(*layers, ScaledGrad(features, 10, rng=1))
        start = time.process_time()
        bad = GradientChecker(buggy, inputs=x, seed=0).run()
        print(f"    1e-6 relative bug in the Dense weights: caught={not bad.passed} "
              f"({time.process_time() - start:.3f} s); failing: {[t.name for t in bad.failed]}")


if __name__ == "__main__":
    main()
