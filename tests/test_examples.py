"""Every training example runs in its --quick mode and learns (loss down, accuracy far above chance).

Each runs in a subprocess, as a user would run it, writing its PNG and results JSON into a temporary
folder.  The full runs (>= 97% / >= 98% test accuracy) take longer and are not repeated here; see
docs/training.md for their measured numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import minidl as md
from minidl.testing import states_equal

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHANCE = 0.1  # ten classes


def run_example(name: str, out: Path) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--verbose", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "final: test loss" in proc.stdout
    png = out / f"{name}.png"
    assert png.is_file() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / f"{name}.json").read_text())
    results["stdout"] = proc.stdout
    return results


def assert_learned(results: dict, min_accuracy: float) -> None:
    loss = results["history"]["loss"]
    assert len(loss) == results["epochs"] >= 2
    assert loss[-1] < 0.7 * loss[0]
    assert results["history"]["val_accuracy"][-1] == pytest.approx(results["test_accuracy"])
    assert results["test_accuracy"] > min_accuracy > 3 * CHANCE


def test_mlp_digits_quick(tmp_path: Path) -> None:
    """It validates on a fifth of its training part, not on the test set (the early stopping chooses with it),
    and checks its back-pass before training."""
    results = run_example("mlp_digits", tmp_path)
    loss = results["history"]["loss"]
    assert len(loss) == results["epochs"] >= 2 and loss[-1] < 0.7 * loss[0]
    assert results["test_accuracy"] > 0.85
    assert "digits: 1077 training, 270 validation and 450 test samples of 64 pixels" in results["stdout"]
    assert 1 <= results["best_epoch"] <= results["epochs"]
    assert results["history"]["val_loss"][results["best_epoch"] - 1] == min(results["history"]["val_loss"])
    assert results["gradient_check_passed"] is True and "Gradient check PASSED" in results["stdout"]
    assert "Total params: 85,002" in results["stdout"]


def test_cnn_digits_quick(tmp_path: Path) -> None:
    results = run_example("cnn_digits", tmp_path)
    assert_learned(results, 0.8)
    assert "(None, 64, 2, 2)" in results["stdout"]  # the summary's shape after the last pooling


def test_rnn_digits_quick(tmp_path: Path) -> None:
    results = run_example("rnn_digits", tmp_path)
    assert_learned(results, 0.75)
    assert results["gradient_check_passed"] is True
    assert "Gradient check PASSED" in results["stdout"]
    assert "0 (LSTM)      (None, 64)     18,688" in results["stdout"]  # 4 gates x 64 x (1 + 8 + 64)


def test_transformer_digits_quick(tmp_path: Path) -> None:
    results = run_example("transformer_digits", tmp_path)
    assert_learned(results, 0.75)
    assert results["gradient_check_passed"] is True
    assert "Gradient check PASSED" in results["stdout"]
    assert "1.P" in results["stdout"]  # the script's own layer is in the check, its tensor by name
    lrs = results["history"]["lr"]  # one cycle stepped per batch: up within the first epoch, then down
    assert lrs[0] == pytest.approx(3e-3 / 25) and lrs[0] < lrs[2] < lrs[1]


def test_autoencoder_digits_quick(tmp_path: Path) -> None:
    results = run_example("autoencoder_digits", tmp_path)
    loss = results["history"]["loss"]
    assert len(loss) == results["epochs"] >= 2 and loss[-1] < 0.6 * loss[0]
    assert results["gradient_check_passed"] is True and "Gradient check PASSED" in results["stdout"]
    # already far better than guessing the mean image after the quick run's 3 epochs
    assert results["test_mse"] < 0.7 * results["baselines"]["mean training image"]
    assert results["history"]["val_loss"][-1] == pytest.approx(results["test_mse"], rel=1e-4)


def test_custom_layer_quick(tmp_path: Path) -> None:
    results = run_example("custom_layer", tmp_path)
    assert results["check_swish_passed"] and results["check_model_passed"]
    assert not results["check_broken_passed"]
    assert results["check_broken_failed_tensors"] == ["beta"]
    assert "Gradient check FAILED" in results["stdout"]
    assert_learned(results, 0.85)


def test_command_lines_that_make_no_sense_are_refused_before_anything_runs(tmp_path):
    """--epochs 0 failed later, in the schedule or the plot; regression.py --help ran the whole demo."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mlp_digits.py"), "--epochs", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--epochs: must be at least 1, got 0" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = subprocess.run([sys.executable, str(EXAMPLES / "regression.py"), "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: regression.py") and "INIT" not in proc.stdout


@pytest.mark.parametrize("options, message", [
    (["--epochs", "abc"], "--epochs: expected a whole number, got 'abc'"),
    (["--threads", "0"], "--threads: must be at least 1, got 0"),
    (["--checkpoint", "no/such/folder/run.ckpt"], "its folder no/such/folder does not exist"),
    (["--resume", "no-such.ckpt"], "--resume no-such.ckpt: no such file"),
    (["--checkpoint", "."], "--checkpoint .: is a folder; name a file in it"),
    (["--resume", "."], "--resume .: is a folder"),
])
def test_mlp_digits_refuses_bad_options_before_training(tmp_path: Path, options: list[str], message: str) -> None:
    """A checkpoint folder that does not exist failed after the whole run (its results lost); '--epochs abc'
    named a private function; '--threads 0' was taken (and left BLAS at its default)."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / "mlp_digits.py"), *options, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr
    assert "Epoch" not in proc.stdout + proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["autoencoder_digits", "mlp_digits", "cnn_digits"])
def test_help_gives_the_whole_first_paragraph(name: str) -> None:
    """--help cut the autoencoder's description at the end of its docstring's first line."""
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    description = proc.stdout.split("\n\n")[1]
    assert " ".join(description.split()).endswith(".")


def test_variable_length_digits_quick(tmp_path: Path) -> None:
    results = run_example("variable_length_digits", tmp_path)
    assert_learned(results, 0.6)
    assert results["gradient_check_passed"] is True
    assert results["padding_gap"] < 1e-12  # a padded batch computes what each digit alone gives
    assert "sequence lengths (inked columns) {3: 4, 4: 40, 5: 147, 6: 1054, 7: 99, 8: 3}" in results["stdout"]


def run_mlp_digits(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / "mlp_digits.py"), "--verbose", "0", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"},
                          check=False)


def test_mlp_digits_resumed_from_its_checkpoint_is_bit_for_bit_the_run_never_stopped(tmp_path: Path) -> None:
    """2 of 4 epochs, saved, then resumed to 4: the weights, the dropout and shuffling generators, the
    optimizer, the schedule, the curves and the test loss are exactly those of 4 epochs in one go."""
    ckpt = {name: str(tmp_path / f"{name}.ckpt") for name in ("straight", "half", "resumed")}
    runs = {"straight": ("--epochs", "4", "--checkpoint", ckpt["straight"]),
            "half": ("--epochs", "4", "--stop-after", "2", "--checkpoint", ckpt["half"]),
            "resumed": ("--epochs", "4", "--resume", ckpt["half"], "--checkpoint", ckpt["resumed"])}
    for name, args in runs.items():
        proc = run_mlp_digits(tmp_path / name, *args)
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "resumed" in proc.stdout and "after epoch 2" in proc.stdout
    straight, half, resumed = (md.load(ckpt[name]) for name in ("straight", "half", "resumed"))
    assert half["epoch"] == 2 and straight["epoch"] == resumed["epoch"] == 4
    assert not states_equal(half["model"], straight["model"])
    assert half["scheduler"]["T_max"] == 4  # --stop-after ends the run, not the schedule
    for key in ("model", "optimizer", "scheduler", "early_stopping", "shuffler", "history"):
        assert states_equal(resumed[key], straight[key]), key
    results = {name: json.loads((tmp_path / name / "mlp_digits.json").read_text()) for name in ("straight", "resumed")}
    assert results["resumed"]["test_loss"] == results["straight"]["test_loss"]
    assert results["resumed"]["history"] == results["straight"]["history"]  # epochs 1-2 from the checkpoint
    assert results["resumed"]["epochs"] == len(results["resumed"]["history"]["loss"]) == 4

    # refused before anything runs: more epochs done than asked for, another seed, a stop past the end
    for args, message in [(("--epochs", "3", "--resume", ckpt["straight"]),
                           f"{ckpt['straight']} has 4 epochs done, more than --epochs 3: nothing to resume"),
                          (("--epochs", "4", "--resume", ckpt["half"], "--seed", "1"),
                           f"{ckpt['half']} was trained with --seed 0, not 1"),
                          (("--epochs", "2", "--stop-after", "3"), "--stop-after 3 is past --epochs 2")]:
        proc = run_mlp_digits(tmp_path / "refused", *args)
        assert proc.returncode == 1 and proc.stderr.strip() == message, proc.stderr
        assert not (tmp_path / "refused").exists()
