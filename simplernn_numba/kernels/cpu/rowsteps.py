"""What one batch row does at one step, shared by the CPU recurrence paths (all inlined).

Forward: :func:`last_outputs`. Backward: :func:`first_unmasked`, :func:`previous_states`,
:func:`output_gradient`, :func:`row_dz`. ``s`` is a processing step, ``t`` the input time it
reads (``T - 1 - s`` with ``go_backwards``).
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from .activation import derivative
from .specialise import row_or, skipped, times

_FLAGS = dict(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")


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


def previous_states(g, b, previous):
    """Fill ``previous[b, t]`` (input time order) with the state entering the step that reads
    ``x[b, t]``, times the recurrent dropout mask: the ``h_{t-1}`` of ``h_{t-1} @ U`` (nothing
    when ``previous`` is None). ``g`` is a :class:`.bundles.Gradients`."""


@njit(**_FLAGS)
def _fill_previous_states(g, b, previous):
    outputs, steps = g.outputs, g.outputs.shape[1]
    units = outputs.shape[2]
    src = g.initial_state[b]
    for s in range(steps):
        t = steps - 1 - s if g.go_backwards else s
        row = previous[b, t]
        for k in range(units):
            row[k] = times(src[k], g.recurrent_dropout, b, k)
        if not skipped(g.mask, b, t):
            src = outputs[b, s]


@overload(previous_states, inline="always", jit_options={"cache": True})
def _previous_states(g, b, previous):
    if previous is None or isinstance(previous, types.NoneType):
        return lambda g, b, previous: None
    return lambda g, b, previous: _fill_previous_states(g, b, previous)


@njit(**_FLAGS)
def output_gradient(g, b, s, dh):
    """Add the gradient of step ``s``'s output to ``dh`` (row ``b``)."""
    d_outputs, steps = g.d_outputs, g.outputs.shape[1]
    if d_outputs.shape[1] == steps:
        for u in range(dh.shape[0]):
            dh[u] += d_outputs[b, s, u]
    elif d_outputs.shape[1] == 1 and s == steps - 1:
        for u in range(dh.shape[0]):
            dh[u] += d_outputs[b, 0, u]


@njit(**_FLAGS)
def step_dz(g, b, s, t, dh, seen, act):
    """``dz[b, t] = dh * act'`` after adding step ``s``'s output gradient to ``dh`` when the row
    has ``seen`` an unmasked step (Keras repeats the state in the outputs of earlier masked
    steps, so their gradients reach it)."""
    if seen:
        output_gradient(g, b, s, dh)
    out, h = g.dz[b, t], g.outputs[b, s]
    z = row_or(g.preactivations, b, t, h)  # read only by activations that need it
    for u in range(out.shape[0]):
        out[u] = derivative(dh[u], h[u], z[u], act)


@njit(**_FLAGS)
def row_dz(g, b, s, t, dh, first, act):
    """Step ``s`` of row ``b``: ``dz[b, t]`` from ``dh``; False (and ``dz[b, t] = 0``) when the
    step is masked, which passes ``dh`` on unchanged but for the step's output gradient (added
    from the row's first unmasked step ``first`` on)."""
    if skipped(g.mask, b, t):
        if s >= first:
            output_gradient(g, b, s, dh)
        out = g.dz[b, t]
        for u in range(out.shape[0]):
            out[u] = 0
        return False
    step_dz(g, b, s, t, dh, s >= first, act)
    return True
