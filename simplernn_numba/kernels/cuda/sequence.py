"""Element-wise kernels over whole sequences, shared by every plan.

``first_unmasked`` (the first processing step of each row whose mask is True),
``previous_states`` (the state entering every step, for the backward pass),
``derivative_in_place`` (the activation's derivative at every pre-activation) and
``column_sum`` (the bias gradient). Grid-stride loops; compiled once per dtype.
"""

import functools

import numba
import numpy as np
from numba import cuda

from .activation import derivative


@functools.cache
def first_unmasked_kernel():
    """``first_unmasked(mask, has_mask, go_backwards, first)`` (no dtype: bool and int32 only)."""
    i32, b1 = numba.int32, numba.boolean

    @cuda.jit(numba.void(b1[:, :], b1, b1, i32[:]))
    def first_unmasked(mask, has_mask, go_backwards, first):
        """``first[b]``: first processing step whose mask is True (T if none; 0 without mask)."""
        steps = mask.shape[1]
        for b in range(cuda.grid(1), first.shape[0], cuda.gridsize(1)):
            found = 0
            if has_mask:
                found = steps
                for s in range(steps):
                    t = steps - 1 - s if go_backwards else s
                    if mask[b, t]:
                        found = s
                        break
            first[b] = found

    return first_unmasked


@functools.cache
def previous_states_kernel(dtype: np.dtype):
    """``previous_states(outputs, h0, mask, has_mask, go_backwards, h_prev)`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    a2, b1 = dt[:, :], numba.boolean

    @cuda.jit(numba.void(a2, a2, b1[:, :], b1, b1, a2))
    def previous_states(outputs, h0, mask, has_mask, go_backwards, h_prev):
        """State entering every step, stored at input-time rows of ``h_prev`` (B * T, U)."""
        batch, units = h0.shape
        steps = outputs.shape[0] // batch
        for i in range(cuda.grid(1), batch * units, cuda.gridsize(1)):
            b = i // units
            u = i - b * units
            h = h0[b, u]
            for s in range(steps):
                t = steps - 1 - s if go_backwards else s
                h_prev[b * steps + t, u] = h
                if not has_mask or mask[b, t]:
                    h = outputs[b * steps + s, u]

    return previous_states


@functools.cache
def derivative_kernel(dtype: np.dtype):
    """``derivative_in_place(z, act)`` for ``dtype``."""
    a2 = numba.from_dtype(dtype)[:, :]

    @cuda.jit(numba.void(a2, numba.int64))
    def derivative_in_place(z, act):
        """Replace every pre-activation by the activation's derivative there."""
        rows, cols = z.shape
        for i in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
            r = i // cols
            c = i - r * cols
            z[r, c] = derivative(z[r, c], act)

    return derivative_in_place


@functools.cache
def column_sum_kernel(dtype: np.dtype):
    """``column_sum(m, out)`` for ``dtype``."""
    dt = numba.from_dtype(dtype)
    a1, a2 = dt[:], dt[:, :]

    @cuda.jit(numba.void(a2, a1))
    def column_sum(m, out):
        """``out[c] = sum_r m[r, c]``."""
        for c in range(cuda.grid(1), m.shape[1], cuda.gridsize(1)):
            acc = 0.0
            for r in range(m.shape[0]):
                acc += m[r, c]
            out[c] = acc

    return column_sum
