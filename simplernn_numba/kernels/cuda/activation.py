"""The activations on the GPU, by their integer codes (:mod:`simplernn_numba.activations`).

Three device functions, each taking the code as an argument: :func:`activate` (the activation
at ``v``), :func:`derivative` (its derivative at ``v``) and :func:`output_derivative` (the
derivative where the output is ``o``, for the activations in :data:`FROM_OUTPUT`: the
register-resident backward kernels need no pre-activations). They compute in the floating-point
type of their argument: every constant goes through :func:`_like`, so no float64 literal widens
a float32 computation. A kernel that passes a code fixed when it compiles (a closure constant)
keeps only that code's branch (NVVM inlines the function and folds the others away); the other
kernels pass the code at run time.
"""

from __future__ import annotations

import math

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

_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)

#: Activations whose derivative :func:`output_derivative` computes from the output.
FROM_OUTPUT = frozenset({LINEAR, TANH, RELU, SIGMOID, ELU, SELU, SOFTPLUS, SOFTSIGN,
                         HARD_SIGMOID, EXPONENTIAL, RELU6, LEAKY_RELU})


@cuda.jit(device=True)
def _like(v, c):
    """The constant ``c`` in the floating-point type of ``v`` (the test folds away when the
    function compiles)."""
    if isinstance(v, np.float32):
        return np.float32(c)
    return np.float64(c)


@cuda.jit(device=True)
def _sigmoid(v):
    one = _like(v, 1.0)
    e = math.exp(-abs(v))
    return one / (one + e) if v >= _like(v, 0.0) else e / (one + e)


@cuda.jit(device=True)
def _softplus(v):
    return max(v, _like(v, 0.0)) + math.log1p(math.exp(-abs(v)))


@cuda.jit(device=True)
def _hard_sigmoid(v):
    return min(max(v / _like(v, 6.0) + _like(v, 0.5), _like(v, 0.0)), _like(v, 1.0))


@cuda.jit(device=True)
def activate(v, act):
    """Activation with integer code ``act`` (see :mod:`simplernn_numba.activations`) at ``v``."""
    zero, one = _like(v, 0.0), _like(v, 1.0)
    if act == TANH:
        return math.tanh(v)
    if act == RELU:
        return max(v, zero)
    if act == SIGMOID:
        return _sigmoid(v)
    if act == ELU:
        return v if v > zero else math.expm1(v)
    if act == SELU:
        return _like(v, SELU_SCALE) * (v if v > zero else _like(v, SELU_ALPHA) * math.expm1(v))
    if act == SOFTPLUS:
        return _softplus(v)
    if act == SOFTSIGN:
        return v / (one + abs(v))
    if act == HARD_SIGMOID:
        return _hard_sigmoid(v)
    if act == EXPONENTIAL:
        return math.exp(v)
    if act == SILU:
        return v * _sigmoid(v)
    if act == GELU:
        return _like(v, 0.5) * v * (one + math.erf(v / _like(v, _SQRT_2)))
    if act == RELU6:
        return min(max(v, zero), _like(v, 6.0))
    if act == LEAKY_RELU:
        return v if v > zero else v * _like(v, LEAKY_RELU_SLOPE)
    if act == MISH:
        return v * math.tanh(_softplus(v))
    if act == HARD_SILU:
        return v * _hard_sigmoid(v)
    return v  # LINEAR


@cuda.jit(device=True)
def derivative(v, act):
    """Derivative of activation ``act`` with respect to its input, at ``v``."""
    zero, one, half = _like(v, 0.0), _like(v, 1.0), _like(v, 0.5)
    three, six = _like(v, 3.0), _like(v, 6.0)
    if act == TANH:
        t = math.tanh(v)
        return one - t * t
    if act == RELU:
        return one if v > zero else zero
    if act == SIGMOID:
        s = _sigmoid(v)
        return s * (one - s)
    if act == ELU:
        return one if v > zero else math.exp(v)
    if act == SELU:
        return _like(v, SELU_SCALE) * (one if v > zero else _like(v, SELU_ALPHA) * math.exp(v))
    if act == SOFTPLUS:
        return _sigmoid(v)
    if act == SOFTSIGN:
        d = one + abs(v)
        return one / (d * d)
    if act == HARD_SIGMOID:
        return _like(v, 1.0 / 6.0) if -three < v < three else zero
    if act == EXPONENTIAL:
        return math.exp(v)
    if act == SILU:
        s = _sigmoid(v)
        return s + v * s * (one - s)
    if act == GELU:
        return (half * (one + math.erf(v / _like(v, _SQRT_2)))
                + v * math.exp(-half * v * v) / _like(v, _SQRT_2PI))
    if act == RELU6:
        return one if zero < v < six else zero
    if act == LEAKY_RELU:
        return one if v > zero else _like(v, LEAKY_RELU_SLOPE)
    if act == MISH:
        t = math.tanh(_softplus(v))
        return t + v * (one - t * t) * _sigmoid(v)
    if act == HARD_SILU:
        return _hard_sigmoid(v) + (v / six if -three < v < three else zero)
    return one  # LINEAR


@cuda.jit(device=True)
def output_derivative(o, act):
    """Derivative of activation ``act`` (in :data:`FROM_OUTPUT`) with respect to its input, where
    its output is ``o``."""
    zero, one = _like(o, 0.0), _like(o, 1.0)
    if act == TANH:
        return one - o * o
    if act == RELU:
        return one if o > zero else zero
    if act == SIGMOID:
        return o * (one - o)
    if act == ELU:  # exp(z) = o + 1 where z <= 0
        return one if o > zero else o + one
    if act == SELU:  # scale * alpha * exp(z) = o + scale * alpha where z <= 0
        return _like(o, SELU_SCALE) if o > zero else o + _like(o, SELU_SCALE * SELU_ALPHA)
    if act == SOFTPLUS:  # sigmoid(z) = 1 - exp(-o)
        return -math.expm1(-o)
    if act == SOFTSIGN:  # 1 / (1 + |z|)^2 = (1 - |o|)^2
        d = one - abs(o)
        return d * d
    if act == HARD_SIGMOID:  # 1/6 where -3 < z < 3, i.e. 0 < o < 1
        return _like(o, 1.0 / 6.0) if zero < o < one else zero
    if act == EXPONENTIAL:
        return o
    if act == RELU6:
        return one if zero < o < _like(o, 6.0) else zero
    if act == LEAKY_RELU:
        return one if o > zero else _like(o, LEAKY_RELU_SLOPE)
    return one  # LINEAR
