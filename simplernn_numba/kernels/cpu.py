"""Numba CPU kernels for SimpleRNN.

The input projection ``x @ kernel`` for all timesteps is one large matrix product per run of
batch rows (below; with large recurrent kernels and a mask or recurrent dropout, one BLAS GEMM
written straight into the output buffer when it can be); only ``h_{t-1} @ recurrent_kernel`` is
sequential. Each step of
the recurrence is a register-tiled product of the rows' states with the recurrent kernel (tiles
of rows by vectors of units held in vector registers, :func:`._products.tiled_product`; the
weights padded with zero columns to whole tiles), then bias, activation and masking per row.
With few units (``LANES_MAX_UNITS``) and enough rows, the batch rows are the vector lanes
instead (state kept transposed), since a row's products are then too short to vectorise. Batch
rows are split into runs of row pairs shared by the threads (each run goes through all
timesteps, so there is no per-step synchronisation); small problems run on a serial kernel with
no thread start-up cost. While ``[kernel; recurrent_kernel]`` fits in L2 the projection is fused
into each step's product (one compiled call), except for inference calls above
``FUSED_MAX_WORK`` or on one batch row, where each run projects its rows first (a register-tiled
product on its own thread, :func:`._products.product`: not BLAS, whose threads keep spinning
after a call and slow the parallel recurrence that follows); one row without a mask or recurrent
dropout writes each state straight into its output slot (:func:`_one_row`). Without a mask or
recurrent dropout, from ``PANELS_MIN_UNITS`` units and ``GEMM_MIN_BATCH`` rows, the weights are
packed into column panels instead and each run of quads of rows projects its inputs and runs
its steps on them (:func:`_recurrence_panels`, no BLAS). When the recurrent kernel does not fit
in L2 (``_ROWS_WEIGHT_BYTES``) and there is a mask or recurrent dropout, each step is one BLAS
GEMM over the batch. The backward pass keeps the per-row path up to ``_ROWS_WEIGHT_BYTES`` (its
input and weight gradients after the loop without BLAS, :mod:`._products`); beyond, it runs on
packed panels of ``recurrent_kernel.T`` without a mask, recurrent dropout or pre-activations
(from ``GEMM_MIN_BATCH`` rows, :func:`_bptt_panels_run`), else one BLAS GEMM per step, and its
gradients after the loop by BLAS. On one
path a row's result does not depend on the other rows (each element of a tiled product is one
FMA per term, in order, for every tile of several rows); the path and the tile depend on the
batch size (lanes from ``LANES_MIN_BATCH`` rows; one-row tiles, whose last four vectors may sum
in two chains, for a run of one row), so two batch sizes can differ by rounding. ``tanh`` is
vectorisable (:mod:`._tanh`): a rational approximation for float32 (max abs error about 1e-7,
float32 rounding level) and an ``expm1`` -based evaluation for float64 (within 3 ulp of libm).
See :mod:`simplernn_numba.kernels` for the shared contract.

>>> import numpy as np
>>> x = np.ones((1, 3, 1))
>>> out, h = forward(x, np.ones((1, 1)), np.ones((1, 1)), None, np.zeros((1, 1)),
...                  activation="linear")
>>> out.ravel().tolist(), h.ravel().tolist()
([1.0, 2.0, 3.0], [3.0])
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import njit, prange

from .. import _validate
from .. import activations as A
from .._threading import parallel_section
from . import _workspace
from ._products import (
    ONE_ROW,
    PANEL_ROW_BLOCK,
    PRODUCT_TILE_ROWS,
    TILE_SHAPES,
    _split,
    gradient_products,
    one_row_tiles,
    padded_units,
    panel_product,
    panel_tile,
    panel_width,
    panels,
    product,
    tile_shape,
    tiled_product,
)
from ._tanh import tanh_inplace, tanh_value

#: NumPy's floating-point error semantics (x / 0 -> inf or nan, never an exception): Numba's
#: default "python" model guards every division with a branch, which stops loops vectorising.
_ERRORS = "numpy"
#: With at most this many units and at least this many batch rows (and fused weights), the
#: recurrence runs with the batch rows as vector lanes (:func:`_lanes`).
LANES_MAX_UNITS = 16
LANES_MIN_BATCH = 8
#: Below this many multiply-adds (B*T*(F+U)*U) a call runs on the serial kernel.
SERIAL_WORK = 1 << 20
#: Up to this size of ``[kernel; recurrent_kernel]`` (bytes, about half of L2), and for an
#: inference call below ``FUSED_MAX_WORK`` multiply-adds (B*T*(F+U)*U) or on the lanes path,
#: each step is one product of ``[x_t, h_{t-1}]`` with ``[kernel; recurrent_kernel]``;
#: otherwise each run of rows computes its ``x @ kernel`` first (:func:`_rows`). The limit was
#: set when projecting first was one BLAS GEMM, which won above it (64,100,128,128 inference:
#: 6.0 against 8.5 ms, interleaved); with the per-run projection the two measure the same there
#: (4.5 ms median each). A training call stays fused (:func:`forward_for_training`): with
#: the BLAS projection, OpenBLAS's spinning threads slowed the backward pass that follows
#: (the same training step took 30.6 ms with the GEMM and 26.7 ms fused).
#: An inference call on one batch row projects first whatever its size: its steps are a chain
#: of dependent FMAs (one register tile), which the input columns would lengthen by F/U
#: (1,1000,16,64: 0.46 against 0.56 ms; 1,1000,64,64: 0.62 against 0.83, interleaved).
FUSED_WEIGHT_BYTES = 1 << 18
FUSED_MAX_WORK = 1 << 24
#: Up to this size of the recurrent kernel (bytes) the sequential products (``h @ recurrent_kernel``
#: forward, ``dz @ recurrent_kernel.T`` backward) run as tiled products over runs of batch rows,
#: the runs split over threads with no per-step synchronisation; above it (the kernel no longer fits in
#: L2), in the forward pass from a batch of ``GEMM_MIN_BATCH`` rows on (a GEMV per step is no better
#: than the rows), on packed panels (:func:`_recurrence_panels`) or, with a mask or recurrent dropout,
#: as one BLAS GEMM per step over the batch; backward likewise (:func:`backward`).
_ROWS_WEIGHT_BYTES = FUSED_WEIGHT_BYTES
GEMM_MIN_BATCH = 8
#: From this many units (and ``SERIAL_WORK``, ``GEMM_MIN_BATCH`` rows) a forward pass without a
#: mask or recurrent dropout runs on packed panels (:func:`_recurrence_panels`) whatever the
#: size of its weights, training or not. Same process, alternating, after idle waits (medians):
#: 64,100,128,128 float32 5.0 -> 4.5 ms (per-row path) and 4.7 -> 4.1 (min), float64 10.2 -> 8.6,
#: 32,100,64,64 1.68 -> 1.57, 8,100,64,64 0.86 -> 0.70 (fused path); training steps at
#: 64,100,128,128 the same (14.3 ms). With fewer units the panels' padding (24 float32 columns
#: a panel) costs more than it saves: 32,500,32,32 1.9 against 3.2 ms (min).
PANELS_MIN_UNITS = 64


@njit(cache=True, inline="always", error_model=_ERRORS)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(cache=True, inline="always", error_model=_ERRORS)
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@njit(cache=True, error_model=_ERRORS)
def activate(z, act):
    """Apply activation code ``act`` to the 1-D array ``z`` in place."""
    n = z.shape[0]
    if act == A.TANH:
        tanh_inplace(z)
    elif act == A.LINEAR:
        pass
    elif act == A.RELU:
        for i in range(n):
            z[i] = max(z[i], 0.0)
    elif act == A.SIGMOID:
        for i in range(n):
            z[i] = _sigmoid(z[i])
    elif act == A.ELU:
        for i in range(n):
            if z[i] <= 0:
                z[i] = math.expm1(z[i])
    elif act == A.SELU:
        for i in range(n):
            v = z[i]
            z[i] = A.SELU_SCALE * (v if v > 0 else A.SELU_ALPHA * math.expm1(v))
    elif act == A.SOFTPLUS:
        for i in range(n):
            z[i] = _softplus(z[i])
    elif act == A.SOFTSIGN:
        for i in range(n):
            z[i] = z[i] / (1.0 + abs(z[i]))
    elif act == A.HARD_SIGMOID:
        for i in range(n):
            z[i] = min(max(z[i] / 6.0 + 0.5, 0.0), 1.0)
    elif act == A.EXPONENTIAL:
        for i in range(n):
            z[i] = math.exp(z[i])
    elif act == A.SILU:
        for i in range(n):
            z[i] = z[i] * _sigmoid(z[i])
    elif act == A.GELU:
        for i in range(n):
            z[i] = 0.5 * z[i] * (1.0 + math.erf(z[i] / math.sqrt(2.0)))
    elif act == A.RELU6:
        for i in range(n):
            z[i] = min(max(z[i], 0.0), 6.0)
    elif act == A.LEAKY_RELU:
        for i in range(n):
            if z[i] < 0:
                z[i] = z[i] * A.LEAKY_RELU_SLOPE
    elif act == A.MISH:
        for i in range(n):
            z[i] = z[i] * np.tanh(_softplus(z[i]))
    elif act == A.HARD_SILU:
        for i in range(n):
            z[i] = z[i] * min(max(z[i] / 6.0 + 0.5, 0.0), 1.0)


@njit(cache=True, inline="always", error_model=_ERRORS)
def _commit(z, h, out, mask, b, t, seen, act, keep):
    """Finish one row's step: activation and new state, or carry over a masked step; with
    ``keep`` (every step's output is returned) also the step's output."""
    if mask is not None and not mask[b, t]:
        if keep:
            for u in range(out.shape[0]):
                out[u] = h[u] if seen else 0
        return seen
    activate(z, act)
    for u in range(h.shape[0]):
        h[u] = z[u]
    if keep:
        for u in range(h.shape[0]):
            out[u] = z[u]
    return True


@njit(cache=True, error_model=_ERRORS)
def _last_outputs(state, seen, outputs, lo, hi):
    """``outputs[b, 0]`` for the rows ``lo:hi`` of a call returning the last output only: the
    final state of a row that had an unmasked step, zeros for one that had none (``seen`` is
    indexed from ``lo``). The per-step loops leave it unwritten."""
    for r in range(hi - lo):
        out = outputs[lo + r, 0]
        for u in range(out.shape[0]):
            out[u] = state[lo + r, u] if seen[r] else 0


@njit(cache=True, inline="always", error_model=_ERRORS)
def _load_step_inputs(v, x, input_dropout, b, t):
    """``v[:F] = x[b, t]`` (times the input dropout mask): the input part of a fused step's operand."""
    for f in range(x.shape[2]):
        v[f] = x[b, t, f] if input_dropout is None else x[b, t, f] * input_dropout[b, f]


@njit(cache=True, inline="always", fastmath={"contract"}, error_model=_ERRORS)
def _finish_row(z, r, xw, bias, b, t, act, state, outputs, slot, keep, operands, offset,
                recurrent_dropout):
    """Finish row ``b``'s unmasked step from its product ``z[r]``: add the input projection
    ``xw[r, t]`` (the run's own, absent in fused mode) and the bias, activate, and write the new state to
    ``state[b]``, to ``outputs[b, slot]`` (with ``keep``) and, times the recurrent dropout mask,
    to ``operands[r, offset:]`` for the next step's product. With ``tanh`` the additions and the
    activation are one loop that LLVM vectorises, then three vectorised copies; other activations
    go through :func:`activate` on ``z[r]``."""
    units = state.shape[1]
    zr = z[r, :units]
    if act == A.TANH:
        for u in range(units):
            zr[u] = tanh_value(zr[u] + bias[u] if xw is None else zr[u] + (xw[r, t, u] + bias[u]),
                               zr.itemsize)
    else:
        for u in range(units):
            zr[u] += bias[u] if xw is None else xw[r, t, u] + bias[u]
        activate(zr, act)
    sr = state[b]
    for u in range(units):
        sr[u] = zr[u]
    if keep:
        out = outputs[b, slot]
        for u in range(units):
            out[u] = zr[u]
    op = operands[r, offset:]
    for u in range(units):
        op[u] = zr[u] if recurrent_dropout is None else zr[u] * recurrent_dropout[b, u]


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _rows(x, w, kernel, projections, bias, initial_state, mask, input_dropout, recurrent_dropout,
          go_backwards, act, outputs, final_state, shape, lo, hi, run):
    """Run batch rows ``lo:hi`` through every timestep, all of them together.

    Fused mode (``kernel`` None): ``w`` is ``[kernel; recurrent_kernel]``, (F + U, U'), and
    each step is one product of ``[x_t, h_{t-1}]`` (rows, F + U) with it. Otherwise ``w`` is
    the recurrent kernel (U, U') and ``kernel`` (F, U'): the run first computes its rows' input
    projection for every timestep into ``projections[run]`` (at least ``(hi - lo) * T`` rows
    rounded up to a multiple of ``PRODUCT_TILE_ROWS``, by U'; this run's own work array) as one product
    (:func:`._products.product`, on this thread; a BLAS call before the parallel recurrence
    would leave OpenBLAS's threads spinning on the cores the recurrence needs), and
    ``input_dropout`` must be None (the caller applies it to ``x``). ``U'`` is ``U`` padded
    with zero columns to whole tiles of ``TILE_SHAPES[shape]`` (:func:`tiled_product`; the
    rows are padded here). ``outputs`` is (B, T, U), or (B, 1, U) for the last output only;
    ``final_state`` (B, U) doubles as the running state; ``act`` is None for tanh. The operands'
    state part is written when a row's step finishes (a masked step leaves it, like the state,
    as it was).
    """
    steps = x.shape[1]
    width, padded = w.shape
    units = final_state.shape[1]
    offset = width - units
    keep_all = outputs.shape[1] == steps
    rows = hi - lo
    xw = None
    if kernel is not None:
        projection = projections[run]
        product(x[lo:hi].reshape(rows * steps, x.shape[2]), kernel, projection)
        xw = projection[:rows * steps].reshape(rows, steps, padded)
    tile_rows = TILE_SHAPES[shape][0]
    operands = np.zeros((-(-rows // tile_rows) * tile_rows, width), w.dtype)
    z = np.empty((operands.shape[0], padded), w.dtype)
    seen = np.zeros(rows, np.bool_)
    for r in range(rows):
        b = lo + r
        for u in range(units):
            h = initial_state[b, u]
            final_state[b, u] = h
            operands[r, offset + u] = h if recurrent_dropout is None else h * recurrent_dropout[b, u]
    if act is None:  # tanh (see :func:`_rows_act`): the step loop compiled for tanh alone
        _steps(x, w, bias, mask, input_dropout, recurrent_dropout, go_backwards, A.TANH, xw,
               outputs, final_state, shape, lo, operands, z, seen)
    else:
        _steps(x, w, bias, mask, input_dropout, recurrent_dropout, go_backwards, act, xw,
               outputs, final_state, shape, lo, operands, z, seen)
    if not keep_all:
        _last_outputs(final_state, seen, outputs, lo, hi)


@njit(cache=True, inline="always", fastmath={"contract"}, error_model=_ERRORS)
def _steps(x, w, bias, mask, input_dropout, recurrent_dropout, go_backwards, act, xw, outputs,
           final_state, shape, lo, operands, z, seen):
    """The timesteps of :func:`_rows`, for its rows ``lo:lo + len(seen)``. Inlined, so that a
    constant ``act`` leaves one activation's code in the loop (measured at 1,1000,16,64: an
    activation chosen at run time in the loop cost ~35 ns of a ~250 ns step)."""
    steps = x.shape[1]
    units = final_state.shape[1]
    offset = w.shape[0] - units
    keep_all = outputs.shape[1] == steps
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        slot = s if keep_all else 0
        if xw is None:
            for r in range(seen.shape[0]):
                _load_step_inputs(operands[r], x, input_dropout, lo + r, t)
        tiled_product(w, operands, z, shape)
        for r in range(seen.shape[0]):
            b = lo + r
            if mask is not None and not mask[b, t]:
                if keep_all:
                    for u in range(units):
                        outputs[b, slot, u] = final_state[b, u] if seen[r] else 0
                continue
            seen[r] = True
            _finish_row(z, r, xw, bias, b, t, act, final_state, outputs, slot, keep_all, operands,
                        offset, recurrent_dropout)


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _lanes(x, w, bias, initial_state, mask, input_dropout, recurrent_dropout,
           go_backwards, act, outputs, final_state, lo, hi):
    """Run batch rows ``lo:hi`` through every timestep with the rows as vector lanes.

    For few units, where a row's products are too short to vectorise: the
    state is kept transposed, (U, rows), so every multiply-add, the activation
    and the bias run along the batch. ``w`` is ``[kernel; recurrent_kernel]``,
    (F + U, U); other arguments as in :func:`_rows` (fused mode).
    """
    steps, features = x.shape[1], x.shape[2]
    width, units = w.shape
    rows = hi - lo
    keep_all = outputs.shape[1] == steps
    v = np.empty((width, rows), x.dtype)  # [x_t; h_{t-1}] (dropout applied), transposed
    z = np.empty((units, rows), x.dtype)
    h = np.empty((units, rows), x.dtype)
    seen = np.full(rows, mask is None)  # without a mask every row is seen from the first step
    for r in range(rows):
        for u in range(units):
            h[u, r] = initial_state[lo + r, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        for f in range(features):
            for r in range(rows):
                v[f, r] = x[lo + r, t, f] if input_dropout is None else \
                    x[lo + r, t, f] * input_dropout[lo + r, f]
        for k in range(units):
            for r in range(rows):
                v[features + k, r] = h[k, r] if recurrent_dropout is None else \
                    h[k, r] * recurrent_dropout[lo + r, k]
        for u in range(units):
            zu = z[u]
            for r in range(rows):
                zu[r] = bias[u]
            k = 0
            while k + 4 <= width:  # four products per pass: one load and store of z per four
                w0, w1, w2, w3 = w[k, u], w[k + 1, u], w[k + 2, u], w[k + 3, u]
                v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
                for r in range(rows):
                    zu[r] += w0 * v0[r] + w1 * v1[r] + w2 * v2[r] + w3 * v3[r]
                k += 4
            while k < width:
                wk, vk = w[k, u], v[k]
                for r in range(rows):
                    zu[r] += wk * vk[r]
                k += 1
        activate(z.reshape(units * rows), act)
        if mask is None:
            h, z = z, h  # every row takes its new state
        else:
            for r in range(rows):
                if mask[lo + r, t]:
                    seen[r] = True
                    for u in range(units):
                        h[u, r] = z[u, r]
        if keep_all:
            for r in range(rows):
                out = outputs[lo + r, s]
                for u in range(units):
                    out[u] = h[u, r] if seen[r] else 0
    for r in range(rows):
        for u in range(units):
            final_state[lo + r, u] = h[u, r]
    if not keep_all:
        _last_outputs(final_state, seen, outputs, lo, hi)


@njit(cache=True, inline="always")
def _run_rows(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
              recurrent_dropout, go_backwards, act, outputs, final_state, shape, lo, hi, run):
    """Rows ``lo:hi``, run number ``run``, on the lanes path (``shape`` -1) or the tiled rows
    path (tile ``shape``). ``act`` is an activation code, or None for tanh (:func:`_rows_act`)."""
    if shape < 0:
        _lanes(x, w, bias, initial_state, mask, input_dropout, recurrent_dropout,
               go_backwards, A.TANH if act is None else act, outputs, final_state, lo, hi)
    else:
        _rows(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
              recurrent_dropout, go_backwards, act, outputs, final_state, shape, lo, hi, run)


@njit(cache=True, error_model=_ERRORS)
def _recurrence_serial(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
                       recurrent_dropout, go_backwards, act, outputs, final_state, shape):
    """All batch rows on the calling thread (no thread-pool start-up)."""
    _run_rows(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
              recurrent_dropout, go_backwards, act, outputs, final_state, shape, 0,
              outputs.shape[0], 0)


@njit(cache=True, parallel=True, error_model=_ERRORS)
def _recurrence_parallel(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
                         recurrent_dropout, go_backwards, act, outputs, final_state, shape, chunks):
    """Batch rows split into ``chunks`` runs of whole row pairs, spread over the threads; run
    ``c`` projects its inputs into ``projections[c]`` (see :func:`_rows`)."""
    batch = outputs.shape[0]
    pairs = (batch + 1) // 2
    for c in prange(chunks):
        lo = 2 * (c * pairs // chunks)
        hi = min(batch, 2 * ((c + 1) * pairs // chunks))
        _run_rows(x, w, kernel, projections, bias, initial_state, mask, input_dropout,
                  recurrent_dropout, go_backwards, act, outputs, final_state, shape, lo, hi, c)


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _one_row(x, w, kernel, projection, bias, initial_state, go_backwards, act, outputs,
             final_state):
    """The recurrence of one batch row without a mask or recurrent dropout: :func:`_rows` for
    ``lo, hi = 0, 1`` (the same bits), with each step's state written once, straight into its
    output slot (into a two-slot ring when only the last output is returned), where the next
    step's product reads it, rather than through :func:`_finish_row` 's three copies.

    ``x`` (1, T, F) with T >= 1, the input dropout applied; ``w`` the recurrent kernel and
    ``kernel`` the kernel padded to whole tiles of the one-row shape, ``projection`` a
    (T rounded up to ``PRODUCT_TILE_ROWS``, U') work array; ``act`` None for tanh. Against
    :func:`_rows` (same process, interleaved, minimum of 600 calls): 1,1000,16,64 float32
    0.34-0.39 -> 0.28-0.29 ms, float64 0.69 -> 0.62, 1,1000,64,64 0.35 -> 0.29; the tiles
    called through :func:`tiled_product` instead of inlined here gained half as much."""
    steps = x.shape[1]
    units = final_state.shape[1]
    keep_all = outputs.shape[1] == steps
    product(x[0], kernel, projection)
    z = np.empty((1, w.shape[1]), w.dtype)
    ring = np.empty((2, units), w.dtype)
    state = initial_state[0:1]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        one_row_tiles(w, state, z, 0)  # inlined
        new = outputs[0, s:s + 1] if keep_all else ring[s % 2:s % 2 + 1]
        if act is None:
            for u in range(units):
                new[0, u] = tanh_value(z[0, u] + (projection[t, u] + bias[u]), z.itemsize)
        else:
            zr = z[0, :units]
            for u in range(units):
                zr[u] += projection[t, u] + bias[u]
            activate(zr, act)
            for u in range(units):
                new[0, u] = zr[u]
        state = new
    for u in range(units):
        final_state[0, u] = state[0, u]
        if not keep_all:
            outputs[0, 0, u] = state[0, u]


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _gemm_step(s, z, xw, bias, mask, recurrent_dropout, go_backwards, act, outputs, state, operand,
               seen):
    """Step ``s`` of the per-step GEMM path, after ``z = operand @ recurrent_kernel`` (B, U).

    Adds the input projection ``xw[:, t]`` (which may be ``outputs`` itself: the
    slot is read before it is written) and the bias, then finishes each row as
    :func:`_commit` does; with recurrent dropout, refills ``operand`` with the
    new state times the dropout mask (otherwise ``operand`` is ``state``).
    """
    steps = xw.shape[1]
    t = steps - 1 - s if go_backwards else s
    keep = outputs.shape[1] == steps
    slot = s if keep else 0
    for b in range(z.shape[0]):
        zb, xb = z[b], xw[b, t]
        for u in range(zb.shape[0]):
            zb[u] += xb[u] + bias[u]
        seen[b] = _commit(zb, state[b], outputs[b, slot], mask, b, t, seen[b], act, keep)
        if recurrent_dropout is not None:
            for u in range(zb.shape[0]):
                operand[b, u] = state[b, u] * recurrent_dropout[b, u]


def _recurrence_gemm(recurrent_kernel, bias, initial_state, mask, recurrent_dropout, go_backwards,
                     act, xw, outputs, final_state):
    """The recurrence as one BLAS GEMM per step over the whole batch (large recurrent kernels
    with a mask or recurrent dropout; without, :func:`_recurrence_panels`).

    ``xw`` (B, T, U) is the input projection, ``outputs`` itself when every step's output is
    returned in order (each step reads its slot before writing it, :func:`_gemm_step`).
    """
    batch, units = final_state.shape
    steps = xw.shape[1]
    final_state[:] = initial_state
    operand = final_state
    if recurrent_dropout is not None:
        operand = final_state * recurrent_dropout
    z = np.empty((batch, units), final_state.dtype)
    seen = np.zeros(batch, np.bool_)
    for s in range(steps):
        np.matmul(operand, recurrent_kernel, out=z)
        _gemm_step(s, z, xw, bias, mask, recurrent_dropout, go_backwards, act, outputs, final_state,
                   operand, seen)
    if outputs.shape[1] != steps:
        _last_outputs(final_state, seen, outputs, 0, batch)


@njit(cache=True, inline="always", error_model=_ERRORS)
def _pack_quads(source, t, lo, rows, packed):
    """``packed[q, u, i] = source[lo + 4 * q + i, t, u]`` for the rows ``lo:lo + rows`` of
    ``source`` (B, T, U): quads of rows as (U, 4), the operand of :func:`_packed_product`
    (the places of rows past ``rows`` keep what they had)."""
    units = source.shape[2]
    for q in range((rows + 3) // 4):
        quad, r = packed[q], lo + 4 * q
        if 4 * q + 4 <= rows:
            x0, x1, x2, x3 = source[r, t], source[r + 1, t], source[r + 2, t], source[r + 3, t]
            for u in range(units):
                quad[u, 0], quad[u, 1], quad[u, 2], quad[u, 3] = x0[u], x1[u], x2[u], x3[u]
        else:
            for i in range(rows - 4 * q):
                for u in range(units):
                    quad[u, i] = source[r + i, t, u]


@njit(cache=True, inline="always", fastmath={"contract"}, error_model=_ERRORS)
def _packed_product(packed, wp, count, z):
    """``z[:4 * quads] = rows @ w`` for the rows packed by :func:`_pack_quads` into ``packed``
    (quads, K, 4), ``w`` (K, N) given as ``count`` panels stacked into ``wp`` (count * K, width);
    ``z`` has ``count * width`` columns."""
    depth, width = wp.shape[0] // count, wp.shape[1]
    for j in range(count):
        w = wp[j * depth:(j + 1) * depth]
        for q in range(packed.shape[0]):
            panel_tile(w, packed[q], z, 0, 4 * q, j * width, True)


def _panel_runs(batch: int) -> int:
    """Runs of quads of rows for the panel recurrences: one per thread (at most one per quad)."""
    return min(numba.get_num_threads(), -(-batch // 4))


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _panels_run(x, wp, count, bias, initial_state, go_backwards, act, xw, outputs, final_state,
                copy_out, lo, hi):
    """Batch rows ``lo:hi`` of :func:`_recurrence_panels` through every timestep on the calling
    thread: their input projection into ``xw`` (:func:`._products.panel_product`), then per step
    ``z = h @ recurrent_kernel`` by :func:`._products.panel_tile` s over the rows' states packed
    by quads of rows, (U, 4) each, and the activation of ``z + xw[:, t] + bias`` written over
    ``xw[:, t]`` (and to ``outputs[:, s]`` with ``copy_out``) and packed for the next step."""
    steps, features = x.shape[1], x.shape[2]
    units, width = xw.shape[2], wp.shape[1]
    rows = hi - lo
    quads = (rows + 3) // 4
    z = np.empty((max(4 * quads, PANEL_ROW_BLOCK), count * width), x.dtype)
    panel_product(x[lo:hi].reshape((rows * steps, features)), wp[:count * features], count,
                  xw[lo:hi].reshape((rows * steps, units)), z, np.empty((4, features), x.dtype))
    recurrent = wp[count * features:]
    h = np.zeros((2, quads, units, 4), x.dtype)
    for i in range(rows):
        for u in range(units):
            h[0, i // 4, u, i % 4] = initial_state[lo + i, u]
    t = 0
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        _packed_product(h[s % 2], recurrent, count, z)
        for i in range(rows):
            zb, xb = z[i], xw[lo + i, t]
            if act is None:
                for u in range(units):
                    xb[u] = tanh_value(zb[u] + (xb[u] + bias[u]), zb.itemsize)
            else:
                for u in range(units):
                    zb[u] += xb[u] + bias[u]
                activate(zb[:units], act)
                for u in range(units):
                    xb[u] = zb[u]
            if copy_out:
                outputs[lo + i, s] = xb
        _pack_quads(xw, t, lo, rows, h[1 - s % 2])
    for i in range(rows):
        final_state[lo + i] = xw[lo + i, t]
        if outputs.shape[1] != steps:
            outputs[lo + i, 0] = xw[lo + i, t]


@njit(cache=True, parallel=True, error_model=_ERRORS)
def _panels_parallel(x, wp, count, bias, initial_state, go_backwards, act, xw, outputs, final_state,
                     copy_out, chunks):
    for c in prange(chunks):
        _panels_run(x, wp, count, bias, initial_state, go_backwards, act, xw, outputs, final_state,
                    copy_out, _split(x.shape[0], chunks, c), _split(x.shape[0], chunks, c + 1))


def _recurrence_panels(x, kernel, recurrent_kernel, bias, initial_state, go_backwards, act, outputs,
                       final_state):
    """The recurrence without a mask or recurrent dropout (from ``PANELS_MIN_UNITS`` units, or
    large recurrent kernels; see :func:`forward_validated`) on runs of quads of batch rows, one
    run per thread, each through every timestep with no per-step synchronisation and no BLAS
    (:func:`_panels_run`).

    The weights are packed into column panels once (:func:`prepared_weights`, ``"panels"``), so
    each tile reads its weights contiguously, and each step's operand, the states, is packed by
    quads of rows; one core then runs ``h @ recurrent_kernel`` at about 90 GFLOP/s against
    OpenBLAS's 69 (128 x 512 by 512 x 512 float32, 200 steps, one thread). ``x`` (B, T, F)
    has any input dropout applied; ``act`` as :func:`_rows_act` gives it.
    """
    batch, steps = x.shape[:2]
    units = kernel.shape[1]
    x = np.ascontiguousarray(x)
    width = panel_width(x.itemsize)
    wp = prepared_weights(kernel, recurrent_kernel, "panels", width)
    count = -(-units // width)
    in_place = outputs.shape[1] == steps and not go_backwards
    xw = outputs if in_place else _workspace.arrays(x.dtype, (batch, steps, units))[0]
    with parallel_section():
        _panels_parallel(x, wp, count, bias, initial_state, bool(go_backwards), act, xw, outputs,
                         final_state, not in_place and outputs.shape[1] == steps, _panel_runs(batch))


#: Runs of row pairs per thread of the parallel per-row recurrences (forward and backward).
#: Each run goes through every timestep on its own, so more runs than threads cost little,
#: and a thread whose core is slowed by other processes takes fewer of them (tbb hands them out
#: as threads come free: :func:`~simplernn_numba._threading.parallel_section` sets a chunk size
#: of 1; Numba's default is an equal share per thread, fixed up front): 16,500,32,32 forward
#: 1.20 -> 1.07-1.09 ms median and 64,100,128,128 4.77 -> 4.56-4.72 ms with 4 or 8 runs on 2
#: threads, interleaved (measured before the chunk size was set, with the default scheduling).
RUNS_PER_THREAD = 4


def _runs(pairs: int, lanes: bool) -> int:
    """How many runs to split ``pairs`` row pairs into: one per thread on the lanes path (a run's
    rows are its vector lanes), else up to :data:`RUNS_PER_THREAD` per thread."""
    threads = numba.get_num_threads()
    return min(threads if lanes else RUNS_PER_THREAD * threads, pairs)


#: Weight layouts the recurrence kernels take (see :func:`prepared_weights`).
#: Each is the blocks stacked into rows.
LAYOUTS = {
    "fused": lambda kernel, recurrent: (kernel, recurrent),
    "recurrent_t": lambda kernel, recurrent: (recurrent.T,),
    "panels": lambda kernel, recurrent: (*panels(kernel), *panels(recurrent)),
    "recurrent_t_panels": lambda kernel, recurrent: panels(recurrent.T),
}

#: Prepared weights of read-only weight arrays that own their data, such as a layer's
#: weights, which are replaced rather than modified: (id, id, layout) -> (arrays, result).
_PREPARED: dict = {}
_PREPARED_MAX = 16


def prepared_weights(kernel, recurrent_kernel, layout: str, columns: int | None = None) -> np.ndarray:
    """The weights in one of the :data:`LAYOUTS`, C-contiguous and starting on a cache line
    (:func:`._workspace.aligned_empty`), cached for immutable weights.

    ``"fused"``: ``[kernel; recurrent_kernel]``, (F + U, U); ``"recurrent_t"``: the
    recurrent kernel transposed, (U, U); with ``columns`` (at least U), padded with zero
    columns to that many. ``"panels"``: the column panels of the kernel, then of the recurrent
    kernel (:func:`._products.panels`), stacked, (P * (F + U), columns) for P panels, with
    ``columns`` the panel width (:func:`._products.panel_width`). Arrays that are writeable or
    views are prepared afresh on every call.
    """
    key = (id(kernel), id(recurrent_kernel), layout, columns)
    hit = _PREPARED.get(key)
    immutable = not (kernel.flags.writeable or recurrent_kernel.flags.writeable)
    if hit is not None and hit[0] is kernel and hit[1] is recurrent_kernel and immutable:
        return hit[2]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(LAYOUTS)}; received {layout!r}.")
    blocks = LAYOUTS[layout](kernel, recurrent_kernel)
    rows, units = sum(block.shape[0] for block in blocks), max(block.shape[1] for block in blocks)
    result = _workspace.aligned_empty((rows, units if columns is None else columns), kernel.dtype)
    start = 0
    for block in blocks:
        result[start:start + block.shape[0], :block.shape[1]] = block
        result[start:start + block.shape[0], block.shape[1]:] = 0
        start += block.shape[0]
    if not immutable or kernel.base is not None or recurrent_kernel.base is not None:
        return result
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[key] = (kernel, recurrent_kernel, result)
    return result


def _largest_run(batch: int, chunks: int) -> int:
    """Rows in the largest run when ``batch`` rows are cut into ``chunks`` runs of row pairs."""
    return min(batch, 2 * -(-((batch + 1) // 2) // chunks))


def _tiled_weights(kernel, recurrent_kernel, layout: str, batch: int, chunks: int):
    """``(shape, weights)`` for the tiled rows path: the tile shape for the largest run of rows
    when ``batch`` rows are cut into ``chunks`` runs of row pairs, and the weights in ``layout``
    padded to whole tiles of it (:func:`prepared_weights`)."""
    units, itemsize = kernel.shape[1], kernel.itemsize
    shape = tile_shape(_largest_run(batch, chunks), units, itemsize)
    return shape, prepared_weights(kernel, recurrent_kernel, layout,
                                   padded_units(units, shape, itemsize))


def _rows_act(activation) -> int | None:
    """The ``act`` argument of the per-row recurrences: None for tanh, else the activation code.
    None is a type of its own, so the tanh kernels (a step loop with tanh alone, :func:`_steps`)
    and those of the other activations are compiled separately, each on first use, rather than
    both into every compiled variant (which doubled the compile time of each)."""
    act = A.code(activation)
    return None if act == A.TANH else act


def release_workspace() -> None:
    """Free the work arrays the CPU kernels keep between calls, every thread's (:mod:`._workspace`)."""
    _workspace.release()


def input_projection(x, kernel, input_dropout=None, out=None):
    """``(x * input_dropout) @ kernel`` for all timesteps as one GEMM: (B, T, U).

    ``out``, when given, is a C-contiguous (B, T, U) array that receives the result.
    """
    batch, steps, features = x.shape
    if input_dropout is not None:
        x = x * input_dropout[:, None, :]
    flat = x.reshape(batch * steps, features)
    if out is None:
        return (flat @ kernel).reshape(batch, steps, kernel.shape[1])
    np.matmul(flat, kernel, out=out.reshape(batch * steps, kernel.shape[1]))
    return out


def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the CPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.forward`;
    ``activation`` must be a built-in name (callables use the reference). The arrays
    are checked against the kernel contract first (ValueError, never a bad read).
    """
    _validate.kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask,
                               input_dropout, recurrent_dropout)
    return forward_validated(x, kernel, recurrent_kernel, bias, initial_state, mask=mask,
                             input_dropout=input_dropout, recurrent_dropout=recurrent_dropout,
                             go_backwards=go_backwards, activation=activation,
                             return_sequences=return_sequences)


def forward_validated(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
                      input_dropout=None, recurrent_dropout=None, go_backwards=False,
                      activation="tanh", return_sequences=True, training=False):
    """:func:`forward` without the contract check (3 µs), for arrays the caller has validated:
    the layer and :mod:`simplernn_numba.functional` (with :mod:`simplernn_numba._validate`).
    ``training``: a backward pass follows (see ``FUSED_WEIGHT_BYTES``)."""
    batch, steps, features = x.shape
    units = kernel.shape[1]
    outputs = np.empty((batch, steps if return_sequences else 1, units), x.dtype)
    final_state = np.empty((batch, units), x.dtype)
    if batch == 0:  # nothing to run (and no kernel compiled for it)
        return (outputs if return_sequences else outputs[:, 0]), final_state
    fits = (features + units) * units * x.itemsize <= FUSED_WEIGHT_BYTES
    lanes = fits and units <= LANES_MAX_UNITS and batch >= LANES_MIN_BATCH
    work = batch * steps * (features + units) * units
    fused = lanes or (fits and (training or (batch > 1 and work < FUSED_MAX_WORK)))
    chunks = 1
    if batch >= 4 and work >= SERIAL_WORK:
        chunks = _runs(batch // 2, lanes)
    bias = np.zeros(units, x.dtype) if bias is None else bias
    large = units * units * x.itemsize > _ROWS_WEIGHT_BYTES
    if (mask is None and recurrent_dropout is None and steps and batch >= GEMM_MIN_BATCH and not lanes
            and (large or (units >= PANELS_MIN_UNITS and work >= SERIAL_WORK))):
        if input_dropout is not None:
            x = x * input_dropout[:, None, :]
        _recurrence_panels(x, kernel, recurrent_kernel, bias, initial_state, go_backwards,
                           _rows_act(activation), outputs, final_state)
        return (outputs if return_sequences else outputs[:, 0]), final_state
    if not fused and large and batch >= GEMM_MIN_BATCH:
        in_place = return_sequences and not go_backwards
        xw = input_projection(x, kernel, input_dropout, outputs if in_place
                              else _workspace.arrays(x.dtype, (batch, steps, units))[0])
        _recurrence_gemm(recurrent_kernel, bias, initial_state, mask, recurrent_dropout,
                         bool(go_backwards), A.code(activation), xw, outputs, final_state)
        return (outputs if return_sequences else outputs[:, 0]), final_state
    if lanes:
        shape, w = -1, prepared_weights(kernel, recurrent_kernel, "fused")
    else:
        shape, w = _tiled_weights(kernel, recurrent_kernel, "fused", batch, chunks)
    projection_kernel = projections = None
    if not fused:  # each run projects its own rows (see :func:`_rows`)
        projection_kernel, w = w[:features], w[features:]
        run_rows = -(-_largest_run(batch, chunks) * steps // PRODUCT_TILE_ROWS) * PRODUCT_TILE_ROWS
        projections = _workspace.arrays(x.dtype, (chunks, run_rows, w.shape[1]))[0]
        if input_dropout is not None:
            x = x * input_dropout[:, None, :]
            input_dropout = None
        if shape == ONE_ROW and mask is None and recurrent_dropout is None and steps:
            _one_row(x, w, projection_kernel, projections[0], bias, initial_state,
                     bool(go_backwards), _rows_act(activation), outputs, final_state)
            return (outputs if return_sequences else outputs[:, 0]), final_state
    args = (x, w, projection_kernel, projections, bias, initial_state, mask, input_dropout,
            recurrent_dropout, bool(go_backwards), _rows_act(activation), outputs, final_state,
            shape)
    if chunks > 1:
        with parallel_section():
            _recurrence_parallel(*args, chunks)
    else:
        _recurrence_serial(*args)
    return (outputs if return_sequences else outputs[:, 0]), final_state


#: The forward pass of a training call (a backward pass follows): :func:`forward_validated`
#: with ``training=True``; :func:`simplernn_numba.functional.run` calls it where a kernel
#: module has one.
forward_for_training = functools.partial(forward_validated, training=True)


# ---------------------------------------------------------------------------------------------------
# Backward pass (BPTT). Only dh_{t-1} = (dz_t @ recurrent_kernel.T) * recurrent_dropout is sequential;
# the weight and input gradients are large matrix products over all timesteps after the loop:
# Numba-parallel dot products (:mod:`._products`) where the recurrence runs on runs of rows with
# the weights in L2, BLAS for larger weights (the recurrence then on packed panels or one BLAS
# GEMM per step). Packed panels: 128,200,512,512 float32 backward 444 -> 405 ms, 32,100,512,512
# 66 -> 51 (medians after idle waits, same process).
# Work arrays (dz, previous states, pre-activations) are kept in input time order so that the
# products need no reordering; outputs and d_outputs arrive in processing order.
# ---------------------------------------------------------------------------------------------------

#: Stand-ins for an absent mask or recurrent dropout mask (never read: flags say they are absent).
_UNUSED = {np.dtype(t): np.ones((1, 1), t) for t in (np.bool_, np.float32, np.float64)}

#: Activations whose derivative cannot be recovered from the output alone (need the pre-activation).
_NEEDS_PREACTIVATION = (A.SILU, A.GELU, A.MISH, A.HARD_SILU)


#: Below this many multiply-adds in the whole recurrence (batch * steps * units**2) the per-row
#: recurrence runs on one thread: starting the thread pool would cost more than the work.
_PARALLEL_WORK = 1 << 18


@njit(cache=True, error_model=_ERRORS)
def _grad_from_output(h, act):
    """``act'(z)`` written with the output ``h = act(z)`` (every activation but those needing ``z``)."""
    if act == A.TANH:
        return 1.0 - h * h
    if act == A.LINEAR:
        return 1.0
    if act == A.RELU:
        return 1.0 if h > 0 else 0.0
    if act == A.SIGMOID:
        return h * (1.0 - h)
    if act == A.ELU:
        return 1.0 if h > 0 else h + 1.0
    if act == A.SELU:
        return A.SELU_SCALE if h > 0 else h + A.SELU_SCALE * A.SELU_ALPHA
    if act == A.SOFTPLUS:
        return -math.expm1(-h)
    if act == A.SOFTSIGN:
        a = 1.0 - abs(h)
        return a * a
    if act == A.HARD_SIGMOID:
        return 1.0 / 6.0 if 0.0 < h < 1.0 else 0.0
    if act == A.EXPONENTIAL:
        return h
    if act == A.RELU6:
        return 1.0 if 0.0 < h < 6.0 else 0.0
    return 1.0 if h > 0 else A.LEAKY_RELU_SLOPE  # LEAKY_RELU


@njit(cache=True, error_model=_ERRORS)
def _grad_from_preactivation(z, act):
    """``act'(z)`` for the activations in ``_NEEDS_PREACTIVATION``."""
    if act == A.SILU:
        s = _sigmoid(z)
        return s + z * s * (1.0 - s)
    if act == A.GELU:
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) + z * math.exp(-0.5 * z * z) / math.sqrt(
            2.0 * math.pi)
    if act == A.MISH:
        t = np.tanh(_softplus(z))
        return t + z * (1.0 - t * t) * _sigmoid(z)
    hs = min(max(z / 6.0 + 0.5, 0.0), 1.0)  # HARD_SILU
    return hs + (z / 6.0 if -3.0 < z < 3.0 else 0.0)


@njit(cache=True, error_model=_ERRORS)
def _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                         go_backwards, prev):
    steps, units = outputs.shape[1], outputs.shape[2]
    src = initial_state[b]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        if use_dropout:
            for k in range(units):
                prev[b, t, k] = src[k] * recurrent_dropout[b, k]
        else:
            prev[b, t] = src
        if not use_mask or mask[b, t]:
            src = outputs[b, s]


@njit(cache=True, error_model=_ERRORS)
def _previous_states(outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                     go_backwards, prev):
    """Fill ``prev[b, t]`` (input time order) with the state entering the step that reads ``x[b, t]``,
    times the recurrent dropout mask: the ``h_{t-1}`` of ``h_{t-1} @ recurrent_kernel``."""
    for b in range(outputs.shape[0]):
        _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout, use_dropout,
                             go_backwards, prev)


@njit(cache=True, inline="always", fastmath={"contract"}, error_model=_ERRORS)
def _step_dz(b, s, t, dh, outputs, d_outputs, seen, preact, use_preact, act, dz):
    """Add ``d_outputs`` of step ``s`` to ``dh`` and write ``dz[b, t] = dh * act'``. Inlined (a
    call per row and step cost more than the row's work): its callers are compiled with
    ``contract`` too, which the inlined code takes from them."""
    units = dh.shape[0]
    if seen:
        if d_outputs.shape[1] == outputs.shape[1]:
            for u in range(units):
                dh[u] += d_outputs[b, s, u]
        elif d_outputs.shape[1] == 1 and s == outputs.shape[1] - 1:
            for u in range(units):
                dh[u] += d_outputs[b, 0, u]
    out = dz[b, t]
    if use_preact:
        for u in range(units):
            out[u] = dh[u] * _grad_from_preactivation(preact[b, t, u], act)
        return
    h = outputs[b, s]
    # the common activations get their own loops (branch-free, so they vectorise)
    if act == A.TANH:
        for u in range(units):
            out[u] = dh[u] - dh[u] * h[u] * h[u]
    elif act == A.LINEAR:
        out[:] = dh
    elif act == A.RELU:
        for u in range(units):
            out[u] = dh[u] if h[u] > 0 else 0
    else:
        for u in range(units):
            out[u] = dh[u] * _grad_from_output(h[u], act)


@njit(cache=True, error_model=_ERRORS)
def _first_unmasked(mask, use_mask, b, steps, go_backwards):
    """Processing index of row ``b``'s first unmasked step (``steps`` if none)."""
    if not use_mask:
        return 0
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        if mask[b, t]:
            return s
    return steps


@njit(cache=True, inline="always", error_model=_ERRORS)
def _row_dz(b, s, t, dh, first, outputs, d_outputs, preact, use_preact, mask, use_mask, act, dz):
    """Step ``s`` of row ``b``: ``dz[b, t]`` from ``dh``; False (``dz[b, t] = 0``) if masked.

    A masked step passes ``dh`` on unchanged apart from the step's output gradient
    (added from the row's first unmasked step on, where Keras repeats the state).
    """
    steps = outputs.shape[1]
    if use_mask and not mask[b, t]:
        if s >= first and d_outputs.shape[1] == steps:
            for u in range(dh.shape[0]):
                dh[u] += d_outputs[b, s, u]
        elif s >= first and d_outputs.shape[1] == 1 and s == steps - 1:
            for u in range(dh.shape[0]):
                dh[u] += d_outputs[b, 0, u]
        dz[b, t] = 0
        return False
    _step_dz(b, s, t, dh, outputs, d_outputs, s >= first, preact, use_preact, act, dz)
    return True


@njit(cache=True, inline="always", error_model=_ERRORS)
def _set_dh(dh, product, recurrent_dropout, use_dropout, b):
    """``dh = product * recurrent_dropout[b]`` (or just ``product``)."""
    for k in range(dh.shape[0]):
        dh[k] = product[k] * recurrent_dropout[b, k] if use_dropout else product[k]


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _bptt_range(outputs, d_outputs, preact, use_preact, recurrent_t, initial_state, mask, use_mask,
                recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz, shape,
                lo, hi):
    """Backward recurrence of batch rows ``lo:hi``, all of them together (see :func:`_bptt_rows`).

    ``dz_t @ recurrent_kernel.T`` is a register-tiled product (:func:`tiled_product`, tile
    ``shape``) with ``recurrent_t``, the transposed recurrent kernel padded with zero columns
    to whole tiles, (U, U').
    """
    steps, units = outputs.shape[1], outputs.shape[2]
    rows = hi - lo
    tile_rows = TILE_SHAPES[shape][0]
    operand = np.zeros((-(-rows // tile_rows) * tile_rows, units), outputs.dtype)
    product = np.empty((operand.shape[0], recurrent_t.shape[1]), outputs.dtype)
    first = np.empty(rows, np.int64)
    live = np.empty(rows, np.bool_)
    for r in range(rows):
        if fill_prev:
            _previous_states_row(lo + r, outputs, initial_state, mask, use_mask, recurrent_dropout,
                                 use_dropout, go_backwards, prev)
        first[r] = _first_unmasked(mask, use_mask, lo + r, steps, go_backwards)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for r in range(rows):
            live[r] = _row_dz(lo + r, s, t, dh[lo + r], first[r], outputs, d_outputs, preact,
                              use_preact, mask, use_mask, act, dz)
            source, target = dz[lo + r, t], operand[r]
            for u in range(units):  # a loop: a slice assignment was 4x slower
                target[u] = source[u]
        tiled_product(recurrent_t, operand, product, shape)
        for r in range(rows):
            if live[r]:
                _set_dh(dh[lo + r], product[r], recurrent_dropout, use_dropout, lo + r)


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _bptt_lanes(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask, use_mask,
                recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz, lo, hi):
    """:func:`_bptt_range` with the batch rows as vector lanes (few units; see :func:`_lanes`).

    The state gradient is kept transposed, (U, rows), so ``dz_t @ recurrent_kernel.T``
    runs along the batch; the per-element steps are those of :func:`_row_dz`.
    """
    steps, units = outputs.shape[1], outputs.shape[2]
    rows = hi - lo
    dh_t = np.empty((units, rows), outputs.dtype)
    dz_t = np.empty((units, rows), outputs.dtype)
    product = np.empty((units, rows), outputs.dtype)
    first = np.empty(rows, np.int64)
    live = np.empty(rows, np.bool_)
    for r in range(rows):
        b = lo + r
        if fill_prev:
            _previous_states_row(b, outputs, initial_state, mask, use_mask, recurrent_dropout,
                                 use_dropout, go_backwards, prev)
        first[r] = _first_unmasked(mask, use_mask, b, steps, go_backwards)
        for u in range(units):
            dh_t[u, r] = dh[b, u]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for r in range(rows):
            b = lo + r
            live[r] = not use_mask or mask[b, t]
            if s >= first[r]:
                if d_outputs.shape[1] == steps:
                    for u in range(units):
                        dh_t[u, r] += d_outputs[b, s, u]
                elif d_outputs.shape[1] == 1 and s == steps - 1:
                    for u in range(units):
                        dh_t[u, r] += d_outputs[b, 0, u]
            for u in range(units):
                if not live[r]:
                    g = 0.0
                elif use_preact:
                    g = dh_t[u, r] * _grad_from_preactivation(preact[b, t, u], act)
                else:
                    g = dh_t[u, r] * _grad_from_output(outputs[b, s, u], act)
                dz_t[u, r] = g
                dz[b, t, u] = g
        for k in range(units):
            pk = product[k]
            pk[:] = 0
            for u in range(units):
                w, gu = recurrent_kernel[k, u], dz_t[u]
                for r in range(rows):
                    pk[r] += w * gu[r]
        for r in range(rows):
            if live[r]:
                for k in range(units):
                    dh_t[k, r] = product[k, r] * recurrent_dropout[lo + r, k] if use_dropout \
                        else product[k, r]
    for r in range(rows):
        for u in range(units):
            dh[lo + r, u] = dh_t[u, r]


@njit(cache=True, inline="always", error_model=_ERRORS)
def _bptt_run(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask, use_mask,
              recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz, shape, lo, hi):
    """Rows ``lo:hi`` on the lanes path (``shape`` -1) or the tiled rows path (tile ``shape``)."""
    if shape < 0:
        _bptt_lanes(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask,
                    use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz,
                    lo, hi)
    else:
        _bptt_range(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask,
                    use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz,
                    shape, lo, hi)


@njit(parallel=True, cache=True, error_model=_ERRORS)
def _bptt_rows(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask, use_mask,
               recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz, shape, chunks):
    """Backward recurrence with the batch rows split into ``chunks`` runs of row pairs (threads share them).

    ``recurrent_kernel`` is the recurrent kernel (U, U) on the lanes path (``shape`` -1),
    else its transpose padded for tile ``shape`` (:func:`_bptt_range`).
    ``dh`` (B, U) enters holding d_state and leaves holding the initial-state gradient;
    ``dz`` (B, T, U) receives the pre-activation gradients in input time order. With
    ``fill_prev``, each row first fills its part of ``prev`` as :func:`_previous_states` does.
    """
    batch = outputs.shape[0]
    pairs = (batch + 1) // 2
    for c in prange(chunks):
        _bptt_run(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask,
                  use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz,
                  shape, 2 * (c * pairs // chunks), min(batch, 2 * ((c + 1) * pairs // chunks)))


@njit(cache=True, error_model=_ERRORS)
def _bptt_rows_serial(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask,
                      use_mask, recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz,
                      shape):
    """:func:`_bptt_rows` on the calling thread, for work too small to share."""
    _bptt_run(outputs, d_outputs, preact, use_preact, recurrent_kernel, initial_state, mask, use_mask,
              recurrent_dropout, use_dropout, go_backwards, act, fill_prev, prev, dh, dz, shape, 0,
              outputs.shape[0])


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _bptt_step(s, outputs, d_outputs, preact, use_preact, mask, use_mask, recurrent_dropout, use_dropout,
               go_backwards, act, first, product, dh, dz_step, dz):
    """Step ``s`` of the per-step GEMM path, around ``product = dz_step @ recurrent_kernel.T``.

    First ``dh = product * recurrent_dropout`` on the rows unmasked at step ``s + 1`` (the product
    of the previous call), then, unless ``s < 0`` (the final call), ``dz_step`` and ``dz[:, t]``.
    """
    steps = outputs.shape[1]
    batch = outputs.shape[0]
    if s < steps - 1:
        t_next = steps - 2 - s if go_backwards else s + 1
        for b in range(batch):
            if not use_mask or mask[b, t_next]:
                _set_dh(dh[b], product[b], recurrent_dropout, use_dropout, b)
    if s < 0:
        return
    t = steps - 1 - s if go_backwards else s
    for b in range(batch):
        _row_dz(b, s, t, dh[b], first[b], outputs, d_outputs, preact, use_preact, mask, use_mask, act, dz)
        dz_step[b] = dz[b, t]


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _bptt_step_unmasked(s, t, dh, outputs, d_outputs, act, dz, d_bias):
    """Step ``s`` (input time ``t``) of the per-step GEMM path without a mask, recurrent dropout or
    pre-activations: ``dz[:, t] = (dh + d_outputs of step s) * act'(outputs[:, s])``, also added to
    ``d_bias``. ``dh`` (B, U), the state gradient (the previous step's GEMM result), is changed in
    place; the next GEMM reads ``dz[:, t]`` where it is."""
    for b in range(dh.shape[0]):
        _step_dz(b, s, t, dh[b], outputs, d_outputs, True, dz, False, act, dz)  # dz: unread preact
        row = dz[b, t]
        for u in range(row.shape[0]):
            d_bias[u] += row[u]


@njit(cache=True, fastmath={"contract"}, error_model=_ERRORS)
def _bptt_panels_run(outputs, d_outputs, wp, count, go_backwards, act, dh, dz, lo, hi):
    """Batch rows ``lo:hi`` of the backward recurrence without a mask, recurrent dropout or
    pre-activations on packed panels, through every step on the calling thread: per step
    ``dz[:, t] = (dh + d_outputs of step s) * act'(outputs[:, s])`` (:func:`_step_dz`), packed by
    quads of rows, then ``dh = dz[:, t] @ recurrent_kernel.T`` by :func:`._products.panel_tile` s
    over ``wp``, the panels of ``recurrent_kernel.T`` (as the forward pass's, :func:`_panels_run`)."""
    steps, units = dz.shape[1], dz.shape[2]
    rows = hi - lo
    quads = (rows + 3) // 4
    packed = np.zeros((quads, units, 4), dz.dtype)
    z = np.empty((4 * quads, count * wp.shape[1]), dz.dtype)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for i in range(rows):
            _step_dz(lo + i, s, t, dh[lo + i], outputs, d_outputs, True, dz, False, act, dz)
        _pack_quads(dz, t, lo, rows, packed)
        _packed_product(packed, wp, count, z)
        for i in range(rows):
            dh[lo + i] = z[i, :units]


@njit(cache=True, parallel=True, error_model=_ERRORS)
def _bptt_panels(outputs, d_outputs, wp, count, go_backwards, act, dh, dz, chunks):
    batch = dh.shape[0]
    for c in prange(chunks):
        _bptt_panels_run(outputs, d_outputs, wp, count, go_backwards, act, dh, dz,
                         _split(batch, chunks, c), _split(batch, chunks, c + 1))


def _recurrent_gradient_in_order(outputs, initial_state, dz):
    """``sum_t h_{t-1}.T @ dz[:, t]`` (U, U) for states ``outputs`` (B, T, U) in input time order
    and ``h_{-1} = initial_state`` (B, U), without gathering the previous states: flattened to
    (B * T, U), each row of ``dz`` but the first pairs with the row of ``outputs`` before it, which
    is right except at ``t = 0``, where the last state of the batch row before takes the place of
    the initial state; those B - 1 terms are taken out and the initial states' put in."""
    batch, steps, units = outputs.shape
    flat_out = outputs.reshape(batch * steps, units)
    flat_dz = dz.reshape(batch * steps, units)
    gradient = flat_out[:-1].T @ flat_dz[1:]
    gradient -= outputs[:-1, -1].T @ dz[1:, 0]
    gradient += initial_state.T @ dz[:, 0]
    return gradient


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """BPTT on the CPU (same contract as :func:`simplernn_numba.kernels.reference.backward`).

    ``activation`` must be a built-in name. Activations whose derivative is a
    function of the output (tanh, relu, sigmoid, ...) take it from ``outputs``;
    silu, gelu, mish and hard_silu recompute the pre-activations with two GEMMs.
    """
    dtype = x.dtype
    batch, steps, features = x.shape
    units = kernel.shape[1]
    act = A.code(activation)
    go_backwards = bool(go_backwards)
    use_mask, use_dropout = mask is not None, recurrent_dropout is not None
    mask_arr = mask if use_mask else _UNUSED[np.dtype(np.bool_)]
    rdrop = recurrent_dropout if use_dropout else _UNUSED[dtype]
    if d_outputs is None:
        d_seq = np.zeros((batch, 0, units), dtype)
    else:
        d_seq = d_outputs.reshape(batch, d_outputs.shape[1] if d_outputs.ndim == 3 else 1, units)
    dh = np.zeros((batch, units), dtype) if d_state is None else np.array(d_state, dtype=dtype)

    use_preact = act in _NEEDS_PREACTIVATION
    use_rows = units * units * x.itemsize <= _ROWS_WEIGHT_BYTES
    sequence = (batch, steps, units)
    prev, dz, preact = _workspace.arrays(dtype, sequence, sequence,
                                         sequence if use_preact else (1, 1, 1))
    flat_prev = prev.reshape(batch * steps, units)
    # the per-step GEMM path without a mask, recurrent dropout or pre-activations: one pass per
    # step (:func:`_bptt_step_unmasked`), and in input order no previous states gathered
    plain = not (use_rows or use_mask or use_dropout or use_preact)
    shifted = plain and not go_backwards
    if use_preact or not (use_rows or shifted):
        _previous_states(outputs, initial_state, mask_arr, use_mask, rdrop, use_dropout, go_backwards, prev)
    if use_preact:
        input_projection(x, kernel, input_dropout, out=preact)
        preact += (flat_prev @ recurrent_kernel).reshape(sequence)
        if bias is not None:
            preact += bias
    if use_rows:
        lanes = units <= LANES_MAX_UNITS and batch >= LANES_MIN_BATCH
        chunks = 1
        if batch > 1 and batch * steps * units * units >= _PARALLEL_WORK:
            chunks = _runs((batch + 1) // 2, lanes)
        if lanes:
            shape, weights = -1, np.ascontiguousarray(recurrent_kernel)
        else:
            shape, weights = _tiled_weights(kernel, recurrent_kernel, "recurrent_t", batch, chunks)
        args = (outputs, d_seq, preact, use_preact, weights, initial_state, mask_arr, use_mask, rdrop,
                use_dropout, go_backwards, act, not use_preact, prev, dh, dz, shape)
        if chunks > 1:
            with parallel_section():
                _bptt_rows(*args, chunks)
        else:
            _bptt_rows_serial(*args)
    elif plain and batch >= GEMM_MIN_BATCH:  # one run of quads of rows per thread (no BLAS)
        width = panel_width(dtype.itemsize)
        weights = prepared_weights(kernel, recurrent_kernel, "recurrent_t_panels", width)
        with parallel_section():
            _bptt_panels(outputs, d_seq, weights, -(-units // width), go_backwards, act, dh, dz,
                         _panel_runs(batch))
        d_bias = dz.reshape(batch * steps, units).sum(axis=0)
    elif plain:
        recurrent_kernel_t = np.ascontiguousarray(recurrent_kernel.T)
        d_bias = np.zeros(units, dtype)
        step_product = np.empty((batch, units), dtype)
        for s in range(steps - 1, -1, -1):
            t = steps - 1 - s if go_backwards else s
            _bptt_step_unmasked(s, t, dh, outputs, d_seq, act, dz, d_bias)
            np.matmul(dz[:, t], recurrent_kernel_t, out=step_product)
            dh, step_product = step_product, dh
    else:
        recurrent_kernel_t = np.ascontiguousarray(recurrent_kernel.T)
        if use_mask:
            in_order = mask[:, ::-1] if go_backwards else mask
            first = np.where(in_order.any(axis=1), in_order.argmax(axis=1), steps)
        else:
            first = np.zeros(batch, np.int64)
        dz_step = np.empty((batch, units), dtype)
        step_product = np.empty((batch, units), dtype)
        for s in range(steps - 1, -2, -1):
            _bptt_step(s, outputs, d_seq, preact, use_preact, mask_arr, use_mask, rdrop, use_dropout,
                       go_backwards, act, first, step_product, dh, dz_step, dz)
            if s >= 0:
                np.matmul(dz_step, recurrent_kernel_t, out=step_product)

    flat_dz = dz.reshape(batch * steps, units)
    x_in = x if input_dropout is None else x * input_dropout[:, None, :]
    flat_x = np.ascontiguousarray(x_in.reshape(batch * steps, features))
    if use_rows:  # not NumPy's BLAS next to the Numba-parallel recurrences: see ._products
        kernel = np.ascontiguousarray(kernel)
        if batch * steps * (features + units) * units >= _PARALLEL_WORK:
            with parallel_section():
                d_x, d_weights, d_bias = gradient_products(flat_x, flat_prev, flat_dz, kernel,
                                                           numba.get_num_threads())
        else:
            d_x, d_weights, d_bias = gradient_products(flat_x, flat_prev, flat_dz, kernel, 1)
        d_kernel, d_recurrent = d_weights[:features], d_weights[features:]
    else:
        d_x = flat_dz @ kernel.T
        d_kernel = flat_x.T @ flat_dz
        d_recurrent = (_recurrent_gradient_in_order(outputs, initial_state, dz) if shifted
                       else flat_prev.T @ flat_dz)
        if not plain:
            d_bias = flat_dz.sum(axis=0)
    d_x = d_x.reshape(batch, steps, features)
    if input_dropout is not None:
        d_x *= input_dropout[:, None, :]
    return {
        "inputs": d_x,
        "initial_state": dh,
        "kernel": d_kernel,
        "recurrent_kernel": d_recurrent,
        "bias": None if bias is None else d_bias,
    }
