"""``TransformerEncoderLayer``: self-attention and a per-position MLP, each with a residual connection and a
layer norm, as PyTorch's ``nn.TransformerEncoderLayer(batch_first=True)``; its back-pass written out."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..errors import BackwardBeforeForwardError, DTypeError, MinidlError, ShapeError
from ..init import RNGLike, as_generator, float_dtype, positive_int, switch
from ..model import Model, _name_in_message
from ..validation import check_input
from .activations import GELU, ReLU
from .attention import MultiHeadAttention, check_padding_mask
from .dense import Dense
from .dropout import Dropout, drop_probability
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer"]

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class TransformerEncoderLayer(Model):
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
        activation: ``"relu"`` (PyTorch's default) or ``"gelu"``.
        norm_first: pre-norm (``True``) or post-norm.  causal: mask the future in the attention.
        layer_norm_eps: the norms' ``eps``.
        rng: a ``numpy.random.Generator`` or int seed: the weights, then the dropouts' generators.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", *, norm_first: bool = False, causal: bool = False,
                 layer_norm_eps: float = 1e-5, rng: RNGLike = None, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        who = "TransformerEncoderLayer"
        try:  # everything checked before anything is drawn from rng; a sub-layer's refusal names the block
            d_model = positive_int(d_model, "d_model", who)
            nhead = positive_int(nhead, "nhead", who)
            if d_model % nhead:
                raise ValueError(f"{who}: d_model ({d_model}) must be divisible by nhead ({nhead})")
            dim_feedforward = positive_int(dim_feedforward, "dim_feedforward", who)
            if not isinstance(activation, str) or activation not in _ACTIVATIONS:
                raise ValueError(f"{who}: activation must be 'relu' or 'gelu', got {activation!r}")
            self.norm_first = switch(norm_first, "norm_first", who)
            switch(causal, "causal", who)
            p = drop_probability(dropout, who, "dropout")
            if float_dtype(dtype, who).itemsize < 4:
                raise DTypeError(f"{who}: float16 is not supported (the attention's scores would overflow); "
                                 "use float32")
            norms = (LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype),
                     LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype))
            generator = as_generator(rng)
        except (TypeError, ValueError) as error:
            if not str(error).startswith(who):
                error.args = (f"{who}: {error.args[0]}", *error.args[1:]) if error.args else error.args
            raise
        self.activation_name = activation
        # (the attention draws its dropout's seed after its weights, whatever p: nothing depends on p)
        self.self_attn = MultiHeadAttention(d_model, nhead, causal=causal, dropout=p, rng=generator, dtype=dtype)
        self.linear1 = Dense(d_model, dim_feedforward, rng=generator, dtype=dtype)
        self.activation = _ACTIVATIONS[activation]()
        self.linear2 = Dense(dim_feedforward, d_model, rng=generator, dtype=dtype)
        self.norm1, self.norm2 = norms
        seeds = generator.integers(2**63, size=3)  # one generator per dropout, drawn after the weights
        self.dropout = Dropout(p, rng=int(seeds[0]))
        self.dropout1 = Dropout(p, rng=int(seeds[1]))
        self.dropout2 = Dropout(p, rng=int(seeds[2]))
        self._complete = False  # whether the last forward ran to the end (every cache from one pass)
        self._padded = False  # whether that forward was given a pair (x, key_padding_mask)

    def _feed_forward(self, h: np.ndarray) -> np.ndarray:
        return self.linear2(self.dropout(self.activation(self.linear1(h))))

    def _feed_forward_back(self, g: np.ndarray) -> np.ndarray:
        return self.linear1.backward(self.activation.backward(self.dropout.backward(self.linear2.backward(g))))

    def forward(self, x: np.ndarray | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """x: (N, T, d_model) -> (N, T, d_model); or ``(x, key_padding_mask)`` with the mask (N, T) booleans,
        True at a padding position, which no position attends to (PyTorch's ``src_key_padding_mask``)."""
        E = self.self_attn.embed_dim
        padding = None
        if type(x) is tuple:
            if len(x) != 2:
                raise ShapeError(f"TransformerEncoderLayer: expected x or a pair (x, key_padding_mask), got a tuple "
                                 f"of {len(x)}")
            x, padding = x
        if type(x) is not np.ndarray or x.ndim != 3 or x.shape[2] != E or x.shape[1] == 0:
            # refused here, before any sub-layer runs (a pre-norm's LayerNorm would take other ranks)
            x = check_input(x, "TransformerEncoderLayer", ndim=3, layout=f"(N, T, {E})", sizes={2: E}, finite=False)
            if x.shape[1] == 0:
                raise ShapeError(f"TransformerEncoderLayer: expected at least one position in an input of shape "
                                 f"(N, T, {E}), got shape {x.shape}")
        try:
            # the first sub-layer checks the rest (dtype, NaN/inf) and keeps nothing if it refuses x
            if padding is not None:  # refused before any sub-layer runs: the block's last pass stays usable
                check_padding_mask(padding, x.shape[0], x.shape[1], "TransformerEncoderLayer")
            attend = self.self_attn if padding is None else lambda h: self.self_attn((h, padding))
            first = self.norm1(x) if self.norm_first else attend(x)
            self._complete = False
            self._padded = padding is not None
            if self.norm_first:
                h = x + self.dropout1(attend(first))
                y = h + self.dropout2(self._feed_forward(self.norm2(h)))
            else:
                h = self.norm1(x + self.dropout1(first))
                y = self.norm2(h + self.dropout2(self._feed_forward(h)))
        except MinidlError as error:  # a sub-layer's message, said to come from this block
            _name_in_message(error, "TransformerEncoderLayer")
            raise
        self._complete = True
        return y

    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: (N, T, d_model) -> dx: (N, T, d_model), or ``(dx, None)`` after a forward given
        ``(x, key_padding_mask)``; adds every sub-layer's parameter gradients."""
        if not self._complete:
            raise BackwardBeforeForwardError(
                "TransformerEncoderLayer.backward: no forward ran to its end since the layer was made or a "
                "forward failed part-way (the sub-layers would hold the caches of two passes); run a forward "
                "that succeeds first")
        try:
            dx = self._backward(grad_output)
        except MinidlError as error:
            _name_in_message(error, "TransformerEncoderLayer")
            raise
        return (dx, None) if self._padded else dx

    def _attention_back(self, g: np.ndarray) -> np.ndarray:
        d = self.self_attn.backward(g)
        return d[0] if self._padded else d  # (dx, None) after a pair (x, key_padding_mask)

    def _backward(self, grad_output: np.ndarray) -> np.ndarray:
        if self.norm_first:
            # y = h + ff(norm2(h)): h gets g directly and through the MLP branch
            dh = grad_output + self.norm2.backward(self._feed_forward_back(self.dropout2.backward(grad_output)))
            # h = x + attn(norm1(x))
            return dh + self.norm1.backward(self._attention_back(self.dropout1.backward(dh)))
        ds = self.norm2.backward(grad_output)  # s = h + ff(h), y = norm2(s)
        dh = ds + self._feed_forward_back(self.dropout2.backward(ds))
        dr = self.norm1.backward(dh)  # r = x + attn(x), h = norm1(r)
        return dr + self._attention_back(self.dropout1.backward(dr))

    def _failed_part_way(self) -> bool:
        """For a container holding this block (``Sequential``, ``Residual``): whether its last forward
        raised after a sub-layer had replaced its cache."""
        return not self._complete

    def input_shape_hint(self) -> tuple[int, ...]:
        return self.self_attn.input_shape_hint()

    def extra_repr(self) -> str:
        return (f"d_model={self.self_attn.embed_dim}, nhead={self.self_attn.num_heads}, "
                f"dim_feedforward={self.linear1.out_features}, dropout={self.dropout.p}, "
                f"activation={self.activation_name!r}, norm_first={self.norm_first}")
