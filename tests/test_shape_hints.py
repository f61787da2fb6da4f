"""A refused input's message says what its shape suggests, for the mistakes students make first: images
without their channel axis, channels last, a sample of several axes given to Dense, and a one-column
classifier given to CrossEntropyLoss.  The hint follows the message's usual text, which is unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minidl as md


def refusal(call) -> str:
    with pytest.raises(md.MinidlError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize("layer, shape, order", [
    (lambda: md.Conv2D(3, 4, 3), (2, 8, 9, 3), "(0, 3, 1, 2)"),
    (lambda: md.Conv1D(5, 4, 3), (2, 8, 5), "(0, 2, 1)"),
    (lambda: md.BatchNorm2d(3), (2, 8, 8, 3), "(0, 3, 1, 2)"),
])
def test_channels_last_images_are_told_the_transpose_that_puts_channels_first(layer, shape, order) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    message = refusal(lambda: layer()(x))
    assert message.endswith(f"got shape {shape}; it looks channels-last, and this layer takes channels first "
                            f"(N, C, ...): x.transpose{order}")
    fixed = x.transpose(tuple(int(i) for i in re.findall(r"\d", order)))
    assert fixed.shape[1] == shape[-1] and layer()(fixed).shape[0] == shape[0]  # the suggested call runs


def test_one_channel_images_without_their_channel_axis_are_told_to_add_it() -> None:
    x = np.zeros((2, 8, 8))
    message = refusal(lambda: md.Conv2D(1, 4, 3)(x))
    assert message == ("Conv2D(1 -> 4, k=3): expected a 4-D input of shape (N, 1, H, W), got shape (2, 8, 8); for "
                       "one channel, give the input its channel axis: x[:, None]")
    assert md.Conv2D(1, 4, 3)(x[:, None]).shape == (2, 4, 6, 6)


def test_dense_given_samples_of_several_axes_with_its_width_is_told_to_flatten_them() -> None:
    model = md.Sequential(md.Conv2D(1, 4, 3, rng=0), md.Dense(4 * 6 * 6, 10, rng=0))
    message = refusal(lambda: model(np.zeros((2, 1, 8, 8))))
    assert message.endswith("got shape (2, 4, 6, 6); each sample has shape (4, 6, 6), 144 values, and this layer "
                            "works on the last axis: flatten them first (a Flatten() layer before it, or "
                            "x.reshape(len(x), -1))")
    model.insert(1, md.Flatten())
    assert model(np.zeros((2, 1, 8, 8))).shape == (2, 10)


@pytest.mark.parametrize("call, expected", [
    (lambda: md.Dense(64, 10)(np.zeros((2, 63))), "got shape (2, 63)"),  # just the wrong width
    (lambda: md.Dense(64, 10)(np.zeros((2, 3, 7))), "got shape (2, 3, 7)"),  # 21 values, not 64
    (lambda: md.Conv2D(3, 4, 3)(np.zeros((2, 4, 8, 8))), "got shape (2, 4, 8, 8)"),  # 4 channels, not 3
    (lambda: md.Conv2D(3, 4, 3)(np.zeros((2, 8, 8))), "got shape (2, 8, 8)"),  # 3-D, but 3 channels
])
def test_no_hint_where_the_shape_suggests_nothing(call, expected) -> None:
    assert refusal(call).endswith(expected)


def test_a_one_column_classifier_given_cross_entropy_is_pointed_to_bce_with_logits() -> None:
    message = refusal(lambda: md.CrossEntropyLoss()(np.zeros((4, 1)), np.array([0, 1, 0, 1])))
    assert message.endswith("2 label(s) out of range; with one output column the model is a binary classifier: use "
                            "BCEWithLogitsLoss (targets 0/1 of shape (N, 1)), or give the model 2 outputs")
    assert "binary classifier" not in refusal(lambda: md.CrossEntropyLoss()(np.zeros((4, 2)), np.array([0, 2, 0, 1])))
