"""Functional SimpleRNN with gradients, for plain NumPy training loops.

:func:`forward` runs the recurrence and returns a :class:`Cache`;
:func:`backward` turns that cache and the upstream gradients into gradients
for every input (backpropagation through time). Arrays are validated here and
the work is done by the kernel :mod:`simplernn_numba.dispatch` picks.

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
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike

from . import _validate as V
from . import activations, dispatch


@dataclass(frozen=True)
class Cache:
    """What :func:`backward` needs from a :func:`forward` call (treat as opaque).

    ``outputs`` is the full output sequence (B, T, U) in processing order, even
    when the call returned only the last output. The other arrays are the ones
    passed to :func:`forward` (not copies when they were already valid): do not
    modify them in place before calling :func:`backward`.
    """

    kernels: ModuleType
    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray | None
    initial_state: np.ndarray
    outputs: np.ndarray
    mask: np.ndarray | None
    input_dropout: np.ndarray | None
    recurrent_dropout: np.ndarray | None
    go_backwards: bool
    activation: object
    return_sequences: bool


def run(kernels: ModuleType, x, kernel, recurrent_kernel, bias, initial_state, *, mask, input_dropout,
        recurrent_dropout, go_backwards, activation, return_sequences, training: bool = True):
    """Forward on validated arrays: ``(output, final_state, cache)``, the one route to a kernel.

    With ``training`` the kernel's ``forward_for_training`` runs (where it has one) and
    ``cache`` holds what :func:`backward` needs; without, ``forward_validated`` runs and
    ``cache`` is None.
    """
    if not training:
        output, state = kernels.forward_validated(
            x, kernel, recurrent_kernel, bias, initial_state, mask=mask, input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout, go_backwards=go_backwards, activation=activation,
            return_sequences=return_sequences)
        return output, state, None
    forward_pass = getattr(kernels, "forward_for_training", kernels.forward_validated)
    outputs, final_state = forward_pass(
        x, kernel, recurrent_kernel, bias, initial_state, mask=mask, input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout, go_backwards=go_backwards, activation=activation,
        return_sequences=True,
    )
    cache = Cache(kernels, x, kernel, recurrent_kernel, bias, initial_state, outputs, mask, input_dropout,
                  recurrent_dropout, go_backwards, activation, return_sequences)
    if return_sequences:
        output = outputs
    elif V.is_device_array(outputs):  # GPU in, GPU out: a view, never a copy to the host
        output = outputs[:, -1]
    else:
        output = np.ascontiguousarray(outputs[:, -1])
    return output, final_state, cache


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
    kernel = V.weight(kernel, "kernel", (None, None))
    dtype = kernel.dtype
    features, units = kernel.shape
    recurrent_kernel = V.weight(recurrent_kernel, "recurrent_kernel", (units, units), dtype)
    bias = None if bias is None else V.weight(bias, "bias", (units,), dtype)
    x = V.inputs(x, dtype, features, f"kernel has shape {kernel.shape} = (features, units), "
                                          f"for {features} features")
    batch, steps, _ = x.shape
    if initial_state is None:
        initial_state = np.zeros((batch, units), dtype)
    else:
        initial_state = V.weight(initial_state, "initial_state", (batch, units), dtype)
    act = activations.get(activation)
    return run(
        dispatch.backend(device, act, x, units), x, kernel, recurrent_kernel, bias, initial_state,
        mask=V.mask(mask, batch, steps),
        input_dropout=V.multiplier(input_dropout, "input_dropout", (batch, features), dtype),
        recurrent_dropout=V.multiplier(recurrent_dropout, "recurrent_dropout", (batch, units), dtype),
        go_backwards=V.flag(go_backwards, "go_backwards"), activation=activations.name_of(act) or act,
        return_sequences=V.flag(return_sequences, "return_sequences"),
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
    batch, steps, units = cache.outputs.shape
    dtype = cache.outputs.dtype
    out_shape = (batch, steps, units) if cache.return_sequences else (batch, units)
    d_output = V.gradient(d_output, "d_output", out_shape, dtype)
    d_state = V.gradient(d_state, "d_state", (batch, units), dtype)
    return _backward(cache, d_output, d_state)


def _backward(cache: Cache, d_output, d_state) -> dict[str, np.ndarray | None]:
    """:func:`backward` for gradients that already passed its checks (the Layer's path)."""
    return cache.kernels.backward(
        cache.x, cache.kernel, cache.recurrent_kernel, cache.bias, cache.initial_state, cache.outputs,
        d_output, d_state, mask=cache.mask, input_dropout=cache.input_dropout,
        recurrent_dropout=cache.recurrent_dropout, go_backwards=cache.go_backwards,
        activation=cache.activation,
    )
