"""The lanes path: few units (``config.LANES_MAX_UNITS``), the batch rows as vector lanes.

A row's products over 16 units or fewer are too short to vectorise, so the state is kept
transposed, (U, rows): every multiply-add, the bias and the activation run along the batch.
Each kernel runs the batch rows ``lo:hi`` through every step (a row's result does not depend on
the other rows, so splitting a batch into runs, :mod:`.threads`, does not change any bit).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activation import activation, slope
from .rowsteps import first_unmasked, last_outputs, previous_states
from .specialise import absent, row_or, skipped, times

_FLAGS = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")


@njit(**_FLAGS)
def forward(seq, w, act, lo, hi):
    """Rows ``lo:hi`` of a forward call (``seq``, a :class:`.bundles.Sequence`) through every
    step; ``w`` is ``[kernel; recurrent_kernel]`` (F + U, U), ``act`` the activation
    (:func:`.activation.choose`)."""
    x, outputs = seq.x, seq.outputs
    steps, features = x.shape[1], x.shape[2]
    width, units = w.shape
    rows = hi - lo
    keep_all = outputs.shape[1] == steps
    v = np.empty((width, rows), x.dtype)  # [x_t; h_{t-1}] (dropout applied), transposed
    z = np.empty((units, rows), x.dtype)
    h = np.empty((units, rows), x.dtype)
    seen = np.empty(rows, np.bool_)
    for r in range(rows):
        seen[r] = absent(seq.mask)  # without a mask every row is seen from the first step
        for u in range(units):
            h[u, r] = seq.initial_state[lo + r, u]
    for s in range(steps):
        t = steps - 1 - s if seq.go_backwards else s
        for f in range(features):
            for r in range(rows):
                v[f, r] = times(x[lo + r, t, f], seq.input_dropout, lo + r, f)
        for k in range(units):
            for r in range(rows):
                v[features + k, r] = times(h[k, r], seq.recurrent_dropout, lo + r, k)
        for u in range(units):
            zu = z[u]
            bias = seq.bias[u]
            for r in range(rows):
                zu[r] = bias
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
        flat = z.reshape(units * rows)
        for i in range(flat.shape[0]):
            flat[i] = activation(flat[i], act)
        if absent(seq.mask):
            h, z = z, h  # every row takes its new state
        else:
            for r in range(rows):
                if not skipped(seq.mask, lo + r, t):
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
            seq.final_state[lo + r, u] = h[u, r]
    if not keep_all:
        last_outputs(outputs, seq.final_state, seen, lo, hi)


@njit(**_FLAGS)
def backward(g, recurrent_kernel, act, lo, hi):
    """Rows ``lo:hi`` of a backward pass (``g``, a :class:`.bundles.Gradients`) through every
    step, last first: ``dz_t = (dh + d_outputs_t) * act'``, ``dh = (dz_t @ U.T) * dropout``,
    with ``dz_t @ U.T`` along the batch. ``recurrent_kernel`` (U, U)."""
    outputs = g.outputs
    steps, units = outputs.shape[1], outputs.shape[2]
    rows = hi - lo
    dh_t = np.empty((units, rows), outputs.dtype)
    dz_t = np.empty((units, rows), outputs.dtype)
    product = np.empty((units, rows), outputs.dtype)
    first = np.empty(rows, np.int64)
    live = np.empty(rows, np.bool_)
    for r in range(rows):
        b = lo + r
        previous_states(g, b, g.previous)
        first[r] = first_unmasked(g.mask, b, steps, g.go_backwards)
        for u in range(units):
            dh_t[u, r] = g.dh[b, u]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if g.go_backwards else s
        for r in range(rows):
            b = lo + r
            live[r] = not skipped(g.mask, b, t)
            if s >= first[r]:
                if g.d_outputs.shape[1] == steps:
                    for u in range(units):
                        dh_t[u, r] += g.d_outputs[b, s, u]
                elif g.d_outputs.shape[1] == 1 and s == steps - 1:
                    for u in range(units):
                        dh_t[u, r] += g.d_outputs[b, 0, u]
            h = outputs[b, s]
            z = row_or(g.preactivations, b, t, h)  # read only by activations that need it
            for u in range(units):
                gu = dh_t[u, r] * slope(h[u], z[u], act) if live[r] else 0.0
                dz_t[u, r] = gu
                g.dz[b, t, u] = gu
        for k in range(units):
            pk = product[k]
            for r in range(rows):
                pk[r] = 0
            for u in range(units):
                w, gu = recurrent_kernel[k, u], dz_t[u]
                for r in range(rows):
                    pk[r] += w * gu[r]
        for r in range(rows):
            if live[r]:
                for k in range(units):
                    dh_t[k, r] = times(product[k, r], g.recurrent_dropout, lo + r, k)
    for r in range(rows):
        for u in range(units):
            g.dh[lo + r, u] = dh_t[u, r]

