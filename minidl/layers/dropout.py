"""``Dropout``: inverted dropout, drawing its masks from a seeded generator the checker can replay."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..init import RNGLike, as_generator
from ..layer import Layer
from ..validation import as_float_array

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each element with probability ``p`` during training and scale the rest by ``1 / (1 - p)``.

    Shapes: x: any shape -> y: same shape.  As PyTorch's ``nn.Dropout``, ``p`` is the probability
    of *dropping*; the scaling ("inverted" dropout) keeps ``E[y] = x``, so evaluation needs no
    rescaling and ``eval()`` makes the layer the identity.  ``p = 1`` drops everything (y = 0).

    Training forward draws ``u ~ U[0, 1)`` per element from ``self.rng`` (a registered generator:
    the gradient checker saves and restores its state, so every re-run draws the same mask) and
    keeps the mask ``m = (u >= p) / (1 - p)``; ``y = x * m`` and backward is ``dx = g * m``.

    Args:
        p: the drop probability, in [0, 1].
        rng: a ``numpy.random.Generator`` or int seed (``None``: fresh entropy, not reproducible).
    """

    elementwise = True

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p (the drop probability) must be in [0, 1], got {p}")
        self.p = p
        self.rng = as_generator(rng)
        self._shape: tuple[int, ...] | None = None
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: any shape -> same shape (the identity in eval mode or with p = 0)."""
        x = as_float_array(x, f"Dropout(p={self.p})")
        self._shape = x.shape
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
            mask = np.multiply(keep, 1.0 / (1.0 - self.p), dtype=x.dtype)
        self._mask = mask
        return x * mask

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """grad_output: x's shape -> dx = grad_output * mask (or grad_output itself in eval mode)."""
        shape = self._shape
        self._require_cache(shape)
        if grad_output.shape != shape:
            raise ShapeError(
                f"Dropout(p={self.p}).backward: expected grad_output of shape {shape} (the forward's "
                f"input), got {grad_output.shape}"
            )
        return grad_output if self._mask is None else grad_output * self._mask

    @property
    def mask(self) -> np.ndarray | None:
        """The last training forward's scaled mask ``(u >= p) / (1 - p)``, or None (eval mode / p = 0)."""
        return self._mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
