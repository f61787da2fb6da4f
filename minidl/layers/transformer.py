"""PyTorch's transformer blocks, batch-first, their back-passes written out: ``TransformerEncoderLayer``
(self-attention and a per-position MLP) and ``TransformerDecoderLayer`` (self-attention, attention to the
encoder's output, and the MLP), each sub-block with a residual connection and a layer norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..errors import BackwardBeforeForwardError, DTypeError, MinidlError, ShapeError
from ..init import RNGLike, as_generator, float_dtype, positive_int, switch
from ..inputs import is_several
from ..layer import Layer
from ..model import Model, Stack, _name_in_message
from ..validation import as_array, check_input, check_padding_mask, is_integer
from .activations import GELU, ReLU
from .attention import MultiHeadAttention
from .dense import Dense
from .dropout import Dropout, drop_probability
from .normalization import LayerNorm

__all__ = ["TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer"]

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}

#: ``"relu"``, ``"gelu"``, or a layer class / function that makes a new layer (e.g. ``md.Mish``)
ActivationArg = str | Callable[[], Layer]


def _activation(who: str, activation: Any, dtype: np.dtype) -> Layer:
    """The activation layer a block's ``activation`` argument asks for, newly made, its parameters (a
    ``PReLU``'s slope) in the block's ``dtype``."""
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{who}: activation must be 'relu', 'gelu', or a layer class or function that makes "
                             f"a new layer (e.g. md.Mish), got {activation!r}")
        return _ACTIVATIONS[activation]()
    if isinstance(activation, Layer):
        raise TypeError(f"{who}: activation must be a layer class or a function that makes a new layer (e.g. "
                        f"activation=md.Mish, or activation=lambda: md.LeakyReLU(0.1)), not the layer {activation!r}: "
                        "one instance in two blocks would share its backward's cache")
    if not callable(activation):
        raise TypeError(f"{who}: activation must be 'relu', 'gelu', or a layer class or function that makes a new "
                        f"layer (e.g. md.Mish), got {activation!r}")
    try:
        layer = activation()
    except TypeError as error:  # e.g. F.gelu or np.tanh, functions of the array, as PyTorch takes them
        raise TypeError(f"{who}: activation must be a layer class or a function of no arguments that makes a new "
                        f"layer (e.g. md.GELU, or lambda: md.LeakyReLU(0.1)); calling {activation!r} with no "
                        f"arguments failed: {error}") from error
    if not isinstance(layer, Layer):
        raise TypeError(f"{who}: activation() must make a Layer (x: (N, T, dim_feedforward) -> same shape), "
                        f"got {type(layer).__name__}")
    if layer.num_parameters() or any(b is not None for _, b in layer.named_buffers()):
        layer.astype(dtype)
    return layer


def _check_kept(activation: Layer, what: str, given: np.ndarray, made: Any) -> None:
    """A ``DTypeError`` or ``ShapeError`` naming the ``activation`` whose output (or backward's
    gradient) ``made`` is not an array of ``given``'s shape and dtype (the block's name goes in front)."""
    if type(made) is not np.ndarray:
        name = type(made).__name__
        kind = (f"an ndarray subclass ({name})" if isinstance(made, np.ndarray) else
                f"a numpy.{name} scalar" if isinstance(made, np.generic) else
                "None (does it return its result?)" if made is None else
                f"{'an' if name[0] in 'aeiou' else 'a'} {name}")
        raise DTypeError(f"the activation {activation!r}'s {what} is {kind}, not a plain numpy.ndarray like its "
                         f"input ({given.dtype}, shape {given.shape})")
    if made.shape != given.shape:
        raise ShapeError(f"the activation {activation!r}'s {what} has shape {made.shape}, not its input's "
                         f"{given.shape} (dim_feedforward={given.shape[-1]}); it must keep the shape")
    if made.dtype != given.dtype:
        raise DTypeError(f"the activation {activation!r}'s {what} is {made.dtype}, not its input's {given.dtype}; "
                         "it must keep the dtype")


class _Block(Model):
    """What the encoder and decoder blocks share: their arguments' checks, the MLP, the refusal of a
    backward after a forward that failed part-way, and the naming of sub-layers' errors."""

    self_attn: MultiHeadAttention
    dropout: Dropout
    #: whether the last forward ran to the end (every cache from one pass)
    _complete: bool = False

    def _settings(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, activation: ActivationArg,
                  norm_first: bool, causal: bool, layer_norm_eps: float, rng: RNGLike, dtype: DTypeLike,
                  norms: int) -> tuple[int, int, int, float, np.random.Generator, list[LayerNorm], Layer]:
        """Every argument checked before anything is drawn from ``rng`` (a sub-layer's refusal named as
        the block's); returns the sizes, the drop probability, the generator, the ``norms`` norms and
        the activation layer."""
        who = type(self).__name__
        try:
            d_model = positive_int(d_model, "d_model", who)
            nhead = positive_int(nhead, "nhead", who)
            if d_model % nhead:
                raise ValueError(f"{who}: d_model ({d_model}) must be divisible by nhead ({nhead})")
            dim_feedforward = positive_int(dim_feedforward, "dim_feedforward", who)
            self.norm_first = switch(norm_first, "norm_first", who)
            switch(causal, "causal", who)
            p = drop_probability(dropout, who, "dropout")
            if float_dtype(dtype, who).itemsize < 4:
                raise DTypeError(f"{who}: float16 is not supported (the attention's scores would overflow); "
                                 "use float32")
            made_activation = _activation(who, activation, float_dtype(dtype, who))
            made = [LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype) for _ in range(norms)]
            generator = as_generator(rng)
        except (TypeError, ValueError) as error:
            if not str(error).startswith(who):
                error.args = (f"{who}: {error.args[0]}", *error.args[1:]) if error.args else error.args
            raise
        #: the string given, or None for a layer made by the function given
        self.activation_name = activation if isinstance(activation, str) else None
        return d_model, nhead, dim_feedforward, p, generator, made, made_activation

    def _make_feed_forward(self, d_model: int, dim_feedforward: int, generator: np.random.Generator,
                           dtype: DTypeLike, activation: Layer) -> None:
        self.linear1 = Dense(d_model, dim_feedforward, rng=generator, dtype=dtype)
        self.activation = activation
        self.linear2 = Dense(dim_feedforward, d_model, rng=generator, dtype=dtype)

    def _feed_forward(self, h: np.ndarray) -> np.ndarray:
        z = self.linear1(h)
        a = self.activation(z)
        # (else linear2's refusal would show the block's own input: the activation is named instead; the
        # block's name is put in front by the forward, as for a sub-layer's error)
        _check_kept(self.activation, "output", z, a)
        return self.linear2(self.dropout(a))

    def _feed_forward_back(self, g: np.ndarray) -> np.ndarray:
        ga = self.dropout.backward(self.linear2.backward(g))
        gz = self.activation.backward(ga)
        _check_kept(self.activation, "backward's gradient", ga, gz)  # (else linear1 would blame g)
        return self.linear1.backward(gz)

    def _sequence(self, x: Any, what: str, batch: int | None = None) -> np.ndarray:
        """``x`` checked as (N, T, d_model) with T >= 1, before any sub-layer runs.  With ``batch`` (the
        memory: N = ``batch``) also its dtype and values, which no sub-layer checks before the first has run."""
        E = self.self_attn.embed_dim
        who = type(self).__name__
        memory = batch is not None
        if memory or type(x) is not np.ndarray or x.ndim != 3 or x.shape[2] != E or x.shape[1] == 0:
            layout = f"(N, S, {E}) = ({batch}, S, {E})" if memory else f"(N, T, {E})"
            sizes = {2: E} if batch is None else {0: batch, 2: E}
            x = check_input(x, who, what=what, ndim=3, layout=layout, sizes=sizes,
                            dtype=self.self_attn.W_qkv.dtype if memory else None, finite=memory)
            if x.shape[1] == 0:
                raise ShapeError(f"{who}: expected at least one position in the {what} of shape {layout}, got "
                                 f"shape {x.shape}")
        return x

    def _run(self, compute: Any) -> np.ndarray:
        """``compute()``, a sub-layer's error said to come from this block."""
        try:
            return compute()
        except MinidlError as error:
            _name_in_message(error, type(self).__name__, self)
            raise

    def backward(self, grad_output: np.ndarray) -> Any:
        who = type(self).__name__
        if not self._complete:
            raise BackwardBeforeForwardError(
                f"{who}.backward: no forward ran to its end since the layer was made or a forward failed "
                "part-way (the sub-layers would hold the caches of two passes); run a forward that succeeds first")
        return self._run(lambda: self._backward(grad_output))

    def _backward(self, grad_output: np.ndarray) -> Any:
        raise NotImplementedError

    def _failed_part_way(self) -> bool:
        """For a container holding this block (``Sequential``, ``Residual``): whether its last forward
        raised after a sub-layer had replaced its cache."""
        return not self._complete

    def input_shape_hint(self) -> tuple[int, ...]:
        return self.self_attn.input_shape_hint()

    def extra_repr(self) -> str:
        return (f"d_model={self.self_attn.embed_dim}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features}, dropout={self.dropout.p}, "
                f"activation={self.activation_name or self.activation!r}, norm_first={self.norm_first}"
                + (", causal=True" if self.self_attn.causal else ""))


class TransformerEncoderLayer(_Block):
    """One encoder block, x: (N, T, d_model) -> (N, T, d_model), as PyTorch's
    ``nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, batch_first=True,
    norm_first=...)``::

        post-norm (norm_first=False, PyTorch's default):     pre-norm (norm_first=True):
            h = norm1(x + dropout1(self_attn(x)))                h = x + dropout1(self_attn(norm1(x)))
            y = norm2(h + dropout2(ff(h)))                       y = h + dropout2(ff(norm2(h)))

    with ``ff(h) = linear2(dropout(activation(linear1(h))))`` applied at every position.  The
    sub-layers are attributes named as in PyTorch (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``, ``dropout``, ``dropout1``, ``dropout2``), so the parameters are ``self_attn.W_qkv``,
    ``linear1.W``, ``norm1.gamma``, ...

    Backward: the chain above in reverse; at each residual sum the gradient goes to both branches
    (``dx = g + d(branch)/dx``).  A forward that fails part-way refuses the next backward (the
    sub-layers would hold the caches of two passes).

    Args:
        d_model: ``E``, the features per position.  nhead: attention heads (must divide ``d_model``).
        dim_feedforward: the MLP's hidden width (PyTorch's default 2048).
        dropout: the drop probability of the three dropouts and of the attention weights (as PyTorch;
            nothing is dropped in eval mode).
        activation: ``"relu"`` (PyTorch's default), ``"gelu"``, or a layer class or function that makes a
            new layer (``md.Mish``, ``lambda: md.LeakyReLU(0.1)``), made once per block; an instance is
            refused (two blocks sharing it would share its backward's cache).
        norm_first: pre-norm (``True``) or post-norm.  causal: mask the future in the attention.
        layer_norm_eps: the norms' ``eps``.
        rng: a ``numpy.random.Generator`` or int seed: the weights, then the dropouts' generators.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    #: every sub-layer runs in each forward, so a stack refuses two blocks sharing one (model._called_by
    #: reads it on this class alone: a subclass may hold a layer it does not call, e.g. a tied one)
    calls_every_sublayer = True

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: ActivationArg = "relu", *, norm_first: bool = False, causal: bool = False,
                 layer_norm_eps: float = 1e-5, rng: RNGLike = None, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        d_model, nhead, dim_feedforward, p, generator, norms, activation_layer = self._settings(
            d_model, nhead, dim_feedforward, dropout, activation, norm_first, causal, layer_norm_eps, rng, dtype, 2)
        # (the attention draws its dropout's seed after its weights, whatever p: nothing depends on p)
        self.self_attn = MultiHeadAttention(d_model, nhead, causal=causal, dropout=p, rng=generator, dtype=dtype)
        self._make_feed_forward(d_model, dim_feedforward, generator, dtype, activation_layer)
        self.norm1, self.norm2 = norms
        seeds = generator.integers(2**63, size=3)  # one generator per dropout, drawn after the weights
        self.dropout = Dropout(p, rng=int(seeds[0]))
        self.dropout1 = Dropout(p, rng=int(seeds[1]))
        self.dropout2 = Dropout(p, rng=int(seeds[2]))
        self._padded = False  # whether that forward was given a pair (x, key_padding_mask)

    def forward(self, x: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """x: (N, T, d_model) -> (N, T, d_model); or ``(x, key_padding_mask)`` with the mask (N, T) booleans,
        True at a padding position, which no position attends to (PyTorch's ``src_key_padding_mask``)."""
        padding = None
        if is_several(x):
            if len(x) != 2:
                raise ShapeError(f"TransformerEncoderLayer: expected x or a pair (x, key_padding_mask), got a tuple "
                                 f"of {len(x)}")
            x, padding = x
        x = self._sequence(x, "input")  # refused before any sub-layer runs (a pre-norm's LayerNorm takes other ranks)
        if padding is not None:  # so is a bad mask: the block's last pass stays usable
            check_padding_mask(padding, x.shape[0], x.shape[1], "TransformerEncoderLayer")

        def attend(h: np.ndarray) -> np.ndarray:
            """Self-attention of ``h``, with the key padding mask when one was given."""
            return self.self_attn(h) if padding is None else self.self_attn((h, padding))

        def compute() -> np.ndarray:
            # the first sub-layer checks the rest (dtype, NaN/inf) and keeps nothing if it refuses x
            first = self.norm1(x) if self.norm_first else attend(x)
            self._complete = False
            self._padded = padding is not None
            if self.norm_first:
                h = x + self.dropout1(attend(first))
                return h + self.dropout2(self._feed_forward(self.norm2(h)))
            h = self.norm1(x + self.dropout1(first))
            return self.norm2(h + self.dropout2(self._feed_forward(h)))

        y = self._run(compute)
        self._complete = True
        return y

    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: (N, T, d_model) -> dx: (N, T, d_model), or ``(dx, None)`` after a forward given
        ``(x, key_padding_mask)``; adds every sub-layer's parameter gradients."""
        return super().backward(grad_output)

    def _attention_back(self, g: np.ndarray) -> np.ndarray:
        d = self.self_attn.backward(g)
        return d[0] if self._padded else d  # (dx, None) after a pair (x, key_padding_mask)

    def _backward(self, grad_output: np.ndarray) -> Any:
        if self.norm_first:
            # y = h + ff(norm2(h)): h gets g directly and through the MLP branch
            dh = grad_output + self.norm2.backward(self._feed_forward_back(self.dropout2.backward(grad_output)))
            # h = x + attn(norm1(x))
            dx = dh + self.norm1.backward(self._attention_back(self.dropout1.backward(dh)))
        else:
            ds = self.norm2.backward(grad_output)  # s = h + ff(h), y = norm2(s)
            dh = ds + self._feed_forward_back(self.dropout2.backward(ds))
            dr = self.norm1.backward(dh)  # r = x + attn(x), h = norm1(r)
            dx = dr + self._attention_back(self.dropout1.backward(dr))
        return (dx, None) if self._padded else dx


class TransformerDecoderLayer(_Block):
    """One decoder block, as PyTorch's ``nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout,
    activation, batch_first=True, norm_first=...)``: ``(x, memory) -> (N, T, d_model)`` with the target
    sequence ``x: (N, T, d_model)`` and the encoder's output ``memory: (N, S, d_model)``::

        post-norm (norm_first=False, PyTorch's default):     pre-norm (norm_first=True):
            h = norm1(x + dropout1(self_attn(x)))                h = x + dropout1(self_attn(norm1(x)))
            k = norm2(h + dropout2(cross(h, memory)))            k = h + dropout2(cross(norm2(h), memory))
            y = norm3(k + dropout3(ff(k)))                       y = k + dropout3(ff(norm3(k)))

    with ``cross = multihead_attn`` (queries from the target, keys and values from the memory) and ``ff``
    the encoder's MLP.  Sub-layers named as in PyTorch (``self_attn``, ``multihead_attn``, ``linear1``,
    ``linear2``, ``norm1``..``norm3``, ``dropout``, ``dropout1``..``dropout3``).

    Inputs (a tuple, see :mod:`minidl.inputs`): ``(x, memory)``; ``(x, memory, memory_key_padding_mask)``,
    the mask (N, S) booleans, True at the memory's padding; or ``(x, memory, tgt_key_padding_mask,
    memory_key_padding_mask)``, the first (N, T) over the target.  ``backward`` returns ``(dx, dmemory)``
    and a ``None`` per mask.  ``causal=True`` masks the target's future in the self-attention (PyTorch's
    ``tgt_mask`` = the square subsequent mask, what a decoder trained by teacher forcing needs).

    Args: as :class:`TransformerEncoderLayer` (the draws: ``self_attn``, ``multihead_attn``, the MLP, then
    the four dropouts' generators).
    """

    #: every sub-layer runs in each forward, so a stack refuses two blocks sharing one (model._called_by
    #: reads it on this class alone: a subclass may hold a layer it does not call, e.g. a tied one)
    calls_every_sublayer = True

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: ActivationArg = "relu", *, norm_first: bool = False, causal: bool = False,
                 layer_norm_eps: float = 1e-5, rng: RNGLike = None, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        d_model, nhead, dim_feedforward, p, generator, norms, activation_layer = self._settings(
            d_model, nhead, dim_feedforward, dropout, activation, norm_first, causal, layer_norm_eps, rng, dtype, 3)
        self.self_attn = MultiHeadAttention(d_model, nhead, causal=causal, dropout=p, rng=generator, dtype=dtype)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=p, rng=generator, dtype=dtype)
        self._make_feed_forward(d_model, dim_feedforward, generator, dtype, activation_layer)
        self.norm1, self.norm2, self.norm3 = norms
        seeds = generator.integers(2**63, size=4)  # one generator per dropout, drawn after the weights
        self.dropout = Dropout(p, rng=int(seeds[0]))
        self.dropout1 = Dropout(p, rng=int(seeds[1]))
        self.dropout2 = Dropout(p, rng=int(seeds[2]))
        self.dropout3 = Dropout(p, rng=int(seeds[3]))
        self._masks = (False, False)  # whether that forward masked the target's / the memory's padding

    def forward(self, x: tuple[np.ndarray, ...]) -> np.ndarray:
        """``(x, memory[, tgt_key_padding_mask], [memory_key_padding_mask])`` -> (N, T, d_model)."""
        who = "TransformerDecoderLayer"
        if isinstance(x, tuple) and not is_several(x):
            as_array(x, who, "x")  # a tuple mixing arrays and other values (None, a list) is refused by name
        if not is_several(x) or len(x) not in (2, 3, 4):
            got = f"a tuple of {len(x)}" if isinstance(x, tuple) else f"a {type(x).__name__}"
            raise ShapeError(f"{who}: expected (x, memory), (x, memory, memory_key_padding_mask) or (x, memory, "
                             f"tgt_key_padding_mask, memory_key_padding_mask), got {got}")
        parts: tuple[Any, ...] = x
        target_padding = memory_padding = None
        if len(parts) == 3:
            target, memory, memory_padding = parts
        elif len(parts) == 4:
            target, memory, target_padding, memory_padding = parts
        else:
            target, memory = parts
        # everything refused before any sub-layer runs, so that the block's last pass stays usable
        target = self._sequence(target, "input")
        N, T, _ = target.shape
        memory = self._sequence(memory, "memory", batch=N)  # shape, dtype, NaN/inf
        if target_padding is not None:
            check_padding_mask(target_padding, N, T, who, "tgt_key_padding_mask")
        if memory_padding is not None:
            check_padding_mask(memory_padding, N, memory.shape[1], who, "memory_key_padding_mask", "a memory", "S")

        def attend(h: np.ndarray) -> np.ndarray:
            return self.self_attn(h if target_padding is None else (h, target_padding))

        def cross(h: np.ndarray) -> np.ndarray:
            return self.multihead_attn((h, memory) if memory_padding is None else (h, memory, memory_padding))

        def compute() -> np.ndarray:
            # the first sub-layer checks the target's dtype and values, and keeps nothing if it refuses them
            first = self.norm1(target) if self.norm_first else attend(target)
            self._complete = False
            self._masks = (target_padding is not None, memory_padding is not None)
            if self.norm_first:
                h = target + self.dropout1(attend(first))
                k = h + self.dropout2(cross(self.norm2(h)))
                return k + self.dropout3(self._feed_forward(self.norm3(k)))
            h = self.norm1(target + self.dropout1(first))
            k = self.norm2(h + self.dropout2(cross(h)))
            return self.norm3(k + self.dropout3(self._feed_forward(k)))

        y = self._run(compute)
        self._complete = True
        return y

    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: (N, T, d_model) -> ``(dx, dmemory)``, and a ``None`` per mask the forward was given;
        adds every sub-layer's parameter gradients."""
        return super().backward(grad_output)

    def _self_back(self, g: np.ndarray) -> np.ndarray:
        d = self.self_attn.backward(g)
        return d[0] if self._masks[0] else d

    def _backward(self, grad_output: np.ndarray) -> Any:
        if self.norm_first:
            dk = grad_output + self.norm3.backward(self._feed_forward_back(self.dropout3.backward(grad_output)))
            dq, dmemory, *_ = self.multihead_attn.backward(self.dropout2.backward(dk))
            dh = dk + self.norm2.backward(dq)
            dx = dh + self.norm1.backward(self._self_back(self.dropout1.backward(dh)))
        else:
            ds = self.norm3.backward(grad_output)  # s = k + ff(k), y = norm3(s)
            dk = ds + self._feed_forward_back(self.dropout3.backward(ds))
            dr = self.norm2.backward(dk)  # r = h + cross(h), k = norm2(r)
            dq, dmemory, *_ = self.multihead_attn.backward(self.dropout2.backward(dr))
            dh = dr + dq
            du = self.norm1.backward(dh)  # u = x + self_attn(x), h = norm1(u)
            dx = du + self._self_back(self.dropout1.backward(du))
        return (dx, dmemory, *(None for masked in self._masks if masked))

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """``(x, memory)``, both N(0, 1) of ``shape`` (the memory as long as the target, or as many
        positions as ``multihead_attn.attn_mask`` has keys, PyTorch's ``memory_mask``)."""
        cross = self.multihead_attn.attn_mask
        S = shape[1] if cross is None or len(shape) != 3 else cross.shape[-1]
        return rng.standard_normal(shape), rng.standard_normal((shape[0], S, *shape[2:]))

    def input_shape_hint(self) -> tuple[int, ...]:
        """As the self-attention's, or with only a cross-attention mask (T, S), its ``T`` queries."""
        cross = self.multihead_attn.attn_mask
        if self.self_attn.attn_mask is None and cross is not None:
            return (cross.shape[-2], self.self_attn.embed_dim)
        return self.self_attn.input_shape_hint()


class _TransformerStack(Stack):
    """A ``Stack`` of one kind of transformer block, all of one ``d_model``, then an optional final
    ``norm``, registered as ``"norm"`` after the blocks ``"0"``, ``"1"``, ..."""

    _block: type[_Block]
    _item = "block"

    def __init__(self, *blocks: _Block, norm: Layer | None = None) -> None:
        who = type(self).__name__
        if not blocks:
            raise ValueError(f"{who}: give at least one {self._block.__name__}")
        for i, block in enumerate(blocks):
            if not isinstance(block, self._block):
                kind = self._block.__name__
                given: Any = block
                if is_integer(given) and isinstance(blocks[0], self._block):  # PyTorch's (layer, num_layers)
                    raise TypeError(f"{who}: block {i} is the int {int(given)}; {who} takes its blocks one by one, not "
                                    f"(layer, num_layers) as PyTorch's: md.{who}(*[md.{kind}(...) for _ in "
                                    f"range({int(given)})])")
                raise TypeError(f"{who}: block {i} is a {type(block).__name__}, expected a {kind}")
            if block.self_attn.embed_dim != blocks[0].self_attn.embed_dim:
                raise ValueError(f"{who}: block {i} has d_model {block.self_attn.embed_dim}, block 0 has "
                                 f"{blocks[0].self_attn.embed_dim}; the blocks of a stack share one d_model")
        if norm is not None and not isinstance(norm, Layer):
            raise TypeError(f"{who}: norm must be a Layer (e.g. LayerNorm(d_model)) or None, got {type(norm).__name__}")
        if norm is not None and any(sub is norm for block in blocks for sub in block.layers()):
            raise ValueError(f"{who}: the final norm is a layer of a block; a layer keeps one forward cache, so "
                             "give the stack a norm of its own (LayerNorm(d_model))")
        super().__init__(*blocks)
        self.norm = norm

    @property
    def blocks(self) -> list[_Block]:
        """The blocks, in order (registered as ``"0"``, ``"1"``, ...)."""
        return list(self)  # type: ignore[arg-type]

    def forward(self, x: Any) -> np.ndarray:
        y = super().forward(x)
        if self.norm is None:
            return y
        try:
            return self.norm(y)
        except BaseException as error:  # the blocks hold this pass's caches, the norm the last one's
            self._complete = False
            if isinstance(error, MinidlError):
                _name_in_message(error, f"{type(self).__name__} norm", self)
            raise

    def backward(self, grad_output: np.ndarray) -> Any:
        return super().backward(self._norm_back(grad_output, "backward"))

    def backward_params(self, grad_output: np.ndarray) -> None:
        super().backward_params(self._norm_back(grad_output, "backward_params"))

    def _norm_back(self, grad_output: np.ndarray, method: str) -> np.ndarray:
        """The gradient of the blocks' output: through the final norm, if any (refused after a failed pass)."""
        self._refuse_incomplete(method)
        if self.norm is None:
            return grad_output
        try:
            return self.norm.backward(grad_output)
        except MinidlError as error:
            _name_in_message(error, f"{type(self).__name__} norm", self)
            raise


class TransformerEncoder(_TransformerStack):
    """A stack of :class:`TransformerEncoderLayer` s, as PyTorch's ``nn.TransformerEncoder`` (with blocks
    of their own rather than copies of one): x or ``(x, key_padding_mask)`` -> (N, T, d_model).  Every
    block gets the mask (a ``Sequential`` would give it to the first only); ``norm`` (e.g. a
    ``LayerNorm(d_model)``, what a pre-norm stack ends with) is applied after the last block.  After a
    mask, ``backward`` returns ``(dx, None)``."""

    _block = TransformerEncoderLayer

    def _split(self, x: Any) -> tuple[Any, tuple[np.ndarray, ...]]:
        h, extra = super()._split(x)
        if len(extra) > 1:
            raise ShapeError(f"TransformerEncoder: expected x or a pair (x, key_padding_mask), got a tuple of "
                             f"{1 + len(extra)}")
        return h, extra


class TransformerDecoder(_TransformerStack):
    """A stack of :class:`TransformerDecoderLayer` s, as PyTorch's ``nn.TransformerDecoder``: every block
    reads the same memory (and masks), ``(x, memory[, masks])`` -> (N, T, d_model), then ``norm``.
    ``backward`` returns ``(dx, dmemory, ...)``, ``dmemory`` summed over the blocks."""

    _block = TransformerDecoderLayer

    def _masked(self, cross: bool) -> Layer:
        """The first block with a cross-attention mask (``cross``) or any mask, else the first block."""
        def has(block: Layer) -> bool:
            return isinstance(block, TransformerDecoderLayer) and (block.multihead_attn.attn_mask is not None or (
                not cross and block.self_attn.attn_mask is not None))
        return next((block for block in self if has(block)), self[0])

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """As a block's: ``(x, memory)``, the memory as long as the cross-attention mask of the first
        block that has one says (every block reads the same memory)."""
        return self._masked(cross=True).random_inputs(shape, rng)

    def input_shape_hint(self) -> tuple[int, ...] | None:
        """The first masked block's (its mask fixes ``T``), else the first block's."""
        return self._masked(cross=False).input_shape_hint()

    def _split(self, x: Any) -> tuple[Any, tuple[np.ndarray, ...]]:
        h, extra = super()._split(x)
        if not extra:
            raise ShapeError(f"TransformerDecoder: expected (x, memory[, tgt_key_padding_mask], "
                             f"[memory_key_padding_mask]), got a {type(x).__name__}")
        return h, extra
