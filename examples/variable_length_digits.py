"""Variable-length sequences in one batch: each digit read column by column, only its inked columns.

Each 8x8 digit becomes the sequence of its columns from the first with ink to the last (2 to 8 steps of
8 pixels: a "1" is narrow, a "0" wide), left-aligned and padded to 8 steps, with a padding mask (N, 8),
True at padding.  The model takes the pair ``(x, mask)``: a ``Stack`` of two GRUs gives the mask to both,
so each reads only its digit's own columns and the second's last state is the one after the last inked
column.  Before training the script shows that a padded batch computes exactly what each digit alone,
unpadded, gives, and checks the whole model's back-pass with the ``GradientChecker`` on the pair.

Model: Stack(GRU(8 -> 48), GRU(48 -> 48), last state) -> Dense(48 -> 10), softmax cross-entropy, Adam
with a cosine schedule, batches of 32, float64.  Scikit-learn's 1,797 digits, split 75% / 25%.  The test
quarter's curve is only a monitor: ``fit`` scores it after each epoch, but nothing is chosen from it
(the epochs are fixed, no early stopping); to choose from a curve, validate on a part of the training
data, as ``mlp_digits.py`` does.

Run:  python examples/variable_length_digits.py [--quick] [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import history_dict, limit_blas_threads, load_digits, parse_args, plot_history, print_final, save_results

import minidl as md

EPOCHS, QUICK_EPOCHS = 30, 3
SIDE = 8


def inked_columns(x: np.ndarray, blank: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 64) pixels (``blank``: the value of a pixel without ink) -> the columns from the first inked to
    the last, left-aligned: (N, 8 steps, 8 pixels) zero-padded, and the padding mask (N, 8), True at padding."""
    columns = x.reshape(-1, SIDE, SIDE).transpose(0, 2, 1)  # step t: column t, its 8 pixels top to bottom
    inked = (columns > blank).any(axis=2)
    first = inked.argmax(axis=1)
    length = SIDE - inked[:, ::-1].argmax(axis=1) - first
    steps = np.arange(SIDE)
    source = np.minimum(first[:, None] + steps[None, :], SIDE - 1)
    padding = steps[None, :] >= length[:, None]
    sequences = np.take_along_axis(columns, source[:, :, None], axis=1)
    sequences[padding] = 0.0
    return sequences, padding


def build_model(seed: int, hidden: int = 48) -> md.Sequential:
    """(x, mask) -> two GRUs, both given the mask -> the last real step's state -> 10 logits."""
    rng = np.random.default_rng(seed)
    return md.Sequential(
        md.Stack(md.GRU(SIDE, hidden, rng=rng), md.GRU(hidden, hidden, return_sequences=False, rng=rng)),
        md.Dense(hidden, 10, rng=rng),
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.split("\n\n")[0], EPOCHS, QUICK_EPOCHS, argv)
    limit_blas_threads(args.threads)
    data = load_digits(args.seed, per_pixel=False)  # one mean and scale: a blank pixel is the smallest value
    blank = float(data.x_train.min())
    (x_train, pad_train), (x_test, pad_test) = inked_columns(data.x_train, blank), inked_columns(data.x_test, blank)
    lengths = SIDE - pad_train.sum(axis=1)
    print(f"digits: {len(x_train)} training and {len(x_test)} test images; sequence lengths (inked columns) "
          f"{ {int(k): int(v) for k, v in zip(*np.unique(lengths, return_counts=True), strict=True)} }")

    model = build_model(args.seed)
    # A padded batch is each digit alone: the padding changes nothing the model computes.
    batch = model((x_train[:16], pad_train[:16]))
    alone = np.concatenate([model(x_train[i:i + 1, :lengths[i]]) for i in range(16)])
    gap = float(np.max(np.abs(batch - alone)))
    print(f"padded batch against each digit alone (16 digits): max difference {gap:.1e}")
    assert gap < 1e-12, gap
    check = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=(x_train[:4], pad_train[:4]),
                               targets=data.y_train[:4]).run()
    print(check)
    check.raise_if_failed()  # a wrong back-pass stops here, before any training

    optimizer = md.Adam(model.parameters(), lr=5e-3)
    started = time.perf_counter()
    history = model.fit(
        (x_train, pad_train), data.y_train,
        loss=md.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=md.CosineAnnealingLR(optimizer, T_max=args.epochs),
        epochs=args.epochs,
        batch_size=32,
        validation_data=((x_test, pad_test), data.y_test),
        metrics=["accuracy"],
        rng=args.seed,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - started
    test = model.evaluate((x_test, pad_test), data.y_test)

    png = plot_history(history, args.out / "variable_length_digits.png",
                       f"GRUs on the inked columns (2-8 steps): {test['accuracy']:.2%} test accuracy")
    results = {"example": "variable_length_digits", "epochs": args.epochs, "seed": args.seed,
               "train_seconds": seconds, "test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "padding_gap": gap, "gradient_check_passed": check.passed, "history": history_dict(history)}
    save_results(args.out, "variable_length_digits", results)
    print_final(history, test, len(x_test), f"trained in {seconds:.1f} s")
    print(f"curves: {png}")
    return results


if __name__ == "__main__":
    main()
