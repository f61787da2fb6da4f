"""How small a back-pass bug GradientChecker catches, and how often it cries wolf on correct code.

Run:  .venv/bin/python benchmarks/gradcheck_sensitivity.py [--seeds 40] [--quick]

* False alarms: correct float64 models (tanh/sigmoid/ReLU/softmax MLPs, with the random projection,
  MSE and cross-entropy with integer labels), many seeds, in the default mode and in full and
  directional modes; plus ReLU / LeakyReLU / abs / clip / max-pool layers fed inputs exactly at and
  within one step of their kinks.
* Sensitivity: the same models with a bug injected into one tensor's gradient -- the whole tensor
  scaled by (1 + r) for r = 1e-3 ... 1e-9, or a single element off by 1e-3 (relative to that element,
  and absolute 1e-3 x the tensor's RMS gradient).  A bug is "caught" when the report fails.
* Near a kink: ReLU -> Dense with 1 to 3 inputs a few 1e-9 from 0 (inside the span of the round-off
  probe), the Dense's dx scaled by (1 + r): no false alarm at r = 0, and r = 1e-4 / 1e-6 caught.
* Sampled mode: a Dense 200 -> 64 whose dW rows 1..-2 and dx samples 1..-2 are 1.5x too large
  (row 0 and the last row right): caught in mode="sampled" (32 elements per tensor).
Prints the detection rate per r, the smallest r caught on every seed, and the false-alarm count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import minidl as m
from minidl.gradcheck import GradientChecker


class Box:
    """A mutable record shared by a layer and its deep copies (the checker works on a copy)."""

    def __init__(self) -> None:
        self.value = 0.0
        self.grad = 0.0

    def __deepcopy__(self, memo: dict[int, Any]) -> Box:
        return self


class Bug(m.Layer):
    """Wraps a layer and corrupts its back-pass in one place (keeping the += contract).

    ``self.applied.value`` records the largest corruption added to one element, and
    ``self.applied.grad`` the size of that element's right gradient.
    """

    def __init__(self, inner: m.Layer, where: str, rel: float = 0.0, element: int | None = None,
                 absolute: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.where, self.rel, self.element, self.absolute = where, rel, element, absolute
        self.applied = Box()

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.inner(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        params = dict(self.inner.named_parameters())
        before = {k: p.grad.copy() for k, p in params.items()}
        dx = self.inner.backward(g)
        if self.where == "input":
            target = dx.reshape(-1).copy()
            self._corrupt(target, target.copy())
            return target.reshape(dx.shape)
        p = params[self.where]
        contribution = (p.grad - before[self.where]).reshape(-1)
        flat = p.grad.reshape(-1)
        self._corrupt(flat, contribution)
        return dx

    def _corrupt(self, flat: np.ndarray, contribution: np.ndarray) -> None:
        if self.element is None:
            flat += self.rel * contribution
        else:
            delta = self.rel * contribution[self.element] + self.absolute * float(np.sqrt(np.mean(contribution**2)))
            flat[self.element] += delta
            self.applied.value = max(self.applied.value, abs(float(delta)))
            self.applied.grad = abs(float(contribution[self.element]))

    def input_shape_hint(self) -> tuple[int, ...] | None:
        return self.inner.input_shape_hint()


class Abs(m.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.abs(x)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * np.sign(self._x)


class Clip(m.Layer):
    elementwise = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return np.clip(x, -0.5, 0.5)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * ((self._x > -0.5) & (self._x < 0.5))


class MaxPool1D(m.Layer):
    """Max over non-overlapping pairs of features: (N, 2k) -> (N, k); ties go to the first."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        pairs = x.reshape(x.shape[0], -1, 2)
        self._arg = pairs.argmax(axis=2)
        self._shape = x.shape
        return pairs.max(axis=2)

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.zeros((g.shape[0], g.shape[1], 2))
        np.put_along_axis(dx, self._arg[..., None], g[..., None], axis=2)
        return dx.reshape(self._shape)


Builder = Callable[[int], tuple[m.Layer, Any, Any, Any]]


def models() -> dict[str, Builder]:
    def tanh_proj(s: int) -> tuple[m.Layer, Any, Any, Any]:
        return m.Sequential(m.Dense(6, 5, rng=s), m.Tanh(), m.Dense(5, 3, rng=s + 1)), None, None, None

    def sigmoid_ce(s: int) -> tuple[m.Layer, Any, Any, Any]:
        labels = np.random.default_rng(s).integers(0, 4, 5)
        x = np.random.default_rng(s + 7).standard_normal((5, 6))
        net = m.Sequential(m.Dense(6, 5, rng=s), m.Sigmoid(), m.Dense(5, 4, rng=s + 1))
        return net, m.CrossEntropyLoss(), x, labels

    def relu_mse(s: int) -> tuple[m.Layer, Any, Any, Any]:
        net = m.Sequential(m.Dense(6, 8, rng=s, init="he"), m.ReLU(), m.Dense(8, 3, rng=s + 1))
        return net, m.MSELoss(), None, None

    def softmax_mse(s: int) -> tuple[m.Layer, Any, Any, Any]:
        net = m.Sequential(m.Dense(6, 5, rng=s), m.Tanh(), m.Dense(5, 4, rng=s + 1), m.Softmax())
        return net, m.MSELoss(), None, None

    return {"tanh+proj": tanh_proj, "sigmoid+CE": sigmoid_ce, "relu+MSE": relu_mse, "softmax+MSE": softmax_mse}


def check(net: m.Layer, loss: Any, x: Any, t: Any, seed: int, mode: str) -> bool:
    return GradientChecker(net, loss=loss, inputs=x, targets=t, seed=seed, mode=mode).run().passed


def with_bug(net: m.Sequential, layer: int, where: str, **kw: Any) -> m.Sequential:
    layers = list(net)
    layers[layer] = Bug(layers[layer], where, **kw)
    return m.Sequential(*layers)


class ScaledDx(m.Dense):
    """A Dense whose dx is (1 + rel) times the right one."""

    rel = 0.0

    def backward(self, g: np.ndarray) -> np.ndarray:
        return super().backward(g) * (1 + self.rel)


class InteriorBug(m.Dense):
    """dW rows 1..-2 and dx samples 1..-2 scaled by 1.5 (row 0 and the last row right)."""

    def backward(self, g: np.ndarray) -> np.ndarray:
        before = self.W.grad.copy()
        dx = super().backward(g)
        c = self.W.grad - before
        c[1:-1] *= 1.5
        self.W.grad[...] = before + c
        dx[1:-1] *= 1.5
        return dx


def near_kink(seeds: range) -> None:
    """Inputs a few 1e-9 from a ReLU kink must not hide a bug in the rest of the input gradient."""
    print("Near a kink: ReLU -> Dense(6, 3), 1-3 inputs within 1.4e-8 of 0, dx x (1 + r), default mode")
    for r in (0.0, 1e-4, 1e-6):
        failed = total = 0
        for s in seeds:
            for k in (1, 2, 3):
                x = np.random.default_rng(s).standard_normal((4, 6))
                where = np.random.default_rng(s + 100).choice(24, k, replace=False)
                x.reshape(-1)[where] = np.random.default_rng(s).choice([1e-9, -3e-9, 5e-9, -1e-8, 1.4e-8], k)
                dense = ScaledDx(6, 3, rng=s)
                dense.rel = r
                failed += not GradientChecker(m.Sequential(m.ReLU(), dense), inputs=x, seed=s).run().passed
                total += 1
        what = "false alarms" if r == 0 else "caught"
        print(f"  r = {r:.0e}: {what} {failed}/{total}")


def sampled_interior(seeds: range) -> None:
    print("Sampled mode (32 elements per tensor): dW rows 1..-2 and dx samples 1..-2 wrong by 1.5x")
    caught_w = caught_x = 0
    for s in seeds:
        net = m.Sequential(InteriorBug(200, 64, rng=s), m.Tanh(), m.Dense(64, 4, rng=s + 1))
        report = GradientChecker(net, mode="sampled", batch_size=8, seed=s).run()
        caught_w += not report["0.W"].passed
        caught_x += not report["input"].passed
    print(f"  0.W caught {caught_w}/{len(seeds)}, input caught {caught_x}/{len(seeds)}")


def kink_models(seed: int) -> list[tuple[str, m.Layer, np.ndarray]]:
    """Element-wise layers fed inputs at, and within one step (h = 1e-4 relative) of, their kinks."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((4, 6))
    h = 1e-4
    offsets = rng.choice([0.0, 0.3 * h, -0.5 * h, 0.9 * h, -h, 0.25 * h, 0.6 * h], size=base.shape)
    at_zero = np.where(rng.random(base.shape) < 0.6, offsets, base)
    at_clip = np.where(rng.random(base.shape) < 0.6, 0.5 * np.sign(base) + offsets * 0.5, base)
    tie = base.copy()
    tie[:, 1::2] = tie[:, 0::2] + np.where(rng.random((4, 3)) < 0.7, offsets[:, 0::2], 1.0)
    return [
        ("ReLU", m.ReLU(), at_zero),
        ("LeakyReLU", m.LeakyReLU(0.1), at_zero),
        ("abs", Abs(), at_zero),
        ("clip", Clip(), at_clip),
        ("max-pool", MaxPool1D(), tie),
        ("Dense+ReLU", m.Sequential(m.Dense(6, 6, W=np.vstack([np.zeros(6), np.eye(6)])), m.ReLU()), at_zero),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="10 seeds")
    args = parser.parse_args()
    seeds = range(10 if args.quick else args.seeds)
    start = time.perf_counter()
    builders = models()

    print(f"False alarms on correct code ({len(seeds)} seeds per model)")
    alarms = 0
    runs = 0
    for mode in ("auto", "full", "directional"):
        for name, build in builders.items():
            bad = [s for s in seeds if not check(*build(s), seed=s, mode=mode)]
            alarms += len(bad)
            runs += len(seeds)
            print(f"  {mode:12s} {name:12s} false alarms: {len(bad)}/{len(seeds)} {bad[:5] if bad else ''}")
    kink_alarms = 0
    kink_runs = 0
    skipped = 0
    for s in seeds:
        for name, layer, x in kink_models(s):
            for mode in ("auto", "full"):
                report = GradientChecker(layer, inputs=x, seed=s, mode=mode).run()
                kink_runs += 1
                skipped += sum(r.skipped for r in report.results)
                if not report.passed:
                    kink_alarms += 1
                    print(f"  kink false alarm: {name} seed {s} mode {mode}\n{report}")
    print(f"  kinks (ReLU, LeakyReLU, abs, clip, max-pool at/within one step): false alarms "
          f"{kink_alarms}/{kink_runs}, elements skipped as non-differentiable: {skipped}")
    print(f"TOTAL false alarms: {alarms + kink_alarms} in {runs + kink_runs} checks\n")

    print("Sensitivity: whole-tensor relative error r (gradient x (1 + r)) in one tensor, default mode")
    rates = {}
    targets = [(0, "W"), (2, "W"), (0, "input")]
    for r in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        caught = total = 0
        for build in builders.values():
            for s in seeds:
                net, loss, x, t = build(s)
                layer, where = targets[s % len(targets)]
                caught += not check(with_bug(net, layer, where, rel=r), loss, x, t, seed=s, mode="auto")
                total += 1
        rates[r] = caught / total
        print(f"  r = {r:.0e}: caught {caught}/{total}")
    always = [r for r, rate in rates.items() if rate == 1.0]
    print(f"  smallest relative error caught on every seed: {min(always):.0e}" if always else "  none")

    print("Single element off (random element of one tensor), default mode")
    for label, kw in (("relative 1e-3 of that element", {"rel": 1e-3}),
                      ("absolute 1e-3 x RMS gradient", {"absolute": 1e-3})):
        caught = total = 0
        noop = 0
        missed: list[str] = []
        for build in builders.values():
            for s in seeds:
                net, loss, x, t = build(s)
                layer, where = targets[s % len(targets)]
                p = dict(net[layer].named_parameters())
                size = p[where].size if where in p else (x.size if x is not None else 4 * 6)
                element = int(np.random.default_rng(s).integers(size))
                buggy = with_bug(net, layer, where, element=element, **kw)
                found = not check(buggy, loss, x, t, seed=s, mode="auto")
                applied = buggy[layer].applied
                if applied.value == 0 and not found:
                    noop += 1  # that element's gradient is exactly 0: "1e-3 of it" changes nothing
                    continue
                caught += found
                total += 1
                if not found:
                    missed.append(f"{applied.value:.1e} on a gradient of {applied.grad:.1e}")
        print(f"  {label}: caught {caught}/{total}" + (f" (+{noop} no-op: the element's gradient is 0)"
                                                       if noop else ""))
        if missed:
            print(f"    missed (error added, on an element whose right gradient is): {', '.join(missed)}")
    near_kink(seeds)
    sampled_interior(seeds)
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
