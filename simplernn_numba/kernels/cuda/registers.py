"""Register-resident recurrence kernels: every thread keeps a slice of one column of U in registers.

A block runs every step of ``rows`` batch rows (blocks never wait for each other). Its
``bucket * lanes`` threads (``bucket``: U rounded up to a power of two) are ``bucket`` columns of
``lanes`` threads; thread ``tid`` is lane ``tid % lanes`` of column ``tid // lanes`` and holds
``weights = bucket // lanes`` entries of that column of U (forward) or row of U (backward) in
registers: entry ``j`` is ``k = lane + j * lanes``, so at each ``j`` the lanes of a warp read
consecutive words of the state in shared memory and its columns the same words (a broadcast).
Every size that shapes a loop is a compile-time constant, so NVVM unrolls the loops and keeps
the weights, accumulators and staged loads in registers (``benchmarks/ptx_check.py --ptxas``
shows a 0-byte stack frame).

A step: each thread multiplies its slice of the state by its weights for every row; warp
shuffles (``xor``) sum the ``lanes`` partial sums of a column; lane ``r % lanes`` finishes row
``r`` of the column (activation, mask, dropout, output) and writes the new state to the other
of two shared buffers; one block barrier. What a step needs from global memory besides the
state (``x @ kernel + bias`` forward; the output gradient and the output backward; the mask) is
staged in shared memory in chunks of ``stage_steps`` steps, double-buffered: the loads of the
next chunk are issued into registers at the start of a chunk and stored at its end, so their
latency overlaps ``stage_steps`` steps.

Arguments are device pointers (``types.CPointer``, see :func:`.launch.pointer`) and int32 sizes;
rows of the flat ``(B * T, U)`` arrays are ``b * T + t`` as in the other kernels. Under the
simulator, which has no warp shuffles, the shuffle is emulated through shared memory (two block
barriers; every thread of the block takes part in every shuffle, as on the GPU).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np
from numba import cuda, types

from ..device_arrays import simulated
from .activation import FROM_OUTPUT, activate, output_derivative
from .step import DOUT_LAST, DOUT_SEQUENCE

_FULL_MASK = 0xFFFFFFFF


class Shape(NamedTuple):
    """Compile-time shape of a register-resident kernel: ``bucket`` columns (>= U) of ``lanes``
    threads each, ``rows`` batch rows per block, chunks of ``stage_steps`` steps staged in shared
    memory; all four powers of two."""

    bucket: int
    lanes: int
    rows: int
    stage_steps: int

    @property
    def threads(self) -> int:
        return self.bucket * self.lanes

    @property
    def weights(self) -> int:
        """Entries of U each thread keeps in registers."""
        return self.bucket // self.lanes

    def shared_bytes(self, itemsize: int, streams: int) -> int:
        """Static shared memory of a kernel staging ``streams`` (rows, units) arrays per step."""
        floats = 2 * self.rows * self.bucket + streams * 2 * self.stage_steps * self.rows * self.bucket
        return floats * itemsize + 2 * self.stage_steps * self.rows + 4 * self.rows


def _exchange():
    """Device function ``exchange(value, offset, scratch)``: the value of thread ``tid ^ offset``."""
    if simulated():
        @cuda.jit(device=True)
        def exchange(value, offset, scratch):
            i = cuda.threadIdx.x
            scratch[i] = value
            cuda.syncthreads()
            other = scratch[i ^ offset]
            cuda.syncthreads()
            return other
    else:
        @cuda.jit(device=True)
        def exchange(value, offset, scratch):
            return cuda.shfl_xor_sync(_FULL_MASK, value, offset)
    return exchange


def _jit(signature, threads: int):
    """``cuda.jit`` with the signature and, on a GPU, launch bounds of ``threads`` (ptxas then
    keeps every thread within the registers that many threads may have)."""
    return cuda.jit(signature) if simulated() else cuda.jit(signature, launch_bounds=(threads,))


def _staging(dt, shape: Shape):
    """Device functions loading one chunk's element of a (rows, units) array per processing step
    (``load``) and of the mask (``load_mask``); see the module docstring."""
    bucket, rows = shape.bucket, shape.rows
    per_step = rows * bucket
    log_bucket, log_rows = bucket.bit_length() - 1, rows.bit_length() - 1
    log_per_step = log_bucket + log_rows
    zero = dt(0)

    @cuda.jit(device=True)
    def load(src, e, j0, b0, batch, steps, units, reverse):
        """Element ``e`` (step ``q``, row ``r``, column ``c``) of the chunk starting at loop step
        ``j0``: row ``j0 + q`` of batch row ``b0 + r`` of ``src`` (row ``T - 1 - (j0 + q)`` if
        ``reverse``); 0 past the ends."""
        q = e >> log_per_step  # shifts and masks: no signed-division fix-ups
        rest = e & (per_step - 1)
        r = rest >> log_bucket
        c = rest & (bucket - 1)
        j = j0 + q
        b = b0 + r
        if j < steps and b < batch and c < units:
            s = steps - 1 - j if reverse else j
            return src[(b * steps + s) * units + c]
        return zero

    @cuda.jit(device=True)
    def load_mask(mask, e, j0, b0, batch, steps, go_backwards, reverse):
        """Element ``e`` (step ``q``, row ``r``) of the chunk's mask: 1 where processing step
        ``j0 + q`` (``T - 1 - (j0 + q)`` if ``reverse``) runs."""
        q = e >> log_rows
        r = e & (rows - 1)
        j = j0 + q
        b = b0 + r
        if j < steps and b < batch:
            s = steps - 1 - j if reverse else j
            t = steps - 1 - s if go_backwards else s
            return numba.uint8(1) if mask[b * steps + t] else numba.uint8(0)
        return numba.uint8(0)

    return load, load_mask


@functools.cache
def forward_kernel(dtype: np.dtype, shape: Shape, act: int, has_mask: bool, has_rdrop: bool,
                   keep_all: bool):
    """The forward kernel for one dtype, shape, activation and set of options.

    ``kernel[blocks, shape.threads](xw, u, h0, rdrop, mask, out, state, batch, steps, units,
    go_backwards)``: ``xw`` (B * T, U) ``x @ kernel + bias`` (rows in input time order),
    ``u`` (U, U), ``h0`` (B, U), ``rdrop`` (B, U) if ``has_rdrop``, ``mask`` (B, T) bool if
    ``has_mask``, ``out`` (B * T, U) in processing order if ``keep_all`` else (B, U) (the last
    output), ``state`` (B, U) the final state; ``blocks = ceil(B / shape.rows)``. ``out`` may be
    ``xw`` itself when ``keep_all`` and not ``go_backwards``: each chunk of ``xw`` is read before
    the outputs of its steps are written.
    """
    dt = numba.from_dtype(dtype)
    zero, one = dtype.type(0), dtype.type(1)
    bucket, lanes, rows, stage = shape
    threads, weights = shape.threads, shape.weights
    owned = -(-rows // lanes)  # rows finished by each lane
    chunk = stage * rows * bucket
    loads = -(-chunk // threads)  # staged loads per thread and chunk
    mask_loads = -(-(stage * rows) // threads)
    mask_slots = stage * rows if has_mask else 1  # shared-memory shapes: constants at typing
    levels = lanes.bit_length() - 1
    log_stage = stage.bit_length() - 1
    scratch_size = threads if simulated() else 1
    exchange = _exchange()
    load, load_mask = _staging(dt, shape)
    ptr, i32 = types.CPointer(dt), numba.int32
    signature = numba.void(ptr, ptr, ptr, ptr, types.CPointer(numba.uint8), ptr, ptr, i32, i32, i32, i32)

    @_jit(signature, threads)
    def forward_registers(xw, u, h0, rdrop, mask, out, state, batch, steps, units, go_backwards):
        hs = cuda.shared.array((2, rows, bucket), dt)
        xs = cuda.shared.array((2, chunk), dt)
        ms = cuda.shared.array((2, mask_slots), numba.uint8)
        scratch = cuda.shared.array(scratch_size, dt)
        w = cuda.local.array(weights, dt)
        acc = cuda.local.array(rows, dt)
        pending = cuda.local.array(loads, dt)
        pending_mask = cuda.local.array(mask_loads, numba.uint8)
        h_own = cuda.local.array(owned, dt)
        rd = cuda.local.array(owned, dt)
        seen = cuda.local.array(owned, numba.uint8)
        tid = cuda.threadIdx.x
        col = tid >> levels  # every size a power of two: shifts and masks, no signed-division
        lane = tid & (lanes - 1)  # fix-ups, indices LLVM knows to be non-negative
        b0 = cuda.blockIdx.x * rows
        for j in range(weights):
            k = lane + j * lanes
            w[j] = u[k * units + col] if k < units and col < units else zero
        for i in range(owned):
            r = lane + i * lanes
            b = b0 + r
            live = r < rows and b < batch and col < units
            h_own[i] = h0[b * units + col] if live else zero
            rd[i] = one
            if has_rdrop:
                rd[i] = rdrop[b * units + col] if live else zero
            seen[i] = 0 if has_mask else 1
            if r < rows:
                hs[0, r, col] = h_own[i] * rd[i]
        for j in range(loads):
            e = tid + j * threads
            if e < chunk:
                xs[0, e] = load(xw, e, 0, b0, batch, steps, units, go_backwards)
        if has_mask:
            for j in range(mask_loads):
                e = tid + j * threads
                if e < stage * rows:
                    ms[0, e] = load_mask(mask, e, 0, b0, batch, steps, go_backwards, False)
        cuda.syncthreads()
        for s in range(steps):
            q = s & (stage - 1)
            buf = (s >> log_stage) & 1
            cur = s & 1
            if q == 0 and s + stage < steps:  # the next chunk's loads, stored at this chunk's end
                for j in range(loads):
                    e = tid + j * threads
                    pending[j] = load(xw, e, s + stage, b0, batch, steps, units, go_backwards) \
                        if e < chunk else zero
                if has_mask:
                    for j in range(mask_loads):
                        e = tid + j * threads
                        pending_mask[j] = load_mask(mask, e, s + stage, b0, batch, steps, go_backwards,
                                                    False) if e < stage * rows else numba.uint8(0)
            for r in range(rows):
                a = zero
                for j in range(weights):
                    a += hs[cur, r, lane + j * lanes] * w[j]
                acc[r] = a
            for r in range(rows):
                a = acc[r]
                for level in range(levels):
                    a += exchange(a, lanes >> (level + 1), scratch)
                acc[r] = a
            for i in range(owned):
                r = lane + i * lanes
                if r < rows:
                    a = acc[0]
                    for rr in range(1, rows):
                        if rr == r:
                            a = acc[rr]
                    keep = True
                    if has_mask:
                        keep = ms[buf, q * rows + r] != 0
                    if keep:
                        h_own[i] = activate(a + xs[buf, (q * rows + r) * bucket + col], act) \
                            if col < units else zero
                        seen[i] = 1
                    hs[1 - cur, r, col] = h_own[i] * rd[i]
                    b = b0 + r
                    if keep_all and b < batch and col < units:
                        out[(b * steps + s) * units + col] = h_own[i] if seen[i] else zero
            if q == stage - 1 and s + 1 < steps:
                for j in range(loads):
                    e = tid + j * threads
                    if e < chunk:
                        xs[1 - buf, e] = pending[j]
                if has_mask:
                    for j in range(mask_loads):
                        e = tid + j * threads
                        if e < stage * rows:
                            ms[1 - buf, e] = pending_mask[j]
            cuda.syncthreads()
        for i in range(owned):
            r = lane + i * lanes
            b = b0 + r
            if r < rows and b < batch and col < units:
                state[b * units + col] = h_own[i]
                if not keep_all:
                    out[b * units + col] = h_own[i] if seen[i] else zero

    return forward_registers


@functools.cache
def backward_kernel(dtype: np.dtype, shape: Shape, act: int, dout_mode: int, has_mask: bool,
                    has_rdrop: bool):
    """The backward recurrence for one dtype, shape, activation (in ``FROM_OUTPUT`` of
    :mod:`.activation`), kind of output gradient and set of options.

    ``kernel[blocks, shape.threads](dout, outputs, u, d_state, rdrop, mask, dz, dh0, batch, steps,
    units, go_backwards, has_d_state)``: ``dout`` (B * T, U) if ``dout_mode`` is
    ``DOUT_SEQUENCE``, (B, U) if ``DOUT_LAST``; ``outputs`` (B * T, U) the forward outputs
    (processing order; the activation's derivative is taken from them); ``u`` (U, U);
    ``d_state`` (B, U) if ``has_d_state`` (else zeros); ``rdrop``, ``mask`` as forward. Writes
    ``dz`` (B * T, U), the gradient at every pre-activation (rows in input time order, zero at
    masked steps), and ``dh0`` (B, U), the gradient of the initial state.
    """
    if act not in FROM_OUTPUT:
        raise ValueError(f"the derivative of activation code {act} is not a function of its output")
    dt = numba.from_dtype(dtype)
    zero, one = dtype.type(0), dtype.type(1)
    bucket, lanes, rows, stage = shape
    threads, weights = shape.threads, shape.weights
    owned = -(-rows // lanes)
    chunk = stage * rows * bucket
    loads = -(-chunk // threads)
    mask_loads = -(-(stage * rows) // threads)
    mask_slots = stage * rows if has_mask else 1  # shared-memory shapes: constants at typing
    levels = lanes.bit_length() - 1
    log_stage = stage.bit_length() - 1
    scratch_size = threads if simulated() else 1
    sequence = dout_mode == DOUT_SEQUENCE
    last = dout_mode == DOUT_LAST
    dout_slots = chunk if sequence else 1
    exchange = _exchange()
    load, load_mask = _staging(dt, shape)
    ptr, i32 = types.CPointer(dt), numba.int32
    signature = numba.void(ptr, ptr, ptr, ptr, ptr, types.CPointer(numba.uint8), ptr, ptr, i32, i32, i32,
                           i32, i32)

    @_jit(signature, threads)
    def backward_registers(dout, outputs, u, d_state, rdrop, mask, dz, dh0, batch, steps, units,
                           go_backwards, has_d_state):
        dzs = cuda.shared.array((2, rows, bucket), dt)
        os_ = cuda.shared.array((2, chunk), dt)
        ds = cuda.shared.array((2, dout_slots), dt)
        ms = cuda.shared.array((2, mask_slots), numba.uint8)
        first = cuda.shared.array(rows, numba.int32)
        scratch = cuda.shared.array(scratch_size, dt)
        w = cuda.local.array(weights, dt)
        acc = cuda.local.array(rows, dt)
        pending_o = cuda.local.array(loads, dt)
        pending_d = cuda.local.array(loads, dt)
        pending_mask = cuda.local.array(mask_loads, numba.uint8)
        dh = cuda.local.array(owned, dt)
        rd = cuda.local.array(owned, dt)
        keep = cuda.local.array(owned, numba.uint8)
        tid = cuda.threadIdx.x
        col = tid >> levels  # every size a power of two: shifts and masks, no signed-division
        lane = tid & (lanes - 1)  # fix-ups, indices LLVM knows to be non-negative
        b0 = cuda.blockIdx.x * rows
        for j in range(weights):
            k = lane + j * lanes
            w[j] = u[col * units + k] if k < units and col < units else zero
        if has_mask:  # the first processing step at which each row is unmasked (T if none)
            if tid < rows:
                first[tid] = steps
            cuda.syncthreads()
            for e in range(tid, rows * steps, threads):
                r = e // steps
                s = e - r * steps
                t = steps - 1 - s if go_backwards else s
                if b0 + r < batch and mask[(b0 + r) * steps + t]:
                    cuda.atomic.min(first, r, s)
        for i in range(owned):
            r = lane + i * lanes
            b = b0 + r
            live = r < rows and b < batch and col < units
            dh[i] = d_state[b * units + col] if live and has_d_state != 0 else zero
            rd[i] = one
            if has_rdrop:
                rd[i] = rdrop[b * units + col] if live else zero
        for j in range(loads):
            e = tid + j * threads
            if e < chunk:
                os_[0, e] = load(outputs, e, 0, b0, batch, steps, units, True)
                if sequence:
                    ds[0, e] = load(dout, e, 0, b0, batch, steps, units, True)
        if has_mask:
            for j in range(mask_loads):
                e = tid + j * threads
                if e < stage * rows:
                    ms[0, e] = load_mask(mask, e, 0, b0, batch, steps, go_backwards, True)
        cuda.syncthreads()
        for j in range(steps):  # processing step s = T - 1 - j
            s = steps - 1 - j
            t = steps - 1 - s if go_backwards else s
            q = j & (stage - 1)
            buf = (j >> log_stage) & 1
            cur = j & 1
            if q == 0 and j + stage < steps:
                for p in range(loads):
                    e = tid + p * threads
                    live = e < chunk
                    pending_o[p] = load(outputs, e, j + stage, b0, batch, steps, units, True) \
                        if live else zero
                    if sequence:
                        pending_d[p] = load(dout, e, j + stage, b0, batch, steps, units, True) \
                            if live else zero
                if has_mask:
                    for p in range(mask_loads):
                        e = tid + p * threads
                        pending_mask[p] = load_mask(mask, e, j + stage, b0, batch, steps, go_backwards,
                                                    True) if e < stage * rows else numba.uint8(0)
            for i in range(owned):
                r = lane + i * lanes
                if r < rows:
                    b = b0 + r
                    live = b < batch and col < units
                    e = (q * rows + r) * bucket + col
                    arriving = zero
                    if sequence:
                        arriving = ds[buf, e]
                    if last and j == 0 and live:
                        arriving = dout[b * units + col]
                    runs = True
                    if has_mask:
                        runs = ms[buf, q * rows + r] != 0
                        if s < first[r]:
                            arriving = zero
                    keep[i] = 1 if runs else 0
                    value = zero
                    if runs:
                        value = (dh[i] + arriving) * output_derivative(os_[buf, e], act) if live else zero
                    else:
                        dh[i] += arriving
                    dzs[cur, r, col] = value
                    if live:
                        dz[(b * steps + t) * units + col] = value
            if q == stage - 1 and j + 1 < steps:
                for p in range(loads):
                    e = tid + p * threads
                    if e < chunk:
                        os_[1 - buf, e] = pending_o[p]
                        if sequence:
                            ds[1 - buf, e] = pending_d[p]
                if has_mask:
                    for p in range(mask_loads):
                        e = tid + p * threads
                        if e < stage * rows:
                            ms[1 - buf, e] = pending_mask[p]
            cuda.syncthreads()
            for r in range(rows):
                a = zero
                for p in range(weights):
                    a += dzs[cur, r, lane + p * lanes] * w[p]
                acc[r] = a
            for r in range(rows):
                a = acc[r]
                for level in range(levels):
                    a += exchange(a, lanes >> (level + 1), scratch)
                acc[r] = a
            for i in range(owned):
                r = lane + i * lanes
                if r < rows and keep[i] != 0:
                    a = acc[0]
                    for rr in range(1, rows):
                        if rr == r:
                            a = acc[rr]
                    dh[i] = a * rd[i]
        for i in range(owned):
            r = lane + i * lanes
            b = b0 + r
            if r < rows and b < batch and col < units:
                dh0[b * units + col] = dh[i]

    return backward_registers
