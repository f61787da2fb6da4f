"""minidl.save / minidl.load: exact round trips, refusals on save, refusals on load, atomic writes."""

from __future__ import annotations

import errno
import io
import json
import os
import pathlib
import pickle
import re
import stat
import struct
import sys
import zipfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import serialization
from minidl.errors import CheckpointError, DTypeError, MinidlError


# ------------------------------------------------------------------------------ helpers
def assert_same_tree(got: Any, want: Any, where: str = "state") -> None:
    """Equal structure, exact types, arrays bit for bit with the same dtype, floats bit for bit."""
    assert type(got) is type(want), f"{where}: {type(got)} != {type(want)}"
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same_tree(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same_tree(a, b, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), where
        assert got.flags.writeable, where
    elif isinstance(want, np.generic):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), where
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), where
    else:
        assert got == want, where


def nan_with_payload(payload: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000000 | payload))[0]
    return value


def write_npz(path: pathlib.Path, members: dict[str, np.ndarray], *, allow_pickle: bool = False) -> None:
    """A raw .npz, written with plain NumPy (to forge bad checkpoints)."""
    with open(path, "wb") as handle:
        np.savez(handle, allow_pickle=allow_pickle, **members)


def meta_blob(meta: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def read_members(path: pathlib.Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def read_meta(path: pathlib.Path) -> dict[str, Any]:
    return json.loads(read_members(path)["minidl_meta"].tobytes())


def leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def rich_state() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    f64 = rng.standard_normal((3, 4))
    return {
        "model": {
            "0.W": f64,
            "2.W": rng.standard_normal((5, 2)).astype(np.float32),
            "bn.running_mean": np.zeros(4, dtype=np.float16),
        },
        "optimizer": {"type": "SGD", "hyper": {"lr": 0.1, "momentum": 0, "nesterov": False},
                      "state": {"0": {"momentum_buffer": f64 * 2, "step": 7}, "1": {}}},
        "epoch": 3,
        "huge_int": 2**200,
        "negative_int": -(2**70),
        "floats": [0.1, -0.0, float("inf"), float("-inf"), 5e-324, 1 / 3, nan_with_payload(0x1234)],
        "flags": (True, False, None),
        "text": "héllo / wörld . ☃",
        "np_scalars": [np.float32(2.5), np.int8(-3), np.bool_(True), np.complex128(1 - 2j),
                       np.float64(np.nan)],
        "dtypes": {
            "bool": np.array([True, False]),
            "int8": np.arange(-3, 3, dtype=np.int8),
            "uint16": np.array([0, 65535], dtype=np.uint16),
            "int64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
            "complex64": (rng.standard_normal(3) + 1j).astype(np.complex64),
            "big_endian": np.arange(4, dtype=">f8"),
            "unicode": np.array(["a", "ßç"]),
            "bytes": np.array([b"x", b"yz"]),
            "zero_d": np.array(1.5),
            "empty": np.zeros((0, 3)),
            "fortran": np.asfortranarray(f64),
            "strided": f64[::2, ::-1],
            "float_specials": np.array([np.nan, -np.inf, -0.0, np.finfo(np.float64).tiny / 2]),
        },
        "": {"a0": 1, "minidl_meta": "not the metadata", "allow_pickle": True, "a.b/c\\d": [{}, []]},
    }


# ------------------------------------------------------------------------------ round trips
def test_round_trip_is_exact(tmp_path: pathlib.Path, rich_state: dict[str, Any]) -> None:
    path = tmp_path / "ckpt.npz"
    md.save(rich_state, path)
    loaded = md.load(path)
    assert_same_tree(loaded, rich_state)
    assert leftovers(tmp_path) == []


def test_saved_file_is_a_plain_npz_with_versioned_metadata(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ckpt.npz"
    md.save({"w": np.ones(2), "epoch": 1}, path)
    assert zipfile.is_zipfile(path)
    meta = read_meta(path)
    assert meta["format"] == "minidl-checkpoint" and meta["version"] == 1
    assert meta["minidl_version"] == md.__version__
    assert meta["tree"]["items"][0][0] == "w"
    assert meta["tree"]["items"][1] == ["epoch", {"type": "int", "value": 1}]
    assert set(read_members(path)) == {"minidl_meta", "a0"}


@pytest.mark.parametrize("name", ["ckpt", "ckpt.bin", "ckpt.npz", "weird name.v2"])
def test_saves_to_exactly_the_given_path(tmp_path: pathlib.Path, name: str) -> None:
    md.save({"x": np.arange(3)}, str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no ".npz" appended
    np.testing.assert_array_equal(md.load(tmp_path / name)["x"], np.arange(3))


def test_compressed_round_trip(tmp_path: pathlib.Path, rich_state: dict[str, Any]) -> None:
    md.save(rich_state, tmp_path / "plain")
    md.save(rich_state | {"zeros": np.zeros(100_000)}, tmp_path / "small", compress=True)
    md.save(rich_state | {"zeros": np.zeros(100_000)}, tmp_path / "big")
    assert_same_tree(md.load(tmp_path / "small"), rich_state | {"zeros": np.zeros(100_000)})
    assert (tmp_path / "small").stat().st_size < (tmp_path / "big").stat().st_size / 10


def test_overwrites_an_existing_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ckpt"
    md.save({"epoch": 1}, path)
    md.save({"epoch": 2, "w": np.ones(3)}, path)
    assert md.load(path)["epoch"] == 2
    assert leftovers(tmp_path) == []


def test_new_file_mode_follows_the_umask(tmp_path: pathlib.Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        md.save({"epoch": 1}, tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_replacing_a_file_keeps_its_permissions(tmp_path: pathlib.Path, mode: int) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    target = tmp_path / "ckpt"
    md.save({"epoch": 1}, target)
    target.chmod(mode)
    md.save({"epoch": 2}, target)
    assert target.stat().st_mode & 0o777 == mode
    assert md.load(target)["epoch"] == 2


def test_permissions_are_copied_only_from_a_regular_file(tmp_path: pathlib.Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        special = tmp_path / "special"
        md.save({"epoch": 1}, special)
        special.chmod(0o1755)  # sticky: never copied
        md.save({"epoch": 2}, special)
        assert special.stat().st_mode & 0o7777 == 0o755
    finally:
        os.umask(old)


def test_a_symlink_is_followed_and_keeps_its_target_s_permissions(tmp_path: pathlib.Path) -> None:
    """The link stays a link and its target gets the checkpoint (it used to be replaced by a file,
    leaving the target with its old content)."""
    target = tmp_path / "runs" / "best.ckpt"
    target.parent.mkdir()
    md.save({"epoch": 1}, target)
    if os.name == "posix":
        target.chmod(0o600)
    link = tmp_path / "latest.ckpt"
    link.symlink_to(target)
    md.save({"epoch": 2}, link)
    assert link.is_symlink() and md.load(target) == {"epoch": 2} == md.load(link)
    if os.name == "posix":
        assert target.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == leftovers(target.parent) == []


def test_what_open_would_refuse_is_refused_before_writing_naming_the_path(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder (also through a link), a write-protected file, a folder one may not write in: each
    is refused up front with the given path, not after writing the archive or with the temporary's
    name."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "to_folder").symlink_to(folder)
    for path in (folder, tmp_path / "to_folder"):
        with pytest.raises(IsADirectoryError, match=rf"minidl.save: '{re.escape(str(path))}' is a folder"):
            md.save({"epoch": 1}, str(path))
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []
    kept = tmp_path / "kept.ckpt"
    md.save({"epoch": 1}, kept)
    for named_folder in (str(tmp_path / "newdir") + "/", str(kept) + os.sep, str(tmp_path / "newdir") + "/.",
                         str(kept) + "/.", str(tmp_path / "newdir" / "x" / "..")):
        with pytest.raises(IsADirectoryError, match="names a folder"):  # (realpath would drop "/", "/.", "x/..")
            md.save({"epoch": 1}, named_folder)
    for through_nothing in (tmp_path / "missing" / ".." / "x.ckpt", str(kept) + "/../other.ckpt"):
        with pytest.raises(FileNotFoundError, match="does not exist"):  # open() refuses both too
            md.save({"epoch": 1}, through_nothing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "kept.ckpt", "to_folder"]
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match="is a loop of symbolic links") as looped:
        md.save({"epoch": 1}, loop)
    assert looped.value.errno == errno.ELOOP and loop.is_symlink()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone" / "x.ckpt")
    with pytest.raises(FileNotFoundError, match=r"the folder of '.*dangling' \(a link to '.*gone/x\.ckpt'\) does "
                                                r"not exist"):
        md.save({"epoch": 1}, dangling)
    if hasattr(os, "mkfifo"):
        pipe = tmp_path / "pipe"
        os.mkfifo(pipe)
        (tmp_path / "to_pipe").symlink_to(pipe)
        with pytest.raises(OSError, match="is not a regular file"):
            md.save({"epoch": 1}, tmp_path / "to_pipe")
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert md.load(kept) == {"epoch": 1}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(kept) else real_access(p, mode))
    with pytest.raises(PermissionError, match=r"'.*kept\.ckpt' is write-protected"):  # (root may write anyway)
        md.save({"epoch": 2}, kept)
    monkeypatch.undo()
    assert md.load(kept) == {"epoch": 1}

    def no_writing_here(name: str, *args: Any) -> int:
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(os, "open", no_writing_here)
    with pytest.raises(PermissionError, match=r"minidl.save: cannot write '.*new\.ckpt': Permission denied \(in "
                                              r"its folder") as caught:
        md.save({"epoch": 1}, tmp_path / "new.ckpt")
    assert ".tmp" not in str(caught.value) and caught.value.errno == 13


def test_model_and_optimizer_round_trip(tmp_path: pathlib.Path) -> None:
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Tanh(), md.Dense(3, 2, rng=1)).astype(np.float32)
    opt = md.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad[...] = 1
    opt.step()
    md.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, tmp_path / "c")
    loaded = md.load(tmp_path / "c")
    assert_same_tree(loaded["model"], model.state_dict())
    assert_same_tree(loaded["optimizer"], opt.state_dict())
    assert loaded["epoch"] == 3


# Random trees: keys of any text, leaves of every supported kind.
_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.builds(lambda shape, seed: np.random.default_rng(seed).standard_normal(shape),
              st.lists(st.integers(0, 3), max_size=3).map(tuple), st.integers(0, 9)),
    st.builds(np.float32, st.floats(width=32)),
)
_trees = st.recursive(_leaves, lambda children: st.one_of(
    st.lists(children, max_size=3), st.lists(children, max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=6), children, max_size=3)), max_leaves=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=6), _trees, max_size=4))
def test_random_trees_round_trip(tmp_path: pathlib.Path, state: dict[str, Any]) -> None:
    path = tmp_path / "random.ckpt"
    md.save(state, path)
    assert_same_tree(md.load(path), state)


# ------------------------------------------------------------------------------ refusals on save
@pytest.mark.parametrize(
    ("state", "error", "needle"),
    [
        ({"model": {"w": np.array([1, "a"], dtype=object)}}, DTypeError, "state['model']['w']"),
        ({"x": np.zeros(2, dtype=[("a", "f8")])}, DTypeError, "state['x']"),
        ({"model": {"w": object()}}, TypeError, "state['model']['w'] of type builtins.object"),
        ({"a": [1, {"b": {1, 2}}]}, TypeError, "state['a'][1]['b']"),
        ({"a": {3: np.ones(1)}}, TypeError, "keys must be str, got int 3 in state['a']"),
        ({"lr": np.ma.masked_array([1.0])}, TypeError, "masked"),
        ({"n": pathlib.Path("x")}, TypeError, "state['n']"),
    ],
)
def test_save_refuses_unsupported_values(tmp_path: pathlib.Path, state: dict[str, Any], error: type,
                                         needle: str) -> None:
    path = tmp_path / "ckpt"
    md.save({"old": 1}, path)
    before = path.read_bytes()
    with pytest.raises(error) as info:
        md.save(state, path)
    assert needle in str(info.value)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_save_refuses_cycles_and_non_dicts(tmp_path: pathlib.Path) -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(ValueError, match="cycle"):
        md.save(loop, tmp_path / "c")
    with pytest.raises(TypeError, match="state must be a dict"):
        md.save([1, 2], tmp_path / "c")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be"):
        md.save({}, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be"):
        md.save({}, b"bytes-path")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_shared_values_are_stored_twice_not_refused(tmp_path: pathlib.Path) -> None:
    shared = np.arange(3.0)
    inner = {"w": shared}
    md.save({"a": inner, "b": inner, "c": shared}, tmp_path / "c")
    loaded = md.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded["b"]["w"], shared)
    assert loaded["a"]["w"] is not loaded["c"]


# ------------------------------------------------------------------------------ atomic saving
def failing_savez(handle: Any, **members: Any) -> None:
    handle.write(b"PK\x03\x04 half a zip")
    raise OSError("No space left on device (simulated)")


@pytest.mark.parametrize("failure", ["savez", "fsync", "replace", "interrupt"])
def test_failed_save_leaves_the_old_file_intact(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                failure: str) -> None:
    path = tmp_path / "ckpt.npz"
    md.save({"epoch": 1, "w": np.arange(5.0)}, path)
    before = path.read_bytes()

    if failure == "savez":
        monkeypatch.setattr(np, "savez", failing_savez)
    elif failure == "fsync":
        def no_fsync(fd: int) -> None:
            raise OSError("I/O error (simulated)")
        monkeypatch.setattr(os, "fsync", no_fsync)
    elif failure == "replace":
        def no_replace(src: Any, dst: Any) -> None:
            raise PermissionError("rename refused (simulated)")
        monkeypatch.setattr(os, "replace", no_replace)
    else:
        def interrupted(handle: Any, **members: Any) -> None:
            handle.write(b"partial")
            raise KeyboardInterrupt
        monkeypatch.setattr(np, "savez", interrupted)

    with pytest.raises((OSError, KeyboardInterrupt)):
        md.save({"epoch": 2, "w": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert md.load(path)["epoch"] == 1


def test_failed_first_save_leaves_nothing(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="simulated"):
        md.save({"epoch": 2}, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_folder_raises_oserror(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"the folder of .*nope.*ckpt' does not exist"):
        md.save({"epoch": 1}, tmp_path / "nope" / "ckpt")
    assert list(tmp_path.iterdir()) == []


def _save_through_link_and_dotdot(tmp_path: pathlib.Path, target_root: pathlib.Path) -> None:
    """``link/../x`` where ``link`` points into ``target_root``: the system resolves the link first, so
    the file lands in the link target's parent, and the temporary must be made there."""
    (target_root / "deep").mkdir()
    (tmp_path / "link").symlink_to(target_root / "deep")
    md.save({"epoch": 3}, str(tmp_path / "link" / ".." / "x.ckpt"))
    assert md.load(target_root / "x.ckpt") == {"epoch": 3}
    assert not (tmp_path / "x.ckpt").exists()
    assert leftovers(tmp_path) == leftovers(target_root) == []


def test_save_through_a_symlink_and_dotdot_lands_where_the_system_resolves_it(tmp_path: pathlib.Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    _save_through_link_and_dotdot(tmp_path, tmp_path / "elsewhere")


def test_save_through_a_symlink_to_another_file_system_and_dotdot(tmp_path: pathlib.Path) -> None:
    """The temporary in the text-resolved folder would be on another device: os.replace fails (EXDEV)."""
    shm = pathlib.Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a writable /dev/shm on another file system than the temporary folder")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as other:
        _save_through_link_and_dotdot(tmp_path, pathlib.Path(other))


def nested(levels: int, kind: str) -> dict[str, Any]:
    """A state ``levels`` containers deep, itself counted: {'root': <kind>(<kind>(... {'x': array})))}."""
    value: Any = {"x": np.arange(3.0)}
    for _ in range(levels - 2):
        value = {"k": value} if kind == "dict" else [value] if kind == "list" else (value,)
    return {"root": value}


def stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def frames_deep(n: int, call: Any) -> Any:
    """``call()`` from ``n`` frames deeper than here (a callback, a test runner, ...)."""
    return call() if n <= 0 else frames_deep(n - 1, call)


def forbid_recursion_limit_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's recursion limit is the interpreter's, every thread's: save and load leave it alone."""
    def refuse(limit: int) -> None:
        raise AssertionError(f"sys.setrecursionlimit({limit}) called")

    monkeypatch.setattr(sys, "setrecursionlimit", refuse)


def test_the_deepest_state_minidl_makes_is_well_within_the_limit(tmp_path):
    """A checkpoint of everything a run resumes from, with the deepest schedule state: a SequentialLR whose
    MultiStepLR keeps its milestones in a list (5 levels)."""
    model = md.Sequential(md.Dense(4, 3, rng=0), md.Dropout(0.2, rng=1))
    opt = md.Adam(model.parameters(), lr=0.1)
    schedule = md.SequentialLR(opt, [md.MultiStepLR(opt, milestones=[2, 4]), md.ExponentialLR(opt, 0.9)], [6])
    early = md.EarlyStopping("loss", restore_best_weights=True)
    state = {"model": model.state_dict(generators=True), "optimizer": opt.state_dict(),
             "scheduler": schedule.state_dict(), "early_stopping": early.state_dict(),
             "shuffler": np.random.default_rng(7).bit_generator.state, "epoch": 3}

    def levels(value: Any) -> int:
        inner = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else None
        return 0 if inner is None else 1 + max(map(levels, inner), default=0)

    assert levels(state) == 5 and levels(state["scheduler"]["schedulers"][0]["milestones"]) == 1
    md.save(state, tmp_path / "run.ckpt")
    assert_same_tree(md.load(tmp_path / "run.ckpt"), state)


@pytest.mark.parametrize("kind", ["dict", "list", "tuple"])
def test_a_state_at_the_nesting_limit_saves_and_loads_from_deep_in_the_stack_leaving_the_limit_alone(
        tmp_path, kind, monkeypatch):
    """save and load raised Python's recursion limit (the interpreter's, every thread's) while they ran, for
    room to handle 100 levels wherever they were called.  32 levels fit in the stack any caller has."""
    forbid_recursion_limit_changes(monkeypatch)
    assert serialization.MAX_NESTING == 32 and "MAX_NESTING" in serialization.__all__
    assert sys.getrecursionlimit() == 1000
    state, path = nested(32, kind), tmp_path / "deep.ckpt"
    frames_deep(600, lambda: md.save(state, path))
    assert_same_tree(frames_deep(600, lambda: md.load(path)), state)
    assert_same_tree(frames_deep(600, lambda: md.load(io.BytesIO(path.read_bytes()))), state)


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_caller_with_almost_no_stack_left_gets_a_recursion_error_not_a_refusal(tmp_path, kind):
    """Its stack ran out, not the file went wrong: load said 'the archive is corrupted or truncated
    (RecursionError ...)' and save that the state was nested too deeply.  Loaded or saved with more and more
    stack left, each call either works or raises RecursionError, and a failed save writes nothing."""
    state, path = nested(32, kind), tmp_path / "deep.ckpt"
    md.save(state, path)
    data = path.read_bytes()
    outcomes = set()
    for left in range(5, 200, 5):
        for call in (lambda: md.load(path), lambda: md.save(state, tmp_path / "again.ckpt")):
            try:
                frames_deep(sys.getrecursionlimit() - stack_depth() - left, call)
                outcomes.add("done")
            except RecursionError:
                outcomes.add("RecursionError")
            assert sorted(p.name for p in tmp_path.iterdir()) in (["deep.ckpt"], ["again.ckpt", "deep.ckpt"])
    assert outcomes == {"done", "RecursionError"}
    assert path.read_bytes() == data


@pytest.mark.parametrize(("kind", "path"), [("dict", "state['root']" + "['k']" * 31),
                                            ("list", "state['root']" + "[0]" * 31),
                                            ("tuple", "state['root']" + "[0]" * 31)])
def test_a_state_one_level_deeper_than_the_limit_is_refused_by_save_naming_where(tmp_path, kind, path):
    """The 33rd level is the innermost dict, named by its key path."""
    with pytest.raises(ValueError) as info:
        md.save(nested(33, kind), tmp_path / "deep.ckpt")
    assert str(info.value) == (
        f"minidl.save: state is nested too deeply: {path} is a dict 33 levels deep (the state itself counted), "
        "more than the 32 a checkpoint holds; flatten it (e.g. join keys into one, as state_dict does)")
    assert list(tmp_path.iterdir()) == []
    md.save(nested(32, kind), tmp_path / "deep.ckpt")  # one level less is kept


def test_a_long_key_path_too_deep_is_named_with_its_middle_left_out(tmp_path):
    state: dict[str, Any] = {}
    node = state
    for _ in range(32):
        node["a_rather_long_key"] = {}
        node = node["a_rather_long_key"]
    path = "state" + "['a_rather_long_key']" * 32
    with pytest.raises(ValueError, match=re.escape(f"too deeply: {path[:95]} ... {path[-95:]} is a dict 33 levels")):
        md.save(state, tmp_path / "deep.ckpt")


def test_a_short_key_path_too_deep_is_named_in_full(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "MAX_NESTING", 2)
    with pytest.raises(ValueError, match=r"too deeply: state\['a'\]\['b'\] is a dict 3 levels deep .* than the 2 "):
        md.save({"a": {"b": {}}, "c": [1]}, tmp_path / "deep.ckpt")


# ------------------------------------------------------------------------------ refusals on load
def good_checkpoint(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "good.npz"
    md.save({"model": {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3, np.float32)}, "epoch": 4}, path)
    return path


def assert_refused(path: pathlib.Path, *needles: str) -> CheckpointError:
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(CheckpointError) as info:
        md.load(path)
    message = str(info.value)
    assert repr(str(path)) in message, message  # names the file
    for needle in needles:
        assert needle in message, message
    assert isinstance(info.value, MinidlError) and isinstance(info.value, ValueError)
    if before is not None:
        assert path.read_bytes() == before  # loading changes nothing
    return info.value


class Boom:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_refuses_a_pickle_without_running_it(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"w": Boom(str(marker))}))
    assert_refused(path, "pickle")
    assert not marker.exists()


def test_refuses_an_object_array_without_unpickling(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "obj.npz"
    meta: dict[str, Any] = {"format": "minidl-checkpoint", "version": 1, "arrays": 1,
            "tree": {"type": "dict", "items": [["w", {"type": "array", "name": "a0", "dtype": "<f8",
                                                        "shape": [1]}]]}}
    payload = np.array([Boom(str(marker))], dtype=object)
    write_npz(path, {"minidl_meta": meta_blob(meta), "a0": payload}, allow_pickle=True)
    assert_refused(path, "a0")
    assert not marker.exists()
    # ... and when the metadata admits the object dtype
    meta["tree"]["items"][0][1]["dtype"] = "|O"
    write_npz(path, {"minidl_meta": meta_blob(meta), "a0": payload}, allow_pickle=True)
    assert_refused(path, "may not hold")
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_refuses_a_truncated_archive(tmp_path: pathlib.Path, cut: float) -> None:
    data = good_checkpoint(tmp_path).read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: int(len(data) * cut)])
    assert_refused(path)


@pytest.mark.parametrize("compress", [False, True])
def test_refuses_corrupted_array_bytes(tmp_path: pathlib.Path, compress: bool) -> None:
    path = tmp_path / "c.npz"
    values = np.random.default_rng(0).standard_normal(2000)
    md.save({"w": values}, path, compress=compress)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a0.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupted")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"epoch: 3\nweights: 1 2 3\n", "not a NumPy .npz archive"),
        (b"\x93NUMPY\x01\x00" + b"x" * 20, ".npy"),
        (b"PK\x03\x04" + b"\x00" * 40, "corrupted"),
    ],
)
def test_refuses_files_that_are_not_npz(tmp_path: pathlib.Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    assert_refused(path, needle)


def test_refuses_a_real_npy_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3))
    assert_refused(path, ".npy")


def test_refuses_a_plain_npz_without_metadata(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.npz"
    write_npz(path, {"w": np.ones(3)})
    assert_refused(path, "not a minidl checkpoint")


def forged(tmp_path: pathlib.Path, meta: Any, arrays: dict[str, np.ndarray] | None = None,
           raw_meta: np.ndarray | None = None) -> pathlib.Path:
    path = tmp_path / "forged.npz"
    members = {"minidl_meta": meta_blob(meta) if raw_meta is None else raw_meta, **(arrays or {})}
    write_npz(path, members)
    return path


def array_node(name: str = "a0", dtype: str = "<f8", shape: list[int] | None = None) -> dict[str, Any]:
    return {"type": "array", "name": name, "dtype": dtype, "shape": [3] if shape is None else shape}


def meta_with(*items: tuple[str, dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    meta = {"format": "minidl-checkpoint", "version": 1,
            "tree": {"type": "dict", "items": [list(item) for item in items]}}
    meta.update(overrides)
    return meta


@pytest.mark.parametrize(
    ("meta", "arrays", "needle"),
    [
        (meta_with(version=2), {}, "format version 2 is not supported"),
        (meta_with(version=0), {}, "format version 0"),
        (meta_with(version=None), {}, "no valid format version"),
        (meta_with(version="1"), {}, "no valid format version"),
        (meta_with(version=True), {}, "no valid format version"),
        (meta_with(format="other"), {}, "format 'other'"),
        ([1, 2], {}, "format"),
        (meta_with(tree=[]), {}, "tree"),
        (meta_with(("w", array_node())), {}, "missing: ['a0']"),
        (meta_with(), {"a0": np.ones(3)}, "not described by the metadata: ['a0']"),
        (meta_with(("w", array_node())), {"a0": np.ones(3), "a1": np.ones(2)}, "['a1']"),
        (meta_with(("w", array_node(dtype="<f4"))), {"a0": np.ones(3)}, "records float32"),
        (meta_with(("w", array_node(dtype="<i8"))), {"a0": np.ones(3)}, "int64"),
        (meta_with(("w", array_node(shape=[1, 3]))), {"a0": np.ones(3)}, "(1, 3)"),
        (meta_with(("w", array_node(shape=[10**12]))), {"a0": np.ones(3)}, "occupies"),
        (meta_with(("w", array_node(shape=[2**40, 2**40]))), {"a0": np.ones(3)}, "occupies"),
        (meta_with(("w", array_node(shape=[-3]))), {"a0": np.ones(3)}, "bad shape"),
        (meta_with(("w", array_node(dtype="no-such-dtype"))), {"a0": np.ones(3)}, "bad dtype"),
        (meta_with(("w", array_node()), ("v", array_node())), {"a0": np.ones(3)}, "repeated"),
        (meta_with(("w", {"type": "pickle", "value": "cos\nsystem"})), {}, "unknown node type"),
        (meta_with(("w", {"type": "int", "value": 1.5})), {}, "int without"),
        (meta_with(("w", {"type": "float", "bits": "0x1"})), {}, "float bits"),
        (meta_with(("w", {"type": "bool", "value": 1})), {}, "bool without"),
        (meta_with(("w", {"type": "str"})), {}, "str without"),
        (meta_with(("w", {"type": "list"})), {}, "list without items"),
        (meta_with(("w", {"type": "int", "value": 1}), ("w", {"type": "int", "value": 2})), {},
         "bad dict item"),
        (meta_with(["w"]), {}, "bad dict item"),  # type: ignore[arg-type]
        (meta_with(("w", "int")), {}, "malformed metadata"),  # type: ignore[arg-type]
        (meta_with(arrays=5), {}, "metadata says 5 arrays"),
    ],
)
def test_refuses_bad_metadata(tmp_path: pathlib.Path, meta: Any, arrays: dict[str, np.ndarray],
                              needle: str) -> None:
    assert_refused(forged(tmp_path, meta, arrays), needle)


def test_refuses_undecodable_metadata(tmp_path: pathlib.Path) -> None:
    assert_refused(forged(tmp_path, None, raw_meta=np.frombuffer(b"{not json", np.uint8)), "JSON")
    assert_refused(forged(tmp_path, None, raw_meta=np.frombuffer(b"\xff\xfe", np.uint8)), "JSON")
    assert_refused(forged(tmp_path, None, raw_meta=np.ones(3)), "uint8")
    deep = "[" * 100_000 + "]" * 100_000
    assert_refused(forged(tmp_path, None, raw_meta=np.frombuffer(deep.encode(), np.uint8)))


def test_refuses_oversized_metadata(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = good_checkpoint(tmp_path)
    monkeypatch.setattr(serialization, "_MAX_META_BYTES", 100)
    assert_refused(path, "the metadata entry occupies")


def test_well_formed_forgery_loads(tmp_path: pathlib.Path) -> None:
    """The forging helpers themselves are right: a correct hand-made file loads."""
    path = forged(tmp_path, meta_with(("w", array_node())), {"a0": np.arange(3.0)})
    np.testing.assert_array_equal(md.load(path)["w"], np.arange(3.0))


def test_missing_file_and_folder_raise_oserror(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        md.load(tmp_path / "nope.npz")
    with pytest.raises(OSError):
        md.load(tmp_path)


def test_failed_load_leaves_the_model_unchanged(tmp_path: pathlib.Path) -> None:
    model = md.Sequential(md.Dense(3, 2, rng=0))
    before = model.state_dict()
    path = tmp_path / "ckpt"
    md.save({"model": md.Sequential(md.Dense(3, 2, rng=1)).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(CheckpointError):
        model.load_state_dict(md.load(path)["model"])
    assert_same_tree(model.state_dict(), before)


def test_format_constants_are_public() -> None:
    assert serialization.FORMAT_NAME == "minidl-checkpoint" and serialization.FORMAT_VERSION == 1


# ------------------------------------------------------------------ hostile archives (fourth audit)
def _rewrite(src: pathlib.Path, dst: pathlib.Path, extra: dict[str, bytes]) -> None:
    """Copy every member of the archive ``src`` into ``dst`` and add the ``extra`` members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        for name, data in extra.items():
            zout.writestr(name, data)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["a0", "minidl_meta", "notes.txt"])
def test_a_member_np_load_would_read_in_place_of_the_npy_one_is_refused(tmp_path, member):
    """np.load reads a member named 'a0' for archive['a0'] if there is one, in place of 'a0.npy' whose
    size was checked: a small file could then inflate into an array of any size before the shape check."""
    legit, hostile = tmp_path / "legit.ckpt", tmp_path / "hostile.ckpt"
    md.save({"w": np.zeros(2)}, legit)
    _rewrite(legit, hostile, {member: _npy_bytes(np.zeros(1000))})
    with pytest.raises(CheckpointError, match=rf"members that are not one \.npy array per name: \['{member}'\]"):
        md.load(hostile)


def test_a_member_stored_twice_is_refused(tmp_path):
    legit, hostile = tmp_path / "legit.ckpt", tmp_path / "hostile.ckpt"
    md.save({"w": np.zeros(2)}, legit)
    with pytest.warns(UserWarning, match="Duplicate name"):
        _rewrite(legit, hostile, {"a0.npy": _npy_bytes(np.ones(2))})
    with pytest.raises(CheckpointError, match=r"not one \.npy array per name: \['a0\.npy'\]"):
        md.load(hostile)


def test_a_text_file_starting_with_pk_is_not_a_zip(tmp_path):
    """It used to reach np.load, whose message suggested loading it with allow_pickle."""
    path = tmp_path / "PKG-INFO"
    path.write_text("PKG-INFO\nName: x\n")
    with pytest.raises(CheckpointError, match=r"not a NumPy \.npz archive \(it starts with b'PKG-'\)") as error:
        md.load(path)
    assert "pickle" not in str(error.value)


def test_save_to_a_name_of_255_characters(tmp_path):
    """The temporary file's name adds a prefix and suffix to the base name: it must still fit."""
    path = tmp_path / ("y" * 255)
    md.save({"a": 1}, path)
    assert md.load(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y" * 255]


def test_save_to_an_empty_path_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    (tmp_path / "inner").mkdir()
    monkeypatch.chdir(tmp_path / "inner")
    with pytest.raises(FileNotFoundError, match="the path is empty"):
        md.save({"a": 1}, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner"]  # no temporary in the parent


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_state_nested_too_deeply_is_a_value_error(tmp_path, kind):
    """Refused at level 33, not by running out of stack (which 5000 levels would also do)."""
    state: Any = 0
    for _ in range(5000):
        state = {"x": state} if kind == "dict" else [state]
    with pytest.raises(ValueError, match=f"nested too deeply: .* is a {kind} 33 levels deep"):
        md.save({"deep": state}, tmp_path / "deep.ckpt")
    assert list(tmp_path.iterdir()) == []


def forged_nested(tmp_path: pathlib.Path, wrappers: int, kind: str, leaf: dict[str, Any], **arrays: np.ndarray
                  ) -> pathlib.Path:
    """A file holding {'root': ``leaf`` in ``wrappers`` dicts {'k': ...} or lists [...]}, as save would write it."""
    tree = leaf
    for _ in range(wrappers):
        tree = {"type": "dict", "items": [["k", tree]]} if kind == "dict" else {"type": "list", "items": [tree]}
    return forged(tmp_path, {"format": "minidl-checkpoint", "version": 1,
                             "tree": {"type": "dict", "items": [["root", tree]]}}, arrays)


@pytest.mark.parametrize(("kind", "leaf", "where"), [
    ("list", {"type": "int", "value": 1}, "state['root']" + "[0]" * 31),  # the state, then 32 lists
    ("dict", {"type": "dict", "items": []}, "state['root']" + "['k']" * 31),  # the state, 31 dicts, an empty one
])
def test_a_file_nested_more_than_the_limit_is_refused_by_load_naming_where(tmp_path, kind, leaf, where):
    """A tree save would refuse (33 levels), forged: refused by load at the same level, naming it; 32 load."""
    wrappers = 32 if kind == "list" else 31
    error = assert_refused(forged_nested(tmp_path, wrappers, kind, leaf),
                           f"metadata is nested too deeply: {where} is a {kind} 33 levels deep (the state itself "
                           "counted), more than the 32 a checkpoint holds (save refuses such a state)")
    assert "not valid JSON" not in str(error)
    got = md.load(forged_nested(tmp_path, wrappers - 1, kind, leaf))["root"]
    for _ in range(wrappers - 1):
        got = got[0] if kind == "list" else got["k"]
    assert got == (1 if kind == "list" else {})


def test_a_file_whose_json_nests_deeper_than_any_checkpoint_is_refused_before_it_is_parsed(tmp_path):
    """33 levels of dicts, the innermost holding an array: 102 levels of JSON (3 per dict, then the array's node
    and shape), more than the 99 of 32 levels, which load."""
    leaf = {"type": "dict", "items": [["x", {"type": "array", "name": "a0", "dtype": "<f8", "shape": [3]}]]}
    path = forged_nested(tmp_path, 31, "dict", leaf, a0=np.arange(3.0))
    error = assert_refused(path, "metadata is nested too deeply: its JSON nests 102 levels deep, more than the 99 of "
                           "the 32 levels of dicts, lists and tuples a checkpoint holds (save refuses a deeper state)")
    assert "not valid JSON" not in str(error)
    assert_same_tree(md.load(forged_nested(tmp_path, 30, "dict", leaf, a0=np.arange(3.0))), nested(32, "dict"))


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_metadata_nested_thousands_deep_is_refused_as_too_deep_not_as_bad_json(tmp_path, opening, monkeypatch):
    """json.loads ran out of stack and load said 'metadata is not valid JSON (maximum recursion depth ...)'; then
    it raised the recursion limit and let json.loads run into it.  Now it is refused unparsed, from any depth."""
    forbid_recursion_limit_changes(monkeypatch)
    closing = "]" if opening == "[" else "}"
    text = '{"format": "minidl-checkpoint", "version": 1, "tree": ' + opening * 100000 + "1" + closing * 100000 + "}"
    path = forged(tmp_path, None, raw_meta=np.frombuffer(text.encode(), dtype=np.uint8))
    with pytest.raises(CheckpointError) as info:
        frames_deep(sys.getrecursionlimit() - stack_depth() - 60, lambda: md.load(path))  # (nothing recurses)
    assert str(info.value) == (f"minidl.load({str(path)!r}): metadata is nested too deeply: its JSON nests 100001 "
                               "levels deep, more than the 99 of the 32 levels of dicts, lists and tuples a checkpoint "
                               "holds (save refuses a deeper state)")


def test_brackets_and_quotes_in_strings_do_not_count_as_nesting(tmp_path):
    """The depth of the metadata is counted outside its strings: keys and values full of brackets, escaped
    quotes and backslashes load; an unterminated string is bad JSON, not deep."""
    state = {'[{"' * 200: "[[[\\" * 200, "k": {'\\"' * 50 + "[" * 200: ["{" * 300, '"]' * 300]}}
    md.save(state, tmp_path / "odd.ckpt")
    assert_same_tree(md.load(tmp_path / "odd.ckpt"), state)
    text = '{"format": "minidl-checkpoint", "version": 1, "tree": "' + "[" * 500
    path = forged(tmp_path, None, raw_meta=np.frombuffer(text.encode(), dtype=np.uint8))
    assert_refused(path, "metadata is not valid JSON (Unterminated string")


def test_an_array_name_that_aliases_another_member_is_refused(tmp_path):
    """Metadata naming arrays 'a0' and 'a0.npy' (members a0.npy and a0.npy.npy): np.load maps the
    key 'a0.npy' to the member a0.npy, so 'y' was read from x's member, past the size check of its own.
    Array names must be those save writes: 'a' and digits."""
    legit, hostile = tmp_path / "legit.ckpt", tmp_path / "hostile.ckpt"
    md.save({"x": np.arange(3.0), "y": np.full(3, 7.0)}, legit)
    with zipfile.ZipFile(legit) as zin, zipfile.ZipFile(hostile, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "minidl_meta.npy":
                meta_array = np.lib.format.read_array(__import__("io").BytesIO(data))
                meta = json.loads(meta_array.tobytes().decode("ascii"))
                meta["tree"]["items"][1][1]["name"] = "a0.npy"
                blob = np.frombuffer(json.dumps(meta).encode("ascii"), dtype=np.uint8)
                zout.writestr("minidl_meta.npy", _npy_bytes(blob))
            elif info.filename == "a1.npy":
                zout.writestr("a0.npy.npy", data)
            else:
                zout.writestr(info, data)
    with pytest.raises(CheckpointError, match=r"bad or repeated array name 'a0\.npy'"):
        md.load(hostile)


def test_an_int_too_long_for_the_metadata_is_refused_by_name(tmp_path):
    """save({'n': 10**5000}) raised json's bare 'Exceeds the limit (4300 digits)' ValueError."""
    with pytest.raises(ValueError, match=r"minidl.save: state\['opt'\]\['n'\] is an int of 16610 bits"):
        md.save({"opt": {"n": 10**5000}}, tmp_path / "big.ckpt")
    assert list(tmp_path.iterdir()) == []
    md.save({"n": 2**13999}, tmp_path / "ok.ckpt")  # the largest kept: loads back exactly
    assert md.load(tmp_path / "ok.ckpt") == {"n": 2**13999}
