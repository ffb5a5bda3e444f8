"""Register-tiled dot products, and the backward pass's matrix products without BLAS.

:func:`dot_pair` and :func:`dot_one` are the inner step of the CPU recurrences:
``z = init + bias + v @ vt.T`` for two rows (every ``vt`` load feeds both) or one,
four output units at a time, with the partial sums in vector registers.

:func:`gradient_products` computes, after the backward recurrence, the input and
weight gradients from the pre-activation gradients ``dz``::

    d_inputs = dz @ kernel.T                  (N, F)
    [d_kernel; d_recurrent_kernel] = [x, prev].T @ dz      (F + U, U)
    d_bias = dz.sum(axis=0)                   (U,)

with ``N = B * T`` rows. They run as Numba-parallel dot products rather than
through NumPy's BLAS because OpenBLAS's worker threads keep spinning for a while
after each call and take a core from the Numba-parallel recurrences that follow
(measured at 64,100,128,128 float32 on two threads: the backward recurrence ran at
6 ms alone, 11.5 ms right after the three BLAS products). Every output element is
one dot product whose summation order does not depend on the thread count, so
results are the same on any number of threads.

>>> import numpy as np
>>> x, prev, dz = np.ones((3, 2)), np.ones((3, 1)), np.arange(3.0).reshape(3, 1)
>>> d = gradient_products(x, prev, dz, np.ones((2, 1)), 1)
>>> d[0].tolist(), d[1].tolist(), d[2].tolist()
([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], [[3.0], [3.0], [3.0]], [3.0])
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Reassociation lets LLVM keep vector partial sums, contraction gives FMAs; NaN/inf semantics
#: are kept. NumPy's error model: no branch guarding each division (see :mod:`.cpu`).
_FLAGS = dict(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")


@njit(inline="always", **_FLAGS)
def dot_pair(vt, v0, v1, init0, init1, bias, z0, z1, lo, hi):
    """``z_r = init_r + bias + v_r @ vt.T`` for two rows and the units ``lo:hi``; ``vt`` is
    (U, K), ``v_r`` (K,)."""
    width = vt.shape[1]
    u = lo
    while u + 4 <= hi:
        a0, a1, a2, a3 = init0[u] + bias[u], init0[u + 1] + bias[u + 1], \
            init0[u + 2] + bias[u + 2], init0[u + 3] + bias[u + 3]
        c0, c1, c2, c3 = init1[u] + bias[u], init1[u + 1] + bias[u + 1], \
            init1[u + 2] + bias[u + 2], init1[u + 3] + bias[u + 3]
        for k in range(width):
            p = v0[k]
            q = v1[k]
            w0, w1, w2, w3 = vt[u, k], vt[u + 1, k], vt[u + 2, k], vt[u + 3, k]
            a0 += p * w0
            a1 += p * w1
            a2 += p * w2
            a3 += p * w3
            c0 += q * w0
            c1 += q * w1
            c2 += q * w2
            c3 += q * w3
        z0[u], z0[u + 1], z0[u + 2], z0[u + 3] = a0, a1, a2, a3
        z1[u], z1[u + 1], z1[u + 2], z1[u + 3] = c0, c1, c2, c3
        u += 4
    while u < hi:
        a0 = init0[u] + bias[u]
        c0 = init1[u] + bias[u]
        for k in range(width):
            w0 = vt[u, k]
            a0 += v0[k] * w0
            c0 += v1[k] * w0
        z0[u] = a0
        z1[u] = c0
        u += 1


@njit(inline="always", **_FLAGS)
def dot_one(vt, v0, init0, bias, z0, lo, hi):
    """``z0 = init0 + bias + v0 @ vt.T`` for one row and the units ``lo:hi`` (see :func:`dot_pair`)."""
    width = vt.shape[1]
    u = lo
    while u + 4 <= hi:
        a0, a1, a2, a3 = init0[u] + bias[u], init0[u + 1] + bias[u + 1], \
            init0[u + 2] + bias[u + 2], init0[u + 3] + bias[u + 3]
        for k in range(width):
            p = v0[k]
            a0 += p * vt[u, k]
            a1 += p * vt[u + 1, k]
            a2 += p * vt[u + 2, k]
            a3 += p * vt[u + 3, k]
        z0[u], z0[u + 1], z0[u + 2], z0[u + 3] = a0, a1, a2, a3
        u += 4
    while u < hi:
        a0 = init0[u] + bias[u]
        for k in range(width):
            a0 += v0[k] * vt[u, k]
        z0[u] = a0
        u += 1


@njit(**_FLAGS)
def _transpose_rows(a, out, first, lo, hi):
    """``out[first + j, i] = a[i, j]`` for the rows ``i`` in ``lo:hi``, eight rows at a time:
    eight loads down a column of ``a`` become one vector store along a row of ``out``
    (2.6x faster here than square tiles with a strided inner loop, which compiled to gathers)."""
    columns = a.shape[1]
    end = hi - (hi - lo) % 8
    for i in range(lo, end, 8):
        for j in range(columns):
            row = out[first + j]
            row[i], row[i + 1], row[i + 2], row[i + 3] = a[i, j], a[i + 1, j], a[i + 2, j], a[i + 3, j]
            row[i + 4], row[i + 5], row[i + 6], row[i + 7] = \
                a[i + 4, j], a[i + 5, j], a[i + 6, j], a[i + 7, j]
    for i in range(end, hi):
        for j in range(columns):
            out[first + j, i] = a[i, j]


@njit(**_FLAGS)
def _dot_rows(a, bt, c, zero, lo, hi):
    """``c[lo:hi] = a[lo:hi] @ bt.T``, two rows at a time (a lone last row pairs with itself,
    so that every row takes the same arithmetic whatever the split)."""
    for i in range(lo, hi, 2):
        i1 = min(i + 1, hi - 1)
        dot_pair(bt, a[i], a[i1], zero, zero, zero, c[i], c[i1], 0, bt.shape[0])


@njit(inline="always", cache=True)
def _split(count, chunks, part):
    """Start of ``part`` when ``count`` rows are cut into ``chunks`` runs of whole row pairs."""
    return min(count, 2 * (part * ((count + 1) // 2) // chunks))


@njit(**_FLAGS)
def _transposes(x, prev, dz, stacked_t, dz_t, part, chunks):
    """Part ``part`` of ``chunks``: ``stacked_t = [x, prev].T`` and ``dz_t = dz.T``, by rows of ``x``."""
    rows = x.shape[0]
    lo, hi = _split(rows, chunks, part), _split(rows, chunks, part + 1)
    _transpose_rows(x, stacked_t, 0, lo, hi)
    _transpose_rows(prev, stacked_t, x.shape[1], lo, hi)
    _transpose_rows(dz, dz_t, 0, lo, hi)


@njit(**_FLAGS)
def _products(dz, kernel, stacked_t, dz_t, d_inputs, d_weights, d_bias, part, chunks):
    """Part ``part`` of ``chunks`` of the three products (see :func:`gradient_products`)."""
    rows, units = dz.shape
    zero = np.zeros(max(kernel.shape[0], units), dz.dtype)
    _dot_rows(dz, kernel, d_inputs, zero, _split(rows, chunks, part), _split(rows, chunks, part + 1))
    stacked = stacked_t.shape[0]
    _dot_rows(stacked_t, dz_t, d_weights, zero, _split(stacked, chunks, part),
              _split(stacked, chunks, part + 1))
    for u in range(_split(units, chunks, part), _split(units, chunks, part + 1)):
        total = zero[0]
        row = dz_t[u]
        for i in range(rows):
            total += row[i]
        d_bias[u] = total


@njit(parallel=True, **_FLAGS)
def _gradient_products_parallel(x, prev, dz, kernel, d_inputs, d_weights, d_bias, stacked_t, dz_t,
                                chunks):
    for c in prange(chunks):
        _transposes(x, prev, dz, stacked_t, dz_t, c, chunks)
    for c in prange(chunks):
        _products(dz, kernel, stacked_t, dz_t, d_inputs, d_weights, d_bias, c, chunks)


@njit(**_FLAGS)
def _gradient_products_serial(x, prev, dz, kernel, d_inputs, d_weights, d_bias, stacked_t, dz_t):
    _transposes(x, prev, dz, stacked_t, dz_t, 0, 1)
    _products(dz, kernel, stacked_t, dz_t, d_inputs, d_weights, d_bias, 0, 1)


def gradient_products(x, prev, dz, kernel, chunks: int, scratch=None):
    """``(dz @ kernel.T, [x, prev].T @ dz, dz.sum(axis=0))``, split into ``chunks`` parallel parts.

    ``x`` (N, F), ``prev`` (N, U), ``dz`` (N, U) and ``kernel`` (F, U): C-contiguous,
    one float dtype. Returns ``d_inputs`` (N, F), ``d_weights`` (F + U, U) (the kernel
    gradient, then the recurrent-kernel gradient) and ``d_bias`` (U,). ``chunks=1`` runs
    on the calling thread with no parallel launch; the results do not depend on ``chunks``.
    ``scratch``, if given, is a pair of work arrays, (F + U, N) and (U, N), of that dtype.
    """
    rows, features = x.shape
    units = dz.shape[1]
    dtype = dz.dtype
    outputs = (np.empty((rows, features), dtype), np.empty((features + units, units), dtype),
               np.empty(units, dtype))
    if scratch is None:
        scratch = (np.empty((features + units, rows), dtype), np.empty((units, rows), dtype))
    if chunks > 1:
        _gradient_products_parallel(x, prev, dz, kernel, *outputs, *scratch, chunks)
    else:
        _gradient_products_serial(x, prev, dz, kernel, *outputs, *scratch)
    return outputs
