"""The per-step recurrence kernels: one launch per step over every (batch row, unit) pair.

``forward_step``/``backward_step``: a grid-stride loop, one dot product per thread (small
batches); the ``_tiled`` variants: the step's product blocked in ``tile x tile`` shared-memory
tiles over (batch, units), the step's epilogue fused (batches of at least
``config.CUDA_TILED_STEP_MIN_BATCH`` rows). Compiled once per dtype (and tile) with explicit
signatures.
"""

import functools

import numba
import numpy as np
from numba import cuda

from .. import config
from . import step
from .launch import blocks, tile_grid
from .step import backward_finish, backward_item, forward_finish, forward_item, step_dz


@functools.cache
def forward_kernel(dtype: np.dtype):
    """``forward_step(p, u_flat, h_cur, h_next, outputs, s)`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64 = numba.int64
    a1, a2 = dt[:], dt[:, :]
    forward_params = step.forward_params(dt)

    @cuda.jit(numba.void(forward_params, a1, a2, a2, a2, i64))
    def forward_step(p, u_mat, h_cur, h_next, outputs, s):
        """One processing step for every (batch row, unit)."""
        batch, units = h_cur.shape
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            forward_item(b, u, s, p, u_mat, h_cur, h_next, outputs, zero)

    return forward_step


@functools.cache
def backward_kernel(dtype: np.dtype):
    """``backward_step(p, u_flat, dh_cur, dh_next, dz, s)`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64 = numba.int64
    a1, a2 = dt[:], dt[:, :]
    backward_params = step.backward_params(dt)

    @cuda.jit(numba.void(backward_params, a1, a2, a2, a2, i64))
    def backward_step(p, u_mat, dh_cur, dh_next, dz, s):
        """One processing step of backpropagation for every (batch row, unit)."""
        batch, units = dh_cur.shape
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            backward_item(b, u, s, p, u_mat, dh_cur, dh_next, dz, zero)

    return backward_step


@functools.cache
def forward_tiled_kernel(dtype: np.dtype, tile: int):
    """``forward_step_tiled`` for ``dtype``: blocks of ``tile x tile`` threads."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64 = numba.int64
    a1, a2 = dt[:], dt[:, :]
    forward_params = step.forward_params(dt)

    @cuda.jit(numba.void(forward_params, a1, a2, a2, a2, i64))
    def forward_step_tiled(p, u_mat, h_cur, h_next, outputs, s):
        """One step: ``(h_cur * rdrop) @ U`` tiled over (batch, units), then the activation."""
        h_tile = cuda.shared.array((tile, tile), dt)
        u_tile = cuda.shared.array((tile, tile), dt)
        xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all = p
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        batch, units = h_cur.shape
        for tile_i in range(cuda.blockIdx.y, (batch + tile - 1) // tile, cuda.gridDim.y):
            for tile_j in range(cuda.blockIdx.x, (units + tile - 1) // tile, cuda.gridDim.x):
                b = tile_i * tile + ty
                u = tile_j * tile + tx
                acc = zero
                for k0 in range(0, units, tile):
                    value = zero
                    if b < batch and k0 + tx < units:
                        value = h_cur[b, k0 + tx]
                        if has_rdrop:
                            value *= rdrop[b, k0 + tx]
                    h_tile[ty, tx] = value
                    value = zero
                    if u < units and k0 + ty < units:
                        value = u_mat[(k0 + ty) * units + u]
                    u_tile[ty, tx] = value
                    cuda.syncthreads()
                    for q in range(tile):
                        acc += h_tile[ty, q] * u_tile[q, tx]
                    cuda.syncthreads()
                if b < batch and u < units:
                    forward_finish(b, u, s, p, acc, h_cur, h_next, outputs)

    return forward_step_tiled


@functools.cache
def backward_tiled_kernel(dtype: np.dtype, tile: int):
    """``backward_step_tiled`` for ``dtype``: blocks of ``tile x tile`` threads."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64 = numba.int64
    a1, a2 = dt[:], dt[:, :]
    backward_params = step.backward_params(dt)

    @cuda.jit(numba.void(backward_params, a1, a2, a2, a2, i64))
    def backward_step_tiled(p, u_mat, dh_cur, dh_next, dz, s):
        """One backward step: ``dz_s @ U.T`` tiled over (batch, units), then the carry/dropout."""
        dz_tile = cuda.shared.array((tile, tile), dt)
        u_tile = cuda.shared.array((tile, tile), dt)
        grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        batch, units = dh_cur.shape
        steps = grad.shape[0] // batch
        t = steps - 1 - s if go_backwards else s
        for tile_i in range(cuda.blockIdx.y, (batch + tile - 1) // tile, cuda.gridDim.y):
            for tile_j in range(cuda.blockIdx.x, (units + tile - 1) // tile, cuda.gridDim.x):
                b = tile_i * tile + ty
                u = tile_j * tile + tx
                acc = zero
                for k0 in range(0, units, tile):
                    value = zero
                    if b < batch and k0 + tx < units:
                        value = step_dz(b, k0 + tx, s, b * steps + t, p, dh_cur)
                    dz_tile[ty, tx] = value
                    value = zero
                    if u < units and k0 + ty < units:
                        value = u_mat[u * units + k0 + ty]
                    u_tile[ty, tx] = value
                    cuda.syncthreads()
                    for q in range(tile):
                        acc += dz_tile[ty, q] * u_tile[q, tx]
                    cuda.syncthreads()
                if b < batch and u < units:
                    backward_finish(b, u, s, p, acc, dh_cur, dh_next, dz)

    return backward_step_tiled


def step_kernel(direction: str, dtype: np.dtype, tiled: bool, batch: int, units: int):
    """The ``direction`` ("forward"/"backward") step kernel (the ``tiled`` one or one dot product a
    thread), configured for its launch."""
    if tiled:
        tile = config.CUDA_TILE
        factory = forward_tiled_kernel if direction == "forward" else backward_tiled_kernel
        return factory(dtype, tile)[tile_grid(batch, units, tile), (tile, tile)]
    factory = forward_kernel if direction == "forward" else backward_kernel
    return factory(dtype)[blocks(batch * units)]
