"""The arguments every CPU recurrence kernel shares, one bundle per direction.

A bundle is a plain tuple (Numba's dispatcher types a plain tuple about a microsecond faster a
call than a named tuple); kernels unpack it, in the order of the parameters below, once before
their loops. Absent optional arrays are ``None`` (read through :mod:`.specialise`). Arrays are
C-contiguous and of one float dtype (float32 or float64), masks bool.

>>> import numpy as np
>>> len(sequence(*[None] * 9))
9
"""

from __future__ import annotations


def sequence(x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs,
             final_state) -> tuple:
    """One forward call's bundle.

    Parameters
    ----------
    x : ndarray (B, T, F)
    bias : ndarray (U,), read-only (zeros for a layer without bias)
    initial_state : ndarray (B, U)
    mask : ndarray (B, T) of bool, or None
        False skips the step (state carried, previous output repeated).
    input_dropout, recurrent_dropout : ndarray (B, F) and (B, U), or None
        Multipliers of the inputs and of the state entering each step.
    go_backwards : bool
        Steps in reverse time order; outputs stay in processing order.
    outputs : ndarray (B, T, U), or (B, 1, U) for the last output only
    final_state : ndarray (B, U)
        Receives the state after the last step (the running state of the per-row kernels).
    """
    return (x, bias, initial_state, mask, input_dropout, recurrent_dropout, go_backwards, outputs,
            final_state)


def gradients(outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout,
              go_backwards, previous, dh, dz) -> tuple:
    """One backward pass's (BPTT) bundle.

    Parameters
    ----------
    outputs : ndarray (B, T, U)
        The forward pass's outputs, in processing order.
    d_outputs : ndarray (B, T, U), (B, 1, U) (last output only) or (B, 0, U) (none)
    preactivations : ndarray (B, T, U) in input time order, or None
        For the activations whose derivative needs them.
    initial_state : ndarray (B, U)
    mask : ndarray (B, T) of bool, or None
    recurrent_dropout : ndarray (B, U), or None
    go_backwards : bool
    previous : ndarray (B, T, U), or None
        Filled by the per-row kernels with the states entering each step (times recurrent
        dropout), input time order; None when filled already.
    dh : ndarray (B, U)
        Enters holding the final state's gradient, leaves holding the initial state's.
    dz : ndarray (B, T, U)
        Receives the pre-activation gradients, input time order.
    """
    return (outputs, d_outputs, preactivations, initial_state, mask, recurrent_dropout,
            go_backwards, previous, dh, dz)
