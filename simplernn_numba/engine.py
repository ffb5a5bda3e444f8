"""One SimpleRNN call, between the public surfaces and the kernel backends.

:class:`~simplernn_numba.SimpleRNN`, :class:`~simplernn_numba.Bidirectional` (through its two
layers) and the functional API (:mod:`.functional`) run every call here, on arrays they have
validated: the path is ``SimpleRNN.__call__`` -> :func:`call_layer` -> the backend
:func:`.dispatch.backend` chose (``backend.forward``, or through :func:`run`
``backend.forward_for_training`` when training) -> the backend's plan (``layer.last_call``).
The engine also draws dropout masks (:func:`dropout_mask`), applies ``zero_output_for_mask``
(:func:`zero_masked`), keeps what a backward pass needs (:class:`Cache`), checks upstream
gradients (:func:`checked_gradients`) and adds the regularizers' gradients to a layer's
(:func:`layer_gradients`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate, activations, dispatch
from .kernels.backend import Backend
from .kernels.device_arrays import is_device_array


@dataclass(frozen=True)
class Cache:
    """What a backward pass needs from a forward call (treat as opaque).

    ``outputs`` is the full output sequence (B, T, U) in processing order, even
    when the call returned only the last output. The other arrays are the ones
    passed to the forward call (not copies when they were already valid): do not
    modify them in place before the backward pass.
    """

    backend: Backend
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


def run(backend: Backend, x, kernel, recurrent_kernel, bias, initial_state, *, mask, input_dropout,
        recurrent_dropout, go_backwards, activation, return_sequences, training: bool = True):
    """Forward on validated arrays: ``(output, final_state, cache)``.

    With ``training``, ``backend.forward_for_training`` runs and ``cache`` holds what
    :func:`backward` needs; without, ``backend.forward`` runs and ``cache`` is None.
    """
    if not training:
        output, state = backend.forward(
            x, kernel, recurrent_kernel, bias, initial_state, mask=mask, input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout, go_backwards=go_backwards, activation=activation,
            return_sequences=return_sequences)
        return output, state, None
    outputs, final_state = backend.forward_for_training(
        x, kernel, recurrent_kernel, bias, initial_state, mask=mask, input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout, go_backwards=go_backwards, activation=activation,
        return_sequences=True,
    )
    cache = Cache(backend, x, kernel, recurrent_kernel, bias, initial_state, outputs, mask, input_dropout,
                  recurrent_dropout, go_backwards, activation, return_sequences)
    if return_sequences:
        output = outputs
    elif is_device_array(outputs):  # GPU in, GPU out: a view, never a copy to the host
        output = outputs[:, -1]
    else:
        output = np.ascontiguousarray(outputs[:, -1])
    return output, final_state, cache


def call_layer(layer, weights: tuple, x, initial_state, mask, input_dropout, recurrent_dropout,
               training: bool):
    """One call of ``layer`` (a :class:`~simplernn_numba.SimpleRNN`) on validated arrays:
    ``(output, final_state, cache, call_info)``.

    ``weights`` (kernel, recurrent_kernel, bias) are the layer's host arrays; the backend
    prepares them (device copies for the GPU, kept while ``layer.weights_version`` holds).
    """
    backend = dispatch.backend(layer.device, layer.activation, x, layer.units)
    weights = backend.prepare_weights(layer, layer.weights_version, weights)
    activation = activations.name_of(layer.activation) or layer.activation
    if training:
        output, state, cache = run(
            backend, x, *weights, initial_state, mask=mask, input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout, go_backwards=layer.go_backwards, activation=activation,
            return_sequences=layer.return_sequences)
    else:  # :func:`run` without training, one call less (the per-call overhead of inference)
        cache = None
        output, state = backend.forward(
            x, *weights, initial_state, mask=mask, input_dropout=input_dropout,
            recurrent_dropout=recurrent_dropout, go_backwards=layer.go_backwards, activation=activation,
            return_sequences=layer.return_sequences)
    info = dispatch.call_info(backend)
    if layer.zero_output_for_mask and mask is not None:
        output = zero_masked(output, mask, layer.go_backwards, layer.return_sequences, layer.name)
    return output, state, cache, info


def dropout_mask(rng: np.random.Generator, rate: float, shape: tuple, dtype: np.dtype) -> np.ndarray | None:
    """A multiplicative dropout mask of ``shape``: ``1 / (1 - rate)`` where kept, 0 where dropped
    (None for a zero ``rate``); draws ``rng.random(shape)``."""
    if rate == 0:
        return None
    keep = rng.random(shape) >= rate
    return (keep / (1.0 - rate)).astype(dtype)


def zero_masked(output, mask: np.ndarray, go_backwards: bool, return_sequences: bool,
                name: str) -> np.ndarray:
    """``output`` (as a call returns it) with zeros at masked steps (``zero_output_for_mask`` of
    the layer ``name``)."""
    if is_device_array(output):
        raise ValueError(
            f"Layer {name!r} has zero_output_for_mask=True, which needs host (NumPy) "
            "inputs and mask; GPU arrays are never copied implicitly."
        )
    keep = mask[:, ::-1] if go_backwards else mask  # in processing order, as the outputs
    keep = keep[:, :, None] if return_sequences else keep[:, -1:]
    return np.where(keep, output, output.dtype.type(0))


def checked_gradients(cache: Cache, d_output, d_state) -> tuple:
    """``(d_output, d_state)`` checked against what the forward call of ``cache`` returned:
    (B, T, U) or (B, U) and (B, U), its dtype (None stays None)."""
    batch, steps, units = cache.outputs.shape
    dtype = cache.outputs.dtype
    out_shape = (batch, steps, units) if cache.return_sequences else (batch, units)
    return (_validate.gradient(d_output, "d_output", out_shape, dtype),
            _validate.gradient(d_state, "d_state", (batch, units), dtype))


def backward(cache: Cache, d_output, d_state) -> dict[str, np.ndarray | None]:
    """Gradients through the forward call of ``cache``, for gradients :func:`checked_gradients`
    accepted."""
    return cache.backend.backward(
        cache.x, cache.kernel, cache.recurrent_kernel, cache.bias, cache.initial_state, cache.outputs,
        d_output, d_state, mask=cache.mask, input_dropout=cache.input_dropout,
        recurrent_dropout=cache.recurrent_dropout, go_backwards=cache.go_backwards,
        activation=cache.activation,
    )


def layer_gradients(layer, cache: Cache, d_output, d_state) -> dict[str, np.ndarray | None]:
    """Gradients of ``layer``'s last training call (``cache``) for checked upstream gradients,
    plus those of ``sum(layer.losses)``: the activity regularizer on every returned array
    (divided by the batch size) and the weight regularizers."""
    batch = cache.outputs.shape[0]
    dtype = cache.outputs.dtype
    activity = layer.activity_regularizer
    zero_masked_outputs = layer.zero_output_for_mask and cache.mask is not None
    if activity is not None:
        output = cache.outputs if layer.return_sequences else cache.outputs[:, -1]
        if zero_masked_outputs:
            output = zero_masked(output, cache.mask, layer.go_backwards, layer.return_sequences, layer.name)
        d_output = _plus(d_output, activity.gradient(output) / dtype.type(batch))
        if layer.return_state:
            state = cache.outputs[:, -1]  # the final state, except in rows masked throughout
            if cache.mask is not None:
                state = np.where(cache.mask.any(axis=1)[:, None], state, cache.initial_state)
            d_state = _plus(d_state, activity.gradient(state) / dtype.type(batch))
    if zero_masked_outputs and d_output is not None:  # a zeroed output passes no gradient back
        d_output = zero_masked(d_output, cache.mask, layer.go_backwards, layer.return_sequences, layer.name)
    grads = backward(cache, d_output, d_state)
    regularizers = {"kernel": layer.kernel_regularizer, "recurrent_kernel": layer.recurrent_regularizer,
                    "bias": layer.bias_regularizer}
    for key, regularizer in regularizers.items():
        weights = getattr(cache, key)
        if weights is not None and is_device_array(weights):  # the CUDA backend's cached copies
            weights = weights.copy_to_host()
        if regularizer is not None and weights is not None:
            grads[key] = grads[key] + regularizer.gradient(weights)
    return grads


def _plus(grad, extra):
    return extra if grad is None else grad + extra
