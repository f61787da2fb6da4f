"""Recurrent layers ``RNN``, ``LSTM`` and ``GRU``: batch-first, back-propagation through time by hand.

Each layer maps ``x: (N, T, input_size)`` to the hidden states ``(N, T, hidden_size)`` (or the last
one, ``(N, hidden_size)``, with ``return_sequences=False``), starting from a zero state or from a
given one: ``(x, h_0)``, ``(x, h_0, c_0)`` for an LSTM, each state ``(N, hidden_size)``; a padding mask
``(N, T)`` of booleans may come last in the tuple (the state is carried over the padded steps, whose
outputs are 0, as PyTorch's packed sequences); ``backward`` then returns one gradient per input.  Gates are
in PyTorch's order (LSTM i, f, g, o; GRU r, z, n), so PyTorch weights convert by a transpose.

Computation (``G`` gates of ``H`` units; ``X``: the input with time-major rows, ``(T*N, I)``)::

    forward:   P = X @ W_x[1:] + W_x[0]              one product for all T steps, (T, N, G*H)
               for t: a_t = P_t + h_{t-1} @ W_h       the recurrence, one (N, H) @ (H, G*H) per step
    backward:  K = the gates' local derivatives       element-wise, for all T steps at once
               for t = T-1 .. 0: dA_t = K_t * dh_t,  dh_{t-1} = dA_t @ W_h^T
               dW_x[1:] += X^T dA,  dW_x[0] += sum(dA),  dW_h += H_prev^T dA,  dx = dA @ W_x[1:]^T

(GRU's recurrent product has a pre-activation gradient of its own, see :class:`GRU`.)  So the
per-step work is the recurrent product and a few element-wise products; the weight gradients and
``dx`` are one matrix product each over all steps.  Internally everything is time-major
(``(T, N, ...)``), so each step reads and writes contiguous blocks; the output and ``dx`` are
``(N, T, ...)``-shaped views of that memory (a recurrent layer after another reads it without a copy).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import DTypeError, ShapeError
from ..init import RNGLike, as_generator, float_dtype, given_weights, initial_weights, positive_int, switch
from ..inputs import is_several
from ..layer import Layer, features_layout_words
from ..parameter import Parameter, bias_rows_again
from ..special import _sigmoid
from ..validation import check_finite, check_grad_output, check_input, check_padding_mask, user_stacklevel
from ._products import add_product
from ._sequences import HINT_STEPS

__all__ = ["GRU", "LSTM", "RNN"]


def _step_masks(padded: np.ndarray | None) -> list[np.ndarray | None] | None:
    """Per step, the (N, 1) padding mask, or None where the step pads no sample (the loops skip it)."""
    if padded is None:
        return None
    flags = np.any(padded, axis=(1, 2)).reshape(-1)
    return [mask if flag else None for mask, flag in zip(padded, flags.tolist(), strict=True)]


class _Recurrent(Layer):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: parameters, input checks, the input projection and
    the weight gradients.  A subclass runs the recurrence (:meth:`_steps`) and its reverse
    (:meth:`_steps_back`)."""

    #: gates per unit (the column blocks of W_x and W_h) and their names, in PyTorch's order
    _gates: ClassVar[tuple[str, ...]]
    #: whether W_h has a bias row of its own (GRU's b_hn is not redundant; the others' b_hh is)
    _recurrent_bias: ClassVar[bool] = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *more: Any,
        bias: bool = True,
        return_sequences: bool = True,
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
        W_x: ArrayLike | None = None,
        W_h: ArrayLike | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if more:  # PyTorch's third positional argument is num_layers
            raise TypeError(f"{name}.__init__() takes input_size and hidden_size by position, the rest by keyword; "
                            f"got {2 + len(more)} positional arguments (PyTorch's num_layers: stack layers with "
                            f"md.Stack(...), which passes a padding mask on)")
        if unknown:  # named for the class the caller made, with PyTorch's arguments explained
            key = next(iter(unknown))
            hint = {"batch_first": ": minidl's recurrent layers always take batch-first input (N, T, features), "
                                   "so drop it (time-major data: x.transpose(1, 0, 2))",
                    "num_layers": ": stack layers with md.Stack(LSTM(...), LSTM(...)) (it passes a padding mask on)",
                    "bidirectional": ": wrap the layer, md.Bidirectional(...)",
                    "dropout": ": put md.Dropout layers between stacked recurrent layers",
                    "nonlinearity": ": only RNN takes one ('tanh' or 'relu'); LSTM's and GRU's gates are fixed",
                    }.get(key, "")
            raise TypeError(f"{name}.__init__() got an unexpected keyword argument {key!r}{hint}")
        self.input_size = positive_int(input_size, "input_size", name)
        self.hidden_size = positive_int(hidden_size, "hidden_size", name)
        self.bias = switch(bias, "bias", name)
        self.return_sequences = switch(return_sequences, "return_sequences", name)
        kind = float_dtype(dtype, name)
        H, G = self.hidden_size, len(self._gates)
        self._who = f"{name}({self.input_size} -> {H})"
        self._who_backward = f"{self._who}.backward"
        self._layout = f"(N, T, {self.input_size})"
        self._sizes = {2: self.input_size}
        x_shape = (self.input_size + 1 if self.bias else self.input_size, G * H)
        h_bias = self.bias and self._recurrent_bias
        h_shape = (H + 1 if h_bias else H, G * H)
        generator: list[np.random.Generator] = []  # made on the first draw: none if both are given

        def initial(what: str, given: ArrayLike | None, shape: tuple[int, int], rows: str,
                    bias_row: bool) -> np.ndarray:
            if given is not None:
                return given_weights(self._who, what, given, shape, f" = {self._layout_of(rows, bias_row)}", kind)
            if not generator:
                generator.append(as_generator(rng))
            # PyTorch's init: every entry, bias included, U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
            return initial_weights("uniform", shape, H, G * H, generator[0], kind)

        row0 = slice(0, 1)  # (bias_rows: the bias row 0)
        self.W_x = Parameter(initial("W_x", W_x, x_shape, "input_size", self.bias),
                             bias_rows=row0 if self.bias else None)
        self.W_h = Parameter(initial("W_h", W_h, h_shape, "hidden_size", h_bias), bias_rows=row0 if h_bias else None)
        # (time-major input (T*N, I), hidden states (T+1, N, H) from h_0, then the subclass's arrays)
        self._cache: tuple[np.ndarray, ...] | None = None
        self._stated = False  # whether the cached pass was given initial states (x, h_0[, c_0])
        self._padded: np.ndarray | None = None  # its padding mask, time-major (T, N, 1), if it was given one

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (and ``copy.deepcopy``): also a layer pickled before ``bias_rows`` (set again: row 0 of
        ``W_x``, and of ``W_h`` where it has a bias row, with ``bias=True``)."""
        super().__setstate__(state)
        bias = bool(self.__dict__.get("bias"))
        bias_rows_again(self.__dict__.get("W_x"), slice(0, 1) if bias else None)
        bias_rows_again(self.__dict__.get("W_h"), slice(0, 1) if bias and self._recurrent_bias else None)

    def state_layout(self) -> tuple[int, ...]:
        """``(input_size, bias)``: what the weights' shapes do not tell apart (``RNN(8, 3)``'s W_x and
        ``RNN(9, 3, bias=False)``'s are both (9, 3), their W_h (3, 3)); ``state_dict`` saves it,
        ``load_state_dict`` compares it."""
        return (self.input_size, int(self.bias))

    def layout_words(self, layout: tuple[int, ...]) -> str | None:
        """``(8, 1)``: ``"8 input features with biases"``."""
        return features_layout_words(layout, "biases")

    def _layout_of(self, rows: str, bias_row: bool) -> str:
        """A weight matrix's layout in words, e.g. ``(1 + input_size, 4*hidden_size) (row 0 the bias;
        column blocks i, f, g, o)``."""
        G = len(self._gates)
        notes = ["row 0 the bias"] if bias_row else []
        if G > 1:
            notes.append(f"column blocks {', '.join(self._gates)}")
        shape = f"({'1 + ' if bias_row else ''}{rows}, {f'{G}*' if G > 1 else ''}hidden_size)"
        return shape + (f" ({'; '.join(notes)})" if notes else "")

    # ------------------------------------------------------------------ forward
    def forward(self, x: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
        """x: (N, T, input_size) -> (N, T, hidden_size), or (N, hidden_size) (the last step's state)
        with ``return_sequences=False``.  The output is a read-only view of the backward cache.  With an
        initial state, the tuple ``(x, h_0)`` (``(x, h_0, c_0)`` for an LSTM), each state (N, hidden_size);
        with a padding mask (N, T) booleans, True at padding, as the tuple's last item: ``(x, mask)``,
        ``(x, h_0, mask)``, ...  At a padded step the state is carried over unchanged and the output is 0
        (as PyTorch's packed sequences), so the last state is each sequence's own."""
        Wx = self.W_x.data
        initial: tuple[np.ndarray, ...] = ()
        padding = None
        if is_several(x):
            x, initial, padding = self._unpack(x)
        if type(x) is not np.ndarray or x.ndim != 3 or x.shape[2] != self.input_size or x.dtype is not Wx.dtype:
            x = check_input(x, self._who, ndim=3, layout=self._layout, sizes=self._sizes, dtype=Wx.dtype,
                            finite=False)
        N, T, features = x.shape
        if T == 0:
            raise ShapeError(f"{self._who}: expected at least one time step in an input of shape {self._layout}, "
                             f"got shape {x.shape}")
        states = self._initial_states(initial, N, Wx.dtype)
        padded = None  # time-major (T, N, 1) booleans
        if padding is not None:
            check_padding_mask(padding, N, T, self._who, "padding mask", width=features)
            padded = np.array(padding.T, order="C")[:, :, None]  # our own copy: the caller may change theirs
        rows = x.transpose(1, 0, 2).reshape(T * N, features)  # time-major: a copy, or a view of time-major memory
        if not math.isfinite(np.vdot(rows, rows)):  # one BLAS pass; check_finite names the culprit in x
            check_finite(x, self._who)
        projected = rows @ Wx[1:] if self.bias else rows @ Wx  # every step's input projection at once
        if self.bias:
            projected += Wx[0]
        hs, *rest = self._steps(projected.reshape(T, N, projected.shape[1]), states, padded)
        self._cache = (rows, hs, *rest)
        self._stated = bool(states)
        self._padded = padded
        out = hs[1:].transpose(1, 0, 2) if self.return_sequences else hs[T]
        if padded is not None and self.return_sequences:  # 0 at the padding: a new array, not the cache
            return np.where(padded.transpose(1, 0, 2), 0, out).astype(out.dtype, copy=False)
        out.flags.writeable = False  # it is the cache: an in-place change would corrupt the back-pass
        return out

    #: the initial states an input tuple gives after x, in order (PyTorch's h_0, and c_0 for an LSTM)
    _states: ClassVar[tuple[str, ...]] = ("h_0",)

    def _unpack(self, x: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray | None]:
        """``x``, the initial states and the padding mask from a tuple ``(x[, h_0[, c_0]][, mask])`` (the
        last item is the mask if it holds booleans)."""
        last = x[-1]
        padding = last if len(x) > 1 and isinstance(last, np.ndarray) and last.dtype == np.bool_ else None
        if padding is None and len(x) > 1 and last.dtype.kind in "iu":  # no state is made of integers
            raise DTypeError(f"{self._who}: the last input is an array of {last.dtype}: a padding mask must be "
                             "booleans (True at padding; libraries disagree on what 1 means), a state floats")
        states = tuple(x[1:-1] if padding is not None else x[1:])
        first, H = x[0], self.hidden_size
        # a float 0/1 mask (as built for PyTorch) where a state (N, H) would go: named as a mask too
        mask_like = (padding is None and isinstance(last, np.ndarray) and isinstance(first, np.ndarray)
                     and first.ndim == 3 and last.shape == first.shape[:2])
        hint = (", which is x's (N, T): a padding mask must be booleans (mask.astype(bool), True at padding)"
                if mask_like else "")
        if states and len(states) != len(self._states):
            form = ", ".join(("x", *self._states))
            shaped = f" whose last item has shape {last.shape}{hint}" if hint else ""
            raise ShapeError(f"{self._who}: expected x, ({form}), (x, padding_mask) or ({form}, padding_mask), "
                             f"got a tuple of {len(x)}{shaped}")
        if mask_like and last.shape[1] != H:
            raise ShapeError(f"{self._who}: expected {self._states[-1]} of shape (N, {H}) = ({last.shape[0]}, {H}), "
                             f"got shape {last.shape}{hint}")
        if mask_like and last.dtype.kind == "f" and last.size and last.any() and not last.all() \
                and np.all((last == 0) | (last == 1)):
            # T = hidden_size, so a 0/1 float mask has a state's shape: taken as the state it may be (a one-hot
            # state is one), with a warning, as the mistake is common and would otherwise be silent
            warnings.warn(f"{self._who}: the last input, shape {last.shape}, holds only 0s and 1s in floats and is "
                          f"taken as the initial state {self._states[-1]} (T equals hidden_size); if it is a padding "
                          f"mask, pass booleans: mask.astype(bool), True at padding", UserWarning,
                          stacklevel=user_stacklevel())
        if not states and padding is None:
            raise ShapeError(f"{self._who}: expected x or a tuple (x, ...) of several inputs, got a tuple of 1")
        return x[0], states, padding

    def _initial_states(self, given: tuple[np.ndarray, ...], N: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
        """The given initial states checked: each (N, hidden_size), the layer's dtype, finite."""
        H = self.hidden_size
        if not given:
            return ()
        return tuple(check_input(state, self._who, what=name, ndim=2, layout=f"(N, {H}) = ({N}, {H})",
                                 sizes={0: N, 1: H}, dtype=dtype)
                     for name, state in zip(self._states, given, strict=True))

    def _steps(self, projected: np.ndarray, states: tuple[np.ndarray, ...],
               padded: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Run the recurrence over ``projected`` (T, N, G*H), which it may overwrite, from the initial
        ``states`` (empty: zeros), carrying the state over the steps ``padded`` marks ((T, N, 1) or None);
        return the hidden states (T+1, N, H) and whatever else the back-pass needs."""
        raise NotImplementedError

    # ------------------------------------------------------------------ backward
    def backward(self, grad_output: np.ndarray) -> Any:
        """grad_output: the output's shape -> dx: (N, T, input_size), or after a forward given a tuple one
        gradient per input: ``(dx, dh_0[, dc_0])``, and ``None`` for a padding mask; adds into ``W_x.grad``
        and ``W_h.grad`` (each unless frozen: ``requires_grad=False``)."""
        found = self._gradients(grad_output, need_input=True)
        assert found is not None
        dA, d_states = found
        T, N = dA.shape[:2]
        Wx = self.W_x.data
        dx = dA.reshape(T * N, dA.shape[2]) @ (Wx[1:].T if self.bias else Wx.T)
        dx = dx.reshape(T, N, self.input_size).transpose(1, 0, 2)
        if self._padded is not None:
            return (dx, *d_states, None)
        return (dx, *d_states) if self._stated else dx

    def backward_params(self, grad_output: np.ndarray) -> None:
        """Add the parameter gradients like :meth:`backward` but skip ``dx`` (a product over every
        step): for a first layer, whose input is the data.  ``Sequential.backward_params`` calls it."""
        self._gradients(grad_output, need_input=False)

    def _gradients(self, grad_output: np.ndarray,
                   need_input: bool) -> tuple[np.ndarray, tuple[np.ndarray, ...]] | None:
        """Check ``grad_output``, back-propagate through time, add the weight gradients and return the
        pre-activation gradient of the input projection (T, N, G*H) and the initial states' gradients
        (empty without them), or ``None`` when nothing needs them."""
        cache = self._cache
        self._require_cache(cache)
        assert cache is not None
        rows, hs = cache[0], cache[1]
        T, N, H = hs.shape[0] - 1, hs.shape[1], self.hidden_size
        shape = (N, T, H) if self.return_sequences else (N, H)
        check_grad_output(grad_output, self._who_backward, shape, rows.dtype)
        train_x, train_h = self.W_x.requires_grad, self.W_h.requires_grad
        if not (need_input or train_x or train_h):  # all frozen and no dx wanted: nothing to compute
            return None
        g = grad_output.transpose(1, 0, 2) if self.return_sequences else grad_output
        padded = self._padded
        if padded is not None and self.return_sequences:  # the outputs at the padding are constant 0
            g = np.where(padded, 0, g).astype(g.dtype, copy=False)
        dA, dA_h, d_states = self._steps_back(g, cache, self._stated and need_input, padded)
        if train_h:
            add_product(self.W_h, hs[:-1].reshape(T * N, H), dA_h.reshape(T * N, dA_h.shape[2]),
                         self.bias and self._recurrent_bias)
        if train_x:
            add_product(self.W_x, rows, dA.reshape(T * N, dA.shape[2]), self.bias)
        return dA, d_states

    def _steps_back(self, g: np.ndarray, cache: tuple[np.ndarray, ...], states: bool,
                    padded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """From ``g`` (time-major (T, N, H), or (N, H) for the last step only) return the gradients of
        the input projection's and of the recurrent product's pre-activations, (T, N, G*H) each (the
        same array unless the gates combine them differently, as GRU's n gate), and with ``states``
        those of the initial states (else an empty tuple).  At a step ``padded`` marks the state was
        carried over: its gates get no gradient, and ``dh`` (``dc``) passes through unchanged."""
        raise NotImplementedError

    def _upstream(self, g: np.ndarray, t: int, carried: np.ndarray | None) -> np.ndarray:
        """dCost/dh_t: the output's gradient at step t plus what step t+1 sent back (``carried``, ours
        to modify); never modifies ``g``."""
        if self.return_sequences:
            if carried is None:
                return g[t]
            carried += g[t]
            return carried
        if carried is None:  # t = T - 1: only the output's gradient
            return g
        return carried

    # ------------------------------------------------------------------ the rest
    def input_shape_hint(self) -> tuple[int, ...]:
        """``(3, input_size)``: three time steps (any length is valid; a small one, as Conv2D and
        BatchNorm2d propose small images)."""
        return (HINT_STEPS, self.input_size)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        parts += self._options()
        if not self.bias:
            parts.append("bias=False")
        if not self.return_sequences:
            parts.append("return_sequences=False")
        return ", ".join(parts)

    def _options(self) -> list[str]:
        return []


class RNN(_Recurrent):
    """The Elman RNN, as PyTorch's ``nn.RNN``: ``h_t = act(x_t @ W_x[1:] + W_x[0] + h_{t-1} @ W_h)``,
    ``act`` tanh or relu, ``h_0 = 0`` or given: ``rnn((x, h_0))``.

    Shapes:
        x: (N, T, input_size) -> (N, T, hidden_size), or (N, hidden_size) with ``return_sequences=False``.
        W_x: (1 + input_size, hidden_size), row 0 the bias (PyTorch's ``b_ih + b_hh``); without bias
        (input_size, hidden_size).  W_h: (hidden_size, hidden_size).

    Back-pass (``dh_t``: the output's gradient plus ``dh`` sent back from step t+1)::

        da_t = dh_t * (1 - h_t^2)   (tanh)   or   dh_t * [h_t > 0]   (relu)
        dh_{t-1} = da_t @ W_h^T

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        return_sequences: every step's state (default) or only the last one.
        W_x, W_h: exact initial values instead of a random draw (PyTorch's U(+-1/sqrt(hidden_size))).
        rng: a ``numpy.random.Generator`` or int seed for the draw.
        dtype: float64 by default; ``np.float32`` for speed.
    """

    _gates = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *more: Any,
        nonlinearity: str = "tanh",
        bias: bool = True,
        return_sequences: bool = True,
        rng: RNGLike = None,
        dtype: DTypeLike = np.float64,
        W_x: ArrayLike | None = None,
        W_h: ArrayLike | None = None,
        **unknown: Any,
    ) -> None:
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, *more, bias=bias, return_sequences=return_sequences, rng=rng,
                         dtype=dtype, W_x=W_x, W_h=W_h, **unknown)
        self.nonlinearity = nonlinearity

    def _steps(self, projected: np.ndarray, states: tuple[np.ndarray, ...],
               padded: np.ndarray | None) -> tuple[np.ndarray, ...]:
        steps = _step_masks(padded)
        T, N, H = projected.shape
        Wh = self.W_h.data
        hs = np.empty((T + 1, N, H), dtype=projected.dtype)
        hs[0] = states[0] if states else 0
        relu = self.nonlinearity == "relu"
        for t in range(T):
            a = projected[t]
            if t or states:  # (from h_0 = 0 the first step has no recurrent term)
                a += hs[t] @ Wh
            if relu:
                np.maximum(a, 0, out=hs[t + 1])
            else:
                np.tanh(a, out=hs[t + 1])
            if steps is not None and steps[t] is not None:
                np.copyto(hs[t + 1], hs[t], where=steps[t])
        return (hs,)

    def _steps_back(self, g: np.ndarray, cache: tuple[np.ndarray, ...], states: bool,
                    padded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        steps = _step_masks(padded)
        hs = cache[1]
        T = hs.shape[0] - 1
        WhT = self.W_h.data.T
        h = hs[1:]
        if self.nonlinearity == "relu":  # the slopes of every step at once, then times dh step by step
            dA = np.empty_like(h)
            np.greater(h, 0, out=dA)  # (0/1 written straight as floats: no bool mask and copy of it)
        else:
            dA = h * h
            np.subtract(1, dA, out=dA)
        if padded is not None:
            dA *= ~padded  # a carried-over step's pre-activation reaches nothing
        carried = None
        for t in range(T - 1, -1, -1):
            da = dA[t]
            dh = self._upstream(g, t, carried)
            da *= dh
            carried = da @ WhT if t or states else None
            if steps is not None and steps[t] is not None and carried is not None:
                np.add(carried, dh, out=carried, where=steps[t])  # h_t = h_{t-1} there
        if not states:
            return dA, dA, ()
        assert carried is not None
        return dA, dA, (carried,)

    def _options(self) -> list[str]:
        return ["nonlinearity='relu'"] if self.nonlinearity == "relu" else []


class LSTM(_Recurrent):
    """Long short-term memory, as PyTorch's ``nn.LSTM`` (gates i, f, g, o; ``h_0 = c_0 = 0``, or
    given: ``lstm((x, h_0, c_0))``)::

        [a_i, a_f, a_g, a_o] = x_t @ W_x[1:] + W_x[0] + h_{t-1} @ W_h
        i, f, o = sigmoid(a_i, a_f, a_o),   g = tanh(a_g)
        c_t = f * c_{t-1} + i * g,           h_t = o * tanh(c_t)

    Shapes:
        x: (N, T, input_size) -> (N, T, hidden_size), or (N, hidden_size) with ``return_sequences=False``.
        W_x: (1 + input_size, 4*hidden_size), row 0 the bias (PyTorch's ``b_ih + b_hh``), column blocks
        i, f, g, o; without bias (input_size, 4*hidden_size).  W_h: (hidden_size, 4*hidden_size).

    Back-pass (``dh_t``: the output's gradient plus ``dh`` from step t+1; ``dc`` carried back)::

        dc_t  = dc_{t+1} * f_{t+1} + dh_t * o * (1 - tanh(c_t)^2)
        da_o = dh_t * tanh(c_t) * o (1 - o),   da_i = dc_t * g * i (1 - i)
        da_f = dc_t * c_{t-1} * f (1 - f),     da_g = dc_t * i * (1 - g^2)
        dh_{t-1} = [da_i, da_f, da_g, da_o] @ W_h^T

    The forward caches the gate activations, the cell states and their tanh.  Sigmoids are computed
    stably (never overflow).  Args as for :class:`RNN` (without ``nonlinearity``).
    """

    _gates = ("i", "f", "g", "o")
    _states = ("h_0", "c_0")

    def _steps(self, projected: np.ndarray, states: tuple[np.ndarray, ...],
               padded: np.ndarray | None) -> tuple[np.ndarray, ...]:
        steps = _step_masks(padded)
        T, N, _ = projected.shape
        H = self.hidden_size
        Wh = self.W_h.data
        acts = projected  # overwritten, step by step, by the gate activations
        hs = np.empty((T + 1, N, H), dtype=acts.dtype)
        cs = np.empty((T + 1, N, H), dtype=acts.dtype)
        tanh_cs = np.empty((T, N, H), dtype=acts.dtype)
        hs[0], cs[0] = states if states else (0, 0)
        recurrent = np.empty((N, 4 * H), dtype=acts.dtype)
        for t in range(T):
            a = acts[t]
            if t or states:
                np.matmul(hs[t], Wh, out=recurrent)
                a += recurrent
            s = _sigmoid(a)  # i, f, o (one call over all four blocks is faster than two over three)
            np.tanh(a[:, 2 * H: 3 * H], out=s[:, 2 * H: 3 * H])  # g
            a[...] = s
            c = cs[t + 1]
            np.multiply(a[:, :H], a[:, 2 * H: 3 * H], out=c)  # i * g
            if t or states:
                c += a[:, H: 2 * H] * cs[t]  # + f * c_{t-1}
            np.tanh(c, out=tanh_cs[t])
            np.multiply(a[:, 3 * H:], tanh_cs[t], out=hs[t + 1])
            if steps is not None and steps[t] is not None:
                np.copyto(hs[t + 1], hs[t], where=steps[t])
                np.copyto(c, cs[t], where=steps[t])
        return hs, acts, cs, tanh_cs

    def _steps_back(self, g: np.ndarray, cache: tuple[np.ndarray, ...], states: bool,
                    padded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        steps = _step_masks(padded)
        acts, cs, tanh_cs = cache[2:]
        T, N, H = tanh_cs.shape
        WhT = self.W_h.data.T
        i, f, gg, o = (acts[..., k * H: (k + 1) * H] for k in range(4))
        # Every factor that does not depend on the recurrence, for all steps at once:
        # dA = [dc * g i(1-i), dc * c_{t-1} f(1-f), dc * i (1-g^2), dh * tanh(c) o(1-o)],
        # dc_t = dh_t * o (1 - tanh(c_t)^2) + dc_{t+1} * f_{t+1}
        by_gate = np.empty((T, N, 4, H), dtype=acts.dtype)
        dA = by_gate.reshape(T, N, 4 * H)  # a view
        di, df, dg, do = (dA[..., k * H: (k + 1) * H] for k in range(4))
        np.multiply(i, 1 - i, out=di)
        di *= gg
        np.multiply(f, 1 - f, out=df)
        df *= cs[:-1]  # (from c_0 = 0 no forget-gate gradient at the first step)
        np.multiply(gg, gg, out=dg)
        np.subtract(1, dg, out=dg)
        dg *= i
        np.multiply(o, 1 - o, out=do)
        do *= tanh_cs
        dc_dh = tanh_cs * tanh_cs
        np.subtract(1, dc_dh, out=dc_dh)
        dc_dh *= o
        forget = f  # what dc_{t+1} is multiplied by on its way to c_t
        if padded is not None:  # a carried-over step: no gate gets a gradient, dh and dc pass through
            keep = ~padded
            dA *= keep
            dc_dh *= keep
            forget = np.where(padded, 1, f).astype(f.dtype, copy=False)
        carried = None
        dc = None  # dCost/dc_t
        for t in range(T - 1, -1, -1):
            dh = self._upstream(g, t, carried)
            if dc is None:
                dc = dh * dc_dh[t]
            else:
                dc *= forget[t + 1]  # dc_{t+1} f_{t+1}
                dc += dh * dc_dh[t]
            d = by_gate[t]
            d[:, :3] *= dc[:, None]
            d[:, 3] *= dh
            carried = dA[t] @ WhT if t or states else None
            if steps is not None and steps[t] is not None and carried is not None:
                np.add(carried, dh, out=carried, where=steps[t])  # h_t = h_{t-1} there
        if not states:
            return dA, dA, ()
        assert carried is not None and dc is not None
        return dA, dA, (carried, dc * forget[0])  # c_0 enters only c_0 * f_0 (or is c_0 itself, padded)


class GRU(_Recurrent):
    """Gated recurrent unit, as PyTorch's ``nn.GRU`` (gates r, z, n; ``h_0 = 0``, or given:
    ``gru((x, h_0))``)::

        [p_r, p_z, p_n] = x_t @ W_x[1:] + W_x[0]          [q_r, q_z, q_n] = h_{t-1} @ W_h[1:] + W_h[0]
        r = sigmoid(p_r + q_r),   z = sigmoid(p_z + q_z),   n = tanh(p_n + r * q_n)
        h_t = (1 - z) * n + z * h_{t-1}

    Shapes:
        x: (N, T, input_size) -> (N, T, hidden_size), or (N, hidden_size) with ``return_sequences=False``.
        W_x: (1 + input_size, 3*hidden_size), row 0 PyTorch's ``b_ih``; W_h: (1 + hidden_size,
        3*hidden_size), row 0 PyTorch's ``b_hh`` (``b_hn`` sits inside ``r * (...)``, so it is not
        redundant and W_h keeps its own bias row).  Without bias, neither has row 0.

    Back-pass (``dh_t``: the output's gradient plus ``dh`` from step t+1)::

        dp_n = dh_t * (1 - z) * (1 - n^2),   dq_n = dp_n * r
        dp_r = dq_r = dp_n * q_n * r (1 - r),   dp_z = dq_z = dh_t * (h_{t-1} - n) * z (1 - z)
        dh_{t-1} = dh_t * z + [dq_r, dq_z, dq_n] @ W_h[1:]^T

    ``dW_x`` comes from the ``dp`` of every step and ``dW_h`` from the ``dq``, one product each.
    Args as for :class:`LSTM`.
    """

    _gates = ("r", "z", "n")
    _recurrent_bias = True

    def _steps(self, projected: np.ndarray, states: tuple[np.ndarray, ...],
               padded: np.ndarray | None) -> tuple[np.ndarray, ...]:
        steps = _step_masks(padded)
        T, N, _ = projected.shape
        H = self.hidden_size
        Wh = self.W_h.data
        weights, b = (Wh[1:], Wh[0]) if self.bias else (Wh, None)
        acts = projected  # overwritten, step by step, by r, z, n
        hs = np.empty((T + 1, N, H), dtype=acts.dtype)
        hs[0] = states[0] if states else 0
        q_n = np.empty((T, N, H), dtype=acts.dtype)  # h_{t-1} @ W_hn + b_hn, which dr needs
        q = np.empty((N, 3 * H), dtype=acts.dtype)
        for t in range(T):
            a = acts[t]
            if t or states:
                np.matmul(hs[t], weights, out=q)
                if b is not None:
                    q += b
            else:  # from h_0 = 0
                q[...] = 0 if b is None else b
            rz = a[:, : 2 * H]
            rz += q[:, : 2 * H]
            rz[...] = _sigmoid(rz)
            r, z, n = a[:, :H], a[:, H: 2 * H], a[:, 2 * H:]
            q_n[t] = q[:, 2 * H:]
            n += r * q_n[t]
            np.tanh(n, out=n)
            h = hs[t + 1]  # h = n + z * (h_{t-1} - n)
            np.subtract(hs[t], n, out=h)
            h *= z
            h += n
            if steps is not None and steps[t] is not None:
                np.copyto(h, hs[t], where=steps[t])
        return hs, acts, q_n

    def _steps_back(self, g: np.ndarray, cache: tuple[np.ndarray, ...], states: bool,
                    padded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        _, hs, acts, q_n = cache
        T, N, H = q_n.shape
        Wh = self.W_h.data
        WhT = (Wh[1:] if self.bias else Wh).T
        r, z, n = (acts[..., k * H: (k + 1) * H] for k in range(3))
        # Every factor that does not depend on the recurrence, for all steps at once (times dh_t below):
        # dp_n = (1-z)(1-n^2),  dq = [dp_n q_n r(1-r), (h_{t-1} - n) z(1-z), dp_n r]
        dP = np.empty_like(acts)  # of the input projection
        by_gate = np.empty((T, N, 3, H), dtype=acts.dtype)
        dQ = by_gate.reshape(T, N, 3 * H)  # of the recurrent product (differs from dP in the n block)
        dp_n = dP[..., 2 * H:]
        dq_r, dq_z, dq_n = (dQ[..., k * H: (k + 1) * H] for k in range(3))
        np.multiply(n, n, out=dp_n)
        np.subtract(1, dp_n, out=dp_n)
        dp_n *= 1 - z
        np.multiply(r, 1 - r, out=dq_r)
        dq_r *= q_n
        dq_r *= dp_n
        np.subtract(hs[:-1], n, out=dq_z)
        dq_z *= z
        dq_z *= 1 - z
        np.multiply(dp_n, r, out=dq_n)
        through = z  # what dh_t is multiplied by on its direct way to h_{t-1}
        if padded is not None:  # a carried-over step: no gate gets a gradient, dh passes through whole
            keep = ~padded
            dp_n *= keep
            dQ *= keep
            through = np.where(padded, 1, z).astype(z.dtype, copy=False)
        carried = None
        for t in range(T - 1, -1, -1):
            dh = self._upstream(g, t, carried)
            by_gate[t] *= dh[:, None]
            dp_n[t] *= dh
            if t or states:
                carried = dQ[t] @ WhT
                carried += dh * through[t]
        dP[..., : 2 * H] = dQ[..., : 2 * H]  # r and z enter both products alike
        if not states:
            return dP, dQ, ()
        assert carried is not None
        return dP, dQ, (carried,)
