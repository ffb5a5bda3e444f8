"""Activations compiled for one dtype and one activation, for the register-resident kernels.

:func:`activation` gives a device function ``f(z)`` computing the activation in the kernel's
dtype (no float64 literals that would widen a float32 computation); activations other than
linear, tanh, relu and sigmoid go through :func:`._cuda_device.activate`, rounded to the dtype.

:func:`output_derivative` gives ``g(o)``, the activation's derivative at ``z`` computed from its
output ``o = f(z)``, for the activations whose derivative is a function of the output
(:data:`FROM_OUTPUT`): the backward kernels then need no pre-activations.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda

from .. import activations as A
from ._cuda_device import activate

#: Activations whose derivative :func:`output_derivative` computes from the output.
FROM_OUTPUT = frozenset({A.LINEAR, A.TANH, A.RELU, A.SIGMOID, A.ELU, A.SELU, A.SOFTPLUS, A.SOFTSIGN,
                         A.HARD_SIGMOID, A.EXPONENTIAL, A.RELU6, A.LEAKY_RELU})


@functools.cache
def activation(dtype: np.dtype, act: int):
    """Device function ``f(z)`` of activation code ``act`` in ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero, one = dtype.type(0), dtype.type(1)
    if act == A.LINEAR:
        @cuda.jit(device=True)
        def f(z):
            return z
    elif act == A.TANH:
        @cuda.jit(device=True)
        def f(z):
            return math.tanh(z)
    elif act == A.RELU:
        @cuda.jit(device=True)
        def f(z):
            return z if z > zero else zero
    elif act == A.SIGMOID:
        @cuda.jit(device=True)
        def f(z):
            e = math.exp(-abs(z))
            return one / (one + e) if z >= zero else e / (one + e)
    else:
        @cuda.jit(device=True)
        def f(z):
            return dt(activate(z, act))
    return f


@functools.cache
def output_derivative(dtype: np.dtype, act: int):
    """Device function ``g(o)``: the derivative of activation ``act`` where its output is ``o``
    (``act`` in :data:`FROM_OUTPUT`)."""
    if act not in FROM_OUTPUT:
        raise ValueError(f"the derivative of activation code {act} is not a function of its output")
    zero, one = dtype.type(0), dtype.type(1)
    sixth, six = dtype.type(1 / 6), dtype.type(6)
    scale, scale_alpha = dtype.type(A.SELU_SCALE), dtype.type(A.SELU_SCALE * A.SELU_ALPHA)
    slope = dtype.type(A.LEAKY_RELU_SLOPE)
    if act == A.LINEAR:
        @cuda.jit(device=True)
        def g(o):
            return one
    elif act == A.TANH:
        @cuda.jit(device=True)
        def g(o):
            return one - o * o
    elif act == A.RELU:
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else zero
    elif act == A.SIGMOID:
        @cuda.jit(device=True)
        def g(o):
            return o * (one - o)
    elif act == A.ELU:  # exp(z) = o + 1 where z <= 0
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else o + one
    elif act == A.SELU:  # scale * alpha * exp(z) = o + scale * alpha where z <= 0
        @cuda.jit(device=True)
        def g(o):
            return scale if o > zero else o + scale_alpha
    elif act == A.SOFTPLUS:  # sigmoid(z) = 1 - exp(-o)
        @cuda.jit(device=True)
        def g(o):
            return -math.expm1(-o)
    elif act == A.SOFTSIGN:  # 1 / (1 + |z|)^2 = (1 - |o|)^2
        @cuda.jit(device=True)
        def g(o):
            d = one - abs(o)
            return d * d
    elif act == A.HARD_SIGMOID:  # 1/6 where -3 < z < 3, i.e. 0 < o < 1
        @cuda.jit(device=True)
        def g(o):
            return sixth if zero < o < one else zero
    elif act == A.EXPONENTIAL:
        @cuda.jit(device=True)
        def g(o):
            return o
    elif act == A.RELU6:
        @cuda.jit(device=True)
        def g(o):
            return one if zero < o < six else zero
    else:  # LEAKY_RELU
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else slope
    return g
