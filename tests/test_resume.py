"""Exact resume: N steps, save, load into fresh objects, M steps == N + M uninterrupted steps, bit for bit."""

from __future__ import annotations

import inspect
import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl import optim

N_STEPS, M_STEPS = 4, 3
IN, OUT, BATCH = 4, 3, 6


def find(*names: str) -> Any:
    """The first of ``names`` that minidl exports (or minidl.optim defines), else None."""
    for name in names:
        found = getattr(md, name, None) or getattr(optim, name, None)
        if found is not None:
            return found
    return None


def optional_layer(names: tuple[str, ...], features: int, seed: int) -> md.Layer | None:
    """Dropout / batch-norm layers, when their engineers have added them."""
    cls = find(*names)
    if cls is None:
        return None
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"rng": seed} if "rng" in params else {}
    if "Dropout" in cls.__name__:
        return cls(0.3, **kwargs)
    return cls(features, **kwargs)


DROPOUT = ("Dropout",)
BATCHNORM = ("BatchNorm1d", "BatchNorm", "BatchNormalization")


def build(seed: int, dtype: Any) -> md.Sequential:
    """Dense/Tanh/ReLU, plus Dropout (a generator drawn at forward time) and batch norm (running
    statistics in buffers) when they exist.  ``seed`` sets every initial weight and generator."""
    layers: list[md.Layer | None] = [
        md.Dense(IN, 8, rng=seed, dtype=dtype),
        md.Tanh(),
        optional_layer(DROPOUT, 8, seed + 10),
        md.Dense(8, 8, rng=seed + 1, dtype=dtype),
        optional_layer(BATCHNORM, 8, seed + 20),
        md.ReLU(),
        md.Dense(8, OUT, rng=seed + 2, dtype=dtype),
    ]
    model = md.Sequential(*[layer for layer in layers if layer is not None])
    return model.astype(dtype)  # type: ignore[return-value]


def batch(step: int, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    return rng.standard_normal((BATCH, IN)).astype(dtype), rng.standard_normal((BATCH, OUT)).astype(dtype)


def train(model: md.Layer, opt: md.Optimizer, steps: range, dtype: Any) -> None:
    loss = md.MSELoss()
    model.train()
    for step in steps:
        x, y = batch(step, dtype)
        model.zero_grad()
        loss.forward(model(x), y)
        model.backward(loss.backward())
        opt.step()


OptimizerFactory = Callable[[list[md.Parameter]], md.Optimizer]


def optimizers() -> list[Any]:
    table: dict[str, tuple[str, OptimizerFactory]] = {
        "SGD-momentum": ("SGD", lambda ps: md.SGD(ps, lr=0.05, momentum=0.9)),
        "SGD-nesterov-wd": ("SGD", lambda ps: md.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                     weight_decay=1e-3)),
        "Adam": ("Adam", lambda ps: find("Adam")(ps, lr=0.01)),
        "Adam-amsgrad": ("Adam", lambda ps: find("Adam")(ps, lr=0.01, amsgrad=True, weight_decay=1e-3)),
        "AdamW": ("AdamW", lambda ps: find("AdamW")(ps, lr=0.01)),
        "RMSprop-centered": ("RMSprop", lambda ps: find("RMSprop")(ps, lr=0.01, momentum=0.5, centered=True)),
        "Adagrad": ("Adagrad", lambda ps: find("Adagrad")(ps, lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
        "Adamax": ("Adamax", lambda ps: find("Adamax")(ps, lr=0.01, weight_decay=1e-3)),
        "NAdam": ("NAdam", lambda ps: find("NAdam")(ps, lr=0.01, decoupled_weight_decay=True, weight_decay=1e-3)),
        "RAdam": ("RAdam", lambda ps: find("RAdam")(ps, lr=0.01, betas=(0.9, 0.8))),
        "Adadelta": ("Adadelta", lambda ps: find("Adadelta")(ps, lr=0.5, weight_decay=1e-3)),
        "Rprop": ("Rprop", lambda ps: find("Rprop")(ps, lr=0.01, etas=(0.4, 1.3), step_sizes=(1e-4, 1.0))),
    }
    return [pytest.param(make, id=name) for name, (cls, make) in table.items() if find(cls) is not None]


def everything(model: md.Layer) -> dict[str, Any]:
    return model.state_dict(generators=True)


def assert_bit_equal(a: Any, b: Any, where: str = "") -> None:
    """Same nested structure; arrays of the same dtype and the same bytes; other values equal."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_bit_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        assert np.array_equal(a, b), f"{where}: max diff {np.max(np.abs(a - b))}"
        assert a.tobytes() == b.tobytes(), where
    else:
        assert a == b, where


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", optimizers())
def test_resume_is_bit_exact(make: OptimizerFactory, dtype: Any, tmp_path: pathlib.Path) -> None:
    # the uninterrupted run
    reference = build(seed=0, dtype=dtype)
    reference_opt = make(reference.parameters())
    train(reference, reference_opt, range(N_STEPS + M_STEPS), dtype)

    # N steps, save, stop
    first = build(seed=0, dtype=dtype)
    first_opt = make(first.parameters())
    train(first, first_opt, range(N_STEPS), dtype)
    path = tmp_path / "ckpt.npz"
    md.save({"model": first.state_dict(generators=True), "optimizer": first_opt.state_dict(),
             "step": N_STEPS}, path)
    after_n = everything(first)
    del first, first_opt

    # fresh objects (different seed, fresh optimizer), load, M more steps
    resumed = build(seed=123, dtype=dtype)
    resumed_opt = make(resumed.parameters())
    checkpoint = md.load(path)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    assert checkpoint["step"] == N_STEPS
    assert_bit_equal(everything(resumed), after_n)
    train(resumed, resumed_opt, range(checkpoint["step"], N_STEPS + M_STEPS), dtype)

    assert_bit_equal(everything(resumed), everything(reference))
    assert all(p.dtype == dtype for p in resumed.parameters())
    assert_bit_equal(resumed_opt.state_dict()["state"], reference_opt.state_dict()["state"])


@pytest.mark.parametrize("make", optimizers())
def test_the_resume_test_has_teeth(make: OptimizerFactory, tmp_path: pathlib.Path) -> None:
    """Without the optimizer's state the M steps differ: the exactness above is not vacuous."""
    reference = build(seed=0, dtype=np.float64)
    reference_opt = make(reference.parameters())
    train(reference, reference_opt, range(N_STEPS + M_STEPS), np.float64)

    first = build(seed=0, dtype=np.float64)
    first_opt = make(first.parameters())
    train(first, first_opt, range(N_STEPS), np.float64)
    resumed = build(seed=123, dtype=np.float64)
    resumed.load_state_dict(first.state_dict(generators=True))
    train(resumed, make(resumed.parameters()), range(N_STEPS, N_STEPS + M_STEPS), np.float64)  # fresh state
    last = "W"
    ref_w = [p.data for name, p in reference.named_parameters() if name.endswith(last)]
    got_w = [p.data for name, p in resumed.named_parameters() if name.endswith(last)]
    assert not all(np.array_equal(a, b) for a, b in zip(ref_w, got_w, strict=True))


def test_dropout_resume_needs_the_generator_states(tmp_path: pathlib.Path) -> None:
    if find(*DROPOUT) is None:
        pytest.skip("no Dropout layer in minidl yet")
    make: OptimizerFactory = lambda ps: md.SGD(ps, lr=0.05, momentum=0.9)  # noqa: E731
    reference = build(seed=0, dtype=np.float64)
    train(reference, make(reference.parameters()), range(N_STEPS + M_STEPS), np.float64)
    first = build(seed=0, dtype=np.float64)
    first_opt = make(first.parameters())
    train(first, first_opt, range(N_STEPS), np.float64)
    resumed = build(seed=123, dtype=np.float64)
    resumed_opt = make(resumed.parameters())
    resumed.load_state_dict(first.state_dict())  # generators not saved: dropout masks differ
    resumed_opt.load_state_dict(first_opt.state_dict())
    train(resumed, resumed_opt, range(N_STEPS, N_STEPS + M_STEPS), np.float64)
    assert not np.array_equal(resumed.parameters()[0].data, reference.parameters()[0].data)


def test_resume_through_a_checkpoint_twice(tmp_path: pathlib.Path) -> None:
    """Save/load twice along the way (N, then N + 1): still bit-exact, and the file is rewritten."""
    make: OptimizerFactory = lambda ps: md.SGD(ps, lr=0.05, momentum=0.9)  # noqa: E731
    reference = build(seed=0, dtype=np.float32)
    train(reference, make(reference.parameters()), range(N_STEPS + M_STEPS), np.float32)
    model = build(seed=0, dtype=np.float32)
    opt = make(model.parameters())
    path = tmp_path / "ckpt"
    done = 0
    for stop in (N_STEPS, N_STEPS + 1, N_STEPS + M_STEPS):
        train(model, opt, range(done, stop), np.float32)
        md.save({"model": model.state_dict(generators=True), "optimizer": opt.state_dict(), "step": stop},
                path)
        state = md.load(path)
        model = build(seed=stop, dtype=np.float32)
        opt = make(model.parameters())
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        done = state["step"]
    assert_bit_equal(everything(model), everything(reference))


class LocalDropout(md.Layer):
    """Inverted dropout written here, so the generator path is covered whatever minidl provides."""

    elementwise = True

    def __init__(self, p: float, rng: int) -> None:
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng(rng)
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            return x
        self._mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / (1 - self.p)
        return x * self._mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        self._require_cache(self._mask)
        assert self._mask is not None
        return grad_output * self._mask


@pytest.mark.parametrize("with_generators", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_resume_with_a_random_layer(dtype: Any, with_generators: bool, tmp_path: pathlib.Path) -> None:
    def build_random(seed: int) -> md.Sequential:
        return md.Sequential(md.Dense(IN, 8, rng=seed, dtype=dtype), LocalDropout(0.4, rng=seed + 1),
                             md.Tanh(), md.Dense(8, OUT, rng=seed + 2, dtype=dtype))

    def make(ps: list[md.Parameter]) -> md.Optimizer:
        return md.SGD(ps, lr=0.05, momentum=0.9)

    reference = build_random(0)
    train(reference, make(reference.parameters()), range(N_STEPS + M_STEPS), dtype)
    first = build_random(0)
    first_opt = make(first.parameters())
    train(first, first_opt, range(N_STEPS), dtype)
    md.save({"model": first.state_dict(generators=with_generators), "optimizer": first_opt.state_dict()},
            tmp_path / "ckpt")
    resumed = build_random(77)
    resumed_opt = make(resumed.parameters())
    state = md.load(tmp_path / "ckpt")
    resumed.load_state_dict(state["model"])
    resumed_opt.load_state_dict(state["optimizer"])
    train(resumed, resumed_opt, range(N_STEPS, N_STEPS + M_STEPS), dtype)
    if with_generators:
        assert_bit_equal(everything(resumed), everything(reference))
    else:  # the masks were drawn from the fresh model's generator: a different run
        assert not np.array_equal(resumed.parameters()[0].data, reference.parameters()[0].data)
