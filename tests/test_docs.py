"""The docs' code runs, and what it prints is what the docs show.

Each runnable file's ``python`` blocks run in order in one namespace, as a reader pasting them would.  The
line before a block may mark it:

* ``<!-- fragment -->``: a fragment of a larger program (an excerpt of a backward, placeholders such as
  ``model``, a torch module ``t``); it must stop with a ``NameError`` and is not compared;
* ``<!-- raises -->``: it shows an error; the line that raises carries the error as its comment (below).

What a block prints is compared with what the doc shows, by three rules:

1. **Inline values.** A ``print(...)`` statement whose line ends with a comment shows its value there,
   unless the comment starts with a lowercase letter (then it is prose: ``# one row per checked tensor``).
   The value is the comment up to the first ``:``, ``;`` or `` (`` and a lowercase letter outside brackets
   and quotes, which starts an explanation (``# 7 10: as one fit of 30 epochs`` shows ``7 10``;
   ``# {'epoch': 3}`` all of it).  All the statement printed (every call, in a loop too) must equal the
   value, runs of whitespace (newlines too) counting as one space, and ``...`` in the value standing for any
   characters (``# {'loss': 0.11..., 'accuracy': 0.971...}``).
2. **Errors.** In a ``<!-- raises -->`` block, the comment of the line that raises, with the comment-only
   lines under it, must be ``ErrorType: message``, compared with the error as in rule 1 (the whole comment:
   nothing is cut).
3. **Output blocks.** A block followed directly by a plain ```` ``` ```` block prints that block's text,
   line for line (trailing spaces ignored), except that timings (``evaluations, 0.024 s)``) may differ and
   a line ``(... <words>)`` stands for one or more printed lines.  Such a block must run alone (with only
   ``np`` and ``md`` given), as the worked examples of the gradient checker do.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import pathlib
import re
import sys
import tokenize
import traceback
from collections import defaultdict
from typing import Any, NamedTuple

import numpy as np
import pytest

import minidl as md

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNNABLE = ["README.md", "docs/custom-layers.md", "docs/gradient-checker.md", "docs/checkpoints.md",
            "docs/training.md", "docs/losses.md", "docs/porting.md", "docs/layers.md", "docs/optimizers.md"]
FRAGMENT = "<!-- fragment -->"
RAISES = "<!-- raises -->"
OPTIONAL = {"sklearn", "matplotlib", "tqdm", "torch"}  # the examples' extras: a block needing one is skipped
TIMING = re.compile(r"evaluations, [0-9.]+ s\)")
ELLIPSIS_LINE = re.compile(r"\s*\(\.\.\. [^()]*\)")


class Block(NamedTuple):
    line: int  # of the opening fence
    code: str
    marker: str  # FRAGMENT, RAISES or ""
    shown: str | None  # the plain block right after it, if any


def code_blocks(path: pathlib.Path) -> list[Block]:
    """Every python block of a markdown file, with its marker and the output block it is followed by."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            previous = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
            end = lines.index("```", i + 1)
            after = next((j for j in range(end + 1, len(lines)) if lines[j].strip()), None)
            shown = None
            if after is not None and lines[after].strip() == "```":
                shown = "\n".join(lines[after + 1:lines.index("```", after + 1)])
            marker = previous if previous in (FRAGMENT, RAISES) else ""
            blocks.append(Block(i + 1, "\n".join(lines[i + 1:end]), marker, shown))
            i = end
        i += 1
    return blocks


def shown_value(comment: str) -> str | None:
    """The value a ``print(...)  # comment`` line shows (rule 1 of the module's docstring), or None for prose."""
    text = comment.strip()
    if not text or text[0].islower():
        return None
    depth, quote = 0, ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (char in ":;" or re.match(r" \([a-z]", text[i:])):
            return text[:i].rstrip()
    return text


def agrees(printed: str, shown: str) -> bool:
    """``printed`` is ``shown``, runs of whitespace counting as one space and ``...`` standing for anything."""
    pattern = ".*?".join(re.escape(" ".join(part.split())) for part in " ".join(shown.split()).split("..."))
    return re.fullmatch(pattern, " ".join(printed.split()), flags=re.S) is not None


def comment_of(line: str) -> str | None:
    """The comment ending a line of code (a ``#`` outside strings), without the ``#``."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return token.string[1:].strip()
    except (tokenize.TokenError, SyntaxError):  # (a line of a longer statement: its comment comes first)
        pass
    return None


class Prints:
    """Stands for ``print`` in the docs' namespace: prints as usual and records what each line of a block
    printed."""

    def __init__(self) -> None:
        self.filename = ""
        self.by_line: dict[int, list[str]] = defaultdict(list)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        text = io.StringIO()
        builtins.print(*args, **{**kwargs, "file": text})
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename != self.filename:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None:
            self.by_line[frame.f_lineno].append(text.getvalue())
        builtins.print(*args, **kwargs)


def shown_prints(code: str) -> list[tuple[int, str]]:
    """``(line in the block, value)`` for each ``print(...)`` statement with a value comment (rule 1)."""
    lines = code.splitlines()
    found = []
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "print"):
            comment = comment_of(lines[node.end_lineno - 1])  # type: ignore[operator]
            value = shown_value(comment) if comment else None
            if value is not None:
                found.append((node.lineno, value))
    return found


def shown_error(code: str, lineno: int) -> str:
    """The comment of line ``lineno`` of a block and the comment-only lines under it, joined (rule 2)."""
    lines = code.splitlines()
    parts = [comment_of(lines[lineno - 1]) or ""]
    for line in lines[lineno:]:
        if not line.strip().startswith("#"):
            break
        parts.append(line.strip()[1:].strip())
    return " ".join(parts)


def run_block(name: str, block: Block, namespace: dict[str, object], prints: Prints) -> None:
    """Run one block in ``namespace`` and compare what it prints and raises with the doc (rules 1 and 2)."""
    where = f"{name}, the block at line {block.line}"
    prints.filename, prints.by_line = where, defaultdict(list)
    compiled = compile(block.code, where, "exec")
    if block.marker == FRAGMENT:  # marked so because it cannot run: it needs a name nothing before defines
        with pytest.raises(NameError):  # (what runs before that name, e.g. an import, stays, as for a reader)
            exec(compiled, namespace)
        return
    if block.marker == RAISES:
        with pytest.raises(Exception) as raised:
            exec(compiled, namespace)
        lineno = [frame.lineno for frame in traceback.extract_tb(raised.tb) if frame.filename == where][-1]
        error = f"{raised.type.__name__}: {raised.value}"
        shown = shown_error(block.code, lineno)
        assert agrees(error, shown), f"{where}, line {lineno} raises\n  {error}\nthe doc shows\n  {shown}"
        return
    try:
        exec(compiled, namespace)
    except ModuleNotFoundError as error:
        if error.name not in OPTIONAL:
            raise
        pytest.skip(f"{where} needs {error.name} (pip install -e '.[examples]')")
    for lineno, value in shown_prints(block.code):
        printed = "".join(prints.by_line.get(lineno, []))
        assert agrees(printed, value), (f"{where}, line {lineno}: the doc shows {value!r}, the code printed "
                                        f"{printed.rstrip()!r}")


@pytest.mark.parametrize("name", RUNNABLE)
def test_the_docs_code_runs_and_prints_what_they_show(name: str, tmp_path: pathlib.Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # (the checkpoint examples write files)
    prints = Prints()
    namespace: dict[str, object] = {"__name__": "__docs__", "print": prints}
    blocks = code_blocks(ROOT / name)
    for block in blocks:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_block(name, block, namespace, prints)
    assert any(not block.marker for block in blocks)


def without_timings(report: str) -> str:
    return "\n".join(TIMING.sub("evaluations, ... s)", line.rstrip()) for line in report.strip().splitlines())


def output_agrees(printed: str, shown: str) -> bool:
    """Rule 3 of the module's docstring."""
    pattern = "\n".join(r"[^\n]*(?:\n[^\n]*)*?" if ELLIPSIS_LINE.fullmatch(line)
                        else re.escape(line).replace(re.escape("evaluations, ... s)"), r"evaluations, [0-9.]+ s\)")
                        for line in without_timings(shown).splitlines())
    return re.fullmatch(pattern, without_timings(printed)) is not None


def output_blocks() -> list[tuple[str, Block]]:
    return [(name, block) for name in RUNNABLE for block in code_blocks(ROOT / name) if block.shown is not None]


def test_the_output_blocks_are_found() -> None:
    """The worked examples with an output block (that the next test compares): MeanBias, F32MSE, summarize."""
    found = {(name, re.search(r"class (\w+)|md\.(summarize)", block.code).group(0))  # type: ignore[union-attr]
             for name, block in output_blocks()}
    assert found == {("docs/gradient-checker.md", "class MeanBias"), ("docs/gradient-checker.md", "class F32MSE"),
                     ("docs/layers.md", "md.summarize")}


@pytest.mark.parametrize(("name", "block"), output_blocks(), ids=lambda item: getattr(item, "line", item))
def test_an_example_prints_its_output_block(name: str, block: Block) -> None:
    """The examples are seeded: each prints the output block under it, line for line (rule 3; only the timings
    may differ), e.g. the gradient checker's report with its count of cost evaluations."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, f"{name}, the block at line {block.line}", "exec"), {"md": md, "np": np})
    assert block.shown is not None
    assert output_agrees(out.getvalue(), block.shown), (
        f"{name}, the block at line {block.line} prints\n{out.getvalue()}\nthe doc shows\n{block.shown}")


def test_output_agrees_takes_an_ellipsis_line_for_lines_and_ignores_only_the_timing() -> None:
    printed = "head\n  a: 1\n  b: 2\n  c: 3\n  (400 cost evaluations, 0.044 s)\n"
    assert output_agrees(printed, "head\n  a: 1\n  (... the same for b and c)\n  (400 cost evaluations, 0.024 s)")
    assert not output_agrees(printed, "head\n  a: 1\n  (... the same for b and c)\n  (401 cost evaluations, 0.044 s)")
    assert not output_agrees(printed, "head\n  a: 1\n  (400 cost evaluations, 0.044 s)")  # no line left out
    assert not output_agrees(printed, "head\n  a: 2\n  (... the rest)\n  (400 cost evaluations, 0.044 s)")


def test_the_rule_for_inline_values() -> None:
    assert shown_value("7 10: as one fit of 30 epochs, which stops after epoch 10") == "7 10"
    assert shown_value("True; the model holds the best epoch's weights") == "True"
    assert shown_value("{'epoch': 3}") == "{'epoch': 3}"
    assert shown_value("(8, 100): (out_channels, L')") == "(8, 100)"
    assert shown_value("(None, 4, 16), (None, 4, 8) (the shapes)") == "(None, 4, 16), (None, 4, 8)"
    assert shown_value("(2, 3) (4,)") == "(2, 3) (4,)"
    assert shown_value("one row per checked tensor") is None
    assert agrees("{'loss': 0.1134, 'accuracy': 0.9711}", "{'loss': 0.11..., 'accuracy': 0.971...}")
    assert not agrees("{'loss': 0.1234, 'accuracy': 0.9711}", "{'loss': 0.11..., 'accuracy': 0.971...}")
    assert agrees("[[1 2]\n [3 4]]\n", "[[1 2] [3 4]]") and not agrees("6\n", "7")


def test_the_pytest_example_runs() -> None:
    """docs/gradient-checker.md's "In tests" example: its test, called for each of its parametrized cases,
    passes (and the cases are what its comment says: shapes x dtypes x seeds)."""
    block = next(block for block in code_blocks(ROOT / "docs/gradient-checker.md") if "def test_dense" in block.code)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(compile(block.code, "gradient-checker.md, In tests", "exec"), namespace)
    test = namespace["test_dense"]
    (mark,) = [mark for mark in test.pytestmark if mark.name == "parametrize"]
    cases = list(mark.args[1])
    assert [str(case) for case in cases][:4] == ["3x4-float64-seed0", "3x4-float64-seed1", "3x4-float32-seed0",
                                                "3x4-float32-seed1"]
    assert len(cases) == 8 and len({str(case) for case in cases}) == 8 and mark.kwargs["ids"] is str
    for case in cases:
        test(case)


def test_the_gated_example_draws_different_weights_for_its_two_dense_layers() -> None:
    """docs/custom-layers.md's Gated model passes one generator to both Dense layers: the same int seed given
    to each would start value and gate with the same weights (a GLU whose two halves are one)."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in code_blocks(ROOT / "docs/custom-layers.md"):
        if block.marker:  # (it cannot run alone: see test_the_docs_code_runs_and_prints_what_they_show)
            continue
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(block.code, f"custom-layers.md, the block at line {block.line}", "exec"), namespace)
        if "Gated" in namespace:
            break
    gated = namespace["Gated"](2, 2, 3, rng=0)  # type: ignore[operator]
    assert gated.value.W.shape == gated.gate.W.shape == (3, 3)
    assert not np.allclose(gated.value.W.data, gated.gate.W.data)
    again = namespace["Gated"](2, 2, 3, rng=0)  # type: ignore[operator]
    np.testing.assert_array_equal(again.gate.W.data, gated.gate.W.data)  # still reproducible from the seed
