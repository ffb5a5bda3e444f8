"""Register-tiled matrix products, and the backward pass's matrix products without BLAS.

:func:`tiled_product` is the inner step of the CPU recurrences: ``z = v @ w`` for a
few rows ``v`` by a weight matrix ``w`` (K, U) that stays in cache, as tiles of rows by
vectors of units (:data:`TILE_SHAPES`) whose eight partial results stay in vector
registers (:mod:`._simd`) while ``k`` runs: one vector load of ``w`` feeds every row of
the tile, one broadcast of ``v`` every vector, and there is no reduction at the end.

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

from ._simd import WIDTH, vfma, vload, vsplat, vstore, vzero

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


#: Shapes of :func:`tile`, (rows, vectors of units): eight vector accumulators each.
TILE_SHAPES = ((4, 2), (2, 4), (1, 8))


@njit(inline="always", **_FLAGS)
def tile(w, v, z, r, u, R, V):
    """``z[r:r + R, u:u + V * lanes] = v[r:r + R] @ w[:, u:u + V * lanes]`` (``R * V == 8``,
    literal constants: the tile folds to eight vector registers, no reductions). ``w`` is
    (K, U), ``v`` (rows, K), ``z`` (rows, U), last axes contiguous, and the tile must lie inside.
    Every element is one FMA per ``k`` in order from zero, whatever the tile shape."""
    lanes = WIDTH // w.itemsize
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vzero(w)
    for k in range(w.shape[0]):
        a0 = vfma(vsplat(v[r, k]), vload(w, k, u), a0)
        a1 = vfma(vsplat(v[r + 1 // V, k]), vload(w, k, u + 1 % V * lanes), a1)
        a2 = vfma(vsplat(v[r + 2 // V, k]), vload(w, k, u + 2 % V * lanes), a2)
        a3 = vfma(vsplat(v[r + 3 // V, k]), vload(w, k, u + 3 % V * lanes), a3)
        a4 = vfma(vsplat(v[r + 4 // V, k]), vload(w, k, u + 4 % V * lanes), a4)
        a5 = vfma(vsplat(v[r + 5 // V, k]), vload(w, k, u + 5 % V * lanes), a5)
        a6 = vfma(vsplat(v[r + 6 // V, k]), vload(w, k, u + 6 % V * lanes), a6)
        a7 = vfma(vsplat(v[r + 7 // V, k]), vload(w, k, u + 7 % V * lanes), a7)
    vstore(z, r, u, a0)
    vstore(z, r + 1 // V, u + 1 % V * lanes, a1)
    vstore(z, r + 2 // V, u + 2 % V * lanes, a2)
    vstore(z, r + 3 // V, u + 3 % V * lanes, a3)
    vstore(z, r + 4 // V, u + 4 % V * lanes, a4)
    vstore(z, r + 5 // V, u + 5 % V * lanes, a5)
    vstore(z, r + 6 // V, u + 6 % V * lanes, a6)
    vstore(z, r + 7 // V, u + 7 % V * lanes, a7)


def tile_shape(rows: int, units: int, itemsize: int) -> int:
    """Index into :data:`TILE_SHAPES` of the shape with the least padded work for a (rows, units)
    product: rows rounded up to the tile's rows, units to its vectors (ties: more rows, which
    share each load of ``w``)."""
    lanes = WIDTH // itemsize
    return min(range(len(TILE_SHAPES)), key=lambda i: (
        -(-rows // TILE_SHAPES[i][0]) * TILE_SHAPES[i][0]
        * -(-units // (TILE_SHAPES[i][1] * lanes)) * TILE_SHAPES[i][1], i))


def padded_units(units: int, shape: int, itemsize: int) -> int:
    """``units`` rounded up to whole tiles of ``TILE_SHAPES[shape]``."""
    step = TILE_SHAPES[shape][1] * (WIDTH // itemsize)
    return -(-units // step) * step


@njit(**_FLAGS)
def tiled_product(w, v, z, shape):
    """``z = v @ w`` by :func:`tile` of ``TILE_SHAPES[shape]``: ``w`` (K, U), ``v`` (rows, K),
    ``z`` (rows, U), last axes contiguous, ``rows`` and ``U`` whole tiles (callers pad)."""
    R, V = TILE_SHAPES[shape]
    for u in range(0, z.shape[1], V * (WIDTH // w.itemsize)):
        for r in range(0, z.shape[0], R):
            if shape == 0:
                tile(w, v, z, r, u, 4, 2)
            elif shape == 1:
                tile(w, v, z, r, u, 2, 4)
            else:
                tile(w, v, z, r, u, 1, 8)


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
