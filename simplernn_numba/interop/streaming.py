"""Online inference: advance a SimpleRNN one timestep at a time.

:class:`Stream` keeps the state between calls; :func:`step` is the stateless
form. Both run one compiled kernel (:mod:`simplernn_numba.kernels.cpu.step`, compiled once per
dtype and activation, cached on disk) on weights validated once, and check each ``x_t``
with a few attribute tests (a full validation only when those fail). T calls
equal one layer call over T steps, to float rounding (the full call sums the
input projection with BLAS). A step is inference only: no dropout and no mask;
``go_backwards`` only says in which order the caller should feed the steps.
Steps always run on the CPU (whatever the layer's ``device``): at one timestep
a GPU launch costs more than the step.

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> layer = SimpleRNN(4)
>>> x = np.random.default_rng(0).random((2, 6, 3), dtype=np.float32)
>>> y = layer(x)                      # builds the layer
>>> stream = Stream(layer, batch_size=2)
>>> for t in range(6):
...     h = stream.step(x[:, t])
>>> bool(np.allclose(h, y, atol=1e-6))
True
"""

from __future__ import annotations

import weakref

import numpy as np
from numpy.typing import ArrayLike

from .. import _validate, activations
from ..kernels.cpu.activation import choose as _choose_activation
from ..kernels.cpu.step import step as _step_kernel
from ..layer import SimpleRNN


class _Weights:
    """A layer's weights checked once for the step kernel (bias zeros when the layer has none)."""

    __slots__ = ("version", "dtype", "features", "units", "kernel", "recurrent_kernel", "bias", "act")

    def __init__(self, layer: SimpleRNN):
        if not isinstance(layer, SimpleRNN):
            raise TypeError(f"Expected a SimpleRNN layer; received {type(layer).__name__}.")
        if not layer.built:
            raise ValueError(f"Layer {layer.name!r} is not built; build or call it before streaming.")
        name = activations.name_of(layer.activation)
        if name is None:
            raise ValueError(
                f"Layer {layer.name!r} has a Python-callable activation; the compiled step kernel "
                "needs a built-in activation."
            )
        self.version = layer.weights_version
        self.dtype = np.dtype(layer.dtype)
        self.kernel, self.recurrent_kernel = layer.kernel, layer.recurrent_kernel
        self.features, self.units = self.kernel.shape
        self.bias = layer.bias if layer.use_bias else np.zeros(self.units, self.dtype)
        self.act = _choose_activation(name)

    def array(self, value, name: str, shape: tuple) -> np.ndarray:
        """``value`` unchanged when it already fits, else validated (and cast) or an error.

        ``shape[0]`` may be None (any batch size).
        """
        if (type(value) is np.ndarray and value.dtype == self.dtype and value.ndim == 2
                and value.shape[1] == shape[1] and (shape[0] is None or value.shape[0] == shape[0])
                and value.flags.c_contiguous):
            return value
        arr = _validate.as_float_array(value, name, self.dtype)
        _validate.check_shape(arr, name, shape)
        return arr


_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights(layer: SimpleRNN) -> _Weights:
    cached = _WEIGHTS.get(layer)
    if cached is None or cached.version != layer.weights_version:
        cached = _WEIGHTS[layer] = _Weights(layer)
    return cached


def step(layer: SimpleRNN, x_t: ArrayLike, state: ArrayLike) -> np.ndarray:
    """The state after one timestep: ``activation(x_t @ kernel + state @ recurrent_kernel + bias)``.

    Parameters
    ----------
    layer : SimpleRNN
        Built, with a built-in activation.
    x_t : array (batch, features)
    state : array (batch, units)

    Returns
    -------
    ndarray (batch, units) in the layer dtype (a new array).
    """
    w = _weights(layer)
    x_t = w.array(x_t, "x_t", (None, w.features))
    state = w.array(state, "state", (x_t.shape[0], w.units))
    out = np.empty_like(state)
    _step_kernel(x_t, state, w.kernel, w.recurrent_kernel, w.bias, w.act, out)
    return out


class Stream:
    """A running sequence for a fixed batch: call :meth:`step` once per timestep.

    Parameters
    ----------
    layer : SimpleRNN
        Built, with a built-in activation; later weight changes are picked up.
    batch_size : int
    initial_state : array (batch_size, units), optional
        Zeros by default.

    Attributes
    ----------
    state : ndarray (batch_size, units)
        The state after the last step (the last output). :meth:`step` returns
        this same array, a new one at every step; modifying it changes the
        state the next step starts from.
    """

    __slots__ = ("_layer", "_weights", "_x_shape", "state", "__weakref__")

    def __init__(self, layer: SimpleRNN, batch_size: int = 1, initial_state: ArrayLike | None = None):
        self._layer = layer
        self._weights = _weights(layer)
        batch = _validate.positive_int(batch_size, "batch_size")
        self._x_shape = (batch, self._weights.features)
        self.reset(initial_state)

    def reset(self, state: ArrayLike | None = None) -> None:
        """Start again from zeros, or from ``state`` (batch_size, units) (copied)."""
        w = self._weights
        shape = (self._x_shape[0], w.units)
        self.state = np.zeros(shape, w.dtype) if state is None else w.array(state, "state", shape).copy()

    def step(self, x_t: ArrayLike) -> np.ndarray:
        """Advance one timestep with inputs ``x_t`` (batch_size, features); returns the new state."""
        w = self._weights
        if w.version != self._layer.weights_version:
            w = self._weights = _weights(self._layer)
        if (x_t.__class__ is not np.ndarray or x_t.shape != self._x_shape or x_t.dtype != w.dtype
                or not x_t.flags.c_contiguous):
            x_t = w.array(x_t, "x_t", self._x_shape)
        state = self.state  # a public attribute: a user may have assigned any value to it
        if (state.__class__ is not np.ndarray or state.shape != (self._x_shape[0], w.units)
                or state.dtype != w.dtype or not state.flags.c_contiguous):
            state = self.state = w.array(state, "state", (self._x_shape[0], w.units))
        out = np.empty_like(state)
        _step_kernel(x_t, state, w.kernel, w.recurrent_kernel, w.bias, w.act, out)
        self.state = out
        return out
