"""minidl against an earlier revision of itself, in one process: did a change make the step slower?

The training step of ``train_step.py`` (forward, loss, ``backward_params``, ``step(zero_grad=True)``)
is built twice from the same parameters and data: once from the working tree's minidl, once from the
package of a git revision, extracted with ``git archive`` into a temporary folder and imported under
another name (minidl's own imports are relative, so it runs as it is).  The two are timed in
alternate A B / B A rounds (``train_step.time_alternately``) and the median of the per-round
ratios printed, with the runs' spread.

Timing two copies of the *same* code this way is not exactly 1: where each copy's objects and arrays
land in memory moves the ratio by a few tenths of a percent.  ``--control`` adds that baseline (the
working tree against a copy of itself); a difference smaller than its spread is not a difference.

Usage::

    python benchmarks/compare_revisions.py 0c3b12b            # the float32 MLP rows
    python benchmarks/compare_revisions.py HEAD~3 --only 512 --control
    python benchmarks/compare_revisions.py HEAD~1 --cnn --dtype float64
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.train_step import (
    LR,
    Setup,
    Step,
    blas_limits,
    cnn_cases,
    estimate_step,
    minidl_cnn_model,
    minidl_mlp_model,
    minidl_train_step,
    mlp_cases,
    mlp_setup,
    time_alternately,
)
from benchmarks.train_step import cnn_setup as make_cnn_setup

__all__ = ["import_copy", "import_revision", "step_of"]

ROOT = Path(__file__).resolve().parent.parent


def import_revision(revision: str, folder: Path, name: str) -> ModuleType:
    """The ``minidl`` package of git ``revision``, extracted into ``folder`` and imported as ``name``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "minidl"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuse links and paths out of folder
            tar.extractall(folder, filter="data")
        else:  # pragma: no cover - our own repository's archive
            tar.extractall(folder)
    (folder / "minidl").rename(folder / name)
    return _import_from(folder, name)


def import_copy(folder: Path, name: str) -> ModuleType:
    """A second copy of the working tree's minidl, imported as ``name`` (the control)."""
    shutil.copytree(Path(md.__file__).parent, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    return _import_from(folder, name)


def _import_from(folder: Path, name: str) -> ModuleType:
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def step_of(pkg: Any, setup: Setup) -> Step:
    """The training step of ``setup``'s network built from the package ``pkg``."""
    case = setup.case
    if case.kind == "cnn":
        model = minidl_cnn_model(setup.kernels, setup.init[0], case.dtype, pkg)
    else:
        model = minidl_mlp_model(setup.init, case.dtype, pkg)
    loss = pkg.CrossEntropyLoss() if case.loss == "ce" else pkg.MSELoss()
    return minidl_train_step(model, loss, pkg.SGD(model.parameters(), lr=LR), setup.x, setup.y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("revision", help="the git revision to compare against (e.g. HEAD~1, a commit)")
    parser.add_argument("--only", default="", help="run only rows whose label contains this text")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "both"])
    parser.add_argument("--cnn", action="store_true", help="the CNN row instead of the MLP rows")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5, help="about this many seconds per run")
    parser.add_argument("--control", action="store_true",
                        help="also time the working tree against a copy of itself (the harness's own spread)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)")
    args = parser.parse_args(argv)
    dtypes = {"float32": [np.float32], "float64": [np.float64], "both": [np.float32, np.float64]}[args.dtype]
    cases = [c for c in (cnn_cases() if args.cnn else mlp_cases())
             if c.dtype in dtypes and args.only in c.label]
    with tempfile.TemporaryDirectory() as tmp, blas_limits(args.threads):
        others = {args.revision: import_revision(args.revision, Path(tmp), "minidl_revision")}
        if args.control:
            others["a copy of itself"] = import_copy(Path(tmp), "minidl_control")
        print(f"working tree ({md.__file__}) / other, {args.runs} runs of about {args.seconds} s each; "
              "median of per-round ratios (runs min-max); < 1: the working tree is faster\n")
        print("| network, batch, dtype | " + " | ".join(f"working tree / {name}" for name in others) + " |")
        print("|---|" + "---:|" * len(others), flush=True)
        for case in cases:
            setup = make_cnn_setup(case) if case.kind == "cnn" else mlp_setup(case)
            cells = []
            for pkg in others.values():
                steps = {"minidl": step_of(md, setup), "other": step_of(pkg, setup)}
                per_step = max(estimate_step(step) for step in steps.values())
                rounds = int(min(3000, max(6, args.seconds / (2 * per_step))))
                ratios = time_alternately(steps, args.runs, rounds, 0.3).run_ratios["minidl/other"]
                cells.append(f"{statistics.median(ratios):.4f} ({min(ratios):.4f}-{max(ratios):.4f})")
            print(f"| {case.label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
