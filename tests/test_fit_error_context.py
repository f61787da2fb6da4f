"""Where fit, evaluate and predict say an error happened: the path of a container inside a model of one's
own (``TwoBranch layer 'right': Sequential layer '0': ...``), and a NaN/inf that arose inside the model told
apart from one in the data (the sample is named only when its data is not finite)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minidl as md


class TwoBranch(md.Model):
    """left(x) + right(log x): the right branch makes NaN of a negative input; ``bad_backward`` gives the
    right branch a gradient of the wrong width."""

    def __init__(self, bad_backward: bool = False) -> None:
        super().__init__()
        self.left = md.Sequential(md.Dense(4, 3, rng=0), md.Tanh())
        self.right = md.Sequential(md.Dense(4, 3, rng=1), md.Tanh())
        self.bad_backward = bad_backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            logs = np.log(x)
        out: np.ndarray = self.left(x) + self.right(logs)
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        right = self.right.backward(grad_output[:, :2] if self.bad_backward else grad_output)
        out: np.ndarray = self.left.backward(grad_output) + right
        return out


def positive(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 2.0, size=(n, 4))


def fit(model: md.Layer, x: np.ndarray, y: np.ndarray, **kwargs: object) -> None:
    model.fit(x, y, loss=md.MSELoss(), optimizer=md.SGD(model.parameters(), lr=0.1), verbose=0, shuffle=False,
              batch_size=8, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("row", [0, 5])
def test_a_nan_made_inside_a_branch_names_the_branch_and_not_the_sample(row: int) -> None:
    x, y = positive(16, row), np.zeros((16, 3))
    x[8 + row, 1] = -1.0  # finite, but log makes NaN of it inside the model
    model = TwoBranch()
    with pytest.raises(md.NonFiniteError) as caught:
        fit(model, x, y)
    message = str(caught.value)
    assert message.startswith(f"fit: epoch 1/1, batch 2/2 (samples 8..15 of the epoch's order; row {row} of the "
                              f"batch (sample {8 + row}) is finite in the data: the NaN/inf arose inside the "
                              "model): TwoBranch layer 'right': Sequential layer '0': Dense(4 -> 3): input holds 1 "
                              "NaN/inf value(s)")


def test_a_nan_in_the_data_names_the_sample_as_before() -> None:
    x, y = positive(16, 0), np.zeros((16, 3))
    x[11, 2] = np.nan
    with pytest.raises(md.NonFiniteError, match=re.escape("row 3 of the batch is sample 11)")):
        fit(md.Sequential(md.Dense(4, 3, rng=0)), x, y)
    x[11, 2] = 1.0
    y[13, 0] = np.inf  # in the targets: the loss finds it
    with pytest.raises(md.NonFiniteError, match=re.escape("row 5 of the batch is sample 13)")):
        fit(md.Sequential(md.Dense(4, 3, rng=0)), x, y)


def test_a_sequential_model_gets_no_extra_path() -> None:
    x, y = positive(8, 1), np.zeros((8, 3))
    x[2, 0] = np.nan
    model = md.Sequential(md.Dense(4, 4, rng=0), md.Tanh(), md.Dense(4, 3, rng=1))
    with pytest.raises(md.NonFiniteError) as caught:
        fit(model, x, y)
    assert str(caught.value).startswith("fit: epoch 1/1, batch 1/1 (samples 0..7 of the epoch's order; row 2 of "
                                        "the batch is sample 2): Sequential layer '0': Dense(4 -> 4): input holds")


def test_a_wrong_gradient_given_to_a_branch_names_the_branch() -> None:
    x, y = positive(8, 2), np.zeros((8, 3))
    with pytest.raises(md.ShapeError) as caught:
        fit(TwoBranch(bad_backward=True), x, y)
    assert "batch 1/1 (samples 0..7 of the epoch's order): TwoBranch layer 'right': Sequential layer '1': " \
        in str(caught.value)


@pytest.mark.parametrize("call", ["predict", "evaluate"])
def test_predict_and_evaluate_name_the_branch_too(call: str) -> None:
    x, y = positive(10, 3), np.zeros((10, 3))
    x[7, 3] = -2.0
    model = TwoBranch()
    with pytest.raises(md.NonFiniteError) as caught:
        if call == "predict":
            model.predict(x, batch_size=4)
        else:
            model.evaluate(x, y, loss=md.MSELoss(), batch_size=4)
    assert "samples 4..7; row 3 of the batch (sample 7) is finite in the data: the NaN/inf arose inside the " \
        "model: TwoBranch layer 'right': Sequential layer '0': Dense(4 -> 3): input holds 1 NaN/inf" \
        in str(caught.value)


def test_a_nan_spread_by_a_layer_mixing_rows_names_the_sample_whose_data_is_not_finite() -> None:
    class Centre(md.Layer):  # x - mean over the batch: one sample's NaN reaches every row, unchecked
        def forward(self, x: np.ndarray) -> np.ndarray:
            out: np.ndarray = x - x.mean(axis=0)
            return out

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            out: np.ndarray = grad_output - grad_output.mean(axis=0)
            return out

    x, y = positive(8, 4), np.zeros((8, 3))
    x[5, 1] = np.nan
    with pytest.raises(md.NonFiniteError) as caught:
        fit(md.Sequential(Centre(), md.Dense(4, 3, rng=0)), x, y)
    assert "row 0 of the batch (sample 0) is finite in the data, but row 5 (sample 5) is not: a layer mixing " \
           "rows may have spread it" in str(caught.value)


class Inner(md.Model):
    """A model of one's own inside a Sequential: body = Sequential(Dense, Tanh) after log."""

    def __init__(self) -> None:
        super().__init__()
        self.body = md.Sequential(md.Dense(4, 3, rng=0), md.Tanh())

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            out: np.ndarray = self.body(np.log(x))
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.body.backward(grad_output)
        return out


def test_the_path_is_named_step_by_step_through_every_container() -> None:
    class Net(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.seq = md.Sequential(md.Identity(), Inner())

        def forward(self, x: np.ndarray) -> np.ndarray:
            out: np.ndarray = self.seq(x)
            return out

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            out: np.ndarray = self.seq.backward(grad_output)
            return out

    x = positive(4, 5)
    x[1, 0] = -1.0
    with pytest.raises(md.NonFiniteError) as caught:
        Net().predict(x)
    assert "sample 1) is finite in the data: the NaN/inf arose inside the model: Net layer 'seq': " \
           "Sequential layer '1': Inner layer 'body': Sequential layer '0': Dense(4 -> 3): input holds" \
           in str(caught.value)


# ---------------------------------------------------------------- the path, in any call (not only fit's)
class Head(md.Model):
    """encoder = Sequential(Dense 4->8, ReLU), head = Dense(8->3): a leaf part next to a container."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = md.Sequential(md.Dense(4, 8, rng=0), md.ReLU())
        self.head = md.Dense(8, 3, rng=1)
        self.skip_encoder = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.head(x if self.skip_encoder else self.encoder(x))
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.encoder.backward(self.head.backward(grad_output))
        return out


def test_calling_a_model_of_ones_own_names_the_path_to_the_failing_layer() -> None:
    with pytest.raises(md.ShapeError) as caught:
        Head()(np.ones((2, 5)))
    assert str(caught.value) == "Head layer 'encoder': Sequential layer '0': Dense(4 -> 8): expected input of " \
                                "shape (N, ..., 4), got shape (2, 5)"


def test_a_leaf_part_of_a_model_of_ones_own_is_named() -> None:
    model = Head()
    model.skip_encoder = True  # the head gets the data: width 4, not 8
    with pytest.raises(md.ShapeError) as caught:
        model(np.ones((2, 4)))
    assert str(caught.value).startswith("Head layer 'head': Dense(8 -> 3): expected input of shape (N, ..., 8)")


def test_models_of_ones_own_nested_in_sequentials_and_in_each_other_name_each_step_once() -> None:
    class Outer(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Head()

        def forward(self, x: np.ndarray) -> np.ndarray:
            out: np.ndarray = self.inner(x)
            return out

    model = md.Sequential(md.Identity(), Outer())
    with pytest.raises(md.NonFiniteError) as caught:
        model(np.full((2, 4), np.nan))
    assert str(caught.value).startswith("Sequential layer '1': Outer layer 'inner': Head layer 'encoder': "
                                        "Sequential layer '0': Dense(4 -> 8): input holds 8 NaN/inf")


def test_fit_names_a_nested_sequentials_position_once() -> None:
    # the outer Sequential's position was named twice: "Sequential layer '1': Sequential layer '1': ..."
    model = md.Sequential(md.Dense(4, 5, rng=0), md.Sequential(md.Dense(6, 3, rng=1)))
    with pytest.raises(md.ShapeError) as caught:
        fit(model, positive(8, 3), np.zeros((8, 3)))
    assert "order): Sequential layer '1': Sequential layer '0': Dense(6 -> 3): expected input" in str(caught.value)
    assert str(caught.value).count("Sequential layer '1'") == 1


def test_fit_names_each_step_once_in_a_model_of_ones_own() -> None:
    with pytest.raises(md.ShapeError) as caught:
        fit(Head(), np.ones((8, 5)), np.zeros((8, 3)))
    assert str(caught.value) == "fit: epoch 1/1, batch 1/1 (samples 0..7 of the epoch's order): Head layer " \
                                "'encoder': Sequential layer '0': Dense(4 -> 8): expected input of shape " \
                                "(N, ..., 4), got shape (8, 5)"
