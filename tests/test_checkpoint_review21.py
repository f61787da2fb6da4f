"""Review 21 of checkpoint handling: load refuses what is not a regular file, an oversized .npy header is named
as such, save checks compress, load refuses array nodes without dtype/shape, load_state_dict's messages, and
EarlyStopping's checked settings and its state_dict/load_state_dict for a resumed run."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import pathlib
import pickle
import signal
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import minidl as md


# ------------------------------------------------------------------------------------ load: what it opens
@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the main thread after ``seconds`` (the old load blocked forever on a pipe)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError("load blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="needs POSIX pipes")
@pytest.mark.parametrize("through_link", [False, True])
def test_load_refuses_a_pipe_before_opening_it(tmp_path: pathlib.Path, through_link: bool) -> None:
    pipe = tmp_path / "pipe.ckpt"
    os.mkfifo(pipe)
    path = pipe
    if through_link:
        path = tmp_path / "latest.ckpt"
        path.symlink_to(pipe)
    with _deadline(3), pytest.raises(OSError, match=r"minidl\.load: '.*(pipe|latest)\.ckpt' is not a regular file "
                                                    r"\(a device or a pipe\?\); load from a file") as info:
        md.load(path)
    assert not isinstance(info.value, md.CheckpointError)
    # save says the same of it, in its own words
    with pytest.raises(OSError, match=r"minidl\.save: .* is not a regular file \(a device or a pipe\?\); save to "):
        md.save({"a": 1}, path)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_load_refuses_a_device() -> None:
    with pytest.raises(OSError, match=r"minidl\.load: '/dev/null' is not a regular file"):
        md.load("/dev/null")  # (the old load opened it and read it as an empty file)


def test_load_still_reads_a_file_through_a_link_and_names_a_folder(tmp_path: pathlib.Path) -> None:
    md.save({"w": np.arange(3.0)}, tmp_path / "best.ckpt")
    (tmp_path / "latest.ckpt").symlink_to(tmp_path / "best.ckpt")
    np.testing.assert_array_equal(md.load(tmp_path / "latest.ckpt")["w"], np.arange(3.0))
    with pytest.raises(IsADirectoryError, match=r"minidl\.load: '.*' is a folder, not a checkpoint file"):
        md.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        md.load(tmp_path / "missing.ckpt")


# ------------------------------------------------------------------------------------ load: oversized header
def _npy_with_header_padding(values: np.ndarray, padding: int) -> bytes:
    """A version-2 .npy of ``values`` whose header dict is padded with ``padding`` spaces."""
    header = (f"{{'descr': '{values.dtype.str}', 'fortran_order': False, 'shape': {values.shape}, "
              + " " * padding + "}")
    header += " " * ((64 - (12 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header.encode() + values.tobytes()


def _npy(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


def _meta(path: pathlib.Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as archive:
        meta: dict[str, Any] = json.loads(archive["minidl_meta"].tobytes())
    return meta


def _rewrite(path: pathlib.Path, meta: dict[str, Any], members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("minidl_meta.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("padding", [20_000, 60_000])
def test_an_oversized_npy_header_is_named_as_such_not_as_pickled_data(tmp_path: pathlib.Path, padding: int) -> None:
    path = tmp_path / "h.ckpt"
    md.save({"w": np.arange(4.0)}, path)
    _rewrite(path, _meta(path), {"a0.npy": _npy_with_header_padding(np.arange(4.0), padding)})
    with pytest.raises(md.CheckpointError, match=r"minidl\.load\('.*h\.ckpt'\): array 'a0' has a \.npy header of "
                                                 r"\d+ bytes, more than the 10000 NumPy reads safely") as info:
        md.load(path)
    assert "pickle" not in str(info.value)
    # the same member with a header under the limit loads: the limit is NumPy's, not lowered
    _rewrite(path, _meta(path), {"a0.npy": _npy_with_header_padding(np.arange(4.0), 9_000)})
    np.testing.assert_array_equal(md.load(path)["w"], np.arange(4.0))


def test_an_object_array_is_still_refused_as_pickled_data(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "o.ckpt"
    md.save({"w": np.arange(2.0)}, path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    _rewrite(path, _meta(path), {"a0.npy": buffer.getvalue()})
    with pytest.raises(md.CheckpointError, match=r"array 'a0' holds Python objects \(pickled data\); refusing"):
        md.load(path)


# ------------------------------------------------------------------------------------ save: compress
@pytest.mark.parametrize("bad", ["no", 0.5, [0], 1, None, np.array([1, 0])])
def test_save_refuses_a_compress_that_is_not_a_bool(tmp_path: pathlib.Path, bad: object) -> None:
    path = tmp_path / "c.ckpt"
    with pytest.raises(TypeError, match=r"minidl\.save: compress must be True or False, got "):
        md.save({"w": np.zeros(3)}, path, compress=bad)  # type: ignore[arg-type]
    assert not path.exists() and os.listdir(tmp_path) == []  # nothing written, no temporary left


@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_])
def test_save_takes_a_bool_compress(tmp_path: pathlib.Path, flag: Any) -> None:
    path = tmp_path / "c.ckpt"
    md.save({"w": np.zeros(1000)}, path, compress=flag)
    with zipfile.ZipFile(path) as archive:
        kinds = {info.compress_type for info in archive.infolist()}
    assert kinds == ({zipfile.ZIP_DEFLATED} if flag else {zipfile.ZIP_STORED})
    np.testing.assert_array_equal(md.load(path)["w"], np.zeros(1000))


# ------------------------------------------------------------------------------------ load: malformed nodes
@pytest.mark.parametrize(("edit", "member", "match"), [
    (lambda node: node.pop("dtype"), np.arange(6.0).reshape(2, 3), r"array 'a0' without a dtype"),
    (lambda node: node.update(dtype=None), np.arange(6.0).reshape(2, 3), r"bad dtype None"),
    (lambda node: node.update(dtype=8), np.arange(6.0).reshape(2, 3), r"bad dtype 8"),
    (lambda node: node.pop("shape"), np.float64(1.0), r"array 'a0' without a shape"),
    (lambda node: node.update(shape=None), np.float64(1.0), r"bad shape None"),
])
def test_an_array_node_without_dtype_or_shape_is_refused(tmp_path: pathlib.Path, edit: Any, member: Any,
                                                        match: str) -> None:
    path = tmp_path / "m.ckpt"
    md.save({"model": {"0.W": np.arange(6.0).reshape(2, 3)}}, path)
    meta = _meta(path)
    edit(meta["tree"]["items"][0][1]["items"][0][1])
    _rewrite(path, meta, {"a0.npy": _npy(np.asarray(member))})
    with pytest.raises(md.CheckpointError, match=r"minidl\.load\('.*m\.ckpt'\): malformed metadata at "
                                                 r"state\['model'\]\['0\.W'\]: " + match):
        md.load(path)


def test_an_npscalar_node_needs_its_dtype_and_takes_no_shape(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.ckpt"
    md.save({"n": np.int64(3)}, path)
    meta = _meta(path)
    del meta["tree"]["items"][0][1]["dtype"]
    _rewrite(path, meta, {"a0.npy": _npy(np.asarray(np.int64(3)))})
    with pytest.raises(md.CheckpointError, match=r"malformed metadata at state\['n'\]: npscalar 'a0' without a dtype"):
        md.load(path)
    meta["tree"]["items"][0][1].update(dtype="<i8", shape=[])
    _rewrite(path, meta, {"a0.npy": _npy(np.asarray(np.int64(3)))})
    with pytest.raises(md.CheckpointError, match=r"npscalar 'a0' with a shape"):
        md.load(path)


# ------------------------------------------------------------------------------------ load_state_dict messages
def test_load_state_dict_names_the_class_when_given_no_mapping() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0))
    with pytest.raises(TypeError, match=r"^Sequential\.load_state_dict expects a mapping, got list$"):
        model.load_state_dict(list(model.state_dict().items()))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^Dense\.load_state_dict expects a mapping, got NoneType$"):
        md.Dense(2, 2, rng=0).load_state_dict(None)  # type: ignore[arg-type]


def test_a_key_that_is_not_a_str_is_shown_as_what_it_is() -> None:
    model = md.Sequential(md.Dense(2, 2, rng=0))
    before = model.state_dict()
    with pytest.raises(md.StateDictError) as info:
        model.load_state_dict({**before, 1: np.zeros(2), "1": np.zeros(2)})  # type: ignore[dict-item]
    message = str(info.value)
    assert "unexpected key 1 (of type int; keys must be str, as state_dict() gives them)" in message
    assert "unexpected key '1'\n" in message + "\n"  # the str key as before
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_a_buffer_holding_nan_is_counted_as_a_parameter_is() -> None:
    model = md.Sequential(md.Dense(2, 3, rng=0), md.BatchNorm1d(3))
    state = model.state_dict()
    state["1.running_mean"] = np.array([np.nan, 0.0, np.inf])
    state["1.running_var"] = np.array([1.0, np.inf, 1.0])
    state["0.W"] = np.full_like(state["0.W"], np.nan)
    with pytest.raises(md.StateDictError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "'1.running_mean': holds 2 NaN/inf value(s)" in message
    assert "'1.running_var': holds 1 NaN/inf value(s)" in message
    assert f"'0.W': holds {state['0.W'].size} NaN/inf value(s)" in message


# ------------------------------------------------------------------------------------ EarlyStopping settings
def _snapshot(es: md.EarlyStopping) -> dict[str, Any]:
    return copy.deepcopy(es.__dict__)


@pytest.mark.parametrize(("name", "bad", "error", "match"), [
    ("patience", -5, ValueError, r"EarlyStopping: patience must be an int >= 0, got -5"),
    ("patience", 2.0, ValueError, r"patience must be an int >= 0, got 2\.0"),
    ("patience", True, ValueError, r"patience must be an int >= 0, got True"),
    ("min_delta", math.nan, ValueError, r"EarlyStopping: min_delta must be a finite number >= 0, got nan"),
    ("min_delta", -0.1, ValueError, r"min_delta must be a finite number >= 0"),
    ("min_delta", "0", ValueError, r"min_delta must be a finite number >= 0"),
    ("mode", "sideways", ValueError, r"EarlyStopping: mode must be 'auto', 'min' or 'max', got 'sideways'"),
    ("mode", None, ValueError, r"mode must be 'auto', 'min' or 'max', got None"),
    ("monitor", "", TypeError, r"EarlyStopping: monitor must be the name of a history key"),
    ("monitor", 3, TypeError, r"monitor must be the name of a history key, e\.g\. 'val_loss', got 3"),
    ("restore_best_weights", 1, TypeError, r"EarlyStopping: restore_best_weights must be True or False, got 1"),
])
def test_settings_are_checked_when_set_with_the_constructors_messages(name: str, bad: object, error: type,
                                                                      match: str) -> None:
    with pytest.raises(error, match=match):
        md.EarlyStopping(**{"monitor": "loss", name: bad})  # type: ignore[arg-type]
    es = md.EarlyStopping("loss", patience=3, min_delta=0.5)
    es.update(1, {"loss": 2.0}, md.Dense(1, 1, rng=0))
    before = _snapshot(es)
    with pytest.raises(error, match=match):
        setattr(es, name, bad)
    assert _snapshot(es) == before  # a refusal changes nothing


def test_settings_take_good_values_as_the_constructor_does() -> None:
    es = md.EarlyStopping("loss")
    es.patience, es.min_delta, es.restore_best_weights = np.int64(7), np.float32(0.25), np.True_
    assert (es.patience, es.min_delta, es.restore_best_weights) == (7, 0.25, True)
    assert type(es.patience) is int and type(es.min_delta) is float and type(es.restore_best_weights) is bool
    es.mode = "max"
    assert es.mode == "max"
    es.monitor = "val_accuracy"
    es.mode = "auto"  # decided from the monitor of that moment
    assert es.mode == "max"
    es.monitor = "val_loss"
    es.mode = "auto"
    assert es.mode == "min"


def test_a_pickled_early_stopping_keeps_its_settings_and_run() -> None:
    es = md.EarlyStopping("loss", patience=2, min_delta=0.1, mode="max", restore_best_weights=True)
    model = md.Dense(1, 1, rng=0)
    es.update(1, {"loss": 1.0}, model)
    again = pickle.loads(pickle.dumps(es))
    assert repr(again) == repr(es) and again.best == 1.0 and again.best_epoch == 1
    assert again.state_dict()["best_state"].keys() == es.state_dict()["best_state"].keys()
    # one pickled when the settings were plain attributes
    old = object.__new__(md.EarlyStopping)
    old.__setstate__({"monitor": "loss", "patience": 2, "min_delta": 0.0, "mode": "min",
                      "restore_best_weights": False, "best": 0.5, "best_epoch": 3, "stopped_epoch": 0,
                      "restored": False, "_wait": 1, "best_state": None})
    assert repr(old) == ("EarlyStopping(monitor='loss', patience=2, min_delta=0.0, mode='min', "
                         "restore_best_weights=False)")
    with pytest.raises(ValueError, match="patience must be an int >= 0"):
        old.patience = -1
    assert old.update(4, {"loss": 0.6}, model) is True and old.stopped_epoch == 4


# ------------------------------------------------------------------------------------ EarlyStopping state
def _run_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 4)), rng.integers(0, 3, 40)


def _fit(model: md.Layer, opt: md.SGD, shuffler: np.random.Generator, es: md.EarlyStopping,
         epochs: int, batch_size: int = 8) -> md.History:
    x, y = _run_data()
    return md.fit(model, x, y, loss=md.CrossEntropyLoss(), optimizer=opt, rng=shuffler, epochs=epochs,
                  batch_size=batch_size, verbose=0, early_stopping=es)


def _fresh(seed: int) -> tuple[md.Sequential, md.SGD, np.random.Generator, md.EarlyStopping]:
    model = md.Sequential(md.Dense(4, 3, rng=seed))
    return (model, md.SGD(model.parameters(), lr=0.05, momentum=0.9), np.random.default_rng(seed + 7),
            md.EarlyStopping("loss", patience=3, min_delta=0.05, restore_best_weights=True))


@pytest.mark.parametrize(("split", "batch_size", "best_before_split"), [(1, 8, False), (2, 8, False), (4, 8, True),
                                                                       (2, 32, True), (5, 32, False)])
def test_a_run_resumed_from_a_checkpoint_stops_as_the_uninterrupted_run(tmp_path: pathlib.Path, split: int,
                                                                        batch_size: int,
                                                                        best_before_split: bool) -> None:
    model, opt, shuffler, es = _fresh(0)
    whole = _fit(model, opt, shuffler, es, 30, batch_size)
    assert 0 < es.best_epoch < es.stopped_epoch == len(whole) < 30  # stops after the split
    assert es.restored and split < es.stopped_epoch

    model1, opt1, shuffler1, first = _fresh(0)
    _fit(model1, opt1, shuffler1, first, split, batch_size)
    # the first fit ended with its best weights (other than the last when its last epoch was not its best): the
    # run goes on from the last epoch's, which finish kept
    assert first.restored and first.last_state is not None and (first.best_epoch < split) is best_before_split
    weights = first.last_state if first.restored else model1.state_dict()
    md.save({"model": weights, "optimizer": opt1.state_dict(), "shuffler": shuffler1.bit_generator.state,
             "early_stopping": first.state_dict()}, tmp_path / "run.ckpt")

    checkpoint = md.load(tmp_path / "run.ckpt")
    model2, opt2, shuffler2, es2 = _fresh(5)  # built otherwise: everything comes from the checkpoint
    model2.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["optimizer"])
    shuffler2.bit_generator.state = checkpoint["shuffler"]
    es2.load_state_dict(checkpoint["early_stopping"])
    rest = _fit(model2, opt2, shuffler2, es2, 30 - split, batch_size)

    assert split + len(rest) == len(whole)
    assert (es2.best, es2.best_epoch, es2.stopped_epoch, es2.restored) == \
        (es.best, es.best_epoch, es.stopped_epoch, es.restored)
    assert es2.summary() == es.summary()
    for name, value in model.state_dict().items():
        assert np.array_equal(value, model2.state_dict()[name]), name  # the best weights, bit for bit


def test_without_loading_each_fit_starts_afresh_and_a_load_resumes_only_the_next_run() -> None:
    model, opt, shuffler, es = _fresh(0)
    _fit(model, opt, shuffler, es, 2)
    _fit(model, opt, shuffler, es, 1)
    assert es.state_dict()["epoch"] == 1  # fit started it afresh (as Keras does)
    es.load_state_dict({**es.state_dict(), "epoch": 5, "best_epoch": 5})
    _fit(model, opt, shuffler, es, 1)
    assert es.state_dict()["epoch"] == 6  # continued
    _fit(model, opt, shuffler, es, 1)
    assert es.state_dict()["epoch"] == 1  # the load was used: afresh again


def test_a_fit_with_no_epochs_or_refused_does_not_use_up_the_resume() -> None:
    model, opt, shuffler, es = _fresh(0)
    _fit(model, opt, shuffler, es, 2)
    saved = es.state_dict()
    es.load_state_dict(saved)
    _fit(model, opt, shuffler, es, 0)
    x, y = _run_data()
    with pytest.raises(md.DTypeError):
        md.fit(model, x.astype(np.float32), y, loss=md.CrossEntropyLoss(), optimizer=opt, verbose=0, early_stopping=es)
    _fit(model, opt, shuffler, es, 1)
    assert es.state_dict()["epoch"] == saved["epoch"] + 1


def test_state_dict_round_trips_through_save_and_load(tmp_path: pathlib.Path) -> None:
    es = md.EarlyStopping("val_accuracy", patience=4, min_delta=0.01, restore_best_weights=True)
    model = md.Sequential(md.Dense(2, 2, rng=0), md.BatchNorm1d(2))
    for epoch, value in enumerate([0.5, 0.7, 0.65], start=1):
        es.update(epoch, {"val_accuracy": value}, model)
    state = es.state_dict()
    assert state == {**state, "type": "EarlyStopping", "monitor": "val_accuracy", "mode": "max", "patience": 4,
                     "min_delta": 0.01, "restore_best_weights": True, "epoch": 3, "best": 0.7, "best_epoch": 2,
                     "wait": 1, "stopped_epoch": 0, "restored": False}
    md.save({"es": state}, tmp_path / "es.ckpt")
    loaded = md.load(tmp_path / "es.ckpt")["es"]
    other = md.EarlyStopping("loss")
    other.load_state_dict(loaded)
    assert repr(other) == repr(es)
    again = other.state_dict()
    assert again.keys() == state.keys()
    for key in state:
        if key != "best_state":
            assert again[key] == state[key] and type(again[key]) is type(state[key]), key
    assert again["best_state"].keys() == state["best_state"].keys()
    for key, value in state["best_state"].items():
        assert again["best_state"][key].dtype == value.dtype and np.array_equal(again["best_state"][key], value)
    loaded["best_state"]["0.W"][...] = 99.0  # the state is copied: later changes to it do not reach the object
    assert not np.any(other.best_state["0.W"] == 99.0)  # type: ignore[index]
    fresh = md.EarlyStopping("loss").state_dict()  # before any epoch: an infinite best, no best_state
    assert fresh["best"] == math.inf and fresh["best_state"] is None
    md.save({"es": fresh}, tmp_path / "fresh.ckpt")
    md.EarlyStopping("loss").load_state_dict(md.load(tmp_path / "fresh.ckpt")["es"])


def _good_state() -> dict[str, Any]:
    es = md.EarlyStopping("loss", patience=2, restore_best_weights=True)
    model = md.Dense(2, 1, rng=0)
    for epoch, value in enumerate([3.0, 2.0, 2.5], start=1):
        es.update(epoch, {"loss": value}, model)
    return es.state_dict()


@pytest.mark.parametrize(("change", "match"), [
    ({"type": "ReduceLROnPlateau"}, r"state is for 'ReduceLROnPlateau', not 'EarlyStopping'"),
    ({"extra": 1}, r"unexpected keys \[\"'extra'\"\]"),
    ({"wait": None}, r"'wait': expected an int >= 0"),
    ({"epoch": -1}, r"'epoch': expected an int >= 0"),
    ({"best_epoch": 1.0}, r"'best_epoch': expected an int >= 0"),
    ({"best": math.nan}, r"'best': expected a float, finite or \+-inf \(not NaN"),
    ({"best": "2.0"}, r"'best': expected a float"),
    ({"best": 10**400}, r"'best': expected a float"),
    ({"patience": -5}, r"'patience': EarlyStopping: patience must be an int >= 0, got -5"),
    ({"min_delta": math.inf}, r"'min_delta': EarlyStopping: min_delta must be a finite number >= 0"),
    ({"monitor": ""}, r"'monitor': EarlyStopping: monitor must be the name of a history key"),
    ({"restore_best_weights": "yes"}, r"'restore_best_weights': EarlyStopping: restore_best_weights must be True"),
    ({"mode": "auto"}, r"'mode': 'auto' \(not yet decided\) for a run with a best epoch \(2\): expected 'min' or "
                       r"'max'"),
    ({"mode": np.array(["min"])}, r"'mode': expected 'min', 'max' or 'auto' \(not yet decided\)"),
    ({"restored": 1}, r"'restored': expected True or False, got 1"),
    ({"best_epoch": 9}, r"'best_epoch' 9 and 'stopped_epoch' 0 cannot come after the last epoch seen, 'epoch' 3"),
    ({"best_epoch": 0}, r"'best' is 2\.0 with no best epoch \('best_epoch' 0\): expected inf for mode 'min'"),
    ({"best_state": [1, 2]}, r"'best_state': expected None or a model's state_dict \(a mapping\), got list"),
    ({"best_state": {"W": [1.0]}}, r"'best_state'\['W'\]: expected an array of numbers, got list"),
    ({"best_state": {1: np.zeros(2)}}, r"'best_state': key 1 \(of type int\); keys must be str"),
    ({"best_state": {"W": np.array([None])}}, r"'best_state'\['W'\]: expected an array of numbers, got dtype object"),
    ({"restore_best_weights": False}, r"'best_state': given, but 'restore_best_weights' is False"),
])
def test_load_state_dict_refuses_a_bad_state_and_changes_nothing(change: dict[str, Any], match: str) -> None:
    es = md.EarlyStopping("val_loss", patience=7)
    es.update(1, {"val_loss": 4.0}, md.Dense(2, 1, rng=1))
    before = _snapshot(es)
    with pytest.raises(md.StateDictError, match=r"^'?EarlyStopping\.load_state_dict refused the state \(nothing was "
                                                r"changed\): .*" + match):
        es.load_state_dict({**_good_state(), **change})
    assert _snapshot(es) == before


def test_load_state_dict_lists_every_problem_and_refuses_a_missing_key_or_no_mapping() -> None:
    es = md.EarlyStopping("loss")
    state = _good_state()
    del state["wait"]
    with pytest.raises(md.StateDictError, match=r"missing key 'wait'"):
        es.load_state_dict(state)
    with pytest.raises(md.StateDictError, match=r"'patience': .*; 'best': "):
        es.load_state_dict({**_good_state(), "patience": -1, "best": math.nan})
    with pytest.raises(TypeError, match=r"^EarlyStopping\.load_state_dict expects a mapping, got list$"):
        es.load_state_dict([])  # type: ignore[arg-type]
