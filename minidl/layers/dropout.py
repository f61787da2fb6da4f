"""Inverted dropout, of elements (``Dropout``) or of whole channels (``Dropout1d``, ``Dropout2d``), and the
self-normalising alpha dropout (``AlphaDropout``, ``FeatureAlphaDropout``), drawing their masks from a seeded
generator the checker can replay."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..init import RNGLike, as_generator
from ..layer import Layer
from ..validation import as_float_array, check_grad_output, is_number, native

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d", "FeatureAlphaDropout"]


def drop_probability(p: object, who: str, name: str = "p") -> float:
    """``p`` as a float in [0, 1] (a bool is not a probability), or the error naming ``who`` and the
    argument ``name``: what every layer that drops (``Dropout``, ``MultiHeadAttention``) checks."""
    if not is_number(p):
        raise TypeError(f"{who}: {name} (the drop probability) must be a number, got {p!r}")
    value = float(p)  # type: ignore[arg-type]
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{who}: {name} (the drop probability) must be in [0, 1], got {p!r}")
    return value


class Dropout(Layer):
    """Zero each element with probability ``p`` during training and scale the rest by ``1 / (1 - p)``.

    Shapes: x: any shape -> y: same shape.  As PyTorch's ``nn.Dropout``, ``p`` is the probability
    of *dropping*; the scaling ("inverted" dropout) keeps ``E[y] = x``, so evaluation needs no
    rescaling and ``eval()`` makes the layer the identity.  ``p = 1`` drops everything (y = 0).

    Training forward draws ``u ~ U[0, 1)`` per element from ``self.rng`` (a registered generator:
    the gradient checker saves and restores its state, so every re-run draws the same mask) and
    keeps the mask ``m = (u >= p) / (1 - p)``; ``y = x * m`` and backward is ``dx = g * m``.  ``u`` is
    drawn in the input's dtype for float32/float64 and in float32 for float16 (which NumPy's
    generators cannot draw), so float16 inputs work too.

    NaN/inf in the input are not refused (a pass over the data per step would be needed); they
    propagate as NumPy computes them: a kept NaN stays NaN, a dropped one becomes ``NaN * 0 = NaN``.

    Args:
        p: the drop probability, in [0, 1] (checked when set, after construction too).
        rng: a ``numpy.random.Generator`` or int seed (``None``: fresh entropy, not reproducible).
    """

    single_input = True  # (a Stack hands it the sequence alone)

    elementwise = True
    #: whether the last forward drew a mask (training with p > 0): its backward then needs ``_mask``, which a
    #: ``fit`` that returned has let go of (a class default: layers pickled before it was kept read False)
    _drew: bool = False

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        self.p = p
        self.rng = as_generator(rng, type(self).__name__)
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None  # the last forward's output dtype
        self._mask: np.ndarray | None = None

    @property
    def p(self) -> float:
        """The drop probability, in [0, 1]; checked when set, after construction too."""
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        self._p = drop_probability(value, type(self).__name__)

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        """The shape of the mask drawn for ``x``, which broadcasts against it: one draw per element."""
        return x.shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape -> same shape (the identity in eval mode or with p = 0)."""
        x = as_float_array(x, f"{type(self).__name__}(p={self.p})")
        shape = self._mask_shape(x)  # (may refuse x: before anything is kept)
        x = native(x)  # (e.g. read from a file: computed, and returned, in native order)
        self._shape = x.shape
        if x.dtype is not self._dtype:  # rarely true: spares Layer.__setattr__ on the hot path
            self._dtype = x.dtype
        drew = self.training and self.p != 0.0
        if drew is not self._drew:  # (as rarely)
            self._drew = drew
        if not drew:
            self._mask = None
            return x
        if self.p == 1.0:
            self._mask = np.zeros(shape, dtype=x.dtype)
            return x * self._mask
        draw = x.dtype if x.dtype in (np.float32, np.float64) else np.float32  # no float16 draws
        return self._dropped(x, self.rng.random(shape, dtype=draw) >= self.p)

    def _dropped(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The training output for the kept elements ``keep`` (a bool mask that broadcasts against
        ``x``), the mask the backward multiplies by kept in ``self._mask``."""
        scale = 1.0 / (1.0 - self.p)
        if x.dtype.itemsize > 2 or scale < 65520.0:  # float16 rounds below 65520 to its largest, 65504
            mask = np.multiply(keep, scale, dtype=x.dtype)
        else:  # float16 and p >= 1 - 1/65520: the scale is inf, a dropped element still 0 (not 0*inf)
            mask = np.where(keep, x.dtype.type(np.inf), x.dtype.type(0))
        self._mask = mask
        return x * mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx = grad_output * mask (or grad_output itself in eval mode)."""
        shape, mask = self._shape, self._mask
        self._require_cache(shape)
        if mask is None and self._drew:  # (a fit that returned let go of the mask: not the identity)
            self._require_cache(mask)
        assert shape is not None
        check_grad_output(grad_output, f"{type(self).__name__}(p={self.p}).backward", shape, self._dtype)
        return grad_output if mask is None else grad_output * mask

    @property
    def mask(self) -> np.ndarray | None:
        """The last training forward's scaled mask ``(u >= p) / (1 - p)`` (x's shape; ``(N, C, 1, ...)`` for a
        channel dropout), or None (eval mode / p = 0)."""
        return self._mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AlphaDropout(Dropout):
    """Dropout that keeps a self-normalising network's mean 0 and variance 1, as PyTorch's
    ``nn.AlphaDropout``: for use with :class:`~minidl.SELU` (Klambauer et al., 2017).

    A dropped element is set to SELU's negative saturation ``-alpha' = -1.7580993408473766`` instead of
    0, and every element is then moved by ``y = a * x' + b`` so that an input of mean 0 and variance 1
    keeps them::

        a = 1 / sqrt((alpha'^2 p + 1) (1 - p))
        y = a x + alpha' a p            where kept
        y = alpha' a (p - 1)            where dropped
        dx = g * a                      where kept, 0 where dropped

    Shapes: x: any shape -> same shape.  The identity in eval mode and with ``p = 0``; ``p = 1`` gives
    zeros, as PyTorch.  Masks are drawn as :class:`Dropout`'s (a registered generator the checker
    replays); :attr:`mask` is the backward's multiplier, ``a`` where kept and 0 where dropped.

    Difference from PyTorch: the dropped value ``alpha' a (p - 1)`` is computed in float64 and rounded
    once to the input's dtype; PyTorch adds ``-alpha' a`` and ``alpha' a p``, each rounded to the dtype
    first, whose difference cancels as ``p`` nears 1 (in float32: 1 ulp apart at p = 0.3, 6 at 0.9, 766
    at 0.999, where PyTorch gives -0.027496338 for the correctly rounded -0.027497765, 5e-5 relatively).
    Kept values and the gradient are PyTorch's to the bit (float32 and float64).
    """

    #: SELU's alpha times its scale: -SELU(x) as x -> -inf
    _ALPHA = 1.7580993408473766

    @property
    def mask(self) -> np.ndarray | None:
        """The last training forward's multiplier, the backward's: ``a`` where kept, 0 where dropped (x's
        shape; ``(N, C, 1, ...)`` for :class:`FeatureAlphaDropout`, one per channel), or None (eval mode /
        p = 0)."""
        return self._mask

    def _dropped(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        p, alpha = self.p, self._ALPHA
        a = 1.0 / np.sqrt((alpha * alpha * p + 1.0) * (1.0 - p))
        self._mask = np.multiply(keep, a, dtype=x.dtype)
        y = x * self._mask
        y += np.where(keep, x.dtype.type(alpha * a * p), x.dtype.type(alpha * a * (p - 1.0)))
        return y


class FeatureAlphaDropout(AlphaDropout):
    """:class:`AlphaDropout` of whole channels, as PyTorch's ``nn.FeatureAlphaDropout``: x: (N, C, *) -> same
    shape, at least 2-D.

    One ``u ~ U[0, 1)`` per (sample, channel) decides for all its positions: a dropped channel becomes
    SELU's negative saturation, moved as :class:`AlphaDropout` moves it, ``alpha' a (p - 1)`` everywhere;
    a kept one ``a x + alpha' a p``; ``dx = a g`` where kept, 0 where dropped.  :attr:`mask` has shape
    (N, C, 1, ...).  A 2-D input (N, C) is dropped element by element, as by ``AlphaDropout``.  The dropped
    value is rounded once, as :class:`AlphaDropout` says (PyTorch's is not).

    Difference from PyTorch: an input of fewer than 2 dimensions is refused (``ShapeError``) in every mode
    and for every ``p``, empty or not.  PyTorch refuses it only where it would draw (training, ``0 < p <
    1``, a non-empty input): it returns it unchanged in eval mode or with ``p = 0``, zeros with ``p = 1``,
    and an empty input of any shape unchecked.  An unbatched (C, *) input is read as (N, C, *) by both.
    """

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        if x.ndim < 2:
            raise ShapeError(f"{type(self).__name__}(p={self.p}): expected an input of shape (N, C, ...), at "
                             f"least 2-D, got shape {x.shape}")
        return (*x.shape[:2], *(1,) * (x.ndim - 2))


class _ChannelDropout(Dropout):
    """Dropout of whole channels: one draw per (sample, channel), shared by all its positions."""

    #: the input's rank, and its layout for error messages
    ndim: int
    layout: str

    def _mask_shape(self, x: np.ndarray) -> tuple[int, ...]:
        if x.ndim != self.ndim:
            raise ShapeError(f"{type(self).__name__}(p={self.p}): expected a {self.ndim}-D input of shape "
                             f"{self.layout}, got shape {x.shape}")
        return (*x.shape[:2], *(1,) * (self.ndim - 2))


class Dropout1d(_ChannelDropout):
    """Zero whole channels of a sequence batch with probability ``p`` during training and scale the rest by
    ``1 / (1 - p)``, as PyTorch's ``nn.Dropout1d``: x: (N, C, L) -> same shape.

    One ``u ~ U[0, 1)`` per (sample, channel); mask ``m = (u >= p) / (1 - p)`` of shape (N, C, 1),
    ``y = x * m``, ``dx = g * m``.  Neighbouring positions of a channel are strongly correlated, so
    dropping single elements hardly regularises a convolution; dropping channels does.  Everything else
    is :class:`Dropout`'s: the identity in eval mode, a registered generator the checker replays.
    """

    ndim, layout = 3, "(N, C, L)"


class Dropout2d(_ChannelDropout):
    """Zero whole feature maps with probability ``p`` during training and scale the rest by ``1 / (1 - p)``,
    as PyTorch's ``nn.Dropout2d``: x: (N, C, H, W) -> same shape.

    One ``u ~ U[0, 1)`` per (sample, channel); mask ``m = (u >= p) / (1 - p)`` of shape (N, C, 1, 1),
    ``y = x * m``, ``dx = g * m``.  Everything else is :class:`Dropout`'s.
    """

    ndim, layout = 4, "(N, C, H, W)"
