"""The CPU forward pass: check, pick the plan (:mod:`.plan`), run the plan's kernel.

Each plan calls entry kernels of its own, on the calling thread or, for a plan of several runs
of rows, over Numba's threads (:mod:`.launch`).

>>> import numpy as np
>>> x = np.ones((1, 3, 1))
>>> out, h = forward(x, np.ones((1, 1)), np.ones((1, 1)), None, np.zeros((1, 1)),
...                  activation="linear")
>>> out.ravel().tolist(), h.ravel().tolist()
([1.0, 2.0, 3.0], [3.0])
"""

from __future__ import annotations

import functools

import numpy as np

from ... import _validate
from . import gemm, lanes, panels, rows, workspace
from .activation import choose
from .bundles import sequence
from .last_call import about_to_run
from .launch import run_all
from .panel_products import panel_width
from .plan import forward_plan, largest_run
from .products import padded_units
from .specialise import static
from .weights import prepared_weights


def _read_only(array: np.ndarray) -> np.ndarray:
    """``array`` as a read-only view: kernels see one array type whether a caller's array is
    writeable or not (a layer's weights are read-only), so they compile once."""
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=16)
def _zeros(units: int, dtype: str) -> np.ndarray:
    """A read-only zero bias for a layer without one."""
    return _read_only(np.zeros(units, dtype))


def input_projection(x, kernel, input_dropout=None, out=None) -> np.ndarray:
    """``(x * input_dropout) @ kernel`` for all timesteps as one BLAS GEMM: (B, T, U), into
    ``out`` (C-contiguous (B, T, U)) when given."""
    batch, steps, features = x.shape
    if input_dropout is not None:
        x = x * input_dropout[:, None, :]
    flat = x.reshape(batch * steps, features)
    if out is None:
        return (flat @ kernel).reshape(batch, steps, kernel.shape[1])
    np.matmul(flat, kernel, out=out.reshape(batch * steps, kernel.shape[1]))
    return out


def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None, input_dropout=None,
            recurrent_dropout=None, go_backwards=False, activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the CPU (the contract of
    :func:`simplernn_numba.kernels.reference.forward`); ``activation`` must be a built-in name.
    The arrays are checked against the kernel contract first (ValueError, never a bad read)."""
    _validate.kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask,
                               input_dropout, recurrent_dropout)
    return forward_validated(x, kernel, recurrent_kernel, bias, initial_state, mask=mask,
                             input_dropout=input_dropout, recurrent_dropout=recurrent_dropout,
                             go_backwards=go_backwards, activation=activation,
                             return_sequences=return_sequences)


def forward_validated(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
                      input_dropout=None, recurrent_dropout=None, go_backwards=False,
                      activation="tanh", return_sequences=True, training=False):
    """:func:`forward` without the contract check, for arrays the caller has validated (the
    layer, :mod:`simplernn_numba.functional`). ``training``: a backward pass follows (the plan
    then keeps the input projection inside each step, see ``config.FUSED_WEIGHT_BYTES``)."""
    batch, steps, features = x.shape
    units = kernel.shape[1]
    dtype = x.dtype
    outputs = np.empty((batch, steps if return_sequences else 1, units), dtype)
    final_state = np.empty((batch, units), dtype)
    plan = forward_plan(batch, steps, features, units, dtype.itemsize, masked=mask is not None,
                        recurrent_dropout=recurrent_dropout is not None, training=training)
    about_to_run(plan, dtype, activation)
    if batch == 0 or steps == 0:  # nothing to run, and no kernel compiled for it
        final_state[...] = initial_state
        outputs[...] = 0
        return (outputs if return_sequences else outputs[:, 0]), final_state
    bias = _zeros(units, dtype.char) if bias is None else _read_only(bias)
    if input_dropout is not None and not (plan.path in ("lanes", "rows") and plan.fused):
        x = x * input_dropout[:, None, :]  # the paths that do not apply it in their steps
        input_dropout = None
    seq = sequence(x, bias, initial_state, mask, input_dropout, recurrent_dropout,
                   bool(go_backwards), outputs, final_state)
    _RUN[plan.path](plan, seq, kernel, recurrent_kernel, choose(activation))
    return (outputs if return_sequences else outputs[:, 0]), final_state


def _run_lanes(plan, seq, kernel, recurrent_kernel, act):
    w = prepared_weights(kernel, recurrent_kernel, "fused")
    run_all(lanes.forward, (seq, w, act), plan.runs)


def _run_rows(plan, seq, kernel, recurrent_kernel, act):
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    batch, steps, features = x.shape
    w = prepared_weights(kernel, recurrent_kernel, "fused",
                         padded_units(kernel.shape[1], plan.tile, x.itemsize))
    tile = static(plan.tile)
    if plan.fused:
        projection_kernel = projections = None
    else:  # each run projects its own rows (see rows.forward)
        projection_kernel, w = w[:features], w[features:]
        run_rows = largest_run(batch, plan.runs) * steps
        projections = workspace.arrays(x.dtype, (plan.runs, run_rows, w.shape[1]))[0]
    run_all(rows.forward, (seq, w, projection_kernel, projections, act, tile), plan.runs)


def _run_few_rows(plan, seq, kernel, recurrent_kernel, act):
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    batch, steps = x.shape[:2]
    features, units = kernel.shape
    w = prepared_weights(kernel, recurrent_kernel, "fused", padded_units(units, plan.tile, x.itemsize))
    projection = None  # plan.fused: each step computes its inputs' product itself
    if not plan.fused:
        projection = workspace.arrays(x.dtype, (batch * steps, w.shape[1]))[0]
    kernel_ = rows.one_row if batch == 1 else rows.two_rows
    kernel_(seq, w[features:], w[:features], projection, act, static(plan.tile))


def _run_panels(plan, seq, kernel, recurrent_kernel, act):
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    batch, steps = x.shape[:2]
    units = kernel.shape[1]
    width = panel_width(x.itemsize)
    wp = prepared_weights(kernel, recurrent_kernel, "panels", width)
    in_place = outputs.shape[1] == steps and not go_backwards
    xw = outputs if in_place else workspace.arrays(x.dtype, (batch, steps, units))[0]
    copy_out = not in_place and outputs.shape[1] == steps
    run_all(panels.forward, (seq, wp, -(-units // width), act, xw, copy_out), plan.runs)


def _run_gemm(plan, seq, kernel, recurrent_kernel, act):
    x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs, final_state = seq
    batch, steps = x.shape[:2]
    in_place = outputs.shape[1] == steps and not go_backwards
    target = outputs if in_place else workspace.arrays(x.dtype, (batch, steps, kernel.shape[1]))[0]
    gemm.forward(seq, recurrent_kernel, act, input_projection(x, kernel, out=target))


_RUN = {"lanes": _run_lanes, "rows": _run_rows, "one_row": _run_few_rows,
        "two_rows": _run_few_rows, "panels": _run_panels,
        "gemm": _run_gemm}

#: The forward pass of a training call (a backward pass follows): :func:`forward_validated`
#: with ``training=True`` (``BACKEND.forward_for_training``).
forward_for_training = functools.partial(forward_validated, training=True)
