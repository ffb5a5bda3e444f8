"""The CUDA backward pass: the recurrence of the call's :class:`.plan.Plan`, then GEMMs.

The recurrence gives ``dz`` (B * T, U), the gradient at every pre-activation (rows in input time
order), and the initial state's gradient; ``dX``, ``dW`` and ``dU`` are then GEMMs over all
``B * T`` rows (:mod:`.gemm`) and ``db`` a column sum. Outside the ``registers`` plan, whose
kernels take the activation's derivative from the outputs, the derivative comes from the
pre-activations (two GEMMs).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..device_arrays import is_device_array
from . import per_step, persistent, rows, sequence
from .forward_pass import activation_code, first_unmasked
from .gemm import gemm
from .last_call import record
from .launch import check_dtypes, copy, grid_stride, host_or_device, placeholders, pointer, to_device
from .plan import Plan, backward_plan
from .step import DOUT_LAST, DOUT_SEQUENCE, NO_DOUT

GRADIENT_NAMES = ("inputs", "initial_state", "kernel", "recurrent_kernel", "bias")


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """Backpropagation through time on the GPU (the contract of :mod:`simplernn_numba.kernels`).

    The returned gradients are device arrays exactly when ``x`` is one.
    """
    act = activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    none = placeholders(dtype)
    check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                 initial_state=initial_state, outputs=outputs, d_outputs=d_outputs, d_state=d_state,
                 mask=mask, input_dropout=input_dropout, recurrent_dropout=recurrent_dropout)
    kernel, recurrent_kernel, bias, initial_state, outputs = map(
        to_device, (kernel, recurrent_kernel, bias, initial_state, outputs))
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    rows_total = batch * steps
    x_flat = x.reshape(rows_total, features)
    h_prev = cuda.device_array((rows_total, units), dtype)
    if batch:
        grid_stride(sequence.previous_states_kernel(dtype), batch * units, outputs.reshape(rows_total, units),
                    initial_state, none.mask if mask is None else mask, mask is not None, bool(go_backwards),
                    h_prev)
    if d_outputs is None:
        dout, dout_mode = none.matrix, NO_DOUT
    else:
        dout = to_device(d_outputs)
        dout_mode = DOUT_SEQUENCE if dout.ndim == 3 else DOUT_LAST
        dout = dout.reshape(rows_total, units) if dout.ndim == 3 else dout
    plan = backward_plan(batch, steps, features, units, dtype, act, dout_mode, masked=mask is not None,
                         recurrent_dropout=recurrent_dropout is not None)
    record(plan)
    if plan.path == "registers":
        dz, d_initial = _registers(plan.launch, outputs, None if d_outputs is None else dout,
                                   to_device(d_state), recurrent_kernel, mask, recurrent_dropout,
                                   bool(go_backwards))
    else:
        dz, d_initial = _recurrence(plan, batch, steps, x_flat, kernel, bias, recurrent_kernel, h_prev,
                                    dout, dout_mode, d_state, mask, input_dropout, recurrent_dropout,
                                    go_backwards, act)
    grads = dict.fromkeys(GRADIENT_NAMES)
    grads["inputs"] = cuda.device_array((rows_total, features), dtype)
    grads["initial_state"] = d_initial
    grads["kernel"] = cuda.device_array((features, units), dtype)
    grads["recurrent_kernel"] = cuda.device_array((units, units), dtype)
    gemm(dz, kernel, grads["inputs"], b_trans=True, c_scale=input_dropout, steps=steps)
    gemm(x_flat, dz, grads["kernel"], a_trans=True, a_scale=input_dropout, steps=steps)
    gemm(h_prev, dz, grads["recurrent_kernel"], a_trans=True, a_scale=recurrent_dropout, steps=steps)
    if bias is not None:
        grads["bias"] = cuda.device_array(units, dtype)
        grid_stride(sequence.column_sum_kernel(dtype), units, dz, grads["bias"])
    grads["inputs"] = grads["inputs"].reshape(batch, steps, features)
    return dict(zip(GRADIENT_NAMES, host_or_device(tuple(grads.values()), on_device)))


def _recurrence(plan: Plan, batch, steps, x_flat, kernel, bias, recurrent_kernel, h_prev, dout, dout_mode,
                d_state, mask, input_dropout, recurrent_dropout, go_backwards, act):
    """The rows, persistent or per-step backward recurrence: (``dz`` (B * T, U), the initial state's
    gradient (B, U)). The activation's derivative comes from the pre-activations (two GEMMs)."""
    rows_total, units = h_prev.shape
    dtype = np.dtype(h_prev.dtype)
    dz = cuda.device_array((rows_total, units), dtype)
    if plan.path == "empty":
        return dz, cuda.device_array((batch, units), dtype)
    none = placeholders(dtype)
    grad = cuda.device_array((rows_total, units), dtype)
    gemm(x_flat, kernel, grad, a_scale=input_dropout, steps=steps, bias=bias)
    gemm(h_prev, recurrent_kernel, grad, a_scale=recurrent_dropout, steps=steps, accumulate=True)
    grid_stride(sequence.derivative_kernel(dtype), rows_total * units, grad, act)
    needs_first = mask is not None or plan.path != "rows"
    first = first_unmasked(mask, batch, go_backwards) if needs_first else none.first
    params = (grad, dout, dout_mode, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards))
    u_flat = recurrent_kernel.reshape(units * units)
    if plan.path == "rows":  # reads d_state in place (the placeholder: zeros)
        launch = plan.launch
        initial = cuda.device_array((batch, units), dtype)
        rows.backward_kernel(dtype)[launch.blocks, launch.threads, 0, launch.shared_bytes](
            params, u_flat, none.matrix if d_state is None else to_device(d_state), initial, dz, launch.rows)
        return dz, initial
    dh_a = cuda.to_device(np.zeros((batch, units), dtype)) if d_state is None else copy(to_device(d_state))
    dh_b = cuda.device_array((batch, units), dtype)
    if plan.path == "persistent":
        persistent.launch(persistent.backward_kernel(dtype), plan.launch, params, u_flat, dh_a, dh_b, dz)
    else:
        step = per_step.step_kernel("backward", dtype, plan.launch.tiled, batch, units)
        for j in range(steps):
            dh_cur, dh_next = (dh_a, dh_b) if j % 2 == 0 else (dh_b, dh_a)
            step(params, u_flat, dh_cur, dh_next, dz, steps - 1 - j)
    return dz, dh_b if steps % 2 == 1 else dh_a


def _registers(launch, outputs, d_outputs, d_state, recurrent_kernel, mask, recurrent_dropout,
               go_backwards: bool):
    """Run a register-resident backward ``launch`` (:class:`.plan.RegistersPlan`): ``dz`` (B * T, U)
    and the initial state's gradient (B, U), as device arrays."""
    batch, steps, units = outputs.shape
    dtype = np.dtype(outputs.dtype)
    block = cuda.device_array((batch * steps + batch) * units, dtype)
    dz, dh0 = block[:batch * steps * units], block[batch * steps * units:]
    launch.launch(pointer(d_outputs, dtype), pointer(outputs), pointer(recurrent_kernel),
                  pointer(d_state, dtype), pointer(recurrent_dropout, dtype),
                  pointer(mask, np.dtype(np.bool_)), pointer(dz), pointer(dh0), batch, steps, units,
                  int(go_backwards), int(d_state is not None))
    return dz.reshape(batch * steps, units), dh0.reshape(batch, units)
