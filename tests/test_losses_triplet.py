"""TripletMarginLoss, the loss of a model's three outputs (anchor, positive, negative) without targets: its
formula by loops for every kind of p, hand-computed values, PyTorch's slopes at the kinks (the hinge at 0, a
zero distance, the swap's tie, p = inf's ties, p < 1 at a zero difference), the gradient checker behind a
three-output triplet network (one tower run once on the three stacked inputs; run three times it fails),
fit learning an embedding, the placeholder y_true, metrics, dtypes, refusals, and PyTorch's values when it
is installed."""

from __future__ import annotations

import math
import pathlib
import warnings
from typing import Any

import numpy as np
import pytest
from test_losses_gaussian_nll import assert_refusals_keep_the_last_pass

import minidl as md
from minidl.testing import assert_gradients_ok
from minidl.training import MeanSquaredError

#: the norm orders tested: the norms, a fractional one each side of 1 and 2, a large one, below 1
ORDERS = [2.0, 1.0, math.inf, 1.5, 3.0, 0.5, 7.3]


def distance(x: np.ndarray, y: np.ndarray, p: float, eps: float) -> float:
    """PyTorch's pairwise distance of two vectors, element by element."""
    u = [float(a) - float(b) + eps for a, b in zip(x, y, strict=True)]
    if p == math.inf:
        return max(abs(v) for v in u)
    return math.fsum(abs(v) ** p for v in u) ** (1 / p)


def slope(x: np.ndarray, y: np.ndarray, p: float, eps: float) -> np.ndarray:
    """d distance(x, y) / dx, element by element (PyTorch's: 0 at a zero distance, ties share for inf)."""
    u = [float(a) - float(b) + eps for a, b in zip(x, y, strict=True)]
    d = distance(x, y, p, eps)
    if d == 0:
        return np.zeros(len(u))
    if p == math.inf:
        ties = [abs(v) == d for v in u]
        return np.array([math.copysign(1.0, v) / sum(ties) if tie else 0.0 for v, tie in zip(u, ties, strict=True)])
    if p == 1:
        return np.array([float(np.sign(v)) for v in u])
    return np.array([0.0 if v == 0 else math.copysign((abs(v) / d) ** (p - 1), v) for v in u])


def by_loops(a: np.ndarray, pos: np.ndarray, neg: np.ndarray, margin: float, p: float, eps: float, swap: bool,
             reduction: str) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The loss and its three gradients triplet by triplet, for (N, D) arrays."""
    terms, da, dp, dn = [], np.zeros(a.shape), np.zeros(a.shape), np.zeros(a.shape)
    scale = 1 / len(a) if reduction == "mean" else 1.0
    for i in range(len(a)):
        d_pos, d_an = distance(a[i], pos[i], p, eps), distance(a[i], neg[i], p, eps)
        d_pn = distance(pos[i], neg[i], p, eps) if swap else math.inf
        z = margin + d_pos - min(d_an, d_pn)
        terms.append(max(z, 0.0))
        if z < 0:
            continue
        s_ap, s_an = slope(a[i], pos[i], p, eps), slope(a[i], neg[i], p, eps)
        w = 1.0 if d_an < d_pn else 0.5 if d_an == d_pn else 0.0  # the share of d_an in the min
        da[i] = s_ap - w * s_an
        dp[i] = -s_ap
        dn[i] = w * s_an
        if w < 1:
            s_pn = slope(pos[i], neg[i], p, eps)
            dp[i] -= (1 - w) * s_pn
            dn[i] += (1 - w) * s_pn
    return math.fsum(terms) * scale, da * scale, dp * scale, dn * scale


@pytest.mark.parametrize("p", ORDERS)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_its_formula_by_loops(p: float, swap: bool, reduction: str) -> None:
    rng = np.random.default_rng(int(10 * p) if p < math.inf else 99)
    for margin, eps, shape in ((1.0, 1e-6, (6, 3)), (0.4, 0.0, (4, 5)), (2.5, -0.05, (1, 1))):
        a, pos, neg = (rng.normal(size=shape) for _ in range(3))
        pos[0] = a[0] + 0.05 * rng.normal(size=shape[1])  # a close positive
        loss = md.TripletMarginLoss(margin, p, eps, swap, reduction)
        value = loss((a, pos, neg), None)
        grads = loss.backward()
        expected = by_loops(a, pos, neg, margin, p, eps, swap, reduction)
        assert value == pytest.approx(expected[0], rel=1e-13, abs=1e-15)
        for g, e in zip(grads, expected[1:], strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-14)


def test_hand_computed_values() -> None:
    a, pos = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])  # d_pos = 5
    loss = md.TripletMarginLoss(margin=1.0, eps=0.0, reduction="sum")
    assert loss((a, pos, np.array([[0.0, 5.0]])), None) == 1.0  # 1 + 5 - 5
    da, dp, dn = loss.backward()
    np.testing.assert_allclose(da, [[-0.6, 0.2]], rtol=1e-15)  # (a - pos) / 5 - (a - neg) / 5
    np.testing.assert_allclose(dp, [[0.6, 0.8]], rtol=1e-15)
    np.testing.assert_allclose(dn, [[0.0, -1.0]], rtol=1e-15)
    assert loss((a, pos, np.array([[6.0, 8.0]])), None) == 0.0  # the negative 10 away: past the margin
    assert not any(g.any() for g in loss.backward())
    # swap: the positive is nearer the negative (1) than the anchor is (sqrt(34)): d_neg = 1
    swap = md.TripletMarginLoss(margin=1.0, eps=0.0, swap=True, reduction="sum")
    assert swap((a, pos, np.array([[3.0, 5.0]])), None) == 5.0  # 1 + 5 - 1
    da, dp, dn = swap.backward()
    np.testing.assert_allclose(da, [[-0.6, -0.8]], rtol=1e-15)  # the anchor only pulled
    np.testing.assert_allclose(dp, [[0.6, 1.8]], rtol=1e-15)  # pulled, and pushed from the negative
    np.testing.assert_allclose(dn, [[0.0, -1.0]], rtol=1e-15)
    # p = 1, the mean of two triplets with PyTorch's eps: |(-1 + eps)| + |(-2 + eps)| etc.
    l1 = md.TripletMarginLoss(margin=0.5, p=1)
    value = l1((np.zeros((2, 2)), np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [4.0, 0.0]])), None)
    first = 0.5 + (1 - 1e-6) + (2 - 1e-6) - (1e-6 + (1 - 1e-6))  # 2.5 - 2e-6
    assert value == pytest.approx(first / 2, rel=1e-15)  # (the second: 0.5 + 2e-6 - 4: 0)


def test_pytorchs_slopes_at_the_kinks() -> None:
    """Each case: PyTorch 2.13's gradients, probed (tested against torch itself below when installed)."""
    def grads(a: list[Any], pos: list[Any], neg: list[Any], **options: Any) -> tuple[float, list[Any]]:
        loss = md.TripletMarginLoss(**{"eps": 0.0, **options})
        value = loss((np.array(a, float), np.array(pos, float), np.array(neg, float)), None)
        return value, [g.tolist() for g in loss.backward()]

    def close(got: tuple[float, list[Any]], value: float, expected: list[Any]) -> None:  # (p = 7.3: round-off)
        assert got[0] == pytest.approx(value, rel=1e-15)
        np.testing.assert_allclose(np.array(got[1]), np.array(expected), rtol=1e-15, atol=1e-15)

    # the hinge's kink: margin + d_pos - d_neg = 0 exactly, its slope passed (the active side), p = 1 and 2
    for p in (1.0, 2.0):
        assert grads([[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]], p=p) == (0.0, [[[0.0, 0.0]], [[1.0, 0.0]],
                                                                             [[-1.0, 0.0]]])
    # a zero distance (anchor = positive, eps = 0): no slope, for every p, p < 1 included
    for p in (*ORDERS, 0.25):
        close(grads([[1.0, 2.0]], [[1.0, 2.0]], [[1.5, 2.0]], p=p), 0.5, [[[1.0, 0.0]], [[0.0, 0.0]], [[-1.0, 0.0]]])
    # a zero difference in one element: slope 0 there, also for p < 1, where |u|^(p - 1) is infinite
    for p in ORDERS:
        close(grads([[1.0, 2.0]], [[1.0, 3.0]], [[1.5, 2.0]], p=p), 1.5, [[[1.0, -1.0]], [[0.0, 1.0]], [[-1.0, 0.0]]])
    # swap's tie d(a, n) = d(p, n): half the slope each (PyTorch's min)
    assert grads([[0.0, 0.0]], [[2.0, 0.0]], [[1.0, 0.0]], swap=True) == (2.0, [[[-0.5, 0.0]], [[0.5, 0.0]],
                                                                                [[0.0, 0.0]]])
    # p = inf: the tied largest differences share the slope
    assert grads([[0.0, 0.0, 0.0]], [[2.0, -2.0, 1.0]], [[1.0, 0.0, 0.0]], p=math.inf) == \
        (2.0, [[[0.5, 0.5, 0.0]], [[0.5, -0.5, 0.0]], [[-1.0, 0.0, 0.0]]])
    assert grads([[0.0, 0.0, 0.0]], [[2.0, -2.0, 2.0]], [[1.0, 0.0, 0.0]], p=math.inf)[1][1] == \
        [[1 / 3, -1 / 3, 1 / 3]]


def test_infinity_ties_share_the_gradient_rounded_once() -> None:
    """p = inf: each of k tied largest differences gets (g / k) sign(u), g / k rounded once in the dtype
    (PyTorch's order; g = 1/N for the mean, halved at a swap tie), not g times a rounded 1 / k."""
    a, pos, neg = np.zeros((3, 3), np.float32), np.ones((3, 3), np.float32), np.full((3, 3), 1.5, np.float32)
    loss = md.TripletMarginLoss(p=math.inf, eps=0.0)
    assert loss((a, pos, neg), None) == pytest.approx(0.5)
    da, dp, dn = loss.backward()
    share = np.float32(1 / 3) / np.float32(3)  # g = 1/N = 1/3, k = 3 ties
    assert share != np.float32(1 / 3) * np.float32(1 / 3)  # (the case tells the two roundings apart)
    assert (da == 0).all() and (dp == share).all() and (dn == -share).all()
    # swap, d(a, n) = d(p, n) = 1: half of g each, then / 3
    swap = md.TripletMarginLoss(p=math.inf, eps=0.0, swap=True)
    assert swap((a, np.full((3, 3), 2, np.float32), np.ones((3, 3), np.float32)), None) == pytest.approx(2.0)
    da, dp, dn = swap.backward()
    g = np.float32(1 / 3)
    half = (g * np.float32(0.5)) / np.float32(3)
    assert (da == half - g / np.float32(3)).all() and (dp == g / np.float32(3) - half).all() and (dn == 0).all()


def test_infinity_ties_bit_for_bit_with_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    cases = 0
    for t in range(48):
        shape = [(5, 3), (3, 4), (2, 3, 4), (7, 2)][t % 4]
        swap, reduction = bool(t % 3), ["mean", "sum"][t % 2]
        margin = float(rng.choice([1.0, 0.3, 3.0]))
        for dtype in (np.float32, np.float64):
            x = tuple(rng.integers(-2, 3, size=shape).astype(dtype) for _ in range(3))  # many ties
            ours = md.TripletMarginLoss(margin, math.inf, 0.0, swap, reduction)
            ours(x, None)
            tensors = [torch.tensor(v, requires_grad=True) for v in x]
            torch.nn.TripletMarginLoss(margin=margin, p=math.inf, eps=0.0, swap=swap, reduction=reduction)(
                *tensors).backward()
            for g, tensor in zip(ours.backward(), tensors, strict=True):
                np.testing.assert_array_equal(g, tensor.grad.numpy())
            cases += 1
    assert cases == 96


def one_element_by_hand(x: tuple[np.ndarray, ...], margin: float, eps: float, swap: bool,
                        reduction: str) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """D = 1: every distance is |u| exactly, its slope sign(u), computed in the arrays' dtype."""
    a, pos, neg = x
    u_ap, u_an, u_pn = a - pos + eps, a - neg + eps, pos - neg + eps
    d_an, d_pn = np.abs(u_an), np.abs(u_pn)
    z = (margin + np.abs(u_ap)) - (np.minimum(d_an, d_pn) if swap else d_an)
    scale = 1.0 / z.size if reduction == "mean" else 1.0
    g = (z >= 0) * a.dtype.type(scale)
    share = (np.where(d_an < d_pn, 1, np.where(d_an == d_pn, 0.5, 0)) if swap else np.ones_like(z)).astype(a.dtype)
    pulled, pushed, swapped = g * np.sign(u_ap), (g * share) * np.sign(u_an), (g * (1 - share)) * np.sign(u_pn)
    value = float(np.add.reduce(np.maximum(z, 0), axis=None, dtype=np.float64)) * scale
    return value, pulled - pushed, -pulled - swapped, pushed + swapped


def test_one_element_embeddings_are_at_their_absolute_difference() -> None:
    """D = 1: PyTorch's distance |u| for every p, not (|u|^p)^(1/p), which rounds (the kink missed below),
    underflows (float32 p = 100 at 0.3: 0) or overflows (p = 50 at 10: inf)."""
    def run(values: tuple[float, float, float], p: float, **options: Any) -> tuple[float, list[float]]:
        loss = md.TripletMarginLoss(p=p, eps=0.0, **options)
        value = loss(tuple(np.array([[v]], np.float32) for v in values), None)
        return value, [g.item() for g in loss.backward()]

    assert run((1.0, 3.0, 4.0), 3.0) == (0.0, [0.0, 1.0, -1.0])  # margin + 2 - 3 = 0: the kink's slope
    assert run((0.3, 0.0, 0.3), 100.0) == (float(np.float32(1) + np.float32(0.3)), [1.0, -1.0, 0.0])
    assert run((10.0, 0.0, 12.0), 50.0) == (9.0, [2.0, -1.0, -1.0])  # 1 + 10 - 2
    assert run((10.0, 0.0, 12.0), 50.0, swap=True) == (9.0, [2.0, -1.0, -1.0])  # d(p, n) = 12: not the min
    rng = np.random.default_rng(14)
    for dtype in (np.float32, np.float64):
        for p in (*ORDERS, 50.0, 100.0):
            for shape, swap, reduction in (((6, 1), False, "mean"), ((2, 3, 1), True, "sum"), ((1,), True, "mean")):
                x = tuple(np.round(rng.normal(size=shape) * 2, 1).astype(dtype) for _ in range(3))  # ties, kinks
                margin, eps = float(rng.choice([1.0, 0.5])), float(rng.choice([0.0, 1e-6]))
                loss = md.TripletMarginLoss(margin, p, eps, swap, reduction)
                value = loss(x, None)
                expected = one_element_by_hand(x, margin, eps, swap, reduction)
                assert value == expected[0]
                for g, e in zip(loss.backward(), expected[1:], strict=True):
                    assert g.dtype == dtype and g.shape == shape
                    np.testing.assert_array_equal(g, e)


def test_one_element_embeddings_against_torch_if_installed() -> None:
    """The distances are PyTorch's; the gradients sign(u), PyTorch's up to its formula's round-off, and
    where PyTorch's is NaN (its |u|^(p-1) under- or overflowing) a deliberate difference."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    nans = cases = 0
    for dtype, rtol in ((np.float32, 1e-6), (np.float64, 1e-15)):
        for p in (*ORDERS, 50.0, 100.0):
            for swap in (False, True):
                x = tuple((rng.normal(size=(8, 1)) * rng.choice([0.3, 3.0, 1e10, 1e-10], size=(8, 1))).astype(dtype)
                          for _ in range(3))
                ours = md.TripletMarginLoss(p=p, swap=swap, reduction="sum")
                value = ours(x, None)
                tensors = [torch.tensor(v, requires_grad=True) for v in x]
                theirs = torch.nn.TripletMarginLoss(p=p, swap=swap, reduction="sum")(*tensors)
                theirs.backward()
                assert value == pytest.approx(theirs.item(), rel=rtol)
                for g, tensor in zip(ours.backward(), tensors, strict=True):
                    expected = tensor.grad.numpy()
                    finite = np.isfinite(expected)
                    np.testing.assert_allclose(g[finite], expected[finite], rtol=0, atol=8 * np.finfo(dtype).eps)
                    nans += int((~finite).sum())
                cases += 1
    assert cases == 36 and nans > 0


def test_the_distances_are_pairwise_distances() -> None:
    """The loss shares PairwiseDistance's code: its value from the layer's distances, for p >= 1."""
    rng = np.random.default_rng(1)
    a, pos, neg = rng.normal(size=(3, 5, 4))
    for p in (1.0, 2.0, 3.0, math.inf):
        d_pos = md.PairwiseDistance(p)((a, pos))
        d_neg = np.minimum(md.PairwiseDistance(p)((a, neg)), md.PairwiseDistance(p)((pos, neg)))
        expected = np.maximum(0.3 + d_pos - d_neg, 0).mean()
        assert md.TripletMarginLoss(0.3, p, swap=True)((a, pos, neg), None) == pytest.approx(expected, rel=1e-15)


def test_one_triplet_and_more_axes() -> None:
    rng = np.random.default_rng(2)
    a, pos, neg = rng.normal(size=(3, 2, 3, 4))  # (N=2, L=3, D=4): six triplets
    loss, flat = md.TripletMarginLoss(0.8, swap=True), md.TripletMarginLoss(0.8, swap=True)
    assert loss((a, pos, neg), None) == pytest.approx(flat(tuple(x.reshape(6, 4) for x in (a, pos, neg)),
                                                           None), rel=1e-15)
    for g, f in zip(loss.backward(), flat.backward(), strict=True):
        np.testing.assert_allclose(g, f.reshape(2, 3, 4), rtol=1e-15)
    assert loss.batch_weight is None
    # one triplet (D,), as PyTorch's unbatched input: the (1, D) batch's value and gradients
    for y_true in (None, np.zeros(1), 0.0, np.zeros((1, 5))):
        value = loss((a[0, 0], pos[0, 0], neg[0, 0]), y_true)
        assert value == pytest.approx(flat((a[0, :1, :], pos[0, :1, :], neg[0, :1, :]), None), rel=1e-15)
        assert loss.batch_weight == 1.0
        for g, f in zip(loss.backward(), flat.backward(), strict=True):
            assert g.shape == (4,)
            np.testing.assert_allclose(g, f[0], rtol=1e-15)


class TripletNet(md.Model):
    """One embedding tower for the anchor, the positive and the negative: three (N, d) inputs -> three
    (N, k) embeddings.  A layer keeps one forward cache, so the tower runs once, on the three inputs
    stacked into one batch, and its outputs and gradients are split in three."""

    def __init__(self, d: int = 6, k: int = 2) -> None:
        super().__init__()
        self.tower = md.Sequential(md.Dense(d, 16, rng=0), md.Tanh(), md.Dense(16, k, rng=1))

    def forward(self, x: Any) -> Any:
        return tuple(np.split(self.tower(np.concatenate(x)), 3))

    def backward(self, grad_output: Any) -> Any:
        return tuple(np.split(self.tower.backward(np.concatenate(grad_output)), 3))


class ThreeCalls(TripletNet):
    """The tower called three times: each call overwrites its forward cache, so every backward but the
    last goes back through the negative's pass."""

    def forward(self, x: Any) -> Any:
        return tuple(self.tower(v) for v in x)

    def backward(self, grad_output: Any) -> Any:
        return tuple(self.tower.backward(g) for g in grad_output)


@pytest.mark.parametrize("options", [{}, {"p": 1.0, "swap": True}, {"p": 3.0, "margin": 0.5, "reduction": "sum"},
                                     {"p": math.inf}, {"p": 0.5, "swap": True, "margin": 2.0}],
                         ids=["p2", "p1-swap", "p3-sum", "pinf", "p0.5-swap"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_checker_behind_a_triplet_network(options: dict[str, Any], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = tuple(rng.normal(size=(5, 6)) for _ in range(3))
    loss = md.TripletMarginLoss(**options)
    report = assert_gradients_ok(TripletNet(k=3), inputs=x, loss=loss, seed=seed)  # y_true drawn: placeholders
    assert {r.name for r in report.results if r.checked} >= {"input[0]", "input[1]", "input[2]", "tower.0.W",
                                                             "tower.2.W"}
    assert loss.random_targets(TripletNet(k=3)(x), rng).tolist() == [0.0] * 5


def test_gradient_checker_with_placeholder_targets_and_a_tower_called_three_times() -> None:
    rng = np.random.default_rng(3)
    x = tuple(rng.normal(size=(4, 6)) for _ in range(3))
    report = assert_gradients_ok(TripletNet(), inputs=x, loss=md.TripletMarginLoss(swap=True), targets=np.ones(4),
                                 seed=0)
    assert report.passed
    wrong = md.GradientChecker(ThreeCalls(), inputs=x, loss=md.TripletMarginLoss(swap=True), seed=0).run()
    assert not wrong.passed  # the design the docs warn about
    assert {r.name for r in wrong.results if r.failed} >= {"input[0]", "tower.0.W"}


def triplets(rng: np.random.Generator, n: int, d: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n triplets of two classes, told apart by the sign of feature 0 alone; the other d - 1 features are
    N(0, 1) noise, which dominates the distances between raw samples."""
    label = rng.integers(0, 2, n)

    def sample(c: np.ndarray) -> np.ndarray:
        x = rng.normal(size=(n, d))
        x[:, 0] = np.where(c == 1, 1.0, -1.0) + 0.1 * rng.normal(size=n)
        return x

    return sample(label), sample(label), sample(1 - label)


def gaps(embeddings: Any) -> np.ndarray:
    """Per triplet: how much farther the anchor is from its negative than from its positive."""
    a, pos, neg = embeddings
    return np.linalg.norm(a - neg, axis=-1) - np.linalg.norm(a - pos, axis=-1)


def test_fit_learns_an_embedding_that_orders_held_out_triplets() -> None:
    rng = np.random.default_rng(0)
    x, x_test = triplets(rng, 400), triplets(rng, 300)
    model, loss = TripletNet(), md.TripletMarginLoss(margin=1.0)
    assert np.mean(gaps(model(x_test)) > 0) < 0.7  # the untrained tower: barely better than chance
    before = loss(model(x_test), None)

    def ordered(embeddings: Any, _: Any) -> float:
        return float(np.mean(gaps(embeddings) > 0))

    history = model.fit(x, np.zeros(400), loss=loss, optimizer=md.Adam(model.parameters(), lr=0.01), epochs=10,
                        batch_size=32, metrics=[ordered], validation_data=(x_test, np.zeros(300)), verbose=0, rng=0)
    held_out = gaps(model(x_test))
    assert held_out.min() > 0.9  # every held-out anchor nearer its positive, nearly by the margin
    assert before > 0.8 and loss(model(x_test), None) < 0.01
    assert history.history["loss"][0] > 0.3 and history.history["loss"][-1] < 0.01
    assert history.history["val_ordered"][-1] == 1.0
    scores = model.evaluate(x_test, np.zeros(300), batch_size=64)  # the fit's loss; y: the placeholder
    assert scores["loss"] == pytest.approx(loss(model(x_test), None), rel=1e-12, abs=1e-15)
    # embed new points with the tower alone
    np.testing.assert_allclose(model.tower.predict(x_test[0]), model(x_test)[0], rtol=1e-15)


def test_the_placeholder_y_and_the_metrics() -> None:
    rng = np.random.default_rng(4)
    x = triplets(rng, 12)
    model = TripletNet()
    state = {k: v.copy() for k, v in model.state_dict().items()}
    loss = md.TripletMarginLoss()
    optimizer = md.SGD(model.parameters(), lr=0.1)
    for metric in ("accuracy", "acc", "mse", "MAE"):
        with pytest.raises(ValueError, match=rf"fit: metrics=\[{metric!r}\] with TripletMarginLoss: the loss has no "
                                             r"targets \(y is a placeholder\), so a built-in metric has nothing to "
                                             "score; pass a metric of your own"):
            model.fit(x, np.zeros(12), loss=loss, optimizer=optimizer, metrics=[metric], verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: metrics=\['mse'\] with TripletMarginLoss"):
        model.evaluate(x, np.zeros(12), loss=loss, metrics=["mse"])
    with pytest.raises(ValueError) as unknown:  # an unknown name: no built-in one offered, all being refused
        model.fit(x, np.zeros(12), loss=loss, optimizer=optimizer, metrics=["auc"], verbose=0)
    assert str(unknown.value) == ("fit: unknown metric 'auc'; use a callable metric(y_pred, y_true) -> float "
                                  "('accuracy', 'mse' and 'mae' are refused with TripletMarginLoss)")
    with pytest.raises(md.ShapeError, match=r"mse: the model returns 3 outputs \(a tuple\)"):
        model.evaluate(x, np.zeros(12), loss=loss, metrics=[MeanSquaredError()])  # an object: as given
    with pytest.raises(md.DTypeError, match=r"fit: y is None: pass the targets, one row per sample.* TripletMarginLoss"
                                            r", ignores y's values; fit still batches y with x, so give it a "
                                            r"placeholder such as np\.zeros\(12\)"):
        model.fit(x, None, loss=loss, optimizer=optimizer, verbose=0)  # type: ignore[arg-type]
    with pytest.raises(md.DTypeError, match=r"evaluate: y is None"):
        model.evaluate(x, None, loss=loss)  # type: ignore[arg-type]
    for key, value in model.state_dict().items():  # nothing trained
        np.testing.assert_array_equal(value, state[key])
    # any y of 12 rows is ignored: labels, NaN, no columns, strings
    for y in (np.zeros(12), np.arange(12), np.full((12, 3), np.nan), np.zeros((12, 0)), np.array(["a"] * 12)):
        assert model.evaluate(x, y, loss=loss, batch_size=5)["loss"] == pytest.approx(loss(model(x), None), rel=1e-14)
    history = model.fit(x, np.full(12, np.nan), loss=loss, optimizer=optimizer, batch_size=5, verbose=0, epochs=2)
    assert all(math.isfinite(v) for v in history.history["loss"])


def test_dtypes_are_kept() -> None:
    rng = np.random.default_rng(5)
    a, pos, neg = rng.normal(size=(3, 7, 5))
    for options in ({}, {"p": 1.5, "swap": True}, {"p": math.inf, "reduction": "sum"}):
        wide = md.TripletMarginLoss(**options)
        x32 = tuple(v.astype(np.float32) for v in (a, pos, neg))
        value = wide(x32, None)
        grads = wide.backward()
        assert isinstance(value, float) and all(g.dtype == np.float32 for g in grads)
        ref = md.TripletMarginLoss(**options)
        expected = ref(tuple(v.astype(np.float64) for v in x32), None)
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-7)
        for g, r in zip(grads, ref.backward(), strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-7)
        # float16: computed in float32 and rounded once: the float32 computation of the same numbers
        half, single = md.TripletMarginLoss(**options), md.TripletMarginLoss(**options)
        x16 = tuple(v.astype(np.float16) for v in (a, pos, neg))
        assert half(x16, None) == single(tuple(v.astype(np.float32) for v in x16), None)
        for g, s in zip(half.backward(), single.backward(), strict=True):
            assert g.dtype == np.float16
            np.testing.assert_array_equal(g, s.astype(np.float16))
    # big-endian arrays (read from a file) give native gradients
    loss = md.TripletMarginLoss()
    assert loss(tuple(v.astype(">f8") for v in (a, pos, neg)), None) == md.TripletMarginLoss()((a, pos, neg), None)
    assert all(g.dtype.isnative for g in loss.backward())


def test_float16_sums_of_squares_do_not_overflow() -> None:
    a = np.full((1, 8), 100, np.float16)
    pos, neg = np.full((1, 8), -1, np.float16), np.full((1, 8), 200, np.float16)  # |a - pos|^2 = 81608 > 65504
    loss = md.TripletMarginLoss(margin=300.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = loss((a, pos, neg), None)
        grads = loss.backward()
    expected = 300 + math.sqrt(8) * (101 + 1e-6) - math.sqrt(8) * (100 - 1e-6)
    assert value == pytest.approx(expected, rel=1e-6)
    assert all(g.dtype == np.float16 and np.isfinite(g).all() for g in grads)
    unit = 1 / math.sqrt(8)  # the unit vectors from the positive and from the negative to the anchor: +-unit
    for g, expected in zip(grads, (2 * unit, -unit, -unit), strict=True):
        np.testing.assert_allclose(g.astype(float), expected, rtol=1e-3)


def test_refusals_change_nothing() -> None:
    loss = md.TripletMarginLoss()
    x = tuple(np.random.default_rng(6).normal(size=(3, 4, 2)))
    before = loss(x, None)
    grads = loss.backward()
    a, pos, neg = x
    cases: list[tuple[Any, Any, type, str]] = [
        (a, None, md.ShapeError, r"TripletMarginLoss: y_pred is the triplet \(anchor, positive, negative\) of three "
                                 r"arrays \(a model's three outputs\), got ndarray"),
        ((a, pos), None, md.ShapeError, "got a tuple of 2"),
        ((a, pos, neg, neg), None, md.ShapeError, "got a tuple of 4"),
        ([a, pos, neg], None, md.ShapeError, "got list"),
        ((a, pos, neg[:, :1]), None, md.ShapeError, r"TripletMarginLoss: anchor, positive and negative must have the "
                                                    r"same shape, got \(4, 2\), \(4, 2\) and \(4, 1\)"),
        ((a, pos[:1], neg), None, md.ShapeError, r"got \(4, 2\), \(1, 2\) and \(4, 2\)"),  # (PyTorch broadcasts)
        ((a, pos.astype(np.float32), neg), None, md.DTypeError, "anchor, positive and negative must have the same "
                                                                "dtype, got float64, float32 and float64"),
        ((a, pos, neg.astype(int)), None, md.DTypeError, r"expected a floating-point y_pred\[2\] \(negative\), got "
                                                         "dtype int"),
        ((a, pos, None), None, md.DTypeError, r"y_pred\[2\] \(negative\)"),
        ((np.float64(1.0),) * 3, None, md.ShapeError, r"expected anchor, positive and negative of shape \(N, D\) \(a "
                                                      r"batch of triplets\) or \(D,\) \(one triplet\), got shape \(\)"),
        ((np.zeros((0, 2)),) * 3, None, md.ShapeError, r"TripletMarginLoss: empty prediction: y_pred\[0\] \(anchor\) "
                                                      r"of shape \(0, 2\) has no elements"),
        ((np.zeros((4, 0)),) * 3, None, md.ShapeError, r"TripletMarginLoss: empty prediction: y_pred\[0\] \(anchor\) "
                                                      r"of shape \(4, 0\) has no elements"),
        (x, np.zeros(3), md.ShapeError, r"TripletMarginLoss: y_true is not used \(a triplet loss has no targets\), "
                                        r"but when given it must have one row per triplet, 4 here \(y_pred's arrays "
                                        r"have shape \(4, 2\)\), e\.g\. np\.zeros\(4\); got shape \(3,\)"),
        (x, 0.0, md.ShapeError, r"one row per triplet, 4 here .* got shape \(\)"),
        ((a[0], pos[0], neg[0]), np.zeros(2), md.ShapeError, r"one row per triplet, 1 here .* e\.g\. None or "
                                                             r"np\.zeros\(1\); got shape \(2,\)"),
        (x, (a, pos), md.DTypeError, "y_true"),  # several arrays are no placeholder
    ]
    for where in range(3):
        arrays = [v.copy() for v in x]
        arrays[where][1, 0] = [np.nan, np.inf, -np.inf][where]
        name = ["anchor", "positive", "negative"][where]
        cases.append((tuple(arrays), None, md.NonFiniteError,
                      rf"TripletMarginLoss: y_pred\[{where}\] \({name}\) holds 1 NaN/inf value\(s\), the first at "
                      r"index \(1, 0\)"))
    assert_refusals_keep_the_last_pass(loss, md.TripletMarginLoss(), cases, grads)
    assert loss(x, None) == before
    # a margin or eps the computing dtype cannot hold
    for options in ({"margin": 1e39}, {"eps": -1e39}):
        with pytest.raises(ValueError, match=r"TripletMarginLoss: (margin 1e\+39|eps -1e\+39) overflows the dtype "
                                             "the loss is computed in, float32"):
            md.TripletMarginLoss(**options)(tuple(v.astype(np.float16) for v in x), None)
    assert md.TripletMarginLoss(margin=1e39)(x, None) == pytest.approx(1e39)


def test_constructor_arguments() -> None:
    assert repr(md.TripletMarginLoss()) == \
        "TripletMarginLoss(margin=1.0, p=2.0, eps=1e-06, swap=False, reduction='mean')"
    assert repr(md.TripletMarginLoss(0.5, 1, 0, True, "sum")) == \
        "TripletMarginLoss(margin=0.5, p=1.0, eps=0.0, swap=True, reduction='sum')"
    for margin in (0.0, -1.0, -1e-300):
        with pytest.raises(ValueError, match=r"TripletMarginLoss: margin must be > 0 \(as PyTorch\), got"):
            md.TripletMarginLoss(margin)
    for margin in (math.inf, math.nan, "1", None, True):
        with pytest.raises(ValueError, match="TripletMarginLoss: margin must be a finite number"):
            md.TripletMarginLoss(margin)  # type: ignore[arg-type]
    for p in (0.0, -1.0, -math.inf, math.nan, "2", True, None, 10**400):
        with pytest.raises(ValueError, match=r"TripletMarginLoss: p must be a number > 0 or math\.inf \(the norm's "
                                             r"order\), got"):
            md.TripletMarginLoss(p=p)  # type: ignore[arg-type]
    for eps in (math.inf, -math.inf, math.nan, "1e-6", None):
        with pytest.raises(ValueError, match="TripletMarginLoss: eps must be a finite number"):
            md.TripletMarginLoss(eps=eps)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TripletMarginLoss: swap must be a bool, got 1"):
        md.TripletMarginLoss(swap=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"TripletMarginLoss: reduction must be one of \('mean', 'sum'\), got 'none'"):
        md.TripletMarginLoss(reduction="none")
    with pytest.raises(md.BackwardBeforeForwardError, match=r"TripletMarginLoss\.backward called before forward"):
        md.TripletMarginLoss().backward()
    assert md.TripletMarginLoss.several_predictions and md.TripletMarginLoss(swap=np.bool_(True)).swap is True


BAD_SETTINGS: list[tuple[str, Any, type[Exception], str]] = [
    *[("margin", v, ValueError, r"TripletMarginLoss: margin must be > 0 \(as PyTorch\), got") for v in (0.0, -1.0)],
    *[("margin", v, ValueError, "TripletMarginLoss: margin must be a finite number") for v in (math.nan, "1", None)],
    *[("p", v, ValueError, r"TripletMarginLoss: p must be a number > 0 or math\.inf \(the norm's order\), got")
      for v in (0, 0.0, -1.0, math.nan, "2", True, None)],
    *[("eps", v, ValueError, "TripletMarginLoss: eps must be a finite number") for v in (math.inf, math.nan, "0")],
    *[("swap", v, TypeError, "TripletMarginLoss: swap must be a bool, got") for v in (1, "yes", None)],
]


def test_settings_set_later_are_checked_and_change_nothing() -> None:
    """Set after construction, they were not checked: p = 0 was a ZeroDivisionError at the next forward, a
    negative margin a quiet loss of 0."""
    x = tuple(np.random.default_rng(7).normal(size=(3, 4, 5)))
    for name, bad, error, pattern in BAD_SETTINGS:
        loss = md.TripletMarginLoss(margin=2.0, p=1.5, eps=1e-3, swap=True)
        value = loss(x, None)
        grads = loss.backward()
        cache = loss._cache
        with pytest.raises(error, match=pattern):
            setattr(loss, name, bad)
        assert (loss.margin, loss.p, loss.eps, loss.swap) == (2.0, 1.5, 1e-3, True) and loss._cache is cache
        for got, expected in zip(loss.backward(), grads, strict=True):
            np.testing.assert_array_equal(got, expected)
        assert loss(x, None) == value
    loss = md.TripletMarginLoss()
    loss.margin, loss.p, loss.eps, loss.swap = np.float32(0.5), 3, np.int64(0), np.bool_(True)
    assert (loss.margin, loss.p, loss.eps, loss.swap) == (0.5, 3.0, 0.0, True)
    assert [type(v) for v in (loss.margin, loss.p, loss.eps, loss.swap)] == [float, float, float, bool]


@pytest.mark.parametrize("changed", [{"p": 1.0}, {"p": math.inf}, {"swap": True}, {"swap": False},
                                     {"margin": 0.1, "eps": 0.5}, {"p": 0.5, "swap": True, "margin": 3.0}])
def test_a_backward_uses_its_forwards_settings_and_the_next_forward_the_new_ones(changed: dict[str, Any]) -> None:
    """p set between a forward and its backward gave wrong gradients silently (0.42 off), swap = True a bare
    IndexError; the backward now uses its forward's p and swap, the next forward the new settings."""
    a, pos, neg = np.random.default_rng(8).normal(size=(3, 6, 4))
    for swap in (False, True):
        settings = {"margin": 5.0, "p": 2.0, "eps": 1e-6, "swap": swap}  # (margin 5: every triplet has a slope)
        loss = md.TripletMarginLoss(**settings)  # type: ignore[arg-type]
        loss((a, pos, neg), None)
        for name, value in changed.items():
            setattr(loss, name, value)
        _, *expected = by_loops(a, pos, neg, reduction="mean", **settings)  # type: ignore[arg-type]
        for _ in range(2):  # (a backward again: the same)
            for got, want in zip(loss.backward(), expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        new = {**settings, **changed}
        value, *expected = by_loops(a, pos, neg, reduction="mean", **new)
        assert loss((a, pos, neg), None) == pytest.approx(value, rel=1e-12)
        for got, want in zip(loss.backward(), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_overflow_is_quiet_and_backward_returns_new_arrays() -> None:
    loss = md.TripletMarginLoss()
    anchor = np.array([[3e38, 0.0]], np.float32)
    far = (anchor, np.array([[-3e38, 0.0]], np.float32), anchor.copy())  # d_pos beyond float32, d_neg = eps
    both = (anchor, far[1], np.zeros((1, 2), np.float32))  # d_neg's sum of squares overflows too: inf - inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss(far, None) == math.inf  # (PyTorch: inf here, NaN below)
        loss.backward()
        assert math.isnan(loss(both, None))
        loss.backward()
    x = tuple(np.random.default_rng(7).normal(size=(3, 2, 2)))
    copies = [v.copy() for v in x]
    loss(x, None)
    first, second = loss.backward(), loss.backward()
    for f, s in zip(first, second, strict=True):
        np.testing.assert_array_equal(f, s)
        f[:] = 7
    assert not any(np.shares_memory(f, s) for f, s in zip(first, second, strict=True))
    for v, c in zip(x, copies, strict=True):
        np.testing.assert_array_equal(v, c)  # the caller's arrays untouched


def test_the_docs_example_runs() -> None:
    """docs/losses.md's triplet network: its block runs and its assertions hold."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "losses.md").read_text()
    start = text.index("```python", text.index("## TripletMarginLoss")) + len("```python")
    code = text[start:text.index("```", start)]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/losses.md (TripletMarginLoss)", "exec"), namespace)
    assert namespace["ordered"] == 1.0


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    cases, worst = 0, 0.0
    for t in range(80):
        shape = [(5, 4), (1, 1), (3,), (2, 3, 4), (9, 2), (4, 16)][t % 6]
        p = ORDERS[t % len(ORDERS)]
        swap, reduction = bool(t % 3 == 0), ["mean", "sum"][t % 2]
        margin, eps = float(rng.choice([1.0, 0.3, 2.5])), float(rng.choice([1e-6, 0.0, -0.1, 0.5]))
        a, pos, neg = (rng.normal(size=shape) for _ in range(3))
        if t % 10 == 0:
            pos = a.copy()  # a zero distance with eps = 0
        if t % 10 == 5:
            neg = pos.copy()  # swap: the positive at its negative
        for dtype, rtol, atol in ((np.float64, 1e-12, 1e-14), (np.float32, 2e-6, 2e-6)):
            x = tuple(v.astype(dtype) for v in (a, pos, neg))
            ours = md.TripletMarginLoss(margin, p, eps, swap, reduction)
            value = ours(x, None)
            tensors = [torch.tensor(v, requires_grad=True) for v in x]
            theirs = torch.nn.TripletMarginLoss(margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)(*tensors)
            theirs.backward()
            assert value == pytest.approx(theirs.item(), rel=rtol, abs=atol)
            for g, tensor in zip(ours.backward(), tensors, strict=True):
                assert g.dtype == dtype and g.shape == shape
                np.testing.assert_allclose(g, tensor.grad.numpy(), rtol=rtol, atol=atol)
                if dtype == np.float64:
                    worst = max(worst, float(np.max(np.abs(g - tensor.grad.numpy()))))
            cases += 1
    assert cases == 160 and worst < 1e-13
    # the kinks, on PyTorch's side
    kinks = [([[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]], {"p": 1.0}), ([[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]], {}),
             ([[0.0, 0.0]], [[2.0, 0.0]], [[1.0, 0.0]], {"swap": True}),
             ([[0.0, 0.0, 0.0]], [[2.0, -2.0, 2.0]], [[1.0, 0.0, 0.0]], {"p": math.inf})]
    kinks += [([[1.0, 2.0]], [[1.0, 2.0]], [[1.5, 2.0]], {"p": p}) for p in ORDERS]
    kinks += [([[1.0, 2.0]], [[1.0, 3.0]], [[1.5, 2.0]], {"p": p}) for p in ORDERS]
    for a, pos, neg, options in kinks:
        ours = md.TripletMarginLoss(eps=0.0, **options)
        value = ours((np.array(a), np.array(pos), np.array(neg)), None)
        tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, pos, neg)]
        theirs = torch.nn.TripletMarginLoss(eps=0.0, **options)(*tensors)
        theirs.backward()
        assert value == pytest.approx(theirs.item(), rel=1e-15, abs=1e-15)
        for g, tensor in zip(ours.backward(), tensors, strict=True):
            np.testing.assert_allclose(g, tensor.grad.numpy(), rtol=1e-15, atol=1e-15)
    # what PyTorch refuses (a margin of 0 or less) and what it takes but this loss refuses (p <= 0)
    for margin in (0.0, -1.0):
        with pytest.raises(ValueError, match="expected margin to be greater than 0"):
            torch.nn.TripletMarginLoss(margin=margin)
    assert torch.nn.TripletMarginLoss(p=0.0)(*(torch.randn(3, 4) for _ in range(3))).item() == 1.0  # no distance
