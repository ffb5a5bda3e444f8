"""The layers of a saved Keras model, rebuilt from their configs and weights (inference only).

Recurrent layers become our :class:`~simplernn_numba.SimpleRNN` and
:class:`~simplernn_numba.Bidirectional`; the others are small NumPy layers here. Each
layer's ``mask_rule`` says what it passes on, as Keras does: ``"keep"`` (the input's mask,
as Dense, TimeDistributed, Activation and the dropout and noise layers do), ``"rnn"``
(the mask when ``return_sequences``, else none; none for returned states), or its own
(``Embedding`` with ``mask_zero``, ``Masking``).
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..bidirectional import Bidirectional
from ..layer import SimpleRNN
from .keras_config import UnsupportedLayerError, simple_rnn_arguments

#: Layers that do nothing at inference and pass the mask on (Keras ``supports_masking``).
IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                   "ActivityRegularization")
#: Activations computed here on top of the registry's (not SimpleRNN activations).
_SOFTMAXES = ("softmax", "log_softmax")


def softmax(x):
    """``exp(x) / sum(exp(x))`` over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    """``log(softmax(x))`` over the last axis."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def activation_of(identifier, *, keras2: bool, where: str):
    """The NumPy function of a Keras activation name (Keras 2 ``hard_sigmoid`` refused)."""
    if identifier in _SOFTMAXES:
        return {"softmax": softmax, "log_softmax": log_softmax}[identifier]
    if identifier is not None and not isinstance(identifier, str):
        raise UnsupportedLayerError(f"{where}: activation {identifier!r} is not a built-in name "
                                    "(custom objects are not loaded).")
    function = activations.get(identifier)
    if keras2 and function is activations.hard_sigmoid:
        raise UnsupportedLayerError(f"{where}: Keras 2 hard_sigmoid (0.2 x + 0.5) differs from Keras 3's.")
    return function


def dtype_of(config: dict, where: str) -> str:
    """The layer's float dtype from its ``dtype`` entry (a name or a dtype policy dict)."""
    policy = config.get("dtype") or "float32"
    name = policy.get("config", {}).get("name") if isinstance(policy, dict) else policy
    if name not in ("float32", "float64"):
        raise UnsupportedLayerError(f"{where}: dtype policy {name!r} is not supported; only float32 "
                                    "and float64 (no mixed precision).")
    return name


def _check_shapes(arrays, shapes, where: str) -> list[np.ndarray]:
    if len(arrays) != len(shapes) or any(a.shape != s for a, s in zip(arrays, shapes)):
        raise UnsupportedLayerError(f"{where}: the file holds weights of shapes {[a.shape for a in arrays]}; "
                         f"the config needs {shapes}.")
    return arrays


def _refuse_keys(config: dict, keys, where: str) -> None:
    for key in keys:
        if config.get(key) not in (None, 0):
            raise UnsupportedLayerError(f"{where}: {key}={config[key]!r} is not supported.")


class Dense:
    """Keras ``Dense`` on the last axis: ``activation(x @ kernel + bias)``; passes the mask on."""

    mask_rule = "keep"

    def __init__(self, name: str, kernel: np.ndarray, bias: np.ndarray | None, activation, dtype: str):
        self.name, self.activation = name, activation
        self.kernel = np.asarray(kernel, dtype)
        self.bias = None if bias is None else np.asarray(bias, dtype)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        out = inputs.astype(self.kernel.dtype, copy=False) @ self.kernel
        if self.bias is not None:
            out += self.bias
        return self.activation(out)

    def count_params(self) -> int:
        return self.kernel.size + (0 if self.bias is None else self.bias.size)

    def __repr__(self) -> str:
        return f"Dense({self.name!r}, units={self.kernel.shape[1]}, activation={self.activation.__name__})"


class TimeDistributed:
    """Keras ``TimeDistributed`` of a per-step layer (a :class:`Dense`); passes the mask on."""

    mask_rule = "keep"

    def __init__(self, name: str, layer: Dense):
        self.name, self.layer = name, layer

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.layer(inputs)

    def count_params(self) -> int:
        return self.layer.count_params()

    def __repr__(self) -> str:
        return f"TimeDistributed({self.name!r}, {self.layer!r})"


class Activation:
    """Keras ``Activation``; passes the mask on."""

    mask_rule = "keep"

    def __init__(self, name: str, activation):
        self.name, self.activation = name, activation

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.activation(inputs)

    def count_params(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Activation({self.name!r}, {self.activation.__name__})"


class Identity:
    """A layer that is the identity at inference (dropout, noise, activity regularization)."""

    mask_rule = "keep"

    def __init__(self, name: str, class_name: str):
        self.name, self.class_name = name, class_name

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return inputs

    def count_params(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"{self.class_name}({self.name!r}, identity at inference)"


class Embedding:
    """Keras ``Embedding``: rows of ``embeddings`` by index; with ``mask_zero`` the mask is ``x != 0``."""

    mask_rule = "own"

    def __init__(self, name: str, embeddings: np.ndarray, mask_zero: bool):
        self.name, self.embeddings, self.mask_zero = name, embeddings, bool(mask_zero)

    def __call__(self, inputs) -> tuple[np.ndarray, np.ndarray | None]:
        indices = np.asarray(inputs)
        if indices.dtype.kind not in "iu":
            indices = indices.astype(np.int32)  # Keras casts other inputs to int32
        rows = self.embeddings.shape[0]
        if indices.size and (indices.min() < 0 or indices.max() >= rows):
            raise ValueError(f"Embedding {self.name!r}: indices must be in [0, {rows}); received values "
                             f"from {indices.min()} to {indices.max()}.")
        return self.embeddings[indices], (indices != 0 if self.mask_zero else None)

    def count_params(self) -> int:
        return self.embeddings.size

    def __repr__(self) -> str:
        return f"Embedding({self.name!r}, {self.embeddings.shape[0]}, {self.embeddings.shape[1]}, " \
               f"mask_zero={self.mask_zero})"


class Masking:
    """Keras ``Masking``: steps whose features all equal ``mask_value`` are masked and zeroed."""

    mask_rule = "own"

    def __init__(self, name: str, mask_value: float):
        self.name, self.mask_value = name, mask_value

    def __call__(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.any(inputs != self.mask_value, axis=-1)
        return inputs * mask[..., None].astype(inputs.dtype), mask

    def count_params(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Masking({self.name!r}, mask_value={self.mask_value})"


# ---------------------------------------------------------------------- builders from configs
def _dense(name, config, weights, keras2, where) -> Dense:
    _refuse_keys(config, ("quantization_config", "lora_rank"), where)
    dtype = dtype_of(config, where)
    units, use_bias = int(config["units"]), bool(config.get("use_bias", True))
    features = weights[0].shape[0] if weights and weights[0].ndim == 2 else -1
    shapes = [(features, units), (units,)] if use_bias else [(features, units)]
    arrays = _check_shapes(weights, shapes, where)
    return Dense(name, arrays[0], arrays[1] if use_bias else None,
                 activation_of(config.get("activation"), keras2=keras2, where=where), dtype)


def _simple_rnn(config, *, keras2, device, where, **changes) -> SimpleRNN:
    try:
        arguments = {**simple_rnn_arguments(config, keras2=keras2), **changes}
        return SimpleRNN(dtype=dtype_of(config, where), device=device, **arguments)
    except UnsupportedLayerError:
        raise
    except (ValueError, TypeError) as error:
        raise UnsupportedLayerError(f"{where}: {error}") from error


def _set_rnn_weights(layer, weights, where: str) -> None:
    features = weights[0].shape[0] if weights and weights[0].ndim == 2 else -1
    layer.build((None, None, features))
    _check_shapes(weights, [w.shape for w in layer.get_weights()], where)
    layer.set_weights(weights)


def build_layer(entry: dict, weights_of, *, keras2: bool, device: str):
    """Our layer for one Keras layer entry ``{"class_name", "config", ...}`` of a model config.

    ``weights_of(name, parts)`` returns the layer's arrays (see ``ModelFile.weights``).
    Input layers and the operations of Keras 3 graphs are the graph's business
    (:mod:`.keras_model`), not this function's.
    """
    class_name, config = entry.get("class_name"), entry.get("config") or {}
    name = config.get("name", entry.get("name"))
    where = f"Layer {name!r} ({class_name})"
    registered = entry.get("registered_name")
    if registered not in (None, class_name) or class_name not in SUPPORTED:
        if class_name == "Lambda":
            raise UnsupportedLayerError(f"{where}: Lambda layers hold Python code, which is never run "
                                        "from a model file.")
        kind = "a custom object" if registered not in (None, class_name) else "not supported"
        raise UnsupportedLayerError(f"{where} is {kind}; load_model supports {', '.join(SUPPORTED)}.")
    if class_name in IDENTITY_LAYERS:
        return Identity(name, class_name)
    if class_name == "Activation":
        return Activation(name, activation_of(config.get("activation"), keras2=keras2, where=where))
    if class_name == "Masking":
        return Masking(name, float(config.get("mask_value", 0.0)))
    if class_name == "Dense":
        return _dense(name, config, weights_of(name, ("",)), keras2, where)
    if class_name == "Embedding":
        _refuse_keys(config, ("quantization_config", "lora_rank"), where)
        shape = (int(config["input_dim"]), int(config["output_dim"]))
        (embeddings,) = _check_shapes(weights_of(name, ("",)), [shape], where)
        return Embedding(name, embeddings.astype(dtype_of(config, where), copy=False),
                         config.get("mask_zero", False))
    if class_name == "TimeDistributed":
        inner = config.get("layer") or {}
        if inner.get("class_name") != "Dense":
            raise UnsupportedLayerError(f"{where}: only TimeDistributed(Dense) is supported; it wraps "
                             f"{inner.get('class_name')}.")
        inner_config = inner.get("config") or {}
        dense = _dense(inner_config.get("name", name), inner_config, weights_of(name, ("layer",)), keras2,
                       f"{where} inner Dense")
        return TimeDistributed(name, dense)
    if class_name == "SimpleRNN":
        layer = _simple_rnn(config, keras2=keras2, device=device, where=where)
        _set_rnn_weights(layer, weights_of(name, ("cell",)), where)
        return layer
    if class_name == "Bidirectional":
        return _bidirectional(name, config, weights_of, keras2=keras2, device=device, where=where)
    raise UnsupportedLayerError(f"{where} is not a layer of its own here (an InputLayer is a model's input).")


def _bidirectional(name, config, weights_of, *, keras2, device, where) -> Bidirectional:
    specs = [config.get("layer") or {}, config.get("backward_layer")]
    for spec in specs:
        if spec is not None and spec.get("class_name") != "SimpleRNN":
            raise UnsupportedLayerError(f"{where}: only Bidirectional(SimpleRNN) is supported; it wraps "
                             f"{spec.get('class_name')}.")
    forward = _simple_rnn(specs[0].get("config") or {}, keras2=keras2, device=device, where=where)
    if specs[1] is not None:
        backward = _simple_rnn(specs[1]["config"], keras2=keras2, device=device, where=where)
    else:  # Keras' default: the same config running the other way
        base = forward.name.removeprefix("forward_")
        backward = _simple_rnn(specs[0]["config"], keras2=keras2, device=device, where=where,
                               go_backwards=not forward.go_backwards, name=f"backward_{base}")
    try:
        layer = Bidirectional(forward, merge_mode=config.get("merge_mode", "concat"),
                              backward_layer=backward, name=name)
    except (ValueError, TypeError) as error:
        raise UnsupportedLayerError(f"{where}: {error}") from error
    _set_rnn_weights(layer, weights_of(name, ("forward_layer/cell", "backward_layer/cell")), where)
    return layer


SUPPORTED = ("InputLayer", "Embedding", "Masking", "SimpleRNN", "Bidirectional", "Dense", "TimeDistributed",
             "Activation", *IDENTITY_LAYERS)
