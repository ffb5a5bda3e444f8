"""Plain NumPy SimpleRNN: the oracle for every compiled kernel.

Written for clarity, modelled on Keras' NumPy backend ``rnn`` loop. It also
serves layers whose activation is a Python callable, which compiled kernels
cannot call. See :mod:`simplernn_numba.kernels` for the shared contract.

>>> import numpy as np
>>> x = np.ones((1, 3, 1))
>>> out, h = forward(x, np.ones((1, 1)), np.ones((1, 1)), None, np.zeros((1, 1)),
...                  activation="linear")
>>> out.ravel().tolist(), h.ravel().tolist()
([1.0, 2.0, 3.0], [3.0])
"""

from __future__ import annotations

import numpy as np

from .. import activations
from .backend import KernelBackend


def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence.

    Parameters
    ----------
    x : ndarray (B, T, F), float32 or float64
    kernel : ndarray (F, U)
    recurrent_kernel : ndarray (U, U)
    bias : ndarray (U,) or None
    initial_state : ndarray (B, U)
    mask : ndarray (B, T) bool or None
        False marks a step to skip: the state is carried, the output repeats the
        previous output (zeros before the first unmasked step).
    input_dropout, recurrent_dropout : ndarray (B, F), (B, U) or None
        Multiplicative masks applied to ``x_t`` and ``h_{t-1}`` at every step.
    go_backwards : bool
        Process steps T-1 .. 0; outputs stay in processing order.
    activation : str or callable
    return_sequences : bool

    Returns
    -------
    outputs : ndarray (B, T, U) if ``return_sequences`` else (B, U)
    final_state : ndarray (B, U)
    """
    act = activations.get(activation)
    dtype = x.dtype
    steps = x.shape[1]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    h = initial_state.astype(dtype, copy=True)
    prev_out = np.zeros_like(h)
    outputs = []
    for t in order:
        x_t = x[:, t] if input_dropout is None else x[:, t] * input_dropout
        h_in = h if recurrent_dropout is None else h * recurrent_dropout
        z = x_t @ kernel + h_in @ recurrent_kernel
        if bias is not None:
            z = z + bias
        h_new = np.asarray(act(z), dtype=dtype)
        if mask is None:
            h, out = h_new, h_new
        else:
            keep = mask[:, t][:, None]
            h = np.where(keep, h_new, h)
            out = np.where(keep, h_new, prev_out)
        prev_out = out
        outputs.append(out)
    if return_sequences:
        seq = np.stack(outputs, axis=1) if outputs else np.zeros(x.shape[:2] + h.shape[1:], dtype)
        return seq.astype(dtype, copy=False), h
    return prev_out.astype(dtype, copy=False), h


def previous_states(outputs, initial_state, mask):
    """State entering each step, in processing order: (B, T, U).

    At an unmasked step the new state equals that step's output; at a masked
    step the state is carried, so the full output sequence and the initial
    state determine every state.
    """
    prev = np.empty_like(outputs)
    h = initial_state
    for s in range(outputs.shape[1]):
        prev[:, s] = h
        h = outputs[:, s] if mask is None else np.where(mask[:, s][:, None], outputs[:, s], h)
    return prev


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """Backpropagation through time for :func:`forward`.

    Parameters
    ----------
    x, kernel, recurrent_kernel, bias, initial_state, mask, input_dropout, recurrent_dropout,
    go_backwards, activation
        Exactly as passed to :func:`forward`.
    outputs : ndarray (B, T, U)
        The full output sequence of that forward call (``return_sequences=True``),
        in processing order.
    d_outputs : ndarray (B, T, U), ndarray (B, U) or None
        Gradient of the loss with respect to every output (processing order),
        or to the last output only, or None.
    d_state : ndarray (B, U) or None
        Gradient with respect to the returned final state.

    Returns
    -------
    dict with ``inputs`` (B, T, F) in input order, ``initial_state`` (B, U),
    ``kernel`` (F, U), ``recurrent_kernel`` (U, U) and ``bias`` (U,) or None;
    every array has the dtype of ``x``.
    """
    dtype = x.dtype
    batch, steps, _ = x.shape
    xs = x[:, ::-1] if go_backwards else x
    if input_dropout is not None:
        xs = xs * input_dropout[:, None, :]
    ms = None if mask is None else (mask[:, ::-1] if go_backwards else mask)
    h_prev = previous_states(outputs, initial_state, ms)
    if recurrent_dropout is not None:
        h_prev = h_prev * recurrent_dropout[:, None, :]
    z = xs @ kernel + h_prev @ recurrent_kernel
    if bias is not None:
        z = z + bias
    act_grad = np.asarray(activations.derivative(activation)(z), dtype)
    # the output at step s is the state once any step <= s was unmasked, else a constant 0
    seen = np.ones((batch, steps), bool) if ms is None else np.logical_or.accumulate(ms, axis=1)

    dh = np.zeros_like(initial_state) if d_state is None else d_state.astype(dtype, copy=True)
    dz = np.zeros_like(outputs)
    for s in range(steps - 1, -1, -1):
        if d_outputs is not None and d_outputs.ndim == 3:
            dh = dh + d_outputs[:, s] * seen[:, s, None]
        elif d_outputs is not None and s == steps - 1:
            dh = dh + d_outputs * seen[:, s, None]
        dz_s = dh * act_grad[:, s]
        dh_in = dz_s @ recurrent_kernel.T
        if recurrent_dropout is not None:
            dh_in = dh_in * recurrent_dropout
        if ms is None:
            dz[:, s], dh = dz_s, dh_in
        else:
            keep = ms[:, s, None]
            dz[:, s] = np.where(keep, dz_s, 0)
            dh = np.where(keep, dh_in, dh)

    units = kernel.shape[1]  # explicit sizes: reshape(0, -1) fails when batch == 0
    flat_dz = dz.reshape(batch * steps, units)
    d_xs = dz @ kernel.T
    if input_dropout is not None:
        d_xs = d_xs * input_dropout[:, None, :]
    return {
        "inputs": np.ascontiguousarray(d_xs[:, ::-1] if go_backwards else d_xs, dtype=dtype),
        "initial_state": dh.astype(dtype, copy=False),
        "kernel": (xs.reshape(batch * steps, x.shape[2]).T @ flat_dz).astype(dtype, copy=False),
        "recurrent_kernel": (h_prev.reshape(batch * steps, units).T @ flat_dz).astype(dtype, copy=False),
        "bias": None if bias is None else flat_dz.sum(axis=0).astype(dtype, copy=False),
    }


#: The reference backend (:class:`.backend.Backend`): no contract check of its own, and nothing to
#: prepare or plan; inference and training run the same :func:`forward`.
BACKEND = KernelBackend("reference", forward, forward, backward)
