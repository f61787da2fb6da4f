"""The first demonstration, examples/regression.py, reproduced exactly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def regression():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("regression_example", ROOT / "examples" / "regression.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_backpass_is_X_transpose_residual(regression) -> None:  # type: ignore[no-untyped-def]
    demo = regression.run()
    X1 = np.hstack([np.ones((len(demo.X), 1)), demo.X])
    expected = X1.T @ (X1 @ regression.INIT - demo.Y)
    assert demo.analytic.shape == (6, 1)
    np.testing.assert_allclose(demo.analytic, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(demo.by_formula, expected, rtol=1e-13, atol=1e-13)
    assert demo.cost == pytest.approx(0.5 * np.sum((X1 @ regression.INIT - demo.Y) ** 2), rel=1e-14)


def test_secant_slopes_agree_to_round_off(regression) -> None:  # type: ignore[no-untyped-def]
    demo = regression.run()
    rel = np.abs(demo.numerical - demo.analytic) / np.maximum(np.abs(demo.analytic), 1e-12)
    assert rel.max() < 1e-9


def test_one_sgd_step_is_init_minus_lr_grad(regression) -> None:  # type: ignore[no-untyped-def]
    lr = 0.01
    demo = regression.run(lr=lr)
    np.testing.assert_allclose(demo.updated, regression.INIT - lr * demo.analytic, rtol=0, atol=1e-15)
    assert not np.allclose(demo.updated, regression.INIT)


def test_framework_checker_passes_on_the_regression(regression) -> None:  # type: ignore[no-untyped-def]
    report = regression.run().report
    assert report.passed, str(report)
    assert {r.name for r in report.results} >= {"W", "input"}
    assert all(r.max_abs_error < 1e-8 for r in report.results)  # central differences: round-off only


def test_script_runs_and_prints_the_table() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "regression.py")],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert "secant slope" in out and "w5" in out
    assert "back-pass vs X1^T (Y_hat - Y), X1 = [1, X]: max |difference|" in out
