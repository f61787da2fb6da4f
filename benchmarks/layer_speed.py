"""Forward + backward of single layers, minidl against PyTorch's CPU layer with the same weights and data.

The training-step benchmark (``train_step.py``) covers Dense/Conv2D/pooling networks; this one
covers the other layers one at a time, in the sizes a small model uses them: the recurrent layers
(back-propagation through time), the transposed convolution and upsampling of a decoder, 1-D
convolution and pooling, adaptive average pooling, the group/instance/local-response normalisations,
self-attention and the embedding lookup.  A step is ``zero_grad``, a forward and a backward with a fixed
upstream gradient (minidl's ``backward``, which also returns ``dx``; torch's ``autograd.backward`` on the output,
with the input requiring a gradient where it is a float array).  The two are timed alternately
(``train_step.time_alternately``: A B / B A rounds, the median of the per-round ratios, over several
runs) in this process.  Without PyTorch the minidl times alone are printed.

Usage::

    python benchmarks/layer_speed.py [--quick] [--only LSTM] [--threads 1] [--dtype float64]
    /work/torchvenv/bin/python benchmarks/layer_speed.py      # with the PyTorch column
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl as md
from benchmarks.train_step import blas_limits, environment, estimate_step, spread, time_alternately

try:  # optional: PyTorch is never a dependency of minidl
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

Step = Callable[[], object]


@dataclass(frozen=True)
class Case:
    """One row: a minidl layer, an input, and how to build the same layer in PyTorch."""

    label: str
    layer: md.Layer
    x: np.ndarray
    to_torch: Callable[[md.Layer], Any]  # the torch module with the layer's weights


def minidl_step(layer: md.Layer, x: np.ndarray, g: np.ndarray) -> Step:
    def step() -> object:
        layer.zero_grad()
        layer(x)
        return layer.backward(g)

    return step


def torch_step(module: Any, x: np.ndarray, g: np.ndarray) -> Step:
    floating = x.dtype.kind == "f"
    tx = torch.from_numpy(x).requires_grad_(floating) if floating else torch.from_numpy(x.astype(np.int64))
    tg = torch.from_numpy(g)

    def step() -> object:
        module.zero_grad(set_to_none=False)
        if floating:
            tx.grad = None
        out = module(tx)
        out = out[0] if isinstance(out, tuple) else out  # the recurrent modules return (output, state)
        out.backward(tg)
        return tx.grad

    return step


def _tensor(a: np.ndarray) -> Any:
    return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)))


def _recurrent(kind: str) -> Callable[[md.Layer], Any]:
    def build(layer: md.Layer) -> Any:
        Wx, Wh = layer.W_x.data, layer.W_h.data  # type: ignore[attr-defined]
        module = getattr(torch.nn, kind)(layer.input_size, layer.hidden_size, batch_first=True)  # type: ignore[attr-defined]
        module = module.to(torch.float64 if Wx.dtype == np.float64 else torch.float32)
        module.weight_ih_l0 = _tensor(Wx[1:].T)
        module.bias_ih_l0 = _tensor(Wx[0])
        if kind == "GRU":
            module.weight_hh_l0, module.bias_hh_l0 = _tensor(Wh[1:].T), _tensor(Wh[0])
        else:
            module.weight_hh_l0, module.bias_hh_l0 = _tensor(Wh.T), _tensor(np.zeros_like(Wx[0]))
        return module

    return build


def _conv_transpose(layer: md.Layer) -> Any:
    module = torch.nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size,  # type: ignore[attr-defined]
                                      layer.stride, layer.padding, layer.output_padding)  # type: ignore[attr-defined]
    module.weight = _tensor(layer.kernel)  # type: ignore[attr-defined]
    module.bias = _tensor(layer.bias_row)  # type: ignore[attr-defined]
    return module


def _conv_transpose_1d(layer: md.Layer) -> Any:
    module = torch.nn.ConvTranspose1d(layer.in_channels, layer.out_channels, layer.kernel_size,  # type: ignore[attr-defined]
                                      layer.stride, layer.padding, layer.output_padding)  # type: ignore[attr-defined]
    module.weight = _tensor(layer.kernel)  # type: ignore[attr-defined]
    module.bias = _tensor(layer.bias_row)  # type: ignore[attr-defined]
    return module


def _conv1d(layer: md.Layer) -> Any:
    module = torch.nn.Conv1d(layer.in_channels, layer.out_channels, layer.kernel_size,  # type: ignore[attr-defined]
                             layer.stride, layer.padding)  # type: ignore[attr-defined]
    module.weight = _tensor(layer.kernel)  # type: ignore[attr-defined]
    module.bias = _tensor(layer.bias_row)  # type: ignore[attr-defined]
    return module


def _group_norm(layer: md.Layer) -> Any:
    module = torch.nn.GroupNorm(layer.num_groups, layer.num_channels)  # type: ignore[attr-defined]
    module.weight, module.bias = _tensor(layer.gamma.data), _tensor(layer.beta.data)  # type: ignore[attr-defined]
    return module


def _embedding(layer: md.Layer) -> Any:
    module = torch.nn.Embedding(layer.num_embeddings, layer.embedding_dim)  # type: ignore[attr-defined]
    module.weight = _tensor(layer.W.data)  # type: ignore[attr-defined]
    return module


def _attention(layer: md.Layer) -> Any:
    """torch's MultiheadAttention with the layer's projections, called as self-attention."""
    module = torch.nn.MultiheadAttention(layer.embed_dim, layer.num_heads, batch_first=True)  # type: ignore[attr-defined]
    module = module.to(torch.float64 if layer.W_o.data.dtype == np.float64 else torch.float32)  # type: ignore[attr-defined]
    module.in_proj_weight = _tensor(layer.in_proj_weight)  # type: ignore[attr-defined]
    module.in_proj_bias = _tensor(layer.in_proj_bias)  # type: ignore[attr-defined]
    module.out_proj.weight = _tensor(layer.out_proj_weight)  # type: ignore[attr-defined]
    module.out_proj.bias = _tensor(layer.out_proj_bias)  # type: ignore[attr-defined]

    class SelfAttention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = module

        def forward(self, x: Any) -> Any:
            return self.attention(x, x, x, need_weights=False)[0]

    return SelfAttention()


def cases(dtype: type) -> list[Case]:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((32, 16, 14, 14)).astype(dtype)
    sequences = rng.standard_normal((32, 20, 64)).astype(dtype)
    signals = rng.standard_normal((32, 16, 256)).astype(dtype)
    same = lambda module: module  # noqa: E731 - no weights to copy
    return [
        Case("RNN(64 -> 128), N=32, T=20", md.RNN(64, 128, rng=0, dtype=dtype), sequences, _recurrent("RNN")),
        Case("LSTM(64 -> 128), N=32, T=20", md.LSTM(64, 128, rng=0, dtype=dtype), sequences, _recurrent("LSTM")),
        Case("GRU(64 -> 128), N=32, T=20", md.GRU(64, 128, rng=0, dtype=dtype), sequences, _recurrent("GRU")),
        Case("ConvTranspose2D(16 -> 8, k=4, s=2, p=1), 32x16x14x14",
             md.ConvTranspose2D(16, 8, 4, stride=2, padding=1, rng=0, dtype=dtype), images, _conv_transpose),
        Case("ConvTranspose1D(16 -> 8, k=4, s=2, p=1), 32x16x256",
             md.ConvTranspose1D(16, 8, 4, stride=2, padding=1, rng=0, dtype=dtype), signals, _conv_transpose_1d),
        Case("Conv1D(16 -> 32, k=5, p=2), 32x16x256", md.Conv1D(16, 32, 5, padding=2, rng=0, dtype=dtype), signals,
             _conv1d),
        Case("MaxPool1D(2), 32x16x256", md.MaxPool1D(2), signals, lambda layer: same(torch.nn.MaxPool1d(2))),
        Case("Upsample(2, nearest), 32x16x14x14", md.Upsample(2), images,
             lambda layer: same(torch.nn.Upsample(scale_factor=2))),
        Case("Upsample(2, bilinear), 32x16x14x14", md.Upsample(2, "bilinear"), images,
             lambda layer: same(torch.nn.Upsample(scale_factor=2, mode="bilinear"))),
        Case("AdaptiveAvgPool2D(7), 32x16x14x14", md.AdaptiveAvgPool2D(7), images,
             lambda layer: same(torch.nn.AdaptiveAvgPool2d(7))),
        Case("AdaptiveAvgPool2D(5), 32x16x14x14 (overlapping windows)", md.AdaptiveAvgPool2D(5), images,
             lambda layer: same(torch.nn.AdaptiveAvgPool2d(5))),
        Case("AdaptiveMaxPool2D(7), 32x16x14x14", md.AdaptiveMaxPool2D(7), images,
             lambda layer: same(torch.nn.AdaptiveMaxPool2d(7))),
        Case("AdaptiveMaxPool2D(5), 32x16x14x14 (overlapping windows)", md.AdaptiveMaxPool2D(5), images,
             lambda layer: same(torch.nn.AdaptiveMaxPool2d(5))),
        Case("ZeroPad2D(1), 32x16x14x14", md.ZeroPad2D(1), images, lambda layer: same(torch.nn.ZeroPad2d(1))),
        Case("ReflectionPad2D(1), 32x16x14x14", md.ReflectionPad2D(1), images,
             lambda layer: same(torch.nn.ReflectionPad2d(1))),
        Case("ReplicationPad2D(2), 32x16x14x14", md.ReplicationPad2D(2), images,
             lambda layer: same(torch.nn.ReplicationPad2d(2))),
        Case("CircularPad2D(2), 32x16x14x14", md.CircularPad2D(2), images,
             lambda layer: same(torch.nn.CircularPad2d(2))),
        Case("GroupNorm(4, 16), 32x16x14x14", md.GroupNorm(4, 16, dtype=dtype), images, _group_norm),
        Case("InstanceNorm2d(16), 32x16x14x14", md.InstanceNorm2d(16, dtype=dtype), images,
             lambda layer: same(torch.nn.InstanceNorm2d(16))),
        Case("LocalResponseNorm(5), 32x16x14x14", md.LocalResponseNorm(5, k=2.0), images,
             lambda layer: same(torch.nn.LocalResponseNorm(5, k=2.0))),
        Case("MultiHeadAttention(64, 4 heads), N=32, T=20", md.MultiHeadAttention(64, 4, rng=0, dtype=dtype),
             sequences, _attention),
        Case("Embedding(10000, 64), 32x20 indices", md.Embedding(10000, 64, rng=0, dtype=dtype),
             rng.integers(0, 10000, size=(32, 20)), _embedding),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--only", default="", help="run only rows whose label contains this text")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--runs", type=int, default=None, help="runs per row (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS and PyTorch to this many threads")
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 5)
    seconds, warmup = (0.05, 0.02) if args.quick else (1.0, 0.2)
    dtype = np.dtype(args.dtype).type
    if args.threads and torch is not None:
        torch.set_num_threads(args.threads)
    with blas_limits(args.threads):
        for line in environment():
            print(line)
        print(f"{args.dtype}; a step: zero_grad, forward, backward (dx too); {runs} runs of about {seconds:g} s of "
              "alternating A B / B A rounds; times: medians of every round; ratio: median over runs of each run's "
              "median per-round ratio (min-max of the runs)\n")
        header = ["layer, input", "minidl µs"] + (["torch µs", "minidl/torch"] if torch is not None else [])
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|", flush=True)
        for case in cases(dtype):
            if args.only not in case.label:
                continue
            y = case.layer(case.x)
            g = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
            steps: dict[str, Step] = {"minidl": minidl_step(case.layer, case.x, g)}
            if torch is not None:
                steps["torch"] = torch_step(case.to_torch(case.layer), case.x, g)
            per_step = max(estimate_step(step) for step in steps.values())
            if torch is None:
                times = []
                for _ in range(max(6, int(runs * seconds / per_step))):
                    start = time.perf_counter()
                    steps["minidl"]()
                    times.append(time.perf_counter() - start)
                print(f"| {case.label} | {statistics.median(times) * 1e6:.0f} |", flush=True)
                continue
            rounds = int(min(2000, max(6, seconds / (per_step * 2))))
            timing = time_alternately(steps, runs, rounds, warmup)
            print(f"| {case.label} | {timing.median_us('minidl'):.0f} | {timing.median_us('torch'):.0f} | "
                  f"{spread(timing.run_ratios['minidl/torch'])} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
