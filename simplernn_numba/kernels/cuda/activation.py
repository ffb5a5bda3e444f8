"""The activations on the GPU, by their integer codes (:mod:`simplernn_numba.activations`).

:func:`activate` and :func:`derivative` are device functions taking the code as an argument;
:func:`activation` and :func:`output_derivative` give device functions for one code and one
dtype, the code fixed when the kernel compiles: ``f(z)`` computes the activation in the
kernel's dtype (no float64 literals that would widen a float32 computation; activations other
than linear, tanh, relu and sigmoid go through :func:`activate`, rounded to the dtype), and
``g(o)`` the derivative at ``z`` computed from the output ``o = f(z)``, for the activations whose
derivative is a function of their output (:data:`FROM_OUTPUT`): the register-resident backward
kernels then need no pre-activations.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import cuda

from ...activations import (
    ELU,
    EXPONENTIAL,
    GELU,
    HARD_SIGMOID,
    HARD_SILU,
    LEAKY_RELU,
    LEAKY_RELU_SLOPE,
    LINEAR,
    MISH,
    RELU,
    RELU6,
    SELU,
    SELU_ALPHA,
    SELU_SCALE,
    SIGMOID,
    SILU,
    SOFTPLUS,
    SOFTSIGN,
    TANH,
)


@cuda.jit(device=True)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@cuda.jit(device=True)
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True)
def _hard_sigmoid(v):
    return min(max(v / 6.0 + 0.5, 0.0), 1.0)


@cuda.jit(device=True)
def activate(v, act):
    """Activation with integer code ``act`` (see :mod:`simplernn_numba.activations`) at ``v``."""
    if act == TANH:
        return math.tanh(v)
    if act == RELU:
        return max(v, 0.0)
    if act == SIGMOID:
        return _sigmoid(v)
    if act == ELU:
        return v if v > 0 else math.expm1(v)
    if act == SELU:
        return SELU_SCALE * (v if v > 0 else SELU_ALPHA * math.expm1(v))
    if act == SOFTPLUS:
        return _softplus(v)
    if act == SOFTSIGN:
        return v / (1.0 + abs(v))
    if act == HARD_SIGMOID:
        return _hard_sigmoid(v)
    if act == EXPONENTIAL:
        return math.exp(v)
    if act == SILU:
        return v * _sigmoid(v)
    if act == GELU:
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    if act == RELU6:
        return min(max(v, 0.0), 6.0)
    if act == LEAKY_RELU:
        return v if v > 0 else v * LEAKY_RELU_SLOPE
    if act == MISH:
        return v * math.tanh(_softplus(v))
    if act == HARD_SILU:
        return v * _hard_sigmoid(v)
    return v  # LINEAR


@cuda.jit(device=True)
def derivative(v, act):
    """Derivative of activation ``act`` with respect to its input, at ``v``."""
    if act == TANH:
        t = math.tanh(v)
        return 1.0 - t * t
    if act == RELU:
        return 1.0 if v > 0 else 0.0
    if act == SIGMOID:
        s = _sigmoid(v)
        return s * (1.0 - s)
    if act == ELU:
        return 1.0 if v > 0 else math.exp(v)
    if act == SELU:
        return SELU_SCALE * (1.0 if v > 0 else SELU_ALPHA * math.exp(v))
    if act == SOFTPLUS:
        return _sigmoid(v)
    if act == SOFTSIGN:
        d = 1.0 + abs(v)
        return 1.0 / (d * d)
    if act == HARD_SIGMOID:
        return 1.0 / 6.0 if -3.0 < v < 3.0 else 0.0
    if act == EXPONENTIAL:
        return math.exp(v)
    if act == SILU:
        s = _sigmoid(v)
        return s + v * s * (1.0 - s)
    if act == GELU:
        return (0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
                + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi))
    if act == RELU6:
        return 1.0 if 0.0 < v < 6.0 else 0.0
    if act == LEAKY_RELU:
        return 1.0 if v > 0 else LEAKY_RELU_SLOPE
    if act == MISH:
        t = math.tanh(_softplus(v))
        return t + v * (1.0 - t * t) * _sigmoid(v)
    if act == HARD_SILU:
        return _hard_sigmoid(v) + (v / 6.0 if -3.0 < v < 3.0 else 0.0)
    return 1.0  # LINEAR


#: Activations whose derivative :func:`output_derivative` computes from the output.
FROM_OUTPUT = frozenset({LINEAR, TANH, RELU, SIGMOID, ELU, SELU, SOFTPLUS, SOFTSIGN,
                         HARD_SIGMOID, EXPONENTIAL, RELU6, LEAKY_RELU})


@functools.cache
def activation(dtype: np.dtype, act: int):
    """Device function ``f(z)`` of activation code ``act`` in ``dtype``."""
    dt = numba.from_dtype(dtype)
    zero, one = dtype.type(0), dtype.type(1)
    if act == LINEAR:
        @cuda.jit(device=True)
        def f(z):
            return z
    elif act == TANH:
        @cuda.jit(device=True)
        def f(z):
            return math.tanh(z)
    elif act == RELU:
        @cuda.jit(device=True)
        def f(z):
            return z if z > zero else zero
    elif act == SIGMOID:
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
    scale, scale_alpha = dtype.type(SELU_SCALE), dtype.type(SELU_SCALE * SELU_ALPHA)
    slope = dtype.type(LEAKY_RELU_SLOPE)
    if act == LINEAR:
        @cuda.jit(device=True)
        def g(o):
            return one
    elif act == TANH:
        @cuda.jit(device=True)
        def g(o):
            return one - o * o
    elif act == RELU:
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else zero
    elif act == SIGMOID:
        @cuda.jit(device=True)
        def g(o):
            return o * (one - o)
    elif act == ELU:  # exp(z) = o + 1 where z <= 0
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else o + one
    elif act == SELU:  # scale * alpha * exp(z) = o + scale * alpha where z <= 0
        @cuda.jit(device=True)
        def g(o):
            return scale if o > zero else o + scale_alpha
    elif act == SOFTPLUS:  # sigmoid(z) = 1 - exp(-o)
        @cuda.jit(device=True)
        def g(o):
            return -math.expm1(-o)
    elif act == SOFTSIGN:  # 1 / (1 + |z|)^2 = (1 - |o|)^2
        @cuda.jit(device=True)
        def g(o):
            d = one - abs(o)
            return d * d
    elif act == HARD_SIGMOID:  # 1/6 where -3 < z < 3, i.e. 0 < o < 1
        @cuda.jit(device=True)
        def g(o):
            return sixth if zero < o < one else zero
    elif act == EXPONENTIAL:
        @cuda.jit(device=True)
        def g(o):
            return o
    elif act == RELU6:
        @cuda.jit(device=True)
        def g(o):
            return one if zero < o < six else zero
    else:  # LEAKY_RELU
        @cuda.jit(device=True)
        def g(o):
            return one if o > zero else slope
    return g
