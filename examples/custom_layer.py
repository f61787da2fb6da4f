"""Write your own layer, prove its back-pass with the GradientChecker, then train with it.

The layer is Swish with a learnable slope per feature, ``y = x * sigmoid(beta * x)`` (Ramachandran
et al. 2017).  With ``s = sigmoid(beta * x)`` and ``s' = s (1 - s)``, the back-pass is::

    dy/dx    = s + beta * x * s'        ->  dx     = g * (s + beta * x * s')
    dy/dbeta = x * x * s'               ->  dbeta += sum over the batch of g * x^2 * s'

The script

1. checks ``Swish`` alone with ``GradientChecker`` (its ``beta`` and its input gradient);
2. checks a deliberately wrong copy (``dbeta`` missing one factor ``x``) and prints the report that
   catches it, naming the tensor, the worst element and the two values;
3. checks a whole model ``Dense -> Swish -> Dense`` with the cross-entropy on real digits;
4. trains that model on the digits (float64, Adam) and prints the test accuracy and what ``beta``
   learned; the loss/accuracy curves go to ``--out`` (the test curve only a monitor: nothing is chosen
   from it; to choose, validate on a part of the training data, as ``mlp_digits.py`` does).

Run:  python examples/custom_layer.py [--quick] [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import history_dict, limit_blas_threads, load_digits, parse_args, plot_history, save_results
from numpy.typing import DTypeLike

import minidl as md

EPOCHS, QUICK_EPOCHS = 20, 2


class Swish(md.Layer):
    """``y = x * sigmoid(beta * x)`` with one learnable ``beta`` per feature.

    Shapes: x: (N, num_features) -> y: (N, num_features); beta: (num_features,).
    """

    def __init__(self, num_features: int, beta: float = 1.0, *, dtype: DTypeLike = np.float64) -> None:
        super().__init__()  # first, so that the assignments below are registered
        self.num_features = num_features
        self.beta = md.Parameter(np.full(num_features, beta, dtype=dtype))
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.num_features:  # a clear error here, not a broadcast far away
            raise md.ShapeError(f"Swish({self.num_features}): expected an input of shape (N, {self.num_features}), "
                                f"got shape {x.shape}")
        if x.dtype != self.beta.dtype:  # float32 data with float64 parameters would compute in float64
            raise md.DTypeError(f"Swish({self.num_features}): expected a {self.beta.dtype} input, got {x.dtype}")
        z = self.beta.data * x
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z), without overflow for large |z|
        self._cache = (x, s)  # overwritten on every call, never appended to
        return x * s

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._cache)  # a clear error if forward was never called
        assert self._cache is not None
        x, s = self._cache
        ds = s * (1.0 - s)
        self.beta.grad += np.sum(grad_output * x * x * ds, axis=0)  # ADD into .grad
        return grad_output * (s + self.beta.data * x * ds)

    def input_shape_hint(self) -> tuple[int, ...]:
        return (self.num_features,)  # lets the checker (and summary) draw inputs by itself

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}"


class BrokenSwish(Swish):
    """The same layer with a typical chain-rule slip: ``dbeta`` lacks one factor ``x``."""

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        assert self._cache is not None
        x, s = self._cache
        ds = s * (1.0 - s)
        self.beta.grad += np.sum(grad_output * x * ds, axis=0)  # BUG: should be x * x * ds
        return grad_output * (s + self.beta.data * x * ds)


def build_model(seed: int, hidden: int = 128) -> md.Sequential:
    rng = np.random.default_rng(seed)
    return md.Sequential(md.Dense(64, hidden, rng=rng), Swish(hidden), md.Dense(hidden, 10, rng=rng))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.split("\n\n")[0], EPOCHS, QUICK_EPOCHS, argv)
    limit_blas_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    print("1. Swish alone (beta drawn away from 1, so that every term of the back-pass matters)")
    layer = Swish(6, dtype=np.float64)
    layer.beta.data[:] = rng.uniform(0.5, 2.0, size=6)
    good = md.GradientChecker(layer, seed=args.seed).run()
    print(good, "\n")

    print("2. A deliberately wrong backward (dbeta without one factor x): the checker says where")
    broken = BrokenSwish(6)
    broken.beta.data[:] = layer.beta.data
    bad = md.GradientChecker(broken, seed=args.seed).run()
    print(bad)
    try:
        bad.raise_if_failed()
    except md.GradientCheckError:
        print("-> raise_if_failed() raised GradientCheckError, as a test would\n")

    print("3. The whole model, with the cross-entropy, on eight real digits (float64)")
    data = load_digits(args.seed)
    model = build_model(args.seed)
    whole = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=data.x_train[:8],
                               targets=data.y_train[:8], seed=args.seed).run()
    print(whole, "\n")
    assert good.passed and not bad.passed and whole.passed

    print("4. Training it")
    model.summary()
    started = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, loss=md.CrossEntropyLoss(),
                        optimizer=md.Adam(model.parameters(), lr=2e-3), epochs=args.epochs, batch_size=32,
                        validation_data=(data.x_test, data.y_test), metrics=["accuracy"], rng=args.seed,
                        verbose=args.verbose)
    seconds = time.perf_counter() - started
    test = model.evaluate(data.x_test, data.y_test)
    beta = model[1].beta.data
    png = plot_history(history, args.out / "custom_layer.png",
                       f"Dense -> Swish -> Dense on the digits: {test['accuracy']:.2%} test accuracy")
    results = {"example": "custom_layer", "epochs": args.epochs, "seed": args.seed, "train_seconds": seconds,
               "check_swish_passed": good.passed, "check_broken_passed": bad.passed,
               "check_broken_failed_tensors": [r.name for r in bad.results if not r.passed],
               "check_model_passed": whole.passed, "test_loss": test["loss"],
               "test_accuracy": test["accuracy"], "beta_mean": float(beta.mean()),
               "history": history_dict(history)}
    save_results(args.out, "custom_layer", results)
    print(f"final: test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%}, "
          f"trained in {seconds:.1f} s")
    print(f"learned beta: mean {beta.mean():.3f}, min {beta.min():.3f}, max {beta.max():.3f} (all started at 1)")
    print(f"curves: {png}")
    return results


if __name__ == "__main__":
    main()
