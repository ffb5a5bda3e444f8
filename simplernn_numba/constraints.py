"""Weight constraints with Keras names, applied after each optimizer update.

A constraint maps a weight array to its projected value (``__call__``). As in
Keras, norms are taken over ``axis=0`` by default, i.e. per output unit of a
``(input_dim, units)`` kernel.

>>> NonNeg()(np.array([-1.0, 2.0]))
array([0., 2.])
"""

from __future__ import annotations

import numpy as np

from ._serialization import Serializable, make_registry, resolve, serialize

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "serialize"]

_EPSILON = 1e-7  # Keras backend epsilon


class Constraint(Serializable):
    """Base class: ``__call__(w) -> projected w`` (a new array)."""

    def __call__(self, w) -> np.ndarray:
        raise NotImplementedError


def _norms(w: np.ndarray, axis) -> np.ndarray:
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


class NonNeg(Constraint):
    """Set negative weights to zero."""

    def __call__(self, w):
        w = np.asarray(w)
        return np.where(w >= 0, w, w.dtype.type(0))


class MaxNorm(Constraint):
    """Rescale so that the norm along ``axis`` is at most ``max_value``."""

    def __init__(self, max_value: float = 2.0, axis=0):
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class UnitNorm(Constraint):
    """Rescale to unit norm along ``axis``."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = np.asarray(w)
        return (w / (_EPSILON + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the norm along ``axis`` towards ``[min_value, max_value]`` at ``rate``."""

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis=0):
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.rate, self.axis = float(rate), axis

    def __call__(self, w):
        w = np.asarray(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (_EPSILON + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value,
                "rate": self.rate, "axis": self.axis}


_REGISTRY = make_registry(
    [NonNeg, MaxNorm, UnitNorm, MinMaxNorm],
    {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm},
)


def get(identifier):
    """Resolve ``None``, a name such as ``"max_norm"``, a config dict, an instance or a callable."""
    return resolve(identifier, _REGISTRY, "constraint")


