"""The input projection ``xw = (x * input_dropout) @ kernel + bias`` as a pointer-argument GEMM.

The register-resident forward path (:mod:`._cuda_registers_host`) runs it over all ``B * T``
rows at once, spread over every multiprocessor, before the recurrence (which occupies only
``ceil(B / rows)`` blocks). Same tiling as the ``gemm`` of :mod:`._cuda_compile`: blocks of
``tile x tile`` threads compute ``tile * micro`` squares of the output, each thread a
``micro x micro`` register tile, over ``tile``-deep slices staged in shared memory; but its
arguments are device pointers and int32 sizes (see :mod:`._cuda_pointers`), and the options
are compile-time constants.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda, types


@functools.cache
def projection_kernel(dtype: np.dtype, tile: int, micro: int, has_bias: bool, has_idrop: bool):
    """``kernel[(x_blocks, y_blocks), (tile, tile)](x, w, bias, idrop, xw, rows, features, units,
    steps)``: ``x`` (B * T, F), ``w`` (F, U), ``bias`` (U,), ``idrop`` (B, F), ``xw`` (B * T, U);
    ``rows = B * T``; grid-stride over the output's ``tile * micro`` squares."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    span = tile * micro
    ptr, i32 = types.CPointer(dt), numba.int32

    @cuda.jit(numba.void(ptr, ptr, ptr, ptr, ptr, i32, i32, i32, i32))
    def projection(x, w, bias, idrop, xw, rows, features, units, steps):
        a_tile = cuda.shared.array((tile, span), dt)  # [k, row]
        b_tile = cuda.shared.array((tile, span), dt)  # [k, col]
        acc = cuda.local.array((micro, micro), dt)
        a_frag = cuda.local.array(micro, dt)
        b_frag = cuda.local.array(micro, dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        lane = ty * tile + tx
        for tile_i in range(cuda.blockIdx.y, (rows + span - 1) // span, cuda.gridDim.y):
            for tile_j in range(cuda.blockIdx.x, (units + span - 1) // span, cuda.gridDim.x):
                row0 = tile_i * span
                col0 = tile_j * span
                for i in range(micro):
                    for j in range(micro):
                        acc[i, j] = zero
                for k0 in range(0, features, tile):
                    for e in range(lane, tile * span, tile * tile):
                        r = e // tile  # consecutive threads: consecutive features of one row of x
                        kk = e - r * tile
                        value = zero
                        if row0 + r < rows and k0 + kk < features:
                            value = x[(row0 + r) * features + k0 + kk]
                            if has_idrop:
                                value *= idrop[(row0 + r) // steps * features + k0 + kk]
                        a_tile[kk, r] = value
                        kk = e // span  # consecutive threads: consecutive units of one row of w
                        q = e - kk * span
                        value = zero
                        if col0 + q < units and k0 + kk < features:
                            value = w[(k0 + kk) * units + col0 + q]
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
                        if row < rows and col < units:
                            value = acc[i, j]
                            if has_bias:
                                value += bias[col]
                            xw[row * units + col] = value

    return projection
