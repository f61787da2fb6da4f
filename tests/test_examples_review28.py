"""The examples' shared options refuse what would fail later (an --out that is a file, a seed scikit-learn
cannot take), a resumed run says which epochs its time covers, and a run is reproducible from its seed.

The option checks call ``_common.parse_args`` in this process; the runs are subprocesses, as a user runs them,
or ``mlp_digits.main`` imported (examples/ on the path, as when the script runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/ importable, as it is for a script run from there; gives ``_common``."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import _common
    return _common


def refusal(common: ModuleType, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """argparse's error for ``argv`` (it exits with 2 and prints to stderr)."""
    with pytest.raises(SystemExit) as info:
        common.parse_args("demo", 10, 2, list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


def command(name: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py"), "--verbose", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "MPLBACKEND": "Agg"})


# --- D2: --out naming a file failed in plot_history with FileExistsError, after the whole training ---

@pytest.mark.parametrize("out, message", [
    ("afile", "argument --out: 'afile' exists and is not a folder; the curves and the results go into a folder"),
    ("afile/sub", "argument --out: 'afile' (in 'afile/sub') exists and is not a folder"),
])
def test_out_naming_a_file_is_refused_by_the_options(examples: ModuleType, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     out: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    assert message in refusal(examples, capsys, "--out", out)
    assert (tmp_path / "afile").read_text() == "keep me"


def test_out_may_be_an_existing_folder_or_a_new_one(examples: ModuleType, tmp_path: Path) -> None:
    for out in (tmp_path, tmp_path / "new" / "deeper"):
        assert examples.parse_args("demo", 10, 2, ["--out", str(out)]).out == out
    assert not (tmp_path / "new").exists()  # made when the results are saved, as before


def test_a_script_given_a_file_as_out_stops_before_it_loads_the_data(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("keep me")
    proc = command("mlp_digits", "--quick", "--out", "afile", cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "argument --out: 'afile' exists and is not a folder" in stderr, stderr
    assert "digits:" not in stdout and "Traceback" not in stderr
    assert (tmp_path / "afile").read_text() == "keep me"


# --- D3: --seed -1 or 2**32 ended in scikit-learn's InvalidParameterError traceback ---

@pytest.mark.parametrize("seed, message", [
    ("-1", "argument --seed: must be in 0 .. 4294967295 (2**32 - 1), got -1"),
    ("4294967296", "argument --seed: must be in 0 .. 4294967295 (2**32 - 1), got 4294967296"),
    ("1.5", "argument --seed: expected a whole number, got '1.5'"),
])
def test_seed_out_of_range_is_refused_by_the_options(examples: ModuleType, capsys: pytest.CaptureFixture[str],
                                                     seed: str, message: str) -> None:
    assert message in refusal(examples, capsys, "--seed", seed)


def test_seed_range_is_in_the_help_and_its_ends_are_taken(examples: ModuleType,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        examples.parse_args("demo", 10, 2, ["--help"])
    assert "0 .. 4294967295 (2**32 - 1)" in " ".join(capsys.readouterr().out.split())
    for seed in (0, 2**32 - 1):
        assert examples.parse_args("demo", 10, 2, ["--seed", str(seed)]).seed == seed
    assert len(examples.load_digits(2**32 - 1).y_test) == 450  # the largest seed splits the data


# --- S1 and the --quick message: a resumed run's time and its refusals ---

def test_resumed_mlp_run_says_its_time_covers_only_the_epochs_it_trained(examples: ModuleType, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """After --stop-after 2 and --resume to 4, train_seconds sat next to epochs 4 and the run printed
    'trained in 0.1 s', as if the 4 epochs had taken that."""
    import mlp_digits

    ckpt = str(tmp_path / "run.ckpt")
    first = mlp_digits.main(["--epochs", "4", "--stop-after", "2", "--checkpoint", ckpt, "--verbose", "0",
                             "--out", str(tmp_path / "first")])
    assert first["epochs"] == 2 and first["train_seconds_covers_epochs"] == [1, 2]
    assert "), trained in " in capsys.readouterr().out
    resumed = mlp_digits.main(["--epochs", "4", "--resume", ckpt, "--checkpoint", ckpt, "--verbose", "0",
                               "--out", str(tmp_path / "second")])
    stdout = capsys.readouterr().out
    assert resumed["epochs"] == 4 and resumed["train_seconds_covers_epochs"] == [3, 4]
    saved = json.loads((tmp_path / "second" / "mlp_digits.json").read_text())
    assert saved["train_seconds_covers_epochs"] == [3, 4] and saved["train_seconds"] == resumed["train_seconds"]
    assert f"epochs 3-4 trained in {resumed['train_seconds']:.1f} s (epochs 1-2 before --resume)" in stdout
    again = mlp_digits.main(["--epochs", "4", "--resume", ckpt, "--verbose", "0", "--out", str(tmp_path / "third")])
    assert again["train_seconds_covers_epochs"] is None  # all 4 were done: nothing trained, nothing timed
    assert "), no epoch left to train (epochs 1-4 before --resume)" in capsys.readouterr().out

    # --quick's 3 epochs are fewer than the 4 done: the refusal says where the 3 came from
    for argv, message in [(["--quick", "--resume", ckpt],
                           f"{ckpt} has 4 epochs done, more than --epochs 3 (set by --quick): nothing to resume"),
                          (["--quick", "--epochs", "3", "--resume", ckpt],
                           f"{ckpt} has 4 epochs done, more than --epochs 3: nothing to resume"),
                          (["--quick", "--stop-after", "5"], "--stop-after 5 is past --epochs 3 (set by --quick)")]:
        with pytest.raises(SystemExit) as info:
            mlp_digits.main([*argv, "--out", str(tmp_path / "refused")])
        assert str(info.value.code) == message
    assert not (tmp_path / "refused").exists()


# --- M1: the same seed gives the same run ---

@pytest.mark.parametrize("name", ["mlp_digits", "custom_layer"])
def test_the_same_seed_gives_the_same_results_but_for_the_time(tmp_path: Path, name: str) -> None:
    """Two --quick runs with one seed (at once, in two processes): their JSON agree in every key but the
    seconds; the history is compared exactly, float for float."""
    procs = [command(name, "--quick", "--seed", "3", "--out", str(tmp_path / run), cwd=tmp_path) for run in "ab"]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} failed:\n{stdout}\n{stderr}"
    a, b = ({key: value for key, value in json.loads((tmp_path / run / f"{name}.json").read_text()).items()
             if not key.endswith("seconds")} for run in "ab")
    assert a["seed"] == 3 and len(a["history"]["loss"]) == a["epochs"] >= 2
    assert a == b


# --- review 32: mlp_digits saved its checkpoint only when fit returned (a Ctrl-C lost the run), and a bad
# --resume file ended in a traceback ---

def test_mlp_digits_interrupted_keeps_its_last_epoch_and_resumes_from_it(tmp_path: Path) -> None:
    """Ctrl-C after a few epochs of a long run: the checkpoint of a finished epoch is there (saved at
    each epoch's end, by a fit callback) and a run resumes from it."""
    import signal

    import minidl as md

    ckpt = tmp_path / "run.ckpt"
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "mlp_digits.py"), "--epochs", "400", "--verbose", "2",
                             "--checkpoint", str(ckpt), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Epoch 3/400"):
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    saved = md.load(ckpt)
    assert saved["epoch"] >= 2 and len(saved["history"]["loss"]) == saved["epoch"]
    resumed = command("mlp_digits", "--epochs", "400", "--stop-after", str(saved["epoch"] + 1), "--resume", str(ckpt),
                      "--out", str(tmp_path / "out"), cwd=tmp_path)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert f"resumed {ckpt} after epoch {saved['epoch']}" in stdout
    assert f"epochs {saved['epoch'] + 1}-{saved['epoch'] + 1} trained in" in stdout


def test_mlp_digits_refuses_a_resume_file_that_is_not_its_checkpoint_in_one_line(tmp_path: Path) -> None:
    """Another minidl checkpoint ended in KeyError 'epoch', a file that is no checkpoint in a CheckpointError
    traceback: each is now one line naming the file and why, before anything runs."""
    import minidl as md

    md.save({"w": np.zeros(3)}, tmp_path / "other.ckpt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for name, message in [("other.ckpt", "--resume other.ckpt: not a checkpoint of mlp_digits.py --checkpoint "
                                         "(it has no model, optimizer, scheduler, early_stopping, shuffler, epoch, "
                                         "seed, history)"),
                          ("notes.txt", "--resume notes.txt: cannot be read as a minidl checkpoint (minidl.load(")]:
        proc = command("mlp_digits", "--resume", name, "--out", "out", cwd=tmp_path)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1 and stderr.startswith(message), stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
        assert "digits:" not in stdout and not (tmp_path / "out").exists()
