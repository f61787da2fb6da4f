"""A multi-layer perceptron on the 8x8 handwritten digits: >= 97% accuracy on a held-out test split.

The data are the 1,797 digits that scikit-learn ships inside its package (no download), split
stratified 75% / 25%; the test quarter is never trained on and never used to choose anything while
the script runs (it is only scored, per epoch for the curves and at the end).

Model: 64 -> 256 -> 256 -> 10 with ReLU and dropout, softmax cross-entropy, Adam with a cosine
learning-rate schedule, batches of 32, 40 epochs, float64.  The hyper-parameters were fixed once and
checked over seeds 0..7 of the split, weights and batches: 97.8% to 98.7% test accuracy.

Run:  python examples/mlp_digits.py [--quick] [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import history_dict, limit_blas_threads, load_digits, parse_args, plot_history, save_results

import minidl as md

EPOCHS, QUICK_EPOCHS = 40, 3


def build_model(seed: int, hidden: int = 256, dropout: float = 0.3) -> md.Sequential:
    """64 pixels -> hidden -> hidden -> 10 logits; each layer seeded from ``seed``."""
    rng = np.random.default_rng(seed)
    return md.Sequential(
        md.Dense(64, hidden, rng=rng),
        md.ReLU(),
        md.Dropout(dropout, rng=rng),
        md.Dense(hidden, hidden, rng=rng),
        md.ReLU(),
        md.Dropout(dropout, rng=rng),
        md.Dense(hidden, 10, rng=rng),
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.splitlines()[0], EPOCHS, QUICK_EPOCHS, argv)
    limit_blas_threads(args.threads)
    data = load_digits(args.seed)
    print(f"digits: {len(data.x_train)} training and {len(data.x_test)} test samples of 64 pixels")

    model = build_model(args.seed)
    model.summary()
    optimizer = md.Adam(model.parameters(), lr=2e-3)
    started = time.perf_counter()
    history = model.fit(
        data.x_train, data.y_train,
        loss=md.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=md.CosineAnnealingLR(optimizer, T_max=args.epochs),
        epochs=args.epochs,
        batch_size=32,
        validation_data=(data.x_test, data.y_test),
        metrics=["accuracy"],
        rng=args.seed,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - started
    test = model.evaluate(data.x_test, data.y_test)

    png = plot_history(history, args.out / "mlp_digits.png",
                       f"MLP on the digits: {test['accuracy']:.2%} test accuracy")
    results = {"example": "mlp_digits", "epochs": args.epochs, "seed": args.seed,
               "train_seconds": seconds, "test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "history": history_dict(history)}
    save_results(args.out, "mlp_digits", results)
    print(f"final: training loss {history['loss'][-1]:.4f}, training accuracy {history['accuracy'][-1]:.2%} "
          f"(with dropout on)")
    print(f"final: test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%} "
          f"({round(test['accuracy'] * len(data.x_test))}/{len(data.x_test)}), trained in {seconds:.1f} s")
    print(f"curves: {png}")
    return results


if __name__ == "__main__":
    main()
