"""The rows path: runs of batch rows through every step, each step a register-tiled product.

Each step multiplies the run's rows by weights that stay in cache, by tiles of rows by vectors
of units whose partial sums stay in vector registers (:func:`.products.tiled_product`, tile
shape ``tile``, a static choice). Fused (``kernel`` None): ``w`` is ``[kernel;
recurrent_kernel]`` and each step's operand is ``[x_t, h_{t-1}]``. Projected: the run first
computes its rows' input projection for every step in one product (:func:`.products.product`,
on the run's own thread) and each step multiplies ``h_{t-1}`` by the recurrent kernel alone.
The weights are padded with zero columns to whole tiles (U' columns). One or two batch rows
without a mask or recurrent dropout have kernels of their own (:func:`one_row`,
:func:`two_rows`): the state's product is split into partial sums over ``k``
(:func:`.products.row_partials`, as on the rows path's one-row shapes, and
:func:`.products.row_pair_partials`; ``config.ONE_ROW_PARTIALS`` and ``TWO_ROW_PARTIALS``), so a
step's chain of dependent FMAs is shorter.

A row's result does not depend on the other rows of its run (each element of a tile is one FMA
per term, in order), so a batch cut into runs of rows over the threads (:mod:`.launch`) gives
the same bits as one run.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from ... import activations
from . import options
from .activation import activation
from .launch import row_pairs
from .products import TILE_SHAPES, product, row_pair_partials, row_partials, shape_width, tiled_product
from .rowsteps import first_unmasked, last_outputs, previous_states, row_dz
from .simd import lane_count, vadd, vload, vload_at, vstore
from .specialise import skipped, times, value_of
from .tanh import tanh_f32_vector

_FLAGS = options.THREADED


def tile_rows(tile):
    """Rows of a tile of shape ``tile`` (a static choice): operands are padded to a multiple."""


@overload(tile_rows, inline="always", jit_options=options.OVERLOAD_CACHED)
def _tile_rows(tile):
    rows = TILE_SHAPES[value_of(tile)][0]
    return lambda tile: rows


def _projection(x, kernel, projections, run, lo, hi, padded, tile):
    """Projected mode: the input projection of rows ``lo:hi`` for every step, computed into
    ``projections[run]`` by :func:`.products.product` with the vectors of tiles of shape
    ``tile``, as (rows, T, ``padded``); fused mode (``kernel`` None): None."""


@overload(_projection, inline="always", jit_options=options.OVERLOAD_CACHED)
def _projection_impl(x, kernel, projections, run, lo, hi, padded, tile):
    if kernel is None or isinstance(kernel, types.NoneType):
        return lambda x, kernel, projections, run, lo, hi, padded, tile: None

    def project(x, kernel, projections, run, lo, hi, padded, tile):
        rows, steps = hi - lo, x.shape[1]
        projection = projections[run]
        product(x[lo:hi].reshape(rows * steps, x.shape[2]), kernel, projection, shape_width(tile))
        return projection[:rows * steps].reshape(rows, steps, padded)
    return project


def _pre_activation(product, xw, r, t, u, bias):
    """``product + bias`` (fused mode: ``xw`` None), else ``product + (xw[r, t, u] + bias)``."""


@overload(_pre_activation, inline="always", jit_options=options.OVERLOAD_CACHED)
def _pre_activation_impl(product, xw, r, t, u, bias):
    if xw is None or isinstance(xw, types.NoneType):
        return lambda product, xw, r, t, u, bias: product + bias
    return lambda product, xw, r, t, u, bias: product + (xw[r, t, u] + bias)


@njit(inline="always", **_FLAGS)
def _finish_row(z, r, xw, t, bias, recurrent_dropout, act, state, outputs, slot, keep, operands,
                offset, b):
    """Finish row ``b``'s unmasked step from its product ``z[r]``: add the input projection
    ``xw[r, t]`` (absent, None, in fused mode) and the bias, activate, and write the new state to
    ``state[b]``, with ``keep`` to ``outputs[b, slot]`` and, times the recurrent dropout mask, to
    ``operands[r, offset:]`` for the next step's product. (The rows are taken here: taken by
    the caller and passed in, they cost a reference count each, per row and step.)"""
    units = state.shape[1]
    zr = z[r, :units]
    for u in range(units):
        zr[u] = activation(_pre_activation(zr[u], xw, r, t, u, bias[u]), act)
    sr = state[b]
    for u in range(units):
        sr[u] = zr[u]
    if keep:
        out = outputs[b, slot]
        for u in range(units):
            out[u] = zr[u]
    op = operands[r, offset:]
    for u in range(units):
        op[u] = times(zr[u], recurrent_dropout, b, u)


@njit(inline="always", **_FLAGS)
def _steps(seq, w, xw, act, tile, lo, operands, z, seen):
    """The timesteps of :func:`forward` for its rows ``lo:lo + len(seen)``."""
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, state = seq
    steps, features = x.shape[1], x.shape[2]
    units = state.shape[1]
    offset = w.shape[0] - units
    keep_all = outputs.shape[1] == steps
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        if xw is None:
            for r in range(seen.shape[0]):
                op = operands[r]
                for f in range(features):
                    op[f] = times(x[lo + r, t, f], input_dropout, lo + r, f)
        tiled_product(w, operands, z, tile)
        for r in range(seen.shape[0]):
            b = lo + r
            if skipped(mask, b, t):
                if keep_all:
                    for u in range(units):
                        outputs[b, s, u] = state[b, u] if seen[r] else 0
                continue
            seen[r] = True
            _finish_row(z, r, xw, t, bias, recurrent_dropout, act, state, outputs,
                        s if keep_all else 0, keep_all, operands, offset, b)


@njit(**_FLAGS)
def forward(seq, w, kernel, projections, act, tile, run, runs):
    """Run ``run`` of ``runs`` of row pairs of a forward call (``seq``, a
    :func:`.bundles.sequence`) through every step.

    Fused mode (``kernel`` None): ``w`` is ``[kernel; recurrent_kernel]`` (F + U, U'). Projected
    mode: ``w`` is the recurrent kernel (U, U') and ``kernel`` the kernel (F, U'); the run
    projects its inputs into ``projections[run]`` (at least ``(hi - lo) * T`` rows, U'), and
    ``seq.input_dropout`` must be None (applied to ``seq.x`` by the caller). A masked step leaves
    the state, and the operands' state part, as they were.
    """
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, state = seq
    lo, hi = row_pairs(x.shape[0], run, runs)
    steps = x.shape[1]
    width, padded = w.shape
    units = state.shape[1]
    offset = width - units
    rows = hi - lo
    step_rows = tile_rows(tile)
    operands = np.zeros((-(-rows // step_rows) * step_rows, width), w.dtype)
    z = np.empty((operands.shape[0], padded), w.dtype)
    seen = np.zeros(rows, np.bool_)
    for r in range(rows):
        b = lo + r
        for u in range(units):
            h = initial_state[b, u]
            state[b, u] = h
            operands[r, offset + u] = times(h, recurrent_dropout, b, u)
    xw = _projection(x, kernel, projections, run, lo, hi, padded, tile)
    _steps(seq, w, xw, act, tile, lo, operands, z, seen)
    if outputs.shape[1] != steps:
        last_outputs(outputs, state, seen, lo, hi)


def _finish_vectors(sums, projection, t, ring, row, z, u, act, W):
    """The four vectors of products ``sums`` of units ``u:u + 4 * lanes`` of a row of
    :func:`one_row` or :func:`two_rows`, whose projection (bias added) is ``projection[t]``: float32
    tanh activates them in registers (:func:`.tanh.tanh_f32_vector`, the scalar function's bits)
    into ``ring[row]``; other activations and float64 leave the sums in ``z[row]`` for
    :func:`_finish_scalars`."""


@overload(_finish_vectors, inline="always", jit_options={"cache": True})
def _finish_vectors_impl(sums, projection, t, ring, row, z, u, act, W):
    lanes = sums[0].lanes
    if value_of(act) == activations.TANH and projection.dtype == types.float32:
        def in_registers(sums, projection, t, ring, row, z, u, act, W):
            s0, s1, s2, s3 = sums
            vstore(ring, row, u, tanh_f32_vector(vadd(s0, vload(projection, t, u, W))))
            vstore(ring, row, u + lanes, tanh_f32_vector(vadd(s1, vload_at(projection, t, u, 1, W))))
            vstore(ring, row, u + 2 * lanes,
                   tanh_f32_vector(vadd(s2, vload_at(projection, t, u, 2, W))))
            vstore(ring, row, u + 3 * lanes,
                   tanh_f32_vector(vadd(s3, vload_at(projection, t, u, 3, W))))
        return in_registers

    def stored(sums, projection, t, ring, row, z, u, act, W):
        s0, s1, s2, s3 = sums
        vstore(z, row, u, s0)
        vstore(z, row, u + lanes, s1)
        vstore(z, row, u + 2 * lanes, s2)
        vstore(z, row, u + 3 * lanes, s3)
    return stored


def _finish_scalars(z, projection, t, ring, row, units, act):
    """``ring[row, u] = act(z[row, u] + projection[t, u])`` for the activations
    :func:`_finish_vectors` leaves in ``z`` (nothing for float32 tanh)."""


@overload(_finish_scalars, inline="always", jit_options={"cache": True})
def _finish_scalars_impl(z, projection, t, ring, row, units, act):
    if value_of(act) == activations.TANH and projection.dtype == types.float32:
        return lambda z, projection, t, ring, row, units, act: None

    def finish(z, projection, t, ring, row, units, act):
        for u in range(units):
            ring[row, u] = activation(z[row, u] + projection[t, u], act)
    return finish


@njit(**_FLAGS)
def one_row(seq, w, kernel, projection, act, tile):
    """The forward call of one batch row without a mask or recurrent dropout: the input
    projection for every step first (one product, plus the bias), then per step the state's
    product with the recurrent kernel by :func:`.products.row_partials` (the bits of
    :func:`forward` for ``lo, hi = 0, 1`` projected with a mask that masks nothing), its
    activation (float32 tanh in vector registers), and the new state in a two-slot ring, copied
    to its output slot off the chain of dependent steps.

    ``seq.x`` (1, T, F), T >= 1, with any input dropout applied; ``w`` the recurrent kernel and
    ``kernel`` the kernel, padded to whole tiles of the one-row shape ``tile`` (a static choice);
    ``projection`` a (T, U') work array.
    """
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    steps = x.shape[1]
    units = final_state.shape[1]
    padded = w.shape[1]
    keep_all = outputs.shape[1] == steps
    W = shape_width(tile)
    lanes = lane_count(W, w.itemsize)
    product(x[0], kernel, projection, W)
    for t in range(steps):  # the bias joins the projection: xw + b, as the other paths add it
        pt = projection[t]
        for u in range(units):
            pt[u] = pt[u] + bias[u]
    z = np.empty((2, padded), w.dtype)
    ring = np.zeros((2, padded), w.dtype)
    for u in range(units):
        ring[0, u] = initial_state[0, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        row = 1 - s % 2
        for u in range(0, padded, 4 * lanes):
            _finish_vectors(row_partials(w, ring, 1 - row, u, W), projection, t, ring, row, z, u,
                            act, W)
        _finish_scalars(z, projection, t, ring, row, units, act)
        if keep_all:
            out, new = outputs[0, s], ring[row]
            for u in range(units):
                out[u] = new[u]
    last = ring[steps % 2]
    for u in range(units):
        final_state[0, u] = last[u]
        if not keep_all:
            outputs[0, 0, u] = last[u]


@njit(**_FLAGS)
def two_rows(seq, w, kernel, projection, act, tile):
    """The forward call of two batch rows without a mask or recurrent dropout, as
    :func:`one_row` does one: the input projection of both rows for every step first, then per
    step both states' products with the recurrent kernel by
    :func:`.products.row_pair_partials` (partial sums over ``k``; each load of the weights feeds
    both rows), the activation, and the new states in a two-slot ring (rows ``2 * slot + r``),
    copied to the outputs off the chain of steps.

    ``seq.x`` (2, T, F), T >= 1, with any input dropout applied; ``w`` and ``kernel`` padded to
    whole tiles of the one-row shape ``tile``; ``projection`` a (2 T, U') work array.
    """
    x, bias, initial_state, _, _, _, go_backwards, outputs, final_state = seq
    steps, features = x.shape[1], x.shape[2]
    units = final_state.shape[1]
    padded = w.shape[1]
    keep_all = outputs.shape[1] == steps
    W = shape_width(tile)
    lanes = lane_count(W, w.itemsize)
    product(x.reshape((2 * steps, features)), kernel, projection, W)
    for t in range(2 * steps):
        pt = projection[t]
        for u in range(units):
            pt[u] = pt[u] + bias[u]
    z = np.empty((4, padded), w.dtype)
    ring = np.zeros((4, padded), w.dtype)
    for r in range(2):
        for u in range(units):
            ring[r, u] = initial_state[r, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        row = 2 - 2 * (s % 2)  # the new states' slot; the previous ones are in the other
        for u in range(0, padded, 4 * lanes):
            first, second = row_pair_partials(w, ring, 2 - row, u, W)
            _finish_vectors(first, projection, t, ring, row, z, u, act, W)
            _finish_vectors(second, projection, steps + t, ring, row + 1, z, u, act, W)
        _finish_scalars(z, projection, t, ring, row, units, act)
        _finish_scalars(z, projection, steps + t, ring, row + 1, units, act)
        if keep_all:
            for r in range(2):
                out, new = outputs[r, s], ring[row + r]
                for u in range(units):
                    out[u] = new[u]
    last = 2 * (steps % 2)
    for r in range(2):
        for u in range(units):
            final_state[r, u] = ring[last + r, u]
            if not keep_all:
                outputs[r, 0, u] = ring[last + r, u]


@njit(**_FLAGS)
def backward(g, recurrent_t, act, tile, run, runs):
    """Run ``run`` of ``runs`` of row pairs of a backward pass (``g``, a
    :func:`.bundles.gradients`) through every step, last first: ``dz_t`` per row
    (:func:`.rowsteps.row_dz`), then ``dz_t @ U.T`` as a tiled product with ``recurrent_t``, the
    transposed recurrent kernel padded to whole tiles (U, U'), and ``dh`` from it times the
    recurrent dropout mask on the rows whose step was unmasked."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards,
     previous, dh, dz) = g
    lo, hi = row_pairs(outputs.shape[0], run, runs)
    steps, units = outputs.shape[1], outputs.shape[2]
    rows = hi - lo
    step_rows = tile_rows(tile)
    operand = np.zeros((-(-rows // step_rows) * step_rows, units), outputs.dtype)
    product_ = np.empty((operand.shape[0], recurrent_t.shape[1]), outputs.dtype)
    first = np.empty(rows, np.int64)
    live = np.empty(rows, np.bool_)
    for r in range(rows):
        previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, lo + r,
                        previous)
        first[r] = first_unmasked(mask, lo + r, steps, go_backwards)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for r in range(rows):
            b = lo + r
            live[r] = row_dz(outputs, d_outputs, preactivations, dz, dh, mask, b, s, t, first[r], act)
            source, target = dz[b, t], operand[r]
            for u in range(units):  # a loop: a slice assignment measures 4x slower
                target[u] = source[u]
        tiled_product(recurrent_t, operand, product_, tile)
        for r in range(rows):
            if live[r]:
                row, p = dh[lo + r], product_[r]
                for k in range(units):
                    row[k] = times(p[k], recurrent_dropout, lo + r, k)
