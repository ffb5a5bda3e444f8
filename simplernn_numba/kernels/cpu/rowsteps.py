"""What one batch row does at one step, shared by the CPU recurrence paths (all inlined).

Forward: :func:`last_outputs`. Backward: :func:`first_unmasked`, :func:`previous_states`,
:func:`output_gradient`, :func:`step_dz`, :func:`row_dz`. ``s`` is a processing step, ``t``
the input time it reads (``T - 1 - s`` with ``go_backwards``).

They take whole arrays and indices, not the argument bundles (:mod:`.bundles`) nor rows of
arrays: each array taken out of a bundle, and each row view passed in, is a new reference,
counted up and down again, and in a helper called for every row and step that counting cost more
than the row's work (the rows path ran 25-40% slower). Kernels take their bundle's arrays out
once, before their loops.
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from . import options
from .activation import derivative
from .specialise import row_or, skipped, times

_FLAGS = options.INLINE


@njit(**_FLAGS)
def last_outputs(outputs, state, seen, lo, hi):
    """``outputs[b, 0]`` for the rows ``lo:hi`` of a call returning the last output only: the
    final ``state`` of a row that had an unmasked step, zeros for one that had none (``seen`` is
    indexed from ``lo``)."""
    for r in range(hi - lo):
        out = outputs[lo + r, 0]
        for u in range(out.shape[0]):
            out[u] = state[lo + r, u] if seen[r] else 0


@njit(**_FLAGS)
def first_unmasked(mask, b, steps, go_backwards):
    """Processing index of row ``b``'s first unmasked step (``steps`` if none; 0 without a mask)."""
    for s in range(steps):
        if not skipped(mask, b, steps - 1 - s if go_backwards else s):
            return s
    return steps


def previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous):
    """Fill ``previous[b, t]`` (input time order) with the state entering the step that reads
    ``x[b, t]``, times the recurrent dropout mask: the ``h_{t-1}`` of ``h_{t-1} @ U`` (nothing
    when ``previous`` is None). ``outputs`` (B, T, U) in processing order."""


@njit(**_FLAGS)
def _fill_previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b,
                          previous):
    steps, units = outputs.shape[1], outputs.shape[2]
    src = initial_state[b]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        row = previous[b, t]
        for k in range(units):
            row[k] = times(src[k], recurrent_dropout, b, k)
        if not skipped(mask, b, t):
            src = outputs[b, s]


@overload(previous_states, inline="always", jit_options=options.OVERLOAD_CACHED)
def _previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous):
    if previous is None or isinstance(previous, types.NoneType):
        return lambda outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous: None
    return lambda outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous: \
        _fill_previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous)


@njit(**_FLAGS)
def output_gradient(d_outputs, steps, b, s, dh):
    """Add the gradient of step ``s``'s output to ``dh`` (row ``b``): ``d_outputs`` is
    (B, T, U), (B, 1, U) for the last output only, or (B, 0, U)."""
    if d_outputs.shape[1] == steps:
        for u in range(dh.shape[0]):
            dh[u] += d_outputs[b, s, u]
    elif d_outputs.shape[1] == 1 and s == steps - 1:
        for u in range(dh.shape[0]):
            dh[u] += d_outputs[b, 0, u]


@njit(**_FLAGS)
def step_dz(outputs, d_outputs, preactivations, dz, dh, b, s, t, seen, act):
    """``dz[b, t] = dh[b] * act'`` after adding step ``s``'s output gradient to ``dh[b]`` when
    the row has ``seen`` an unmasked step (Keras repeats the state in the outputs of earlier
    masked steps, so their gradients reach it)."""
    row = dh[b]
    if seen:
        output_gradient(d_outputs, outputs.shape[1], b, s, row)
    out, h = dz[b, t], outputs[b, s]
    z = row_or(preactivations, b, t, h)  # read only by activations that need it
    for u in range(out.shape[0]):
        out[u] = derivative(row[u], h[u], z[u], act)


@njit(**_FLAGS)
def row_dz(outputs, d_outputs, preactivations, dz, dh, mask, b, s, t, first, act):
    """Step ``s`` of row ``b``: ``dz[b, t]`` from ``dh[b]``; False (and ``dz[b, t] = 0``) when
    the step is masked, which passes ``dh[b]`` on unchanged but for the step's output gradient
    (added from the row's first unmasked step ``first`` on)."""
    if skipped(mask, b, t):
        if s >= first:
            output_gradient(d_outputs, outputs.shape[1], b, s, dh[b])
        out = dz[b, t]
        for u in range(out.shape[0]):
            out[u] = 0
        return False
    step_dz(outputs, d_outputs, preactivations, dz, dh, b, s, t, s >= first, act)
    return True
