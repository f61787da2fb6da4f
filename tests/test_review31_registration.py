"""Session 31's review: a refused registration (a reserved name) is a KeyError whose message shows as written."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md

# ------------------------------------------------------------------ a refused registration's message


class Named(md.Layer):
    def __init__(self, name: str) -> None:
        super().__init__()
        setattr(self, name, md.Parameter(np.zeros(2)))


@pytest.mark.parametrize("name", ["forward", "_parameters"])
def test_a_reserved_name_is_a_key_error_whose_message_shows_as_written(name: str) -> None:
    with pytest.raises(md.RegistrationError) as info:
        Named(name)
    error = info.value
    assert isinstance(error, KeyError) and isinstance(error, md.MinidlError)
    text = str(error)
    assert text.startswith("Named: cannot register a parameter, layer, buffer or generator as ")
    assert text.endswith("which it would hide; choose another name")
    assert f"as '{name}': that is" in text


def test_a_buffer_named_as_a_parameter_is_a_registration_error_as_written() -> None:
    layer = md.Dense(2, 2)
    with pytest.raises(md.RegistrationError) as info:
        layer.register_buffer("W", np.zeros(2))
    assert str(info.value) == "'W' is already a parameter or layer of Dense"
    assert isinstance(info.value, KeyError)


def test_a_state_dict_error_still_shows_as_written() -> None:
    with pytest.raises(md.StateDictError) as info:
        md.Dense(2, 2).load_state_dict({})
    assert not str(info.value).startswith(("'", '"'))
