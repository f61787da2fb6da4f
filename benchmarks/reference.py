"""Minimal hand-written NumPy training steps: the yardstick minidl is measured against.

Each step is what a careful person writes by hand for one network, with no framework around it:
forward, loss, backward and a plain SGD update (``w -= lr * dw``), on arrays it owns, so it may work
in place wherever nothing else can see the array.  The maths is the same as minidl's, operation for
operation, so that after the same steps on the same data both hold the same parameters to round-off
(``tests/test_benchmark_reference.py`` checks this): that is what makes the timing ratio a measure
of the framework's overhead and nothing else.

* :class:`MLPStep`: Dense layers with the bias absorbed as row 0 of ``W`` (``W: (in + 1, out)``,
  forward ``x @ W[1:] + W[0]``), ReLU between them, then softmax cross-entropy on integer labels
  (mean over the batch) or mean squared error.
* :class:`CNNStep`: 3x3 convolutions (stride 1, no padding) by im2col, ReLU, 2x2 max-pooling, one
  Dense layer and softmax cross-entropy.

Neither computes the gradient of the loss with respect to the network's *input* unless asked
(``input_grad=True``): training never needs it.  minidl skips it the same way through
``Sequential.backward_params``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CNNStep", "MLPStep", "softmax_cross_entropy"]


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits: (N, C)`` for ``labels: (N,)`` and its gradient (N, C).

    Overwrites ``logits`` (the caller's own temporary) with the gradient, which it returns.
    """
    n = logits.shape[0]
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)  # shifted: the largest logit of each row is 0
    probs = np.exp(logits)
    sums = probs.sum(axis=1, keepdims=True)
    loss = float((np.log(sums[:, 0]) - logits[rows, labels]).sum()) / n
    probs /= sums
    probs[rows, labels] -= 1.0
    probs *= 1.0 / n
    return loss, probs


class MLPStep:
    """One SGD step of a ReLU MLP, by hand.

    Args:
        Ws: one ``(in + 1, out)`` array per layer, row 0 the bias; updated in place.
        lr: the learning rate.
        loss: ``"ce"`` (softmax cross-entropy; ``y: (N,)`` integer labels) or ``"mse"``
            (mean squared error over every element; ``y: (N, out)``).
        input_grad: also compute ``dloss/dx`` (returned by :meth:`step_with_input_grad`).
    """

    def __init__(self, Ws: list[np.ndarray], lr: float, loss: str = "ce", input_grad: bool = False) -> None:
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
        self.Ws = Ws
        self.lr = lr
        self.loss = loss
        self.input_grad = input_grad
        self.dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
        """x: (N, in) -> the loss before the update; the parameters are updated in place."""
        Ws, lr = self.Ws, self.lr
        last = len(Ws) - 1
        inputs = []  # the input of each layer, kept for its weight gradient
        masks = []  # where each hidden pre-activation was > 0
        h = x
        for i, W in enumerate(Ws):
            inputs.append(h)
            z = h @ W[1:]
            z += W[0]
            if i < last:
                mask = z > 0
                z *= mask  # ReLU, in place on our own temporary
                masks.append(mask)
            h = z

        if self.loss == "ce":
            loss, g = softmax_cross_entropy(h, y)
        else:
            g = h - y
            loss = float(np.vdot(g, g)) / g.size
            g *= 2.0 / g.size

        for i in range(last, -1, -1):
            W = Ws[i]
            dW = inputs[i].T @ g
            db = g.sum(axis=0)
            if i > 0:
                g = g @ W[1:].T  # with W before its update
                g *= masks[i - 1]
            elif self.input_grad:
                self.dx = g @ W[1:].T
            dW *= lr
            W[1:] -= dW
            db *= lr
            W[0] -= db
        return loss


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """x: (N, H, W, C) -> the k x k patches (stride 1, no padding) as rows: (N * Ho * Wo, k * k * C).

    Columns are ordered (i, j, c), so a kernel ``K: (F, C, k, k)`` multiplies them as
    ``K.transpose(0, 2, 3, 1).reshape(F, -1)``.
    """
    n, h, w, c = x.shape
    ho, wo = h - k + 1, w - k + 1
    s0, s1, s2, s3 = x.strides
    patches = np.lib.stride_tricks.as_strided(
        x, shape=(n, ho, wo, k, k, c), strides=(s0, s1, s2, s1, s2, s3), writeable=False
    )
    return patches.reshape(n * ho * wo, k * k * c)  # copies


def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], k: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: add ``cols: (N * Ho * Wo, k * k * C)`` back into (N, H, W, C)."""
    n, h, w, c = shape
    ho, wo = h - k + 1, w - k + 1
    patches = cols.reshape(n, ho, wo, k, k, c)
    dx = np.zeros(shape, dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, i:i + ho, j:j + wo, :] += patches[:, :, :, i, j, :]
    return dx


class CNNStep:
    """One SGD step of ``[Conv k x k -> ReLU -> MaxPool 2] * len(kernels) -> Flatten -> Dense ->
    softmax cross-entropy``, by hand, with the feature maps kept channels-last (NHWC) throughout.

    Args:
        kernels: per convolution a pair ``(K, b)``: ``K: (F, C, k, k)`` (PyTorch's layout) and
            ``b: (F,)``; updated in place.
        W: the Dense layer's ``(in + 1, classes)`` matrix, row 0 the bias, its input the last pooled
            map flattened in (C, H, W) order (as minidl's and PyTorch's ``Flatten``); updated in place.
        lr: the learning rate.

    Max-pooling sends each window's gradient to every element equal to the window's maximum.  Ties
    between positive values have probability zero; ties at 0 (after the ReLU) get the ReLU's zero
    gradient anyway, so this equals the "first maximum wins" rule of minidl and PyTorch here.
    """

    def __init__(self, kernels: list[tuple[np.ndarray, np.ndarray]], W: np.ndarray, lr: float,
                 input_grad: bool = False) -> None:
        self.kernels = kernels
        self.W = W
        self.lr = lr
        self.input_grad = input_grad
        self.dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
        """x: (N, C, H, W), y: (N,) integer labels -> the loss before the update."""
        lr = self.lr
        saved = []
        h = x.transpose(0, 2, 3, 1)  # NHWC view
        for K, b in self.kernels:
            f, _, k, _ = K.shape
            n, hi, wi, _ = h.shape
            ho, wo = hi - k + 1, wi - k + 1
            cols = im2col(h, k)
            Kmat = K.transpose(0, 2, 3, 1).reshape(f, -1)  # (F, k*k*C), a small copy
            z = cols @ Kmat.T  # (N*Ho*Wo, F)
            z += b
            mask = z > 0
            z *= mask  # ReLU
            z = z.reshape(n, ho, wo, f)
            hp, wp = ho // 2, wo // 2
            corners = [z[:, i:2 * hp:2, j:2 * wp:2] for i in (0, 1) for j in (0, 1)]  # views
            pooled = np.maximum(corners[0], corners[1])
            np.maximum(pooled, corners[2], out=pooled)
            np.maximum(pooled, corners[3], out=pooled)
            saved.append((h.shape, cols, Kmat, mask, corners, pooled))
            h = pooled  # (N, hp, wp, F)
        n = h.shape[0]
        flat = h.transpose(0, 3, 1, 2).reshape(n, -1)  # (C, H, W) order, a copy
        W = self.W
        logits = flat @ W[1:]
        logits += W[0]
        loss, g = softmax_cross_entropy(logits, y)

        dW = flat.T @ g
        db = g.sum(axis=0)
        g = (g @ W[1:].T).reshape(n, h.shape[3], h.shape[1], h.shape[2]).transpose(0, 2, 3, 1)
        dW *= lr
        W[1:] -= dW
        db *= lr
        W[0] -= db

        for idx in range(len(self.kernels) - 1, -1, -1):
            K, b = self.kernels[idx]
            in_shape, cols, Kmat, mask, corners, pooled = saved[idx]
            f, _, k, _ = K.shape
            n, hi, wi, c = in_shape
            ho, wo = hi - k + 1, wi - k + 1
            hp, wp = pooled.shape[1], pooled.shape[2]
            dz = np.zeros((n, ho, wo, f), dtype=g.dtype)
            for (i, j), corner in zip(((0, 0), (0, 1), (1, 0), (1, 1)), corners, strict=True):
                dz[:, i:2 * hp:2, j:2 * wp:2] = g * (corner == pooled)
            dz = dz.reshape(n * ho * wo, f)
            dz *= mask  # ReLU
            dK = dz.T @ cols  # (F, k*k*C)
            dbk = dz.sum(axis=0)
            if idx > 0:
                g = col2im(dz @ Kmat, in_shape, k)  # NHWC: the previous pool's output gradient
            elif self.input_grad:
                self.dx = col2im(dz @ Kmat, in_shape, k).transpose(0, 3, 1, 2)
            dK *= lr
            K -= dK.reshape(f, k, k, c).transpose(0, 3, 1, 2)
            dbk *= lr
            b -= dbk
        return loss
