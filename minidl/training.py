"""The training loop: :func:`fit`, :func:`evaluate`, :func:`predict` and their :class:`History`.

``Model.fit/evaluate/predict`` call these, Keras style::

    history = model.fit(x, y, loss=md.CrossEntropyLoss(), optimizer=md.Adam(model.parameters()),
                        epochs=10, batch_size=64, validation_data=(x_val, y_val),
                        metrics=["accuracy"], rng=0)
    history["val_accuracy"][-1]

One step on a mini-batch ``(xb, yb)`` is: zero the gradients, ``out = model(xb)``,
``l = loss(out, yb)``, stop if ``l`` is NaN/inf, ``model.backward(loss.backward())``,
``optimizer.step(zero_grad=True)``: the update, then the gradients zeroed for the next batch, in one
pass where the optimizer can (so after ``fit`` its parameters' gradients read zero; an optimizer
whose ``step`` takes no ``zero_grad`` gets ``step()`` then ``zero_grad()``).  ``model.backward_params``
is called instead of ``backward`` (through :func:`minidl.layer.parameter_backward`, which never bypasses a custom
``backward``): the same parameter gradients without the unused gradient of the data.  The loop
itself adds only the fancy-index of the batch (when shuffling) and a few Python operations per
batch.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MethodType
from typing import Any, NamedTuple

import numpy as np
from typing_extensions import Never

from .clip import _clip_norm
from .early_stopping import EarlyStopping, unknown_direction
from .errors import (
    DTypeError,
    GradientCheckError,
    MinidlError,
    NonFiniteError,
    ShapeError,
    StateDictError,
    TargetError,
    short_repr,
)
from .gradcheck import GradientChecker
from .init import RNGLike, _check_rng, as_generator, switch
from .inputs import Inputs, as_inputs, count, rows, take_rows
from .layer import Layer, _name_part, minidl_class, parameter_backward
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    Loss,
    MultiLabelSoftMarginLoss,
    NLLLoss,
    SoftMarginLoss,
    TripletMarginLoss,
    _held_objects,
    check_loss_gradient,
    named_loss_parameters,
    sum_of_squares,
)
from .model import _spread_inputs_refused_first
from .optim import SGD, Optimizer, _non_finite_gradient
from .parameter import Parameter
from .pass_caches import _caches_kept, _pass_owners, _rebound
from .schedulers import LRScheduler, ReduceLROnPlateau
from .side_state import calls, restore, saved, state_of
from .validation import as_array, cast_targets, is_finite, is_integer, is_number, user_stacklevel

__all__ = ["Accuracy", "History", "MeanAbsoluteError", "MeanSquaredError", "Metric", "evaluate", "fit",
           "predict"]


# ---------------------------------------------------------------------------------------------- metrics
class Metric:
    """A per-batch score ``metric(y_pred, y_true) -> float``, averaged over samples by the loop.

    ``name`` is its key in the history (``"val_" + name`` on validation data).  Any callable with
    that signature can be passed in ``metrics=[...]`` (its name is then its ``__name__``).
    A metric that scores only some of a batch's samples sets ``batch_weight`` (how many it scored)
    at each call, and the loop weighs that batch's value by it instead of the batch size.

    ``direction``: ``"max"`` for a score that grows as it improves (an F1 score), ``"min"`` for one that
    shrinks (an error), None (the default) when not said.  ``mode="auto"`` of an ``EarlyStopping`` or a
    ``ReduceLROnPlateau`` monitoring it (``name`` or ``"val_" + name``) takes it: ``fit`` decides that mode
    from the Metric instances in its ``metrics`` (a declared direction comes before the name's), and refuses
    a monitor whose direction neither tells.
    """

    name = "metric"
    batch_weight: float | None = None
    direction: str | None = None

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        """The score of one batch: y_pred (N, ...) the model's output, y_true (N, ...) its targets -> a float."""
        raise NotImplementedError


class Accuracy(Metric):
    """The fraction of right predictions.

    - Classes on axis 1 (y_pred (N, C, ...) with C > 1): the class is ``argmax`` over axis 1;
      y_true holds (N,) integer labels or (N, C) scores/one-hot rows (then its argmax is the label).
    - Otherwise (y_pred (N,), (N, 1) or (N, 1, ...), or any shape with ``binary=True``): every
      element is a yes/no prediction, ``y_pred > threshold`` against ``y_true > 0.5``, y_true holding
      as many elements per sample; the threshold is 0.5 for probabilities and 0 for logits
      (``metrics=["accuracy"]`` picks 0, and ``binary=True``, when the loss is ``BCEWithLogitsLoss``,
      ``MultiLabelSoftMarginLoss`` or ``SoftMarginLoss``, whose -1/1 labels read as no/yes too; 0.5 and
      ``binary=True`` for ``BCELoss``).

    ``ignore_index``: samples (or elements) whose label equals it are not scored: padding, as
    ``CrossEntropyLoss(ignore_index=...)`` skips it (``metrics=["accuracy"]`` takes the loss's, also
    ``NLLLoss``'s).
    ``batch_weight`` then says how many were scored, and the loop weighs the batch by it (pass the
    ``Accuracy`` itself: a wrapping function would hide it); a batch with none scores 0 with
    weight 0.
    """

    name = "accuracy"

    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None,
                 binary: bool = False) -> None:
        if not is_number(threshold):
            raise TypeError(f"Accuracy: threshold must be a number, got {threshold!r}")
        if not is_finite(threshold):
            raise ValueError(f"Accuracy: threshold must be finite, got {threshold!r}")
        self.threshold = float(threshold)
        if ignore_index is not None and not is_integer(ignore_index):
            raise TypeError(f"Accuracy: ignore_index must be an int or None, got {ignore_index!r}")
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.binary = switch(binary, "binary", "Accuracy")

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        y_true = np.asarray(y_true)
        n = y_pred.shape[0] if y_pred.ndim else 1
        labels: np.ndarray | None = None  # y_true as one label per prediction (None for (N, C) rows)
        if not self.binary and y_pred.ndim >= 2 and y_pred.shape[1] > 1:
            predicted = y_pred.argmax(axis=1)
            if y_true.shape == y_pred.shape:
                actual = y_true.argmax(axis=1)
            else:
                actual = labels = y_true
        else:
            predicted = y_pred.reshape(n, -1) > self.threshold
            labels = y_true.reshape(y_true.shape[0] if y_true.ndim else 1, -1)
            actual = labels > 0.5
        if predicted.shape != actual.shape:
            raise ShapeError(f"Accuracy: cannot compare y_pred of shape {y_pred.shape} "
                             f"with y_true of shape {y_true.shape}")
        right = predicted == actual
        if self.ignore_index is not None and labels is not None:
            kept = labels != self.ignore_index
            self.batch_weight = float(np.count_nonzero(kept))
            return int(np.count_nonzero(right & kept)) / self.batch_weight if self.batch_weight else 0.0
        self.batch_weight = None
        return int(np.count_nonzero(right)) / max(predicted.size, 1)

    def __repr__(self) -> str:
        extra = "" if self.ignore_index is None else f", ignore_index={self.ignore_index}"
        extra += ", binary=True" if self.binary else ""
        return f"Accuracy(threshold={self.threshold}{extra})"


class MeanSquaredError(Metric):
    """``mean((y_pred - y_true)^2)`` over every element (y_true may differ from y_pred only by axes of size 1)."""

    name = "mse"

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        diff = y_pred - _like(y_true, y_pred, "MeanSquaredError")
        return sum_of_squares(diff) / max(diff.size, 1)


class MeanAbsoluteError(Metric):
    """``mean(|y_pred - y_true|)`` over every element (y_true may differ from y_pred only by axes of size 1)."""

    name = "mae"

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> float:
        diff = y_pred - _like(y_true, y_pred, "MeanAbsoluteError")
        return float(np.abs(diff).sum()) / max(diff.size, 1)


def _like(y_true: Any, y_pred: np.ndarray, who: str) -> np.ndarray:
    """y_true reshaped like y_pred when the two differ only by axes of size 1 ((N,) against (N, 1)),
    else a ShapeError: (N, 3, 2) against (N, 2, 3) would pair the wrong elements."""
    target = np.asarray(y_true)
    if target.shape != y_pred.shape and (
            target.size != y_pred.size
            or tuple(n for n in target.shape if n != 1) != tuple(n for n in y_pred.shape if n != 1)):
        raise ShapeError(f"{who}: y_true of shape {target.shape} does not match y_pred of shape "
                         f"{y_pred.shape} (they may differ only by axes of size 1)")
    return target.reshape(y_pred.shape)


class _OfTheMean:
    """A built-in metric of the means: the first of the outputs ``(mean, var)`` a model trained with
    ``GaussianNLLLoss`` returns (``metrics=["mse"]`` then scores the means against the targets)."""

    def __init__(self, metric: Callable[[np.ndarray, np.ndarray], float]) -> None:
        self.metric = metric

    def __call__(self, y_pred: Any, y_true: np.ndarray) -> float:
        return self.metric(y_pred[0] if type(y_pred) is tuple else y_pred, y_true)

    def __repr__(self) -> str:
        return f"{type(self.metric).__name__}() of the mean"


MetricLike = str | Metric | Callable[[np.ndarray, np.ndarray], float]
#: the history's figures whose direction is known, without ``val_`` and in lower case: the loss and the
#: built-in metrics, "max" for one that grows as it improves (``mode="auto"`` of EarlyStopping, ReduceLROnPlateau)
_DIRECTIONS = {"loss": "min", "accuracy": "max", "acc": "max", "mse": "min", "mean_squared_error": "min",
               "mae": "min", "mean_absolute_error": "min"}
#: the names of the built-in metrics (what ``metrics=[...]`` resolves)
_BUILT_IN_METRICS = tuple(name for name in _DIRECTIONS if name != "loss")


def monitor_direction(monitor: str) -> str | None:
    """``"min"`` or ``"max"``: whether the history figure ``monitor`` (``"val_accuracy"``, ``"loss"``) improves by
    shrinking or by growing, for the loss and the built-in metrics (any case, with or without ``val_``); None for
    any other (a metric of one's own: an F1 score grows, an error shrinks), except that, as Keras 3, a name ending
    in ``loss`` (``"val_my_loss"``) is ``"min"``."""
    key = monitor.lower()
    key = key[4:] if key.startswith("val_") else key
    return _DIRECTIONS.get(key) or ("min" if key.endswith("loss") else None)


def _declared_direction(monitor: str, metric_fns: Sequence[tuple[str, Any]]) -> str | None:
    """The ``direction`` declared by the :class:`Metric` recorded as ``monitor`` (with or without ``val_``), or
    None."""
    for name, fn in metric_fns:
        if monitor in (name, f"val_{name}"):
            direction = getattr(fn, "direction", None)  # (a Metric's, or one set on a function)
            if direction not in (None, "min", "max"):
                raise ValueError(f"the metric {name!r} declares direction={direction!r}; expected 'max' (it grows as "
                                 "it improves), 'min' (it shrinks) or None (not declared)")
            return direction
    return None


def _metric_refusal(who: str, metric: str, loss: Loss | None) -> str | None:
    """Why the built-in metric named ``metric`` cannot score the predictions of a model trained with
    ``loss`` (the message of the ``ValueError``), or ``None`` when it can (or is no built-in name)."""
    key = metric.lower()
    if isinstance(loss, TripletMarginLoss) and key in _BUILT_IN_METRICS:
        return (f"{who}: metrics=[{metric!r}] with TripletMarginLoss: the loss has no targets (y is a placeholder), "
                "so a built-in metric has nothing to score; pass a metric of your own, which gets the triplet of "
                "embeddings, e.g. the share of anchors closer to their positive: lambda e, _: "
                "float(np.mean(np.linalg.norm(e[0] - e[1], axis=-1) < np.linalg.norm(e[0] - e[2], axis=-1)))")
    if key in ("accuracy", "acc") and isinstance(loss, HingeEmbeddingLoss):
        return (f"{who}: metrics=['accuracy'] with HingeEmbeddingLoss: its predictions are distances (small for a "
                "similar pair), which accuracy would read as 'yes' above 0.5; pass a metric of your own, e.g. "
                "lambda d, y: float(np.mean((d < 1) == (y == 1)))")
    if key in ("accuracy", "acc") and isinstance(loss, GaussianNLLLoss):
        return (f"{who}: metrics=['accuracy'] with GaussianNLLLoss: its model predicts real values (means and "
                "variances), not classes; use 'mse' or 'mae' (they score the means), or a metric of your own, "
                "metric((mean, var), y_true) -> float")
    return None


def _metrics_offered(who: str, loss: Loss | None) -> str:
    """The hint of an unknown metric's message: the built-in names that ``loss`` takes, and a callable."""
    names = ("accuracy", "mse", "mae")
    offered = [f"{name!r}" for name in names if _metric_refusal(who, name, loss) is None]
    refused = [f"{name!r}" for name in names if _metric_refusal(who, name, loss) is not None]
    choices = [*offered, "a callable metric(y_pred, y_true) -> float"]
    hint = "use " + (choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}")
    if not refused:
        return hint
    listed = refused[0] if len(refused) == 1 else f"{', '.join(refused[:-1])} and {refused[-1]}"
    return f"{hint} ({listed} {'is' if len(refused) == 1 else 'are'} refused with {type(loss).__name__})"


def _resolve_metrics(
    metrics: Sequence[MetricLike] | None, loss: Loss | None, who: str = "fit"
) -> list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]]:
    """``[(name, function)]`` from names (``"accuracy"``/``"acc"``, ``"mse"``, ``"mae"``, in any case; the name is as
    given) and callables; with
    ``GaussianNLLLoss`` the named ones score the means, the first of the outputs ``(mean, var)``."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or callable(metrics):
        metrics = [metrics]
    resolved: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = []
    for metric in metrics:
        fn: Callable[[np.ndarray, np.ndarray], float]
        if isinstance(metric, str):
            key = metric.lower()
            refusal = _metric_refusal(who, metric, loss)
            if refusal is not None:
                raise ValueError(refusal)
            if key in ("accuracy", "acc"):
                # per-element scores, yes/no at 0 (SoftMarginLoss's -1/1 labels: yes is > 0.5 too)
                logits = isinstance(loss, (BCEWithLogitsLoss, SoftMarginLoss, MultiLabelSoftMarginLoss))
                binary = logits or isinstance(loss, BCELoss)  # per-element probabilities: at 0.5
                ignore = getattr(loss, "ignore_index", None) if isinstance(loss, (CrossEntropyLoss, NLLLoss)) \
                    else None
                fn = Accuracy(threshold=0.0 if logits else 0.5, ignore_index=ignore, binary=binary)
            elif key in ("mse", "mean_squared_error"):
                fn = MeanSquaredError()
            elif key in ("mae", "mean_absolute_error"):
                fn = MeanAbsoluteError()
            else:
                raise ValueError(f"{who}: unknown metric {metric!r}; {_metrics_offered(who, loss)}")
            if isinstance(loss, GaussianNLLLoss):  # its model's outputs are (mean, var): score the means
                fn = _OfTheMean(fn)
            name = metric  # the history's key is the name as given, as Keras's ("acc": "acc", "val_acc")
        elif isinstance(metric, Metric):
            fn, name = metric, metric.name
        elif callable(metric):
            fn, name = metric, getattr(metric, "__name__", type(metric).__name__)
        else:
            raise TypeError(f"{who}: a metric must be a name or a callable, got {type(metric).__name__}")
        if name in ("loss", "lr") or name.startswith("val_"):  # the history's own keys
            raise ValueError(f"{who}: a metric cannot be named {name!r}: 'loss', 'lr' and 'val_...' are the history's "
                             "own keys; give the metric another name (a Metric subclass's name attribute, or a "
                             "function's __name__)")
        if any(name == other for other, _ in resolved):
            raise ValueError(f"{who}: two metrics are both named {name!r}")
        resolved.append((name, fn))
    return resolved


# ---------------------------------------------------------------------------------------------- history
class History:
    """What :func:`fit` returns: per-epoch values, as Keras's ``History``.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], ..., "lr": [...]}``, one
            float per completed epoch (``lr`` is the learning rate used during the epoch).
        epoch: the epoch numbers, starting at 1.
        epoch_times: the wall-clock seconds of each epoch (training and validation).
        params: ``{"epochs", "batch_size", "samples", "steps"}``.
        stopped_epoch: the epoch after which training stopped before ``params["epochs"]``, 0 if it did not.
        stopped_by: what stopped it: ``"early_stopping"``, ``"callbacks[i]"`` (the ``i``-th of ``fit``'s
            ``callbacks``, which returned True), or None.
    """

    stopped_epoch: int = 0  # (class defaults too: a History pickled before they existed reads them)
    stopped_by: str | None = None

    def __init__(self, params: dict[str, Any]) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.epoch_times: list[float] = []
        self.params = params
        self.stopped_epoch = 0
        self.stopped_by = None

    def __getitem__(self, key: str) -> list[float]:
        """``history["loss"]``: one value per epoch run (``history.history[key]``); a ``KeyError`` listing the keys."""
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(f"no {key!r} in the history; it has {sorted(self.history)}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def _append(self, epoch: int, seconds: float, values: dict[str, float]) -> None:
        self.epoch.append(epoch)
        self.epoch_times.append(seconds)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        count = len(self.epoch)
        return f"History({count} epoch{'' if count == 1 else 's'}{': ' if last else ''}{last})"


# ---------------------------------------------------------------------------------------------- helpers
def _holds_array(value: Any, depth: int = 4) -> bool:
    """Whether ``value`` is an ndarray, or a tuple, list or dict holding one (in nested ones too, ``depth``
    deep): a batch's activations.  Not what other objects hold."""
    if isinstance(value, np.ndarray):
        return True
    if depth and isinstance(value, (tuple, list)):
        return any(_holds_array(item, depth - 1) for item in value)
    if depth and isinstance(value, dict):
        return any(_holds_array(item, depth - 1) for item in value.values())
    return False


def _caches_before(model: Layer, loss: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The attributes of :func:`_pass_owners` as they are before ``fit``, for :func:`_release_caches`."""
    return [(owner, dict(vars(owner))) for owner in _pass_owners(model, loss)]


def _release_caches(saved: list[tuple[Any, dict[str, Any]]]) -> None:
    """After a ``fit`` that returns: set back to None each attribute (:func:`_rebound`) that was None before it
    (or unset, with the class's default None) and that its passes bound to arrays (:func:`_holds_array`): the
    last batch's caches, which no backward can use any more and which a model kept for inference would carry
    (in a copy, a pickle).  What was not None before (a cache of the user's own forward, a workspace built
    before) is left as it is, and so are values without arrays (a lazy layer's size, a shape).  Only in layers
    and losses of minidl's own classes (:func:`minidl_class`), whose attributes are known: a layer or loss of
    one's own, a subclass of a built-in one too, may set up state in its first call (a data-dependent
    initialisation) that no rule tells from a cache, and keeps what it keeps."""
    for owner, before in saved:
        if not minidl_class(owner):
            continue
        now = vars(owner)
        for key, value in _rebound(owner, before, added=True):
            if value is None and _holds_array(now[key]):
                if key in before:
                    now[key] = None
                else:  # (unset before: the class's default None again)
                    del now[key]


@contextmanager
def _mode(model: Layer, training: bool) -> Iterator[None]:
    """Put every layer in train or eval mode, then restore each layer's own previous mode."""
    saved = [(layer, layer.training) for layer in model.layers()]
    model.train(training)
    try:
        yield
    finally:
        for layer, flag in saved:
            object.__setattr__(layer, "training", flag)


@contextmanager
def _training_modes(model: Layer) -> Iterator[Callable[[], None]]:
    """The modes ``fit`` trains in, and each layer's own mode restored afterwards.

    A model in train mode trains in the modes its layers have (a layer the user put in eval mode,
    e.g. a frozen batch norm, stays in eval mode); a model in eval mode is switched to train mode
    whole, by ``model.train()``.  Yields a function that puts those modes back (after an epoch's
    validation).
    """
    layers = list(model.layers())
    saved = [layer.training for layer in layers]
    if model.training:
        modes = saved
    else:  # through model.train(), which honours a sub-layer's own train (one keeping a batch norm in eval)
        model.train(True)
        modes = [layer.training for layer in layers]

    def resume() -> None:
        for layer, flag in zip(layers, modes, strict=True):
            object.__setattr__(layer, "training", flag)

    try:
        resume()
        yield resume
    finally:
        for layer, flag in zip(layers, saved, strict=True):
            object.__setattr__(layer, "training", flag)


def _model_dtype(model: Layer) -> np.dtype | None:
    for param in model.parameters():
        return param.dtype
    return None


def _check_data(model: Layer, x: Any, y: Any, who: str, what: str = "") -> tuple[Inputs, np.ndarray]:
    """Validate a dataset once, up front; floating targets are cast to the model's dtype here, once.
    ``x`` is one array or several inputs (a tuple of arrays, see :mod:`minidl.inputs`)."""
    # lists, tuples of numbers, objects with __array__ (a DataFrame) are converted; a tuple of arrays is kept
    x = as_inputs(x, who, f"{what}x")
    if y is None:  # (a loss without targets, e.g. TripletMarginLoss, still needs rows of y to batch with x)
        n = count(x) if not (isinstance(x, np.ndarray) and x.ndim == 0) else "N"
        raise DTypeError(f"{who}: {what}y is None: pass the targets, one row per sample.  (Only a loss without "
                         f"targets, such as TripletMarginLoss, ignores y's values; {who} still batches y with x, so "
                         f"give it a placeholder such as np.zeros({n}))")
    y = as_array(y, who, f"{what}y")
    if (isinstance(x, np.ndarray) and x.ndim == 0) or y.ndim == 0:
        shape = x.shape if isinstance(x, np.ndarray) else tuple(a.shape for a in x)
        raise ShapeError(f"{who}: {what}x and y need a batch axis, got shapes {shape} and {y.shape}"
                         + ("" if what else _one_sample(model, x).replace("x[None]", "x[None] and y[None]")))
    if count(x) != len(y):
        raise ShapeError(f"{who}: {what}x has {count(x)} samples but {what}y has {len(y)}"
                         + ("" if what else _one_sample(model, x)))
    if count(x) == 0:
        raise ShapeError(f"{who}: {what}x and y are empty")
    dtype = _model_dtype(model)
    if dtype is not None and y.dtype.kind == "f" and y.dtype != dtype:
        y = cast_targets(y, dtype, who, f"{what}y", "the model's dtype")
    return x, y


def refuse_spread_inputs(who: str, x: Any, more: tuple[Any, ...], model: Layer | None = None) -> None:
    """``fit(model, x, mask, y)`` / ``model.fit(x, mask, y)`` / ``model.fit(x, y, loss, optimizer)``: x and y go
    by position, the rest by keyword, and several inputs are one tuple.  ``model``: the model whose method was
    called (``model.fit(...)``), for the message to speak of the method; None for the function
    (``fit(model, x, y, ...)``)."""
    if not more:
        return
    keywords = "batch_size=, epochs=, validation_data=, ..." if who == "fit" else "batch_size=, metrics=, ..."

    def length(a: Any) -> int | None:  # samples of an array or a list of numbers, else None (tuples: inputs)
        if isinstance(a, np.ndarray):
            return len(a) if a.ndim else None
        if isinstance(a, list) and all(is_number(v) or isinstance(v, (bool, np.bool_, list)) for v in a):
            return len(a)
        return len(a) if hasattr(type(a), "__array__") and hasattr(a, "__len__") else None

    def keyword(value: Any) -> str | None:  # the keyword a value given by position surely belongs to
        kinds = [(Loss, "loss")] if who != "fit" else [
            (Loss, "loss"), (Optimizer, "optimizer"), (LRScheduler, "scheduler"), (EarlyStopping, "early_stopping")]
        cls = value if isinstance(value, type) else type(value)
        return next((name for kind, name in kinds if issubclass(cls, kind)), None)

    samples, third = length(x), length(more[0])
    spread = samples is not None and third == samples
    named = list(dict.fromkeys(name for name in map(keyword, more) if name is not None))
    call = f"model.{who}(" if model is not None else f"{who}(model, "
    if spread:
        hint = f"; several inputs are one tuple: {call}(x, mask), y, ...)"
    elif named:
        hint = ": pass " + ", ".join(f"{name}=..." for name in named)
    else:
        hint = f" ({keywords})"
    called, after = (f"{type(model).__name__}.{who}", "") if model is not None else (f"{who}:", " after the model")
    raise TypeError(f"{called} takes x and y by position, the rest by keyword{hint} (got {2 + len(more)} "
                    f"positional arguments{after})")


def _positive_int(who: str, name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        if isinstance(value, np.ndarray) and value.ndim and who == "predict":  # predict(x, mask): for batch_size
            raise TypeError(f"{who}: {name} must be an int >= {minimum}, got an array of shape {value.shape}; "
                            f"several inputs are one tuple: {who}((x, mask))")
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _with_context(error: MinidlError, where: str) -> None:
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{where}: {error.args[0]}", *error.args[1:])


def _say_where(error: BaseException, where: str, more: str = "") -> None:
    """Say in ``error`` where fit was: a minidl error's message starts with ``where`` (``more`` in brackets), a
    user's error keeps its message and gets a note (Python 3.11+); a Ctrl-C is left as it is."""
    if isinstance(error, MinidlError):
        _with_context(error, f"{where} ({more})" if more else where)
    elif isinstance(error, Exception) and hasattr(error, "add_note"):
        error.add_note(f"(raised in {where}; {more})" if more else f"(raised in {where})")


def _with_suffix(error: MinidlError, text: str) -> None:
    """Append ``text`` to the first line of ``error``'s message (before a report that follows it)."""
    if text and error.args and isinstance(error.args[0], str):
        head, newline, tail = error.args[0].partition("\n")
        error.args = (f"{head}{text}{newline}{tail}", *error.args[1:])


def _stopped_in(error: BaseException, history: History, epoch: int | None, batch: int | None) -> None:
    """Tell an exception that stopped ``fit`` where: ``error.history`` (the epochs completed), ``error.epoch`` and
    ``error.batch`` (1-based, as the message; None outside an epoch, or in its validation)."""
    with contextlib.suppress(AttributeError):  # (an exception class with __slots__)
        error.history = history  # type: ignore[attr-defined]
        error.epoch = epoch  # type: ignore[attr-defined]
        error.batch = batch  # type: ignore[attr-defined]


def _one_sample(model: Layer, x: Any) -> str:
    """``"; x of shape (4,) has the axes of one sample ...: pass x[None]"`` when ``x`` (one array) has as many axes
    as one sample of ``model`` (its ``input_shape_hint``), one fewer than a batch, and the same first one (the
    features, the channels); else ``""``."""
    if not isinstance(x, np.ndarray) or x.ndim == 0:
        return ""
    hint = None
    with contextlib.suppress(Exception):  # (a layer of one's own whose hint fails: no hint)
        hint = model.input_shape_hint()
    # (and the same first axis: a batch of grey images (N, H, W) to a model of (1, H, W) lacks its channel axis)
    if hint is None or len(hint) != x.ndim or x.shape[0] != hint[0]:
        return ""
    return (f"; x of shape {x.shape} has the axes of one sample, not of a batch: for one sample "
            "pass x[None], a batch of one")


def _located_row(error: BaseException, start: int, stop: int, order: np.ndarray | None = None,
                 batch: tuple[Any, ...] = ()) -> str:
    """``"; row 11 of the batch is sample 100"`` when ``error`` located a NaN/inf or a bad target (its
    ``index``) in the batch of positions ``start..stop-1`` of the data, or of ``order`` (a shuffled epoch);
    else ``""``.  A NaN/inf located in a row whose data (``batch``: the batch's inputs and targets) is
    finite arose inside the model when the whole batch's data is finite, and is said so: the sample is not
    to blame; else a layer mixing rows spread it from the first sample whose data is not finite, named."""
    if not isinstance(error, (NonFiniteError, TargetError)) or not isinstance(error.index, tuple) or not error.index \
            or not error.shape or error.shape[0] != stop - start:  # (an array of other rows: reshaped, time steps)
        return ""
    row = error.index[0]

    def sample(r: int) -> int:
        return start + r if order is None else int(order[start + r])

    arrays = [a for part in batch for a in (part if type(part) is tuple else (part,))
              if isinstance(a, np.ndarray) and a.dtype.kind in "fc" and len(a) == stop - start]
    if isinstance(error, NonFiniteError) and arrays and all(np.isfinite(a[row]).all() for a in arrays):
        bad = [int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))[0]) for a in arrays
               if not np.isfinite(a).all()]
        if not bad:
            return f"; row {row} of the batch (sample {sample(row)}) is finite in the data: the NaN/inf arose " \
                   "inside the model"
        return f"; row {row} of the batch (sample {sample(row)}) is finite in the data, but row {min(bad)} (sample " \
               f"{sample(min(bad))}) is not: a layer mixing rows may have spread it"
    return f"; row {row} of the batch is sample {sample(row)}"


def _batch_context(error: MinidlError, model: Layer, where: str, start: int, stop: int,
                   order: np.ndarray | None, batch: tuple[Any, ...], close: str = "") -> None:
    """Prefix ``error``'s message with ``where`` (the call, the batch), the sample its NaN/inf or bad
    target is in (:func:`_located_row`), ``close`` and, in a model of one's own, the path to the outermost layer
    the message already places (``error._raised_in``: a backward's error, which no call of the model named):
    ``TwoBranch layer 'right': Sequential layer '1': Dense(3 -> 3).backward: ...`` (nothing when that is the
    model itself: a forward's error, named on its way out of each call)."""
    _name_part(error, model)  # (as a call of the model names a forward's error)
    _with_context(error, f"{where}{_located_row(error, start, stop, order, batch)}{close}")


def _tqdm() -> Any:
    """tqdm's progress-bar class if it is installed, else ``None``."""
    try:
        module = importlib.import_module("tqdm.auto")
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return module.tqdm


def _format_values(values: dict[str, float]) -> str:
    return " - ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in values.items())


def _run_batches(
    model: Layer,
    x: Inputs,
    y: np.ndarray,
    loss: Loss | None,
    metric_fns: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]],
    batch_size: int,
    prefix: str = "",
    first: int = 0,
) -> dict[str, float]:
    """The loss and metrics over ``x``, scored in batches and combined by :class:`_Combiner` (no
    gradients, mode as is).  ``first``: the number messages give ``x``'s first sample (a held-out part
    of the training data is numbered as in it)."""
    scorers: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}
    if loss is not None:
        scorers[prefix + "loss"] = loss
    scorers.update((prefix + name, fn) for name, fn in metric_fns)
    combined = {key: _Combiner(scorer) for key, scorer in scorers.items()}
    for start in range(0, count(x), batch_size):
        xb, yb = rows(x, start, start + batch_size), y[start:start + batch_size]
        try:
            out = model(xb)
            for c in combined.values():
                c.add(*c.score(out, yb))
        except MinidlError as error:
            stop = start + len(yb)
            _batch_context(error, model, f"samples {first + start}..{first + stop - 1}", first + start,
                           first + stop, None, (xb, yb))
            raise
    return {key: c.value() for key, c in combined.items()}


class _Combiner:
    """A loss or metric over the data from its values on the batches: the mean of the batches'
    values, each weighing its number of samples or the scorer's ``batch_weight`` (e.g. the summed
    class weights of a weighted cross-entropy, the scored samples of an accuracy that ignores
    padding), 0 when nothing was scored; for a loss whose value is a sum (``reduction="sum"``,
    ``HalfSquaredError``), the sum of the batches' values.  Either way, what one batch of all the
    data would give."""

    def __init__(self, scorer: Callable[[Any, np.ndarray], float]) -> None:
        self.scorer = scorer  # (the model's output, a tuple for one with several: Any, as a metric of one's own)
        self.summed = getattr(scorer, "reduction", None) == "sum"
        self.total = self.weight = 0.0

    def score(self, y_pred: Inputs, y_true: np.ndarray) -> tuple[float, float]:
        """The scorer's value on one batch and that value's weight: its ``batch_weight``, read at once
        (it describes the last call), else the batch's number of samples."""
        if type(y_pred) is tuple and isinstance(self.scorer, Metric):  # (it would fail on the tuple's attributes)
            raise ShapeError(f"{self.scorer.name}: the model returns {len(y_pred)} outputs (a tuple), and the "
                             "built-in metrics score one array; pass a metric of your own, a callable "
                             "metric(y_pred, y_true) -> float")
        value = float(self.scorer(y_pred, y_true))
        weight = getattr(self.scorer, "batch_weight", None)
        # (the samples of the first output for a model with several: count, not len, of a tuple)
        return value, float(count(y_pred)) if weight is None else float(weight)

    def add(self, value: float, weight: float) -> None:
        if self.summed:
            self.total += value
        else:
            self.total += value * weight
            self.weight += weight

    def value(self) -> float:
        if self.summed:
            return float(self.total)
        return float(self.total) / self.weight if self.weight else 0.0


def _parameter_names(model: Layer, loss: Any) -> dict[int, str]:
    """id of each parameter -> its dotted name in the model, or ``loss.<name>`` for the loss's own (a loss
    whose ``named_parameters()`` fails names none: this serves an error message)."""
    names = {}
    with contextlib.suppress(Exception):
        names = {id(p): f"loss.{name}" for name, p in named_loss_parameters(loss)}
    names.update((id(p), name) for name, p in model.named_parameters())
    return names


def _check_gradients(model: Layer, loss: Any, optimizer: Optimizer) -> None:
    """``check_gradients``: the check of ``optimizer.step(check_finite=True)``, naming the parameter in the model."""
    found = _non_finite_gradient(optimizer.params)
    if found is not None:
        i, bad = found
        p = optimizer.params[i]
        name = _parameter_names(model, loss).get(id(p), "?")
        raise NonFiniteError(f"the gradient of parameter '{name}' {p.shape} holds {bad} NaN/inf value(s) though "
                             "the loss is finite; this batch's update was not applied")


def _gradient_check(model: Layer, loss: Loss, xb: Inputs, yb: np.ndarray, samples: int, seed: int,
                    positions: np.ndarray) -> None:
    """Run the :class:`~minidl.GradientChecker` on the batch's first ``samples`` samples, with the parameters
    as they are (the checker works on a float64 copy and changes nothing); ``GradientCheckError`` with its
    report, and how to run it again, if the back-pass disagrees with central differences there.
    ``positions``: the batch's samples' positions in ``fit``'s ``x``."""
    k = min(samples, count(xb))
    what = f"the gradient check (gradcheck_every) on this batch's first {k} sample(s)"
    try:
        report = GradientChecker(model, loss, inputs=rows(xb, 0, k), targets=yb[:k], seed=seed).run()
    except MinidlError as error:  # (the checker's own refusal: said to come from the check, not the training)
        _with_context(error, what)
        raise
    if not report.passed:
        checked = positions[:k]
        i = str([int(p) for p in checked]) if k <= 16 else "error.samples"
        inputs = f"tuple(a[{i}] for a in x)" if type(xb) is tuple else f"x[{i}]"
        failure = GradientCheckError(
            f"{what}, with the parameters before its update, failed: the back-pass disagrees with central "
            f"differences there. The model is left as it was then; to check it again on those samples: "
            f"GradientChecker(model, loss, inputs={inputs}, targets=y[{i}], seed={seed}, check_layers=True).run() "
            f"(check_layers checks each layer alone)\n{report}")
        failure.report, failure.samples = report, checked
        raise failure


# ---------------------------------------------------------------------------------------------- fit
#: the ``step`` methods of minidl's optimizers, which take ``zero_grad``
_OWN_STEPS = (Optimizer.step, SGD.step)


def _zeroing_step(optimizer: Optimizer) -> Callable[[], None]:
    """``optimizer.step(zero_grad=True)``, or ``optimizer.step()`` then ``optimizer.zero_grad()`` for
    a ``step`` overridden without that argument: either way the gradients read zero after it."""
    step = optimizer.step
    takes_zero_grad = type(step) is MethodType and step.__func__ in _OWN_STEPS  # (minidl's own: nothing to read)
    if not takes_zero_grad:
        with contextlib.suppress(TypeError, ValueError):  # (no signature to read: a builtin or C callable)
            # not through functools.wraps: a wrapper of step() that takes no arguments must get none
            takes_zero_grad = "zero_grad" in inspect.signature(step, follow_wrapped=False).parameters
    if takes_zero_grad:
        return lambda: optimizer.step(zero_grad=True)

    def step_then_zero() -> None:
        optimizer.step()
        optimizer.zero_grad()

    return step_then_zero


def _check_fit_objects(who: str, model: Any, loss: Any, optimizer: Any, scheduler: Any,
                       scheduler_interval: str) -> bool:
    """Refuse a ``model``, ``loss``, ``optimizer`` or ``scheduler`` of the wrong kind, or a scheduler of another
    optimizer or of an interval it cannot step at; True when the scheduler steps every batch."""
    if not isinstance(model, Layer):
        raise TypeError(f"{who}: model must be a Layer, got {type(model).__name__}")
    if not isinstance(loss, Loss):
        given = f"the class {loss.__name__}" if isinstance(loss, type) else type(loss).__name__
        raise TypeError(f"{who}: loss must be a minidl Loss instance (e.g. CrossEntropyLoss()), got {given}")
    if not isinstance(optimizer, Optimizer):
        given = f"the class {optimizer.__name__}" if isinstance(optimizer, type) else type(optimizer).__name__
        raise TypeError(f"{who}: optimizer must be a minidl Optimizer instance (e.g. "
                        f"Adam(model.parameters())), got {given}")
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError(f"{who}: scheduler must be an LRScheduler, got {type(scheduler).__name__}")
    if scheduler is not None and scheduler.optimizer is not optimizer:
        raise ValueError(f"{who}: the scheduler drives a different optimizer than the one passed")
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError(f"{who}: scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    per_batch = scheduler is not None and scheduler_interval == "batch"
    if per_batch and isinstance(scheduler, ReduceLROnPlateau):
        raise ValueError(f"{who}: ReduceLROnPlateau steps on an epoch's figures, so it cannot step every batch "
                         "(scheduler_interval='batch'); use scheduler_interval='epoch'")
    return per_batch


#: what ``fit(..., callbacks=[...])`` calls at the end of each epoch: ``f(epoch, history)``, True to stop training
Callback = Callable[[int, History], bool | None]


def _callback_name(fn: Any) -> str:
    """A callback's name for messages: its ``__name__`` (``<lambda>`` for a lambda), else its class's."""
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def _check_callbacks(who: str, callbacks: Any) -> tuple[tuple[str, Callback], ...]:
    """``callbacks`` (None, one callable, or a sequence of them) as ``((name, callable), ...)``; a ``TypeError``
    naming the item that is no callable, or whose signature cannot take ``(epoch, history)``."""
    if callbacks is None:
        return ()
    if callable(callbacks):
        callbacks = [callbacks]
    elif isinstance(callbacks, (str, bytes, Mapping)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"{who}: callbacks must be a list of callables f(epoch, history) -> bool | None, got "
                        f"{type(callbacks).__name__}")
    resolved: list[tuple[str, Callback]] = []
    for i, fn in enumerate(list(callbacks)):
        if not callable(fn):
            raise TypeError(f"{who}: callbacks[{i}] must be a callable f(epoch, history) -> bool | None, got "
                            f"{type(fn).__name__} {short_repr(fn)}")
        name = _callback_name(fn)
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature to read (a builtin): found out at the first call
            signature = None
        if signature is not None:
            try:
                signature.bind(0, None)
            except TypeError as error:
                raise TypeError(f"{who}: callbacks[{i}] ({name}) cannot be called as f(epoch, history), the two "
                                f"arguments fit passes it: {error} (its signature is {name}{signature})") from None
        resolved.append((name, fn))
    return tuple(resolved)


def _check_epochs(who: str, epochs: Any, initial_epoch: Any) -> tuple[int, int]:
    """``epochs`` (the number of the last epoch) and ``initial_epoch`` (the epochs done before), checked."""
    epochs = _positive_int(who, "epochs", epochs, minimum=0)
    if isinstance(initial_epoch, bool) or not is_integer(initial_epoch) or not 0 <= initial_epoch <= epochs:
        raise ValueError(f"{who}: initial_epoch must be an int in [0, epochs], the epochs done before this fit "
                         f"(epochs is the number of the last epoch, as in Keras: fit(..., initial_epoch=2, epochs=5) "
                         f"trains epochs 3 to 5), got initial_epoch={initial_epoch!r} with epochs={epochs}")
    return epochs, int(initial_epoch)


def _check_trained_parameters(who: str, model: Layer, loss: Loss, optimizer: Optimizer,
                              trains: bool) -> tuple[list[Parameter], list[tuple[str, Parameter]]]:
    """Refuse an optimizer that holds none of the model's parameters (nor one of the loss's: a frozen model's
    temperature), a loss with trainable parameters nothing trains, and, when the fit ``trains`` an epoch, one
    that would train nothing; returns the model's parameters and the loss's named ones."""
    model_params = model.parameters()
    own = {id(p) for p in model_params}
    loss_named = named_loss_parameters(loss)
    loss_own = {id(p) for _, p in loss_named}
    if not any(id(p) in own or id(p) in loss_own for p in optimizer.params):
        raise ValueError(f"{who}: the optimizer holds none of this model's parameters "
                         "(was it built on another model, or before the model was copied?)")
    # (a loss's own parameter, a learnable scale, that nothing trains; not one of a layer it holds: a critic
    # trained by a fit of its own)
    trained_apart = {id(p) for _, v in _held_objects(loss) if isinstance(v, Layer) for p in v.parameters()}
    held = {id(p) for p in optimizer.params} | own | trained_apart
    untrained = [f"'{name}'" for name, p in loss_named if p.requires_grad and id(p) not in held]
    if untrained:
        raise ValueError(f"{who}: the loss {type(loss).__name__} holds trainable parameter(s) {', '.join(untrained)} "
                         "that the optimizer does not, so they would never be trained: give them to it, e.g. "
                         f"{type(optimizer).__name__}([*model.parameters(), *loss.parameters()], ...), or freeze "
                         "them (p.requires_grad = False)")
    if trains:  # (epochs=0, or initial_epoch=epochs: no epoch, no step, nothing to refuse)
        _refuse_nothing_to_train(who, model, loss, optimizer, model_params, loss_named)
    ours = own | trained_apart | loss_own
    foreign = [p for p in optimizer.params if id(p) not in ours]
    if foreign:  # (a layer replaced after the optimizer was built: its new parameters would not train)
        shapes = ", ".join(str(p.shape) for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        warnings.warn(f"{who}: the optimizer holds {len(foreign)} parameter(s) that are neither this model's nor "
                      f"its loss's (shapes {shapes}), so fit gives them no gradient; was a layer replaced after "
                      f"the optimizer was built? Then its new parameters are not trained: build the optimizer on "
                      f"model.parameters() after the last change", UserWarning, stacklevel=user_stacklevel())
    return model_params, loss_named


def _refuse_nothing_to_train(who: str, model: Layer, loss: Loss, optimizer: Optimizer,
                             model_params: list[Parameter], loss_named: list[tuple[str, Parameter]]) -> None:
    """Refuse a fit that would train nothing: every parameter of the model frozen and none of the loss's
    trainable ones in the optimizer (PyTorch stops at ``backward``: "element 0 of tensors does not require
    grad"), or an optimizer that holds only frozen ones of the model's and the loss's."""
    held = {id(p) for p in optimizer.params}
    if any(p.requires_grad and id(p) in held for p in [*model_params, *(p for _, p in loss_named)]):
        return
    # (what the messages end with: a run for its scores or its statistics, which needs no training)
    instead = ("; to score the model without training it, model.evaluate(x, y, loss=...); to refresh running "
               "statistics (a batch norm's) without training, model.train() then model(xb) for each batch")
    if any(p.requires_grad for p in model_params):
        names = [f"'{name}'" for name, p in model.named_parameters() if p.requires_grad]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise ValueError(f"{who}: every parameter of this model that the optimizer holds is frozen "
                         f"(requires_grad=False), so fit would train nothing; the trainable ones, {shown}, are not "
                         f"in it: build the optimizer on all of them, e.g. "
                         f"{type(optimizer).__name__}(model.parameters(), ...), which skips the frozen ones{instead}")
    n = len(model_params)
    frozen = (f"its {n} parameters are all frozen" if n > 1 else "its one parameter is frozen" if n
              else "it has none")
    of_loss = f", nor any of the loss {type(loss).__name__}'s that the optimizer holds" if loss_named else ""
    raise ValueError(f"{who}: no parameter of the model requires a gradient ({frozen}, requires_grad=False)"
                     f"{of_loss}, so fit would train nothing (PyTorch stops at backward: \"element 0 of tensors "
                     f"does not require grad\"): unfreeze the model with model.requires_grad_(True), or only the "
                     f"layers to train with layer.requires_grad_(True) (e.g. model[-1] of a Sequential), before "
                     f"fit{instead}")


class _Split(NamedTuple):
    """What :func:`_split_data` makes of ``(x, y)`` and the validation arguments."""

    x: Inputs  # (N, ...) the samples to train on
    y: np.ndarray  # (N, ...) their targets
    validation_data: Any  # validation_split's held-out samples, else validation_data as given (unchecked)
    val_source: str  # what the messages call the validation data
    val_first: int  # the number of the validation data's first sample in messages
    held_out: str  # what the messages add to "N samples" (with validation_split)


def _split_data(who: str, model: Layer, x: Any, y: Any, validation_data: Any, validation_split: Any) -> _Split:
    """``(x, y)`` checked and, with ``validation_split``, split: the samples to train on and the held-out ones
    (:class:`_Split`)."""
    if not (is_number(validation_split) and 0.0 <= validation_split < 1.0):
        raise ValueError(f"{who}: validation_split must be a number in [0, 1), got {validation_split!r}")
    split = float(validation_split)  # (a float16 fraction would compute in float16)
    if split and validation_data is not None:
        raise ValueError(f"{who}: give validation_data or validation_split, not both")
    x, y = _check_data(model, x, y, who)
    held_out = ""  # what the messages add to "N samples" (with validation_split)
    val_first = 0  # the number of the validation data's first sample in messages
    if split:  # Keras's rule: the last samples, before any shuffling
        total = count(x)
        kept = math.floor(total * (1.0 - split))
        if not 0 < kept < total:
            raise ValueError(f"{who}: validation_split={validation_split!r} of {total} sample(s) leaves "
                             f"{kept} to train on and {total - kept} to validate on; each needs at least one")
        validation_data = (rows(x, kept, total), y[kept:])
        x, y = rows(x, 0, kept), y[:kept]
        held_out, val_first = f" (the first {kept} of x; validation_split holds out the other {total - kept})", kept
    val_source = "validation_split's held-out samples (the end of x)" if split else "validation_data"
    return _Split(x, y, validation_data, val_source, val_first, held_out)


def _check_schedule_length(who: str, scheduler: LRScheduler | None, per_batch: bool, trained: int,
                           n_batches: int) -> None:
    """Refuse a schedule that cannot step past its end (``total_steps``) when this fit would step it further, or
    that is made to step every batch while it would step every epoch."""
    limit = getattr(scheduler, "total_steps", None)  # a schedule that cannot step past its end (OneCycleLR)
    if scheduler is not None and limit is not None:  # refused before anything (early stopping's record) changes
        if not per_batch and n_batches > 1 and limit == scheduler.last_epoch + trained * n_batches:
            raise ValueError(
                f"{who}: the {type(scheduler).__name__} has total_steps={limit}, this fit's {trained} epoch(s) x "
                f"{n_batches} batches: it is made to step every batch, but scheduler_interval is 'epoch', so it "
                f"would take {trained} of its {limit} steps; pass scheduler_interval='batch'")
        planned = trained * (n_batches if per_batch else 1)
        if scheduler.last_epoch + planned > limit:
            raise ValueError(
                f"{who}: the {type(scheduler).__name__} has total_steps={limit} and has stepped "
                f"{scheduler.last_epoch} time(s), but this fit steps it {planned} more time(s) ({trained} epoch(s)"
                f"{f' x {n_batches} batch(es)' if per_batch else ''}); make it with total_steps >= "
                f"{scheduler.last_epoch + planned}")


def _check_validation_data(who: str, model: Layer, validation_data: Any) -> tuple[Inputs, np.ndarray] | None:
    """``validation_data`` checked as a pair ``(x_val (M, ...), y_val (M, ...))``; None without it."""
    val: tuple[Inputs, np.ndarray] | None = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            given = f"a {type(validation_data).__name__}" + (
                f" of {len(validation_data)} item(s)" if isinstance(validation_data, (tuple, list)) else "")
            raise TypeError(f"{who}: validation_data must be a pair (x_val, y_val), got {given}")
        val = _check_data(model, validation_data[0], validation_data[1], who, "validation ")
    return val


class _Monitors(NamedTuple):
    """What :func:`_resolve_monitors` makes of the metrics and the watchers' monitors."""

    metrics: Any  # as given, a sequence made a list
    metric_fns: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]]  # its (name, fn) pairs
    decided: list[tuple[Any, str]]  # each watcher with mode="auto" and its direction


def _resolve_monitors(who: str, metrics: Any, loss: Loss, val: Any, early_stopping: EarlyStopping | None,
                      scheduler: LRScheduler | None) -> _Monitors:
    """The metrics resolved, and the monitors of ``early_stopping`` and a ``ReduceLROnPlateau`` checked against the
    figures this fit records (:class:`_Monitors`)."""
    if metrics is not None and not isinstance(metrics, (str, Metric)) and not callable(metrics):
        metrics = list(metrics)  # kept for evaluate() below: an iterator would be used up by then
    metric_fns = _resolve_metrics(metrics, loss, who)
    keys = ["loss", *(name for name, _ in metric_fns)]
    keys += [f"val_{k}" for k in keys] if val is not None else []
    for watcher in (early_stopping, scheduler):  # a monitor is refused now, not after the first epoch's work
        if isinstance(watcher, (EarlyStopping, ReduceLROnPlateau)) and watcher.monitor not in keys:
            close = difflib.get_close_matches(watcher.monitor, keys, n=1)
            hint = " (val_ figures need validation_data or validation_split)" \
                if watcher.monitor.startswith("val_") and val is None else \
                " (as a figure: the history's lr is the schedule's, not the model's)" \
                if watcher.monitor == "lr" else f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{who}: {type(watcher).__name__} monitors {watcher.monitor!r}, which this fit "
                             f"does not record{hint}; it records {keys}")
    decided: list[tuple[Any, str]] = []  # mode="auto" decided by this fit's metrics, set when it begins
    for watcher in (early_stopping, scheduler):
        if isinstance(watcher, (EarlyStopping, ReduceLROnPlateau)) and watcher._mode_auto:
            try:
                direction = _declared_direction(watcher.monitor, metric_fns) or monitor_direction(watcher.monitor)
            except ValueError as error:
                raise ValueError(f"{who}: {error}") from None
            if direction is None:
                raise ValueError(unknown_direction(f"{who}: {type(watcher).__name__}", watcher.monitor))
            if isinstance(watcher, ReduceLROnPlateau) and watcher.last_epoch > 0 and direction != watcher.mode:
                raise ValueError(f"{who}: the ReduceLROnPlateau's mode='auto' was decided {watcher.mode!r} for "
                                 f"{watcher.monitor!r} and it has stepped (its best value is of that direction), but "
                                 f"this fit's metrics say {direction!r}; make a new ReduceLROnPlateau")
            decided.append((watcher, direction))
    return _Monitors(metrics, metric_fns, decided)


def _check_resumable(who: str, model: Layer, early_stopping: EarlyStopping | None, scheduler: LRScheduler | None,
                     initial_epoch: int) -> None:
    """Refuse an ``EarlyStopping`` loaded from a run whose last epoch is not ``initial_epoch``, or whose best weights
    (``best_state``, restored into ``model`` at the end) do not fit ``model``, or a scheduler that cannot step
    (inside another schedule, or its lr changed by another hand)."""
    if early_stopping is not None and initial_epoch and early_stopping._resume \
            and early_stopping._epoch != initial_epoch:
        raise ValueError(f"{who}: initial_epoch={initial_epoch}, but the EarlyStopping goes on from a loaded run whose "
                         f"last epoch was {early_stopping._epoch}; pass initial_epoch={early_stopping._epoch} (or 0: "
                         "it then numbers this fit's epochs after its run)")
    if early_stopping is not None and early_stopping._resume and early_stopping.restore_best_weights \
            and early_stopping.best_state is not None:
        try:  # checked now (nothing loaded), as the restore at the end would, not after every epoch trained
            model._checked_state(early_stopping.best_state)
        except StateDictError as error:
            _with_context(error, f"{who}: the EarlyStopping goes on from a loaded run whose best weights "
                                 "(best_state), which restore_best_weights loads at the end, do not fit this model; "
                                 "nothing was trained")
            raise
    if scheduler is not None and not isinstance(scheduler, ReduceLROnPlateau):
        try:  # a schedule inside another, or an lr another hand changed, is refused now, not after an epoch
            scheduler._check_can_step()
        except RuntimeError as error:
            raise RuntimeError(f"{who}: {error}") from None


@dataclass(frozen=True, slots=True)
class _FitPlan:
    """``fit``'s arguments checked and resolved by :func:`_plan_fit` (named as ``fit``'s, with what follows from
    them); read-only."""

    epochs: int
    initial_epoch: int
    trained: int  # the epochs this fit trains
    batch_size: int
    validation_batch_size: int
    verbose: int
    x: Inputs  # (N, ...) the samples to train on (without validation_split's held-out ones)
    y: np.ndarray  # (N, ...) their targets
    n: int  # N
    n_batches: int  # the batches of an epoch
    val: tuple[Inputs, np.ndarray] | None  # (x_val (M, ...), y_val (M, ...)), or None: no validation
    val_source: str  # what the messages call the validation data: validation_data, or validation_split's samples
    val_first: int  # the number of the validation data's first sample in messages
    metrics: Any  # as given, a sequence made a list (the last fit's, for evaluate())
    metric_fns: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]]
    decided: list[tuple[Any, str]]  # mode="auto" decided by this fit's metrics, set when it begins
    scheduler: LRScheduler | None
    per_batch: bool  # the scheduler steps every batch
    early_stopping: EarlyStopping | None
    shuffle: bool
    generator: np.random.Generator | None  # the shuffling's (None without shuffling)
    check_gradients: bool
    clip_grad_norm: float | None
    gradcheck_every: int  # 0 for no gradient check
    gradcheck_samples: int
    model_params: list[Parameter]
    loss_named: list[tuple[str, Parameter]]  # the loss's own parameters, by name
    callbacks: tuple[tuple[str, Callback], ...]  # (name, callable), called in turn after each epoch

    @property
    def first_epoch(self) -> int:
        """The number of this fit's first epoch."""
        return self.initial_epoch + 1


def _plan_fit(who: str, model: Layer, x: Inputs, y: np.ndarray, loss: Loss, optimizer: Optimizer, *, epochs: int,
              initial_epoch: int, batch_size: int, validation_data: tuple[Inputs, np.ndarray] | None,
              validation_split: float, metrics: Sequence[MetricLike] | None, shuffle: bool, rng: RNGLike,
              scheduler: LRScheduler | None, scheduler_interval: str, verbose: int, validation_batch_size: int,
              check_gradients: bool, drop_last: bool, clip_grad_norm: float | None,
              early_stopping: EarlyStopping | None, gradcheck_every: int | None, gradcheck_samples: int,
              callbacks: Sequence[Callback] | None = None) -> _FitPlan:
    """``fit``'s arguments checked, in the order its messages are raised, and resolved (before anything changes):
    the data split and cast, the metrics, the monitors and the schedule checked against this fit."""
    per_batch = _check_fit_objects(who, model, loss, optimizer, scheduler, scheduler_interval)
    epochs, initial_epoch = _check_epochs(who, epochs, initial_epoch)
    trained = epochs - initial_epoch  # the epochs this fit trains
    batch_size = _positive_int(who, "batch_size", batch_size)
    validation_batch_size = _positive_int(who, "validation_batch_size", validation_batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"{who}: verbose must be 0, 1 or 2, got {verbose!r}")
    if isinstance(early_stopping, EarlyStopping) and early_stopping.loaded_stopped_run:
        trained = 0  # (a checkpoint of the epoch its early stopping stopped: the run ends as it did, no epoch more)
    model_params, loss_named = _check_trained_parameters(who, model, loss, optimizer, trained > 0)
    drop_last = switch(drop_last, "drop_last", who)
    if clip_grad_norm is not None and not (is_number(clip_grad_norm) and 0 <= clip_grad_norm < math.inf):
        raise ValueError(f"{who}: clip_grad_norm must be None or a finite number >= 0, got {clip_grad_norm!r}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"{who}: early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}")
    checked_callbacks = _check_callbacks(who, callbacks)
    data = _split_data(who, model, x, y, validation_data, validation_split)
    n = count(data.x)
    if drop_last and trained and n < batch_size:
        raise ValueError(f"{who}: drop_last=True with {n} samples{data.held_out} and batch_size {batch_size} "
                         "leaves no batch")
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    _check_schedule_length(who, scheduler, per_batch, trained, n_batches)
    val = _check_validation_data(who, model, data.validation_data)
    monitors = _resolve_monitors(who, metrics, loss, val, early_stopping, scheduler)
    _check_resumable(who, model, early_stopping, scheduler, initial_epoch)
    shuffle = switch(shuffle, "shuffle", who)
    check_gradients = switch(check_gradients, "check_gradients", who)
    gradcheck_every = 0 if gradcheck_every is None else _positive_int(who, "gradcheck_every", gradcheck_every)
    # At least 2, since one sample cannot show a backward wrong in its sums over the batch; the checker's own
    # default batch is 4.
    gradcheck_samples = _positive_int(who, "gradcheck_samples", gradcheck_samples, minimum=2)
    generator = None  # (without shuffling, fit draws nothing: rng is only checked)
    if shuffle:
        generator = as_generator(rng, who)
    else:
        _check_rng(rng, who)
    return _FitPlan(epochs=epochs, initial_epoch=initial_epoch, trained=trained, batch_size=batch_size,
                    validation_batch_size=validation_batch_size, verbose=verbose, x=data.x, y=data.y, n=n,
                    n_batches=n_batches, val=val, val_source=data.val_source, val_first=data.val_first,
                    metrics=monitors.metrics, metric_fns=monitors.metric_fns, decided=monitors.decided,
                    scheduler=scheduler, per_batch=per_batch, early_stopping=early_stopping,
                    shuffle=shuffle, generator=generator, check_gradients=check_gradients,
                    clip_grad_norm=clip_grad_norm, gradcheck_every=gradcheck_every, gradcheck_samples=gradcheck_samples,
                    model_params=model_params, loss_named=loss_named, callbacks=checked_callbacks)


class _Training:
    """One ``fit``'s training, step by step, on a checked :class:`_FitPlan`: the objects the steps use, bound
    once; :meth:`begin`; each epoch's start (:meth:`start_epoch`), batches (:meth:`train_batches`, the loop
    that is timed), validation (:meth:`validate`) and end (:meth:`end_epoch`: the history, the scheduler, the
    bar or line, the early stopping); and, when an error stops it, what it says and puts back
    (:meth:`after_error`)."""

    # The epoch running, set by start_epoch: its order of the samples ((N,) positions in x when shuffling, else
    # None: in turn) and the combiners of its loss and its metrics.
    order: np.ndarray | None
    epoch_loss: _Combiner
    epoch_metrics: list[_Combiner]

    def __init__(self, who: str, plan: _FitPlan, model: Layer, loss: Loss, optimizer: Optimizer) -> None:
        self.who, self.plan, self.model, self.loss, self.optimizer = who, plan, model, loss, optimizer
        self.history = History({"epochs": plan.epochs, "batch_size": plan.batch_size, "samples": plan.n,
                                "steps": plan.n_batches})
        # Gradients of every parameter the step can touch (frozen ones, and the loss's, too: none piles up).
        loss_params = [p for _, p in plan.loss_named]
        self.to_zero: list[Parameter] = list(
            {id(p): p for p in [*plan.model_params, *optimizer.params, *loss_params]}.values())
        self.backward = parameter_backward(model)  # model.backward_params unless that would bypass a custom backward
        self.clip_named: list[tuple[str, Parameter]] = []
        if plan.clip_grad_norm is not None:  # the optimizer's parameters, by their names in the model for messages
            dotted = _parameter_names(model, loss)
            self.clip_named = [(f"'{dotted[id(p)]}'" if id(p) in dotted else f"{i} of the optimizer", p)
                               for i, p in enumerate(optimizer.params)]
        self.step = _zeroing_step(optimizer)
        side_state = state_of(model)  # buffers and generators a refused batch must not leave changed
        assert side_state is not None  # (a model without registries is refused above)
        self.side_state = side_state
        # The flag put back after each batch's calls; it is True when fit runs inside a call that saved.
        self.calls_saved = calls.saved
        self.tqdm = _tqdm() if plan.verbose == 1 else None
        self.names = [name for name, _ in plan.metric_fns]
        self.begun = False  # begin() has run: at the first accepted batch, or at once when there are no epochs
        # The epoch running, set by start_epoch (with self.order, self.epoch_loss, self.epoch_metrics: see above):
        self.bar: Any = None  # its progress bar (verbose=1 with tqdm), until its last show
        self.postfix_every = 1  # the bar's batches between two shows of the running loss
        # the generator's state at its start, until the epoch is in the history: put back when the fit raises, so
        # that it is as at the start of the epoch the error stopped
        self.epoch_state: Mapping[str, Any] | None = None

    def validate_first(self) -> None:
        """Score the validation data once, in eval mode, before any update (the generators and buffers as they were
        after it)."""
        plan, model = self.plan, self.model
        assert plan.val is not None
        snapshot = self.side_state.save()
        try:
            calls.saved = True  # (this save covers the model's calls: they save nothing more)
            with _mode(model, False):
                _run_batches(model, plan.val[0], plan.val[1], self.loss, plan.metric_fns, plan.validation_batch_size,
                             first=plan.val_first)
        except MinidlError as error:
            _with_context(error, f"{self.who}: {plan.val_source} (scored before training, nothing was updated)")
            _stopped_in(error, self.history, None, None)
            raise
        finally:
            calls.saved = self.calls_saved
            restore(snapshot)  # the generators and buffers as they were

    def begin(self) -> None:
        """What outlives the call changes only once it trains: at its first accepted batch (some bad
        data, a wrong dtype or width, only shows there), or at once when there are no epochs."""
        plan = self.plan
        for watcher, direction in plan.decided:
            watcher._decide(direction)
        if plan.early_stopping is not None:
            plan.early_stopping.start(plan.initial_epoch)
        # Remembered so that evaluate(x, y) without a loss can score like the last fit.
        object.__setattr__(self.model, "_fit_defaults", (self.loss, plan.metrics))
        self.begun = True

    def start_epoch(self, epoch: int) -> None:
        """Set up epoch ``epoch``: its order of the samples (``self.order``), the combiners of its loss and its
        metrics (``self.epoch_loss``, ``self.epoch_metrics``) and its progress bar (``self.bar``, with verbose=1
        and tqdm)."""
        plan = self.plan
        if plan.generator is not None:  # (shuffling)
            self.epoch_state = plan.generator.bit_generator.state
            self.order = plan.generator.permutation(plan.n)
        else:
            self.order = None
        self.epoch_loss = _Combiner(self.loss)
        self.epoch_metrics = [_Combiner(fn) for _, fn in plan.metric_fns]
        self.bar = None
        if self.tqdm is not None:
            self.bar = self.tqdm(total=plan.n_batches, desc=f"Epoch {epoch}/{plan.epochs}", unit="batch",
                                 leave=True, dynamic_ncols=True, file=sys.stderr)
            self.postfix_every = max(1, plan.n_batches // 20)

    def train_batches(self, epoch: int) -> None:
        """Epoch ``epoch``'s steps, each on the batch of x (N, ...) and y (N, ...) at the next ``batch_size``
        positions of ``self.order`` ((N,), or None: in turn), into ``self.epoch_loss`` and ``self.epoch_metrics``.
        A refused batch's update is not applied (:meth:`refuse_batch` says which it was)."""
        # (what the batches read, bound once as locals)
        plan = self.plan
        # the batches: the data, cut at the epoch's order
        x, y, n, batch_size, n_batches, order = plan.x, plan.y, plan.n, plan.batch_size, plan.n_batches, self.order
        # a step: the forward, the backward, the update; the gradients zeroed before it, the side state a refused
        # one puts back
        model, loss, backward, optimizer, step = self.model, self.loss, self.backward, self.optimizer, self.step
        to_zero, side_state, calls_saved = self.to_zero, self.side_state, self.calls_saved
        # the checks before the update: the gradient check (its batches counted over the fit), the finite
        # gradients, the clipping
        gradcheck_every, gradcheck_samples, first = plan.gradcheck_every, plan.gradcheck_samples, plan.first_epoch
        check_gradients, clip_grad_norm, clip_named = plan.check_gradients, plan.clip_grad_norm, self.clip_named
        # after an accepted batch: a per-batch scheduler step, the epoch's figures, the bar
        scheduler, per_batch = plan.scheduler, plan.per_batch
        epoch_loss, epoch_metrics = self.epoch_loss, self.epoch_metrics
        bar, postfix_every = self.bar, self.postfix_every
        begun, b = self.begun, 0  # b is the batch running, for an error between two batches' try
        try:
            for b in range(n_batches):
                start = b * batch_size
                stop = min(start + batch_size, n)
                if order is None:
                    xb, yb = rows(x, start, stop), y[start:stop]
                else:
                    idx = order[start:stop]
                    xb, yb = take_rows(x, idx), y.take(idx, axis=0)  # = y[idx], a bit faster
                for p in to_zero:
                    p.zero_grad()
                snapshot = side_state.save()
                stepping = False  # True inside the optimizer's step, where an interrupted update may be partial
                try:
                    calls.saved = True  # this save covers the model's calls, so they save nothing more
                    if gradcheck_every:
                        in_fit = (epoch - first) * n_batches + b  # the batch's number in the fit, from 0
                        if in_fit % gradcheck_every == 0:
                            _gradient_check(model, loss, xb, yb, gradcheck_samples, in_fit,
                                            np.arange(start, stop) if order is None else order[start:stop])
                    out = model(xb)
                    batch_loss, loss_weight = epoch_loss.score(out, yb)
                    if not math.isfinite(batch_loss):
                        raise NonFiniteError(
                            f"the loss is {batch_loss} on this batch; this batch's update was not "
                            "applied, so the parameters are those after the previous batch "
                            "(try a smaller learning rate, or check the data and the loss)"
                        )
                    # the metrics before the update, so that one that cannot score refuses the batch
                    scores = [c.score(out, yb) for c in epoch_metrics]
                    grad = loss.backward()
                    # A built-in loss's gradient is always right, so for it this test costs two comparisons.
                    if type(grad) is not np.ndarray or type(out) is not np.ndarray or grad.shape != out.shape \
                            or grad.dtype != out.dtype:
                        check_loss_gradient(loss, out, grad)
                    backward(grad)
                    if check_gradients:
                        _check_gradients(model, loss, optimizer)
                    if clip_grad_norm is not None:
                        _clip_norm("clip_grad_norm", clip_named, float(clip_grad_norm), 2.0, True)
                    stepping = True
                    step()
                    stepping = False
                    calls.saved = calls_saved
                except BaseException as error:  # the batch is refused, whatever stopped it
                    calls.saved = calls_saved
                    restore(snapshot)
                    self.refuse_batch(error, epoch, b, start, stop, order, (xb, yb), stepping)
                    raise
                if not begun:
                    self.begin()
                    begun = True
                if per_batch and scheduler is not None:
                    scheduler.step()
                epoch_loss.add(batch_loss, loss_weight)
                for c, (value, weight) in zip(epoch_metrics, scores, strict=True):
                    c.add(value, weight)
                if bar is not None:
                    bar.update(1)
                    if b % postfix_every == 0:
                        bar.set_postfix_str(f"loss: {epoch_loss.value():.4f}", refresh=False)
        except BaseException as error:
            # An error no batch's refusal marked was raised between batches: by a per-batch scheduler step or
            # the progress bar.
            if getattr(error, "history", None) is not self.history:
                _stopped_in(error, self.history, epoch, b + 1)
            raise

    def refuse_batch(self, error: BaseException, epoch: int, b: int, start: int, stop: int, order: np.ndarray | None,
                     batch: tuple[Any, ...], stepping: bool) -> None:
        """Say in ``error`` where it stopped the fit: epoch ``epoch``, batch ``b`` (0-based) at positions
        ``start..stop-1`` of ``order`` ((N,), or None: of x), ``batch`` its ``(xb, yb)``; ``stepping``: inside
        the optimizer's step.  Then ``error.history``, ``error.epoch`` and ``error.batch``."""
        plan, who, model, first = self.plan, self.who, self.model, self.plan.first_epoch
        epochs, n_batches, batch_size, n = plan.epochs, plan.n_batches, plan.batch_size, plan.n
        where = (f"{who}: epoch {epoch}/{epochs}, batch {b + 1}/{n_batches} "
                 f"(samples {start}..{stop - 1} of the epoch's order")
        applied = (epoch - first) * n_batches + b  # the batches of this fit before this one
        before = f"; the {applied} batch(es) of this fit before it were applied" if applied else ""
        if isinstance(error, MinidlError):
            short = "" if not (isinstance(error, ShapeError) and stop - start < batch_size < n) \
                else (f"; this epoch's last batch has only {stop - start} sample(s): drop_last=True "
                      "skips it")
            _batch_context(error, model, f"{where}{short}", start, stop, order, batch, ")")
            if isinstance(error, ShapeError) and not applied:
                _with_suffix(error, _one_sample(model, plan.x))
            if applied and not isinstance(error, GradientCheckError):  # (its message has its own)
                _with_suffix(error, f" ({applied} batch(es) of this fit were applied before this "
                                    "one, which was not)")
        elif isinstance(error, Exception) and hasattr(error, "add_note"):  # Python 3.11+
            # a user's error keeps its message; the traceback shows where fit was
            # (inside the optimizer's step only the optimizer knows what it updated)
            error.add_note(f"(raised in {where}); " + (
                "inside the optimizer's step" if stepping else "this batch's update was not applied")
                + f"{before})")
        # the epochs completed so far, whatever stopped the batch (a Ctrl-C, a user's error)
        _stopped_in(error, self.history, epoch, b + 1)

    def validate(self, epoch: int) -> dict[str, float]:
        """The ``val_*`` loss and metrics on the validation data after epoch ``epoch``'s training, in eval mode."""
        plan, model = self.plan, self.model
        assert plan.val is not None
        model.eval()
        try:
            return _run_batches(model, plan.val[0], plan.val[1], self.loss, plan.metric_fns,
                                plan.validation_batch_size, prefix="val_", first=plan.val_first)
        except BaseException as error:  # e.g. NaN weights: the last batch's gradient was not finite
            where = (f"{self.who}: epoch {epoch}/{plan.epochs}, validation after the epoch's training (its "
                     "updates were applied; it is not in error.history)")
            _say_where(error, where)
            # the epochs completed so far, whatever stopped the validation (a Ctrl-C, a user's metric)
            _stopped_in(error, self.history, epoch, None)
            raise

    def end_epoch(self, epoch: int, values: dict[str, float], seconds: float, rate: float) -> bool:
        """End epoch ``epoch``: its ``values`` into the history, then an epoch's scheduler step, the bar's last show
        or the epoch's line (``rate``: samples/s), and the early stopping's update: True when it says stop."""
        plan = self.plan
        self.history._append(epoch, seconds, values)
        self.epoch_state = None  # (the epoch is in the history: the generator stays past it)
        if isinstance(plan.scheduler, ReduceLROnPlateau):
            plan.scheduler.step(values[plan.scheduler.monitor])
        elif plan.scheduler is not None and not plan.per_batch:
            plan.scheduler.step()
        if self.bar is not None:
            shown = {k: v for k, v in values.items() if k != "lr"}
            self.bar.set_postfix_str(_format_values(shown) + f" - {rate:.0f} samples/s", refresh=False)
            self.bar.close()
            self.bar = None
        elif plan.verbose:
            print(f"Epoch {epoch}/{plan.epochs} - {seconds:.2f}s - {rate:.0f} samples/s - "
                  + _format_values(values), flush=True)
        stop = bool(plan.early_stopping is not None and plan.early_stopping.update(epoch, values, self.model))
        if stop and epoch < plan.epochs:  # (a stop asked at the last epoch stops nothing)
            self.history.stopped_epoch, self.history.stopped_by = epoch, "early_stopping"
        return stop

    def call_back(self, epoch: int) -> bool:
        """Call each of ``fit``'s callbacks, in order, as ``f(epoch, history)`` after epoch ``epoch`` ended (in the
        history; the scheduler stepped, the early stopping updated; the model in eval mode, as validated): True
        when one returned True (stop training; every callback is still called).  A callback's error, or a
        return other than True, False or None, stops the fit with the epoch kept, as the message says."""
        plan, history = self.plan, self.history
        self.model.eval()  # (as validated: a callback running the model draws no dropout mask, moves no statistic)
        stop = False
        for i, (name, fn) in enumerate(plan.callbacks):
            where = f"{self.who}: callbacks[{i}] ({name}) after epoch {epoch}/{plan.epochs}"
            kept = "the epoch is complete and in error.history"
            try:
                result = fn(epoch, history)
            except BaseException as error:
                _say_where(error, where, kept if isinstance(error, MinidlError) else
                           f"{kept}; the callbacks after it were not called")
                _stopped_in(error, history, epoch, None)
                raise
            if result is not None and not isinstance(result, (bool, np.bool_)):
                refusal = TypeError(f"{where} ({kept}): a callback returns True (stop training), False or None "
                                    f"(go on), got {type(result).__name__} {short_repr(result)}")
                _stopped_in(refusal, history, epoch, None)
                raise refusal
            if result and not stop:
                stop = True
                if not history.stopped_by and epoch < plan.epochs:  # (early stopping's stop is said first; a stop
                    # asked at the last epoch stops nothing)
                    history.stopped_epoch, history.stopped_by = epoch, f"callbacks[{i}]"
                    if plan.verbose:
                        print(f"training stopped after epoch {epoch}/{plan.epochs} by callbacks[{i}] ({name})",
                              flush=True)
        return stop

    def after_error(self, error: BaseException, epoch: int | None) -> None:
        """After ``error`` stopped the fit in epoch ``epoch`` (None: in none): its ``history``, ``epoch`` and
        ``batch`` when nothing said them, the generator as at the start of the epoch stopped, the bar closed."""
        plan = self.plan
        if getattr(error, "history", None) is not self.history:  # raised outside the batches and the validation
            # (which say theirs): at an epoch's start (resume_training, start_epoch: the order, the bar), or after
            # its batches (its figures, end_epoch), or after the epochs (the early stopping's finish and summary:
            # in no epoch)
            _stopped_in(error, self.history, epoch, None)
        if self.epoch_state is not None:  # as at the start of the epoch stopped, which is not in the history
            assert plan.generator is not None  # (a state is kept only when shuffling, with a generator)
            plan.generator.bit_generator.state = self.epoch_state
        if self.bar is not None:  # do not leave a half-drawn bar behind
            self.bar.close()


@_spread_inputs_refused_first
def fit(
    model: Layer,
    x: Inputs,
    y: np.ndarray,
    *more: Never,
    loss: Loss,
    optimizer: Optimizer,
    epochs: int = 1,
    initial_epoch: int = 0,
    batch_size: int = 32,
    validation_data: tuple[Inputs, np.ndarray] | None = None,
    validation_split: float = 0.0,
    metrics: Sequence[MetricLike] | None = None,
    shuffle: bool = True,
    rng: RNGLike = None,
    scheduler: LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    verbose: int = 1,
    validation_batch_size: int = 256,
    check_gradients: bool = False,
    drop_last: bool = False,
    clip_grad_norm: float | None = None,
    early_stopping: EarlyStopping | None = None,
    gradcheck_every: int | None = None,
    gradcheck_samples: int = 4,
    callbacks: Sequence[Callback] | None = None,
) -> History:
    """Train ``model`` on ``(x, y)`` in mini-batches; returns the per-epoch :class:`History`.

    Args:
        x: (N, ...) inputs in the model's dtype (float32 or float64; it is not cast), or integer
            indices for a model whose first layer is an ``Embedding``; for a model with several inputs
            a tuple of arrays with N samples each, e.g. ``(tokens, padding_mask)`` (batched together,
            the model gets a tuple: see :mod:`minidl.inputs`).
        y: (N, ...) targets: whatever ``loss`` takes (e.g. (N,) int labels for ``CrossEntropyLoss``);
            floating targets are cast once to the model's dtype.
        loss: a :class:`~minidl.losses.Loss` instance.
        optimizer: an :class:`~minidl.optim.Optimizer` over (some of) the model's parameters.
        epochs: passes over the data.  batch_size: samples per step (the last batch may be smaller).
        initial_epoch: the epochs done before this fit, as Keras's: it trains epochs
            ``initial_epoch + 1 .. epochs`` (``epochs`` is the number of the last one, not how many to
            train), numbers them so in its lines, its messages, ``history.epoch`` and the
            ``EarlyStopping``, to resume a run (an int in ``[0, epochs]``).
        validation_data: ``(x_val, y_val)``, scored in eval mode after each epoch (``val_*`` keys), and
            once before the first, so that a bad set fails before any update (one extra pass).
        validation_split: instead of ``validation_data``, a fraction in [0, 1) of ``(x, y)`` held out
            as it, as Keras does: the last ``N - floor(N * (1 - validation_split))`` samples, taken
            before any shuffling (so the same ones every epoch; shuffle the data first if its order
            means something).  Training uses the rest.
        metrics: e.g. ``["accuracy"]``; names (``"accuracy"``, ``"mse"``, ``"mae"``, also ``"acc"``,
            ``"mean_squared_error"``, ``"mean_absolute_error"``: the history's key is the name as given) or callables
            ``metric(y_pred, y_true) -> float``.  Training metrics are means over the epoch's batches
            (each weighing its samples, or the metric's ``batch_weight``), measured in train mode
            while the weights change (as Keras does).
        shuffle: draw a new order of the samples each epoch from ``rng``.
        rng: a ``numpy.random.Generator`` or int seed; the same seed gives the same batches.
        scheduler: an :class:`~minidl.schedulers.LRScheduler`, stepped after each epoch (a
            :class:`~minidl.schedulers.ReduceLROnPlateau` with the epoch's value of its ``monitor``).
        scheduler_interval: ``"epoch"`` (the default) or ``"batch"``: step the scheduler after every
            batch's update instead, so that its counts are batches (a per-step warm-up, or
            :class:`~minidl.schedulers.OneCycleLR`).  A refused batch does not step it; the
            history's ``lr`` is then the lr of each epoch's first batch.  ``ReduceLROnPlateau``,
            which needs an epoch's figures, is refused with ``"batch"``.
        verbose: 0 silent; 1 a progress bar per epoch (tqdm if installed, else one line per epoch);
            2 one line per epoch.  Bars and lines show time, samples/s (of the training: the samples
            trained over the time the batches took, without the validation or the bar's making), loss
            and metrics.
        validation_batch_size: batch size used to score the validation data.
        check_gradients: also refuse a step whose gradients hold NaN/inf (costs one reduction over
            every gradient per batch, a few percent of a small MLP's step; off by default).  It checks
            that the gradients are finite, not that they are right: for that, ``gradcheck_every``.
        gradcheck_every: run the :class:`~minidl.GradientChecker` (the model, the loss) on the first
            batch and then on every ``gradcheck_every``-th batch (counted over the whole fit), on its
            first ``gradcheck_samples`` (at least 2) samples with the parameters before its update, and
            stop with :class:`~minidl.errors.GradientCheckError` if the back-pass disagrees with central
            differences: its message names the epoch and the batch, says how to run the check again,
            and holds the report (also ``error.report``; ``error.samples``: the positions in ``x`` of
            the samples checked); the batch's update is not applied.  A back-pass right at the initial
            weights can be wrong where training leads (a branch taken, a unit saturated).  Each check
            costs about one checker run (a few to a few hundred forwards of those samples, on a float64
            copy); ``None`` (the default): no check.
        drop_last: skip each epoch's last batch when it is smaller than ``batch_size`` (e.g. a
            batch of one sample, which batch norm refuses).
        clip_grad_norm: before each step, scale the gradients of the optimizer's parameters so that
            their total 2-norm is at most this (:func:`minidl.clip_grad_norm_`); a non-finite norm
            refuses the batch like a non-finite loss.
        early_stopping: an :class:`~minidl.EarlyStopping`: stop when its monitored figure (e.g.
            ``val_loss``) has not improved for its ``patience`` epochs, and with
            ``restore_best_weights`` end with the best epoch's weights.  The history then holds
            fewer than ``epochs`` epochs.  One loaded from a run (``load_state_dict``) whose best weights
            do not fit the model is refused before training, with ``load_state_dict``'s message; one loaded
            from a run that had stopped (``loaded_stopped_run``: a checkpoint of the epoch it stopped) makes
            ``fit`` train no epoch and end as that run ended.
        callbacks: callables ``f(epoch, history) -> bool | None``, each called in order at the end of
            every epoch, when the epoch is in ``history`` and the scheduler has stepped and the early
            stopping updated for it (the model in eval mode, as validated): a checkpoint saved there
            (the model with its generators, the optimizer, the scheduler, the early stopping, the
            shuffling generator) resumes bit for bit with ``initial_epoch=epoch``.  One returning True
            stops training after that epoch (the callbacks after it are still called;
            ``history.stopped_epoch`` and ``history.stopped_by`` say so, and ``restore_best_weights``
            restores as at any end).  One that raises stops the fit with that error, the epoch kept in
            ``error.history`` (``error.epoch`` is it, ``error.batch`` None).  Each is checked before
            training: a non-callable, or one that cannot take two arguments, is a ``TypeError``.

    The model trains in train mode and is validated in eval mode.  A model in train mode trains in
    its layers' own modes: a layer you put in eval mode (a frozen batch norm) stays in eval mode;
    a model in eval mode is switched to train mode whole.  On return (or on an error) every layer
    gets back the mode it had before.  Each batch ends with
    ``optimizer.step(zero_grad=True)``, so after a complete ``fit`` the gradients of the optimizer's
    parameters read zero.  On return the last batch's forward caches in minidl's own layers and losses are let go
    of (set back to None: what was None before the fit and holds arrays now), so that a model kept for
    inference does not carry them; a backward then needs a forward first.  On an error they are kept, and a
    layer or loss of one's own always keeps its own.

    Raises:
        NonFiniteError: when the loss (or a layer's input, or with ``check_gradients`` a gradient)
            becomes NaN/inf; the message names the epoch and batch.  That batch's update is *not*
            applied: the parameters are those after the last good batch.  ``error.history`` holds
            the epochs completed so far.  (Without ``check_gradients``, finite loss but non-finite
            gradients would reach the weights and be caught at the next batch.)  When the
            validation after an epoch fails (e.g. weights made NaN by the epoch's last update), the
            message says so; that epoch's updates were applied, but it is not in
            ``error.history`` and an epoch scheduler has not stepped for it (a per-batch one has, once
            for each of its batches).
    """
    who = "fit"
    plan = _plan_fit(who, model, x, y, loss, optimizer, epochs=epochs, initial_epoch=initial_epoch,
                     batch_size=batch_size, validation_data=validation_data, validation_split=validation_split,
                     metrics=metrics, shuffle=shuffle, rng=rng, scheduler=scheduler,
                     scheduler_interval=scheduler_interval, verbose=verbose,
                     validation_batch_size=validation_batch_size, check_gradients=check_gradients,
                     drop_last=drop_last, clip_grad_norm=clip_grad_norm, early_stopping=early_stopping,
                     gradcheck_every=gradcheck_every, gradcheck_samples=gradcheck_samples, callbacks=callbacks)
    run = _Training(who, plan, model, loss, optimizer)  # its history, and what the steps use, bound once
    cached = _caches_before(model, loss)  # what the passes' caches were: released on return
    if plan.val is not None and plan.trained:  # scored once now, in eval mode: a bad set fails before any update
        run.validate_first()
    if not plan.trained:  # (no epochs to train: at once, else at the first accepted batch)
        run.begin()
    epoch: int | None = None  # the epoch running, for an error outside a batch's and the validation's try
    with _training_modes(model) as resume_training:
        try:
            for epoch in range(plan.first_epoch, plan.first_epoch + plan.trained):
                started = time.perf_counter()
                resume_training()
                lr = optimizer.lr
                run.start_epoch(epoch)
                batches_started = time.perf_counter()  # (after start_epoch: not the order's draw, the bar's making)
                run.train_batches(epoch)
                # the training rate: the samples trained (not those drop_last skipped) over the time the
                # batches took (not the validation's)
                rate = min(plan.n_batches * plan.batch_size, plan.n) / max(time.perf_counter() - batches_started,
                                                                           1e-9)
                values = {"loss": run.epoch_loss.value()}
                values.update((name, c.value()) for name, c in zip(run.names, run.epoch_metrics, strict=True))
                if plan.val is not None:
                    values.update(run.validate(epoch))
                values["lr"] = lr
                seconds = time.perf_counter() - started
                stop = run.end_epoch(epoch, values, seconds, rate)  # (True: the early stopping says stop)
                if plan.callbacks:  # (at the one point where model, optimizer, schedule, early stopping agree)
                    stop = run.call_back(epoch) or stop
                if stop:
                    break
            epoch = None  # after the epochs, an error is in none
            if plan.early_stopping is not None:
                if plan.early_stopping.loaded_stopped_run:
                    run.history.stopped_epoch, run.history.stopped_by = plan.initial_epoch, "early_stopping"
                plan.early_stopping.finish(model)
                if plan.verbose and (len(run.history) or run.history.stopped_by):  # (nothing to say for no epoch)
                    print(plan.early_stopping.summary(), flush=True)
        except BaseException as error:
            run.after_error(error, epoch)
            raise
    _release_caches(cached)  # (not when fit raised: the caches of the batch that failed help to debug it)
    return run.history


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(
    model: Layer,
    x: Inputs,
    y: np.ndarray,
    *more: Never,
    loss: Loss | None = None,
    metrics: Sequence[MetricLike] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Score ``model`` on ``(x, y)`` in eval mode: ``{"loss": ..., "accuracy": ...}``.

    Without ``loss`` and ``metrics``, those of the model's last :func:`fit` are used; with metrics
    but no loss, metric names are resolved against that loss (``"accuracy"`` takes its threshold and
    ``ignore_index``) without scoring it.  The loss and metrics are means over the batches, each
    weighing its samples or its ``batch_weight`` (a summed loss is added up instead: see
    :class:`_Combiner`).  Every layer's mode is restored afterwards.
    """
    refuse_spread_inputs("evaluate", x, more)
    who = "evaluate"
    if loss is None and metrics is None:
        defaults = model.__dict__.get("_fit_defaults")
        if defaults is None:
            raise ValueError(f"{who}: pass loss= and/or metrics= (this model has not been fitted, so "
                             "there are no defaults to reuse)")
        loss, metrics = defaults
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"{who}: loss must be a minidl Loss instance, got {type(loss).__name__}")
    batch_size = _positive_int(who, "batch_size", batch_size)
    x, y = _check_data(model, x, y, who)
    fitted_loss = (model.__dict__.get("_fit_defaults") or (None, None))[0]
    metric_fns = _resolve_metrics(metrics, loss if loss is not None else fitted_loss, who)
    with _mode(model, False), _caches_kept(model, loss), saved(model):  # (a refused batch undoes the batches')
        try:
            return _run_batches(model, x, y, loss, metric_fns, batch_size)
        except MinidlError as error:
            _with_context(error, who)
            if isinstance(error, ShapeError):
                _with_suffix(error, _one_sample(model, x))
            raise


# ---------------------------------------------------------------------------------------------- predict
def _output_rows(output: Any, rows: int, who: str) -> tuple[np.ndarray, ...]:
    """A batch's output as a tuple of arrays (one, or a model's several), each checked to hold one row per
    sample of the batch's ``rows``."""
    several = type(output) is tuple  # (np.asarray would stack the outputs into one array)
    if several and not output:
        raise ShapeError(f"{who}: the model returned an empty tuple: no output to gather")
    outputs = tuple(np.asarray(o) for o in output) if several else (np.asarray(output),)
    for i, out in enumerate(outputs):
        if out.ndim == 0 or len(out) != rows:  # rows of the result would stay unwritten
            which = f"output {i} of {len(outputs)}" if several else "output"
            raise ShapeError(f"{who}: the model's {which} must have one row per sample; a batch of {rows} gave "
                             f"an output of shape {out.shape}")
    return outputs


def predict(model: Layer, x: Inputs, batch_size: int = 256) -> Any:
    """The model's outputs on ``x`` (N, ...; or a tuple of such arrays for a model with several
    inputs), computed in eval mode in batches; modes are restored.  An array (N, ...); for a model with
    several outputs (a tuple, e.g. ``(mean, var)``) the tuple of their arrays, each gathered over the
    batches (hence ``Any``: as the model returns)."""
    who = "predict"
    batch_size = _positive_int(who, "batch_size", batch_size)
    x = as_inputs(x, who, "x")
    if (isinstance(x, np.ndarray) and x.ndim == 0) or count(x) == 0:
        shape = x.shape if isinstance(x, np.ndarray) else tuple(a.shape for a in x)
        raise ShapeError(f"{who}: x needs a non-empty batch axis, got shape {shape}")
    n = count(x)
    several = False  # whether the model returns a tuple of outputs (the first batch says)
    results: list[np.ndarray] | None = None
    with _mode(model, False), _caches_kept(model), saved(model):  # (a refused batch undoes the batches')
        for start in range(0, n, batch_size):
            xb = rows(x, start, start + batch_size)
            try:
                output = model(xb)
            except MinidlError as error:
                stop = start + count(xb)
                one = _one_sample(model, x) if isinstance(error, ShapeError) else ""
                # (one sample's features are no samples: no "samples 0..3" before the hint)
                _batch_context(error, model, who if one else f"{who}: samples {start}..{stop - 1}", start, stop,
                               None, (xb,))
                _with_suffix(error, one)
                raise
            outputs = _output_rows(output, count(xb), who)
            if results is None:
                several = type(output) is tuple
                inputs = x if type(x) is tuple else (x,)
                if batch_size >= n and not any(np.may_share_memory(out, a) for out in outputs for a in inputs):
                    # as from several batches: writable arrays of our own (not a layer's read-only cache)
                    # (one array returned twice, (h, h), becomes two, as from several batches)
                    own = tuple(out if out.flags.writeable and not any(out is o for o in outputs[:i]) else out.copy()
                                for i, out in enumerate(outputs))
                    return own if several else own[0]
                results = [np.empty((n, *out.shape[1:]), dtype=out.dtype) for out in outputs]
            elif (type(output) is tuple) != several or len(outputs) != len(results):
                raise ShapeError(f"{who}: the model's outputs changed between batches: "
                                 f"{len(results) if several else 'one array'}, then "
                                 f"{len(outputs) if type(output) is tuple else 'one array'}")
            for i, (result, out) in enumerate(zip(results, outputs, strict=True)):
                if out.shape[1:] != result.shape[1:]:
                    which = f"output {i}" if several else "output"
                    raise ShapeError(f"{who}: the model's {which} changed shape between batches: "
                                     f"{result.shape[1:]} per sample, then {out.shape[1:]}")
                result[start:start + len(out)] = out
    assert results is not None
    return tuple(results) if several else results[0]
