"""A multi-layer perceptron on the 8x8 handwritten digits: >= 97% accuracy on a held-out test split.

The data are the 1,797 digits that scikit-learn ships inside its package (no download), split
stratified 75% / 25%; the test quarter is never trained on and never used to choose anything: it is
scored once, at the end.  A fifth of the training part, held out (stratified too), is the validation
data that ``fit`` scores after each epoch and that the early stopping watches: it stops the run after
PATIENCE epochs without a lower validation loss and restores the weights of the best epoch.  Before
training, the ``GradientChecker`` checks the model's back-pass on a few digits.

Model: 64 -> 256 -> 256 -> 10 with ReLU and dropout, softmax cross-entropy, Adam with a cosine
learning-rate schedule, batches of 32, up to 40 epochs, float64.  The hyper-parameters were fixed once
and checked over seeds 0..7 of the split, weights and batches (docs/training.md).

Checkpoints (see docs/checkpoints.md): ``--checkpoint PATH`` saves the run at the end of every epoch
(a Ctrl-C loses at most the epoch under way), and ``--resume PATH`` trains such a run on up to
``--epochs`` in all, bit for bit as if it had never stopped.  ``--stop-after K`` ends a run after K of
its ``--epochs`` (the cosine schedule still spans them all), e.g.
``--epochs 40 --stop-after 10 --checkpoint run.ckpt`` then ``--epochs 40 --resume run.ckpt``.
Resumed with more ``--epochs`` than it was planned for, a run's cosine is stretched to end there instead.
A resumed run's time (``train_seconds`` and "trained in") is that of the epochs it trained itself, which
``train_seconds_covers_epochs`` gives (first, last) and the printed line names ("epochs 11-40 trained in").

Run:  python examples/mlp_digits.py [--quick] [--out DIR] [--epochs N] [--seed S]
                                    [--checkpoint PATH] [--resume PATH] [--stop-after K]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    history_dict,
    limit_blas_threads,
    load_digits,
    parse_args,
    plot_history,
    positive,
    print_final,
    save_results,
)

import minidl as md

EPOCHS, QUICK_EPOCHS = 40, 3
PATIENCE = 10  # epochs without a better validation loss before the early stopping ends the run
SAVED = ("model", "optimizer", "scheduler", "early_stopping", "shuffler", "epoch", "seed", "history")


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


def checkpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="save the run here after each epoch (to --resume it)")
    parser.add_argument("--resume", type=Path, help="go on from this --checkpoint up to --epochs in all")
    parser.add_argument("--stop-after", type=positive, metavar="K", help="end after epoch K of --epochs")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The run saved in ``path`` by ``--checkpoint``, or a one-line SystemExit naming the file and what is wrong."""
    try:
        checkpoint = md.load(path)
    except (md.CheckpointError, OSError) as error:
        raise SystemExit(f"--resume {path}: cannot be read as a minidl checkpoint ({error})") from None
    missing = [key for key in SAVED if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise SystemExit(f"--resume {path}: not a checkpoint of mlp_digits.py --checkpoint (it has no "
                         f"{', '.join(missing)})")
    return checkpoint


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.split("\n\n")[0], EPOCHS, QUICK_EPOCHS, argv, more=checkpoint_options)
    stop = args.epochs if args.stop_after is None else args.stop_after
    epochs = f"--epochs {args.epochs}" + (" (set by --quick)" if args.epochs_from_quick else "")
    if stop > args.epochs:
        raise SystemExit(f"--stop-after {stop} is past {epochs}")
    # (before training: a checkpoint that cannot be written would fail only after it, the run lost)
    if args.checkpoint and args.checkpoint.is_dir():
        raise SystemExit(f"--checkpoint {args.checkpoint}: is a folder; name a file in it")
    if args.checkpoint and not args.checkpoint.resolve().parent.is_dir():
        raise SystemExit(f"--checkpoint {args.checkpoint}: its folder {args.checkpoint.parent} does not exist")
    if args.resume and not args.resume.is_file():
        raise SystemExit(f"--resume {args.resume}: " + ("is a folder" if args.resume.is_dir() else "no such file"))
    checkpoint = load_checkpoint(args.resume) if args.resume else {"epoch": 0, "history": {}}
    done, earlier = checkpoint["epoch"], checkpoint["history"]
    if done > stop:
        asked = f"--stop-after {stop}" if args.stop_after else epochs
        raise SystemExit(f"{args.resume} has {done} epochs done, more than {asked}: nothing to resume")
    if args.resume and checkpoint["seed"] != args.seed:  # the split, and so the data, would differ
        raise SystemExit(f"{args.resume} was trained with --seed {checkpoint['seed']}, not {args.seed}")
    limit_blas_threads(args.threads)
    data = load_digits(args.seed, validation=0.2)
    print(f"digits: {len(data.x_train)} training, {len(data.x_val)} validation and {len(data.x_test)} test "
          "samples of 64 pixels")

    model = build_model(args.seed)
    model.summary()
    # The back-pass, checked before it is trusted (on a copy: the model and its dropout are left as they were).
    check = md.GradientChecker(model, loss=md.CrossEntropyLoss(), inputs=data.x_train[:4],
                               targets=data.y_train[:4]).run()
    print(check)
    check.raise_if_failed()  # a wrong back-pass stops here, before any training

    optimizer = md.Adam(model.parameters(), lr=2e-3)
    scheduler = md.CosineAnnealingLR(optimizer, T_max=args.epochs)
    early = md.EarlyStopping("val_loss", patience=PATIENCE, restore_best_weights=True)
    shuffler = np.random.default_rng(args.seed)  # a Generator, whose state a checkpoint can keep
    if args.resume:
        model.load_state_dict(checkpoint["model"])  # weights, and the dropout layers' generator
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scheduler.T_max = args.epochs  # as saved if --epochs is the same; else the cosine now ends there
        early.load_state_dict(checkpoint["early_stopping"])
        shuffler.bit_generator.state = checkpoint["shuffler"]
        print(f"resumed {args.resume} after epoch {done}")

    def whole(history: md.History) -> dict[str, list[float]]:
        """The history of every epoch, those before the resume too (``history`` holds this fit's)."""
        now = history_dict(history)
        return {key: earlier.get(key, []) + now.get(key, []) for key in earlier or now}

    def save_checkpoint(epoch: int, history: md.History) -> None:
        """At the end of each epoch (fit calls it): the whole run, to resume it bit for bit."""
        if args.checkpoint:  # md.save is atomic: a Ctrl-C while it writes leaves the previous epoch's file
            md.save({"model": model.state_dict(generators=True), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "early_stopping": early.state_dict(),
                     "shuffler": shuffler.bit_generator.state, "epoch": epoch, "seed": args.seed,
                     "history": whole(history)}, args.checkpoint)

    started = time.perf_counter()
    history = model.fit(
        data.x_train, data.y_train,
        loss=md.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=stop,  # the number of the last epoch: this fit trains done + 1 .. stop, numbered so
        initial_epoch=done,
        batch_size=32,
        validation_data=(data.x_val, data.y_val),  # never the test set: the early stopping chooses with it
        metrics=["accuracy"],
        rng=shuffler,
        verbose=args.verbose,
        early_stopping=early,  # restores the best epoch's weights when the run ends
        callbacks=[save_checkpoint],
    )
    seconds = time.perf_counter() - started
    last = history.epoch[-1] if history.epoch else done  # (the early stopping may have ended the run before stop)
    history.history, history.epoch = whole(history), list(range(1, last + 1))  # every epoch, for the curves
    if args.checkpoint and last > done:
        print(f"checkpoint after epoch {last}: {args.checkpoint}")
    if early.stopped_epoch:
        print(f"early stopping after epoch {early.stopped_epoch}: no better validation loss in {PATIENCE} epochs")
    if early.restored:
        print(f"the weights of epoch {early.best_epoch} restored (validation loss {early.best:.4f})")
    test = model.evaluate(data.x_test, data.y_test)

    png = plot_history(history, args.out / "mlp_digits.png",
                       f"MLP on the digits: {test['accuracy']:.2%} test accuracy", val_label="validation")
    # the seconds are this run's, a resumed run's epochs done + 1 .. stop only: those before took their own time
    span = [done + 1, last] if last > done else None
    trained = ("no epoch left to train" if span is None else f"trained in {seconds:.1f} s" if not done
               else f"epochs {done + 1}-{last} trained in {seconds:.1f} s")
    results = {"example": "mlp_digits", "epochs": last, "seed": args.seed, "best_epoch": early.best_epoch,
               "train_seconds": seconds, "train_seconds_covers_epochs": span,
               "test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "gradient_check_passed": check.passed, "history": history_dict(history)}
    save_results(args.out, "mlp_digits", results)
    print_final(history, test, len(data.x_test), trained + (f" (epochs 1-{done} before --resume)" if done else ""),
                "with dropout on")
    print(f"curves: {png}")
    return results


if __name__ == "__main__":
    main()
