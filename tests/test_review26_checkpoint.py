"""Review 26 of checkpoints: a dtype of 0 bytes per element (``|S0``, ``<U0``) made every size check pass (the
needed bytes are shape x itemsize = 0), so a file of a few hundred bytes loaded as an array of billions of
elements past ``max_bytes``; load refuses such dtypes, in the metadata and in a ``.npy`` header, and save no
longer writes them."""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.errors import CheckpointError, DTypeError

HUGE = 3_000_000_000


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A version-1.0 ``.npy`` header alone (no data) declaring ``descr`` and ``shape``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def _meta_member(meta: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(meta).encode(), np.uint8), allow_pickle=False)
    return buffer.getvalue()


def _forged(node: dict[str, Any], member: bytes, meta_member: bytes | None = None) -> bytes:
    """A checkpoint ``{"x": <node>}`` whose array ``a0`` is ``member`` (as /work/scratch/s26/rh/p6.py builds it)."""
    meta = {"format": "minidl-checkpoint", "version": 1, "arrays": 1,
            "tree": {"type": "dict", "items": [["x", {"name": "a0", **node}]]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a0.npy", member)
        archive.writestr("minidl_meta.npy", meta_member if meta_member is not None else _meta_member(meta))
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", ["|S0", "<U0", ">U0"])
@pytest.mark.parametrize("max_bytes", [None, 10**6])
def test_an_array_of_a_zero_size_dtype_declaring_billions_of_elements_is_refused(
        tmp_path: pathlib.Path, dtype: str, max_bytes: int | None) -> None:
    """The old load returned a (3000000000,) array from 646 bytes, max_bytes=10**6 or not; comparing it with
    anything then allocated 3 GB."""
    data = _forged({"type": "array", "dtype": dtype, "shape": [HUGE]}, _npy_header(dtype, (HUGE,)))
    assert len(data) < 1000
    shown = str(np.dtype(dtype))
    message = (rf"array 'a0' \(state\['x'\]\) is recorded with a dtype {shown}, of 0 bytes per element: no size "
               r"check bounds the shape it declares, and anything touching its elements would allocate in "
               r"proportion to their count; save never writes such arrays")
    with pytest.raises(CheckpointError, match=r"^minidl\.load\(<BytesIO>\): " + message):
        md.load(io.BytesIO(data), max_bytes=max_bytes)
    (tmp_path / "p6.ckpt").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"^minidl\.load\('.*p6\.ckpt'\): " + message):
        md.load(tmp_path / "p6.ckpt", max_bytes=max_bytes)


@pytest.mark.parametrize("dtype", ["|S0", "<U0"])
def test_a_numpy_scalar_of_a_zero_size_dtype_is_refused_too(dtype: str) -> None:
    data = _forged({"type": "npscalar", "dtype": dtype}, _npy_header(dtype, ()))
    with pytest.raises(CheckpointError, match=rf"array 'a0' \(state\['x'\]\) is recorded with a dtype "
                                              rf"{np.dtype(dtype)}, of 0 bytes per element"):
        md.load(io.BytesIO(data))


def test_a_zero_size_void_dtype_stays_refused_as_a_kind_checkpoints_do_not_hold() -> None:
    data = _forged({"type": "array", "dtype": "|V0", "shape": [HUGE]}, _npy_header("|V0", (HUGE,)))
    with pytest.raises(CheckpointError, match=r"state\['x'\] is recorded with dtype \|V0, which checkpoints may "
                                              r"not hold"):
        md.load(io.BytesIO(data))


@pytest.mark.parametrize("dtype", ["|S0", "<U0", "|V0"])
def test_a_npy_header_of_a_zero_size_dtype_is_refused_before_numpy_reads_it(dtype: str) -> None:
    """The metadata's own member has no recorded dtype: its header is what declares the count (the old load
    read it, then said only that the metadata is not uint8); an array whose header differs from its
    metadata is refused for the dtype first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("minidl_meta.npy", _npy_header(dtype, (HUGE,)))
    with pytest.raises(CheckpointError, match=rf"^minidl\.load\(<BytesIO>\): array 'minidl_meta' declares in its "
                                              rf"\.npy header a dtype \{dtype}, of 0 bytes per element"):
        md.load(io.BytesIO(buffer.getvalue()))
    data = _forged({"type": "array", "dtype": "|S1", "shape": [0]}, _npy_header(dtype, (HUGE,)))
    with pytest.raises(CheckpointError, match=rf"array 'a0' declares in its \.npy header a dtype \{dtype}, of 0 "
                                              r"bytes per element"):
        md.load(io.BytesIO(data))


def test_an_empty_array_with_a_huge_axis_still_loads() -> None:
    """A 0 axis holds nothing whatever the other axes: it passes the size checks rightly."""
    for array in (np.empty((0, 10**12)), np.empty((10**9, 0), dtype="S5"), np.empty((0, HUGE), dtype="<U3")):
        buffer = io.BytesIO()
        md.save({"x": array}, buffer)
        loaded = md.load(io.BytesIO(buffer.getvalue()), max_bytes=10**4)["x"]
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
    data = _forged({"type": "array", "dtype": "|S1", "shape": [0, HUGE]}, _npy_header("|S1", (0, HUGE)))
    assert md.load(io.BytesIO(data), max_bytes=10**4)["x"].shape == (0, HUGE)


@pytest.mark.parametrize("dtype", ["S0", "U0"])
def test_save_refuses_an_array_of_a_zero_size_dtype_and_says_how_to_store_it(
        tmp_path: pathlib.Path, dtype: str) -> None:
    """np.ndarray(shape, "S0") builds one (np.array of empty bytes gives S1); the old save wrote it, for a
    load that now refuses it."""
    array = np.ndarray((3,), dtype=np.dtype(dtype))
    assert array.dtype.itemsize == 0
    path = tmp_path / "z.ckpt"
    with pytest.raises(DTypeError, match=rf"^minidl\.save: state\['model'\]\['x'\] has dtype {np.dtype(dtype)}, "
                                         r"whose elements hold 0 bytes, which load refuses; store it as "
                                         rf"{dtype[0]}1 \(empty strings\): \.astype\('{dtype[0]}1'\)$"):
        md.save({"model": {"x": array}}, path)
    assert not path.exists()
    md.save({"model": {"x": array.astype(f"{dtype[0]}1")}, "s": np.bytes_(b""), "u": np.str_("")}, path)
    loaded = md.load(path)
    assert loaded["model"]["x"].tolist() == array.tolist() and loaded["s"] == b"" and loaded["u"] == ""
