"""The refusals a user porting PyTorch code meets name the PyTorch form and the minidl one
(docs/porting.md, "Constructor differences"); the other refusals of the same checks are unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import minidl as md

WEIGHT_HINT = " (PyTorch's first positional argument is weight: give weight= by keyword)"
POS_WEIGHT_HINT = (" (PyTorch's first positional argument is weight, which this loss does not have: give the "
                   "positives' weights as pos_weight= by keyword)")
IGNORE_HINT = (" (-100 is PyTorch's default ignore_index; minidl ignores nothing by default: "
               "md.{}(ignore_index=-100))")


def _message(make: Any) -> str:
    with pytest.raises((TypeError, ValueError)) as info:
        make()
    return str(info.value)


# ------------------------------------------------------------ TransformerEncoder(layer, num_layers)

def test_transformer_encoder_layer_and_num_layers_names_the_pytorch_form() -> None:
    layer = md.TransformerEncoderLayer(8, 2)
    with pytest.raises(TypeError) as info:
        md.TransformerEncoder(layer, 3)
    assert str(info.value) == (
        "TransformerEncoder: block 1 is the int 3; TransformerEncoder takes its blocks one by one, not "
        "(layer, num_layers) as PyTorch's: md.TransformerEncoder(*[md.TransformerEncoderLayer(...) for _ in "
        "range(3)])")


def test_transformer_encoder_pytorch_norm_third_still_gets_the_hint() -> None:
    layer = md.TransformerEncoderLayer(8, 2)
    message = _message(lambda: md.TransformerEncoder(layer, np.int64(6), md.LayerNorm(8)))
    assert message.startswith("TransformerEncoder: block 1 is the int 6; TransformerEncoder takes its blocks one "
                              "by one, not (layer, num_layers) as PyTorch's")
    assert message.endswith("for _ in range(6)])")


def test_transformer_decoder_layer_and_num_layers_names_the_pytorch_form() -> None:
    layer = md.TransformerDecoderLayer(8, 2)
    assert _message(lambda: md.TransformerDecoder(layer, 2)) == (
        "TransformerDecoder: block 1 is the int 2; TransformerDecoder takes its blocks one by one, not "
        "(layer, num_layers) as PyTorch's: md.TransformerDecoder(*[md.TransformerDecoderLayer(...) for _ in "
        "range(2)])")


@pytest.mark.parametrize("blocks, expected", [
    (lambda e: (e, "x"), "TransformerEncoder: block 1 is a str, expected a TransformerEncoderLayer"),
    (lambda e: (3, e), "TransformerEncoder: block 0 is a int, expected a TransformerEncoderLayer"),
    (lambda e: (e, True), "TransformerEncoder: block 1 is a bool, expected a TransformerEncoderLayer"),
    (lambda e: (md.Dense(8, 8), 3), "TransformerEncoder: block 0 is a Dense, expected a TransformerEncoderLayer"),
])
def test_transformer_encoder_other_refusals_unchanged(blocks: Any, expected: str) -> None:
    layer = md.TransformerEncoderLayer(8, 2)
    assert _message(lambda: md.TransformerEncoder(*blocks(layer))) == expected


def test_transformer_decoder_given_an_encoder_layer_unchanged() -> None:
    assert _message(lambda: md.TransformerDecoder(md.TransformerEncoderLayer(8, 2), 2)) == (
        "TransformerDecoder: block 0 is a TransformerEncoderLayer, expected a TransformerDecoderLayer")


# ------------------------------------------------------------ a loss given weights in reduction's place

@pytest.mark.parametrize("cls, weights, shown", [
    (md.CrossEntropyLoss, np.array([1.0, 2.0, 3.0]), "array([1., 2., 3.])"),
    (md.CrossEntropyLoss, [1.0, 2.0], "[1.0, 2.0]"),
    (md.NLLLoss, np.array([0.5, 1.0]), "array([0.5, 1. ])"),
    (md.NLLLoss, (1, 2), "(1, 2)"),
])
def test_class_weights_given_positionally_are_told_to_go_by_keyword(cls: Any, weights: Any, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        cls(weights)
    assert str(info.value) == (f"{cls.__name__}: reduction must be one of ('mean', 'sum'), got {shown}"
                               + WEIGHT_HINT)


def test_bce_with_logits_array_in_reduction_place_names_pos_weight() -> None:
    with pytest.raises(ValueError) as info:
        md.BCEWithLogitsLoss(np.array([2.0, 3.0]))
    assert str(info.value) == ("BCEWithLogitsLoss: reduction must be one of ('mean', 'sum'), got array([2., 3.])"
                               + POS_WEIGHT_HINT)


def test_weights_set_as_reduction_after_construction_get_the_hint_and_change_nothing() -> None:
    loss = md.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"give weight= by keyword\)$"):
        loss.reduction = np.ones(3)
    assert loss.reduction == "mean"


@pytest.mark.parametrize("make, expected", [
    (lambda: md.CrossEntropyLoss("avg"), "CrossEntropyLoss: reduction must be one of ('mean', 'sum'), got 'avg'"),
    (lambda: md.CrossEntropyLoss("none"), "CrossEntropyLoss: reduction must be one of ('mean', 'sum'), got 'none'"),
    (lambda: md.NLLLoss([]), "NLLLoss: reduction must be one of ('mean', 'sum'), got []"),
    (lambda: md.NLLLoss(["mean"]), "NLLLoss: reduction must be one of ('mean', 'sum'), got ['mean']"),
    (lambda: md.NLLLoss(None), "NLLLoss: reduction must be one of ('mean', 'sum'), got None"),
    (lambda: md.BCEWithLogitsLoss(1.0), "BCEWithLogitsLoss: reduction must be one of ('mean', 'sum'), got 1.0"),
    (lambda: md.BCELoss("x"), "BCELoss: reduction must be one of ('mean', 'sum'), got 'x'"),
    (lambda: md.MSELoss(np.ones(2)), "MSELoss: reduction must be one of ('mean', 'sum'), got array([1., 1.])"),
    (lambda: md.KLDivLoss("avg"),
     "KLDivLoss: reduction must be one of ('mean', 'batchmean', 'sum'), got 'avg'"),
])
def test_other_reduction_refusals_unchanged(make: Any, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value) == expected


def test_weighted_losses_still_take_weights_by_keyword() -> None:
    assert md.CrossEntropyLoss(weight=np.ones(3)).weight.tolist() == [1.0, 1.0, 1.0]
    assert md.NLLLoss("sum", weight=[1, 2]).reduction == "sum"
    assert md.BCEWithLogitsLoss("mean", np.ones(2)).pos_weight is not None


# ------------------------------------------------------------ label -100 without ignore_index

@pytest.mark.parametrize("cls", [md.CrossEntropyLoss, md.NLLLoss])
def test_label_minus_100_without_ignore_index_names_pytorch_default(cls: Any) -> None:
    scores = np.zeros((3, 4))
    with pytest.raises(md.TargetError) as info:
        cls()(scores, np.array([0, -100, 1]))
    assert str(info.value) == (f"{cls.__name__}: class label -100 at index 1 is out of range for 4 classes "
                               "(labels must be in [0, 3]); 1 label(s) out of range"
                               + IGNORE_HINT.format(cls.__name__))


def test_label_minus_100_with_positions_gets_the_hint() -> None:
    with pytest.raises(md.TargetError) as info:
        md.CrossEntropyLoss()(np.zeros((2, 4, 3, 3)), np.full((2, 3, 3), -100))
    assert str(info.value).endswith("; 18 label(s) out of range" + IGNORE_HINT.format("CrossEntropyLoss"))


def test_label_minus_100_with_ignore_index_minus_100_is_ignored() -> None:
    value = md.CrossEntropyLoss(ignore_index=-100)(np.zeros((3, 4)), np.array([0, -100, 1]))
    assert value == pytest.approx(np.log(4.0))


@pytest.mark.parametrize("make, labels, expected", [
    (lambda: md.CrossEntropyLoss(ignore_index=-1), [0, -100, 1],
     "CrossEntropyLoss: class label -100 at index 1 is out of range for 4 classes (labels must be in [0, 3]); "
     "1 label(s) out of range"),
    (lambda: md.CrossEntropyLoss(), [0, 5, -100],
     "CrossEntropyLoss: class label 5 at index 1 is out of range for 4 classes (labels must be in [0, 3]); "
     "2 label(s) out of range"),
    (lambda: md.NLLLoss(), [0, -1, 1],
     "NLLLoss: class label -1 at index 1 is out of range for 4 classes (labels must be in [0, 3]); "
     "1 label(s) out of range"),
    (lambda: md.MultiMarginLoss(), [0, -100, 1],
     "MultiMarginLoss: class label -100 at index 1 is out of range for 4 classes (labels must be in [0, 3]); "
     "1 label(s) out of range"),
])
def test_other_label_refusals_unchanged(make: Any, labels: list[int], expected: str) -> None:
    with pytest.raises(md.TargetError) as info:
        make()(np.zeros((3, 4)), np.array(labels))
    assert str(info.value) == expected
