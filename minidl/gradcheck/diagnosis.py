"""Recognise common back-pass bug signatures from the analytic and numerical gradients of a tensor."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from itertools import combinations
from typing import NamedTuple

import numpy as np

__all__ = ["FLOAT32_ROUND_OFF", "FLOAT32_WORDS", "diagnose", "factor_words", "flat_words", "is_input",
           "name_factor", "swapped"]

#: failing elements all within this relative error of the numerical value read as float32's round-off (half an
#: ulp is 6e-8 per operation; a few operations and a sum of rounded terms reach some 1e-7)
FLOAT32_ROUND_OFF = 1e-6
#: the words in every float32 diagnosis (which tell the checker to leave out the notes on kinks and finer steps that
#: the float32 rounding, not the cost's shape, caused)
FLOAT32_WORDS = "a float64 check needs float64 throughout"


def name_factor(r: float, batch: int | None = None, sizes: tuple[int, ...] = (),
                slack: float = 1e-6) -> tuple[str, str] | None:
    """Name a ratio when it is a recognisable factor (2, 1/2, the batch size, 1/N, an axis size, the number of
    elements ``prod(sizes)``, a product of several axis sizes, ...), within ``slack`` (relative: the accuracy of
    the numerical gradients).  ``sizes``: the shape of the tensor concerned.

    Returns ``(factor, what it suggests)``, e.g. ``("1/4", "1/N, N = 4 the batch size: ...")``, or ``None``.
    A 2 or 1/2 that is also the batch or an axis size names both: the 2 of a square, or that size.
    """
    if not np.isfinite(r) or r == 0:
        return None
    candidates: list[tuple[float, str, str]] = []
    seen: set[int] = set()
    if batch and batch > 1:
        seen.add(batch)
        candidates += [
            (float(batch), str(batch), f"N = {batch} the batch size: summed where the forward averages?"),
            (1.0 / batch, f"1/{batch}", f"1/N, N = {batch} the batch size: averaged where the forward "
                                        "sums, or divided by N twice?"),
        ]
    for n in sizes:
        if n > 1 and n not in seen:
            seen.add(n)
            candidates += [(float(n), str(n), f"the size {n} of an axis: summed where the forward averages?"),
                           (1.0 / n, f"1/{n}", f"1 over the size {n} of an axis: averaged where the "
                                               "forward sums?")]
    # the number of elements (a mean over the whole tensor, e.g. a loss's mean(d**2) over y_pred), then the
    # products of some of the axis sizes (a mean over the batch and the time steps)
    total = int(np.prod(sizes)) if sizes else 0
    if total > 1 and total not in seen:
        seen.add(total)
        of = " x ".join(str(n) for n in sizes)
        candidates += [(float(total), str(total), f"the number of elements {total} = {of}: a mean's 1/size "
                                                  "forgotten?"),
                       (1.0 / total, f"1/{total}", f"1 over the number of elements {total} = {of}: divided by "
                                                   "the size where the forward sums, or twice?")]
    for k in range(2, len(sizes)):
        for axes in combinations(range(len(sizes)), k):
            p = int(np.prod([sizes[i] for i in axes]))
            if p > 1 and p not in seen:
                seen.add(p)
                of = " x ".join(str(sizes[i]) for i in axes)
                on = ", ".join(str(i) for i in axes)
                candidates += [(float(p), str(p), f"the sizes {of} of axes {on}: summed where the forward "
                                                  "averages over them?"),
                               (1.0 / p, f"1/{p}", f"1 over the sizes {of} of axes {on}: averaged where the "
                                                   "forward sums over them?")]
    for q in sorted({Fraction(p, d) for p in range(1, 9) for d in range(1, 9)}):
        if q != 1:
            hint = "a dropped or extra factor" + (" (e.g. the 2 of a square)" if q in (2, Fraction(1, 2)) else "")
            candidates.append((float(q), str(q), hint))
    for value, short, hint in candidates:
        if value in (2.0, 0.5) and not hint.startswith("a dropped or extra factor"):
            hint = f"the 2 of a square, or {hint}"
        if abs(r - value) <= slack * value:
            return short, hint
        if abs(r + value) <= slack * value:
            return f"-{short}", f"{hint}, and a sign flip"
    return None


def _ratio(a: np.ndarray, n: np.ndarray, t: np.ndarray) -> float | None:
    """The constant r with a = r * n (within tolerance) over these elements, or None."""
    big = np.abs(n) > t
    if np.sum(big) < 2:  # one element always has "a constant factor"
        return None
    r = float(np.dot(a[big], n[big]) / np.dot(n[big], n[big]))
    # (a factor within the slack of 1 is no factor: one element off by 1e-6 would read as one)
    if r == 0 or abs(r - 1) <= 1e-6 or not np.all(np.abs(a - r * n) <= np.maximum(t, 1e-6 * np.abs(r * n))):
        return None
    return r


def factor_words(r: float, batch: int | None, shape: tuple[int, ...], slack: float = 1e-6) -> str:
    """``"analytic = F x numerical (what F suggests)"``, F named within ``slack`` (see :func:`name_factor`)."""
    if abs(r + 1) <= slack:
        return "analytic = -1 x numerical (a sign flip)"
    named = name_factor(r, batch, shape, slack)
    if named is not None:
        return f"analytic = {named[0]} x numerical ({named[1]})"
    said = f"(1 {'+' if r > 1 else '-'} {abs(r - 1):.2e})" if abs(r - 1) < 1e-3 else f"{r:.6g}"
    return f"analytic = {said} x numerical"


def diagnose(name: str, analytic: np.ndarray, numerical: np.ndarray, failed: np.ndarray,
             checked: np.ndarray, flat_index: np.ndarray, shape: tuple[int, ...],
             batch: int | None, tol: np.ndarray, bias_row: bool = False, slack: float = 1e-6,
             coarse: bool = False) -> str | None:
    """The bug signature of a failing tensor, in words, or ``None``.

    Args:
        analytic, numerical, failed, checked, tol: per checked element (1-D, aligned with ``flat_index``).
        shape: the tensor's shape; ``flat_index`` the elements' flat positions in it.
        bias_row: whether row 0 is an absorbed bias (a built-in layer's ``W`` with ``bias=True``).
        slack: the relative accuracy within which a factor is named (1e-6; more for a cost computed in float32).
        coarse: the cost is known to be computed below float64 (judged at that precision): no float32 diagnosis.

    The signatures are tried in the order of the calls below and the first that fits is said (after the first,
    none is read in numerical derivatives all within their tolerance of 0); failing them all, what the failing
    elements show of wrong samples and of a factor they share is said together.
    """
    bad = failed & checked
    if not np.any(bad):
        return None
    g = _Gradients(name=name, analytic=analytic, numerical=numerical, failed=failed, checked=checked, tol=tol,
                   flat_index=flat_index, shape=shape, batch=batch, bias_row=bias_row, slack=slack, bad=bad,
                   a=analytic[checked], n=numerical[checked], t=tol[checked])
    said = _cost_independent(g)
    if said is not None:
        return said
    if not np.any(np.abs(g.n) > g.t):  # too small to read a pattern in
        return None
    said = _never_written(g) or (None if coarse else _float32(g)) or _sign_flip_or_factor(g) or _transposed(g) \
        or _isolated_elements(g)
    if said is not None:
        return said
    factor = _factor_there(g)
    said = _bias_row_alone_or_spared(g, factor)
    if said is not None:
        return said
    words = [_some_samples(g), _shared_factor(g, factor)]
    return "; ".join(word for word in words if word is not None) or None


class _Gradients(NamedTuple):
    """A failing tensor's gradients, as :func:`diagnose` is given them (see its Args); ``bad`` its failing
    checked elements, ``a``, ``n``, ``t`` the analytic and numerical values and the tolerances of the checked
    ones."""

    name: str
    analytic: np.ndarray
    numerical: np.ndarray
    failed: np.ndarray
    checked: np.ndarray
    tol: np.ndarray
    flat_index: np.ndarray
    shape: tuple[int, ...]
    batch: int | None
    bias_row: bool
    slack: float
    bad: np.ndarray
    a: np.ndarray
    n: np.ndarray
    t: np.ndarray


def _cost_independent(g: _Gradients) -> str | None:
    """The cost does not depend on the tensor: every numerical derivative exactly 0, an analytic one not (the
    forward ignores the input, or reads a stale copy of the parameter, or is flat where it is checked)."""
    if not (np.all(g.n == 0) and np.any(g.a != 0)):
        return None
    if is_input(g.name):
        return ("the cost does not depend on the input (every numerical derivative is exactly 0) while "
                "backward returns a non-zero dx: the forward ignores its input or a copy of it is used")
    return ("the cost does not depend on this parameter (every numerical derivative is exactly 0, the "
            "analytic one is not): forward reads a stale copy of it (e.g. self._w = self.W.data.copy() "
            "in __init__) or never uses it, or every checked value sits where forward is flat in it (a clamp "
            "whose backward still passes a gradient on, e.g. a variance below GaussianNLLLoss's eps)")


def _never_written(g: _Gradients) -> str | None:
    """An analytic gradient all zero where the numerical one is not: backward never wrote it."""
    if not np.all(g.a == 0):
        return None
    return ("the analytic gradient is all zero while the numerical one is not: backward never "
            "wrote it (not added into .grad, written to a copy, or the parameter is not used in backward)")


def _float32(g: _Gradients) -> str | None:
    """Every failing element off by float32's round-off at most (relative error <= FLOAT32_ROUND_OFF): something
    computes in float32 where the check runs in float64.  Said firmly when, besides, every non-zero analytic value
    checked is a float32 number (exactly representable in float32: a float64 computation gives that by chance once
    in 2**29 per value), which a backward returning or adding a float32 result gives; else as a question."""
    a_bad, n_bad = g.analytic[g.bad], g.numerical[g.bad]
    size = np.maximum(np.abs(a_bad), np.abs(n_bad))
    if not (np.all(size > 0) and np.all(np.isfinite(size))):
        return None
    rel = float(np.max(np.abs(a_bad - n_bad) / size))
    if rel > FLOAT32_ROUND_OFF:
        return None
    nonzero = g.a[g.a != 0]
    # (a gradient of small integers or halves is a float32 number in float64 too: not a sign of float32)
    exact = nonzero.size >= 2 and bool(np.all(nonzero.astype(np.float32).astype(np.float64) == nonzero)) \
        and not np.all(nonzero * 1024 == np.round(nonzero * 1024))
    said = f"the failing elements are off by at most {rel:.1e} of their value, float32's round-off (6e-8 per operation)"
    if exact:
        return (f"{said}, and every analytic value is a float32 number (exactly representable in float32): backward "
                "computes in float32 (a .astype(np.float32), a float32 cache or constant) and returns or adds that "
                f"result; {FLOAT32_WORDS}")
    # (float32's rounding touches every element, so most fail; a few elements off by that little are an error of
    # their own: the words on isolated elements or samples below say more)
    if 3 * int(np.sum(g.bad)) <= int(np.sum(g.checked)):
        return None
    return (f"{said}: backward (or what it caches, or forward) computes in float32 (a .astype(np.float32), a float32 "
            f"cache or constant; {FLOAT32_WORDS}), or backward is off by that little of its own (a constant or an "
            "eps slightly different from forward's)?")


def _sign_flip_or_factor(g: _Gradients) -> str | None:
    """analytic = r x numerical over the whole tensor: a sign flip (r = -1), else a constant factor, named
    if it is a recognisable one (:func:`factor_words`).  A tensor of one element (a scalar temperature) has any
    ratio, so only its sign flip is said: analytic within the tolerance of minus the numerical value."""
    if g.a.size == 1 and int(np.prod(g.shape)) == 1:
        if abs(g.n[0]) > g.t[0] and abs(g.a[0] + g.n[0]) <= max(float(g.t[0]), g.slack * abs(g.n[0])):
            return "sign flip: the analytic gradient is minus the numerical one (a wrong sign in backward)"
        return None
    r = _ratio(g.a, g.n, g.t)
    if r is None:
        return None
    if abs(r + 1) <= g.slack:
        return "sign flip: the analytic gradient is minus the numerical one (a wrong sign in backward)"
    return f"constant factor over the whole tensor: {factor_words(r, g.batch, g.shape, g.slack)}"


def _transposed(g: _Gradients) -> str | None:
    """Every element checked, and the analytic gradient the transpose of the numerical one: of a square
    matrix (or of its weight rows, below a bias row 0), or of the tensor reshaped."""
    shape = g.shape
    if not (g.flat_index.size == int(np.prod(shape)) and np.all(g.checked)):
        return None
    flat_a = np.zeros(int(np.prod(shape)))
    flat_n = np.zeros_like(flat_a)
    flat_a[g.flat_index] = g.analytic
    flat_n[g.flat_index] = g.numerical
    A, N = flat_a.reshape(shape), flat_n.reshape(shape)
    atol = float(np.max(g.t))
    if len(shape) == 2:
        for first_row, what in ((0, ""), (1, " (the weight rows, below the bias row 0)")):
            a2, n2 = A[first_row:], N[first_row:]
            if a2.shape[0] == a2.shape[1] and a2.size > 1 and not np.allclose(n2, n2.T, atol=atol) \
                    and np.allclose(a2, n2.T, rtol=1e-6, atol=atol):
                return f"transposed: the analytic gradient{what} is the transpose of the right one"
    if N.size > 1 and not np.allclose(N.reshape(-1), N.T.reshape(-1), atol=atol) \
            and np.allclose(A.reshape(-1), N.T.reshape(-1), rtol=1e-6, atol=atol):
        return "transposed: the analytic gradient holds the transpose of the right one, reshaped"
    return None


def _isolated_elements(g: _Gradients) -> str | None:
    """At most 3 failing elements, among 20 times as many checked ones, or each in a row (a sample) of its
    own (see below): an indexing bug or a special case; their positions, and where they are a sign flip."""
    analytic, numerical, tol, bad, shape, flat_index = g.analytic, g.numerical, g.tol, g.bad, g.shape, g.flat_index
    k = int(np.sum(bad))
    rows_bad = np.unravel_index(flat_index[bad], shape)[0] if shape else np.zeros(k, dtype=int)
    # a handful of failing elements, each in a row (a sample) of its own, among at least 4 times as many checked
    # ones (1 of a 5x4 input: before, "only samples [0] of the batch are wrong"): not a bug of whole samples or
    # rows; not said where they fail with a numerical derivative of exactly 0 (the clamp signature, said below)
    # nor of an absorbed bias row failing alone (its words below say more); nor where they share a column (or
    # another position past axis 0: one output unit's gradient wrong) or one factor (the words below name it)
    apart = np.unique(rows_bad).size == k and 4 * k <= int(np.sum(g.checked)) and not np.all(numerical[bad] == 0) \
        and not (g.bias_row and len(shape) >= 2 and np.all(rows_bad == 0))
    if apart and k >= 2:
        where_bad = np.unravel_index(flat_index[bad], shape)
        shared = any(np.unique(where).size == 1 for axis, where in enumerate(where_bad)
                     if axis and shape[axis] > 1)  # (an axis of size 1 is shared by every element: no sign)
        apart = not shared and _ratio(analytic[bad], numerical[bad], tol[bad]) is None
    if not (k <= 3 and (np.mean(g.failed[g.checked]) < 0.05 or apart)):
        return None
    idx = [tuple(int(i) for i in np.unravel_index(int(j), shape)) for j in flat_index[bad][:3]]
    a_bad, n_bad, t_bad = analytic[bad], numerical[bad], tol[bad]
    # (minus the numerical value, within the tolerance, where that value is above it: a sign flip there)
    flip = bool(np.all(np.abs(n_bad) > t_bad) and np.all(np.abs(a_bad + n_bad) <= t_bad))
    there = ", where the analytic value is minus the numerical one (a sign flip)" if flip else ""
    return f"only {k} isolated element(s) wrong, at {idx}{there}: an indexing bug or a special case in backward?"


def _factor_there(g: _Gradients) -> str:
    """``"; there analytic = F x numerical (...)"`` when the failing elements share one factor F, else ``""``:
    the words :func:`_bias_row_alone_or_spared` and :func:`_shared_factor` add."""
    r_bad = _ratio(g.analytic[g.bad], g.numerical[g.bad], g.tol[g.bad])
    return f"; there {factor_words(r_bad, g.batch, g.shape, g.slack)}" if r_bad is not None else ""


def _rows(g: _Gradients) -> np.ndarray | None:
    """The row (axis 0) of each checked element, for a tensor of at least 2 axes; else None."""
    return np.unravel_index(g.flat_index, g.shape)[0] if len(g.shape) >= 2 else None


def _bias_row_alone_or_spared(g: _Gradients, factor: str) -> str | None:
    """A parameter with an absorbed bias row 0: only that row wrong (the bias term), or only the weight rows
    below it, the bias row known right (some of it checked and above its tolerance); ``factor`` added."""
    rows = _rows(g)
    if rows is None or is_input(g.name) or not g.bias_row:
        return None
    bad = g.bad
    if np.all(rows[bad] == 0):
        return f"only row 0 (the absorbed bias row) is wrong{factor}: check the bias term (dW[0] += g.sum(axis=0))"
    row0_ok = np.any(g.checked & (rows == 0) & (np.abs(g.numerical) > g.tol))
    if row0_ok and not np.any(rows[bad] == 0) and np.unique(rows[bad]).size > 1:
        return f"only the weight rows (1:) are wrong, the bias row 0 is right{factor}"
    return None


def _some_samples(g: _Gradients) -> str | None:
    """An input whose failing elements lie in some samples (rows of axis 0) while others are known right (every
    element of them checked, none failing): an error that depends on the sample, or a clamp only they reach."""
    rows, shape, bad, numerical = _rows(g), g.shape, g.bad, g.numerical
    if not (is_input(g.name) and rows is not None and shape[0] > 1):
        return None
    bad_rows = np.unique(rows[bad])
    # a sample is known right only if every element of it was checked (not sampled, not at a kink)
    # and none failed: with a sample of elements, a row whose checked elements passed may be wrong
    # in the others
    row_size = int(np.prod(shape[1:]))
    whole = np.flatnonzero(np.bincount(rows[g.checked], minlength=shape[0]) == row_size)
    right_rows = np.setdiff1d(whole, bad_rows)
    if not (bad_rows.size < shape[0] and right_rows.size):
        return None
    listed = bad_rows.tolist()[:8]
    more = f" and {bad_rows.size - 8} more" if bad_rows.size > 8 else ""
    # (numerical exactly 0 where it fails, the analytic not: the tensor-wide clamp signature, in a
    # clamp or threshold only those samples reach, not an indexing bug)
    why = ("where they fail every numerical derivative is exactly 0 and the analytic one is not: those "
           "samples sit where forward is flat -- a clamp or threshold only they reach, e.g. np.clip -- and "
           "backward passes the gradient on anyway; or an indexing or broadcasting bug that depends on the "
           "sample" if np.all(numerical[bad] == 0) else
           "the error depends on the sample: an indexing or broadcasting bug?")
    return (f"only samples {listed}{more} of the batch are wrong, samples "
            f"{right_rows.tolist()[:8]}{' ...' if right_rows.size > 8 else ''} are right ({why})")


def _shared_factor(g: _Gradients, factor: str) -> str | None:
    """The failing elements share one factor (``factor``, from :func:`_factor_there`, or ``""``: None)."""
    if not factor:
        return None
    return f"the {int(np.sum(g.bad))} failing elements share one factor{factor}"


def ignored_upstream(analytic: np.ndarray, doubled: np.ndarray, ones: tuple[float, float] | None) -> str | None:
    """The backward ignores its grad_output: the gradient it gives (``analytic``, at the point, for the cost's
    upstream gradient R) is the one it gives for 2R (``doubled``), where a right backward, linear in grad_output,
    gives twice it.  ``ones``: the gradient's slope along a random direction and the numerical slope there of
    ``sum(output)``, the cost whose grad_output is all ones; when they agree, it computes as if grad_output were
    all ones (``np.ones_like(grad_output)`` where ``grad_output`` is due).  None when it followed R, or is all 0.  The
    checker runs those passes only for a tensor that fails (:meth:`.GradientChecker._upstream_ignored`)."""
    if analytic.shape != doubled.shape or not np.any(analytic) or not np.all(np.isfinite(analytic)):
        return None
    if not np.all(np.abs(doubled - analytic) <= 1e-9 * float(np.max(np.abs(analytic)))):
        return None
    as_ones = ones is not None and abs(ones[0] - ones[1]) <= 1e-4 * max(abs(ones[0]), abs(ones[1]))
    return ("the backward ignores its grad_output: this gradient does not change when grad_output is doubled"
            + (" (it computes as if grad_output were all ones)" if as_ones else ""))


def flat_words(names: list[str], sampled: Sequence[str] = (), low_precision: bool = False) -> str:
    """The note on tensors whose every checked derivative is exactly 0, analytic and numerical (status ``"flat"``):
    the cost does not depend on them, at least not at this point, so nothing of their backward was tested.

    ``sampled``: those of them whose numerical derivatives were taken on some elements only; ``low_precision``:
    the report names a layer or loss computing below float64. Either way the cause is not named (rounding, or an
    element not checked, may be why the cost looked flat), only what was seen."""
    them = ", ".join(names)
    it, its = ("it", "its") if len(names) == 1 else ("them", "their")
    words = (f"the cost is flat in {them} at the checked point (every analytic and numerical derivative is exactly "
             f"0): nothing of {its} backward was tested, and a wrong one would pass as well. ")
    if not sampled and not low_precision:
        return words + (
            f"Either the cost does not depend on {it} at all (a parameter forward never uses), or not here: every "
            f"sample that reaches {it} carries no weight (targets equal to the loss's ignore_index, a zero mask or "
            f"sample weight), or the units after {it} are dead (a ReLU whose input is negative for every sample, a "
            "clamp every value reaches); check again on other inputs or targets: rows that carry weight, units that "
            "are alive")
    why = []
    if sampled:
        one = len(sampled) == 1
        why.append(f"{', '.join(sampled)} {'was' if one else 'were'} moved on a sample of elements only (backward "
                   "gives 0 for every one; one not sampled may move the cost)")
    if low_precision:
        why.append("something computes below float64 (see the first note), whose rounding can keep the cost from "
                   "moving")
    return words + (f"The cause is not certain here: {'; and '.join(why)}; check again"
                    f"{' with mode=' + repr('full') if sampled else ''}"
                    f"{' once it computes in float64' if low_precision else ''}, and on other inputs or targets")


def is_input(name: str) -> bool:
    """Whether a checked tensor's name is the input's: ``"input"``, or ``"input[i]"`` for several."""
    return name == "input" or (name.startswith("input[") and name.endswith("]"))


def _returned(name: str) -> str:
    """How an input's gradient is called among what ``backward`` returns: ``dx``, or ``dCost/dinput[i]``."""
    return "dx" if name == "input" else f"dCost/d{name}"


def _gradient_of(name: str) -> str:
    return f"dCost/d{name}" if is_input(name) else f"gradient of '{name}'"


def swapped(values: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, str]:
    """Gradients written into the wrong tensor: the analytic gradient of one tensor equals, element by
    element, the numerical gradient of another of the same shape (the input included: dx).

    Args:
        values: per tensor checked element by element, ``(analytic, numerical, checked, tol)``, arrays
            of the tensor's shape (``checked`` False where an element was not checked: not sampled, or at
            a kink); an element agrees when ``|analytic - numerical| <= tol``, as in the check itself.

    Returns:
        ``{target: words}`` for every tensor with failing elements whose analytic gradient agrees with
        the numerical gradient of another tensor ``source`` (passing or not) on every element judged
        in both (a finite numerical value and tolerance) -- among them at least one failing element
        of the target, and one where the source's numerical gradient is above its tolerance (two
        gradients of ~0 "agree" by default).  On the target's failing elements the source must
        explain the error: the analytic value within the target's own (tighter) tolerance of the
        source's numerical one, and the two numerical gradients apart by more than both tolerances
        (else the gradients are legitimately equal there and the error is the target's own).  A
        source that matches the other way round too (a swap) is preferred.
    """
    def writes(target: str, source: str) -> bool:
        a_t, n_t, c_t, tol_t = values[target]
        _, n_s, c_s, tol_s = values[source]
        if source == target or a_t.shape != n_s.shape:
            return False
        both = c_t & c_s & np.isfinite(n_t) & np.isfinite(tol_t) & np.isfinite(n_s) & np.isfinite(tol_s)
        failing = both & ~(np.abs(a_t - n_t) <= tol_t)
        if not (np.any(failing) and np.any(np.abs(n_s[both]) > tol_s[both])):
            return False
        explained = np.abs(a_t[failing] - n_s[failing]) <= np.minimum(tol_t[failing], tol_s[failing])
        apart = np.abs(n_s[failing] - n_t[failing]) > tol_s[failing] + tol_t[failing]
        return bool(np.all(explained) and np.all(apart)
                    and np.all(np.abs(a_t[both] - n_s[both]) <= tol_s[both]))

    found: dict[str, str] = {}
    for target in values:
        sources = [s for s in values if writes(target, s)]
        if not sources:
            continue
        mutual = [s for s in sources if writes(s, target)]
        source = (mutual or sources)[0]
        said = f"the analytic {_gradient_of(target)} equals the numerical {_gradient_of(source)}"
        if mutual and is_input(target) and is_input(source):
            found[target] = (f"{said} (and vice versa): the gradients of two inputs are swapped in the tuple "
                             "backward returns")
        elif mutual and (is_input(target) or is_input(source)):
            param, dx = (source, _returned(target)) if is_input(target) else (target, _returned(source))
            found[target] = (f"{said} (and vice versa): {dx} and the gradient of '{param}' are swapped in backward "
                             f"({dx} written into its .grad, its gradient returned as {dx})")
        elif mutual:
            found[target] = (f"{said} (and vice versa): the two gradients are swapped in backward (each written "
                             "into the other's .grad)")
        elif is_input(target):
            found[target] = f"{said}: backward returns the {_gradient_of(source)} as {_returned(target)}"
        else:
            found[target] = f"{said}: backward writes the {_gradient_of(source)} into the .grad of '{target}'"
    return found
