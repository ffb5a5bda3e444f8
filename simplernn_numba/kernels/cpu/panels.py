"""The panels path: large recurrent kernels (or many units) without a mask or recurrent dropout.

The weights are packed once into column panels (``"panels"`` layout, :mod:`.weights`), so each
tile reads its weights contiguously (rows of a wide weight matrix, 2 KB apart at 512 float32
units, fall into a few L1 sets and evict each other), and each step's operand, the rows' states,
is packed by quads of rows, (U, 4) each. The batch is cut into runs of quads of rows, several
a thread (:mod:`.plan`), and each run goes through every step: its input projection, then per
step ``h @ recurrent_kernel``, both by tiles of four rows by :data:`..config.PANEL_VECTORS`
vectors over the packed rows (:func:`.panel_products.packed_product`), then bias and activation. No
BLAS: OpenBLAS's threads keep spinning after a call and would take the cores the recurrence runs
on. The backward pass runs the same way on panels of the transposed recurrent kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..config import PANEL_ROW_BLOCK
from . import options
from .activation import activation
from .launch import row_quads
from .panel_products import pack_rows, packed_product
from .rowsteps import step_dz

_FLAGS = options.THREADED


@njit(inline="always", **_FLAGS)
def _pack_quads(source, t, lo, rows, packed):
    """``packed[q, u, i] = source[lo + 4 * q + i, t, u]`` for the rows ``lo:lo + rows`` of
    ``source`` (B, T, U): quads of rows as (U, 4), the operand of :func:`.panel_products.packed_product`
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


@njit(**_FLAGS)
def forward(seq, wp, count, act, xw, copy_out, run, runs):
    """Run ``run`` of ``runs`` of quads of rows of a forward call (``seq``, a
    :func:`.bundles.sequence` with no mask and no recurrent dropout, any input dropout applied
    to ``seq.x``) through every step.

    ``wp``: the ``count`` panels of the kernel, then of the recurrent kernel. The input
    projection goes into ``xw`` (B, T, U), and each step's output is written over its projection
    there (``xw`` may be ``seq.outputs`` itself); with ``copy_out`` it is also copied to
    ``seq.outputs[:, s]``.
    """
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    lo, hi = row_quads(x.shape[0], run, runs)
    steps, features = x.shape[1], x.shape[2]
    units, width = xw.shape[2], wp.shape[1]
    rows = hi - lo
    quads = (rows + 3) // 4
    z = np.empty((max(4 * quads, PANEL_ROW_BLOCK), count * width), x.dtype)
    inputs = x[lo:hi].reshape((rows * steps, features))
    projected = xw[lo:hi].reshape((rows * steps, units))
    block = np.empty((PANEL_ROW_BLOCK // 4, features, 4), x.dtype)
    for m0 in range(0, rows * steps, PANEL_ROW_BLOCK):  # the input projection, by blocks of rows
        m1 = min(m0 + PANEL_ROW_BLOCK, rows * steps)
        pack_rows(inputs, m0, m1, block)
        packed_product(block, (m1 - m0 + 3) // 4, wp[:count * features], count, z)
        for i in range(m1 - m0):
            for u in range(units):
                projected[m0 + i, u] = z[i, u]
    recurrent = wp[count * features:]
    h = np.zeros((2, quads, units, 4), x.dtype)
    for i in range(rows):
        for u in range(units):
            h[0, i // 4, u, i % 4] = initial_state[lo + i, u]
    t = 0
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        packed_product(h[s % 2], quads, recurrent, count, z)
        for i in range(rows):
            zb, xb = z[i], xw[lo + i, t]
            for u in range(units):
                xb[u] = activation(zb[u] + (xb[u] + bias[u]), act)
            if copy_out:
                out = outputs[lo + i, s]
                for u in range(units):
                    out[u] = xb[u]
        _pack_quads(xw, t, lo, rows, h[1 - s % 2])
    for i in range(rows):
        last = xw[lo + i, t]
        for u in range(units):
            final_state[lo + i, u] = last[u]
            if outputs.shape[1] != steps:
                outputs[lo + i, 0, u] = last[u]


@njit(**_FLAGS)
def backward(g, wp, count, act, run, runs):
    """Run ``run`` of ``runs`` of quads of rows of a backward pass (``g``, a
    :func:`.bundles.gradients` without a mask, recurrent dropout or pre-activations) through
    every step, last first:
    ``dz[:, t] = (dh + d_outputs of step s) * act'(outputs[:, s])``, packed by quads of rows,
    then ``dh = dz[:, t] @ U.T`` over ``wp``, the ``count`` panels of ``U.T``."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    lo, hi = row_quads(dh.shape[0], run, runs)
    steps, units = dz.shape[1], dz.shape[2]
    rows = hi - lo
    quads = (rows + 3) // 4
    packed = np.zeros((quads, units, 4), dz.dtype)
    z = np.empty((4 * quads, count * wp.shape[1]), dz.dtype)
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for i in range(rows):
            step_dz(outputs, d_outputs, None, dz, dh, lo + i, s, t, True, act)
        _pack_quads(dz, t, lo, rows, packed)
        packed_product(packed, quads, wp, count, z)
        for i in range(rows):
            row, zi = dh[lo + i], z[i]
            for u in range(units):
                row[u] = zi[u]

