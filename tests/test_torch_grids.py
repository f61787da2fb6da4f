"""Regression grids against PyTorch (skipped without torch), from an outside review's combination sweeps:
convolution settings crossed (padding_mode x groups x dilation x stride x output_padding), pooling options
crossed, running-statistics norms over train/eval switches (momentum=None too), and optimizer + scheduler
pairs.  Large grids are sampled with a fixed seed (32-96 cases of each, 1 in 3 to 1 in 9); a setting PyTorch
refuses must be refused by minidl too.  The per-setting tests (tests/test_*_settings.py) cover changing settings after
construction; these cover the combinations, all in float64 to 1e-10 relative (values, dx, weight gradients)."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import pytest

import minidl as md

torch = pytest.importorskip("torch")
F = torch.nn.functional


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    """These inputs are tiny: PyTorch's thread pool costs more than it saves (4x the file's time here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sample(grid: list[Any], k: int, seed: int) -> list[Any]:
    """``k`` cases of ``grid`` picked with ``seed`` (all of them if it is smaller), in grid order."""
    if len(grid) <= k:
        return grid
    return [grid[i] for i in sorted(random.Random(seed).sample(range(len(grid)), k))]


def close(ours: np.ndarray, theirs: Any, what: str) -> None:
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, PyTorch's {theirs.shape}"
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-300)
    assert float(np.max(np.abs(ours - theirs), initial=0.0)) <= 1e-10 * scale, what


def compare(ours: md.Layer, theirs: Any, x: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
    """Forward and backward on both sides; the output and dx compared, PyTorch's module returned for its grads."""
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    y = ours(x)
    close(y, yt, "output")
    g = np.random.default_rng(seed).standard_normal(y.shape)
    yt.backward(torch.tensor(g))
    ours.zero_grad()
    close(ours.backward(g), xt.grad, "dx")
    return theirs, g


def refuses_too(build: Any, x: np.ndarray) -> None:
    """PyTorch refused the setting: minidl's constructor or forward refuses it too."""
    with pytest.raises((ValueError, md.MinidlError)):
        build()(x)


# ---------------------------------------------------------------------------------------------- convolutions
def conv_kernel_grad(layer: Any) -> np.ndarray:
    rows = layer.W.grad[1:] if layer.bias else layer.W.grad
    return rows.T.reshape(layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)


def transposed_kernel_grad(layer: Any) -> np.ndarray:
    """PyTorch's (in, out/groups, *k) from W's rows: W[1 + c*taps + i, g*Fg + o] = weight[g*Cg + c, o, i]."""
    rows = layer.W.grad[1:] if layer.bias else layer.W.grad
    G, C, Fo = layer.groups, layer.in_channels, layer.out_channels
    return rows.reshape(C // G, -1, G, Fo // G).transpose(2, 0, 3, 1).reshape(C, Fo // G, *layer.kernel_size)


def check_weights(ours: Any, theirs: Any, kernel_grad: Any) -> None:
    close(kernel_grad(ours), theirs.weight.grad, "kernel gradient")
    if ours.bias:
        close(ours.W.grad[0], theirs.bias.grad, "bias gradient")


MODES = ["zeros", "reflect", "replicate", "circular"]
CONV2D = [case for case in itertools.product([(3, 2), 3], [1, (2, 3)], [0, 1, (2, 1), "same"], [1, (2, 1)], [1, 2],
                                             MODES, [True, False]) if not (case[2] == "same" and case[1] != 1)]


@pytest.mark.parametrize("k, s, p, d, groups, mode, bias", sample(CONV2D, 96, 0))
def test_conv2d(k: Any, s: Any, p: Any, d: Any, groups: int, mode: str, bias: bool) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(4, 6, k, s, p, d, groups, bias, padding_mode=mode, dtype=torch.float64)
    kernel, dilation = (k, k) if isinstance(k, int) else k, (d, d) if isinstance(d, int) else d
    if p == "same" and any(di * (ki - 1) % 2 for ki, di in zip(kernel, dilation, strict=True)):
        with pytest.raises(ValueError, match="same"):  # PyTorch pads one side more; minidl refuses (layers.md)
            md.Conv2D(4, 6, k, s, p, dilation=d, groups=groups, padding_mode=mode)
        return
    ours = md.Conv2D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy() if bias else None, s,
                                 p, dilation=d, groups=groups, padding_mode=mode)
    compare(ours, theirs, np.random.default_rng(1).standard_normal((2, 4, 9, 8)), 2)
    check_weights(ours, theirs, conv_kernel_grad)


CONV_T2D = list(itertools.product([(3, 2), 3], [1, (2, 3), 3], [0, 1, (2, 1)], [0, 1, (1, 2)], [1, (2, 1), 3], [1, 2],
                                  [True, False]))


@pytest.mark.parametrize("k, s, p, op, d, groups, bias", sample(CONV_T2D, 96, 1))
def test_conv_transpose2d(k: Any, s: Any, p: Any, op: Any, d: Any, groups: int, bias: bool) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, k, s, p, op, groups, bias, d, dtype=torch.float64)
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 4))

    def build() -> md.ConvTranspose2D:
        return md.ConvTranspose2D.from_kernel(theirs.weight.detach().numpy(),
                                              theirs.bias.detach().numpy() if bias else None, s, p, op,
                                              dilation=d, groups=groups)
    try:
        theirs(torch.tensor(x))
    except RuntimeError:  # an output_padding not below the stride or the dilation, an empty output
        refuses_too(build, x)
        return
    ours = build()
    compare(ours, theirs, x, 2)
    check_weights(ours, theirs, transposed_kernel_grad)


CONV1D = list(itertools.product([2, 3], [1, 2], [0, 1, 2], [1, 2], [1, 2], MODES))
CONV_T1D = list(itertools.product([2, 3], [1, 2, 3], [0, 1], [0, 1], [1, 2], [1, 2]))


@pytest.mark.parametrize("k, s, p, d, groups, mode", sample(CONV1D, 32, 2))
def test_conv1d(k: int, s: int, p: int, d: int, groups: int, mode: str) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.Conv1d(4, 6, k, s, p, d, groups, padding_mode=mode, dtype=torch.float64)
    ours = md.Conv1D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy(), s, p, dilation=d,
                                 groups=groups, padding_mode=mode)
    compare(ours, theirs, np.random.default_rng(1).standard_normal((2, 4, 9)), 2)
    check_weights(ours, theirs, conv_kernel_grad)


@pytest.mark.parametrize("k, s, p, op, d, groups", sample(CONV_T1D, 32, 3))
def test_conv_transpose1d(k: int, s: int, p: int, op: int, d: int, groups: int) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose1d(4, 6, k, s, p, op, groups, True, d, dtype=torch.float64)
    x = np.random.default_rng(1).standard_normal((2, 4, 5))

    def build() -> md.ConvTranspose1D:
        return md.ConvTranspose1D.from_kernel(theirs.weight.detach().numpy(), theirs.bias.detach().numpy(), s, p, op,
                                              dilation=d, groups=groups)
    try:
        theirs(torch.tensor(x))
    except RuntimeError:
        refuses_too(build, x)
        return
    ours = build()
    compare(ours, theirs, x, 2)
    check_weights(ours, theirs, transposed_kernel_grad)


# ---------------------------------------------------------------------------------------------- pooling
def check_pool(build: Any, function: Any, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    try:
        function(torch.tensor(x))
    except RuntimeError:  # padding over half the kernel, an empty output
        refuses_too(build, x)
        return
    compare(build(), function, x, 3)


MAX2D = list(itertools.product([(7, 8), (6, 5), (9, 9)], [2, 3, (3, 2)], [None, 1, 2, (2, 3)], [0, 1, (1, 0)],
                               [1, 2, (1, 2)], [False, True]))
AVG2D = list(itertools.product([(7, 8), (6, 5), (9, 9)], [2, 3, (3, 2)], [None, 1, 2, (2, 3)], [0, 1, (1, 0)],
                               [False, True], [False, True], [None, 5]))


@pytest.mark.parametrize("size, k, s, p, d, ceil", sample(MAX2D, 96, 4))
def test_max_pool2d(size: tuple[int, int], k: Any, s: Any, p: Any, d: Any, ceil: bool) -> None:
    check_pool(lambda: md.MaxPool2D(k, s, p, dilation=d, ceil_mode=ceil),
               lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil), (2, 3, *size))


@pytest.mark.parametrize("size, k, s, p, ceil, include, divisor", sample(AVG2D, 96, 5))
def test_avg_pool2d(size: tuple[int, int], k: Any, s: Any, p: Any, ceil: bool, include: bool,
                    divisor: int | None) -> None:
    check_pool(lambda: md.AvgPool2D(k, s, p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor),
               lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=include,
                                      divisor_override=divisor), (2, 3, *size))


MAX1D = list(itertools.product([7, 8, 5], [2, 3], [None, 1, 2, 3], [0, 1], [1, 2], [False, True]))
AVG1D = list(itertools.product([7, 8, 5], [2, 3], [None, 1, 2, 3], [0, 1], [False, True], [False, True]))


@pytest.mark.parametrize("length, k, s, p, d, ceil", sample(MAX1D, 32, 6))
def test_max_pool1d(length: int, k: int, s: int | None, p: int, d: int, ceil: bool) -> None:
    check_pool(lambda: md.MaxPool1D(k, s, p, dilation=d, ceil_mode=ceil),
               lambda t: F.max_pool1d(t, k, s, p, d, ceil_mode=ceil), (2, 3, length))


@pytest.mark.parametrize("length, k, s, p, ceil, include", sample(AVG1D, 32, 7))
def test_avg_pool1d(length: int, k: int, s: int | None, p: int, ceil: bool, include: bool) -> None:
    check_pool(lambda: md.AvgPool1D(k, s, p, ceil_mode=ceil, count_include_pad=include),
               lambda t: F.avg_pool1d(t, k, s, p, ceil_mode=ceil, count_include_pad=include), (2, 3, length))


# ---------------------------------------------------------------------------------------------- norms
PHASES = ["train"] * 4 + ["eval", "train", "eval"]


def run_phases(ours: md.Layer, theirs: Any, shape: tuple[int, ...], buffers: tuple[str, ...], seed: int) -> None:
    """Training steps, then eval, train, eval: outputs, dx, gamma/beta gradients and the running buffers agree."""
    rng = np.random.default_rng(seed)
    if getattr(theirs, "weight", None) is not None:  # parameters away from their initial ones and zeros
        weight, bias = rng.standard_normal(theirs.weight.shape), rng.standard_normal(theirs.weight.shape)
        ours.gamma.data[...], ours.beta.data[...] = weight, bias  # type: ignore[attr-defined]
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(weight))
            theirs.bias.copy_(torch.tensor(bias))
    for step, phase in enumerate(PHASES):
        ours.train(phase == "train")
        theirs.train(phase == "train")
        theirs.zero_grad()
        compare(ours, theirs, rng.standard_normal(shape) * 2 + 1, seed + step)
        if theirs.weight is not None:
            close(ours.gamma.grad, theirs.weight.grad, f"step {step} ({phase}): gamma gradient")  # type: ignore[attr-defined]
            close(ours.beta.grad, theirs.bias.grad, f"step {step} ({phase}): beta gradient")  # type: ignore[attr-defined]
        for name in buffers:
            if getattr(theirs, name, None) is not None:
                close(np.asarray(getattr(ours, name)), getattr(theirs, name), f"step {step} ({phase}): {name}")


BATCH_NORMS = [(md.BatchNorm1d, torch.nn.BatchNorm1d, (5, 3)), (md.BatchNorm1d, torch.nn.BatchNorm1d, (5, 3, 4)),
               (md.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 2))]


@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("affine, track", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("kinds", BATCH_NORMS, ids=["bn1d-2d", "bn1d-3d", "bn2d"])
def test_batch_norm_over_train_eval_switches(kinds: Any, affine: bool, track: bool, momentum: float | None) -> None:
    ours_kind, their_kind, shape = kinds
    ours = ours_kind(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = their_kind(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track, dtype=torch.float64)
    run_phases(ours, theirs, shape, ("running_mean", "running_var", "num_batches_tracked"), 10)


@pytest.mark.parametrize("momentum", [0.1, 0.5])  # (momentum=None: tests/test_layers_norm_momentum.py)
@pytest.mark.parametrize("affine, track", [(True, True), (True, False), (False, True), (False, False)])
def test_instance_norm_over_train_eval_switches(affine: bool, track: bool, momentum: float) -> None:
    ours = md.InstanceNorm2d(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = torch.nn.InstanceNorm2d(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track,
                                     dtype=torch.float64)
    run_phases(ours, theirs, (4, 3, 5, 4), ("running_mean", "running_var"), 11)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape, groups, channels", [((3, 4, 5, 2), 2, 4), ((3, 4, 5), 1, 4), ((3, 4, 6), 4, 4),
                                                     ((3, 6), 2, 6)])
def test_group_norm(shape: tuple[int, ...], groups: int, channels: int, affine: bool) -> None:
    run_phases(md.GroupNorm(groups, channels, eps=1e-4, affine=affine),
               torch.nn.GroupNorm(groups, channels, eps=1e-4, affine=affine, dtype=torch.float64), shape, (), 12)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("normalized, shape", [(4, (2, 5, 4)), ((5, 4), (2, 5, 4)), ((3, 5, 4), (2, 3, 5, 4))])
def test_layer_norm(normalized: Any, shape: tuple[int, ...], affine: bool) -> None:
    run_phases(md.LayerNorm(normalized, eps=1e-4, elementwise_affine=affine),
               torch.nn.LayerNorm(normalized, eps=1e-4, elementwise_affine=affine, dtype=torch.float64), shape, (), 13)


# ---------------------------------------------------------------------------------------------- optimizer + schedule
OPTIMIZER_SCHEDULES = [
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.2, weight_decay=0.01),
     "OneCycleLR", dict(max_lr=0.3, total_steps=25, cycle_momentum=False)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True), "OneCycleLR",
     dict(max_lr=0.1, total_steps=25)),
    ("RAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True), "CyclicLR",
     dict(base_lr=0.01, max_lr=0.1, step_size_up=4, mode="triangular2")),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1), "CyclicLR",
     dict(base_lr=0.01, max_lr=0.1, step_size_up=4, mode="exp_range", gamma=0.9)),
    ("AdamW", dict(lr=0.05, amsgrad=True), "CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5), "OneCycleLR",
     dict(max_lr=0.05, total_steps=25, three_phase=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), "CyclicLR",
     dict(base_lr=0.01, max_lr=0.1, step_size_up=3)),
]


@pytest.fixture
def float64_scalars() -> Any:
    """PyTorch keeps optimizer scalars (NAdam's mu_product, the step counts) in the default dtype: float64 here,
    as minidl's, else NAdam differs by ~1e-10 from float32 rounding of mu_product alone."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


@pytest.mark.usefixtures("float64_scalars")
@pytest.mark.parametrize("optimizer, settings, schedule, schedule_settings", OPTIMIZER_SCHEDULES,
                         ids=[f"{o}-{s}" for o, _, s, _ in OPTIMIZER_SCHEDULES])
def test_optimizer_with_a_schedule(optimizer: str, settings: dict[str, Any], schedule: str,
                                   schedule_settings: dict[str, Any]) -> None:
    """24 steps on a non-quadratic gradient; the schedules that cycle the momentum (OneCycleLR, CyclicLR) set
    beta1 or momentum on both sides."""
    rng = np.random.default_rng(0)
    w0, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def gradient(w: np.ndarray) -> np.ndarray:
        return np.sin(3 * w) + np.tanh(w) * target + 0.1 * w

    p = md.Parameter(w0.copy())
    ours = getattr(md, optimizer)([p], **settings)
    our_schedule = getattr(md, schedule)(ours, **schedule_settings)
    tp = torch.nn.Parameter(torch.tensor(w0.copy()))
    theirs = getattr(torch.optim, optimizer)([tp], **settings)
    their_schedule = getattr(torch.optim.lr_scheduler, schedule)(theirs, **schedule_settings)
    for step in range(24):
        p.zero_grad()
        p.grad = gradient(p.data)
        ours.step()
        our_schedule.step()
        tp.grad = torch.tensor(gradient(tp.detach().numpy()))
        theirs.step()
        their_schedule.step()
        close(p.data, tp, f"step {step}: the parameter")
        assert ours.lr == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
