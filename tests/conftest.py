"""Fixtures shared by the test files."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable

import pytest

import minidl as md


@pytest.fixture(scope="session")
def run_mypy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """``run_mypy(source)``: mypy's output on ``source`` (a user's file) against the minidl being tested (not an
    installed one), with ``reveal_type`` notes and errors, one line each; skips when mypy is not installed.

    Its cache (a cold run checks numpy's stubs, 2-7 s; a warm one 0.2-0.5 s) is the tested tree's own
    ``.mypy_cache`` (ignored by git, where ``mypy minidl`` keeps its own), so that it goes with the tree; a
    package without a checkout around it gets one for the session."""
    pytest.importorskip("mypy")
    root = pathlib.Path(md.__file__).resolve().parent.parent
    cache = root / ".mypy_cache" / "tests" if (root / "pyproject.toml").is_file() else \
        tmp_path_factory.mktemp("mypy-cache")

    def run(source: str) -> str:
        with tempfile.TemporaryDirectory() as folder:
            user = pathlib.Path(folder) / "user.py"
            user.write_text(source)
            result = subprocess.run(
                [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
                 f"--cache-dir={cache}", str(user)],
                capture_output=True, text=True, env={"MYPYPATH": str(root), "PATH": ""}, cwd=folder, check=False)
        return result.stdout + result.stderr

    return run
