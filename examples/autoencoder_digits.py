"""A denoising convolutional autoencoder on the 8x8 digits: strided convolutions down to 16 numbers,
transposed convolutions back up, trained to turn a noisy digit into the clean one.

The data are the 1,797 digits that scikit-learn ships inside its package (no download), split 75% /
25% as in the other examples and standardised with the training statistics; each image gets seeded
Gaussian noise (standard deviation 0.5, half the pixels' spread).  The test quarter is only scored.  Its
curve is only a monitor: ``fit`` scores it after each epoch, but nothing is chosen from it
(the epochs are fixed, no early stopping); to choose from a curve, validate on a part of the training
data, as ``mlp_digits.py`` does.
Before training, the script proves the back-pass of the whole model -- the transposed convolutions
included -- with the ``GradientChecker`` on a few images, with the MSE loss.

Model: Conv2D(1 -> 16, 3x3, stride 2) -> ReLU -> Conv2D(16 -> 4, 3x3, stride 2): a 4x2x2 code of 16
numbers for 64 pixels; ConvTranspose2D(4 -> 16, 4x4, stride 2) -> ReLU -> ConvTranspose2D(16 -> 1, 4x4,
stride 2) back to 1x8x8.  MSE, Adam with a cosine schedule, batches of 32, 60 epochs, float32.

Run:  python examples/autoencoder_digits.py [--quick] [--out DIR] [--epochs N] [--seed S]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import history_dict, limit_blas_threads, load_digits, parse_args, save_results

import minidl as md

EPOCHS, QUICK_EPOCHS = 60, 3
NOISE = 0.5


def build_model(seed: int) -> md.Sequential:
    """(N, 1, 8, 8) noisy -> (N, 4, 2, 2) code -> (N, 1, 8, 8) clean; each layer seeded from ``seed``."""
    rng = np.random.default_rng(seed)
    return md.Sequential(
        md.Conv2D(1, 16, 3, stride=2, padding=1, rng=rng, dtype=np.float32),  # 16 x 4 x 4
        md.ReLU(),
        md.Conv2D(16, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float32),  # the code: 4 x 2 x 2
        md.ConvTranspose2D(4, 16, 4, stride=2, padding=1, rng=rng, dtype=np.float32),  # 16 x 4 x 4
        md.ReLU(),
        md.ConvTranspose2D(16, 1, 4, stride=2, padding=1, rng=rng, dtype=np.float32),  # 1 x 8 x 8
    )


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def plot(history: md.History, clean: np.ndarray, noisy: np.ndarray, restored: np.ndarray, path: Path,
         title: str) -> Path:
    """The loss curves, and eight test digits: clean, noisy, restored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.5))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(history.epoch, history["loss"], "o-", ms=3, label="training")
    ax.plot(history.epoch, history["val_loss"], "s-", ms=3, label="test")
    ax.set(xlabel="epoch", ylabel="MSE", title="loss", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    for row, (images, name) in enumerate(((clean, "clean"), (noisy, "noisy"), (restored, "restored"))):
        for k in range(8):
            cell = fig.add_subplot(3, 12, row * 12 + 5 + k)
            cell.imshow(images[k, 0], cmap="gray_r")
            cell.set_xticks([])
            cell.set_yticks([])
            if k == 0:
                cell.set_ylabel(name)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.split("\n\n")[0], EPOCHS, QUICK_EPOCHS, argv)
    limit_blas_threads(args.threads)
    data = load_digits(args.seed, images=True, per_pixel=False, dtype=np.float32)
    noise = np.random.default_rng(args.seed + 1)
    noisy_train = (data.x_train + NOISE * noise.standard_normal(data.x_train.shape)).astype(np.float32)
    noisy_test = (data.x_test + NOISE * noise.standard_normal(data.x_test.shape)).astype(np.float32)
    print(f"digits: {len(data.x_train)} training and {len(data.x_test)} test images of 1x8x8, with noise of "
          f"standard deviation {NOISE}")

    model = build_model(args.seed)
    model.summary(input_shape=(1, 8, 8))
    # The transposed convolutions' back-pass, checked before it is trusted: on a copy, in float64.
    check = md.GradientChecker(model, loss=md.MSELoss(), inputs=noisy_train[:4], targets=data.x_train[:4]).run()
    print(check)
    check.raise_if_failed()  # a wrong back-pass stops here, before any training

    optimizer = md.Adam(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    history = model.fit(
        noisy_train, data.x_train,
        loss=md.MSELoss(),
        optimizer=optimizer,
        scheduler=md.CosineAnnealingLR(optimizer, T_max=args.epochs),
        epochs=args.epochs,
        batch_size=32,
        validation_data=(noisy_test, data.x_test),
        rng=args.seed,
        verbose=args.verbose,
    )
    seconds = time.perf_counter() - started
    restored = model.predict(noisy_test)
    baselines = {"noisy input": mse(noisy_test, data.x_test),
                 "mean training image": mse(np.broadcast_to(data.x_train.mean(axis=0), data.x_test.shape),
                                            data.x_test)}
    test_mse = mse(restored, data.x_test)

    title = f"Denoising autoencoder on the digits: test MSE {test_mse:.3f} (noisy input {baselines['noisy input']:.3f})"
    png = plot(history, data.x_test, noisy_test, restored, args.out / "autoencoder_digits.png", title)
    results = {"example": "autoencoder_digits", "epochs": args.epochs, "seed": args.seed, "train_seconds": seconds,
               "test_mse": test_mse, "baselines": baselines, "gradient_check_passed": check.passed,
               "history": history_dict(history)}
    save_results(args.out, "autoencoder_digits", results)
    print(f"final: training loss {history['loss'][-1]:.4f}")
    print(f"final: test loss (MSE) {test_mse:.4f}, against {baselines['noisy input']:.4f} for the noisy input "
          f"itself and {baselines['mean training image']:.4f} for the mean training image; trained in {seconds:.1f} s")
    print(f"curves and digits: {png}")
    return results


if __name__ == "__main__":
    main()
