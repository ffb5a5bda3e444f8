"""The rows path: runs of batch rows through every step, each step a register-tiled product.

Each step multiplies the run's rows by weights that stay in cache, by tiles of rows by vectors
of units whose partial sums stay in vector registers (:func:`.products.tiled_product`, tile
shape ``tile``, a static choice). Fused (``kernel`` None): ``w`` is ``[kernel;
recurrent_kernel]`` and each step's operand is ``[x_t, h_{t-1}]``. Projected: the run first
computes its rows' input projection for every step in one product (:func:`.products.product`,
on the run's own thread) and each step multiplies ``h_{t-1}`` by the recurrent kernel alone.
The weights are padded with zero columns to whole tiles (U' columns). One or two batch rows
without a mask or recurrent dropout have kernels of their own (:func:`one_row`,
:func:`two_rows`; each step's input product in the step with weights in L1, see
:func:`_step_inputs`): the state's product is split into partial sums over ``k``
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
from .products import (
    TILE_SHAPES,
    product,
    row_pair_partials,
    row_partials,
    row_product,
    shape_vectors,
    shape_width,
    tiled_product,
)
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


def _inputs(x, kernel, projection, bias, W):
    """The inputs' share of the pre-activations of :func:`one_row` and :func:`two_rows`, for
    :func:`_step_inputs`: with a work array ``projection`` (at least rows * T, U'), the input
    projection of every step first (one product) plus the bias, into it; without one (None), the
    bias padded to U' as (1, U'): each step computes ``x_t @ kernel`` itself."""


@overload(_inputs, inline="always", jit_options=options.OVERLOAD_CACHED)
def _inputs_impl(x, kernel, projection, bias, W):
    if projection is None or isinstance(projection, types.NoneType):
        def padded_bias(x, kernel, projection, bias, W):
            row = np.zeros((1, kernel.shape[1]), kernel.dtype)
            for u in range(bias.shape[0]):
                row[0, u] = bias[u]
            return row
        return padded_bias

    def project(x, kernel, projection, bias, W):
        rows, steps, features = x.shape
        product(x.reshape((rows * steps, features)), kernel, projection, W)
        for i in range(rows * steps):  # the bias joins the projection: xw + b, as the other paths
            pi = projection[i]
            for u in range(bias.shape[0]):
                pi[u] = pi[u] + bias[u]
        return projection
    return project


def _step_inputs(xs, kernel, projection, xw, i, u, tile):
    """``xs[i] @ kernel[:, u:u + V * lanes] + bias`` as the ``V`` vectors of the one-row shape
    ``tile``, ``xs`` the inputs as (rows * T, F) and ``xw`` from :func:`_inputs`: computed here
    (:func:`.products.row_product`, the bits of the projection's product) without a
    ``projection``, else loaded from ``xw[i]``. Each step's own product is off the chain of
    dependent steps: called before the step's product with the state, its FMAs come first in
    program order and fill the slots left idle while the previous step's activation runs
    (1,2000,8,32 float32: 35.5 -> 31 ns a step; after the state's product, 35.5)."""


@overload(_step_inputs, inline="always", jit_options=options.OVERLOAD_CACHED)
def _step_inputs_impl(xs, kernel, projection, xw, i, u, tile):
    in_step = projection is None or isinstance(projection, types.NoneType)
    if TILE_SHAPES[value_of(tile)][1] == 2:
        if in_step:
            def two_in_step(xs, kernel, projection, xw, i, u, tile):
                W = shape_width(tile)
                p0, p1 = row_product(kernel, xs, i, u, tile)
                return vadd(p0, vload(xw, 0, u, W)), vadd(p1, vload_at(xw, 0, u, 1, W))
            return two_in_step

        def two(xs, kernel, projection, xw, i, u, tile):
            W = shape_width(tile)
            return vload(xw, i, u, W), vload_at(xw, i, u, 1, W)
        return two
    if in_step:
        def four_in_step(xs, kernel, projection, xw, i, u, tile):
            W = shape_width(tile)
            p0, p1, p2, p3 = row_product(kernel, xs, i, u, tile)
            return (vadd(p0, vload(xw, 0, u, W)), vadd(p1, vload_at(xw, 0, u, 1, W)),
                    vadd(p2, vload_at(xw, 0, u, 2, W)), vadd(p3, vload_at(xw, 0, u, 3, W)))
        return four_in_step

    def four(xs, kernel, projection, xw, i, u, tile):
        W = shape_width(tile)
        return (vload(xw, i, u, W), vload_at(xw, i, u, 1, W), vload_at(xw, i, u, 2, W),
                vload_at(xw, i, u, 3, W))
    return four


def _finish_vectors(sums, inputs, ring, row, z, u, act):
    """The pre-activations ``sums + inputs`` (tuples of two or four vectors) of units
    ``u:u + V * lanes`` of a row of :func:`one_row` or :func:`two_rows`: float32 tanh activates
    them in registers (:func:`.tanh.tanh_f32_vector`, the scalar function's bits) into
    ``ring[row]``; other activations and float64 leave them in ``z[row]`` for
    :func:`_finish_scalars`."""


@overload(_finish_vectors, inline="always", jit_options=options.OVERLOAD_CACHED)
def _finish_vectors_impl(sums, inputs, ring, row, z, u, act):
    lanes = sums[0].lanes
    tanh = value_of(act) == activations.TANH and ring.dtype == types.float32
    if len(sums) == 2:
        if tanh:
            def two_tanh(sums, inputs, ring, row, z, u, act):
                vstore(ring, row, u, tanh_f32_vector(vadd(sums[0], inputs[0])))
                vstore(ring, row, u + lanes, tanh_f32_vector(vadd(sums[1], inputs[1])))
            return two_tanh

        def two(sums, inputs, ring, row, z, u, act):
            vstore(z, row, u, vadd(sums[0], inputs[0]))
            vstore(z, row, u + lanes, vadd(sums[1], inputs[1]))
        return two
    if tanh:
        def four_tanh(sums, inputs, ring, row, z, u, act):
            vstore(ring, row, u, tanh_f32_vector(vadd(sums[0], inputs[0])))
            vstore(ring, row, u + lanes, tanh_f32_vector(vadd(sums[1], inputs[1])))
            vstore(ring, row, u + 2 * lanes, tanh_f32_vector(vadd(sums[2], inputs[2])))
            vstore(ring, row, u + 3 * lanes, tanh_f32_vector(vadd(sums[3], inputs[3])))
        return four_tanh

    def four(sums, inputs, ring, row, z, u, act):
        vstore(z, row, u, vadd(sums[0], inputs[0]))
        vstore(z, row, u + lanes, vadd(sums[1], inputs[1]))
        vstore(z, row, u + 2 * lanes, vadd(sums[2], inputs[2]))
        vstore(z, row, u + 3 * lanes, vadd(sums[3], inputs[3]))
    return four


def _finish_scalars(z, ring, row, units, act):
    """``ring[row, u] = act(z[row, u])`` for the activations :func:`_finish_vectors` leaves in
    ``z`` (nothing for float32 tanh)."""


@overload(_finish_scalars, inline="always", jit_options=options.OVERLOAD_CACHED)
def _finish_scalars_impl(z, ring, row, units, act):
    if value_of(act) == activations.TANH and ring.dtype == types.float32:
        return lambda z, ring, row, units, act: None

    def finish(z, ring, row, units, act):
        for u in range(units):
            ring[row, u] = activation(z[row, u], act)
    return finish


@njit(**_FLAGS)
def one_row(seq, w, kernel, projection, act, tile):
    """The forward call of one batch row without a mask or recurrent dropout: per step the
    state's product with the recurrent kernel by :func:`.products.row_partials` plus the inputs'
    (:func:`_step_inputs`: computed in the step, or with a ``projection`` work array all first, in
    one product; the same bits), its activation (float32 tanh in vector registers), and the new
    state in a two-slot ring, copied to its output slot off the chain of dependent steps.

    ``seq.x`` (1, T, F), T >= 1, with any input dropout applied; ``w`` the recurrent kernel and
    ``kernel`` the kernel, padded to whole tiles of the one-row shape ``tile`` (a static choice);
    ``projection`` a (T, U') work array, or None.
    """
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    steps, features = x.shape[1], x.shape[2]
    units = final_state.shape[1]
    padded = w.shape[1]
    keep_all = outputs.shape[1] == steps
    W = shape_width(tile)
    step = shape_vectors(tile) * lane_count(W, w.itemsize)
    xs = x.reshape((steps, features))
    xw = _inputs(x, kernel, projection, bias, W)
    z = np.empty((2, padded), w.dtype)
    ring = np.zeros((2, padded), w.dtype)
    for u in range(units):
        ring[0, u] = initial_state[0, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        row = 1 - s % 2
        for u in range(0, padded, step):
            inputs = _step_inputs(xs, kernel, projection, xw, t, u, tile)  # first: see there
            _finish_vectors(row_partials(w, ring, 1 - row, u, tile), inputs, ring, row, z, u, act)
        _finish_scalars(z, ring, row, units, act)
        if keep_all:  # by indices: views of the rows would cost two reference counts a step
            for u in range(units):
                outputs[0, s, u] = ring[row, u]
    last = ring[steps % 2]
    for u in range(units):
        final_state[0, u] = last[u]
        if not keep_all:
            outputs[0, 0, u] = last[u]


@njit(**_FLAGS)
def two_rows(seq, w, kernel, projection, act, tile):
    """The forward call of two batch rows without a mask or recurrent dropout, as
    :func:`one_row` does one: per step both states' products with the recurrent kernel by
    :func:`.products.row_pair_partials` (partial sums over ``k``; each load of the weights feeds
    both rows) plus the inputs' (:func:`_step_inputs`), the activation, and the new states in a
    two-slot ring (rows ``2 * slot + r``), copied to the outputs off the chain of steps.

    ``seq.x`` (2, T, F), T >= 1, with any input dropout applied; ``w`` and ``kernel`` padded to
    whole tiles of the one-row shape ``tile``; ``projection`` a (2 T, U') work array, or None.
    """
    x, bias, initial_state, _, _, _, go_backwards, outputs, final_state = seq
    steps, features = x.shape[1], x.shape[2]
    units = final_state.shape[1]
    padded = w.shape[1]
    keep_all = outputs.shape[1] == steps
    W = shape_width(tile)
    step = shape_vectors(tile) * lane_count(W, w.itemsize)
    xs = x.reshape((2 * steps, features))
    xw = _inputs(x, kernel, projection, bias, W)
    z = np.empty((4, padded), w.dtype)
    ring = np.zeros((4, padded), w.dtype)
    for r in range(2):
        for u in range(units):
            ring[r, u] = initial_state[r, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        row = 2 - 2 * (s % 2)  # the new states' slot; the previous ones are in the other
        for u in range(0, padded, step):
            inputs = _step_inputs(xs, kernel, projection, xw, t, u, tile)
            inputs2 = _step_inputs(xs, kernel, projection, xw, steps + t, u, tile)
            first, second = row_pair_partials(w, ring, 2 - row, u, tile)
            _finish_vectors(first, inputs, ring, row, z, u, act)
            _finish_vectors(second, inputs2, ring, row + 1, z, u, act)
        _finish_scalars(z, ring, row, units, act)
        _finish_scalars(z, ring, row + 1, units, act)
        if keep_all:  # by indices, as in one_row
            for r in range(2):
                for u in range(units):
                    outputs[r, s, u] = ring[row + r, u]
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
