"""Activations and their derivatives for the CPU kernels, one activation per compiled variant.

Kernels take the activation as :func:`choose` gives it (a :func:`.specialise.static` code) and
call :func:`activation` and :func:`derivative` on scalars in their loops: each overload
returns the code of that one activation, inlined, so a loop over a row vectorises where the
activation does (tanh: :mod:`.tanh`; relu, linear, ...) and nothing else compiles.

Derivatives: most are a function of the output ``h = act(z)``; silu, gelu, mish and hard_silu
need the pre-activation ``z`` (:data:`NEEDS_PREACTIVATION`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ... import activations
from . import options
from .specialise import static, value_of
from .tanh import tanh_f32, tanh_f64

_FLAGS = options.INLINE_EXACT
_INLINE = dict(inline="always", jit_options=options.OVERLOAD_INLINE)


def choose(name: str) -> tuple:
    """The ``act`` argument of the kernels for a built-in activation name."""
    act = _CHOSEN.get(name)
    if act is None:
        act = _CHOSEN[name] = static(activations.code(name))
    return act


#: Activation name -> the kernels' ``act`` argument.
_CHOSEN: dict = {}


@njit(**_FLAGS)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(**_FLAGS)
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@njit(**_FLAGS)
def _hard_sigmoid(v):
    return min(max(v / 6.0 + 0.5, 0.0), 1.0)


_VALUES = {
    activations.LINEAR: lambda v, act: v,
    activations.RELU: lambda v, act: max(v, 0.0),
    activations.SIGMOID: lambda v, act: _sigmoid(v),
    activations.ELU: lambda v, act: math.expm1(v) if v <= 0 else v,
    activations.SELU: lambda v, act: (activations.SELU_SCALE
                                      * (v if v > 0 else activations.SELU_ALPHA * math.expm1(v))),
    activations.SOFTPLUS: lambda v, act: _softplus(v),
    activations.SOFTSIGN: lambda v, act: v / (1.0 + abs(v)),
    activations.HARD_SIGMOID: lambda v, act: _hard_sigmoid(v),
    activations.EXPONENTIAL: lambda v, act: math.exp(v),
    activations.SILU: lambda v, act: v * _sigmoid(v),
    activations.GELU: lambda v, act: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))),
    activations.RELU6: lambda v, act: min(max(v, 0.0), 6.0),
    activations.LEAKY_RELU: lambda v, act: v * activations.LEAKY_RELU_SLOPE if v < 0 else v,
    activations.MISH: lambda v, act: v * np.tanh(_softplus(v)),
    activations.HARD_SILU: lambda v, act: v * _hard_sigmoid(v),
}


def activation(v, act):
    """``act(v)`` for a scalar ``v`` (float32 tanh stays float32; see :mod:`.tanh`)."""


@overload(activation, **_INLINE)
def _activation(v, act):
    code = value_of(act)
    if code == activations.TANH:
        element = tanh_f32 if v == types.float32 else tanh_f64
        return lambda v, act: element(v)
    return _VALUES[code]


#: ``act'(z)`` written with the output ``h = act(z)``.
_FROM_OUTPUT = {code: njit(**_FLAGS)(fn) for code, fn in {
    activations.TANH: lambda h: 1.0 - h * h,
    activations.LINEAR: lambda h: 1.0,
    activations.RELU: lambda h: 1.0 if h > 0 else 0.0,
    activations.SIGMOID: lambda h: h * (1.0 - h),
    activations.ELU: lambda h: 1.0 if h > 0 else h + 1.0,
    activations.SELU: lambda h: (activations.SELU_SCALE if h > 0
                                 else h + activations.SELU_SCALE * activations.SELU_ALPHA),
    activations.SOFTPLUS: lambda h: -math.expm1(-h),
    activations.SOFTSIGN: lambda h: (1.0 - abs(h)) * (1.0 - abs(h)),
    activations.HARD_SIGMOID: lambda h: 1.0 / 6.0 if 0.0 < h < 1.0 else 0.0,
    activations.EXPONENTIAL: lambda h: h,
    activations.RELU6: lambda h: 1.0 if 0.0 < h < 6.0 else 0.0,
    activations.LEAKY_RELU: lambda h: 1.0 if h > 0 else activations.LEAKY_RELU_SLOPE,
}.items()}


@njit(**_FLAGS)
def _d_silu(z):
    s = _sigmoid(z)
    return s + z * s * (1.0 - s)


@njit(**_FLAGS)
def _d_gelu(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) + z * math.exp(-0.5 * z * z) / math.sqrt(
        2.0 * math.pi)


@njit(**_FLAGS)
def _d_mish(z):
    t = np.tanh(_softplus(z))
    return t + z * (1.0 - t * t) * _sigmoid(z)


@njit(**_FLAGS)
def _d_hard_silu(z):
    return _hard_sigmoid(z) + (z / 6.0 if -3.0 < z < 3.0 else 0.0)


_FROM_PREACTIVATION = {activations.SILU: _d_silu, activations.GELU: _d_gelu, activations.MISH: _d_mish,
                       activations.HARD_SILU: _d_hard_silu}
#: Activation codes whose derivative needs the pre-activation, not only the output.
NEEDS_PREACTIVATION = frozenset(_FROM_PREACTIVATION)


def slope(h, z, act):
    """``act'(z)``, from the output ``h`` or, for :data:`NEEDS_PREACTIVATION`, from the
    pre-activation ``z`` (the other is not read)."""


@overload(slope, **_INLINE)
def _slope(h, z, act):
    code = value_of(act)
    if code in _FROM_PREACTIVATION:
        of_z = _FROM_PREACTIVATION[code]
        return lambda h, z, act: of_z(z)
    of_h = _FROM_OUTPUT[code]
    return lambda h, z, act: of_h(h)


def derivative(g, h, z, act):
    """``g * act'(z)``, the gradient ``g`` through the activation (:func:`slope`), in the
    fewest operations for tanh (``g - g * h * h``), linear and relu."""


@overload(derivative, **_INLINE)
def _derivative(g, h, z, act):
    code = value_of(act)
    if code == activations.TANH:
        return lambda g, h, z, act: g - g * h * h
    if code == activations.LINEAR:
        return lambda g, h, z, act: g
    if code == activations.RELU:
        return lambda g, h, z, act: g if h > 0 else 0
    return lambda g, h, z, act: g * slope(h, z, act)
