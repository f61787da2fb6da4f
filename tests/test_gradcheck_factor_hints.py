"""GradientChecker's names for a constant factor (analytic = k x numerical): a teacher's review found that a
custom MSE whose backward forgets the 2 of the square was hinted as "1 over the size 2 of an axis" alone when
the output has 2 columns (axis sizes were tried before the 2 of a square), and that a forgotten ``/d.size``
(k = N * C, the number of elements of y_pred) got no hint at all."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import GradientChecker
from minidl.gradcheck.diagnosis import factor_words, name_factor


class MyMSE(md.Loss):
    """mean(d**2), d = y_pred - y_true (N, C); ``bug`` picks a wrong backward."""

    def __init__(self, bug: str) -> None:
        super().__init__()
        self._d: np.ndarray | None = None
        self.bug = bug

    def forward(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        self._d = y_pred - y_true
        return float(np.mean(self._d ** 2))

    def backward(self) -> np.ndarray:
        self._require_cache(self._d)
        d = self._d
        assert d is not None
        if self.bug == "no2":  # the 2 of the square forgotten
            return d / d.size
        if self.bug == "no_size":  # the mean's 1/size forgotten
            return 2 * d
        if self.bug == "size_twice":  # divided by the size twice
            return 2 * d / d.size / d.size
        raise AssertionError(self.bug)


def run_mse(bug: str, n: int, c: int) -> md.GradientReport:
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(n, 3)), rng.normal(size=(n, c))
    net = md.Sequential(md.Dense(3, 4, rng=0), md.Tanh(), md.Dense(4, c, rng=1))
    return GradientChecker(net, loss=MyMSE(bug), inputs=x, targets=t).run()


def loss_note(report: md.GradientReport) -> str:
    notes = [n for n in report.notes if n.startswith("the loss's backward is wrong")]
    assert len(notes) == 1, report.notes
    return notes[0]


def said(words: str) -> str:
    return (f"the loss's backward is wrong: checked alone on the model's output, MyMSE.backward() (dLoss/dy_pred) "
            f"fails: constant factor over the whole tensor: {words}; the model's tensors fail because the back-pass "
            "starts from that gradient")


@pytest.mark.parametrize("n", [4, 6])
def test_missing_2_with_2_columns_names_the_square_and_the_axis(n: int) -> None:
    report = run_mse("no2", n, 2)
    both = ("analytic = 1/2 x numerical (the 2 of a square, or 1 over the size 2 of an axis: averaged where the "
            "forward sums?)")
    assert loss_note(report) == said(both)
    # 2.W (5, 2) has an axis of 2 too; 0.W (4, 4) and the input (N, 3) have none
    assert report["2.W"].diagnosis == f"constant factor over the whole tensor: {both}"
    assert report["0.W"].diagnosis == ("constant factor over the whole tensor: analytic = 1/2 x numerical (a dropped "
                                       "or extra factor (e.g. the 2 of a square))")


@pytest.mark.parametrize("n", [4, 6])
def test_missing_2_with_3_columns_names_the_square(n: int) -> None:
    report = run_mse("no2", n, 3)
    assert loss_note(report) == said("analytic = 1/2 x numerical (a dropped or extra factor (e.g. the 2 of a "
                                     "square))")


@pytest.mark.parametrize(("n", "c"), [(4, 2), (4, 3), (6, 2), (6, 3)])
def test_forgotten_size_names_the_number_of_elements(n: int, c: int) -> None:
    report = run_mse("no_size", n, c)
    k = n * c
    assert loss_note(report) == said(f"analytic = {k} x numerical (the number of elements {k} = {n} x {c}: a "
                                     "mean's 1/size forgotten?)")


@pytest.mark.parametrize(("n", "c"), [(4, 2), (6, 3)])
def test_extra_size_names_1_over_the_number_of_elements(n: int, c: int) -> None:
    report = run_mse("size_twice", n, c)
    k = n * c
    assert loss_note(report) == said(f"analytic = 1/{k} x numerical (1 over the number of elements {k} = {n} x {c}: "
                                     "divided by the size where the forward sums, or twice?)")


def test_name_factor_candidates() -> None:
    # the 2 of a square beside the batch size 2, and beside an axis size 2, either way, and with a sign flip
    assert name_factor(2.0, 2, (2, 3)) == ("2", "the 2 of a square, or N = 2 the batch size: summed where the "
                                                "forward averages?")
    assert name_factor(2.0, 5, (5, 2)) == ("2", "the 2 of a square, or the size 2 of an axis: summed where the "
                                                "forward averages?")
    assert name_factor(-0.5, None, (2,)) == ("-1/2", "the 2 of a square, or 1 over the size 2 of an axis: averaged "
                                                     "where the forward sums?, and a sign flip")
    # the batch size first, then an axis size, then the number of elements, then products of axis sizes
    assert name_factor(4.0, 4, (4, 3)) == ("4", "N = 4 the batch size: summed where the forward averages?")
    assert name_factor(12.0, 4, (4, 3)) == ("12", "the number of elements 12 = 4 x 3: a mean's 1/size forgotten?")
    assert name_factor(15.0, 2, (2, 3, 5)) == ("15", "the sizes 3 x 5 of axes 1, 2: summed where the forward "
                                                     "averages over them?")
    assert name_factor(1 / 6, 2, (2, 3, 5)) == ("1/6", "1 over the sizes 2 x 3 of axes 0, 1: averaged where the "
                                                       "forward sums over them?")
    assert name_factor(30.0, 2, (2, 3, 5))[1] == "the number of elements 30 = 2 x 3 x 5: a mean's 1/size forgotten?"
    # (a 1-D tensor's number of elements is its axis size, a (N, 1) one's the batch size: named as before)
    assert name_factor(7.0, None, (7,)) == ("7", "the size 7 of an axis: summed where the forward averages?")
    assert name_factor(1 / 7, 7, (7, 1)) == ("1/7", "1/N, N = 7 the batch size: averaged where the forward sums, "
                                                    "or divided by N twice?")
    # no candidate: the number alone
    assert name_factor(13.0, 4, (4, 3)) is None
    assert factor_words(13.0, 4, (4, 3)) == "analytic = 13 x numerical"


class BuggyDense(md.Dense):
    """A Dense whose weight gradient is doubled, transposed, or multiplied by the batch size."""

    def __init__(self, *args: int, bug: str = "", **kw: int) -> None:
        super().__init__(*args, **kw)
        self.bug = bug

    def backward(self, g: np.ndarray) -> np.ndarray:
        x = self._x
        assert x is not None
        weights, bias = x.T @ g, g.sum(axis=0)
        if self.bug == "factor2":
            weights, bias = 2 * weights, 2 * bias
        elif self.bug == "transpose":
            weights = weights.T
        elif self.bug == "batch":
            weights, bias = weights * x.shape[0], bias * x.shape[0]
        self.W.grad[1:] += weights
        self.W.grad[0] += bias
        return g @ self.W.data[1:].T


@pytest.mark.parametrize(
    ("bug", "words"),
    [
        ("factor2", "constant factor over the whole tensor: analytic = 2 x numerical (a dropped or extra factor "
                    "(e.g. the 2 of a square))"),
        ("transpose", "transposed: the analytic gradient (the weight rows, below the bias row 0) is the transpose "
                      "of the right one"),
        ("batch", "constant factor over the whole tensor: analytic = 4 x numerical (N = 4 the batch size: summed "
                  "where the forward averages?)"),
    ],
)
def test_existing_hints_unchanged(bug: str, words: str) -> None:
    net = md.Sequential(md.Dense(3, 5, rng=0), md.Tanh(), BuggyDense(5, 5, rng=1, bug=bug))
    report = GradientChecker(net, mode="full").run()
    assert report["0.W"].passed and report["input"].passed
    assert report["2.W"].diagnosis == words
