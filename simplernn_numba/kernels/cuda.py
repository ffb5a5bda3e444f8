"""Numba CUDA kernels for SimpleRNN (the optional ``cuda`` extra, ``numba-cuda``).

Same contract as :mod:`simplernn_numba.kernels.reference` (see
:mod:`simplernn_numba.kernels`). Every array argument may be a NumPy array or a
GPU array (a Numba device array, or any object exposing
``__cuda_array_interface__``, used with zero copies). Results are device arrays
when ``x`` was on the GPU and NumPy arrays otherwise.

Layout of the work:

- everything that is not sequential in time is a tiled shared-memory GEMM over
  all ``B * T`` rows at once (:func:`_tiled_kernels`): the input projection
  ``x @ kernel + bias`` in the forward pass; the pre-activations, ``dX``,
  ``dW``, ``dU`` in the backward pass (``db`` is a column sum). Dropout masks are
  applied while tiles are loaded, never materialised;
- the sequential ``h @ recurrent_kernel`` part runs either as one launch per
  step (a grid-stride loop over ``(batch, unit)`` pairs, or shared-memory tiles
  of ``(batch, unit)`` for large batches, see :func:`_per_step`), or as one
  persistent cooperative kernel that keeps its slice of ``recurrent_kernel`` in
  shared memory for all steps and synchronises the grid between steps
  (``cuda.cg.this_grid().sync()``), for small batches: :func:`use_persistent`
  holds the rule. Bias, activation, mask and dropout are fused into each step.

Rows of the flat ``(B * T, ...)`` work arrays are in input time order; the
recurrence kernels map processing step ``s`` to time ``t`` (``T - 1 - s`` with
``go_backwards``). Launch sizes come from :data:`CONFIG`, which tests shrink so
that tiny inputs still run every grid-stride loop.

Kernels are compiled lazily, once per dtype (and tile size), with explicit
signatures; this module is imported only when the CUDA backend is used.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda

from .. import activations as A

#: Launch configuration. ``threads_per_block``: 1-D kernels; ``max_blocks``: cap on blocks per grid
#: dimension (grid-stride loops cover the rest); ``tile``: edge of the tile x tile thread blocks of
#: the tiled kernels; ``micro``: each GEMM thread computes micro x micro outputs;
#: ``tiled_step_min_batch``: smallest batch whose per-step launches use the tiled step kernels;
#: ``persistent``: ``"auto"`` (see :func:`use_persistent`), True or False;
#: ``persistent_max_batch``: largest batch for which ``"auto"`` picks the persistent kernel;
#: ``persistent_lanes``: threads sharing one dot product there (a power of two).
DEFAULT_CONFIG = {"threads_per_block": 256, "max_blocks": 4096, "tile": 16, "micro": 4,
                  "tiled_step_min_batch": 16, "persistent": "auto", "persistent_max_batch": 8,
                  "persistent_lanes": 32}
CONFIG = dict(DEFAULT_CONFIG)

#: Dynamic shared memory a block may use without an opt-in (bytes).
SHARED_MEMORY_LIMIT = 48 * 1024

_NO_DOUT, _DOUT_SEQUENCE, _DOUT_LAST = 0, 1, 2


def reset_config() -> None:
    """Restore :data:`CONFIG` to :data:`DEFAULT_CONFIG`."""
    CONFIG.clear()
    CONFIG.update(DEFAULT_CONFIG)


def simulator_enabled() -> bool:
    """True when running under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(numba.config.ENABLE_CUDASIM)


# ---------------------------------------------------------------------------- activations
@cuda.jit(device=True)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@cuda.jit(device=True)
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True)
def _hard_sigmoid(v):
    return min(max(v / 6.0 + 0.5, 0.0), 1.0)


@cuda.jit(device=True)
def activate(v, act):
    """Activation with integer code ``act`` (see :mod:`simplernn_numba.activations`) at ``v``."""
    if act == A.TANH:
        return math.tanh(v)
    if act == A.RELU:
        return max(v, 0.0)
    if act == A.SIGMOID:
        return _sigmoid(v)
    if act == A.ELU:
        return v if v > 0 else math.expm1(v)
    if act == A.SELU:
        return A.SELU_SCALE * (v if v > 0 else A.SELU_ALPHA * math.expm1(v))
    if act == A.SOFTPLUS:
        return _softplus(v)
    if act == A.SOFTSIGN:
        return v / (1.0 + abs(v))
    if act == A.HARD_SIGMOID:
        return _hard_sigmoid(v)
    if act == A.EXPONENTIAL:
        return math.exp(v)
    if act == A.SILU:
        return v * _sigmoid(v)
    if act == A.GELU:
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    if act == A.RELU6:
        return min(max(v, 0.0), 6.0)
    if act == A.LEAKY_RELU:
        return v if v > 0 else v * A.LEAKY_RELU_SLOPE
    if act == A.MISH:
        return v * math.tanh(_softplus(v))
    if act == A.HARD_SILU:
        return v * _hard_sigmoid(v)
    return v  # LINEAR


@cuda.jit(device=True)
def derivative(v, act):
    """Derivative of activation ``act`` with respect to its input, at ``v``."""
    if act == A.TANH:
        t = math.tanh(v)
        return 1.0 - t * t
    if act == A.RELU:
        return 1.0 if v > 0 else 0.0
    if act == A.SIGMOID:
        s = _sigmoid(v)
        return s * (1.0 - s)
    if act == A.ELU:
        return 1.0 if v > 0 else math.exp(v)
    if act == A.SELU:
        return A.SELU_SCALE * (1.0 if v > 0 else A.SELU_ALPHA * math.exp(v))
    if act == A.SOFTPLUS:
        return _sigmoid(v)
    if act == A.SOFTSIGN:
        d = 1.0 + abs(v)
        return 1.0 / (d * d)
    if act == A.HARD_SIGMOID:
        return 1.0 / 6.0 if -3.0 < v < 3.0 else 0.0
    if act == A.EXPONENTIAL:
        return math.exp(v)
    if act == A.SILU:
        s = _sigmoid(v)
        return s + v * s * (1.0 - s)
    if act == A.GELU:
        return (0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
                + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi))
    if act == A.RELU6:
        return 1.0 if 0.0 < v < 6.0 else 0.0
    if act == A.LEAKY_RELU:
        return 1.0 if v > 0 else A.LEAKY_RELU_SLOPE
    if act == A.MISH:
        t = math.tanh(_softplus(v))
        return t + v * (1.0 - t * t) * _sigmoid(v)
    if act == A.HARD_SILU:
        return _hard_sigmoid(v) + (v / 6.0 if -3.0 < v < 3.0 else 0.0)
    return 1.0  # LINEAR


# ---------------------------------------------------------------------------- one (row, unit) of one step
@cuda.jit(device=True)
def _forward_finish(b, u, s, p, hu, h_cur, h_next, outputs):
    """Store state and output of row ``b``, unit ``u`` at step ``s`` given ``hu = (h_in @ U)[b, u]``.

    ``p`` = (xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all);
    ``hu`` is ignored at a masked step (the state is carried).
    """
    xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all = p
    steps = xw.shape[0] // h_cur.shape[0]
    t = steps - 1 - s if go_backwards else s
    if has_mask and not mask[b, t]:
        h_next[b, u] = h_cur[b, u]
        value = h_cur[b, u] if s >= first[b] else 0.0
    else:
        value = activate(xw[b * steps + t, u] + hu, act)
        h_next[b, u] = value
    if keep_all:
        outputs[b * steps + s, u] = value
    elif s == steps - 1:
        outputs[b, u] = value


@cuda.jit(device=True)
def _forward_item(b, u, s, p, u_mat, h_cur, h_next, outputs, zero):
    """State and output of batch row ``b``, unit ``u`` at processing step ``s`` (one dot product).

    ``u_mat`` is the flat recurrent kernel; ``zero`` a 0 of the kernel's dtype (the accumulator's).
    """
    xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards, act, keep_all = p
    steps = xw.shape[0] // h_cur.shape[0]
    t = steps - 1 - s if go_backwards else s
    units = h_cur.shape[1]
    acc = zero
    if not has_mask or mask[b, t]:
        for k in range(units):
            hk = h_cur[b, k] * rdrop[b, k] if has_rdrop else h_cur[b, k]
            acc += hk * u_mat[k * units + u]
    _forward_finish(b, u, s, p, acc, h_cur, h_next, outputs)


@cuda.jit(device=True)
def _output_grad(b, k, s, steps, first, dout, dout_mode, zero):
    """Gradient arriving at output ``(b, s, k)`` (``zero`` before the row's first unmasked step)."""
    if s < first[b]:
        return zero
    if dout_mode == _DOUT_SEQUENCE:
        return dout[b * steps + s, k]
    if dout_mode == _DOUT_LAST and s == steps - 1:
        return dout[b, k]
    return zero


@cuda.jit(device=True)
def _step_dz(b, k, s, row, p, dh_cur):
    """``dz`` of row ``b``, unit ``k`` at step ``s`` (``row`` = b * T + t) if the step is unmasked."""
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    steps = grad.shape[0] // dh_cur.shape[0]
    zero = grad[row, k] * 0
    return (dh_cur[b, k] + _output_grad(b, k, s, steps, first, dout, dout_mode, zero)) * grad[row, k]


@cuda.jit(device=True)
def _backward_finish(b, u, s, p, dzu, dh_cur, dh_next, dz):
    """Store ``dz`` and the state gradient before step ``s`` given ``dzu = (dz_s @ U.T)[b, u]``.

    ``p`` = (grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards),
    ``grad`` the activation derivative at every pre-activation (input time order);
    ``dzu`` is ignored at a masked step (the gradient is carried).
    """
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    steps = grad.shape[0] // dh_cur.shape[0]
    t = steps - 1 - s if go_backwards else s
    row = b * steps + t
    if has_mask and not mask[b, t]:
        dz[row, u] = 0.0
        dh_next[b, u] = dh_cur[b, u] + _output_grad(b, u, s, steps, first, dout, dout_mode, dzu * 0)
    else:
        dz[row, u] = _step_dz(b, u, s, row, p, dh_cur)
        dh_next[b, u] = dzu * rdrop[b, u] if has_rdrop else dzu


@cuda.jit(device=True)
def _backward_item(b, u, s, p, u_mat, dh_cur, dh_next, dz, zero):
    """Backward step ``s`` for row ``b``, unit ``u`` (one dot product).

    ``u_mat`` is the flat recurrent kernel; ``zero`` a 0 of the kernel's dtype (the accumulator's).
    """
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    steps = grad.shape[0] // dh_cur.shape[0]
    t = steps - 1 - s if go_backwards else s
    row = b * steps + t
    units = dh_cur.shape[1]
    acc = zero
    if not has_mask or mask[b, t]:
        for k in range(units):
            acc += _step_dz(b, k, s, row, p, dh_cur) * u_mat[u * units + k]
    _backward_finish(b, u, s, p, acc, dh_cur, dh_next, dz)


@cuda.jit(device=True)
def _load_columns(u_mat, units, c0, cols, transposed, shared):
    """Copy columns ``c0 .. c0 + cols`` of ``u_mat`` (rows if ``transposed``) to ``shared[c * units + k]``.

    ``u_mat`` is the flat (units * units) recurrent kernel; the slice a block needs
    for every step, so consecutive ``k`` (one per lane) are consecutive in shared memory.
    """
    n = min(cols, units - c0)
    for i in range(cuda.threadIdx.x, units * n, cuda.blockDim.x):
        if transposed:
            c = i // units
            k = i - c * units
            shared[i] = u_mat[(c0 + c) * units + k]
        else:
            k = i // n
            c = i - k * n
            shared[c * units + k] = u_mat[k * units + c0 + c]
    cuda.syncthreads()


@cuda.jit(device=True)
def _group_sum(partial, lanes, scratch):
    """Sum ``partial`` over the ``lanes`` consecutive threads of each group (a power of two).

    Every thread of the block must call it (it synchronises the block). The group's
    first lane receives the sum; ``scratch`` holds one value per thread.
    """
    i = cuda.threadIdx.x
    lane = i % lanes
    scratch[i] = partial
    cuda.syncthreads()
    offset = lanes // 2
    while offset > 0:
        if lane < offset:
            scratch[i] += scratch[i + offset]
        cuda.syncthreads()
        offset //= 2
    return scratch[i]


# ---------------------------------------------------------------------------- kernels (per dtype)
def _signature(*types):
    return numba.void(*types)


@functools.cache
def _kernels(dtype: np.dtype) -> dict:
    """Compile (once) the untiled kernels for ``dtype`` (float32 or float64)."""
    dt = numba.from_dtype(dtype)
    zero = dtype.type(0)
    i32, i64, b1 = numba.int32, numba.int64, numba.boolean
    a1, a2 = dt[:], dt[:, :]
    forward_params = numba.types.Tuple((a2, a2, b1, b1[:, :], b1, i32[:], b1, i64, b1))
    backward_params = numba.types.Tuple((a2, a2, i64, a2, b1, b1[:, :], b1, i32[:], b1))

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
            _forward_item(b, u, s, p, u_mat, h_cur, h_next, outputs, zero)

    @cuda.jit(_signature(forward_params, a1, a2, a2, a2, i64, i64))
    def forward_persistent(p, u_mat, h_a, h_b, outputs, cols, lanes):
        """All steps in one cooperative launch; block j owns units j*cols .. (j+1)*cols.

        Its slice of U stays in shared memory; each (row, unit) dot product is split over
        ``lanes`` threads and summed in shared memory; the grid synchronises between steps.
        """
        grid = cuda.cg.this_grid()
        batch, units = h_a.shape
        shared = cuda.shared.array(0, dt)
        scratch = shared[units * cols:]
        c0 = cuda.blockIdx.x * cols
        n = min(cols, units - c0)
        _load_columns(u_mat, units, c0, cols, False, shared)
        rdrop, has_rdrop, mask, has_mask, go_backwards = p[1], p[2], p[3], p[4], p[6]
        steps = p[0].shape[0] // batch
        groups = cuda.blockDim.x // lanes
        group = cuda.threadIdx.x // lanes
        lane = cuda.threadIdx.x % lanes
        for s in range(steps):
            t = steps - 1 - s if go_backwards else s
            h_cur, h_next = (h_a, h_b) if s % 2 == 0 else (h_b, h_a)
            for base in range(0, batch * n, groups):  # the same trip count in every thread
                i = base + group
                b = i // n
                c = i - b * n
                acc = zero
                if i < batch * n and (not has_mask or mask[b, t]):
                    for k in range(lane, units, lanes):
                        hk = h_cur[b, k] * rdrop[b, k] if has_rdrop else h_cur[b, k]
                        acc += hk * shared[c * units + k]
                acc = _group_sum(acc, lanes, scratch)
                if lane == 0 and i < batch * n:
                    _forward_finish(b, c0 + c, s, p, acc, h_cur, h_next, outputs)
            grid.sync()

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64))
    def backward_step(p, u_mat, dh_cur, dh_next, dz, s):
        """One processing step of backpropagation for every (batch row, unit)."""
        batch, units = dh_cur.shape
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            _backward_item(b, u, s, p, u_mat, dh_cur, dh_next, dz, zero)

    @cuda.jit(_signature(backward_params, a1, a2, a2, a2, i64, i64))
    def backward_persistent(p, u_mat, dh_a, dh_b, dz, cols, lanes):
        """All backward steps in one cooperative launch; block j owns rows j*cols .. of U
        (see ``forward_persistent``)."""
        grid = cuda.cg.this_grid()
        batch, units = dh_a.shape
        shared = cuda.shared.array(0, dt)
        scratch = shared[units * cols:]
        c0 = cuda.blockIdx.x * cols
        n = min(cols, units - c0)
        _load_columns(u_mat, units, c0, cols, True, shared)
        mask, has_mask, go_backwards = p[5], p[6], p[8]
        steps = p[0].shape[0] // batch
        groups = cuda.blockDim.x // lanes
        group = cuda.threadIdx.x // lanes
        lane = cuda.threadIdx.x % lanes
        for j in range(steps):
            s = steps - 1 - j
            t = steps - 1 - s if go_backwards else s
            dh_cur, dh_next = (dh_a, dh_b) if j % 2 == 0 else (dh_b, dh_a)
            for base in range(0, batch * n, groups):  # the same trip count in every thread
                i = base + group
                b = i // n
                c = i - b * n
                acc = zero
                if i < batch * n and (not has_mask or mask[b, t]):
                    for k in range(lane, units, lanes):
                        acc += _step_dz(b, k, s, b * steps + t, p, dh_cur) * shared[c * units + k]
                acc = _group_sum(acc, lanes, scratch)
                if lane == 0 and i < batch * n:
                    _backward_finish(b, c0 + c, s, p, acc, dh_cur, dh_next, dz)
            grid.sync()

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
            "backward_persistent": backward_persistent, "previous_states": previous_states,
            "derivative_in_place": derivative_in_place, "column_sum": column_sum}


@functools.cache
def _tiled_kernels(dtype: np.dtype, tile: int, micro: int) -> dict:
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
                    _forward_finish(b, u, s, p, acc, h_cur, h_next, outputs)

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
                        value = _step_dz(b, k0 + tx, s, b * steps + t, p, dh_cur)
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
                    _backward_finish(b, u, s, p, acc, dh_cur, dh_next, dz)

    return {"gemm": gemm, "forward_step_tiled": forward_step_tiled,
            "backward_step_tiled": backward_step_tiled}


# ---------------------------------------------------------------------------- host helpers
def is_device_array(value) -> bool:
    """True for a Numba device array or any object exposing ``__cuda_array_interface__``."""
    return hasattr(value, "__cuda_array_interface__") or cuda.devicearray.is_cuda_ndarray(value)


def to_device(value):
    """A device array for ``value``: GPU arrays are wrapped with zero copies, host arrays copied."""
    if value is None:
        return None
    if cuda.devicearray.is_cuda_ndarray(value):
        return value
    if hasattr(value, "__cuda_array_interface__"):
        return cuda.as_cuda_array(value)
    return cuda.to_device(np.ascontiguousarray(value))


def _blocks(n: int) -> tuple[int, int]:
    """(blocks, threads) for a 1-D grid-stride loop over ``n`` items."""
    threads = CONFIG["threads_per_block"]
    return max(1, min(-(-n // threads), CONFIG["max_blocks"])), threads


def _launch(kernel, n: int, *args) -> None:
    blocks, threads = _blocks(n)
    kernel[blocks, threads](*args)


class _Placeholders:
    """Zero-size device arrays passed where an optional array is absent (a flag says so)."""

    def __init__(self, dtype: np.dtype):
        self.vector = cuda.device_array(0, dtype)
        self.matrix = cuda.device_array((0, 0), dtype)
        self.mask = cuda.device_array((0, 0), np.bool_)


@functools.cache
def _placeholders(dtype: np.dtype) -> _Placeholders:
    return _Placeholders(dtype)


def _gemm(a, b, c, *, a_trans=False, b_trans=False, a_scale=None, steps=1, bias=None,
          c_scale=None, accumulate=False) -> None:
    """Launch the tiled GEMM (see :func:`_tiled_kernels`); placeholders fill absent options."""
    tile, micro = CONFIG["tile"], CONFIG["micro"]
    none = _placeholders(c.dtype)
    kernel = _tiled_kernels(np.dtype(c.dtype), tile, micro)["gemm"]
    m, n = c.shape
    kernel[_tile_grid(m, n, tile * micro), (tile, tile)](
        a, a_trans, none.matrix if a_scale is None else a_scale, a_scale is not None, steps,
        b, b_trans, none.vector if bias is None else bias, bias is not None,
        none.matrix if c_scale is None else c_scale, c_scale is not None, accumulate, c)


def _tile_grid(rows: int, cols: int, span: int) -> tuple[int, int]:
    """(x, y) blocks covering a rows x cols output in span x span tiles, capped by ``max_blocks``."""
    cap = CONFIG["max_blocks"]
    return max(1, min(-(-cols // span), cap)), max(1, min(-(-rows // span), cap))


def _per_step(name: str, dtype: np.dtype, batch: int, units: int):
    """The per-step kernel ``name`` ("forward_step"/"backward_step") and its launch configuration.

    Batches of at least ``CONFIG["tiled_step_min_batch"]`` rows use the shared-memory tiled
    variant (each block reuses tiles of U across ``tile`` rows); smaller ones one dot product
    per thread.
    """
    tile = CONFIG["tile"]
    if batch >= CONFIG["tiled_step_min_batch"]:
        kernel = _tiled_kernels(dtype, tile, CONFIG["micro"])[name + "_tiled"]
        return kernel[_tile_grid(batch, units, tile), (tile, tile)]
    return _kernels(dtype)[name][_blocks(batch * units)]


def _copy(array):
    out = cuda.device_array(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def _first_unmasked(kernels, mask, batch: int, go_backwards: bool):
    first = cuda.device_array(batch, np.int32)
    none = _placeholders(np.dtype(np.float64)).mask
    _launch(kernels["first_unmasked"], batch, none if mask is None else mask, mask is not None,
            bool(go_backwards), first)
    return first


def _shared_columns(units: int, itemsize: int, blocks: int) -> int:
    """Units per block for the persistent kernels: spread over ``blocks``, within shared memory
    (the slice of U plus one reduction slot per thread)."""
    fit = (SHARED_MEMORY_LIMIT // itemsize - CONFIG["threads_per_block"]) // units
    return min(fit, -(-units // blocks))


def _shared_bytes(units: int, cols: int, itemsize: int) -> int:
    return (units * cols + CONFIG["threads_per_block"]) * itemsize


def _launch_persistent(kernel, units: int, cols: int, itemsize: int, *args) -> None:
    """Cooperative launch of a persistent kernel with ``cols`` units per block."""
    threads = CONFIG["threads_per_block"]
    lanes = min(CONFIG["persistent_lanes"], threads)
    kernel[-(-units // cols), threads, 0, _shared_bytes(units, cols, itemsize)](*args, cols, lanes)


def use_persistent(kernel, batch: int, units: int, itemsize: int) -> int:
    """Units per block for the persistent kernel, or 0 to run one launch per step.

    Rule: ``CONFIG["persistent"]`` False -> 0. Under the simulator (which runs a
    cooperative grid as one block), True -> one block holding all of U.
    On a GPU, True or ``"auto"`` with ``batch <= CONFIG["persistent_max_batch"]``
    picks it when each block's slice of U (plus a reduction slot per thread) fits in
    48 KiB of shared memory and the grid fits ``max_cooperative_grid_blocks`` (one
    block per multiprocessor targeted), else 0. Small batches leave most of a
    per-step launch idle and pay ~10 µs of launch per step; the persistent kernel
    pays one grid synchronisation per step instead.
    """
    mode = CONFIG["persistent"]
    if mode is False or (mode == "auto" and (simulator_enabled() or batch > CONFIG["persistent_max_batch"])):
        return 0
    if simulator_enabled():
        return units
    device = cuda.get_current_device()
    cols = _shared_columns(units, itemsize, device.MULTIPROCESSOR_COUNT)
    if cols < 1:
        return 0
    blocks = -(-units // cols)
    overload = next(iter(kernel.overloads.values()))
    limit = overload.max_cooperative_grid_blocks(CONFIG["threads_per_block"],
                                                 _shared_bytes(units, cols, itemsize))
    return cols if blocks <= limit else 0


def _host_or_device(arrays, on_device: bool):
    return arrays if on_device else tuple(None if a is None else a.copy_to_host() for a in arrays)


def _activation_code(activation) -> int:
    if not isinstance(activation, str):
        raise TypeError(
            "CUDA kernels need a built-in activation name; received "
            f"{activation!r}. Python callables run on device='cpu' (the NumPy reference)."
        )
    return A.code(activation)


def _check_dtypes(dtype: np.dtype, **arrays) -> None:
    """The kernels are compiled per dtype and read raw memory: every array must match (mask: bool)."""
    for name, value in arrays.items():
        if value is None:
            continue
        expected = np.dtype(np.bool_) if name == "mask" else dtype
        interface = getattr(value, "__cuda_array_interface__", None)
        received = np.dtype(interface["typestr"] if interface else value.dtype)
        if received != expected:
            raise TypeError(f"{name} must have dtype {expected} for the CUDA kernels; received {received}.")


# ---------------------------------------------------------------------------- public kernels
def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the GPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.forward`;
    arrays may be NumPy or device arrays (see the module docstring); the results
    are device arrays exactly when ``x`` is one.
    """
    act = _activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    out_shape = (batch, steps, units) if return_sequences else (batch, units)
    if batch == 0:
        empty = (cuda.device_array(out_shape, dtype), cuda.device_array((batch, units), dtype))
        return _host_or_device(empty, on_device)
    kernels = _kernels(dtype)
    none = _placeholders(dtype)
    u_flat = to_device(recurrent_kernel).reshape(units * units)
    _check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                  initial_state=initial_state, mask=mask, input_dropout=input_dropout,
                  recurrent_dropout=recurrent_dropout)
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    xw = cuda.device_array((batch * steps, units), dtype)
    _gemm(x.reshape(batch * steps, features), to_device(kernel), xw, a_scale=input_dropout,
          steps=steps, bias=to_device(bias))
    first = _first_unmasked(kernels, mask, batch, go_backwards)
    params = (xw, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards), act, bool(return_sequences))
    h_a = _copy(to_device(initial_state))
    h_b = cuda.device_array((batch, units), dtype)
    outputs = cuda.device_array((batch * steps, units) if return_sequences else (batch, units), dtype)
    cols = use_persistent(kernels["forward_persistent"], batch, units, dtype.itemsize)
    if cols:
        _launch_persistent(kernels["forward_persistent"], units, cols, dtype.itemsize,
                           params, u_flat, h_a, h_b, outputs)
    else:
        step = _per_step("forward_step", dtype, batch, units)
        for s in range(steps):
            h_cur, h_next = (h_a, h_b) if s % 2 == 0 else (h_b, h_a)
            step(params, u_flat, h_cur, h_next, outputs, s)
    final_state = h_b if steps % 2 == 1 else h_a
    return _host_or_device((outputs.reshape(*out_shape), final_state), on_device)


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """Backpropagation through time on the GPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.backward`;
    the returned gradients are device arrays exactly when ``x`` is one.
    """
    act = _activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    kernels = _kernels(dtype)
    none = _placeholders(dtype)
    kernel_d, bias_d = to_device(kernel), to_device(bias)
    u_mat = to_device(recurrent_kernel)
    _check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                  initial_state=initial_state, outputs=outputs, d_outputs=d_outputs, d_state=d_state,
                  mask=mask, input_dropout=input_dropout, recurrent_dropout=recurrent_dropout)
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    rows = batch * steps
    names = ("inputs", "initial_state", "kernel", "recurrent_kernel", "bias")
    grads = dict(zip(names, (cuda.device_array((rows, features), dtype),
                             None, cuda.device_array((features, units), dtype),
                             cuda.device_array((units, units), dtype),
                             None if bias is None else cuda.device_array(units, dtype))))
    x_flat = x.reshape(rows, features)
    h0 = to_device(initial_state)
    h_prev = cuda.device_array((rows, units), dtype)
    if batch:
        _launch(kernels["previous_states"], batch * units, to_device(outputs).reshape(rows, units), h0,
                none.mask if mask is None else mask, mask is not None, bool(go_backwards), h_prev)
    grad = cuda.device_array((rows, units), dtype)
    _gemm(x_flat, kernel_d, grad, a_scale=input_dropout, steps=steps, bias=bias_d)
    _gemm(h_prev, u_mat, grad, a_scale=recurrent_dropout, steps=steps, accumulate=True)
    _launch(kernels["derivative_in_place"], rows * units, grad, act)

    if d_outputs is None:
        dout, dout_mode = none.matrix, _NO_DOUT
    else:
        dout = to_device(d_outputs)
        dout_mode = _DOUT_SEQUENCE if dout.ndim == 3 else _DOUT_LAST
        dout = dout.reshape(rows, units) if dout.ndim == 3 else dout
    first = _first_unmasked(kernels, mask, batch, go_backwards)
    params = (grad, dout, dout_mode, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards))
    dh_a = (cuda.to_device(np.zeros((batch, units), dtype)) if d_state is None
            else _copy(to_device(d_state)))
    dh_b = cuda.device_array((batch, units), dtype)
    dz = cuda.device_array((rows, units), dtype)
    cols = use_persistent(kernels["backward_persistent"], batch, units, dtype.itemsize) if batch else 0
    u_flat = u_mat.reshape(units * units)
    if cols:
        _launch_persistent(kernels["backward_persistent"], units, cols, dtype.itemsize,
                           params, u_flat, dh_a, dh_b, dz)
    elif batch:
        step = _per_step("backward_step", dtype, batch, units)
        for j in range(steps):
            dh_cur, dh_next = (dh_a, dh_b) if j % 2 == 0 else (dh_b, dh_a)
            step(params, u_flat, dh_cur, dh_next, dz, steps - 1 - j)
    grads["initial_state"] = dh_b if steps % 2 == 1 and batch else dh_a

    _gemm(dz, kernel_d, grads["inputs"], b_trans=True, c_scale=input_dropout, steps=steps)
    _gemm(x_flat, dz, grads["kernel"], a_trans=True, a_scale=input_dropout, steps=steps)
    _gemm(h_prev, dz, grads["recurrent_kernel"], a_trans=True, a_scale=recurrent_dropout, steps=steps)
    if bias is not None:
        _launch(kernels["column_sum"], units, dz, grads["bias"])
    grads["inputs"] = grads["inputs"].reshape(batch, steps, features)
    return dict(zip(names, _host_or_device(tuple(grads[k] for k in names), on_device)))
