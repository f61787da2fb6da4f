"""A bad target found inside ``fit``/``evaluate`` is traced to the sample of the user's data, as a NaN is:
``TargetError`` carries the bad value's ``index`` and the checked array's ``shape``, and the message says which
row of the (shuffled) batch is which sample.  Before, it gave the row within the batch alone ("label 7 at index
18"), and with shuffling ``y[18]`` was a valid label."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest

import minidl as md

N, BAD = 40, 17


def labels(n_classes: int) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        y = rng.integers(0, n_classes, N)
        y[BAD] = n_classes + 4
        return y
    return make


def probabilities(rng: np.random.Generator) -> np.ndarray:
    y = rng.dirichlet(np.ones(3), N)
    y[BAD, 1] = -0.25
    return y


def in_unit(columns: int) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        y = rng.uniform(size=(N, columns))
        y[BAD, columns - 1] = 1.5
        return y
    return make


def counts(rng: np.random.Generator) -> np.ndarray:
    y = rng.poisson(2.0, size=(N, 2)).astype(float)
    y[BAD, 0] = -1.0
    return y


def signs(rng: np.random.Generator) -> np.ndarray:
    y = rng.choice([-1.0, 1.0], size=(N, 1))
    y[BAD, 0] = 0.5
    return y


CASES = [
    ("CrossEntropyLoss labels", md.CrossEntropyLoss, 3, labels(3), r"class label 7 at index (\d+) "),
    ("CrossEntropyLoss probabilities", md.CrossEntropyLoss, 3, probabilities, r"at index \((\d+), 1\)"),
    ("BCEWithLogitsLoss", md.BCEWithLogitsLoss, 2, in_unit(2), r"at index \((\d+), 1\)"),
    ("MultiLabelSoftMarginLoss", md.MultiLabelSoftMarginLoss, 2, in_unit(2), r"at index \((\d+), 1\)"),
    ("PoissonNLLLoss", md.PoissonNLLLoss, 2, counts, r"at index \((\d+), 0\)"),
    ("HingeEmbeddingLoss", md.HingeEmbeddingLoss, 1, signs, r"at index \((\d+), 0\)"),
]


def model_for(outputs: int) -> md.Sequential:
    return md.Sequential(md.Dense(5, outputs, rng=0))


@pytest.mark.parametrize("name, loss, outputs, make_y, pattern", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [0, 3])
def test_fit_names_the_sample_of_a_bad_target(name, loss, outputs, make_y, pattern, seed) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(N, 5)), make_y(rng)
    model = model_for(outputs)
    with pytest.raises(md.TargetError) as caught:
        model.fit(x, y, loss=loss(), optimizer=md.SGD(model.parameters(), lr=0.01), batch_size=32, rng=seed,
                  verbose=0)
    message = str(caught.value)
    found = re.search(pattern, message)
    assert found is not None, message
    row = int(found.group(1))  # the bad value's row in the shuffled batch, which the message maps to the sample
    assert f"; row {row} of the batch is sample {BAD}): " in message, message
    assert caught.value.index is not None and caught.value.index[0] == row and caught.value.shape[0] == 32


@pytest.mark.parametrize("name, loss, outputs, make_y, pattern", CASES, ids=[c[0] for c in CASES])
def test_evaluate_names_the_sample_of_a_bad_target(name, loss, outputs, make_y, pattern) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(N, 5)), make_y(rng)
    with pytest.raises(md.TargetError, match=rf"samples 10\.\.19; row 7 of the batch is sample {BAD}: "):
        model_for(outputs).evaluate(x, y, loss=loss(), batch_size=10)


def test_a_located_target_error_keeps_its_index_and_shape_and_an_unlocated_one_has_none() -> None:
    error = md.TargetError.located("bad", (3, 1), (8, 2))
    assert (str(error), error.index, error.shape) == ("bad", (3, 1), (8, 2))
    assert md.TargetError("plain").index is None and md.TargetError("plain").shape is None
