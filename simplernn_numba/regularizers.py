"""Weight and activity regularizers with Keras names: ``l1``, ``l2``, ``l1_l2``.

A regularizer maps an array to a scalar penalty (``__call__``) and gives that
penalty's gradient (``gradient``). The strings ``"l1"`` and ``"l2"`` mean a
factor of 0.01, as in Keras.

>>> float(L2(0.5)(np.array([1.0, 2.0])))
2.5
"""

from __future__ import annotations

import numpy as np

from ._serialization import Serializable, make_registry, resolve, serialize

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "serialize"]


def _factor(name: str, value) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"Regularizer factor {name} must be a finite number >= 0; received {value}.")
    return value


class Regularizer(Serializable):
    """Base class: ``__call__(x) -> float`` penalty, ``gradient(x) -> array`` like ``x``."""

    def __call__(self, x) -> float:
        raise NotImplementedError

    def gradient(self, x) -> np.ndarray:
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _factor("l1", l1)
        self.l2 = _factor("l2", l2)

    def __call__(self, x) -> float:
        x = np.asarray(x)
        return float(self.l1 * np.abs(x).sum() + self.l2 * np.square(x).sum())

    def gradient(self, x) -> np.ndarray:
        x = np.asarray(x)
        return (self.l1 * np.sign(x) + 2 * self.l2 * x).astype(x.dtype, copy=False)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Keras' ``l1_l2`` helper (both factors default to 0.01)."""
    return L1L2(l1=l1, l2=l2)


_REGISTRY = make_registry([L1, L2, L1L2], {"l1": L1, "l2": L2, "l1_l2": l1_l2})


def get(identifier):
    """Resolve ``None``, ``"l1"``/``"l2"``/``"l1_l2"``, a config dict, an instance or a callable."""
    return resolve(identifier, _REGISTRY, "regularizer")


