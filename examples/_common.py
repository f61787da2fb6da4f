"""Shared plumbing for the examples on the digits: arguments, data, curves, results.

Not part of minidl: the examples' own helpers, kept here so that each example shows only the model.
Needs the ``examples`` extra: ``pip install -e ".[examples]"`` (scikit-learn, matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md

DEFAULT_OUT = Path(__file__).resolve().parent / "output"
SEED_MAX = 2**32 - 1  # scikit-learn's split takes a seed in 0 .. 2**32 - 1, no other
ROWS = COLUMNS = 8  # the digits' images


def positive(text: str) -> int:
    """An int >= 1, for argparse (``--epochs 0`` failed later, in the schedule or the plot)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    """An int in [0, 2**32 - 1], for argparse (``--seed -1`` ended in scikit-learn's traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be in 0 .. {SEED_MAX} (2**32 - 1), got {value}")
    return value


def _out_folder(text: str) -> Path:
    """A folder that exists or can be made, for argparse (a file there failed only after training, the run lost)."""
    path = Path(text)
    for existing in (path, *path.parents):  # the nearest part of the path that exists must be a folder
        if existing.exists():
            if not existing.is_dir():
                where = "" if existing == path else f" (in {text!r})"
                raise argparse.ArgumentTypeError(f"{str(existing)!r}{where} exists and is not a folder; the curves "
                                                 "and the results go into a folder: name a new or existing one")
            break
    return path


def parse_args(description: str, epochs: int, quick_epochs: int, argv: Sequence[str] | None = None,
               more: Callable[[argparse.ArgumentParser], object] | None = None) -> argparse.Namespace:
    """The options every example takes; ``more(parser)`` may add an example's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=_out_folder, default=DEFAULT_OUT,
                        help=f"folder for the PNG of the curves and NAME.json (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {quick_epochs} epoch(s) (an explicit --epochs wins)")
    parser.add_argument("--epochs", type=positive, default=None, help=f"epochs >= 1 (default {epochs})")
    parser.add_argument("--seed", type=_seed, default=0,
                        help=f"seeds the split, the weights and the batches: 0 .. {SEED_MAX} (2**32 - 1), default 0")
    parser.add_argument("--threads", type=positive, default=1,
                        help="BLAS threads (default 1: these matrices are small, and more threads fighting "
                             "over a few busy cores can make each step many times slower)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="0 no per-epoch output, 1 a progress bar per epoch, 2 one line per epoch")
    if more is not None:
        more(parser)
    args = parser.parse_args(argv)
    args.epochs_from_quick = args.quick and args.epochs is None  # for messages that name --epochs
    if args.epochs is None:
        args.epochs = quick_epochs if args.quick else epochs
    return args


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS thread pool (threadpoolctl comes with scikit-learn; skipped if it is missing)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return
    threadpool_limits(threads)


@dataclass
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None  # with load_digits(validation=...): held out of the training part
    y_val: np.ndarray | None = None


def load_digits(seed: int, *, images: bool = False, per_pixel: bool = True,
                dtype: type = np.float64, test_size: float = 0.25, validation: float = 0.0) -> Digits:
    """scikit-learn's 1,797 8x8 digits (shipped inside the package, no download), split stratified
    into 75% training and 25% held-out test, standardised with the *training* statistics only.

    Shapes: x (N, 64), or (N, 1, 8, 8) with ``images=True``; y (N,) integer labels 0..9.
    ``per_pixel``: standardise each pixel on its own (MLP), else with one mean and std (CNN).
    ``validation``: this fraction of the training part held out, stratified too, as ``x_val, y_val``: the
    data to choose with (early stopping, a learning rate), so that the test set is scored only once, at the end.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise SystemExit(f"the examples load their data with scikit-learn ({error}); install the examples "
                         "extra: pip install -e '.[examples]'") from None

    bunch = sklearn_digits()
    x = bunch.data.astype(dtype)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed,
                                                        stratify=y)
    x_val = y_val = None
    if validation:
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=validation,
                                                          random_state=seed, stratify=y_train)
    if per_pixel:
        # +1 in the scale: some border pixels are (almost) always 0 and would blow up.
        mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1.0
    else:
        mean, scale = x_train.mean(), x_train.std()
    x_train = ((x_train - mean) / scale).astype(dtype)
    x_test = ((x_test - mean) / scale).astype(dtype)
    if x_val is not None:
        x_val = ((x_val - mean) / scale).astype(dtype)
    if images:
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
        x_val = None if x_val is None else x_val.reshape(-1, 1, 8, 8)
    return Digits(x_train, y_train, x_test, y_test, x_val, y_val)


def as_sequences(x: np.ndarray) -> np.ndarray:
    """(N, 64) pixels -> (N, 8, 8): one time step (or token) per image row, its 8 pixels the step's features."""
    return x.reshape(-1, ROWS, COLUMNS)


def plot_history(history: md.History, path: Path, title: str, val_label: str = "test") -> Path:
    """Loss and accuracy per epoch (training and ``val_label``, what fit validated on) side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history.epoch
    ax_loss.plot(epochs, history["loss"], "o-", label="training")
    ax_acc.plot(epochs, history["accuracy"], "o-", label="training")
    if "val_loss" in history:
        ax_loss.plot(epochs, history["val_loss"], "s-", label=val_label)
        ax_acc.plot(epochs, history["val_accuracy"], "s-", label=val_label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_results(out: Path, name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` as ``<out>/<name>.json`` (the tests read it)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(results, indent=2))
    return path


def history_dict(history: md.History) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def print_final(history: md.History, test: dict[str, float], n_test: int, trained: str, note: str = "") -> None:
    """The two "final:" lines of a classifier: its last epoch's training figures (``note`` in brackets after
    them), then the test set's, with ``trained`` (how long) at the end."""
    print(f"final: training loss {history['loss'][-1]:.4f}, training accuracy {history['accuracy'][-1]:.2%}"
          + (f" ({note})" if note else ""))
    print(f"final: test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%} "
          f"({round(test['accuracy'] * n_test)}/{n_test}), {trained}")
