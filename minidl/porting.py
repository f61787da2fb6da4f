"""Porting a PyTorch model's weights: :func:`state_dict_from_torch` turns a ``torch_module.state_dict()``
into the state dict of the same model built with minidl, for ``model.load_state_dict``.

Each minidl layer of a supported kind reads the PyTorch entries at its own dotted path (a ``Sequential``'s
names, ``"0"``, ``"1"``, ... as built, are ``nn.Sequential``'s; after ``del``, ``insert`` or ``pop`` PyTorch
renumbers, minidl does not: ``md.Sequential(*model)`` numbers again), through one small converter per kind
(:data:`CONVERTERS`).  Values are read with ``np.asarray`` (after ``.detach()``), so CPU tensors work and torch
is never imported.
See docs/porting.md for the table of keys and transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import StateDictError
from .init import switch
from .layer import Layer
from .layers import (
    GRU,
    LSTM,
    RNN,
    BatchNorm1d,
    BatchNorm2d,
    Conv1D,
    Conv2D,
    ConvTranspose1D,
    ConvTranspose2D,
    Dense,
    Embedding,
    GroupNorm,
    InstanceNorm2d,
    LayerNorm,
    MultiHeadAttention,
    PReLU,
    TransformerDecoder,
    TransformerEncoder,
)
from .model import Bidirectional, Stack, _Positions

__all__ = ["CONVERTERS", "state_dict_from_torch"]


class _Reader:
    """The PyTorch entries of one minidl layer: ``read(name, shape)`` is ``torch_state[prefix + name]`` as an
    array, checked against the PyTorch ``shape``; a float value is widened to float64, so a converter's sums
    are exact whatever the torch dtype (the one cast to the minidl dtype is :func:`state_dict_from_torch`'s,
    at the end).  A missing key or another shape is recorded in ``problems`` (zeros are returned, so a
    converter always runs to its end and every problem of the layer is listed)."""

    def __init__(self, state: Mapping[str, Any], prefix: str, where: str, problems: list[str],
                 suffix: str = "") -> None:
        self.state, self.prefix, self.where = state, prefix, where
        self.problems, self.suffix = problems, suffix  # suffix: "_l0", "_l1_reverse" for a recurrent layer
        self.used: list[str] = []
        self.missing: list[str] = []  # the keys not in the state

    def read(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = self.prefix + name
        if key not in self.state:
            self.missing.append(key)
            self.problems.append(f"{self.where}: missing torch key '{key}' (expected shape {shape})")
            return np.zeros(shape)
        self.used.append(key)
        value = self.state[key]
        try:
            if hasattr(value, "detach"):  # (a tensor that requires grad: named_parameters(), keep_vars=True)
                value = value.detach()
            if str(getattr(value, "dtype", "")) == "torch.bfloat16":  # (NumPy has no bfloat16: exact in float32)
                value = value.float()
            value = np.asarray(value)
        except Exception as error:  # (a CUDA tensor: torch says to call .cpu())
            self.problems.append(f"{self.where}: torch '{key}' cannot be read as an array: {error}")
            return np.zeros(shape)
        if value.shape != shape:
            self.problems.append(f"{self.where}: torch '{key}' has shape {value.shape}, expected {shape}")
            return np.zeros(shape)
        return value.astype(np.float64) if value.dtype.kind == "f" else value

    def biased(self, rows: np.ndarray, bias: bool, name: str = "bias") -> np.ndarray:
        """``rows`` (a transposed PyTorch weight) under the bias row ``name``, read when ``bias``."""
        return np.vstack([self.read(name, (rows.shape[1],))[None], rows]) if bias else rows


#: A converter: (the minidl layer, its reader) -> the layer's own state keys -> arrays.
Converter = Callable[[Any, _Reader], dict[str, np.ndarray]]


def _dense(layer: Dense, t: _Reader) -> dict[str, np.ndarray]:
    weight = t.read("weight", (layer.out_features, layer.in_features))
    return {"W": t.biased(weight.T, layer.bias)}


def _conv(layer: Conv1D | Conv2D, t: _Reader) -> dict[str, np.ndarray]:
    weight = t.read("weight", layer.kernel.shape)  # (out, in/groups, *k): W[1:] is weight.reshape(out, -1).T
    return {"W": t.biased(weight.reshape(len(weight), -1).T, layer.bias)}


def _conv_transpose(layer: ConvTranspose1D | ConvTranspose2D, t: _Reader) -> dict[str, np.ndarray]:
    weight = t.read("weight", layer.kernel.shape)  # (in, out/groups, *k)
    groups, (channels, per_group) = layer.groups, weight.shape[:2]
    # W[1 + c*taps + i, g*Fg + o] = weight[g*Cg + c, o, i]  (from_kernel's layout)
    rows = weight.reshape(groups, channels // groups, per_group, -1).transpose(1, 3, 0, 2)
    return {"W": t.biased(rows.reshape(-1, groups * per_group), layer.bias)}


def _renamed(**torch_names: str) -> Converter:
    """A converter for a layer whose arrays are PyTorch's under other names (``gamma="weight"``), same shapes."""
    def convert(layer: Layer, t: _Reader) -> dict[str, np.ndarray]:
        return {name: t.read(torch_names.get(name, name), value.shape) for name, value in _own_state(layer).items()}
    return convert


def _attention(layer: MultiHeadAttention, t: _Reader) -> dict[str, np.ndarray]:
    E = layer.embed_dim
    qkv, out = t.read("in_proj_weight", (3 * E, E)), t.read("out_proj.weight", (E, E))
    return {"W_qkv": t.biased(qkv.T, layer.bias, "in_proj_bias"), "W_o": t.biased(out.T, layer.bias, "out_proj.bias")}


def _recurrent(layer: RNN | LSTM | GRU, t: _Reader) -> dict[str, np.ndarray]:
    """``weight_ih_l0`` (G·H, I), ``weight_hh_l0`` (G·H, H), ``bias_ih_l0``, ``bias_hh_l0`` (G·H,); the suffix
    ``_l0`` is ``_l{k}`` in a ``Stack`` and ends in ``_reverse`` in a ``Bidirectional``'s ``backward_layer``."""
    gates, s = layer.W_x.data.shape[1], t.suffix or "_l0"
    w_ih = t.read(f"weight_ih{s}", (gates, layer.input_size))
    w_hh = t.read(f"weight_hh{s}", (gates, layer.hidden_size))
    if not layer.bias:
        return {"W_x": w_ih.T, "W_h": w_hh.T}
    b_ih, b_hh = t.read(f"bias_ih{s}", (gates,)), t.read(f"bias_hh{s}", (gates,))
    if isinstance(layer, GRU):  # b_hn sits inside r * (...): the GRU keeps b_hh as W_h's row 0
        return {"W_x": np.vstack([b_ih, w_ih.T]), "W_h": np.vstack([b_hh, w_hh.T])}
    return {"W_x": np.vstack([b_ih + b_hh, w_ih.T]), "W_h": w_hh.T}  # only ever added: one bias row


_NORM = _renamed(gamma="weight", beta="bias")

#: minidl layer class -> its converter (a subclass uses its nearest base's)
CONVERTERS: dict[type, Converter] = {
    Dense: _dense,
    Conv1D: _conv,
    Conv2D: _conv,
    ConvTranspose1D: _conv_transpose,
    ConvTranspose2D: _conv_transpose,
    BatchNorm1d: _NORM,
    BatchNorm2d: _NORM,
    LayerNorm: _NORM,
    GroupNorm: _NORM,
    InstanceNorm2d: _NORM,
    Embedding: _renamed(W="weight"),
    PReLU: _renamed(),
    MultiHeadAttention: _attention,
    RNN: _recurrent,
    LSTM: _recurrent,
    GRU: _recurrent,
}
_CELLS = (RNN, LSTM, GRU)


def _own_state(layer: Layer) -> dict[str, np.ndarray]:
    """The layer's own parameters and persistent buffers (not its sub-layers'), as ``state_dict`` keys them."""
    return {key: value for key, value in layer.state_dict().items() if "." not in key and key != "_layout"}


def _converter(layer: Layer) -> Converter | None:
    return next((CONVERTERS[kind] for kind in type(layer).__mro__ if kind in CONVERTERS), None)


def _is_bidirectional_cell(layer: Layer) -> bool:
    return isinstance(layer, Bidirectional) and all(
        isinstance(direction, _CELLS) for direction in (layer.forward_layer, layer.backward_layer))


def _torch_children(layer: Layer, suffix: str) -> list[tuple[str, Layer, str, str]]:
    """``(minidl name, child, torch name, recurrent suffix)`` for each child: a ``Bidirectional`` of two cells
    is one bidirectional PyTorch module (``_l0``, ``_l0_reverse``); a ``Stack`` of cells (or of such pairs) one
    multi-layer module (``_l{k}``, ``_l{k}_reverse``); a transformer stack's blocks are PyTorch's ``layers.{k}``."""
    children = list(layer.named_children())
    if _is_bidirectional_cell(layer):
        suffix = suffix or "_l0"
        return [(name, child, "", suffix if name == "forward_layer" else f"{suffix}_reverse")
                for name, child in children]
    if isinstance(layer, Stack) and all(isinstance(c, _CELLS) or _is_bidirectional_cell(c) for _, c in children):
        return [(name, child, "", f"_l{name}") for name, child in children]
    if isinstance(layer, (TransformerEncoder, TransformerDecoder)):
        return [(name, child, name if name == "norm" else f"layers.{name}", "") for name, child in children]
    return [(name, child, name, "") for name, child in children]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def state_dict_from_torch(model: Layer, torch_state: Mapping[str, Any], strict: bool = True) -> dict[str, np.ndarray]:
    """The state of ``model`` (a minidl layer or model) from a PyTorch ``state_dict`` of the same architecture.

    Each minidl layer of a kind in :data:`CONVERTERS` reads the PyTorch entries at its dotted path (``"0.weight"``
    for a ``Dense`` at position 0 of a ``Sequential``), converted to the minidl layout in float64, then cast once
    to the dtype of the minidl array it is for.  The result is keyed exactly as ``model.state_dict()`` (without
    its ``_layout`` entries), for ``model.load_state_dict``; ``model`` is not changed.  Values may be NumPy
    arrays or CPU tensors (read with ``np.asarray``, after ``.detach()``; bfloat16 through float32).

    A parameter shared by several layers (tied weights, or a layer held in several places) is keyed once, under
    its first name, as ``state_dict`` keys it; the torch entries every one of its places reads must convert to
    the same array.

    Every problem is collected, then one :class:`~minidl.errors.StateDictError` lists them: a missing torch key
    (naming the minidl layer and the key expected), a shape mismatch (both shapes), tied parameters whose torch
    entries differ, a minidl layer with parameters of a kind no converter knows, and, unless ``strict=False``,
    torch entries no layer read.  When a ``Sequential`` or ``LayerList`` has numbered names with a gap or out
    of order (left by ``del``, ``insert``, ``pop``, which PyTorch renumbers), a layer under it misses torch keys
    and torch keys under its path are unused, the message ends with a hint to rebuild it numbered from ``"0"``.
    With ``strict=False`` a layer none of whose torch entries exist is left out too (``load_state_dict(...,
    strict=False)`` then keeps its values: a new head on a ported body), but a non-empty ``torch_state`` of
    which no entry is read at all is refused as with ``strict=True`` (its names are not the model's: nothing
    would be loaded).
    """
    who = "state_dict_from_torch"
    if not isinstance(model, Layer):
        raise TypeError(f"{who}: model must be a minidl Layer, got {type(model).__name__}")
    if not isinstance(torch_state, Mapping):
        hint = ": pass module.state_dict()" if hasattr(torch_state, "state_dict") else ""
        raise TypeError(f"{who}: torch_state must be a mapping (a state_dict), got {type(torch_state).__name__}{hint}")
    strict = switch(strict, "strict", who)
    problems: list[str] = []
    left_out: list[str] = []  # the problems of the layers strict=False leaves out
    result: dict[str, np.ndarray] = {}
    used: set[str] = set()
    # torch module path -> (the minidl layer there, its children's torch names), for the unused keys' message
    places: dict[str, tuple[str, list[str]]] = {}
    # state_dict's keys: a shared parameter under its first name, a buffer under its layer's first path
    first_name = {id(param): name for name, param in model.named_parameters()}
    first_path = {id(layer): name for name, layer in model.named_layers()}
    # id of a parameter or buffer -> (the layer that converted it first, the torch keys it read, whether it had
    # problems)
    converted: dict[int, tuple[str, list[str], bool]] = {}
    # the numbered containers whose names are not 0, 1, ... in order (a del, insert or pop left them so), as
    # (where, their names, their path, their torch path), and the paths of the layers with missing torch keys
    renamed: list[tuple[str, list[str], str, str]] = []
    missing_at: list[str] = []

    def visit(layer: Layer, path: str, torch_path: str, suffix: str, above: frozenset[int]) -> None:
        if id(layer) in above:  # (a layer that holds itself)
            return
        where = f"layer '{path}' ({type(layer).__name__})" if path else f"the {type(layer).__name__} itself"
        children = _torch_children(layer, suffix)
        places.setdefault(torch_path, (where, [name for _, _, name, _ in children if name]))
        if isinstance(layer, _Positions) and _out_of_count(list(layer._layers)):
            renamed.append((where, list(layer._layers), path, torch_path))
        own = _own_state(layer)
        convert = _converter(layer)
        if convert is None:
            if own:
                problems.append(f"{where}: no PyTorch converter for this kind of layer, which holds "
                                f"{', '.join(map(repr, own))}; supported: {', '.join(k.__name__ for k in CONVERTERS)}")
            for name, child, torch_name, child_suffix in children:
                visit(child, _join(path, name), _join(torch_path, torch_name), child_suffix, above | {id(layer)})
            return
        layer_problems: list[str] = []
        prefix = f"{torch_path}." if torch_path else ""
        reader = _Reader(torch_state, prefix, where, layer_problems, suffix)
        arrays = convert(layer, reader)
        unknown = [name for name in own if name not in arrays]  # (a subclass's parameter of its own)
        if unknown:
            layer_problems.append(f"{where}: no PyTorch converter for its {', '.join(map(repr, unknown))}")
        used.update(reader.used)
        if reader.missing:
            missing_at.append(path)
        if not strict and not reader.used:  # nothing of it in the torch state: left out
            left_out.extend(layer_problems)
            return
        problems.extend(layer_problems)
        for name, value in arrays.items():
            param = layer._parameters.get(name)
            target = param if param is not None else layer._buffers[name]
            key = first_name[id(param)] if param is not None else _join(first_path[id(layer)], name)
            first = converted.setdefault(id(target), (where, reader.used, bool(layer_problems)))
            # shared: the same array from every place (stored again), or a problem naming both
            if first[0] != where and not (layer_problems or first[2] or np.array_equal(result[key], value)):
                problems.append(f"{where}: its {name!r} is tied to {first[0]}'s ({key!r}), but the torch "
                                f"entries converted for them differ: {', '.join(map(repr, reader.used))} "
                                f"against {', '.join(map(repr, first[1]))} (tie them in the torch model too, "
                                f"or untie them in the minidl one)")
            result[key] = np.array(value, dtype=own[name].dtype, order="C")  # the one cast, to the minidl dtype

    visit(model, "", "", "", frozenset())
    if torch_state and not used and not strict:  # (the names differ: strict=False would load nothing)
        problems[:0] = [f"strict=False, but none of the {len(torch_state)} torch entries was read, so nothing would "
                       "be loaded; the model's layers expected these (are its layer names the torch module's?):",
                       *left_out]
    if strict or not used:
        for key in torch_state:
            if key not in used:
                problems.append(f"unused torch key {key!r}: {_no_entry(str(key), places)}"
                                + " (strict=False to leave it out)" * strict)
    if problems:
        unused = [str(key) for key in torch_state if key not in used]
        # (a gap is the likely cause only where it could pair them: a layer under it misses keys while keys
        # under its torch path are unused)
        suspects = [(where, names) for where, names, path, torch_path in renamed
                    if any(_under(at, path) for at in missing_at) and any(_under(key, torch_path) for key in unused)]
        hint = "\n" + _renumber_hint(suspects) if suspects else ""
        raise StateDictError(f"{who} refused the torch state ({len(problems)} problem{'s' * (len(problems) > 1)}):"
                             "\n  " + "\n  ".join(problems) + hint)
    return result


def _under(path: str, root: str) -> bool:
    """Whether the dotted ``path`` lies under ``root`` (everything lies under the model's own path, ``""``)."""
    return not root or path.startswith(f"{root}.")


def _out_of_count(names: list[str]) -> bool:
    """Whether a numbered container's ``names`` (all numbers) are not ``"0"``, ``"1"``, ... in order: a gap or
    another order, which ``del``, ``insert`` and ``pop`` leave (PyTorch's renumber)."""
    numbers = all(name.isascii() and name.isdecimal() for name in names)
    return numbers and names != [str(i) for i in range(len(names))]


def _renumber_hint(renamed: list[tuple[str, list[str]]]) -> str:
    """The hint for keys both missing and unused when numbered containers have gaps or another order."""
    shown = "; ".join(f"{where} names its layers {', '.join(repr(n) for n in names[:8])}"
                      f"{', ...' if len(names) > 8 else ''}" for where, names in renamed[:3])
    return (f"Hint: {shown}. After del, insert or pop, minidl keeps each layer's name while PyTorch renumbers "
            "them from '0', so the paths differ: rebuild it numbered from '0' with the same layers, "
            "model = md.Sequential(*model) (a nested one in place: parent[i] = md.Sequential(*parent[i]); a "
            "LayerList: md.LayerList(blocks)), then port again")


def _no_entry(key: str, places: dict[str, tuple[str, list[str]]]) -> str:
    """Why the torch ``key`` has no minidl place: the layer at its module path has no such entry, or there is no
    minidl layer at that path (naming the children of the nearest layer above it)."""
    module = key.rpartition(".")[0]
    place = module
    while place not in places and place:
        place = place.rpartition(".")[0]
    if place not in places:
        return "the model has no such entry"
    owner, children = places[place]
    if place == module:
        return f"{owner} has no such entry"
    missing = _join(place, module[len(place) + 1 if place else 0:].split(".")[0])
    inside = f"children of {owner}: {', '.join(children)}" if children else f"{owner} holds no layers"
    return f"no minidl layer at {missing!r} ({inside})"
