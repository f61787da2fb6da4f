"""Composition fuzz: seeded random models checked as wholes, where a layer's own tests cannot see.

Each seed draws, with ``numpy.random.default_rng(seed)``, a small float64 model (N <= 4) of one of four
input kinds -- flat features (N, F), images (N, C, H, W), sequences (N, T, D), token ids (N, T) -- built from
blocks that nest: Sequentials inside Sequentials (some under names), a custom ``Model`` with a skip
connection (``SkipSum``), ``Residual``, two ``Dense`` sharing one weight (tied), and, for some seeds, a layer
frozen in the middle, the whole model in eval mode (batch norms' running statistics warmed first) and a custom
top-level ``Model`` (``Net``) in place of a ``Sequential``.  Only valid models are drawn (an ``InstanceNorm2d``
or a pooling gets maps of 2x2 or more).  For every seed (the test id names it):

(a) ``GradientChecker(model, loss, x, y).run()`` passes, and checks something;
(b) the check leaves the model bit-identical: parameters, buffers, generator states, every layer's mode, every
    ``.grad`` and ``has_grad``, and the forward caches (a backward after the check gives what it gives
    without the check);
(c) ``predict(x, batch_size=k)`` equals a full eval-mode forward and ``evaluate`` the loss computed by hand,
    and neither disturbs the modes nor a training forward's caches (the model's and the loss's);
(d) ``state_dict(generators=True)`` -> ``save`` -> ``load`` into a fresh build of the same seed (other weights)
    gives identical outputs, in eval and in training mode; the state's keys are the nesting's dotted names;
(e) a layer that drops one parameter's gradient fails the check under that parameter's dotted name, and it
    alone (a parameter whose true gradient is not ~0 is chosen); for a few seeds, a layer that scales one
    element of its input gradient by 1.01 fails the check at the model's input or at the weight of the
    ``Dense``/``Conv2D`` right before it.

``test_the_seeds_draw_every_feature`` keeps the seeds honest: together they draw every block and setting.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import states_equal

SEEDS = range(28)
KINDS = ("flat", "image", "sequence", "tokens")  # seed % 4 picks one
ACTIVATIONS = (md.ReLU, md.Tanh, md.Sigmoid, md.GELU, md.SiLU, md.ELU, md.Softplus, md.LeakyReLU)
LOSSES = (md.MSELoss, md.CrossEntropyLoss, md.BCEWithLogitsLoss, md.HuberLoss)


class SkipSum(md.Model):
    """y = body(x) + x, a custom model with a skip connection.  x: (N, ...) -> y: the same shape."""

    def __init__(self, body: md.Layer) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.body(x) + x

    def backward(self, grad_output: np.ndarray) -> Any:
        return self.body.backward(grad_output) + grad_output


class Net(md.Model):
    """y = head(body(x)), a custom top-level model.  x: what ``body`` takes -> y: what ``head`` gives."""

    def __init__(self, body: md.Layer, head: md.Layer) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.body(x))

    def backward(self, grad_output: np.ndarray) -> Any:
        return self.body.backward(self.head.backward(grad_output))


# ---------------------------------------------------------------------------------------------- the generator
class Draws:
    """The structure comes from ``default_rng(seed)``, the weights and dropout generators from a second
    generator seeded by ``weights``: every build of a seed has the same layers, with other values for
    other ``weights``.  ``features`` collects what was drawn."""

    def __init__(self, seed: int, weights: int) -> None:
        self._structure = np.random.default_rng(seed)
        self._weights = np.random.default_rng([weights, seed])
        self.features: set[str] = set()

    def pick(self, n: int) -> int:
        return int(self._structure.integers(n))

    def size(self, low: int, high: int) -> int:
        """An int in [low, high]."""
        return int(self._structure.integers(low, high + 1))

    def coin(self, p: float) -> bool:
        return bool(self._structure.random() < p)

    def rng(self) -> int:
        """A seed for one layer's weights or generator."""
        return int(self._weights.integers(2**31))

    def activation(self) -> md.Layer:
        return ACTIVATIONS[self.pick(len(ACTIVATIONS))]()


def flat_block(d: Draws, F: int, depth: int = 0) -> tuple[md.Layer, int]:
    """A block on (N, F) features and its output width."""
    kind = d.pick(11)
    if kind == 0:
        width = d.size(2, 4)
        return md.Dense(F, width, rng=d.rng()), width
    if kind == 1:
        d.features.add("dropout")
        return md.Dropout(0.3, rng=d.rng()), F
    if kind == 2:
        d.features.add("batchnorm")
        return md.BatchNorm1d(F), F
    if kind == 3:
        return md.LayerNorm(F), F
    if kind == 4:
        return md.PReLU(F), F
    if kind == 5:
        d.features.add("skip")
        return SkipSum(md.Sequential(md.Dense(F, F, rng=d.rng()), md.Tanh())), F
    if kind == 6:
        d.features.add("residual")
        return md.Residual(md.Sequential(md.Dense(F, F, rng=d.rng()), md.Sigmoid())), F
    if kind == 7 and depth < 2:
        d.features.add("nested")
        blocks, width = [], F
        for _ in range(d.size(1, 2)):
            block, width = flat_block(d, width, depth + 1)
            blocks.append(block)
        return md.Sequential(*blocks), width
    if kind == 8:
        d.features.add("tied")
        first, second = md.Dense(F, F, rng=d.rng()), md.Dense(F, F, rng=d.rng())
        second.W = first.W
        return md.Sequential(first, md.Tanh(), second), F
    if kind == 9:
        return d.activation(), F
    return md.Dense(F, F, rng=d.rng()), F


def image_block(d: Draws, C: int, H: int, depth: int = 0) -> tuple[md.Layer, int, int]:
    """A block on (N, C, H, H) maps and its output channels and size (never below 2x2)."""
    kind = d.pick(11)
    if kind == 0:
        channels = d.size(1, 3)
        return md.Conv2D(C, channels, 3, padding=1, rng=d.rng()), channels, H
    if kind == 1 and H >= 4:
        return (md.MaxPool2D(2) if d.coin(0.5) else md.AvgPool2D(2)), C, H // 2
    if kind == 2:
        d.features.add("batchnorm")
        return md.BatchNorm2d(C), C, H
    if kind == 3:
        return md.GroupNorm(1, C), C, H
    if kind == 4:
        d.features.add("instancenorm")
        return md.InstanceNorm2d(C, affine=True), C, H
    if kind == 5 and H <= 2:
        return md.Upsample(2), C, 2 * H
    if kind == 6 and H <= 3:
        return md.ZeroPad2D(1), C, H + 2
    if kind == 7:
        d.features.add("skip")
        return SkipSum(md.Conv2D(C, C, 3, padding=1, rng=d.rng())), C, H
    if kind == 8:
        d.features.add("residual")
        return md.Residual(md.Sequential(md.Conv2D(C, C, 3, padding=1, rng=d.rng()), md.Tanh())), C, H
    if kind == 9 and depth < 1:
        d.features.add("nested")
        first, C, H = image_block(d, C, H, depth + 1)
        second, C, H = image_block(d, C, H, depth + 1)
        return md.Sequential(first, second), C, H
    return d.activation(), C, H


def sequence_block(d: Draws, D: int) -> md.Layer:
    """A block on (N, T, D) sequences, keeping D."""
    kind = d.pick(7)
    if kind < 3:
        d.features.add("recurrent")
        return (md.RNN, md.LSTM, md.GRU)[kind](D, D, rng=d.rng())
    if kind == 3:
        d.features.add("attention")
        return md.MultiHeadAttention(D, 2, causal=d.coin(0.5), rng=d.rng())
    if kind == 4:
        d.features.add("transformer")
        dropout = 0.2 if d.coin(0.5) else 0.0
        return md.TransformerEncoderLayer(D, 2, dim_feedforward=6, dropout=dropout, activation="gelu",
                                          norm_first=d.coin(0.5), rng=d.rng())
    if kind == 5:
        return md.LayerNorm(D)
    return d.activation()


@dataclass(frozen=True)
class Spec:
    """What a seed's builds share: the kind of input, one sample's shape, the output width, the loss, the
    frozen layer's dotted name (or None), the mode, and the features drawn."""

    kind: str
    sample: tuple[int, ...]
    outputs: int
    loss: Callable[[], md.Loss]
    frozen: str | None
    eval_mode: bool
    features: frozenset[str]


def blocks_for(d: Draws, kind: str) -> tuple[tuple[int, ...], list[md.Layer], int]:
    """One sample's shape, the chain of blocks (a Dense last) and the output width for inputs of ``kind``."""
    outputs = d.size(2, 3)
    blocks: list[md.Layer] = []
    if kind == "flat":
        F = d.size(2, 4)
        width = F
        for _ in range(d.size(2, 4)):
            block, width = flat_block(d, width)
            blocks.append(block)
        blocks.append(md.Dense(width, outputs, rng=d.rng()))
        return (F,), blocks, outputs
    if kind == "image":
        C, H = d.size(1, 2), (2, 4)[d.pick(2)]
        channels, size = C, H
        for _ in range(d.size(1, 3)):
            block, channels, size = image_block(d, channels, size)
            blocks.append(block)
        blocks += [md.Flatten(), md.Dense(channels * size * size, outputs, rng=d.rng())]
        return (C, H, H), blocks, outputs
    T, D = d.size(2, 3), 4
    if kind == "tokens":
        blocks.append(md.Embedding(5, D, rng=d.rng()))
    for _ in range(d.size(1, 2)):
        blocks.append(sequence_block(d, D))
    if d.coin(0.5):
        blocks.append(md.GRU(D, outputs, return_sequences=False, rng=d.rng()))
    else:
        blocks += [md.Flatten(), md.Dense(T * D, outputs, rng=d.rng())]
    return ((T,) if kind == "tokens" else (T, D)), blocks, outputs


def assemble(d: Draws, blocks: list[md.Layer]) -> md.Model:
    """A plain Sequential, a Sequential of two named Sequentials, or a custom ``Net``."""
    style = d.pick(3)
    if style == 0:
        return md.Sequential(*blocks)
    if style == 1:
        d.features.add("named")
        cut = d.size(1, len(blocks) - 1)
        return md.Sequential({"body": md.Sequential(*blocks[:cut]), "head": md.Sequential(*blocks[cut:])})
    d.features.add("custom-top")
    return Net(md.Sequential(*blocks[:-1]), blocks[-1])


def leaves_with_parameters(model: md.Layer) -> list[tuple[str, md.Layer]]:
    """The layers without sub-layers that hold parameters, in the order the model lists them."""
    return [(name, layer) for name, layer in model.named_layers()
            if name and not list(layer.children()) and list(layer.named_parameters())]


def inputs(kind: str, sample: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "tokens":
        return rng.integers(0, 5, size=(n, *sample))
    return rng.normal(size=(n, *sample))


def build(seed: int, weights: int = 0) -> tuple[md.Model, Spec]:
    """The seed's model with the weights of ``weights``, frozen and in its mode, and its spec."""
    d = Draws(seed, weights)
    kind = KINDS[seed % len(KINDS)]
    sample, blocks, outputs = blocks_for(d, kind)
    model = assemble(d, blocks)
    loss = LOSSES[d.pick(len(LOSSES))]
    frozen = None
    middle = leaves_with_parameters(model)[1:-1]
    if middle and d.coin(0.4):
        frozen, layer = middle[d.pick(len(middle))]
        layer.requires_grad_(False)
        d.features.add("frozen")
    eval_mode = d.coin(0.3)
    if eval_mode:
        d.features.add("eval")
        warm = inputs(kind, sample, 4, np.random.default_rng([seed, 2]))
        model(warm if kind == "tokens" else warm * 2 + 0.5)  # running statistics move off their start
        model.eval()
    d.features.add(kind)
    return model, Spec(kind, sample, outputs, loss, frozen, eval_mode, frozenset(d.features))


@dataclass(frozen=True)
class Case:
    seed: int
    spec: Spec
    x: np.ndarray
    y: np.ndarray

    def build(self, weights: int = 0) -> md.Model:
        return build(self.seed, weights)[0]

    def loss(self) -> md.Loss:
        return self.spec.loss()

    def check(self, model: md.Layer) -> md.GradientReport:
        return md.GradientChecker(model, self.loss(), self.x, self.y, seed=self.seed).run()


@functools.cache
def case(seed: int) -> Case:
    _, spec = build(seed)
    rng = np.random.default_rng([seed, 1])
    n = int(rng.integers(2, 5))
    x = inputs(spec.kind, spec.sample, n, rng)
    y: np.ndarray
    if spec.loss is md.CrossEntropyLoss:
        y = rng.integers(0, spec.outputs, size=n)
    elif spec.loss is md.BCEWithLogitsLoss:
        y = rng.random(size=(n, spec.outputs))
    else:
        y = rng.normal(size=(n, spec.outputs))
    x.flags.writeable = y.flags.writeable = False
    return Case(seed, spec, x, y)


# ---------------------------------------------------------------------------------------------- helpers
def modes(model: md.Layer) -> list[tuple[str, bool]]:
    return [(name, layer.training) for name, layer in model.named_layers()]


def snapshot(model: md.Layer) -> dict[str, Any]:
    """Everything a check must leave as it was (a gradient read only where there is one: reading it makes one)."""
    return {
        "state": model.state_dict(generators=True),
        "buffers": {name: buffer.copy() for name, buffer in model.named_buffers()},
        "modes": modes(model),
        "parameters": [(name, id(p), p.requires_grad, p.has_grad) for name, p in model.named_parameters()],
        "grads": {name: p.grad.copy() for name, p in model.named_parameters() if p.has_grad},
    }


def assert_same_snapshot(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert states_equal(after["state"], before["state"])
    assert states_equal(after["buffers"], before["buffers"])
    assert after["modes"] == before["modes"]
    assert after["parameters"] == before["parameters"]
    assert states_equal(after["grads"], before["grads"])


def half_step(model: md.Layer, c: Case) -> md.Loss:
    """A full step's forward and backward (gradients in ``.grad``), then a second forward and loss whose caches
    are left for a backward; returns that loss."""
    loss = c.loss()
    loss(model(c.x), c.y)
    model.backward(loss.backward())
    loss(model(c.x), c.y)
    return loss


def assert_same_backward(model: md.Layer, loss: md.Loss, reference: md.Layer, reference_loss: md.Loss) -> None:
    """The backward from ``loss`` gives ``model`` the input gradient and ``.grad`` that ``reference`` gets."""
    dx, expected = model.backward(loss.backward()), reference.backward(reference_loss.backward())
    assert (dx is None) == (expected is None)
    if expected is not None:
        assert np.array_equal(dx, expected)
    grads = {name: p.grad for name, p in model.named_parameters() if p.has_grad}
    assert states_equal(grads, {name: p.grad for name, p in reference.named_parameters() if p.has_grad})


def canonical_name(model: md.Layer, parameter: md.Parameter) -> str:
    """The dotted name the model lists ``parameter`` under (a tied one: under its first)."""
    return next(name for name, p in model.named_parameters() if p is parameter)


def failing(report: md.GradientReport) -> set[str]:
    return {result.name for result in report.failed}


def broken(layer: md.Layer, backward: Callable[[md.Layer, Any, Callable[[Any], Any]], Any]) -> None:
    """Give ``layer`` (only it) a backward that is ``backward(layer, grad_output, the class's backward)``."""
    cls = type(layer)

    def wrapped(self: md.Layer, grad_output: Any) -> Any:
        return backward(self, grad_output, lambda g: cls.backward(self, g))

    layer.__class__ = type(f"Broken{cls.__name__}", (cls,), {"backward": wrapped})


def drop_gradient(layer: md.Layer, own_name: str) -> None:
    """``layer``'s backward leaves its parameter ``own_name``'s gradient as it found it (as if not added)."""
    def backward(self: md.Layer, grad_output: Any, original: Callable[[Any], Any]) -> Any:
        parameter = dict(self.named_parameters())[own_name]
        before = parameter.grad.copy()
        dx = original(grad_output)
        parameter.grad[...] = before
        return dx

    broken(layer, backward)


def scale_input_gradient(layer: md.Layer) -> None:
    """``layer``'s backward returns its input gradient with its largest element scaled by 1.01."""
    def backward(self: md.Layer, grad_output: Any, original: Callable[[Any], Any]) -> Any:
        dx = np.array(original(grad_output))
        dx.flat[np.argmax(np.abs(dx))] *= 1.01
        return dx

    broken(layer, backward)


def first_layer(model: md.Layer) -> md.Layer:
    """The block that receives the model's input."""
    while isinstance(model, (md.Sequential, Net)):
        model = model[0] if isinstance(model, md.Sequential) else model.body
    return model


def after_a_weight(model: md.Layer) -> list[tuple[str, md.Layer]]:
    """(the weight's dotted name, the layer after it) for each trainable ``Dense``/``Conv2D`` followed, in a
    Sequential, by another layer, whose input gradient is that weight's output gradient."""
    pairs = []
    for _, layer in model.named_layers():
        if isinstance(layer, md.Sequential):
            for before, after in itertools.pairwise(layer):
                if isinstance(before, (md.Dense, md.Conv2D)) and before.W.requires_grad:
                    pairs.append((canonical_name(model, before.W), after))
    return pairs


# ---------------------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("seed", SEEDS)
def test_check_passes_and_leaves_the_model_as_it_was(seed: int) -> None:
    c = case(seed)
    model, reference = c.build(), c.build()
    loss, reference_loss = half_step(model, c), half_step(reference, c)
    before = snapshot(model)

    report = c.check(model)

    assert report.passed, str(report)
    assert not report.nothing_checked, str(report)
    if c.spec.frozen is not None:
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        assert frozen and {report[name].status for name in frozen} == {"frozen"}
    assert_same_snapshot(snapshot(model), before)
    assert_same_backward(model, loss, reference, reference_loss)  # the caches of the forward before the check


@pytest.mark.parametrize("seed", SEEDS)
def test_predict_and_evaluate_agree_with_a_forward_by_hand(seed: int) -> None:
    c = case(seed)
    model = c.build()
    full = c.build().eval()(c.x)
    by_hand = c.loss()(full, c.y)
    batch = 1 + seed % 3
    mode = modes(model)

    np.testing.assert_allclose(model.predict(c.x, batch_size=batch), full, rtol=1e-12, atol=1e-12)
    assert model.evaluate(c.x, c.y, loss=c.loss(), batch_size=batch)["loss"] == pytest.approx(by_hand, rel=1e-12)
    assert model.evaluate(c.x, c.y, loss=c.loss(), batch_size=len(c.x))["loss"] == pytest.approx(by_hand, rel=1e-12)
    assert modes(model) == mode


@pytest.mark.parametrize("seed", SEEDS)
def test_predict_and_evaluate_keep_a_training_forwards_caches(seed: int) -> None:
    c = case(seed)
    model, reference = c.build(), c.build()
    loss, reference_loss = half_step(model, c), half_step(reference, c)

    model.predict(c.x, batch_size=1 + seed % 2)
    model.evaluate(c.x, c.y, loss=loss, batch_size=2)

    assert_same_backward(model, loss, reference, reference_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_state_dict_saved_and_loaded_into_a_fresh_build(seed: int, tmp_path: Path) -> None:
    c = case(seed)
    model, fresh = c.build(weights=0), c.build(weights=1)
    assert not np.array_equal(model(c.x), fresh(c.x)), "the two builds should differ before the load"
    state = model.state_dict(generators=True)

    layouts = {key for key in state if key == "_layout" or key.endswith("._layout")}
    parameters = {name for name, _ in model.named_parameters()}
    generators = {name for name, _ in model.named_generators()}
    buffers = {name for name, _ in model.named_buffers()}
    assert parameters | generators <= set(state)
    assert set(state) - layouts <= parameters | generators | buffers
    assert {key.rpartition("._layout")[0] for key in layouts} <= {name for name, _ in model.named_layers()}

    md.save(state, tmp_path / "model.mdl")
    result = fresh.load_state_dict(md.load(tmp_path / "model.mdl"))

    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert states_equal(fresh.state_dict(generators=True), state)
    for training in (not c.spec.eval_mode, c.spec.eval_mode):  # the other mode, then the model's own
        model.train(training)
        fresh.train(training)
        assert np.array_equal(model(c.x), fresh(c.x))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_dropped_parameter_gradient_fails_under_its_name(seed: int) -> None:
    c = case(seed)
    reference = c.build()
    loss = c.loss()
    loss(reference(c.x), c.y)
    reference.backward(loss.backward())
    candidates = [(canonical_name(reference, p), index, own)
                  for index, (_, layer) in enumerate(leaves_with_parameters(reference))
                  for own, p in layer.named_parameters()
                  if p.requires_grad and np.abs(p.grad).max() > 1e-4]  # (a gradient ~0 could not show)
    assert candidates
    name, index, own = candidates[np.random.default_rng([seed, 3]).integers(len(candidates))]
    model = c.build()
    drop_gradient(leaves_with_parameters(model)[index][1], own)

    report = c.check(model)

    assert failing(report) == {name}, str(report)


INPUT_CASES = ([(seed, "input") for seed in SEEDS if case(seed).spec.kind != "tokens"][:4]
               + [(seed, "weight") for seed in SEEDS if after_a_weight(case(seed).build())][:4])


@pytest.mark.parametrize(("seed", "where"), INPUT_CASES)
def test_a_wrong_input_gradient_fails(seed: int, where: str) -> None:
    c = case(seed)
    model = c.build()
    if where == "input":  # the first block's input gradient is the model's
        expected = "input"
        scale_input_gradient(first_layer(model))
    else:  # the block's input gradient is the output gradient of the weight before it
        expected, layer = after_a_weight(model)[0]
        scale_input_gradient(layer)

    report = c.check(model)

    assert not report.passed
    assert expected in failing(report), str(report)


def test_the_seeds_draw_every_feature() -> None:
    drawn = set().union(*(case(seed).spec.features for seed in SEEDS))
    assert drawn >= {"flat", "image", "sequence", "tokens", "nested", "named", "custom-top", "skip", "residual",
                     "tied", "frozen", "eval", "dropout", "batchnorm", "instancenorm", "recurrent", "attention",
                     "transformer"}
    assert {case(seed).spec.loss for seed in SEEDS} == set(LOSSES)
