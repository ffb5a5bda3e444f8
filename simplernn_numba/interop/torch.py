"""Move weights between our layers and a single-layer ``torch.nn.RNN``.

``torch.nn.RNN`` computes ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, so
``kernel = weight_ih_l0.T``, ``recurrent_kernel = weight_hh_l0.T`` and
``bias = bias_ih_l0 + bias_hh_l0`` (exported as ``bias_ih = bias``, ``bias_hh = 0``,
so ours -> torch -> ours is exact). A bidirectional RNN maps to
:class:`~simplernn_numba.Bidirectional` (the ``_reverse`` weights are the
backward layer); torch concatenates the two directions, as ``merge_mode="concat"``
does. ``batch_first`` only changes torch's input layout: our layers always take
(batch, timesteps, features). torch is imported only inside these functions.
"""

from __future__ import annotations

import numpy as np

from .. import _validate, activations
from ..bidirectional import Bidirectional
from ..layer import SimpleRNN

#: torch nonlinearity <-> our activation name
_TORCH_ACTIVATIONS = ("tanh", "relu")


def _check_rnn(rnn) -> None:
    import torch

    if not isinstance(rnn, torch.nn.RNN):
        raise TypeError(f"Expected a torch.nn.RNN; received {type(rnn).__name__}.")
    if rnn.num_layers != 1:
        raise ValueError(
            f"Only single-layer torch.nn.RNN can be converted; received num_layers={rnn.num_layers} "
            "(stack one layer per SimpleRNN instead)."
        )
    if getattr(rnn, "proj_size", 0):
        raise ValueError(f"torch.nn.RNN with proj_size={rnn.proj_size} has no SimpleRNN equivalent.")
    if rnn.nonlinearity not in _TORCH_ACTIVATIONS:
        raise ValueError(
            f"Unsupported torch nonlinearity {rnn.nonlinearity!r}; expected one of {_TORCH_ACTIVATIONS}."
        )


def _direction_weights(rnn, suffix: str) -> list[np.ndarray]:
    def array(name):
        return getattr(rnn, name + suffix).detach().cpu().numpy()

    weights = [array("weight_ih_l0").T, array("weight_hh_l0").T]
    if rnn.bias:
        weights.append(array("bias_ih_l0") + array("bias_hh_l0"))
    return weights


def from_torch(rnn, **kwargs):
    """Layer equivalent to a single-layer ``torch.nn.RNN``, weights copied.

    Parameters
    ----------
    rnn : torch.nn.RNN
        ``num_layers=1``, ``nonlinearity`` tanh or relu, float32 or float64.
    **kwargs
        Further :class:`SimpleRNN` arguments (e.g. ``return_sequences=True``);
        ``units``, ``activation``, ``use_bias`` and ``dtype`` come from ``rnn``.

    Returns
    -------
    SimpleRNN, or Bidirectional (``merge_mode="concat"``) for a bidirectional RNN.
    """
    _check_rnn(rnn)
    dtype = _validate.float_dtype(str(rnn.weight_ih_l0.dtype).removeprefix("torch.")).name
    layer = SimpleRNN(rnn.hidden_size, activation=rnn.nonlinearity, use_bias=bool(rnn.bias),
                      dtype=dtype, **kwargs)
    shape = (None, None, rnn.input_size)
    if rnn.bidirectional:
        layer = Bidirectional(layer)
        layer.build(shape)
        layer.set_weights(_direction_weights(rnn, "") + _direction_weights(rnn, "_reverse"))
        return layer
    layer.build(shape)
    layer.set_weights(_direction_weights(rnn, ""))
    return layer


def _torch_nonlinearity(layer: SimpleRNN) -> str:
    name = activations.name_of(layer.activation)
    if name not in _TORCH_ACTIVATIONS:
        raise ValueError(
            f"torch.nn.RNN supports activations {_TORCH_ACTIVATIONS}; layer {layer.name!r} uses "
            f"{activations.serialize(layer.activation)!r}."
        )
    return name


def _copy_direction(rnn, layer: SimpleRNN, suffix: str) -> None:
    import torch

    def assign(name, value):
        param = getattr(rnn, name + suffix)
        param.copy_(torch.from_numpy(np.array(value)))

    assign("weight_ih_l0", layer.kernel.T)
    assign("weight_hh_l0", layer.recurrent_kernel.T)
    if layer.use_bias:
        assign("bias_ih_l0", layer.bias)
        assign("bias_hh_l0", np.zeros_like(layer.bias))


def to_torch(layer, batch_first: bool = True):
    """A ``torch.nn.RNN`` with this layer's weights (tanh/relu, built layers only).

    Parameters
    ----------
    layer : SimpleRNN or Bidirectional
        A SimpleRNN must have ``go_backwards=False``; a Bidirectional must have a
        forward and a backward layer of the same units, activation and bias.
    batch_first : bool
        Layout of the torch module's inputs (ours is always batch first).

    Returns
    -------
    torch.nn.RNN in the layer's dtype; bidirectional for a Bidirectional.
    """
    import torch

    bidirectional = isinstance(layer, Bidirectional)
    first = layer.forward_layer if bidirectional else layer
    if not first.built:
        raise ValueError(f"Layer {layer.name!r} is not built; build or call it before to_torch().")
    if first.go_backwards:
        raise ValueError(
            f"Layer {first.name!r} has go_backwards=True; torch.nn.RNN runs forwards only "
            "(reverse the inputs, or use Bidirectional)."
        )
    nonlinearity = _torch_nonlinearity(first)
    if bidirectional:
        second = layer.backward_layer
        if (second.units, _torch_nonlinearity(second), second.use_bias) != \
                (first.units, nonlinearity, first.use_bias):
            raise ValueError(
                "torch.nn.RNN needs both directions with the same units, activation and use_bias; "
                f"layer {layer.name!r} has {first!r} and {second!r}."
            )
    rnn = torch.nn.RNN(first.kernel.shape[0], first.units, num_layers=1, nonlinearity=nonlinearity,
                       bias=first.use_bias, batch_first=batch_first, bidirectional=bidirectional,
                       dtype=getattr(torch, first.dtype))
    with torch.no_grad():
        _copy_direction(rnn, first, "")
        if bidirectional:
            _copy_direction(rnn, layer.backward_layer, "_reverse")
    return rnn
