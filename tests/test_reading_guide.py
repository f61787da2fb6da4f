"""docs/reading-the-code.md names code by dotted path and files by path: every one must exist.

The guide sends a reader to ``minidl.layers.dense.Dense.backward_params`` and the like; a rename or a
misspelling would send them nowhere, so each backticked name starting with ``minidl.`` is resolved here
(the longest importable module prefix, then attributes), and each ``examples/...py`` or
``benchmarks/...py`` it names must be a file.
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "reading-the-code.md"
#: a backticked span that starts with a dotted name under minidl (what follows it, e.g. "(x)", is ignored)
DOTTED = re.compile(r"`(minidl(?:\.[A-Za-z_][A-Za-z0-9_]*)+)[^`]*`")
PATH = re.compile(r"\b((?:examples|benchmarks)/[A-Za-z0-9_./-]+?\.py)\b")


def dotted_names(text: str) -> list[str]:
    return sorted(set(DOTTED.findall(text)))


def resolve(name: str) -> object:
    """The object ``name`` names: the longest prefix that imports as a module, then ``getattr`` for the rest;
    ``LookupError`` naming ``name`` and the part that is missing."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: object = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not module_name.startswith(error.name):
                raise  # (a module that exists but fails to import something else)
            continue
        for k in range(split, len(parts)):
            if not hasattr(obj, parts[k]):
                raise LookupError(f"{name}: {'.'.join(parts[:k])} has no attribute {parts[k]!r}")
            obj = getattr(obj, parts[k])
        return obj
    raise LookupError(f"{name}: no module prefix of it imports")


def test_the_guide_names_code_by_dotted_path() -> None:
    names = dotted_names(GUIDE.read_text())
    assert len(names) >= 50  # (the guide's stops: a handful of names each)
    unresolved = []
    for name in names:
        try:
            resolve(name)
        except LookupError as error:
            unresolved.append(str(error))
    assert not unresolved, "docs/reading-the-code.md names code that does not exist:\n" + "\n".join(unresolved)


def test_the_guide_names_only_files_that_exist() -> None:
    paths = sorted(set(PATH.findall(GUIDE.read_text())))
    assert "examples/regression.py" in paths
    missing = [path for path in paths if not (ROOT / path).is_file()]
    assert not missing, f"docs/reading-the-code.md names files that do not exist: {missing}"


def test_resolve_refuses_a_misspelt_name() -> None:
    assert resolve("minidl.layers.dense.Dense.backward_params") is not None
    assert dotted_names("`minidl.layers.dense.Dense.forward(x)` and `np.add`") == ["minidl.layers.dense.Dense.forward"]
    for wrong, missing in [("minidl.layers.dense.Dense.backwards_params", "'backwards_params'"),
                           ("minidl.layers.dens.Dense", "'dens'"), ("minidl.Densse", "'Densse'")]:
        with pytest.raises(LookupError, match=missing):
            resolve(wrong)


def test_the_guide_is_linked_and_has_no_code_to_run() -> None:
    """Linked from docs/index.md and README.md; its code blocks are formulas, not python (tests/test_docs.py
    runs the python blocks of the docs it lists, and this one is not among them)."""
    assert "(reading-the-code.md)" in (ROOT / "docs" / "index.md").read_text()
    assert "(docs/reading-the-code.md)" in (ROOT / "README.md").read_text()
    assert "```python" not in GUIDE.read_text()


#: a backticked private name on its own (``_cost_independent``, ``_grad_is_stale``), named without its module
PRIVATE = re.compile(r"`(_[A-Za-z][A-Za-z0-9_]*)`")


def test_the_guide_names_only_private_names_the_code_has() -> None:
    """The guide also names private helpers bare, within a stop whose module it gave (``_never_written`` in
    the checker's stop): each must still be defined or assigned somewhere in minidl's source."""
    names = sorted(set(PRIVATE.findall(GUIDE.read_text())))
    assert "_cost_independent" in names and len(names) >= 10
    source = "\n".join(path.read_text() for path in (ROOT / "minidl").rglob("*.py"))
    missing = [name for name in names
               if not re.search(rf"(?:\bdef |\bclass |\.|\b){re.escape(name)}\b\s*[(:=,)\]]", source)]
    assert not missing, f"docs/reading-the-code.md names private code that does not exist: {missing}"
