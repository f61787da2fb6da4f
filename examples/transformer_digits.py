"""A small transformer encoder reads each 8x8 digit as 8 tokens (its rows) and names it.

The data are the 1,797 digits that scikit-learn ships inside its package (no download), split
stratified 75% / 25% as in the other examples; the test quarter is only scored.  The test quarter's
curve is only a monitor: ``fit`` scores it after each epoch, but nothing is chosen from it (the
epochs are fixed, no early stopping); to choose from a curve, validate on a part of the training
data, as ``mlp_digits.py`` does.  Before training, the script proves the whole model's back-pass --
attention, layer norms, the learned positions -- with the ``GradientChecker`` on a few digits: every
tensor, the small ones element by element, the large weights along a few random directions.

Model (pre-norm encoder blocks, as in GPT-2 and ViT):

    rows (N, 8, 8) -> Dense(8 -> 32) on every row -> + learned positions (8, 32)
    -> 2 x [ x + MultiHeadAttention(32, 4 heads)(LayerNorm(x));  x + MLP(LayerNorm(x)) ]
    -> LayerNorm -> Flatten -> Dense(8*32 -> 10), softmax cross-entropy

with ``MLP = Dense(32 -> 64) -> GELU -> Dense(64 -> 32)`` on every token.  AdamW with weight decay
under a one-cycle schedule stepped every batch, batches of 32, float64.  The positions are a layer
of this script: a custom layer, checked by the same ``GradientChecker`` as the built-in ones.
The hyper-parameters were fixed once and checked over seeds 0..4 (docs/training.md).

Run:  python examples/transformer_digits.py [--quick] [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import (
    COLUMNS,
    ROWS,
    as_sequences,
    history_dict,
    limit_blas_threads,
    load_digits,
    parse_args,
    plot_history,
    print_final,
    save_results,
)

import minidl as md

EPOCHS, QUICK_EPOCHS = 30, 3
BATCH = 32


class LearnedPositions(md.Layer):
    """Add a learned vector per position: x: (N, T, E) -> x + P, with P: (T, E).

    Attention alone cannot tell the rows apart (it is permutation-equivariant); this tells it where
    each token sits.  Backward: dx = g, and dP += the sum of g over the batch.
    """

    def __init__(self, steps: int, features: int, rng: np.random.Generator) -> None:
        super().__init__()
        self.P = md.Parameter(0.02 * rng.standard_normal((steps, features)))
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        steps, features = self.P.data.shape
        if x.ndim != 3 or x.shape[1:] != (steps, features):
            raise md.ShapeError(f"LearnedPositions: expected input of shape (N, {steps}, {features}), "
                                f"got shape {x.shape}")
        self._shape = x.shape
        return x + self.P.data

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._shape)
        self.P.grad += grad_output.sum(axis=0)
        return grad_output

    def input_shape_hint(self) -> tuple[int, ...]:
        return self.P.data.shape


def encoder_block(width: int, heads: int, hidden: int, rng: np.random.Generator) -> md.Sequential:
    """Two pre-norm residual sub-blocks: self-attention, then a per-token MLP."""
    return md.Sequential(
        md.Residual(md.Sequential(md.LayerNorm(width), md.MultiHeadAttention(width, heads, rng=rng))),
        md.Residual(md.Sequential(md.LayerNorm(width), md.Dense(width, hidden, rng=rng), md.GELU(),
                                  md.Dense(hidden, width, rng=rng))),
    )


def build_model(seed: int, width: int = 32, heads: int = 4, hidden: int = 64, blocks: int = 2) -> md.Sequential:
    """(N, 8 rows, 8 pixels) -> 10 logits."""
    rng = np.random.default_rng(seed)
    return md.Sequential(
        md.Dense(COLUMNS, width, rng=rng),  # the same projection of every row: Dense takes (N, T, 8)
        LearnedPositions(ROWS, width, rng),
        *(encoder_block(width, heads, hidden, rng) for _ in range(blocks)),
        md.LayerNorm(width),
        md.Flatten(),
        md.Dense(ROWS * width, 10, rng=rng),
    )



def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.split("\n\n")[0], EPOCHS, QUICK_EPOCHS, argv)
    limit_blas_threads(args.threads)
    data = load_digits(args.seed)
    x_train, x_test = as_sequences(data.x_train), as_sequences(data.x_test)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images, read as {ROWS} tokens of "
          f"{COLUMNS} pixels")

    model = build_model(args.seed)
    model.summary(input_shape=(ROWS, COLUMNS))
    # Attention, layer norms, GELU and the positions above, checked before they are trusted: on a copy.
    check = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=x_train[:4],
                               targets=data.y_train[:4]).run()
    print(check)
    check.raise_if_failed()  # a wrong back-pass stops here, before any training

    optimizer = md.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    steps = args.epochs * -(-len(x_train) // BATCH)  # batches per epoch, the last one short
    started = time.perf_counter()
    history = model.fit(
        x_train, data.y_train,
        loss=md.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=md.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps),
        scheduler_interval="batch",
        epochs=args.epochs,
        batch_size=BATCH,
        validation_data=(x_test, data.y_test),
        metrics=["accuracy"],
        rng=args.seed,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - started
    test = model.evaluate(x_test, data.y_test)

    png = plot_history(history, args.out / "transformer_digits.png",
                       f"Transformer on the digits, rows as tokens: {test['accuracy']:.2%} test accuracy")
    results = {"example": "transformer_digits", "epochs": args.epochs, "seed": args.seed,
               "train_seconds": seconds, "test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "gradient_check_passed": check.passed, "history": history_dict(history)}
    save_results(args.out, "transformer_digits", results)
    print_final(history, test, len(x_test), f"trained in {seconds:.1f} s")
    print(f"curves: {png}")
    return results


if __name__ == "__main__":
    main()
