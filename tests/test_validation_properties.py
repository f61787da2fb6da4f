"""Property tests: every layer and loss minidl exports either computes a correct, finite result or raises
one of minidl's documented exceptions -- never a bare NumPy/Python error -- and an error changes nothing.

Layers and losses are discovered from ``minidl.__all__``, so new ones are covered as soon as they are
exported.  ``LAYERS`` / ``LOSSES`` give, per class, how to build one, what a valid input looks like and
(optionally) an independent reference for the forward; a class missing from the tables is built from
its signature when that is obvious, and otherwise the test asks for a table row.

What is thrown at them: valid inputs, random shapes (0-D to 4-D, empty axes), every kind of dtype
(bool, ints, float16/32/64, complex, object, str), NaN/inf/huge/subnormal values, non-arrays (None,
strings, lists, dicts), and for ``backward`` gradients of the wrong shape or dtype.  Rules checked:

* success on a valid, finite input: output of the documented shape and the input's dtype, finite,
  equal to the reference (when there is one); ``backward`` gives ``dx`` of the input's shape and dtype;
* NaN/inf in the input of ``forward`` (the documented policy, docs/checkpoints.md): a layer with
  parameters or buffers refuses it (``NonFiniteError``); a parameter-free one (activations, ``Dropout``,
  ``Flatten``, the pools) may instead propagate it as NumPy does -- NaN/inf in the output exactly
  where the float64 reference has them, and no exception other than minidl's;
* ``backward`` refuses a ``grad_output`` that is not an array of the forward output's shape and dtype;
* any error: an instance of ``minidl.MinidlError`` whose message names the layer, with every
  parameter (data and grad), buffer and generator bit-for-bit as before, and the input untouched.

Known gaps in other modules are listed in ``KNOWN_GAPS`` (class, category) -> what is wrong.  The
property tests tolerate exactly those, and ``test_known_gap_is_still_open`` reproduces each one
deterministically as a strict xfail: when a gap is fixed that test XPASSes (fails), so the entry is
removed and the property tests check that behaviour again.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import minidl as md

# Deterministic (derandomize) so the suite never turns red at random for the rest of the team; set
# MINIDL_PROPERTY_SEARCH=1 to explore new random examples (and skip shrinking, to list failures fast).
_SEARCH = bool(os.environ.get("MINIDL_PROPERTY_SEARCH"))
SETTINGS = settings(
    max_examples=200 if _SEARCH else 40, deadline=None, derandomize=not _SEARCH, database=None,
    report_multiple_bugs=False,
    phases=[Phase.explicit, Phase.generate] if _SEARCH else list(Phase),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

FLOATS = (np.float64, np.float32)
ALL_DTYPES = (np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex128,
              np.object_, np.str_)
SPECIALS = (math.nan, math.inf, -math.inf)
RAGGED = [[1.0, 2.0], [3.0]]
ODD_INPUTS: tuple[Any, ...] = (None, "x", 3, 2.5, True, {"a": 1}, object(), RAGGED)

# Empty: every gap found so far is closed (test_closed_gap_stays_closed keeps them closed).  Add an
# entry (class, category) -> "what is wrong" for a new gap in another module, with a reproducer below.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def gap(name: str, category: str) -> bool:
    return (name, category) in KNOWN_GAPS


# ------------------------------------------------------------------------------ references (float64)
def ref_dense(layer: Any, x: np.ndarray) -> np.ndarray:
    W = layer.W.data.astype(np.float64)
    return x @ W[1:] + W[0] if layer.bias else x @ W


def ref_softmax(layer: Any, x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.copy()
    e = np.exp(x - x.max(axis=layer.axis, keepdims=True))
    return e / e.sum(axis=layer.axis, keepdims=True)


def ref_layernorm(layer: Any, x: np.ndarray) -> np.ndarray:
    axes = tuple(range(x.ndim - len(layer.normalized_shape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + layer.eps)
    if getattr(layer, "elementwise_affine", False):
        y = y * layer.gamma.data + layer.beta.data
    return y


def ref_batchnorm(layer: Any, x: np.ndarray) -> np.ndarray | None:
    if not layer.training:
        return None  # running statistics: covered by the layer's own tests
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + layer.eps)
    if layer.affine:
        y = y * layer.gamma.data.reshape(shape) + layer.beta.data.reshape(shape)
    return y


def ref_pool(kind: str) -> Callable[[Any, np.ndarray], np.ndarray]:
    def ref(layer: Any, x: np.ndarray) -> np.ndarray:
        kh, kw = layer.kernel_size
        sh, sw = layer.stride
        n, channels, h, w = x.shape
        out = np.empty((n, channels, (h - kh) // sh + 1, (w - kw) // sw + 1))
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                out[:, :, i, j] = patch.max(axis=(2, 3)) if kind == "max" else patch.mean(axis=(2, 3))
        return out
    return ref


def ref_pool1d(kind: str) -> Callable[[Any, np.ndarray], np.ndarray]:
    def ref(layer: Any, x: np.ndarray) -> np.ndarray:
        (k,), (stride,) = layer.kernel_size, layer.stride
        starts = range(0, x.shape[2] - k + 1, stride)
        windows = np.stack([x[:, :, i:i + k] for i in starts], axis=2)  # (N, C, L', k)
        return windows.max(axis=3) if kind == "max" else windows.mean(axis=3)
    return ref


def ref_conv(layer: Any, x: np.ndarray) -> np.ndarray:
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    ph, pw = layer.padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    W = layer.W.data.astype(np.float64)
    weights, bias = (W[1:], W[0]) if layer.bias else (W, 0.0)
    n, channels, h, w = x.shape
    out = np.empty((n, layer.out_channels, (h - kh) // sh + 1, (w - kw) // sw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, channels * kh * kw)
            out[:, :, i, j] = patch @ weights + bias
    return out


def ref_groupnorm(layer: Any, x: np.ndarray) -> np.ndarray:
    N, C = x.shape[:2]
    x3 = x.reshape(N, layer.num_groups, C // layer.num_groups * int(np.prod(x.shape[2:])))
    mean = x3.mean(axis=2, keepdims=True)
    var = ((x3 - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((x3 - mean) / np.sqrt(var + layer.eps)).reshape(x.shape)
    if layer.affine:
        shape = (1, C) + (1,) * (x.ndim - 2)
        y = y * layer.gamma.data.reshape(shape) + layer.beta.data.reshape(shape)
    return y


def ref_instancenorm(layer: Any, x: np.ndarray) -> np.ndarray | None:
    if layer.track_running_stats and not layer.training:
        return None  # running statistics: covered by the layer's own tests
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(2, 3), keepdims=True)
    y = (x - mean) / np.sqrt(var + layer.eps)
    if layer.affine:
        y = y * layer.gamma.data.reshape(1, -1, 1, 1) + layer.beta.data.reshape(1, -1, 1, 1)
    return y


def ref_local_response_norm(layer: Any, x: np.ndarray) -> np.ndarray:
    """x / (k + alpha/size * sum of x**2 over channels c - size//2 .. c + (size-1)//2) ** beta."""
    n, C = layer.size, x.shape[1]
    sums = [(x[:, max(0, c - n // 2):c + (n - 1) // 2 + 1] ** 2).sum(axis=1) for c in range(C)]
    base = layer.k + layer.alpha / n * (np.stack(sums, axis=1) if C else np.zeros_like(x))
    return x / base**layer.beta


def ref_pad(mode: str, widths: tuple[int, ...]) -> Callable[[Any, np.ndarray], np.ndarray]:
    """np.pad's version of a padding layer: ``widths`` (left, right[, top, bottom]) as PyTorch orders them."""
    pairs = [(0, 0), (0, 0), *reversed([widths[i:i + 2] for i in range(0, len(widths), 2)])]
    kind = {"zero": "constant", "constant": "constant", "reflect": "reflect", "replicate": "edge",
            "circular": "wrap"}[mode]
    extra = {"constant_values": 0.5} if mode == "constant" else {}
    return lambda layer, x: np.pad(x, pairs, mode=kind, **extra)


def _images(n: int, d: Any) -> tuple[int, ...]:
    return (n, 2, d(st.integers(2, 4)), d(st.integers(2, 4)))


def _sequences(n: int, d: Any) -> tuple[int, ...]:
    return (n, 2, d(st.integers(2, 5)))


#: (name, layer, input shape, mode, padding, example input): every padding layer, against np.pad
PADDINGS = [
    ("ZeroPad2D", lambda: md.ZeroPad2D((0, 1, 0, 2)), _images, "zero", (0, 1, 0, 2), (2, 2, 3, 3)),
    ("ConstantPad2D", lambda: md.ConstantPad2D((0, 1, 0, 1), 0.5), _images, "constant", (0, 1, 0, 1), (2, 2, 3, 3)),
    ("ReflectionPad2D", lambda: md.ReflectionPad2D((0, 1, 0, 1)), _images, "reflect", (0, 1, 0, 1), (2, 2, 3, 3)),
    ("ReplicationPad2D", lambda: md.ReplicationPad2D((0, 2, 0, 1)), _images, "replicate", (0, 2, 0, 1),
     (2, 2, 3, 3)),
    ("CircularPad2D", lambda: md.CircularPad2D((0, 1, 0, 1)), _images, "circular", (0, 1, 0, 1), (2, 2, 3, 3)),
    ("ZeroPad1D", lambda: md.ZeroPad1D((0, 2)), _sequences, "zero", (0, 2), (2, 2, 4)),
    ("ConstantPad1D", lambda: md.ConstantPad1D((0, 1), 0.5), _sequences, "constant", (0, 1), (2, 2, 4)),
    ("ReflectionPad1D", lambda: md.ReflectionPad1D((0, 1)), _sequences, "reflect", (0, 1), (2, 2, 4)),
    ("ReplicationPad1D", lambda: md.ReplicationPad1D((0, 2)), _sequences, "replicate", (0, 2), (2, 2, 4)),
    ("CircularPad1D", lambda: md.CircularPad1D((0, 1)), _sequences, "circular", (0, 1), (2, 2, 4)),
]


# ------------------------------------------------------------------------------ the layer table
@dataclass
class LayerSpec:
    build: Callable[[Any], md.Layer]                      # dtype -> layer
    shape: Callable[[int, Any], tuple[int, ...]]          # (batch size, draw) -> a valid input shape
    reference: Callable[[Any, np.ndarray], np.ndarray | None] | None = None
    min_batch: int = 0                                    # smallest batch a valid input has
    example: tuple[int, ...] = (2, 3)                     # one valid input shape, for the reproducers


def any_shape(n: int, draw: Any) -> tuple[int, ...]:
    return (n, *draw(st.lists(st.integers(1, 3), max_size=2)))


def get(name: str) -> Any:
    return getattr(md, name, None) or getattr(md.layers, name, None)


def ref_unfold(x: np.ndarray, k: int) -> np.ndarray:
    """k x k windows, stride 1: tap (i, j) of every window is the image shifted by (i, j); rows (C, i, j)."""
    n, c, h, w = x.shape
    ho, wo = h - k + 1, w - k + 1
    taps = np.stack([x[:, :, i:i + ho, j:j + wo] for i in range(k) for j in range(k)], axis=2)
    return taps.reshape(n, c * k * k, ho * wo)


def ref_fold(x: np.ndarray, size: int, k: int) -> np.ndarray:
    """The adjoint of ref_unfold on a size x size image: each tap's values added back, shifted by (i, j)."""
    n, rows, _ = x.shape
    o = size - k + 1
    taps = x.reshape(n, rows // (k * k), k, k, o, o)
    y = np.zeros((n, rows // (k * k), size, size), x.dtype)
    for i in range(k):
        for j in range(k):
            y[:, :, i:i + o, j:j + o] += taps[:, :, i, j]
    return y


def ref_pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """Channels ``i*r + j`` (mod r*r) fill the pixels ``(i::r, j::r)`` of each output channel."""
    n, channels, h, w = x.shape
    y = np.empty((n, channels // (r * r), h * r, w * r), x.dtype)
    for i in range(r):
        for j in range(r):
            y[:, :, i::r, j::r] = x[:, i * r + j::r * r]
    return y


def ref_pixel_unshuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, c, h, w = x.shape
    y = np.empty((n, c * r * r, h // r, w // r), x.dtype)
    for i in range(r):
        for j in range(r):
            y[:, i * r + j::r * r] = x[:, :, i::r, j::r]
    return y


LAYERS: dict[str, LayerSpec] = {
    "Dense": LayerSpec(lambda dt: md.Dense(3, 2, rng=0, dtype=dt), lambda n, d: (n, 3), ref_dense),
    "Conv2D": LayerSpec(lambda dt: get("Conv2D")(2, 3, 2, padding=1, rng=0, dtype=dt),
                        lambda n, d: (n, 2, d(st.integers(1, 4)), d(st.integers(1, 4))), ref_conv,
                        example=(2, 2, 3, 3)),
    "ReLU": LayerSpec(lambda dt: md.ReLU(), any_shape, lambda layer, x: np.maximum(x, 0)),
    "LeakyReLU": LayerSpec(lambda dt: md.LeakyReLU(0.1), any_shape,
                           lambda layer, x: np.where(x > 0, x, 0.1 * x)),
    "RReLU": LayerSpec(lambda dt: get("RReLU")(0.1, 0.3, rng=0), any_shape,  # random slopes in training
                       lambda layer, x: None if layer.training else np.where(x > 0, x, 0.2 * x)),
    "PReLU": LayerSpec(lambda dt: md.PReLU(3, init=0.3, dtype=dt),
                       lambda n, d: (n, 3, *d(st.lists(st.integers(1, 3), max_size=1))),
                       lambda layer, x: np.where(x > 0, x, x * layer.weight.data.reshape((3,) + (1,) * (x.ndim - 2))),
                       example=(2, 3)),
    "Sigmoid": LayerSpec(lambda dt: md.Sigmoid(), any_shape, lambda layer, x: 1 / (1 + np.exp(-x))),
    "Tanh": LayerSpec(lambda dt: md.Tanh(), any_shape, lambda layer, x: np.tanh(x)),
    "ELU": LayerSpec(lambda dt: md.ELU(0.5), any_shape, lambda layer, x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
    "SiLU": LayerSpec(lambda dt: md.SiLU(), any_shape, lambda layer, x: x / (1 + np.exp(-x))),
    "CELU": LayerSpec(lambda dt: md.CELU(0.5), any_shape,
                      lambda layer, x: np.where(x > 0, x, 0.5 * (np.exp(x / 0.5) - 1))),
    "SELU": LayerSpec(lambda dt: md.SELU(), any_shape,
                      lambda layer, x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
    "Hardtanh": LayerSpec(lambda dt: md.Hardtanh(-0.5, 2.0), any_shape,
                          lambda layer, x: np.minimum(np.maximum(x, -0.5), 2)),
    "ReLU6": LayerSpec(lambda dt: md.ReLU6(), any_shape, lambda layer, x: np.minimum(np.maximum(x, 0), 6)),
    "Hardsigmoid": LayerSpec(lambda dt: md.Hardsigmoid(), any_shape,
                             lambda layer, x: np.minimum(np.maximum(x / 6 + 0.5, 0), 1)),
    "Hardswish": LayerSpec(lambda dt: md.Hardswish(), any_shape,
                           lambda layer, x: x * np.minimum(np.maximum(x / 6 + 0.5, 0), 1)),
    "Mish": LayerSpec(lambda dt: md.Mish(), any_shape, lambda layer, x: x * np.tanh(np.logaddexp(0, x))),
    "GLU": LayerSpec(lambda dt: md.GLU(1), lambda n, d: (n, 2 * d(st.integers(1, 2)), *d(st.lists(st.integers(1, 2),
                                                                                             max_size=1))),
                     lambda layer, x: np.split(x, 2, axis=1)[0] / (1 + np.exp(-np.split(x, 2, axis=1)[1])),
                     example=(2, 4)),
    "Softsign": LayerSpec(lambda dt: md.Softsign(), any_shape, lambda layer, x: x / (1 + np.abs(x))),
    "LogSigmoid": LayerSpec(lambda dt: md.LogSigmoid(), any_shape, lambda layer, x: -np.logaddexp(0, -x)),
    "Hardshrink": LayerSpec(lambda dt: md.Hardshrink(0.25), any_shape,  # (NaN passes: it is not in the dead zone)
                            lambda layer, x: np.where((x >= -0.25) & (x <= 0.25), 0, x)),
    "Softshrink": LayerSpec(lambda dt: md.Softshrink(0.25), any_shape,
                            lambda layer, x: np.where((x >= -0.25) & (x <= 0.25), 0, x - 0.25 * np.sign(x))),
    "Tanhshrink": LayerSpec(lambda dt: md.Tanhshrink(), any_shape, lambda layer, x: x - np.tanh(x)),
    "Softplus": LayerSpec(lambda dt: md.Softplus(), any_shape,
                          lambda layer, x: np.where(x > 20, x, np.log(1 + np.exp(np.minimum(x, 20))))),
    "Softmax": LayerSpec(lambda dt: md.Softmax(), any_shape, ref_softmax),
    "LogSoftmax": LayerSpec(lambda dt: md.LogSoftmax(), any_shape, lambda layer, x: np.log(ref_softmax(layer, x))),
    "Softmin": LayerSpec(lambda dt: md.Softmin(), any_shape, lambda layer, x: ref_softmax(layer, -x)),
    "Dropout": LayerSpec(lambda dt: get("Dropout")(0.3, rng=0), any_shape),
    "AlphaDropout": LayerSpec(lambda dt: get("AlphaDropout")(0.3, rng=0), any_shape),
    "FeatureAlphaDropout": LayerSpec(lambda dt: get("FeatureAlphaDropout")(0.3, rng=0),
                                     lambda n, d: (n, 2, *d(st.lists(st.integers(1, 3), max_size=2))),
                                     example=(2, 2, 3)),
    "Dropout1d": LayerSpec(lambda dt: get("Dropout1d")(0.3, rng=0), lambda n, d: (n, 2, d(st.integers(1, 3))),
                           example=(2, 2, 3)),
    "Dropout2d": LayerSpec(lambda dt: get("Dropout2d")(0.3, rng=0),
                           lambda n, d: (n, 2, d(st.integers(1, 3)), 2), example=(2, 2, 3, 2)),
    "Flatten": LayerSpec(lambda dt: get("Flatten")(), lambda n, d: (n, *d(st.lists(st.integers(1, 3), min_size=1,
                                                                                     max_size=2))),
                         lambda layer, x: x.reshape(x.shape[0], int(np.prod(x.shape[1:]))), example=(2, 3, 2)),
    "GELU": LayerSpec(lambda dt: get("GELU")(), any_shape,
                      lambda layer, x: x * 0.5 * (1 + np.vectorize(math.erf, otypes=[float])(x / math.sqrt(2)))),
    "BatchNorm1d": LayerSpec(lambda dt: get("BatchNorm1d")(3, dtype=dt), lambda n, d: (n, 3), ref_batchnorm,
                             min_batch=2),
    "BatchNorm2d": LayerSpec(lambda dt: get("BatchNorm2d")(2, dtype=dt), lambda n, d: (n, 2, 2, 2),
                             ref_batchnorm, min_batch=1, example=(2, 2, 2, 2)),
    "LayerNorm": LayerSpec(lambda dt: get("LayerNorm")(3, dtype=dt),
                           lambda n, d: (n, *d(st.lists(st.integers(1, 2), max_size=1)), 3), ref_layernorm),
    "MaxPool2D": LayerSpec(lambda dt: get("MaxPool2D")(2), lambda n, d: (n, 2, 4, d(st.integers(2, 5))),
                           ref_pool("max"), example=(2, 2, 4, 4)),
    "AvgPool2D": LayerSpec(lambda dt: get("AvgPool2D")(2), lambda n, d: (n, 2, 4, d(st.integers(2, 5))),
                           ref_pool("avg"), example=(2, 2, 4, 4)),
    "GlobalAvgPool2D": LayerSpec(lambda dt: get("GlobalAvgPool2D")(), lambda n, d: (n, 2, d(st.integers(1, 3)), 3),
                                 lambda layer, x: x.mean(axis=(2, 3)), example=(2, 2, 3, 3)),
    "Sequential": LayerSpec(
        lambda dt: md.Sequential(md.Dense(3, 4, rng=0, dtype=dt), md.Tanh(), md.Dense(4, 2, rng=1, dtype=dt)),
        lambda n, d: (n, 3),
        lambda layer, x: ref_dense(layer[2], np.tanh(ref_dense(layer[0], x))),
    ),
    "RNN": LayerSpec(lambda dt: md.RNN(3, 2, rng=0, dtype=dt), lambda n, d: (n, d(st.integers(1, 3)), 3),
                     example=(2, 2, 3)),
    "LSTM": LayerSpec(lambda dt: md.LSTM(3, 2, rng=0, dtype=dt), lambda n, d: (n, d(st.integers(1, 3)), 3),
                      example=(2, 2, 3)),
    "GRU": LayerSpec(lambda dt: md.GRU(3, 2, return_sequences=False, rng=0, dtype=dt),
                     lambda n, d: (n, d(st.integers(1, 3)), 3), example=(2, 2, 3)),
    "GroupNorm": LayerSpec(lambda dt: get("GroupNorm")(2, 4, dtype=dt),
                           lambda n, d: (n, 4, *d(st.lists(st.integers(1, 3), max_size=2))), ref_groupnorm,
                           example=(2, 4, 3)),
    "InstanceNorm2d": LayerSpec(lambda dt: get("InstanceNorm2d")(2, affine=True, track_running_stats=True, dtype=dt),
                                lambda n, d: (n, 2, d(st.integers(2, 3)), 3), ref_instancenorm,
                                min_batch=1, example=(2, 2, 3, 3)),
    "LocalResponseNorm": LayerSpec(lambda dt: get("LocalResponseNorm")(2, alpha=0.5, beta=0.75, k=1.0),
                                   lambda n, d: (n, d(st.integers(1, 4)), *d(st.lists(st.integers(1, 3), min_size=1,
                                                                                       max_size=2))),
                                   ref_local_response_norm, example=(2, 3, 2)),
    "ConvTranspose2D": LayerSpec(lambda dt: get("ConvTranspose2D")(2, 3, 2, stride=2, padding=1, rng=0, dtype=dt),
                                 lambda n, d: (n, 2, d(st.integers(2, 3)), d(st.integers(2, 3))), example=(2, 2, 3, 3)),
    "ConvTranspose1D": LayerSpec(lambda dt: get("ConvTranspose1D")(2, 3, 2, stride=2, padding=1, rng=0, dtype=dt),
                                 lambda n, d: (n, 2, d(st.integers(2, 4))), example=(2, 2, 3)),
    "Upsample": LayerSpec(lambda dt: get("Upsample")((2, 3)), lambda n, d: (n, 2, d(st.integers(1, 3)), 2),
                          lambda layer, x: x.repeat(2, axis=2).repeat(3, axis=3), example=(2, 2, 3, 2)),
    "Conv1D": LayerSpec(lambda dt: get("Conv1D")(2, 3, 2, padding=1, rng=0, dtype=dt),
                        lambda n, d: (n, 2, d(st.integers(1, 4))), example=(2, 2, 3)),
    "MaxPool1D": LayerSpec(lambda dt: get("MaxPool1D")(2), lambda n, d: (n, 2, d(st.integers(2, 5))),
                           ref_pool1d("max"), example=(2, 2, 4)),
    "AvgPool1D": LayerSpec(lambda dt: get("AvgPool1D")(2), lambda n, d: (n, 2, d(st.integers(2, 5))),
                           ref_pool1d("avg"), example=(2, 2, 4)),
    "GlobalAvgPool1D": LayerSpec(lambda dt: get("GlobalAvgPool1D")(), lambda n, d: (n, 2, d(st.integers(1, 3))),
                                 lambda layer, x: x.mean(axis=2), example=(2, 2, 3)),
    "AdaptiveAvgPool1D": LayerSpec(lambda dt: get("AdaptiveAvgPool1D")(2), lambda n, d: (n, 2, d(st.integers(1, 5))),
                                   lambda layer, x: np.stack([x[..., : -(-x.shape[2] // 2)].mean(axis=2),
                                                              x[..., x.shape[2] // 2:].mean(axis=2)], axis=2),
                                   example=(2, 2, 3)),
    "AdaptiveAvgPool2D": LayerSpec(lambda dt: get("AdaptiveAvgPool2D")((1, None)),
                                   lambda n, d: (n, 2, d(st.integers(1, 4)), d(st.integers(1, 3))),
                                   lambda layer, x: x.mean(axis=2, keepdims=True), example=(2, 2, 3, 2)),
    "AdaptiveMaxPool1D": LayerSpec(lambda dt: get("AdaptiveMaxPool1D")(2), lambda n, d: (n, 2, d(st.integers(1, 5))),
                                   lambda layer, x: np.stack([x[..., : -(-x.shape[2] // 2)].max(axis=2),
                                                              x[..., x.shape[2] // 2:].max(axis=2)], axis=2),
                                   example=(2, 2, 3)),
    "AdaptiveMaxPool2D": LayerSpec(lambda dt: get("AdaptiveMaxPool2D")((1, None)),
                                   lambda n, d: (n, 2, d(st.integers(1, 4)), d(st.integers(1, 3))),
                                   lambda layer, x: x.max(axis=2, keepdims=True), example=(2, 2, 3, 2)),
    "Unflatten": LayerSpec(lambda dt: get("Unflatten")(1, (2, -1)), lambda n, d: (n, 2 * d(st.integers(1, 3))),
                           lambda layer, x: x.reshape(x.shape[0], 2, x.shape[1] // 2), example=(2, 4)),
    "Identity": LayerSpec(lambda dt: get("Identity")(), any_shape, lambda layer, x: x),
    "PixelShuffle": LayerSpec(lambda dt: get("PixelShuffle")(2),
                              lambda n, d: (n, 4 * d(st.integers(1, 2)), d(st.integers(1, 3)), 2),
                              lambda layer, x: ref_pixel_shuffle(x, 2), example=(2, 4, 3, 2)),
    "PixelUnshuffle": LayerSpec(lambda dt: get("PixelUnshuffle")(2),
                                lambda n, d: (n, d(st.integers(1, 2)), 2 * d(st.integers(1, 2)), 4),
                                lambda layer, x: ref_pixel_unshuffle(x, 2), example=(2, 1, 4, 4)),
    "Unfold": LayerSpec(lambda dt: get("Unfold")(2), lambda n, d: (n, d(st.integers(1, 2)), d(st.integers(2, 3)), 3),
                        lambda layer, x: ref_unfold(x, 2), example=(2, 2, 3, 3)),
    "Fold": LayerSpec(lambda dt: get("Fold")(3, 2), lambda n, d: (n, 4 * d(st.integers(1, 2)), 4),
                      lambda layer, x: ref_fold(x, 3, 2), example=(2, 4, 4)),
    **{name: LayerSpec(lambda dt, make=make: make(), shape, ref_pad(mode, widths), example=example)
       for name, make, shape, mode, widths, example in PADDINGS},
    "MultiHeadAttention": LayerSpec(lambda dt: get("MultiHeadAttention")(4, 2, causal=True, rng=0, dtype=dt),
                                    lambda n, d: (n, d(st.integers(1, 3)), 4), example=(2, 3, 4)),
    "TransformerEncoderLayer": LayerSpec(
        lambda dt: get("TransformerEncoderLayer")(4, 2, 6, dropout=0.0, rng=0, dtype=dt),
        lambda n, d: (n, d(st.integers(1, 3)), 4), example=(2, 3, 4)),
    "TransformerEncoder": LayerSpec(
        lambda dt: get("TransformerEncoder")(get("TransformerEncoderLayer")(4, 2, 6, dropout=0.0, rng=0, dtype=dt),
                                             norm=md.LayerNorm(4, dtype=dt)),
        lambda n, d: (n, d(st.integers(1, 3)), 4), example=(2, 3, 4)),
    "Stack": LayerSpec(
        lambda dt: md.Stack(md.Dense(3, 4, rng=0, dtype=dt), md.Tanh(), md.Dense(4, 2, rng=1, dtype=dt)),
        lambda n, d: (n, 3),
        lambda layer, x: ref_dense(layer[2], np.tanh(ref_dense(layer[0], x))),
    ),
    "Bidirectional": LayerSpec(
        lambda dt: md.Bidirectional(md.GRU(3, 2, rng=0, dtype=dt), md.GRU(3, 2, rng=1, dtype=dt)),
        lambda n, d: (n, d(st.integers(1, 3)), 3), example=(2, 2, 3)),
    "Residual": LayerSpec(
        lambda dt: md.Residual(md.Sequential(md.Dense(3, 3, rng=0, dtype=dt), md.Tanh())),
        lambda n, d: (n, 3),
        lambda layer, x: x + np.tanh(ref_dense(layer.block[0], x)),
    ),
}

# constructor arguments guessed from parameter names, for classes not in LAYERS
GUESSES = {"features": 3, "channels": 2, "num": 3, "size": 2, "kernel": 2, "shape": 3, "p": 0.5}


def guessed_spec(cls: type) -> LayerSpec | None:
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls).parameters.items():
        if param.default is not inspect.Parameter.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        guess = next((v for k, v in GUESSES.items() if k in name), None)
        if guess is None:
            return None
        kwargs[name] = guess
    if "rng" in inspect.signature(cls).parameters:
        kwargs["rng"] = 0

    def build(dt: Any) -> md.Layer:
        return cls(**kwargs)

    def shape(n: int, draw: Any) -> tuple[int, ...]:
        hint = build(np.float64).input_shape_hint()
        return (n, *hint) if hint is not None else any_shape(n, draw)

    return LayerSpec(build, shape)


def exported(base: Any) -> list[str]:
    """Names in ``minidl.__all__`` of concrete subclasses of ``base``."""
    names = []
    for name in md.__all__:
        obj = getattr(md, name)
        # abstract bases (Activation, Model) do not override forward, LayerList's refuses (a container): skipped
        if (isinstance(obj, type) and issubclass(obj, base) and obj is not base and obj is not md.LayerList
                and getattr(obj, "forward", None) is not getattr(base, "forward", None)):
            names.append(name)
    return sorted(names)


# ------------------------------------------------------------------------------ input generation
def make_array(draw: Any, shape: tuple[int, ...], dtype: Any, *, specials: bool) -> tuple[np.ndarray, str]:
    """An array of ``shape`` and ``dtype``; ``kind`` says what is special about its values."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.uniform(-3, 3, shape)
    kind = "moderate"
    if specials and values.size:
        kind = draw(st.sampled_from(["moderate", "moderate", "nan_inf", "huge", "subnormal"]))
        index = tuple(int(rng.integers(0, s)) for s in shape)
        if kind == "nan_inf":
            values[index] = draw(st.sampled_from(SPECIALS))
        elif kind == "huge":
            values[index] = draw(st.sampled_from([1e300, -1e300, 1e30, 6e4]))
        elif kind == "subnormal":
            values[index] = 5e-324
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            array = values.astype(dtype)
        if kind == "huge" and np.isinf(array).any():
            kind = "nan_inf"  # the huge value did not fit this dtype
    elif dtype.kind == "c":
        array = (values + 1j * values).astype(dtype)
    elif dtype.kind == "b":
        array = values > 0
    elif dtype.kind in "iu":
        array = np.clip(np.nan_to_num(values), -100, 100).astype(dtype)
    elif dtype.kind == "O":
        array = values.astype(object)
    else:
        array = values.astype(str)
    return array, kind


def draw_input(draw: Any, spec_shape: tuple[int, ...], dtype: Any) -> tuple[Any, str]:
    """A layer input: mostly valid-shaped arrays of the layer's dtype, else anything."""
    choice = draw(st.sampled_from(["valid"] * 5 + ["dtype"] * 2 + ["shape"] * 2 + ["odd"]))
    if choice == "odd":
        return draw(st.sampled_from(ODD_INPUTS)), "odd"
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4))) if choice == "shape" else spec_shape
    if choice == "dtype":
        dtype = draw(st.sampled_from(ALL_DTYPES))
    array, kind = make_array(draw, shape, dtype, specials=True)
    return array, kind if choice == "valid" and np.dtype(dtype) == np.dtype(array.dtype) else choice + kind


# ------------------------------------------------------------------------------ state snapshots
def snapshot(layer: md.Layer) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, p in layer.named_parameters():
        state[f"{name}.data"] = (p.data.dtype, p.data.shape, p.data.tobytes())
        state[f"{name}.grad"] = (p.grad.dtype, p.grad.shape, p.grad.tobytes())
    for name, buffer in layer.named_buffers():
        state[f"{name}(buffer)"] = None if buffer is None else (buffer.dtype, buffer.shape, buffer.tobytes())
    for name, generator in layer.named_generators():
        state[f"{name}(generator)"] = repr(generator.bit_generator.state)
    return state


def changed(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    return [key for key in before if before[key] != after.get(key)] + [k for k in after if k not in before]


def params_only(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k.endswith((".data", ".grad"))}


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        if a.dtype.kind == "O":  # the copy holds the same objects
            return all(p is q for p, q in zip(a.ravel(), b.ravel(), strict=True))
        return a.tobytes() == b.tobytes()
    return True


def check_refusal(error: BaseException, who: str, before: dict[str, Any], layer: md.Layer | None,
                  x: Any, x_copy: Any, call: str) -> None:
    if not isinstance(error, md.MinidlError):
        pytest.fail(f"{who}.{call} raised an undocumented {type(error).__module__}.{type(error).__name__}: "
                    f"{error}")
    assert str(error), f"{who}.{call} raised {type(error).__name__} with an empty message"
    assert who in str(error), f"{who}.{call}: the message does not name the layer: {error}"
    if layer is not None:
        diff = changed(before, snapshot(layer))
        assert not diff, f"{who}.{call} raised {type(error).__name__} but changed {diff}"
    assert same_value(x, x_copy), f"{who}.{call} modified its input"


def tolerance(dtype: np.dtype) -> float:
    return {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}.get(np.dtype(dtype), 2e-2)


# ------------------------------------------------------------------------------ layer property
#: layers whose input is not floats (``Embedding``: integer indices); their input properties are in
#: their own test files (tests/test_layers_embedding.py)
INTEGER_INPUT = {"Embedding"}
#: layers whose input is always several arrays (a tuple): their refusals of bad inputs, NaN/inf included,
#: are tested in their own files (tests/test_transformer_decoder.py, tests/test_transformer_stacks.py,
#: tests/test_layers_distance.py, tests/test_layers_unpooling.py)
TUPLE_INPUT = {"TransformerDecoder", "TransformerDecoderLayer", "PairwiseDistance", "CosineSimilarity",
               "MaxUnpool1D", "MaxUnpool2D"}
LAYER_NAMES = [name for name in exported(md.Layer) if name not in INTEGER_INPUT | TUPLE_INPUT]


def test_every_exported_layer_is_covered() -> None:
    missing = [n for n in LAYER_NAMES if n not in LAYERS and guessed_spec(getattr(md, n)) is None]
    assert not missing, f"add rows for {missing} to LAYERS in tests/test_validation_properties.py"
    assert {"Dense", "ReLU", "Tanh", "Sequential"} <= set(LAYER_NAMES)


# inf inputs propagate as NumPy computes them (docs/checkpoints.md), with its RuntimeWarnings (inf - inf,
# inf * 0 in Softmax, GELU, SiLU, ...): expected here, where such inputs are drawn on purpose
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", LAYER_NAMES)
@SETTINGS
@given(data=st.data())
def test_layer_computes_correctly_or_refuses_cleanly(name: str, data: Any) -> None:
    draw = data.draw
    spec = LAYERS.get(name) or guessed_spec(getattr(md, name))
    assert spec is not None
    layer_dtype = draw(st.sampled_from(FLOATS))
    layer = spec.build(layer_dtype)
    who = type(layer).__name__
    layer.train(draw(st.booleans()))
    batch = draw(st.integers(spec.min_batch, 3))
    x, kind = draw_input(draw, spec.shape(batch, draw), layer_dtype)
    x_copy = x.copy() if isinstance(x, np.ndarray) else x

    before = snapshot(layer)
    try:
        y = layer(x)
    except Exception as error:
        if not isinstance(error, md.MinidlError) and (
            (x is RAGGED and gap(name, "ragged-list"))
            or (isinstance(x, np.ndarray) and x.size == 0 and gap(name, "empty"))
            or (isinstance(x, np.ndarray) and x.dtype == np.float16 and gap(name, "float16"))
        ):
            assert not changed(before, snapshot(layer)), f"{who}.forward raised and changed its state"
            return  # a known gap, reproduced by test_known_gap_is_still_open
        check_refusal(error, who, before, layer, x, x_copy, "forward")
        return
    assert same_value(x, x_copy), f"{who}.forward modified its input"
    assert not changed(params_only(before), params_only(snapshot(layer))), f"{who}.forward changed parameters"
    x_arr = np.asarray(x)
    if isinstance(y, np.generic) and x_arr.ndim == 0:
        y = np.asarray(y)  # a NumPy scalar for a 0-D input: tolerated (NumPy's own ufuncs do the same)
    assert isinstance(y, np.ndarray), f"{who}.forward returned {type(y).__name__}"
    assert y.dtype == x_arr.dtype, f"{who}.forward: input dtype {x_arr.dtype} gave output dtype {y.dtype}"
    if "nan_inf" in kind:
        assert not holds_state(layer), (f"{who}.forward accepted NaN/inf in its input ({kind}, dtype "
                                        f"{x_arr.dtype}); layers with parameters or buffers must refuse it")
        if kind == "nan_inf":
            check_propagation(layer, who, spec, x_arr, y)
        return
    if kind not in ("moderate", "subnormal"):
        return  # accepted an input it may accept (e.g. float16 in an activation): nothing more to check
    assert np.isfinite(y).all(), f"{who}.forward gave non-finite output for finite input {x_arr.dtype}"
    if spec.reference is not None:
        expected = spec.reference(layer, x_arr.astype(np.float64))
        if expected is not None:
            assert y.shape == expected.shape, f"{who}.forward: shape {y.shape}, expected {expected.shape}"
            tol = tolerance(y.dtype)
            np.testing.assert_allclose(y.astype(np.float64), expected, rtol=tol, atol=tol,
                                       err_msg=f"{who}.forward disagrees with the reference")

    # backward with a valid gradient
    g, _ = make_array(draw, y.shape, y.dtype, specials=False)
    check_backward(layer, who, x_arr, g, "valid")


def holds_state(layer: md.Layer) -> bool:
    """Whether the layer has parameters or buffers (those must refuse NaN/inf inputs)."""
    return any(True for _ in layer.named_parameters()) or any(True for _ in layer.named_buffers())


def check_propagation(layer: md.Layer, who: str, spec: LayerSpec, x_arr: np.ndarray, y: np.ndarray) -> None:
    """A parameter-free layer that accepted NaN/inf: NaN/inf in the output where NumPy's math puts them."""
    expected = None
    if spec.reference is not None:
        with np.errstate(all="ignore"):
            expected = spec.reference(layer, x_arr.astype(np.float64))
    if expected is not None:
        assert y.shape == expected.shape, f"{who}.forward: shape {y.shape}, expected {expected.shape}"
        got = y.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected),
                                      err_msg=f"{who}.forward: NaN where the reference has none (or vice versa)")
        tol = tolerance(y.dtype)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol,
                                   err_msg=f"{who}.forward disagrees with the reference on NaN/inf input")
    elif y.shape == x_arr.shape:  # element-wise without a reference (Dropout): NaN stays NaN
        assert np.isnan(y[np.isnan(x_arr)]).all(), f"{who}.forward turned a NaN input into a number"


def check_backward(layer: md.Layer, who: str, x_arr: np.ndarray, g: Any, choice: str) -> None:
    """Backward after a successful forward: right dx or a clean refusal (only for a wrong gradient)."""
    g_copy = g.copy() if isinstance(g, np.ndarray) else g
    before = snapshot(layer)
    try:
        dx = layer.backward(g)
    except Exception as error:
        check_refusal(error, who, before, layer, g, g_copy, "backward")
        assert choice != "valid", f"{who}.backward refused a valid gradient: {error}"
        return
    assert same_value(g, g_copy), f"{who}.backward modified grad_output"
    assert choice in ("valid", "nan"), f"{who}.backward accepted a gradient of the wrong {choice}"
    if isinstance(dx, np.generic) and x_arr.ndim == 0:
        dx = np.asarray(dx)
    assert isinstance(dx, np.ndarray), f"{who}.backward returned {type(dx).__name__} for a {choice} gradient"
    assert dx.shape == x_arr.shape, f"{who}.backward: dx shape {dx.shape} for input {x_arr.shape} ({choice} grad)"
    assert dx.dtype == x_arr.dtype, (f"{who}.backward: dx dtype {dx.dtype} for input dtype {x_arr.dtype} "
                                     f"(grad_output {np.asarray(g).dtype}, {choice})")
    if choice == "valid":
        assert np.isfinite(dx).all(), f"{who}.backward gave non-finite dx for a finite gradient"
        for pname, p in layer.named_parameters():
            assert np.isfinite(p.grad).all(), f"{who}.backward gave a non-finite {pname}.grad"


@pytest.mark.parametrize("name", LAYER_NAMES)
@SETTINGS
@given(data=st.data())
def test_layer_backward_refuses_a_wrong_gradient_cleanly(name: str, data: Any) -> None:
    """After a valid forward, a gradient of the wrong shape or dtype, a non-array or NaN: either a
    clean refusal or (NaN, a castable dtype) a dx of the input's shape and dtype."""
    draw = data.draw
    spec = LAYERS.get(name) or guessed_spec(getattr(md, name))
    assert spec is not None
    layer_dtype = draw(st.sampled_from(FLOATS))
    layer = spec.build(layer_dtype)
    layer.train(draw(st.booleans()))
    x, _ = make_array(draw, spec.shape(draw(st.integers(max(spec.min_batch, 1), 3)), draw), layer_dtype,
                      specials=False)
    y = layer(x)
    choice = draw(st.sampled_from(["shape", "dtype", "odd", "nan"]))
    if choice == "odd":
        g: Any = draw(st.sampled_from(ODD_INPUTS))
    else:
        shape = y.shape if choice != "shape" else tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
        dtype = y.dtype if choice != "dtype" else draw(st.sampled_from(ALL_DTYPES))
        g, _ = make_array(draw, shape, dtype, specials=False)
        if choice == "nan" and g.size:
            g.flat[0] = np.nan
        elif g.shape == y.shape and g.dtype == y.dtype:
            choice = "valid"  # the draw happened to give the right shape and dtype
    check_backward(layer, type(layer).__name__, x, g, choice)


def test_backward_before_forward_is_refused() -> None:
    for name in LAYER_NAMES:
        spec = LAYERS.get(name) or guessed_spec(getattr(md, name))
        assert spec is not None
        layer = spec.build(np.float64)
        before = snapshot(layer)
        with pytest.raises(md.BackwardBeforeForwardError):
            layer.backward(np.ones((2, 3)))
        assert not changed(before, snapshot(layer))


# ------------------------------------------------------------------------------ losses
def ref_cross_entropy(loss: Any, z: np.ndarray, t: np.ndarray) -> float:
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    q = np.eye(z.shape[1])[t] if t.ndim == 1 else t.astype(np.float64)
    eps = loss.label_smoothing
    q = (1 - eps) * q + eps / z.shape[1]
    per = -(q * logp).sum(axis=1)
    return float(per.mean() if loss.reduction == "mean" else per.sum())


def ref_bce(loss: Any, z: np.ndarray, t: np.ndarray) -> float:
    per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return float(per.mean() if loss.reduction == "mean" else per.sum())


def ref_huber(loss: Any, p: np.ndarray, t: np.ndarray) -> float:
    d = np.abs(p - t)
    per = np.where(d <= loss.delta, 0.5 * d**2, loss.delta * (d - 0.5 * loss.delta))
    return float(per.mean() if loss.reduction == "mean" else per.sum())


@dataclass
class LossSpec:
    build: Callable[[], md.Loss]
    pred_shape: Callable[[Any], tuple[int, ...]]
    target: Callable[[Any, np.ndarray], Any]                       # (draw, y_pred) -> a valid target
    reference: Callable[[Any, np.ndarray, np.ndarray], float] | None = None


def float_target(draw: Any, y_pred: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(0, 1, y_pred.shape).astype(y_pred.dtype)


def class_target(draw: Any, y_pred: np.ndarray) -> Any:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, c = y_pred.shape
    if draw(st.booleans()):
        return rng.integers(0, c, n)
    q = rng.uniform(0, 1, (n, c))
    return q / q.sum(axis=1, keepdims=True)


def sign_target(draw: Any, y_pred: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.choice([-1.0, 1.0], y_pred.shape).astype(y_pred.dtype)


def label_target(draw: Any, y_pred: np.ndarray) -> Any:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.integers(0, y_pred.shape[1], y_pred.shape[0])


def ref_bce_probabilities(loss: Any, p: np.ndarray, t: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped at -100 as PyTorch
        per = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
    return float(per.mean() if loss.reduction == "mean" else per.sum())


def ref_nll(loss: Any, logp: np.ndarray, t: np.ndarray) -> float:
    per = -logp[np.arange(len(t)), t]
    return float(per.mean() if loss.reduction == "mean" else per.sum())


def ref_multi_margin(loss: Any, x: np.ndarray, t: np.ndarray) -> float:
    z = np.maximum(loss.margin - x[np.arange(len(t)), t][:, None] + x, 0)
    z[np.arange(len(t)), t] = 0
    per = (z**loss.p).sum(axis=1) / x.shape[1]
    return float(per.mean() if loss.reduction == "mean" else per.sum())


def pred_any(draw: Any) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))


LOSSES: dict[str, LossSpec] = {
    "MSELoss": LossSpec(md.MSELoss, pred_any, float_target, lambda loss, p, t: float(((p - t) ** 2).mean())),
    "HalfSquaredError": LossSpec(md.HalfSquaredError, pred_any, float_target,
                                 lambda loss, p, t: float(0.5 * ((p - t) ** 2).sum())),
    "L1Loss": LossSpec(lambda: get("L1Loss")(), pred_any, float_target,
                       lambda loss, p, t: float(np.abs(p - t).mean())),
    "HuberLoss": LossSpec(lambda: get("HuberLoss")(delta=0.5), pred_any, float_target, ref_huber),
    "SmoothL1Loss": LossSpec(lambda: get("SmoothL1Loss")(beta=0.5), pred_any, float_target,
                             lambda loss, p, t: float(np.where(np.abs(p - t) < 0.5, (p - t) ** 2, np.abs(p - t) - 0.25)
                                                      .mean())),
    "BCEWithLogitsLoss": LossSpec(lambda: get("BCEWithLogitsLoss")(), pred_any, float_target, ref_bce),
    "CrossEntropyLoss": LossSpec(lambda: get("CrossEntropyLoss")(label_smoothing=0.1),
                                 lambda d: (d(st.integers(1, 3)), d(st.integers(1, 4))), class_target,
                                 ref_cross_entropy),
    "NLLLoss": LossSpec(lambda: get("NLLLoss")(), lambda d: (d(st.integers(1, 3)), d(st.integers(1, 4))),
                        label_target, ref_nll),
    "BCELoss": LossSpec(lambda: get("BCELoss")(), pred_any, float_target, ref_bce_probabilities),
    "PoissonNLLLoss": LossSpec(lambda: get("PoissonNLLLoss")(), pred_any, float_target,
                               lambda loss, p, t: float((np.exp(p) - t * p).mean())),
    "SoftMarginLoss": LossSpec(lambda: get("SoftMarginLoss")(), pred_any, sign_target,
                               lambda loss, p, t: float(np.logaddexp(0, -t * p).mean())),
    "MultiMarginLoss": LossSpec(lambda: get("MultiMarginLoss")(2, 0.5),
                                lambda d: (d(st.integers(1, 3)), d(st.integers(1, 4))), label_target,
                                ref_multi_margin),
    "HingeEmbeddingLoss": LossSpec(lambda: get("HingeEmbeddingLoss")(0.5), pred_any, sign_target,
                                   lambda loss, p, t: float(np.where(t == 1, p, np.maximum(0.5 - p, 0)).mean())),
    "MultiLabelSoftMarginLoss": LossSpec(lambda: get("MultiLabelSoftMarginLoss")(),
                                         lambda d: (d(st.integers(1, 3)), d(st.integers(1, 4))), float_target,
                                         lambda loss, p, t: float((t * np.logaddexp(0, -p)
                                                                   + (1 - t) * np.logaddexp(0, p)).mean())),
    "KLDivLoss": LossSpec(lambda: get("KLDivLoss")(), pred_any, float_target,
                          lambda loss, p, t: float(np.where(t > 0, t * (np.log(np.where(t > 0, t, 1)) - p), 0).mean())),
}
#: losses whose y_pred is a tuple of arrays (several_predictions): tested in tests/test_losses_pairs.py,
#: tests/test_losses_gaussian_nll.py and tests/test_losses_triplet.py
PAIR_LOSSES = {"MarginRankingLoss", "CosineEmbeddingLoss", "GaussianNLLLoss", "TripletMarginLoss"}
LOSS_NAMES = [name for name in exported(md.Loss) if name not in PAIR_LOSSES]


def wrong_target(draw: Any, y_pred: np.ndarray, valid: Any) -> Any:
    """A target that is wrong in one way (or, for some choices, possibly still valid)."""
    choice = draw(st.sampled_from(["shape", "dtype", "nan", "range", "odd", "label"]))
    if choice == "odd":
        return draw(st.sampled_from(ODD_INPUTS))
    if choice == "shape":
        return make_array(draw, tuple(draw(st.lists(st.integers(0, 4), max_size=3))), np.float64,
                          specials=False)[0]
    valid = np.array(valid)
    if choice == "dtype":
        return make_array(draw, valid.shape, draw(st.sampled_from(ALL_DTYPES)), specials=False)[0]
    if choice == "nan" and valid.size and valid.dtype.kind == "f":
        valid.flat[0] = draw(st.sampled_from(SPECIALS))
    elif choice == "range" and valid.size:
        valid = valid.astype(np.float64) if valid.dtype.kind != "f" else valid
        valid.flat[0] = draw(st.sampled_from([-1.0, 1.5, 1e9]))
    elif choice == "label" and valid.size:
        valid = np.array(valid).astype(np.int64) if valid.dtype.kind != "f" else valid
        if valid.dtype.kind in "iu":
            valid.flat[0] = draw(st.sampled_from([-1, y_pred.shape[-1], 10**9]))
    return valid


def test_every_exported_loss_is_covered() -> None:
    missing = [n for n in LOSS_NAMES if n not in LOSSES]
    assert not missing, f"add rows for {missing} to LOSSES in tests/test_validation_properties.py"


@pytest.mark.parametrize("name", LOSS_NAMES)
@SETTINGS
@given(data=st.data())
def test_loss_computes_correctly_or_refuses_cleanly(name: str, data: Any) -> None:
    draw = data.draw
    spec = LOSSES[name]
    loss = spec.build()
    who = type(loss).__name__
    dtype = draw(st.sampled_from(FLOATS))
    pred_choice = draw(st.sampled_from(["valid"] * 5 + ["dtype", "shape", "odd"]))
    shape = spec.pred_shape(draw)
    if pred_choice == "odd":
        y_pred: Any = draw(st.sampled_from(ODD_INPUTS))
        kind = "odd"
        target: Any = np.zeros(3)
    else:
        if pred_choice == "shape":
            shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
        if pred_choice == "dtype":
            dtype = draw(st.sampled_from(ALL_DTYPES))
        y_pred, kind = make_array(draw, shape, dtype, specials=True)
        kind = kind if pred_choice == "valid" else pred_choice + kind
        target = spec.target(draw, y_pred) if pred_choice == "valid" else np.zeros(shape)
    target_ok = draw(st.integers(0, 3)) > 0
    if not target_ok and isinstance(y_pred, np.ndarray):
        target = wrong_target(draw, y_pred, target)
    copies = [v.copy() if isinstance(v, np.ndarray) else v for v in (y_pred, target)]

    try:
        value = loss(y_pred, target)
    except Exception as error:
        if not isinstance(error, md.MinidlError) and (
            (target is RAGGED and gap(name, "ragged-target"))
            or (isinstance(y_pred, np.ndarray) and y_pred.size == 0 and gap(name, "empty"))
        ):
            return  # a known gap
        check_refusal(error, who, {}, None, y_pred, copies[0], "forward")
        assert same_value(target, copies[1]), f"{who}.forward modified y_true"
        return
    assert same_value(y_pred, copies[0]) and same_value(target, copies[1]), f"{who}.forward modified an input"
    assert type(value) is float, f"{who}.forward returned {type(value).__name__}, not float"
    assert "nan_inf" not in kind, f"{who}.forward accepted NaN/inf in y_pred ({kind})"
    target_arr = np.asarray(target)
    if target_arr.dtype.kind == "f":
        assert np.isfinite(target_arr).all(), f"{who}.forward accepted NaN/inf in y_true"
    grad = loss.backward()
    pred = np.asarray(y_pred)
    if isinstance(grad, np.generic) and pred.ndim == 0:
        grad = np.asarray(grad)  # a NumPy scalar for a 0-D y_pred: tolerated
    assert isinstance(grad, np.ndarray) and grad.shape == pred.shape and grad.dtype == pred.dtype, (
        f"{who}.backward: gradient {getattr(grad, 'shape', None)} {getattr(grad, 'dtype', None)} for y_pred "
        f"{pred.shape} {pred.dtype}")
    if kind not in ("moderate", "subnormal") or not target_ok:
        return
    assert math.isfinite(value), f"{who}.forward gave {value} for finite inputs"
    assert np.isfinite(grad).all(), f"{who}.backward gave a non-finite gradient for finite inputs"
    if spec.reference is not None:
        expected = spec.reference(loss, pred.astype(np.float64), target_arr)
        tol = tolerance(pred.dtype)
        assert math.isclose(value, expected, rel_tol=tol, abs_tol=tol), f"{who}: {value} != reference {expected}"


def test_losses_refuse_empty_predictions_and_ragged_targets() -> None:
    """Documented policy: an empty y_pred is a ShapeError ("empty prediction") for every loss, and a
    ragged y_true a DTypeError naming the loss."""
    for name in LOSS_NAMES:
        loss = LOSSES[name].build()
        for shape in ((0, 2), (2, 0), (0,)):
            with pytest.raises(md.ShapeError, match=f"{name}: .*empty prediction"):
                loss(np.zeros(shape), np.zeros(shape, dtype=np.int64 if name == "CrossEntropyLoss" else float))
        with pytest.raises(md.DTypeError, match=f"{name}: could not make a numpy array of y_true"):
            loss(np.zeros((2, 2)), RAGGED)


def test_loss_backward_before_forward_is_refused() -> None:
    for name in LOSS_NAMES:
        with pytest.raises(md.BackwardBeforeForwardError):
            LOSSES[name].build().backward()


# ------------------------------------------------------------------------------ optimizers
OPTIMIZER_NAMES = sorted(
    n for n in md.__all__
    if isinstance(getattr(md, n), type) and issubclass(getattr(md, n), md.Optimizer) and n != "Optimizer"
)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@pytest.mark.parametrize(
    ("args", "error", "needle"),
    [
        ({"params": []}, ValueError, "empty"),
        ({"params": [np.ones(3)]}, TypeError, "params[0]"),
        ({"params": "abc"}, TypeError, "Parameter"),
        ({"params": 3}, TypeError, "iterable"),
        ({"lr": -0.1}, ValueError, "lr"),  # (0 is accepted, as PyTorch: test_settings_review21)
        ({"lr": math.nan}, ValueError, "lr"),
        ({"lr": math.inf}, ValueError, "lr"),
        ({"lr": "0.1"}, (ValueError, TypeError), "lr"),
        ({"lr": None}, (ValueError, TypeError), "lr"),
    ],
)
def test_optimizer_arguments_are_validated(name: str, args: dict[str, Any], error: Any, needle: str) -> None:
    cls = getattr(md, name)
    kwargs: dict[str, Any] = {"params": md.Dense(2, 2, rng=0).parameters(), "lr": 0.1}
    if name == "SGD" and "lr" not in args:
        kwargs["momentum"] = 0.9
    kwargs.update(args)
    params = kwargs.pop("params")
    with pytest.raises(error) as info:
        cls(params, **kwargs)
    assert needle in str(info.value) and name in str(info.value), str(info.value)


# ------------------------------------------------------------------------------ unit tests of the helpers
def test_as_array_refuses_ragged_lists_and_non_arrays() -> None:
    from minidl.validation import as_array, as_float_array

    with pytest.raises(md.DTypeError, match=r"Foo: could not make a numpy array of y_true \(list\)"):
        as_array(RAGGED, "Foo", "y_true")
    with pytest.raises(md.DTypeError, match="Foo: expected input as a numpy array, got dict"):
        as_float_array({"a": 1}, "Foo")
    x = np.ones(3)
    assert as_array(x, "Foo") is x and as_float_array(x, "Foo") is x
    assert as_float_array([[1.0, 2.0]], "Foo").shape == (1, 2)


class _Frame:
    """A stand-in for a pandas DataFrame: it converts itself to an array through __array__."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.values


class _Refusing:
    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        raise RuntimeError("cannot convert a tensor that requires grad")


def test_objects_with___array___are_converted_or_refused_clearly() -> None:
    from minidl.validation import as_array

    values = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(as_array(_Frame(values), "Foo"), values)
    layer = md.Dense(3, 2, rng=0)
    np.testing.assert_allclose(layer(_Frame(values)), layer(values), rtol=0)
    with pytest.raises(md.DTypeError, match=r"Foo: could not make a numpy array of input \(_Refusing\): cannot"):
        as_array(_Refusing(), "Foo")
    with pytest.raises(md.DTypeError, match="expected a floating-point input, got dtype object"):
        layer(_Frame(np.array([[None, 1, 2]], dtype=object)))


def test_check_grad_output() -> None:
    from minidl.validation import check_grad_output

    g = np.ones((2, 3))
    assert check_grad_output(g, "L.backward", (2, 3), np.dtype(np.float64)) is g
    with pytest.raises(md.DTypeError, match=r"L\.backward: expected grad_output as a numpy array, got list"):
        check_grad_output([[1.0]], "L.backward", (1, 1))
    with pytest.raises(md.ShapeError, match=r"expected grad_output of shape \(2, 2\).*got \(2, 3\)"):
        check_grad_output(g, "L.backward", (2, 2))
    with pytest.raises(md.DTypeError, match=r"expected grad_output of dtype float32.*got float64"):
        check_grad_output(g, "L.backward", (2, 3), np.dtype(np.float32))
    g[0, 0] = np.nan
    check_grad_output(g, "L.backward", (2, 3))
    with pytest.raises(md.NonFiniteError, match="grad_output"):
        check_grad_output(g, "L.backward", (2, 3), finite=True)


# ------------------------------------------------------------------------------ known gaps, reproduced
def reproduce(name: str, category: str) -> None:
    """Assert the behaviour the gap lacks; fails (xfail) while the gap is open."""
    if name in OPTIMIZER_NAMES:
        cls = getattr(md, name)
        params = md.Dense(2, 2, rng=0).parameters()
        if category == "numpy-lr":
            assert cls(params, lr=np.float32(0.1)).lr == pytest.approx(0.1)
        elif category == "hyper-type":
            other = next(k for k in inspect.signature(cls).parameters if k not in ("self", "params", "lr"))
            for bad in ("0.9", None):
                with pytest.raises((ValueError, TypeError)) as info:
                    cls(params, lr=0.1, **{other: bad})
                assert name in str(info.value) and other in str(info.value), str(info.value)
            opt = cls(params, lr=0.1)
            with pytest.raises((ValueError, TypeError)) as info:
                opt.lr = "0.1"
            assert name in str(info.value) and "lr" in str(info.value), str(info.value)
        else:  # pragma: no cover
            raise AssertionError(category)
        return
    if name in LOSSES:
        loss = LOSSES[name].build()
        if category == "ragged-target":
            with pytest.raises(md.MinidlError):
                loss(np.zeros((2, 2)), RAGGED)
        elif category == "empty":
            try:
                value = loss(np.zeros((0, 2)), np.zeros((0, 2)))
            except md.MinidlError:
                return
            assert isinstance(value, float) and loss.backward().shape == (0, 2)
        else:  # pragma: no cover
            raise AssertionError(category)
        return
    layer_spec = LAYERS.get(name) or guessed_spec(getattr(md, name))
    assert layer_spec is not None
    layer = layer_spec.build(np.float64).train()
    x = np.random.default_rng(0).uniform(-1, 1, layer_spec.example)
    if category == "ragged-list":
        with pytest.raises(md.MinidlError):
            layer(RAGGED)  # type: ignore[arg-type]
    elif category == "empty":
        for shape in ((0, *layer_spec.example[1:]), (*layer_spec.example[:-1], 0)):
            try:
                y = layer(np.zeros(shape))
            except md.MinidlError:
                continue
            # an empty batch gives an empty output; an empty spatial axis may not (Conv2D's padding)
            assert isinstance(y, np.ndarray) and (y.size == 0 or shape[0] > 0)
    elif category == "float16":
        try:
            y = layer(x.astype(np.float16))
        except md.MinidlError:
            return
        assert isinstance(y, np.ndarray) and y.dtype == np.float16
    elif category == "grad-type":
        y = layer(x)
        wrong: list[Any] = [y.tolist(), None, y.astype(np.complex128), y.astype(np.float32), y.astype(str)]
        for g in wrong:
            with pytest.raises(md.MinidlError):
                layer.backward(g)
    else:  # pragma: no cover
        raise AssertionError(category)


@pytest.mark.parametrize(
    ("name", "category"),
    [pytest.param(name, category, id=f"{name}-{category}",
                  marks=pytest.mark.xfail(strict=True, reason=reason))
     for (name, category), reason in KNOWN_GAPS.items() if name in md.__all__],
)
def test_known_gap_is_still_open(name: str, category: str) -> None:
    reproduce(name, category)


# The categories above, once closed, stay closed for every class they apply to (new exports included).
LAYER_CATEGORIES = ("grad-type", "ragged-list", "empty", "float16")
LOSS_CATEGORIES = ("ragged-target", "empty")
OPTIMIZER_CATEGORIES = ("numpy-lr", "hyper-type")
CLOSED = [
    (name, category)
    for names, categories in ((LAYER_NAMES, LAYER_CATEGORIES), (LOSS_NAMES, LOSS_CATEGORIES),
                              (OPTIMIZER_NAMES, OPTIMIZER_CATEGORIES))
    for name in names for category in categories if (name, category) not in KNOWN_GAPS
]


@pytest.mark.parametrize(("name", "category"), CLOSED, ids=[f"{n}-{c}" for n, c in CLOSED])
def test_closed_gap_stays_closed(name: str, category: str) -> None:
    reproduce(name, category)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_optimizer_hyper_parameter_types(name: str) -> None:
    """NumPy scalars are numbers (stored as Python floats); strings, None and bools where a number is
    needed raise TypeError naming the optimizer and the argument; flags stay bools."""
    cls = getattr(md, name)
    params = md.Dense(2, 2, rng=0).parameters()
    signature = inspect.signature(cls).parameters
    numbers = [k for k, p in signature.items()
               if k != "lr" and isinstance(p.default, (int, float)) and not isinstance(p.default, bool)]
    pairs = [k for k, p in signature.items() if isinstance(p.default, tuple)]  # betas, Rprop's etas and step_sizes
    assert numbers or pairs, name
    opt = cls(params, lr=np.float32(0.25), **{k: np.float32(0.5) for k in numbers},
              **{k: tuple(np.float32(v) for v in signature[k].default) for k in pairs})
    assert all(type(v) is (bool if k in opt.flags else float) for k, v in opt.hyper.items()), opt.hyper
    assert opt.hyper["lr"] == 0.25
    opt.lr = np.float64(0.125)
    assert type(opt.hyper["lr"]) is float and opt.lr == 0.125
    for key in ["lr", *numbers, *pairs]:
        for bad in ("0.9", None, True, *([] if key in pairs else [np.ones(2)])):
            with pytest.raises(TypeError, match=f"{name}: {key}"):
                cls(params, **{"lr": 0.1, key: bad})
    for bad in ("0.1", None, False):
        with pytest.raises(TypeError, match=f"{name}: lr"):
            opt.lr = bad
    assert opt.lr == 0.125


def test_nonfinite_policy() -> None:
    """Documented in docs/checkpoints.md: layers with parameters (the model's entry) refuse NaN/inf;
    parameter-free layers let it through, NaN in giving NaN out where the math says so."""
    propagating = {"AdaptiveAvgPool1D", "AdaptiveAvgPool2D", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D",
                   "AlphaDropout", "AvgPool1D", "AvgPool2D", "CELU", "FeatureAlphaDropout",
                   "Dropout", "Dropout1d", "Dropout2d", "ELU", "Flatten", "GELU", "GLU", "GlobalAvgPool1D",
                   "GlobalAvgPool2D", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSigmoid",
                   "LogSoftmax", "MaxPool1D", "MaxPool2D", "Mish", "RReLU", "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid",
                   "Softmax", "Softplus", "Softsign", "Tanh", "Upsample", "Hardshrink", "Softshrink", "Tanhshrink",
                   "Softmin", "Unflatten", "Identity", "PixelShuffle", "PixelUnshuffle", "Unfold", "Fold",
                   *(name for name, *_ in PADDINGS)}
    refusing = {"BatchNorm1d", "BatchNorm2d", "Bidirectional", "Conv1D", "Conv2D", "ConvTranspose1D", "ConvTranspose2D",
                "Dense", "GRU",
                "GroupNorm", "InstanceNorm2d", "LSTM", "LayerNorm", "LocalResponseNorm", "MultiHeadAttention", "PReLU",
                "RNN", "Residual",
                "Sequential", "Stack", "TransformerEncoder", "TransformerEncoderLayer"}
    assert propagating | refusing == set(LAYER_NAMES), (
        "a new exported layer: add it to one of the two sets here, following the NaN/inf policy in "
        f"docs/checkpoints.md ({sorted(set(LAYER_NAMES) - propagating - refusing)})")
    for name in sorted(propagating | refusing):
        spec = LAYERS[name]
        layer = spec.build(np.float64).train()
        x = np.random.default_rng(0).uniform(-1, 1, spec.example)
        x[(0,) * x.ndim] = np.nan
        if name in refusing:
            with pytest.raises(md.NonFiniteError, match="NaN/inf"):
                layer(x)
            continue
        y = layer(x)
        assert isinstance(y, np.ndarray) and y.dtype == x.dtype, name
        assert np.isnan(y[(0,) * y.ndim]), f"{name}: the NaN did not reach the output"
        if name in ("Softmax", "LogSoftmax", "Softmin"):  # the NaN's row is NaN, the others are untouched
            assert np.isnan(y[0]).all() and np.isfinite(y[1:]).all()
        elif name == "Upsample":  # the NaN pixel becomes a 2 x 3 block of NaN
            assert np.isnan(y).sum() == 6 and np.isnan(y[0, 0, :2, :3]).all()
        elif name in ("CircularPad1D", "CircularPad2D"):  # the first position is read again by the wrap
            assert np.isnan(y).sum() == 2 ** (x.ndim - 2) and np.isnan(y[0, 0, ..., -1]).any()
        elif name not in ("MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"):
            assert np.isfinite(y).sum() == y.size - 1, f"{name}: one NaN in should give one NaN out"
        dx = layer.backward(np.ones_like(y))
        assert dx.shape == x.shape and dx.dtype == x.dtype


def test_dropout_float16_flatten_and_softmax_empty() -> None:
    x = np.ones((50, 40), dtype=np.float16)
    y = md.Dropout(0.25, rng=0)(x)
    assert y.dtype == np.float16 and set(np.unique(y).tolist()) <= {0.0, np.float16(1 / 0.75)}
    assert 0.15 < float((y == 0).mean()) < 0.35
    flatten = md.Flatten()
    assert flatten(np.zeros((0, 2, 3))).shape == (0, 6)
    assert flatten.backward(np.zeros((0, 6))).shape == (0, 2, 3)
    softmax = md.Softmax()
    assert softmax(np.zeros((2, 0))).shape == (2, 0)
    assert softmax.backward(np.zeros((2, 0))).shape == (2, 0)


@pytest.mark.parametrize("layout", ["C", "channel-major", "Fortran", "reversed", "strided"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_check_finite_in_every_memory_layout(layout: str, dtype: type) -> None:
    # any one-block layout takes the dot-product check in memory order; others are searched (float16: np.isfinite)
    from minidl.validation import check_finite

    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 4, 5, 6)).astype(dtype)
    make = {
        "C": lambda a: a.copy(),
        "channel-major": lambda a: np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3),
        "Fortran": lambda a: np.asfortranarray(a),
        "reversed": lambda a: np.ascontiguousarray(a[:, ::-1])[:, ::-1],
        "strided": lambda a: np.repeat(a, 2, axis=3)[..., ::2],
    }[layout]
    check_finite(make(base), "layer")  # finite: passes
    huge = np.sign(base) * (np.finfo(dtype).max / 2)  # finite, but the sum of squares overflows: passes
    check_finite(make(huge), "layer")
    for index, value in (((2, 1, 4, 5), np.nan), ((0, 3, 0, 2), -np.inf)):
        bad = base.copy()
        bad[index] = value
        with pytest.raises(md.NonFiniteError, match=rf"the first at index \({', '.join(map(str, index))}\)"):
            check_finite(make(bad), "layer")


def test_check_finite_takes_np_isfinite_for_float16_and_one_dot_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    # float16 has no BLAS dot (10x slower than np.isfinite) and its sum of squares overflows at 65504, which
    # sent every float16 input with a value above 256 to the full search; float32/float64 keep the one dot
    from minidl import validation

    calls = []
    vdot = np.vdot
    monkeypatch.setattr(validation.np, "vdot", lambda a, b: calls.append(a.dtype) or vdot(a, b))
    x = np.random.default_rng(0).normal(scale=300.0, size=(4, 6, 5))
    for dtype, dots in [(np.float16, 0), (np.float32, 1), (np.float64, 1)]:
        calls.clear()
        validation.check_finite(x.astype(dtype), "layer")
        validation.check_finite(np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2).astype(dtype, order="K"),
                                "layer")
        assert len(calls) == 2 * dots, (dtype, calls)
    bad = x.astype(np.float16)
    bad[3, 1, 4] = np.inf
    with pytest.raises(md.NonFiniteError, match=r"layer: input holds 1 NaN/inf value\(s\), the first at index "
                                                r"\(3, 1, 4\) \(inf\)"):
        validation.check_finite(bad, "layer")


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # (np.matrix is pending deprecation)
def test_every_layer_computes_an_np_matrix_as_its_plain_array() -> None:
    """An np.matrix's ``*`` is a matrix product and its reductions keep two axes: 22 of these 36 layers crashed
    with a bare NumPy error in forward or backward (RReLU, Dropout and AlphaDropout in training; ReLU, Softmax,
    LayerNorm, PReLU, ... in both modes), GLU gave wrong values, 6 more returned an np.matrix.  ``as_array``
    hands every layer the plain array it holds: the output and gradient of that array, a plain ndarray."""
    names = [name for name in LAYER_NAMES if len((LAYERS.get(name) or guessed_spec(getattr(md, name))).example) == 2]
    assert {"RReLU", "LeakyReLU", "Dropout", "AlphaDropout", "Softmax", "LayerNorm", "Dense"} <= set(names)
    for name in names:
        spec = LAYERS.get(name) or guessed_spec(getattr(md, name))
        x = np.random.default_rng(0).normal(size=spec.example)
        for training in (True, False):
            plain, matrix = spec.build(np.float64).train(training), spec.build(np.float64).train(training)
            y = matrix(np.asmatrix(x))
            assert type(y) is np.ndarray, name
            np.testing.assert_array_equal(y, plain(x), err_msg=name)
            g = np.random.default_rng(1).normal(size=y.shape)
            np.testing.assert_array_equal(matrix.backward(g), plain.backward(g), err_msg=name)


def test_check_finite_and_dense_accept_np_matrix_in_either_order() -> None:
    # np.vdot of two np.matrix objects is a 1x1 matrix, not a number: such inputs are searched instead
    import warnings

    from minidl.validation import check_finite

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # (np.matrix is pending deprecation)
        plain = np.arange(12.0).reshape(4, 3)
        for m in (np.asmatrix(plain), np.asmatrix(np.ascontiguousarray(plain.T)).T):  # C and Fortran order
            check_finite(m, "layer")
            np.testing.assert_allclose(md.Dense(3, 2, rng=0)(m), md.Dense(3, 2, rng=0)(plain))
            bad = m.copy(order="K")  # (the same layout)
            bad[1, 2] = np.nan
            with pytest.raises(md.NonFiniteError, match=r"the first at index \(1, 2\)"):
                check_finite(bad, "layer")
