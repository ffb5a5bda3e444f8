"""The persistent recurrence kernels: every step in one (cooperative) launch.

``recurrent_kernel`` stays in shared memory for all steps: one block holding all of it (a block
barrier between steps), or one slice per block over about one block per multiprocessor, the
grid synchronised between steps (``cuda.cg.this_grid().sync()``). :mod:`.plan` chooses the
launch (:class:`.plan.PersistentPlan`). Compiled once per dtype with explicit signatures.
"""

import functools

import numba
import numpy as np
from numba import cuda

from . import step
from .step import backward_finish, forward_finish, group_sum, load_columns, stage_dz, stage_states, step_dz


@functools.cache
def forward_kernel(dtype: np.dtype):
    """``forward_persistent`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64, b1 = numba.int64, numba.boolean
    a1, a2 = dt[:], dt[:, :]
    forward_params = step.forward_params(dt)

    @cuda.jit(numba.void(forward_params, a1, a2, a2, a2, i64, i64, i64, b1))
    def forward_persistent(p, u_mat, h_a, h_b, outputs, cols, lanes, ld, stage):
        """All steps in one cooperative launch; block j owns units j*cols .. (j+1)*cols.

        Shared memory holds the block's slice of U (row stride ``ld``) for every step,
        then, if ``stage``, the state entering the step (copied once per step), then one
        reduction slot per thread. Each (row, unit) dot product is split over ``lanes``
        threads; the grid synchronises between steps (a one-block grid: the block only).
        """
        grid = cuda.cg.this_grid()
        batch, units = h_a.shape
        shared = cuda.shared.array(0, dt)
        staged = shared[ld * cols:ld * cols + (batch * ld if stage else 0)]
        scratch = shared[ld * cols + (batch * ld if stage else 0):]
        c0 = cuda.blockIdx.x * cols
        n = min(cols, units - c0)
        load_columns(u_mat, units, c0, cols, False, ld, shared)
        xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all = p
        steps = xw.shape[0] // batch
        groups = cuda.blockDim.x // lanes
        group = cuda.threadIdx.x // lanes
        lane = cuda.threadIdx.x % lanes
        for s in range(steps):
            t = steps - 1 - s if go_backwards else s
            h_cur, h_next = (h_a, h_b) if s % 2 == 0 else (h_b, h_a)
            if stage:
                stage_states(h_cur, rdrop, has_rdrop, ld, staged)
            for base in range(0, batch * n, groups):  # the same trip count in every thread
                i = base + group
                b = i // n
                c = i - b * n
                acc = zero
                if i < batch * n and (not has_mask or mask[b, t]):
                    if stage:
                        for k in range(lane, units, lanes):
                            acc += staged[b * ld + k] * shared[c * ld + k]
                    else:
                        for k in range(lane, units, lanes):
                            hk = h_cur[b, k] * rdrop[b, k] if has_rdrop else h_cur[b, k]
                            acc += hk * shared[c * ld + k]
                if lanes > 1:
                    acc = group_sum(acc, lanes, scratch)
                if lane == 0 and i < batch * n:
                    forward_finish(b, c0 + c, s, p, acc, h_cur, h_next, outputs)
            if cuda.gridDim.x == 1:
                cuda.syncthreads()
            else:
                grid.sync()

    return forward_persistent


@functools.cache
def backward_kernel(dtype: np.dtype):
    """``backward_persistent`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64, b1 = numba.int64, numba.boolean
    a1, a2 = dt[:], dt[:, :]
    backward_params = step.backward_params(dt)

    @cuda.jit(numba.void(backward_params, a1, a2, a2, a2, i64, i64, i64, b1))
    def backward_persistent(p, u_mat, dh_a, dh_b, dz, cols, lanes, ld, stage):
        """All backward steps in one cooperative launch; block j owns rows j*cols .. of U;
        ``stage`` keeps the step's ``dz`` in shared memory (see ``forward_persistent``)."""
        grid = cuda.cg.this_grid()
        batch, units = dh_a.shape
        shared = cuda.shared.array(0, dt)
        staged = shared[ld * cols:ld * cols + (batch * ld if stage else 0)]
        scratch = shared[ld * cols + (batch * ld if stage else 0):]
        c0 = cuda.blockIdx.x * cols
        n = min(cols, units - c0)
        load_columns(u_mat, units, c0, cols, True, ld, shared)
        grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
        steps = grad.shape[0] // batch
        groups = cuda.blockDim.x // lanes
        group = cuda.threadIdx.x // lanes
        lane = cuda.threadIdx.x % lanes
        for j in range(steps):
            s = steps - 1 - j
            t = steps - 1 - s if go_backwards else s
            dh_cur, dh_next = (dh_a, dh_b) if j % 2 == 0 else (dh_b, dh_a)
            if stage:
                stage_dz(s, p, dh_cur, ld, staged)
            for base in range(0, batch * n, groups):  # the same trip count in every thread
                i = base + group
                b = i // n
                c = i - b * n
                acc = zero
                if i < batch * n and (not has_mask or mask[b, t]):
                    if stage:
                        for k in range(lane, units, lanes):
                            acc += staged[b * ld + k] * shared[c * ld + k]
                    else:
                        for k in range(lane, units, lanes):
                            acc += step_dz(b, k, s, b * steps + t, p, dh_cur) * shared[c * ld + k]
                if lanes > 1:
                    acc = group_sum(acc, lanes, scratch)
                if lane == 0 and i < batch * n:
                    backward_finish(b, c0 + c, s, p, acc, dh_cur, dh_next, dz)
            if cuda.gridDim.x == 1:
                cuda.syncthreads()
            else:
                grid.sync()

    return backward_persistent


def launch(kernel, plan, *args) -> None:
    """Cooperative launch of a persistent ``kernel`` following ``plan`` (a :class:`.plan.PersistentPlan`)."""
    kernel[plan.blocks, plan.threads, 0, plan.shared_bytes](*args, plan.cols, plan.lanes, plan.ld, plan.stage)
