"""The per-step GEMM path: large recurrent kernels with a mask or recurrent dropout (forward),
or a batch too small for the panels (backward).

Each step is one BLAS GEMM over the whole batch, ``h_{t-1} @ recurrent_kernel`` forward and
``dz_t @ recurrent_kernel.T`` backward, between compiled per-step kernels that finish every row
(bias, activation, mask, dropout). The loop over steps runs in Python: at these sizes a step's
GEMM costs far more than the call.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import options
from .activation import activation
from .rowsteps import last_outputs, row_dz, step_dz
from .specialise import absent, skipped, times

_FLAGS = options.SERIAL


@njit(**_FLAGS)
def _forward_step(seq, s, z, xw, act, operand, seen):
    """Step ``s`` after ``z = operand @ recurrent_kernel`` (B, U): add the input projection
    ``xw[:, t]`` (which may be ``seq.outputs`` itself: the slot is read before it is written)
    and the bias, activate, and write each unmasked row's new state; a masked row keeps its
    state and repeats it as its output (zeros before its first unmasked step). With recurrent
    dropout, refill ``operand`` with the new states times the mask (otherwise ``operand`` is
    ``seq.final_state``)."""
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    steps = xw.shape[1]
    t = steps - 1 - s if go_backwards else s
    keep = outputs.shape[1] == steps
    slot = s if keep else 0
    for b in range(z.shape[0]):
        zb, xb, state, out = z[b], xw[b, t], final_state[b], outputs[b, slot]
        if skipped(mask, b, t):
            if keep:
                for u in range(out.shape[0]):
                    out[u] = state[u] if seen[b] else 0
        else:
            seen[b] = True
            for u in range(zb.shape[0]):
                state[u] = activation(zb[u] + (xb[u] + bias[u]), act)
            if keep:
                for u in range(out.shape[0]):
                    out[u] = state[u]
        if not absent(recurrent_dropout):
            for u in range(zb.shape[0]):
                operand[b, u] = times(state[u], recurrent_dropout, b, u)


@njit(**_FLAGS)
def _last_outputs(outputs, final_state, seen):
    last_outputs(outputs, final_state, seen, 0, seen.shape[0])


def forward(seq, recurrent_kernel, act, xw) -> None:
    """A forward call (``seq``, a :func:`.bundles.sequence`) with ``xw`` (B, T, U), the input
    projection, computed already (the outputs themselves when every output is kept in order)."""
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, state = seq
    state[:] = initial_state
    operand = state if recurrent_dropout is None else state * recurrent_dropout
    z = np.empty_like(state)
    seen = np.zeros(state.shape[0], np.bool_)
    for s in range(xw.shape[1]):
        np.matmul(operand, recurrent_kernel, out=z)
        _forward_step(seq, s, z, xw, act, operand, seen)
    if outputs.shape[1] != xw.shape[1]:
        _last_outputs(outputs, state, seen)


@njit(**_FLAGS)
def _backward_step(g, s, act, first, product, dz_step):
    """Step ``s`` around ``product = dz_step @ recurrent_kernel.T``: first ``dh = product *
    recurrent_dropout`` on the rows unmasked at step ``s + 1`` (the previous GEMM's result), then,
    unless ``s < 0`` (the call after the last GEMM), ``dz[:, t]`` and a copy in ``dz_step``."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    steps, batch = outputs.shape[1], outputs.shape[0]
    if s < steps - 1:
        t_next = steps - 2 - s if go_backwards else s + 1
        for b in range(batch):
            if not skipped(mask, b, t_next):
                row, p = dh[b], product[b]
                for k in range(row.shape[0]):
                    row[k] = times(p[k], recurrent_dropout, b, k)
    if s < 0:
        return
    t = steps - 1 - s if go_backwards else s
    for b in range(batch):
        row_dz(outputs, d_outputs, preactivations, dz, dh, mask, b, s, t, first[b], act)
        source, target = dz[b, t], dz_step[b]
        for u in range(target.shape[0]):
            target[u] = source[u]


def backward(g, recurrent_kernel, act, first) -> None:
    """A backward pass (``g``, a :func:`.bundles.gradients`); ``first`` (B,) int64 is each
    row's first unmasked processing step."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    recurrent_t = np.ascontiguousarray(recurrent_kernel.T)
    dz_step = np.empty_like(dh)
    product = np.empty_like(dh)
    for s in range(outputs.shape[1] - 1, -2, -1):
        _backward_step(g, s, act, first, product, dz_step)
        if s >= 0:
            np.matmul(dz_step, recurrent_t, out=product)


@njit(**_FLAGS)
def _plain_step(g, s, t, act, d_bias):
    """Step ``s`` (input time ``t``) without a mask, recurrent dropout or pre-activations:
    ``dz[:, t] = (dh + d_outputs of step s) * act'(outputs[:, s])``, also added to ``d_bias``;
    the next GEMM reads ``dz[:, t]`` where it is."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    for b in range(dh.shape[0]):
        step_dz(outputs, d_outputs, None, dz, dh, b, s, t, True, act)
        row = dz[b, t]
        for u in range(row.shape[0]):
            d_bias[u] += row[u]


def backward_plain(g, recurrent_kernel, act) -> np.ndarray:
    """A backward pass without a mask, recurrent dropout or pre-activations, one pass over the
    batch per step; returns the bias gradient (U,), summed on the way."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    recurrent_t = np.ascontiguousarray(recurrent_kernel.T)
    steps = outputs.shape[1]
    d_bias = np.zeros(dh.shape[1], dh.dtype)
    product = np.empty_like(dh)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        _plain_step(g, s, t, act, d_bias)
        np.matmul(dz[:, t], recurrent_t, out=product)
        dh[:] = product
    return d_bias


def recurrent_gradient_in_order(outputs, initial_state, dz) -> np.ndarray:
    """``sum_t h_{t-1}.T @ dz[:, t]`` (U, U) for states ``outputs`` (B, T, U) in input time order
    and ``h_{-1} = initial_state`` (B, U), without gathering the previous states: flattened to
    (B * T, U), each row of ``dz`` but the first pairs with the row of ``outputs`` before it, which
    is right except at ``t = 0``, where the last state of the batch row before takes the place of
    the initial state; those B - 1 terms are taken out and the initial states' put in."""
    batch, steps, units = outputs.shape
    flat_out = outputs.reshape(batch * steps, units)
    flat_dz = dz.reshape(batch * steps, units)
    gradient = flat_out[:-1].T @ flat_dz[1:]
    gradient -= outputs[:-1, -1].T @ dz[1:, 0]
    gradient += initial_state.T @ dz[:, 0]
    return gradient
