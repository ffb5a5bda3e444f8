"""The rows kernels: every step of some batch rows per block, in one launch.

Batch rows never depend on other rows, so each block runs every step for its own rows with U,
the rows' state and (forward) their inputs in shared memory: one block barrier a step, no grid
synchronisation; the forward kernel computes the input projection itself. :mod:`.plan` chooses
the launch (:class:`.plan.RowsPlan`). Compiled once per dtype with explicit signatures.
"""

import functools

import numba
import numpy as np
from numba import cuda

from . import step
from .activation import activate
from .step import input_value, lane_sum, load_columns, row_dot, rows_dz, rows_dz_inputs


@functools.cache
def forward_kernel(dtype: np.dtype):
    """``forward_rows`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64, b1 = numba.int64, numba.boolean
    a1, a2 = dt[:], dt[:, :]
    forward_params = step.forward_params(dt)
    projection_params = step.projection_params(dt)

    @cuda.jit(numba.void(forward_params, projection_params, a1, a2, a2, a2, i64, b1, i64, i64))
    def forward_rows(p, projection, u_mat, h0, h_last, outputs, rows, kernel_shared, lanes, ld):
        """All steps for ``rows`` batch rows per block, input projection included; blocks
        never wait for each other. ``xw`` (in ``p``) is not read: ``projection`` = (x as
        (B * T, F), kernel as (F * U), bias, has_bias, input dropout mask, has it).

        Dynamic shared memory: U (``w[k * ld + u]``); the kernel (``wx[f * ld + u]``) if
        ``kernel_shared`` (else it is read from global memory); two buffers of the rows'
        inputs (this step's, and the next one's, loaded at the start of this step and
        stored at its end, so that the loads' latency overlaps the products); two of the
        rows' state (the step's input and output); with a recurrent dropout mask, two of
        the state times the mask (the product's input). One block barrier a step.

        Each (row, unit) pair is computed by ``lanes`` consecutive threads (1, or a power
        of two on a real GPU: warp shuffles sum their parts; the plan then gives every
        pair its group in one pass); ``ld >= units`` spreads the groups of a warp over the
        shared-memory banks. ``first`` (in ``p``) is read only when there is a mask.
        """
        xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all = p
        x, kernel, bias, has_bias, idrop, has_idrop = projection
        batch, units = h0.shape
        steps = x.shape[0] // batch
        features = x.shape[1]
        span = rows * units
        shared = cuda.shared.array(0, dt)
        w = shared[:units * ld]
        wx_size = features * ld if kernel_shared else 0
        wx = shared[units * ld:units * ld + wx_size]
        inputs = shared[units * ld + wx_size:units * ld + wx_size + 2 * rows * features]
        state = shared[units * ld + wx_size + 2 * rows * features:]  # states, then dropped states
        src = 2 * span if has_rdrop else 0  # where the product reads its input
        tid = cuda.threadIdx.x
        for i in range(tid, wx_size // ld * units, cuda.blockDim.x):
            f = i // units
            wx[f * ld + i - f * units] = kernel[i]
        load_columns(u_mat, units, 0, units, True, ld, w)  # ends with a block barrier
        r0 = cuda.blockIdx.x * rows
        count = min(rows, batch - r0)
        pairs = count * units
        n_inputs = count * features
        for i in range(tid, pairs, cuda.blockDim.x):
            b = r0 + i // units
            u = i % units
            state[i] = h0[b, u]
            if has_rdrop:
                state[src + i] = h0[b, u] * rdrop[b, u]
        t = steps - 1 if go_backwards else 0
        for e in range(tid, n_inputs, cuda.blockDim.x):
            inputs[e] = input_value(x, idrop, has_idrop, r0, e, t, steps, features)
        group = tid // lanes  # the thread's first pair, and its lane there
        lane = tid - group * lanes
        own_r = group // units
        own_u = group - own_r * units
        x_next = zero
        cuda.syncthreads()
        for s in range(steps):
            t = steps - 1 - s if go_backwards else s
            t_next = t - 1 if go_backwards else t + 1
            cur = (s % 2) * span
            nxt = span - cur
            x_cur = (s % 2) * rows * features
            x_nxt = rows * features - x_cur
            if s + 1 < steps and tid < n_inputs:
                x_next = input_value(x, idrop, has_idrop, r0, tid, t_next, steps, features)
            for i in range(group, pairs, cuda.blockDim.x // lanes):
                r = own_r if i == group else i // units
                u = own_u if i == group else i - r * units
                b = r0 + r
                if not has_mask or mask[b, t]:
                    if kernel_shared:
                        z = row_dot(inputs, x_cur + r * features, wx, u, ld, features, lane, lanes, zero)
                    else:
                        z = row_dot(inputs, x_cur + r * features, kernel, u, units, features, lane, lanes,
                                    zero)
                    z += row_dot(state, src + cur + r * units, w, u, ld, units, lane, lanes, zero)
                    if lanes > 1:
                        z = lane_sum(z, lanes)
                    if has_bias:
                        z += bias[u]
                    value = activate(z, act)
                else:
                    value = state[cur + i]
                if lane == 0:
                    state[nxt + i] = value
                    if has_rdrop:
                        state[src + nxt + i] = value * rdrop[b, u]
                    if has_mask and s < first[b]:
                        value = zero  # no unmasked step yet: the output is 0, the state is carried
                    if keep_all:
                        outputs[b * steps + s, u] = value
                    elif s == steps - 1:
                        outputs[b, u] = value
            if s + 1 < steps:
                if tid < n_inputs:
                    inputs[x_nxt + tid] = x_next
                for e in range(tid + cuda.blockDim.x, n_inputs, cuda.blockDim.x):
                    inputs[x_nxt + e] = input_value(x, idrop, has_idrop, r0, e, t_next, steps, features)
            cuda.syncthreads()
        last = (steps % 2) * span
        for i in range(tid, pairs, cuda.blockDim.x):
            h_last[r0 + i // units, i % units] = state[last + i]

    return forward_rows


@functools.cache
def backward_kernel(dtype: np.dtype):
    """``backward_rows`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i64 = numba.int64
    a1, a2 = dt[:], dt[:, :]
    backward_params = step.backward_params(dt)

    @cuda.jit(numba.void(backward_params, a1, a2, a2, a2, i64))
    def backward_rows(p, u_mat, dh0, dh_last, dz, rows):
        """All backward steps for ``rows`` batch rows per block (see ``forward_rows``).

        Dynamic shared memory: U transposed (``w[k * units + u] = U[u, k]``), two buffers
        of the rows' ``dz`` (the step's and the next one's) and the rows' state gradient.
        Each thread keeps the pairs (row, unit) it owns: after its product for step ``s``
        it computes ``dz`` of step ``s - 1`` for the same pairs, so one barrier per step.
        ``dh0`` of zero rows stands for a zero state gradient.
        """
        grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
        batch, units = dh_last.shape
        steps = grad.shape[0] // batch
        span = rows * units
        shared = cuda.shared.array(0, dt)
        w = shared[:units * units]
        staged = shared[units * units:units * units + 2 * span]
        dh = shared[units * units + 2 * span:units * units + 3 * span]
        load_columns(u_mat, units, 0, units, False, units, w)  # ends with a block barrier
        r0 = cuda.blockIdx.x * rows
        pairs = min(rows, batch - r0) * units
        for i in range(cuda.threadIdx.x, pairs, cuda.blockDim.x):
            b = r0 + i // units
            u = i % units
            dh[i] = dh0[b, u] if dh0.shape[0] else zero
            row, masked, arriving, derivative_value = rows_dz_inputs(b, u, steps - 1, steps, p, zero)
            rows_dz(u, i, row, masked, arriving, derivative_value, dh, staged, 0, dz, zero)
        cuda.syncthreads()
        for j in range(steps):
            s = steps - 1 - j
            t = steps - 1 - s if go_backwards else s
            cur = (j % 2) * span
            for i in range(cuda.threadIdx.x, pairs, cuda.blockDim.x):
                r = i // units
                u = i - r * units
                b = r0 + r
                if s > 0:  # loads for the next step first: their latency overlaps the product
                    row, masked, arriving, derivative_value = rows_dz_inputs(b, u, s - 1, steps, p, zero)
                if not has_mask or mask[b, t]:
                    acc = row_dot(staged, cur + r * units, w, u, units, units, 0, 1, zero)
                    dh[i] = acc * rdrop[b, u] if has_rdrop else acc
                if s > 0:
                    rows_dz(u, i, row, masked, arriving, derivative_value, dh, staged, span - cur, dz, zero)
            cuda.syncthreads()
        for i in range(cuda.threadIdx.x, pairs, cuda.blockDim.x):
            dh_last[r0 + i // units, i % units] = dh[i]

    return backward_rows
