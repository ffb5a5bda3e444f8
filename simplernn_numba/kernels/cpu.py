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

from .. import _validate
from .. import activations as A
from .._threading import parallel_section


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
    _validate.kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask,
                               input_dropout, recurrent_dropout)
    batch, steps, _ = x.shape
    units = kernel.shape[1]
    xw = input_projection(x, kernel, input_dropout)
    outputs = np.empty((batch, steps if return_sequences else 1, units), x.dtype)
    final_state = np.empty((batch, units), x.dtype)
    with parallel_section():
        _recurrence(xw, recurrent_kernel, bias, initial_state, mask, recurrent_dropout,
                    bool(go_backwards), A.code(activation), outputs, final_state)
    return (outputs if return_sequences else outputs[:, 0]), final_state
