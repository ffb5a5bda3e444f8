"""The backward pass's matrix products without BLAS.

:func:`gradient_products` computes, after the backward recurrence, the input and
weight gradients from the pre-activation gradients ``dz``::

    d_inputs = dz @ kernel.T                  (N, F)
    [d_kernel; d_recurrent_kernel] = [x, prev].T @ dz      (F + U, U)
    d_bias = dz.sum(axis=0)                   (U,)

with ``N = B * T`` rows. They run as Numba-parallel tiled products (the same tiles,
blocked over rows and ``K`` so that the operands stay in cache) rather than through
NumPy's BLAS because OpenBLAS's worker threads keep spinning for a while after each
call and take a core from the Numba-parallel recurrences that follow (measured at
64,100,128,128 float32 on two threads: the backward recurrence ran at 6 ms alone,
11.5 ms right after the three BLAS products). Every output element's summation order
does not depend on the thread count, so results are the same on any number of threads.

>>> import numpy as np
>>> x, prev, dz = np.ones((3, 2)), np.ones((3, 1)), np.arange(3.0).reshape(3, 1)
>>> d = gradient_products(x, prev, dz, np.ones((2, 1)), 1)
>>> d[0].tolist(), d[1].tolist(), d[2].tolist()
([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], [[3.0], [3.0], [3.0]], [3.0])
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload

from ..config import K_BLOCK, K_BLOCK_T, ROW_BLOCK, ROW_BLOCK_T, VECTOR_BYTES
from . import options
from .launch import row_quads, run_all
from .products import fma_rows, tile, wide_columns, wide_tile
from .simd import lane_count, widest
from .specialise import static, value_of
from .workspace import aligned_empty

_FLAGS = options.PRODUCTS


def _blocked_product(a, b, c, lo, hi, transposed):
    """``c[lo:hi] = a[lo:hi] @ b`` by :func:`wide_tile` s (the last columns by 4x2 :func:`tile` s,
    as in :func:`four_row_tiles`), blocked over rows and ``K``: ``a`` (M, K), or (K, M) given
    transposed with ``transposed`` (:data:`TRANSPOSED`, else :data:`PLAIN`: a static choice, so
    each variant compiles one kind of tile); ``b`` (K, N), ``c`` (M, N), last axes contiguous;
    ``hi - lo`` a multiple of 4 and ``N`` of two vectors (callers pad). Every element is one FMA
    per ``k`` in order from zero whatever the blocking."""


#: The ``transposed`` argument of :func:`_blocked_product`.
PLAIN, TRANSPOSED = static(0), static(1)


@overload(_blocked_product, jit_options=_FLAGS)
def _blocked_product_impl(a, b, c, lo, hi, transposed):
    T = value_of(transposed) == 1
    row_block, k_block = (ROW_BLOCK_T, K_BLOCK_T) if T else (ROW_BLOCK, K_BLOCK)

    def impl(a, b, c, lo, hi, transposed):
        W = widest()
        lanes = lane_count(W, a.itemsize)
        wide = wide_columns(c.shape[1], lanes)
        depth = b.shape[0]
        for m0 in range(lo, hi, row_block):
            m1 = min(m0 + row_block, hi)
            for k0 in range(0, max(depth, 1), k_block):  # K = 0: one empty block, zeros
                k1 = min(k0 + k_block, depth)
                for r in range(m0, m1, 4):
                    for u in range(0, wide, 3 * lanes):
                        wide_tile(b, a, c, r, u, k0, k1, T, W)
                    for u in range(wide, c.shape[1], 2 * lanes):
                        tile(b, a, c, r, u, 4, 2, k0, k1, T, W)
    return impl


@njit(nogil=True, **_FLAGS)
def _products(dz, dz_cols, kernel_t, x, prev, d_inputs, d_kernel, d_recurrent, d_bias, part,
              chunks):
    """Part ``part`` of ``chunks`` of the products (see :func:`gradient_products`)."""
    rows = dz.shape[0]
    whole = rows // 4 * 4
    lo, hi = row_quads(whole, part, chunks)
    _blocked_product(dz, kernel_t, d_inputs, lo, hi, PLAIN)
    if part == chunks - 1:  # the last rows, fewer than a tile's
        fma_rows(dz, kernel_t, d_inputs, whole, rows)
    lo, hi = row_quads(d_kernel.shape[0], part, chunks)
    _blocked_product(x, dz_cols, d_kernel, lo, hi, TRANSPOSED)
    lo, hi = row_quads(d_recurrent.shape[0], part, chunks)
    _blocked_product(prev, dz_cols, d_recurrent, lo, hi, TRANSPOSED)
    units = d_bias.shape[0]
    lo, hi = part * units // chunks, (part + 1) * units // chunks
    for u in range(lo, hi):
        d_bias[u] = 0
    for i in range(dz.shape[0]):
        row = dz[i]
        for u in range(lo, hi):
            d_bias[u] += row[u]


def _padded(a: np.ndarray, rows: int = 1, columns: int = 1) -> np.ndarray:
    """``a`` C-contiguous with zeros added up to a multiple of ``rows`` rows and of ``columns``
    columns (``a`` itself if it already is C-contiguous with such a shape; a copy starts on a
    cache line, see :func:`._workspace.aligned_empty`)."""
    extra_rows, extra_columns = -a.shape[0] % rows, -a.shape[1] % columns
    if extra_rows == extra_columns == 0 and a.flags.c_contiguous:
        return a
    out = aligned_empty((a.shape[0] + extra_rows, a.shape[1] + extra_columns), a.dtype)
    out[...] = 0
    out[:a.shape[0], :a.shape[1]] = a
    return out


def gradient_products(x, prev, dz, kernel, chunks: int):
    """``(dz @ kernel.T, [x, prev].T @ dz, dz.sum(axis=0))``, split into ``chunks`` parts run on
    as many threads (:mod:`.threads`).

    ``x`` (N, F), ``prev`` (N, U), ``dz`` (N, U) and ``kernel`` (F, U): C-contiguous,
    one float dtype. Returns ``d_inputs`` (N, F), ``d_weights`` (F + U, U) (the kernel
    gradient, then the recurrent-kernel gradient) and ``d_bias`` (U,). ``chunks=1`` runs
    on the calling thread; the results do not depend on ``chunks``.
    The weight gradients read ``x`` and ``prev`` down their columns (no transposes); widths
    that are not whole tiles go through zero-padded copies.
    """
    rows, features = x.shape
    units = dz.shape[1]
    dtype = dz.dtype
    step = 2 * (VECTOR_BYTES // dtype.itemsize)
    dz_cols, kernel_t = _padded(dz, columns=step), _padded(kernel.T, columns=step)
    x4, prev4 = _padded(x, columns=4), _padded(prev, columns=4)
    d_inputs = np.empty((rows, kernel_t.shape[1]), dtype)
    d_kernel = np.empty((x4.shape[1], dz_cols.shape[1]), dtype)
    d_recurrent = np.empty((prev4.shape[1], dz_cols.shape[1]), dtype)
    d_bias = np.empty(units, dtype)
    arrays = (dz, dz_cols, kernel_t, x4, prev4, d_inputs, d_kernel, d_recurrent, d_bias)
    run_all(_products, arrays, chunks)
    if d_inputs.shape[1] != features:
        d_inputs = np.ascontiguousarray(d_inputs[:, :features])
    return d_inputs, np.concatenate((d_kernel[:features, :units], d_recurrent[:units, :units])), d_bias
