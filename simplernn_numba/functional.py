"""Functional SimpleRNN with gradients, for plain NumPy training loops.

:func:`forward` runs the recurrence and returns a :class:`Cache`;
:func:`backward` turns that cache and the upstream gradients into gradients
for every input (backpropagation through time). Arrays are validated here;
:mod:`simplernn_numba.engine` runs the call on the backend :mod:`simplernn_numba.dispatch` picks.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2, 5, 3))
>>> kernel, recurrent_kernel = rng.normal(size=(3, 4)) * 0.5, rng.normal(size=(4, 4)) * 0.5
>>> out, state, cache = forward(x, kernel, recurrent_kernel, np.zeros(4))
>>> out.shape, state.shape
((2, 4), (2, 4))
>>> grads = backward(cache, d_output=np.ones_like(out))
>>> {k: v.shape for k, v in grads.items()}
{'inputs': (2, 5, 3), 'initial_state': (2, 4), 'kernel': (3, 4), 'recurrent_kernel': (4, 4), 'bias': (4,)}
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from . import _validate, activations, dispatch, engine
from .engine import Cache


def forward(x: ArrayLike, kernel: ArrayLike, recurrent_kernel: ArrayLike, bias: ArrayLike | None = None,
            initial_state: ArrayLike | None = None, *, mask: ArrayLike | None = None,
            input_dropout: ArrayLike | None = None, recurrent_dropout: ArrayLike | None = None,
            go_backwards: bool = False, activation: str | Callable | None = "tanh",
            return_sequences: bool = False, device: str = "auto") -> tuple[np.ndarray, np.ndarray, Cache]:
    """SimpleRNN forward pass that remembers what :func:`backward` needs.

    ``h_t = activation((x_t * input_dropout) @ kernel + (h_{t-1} * recurrent_dropout) @ recurrent_kernel
    + bias)``.

    Parameters
    ----------
    x : array_like (B, T, F), T >= 1
        Cast to the dtype of ``kernel``.
    kernel : ndarray (F, U), float32 or float64
        Its dtype is the dtype of the whole computation.
    recurrent_kernel : ndarray (U, U), same dtype
    bias : ndarray (U,), same dtype, or None
    initial_state : ndarray (B, U), same dtype, or None for zeros
    mask : array_like (B, T) of bool, or None
        False marks a step to skip (state carried, output repeated).
    input_dropout, recurrent_dropout : array_like (B, F) and (B, U), or None
        Multiplicative dropout masks, already scaled by ``1 / (1 - rate)``.
    go_backwards : bool
        Process the steps in reverse; outputs stay in processing order.
    activation : str or callable
        A Keras activation name (compiled kernels) or a Python callable (NumPy
        reference; its derivative is its ``derivative`` attribute, else a finite
        difference).
    return_sequences : bool
        Return every output (B, T, U) instead of the last one (B, U).
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    output : ndarray (B, T, U) or (B, U), dtype of ``kernel``
    final_state : ndarray (B, U)
    cache : Cache
        Pass to :func:`backward`.

    Raises
    ------
    TypeError, ValueError
        For arrays of the wrong dtype or shape, naming what was expected.
    """
    kernel = _validate.weight(kernel, "kernel", (None, None))
    dtype = kernel.dtype
    features, units = kernel.shape
    recurrent_kernel = _validate.weight(recurrent_kernel, "recurrent_kernel", (units, units), dtype)
    bias = None if bias is None else _validate.weight(bias, "bias", (units,), dtype)
    x = _validate.inputs(x, dtype, features, f"kernel has shape {kernel.shape} = (features, units), "
                                          f"for {features} features")
    batch, steps, _ = x.shape
    if initial_state is None:
        initial_state = np.zeros((batch, units), dtype)
    else:
        initial_state = _validate.weight(initial_state, "initial_state", (batch, units), dtype)
    act = activations.get(activation)
    return engine.run(
        dispatch.backend(device, act, x, units), x, kernel, recurrent_kernel, bias, initial_state,
        mask=_validate.mask(mask, batch, steps),
        input_dropout=_validate.multiplier(input_dropout, "input_dropout", (batch, features), dtype),
        recurrent_dropout=_validate.multiplier(recurrent_dropout, "recurrent_dropout", (batch, units), dtype),
        go_backwards=_validate.flag(go_backwards, "go_backwards"), activation=activations.name_of(act) or act,
        return_sequences=_validate.flag(return_sequences, "return_sequences"),
    )


def backward(cache: Cache, d_output: ArrayLike | None = None,
             d_state: ArrayLike | None = None) -> dict[str, np.ndarray | None]:
    """Gradients of a loss through the :func:`forward` call that produced ``cache``.

    Parameters
    ----------
    cache : Cache
        From :func:`forward`; it can be used for any number of backward calls.
    d_output : array_like, optional
        Gradient of the loss with respect to ``output``: (B, T, U) if the
        forward returned sequences, else (B, U). None means zero.
    d_state : array_like (B, U), optional
        Gradient with respect to ``final_state``. None means zero.

    Returns
    -------
    dict
        ``inputs`` (B, T, F), ``initial_state`` (B, U), ``kernel`` (F, U),
        ``recurrent_kernel`` (U, U) and ``bias`` (U,) or None without a bias;
        every array has the forward dtype.

    Raises
    ------
    TypeError
        If ``cache`` is not a :class:`Cache` or a gradient is not a float array.
    ValueError
        If a gradient's shape is not the shape of what the forward returned.
    """
    if not isinstance(cache, Cache):
        raise TypeError(
            "backward needs the Cache returned by simplernn_numba.forward; "
            f"received {type(cache).__name__}."
        )
    d_output, d_state = engine.checked_gradients(cache, d_output, d_state)
    return engine.backward(cache, d_output, d_state)
