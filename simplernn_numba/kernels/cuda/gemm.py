"""The one GEMM of the CUDA backend: a tiled shared-memory product over all ``B * T`` rows at once.

``c = (op(a) @ op(b) + bias) * c_scale (+ c if accumulate)``, with ``op(a) = a.T`` if
``a_trans`` and ``op(b) = b.T`` if ``b_trans``. Each stored element ``a[i, j]`` is multiplied by
``a_scale[i // steps, j]`` when given (a dropout mask per batch row, rows being ``b * steps + t``);
likewise ``c[i, j]`` by ``c_scale[i // steps, j]``. A block of ``tile x tile`` threads computes a
``tile * micro`` square of ``c``, each thread ``micro x micro`` values held in registers, over
``tile``-deep slices of the shared dimension. It runs everything that is not sequential in time:
the input projection ``x @ kernel + bias`` (every plan that does not fuse it), the
pre-activations and ``dX``, ``dW``, ``dU`` of the backward pass.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda

from .. import config
from .launch import placeholders, tile_grid


@functools.cache
def gemm_kernel(dtype: np.dtype, tile: int, micro: int):
    """The GEMM kernel for ``dtype`` and blocks of ``tile x tile`` threads (see the module docstring)."""
    dt = numba.from_dtype(dtype)
    b1, i64 = numba.boolean, numba.int64
    a1, a2 = dt[:], dt[:, :]
    zero = dtype.type(0)
    span = tile * micro

    @cuda.jit(numba.void(a2, b1, a2, b1, i64, a2, b1, a1, b1, a2, b1, b1, a2))
    def gemm(a, a_trans, a_scale, has_a_scale, steps, bm, b_trans, bias, has_bias,
             c_scale, has_c_scale, accumulate, c):
        a_tile = cuda.shared.array((tile, span), dt)  # [k, row]
        b_tile = cuda.shared.array((tile, span), dt)  # [k, col]
        acc = cuda.local.array((micro, micro), dt)
        a_frag = cuda.local.array(micro, dt)
        b_frag = cuda.local.array(micro, dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        lane = ty * tile + tx
        m, n = c.shape
        depth = a.shape[0] if a_trans else a.shape[1]
        for tile_i in range(cuda.blockIdx.y, (m + span - 1) // span, cuda.gridDim.y):
            for tile_j in range(cuda.blockIdx.x, (n + span - 1) // span, cuda.gridDim.x):
                row0 = tile_i * span
                col0 = tile_j * span
                for i in range(micro):
                    for j in range(micro):
                        acc[i, j] = zero
                for k0 in range(0, depth, tile):
                    for e in range(lane, tile * span, tile * tile):
                        # the fastest-varying index follows the stored array's rows (coalesced loads)
                        if a_trans:
                            kk, r = e // span, e % span
                        else:
                            r, kk = e // tile, e % tile
                        value = zero
                        if row0 + r < m and k0 + kk < depth:
                            i, j = (k0 + kk, row0 + r) if a_trans else (row0 + r, k0 + kk)
                            value = a[i, j]
                            if has_a_scale:
                                value *= a_scale[i // steps, j]
                        a_tile[kk, r] = value
                        if b_trans:
                            q, kk = e // tile, e % tile
                        else:
                            kk, q = e // span, e % span
                        value = zero
                        if col0 + q < n and k0 + kk < depth:
                            value = bm[col0 + q, k0 + kk] if b_trans else bm[k0 + kk, col0 + q]
                        b_tile[kk, q] = value
                    cuda.syncthreads()
                    for kk in range(tile):
                        for i in range(micro):
                            a_frag[i] = a_tile[kk, ty + i * tile]
                            b_frag[i] = b_tile[kk, tx + i * tile]
                        for i in range(micro):
                            for j in range(micro):
                                acc[i, j] += a_frag[i] * b_frag[j]
                    cuda.syncthreads()
                for i in range(micro):
                    row = row0 + ty + i * tile
                    for j in range(micro):
                        col = col0 + tx + j * tile
                        if row < m and col < n:
                            value = acc[i, j]
                            if has_bias:
                                value += bias[col]
                            if has_c_scale:
                                value *= c_scale[row // steps, col]
                            if accumulate:
                                value += c[row, col]
                            c[row, col] = value

    return gemm


def gemm(a, b, c, *, a_trans: bool = False, b_trans: bool = False, a_scale=None, steps: int = 1,
         bias=None, c_scale=None, accumulate: bool = False) -> None:
    """Launch the GEMM into device array ``c`` (M, N); placeholders stand for absent options."""
    tile, micro = config.CUDA_TILE, config.CUDA_MICRO
    none = placeholders(c.dtype)
    kernel = gemm_kernel(np.dtype(c.dtype), tile, micro)
    m, n = c.shape
    kernel[tile_grid(m, n, tile * micro), (tile, tile)](
        a, a_trans, none.matrix if a_scale is None else a_scale, a_scale is not None, steps,
        b, b_trans, none.vector if bias is None else bias, bias is not None,
        none.matrix if c_scale is None else c_scale, c_scale is not None, accumulate, c)
