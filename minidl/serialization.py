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
:class:`~minidl.errors.CheckpointError` naming the file.  :func:`save` writes a temporary file in
the destination folder, ``fsync``\\ s it and renames it over the destination, so a crash mid-save
leaves any previous file intact.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import inspect
import json
import math
import os
import secrets
import stat
import struct
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import CheckpointError, DTypeError
from .init import switch
from .layer import Layer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

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


# ---------------------------------------------------------------------------------- saving
def save(state: dict[str, Any], path: PathLike, *, compress: bool = False) -> None:
    """Write ``state`` to exactly ``path`` (no ``.npz`` suffix is added), atomically.

    Args:
        state: a ``dict`` with ``str`` keys; values are ``ndarray`` (any bool/int/float/complex/
            bytes/str dtype), NumPy scalars, ``int``, ``float``, ``bool``, ``str``, ``None``,
            ``list``, ``tuple`` or nested ``dict``.
        path: ``str`` or ``os.PathLike``; its folder must exist.  An existing file is replaced.
        compress: store the arrays zip-deflated (smaller, slower); loading is the same.  True or
            False (a NumPy bool too); anything else is a ``TypeError``.

    Raises:
        TypeError: a value of an unsupported type or a non-``str`` key, named by its key path
            (``DTypeError``, a ``TypeError``, for an array of object or structured dtype); a
            ``compress`` that is not a bool.
        ValueError: ``state`` contains itself (a reference cycle).
        OSError: the file could not be written; the previous file at ``path``, if any, is intact.
    """
    path = _fspath(path, "save")
    compress = switch(compress, "compress", "minidl.save")
    if not isinstance(state, dict):
        hint = "; save its state: minidl.save(model.state_dict(), path)" if isinstance(state, Layer) else ""
        raise TypeError(f"minidl.save: state must be a dict, got {type(state).__name__}{hint}")
    arrays: dict[str, np.ndarray] = {}
    try:  # (json's encoder recurses more deeply than _encode: both may run out of stack)
        tree = _encode(state, "state", arrays, set())
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "minidl_version": _minidl_version(),
            "numpy_version": np.__version__,
            "arrays": len(arrays),
            "tree": tree,
        }
        text = json.dumps(meta, ensure_ascii=True)
    except RecursionError:
        raise ValueError("minidl.save: state is nested too deeply (hundreds of levels)") from None
    blob = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    members: dict[str, Any] = {_META: blob, **arrays}
    writer: Any = np.savez_compressed if compress else np.savez
    if _SAVEZ_TAKES_ALLOW_PICKLE:
        members["allow_pickle"] = False  # a keyword of savez, not an array
    with _atomic_writer(path) as handle:
        writer(handle, **members)


def _encode(value: Any, where: str, arrays: dict[str, np.ndarray], active: set[int]) -> dict[str, Any]:
    """The metadata node for ``value`` (at key path ``where``); arrays are appended to ``arrays``."""
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
        active.add(id(value))
        try:
            if isinstance(value, dict):
                items = []
                for key, item in value.items():
                    if type(key) is not str:
                        raise TypeError(
                            f"minidl.save: keys must be str, got {type(key).__name__} {key!r} in {where}"
                        )
                    items.append([key, _encode(item, f"{where}[{key!r}]", arrays, active)])
                return {"type": "dict", "items": items}
            nodes = [_encode(item, f"{where}[{i}]", arrays, active) for i, item in enumerate(value)]
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
def load(path: PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` from exactly ``path``; returns the same tree.

    Arrays come back bit for bit with their dtypes (as plain, writable ``ndarray``), Python
    scalars keep their type (a ``float`` is restored bit for bit), tuples stay tuples.  Nothing is
    ever unpickled.

    Raises:
        CheckpointError: the file is not a ``.npz`` archive (e.g. a pickle or a ``.npy``), is
            truncated or corrupted, holds an object array, has no or malformed minidl metadata,
            a format version this minidl does not read, or arrays missing, extra, or of another
            dtype/shape than recorded.  The message names the file and the problem.
        OSError: the file cannot be opened (``FileNotFoundError``, ``PermissionError``, ...), or
            is not a regular file once symbolic links are followed (a pipe, a device, a socket:
            refused before it is opened, as reading a pipe would wait for a writer forever).
    """
    path = _fspath(path, "load")
    with _open_regular(path) as handle:
        magic = handle.read(4)
        if magic not in _ZIP_MAGIC:
            raise CheckpointError(f"minidl.load({path!r}): not a NumPy .npz archive ({_describe(magic)})")
        handle.seek(0)
        try:
            return _read(handle, path)
        except CheckpointError:
            raise
        except Exception as error:  # zipfile, zlib, numpy format and JSON errors alike
            raise CheckpointError(
                f"minidl.load({path!r}): the archive is corrupted or truncated "
                f"({type(error).__name__}: {error})"
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


def _read(handle: Any, path: str) -> dict[str, Any]:
    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"minidl.load({path!r}): {problem}")

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
        names = {m[:-4] for m in members}
        if _META not in names:
            raise fail("not a minidl checkpoint (no 'minidl_meta' entry); a plain NumPy archive "
                       "can be read with np.load(path, allow_pickle=False)")
        raw = _member(archive, _META, None, fail)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise fail(f"metadata must be a 1-D uint8 array, got {raw.dtype} of shape {raw.shape}")
        try:
            meta = json.loads(raw.tobytes().decode("ascii"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
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
        _collect_arrays(tree, "state", expected, fail)
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
    try:
        result = _decode(tree, loaded)
    except RecursionError as error:  # pragma: no cover - json.loads refuses such depth first
        raise fail("metadata is nested too deeply") from error
    assert isinstance(result, dict)
    return result


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
    header = _npy_header_length(archive, name)
    if header is not None and header > _MAX_NPY_HEADER:
        raise fail(f"array '{name}' has a .npy header of {header} bytes, more than the {_MAX_NPY_HEADER} "
                   "NumPy reads safely (parsing a longer one could take very long); refusing it (save writes "
                   "headers of about 100 bytes: the file was not written by minidl.save, or was altered)")
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


def _npy_header_length(archive: Any, name: str) -> int | None:
    """The header length a ``.npy`` member declares (its bytes 8..10 or 8..12), or None when the member
    does not start as a ``.npy`` (NumPy's read then says what is wrong)."""
    with archive.zip.open(f"{name}.npy") as member:
        start = member.read(12)
    if len(start) < 10 or start[:6] != b"\x93NUMPY":
        return None
    if start[6] == 1:
        return int.from_bytes(start[8:10], "little")
    if start[6] in (2, 3) and len(start) == 12:
        return int.from_bytes(start[8:12], "little")
    return None


def _collect_arrays(node: Any, where: str, out: dict[str, dict[str, Any]], fail: Any) -> None:
    """Validate the metadata tree; record each array node (with parsed dtype/shape) by name."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise fail(f"malformed metadata at {where}: {str(node)[:80]}")
    kind = node["type"]
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
            _collect_arrays(item[1], f"{where}[{item[0]!r}]", out, fail)
    elif kind in ("list", "tuple"):
        items = node.get("items")
        if not isinstance(items, list):
            raise fail(f"malformed metadata at {where}: {kind} without items")
        for i, item in enumerate(items):
            _collect_arrays(item, f"{where}[{i}]", out, fail)
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


# ---------------------------------------------------------------------------------- helpers
def _fspath(path: Any, who: str) -> str:
    try:
        result = os.fspath(path)
    except TypeError:
        raise TypeError(
            f"minidl.{who}: path must be a str or os.PathLike, got {type(path).__name__}"
        ) from None
    if not isinstance(result, str):
        raise TypeError(
            f"minidl.{who}: path must be a str or os.PathLike of str, got {type(result).__name__}"
        )
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

