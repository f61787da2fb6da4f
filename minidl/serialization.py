"""``save`` / ``load``: checkpoints as NumPy ``.npz`` archives that never unpickle anything.

A checkpoint is a tree: a ``dict`` with ``str`` keys whose values are arrays, Python scalars
(``int``, ``float``, ``bool``, ``str``, ``None``), NumPy scalars, lists, tuples, or further dicts,
e.g. ``{"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}``.

File layout (format ``minidl-checkpoint``, version 1), an ordinary ``.npz`` (zip of ``.npy``):

* ``a0``, ``a1``, ...: the arrays (and NumPy scalars, stored 0-d), numbered in tree order, so
  that keys with dots, slashes or any other character need no escaping.
* ``minidl_meta``: a ``uint8`` array holding ASCII JSON::

      {"format": "minidl-checkpoint", "version": 1, "minidl_version": "0.1.0",
       "numpy_version": "2.4.6", "arrays": 2, "tree": <node>}

  where a node is ``{"type": "dict", "items": [[key, node], ...]}``, ``"list"``/``"tuple"`` with
  ``"items": [node, ...]``, ``{"type": "array", "name": "a0", "dtype": "<f8", "shape": [2, 3]}``,
  ``{"type": "npscalar", "name": "a1", "dtype": "<f4"}``, ``{"type": "int", "value": 3}``,
  ``{"type": "float", "bits": "0x3ff0000000000000"}`` (the IEEE-754 bits, so every float,
  NaN payloads and -0.0 included, comes back bit for bit), ``{"type": "bool", "value": true}``,
  ``{"type": "str", "value": "..."}`` or ``{"type": "none"}``.

:func:`load` reads with ``np.load(..., allow_pickle=False)`` and checks the archive against the
metadata (every array present, none extra, dtypes and shapes as recorded); anything wrong raises
:class:`~minidl.errors.CheckpointError` naming the file.  :func:`save` to a path writes a temporary
file in the destination folder, ``fsync``\\ s it and renames it over the destination, so a crash
mid-save leaves any previous file intact.  Both also take a binary file object (``io.BytesIO``, an
open file, a stream) and then read or write exactly the bytes a path would hold, from the object's
current position; ``load(..., max_bytes=N)`` bounds what a file may make it read and decompress.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gzip
import inspect
import io
import itertools
import json
import math
import os
import re
import secrets
import stat
import struct
import sys
import zipfile
from collections.abc import Iterator
from typing import IO, Any, Protocol

import numpy as np

from .errors import CheckpointError, DTypeError
from .init import switch
from .layer import Layer

if sys.platform != "win32":
    import fcntl

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_NESTING", "load", "save"]

FORMAT_NAME = "minidl-checkpoint"
FORMAT_VERSION = 1
_META = "minidl_meta"
#: Array dtype kinds a checkpoint may hold: bool, ints, uints, floats, complex, bytes, str.
#: Object arrays (which need pickle) and structured/void arrays are refused.
_ARRAY_KINDS = "biufcSU"
#: Slack allowed between an array's recorded size and its ``.npy`` member (the header).
_HEADER_SLACK = 1 << 16
#: Upper bound on the metadata's size (a tree of a few million keys would still fit).
_MAX_META_BYTES = 1 << 26

PathLike = str | os.PathLike[str]


class SupportsReadBytes(Protocol):
    """What :func:`load` reads from besides a path: ``read(n)`` giving bytes (``None``: a non-blocking
    raw stream with nothing now); ``tell``/``seek`` are used when there (and ``seekable()`` says so)."""

    def read(self, size: int, /) -> bytes | None: ...


class SupportsWriteBytes(Protocol):
    """What :func:`save` writes to besides a path: ``write(data)`` taking a ``memoryview`` of bytes (as
    ``io.RawIOBase.write`` does; ``bytes(data)`` copies it) and returning the count taken (or ``None``);
    ``tell``/``seek`` are used when there (and ``seekable()`` says so)."""

    def write(self, data: memoryview, /) -> int | None: ...


#: What save and load take: a path, or a binary file object (``BinaryIO``, ``io.BytesIO``, ``open(..., "rb")``,
#: a stream of your own with ``read``/``write``).  Text files (``TextIO``) do not fit.
FileLike = str | os.PathLike[str] | IO[bytes]
#: How much load reads at a time from a stream that cannot seek.
_CHUNK = 1 << 20
#: Deflate cannot expand its input more than 1032 times (a 258-byte copy coded in 2 bits): a member
#: declaring more than that (plus this slack) for its compressed size declares a lie.
_MAX_DEFLATE_RATIO = 1032
_DEFLATE_SLACK = 1024
#: The largest int a checkpoint holds: its digits must stay under Python's default limit for
#: converting ints to and from text (4300 digits), which the JSON metadata goes through.
_MAX_INT_BITS = 14000
#: How a zip archive starts: a local file header, or the end record of an empty archive.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: NumPy's default ``max_header_size`` for ``np.load``: a longer ``.npy`` header is not parsed (its
#: ``literal_eval`` could take very long), and load keeps that limit.
_MAX_NPY_HEADER = 10000
#: NumPy < 2.1 has no ``allow_pickle`` in ``savez`` (it would be stored as an array named so).
_SAVEZ_TAKES_ALLOW_PICKLE = "allow_pickle" in inspect.signature(np.savez).parameters
#: The most levels of dicts, lists and tuples a checkpoint holds, the state dict itself counted as
#: the first (``{"a": {"b": [x]}}`` has 3): save refuses a deeper state, load a deeper file.  The
#: deepest state minidl makes is 5: ``{"scheduler": <a SequentialLR or ChainedScheduler's state>}``,
#: whose ``"schedulers"`` list holds a MultiStepLR's state with its ``"milestones"`` list (a model's or
#: an optimizer's state takes 3 levels, early stopping's and a generator's 2).  32 levels take about
#: 110 of Python's default 1000 frames (json's 3 per dict level, then the walks over the tree's 2 per
#: level), so what save writes loads from any ordinary call depth.
MAX_NESTING = 32
#: The deepest JSON nesting save writes: the metadata object, 3 per dict level (its node, the
#: ``"items"`` list, a ``[key, node]`` pair), then an array's node and its ``"shape"`` list.
_MAX_JSON_DEPTH = 3 * MAX_NESTING + 3
#: A JSON string, escapes included; one left open runs to the end of the text, as JSON reads it.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)


# ---------------------------------------------------------------------------------- saving
def save(state: dict[str, Any], path: FileLike | SupportsWriteBytes, *, compress: bool = False) -> None:
    """Write ``state`` to exactly ``path`` (no ``.npz`` suffix is added), atomically; or to a binary file object.

    Args:
        state: a ``dict`` with ``str`` keys; values are ``ndarray`` (any bool/int/float/complex/
            bytes/str dtype), NumPy scalars, ``int``, ``float``, ``bool``, ``str``, ``None``,
            ``list``, ``tuple`` or nested ``dict``.
        path: ``str`` or ``os.PathLike``; its folder must exist.  An existing file is replaced.
            Or a writable binary file object (``io.BytesIO``, ``open(..., "wb")``, a stream): the same
            bytes are written at its current position, which is left after them.  Not atomic: a
            failure can leave part of a checkpoint in it.  A stream that cannot seek back (a pipe, a
            file opened for appending, a ``GzipFile`` being written) gets the archive built in memory
            first (zip seeks back over what it wrote), then written in full.
        compress: store the arrays zip-deflated (smaller, slower); loading is the same.  True or
            False (a NumPy bool too); anything else is a ``TypeError``.

    Raises:
        TypeError: a value of an unsupported type or a non-``str`` key, named by its key path
            (``DTypeError``, a ``TypeError``, for an array of object or structured dtype); a
            ``compress`` that is not a bool; a text-mode file object (``io.StringIO``, ``open(p, "w")``).
        ValueError: ``state`` contains itself (a reference cycle), or is nested more than
            :data:`MAX_NESTING` (32) levels of dicts, lists and tuples deep (the state itself counted);
            a closed file object.
        OSError: the file could not be written; the previous file at ``path``, if any, is intact
            (``io.UnsupportedOperation``, also a ``ValueError``, for a file object opened for reading;
            an ``OSError`` naming the object when its ``write`` takes nothing, returning 0).
        RecursionError: called with almost none of Python's stack left (a :data:`MAX_NESTING`-level
            state needs about 110 frames); raised as it is, nothing written.
    """
    stream = _writable_stream(path) if _is_file_object(path) else None
    if stream is None:
        path = _fspath(path, "save")
    compress = switch(compress, "compress", "minidl.save")
    if not isinstance(state, dict):
        hint = "; save its state: minidl.save(model.state_dict(), path)" if isinstance(state, Layer) else ""
        raise TypeError(f"minidl.save: state must be a dict, got {type(state).__name__}{hint}")
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "state", arrays, set(), 1)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "minidl_version": _minidl_version(),
        "numpy_version": np.__version__,
        "arrays": len(arrays),
        "tree": tree,
    }
    text = json.dumps(meta, ensure_ascii=True)
    blob = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    members: dict[str, Any] = {_META: blob, **arrays}
    writer: Any = np.savez_compressed if compress else np.savez
    if _SAVEZ_TAKES_ALLOW_PICKLE:
        members["allow_pickle"] = False  # a keyword of savez, not an array
    if stream is None:
        with _atomic_writer(str(path)) as handle:
            writer(handle, **members)
    elif _seekable(stream) and not _forward_only(stream) and not _appending(stream):  # offsets from here
        writer(_Window(stream, stream.tell()), **members)
    else:
        buffer = io.BytesIO()
        writer(buffer, **members)
        _write_all(stream, buffer.getbuffer())
        if callable(getattr(stream, "flush", None)):
            stream.flush()


def _shorten(where: str) -> str:
    """A key path of a deeply nested value, its middle left out when long."""
    return where if len(where) <= 200 else f"{where[:95]} ... {where[-95:]}"


def _encode(value: Any, where: str, arrays: dict[str, np.ndarray], active: set[int], level: int) -> dict[str, Any]:
    """The metadata node for ``value`` (at key path ``where``, ``level`` containers deep counting
    ``value`` if it is one); arrays are appended to ``arrays``."""
    if value is None:
        return {"type": "none"}
    kind = type(value)
    if kind is bool:
        return {"type": "bool", "value": value}
    if kind is int:
        digits = getattr(sys, "get_int_max_str_digits", lambda: 0)()  # Python's int-to-text limit (3.11+)
        bits = min(_MAX_INT_BITS, int(digits * 3.32) - 4) if digits else _MAX_INT_BITS
        if value.bit_length() > bits:  # json would refuse it, and load would too
            raise ValueError(f"minidl.save: {where} is an int of {value.bit_length()} bits, more than a "
                             f"checkpoint holds ({bits} bits, about {int(bits * 0.301)} digits); store it as a str")
        return {"type": "int", "value": value}
    if kind is float:
        bits = struct.unpack("<Q", struct.pack("<d", value))[0]
        return {"type": "float", "bits": f"0x{bits:016x}"}
    if kind is str:
        return {"type": "str", "value": value}
    if isinstance(value, np.ndarray):
        if isinstance(value, np.ma.MaskedArray):
            raise TypeError(f"minidl.save: {where} is a masked array; save .data and .mask separately")
        array = np.asarray(value)
        _check_dtype(array.dtype, where)
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"type": "array", "name": name, "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(value, np.generic):
        array = np.asarray(value)
        _check_dtype(array.dtype, where)
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"type": "npscalar", "name": name, "dtype": array.dtype.str}
    if isinstance(value, (dict, list, tuple)):
        if id(value) in active:
            raise ValueError(f"minidl.save: {where} contains itself (a reference cycle)")
        if level > MAX_NESTING:
            raise ValueError(f"minidl.save: state is nested too deeply: {_shorten(where)} is a {type(value).__name__} "
                             f"{level} levels deep (the state itself counted), more than the {MAX_NESTING} "
                             "a checkpoint holds; flatten it (e.g. join keys into one, as state_dict does)")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for key, item in value.items():
                    if type(key) is not str:
                        raise TypeError(
                            f"minidl.save: keys must be str, got {type(key).__name__} {key!r} in {where}"
                        )
                    items.append([key, _encode(item, f"{where}[{key!r}]", arrays, active, level + 1)])
                return {"type": "dict", "items": items}
            nodes = [_encode(item, f"{where}[{i}]", arrays, active, level + 1) for i, item in enumerate(value)]
            return {"type": "list" if isinstance(value, list) else "tuple", "items": nodes}
        finally:
            active.discard(id(value))
    raise TypeError(
        f"minidl.save: cannot store {where} of type {type(value).__module__}.{type(value).__qualname__}; "
        "supported: ndarray, NumPy scalars, int, float, bool, str, None, list, tuple and dict"
    )


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS:
        raise DTypeError(
            f"minidl.save: {where} has dtype {dtype}; checkpoints hold only bool, integer, float, "
            "complex, bytes and str arrays (object arrays would need pickle, which load refuses)"
        )
    if dtype.itemsize == 0:  # np.ndarray(shape, "S0") makes one; load refuses them (see _zero_size_dtype)
        raise DTypeError(
            f"minidl.save: {where} has dtype {dtype}, whose elements hold 0 bytes, which load refuses; "
            f"store it as {dtype.kind}1 (empty strings): .astype('{dtype.kind}1')"
        )


def _zero_size_dtype(dtype: np.dtype) -> str:
    """Why load refuses a dtype of 0 bytes per element (``|S0``, ``<U0``, ``|V0``): any declared shape
    needs 0 bytes, so the size checks (against the member, against ``max_bytes``) pass for a few hundred
    bytes declaring billions of elements, and anything touching them afterwards allocates per element."""
    return (f"dtype {dtype}, of 0 bytes per element: no size check bounds the shape it declares, and anything "
            "touching its elements would allocate in proportion to their count; "
            "save never writes such arrays: the file was altered or not written by minidl.save")


@contextlib.contextmanager
def _atomic_writer(path: str) -> Iterator[Any]:
    """Yield a binary file in ``path``'s folder; on success fsync it and rename it onto ``path``.

    The temporary file is created with ``O_EXCL`` and mode ``0o666`` (so the umask applies, as for
    any new file); when it replaces an existing file it takes that file's permission bits first, so
    a private (``0o600``) checkpoint stays private.  On any exception it is removed and ``path`` is
    left untouched.  A ``path`` that is a symlink is followed: the link stays and its target gets the
    new content.  What ``open(path, "wb")`` would refuse (a directory, a write-protected file, a
    folder this process may not write in) is refused before anything is written, naming ``path``.
    """
    if not path:
        raise FileNotFoundError("minidl.save: the path is empty")
    given = path
    if os.path.basename(path) in ("", os.curdir, os.pardir):  # "x/", "x/.", "x/..": realpath would drop
        raise IsADirectoryError(f"minidl.save: {given!r} names a folder; give the checkpoint a file name")
    if not os.path.isdir(os.path.dirname(path) or os.curdir):  # as the system walks it ("missing/../x")
        raise FileNotFoundError(f"minidl.save: the folder of {given!r} does not exist (or is not a folder)")
    # The path as the system resolves it: in "link/../x" the ".." leaves the link's target, which
    # abspath's text rule would not see (the temporary would land elsewhere, maybe on another device),
    # and a symlink to a checkpoint is followed rather than replaced by a file.
    path = os.path.realpath(path)
    if os.path.islink(path):  # what realpath could not resolve: a loop of links
        raise OSError(errno.ELOOP, f"minidl.save: {given!r} is a loop of symbolic links")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):  # say so, rather than fail on the temporary's name
        through = f" (a link to {path!r})" if os.path.islink(given) else ""
        raise FileNotFoundError(f"minidl.save: the folder of {given!r}{through} does not exist (or is not a folder)")
    if os.path.isdir(path):
        raise IsADirectoryError(f"minidl.save: {given!r} is a folder; give the checkpoint a file name")
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO, a device: not replaced by a file
        raise OSError(f"minidl.save: {given!r} is not a regular file (a device or a pipe?); save to a file")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"minidl.save: {given!r} is write-protected (as open() would, save will not "
                              "replace it); make it writable or save elsewhere")
    base = os.path.basename(path)[:64]  # in the temporary's name: a name of 255 characters must still fit
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as error:  # (the temporary's name would only puzzle)
            raise type(error)(error.errno, f"minidl.save: cannot write {given!r}: {error.strerror} (in its "
                                           f"folder {folder!r})") from error
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"minidl.save: could not create a temporary file next to {path!r}")
    try:
        with os.fdopen(fd, "wb") as handle:
            _copy_permissions(path, handle.fileno())  # before any data is written
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def _copy_permissions(path: str, fd: int) -> None:
    """Give the open temporary file ``fd`` the read/write/execute bits of the regular file at
    ``path``, if there is one (best effort: nothing for a missing path, a directory, a symlink loop,
    Windows, or a file system that refuses chmod; setuid/setgid/sticky bits are never copied)."""
    if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
        return
    with contextlib.suppress(OSError):
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o777)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable where the OS allows it (POSIX); best effort."""
    if os.name != "posix":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------- loading
def load(path: FileLike | SupportsReadBytes, *, max_bytes: int | np.integer[Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` from exactly ``path``, or from a binary file object;
    returns the same tree.

    Arrays come back bit for bit with their dtypes (as plain, writable ``ndarray``), Python
    scalars keep their type (a ``float`` is restored bit for bit), tuples stay tuples.  Nothing is
    ever unpickled.

    Args:
        path: ``str`` or ``os.PathLike``; or a readable binary file object (``io.BytesIO``,
            ``open(..., "rb")``, a stream), read from its current position to its end with the same
            checks as a file.  A ``BytesIO`` or an open regular file is read where it is; any other
            stream (a ``GzipFile``, a zip member, a pipe) is read into memory first (bounded by
            ``max_bytes``), as zip seeks back for every member.  A seekable object is left at its end
            after a load, and back where it was after a refusal; from one that cannot seek, what was
            read is consumed.
        max_bytes: ``None`` (no limit, the default) or an int ``>= 0`` (a NumPy int too): refuse,
            before reading further, input longer than this, and an archive whose members would
            decompress to more.

    Raises:
        CheckpointError: the file is not a ``.npz`` archive (e.g. a pickle or a ``.npy``), is
            truncated or corrupted, holds an object array, has no or malformed minidl metadata
            (nested more than :data:`MAX_NESTING` levels deep: "nested too deeply"), a format version
            this minidl does not read, or arrays missing, extra, or of another dtype/shape than
            recorded; it is larger, or would decompress larger, than ``max_bytes``.
            The message names the file (or the object) and the problem.
        OSError: the file cannot be opened (``FileNotFoundError``, ``PermissionError``, ...), or
            is not a regular file once symbolic links are followed (a pipe, a device, a socket:
            refused before it is opened, as reading a pipe would wait for a writer forever).
            ``io.UnsupportedOperation`` (also a ``ValueError``) for a file object opened for writing.
            An exception a file object's ``read``/``seek`` raises (a ``TimeoutError``, ...) is raised
            as it is, not as a corrupted archive.
        TypeError: a text-mode file object (``io.StringIO``, ``open(p, "r")``); a ``max_bytes`` that
            is not ``None`` or an int.
        ValueError: a negative ``max_bytes``; a closed file object.
        RecursionError: called with almost none of Python's stack left (a :data:`MAX_NESTING`-level
            checkpoint needs about 110 frames): the caller's, not the file's, raised as it is.
    """
    limit = _max_bytes(max_bytes)
    if not _is_file_object(path):
        path = _fspath(path, "load")
        who = f"minidl.load({path!r})"
        with _open_regular(path) as handle:  # (through a window: a read error is not a corrupt archive)
            size = os.fstat(handle.fileno()).st_size
            return _load_from(_Window(handle, 0), size, who, limit, "the file is empty")
    stream = _readable_stream(path)
    who = f"minidl.load({_label(stream)})"
    empty = "nothing to read from the object's position"
    start = stream.tell() if _seekable(stream) else None
    try:
        if start is not None and _in_place(stream):
            try:
                stream.seek(0, 2)
                end = stream.tell()
            except (OSError, ValueError):  # a subclass that cannot seek from its end: read into memory
                stream.seek(start)
            else:
                stream.seek(start)
                result = _load_from(_Window(stream, start), max(0, end - start), who, limit, empty)
                stream.seek(max(start, end))
                return result
        buffer = _read_all(stream, who, limit)
        return _load_from(buffer, len(buffer.getbuffer()), who, limit, empty)
    except BaseException:
        if start is not None:  # a refusal leaves a seekable object where it was
            with contextlib.suppress(Exception):
                stream.seek(start)
        raise


def _load_from(handle: Any, size: int, who: str, limit: int | None, empty: str) -> dict[str, Any]:
    """Load from ``handle`` (positioned at the archive's start, ``size`` bytes to its end)."""
    if limit is not None and size > limit:
        raise CheckpointError(f"{who}: the input holds {size} bytes, more than max_bytes={limit}; nothing was read")
    magic = handle.read(4)
    if magic not in _ZIP_MAGIC:
        raise CheckpointError(f"{who}: not a NumPy .npz archive ({_describe(magic) if magic else empty})")
    handle.seek(0)
    try:
        return _read(handle, who, size, limit)
    except Exception as error:
        failed = getattr(handle, "error", None)
        if failed is not None:  # the stream's own (zipfile reports an OSError of its read as a bad archive)
            raise failed from None
        if isinstance(error, (CheckpointError, RecursionError)):  # (RecursionError: the caller's stack, not the file)
            raise
        # zipfile, zlib, numpy format and JSON errors alike
        raise CheckpointError(
            f"{who}: the archive is corrupted or truncated ({type(error).__name__}: {error})"
        ) from error


def _open_regular(path: str) -> Any:
    """``open(path, "rb")``, for a regular file only: a pipe, device or socket (after following
    symbolic links) is an ``OSError`` before it is opened; a folder an ``IsADirectoryError``, a missing
    file a ``FileNotFoundError``, as ``open`` would raise them.  Opened without blocking and checked
    again through the open file, so a pipe put in the file's place in between is refused too."""
    info = os.stat(path)  # (follows links: FileNotFoundError, PermissionError, ELOOP as open would)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"minidl.load: {path!r} is a folder, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"minidl.load: {path!r} is not a regular file (a device or a pipe?); load from a file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat above
            raise OSError(f"minidl.load: {path!r} is not a regular file (a device or a pipe?); load from a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read(handle: Any, who: str, size: int, limit: int | None) -> dict[str, Any]:
    """The checkpoint's contents, rebuilt from an open .npz ``handle`` of ``size`` bytes (``limit``: ``load``'s
    ``max_bytes``, the most the members may decompress to together; None for no limit), each step refusing with a
    ``CheckpointError`` naming ``who``:

    1. the zip's members: one ``<name>.npy`` per name (a PyTorch pickle is named as such), their sizes checked
       against ``size`` and ``limit`` before anything is read (``_check_directory``);
    2. the metadata (``minidl_meta``: ASCII JSON in a uint8 array): this format, this version, a ``tree``;
    3. the arrays the tree lists, exactly those the archive holds, each read without pickles and checked
       against the tree's dtype and shape (``_member``);
    4. the tree decoded into the dict ``save`` wrote (``_decode``).
    """
    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"{who}: {problem}")

    with np.load(handle, allow_pickle=False) as archive:
        if not isinstance(archive, np.lib.npyio.NpzFile):  # pragma: no cover - magic checked
            raise fail("not a NumPy .npz archive")
        assert archive.zip is not None  # open while in the with block
        members = archive.zip.namelist()
        counts = collections.Counter(members)
        odd = sorted(m for m, count in counts.items() if count > 1 or not m.endswith(".npy"))
        if odd:  # np.load would read a member 'a0' in place of 'a0.npy', past the size checks below
            pickled = any(m.endswith(".pkl") for m in odd)  # torch.save's zip: data.pkl and tensor storages
            raise fail(f"the archive holds members that are not one .npy array per name: {odd[:5]}"
                       + ("; it looks like a PyTorch checkpoint (a pickle), which minidl never unpickles: "
                          "save its tensors as NumPy arrays (numpy.savez) and load them into a model "
                          "with load_state_dict" if pickled else ""))
        _check_directory(archive.zip.infolist(), size, limit, fail)
        names = {m[:-4] for m in members}
        if _META not in names:
            raise fail("not a minidl checkpoint (no 'minidl_meta' entry); a plain NumPy archive "
                       "can be read with np.load(path, allow_pickle=False)")
        raw = _member(archive, _META, None, fail)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise fail(f"metadata must be a 1-D uint8 array, got {raw.dtype} of shape {raw.shape}")
        try:
            text = raw.tobytes().decode("ascii")
        except UnicodeDecodeError as error:
            raise fail(f"metadata is not valid JSON ({error})") from error
        depth = _json_depth(text)
        if depth > _MAX_JSON_DEPTH:  # (refused before json.loads, which would recurse as deep)
            raise fail(f"metadata is nested too deeply: its JSON nests {depth} levels deep, more than the "
                       f"{_MAX_JSON_DEPTH} of the {MAX_NESTING} levels of dicts, lists and tuples a checkpoint holds "
                       "(save refuses a deeper state)")
        try:
            meta = json.loads(text)  # (a RecursionError is the caller's stack all but used up: raised as it is)
        except ValueError as error:
            raise fail(f"metadata is not valid JSON ({error})") from error
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise fail(f"metadata names format {got!r}, expected {FORMAT_NAME!r}")
        version = meta.get("version")
        if type(version) is not int:
            raise fail(f"metadata has no valid format version (got {version!r})")
        if version != FORMAT_VERSION:
            newer = " (written by a newer minidl; upgrade to read it)" if version > FORMAT_VERSION else ""
            raise fail(f"format version {version} is not supported, this minidl reads version "
                       f"{FORMAT_VERSION}{newer}")
        tree = meta.get("tree")
        if not isinstance(tree, dict) or tree.get("type") != "dict":
            raise fail("metadata 'tree' must describe a dict")
        expected: dict[str, dict[str, Any]] = {}
        _collect_arrays(tree, "state", expected, fail, 1)
        stored = names - {_META}
        missing = sorted(set(expected) - stored, key=_member_order)
        extra = sorted(stored - set(expected), key=_member_order)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"arrays listed in the metadata are missing: {missing}")
            if extra:
                parts.append(f"arrays not described by the metadata: {extra}")
            raise fail("the archive does not match its metadata: " + "; ".join(parts))
        if meta.get("arrays", len(expected)) != len(expected):
            raise fail(f"metadata says {meta.get('arrays')!r} arrays, its tree lists {len(expected)}")
        loaded = {name: _member(archive, name, node, fail) for name, node in expected.items()}
    result = _decode(tree, loaded)  # (at most MAX_NESTING levels: _collect_arrays refused more)
    assert isinstance(result, dict)
    return result


def _json_depth(text: str) -> int:
    """How deeply the JSON ``text`` nests arrays and objects (brackets in strings not counted), without recursion."""
    brackets = re.sub(r"[^\[\]{}]+", "", _JSON_STRING.sub("", text))
    return max(itertools.accumulate((1 if b in "[{" else -1 for b in brackets), initial=0))


def _member(archive: Any, name: str, node: dict[str, Any] | None, fail: Any) -> np.ndarray:
    """Read one array of the archive, refusing object arrays and size/dtype/shape mismatches."""
    if node is None:  # the metadata: bounded, so a forged size cannot exhaust memory
        stored = archive.zip.getinfo(f"{name}.npy").file_size
        if stored > _MAX_META_BYTES:
            raise fail(f"the metadata entry occupies {stored} bytes, more than the {_MAX_META_BYTES} allowed")
    else:
        dtype, shape = node["_dtype"], node["_shape"]
        recorded = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd shapes
        stored = archive.zip.getinfo(f"{name}.npy").file_size
        if not recorded <= stored <= recorded + _HEADER_SLACK:
            raise fail(f"array '{name}' ({node['_where']}) occupies {stored} bytes, its recorded "
                       f"dtype {dtype} and shape {tuple(shape)} need {recorded}")
    declared = _npy_header(archive, name, fail)  # read before the data, which np.load allocates from it
    if declared is not None:
        dtype, shape = declared
        if dtype.hasobject:
            raise fail(f"array '{name}' holds Python objects (pickled data); refusing to unpickle")
        if dtype.itemsize == 0:  # (the metadata's own member has no recorded dtype to refuse it first)
            raise fail(f"array '{name}' declares in its .npy header a {_zero_size_dtype(dtype)}")
        need = math.prod(shape) * dtype.itemsize
        if need > stored:
            raise fail(f"array '{name}' declares dtype {dtype} and shape {shape} ({need} bytes) in its .npy header, "
                       f"more than its member's {stored} bytes")
        if node is not None and (dtype != node["_dtype"] or shape != tuple(node["_shape"])):
            raise fail(f"array '{name}' ({node['_where']}) has dtype {dtype} and shape {shape}, "
                       f"the metadata records {node['_dtype']} and {tuple(node['_shape'])}")
    try:
        array = archive[name]
    except ValueError as error:
        text = str(error)  # NumPy's words: "Object arrays cannot be loaded when allow_pickle=False"
        if "Object arrays" in text or ("allow_pickle" in text and "max_header_size" not in text):
            raise fail(f"array '{name}' holds Python objects (pickled data); refusing to unpickle") from error
        raise
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load returns arrays for .npy
        raise fail(f"entry '{name}' is not an array")
    if node is not None and (array.dtype != node["_dtype"] or array.shape != tuple(node["_shape"])):
        raise fail(f"array '{name}' ({node['_where']}) has dtype {array.dtype} and shape {array.shape}, "
                   f"the metadata records {node['_dtype']} and {tuple(node['_shape'])}")
    return array


def _npy_header(archive: Any, name: str, fail: Any) -> tuple[np.dtype, tuple[int, ...]] | None:
    """The dtype and shape a ``.npy`` member declares, from its header alone (none of its data is
    read), or None when the member does not start as a ``.npy`` of version 1.0 or 2.0 (NumPy's read
    then says what is wrong).  A header longer than NumPy's ``max_header_size`` is refused unparsed."""
    with archive.zip.open(f"{name}.npy") as member:  # (once: a deflated member decompresses from its start)
        start = member.read(12)
        if len(start) < 10 or start[:6] != b"\x93NUMPY":
            return None
        version = (start[6], start[7])
        if version == (1, 0):
            prefix, length = 10, int.from_bytes(start[8:10], "little")
        elif version in ((2, 0), (3, 0)) and len(start) == 12:
            prefix, length = 12, int.from_bytes(start[8:12], "little")
        else:
            return None
        if length > _MAX_NPY_HEADER:
            raise fail(f"array '{name}' has a .npy header of {length} bytes, more than the {_MAX_NPY_HEADER} "
                       "NumPy reads safely (parsing a longer one could take very long); refusing it (save writes "
                       "headers of about 100 bytes: the file was not written by minidl.save, or was altered)")
        if version == (3, 0):  # utf-8 headers, for structured dtypes with non-Latin-1 field names
            raise fail(f"array '{name}' has a .npy header of format version 3.0, which save never writes "
                       "(it is for structured dtypes, which checkpoints may not hold)")
        header = io.BytesIO(start + member.read(max(0, prefix + length - len(start))))
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    np.lib.format.read_magic(header)
    shape, _fortran, dtype = read_header(header, max_header_size=_MAX_NPY_HEADER)
    return dtype, tuple(shape)


def _check_directory(infos: list[zipfile.ZipInfo], size: int, limit: int | None, fail: Any) -> None:
    """Refuse, before any member is decompressed, a zip directory that describes another archive than
    the one starting the input, compression save never uses, sizes the input cannot hold or deflate
    cannot produce, or members that would decompress to more than ``limit`` bytes."""
    if not infos:
        return
    first = min(info.header_offset for info in infos)
    if first != 0:
        raise fail(f"the zip directory at the end of the input describes an archive starting at byte {first}, "
                   "not at the start (two archives one after another? load reads one archive that fills the "
                   "input to its end)")
    for info in infos:
        name, packed, unpacked = info.filename, info.compress_size, info.file_size
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise fail(f"member {name!r} is compressed with zip method {info.compress_type}; save writes "
                       "members stored or deflated only")
        if info.compress_type == zipfile.ZIP_STORED and packed != unpacked:
            raise fail(f"member {name!r} is stored uncompressed in {packed} bytes but declares {unpacked}")
        if unpacked > _MAX_DEFLATE_RATIO * packed + _DEFLATE_SLACK:
            raise fail(f"member {name!r} declares {unpacked} bytes deflated into {packed}, more than deflate "
                       f"can expand ({_MAX_DEFLATE_RATIO} times): a forged size")
    packed_total = sum(info.compress_size for info in infos)
    if packed_total > size:
        raise fail(f"the zip directory declares {packed_total} bytes of member data, more than the input's {size}")
    total = sum(info.file_size for info in infos)
    if limit is not None and total > limit:
        largest = max(infos, key=lambda info: info.file_size)
        raise fail(f"its members would decompress to {total} bytes (the largest, {largest.filename!r}, to "
                   f"{largest.file_size}), more than max_bytes={limit}; nothing was decompressed")


def _collect_arrays(node: Any, where: str, out: dict[str, dict[str, Any]], fail: Any, level: int) -> None:
    """Validate the metadata tree (``node`` at key path ``where``, ``level`` containers deep counting ``node`` if
    it is one: at most MAX_NESTING); record each array node (with parsed dtype/shape) by name."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise fail(f"malformed metadata at {where}: {str(node)[:80]}")
    kind = node["type"]
    if kind in ("dict", "list", "tuple") and level > MAX_NESTING:
        raise fail(f"metadata is nested too deeply: {_shorten(where)} is a {kind} {level} levels deep (the state "
                   f"itself counted), more than the {MAX_NESTING} a checkpoint holds (save refuses such a state)")
    if kind == "dict":
        items = node.get("items")
        if not isinstance(items, list):
            raise fail(f"malformed metadata at {where}: dict without items")
        seen: set[str] = set()
        for item in items:
            if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                    or item[0] in seen):
                raise fail(f"malformed metadata at {where}: bad dict item {str(item)[:80]}")
            seen.add(item[0])
            _collect_arrays(item[1], f"{where}[{item[0]!r}]", out, fail, level + 1)
    elif kind in ("list", "tuple"):
        items = node.get("items")
        if not isinstance(items, list):
            raise fail(f"malformed metadata at {where}: {kind} without items")
        for i, item in enumerate(items):
            _collect_arrays(item, f"{where}[{i}]", out, fail, level + 1)
    elif kind in ("array", "npscalar"):
        name = node.get("name")
        if not (isinstance(name, str) and name[:1] == "a" and name[1:].isascii() and name[1:].isdigit()) \
                or name in out:  # 'a0', 'a1', ... as save writes them: no name can alias another's member
            raise fail(f"malformed metadata at {where}: bad or repeated array name {name!r}")
        if "dtype" not in node:  # np.dtype(None) would be float64
            raise fail(f"malformed metadata at {where}: {kind} {name!r} without a dtype")
        try:
            if not isinstance(node["dtype"], str):  # (save writes dtype.str; None, a number, a list: refused)
                raise TypeError("not a str")
            dtype = np.dtype(node["dtype"])
        except (TypeError, ValueError) as error:
            raise fail(f"malformed metadata at {where}: bad dtype {node.get('dtype')!r}") from error
        if dtype.hasobject or dtype.kind not in _ARRAY_KINDS:
            raise fail(f"{where} is recorded with dtype {dtype}, which checkpoints may not hold")
        if dtype.itemsize == 0:
            raise fail(f"array {name!r} ({where}) is recorded with a {_zero_size_dtype(dtype)}")
        if kind == "array" and "shape" not in node:  # (a default of () would read any 0-d member)
            raise fail(f"malformed metadata at {where}: array {name!r} without a shape")
        if kind == "npscalar" and "shape" in node:
            raise fail(f"malformed metadata at {where}: npscalar {name!r} with a shape (a NumPy scalar is 0-d)")
        shape = node["shape"] if kind == "array" else []
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise fail(f"malformed metadata at {where}: bad shape {shape!r}")
        node["_dtype"], node["_shape"], node["_where"] = dtype, shape, where
        out[name] = node
    elif kind == "int":
        if type(node.get("value")) is not int:
            raise fail(f"malformed metadata at {where}: int without an int value")
    elif kind == "bool":
        if type(node.get("value")) is not bool:
            raise fail(f"malformed metadata at {where}: bool without a bool value")
    elif kind == "str":
        if type(node.get("value")) is not str:
            raise fail(f"malformed metadata at {where}: str without a str value")
    elif kind == "float":
        bits = node.get("bits")
        if (not isinstance(bits, str) or not bits.startswith("0x") or len(bits) != 18
                or not all(c in "0123456789abcdef" for c in bits[2:])):
            raise fail(f"malformed metadata at {where}: float bits {bits!r}")
    elif kind != "none":
        raise fail(f"malformed metadata at {where}: unknown node type {kind!r}")


def _decode(node: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    kind = node["type"]
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in node["items"]}
    if kind == "list":
        return [_decode(item, arrays) for item in node["items"]]
    if kind == "tuple":
        return tuple(_decode(item, arrays) for item in node["items"])
    if kind == "array":
        return arrays[node["name"]]
    if kind == "npscalar":
        return arrays[node["name"]][()]
    if kind == "float":
        return struct.unpack("<d", struct.pack("<Q", int(node["bits"], 16)))[0]
    if kind == "none":
        return None
    return node["value"]


# ---------------------------------------------------------------------------------- file objects
def _is_file_object(target: Any) -> bool:
    """A file object, not a path: anything but ``str``/``bytes``/``os.PathLike`` with ``read`` or ``write``."""
    if isinstance(target, (str, bytes, os.PathLike)):
        return False
    return callable(getattr(target, "read", None)) or callable(getattr(target, "write", None))


def _label(stream: Any) -> str:
    """How messages name a file object: ``<BytesIO>``, ``<BufferedReader 'run.ckpt'>``."""
    name = getattr(stream, "name", None)
    return f"<{type(stream).__name__} {name!r}>" if isinstance(name, str) else f"<{type(stream).__name__}>"


def _usable(stream: Any, who: str, verb: str, mode: str) -> None:
    """Refuse a text-mode, closed, or wrong-direction file object before anything is read or written."""
    label = _label(stream)
    if isinstance(stream, io.TextIOBase):
        raise TypeError(f"minidl.{who}: {label} is a text-mode file object; checkpoints are binary: open the "
                        f"file with mode '{mode}' or use io.BytesIO")
    if getattr(stream, "closed", False) is True:
        raise ValueError(f"minidl.{who}: {label} is closed")
    able = getattr(stream, {"read": "readable", "write": "writable"}[verb], None)
    if callable(getattr(stream, verb, None)) and (not callable(able) or able()):
        return
    raise io.UnsupportedOperation(f"minidl.{who}: {label} cannot {verb} (opened with another mode?); "
                                  f"{who} needs a binary file object opened with mode '{mode}'")


def _writable_stream(stream: Any) -> Any:
    _usable(stream, "save", "write", "wb")
    try:
        stream.write(memoryview(b""))  # a text stream of another class refuses bytes; a binary one writes nothing
    except TypeError as error:
        raise TypeError(f"minidl.save: {_label(stream)} does not take bytes (a text-mode file object?); "
                        "checkpoints are binary: open the file with mode 'wb' or use io.BytesIO") from error
    return stream


def _readable_stream(stream: Any) -> Any:
    _usable(stream, "load", "read", "rb")
    if isinstance(stream.read(0), str):  # reads nothing (None from a non-blocking raw stream)
        raise TypeError(f"minidl.load: {_label(stream)} does not give bytes (a text-mode file object?); "
                        "checkpoints are binary: open the file with mode 'rb' or use io.BytesIO")
    return stream


def _seekable(stream: Any) -> bool:
    """Whether ``stream`` can tell and seek (asked through ``seekable()`` where it has one)."""
    try:
        if callable(getattr(stream, "seekable", None)):
            return bool(stream.seekable()) and stream.tell() >= 0
        return callable(getattr(stream, "seek", None)) and stream.tell() >= 0
    except (OSError, ValueError, AttributeError):
        return False


def _forward_only(stream: Any) -> bool:
    """A writer that says it can seek but only forward (``gzip.GzipFile`` writing): zip's seek back
    over a member it wrote would fail halfway, so the archive is built in memory for it."""
    return isinstance(stream, gzip.GzipFile) and getattr(stream, "mode", None) == gzip.WRITE


def _appending(stream: Any) -> bool:
    """A file opened for appending (mode ``"ab"``, or an ``O_APPEND`` descriptor): it says it can seek,
    but every write lands at its end, so zip's seek back over a member it wrote would be ignored and
    the archive silently broken; the archive is built in memory for it."""
    mode = getattr(stream, "mode", None)
    if isinstance(mode, str) and "a" in mode:
        return True
    if sys.platform == "win32" or not isinstance(stream, (io.FileIO, io.BufferedWriter, io.BufferedRandom)):
        return False  # (io's own files only: fileno() of a SpooledTemporaryFile would move it to disk)
    try:
        return bool(fcntl.fcntl(stream.fileno(), fcntl.F_GETFL) & os.O_APPEND)
    except (OSError, ValueError):
        return False


def _in_place(stream: Any) -> bool:
    """Whether load reads ``stream`` where it is (through a window): a ``BytesIO``, or one of io's
    files over a regular file, whose seeks are cheap.  Any other stream is read into memory once, as
    zip seeks back for every member: a ``GzipFile``, ``LZMAFile`` or zip member would decompress
    again from its start each time (quadratic), a network file would fetch again."""
    if isinstance(stream, io.BytesIO):
        return True
    if not isinstance(stream, (io.FileIO, io.BufferedReader, io.BufferedRandom)):
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _write_all(stream: Any, data: Any) -> None:
    """Write all of ``data``: a raw stream may take part of it per call."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        count = stream.write(view)
        if count is None:
            if isinstance(stream, io.RawIOBase):  # non-blocking, nothing taken
                raise BlockingIOError(errno.EAGAIN, f"{_label(stream)} would block; give a blocking stream")
            return  # a file-like object of its own that does not count (write returns None)
        if count <= 0:  # it would never end: a full or broken stream that says so by taking nothing
            raise OSError(f"minidl.save: {_label(stream)} took none of the {view.nbytes} bytes left to write "
                          f"(its write returned {count}); the checkpoint in it is incomplete")
        view = view[count:]


def _read_all(stream: Any, who: str, limit: int | None) -> io.BytesIO:
    """The rest of a stream that cannot seek, in memory; refused once more than ``limit`` bytes came."""
    buffer = io.BytesIO()
    while True:
        want = _CHUNK if limit is None else min(_CHUNK, limit + 1 - buffer.tell())
        chunk = stream.read(want)
        if chunk is None:  # a non-blocking raw stream with nothing to give now
            raise BlockingIOError(errno.EAGAIN, f"{who}: the stream has no data now (non-blocking?); "
                                                "give a blocking stream")
        if not chunk:
            break
        buffer.write(chunk)
        if limit is not None and buffer.tell() > limit:
            raise CheckpointError(f"{who}: the input holds more than max_bytes={limit} bytes (stopped after "
                                  f"reading {buffer.tell()})")
    buffer.seek(0)
    return buffer


class _Window:
    """``stream`` seen from ``start`` on: positions are counted from there, so a zip written or read
    through it has the offsets (and bytes) of one in a file of its own."""

    def __init__(self, stream: Any, start: int) -> None:
        self._stream, self._start = stream, start
        #: The first exception the stream's own read, seek or tell raised (zipfile turns an ``OSError``
        #: of its stream into ``BadZipFile``, a corrupt archive: load raises this one instead).
        self.error: Exception | None = None

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except Exception as error:
            if self.error is None:
                self.error = error
            raise

    def tell(self) -> int:
        return int(self._call("tell")) - self._start

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            target = self._start + offset
        elif whence == 1:
            target = self._call("tell") + offset
        elif whence == 2:
            self._call("seek", 0, 2)
            target = self._call("tell") + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if target < self._start:  # (the window's own refusal, from a forged offset: not the stream's)
            raise OSError(errno.EINVAL, "seek before the start of the checkpoint")
        self._call("seek", target)
        return target - self._start

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self._call("read"))
        parts, got = [], 0
        while got < size:  # a raw stream may give less than asked before its end
            part = self._call("read", size - got)
            if not part:
                break
            parts.append(bytes(part))
            got += len(part)
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def write(self, data: Any) -> int:
        _write_all(self._stream, data)
        return memoryview(data).nbytes

    def flush(self) -> None:
        if callable(getattr(self._stream, "flush", None)):
            self._stream.flush()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True


def _max_bytes(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"minidl.load: max_bytes must be None or an int >= 0, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"minidl.load: max_bytes must be None or an int >= 0, got {value}")
    return int(value)


# ---------------------------------------------------------------------------------- helpers
def _fspath(path: Any, who: str) -> str:
    # a checkpoint's bytes in memory are not a path: say how to load them
    hint = "; to load a checkpoint held in memory, wrap it: minidl.load(io.BytesIO(data))" \
        if who == "load" and isinstance(path, (bytes, bytearray, memoryview)) else ""
    try:
        result = os.fspath(path)
    except TypeError:
        raise TypeError(f"minidl.{who}: path must be a str, os.PathLike or a binary file object, got "
                        f"{type(path).__name__}{hint}") from None
    if not isinstance(result, str):
        raise TypeError(f"minidl.{who}: path must be a str or os.PathLike of str, got {type(result).__name__}{hint}")
    return result


def _member_order(name: str) -> tuple[int, str]:
    return (int(name[1:]) if name[:1] == "a" and name[1:].isdigit() else 1 << 62, name)


def _describe(magic: bytes) -> str:
    if not magic:
        return "the file is empty"
    if magic[:1] == b"\x80":
        return "it looks like a Python pickle, which minidl never loads"
    if magic == b"\x93NUM":
        return "it is a single-array .npy file"
    return f"it starts with {magic!r}"


def _minidl_version() -> str:
    from . import __version__

    return __version__

