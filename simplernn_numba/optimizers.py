"""Minimal NumPy optimizers with Keras update rules: :class:`SGD` and :class:`Adam`.

An optimizer updates either a :class:`~simplernn_numba.SimpleRNN` layer
(:meth:`Optimizer.apply`, which then applies the layer's constraints, as Keras
does after each step) or a plain dict of arrays (:meth:`Optimizer.step`,
which returns the new arrays). Slot variables (momentum, moments) are kept per
``scope`` and parameter name, so one optimizer can drive several layers.

>>> import numpy as np
>>> opt = SGD(learning_rate=0.1)
>>> opt
SGD(learning_rate=0.1, momentum=0.0, nesterov=False)
>>> opt.step({"w": np.array([1.0, 2.0])}, {"w": np.array([1.0, -1.0])})["w"].tolist()
[0.9, 2.1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _positive(value, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; received {value}.")
    return value


def _unit_interval(value, name: str) -> float:
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1); received {value}.")
    return value


class Optimizer:
    """Base class: subclasses implement ``_update(param, grad, slots, iteration) -> new param``."""

    def __init__(self):
        self._slots: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._iterations: dict[str, int] = {}

    def iterations(self, scope: str = "") -> int:
        """Number of steps taken so far for ``scope``."""
        return self._iterations.get(scope, 0)

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping, *, scope: str = "") -> dict:
        """New values of ``params`` after one update with ``grads`` (same keys; None grads skip).

        Parameters
        ----------
        params : mapping name -> float ndarray
        grads : mapping name -> ndarray of the same shape, or None
        scope : str
            Keeps slot variables of different owners apart (e.g. a layer name).

        Returns
        -------
        dict name -> ndarray; the inputs are not modified.
        """
        iteration = self._iterations.get(scope, 0) + 1
        new = {}
        for name, param in params.items():
            grad = grads.get(name)
            param = np.asarray(param)
            if grad is None:
                new[name] = param
                continue
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise ValueError(
                    f"gradient {name!r} must have shape {param.shape}; received shape {grad.shape}."
                )
            slots = self._slots.setdefault((scope, name), {})
            new[name] = self._update(param, grad.astype(param.dtype, copy=False), slots,
                                     iteration).astype(param.dtype, copy=False)
        self._iterations[scope] = iteration
        return new

    def apply(self, layer, grads: Mapping) -> None:
        """Update a layer's weights from ``grads`` (as from ``layer.backward``), then apply constraints.

        A layer with ``trainable=False`` is left unchanged.
        """
        if not layer.trainable:
            return
        names = layer.weight_names
        new = self.step(dict(zip(names, layer.weights)), grads, scope=layer.name)
        layer.set_weights([new[name] for name in names])
        layer.apply_constraints()

    def get_config(self) -> dict:
        """The constructor arguments (Keras names)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _update(self, param, grad, slots, iteration):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as Keras ``SGD``.

    ``v = momentum * v - lr * g``; ``w += v`` (or ``w += momentum * v - lr * g``
    with Nesterov); without momentum ``w -= lr * g``.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__()
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.momentum = _unit_interval(momentum, "momentum")
        self.nesterov = bool(nesterov)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}

    def _update(self, param, grad, slots, iteration):
        lr = self.learning_rate
        if self.momentum == 0:
            return param - lr * grad
        velocity = slots.get("velocity", 0.0) * self.momentum - lr * grad
        slots["velocity"] = velocity
        if self.nesterov:
            return param + self.momentum * velocity - lr * grad
        return param + velocity


class Adam(Optimizer):
    """Adam with the Keras defaults and update rule.

    ``m += (g - m)(1 - beta_1)``, ``v += (g² - v)(1 - beta_2)``,
    ``w -= lr · sqrt(1 - beta_2^t) / (1 - beta_1^t) · m / (sqrt(v) + epsilon)``.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__()
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.beta_1 = _unit_interval(beta_1, "beta_1")
        self.beta_2 = _unit_interval(beta_2, "beta_2")
        self.epsilon = _positive(epsilon, "epsilon")

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}

    def _update(self, param, grad, slots, iteration):
        m = slots.get("m", np.zeros_like(param))
        v = slots.get("v", np.zeros_like(param))
        m = m + (grad - m) * (1 - self.beta_1)
        v = v + (grad * grad - v) * (1 - self.beta_2)
        slots["m"], slots["v"] = m, v
        alpha = self.learning_rate * math.sqrt(1 - self.beta_2 ** iteration) / (1 - self.beta_1 ** iteration)
        return param - alpha * m / (np.sqrt(v) + self.epsilon)
