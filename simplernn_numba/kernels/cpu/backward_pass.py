"""The CPU backward pass (BPTT): pick the plan (:mod:`.plan`), run the recurrence, then the
weight and input gradients as large products after the loop.

Only ``dh_{t-1} = (dz_t @ recurrent_kernel.T) * recurrent_dropout`` is sequential; the weight
and input gradients are products over all timesteps after it: Numba-parallel tiled products
(:func:`.gradient_products.gradient_products`) where the recurrence ran on runs of rows with the weights
in L2 and the products are large enough for OpenBLAS to use its threads
(``config.BLAS_SERIAL_MACS``: they would keep spinning on the cores the next call's parallel
kernels need), BLAS otherwise. Work arrays (``dz``, previous states, pre-activations)
are in input time order, so the products need no reordering; ``outputs`` and ``d_outputs`` are
in processing order.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from ... import activations
from .. import config
from . import gemm, lanes, options, panels, rows, workspace
from .activation import NEEDS_PREACTIVATION
from .bundles import gradients
from .forward_pass import input_projection
from .gradient_products import gradient_products
from .last_call import about_to_run
from .launch import run_all
from .panel_products import panel_width
from .plan import backward_plan
from .products import padded_units
from .rowsteps import previous_states
from .specialise import static
from .weights import prepared_weights


@njit(**options.SERIAL)
def _previous_states(g, previous):
    """:func:`.rowsteps.previous_states` for every batch row, on the calling thread."""
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards,
     bundled_previous, dh, dz) = g
    for b in range(previous.shape[0]):
        previous_states(outputs, initial_state, mask, recurrent_dropout, go_backwards, b, previous)


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """BPTT on the CPU (the contract of :func:`simplernn_numba.kernels.reference.backward`);
    ``activation`` must be a built-in name. Activations whose derivative is a function of the
    output (tanh, relu, sigmoid, ...) take it from ``outputs``; silu, gelu, mish and hard_silu
    recompute the pre-activations with two GEMMs first."""
    dtype = x.dtype
    batch, steps, features = x.shape
    units = kernel.shape[1]
    code = activations.code(activation)
    act = static(code)
    go_backwards = bool(go_backwards)
    if d_outputs is None:
        d_seq = np.zeros((batch, 0, units), dtype)
    else:
        d_seq = d_outputs.reshape(batch, d_outputs.shape[1] if d_outputs.ndim == 3 else 1, units)
    dh = np.zeros((batch, units), dtype) if d_state is None else np.array(d_state, dtype=dtype)
    use_preact = code in NEEDS_PREACTIVATION
    plan = backward_plan(batch, steps, units, dtype.itemsize, masked=mask is not None,
                         recurrent_dropout=recurrent_dropout is not None, preactivations=use_preact)
    about_to_run(plan, dtype, activation)
    per_row = plan.path in ("lanes", "rows")
    plain = plan.path in ("panels", "gemm_plain")
    shifted = plain and not go_backwards  # the recurrent-kernel gradient needs no previous states
    sequence = (batch, steps, units)
    prev, dz, preact = workspace.arrays(dtype, sequence, sequence,
                                        sequence if use_preact else (1, 1, 1))
    g = gradients(outputs, d_seq, preact if use_preact else None, initial_state, mask,
                  recurrent_dropout, go_backwards, prev if per_row and not use_preact else None, dh, dz)
    if batch and steps and (use_preact or not (per_row or shifted)):
        _previous_states(g, prev)
    flat_prev = prev.reshape(batch * steps, units)
    if use_preact:
        input_projection(x, kernel, input_dropout, out=preact)
        preact += (flat_prev @ recurrent_kernel).reshape(sequence)
        if bias is not None:
            preact += bias
    d_bias = None
    if batch and steps:
        d_bias = _RUN[plan.path](plan, g, kernel, recurrent_kernel, act)

    flat_dz = dz.reshape(batch * steps, units)
    x_in = x if input_dropout is None else x * input_dropout[:, None, :]
    flat_x = np.ascontiguousarray(x_in.reshape(batch * steps, features))
    if per_row and batch * steps * units * max(features, units) > config.BLAS_SERIAL_MACS:
        kernel = np.ascontiguousarray(kernel)
        work = batch * steps * (features + units) * units
        parts = numba.get_num_threads() if work >= config.BACKWARD_SERIAL_WORK else 1
        d_x, d_weights, d_bias = gradient_products(flat_x, flat_prev, flat_dz, kernel, parts)
        d_kernel, d_recurrent = d_weights[:features], d_weights[features:]
    else:
        d_x = flat_dz @ kernel.T
        d_kernel = flat_x.T @ flat_dz
        if shifted:
            d_recurrent = gemm.recurrent_gradient_in_order(outputs, initial_state, dz)
        else:
            d_recurrent = flat_prev.T @ flat_dz
        if d_bias is None:
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


def _run_lanes(plan, g, kernel, recurrent_kernel, act):
    weights = np.ascontiguousarray(recurrent_kernel)
    run_all(lanes.backward, (g, weights, act), plan.runs)


def _run_rows(plan, g, kernel, recurrent_kernel, act):
    units, itemsize = kernel.shape[1], kernel.itemsize
    weights = prepared_weights(kernel, recurrent_kernel, "recurrent_t",
                               padded_units(units, plan.tile, itemsize))
    tile = static(plan.tile)
    run_all(rows.backward, (g, weights, act, tile), plan.runs)


def _run_panels(plan, g, kernel, recurrent_kernel, act):
    width = panel_width(kernel.itemsize)
    weights = prepared_weights(kernel, recurrent_kernel, "recurrent_t_panels", width)
    run_all(panels.backward, (g, weights, -(-kernel.shape[1] // width), act), plan.runs)
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    return dz.reshape(-1, dz.shape[2]).sum(axis=0)


def _run_gemm_plain(plan, g, kernel, recurrent_kernel, act):
    return gemm.backward_plain(g, recurrent_kernel, act)


def _run_gemm(plan, g, kernel, recurrent_kernel, act):
    (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout, go_backwards, previous, dh,
     dz) = g
    first = np.zeros(dh.shape[0], np.int64)
    if mask is not None:  # each row's first unmasked processing step (T if none)
        in_order = mask[:, ::-1] if go_backwards else mask
        first = np.where(in_order.any(axis=1), in_order.argmax(axis=1), in_order.shape[1])
    gemm.backward(g, recurrent_kernel, act, first)


_RUN = {"lanes": _run_lanes, "rows": _run_rows, "panels": _run_panels,
        "gemm_plain": _run_gemm_plain, "gemm": _run_gemm}
