"""Session 31's review of the Layer/Model API by a PyTorch user: a buffer over a plain attribute, ``fit`` on a
model with nothing to train, a ``Sequential`` from a mapping of names, and the porting hint after edits."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

# ------------------------------------------------------------------ register_buffer over an attribute


class Holder(md.Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output


def test_a_buffer_over_a_plain_attribute_is_refused_and_the_attribute_kept() -> None:
    layer = Holder()
    layer.plain = 5
    with pytest.raises(md.RegistrationError) as info:
        layer.register_buffer("plain", np.zeros(1))
    assert isinstance(info.value, KeyError)
    assert str(info.value) == ("Holder.register_buffer: attribute 'plain' already exists (a plain attribute (int)), "
                               "as PyTorch refuses it too; a buffer does not replace it: delete it first "
                               "(del self.plain) or choose another name")
    assert layer.plain == 5 and dict(layer.named_buffers()) == {} and "plain" not in layer.state_dict()


def test_a_buffer_over_an_attribute_set_to_none_or_a_generator_is_refused() -> None:
    layer = Holder()
    layer.stats = None
    with pytest.raises(md.RegistrationError, match=r"attribute 'stats' already exists \(a plain attribute "
                                                   r"\(NoneType\)\)"):
        layer.register_buffer("stats", np.zeros(1))
    layer.rng = np.random.default_rng(0)
    with pytest.raises(md.RegistrationError, match=r"attribute 'rng' already exists \(a random generator\)"):
        layer.register_buffer("rng", np.zeros(1))
    assert dict(layer.named_generators()) == {"rng": layer.rng}


def test_a_buffer_after_the_attribute_is_deleted_and_a_buffer_registered_again_work() -> None:
    layer = Holder()
    layer.plain = 5
    del layer.plain
    layer.register_buffer("plain", np.zeros(1))
    layer.register_buffer("plain", np.ones(2), persistent=False)  # again: the new value
    assert np.array_equal(layer.plain, np.ones(2)) and list(dict(layer.named_buffers())) == ["plain"]
    assert "plain" not in layer.state_dict()
    layer.register_buffer("plain", None)
    layer.register_buffer("plain", np.zeros(3))
    assert list(layer.state_dict()) == ["plain"]


def test_init_run_again_registers_its_buffers_again() -> None:
    norm = md.BatchNorm1d(3)
    norm.running_mean[:] = 2.0
    md.BatchNorm1d.__init__(norm, 4)
    assert norm.running_mean.shape == (4,) and np.array_equal(norm.running_mean, np.zeros(4))
    assert list(norm.state_dict()) == list(md.BatchNorm1d(4).state_dict())
