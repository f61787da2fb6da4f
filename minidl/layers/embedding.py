"""``Embedding``: a lookup table of learned vectors, one row per index (a token id, a category)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import DTypeError, IndexRangeError, ShapeError
from ..init import RNGLike, absorbed_weights, as_generator, float_dtype, positive_int, switch, switch_setting
from ..layer import Layer
from ..parameter import Parameter
from ..validation import as_array, check_grad_output, checked_setting, is_integer, is_number

__all__ = ["Embedding"]


class Embedding(Layer):
    """``y = W[idx]``: row ``idx`` of the table ``W`` for every index, as PyTorch's ``nn.Embedding``.

    Shapes:
        idx: (N, ...) integer indices in ``[0, num_embeddings)`` -> y: (N, ..., embedding_dim)
        W: (num_embeddings, embedding_dim), drawn from N(0, 1) as PyTorch does.

    Back-pass: ``dW[idx[m]] += g[m]`` for every position ``m`` (a scatter-add: an index used twice
    gets both rows).  The indices are not differentiable: ``backward`` returns zeros of ``idx``'s
    shape in ``W``'s dtype, so that ``Sequential.backward`` and the ``dx.shape == x.shape`` contract
    hold (PyTorch's autograd gives no gradient at all); ``backward_params``, which ``fit`` calls,
    skips even that.  ``GradientChecker`` checks ``W`` and notes that the integer input is not checked.

    Indices must be an integer array (any integer dtype; lists of ints are converted): floats, even
    whole ones, and bools are refused (``DTypeError``), as minidl converts no dtype silently; an index
    outside ``[0, num_embeddings)``, negative ones included (PyTorch refuses them too), raises
    :class:`IndexRangeError` naming the first bad index, where it is and the valid range.

    Args:
        padding_idx: an index whose row is the padding vector: it starts at zero, gets no gradient
            and is never trained, as in PyTorch; negative values count from the end.  Positions
            holding it output zeros whatever the row holds, so the back-pass is the exact derivative
            (checkable by central differences); PyTorch outputs the row itself, which is the same as
            long as it is zero (the layer keeps it so: ``W=`` with a non-zero padding row is refused).
        max_norm: ``None`` only.  PyTorch renormalises the looked-up rows of ``W`` in place during the
            forward, a side effect that would change the model on every forward (``predict``, a gradient
            check's probes); any other value is refused with a ``ValueError`` giving the two lines that
            renormalise the rows after each optimizer step instead.  ``norm_type``: a number, ignored (it
            applies to ``max_norm`` alone, as in PyTorch).
        scale_grad_by_freq: as PyTorch's: each row's gradient from one backward is divided by how many
            times its index occurs in that forward's batch (``dW[i] = sum of g[m] over idx[m] == i, / count
            of i``).  A training heuristic, not the derivative of the cost: where an index repeats,
            ``GradientChecker`` reports it as wrong; check the model with it False.  May be set later
            (True or False, checked); a backward uses the setting of the forward it follows.
        sparse: ``False`` only: ``W.grad`` is a dense array (the scatter touches only the rows used);
            ``True`` is refused with a ``ValueError``.
        W: exact initial values, (num_embeddings, embedding_dim), instead of a random draw.
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    single_input = True  # (a Stack hands it the sequence alone)
    scale_grad_by_freq = checked_setting(
        "scale_grad_by_freq", switch_setting, "Whether a row's gradient is divided by how many times its index "
        "occurs in the batch (PyTorch's heuristic; not the derivative), True or False; checked when set.")
    _scale_grad_by_freq: bool = False  # (a layer pickled before the setting existed)
    _scaled: bool = False  # the setting when the last forward ran, which its backward uses

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        *,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        W: ArrayLike | None = None,
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        super().__init__()
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim", "Embedding")
        self._who = f"Embedding({self.num_embeddings}, {self.embedding_dim})"
        self._who_backward = f"{self._who}.backward"
        self.padding_idx = _padding_index(padding_idx, self.num_embeddings, self._who)
        _refuse_unsupported(self._who, max_norm, norm_type, sparse)
        self.scale_grad_by_freq = scale_grad_by_freq
        dtype = float_dtype(dtype, "Embedding")
        shape = (self.num_embeddings, self.embedding_dim)
        if W is not None:  # checked as Dense checks its W: real, finite, of the right shape
            values = absorbed_weights(self._who, self.num_embeddings, self.embedding_dim, bias=False, W=W,
                                      init="zeros", rng=None, dtype=dtype,
                                      layout=" (num_embeddings, embedding_dim)")
            if self.padding_idx is not None and values[self.padding_idx].any():
                raise ValueError(
                    f"{self._who}: W[{self.padding_idx}], the padding row (padding_idx={self.padding_idx}), must "
                    "be zero: padding positions output zeros and the row is never trained; zero it first "
                    f"(W[{self.padding_idx}] = 0), or pass no padding_idx")
        else:
            values = as_generator(rng).standard_normal(shape).astype(dtype)
            if self.padding_idx is not None:
                values[self.padding_idx] = 0
        self.W = Parameter(values)
        self._idx: np.ndarray | None = None  # the last forward's indices, as intp

    def forward(self, idx: np.ndarray) -> np.ndarray:
        """idx: (N, ...) integer indices -> (N, ..., embedding_dim), a new array."""
        if type(idx) is not np.ndarray or idx.dtype.kind not in "iu":
            idx = self._as_indices(idx)
        if idx.ndim == 0:
            raise ShapeError(f"{self._who}: expected indices of shape (N, ...) with a batch axis, got a 0-D array")
        n = self.num_embeddings
        if idx.dtype != np.intp:  # int32, uint8, byte-swapped...: the range first, then one cast
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise self._out_of_range(idx)
            idx = idx.astype(np.intp)
        elif idx.size and idx.view(np.uintp).max() >= n:  # one pass: negatives wrap to huge unsigned values
            raise self._out_of_range(idx)
        W = self.W.data
        out = np.take(W, idx, axis=0)
        pad = self.padding_idx
        if pad is not None and W[pad].any():  # (a zero row, as always in training, gives zeros already)
            out[idx == pad] = 0
        self._idx = idx
        self._scaled = self._scale_grad_by_freq
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: (N, ..., embedding_dim) -> zeros of the indices' shape (they have no gradient);
        adds into ``W.grad`` (unless ``W`` is frozen)."""
        self.backward_params(grad_output)
        assert self._idx is not None
        return np.zeros(self._idx.shape, dtype=grad_output.dtype)

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add ``dCost/dW`` into ``W.grad`` like :meth:`backward`, without making the zeros it returns."""
        idx = self._idx
        self._require_cache(idx)
        assert idx is not None
        dim = self.embedding_dim
        check_grad_output(grad_output, self._who_backward, (*idx.shape, dim), self.W.data.dtype)
        if not self.W.requires_grad:  # frozen: no gradient, as PyTorch computes none
            return
        dW, overwrite = self.W.grad_target()
        pad = self.padding_idx
        kept = None if overwrite or pad is None else dW[pad].copy()
        try:
            if overwrite:  # the gradient is zero but the array holds old values
                dW.fill(0)
            rows, g = idx.reshape(-1), grad_output.reshape(-1, dim)
            if self._scaled and rows.size:  # as PyTorch: each position's row times 1 / (its index's count)
                counts = np.bincount(rows, minlength=self.num_embeddings)
                g = g * (1.0 / counts[rows]).astype(g.dtype)[:, None]
            _scatter_add(dW, rows, g)
        except BaseException:
            if overwrite:  # interrupted mid-write: the gradient is still zero, say so again
                self.W.zero_grad()
            raise
        if pad is not None:  # the padding row gets no gradient (its positions output constant zeros)
            dW[pad] = 0 if kept is None else kept

    def random_inputs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Random valid indices of ``shape`` (batch axis first, int64) for ``GradientChecker`` and
        ``summary``, which would otherwise draw N(0, 1) floats: uniform in ``[0, num_embeddings)``, with
        the first index repeated at the end and the padding index before it (given 2 and 3 positions),
        so that a check exercises the adding of repeated rows and the padding row."""
        idx = rng.integers(0, self.num_embeddings, size=shape)
        if idx.size >= 2:
            idx.flat[-1] = idx.flat[0]
        if self.padding_idx is not None and idx.size >= 3:
            idx.flat[-2] = self.padding_idx
        return idx

    def input_shape_hint(self) -> tuple[int, ...]:
        """Any shape will do; a guess: sequences of 3 indices, (N, 3)."""
        return (3,)

    def backward_caveat(self) -> str | None:
        if not self.scale_grad_by_freq:
            return None
        return ("scale_grad_by_freq=True divides each row's gradient by how many times its index occurs in the "
                "batch, by design (PyTorch's heuristic, not the derivative): where an index repeats, the check "
                "fails; check the model with scale_grad_by_freq=False")

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        freq = ", scale_grad_by_freq=True" if self.scale_grad_by_freq else ""
        return f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}{pad}{freq}"

    # ------------------------------------------------------------------ errors
    def _as_indices(self, idx: Any) -> np.ndarray:
        """``idx`` as an integer ndarray (a list of ints is converted), else ``DTypeError``."""
        idx = as_array(idx, self._who, "indices")
        if idx.dtype.kind == "b":
            raise DTypeError(f"{self._who}: expected integer indices, got dtype bool (booleans are not "
                             "indices; to pick rows by a mask, use np.flatnonzero(mask))")
        if idx.dtype.kind not in "iu":
            hint = " (a float array is refused even when its values are whole)" if idx.dtype.kind == "f" else ""
            raise DTypeError(f"{self._who}: expected integer indices, got dtype {idx.dtype}{hint}; cast them "
                             "first, e.g. idx.astype(np.int64)")
        return idx

    def _out_of_range(self, idx: np.ndarray) -> IndexRangeError:
        """The error for ``idx`` holding an index outside ``[0, num_embeddings)``."""
        n = self.num_embeddings
        bad = (idx < 0) | (idx >= n)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        value = int(idx[where])
        count = int(np.count_nonzero(bad))
        more = f" ({count} of the {idx.size} indices are out of range)" if count > 1 else ""
        negative = " (negative indices do not count from the end here, as in PyTorch)" if value < 0 else ""
        return IndexRangeError(f"{self._who}: index {value} at position {where} is out of range{negative}; "
                               f"valid indices are 0..{n - 1}{more}")


def _refuse_unsupported(who: str, max_norm: Any, norm_type: Any, sparse: Any) -> None:
    """Refuse PyTorch's ``max_norm`` (any but None), a ``norm_type`` that is not a number and ``sparse=True``,
    saying why and what to do instead."""
    if max_norm is not None:
        bound = max_norm if is_integer(max_norm) or isinstance(max_norm, (float, np.floating)) else "max_norm"
        raise ValueError(
            f"{who}: max_norm is not supported, got {max_norm!r}: PyTorch renormalises the looked-up rows of W in "
            "place during the forward, a side effect that would change the model on every forward (predict, "
            "evaluate, each probe of a gradient check, which would then compare two different models). Renormalise "
            "the rows after each optimizer step instead (emb: this layer; every row, not only the batch's):\n"
            "    norms = np.linalg.norm(emb.W.data, axis=1, keepdims=True)\n"
            f"    emb.W.data *= np.where(norms > {bound}, {bound} / (norms + 1e-7), 1.0)")
    if isinstance(norm_type, bool) or not is_number(norm_type):  # (used by max_norm alone: ignored, as PyTorch)
        raise ValueError(f"{who}: norm_type must be a number (the p of max_norm's p-norm), got {norm_type!r}")
    if switch(sparse, "sparse", who):
        raise ValueError(f"{who}: sparse gradients are not supported, got sparse={sparse!r}: W.grad is a dense "
                         "array, and the back-pass adds only into the rows the batch used; leave sparse out "
                         "(False)")


def _padding_index(padding_idx: Any, n: int, who: str) -> int | None:
    """``padding_idx`` in ``[0, n)`` (negative values count from the end, as PyTorch), or ``None``."""
    if padding_idx is None:
        return None
    if not is_integer(padding_idx):
        raise TypeError(f"{who}: padding_idx must be an int or None, got {padding_idx!r}")
    index = int(padding_idx)
    if not -n <= index < n:
        raise ValueError(f"{who}: padding_idx must be in [-{n}, {n - 1}] (num_embeddings={n}), got {index}")
    return index + n if index < 0 else index


def _scatter_add(dW: np.ndarray, rows: np.ndarray, g: np.ndarray) -> None:
    """``dW[rows[m]] += g[m]`` for every m, adding (not overwriting) the rows of repeated indices.

    ``np.add.at`` on the flattened table, at the flat positions ``rows * D + column``, was the fastest
    correct scatter measured (numpy 2.4, one thread, D = 64, vocabularies V of 1000 / 10000 / 50000,
    M = 640 to 20000 positions, float32 and float64, uniform and Zipf-distributed indices).  Float32,
    uniform, M = 20000, ms for V = 1000 / 10000 / 50000:

        flat np.add.at (this)          5.3 /  6.8 /  9.3
        np.add.at on the 2-D table    21   / 27   / 27
        argsort + np.add.reduceat      7.8 / 25   / 25
        np.bincount per column         7.9 / 12   / 34
        one np.bincount, flat          6.6 /  8.1 / 18
        one-hot matrix product        60 (V = 1000; 13 against 1.1 at M = 5000)

    At M = 640 it takes 0.15 ms against 0.55 ms or more for the others in float32.  Float64 and Zipf
    indices rank the same, except the flat ``np.bincount`` (which sums in float64), which ties with it
    in float64 where the positions outnumber the rows (V = 1000; V = 10000 at M = 20000: 7.1 against
    8.1 ms; within 15 %, about the noise of these runs) and is far slower elsewhere (5.8 against
    0.2 ms at V = 50000, M = 640): no size switch.  Zeroing the table first (after ``zero_grad``)
    adds up to 2.6 ms at V = 50000 in float64, whatever the scatter.
    """
    dim = dW.shape[1]
    if not dW.flags.c_contiguous:  # a gradient array the user rebound to a strided one: no flat view
        np.add.at(dW, rows, g)
        return
    flat = ((rows * dim)[:, None] + np.arange(dim)).reshape(-1)
    np.add.at(dW.reshape(-1), flat, g.reshape(-1))
