"""The lanes path: few units (``config.LANES_MAX_UNITS``), the batch rows as vector lanes.

A row's products over 16 units or fewer are too short to vectorise, so the state is kept
transposed, (U, rows): every multiply-add, the bias and the activation run along the batch.
Each kernel runs one run of batch rows through every step (a row's result does not depend on
the other rows, so cutting a batch into runs over the threads, :mod:`.launch`, changes no bit).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import options
from .activation import activation, slope
from .launch import row_pairs
from .rowsteps import first_unmasked, last_outputs, previous_states
from .specialise import absent, row_or, skipped, times

_FLAGS = options.THREADED


@njit(**_FLAGS)
def forward(seq, w, act, run, runs):
    """Run ``run`` of ``runs`` of row pairs of a forward call (``seq``, a
    :func:`.bundles.sequence`) through every step; ``w`` is ``[kernel; recurrent_kernel]``
    (F + U, U), ``act`` the activation (:func:`.activation.choose`)."""
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    lo, hi = row_pairs(x.shape[0], run, runs)
    steps, features = x.shape[1], x.shape[2]
    width, units = w.shape
    rows = hi - lo
    keep_all = outputs.shape[1] == steps
    v = np.empty((width, rows), x.dtype)  # [x_t; h_{t-1}] (dropout applied), transposed
    z = np.empty((units, rows), x.dtype)
    h = np.empty((units, rows), x.dtype)
    seen = np.empty(rows, np.bool_)
    for r in range(rows):
        seen[r] = absent(mask)  # without a mask every row is seen from the first step
        for u in range(units):
            h[u, r] = initial_state[lo + r, u]
    for s in range(steps):
        t = steps - 1 - s if go_backwards else s
        for f in range(features):
            for r in range(rows):
                v[f, r] = times(x[lo + r, t, f], input_dropout, lo + r, f)
        for k in range(units):
            for r in range(rows):
                v[features + k, r] = times(h[k, r], recurrent_dropout, lo + r, k)
        for u in range(units):
            zu = z[u]
            bias_u = bias[u]
            for r in range(rows):
                zu[r] = bias_u
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
        if absent(mask):
            h, z = z, h  # every row takes its new state
        else:
            for r in range(rows):
                if not skipped(mask, lo + r, t):
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
        last_outputs(outputs, final_state, seen, lo, hi)


@njit(**_FLAGS)
def backward(g, recurrent_kernel, act, run, runs):
    """Run ``run`` of ``runs`` of row pairs of a backward pass (``g``, a
    :func:`.bundles.gradients`) through every step, last first: ``dz_t = (dh + d_outputs_t) *
    act'``, ``dh = (dz_t @ U.T) * dropout``, with ``dz_t @ U.T`` along the batch.
    ``recurrent_kernel`` (U, U)."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards,
     previous, dh, dz) = g
    lo, hi = row_pairs(outputs.shape[0], run, runs)
    steps, units = outputs.shape[1], outputs.shape[2]
    rows = hi - lo
    dh_t = np.empty((units, rows), outputs.dtype)
    dz_t = np.empty((units, rows), outputs.dtype)
    product = np.empty((units, rows), outputs.dtype)
    first = np.empty(rows, np.int64)
    live = np.empty(rows, np.bool_)
    for r in range(rows):
        b = lo + r
        previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous)
        first[r] = first_unmasked(mask, b, steps, go_backwards)
        for u in range(units):
            dh_t[u, r] = dh[b, u]
    for s in range(steps - 1, -1, -1):
        t = steps - 1 - s if go_backwards else s
        for r in range(rows):
            b = lo + r
            live[r] = not skipped(mask, b, t)
            if s >= first[r]:
                if d_outputs.shape[1] == steps:
                    for u in range(units):
                        dh_t[u, r] += d_outputs[b, s, u]
                elif d_outputs.shape[1] == 1 and s == steps - 1:
                    for u in range(units):
                        dh_t[u, r] += d_outputs[b, 0, u]
            h = outputs[b, s]
            z = row_or(preactivations, b, t, h)  # read only by activations that need it
            for u in range(units):
                gu = dh_t[u, r] * slope(h[u], z[u], act) if live[r] else 0.0
                dz_t[u, r] = gu
                dz[b, t, u] = gu
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
                    dh_t[k, r] = times(product[k, r], recurrent_dropout, lo + r, k)
    for r in range(rows):
        for u in range(units):
            dh[lo + r, u] = dh_t[u, r]
