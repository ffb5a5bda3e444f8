"""Move config and weights between our layers and Keras ``SimpleRNN`` / ``Bidirectional``.

Works with Keras 3 (``import keras``) and with Keras 2 (``import tf_keras``,
or ``keras`` 2.x); Keras is imported only inside :func:`to_keras`
(:func:`from_keras` only reads the Keras layer it is given). :func:`load_model` reads
a whole model from a ``.keras`` or ``.h5`` file without Keras (h5py only; see
:mod:`.keras_model`). Mapping:

- every SimpleRNN config key is copied; initializer, regularizer and constraint
  configs keep ``class_name`` and ``config`` (Keras' ``module`` and
  ``registered_name`` are dropped, as are config entries we do not implement
  when they hold None, such as ``input_axes``);
- our ``seed`` is Keras 3's ``layer.cell.seed`` (Keras drops it from
  ``get_config``); Keras 2 has no seed, so none is passed there;
- ``dtype`` is the Keras variable dtype; mixed-precision policies are refused;
- ``zero_output_for_mask`` is copied (inside a ``Bidirectional`` both sides force it
  to ``return_sequences``, as Keras does); ``time_major=True`` is refused;
- ``hard_sigmoid`` is refused for Keras 2, whose definition differs from Keras 3's;
- a stateful layer's state travels with its weights.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .. import activations
from .._serialization import Serializable
from ..bidirectional import Bidirectional
from ..layer import CONFIG_OBJECTS, SimpleRNN
from .keras_config import ModelFileError, UnsupportedLayerError, simple_rnn_arguments
from .keras_model import KerasModel, load_model

__all__ = ["KerasModel", "ModelFileError", "UnsupportedLayerError", "from_keras", "load_model", "to_keras"]


def _keras_major(module) -> int:
    version = getattr(module, "__version__", None) or module.version()
    return int(str(version).split(".")[0])


def _is_keras2_layer(keras_layer) -> bool:
    root = type(keras_layer).__module__.split(".")[0]
    if root == "tf_keras":
        return True
    return _keras_major(importlib.import_module(root)) < 3


def _check_dtype(keras_layer) -> str:
    variable = str(keras_layer.dtype)
    compute = str(getattr(keras_layer, "compute_dtype", variable))
    if variable != compute or variable not in ("float32", "float64"):
        raise ValueError(
            f"Keras layer {keras_layer.name!r} uses dtype {variable} with compute dtype {compute}; "
            "only float32 or float64 without mixed precision can be converted."
        )
    return variable


def _simple_rnn_from_keras(keras_layer, *, device: str = "auto") -> SimpleRNN:
    if type(keras_layer).__name__ != "SimpleRNN" or not hasattr(keras_layer, "get_config"):
        raise TypeError(f"Expected a Keras SimpleRNN layer; received {type(keras_layer).__name__}.")
    arguments = simple_rnn_arguments(keras_layer.get_config(), keras2=_is_keras2_layer(keras_layer))
    seed = getattr(getattr(keras_layer, "cell", None), "seed", None)
    layer = SimpleRNN(dtype=_check_dtype(keras_layer), seed=None if seed is None else int(seed),
                      device=device, **arguments)
    if keras_layer.built and keras_layer.get_weights():
        weights = keras_layer.get_weights()
        states = keras_layer.states if layer.stateful else [None]
        state = None if not states or states[0] is None else np.asarray(states[0])
        layer.build((None if state is None else state.shape[0], None, weights[0].shape[0]))
        layer.set_weights(weights)
        if state is not None:
            layer.reset_states(state)
    return layer


def from_keras(keras_layer: Any, *, device: str = "auto") -> SimpleRNN | Bidirectional:
    """Our layer equivalent to a Keras ``SimpleRNN`` or ``Bidirectional(SimpleRNN)``.

    Parameters
    ----------
    keras_layer : keras.layers.SimpleRNN or keras.layers.Bidirectional (Keras 3 or 2)
        Weights and (for stateful layers) states are copied when it is built.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    SimpleRNN or Bidirectional
    """
    if type(keras_layer).__name__ == "Bidirectional":
        forward = _simple_rnn_from_keras(keras_layer.forward_layer, device=device)
        backward = _simple_rnn_from_keras(keras_layer.backward_layer, device=device)
        layer = Bidirectional(forward, merge_mode=keras_layer.merge_mode, backward_layer=backward,
                              name=keras_layer.name)
        if forward.built and backward.built:
            layer.build((forward.batch_size, None, forward.kernel.shape[0]))
            layer.set_weights(forward.get_weights() + backward.get_weights())
            if layer.stateful and forward.states[0] is not None:
                layer.reset_states([forward.states[0], backward.states[0]])
        return layer
    return _simple_rnn_from_keras(keras_layer, device=device)


def _import(module):
    return importlib.import_module(module) if isinstance(module, str) else module


def _keras_kwargs(layer: SimpleRNN, keras2: bool) -> dict:
    if activations.name_of(layer.activation) is None:
        raise ValueError(f"Layer {layer.name!r} has a Python-callable activation; Keras cannot take it.")
    if keras2 and layer.activation is activations.hard_sigmoid:
        raise ValueError("Keras 2 hard_sigmoid (0.2 x + 0.5) differs from ours (Keras 3: x / 6 + 0.5).")
    config = layer.get_config()
    for key in CONFIG_OBJECTS:
        value = getattr(layer, key)
        if value is not None and not isinstance(value, Serializable):
            raise ValueError(
                f"Layer {layer.name!r} {key} {value!r} is a Python callable; Keras cannot take it."
            )
    seed = config.pop("seed")
    if not keras2 and seed is not None:
        config["seed"] = seed
    return config


def _keras_simple_rnn(keras, layer: SimpleRNN, keras2: bool):
    config = _keras_kwargs(layer, keras2)
    keras_layer = keras.layers.SimpleRNN(**config)
    if keras_layer.activity_regularizer is None and config["activity_regularizer"] is not None:
        # Keras 3.x SimpleRNN drops this argument; the attribute is what Keras applies and serialises
        keras_layer.activity_regularizer = keras.regularizers.get(config["activity_regularizer"])
    return keras_layer


def _copy_into_keras(keras_layer, layer: SimpleRNN) -> None:
    if layer.stateful and layer.states[0] is not None:
        keras_layer.states[0].assign(layer.states[0])


def _build_keras(keras_layer, layer) -> None:
    first = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    if not first.built:
        return
    keras_layer.build((first.batch_size, None, first.kernel.shape[0]))
    keras_layer.set_weights(layer.get_weights())
    if isinstance(layer, Bidirectional):
        _copy_into_keras(keras_layer.forward_layer, layer.forward_layer)
        _copy_into_keras(keras_layer.backward_layer, layer.backward_layer)
    else:
        _copy_into_keras(keras_layer, layer)


def to_keras(layer: SimpleRNN | Bidirectional, module: str = "keras") -> Any:
    """A Keras layer with this layer's config, weights and (stateful) state.

    Parameters
    ----------
    layer : SimpleRNN or Bidirectional
    module : str or module
        ``"keras"`` (default), ``"tf_keras"``, or an imported Keras module.

    Returns
    -------
    keras.layers.SimpleRNN or keras.layers.Bidirectional, built when ``layer`` is.
    """
    keras = _import(module)
    keras2 = _keras_major(keras) < 3
    if isinstance(layer, Bidirectional):
        forward = _keras_simple_rnn(keras, layer.forward_layer, keras2)
        backward = _keras_simple_rnn(keras, layer.backward_layer, keras2)
        keras_layer = keras.layers.Bidirectional(forward, merge_mode=layer.merge_mode,
                                                 backward_layer=backward, name=layer.name)
    elif isinstance(layer, SimpleRNN):
        keras_layer = _keras_simple_rnn(keras, layer, keras2)
    else:
        raise TypeError(f"Expected a SimpleRNN or Bidirectional layer; received {type(layer).__name__}.")
    _build_keras(keras_layer, layer)
    return keras_layer
