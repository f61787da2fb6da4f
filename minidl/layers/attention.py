"""``MultiHeadAttention``: scaled dot-product self-attention over ``num_heads`` heads, back-pass by hand.

``x: (N, T, E)`` -> ``(N, T, E)``; queries, keys and values all come from ``x`` (optionally with a key
padding mask: ``(x, mask)``, the masked scores ``-inf`` like the causal ones), or, given ``(x, memory)``,
the keys and values from the memory (cross-attention; below, then, ``K, V`` read the memory's rows).
With ``H`` heads of ``d = E / H`` features (``s = 1/sqrt(d)``; ``X``: the input as ``(N*T, E)`` rows)::

    forward:   [Q, K, V] = X @ W_qkv[1:] + W_qkv[0]             one product, (N*T, 3E), split per head
               S = s Q_h K_h^T   (+ -inf above the diagonal when causal)              (N, H, T, T)
               P = softmax(S) along the last axis,   O_h = P V_h                       (N, H, T, d)
               y = [O_1 .. O_H] @ W_o[1:] + W_o[0]                                     (N*T, E)
    backward:  dW_o[1:] += [O]^T g,  dW_o[0] += sum(g),  dO = g @ W_o[1:]^T
               dV = P^T dO,   dP = dO V^T,   dS = P * (dP - rowsum(dO * O))
               dQ = s dS K,   dK = s dS^T Q   (as s Q is cached: dK = dS^T (s Q))
               dW_qkv[1:] += X^T [dQ, dK, dV],  dW_qkv[0] += sum([dQ, dK, dV]),  dx = [dQ, dK, dV] @ W_qkv[1:]^T

Every per-head, per-sample product is one batched ``np.matmul`` over ``(N, H, T, ...)`` arrays.
The parameters follow PyTorch's ``nn.MultiheadAttention`` by a transpose: ``in_proj_weight =
W_qkv[1:].T``, ``in_proj_bias = W_qkv[0]``, ``out_proj.weight = W_o[1:].T``, ``out_proj.bias = W_o[0]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import BackwardBeforeForwardError, DTypeError, ShapeError
from ..init import RNGLike, as_generator, float_dtype, given_weights, initial_weights, positive_int, switch
from ..inputs import is_several
from ..layer import Layer
from ..parameter import Parameter, bias_rows_again
from ..validation import as_array, check_finite, check_grad_output, check_input, check_padding_mask
from ._products import add_product
from ._sequences import HINT_STEPS
from .dropout import drop_probability

__all__ = ["MultiHeadAttention"]

_INITS = ("uniform", "glorot", "he", "lecun", "zeros")


_HALF = ("{who}: float16 is not supported: its scores overflow above 65504 and the softmax turns them into "
         "NaN (PyTorch computes them in float32); use float32")


def _future(T: int) -> np.ndarray:
    """(T, T) booleans, True where key position s > query position t: what a causal query may not see.
    Made per call (T*T bytes, against N*H*T*T scores) rather than cached: varying lengths would pile up."""
    positions = np.arange(T)
    return positions[None, :] > positions[:, None]


def _softmax_in_place(p: np.ndarray, may_see_none: bool) -> None:
    """``p`` (..., S) scores -> their softmax along the last axis, in place, a masked (``-inf``) score's weight
    exactly 0.  ``may_see_none``: whether a query may see no key at all (every score ``-inf``): its weights are
    then all 0 (a plain softmax would divide 0 by 0)."""
    if not may_see_none:
        p -= p.max(axis=-1, keepdims=True)  # the diagonal is never masked: the max is finite
        np.exp(p, out=p)
        p /= p.sum(axis=-1, keepdims=True)
        return
    row_max = p.max(axis=-1, keepdims=True)
    blind = row_max == -np.inf  # queries that see no key at all: their weights are all 0
    row_max[blind] = 0.0
    p -= row_max
    np.exp(p, out=p)
    total = p.sum(axis=-1, keepdims=True)
    total[blind] = 1.0
    p /= total


class MultiHeadAttention(Layer):
    """Multi-head self-attention, as PyTorch's ``nn.MultiheadAttention(E, H, batch_first=True)`` called
    as ``mha(x, x, x, need_weights=False, attn_mask=causal_mask)``.

    Shapes:
        x: (N, T, embed_dim) -> (N, T, embed_dim); any ``T >= 1``, which may change between batches.
        Or a tuple: ``(x, key_padding_mask)``, the mask (N, T) booleans, True at a padding position that
        no query attends to (PyTorch's ``key_padding_mask``); ``(x, memory)``, cross-attention with the
        keys and values from ``memory: (N, S, embed_dim)``; ``(x, memory, key_padding_mask)``, the mask
        (N, S).  ``backward`` then returns one gradient per input: ``(dx, None)``, ``(dx, dmemory)``,
        ``(dx, dmemory, None)``.  A query that sees no key at all gets all-zero weights (its output is
        the output bias), as PyTorch's with ``need_weights=False`` in training.  PyTorch's ``attn_mask``
        is a setting of the layer, :attr:`attn_mask` (boolean or additive, (T, S) or (H, T, S)).
        W_qkv: (1 + E, 3E): row 0 the bias, column blocks q, k, v of ``E`` columns each, and within a
        block head ``h`` owns columns ``h*d .. (h+1)*d - 1``.  Without bias (E, 3E).
        W_o: (1 + E, E): row 0 the bias, row ``1 + h*d + j`` reads feature ``j`` of head ``h``.
        Without bias (E, E).

    Per head ``h`` (``d = E / num_heads`` features): ``P = softmax(q_h k_h^T / sqrt(d))`` along the
    keys, ``out_h = P v_h``; the heads are concatenated and projected by ``W_o``.  With
    ``causal=True`` query ``t`` sees only keys ``s <= t``: the masked scores are ``-inf`` before the
    softmax; the diagonal is never masked, so every row keeps a finite score, its maximum is finite,
    no ``-inf - (-inf)`` NaN can arise and a masked probability is exactly 0.  float16 is refused (its
    scores would overflow above 65504).

    Back-pass: see the module docstring.  The softmax's backward reuses the cached ``P`` and takes
    ``rowsum(dP * P)`` as ``rowsum(dO * O)`` (the same number, as ``O = P V``): a (T, d) product
    instead of a (T, T) one.  The forward caches the input rows, the per-head ``[s q, k, v]``, ``P``
    and the concatenated heads: about ``N*T*(5E + H*T)`` numbers (and the dropout's mask and ``P * mask``,
    ``2*N*H*T*T`` more, in training with ``dropout > 0``: the backward reuses both).

    Args:
        embed_dim: ``E``, the features per position, in and out.
        num_heads: ``H``; must divide ``embed_dim``.
        causal: mask the future (a decoder's self-attention).
        bias: give both projections a bias row (PyTorch's ``bias=``).
        dropout: in training, drop each attention weight (an entry of ``P``) with this probability and
            scale the rest by ``1 / (1 - dropout)`` (PyTorch's ``dropout=``): ``O = (P * M) V``, and the
            backward multiplies ``dP`` by the same mask ``M``.  Its generator, ``rng`` (registered, so the
            checker replays it, registered whatever ``dropout``), is seeded from ``rng`` after the weights.
        W_qkv, W_o: exact initial values (any arrays of the shapes above), instead of a random draw.
        init: ``"uniform"`` (the default: PyTorch's ``nn.MultiheadAttention``: W_qkv's weights
            Glorot-uniform U(+-sqrt(6 / (E + 3E))), as PyTorch's ``xavier_uniform_`` on its (3E, E)
            ``in_proj_weight``; W_o's weights U(+-1/sqrt(E)), ``nn.Linear``'s default), ``"glorot"``
            (both Glorot-uniform by their own shapes), ``"he"`` (both N(0, 2/E)), ``"lecun"`` (both N(0, 1/E))
            or ``"zeros"``.  The
            bias rows start at zero in every scheme, as PyTorch zeroes both biases.
        rng: a ``numpy.random.Generator`` or int seed; W_qkv is drawn first, then W_o.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        causal: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        W_qkv: ArrayLike | None = None,
        W_o: ArrayLike | None = None,
        init: str = "uniform",
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        name = "MultiHeadAttention"
        E = self.embed_dim = positive_int(embed_dim, "embed_dim", name)
        H = self.num_heads = positive_int(num_heads, "num_heads", name)
        if E % H:
            raise ValueError(f"{name}: embed_dim ({E}) must be divisible by num_heads ({H}): every head takes "
                             f"embed_dim / num_heads features")
        self.head_dim = E // H
        self._causal = switch(causal, "causal", name)
        self.bias = switch(bias, "bias", name)
        p = drop_probability(dropout, name, "dropout")  # (every argument checked before anything is drawn)
        if not isinstance(init, str) or init not in _INITS:
            raise ValueError(f"{name}: unknown init scheme {init!r}; use one of {', '.join(map(repr, _INITS))}")
        kind = float_dtype(dtype, name)
        self._who = f"{name}({E}, num_heads={H})"
        if kind.itemsize < 4:
            raise DTypeError(_HALF.format(who=self._who))
        self._who_backward = f"{self._who}.backward"
        self._layout = f"(N, T, {E})"
        self._sizes = {2: E}
        # a Python float: multiplying a float32 array by it keeps float32 (a np.float64 would not)
        self._scale = 1.0 / math.sqrt(self.head_dim)
        rows = E + 1 if self.bias else E
        generator: list[np.random.Generator] = []  # made on the first draw: none if both are given

        def initial(what: str, given: ArrayLike | None, columns: int, layout: str, scheme: str,
                    fan_out: int) -> np.ndarray:
            shape = (rows, columns)
            if given is not None:
                return given_weights(self._who, what, given, shape, f" = {layout}", kind)
            if not generator:
                generator.append(as_generator(rng))
            values = np.zeros(shape, dtype=kind)
            values[rows - E:] = initial_weights(scheme, (E, columns), E, fan_out, generator[0], kind)
            return values

        bias_note = "1 + embed_dim" if self.bias else "embed_dim"
        row0 = "row 0 the bias; " if self.bias else ""
        qkv_scheme, o_scheme = ("glorot", "uniform") if init == "uniform" else (init, init)
        self.W_qkv = Parameter(initial(
            "W_qkv", W_qkv, 3 * E, f"({bias_note}, 3*embed_dim) ({row0}column blocks q, k, v)", qkv_scheme, 3 * E))
        self.W_o = Parameter(initial(
            "W_o", W_o, E, f"({bias_note}, embed_dim)" + (" (row 0 the bias)" if self.bias else ""), o_scheme, E))
        if self.bias:  # (for an optimizer's decay_bias=False)
            self.W_qkv.bias_rows = self.W_o.bias_rows = slice(0, 1)
        # (input rows (N*T, E), the memory's rows (N*S, E) or None, s q (N, H, T, d), k and v (N, H, S, d),
        # P (N, H, T, S), concatenated heads (N*T, E), the attention dropout's scaled mask (N, H, T, S) or
        # None, and P * mask (P itself without dropout); S = T without a memory)
        self._cache: tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                           np.ndarray, np.ndarray | None, np.ndarray] | None = None
        self._inputs = 1  # how many inputs the cached pass was given: x, (x, mask), (x, memory[, mask])
        self._dropout = p
        # The dropout's own generator, registered whatever p (so that the saved keys do not depend on it and
        # dropout can be set later): seeded after the weights, so neither they nor what is drawn after the
        # layer depend on p.  The checker replays it; state_dict(generators=True) saves it.
        source = generator[0] if generator else as_generator(rng)
        self.rng = np.random.default_rng(int(source.integers(2**63)))
        # the attention mask (attn_mask): a buffer, so astype casts it and the checker restores it, not
        # persistent (a setting of the code that builds the model, not a state to save)
        self.register_buffer("_attn_mask", None, persistent=False)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled before ``bias_rows`` (set again: row 0 of
        ``W_qkv`` and ``W_o`` with ``bias=True``)."""
        super().__setstate__(state)
        rows = slice(0, 1) if self.__dict__.get("bias") else None
        bias_rows_again(self.__dict__.get("W_qkv"), rows)
        bias_rows_again(self.__dict__.get("W_o"), rows)

    @property
    def dropout(self) -> float:
        """The probability of dropping an attention weight in training (settable, checked: in [0, 1])."""
        return self._dropout

    @dropout.setter
    def dropout(self, p: float) -> None:
        self._dropout = drop_probability(p, "MultiHeadAttention", "dropout")

    @property
    def attn_mask(self) -> np.ndarray | None:
        """A mask over the scores, applied to every batch (settable, checked; None: none), as PyTorch's
        ``attn_mask``: booleans (T, S) or (num_heads, T, S), True where query ``t`` may *not* attend to
        key ``s``; or floats of those shapes, added to the scaled scores before the softmax (``-inf``
        blocks, a finite value biases: a relative-position or ALiBi bias).  Combined with ``causal`` and
        a key-padding mask.  A copy is kept, read-only, floats in the layer's dtype; it is not a
        parameter (no gradient) and not saved with the state."""
        given = self._attn_mask
        if given is not None and given.flags.writeable:  # (a deep copy's or a loaded copy's): read-only again
            given.flags.writeable = False
        return given

    @attn_mask.setter
    def attn_mask(self, value: Any) -> None:
        if value is None:
            self._attn_mask = None
            return
        who = f"{self._who}.attn_mask"
        mask = as_array(value, who, "attn_mask")
        H = self.num_heads
        if mask.ndim not in (2, 3) or (mask.ndim == 3 and mask.shape[0] != H) or 0 in mask.shape:
            raise ShapeError(f"{who}: expected a mask of shape (T, S) or ({H}, T, S), one per head, got shape "
                             f"{mask.shape} (a per-sample mask (N, T, S) is not supported; a key-padding mask "
                             f"(N, S) is an input: layer((x, key_padding_mask)))")
        if mask.dtype == np.bool_:
            kept = np.array(mask, dtype=np.bool_)
        elif mask.dtype.kind == "f":
            with np.errstate(over="ignore"):  # (-1e300 for a float32 layer: -inf, blocked; +inf refused below)
                kept = np.array(mask, dtype=self.W_qkv.data.dtype)
            if np.isnan(kept).any() or (kept == np.inf).any():
                raise ValueError(f"{who}: a float mask is added to the scores: finite values or -inf (blocked), "
                                 f"got NaN or +inf (or a value beyond the layer's dtype)")
        else:
            raise DTypeError(f"{who}: expected booleans (True: not attended) or floats (added to the scores), got "
                             f"dtype {mask.dtype}; libraries disagree on what an integer 1 means")
        kept.flags.writeable = False
        self._attn_mask = kept

    @property
    def causal(self) -> bool:
        """Whether a query sees only the keys up to its own position (settable, checked: a bool)."""
        return self._causal

    @causal.setter
    def causal(self, value: bool) -> None:
        self._causal = switch(value, "causal", "MultiHeadAttention")

    # ------------------------------------------------------------------ PyTorch's layout
    @classmethod
    def from_projections(
        cls,
        in_proj_weight: ArrayLike,
        out_proj_weight: ArrayLike,
        num_heads: int,
        in_proj_bias: ArrayLike | None = None,
        out_proj_bias: ArrayLike | None = None,
        *,
        causal: bool = False,
        dtype: DTypeLike | None = None,
    ) -> MultiHeadAttention:
        """A layer from PyTorch-shaped projections: ``in_proj_weight`` (3E, E), ``out_proj_weight`` (E, E)
        and, both or neither, ``in_proj_bias`` (3E,) and ``out_proj_bias`` (E,).

        E.g. ``MultiHeadAttention.from_projections(m.in_proj_weight.detach().numpy(),
        m.out_proj.weight.detach().numpy(), m.num_heads, m.in_proj_bias.detach().numpy(),
        m.out_proj.bias.detach().numpy())``.  ``dtype``: by default the floating dtype of
        ``in_proj_weight`` (float64 for integers).
        """
        who = "MultiHeadAttention.from_projections"
        w_in = _real(in_proj_weight, who, "in_proj_weight", dtype)
        kind = w_in.dtype
        if w_in.ndim != 2 or w_in.shape[0] != 3 * w_in.shape[1]:
            raise ShapeError(f"{who}: expected in_proj_weight of shape (3*E, E), got {w_in.shape}")
        E = w_in.shape[1]
        w_out = _real(out_proj_weight, who, "out_proj_weight", kind)
        if w_out.shape != (E, E):
            raise ShapeError(f"{who}: expected out_proj_weight of shape ({E}, {E}) (E = {E} from in_proj_weight), "
                             f"got {w_out.shape}")
        if (in_proj_bias is None) != (out_proj_bias is None):
            raise ValueError(f"{who}: give both in_proj_bias and out_proj_bias (bias=True) or neither (bias=False)")
        if in_proj_bias is None or out_proj_bias is None:
            return cls(E, num_heads, causal=causal, bias=False, W_qkv=w_in.T, W_o=w_out.T, dtype=kind)
        b_in = _real(in_proj_bias, who, "in_proj_bias", kind)
        b_out = _real(out_proj_bias, who, "out_proj_bias", kind)
        if b_in.shape != (3 * E,):
            raise ShapeError(f"{who}: expected in_proj_bias of shape ({3 * E},), got {b_in.shape}")
        if b_out.shape != (E,):
            raise ShapeError(f"{who}: expected out_proj_bias of shape ({E},), got {b_out.shape}")
        return cls(E, num_heads, causal=causal, bias=True, W_qkv=np.vstack([b_in[None], w_in.T]),
                   W_o=np.vstack([b_out[None], w_out.T]), dtype=kind)

    @property
    def in_proj_weight(self) -> np.ndarray:
        """PyTorch's ``in_proj_weight``, (3E, E): a (writable) view of ``W_qkv.data``'s weight rows, transposed."""
        return (self.W_qkv.data[1:] if self.bias else self.W_qkv.data).T

    @property
    def in_proj_bias(self) -> np.ndarray | None:
        """PyTorch's ``in_proj_bias``, (3E,): a view of ``W_qkv.data[0]``, or ``None`` without bias."""
        return self.W_qkv.data[0] if self.bias else None

    @property
    def out_proj_weight(self) -> np.ndarray:
        """PyTorch's ``out_proj.weight``, (E, E): a (writable) view of ``W_o.data``'s weight rows, transposed."""
        return (self.W_o.data[1:] if self.bias else self.W_o.data).T

    @property
    def out_proj_bias(self) -> np.ndarray | None:
        """PyTorch's ``out_proj.bias``, (E,): a view of ``W_o.data[0]``, or ``None`` without bias."""
        return self.W_o.data[0] if self.bias else None

    # ------------------------------------------------------------------ forward
    @property
    def attention_weights(self) -> np.ndarray:
        """The weights of the last forward, (N, num_heads, T, S): for each sample, head and query, the
        weights its output averaged the values with (PyTorch's ``need_weights=True,
        average_attn_weights=False``; ``.mean(axis=1)`` gives its default, the heads' mean).

        A row sums to 1 (a query that sees no key has all-zero weights); a masked key (the future with
        ``causal``, a padded position) has weight exactly 0.  In training with ``dropout > 0`` these
        are the weights after the dropout, as PyTorch's: dropped entries 0, the rest scaled by
        ``1 / (1 - dropout)``, so a row no longer sums to 1.  A read-only view of the backward cache:
        it changes with the next forward (after ``predict``, it is the last batch's).
        """
        if self._cache is None:
            raise BackwardBeforeForwardError(f"{self._who}.attention_weights: no forward has run yet (or a fit "
                                             "returned since: it lets go of its last batch's caches), so there are "
                                             "no weights to show; call the layer on an input first")
        weights = self._cache[-1].view()
        weights.flags.writeable = False
        return weights

    def forward(self, x: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
        """x: (N, T, embed_dim) -> (N, T, embed_dim), self-attention; or one of the tuples

        * ``(x, key_padding_mask)``: the mask (N, T) booleans, True at a padding position that no query
          attends to (PyTorch's ``key_padding_mask``);
        * ``(x, memory)``: cross-attention, queries from ``x``, keys and values from ``memory`` (N, S,
          embed_dim), any ``S >= 1`` (PyTorch's ``mha(x, memory, memory)``);
        * ``(x, memory, key_padding_mask)``: the mask (N, S), over the memory's positions.

        The maths, per head (``E = embed_dim``, ``H`` heads of ``d = E / H`` features, ``S = T`` without a
        memory): queries ``q`` (N, H, T, d) from ``x``, keys and values ``k, v`` (N, H, S, d) from the memory
        or ``x``; scores ``s q k^T`` (N, H, T, S), ``s = 1/sqrt(d)``, masked; ``P = softmax`` over the keys;
        the heads ``P v`` (N, H, T, d) side by side (N*T, E), then the output projection ``W_o``.
        """
        x, memory, padding = self._checked_inputs(x)
        N, T, E = x.shape
        rows, memory_rows, q, k, v = self._projections(x, memory)
        q *= self._scale  # on q (T*d numbers) rather than on the scores (T*S)
        p = q @ k.swapaxes(-1, -2)  # the scores s q k^T, (N, H, T, S)
        may_see_none = self._mask_scores(p, padding)  # + a float attn_mask; -inf where a key is hidden
        _softmax_in_place(p, may_see_none)  # P = softmax over the keys
        mask = self._dropout_mask(p)
        dropped = p if mask is None else p * mask  # the weights the values are averaged with
        heads = np.empty((N, T, self.num_heads, self.head_dim), dtype=p.dtype)  # per position, side by side
        np.matmul(dropped, v, out=heads.transpose(0, 2, 1, 3))  # P v, per head
        heads = heads.reshape(N * T, E)
        W_o = self.W_o.data
        out = heads @ W_o[1:] if self.bias else heads @ W_o
        if self.bias:
            out += W_o[0]
        self._cache = (rows, memory_rows, q, k, v, p, heads, mask, dropped)
        self._inputs = 1 + (memory is not None) + (padding is not None)
        return out.reshape(N, T, E)

    def _checked_inputs(self, x: Any) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """The forward's inputs, checked: ``(x, memory, key_padding_mask)``, the last two None when not given.
        ``x`` (N, T, E) and the memory (N, S, E) in the layer's dtype (converted if need be), at least one
        position each, finite; no memory with ``causal``; the mask (N, S) booleans (S = T without a memory)."""
        W_qkv = self.W_qkv.data
        E = self.embed_dim
        memory = padding = None
        if is_several(x):
            x, memory, padding = self._unpack(x)
        if type(x) is not np.ndarray or x.ndim != 3 or x.shape[2] != E or x.dtype is not W_qkv.dtype:
            x = check_input(x, self._who, ndim=3, layout=self._layout, sizes=self._sizes, dtype=W_qkv.dtype,
                            finite=False)
        N, T, _ = x.shape
        if T == 0:  # a softmax over no keys has no value
            raise ShapeError(f"{self._who}: expected at least one time step in an input of shape {self._layout}, "
                             f"got shape {x.shape}")
        S = T
        if memory is not None:
            memory = check_input(memory, self._who, what="memory", ndim=3, layout=f"(N, S, {E}) = ({N}, S, {E})",
                                 sizes={0: N, 2: E}, dtype=W_qkv.dtype, finite=False)
            S = memory.shape[1]
            if S == 0:
                raise ShapeError(f"{self._who}: expected at least one position in the memory, got shape "
                                 f"{memory.shape}")
            if self.causal:
                raise ValueError(f"{self._who}: causal=True masks each query's own future, which a memory "
                                 "(cross-attention) does not share; use a layer made with causal=False")
        if padding is not None:
            if memory is None:
                check_padding_mask(padding, N, S, self._who)
            else:
                check_padding_mask(padding, N, S, self._who, over="a memory", steps="S")
        check_finite(x, self._who)
        if memory is not None:
            check_finite(memory, self._who, "memory")
        if x.dtype.itemsize < 4:  # (after astype: the constructor refuses it already)
            raise DTypeError(_HALF.format(who=self._who))
        return x, memory, padding

    def _projections(
        self, x: np.ndarray, memory: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
        """``[q, k, v] = rows @ W_qkv[1:] + W_qkv[0]``, per head: ``(rows, memory_rows, q, k, v)``, ``rows`` x
        as (N*T, E), ``memory_rows`` the memory as (N*S, E) or None; q (N, H, T, d) from ``x``, k and v
        (N, H, S, d) from the memory, or from ``x`` (one product).  q, k, v are head-major copies: each (T, d)
        block a contiguous operand of the batched products (q written in place after)."""
        W_qkv = self.W_qkv.data
        N, T, E = x.shape
        H, d = self.num_heads, self.head_dim
        rows = x.reshape(N * T, E)
        if memory is None:
            projected = rows @ W_qkv[1:] if self.bias else rows @ W_qkv
            if self.bias:
                projected += W_qkv[0]
            q, k, v = projected.reshape(N, T, 3, H, d).transpose(2, 0, 3, 1, 4).copy()  # (3, N, H, T, d)
            return rows, None, q, k, v
        # the query columns read x, the key and value columns the memory
        S = memory.shape[1]
        memory_rows = memory.reshape(N * S, E)
        w = W_qkv[1:] if self.bias else W_qkv
        queries = rows @ w[:, :E]
        keys_values = memory_rows @ w[:, E:]
        if self.bias:
            queries += W_qkv[0, :E]
            keys_values += W_qkv[0, E:]
        q = queries.reshape(N, T, H, d).transpose(0, 2, 1, 3).copy()
        k, v = keys_values.reshape(N, S, 2, H, d).transpose(2, 0, 3, 1, 4).copy()
        return rows, memory_rows, q, k, v

    def _mask_scores(self, p: np.ndarray, padding: np.ndarray | None) -> bool:
        """The masks applied to the scores ``p`` (N, H, T, S), in place: a float :attr:`attn_mask` added, and
        ``-inf`` where a key is hidden (a padding position, True in a boolean :attr:`attn_mask`, the future
        with ``causal``).  Refuses an :attr:`attn_mask` that fits not (T, S), or (after a deep copy made it
        writeable) holds NaN or +inf.  Returns whether a query may see no key at all (some keys hidden other
        than by ``causal`` alone, whose diagonal every query sees)."""
        _, H, T, S = p.shape
        given = self._attn_mask
        blocked = None if padding is None else padding[:, None, None, :]  # (N, 1, 1, S): every head and query
        minus_inf = False  # whether a float mask blocks keys with -inf (then a query may see none)
        if given is not None:
            if given.shape[-2:] != (T, S):
                raise ShapeError(f"{self._who}: attn_mask has shape {given.shape}, but this input has T={T} "
                                 f"queries and S={S} keys: expected (T, S) = ({T}, {S}) or ({H}, {T}, {S})")
            if given.dtype == np.bool_:
                blocked = given if blocked is None else blocked | given
            else:
                infinite = ~np.isfinite(given)
                if infinite.any():
                    if not np.isneginf(given[infinite]).all():  # (written into a deep copy's writeable mask)
                        raise ValueError(f"{self._who}: attn_mask holds NaN or +inf; set it again: "
                                         f"layer.attn_mask = ...")
                    minus_inf = True
                p += given  # (N, H, T, S) + (T, S) or (H, T, S)
        may_see_none = blocked is not None or minus_inf
        if self.causal:
            blocked = _future(T) if blocked is None else blocked | _future(T)
        if blocked is not None:
            np.copyto(p, -np.inf, where=blocked)
        return may_see_none

    def _dropout_mask(self, p: np.ndarray) -> np.ndarray | None:
        """In training with ``dropout > 0``, the attention dropout's scaled mask, shaped as the weights ``p``:
        0 where a weight is dropped, ``1 / (1 - dropout)`` elsewhere (inverted dropout, as PyTorch's); else
        None."""
        rate = self._dropout
        if not (self.training and rate > 0):
            return None
        if rate < 1:
            return np.multiply(self.rng.random(p.shape, dtype=p.dtype) >= rate, 1.0 / (1.0 - rate), dtype=p.dtype)
        return np.zeros(p.shape, dtype=p.dtype)  # everything dropped: nothing to draw

    def dtype_problem(self, dtype: np.dtype) -> str | None:
        """float16 is refused by ``astype`` as by the constructor, and so is a dtype in which the float
        :attr:`attn_mask` would overflow to +inf."""
        if dtype.itemsize < 4:
            return _HALF.format(who=self._who)
        given = self._attn_mask
        if given is not None and given.dtype.kind == "f" and np.nanmax(given) > np.finfo(dtype).max:
            return f"{self._who}: attn_mask holds values beyond {dtype.name}'s range (they would be +inf)"
        return None

    def _unpack(self, x: tuple[Any, ...]) -> tuple[Any, Any, Any]:
        """``(x, memory, key_padding_mask)`` from a tuple of two or three inputs (a pair's second is the
        memory if it is a 3-D array, else the mask)."""
        if len(x) == 3:
            return x
        if len(x) == 2:
            second = x[1]
            if isinstance(second, np.ndarray) and second.ndim == 3:
                if second.dtype == np.bool_:  # PyTorch's (N*H or N, T, S) attn_mask: not a memory
                    raise DTypeError(f"{self._who}: the second input is a 3-D array of booleans {second.shape}: a "
                                     f"mask here is a key-padding mask (N, S); PyTorch's attn_mask is a setting of "
                                     f"the layer, layer.attn_mask = (T, S) or ({self.num_heads}, T, S), the same for "
                                     f"every sample (a 3-D float array here is a memory)")
                return x[0], second, None
            return x[0], None, second
        raise ShapeError(f"{self._who}: expected x, (x, key_padding_mask), (x, memory) or (x, memory, "
                         f"key_padding_mask), got a tuple of {len(x)}")

    # ------------------------------------------------------------------ backward
    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: (N, T, embed_dim) -> dx: (N, T, embed_dim), or a tuple with one gradient per input
        after a forward given a tuple: ``(dx, None)``, ``(dx, dmemory)`` or ``(dx, dmemory, None)``.  Adds
        into ``W_qkv.grad`` and ``W_o.grad`` (each unless frozen: ``requires_grad=False``)."""
        d_projected = self._gradients(grad_output, need_input=True)
        assert d_projected is not None
        w = self.W_qkv.data[1:] if self.bias else self.W_qkv.data
        if len(d_projected) == 1:
            dx = (d_projected[0] @ w.T).reshape(grad_output.shape)
            return (dx, None) if self._inputs == 2 else dx
        E = self.embed_dim
        d_queries, d_keys_values = d_projected
        dx = (d_queries @ w[:, :E].T).reshape(grad_output.shape)
        assert self._cache is not None
        N, _, S, _ = self._cache[3].shape  # k: (N, H, S, d)
        d_memory = (d_keys_values @ w[:, E:].T).reshape(N, S, E)
        return (dx, d_memory) if self._inputs == 2 else (dx, d_memory, None)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add the parameter gradients like :meth:`backward` but skip ``dx`` (an (N*T, 3E) @ (3E, E)
        product, about a third of the back-pass at T = E / 2): for a first layer, whose input is the
        data (or comes from frozen layers).  ``Sequential.backward_params`` calls it."""
        self._gradients(grad_output, need_input=False)

    def _gradients(self, grad_output: np.ndarray, need_input: bool) -> tuple[np.ndarray, ...] | None:
        """Check ``grad_output``, add the weight gradients and return the gradient of the input
        projection: ``[dQ, dK, dV]`` as (N*T, 3E) rows in a 1-tuple, or for cross-attention ``dQ``
        (N*T, E) and ``[dK, dV]`` (N*S, 2E); ``None`` when nothing needs it."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        rows, memory_rows, q, k, v, p, heads, mask, dropped = cache
        N, H, T, d = q.shape
        S = k.shape[2]
        E = self.embed_dim
        check_grad_output(grad_output, self._who_backward, (N, T, E), rows.dtype)
        train_qkv, train_o = self.W_qkv.requires_grad, self.W_o.requires_grad
        g = grad_output.reshape(N * T, E)
        if not (need_input or train_qkv):  # nothing upstream of the output projection is wanted
            if train_o:
                add_product(self.W_o, heads, g, self.bias)
            return None
        W_o = self.W_o.data
        d_heads = g @ (W_o[1:].T if self.bias else W_o.T)  # (N*T, E), heads side by side
        # rowsum(dP * P) = rowsum(dO * O) per query and head, as O = P V: (N, T, H) -> (N, H, T, 1)
        row_dot = np.einsum("nhd,nhd->nh", d_heads.reshape(N * T, H, d), heads.reshape(N * T, H, d))
        row_dot = row_dot.reshape(N, T, H).transpose(0, 2, 1)[..., None]
        d_out = d_heads.reshape(N, T, H, d).transpose(0, 2, 1, 3)  # (N, H, T, d), a view
        # dQ, dK, dV written straight into the layout of the projection's columns: (N, T, 3, H, d) for
        # self-attention, (N, T, H, d) and (N, S, 2, H, d) for cross-attention
        if memory_rows is None:
            d_projected = np.empty((N, T, 3, H, d), dtype=rows.dtype)
            dq, dk, dv = d_projected.transpose(2, 0, 3, 1, 4)
            parts: tuple[np.ndarray, ...] = (d_projected.reshape(N * T, 3 * E),)
        else:
            d_queries = np.empty((N, T, H, d), dtype=rows.dtype)
            d_keys_values = np.empty((N, S, 2, H, d), dtype=rows.dtype)
            dq = d_queries.transpose(0, 2, 1, 3)
            dk, dv = d_keys_values.transpose(2, 0, 3, 1, 4)
            parts = (d_queries.reshape(N * T, E), d_keys_values.reshape(N * S, 2 * E))
        np.matmul(dropped.swapaxes(-1, -2), d_out, out=dv)
        ds = d_out @ v.swapaxes(-1, -2)  # dP, made dS in place
        if mask is not None:  # through the dropout; rowsum(dP * P) is still rowsum(dO * O)
            ds *= mask
        ds -= row_dot
        ds *= p  # a masked entry has p = 0: no gradient leaks into the future
        np.matmul(ds, k, out=dq)
        dq *= self._scale
        np.matmul(ds.swapaxes(-1, -2), q, out=dk)  # q is cached already scaled
        # the gradients are added last, after everything that could fail: a refused or interrupted
        # back-pass leaves them as they were (a retry would otherwise count W_o twice)
        if train_o:
            add_product(self.W_o, heads, g, self.bias)
        if train_qkv:
            if memory_rows is None:
                add_product(self.W_qkv, rows, parts[0], self.bias)
            else:
                _add_cross_product(self.W_qkv, rows, parts[0], memory_rows, parts[1], self.bias)
        return parts

    # ------------------------------------------------------------------ the rest
    def input_shape_hint(self) -> tuple[int, ...]:
        """``(3, embed_dim)``: three positions (any length is valid; a small one, as the recurrent layers
        propose), or with an :attr:`attn_mask` its number of queries."""
        given = self._attn_mask
        return (HINT_STEPS if given is None else given.shape[-2], self.embed_dim)

    def _cast_buffer(self, name: str, buffer: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """The mask stays read-only; a value below the dtype's range becomes -inf, blocked, as the setter
        makes it (without NumPy's overflow warning; values above it are refused by dtype_problem)."""
        with np.errstate(over="ignore"):
            return super()._cast_buffer(name, buffer, dtype)

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
        """N(0, 1) ``x`` of ``shape``; with an :attr:`attn_mask` of shape (T, S), ``S != T``, which only a
        memory can fit, ``(x, memory)`` with a memory of ``S`` positions."""
        x = rng.standard_normal(shape)
        given = self._attn_mask
        if given is None or len(shape) != 3 or given.shape[-1] == given.shape[-2]:  # (a square mask: self-attention)
            return x
        return x, rng.standard_normal((shape[0], given.shape[-1], shape[2]))

    def extra_repr(self) -> str:
        parts = [f"{self.embed_dim}, num_heads={self.num_heads}"]
        if self.causal:
            parts.append("causal=True")
        if not self.bias:
            parts.append("bias=False")
        if self._dropout:
            parts.append(f"dropout={self._dropout}")
        if self._attn_mask is not None:
            parts.append(f"attn_mask={self._attn_mask.dtype.name}{self._attn_mask.shape}")
        return ", ".join(parts)


def _add_cross_product(param: Parameter, rows: np.ndarray, d_queries: np.ndarray, memory_rows: np.ndarray,
                       d_keys_values: np.ndarray, bias_row: bool) -> None:
    """``param.grad += [1, rows]^T dQ`` in the query columns and ``[1, memory_rows]^T [dK, dV]`` in the key
    and value columns (without the ``1`` for ``bias_row=False``): :func:`add_product` by column blocks."""
    E = d_queries.shape[1]
    grad = np.empty(param.data.shape, dtype=rows.dtype)
    weights = grad[1:] if bias_row else grad
    np.matmul(rows.T, d_queries, out=weights[:, :E])
    np.matmul(memory_rows.T, d_keys_values, out=weights[:, E:])
    if bias_row:
        np.add.reduce(d_queries, axis=0, out=grad[0, :E])
        np.add.reduce(d_keys_values, axis=0, out=grad[0, E:])
    target, overwrite = param.grad_target()
    if overwrite:
        np.copyto(target, grad)
    else:
        target += grad


def _real(value: ArrayLike, who: str, what: str, dtype: DTypeLike | None) -> np.ndarray:
    """``value`` as an array of real numbers in ``dtype`` (by default its own floating dtype, else float64)."""
    array = as_array(value, who, what)
    if array.dtype.kind not in "iuf":  # as W=...: no strings, no complex numbers losing a part
        raise DTypeError(f"{who}: {what} must hold real numbers, got dtype {array.dtype}")
    kind = dtype if dtype is not None else array.dtype if array.dtype.kind == "f" else np.float64
    return array.astype(float_dtype(kind, who), copy=False)
