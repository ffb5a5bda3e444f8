"""Kernel factories for :mod:`simplernn_numba.kernels.cuda`.

Each factory compiles its kernels once per dtype (and tile shape) with explicit
signatures, the dtype and tile sizes being compile-time constants (shared-memory
shapes, typed accumulators). Optional arrays are passed as zero-size
placeholders with a flag, so every kernel has exactly one signature.
"""

import functools

import numba
import numpy as np
from numba import cuda

from ._cuda_device import (
    activate,
    backward_finish,
    backward_item,
    derivative,
    forward_finish,
    forward_item,
    group_sum,
    input_value,
    lane_sum,
    load_columns,
    row_dot,
    rows_dz,
    rows_dz_inputs,
    stage_dz,
    stage_states,
    step_dz,
)


def _signature(*types):
    return numba.void(*types)


@functools.cache
def kernels_for(dtype: np.dtype) -> dict:
    """Compile (once) the untiled kernels for ``dtype`` (float32 or float64)."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i32, i64, b1 = numba.int32, numba.int64, numba.boolean
    a1, a2 = dt[:], dt[:, :]
    forward_params = numba.types.Tuple((a2, a2, b1, b1[:, :], b1, i32[:], b1, i64, b1))
    backward_params = numba.types.Tuple((a2, a2, i64, a2, b1, b1[:, :], b1, i32[:], b1))
    projection_params = numba.types.Tuple((a2, a1, a1, b1, a2, b1))

    @cuda.jit(_signature(b1[:, :], b1, b1, i32[:]))
    def first_unmasked(mask, has_mask, go_backwards, first):
        """``first[b]``: first processing step whose mask is True (T if none; 0 without mask)."""
        steps = mask.shape[1]
        for b in range(cuda.grid(1), first.shape[0], cuda.gridsize(1)):
            found = 0
            if has_mask:
                found = steps
                for s in range(steps):
                    t = steps - 1 - s if go_backwards else s
                    if mask[b, t]:
                        found = s
                        break
            first[b] = found

    @cuda.jit(_signature(forward_params, a1, a2, a2, a2, i64))
    def forward_step(p, u_mat, h_cur, h_next, outputs, s):
        """One processing step for every (batch row, unit)."""
        batch, units = h_cur.shape
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            forward_item(b, u, s, p, u_mat, h_cur, h_next, outputs, zero)

    @cuda.jit(_signature(forward_params, a1, a2, a2, a2, i64, i64, i64, b1))
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
        rdrop, has_rdrop, mask, has_mask, go_backwards = p[1], p[2], p[3], p[4], p[6]
        steps = p[0].shape[0] // batch
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

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64))
    def backward_step(p, u_mat, dh_cur, dh_next, dz, s):
        """One processing step of backpropagation for every (batch row, unit)."""
        batch, units = dh_cur.shape
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            backward_item(b, u, s, p, u_mat, dh_cur, dh_next, dz, zero)

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64, i64, i64, b1))
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
        mask, has_mask, go_backwards = p[5], p[6], p[8]
        steps = p[0].shape[0] // batch
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

    @cuda.jit(_signature(forward_params, projection_params, a1, a2, a2, a2, i64, b1, i64, i64))
    def forward_rows(p, projection, u_mat, h0, h_last, outputs, rows, kernel_shared, lanes, ld):
        """All steps for ``rows`` batch rows per block, input projection included; blocks
        never wait for each other. ``p[0]`` (``xw``) is not read: ``projection`` = (x as
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

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64))
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

    @cuda.jit(_signature(a2, a2, b1[:, :], b1, b1, a2))
    def previous_states(outputs, h0, mask, has_mask, go_backwards, h_prev):
        """State entering every step, stored at input-time rows of ``h_prev`` (B * T, U)."""
        batch, units = h0.shape
        steps = outputs.shape[0] // batch
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            h = h0[b, u]
            for s in range(steps):
                t = steps - 1 - s if go_backwards else s
                h_prev[b * steps + t, u] = h
                if not has_mask or mask[b, t]:
                    h = outputs[b * steps + s, u]

    @cuda.jit(_signature(a2, i64))
    def derivative_in_place(z, act):
        """Replace every pre-activation by the activation's derivative there."""
        rows, cols = z.shape
        for i in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
            r = i // cols
            c = i - r * cols
            z[r, c] = derivative(z[r, c], act)

    @cuda.jit(_signature(a2, a1))
    def column_sum(m, out):
        """``out[c] = sum_r m[r, c]``."""
        for c in range(cuda.grid(1), m.shape[1], cuda.gridsize(1)):
            acc = 0.0
            for r in range(m.shape[0]):
                acc += m[r, c]
            out[c] = acc

    return {"first_unmasked": first_unmasked, "forward_step": forward_step,
            "forward_persistent": forward_persistent, "backward_step": backward_step,
            "backward_persistent": backward_persistent, "forward_rows": forward_rows,
            "backward_rows": backward_rows, "previous_states": previous_states,
            "derivative_in_place": derivative_in_place, "column_sum": column_sum}


@functools.cache
def tiled_kernels_for(dtype: np.dtype, tile: int, micro: int) -> dict:
    """Compile (once) the shared-memory tiled kernels for ``dtype``: blocks of ``tile x tile`` threads.

    ``gemm``: ``c = (op(a) @ op(b) + bias) * c_scale (+ c if accumulate)``, with
    ``op(a) = a.T`` if ``a_trans`` and ``op(b) = b.T`` if ``b_trans``. Each stored
    element ``a[i, j]`` is multiplied by ``a_scale[i // steps, j]`` when
    ``has_a_scale`` (a dropout mask per batch row, rows being ``b * steps + t``);
    likewise ``c[i, j]`` by ``c_scale[i // steps, j]``. A block computes a
    ``tile * micro`` square of ``c``, each thread ``micro x micro`` values held in
    registers, over ``tile``-deep slices of the shared dimension.

    ``forward_step_tiled`` / ``backward_step_tiled``: one recurrence step as a
    ``tile x tile``-blocked product over (batch, units), the step's epilogue fused.
    """
    dt = numba.from_dtype(dtype)
    b1, i64 = numba.boolean, numba.int64
    a1, a2 = dt[:], dt[:, :]
    zero = dtype.type(0)
    span = tile * micro
    forward_params = numba.types.Tuple((a2, a2, b1, b1[:, :], b1, numba.int32[:], b1, i64, b1))
    backward_params = numba.types.Tuple((a2, a2, i64, a2, b1, b1[:, :], b1, numba.int32[:], b1))

    @cuda.jit(_signature(a2, b1, a2, b1, i64, a2, b1, a1, b1, a2, b1, b1, a2))
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

    @cuda.jit(_signature(forward_params, a1, a2, a2, a2, i64))
    def forward_step_tiled(p, u_mat, h_cur, h_next, outputs, s):
        """One step: ``(h_cur * rdrop) @ U`` tiled over (batch, units), then the activation."""
        h_tile = cuda.shared.array((tile, tile), dt)
        u_tile = cuda.shared.array((tile, tile), dt)
        rdrop, has_rdrop = p[1], p[2]
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

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64))
    def backward_step_tiled(p, u_mat, dh_cur, dh_next, dz, s):
        """One backward step: ``dz_s @ U.T`` tiled over (batch, units), then the carry/dropout."""
        dz_tile = cuda.shared.array((tile, tile), dt)
        u_tile = cuda.shared.array((tile, tile), dt)
        go_backwards = p[8]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        batch, units = dh_cur.shape
        steps = p[0].shape[0] // batch
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

    return {"gemm": gemm, "forward_step_tiled": forward_step_tiled,
            "backward_step_tiled": backward_step_tiled}
