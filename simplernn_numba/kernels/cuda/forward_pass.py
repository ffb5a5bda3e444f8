"""The CUDA forward pass: choose the call's :class:`.plan.Plan`, then run it.

Rows of the flat ``(B * T, ...)`` work arrays are in input time order; the recurrence kernels map
processing step ``s`` to time ``t`` (``T - 1 - s`` with ``go_backwards``). Every plan but
``rows`` first runs the input projection ``x @ kernel + bias`` over all ``B * T`` rows as one
GEMM (:mod:`.gemm`; dropout applied while tiles are loaded), then the recurrence.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ... import activations
from ..device_arrays import is_device_array
from . import per_step, persistent, rows, sequence
from .gemm import gemm
from .last_call import record
from .launch import (
    check_dtypes,
    copy,
    grid_stride,
    host_or_device,
    placeholders,
    pointer,
    to_device,
    workspace,
)
from .plan import forward_plan


def activation_code(activation) -> int:
    """The integer code of a built-in activation name (TypeError for anything else)."""
    if not isinstance(activation, str):
        raise TypeError(
            "CUDA kernels need a built-in activation name; received "
            f"{activation!r}. Python callables run on device='cpu' (the NumPy reference)."
        )
    return activations.code(activation)


def first_unmasked(mask, batch: int, go_backwards: bool):
    """``first[b]``: the first processing step whose mask is True (T if none; 0 without a mask)."""
    first = cuda.device_array(batch, np.int32)
    none = placeholders(np.dtype(np.float64)).mask
    grid_stride(sequence.first_unmasked_kernel(), batch, none if mask is None else mask, mask is not None,
                bool(go_backwards), first)
    return first


def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the GPU (the contract of :mod:`simplernn_numba.kernels`).

    Arrays may be NumPy or device arrays; the results are device arrays exactly when ``x`` is one.
    """
    act = activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    out_shape = (batch, steps, units) if return_sequences else (batch, units)
    plan = forward_plan(batch, steps, features, units, dtype, act, masked=mask is not None,
                        recurrent_dropout=recurrent_dropout is not None,
                        return_sequences=bool(return_sequences))
    record(plan)
    if plan.path == "empty":
        empty = (cuda.device_array(out_shape, dtype), cuda.device_array((batch, units), dtype))
        return host_or_device(empty, on_device)
    check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                 initial_state=initial_state, mask=mask, input_dropout=input_dropout,
                 recurrent_dropout=recurrent_dropout)
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    kernel, recurrent_kernel, bias, initial_state = map(to_device, (kernel, recurrent_kernel, bias,
                                                                    initial_state))
    if plan.path == "registers":
        results = _registers(plan.launch, x, kernel, recurrent_kernel, bias, initial_state, mask,
                             input_dropout, recurrent_dropout, bool(go_backwards), bool(return_sequences))
        return host_or_device(results, on_device)
    none = placeholders(dtype)
    u_flat = recurrent_kernel.reshape(units * units)
    if plan.path == "rows":  # the projection runs inside the rows kernel
        xw = none.matrix
    else:
        xw = cuda.device_array((batch * steps, units), dtype)
        gemm(x.reshape(batch * steps, features), kernel, xw, a_scale=input_dropout, steps=steps, bias=bias)
    needs_first = mask is not None or plan.path != "rows"
    first = first_unmasked(mask, batch, go_backwards) if needs_first else none.first
    params = (xw, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards), act, bool(return_sequences))
    outputs = cuda.device_array((batch * steps, units) if return_sequences else (batch, units), dtype)
    if plan.path == "rows":
        launch = plan.launch
        final_state = cuda.device_array((batch, units), dtype)
        projection = (x.reshape(batch * steps, features), kernel.reshape(features * units),
                      none.vector if bias is None else bias, bias is not None,
                      none.matrix if input_dropout is None else input_dropout, input_dropout is not None)
        rows.forward_kernel(dtype)[launch.blocks, launch.threads, 0, launch.shared_bytes](
            params, projection, u_flat, initial_state, final_state, outputs, launch.rows,
            launch.kernel_shared, launch.lanes, launch.ld)
        return host_or_device((outputs.reshape(*out_shape), final_state), on_device)
    h_a = copy(initial_state)
    h_b = cuda.device_array((batch, units), dtype)
    if plan.path == "persistent":
        persistent.launch(persistent.forward_kernel(dtype), plan.launch, params, u_flat, h_a, h_b, outputs)
    else:
        step = per_step.step_kernel("forward", dtype, plan.launch.tiled, batch, units)
        for s in range(steps):
            h_cur, h_next = (h_a, h_b) if s % 2 == 0 else (h_b, h_a)
            step(params, u_flat, h_cur, h_next, outputs, s)
    final_state = h_b if steps % 2 == 1 else h_a
    return host_or_device((outputs.reshape(*out_shape), final_state), on_device)


def _registers(launch, x, kernel, recurrent_kernel, bias, initial_state, mask, input_dropout,
               recurrent_dropout, go_backwards: bool, return_sequences: bool):
    """Run a register-resident forward ``launch`` (:class:`.plan.RegistersPlan`) on device arrays:
    outputs (B, T, U) or (B, U), final state (B, U).

    Two launches (the input projection, then the recurrence) and one allocation (outputs and
    final state together): ``x @ kernel + bias`` is written into the outputs and overwritten
    there, or, when the outputs cannot hold it, into a workspace kept between calls.
    """
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    out_size = batch * steps * units if return_sequences else batch * units
    block = cuda.device_array(out_size + batch * units, dtype)
    out, state = block[:out_size], block[out_size:]
    in_place = return_sequences and not go_backwards
    xw = out if in_place else workspace("projection", batch * steps * units, dtype)
    xw = xw[:batch * steps * units].reshape(batch * steps, units)
    gemm(x.reshape(batch * steps, features), kernel, xw, a_scale=input_dropout, steps=steps, bias=bias)
    launch.launch(pointer(xw), pointer(recurrent_kernel), pointer(initial_state),
                  pointer(recurrent_dropout, dtype), pointer(mask, np.dtype(np.bool_)), pointer(out),
                  pointer(state), batch, steps, units, int(go_backwards))
    shape = (batch, steps, units) if return_sequences else (batch, units)
    return out.reshape(*shape), state.reshape(batch, units)
