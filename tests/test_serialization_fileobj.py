"""minidl.save / minidl.load with binary file objects (io.BytesIO, open files, streams) and load's max_bytes.

The load-side tests of test_serialization.py and test_checkpoint_review21.py are run again below (the
``test_*`` names imported from them) with ``md.load`` replaced by :func:`load_every_way`, which loads
each path also through an ``io.BytesIO`` (at a position after some other bytes) and through a stream
that cannot seek, and asserts the same tree or the same refusal, in the same words, every way.
"""

from __future__ import annotations

import errno
import importlib
import io
import os
import pathlib
import typing
import zipfile
from collections.abc import Callable
from typing import IO, Any, BinaryIO

import numpy as np
import pytest

import minidl as md
from minidl import serialization
from minidl.errors import CheckpointError

base = importlib.import_module("test_serialization")  # (tests/ is on sys.path, as pytest puts it there)
review21 = importlib.import_module("test_checkpoint_review21")
assert_same_tree = base.assert_same_tree
rich_state = base.rich_state  # (a fixture the imported tests use)
REAL_LOAD = md.load
PREFIX = b"other data first\n"


# ------------------------------------------------------------------------------ helpers
class OneWay(io.RawIOBase):
    """A stream that cannot seek (a pipe, a socket): reads (or takes) at most ``step`` bytes a call."""

    def __init__(self, data: bytes = b"", step: int = 1 << 30) -> None:
        self.data, self.pos, self.step, self.written = data, 0, step, bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def write(self, data: Any) -> int:
        n = min(len(data), self.step)
        self.written += bytes(memoryview(data)[:n])
        return n


def message_for(error: BaseException, path: Any, label: str) -> str:
    """The path's refusal in a file object's words: the same but for how the input is named."""
    text = str(error).replace(f"minidl.load({str(path)!r})", f"minidl.load({label})")
    return text.replace("(the file is empty)", "(nothing to read from the object's position)")


def load_every_way(path: Any, **options: Any) -> Any:
    """``md.load(path)``, after checking that a BytesIO and a one-way stream of the file's bytes give
    the same tree or the same refusal, and that a refused BytesIO is left where it was."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return REAL_LOAD(path, **options)
    data = pathlib.Path(path).read_bytes()
    want: Any = None
    refusal: CheckpointError | None = None
    try:
        want = REAL_LOAD(path, **options)
    except CheckpointError as error:
        refusal = error
    buffer = io.BytesIO(PREFIX + data)
    buffer.seek(len(PREFIX))
    for stream, label in ((buffer, "<BytesIO>"), (OneWay(data, step=1000), "<OneWay>")):
        try:
            got = REAL_LOAD(stream, **options)
        except CheckpointError as error:
            assert refusal is not None, f"{label} refused what the path loads: {error}"
            assert str(error) == message_for(refusal, path, label)
            if stream is buffer:
                assert buffer.tell() == len(PREFIX) and buffer.getvalue() == PREFIX + data
        else:
            assert refusal is None, f"{label} loaded what the path refuses: {refusal}"
            assert_same_tree(got, want)
            if stream is buffer:
                assert buffer.tell() == len(PREFIX) + len(data)
    if refusal is not None:
        raise refusal
    return want


@pytest.fixture(autouse=True)
def _every_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(md, "load", load_every_way)


# The load-side tests that exist, run again with load_every_way: every hostile file a path refuses is
# refused, in the same words, through a BytesIO and through a stream (not: pipes, devices, folders,
# missing files, which are about paths).
for _module, _names in ((base, [
        "test_round_trip_is_exact", "test_compressed_round_trip", "test_model_and_optimizer_round_trip",
        "test_refuses_a_pickle_without_running_it", "test_refuses_an_object_array_without_unpickling",
        "test_refuses_a_truncated_archive", "test_refuses_corrupted_array_bytes",
        "test_refuses_files_that_are_not_npz", "test_refuses_a_real_npy_file",
        "test_refuses_a_plain_npz_without_metadata", "test_refuses_bad_metadata",
        "test_refuses_undecodable_metadata", "test_refuses_oversized_metadata", "test_well_formed_forgery_loads",
        "test_failed_load_leaves_the_model_unchanged",
        "test_a_member_np_load_would_read_in_place_of_the_npy_one_is_refused", "test_a_member_stored_twice_is_refused",
        "test_a_text_file_starting_with_pk_is_not_a_zip", "test_an_array_name_that_aliases_another_member_is_refused",
        ]), (review21, [
        "test_an_oversized_npy_header_is_named_as_such_not_as_pickled_data",
        "test_an_object_array_is_still_refused_as_pickled_data", "test_an_array_node_without_dtype_or_shape_is_refused",
        "test_an_npscalar_node_needs_its_dtype_and_takes_no_shape"])):
    for _name in _names:
        globals()[f"{_name}__through_file_objects"] = getattr(_module, _name)


@pytest.fixture
def state() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    return {"model": {"0.W": rng.standard_normal((4, 3)).astype(np.float32), "0.b": np.zeros(3, np.float32)},
            "epoch": 7, "lr": 0.1, "zeros": np.zeros(5000)}


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("compress", [False, True])
def test_file_objects_get_exactly_the_bytes_of_a_path(tmp_path: pathlib.Path, state: dict[str, Any],
                                                     compress: bool) -> None:
    md.save(state, tmp_path / "by_path", compress=compress)
    want = (tmp_path / "by_path").read_bytes()
    plain = io.BytesIO()
    md.save(state, plain, compress=compress)
    assert plain.getvalue() == want and plain.tell() == len(want)
    after = io.BytesIO()
    after.write(PREFIX)  # at a position after other data: zip's offsets still count from the checkpoint
    md.save(state, after, compress=compress)
    assert after.getvalue() == PREFIX + want and after.tell() == len(PREFIX) + len(want)
    with open(tmp_path / "by_object", "wb") as handle:
        handle.write(PREFIX)
        md.save(state, handle, compress=compress)
        assert handle.tell() == len(PREFIX) + len(want)
    assert (tmp_path / "by_object").read_bytes() == PREFIX + want
    unbuffered = open(tmp_path / "raw", "wb", buffering=0)  # noqa: SIM115 - a raw FileIO
    with unbuffered:
        md.save(state, unbuffered, compress=compress)
    assert (tmp_path / "raw").read_bytes() == want
    one_way = OneWay(step=333)  # cannot seek, takes 333 bytes a call: built in memory, written in full
    md.save(state, one_way, compress=compress)
    assert bytes(one_way.written) == want

    for source in (io.BytesIO(want), OneWay(want, step=100)):
        assert_same_tree(REAL_LOAD(source), state)
    after.seek(len(PREFIX))
    assert_same_tree(REAL_LOAD(after), state)
    assert after.tell() == len(PREFIX) + len(want)  # left at the end of what it read
    with open(tmp_path / "by_object", "rb") as handle:
        assert handle.read(len(PREFIX)) == PREFIX
        assert_same_tree(REAL_LOAD(handle), state)
    with open(tmp_path / "raw", "rb", buffering=0) as raw:
        assert_same_tree(REAL_LOAD(raw), state)


def test_a_gzip_file_object_holds_the_same_bytes_gzipped(tmp_path: pathlib.Path, state: dict[str, Any]) -> None:
    """GzipFile says it can seek, but writing only forward: the archive is built in memory for it (zip's
    seek back failed halfway, 'Negative seek in write mode'). Reading, it can seek anywhere (from its end
    too), but each seek back decompresses again from its start: load reads it into memory once."""
    import gzip

    md.save(state, tmp_path / "by_path")
    with gzip.open(tmp_path / "ckpt.gz", "wb") as packed:
        md.save(state, packed)
    assert gzip.decompress((tmp_path / "ckpt.gz").read_bytes()) == (tmp_path / "by_path").read_bytes()

    class FromStartOnly(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            if whence == 2:
                raise io.UnsupportedOperation("seek from end not supported")
            return super().seek(offset, whence)

    with gzip.open(tmp_path / "ckpt.gz", "rb") as packed:
        assert_same_tree(REAL_LOAD(packed, max_bytes=100_000), state)
    assert_same_tree(REAL_LOAD(FromStartOnly((tmp_path / "by_path").read_bytes())), state)


def test_one_stream_holds_one_checkpoint_from_its_position_to_its_end(tmp_path: pathlib.Path) -> None:
    """Two checkpoints one after another: zip's directory is at the end, so a load from the first one's
    position would find the second's archive; it is refused rather than returning the wrong one."""
    stream = io.BytesIO()
    md.save({"epoch": 1}, stream)
    middle = stream.tell()
    md.save({"epoch": 2}, stream)
    stream.seek(0)
    with pytest.raises(CheckpointError, match=rf"minidl\.load\(<BytesIO>\): the zip directory at the end of the "
                                              rf"input describes an archive starting at byte {middle}, not at the "
                                              r"start \(two archives one after another\?"):
        REAL_LOAD(stream)
    assert stream.tell() == 0
    stream.seek(middle)
    assert REAL_LOAD(stream) == {"epoch": 2}
    (tmp_path / "two").write_bytes(stream.getvalue())  # the same file on disk: the old load returned epoch 2
    with pytest.raises(CheckpointError, match=rf"'.*two'\): the zip directory .* starting at byte {middle}"):
        REAL_LOAD(tmp_path / "two")


# ------------------------------------------------------------------------------ refused file objects
def text_objects(tmp_path: pathlib.Path, mode: str) -> list[Any]:
    import tempfile

    (tmp_path / "t.txt").write_text("")
    return [io.StringIO(), open(tmp_path / "t.txt", mode),
            tempfile.SpooledTemporaryFile(mode="w+")]  # (not a TextIOBase: refused as it takes no bytes)


def test_text_mode_objects_are_refused_naming_the_mode(tmp_path: pathlib.Path, state: dict[str, Any]) -> None:
    for target in text_objects(tmp_path, "w"):
        with target:
            with pytest.raises(TypeError, match=r"minidl\.save: <\w+.*> (is a text-mode file object|does not "
                                                r"take bytes).*open the file with mode 'wb' or use io\.BytesIO"):
                md.save(state, target)
            assert target.tell() == 0  # nothing written
    assert (tmp_path / "t.txt").read_bytes() == b""
    (tmp_path / "ckpt").write_bytes(b"")
    md.save(state, tmp_path / "ckpt")
    for source in [*text_objects(tmp_path, "r"), open(tmp_path / "ckpt", encoding="latin-1")]:  # noqa: SIM115
        with source, pytest.raises(TypeError, match=r"minidl\.load: <\w+.*> (is a text-mode file object|does not "
                                                      r"give bytes).*open the file with mode 'rb' or use io\.BytesIO"):
            md.load(source)


def test_objects_of_the_wrong_direction_or_closed_are_refused(tmp_path: pathlib.Path, state: dict[str, Any]) -> None:
    md.save(state, tmp_path / "ckpt")
    before = (tmp_path / "ckpt").read_bytes()
    with open(tmp_path / "ckpt", "rb") as reader, pytest.raises(
            io.UnsupportedOperation, match=r"minidl\.save: <BufferedReader '.*ckpt'> cannot write .*mode 'wb'"):
        md.save(state, reader)
    with open(tmp_path / "other", "wb") as writer, pytest.raises(
            io.UnsupportedOperation, match=r"minidl\.load: <BufferedWriter '.*other'> cannot read .*mode 'rb'"):
        md.load(writer)
    closed = io.BytesIO(before)
    closed.close()
    for call in (lambda: md.save(state, closed), lambda: md.load(closed)):
        with pytest.raises(ValueError, match=r"<BytesIO> is closed"):
            call()
    assert (tmp_path / "ckpt").read_bytes() == before and (tmp_path / "other").read_bytes() == b""
    for call in (lambda: md.save(state, 3), lambda: md.load(3.5)):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"path must be a str, os\.PathLike or a binary file object, got "):
            call()


def test_a_refused_state_writes_nothing_to_the_object(state: dict[str, Any]) -> None:
    stream = io.BytesIO(b"kept")
    stream.seek(4)
    with pytest.raises(TypeError, match=r"state\['bad'\]"):
        md.save({**state, "bad": object()}, stream)
    with pytest.raises(TypeError, match="compress must be True or False"):
        md.save(state, stream, compress="yes")  # type: ignore[arg-type]
    assert stream.getvalue() == b"kept" and stream.tell() == 4


# ------------------------------------------------------------------------------ max_bytes
def test_max_bytes_refuses_a_longer_input_before_reading_it(tmp_path: pathlib.Path, state: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt"
    md.save(state, path)
    size = path.stat().st_size
    assert_same_tree(REAL_LOAD(path, max_bytes=size), state)  # stored: it decompresses to less than its size
    assert_same_tree(REAL_LOAD(io.BytesIO(path.read_bytes()), max_bytes=np.int64(size)), state)
    opened: list[str] = []
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda *a, **k: opened.append("zip"))
    with pytest.raises(CheckpointError, match=rf"minidl\.load\('.*ckpt'\): the input holds {size} bytes, more than "
                                              rf"max_bytes={size - 1}; nothing was read"):
        REAL_LOAD(path, max_bytes=size - 1)
    stream = io.BytesIO(PREFIX + path.read_bytes())
    stream.seek(len(PREFIX))
    with pytest.raises(CheckpointError, match=rf"minidl\.load\(<BytesIO>\): the input holds {size} bytes, more "
                                              rf"than max_bytes=1000;"):
        REAL_LOAD(stream, max_bytes=1000)
    assert stream.tell() == len(PREFIX) and opened == []
    one_way = OneWay(path.read_bytes(), step=64)  # its length is unknown: read until one byte past the limit
    with pytest.raises(CheckpointError, match=r"minidl\.load\(<OneWay>\): the input holds more than max_bytes=1000 "
                                              r"bytes \(stopped after reading 1001\)"):
        REAL_LOAD(one_way, max_bytes=1000)
    assert one_way.pos == 1001 and opened == []


def test_max_bytes_refuses_what_would_decompress_beyond_it(tmp_path: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip bomb: a few kB of deflated zeros declaring 8 MB; refused from its directory alone."""
    path = tmp_path / "bomb"
    md.save({"w": np.zeros(1_000_000)}, path, compress=True)
    size = path.stat().st_size
    assert size < 20_000
    members: list[str] = []
    real_open = zipfile.ZipFile.open

    def counted_open(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        members.append(str(name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counted_open)
    for source in (path, io.BytesIO(path.read_bytes())):
        with pytest.raises(CheckpointError, match=r"its members would decompress to 8000\d{3} bytes \(the largest, "
                                                  r"'a0\.npy', to 8000\d{3}\), more than max_bytes=1000000; nothing "
                                                  r"was decompressed"):
            REAL_LOAD(source, max_bytes=1_000_000)
    assert members == []
    assert REAL_LOAD(path, max_bytes=9_000_000)["w"].shape == (1_000_000,)
    assert REAL_LOAD(path)["w"].shape == (1_000_000,)  # the default: no limit


@pytest.mark.parametrize(("bad", "error", "match"), [
    (True, TypeError, "got bool True"), (1.5, TypeError, "got float 1.5"), ("10", TypeError, "got str '10'"),
    (np.float64(8), TypeError, "got float64"), (-1, ValueError, "got -1"),
])
def test_max_bytes_must_be_none_or_a_non_negative_int(tmp_path: pathlib.Path, bad: Any, error: type,
                                                      match: str) -> None:
    with pytest.raises(error, match=r"minidl\.load: max_bytes must be None or an int >= 0, " + match):
        REAL_LOAD(tmp_path / "missing", max_bytes=bad)  # checked before the file is opened


# ------------------------------------------------------------------------------ forged sizes and headers
def forge_zip(path: pathlib.Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED,
              file_sizes: dict[str, int] | None = None) -> None:
    """A zip of ``members``, whose central directory then claims ``file_sizes`` (32-bit fields)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    data: bytearray = bytearray(path.read_bytes())
    for name, claimed in (file_sizes or {}).items():
        at = data.index(b"PK\x01\x02")  # the first central record, then on to the one of that name
        while data[at + 46:at + 46 + len(name)] != name.encode():
            at = data.index(b"PK\x01\x02", at + 4)
        data[at + 24:at + 28] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def checkpoint_members(state: dict[str, Any]) -> dict[str, bytes]:
    buffer = io.BytesIO()
    md.save(state, buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy_declaring(shape: tuple[int, ...], data: bytes) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return header.getvalue() + data


@pytest.mark.parametrize(("member", "shape"), [("a0.npy", (10**9,)), ("minidl_meta.npy", (2**40,))])
def test_a_npy_header_declaring_more_than_its_member_is_refused_before_allocating(
        tmp_path: pathlib.Path, member: str, shape: tuple[int, ...]) -> None:
    """np.load allocates the array its header declares before reading the data (the old load asked for
    8 GB, or 8 TB, here, for a member of a few bytes)."""
    members = checkpoint_members({"w": np.arange(3.0)})
    members[member] = npy_declaring(shape, bytes(24))
    forge_zip(tmp_path / "h", members)
    with pytest.raises(CheckpointError, match=rf"array '{member[:-4]}' declares dtype float64 and shape "
                                              rf"\({shape[0]},\) \({shape[0] * 8} bytes\) in its \.npy header, more "
                                              r"than its member's \d+ bytes"):
        md.load(tmp_path / "h")


def test_a_npy_header_is_checked_against_the_metadata_before_the_data(tmp_path: pathlib.Path) -> None:
    members = checkpoint_members({"w": np.arange(3.0)})
    members["a0.npy"] = npy_declaring((1,), bytes(24))
    forge_zip(tmp_path / "h", members)
    with pytest.raises(CheckpointError, match=r"array 'a0' \(state\['w'\]\) has dtype float64 and shape \(1,\), "
                                              r"the metadata records float64 and \(3,\)"):
        md.load(tmp_path / "h")


def test_sizes_the_input_cannot_hold_are_refused_from_the_directory(tmp_path: pathlib.Path) -> None:
    members = checkpoint_members({"w": np.zeros(100)})
    forge_zip(tmp_path / "stored", members, file_sizes={"a0.npy": 4_000_000_000})
    with pytest.raises(CheckpointError, match=r"member 'a0\.npy' is stored uncompressed in \d+ bytes but declares "
                                              r"4000000000"):
        md.load(tmp_path / "stored")
    forge_zip(tmp_path / "deflated", members, compression=zipfile.ZIP_DEFLATED, file_sizes={"a0.npy": 4_000_000_000})
    with pytest.raises(CheckpointError, match=r"member 'a0\.npy' declares 4000000000 bytes deflated into \d+, more "
                                              r"than deflate can expand \(1032 times\): a forged size"):
        md.load(tmp_path / "deflated")
    forge_zip(tmp_path / "bzip2", members, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(CheckpointError, match=r"member '.*\.npy' is compressed with zip method 12; save writes "
                                              r"members stored or deflated only"):
        md.load(tmp_path / "bzip2")
    forge_zip(tmp_path / "ok", members, compression=zipfile.ZIP_DEFLATED)  # the forging itself is right
    np.testing.assert_array_equal(md.load(tmp_path / "ok")["w"], np.zeros(100))


def test_deflate_s_real_ratio_stays_under_the_bound(tmp_path: pathlib.Path) -> None:
    """The most compressible data (zeros) at the highest level: its ratio is under 1032, so no checkpoint
    save writes is refused as a forged size."""
    md.save({"w": np.zeros(3_000_000, np.uint8)}, tmp_path / "z", compress=True)
    with zipfile.ZipFile(tmp_path / "z") as archive:
        info = archive.getinfo("a0.npy")
    assert 900 < info.file_size / info.compress_size < serialization._MAX_DEFLATE_RATIO
    assert md.load(tmp_path / "z")["w"].shape == (3_000_000,)


# ------------------------------------------------------------------------------ types
def test_the_annotations_take_binary_file_objects() -> None:
    """mypy reads these: BinaryIO (a subclass of IO[bytes]), io.BytesIO, open(..., 'rb') and a stream of
    one's own with read/write all fit (``_typed_use`` below, for mypy: text files do not)."""
    for function, protocol in ((serialization.save, serialization.SupportsWriteBytes),
                               (serialization.load, serialization.SupportsReadBytes)):
        kinds = typing.get_args(typing.get_type_hints(function)["path"])
        assert IO[bytes] in kinds and str in kinds and protocol in kinds, kinds
    assert set(typing.get_args(typing.get_type_hints(serialization.load)["max_bytes"])) == {
        int, np.integer[Any], type(None)}  # a NumPy int is taken, as the annotation says
    write = typing.get_type_hints(serialization.SupportsWriteBytes.write)
    assert write["data"] is memoryview  # what save hands a stream's write (see the test below)


class ViewWriter:
    """A stream of one's own typed as save's protocol says: write gets a memoryview."""

    def __init__(self) -> None:
        self.kinds: list[type] = []

    def write(self, data: memoryview) -> int:
        self.kinds.append(type(data))
        return data.nbytes


class BytesOnlyWriter:
    def write(self, data: bytes) -> int:  # (mypy refuses it for save: it would get a memoryview)
        return len(data)


def test_a_stream_s_write_gets_a_memoryview_as_the_protocol_says() -> None:
    writer = ViewWriter()
    md.save({"w": np.zeros(2)}, writer)
    assert writer.kinds and set(writer.kinds) == {memoryview}


def _typed_use(target: BinaryIO, source: IO[bytes], text: typing.TextIO) -> None:  # (checked by mypy, not run)
    md.save({"w": np.zeros(2)}, target)
    md.save({"w": np.zeros(2)}, io.BytesIO())
    md.save({"w": np.zeros(2)}, OneWay())
    md.save({"w": np.zeros(2)}, ViewWriter())
    REAL_LOAD(source, max_bytes=10)
    REAL_LOAD(source, max_bytes=np.int64(10))
    md.save({"w": np.zeros(2)}, BytesOnlyWriter())  # type: ignore[arg-type]
    REAL_LOAD(OneWay(b""))
    md.save({"w": np.zeros(2)}, text)  # type: ignore[arg-type]
    REAL_LOAD(text)  # type: ignore[arg-type]
    REAL_LOAD(io.StringIO())  # type: ignore[arg-type]


def test_a_raw_stream_that_would_block_is_named(state: dict[str, Any]) -> None:
    class Blocked(OneWay):
        def write(self, data: Any) -> None:  # type: ignore[override]
            return None  # a non-blocking raw stream: nothing taken

        def readinto(self, buffer: Any) -> None:  # type: ignore[override]
            return None

    with pytest.raises(BlockingIOError, match="would block") as info:
        md.save(state, Blocked())
    assert info.value.errno == errno.EAGAIN
    with pytest.raises(BlockingIOError, match=r"minidl\.load\(<Blocked>\): the stream has no data now"):
        REAL_LOAD(Blocked())


_: Callable[..., Any] = _typed_use


# ------------------------------------------------------------------------------ review: append mode, slow readers,
# ------------------------------------------------------------------------------ stuck writers, stream errors
@pytest.mark.parametrize("how", ["ab", "ab unbuffered", "a+b", "O_APPEND fd opened 'wb'"])
def test_save_into_a_file_opened_for_appending_writes_a_checkpoint_that_loads(
        tmp_path: pathlib.Path, state: dict[str, Any], how: str) -> None:
    """Every write to an appending file lands at its end, whatever the position: zip's seek back over a
    member was ignored and the checkpoint silently broken. The archive is built in memory for it."""
    if how.startswith("O_APPEND") and not hasattr(os, "O_APPEND"):
        pytest.skip("no O_APPEND")
    md.save(state, tmp_path / "by_path")
    want = (tmp_path / "by_path").read_bytes()
    path = tmp_path / "appended"
    path.write_bytes(PREFIX)
    if how == "ab":
        handle: Any = open(path, "ab")  # noqa: SIM115
    elif how == "ab unbuffered":
        handle = open(path, "ab", buffering=0)  # noqa: SIM115
    elif how == "a+b":
        handle = open(path, "a+b")  # noqa: SIM115
        handle.seek(0)  # (reads from anywhere; writes still go to the end)
    else:
        handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND), "wb")
        assert "a" not in handle.mode  # told by the descriptor's flags alone
    with handle:
        md.save(state, handle)
        md.save({"epoch": 2}, handle)  # a second one after it
    data = path.read_bytes()
    assert data[:len(PREFIX) + len(want)] == PREFIX + want
    with open(path, "rb") as reader:
        reader.seek(len(PREFIX) + len(want))
        assert REAL_LOAD(reader) == {"epoch": 2}
    path.write_bytes(data[:len(PREFIX) + len(want)])
    with open(path, "rb") as reader:
        reader.seek(len(PREFIX))
        assert_same_tree(REAL_LOAD(reader), state)


class CountingBytesIO(io.BytesIO):
    """The compressed bytes under a decompressing reader, counting how many are read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        part = super().read(size)
        self.count += len(part)
        return part

    def read1(self, size: int | None = -1) -> bytes:
        part = super().read1(size)
        self.count += len(part)
        return part

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.count += n
        return n


@pytest.mark.parametrize("kind", ["gzip", "lzma", "bz2", "zip member"])
def test_decompressing_readers_are_read_once_not_once_a_member(kind: str) -> None:
    """zip seeks back for every member; a GzipFile, LZMAFile, BZ2File or zip member seeks back by
    decompressing again from its start: load read such input over and over (quadratic: 36 s for an
    LZMAFile of 20 MB that decompresses in 2). It is read into memory once."""
    import bz2
    import gzip
    import lzma

    rng = np.random.default_rng(5)
    state = {f"p{i}": rng.standard_normal(2000) for i in range(12)}
    buffer = io.BytesIO()
    md.save(state, buffer)
    data = buffer.getvalue()
    if kind == "zip member":
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("ckpt", data)
        packed = outer.getvalue()
    else:
        packed = gzip.compress(data) if kind == "gzip" else (lzma.compress(data) if kind == "lzma"
                                                             else bz2.compress(data))
    under = CountingBytesIO(packed)
    reader: Any
    if kind == "zip member":
        reader = zipfile.ZipFile(under).open("ckpt")  # noqa: SIM115 - closed below
        under.count = 0  # (the outer directory is not the member)
    elif kind == "gzip":
        reader = gzip.GzipFile(fileobj=under)
    else:
        reader = lzma.LZMAFile(under) if kind == "lzma" else bz2.BZ2File(under)  # noqa: SIM115 - closed below
    with reader:
        assert reader.seekable()
        assert_same_tree(REAL_LOAD(reader), state)
        assert under.count <= 1.1 * len(packed) + 70_000, (under.count, len(packed))  # once (and a read-ahead)
        assert reader.read() == b""  # left at its end


def test_bytesio_and_open_files_are_read_in_place(tmp_path: pathlib.Path, state: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    md.save(state, tmp_path / "ckpt")
    monkeypatch.setattr(serialization, "_read_all", lambda *args: pytest.fail("copied into memory"))
    assert_same_tree(REAL_LOAD(io.BytesIO((tmp_path / "ckpt").read_bytes())), state)
    for buffering in (-1, 0):
        with open(tmp_path / "ckpt", "rb", buffering=buffering) as handle:
            assert_same_tree(REAL_LOAD(handle), state)
    with open(tmp_path / "ckpt", "r+b") as handle:
        assert_same_tree(REAL_LOAD(handle), state)


class StuckWriter:
    """A stream whose write takes nothing (returns 0) once ``room`` bytes are in: save looped forever."""

    def __init__(self, room: int, seekable: bool) -> None:
        self.data, self.room, self.calls, self.can_seek = io.BytesIO(), room, 0, seekable

    def write(self, data: memoryview) -> int:
        self.calls += 1
        if self.calls > 10_000:
            raise AssertionError("save keeps calling write after it took nothing")
        n = max(0, min(len(data), self.room - self.data.tell()))
        return self.data.write(data[:n])

    def seekable(self) -> bool:
        return self.can_seek

    def tell(self) -> int:
        return self.data.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.data.seek(offset, whence)


@pytest.mark.parametrize("seekable", [False, True])
@pytest.mark.parametrize("room", [0, 300])
def test_a_stream_whose_write_takes_nothing_is_an_oserror_naming_it(state: dict[str, Any], seekable: bool,
                                                                    room: int) -> None:
    stream = StuckWriter(room, seekable)
    with pytest.raises(OSError, match=r"minidl\.save: <StuckWriter> took none of the \d+ bytes left to write "
                                      r"\(its write returned 0\); the checkpoint in it is incomplete"):
        md.save(state, stream)
    assert stream.calls < 100


def test_max_bytes_of_the_documented_rule_refuses_nothing_save_wrote() -> None:
    """docs/checkpoints.md: a max_bytes of the size of the checkpoint saved with compress=False, plus
    0.1%, refuses nothing, compressed or not; the size is about nbytes + 330 bytes an array (or NumPy
    scalar) + 100 bytes a Python value + the keys' length + 500. (The old rule, nbytes + 130 bytes an
    array + the metadata, refused the stored file: its zip records make it larger than it unpacks to.)"""
    rng = np.random.default_rng(11)
    states: dict[str, dict[str, Any]] = {
        "many small": {f"layer{i}.W": np.zeros((8, 8)) for i in range(300)},
        "incompressible": {"w": rng.integers(0, 256, 400_000, dtype=np.uint8), "b": rng.standard_normal(7)},
        "tiny arrays": {f"k{i}": rng.integers(0, 256, int(rng.integers(1, 50)), dtype=np.uint8) for i in range(200)},
        "scalars": {"epoch": 3, "lr": 0.1, "step": np.int64(7), "name": "run"},
    }
    for name, state in states.items():
        sizes = {}
        for compress in (False, True):
            buffer = io.BytesIO()
            md.save(state, buffer, compress=compress)
            sizes[compress] = buffer.getvalue()
        rule = int(len(sizes[False]) * 1.001)
        for data in sizes.values():
            assert_same_tree(REAL_LOAD(io.BytesIO(data), max_bytes=rule), state)
        arrays = [np.asarray(v) for v in state.values() if isinstance(v, (np.ndarray, np.generic))]
        estimate = (sum(a.nbytes for a in arrays) + 330 * len(arrays) + 100 * (len(state) - len(arrays))
                    + sum(map(len, state)) + 500)
        assert len(sizes[False]) <= estimate <= 1.1 * len(sizes[False]) + 600, (name, len(sizes[False]), estimate)
        with zipfile.ZipFile(io.BytesIO(sizes[False])) as archive:
            meta = archive.getinfo("minidl_meta.npy").file_size
        old_rule = sum(a.nbytes for a in arrays) + 130 * len(arrays) + meta
        if name == "many small":
            with pytest.raises(CheckpointError, match=r"the input holds \d+ bytes, more than max_bytes"):
                REAL_LOAD(io.BytesIO(sizes[False]), max_bytes=old_rule)


class Flaky(io.BytesIO):
    """A seekable network-backed file whose connection drops once ``at`` bytes were read."""

    def __init__(self, data: bytes, at: int, error: Exception) -> None:
        super().__init__(data)
        self.at, self.error = at, error

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.at:
            raise self.error
        return super().read(size)


class FlakyStream(io.RawIOBase):
    """The same, not a BytesIO (read into memory)."""

    def __init__(self, data: bytes, at: int, error: Exception) -> None:
        self.inner = Flaky(data, at, error)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@pytest.mark.parametrize("kind", [Flaky, FlakyStream])
@pytest.mark.parametrize("at", [30, 2000, 7000])
def test_a_stream_s_own_read_error_is_raised_as_it_is_not_as_a_corrupt_archive(kind: type, at: int) -> None:
    """zipfile reports an OSError of its stream as BadZipFile ('File is not a zip file'): a dropped
    connection came out as a corrupt checkpoint."""
    buffer = io.BytesIO()
    md.save({"w": np.zeros(1000)}, buffer)
    data = buffer.getvalue()
    for error in (TimeoutError("read timed out"), ConnectionResetError(errno.ECONNRESET, "reset by peer")):
        stream = kind(PREFIX + data, len(PREFIX) + at, error)
        stream.seek(len(PREFIX))
        with pytest.raises(type(error)) as info:
            REAL_LOAD(stream)
        assert info.value is error
        assert stream.tell() == len(PREFIX)  # put back, as after any refusal


def test_forged_offsets_are_still_a_refused_archive_not_a_stream_error() -> None:
    """The window's own refusal (a seek before the checkpoint's start) is not the stream's error."""
    window = serialization._Window(io.BytesIO(PREFIX), 5)
    with pytest.raises(OSError, match="seek before the start of the checkpoint"):
        window.seek(-1)
    assert window.error is None and window.seek(2) == 2 and window.read(3) == PREFIX[7:10]
    buffer = io.BytesIO()
    md.save({"w": np.zeros(10)}, buffer)
    data = bytearray(buffer.getvalue())
    end = data.rindex(b"PK\x05\x06")
    for offset in (2**31, 0):  # the directory's offset: beyond the input, or not where the directory is
        data[end + 16:end + 20] = offset.to_bytes(4, "little")
        stream = io.BytesIO(PREFIX + bytes(data))
        stream.seek(len(PREFIX))
        with pytest.raises(CheckpointError, match=r"minidl\.load\(<BytesIO>\): "):
            REAL_LOAD(stream)
        assert stream.tell() == len(PREFIX)


class NoSeekFromEnd(io.BytesIO):
    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            raise io.UnsupportedOperation("no seek from end")
        return super().seek(offset, whence)


def test_a_refused_stream_that_cannot_seek_from_its_end_is_put_back(tmp_path: pathlib.Path) -> None:
    import gzip

    good = io.BytesIO()
    md.save({"w": 1}, good)
    for data, options, match in ((b"PK\x03\x04garbage" * 10, {}, "corrupted or truncated"),
                                 (good.getvalue(), {"max_bytes": 100}, "more than max_bytes=100")):
        stream = NoSeekFromEnd(b"prefix" + data)
        stream.seek(6)
        with pytest.raises(CheckpointError, match=match):
            REAL_LOAD(stream, **options)
        assert stream.tell() == 6
        stream.seek(6)
        if not options:
            continue
        assert REAL_LOAD(stream) == {"w": 1} and stream.tell() == len(b"prefix" + data)
    with gzip.open(tmp_path / "c.gz", "wb") as packed:
        packed.write(PREFIX)
        md.save({"w": np.zeros(100)}, packed)
    with gzip.open(tmp_path / "c.gz", "rb") as reader:
        reader.seek(len(PREFIX))
        with pytest.raises(CheckpointError, match=r"more than max_bytes=100 bytes \(stopped after reading 101\)"):
            REAL_LOAD(reader, max_bytes=100)
        assert reader.tell() == len(PREFIX)
        assert REAL_LOAD(reader)["w"].shape == (100,)


@pytest.mark.parametrize("data", [b"PK\x03\x04", bytearray(b"PK"), memoryview(b"PK")])
def test_load_of_bytes_says_to_wrap_them_in_bytesio(data: Any) -> None:
    with pytest.raises(TypeError, match=r"minidl\.load: path must be .*, got (bytes|bytearray|memoryview); to load "
                                        r"a checkpoint held in memory, wrap it: minidl\.load\(io\.BytesIO\(data\)\)"):
        REAL_LOAD(data)
