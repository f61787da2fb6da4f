"""What the check finds beyond each tensor's verdict: the notes and problems that come from looking at the
results, the recorded calls and the model's state together (a gradient swapped between two tensors, a
factor every tensor shares, a layer run twice with one cache, state the check cannot see, ...).

Each function decides one finding and returns its words (or puts them on the tensors' results); the checker
(:mod:`.checker`, ``GradientChecker._run``) runs the passes, calls each function once what it needs is ready,
and places the words in the report itself: not in the order it calls them (the unregistered layers' notes
and the caveats of a failing tensor's layers, for example, are put before the notes already there).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layer import Layer, minidl_own
from ..parameter import Parameter
from ._state import same
from .diagnosis import FLOAT32_WORDS, flat_words, is_input, swapped
from .elements import is_step_artefact
from .names import layer_label, named_inputs
from .report import GradientReport, TensorResult

if TYPE_CHECKING:
    from .checker import _Call, _FirstPass, _Tensor
    from .program import Program

__all__ = ["built_lazily_note", "called_twice", "caveats", "contract_problems", "dtype_notes", "float32_reads",
           "loss_hidden_notes", "name_repeated_indices", "name_swapped", "one_sample", "plain_arrays", "repeated_index",
           "result_notes", "reversed_batch_problem", "reversed_batch_verdicts", "shared_factor", "unregistered"]


def caveats(model: Layer, failing: Sequence[str]) -> list[str]:
    """The :meth:`~minidl.Layer.backward_caveat` of each layer a failing tensor may owe its failure to: one of
    its own, the input's, or one of a layer registered before it (upstream, in a model that registers its
    layers in the order it runs them): not a layer's whose tensors pass while only later ones fail."""
    paths = [path for path, _ in model.named_layers()]
    owners = {"" if is_input(name) else name.rpartition(".")[0] for name in failing}
    notes = []
    for k, (path, layer) in enumerate(model.named_layers()):
        caveat = layer.backward_caveat()
        if caveat is not None and owners & {"", *paths[:k + 1]}:
            notes.append(f"{layer_label(path, layer)}: {caveat}")
    return notes


def _public_arrays(layer: Layer) -> dict[str, np.ndarray]:
    """The layer's public ndarray attributes (a cache or a weight kept as a plain array)."""
    return {name: value for name, value in vars(layer).items()
            if not name.startswith("_") and isinstance(value, np.ndarray)}


def plain_arrays(model: Layer) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """Every public float array attribute that is no buffer, by ``(layer id, name)``: the array and a
    copy of its values."""
    return {(id(layer), name): (value, value.copy()) for layer in model.layers()
            for name, value in _public_arrays(layer).items() if name not in layer._buffers and value.dtype.kind == "f"}


def unregistered(model: Layer, first: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]],
                  called: set[int], plain: bool = True) -> tuple[list[str], list[str]]:
    """Notes on state a layer holds where neither the checker nor an optimizer can see it: a public
    float array attribute that is no buffer (a weight kept as a plain array), and a ``Parameter`` or
    ``Layer`` inside a helper object (registration looks at the layer's own attributes only).

    ``first``: the plain arrays after the first pass (:func:`plain_arrays`), which ran forward and
    backward on other inputs (the batch reversed) and other weights; now, after every pass of the
    check, a weight is the same array with the same values: made in ``__init__`` (or once, in the
    first forward) and only read.  A cache is assigned again (``self.x = x``, by the layer, its
    parent or its backward) or written again in place; it is not named, nor is an array of a layer
    the forwards do not call (``called``: the ids of those they do).  ``plain=False`` (a layer checked
    alone by ``check_layers``, whose parent's caches are not set again) skips these.  A helper object
    that only points at registered layers or parameters (an alias, a hook holding its owner) is not
    named.  Returns the notes, and the plain float arrays as the headline names them
    (``"layer '1' (MyLinear) 'W'"``).
    """
    notes, headline_names = [], []
    registered = {id(p) for p in model.parameters()} | {id(layer) for layer in model.layers()}
    for path, layer in model.named_layers():
        arrays = [name for name, value in _public_arrays(layer).items()
                  if plain and id(layer) in called and (id(layer), name) in first
                  and first[id(layer), name][0] is value and same(value, first[id(layer), name][1])]
        hidden = []
        for name, value in vars(layer).items():
            if not name.startswith("_") and not isinstance(value, (Layer, Parameter, np.ndarray,
                                                                   np.random.Generator, type)) \
                    and hasattr(value, "__dict__") \
                    and any(isinstance(v, (Parameter, Layer)) and id(v) not in registered
                            for v in vars(value).values()):
                hidden.append(name)
        if arrays:
            names = ", ".join(f"'{name}'" for name in arrays)
            headline_names.append(f"{layer_label(path, layer)} {names}")
            notes.append(f"{layer_label(path, layer)} holds the float array(s) {names}, neither parameters nor "
                         "buffers, which no pass of the check changed: the check does not vary them and optimizers "
                         "do not train them. A weight is an md.Parameter; a constant or running statistic, "
                         "self.register_buffer; a workspace, a private name (self._buf)")
        if hidden:
            names = ", ".join(f"'{name}'" for name in hidden)
            notes.append(f"{layer_label(path, layer)}: the attribute(s) {names} hold parameters or layers inside "
                         "another object, where they are not registered: the check does not see them and "
                         "optimizers do not train them (assign them to the layer itself, or use md.LayerList)")
    return notes, headline_names


def called_twice(model: Layer, calls: list[_Call], results: list[TensorResult],
                  alone: dict[str, GradientReport]) -> list[str]:
    """Notes on layers without sub-layers that ran more than once in one forward pass (``calls``: one
    pass, recorded) while tensors other than the inputs fail.  A layer keeping one forward cache (every
    built-in layer) computes every backward call from the last call's cache, so its gradients are wrong
    in the model although its backward is right for one call.  Firm (and said on the tensors, over their
    diagnosis) only for a layer of minidl's own whose own parameters fail; for a layer of the user's (which
    may keep a cache per call, as an RNN cell does), or for tensors that are not the layer's own (which
    may be upstream of it or not), it *may* be the cause.  No note for a layer that fails checked alone
    (``alone``: check_layers' reports; its own backward is wrong, that note says so), nor when only the
    inputs fail (the dx of any layer may be wrong).  Counted per layer object: one held at several paths
    (``self.a = self.b = d``, twice in a LayerList) is named at each."""
    # per layer object: one held at two paths (self.a = self.b = d) is one layer with one cache, run twice;
    # the path is the one it was recorded (and checked alone) at, the first of named_layers
    counts: dict[int, tuple[str, Layer, int]] = {}
    for c in calls:
        if c.path:
            path, layer, n = counts.get(id(c.layer), (c.path, c.layer, 0))
            counts[id(c.layer)] = (path, layer, n + 1)
    if not any(n > 1 for _, _, n in counts.values()):
        return []
    failed = {r.name for r in results if not r.passed and not is_input(r.name)}
    names = {id(p): name for name, p in model.named_parameters()}
    places: dict[int, list[str]] = {}
    for place, held in model.named_layers(remove_duplicate=False):
        places.setdefault(id(held), []).append(place)
    notes = []
    for path, layer, n in counts.values():
        if n < 2 or next(layer.children(), None) is not None or (path in alone and not alone[path].passed):
            continue
        own = sorted({names[id(p)] for p in layer.parameters() if id(p) in names} & failed)
        others = sorted(name for name in failed if name in names.values() and name not in own)
        if not (own or others):
            continue
        which = ", ".join(f"'{name}'" for name in own or others)
        verb = "fails" if len(own or others) == 1 else "fail"
        label = layer_label(path, layer, [p for p in places.get(id(layer), ()) if p != path])
        if own and minidl_own(layer):
            for r in results:
                if r.name in own:
                    r.notes.append(f"{label} ran {n} times in one forward pass: the gradient is computed from one "
                                   "stale forward cache (see the report's note), whatever the diagnosis says")
            notes.append(f"{label} ran {n} times in one forward pass, and {which} {verb}: a built-in layer keeps "
                         "one forward cache and computes every backward call from the last call's cache, so its "
                         "gradients are wrong in the model although its backward is right for one call. Use a "
                         "layer per call sharing the parameters (d2.W = d1.W), or a layer of your own that keeps a "
                         "cache per call (docs/custom-layers.md)")
        else:
            where = "" if own else " (they may be upstream of it, or not)"
            keeps = "every built-in layer keeps one forward cache and" if minidl_own(layer) else \
                "a layer of your own that keeps a cache per call (a stack, as an RNN cell's) is right, and " \
                "then the diagnosis stands; one that keeps one forward cache"
            notes.append(f"{label} ran {n} times in one forward pass, and {which} {verb}{where}: this may be the "
                         f"cause: {keeps} computes every backward call from the last call's cache, so the "
                         "gradients it gives are wrong in the model although its backward is right for one call "
                         "(use a layer per call sharing the parameters, d2.W = d1.W)")
    return notes


def repeated_index(t: _Tensor, result: TensorResult, x: Any, given: set[int]) -> str | None:
    """The repeated-index hint for a failing parameter: its failing elements lie only in rows (positions on axis 0)
    that an integer input holds more than once, and a row it holds once was checked right -- the signature of a
    gradient scattered with ``grad[idx] += v``, which keeps one contribution per repeated index.  Only for an
    integer input whose every value is a row of the parameter and that a forward of a layer holding the parameter
    was given as it is (``given``: ``id`` of the arrays those forwards were given; a layer after an ``Embedding``
    never sees the tokens), and never when a failing row is a bias row (``t.bias_rows``: not an index); else
    None."""
    if t.rows is None or is_input(t.name) or result.passed or result.problems:
        return None
    bad_rows, right_rows = t.rows
    if t.bias_rows is not None and np.intersect1d(bad_rows, np.arange(t.array.shape[0])[t.bias_rows]).size:
        return None
    for name, value in named_inputs(x):
        if not (isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.size > 0) \
                or id(value) not in given:
            continue
        values = value.reshape(-1)
        if values.min() < 0 or values.max() >= t.array.shape[0]:
            continue
        counts = np.bincount(values, minlength=t.array.shape[0])
        once = np.flatnonzero(counts == 1)
        if bad_rows.size and np.all(counts[bad_rows] > 1) and np.intersect1d(once, right_rows).size:
            which = "the input" if name == "input" else name
            return (f"the failing elements lie only in rows {bad_rows.tolist()[:8]} of '{t.name}', which {which} "
                    f"holds more than once, and rows it holds once ({np.intersect1d(once, right_rows).tolist()[:8]}) "
                    "are right: a gradient scattered with grad[idx] += v keeps one contribution per repeated index "
                    "(NumPy's fancy-index assignment does not add them up); use np.add.at(grad, idx, v)")
    return None


def shared_factor(failed: list[TensorResult]) -> float | None:
    """The factor analytic / numerical at the worst element, when two or more failing tensors share
    it (to 1e-3) and it is not 1; else None."""
    ratios = [r.analytic / r.numerical for r in failed
              if math.isfinite(r.analytic) and math.isfinite(r.numerical) and r.numerical != 0]
    if len(failed) < 2 or len(ratios) != len(failed) or abs(ratios[0] - 1) < 1e-3:
        return None
    return ratios[0] if all(abs(q - ratios[0]) <= 1e-3 * abs(ratios[0]) for q in ratios) else None


def dtype_notes(y0: Any, x: Any, checked_inputs: Sequence[bool]) -> list[str]:
    """Notes on dtypes the check did not choose: a model output below float64 (some layer computes in a dtype of
    its own, so the cost has its round-off), and an input ``check_input`` asks for that is not a float array (its
    dCost/dinput is not checked)."""
    notes: list[str] = []
    if isinstance(y0, np.ndarray) and y0.dtype.kind == "f" and y0.dtype.itemsize < 8:
        notes.append(f"the model's output is {y0.dtype} although the check converted its parameters, buffers "
                     "and inputs to float64 (astype): some layer computes in a dtype of its own (an attribute "
                     "such as self.dtype?), so the cost has its round-off and correct gradients may fail; "
                     "make the layer follow its input's or parameters' dtype, or convert that attribute in "
                     "an override of astype")
    for (name, value), checked_input in zip(named_inputs(x), checked_inputs, strict=True):
        if checked_input and not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
            what = f"an array of {value.dtype}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
            notes.append(f"{'the input' if name == 'input' else name} is {what}, not a float array: "
                         f"dCost/d{name} is not checked")
    return notes


def loss_hidden_notes(loss: Any, hidden: Sequence[str]) -> list[str]:
    """The note on the loss's attributes ``hidden`` that hold parameters its ``named_parameters()`` does not give
    (the check does not see them), or [] when there are none."""
    if not hidden:
        return []
    names = ", ".join(f"'{name}'" for name in hidden)
    return [f"the loss ({type(loss).__name__}): the attribute(s) {names} hold parameters that the "
            "loss's named_parameters() does not give (inside another object, or left out by an "
            "override): the check does not see them (one the loss holds itself, self.log_s = "
            "md.Parameter(...), is checked as 'loss.log_s'; one in a list, tuple or mapping there, "
            "as 'loss.<name>.<index or key>'; override the loss's named_parameters() to name the "
            "others)"]


def contract_problems(in_place: _Call | None, first_pass: _FirstPass) -> list[str]:
    """The breaches of the layer contract that fail the report whatever the gradients: a forward that modified its
    input in place (``in_place``), one that changed a parameter, a backward that modified its grad_output."""
    problems = []
    if in_place is not None:
        problems.append(
            f"{layer_label(in_place.path, in_place.layer)}: forward modified its input in place (the "
            "layer contract: never modify x; the previous layer's cache or the caller's data is changed "
            "behind its back, and the gradient was checked at the modified point)")
    changed = first_pass.changed_params
    if changed is not None:
        names = ", ".join(f"'{name}'" for name in changed.changed_params)
        problems.append(
            f"{layer_label(changed.path, changed.layer)}: forward changed the parameter(s) {names} (the "
            "layer contract: a forward reads its parameters, only an optimizer changes them; the cost is "
            "then not the function the back-pass differentiates, and the elements can look like kinks). "
            "Compute from the parameter into a new array: w = W.data / norm, not W.data /= norm")
    if first_pass.grad_modified is not None:
        problems.append(
            f"{layer_label(*first_pass.grad_modified)}: backward modified its grad_output in place (the "
            "layer contract: never modify grad_output; a model that uses it again, as Residual does for "
            "its skip path, then gets wrong gradients). Write dx = grad_output * s, not grad_output *= s")
    if first_pass.cache_modified is not None:
        problems.append(cache_modified_problem(*first_pass.cache_modified))
    return problems


def cache_modified_problem(path: str, layer: Layer, what: str, differ: Sequence[str]) -> str:
    """The problem of a backward that modified in place what its forward left: ``what`` is ``"input"`` (the array
    its forward was given), ``"output"`` (the one it returned) or ``"cache"`` (found only as a second backward on
    the same forward giving other gradients); ``differ``: what that second backward gave otherwise (``"dx"``, the
    layer's own names of its parameters)."""
    contract = ("(the layer contract: a backward only reads its cache; backward(g1) then backward(g2) on the same "
                "forward must give the gradients of g1 + g2)")
    others = ", ".join("dx" if d == "dx" else f"dCost/d{d}" for d in differ)
    second = f"a second backward on the same forward gives another {others}" if differ else \
        "a second backward on the same forward reads the changed array"
    if what == "input":
        return (f"{layer_label(path, layer)}: backward modified its forward's input in place {contract}: the "
                f"caller's x (the model's input, or the output and cache of the layer before) is changed behind its "
                f"back, and {second}. Compute into new arrays (dx = g * a), never x *= ...")
    words = "output" if what == "output" else "output or cache"
    return (f"{layer_label(path, layer)}: backward modified its forward's {words} in place {contract}: {second}. "
            "Compute into new arrays: d = y * (1 - y), not y *= 1 - y")


def rebound_problem(name: str) -> str:
    """The problem of a forward that puts a new ``Parameter`` at ``name`` at every call (or in place of one made in
    ``__init__``): the checker, an optimizer and ``state_dict`` hold the one from before."""
    return (f"forward rebinds parameter '{name}' (create it in __init__ and only use it in forward): each forward "
            "that makes a new Parameter leaves the checker's perturbed one (and an optimizer's, and a loaded "
            "state_dict's) out of the cost, so its gradient cannot be checked nor trained")


def built_lazily_note(name: str) -> str:
    """The note on a parameter the forward created at its first call and kept (a Keras-style build): the checker's
    copy holds it after its first pass, which is checked."""
    return (f"forward creates parameter '{name}' at its first call (built lazily): checked as built (an optimizer "
            "made before that first call does not hold it: make it after, or create the parameter in __init__)")


def reversed_batch_problem(name: str, owner: str | None, expected: np.ndarray, again: np.ndarray, rel: float,
                           floor: float) -> str | None:
    """The problem of the tensor ``name`` whose gradient after a forward on the batch reversed, and a backward with
    the upstream gradient reversed, is ``again`` (an input's reversed back), where its gradient at the checked
    point is ``expected``: for a forward whose outputs were the reversed ones the two are equal, to round-off.
    They differ when more than ``rel`` times the larger of the tensor's largest gradient and ``floor`` (a share of
    the largest gradient of any tensor: a gradient that cancels to ~0 holds round-off of its terms' size), or None.
    ``owner``: the label of the layer holding the tensor (None for an input)."""
    if again.shape != expected.shape or not (np.all(np.isfinite(expected)) and np.all(np.isfinite(again))):
        return None
    largest = float(np.max(np.abs(expected), initial=0.0))
    difference = float(np.max(np.abs(again - expected), initial=0.0))
    if difference <= rel * max(largest, floor):
        return None
    who = f"the backward of {owner}" if owner is not None else "a backward"
    return (f"the backward after a forward on the batch reversed gave another dCost/d{name} than the reversed "
            f"batch's own (max |difference| {difference:.2e}, largest gradient {largest:.2e}), {_SEEN}: {who} "
            f"{_STALE}; training is then wrong from the second batch on")


#: the cause :func:`reversed_batch_problem` names: alone for a tensor whose differences pass (the stale cache held
#: the checked point's values), beside the other one for a tensor that fails (:func:`reversed_batch_verdicts`)
_STALE = ("reads something an earlier forward left (a cache made once, or kept from another call), not what its "
          "own forward computed")
_BOTH = ("uses one sample's gradient where a sum over the batch (axis 0) is due (g[0] for g.sum(axis=0): its "
         "result then follows the batch's order), or " + _STALE)
#: where the note says what was seen, before the cause
_SEEN = "though the forward's outputs were the reversed ones"
#: what becomes of the note beside a failure that :func:`one_sample` explains
_EXPLAINED = ("; as the diagnosis says, its result follows the batch's order because it takes one sample's gradient "
              "alone")


def reversed_batch_verdicts(tensors: Sequence[_Tensor], results: Sequence[TensorResult]) -> None:
    """Put each tensor's batch-permutation words (:func:`reversed_batch_problem`) on its result: a problem that fails
    a tensor its differences pass (the stale cache held the checked point's values), a note beside a failure of its
    own (which has its diagnosis: a backward whose result depends on the order of the batch, ``grad[idx] += v``
    with repeated indices, differs too), and a note only for a tensor with elements skipped at kinks (samples
    tied in a max over the batch: a right backward's subgradient may follow their order)."""
    for t, r in zip(tensors, results, strict=True):
        if t.reversed_batch is None:
            continue
        if r.passed and not r.skipped:
            r.problems.append(t.reversed_batch)
            r.passed = False
        elif r.passed:  # elements at kinks: a right backward may pick between equal values by the batch's order
            r.notes.append(f"{t.reversed_batch}; or, as {r.skipped} of its elements sit at kinks, the backward "
                           "picks between equal values (a max over tied samples) by the batch's order, which is "
                           "right: not failed for it")
        elif is_input(t.name):
            r.notes.append(t.reversed_batch)
        else:  # (a failure of its own: a parameter's gradient from one sample, g[0] for g.sum(axis=0), differs too)
            r.notes.append(t.reversed_batch.replace(_STALE, _BOTH))


def name_swapped(tensors: Sequence[_Tensor], results: Sequence[TensorResult]) -> None:
    """Say on the tensors' results where a gradient was written into another tensor's ``.grad`` (or returned as
    dx), found from the elements the per-element checks kept (see :func:`.diagnosis.swapped`)."""
    by_name = {r.name: r for r in results}
    # a gradient written into another tensor's .grad (or returned as dx): its words replace the
    # tensor's diagnosis, except a whole-tensor factor, which explains the values as well (the two
    # numerical gradients are then proportional) and is kept beside it
    found = swapped({t.name: (t.analytic, *t.elements) for t in tensors
                     if t.elements is not None and t.analytic is not None})
    for name, words in found.items():
        old = by_name[name].diagnosis
        by_name[name].diagnosis = f"{old}; or {words}" if old and old.startswith(
            ("sign flip", "constant factor")) else words


def name_repeated_indices(model: Layer, tensors: Sequence[_Tensor], results: Sequence[TensorResult], x: Any,
                          calls: Sequence[_Call]) -> None:
    """Add the repeated-index hint (:func:`repeated_index`) to the diagnosis of each failing parameter that shows
    its signature, judged on the arrays the forwards of the layers holding the parameter were given."""
    # (per parameter, the arrays the forwards of the layers holding it were given, for the repeated-index hint)
    given: dict[int, set[int]] = {}
    for c in calls:
        for p in c.layer._parameters.values():
            given.setdefault(id(p), set()).update(c.sources)
    by_tensor_id = {name: id(p) for name, p in model.named_parameters()}
    for t, r in zip(tensors, results, strict=True):
        repeated = repeated_index(t, r, x, given.get(by_tensor_id.get(t.name, 0), set()))
        if repeated is not None:
            r.diagnosis = f"{r.diagnosis}; {repeated}" if r.diagnosis else repeated


def result_notes(report: GradientReport, from_loss: Collection[str], precision_noted: bool,
                 shared: float | None) -> list[str]:
    """Notes on what the results say together: tensors that are flat (nothing of their backward was tested, and
    why), only the input gradient wrong (the error is in dx, not in the parameter updates), and every tensor off
    by the ``shared`` factor (the error is in what they all share). ``from_loss``: the loss's own parameters;
    ``precision_noted``: whether a note says something computes below float64."""
    notes = []
    results = report.results
    if report.flat:  # (passed, with every derivative 0 on both sides: say that nothing was tested, and why)
        notes.append(flat_words([r.name for r in report.flat],
                                [r.name for r in report.flat if r.unit == "elements" and r.checked < r.size],
                                precision_noted))
    # (frozen tensors were not checked: they say nothing about the parameter gradients)
    # (the loss's own parameters, loss.<name>, do not take dLoss/dy_pred: they say nothing about the
    # model's back-pass, and a wrong dLoss/dy_pred leaves them right)
    params_checked = [r for r in results if not is_input(r.name) and r.mode != "frozen"
                      and r.name not in from_loss]
    failed_inputs = [r for r in results if is_input(r.name) and r.failed]
    # (a parameter all of whose elements were skipped at kinks passed without saying anything)
    if failed_inputs and not any(r.problems for r in failed_inputs) \
            and params_checked and all(r.passed and r.checked > 0 for r in params_checked):
        notes.append("only the input gradient is wrong: every parameter gradient is right, so the "
                     "error is in the dx that backward returns (a missing transpose, a wrong mask or "
                     "factor in dx), not in the parameter updates")
    if shared is not None:
        notes.append(f"every tensor is off by the same factor (analytic = {shared:.4g} x numerical): "
                     "the error is in what they all share -- the loss's backward, or the first step of the "
                     "back-pass (the last layer's backward scaling grad_output) -- not in each layer")
    return notes


def one_sample(program: Program, work: Layer, tensors: Sequence[_Tensor], results: Sequence[TensorResult],
               from_loss: Collection[str], seed: int) -> None:
    """Diagnose each failing parameter (with no diagnosis yet) whose analytic gradient is one sample's contribution
    alone: ``g[0]`` where ``g.sum(axis=0)`` is due.  dCost/dW is the sum over the samples i of
    ``J_i^T upstream_i`` (``J_i``: the Jacobian of the output's row i); along a random direction d, each term's
    slope is read from two forwards (at ``W +- s d``, the output's row i against the upstream gradient's), and the
    analytic gradient's ``d . dCost/dW`` compared with each.  Said when exactly one sample's slope matches it (to
    1e-5) and the whole batch's does not (by 1e-2); the batch-order note beside it then points at the diagnosis.
    Needs an output that is one array of the input's batch size (N >= 2).  Two forwards per tensor and one for the
    upstream gradient, not counted as cost evaluations; the tensors' values and the program's state are put back,
    and a pass that raises says nothing."""
    by_name = {r.name: r for r in results}
    todo = [t for t in tensors if t.analytic is not None and not t.frozen and not is_input(t.name)
            and t.name not in from_loss and t.name in by_name and by_name[t.name].failed
            and by_name[t.name].diagnosis is None and by_name[t.name].low_precision is None and np.any(t.analytic)]
    x = program.x
    first = x[0] if type(x) is tuple and x else x
    batch = first.shape[0] if isinstance(first, np.ndarray) and first.ndim >= 1 else 0
    if not todo or batch < 2:
        return
    rng = np.random.default_rng([seed, 41])
    evaluations = program.evaluations
    try:
        with np.errstate(all="ignore"):
            program.reset()
            y = work.forward(x)
            if not (isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.ndim >= 1 and y.shape[0] == batch):
                return
            program.cost(y)
            up = program.upstream()
            if not (isinstance(up, np.ndarray) and up.shape == y.shape):
                return
            up = np.asarray(up, dtype=np.float64).reshape(batch, -1)
            found = {}
            for t in todo:
                assert t.analytic is not None
                saved = t.array.copy()
                d = rng.standard_normal(saved.shape) * np.maximum(np.abs(saved), 1.0)
                step = 1e-6
                outputs = []
                try:
                    for s in (step, -step):
                        np.copyto(t.array, saved + s * d)
                        program.reset()
                        outputs.append(np.asarray(work.forward(x), dtype=np.float64))
                finally:
                    np.copyto(t.array, saved)
                if outputs[0].shape != y.shape:
                    continue
                slopes = np.sum(up * (outputs[0] - outputs[1]).reshape(batch, -1), axis=1) / (2 * step)
                a_dir, whole = float(np.sum(t.analytic * d)), float(np.sum(slopes))
                match = np.flatnonzero(np.abs(slopes - a_dir) <= 1e-5 * np.maximum(np.abs(slopes), abs(a_dir)))
                if match.size == 1 and abs(whole - a_dir) > 1e-2 * max(abs(whole), abs(a_dir)):
                    found[t.name] = int(match[0])
    except Exception:
        return
    finally:
        program.reset()
        program.evaluations = evaluations
    for t in tensors:
        if t.name not in found:
            continue
        i = found[t.name]
        row = "g[0]" if i == 0 else "g[-1]" if i == batch - 1 else f"g[{i}]"
        r = by_name[t.name]
        r.diagnosis = (f"the analytic gradient is sample {i}'s contribution alone (along a random direction its slope "
                       f"is that of sample {i}'s part of the cost, not the whole batch's): the sum over the batch "
                       f"(axis 0) is missing, e.g. {row} where g.sum(axis=0) is due")
        if t.reversed_batch is not None:
            note = t.reversed_batch.replace(_STALE, _BOTH)
            head = note[:note.find(_SEEN) + len(_SEEN)] if _SEEN in note else None
            r.notes = [head + _EXPLAINED if n == note and head is not None else n for n in r.notes]


def float32_reads(program: Program, tensors: Sequence[_Tensor], results: Sequence[TensorResult], f0: float) -> None:
    """Diagnose each tensor with failing or skipped elements that the forward reads in float32 only (``W.data.astype(
    np.float32)`` in a float64 model, whose output stays float64): the cost does not move at all when every element
    is rounded to float32 (a change the analytic gradient predicts above the cost's round-off), and does when each
    moves by two float32 steps.  The cost is then a staircase in the tensor, whose differences look like kinks or
    wrong values.  The staircase is said to explain the failure (the diagnosis, the notes on kinks and finer steps it
    caused left out) only when the cost's slope along random directions, on a step large next to float32's, is the
    analytic one (:func:`_staircase_slopes`); otherwise a wrong gradient besides is said so, and the ordinary
    diagnosis is kept (the float32 words then a note, or the diagnosis if there was none).  Up to ten evaluations
    per such tensor, not counted; the tensor's values are put back."""
    by_name = {r.name: r for r in results}
    evaluations = program.evaluations
    try:
        for t in tensors:
            r = by_name.get(t.name)
            if r is None or t.analytic is None or t.frozen or r.low_precision is not None \
                    or t.array.dtype != np.float64 or not (r.failed or r.skipped) \
                    or FLOAT32_WORDS in (r.diagnosis or ""):
                continue
            saved = t.array.copy()
            with np.errstate(all="ignore"):
                rounded = saved.astype(np.float32).astype(np.float64)
                moved = (saved.astype(np.float32) + 2 * np.spacing(saved.astype(np.float32))).astype(np.float64)
                if not np.all(np.isfinite(rounded)) or not np.any(rounded != saved):
                    continue
                predicted = float(np.sum(t.analytic * (rounded - saved)))
                if not abs(predicted) > 1e-10 * max(abs(f0), 1.0):
                    continue
                costs = []
                try:
                    for point in (rounded, moved):
                        np.copyto(t.array, point)
                        costs.append(program.evaluate(t.stage))
                finally:
                    np.copyto(t.array, saved)
            if not (costs[0] == f0 and math.isfinite(costs[1]) and costs[1] != f0):
                continue
            words = (f"the cost does not change at all when every element of '{t.name}' is rounded to float32 (the "
                     f"analytic gradient predicts a change of {predicted:.1e}), and does when each moves by two "
                     f"float32 steps: forward reads it in float32 (e.g. W.data.astype(np.float32)), so the cost is a "
                     f"staircase in it, whose differences look like kinks or wrong values; {FLOAT32_WORDS}")
            slopes = _staircase_slopes(program, t, saved)
            if slopes is None:  # (the staircase explains it all: its words replace those it caused)
                r.diagnosis = words
                r.notes = [n for n in r.notes if not is_step_artefact(n)]
                continue
            analytic, numerical = slopes
            ratio = f"; analytic / slope = {analytic / numerical:.3g}" if numerical != 0 else ""
            words += (f". It does not explain the failure: along a random direction, on a step of 1e-3 of the "
                      f"values (large next to float32's), the analytic gradient gives a slope of {analytic:.6g} and "
                      f"the cost {numerical:.6g}{ratio}: a wrong gradient besides")
            if r.diagnosis is None:
                r.diagnosis = words
            else:
                r.notes.append(words)
    except Exception:
        return
    finally:
        program.reset()
        program.evaluations = evaluations


#: the step, relative to each element's magnitude, of :func:`_staircase_slopes`: float32's steps (6e-8 relative) are
#: 1/16000 of it, so their staircase moves a slope by ~1e-5, below the 1e-3 it is judged with
STAIRCASE_STEP = 1e-3


def _staircase_slopes(program: Program, t: _Tensor, saved: np.ndarray) -> tuple[float, float] | None:
    """Whether a tensor the forward reads in float32 has the analytic gradient, seen past float32's staircase: the
    cost's slope along two random directions (random signs, each element moved by ``STAIRCASE_STEP`` of its
    magnitude, at least of the tensor's mean one), by central differences on that step and half of it
    (Richardson-extrapolated), against the analytic gradient's.  None when both agree to 1e-3, else the first
    direction's (analytic, numerical) slopes that does not.  Moves ``t.array`` and puts ``saved`` back."""
    assert t.analytic is not None
    rng = np.random.default_rng([t.array.size, 29])
    size = np.maximum(np.abs(saved), float(np.mean(np.abs(saved))))
    try:
        for _ in range(2):
            d = (rng.integers(0, 2, size=saved.shape) * 2.0 - 1.0) * size
            costs = []
            for s in (STAIRCASE_STEP, -STAIRCASE_STEP, STAIRCASE_STEP / 2, -STAIRCASE_STEP / 2):
                np.copyto(t.array, saved + s * d)
                costs.append(program.evaluate(t.stage))
            coarse = (costs[0] - costs[1]) / (2 * STAIRCASE_STEP)
            fine = (costs[2] - costs[3]) / STAIRCASE_STEP
            numerical = (4 * fine - coarse) / 3
            analytic = float(np.sum(t.analytic * d))
            if not abs(analytic - numerical) <= 1e-3 * max(abs(analytic), abs(numerical)):
                return analytic, numerical
    finally:
        np.copyto(t.array, saved)
    return None
