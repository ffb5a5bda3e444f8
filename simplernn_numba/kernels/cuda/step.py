"""Device functions of one recurrence step, shared by the rows, persistent and per-step kernels.

Every function here runs on the GPU (``@cuda.jit(device=True)``): the work of one
``(batch row, unit)`` pair at one step, forward and backward, and the loads, dot products and
reductions the kernels share. :func:`forward_params` and :func:`backward_params` are the Numba
types of the tuples of per-call arrays and flags those kernels take.
"""

import numba
import numpy as np
from numba import cuda

from .activation import activate

#: How ``d_outputs`` arrives: none, one gradient per step, or for the last output only.
NO_DOUT, DOUT_SEQUENCE, DOUT_LAST = 0, 1, 2


# ---------------------------------------------------------------------------- one (row, unit) of one step
@cuda.jit(device=True)
def forward_finish(b, u, s, p, hu, h_cur, h_next, outputs):
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
def forward_item(b, u, s, p, u_mat, h_cur, h_next, outputs, zero):
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
    forward_finish(b, u, s, p, acc, h_cur, h_next, outputs)


@cuda.jit(device=True)
def output_grad(b, k, s, steps, first, dout, dout_mode, zero):
    """Gradient arriving at output ``(b, s, k)`` (``zero`` before the row's first unmasked step)."""
    return output_grad_after(b, k, s, steps, first[b], dout, dout_mode, zero)


@cuda.jit(device=True)
def output_grad_after(b, k, s, steps, first_b, dout, dout_mode, zero):
    """:func:`output_grad` given the row's first unmasked step ``first_b``."""
    if s < first_b:
        return zero
    if dout_mode == DOUT_SEQUENCE:
        return dout[b * steps + s, k]
    if dout_mode == DOUT_LAST and s == steps - 1:
        return dout[b, k]
    return zero


@cuda.jit(device=True)
def step_dz(b, k, s, row, p, dh_cur):
    """``dz`` of row ``b``, unit ``k`` at step ``s`` (``row`` = b * T + t) if the step is unmasked."""
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    steps = grad.shape[0] // dh_cur.shape[0]
    zero = grad[row, k] * 0
    return (dh_cur[b, k] + output_grad(b, k, s, steps, first, dout, dout_mode, zero)) * grad[row, k]


@cuda.jit(device=True)
def backward_finish(b, u, s, p, dzu, dh_cur, dh_next, dz):
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
        dh_next[b, u] = dh_cur[b, u] + output_grad(b, u, s, steps, first, dout, dout_mode, dzu * 0)
    else:
        dz[row, u] = step_dz(b, u, s, row, p, dh_cur)
        dh_next[b, u] = dzu * rdrop[b, u] if has_rdrop else dzu


@cuda.jit(device=True)
def backward_item(b, u, s, p, u_mat, dh_cur, dh_next, dz, zero):
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
            acc += step_dz(b, k, s, row, p, dh_cur) * u_mat[u * units + k]
    backward_finish(b, u, s, p, acc, dh_cur, dh_next, dz)


@cuda.jit(device=True)
def load_columns(u_mat, units, c0, cols, transposed, ld, shared):
    """Copy columns ``c0 .. c0 + cols`` of ``u_mat`` (rows if ``transposed``) to ``shared[c * ld + k]``.

    ``u_mat`` is the flat (units * units) recurrent kernel; the slice a block needs
    for every step, so consecutive ``k`` (one per lane) are consecutive in shared memory;
    ``ld >= units`` is the padded row stride (it spreads the groups of a warp over the banks).
    """
    n = min(cols, units - c0)
    for i in range(cuda.threadIdx.x, units * n, cuda.blockDim.x):
        if transposed:
            c = i // units
            k = i - c * units
            shared[c * ld + k] = u_mat[(c0 + c) * units + k]
        else:
            k = i // n
            c = i - k * n
            shared[c * ld + k] = u_mat[k * units + c0 + c]
    cuda.syncthreads()


@cuda.jit(device=True)
def _state_in(h_cur, rdrop, has_rdrop, i, units):
    """Flat element ``i`` of ``h_cur`` times the recurrent dropout mask (0 past the end)."""
    b = i // units
    k = i - b * units
    if b >= h_cur.shape[0]:
        return h_cur[0, 0] * 0
    return h_cur[b, k] * rdrop[b, k] if has_rdrop else h_cur[b, k]


@cuda.jit(device=True)
def _put(staged, i, units, ld, value):
    """Store flat element ``i`` (row, unit) at ``staged[row * ld + unit]`` (nothing past the end)."""
    b = i // units
    if b < staged.shape[0] // ld:
        staged[b * ld + i - b * units] = value


@cuda.jit(device=True)
def _put4(staged, i, step, units, ld, v0, v1, v2, v3):
    """:func:`_put` of the elements ``i``, ``i + step``, ``i + 2 * step``, ``i + 3 * step``."""
    _put(staged, i, units, ld, v0)
    _put(staged, i + step, units, ld, v1)
    _put(staged, i + 2 * step, units, ld, v2)
    _put(staged, i + 3 * step, units, ld, v3)


@cuda.jit(device=True)
def stage_states(h_cur, rdrop, has_rdrop, ld, staged):
    """Copy ``h_cur`` (times the recurrent dropout mask) to ``staged[b * ld + k]`` (whole block).

    Four loads per thread are issued before their stores, so their latencies overlap.
    """
    units = h_cur.shape[1]
    step = cuda.blockDim.x
    for i in range(cuda.threadIdx.x, h_cur.shape[0] * units, 4 * step):
        v0 = _state_in(h_cur, rdrop, has_rdrop, i, units)
        v1 = _state_in(h_cur, rdrop, has_rdrop, i + step, units)
        v2 = _state_in(h_cur, rdrop, has_rdrop, i + 2 * step, units)
        v3 = _state_in(h_cur, rdrop, has_rdrop, i + 3 * step, units)
        _put4(staged, i, step, units, ld, v0, v1, v2, v3)
    cuda.syncthreads()


@cuda.jit(device=True)
def _dz_in(s, t, steps, p, dh_cur, i, units):
    """:func:`step_dz` of flat element ``i`` (row, unit) at processing step ``s`` (0 past the end)."""
    b = i // units
    if b >= dh_cur.shape[0]:
        return dh_cur[0, 0] * 0
    return step_dz(b, i - b * units, s, b * steps + t, p, dh_cur)


@cuda.jit(device=True)
def stage_dz(s, p, dh_cur, ld, staged):
    """Copy ``dz`` of processing step ``s`` (:func:`step_dz` of every row and unit) to
    ``staged[b * ld + k]`` (whole block; loads overlapped as in :func:`stage_states`)."""
    batch, units = dh_cur.shape
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    steps = grad.shape[0] // batch
    t = steps - 1 - s if go_backwards else s
    step = cuda.blockDim.x
    for i in range(cuda.threadIdx.x, batch * units, 4 * step):
        v0 = _dz_in(s, t, steps, p, dh_cur, i, units)
        v1 = _dz_in(s, t, steps, p, dh_cur, i + step, units)
        v2 = _dz_in(s, t, steps, p, dh_cur, i + 2 * step, units)
        v3 = _dz_in(s, t, steps, p, dh_cur, i + 3 * step, units)
        _put4(staged, i, step, units, ld, v0, v1, v2, v3)
    cuda.syncthreads()


@cuda.jit(device=True)
def group_sum(partial, lanes, scratch):
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


# ---------------------------------------------------------------------------- batch rows per block
#: Unsigned index constants: Numba adds a negative-index fix-up to every load through a signed
#: index (a shift, an and and an add in 64 bits); unsigned arithmetic has none.
_U1, _U2, _U3, _U4 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)


@cuda.jit(device=True)
def row_dot(v, v0, w, u, stride, length, lane, lanes, zero):
    """``sum_k v[v0 + k] * w[k * stride + u]`` over ``k = lane, lane + lanes, ... < length``, in
    four interleaved partial sums (shorter FMA chains), indexed in unsigned arithmetic with
    running offsets (no multiplies, no negative-index fix-ups per load)."""
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    dv = numba.uint64(lanes)
    dw = dv * numba.uint64(stride)
    vi = numba.uint64(v0) + numba.uint64(lane)
    wi = numba.uint64(u) + numba.uint64(lane) * numba.uint64(stride)
    end = numba.uint64(v0) + numba.uint64(length)
    while vi + _U3 * dv < end:
        a0 += v[vi] * w[wi]
        a1 += v[vi + dv] * w[wi + dw]
        a2 += v[vi + _U2 * dv] * w[wi + _U2 * dw]
        a3 += v[vi + _U3 * dv] * w[wi + _U3 * dw]
        vi += _U4 * dv
        wi += _U4 * dw
    while vi < end:
        a0 += v[vi] * w[wi]
        vi += dv
        wi += dw
    return (a0 + a1) + (a2 + a3)


@cuda.jit(device=True)
def lane_sum(value, lanes):
    """Sum of ``value`` over the ``lanes`` consecutive threads of an aligned group (a power of two
    up to 32, all of the group active), returned to every lane: warp shuffles, no shared memory.
    Real GPUs only: the simulator has no shuffles (``rows_plan`` gives it one lane)."""
    mask = cuda.activemask()
    offset = lanes // 2
    while offset > 0:
        value += cuda.shfl_xor_sync(mask, value, offset)
        offset //= 2
    return value


@cuda.jit(device=True)
def input_value(x, idrop, has_idrop, r0, e, t, steps, features):
    """Element ``e`` of the flat (rows, F) block of inputs for rows ``r0 ..`` at time ``t``
    (times the input dropout mask); ``x`` is (B * T, F)."""
    r = e // features
    f = e - r * features
    value = x[(r0 + r) * steps + t, f]
    return value * idrop[r0 + r, f] if has_idrop else value


@cuda.jit(device=True)
def rows_dz_inputs(b, u, s, steps, p, zero):
    """What ``dz`` of row ``b``, unit ``u`` at processing step ``s`` needs besides the state
    gradient: (flat row ``b * T + t``, masked, gradient arriving at the output, activation
    derivative). Loaded ahead of the step's product so that their latency overlaps it."""
    grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask, first, go_backwards = p
    t = steps - 1 - s if go_backwards else s
    row = b * steps + t
    arriving = output_grad_after(b, u, s, steps, first[b] if has_mask else 0, dout, dout_mode, zero)
    return row, has_mask and not mask[b, t], arriving, grad[row, u]


@cuda.jit(device=True)
def rows_dz(u, i, row, masked, arriving, derivative_value, dh, staged, off, dz, zero):
    """Store ``dz`` of flat row ``row``, unit ``u`` (inputs from :func:`rows_dz_inputs`) given the
    state gradient ``dh[i]`` (``i``: the rows kernel's pair), in ``dz`` and ``staged[off + i]``;
    at a masked step ``dz`` is 0 and the output's gradient is added to ``dh[i]`` (the carry)."""
    if masked:
        dz[row, u] = zero
        dh[i] += arriving
    else:
        value = (dh[i] + arriving) * derivative_value
        dz[row, u] = value
        staged[off + i] = value


def forward_params(dt):
    """Type of the forward kernels' ``p``: (xw, rdrop, has_rdrop, mask, has_mask, first, go_backwards,
    act, keep_all) for arrays of Numba type ``dt``."""
    a2, b1 = dt[:, :], numba.boolean
    return numba.types.Tuple((a2, a2, b1, b1[:, :], b1, numba.int32[:], b1, numba.int64, b1))


def backward_params(dt):
    """Type of the backward kernels' ``p``: (grad, dout, dout_mode, rdrop, has_rdrop, mask, has_mask,
    first, go_backwards) for arrays of Numba type ``dt``."""
    a2, b1 = dt[:, :], numba.boolean
    return numba.types.Tuple((a2, a2, numba.int64, a2, b1, b1[:, :], b1, numba.int32[:], b1))


def projection_params(dt):
    """Type of the forward rows kernel's ``projection``: (x, kernel, bias, has_bias, input dropout,
    has it)."""
    return numba.types.Tuple((dt[:, :], dt[:], dt[:], numba.boolean, dt[:, :], numba.boolean))
