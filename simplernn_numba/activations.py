"""Activation registry with Keras names.

Every built-in activation has a Keras name, a NumPy implementation (used by the
reference kernel and by tests) and an integer code that the compiled kernels
branch on. A Python callable is accepted too; compiled kernels cannot call it,
so such layers run on the slower NumPy reference path.

>>> get("tanh").__name__
'tanh'
>>> code("relu") == RELU
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._validate import did_you_mean

# Integer codes used inside the compiled kernels (compile-time constants there).
LINEAR, TANH, RELU, SIGMOID, ELU, SELU, SOFTPLUS, SOFTSIGN = range(8)
HARD_SIGMOID, EXPONENTIAL, SILU, GELU, RELU6, LEAKY_RELU, MISH, HARD_SILU = range(8, 16)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_RELU_SLOPE = 0.2  # Keras 3 default negative_slope


def linear(x):
    """Identity: ``a(x) = x``."""
    return np.asarray(x)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def relu(x):
    """``max(x, 0)``."""
    return np.maximum(x, 0)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def elu(x):
    """``x`` if ``x > 0`` else ``exp(x) - 1`` (alpha = 1)."""
    x = np.asarray(x)
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def selu(x):
    """Scaled ELU with the self-normalising constants."""
    x = np.asarray(x)
    neg = SELU_ALPHA * np.expm1(np.minimum(x, 0))
    return (SELU_SCALE * np.where(x > 0, x, neg)).astype(x.dtype, copy=False)


def softplus(x):
    """``log(1 + exp(x))``, computed without overflow."""
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softsign(x):
    """``x / (1 + |x|)``."""
    x = np.asarray(x)
    return x / (1 + np.abs(x))


def hard_sigmoid(x):
    """Keras 3 hard sigmoid: ``clip(x / 6 + 0.5, 0, 1)``.

    tf_keras 2.x used ``clip(0.2 x + 0.5, 0, 1)``; we follow Keras 3.
    """
    x = np.asarray(x)
    return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)


def exponential(x):
    """``exp(x)``."""
    return np.exp(x)


def silu(x):
    """Swish / SiLU: ``x * sigmoid(x)``."""
    x = np.asarray(x)
    return x * sigmoid(x)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    """Exact GELU: ``0.5 x (1 + erf(x / sqrt(2)))`` (Keras default, approximate=False)."""
    x = np.asarray(x)
    return (0.5 * x * (1 + _erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return np.clip(x, 0, 6)


def leaky_relu(x):
    """``x`` if ``x > 0`` else ``0.2 x`` (Keras 3 default slope)."""
    x = np.asarray(x)
    return np.where(x > 0, x, x * x.dtype.type(LEAKY_RELU_SLOPE))


def mish(x):
    """``x * tanh(softplus(x))``."""
    x = np.asarray(x)
    return x * np.tanh(softplus(x))


def hard_silu(x):
    """Hard swish: ``x * hard_sigmoid(x)``."""
    x = np.asarray(x)
    return x * hard_sigmoid(x)


def _d_sigmoid(z):
    sig = sigmoid(z)
    return sig * (1 - sig)


def _d_hard_sigmoid(z):
    return np.where((z > -3) & (z < 3), 1 / 6, 0.0)


def _d_mish(z):
    t = np.tanh(softplus(z))
    return t + z * (1 - t * t) * sigmoid(z)


_SQRT_2PI = math.sqrt(2 * math.pi)

#: Derivatives with respect to the pre-activation ``z`` (NumPy, used by the reference backward).
DERIVATIVES: dict[str, Callable] = {
    "linear": lambda z: np.ones_like(z),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "relu": lambda z: (z > 0).astype(z.dtype),
    "sigmoid": _d_sigmoid,
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0))),
    "softplus": sigmoid,
    "softsign": lambda z: 1 / (1 + np.abs(z)) ** 2,
    "hard_sigmoid": _d_hard_sigmoid,
    "exponential": np.exp,
    "silu": lambda z: sigmoid(z) + z * _d_sigmoid(z),
    "gelu": lambda z: 0.5 * (1 + _erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / _SQRT_2PI,
    "relu6": lambda z: ((z > 0) & (z < 6)).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, LEAKY_RELU_SLOPE),
    "mish": _d_mish,
    "hard_silu": lambda z: hard_sigmoid(z) + z * _d_hard_sigmoid(z),
}


_BUILTINS: dict[str, tuple[int, Callable]] = {
    "linear": (LINEAR, linear),
    "tanh": (TANH, tanh),
    "relu": (RELU, relu),
    "sigmoid": (SIGMOID, sigmoid),
    "elu": (ELU, elu),
    "selu": (SELU, selu),
    "softplus": (SOFTPLUS, softplus),
    "softsign": (SOFTSIGN, softsign),
    "hard_sigmoid": (HARD_SIGMOID, hard_sigmoid),
    "exponential": (EXPONENTIAL, exponential),
    "silu": (SILU, silu),
    "gelu": (GELU, gelu),
    "relu6": (RELU6, relu6),
    "leaky_relu": (LEAKY_RELU, leaky_relu),
    "mish": (MISH, mish),
    "hard_silu": (HARD_SILU, hard_silu),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
_BY_FUNCTION = {fn: name for name, (_, fn) in _BUILTINS.items()}

#: Names accepted by :func:`get` (built-ins and aliases).
NAMES = tuple(sorted([*_BUILTINS, *_ALIASES]))


def canonical_name(name: str) -> str:
    """Return the registry name for ``name`` (resolving aliases), or raise ValueError."""
    name = _ALIASES.get(name, name)
    if name not in _BUILTINS:
        raise ValueError(
            f"Unknown activation {name!r};{did_you_mean(name, NAMES)} Expected one of "
            f"{', '.join(NAMES)} or a callable."
        )
    return name


def get(identifier) -> Callable:
    """Resolve ``None`` (linear), a name, a Keras config dict, or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        identifier = identifier.get("config", identifier.get("class_name"))
        if isinstance(identifier, dict):
            identifier = identifier.get("name")
    if isinstance(identifier, str):
        return _BUILTINS[canonical_name(identifier)][1]
    if callable(identifier):
        return identifier
    raise TypeError(
        f"activation must be None, a name or a callable; received {identifier!r} "
        f"of type {type(identifier).__name__}."
    )


def derivative(activation) -> Callable:
    """``f'(z)`` for a built-in name or a callable.

    A callable may carry its own derivative as a ``derivative`` attribute;
    otherwise a central finite difference is used (accurate to about 1e-7
    relative at float64, less at float32).
    """
    if isinstance(activation, str):
        return DERIVATIVES[canonical_name(activation)]
    name = name_of(activation)
    if name is not None:
        return DERIVATIVES[name]
    if hasattr(activation, "derivative"):
        return activation.derivative

    def finite_difference(z):
        z64 = np.asarray(z, np.float64)
        step = 6e-6 * np.maximum(1.0, np.abs(z64))
        diff = np.asarray(activation(z64 + step), np.float64) - np.asarray(activation(z64 - step), np.float64)
        return (diff / (2 * step)).astype(np.asarray(z).dtype)

    return finite_difference


def name_of(fn: Callable) -> str | None:
    """Registry name of a built-in activation function, or None for a user callable."""
    return _BY_FUNCTION.get(fn)


def code(name: str) -> int:
    """Integer code of a built-in activation (what the compiled kernels take)."""
    return _BUILTINS[canonical_name(name)][0]


def serialize(fn: Callable) -> str:
    """Keras-style serialisation: the registry name, or the callable's ``__name__``."""
    return name_of(fn) or getattr(fn, "__name__", repr(fn))
