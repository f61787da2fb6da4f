"""``model.summary()``: the table's rows, shapes and totals, and that the model is left untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import minidl as md
from minidl.errors import ShapeError
from minidl.summary import ModelSummary, summarize


def mlp() -> md.Sequential:
    return md.Sequential(md.Dense(64, 32, rng=0), md.ReLU(), md.Dense(32, 10, rng=1))


def lines(model: md.Model, *args, **kw) -> list[str]:
    out: list[str] = []
    model.summary(*args, print_fn=out.append, **kw)
    return out[0].splitlines()


def test_mlp_table_rows_and_totals():
    text = lines(mlp())
    assert text[0] == 'Model: "Sequential"'
    assert text[1] == "Input shape: (None, 64)"
    header = next(t for t in text if "Layer (type)" in t)
    assert "Output Shape" in header and "Param #" in header
    rows = [t.split() for t in text if t.startswith(" ") and "(" in t and "Layer" not in t]
    assert rows == [["0", "(Dense)", "(None,", "32)", "2,080"],
                    ["1", "(ReLU)", "(None,", "32)", "0"],
                    ["2", "(Dense)", "(None,", "10)", "330"]]
    assert "Total params: 2,410 (18.83 KB)" in text
    assert "Trainable params: 2,410 (18.83 KB)" in text
    assert "Non-trainable params: 0 (0.00 B)" in text


def test_summary_object_counts_frozen_parameters_and_buffers_as_non_trainable():
    model = md.Sequential(md.Dense(4, 6, rng=0), md.BatchNorm1d(6), md.Dense(6, 2, rng=1))
    model[2].W.requires_grad = False
    s = summarize(model)
    assert isinstance(s, ModelSummary)
    assert [(r.name, r.type_name, r.output_shape, r.params) for r in s.rows] == [
        ("0", "Dense", "(None, 6)", 30),
        ("1", "BatchNorm1d", "(None, 6)", 24),  # gamma, beta (trainable) + running mean, var
        ("2", "Dense", "(None, 2)", 14),
    ]
    assert s.trainable == 30 + 12
    assert s.non_trainable == 14 + 12
    assert s.total == 30 + 24 + 14
    assert s.trainable_bytes == 42 * 8


def test_cnn_summary_with_explicit_input_shape():
    model = md.Sequential(
        md.Conv2D(1, 8, 3, padding=1, rng=0), md.BatchNorm2d(8), md.ReLU(), md.MaxPool2D(2),
        md.Flatten(), md.Dropout(0.5, rng=0), md.Dense(8 * 4 * 4, 10, rng=1),
    )
    s = summarize(model, (1, 8, 8))
    assert [r.output_shape for r in s.rows] == ["(None, 8, 8, 8)", "(None, 8, 8, 8)", "(None, 8, 8, 8)",
                                                "(None, 8, 4, 4)", "(None, 128)", "(None, 128)", "(None, 10)"]
    assert s.rows[0].params == 8 * 9 + 8
    assert s.total == 80 + 32 + 129 * 10


class Block(md.Model):
    def __init__(self) -> None:
        super().__init__()
        self.inner = md.Dense(3, 3, rng=0)
        self.act = md.Tanh()

    def forward(self, x):
        return self.act(self.inner(x))

    def backward(self, g):
        return self.inner.backward(self.act.backward(g))


class Net(md.Model):
    """Layers assigned in one order and called in another; one registered layer is never used."""

    def __init__(self) -> None:
        super().__init__()
        self.head = md.Dense(3, 2, rng=1)
        self.block = Block()
        self.unused = md.Dense(7, 7, rng=2)

    def forward(self, x):
        return self.head(self.block(x))

    def backward(self, g):
        return self.block.backward(self.head.backward(g))


def test_custom_model_rows_in_call_order_nested_and_unused():
    s = summarize(Net(), (3,))
    assert [(r.name, r.output_shape) for r in s.rows] == [("block", "(None, 3)"), ("head", "(None, 2)"),
                                                          ("unused", "not called")]
    assert s.rows[0].params == 12
    nested = summarize(Net(), (3,), expand_nested=True)
    assert [(r.name, r.depth) for r in nested.rows] == [("block", 1), ("block.inner", 2), ("block.act", 2),
                                                        ("head", 1), ("unused", 1)]
    assert "    inner (Dense)" not in str(nested)
    assert "   block.inner (Dense)" in str(nested)


class Twice(md.Model):
    """One ReLU applied twice in a forward, after each of two Dense layers (4 -> 8 -> 6)."""

    def __init__(self):
        super().__init__()
        self.first, self.act, self.second = md.Dense(4, 8, rng=0), md.ReLU(), md.Dense(8, 6, rng=1)

    def forward(self, x):
        return self.act(self.second(self.act(self.first(x))))

    def backward(self, grad_output):
        return self.first.backward(self.act.backward(self.second.backward(self.act.backward(grad_output))))


def test_a_layer_called_twice_is_counted_and_shows_its_first_call():
    s = summarize(Twice(), (4,))
    rows = {r.name: r for r in s.rows}
    assert rows["act"].calls == 2 and rows["first"].calls == rows["second"].calls == 1
    assert rows["act"].output_shape == "(None, 8)"  # its first call's (the second gives (None, 6))
    line = next(line for line in str(s).splitlines() if "act (ReLU)" in line)
    assert "act (ReLU) x2" in line


def test_summary_leaves_the_model_exactly_as_it_was():
    model = md.Sequential(md.Dense(5, 4, rng=0), md.BatchNorm1d(4), md.Dropout(0.5, rng=3), md.Dense(4, 2, rng=1))
    model.train()
    x = np.random.default_rng(0).standard_normal((6, 5))
    model(x)  # caches and running statistics from a real batch
    before_state = copy.deepcopy(model.state_dict())
    before_cache = model[0]._x
    before_rng = model[2].rng.bit_generator.state
    model.summary(print_fn=lambda s: None)
    after = model.state_dict()
    for key in before_state:
        np.testing.assert_array_equal(before_state[key], after[key])
    assert model[0]._x is before_cache
    assert model[2].rng.bit_generator.state == before_rng
    assert all(layer.training for layer in model.layers())
    assert "forward" not in model[0].__dict__


def test_summary_needs_an_input_shape_it_cannot_infer():
    model = md.Sequential(md.ReLU(), md.Flatten())
    with pytest.raises(ShapeError, match="input_shape="):
        model.summary()
    assert "(None, 12)" in lines(model, (3, 4))[1] or "(None, 12)" in "\n".join(lines(model, (3, 4)))


def test_summary_reports_a_forward_failure_on_the_dummy_batch():
    with pytest.raises(ShapeError, match=r"summary: the forward on a dummy batch of shape \(3, 5\) failed") as info:
        mlp().summary((5,))
    assert "guessed" not in str(info.value)  # the shape was given: no advice to give it


def test_summary_of_a_cnn_with_a_guessed_shape_says_to_pass_input_shape():
    """The first layer's hint (a small image) fits the convolution but not the Dense after it."""
    model = md.Sequential(md.Conv2D(1, 8, 3, rng=0), md.Flatten(), md.Dense(8 * 6 * 6, 10, rng=0))
    with pytest.raises(ShapeError, match=r"failed: .*Dense\(288 -> 10\).*; the shape \(1, 5, 5\) was guessed "
                                         r"from the first layer: pass input_shape=\(\.\.\.\)"):
        model.summary()
    assert "(None, 10)" in str(md.summarize(model, (1, 8, 8)))  # as the advice says


def test_float32_model_summary_and_sizes():
    model = md.Sequential(md.Dense(3, 2, rng=0, dtype=np.float32))
    s = summarize(model)
    assert s.trainable == 8 and s.trainable_bytes == 32


@pytest.mark.parametrize("shape, error", [((64.9,), ValueError), ((-1,), ValueError), ((None,), ValueError),
                                          ((0,), ValueError), (64, TypeError), ((True,), ValueError)])
def test_summary_refuses_an_input_shape_that_is_not_sizes(shape, error):
    """(64.9,) was truncated to 64 and (2.7,) to 2; -1, 64 and None gave raw NumPy/Python errors."""
    model = md.Sequential(md.Dense(64, 2, rng=0))
    with pytest.raises(error, match="summary: input_shape must"):
        md.summarize(model, shape)
    assert "(None, 2)" in str(md.summarize(model, (np.int64(64),)))


def test_a_layer_list_the_model_loops_over_is_called_where_its_layers_ran() -> None:
    """It was listed after the head as 'not called', its layers (expanded) above the head."""
    class Looped(md.Model):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = md.LayerList([md.Dense(4, 4, rng=0), md.Dense(4, 4, rng=1)])
            self.head = md.Dense(4, 2, rng=2)
            self.spare = md.Dense(2, 2, rng=3)

        def forward(self, x: np.ndarray) -> np.ndarray:
            for block in self.blocks:
                x = block(x)
            return self.head(x)

        def backward(self, grad_output: np.ndarray) -> np.ndarray:
            raise NotImplementedError

    rows = [(r.name, r.output_shape) for r in md.summarize(Looped(), (4,)).rows]
    assert rows == [("blocks", "(its layers)"), ("head", "(None, 2)"), ("spare", "not called")]
    rows = [(r.name, r.output_shape, r.depth) for r in md.summarize(Looped(), (4,), expand_nested=True).rows]
    assert rows == [("blocks", "(its layers)", 1), ("blocks.0", "(None, 4)", 2), ("blocks.1", "(None, 4)", 2),
                    ("head", "(None, 2)", 1), ("spare", "not called", 1)]


class _MaskedMean(md.Layer):
    """(values (N, T, F), keep (N, T) booleans) -> the mean of the kept steps (N, F)."""

    def forward(self, x):
        values, keep = x
        weights = (keep / keep.sum(axis=1, keepdims=True)).astype(values.dtype)
        self._cache = weights
        return np.einsum("nt,ntf->nf", weights, values)


class _Masked(md.Model):
    """Two inputs, (x, mask), and no random_inputs of its own: the dummy batch cannot draw the mask."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = _MaskedMean()
        self.head = md.Dense(4, 2, rng=0)

    def forward(self, x):
        return self.head(self.pool(x))


def test_summary_runs_a_given_batch_of_several_inputs():
    """A model that takes (x, mask) could only be summarised by overriding random_inputs."""
    rng = np.random.default_rng(0)
    values, keep = rng.standard_normal((5, 3, 4)), np.array([[1, 1, 0]] * 5, dtype=bool)
    model = _Masked()
    with pytest.raises(ValueError):  # the dummy batch is one array: unpacked by the layer, it fails there
        model.summary((3, 4))
    text = lines(model, inputs=(values, keep))
    assert text[1] == "Input shapes: [(None, 3, 4), (None, 3)]"
    rows = [t.split() for t in text if t.startswith(" ") and "(" in t and "Layer" not in t]
    assert rows == [["pool", "(_MaskedMean)", "(None,", "4)", "0"], ["head", "(Dense)", "(None,", "2)", "10"]]
    s = summarize(model, inputs=(values, keep))
    assert s.input_shape == ((3, 4), (3,)) and s.total == 10
    assert "head" not in model.__dict__.get("_cache", {}) and model.head._x is None  # the model did not run


def test_summary_of_a_given_batch_equals_the_dummy_batch_s_and_does_not_change_the_model():
    model = mlp()
    x = np.random.default_rng(1).standard_normal((7, 64))
    before = copy.deepcopy(model.state_dict())
    assert lines(model, inputs=x) == lines(model)  # the batch size is not shown
    assert summarize(model, inputs=x).input_shape == (64,)
    assert model[0]._x is None and all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert "(None, 10)" in "\n".join(lines(model, inputs=x.tolist()))  # a list is converted, as fit's x


def test_the_header_shows_every_input_of_a_model_that_draws_several():
    """random_inputs drew (values, mask): the header showed the first input alone."""
    class Drawn(_Masked):
        def input_shape_hint(self):
            return (3, 4)

        def random_inputs(self, shape, rng):
            return rng.standard_normal(shape), np.ones(shape[:2], dtype=bool)

    assert lines(Drawn())[1] == "Input shapes: [(None, 3, 4), (None, 3)]"
    assert summarize(Drawn()).input_shape == ((3, 4), (3,))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"inputs": np.zeros((2, 64)), "input_shape": (64,)}, ValueError, "give it alone, without input_shape or dtype"),
    ({"inputs": np.zeros((2, 64)), "dtype": np.float32}, ValueError, "give it alone, without input_shape or dtype"),
    ({"inputs": np.zeros((0, 64))}, ShapeError, "inputs holds no sample"),
    ({"inputs": np.float64(3.0)}, ShapeError, r"inputs needs a batch axis, got shape \(\)"),
    ({"inputs": (np.zeros((2, 3, 4)), np.ones((3, 3), dtype=bool))}, ShapeError,
     r"the inputs of inputs must have the same number of samples; inputs\[0\] has 2, inputs\[1\] has 3"),
    ({"inputs": np.zeros((2, 5))}, ShapeError,
     r"summary: the forward on the given batch of shape \(2, 5\) failed: Sequential layer '0': Dense\(64 -> 32\)"),
])
def test_summary_refuses_a_given_batch_it_cannot_run(kwargs, error, message):
    model = mlp()
    with pytest.raises(error, match=message) as info:
        summarize(model, **kwargs)
    assert "guessed" not in str(info.value) and "random_inputs" not in str(info.value)
    assert model[0]._x is None
