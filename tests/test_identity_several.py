"""``Identity`` passes several inputs as one tuple, so that a loss over several predictions (a ranking, a
triplet, a Gaussian's mean and variance) is checked alone by the GradientChecker, input by input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md
from minidl.gradcheck import GradientChecker


def cases(seed: int, n: int = 4, d: int = 3) -> list[tuple[md.Loss, tuple[np.ndarray, ...], Any]]:
    rng = np.random.default_rng(seed)
    a, b, c = (rng.standard_normal((n, d)) for _ in range(3))
    return [(md.MarginRankingLoss(margin=0.1), (a[:, 0], b[:, 0]), np.sign(rng.standard_normal(n))),
            (md.CosineEmbeddingLoss(margin=0.2), (a, b), np.where(rng.random(n) < 0.5, 1.0, -1.0)),
            (md.TripletMarginLoss(margin=1.0), (a, b, c), None),
            (md.GaussianNLLLoss(), (a, np.abs(b) + 0.5), c)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("index", range(4), ids=["ranking", "cosine", "triplet", "gaussian"])
def test_a_loss_over_several_predictions_is_checked_alone_input_by_input(seed: int, index: int) -> None:
    loss, inputs, targets = cases(seed)[index]
    report = GradientChecker(md.Identity(), loss, inputs=inputs, targets=targets).run()
    assert report.passed, str(report)
    assert [r.name for r in report.results] == [f"input[{i}]" for i in range(len(inputs))]
    assert all(r.checked > 0 and r.failed == 0 for r in report.results), str(report)


class WrongSecond(md.Loss):
    """0.5 * sum((a - b)**2) whose gradient for b has the wrong sign."""

    def forward(self, y_pred: Any, y_true: Any) -> float:
        a, b = y_pred
        self.diff = a - b
        return float(0.5 * np.sum(self.diff ** 2))

    def backward(self) -> Any:
        return self.diff, self.diff  # (b's should be -diff)


def test_a_wrong_gradient_for_one_prediction_fails_that_input_only() -> None:
    rng = np.random.default_rng(0)
    report = GradientChecker(md.Identity(), WrongSecond(), inputs=(rng.standard_normal((4, 3)),
                                                                   rng.standard_normal((4, 3))),
                             targets=np.zeros(4)).run()
    assert not report.passed
    assert [(r.name, r.status) for r in report.results] == [("input[0]", "ok"), ("input[1]", "FAIL")]


def test_forward_and_backward_pass_the_tuple_and_check_each_gradient() -> None:
    a, b = np.ones((2, 3)), np.zeros((2, 4), np.float32)
    identity = md.Identity()
    out = identity((a, b))
    assert type(out) is tuple and out[0] is a and out[1] is b
    ga, gb = np.full((2, 3), 2.0), np.full((2, 4), 3.0, np.float32)
    back = identity.backward((ga, gb))
    assert type(back) is tuple and back[0] is ga and back[1] is gb
    with pytest.raises(md.ShapeError, match=r"^Identity\.backward: the forward took 2 inputs, so grad_output must be a "
                                            r"tuple of 2 gradients, one per input; got ndarray$"):
        identity.backward(ga)
    with pytest.raises(md.ShapeError, match=r"got a tuple of 3$"):
        identity.backward((ga, gb, gb))
    with pytest.raises(md.ShapeError, match=r"^Identity\.backward \(input 1\): expected grad_output of shape \(2, 4\)"):
        identity.backward((ga, np.zeros((2, 3), np.float32)))
    with pytest.raises(md.DTypeError, match=r"^Identity\.backward \(input 1\): expected grad_output of dtype float32"):
        identity.backward((ga, np.zeros((2, 4))))
    # one array again: back to the single form
    x = np.ones((5, 2))
    assert identity(x) is x
    assert identity.backward(np.full((5, 2), 1.0)).shape == (5, 2)
    with pytest.raises(md.DTypeError, match=r"^Identity\.backward: expected grad_output as a numpy array, got tuple"):
        identity.backward((np.ones((5, 2)),))


def test_an_identity_pickled_before_it_took_several_inputs_still_goes_back() -> None:
    identity = md.Identity()
    identity(np.ones((2, 3)))
    state = dict(identity.__dict__)
    del state["_several"]  # (as pickled by an older minidl)
    old = md.Identity.__new__(md.Identity)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.backward(np.full((2, 3), 4.0)), np.full((2, 3), 4.0))
