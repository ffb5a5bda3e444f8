"""One SimpleRNN timestep for a batch (streaming inference).

``out = activation(x_t @ kernel + state @ recurrent_kernel + bias)`` with plain loops: for the
small batches of online inference a BLAS call costs more than the arithmetic.

>>> import numpy as np
>>> from simplernn_numba.kernels.cpu.activation import choose
>>> out = np.empty((1, 2))
>>> step(np.ones((1, 1)), np.zeros((1, 2)), np.ones((1, 2)), np.eye(2), np.zeros(2),
...      choose("linear"), out)
>>> out.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

from numba import njit

from . import options
from .activation import activation


@njit(**options.NOGIL_EXACT)
def step(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """Write the next state into ``out``.

    Parameters
    ----------
    x_t : ndarray (B, F)
    state : ndarray (B, U)
        The previous state; must not overlap ``out``.
    kernel : ndarray (F, U)
    recurrent_kernel : ndarray (U, U)
    bias : ndarray (U,) (zeros for a layer without bias)
    act : static choice
        The activation (:func:`simplernn_numba.kernels.cpu.activation.choose`).
    out : ndarray (B, U)
        Receives the new state.
    """
    batch, features = x_t.shape
    units = kernel.shape[1]
    for b in range(batch):
        z = out[b]
        for u in range(units):
            z[u] = bias[u]
        for f in range(features):
            xf = x_t[b, f]
            for u in range(units):
                z[u] += xf * kernel[f, u]
        for k in range(units):
            hk = state[b, k]
            for u in range(units):
                z[u] += hk * recurrent_kernel[k, u]
        for u in range(units):
            z[u] = activation(z[u], act)
