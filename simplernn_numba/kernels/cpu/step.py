"""One SimpleRNN timestep for a batch (streaming inference, :mod:`simplernn_numba.compiled`).

``out = activation(x_t @ kernel + state @ recurrent_kernel + bias)`` without BLAS: for the
small batches of online inference a BLAS call costs more than the arithmetic. With ``kernel``,
``recurrent_kernel``, ``bias`` and ``out`` typed C-contiguous, each row's units go one SIMD
vector at a time (:mod:`.simd`) with the sums in registers: the bias and the input terms in one
chain, the state terms in four interleaved chains (four FMAs in flight hide an FMA's latency),
so that a step is not one chain of ``features + units`` dependent FMAs; float32 tanh then
activates them in registers (:func:`.tanh.tanh_f32_vector`). The units left over (fewer than a
vector), the other activations and arrays of other layouts take plain loops.

>>> import numpy as np
>>> from simplernn_numba.kernels.cpu.activation import choose
>>> out = np.empty((1, 2))
>>> step(np.ones((1, 1)), np.zeros((1, 2)), np.ones((1, 2)), np.eye(2), np.zeros(2),
...      choose("linear"), out)
>>> out.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from ... import activations
from . import options
from .activation import activation
from .simd import lane_count, vadd, vbroadcast, vfma, vload, vload_row, vstore, vzero, widest
from .specialise import value_of
from .tanh import tanh_f32_vector


@njit(**options.NOGIL_EXACT)
def step(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """Write the next state into ``out``.

    Parameters
    ----------
    x_t : ndarray (B, F)
    state : ndarray (B, U)
        The previous state; must not overlap ``out``.
    kernel : ndarray (F, U)
    recurrent_kernel : ndarray (U, U)
    bias : ndarray (U,) (zeros for a layer without bias)
    act : static choice
        The activation (:func:`simplernn_numba.kernels.cpu.activation.choose`).
    out : ndarray (B, U)
        Receives the new state.
    """
    units = kernel.shape[1]
    for b in range(x_t.shape[0]):
        whole, activated = _vectors(x_t, state, kernel, recurrent_kernel, bias, act, out, b)
        _scalars(x_t, state, kernel, recurrent_kernel, bias, out, b, whole)
        for u in range(activated, units):
            out[b, u] = activation(out[b, u], act)


@njit(**options.INLINE_PLAIN)
def _scalars(x_t, state, kernel, recurrent_kernel, bias, out, b, lo):
    """Pre-activations of row ``b``'s units ``lo:`` into ``out[b]``, summed in memory."""
    units = kernel.shape[1]
    for u in range(lo, units):
        out[b, u] = bias[u]
    for f in range(x_t.shape[1]):
        xf = x_t[b, f]
        for u in range(lo, units):
            out[b, u] += xf * kernel[f, u]
    for k in range(units):
        hk = state[b, k]
        for u in range(lo, units):
            out[b, u] += hk * recurrent_kernel[k, u]


def _vectors(x_t, state, kernel, recurrent_kernel, bias, act, out, b):
    """Row ``b``'s units in whole vectors into ``out[b]``, summed in registers: ``(whole,
    activated)``, the number of units written and of those already activated ((0, 0) unless
    ``kernel``, ``recurrent_kernel``, ``bias`` and ``out`` are typed C-contiguous)."""


@overload(_vectors, inline="always", jit_options=options.OVERLOAD_EXACT)
def _vectors_impl(x_t, state, kernel, recurrent_kernel, bias, act, out, b):
    if not all(a.layout == "C" for a in (kernel, recurrent_kernel, bias, out)):
        return lambda x_t, state, kernel, recurrent_kernel, bias, act, out, b: (0, 0)
    in_registers = value_of(act) == activations.TANH and out.dtype == types.float32
    finish = tanh_f32_vector if in_registers else _as_summed

    def vectors(x_t, state, kernel, recurrent_kernel, bias, act, out, b):
        W = widest()
        lanes = lane_count(W, out.itemsize)
        whole = kernel.shape[1] - kernel.shape[1] % lanes
        for u in range(0, whole, lanes):
            vstore(out, b, u, finish(_sums(x_t, state, kernel, recurrent_kernel, bias, b, u, W)))
        return whole, whole if in_registers else 0
    return vectors


@njit(**options.INLINE_PLAIN)
def _as_summed(v):
    """``v`` unchanged: sums left for the scalar activation."""
    return v


@njit(**options.INLINE_PLAIN)
def _sums(x_t, state, kernel, recurrent_kernel, bias, b, u, W):
    """The pre-activations of row ``b``'s units ``u:u + lanes`` as one vector."""
    features, units = kernel.shape
    a = vload_row(bias, u, W)
    for f in range(features):
        a = vfma(vbroadcast(x_t, b, f, W), vload(kernel, f, u, W), a)
    c0 = c1 = c2 = c3 = vzero(kernel, W)
    chained = units - units % 4
    for k in range(0, chained, 4):
        c0 = vfma(vbroadcast(state, b, k, W), vload(recurrent_kernel, k, u, W), c0)
        c1 = vfma(vbroadcast(state, b, k + 1, W), vload(recurrent_kernel, k + 1, u, W), c1)
        c2 = vfma(vbroadcast(state, b, k + 2, W), vload(recurrent_kernel, k + 2, u, W), c2)
        c3 = vfma(vbroadcast(state, b, k + 3, W), vload(recurrent_kernel, k + 3, u, W), c3)
    for k in range(chained, units):
        c0 = vfma(vbroadcast(state, b, k, W), vload(recurrent_kernel, k, u, W), c0)
    return vadd(vadd(a, c0), vadd(vadd(c1, c2), c3))
