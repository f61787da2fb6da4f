"""PairwiseDistance and CosineSimilarity: their formulas against NumPy, the gradient checker on both inputs,
a siamese network trained with HingeEmbeddingLoss, refusals, and PyTorch's values when it is installed."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.testing import assert_gradients_ok

SHAPES = [(4, 3), (2, 3, 5), (1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_pairwise_distance_is_the_norm_of_the_difference(shape: tuple[int, ...], p: float) -> None:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=shape), rng.normal(size=shape)
    layer = md.PairwiseDistance(p)
    d = layer((x1, x2))
    np.testing.assert_allclose(d, np.linalg.norm(x1 - x2 + 1e-6, ord=p, axis=-1), rtol=1e-13)
    assert md.PairwiseDistance(p, keepdim=True)((x1, x2)).shape == (*shape[:-1], 1)
    dx1, dx2 = layer.backward(np.ones(d.shape))
    np.testing.assert_array_equal(dx2, -dx1)
    if p == 2:  # the unit vector from x2 to x1
        u = x1 - x2 + 1e-6
        np.testing.assert_allclose(dx1, u / np.linalg.norm(u, axis=-1, keepdims=True), rtol=1e-13)


def test_pairwise_distance_of_equal_inputs_and_infinity_ties() -> None:
    x = np.random.default_rng(1).normal(size=(3, 4))
    layer = md.PairwiseDistance(eps=0.0)
    np.testing.assert_array_equal(layer((x, x.copy())), 0.0)
    assert not layer.backward(np.ones(3))[0].any()  # no slope at 0, as PyTorch's
    tie = md.PairwiseDistance(math.inf, eps=0.0)
    assert tie((np.array([[2.0, -2.0, 1.0]]), np.zeros((1, 3)))).tolist() == [2.0]
    np.testing.assert_array_equal(tie.backward(np.ones(1))[0], [[0.5, -0.5, 0.0]])  # shared by the ties


@pytest.mark.parametrize("shape, axis", [((4, 3), 1), ((2, 3, 5), 1), ((2, 3, 5), -1), ((3, 2), 0)])
def test_cosine_similarity_is_the_normalised_dot_product(shape: tuple[int, ...], axis: int) -> None:
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=shape), rng.normal(size=shape)
    layer = md.CosineSimilarity(axis)
    cos = layer((x1, x2))
    expected = (x1 * x2).sum(axis) / (np.linalg.norm(x1, axis=axis) * np.linalg.norm(x2, axis=axis))
    np.testing.assert_allclose(cos, expected, rtol=1e-13)
    np.testing.assert_allclose(layer((x1, 3 * x1)), 1.0, rtol=1e-14)  # parallel vectors
    np.testing.assert_allclose(layer((x1, -x1)), -1.0, rtol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make", [lambda: md.PairwiseDistance(), lambda: md.PairwiseDistance(1.0),
                                  lambda: md.PairwiseDistance(3.0, keepdim=True), lambda: md.PairwiseDistance(math.inf),
                                  lambda: md.CosineSimilarity(), lambda: md.CosineSimilarity(-1)],
                         ids=["p2", "p1", "p3-keepdim", "pinf", "cos", "cos-last"])
def test_gradient_checker_on_both_inputs(make: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2))
    report = assert_gradients_ok(make(), inputs=(x1, x2), seed=seed)
    assert [r.name for r in report.results] == ["input[0]", "input[1]"]
    assert all(r.checked == r.size == x1.size for r in report.results)


class Siamese(md.Model):
    """One encoder for both sides of a pair, then their distance: (x1, x2) -> (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = md.Sequential(md.Dense(4, 8, rng=0), md.Tanh(), md.Dense(8, 3, rng=1))
        self.distance = md.PairwiseDistance()

    def forward(self, x: Any) -> np.ndarray:
        a, b = x
        self._n = len(a)
        both = self.encoder(np.concatenate([a, b]))  # one pass through the shared weights
        return self.distance((both[:self._n], both[self._n:]))

    def backward(self, grad_output: np.ndarray) -> Any:
        da, db = self.distance.backward(grad_output)
        dx = self.encoder.backward(np.concatenate([da, db]))
        return dx[:self._n], dx[self._n:]


def test_a_siamese_network_passes_the_checker_and_learns_with_hinge_embedding() -> None:
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 2, (400, 2))
    centres = np.array([[2.0, 0, 0, 0], [0, 0, 2.0, 0]])
    a, b = (centres[classes[:, i]] + 0.3 * rng.normal(size=(400, 4)) for i in range(2))
    same = np.where(classes[:, 0] == classes[:, 1], 1.0, -1.0)
    model = Siamese()
    report = assert_gradients_ok(model, inputs=(a[:5], b[:5]), loss=md.HingeEmbeddingLoss(), targets=same[:5],
                                 seed=0)
    assert {r.name for r in report.results} >= {"input[0]", "input[1]", "encoder.0.W", "encoder.2.W"}
    model.fit((a, b), same, loss=md.HingeEmbeddingLoss(margin=2.0), optimizer=md.Adam(model.parameters(), lr=0.05),
              epochs=20, batch_size=40, verbose=0, rng=0)
    d = model.predict((a, b))
    assert d[same == 1].max() < d[same == -1].min()  # every similar pair closer than every dissimilar one


def test_dtypes_and_byte_order() -> None:
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    for layer in (md.PairwiseDistance(), md.CosineSimilarity()):
        y = layer((x1, x2))
        assert y.dtype == np.float32
        assert all(g.dtype == np.float32 for g in layer.backward(np.ones(3, np.float32)))
        y = layer((x1.astype(">f8"), x2.astype(">f8")))
        assert y.dtype.isnative and all(g.dtype.isnative for g in layer.backward(np.ones(3)))


def test_cosine_of_a_zero_vector_is_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = md.CosineSimilarity()
        assert layer((np.zeros((1, 3)), np.array([[1.0, 2.0, 3.0]]))).tolist() == [0.0]
        dx1, dx2 = layer.backward(np.ones(1))
        np.testing.assert_allclose(dx1, np.array([[1.0, 2.0, 3.0]]) / (1e-8 * math.sqrt(14)), rtol=1e-12)
        assert not dx2.any()


@pytest.mark.parametrize("make", [lambda p=p: md.PairwiseDistance(p) for p in (1.0, 1.5, 2.0, 3.0, math.inf)]
                         + [lambda: md.CosineSimilarity()], ids=["p1", "p1.5", "p2", "p3", "pinf", "cos"])
def test_nan_passes_through_to_its_pair_only(make: Any) -> None:
    x1, x2 = np.ones((3, 2)), np.full((3, 2), 2.0)
    x1[1, 0] = np.nan
    layer = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer((x1, x2))
        assert np.isnan(y[1]) and np.isfinite(y[[0, 2]]).all()
        dx1, dx2 = layer.backward(np.ones(3))
    assert np.isnan(dx1[1]).all() and np.isnan(dx2[1]).all()  # the whole pair: NaN, never a quiet 0
    assert np.isfinite(dx1[[0, 2]]).all()


def test_float16_is_computed_in_float32() -> None:
    x1, x2 = np.full((1, 8), 100, np.float16), np.full((1, 8), -1, np.float16)  # ||u||^2 = 81608: inf in float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in (2.0, 3.0):
            layer = md.PairwiseDistance(p)
            d = layer((x1, x2))
            exact = np.linalg.norm(np.full(8, 101.0) + 1e-6, ord=p)
            assert d.dtype == np.float16 and d[0] == np.float16(exact)
            dx1, _ = layer.backward(np.ones(1, np.float16))
            assert dx1.dtype == np.float16 and np.isfinite(dx1).all() and dx1[0, 0] > 0
        c1, c2 = np.full((1, 4), 200, np.float16), np.array([[200, -200, 200, 200]], np.float16)
        cos = md.CosineSimilarity()
        assert cos((c1, c2)).tolist() == [0.5] and cos((c1, c2)).dtype == np.float16
        assert all(g.dtype == np.float16 and np.isfinite(g).all() for g in cos.backward(np.ones(1, np.float16)))


def test_huge_values_overflow_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert md.PairwiseDistance(3.0)((np.full((1, 2), 1e120), np.zeros((1, 2)))).tolist() == [np.inf]
        assert np.isfinite(md.CosineSimilarity()((np.full((1, 2), 1e200), np.ones((1, 2))))).all()


def test_cosine_of_a_vector_shorter_than_eps_divides_by_eps() -> None:
    """Below eps the norm is the constant eps: the gradient is that function's (PyTorch's is not)."""
    layer = md.CosineSimilarity(eps=1.0)
    x1, x2 = np.array([[0.3, 0.4]]), np.array([[1.0, 2.0]])
    assert layer((x1, x2)) == pytest.approx(1.1 / math.sqrt(5))
    np.testing.assert_allclose(layer.backward(np.ones(1))[0], x2 / math.sqrt(5), rtol=1e-15)
    assert_gradients_ok(md.CosineSimilarity(eps=1.0), inputs=(x1, x2), seed=0)


def test_refusals() -> None:
    pd, cos = md.PairwiseDistance(), md.CosineSimilarity()
    with pytest.raises(md.ShapeError, match=r"PairwiseDistance: takes one tuple \(x1, x2\) of two arrays, got ndarray"):
        pd(np.zeros((2, 3)))
    with pytest.raises(md.ShapeError, match=r"CosineSimilarity: takes one tuple \(x1, x2\) of two arrays, got a tuple "
                                            "of 3"):
        cos((np.zeros((2, 3)),) * 3)
    with pytest.raises(md.ShapeError, match=r"x1 and x2 must have the same shape, got \(2, 3\) and \(2, 4\)"):
        pd((np.zeros((2, 3)), np.zeros((2, 4))))
    with pytest.raises(md.DTypeError, match="x1 and x2 must have the same dtype, got float32 and float64"):
        cos((np.zeros((2, 3), np.float32), np.zeros((2, 3))))
    with pytest.raises(md.ShapeError, match=r"expected inputs of shape \(N, \.\.\., D\) with a batch axis"):
        pd((np.zeros(3), np.zeros(3)))
    with pytest.raises(md.ShapeError, match=r"CosineSimilarity: axis 2 is out of range for inputs of shape \(2, 3\)"):
        md.CosineSimilarity(2)((np.zeros((2, 3)), np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"PairwiseDistance: p must be a number >= 1 or math.inf \(a norm\), got 0.5"):
        md.PairwiseDistance(0.5)
    with pytest.raises(ValueError, match="PairwiseDistance: eps must be a finite number"):
        md.PairwiseDistance(eps=float("nan"))
    with pytest.raises(TypeError, match="PairwiseDistance: keepdim must be a bool"):
        md.PairwiseDistance(keepdim=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CosineSimilarity: axis must be an int"):
        md.CosineSimilarity(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CosineSimilarity: eps must be a finite number > 0"):
        md.CosineSimilarity(eps=0)
    with pytest.raises(md.BackwardBeforeForwardError):
        md.PairwiseDistance().backward(np.zeros(2))
    pd((np.zeros((2, 3)), np.ones((2, 3))))
    with pytest.raises(md.ShapeError, match=r"PairwiseDistance.backward: expected grad_output of shape \(2,\)"):
        pd.backward(np.zeros((2, 1)))
    assert repr(md.PairwiseDistance()) == "PairwiseDistance(p=2.0, eps=1e-06)"
    assert repr(md.CosineSimilarity()) == "CosineSimilarity(axis=1, eps=1e-08)"


def test_settings_set_later_are_checked_and_change_nothing() -> None:
    """Set after construction, they were not checked (PairwiseDistance.p = 0.5, CosineSimilarity.eps = 0 or
    axis = 'a' were taken)."""
    x = tuple(np.random.default_rng(9).normal(size=(2, 4, 3)))
    cases: list[tuple[Any, str, Any, type[Exception], str]] = [
        *[(md.PairwiseDistance, "p", v, ValueError, r"PairwiseDistance: p must be a number >= 1 or math.inf \(a "
                                                    r"norm\), got") for v in (0.5, 0, -math.inf, math.nan, "2", None)],
        *[(md.PairwiseDistance, "eps", v, ValueError, "PairwiseDistance: eps must be a finite number")
          for v in (math.nan, math.inf, "0")],
        *[(md.PairwiseDistance, "keepdim", v, TypeError, "PairwiseDistance: keepdim must be a bool")
          for v in (1, np.bool_(True), None)],
        *[(md.CosineSimilarity, "axis", v, TypeError, "CosineSimilarity: axis must be an int")
          for v in (1.0, "a", None)],
        *[(md.CosineSimilarity, "eps", v, ValueError, "CosineSimilarity: eps must be a finite number > 0")
          for v in (0, -1e-8, math.nan, math.inf, "1e-8")],
    ]
    for make, name, bad, error, pattern in cases:
        layer = make()
        y = layer(x)
        grads = layer.backward(np.ones_like(y))
        before = dict(vars(layer))
        with pytest.raises(error, match=pattern):
            setattr(layer, name, bad)
        assert vars(layer) == before
        for got, expected in zip(layer.backward(np.ones_like(y)), grads, strict=True):
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(layer(x), y)
    pd, cos = md.PairwiseDistance(), md.CosineSimilarity()
    pd.p, pd.eps, pd.keepdim, cos.axis, cos.eps = np.int64(3), np.float32(0.5), True, np.int32(-1), 1
    assert (pd.p, pd.eps, pd.keepdim, cos.axis, cos.eps) == (3.0, 0.5, True, -1, 1.0)
    assert [type(v) for v in (pd.p, pd.eps, cos.axis, cos.eps)] == [float, float, int, float]
    assert repr(pd) == "PairwiseDistance(p=3.0, eps=0.5, keepdim=True)"
    assert repr(cos) == "CosineSimilarity(axis=-1, eps=1.0)"


def test_a_backward_uses_its_forwards_settings_and_the_next_forward_the_new_ones() -> None:
    """PairwiseDistance.p and CosineSimilarity.eps set between a forward and its backward gave wrong gradients
    silently (keepdim a refused gradient); the backward now uses its forward's, the next forward the new ones."""
    rng = np.random.default_rng(10)
    x = (rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))
    g = rng.normal(size=3)
    for changed in ({"p": 1.0}, {"p": math.inf}, {"eps": 0.5}, {"keepdim": True}, {"p": 3.0, "keepdim": True}):
        layer = md.PairwiseDistance(p=2.0)
        y = layer(x)
        for name, value in changed.items():
            setattr(layer, name, value)
        u = x[0] - x[1] + 1e-6
        dx1 = g[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)  # p = 2's slope u / d
        for _ in range(2):
            got = layer.backward(g)
            np.testing.assert_allclose(got[0], dx1, rtol=1e-13)
            np.testing.assert_array_equal(got[1], -got[0])
        fresh = md.PairwiseDistance(**{"p": 2.0, "eps": 1e-6, "keepdim": False, **changed})
        np.testing.assert_array_equal(layer(x), fresh(x))
        assert y.shape == (3,) and layer(x).shape == ((3, 1) if layer.keepdim else (3,))
        gk = g[:, None] if layer.keepdim else g
        for got, expected in zip(layer.backward(gk), fresh.backward(gk), strict=True):
            np.testing.assert_array_equal(got, expected)
    # CosineSimilarity: x1's norm 0.5 is above the forward's eps 1e-8, below the 1.0 set after it
    x1, x2 = np.array([[0.3, 0.4]]), np.array([[1.0, 2.0]])
    cos = md.CosineSimilarity()
    c = cos((x1, x2))[0]
    cos.eps, cos.axis = 1.0, 0  # (the axis was kept with the cache before this change too)
    n1, n2 = 0.5, math.sqrt(5)
    expected = (x2 / (n1 * n2) - c * x1 / n1**2, x1 / (n1 * n2) - c * x2 / n2**2)  # both norms above eps
    for got, want in zip(cos.backward(np.ones(1)), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    cos.axis = 1
    np.testing.assert_allclose(cos((x1, x2)), [1.1 / n2])  # now x1's norm is clamped at 1.0
    np.testing.assert_allclose(cos.backward(np.ones(1))[0], x2 / n2, rtol=1e-15)


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for t in range(60):
        shape = (int(rng.integers(1, 4)), *(int(v) for v in rng.integers(1, 5, 1 + t % 2)))
        x1, x2 = rng.normal(size=shape), rng.normal(size=shape)
        if t % 6 == 0:
            x2 = x1.copy()
        p = [1.0, 2.0, 3.0, math.inf][t % 4]
        axis = int(rng.integers(-len(shape), len(shape)))
        keep = bool(t % 2)
        for ours, theirs in ((md.PairwiseDistance(p, 1e-6, keep), torch.nn.PairwiseDistance(p, 1e-6, keep)),
                             (md.CosineSimilarity(axis), torch.nn.CosineSimilarity(axis))):
            a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
            yt = theirs(a, b)
            y = ours((x1, x2))
            np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-15)
            g = rng.normal(size=y.shape)
            yt.backward(torch.tensor(g))
            d1, d2 = ours.backward(g)
            np.testing.assert_allclose(d1, a.grad.numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(d2, b.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_a_float16_distance_beyond_its_range_is_inf_quietly() -> None:
    a = np.full((2, 3), 60000, np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert md.PairwiseDistance()((a, -a)).tolist() == [np.inf, np.inf]


def test_infinity_ties_share_the_gradient_rounded_once() -> None:
    """p = inf: each of k tied largest differences gets g / k, one rounding in the inputs' dtype (PyTorch's
    sign(u) * (g / k)), not g times a rounded 1 / k."""
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        layer = md.PairwiseDistance(math.inf, eps=0.0)
        layer((np.ones((1, 3), dtype), np.zeros((1, 3), dtype)))
        g = dtype(0.3)
        dx1, dx2 = layer.backward(np.array([g]))
        assert dx1.dtype == dtype and (dx1 == g / dtype(3)).all() and (dx2 == -(g / dtype(3))).all()
        # k = 1 .. 7 tied elements of either sign among 8, many gradients
        ties = np.zeros((7, 8), dtype)
        for k in range(1, 8):
            ties[k - 1, :k] = rng.choice([-2.0, 2.0], size=k)
            ties[k - 1, k:] = rng.uniform(-1.9, 1.9, size=8 - k)
        g = rng.normal(size=7).astype(dtype)
        layer((ties, np.zeros_like(ties)))
        dx1, _ = layer.backward(g)
        shared = g / np.arange(1, 8, dtype=dtype)  # g / k in the dtype: one rounding
        expected = np.where(np.abs(ties) == 2, np.sign(ties) * shared[:, None], 0)
        np.testing.assert_array_equal(dx1, expected)
    assert np.float32(0.3) / np.float32(3) != np.float32(0.3) * np.float32(1 / 3)  # (the case tells the two apart)
    # float16: g / k in float32, rounded once to float16
    layer = md.PairwiseDistance(math.inf, eps=0.0)
    layer((np.ones((1, 3), np.float16), np.zeros((1, 3), np.float16)))
    dx1, _ = layer.backward(np.array([0.3], np.float16))
    assert dx1.dtype == np.float16 and (dx1 == np.float16(np.float32(np.float16(0.3)) / np.float32(3))).all()


def test_infinity_ties_bit_for_bit_with_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    cases = 0
    for t in range(40):
        shape = [(6, 3), (4, 5), (2, 3, 4), (5, 2)][t % 4]
        for dtype in (np.float32, np.float64):
            x1, x2 = (rng.integers(-2, 3, size=shape).astype(dtype) for _ in range(2))  # many ties
            g = rng.normal(size=shape[:-1]).astype(dtype)
            layer = md.PairwiseDistance(math.inf, eps=0.0)
            y = layer((x1, x2))
            d1, d2 = layer.backward(g)
            a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
            yt = torch.nn.functional.pairwise_distance(a, b, p=math.inf, eps=0.0)
            yt.backward(torch.tensor(g))
            np.testing.assert_array_equal(y, yt.detach().numpy())
            np.testing.assert_array_equal(d1, a.grad.numpy())
            np.testing.assert_array_equal(d2, b.grad.numpy())
            cases += 1
    assert cases == 80


#: one-element differences: ordinary, negative, zero, and ones whose |u|^p or u^2 under- or overflows
ONE_ELEMENT = [0.3, -2.0, 0.0, 10.0, -1e30, 1e-30, 3e38, 1e-40]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_element_vectors_are_at_their_absolute_difference(dtype: type) -> None:
    """D = 1: d = |u| exactly for every p (PyTorch's), not (|u|^p)^(1/p), which rounds, underflows
    (float32 p = 100 at 0.3: 0) or overflows (p = 50 at 10: inf); the slope is sign(u)."""
    u = np.array(ONE_ELEMENT, dtype)[:, None]
    g = np.linspace(0.5, 2.0, len(u)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in (1.0, 1.5, 2.0, 3.0, 7.3, 50.0, 100.0, math.inf):
            layer = md.PairwiseDistance(p, eps=0.0)
            d = layer((u, np.zeros_like(u)))
            assert d.dtype == dtype
            np.testing.assert_array_equal(d, np.abs(u[:, 0]))
            dx1, dx2 = layer.backward(g)
            assert dx1.dtype == dtype
            np.testing.assert_array_equal(dx1, g[:, None] * np.sign(u))
            np.testing.assert_array_equal(dx2, -dx1)
    layer = md.PairwiseDistance(100.0, eps=0.0)
    assert layer((np.array([[0.3]], dtype), np.zeros((1, 1), dtype))).tolist() == [dtype(0.3)]
    assert layer.backward(np.ones(1, dtype))[0].tolist() == [[1.0]]
    for p, seed in ((3.0, 0), (7.3, 1)):  # the gradient checker, (N, ..., 1) inputs
        x = tuple(np.random.default_rng(seed).normal(size=(4, 3, 1)) for _ in range(2))
        assert_gradients_ok(md.PairwiseDistance(p, keepdim=bool(seed)), inputs=x, seed=seed)


def test_one_element_vectors_against_torch_if_installed() -> None:
    """PyTorch's distance is |u| bit for bit; its gradient is sign(u) up to its formula's round-off, and
    NaN where |u|^(p-1) under- or overflows (here: sign(u), deliberately)."""
    torch = pytest.importorskip("torch")
    nans = 0
    for dtype in (np.float32, np.float64):
        u = np.array(ONE_ELEMENT, dtype)[:, None]
        for p in (1.0, 1.5, 2.0, 3.0, 7.3, 50.0, 100.0, math.inf):
            layer = md.PairwiseDistance(p, eps=1e-6)
            x2 = np.full_like(u, 0.5)
            d = layer((u, x2))
            dx1, _ = layer.backward(np.ones(len(u), dtype))
            a = torch.tensor(u, requires_grad=True)
            dt = torch.nn.functional.pairwise_distance(a, torch.tensor(x2), p=p)
            dt.backward(torch.ones(len(u), dtype=a.dtype))
            np.testing.assert_array_equal(d, dt.detach().numpy())
            theirs = a.grad.numpy()
            finite = np.isfinite(theirs)
            np.testing.assert_allclose(dx1[finite], theirs[finite], rtol=0, atol=4 * np.finfo(dtype).eps)
            nans += int((~finite).sum())
    assert nans > 0  # (where PyTorch's gradient is NaN: float32 p = 100 at 0.3 - 0.5 + eps, say)
