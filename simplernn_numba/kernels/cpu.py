"""Numba CPU kernels for SimpleRNN.

The input projection ``x @ kernel`` for all timesteps is one large matrix
product (BLAS); only ``h_{t-1} @ recurrent_kernel`` is sequential. The
recurrence runs in a ``@njit(parallel=True)`` loop over batch rows, with bias
and activation fused into it. See :mod:`simplernn_numba.kernels` for the
shared contract.

>>> import numpy as np
>>> x = np.ones((1, 3, 1))
>>> out, h = forward(x, np.ones((1, 1)), np.ones((1, 1)), None, np.zeros((1, 1)),
...                  activation="linear")
>>> out.ravel().tolist(), h.ravel().tolist()
([1.0, 2.0, 3.0], [3.0])
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .. import activations as A


@njit(cache=True, inline="always")
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@njit(cache=True)
def activate(z, act):
    """Apply activation code ``act`` to the 1-D array ``z`` in place."""
    n = z.shape[0]
    if act == A.TANH:
        for i in range(n):
            z[i] = np.tanh(z[i])
    elif act == A.LINEAR:
        pass
    elif act == A.RELU:
        for i in range(n):
            z[i] = max(z[i], 0.0)
    elif act == A.SIGMOID:
        for i in range(n):
            z[i] = _sigmoid(z[i])
    elif act == A.ELU:
        for i in range(n):
            if z[i] <= 0:
                z[i] = math.expm1(z[i])
    elif act == A.SELU:
        for i in range(n):
            v = z[i]
            z[i] = A.SELU_SCALE * (v if v > 0 else A.SELU_ALPHA * math.expm1(v))
    elif act == A.SOFTPLUS:
        for i in range(n):
            z[i] = _softplus(z[i])
    elif act == A.SOFTSIGN:
        for i in range(n):
            z[i] = z[i] / (1.0 + abs(z[i]))
    elif act == A.HARD_SIGMOID:
        for i in range(n):
            z[i] = min(max(z[i] / 6.0 + 0.5, 0.0), 1.0)
    elif act == A.EXPONENTIAL:
        for i in range(n):
            z[i] = math.exp(z[i])
    elif act == A.SILU:
        for i in range(n):
            z[i] = z[i] * _sigmoid(z[i])
    elif act == A.GELU:
        for i in range(n):
            z[i] = 0.5 * z[i] * (1.0 + math.erf(z[i] / math.sqrt(2.0)))
    elif act == A.RELU6:
        for i in range(n):
            z[i] = min(max(z[i], 0.0), 6.0)
    elif act == A.LEAKY_RELU:
        for i in range(n):
            if z[i] < 0:
                z[i] = z[i] * A.LEAKY_RELU_SLOPE
    elif act == A.MISH:
        for i in range(n):
            z[i] = z[i] * np.tanh(_softplus(z[i]))
    elif act == A.HARD_SILU:
        for i in range(n):
            z[i] = z[i] * min(max(z[i] / 6.0 + 0.5, 0.0), 1.0)


@njit(parallel=True, cache=True)
def _recurrence(xw, recurrent_kernel, bias, initial_state, mask, recurrent_dropout,
                go_backwards, act, outputs, final_state):
    """Run the recurrence for every batch row in parallel.

    ``xw`` (B, T, U) is the input projection; ``outputs`` is (B, T, U) when all
    outputs are wanted or (B, 1, U) for the last output only (slot 0 is then
    overwritten at every step). ``final_state`` (B, U) receives the last state.
    """
    batch, steps, units = xw.shape
    keep_all = outputs.shape[1] == steps
    for b in prange(batch):
        h = final_state[b]
        h[:] = initial_state[b]
        h_in = np.empty(units, xw.dtype)
        z = np.empty(units, xw.dtype)
        seen = False
        for s in range(steps):
            t = steps - 1 - s if go_backwards else s
            slot = s if keep_all else 0
            if mask is not None and not mask[b, t]:
                if seen:
                    outputs[b, slot] = h
                else:
                    outputs[b, slot] = 0
                continue
            seen = True
            if recurrent_dropout is not None:
                for k in range(units):
                    h_in[k] = h[k] * recurrent_dropout[b, k]
            else:
                h_in[:] = h
            if bias is not None:
                for u in range(units):
                    z[u] = xw[b, t, u] + bias[u]
            else:
                z[:] = xw[b, t]
            for k in range(units):
                hk = h_in[k]
                for u in range(units):
                    z[u] += hk * recurrent_kernel[k, u]
            activate(z, act)
            h[:] = z
            outputs[b, slot] = z


def input_projection(x, kernel, input_dropout=None):
    """``(x * input_dropout) @ kernel`` for all timesteps as one GEMM: (B, T, U)."""
    batch, steps, features = x.shape
    if input_dropout is not None:
        x = x * input_dropout[:, None, :]
    return (x.reshape(batch * steps, features) @ kernel).reshape(batch, steps, kernel.shape[1])


def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the CPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.forward`;
    ``activation`` must be a built-in name (callables use the reference).
    """
    batch, steps, _ = x.shape
    units = kernel.shape[1]
    xw = input_projection(x, kernel, input_dropout)
    outputs = np.empty((batch, steps if return_sequences else 1, units), x.dtype)
    final_state = np.empty((batch, units), x.dtype)
    _recurrence(xw, recurrent_kernel, bias, initial_state, mask, recurrent_dropout,
                bool(go_backwards), A.code(activation), outputs, final_state)
    return (outputs if return_sequences else outputs[:, 0]), final_state


# ---------------------------------------------------------------------------------------------------
# Backward pass (BPTT). Only dh_{t-1} = (dz_t @ recurrent_kernel.T) * recurrent_dropout is sequential;
# the weight and input gradients are large matrix products over all timesteps after the loop.
# Work arrays (dz, previous states, pre-activations) are kept in input time order so that the
# products need no reordering; outputs and d_outputs arrive in processing order.
# ---------------------------------------------------------------------------------------------------

#: Activations whose derivative cannot be recovered from the output alone (need the pre-activation).
_NEEDS_PREACTIVATION = (A.SILU, A.GELU, A.MISH, A.HARD_SILU)

#: Above this many multiply-adds per step (batch * units**2) the sequential product runs as one BLAS
#: GEMM per step over the whole batch instead of per-row loops in parallel over the batch.
_GEMM_STEP_WORK = 1 << 17

#: Below this many multiply-adds in the whole recurrence (batch * steps * units**2) the per-row
#: recurrence runs on one thread: starting the thread pool would cost more than the work.
_PARALLEL_WORK = 1 << 18


@njit(cache=True)
def _grad_from_output(h, act):
    """``act'(z)`` written with the output ``h = act(z)`` (every activation but those needing ``z``)."""
    if act == A.TANH:
        return 1.0 - h * h
    if act == A.LINEAR:
        return 1.0
    if act == A.RELU:
        return 1.0 if h > 0 else 0.0
    if act == A.SIGMOID:
        return h * (1.0 - h)
    if act == A.ELU:
        return 1.0 if h > 0 else h + 1.0
    if act == A.SELU:
        return A.SELU_SCALE if h > 0 else h + A.SELU_SCALE * A.SELU_ALPHA
    if act == A.SOFTPLUS:
        return -math.expm1(-h)
    if act == A.SOFTSIGN:
        a = 1.0 - abs(h)
        return a * a
    if act == A.HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < h < 1.0 else 0.0
    if act == A.EXPONENTIAL:
        return h
    if act == A.RELU6:
        return 1.0 if 0.0 < h < 6.0 else 0.0
    return 1.0 if h > 0 else A.LEAKY_RELU_SLOPE  # LEAKY_RELU


@njit(cache=True)
def _grad_from_preactivation(z, act):
    """``act'(z)`` for the activations in ``_NEEDS_PREACTIVATION``."""
    if act == A.SILU:
        s = _sigmoid(z)
        return s + z * s * (1.0 - s)
    if act == A.GELU:
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) + z * math.exp(-0.5 * z * z) / math.sqrt(
            2.0 * math.pi)
    if act == A.MISH:
        t = np.tanh(_softplus(z))
        return t + z * (1.0 - t * t) * _sigmoid(z)
    hs = min(max(z / 6.0 + 0.5, 0.0), 1.0)  # HARD_SILU
    return hs + (z / 6.0 if -3.0 < z < 3.0 else 0.0)


@njit(cache=True)
def _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                         go_backwards, prev):
    steps, units = outputs.shape[1], outputs.shape[2]
    src = initial_state[b]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        if use_dropout:
            for k in range(units):
                prev[b, t, k] = src[k] * recurrent_dropout[b, k]
        else:
            prev[b, t] = src
        if not use_mask or mask[b, t]:
            src = outputs[b, s]


@njit(cache=True)
def _previous_states(outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                     go_backwards, prev):
    """Fill ``prev[b, t]`` (input time order) with the state entering the step that reads ``x[b, t]``,
    times the recurrent dropout mask: the ``h_{t-1}`` of ``h_{t-1} @ recurrent_kernel``."""
    for b in range(outputs.shape[0]):
        _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                             go_backwards, prev)


@njit(cache=True)
def _step_dz(b, s, t, dh, outputs, d_outputs, seen, preact, use_preact, act, dz):
    """Add ``d_outputs`` of step ``s`` to ``dh`` and write ``dz[b, t] = dh * act'``."""
    units = dh.shape[0]
    if seen:
        if d_outputs.shape[1] == outputs.shape[1]:
            for u in range(units):
                dh[u] += d_outputs[b, s, u]
        elif d_outputs.shape[1] == 1 and s == outputs.shape[1] - 1:
            for u in range(units):
                dh[u] += d_outputs[b, 0, u]
    if use_preact:
        for u in range(units):
            dz[b, t, u] = dh[u] * _grad_from_preactivation(preact[b, t, u], act)
    else:
        for u in range(units):
            dz[b, t, u] = dh[u] * _grad_from_output(outputs[b, s, u], act)


@njit(cache=True)
def _first_unmasked(mask, use_mask, b, steps, go_backwards):
    """Processing index of row ``b``'s first unmasked step (``steps`` if none)."""
    if not use_mask:
        return 0
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        if mask[b, t]:
            return s
    return steps


@njit(cache=True, fastmath={"contract"})
def _bptt_row(b, outputs, d_outputs, preact, use_preact, recurrent_kernel_t, initial_state, mask, use_mask,
              recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz):
    """Backward recurrence of batch row ``b`` (see :func:`_bptt_rows`)."""
    steps, units = outputs.shape[1], outputs.shape[2]
    if fill_prev:
        _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout,
                             use_dropout, go_backwards, prev)
    acc = dh[b]
    first = _first_unmasked(mask, use_mask, b, steps, go_backwards)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        if use_mask and not mask[b, t]:
            if s >= first and d_outputs.shape[1] == steps:
                for u in range(units):
                    acc[u] += d_outputs[b, s, u]
            elif s >= first and d_outputs.shape[1] == 1 and s == steps - 1:
                for u in range(units):
                    acc[u] += d_outputs[b, 0, u]
            dz[b, t] = 0
            continue
        _step_dz(b, s, t, acc, outputs, d_outputs, s >= first, preact, use_preact, act, dz)
        acc[:] = 0
        for u in range(units):
            g = dz[b, t, u]
            for k in range(units):
                acc[k] += g * recurrent_kernel_t[u, k]
        if use_dropout:
            for k in range(units):
                acc[k] *= recurrent_dropout[b, k]


@njit(parallel=True, cache=True)
def _bptt_rows(outputs, d_outputs, preact, use_preact, recurrent_kernel_t, initial_state, mask, use_mask,
               recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz):
    """Backward recurrence, one batch row per thread (small units).

    ``dh`` (B, U) enters holding d_state and leaves holding the initial-state gradient;
    ``dz`` (B, T, U) receives the pre-activation gradients in input time order. With
    ``fill_prev``, each row first fills its part of ``prev`` as :func:`_previous_states` does.
    """
    for b in prange(outputs.shape[0]):
        _bptt_row(b, outputs, d_outputs, preact, use_preact, recurrent_kernel_t, initial_state, mask,
                  use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz)


@njit(cache=True)
def _bptt_rows_serial(outputs, d_outputs, preact, use_preact, recurrent_kernel_t, initial_state, mask,
                      use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz):
    """:func:`_bptt_rows` on the calling thread, for work too small to share."""
    for b in range(outputs.shape[0]):
        _bptt_row(b, outputs, d_outputs, preact, use_preact, recurrent_kernel_t, initial_state, mask,
                  use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz)


@njit(cache=True)
def _bptt_step(s, outputs, d_outputs, preact, use_preact, mask, use_mask, recurrent_dropout, use_dropout,
               go_backwards, act, first, product, dh, dz_step, dz):
    """Step ``s`` of the per-step GEMM path, around ``product = dz_step @ recurrent_kernel.T``.

    First ``dh = product * recurrent_dropout`` on the rows unmasked at step ``s + 1`` (the product
    of the previous call), then, unless ``s < 0`` (the final call), ``dz_step`` and ``dz[:, t]``.
    """
    batch, steps, units = outputs.shape
    if s < steps - 1:
        t_next = steps - 2 - s if go_backwards else s + 1
        for b in range(batch):
            if use_mask and not mask[b, t_next]:
                continue
            if use_dropout:
                for k in range(units):
                    dh[b, k] = product[b, k] * recurrent_dropout[b, k]
            else:
                dh[b] = product[b]
    if s < 0:
        return
    t = steps - 1 - s if go_backwards else s
    for b in range(batch):
        acc = dh[b]
        if use_mask and not mask[b, t]:
            if s >= first[b] and d_outputs.shape[1] == steps:
                for u in range(units):
                    acc[u] += d_outputs[b, s, u]
            elif s >= first[b] and d_outputs.shape[1] == 1 and s == steps - 1:
                for u in range(units):
                    acc[u] += d_outputs[b, 0, u]
            dz[b, t] = 0
            dz_step[b] = 0
            continue
        _step_dz(b, s, t, acc, outputs, d_outputs, s >= first[b], preact, use_preact, act, dz)
        dz_step[b] = dz[b, t]


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """BPTT on the CPU (same contract as :func:`simplernn_numba.kernels.reference.backward`).

    ``activation`` must be a built-in name. Activations whose derivative is a
    function of the output (tanh, relu, sigmoid, ...) take it from ``outputs``;
    silu, gelu, mish and hard_silu recompute the pre-activations with two GEMMs.
    """
    dtype = x.dtype
    batch, steps, features = x.shape
    units = kernel.shape[1]
    act = A.code(activation)
    go_backwards = bool(go_backwards)
    use_mask, use_dropout = mask is not None, recurrent_dropout is not None
    mask_arr = mask if use_mask else np.ones((1, 1), np.bool_)
    rdrop = recurrent_dropout if use_dropout else np.ones((1, 1), dtype)
    if d_outputs is None:
        d_seq = np.zeros((batch, 0, units), dtype)
    else:
        d_seq = d_outputs.reshape(batch, d_outputs.shape[1] if d_outputs.ndim == 3 else 1, units)
    dh = np.zeros((batch, units), dtype) if d_state is None else np.array(d_state, dtype=dtype)

    prev = np.empty((batch, steps, units), dtype)
    flat_prev = prev.reshape(batch * steps, units)
    use_preact = act in _NEEDS_PREACTIVATION
    use_rows = batch * units * units < _GEMM_STEP_WORK
    if use_preact or not use_rows:
        _previous_states(outputs, initial_state, mask_arr, use_mask, rdrop, use_dropout, go_backwards, prev)
    if use_preact:
        preact = input_projection(x, kernel, input_dropout)
        preact += (flat_prev @ recurrent_kernel).reshape(batch, steps, units)
        if bias is not None:
            preact += bias
    else:
        preact = np.empty((1, 1, 1), dtype)
    recurrent_kernel_t = np.ascontiguousarray(recurrent_kernel.T)
    dz = np.empty((batch, steps, units), dtype)
    if use_rows:
        parallel = batch > 1 and batch * steps * units * units >= _PARALLEL_WORK
        rows = _bptt_rows if parallel else _bptt_rows_serial
        rows(outputs, d_seq, preact, use_preact, recurrent_kernel_t, initial_state, mask_arr, use_mask,
             rdrop, use_dropout, go_backwards, act, not use_preact, prev, dh, dz)
    else:
        if use_mask:
            in_order = mask[:, ::-1] if go_backwards else mask
            first = np.where(in_order.any(axis=1), in_order.argmax(axis=1), steps)
        else:
            first = np.zeros(batch, np.int64)
        dz_step = np.empty((batch, units), dtype)
        product = np.empty((batch, units), dtype)
        for s in range(steps - 1, -2, -1):
            _bptt_step(s, outputs, d_seq, preact, use_preact, mask_arr, use_mask, rdrop, use_dropout,
                       go_backwards, act, first, product, dh, dz_step, dz)
            if s >= 0:
                np.matmul(dz_step, recurrent_kernel_t, out=product)

    flat_dz = dz.reshape(batch * steps, units)
    x_in = x if input_dropout is None else x * input_dropout[:, None, :]
    d_x = (flat_dz @ kernel.T).reshape(batch, steps, features)
    if input_dropout is not None:
        d_x *= input_dropout[:, None, :]
    return {
        "inputs": d_x,
        "initial_state": dh,
        "kernel": x_in.reshape(batch * steps, features).T @ flat_dz,
        "recurrent_kernel": flat_prev.T @ flat_dz,
        "bias": None if bias is None else flat_dz.sum(axis=0),
    }
