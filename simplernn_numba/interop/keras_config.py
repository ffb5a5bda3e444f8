"""Keras ``SimpleRNN`` configs as our constructor arguments (shared by live layers and files).

:func:`simple_rnn_arguments` reads the dict of a Keras layer's ``get_config()`` or of a
saved model's ``config.json``/``model_config``: every SimpleRNN key is copied;
initializer, regularizer and constraint configs keep ``class_name`` and ``config``
(Keras' ``module``, ``registered_name`` and ``shared_object_id`` are dropped, as are
config entries we do not implement when they hold None, such as ``input_axes``).
It also defines the errors of loading a Keras model file.
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import activations, constraints, initializers, regularizers
from ..layer import CONFIG_OBJECTS
from .saving import LoadError


class ModelFileError(LoadError):
    """A Keras model file that cannot be loaded: truncated, corrupted, incomplete, of a format
    version not known here, or holding something that is refused (see :class:`UnsupportedLayerError`)."""


class UnsupportedLayerError(ModelFileError):
    """A layer of a Keras model file that is not rebuilt here: an unsupported class, a ``Lambda``
    or custom object, or a mixed-precision policy. The message names the layer and what is supported."""


_MODULES = {initializers: "initializer", regularizers: "regularizer", constraints: "constraint"}
_COPIED = ("name", "trainable", "units", "use_bias", "dropout", "recurrent_dropout", "return_sequences",
           "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")
#: Keras config keys that must hold the value given here.
_FIXED = {"time_major": False}
_IGNORED = ("dtype", "activation", "seed", "batch_input_shape", "input_shape")


def _shortest_float(value):
    """Keras 3 keeps regularizer factors as float32 (0.01 -> 0.009999999776...); undo that."""
    if isinstance(value, float) and np.isfinite(value) and float(np.float32(value)) == value:
        return float(str(np.float32(value)))
    return value


def _object_from_keras(spec, module):
    """A Keras initializer/regularizer/constraint config as our ``{"class_name", "config"}``."""
    if spec is None or isinstance(spec, str):
        return spec
    kind = _MODULES[module]
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ValueError(f"Cannot convert Keras {kind} {spec!r}: expected a config dict.")
    name = spec["class_name"]
    accepted = inspect.signature(type(module.get(name))).parameters
    config = {}
    for key, value in (spec.get("config") or {}).items():
        if key in accepted:
            config[key] = _shortest_float(value)
        elif value is not None:
            raise ValueError(f"Keras {kind} {name!r} argument {key}={value!r} is not supported.")
    return {"class_name": name, "config": config}


def simple_rnn_arguments(config: dict, *, keras2: bool) -> dict:
    """Our :class:`~simplernn_numba.SimpleRNN` keyword arguments for a Keras SimpleRNN config.

    ``dtype``, ``seed`` and ``device`` are left to the caller. ``keras2`` refuses
    ``hard_sigmoid``, whose Keras 2 formula (0.2 x + 0.5) differs from ours (Keras 3's).
    """
    for key, value in config.items():
        if key in _FIXED and value != _FIXED[key]:
            raise ValueError(f"Keras SimpleRNN {key}={value!r} has no equivalent here.")
        if key not in (*_COPIED, *CONFIG_OBJECTS, *_FIXED, *_IGNORED):
            raise ValueError(f"Keras SimpleRNN config key {key!r} is not supported.")
    activation = config.get("activation")
    if keras2 and activations.get(activation) is activations.hard_sigmoid:
        raise ValueError("Keras 2 hard_sigmoid (0.2 x + 0.5) differs from Keras 3's (x / 6 + 0.5).")
    arguments = {key: config[key] for key in _COPIED if key in config}
    for key, module in CONFIG_OBJECTS.items():
        arguments[key] = _object_from_keras(config.get(key), module)
    return {"activation": activation, **arguments}
