"""The demonstration minidl started from: checking a back-pass by central differences.

Linear regression with five features x1..x5 and x0 = 1, so that w0 is the bias (the bias is
*absorbed* into the weights): ``Y_hat = X1 @ W`` with ``X1 = [1, X]``, the features X (n, 5) and the
ones column, and W of shape (6, 1).  The cost is ``CF = 1/2 * sum((Y_hat - Y)^2)``, so the back-pass is
``dCF/dW = X1^T (Y_hat - Y)``.  For every w_i we compare that analytic slope with the slope of the
secant ``(CF(w_i + e) - CF(w_i - e)) / (2e)``; the cost is quadratic, so the two agree up to
round-off.  Then we take one gradient-descent step from INIT.

Run:  python examples/regression.py
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import minidl as md

#: The initial weights w0 (the bias) .. w5.
INIT = np.array([[0.5], [-0.3], [0.8], [0.1], [-0.6], [0.25]])
LEARNING_RATE = 0.01
EPS = 1e-4


def make_data(n: int = 8, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A small batch: X (n, 5) features x1..x5 and Y (n, 1) from a known linear rule plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    true_w = np.array([1.5, 2.0, -1.0, 0.5, 0.0, 3.0])  # w0 (bias), w1..w5
    Y = (true_w[0] + X @ true_w[1:] + 0.1 * rng.normal(size=n)).reshape(n, 1)
    return X, Y


@dataclass
class Demo:
    X: np.ndarray  # (n, 5), without the ones column
    Y: np.ndarray  # (n, 1)
    cost: float  # CF at INIT
    analytic: np.ndarray  # (6, 1): dCF/dW from the back-pass
    by_formula: np.ndarray  # (6, 1): X1^T (Y_hat - Y), X1 = [1, X]
    numerical: np.ndarray  # (6, 1): (CF(w+e) - CF(w-e)) / (2e), one w_i at a time
    updated: np.ndarray  # (6, 1): W after one SGD step from INIT
    report: md.GradientReport  # the framework's own check of the same layer


def run(lr: float = LEARNING_RATE, eps: float = EPS) -> Demo:
    X, Y = make_data()
    layer = md.Dense(5, 1, W=INIT)  # W[0] is w0, the bias
    cost = md.HalfSquaredError()

    def CF() -> float:
        return cost(layer(X), Y)

    # Forward and back-pass at INIT.
    cf = CF()
    layer.zero_grad()
    layer.backward(cost.backward())
    analytic = layer.W.grad.copy()

    # The same gradient by the formula, with the ones column made explicit.
    X1 = np.hstack([np.ones((len(X), 1)), X])
    by_formula = X1.T @ (X1 @ INIT - Y)

    # Central differences, one weight at a time: the secant through w - e and w + e.
    numerical = np.zeros_like(INIT)
    for i in range(INIT.shape[0]):
        w = layer.W.data[i, 0]
        layer.W.data[i, 0] = w + eps
        plus = CF()
        layer.W.data[i, 0] = w - eps
        minus = CF()
        layer.W.data[i, 0] = w
        numerical[i, 0] = (plus - minus) / (2 * eps)

    # One step of gradient descent from INIT, with the gradient kept above.
    md.SGD(layer.parameters(), lr=lr).step()
    updated = layer.W.data.copy()

    # And the framework's checker on the same layer, data and cost.
    layer.W.data[...] = INIT
    report = md.GradientChecker(layer, loss=md.HalfSquaredError(), inputs=X, targets=Y).run()
    return Demo(X, Y, cf, analytic, by_formula, numerical, updated, report)


def main(argv: Sequence[str] | None = None) -> None:
    # no options: the numbers are the demonstration's own; --help says so instead of running it
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args(argv)
    demo = run()
    print("Linear regression y_hat = w0 + w1 x1 + ... + w5 x5, cost CF = 1/2 sum (y_hat - y)^2")
    print(f"batch of {len(demo.X)} samples, CF at INIT = {demo.cost:.6f}, e = {EPS:g}, lr = {LEARNING_RATE:g}\n")
    header = (f"{'w':>3} {'INIT':>8} {'dCF/dw (back-pass)':>20} {'secant slope':>20} "
              f"{'rel. deviation':>15} {'after 1 step':>13}")
    print(header)
    print("-" * len(header))
    for i in range(INIT.shape[0]):
        a, n = demo.analytic[i, 0], demo.numerical[i, 0]
        rel = abs(a - n) / max(abs(a), abs(n), 1e-300)
        print(f"w{i:<2} {INIT[i, 0]:>8.3f} {a:>20.12f} {n:>20.12f} {rel:>15.2e} {demo.updated[i, 0]:>13.6f}")
    formula_gap = np.max(np.abs(demo.analytic - demo.by_formula))
    print(f"\nback-pass vs X1^T (Y_hat - Y), X1 = [1, X]: max |difference| = {formula_gap:.1e}")
    print("\nThe framework's GradientChecker on the same layer and cost (it picks its own step for each element "
          "and an error bound from round-off: docs/gradient-checker.md):")
    print(demo.report)


if __name__ == "__main__":
    main()
