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
