"""The docs' code runs, and the checker output they print is today's.

Each runnable file's ``python`` blocks run in order in one namespace, as a reader pasting them would;
a block that is a fragment of a larger program (an excerpt of a backward, placeholders such as
``model``) is preceded by ``<!-- fragment -->`` and skipped.  docs/layers.md and docs/optimizers.md are
excerpts throughout and are not run.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import numpy as np
import pytest

import minidl as md

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNNABLE = ["README.md", "docs/custom-layers.md", "docs/gradient-checker.md", "docs/checkpoints.md",
            "docs/training.md"]
FRAGMENT = "<!-- fragment -->"
OPTIONAL = {"sklearn", "matplotlib", "tqdm", "torch"}  # the examples' extras: a block needing one is skipped


def code_blocks(path: pathlib.Path) -> list[tuple[int, str, bool]]:
    """``(line of the opening fence, code, is a fragment)`` for every python block of a markdown file."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
            end = lines.index("```", i + 1)
            blocks.append((i + 1, "\n".join(lines[i + 1:end]), previous == FRAGMENT))
            i = end
        i += 1
    return blocks


@pytest.mark.parametrize("name", RUNNABLE)
def test_the_docs_code_runs(name: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # (the checkpoint examples write files)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for line, code, fragment in code_blocks(ROOT / name):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if fragment:  # marked so because it cannot run: it needs a name nothing before defines
                with pytest.raises(NameError):  # (what runs before that name, e.g. an import, stays, as for a reader)
                    exec(compile(code, f"{name}, the block at line {line}", "exec"), namespace)
                continue
            try:
                exec(compile(code, f"{name}, the block at line {line}", "exec"), namespace)
            except ModuleNotFoundError as error:
                if error.name not in OPTIONAL:
                    raise
                pytest.skip(f"{name}, the block at line {line}, needs {error.name} (pip install -e '.[examples]')")
        ran += 1
    assert ran >= 1


def test_the_worked_example_prints_what_the_doc_shows() -> None:
    """docs/gradient-checker.md's worked example is seeded: its printed report must be the current
    checker's, line for line (only the timings may differ)."""
    text = (ROOT / "docs" / "gradient-checker.md").read_text()
    start = text.index("class MeanBias(md.Dense):")
    code = text[start:text.index("```", start)]
    shown = text[text.index("```\n", text.index("```", start) + 3) + 4:]
    shown = shown[:shown.index("```")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {"md": md, "np": np})

    def without_timings(report: str) -> list[str]:
        return [re.sub(r"evaluations, [0-9.]+ s\)", "evaluations, ... s)", line.rstrip())
                for line in report.strip().splitlines()]

    assert without_timings(out.getvalue()) == without_timings(shown)


def test_the_gated_example_draws_different_weights_for_its_two_dense_layers() -> None:
    """docs/custom-layers.md's Gated model passes one generator to both Dense layers: the same int seed given
    to each would start value and gate with the same weights (a GLU whose two halves are one)."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code, fragment in code_blocks(ROOT / "docs/custom-layers.md"):
        if fragment:  # (it cannot run alone: see test_the_docs_code_runs)
            continue
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(code, f"custom-layers.md, the block at line {line}", "exec"), namespace)
        if "Gated" in namespace:
            break
    gated = namespace["Gated"](2, 2, 3, rng=0)  # type: ignore[operator]
    assert gated.value.W.shape == gated.gate.W.shape == (3, 3)
    assert not np.allclose(gated.value.W.data, gated.gate.W.data)
    again = namespace["Gated"](2, 2, 3, rng=0)  # type: ignore[operator]
    np.testing.assert_array_equal(again.gate.W.data, gated.gate.W.data)  # still reproducible from the seed
