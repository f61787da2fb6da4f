"""What the layers over sequences (recurrent, attention) share: the length they propose for a dummy input.
(The weight gradient of their projections, applied to every step at once, is in :mod:`._products`.)"""

from __future__ import annotations

__all__ = ["HINT_STEPS"]

#: The sequence length ``input_shape_hint`` proposes (the checker's and the summary's dummy input).
HINT_STEPS = 3
